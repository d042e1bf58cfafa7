/* Opening and closing images: one qcow2 or raw file per layer, the
 * backing chain (format from the header extension, else probed), the
 * external data file, the L1 and refcount tables and the snapshot to
 * serve (qcow2.txt "Header", "Snapshots"). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcow2-int.h"
#include "util/checked.h"
#include "util/cleanup.h"
#include "util/endian.h"
#include "util/log.h"

static atomic_uint_fast64_t next_image_id = 1;

int qcow2_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
  uint8_t *p = buf;
  while (len) {
    ssize_t n = pread(fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0) { /* past the end of the file reads as zeroes */
      memset(p, 0, len);
      return 0;
    }
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return 0;
}

/* Size of a regular file or a block device. */
static int file_size_of(int fd, uint64_t *size, uint64_t *alloc)
{
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -errno;
  *alloc = (uint64_t)st.st_blocks * 512;
  off_t end = lseek(fd, 0, SEEK_END);
  if (end < 0)
    return -errno;
  *size = (uint64_t)end;
  return 0;
}

bool qcow2_probe(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  uint8_t m[4];
  bool yes = pread(fd, m, 4, 0) == 4 && load_be32(m) == QCOW2_MAGIC;
  close(fd);
  return yes;
}

/* QEMU's path_combine: relative names resolve against the directory of
 * the image that names them. */
static char *combine(const char *dir, const char *name)
{
  char *s;
  if (name[0] == '/' || !dir[0])
    return strdup(name);
  if (asprintf(&s, "%s%s", dir, name) < 0)
    return NULL;
  return s;
}

static char *dir_of(const char *path)
{
  const char *slash = strrchr(path, '/');
  return strndup(path, slash ? (size_t)(slash - path + 1) : 0);
}

/* Check an on-disk table: aligned, within the file, within a limit. */
static int check_table(struct qcow2_image *q, uint64_t off, uint64_t entries,
                       uint64_t esize, uint64_t max_bytes, const char *what)
{
  uint64_t bytes;
  const char *why = NULL;
  if (ckd_mul(&bytes, entries, esize) || bytes > max_bytes)
    why = "is larger than the limit";
  else if (bytes && !IS_ALIGNED(off, q->cluster_size))
    why = "is not cluster aligned";
  else if (bytes && off < q->cluster_size)
    why = "overlaps the header";
  else if (bytes && !range_within(off, bytes, q->file_size))
    why = "lies past the end of the file";
  if (!why)
    return 0;
  log_error("qcow2: %s: %s at offset %#" PRIx64 " (%" PRIu64 " entries) %s",
            q->filename, what, off, entries, why);
  return -EINVAL;
}

static int load_u64_table(struct qcow2_image *q, uint64_t off, uint32_t n,
                          uint64_t **out, const char *what)
{
  uint64_t *t = malloc(n ? (size_t)n * 8 : 8);
  if (!t)
    return -ENOMEM;
  int r = n ? qcow2_read_meta(q, q->fd, t, (size_t)n * 8, off, what) : 0;
  if (r < 0) {
    free(t);
    return r;
  }
  for (uint32_t i = 0; i < n; i++)
    t[i] = load_be64(&t[i]);
  *out = t;
  return 0;
}

/* The L1 table must cover the virtual size (QEMU: "L1 table is too
 * small"). */
static int check_l1_covers(struct qcow2_image *q, uint32_t l1_size,
                           uint64_t size)
{
  uint64_t span = 1ull << (q->h.cluster_bits + q->l2_bits);
  if ((size + span - 1) / span > l1_size) {
    log_error("qcow2: %s: the L1 table (%u entries) is too small for the "
              "virtual size %" PRIu64,
              q->filename, l1_size, size);
    return -EINVAL;
  }
  return 0;
}

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
  return alen && blen && a < b + blen && b < a + alen;
}

/* Metadata structures must not overlap each other or the header. */
static int check_overlaps(struct qcow2_image *q)
{
  struct qcow2_header *h = &q->h;
  struct {
    const char *name;
    uint64_t off, len;
  } t[] = {
      {"header", 0, q->cluster_size},
      {"L1 table", h->l1_offset, (uint64_t)h->l1_size * 8},
      {"refcount table", h->reftable_offset,
       (uint64_t)h->reftable_clusters * q->cluster_size},
      {"bitmap directory", h->bitmap_dir_offset,
       q->nb_bitmaps ? h->bitmap_dir_size : 0},
  };
  for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
    for (size_t j = i + 1; j < ARRAY_SIZE(t); j++)
      if (overlaps(t[i].off, t[i].len, t[j].off, t[j].len))
        goto bad;
    for (size_t s = 0; s < q->nb_snapshots; s++)
      if (overlaps(t[i].off, t[i].len, q->snapshots[s].l1_offset,
                   (uint64_t)q->snapshots[s].l1_size * 8)) {
        log_error("qcow2: %s: the L1 table of snapshot %s overlaps the %s",
                  q->filename, q->snapshots[s].info.id, t[i].name);
        return -EINVAL;
      }
    continue;
  bad:
    for (size_t j = i + 1; j < ARRAY_SIZE(t); j++)
      if (overlaps(t[i].off, t[i].len, t[j].off, t[j].len))
        log_error("qcow2: %s: the %s overlaps the %s", q->filename, t[i].name,
                  t[j].name);
    return -EINVAL;
  }
  return 0;
}

static int open_tables(struct qcow2_image *q)
{
  struct qcow2_header *h = &q->h;
  int r;
  if ((r = check_l1_covers(q, h->l1_size, h->size)) < 0 ||
      (r = check_table(q, h->l1_offset, h->l1_size, 8, QCOW2_MAX_L1_BYTES,
                       "L1 table")) < 0)
    return r;
  if (!h->reftable_clusters || !h->reftable_offset) {
    log_error("qcow2: %s: the image has no refcount table", q->filename);
    return -EINVAL;
  }
  if ((r = check_table(q, h->reftable_offset, h->reftable_clusters,
                       q->cluster_size, QCOW2_MAX_REFTABLE_BYTES,
                       "refcount table")) < 0)
    return r;
  q->l1_size = h->l1_size;
  if ((r = load_u64_table(q, h->l1_offset, h->l1_size, &q->l1, "L1 table")))
    return r;
  q->reftable_size =
      (uint32_t)((uint64_t)h->reftable_clusters * q->cluster_size / 8);
  if ((r = load_u64_table(q, h->reftable_offset, q->reftable_size, &q->reftable,
                          "refcount table")))
    return r;
  if ((r = qcow2_snapshots_read(q)) < 0 || (r = qcow2_bitmaps_read(q)) < 0)
    return r;
  return check_overlaps(q);
}

static int open_data_file(struct qcow2_image *q)
{
  if (!q->h.data_file) {
    q->data_fd = q->fd;
    q->data_size = q->file_size;
    q->data_name = q->filename;
    return 0;
  }
  char *p = q->data_path = combine(q->dir, q->h.data_file);
  if (!p)
    return -ENOMEM;
  q->data_fd = open(p, O_RDONLY | O_CLOEXEC);
  if (q->data_fd < 0) {
    int e = errno;
    log_error("qcow2: %s: cannot open the external data file %s: %s",
              q->filename, p, strerror(e));
    return -e;
  }
  uint64_t alloc; /* qemu-img counts the image file's allocation only */
  int r = file_size_of(q->data_fd, &q->data_size, &alloc);
  q->data_name = q->data_path;
  return r;
}

/* Serve an internal snapshot: its L1 table and its disk size. */
static int use_snapshot(struct qcow2_image *q, const char *want)
{
  int i = qcow2_snapshot_find(q, want);
  if (i < 0) {
    log_error("qcow2: %s: no snapshot with id or name '%s'", q->filename, want);
    return -ENOENT;
  }
  struct qcow2_snapshot *sn = &q->snapshots[i];
  uint64_t size = sn->info.has_disk_size ? sn->info.disk_size : q->h.size;
  uint64_t *l1;
  int r = check_l1_covers(q, sn->l1_size, size);
  if (r < 0 || (r = load_u64_table(q, sn->l1_offset, sn->l1_size, &l1,
                                   "snapshot L1 table")) < 0)
    return r;
  free(q->l1);
  q->l1 = l1;
  q->l1_size = sn->l1_size;
  q->size = size;
  return 0;
}

static void fill_info(struct qcow2_image *q)
{
  struct qcow2_header *h = &q->h;
  struct qcow2_info *in = &q->info;
  in->filename = q->filename;
  in->format = "qcow2";
  in->virtual_size = q->size;
  in->version = h->version;
  in->cluster_size = q->cluster_size;
  in->refcount_bits = 1u << h->refcount_order;
  in->incompatible_features = h->incompat;
  in->compatible_features = h->compat;
  in->autoclear_features = h->autoclear;
  in->dirty = h->incompat & QCOW2_INCOMPAT_DIRTY;
  in->corrupt = h->incompat & QCOW2_INCOMPAT_CORRUPT;
  in->lazy_refcounts = h->compat & QCOW2_COMPAT_LAZY_REFCOUNTS;
  in->extended_l2 = q->ext_l2;
  in->compression = h->compression_type ? "zstd" : "zlib";
  in->backing_file = h->backing_file;
  in->backing_format = h->backing_format;
  in->full_backing_filename = q->full_backing;
  in->data_file = h->data_file;
  in->data_file_raw = h->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW;
  in->nb_snapshots = q->nb_snapshots;
  in->snapshots = q->snapshot_infos;
  in->nb_bitmaps = q->nb_bitmaps;
  in->bitmaps = q->bitmap_infos;
}

static int open_qcow2(struct qcow2_image *q, const struct qcow2_open_opts *opts)
{
  int r = qcow2_header_read(q);
  if (r < 0)
    return r;
  struct qcow2_header *h = &q->h;
  q->ext_l2 = h->incompat & QCOW2_INCOMPAT_EXTL2;
  q->entry_shift = q->ext_l2 ? 4 : 3;
  q->l2_bits = h->cluster_bits - q->entry_shift;
  q->sc_bits = q->ext_l2 ? h->cluster_bits - 5 : h->cluster_bits;
  q->slice_size = MIN(q->cluster_size, QCOW2_SLICE_MAX);
  if (h->size > (UINT64_C(1) << 62)) { /* offsets must fit the L2 field */
    log_error("qcow2: %s: virtual size %" PRIu64 " is too large", q->filename,
              h->size);
    return -EINVAL;
  }
  q->size = h->size;
  if (h->backing_file && !(q->full_backing = combine(q->dir, h->backing_file)))
    return -ENOMEM;
  if ((r = open_tables(q)) < 0 || (r = open_data_file(q)) < 0)
    return r;
  if (opts && opts->snapshot && (r = use_snapshot(q, opts->snapshot)) < 0)
    return r;
  pthread_mutex_init(&q->prealloc_lock, NULL);
  fill_info(q);
  return 0;
}

int qcow2_image_open_layer(const char *path, const char *fmt, unsigned depth,
                           struct qcow2_cache *cache,
                           const struct qcow2_open_opts *opts,
                           struct qcow2_image **out)
{
  struct qcow2_image *q = calloc(1, sizeof *q);
  if (!q)
    return -ENOMEM;
  q->fd = q->data_fd = -1;
  q->depth = depth;
  q->cache = cache;
  q->id = atomic_fetch_add(&next_image_id, 1);
  int r = -ENOMEM;
  if (!(q->filename = strdup(path)) || !(q->dir = dir_of(path)))
    goto fail;
  q->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (q->fd < 0) {
    r = -errno;
    log_error("qcow2: cannot open %s: %s", path, strerror(-r));
    goto fail;
  }
  if ((r = file_size_of(q->fd, &q->file_size, &q->info.actual_size)) < 0)
    goto fail;
  if (!fmt)
    fmt = qcow2_probe(path) ? "qcow2" : "raw";
  if (strcmp(fmt, "raw") == 0) {
    q->fmt = QCOW2_FMT_RAW;
    q->size = q->data_size = q->file_size;
    q->data_fd = q->fd;
    q->data_name = q->filename;
    q->info.filename = q->filename;
    q->info.format = "raw";
    q->info.virtual_size = q->size;
  } else if (strcmp(fmt, "qcow2") == 0) {
    q->fmt = QCOW2_FMT_QCOW2;
    if ((r = open_qcow2(q, opts)) < 0)
      goto fail;
  } else {
    log_error("qcow2: %s: unsupported format '%s'", path, fmt);
    r = -ENOTSUP;
    goto fail;
  }
  *out = q;
  return 0;
fail:
  qcow2_image_free(q);
  return r;
}

void qcow2_image_free(struct qcow2_image *q)
{
  if (!q)
    return;
  if (q->data_fd >= 0 && q->data_fd != q->fd)
    close(q->data_fd);
  if (q->fd >= 0)
    close(q->fd);
  if (q->fmt == QCOW2_FMT_QCOW2 && q->info.format)
    pthread_mutex_destroy(&q->prealloc_lock);
  qcow2_snapshots_free(q);
  qcow2_bitmaps_free(q);
  qcow2_header_free(&q->h);
  free(q->l1);
  free(q->reftable);
  free(q->full_backing);
  free(q->data_path);
  free(q->filename);
  free(q->dir);
  free(q);
}

/* Loops are found by device and inode, whatever the names say. */
static int check_loop(const struct qcow2_image *top,
                      const struct qcow2_image *b)
{
  struct stat sb, st;
  if (fstat(b->fd, &sb) < 0)
    return -errno;
  for (const struct qcow2_image *l = top; l; l = l->backing) {
    if (fstat(l->fd, &st) == 0 && st.st_dev == sb.st_dev &&
        st.st_ino == sb.st_ino) {
      log_error("qcow2: %s: backing chain loop: %s is already in the chain",
                top->filename, b->filename);
      return -ELOOP;
    }
  }
  return 0;
}

static int open_chain(struct qcow2_image *top)
{
  struct qcow2_image *cur = top;
  while (cur->fmt == QCOW2_FMT_QCOW2 && cur->h.backing_file) {
    const char *name = cur->h.backing_file;
    if (strstr(name, "://") || strncmp(name, "json:", 5) == 0) {
      log_error("qcow2: %s: backing file '%s' is not a local file",
                cur->filename, name);
      return -ENOTSUP;
    }
    if (cur->depth + 1 >= QCOW2_MAX_CHAIN) {
      log_error("qcow2: %s: backing chain deeper than %u", top->filename,
                QCOW2_MAX_CHAIN);
      return -ELOOP;
    }
    struct qcow2_image *b;
    int r = qcow2_image_open_layer(cur->full_backing, cur->h.backing_format,
                                   cur->depth + 1, top->cache, NULL, &b);
    if (r < 0)
      return r;
    if ((r = check_loop(top, b)) < 0) {
      qcow2_image_free(b);
      return r;
    }
    cur->backing = b;
    cur = b;
  }
  return 0;
}

void qcow2_close(struct qcow2_image *img)
{
  if (!img)
    return;
  struct qcow2_cache *c = img->cache;
  while (img) {
    struct qcow2_image *b = img->backing;
    qcow2_image_free(img);
    img = b;
  }
  qcow2_cache_free(c);
}

/* Default cache: enough L2 slices to map min(virtual size, 64 GiB),
 * at most 256 MiB (which is 64 GiB for clusters of 4 KiB and more). */
static uint64_t default_cache(const struct qcow2_image *q)
{
  if (q->fmt != QCOW2_FMT_QCOW2)
    return 0;
  uint64_t guest = MIN(q->size, UINT64_C(64) << 30);
  uint64_t clusters = (guest + q->cluster_size - 1) / q->cluster_size;
  uint64_t bytes = MAX(clusters << q->entry_shift, UINT64_C(1) << 20);
  return MIN(bytes, UINT64_C(256) << 20);
}

int qcow2_open(const char *path, const struct qcow2_open_opts *opts,
               struct qcow2_image **out)
{
  return qcow2_open_format(path, "qcow2", opts, out);
}

int qcow2_open_format(const char *path, const char *format,
                      const struct qcow2_open_opts *opts,
                      struct qcow2_image **out)
{
  struct qcow2_image *top;
  int r = qcow2_image_open_layer(path, format, 0, NULL, opts, &top);
  if (r < 0)
    return r;
  if (top->fmt == QCOW2_FMT_RAW && opts && opts->snapshot) {
    log_error("qcow2: %s: a raw image has no snapshots", path);
    qcow2_close(top);
    return -EINVAL;
  }
  uint64_t bytes =
      opts && opts->cache_size ? opts->cache_size : default_cache(top);
  top->cache = qcow2_cache_new(bytes);
  if (!top->cache) {
    qcow2_close(top);
    return -ENOMEM;
  }
  if ((r = open_chain(top)) < 0) {
    qcow2_close(top);
    return r;
  }
  *out = top;
  return 0;
}

uint64_t qcow2_size(const struct qcow2_image *img)
{
  return img->size;
}

bool qcow2_is_writable(const struct qcow2_image *img)
{
  (void)img;
  return false; /* part 1: the engine reads only */
}

const struct qcow2_image *qcow2_backing(const struct qcow2_image *img)
{
  return img->backing;
}

const struct qcow2_info *qcow2_get_info(const struct qcow2_image *img)
{
  return &img->info;
}

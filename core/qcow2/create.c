/* Creating a new qcow2 (or raw) image file: header, header extensions,
 * refcount structures, L1 table and, with preallocation, L2 tables and
 * data clusters (qcow2.txt "Header", "Host cluster management"). */
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
#include "util/endian.h"
#include "util/log.h"

/* The laid-out image: every cluster in [0, total) is used exactly once,
 * in this order, so each has refcount 1 (and nothing else does). */
struct create_layout {
  uint32_t cs;
  uint64_t l2_entries; /* per L2 table */
  uint64_t l1_size, l1_clusters;
  uint64_t rt_clusters, rb_count;
  uint64_t l2_count, data_count; /* preallocated */
  uint64_t rt_off, rb_off, l1_off, l2_off, data_off;
  uint64_t total; /* clusters */
};

static uint64_t div_up(uint64_t a, uint64_t b)
{
  return (a + b - 1) / b;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
  const uint8_t *p = buf;
  while (len) {
    ssize_t n = pwrite(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

/* Give [off, off+len) of fd real blocks: fallocate, or zeroes written. */
static int create_prealloc(int fd, uint64_t off, uint64_t len, bool full)
{
  if (!full) {
    int r = posix_fallocate(fd, (off_t)off, (off_t)len);
    return -r;
  }
  size_t chunk = 1 << 20;
  void *z = calloc(1, chunk);
  if (!z)
    return -ENOMEM;
  int r = 0;
  while (!r && len) {
    size_t n = len < chunk ? len : chunk;
    r = pwrite_all(fd, z, n, off);
    off += n;
    len -= n;
  }
  free(z);
  return r;
}

static int create_check_opts(const struct qcow2_create_opts *o)
{
  const char *why = NULL;
  bool v3 = o->version == 3;
  unsigned cb = o->cluster_bits;
  if (o->version != 2 && !v3)
    why = "compat must be 0.10 or 1.1";
  else if (cb < QCOW2_MIN_CLUSTER_BITS || cb > QCOW2_MAX_CLUSTER_BITS)
    why = "cluster size must be a power of two between 512 and 2M";
  else if (o->refcount_order > 6)
    why = "refcount_bits must be a power of two up to 64";
  else if (!v3 && o->refcount_order != 4)
    why = "refcount widths other than 16 bits need compat=1.1";
  else if (!v3 && (o->lazy_refcounts || o->extended_l2 || o->data_file ||
                   o->compression_type))
    why = "lazy_refcounts, extended_l2, data_file and compression_type=zstd "
          "need compat=1.1";
  else if (o->extended_l2 && cb < 14)
    why = "extended_l2 needs a cluster size of at least 16K";
  else if (o->data_file_raw && !o->data_file)
    why = "data_file_raw needs data_file";
  else if (o->data_file && o->backing_file && o->data_file_raw)
    why = "data_file_raw cannot be used with a backing file";
  else if (o->backing_file && o->preallocation != QCOW2_PREALLOC_OFF &&
           !o->extended_l2)
    why = "backing file and preallocation need extended_l2";
  else if (o->backing_file && !o->backing_format)
    why = "a backing file needs a backing format";
  else if (o->backing_file && strlen(o->backing_file) > QCOW2_MAX_BACKING_NAME)
    why = "backing file name too long";
  else if (o->size > (1ull << 55))
    why = "image size too large";
  if (why) {
    log_error("qcow2 create: %s", why);
    return -EINVAL;
  }
  return 0;
}

static void create_plan(const struct qcow2_create_opts *o, uint64_t size,
                        struct create_layout *L)
{
  memset(L, 0, sizeof *L);
  L->cs = 1u << o->cluster_bits;
  L->l2_entries = L->cs / (o->extended_l2 ? 16 : 8);
  uint64_t guest_clusters = div_up(size, L->cs);
  L->l1_size = div_up(guest_clusters, L->l2_entries);
  L->l1_clusters = div_up(L->l1_size * 8, L->cs);
  if (o->preallocation != QCOW2_PREALLOC_OFF) {
    L->l2_count = L->l1_size;
    L->data_count = o->data_file ? 0 : guest_clusters;
  }
  uint64_t fixed = 1 + L->l1_clusters + L->l2_count + L->data_count;
  uint64_t per_block = (uint64_t)L->cs * 8 >> o->refcount_order;
  uint64_t rt = 1, rb = 1;
  /* The refcount structures count themselves: grow until they fit. */
  for (;;) {
    uint64_t need_rb = div_up(fixed + rt + rb, per_block);
    uint64_t need_rt = div_up(need_rb * 8, L->cs);
    if (need_rb <= rb && need_rt <= rt)
      break;
    rb = need_rb > rb ? need_rb : rb;
    rt = need_rt > rt ? need_rt : rt;
  }
  L->rt_clusters = rt;
  L->rb_count = rb;
  L->rt_off = L->cs;
  L->rb_off = L->rt_off + rt * L->cs;
  L->l1_off = L->rb_off + rb * L->cs;
  L->l2_off = L->l1_off + L->l1_clusters * L->cs;
  L->data_off = L->l2_off + L->l2_count * L->cs;
  L->total = fixed + rt + rb;
}

/* One header extension at *pos of buf (cap bytes); false if it does not
 * fit.  Data is padded to 8 bytes (qcow2.txt "Header extensions"). */
static bool put_ext(uint8_t *buf, size_t cap, size_t *pos, uint32_t type,
                    const void *data, uint32_t len)
{
  size_t padded = (len + 7u) & ~(size_t)7;
  if (*pos + 8 + padded > cap)
    return false;
  store_be32(buf + *pos, type);
  store_be32(buf + *pos + 4, len);
  if (len)
    memcpy(buf + *pos + 8, data, len);
  *pos += 8 + padded;
  return true;
}

/* The feature name table (qcow2.txt "Feature name table"): lets tools
 * name bits they do not know. */
static size_t feature_table(uint8_t *t)
{
  static const struct {
    uint8_t type, bit;
    const char *name;
  } f[] = {{0, 0, "dirty bit"},
           {0, 1, "corrupt bit"},
           {0, 2, "external data file"},
           {0, 3, "compression type"},
           {0, 4, "extended L2 entries"},
           {1, 0, "lazy refcounts"},
           {2, 0, "bitmaps"},
           {2, 1, "raw external data"}};
  size_t n = sizeof f / sizeof f[0];
  memset(t, 0, n * 48);
  for (size_t i = 0; i < n; i++) {
    t[i * 48] = f[i].type;
    t[i * 48 + 1] = f[i].bit;
    memcpy(t + i * 48 + 2, f[i].name, strlen(f[i].name));
  }
  return n * 48;
}

static int create_header(const struct qcow2_create_opts *o, uint64_t size,
                         const struct create_layout *L, uint8_t *buf)
{
  bool v3 = o->version == 3;
  uint32_t hlen = v3 ? 112 : QCOW2_V2_HEADER_LEN;
  uint64_t incompat = 0, compat = 0, autoclear = 0;
  if (o->data_file)
    incompat |= QCOW2_INCOMPAT_DATA_FILE;
  if (o->compression_type)
    incompat |= QCOW2_INCOMPAT_COMPRESSION;
  if (o->extended_l2)
    incompat |= QCOW2_INCOMPAT_EXTL2;
  if (o->lazy_refcounts)
    compat |= QCOW2_COMPAT_LAZY_REFCOUNTS;
  if (o->data_file_raw)
    autoclear |= QCOW2_AUTOCLEAR_DATA_FILE_RAW;
  store_be32(buf, QCOW2_MAGIC);
  store_be32(buf + 4, o->version);
  store_be32(buf + 20, o->cluster_bits);
  store_be64(buf + 24, size);
  store_be32(buf + 36, (uint32_t)L->l1_size);
  store_be64(buf + 40, L->l1_size ? L->l1_off : 0);
  store_be64(buf + 48, L->rt_off);
  store_be32(buf + 56, (uint32_t)L->rt_clusters);
  if (v3) {
    store_be64(buf + 72, incompat);
    store_be64(buf + 80, compat);
    store_be64(buf + 88, autoclear);
    store_be32(buf + 96, o->refcount_order);
    store_be32(buf + 100, hlen);
    buf[104] = o->compression_type;
  }
  size_t pos = hlen, cap = L->cs;
  size_t blen = o->backing_file ? strlen(o->backing_file) : 0;
  if (hlen + 8 + blen > cap) {
    log_error("qcow2 create: the backing file name does not fit in the "
              "header cluster");
    return -EINVAL;
  }
  cap -= blen; /* the backing file name follows the extensions */
  bool ok = true;
  if (o->backing_format)
    ok &= put_ext(buf, cap - 8, &pos, QCOW2_EXT_BACKING_FORMAT,
                  o->backing_format, (uint32_t)strlen(o->backing_format));
  if (o->data_file)
    ok &= put_ext(buf, cap - 8, &pos, QCOW2_EXT_DATA_FILE, o->data_file,
                  (uint32_t)strlen(o->data_file));
  if (!ok) {
    log_error("qcow2 create: the header extensions do not fit in a cluster");
    return -EINVAL;
  }
  if (v3) {
    uint8_t t[8 * 48];
    size_t tl = feature_table(t);
    /* Optional: left out when the cluster is too small for it. */
    put_ext(buf, cap - 8, &pos, QCOW2_EXT_FEATURE_TABLE, t, (uint32_t)tl);
  }
  put_ext(buf, cap, &pos, QCOW2_EXT_END, NULL, 0);
  if (blen) {
    memcpy(buf + pos, o->backing_file, blen);
    store_be64(buf + 8, pos);
    store_be32(buf + 16, (uint32_t)blen);
  }
  return 0;
}

/* Set refcount entry idx of a refcount block to 1 (qcow2.txt "Host
 * cluster management": sub-byte widths are packed LSB first). */
static void rb_set_one(uint8_t *blk, uint64_t idx, unsigned order)
{
  unsigned bits = 1u << order;
  if (bits < 8)
    blk[idx * bits / 8] |= (uint8_t)(1u << (idx * bits % 8));
  else
    blk[(idx + 1) * (bits / 8) - 1] = 1;
}

static int create_refcounts(int fd, const struct qcow2_create_opts *o,
                            const struct create_layout *L, uint8_t *blk)
{
  uint64_t per_block = (uint64_t)L->cs * 8 >> o->refcount_order;
  size_t rt_bytes = L->rt_clusters * L->cs;
  uint8_t *rt = calloc(1, rt_bytes);
  if (!rt)
    return -ENOMEM;
  int r = 0;
  for (uint64_t b = 0; !r && b < L->rb_count; b++) {
    memset(blk, 0, L->cs);
    uint64_t first = b * per_block;
    for (uint64_t i = 0; i < per_block && first + i < L->total; i++)
      rb_set_one(blk, i, o->refcount_order);
    uint64_t off = L->rb_off + b * L->cs;
    store_be64(rt + b * 8, off);
    r = pwrite_all(fd, blk, L->cs, off);
  }
  if (!r)
    r = pwrite_all(fd, rt, rt_bytes, L->rt_off);
  free(rt);
  return r;
}

/* L1 and, with preallocation, L2 tables mapping every guest cluster. */
static int create_tables(int fd, const struct qcow2_create_opts *o,
                         uint64_t size, const struct create_layout *L,
                         uint8_t *blk)
{
  size_t l1_bytes = L->l1_clusters * L->cs;
  uint8_t *l1 = calloc(1, l1_bytes ? l1_bytes : 1);
  if (!l1)
    return -ENOMEM;
  uint64_t guest_clusters = div_up(size, L->cs), g = 0;
  unsigned esz = o->extended_l2 ? 16 : 8;
  int r = 0;
  for (uint64_t t = 0; !r && t < L->l2_count; t++) {
    uint64_t l2 = L->l2_off + t * L->cs;
    store_be64(l1 + t * 8, l2 | QCOW2_OFLAG_COPIED);
    memset(blk, 0, L->cs);
    for (uint64_t i = 0; i < L->l2_entries && g < guest_clusters; i++, g++) {
      /* An external data file maps guest offsets 1:1. */
      uint64_t host = o->data_file ? g * L->cs : L->data_off + g * L->cs;
      store_be64(blk + i * esz, host | QCOW2_OFLAG_COPIED);
      /* Extended L2: every subcluster allocated, except over a backing
       * file, whose data must still show through (qcow2.txt "Extended
       * L2 Entries"). */
      if (esz == 16 && !o->backing_file)
        store_be64(blk + i * esz + 8, 0xffffffffull);
    }
    r = pwrite_all(fd, blk, L->cs, l2);
  }
  if (!r && l1_bytes)
    r = pwrite_all(fd, l1, l1_bytes, L->l1_off);
  free(l1);
  return r;
}

static int create_data_file(const struct qcow2_create_opts *o, const char *path,
                            uint64_t size)
{
  /* The name in the header is relative to the image's directory. */
  char *full = NULL;
  const char *slash = strrchr(path, '/');
  if (o->data_file[0] != '/' && slash) {
    if (asprintf(&full, "%.*s/%s", (int)(slash - path), path, o->data_file) < 0)
      return -ENOMEM;
  }
  const char *p = full ? full : o->data_file;
  int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int r = fd < 0 ? -errno : 0;
  if (!r && ftruncate(fd, (off_t)size) < 0)
    r = -errno;
  if (!r && (o->preallocation == QCOW2_PREALLOC_FALLOC ||
             o->preallocation == QCOW2_PREALLOC_FULL))
    r = create_prealloc(fd, 0, size, o->preallocation == QCOW2_PREALLOC_FULL);
  if (!r && fsync(fd) < 0)
    r = -errno;
  if (r < 0)
    log_error("qcow2 create: data file %s: %s", p, strerror(-r));
  if (fd >= 0)
    close(fd);
  free(full);
  return r;
}

static int create_raw(const char *path, const struct qcow2_create_opts *o)
{
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -errno;
  int r = ftruncate(fd, (off_t)o->size) < 0 ? -errno : 0;
  if (!r && (o->preallocation == QCOW2_PREALLOC_FALLOC ||
             o->preallocation == QCOW2_PREALLOC_FULL))
    r = create_prealloc(fd, 0, o->size,
                        o->preallocation == QCOW2_PREALLOC_FULL);
  if (!r && fsync(fd) < 0)
    r = -errno;
  close(fd);
  return r;
}

static int create_write(int fd, const struct qcow2_create_opts *o,
                        uint64_t size, const struct create_layout *L)
{
  uint8_t *blk = calloc(1, L->cs);
  if (!blk)
    return -ENOMEM;
  int r = create_header(o, size, L, blk);
  if (!r)
    r = pwrite_all(fd, blk, L->cs, 0);
  if (!r)
    r = create_refcounts(fd, o, L, blk);
  if (!r)
    r = create_tables(fd, o, size, L, blk);
  free(blk);
  uint64_t end = L->total * L->cs;
  if (!r && ftruncate(fd, (off_t)end) < 0)
    r = -errno;
  bool falloc = o->preallocation == QCOW2_PREALLOC_FALLOC ||
                o->preallocation == QCOW2_PREALLOC_FULL;
  if (!r && falloc && L->data_count)
    r = create_prealloc(fd, L->data_off, L->data_count * L->cs,
                        o->preallocation == QCOW2_PREALLOC_FULL);
  if (!r && fsync(fd) < 0)
    r = -errno;
  return r;
}

int qcow2_create(const char *path, const struct qcow2_create_opts *opts)
{
  if (opts->raw)
    return create_raw(path, opts);
  struct qcow2_create_opts copy = *opts, *o = &copy;
  /* Raw external data must be mapped 1:1 from the start, as QEMU does. */
  if (o->data_file_raw && o->preallocation == QCOW2_PREALLOC_OFF)
    o->preallocation = QCOW2_PREALLOC_METADATA;
  int r = create_check_opts(o);
  if (r < 0)
    return r;
  /* The virtual size is a whole number of sectors, as QEMU rounds it. */
  uint64_t size = (o->size + 511) & ~511ull;
  struct create_layout L;
  create_plan(o, size, &L);
  if (L.l1_size * 8 > QCOW2_MAX_L1_BYTES ||
      L.rt_clusters * L.cs > QCOW2_MAX_REFTABLE_BYTES) {
    log_error("qcow2 create: image too large for this cluster size");
    return -EFBIG;
  }
  if (o->data_file && (r = create_data_file(o, path, size)) < 0)
    return r;
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -errno;
  r = create_write(fd, o, size, &L);
  close(fd);
  return r;
}

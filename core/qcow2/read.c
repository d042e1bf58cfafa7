/* The read path: walk the cluster map run by run, reading data clusters
 * straight into the caller's buffer, synthesising zeroes, decompressing
 * compressed clusters, and reading unallocated ranges from the backing
 * chain (qcow2.txt "Cluster mapping", "Backing file"). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "qcow2-int.h"
#include "util/checked.h"
#include "util/log.h"

/* Per-thread buffers for compressed clusters, and the last cluster
 * decompressed (sequential reads of a compressed image hit it). */
struct zbuf {
  uint8_t *in, *out;
  size_t in_cap, out_cap;
  uint64_t image_id, host; /* key of the cluster in out; 0: none */
  void *zctx;              /* decompressor state */
};

static pthread_key_t zbuf_key;
static pthread_once_t zbuf_once = PTHREAD_ONCE_INIT;

static void zbuf_free(void *p)
{
  struct zbuf *z = p;
  free(z->in);
  free(z->out);
  qcow2_decompress_free(z->zctx);
  free(z);
}

static void zbuf_init(void)
{
  pthread_key_create(&zbuf_key, zbuf_free);
}

static struct zbuf *zbuf_get(size_t in_len, size_t out_len)
{
  pthread_once(&zbuf_once, zbuf_init);
  struct zbuf *z = pthread_getspecific(zbuf_key);
  if (!z) {
    if (!(z = calloc(1, sizeof *z)))
      return NULL;
    pthread_setspecific(zbuf_key, z);
  }
  if (z->in_cap < in_len) {
    free(z->in);
    z->in_cap = 0;
    if (!(z->in = malloc(in_len)))
      return NULL;
    z->in_cap = in_len;
  }
  if (z->out_cap < out_len) {
    free(z->out);
    z->out_cap = 0;
    z->image_id = 0;
    if (!(z->out = malloc(out_len)))
      return NULL;
    z->out_cap = out_len;
  }
  return z;
}

static int read_compressed(struct qcow2_image *q, const struct qcow2_run *r,
                           uint8_t *buf, uint64_t off)
{
  struct zbuf *z = zbuf_get(r->csize, q->cluster_size);
  if (!z)
    return -ENOMEM;
  if (z->image_id != q->id || z->host != r->host) {
    z->image_id = 0;
    int rc = qcow2_pread_full(q->fd, z->in, r->csize, r->host);
    if (rc < 0)
      return rc;
    if (qcow2_decompress(q->h.compression_type, &z->zctx, z->in, r->csize,
                         z->out, q->cluster_size) < 0) {
      log_error("qcow2: %s: compressed cluster at host offset %#" PRIx64
                " (guest offset %#" PRIx64 ") does not decompress to a "
                "full cluster",
                q->filename, r->host, r->cluster_start);
      return -EIO;
    }
    z->image_id = q->id;
    z->host = r->host;
  }
  memcpy(buf, z->out + (off - r->cluster_start), r->length);
  return 0;
}

static int read_run(struct qcow2_image *q, const struct qcow2_run *r,
                    uint8_t *buf, uint64_t off)
{
  switch (r->type) {
  case QCOW2_SC_NORMAL:
    return qcow2_pread_full(q->data_fd, buf, r->length, r->host);
  case QCOW2_SC_COMPRESSED:
    return read_compressed(q, r, buf, off);
  case QCOW2_SC_ZERO_PLAIN:
  case QCOW2_SC_ZERO_ALLOC:
    memset(buf, 0, r->length);
    return 0;
  case QCOW2_SC_UNALLOC_PLAIN:
  case QCOW2_SC_UNALLOC_ALLOC:
    if (!q->backing) {
      memset(buf, 0, r->length);
      return 0;
    }
    return qcow2_layer_pread(q->backing, buf, r->length, off);
  }
  return -EIO;
}

int qcow2_layer_pread(struct qcow2_image *q, uint8_t *buf, uint64_t count,
                      uint64_t off)
{
  /* A backing file shorter than its overlay reads as zeroes past its
   * end. */
  if (off >= q->size) {
    memset(buf, 0, count);
    return 0;
  }
  if (count > q->size - off) {
    memset(buf + (q->size - off), 0, count - (q->size - off));
    count = q->size - off;
  }
  if (q->fmt == QCOW2_FMT_RAW)
    return qcow2_pread_full(q->fd, buf, count, off);
  while (count) {
    struct qcow2_run r;
    int rc = qcow2_map(q, off, count, &r);
    if (rc < 0)
      return rc;
    if ((rc = read_run(q, &r, buf, off)) < 0)
      return rc;
    buf += r.length;
    off += r.length;
    count -= r.length;
  }
  return 0;
}

int qcow2_pread(struct qcow2_image *img, void *buf, uint64_t count,
                uint64_t offset)
{
  if (!range_within(offset, count, img->size))
    return -EINVAL;
  return qcow2_layer_pread(img, buf, count, offset);
}

/* All of [off, off+len) of fd from the page cache, or -EAGAIN.  A short
 * read (part cached, or the end of the file) is left to the blocking
 * path, which zero-fills past the end. */
static int pread_cached(struct qcow2_image *q, int fd, uint8_t *buf,
                        uint64_t len, uint64_t off)
{
  if (atomic_load_explicit(&q->no_nowait, memory_order_relaxed))
    return -EAGAIN;
  struct iovec iov = {buf, len};
  ssize_t n;
  do
    n = preadv2(fd, &iov, 1, (off_t)off, RWF_NOWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EOPNOTSUPP || errno == EINVAL)) {
    /* An old kernel or a file system without RWF_NOWAIT: stop trying. */
    atomic_store_explicit(&q->no_nowait, true, memory_order_relaxed);
    return -EAGAIN;
  }
  if (n < 0)
    return errno == EAGAIN ? -EAGAIN : -errno;
  return (uint64_t)n == len ? 0 : -EAGAIN;
}

static int layer_pread_nowait(struct qcow2_image *q, uint8_t *buf,
                              uint64_t count, uint64_t off)
{
  if (off >= q->size) {
    memset(buf, 0, count);
    return 0;
  }
  if (count > q->size - off) {
    memset(buf + (q->size - off), 0, count - (q->size - off));
    count = q->size - off;
  }
  if (q->fmt == QCOW2_FMT_RAW)
    return pread_cached(q, q->fd, buf, count, off);
  while (count) {
    struct qcow2_run r;
    int rc = qcow2_map_nowait(q, off, count, &r);
    if (rc < 0)
      return rc;
    switch (r.type) {
    case QCOW2_SC_NORMAL:
      rc = pread_cached(q, q->data_fd, buf, r.length, r.host);
      break;
    case QCOW2_SC_COMPRESSED: /* too much CPU work for the event loop */
      return -EAGAIN;
    case QCOW2_SC_UNALLOC_PLAIN:
    case QCOW2_SC_UNALLOC_ALLOC:
      if (q->backing) {
        rc = layer_pread_nowait(q->backing, buf, r.length, off);
        break;
      }
      /* fall through */
    case QCOW2_SC_ZERO_PLAIN:
    case QCOW2_SC_ZERO_ALLOC:
      memset(buf, 0, r.length);
      break;
    }
    if (rc < 0)
      return rc;
    buf += r.length;
    off += r.length;
    count -= r.length;
  }
  return 0;
}

int qcow2_pread_nowait(struct qcow2_image *img, void *buf, uint64_t count,
                       uint64_t offset)
{
  if (!range_within(offset, count, img->size))
    return -EINVAL;
  return layer_pread_nowait(img, buf, count, offset);
}

/* Walk the mapping of every layer under [off, off+count): the L2 slices
 * land in the cache; data ranges get a read-ahead hint. */
static int layer_prefetch(struct qcow2_image *q, uint64_t count, uint64_t off)
{
  if (off >= q->size)
    return 0;
  count = MIN(count, q->size - off);
  if (q->fmt == QCOW2_FMT_RAW)
    return -posix_fadvise(q->fd, (off_t)off, (off_t)count, POSIX_FADV_WILLNEED);
  while (count) {
    struct qcow2_run r;
    int rc = qcow2_map(q, off, count, &r);
    if (rc < 0)
      return rc;
    if (r.type == QCOW2_SC_NORMAL)
      posix_fadvise(q->data_fd, (off_t)r.host, (off_t)r.length,
                    POSIX_FADV_WILLNEED);
    else if ((r.type == QCOW2_SC_UNALLOC_PLAIN ||
              r.type == QCOW2_SC_UNALLOC_ALLOC) &&
             q->backing && (rc = layer_prefetch(q->backing, r.length, off)) < 0)
      return rc;
    off += r.length;
    count -= r.length;
  }
  return 0;
}

int qcow2_prefetch(struct qcow2_image *img, uint64_t count, uint64_t offset)
{
  if (!range_within(offset, count, img->size))
    return -EINVAL;
  return layer_prefetch(img, count, offset);
}

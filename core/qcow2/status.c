/* Block status through the backing chain, computed as QEMU does it
 * (block/io.c bdrv_co_do_block_status, block/qcow2.c
 * qcow2_co_block_status, block/file-posix.c): per layer, from the
 * cluster map, and from SEEK_DATA/SEEK_HOLE on raw files. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcow2-int.h"
#include "util/checked.h"
#include "util/log.h"

#define ST_EOF 0x100u /* internal: the answer reaches the end of file */

/* Status of a plain file at [off, off+len), as file-posix reports it:
 * data or zero (a hole), up to the next change. */
static unsigned file_status(int fd, uint64_t fsize, uint64_t off, uint64_t len,
                            uint64_t *pnum)
{
  if (off >= fsize) {
    *pnum = 0;
    return ST_EOF;
  }
  len = MIN(len, fsize - off);
  unsigned flags;
  off_t d = lseek(fd, (off_t)off, SEEK_DATA);
  if (d < 0 && errno == ENXIO) { /* a trailing hole */
    *pnum = len;
    flags = QCOW2_BS_ZERO;
  } else if (d < 0 || (uint64_t)d < off) { /* no information */
    *pnum = len;
    flags = QCOW2_BS_DATA;
  } else if ((uint64_t)d > off) { /* in a hole */
    *pnum = MIN(len, (uint64_t)d - off);
    flags = QCOW2_BS_ZERO;
  } else {
    off_t h = lseek(fd, (off_t)off, SEEK_HOLE);
    *pnum = h > (off_t)off ? MIN(len, (uint64_t)h - off) : len;
    flags = QCOW2_BS_DATA;
  }
  if (off + *pnum >= fsize)
    flags |= ST_EOF;
  return flags | QCOW2_BS_PRESENT | QCOW2_BS_OFFSET_VALID;
}

/* QEMU's qcow2_detect_metadata_preallocation: an image whose file holds
 * far fewer allocated clusters than the refcounts say is treated as
 * preallocated, and the file is asked where its holes are. */
static bool metadata_prealloc(struct qcow2_image *q)
{
  int state = atomic_load(&q->prealloc_state);
  if (state)
    return state == 2;
  pthread_mutex_lock(&q->prealloc_lock);
  if (!(state = atomic_load(&q->prealloc_state))) {
    struct stat st;
    state = 1;
    if (fstat(q->fd, &st) == 0) {
      uint64_t real = (uint64_t)st.st_blocks * 512 / q->cluster_size;
      uint64_t threshold = MAX(real * 10 / 9, real + 2);
      uint64_t end = (q->file_size + q->cluster_size - 1) / q->cluster_size;
      uint64_t n = 0, rc;
      for (uint64_t i = 0; i < end && n < threshold; i++) {
        if (qcow2_get_refcount(q, i, &rc) < 0)
          break;
        n += rc != 0;
      }
      state = n >= threshold ? 2 : 1;
    }
    atomic_store(&q->prealloc_state, state);
  }
  pthread_mutex_unlock(&q->prealloc_lock);
  return state == 2;
}

static int qcow2_status_of(struct qcow2_image *q, uint64_t off, uint64_t count,
                           bool want_zero, struct qcow2_status *st)
{
  struct qcow2_run r;
  int rc = qcow2_map(q, off, count, &r);
  if (rc < 0)
    return rc;
  st->length = r.length;
  st->host_offset = r.host;
  switch (r.type) {
  case QCOW2_SC_NORMAL:
    st->flags = QCOW2_BS_DATA | QCOW2_BS_PRESENT | QCOW2_BS_OFFSET_VALID;
    if (want_zero && metadata_prealloc(q)) {
      uint64_t pn;
      unsigned f = file_status(q->data_fd, q->data_size, r.host, r.length, &pn);
      if ((f & ST_EOF) && (!pn || (f & QCOW2_BS_ZERO)))
        st->flags |= QCOW2_BS_ZERO;
      else {
        st->length = pn;
        st->flags |= f & QCOW2_BS_ZERO;
      }
    }
    return 0;
  case QCOW2_SC_COMPRESSED:
    st->flags = QCOW2_BS_DATA | QCOW2_BS_PRESENT;
    return 0;
  case QCOW2_SC_ZERO_PLAIN:
    st->flags = QCOW2_BS_ZERO | QCOW2_BS_PRESENT;
    return 0;
  case QCOW2_SC_ZERO_ALLOC:
    st->flags = QCOW2_BS_ZERO | QCOW2_BS_PRESENT | QCOW2_BS_OFFSET_VALID;
    return 0;
  case QCOW2_SC_UNALLOC_ALLOC:
  case QCOW2_SC_UNALLOC_PLAIN:
    st->flags = r.type == QCOW2_SC_UNALLOC_ALLOC ? QCOW2_BS_OFFSET_VALID : 0;
    /* Nothing below, or below the end of a shorter backing file: reads
     * as zeroes (bdrv_co_do_block_status, supports_backing). */
    if (want_zero && (!q->backing || off >= q->backing->size))
      st->flags |= QCOW2_BS_ZERO;
    return 0;
  }
  return -EIO;
}

static int layer_status(struct qcow2_image *q, uint64_t off, uint64_t count,
                        bool want_zero, struct qcow2_status *st)
{
  st->depth = q->depth;
  st->file = q->data_name;
  count = MIN(count, q->size - off);
  if (q->fmt == QCOW2_FMT_RAW) {
    st->host_offset = off;
    if (!want_zero) {
      st->length = count;
      st->flags = QCOW2_BS_DATA | QCOW2_BS_PRESENT | QCOW2_BS_OFFSET_VALID;
      return 0;
    }
    st->flags =
        file_status(q->fd, q->file_size, off, count, &st->length) & ~ST_EOF;
    return 0;
  }
  return qcow2_status_of(q, off, count, want_zero, st);
}

int qcow2_block_status(struct qcow2_image *img, uint64_t offset, uint64_t count,
                       struct qcow2_status *st)
{
  if (!count || !range_within(offset, count, img->size))
    return -EINVAL;
  for (struct qcow2_image *l = img;; l = l->backing) {
    int r = layer_status(l, offset, count, true, st);
    if (r < 0)
      return r;
    count = st->length;
    if ((st->flags & (QCOW2_BS_DATA | QCOW2_BS_ZERO)) || !l->backing)
      return 0;
  }
}

int qcow2_allocation_depth(struct qcow2_image *img, uint64_t offset,
                           uint64_t count, uint64_t *len, unsigned *depth)
{
  if (!count || !range_within(offset, count, img->size))
    return -EINVAL;
  struct qcow2_status st;
  for (struct qcow2_image *l = img;; l = l->backing) {
    int r = layer_status(l, offset, count, false, &st);
    if (r < 0)
      return r;
    *len = count = st.length;
    if (st.flags & (QCOW2_BS_DATA | QCOW2_BS_ZERO)) {
      *depth = l->depth + 1;
      return 0;
    }
    if (!l->backing) {
      *depth = 0;
      return 0;
    }
    /* Past the end of a shorter backing file, the zeroes count as
     * allocated there (bdrv_co_common_block_status_above). */
    if (offset >= l->backing->size) {
      *depth = l->depth + 2;
      return 0;
    }
  }
}

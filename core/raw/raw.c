/* The raw backend: serves a regular file or a block device byte for
 * byte, zeroing and trimming with fallocate/ioctl and answering block
 * status with SEEK_DATA/SEEK_HOLE. */
#define _GNU_SOURCE
#include "raw/raw.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/checked.h"
#include "util/log.h"

/* Bounds on one call's work: the zero-writing fallback issues pwritev
 * of RAW_ZERO_IOV x sizeof raw_zeroes bytes, and block status stops
 * after RAW_EXTENT_STEPS seeks (the client asks again for the rest). */
#define RAW_ZERO_IOV     16
#define RAW_EXTENT_STEPS 512

static const char raw_zeroes[64 * 1024];

/* Shared by every connection (thread model PARALLEL): the fd is only
 * used with positioned calls, and what we learn about the file system
 * is kept in an atomic mask, so no lock is needed. */
struct raw_state {
  int fd;
  bool readonly;
  bool is_blkdev;
  bool rotational;
  atomic_uint unsupported; /* RAW_NO_* */
  char path[];
};

static bool raw_lacks(struct raw_state *s, unsigned feature)
{
  return atomic_load_explicit(&s->unsupported, memory_order_relaxed) & feature;
}

static void raw_mark_unsupported(struct raw_state *s, unsigned feature)
{
  unsigned old =
      atomic_fetch_or_explicit(&s->unsupported, feature, memory_order_relaxed);
  if (!(old & feature))
    log_debug("raw: %s: feature %#x not supported, not trying it again",
              s->path, feature);
}

void raw_disable_features(struct backend *b, unsigned mask)
{
  raw_mark_unsupported(b->priv, mask);
}

/* The kernel takes off_t: refuse ranges that do not fit (the server
 * checked them against get_size, so this is only a guard). */
static bool raw_range_ok(uint64_t count, uint64_t offset)
{
  uint64_t end;
  return !ckd_add(&end, offset, count) && end <= INT64_MAX;
}

static int raw_sync(struct raw_state *s)
{
  while (fdatasync(s->fd) < 0) {
    if (errno != EINTR)
      return -errno;
  }
  return 0;
}

static int raw_open(struct backend *b, const struct backend_conn_info *ci,
                    void **handle)
{
  *handle = b->priv;
  return 0;
}

static void raw_close(struct backend *b, void *h) {}

static int raw_get_size(void *h, uint64_t *size)
{
  struct raw_state *s = h;
  struct stat st;

  if (s->is_blkdev) {
    if (ioctl(s->fd, BLKGETSIZE64, size) < 0)
      return -errno;
    return 0;
  }
  /* Not cached: the file may be grown by someone else between
   * connections. */
  if (fstat(s->fd, &st) < 0)
    return -errno;
  *size = (uint64_t)st.st_size;
  return 0;
}

static int raw_caps(void *h, struct backend_caps *caps)
{
  struct raw_state *s = h;
  bool rw = !s->readonly;

  *caps = (struct backend_caps){
      .can_write = rw,
      .can_flush = true,
      .can_trim = rw,
      .can_zero = rw ? BACKEND_SUPPORT_NATIVE : BACKEND_SUPPORT_NONE,
      .can_fast_zero = rw,
      .can_fua = rw ? BACKEND_SUPPORT_NATIVE : BACKEND_SUPPORT_NONE,
      .can_cache = BACKEND_SUPPORT_NATIVE,
      .can_extents = true,
      /* One fd shared by all connections: a flush on one makes every
       * connection's completed writes durable (NBD_FLAG_CAN_MULTI_CONN). */
      .can_multi_conn = true,
      .is_rotational = s->rotational,
  };
  return 0;
}

static int raw_block_size(void *h, struct backend_block_size *bs)
{
  /* Buffered I/O accepts any alignment; 4096 avoids read-modify-write
   * of pages.  The maximum is left to the server. */
  *bs = (struct backend_block_size){.minimum = 1, .preferred = 4096};
  return 0;
}

static int raw_pread(void *h, void *buf, uint64_t count, uint64_t offset,
                     uint32_t flags)
{
  struct raw_state *s = h;
  char *p = buf;

  if (!raw_range_ok(count, offset))
    return -EINVAL;
  while (count > 0) {
    ssize_t r = pread(s->fd, p, count, (off_t)offset);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0) {
      /* End of file: the file shrank under us; what is gone reads as
       * zeroes rather than failing the request. */
      memset(p, 0, count);
      return 0;
    }
    p += r;
    count -= (uint64_t)r;
    offset += (uint64_t)r;
  }
  return 0;
}

/* The event loop's fast path: succeed only if the whole range is in
 * the page cache (RWF_NOWAIT), else -EAGAIN and the server retries on
 * a worker with raw_pread. */
static int raw_pread_nowait(void *h, void *buf, uint64_t count, uint64_t offset)
{
  struct raw_state *s = h;
  struct iovec iov = {buf, count};
  ssize_t r;

  if (raw_lacks(s, RAW_NO_NOWAIT) || !raw_range_ok(count, offset))
    return -EAGAIN;
  do
    r = preadv2(s->fd, &iov, 1, (off_t)offset, RWF_NOWAIT);
  while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EOPNOTSUPP || errno == EINVAL))
    raw_mark_unsupported(s, RAW_NO_NOWAIT);
  if (r < 0 && errno != EAGAIN && errno != EOPNOTSUPP && errno != EINVAL)
    return -errno;
  return r == (ssize_t)count ? 0 : -EAGAIN; /* partial: do it all later */
}

static int raw_pwrite(void *h, const void *buf, uint64_t count, uint64_t offset,
                      uint32_t flags)
{
  struct raw_state *s = h;
  const char *p = buf;

  if (s->readonly)
    return -EROFS;
  if (!raw_range_ok(count, offset))
    return -EINVAL;
  while (count > 0) {
    ssize_t r = pwrite(s->fd, p, count, (off_t)offset);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return -ENOSPC;
    p += r;
    count -= (uint64_t)r;
    offset += (uint64_t)r;
  }
  return (flags & BACKEND_FLAG_FUA) ? raw_sync(s) : 0;
}

static int raw_flush(void *h, uint32_t flags)
{
  return raw_sync(h);
}

/* Try one fallocate mode.  Returns 0, -EOPNOTSUPP when this mode does
 * not apply (remembered when the file system refuses it for good;
 * EINVAL, e.g. an unaligned range on a block device, only concerns this
 * request), or another negative errno. */
static int raw_try_fallocate(struct raw_state *s, int mode, unsigned feature,
                             uint64_t count, uint64_t offset)
{
  if (raw_lacks(s, feature))
    return -EOPNOTSUPP;
  while (fallocate(s->fd, mode, (off_t)offset, (off_t)count) < 0) {
    if (errno == EINTR)
      continue;
    if (errno == EOPNOTSUPP || errno == ENOSYS) {
      raw_mark_unsupported(s, feature);
      return -EOPNOTSUPP;
    }
    return errno == EINVAL ? -EOPNOTSUPP : -errno;
  }
  return 0;
}

static int raw_blkzeroout(struct raw_state *s, uint64_t count, uint64_t offset)
{
  uint64_t range[2] = {offset, count};

  if (raw_lacks(s, RAW_NO_BLKZEROOUT))
    return -EOPNOTSUPP;
  if (ioctl(s->fd, BLKZEROOUT, range) == 0)
    return 0;
  if (errno == ENOTTY || errno == EOPNOTSUPP) {
    raw_mark_unsupported(s, RAW_NO_BLKZEROOUT);
    return -EOPNOTSUPP;
  }
  /* EINVAL: not aligned to the logical block size. */
  return errno == EINVAL ? -EOPNOTSUPP : -errno;
}

/* The slow path: write zeroes from one static buffer, RAW_ZERO_IOV
 * times per call, so that many GiB cost no memory. */
static int raw_write_zeroes(struct raw_state *s, uint64_t count,
                            uint64_t offset)
{
  struct iovec iov[RAW_ZERO_IOV];

  while (count > 0) {
    uint64_t left = count;
    int n = 0;
    for (; n < RAW_ZERO_IOV && left > 0; n++) {
      size_t len = MIN(left, sizeof raw_zeroes);
      iov[n] = (struct iovec){(void *)raw_zeroes, len};
      left -= len;
    }
    ssize_t r = pwritev(s->fd, iov, n, (off_t)offset);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return -ENOSPC;
    count -= (uint64_t)r;
    offset += (uint64_t)r;
  }
  return 0;
}

/* Zero a range of a regular file without writing data: 0, -EOPNOTSUPP
 * when the file system offers no fast way, or an error. */
static int raw_zero_file_fast(struct raw_state *s, uint64_t count,
                              uint64_t offset)
{
  int r;

  r = raw_try_fallocate(s, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                        RAW_NO_ZERO_RANGE, count, offset);
  if (r != -EOPNOTSUPP || raw_lacks(s, RAW_NO_ALLOCATE))
    return r;
  /* No ZERO_RANGE (tmpfs, ...): punch a hole and allocate it again, so
   * that the range stays allocated as a request without MAY_TRIM
   * (NBD_CMD_FLAG_NO_HOLE) asks. */
  r = raw_try_fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        RAW_NO_PUNCH_HOLE, count, offset);
  if (r < 0)
    return r;
  /* If allocating fails the range is a hole: zero all the same, which
   * is what was asked; NO_HOLE is only a preference, and a later write
   * will report ENOSPC if that was the reason. */
  (void)raw_try_fallocate(s, FALLOC_FL_KEEP_SIZE, RAW_NO_ALLOCATE, count,
                          offset);
  return 0;
}

static int raw_zero_fast(struct raw_state *s, uint64_t count, uint64_t offset,
                         uint32_t flags)
{
  int r;

  if (flags & BACKEND_FLAG_MAY_TRIM) {
    /* Punched holes read as zeroes, on block devices too (the kernel
     * refuses rather than fall back to writing, so it is fast). */
    r = raw_try_fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          RAW_NO_PUNCH_HOLE, count, offset);
    if (r != -EOPNOTSUPP)
      return r;
  }
  if (!s->is_blkdev)
    return raw_zero_file_fast(s, count, offset);
  /* On a block device ZERO_RANGE and BLKZEROOUT may make the kernel
   * write zeroes itself, which is not the fast zero NBD_CMD_FLAG_FAST_ZERO
   * asks for (NBD spec, "Writing zeroes"). */
  if (flags & BACKEND_FLAG_FAST_ZERO)
    return -EOPNOTSUPP;
  r = raw_try_fallocate(s, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                        RAW_NO_ZERO_RANGE, count, offset);
  if (r != -EOPNOTSUPP)
    return r;
  return raw_blkzeroout(s, count, offset);
}

/* Checks shared by zero and trim: <0 an error, 0 nothing to do (an
 * empty range), 1 go on. */
static int raw_check_write(struct raw_state *s, uint64_t count, uint64_t offset)
{
  if (s->readonly)
    return -EROFS;
  if (!raw_range_ok(count, offset))
    return -EINVAL;
  return count > 0;
}

static int raw_zero(void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct raw_state *s = h;
  int r;

  if ((r = raw_check_write(s, count, offset)) <= 0)
    return r;
  r = raw_zero_fast(s, count, offset, flags);
  if (r == -EOPNOTSUPP) {
    if (flags & BACKEND_FLAG_FAST_ZERO)
      return -ENOTSUP;
    r = raw_write_zeroes(s, count, offset);
  }
  if (r == 0 && (flags & BACKEND_FLAG_FUA))
    r = raw_sync(s);
  return r;
}

static int raw_trim(void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct raw_state *s = h;
  int r;

  if ((r = raw_check_write(s, count, offset)) <= 0)
    return r;
  r = raw_try_fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        RAW_NO_PUNCH_HOLE, count, offset);
  /* NBD_CMD_TRIM is advisory: doing nothing is a valid answer. */
  if (r == -EOPNOTSUPP)
    r = 0;
  if (r == 0 && (flags & BACKEND_FLAG_FUA))
    r = raw_sync(s);
  return r;
}

static int raw_cache(void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct raw_state *s = h;

  if (!raw_range_ok(count, offset))
    return -EINVAL;
  /* posix_fadvise returns the error number instead of setting errno. */
  return -posix_fadvise(s->fd, (off_t)offset, (off_t)count,
                        POSIX_FADV_WILLNEED);
}

/* Block status from SEEK_DATA/SEEK_HOLE over [pos, end).  The file may
 * change while we look: every answer is re-checked for progress and the
 * number of seeks is bounded. */
static int raw_extents_seek(struct raw_state *s, uint64_t pos, uint64_t end,
                            uint32_t flags, struct extents *e)
{
  bool one = flags & BACKEND_FLAG_REQ_ONE;
  int r;

  for (unsigned step = 0; pos < end && step < RAW_EXTENT_STEPS; step++) {
    off_t data = lseek(s->fd, (off_t)pos, SEEK_DATA);
    if (data < 0) {
      if (errno == EINVAL || errno == EOPNOTSUPP) {
        raw_mark_unsupported(s, RAW_NO_SEEK_DATA);
        return extents_add(e, pos, end - pos, 0);
      }
      if (errno != ENXIO)
        return -errno;
      data = (off_t)end; /* ENXIO: no data from pos to end of file */
    }
    if ((uint64_t)data > pos) {
      uint64_t hole_end = MIN((uint64_t)data, end);
      r = extents_add(e, pos, hole_end - pos,
                      BACKEND_STATE_HOLE | BACKEND_STATE_ZERO);
      if (r < 0 || one)
        return r;
      pos = hole_end;
      if (pos >= end)
        break;
    }
    off_t hole = lseek(s->fd, (off_t)pos, SEEK_HOLE);
    if (hole < 0) {
      /* ENXIO: truncated since SEEK_DATA.  Data is always a safe
       * answer. */
      if (errno != ENXIO)
        return -errno;
      hole = (off_t)end;
    }
    if ((uint64_t)hole <= pos)
      continue; /* punched since SEEK_DATA: look again */
    uint64_t data_end = MIN((uint64_t)hole, end);
    r = extents_add(e, pos, data_end - pos, 0);
    if (r < 0 || one)
      return r;
    pos = data_end;
  }
  /* The caller needs at least one extent even if the file kept
   * changing under every seek. */
  if (extents_covered(e) == 0)
    return extents_add(e, pos, end - pos, 0);
  return 0;
}

static int raw_extents(void *h, unsigned ctx, uint64_t count, uint64_t offset,
                       uint32_t flags, struct extents *e)
{
  struct raw_state *s = h;

  if (ctx != 0 || !raw_range_ok(count, offset))
    return -EINVAL;
  if (count == 0)
    return 0;
  /* Block devices have no holes we can see: all data. */
  if (s->is_blkdev || raw_lacks(s, RAW_NO_SEEK_DATA))
    return extents_add(e, offset, count, 0);
  return raw_extents_seek(s, offset, offset + count, flags, e);
}

static void raw_destroy(struct backend *b)
{
  struct raw_state *s = b->priv;

  close(s->fd);
  free(s);
  free(b);
}

static const struct backend_ops raw_ops = {
    .name = "raw",
    .open = raw_open,
    .close = raw_close,
    .get_size = raw_get_size,
    .caps = raw_caps,
    .block_size = raw_block_size,
    .pread = raw_pread,
    .pread_nowait = raw_pread_nowait,
    .pwrite = raw_pwrite,
    .flush = raw_flush,
    .trim = raw_trim,
    .zero = raw_zero,
    .cache = raw_cache,
    .extents = raw_extents,
    .destroy = raw_destroy,
};

/* Whether the disk under st spins, from sysfs; partitions keep the
 * queue attributes in their parent's directory. */
static bool raw_is_rotational(const struct stat *st)
{
  dev_t dev = S_ISBLK(st->st_mode) ? st->st_rdev : st->st_dev;
  char path[2][96];

  snprintf(path[0], sizeof path[0], "/sys/dev/block/%u:%u/queue/rotational",
           major(dev), minor(dev));
  snprintf(path[1], sizeof path[1], "/sys/dev/block/%u:%u/../queue/rotational",
           major(dev), minor(dev));
  for (size_t i = 0; i < ARRAY_SIZE(path); i++) {
    FILE *f = fopen(path[i], "re");
    if (!f)
      continue;
    int c = fgetc(f);
    fclose(f);
    return c == '1';
  }
  return false;
}

int raw_backend_new(const char *path, bool readonly, struct backend **out)
{
  struct raw_state *s = NULL;
  struct backend *b = NULL;
  struct stat st;
  int fd, err;

  fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
    log_error("raw: cannot open %s: %s", path, strerror(err));
    return -err;
  }
  if (fstat(fd, &st) < 0) {
    err = errno;
    log_error("raw: cannot stat %s: %s", path, strerror(err));
    goto fail;
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    err = EINVAL;
    log_error("raw: %s is not a regular file or a block device", path);
    goto fail;
  }
  s = calloc(1, sizeof *s + strlen(path) + 1);
  b = calloc(1, sizeof *b);
  if (!s || !b) {
    err = ENOMEM;
    log_error("raw: %s: %s", path, strerror(err));
    goto fail;
  }
  s->fd = fd;
  s->readonly = readonly;
  s->is_blkdev = S_ISBLK(st.st_mode);
  s->rotational = raw_is_rotational(&st);
  atomic_init(&s->unsupported, 0);
  strcpy(s->path, path);
  *b = (struct backend){
      .ops = &raw_ops, .thread_model = BACKEND_PARALLEL, .priv = s};
  *out = b;
  return 0;

fail:
  free(s);
  free(b);
  close(fd);
  return -err;
}

/* Unit tests of the raw file backend (core/raw/raw.c) on files in a
 * private temporary directory: data, FUA, zero, trim, block status,
 * read-only mode and open errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "raw/raw.h"

#define KiB       1024u
#define MiB       (1024u * 1024u)
#define FILE_SIZE (8 * MiB)
#define ZEROED    (BACKEND_STATE_HOLE | BACKEND_STATE_ZERO)
#define PATH_LEN  512

static char tmpdir[256];
static char shmdir[] = "/dev/shm/qnbd-raw.XXXXXX";
static bool have_shmdir;

static int rm_one(const char *path, const struct stat *st, int type,
                  struct FTW *ftw)
{
  return remove(path);
}

static void rm_tmpdir(void)
{
  if (tmpdir[0])
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  if (have_shmdir)
    nftw(shmdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Create a sparse file of size bytes under dir; its name goes to path. */
static void make_file(char path[static PATH_LEN], const char *dir,
                      const char *name, off_t size)
{
  int fd;

  snprintf(path, PATH_LEN, "%s/%s", dir, name);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CHECK(fd >= 0);
  CHECK(ftruncate(fd, size) == 0);
  close(fd);
}

static uint64_t blocks_of(const char *path)
{
  struct stat st;
  CHECK(stat(path, &st) == 0);
  return (uint64_t)st.st_blocks;
}

/* Whether the file system under dir punches holes and reports them
 * with SEEK_HOLE (probed directly, not through the backend). */
static bool fs_punches(const char *dir)
{
  char p[PATH_LEN];
  int fd;
  bool ok;

  make_file(p, dir, "probe", 0);
  fd = open(p, O_RDWR | O_CLOEXEC);
  CHECK(fd >= 0);
  CHECK(pwrite(fd, "x", 1, 65536) == 1);
  ok = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536, 4096) ==
           0 &&
       lseek(fd, 0, SEEK_HOLE) == 0;
  close(fd);
  unlink(p);
  return ok;
}

static void fill(char *buf, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    buf[i] = (char)(seed + i * 7 + (i >> 9));
}

static bool all_zero(const char *buf, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (buf[i])
      return false;
  }
  return true;
}

static void query(struct backend *b, void *h, uint64_t off, uint64_t len,
                  uint32_t flags, struct extents *e)
{
  extents_init(e, off, off + len);
  CHECK_OK(b->ops->extents(h, 0, len, off, flags, e));
  CHECK(e->v.len >= 1);
  CHECK_EQ(e->v.ptr[0].offset, off);
}

/* The state of byte off according to a fresh block-status query. */
static uint32_t state_at(struct backend *b, void *h, uint64_t off)
{
  struct extents e;
  query(b, h, off, 1, BACKEND_FLAG_REQ_ONE, &e);
  uint32_t flags = e.v.ptr[0].flags;
  extents_free(&e);
  return flags;
}

static void test_open_errors(void)
{
  struct backend *b = NULL;
  char path[512];

  snprintf(path, sizeof path, "%s/missing", tmpdir);
  CHECK_ERR(raw_backend_new(path, false, &b), ENOENT);
  CHECK_ERR(raw_backend_new(path, true, &b), ENOENT);
  CHECK_ERR(raw_backend_new(tmpdir, false, &b), EISDIR);
  /* Read-only a directory opens, but is not a disk. */
  CHECK_ERR(raw_backend_new(tmpdir, true, &b), EINVAL);
  CHECK(b == NULL);
}

static void test_read_write(void)
{
  char path[PATH_LEN];
  struct backend *b;
  struct backend_caps caps;
  struct backend_block_size bs;
  uint64_t size;
  void *h;
  static char buf[300 * KiB], out[300 * KiB];

  make_file(path, tmpdir, "rw", FILE_SIZE);
  CHECK_OK(raw_backend_new(path, false, &b));
  CHECK_EQ(b->thread_model, BACKEND_PARALLEL);
  CHECK_OK(b->ops->open(b, NULL, &h));
  CHECK_OK(b->ops->get_size(h, &size));
  CHECK_EQ(size, FILE_SIZE);
  CHECK_OK(b->ops->caps(h, &caps));
  CHECK(caps.can_write && caps.can_flush && caps.can_trim);
  CHECK(caps.can_extents && caps.can_multi_conn && caps.can_fast_zero);
  CHECK_EQ(caps.can_zero, BACKEND_SUPPORT_NATIVE);
  CHECK_EQ(caps.can_fua, BACKEND_SUPPORT_NATIVE);
  CHECK_EQ(caps.can_cache, BACKEND_SUPPORT_NATIVE);
  CHECK_OK(b->ops->block_size(h, &bs));
  CHECK_EQ(bs.minimum, 1);
  CHECK_EQ(bs.preferred, 4096);

  /* Unaligned write, plain and FUA, read back exactly. */
  fill(buf, sizeof buf, 1);
  CHECK_OK(b->ops->pwrite(h, buf, 100000, MiB + 13, 0));
  CHECK_OK(b->ops->pread(h, out, 100000, MiB + 13, 0));
  CHECK(memcmp(buf, out, 100000) == 0);
  fill(buf, sizeof buf, 2);
  CHECK_OK(b->ops->pwrite(h, buf, sizeof buf, 4 * MiB, BACKEND_FLAG_FUA));
  CHECK_OK(b->ops->pread(h, out, sizeof buf, 4 * MiB, 0));
  CHECK(memcmp(buf, out, sizeof buf) == 0);
  /* The last byte of the disk, and never-written parts read zero. */
  CHECK_OK(b->ops->pwrite(h, "Z", 1, FILE_SIZE - 1, BACKEND_FLAG_FUA));
  CHECK_OK(b->ops->pread(h, out, 4096, FILE_SIZE - 4096, 0));
  CHECK(all_zero(out, 4095) && out[4095] == 'Z');
  CHECK_OK(b->ops->pread(h, out, sizeof out, 0, 0));
  CHECK(all_zero(out, sizeof out));
  CHECK_OK(b->ops->flush(h, 0));
  CHECK_OK(b->ops->cache(h, MiB, 0, 0));

  /* What a second open of the file sees: the same bytes. */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  CHECK(pread(fd, out, sizeof buf, 4 * MiB) == (ssize_t)sizeof buf);
  CHECK(memcmp(buf, out, sizeof buf) == 0);
  close(fd);

  /* The file shrinks under us: the part now past EOF reads as zeroes,
   * and get_size follows the file. */
  CHECK(truncate(path, 4 * MiB + 100) == 0);
  CHECK_OK(b->ops->pread(h, out, 4096, 4 * MiB, 0));
  CHECK(memcmp(out, buf, 100) == 0 && all_zero(out + 100, 4096 - 100));
  CHECK_OK(b->ops->get_size(h, &size));
  CHECK_EQ(size, 4 * MiB + 100);
  b->ops->close(b, h);
  b->ops->destroy(b);
}

static void test_extents_sparse(void)
{
  char path[PATH_LEN];
  struct backend *b;
  struct extents e;
  static char buf[100013];
  void *h;

  if (!fs_punches(tmpdir)) {
    printf("# %s has no holes: skipping the sparse extents test\n", tmpdir);
    return;
  }
  make_file(path, tmpdir, "sparse", FILE_SIZE);
  CHECK_OK(raw_backend_new(path, false, &b));
  CHECK_OK(b->ops->open(b, NULL, &h));
  /* A fresh ftruncate'd file: one hole. */
  query(b, h, 0, FILE_SIZE, 0, &e);
  CHECK_EQ(e.v.len, 1);
  CHECK_EQ(e.v.ptr[0].length, FILE_SIZE);
  CHECK_EQ(e.v.ptr[0].flags, ZEROED);
  extents_free(&e);

  /* hole [0, 1M), data around [1M, 1M+100013), hole to the end. */
  fill(buf, sizeof buf, 3);
  CHECK_OK(b->ops->pwrite(h, buf, sizeof buf, MiB, 0));
  query(b, h, 0, FILE_SIZE, 0, &e);
  CHECK_EQ(e.v.len, 3);
  CHECK_EQ(e.v.ptr[0].length, MiB);
  CHECK_EQ(e.v.ptr[0].flags, ZEROED);
  CHECK_EQ(e.v.ptr[1].offset, MiB);
  CHECK_EQ(e.v.ptr[1].flags, 0);
  CHECK(e.v.ptr[1].length >= sizeof buf);
  CHECK_EQ(e.v.ptr[2].flags, ZEROED);
  CHECK_EQ(e.v.ptr[2].offset + e.v.ptr[2].length, FILE_SIZE);
  CHECK_EQ(extents_covered(&e), FILE_SIZE);
  extents_free(&e);

  /* REQ_ONE: one extent, from a query start inside a hole or data. */
  query(b, h, 4096, FILE_SIZE - 4096, BACKEND_FLAG_REQ_ONE, &e);
  CHECK_EQ(e.v.len, 1);
  CHECK_EQ(e.v.ptr[0].length, MiB - 4096);
  CHECK_EQ(e.v.ptr[0].flags, ZEROED);
  extents_free(&e);
  query(b, h, MiB + 50000, 4096, BACKEND_FLAG_REQ_ONE, &e);
  CHECK_EQ(e.v.len, 1);
  CHECK_EQ(e.v.ptr[0].length, 4096);
  CHECK_EQ(e.v.ptr[0].flags, 0);
  extents_free(&e);

  /* Without SEEK_DATA everything is data. */
  raw_disable_features(b, RAW_NO_SEEK_DATA);
  query(b, h, 0, FILE_SIZE, 0, &e);
  CHECK_EQ(e.v.len, 1);
  CHECK_EQ(e.v.ptr[0].length, FILE_SIZE);
  CHECK_EQ(e.v.ptr[0].flags, 0);
  extents_free(&e);
  b->ops->destroy(b);
}

/* Many alternating data/hole blocks: one call does bounded work, and
 * asking again from where it stopped covers the rest correctly. */
static void test_extents_bounded(void)
{
  const uint64_t n = 4000, size = n * 4096;
  char path[PATH_LEN];
  struct backend *b;
  void *h;
  uint64_t pos = 0;
  unsigned calls = 0;

  if (!fs_punches(tmpdir)) {
    printf("# %s has no holes: skipping the bounded extents test\n", tmpdir);
    return;
  }
  make_file(path, tmpdir, "striped", (off_t)size);
  CHECK_OK(raw_backend_new(path, false, &b));
  CHECK_OK(b->ops->open(b, NULL, &h));
  for (uint64_t i = 0; i < n; i += 2)
    CHECK_OK(b->ops->pwrite(h, "d", 1, i * 4096, 0));
  while (pos < size) {
    struct extents e;
    query(b, h, pos, size - pos, 0, &e);
    CHECK(e.v.len <= 2 * 512);
    for (size_t i = 0; i < e.v.len; i++) {
      uint64_t blk = e.v.ptr[i].offset / 4096;
      CHECK_EQ(e.v.ptr[i].offset % 4096, 0);
      CHECK_EQ(e.v.ptr[i].length, 4096);
      CHECK_EQ(e.v.ptr[i].flags, (blk & 1) ? ZEROED : 0);
    }
    pos += extents_covered(&e);
    extents_free(&e);
    calls++;
  }
  CHECK(calls >= 4); /* the bound did cut the answer */
  b->ops->destroy(b);
}

static void write_pattern(struct backend *b, void *h, uint64_t off, size_t len,
                          unsigned seed)
{
  static char buf[4 * MiB];
  CHECK(len <= sizeof buf);
  fill(buf, len, seed);
  CHECK_OK(b->ops->pwrite(h, buf, len, off, 0));
}

/* [off, off+len) reads zero and the len bytes around it still hold the
 * pattern of seed written at base. */
static void check_zeroed(struct backend *b, void *h, uint64_t base,
                         unsigned seed, uint64_t off, uint64_t len)
{
  static char want[4 * MiB], got[4 * MiB];
  uint64_t around = 4096;
  uint64_t start = off - around, n = len + 2 * around;

  CHECK(start >= base && n <= sizeof got);
  fill(want, sizeof want, seed);
  memset(want + (off - base), 0, len);
  CHECK_OK(b->ops->pread(h, got, n, start, 0));
  CHECK(memcmp(got, want + (start - base), n) == 0);
}

/* [off, off+len) still holds the pattern of seed written at base. */
static void check_intact(struct backend *b, void *h, uint64_t base,
                         unsigned seed, uint64_t off, uint64_t len)
{
  static char want[4 * MiB], got[4 * MiB];

  CHECK(off >= base && off - base + len <= sizeof want);
  fill(want, sizeof want, seed);
  CHECK_OK(b->ops->pread(h, got, len, off, 0));
  CHECK(memcmp(got, want + (off - base), len) == 0);
}

static void test_zero_trim(void)
{
  char path[PATH_LEN];
  bool punch = fs_punches(tmpdir);
  struct backend *b;
  uint64_t blocks;
  void *h;

  make_file(path, tmpdir, "zero", FILE_SIZE);
  CHECK_OK(raw_backend_new(path, false, &b));
  CHECK_OK(b->ops->open(b, NULL, &h));
  write_pattern(b, h, 0, 4 * MiB, 5);

  /* Without MAY_TRIM: zeroes, and the blocks stay allocated. */
  blocks = blocks_of(path);
  CHECK_OK(b->ops->zero(h, 64 * KiB, MiB, 0));
  check_zeroed(b, h, 0, 5, MiB, 64 * KiB);
  CHECK(blocks_of(path) >= blocks);
  /* Unaligned, with FUA. */
  CHECK_OK(b->ops->zero(h, 1000, MiB + 200 * KiB + 3, BACKEND_FLAG_FUA));
  check_zeroed(b, h, 0, 5, MiB + 200 * KiB + 3, 1000);
  /* Fast zero is available on a file system with ZERO_RANGE. */
  CHECK_OK(b->ops->zero(h, 8 * KiB, 3 * MiB, BACKEND_FLAG_FAST_ZERO));
  check_zeroed(b, h, 0, 5, 3 * MiB, 8 * KiB);

  /* With MAY_TRIM: a hole where the file system punches. */
  blocks = blocks_of(path);
  CHECK_OK(b->ops->zero(h, 128 * KiB, 2 * MiB, BACKEND_FLAG_MAY_TRIM));
  check_zeroed(b, h, 0, 5, 2 * MiB, 128 * KiB);
  if (punch) {
    CHECK(blocks_of(path) < blocks);
    CHECK_EQ(state_at(b, h, 2 * MiB), ZEROED);
    CHECK_EQ(state_at(b, h, 2 * MiB + 128 * KiB - 1), ZEROED);
    CHECK_EQ(state_at(b, h, 2 * MiB + 128 * KiB), 0);
  }
  /* Unaligned MAY_TRIM: the partial blocks are zeroed, not lost. */
  CHECK_OK(b->ops->zero(h, 10000, 2 * MiB + 512 * KiB + 77,
                        BACKEND_FLAG_MAY_TRIM | BACKEND_FLAG_FAST_ZERO));
  check_zeroed(b, h, 0, 5, 2 * MiB + 512 * KiB + 77, 10000);

  /* Trim deallocates; data outside the range is untouched. */
  blocks = blocks_of(path);
  CHECK_OK(b->ops->trim(h, 256 * KiB, 256 * KiB, BACKEND_FLAG_FUA));
  if (punch) {
    CHECK(blocks_of(path) < blocks);
    CHECK_EQ(state_at(b, h, 256 * KiB), ZEROED);
    check_zeroed(b, h, 0, 5, 256 * KiB, 256 * KiB);
  }
  /* Unaligned trim: the bytes around the range are kept (what it
   * leaves inside is unspecified by NBD; punching gives zeroes). */
  CHECK_OK(b->ops->trim(h, 5000, 700 * KiB + 1, 0));
  check_zeroed(b, h, 0, 5, 700 * KiB + 1, punch ? 5000 : 0);
  b->ops->destroy(b);
}

/* With no fast way to zero: FAST_ZERO fails with ENOTSUP and changes
 * nothing, plain zero writes zeroes (over several chunks), trim is a
 * successful no-op. */
static void test_zero_fallback(void)
{
  char path[PATH_LEN];
  struct backend *b;
  void *h;

  make_file(path, tmpdir, "slow", FILE_SIZE);
  CHECK_OK(raw_backend_new(path, false, &b));
  CHECK_OK(b->ops->open(b, NULL, &h));
  write_pattern(b, h, 0, 4 * MiB, 9);
  raw_disable_features(b, RAW_NO_PUNCH_HOLE | RAW_NO_ZERO_RANGE |
                              RAW_NO_ALLOCATE | RAW_NO_BLKZEROOUT);
  CHECK_ERR(
      b->ops->zero(h, MiB, MiB, BACKEND_FLAG_FAST_ZERO | BACKEND_FLAG_MAY_TRIM),
      ENOTSUP);
  check_intact(b, h, 0, 9, 0, 4 * MiB);
  CHECK_OK(b->ops->zero(h, 3 * MiB - 5, 4096 + 3,
                        BACKEND_FLAG_MAY_TRIM | BACKEND_FLAG_FUA));
  check_zeroed(b, h, 0, 9, 4096 + 3, 3 * MiB - 5);
  /* The range now holds written zeroes: data, not a hole. */
  CHECK_EQ(state_at(b, h, MiB), 0);
  CHECK_OK(b->ops->trim(h, 64 * KiB, 3 * MiB + 64 * KiB, 0));
  check_intact(b, h, 0, 9, 3 * MiB + 64 * KiB - 10, 64 * KiB + 20);
  b->ops->destroy(b);
}

/* tmpfs punches holes but has no ZERO_RANGE: zero without MAY_TRIM
 * punches and allocates again. */
static void test_zero_tmpfs(void)
{
  struct statfs sfs;
  char path[PATH_LEN];
  struct backend *b;
  uint64_t blocks;
  void *h;

  if (statfs("/dev/shm", &sfs) < 0 || sfs.f_type != 0x01021994 /* tmpfs */ ||
      !mkdtemp(shmdir)) {
    printf("# no tmpfs at /dev/shm: skipping its zero test\n");
    return;
  }
  have_shmdir = true;
  make_file(path, shmdir, "t", FILE_SIZE);
  CHECK_OK(raw_backend_new(path, false, &b));
  CHECK_OK(b->ops->open(b, NULL, &h));
  write_pattern(b, h, 0, 2 * MiB, 11);
  blocks = blocks_of(path);
  CHECK_OK(b->ops->zero(h, 256 * KiB, 512 * KiB, BACKEND_FLAG_FAST_ZERO));
  check_zeroed(b, h, 0, 11, 512 * KiB, 256 * KiB);
  CHECK_EQ(blocks_of(path), blocks);
  CHECK_OK(b->ops->zero(h, 256 * KiB, MiB, BACKEND_FLAG_MAY_TRIM));
  check_zeroed(b, h, 0, 11, MiB, 256 * KiB);
  CHECK(blocks_of(path) < blocks);
  CHECK_EQ(state_at(b, h, MiB), ZEROED);
  b->ops->destroy(b);
}

static void test_readonly(void)
{
  char path[PATH_LEN];
  struct backend *b;
  struct backend_caps caps;
  static char buf[64 * KiB];
  int fd;
  void *h;

  make_file(path, tmpdir, "ro", FILE_SIZE);
  fd = open(path, O_WRONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  CHECK(pwrite(fd, "data", 4, 0) == 4);
  close(fd);
  CHECK_OK(raw_backend_new(path, true, &b));
  CHECK_OK(b->ops->open(b, NULL, &h));
  CHECK_OK(b->ops->caps(h, &caps));
  CHECK(!caps.can_write && !caps.can_trim && !caps.can_fast_zero);
  CHECK_EQ(caps.can_zero, BACKEND_SUPPORT_NONE);
  CHECK_EQ(caps.can_fua, BACKEND_SUPPORT_NONE);
  CHECK(caps.can_extents);
  CHECK_ERR(b->ops->pwrite(h, "x", 1, 0, 0), EROFS);
  CHECK_ERR(b->ops->zero(h, 4096, 0, BACKEND_FLAG_MAY_TRIM), EROFS);
  CHECK_ERR(b->ops->trim(h, 4096, 0, 0), EROFS);
  CHECK_OK(b->ops->pread(h, buf, sizeof buf, 0, 0));
  CHECK(memcmp(buf, "data", 4) == 0 && all_zero(buf + 4, sizeof buf - 4));
  b->ops->destroy(b);
}

/* Attach file to a free loop device that goes away when its last fd
 * closes (LO_FLAGS_AUTOCLEAR).  Returns an open fd and the device path,
 * or -1 when loop devices are not available here. */
static int attach_loop(const char *file, char dev[static PATH_LEN])
{
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  int ffd = open(file, O_RDWR | O_CLOEXEC);
  int lfd = -1;

  CHECK(ffd >= 0);
  /* Another process may grab the same free device: try again. */
  for (int tries = 0; ctl >= 0 && lfd < 0 && tries < 5; tries++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0)
      break;
    snprintf(dev, PATH_LEN, "/dev/loop%d", n);
    lfd = open(dev, O_RDWR | O_CLOEXEC);
    if (lfd < 0)
      break;
    struct loop_config cfg = {.fd = (uint32_t)ffd};
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    if (ioctl(lfd, LOOP_CONFIGURE, &cfg) < 0) {
      close(lfd);
      lfd = -1;
      if (errno != EBUSY)
        break;
    }
  }
  if (ctl >= 0)
    close(ctl);
  close(ffd);
  return lfd;
}

/* A block device: BLKGETSIZE64, all-data extents, zeroing through
 * PUNCH_HOLE, ZERO_RANGE, BLKZEROOUT and written zeroes. */
static void test_block_device(void)
{
  char file[PATH_LEN], dev[PATH_LEN];
  struct backend *b;
  struct extents e;
  uint64_t size;
  void *h;
  int lfd;

  make_file(file, tmpdir, "loop", FILE_SIZE);
  lfd = attach_loop(file, dev);
  if (lfd < 0) {
    printf("# no loop device (%s): skipping the block device test\n",
           strerror(errno));
    return;
  }
  CHECK_OK(raw_backend_new(dev, false, &b));
  close(lfd); /* the backend's fd keeps the device attached */
  CHECK_OK(b->ops->open(b, NULL, &h));
  CHECK_OK(b->ops->get_size(h, &size));
  CHECK_EQ(size, FILE_SIZE);
  write_pattern(b, h, 0, 4 * MiB, 13);
  check_intact(b, h, 0, 13, 0, 4 * MiB);
  query(b, h, 0, FILE_SIZE, 0, &e);
  CHECK_EQ(e.v.len, 1);
  CHECK_EQ(e.v.ptr[0].length, FILE_SIZE);
  CHECK_EQ(e.v.ptr[0].flags, 0);
  extents_free(&e);

  /* ZERO_RANGE and BLKZEROOUT may write zeroes in the kernel: not fast. */
  CHECK_ERR(b->ops->zero(h, 64 * KiB, MiB, BACKEND_FLAG_FAST_ZERO), ENOTSUP);
  check_intact(b, h, 0, 13, MiB, 64 * KiB);
  CHECK_OK(b->ops->zero(h, 64 * KiB, MiB, 0));
  check_zeroed(b, h, 0, 13, MiB, 64 * KiB);
  CHECK_OK(b->ops->zero(h, 64 * KiB, 2 * MiB,
                        BACKEND_FLAG_MAY_TRIM | BACKEND_FLAG_FAST_ZERO));
  check_zeroed(b, h, 0, 13, 2 * MiB, 64 * KiB);
  CHECK_OK(b->ops->trim(h, 64 * KiB, 3 * MiB, BACKEND_FLAG_FUA));
  check_intact(b, h, 0, 13, 3 * MiB - 4096, 4096);
  check_intact(b, h, 0, 13, 3 * MiB + 64 * KiB, 4096);

  /* BLKZEROOUT (aligned), then written zeroes (unaligned). */
  raw_disable_features(b, RAW_NO_PUNCH_HOLE | RAW_NO_ZERO_RANGE);
  CHECK_OK(b->ops->zero(h, 128 * KiB, 512 * KiB, BACKEND_FLAG_MAY_TRIM));
  check_zeroed(b, h, 0, 13, 512 * KiB, 128 * KiB);
  CHECK_OK(b->ops->zero(h, 3001, 1536 * KiB + 7, BACKEND_FLAG_FUA));
  check_zeroed(b, h, 0, 13, 1536 * KiB + 7, 3001);
  CHECK_OK(b->ops->flush(h, 0));
  b->ops->destroy(b);
}

int main(void)
{
  const char *t = getenv("TMPDIR");

  snprintf(tmpdir, sizeof tmpdir, "%s/qnbd-raw.XXXXXX", t && *t ? t : "/tmp");
  CHECK(mkdtemp(tmpdir) != NULL);
  atexit(rm_tmpdir);
  RUN(test_open_errors);
  RUN(test_read_write);
  RUN(test_extents_sparse);
  RUN(test_extents_bounded);
  RUN(test_zero_trim);
  RUN(test_zero_fallback);
  RUN(test_zero_tmpfs);
  RUN(test_readonly);
  RUN(test_block_device);
  return 0;
}

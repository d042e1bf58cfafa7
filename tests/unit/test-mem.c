/* Unit tests of the memory backend (core/mem/mem.c): huge sparse disks
 * cost no memory, data, zero and trim, block status, and concurrent
 * readers and writers on shared and private pages. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "util/checked.h"

#define KiB    UINT64_C(1024)
#define MiB    (1024 * KiB)
#define GiB    (1024 * MiB)
#define TiB    (1024 * GiB)
#define PAGE   (64 * KiB)
#define ZEROED (BACKEND_STATE_HOLE | BACKEND_STATE_ZERO)

static uint64_t rss_bytes(void)
{
  unsigned long size, resident;
  FILE *f = fopen("/proc/self/statm", "re");

  CHECK(f != NULL);
  CHECK(fscanf(f, "%lu %lu", &size, &resident) == 2);
  fclose(f);
  return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Bytes malloc has handed out (glibc's view; sanitizers bypass it). */
static uint64_t heap_bytes(void)
{
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

static struct backend *new_disk(uint64_t size, void **h)
{
  struct backend *b = NULL;
  uint64_t got;

  CHECK_OK(mem_backend_new(size, &b));
  CHECK_EQ(b->thread_model, BACKEND_PARALLEL);
  CHECK_OK(b->ops->open(b, NULL, h));
  CHECK_OK(b->ops->get_size(*h, &got));
  CHECK_EQ(got, size);
  return b;
}

static void fill(char *buf, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    buf[i] = (char)(seed + i * 13 + (i >> 8) + 1);
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

static uint32_t state_at(struct backend *b, void *h, uint64_t off)
{
  struct extents e;
  query(b, h, off, 1, BACKEND_FLAG_REQ_ONE, &e);
  uint32_t flags = e.v.ptr[0].flags;
  extents_free(&e);
  return flags;
}

static void check_extent(const struct extents *e, size_t i, uint64_t offset,
                         uint64_t length, uint32_t flags)
{
  CHECK(i < e->v.len);
  CHECK_EQ(e->v.ptr[i].offset, offset);
  CHECK_EQ(e->v.ptr[i].length, length);
  CHECK_EQ(e->v.ptr[i].flags, flags);
}

static void test_caps_limits(void)
{
  struct backend *b = NULL;
  struct backend_caps caps;
  void *h;
  char c;

  CHECK_ERR(mem_backend_new((UINT64_C(1) << 62) + 1, &b), EINVAL);
  CHECK_ERR(mem_backend_new(UINT64_MAX, &b), EINVAL);
  CHECK(b == NULL);

  b = new_disk(0, &h);
  CHECK_ERR(b->ops->pread(h, &c, 1, 0, 0), EINVAL);
  b->ops->destroy(b);

  b = new_disk(MiB, &h);
  CHECK_OK(b->ops->caps(h, &caps));
  CHECK(caps.can_write && caps.can_flush && caps.can_trim);
  CHECK(caps.can_fast_zero && caps.can_extents && caps.can_multi_conn);
  CHECK_EQ(caps.can_zero, BACKEND_SUPPORT_NATIVE);
  CHECK_EQ(caps.can_fua, BACKEND_SUPPORT_NATIVE);
  CHECK_EQ(caps.can_cache, BACKEND_SUPPORT_NATIVE);
  CHECK_ERR(b->ops->pread(h, &c, 2, MiB - 1, 0), EINVAL);
  CHECK_ERR(b->ops->pwrite(h, "ab", 2, MiB - 1, 0), EINVAL);
  CHECK_ERR(b->ops->pwrite(h, "ab", 2, UINT64_MAX, 0), EINVAL);
  CHECK_ERR(b->ops->zero(h, 2, MiB - 1, 0), EINVAL);
  CHECK_ERR(b->ops->trim(h, UINT64_MAX, 1, 0), EINVAL);
  CHECK_OK(b->ops->flush(h, 0));
  CHECK_OK(b->ops->cache(h, MiB, 0, 0));
  b->ops->destroy(b);
}

/* The largest disk: four levels of tables, bytes at both ends. */
static void test_max_size(void)
{
  const uint64_t size = UINT64_C(1) << 62;
  struct extents e;
  char c = 0;
  void *h;
  struct backend *b = new_disk(size, &h);

  CHECK_OK(b->ops->pwrite(h, "E", 1, size - 1, 0));
  CHECK_OK(b->ops->pwrite(h, "M", 1, size / 2 + 5, BACKEND_FLAG_FUA));
  CHECK_OK(b->ops->pread(h, &c, 1, size - 1, 0));
  CHECK_EQ(c, 'E');
  CHECK_OK(b->ops->pread(h, &c, 1, size / 2 + 5, 0));
  CHECK_EQ(c, 'M');
  CHECK_OK(b->ops->pread(h, &c, 1, size / 2 + 4, 0));
  CHECK_EQ(c, 0);
  query(b, h, 0, size, 0, &e);
  CHECK_EQ(e.v.len, 4);
  check_extent(&e, 0, 0, size / 2, ZEROED);
  check_extent(&e, 1, size / 2, PAGE, 0);
  check_extent(&e, 2, size / 2 + PAGE, size / 2 - 2 * PAGE, ZEROED);
  check_extent(&e, 3, size - PAGE, PAGE, 0);
  extents_free(&e);
  CHECK_OK(b->ops->trim(h, size, 0, 0));
  query(b, h, 0, size, 0, &e);
  CHECK_EQ(e.v.len, 1);
  check_extent(&e, 0, 0, size, ZEROED);
  extents_free(&e);
  b->ops->destroy(b);
}

/* 1 TiB costs nothing until written, and a few pages far apart cost
 * about what they hold. */
static void test_sparse_tib(void)
{
  static char buf[PAGE], out[PAGE];
  static const uint64_t offs[] = {0, 300 * GiB + 5, 777 * GiB - 3, TiB - PAGE};
  uint64_t rss0 = rss_bytes(), heap0 = heap_bytes();
  struct extents e;
  void *h;
  struct backend *b = new_disk(TiB, &h);

  for (size_t i = 0; i < 4; i++) {
    fill(buf, sizeof buf, (unsigned)i);
    CHECK_OK(b->ops->pwrite(h, buf, PAGE, offs[i], 0));
  }
  for (size_t i = 0; i < 4; i++) {
    fill(buf, sizeof buf, (unsigned)i);
    CHECK_OK(b->ops->pread(h, out, PAGE, offs[i], 0));
    CHECK(memcmp(buf, out, PAGE) == 0);
  }
  /* 6 pages and a few 32 KiB tables: far below 16 MiB. */
  CHECK(rss_bytes() < rss0 + 16 * MiB);
  CHECK(heap_bytes() < heap0 + 4 * MiB);

  query(b, h, 0, TiB, 0, &e);
  CHECK_EQ(e.v.len, 7);
  check_extent(&e, 0, 0, PAGE, 0);
  check_extent(&e, 1, PAGE, 300 * GiB - PAGE, ZEROED);
  check_extent(&e, 2, 300 * GiB, 2 * PAGE, 0);
  check_extent(&e, 3, 300 * GiB + 2 * PAGE, 477 * GiB - 3 * PAGE, ZEROED);
  check_extent(&e, 4, 777 * GiB - PAGE, 2 * PAGE, 0);
  check_extent(&e, 5, 777 * GiB + PAGE, 247 * GiB - 2 * PAGE, ZEROED);
  check_extent(&e, 6, TiB - PAGE, PAGE, 0);
  extents_free(&e);

  /* Zero with MAY_TRIM over everything frees everything. */
  CHECK_OK(b->ops->zero(h, TiB, 0, BACKEND_FLAG_MAY_TRIM));
  query(b, h, 0, TiB, 0, &e);
  CHECK_EQ(e.v.len, 1);
  check_extent(&e, 0, 0, TiB, ZEROED);
  extents_free(&e);
  CHECK_OK(b->ops->pread(h, out, PAGE, offs[1], 0));
  CHECK(all_zero(out, PAGE));
  b->ops->destroy(b);
}

static void test_read_write(void)
{
  static char buf[200000], out[300000];
  void *h;
  struct backend *b = new_disk(16 * MiB, &h);

  fill(buf, sizeof buf, 7);
  CHECK_OK(b->ops->pwrite(h, buf, sizeof buf, 70000, 0));
  CHECK_OK(b->ops->pread(h, out, sizeof buf, 70000, 0));
  CHECK(memcmp(buf, out, sizeof buf) == 0);
  /* Across the written range into unwritten pages on both sides. */
  CHECK_OK(b->ops->pread(h, out, sizeof out, 20000, 0));
  CHECK(all_zero(out, 50000));
  CHECK(memcmp(out + 50000, buf, sizeof buf) == 0);
  CHECK(all_zero(out + 50000 + sizeof buf, sizeof out - 50000 - sizeof buf));
  /* Overwrite part of it, FUA. */
  CHECK_OK(b->ops->pwrite(h, "hello", 5, 100000, BACKEND_FLAG_FUA));
  CHECK_OK(b->ops->pread(h, out, 7, 99999, 0));
  CHECK(out[0] == buf[99999 - 70000] && memcmp(out + 1, "hello", 5) == 0 &&
        out[6] == buf[100005 - 70000]);
  /* The last byte. */
  CHECK_OK(b->ops->pwrite(h, "L", 1, 16 * MiB - 1, 0));
  CHECK_OK(b->ops->pread(h, out, 2, 16 * MiB - 2, 0));
  CHECK(out[0] == 0 && out[1] == 'L');
  b->ops->destroy(b);
}

static void test_zero_write_no_alloc(void)
{
  static char zeroes[2 * PAGE], buf[PAGE], out[PAGE];
  void *h;
  struct backend *b = new_disk(64 * MiB, &h);

  /* Zeroes into unallocated pages, whole or partial, allocate nothing. */
  CHECK_OK(b->ops->pwrite(h, zeroes, sizeof zeroes, MiB, 0));
  CHECK_OK(b->ops->pwrite(h, zeroes, 100, 5 * MiB + 3, 0));
  CHECK_EQ(state_at(b, h, MiB), ZEROED);
  CHECK_EQ(state_at(b, h, MiB + PAGE), ZEROED);
  CHECK_EQ(state_at(b, h, 5 * MiB), ZEROED);
  /* Partial zeroes into an allocated page: stays data, reads zero. */
  fill(buf, sizeof buf, 3);
  CHECK_OK(b->ops->pwrite(h, buf, PAGE, 8 * MiB, 0));
  CHECK_OK(b->ops->pwrite(h, zeroes, 1000, 8 * MiB + 10, 0));
  CHECK_EQ(state_at(b, h, 8 * MiB), 0);
  CHECK_OK(b->ops->pread(h, out, PAGE, 8 * MiB, 0));
  memset(buf + 10, 0, 1000);
  CHECK(memcmp(buf, out, PAGE) == 0);
  /* Zeroes over a whole allocated page free it. */
  CHECK_OK(b->ops->pwrite(h, zeroes, PAGE, 8 * MiB, 0));
  CHECK_EQ(state_at(b, h, 8 * MiB), ZEROED);
  CHECK_OK(b->ops->pread(h, out, PAGE, 8 * MiB, 0));
  CHECK(all_zero(out, PAGE));
  b->ops->destroy(b);
}

static void test_trim_zero(void)
{
  static char buf[3 * PAGE], out[3 * PAGE];
  void *h;
  struct backend *b = new_disk(MiB, &h);

  fill(buf, sizeof buf, 9);
  CHECK_OK(b->ops->pwrite(h, buf, sizeof buf, 0, 0));
  /* Trim frees the whole page inside, zeroes the partial ones. */
  CHECK_OK(b->ops->trim(h, 3 * PAGE - 200, 100, 0));
  CHECK_EQ(state_at(b, h, 0), 0);
  CHECK_EQ(state_at(b, h, PAGE), ZEROED);
  CHECK_EQ(state_at(b, h, 2 * PAGE), 0);
  CHECK_OK(b->ops->pread(h, out, sizeof out, 0, 0));
  CHECK(memcmp(out, buf, 100) == 0);
  CHECK(all_zero(out + 100, 3 * PAGE - 200));
  CHECK(memcmp(out + 3 * PAGE - 100, buf + 3 * PAGE - 100, 100) == 0);

  /* Zero without MAY_TRIM keeps the page; with it, frees it. */
  CHECK_OK(b->ops->zero(h, PAGE, 0, BACKEND_FLAG_FAST_ZERO));
  CHECK_EQ(state_at(b, h, 0), 0);
  CHECK_OK(b->ops->pread(h, out, PAGE, 0, 0));
  CHECK(all_zero(out, PAGE));
  CHECK_OK(b->ops->zero(h, PAGE, 2 * PAGE, BACKEND_FLAG_MAY_TRIM));
  CHECK_EQ(state_at(b, h, 2 * PAGE), ZEROED);
  b->ops->destroy(b);

  /* A size that ends inside a page: the partial last page is freed
   * by a range reaching the end of the disk. */
  b = new_disk(100000, &h);
  fill(buf, 100000, 4);
  CHECK_OK(b->ops->pwrite(h, buf, 100000, 0, 0));
  CHECK_EQ(state_at(b, h, 99999), 0);
  CHECK_OK(b->ops->zero(h, 100000 - PAGE, PAGE, BACKEND_FLAG_MAY_TRIM));
  CHECK_EQ(state_at(b, h, 99999), ZEROED);
  CHECK_EQ(state_at(b, h, 0), 0);
  CHECK_OK(b->ops->trim(h, 100000, 0, 0));
  struct extents e;
  query(b, h, 0, 100000, 0, &e);
  CHECK_EQ(e.v.len, 1);
  check_extent(&e, 0, 0, 100000, ZEROED);
  extents_free(&e);
  b->ops->destroy(b);
}

static void test_extents_shapes(void)
{
  struct extents e;
  void *h;
  struct backend *b = new_disk(10 * PAGE, &h);

  CHECK_OK(b->ops->pwrite(h, "x", 1, 2 * PAGE + 7, 0));
  CHECK_OK(b->ops->pwrite(h, "y", 1, 3 * PAGE, 0));
  /* A query inside a page: clipped to it. */
  query(b, h, 2 * PAGE + 100, 10, 0, &e);
  CHECK_EQ(e.v.len, 1);
  check_extent(&e, 0, 2 * PAGE + 100, 10, 0);
  extents_free(&e);
  /* REQ_ONE: just the first run. */
  query(b, h, 100, 10 * PAGE - 100, BACKEND_FLAG_REQ_ONE, &e);
  CHECK_EQ(e.v.len, 1);
  check_extent(&e, 0, 100, 2 * PAGE - 100, ZEROED);
  extents_free(&e);
  /* Adjacent allocated pages make one data run. */
  query(b, h, 0, 10 * PAGE, 0, &e);
  CHECK_EQ(e.v.len, 3);
  check_extent(&e, 1, 2 * PAGE, 2 * PAGE, 0);
  check_extent(&e, 2, 4 * PAGE, 6 * PAGE, ZEROED);
  extents_free(&e);
  b->ops->destroy(b);
}

/* Concurrency: each thread owns a private page that it checks against
 * its own copy after every write; shared pages get uniform 4 KiB blocks
 * written, zeroed and trimmed by everyone, and readers check that every
 * block they see is uniform (never torn). */
#define THREADS      4
#define ITERATIONS   4000
#define SHARED_FIRST 8
#define SHARED_PAGES 4
#define BLOCK        4096

struct worker {
  struct backend *b;
  void *h;
  unsigned id;
  pthread_barrier_t *start;
};

static void worker_private(struct worker *w, unsigned *seed, char *shadow,
                           unsigned iter)
{
  static _Thread_local char buf[PAGE], out[PAGE];
  uint64_t base = w->id * PAGE;
  uint64_t off = (uint64_t)rand_r(seed) % PAGE;
  uint64_t len = 1 + (uint64_t)rand_r(seed) % MIN(2 * BLOCK, PAGE - off);

  if (rand_r(seed) % 64 == 0) {
    CHECK_OK(w->b->ops->trim(w->h, PAGE, base, 0));
    memset(shadow, 0, PAGE);
  } else {
    fill(buf, len, (unsigned)rand_r(seed));
    CHECK_OK(w->b->ops->pwrite(w->h, buf, len, base + off, 0));
    memcpy(shadow + off, buf, len);
  }
  /* What was just written, and now and then the whole page. */
  CHECK_OK(w->b->ops->pread(w->h, out, len, base + off, 0));
  CHECK(memcmp(out, shadow + off, len) == 0);
  if (iter % 32 == 0) {
    CHECK_OK(w->b->ops->pread(w->h, out, PAGE, base, 0));
    CHECK(memcmp(out, shadow, PAGE) == 0);
  }
}

static void worker_shared(struct worker *w, unsigned *seed)
{
  static _Thread_local char buf[BLOCK];
  uint64_t blk = (uint64_t)rand_r(seed) % (SHARED_PAGES * PAGE / BLOCK);
  uint64_t off = SHARED_FIRST * PAGE + blk * BLOCK;
  uint64_t page_off = off - off % PAGE;
  struct extents e;

  switch (rand_r(seed) % 8) {
  case 0:
    CHECK_OK(w->b->ops->trim(w->h, PAGE, page_off, 0));
    break;
  case 1:
    CHECK_OK(w->b->ops->zero(w->h, BLOCK, off, 0));
    break;
  case 2:
    query(w->b, w->h, SHARED_FIRST * PAGE, SHARED_PAGES * PAGE, 0, &e);
    CHECK_EQ(extents_covered(&e), SHARED_PAGES * PAGE);
    extents_free(&e);
    break;
  case 3:
  case 4:
    memset(buf, (int)(1 + (w->id * 61 + (unsigned)rand_r(seed)) % 255), BLOCK);
    CHECK_OK(w->b->ops->pwrite(w->h, buf, BLOCK, off, 0));
    break;
  default:
    CHECK_OK(w->b->ops->pread(w->h, buf, BLOCK, off, 0));
    for (size_t i = 1; i < BLOCK; i++)
      CHECK(buf[i] == buf[0]);
    break;
  }
}

static void *worker_run(void *arg)
{
  struct worker *w = arg;
  unsigned seed = 12345 + w->id;
  char *shadow = calloc(1, PAGE);

  CHECK(shadow != NULL);
  pthread_barrier_wait(w->start);
  for (unsigned i = 0; i <= ITERATIONS; i++) {
    worker_private(w, &seed, shadow, i);
    worker_shared(w, &seed);
  }
  free(shadow);
  return NULL;
}

static void test_concurrent(void)
{
  pthread_t tids[THREADS];
  struct worker ws[THREADS];
  pthread_barrier_t start;
  void *h;
  struct backend *b = new_disk(16 * PAGE, &h);

  CHECK(pthread_barrier_init(&start, NULL, THREADS) == 0);
  for (unsigned i = 0; i < THREADS; i++) {
    ws[i] = (struct worker){b, h, i, &start};
    CHECK(pthread_create(&tids[i], NULL, worker_run, &ws[i]) == 0);
  }
  for (unsigned i = 0; i < THREADS; i++)
    CHECK(pthread_join(tids[i], NULL) == 0);
  pthread_barrier_destroy(&start);
  b->ops->destroy(b);
}

int main(void)
{
  RUN(test_caps_limits);
  RUN(test_max_size);
  RUN(test_sparse_tib);
  RUN(test_read_write);
  RUN(test_zero_write_no_alloc);
  RUN(test_trim_zero);
  RUN(test_extents_shapes);
  RUN(test_concurrent);
  return 0;
}

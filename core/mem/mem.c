/* The memory backend: a sparse in-memory disk of up to 2^62 bytes whose
 * 64 KiB pages are allocated on the first non-zero write, in a radix
 * tree whose tables are built lazily. */
#define _GNU_SOURCE
#include "backend.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/checked.h"
#include "util/log.h"

#define MEM_PAGE_SHIFT 16
#define MEM_PAGE_SIZE  (UINT64_C(1) << MEM_PAGE_SHIFT)
#define MEM_PAGE_MASK  (MEM_PAGE_SIZE - 1)
/* 4096 pointers (32 KiB) per table below the top: one leaf table maps
 * 256 MiB, and 2^62 bytes need 4 levels. */
#define MEM_LEVEL_BITS 12
#define MEM_FANOUT     (UINT64_C(1) << MEM_LEVEL_BITS)
#define MEM_MAX_SIZE   (UINT64_C(1) << 62)
#define MEM_STRIPES    256
/* Pages one block-status call looks at in data runs (the client asks
 * again for the rest). */
#define MEM_EXTENT_BUDGET 65536

/* The tree: levels tables from top to the page pointers.  Tables are
 * installed with compare-and-swap and freed only by destroy, so they
 * are walked without locks.
 *
 * Locking: page p is guarded by stripes[p % MEM_STRIPES].  Its pointer
 * in the leaf table changes only under the write lock (allocation,
 * freeing), its bytes are read under the read lock and written under
 * the write lock.  A thread holds at most one stripe lock at a time.
 * Block status reads the pointers alone, with atomic loads. */
struct mem_state {
  uint64_t size;
  unsigned levels;
  size_t top_entries;
  void **top;
  pthread_rwlock_t stripes[MEM_STRIPES];
};

static unsigned mem_shift(const struct mem_state *m, unsigned level)
{
  return MEM_LEVEL_BITS * (m->levels - 1 - level);
}

static pthread_rwlock_t *mem_lock(struct mem_state *m, uint64_t page)
{
  return &m->stripes[page % MEM_STRIPES];
}

/* Find the leaf slot holding page's pointer.  Without create, *slotp is
 * NULL when a table on the way is missing. Returns 0 or -ENOMEM. */
static int mem_slot(struct mem_state *m, uint64_t page, bool create,
                    void ***slotp)
{
  void **tbl = m->top;

  for (unsigned level = 0;; level++) {
    unsigned shift = mem_shift(m, level);
    uint64_t idx = page >> shift;
    if (level > 0)
      idx &= MEM_FANOUT - 1;
    void **slot = &tbl[idx];
    if (shift == 0) {
      *slotp = slot;
      return 0;
    }
    void *child = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!child) {
      if (!create) {
        *slotp = NULL;
        return 0;
      }
      void *fresh = calloc(MEM_FANOUT, sizeof(void *));
      if (!fresh)
        return -ENOMEM;
      /* On a lost race child receives the winner's table. */
      if (__atomic_compare_exchange_n(slot, &child, fresh, false,
                                      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        child = fresh;
      else
        free(fresh);
    }
    tbl = child;
  }
}

static bool mem_allocated(struct mem_state *m, uint64_t page)
{
  void **slot;

  mem_slot(m, page, false, &slot);
  return slot && __atomic_load_n(slot, __ATOMIC_ACQUIRE);
}

static uint64_t mem_find_rec(struct mem_state *m, void **tbl, unsigned level,
                             uint64_t base, uint64_t from, uint64_t limit)
{
  unsigned shift = mem_shift(m, level);
  uint64_t n = level == 0 ? m->top_entries : MEM_FANOUT;

  for (uint64_t i = (from - base) >> shift; i < n; i++) {
    uint64_t start = base + (i << shift);
    if (start >= limit)
      break;
    void *child = __atomic_load_n(&tbl[i], __ATOMIC_ACQUIRE);
    if (!child)
      continue;
    if (shift == 0)
      return start;
    uint64_t r =
        mem_find_rec(m, child, level + 1, start, MAX(from, start), limit);
    if (r < limit)
      return r;
  }
  return limit;
}

/* The first allocated page in [from, limit), or limit; skips missing
 * tables whole, so huge holes cost little. */
static uint64_t mem_next_allocated(struct mem_state *m, uint64_t from,
                                   uint64_t limit)
{
  return mem_find_rec(m, m->top, 0, 0, from, limit);
}

static bool mem_is_zero(const char *p, size_t n)
{
  return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Whether [in, in+n) of page covers all of it that lies inside the
 * disk (the last page may be partly beyond the end). */
static bool mem_covers_page(struct mem_state *m, uint64_t page, uint64_t in,
                            uint64_t n)
{
  return in == 0 &&
         (n == MEM_PAGE_SIZE || (page << MEM_PAGE_SHIFT) + n >= m->size);
}

static int mem_open(struct backend *b, const struct backend_conn_info *ci,
                    void **handle)
{
  *handle = b->priv;
  return 0;
}

static void mem_close(struct backend *b, void *h) {}

static int mem_get_size(void *h, uint64_t *size)
{
  struct mem_state *m = h;

  *size = m->size;
  return 0;
}

static int mem_caps(void *h, struct backend_caps *caps)
{
  /* Memory is as durable as it gets: FUA, flush and cache are no-ops,
   * and every connection sees the same pages (multi-conn). */
  *caps = (struct backend_caps){
      .can_write = true,
      .can_flush = true,
      .can_trim = true,
      .can_zero = BACKEND_SUPPORT_NATIVE,
      .can_fast_zero = true,
      .can_fua = BACKEND_SUPPORT_NATIVE,
      .can_cache = BACKEND_SUPPORT_NATIVE,
      .can_extents = true,
      .can_multi_conn = true,
  };
  return 0;
}

static int mem_pread(void *h, void *buf, uint64_t count, uint64_t offset,
                     uint32_t flags)
{
  struct mem_state *m = h;
  char *p = buf;

  if (!range_within(offset, count, m->size))
    return -EINVAL;
  while (count > 0) {
    uint64_t page = offset >> MEM_PAGE_SHIFT;
    uint64_t in = offset & MEM_PAGE_MASK;
    uint64_t n = MIN(count, MEM_PAGE_SIZE - in);
    void **slot;

    mem_slot(m, page, false, &slot);
    pthread_rwlock_rdlock(mem_lock(m, page));
    char *data = slot ? __atomic_load_n(slot, __ATOMIC_ACQUIRE) : NULL;
    if (data)
      memcpy(p, data + in, n);
    else
      memset(p, 0, n);
    pthread_rwlock_unlock(mem_lock(m, page));
    p += n;
    offset += n;
    count -= n;
  }
  return 0;
}

/* Write n bytes at in within page.  Zeroes never allocate, and zeroes
 * over a whole page free it: an unallocated page reads as zeroes. */
static int mem_write_page(struct mem_state *m, uint64_t page, uint64_t in,
                          const char *src, uint64_t n)
{
  bool zero = mem_is_zero(src, n);
  void **slot;
  int r;

  r = mem_slot(m, page, !zero, &slot);
  if (r < 0 || !slot)
    return r;
  pthread_rwlock_wrlock(mem_lock(m, page));
  char *data = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (zero && data && mem_covers_page(m, page, in, n)) {
    __atomic_store_n(slot, NULL, __ATOMIC_RELEASE);
    free(data);
  } else if (data || !zero) {
    if (!data)
      data = calloc(1, MEM_PAGE_SIZE);
    if (data) {
      __atomic_store_n(slot, data, __ATOMIC_RELEASE);
      memcpy(data + in, src, n);
    } else {
      r = -ENOMEM;
    }
  }
  pthread_rwlock_unlock(mem_lock(m, page));
  return r;
}

static int mem_pwrite(void *h, const void *buf, uint64_t count, uint64_t offset,
                      uint32_t flags)
{
  struct mem_state *m = h;
  const char *p = buf;

  if (!range_within(offset, count, m->size))
    return -EINVAL;
  while (count > 0) {
    uint64_t page = offset >> MEM_PAGE_SHIFT;
    uint64_t in = offset & MEM_PAGE_MASK;
    uint64_t n = MIN(count, MEM_PAGE_SIZE - in);
    int r = mem_write_page(m, page, in, p, n);
    if (r < 0)
      return r;
    p += n;
    offset += n;
    count -= n;
  }
  return 0;
}

static int mem_flush(void *h, uint32_t flags)
{
  return 0;
}

/* Zero [in, in+n) of page; free the page instead when allowed and the
 * range covers it. */
static void mem_zero_page(struct mem_state *m, uint64_t page, uint64_t in,
                          uint64_t n, bool may_free)
{
  void **slot;

  mem_slot(m, page, false, &slot);
  if (!slot)
    return;
  pthread_rwlock_wrlock(mem_lock(m, page));
  char *data = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (data && may_free && mem_covers_page(m, page, in, n)) {
    __atomic_store_n(slot, NULL, __ATOMIC_RELEASE);
    free(data);
  } else if (data) {
    memset(data + in, 0, n);
  }
  pthread_rwlock_unlock(mem_lock(m, page));
}

/* Zero a range, visiting only the allocated pages in it. */
static int mem_zero_range(struct mem_state *m, uint64_t count, uint64_t offset,
                          bool may_free)
{
  uint64_t end = offset + count;
  uint64_t last = (end - 1) >> MEM_PAGE_SHIFT;

  if (!range_within(offset, count, m->size))
    return -EINVAL;
  if (count == 0)
    return 0;
  for (uint64_t page = offset >> MEM_PAGE_SHIFT;; page++) {
    page = mem_next_allocated(m, page, last + 1);
    if (page > last)
      break;
    uint64_t pstart = page << MEM_PAGE_SHIFT;
    uint64_t from = MAX(offset, pstart);
    uint64_t to = MIN(end, pstart + MEM_PAGE_SIZE);
    mem_zero_page(m, page, from - pstart, to - from, may_free);
  }
  return 0;
}

static int mem_trim(void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  return mem_zero_range(h, count, offset, true);
}

static int mem_zero(void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  /* Always fast, so BACKEND_FLAG_FAST_ZERO needs nothing. */
  return mem_zero_range(h, count, offset, flags & BACKEND_FLAG_MAY_TRIM);
}

static int mem_cache(void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct mem_state *m = h;

  return range_within(offset, count, m->size) ? 0 : -EINVAL;
}

static int mem_extents(void *h, unsigned ctx, uint64_t count, uint64_t offset,
                       uint32_t flags, struct extents *e)
{
  struct mem_state *m = h;
  uint64_t budget = MEM_EXTENT_BUDGET;
  uint64_t end = offset + count;

  if (ctx != 0 || !range_within(offset, count, m->size))
    return -EINVAL;
  if (count == 0)
    return 0;
  uint64_t last = (end - 1) >> MEM_PAGE_SHIFT;
  for (uint64_t page = offset >> MEM_PAGE_SHIFT; page <= last && budget;) {
    uint64_t run_end = mem_next_allocated(m, page, last + 1);
    uint32_t state = BACKEND_STATE_HOLE | BACKEND_STATE_ZERO;
    if (run_end == page) {
      state = 0;
      do {
        run_end++;
      } while (run_end <= last && --budget && mem_allocated(m, run_end));
    } else {
      budget--; /* each run costs, or alternating pages would not */
    }
    /* The first run may begin before offset: extents_add clips it. */
    uint64_t start = page << MEM_PAGE_SHIFT;
    uint64_t stop = MIN(run_end << MEM_PAGE_SHIFT, end);
    int r = extents_add(e, start, stop - start, state);
    if (r < 0 || (flags & BACKEND_FLAG_REQ_ONE))
      return r;
    page = run_end;
  }
  return 0;
}

static void mem_free_rec(struct mem_state *m, void **tbl, unsigned level)
{
  uint64_t n = level == 0 ? m->top_entries : MEM_FANOUT;

  for (uint64_t i = 0; i < n; i++) {
    if (tbl[i] && mem_shift(m, level) > 0)
      mem_free_rec(m, tbl[i], level + 1);
    else
      free(tbl[i]);
  }
  free(tbl);
}

static void mem_destroy(struct backend *b)
{
  struct mem_state *m = b->priv;

  mem_free_rec(m, m->top, 0);
  for (size_t i = 0; i < MEM_STRIPES; i++)
    pthread_rwlock_destroy(&m->stripes[i]);
  free(m);
  free(b);
}

/* Memory never waits for I/O: the loop may read it directly. */
static int mem_pread_nowait(void *h, void *buf, uint64_t count, uint64_t offset)
{
  return mem_pread(h, buf, count, offset, 0);
}

static const struct backend_ops mem_ops = {
    .name = "memory",
    .open = mem_open,
    .close = mem_close,
    .get_size = mem_get_size,
    .caps = mem_caps,
    .pread = mem_pread,
    .pread_nowait = mem_pread_nowait,
    .pwrite = mem_pwrite,
    .flush = mem_flush,
    .trim = mem_trim,
    .zero = mem_zero,
    .cache = mem_cache,
    .extents = mem_extents,
    .destroy = mem_destroy,
};

/* Depth and top table for size: as few levels as the page count needs,
 * the top table only as wide as it must be. */
static void mem_shape(struct mem_state *m, uint64_t size)
{
  uint64_t npages = (size + MEM_PAGE_MASK) >> MEM_PAGE_SHIFT;
  unsigned bits = 0;

  while (bits < 64 && (UINT64_C(1) << bits) < npages)
    bits++;
  m->size = size;
  m->levels =
      bits <= MEM_LEVEL_BITS ? 1 : (bits + MEM_LEVEL_BITS - 1) / MEM_LEVEL_BITS;
  unsigned top_shift = mem_shift(m, 0);
  m->top_entries = (npages + (UINT64_C(1) << top_shift) - 1) >> top_shift;
  if (m->top_entries == 0)
    m->top_entries = 1;
}

int mem_backend_new(uint64_t size, struct backend **out)
{
  pthread_rwlockattr_t attr;
  struct mem_state *m;
  struct backend *b;

  if (size > MEM_MAX_SIZE) {
    log_error("memory: size %" PRIu64 " is larger than the maximum 2^62", size);
    return -EINVAL;
  }
  m = calloc(1, sizeof *m);
  b = calloc(1, sizeof *b);
  if (m)
    mem_shape(m, size);
  if (!m || !b || !(m->top = calloc(m->top_entries, sizeof(void *)))) {
    log_error("memory: %s", strerror(ENOMEM));
    free(m);
    free(b);
    return -ENOMEM;
  }
  /* Writers first, so that a stream of readers cannot starve them. */
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr,
                                PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  for (size_t i = 0; i < MEM_STRIPES; i++)
    pthread_rwlock_init(&m->stripes[i], &attr);
  pthread_rwlockattr_destroy(&attr);
  *b = (struct backend){
      .ops = &mem_ops, .thread_model = BACKEND_PARALLEL, .priv = m};
  *out = b;
  return 0;
}

/* Unit tests of the block-status extents list (core/util/extents.c):
 * merging, clipping, a first extent beginning before the query, and
 * rejected gaps and overlaps. */
#include <errno.h>

#include "check.h"
#include "util/extents.h"

static void check_extent(const struct extents *e, size_t i, uint64_t offset,
                         uint64_t length, uint32_t flags)
{
  CHECK(i < e->v.len);
  CHECK_EQ(e->v.ptr[i].offset, offset);
  CHECK_EQ(e->v.ptr[i].length, length);
  CHECK_EQ(e->v.ptr[i].flags, flags);
}

static void test_merge_and_clip(void)
{
  struct extents e;

  extents_init(&e, 100, 1000);
  CHECK_EQ(extents_covered(&e), 0);
  /* The first extent begins before the query: clipped to its start. */
  CHECK_OK(extents_add(&e, 0, 200, 0));
  check_extent(&e, 0, 100, 100, 0);
  /* Same flags: merged into the previous one. */
  CHECK_OK(extents_add(&e, 200, 100, 0));
  CHECK_EQ(e.v.len, 1);
  check_extent(&e, 0, 100, 200, 0);
  CHECK_OK(extents_add(&e, 300, 50, 3));
  CHECK_OK(extents_add(&e, 350, 25, 3));
  CHECK_EQ(e.v.len, 2);
  check_extent(&e, 1, 300, 75, 3);
  /* Past the end: clipped at 1000. */
  CHECK_OK(extents_add(&e, 375, 5000, 1));
  CHECK_EQ(e.v.len, 3);
  check_extent(&e, 2, 375, 625, 1);
  CHECK_EQ(extents_covered(&e), 900);
  /* Beyond the end: ignored. */
  CHECK_OK(extents_add(&e, 1000, 10, 2));
  CHECK_EQ(e.v.len, 3);
  CHECK_EQ(extents_covered(&e), 900);
  extents_free(&e);
  CHECK(e.v.ptr == NULL);
  CHECK_EQ(e.v.len, 0);
}

static void test_first_extent(void)
{
  struct extents e;

  /* The first extent may not begin after the query start. */
  extents_init(&e, 4096, 8192);
  CHECK_ERR(extents_add(&e, 4097, 10, 0), EINVAL);
  CHECK_EQ(e.v.len, 0);
  /* One that ends at or before the start adds nothing; the next one
   * still may begin before the start. */
  CHECK_OK(extents_add(&e, 0, 4096, 0));
  CHECK_EQ(e.v.len, 0);
  CHECK_OK(extents_add(&e, 2048, 4096, 1));
  check_extent(&e, 0, 4096, 2048, 1);
  extents_free(&e);

  /* Exactly at the start. */
  extents_init(&e, 4096, 8192);
  CHECK_OK(extents_add(&e, 4096, 4096, 2));
  CHECK_EQ(e.v.len, 1);
  check_extent(&e, 0, 4096, 4096, 2);
  CHECK_EQ(extents_covered(&e), 4096);
  extents_free(&e);
}

static void test_gaps_rejected(void)
{
  struct extents e;

  extents_init(&e, 0, 1000);
  CHECK_OK(extents_add(&e, 0, 100, 0));
  CHECK_ERR(extents_add(&e, 101, 10, 1), EINVAL); /* gap */
  CHECK_ERR(extents_add(&e, 99, 10, 1), EINVAL);  /* overlap */
  CHECK_ERR(extents_add(&e, 0, 10, 1), EINVAL);   /* restart */
  CHECK_EQ(e.v.len, 1);
  CHECK_EQ(extents_covered(&e), 100);
  /* Zero length adds nothing, wherever it is. */
  CHECK_OK(extents_add(&e, 500, 0, 1));
  CHECK_EQ(e.v.len, 1);
  /* Wrapping around 2^64 is refused. */
  CHECK_ERR(extents_add(&e, 100, UINT64_MAX - 50, 1), EINVAL);
  CHECK_OK(extents_add(&e, 100, 50, 1));
  CHECK_EQ(e.v.len, 2);
  check_extent(&e, 1, 100, 50, 1);
  extents_free(&e);
}

static void test_many(void)
{
  struct extents e;

  /* Alternating flags never merge; the vector grows as needed. */
  extents_init(&e, 0, UINT64_MAX);
  for (uint64_t i = 0; i < 10000; i++)
    CHECK_OK(extents_add(&e, i * 512, 512, (uint32_t)(i & 1)));
  CHECK_EQ(e.v.len, 10000);
  CHECK_EQ(extents_covered(&e), 10000 * 512);
  for (size_t i = 0; i < e.v.len; i++)
    check_extent(&e, i, i * 512, 512, (uint32_t)(i & 1));
  extents_free(&e);
}

static void test_huge_offsets(void)
{
  struct extents e;
  uint64_t big = UINT64_C(1) << 62;

  extents_init(&e, big - 10, big);
  CHECK_OK(extents_add(&e, big - 65536, 65536, 3));
  check_extent(&e, 0, big - 10, 10, 3);
  CHECK_OK(extents_add(&e, big, 65536, 0));
  CHECK_EQ(e.v.len, 1);
  extents_free(&e);
}

int main(void)
{
  RUN(test_merge_and_clip);
  RUN(test_first_extent);
  RUN(test_gaps_rejected);
  RUN(test_many);
  RUN(test_huge_offsets);
  return 0;
}

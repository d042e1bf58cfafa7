/* The extents list of extents.h. */
#include "extents.h"

#include <errno.h>

void extents_init(struct extents *e, uint64_t start, uint64_t end)
{
  e->start = e->next = start;
  e->end = end;
  e->v = (struct extent_vec){0};
}

void extents_free(struct extents *e)
{
  extent_vec_reset(&e->v);
}

uint64_t extents_covered(const struct extents *e)
{
  return e->next - e->start;
}

int extents_add(struct extents *e, uint64_t offset, uint64_t length,
                uint32_t flags)
{
  uint64_t end = offset + length;

  if (length == 0)
    return 0;
  if (end < offset)
    return -EINVAL;
  /* Once the query range is covered, further extents are ignored. */
  if (e->v.len > 0 && e->next >= e->end)
    return 0;
  if (e->v.len == 0 && e->next == e->start) {
    /* The first extent may start before the query. */
    if (offset > e->start)
      return -EINVAL;
    if (end <= e->start)
      return 0;
    offset = e->start;
  } else if (offset != e->next) {
    return -EINVAL;
  }
  if (offset >= e->end)
    return 0;
  if (end > e->end)
    end = e->end;
  e->next = end;
  if (e->v.len > 0 && e->v.ptr[e->v.len - 1].flags == flags) {
    e->v.ptr[e->v.len - 1].length += end - offset;
    return 0;
  }
  return extent_vec_append(&e->v, (struct extent){offset, end - offset, flags});
}

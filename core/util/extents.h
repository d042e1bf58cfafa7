/* A list of extents answering one block-status query: contiguous
 * (length, flags) runs starting at the query offset, merged when flags
 * repeat, clipped to the query range. */
#ifndef QNBD_UTIL_EXTENTS_H
#define QNBD_UTIL_EXTENTS_H

#include <stdint.h>

#include "vector.h"

struct extent {
  uint64_t offset;
  uint64_t length;
  uint32_t flags;
};
DEFINE_VECTOR(extent_vec, struct extent)

struct extents {
  uint64_t start; /* query start: first extent begins here */
  uint64_t end;   /* extents past this are clipped */
  uint64_t next;  /* where the next added extent must begin */
  struct extent_vec v;
};

/* Prepare e to answer a query over [start, end). */
void extents_init(struct extents *e, uint64_t start, uint64_t end);
void extents_free(struct extents *e);
/* Append [offset, offset+length) with flags.  Must continue where the
 * previous one ended (the first may begin before start).  Returns 0,
 * -EINVAL for a gap or overlap, -ENOMEM. Extents past end are ignored. */
int extents_add(struct extents *e, uint64_t offset, uint64_t length,
                uint32_t flags);
/* Total length covered so far (from start). */
uint64_t extents_covered(const struct extents *e);

#endif

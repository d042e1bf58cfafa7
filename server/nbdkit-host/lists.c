/* The exported nbdkit_* functions over extent and export lists, and the
 * filter-only context functions, which fail cleanly because qnbd loads
 * no filters (nbdkit-plugin(3) ".extents", ".list_exports";
 * nbdkit-filter(3) "EXTENTS", "EXPORTS"). */
#include "internal.h"

#include <nbdkit-filter.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define HOST_MAX_STRING  4096 /* export names and descriptions (NBD spec) */
#define HOST_MAX_EXPORTS 10000

void host_extents_wrap(struct nbdkit_extents *x, struct extents *e)
{
  /* Field by field: x->own may be what e points to. */
  x->e = e;
  x->start = x->next = e->start;
  x->end = e->end;
  x->started = false;
}

struct nbdkit_extents *nbdkit_extents_new(uint64_t start, uint64_t end)
{
  struct nbdkit_extents *x;

  if (start > INT64_MAX || end > INT64_MAX || start > end) {
    nbdkit_error("nbdkit_extents_new: invalid range [%" PRIu64 ", %" PRIu64 ")",
                 start, end);
    errno = ERANGE;
    return NULL;
  }
  x = malloc(sizeof *x);
  if (!x) {
    nbdkit_error("malloc: %m");
    return NULL;
  }
  extents_init(&x->own, start, end);
  host_extents_wrap(x, &x->own);
  return x;
}

void nbdkit_extents_free(struct nbdkit_extents *x)
{
  if (x && x->e == &x->own) {
    extents_free(&x->own);
    free(x);
  }
}

size_t nbdkit_extents_count(const struct nbdkit_extents *x)
{
  return x->e->v.len;
}

struct nbdkit_extent nbdkit_get_extent(const struct nbdkit_extents *x, size_t i)
{
  const struct extent *e = &x->e->v.ptr[i];
  return (struct nbdkit_extent){e->offset, e->length, e->flags};
}

/* Extents must be contiguous and in order; the first must cover start.
 * Parts outside [start, end) are accepted and dropped. */
int nbdkit_add_extent(struct nbdkit_extents *x, uint64_t offset,
                      uint64_t length, uint32_t type)
{
  uint64_t last, lo, hi;
  int r;

  if (length == 0)
    return 0;
  if (!x->started && offset > x->start) {
    nbdkit_error("nbdkit_add_extent: first extent must not be > start "
                 "(%" PRIu64 " > %" PRIu64 ")",
                 offset, x->start);
    errno = ERANGE;
    return -1;
  }
  if (x->started && offset != x->next) {
    nbdkit_error("nbdkit_add_extent: extents must be added in ascending "
                 "order and must be contiguous");
    errno = ERANGE;
    return -1;
  }
  if (__builtin_add_overflow(offset, length, &last) || last > INT64_MAX) {
    nbdkit_error("nbdkit_add_extent: extent overflows");
    errno = ERANGE;
    return -1;
  }
  x->started = true;
  x->next = last;
  if (last <= x->start || offset >= x->end)
    return 0;
  lo = offset < x->start ? x->start : offset;
  hi = last > x->end ? x->end : last;
  r = extents_add(x->e, lo, hi - lo,
                  type & (BACKEND_STATE_HOLE | BACKEND_STATE_ZERO));
  if (r < 0) {
    errno = -r;
    nbdkit_error("nbdkit_add_extent: %m");
    return -1;
  }
  return 0;
}

struct nbdkit_extents *nbdkit_extents_full(nbdkit_next *next, uint32_t count,
                                           uint64_t offset, uint32_t flags,
                                           int *err)
{
  nbdkit_error("nbdkit_extents_full: only for filters, which qnbd does "
               "not load");
  *err = ENOTSUP;
  return NULL;
}

int nbdkit_extents_aligned(nbdkit_next *next, uint32_t count, uint64_t offset,
                           uint32_t flags, uint32_t align,
                           struct nbdkit_extents *extents, int *err)
{
  nbdkit_error("nbdkit_extents_aligned: only for filters, which qnbd does "
               "not load");
  *err = ENOTSUP;
  return -1;
}

struct nbdkit_exports *nbdkit_exports_new(void)
{
  struct nbdkit_exports *x = calloc(1, sizeof *x);
  if (!x)
    nbdkit_error("calloc: %m");
  return x;
}

void host_exports_clear(struct nbdkit_exports *x)
{
  for (size_t i = 0; i < x->v.len; i++) {
    free(x->v.ptr[i].name);
    free(x->v.ptr[i].description);
  }
  host_export_vec_reset(&x->v);
}

void nbdkit_exports_free(struct nbdkit_exports *x)
{
  if (x) {
    host_exports_clear(x);
    free(x);
  }
}

size_t nbdkit_exports_count(const struct nbdkit_exports *x)
{
  return x->v.len;
}

/* nbdkit-filter.h declares the return type const; match it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-qualifiers"
const struct nbdkit_export nbdkit_get_export(const struct nbdkit_exports *x,
                                             size_t i)
{
  return (const struct nbdkit_export){x->v.ptr[i].name,
                                      x->v.ptr[i].description};
}
#pragma GCC diagnostic pop

int nbdkit_add_export(struct nbdkit_exports *x, const char *name,
                      const char *description)
{
  struct backend_export_entry e = {0};

  if (x->v.len >= HOST_MAX_EXPORTS) {
    nbdkit_error("nbdkit_add_export: too many exports");
    errno = EINVAL;
    return -1;
  }
  if (strlen(name) > HOST_MAX_STRING ||
      (description && strlen(description) > HOST_MAX_STRING)) {
    nbdkit_error("nbdkit_add_export: name or description longer than %d "
                 "bytes",
                 HOST_MAX_STRING);
    errno = EINVAL;
    return -1;
  }
  e.name = strdup(name);
  e.description = description ? strdup(description) : NULL;
  if (!e.name || (description && !e.description) ||
      host_export_vec_append(&x->v, e) < 0) {
    free(e.name);
    free(e.description);
    errno = ENOMEM;
    nbdkit_error("nbdkit_add_export: %m");
    return -1;
  }
  return 0;
}

int nbdkit_use_default_export(struct nbdkit_exports *x)
{
  x->use_default = true;
  return 0;
}

nbdkit_backend *nbdkit_context_get_backend(nbdkit_context *context)
{
  nbdkit_error("nbdkit_context_get_backend: only for filters, which qnbd "
               "does not load");
  errno = ENOTSUP;
  return NULL;
}

nbdkit_next *nbdkit_next_context_open(nbdkit_backend *backend, int readonly,
                                      const char *exportname, int shared)
{
  nbdkit_error("nbdkit_next_context_open: only for filters, which qnbd "
               "does not load");
  errno = ENOTSUP;
  return NULL;
}

void nbdkit_next_context_close(nbdkit_next *next)
{
  nbdkit_error("nbdkit_next_context_close: only for filters, which qnbd "
               "does not load");
}

nbdkit_next *nbdkit_context_set_next(nbdkit_context *context, nbdkit_next *next)
{
  nbdkit_error("nbdkit_context_set_next: only for filters, which qnbd "
               "does not load");
  errno = ENOTSUP;
  return NULL;
}

/* Encoding replies: simple replies, structured reply chunks and
 * extended-header replies ("Simple reply message", "Structured reply
 * chunk message" and the extended headers extension of the spec).
 * Runs on the worker that executed the request, so the loop only
 * writes the iovecs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/checked.h"
#include "util/endian.h"
#include "util/log.h"

#define HOLE_GRANULE    4096u
#define MAX_DESCRIPTORS (128u * 1024) /* per context per reply */

uint32_t reply_errno(int negerr)
{
  switch (-negerr) {
  case 0:
    return 0;
  case EPERM:
  case EROFS:
    return WIRE_EPERM;
  case EIO:
    return WIRE_EIO;
  case ENOMEM:
    return WIRE_ENOMEM;
  case ENOSPC:
  case EDQUOT:
  case EFBIG:
    return WIRE_ENOSPC;
  case EOVERFLOW:
    return WIRE_EOVERFLOW;
  case ENOTSUP:
    return WIRE_ENOTSUP;
  case ESHUTDOWN:
    return WIRE_ESHUTDOWN;
  case EINVAL:
  default:
    return WIRE_EINVAL;
  }
}

/* Room for n more header bytes; returns a pointer or NULL. */
static char *hdr_room(struct request *r, size_t n)
{
  if (r->hdrcap - r->hdrlen < n) {
    size_t ncap = r->hdrcap ? r->hdrcap * 2 : 256;
    while (ncap - r->hdrlen < n)
      ncap *= 2;
    char *p = realloc(r->hdr, ncap);
    if (!p)
      return NULL;
    r->hdr = p;
    r->hdrcap = ncap;
  }
  char *p = r->hdr + r->hdrlen;
  r->hdrlen += n;
  return p;
}

/* Header pieces are recorded by their offset in hdr (which may move
 * while it grows) and turned into pointers by iov_finish(). */
static int iov_add(struct request *r, const char *base, size_t len, bool in_hdr)
{
  if (r->niov == r->iovcap) {
    unsigned ncap = r->iovcap ? r->iovcap * 2 : 8;
    uv_buf_t *p = realloc(r->iov, ncap * sizeof *p);
    if (!p)
      return -ENOMEM;
    r->iov = p;
    uint8_t *q = realloc(r->iov_in_hdr, ncap);
    if (!q)
      return -ENOMEM;
    r->iov_in_hdr = q;
    r->iovcap = ncap;
  }
  r->iov_in_hdr[r->niov] = in_hdr;
  r->iov[r->niov].base =
      in_hdr ? (char *)(uintptr_t)(base - r->hdr) : (char *)base;
  r->iov[r->niov].len = len;
  r->niov++;
  return 0;
}

static void iov_finish(struct request *r)
{
  for (unsigned i = 0; i < r->niov; i++)
    if (r->iov_in_hdr[i])
      r->iov[i].base = r->hdr + (uintptr_t)r->iov[i].base;
}

/* Append a chunk header (structured or extended) plus payload_len
 * bytes of inline payload; returns where the inline payload goes. */
static char *chunk(struct request *r, uint16_t flags, uint16_t type,
                   uint64_t payload_len, size_t inline_len)
{
  bool ext = r->c->extended;
  size_t hl = ext ? EXT_REPLY_HDR_SIZE : STRUCTURED_HDR_SIZE;
  char *h = hdr_room(r, hl + inline_len);

  if (!h)
    return NULL;
  if (ext) {
    store_be32(h, EXT_REPLY_MAGIC);
    store_be16(h + 4, flags);
    store_be16(h + 6, type);
    store_be64(h + 8, r->cookie);
    store_be64(h + 16, r->offset);
    store_be64(h + 24, payload_len);
  } else {
    store_be32(h, STRUCTURED_REPLY_MAGIC);
    store_be16(h + 4, flags);
    store_be16(h + 6, type);
    store_be64(h + 8, r->cookie);
    store_be32(h + 16, (uint32_t)payload_len);
  }
  if (iov_add(r, h, hl + inline_len, true) < 0)
    return NULL;
  return h + hl;
}

static int build_simple(struct request *r)
{
  char *h = hdr_room(r, SIMPLE_REPLY_SIZE);
  if (!h)
    return -ENOMEM;
  store_be32(h, SIMPLE_REPLY_MAGIC);
  store_be32(h + 4, (uint32_t)r->err);
  store_be64(h + 8, r->cookie);
  if (iov_add(r, h, SIMPLE_REPLY_SIZE, true) < 0)
    return -ENOMEM;
  if (r->type == CMD_READ && r->err == 0 &&
      iov_add(r, r->buf, r->count, false) < 0)
    return -ENOMEM;
  return 0;
}

static int build_error(struct request *r)
{
  const char *msg = r->errmsg ? r->errmsg : "";
  size_t ml = strnlen(msg, 256);
  char *p = chunk(r, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, 6 + ml, 6 + ml);
  if (!p)
    return -ENOMEM;
  store_be32(p, (uint32_t)r->err);
  store_be16(p + 4, (uint16_t)ml);
  memcpy(p + 6, msg, ml);
  return 0;
}

static bool is_zero(const char *p, size_t n)
{
  static const char zeroes[64];
  if (n < 64)
    return memcmp(p, zeroes, n) == 0;
  return memcmp(p, zeroes, 64) == 0 && memcmp(p, p + 64, n - 64) == 0;
}

/* READ: OFFSET_DATA chunks, with OFFSET_HOLE for zero runs unless DF. */
static int build_read(struct request *r)
{
  uint64_t len = r->count, pos = 0;
  bool sparse = !(r->flags & CMD_FLAG_DF);

  while (pos < len) {
    uint64_t end = pos;
    bool hole = sparse && is_zero(r->buf + pos, MIN(HOLE_GRANULE, len - pos));

    /* Extend the run while the next granule is of the same kind. */
    do
      end = MIN(end + HOLE_GRANULE, len);
    while (sparse && end < len &&
           is_zero(r->buf + end, MIN(HOLE_GRANULE, len - end)) == hole);
    if (!sparse)
      end = len;
    uint16_t fl = end == len ? REPLY_FLAG_DONE : 0;
    char *p;
    if (hole) {
      p = chunk(r, fl, REPLY_TYPE_OFFSET_HOLE, 12, 12);
      if (!p)
        return -ENOMEM;
      store_be64(p, r->offset + pos);
      store_be32(p + 8, (uint32_t)(end - pos));
    } else {
      p = chunk(r, fl, REPLY_TYPE_OFFSET_DATA, 8 + end - pos, 8);
      if (!p || iov_add(r, r->buf + pos, end - pos, false) < 0)
        return -ENOMEM;
      store_be64(p, r->offset + pos);
    }
    pos = end;
  }
  return 0;
}

/* One BLOCK_STATUS (or _EXT) chunk for selected context sel. */
static int build_status_ctx(struct request *r, const struct meta_sel *sel,
                            bool last)
{
  struct conn *c = r->c;
  struct extents e;
  bool ext = c->extended;
  uint32_t fl = (r->flags & CMD_FLAG_REQ_ONE) ? BACKEND_FLAG_REQ_ONE : 0;
  int err;

  extents_init(&e, r->offset, r->offset + r->count);
  err = worker_extents(c, sel->ctx, r->count, r->offset, fl, &e);
  if (err == 0 && e.v.len == 0)
    err = -EIO; /* the backend described nothing */
  if (err < 0) {
    extents_free(&e);
    return err;
  }
  size_t n = MIN(e.v.len, (size_t)MAX_DESCRIPTORS);
  if (fl & BACKEND_FLAG_REQ_ONE)
    n = 1;
  size_t dsz = ext ? 16 : 8, hl = ext ? 8 : 4;
  char *p = chunk(r, last ? REPLY_FLAG_DONE : 0,
                  ext ? REPLY_TYPE_BLOCK_STATUS_EXT : REPLY_TYPE_BLOCK_STATUS,
                  hl + n * dsz, hl + n * dsz);
  if (!p) {
    extents_free(&e);
    return -ENOMEM;
  }
  store_be32(p, sel->id);
  if (ext)
    store_be32(p + 4, (uint32_t)n);
  for (size_t i = 0; i < n; i++) {
    char *d = p + hl + i * dsz;
    if (ext) {
      store_be64(d, e.v.ptr[i].length);
      store_be64(d + 8, e.v.ptr[i].flags);
    } else {
      store_be32(d, (uint32_t)e.v.ptr[i].length);
      store_be32(d + 4, e.v.ptr[i].flags);
    }
  }
  extents_free(&e);
  return 0;
}

static int build_block_status(struct request *r)
{
  const struct meta_sel_vec *m = &r->c->metas;
  for (size_t i = 0; i < m->len; i++) {
    int e = build_status_ctx(r, &m->ptr[i], i + 1 == m->len);
    if (e == -ENOMEM)
      return e;
    if (e < 0) {
      /* Start over with just an error. */
      r->hdrlen = r->niov = 0;
      r->err = (int)reply_errno(e);
      r->errmsg = strerror(-e);
      return build_error(r);
    }
  }
  return 0;
}

int reply_build(struct request *r)
{
  int e;

  r->hdrlen = r->niov = 0;
  if (!r->c->structured)
    e = build_simple(r);
  else if (r->err)
    e = build_error(r);
  else if (r->type == CMD_READ)
    e = build_read(r);
  else if (r->type == CMD_BLOCK_STATUS)
    e = build_block_status(r);
  else if (!r->c->extended)
    e = build_simple(r); /* no payload: a simple reply is allowed */
  else
    e = chunk(r, REPLY_FLAG_DONE, REPLY_TYPE_NONE, 0, 0) ? 0 : -ENOMEM;
  if (e == 0)
    iov_finish(r);
  return e;
}

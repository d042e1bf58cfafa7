/* The transmission phase: parse and validate each request, receive its
 * payload, run it on the worker pool and send the reply. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/checked.h"
#include "util/endian.h"
#include "util/log.h"

/* ---- the per-connection request pool (loop thread only) ---- */

static struct request *request_get(struct conn *c)
{
  struct request *r = c->free_reqs;
  if (r) {
    c->free_reqs = r->next_free;
  } else {
    r = calloc(1, sizeof *r);
    if (!r)
      return NULL;
  }
  r->c = c;
  r->err = 0;
  r->errmsg = NULL;
  r->hdrlen = 0;
  r->niov = 0;
  r->send_reply = true;
  return r;
}

void request_release(struct conn *c, struct request *r)
{
  /* Keep buffers for reuse, but not huge ones forever. */
  if (r->bufcap > 4u * 1024 * 1024) {
    free(r->buf);
    r->buf = NULL;
    r->bufcap = 0;
  }
  r->next_free = c->free_reqs;
  c->free_reqs = r;
}

void request_free_all(struct conn *c)
{
  struct request *r;
  while ((r = c->free_reqs)) {
    c->free_reqs = r->next_free;
    free(r->buf);
    free(r->hdr);
    free(r->iov);
    free(r->iov_in_hdr);
    free(r);
  }
}

static int request_reserve(struct request *r, size_t n)
{
  if (r->bufcap >= n)
    return 0;
  char *p = malloc(n);
  if (!p)
    return -ENOMEM;
  free(r->buf);
  r->buf = p;
  r->bufcap = n;
  return 0;
}

/* ---- validation ("Request types" and "Command flags" in the spec) ---- */

static uint16_t allowed_flags(const struct conn *c, uint16_t type)
{
  uint16_t f = (c->tflags & TF_SEND_FUA) ? CMD_FLAG_FUA : 0;
  if (c->extended)
    f |= CMD_FLAG_PAYLOAD_LEN;
  switch (type) {
  case CMD_READ:
    return f | (c->structured ? CMD_FLAG_DF : 0);
  case CMD_WRITE_ZEROES:
    return f | CMD_FLAG_NO_HOLE |
           ((c->tflags & TF_SEND_FAST_ZERO) ? CMD_FLAG_FAST_ZERO : 0);
  case CMD_BLOCK_STATUS:
    return f | CMD_FLAG_REQ_ONE;
  default:
    return f;
  }
}

/* Returns 0 or the NBD error to answer with (and a message). */
static int validate(const struct conn *c, const struct request *r,
                    const char **msg)
{
  bool writes = r->type == CMD_WRITE || r->type == CMD_TRIM ||
                r->type == CMD_WRITE_ZEROES;

  *msg = "invalid request";
  if (r->type > CMD_BLOCK_STATUS) {
    *msg = "unknown command";
    return WIRE_EINVAL;
  }
  if (r->flags & ~allowed_flags(c, r->type)) {
    *msg = "flags not valid for this command";
    return WIRE_EINVAL;
  }
  if ((r->flags & CMD_FLAG_PAYLOAD_LEN) && r->type != CMD_WRITE) {
    *msg = "no payload expected for this command";
    return WIRE_EINVAL;
  }
  if (writes && (c->tflags & TF_READ_ONLY)) {
    *msg = "the export is read-only";
    return WIRE_EPERM;
  }
  switch (r->type) {
  case CMD_FLUSH:
    if (!c->caps.can_flush) {
      *msg = "flush is not supported";
      return WIRE_EINVAL;
    }
    return r->offset || r->count ? WIRE_EINVAL : 0;
  case CMD_TRIM:
    if (!(c->tflags & TF_SEND_TRIM)) {
      *msg = "trim is not supported";
      return WIRE_EINVAL;
    }
    break;
  case CMD_WRITE_ZEROES:
    if (!(c->tflags & TF_SEND_WRITE_ZEROES)) {
      *msg = "write zeroes is not supported";
      return WIRE_EINVAL;
    }
    break;
  case CMD_CACHE:
    if (!(c->tflags & TF_SEND_CACHE)) {
      *msg = "cache is not supported";
      return WIRE_EINVAL;
    }
    break;
  case CMD_BLOCK_STATUS:
    if (c->metas.len == 0) {
      *msg = "no meta context was negotiated";
      return WIRE_EINVAL;
    }
    break;
  }
  if ((r->type == CMD_READ || r->type == CMD_WRITE) && r->count > MAX_PAYLOAD) {
    *msg = "request larger than the maximum payload";
    return r->type == CMD_READ && c->structured ? WIRE_EOVERFLOW : WIRE_EINVAL;
  }
  if (r->count == 0) {
    *msg = "zero-length request";
    return WIRE_EINVAL;
  }
  if (!range_within(r->offset, r->count, c->size)) {
    *msg = "request beyond the end of the export";
    return r->type == CMD_WRITE || r->type == CMD_WRITE_ZEROES ? WIRE_ENOSPC
                                                               : WIRE_EINVAL;
  }
  return 0;
}

/* ---- execution (worker thread) ---- */

static int execute(struct request *r)
{
  struct conn *c = r->c;
  uint32_t fua = (r->flags & CMD_FLAG_FUA) ? BACKEND_FLAG_FUA : 0;
  uint32_t zf;

  switch (r->type) {
  case CMD_READ:
    return worker_pread(c, r->buf, r->count, r->offset);
  case CMD_WRITE:
    return worker_pwrite(c, r->buf, r->count, r->offset, fua);
  case CMD_FLUSH:
    return worker_flush(c);
  case CMD_TRIM:
    return worker_trim(c, r->count, r->offset, fua);
  case CMD_CACHE:
    return worker_cache(c, r->count, r->offset);
  case CMD_WRITE_ZEROES:
    zf = fua;
    if (!(r->flags & CMD_FLAG_NO_HOLE))
      zf |= BACKEND_FLAG_MAY_TRIM;
    if (r->flags & CMD_FLAG_FAST_ZERO)
      zf |= BACKEND_FLAG_FAST_ZERO;
    return worker_zero(c, r->count, r->offset, zf);
  case CMD_BLOCK_STATUS:
    return 0; /* reply_build queries the extents */
  }
  return -EINVAL;
}

static void request_work(struct pool_job *j)
{
  struct request *r = container_of(j, struct request, job);
  int e;

  worker_set_current(r->c);
  e = execute(r);
  if (e < 0) {
    r->err = (int)reply_errno(e);
    r->errmsg = strerror(-e);
    log_debug("command %u at %" PRIu64 "+%" PRIu64 ": %s", r->type, r->offset,
              r->count, strerror(-e));
  }
  if (reply_build(r) < 0) {
    r->err = WIRE_ENOMEM;
    r->errmsg = "out of memory";
    r->hdrlen = r->niov = 0;
    if (reply_build(r) < 0)
      r->send_reply = false;
  }
  worker_set_current(NULL);
}

static void send_reply(struct request *r)
{
  if (!r->send_reply || r->c->closing_handles)
    conn_request_done(r->c, r);
  else
    output_queue(r->c, r);
}

static void request_after_work(struct pool_job *j)
{
  struct request *r = container_of(j, struct request, job);
  if (__atomic_load_n(&r->c->want_disc, __ATOMIC_ACQUIRE))
    r->c->disc = true; /* the backend asked to hang up */
  if (r->type == CMD_WRITE || r->type == CMD_WRITE_ZEROES ||
      r->type == CMD_TRIM)
    r->c->dirty = true;
  else if (r->type == CMD_FLUSH && r->err == 0)
    r->c->dirty = false;
  send_reply(r);
}

/* Larger reads go to workers, so that copying them overlaps with the
 * loop's sending. */
#define INLINE_READ_MAX (64u * 1024)

/* When every worker is busy and jobs wait, small reads whose data is at
 * hand complete on the loop instead of queueing (the backend promises
 * not to block).  With idle workers the pool is faster: it spreads the
 * work over the CPUs (tests/bench). */
static bool try_read_inline(struct conn *c, struct request *r)
{
  const struct backend *b = c->exp->backend;
  int e;

  if (!b->ops->pread_nowait || b->thread_model != BACKEND_PARALLEL ||
      r->count > INLINE_READ_MAX ||
      __atomic_load_n(&c->srv->pool.queued, __ATOMIC_RELAXED) <
          c->srv->pool.nthreads)
    return false;
  e = b->ops->pread_nowait(c->handle, r->buf, r->count, r->offset);
  if (e == -EAGAIN)
    return false;
  if (e < 0) {
    r->err = (int)reply_errno(e);
    r->errmsg = strerror(-e);
  }
  if (reply_build(r) < 0)
    r->send_reply = false;
  send_reply(r);
  return true;
}

static void dispatch(struct conn *c, struct request *r)
{
  if (r->err) {
    /* Answer at once from the loop: no backend call needed. */
    if (reply_build(r) < 0)
      r->send_reply = false;
    send_reply(r);
    return;
  }
  if (r->type == CMD_READ && try_read_inline(c, r))
    return;
  r->job.work = request_work;
  r->job.done = request_after_work;
  pool_submit(&c->srv->pool, &r->job);
}

void conn_request_done(struct conn *c, struct request *r)
{
  c->inflight--;
  if (r->type == CMD_READ || r->type == CMD_WRITE)
    c->inflight_bytes -= r->count;
  request_release(c, r);
  if (c->disc)
    conn_close_when_idle(c);
  else if (c->state == CS_REQ_HEADER)
    conn_process_input(c);
  else
    conn_update_reading(c);
}

void transmission_payload_done(struct conn *c, struct request *r)
{
  dispatch(c, r);
}

/* ---- parsing ---- */

static int parse_header(struct conn *c, const char *h, struct request *r)
{
  uint32_t magic = load_be32(h);

  if (magic != (c->extended ? EXT_REQUEST_MAGIC : REQUEST_MAGIC)) {
    log_warn("bad request magic 0x%08x: closing", magic);
    return -1;
  }
  r->flags = load_be16(h + 4);
  r->type = load_be16(h + 6);
  r->cookie = load_be64(h + 8);
  r->offset = load_be64(h + 16);
  r->count = c->extended ? load_be64(h + 24) : load_be32(h + 24);
  return 0;
}

int transmission_request(struct conn *c, const char *hdr)
{
  struct request *r = request_get(c);
  const char *msg;
  uint64_t payload;
  int err;

  if (!r) {
    log_error("out of memory");
    return -1;
  }
  if (parse_header(c, hdr, r) < 0) {
    request_release(c, r);
    return -1;
  }
  if (r->type == CMD_DISC) {
    log_debug("client sent NBD_CMD_DISC");
    request_release(c, r);
    conn_close_when_idle(c);
    return 0;
  }
  payload =
      r->type == CMD_WRITE || (c->extended && (r->flags & CMD_FLAG_PAYLOAD_LEN))
          ? r->count
          : 0;
  err = validate(c, r, &msg);
  if (err) {
    log_debug("command %u at %" PRIu64 "+%" PRIu64 ": %s", r->type, r->offset,
              r->count, msg);
    r->err = err;
    r->errmsg = msg;
  } else if (r->type == CMD_READ && request_reserve(r, r->count) < 0) {
    r->err = WIRE_ENOMEM;
    r->errmsg = "out of memory";
  }
  c->inflight++;
  if (r->type == CMD_READ || r->type == CMD_WRITE)
    c->inflight_bytes += r->count;
  if (payload == 0) {
    dispatch(c, r);
    return 0;
  }
  if (!r->err && request_reserve(r, payload) < 0) {
    r->err = WIRE_ENOMEM;
    r->errmsg = "out of memory";
  }
  c->payload_req = r;
  c->payload_got = 0;
  if (r->err) {
    if (payload > MAX_SKIP_PAYLOAD) {
      log_warn("refused payload of %" PRIu64 " bytes: closing", payload);
      c->payload_req = NULL;
      c->inflight--;
      if (r->type == CMD_WRITE)
        c->inflight_bytes -= r->count;
      request_release(c, r);
      return -1;
    }
    c->skip_left = payload;
    c->state = CS_SKIP;
  } else {
    c->state = CS_PAYLOAD;
  }
  return 0;
}

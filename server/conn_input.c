/* The input side of a connection: split the byte stream into client
 * flags, options and requests, and hand each to its handler. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/checked.h"
#include "util/endian.h"
#include "util/log.h"

static size_t avail(const struct conn *c)
{
  return c->rlen - c->rpos;
}

static void consume(struct conn *c, size_t n)
{
  c->rpos += n;
}

/* The 32-bit client flags (fixed newstyle section). */
static int input_client_flags(struct conn *c)
{
  uint32_t f = load_be32(c->rbuf + c->rpos);

  consume(c, 4);
  if (f & ~(uint32_t)(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) {
    log_warn("unknown client flags 0x%x: closing", f);
    return -1;
  }
  c->client_flags = f;
  c->state = CS_OPT_HEADER;
  return 0;
}

/* An option header; its data is processed once fully buffered. */
static int input_option(struct conn *c)
{
  const char *p = c->rbuf + c->rpos;
  uint32_t len;

  if (load_be64(p) != IHAVEOPT) {
    log_warn("bad option magic: closing");
    return -1;
  }
  if (++c->nopts > MAX_OPTIONS) {
    log_warn("more than %u options: closing", MAX_OPTIONS);
    return -1;
  }
  len = load_be32(p + 12);
  if (len > MAX_OPTION_SKIP) {
    log_warn("option of %u bytes: closing", len);
    return -1;
  }
  if (len > MAX_OPTION_LEN) {
    /* Discard the data, then answer ERR_TOO_BIG. */
    c->cur_opt = load_be32(p + 8);
    consume(c, 16);
    log_warn("option %u: %u bytes of data is too much", c->cur_opt, len);
    c->opt_too_big = true;
    c->skip_left = len;
    c->state = CS_SKIP;
    return 0;
  }
  if (avail(c) < 16 + (size_t)len)
    return 1; /* wait for the rest */
  c->cur_opt = load_be32(p + 8);
  c->cur_opt_len = len;
  consume(c, 16);
  c->state = CS_OPT_BUSY;
  handshake_start_option(c);
  return 0;
}

void conn_option_done(struct conn *c, struct opt_out *o)
{
  if (o->len)
    conn_send_copy(c, o->buf, o->len);
  consume(c, c->cur_opt_len);
  c->cur_opt_len = 0;
  c->opt_out = NULL;
  if (c->disc) {
    /* Closed while the option ran (timeout, shutdown). */
  } else if (o->close) {
    conn_close_when_idle(c);
  } else if (o->enter_transmission) {
    uv_timer_stop(&c->handshake_timer);
    c->state = CS_REQ_HEADER;
    log_debug("transmission phase on export '%s'", c->exp->name);
  } else {
    c->state = CS_OPT_HEADER;
  }
  free(o->buf);
  free(o);
  if (c->disc) {
    conn_close_when_idle(c);
    return;
  }
  conn_update_reading(c);
  conn_process_input(c);
}

/* Skipped bytes are gone: answer what they belonged to. */
static void input_skip_done(struct conn *c)
{
  if (c->opt_too_big) {
    struct opt_out o = {0};
    c->opt_too_big = false;
    c->state = CS_OPT_HEADER;
    if (opt_reply_err(&o, c->cur_opt, REP_ERR_TOO_BIG,
                      "option data too large") == 0)
      conn_send_copy(c, o.buf, o.len);
    free(o.buf);
    return;
  }
  struct request *r = c->payload_req;
  c->payload_req = NULL;
  c->state = CS_REQ_HEADER;
  transmission_payload_done(c, r);
}

/* Copy buffered bytes into the pending WRITE payload. */
static void input_payload(struct conn *c)
{
  struct request *r = c->payload_req;
  size_t n = MIN(avail(c), (size_t)(r->count - c->payload_got));

  memcpy(r->buf + c->payload_got, c->rbuf + c->rpos, n);
  consume(c, n);
  c->payload_got += n;
  if (c->payload_got == r->count) {
    c->payload_req = NULL;
    c->state = CS_REQ_HEADER;
    transmission_payload_done(c, r);
  }
}

static bool over_limits(const struct conn *c)
{
  return c->inflight >= CONN_MAX_INFLIGHT ||
         c->inflight_bytes >= CONN_MAX_INFLIGHT_BYTES;
}

/* One step of the parser; returns 1 to wait for input, 0 to go on,
 * -1 to drop the connection. */
static int input_step(struct conn *c)
{
  char req[EXT_REQ_HDR_SIZE];
  size_t hdr;

  switch (c->state) {
  case CS_CLIENT_FLAGS:
    return avail(c) < 4 ? 1 : input_client_flags(c);
  case CS_OPT_HEADER:
    return avail(c) < 16 ? 1 : input_option(c);
  case CS_REQ_HEADER:
    /* c->extended is only read once transmission began. */
    hdr = c->extended ? EXT_REQ_HDR_SIZE : REQ_HDR_SIZE;
    if (avail(c) < hdr || over_limits(c))
      return 1;
    memcpy(req, c->rbuf + c->rpos, hdr);
    consume(c, hdr);
    return transmission_request(c, req) < 0 ? -1 : 0;
  case CS_PAYLOAD:
    if (avail(c) == 0)
      return 1;
    input_payload(c);
    return 0;
  case CS_SKIP: {
    size_t n = (size_t)MIN((uint64_t)avail(c), c->skip_left);
    consume(c, n);
    c->skip_left -= n;
    if (c->skip_left > 0)
      return 1;
    input_skip_done(c);
    return 0;
  }
  case CS_OPT_BUSY:
  case CS_CLOSING:
    return 1;
  }
  return 1;
}

void conn_process_input(struct conn *c)
{
  int r;

  while ((r = input_step(c)) == 0)
    ;
  if (r < 0)
    conn_close_when_idle(c);
  else
    conn_update_reading(c);
}

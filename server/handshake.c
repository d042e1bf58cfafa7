/* Option haggling (fixed newstyle handshake): the greeting, the option
 * dispatcher that runs each option on a worker thread, and the simple
 * options (ABORT, LIST, STARTTLS, STRUCTURED_REPLY, EXTENDED_HEADERS).
 * INFO/GO live in handshake_info.c, meta contexts in handshake_meta.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/endian.h"
#include "util/log.h"

void handshake_greeting(char out[18])
{
  store_be64(out, NBDMAGIC);
  store_be64(out + 8, IHAVEOPT);
  store_be16(out + 16, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
}

int opt_append(struct opt_out *o, const void *data, size_t len)
{
  if (len == 0)
    return 0;
  if (o->cap - o->len < len) {
    size_t ncap = o->cap ? o->cap * 2 : 256;
    while (ncap - o->len < len)
      ncap *= 2;
    char *p = realloc(o->buf, ncap);
    if (!p)
      return -ENOMEM;
    o->buf = p;
    o->cap = ncap;
  }
  memcpy(o->buf + o->len, data, len);
  o->len += len;
  return 0;
}

/* One option reply: magic, option, type, length, data. */
int opt_reply(struct opt_out *o, uint32_t opt, uint32_t type, const void *data,
              uint32_t len)
{
  char hdr[20];
  store_be64(hdr, REP_MAGIC);
  store_be32(hdr + 8, opt);
  store_be32(hdr + 12, type);
  store_be32(hdr + 16, len);
  if (opt_append(o, hdr, sizeof hdr) < 0 || opt_append(o, data, len) < 0)
    return -ENOMEM;
  return 0;
}

/* An error reply; the message is for humans (clients may print it). */
int opt_reply_err(struct opt_out *o, uint32_t opt, uint32_t type,
                  const char *msg)
{
  log_debug("option %u: error reply 0x%x: %s", opt, type, msg);
  return opt_reply(o, opt, type, msg, (uint32_t)strlen(msg));
}

static int opt_list_exports(struct conn *c, const struct export_vec *ev,
                            uint32_t len, struct opt_out *o)
{
  if (len != 0)
    return opt_reply_err(o, OPT_LIST, REP_ERR_INVALID,
                         "NBD_OPT_LIST takes no data");
  for (size_t i = 0; i < ev->len; i++) {
    struct export *e = ev->ptr[i];
    struct backend_export_entry *ents = NULL;
    struct backend_conn_info ci;
    int n = -ENOTSUP;

    conn_info(c, &ci);
    ci.readonly = e->readonly;
    if (e->backend->ops->list_exports) {
      worker_lock_export(e);
      n = e->backend->ops->list_exports(e->backend, &ci, &ents);
      worker_unlock_export(e);
    }
    if (n == -ENOTSUP) {
      /* Just the export's own name (and description). */
      struct backend_export_entry self = {e->name, e->description};
      if (handshake_list_entry(o, &self) < 0)
        return -ENOMEM;
      continue;
    }
    if (n < 0)
      return opt_reply_err(o, OPT_LIST, REP_ERR_PLATFORM,
                           "the backend could not list its exports");
    int r = 0;
    for (int k = 0; k < n; k++) {
      if (r == 0)
        r = handshake_list_entry(o, &ents[k]);
      free(ents[k].name);
      free(ents[k].description);
    }
    free(ents);
    if (r < 0)
      return r;
  }
  return opt_reply(o, OPT_LIST, REP_ACK, NULL, 0);
}

/* The exports this client may use, held while they are listed (a
 * reload may remove them meanwhile). */
static int opt_list(struct conn *c, uint32_t len, struct opt_out *o)
{
  struct export_vec ev;
  int r;

  if (exports_snapshot(c, &ev) < 0)
    return -ENOMEM;
  r = opt_list_exports(c, &ev, len, o);
  exports_snapshot_release(&ev);
  return r;
}

/* NBD_REP_SERVER: name length, name, then the description as the
 * implementation-specific details (what clients show). */
int handshake_list_entry(struct opt_out *o,
                         const struct backend_export_entry *e)
{
  size_t nl = strlen(e->name);
  size_t dl = e->description ? strlen(e->description) : 0;
  char *buf;
  int r;

  if (nl > MAX_STRING)
    nl = MAX_STRING;
  if (dl > MAX_STRING)
    dl = MAX_STRING;
  buf = malloc(4 + nl + dl);
  if (!buf)
    return -ENOMEM;
  store_be32(buf, (uint32_t)nl);
  memcpy(buf + 4, e->name, nl);
  if (dl)
    memcpy(buf + 4 + nl, e->description, dl);
  r = opt_reply(o, OPT_LIST, REP_SERVER, buf, (uint32_t)(4 + nl + dl));
  free(buf);
  return r;
}

static int opt_structured(struct conn *c, uint32_t len, struct opt_out *o)
{
  if (len != 0)
    return opt_reply_err(o, OPT_STRUCTURED_REPLY, REP_ERR_INVALID,
                         "NBD_OPT_STRUCTURED_REPLY takes no data");
  if (c->extended) /* no downgrade (as QEMU answers) */
    return opt_reply_err(o, OPT_STRUCTURED_REPLY, REP_ERR_EXT_HEADER_REQD,
                         "extended headers are already negotiated");
  if (c->structured)
    return opt_reply_err(o, OPT_STRUCTURED_REPLY, REP_ERR_INVALID,
                         "structured replies are already negotiated");
  c->structured = true;
  return opt_reply(o, OPT_STRUCTURED_REPLY, REP_ACK, NULL, 0);
}

static int opt_extended(struct conn *c, uint32_t len, struct opt_out *o)
{
  if (len != 0)
    return opt_reply_err(o, OPT_EXTENDED_HEADERS, REP_ERR_INVALID,
                         "NBD_OPT_EXTENDED_HEADERS takes no data");
  if (c->extended)
    return opt_reply_err(o, OPT_EXTENDED_HEADERS, REP_ERR_INVALID,
                         "extended headers are already negotiated");
  /* Extended headers imply structured replies. */
  c->extended = c->structured = true;
  return opt_reply(o, OPT_EXTENDED_HEADERS, REP_ACK, NULL, 0);
}

/* Dispatch one option; returns <0 only for internal failures. */
static int handshake_option(struct conn *c, uint32_t opt, const char *data,
                            uint32_t len, struct opt_out *o)
{
  /* Read on a worker while the loop may set it. */
  if (__atomic_load_n(&c->srv->shutting_down, __ATOMIC_RELAXED) &&
      opt != OPT_ABORT)
    return opt_reply_err(o, opt, REP_ERR_SHUTDOWN, "server shutting down");
  switch (opt) {
  case OPT_EXPORT_NAME:
    return handshake_export_name(c, data, len, o);
  case OPT_ABORT:
    o->close = true;
    return opt_reply(o, OPT_ABORT, REP_ACK, NULL, 0);
  case OPT_LIST:
    return opt_list(c, len, o);
  case OPT_STARTTLS:
    if (len != 0)
      return opt_reply_err(o, opt, REP_ERR_INVALID,
                           "NBD_OPT_STARTTLS takes no data");
    return opt_reply_err(o, opt, REP_ERR_POLICY, "TLS is not available");
  case OPT_INFO:
  case OPT_GO:
    return handshake_info_go(c, opt, data, len, o);
  case OPT_STRUCTURED_REPLY:
    return opt_structured(c, len, o);
  case OPT_LIST_META_CONTEXT:
  case OPT_SET_META_CONTEXT:
    return handshake_meta(c, opt, data, len, o);
  case OPT_EXTENDED_HEADERS:
    return opt_extended(c, len, o);
  default:
    return opt_reply_err(o, opt, REP_ERR_UNSUP, "unknown option");
  }
}

static void option_work(struct pool_job *j)
{
  struct conn *c = container_of(j, struct conn, opt_job);
  struct opt_out *o = c->opt_out;

  worker_set_current(c);
  log_debug("option %u (%u bytes)", c->cur_opt, c->cur_opt_len);
  if (handshake_option(c, c->cur_opt, c->rbuf + c->rpos, c->cur_opt_len, o) <
      0) {
    log_error("option %u: out of memory", c->cur_opt);
    o->close = true;
  }
  if (__atomic_load_n(&c->want_disc, __ATOMIC_ACQUIRE))
    o->close = true;
  worker_set_current(NULL);
}

static void option_after_work(struct pool_job *j)
{
  struct conn *c = container_of(j, struct conn, opt_job);
  log_set_conn(c->id);
  conn_option_done(c, c->opt_out);
  log_set_conn(0);
}

void handshake_start_option(struct conn *c)
{
  c->opt_out = calloc(1, sizeof *c->opt_out);
  if (!c->opt_out) {
    log_error("out of memory");
    conn_close_when_idle(c);
    return;
  }
  c->opt_job.work = option_work;
  c->opt_job.done = option_after_work;
  conn_update_reading(c);
  pool_submit(&c->srv->pool, &c->opt_job);
}

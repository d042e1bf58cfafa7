/* NBD_OPT_INFO, NBD_OPT_GO and NBD_OPT_EXPORT_NAME: choosing an export,
 * opening its backend handle and describing it to the client. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/endian.h"
#include "util/log.h"

uint16_t handshake_tflags(const struct conn *c)
{
  const struct backend_caps *k = &c->caps;
  bool ro = c->exp->readonly || !k->can_write;
  uint16_t f = TF_HAS_FLAGS;

  if (ro)
    f |= TF_READ_ONLY;
  if (k->can_flush)
    f |= TF_SEND_FLUSH;
  if (k->can_fua != BACKEND_SUPPORT_NONE && !ro)
    f |= TF_SEND_FUA;
  if (k->is_rotational)
    f |= TF_ROTATIONAL;
  if (k->can_trim && !ro)
    f |= TF_SEND_TRIM;
  if (k->can_zero != BACKEND_SUPPORT_NONE && !ro) {
    f |= TF_SEND_WRITE_ZEROES;
    f |= TF_SEND_FAST_ZERO; /* we answer ENOTSUP fast when we can't */
  }
  if (c->structured)
    f |= TF_SEND_DF;
  if (k->can_multi_conn)
    f |= TF_CAN_MULTI_CONN;
  if (k->can_cache != BACKEND_SUPPORT_NONE)
    f |= TF_SEND_CACHE;
  return f;
}

int handshake_open_export(struct conn *c, struct export *e, const char *name)
{
  const struct backend_ops *ops = e->backend->ops;
  struct backend_conn_info ci;
  int r;

  free(c->export_name);
  c->export_name = strdup(name);
  if (!c->export_name)
    return -ENOMEM;
  c->exp = e;
  conn_info(c, &ci);
  worker_lock_export(e);
  r = ops->open(e->backend, &ci, &c->handle);
  worker_unlock_export(e);
  if (r < 0) {
    log_warn("export '%s': open failed: %s", name, strerror(-r));
    c->exp = NULL;
    return r;
  }
  c->handle_open = true;
  worker_lock(c);
  c->caps = (struct backend_caps){0};
  c->bs = (struct backend_block_size){0};
  r = ops->get_size(c->handle, &c->size);
  if (r >= 0)
    r = ops->caps(c->handle, &c->caps);
  if (r >= 0 && ops->block_size)
    r = ops->block_size(c->handle, &c->bs);
  c->nctx = 0;
  c->ctx_names = NULL;
  if (r >= 0 && ops->meta_contexts) {
    r = ops->meta_contexts(c->handle, &c->ctx_names);
    if (r >= 0)
      c->nctx = r;
  }
  worker_unlock(c);
  if (r < 0) {
    log_warn("export '%s': cannot query the backend: %s", name, strerror(-r));
    handshake_close_export(c);
    return r;
  }
  if (e->readonly)
    c->caps.can_write = false;
  c->tflags = handshake_tflags(c);
  return 0;
}

void handshake_close_export(struct conn *c)
{
  if (!c->handle_open)
    return;
  worker_lock(c);
  c->exp->backend->ops->close(c->exp->backend, c->handle);
  worker_unlock(c);
  c->handle_open = false;
  c->handle = NULL;
  c->ctx_names = NULL;
  c->nctx = 0;
}

/* The block sizes we advertise: the backend's, or ours. */
static void block_sizes(const struct conn *c, uint32_t out[3])
{
  out[0] = c->bs.minimum ? c->bs.minimum : 1;
  out[1] = c->bs.preferred ? c->bs.preferred : 4096;
  out[2] = c->bs.maximum && c->bs.maximum < MAX_PAYLOAD ? c->bs.maximum
                                                        : MAX_PAYLOAD;
  if (out[1] < out[0])
    out[1] = out[0];
}

static int info_reply(struct conn *c, uint32_t opt, uint16_t type,
                      struct opt_out *o)
{
  char buf[2 + MAX_STRING + 16];
  uint32_t len = 2;
  uint32_t bs[3];
  const char *s;

  store_be16(buf, type);
  switch (type) {
  case INFO_EXPORT:
    store_be64(buf + 2, c->size);
    store_be16(buf + 10, c->tflags);
    len = 12;
    break;
  case INFO_NAME:
    s = c->export_name;
    len += (uint32_t)strnlen(s, MAX_STRING);
    memcpy(buf + 2, s, len - 2);
    break;
  case INFO_DESCRIPTION:
    s = c->exp->description;
    if (!s) {
      /* The backend's own (an nbdkit plugin's export_description). */
      const struct backend_ops *ops = c->exp->backend->ops;
      char *d = NULL;
      if (!ops->description)
        return 0;
      worker_lock(c);
      int r = ops->description(c->handle, &d);
      worker_unlock(c);
      if (r < 0 || !d)
        return 0;
      len += (uint32_t)strnlen(d, MAX_STRING);
      memcpy(buf + 2, d, len - 2);
      free(d);
      break;
    }
    len += (uint32_t)strnlen(s, MAX_STRING);
    memcpy(buf + 2, s, len - 2);
    break;
  case INFO_BLOCK_SIZE:
    block_sizes(c, bs);
    store_be32(buf + 2, bs[0]);
    store_be32(buf + 6, bs[1]);
    store_be32(buf + 10, bs[2]);
    len = 14;
    break;
  default:
    return 0; /* unknown requests are ignored (spec) */
  }
  return opt_reply(o, opt, REP_INFO, buf, len);
}

/* Parse INFO/GO data: u32 name length, name, u16 count, count * u16. */
static int parse_info_request(const char *data, uint32_t len, char **name,
                              const char **reqs, uint16_t *nreqs)
{
  uint32_t nl;

  if (len < 6)
    return -1;
  nl = load_be32(data);
  if (nl > MAX_STRING || nl > len - 6)
    return -1;
  *nreqs = load_be16(data + 4 + nl);
  if (len != 6 + nl + 2u * *nreqs)
    return -1;
  *reqs = data + 6 + nl;
  *name = strndup(data + 4, nl);
  return *name ? 0 : -2;
}

int handshake_info_go(struct conn *c, uint32_t opt, const char *data,
                      uint32_t len, struct opt_out *o)
{
  const char *reqs;
  uint16_t nreqs;
  char *name = NULL;
  struct export *e;
  int r;

  r = parse_info_request(data, len, &name, &reqs, &nreqs);
  if (r == -2)
    return -ENOMEM;
  if (r < 0)
    return opt_reply_err(o, opt, REP_ERR_INVALID, "malformed request");
  if (strlen(name) != load_be32(data)) {
    free(name);
    return opt_reply_err(o, opt, REP_ERR_INVALID, "NUL in export name");
  }
  e = exports_get(c, name);
  if (!e) {
    log_info("client asked for unknown export '%s'", name);
    free(name);
    return opt_reply_err(o, opt, REP_ERR_UNKNOWN, "no such export");
  }
  handshake_close_export(c); /* an earlier INFO/GO's handle */
  r = handshake_open_export(c, e, name);
  free(name);
  if (r == -ENOMEM)
    return r;
  if (r < 0)
    return opt_reply_err(o, opt, REP_ERR_UNKNOWN,
                         "the export could not be opened");

  /* Always send EXPORT and BLOCK_SIZE; NAME, DESCRIPTION on request. */
  bool sent_bs = false;
  for (uint16_t i = 0; i < nreqs; i++) {
    uint16_t t = load_be16(reqs + 2 * i);
    if (t == INFO_EXPORT)
      continue;
    sent_bs |= t == INFO_BLOCK_SIZE;
    if (info_reply(c, opt, t, o) < 0)
      return -ENOMEM;
  }
  if ((!sent_bs && info_reply(c, opt, INFO_BLOCK_SIZE, o) < 0) ||
      info_reply(c, opt, INFO_EXPORT, o) < 0)
    return -ENOMEM;
  if (opt == OPT_INFO) {
    handshake_close_export(c);
    c->exp = NULL;
    return opt_reply(o, opt, REP_ACK, NULL, 0);
  }
  handshake_meta_check_export(c);
  o->enter_transmission = true;
  return opt_reply(o, opt, REP_ACK, NULL, 0);
}

/* NBD_OPT_EXPORT_NAME: no error reply is possible, so failures close. */
int handshake_export_name(struct conn *c, const char *data, uint32_t len,
                          struct opt_out *o)
{
  char *name;
  struct export *e;
  char reply[10 + 124] = {0};
  int r;

  if (len > MAX_STRING) {
    log_warn("NBD_OPT_EXPORT_NAME: name too long");
    o->close = true;
    return 0;
  }
  name = strndup(data, len);
  if (!name)
    return -ENOMEM;
  e = exports_get(c, name);
  if (!e || strlen(name) != len) {
    log_info("client asked for unknown export '%s': closing", name);
    free(name);
    o->close = true;
    return 0;
  }
  handshake_close_export(c);
  r = handshake_open_export(c, e, name);
  free(name);
  if (r < 0) {
    o->close = true;
    return r == -ENOMEM ? r : 0;
  }
  handshake_meta_check_export(c);
  store_be64(reply, c->size);
  store_be16(reply + 8, c->tflags);
  o->enter_transmission = true;
  return opt_append(o, reply,
                    c->client_flags & FLAG_C_NO_ZEROES ? 10 : sizeof reply);
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT ("Metadata
 * querying" in the spec): base:allocation plus whatever contexts the
 * backend offers (qemu:allocation-depth, qemu:dirty-bitmap:NAME).
 *
 * Context k (0: base:allocation, k >= 1: the backend's name k-1) has the
 * id k + 1 on the wire, the same on every connection. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/endian.h"
#include "util/log.h"

#define BASE_ALLOCATION "base:allocation"

static const char *ctx_name(const char *const *names, unsigned k)
{
  return k == 0 ? BASE_ALLOCATION : names[k - 1];
}

/* True when query selects name: LIST also takes "ns:" style prefixes
 * that end in ':' (e.g. "base:", "qemu:dirty-bitmap:"). */
static bool query_matches(const char *q, size_t ql, const char *name, bool list)
{
  size_t nl = strlen(name);
  if (ql == nl && !memcmp(q, name, nl))
    return true;
  return list && ql > 0 && ql < nl && q[ql - 1] == ':' && !memcmp(q, name, ql);
}

static int reply_ctx(struct opt_out *o, uint32_t opt, unsigned k,
                     const char *name)
{
  size_t nl = strlen(name);
  char *buf = malloc(4 + nl);
  int r;
  if (!buf)
    return -ENOMEM;
  /* LIST answers carry id 0 ("Metadata querying" in the spec). */
  store_be32(buf, opt == OPT_LIST_META_CONTEXT ? 0 : k + 1);
  memcpy(buf + 4, name, nl);
  r = opt_reply(o, opt, REP_META_CONTEXT, buf, (uint32_t)(4 + nl));
  free(buf);
  return r;
}

/* Check the queries' framing; returns the count or -1. */
static int check_queries(const char *p, uint32_t left, uint32_t nq)
{
  for (uint32_t i = 0; i < nq; i++) {
    uint32_t ql;
    if (left < 4)
      return -1;
    ql = load_be32(p);
    if (ql > MAX_STRING || ql > left - 4)
      return -1;
    p += 4 + ql;
    left -= 4 + ql;
  }
  return left == 0 ? (int)nq : -1;
}

/* Select or list the contexts the queries name. */
static int answer_queries(struct conn *c, uint32_t opt, const char *p,
                          uint32_t nq, struct opt_out *o)
{
  bool list = opt == OPT_LIST_META_CONTEXT;
  unsigned total = 1 + (unsigned)c->nctx;

  if (!list)
    meta_sel_vec_reset(&c->metas);
  for (unsigned k = 0; k < total; k++) {
    const char *name = ctx_name(c->ctx_names, k);
    bool hit = list && nq == 0;
    const char *q = p;

    for (uint32_t i = 0; i < nq && !hit; i++) {
      uint32_t ql = load_be32(q);
      hit = query_matches(q + 4, ql, name, list);
      q += 4 + ql;
    }
    if (!hit)
      continue;
    if (!list &&
        meta_sel_vec_append(&c->metas, (struct meta_sel){k + 1, k}) < 0)
      return -ENOMEM;
    if (reply_ctx(o, opt, k, name) < 0)
      return -ENOMEM;
  }
  return opt_reply(o, opt, REP_ACK, NULL, 0);
}

int handshake_meta(struct conn *c, uint32_t opt, const char *data, uint32_t len,
                   struct opt_out *o)
{
  uint32_t nl, nq;
  char *name;
  struct export *e;
  int r;

  if (opt == OPT_SET_META_CONTEXT && !c->structured)
    return opt_reply_err(o, opt, REP_ERR_INVALID,
                         "negotiate structured replies first");
  if (len < 8 || (nl = load_be32(data)) > MAX_STRING || nl > len - 8)
    return opt_reply_err(o, opt, REP_ERR_INVALID, "malformed request");
  nq = load_be32(data + 4 + nl);
  if (check_queries(data + 8 + nl, len - 8 - nl, nq) < 0)
    return opt_reply_err(o, opt, REP_ERR_INVALID, "malformed query list");
  name = strndup(data + 4, nl);
  if (!name)
    return -ENOMEM;
  e = strlen(name) == nl ? exports_get(c, name) : NULL;
  if (!e) {
    free(name);
    return opt_reply_err(o, opt, REP_ERR_UNKNOWN, "no such export");
  }
  /* The contexts depend on the export: ask a handle of it. */
  handshake_close_export(c);
  r = handshake_open_export(c, e, name);
  if (r < 0) {
    free(name);
    return r == -ENOMEM ? r
                        : opt_reply_err(o, opt, REP_ERR_UNKNOWN,
                                        "the export could not be opened");
  }
  r = answer_queries(c, opt, data + 8 + nl, nq, o);
  handshake_close_export(c);
  c->exp = NULL;
  if (opt == OPT_SET_META_CONTEXT) {
    free(c->meta_export);
    c->meta_export = name;
  } else {
    free(name);
  }
  return r;
}

void handshake_meta_check_export(struct conn *c)
{
  if (c->metas.len &&
      (!c->meta_export || strcmp(c->meta_export, c->export_name) != 0)) {
    log_info("meta contexts were set for another export: dropped");
    meta_sel_vec_reset(&c->metas);
  }
  /* The backend might offer fewer contexts on this handle. */
  for (size_t i = 0; i < c->metas.len; i++)
    if (c->metas.ptr[i].ctx > (unsigned)c->nctx) {
      meta_sel_vec_reset(&c->metas);
      break;
    }
}

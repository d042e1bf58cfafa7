/* Sending replies: completed requests queue their reply on the
 * connection, and once per loop iteration (a uv_check handle) every
 * connection's queue goes out in as few writev calls as possible, so
 * a burst of small replies costs one system call, not one each. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/checked.h"
#include "util/log.h"

#define OUT_MAX_IOV 1024 /* IOV_MAX on Linux */

static void on_reply_written(uv_write_t *w, int status)
{
  struct request *r = w->data;
  conn_request_done(r->c, r);
}

void output_queue(struct conn *c, struct request *r)
{
  struct server *srv = c->srv;

  r->next_out = NULL;
  if (c->outq_tail)
    c->outq_tail->next_out = r;
  else
    c->outq_head = r;
  c->outq_tail = r;
  if (!c->out_pending) {
    c->out_pending = true;
    c->flush_next = srv->flush_list;
    srv->flush_list = c;
  }
}

/* Hand requests from r onwards to libuv's write queue, in order. */
static void write_async(struct conn *c, struct request *r)
{
  while (r) {
    struct request *next = r->next_out;
    int e = -EPIPE;
    r->wreq.data = r;
    if (!c->closing_handles)
      e = uv_write(&r->wreq, conn_out(c), r->iov, r->niov, on_reply_written);
    if (e < 0)
      conn_request_done(c, r);
    r = next;
  }
}

/* Skip n written bytes of r's iovecs; true when r is complete. */
static bool advance(struct request *r, size_t *n)
{
  unsigned i = 0;
  while (i < r->niov && *n >= r->iov[i].len) {
    *n -= r->iov[i].len;
    i++;
  }
  if (i == r->niov)
    return true;
  r->iov[i].base += *n;
  r->iov[i].len -= *n;
  *n = 0;
  memmove(r->iov, r->iov + i, (r->niov - i) * sizeof r->iov[0]);
  r->niov -= i;
  return false;
}

static void output_flush(struct conn *c)
{
  uv_buf_t bufs[OUT_MAX_IOV];

  while (c->outq_head) {
    struct request *r = c->outq_head, *last = NULL;
    unsigned nb = 0;

    /* Gather whole replies that fit in one writev. */
    for (; r && nb + r->niov <= OUT_MAX_IOV; r = r->next_out) {
      memcpy(bufs + nb, r->iov, r->niov * sizeof bufs[0]);
      nb += r->niov;
      last = r;
    }
    r = c->outq_head;
    if (!last) { /* one reply with more iovecs than a writev takes */
      c->outq_head = c->outq_tail = NULL;
      write_async(c, r);
      return;
    }
    c->outq_head = last->next_out;
    if (!c->outq_head)
      c->outq_tail = NULL;
    last->next_out = NULL;

    int w = c->closing_handles ? UV_EPIPE : uv_try_write(conn_out(c), bufs, nb);
    size_t n = w > 0 ? (size_t)w : 0;
    if (w < 0 && w != UV_EAGAIN) {
      log_debug("write: %s", uv_strerror(w));
      n = 0;
    }
    while (r) {
      struct request *next = r->next_out;
      if (w >= 0 && w != UV_EAGAIN && !advance(r, &n)) {
        write_async(c, r); /* partly written: libuv sends the rest */
        break;
      }
      if (w < 0 && w != UV_EAGAIN) {
        conn_request_done(c, r); /* the client is gone */
      } else if (w == UV_EAGAIN) {
        write_async(c, r);
        break;
      } else {
        conn_request_done(c, r);
      }
      r = next;
    }
  }
}

static void on_check(uv_check_t *h)
{
  struct server *srv = h->data;
  struct conn *c;

  while ((c = srv->flush_list)) {
    srv->flush_list = c->flush_next;
    c->out_pending = false;
    output_flush(c);
  }
}

void output_init(struct server *srv)
{
  uv_check_init(srv->loop, &srv->flush_check);
  srv->flush_check.data = srv;
  uv_check_start(&srv->flush_check, on_check);
  uv_unref((uv_handle_t *)&srv->flush_check);
}

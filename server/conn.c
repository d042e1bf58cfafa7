/* One client connection: accepting it, reading its bytes into the
 * handshake or transmission parser, back-pressure, and closing it once
 * its in-flight work is done. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "util/checked.h"
#include "util/endian.h"
#include "util/log.h"

#define RBUF_CHUNK (64u * 1024)

static void conn_maybe_finish(struct conn *c);

uv_stream_t *conn_out(struct conn *c)
{
  return c->stdio ? (uv_stream_t *)&c->out_pipe : &c->h.stream;
}

void conn_info(const struct conn *c, struct backend_conn_info *ci)
{
  *ci = (struct backend_conn_info){
      .conn_id = c->id,
      .export_name = c->export_name,
      .readonly = c->exp ? c->exp->readonly : false,
      .is_tls = false,
      .fd = c->fd,
  };
}

static struct conn *conn_alloc(struct server *srv)
{
  struct conn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->srv = srv;
  c->id = ++srv->next_conn_id;
  c->fd = -1;
  c->h.handle.data = c;
  pthread_mutex_init(&c->handle_lock, NULL);
  return c;
}

static void conn_link(struct conn *c)
{
  struct server *srv = c->srv;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->nconns++;
}

static void conn_free(struct conn *c)
{
  struct server *srv = c->srv;

  if (c->prev)
    c->prev->next = c->next;
  else if (srv->conns == c)
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  srv->nconns--;
  request_free_all(c);
  meta_sel_vec_reset(&c->metas);
  pthread_mutex_destroy(&c->handle_lock);
  exports_conn_release(c);
  free(c->meta_export);
  free(c->export_name);
  free(c->rbuf);
  free(c);
  log_set_conn(0);

  if (srv->stdio_mode)
    server_shutdown(srv);
  else if (srv->waiting && !srv->shutting_down && srv->nconns == 0) {
    /* Serialised connections: start the next one in line. */
    struct conn *next = srv->waiting;
    srv->waiting = next->next;
    next->next = NULL;
    conn_link(next);
    conn_start(next);
  }
}

static void on_handle_closed(uv_handle_t *h)
{
  struct conn *c = h->data;
  if (--c->closing_handles == 0)
    conn_free(c);
}

static void conn_close_handles(struct conn *c)
{
  c->closing_handles = 2 + c->stdio;
  uv_close(&c->h.handle, on_handle_closed);
  uv_close((uv_handle_t *)&c->handshake_timer, on_handle_closed);
  if (c->stdio)
    uv_close((uv_handle_t *)&c->out_pipe, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
  conn_close_handles(req->data);
}

/* Flush unflushed writes and close the backend handle (on a worker:
 * plugins may block in close). */
static void close_work(struct pool_job *j)
{
  struct conn *c = container_of(j, struct conn, close_job);
  worker_set_current(c);
  if (c->dirty && c->caps.can_flush && worker_flush(c) < 0)
    log_warn("flush on disconnect failed");
  handshake_close_export(c);
  worker_set_current(NULL);
}

static void after_close_work(struct pool_job *j)
{
  struct conn *c = container_of(j, struct conn, close_job);
  c->handle_open = false;
  conn_maybe_finish(c);
}

/* Close once nothing is in flight: backend handle, then the socket
 * after pending replies are written. */
static void conn_maybe_finish(struct conn *c)
{
  if (!c->disc || c->inflight > 0 || c->opt_out != NULL ||
      c->closing_handles > 0)
    return;
  if (c->handle_open) {
    if (c->close_job.work == NULL) {
      c->close_job.work = close_work;
      c->close_job.done = after_close_work;
      pool_submit(&c->srv->pool, &c->close_job);
    }
    return;
  }
  c->closing_handles = 1; /* until the shutdown completes */
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, conn_out(c), on_shutdown) < 0)
    conn_close_handles(c);
}

/* Forget a request whose payload will never arrive. */
static void conn_drop_payload(struct conn *c)
{
  if (c->payload_req && (c->state == CS_PAYLOAD || c->state == CS_SKIP)) {
    request_release(c, c->payload_req);
    c->payload_req = NULL;
    c->inflight--;
  }
}

void conn_close_when_idle(struct conn *c)
{
  conn_drop_payload(c);
  c->disc = true;
  c->state = CS_CLOSING;
  uv_timer_stop(&c->handshake_timer);
  conn_update_reading(c);
  conn_maybe_finish(c);
}

static void on_write_copy(uv_write_t *w, int status)
{
  free(w);
}

int conn_send_copy(struct conn *c, const void *data, size_t len)
{
  uv_write_t *w = malloc(sizeof *w + len);
  uv_buf_t b;
  int r;

  if (!w)
    return -ENOMEM;
  memcpy(w + 1, data, len);
  b = uv_buf_init((char *)(w + 1), (unsigned)len);
  r = uv_write(w, conn_out(c), &b, 1, on_write_copy);
  if (r < 0)
    free(w);
  return r;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  struct conn *c = h->data;

  if (c->state == CS_PAYLOAD) {
    /* Zero copy: the payload goes straight into the request. */
    struct request *r = c->payload_req;
    *buf = uv_buf_init(r->buf + c->payload_got,
                       (unsigned)(r->count - c->payload_got));
    return;
  }
  if (c->rpos > 0) {
    memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
    c->rlen -= c->rpos;
    c->rpos = 0;
  }
  if (c->rcap - c->rlen < RBUF_CHUNK / 4) {
    size_t ncap = c->rlen + RBUF_CHUNK;
    char *p = realloc(c->rbuf, ncap);
    if (!p) {
      *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
      return;
    }
    c->rbuf = p;
    c->rcap = ncap;
  }
  *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
  struct conn *c = s->data;

  if (nread == 0)
    return;
  log_set_conn(c->id);
  if (nread < 0) {
    if (nread != UV_EOF)
      log_info("read: %s", uv_strerror((int)nread));
    else if (c->state == CS_PAYLOAD || c->state == CS_SKIP)
      log_warn("client vanished in the middle of a request payload");
    else if (c->state != CS_REQ_HEADER && c->state != CS_CLOSING)
      log_debug("client closed during the handshake");
    conn_close_when_idle(c);
  } else if (c->state == CS_PAYLOAD) {
    c->payload_got += (size_t)nread;
    if (c->payload_got == c->payload_req->count) {
      struct request *r = c->payload_req;
      c->payload_req = NULL;
      c->state = CS_REQ_HEADER;
      transmission_payload_done(c, r);
      conn_process_input(c);
    }
  } else if (c->state != CS_CLOSING) {
    c->rlen += (size_t)nread;
    conn_process_input(c);
  }
  log_set_conn(0);
}

void conn_update_reading(struct conn *c)
{
  /* A payload that started must be received whatever the load. */
  bool in_payload = c->state == CS_PAYLOAD || c->state == CS_SKIP;
  bool want = !c->disc && c->opt_out == NULL && c->state != CS_CLOSING &&
              (in_payload || (c->inflight < CONN_MAX_INFLIGHT &&
                              c->inflight_bytes < CONN_MAX_INFLIGHT_BYTES));

  if (want == c->reading || uv_is_closing(&c->h.handle))
    return;
  c->reading = want;
  if (want)
    uv_read_start(&c->h.stream, alloc_cb, read_cb);
  else
    uv_read_stop(&c->h.stream);
}

static void on_handshake_timeout(uv_timer_t *t)
{
  struct conn *c = t->data;
  log_set_conn(c->id);
  log_warn("handshake not finished within %u s: closing",
           c->srv->cfg->handshake_timeout);
  conn_close_when_idle(c);
  log_set_conn(0);
}

/* Give the backends their preconnect say, on a worker (a plugin may
 * block) and only once the connection is really served (serialised
 * connections wait in line first). */
static void preconnect_work(struct pool_job *j)
{
  struct conn *c = container_of(j, struct conn, opt_job);
  struct backend_conn_info ci;
  struct export_vec ev;

  worker_set_current(c);
  conn_info(c, &ci);
  /* A referenced copy: a reload may swap the list meanwhile. */
  if (exports_snapshot(c, &ev) < 0) {
    c->opt_out->close = true;
    ev = (struct export_vec){0};
  }
  for (size_t i = 0; i < ev.len && !c->opt_out->close; i++) {
    struct export *e = ev.ptr[i];
    struct backend *b = e->backend;
    if (!b->ops->preconnect)
      continue;
    ci.readonly = e->readonly;
    worker_lock_export(e);
    if (b->ops->preconnect(b, &ci) < 0) {
      log_info("connection refused by the backend (preconnect)");
      c->opt_out->close = true;
    }
    worker_unlock_export(e);
  }
  exports_snapshot_release(&ev);
  worker_set_current(NULL);
}

static void after_preconnect(struct pool_job *j)
{
  struct conn *c = container_of(j, struct conn, opt_job);
  char greeting[18];
  bool refused = c->opt_out->close;

  free(c->opt_out);
  c->opt_out = NULL;
  log_set_conn(c->id);
  if (refused || c->disc) {
    conn_close_when_idle(c);
  } else {
    handshake_greeting(greeting);
    conn_send_copy(c, greeting, sizeof greeting);
    conn_update_reading(c);
  }
  log_set_conn(0);
}

void conn_start(struct conn *c)
{
  log_set_conn(c->id);
  log_debug("new connection");
  uv_timer_init(c->srv->loop, &c->handshake_timer);
  c->handshake_timer.data = c;
  if (c->srv->cfg->handshake_timeout)
    uv_timer_start(&c->handshake_timer, on_handshake_timeout,
                   c->srv->cfg->handshake_timeout * 1000ull, 0);
  c->state = CS_CLIENT_FLAGS;
  /* opt_out doubles as "a job runs": no reading, no closing. */
  c->opt_out = calloc(1, sizeof *c->opt_out);
  if (!c->opt_out) {
    conn_close_when_idle(c);
  } else {
    c->opt_job.work = preconnect_work;
    c->opt_job.done = after_preconnect;
    pool_submit(&c->srv->pool, &c->opt_job);
  }
  log_set_conn(0);
}

void conn_accept(struct listener *l)
{
  struct server *srv = l->srv;
  struct conn *c = conn_alloc(srv);
  uv_os_fd_t fd;
  int r;

  if (!c) {
    log_error("out of memory accepting a connection");
    return;
  }
  if (l->h.handle.type == UV_TCP)
    uv_tcp_init(srv->loop, &c->h.tcp);
  else
    uv_pipe_init(srv->loop, &c->h.pipe, 0);
  r = uv_accept(&l->h.stream, &c->h.stream);
  if (r < 0) {
    log_warn("accept: %s", uv_strerror(r));
    c->closing_handles = 1;
    uv_close(&c->h.handle, on_handle_closed);
    conn_link(c);
    return;
  }
  if (l->h.handle.type == UV_TCP)
    uv_tcp_nodelay(&c->h.tcp, 1);
  if (uv_fileno(&c->h.handle, &fd) == 0)
    c->fd = fd;
  log_set_conn(c->id);
  if (srv->shutting_down ||
      (srv->cfg->max_connections && srv->nconns >= srv->cfg->max_connections) ||
      !exports_peer_allowed(srv, c)) {
    if (!srv->shutting_down && srv->cfg->max_connections &&
        srv->nconns >= srv->cfg->max_connections)
      log_warn("refusing connection: %u connections already",
               srv->cfg->max_connections);
    c->closing_handles = 1;
    conn_link(c);
    uv_close(&c->h.handle, on_handle_closed);
    log_set_conn(0);
    return;
  }
  log_set_conn(0);
  if (srv->serialize_connections && srv->nconns > 0) {
    /* One connection at a time: hold this one until it is its turn. */
    struct conn **p = &srv->waiting;
    while (*p)
      p = &(*p)->next;
    *p = c;
    return;
  }
  conn_link(c);
  conn_start(c);
}

int conn_new_stdio(struct server *srv)
{
  struct conn *c = conn_alloc(srv);
  uv_handle_type t = uv_guess_handle(STDIN_FILENO);
  int r;

  if (!c)
    return -ENOMEM;
  c->stdio = true;
  if (t == UV_TCP) {
    uv_tcp_init(srv->loop, &c->h.tcp);
    r = uv_tcp_open(&c->h.tcp, STDIN_FILENO);
  } else if (t == UV_NAMED_PIPE) {
    uv_pipe_init(srv->loop, &c->h.pipe, 0);
    r = uv_pipe_open(&c->h.pipe, STDIN_FILENO);
  } else {
    log_error("-s: stdin must be a socket or a pipe");
    free(c);
    return -EINVAL;
  }
  uv_pipe_init(srv->loop, &c->out_pipe, 0);
  c->out_pipe.data = c;
  if (r == 0)
    r = uv_pipe_open(&c->out_pipe, STDOUT_FILENO);
  if (r < 0) {
    log_error("-s: %s", uv_strerror(r));
    return r;
  }
  c->fd = STDIN_FILENO;
  conn_link(c);
  conn_start(c);
  return 0;
}

void conn_shutdown_all(struct server *srv)
{
  struct conn *c, *next;

  for (c = srv->waiting; c; c = next) {
    next = c->next;
    c->next = NULL;
    conn_link(c);
    c->closing_handles = 1;
    uv_close(&c->h.handle, on_handle_closed);
  }
  srv->waiting = NULL;
  for (c = srv->conns; c; c = c->next)
    if (!c->disc && c->closing_handles == 0)
      conn_close_when_idle(c);
}

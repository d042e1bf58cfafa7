/* Listening sockets: TCP (localhost:10809 unless told otherwise), Unix
 * sockets, and sockets handed over by systemd (LISTEN_FDS/LISTEN_PID). */
#define _GNU_SOURCE /* asprintf */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "util/log.h"

#define SD_LISTEN_FDS_START 3

/* Percent-encode s for a URI (RFC 3986): unreserved characters and
 * those in keep stay as they are.  Returns a malloc'd string. */
static char *uri_escape(const char *s, const char *keep)
{
  static const char hex[] = "0123456789ABCDEF";
  char *out = malloc(strlen(s) * 3 + 1), *p = out;

  if (!out)
    return NULL;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
        (ch >= '0' && ch <= '9') || strchr("-._~", ch) ||
        (ch && strchr(keep, ch))) {
      *p++ = (char)ch;
    } else {
      *p++ = '%';
      *p++ = hex[ch >> 4];
      *p++ = hex[ch & 15];
    }
  }
  *p = '\0';
  return out;
}

static void on_connection(uv_stream_t *s, int status)
{
  struct listener *l = s->data;

  if (status < 0) {
    log_warn("accept: %s", uv_strerror(status));
    return;
  }
  conn_accept(l);
}

static struct listener *listener_new(struct server *srv)
{
  struct listener *l = calloc(1, sizeof *l);
  if (!l)
    return NULL;
  l->srv = srv;
  l->h.handle.data = l;
  l->next = srv->listeners;
  srv->listeners = l;
  return l;
}

static int listener_start(struct listener *l, const char *what)
{
  int r = uv_listen(&l->h.stream, SOMAXCONN, on_connection);
  if (r < 0)
    log_error("listen on %s: %s", what, uv_strerror(r));
  return r;
}

/* Adopt the sockets systemd passed, if LISTEN_PID names us. */
static int listen_systemd(struct server *srv, bool *found)
{
  const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
  int n;

  *found = false;
  if (!pid || !fds || atol(pid) != (long)getpid())
    return 0;
  n = atoi(fds);
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  if (n <= 0 || n > 64) {
    log_error("LISTEN_FDS=%s: expected 1 to 64 sockets", fds);
    return -EINVAL;
  }
  for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    struct listener *l = listener_new(srv);
    int r;

    if (!l)
      return -ENOMEM;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
      log_error("LISTEN_FDS: fd %d is not a socket: %m", fd);
      return -errno;
    }
    if (ss.ss_family == AF_UNIX) {
      uv_pipe_init(srv->loop, &l->h.pipe, 0);
      r = uv_pipe_open(&l->h.pipe, fd);
    } else {
      uv_tcp_init(srv->loop, &l->h.tcp);
      r = uv_tcp_open(&l->h.tcp, fd);
    }
    if (r < 0 || (r = listener_start(l, "LISTEN_FDS")) < 0)
      return r;
  }
  *found = true;
  log_info("serving %d socket(s) from systemd socket activation", n);
  return 0;
}

static int listen_unix(struct server *srv, char **uri)
{
  const char *path = srv->cfg->unix_path;
  struct listener *l = listener_new(srv);
  struct stat st;
  int r;

  if (!l)
    return -ENOMEM;
  /* A stale socket from an earlier run would make bind fail. */
  if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
    unlink(path);
  uv_pipe_init(srv->loop, &l->h.pipe, 0);
  r = uv_pipe_bind(&l->h.pipe, path);
  if (r < 0) {
    log_error("bind %s: %s", path, uv_strerror(r));
    return r;
  }
  if ((r = listener_start(l, path)) < 0)
    return r;
  char *name = uri_escape(srv->cfg->exports.ptr[0].name, "/");
  char *sock = uri_escape(path, "/");
  if (!name || !sock ||
      asprintf(uri, "nbd+unix:///%s?socket=%s", name, sock) < 0)
    *uri = NULL;
  free(name);
  free(sock);
  return 0;
}

static int listen_tcp(struct server *srv, char **uri)
{
  const char *host = srv->cfg->bind_addr ? srv->cfg->bind_addr : "localhost";
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_ADDRCONFIG};
  struct addrinfo *res, *ai;
  int r, ok = 0, last = 0;

  if (srv->cfg->bind_addr && !srv->cfg->bind_addr[0])
    host = NULL; /* -b "": every address */
  r = getaddrinfo(host, srv->cfg->port, &hints, &res);
  if (r != 0) {
    log_error("%s:%s: %s", host ? host : "*", srv->cfg->port, gai_strerror(r));
    return -EINVAL;
  }
  for (ai = res; ai; ai = ai->ai_next) {
    struct listener *l = listener_new(srv);
    if (!l)
      break;
    uv_tcp_init(srv->loop, &l->h.tcp);
    r = uv_tcp_bind(&l->h.tcp, ai->ai_addr,
                    ai->ai_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (r == 0)
      r = uv_listen(&l->h.stream, SOMAXCONN, on_connection);
    if (r == 0)
      ok++;
    else
      last = r;
  }
  freeaddrinfo(res);
  if (!ok) {
    log_error("cannot listen on %s port %s: %s", host ? host : "*",
              srv->cfg->port, uv_strerror(last));
    return last ? last : -EADDRNOTAVAIL;
  }
  bool v6 = host && strchr(host, ':');
  char *name = uri_escape(srv->cfg->exports.ptr[0].name, "/");
  if (!name || asprintf(uri, "nbd://%s%s%s:%s/%s", v6 ? "[" : "",
                        host ? host : "localhost", v6 ? "]" : "",
                        srv->cfg->port, name) < 0)
    *uri = NULL;
  free(name);
  return 0;
}

int listen_start(struct server *srv, char **uri)
{
  bool systemd;
  int r;

  *uri = NULL;
  if ((r = listen_systemd(srv, &systemd)) < 0 || systemd)
    return r;
  if (srv->cfg->unix_path)
    return listen_unix(srv, uri);
  return listen_tcp(srv, uri);
}

static void on_listener_closed(uv_handle_t *h)
{
  free(h->data);
}

void listen_stop(struct server *srv)
{
  struct listener *l = srv->listeners;

  srv->listeners = NULL;
  while (l) {
    struct listener *next = l->next;
    if (!uv_is_closing(&l->h.handle))
      uv_close(&l->h.handle, on_listener_closed);
    l = next;
  }
  if (srv->cfg->unix_path)
    unlink(srv->cfg->unix_path);
}

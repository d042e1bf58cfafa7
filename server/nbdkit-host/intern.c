/* The exported nbdkit_* functions about the current connection: export
 * name, TLS, peer credentials, and interned strings (nbdkit-plugin(3)
 * "EXPORT NAME", "PEER NAME", "STRING LIFETIME"). */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/log.h"

const char *host_intern(char *s)
{
  struct host_conn *c = host_cur_conn;
  struct host_plugin *hp = host_cur_plugin;
  int r;

  if (!s) {
    nbdkit_error("intern: %m");
    return NULL;
  }
  if (c) {
    pthread_mutex_lock(&c->lock);
    r = host_str_vec_append(&c->strs, s);
    pthread_mutex_unlock(&c->lock);
  } else if (hp) {
    pthread_mutex_lock(&hp->lock);
    r = host_str_vec_append(&hp->global_strs, s);
    pthread_mutex_unlock(&hp->lock);
  } else {
    /* Called from outside any callback: nothing owns the string. */
    nbdkit_error("nbdkit string interning outside a plugin callback");
    free(s);
    errno = EINVAL;
    return NULL;
  }
  if (r < 0) {
    free(s);
    errno = ENOMEM;
    nbdkit_error("intern: %m");
    return NULL;
  }
  return s;
}

/* Connections whose pre-open strings we keep at most.  The server does
 * not tell backends about connections that close before open, so the
 * oldest are dropped: by then the callback that interned them returned
 * long ago, and nbdkit's own copies (default_export's answer, listed
 * exports) were already taken. */
#define HOST_MAX_PENDING 1024

void host_keep_pending(struct host_plugin *hp, struct host_conn *conn)
{
  struct host_pending *slot = NULL;

  if (conn->strs.len == 0)
    return;
  pthread_mutex_lock(&hp->lock);
  if (hp->pending.len >= HOST_MAX_PENDING) {
    host_str_vec_free(&hp->pending.ptr[0].strs);
    memmove(&hp->pending.ptr[0], &hp->pending.ptr[1],
            (hp->pending.len - 1) * sizeof hp->pending.ptr[0]);
    hp->pending.len--;
  }
  for (size_t i = 0; i < hp->pending.len; i++)
    if (hp->pending.ptr[i].conn_id == conn->conn_id)
      slot = &hp->pending.ptr[i];
  if (!slot &&
      host_pending_vec_append(
          &hp->pending, (struct host_pending){.conn_id = conn->conn_id}) == 0)
    slot = &hp->pending.ptr[hp->pending.len - 1];
  for (size_t i = 0; i < conn->strs.len; i++) {
    if (slot && host_str_vec_append(&slot->strs, conn->strs.ptr[i]) == 0)
      continue;
    /* Out of memory: the unload list is the last resort owner. */
    if (host_str_vec_append(&hp->global_strs, conn->strs.ptr[i]) < 0)
      log_error("nbdkit host: leaking an interned string (out of memory)");
  }
  pthread_mutex_unlock(&hp->lock);
  host_str_vec_reset(&conn->strs);
}

void host_adopt_pending(struct host_plugin *hp, struct host_conn *conn)
{
  pthread_mutex_lock(&hp->lock);
  for (size_t i = 0; i < hp->pending.len; i++) {
    struct host_pending *p = &hp->pending.ptr[i];
    if (p->conn_id != conn->conn_id)
      continue;
    /* Ownership moves to the connection, freed at close. */
    conn->strs = p->strs;
    memmove(p, p + 1, (hp->pending.len - i - 1) * sizeof *p);
    hp->pending.len--;
    break;
  }
  pthread_mutex_unlock(&hp->lock);
}

const char *nbdkit_strdup_intern(const char *str)
{
  return host_intern(strdup(str));
}

const char *nbdkit_strndup_intern(const char *str, size_t n)
{
  return host_intern(strndup(str, n));
}

const char *nbdkit_vprintf_intern(const char *fmt, va_list args)
{
  char *s;

  if (vasprintf(&s, fmt, args) < 0)
    s = NULL;
  return host_intern(s);
}

const char *nbdkit_printf_intern(const char *fmt, ...)
{
  va_list ap;
  const char *r;

  va_start(ap, fmt);
  r = nbdkit_vprintf_intern(fmt, ap);
  va_end(ap);
  return r;
}

/* The current connection, or NULL after logging that there is none. */
static struct host_conn *host_need_conn(const char *fn)
{
  if (!host_cur_conn)
    nbdkit_error("%s: no connection in this thread", fn);
  return host_cur_conn;
}

const char *nbdkit_export_name(void)
{
  struct host_conn *c = host_need_conn("nbdkit_export_name");
  if (!c)
    return NULL;
  /* NULL before the client chose an export (preconnect, listing). */
  return c->export_name;
}

int nbdkit_is_tls(void)
{
  struct host_conn *c = host_need_conn("nbdkit_is_tls");
  return c ? c->is_tls : -1;
}

int nbdkit_peer_name(struct sockaddr *addr, socklen_t *addrlen)
{
  struct host_conn *c = host_need_conn("nbdkit_peer_name");
  if (!c)
    return -1;
  if (c->fd < 0) {
    nbdkit_error("nbdkit_peer_name: the connection has no socket");
    errno = ENOTSOCK;
    return -1;
  }
  if (getpeername(c->fd, addr, addrlen) < 0) {
    nbdkit_error("getpeername: %m");
    return -1;
  }
  return 0;
}

/* SO_PEERCRED of a Unix-socket client. */
static int host_peer_cred(const char *fn, struct ucred *cred)
{
  struct host_conn *c = host_need_conn(fn);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss, clen = sizeof *cred;

  if (!c)
    return -1;
  if (c->fd < 0 || getsockname(c->fd, (struct sockaddr *)&ss, &len) < 0 ||
      ss.ss_family != AF_UNIX) {
    nbdkit_error("%s: only available when the client connected over a "
                 "Unix domain socket",
                 fn);
    errno = ENOTSUP;
    return -1;
  }
  if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, cred, &clen) < 0) {
    nbdkit_error("%s: getsockopt: SO_PEERCRED: %m", fn);
    return -1;
  }
  return 0;
}

int64_t nbdkit_peer_pid(void)
{
  struct ucred cred;
  return host_peer_cred("nbdkit_peer_pid", &cred) < 0 ? -1 : cred.pid;
}

int64_t nbdkit_peer_uid(void)
{
  struct ucred cred;
  return host_peer_cred("nbdkit_peer_uid", &cred) < 0 ? -1 : (int64_t)cred.uid;
}

int64_t nbdkit_peer_gid(void)
{
  struct ucred cred;
  return host_peer_cred("nbdkit_peer_gid", &cred) < 0 ? -1 : (int64_t)cred.gid;
}

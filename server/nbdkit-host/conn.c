/* The connection-scoped backend ops of a plugin: after_fork,
 * preconnect, export listing, open and close (nbdkit-plugin(3)
 * ".after_fork", ".preconnect", ".list_exports", ".default_export",
 * ".open", ".close"). */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define HOST_MAX_STRING 4096

int host_after_fork(struct backend *b)
{
  struct host_plugin *hp = b->priv;
  struct host_saved s;
  int r = 0;

  hp->after_fork_done = true;
  if (!hp->p.after_fork)
    return 0;
  host_enter(&s, hp, NULL);
  r = hp->p.after_fork();
  host_leave(&s);
  if (r == -1) {
    log_error("%s: after_fork failed", hp->name);
    return -EIO;
  }
  return 0;
}

/* A connection context for the callbacks that come before open. */
static void host_conn_init(struct host_conn *c, struct host_plugin *hp,
                           const struct backend_conn_info *ci)
{
  *c = (struct host_conn){.hp = hp,
                          .conn_id = ci->conn_id,
                          .export_name = ci->export_name,
                          .readonly = ci->readonly,
                          .is_tls = ci->is_tls,
                          .fd = ci->fd};
  pthread_mutex_init(&c->lock, NULL);
}

/* End a pre-open context: its interned strings wait for open. */
static void host_conn_fini(struct host_conn *c)
{
  host_keep_pending(c->hp, c);
  pthread_mutex_destroy(&c->lock);
}

int host_preconnect(struct backend *b, const struct backend_conn_info *ci)
{
  struct host_plugin *hp = b->priv;
  struct host_conn c;
  struct host_saved s;
  int r, err;

  if (!hp->p.preconnect)
    return 0;
  host_conn_init(&c, hp, ci);
  host_enter(&s, hp, &c);
  r = hp->p.preconnect(ci->readonly);
  err = host_failure_errno(hp, errno);
  host_leave(&s);
  host_conn_fini(&c);
  return r == -1 ? -err : 0;
}

/* Call default_export; *name is NULL when the plugin refuses "". */
static int host_call_default(struct host_plugin *hp,
                             const struct backend_conn_info *ci, char **name)
{
  struct host_conn c;
  struct host_saved s;
  const char *r;

  *name = NULL;
  if (!hp->p.default_export)
    return (*name = strdup("")) ? 0 : -ENOMEM;
  host_conn_init(&c, hp, ci);
  host_enter(&s, hp, &c);
  r = hp->p.default_export(ci->readonly, ci->is_tls);
  /* NULL or an over-long name: "" may not be used (not an error). */
  if (r && strlen(r) <= HOST_MAX_STRING)
    *name = strdup(r);
  host_leave(&s);
  host_conn_fini(&c);
  return r && strlen(r) <= HOST_MAX_STRING && !*name ? -ENOMEM : 0;
}

int host_default_export(struct backend *b, const struct backend_conn_info *ci,
                        char **name)
{
  struct host_plugin *hp = b->priv;
  int r = host_call_default(hp, ci, name);

  if (r == 0 && !*name) {
    log_debug("%s: no default export", hp->name);
    return -ENOENT;
  }
  return r;
}

/* Replace the list by the default export alone (nbdkit-plugin(3)
 * "nbdkit_use_default_export"). */
static int host_list_default(struct host_plugin *hp,
                             const struct backend_conn_info *ci,
                             struct nbdkit_exports *x)
{
  struct backend_export_entry e = {0};
  int r = host_call_default(hp, ci, &e.name);

  host_exports_clear(x);
  if (r < 0 || !e.name)
    return r;
  if (host_export_vec_append(&x->v, e) < 0) {
    free(e.name);
    return -ENOMEM;
  }
  return 0;
}

int host_list_exports(struct backend *b, const struct backend_conn_info *ci,
                      struct backend_export_entry **out)
{
  struct host_plugin *hp = b->priv;
  struct nbdkit_exports x = {0};
  struct host_conn c;
  struct host_saved s;
  int r = 0, err = 0;

  if (!hp->p.list_exports && !hp->p.default_export)
    return -ENOTSUP; /* the export's own name */
  if (hp->p.list_exports) {
    host_conn_init(&c, hp, ci);
    host_enter(&s, hp, &c);
    r = hp->p.list_exports(ci->readonly, ci->is_tls, &x);
    err = host_failure_errno(hp, errno);
    host_leave(&s);
    host_conn_fini(&c);
    if (r == -1) {
      host_exports_clear(&x);
      return -err;
    }
  }
  if ((!hp->p.list_exports || x.use_default) &&
      (r = host_list_default(hp, ci, &x)) < 0)
    return r;
  *out = x.v.ptr;
  return (int)x.v.len;
}

int host_open(struct backend *b, const struct backend_conn_info *ci,
              void **handle)
{
  struct host_plugin *hp = b->priv;
  struct host_handle *hh = calloc(1, sizeof *hh);
  struct host_saved s;
  int err = 0;

  if (!hh)
    return -ENOMEM;
  host_conn_init(&hh->conn, hp, ci);
  pthread_mutex_init(&hh->caps_lock, NULL);
  /* "" stands for the default export's name, which the plugin then sees
   * as the export name (nbdkit-plugin(3) ".default_export"). */
  if (ci->export_name && *ci->export_name) {
    hh->export_name = strdup(ci->export_name);
    err = hh->export_name ? 0 : -ENOMEM;
  } else if ((err = host_call_default(hp, ci, &hh->export_name)) == 0 &&
             !hh->export_name) {
    log_error("%s: the plugin offers no default export", hp->name);
    err = -ENOENT;
  }
  if (err < 0) {
    host_close(b, hh);
    return err;
  }
  hh->conn.export_name = hh->export_name;
  host_adopt_pending(hp, &hh->conn);
  host_enter(&s, hp, &hh->conn);
  hh->ph = hp->p.open(ci->readonly);
  if (!hh->ph)
    err = -host_failure_errno(hp, errno);
  host_leave(&s);
  if (!hh->ph) {
    host_close(b, hh);
    return err;
  }
  *handle = hh;
  return 0;
}

void host_close(struct backend *b, void *h)
{
  struct host_plugin *hp = b->priv;
  struct host_handle *hh = h;
  struct host_saved s;

  if (hh->ph && hp->p.close) {
    host_enter(&s, hp, &hh->conn);
    hp->p.close(hh->ph);
    host_leave(&s);
  }
  host_str_vec_free(&hh->conn.strs);
  pthread_mutex_destroy(&hh->conn.lock);
  pthread_mutex_destroy(&hh->caps_lock);
  free(hh->export_name);
  free(hh);
}

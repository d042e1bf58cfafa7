/* SIGHUP: re-read the configuration file and apply it without a
 * restart.  The file is parsed and every new export opened on a worker
 * thread first; only when all of that succeeded does the loop thread
 * swap the exports list, so a bad file leaves the running configuration
 * as it was.  Removed exports stop being offered at once and live on
 * until their last connection closes (struct export references). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/log.h"

struct reload {
  struct server *srv;
  uv_work_t work;
  struct export_config_vec cfgs; /* the file as it is now */
  struct export_vec next;        /* the new list (references held) */
  unsigned added, kept, changed;
  int err;
};

/* The running export that a new configuration entry may keep. */
static struct export *running(struct server *srv, const char *name)
{
  for (size_t i = 0; i < srv->exports.len; i++)
    if (!strcmp(srv->exports.ptr[i]->name, name))
      return srv->exports.ptr[i];
  return NULL;
}

/* A new export must not open what a running export it replaces has
 * open: two qcow2 engines on one image, or one plugin loaded twice
 * (plugins keep global state), would corrupt data. */
static int check_reopen(struct reload *rl, const struct export_config *ec)
{
  struct server *srv = rl->srv;
  bool memory = ec->format && !strcmp(ec->format, "memory");

  for (size_t i = 0; i < srv->exports.len; i++) {
    const struct export_config *old = &srv->exports.ptr[i]->cfg;
    bool same_plugin =
        ec->plugin && old->plugin && !strcmp(ec->plugin, old->plugin);
    bool same_image = !memory && ec->path && old->path && !old->plugin &&
                      !strcmp(ec->path, old->path);
    if (same_plugin || same_image) {
      log_error("%s:%u: export '%s': %s '%s' is open with other settings "
                "by the running export '%s'; restart qnbd to apply this",
                srv->cfg->config_file, ec->line, ec->name,
                same_plugin ? "plugin" : "image",
                same_plugin ? ec->plugin : ec->path, old->name);
      return -EBUSY;
    }
  }
  return 0;
}

/* Plugins are told about the fork they never see (nbdkit calls
 * after_fork once the server is ready). */
static int open_new(const struct export_config *ec, struct export **out)
{
  struct backend *b;
  int r = exports_open_one(ec, out);

  if (r < 0)
    return r;
  b = (*out)->backend;
  if (b->ops->after_fork && (r = b->ops->after_fork(b)) < 0) {
    log_error("export '%s': after_fork failed", ec->name);
    exports_unref(*out);
    *out = NULL;
  }
  return r;
}

/* On a worker: parse, and open what is new.  The exports list is read
 * without its lock: only the loop thread changes it, and not while a
 * reload runs. */
static void reload_work(uv_work_t *w)
{
  struct reload *rl = w->data;
  struct server *srv = rl->srv;

  rl->err = config_load(srv->cfg->config_file, &rl->cfgs);
  for (size_t i = 0; rl->err == 0 && i < rl->cfgs.len; i++) {
    const struct export_config *ec = &rl->cfgs.ptr[i];
    struct export *e = running(srv, ec->name);

    if (e && config_same_source(&e->cfg, ec)) {
      __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
      rl->kept++;
    } else {
      rl->err = check_reopen(rl, ec);
      if (rl->err == 0 && (rl->err = open_new(ec, &e)) < 0)
        log_error("%s:%u: export '%s' cannot be opened", srv->cfg->config_file,
                  ec->line, ec->name);
      if (rl->err < 0)
        break;
      *(running(srv, ec->name) ? &rl->changed : &rl->added) += 1;
    }
    if (export_vec_append(&rl->next, e) < 0) {
      exports_unref(e);
      rl->err = -ENOMEM;
    }
  }
  if (rl->err < 0)
    exports_close(&rl->next);
}

/* A kept export takes the new description and allowed clients.  The
 * description is read unlocked by workers: the old string stays
 * allocated as long as the export. */
static void update_kept(struct export *e, struct export_config *ec)
{
  if (!config_same_acl(&e->cfg.allow, &ec->allow)) {
    struct acl_vec tmp = e->cfg.allow;
    e->cfg.allow = ec->allow;
    ec->allow = tmp;
    log_info("export '%s': allowed clients changed", e->name);
  }
  const char *d = ec->description;
  if ((!d && !e->description) ||
      (d && e->description && !strcmp(d, e->description)))
    return;
  char **old = realloc(e->old_desc, (e->nold_desc + 1) * sizeof *old);
  if (old)
    e->old_desc = old;
  char *copy = d ? strdup(d) : NULL;
  if (!old || (d && !copy)) {
    free(copy);
    log_warn("export '%s': out of memory: description unchanged", e->name);
    return;
  }
  old[e->nold_desc++] = e->description;
  __atomic_store_n(&e->description, copy, __ATOMIC_RELEASE);
  /* The file's copy moves to cfg (it is compared at the next reload). */
  free((char *)e->cfg.description);
  e->cfg.description = ec->description;
  ec->description = NULL;
}

static bool in_list(const struct export_vec *v, const struct export *e)
{
  for (size_t i = 0; i < v->len; i++)
    if (v->ptr[i] == e)
      return true;
  return false;
}

/* On the loop thread: swap the lists, let removed exports drain. */
static void reload_apply(struct reload *rl)
{
  struct server *srv = rl->srv;
  struct export_vec old;
  unsigned removed = 0;

  pthread_mutex_lock(&srv->exports_lock);
  for (size_t i = 0; i < rl->next.len; i++)
    if (in_list(&srv->exports, rl->next.ptr[i]))
      update_kept(rl->next.ptr[i], &rl->cfgs.ptr[i]);
  old = srv->exports;
  srv->exports = rl->next;
  rl->next = (struct export_vec){0};
  pthread_mutex_unlock(&srv->exports_lock);

  for (size_t i = 0; i < old.len; i++) {
    struct export *e = old.ptr[i];
    if (!in_list(&srv->exports, e)) {
      removed++;
      log_info("export '%s' removed (open connections may finish)", e->name);
    }
    exports_unref_async(srv->loop, e); /* the old list's reference */
  }
  export_vec_reset(&old);
  srv->serialize_connections = exports_serialize_connections(&srv->exports);
  log_info("reloaded %s: %zu exports (%u new, %u changed, %u removed)",
           srv->cfg->config_file, srv->exports.len, rl->added, rl->changed,
           removed - rl->changed);
}

static void reload_start(struct server *srv);

static void reload_after_work(uv_work_t *w, int status)
{
  struct reload *rl = w->data;
  struct server *srv = rl->srv;

  if (rl->err == 0 && status == 0 && !srv->shutting_down)
    reload_apply(rl);
  else if (!srv->shutting_down)
    log_error("reload failed: keeping the running configuration");
  for (size_t i = 0; i < rl->next.len; i++)
    exports_unref_async(srv->loop, rl->next.ptr[i]);
  export_vec_reset(&rl->next);
  config_exports_free(&rl->cfgs);
  free(rl);
  srv->reload = NULL;
  if (srv->shutting_down)
    return;
  notify_send("READY=1\nSTATUS=serving %zu exports", srv->exports.len);
  if (srv->reload_again) {
    srv->reload_again = false;
    reload_start(srv);
  }
}

static void reload_start(struct server *srv)
{
  struct reload *rl = calloc(1, sizeof *rl);

  if (!rl) {
    log_error("reload: out of memory");
    return;
  }
  log_info("reloading %s", srv->cfg->config_file);
  notify_send("RELOADING=1\nSTATUS=reloading %s", srv->cfg->config_file);
  rl->srv = srv;
  rl->work.data = rl;
  srv->reload = rl;
  if (uv_queue_work(srv->loop, &rl->work, reload_work, reload_after_work) < 0) {
    free(rl);
    srv->reload = NULL;
  }
}

static void on_sighup(uv_signal_t *s, int signum)
{
  struct server *srv = s->data;

  if (srv->shutting_down)
    return;
  if (srv->reload) {
    srv->reload_again = true; /* read the file again when this one ends */
    return;
  }
  reload_start(srv);
}

void reload_init(struct server *srv)
{
  uv_signal_init(srv->loop, &srv->sig_hup);
  srv->sig_hup.data = srv;
  if (srv->cfg->config_file) {
    uv_signal_start(&srv->sig_hup, on_sighup, SIGHUP);
    uv_unref((uv_handle_t *)&srv->sig_hup);
  }
}

void reload_stop(struct server *srv)
{
  if (!uv_is_closing((uv_handle_t *)&srv->sig_hup))
    uv_close((uv_handle_t *)&srv->sig_hup, NULL);
}

/* The exports a server offers: each configured source opened as a
 * backend (raw file, memory, qcow2, nbdkit plugin), their lifetime
 * (references held by the live list and by connections) and who may
 * use them (allowed client addresses). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "util/log.h"

#ifdef QNBD_HAVE_QCOW2
#include "qcow2/qcow2.h"
#endif
#ifdef QNBD_HAVE_NBDKIT_HOST
#include "nbdkit-host/host.h"
#endif

/* "qcow2" when path starts with the qcow2 magic, else "raw". */
static const char *probe_format(const char *path)
{
  unsigned char magic[4];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = -1;

  if (fd >= 0) {
    n = pread(fd, magic, sizeof magic, 0);
    close(fd);
  }
  if (n == 4 && !memcmp(magic, "QFI\xfb", 4))
    return "qcow2";
  return "raw";
}

static int open_backend(const struct export_config *ec, struct backend **b)
{
  const char *fmt = ec->format;

  if (ec->plugin) {
#ifdef QNBD_HAVE_NBDKIT_HOST
    return nbdkit_host_new(ec->plugin, ec->plugin_argc, ec->plugin_argv, b);
#else
    log_error("--plugin: this build has no nbdkit plugin host");
    return -ENOTSUP;
#endif
  }
  if (fmt && !strcmp(fmt, "memory")) {
    uint64_t size;
    if (options_size(ec->path, &size) < 0 || size == 0) {
      log_error("-f memory: invalid size '%s'", ec->path);
      return -EINVAL;
    }
    return mem_backend_new(size, b);
  }
  if (!fmt)
    fmt = probe_format(ec->path);
  if (!strcmp(fmt, "qcow2")) {
#ifdef QNBD_HAVE_QCOW2
    struct qcow2_open_opts o = {
        .readonly = ec->readonly,
        .snapshot = ec->snapshot,
        .cache_size = ec->cache_size,
    };
    return qcow2_backend_new(ec->path, &o, b);
#else
    log_error("%s: qcow2 images are not supported by this build", ec->path);
    return -ENOTSUP;
#endif
  }
  if (ec->snapshot) {
    log_error("%s: --snapshot needs a qcow2 image", ec->path);
    return -EINVAL;
  }
  return raw_backend_new(ec->path, ec->readonly, b);
}

/* Destroy an export nobody references any more (may block: the
 * backend flushes, qcow2 marks the image clean). */
static void export_free(struct export *e)
{
  if (e->backend)
    e->backend->ops->destroy(e->backend);
  pthread_mutex_destroy(&e->all_lock);
  free(e->name);
  free(e->description);
  for (size_t i = 0; i < e->nold_desc; i++)
    free(e->old_desc[i]);
  free(e->old_desc);
  config_export_clear(&e->cfg);
  free(e);
}

int exports_open_one(const struct export_config *ec, struct export **out)
{
  struct export *e = calloc(1, sizeof *e);
  int r = -ENOMEM;

  *out = NULL;
  if (!e)
    goto nomem;
  pthread_mutex_init(&e->all_lock, NULL);
  e->refs = 1;
  if (config_export_dup(ec, &e->cfg) < 0)
    goto nomem;
  e->name = strdup(ec->name);
  e->description = ec->description ? strdup(ec->description) : NULL;
  if (!e->name || (ec->description && !e->description))
    goto nomem;
  e->readonly = ec->readonly;
  /* A plugin decides itself which names it serves. */
  e->any_name = ec->plugin != NULL;
  r = open_backend(ec, &e->backend);
  if (r < 0)
    goto fail;
  *out = e;
  return 0;
nomem:
  log_error("out of memory");
fail:
  if (e)
    export_free(e);
  return r;
}

int exports_open(const struct export_config_vec *cfgs, const char *file,
                 struct export_vec *out)
{
  *out = (struct export_vec){0};
  for (size_t i = 0; i < cfgs->len; i++) {
    struct export *e;
    int r = exports_open_one(&cfgs->ptr[i], &e);

    if (r == 0 && export_vec_append(out, e) < 0) {
      export_free(e);
      r = -ENOMEM;
    }
    if (r < 0) {
      if (file)
        log_error("%s:%u: export '%s' cannot be opened", file,
                  cfgs->ptr[i].line, cfgs->ptr[i].name);
      exports_close(out);
      return r;
    }
  }
  return 0;
}

void exports_unref(struct export *e)
{
  if (e && __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    log_info("export '%s' closed", e->name);
    export_free(e);
  }
}

static void destroy_work(uv_work_t *w)
{
  exports_unref(w->data);
}

static void after_destroy_work(uv_work_t *w, int status) {}

void exports_unref_async(uv_loop_t *loop, struct export *e)
{
  /* Only the last reference needs a worker; others are a decrement. */
  if (!e)
    return;
  unsigned n = __atomic_load_n(&e->refs, __ATOMIC_ACQUIRE);
  while (n > 1)
    if (__atomic_compare_exchange_n(&e->refs, &n, n - 1, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      return;
  e->destroy_work.data = e;
  if (uv_queue_work(loop, &e->destroy_work, destroy_work, after_destroy_work) <
      0)
    exports_unref(e);
}

void exports_close(struct export_vec *v)
{
  for (size_t i = 0; i < v->len; i++)
    exports_unref(v->ptr[i]);
  export_vec_reset(v);
}
struct export *exports_find(const struct export_vec *v, const char *name)
{
  for (size_t i = 0; i < v->len; i++)
    if (!strcmp(v->ptr[i]->name, name))
      return v->ptr[i];
  /* The empty name is the default export (as nbdkit and qemu-nbd). */
  if (v->len > 0 && (name[0] == '\0' || v->ptr[0]->any_name))
    return v->ptr[0];
  return NULL;
}

bool exports_serialize_connections(const struct export_vec *v)
{
  for (size_t i = 0; i < v->len; i++)
    if (v->ptr[i]->backend->thread_model == BACKEND_SERIALIZE_CONNECTIONS)
      return true;
  return false;
}

/* The peer address of c (family AF_UNIX for Unix sockets and stdio). */
static void peer_address(const struct conn *c, struct sockaddr_storage *ss)
{
  socklen_t len = sizeof *ss;

  memset(ss, 0, sizeof *ss);
  if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)ss, &len) < 0 ||
      (ss->ss_family != AF_INET && ss->ss_family != AF_INET6))
    ss->ss_family = AF_UNIX;
}

static void describe_peer(const struct sockaddr_storage *ss, char *buf,
                          size_t len)
{
  const void *a = ss->ss_family == AF_INET
                      ? (const void *)&((struct sockaddr_in *)ss)->sin_addr
                      : (const void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
  if (ss->ss_family == AF_UNIX || !inet_ntop(ss->ss_family, a, buf, len))
    snprintf(buf, len, "a Unix socket");
}

struct export *exports_get(struct conn *c, const char *name)
{
  struct server *srv = c->srv;
  struct sockaddr_storage ss;
  struct export *e, *old = c->exp_ref;

  peer_address(c, &ss);
  pthread_mutex_lock(&srv->exports_lock);
  e = exports_find(&srv->exports, name);
  if (e && !config_acl_allows(&e->cfg.allow, &ss)) {
    char who[INET6_ADDRSTRLEN];
    describe_peer(&ss, who, sizeof who);
    log_info("export '%s' is not allowed for %s", e->name, who);
    e = NULL;
  }
  if (e)
    __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&srv->exports_lock);
  /* A lookup starts every option that uses an export: the earlier
   * export is no longer used once its handle (if any) is closed. */
  handshake_close_export(c);
  c->exp = NULL;
  c->exp_ref = e;
  exports_unref(old);
  return e;
}

int exports_snapshot(struct conn *c, struct export_vec *out)
{
  struct server *srv = c->srv;
  struct sockaddr_storage ss;
  int r = 0;

  *out = (struct export_vec){0};
  peer_address(c, &ss);
  pthread_mutex_lock(&srv->exports_lock);
  for (size_t i = 0; i < srv->exports.len && r == 0; i++) {
    struct export *e = srv->exports.ptr[i];
    if (!config_acl_allows(&e->cfg.allow, &ss))
      continue; /* exports a client may not use are not listed */
    r = export_vec_append(out, e);
    if (r == 0)
      __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
  }
  pthread_mutex_unlock(&srv->exports_lock);
  if (r < 0)
    exports_snapshot_release(out);
  return r;
}

void exports_snapshot_release(struct export_vec *v)
{
  exports_close(v);
}

bool exports_peer_allowed(struct server *srv, struct conn *c)
{
  struct sockaddr_storage ss;
  char who[INET6_ADDRSTRLEN];

  peer_address(c, &ss);
  for (size_t i = 0; i < srv->exports.len; i++)
    if (config_acl_allows(&srv->exports.ptr[i]->cfg.allow, &ss))
      return true;
  describe_peer(&ss, who, sizeof who);
  log_info("refusing %s: no export allows it", who);
  return false;
}

void exports_conn_release(struct conn *c)
{
  struct export *e = c->exp_ref;

  c->exp = NULL;
  c->exp_ref = NULL;
  exports_unref_async(c->srv->loop, e);
}

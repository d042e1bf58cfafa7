/* The exports a server offers: each configured source opened as a
 * backend (raw file, memory, qcow2, nbdkit plugin). */
#include <errno.h>
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

int exports_open(const struct config *cfg, struct export_vec *out)
{
  *out = (struct export_vec){0};
  for (size_t i = 0; i < cfg->exports.len; i++) {
    const struct export_config *ec = &cfg->exports.ptr[i];
    struct export *e = calloc(1, sizeof *e);
    int r;

    if (!e || export_vec_append(out, e) < 0) {
      free(e);
      log_error("out of memory");
      exports_close(out);
      return -ENOMEM;
    }
    pthread_mutex_init(&e->all_lock, NULL);
    e->name = strdup(ec->name);
    e->description = ec->description ? strdup(ec->description) : NULL;
    e->readonly = ec->readonly;
    r = e->name ? open_backend(ec, &e->backend) : -ENOMEM;
    if (r < 0) {
      exports_close(out);
      return r;
    }
    /* A plugin decides itself which names it serves. */
    e->any_name = ec->plugin != NULL;
  }
  return 0;
}

void exports_close(struct export_vec *v)
{
  for (size_t i = 0; i < v->len; i++) {
    struct export *e = v->ptr[i];
    if (e->backend)
      e->backend->ops->destroy(e->backend);
    pthread_mutex_destroy(&e->all_lock);
    free(e->name);
    free(e->description);
    free(e);
  }
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

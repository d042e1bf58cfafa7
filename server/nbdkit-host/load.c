/* Finding, loading, checking and configuring one nbdkit plugin, and
 * unloading it at exit (nbdkit-plugin(3) "Callback lifecycle",
 * ".config", ".magic_config_key", "Debug Flags", "Threads"). */
#include "internal.h"
#include "host.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

#ifndef QNBD_NBDKIT_PLUGINDIR
#define QNBD_NBDKIT_PLUGINDIR "/usr/lib/x86_64-linux-gnu/nbdkit/plugins"
#endif

const struct backend_ops host_backend_ops = {
    .name = "nbdkit",
    .after_fork = host_after_fork,
    .preconnect = host_preconnect,
    .list_exports = host_list_exports,
    .default_export = host_default_export,
    .open = host_open,
    .close = host_close,
    .get_size = host_get_size,
    .caps = host_caps,
    .block_size = host_block_size,
    .description = host_description,
    .pread = host_pread,
    .pwrite = host_pwrite,
    .flush = host_flush,
    .trim = host_trim,
    .zero = host_zero,
    .cache = host_cache,
    .extents = host_extents,
    .destroy = host_destroy,
};

/* -D NAME.FLAG=N settings, applied to the plugin called NAME. */
struct host_debug_flag {
  char *name;
  char *flag;
  int value;
  bool used;
};
DEFINE_VECTOR(host_debug_vec, struct host_debug_flag)
static struct host_debug_vec host_debug_flags;

void nbdkit_host_set_stdio(bool serving_on_stdio)
{
  host_stdio_busy = serving_on_stdio;
}

/* [A-Za-z0-9][A-Za-z0-9-]* (nbdkit-plugin(3) ".name"). */
static bool host_valid_name(const char *s, size_t len)
{
  if (len == 0 || !isalnum((unsigned char)s[0]))
    return false;
  for (size_t i = 1; i < len; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '-')
      return false;
  return true;
}

/* A config key: [A-Za-z][A-Za-z0-9._-]* */
static bool host_valid_key(const char *s, size_t len)
{
  if (len == 0 || !isalpha((unsigned char)s[0]))
    return false;
  for (size_t i = 1; i < len; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
      return false;
  return true;
}

int nbdkit_host_debug_flag(const char *spec)
{
  const char *dot = strchr(spec, '.');
  const char *eq = strchr(spec, '=');
  struct host_debug_flag f = {0};
  char *end;
  long v;

  if (!dot || !eq || eq < dot || !host_valid_name(spec, dot - spec) ||
      !host_valid_key(dot + 1, eq - dot - 1)) {
    log_error("-D %s: expected NAME.FLAG=N (e.g. -D file.zero=1)", spec);
    return -EINVAL;
  }
  errno = 0;
  v = strtol(eq + 1, &end, 0);
  if (end == eq + 1 || *end || errno || v < INT32_MIN || v > INT32_MAX) {
    log_error("-D %s: the value must be an integer", spec);
    return -EINVAL;
  }
  f.name = strndup(spec, dot - spec);
  f.flag = strndup(dot + 1, eq - dot - 1);
  f.value = (int)v;
  if (!f.name || !f.flag || host_debug_vec_append(&host_debug_flags, f) < 0) {
    free(f.name);
    free(f.flag);
    log_error("-D %s: out of memory", spec);
    return -ENOMEM;
  }
  return 0;
}

/* Set the plugin's NAME_debug_FLAG ints before load; '-' in the plugin
 * name and '.' in the flag name both become '_' in the symbol. */
static int host_apply_debug_flags(struct host_plugin *hp)
{
  for (size_t i = 0; i < host_debug_flags.len; i++) {
    struct host_debug_flag *f = &host_debug_flags.ptr[i];
    char *sym;
    int *var;

    if (strcmp(f->name, hp->name) != 0)
      continue;
    if (asprintf(&sym, "%s_debug_%s", f->name, f->flag) < 0)
      return -ENOMEM;
    for (char *p = sym; *p; p++)
      if (*p == '-' || *p == '.')
        *p = '_';
    var = dlsym(hp->dl, sym);
    if (!var) {
      log_error("-D %s.%s: plugin %s has no debug flag %s", f->name, f->flag,
                hp->path, sym);
      free(sym);
      return -EINVAL;
    }
    free(sym);
    *var = f->value;
    f->used = true;
  }
  return 0;
}

/* A short NAME means $plugindir/nbdkit-NAME-plugin.so; anything with a
 * '.' or '/' is a path. */
static int host_resolve(const char *plugin, char **path)
{
  const char *dir = getenv("QNBD_NBDKIT_PLUGINDIR");
  struct stat st;

  if (!*plugin) {
    log_error("--plugin: empty plugin name");
    return -EINVAL;
  }
  if (strchr(plugin, '/') || strchr(plugin, '.')) {
    *path = strchr(plugin, '/') ? strdup(plugin) : NULL;
    if (!strchr(plugin, '/') && asprintf(path, "./%s", plugin) < 0)
      *path = NULL;
  } else {
    if (!host_valid_name(plugin, strlen(plugin))) {
      log_error("--plugin %s: invalid plugin name (expected letters, digits "
                "and '-', or a path)",
                plugin);
      return -EINVAL;
    }
    if (asprintf(path, "%s/nbdkit-%s-plugin.so",
                 dir ? dir : QNBD_NBDKIT_PLUGINDIR, plugin) < 0)
      *path = NULL;
  }
  if (!*path)
    return -ENOMEM;
  if (stat(*path, &st) < 0) {
    int err = errno;
    log_error("--plugin %s: %s: %s", plugin, *path, strerror(err));
    free(*path);
    *path = NULL;
    return -err;
  }
  return 0;
}

/* Check the struct plugin_init returned and copy what we know of it. */
static int host_check_struct(struct host_plugin *hp,
                             const struct nbdkit_plugin *p)
{
  /* The oldest plugins end soon after the v1 data callbacks; anything
   * up to pread is needed to check the required callbacks. */
  const size_t min_size = offsetof(struct nbdkit_plugin, _pwrite_v1);
  size_t n;

  if (p->_api_version != 1 && p->_api_version != 2) {
    log_error("%s: unsupported nbdkit plugin API version %d (this host "
              "supports 1 and 2)",
              hp->path, p->_api_version);
    return -ENOEXEC;
  }
  if (p->_struct_size < min_size) {
    log_error("%s: plugin struct too small (%llu bytes)", hp->path,
              (unsigned long long)p->_struct_size);
    return -ENOEXEC;
  }
  if (p->_thread_model < NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS ||
      p->_thread_model > NBDKIT_THREAD_MODEL_PARALLEL) {
    log_error("%s: invalid thread model %d", hp->path, p->_thread_model);
    return -ENOEXEC;
  }
  n = p->_struct_size < sizeof hp->p ? p->_struct_size : sizeof hp->p;
  memset(&hp->p, 0, sizeof hp->p);
  memcpy(&hp->p, p, n);
  if (!hp->p.name || !host_valid_name(hp->p.name, strlen(hp->p.name))) {
    log_error("%s: the plugin's name must be letters, digits and '-'",
              hp->path);
    return -ENOEXEC;
  }
  hp->name = hp->p.name;
  if (!hp->p.open || !hp->p.get_size || (!hp->p.pread && !hp->p._pread_v1)) {
    log_error("%s: plugin %s lacks a required callback (open, get_size, "
              "pread)",
              hp->path, hp->name);
    return -ENOEXEC;
  }
  return 0;
}

/* Plugins live once per process (their state is global): the handles
 * of the loaded ones, to refuse a second load under another name. */
DEFINE_VECTOR(host_dl_vec, void *)
static struct host_dl_vec host_loaded;
static pthread_mutex_t host_loaded_lock = PTHREAD_MUTEX_INITIALIZER;

static int host_register(struct host_plugin *hp)
{
  int r = 0;

  pthread_mutex_lock(&host_loaded_lock);
  for (size_t i = 0; i < host_loaded.len; i++)
    if (host_loaded.ptr[i] == hp->dl)
      r = -EBUSY;
  if (r == 0 && host_dl_vec_append(&host_loaded, hp->dl) < 0)
    r = -ENOMEM;
  pthread_mutex_unlock(&host_loaded_lock);
  if (r == -EBUSY)
    log_error("%s: this plugin is already loaded for another export (a "
              "plugin's state is global: one export per plugin)",
              hp->path);
  return r;
}

static void host_unregister(void *dl)
{
  pthread_mutex_lock(&host_loaded_lock);
  for (size_t i = 0; i < host_loaded.len; i++)
    if (host_loaded.ptr[i] == dl)
      host_loaded.ptr[i] = host_loaded.ptr[--host_loaded.len];
  pthread_mutex_unlock(&host_loaded_lock);
}

static int host_dlopen(struct host_plugin *hp)
{
  struct nbdkit_plugin *(*init)(void);
  struct nbdkit_plugin *p;
  int r;

  dlerror();
  hp->dl = dlopen(hp->path, RTLD_NOW | RTLD_GLOBAL);
  if (!hp->dl) {
    log_error("cannot load plugin: %s", dlerror());
    return -ENOEXEC;
  }
  if ((r = host_register(hp)) < 0) {
    dlclose(hp->dl); /* drop only our reference */
    hp->dl = NULL;
    return r;
  }
  hp->registered = true;
  *(void **)&init = dlsym(hp->dl, "plugin_init");
  if (!init) {
    log_error("%s: not an nbdkit plugin (no plugin_init symbol)", hp->path);
    return -ENOEXEC;
  }
  p = init();
  if (!p) {
    log_error("%s: plugin_init returned NULL", hp->path);
    return -ENOEXEC;
  }
  return host_check_struct(hp, p);
}

/* Keep s alive as long as the plugin (config strings, nbdkit-plugin(3)
 * ".config": "will remain valid for the lifetime of the plugin"). */
static char *host_keep(struct host_plugin *hp, char *s)
{
  if (s && host_str_vec_append(&hp->config_strs, s) < 0) {
    free(s);
    s = NULL;
  }
  return s;
}

static int host_config_one(struct host_plugin *hp, const char *arg, bool first)
{
  const char *eq = strchr(arg, '=');
  char *key, *value;
  struct host_saved s;
  int r;

  if (eq && host_valid_key(arg, eq - arg)) {
    key = host_keep(hp, strndup(arg, eq - arg));
    value = host_keep(hp, strdup(eq + 1));
  } else if (hp->p.magic_config_key) {
    key = host_keep(hp, strdup(hp->p.magic_config_key));
    value = host_keep(hp, strdup(arg));
  } else if (first) {
    key = host_keep(hp, strdup("script"));
    value = host_keep(hp, strdup(arg));
  } else {
    log_error("%s: parameter '%s' must be key=value (this plugin has no "
              "magic config key)",
              hp->name, arg);
    return -EINVAL;
  }
  if (!key || !value)
    return -ENOMEM;
  if (!hp->p.config) {
    log_error("%s: this plugin takes no parameters (got %s=%s)", hp->name, key,
              value);
    return -EINVAL;
  }
  host_enter(&s, hp, NULL);
  r = hp->p.config(key, value);
  host_leave(&s);
  if (r == -1) {
    log_error("%s: parameter %s=%s was rejected", hp->name, key, value);
    return -EINVAL;
  }
  return 0;
}

/* Run an optional int (void) configuration callback; -1 is failure. */
static int host_config_step(struct host_plugin *hp, int (*fn)(void),
                            const char *what)
{
  struct host_saved s;
  int r;

  if (!fn)
    return 0;
  host_enter(&s, hp, NULL);
  r = fn();
  host_leave(&s);
  if (r == -1) {
    log_error("%s: %s failed", hp->name, what);
    return -EINVAL;
  }
  return r;
}

/* The effective thread model: the stricter of THREAD_MODEL and the
 * plugin's .thread_model (nbdkit-plugin(3) "Threads"). */
static int host_thread_model(struct host_plugin *hp)
{
  int model = hp->p._thread_model;
  int r = host_config_step(hp, hp->p.thread_model, "thread_model");

  if (r < 0)
    return r;
  if (hp->p.thread_model) {
    if (r > NBDKIT_THREAD_MODEL_PARALLEL) {
      log_error("%s: thread_model returned invalid model %d", hp->name, r);
      return -EINVAL;
    }
    if (r < model)
      model = r;
  }
  return model;
}

static int host_configure(struct host_plugin *hp, int argc, char *const *argv)
{
  int r;

  for (int i = 0; i < argc; i++)
    if ((r = host_config_one(hp, argv[i], i == 0)) < 0)
      return r;
  if ((r = host_config_step(hp, hp->p.config_complete, "config_complete")) < 0)
    return r;
  return 0;
}

static void host_warn_unused_flags(void)
{
  for (size_t i = 0; i < host_debug_flags.len; i++)
    if (!host_debug_flags.ptr[i].used)
      log_warn("debug flag -D %s.%s was not used (no plugin called %s)",
               host_debug_flags.ptr[i].name, host_debug_flags.ptr[i].flag,
               host_debug_flags.ptr[i].name);
}

static int host_start(struct host_plugin *hp, const char *plugin, int argc,
                      char *const *argv, bool *loaded)
{
  struct host_saved s;
  int r;

  if ((r = host_resolve(plugin, &hp->path)) < 0 || (r = host_dlopen(hp)) < 0)
    return r;
  if ((r = host_apply_debug_flags(hp)) < 0)
    return r;
  host_warn_unused_flags();
  if (hp->p.load) {
    host_enter(&s, hp, NULL);
    hp->p.load();
    host_leave(&s);
  }
  *loaded = true;
  if ((r = host_configure(hp, argc, argv)) < 0)
    return r;
  return 0;
}

int nbdkit_host_new(const char *plugin, int argc, char *const *argv,
                    struct backend **out)
{
  struct host_plugin *hp = calloc(1, sizeof *hp);
  struct backend *b = calloc(1, sizeof *b);
  bool loaded = false;
  int r, model = 0;

  if (!hp || !b) {
    free(hp);
    free(b);
    return -ENOMEM;
  }
  pthread_mutex_init(&hp->lock, NULL);
  r = host_start(hp, plugin, argc, argv, &loaded);
  if (r == 0 && (model = host_thread_model(hp)) < 0)
    r = model;
  if (r == 0)
    r = host_config_step(hp, hp->p.get_ready, "get_ready");
  if (r < 0) {
    if (!loaded)
      hp->p.unload = NULL;
    host_plugin_unload(hp);
    free(b);
    return r;
  }
  log_debug("nbdkit plugin %s (%s) API v%d, thread model %d", hp->name,
            hp->path, hp->p._api_version, model);
  b->ops = &host_backend_ops;
  b->thread_model = (enum backend_thread_model)model;
  b->priv = hp;
  *out = b;
  return 0;
}

void host_plugin_unload(struct host_plugin *hp)
{
  struct host_saved s;

  host_enter(&s, hp, NULL);
  if (hp->after_fork_done && hp->p.cleanup)
    hp->p.cleanup();
  if (hp->dl && hp->p.unload)
    hp->p.unload();
  host_leave(&s);
  /* QNBD_NBDKIT_KEEP_LOADED (like nbdkit's NBDKIT_VALGRIND) keeps the
   * plugin mapped, so that leak checkers can name its frames and do not
   * count what its globals still hold as leaked. */
  if (hp->registered)
    host_unregister(hp->dl);
  if (hp->dl && !getenv("QNBD_NBDKIT_KEEP_LOADED"))
    dlclose(hp->dl);
  for (size_t i = 0; i < hp->pending.len; i++)
    host_str_vec_free(&hp->pending.ptr[i].strs);
  host_pending_vec_reset(&hp->pending);
  host_str_vec_free(&hp->global_strs);
  host_str_vec_free(&hp->config_strs);
  pthread_mutex_destroy(&hp->lock);
  free(hp->path);
  free(hp);
}

void host_destroy(struct backend *b)
{
  host_plugin_unload(b->priv);
  free(b);
}

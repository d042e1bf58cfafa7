/* A test plugin that checks, from inside, the thread model the host
 * promised: built once per THREAD_MODEL (threads0 ... threads3).  Every
 * callback counts the calls in flight (process-wide and per handle)
 * and the open handles; a call the model forbids fails with EBUSY, and
 * the maxima seen go to the stats= file at every close so that a test
 * can also prove the server did run things in parallel when allowed. */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TEST_MODEL
#error TEST_MODEL must be set
#endif
#define THREAD_MODEL TEST_MODEL

static const char *stats_path;
static unsigned delay_ms = 20;
static int runtime_model = NBDKIT_THREAD_MODEL_PARALLEL;
static int effective_model = TEST_MODEL;

static atomic_int open_handles, in_flight, conn_in_flight;
static atomic_int max_open, max_in_flight, max_per_handle, violations;

struct handle {
  atomic_int in_flight;
};

static void raise_max(atomic_int *max, int v)
{
  int old = atomic_load(max);
  while (v > old && !atomic_compare_exchange_weak(max, &old, v))
    ;
}

static int threads_config(const char *key, const char *value)
{
  if (strcmp(key, "stats") == 0)
    stats_path = value;
  else if (strcmp(key, "delay") == 0)
    return nbdkit_parse_unsigned("delay", value, &delay_ms);
  else if (strcmp(key, "model") == 0)
    return nbdkit_parse_int("model", value, &runtime_model);
  else {
    nbdkit_error("unknown parameter '%s'", key);
    return -1;
  }
  return 0;
}

/* Ask for a stricter model at run time (nbdkit-plugin(3)
 * ".thread_model"); the host must use the minimum. */
static int threads_thread_model(void)
{
  effective_model = runtime_model < THREAD_MODEL ? runtime_model : THREAD_MODEL;
  return runtime_model;
}

/* Enter a callback: record concurrency; false if the model forbids it. */
static bool enter(struct handle *h)
{
  int g = atomic_fetch_add(&in_flight, 1) + 1;
  int p = h ? atomic_fetch_add(&h->in_flight, 1) + 1 : 1;
  bool ok = true;

  raise_max(&max_in_flight, g);
  raise_max(&max_per_handle, p);
  if (effective_model <= NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS && g > 1)
    ok = false;
  if (effective_model <= NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS && p > 1)
    ok = false;
  if (!ok)
    atomic_fetch_add(&violations, 1);
  return ok;
}

static void leave(struct handle *h)
{
  atomic_fetch_sub(&in_flight, 1);
  if (h)
    atomic_fetch_sub(&h->in_flight, 1);
}

static void write_stats(void)
{
  char buf[256];
  int fd, n;

  if (!stats_path)
    return;
  n = snprintf(buf, sizeof buf,
               "model=%d max_open=%d max_in_flight=%d max_per_handle=%d "
               "violations=%d\n",
               effective_model, atomic_load(&max_open),
               atomic_load(&max_in_flight), atomic_load(&max_per_handle),
               atomic_load(&violations));
  fd = open(stats_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    nbdkit_error("%s: %m", stats_path);
    return;
  }
  if (write(fd, buf, n) != n)
    nbdkit_error("%s: short write", stats_path);
  close(fd);
}

/* A connection-level callback (preconnect, list_exports,
 * default_export).  nbdkit 1.32 runs these outside its request lock,
 * so only SERIALIZE_CONNECTIONS constrains them: nothing else may run,
 * and no other connection may have a handle open. */
static int threads_conn_callback(const char *what)
{
  int g = atomic_fetch_add(&conn_in_flight, 1) + 1;
  bool ok = effective_model != NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS ||
            (g == 1 && atomic_load(&in_flight) == 0 &&
             atomic_load(&open_handles) == 0);

  nbdkit_nanosleep(0, delay_ms * 1000000u);
  atomic_fetch_sub(&conn_in_flight, 1);
  if (!ok) {
    atomic_fetch_add(&violations, 1);
    nbdkit_error("%s: thread model %d violated", what, effective_model);
    return -1;
  }
  return 0;
}

static int threads_preconnect(int readonly)
{
  return threads_conn_callback("preconnect");
}

static int threads_list_exports(int readonly, int is_tls,
                                struct nbdkit_exports *exports)
{
  if (threads_conn_callback("list_exports") == -1)
    return -1;
  return nbdkit_add_export(exports, "", NULL);
}

static const char *threads_default_export(int readonly, int is_tls)
{
  return threads_conn_callback("default_export") == -1 ? NULL : "";
}

static void *threads_open(int readonly)
{
  struct handle *h;
  int n = atomic_fetch_add(&open_handles, 1) + 1;
  bool ok = enter(NULL);

  raise_max(&max_open, n);
  if (effective_model == NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS && n > 1) {
    atomic_fetch_add(&violations, 1);
    ok = false;
  }
  leave(NULL);
  if (!ok) {
    atomic_fetch_sub(&open_handles, 1);
    nbdkit_error("open: thread model %d violated", effective_model);
    return NULL;
  }
  h = calloc(1, sizeof *h);
  if (!h) {
    atomic_fetch_sub(&open_handles, 1);
    nbdkit_error("calloc: %m");
  }
  return h;
}

static void threads_close(void *handle)
{
  atomic_fetch_sub(&open_handles, 1);
  free(handle);
  write_stats();
}

static int64_t threads_get_size(void *handle)
{
  return 1024 * 1024;
}

static int threads_can_multi_conn(void *handle)
{
  return 1;
}

static int threads_pread(void *handle, void *buf, uint32_t count,
                         uint64_t offset, uint32_t flags)
{
  struct handle *h = handle;
  bool ok = enter(h);

  memset(buf, 0, count);
  nbdkit_nanosleep(0, delay_ms * 1000000u);
  leave(h);
  if (!ok) {
    nbdkit_error("pread: thread model %d violated", effective_model);
    nbdkit_set_error(EBUSY);
    return -1;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
    .name = TEST_NAME,
    .config = threads_config,
    .thread_model = threads_thread_model,
    .preconnect = threads_preconnect,
    .list_exports = threads_list_exports,
    .default_export = threads_default_export,
    .open = threads_open,
    .close = threads_close,
    .get_size = threads_get_size,
    .can_multi_conn = threads_can_multi_conn,
    .pread = threads_pread,
};
NBDKIT_REGISTER_PLUGIN(plugin)

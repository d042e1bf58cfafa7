/* A test plugin that reports what the per-connection nbdkit_*
 * functions answer on the thread serving each read: the export name
 * (now and as interned at open), TLS, the peer's address family and
 * credentials.  Reads at two magic offsets call nbdkit_disconnect and
 * nbdkit_shutdown; exports and a default export are listed. */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

#define PROBE_SIZE       (1024 * 1024)
#define PROBE_DISCONNECT (PROBE_SIZE - 4096)
#define PROBE_SHUTDOWN   (PROBE_SIZE - 8192)

/* Newer nbdkit (1.34) declares this; qnbd exports it.  Weak, so that
 * nbdkit 1.32 can load this plugin too. */
extern void nbdkit_disconnect(int force) __attribute__((weak));

struct handle {
  const char *opened_as; /* interned: lives until close */
};

static int probe_list_exports(int readonly, int is_tls,
                              struct nbdkit_exports *exports)
{
  if (nbdkit_add_export(exports, "probe-a", "the first") == -1 ||
      nbdkit_add_export(exports, "probe-b", NULL) == -1)
    return -1;
  return 0;
}

static const char *probe_default_export(int readonly, int is_tls)
{
  return nbdkit_strdup_intern("probe-default");
}

static void *probe_open(int readonly)
{
  struct handle *h = malloc(sizeof *h);
  const char *name = nbdkit_export_name();

  if (!h || !name) {
    nbdkit_error("open: %m");
    free(h);
    return NULL;
  }
  h->opened_as = nbdkit_printf_intern("%s", name);
  if (!h->opened_as) {
    free(h);
    return NULL;
  }
  return h;
}

static void probe_close(void *handle)
{
  free(handle);
}

static int64_t probe_get_size(void *handle)
{
  return PROBE_SIZE;
}

static int probe_can_multi_conn(void *handle)
{
  return 1;
}

static const char *probe_family(void)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;

  if (nbdkit_peer_name((struct sockaddr *)&ss, &len) == -1)
    return "error";
  return ss.ss_family == AF_UNIX    ? "unix"
         : ss.ss_family == AF_INET  ? "inet"
         : ss.ss_family == AF_INET6 ? "inet6"
                                    : "other";
}

static int probe_pread(void *handle, void *buf, uint32_t count, uint64_t offset,
                       uint32_t flags)
{
  struct handle *h = handle;
  char text[512];

  memset(buf, 0, count);
  if (offset == PROBE_DISCONNECT) {
    if (!nbdkit_disconnect) {
      nbdkit_error("this server has no nbdkit_disconnect");
      return -1;
    }
    nbdkit_disconnect(1);
    return 0;
  }
  if (offset == PROBE_SHUTDOWN) {
    nbdkit_shutdown();
    return 0;
  }
  snprintf(text, sizeof text,
           "export=%s opened=%s tls=%d peer=%s pid=%lld uid=%lld gid=%lld\n",
           nbdkit_export_name(), h->opened_as, nbdkit_is_tls(), probe_family(),
           (long long)nbdkit_peer_pid(), (long long)nbdkit_peer_uid(),
           (long long)nbdkit_peer_gid());
  memcpy(buf, text, strlen(text) < count ? strlen(text) : count);
  return 0;
}

static struct nbdkit_plugin plugin = {
    .name = "probe",
    .list_exports = probe_list_exports,
    .default_export = probe_default_export,
    .open = probe_open,
    .close = probe_close,
    .get_size = probe_get_size,
    .can_multi_conn = probe_can_multi_conn,
    .pread = probe_pread,
};
NBDKIT_REGISTER_PLUGIN(plugin)

/* Unit test of the nbdkit plugin host without a server: load Debian's
 * packaged plugins and our test plugins through nbdkit_host_new and
 * drive the backend ops directly; check the exported nbdkit_* helpers
 * against nbdkit's documented semantics (nbdkit-plugin(3)). */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>
#include <nbdkit-filter.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "nbdkit-host/host.h"
#include "server.h"
#include "util/log.h"

static int failures;
static int shutdown_requests;

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c)) {                                                                \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);    \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* The server's hooks, recorded instead of acted on. */
void server_request_shutdown(void)
{
  shutdown_requests++;
}

void server_disconnect_current(bool force) {}

static struct backend *load(const char *plugin, int argc, char *const *argv)
{
  struct backend *b = NULL;
  int r = nbdkit_host_new(plugin, argc, argv, &b);
  if (r < 0) {
    fprintf(stderr, "loading %s failed: %s\n", plugin, strerror(-r));
    failures++;
    return NULL;
  }
  CHECK(b->ops->after_fork(b) == 0);
  return b;
}

static void *open_handle(struct backend *b, const char *name, bool ro)
{
  struct backend_conn_info ci = {
      .conn_id = 1, .export_name = name, .readonly = ro, .fd = -1};
  void *h = NULL;
  CHECK(b->ops->preconnect(b, &ci) == 0);
  CHECK(b->ops->open(b, &ci, &h) == 0);
  return h;
}

#define GiB (1024ull * 1024 * 1024)

/* memory, 8G sparse: data at 64K and at 6G+64K, 64-bit requests. */
static void test_memory(void)
{
  char *const args[] = {(char *)"size=8G"};
  struct backend *b = load("memory", 1, args);
  struct backend_caps c;
  struct extents e;
  uint64_t size = 0;
  char buf[4096], back[4096];
  void *h;

  if (!b)
    return;
  CHECK(b->thread_model == BACKEND_PARALLEL);
  /* The same plugin under another name: its state is global, refused. */
  {
    struct backend *b2 = NULL;
    CHECK(nbdkit_host_new(QNBD_NBDKIT_PLUGINDIR "/nbdkit-memory-plugin.so", 1,
                          args, &b2) == -EBUSY);
  }
  h = open_handle(b, "", false);
  CHECK(b->ops->get_size(h, &size) == 0 && size == 8 * GiB);
  CHECK(b->ops->caps(h, &c) == 0);
  CHECK(c.can_write && c.can_trim && c.can_extents && c.can_multi_conn);
  CHECK(c.can_zero == BACKEND_SUPPORT_NATIVE);
  memset(buf, 0xa5, sizeof buf);
  CHECK(b->ops->pwrite(h, buf, sizeof buf, 65536, BACKEND_FLAG_FUA) == 0);
  CHECK(b->ops->pwrite(h, buf, sizeof buf, 6 * GiB + 65536, 0) == 0);
  CHECK(b->ops->pread(h, back, sizeof back, 65536, 0) == 0);
  CHECK(memcmp(buf, back, sizeof buf) == 0);
  /* 8G of extents in one 64-bit query: the plugin sees at most 2G, so
   * the answer covers at least that much, and starts right. */
  extents_init(&e, 0, size);
  CHECK(b->ops->extents(h, 0, size, 0, 0, &e) == 0);
  CHECK(e.v.len >= 3 && e.v.ptr[0].flags == 3 && e.v.ptr[1].flags == 0 &&
        e.v.ptr[1].offset == 65536 && e.v.ptr[2].flags == 3);
  CHECK(extents_covered(&e) >= 2 * GiB);
  extents_free(&e);
  /* Zero 7G (more than a uint32_t): split into plugin-sized calls. */
  CHECK(b->ops->zero(h, 7 * GiB, 0, BACKEND_FLAG_MAY_TRIM) == 0);
  CHECK(b->ops->pread(h, back, sizeof back, 6 * GiB + 65536, 0) == 0);
  CHECK(back[0] == 0 && back[4095] == 0);
  CHECK(b->ops->pwrite(h, buf, sizeof buf, 5 * GiB, 0) == 0);
  CHECK(b->ops->trim(h, 5 * GiB + 4096, 0, 0) == 0);
  CHECK(b->ops->pread(h, back, sizeof back, 5 * GiB, 0) == 0);
  CHECK(back[0] == 0 && back[4095] == 0);
  /* The whole disk is one hole again. */
  extents_init(&e, 0, size);
  CHECK(b->ops->extents(h, 0, size, 0, 0, &e) == 0);
  CHECK(e.v.len == 1 && e.v.ptr[0].flags == 3);
  extents_free(&e);
  b->ops->close(b, h);
  b->ops->destroy(b);
}

static void test_data_extents(void)
{
  char *const args[] = {(char *)"@32768 1 @65536 1", (char *)"size=1M"};
  struct backend *b = load("data", 2, args);
  struct extents e;
  void *h;

  if (!b)
    return;
  h = open_handle(b, "", true);
  extents_init(&e, 0, 1024 * 1024);
  CHECK(b->ops->extents(h, 0, 1024 * 1024, 0, 0, &e) == 0);
  /* As nbdkit reports it: 32K pages, the two bytes in adjacent ones. */
  CHECK(e.v.len == 3);
  CHECK(e.v.ptr[0].offset == 0 && e.v.ptr[0].length == 32768 &&
        e.v.ptr[0].flags == 3);
  CHECK(e.v.ptr[1].length == 65536 && e.v.ptr[1].flags == 0);
  CHECK(extents_covered(&e) == 1024 * 1024);
  extents_free(&e);
  b->ops->close(b, h);
  b->ops->destroy(b);
}

static void test_pattern_and_full(void)
{
  char *const pargs[] = {(char *)"size=1M"};
  struct backend *b = load("pattern", 1, pargs);
  unsigned char buf[16];
  char w[512] = {0};
  void *h;

  if (b) {
    h = open_handle(b, "", true);
    CHECK(b->ops->pread(h, buf, 16, 4096, 0) == 0);
    /* Each 8 bytes hold their own offset, big-endian. */
    CHECK(buf[6] == 0x10 && buf[7] == 0 && buf[14] == 0x10 && buf[15] == 8);
    b->ops->close(b, h);
    b->ops->destroy(b);
  }
  b = load("full", 1, pargs);
  if (b) {
    h = open_handle(b, "", false);
    CHECK(b->ops->pwrite(h, w, sizeof w, 0, 0) == -ENOSPC);
    b->ops->close(b, h);
    b->ops->destroy(b);
  }
}

/* Loading errors must fail cleanly with a negative errno. */
static void test_bad_plugins(const char *dir)
{
  struct backend *b = NULL;
  char path[4096];
  char *const bad_size[] = {(char *)"size=lots"};
  char *const two_bare[] = {(char *)"size=1M", (char *)"bare"};

  CHECK(nbdkit_host_new("no-such-plugin", 0, NULL, &b) == -ENOENT);
  CHECK(nbdkit_host_new("bad_name!", 0, NULL, &b) == -EINVAL);
  CHECK(nbdkit_host_new("/nonexistent/x.so", 0, NULL, &b) == -ENOENT);
  snprintf(path, sizeof path, "%s/nbdkit-noinit-plugin.so", dir);
  CHECK(nbdkit_host_new(path, 0, NULL, &b) == -ENOEXEC);
  snprintf(path, sizeof path, "%s/nbdkit-badapi-plugin.so", dir);
  CHECK(nbdkit_host_new(path, 0, NULL, &b) == -ENOEXEC);
  /* Each plugin is loaded once per process, as in qnbd (ASan runs keep
   * them loaded: QNBD_NBDKIT_KEEP_LOADED). */
  CHECK(nbdkit_host_new("null", 1, bad_size, &b) == -EINVAL);
  /* random has a magic key "size", so a bare value is a size. */
  CHECK(nbdkit_host_new("random", 2, two_bare, &b) == -EINVAL);
  CHECK(nbdkit_host_new("zero", 1, bad_size, &b) == -EINVAL);
  CHECK(nbdkit_host_debug_flag("memory.dir") == -EINVAL);
  CHECK(nbdkit_host_debug_flag("x=1") == -EINVAL);
  CHECK(nbdkit_host_debug_flag(".a=1") == -EINVAL);
  CHECK(nbdkit_host_debug_flag("file.zero=abc") == -EINVAL);
}

/* threads2 says SERIALIZE_REQUESTS; model=1 at run time lowers it. */
static void test_thread_model(const char *dir)
{
  char path[4096];
  char *const lower[] = {(char *)"model=1"};
  char *const higher[] = {(char *)"model=3"};
  struct backend *b;

  snprintf(path, sizeof path, "%s/nbdkit-threads2-plugin.so", dir);
  if ((b = load(path, 1, lower))) {
    CHECK(b->thread_model == BACKEND_SERIALIZE_ALL_REQUESTS);
    b->ops->destroy(b);
  }
  if ((b = load(path, 1, higher))) {
    CHECK(b->thread_model == BACKEND_SERIALIZE_REQUESTS);
    b->ops->destroy(b);
  }
}

static void test_parse(void)
{
  int i = 7;
  unsigned u = 7;
  int8_t i8 = 7;
  uint16_t u16 = 0;
  int64_t i64 = 0;
  char *pw = NULL;

  CHECK(nbdkit_parse_size("0") == 0);
  CHECK(nbdkit_parse_size("1M") == 1024 * 1024);
  CHECK(nbdkit_parse_size("1s") == 512 && nbdkit_parse_size("1B") == 1);
  CHECK(nbdkit_parse_size("1e") == (int64_t)1 << 60);
  CHECK(nbdkit_parse_size("8e") == -1);
  CHECK(nbdkit_parse_size("-1") == -1);
  CHECK(nbdkit_parse_size("1KiB") == -1 && nbdkit_parse_size("0x10") == -1);
  CHECK(nbdkit_parse_size("") == -1 && nbdkit_parse_size("k") == -1);
  CHECK(nbdkit_parse_bool("ON") == 1 && nbdkit_parse_bool("y") == 1);
  CHECK(nbdkit_parse_bool("off") == 0 && nbdkit_parse_bool("0") == 0);
  CHECK(nbdkit_parse_bool("maybe") == -1 && nbdkit_parse_bool("") == -1);
  CHECK(nbdkit_parse_int("t", "0x10", &i) == 0 && i == 16);
  CHECK(nbdkit_parse_int("t", "010", &i) == 0 && i == 8);
  CHECK(nbdkit_parse_int("t", "12abc", &i) == -1 && i == 8);
  CHECK(nbdkit_parse_int("t", "99999999999", &i) == -1);
  CHECK(nbdkit_parse_unsigned("t", "-1", &u) == -1 && u == 7);
  CHECK(nbdkit_parse_int8_t("t", "-128", &i8) == 0 && i8 == -128);
  CHECK(nbdkit_parse_int8_t("t", "128", &i8) == -1);
  CHECK(nbdkit_parse_uint16_t("t", "65535", &u16) == 0 && u16 == 65535);
  CHECK(nbdkit_parse_uint16_t("t", "65536", &u16) == -1);
  CHECK(nbdkit_parse_int64_t("t", "-9223372036854775808", &i64) == 0);
  CHECK(nbdkit_parse_uint64_t("t", "18446744073709551615", NULL) == 0);
  CHECK(nbdkit_parse_uint32_t("t", "", NULL) == -1);
  CHECK(nbdkit_read_password("secret", &pw) == 0 && strcmp(pw, "secret") == 0);
  free(pw);
  CHECK(nbdkit_read_password("-1", &pw) == -1);
}

static void test_read_password_file(void)
{
  char path[] = "/tmp/qnbd-pw-XXXXXX";
  int fd = mkstemp(path);
  char *pw = NULL;
  char arg[64];

  CHECK(fd >= 0);
  if (fd < 0)
    return;
  CHECK(write(fd, "hunter2\n", 8) == 8);
  close(fd);
  snprintf(arg, sizeof arg, "+%s", path);
  CHECK(nbdkit_read_password(arg, &pw) == 0 && strcmp(pw, "hunter2") == 0);
  free(pw);
  fd = open(path, O_RDONLY);
  snprintf(arg, sizeof arg, "-%d", fd);
  CHECK(nbdkit_read_password(arg, &pw) == 0 && strcmp(pw, "hunter2") == 0);
  free(pw);
  CHECK(fcntl(fd, F_GETFD) == -1); /* -FD closes the descriptor */
  unlink(path);
}

static void test_paths(void)
{
  char *p = nbdkit_absolute_path("x/y");
  char *cwd = getcwd(NULL, 0);
  char want[4096];

  snprintf(want, sizeof want, "%s/x/y", cwd);
  CHECK(p && strcmp(p, want) == 0);
  free(p);
  p = nbdkit_absolute_path("/a");
  CHECK(p && strcmp(p, "/a") == 0);
  free(p);
  CHECK(nbdkit_absolute_path("") == NULL);
  p = nbdkit_realpath("/");
  CHECK(p && strcmp(p, "/") == 0);
  free(p);
  CHECK(nbdkit_realpath("/nonexistent/qnbd") == NULL);
  free(cwd);
  /* Outside any connection the per-connection helpers fail cleanly. */
  CHECK(nbdkit_export_name() == NULL && nbdkit_is_tls() == -1);
  CHECK(nbdkit_peer_pid() == -1);
  CHECK(nbdkit_stdio_safe() == 1);
}

static void test_lists(void)
{
  struct nbdkit_extents *x = nbdkit_extents_new(100, 200);
  struct nbdkit_exports *ex = nbdkit_exports_new();
  struct nbdkit_extent e0;
  int err = 0;

  CHECK(x != NULL && ex != NULL);
  if (!x || !ex)
    return;
  CHECK(nbdkit_add_extent(x, 150, 10, 0) == -1); /* first must cover 100 */
  CHECK(nbdkit_add_extent(x, 0, 120, 3) == 0);   /* clipped to [100,120) */
  CHECK(nbdkit_add_extent(x, 121, 10, 0) == -1); /* gap */
  CHECK(nbdkit_add_extent(x, 120, 180, 0) == 0); /* past end: clipped */
  CHECK(nbdkit_add_extent(x, 300, 10, 3) == 0);  /* beyond: ignored */
  CHECK(nbdkit_extents_count(x) == 2);
  e0 = nbdkit_get_extent(x, 0);
  CHECK(e0.offset == 100 && e0.length == 20 && e0.type == 3);
  CHECK(nbdkit_get_extent(x, 1).length == 80);
  nbdkit_extents_free(x);
  CHECK(nbdkit_extents_new(10, 5) == NULL);
  CHECK(nbdkit_add_export(ex, "a", "first") == 0);
  CHECK(nbdkit_add_export(ex, "b", NULL) == 0);
  CHECK(nbdkit_exports_count(ex) == 2);
  CHECK(strcmp(nbdkit_get_export(ex, 0).description, "first") == 0);
  CHECK(nbdkit_get_export(ex, 1).description == NULL);
  nbdkit_exports_free(ex);
  CHECK(nbdkit_extents_full(NULL, 1, 0, 0, &err) == NULL && err == ENOTSUP);
  CHECK(nbdkit_context_get_backend(NULL) == NULL);
  nbdkit_shutdown();
  CHECK(shutdown_requests == 1);
  CHECK(nbdkit_nanosleep(0, 1000) == -1); /* shutting down: give up */
}

int main(int argc, char **argv)
{
  const char *dir = getenv("QNBD_TEST_PLUGINS");

  if (!dir) {
    fprintf(stderr, "QNBD_TEST_PLUGINS must name the test plugins dir\n");
    return 1;
  }
  log_set_level(LOG_LVL_DEBUG);
  test_parse();
  test_read_password_file();
  test_paths();
  test_memory();
  test_data_extents();
  test_pattern_and_full();
  test_bad_plugins(dir);
  test_thread_model(dir);
  test_lists(); /* last: it requests shutdown */
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("ok\n");
  return 0;
}

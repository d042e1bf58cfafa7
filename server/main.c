/* qnbd's entry point: parse the command line (and the configuration
 * file), choose where logs go, open the exports, listen, tell systemd
 * we are ready, run the event loop, and shut down gracefully on
 * SIGINT/SIGTERM. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#ifdef QNBD_HAVE_NBDKIT_HOST
#include "nbdkit-host/host.h"
#endif
#include "server.h"
#include "util/log.h"

#define SHUTDOWN_GRACE_MS 10000
/* After the grace period, handles are closed; backend calls that still
 * do not return within this many seconds end the process. */
#define SHUTDOWN_FORCE_S 5

/* The one running server, for server_request_shutdown() callers that
 * have no other way to reach it (signal handlers, plugins). */
static struct server *the_server;

static void close_walk_cb(uv_handle_t *h, void *arg)
{
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static void on_shutdown_timer(uv_timer_t *t)
{
  struct server *srv = t->data;
  log_warn("connections did not finish within %d s; closing them",
           SHUTDOWN_GRACE_MS / 1000);
  uv_walk(srv->loop, close_walk_cb, NULL);
  signal(SIGALRM, SIG_DFL);
  alarm(SHUTDOWN_FORCE_S);
}

/* Begin a graceful shutdown: stop accepting, let in-flight requests
 * finish, flush, close.  The loop ends when no handle is left. */
void server_shutdown(struct server *srv)
{
  if (srv->shutting_down)
    return;
  __atomic_store_n(&srv->shutting_down, true, __ATOMIC_RELAXED);
  log_info("shutting down");
  notify_send("STOPPING=1\nSTATUS=finishing %u connections", srv->nconns);
  listen_stop(srv);
  reload_stop(srv);
  uv_close((uv_handle_t *)&srv->sig_int, NULL);
  uv_close((uv_handle_t *)&srv->sig_term, NULL);
  uv_close((uv_handle_t *)&srv->shutdown_async, NULL);
  conn_shutdown_all(srv);
  uv_timer_start(&srv->shutdown_timer, on_shutdown_timer, SHUTDOWN_GRACE_MS, 0);
  uv_unref((uv_handle_t *)&srv->shutdown_timer);
}

static void on_signal(uv_signal_t *s, int signum)
{
  log_info("received %s", strsignal(signum));
  server_shutdown(s->data);
}

static void on_shutdown_async(uv_async_t *a)
{
  server_shutdown(a->data);
}

void server_request_shutdown(void)
{
  if (the_server)
    uv_async_send(&the_server->shutdown_async);
}

/* Write our pid to path atomically (temp file + rename). */
static int write_pid_file(const char *path)
{
  char tmp[4096];
  FILE *f;

  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
  f = fopen(tmp, "we");
  if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 ||
      rename(tmp, path) < 0) {
    log_error("pid file %s: %m", path);
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* --fork: the parent exits once the child is serving. */
static int daemon_ready_fd = -1;

/* The parent of --fork exits once the child says it serves (after
 * after_fork and the pid file), with 1 if the child died first. */
static int daemonize(struct server *srv)
{
  int p[2];
  char c;

  if (pipe2(p, O_CLOEXEC) < 0) {
    log_error("pipe: %m");
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    log_error("fork: %m");
    return -1;
  }
  if (pid > 0) {
    ssize_t n;
    close(p[1]);
    do
      n = read(p[0], &c, 1);
    while (n < 0 && errno == EINTR);
    _exit(n == 1 && c == 'R' ? 0 : 1);
  }
  close(p[0]);
  daemon_ready_fd = p[1];
  setsid();
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    close(fd);
  }
  return uv_loop_fork(srv->loop);
}

static int after_fork(struct server *srv)
{
  for (size_t i = 0; i < srv->exports.len; i++) {
    struct backend *b = srv->exports.ptr[i]->backend;
    if (b->ops->after_fork && b->ops->after_fork(b) < 0) {
      log_error("export '%s': after_fork failed", srv->exports.ptr[i]->name);
      return -1;
    }
  }
  return 0;
}

static int setup_loop(struct server *srv)
{
  srv->loop = uv_default_loop();
  uv_signal_init(srv->loop, &srv->sig_int);
  uv_signal_init(srv->loop, &srv->sig_term);
  srv->sig_int.data = srv->sig_term.data = srv;
  uv_signal_start(&srv->sig_int, on_signal, SIGINT);
  uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
  uv_async_init(srv->loop, &srv->shutdown_async, on_shutdown_async);
  srv->shutdown_async.data = srv;
  uv_timer_init(srv->loop, &srv->shutdown_timer);
  output_init(srv);
  srv->shutdown_timer.data = srv;
  reload_init(srv);
  return notify_init(srv);
}

/* Is stderr the journal stream systemd gave us?  (JOURNAL_STREAM is
 * "DEVICE:INODE" of it, systemd.exec(5).) */
static bool stderr_is_journal(void)
{
  const char *js = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;

  return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
         fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

/* Where logs go: --log, else the journal when systemd connected our
 * stderr to it, syslog once --fork detached us (start-up errors still
 * reach the terminal), stderr otherwise. */
static void setup_logging(const struct config *cfg, bool forked)
{
  enum log_target t = cfg->log;

  if (t == LOG_TO_AUTO)
    t = stderr_is_journal()   ? LOG_TO_JOURNAL
        : cfg->fork && forked ? LOG_TO_SYSLOG
                              : LOG_TO_STDERR;
  if (forked) {
    if (t == LOG_TO_SYSLOG && cfg->log == LOG_TO_AUTO)
      log_use_syslog("qnbd");
    return;
  }
  if (t == LOG_TO_SYSLOG)
    log_use_syslog("qnbd");
  else if (t == LOG_TO_JOURNAL)
    log_use_journal();
  if (cfg->verbose)
    log_set_level(LOG_LVL_DEBUG);
}

/* --config: the file's exports replace the command line's. */
static int load_config(struct config *cfg)
{
  struct export_config_vec v;

  if (!cfg->config_file)
    return 0;
  if (config_load(cfg->config_file, &v) < 0)
    return -1;
  export_config_vec_reset(&cfg->exports);
  cfg->exports = v;
  return 0;
}

/* Listen (or adopt stdio), print the URI, fork if asked. */
static int start_serving(struct server *srv)
{
  char *uri = NULL;

  if (srv->cfg->stdio) {
    srv->stdio_mode = true;
    if (pool_init(&srv->pool, srv->loop, srv->cfg->threads) < 0)
      return -1;
    return conn_new_stdio(srv);
  }
  if (listen_start(srv, &uri) < 0)
    return -1;
  if (uri) {
    printf("%s\n", uri);
    fflush(stdout);
    log_info("serving %s", uri);
    free(uri);
  }
  if (srv->cfg->fork) {
    if (daemonize(srv) < 0)
      return -1;
    setup_logging(srv->cfg, true);
  }
  /* Threads after fork: they would not survive it. */
  return pool_init(&srv->pool, srv->loop, srv->cfg->threads);
}

int main(int argc, char **argv)
{
  static struct config cfg;
  static struct server srv;
  int r;

  r = options_parse(argc, argv, &cfg);
  if (r != 0)
    return r > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
  setup_logging(&cfg, false);
  if (load_config(&cfg) < 0)
    return EXIT_FAILURE;
  signal(SIGPIPE, SIG_IGN);
#ifdef QNBD_HAVE_NBDKIT_HOST
  nbdkit_host_set_stdio(cfg.stdio);
#endif

  srv.cfg = &cfg;
  the_server = &srv;
  pthread_mutex_init(&srv.exports_lock, NULL);
  if (exports_open(&cfg.exports, cfg.config_file, &srv.exports) < 0)
    return EXIT_FAILURE;
  srv.serialize_connections = exports_serialize_connections(&srv.exports);
  setup_loop(&srv);
  if (start_serving(&srv) < 0 || after_fork(&srv) < 0 ||
      (cfg.pid_file && write_pid_file(cfg.pid_file) < 0)) {
    listen_stop(&srv);
    exports_close(&srv.exports);
    return EXIT_FAILURE;
  }
  if (daemon_ready_fd >= 0) {
    (void)!write(daemon_ready_fd, "R", 1);
    close(daemon_ready_fd);
  }
  /* Exports open, sockets listening: systemd may send clients. */
  notify_send("READY=1\nMAINPID=%d\nSTATUS=serving %zu exports", (int)getpid(),
              srv.exports.len);

  uv_run(srv.loop, UV_RUN_DEFAULT);

  if (!srv.shutting_down)
    server_shutdown(&srv);
  uv_run(srv.loop, UV_RUN_DEFAULT);
  notify_stop(&srv);
  pool_stop(&srv.pool);
  uv_walk(srv.loop, close_walk_cb, NULL);
  uv_run(srv.loop, UV_RUN_DEFAULT);
  uv_loop_close(srv.loop);
  /* Destroying the backends flushes them and marks qcow2 images clean. */
  exports_close(&srv.exports);
  if (cfg.pid_file)
    unlink(cfg.pid_file);
  log_info("exited cleanly");
  return EXIT_SUCCESS;
}

/* The systemd notification protocol without libsystemd: datagrams to
 * $NOTIFY_SOCKET (sd_notify(3): READY=1, RELOADING=1, STOPPING=1,
 * STATUS=...) and watchdog keep-alives at half of $WATCHDOG_USEC
 * (sd_watchdog_enabled(3)). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "util/log.h"

/* Written once by notify_init on the loop thread before anything runs
 * concurrently; notify_send may then be called from any thread. */
static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_addrlen;

/* NOTIFY_SOCKET is an absolute path or, with a leading '@', a name in
 * the abstract namespace (unix(7)). */
static int notify_connect(const char *path)
{
  size_t n = strlen(path);

  if ((path[0] != '/' && path[0] != '@') || n < 2 ||
      n > sizeof notify_addr.sun_path) {
    log_warn("NOTIFY_SOCKET=%s: not an absolute path or @name: ignored", path);
    return -EINVAL;
  }
  notify_addr.sun_family = AF_UNIX;
  memcpy(notify_addr.sun_path, path, n);
  if (path[0] == '@')
    notify_addr.sun_path[0] = '\0';
  notify_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (notify_fd < 0) {
    log_warn("NOTIFY_SOCKET: socket: %m");
    return -errno;
  }
  return 0;
}

void notify_send(const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  int n;

  if (notify_fd < 0)
    return;
  va_start(ap, fmt);
  n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof msg)
    return;
  if (sendto(notify_fd, msg, (size_t)n, MSG_NOSIGNAL,
             (struct sockaddr *)&notify_addr, notify_addrlen) < 0)
    log_debug("NOTIFY_SOCKET: cannot send %s: %m", msg);
}

static void on_watchdog(uv_timer_t *t)
{
  notify_send("WATCHDOG=1");
}

/* WATCHDOG_USEC applies to us when WATCHDOG_PID is unset or ours.  The
 * pings come from the event loop, so a stuck loop stops them. */
static void watchdog_init(struct server *srv)
{
  const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
  unsigned long long us;
  char *end;

  if (!usec)
    return;
  errno = 0;
  us = strtoull(usec, &end, 10);
  if (pid && atol(pid) != (long)getpid())
    log_debug("WATCHDOG_PID=%s is not us: no watchdog", pid);
  else if (errno || end == usec || *end || us == 0)
    log_warn("WATCHDOG_USEC=%s: not a number of microseconds: ignored", usec);
  else if (notify_fd < 0)
    log_warn("WATCHDOG_USEC is set but NOTIFY_SOCKET is not: no watchdog");
  else {
    uint64_t ms = us / 2000 ? us / 2000 : 1;
    uv_timer_start(&srv->watchdog_timer, on_watchdog, ms, ms);
    uv_unref((uv_handle_t *)&srv->watchdog_timer);
    log_debug("watchdog: WATCHDOG=1 every %llu ms", (unsigned long long)ms);
  }
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
}

int notify_init(struct server *srv)
{
  const char *path = getenv("NOTIFY_SOCKET");

  uv_timer_init(srv->loop, &srv->watchdog_timer);
  srv->watchdog_timer.data = srv;
  if (path && *path)
    notify_connect(path);
  /* What plugins run must not speak for us. */
  unsetenv("NOTIFY_SOCKET");
  watchdog_init(srv);
  return 0;
}

void notify_stop(struct server *srv)
{
  uv_timer_stop(&srv->watchdog_timer);
  if (notify_fd >= 0)
    close(notify_fd);
  notify_fd = -1;
}

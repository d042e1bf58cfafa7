/* The per-thread context around plugin callbacks, and the exported
 * nbdkit_* functions about messages, errors, sleeping and shutdown
 * (nbdkit-plugin(3) "Error handling", "DEBUGGING", "SHUTDOWN"). */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "server.h"
#include "util/log.h"

_Thread_local struct host_conn *host_cur_conn;
_Thread_local struct host_plugin *host_cur_plugin;
_Thread_local int host_cur_error;
bool host_stdio_busy;

static pthread_mutex_t host_sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t host_sleep_cond = PTHREAD_COND_INITIALIZER;
static atomic_bool host_shutdown_flag;

void host_enter(struct host_saved *s, struct host_plugin *hp,
                struct host_conn *conn)
{
  s->conn = host_cur_conn;
  s->plugin = host_cur_plugin;
  host_cur_conn = conn;
  host_cur_plugin = hp;
  host_cur_error = 0;
}

void host_leave(const struct host_saved *s)
{
  host_cur_conn = s->conn;
  host_cur_plugin = s->plugin;
}

int host_failure_errno(const struct host_plugin *hp, int saved_errno)
{
  if (host_cur_error > 0)
    return host_cur_error;
  if (hp->p.errno_is_preserved && saved_errno > 0)
    return saved_errno;
  return EIO;
}

void host_str_vec_free(struct host_str_vec *v)
{
  for (size_t i = 0; i < v->len; i++)
    free(v->ptr[i]);
  host_str_vec_reset(v);
}

bool host_shutting_down(void)
{
  return atomic_load(&host_shutdown_flag);
}

void host_set_shutting_down(void)
{
  pthread_mutex_lock(&host_sleep_lock);
  atomic_store(&host_shutdown_flag, true);
  pthread_cond_broadcast(&host_sleep_cond);
  pthread_mutex_unlock(&host_sleep_lock);
}

/* The plugin's name prefixes its messages, as nbdkit's do. */
static const char *host_msg_prefix(void)
{
  return host_cur_plugin ? host_cur_plugin->name : "plugin";
}

void nbdkit_verror(const char *fmt, va_list args)
{
  int saved_errno = errno;
  char msg[2048];

  /* glibc's vsnprintf expands %m from errno, which must be the
   * caller's. */
  errno = saved_errno;
  vsnprintf(msg, sizeof msg, fmt, args);
  log_error("%s: %s", host_msg_prefix(), msg);
  errno = saved_errno;
}

void nbdkit_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  nbdkit_verror(fmt, ap);
  va_end(ap);
}

void nbdkit_vdebug(const char *fmt, va_list args)
{
  int saved_errno = errno;
  char msg[2048];

  if (log_get_level() < LOG_LVL_DEBUG)
    return;
  errno = saved_errno;
  vsnprintf(msg, sizeof msg, fmt, args);
  log_debug("%s: %s", host_msg_prefix(), msg);
  errno = saved_errno;
}

void nbdkit_debug(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  nbdkit_vdebug(fmt, ap);
  va_end(ap);
}

void nbdkit_set_error(int err)
{
  host_cur_error = err;
}

void nbdkit_shutdown(void)
{
  host_set_shutting_down();
  server_request_shutdown();
}

/* Newer nbdkit (1.34): drop the current client connection. */
void nbdkit_disconnect(int force);
void nbdkit_disconnect(int force)
{
  if (!host_cur_conn) {
    nbdkit_error("nbdkit_disconnect: no connection in this thread");
    return;
  }
  server_disconnect_current(force != 0);
}

/* Sleep, but give up early when the server is shutting down, so that
 * a sleeping plugin does not delay exit (nbdkit-plugin(3) "SLEEPING"). */
int nbdkit_nanosleep(unsigned sec, unsigned nsec)
{
  struct timespec until;
  int r = 0;

  if (sec > INT_MAX || nsec >= 1000000000u) {
    nbdkit_error("nbdkit_nanosleep: invalid time %us %uns", sec, nsec);
    errno = EINVAL;
    return -1;
  }
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += sec;
  until.tv_nsec += nsec;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&host_sleep_lock);
  while (!atomic_load(&host_shutdown_flag) && r != ETIMEDOUT)
    r = pthread_cond_timedwait(&host_sleep_cond, &host_sleep_lock, &until);
  pthread_mutex_unlock(&host_sleep_lock);
  if (r != ETIMEDOUT) {
    nbdkit_error("aborting sleep: the server is shutting down");
    errno = ESHUTDOWN;
    return -1;
  }
  return 0;
}

/* Logging to stderr or syslog with a per-thread connection id. */
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static enum log_level max_level = LOG_LVL_INFO;
static bool to_syslog;
static bool journal_prefix;
static _Thread_local uint64_t current_conn;

void log_set_level(enum log_level level)
{
  max_level = level;
}

enum log_level log_get_level(void)
{
  return max_level;
}

void log_use_syslog(const char *ident)
{
  openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
  to_syslog = true;
}

void log_use_journal(void)
{
  journal_prefix = true;
}

void log_set_conn(uint64_t conn_id)
{
  current_conn = conn_id;
}

uint64_t log_get_conn(void)
{
  return current_conn;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
  static const char *const names[] = {"error", "warning", "info", "debug"};
  static const int prios[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
  int saved_errno = errno; /* so that callers may use %m */
  char msg[1024];

  if (level > max_level)
    return;
  errno = saved_errno;
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (to_syslog) {
    if (current_conn)
      syslog(prios[level], "conn %" PRIu64 ": %s", current_conn, msg);
    else
      syslog(prios[level], "%s", msg);
  } else if (journal_prefix) {
    /* The journal adds the time and the program name itself. */
    if (current_conn)
      fprintf(stderr, "<%d>%s: conn %" PRIu64 ": %s\n", prios[level],
              names[level], current_conn, msg);
    else
      fprintf(stderr, "<%d>%s: %s\n", prios[level], names[level], msg);
  } else if (current_conn) {
    fprintf(stderr, "qnbd: %s: conn %" PRIu64 ": %s\n", names[level],
            current_conn, msg);
  } else {
    fprintf(stderr, "qnbd: %s: %s\n", names[level], msg);
  }
  errno = saved_errno;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  log_vmsg(level, fmt, ap);
  va_end(ap);
}

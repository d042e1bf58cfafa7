/* The engine's logging calls (core/util/log.h) routed to nbdkit's own
 * log, so that what the qcow2 engine says about an image reaches the
 * user as nbdkit messages (stderr or syslog, as nbdkit was told).
 *
 * The plugin links qnbd-core statically.  Because these definitions
 * come first on the link line, the linker never pulls core/util/log.o
 * out of the archive: the engine's references bind here.  If the engine
 * ever calls a log.h function not defined below, log.o is pulled in and
 * the link fails on the duplicate definitions, which is the signal to
 * add that function here.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <stdio.h>

#include "util/log.h"

/* The engine formats debug messages only when asked for them; nbdkit
 * itself drops nbdkit_debug output unless run with -v. */
enum log_level log_get_level(void)
{
  return LOG_LVL_DEBUG;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
  int saved_errno = errno; /* callers may use %m, and expect errno kept */
  char msg[1024];

  vsnprintf(msg, sizeof msg, fmt, ap);
  /* nbdkit has errors and debug messages only; a warning (say, "image
   * is marked corrupt") must be seen without -v, so it goes out as an
   * error line that says it is a warning. */
  switch (level) {
  case LOG_LVL_ERROR:
    nbdkit_error("%s", msg);
    break;
  case LOG_LVL_WARN:
    nbdkit_error("warning: %s", msg);
    break;
  case LOG_LVL_INFO:
  case LOG_LVL_DEBUG:
    nbdkit_debug("%s", msg);
    break;
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

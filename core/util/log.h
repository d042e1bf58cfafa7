/* Logging: one line per message on stderr (or syslog), with the level
 * and the id of the connection the calling thread works for. */
#ifndef QNBD_UTIL_LOG_H
#define QNBD_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Messages above this level are dropped (default LOG_LVL_INFO). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Send messages to syslog instead of stderr. */
void log_use_syslog(const char *ident);
/* Keep stderr but start each line with its syslog priority, "<3>", as
 * the systemd journal reads a service's stderr (sd-daemon(3)). */
void log_use_journal(void);

/* The connection the calling thread is working for (0: none). */
void log_set_conn(uint64_t conn_id);
uint64_t log_get_conn(void);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                         \
  do {                                                                         \
    if (log_get_level() >= LOG_LVL_DEBUG)                                      \
      log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                     \
  } while (0)

#endif

/* Diagnostic log on stderr, one line per call: "2026-11-28T15:00:00.123Z warn msg".
 * Thread-safe (one write(2) per line). The access log is separate (accesslog.h, stdout). */
#ifndef TOLLGATE_LOG_H
#define TOLLGATE_LOG_H

#include "tollgate/config.h"

void tg_log_set_level(enum tg_log_level level);
void tg_log(enum tg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tg_debug(...) tg_log(TG_LOG_DEBUG, __VA_ARGS__)
#define tg_info(...) tg_log(TG_LOG_INFO, __VA_ARGS__)
#define tg_warn(...) tg_log(TG_LOG_WARN, __VA_ARGS__)
#define tg_error(...) tg_log(TG_LOG_ERROR, __VA_ARGS__)

/* Formats the current UTC time as "2026-11-28T15:00:00.123Z" into dst (>= 25 bytes). */
void tg_log_timestamp(char *dst, size_t cap);

#endif

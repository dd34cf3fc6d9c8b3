/* Diagnostic log on stderr, one line per call: "2026-11-28T15:00:00.123Z warn msg".
 * Thread-safe (one write(2) per line). The access log is separate (accesslog.h, stdout).
 *
 * Every line is one event: the message is formatted by tg_esc_vformat (esc.h), so no
 * argument (nor the format) can put a control character, a line break, a C1 control, a bidi
 * control or a byte that is not UTF-8 into the line (they appear as \xHH), and an argument
 * the format quotes ("\"%s\"", '%s') cannot close its quotes. Call sites need no escaping of
 * their own. A message longer than the line (TG_LOG_LINE_MAX) is cut at an escape boundary. */
#ifndef TOLLGATE_LOG_H
#define TOLLGATE_LOG_H

#include "tollgate/config.h"

#define TG_LOG_LINE_MAX 2048 /* bytes of a line, its newline included (< PIPE_BUF) */

void tg_log_set_level(enum tg_log_level level);
void tg_log(enum tg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tg_debug(...) tg_log(TG_LOG_DEBUG, __VA_ARGS__)
#define tg_info(...) tg_log(TG_LOG_INFO, __VA_ARGS__)
#define tg_warn(...) tg_log(TG_LOG_WARN, __VA_ARGS__)
#define tg_error(...) tg_log(TG_LOG_ERROR, __VA_ARGS__)

/* Formats the current UTC time as "2026-11-28T15:00:00.123Z" into dst (>= 25 bytes). */
void tg_log_timestamp(char *dst, size_t cap);

#endif

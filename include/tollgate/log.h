/* Diagnostic log on stderr, one line per call: "2026-11-28T15:00:00.123Z warn msg", or with
 * log_format: json one JSON object a line: {"ts":"2026-11-28T15:00:00.123Z","level":"warn",
 * "msg":"...","fields":{"key":"value",...}} ("fields" only when the call gives some).
 * Thread-safe (one write(2) per line). The access log is separate (accesslog.h, stdout).
 *
 * Every line is one event: the message is formatted by tg_esc_vformat (esc.h), so no
 * argument (nor the format) can put a control character, a line break, a C1 control, a bidi
 * control or a byte that is not UTF-8 into the line (they appear as \xHH), and an argument
 * the format quotes ("\"%s\"", '%s') cannot close its quotes. In JSON the message is
 * formatted as it is and then escaped whole as one JSON string (esc.h, TG_ESC_JSON); field
 * values likewise (text: key="value", escaped as TG_ESC_TEXT_DQ). Call sites need no escaping of
 * their own. A message longer than the line (TG_LOG_LINE_MAX) is cut at an escape boundary. */
#ifndef TOLLGATE_LOG_H
#define TOLLGATE_LOG_H

#include "tollgate/config.h"
#include "tollgate/err.h"

#define TG_LOG_LINE_MAX 2048 /* bytes of a line, its newline included (< PIPE_BUF) */

/* The level and the format may change at any time, from any thread (admin /logging). */
void tg_log_set_level(enum tg_log_level level);
enum tg_log_level tg_log_get_level(void);
void tg_log_set_format(enum tg_log_format format);
/* "debug", "info", "warn", "error". */
const char *tg_log_level_name(enum tg_log_level level);
/* One of those names (s[0..n), exact, lowercase): 0 with *out, or TG_EINVAL. */
TG_MUST_USE int tg_log_level_parse(const char *s, size_t n, enum tg_log_level *out);

void tg_log(enum tg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A key and its value (a key is our own literal: [a-z_]+, never escaped). */
struct tg_log_field {
    const char *key;
    const char *value;
};
/* tg_log with fields after the message, for lines that tools filter on. */
void tg_log_fields(enum tg_log_level level, const struct tg_log_field *fields, size_t n_fields,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define tg_debug(...) tg_log(TG_LOG_DEBUG, __VA_ARGS__)
#define tg_info(...) tg_log(TG_LOG_INFO, __VA_ARGS__)
#define tg_warn(...) tg_log(TG_LOG_WARN, __VA_ARGS__)
#define tg_error(...) tg_log(TG_LOG_ERROR, __VA_ARGS__)

/* Formats the current UTC time as "2026-11-28T15:00:00.123Z" into dst (>= 25 bytes). */
void tg_log_timestamp(char *dst, size_t cap);

#endif

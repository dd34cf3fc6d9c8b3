#include "tollgate/log.h"
#include "tollgate/esc.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = TG_LOG_INFO;
static atomic_int line_format = TG_LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tg_log_set_level(enum tg_log_level level)
{
    atomic_store(&min_level, (int)level);
}

enum tg_log_level tg_log_get_level(void)
{
    return (enum tg_log_level)atomic_load(&min_level);
}

const char *tg_log_level_name(enum tg_log_level level)
{
    return (unsigned)level < 4 ? level_names[level] : "?";
}

int tg_log_level_parse(const char *s, size_t n, enum tg_log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strlen(level_names[i]) == n && memcmp(level_names[i], s, n) == 0) {
            *out = (enum tg_log_level)i;
            return 0;
        }
    return TG_EINVAL;
}

void tg_log_set_format(enum tg_log_format format)
{
    atomic_store(&line_format, (int)format);
}

void tg_log_timestamp(char *dst, size_t cap)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(dst, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* Appends s (a JSON string's inside, or a "-quoted text value) to line[*n..cap). What does
 * not fit is left out at an escape boundary, and sets *cut. */
static void put_esc(char *line, size_t *n, size_t cap, enum tg_esc_mode mode, const char *s,
                    bool *cut)
{
    size_t len = strlen(s), used = 0;

    if (*n < cap)
        *n += tg_esc(mode, s, len, line + *n, cap - *n, &used);
    if (used < len)
        *cut = true;
}

static void put_raw(char *line, size_t *n, size_t cap, const char *s, bool *cut)
{
    size_t len = strlen(s);

    if (*n + len < cap) {
        memcpy(line + *n, s, len);
        *n += len;
    } else {
        *cut = true;
    }
}

static void emit(enum tg_log_level level, const struct tg_log_field *fields, size_t n_fields,
                 const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void emit(enum tg_log_level level, const struct tg_log_field *fields, size_t n_fields,
                 const char *fmt, va_list ap)
{
    /* a JSON line's escapes may grow the message: its raw text gets the smaller share */
    char line[TG_LOG_LINE_MAX], msg[TG_LOG_LINE_MAX / 2];
    bool json = atomic_load_explicit(&line_format, memory_order_relaxed) == TG_LOG_JSON;
    size_t n, cap = sizeof(line) - 2; /* room for '}' and '\n' */
    bool cut = false;

    if (!json) {
        tg_log_timestamp(line, 32);
        n = strnlen(line, 32);
        n += (size_t)snprintf(line + n, sizeof(line) - n, " %s ", level_names[level]);
        n += tg_esc_vformat(line + n, cap - n, fmt, ap); /* the sink: esc.h */
        for (size_t i = 0; i < n_fields && !cut; i++) {
            size_t mark = n;

            put_raw(line, &n, cap, " ", &cut);
            put_raw(line, &n, cap, fields[i].key, &cut);
            put_raw(line, &n, cap, "=\"", &cut);
            put_esc(line, &n, cap - 1, TG_ESC_TEXT_DQ, fields[i].value, &cut);
            put_raw(line, &n, cap, "\"", &cut);
            if (cut) /* a field whole or not at all */
                n = mark;
        }
    } else {
        size_t mark;

        vsnprintf(msg, sizeof(msg), fmt, ap); /* raw: the JSON escaper below is the sink */
        n = (size_t)snprintf(line, cap, "{\"ts\":\"");
        tg_log_timestamp(line + n, 32);
        n += strnlen(line + n, 32);
        n += (size_t)snprintf(line + n, cap - n, "\",\"level\":\"%s\",\"msg\":\"",
                              level_names[level]);
        put_esc(line, &n, cap - 1, TG_ESC_JSON, msg, &cut); /* leaves room for the quote */
        cut = false;                                        /* a cut message is still a line */
        put_raw(line, &n, cap, "\"", &cut);
        mark = n;
        for (size_t i = 0; i < n_fields; i++) {
            put_raw(line, &n, cap, i > 0 ? ",\"" : ",\"fields\":{\"", &cut);
            put_raw(line, &n, cap, fields[i].key, &cut);
            put_raw(line, &n, cap, "\":\"", &cut);
            put_esc(line, &n, cap - 1, TG_ESC_JSON, fields[i].value, &cut);
            put_raw(line, &n, cap, "\"", &cut);
        }
        if (n_fields > 0)
            put_raw(line, &n, cap, "}", &cut);
        if (cut) /* the fields whole or not at all: the line stays valid JSON */
            n = mark;
        line[n++] = '}'; /* cap kept this byte and the newline back */
    }
    line[n++] = '\n'; /* over the NUL, or into the byte kept back */
    /* one write per line so threads never interleave within a line */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

void tg_log(enum tg_log_level level, const char *fmt, ...)
{
    va_list ap;

    if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed))
        return;
    va_start(ap, fmt);
    emit(level, NULL, 0, fmt, ap);
    va_end(ap);
}

void tg_log_fields(enum tg_log_level level, const struct tg_log_field *fields, size_t n_fields,
                   const char *fmt, ...)
{
    va_list ap;

    if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed))
        return;
    va_start(ap, fmt);
    emit(level, fields, n_fields, fmt, ap);
    va_end(ap);
}

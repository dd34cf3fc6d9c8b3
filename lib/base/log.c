#include "tollgate/log.h"
#include "tollgate/esc.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = TG_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tg_log_set_level(enum tg_log_level level)
{
    atomic_store(&min_level, (int)level);
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

void tg_log(enum tg_log_level level, const char *fmt, ...)
{
    char line[TG_LOG_LINE_MAX];
    va_list ap;
    size_t n;

    if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed))
        return;
    tg_log_timestamp(line, 32);
    n = strnlen(line, 32);
    n += (size_t)snprintf(line + n, sizeof(line) - n, " %s ", level_names[level]);
    va_start(ap, fmt);
    n += tg_esc_vformat(line + n, sizeof(line) - n, fmt, ap); /* the sink: esc.h */
    va_end(ap);
    line[n++] = '\n'; /* over the NUL: n < sizeof(line) */
    /* one write per line so threads never interleave within a line */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

#include "tollgate/accesslog.h"
#include "tollgate/cursor.h"
#include "tollgate/err.h"
#include "tollgate/esc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Room kept back for the closing "}\n" and a NUL. */
#define TAIL 3

/* A JSON string, or null, escaped by the one escaper (esc.h, TG_ESC_JSON): control
 * characters, DEL, C1 and bidi controls as \u00XX / \uXXXX so a log line never moves a
 * terminal, each byte that is not part of well-formed UTF-8 as \ufffd so the line stays
 * valid UTF-8. */
static void put_str(struct tg_cursor *l, const char *str)
{
    size_t n, i = 0;

    if (str == NULL) {
        tg_cursor_put(l, "null", 4);
        return;
    }
    n = strlen(str);
    tg_cursor_put(l, "\"", 1);
    while (i < n && !l->full) {
        struct tg_esc_piece p;

        tg_esc_next(TG_ESC_JSON, str + i, n - i, &p);
        tg_cursor_put(l, p.out, p.out_len);
        i += p.in_len;
    }
    tg_cursor_put(l, "\"", 1);
}

static void put_time(struct tg_cursor *l, uint64_t unix_ms)
{
    char buf[96];
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    int n;

    if ((uint64_t)secs != unix_ms / 1000 || gmtime_r(&secs, &tm) == NULL) {
        tg_cursor_put(l, "null", 4);
        return;
    }
    n = snprintf(buf, sizeof(buf), "\"%04d-%02d-%02dT%02d:%02d:%02d.%03uZ\"", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (unsigned)(unix_ms % 1000));
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        tg_cursor_put(l, "null", 4);
        return;
    }
    tg_cursor_put(l, buf, (size_t)n);
}

static void put_u64(struct tg_cursor *l, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);

    tg_cursor_put(l, buf, (size_t)n);
}

enum kind { STR, U64, TIME, BOOL, HTTP_STR, HTTP_U64 };

size_t tg_accesslog_format(const struct tg_access_entry *e, char *dst, size_t cap)
{
    const struct {
        const char *key;
        enum kind kind;
        const char *s;
        uint64_t u;
    } fields[] = {
        {"time", TIME, NULL, e->start_unix_ms},
        {"listener", STR, e->listener, 0},
        {"direction", STR, e->direction, 0},
        {"peer", STR, e->peer, 0},
        {"peer_id", STR, e->peer_id, 0},
        {"upstream", STR, e->upstream, 0},
        {"tls_version", STR, e->tls_version, 0},
        {"cipher", STR, e->cipher, 0},
        {"serial", STR, e->serial, 0},
        {"sha256", STR, e->sha256, 0},
        {"resumed", BOOL, NULL, e->resumed},
        {"bytes_received", U64, NULL, e->bytes_received},
        {"bytes_sent", U64, NULL, e->bytes_sent},
        {"duration_ms", U64, NULL, e->duration_ms},
        {"outcome", STR, e->outcome, 0},
        {"reason", STR, e->reason, 0},
        {"method", HTTP_STR, e->method, 0},
        {"path", HTTP_STR, e->path, 0},
        {"host", HTTP_STR, e->host, 0},
        {"status", HTTP_U64, NULL, e->status},
    };
    /* writes stop short of the tail (cap - TAIL) and set full instead */
    struct tg_cursor l = {.dst = dst, .len = 0, .cap = cap < TAIL ? 0 : cap - TAIL, .full = false};
    size_t i;

    if (cap < TAIL + 1) { /* not even "{}\n" fits */
        if (cap > 0)
            dst[0] = '\0';
        return 0;
    }
    tg_cursor_put(&l, "{", 1);
    for (i = 0; i < TG_NELEM(fields); i++) {
        size_t mark = l.len;

        if ((fields[i].kind == HTTP_STR || fields[i].kind == HTTP_U64) && e->method == NULL)
            continue;
        if (i > 0)
            tg_cursor_put(&l, ",", 1);
        tg_cursor_put(&l, "\"", 1);
        tg_cursor_put(&l, fields[i].key, strlen(fields[i].key));
        tg_cursor_put(&l, "\":", 2);
        if (fields[i].kind == STR || fields[i].kind == HTTP_STR)
            put_str(&l, fields[i].s);
        else if (fields[i].kind == U64 || fields[i].kind == HTTP_U64)
            put_u64(&l, fields[i].u);
        else if (fields[i].kind == BOOL)
            tg_cursor_put(&l, fields[i].u ? "true" : "false", fields[i].u ? 4 : 5);
        else
            put_time(&l, fields[i].u);
        if (l.full) { /* drop this field and every one after it */
            l.len = mark;
            break;
        }
    }
    memcpy(dst + l.len, "}\n", 3);
    return l.len + 2;
}

void tg_accesslog_write(const struct tg_access_entry *e)
{
    /* at most PIPE_BUF bytes, so even a pipe takes the line in one piece */
    char line[4096];
    size_t n = tg_accesslog_format(e, line, sizeof(line));
    ssize_t w;

    do {
        w = write(STDOUT_FILENO, line, n);
    } while (w < 0 && errno == EINTR);
}

#include "tollgate/accesslog.h"
#include "tollgate/cursor.h"
#include "tollgate/err.h"
#include "tollgate/esc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
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
static void put_str(struct tg_cursor *l, const char *str, enum tg_esc_mode mode)
{
    size_t n, i = 0;

    if (str == NULL) {
        tg_cursor_put(l, mode == TG_ESC_JSON ? "null" : "-", mode == TG_ESC_JSON ? 4 : 1);
        return;
    }
    n = strlen(str);
    tg_cursor_put(l, "\"", 1);
    while (i < n && !l->full) {
        struct tg_esc_piece p;

        tg_esc_next(mode, str + i, n - i, &p);
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

/* Reason codes, by the leading "kind:" of a reason: the refusal kinds that the data path
 * already writes first (conn.c, tls.c's tg_hs_fail names, httpconn.c), each its own code. */
static const char *const kinds[] = {
    "denied",        "revoked",  "not_allowed",   "rate_limited", "listener_limit",
    "outside_mesh",  "loop",     "no_peer_cert",  "untrusted",    "expired",
    "not_yet_valid", "bad_cert", "bad_spiffe_id", "trust_domain", "unexpected_server",
    "protocol",      "timeout",  "peer_closed",   "peer_refused", "other",
};

/* Reasons that do not start with a kind: a fixed prefix each, and its code. */
static const char *const prefixes[][2] = {
    {"our certificate", "own_cert_expired"},
    {"no original destination", "no_original_dst"},
    {"idle for", "idle_timeout"},
    {"drain deadline", "drain"},
    {"no complete response", "upstream_reset"},
    {"downstream", "downstream_reset"},
    {"TLS read", "tls_error"},
    {"TLS write", "tls_error"},
    {"request body", "downstream_reset"},
    {"upstream:", "upstream_reset"},
    {"upstream read", "upstream_reset"},
    {"upstream write", "upstream_reset"},
    {"upstream", "upstream_connect_failed"}, /* "upstream 10.0.0.5:8080: ..." */
};

const char *tg_accesslog_code(const char *outcome, const char *reason)
{
    size_t n, i;

    if (outcome == NULL || strcmp(outcome, "ok") == 0)
        return NULL;
    if (reason == NULL)
        return outcome;
    n = strspn(reason, "abcdefghijklmnopqrstuvwxyz_");
    if (reason[n] == ':' || reason[n] == '\0')
        for (i = 0; i < TG_NELEM(kinds); i++)
            if (strlen(kinds[i]) == n && memcmp(reason, kinds[i], n) == 0)
                return kinds[i];
    for (i = 0; i < TG_NELEM(prefixes); i++)
        if (strncmp(reason, prefixes[i][0], strlen(prefixes[i][0])) == 0)
            return prefixes[i][1];
    return outcome; /* "refused", "error", "timeout": no finer code */
}

static _Atomic int log_style = TG_ACCESSLOG_JSON;

void tg_accesslog_set_style(enum tg_accesslog_style style)
{
    atomic_store(&log_style, (int)style);
}

enum kind { STR, U64, TIME, BOOL, HTTP_STR, HTTP_U64, HTTP_MS };

size_t tg_accesslog_format(const struct tg_access_entry *e, char *dst, size_t cap)
{
    return tg_accesslog_format_as(e, TG_ACCESSLOG_JSON, dst, cap);
}

size_t tg_accesslog_format_as(const struct tg_access_entry *e, enum tg_accesslog_style style,
                              char *dst, size_t cap)
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
        {"original_dst", STR, e->original_dst, 0},
        {"sni", STR, e->sni, 0},
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
        {"reason_code", STR, tg_accesslog_code(e->outcome, e->reason), 0},
        {"method", HTTP_STR, e->method, 0},
        {"path", HTTP_STR, e->path, 0},
        {"host", HTTP_STR, e->host, 0},
        {"status", HTTP_U64, NULL, e->status},
        {"request_id", HTTP_STR, e->request_id, 0},
        {"traceparent", HTTP_STR, e->traceparent, 0},
        {"upstream_service_time_ms", HTTP_MS, NULL, e->upstream_service_ms},
    };
    bool json = style == TG_ACCESSLOG_JSON;
    enum tg_esc_mode mode = json ? TG_ESC_JSON : TG_ESC_TEXT_DQ;
    /* writes stop short of the tail (cap - TAIL) and set full instead */
    struct tg_cursor l = {.dst = dst, .len = 0, .cap = cap < TAIL ? 0 : cap - TAIL, .full = false};
    size_t i;

    if (cap < TAIL + 1) { /* not even "{}\n" fits */
        if (cap > 0)
            dst[0] = '\0';
        return 0;
    }
    if (json)
        tg_cursor_put(&l, "{", 1);
    for (i = 0; i < TG_NELEM(fields); i++) {
        size_t mark = l.len;

        if (fields[i].kind >= HTTP_STR && e->method == NULL)
            continue;
        if (i > 0)
            tg_cursor_put(&l, json ? "," : " ", 1);
        if (json)
            tg_cursor_put(&l, "\"", 1);
        tg_cursor_put(&l, fields[i].key, strlen(fields[i].key));
        tg_cursor_put(&l, json ? "\":" : "=", json ? 2 : 1);
        if (fields[i].kind == STR || fields[i].kind == HTTP_STR)
            put_str(&l, fields[i].s, mode);
        else if (fields[i].kind == HTTP_MS && fields[i].u == TG_ACCESSLOG_NO_TIME)
            put_str(&l, NULL, mode);
        else if (fields[i].kind == U64 || fields[i].kind == HTTP_U64 || fields[i].kind == HTTP_MS)
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
    memcpy(dst + l.len, json ? "}\n" : "\n", json ? 3 : 2); /* the tail kept back */
    return l.len + (json ? 2 : 1);
}

void tg_accesslog_write(const struct tg_access_entry *e)
{
    /* at most PIPE_BUF bytes, so even a pipe takes the line in one piece */
    char line[4096];
    size_t n = tg_accesslog_format_as(
        e, (enum tg_accesslog_style)atomic_load_explicit(&log_style, memory_order_relaxed), line,
        sizeof(line));
    ssize_t w;

    do {
        w = write(STDOUT_FILENO, line, n);
    } while (w < 0 && errno == EINTR);
}

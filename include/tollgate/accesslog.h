/* One line per connection (and per request on protocol: http ports) on stdout, JSON by
 * default or key=value text (access_log_format). Any thread: each line is one write(2).
 * The fields and the reason codes are documented for users in docs/operations.md. */
#ifndef TOLLGATE_ACCESSLOG_H
#define TOLLGATE_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tg_access_entry {
    uint64_t start_unix_ms;   /* when the connection was accepted */
    const char *listener;     /* listener name */
    const char *direction;    /* "inbound" / "outbound" */
    const char *peer;         /* downstream address "ip:port" */
    const char *peer_id;      /* SPIFFE ID of the TLS peer, or NULL */
    const char *upstream;     /* "ip:port" */
    const char *original_dst; /* transparent listeners: the address the caller asked for
                               * (SO_ORIGINAL_DST); NULL otherwise */
    const char *sni;          /* the TLS server name: inbound, what the caller asked for;
                               * outbound, what we sent; NULL: none */
    const char *tls_version;  /* "TLSv1.3", or NULL */
    const char *cipher;       /* or NULL */
    const char *serial;       /* TLS peer certificate serial (hex), or NULL */
    const char *sha256;       /* its SHA-256 fingerprint (lowercase hex, as rules spell it) */
    bool resumed;             /* the TLS session was resumed from a ticket */
    uint64_t bytes_received;  /* payload from the downstream */
    uint64_t bytes_sent;      /* payload to the downstream */
    uint64_t duration_ms;
    const char *outcome; /* "ok", "refused", "error", "timeout" */
    const char *reason;  /* why, for anything but "ok"; or NULL */
    /* one request on a protocol: http port (method NULL: a connection's line, and the
     * fields from here on are left out); bytes_* and duration_ms are then the request's */
    const char *method;
    const char *path;        /* the request target */
    const char *host;        /* or NULL */
    unsigned status;         /* of the response: the app's, or the sidecar's own (400, 403, 429...);
                              * 0: none came */
    const char *request_id;  /* x-request-id as the app got it (the caller's, or ours) */
    const char *traceparent; /* W3C trace context as the caller sent it; NULL: none */
    uint64_t upstream_service_ms; /* request sent to the app until its response head came;
                                   * TG_ACCESSLOG_NO_TIME: no response from the app */
};

#define TG_ACCESSLOG_NO_TIME UINT64_MAX

enum tg_accesslog_style {
    TG_ACCESSLOG_JSON, /* one JSON object a line (the default) */
    TG_ACCESSLOG_TEXT, /* key=value pairs (logfmt): strings in double quotes, escaped as
                        * esc.h's TG_ESC_TEXT_DQ; null as - */
};

/* The style of tg_accesslog_write's lines from now on (at start-up: access_log_format). */
void tg_accesslog_set_style(enum tg_accesslog_style style);

/* The reason code of an outcome and its reason: NULL for "ok"; a refusal kind when the
 * reason starts with one ("denied: ..." is "denied"); for a few fixed reason prefixes their
 * code ("upstream 10.0.0.5:80: connection refused" is "upstream_connect_failed"); else
 * the outcome itself. A short fixed vocabulary (docs/operations.md), returned static. */
const char *tg_accesslog_code(const char *outcome, const char *reason);

/* Formats e as one JSON object and a newline into dst (cap bytes), keys in the order of the
 * struct (reason_code after reason: tg_accesslog_code), "time" as "2026-11-28T15:00:00.123Z" (UTC).
 * Strings are escaped by esc.h's TG_ESC_JSON (RFC 8259): control characters, DEL, C1 controls,
 * U+2028/U+2029 and bidi controls as \u00XX / \uXXXX, each byte that is not well-formed UTF-8 as
 * \ufffd; NULL strings become null. Returns the length written, without the NUL that follows it. A
 * line that would not fit is cut at a field boundary: the first field that does not fit and all
 * after it are dropped, and the line is still valid JSON. Below 4 bytes of cap (not even "{}\n" and
 * the NUL) it writes nothing and returns 0. Pure; any thread. */
size_t tg_accesslog_format(const struct tg_access_entry *e, char *dst, size_t cap);
/* The same in either style; TG_ACCESSLOG_TEXT has no braces (below 4 bytes: nothing). */
size_t tg_accesslog_format_as(const struct tg_access_entry *e, enum tg_accesslog_style style,
                              char *dst, size_t cap);

/* Formats into a 4 KiB stack buffer and writes the line to stdout with one write(2): at
 * most PIPE_BUF bytes, so lines from several threads never interleave even on a pipe.
 * Write errors are ignored (the log must not stop traffic). */
void tg_accesslog_write(const struct tg_access_entry *e);

#endif

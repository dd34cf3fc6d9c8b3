/* HTTP/1.1 message framing for inbound ports declared protocol: http (RFC 9112). Pure: no I/O,
 * no libuv, no allocation; the caller owns every buffer.
 *
 * Requests (from the caller, untrusted) are parsed strictly, and refused with a reason and a
 * status when they are malformed or their framing is ambiguous: both Content-Length and
 * Transfer-Encoding, several Content-Length fields, a Transfer-Encoding whose last coding is
 * not chunked (or any in HTTP/1.0), bad chunk sizes or extensions, a bare LF, obs-fold,
 * whitespace before a colon, a byte outside a token where a token belongs, no Host or several
 * in HTTP/1.1. Whatever the sidecar accepts, it forwards byte for byte (body and trailers) or
 * re-serialised from the parsed fields (head), so the app sees exactly the requests parsed
 * here: no request smuggling past the sidecar.
 *
 * Responses (from the app, trusted for content but not for being well formed) are only
 * followed for their framing, byte by byte, so the sidecar knows where each ends. */
#ifndef TOLLGATE_HTTP_H
#define TOLLGATE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/err.h"

#define TG_HTTP_MAX_HEAD 65536 /* default head size limit, bytes */
#define TG_HTTP_MAX_LINE 16384 /* default line limit (request line, field line, chunk line) */
#define TG_HTTP_MAX_FIELDS 100 /* default header field count limit */

struct tg_http_limits {
    size_t max_head;     /* request line + fields + final CRLF; also the trailer section */
    size_t max_line;     /* any one line, CRLF included */
    unsigned max_fields; /* header fields (and trailer fields) */
};

/* A header field as received: name and value point into the caller's buffer; the value has
 * no leading or trailing whitespace. */
struct tg_http_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

enum tg_http_framing {
    TG_HTTP_NO_BODY, /* requests: no Content-Length and no Transfer-Encoding */
    TG_HTTP_LENGTH,  /* Content-Length bytes */
    TG_HTTP_CHUNKED, /* chunked transfer coding, then trailers */
    TG_HTTP_TO_EOF,  /* responses only: the body runs until the app closes */
};

/* A parsed request head. Pointers point into the buffer given to tg_http_parse_request. */
struct tg_http_request {
    const char *method;
    size_t method_len;
    const char *target; /* as received */
    size_t target_len;
    /* The target the rules see and the app gets (tg_http_target_normalize); NULL until then.
     * Points into the buffer given to that function. */
    const char *path;
    size_t path_len;
    int minor; /* HTTP/1.<minor>: 0 or 1 */
    struct tg_http_field *fields;
    unsigned n_fields;
    const char *host; /* the Host field's value; NULL when absent (HTTP/1.0 only) */
    size_t host_len;
    enum tg_http_framing framing;
    uint64_t content_length; /* TG_HTTP_LENGTH */
    bool keep_alive;         /* the connection may carry another request after this one */
    bool expect_continue;    /* Expect: 100-continue */
    bool upgrade;            /* Upgrade with Connection: upgrade: a 101 makes it a byte pipe */
    bool connect;            /* CONNECT: a 2xx makes it a byte pipe */
    bool head;               /* HEAD: the response has no body */
    size_t skipped;          /* empty lines before the request line (ignored, RFC 9112 2.2) */
    size_t head_len;         /* bytes of the head from the buffer's start, final CRLF included */
};

/* Parses the request head at the start of buf (len bytes). fields has room for
 * lim->max_fields entries. Returns:
 *   > 0: the head is complete, req filled, the value is req->head_len;
 *   0:   more bytes are needed (no limit broken so far);
 *   TG_EINVAL: refused; *status gets the status to answer (400, 431 or 501) and err one line.
 * *scanned carries how far earlier calls on the same head looked (start at 0): a head that
 * arrives a byte at a time costs linear time, not quadratic. */
TG_MUST_USE int tg_http_parse_request(const char *buf, size_t len, const struct tg_http_limits *lim,
                                      struct tg_http_field *fields, size_t *scanned,
                                      struct tg_http_request *req, int *status, char *err);

/* ---- request targets ----
 *
 * Rules on paths are only as good as the agreement between the sidecar and the app on what a
 * path is, so the sidecar decides it once, the rules match that, and the app is sent that
 * (the request line is rewritten). The policy, after RFC 3986 and Envoy's normalize_path,
 * merge_slashes and path_with_escaped_slashes_action REJECT_REQUEST (its CVE-2019-9901 and
 * CVE-2021-29492 were bypasses of exactly this kind):
 *   - percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are decoded (section
 *     6.2.2.2), once: "%2561" is "%2561", never "a"; the escapes that remain get upper-case
 *     hex (6.2.2.1);
 *   - runs of '/' are merged into one, then "." and ".." segments are removed (5.2.4); a ".."
 *     that would climb above the root is refused rather than clamped: no client that
 *     resolves its references sends one;
 *   - refused, as no normal form says what the app would make of them: an encoded '/' or
 *     '\' (%2F, %5C), a '\', an encoded NUL or control byte (%00-%1F, %7F), a malformed
 *     escape, a fragment ('#', anywhere in the target), and (from any caller but the parser,
 *     which refuses them first) a raw control byte, space or non-ASCII byte;
 *   - the query (from the first '?') is left exactly as it is;
 *   - an absolute-form target ("http://host/p", RFC 9112 3.2.2) is matched and forwarded by
 *     its path, in origin-form; its authority must name the same host and port as Host
 *     (host case-insensitive, no port meaning the scheme's default), must carry no user
 *     info, and there must be a Host field to compare it with.
 * The result of normalising a normal path is the path itself. */

/* Normalises an origin-form path: in holds len bytes starting with '/', without the query.
 * Writes the normal form to dst (cap >= len is always enough; the result is never longer)
 * and its length to *out_len. TG_EINVAL with err naming what was wrong. Pure. */
TG_MUST_USE int tg_http_path_normalize(const char *in, size_t len, char *dst, size_t cap,
                                       size_t *out_len, char *err);

/* Sets req->path: the normal origin-form target (path and query) of an origin- or
 * absolute-form target, written to dst (cap >= req->target_len + 1 is always enough), or
 * the target itself for CONNECT's authority and OPTIONS' '*'. TG_EINVAL with *status 400 and
 * err when the target is refused (see above). */
TG_MUST_USE int tg_http_target_normalize(struct tg_http_request *req, char *dst, size_t cap,
                                         int *status, char *err);

/* A message body followed byte by byte: Content-Length, or chunked with extensions and
 * trailers (checked, not kept). */
struct tg_http_body {
    enum tg_http_framing framing;
    int st;             /* internal state */
    uint64_t remaining; /* bytes of the current chunk or of the whole length */
    unsigned digits;    /* of the chunk size read so far */
    size_t line;        /* bytes of the current chunk or trailer line */
    size_t trailer;     /* bytes of the trailer section */
    unsigned n_trailers;
    struct tg_http_limits lim;
    uint64_t total; /* body bytes consumed, framing included */
};

void tg_http_body_init(struct tg_http_body *b, enum tg_http_framing framing, uint64_t length,
                       const struct tg_http_limits *lim);

/* Consumes bytes of the body from buf. *used gets how many belong to it (never more than
 * len). Returns 1 when the body is complete (the bytes after *used belong to the next
 * message), 0 when all len bytes were used and more are needed, TG_EINVAL with err when the
 * framing is malformed. A TO_EOF body never completes. */
TG_MUST_USE int tg_http_body_feed(struct tg_http_body *b, const char *buf, size_t len, size_t *used,
                                  char *err);

/* ---- responses ---- */

enum tg_http_resp_result {
    TG_HTTP_RESP_MORE = 0,    /* all bytes used; the response goes on */
    TG_HTTP_RESP_DONE = 1,    /* a final response ended at *used */
    TG_HTTP_RESP_INTERIM = 2, /* a 1xx (not 101) ended at *used; the final one follows */
    TG_HTTP_RESP_TUNNEL = 3,  /* the head ended at *used and the rest is a byte pipe (101 to
                               * an upgrade, 2xx to CONNECT) */
};

struct tg_http_response {
    int st;               /* internal state */
    bool head_request;    /* the request was HEAD: no body whatever the fields say */
    bool connect_request; /* the request was CONNECT */
    bool upgrade_request; /* the request asked to upgrade */
    int status;           /* of the response being read; 0 until its status line is read */
    int minor;
    bool close;      /* Connection: close, or HTTP/1.0 without keep-alive */
    bool chunked;    /* Transfer-Encoding ends in chunked */
    bool has_length; /* Content-Length seen */
    uint64_t length;
    size_t line;     /* bytes of the current line */
    size_t head;     /* bytes of the head so far */
    char name[24];   /* start of the current field's name, lowercase */
    size_t name_len; /* its full length */
    char value[64];  /* start of the value of a field we interpret */
    size_t value_len;
    struct tg_http_body body;
    struct tg_http_limits lim;
    uint64_t bytes; /* bytes of this response so far */
};

/* Starts following the response to a request with these properties. */
void tg_http_response_init(struct tg_http_response *r, const struct tg_http_limits *lim, bool head,
                           bool connect, bool upgrade);

/* Consumes response bytes; *used gets how many belong to this response. Returns a
 * TG_HTTP_RESP_* (>= 0) or TG_EINVAL with err. After INTERIM the same struct goes on with
 * the final response (feed it the bytes after *used). */
TG_MUST_USE int tg_http_response_feed(struct tg_http_response *r, const char *buf, size_t len,
                                      size_t *used, char *err);

/* ---- what the sidecar writes ---- */

/* Who called, for the headers the sidecar adds. */
struct tg_http_caller {
    const char *our_id;  /* our SPIFFE ID (By=) */
    const char *peer_id; /* the caller's SPIFFE ID; NULL: no TLS peer, nothing is added */
    const char *sha256;  /* hex SHA-256 of the caller's certificate DER (Hash=) */
    const uint8_t *der;  /* the caller's certificate, for Client-Cert; NULL: not added */
    size_t der_len;
    bool xfcc;        /* add x-forwarded-client-cert */
    bool client_cert; /* add Client-Cert (RFC 9440) */
    /* the lines above, rendered once by tg_http_caller_lines (the same for every request of a
     * connection); NULL: rendered at each rewrite */
    const char *lines;
    size_t lines_len;
};

/* Renders the header lines the sidecar adds for who (each ending in CRLF; none without a
 * peer) into dst. Returns their length, or 0 when they do not fit in cap (or there are
 * none). */
size_t tg_http_caller_lines(const struct tg_http_caller *who, char *dst, size_t cap);

/* Whether a field name is one the sidecar owns and removes from every request:
 * x-forwarded-client-cert, client-cert and client-cert-chain (any case). */
bool tg_http_owned_field(const char *name, size_t len);

/* Writes the head the app gets: the request line with the normalised target (req->path),
 * every field except the owned ones as "name: value", then ours, then CRLF. Returns its
 * length, or 0 when it does not fit in cap or req->path is not set. */
size_t tg_http_rewrite(const struct tg_http_request *req, const struct tg_http_caller *who,
                       char *dst, size_t cap);

/* A response of the sidecar's own: status line, Content-Length, Content-Type text/plain,
 * Retry-After when retry_after_s > 0, Connection: close when close, and a one-line body.
 * Returns its length, or 0 when it does not fit. */
size_t tg_http_local_response(int status, unsigned retry_after_s, bool close, char *dst,
                              size_t cap);

/* The reason phrase of the statuses the sidecar sends ("Bad Request", ...). */
const char *tg_http_reason(int status);

#endif

/* HTTP/1.1 request heads, bodies and response framing (RFC 9112, RFC 9110). Pure. */
#include "tollgate/http.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tollgate/cursor.h"

#define MAX_SKIPPED_LINES 8 /* empty lines tolerated before a request line */
#define MAX_LENGTH_DIGITS 18

/* Byte classes as 256-bit maps (bit c of word c / 64): a test per byte, no branch. */
static const uint64_t tchar_map[4] = {/* tchar (RFC 9110 5.6.2): ALPHA DIGIT !#$%&'*+-.^_`|~ */
                                      0x03ff6cfa00000000ull, 0x57ffffffc7fffffeull, 0, 0};
static const uint64_t vchar_ws_map[4] = {/* field-vchar, SP, HTAB (obs-text included) */
                                         0xffffffff00000200ull, 0x7fffffffffffffffull,
                                         0xffffffffffffffffull, 0xffffffffffffffffull};

static bool tchar(unsigned char c)
{
    return (tchar_map[c >> 6] >> (c & 63)) & 1;
}

static bool vchar_ws(unsigned char c)
{
    return (vchar_ws_map[c >> 6] >> (c & 63)) & 1;
}

static bool ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static bool ieq(const char *a, size_t n, const char *lit)
{
    size_t m = strlen(lit);

    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* ---- list fields: "a, b ,c" ---- */

struct elem {
    const char *s;
    size_t n;
};

/* The next non-empty element of a comma list after *pos; false at the end. */
static bool next_elem(const char *v, size_t len, size_t *pos, struct elem *e)
{
    while (*pos < len) {
        size_t start, end;

        while (*pos < len && (ows((unsigned char)v[*pos]) || v[*pos] == ','))
            (*pos)++;
        start = *pos;
        while (*pos < len && v[*pos] != ',')
            (*pos)++;
        end = *pos;
        while (end > start && ows((unsigned char)v[end - 1]))
            end--;
        if (end > start) {
            e->s = v + start;
            e->n = end - start;
            return true;
        }
    }
    return false;
}

static bool all_tchar(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!tchar((unsigned char)s[i]))
            return false;
    return n > 0;
}

/* ---- request heads ---- */

static int refuse(int *status, int code, char *err, const char *why)
{
    *status = code;
    return tg_err_set(err, TG_EINVAL, "%s", why);
}

/* Finds the end of the head: checks every complete line for a bare CR or LF and the line and
 * head limits on the way. >0: head length; 0: need more; <0 refused. */
static int find_end(const char *buf, size_t len, const struct tg_http_limits *lim, size_t *scanned,
                    size_t *skipped, int *status, char *err)
{
    size_t start = *scanned; /* start of the current line */
    bool first = true;       /* no request line yet: empty lines are skipped */

    /* lines before *scanned were checked; find out whether the request line was among them */
    *skipped = 0;
    while (*skipped + 1 < len && buf[*skipped] == '\r' && buf[*skipped + 1] == '\n')
        *skipped += 2;
    if (*skipped > 2 * MAX_SKIPPED_LINES)
        return refuse(status, 400, err, "too many empty lines before the request line");
    if (start < *skipped)
        start = *skipped;
    first = start == *skipped;
    for (;;) {
        const char *lf = memchr(buf + start, '\n', len - start);
        size_t end = lf == NULL ? len : (size_t)(lf - buf);
        const char *cr = memchr(buf + start, '\r', end - start);
        /* Each fault is known once a given byte has arrived; the one known first wins, so
         * the verdict does not depend on how the bytes were split into reads. */
        size_t at = SIZE_MAX, p;
        int code = 0;
        const char *why = NULL;

        if (end - start >= lim->max_line) {
            at = start + lim->max_line - 1;
            code = first ? 414 : 431;
            why = first ? "request line too long" : "header line too long";
        }
        if (end >= lim->max_head && lim->max_head - 1 < at) {
            at = lim->max_head - 1;
            code = 431;
            why = "request head too large";
        }
        /* a CR anywhere but right before the LF is a bare CR */
        if (cr != NULL && (size_t)(cr - buf) + 1 < end && (p = (size_t)(cr - buf) + 1) < at) {
            at = p;
            code = 400;
            why = "bare CR in the request head";
        }
        if (lf != NULL && (end == start || buf[end - 1] != '\r') && end < at) {
            at = end;
            code = 400;
            why = "bare LF in the request head";
        }
        if (why != NULL)
            return refuse(status, code, err, why);
        if (lf == NULL) {
            *scanned = start;
            return 0;
        }
        if (end - start == 1 && !first) {
            *scanned = end + 1;
            return (int)(end + 1);
        }
        first = false;
        start = end + 1;
    }
}

static int parse_request_line(const char *buf, size_t n, struct tg_http_request *req, int *status,
                              char *err)
{
    size_t i = 0, t;

    while (i < n && tchar((unsigned char)buf[i]))
        i++;
    if (i == 0 || i >= n || buf[i] != ' ')
        return refuse(status, 400, err, "malformed method in the request line");
    req->method = buf;
    req->method_len = i;
    t = ++i;
    while (i < n && buf[i] > 0x20 && buf[i] < 0x7f && buf[i] != '#')
        i++;
    if (i < n && buf[i] == '#')
        return refuse(status, 400, err, "fragment (#) in the request target");
    if (i == t || i >= n || buf[i] != ' ')
        return refuse(status, 400, err, "malformed request target");
    req->target = buf + t;
    req->target_len = i - t;
    i++;
    if (n - i != 8 || memcmp(buf + i, "HTTP/1.", 7) != 0)
        return refuse(status, 400, err, "malformed HTTP version in the request line");
    if (buf[i + 7] != '0' && buf[i + 7] != '1')
        return refuse(status, 505, err, "HTTP version not supported");
    req->minor = buf[i + 7] - '0';
    return 0;
}

static int check_target(struct tg_http_request *req, int *status, char *err)
{
    const char *t = req->target;
    size_t n = req->target_len;

    if (req->connect) {
        if (memchr(t, '/', n) != NULL || memchr(t, ':', n) == NULL)
            return refuse(status, 400, err, "CONNECT target is not host:port");
        return 0;
    }
    if (t[0] == '/')
        return 0;
    if (n == 1 && t[0] == '*' && ieq(req->method, req->method_len, "options"))
        return 0;
    if ((n > 7 && ieq(t, 7, "http://")) || (n > 8 && ieq(t, 8, "https://")))
        return 0;
    return refuse(status, 400, err, "request target is not origin, absolute or asterisk form");
}

struct framing_seen {
    unsigned n_cl, n_te, n_host;
    bool te_chunked_last, te_chunked_early, te_bad;
};

static int interpret(struct tg_http_request *req, const struct tg_http_field *f,
                     struct framing_seen *s, int *status, char *err)
{
    size_t pos = 0;
    struct elem e;

    if (ieq(f->name, f->name_len, "content-length")) {
        uint64_t v = 0;

        if (++s->n_cl > 1)
            return refuse(status, 400, err, "more than one Content-Length");
        if (f->value_len == 0 || f->value_len > MAX_LENGTH_DIGITS)
            return refuse(status, 400, err, "invalid Content-Length");
        for (size_t i = 0; i < f->value_len; i++) {
            if (f->value[i] < '0' || f->value[i] > '9')
                return refuse(status, 400, err, "invalid Content-Length");
            v = v * 10 + (uint64_t)(f->value[i] - '0');
        }
        req->content_length = v;
    } else if (ieq(f->name, f->name_len, "transfer-encoding")) {
        s->n_te++;
        while (next_elem(f->value, f->value_len, &pos, &e)) {
            if (!all_tchar(e.s, e.n)) {
                s->te_bad = true;
                continue;
            }
            if (s->te_chunked_last)
                s->te_chunked_early = true; /* chunked, then something else */
            s->te_chunked_last = ieq(e.s, e.n, "chunked");
        }
    } else if (ieq(f->name, f->name_len, "host")) {
        if (++s->n_host > 1)
            return refuse(status, 400, err, "more than one Host");
        for (size_t i = 0; i < f->value_len; i++)
            if (ows((unsigned char)f->value[i]) || f->value[i] == ',' || f->value[i] == '@' ||
                f->value[i] == '/')
                return refuse(status, 400, err, "invalid Host");
        req->host = f->value;
        req->host_len = f->value_len;
    } else if (ieq(f->name, f->name_len, "expect")) {
        if (ieq(f->value, f->value_len, "100-continue"))
            req->expect_continue = true;
    }
    return 0;
}

/* Whether a Connection field lists token tok. */
static bool conn_has(const struct tg_http_request *req, const char *tok)
{
    for (unsigned i = 0; i < req->n_fields; i++) {
        const struct tg_http_field *f = &req->fields[i];
        size_t pos = 0;
        struct elem e;

        if (!ieq(f->name, f->name_len, "connection"))
            continue;
        while (next_elem(f->value, f->value_len, &pos, &e))
            if (ieq(e.s, e.n, tok))
                return true;
    }
    return false;
}

static bool has_field(const struct tg_http_request *req, const char *name)
{
    for (unsigned i = 0; i < req->n_fields; i++)
        if (ieq(req->fields[i].name, req->fields[i].name_len, name))
            return true;
    return false;
}

int tg_http_parse_request(const char *buf, size_t len, const struct tg_http_limits *lim,
                          struct tg_http_field *fields, size_t *scanned,
                          struct tg_http_request *req, int *status, char *err)
{
    struct framing_seen seen;
    size_t skipped, pos, head;
    const char *lf;
    int rc;

    *status = 0;
    rc = find_end(buf, len, lim, scanned, &skipped, status, err);
    if (rc <= 0)
        return rc;
    head = (size_t)rc;
    memset(req, 0, sizeof(*req));
    memset(&seen, 0, sizeof(seen));
    req->fields = fields;
    req->skipped = skipped;
    req->head_len = head;
    pos = skipped;
    lf = memchr(buf + pos, '\n', head - pos);
    if ((rc = parse_request_line(buf + pos, (size_t)(lf - 1 - (buf + pos)), req, status, err)) < 0)
        return rc;
    req->connect = ieq(req->method, req->method_len, "connect");
    req->head = ieq(req->method, req->method_len, "head");
    pos = (size_t)(lf - buf) + 1;
    while (pos + 2 < head) {
        size_t end = (size_t)((const char *)memchr(buf + pos, '\n', head - pos) - buf) - 1;
        size_t i = pos, v;
        struct tg_http_field *f;

        if (ows((unsigned char)buf[pos]))
            return refuse(status, 400, err, "obs-fold (a header line starting with whitespace)");
        while (i < end && tchar((unsigned char)buf[i]))
            i++;
        if (i == pos)
            return refuse(status, 400, err, "header name missing or not a token");
        if (i < end && ows((unsigned char)buf[i]))
            return refuse(status, 400, err, "whitespace before the colon of a header");
        if (i >= end || buf[i] != ':')
            return refuse(status, 400, err, "header name is not a token");
        if (req->n_fields >= lim->max_fields)
            return refuse(status, 431, err, "too many header fields");
        f = &fields[req->n_fields++];
        f->name = buf + pos;
        f->name_len = i - pos;
        v = i + 1;
        while (v < end && ows((unsigned char)buf[v]))
            v++;
        for (i = v; i < end; i++)
            if (!vchar_ws((unsigned char)buf[i]))
                return refuse(status, 400, err, "control character in a header value");
        while (end > v && ows((unsigned char)buf[end - 1]))
            end--;
        f->value = buf + v;
        f->value_len = end - v;
        if ((rc = interpret(req, f, &seen, status, err)) < 0)
            return rc;
        pos = (size_t)((const char *)memchr(buf + pos, '\n', head - pos) - buf) + 1;
    }
    if (req->minor == 1 && seen.n_host == 0)
        return refuse(status, 400, err, "no Host header (required in HTTP/1.1)");
    if (seen.n_te > 0) {
        if (req->minor == 0)
            return refuse(status, 400, err, "Transfer-Encoding in an HTTP/1.0 request");
        if (seen.n_cl > 0)
            return refuse(status, 400, err, "both Content-Length and Transfer-Encoding");
        if (seen.te_bad)
            return refuse(status, 400, err, "malformed Transfer-Encoding");
        if (!seen.te_chunked_last || seen.te_chunked_early)
            return refuse(status, 400, err, "Transfer-Encoding does not end in chunked");
        req->framing = TG_HTTP_CHUNKED;
    } else if (seen.n_cl > 0) {
        req->framing = TG_HTTP_LENGTH;
    }
    if (req->connect && req->framing != TG_HTTP_NO_BODY)
        return refuse(status, 400, err, "CONNECT with a body");
    /* close wins over keep-alive, in any order */
    req->keep_alive = conn_has(req, "close") ? false
                      : req->minor == 1      ? true
                                             : conn_has(req, "keep-alive");
    req->upgrade = !req->connect && has_field(req, "upgrade") && conn_has(req, "upgrade");
    if ((rc = check_target(req, status, err)) < 0)
        return rc;
    return (int)head;
}

/* ---- request targets ---- */

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* One byte of a path into dst[*o] (an escape: its value, or the escape with upper-case hex);
 * *i moves past what was read. 0 or TG_EINVAL. */
static int path_byte(const char *in, size_t len, size_t *i, char *dst, size_t *o, char *err)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char c = (unsigned char)in[*i];
    int hi, lo, v;

    if (c == '\\')
        return tg_err_set(err, TG_EINVAL, "backslash in the path");
    if (c == '#')
        return tg_err_set(err, TG_EINVAL, "fragment (#) in the request target");
    if (c == '?')
        return tg_err_set(err, TG_EINVAL, "'?' in a path (a query has no place here)");
    if (c <= 0x20 || c >= 0x7f)
        return tg_err_set(err, TG_EINVAL,
                          "control byte, space or non-ASCII byte 0x%02x in the path", c);
    if (c != '%') {
        dst[(*o)++] = (char)c;
        (*i)++;
        return 0;
    }
    if (len - *i < 3 || (hi = hexval((unsigned char)in[*i + 1])) < 0 ||
        (lo = hexval((unsigned char)in[*i + 2])) < 0)
        return tg_err_set(err, TG_EINVAL, "malformed percent-escape in the path");
    v = hi * 16 + lo;
    if (v == '/' || v == '\\')
        return tg_err_set(err, TG_EINVAL, "encoded %s (%%%c%c) in the path",
                          v == '/' ? "slash" : "backslash", hex[hi], hex[lo]);
    if (v < 0x20 || v == 0x7f)
        return tg_err_set(err, TG_EINVAL, "encoded control byte (%%%c%c) in the path", hex[hi],
                          hex[lo]);
    if (unreserved((unsigned char)v)) {
        dst[(*o)++] = (char)v;
    } else {
        dst[(*o)++] = '%';
        dst[(*o)++] = hex[hi];
        dst[(*o)++] = hex[lo];
    }
    *i += 3;
    return 0;
}

/* RFC 3986 5.2.4 on a path whose slashes are merged, one segment at a time: the output is
 * "/seg/seg..." and each segment is decoded into place before it is looked at, so "%2e%2e"
 * is a ".." segment. Every byte written stands for at least one byte read: the output never
 * outgrows the input. */
int tg_http_path_normalize(const char *in, size_t len, char *dst, size_t cap, size_t *out_len,
                           char *err)
{
    size_t i = 1, o = 0;
    int rc;

    if (len == 0 || in[0] != '/')
        return tg_err_set(err, TG_EINVAL, "path does not start with '/'");
    if (cap < len)
        return tg_err_set(err, TG_EINVAL, "internal: path buffer too small");
    for (;;) {
        size_t seg; /* where the segment's '/' is in dst */
        bool at_end, dot = false;

        while (i < len && in[i] == '/') /* merge_slashes */
            i++;
        seg = o;
        dst[o++] = '/';
        while (i < len && in[i] != '/')
            if ((rc = path_byte(in, len, &i, dst, &o, err)) < 0)
                return rc;
        at_end = i == len;
        if (o - seg == 2 && dst[seg + 1] == '.') {
            dot = true; /* "." goes */
            o = seg;
        } else if (o - seg == 3 && dst[seg + 1] == '.' && dst[seg + 2] == '.') {
            if (seg == 0)
                return tg_err_set(err, TG_EINVAL, "'..' in the path climbs above the root");
            dot = true; /* ".." goes, and the segment before it (dst[0] is a '/') */
            o = seg;
            while (dst[o - 1] != '/')
                o--;
            o--;
        }
        if (at_end) {
            if (dot) /* a dot segment last: the path ends in '/' (5.2.4 steps 2B, 2C) */
                dst[o++] = '/';
            break;
        }
        i++;
    }
    assert(o <= len);
    *out_len = o;
    return 0;
}

/* host[:port] into its host and port; an IPv6 literal keeps its brackets. */
static void split_authority(const char *a, size_t n, struct elem *host, struct elem *port)
{
    size_t colon = n;

    for (size_t i = n; i > 0 && a[i - 1] != ']'; i--) {
        if (a[i - 1] == ':') {
            colon = i - 1;
            break;
        }
    }
    host->s = a;
    host->n = colon;
    port->s = colon < n ? a + colon + 1 : a + n;
    port->n = colon < n ? n - colon - 1 : 0;
}

static bool same_authority(const char *a, size_t an, const char *b, size_t bn,
                           const char *default_port)
{
    struct elem ah, ap, bh, bp;

    split_authority(a, an, &ah, &ap);
    split_authority(b, bn, &bh, &bp);
    if (ap.n == 0) {
        ap.s = default_port;
        ap.n = strlen(default_port);
    }
    if (bp.n == 0) {
        bp.s = default_port;
        bp.n = strlen(default_port);
    }
    if (ah.n != bh.n || ap.n != bp.n || memcmp(ap.s, bp.s, ap.n) != 0)
        return false;
    for (size_t i = 0; i < ah.n; i++)
        if (lower((unsigned char)ah.s[i]) != lower((unsigned char)bh.s[i]))
            return false;
    return true;
}

int tg_http_target_normalize(struct tg_http_request *req, char *dst, size_t cap, int *status,
                             char *err)
{
    const char *t = req->target, *q;
    size_t n = req->target_len, path_len, out;
    int rc;

    *status = 400;
    req->path = NULL;
    req->path_len = 0;
    if (req->connect || (n == 1 && t[0] == '*')) {
        req->path = t;
        req->path_len = n;
        return 0;
    }
    if (memchr(t, '#', n) != NULL)
        return tg_err_set(err, TG_EINVAL, "fragment (#) in the request target");
    if (cap < n + 1)
        return tg_err_set(err, TG_EINVAL, "internal: target buffer too small");
    if (n == 0 || t[0] != '/') { /* absolute-form: scheme "://" authority, then the rest */
        size_t skip = n > 7 && ieq(t, 7, "http://") ? 7 : n > 8 && ieq(t, 8, "https://") ? 8 : 0;
        const char *auth = t + skip;
        size_t an = 0;

        if (skip == 0)
            return tg_err_set(err, TG_EINVAL,
                              "request target is not origin, absolute or asterisk form");
        while (skip + an < n && auth[an] != '/' && auth[an] != '?')
            an++;
        if (an == 0)
            return tg_err_set(err, TG_EINVAL, "no host in the absolute-form request target");
        if (memchr(auth, '@', an) != NULL)
            return tg_err_set(err, TG_EINVAL, "user info in the request target");
        if (memchr(auth, '\\', an) != NULL)
            return tg_err_set(err, TG_EINVAL, "backslash in the request target's authority");
        if (req->host == NULL)
            return tg_err_set(err, TG_EINVAL, "absolute-form request target without a Host header");
        if (!same_authority(auth, an, req->host, req->host_len, skip == 7 ? "80" : "443"))
            return tg_err_set(err, TG_EINVAL,
                              "the request target's authority differs from the Host header");
        t = auth + an;
        n -= skip + an;
    }
    q = memchr(t, '?', n);
    path_len = q != NULL ? (size_t)(q - t) : n;
    if (path_len == 0) { /* "http://host" or "http://host?q": the path is "/" */
        dst[0] = '/';
        out = 1;
    } else if ((rc = tg_http_path_normalize(t, path_len, dst, cap, &out, err)) < 0) {
        return rc;
    }
    memcpy(dst + out, t + path_len, n - path_len); /* the query as it is */
    req->path = dst;
    req->path_len = out + n - path_len;
    *status = 0;
    return 0;
}

/* ---- bodies ---- */

enum {
    B_LENGTH,
    C_SIZE,
    C_SIZE_BWS,
    C_EXT_NAME_START,
    C_EXT_NAME,
    C_EXT_AFTER_NAME,
    C_EXT_VAL_START,
    C_EXT_VAL_TOKEN,
    C_EXT_VAL_Q,
    C_EXT_VAL_QESC,
    C_EXT_AFTER_Q,
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    T_LINE_START,
    T_NAME,
    T_VALUE,
    T_LF,
    T_END_LF,
    B_DONE,
    B_EOF,
};

void tg_http_body_init(struct tg_http_body *b, enum tg_http_framing framing, uint64_t length,
                       const struct tg_http_limits *lim)
{
    memset(b, 0, sizeof(*b));
    b->framing = framing;
    b->lim = *lim;
    b->remaining = length;
    switch (framing) {
    case TG_HTTP_NO_BODY:
        b->st = B_DONE;
        break;
    case TG_HTTP_LENGTH:
        b->st = length == 0 ? B_DONE : B_LENGTH;
        break;
    case TG_HTTP_CHUNKED:
        b->st = C_SIZE;
        break;
    case TG_HTTP_TO_EOF:
        b->st = B_EOF;
        break;
    }
}

static bool qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

/* What may follow a chunk size (RFC 9112 7.1.1): chunk-ext = *( BWS ";" BWS ext-name
 * [ BWS "=" BWS ext-val ] ), then CRLF. The state after c in state st, or -1 where c may not
 * stand. C_SIZE here is the first byte after the size's digits. */
static int chunk_ext_next(int st, unsigned char c)
{
    bool ws = ows(c), tok = tchar(c), semi = c == ';', cr = c == '\r';

    switch (st) {
    case C_SIZE:
        return semi ? C_EXT_NAME_START : ws ? C_SIZE_BWS : cr ? C_SIZE_LF : -1;
    case C_SIZE_BWS:
        return ws ? st : semi ? C_EXT_NAME_START : -1;
    case C_EXT_NAME_START:
        return ws ? st : tok ? C_EXT_NAME : -1;
    case C_EXT_NAME:
        if (tok)
            return st;
        return ws         ? C_EXT_AFTER_NAME
               : c == '=' ? C_EXT_VAL_START
               : semi     ? C_EXT_NAME_START
               : cr       ? C_SIZE_LF
                          : -1;
    case C_EXT_AFTER_NAME:
        return ws ? st : c == '=' ? C_EXT_VAL_START : semi ? C_EXT_NAME_START : -1;
    case C_EXT_VAL_START:
        return ws ? st : c == '"' ? C_EXT_VAL_Q : tok ? C_EXT_VAL_TOKEN : -1;
    case C_EXT_VAL_TOKEN:
    case C_EXT_AFTER_Q:
        if (tok && st == C_EXT_VAL_TOKEN)
            return st;
        return ws ? C_SIZE_BWS : semi ? C_EXT_NAME_START : cr ? C_SIZE_LF : -1;
    case C_EXT_VAL_Q:
        return c == '"' ? C_EXT_AFTER_Q : c == '\\' ? C_EXT_VAL_QESC : qdtext(c) ? st : -1;
    case C_EXT_VAL_QESC:
        return vchar_ws(c) ? C_EXT_VAL_Q : -1;
    default:
        return -1;
    }
}

/* What was wrong when chunk_ext_next refused a byte in state st. */
static const char *chunk_ext_what(int st)
{
    switch (st) {
    case C_SIZE:
        return "invalid chunk size";
    case C_SIZE_BWS:
        return "invalid chunk size line";
    case C_EXT_VAL_START:
    case C_EXT_VAL_Q:
    case C_EXT_VAL_QESC:
        return "invalid chunk extension value";
    default:
        return "invalid chunk extension";
    }
}

/* One byte of a chunk's size line after the size (chunk_ext_next); 0 ok, TG_EINVAL with err
 * naming the part of the line that was wrong. */
static int chunk_ext(struct tg_http_body *b, unsigned char c, char *err)
{
    int next = chunk_ext_next(b->st, c);

    if (next < 0)
        return tg_err_set(err, TG_EINVAL, "%s", chunk_ext_what(b->st));
    b->st = next;
    return 0;
}

/* The byte c must be want (a CR or LF of the framing): then the state becomes next, and an LF
 * ends a line; else TG_EINVAL with what as the message. */
static int expect(struct tg_http_body *b, unsigned char c, unsigned char want, int next,
                  const char *what, char *err)
{
    if (c != want)
        return tg_err_set(err, TG_EINVAL, "%s", what);
    b->st = next;
    if (want == '\n') {
        b->line = 0;
        b->digits = 0;
    }
    return 0;
}

/* One byte of chunk framing or trailers; 0 ok, TG_EINVAL with err. */
static int body_byte(struct tg_http_body *b, unsigned char c, char *err)
{
    b->line++;
    if (b->st >= T_LINE_START && b->st <= T_END_LF) {
        if (++b->trailer > b->lim.max_head)
            return tg_err_set(err, TG_EINVAL, "trailer section too large");
    }
    if (b->line > b->lim.max_line)
        return tg_err_set(err, TG_EINVAL, "%s line too long",
                          b->st >= T_LINE_START ? "trailer" : "chunk size");
    switch (b->st) {
    case C_SIZE: {
        int h = hexval(c);

        if (h >= 0) {
            if (++b->digits > 15)
                return tg_err_set(err, TG_EINVAL, "chunk size too large");
            b->remaining = b->remaining * 16 + (uint64_t)h;
            return 0;
        }
        if (b->digits == 0)
            return tg_err_set(err, TG_EINVAL, "invalid chunk size");
        return chunk_ext(b, c, err);
    }
    case C_SIZE_BWS:
    case C_EXT_NAME_START:
    case C_EXT_NAME:
    case C_EXT_AFTER_NAME:
    case C_EXT_VAL_START:
    case C_EXT_VAL_TOKEN:
    case C_EXT_VAL_Q:
    case C_EXT_VAL_QESC:
    case C_EXT_AFTER_Q:
        return chunk_ext(b, c, err);
    case C_SIZE_LF:
        return expect(b, c, '\n', b->remaining == 0 ? T_LINE_START : C_DATA,
                      "chunk size line not ended by CRLF", err);
    case C_DATA_CR:
        return expect(b, c, '\r', C_DATA_LF, "chunk data not followed by CRLF", err);
    case C_DATA_LF:
        return expect(b, c, '\n', C_SIZE, "chunk data not followed by CRLF", err);
    case T_LINE_START:
        if (c == '\r') {
            b->st = T_END_LF;
            return 0;
        }
        if (ows(c))
            return tg_err_set(err, TG_EINVAL, "obs-fold in the trailers");
        if (!tchar(c))
            return tg_err_set(err, TG_EINVAL, "trailer name is not a token");
        if (++b->n_trailers > b->lim.max_fields)
            return tg_err_set(err, TG_EINVAL, "too many trailer fields");
        b->st = T_NAME;
        return 0;
    case T_NAME:
        if (tchar(c))
            return 0;
        if (c != ':')
            return tg_err_set(err, TG_EINVAL, "%s",
                              ows(c) ? "whitespace before the colon of a trailer"
                                     : "trailer name is not a token");
        b->st = T_VALUE;
        return 0;
    case T_VALUE:
        if (c == '\r')
            b->st = T_LF;
        else if (!vchar_ws(c))
            return tg_err_set(err, TG_EINVAL, "control character in a trailer value");
        return 0;
    case T_LF:
        return expect(b, c, '\n', T_LINE_START, "bare CR in the trailers", err);
    case T_END_LF:
        return expect(b, c, '\n', B_DONE, "bare CR in the trailers", err);
    default:
        return tg_err_set(err, TG_EINVAL, "internal: body state");
    }
}

int tg_http_body_feed(struct tg_http_body *b, const char *buf, size_t len, size_t *used, char *err)
{
    size_t i = 0;
    int rc;

    while (b->st != B_DONE && i < len) {
        if (b->st == B_EOF) {
            i = len;
            break;
        }
        if (b->st == B_LENGTH || b->st == C_DATA) {
            size_t n = len - i < b->remaining ? len - i : (size_t)b->remaining;

            i += n;
            b->remaining -= n;
            if (b->remaining == 0)
                b->st = b->st == B_LENGTH ? B_DONE : C_DATA_CR;
            continue;
        }
        if ((rc = body_byte(b, (unsigned char)buf[i], err)) < 0) {
            *used = i;
            b->total += i;
            return rc;
        }
        i++;
    }
    *used = i;
    b->total += i;
    return b->st == B_DONE ? 1 : 0;
}

/* ---- responses ---- */

enum {
    RS_LINE,
    RS_LINE_LF,
    RH_LINE_START,
    RH_NAME,
    RH_VALUE,
    RH_LF,
    RH_END_LF,
    R_BODY,
    R_TUNNEL,
};

void tg_http_response_init(struct tg_http_response *r, const struct tg_http_limits *lim, bool head,
                           bool connect, bool upgrade)
{
    memset(r, 0, sizeof(*r));
    r->lim = *lim;
    r->head_request = head;
    r->connect_request = connect;
    r->upgrade_request = upgrade;
    r->st = RS_LINE;
}

static void response_reset_head(struct tg_http_response *r)
{
    r->st = RS_LINE;
    r->status = 0;
    r->close = r->chunked = r->has_length = false;
    r->length = 0;
    r->line = r->head = r->name_len = r->value_len = 0;
}

/* Whether the current field is one whose value response_field reads. */
static bool interesting(const struct tg_http_response *r)
{
    return (r->name_len == 14 && memcmp(r->name, "content-length", 14) == 0) ||
           (r->name_len == 17 && memcmp(r->name, "transfer-encoding", 17) == 0) ||
           (r->name_len == 10 && memcmp(r->name, "connection", 10) == 0);
}

static int status_line(struct tg_http_response *r, char *err)
{
    const char *v = r->value;

    if (r->value_len < 12 || memcmp(v, "HTTP/1.", 7) != 0 || (v[7] != '0' && v[7] != '1') ||
        v[8] != ' ' || v[9] < '1' || v[9] > '5' || v[10] < '0' || v[10] > '9' || v[11] < '0' ||
        v[11] > '9' || (r->value_len > 12 && v[12] != ' '))
        return tg_err_set(err, TG_EINVAL, "malformed status line from the app");
    r->minor = v[7] - '0';
    r->status = (v[9] - '0') * 100 + (v[10] - '0') * 10 + (v[11] - '0');
    r->close = r->minor == 0;
    return 0;
}

static int response_field(struct tg_http_response *r, char *err)
{
    const char *v = r->value;
    size_t n = r->value_len < sizeof(r->value) ? r->value_len : sizeof(r->value), pos = 0;
    struct elem e;

    while (n > 0 && ows((unsigned char)v[n - 1]))
        n--;
    if (r->name_len == 14 && memcmp(r->name, "content-length", 14) == 0) {
        uint64_t len = 0;

        if (n == 0 || n > MAX_LENGTH_DIGITS)
            return tg_err_set(err, TG_EINVAL, "invalid Content-Length from the app");
        for (size_t i = 0; i < n; i++) {
            if (v[i] < '0' || v[i] > '9')
                return tg_err_set(err, TG_EINVAL, "invalid Content-Length from the app");
            len = len * 10 + (uint64_t)(v[i] - '0');
        }
        if (r->has_length && len != r->length)
            return tg_err_set(err, TG_EINVAL, "differing Content-Length from the app");
        r->has_length = true;
        r->length = len;
    } else if (r->name_len == 17 && memcmp(r->name, "transfer-encoding", 17) == 0) {
        if (r->value_len >= sizeof(r->value))
            return tg_err_set(err, TG_EINVAL, "Transfer-Encoding from the app too long");
        r->chunked = false;
        while (next_elem(v, n, &pos, &e))
            r->chunked = ieq(e.s, e.n, "chunked");
    } else if (r->name_len == 10 && memcmp(r->name, "connection", 10) == 0) {
        while (next_elem(v, n, &pos, &e)) {
            if (ieq(e.s, e.n, "close"))
                r->close = true;
            else if (ieq(e.s, e.n, "keep-alive") && r->minor == 0)
                r->close = false;
        }
    }
    return 0;
}

/* The head has ended: what follows it. */
static int response_head_done(struct tg_http_response *r)
{
    enum tg_http_framing f;

    if (r->status == 101)
        return TG_HTTP_RESP_TUNNEL;
    if (r->status < 200)
        return TG_HTTP_RESP_INTERIM;
    if (r->connect_request && r->status < 300)
        return TG_HTTP_RESP_TUNNEL;
    if (r->head_request || r->status == 204 || r->status == 304)
        f = TG_HTTP_NO_BODY;
    else if (r->chunked)
        f = TG_HTTP_CHUNKED;
    else if (r->has_length)
        f = TG_HTTP_LENGTH;
    else
        f = TG_HTTP_TO_EOF;
    if (f == TG_HTTP_TO_EOF)
        r->close = true;
    tg_http_body_init(&r->body, f, r->length, &r->lim);
    r->st = R_BODY;
    return TG_HTTP_RESP_MORE;
}

/* Counts n more bytes of the response head, on its current line; TG_EINVAL past a limit. */
static int head_bytes(struct tg_http_response *r, size_t n, char *err)
{
    if (r->head + n > r->lim.max_head)
        return tg_err_set(err, TG_EINVAL, "response head from the app too large");
    if (r->line + n > r->lim.max_line)
        return tg_err_set(err, TG_EINVAL, "response line from the app too long");
    r->head += n;
    r->line += n;
    r->bytes += n;
    return 0;
}

int tg_http_response_feed(struct tg_http_response *r, const char *buf, size_t len, size_t *used,
                          char *err)
{
    size_t i = 0;
    int rc;

    *used = 0;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];

        if (r->st == R_TUNNEL) {
            *used = len;
            r->bytes += len - i;
            return TG_HTTP_RESP_TUNNEL;
        }
        if (r->st == R_BODY) {
            size_t n;

            rc = tg_http_body_feed(&r->body, buf + i, len - i, &n, err);
            i += n;
            r->bytes += n;
            if (rc < 0) {
                *used = i;
                return rc;
            }
            if (rc == 1) {
                *used = i;
                return TG_HTTP_RESP_DONE;
            }
            continue;
        }
        if (r->st == RH_NAME) { /* a field name, up to its colon in one go */
            const char *colon = memchr(buf + i, ':', len - i);
            size_t end = colon != NULL ? (size_t)(colon - buf) : len, n = end - i;

            if ((rc = head_bytes(r, n + (colon != NULL), err)) < 0)
                return rc;
            for (size_t k = i; k < end; k++) {
                unsigned char v = (unsigned char)buf[k];

                if (!tchar(v))
                    return tg_err_set(err, TG_EINVAL, "malformed header name from the app");
                if (r->name_len < sizeof(r->name))
                    r->name[r->name_len] = (char)lower(v);
                r->name_len++;
            }
            i = end;
            if (colon != NULL) {
                i++;
                r->st = RH_VALUE;
            }
            continue;
        }
        if (r->st == RS_LINE || r->st == RH_VALUE) {
            /* the bulk of a head: up to the CR in one go */
            const char *cr = memchr(buf + i, '\r', len - i);
            size_t end = cr != NULL ? (size_t)(cr - buf) : len, n = end - i;
            /* only the status line and the values of the fields we interpret are kept */
            bool keep = r->st == RS_LINE || interesting(r);

            if ((rc = head_bytes(r, n, err)) < 0)
                return rc;
            /* Only a line end can move a boundary: a bare LF is refused (a client might end
             * the line there); other bytes of the app's values pass as they are. */
            if (memchr(buf + i, '\n', n) != NULL)
                return tg_err_set(err, TG_EINVAL, "bare LF in a response head from the app");
            if (keep) {
                size_t k = i;

                if (r->st == RH_VALUE && r->value_len == 0)
                    while (k < end && ows((unsigned char)buf[k]))
                        k++;
                if (r->value_len < sizeof(r->value))
                    memcpy(r->value + r->value_len, buf + k,
                           end - k < sizeof(r->value) - r->value_len
                               ? end - k
                               : sizeof(r->value) - r->value_len);
                r->value_len += end - k;
            }
            i = end;
            if (cr == NULL)
                break;
            i++;
            if ((rc = head_bytes(r, 1, err)) < 0)
                return rc;
            r->st = r->st == RS_LINE ? RS_LINE_LF : RH_LF;
            continue;
        }
        i++;
        if ((rc = head_bytes(r, 1, err)) < 0)
            return rc;
        switch (r->st) {
        case RS_LINE_LF:
            if (c != '\n' || status_line(r, err) < 0)
                return tg_err_set(err, TG_EINVAL, "malformed status line from the app");
            r->st = RH_LINE_START;
            r->line = 0;
            break;
        case RH_LINE_START:
            r->name_len = r->value_len = 0;
            if (c == '\r') {
                r->st = RH_END_LF;
                break;
            }
            if (!tchar(c))
                return tg_err_set(err, TG_EINVAL, "malformed header line from the app");
            r->name[r->name_len++] = (char)lower(c);
            r->st = RH_NAME;
            break;
        case RH_LF:
            if (c != '\n')
                return tg_err_set(err, TG_EINVAL, "bare CR in a header from the app");
            if (r->name_len <= sizeof(r->name) && response_field(r, err) < 0)
                return TG_EINVAL;
            r->st = RH_LINE_START;
            r->line = 0;
            break;
        case RH_END_LF:
            if (c != '\n')
                return tg_err_set(err, TG_EINVAL, "bare CR in a header from the app");
            *used = i;
            rc = response_head_done(r);
            if (rc == TG_HTTP_RESP_INTERIM) {
                response_reset_head(r);
                return rc;
            }
            if (rc == TG_HTTP_RESP_TUNNEL) {
                r->st = R_TUNNEL;
                return rc;
            }
            if (r->body.st == B_DONE)
                return TG_HTTP_RESP_DONE;
            break;
        default:
            return tg_err_set(err, TG_EINVAL, "internal: response state");
        }
    }
    *used = i;
    return TG_HTTP_RESP_MORE;
}

/* ---- output ---- */

bool tg_http_owned_field(const char *name, size_t len)
{
    return ieq(name, len, "x-forwarded-client-cert") || ieq(name, len, "client-cert") ||
           ieq(name, len, "client-cert-chain");
}

static void puts_(struct tg_cursor *o, const char *s)
{
    tg_cursor_put(o, s, strlen(s));
}

static void put_base64(struct tg_cursor *o, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;

        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = tab[v >> 18 & 63];
        q[1] = tab[v >> 12 & 63];
        q[2] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        tg_cursor_put(o, q, 4);
    }
}

static void put_caller(struct tg_cursor *o, const struct tg_http_caller *who);

size_t tg_http_rewrite(const struct tg_http_request *req, const struct tg_http_caller *who,
                       char *dst, size_t cap)
{
    struct tg_cursor o = {.dst = dst, .cap = cap};

    if (req->path == NULL)
        return 0; /* never the raw target: the rules saw the normalised one */
    tg_cursor_put(&o, req->method, req->method_len);
    tg_cursor_put(&o, " ", 1);
    tg_cursor_put(&o, req->path, req->path_len);
    puts_(&o, req->minor == 1 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
    for (unsigned i = 0; i < req->n_fields; i++) {
        const struct tg_http_field *f = &req->fields[i];

        if (tg_http_owned_field(f->name, f->name_len))
            continue;
        tg_cursor_put(&o, f->name, f->name_len);
        tg_cursor_put(&o, ": ", 2);
        tg_cursor_put(&o, f->value, f->value_len);
        tg_cursor_put(&o, "\r\n", 2);
    }
    if (who != NULL && who->lines != NULL)
        tg_cursor_put(&o, who->lines, who->lines_len);
    else if (who != NULL)
        put_caller(&o, who);
    tg_cursor_put(&o, "\r\n", 2);
    return o.full ? 0 : o.len;
}

size_t tg_http_caller_lines(const struct tg_http_caller *who, char *dst, size_t cap)
{
    struct tg_cursor o = {.dst = dst, .cap = cap};

    put_caller(&o, who);
    return o.full ? 0 : o.len;
}

static void put_caller(struct tg_cursor *o, const struct tg_http_caller *who)
{
    if (who->peer_id != NULL && who->xfcc) {
        puts_(o, "x-forwarded-client-cert: By=");
        puts_(o, who->our_id);
        puts_(o, ";Hash=");
        puts_(o, who->sha256);
        puts_(o, ";URI=");
        puts_(o, who->peer_id);
        tg_cursor_put(o, "\r\n", 2);
    }
    if (who->peer_id != NULL && who->client_cert && who->der != NULL) {
        puts_(o, "client-cert: :");
        put_base64(o, who->der, who->der_len);
        puts_(o, ":\r\n");
    }
}

const char *tg_http_reason(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

size_t tg_http_local_response(int status, unsigned retry_after_s, bool close, char *dst, size_t cap)
{
    char body[64], retry[48] = "";
    int bl = snprintf(body, sizeof(body), "%d %s\n", status, tg_http_reason(status));
    int n;

    if (retry_after_s > 0)
        snprintf(retry, sizeof(retry), "retry-after: %u\r\n", retry_after_s);
    n = snprintf(dst, cap,
                 "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n%s%s"
                 "\r\n%s",
                 status, tg_http_reason(status), bl, retry, close ? "connection: close\r\n" : "",
                 body);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

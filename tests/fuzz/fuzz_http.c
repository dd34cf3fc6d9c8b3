/* Fuzzing of the HTTP/1.1 request and response framing.
 * 1. The bytes as a stream of requests, read all at once and in reads of a size taken from
 *    the first byte: both give the same requests, the same refusal and the same byte
 *    accounting (heads + bodies + what is left over = the input).
 * 2. Each accepted head, rewritten (owned fields removed, ours added), parses again to the
 *    same request with the same framing, and the rewrite holds no owned field but ours.
 *    Its target is normalised first (a refusal is a 400 with a reason); the rewritten head
 *    carries the normalised target, which normalises to itself.
 * 3. The bytes as a response, all at once and a byte at a time: same result and accounting.
 * 4. The bytes from the first '/' to the first space, as a path: tg_http_path_normalize
 *    agrees with a reference written the other way round (split on '/', then a stack of
 *    segments), and its output is idempotent, no longer than its input, and holds no "//",
 *    no "." or ".." segment, no escape of an unreserved character, no lower-case hex, no
 *    escaped slash or backslash.
 * A refusal always comes with a status and a one-line reason. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/http.h"

#define MAX_REQ 64

static const struct tg_http_limits lim = {.max_head = 2048, .max_line = 512, .max_fields = 16};

struct summary {
    int n;
    int status;
    size_t consumed;
    size_t heads[MAX_REQ];
    uint64_t bodies[MAX_REQ];
    int framing[MAX_REQ];
};

static bool same_req(const struct tg_http_request *a, const struct tg_http_request *b)
{
    unsigned kept = 0;

    for (unsigned i = 0; i < a->n_fields; i++)
        kept += !tg_http_owned_field(a->fields[i].name, a->fields[i].name_len);
    return a->method_len == b->method_len && memcmp(a->method, b->method, a->method_len) == 0 &&
           a->path_len == b->target_len && memcmp(a->path, b->target, a->path_len) == 0 &&
           a->minor == b->minor && a->framing == b->framing &&
           a->content_length == b->content_length && a->keep_alive == b->keep_alive &&
           a->upgrade == b->upgrade && a->connect == b->connect && a->head == b->head &&
           a->expect_continue == b->expect_continue && kept + 1 == b->n_fields &&
           (a->host == NULL) == (b->host == NULL) &&
           (a->host == NULL ||
            (a->host_len == b->host_len && memcmp(a->host, b->host, a->host_len) == 0));
}

static bool is_unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int hex_digit(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The properties of a normal path (see 4. above). */
static void check_normal(const char *p, size_t n)
{
    char again[2048], err[TG_ERRLEN];
    size_t m;

    if (n == 0 || p[0] != '/' || n > sizeof(again))
        abort();
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '/' && i + 1 < n && p[i + 1] == '/')
            abort();
        if (p[i] == '/' && i + 1 < n && p[i + 1] == '.' &&
            (i + 2 == n || p[i + 2] == '/' || (p[i + 2] == '.' && (i + 3 == n || p[i + 3] == '/'))))
            abort(); /* "/./", "/../", or one of them last */
        if (p[i] == '%') {
            int hi = i + 2 < n ? hex_digit(p[i + 1]) : -1,
                lo = i + 2 < n ? hex_digit(p[i + 2]) : -1;

            if (hi < 0 || lo < 0 || (p[i + 1] >= 'a' && p[i + 1] <= 'f') ||
                (p[i + 2] >= 'a' && p[i + 2] <= 'f') || is_unreserved(hi * 16 + lo) ||
                hi * 16 + lo == '/' || hi * 16 + lo == '\\' || hi * 16 + lo < 0x20)
                abort();
        }
        if (p[i] == '\\' || p[i] == '#' || p[i] == '?' || (unsigned char)p[i] <= 0x20 ||
            (unsigned char)p[i] >= 0x7f)
            abort();
    }
    if (tg_http_path_normalize(p, n, again, sizeof(again), &m, err) != 0 || m != n ||
        memcmp(again, p, n) != 0)
        abort(); /* idempotent */
}

/* The reference: escapes first (decode the unreserved, upper-case the rest, refuse the
 * rest), then split on '/' dropping the empty pieces, then a stack. 0 ok, -1 refused. */
static int ref_normalize(const char *in, size_t len, char *dst, size_t *out_len)
{
    static char dec[2048];
    static size_t seg_start[1024], seg_len[1024];
    size_t n = 0, o = 0, depth = 0;
    bool trailing = false;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c == '\\' || c == '#' || c == '?' || c <= 0x20 || c >= 0x7f)
            return -1;
        if (c == '%') {
            int hi = i + 2 < len ? hex_digit(in[i + 1]) : -1;
            int lo = i + 2 < len ? hex_digit(in[i + 2]) : -1, v;

            if (hi < 0 || lo < 0)
                return -1;
            v = hi * 16 + lo;
            if (v == '/' || v == '\\' || v < 0x20 || v == 0x7f)
                return -1;
            if (is_unreserved(v)) {
                dec[n++] = (char)v;
            } else {
                dec[n++] = '%';
                dec[n++] = "0123456789ABCDEF"[hi];
                dec[n++] = "0123456789ABCDEF"[lo];
            }
            i += 2;
            continue;
        }
        dec[n++] = (char)c;
    }
    /* segments of dec (it starts with '/'); the last decides whether the result ends in '/' */
    for (size_t i = 1; i <= n; i++) {
        size_t s = i, l;

        while (i < n && dec[i] != '/')
            i++;
        l = i - s;
        trailing = i == n && (l == 0 || (l == 1 && dec[s] == '.') ||
                              (l == 2 && dec[s] == '.' && dec[s + 1] == '.'));
        if (l == 0 || (l == 1 && dec[s] == '.'))
            continue;
        if (l == 2 && dec[s] == '.' && dec[s + 1] == '.') {
            if (depth == 0)
                return -1;
            depth--;
            continue;
        }
        seg_start[depth] = s;
        seg_len[depth++] = l;
    }
    for (size_t d = 0; d < depth; d++) {
        dst[o++] = '/';
        memcpy(dst + o, dec + seg_start[d], seg_len[d]);
        o += seg_len[d];
    }
    if (o == 0 || trailing)
        dst[o++] = '/';
    *out_len = o;
    return 0;
}

static void paths(const uint8_t *in, size_t len)
{
    const uint8_t *slash = memchr(in, '/', len), *end;
    char out[1024], ref[1024], err[TG_ERRLEN];
    size_t n, m, r = 0;
    int rc;

    if (slash == NULL)
        return;
    len -= (size_t)(slash - in);
    end = memchr(slash, ' ', len);
    n = end != NULL ? (size_t)(end - slash) : len;
    if (n > sizeof(out))
        n = sizeof(out);
    err[0] = '\0';
    rc = tg_http_path_normalize((const char *)slash, n, out, sizeof(out), &m, err);
    if ((rc < 0) != (ref_normalize((const char *)slash, n, ref, &r) < 0))
        abort();
    if (rc < 0) {
        fuzz_check_err(err);
        return;
    }
    if (m > n || m != r || memcmp(out, ref, m) != 0)
        abort();
    check_normal(out, m);
}

static void check_rewrite(struct tg_http_request *req)
{
    static const struct tg_http_caller who = {
        .our_id = "spiffe://td/ns/a/sa/b",
        .peer_id = "spiffe://td/ns/c/sa/d",
        .sha256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        .xfcc = true,
    };
    static char out[4096], path[600], path_again[4200];
    struct tg_http_field fields[17];
    struct tg_http_request again;
    struct tg_http_limits big = lim;
    char err[TG_ERRLEN];
    size_t scanned = 0, n;
    int status, rc;
    unsigned owned = 0;

    if (tg_http_rewrite(req, &who, out, sizeof(out)) != 0)
        abort(); /* never the raw target */
    if (tg_http_target_normalize(req, path, sizeof(path), &status, err) < 0) {
        fuzz_check_err(err);
        if (status != 400)
            abort();
        return;
    }
    if (req->path == NULL || req->path_len == 0 || req->path_len > req->target_len + 1)
        abort();
    if (req->path[0] == '/') { /* origin-form: the path up to any '?' is normal */
        const char *q = memchr(req->path, '?', req->path_len);

        check_normal(req->path, q != NULL ? (size_t)(q - req->path) : req->path_len);
    }
    n = tg_http_rewrite(req, &who, out, sizeof(out));
    if (n == 0)
        abort(); /* a head within the limits always fits 4 KiB plus ours */
    big.max_head = sizeof(out);
    big.max_fields = 17;
    big.max_line = sizeof(out);
    rc = tg_http_parse_request(out, n, &big, fields, &scanned, &again, &status, err);
    if (rc != (int)n || !same_req(req, &again))
        abort();
    /* what the app got normalises to itself */
    if (tg_http_target_normalize(&again, path_again, sizeof(path_again), &status, err) < 0 ||
        again.path_len != again.target_len || memcmp(again.path, again.target, again.path_len) != 0)
        abort();
    for (unsigned i = 0; i < again.n_fields; i++)
        owned += tg_http_owned_field(again.fields[i].name, again.fields[i].name_len);
    if (owned != 1)
        abort();
}

/* Feeds in to the parser in reads of step bytes, as the data path would. */
static void run(const uint8_t *in, size_t len, size_t step, bool rewrite, struct summary *s)
{
    struct tg_http_field fields[16];
    struct tg_http_request req;
    struct tg_http_body body;
    char err[TG_ERRLEN];
    size_t avail = 0, pos = 0, scanned = 0;
    bool in_body = false;

    memset(s, 0, sizeof(*s));
    while (s->n < MAX_REQ) {
        int rc;

        if (avail == len && pos == len)
            break;
        avail = avail + step < len ? avail + step : len;
        for (;;) {
            if (!in_body) {
                if (pos == avail)
                    break;
                rc = tg_http_parse_request((const char *)in + pos, avail - pos, &lim, fields,
                                           &scanned, &req, &s->status, err);
                if (rc < 0) {
                    fuzz_check_err(err);
                    if (s->status < 400 || s->status > 599)
                        abort();
                    s->consumed = pos;
                    return;
                }
                if (rc == 0)
                    break;
                if (rewrite)
                    check_rewrite(&req);
                s->heads[s->n] = (size_t)rc;
                s->framing[s->n] = req.framing;
                pos += (size_t)rc;
                scanned = 0;
                tg_http_body_init(&body, req.framing, req.content_length, &lim);
                in_body = true;
            }
            size_t used;

            rc = tg_http_body_feed(&body, (const char *)in + pos, avail - pos, &used, err);
            pos += used;
            if (rc < 0) {
                fuzz_check_err(err);
                s->status = 400;
                s->consumed = pos;
                return;
            }
            if (rc == 0)
                break;
            s->bodies[s->n++] = body.total;
            in_body = false;
            if (s->n == MAX_REQ)
                break;
        }
        if (avail == len)
            break;
    }
    s->consumed = pos;
}

static void responses(const uint8_t *in, size_t len)
{
    struct tg_http_response a, b;
    char err[TG_ERRLEN];
    size_t used_a = 0, used_b = 0, u;
    bool head = len > 0 && (in[0] & 1), connect = len > 0 && (in[0] & 2);
    int ra, rb = TG_HTTP_RESP_MORE;

    tg_http_response_init(&a, &lim, head, connect, true);
    tg_http_response_init(&b, &lim, head, connect, true);
    do {
        ra = tg_http_response_feed(&a, (const char *)in + used_a, len - used_a, &u, err);
        used_a += u;
    } while (ra == TG_HTTP_RESP_INTERIM && used_a < len);
    if (ra < 0)
        fuzz_check_err(err);
    while (used_b < len) {
        rb = tg_http_response_feed(&b, (const char *)in + used_b, 1, &u, err);
        used_b += u;
        if (rb != TG_HTTP_RESP_MORE && rb != TG_HTTP_RESP_INTERIM)
            break;
        if (u == 0)
            abort();
    }
    if (used_a > len || used_b > len)
        abort();
    if (ra >= 0 && rb >= 0 && ra != TG_HTTP_RESP_INTERIM && rb != TG_HTTP_RESP_INTERIM &&
        (ra != rb || used_a != used_b || a.status != b.status))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct summary whole, split;
    size_t step;

    if (size == 0)
        return 0;
    step = (size_t)data[0] % 64 + 1;
    run(data + 1, size - 1, size, true, &whole);
    run(data + 1, size - 1, step, false, &split);
    if (whole.n != split.n || whole.status != split.status || whole.consumed != split.consumed)
        abort();
    for (int i = 0; i < whole.n; i++) {
        if (whole.heads[i] != split.heads[i] || whole.bodies[i] != split.bodies[i] ||
            whole.framing[i] != split.framing[i])
            abort();
    }
    responses(data + 1, size - 1);
    paths(data + 1, size - 1);
    return 0;
}

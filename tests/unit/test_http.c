/* tg_http_*: request heads, bodies (Content-Length, chunked, trailers), the smuggling corpus,
 * the head rewrite with the caller's identity, response framing, local responses. */
#include <check.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/config.h"
#include "tollgate/http.h"
#include "tollgate/policy.h"
#include "tollgate/ratelimit.h"
#include "unit_util.h"

static const struct tg_http_limits lim = {.max_head = 4096, .max_line = 1024, .max_fields = 16};

/* Parses a stream of requests (heads and bodies) as the data path does. Returns the number
 * of complete requests; *status gets the refusal's status (0: none), *rest the bytes of an
 * unfinished request at the end. */
static int run_stream(const char *in, size_t len, int *status, size_t *rest,
                      struct tg_http_request *last)
{
    struct tg_http_field fields[16];
    char err[TG_ERRLEN];
    size_t pos = 0;
    int n = 0;

    *status = 0;
    *rest = 0;
    while (pos < len) {
        struct tg_http_request req;
        struct tg_http_body body;
        size_t scanned = 0, used;
        int rc =
            tg_http_parse_request(in + pos, len - pos, &lim, fields, &scanned, &req, status, err);

        if (rc < 0) {
            ck_assert_int_ne(*status, 0);
            ck_assert_int_gt(strlen(err), 0);
            return n;
        }
        if (rc == 0) {
            *rest = len - pos;
            return n;
        }
        if (last != NULL)
            *last = req;
        pos += (size_t)rc;
        tg_http_body_init(&body, req.framing, req.content_length, &lim);
        rc = tg_http_body_feed(&body, in + pos, len - pos, &used, err);
        if (rc < 0) {
            *status = 400;
            return n;
        }
        pos += used;
        if (rc == 0) {
            *rest = used;
            return n;
        }
        n++;
    }
    return n;
}

#define H "Host: a\r\n"
/* The heads most cases start with: a GET and a POST of / to host a, a chunked POST's. */
#define GET_A "GET / HTTP/1.1\r\n" H
#define POST_A "POST / HTTP/1.1\r\n" H
#define CHUNKED POST_A "Transfer-Encoding: chunked\r\n\r\n"

/* n: complete requests; status: the refusal (0: none). */
static const struct {
    const char *name;
    const char *in;
    int n;
    int status;
} stream_cases[] = {
    {"simple GET", GET_A "\r\n", 1, 0},
    {"pipelined", "GET /a HTTP/1.1\r\n" H "\r\nGET /b HTTP/1.1\r\n" H "\r\n", 2, 0},
    {"content-length body", POST_A "Content-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n" H "\r\n", 2,
     0},
    {"chunked body", CHUNKED "5\r\nhello\r\n0\r\n\r\n", 1, 0},
    {"chunked with extensions", CHUNKED "5;a=b;c;d=\"x;y\"\r\nhello\r\n0\r\n\r\n", 1, 0},
    {"chunked with BWS before ;", CHUNKED "5 ; a = b\r\nhello\r\n0\r\n\r\n", 1, 0},
    {"chunked with trailers", CHUNKED "1\r\nx\r\n0\r\nX-T: 1\r\nY: \r\n\r\n", 1, 0},
    {"gzip, chunked", POST_A "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 1, 0},
    {"uppercase hex chunk", CHUNKED "A\r\n0123456789\r\n0\r\n\r\n", 1, 0},
    {"empty lines before the request", "\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n", 1, 0},
    {"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 1, 0},
    {"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" H "\r\n", 1, 0},
    {"absolute form", "GET http://a/x HTTP/1.1\r\n" H "\r\n", 1, 0},
    {"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 1, 0},
    {"obs-text in a value", GET_A "X: \xe2\x82\xac\r\n\r\n", 1, 0},
    /* the smuggling corpus */
    {"CL.TE", POST_A "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 0, 400},
    {"TE.CL",
     POST_A "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 0,
     400},
    {"duplicate CL, same value", POST_A "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 0,
     400},
    {"duplicate CL, differing", POST_A "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 0,
     400},
    {"CL list", POST_A "Content-Length: 5, 5\r\n\r\nhello", 0, 400},
    {"CL with sign", POST_A "Content-Length: +5\r\n\r\nhello", 0, 400},
    {"CL negative", POST_A "Content-Length: -1\r\n\r\n", 0, 400},
    {"CL hex", POST_A "Content-Length: 0x5\r\n\r\nhello", 0, 400},
    {"CL with inner space", POST_A "Content-Length: 1 0\r\n\r\n", 0, 400},
    {"CL huge", POST_A "Content-Length: 99999999999999999999\r\n\r\n", 0, 400},
    {"CL empty", POST_A "Content-Length:\r\n\r\n", 0, 400},
    {"TE not ending in chunked", POST_A "Transfer-Encoding: chunked, gzip\r\n\r\n", 0, 400},
    {"TE identity", POST_A "Transfer-Encoding: identity\r\n\r\n", 0, 400},
    {"TE xchunked", POST_A "Transfer-Encoding: xchunked\r\n\r\n", 0, 400},
    {"TE chunked twice", POST_A "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 0, 400},
    {"TE in two fields, last not chunked",
     POST_A "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 0, 400},
    {"TE with parameters", POST_A "Transfer-Encoding: chunked;q=1\r\n\r\n", 0, 400},
    {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 400},
    {"space before colon (TE)", POST_A "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 0, 400},
    {"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 0, 400},
    {"obs-fold", POST_A "Transfer-Encoding: gzip\r\n chunked\r\n\r\n", 0, 400},
    {"bare LF in the head", "GET / HTTP/1.1\n" H "\r\n", 0, 400},
    {"bare LF ending the head", GET_A "\n", 0, 400},
    {"bare CR", "GET / HTTP/1.1\r\nX: a\rb\r\n" H "\r\n", 0, 400},
    {"bad char in a name", GET_A "X(y): a\r\n\r\n", 0, 400},
    {"empty name", GET_A ": a\r\n\r\n", 0, 400},
    {"no colon", GET_A "Xy\r\n\r\n", 0, 400},
    {"no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", 0, 400},
    {"two Hosts", GET_A "Host: b\r\n\r\n", 0, 400},
    {"Host with a comma", "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 0, 400},
    {"bad method", "G(T / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"two spaces", "GET  / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"space in target", "GET /a b HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"fragment in target", "GET /a#b HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"relative target", "GET a HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"HTTP/1.2", "GET / HTTP/1.2\r\n" H "\r\n", 0, 505},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n" H "\r\n", 0, 400},
    {"lowercase version", "GET / http/1.1\r\n" H "\r\n", 0, 400},
    {"CONNECT with a body", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", 0,
     400},
    {"CONNECT to a path", "CONNECT /x HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"chunk size negative", CHUNKED "-1\r\n", 0, 400},
    {"chunk size 0x", CHUNKED "0x5\r\nhello\r\n0\r\n\r\n", 0, 400},
    {"chunk size overflow", CHUNKED "10000000000000000\r\n", 0, 400},
    {"chunk size empty", CHUNKED "\r\n", 0, 400},
    {"chunk size leading space", CHUNKED " 5\r\nhello\r\n0\r\n\r\n", 0, 400},
    {"chunk size trailing space", CHUNKED "5 \r\nhello\r\n0\r\n\r\n", 0, 400},
    {"chunk size bare LF", CHUNKED "5\nhello\r\n0\r\n\r\n", 0, 400},
    {"chunk data too long", CHUNKED "3\r\nhello\r\n0\r\n\r\n", 0, 400},
    {"chunk data bare LF", CHUNKED "5\r\nhello\n0\r\n\r\n", 0, 400},
    {"empty chunk extension", CHUNKED "5;\r\nhello\r\n0\r\n\r\n", 0, 400},
    {"chunk extension bad char", CHUNKED "5;a=(\r\nhello\r\n0\r\n\r\n", 0, 400},
    {"chunk extension open quote", CHUNKED "5;a=\"x\r\nhello\r\n0\r\n\r\n", 0, 400},
    {"trailer obs-fold", CHUNKED "0\r\nX: 1\r\n 2\r\n\r\n", 0, 400},
    {"trailer space before colon", CHUNKED "0\r\nX : 1\r\n\r\n", 0, 400},
    {"trailer bare LF", CHUNKED "0\r\nX: 1\n\r\n", 0, 400},
    {"too many fields",
     GET_A "a:1\r\nb:1\r\nc:1\r\nd:1\r\ne:1\r\nf:1\r\ng:1\r\nh:1\r\ni:1\r\nj:"
           "1\r\nk:1\r\nl:1\r\nm:1\r\nn:1\r\no:1\r\np:1\r\n\r\n",
     0, 431},
    {"too many empty lines", "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n", 0,
     400},
};

START_TEST(test_http_stream_table)
{
    int status;
    size_t rest;
    int n = run_stream(stream_cases[_i].in, strlen(stream_cases[_i].in), &status, &rest, NULL);

    ck_assert_msg(n == stream_cases[_i].n && status == stream_cases[_i].status,
                  "%s: %d requests, status %d (want %d, %d)", stream_cases[_i].name, n, status,
                  stream_cases[_i].n, stream_cases[_i].status);
}
END_TEST

START_TEST(test_http_nul_in_value)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    int status;
    size_t rest;

    ck_assert_int_eq(run_stream(in, sizeof(in) - 1, &status, &rest, NULL), 0);
    ck_assert_int_eq(status, 400);
}
END_TEST

START_TEST(test_http_limits)
{
    char buf[8192];
    int status;
    size_t rest;

    /* a request line over max_line: 414 as soon as it is known, complete or not */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    ck_assert_int_eq(run_stream(buf, 2000, &status, &rest, NULL), 0);
    ck_assert_int_eq(status, 414);
    /* a head over max_head made of short lines: 431 */
    strcpy(buf, "GET / HTTP/1.1\r\n" H);
    for (size_t i = strlen(buf); i + 12 < sizeof(buf); i += 12)
        memcpy(buf + i, "X-Aaaa: bb\r\n", 12);
    ck_assert_int_eq(run_stream(buf, 5000, &status, &rest, NULL), 0);
    ck_assert_int_eq(status, 431);
    /* below the limits, an incomplete head just waits */
    ck_assert_int_eq(run_stream(buf, 500, &status, &rest, NULL), 0);
    ck_assert_int_eq(status, 0);
    ck_assert_uint_eq(rest, 500);
}
END_TEST

START_TEST(test_http_request_fields)
{
    static const char in[] = "\r\nPOST /x?y=1 HTTP/1.1\r\nhost:  example:80 \r\nConnection: "
                             "keep-alive, Upgrade\r\nUpgrade: websocket\r\nExpect: "
                             "100-Continue\r\nContent-Length: 0\r\n\r\n";
    struct tg_http_request req;
    int status;
    size_t rest;

    ck_assert_int_eq(run_stream(in, sizeof(in) - 1, &status, &rest, &req), 1);
    ck_assert_int_eq(req.skipped, 2);
    ck_assert_int_eq(req.head_len, sizeof(in) - 1);
    ck_assert(req.method_len == 4 && memcmp(req.method, "POST", 4) == 0);
    ck_assert(req.target_len == 6 && memcmp(req.target, "/x?y=1", 6) == 0);
    ck_assert(req.host_len == 10 && memcmp(req.host, "example:80", 10) == 0);
    ck_assert(req.keep_alive && req.upgrade && req.expect_continue && !req.connect && !req.head);
    ck_assert_int_eq(req.framing, TG_HTTP_LENGTH);
    ck_assert_int_eq(req.n_fields, 5);
}
END_TEST

static const struct {
    const char *in;
    bool keep_alive;
} keepalive_cases[] = {
    {"GET / HTTP/1.1\r\n" H "\r\n", true},
    {"GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n", false},
    {"GET / HTTP/1.1\r\n" H "Connection: keep-alive, CLOSE\r\n\r\n", false},
    {"GET / HTTP/1.0\r\n\r\n", false},
    {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
};

START_TEST(test_http_keep_alive_table)
{
    struct tg_http_request req;
    int status;
    size_t rest;

    ck_assert_int_eq(
        run_stream(keepalive_cases[_i].in, strlen(keepalive_cases[_i].in), &status, &rest, &req),
        1);
    ck_assert_msg(req.keep_alive == keepalive_cases[_i].keep_alive, "%s", keepalive_cases[_i].in);
}
END_TEST

/* Every split of a request stream into two reads parses the same way. */
START_TEST(test_http_incremental_head)
{
    static const char in[] = "GET /abc HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\n";
    struct tg_http_field fields[16];
    struct tg_http_request req;
    char err[TG_ERRLEN];
    int status;

    for (size_t cut = 0; cut < sizeof(in) - 1; cut++) {
        size_t scanned = 0;

        ck_assert_int_eq(tg_http_parse_request(in, cut, &lim, fields, &scanned, &req, &status, err),
                         0);
        ck_assert_uint_le(scanned, cut);
        ck_assert_int_eq(
            tg_http_parse_request(in, sizeof(in) - 1, &lim, fields, &scanned, &req, &status, err),
            (int)sizeof(in) - 1);
        ck_assert_int_eq(req.n_fields, 2);
    }
}
END_TEST

START_TEST(test_http_chunked_split)
{
    static const char body[] =
        "5;x=\"a\\\"b\"\r\nhello\r\na\r\n0123456789\r\n0\r\nT: v\r\n\r\nNEXT";
    char err[TG_ERRLEN];

    for (size_t cut = 0; cut <= sizeof(body) - 1; cut++) {
        struct tg_http_body b;
        size_t u1 = 0, u2 = 0;
        int rc;

        tg_http_body_init(&b, TG_HTTP_CHUNKED, 0, &lim);
        rc = tg_http_body_feed(&b, body, cut, &u1, err);
        ck_assert_int_ge(rc, 0);
        if (rc == 0) {
            ck_assert_uint_eq(u1, cut);
            rc = tg_http_body_feed(&b, body + cut, sizeof(body) - 1 - cut, &u2, err);
        }
        ck_assert_int_eq(rc, 1);
        ck_assert_uint_eq(u1 + u2, sizeof(body) - 1 - 4);
        ck_assert_uint_eq(b.total, sizeof(body) - 1 - 4);
    }
}
END_TEST

START_TEST(test_http_rewrite_strips_and_adds)
{
    static const char in[] = "GET /p HTTP/1.1\r\nHost: a\r\nX-Forwarded-Client-Cert: "
                             "By=spiffe://evil;URI=spiffe://td/ns/x/sa/admin\r\nclient-cert: "
                             ":Zm9v:\r\nClient-Cert-Chain: :Zm9v:\r\nAccept: */*\r\n\r\n";
    static const uint8_t der[] = {0x30, 0x03, 0x02, 0x01, 0x05};
    const struct tg_http_caller who = {
        .our_id = "spiffe://td/ns/default/sa/web",
        .peer_id = "spiffe://td/ns/default/sa/api",
        .sha256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        .der = der,
        .der_len = sizeof(der),
        .xfcc = true,
        .client_cert = true,
    };
    struct tg_http_field fields[16];
    struct tg_http_request req, again;
    char err[TG_ERRLEN], out[1024], path[64];
    size_t scanned = 0, n;
    int status;

    ck_assert_int_gt(
        tg_http_parse_request(in, sizeof(in) - 1, &lim, fields, &scanned, &req, &status, err), 0);
    /* never the raw target: without a normalised one, nothing is written */
    ck_assert_uint_eq(tg_http_rewrite(&req, &who, out, sizeof(out)), 0);
    ck_assert_int_eq(tg_http_target_normalize(&req, path, sizeof(path), &status, err), 0);
    n = tg_http_rewrite(&req, &who, out, sizeof(out));
    ck_assert_uint_gt(n, 0);
    out[n] = '\0';
    ck_assert_str_eq(out, "GET /p HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n"
                          "x-forwarded-client-cert: By=spiffe://td/ns/default/sa/web;"
                          "Hash=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff;"
                          "URI=spiffe://td/ns/default/sa/api\r\n"
                          "client-cert: :MAMCAQU=:\r\n\r\n");
    /* the rewritten head parses again, to the same request */
    scanned = 0;
    ck_assert_int_eq(tg_http_parse_request(out, n, &lim, fields, &scanned, &again, &status, err),
                     (int)n);
    ck_assert_int_eq(again.n_fields, 4);
    /* each header switchable; no TLS peer: nothing added, spoofed copies still removed */
    struct tg_http_caller none = who;
    none.peer_id = NULL;
    scanned = 0;
    ck_assert_int_gt(
        tg_http_parse_request(in, sizeof(in) - 1, &lim, fields, &scanned, &req, &status, err), 0);
    ck_assert_int_eq(tg_http_target_normalize(&req, path, sizeof(path), &status, err), 0);
    n = tg_http_rewrite(&req, &none, out, sizeof(out));
    out[n] = '\0';
    ck_assert_str_eq(out, "GET /p HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n");
    none = who;
    none.client_cert = false;
    n = tg_http_rewrite(&req, &none, out, sizeof(out));
    out[n] = '\0';
    ck_assert_ptr_nonnull(strstr(out, "x-forwarded-client-cert"));
    ck_assert_ptr_null(strstr(out, "\nclient-cert:"));
    /* too small: 0 */
    ck_assert_uint_eq(tg_http_rewrite(&req, &who, out, 40), 0);
    /* lines rendered once give the same head */
    {
        char lines[512], again_out[1024];
        struct tg_http_caller cached = who;
        size_t m, k = tg_http_caller_lines(&who, lines, sizeof(lines));

        ck_assert_uint_gt(k, 0);
        ck_assert_uint_eq(tg_http_caller_lines(&who, lines, 20), 0);
        cached.lines = lines;
        cached.lines_len = k;
        n = tg_http_rewrite(&req, &who, out, sizeof(out));
        m = tg_http_rewrite(&req, &cached, again_out, sizeof(again_out));
        ck_assert(n > 0 && n == m && memcmp(out, again_out, n) == 0);
    }
}
END_TEST

static const struct {
    const char *name;
    bool head, connect, upgrade;
    const char *in;
    int result;  /* of the last feed */
    size_t used; /* bytes of the response, from the start */
    int status;
} resp_cases[] = {
    {"length", false, false, false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiNEXT",
     TG_HTTP_RESP_DONE, 40, 200},
    {"chunked", false, false, false,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nX",
     TG_HTTP_RESP_DONE, 59, 200},
    {"HEAD", true, false, false, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nX",
     TG_HTTP_RESP_DONE, 39, 200},
    {"204", false, false, false, "HTTP/1.1 204 No Content\r\n\r\nX", TG_HTTP_RESP_DONE, 27, 204},
    {"304", false, false, false, "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
     TG_HTTP_RESP_DONE, 48, 304},
    {"to EOF", false, false, false, "HTTP/1.0 200 OK\r\n\r\nabc", TG_HTTP_RESP_MORE, 22, 200},
    {"101", false, false, true, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nRAW",
     TG_HTTP_RESP_TUNNEL, 48, 101},
    {"CONNECT 200", false, true, false, "HTTP/1.1 200 OK\r\n\r\nRAW", TG_HTTP_RESP_TUNNEL, 19, 200},
    {"CONNECT 403", false, true, false, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
     TG_HTTP_RESP_DONE, 45, 403},
    {"100 then 200", false, false, false,
     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", TG_HTTP_RESP_DONE,
     63, 200},
    {"bad status line", false, false, false, "HTTP/1.1 2000 OK\r\n\r\n", TG_EINVAL, 0, 0},
    {"differing CL", false, false, false,
     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", TG_EINVAL, 0, 0},
};

START_TEST(test_http_response_table)
{
    struct tg_http_response r;
    char err[TG_ERRLEN];
    const char *in = resp_cases[_i].in;
    size_t len = strlen(in), pos = 0, used;
    int rc;

    tg_http_response_init(&r, &lim, resp_cases[_i].head, resp_cases[_i].connect,
                          resp_cases[_i].upgrade);
    /* a byte at a time: the state machine keeps everything it needs */
    for (;;) {
        rc = tg_http_response_feed(&r, in + pos, 1, &used, err);
        pos += used;
        if (rc != TG_HTTP_RESP_MORE && rc != TG_HTTP_RESP_INTERIM)
            break;
        if (pos >= len)
            break;
    }
    ck_assert_msg(rc == resp_cases[_i].result, "%s: result %d (%s)", resp_cases[_i].name, rc,
                  rc < 0 ? err : "");
    if (rc >= 0) {
        ck_assert_msg(pos == resp_cases[_i].used, "%s: used %zu", resp_cases[_i].name, pos);
        ck_assert_int_eq(r.status, resp_cases[_i].status);
    }
}
END_TEST

START_TEST(test_http_local_response)
{
    char out[512];
    size_t n = tg_http_local_response(429, 2, false, out, sizeof(out));
    struct tg_http_response r;
    char err[TG_ERRLEN];
    size_t used;

    ck_assert_uint_gt(n, 0);
    out[n] = '\0';
    ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 429 Too Many Requests\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "retry-after: 2\r\n"));
    ck_assert_ptr_null(strstr(out, "connection: close"));
    tg_http_response_init(&r, &lim, false, false, false);
    ck_assert_int_eq(tg_http_response_feed(&r, out, n, &used, err), TG_HTTP_RESP_DONE);
    ck_assert_uint_eq(used, n);
    n = tg_http_local_response(400, 0, true, out, sizeof(out));
    out[n] = '\0';
    ck_assert_ptr_nonnull(strstr(out, "connection: close\r\n"));
    ck_assert_ptr_null(strstr(out, "retry-after"));
    ck_assert_uint_eq(tg_http_local_response(400, 0, true, out, 20), 0);
}
END_TEST

/* ---- configuration: protocol, http:, HTTP rule conditions, request limits ---- */

#define CID "identity: {cert: c.pem, key: k.pem, trust_bundle: ca.pem}\n"
#define CIN(extra) "inbound:\n  - listen: 127.0.0.1:8443\n    upstream: 127.0.0.1:8080\n" extra
#define TIN(listen, extra) "inbound:\n  - listen: " listen "\n    transparent: true\n" extra
#define MESH(dests) "mesh:\n  destinations: [" dests "]\n"
#define EXP "expect: [\"spiffe://mesh.local/ns/a/sa/b\"], "
#define RULE(extra)                                                                                \
    "authorization:\n  rules:\n    - {name: r, action: deny, paths: [/x], " extra "}\n"

static const struct {
    const char *yaml;
    const char *want; /* NULL: valid; else part of the error */
} config_cases[] = {
    {CID CIN("    protocol: http\n"), NULL},
    {CID CIN("    protocol: tcp\n"), NULL},
    {CID CIN("    protocol: http\n    http: {xfcc: false, client_cert_header: true, max_head: "
             "8KiB, max_line: 1KiB, max_headers: 20}\n"),
     NULL},
    {CID CIN("    protocol: grpc\n"), "t.yaml:5: inbound[0].protocol: \"grpc\" is not a protocol"},
    {CID CIN("    http: {xfcc: false}\n"), "inbound[0].http: only with protocol: http"},
    {CID CIN("    protocol: http\n    http: {xfcc: maybe}\n"), "inbound[0].http.xfcc"},
    {CID CIN("    protocol: http\n    http: {bogus: 1}\n"), "inbound[0].http.bogus: unknown key"},
    {CID CIN("    protocol: http\n    http: {max_head: 10}\n"), "inbound[0].http.max_head"},
    {CID CIN("    protocol: http\n") "authorization:\n  rules:\n    - {name: r, action: allow, "
                                     "methods: [GET], paths: [\"/api/*\"]}\n",
     NULL},
    {CID CIN("") "authorization:\n  rules:\n    - {name: r, action: allow, methods: [GET]}\n",
     "authorization.rules[0]: rule \"r\" has HTTP conditions"},
    {CID CIN("") "authorization:\n  rules:\n    - {name: r, action: deny, hosts: [a], ports: "
                 "[9999]}\n",
     NULL},
    {CID CIN("") "authorization:\n  rules:\n    - {name: r, action: deny, hosts: [a], ports: "
                 "[8443]}\n",
     "could apply to port 8443 of inbound listener in-127.0.0.1:8443"},
    {CID "inbound:\n  - {listen: 127.0.0.1:8443, transparent: true}\n"
         "authorization:\n  rules:\n    - {name: r, action: deny, paths: [/x], ports: [80]}\n",
     "transparent inbound listener in-127.0.0.1:8443"},
    /* a transparent inbound listener: the mesh table says which ports are HTTP */
    {CID TIN("127.0.0.1:15006", "    http: {xfcc: false}\n")
         MESH("{" EXP "address: 0.0.0.0/0, port: 80, protocol: http}") RULE("ports: [80]"),
     NULL},
    {CID TIN("127.0.0.1:15006", "") MESH("{" EXP "address: 0.0.0.0/0, protocol: http}")
         RULE("ports: [80, 81]"),
     NULL},
    {CID TIN("127.0.0.1:15006", "") MESH("{" EXP "address: 0.0.0.0/0, port: 80, protocol: http}")
         RULE("ports: [80, 81], not_ports: [81]"),
     NULL},
    {CID TIN("127.0.0.1:15006", "") MESH("{" EXP "address: 0.0.0.0/0, port: 80, protocol: http}")
         RULE("principals: [\"*\"]"),
     "could apply to any port of transparent inbound listener"},
    {CID TIN("127.0.0.1:15006", "") MESH("{" EXP "address: 0.0.0.0/0, port: 80, protocol: http}")
         RULE("ports: [81]"),
     "port 81 of transparent inbound listener in-127.0.0.1:15006: the mesh table does not make it "
     "protocol: http"},
    {CID TIN("127.0.0.1:15006", "") MESH("{" EXP "address: 10.0.0.0/8, port: 80, protocol: http}")
         RULE("ports: [80]"),
     "port 80 of transparent inbound listener"},
    {CID TIN("127.0.0.1:15006", "") MESH("{" EXP "address: 0.0.0.0/0, port: 80, protocol: http}, "
                                         "{" EXP "address: 10.1.0.0/16, protocol: tcp}")
         RULE("ports: [80]"),
     "port 80 of transparent inbound listener"},
    {CID TIN("\"[::]:15006\"", "") MESH("{" EXP "address: 0.0.0.0/0, port: 80, protocol: http}")
         RULE("ports: [80]"),
     "want 0.0.0.0/0 and ::/0"},
    {CID TIN("\"[::]:15006\"", "") MESH("{" EXP "address: 0.0.0.0/0, port: 80, protocol: http}, "
                                        "{" EXP "address: \"::/0\", port: 80, protocol: http}")
         RULE("ports: [80]"),
     NULL},
    {CID TIN("127.0.0.1:15006", "") MESH("{" EXP "address: 0.0.0.0/0, port: 80, protocol: grpc}"),
     "\"grpc\" is not a protocol"},
    {CID CIN("    protocol: http\n") "rate_limits:\n  default: {requests_per_second: 10, "
                                     "requests_burst: 20}\n",
     NULL},
    {CID CIN("") "rate_limits:\n  default: {requests_per_second: -1}\n",
     "rate_limits.default.requests_per_second"},
};

START_TEST(test_http_config_table)
{
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";
    int rc =
        tg_config_parse(config_cases[_i].yaml, strlen(config_cases[_i].yaml), "t.yaml", &c, err);

    if (config_cases[_i].want == NULL)
        ck_assert_msg(rc == 0, "%s: %s", config_cases[_i].yaml, err);
    else
        ck_assert_msg(rc < 0 && strstr(err, config_cases[_i].want) != NULL, "%s: got \"%s\"",
                      config_cases[_i].yaml, err);
    tg_config_unref(c);
}
END_TEST

START_TEST(test_http_config_defaults)
{
    static const char yaml[] = CID CIN("    protocol: http\n");
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(tg_config_parse(yaml, strlen(yaml), "t.yaml", &c, err) == 0, "%s", err);
    ck_assert(c->inbound[0].http);
    ck_assert(c->inbound[0].http_cfg.xfcc);
    ck_assert(!c->inbound[0].http_cfg.client_cert);
    ck_assert_uint_eq(c->inbound[0].http_cfg.max_head, 65536);
    ck_assert_uint_eq(c->inbound[0].http_cfg.max_fields, 100);
    tg_config_unref(c);
}
END_TEST

/* The per-request bucket of a rate-limit key (requests_per_second, requests_burst). */
START_TEST(test_http_request_bucket)
{
    struct tg_ratelimit_limits l = {.requests = {.rate = 2, .burst = 3}};
    struct tg_ratelimit *t = NULL;
    struct tg_ratelimit_key *k = NULL;
    uint64_t now = 1000000000ull, retry = 0;

    ck_assert_int_eq(tg_ratelimit_new(&l, 16, &t), 0);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, "id", 2, now, &k, &retry), TG_RATELIMIT_ADMIT);
    for (int i = 0; i < 3; i++)
        ck_assert(tg_ratelimit_request_take(t, k, now, &retry));
    ck_assert(!tg_ratelimit_request_take(t, k, now, &retry));
    ck_assert_uint_gt(retry, 0);
    ck_assert_uint_le(retry, 500000000ull);
    ck_assert(tg_ratelimit_request_take(t, k, now + 500000000ull, &retry));
    tg_ratelimit_conn_release(t, k, now);
    tg_ratelimit_unref(t);
}
END_TEST

/* Rules with HTTP conditions: per request only; a connection never matches them. */
START_TEST(test_http_policy_conditions)
{
    static const char *const get[] = {"GET"}, *const api[] = {"/api/*", "/health"},
                             *const host[] = {"Web.Local"}, *const del[] = {"DELETE"},
                             *const ns[] = {"default"};
    struct tg_policy_rule rules[2];
    struct tg_policy_input in;
    struct tg_policy *p = NULL;
    struct tg_policy_peer peer;
    struct tg_spiffe_id id;
    struct tg_policy_verdict v;
    char err[TG_ERRLEN];
    struct tg_policy_request rq = {"GET", 3, "/api/x?y", 8, "web.local:8080", 14};

    memset(rules, 0, sizeof(rules));
    memset(&in, 0, sizeof(in));
    rules[0] = (struct tg_policy_rule){.name = "reads",
                                       .action = TG_POLICY_ALLOW,
                                       .namespaces = {ns, 1},
                                       .methods = {get, 1},
                                       .paths = {api, 2},
                                       .hosts = {host, 1}};
    rules[1] =
        (struct tg_policy_rule){.name = "no-delete", .action = TG_POLICY_DENY, .methods = {del, 1}};
    in.rules = rules;
    in.n_rules = 2;
    ck_assert_msg(tg_policy_compile(&in, &p, err) == 0, "%s", err);
    ck_assert_int_eq(tg_spiffe_parse("spiffe://td/ns/default/sa/a", &id, err), 0);
    ck_assert_int_eq(tg_policy_peer_init(&peer, &id, NULL, NULL, err), 0);
    tg_policy_decide_request(p, &peer, 80, &rq, &v);
    ck_assert_msg(v.allow && v.outcome == TG_POLICY_ALLOWED, "%s", v.reason);
    rq.target = "/apix";
    rq.target_len = 5;
    tg_policy_decide_request(p, &peer, 80, &rq, &v);
    ck_assert(!v.allow && v.outcome == TG_POLICY_NO_MATCH);
    rq.target = "/health";
    rq.target_len = 7;
    rq.host = "other";
    rq.host_len = 5;
    tg_policy_decide_request(p, &peer, 80, &rq, &v);
    ck_assert(!v.allow);
    rq.host = "web.local";
    rq.host_len = 9;
    rq.method = "DELETE";
    rq.method_len = 6;
    tg_policy_decide_request(p, &peer, 80, &rq, &v);
    ck_assert(!v.allow && v.outcome == TG_POLICY_DENIED);
    /* a connection: neither rule can match (no request); the ALLOW rule applies, none
     * matched */
    tg_policy_decide(p, &peer, 80, &v);
    ck_assert(!v.allow && v.outcome == TG_POLICY_NO_MATCH);
    tg_policy_free(p);
    /* bad values are refused with the rule and field */
    static const char *const badpath[] = {"api"}, *const badm[] = {"G T"};
    rules[0].paths = (struct tg_policy_strs){badpath, 1};
    ck_assert_int_lt(tg_policy_compile(&in, &p, err), 0);
    ck_assert_ptr_nonnull(strstr(err, "rule \"reads\": paths[0] \"api\": not a path"));
    rules[0].paths = (struct tg_policy_strs){api, 2};
    rules[1].methods = (struct tg_policy_strs){badm, 1};
    ck_assert_int_lt(tg_policy_compile(&in, &p, err), 0);
    ck_assert_ptr_nonnull(strstr(err, "methods[0]"));
}
END_TEST

/* tg_http_path_normalize: the corpus, RFC 3986 5.4's examples that are paths, and
 * ours. out NULL: refused, with why in the message. */
static const struct {
    const char *in, *out, *why;
} path_cases[] = {
    /* the corpus */
    {"/public/../secret.txt", "/secret.txt", NULL},
    {"/public/%2e%2e/secret.txt", "/secret.txt", NULL},
    {"//admin/x", "/admin/x", NULL},
    {"/%61dmin/x", "/admin/x", NULL},
    {"/./admin/x", "/admin/x", NULL},
    /* dot segments, plain and encoded, any case */
    {"/public/%2E%2E/secret.txt", "/secret.txt", NULL},
    {"/public/.%2e/secret.txt", "/secret.txt", NULL},
    {"/public/%2E./secret.txt", "/secret.txt", NULL},
    {"/%2e/admin/x", "/admin/x", NULL},
    {"/a/b/c/./../../g", "/a/g", NULL}, /* RFC 3986 5.2.4 */
    {"/mid/content=5/../6", "/mid/6", NULL},
    {"/a/b/c/.", "/a/b/c/", NULL},
    {"/a/b/c/..", "/a/b/", NULL},
    {"/a/.", "/a/", NULL},
    {"/a/..", "/", NULL},
    {"/.", "/", NULL},
    {"/./", "/", NULL},
    {"/a/./b/./", "/a/b/", NULL},
    {"/a/b/../../c", "/c", NULL},
    {"/...", "/...", NULL}, /* not a dot segment */
    {"/..a/b..", "/..a/b..", NULL},
    {"/.%2E.", "/...", NULL},
    {"/a/.b", "/a/.b", NULL},
    /* slashes merge, before the dots are removed */
    {"/", "/", NULL},
    {"//", "/", NULL},
    {"///a//b///", "/a/b/", NULL},
    {"/a//../b", "/b", NULL},
    {"/public//../secret.txt", "/secret.txt", NULL},
    /* escapes: unreserved decoded, once; others upper-cased */
    {"/%41%7a%30%2D%2e%5F%7E", "/Az0-._~", NULL},
    {"/ad%6din/x", "/admin/x", NULL},
    {"/ad%6Din/x", "/admin/x", NULL},
    {"/%2561dmin/x", "/%2561dmin/x", NULL}, /* %25 is '%': never decoded twice */
    {"/%25", "/%25", NULL},
    {"/%2e%2e%2561dmin", "/..%2561dmin", NULL},
    {"/caf%c3%a9", "/caf%C3%A9", NULL},
    {"/%e2%82%AC", "/%E2%82%AC", NULL},
    {"/a%20b", "/a%20b", NULL},
    {"/a%3fb%23c", "/a%3Fb%23c", NULL}, /* an encoded ? or # is data */
    {"/a;b=c/d:e@f!$&'()*+,=", "/a;b=c/d:e@f!$&'()*+,=", NULL},
    /* refused */
    {"/..", NULL, "climbs above the root"},
    {"/../a", NULL, "climbs above the root"},
    {"/a/../..", NULL, "climbs above the root"},
    {"/public/%2e%2e/%2e%2e/etc/passwd", NULL, "climbs above the root"},
    {"/a//../../b", NULL, "climbs above the root"},
    {"/%2e%2e", NULL, "climbs above the root"},
    {"/admin%2fx", NULL, "encoded slash (%2F)"},
    {"/admin%2Fx", NULL, "encoded slash (%2F)"},
    {"/public/..%2fsecret.txt", NULL, "encoded slash"},
    {"/admin%5cx", NULL, "encoded backslash (%5C)"},
    {"/admin\\x", NULL, "backslash in the path"},
    {"/\\admin", NULL, "backslash"},
    {"/admin#x", NULL, "fragment"},
    {"/a?b", NULL, "'?'"},
    {"/a%00", NULL, "encoded control byte (%00)"},
    {"/a%0d%0a", NULL, "encoded control byte (%0D)"},
    {"/a%7f", NULL, "encoded control byte (%7F)"},
    {"/a%1F", NULL, "encoded control byte (%1F)"},
    {"/a%", NULL, "malformed percent-escape"},
    {"/a%4", NULL, "malformed percent-escape"},
    {"/a%zz", NULL, "malformed percent-escape"},
    {"/a%%41", NULL, "malformed percent-escape"},
    {"/a b", NULL, "space"},
    {"/a\tb", NULL, "control byte"},
    {"/a\x80", NULL, "non-ASCII"},
    {"/a\x7f", NULL, "control byte"},
    {"a/b", NULL, "does not start with '/'"},
    {"", NULL, "does not start with '/'"},
};

static void check_path_case(int i)
{
    const char *in = path_cases[i].in, *want = path_cases[i].out;
    char out[256], again[256], err[TG_ERRLEN] = "";
    size_t n = 0, m = 0;
    int rc = tg_http_path_normalize(in, strlen(in), out, sizeof(out), &n, err);

    if (want == NULL) {
        ck_assert_msg(rc == TG_EINVAL, "%s: accepted as %.*s", in, (int)n, out);
        ck_assert_msg(strstr(err, path_cases[i].why) != NULL, "%s: %s", in, err);
        return;
    }
    ck_assert_msg(rc == 0, "%s: %s", in, err);
    ck_assert_msg(n == strlen(want) && memcmp(out, want, n) == 0, "%s: got %.*s, want %s", in,
                  (int)n, out, want);
    ck_assert_uint_le(n, strlen(in));
    /* idempotent */
    ck_assert_int_eq(tg_http_path_normalize(out, n, again, sizeof(again), &m, err), 0);
    ck_assert_msg(m == n && memcmp(again, out, n) == 0, "%s: not idempotent", in);
    /* in place of exactly the input's size: never more */
    ck_assert_int_eq(tg_http_path_normalize(in, strlen(in), out, strlen(in), &n, err), 0);
}

UT_TABLE_TEST(test_http_path_normalize_table, path_cases, check_path_case)

/* tg_http_target_normalize on whole heads: the target the rules see and the app gets. */
static const struct {
    const char *head;
    int status;       /* 0: accepted */
    const char *path; /* accepted: req.path; refused: part of the reason */
} target_cases[] = {
    {"GET /a/./b/../c?x=/../%2f&y HTTP/1.1\r\nHost: a\r\n\r\n", 0, "/a/c?x=/../%2f&y"},
    {"GET /?%zz HTTP/1.1\r\nHost: a\r\n\r\n", 0, "/?%zz"}, /* the query as it is */
    {"GET //?q HTTP/1.1\r\nHost: a\r\n\r\n", 0, "/?q"},
    {"GET /%2e%2e?q HTTP/1.1\r\nHost: a\r\n\r\n", 400, "above the root"},
    {"GET /a%2fb?q HTTP/1.1\r\nHost: a\r\n\r\n", 400, "encoded slash"},
    {"GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "backslash"},
    /* absolute-form: by its path, in origin-form; its authority must be Host's */
    {"GET http://web.local/admin/x HTTP/1.1\r\nHost: web.local\r\n\r\n", 0, "/admin/x"},
    {"GET http://web.local//%61dmin/./x HTTP/1.1\r\nHost: web.local\r\n\r\n", 0, "/admin/x"},
    {"GET HTTP://WEB.local HTTP/1.1\r\nHost: web.LOCAL\r\n\r\n", 0, "/"},
    {"GET http://web.local?q=1 HTTP/1.1\r\nHost: web.local\r\n\r\n", 0, "/?q=1"},
    {"GET http://web.local:80/x HTTP/1.1\r\nHost: web.local\r\n\r\n", 0, "/x"},
    {"GET http://web.local/x HTTP/1.1\r\nHost: web.local:80\r\n\r\n", 0, "/x"},
    {"GET http://web.local:/x HTTP/1.1\r\nHost: web.local\r\n\r\n", 0, "/x"},
    {"GET https://web.local/x HTTP/1.1\r\nHost: web.local:443\r\n\r\n", 0, "/x"},
    {"GET http://[::1]:8080/x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0, "/x"},
    {"GET http://[::1]/x HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 0, "/x"},
    {"GET https://web.local/x HTTP/1.1\r\nHost: web.local:80\r\n\r\n", 400, "differs from"},
    {"GET http://web.local:8080/x HTTP/1.1\r\nHost: web.local\r\n\r\n", 400, "differs from"},
    {"GET http://other/x HTTP/1.1\r\nHost: web.local\r\n\r\n", 400, "differs from"},
    {"GET http://web.local.evil/x HTTP/1.1\r\nHost: web.local\r\n\r\n", 400, "differs from"},
    {"GET http://[::1]/x HTTP/1.1\r\nHost: [::2]\r\n\r\n", 400, "differs from"},
    {"GET http://user@web.local/x HTTP/1.1\r\nHost: web.local\r\n\r\n", 400, "user info"},
    {"GET http:///x HTTP/1.1\r\nHost: web.local\r\n\r\n", 400, "no host"},
    {"GET http://web.local/x HTTP/1.0\r\n\r\n", 400, "without a Host"},
    {"GET http://web.local/../x HTTP/1.1\r\nHost: web.local\r\n\r\n", 400, "above the root"},
    {"GET http://web.local\\x/ HTTP/1.1\r\nHost: web.local\r\n\r\n", 400, "backslash"},
    /* as they are: CONNECT's authority, OPTIONS * */
    {"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 0, "a:443"},
    {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, "*"},
};

static void check_target_case(int i)
{
    const char *head = target_cases[i].head;
    struct tg_http_field fields[16];
    struct tg_http_request req;
    char err[TG_ERRLEN] = "", path[256];
    size_t scanned = 0;
    int status = -1;

    ck_assert_msg(
        tg_http_parse_request(head, strlen(head), &lim, fields, &scanned, &req, &status, err) > 0,
        "%s: %s", head, err);
    ck_assert_ptr_null(req.path);
    if (target_cases[i].status != 0) {
        ck_assert_int_eq(tg_http_target_normalize(&req, path, sizeof(path), &status, err),
                         TG_EINVAL);
        ck_assert_int_eq(status, target_cases[i].status);
        ck_assert_msg(strstr(err, target_cases[i].path) != NULL, "%s: %s", head, err);
        ck_assert_ptr_null(req.path);
        return;
    }
    ck_assert_msg(tg_http_target_normalize(&req, path, req.target_len + 1, &status, err) == 0,
                  "%s: %s", head, err);
    ck_assert_msg(req.path_len == strlen(target_cases[i].path) &&
                      memcmp(req.path, target_cases[i].path, req.path_len) == 0,
                  "%s: got %.*s", head, (int)req.path_len, req.path);
}

UT_TABLE_TEST(test_http_target_normalize_table, target_cases, check_target_case)

/* The parser names a fragment; the request line keeps refusing control bytes and spaces. */
START_TEST(test_http_fragment_refused_by_the_parser)
{
    static const char in[] = "GET /admin#x HTTP/1.1\r\nHost: a\r\n\r\n";
    struct tg_http_field fields[16];
    struct tg_http_request req;
    char err[TG_ERRLEN] = "";
    size_t scanned = 0;
    int status = 0;

    ck_assert_int_eq(
        tg_http_parse_request(in, sizeof(in) - 1, &lim, fields, &scanned, &req, &status, err),
        TG_EINVAL);
    ck_assert_int_eq(status, 400);
    ck_assert_str_eq(err, "fragment (#) in the request target");
}
END_TEST

/* A rule's path must be in the normal form requests are matched in; the error says which. */
static const struct {
    const char *path, *why; /* why NULL: accepted */
} rule_path_cases[] = {
    {"/admin/*", NULL},
    {"/admin*", NULL},
    {"/*", NULL},
    {"/", NULL},
    {"/a/.*", NULL}, /* a prefix of "/a/.well-known", not a "." segment */
    {"/a/..*", NULL},
    {"/caf%C3%A9", NULL},
    {"/%2561", NULL},
    {"/a/../b", "write \"/b\""},
    {"//admin/*", "write \"/admin/*\""},
    {"/./admin/*", "write \"/admin/*\""},
    {"/%61dmin/*", "write \"/admin/*\""},
    {"/caf%c3%a9", "write \"/caf%C3%A9\""},
    {"/a/.", "write \"/a/\""},
    {"/admin%2F*", "encoded slash"},
    {"/a\\b", "backslash"},
    {"/../*", "above the root"},
    {"/a%2*", "malformed percent-escape"},
};

static void check_rule_path_case(int i)
{
    const char *const paths[] = {rule_path_cases[i].path};
    struct tg_policy_rule rule = {.name = "r", .action = TG_POLICY_DENY, .paths = {paths, 1}};
    struct tg_policy_input in = {.rules = &rule, .n_rules = 1};
    struct tg_policy *p = NULL;
    char err[TG_ERRLEN] = "";
    int rc = tg_policy_compile(&in, &p, err);

    if (rule_path_cases[i].why == NULL) {
        ck_assert_msg(rc == 0, "%s: %s", paths[0], err);
        tg_policy_free(p);
        return;
    }
    ck_assert_int_eq(rc, TG_EINVAL);
    ck_assert_msg(strstr(err, "rule \"r\": paths[0]") != NULL &&
                      strstr(err, rule_path_cases[i].why) != NULL,
                  "%s: %s", paths[0], err);
}

UT_TABLE_TEST(test_http_rule_paths_normal_form, rule_path_cases, check_rule_path_case)

/* Every byte in a header name and in a value, against RFC 9110's definitions. */
START_TEST(test_http_byte_classes)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    for (int c = 0; c < 256; c++) {
        char in[64];
        int n, status;
        size_t rest;
        bool tok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   (c != 0 && strchr(extra, c) != NULL);
        bool val = c == '\t' || c == ' ' || (c > 0x20 && c != 0x7f);

        n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: a\r\nX%c: v\r\n\r\n", 'x');
        in[26] = (char)c; /* the byte after "X" (a ':' just ends the name) */
        ck_assert_msg(c == ':' || (run_stream(in, (size_t)n, &status, &rest, NULL) == 1) == tok,
                      "name byte 0x%02x", c);
        n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: a\r\nX: a%cb\r\n\r\n", 'x');
        in[29] = (char)c;
        if (c == '\r' || c == '\n')
            continue; /* line ends: bare CR / LF, in the table above */
        ck_assert_msg((run_stream(in, (size_t)n, &status, &rest, NULL) == 1) == val,
                      "value byte 0x%02x", c);
    }
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE(
        "http", "http", &tc, test_http_nul_in_value, test_http_limits, test_http_request_fields,
        test_http_incremental_head, test_http_chunked_split, test_http_rewrite_strips_and_adds,
        test_http_local_response, test_http_config_defaults, test_http_request_bucket,
        test_http_policy_conditions, test_http_byte_classes, test_http_path_normalize_table,
        test_http_target_normalize_table, test_http_fragment_refused_by_the_parser,
        test_http_rule_paths_normal_form);

    tcase_add_loop_test(tc, test_http_stream_table, 0,
                        (int)(sizeof(stream_cases) / sizeof(stream_cases[0])));
    tcase_add_loop_test(tc, test_http_keep_alive_table, 0,
                        (int)(sizeof(keepalive_cases) / sizeof(keepalive_cases[0])));
    tcase_add_loop_test(tc, test_http_response_table, 0,
                        (int)(sizeof(resp_cases) / sizeof(resp_cases[0])));
    tcase_add_loop_test(tc, test_http_config_table, 0,
                        (int)(sizeof(config_cases) / sizeof(config_cases[0])));
    return s;
}

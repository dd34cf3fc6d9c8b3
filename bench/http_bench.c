/* ns per request of what protocol: http adds on the inbound side, without any I/O: parsing the
 * request head (wrk's request), rewriting it with x-forwarded-client-cert (and with
 * Client-Cert), and following the response (nginx's 64-byte reply) for its framing. The
 * best of several rounds counts, to damp the noise of a shared machine. Compare with the
 * inbound sidecar's whole CPU per request (bench/http.sh prints it, about 8-11 us here). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tollgate/http.h"

#define ROUNDS 7
#define ITERS 200000

static const char request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1:28602\r\n\r\n";
static const char response[] = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"
                               "Date: Sat, 28 Nov 2026 18:00:00 GMT\r\n"
                               "Content-Type: text/plain\r\nContent-Length: 64\r\n"
                               "Connection: keep-alive\r\n\r\n"
                               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(void)
{
    static const struct tg_http_limits lim = {65536, 16384, 100};
    static const struct tg_http_limits resp_lim = {1 << 20, 1 << 20, 10000};
    static const unsigned char der[600] = {0x30};
    struct tg_http_caller who = {
        .our_id = "spiffe://bench.local/ns/default/sa/server",
        .peer_id = "spiffe://bench.local/ns/default/sa/client",
        .sha256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        .der = der,
        .der_len = sizeof(der),
        .xfcc = true,
    };
    static struct tg_http_field fields[100];
    static char out[8192], path[1024];
    const char *what[] = {"parse + rewrite (xfcc) + response", "the same with Client-Cert too",
                          "parse + response, no header added"};
    static char lines[2048];
    volatile size_t sink = 0;

    for (int mode = 0; mode < 3; mode++) {
        double best = 1e18;

        who.client_cert = mode == 1;
        who.xfcc = mode != 2;
        who.lines = NULL; /* rendered once per connection, as the data path does */
        who.lines_len = tg_http_caller_lines(&who, lines, sizeof(lines));
        who.lines = who.lines_len > 0 ? lines : NULL;
        for (int r = 0; r < ROUNDS; r++) {
            double t0 = now_ns();

            for (int i = 0; i < ITERS; i++) {
                struct tg_http_request req;
                struct tg_http_response resp;
                char err[TG_ERRLEN];
                size_t scanned = 0, used;
                int status;

                if (tg_http_parse_request(request, sizeof(request) - 1, &lim, fields, &scanned,
                                          &req, &status, err) <= 0 ||
                    tg_http_target_normalize(&req, path, sizeof(path), &status, err) < 0)
                    return 1;
                sink += tg_http_rewrite(&req, &who, out, sizeof(out));
                tg_http_response_init(&resp, &resp_lim, false, false, false);
                if (tg_http_response_feed(&resp, response, sizeof(response) - 1, &used, err) !=
                    TG_HTTP_RESP_DONE)
                    return 1;
                sink += used;
            }
            double ns = (now_ns() - t0) / ITERS;
            if (ns < best)
                best = ns;
        }
        printf("%-36s %6.0f ns per request\n", what[mode], best);
    }
    return sink == 0;
}

/* protocol: http end to end: curl (and raw sockets) -> sidecar A (outbound, api) ==mTLS==>
 * sidecar B (inbound, protocol: http, web) -> python http.server echoing what it got.
 * Keep-alive and pipelined requests each get our headers and never the caller's copies; a
 * smuggling corpus is refused with 400 and a close while the app sees nothing of it; HTTP
 * rule conditions answer 403, requests_per_second 429 with Retry-After (counted by caller in
 * /stats); an Upgrade becomes a byte pipe; one access-log line per request. */

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int app_port, in_port, out_port, a_admin, b_admin;
static const char *b_mode = "strict"; /* B's inbound mode */

#define XFCC_PREFIX "x-forwarded-client-cert: By=" IT_WEB_ID ";Hash="
#define XFCC_URI ";URI=" IT_API_ID

/* Echoes the request line, the headers and the body back as the response body; logs each
 * request line to app.log; an Upgrade gets 101 and then every byte echoed. */
/* The app: logs each request line to app.log and answers with the request it got. */
static const char app_methods[] =
    "    def any(self):\n"
    "        with open('app.log', 'a') as f: f.write(self.requestline + '\\n')\n"
    "        n = int(self.headers.get('Content-Length') or 0)\n"
    "        body = self.rfile.read(n) if n else b''\n"
    "        if self.headers.get('Upgrade'):\n"
    "            self.send_response(101)\n"
    "            self.send_header('Upgrade', self.headers['Upgrade'])\n"
    "            self.send_header('Connection', 'Upgrade')\n"
    "            self.end_headers(); self.wfile.flush()\n"
    "            while True:\n"
    "                d = self.rfile.read1(4096)\n"
    "                if not d: break\n"
    "                self.wfile.write(d); self.wfile.flush()\n"
    "            self.close_connection = True\n"
    "            return\n"
    "        self.reply((self.requestline + '\\n' + str(self.headers)).encode('latin-1') + body)\n"
    "    do_GET = do_POST = do_PUT = do_DELETE = any\n";

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    IT_FREE_PORTS(&app_port, &in_port, &out_port, &a_admin, &b_admin);
}

/* B's config: protocol: http with http_opts; extra: more YAML at the top level. */
static void write_b(const char *http_opts, const char *extra, const char *mode)
{
    struct it_cfg b = it_cfg_of(b_admin, "web", 1, "handshake: 2s, drain: 1s");
    char more[256];

    snprintf(more, sizeof(more), "protocol: http, mode: %s, http: {%s}", mode, http_opts);
    b.in[0] = (struct it_listener){"web-in", in_port, app_port, .more = more};
    it_cfg_write("b.yaml", &b, "%s", extra);
}

/* The app, B (protocol: http; extra: more YAML at the top level) and A. */
static void start_all(const char *http_opts, const char *extra)
{
    struct it_cfg a = it_cfg_of(a_admin, "api", 1, "drain: 1s");

    a.out[0] = (struct it_listener){"api-out", out_port, in_port, IT_WEB_ID, NULL};
    it_http_app_start("app", app_port, app_methods);
    write_b(http_opts, extra, b_mode);
    it_sidecar_start("b", "b.yaml", b_admin, 0);
    it_cfg_write("a.yaml", &a, NULL);
    it_sidecar_start("a", "a.yaml", a_admin, 0);
}

/* Sends req through A on a new connection, half-closes when shut, and returns everything
 * read until EOF or 5 s of silence (malloc'd). */
static char *exchange(const char *req, size_t len, bool shut)
{
    int fd = it_connect(out_port, 5000);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);

    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, req, len));
    if (shut)
        shutdown(fd, SHUT_WR);
    n = it_recv_full(fd, buf, cap);
    buf[n] = '\0';
    close(fd);
    return buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static char *curl(const char *args)
{
    char cmd[2048], *out = NULL;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};

    snprintf(cmd, sizeof(cmd), "curl -sS --max-time 10 %s", args);
    ck_assert_msg(it_run(argv, NULL, 15000, &out, NULL) == 0, "curl %s: %s", args,
                  out != NULL ? out : "");
    return out;
}

START_TEST(test_keepalive_pipelined_headers_and_upgrade)
{
    char args[1024], *out, *app;
    static const char pipelined[] =
        "GET /p1 HTTP/1.1\r\nHost: x\r\nX-Forwarded-Client-Cert: By=evil;URI=spiffe://evil\r\n\r\n"
        "POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nclient-cert: :ZXZpbA==:\r\n\r\nhello"
        "GET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    static const char upgrade[] = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                                  "Upgrade: echo\r\n\r\n";
    static const char raw[] = "not http at all\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n";
    char buf[4096] = "";
    size_t n;
    int fd;

    start_all("xfcc: true, client_cert_header: true", "");
    /* curl, two requests on one keep-alive connection, with spoofed headers */
    snprintf(args, sizeof(args),
             "-H 'X-Forwarded-Client-Cert: By=evil;URI=spiffe://mesh.local/ns/x/sa/admin' "
             "-H 'Client-Cert: :ZXZpbA==:' -H 'client-cert-chain: :ZXZpbA==:' "
             "http://127.0.0.1:%d/one http://127.0.0.1:%d/two",
             out_port, out_port);
    out = curl(args);
    ck_assert_msg(count(out, XFCC_PREFIX) == 2 && count(out, XFCC_URI) == 2, "%s", out);
    ck_assert_msg(count(out, "\nclient-cert: :MII") == 2, "no Client-Cert of ours: %s", out);
    ck_assert_msg(strstr(out, "evil") == NULL && strstr(out, "ZXZpbA") == NULL &&
                      strstr(out, "client-cert-chain") == NULL,
                  "a spoofed header reached the app: %s", out);
    /* Hash= is the SHA-256 of the caller's certificate */
    {
        const char *argv[] = {it_env("TG_CERTS_BIN"), "show", "api.pem", NULL};
        char *show = NULL, sha[80], want[100];

        ck_assert_int_eq(it_run(argv, NULL, 10000, &show, NULL), 0);
        ck_assert_int_eq(sscanf(strstr(show, "sha256="), "sha256=%64s", sha), 1);
        snprintf(want, sizeof(want), ";Hash=%s;", sha);
        ck_assert_msg(count(out, want) == 2, "want %s in %s", want, out);
        free(show);
    }
    free(out);
    /* Expect: 100-continue: the app's 100 passes, then its 200 */
    it_write_file("body.txt", "%s", "0123456789abcdef");
    snprintf(args, sizeof(args),
             "-H 'Expect: 100-continue' --data-binary @body.txt http://127.0.0.1:%d/expect",
             out_port);
    out = curl(args);
    ck_assert_msg(strstr(out, "POST /expect") != NULL && strstr(out, "0123456789abcdef") != NULL,
                  "%s", out);
    free(out);
    /* three pipelined requests in one write: each gets the headers, in order */
    out = exchange(pipelined, sizeof(pipelined) - 1, false);
    ck_assert_msg(count(out, "HTTP/1.1 200") == 3, "%s", out);
    ck_assert_msg(count(out, XFCC_PREFIX) == 3 && strstr(out, "evil") == NULL, "%s", out);
    ck_assert_msg(strstr(out, "GET /p1") < strstr(out, "POST /p2") &&
                      strstr(out, "POST /p2") < strstr(out, "GET /p3") &&
                      strstr(out, "hello") != NULL,
                  "%s", out);
    free(out);
    /* Upgrade: after the 101 the bytes are a pipe, not requests */
    fd = it_connect(out_port, 5000);
    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, upgrade, sizeof(upgrade) - 1));
    n = 0;
    for (int i = 0; i < 50 && strstr(buf, "\r\n\r\n") == NULL; i++) {
        ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);

        ck_assert_int_gt(r, 0);
        n += (size_t)r;
        buf[n] = '\0';
    }
    ck_assert_msg(strncmp(buf, "HTTP/1.1 101", 12) == 0, "%s", buf);
    ck_assert(it_send_all(fd, raw, sizeof(raw) - 1));
    shutdown(fd, SHUT_WR);
    n = it_recv_full(fd, buf, sizeof(raw) - 1);
    buf[n] = '\0';
    ck_assert_msg(n == sizeof(raw) - 1 && memcmp(buf, raw, n) == 0, "echo after 101: %s", buf);
    close(fd);
    /* the app saw exactly these requests */
    ck_assert(it_wait_file_contains("app.log", "GET /ws", 5000));
    app = it_read_file("app.log", NULL);
    ck_assert_str_eq(app, "GET /one HTTP/1.1\nGET /two HTTP/1.1\nPOST /expect HTTP/1.1\n"
                          "GET /p1 HTTP/1.1\n"
                          "POST /p2 HTTP/1.1\nGET /p3 HTTP/1.1\nGET /ws HTTP/1.1\n");
    free(app);
    /* one access-log line per request, with method, path and status */
    ck_assert_int_eq(it_wait_lines("b.out", 7, 5000, "\"method\":", NULL), 7);
    ck_assert_int_eq(
        it_count_lines("b.out", "\"method\":\"POST\"", "\"path\":\"/p2\"", "\"status\":200", NULL),
        1);
    ck_assert_int_eq(it_count_lines("b.out", "\"path\":\"/ws\"", "\"status\":101", NULL), 1);
    ck_assert_double_eq(it_stat(b_admin, "tollgate_http_requests_total", ""), 7);
}
END_TEST

static const struct {
    const char *name;
    const char *req;
} smuggling[] = {
    {"CL.TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 39\r\nTransfer-Encoding: "
              "chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"},
    {"TE.CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
              "4\r\n\r\n22\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n"},
    {"duplicate CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: "
                     "37\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"},
    {"TE obfuscated", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"},
    {"TE not last", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n"},
    {"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "0x5\r\nhello\r\n0\r\n\r\n"},
    {"bare LF", "GET /smuggled HTTP/1.1\nHost: x\n\n"},
    {"obs-fold", "GET /smuggled HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"},
};

START_TEST(test_smuggling_corpus_refused)
{
    char *out, *app;
    /* a good request first: the 400 comes after its response, then the close */
    static const char good_then_bad[] = "GET /good HTTP/1.1\r\nHost: x\r\n\r\n"
                                        "GET /bad HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"
                                        "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

    start_all("", "");
    for (size_t i = 0; i < sizeof(smuggling) / sizeof(smuggling[0]); i++) {
        out = exchange(smuggling[i].req, strlen(smuggling[i].req), false);
        /* 400, a close (exchange read to EOF), and for the chunked ones whose body is bad the
         * connection is reset: either way nothing reaches the app */
        ck_assert_msg(strncmp(out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0 ||
                          (strcmp(smuggling[i].name, "bad chunk size") == 0 && out[0] == '\0'),
                      "%s: %s", smuggling[i].name, out);
        ck_assert_msg(count(out, "HTTP/1.1") <= 1, "%s: %s", smuggling[i].name, out);
        free(out);
    }
    out = exchange(good_then_bad, sizeof(good_then_bad) - 1, false);
    ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0 && count(out, "HTTP/1.1 400") == 1 &&
                      count(out, "HTTP/1.1 200") == 1 &&
                      strstr(out, "HTTP/1.1 200") < strstr(out, "HTTP/1.1 400"),
                  "%s", out);
    free(out);
    app = it_read_file("app.log", NULL);
    ck_assert_msg(app != NULL && strstr(app, "/smuggled") == NULL && strstr(app, "/bad") == NULL,
                  "the app saw: %s", app != NULL ? app : "(nothing)");
    free(app);
    ck_assert_int_ge(it_stat(b_admin, "tollgate_http_bad_requests_total", ""), 8);
    ck_assert_int_ge(it_count_lines("b.out", "\"status\":400", NULL), 7);
}
END_TEST

START_TEST(test_rules_403_and_rate_limit_429)
{
    char args[512], *out, *app;
    static const char pipelined[] =
        "GET /d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        "GET /e HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        "GET /f HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

    start_all("", "authorization:\n"
                  "  rules:\n"
                  "    - {name: no-admin, action: deny, paths: [\"/admin*\"]}\n"
                  "    - {name: reads, action: allow, methods: [GET], hosts: [\"127.0.0.1\"]}\n"
                  "rate_limits:\n"
                  "  default: {requests_per_second: 1, requests_burst: 1}\n");
    /* the deny rule: 403 from the sidecar, the app never sees it; a POST is not allowed */
    snprintf(args, sizeof(args),
             "-o /dev/null -o /dev/null -w '%%{http_code}\\n' http://127.0.0.1:%d/admin/x "
             "-X POST http://127.0.0.1:%d/ok",
             out_port, out_port);
    out = curl(args);
    ck_assert_msg(strcmp(out, "403\n403\n") == 0, "%s", out);
    free(out);
    /* three more on one connection: the bucket (1 deep; refusals by rule take no token) lets
     * one through */
    snprintf(
        args, sizeof(args),
        "-D - -o /dev/null -o /dev/null -o /dev/null http://127.0.0.1:%d/a http://127.0.0.1:%d/b "
        "http://127.0.0.1:%d/c",
        out_port, out_port, out_port);
    out = curl(args);
    ck_assert_msg(count(out, "HTTP/1.1 200") == 1 && count(out, "HTTP/1.1 429") == 2 &&
                      strstr(out, "retry-after: 1") != NULL,
                  "%s", out);
    free(out);
    /* pipelined, a token later: the first goes to the app, the 429s wait for its response */
    it_sleep_ms(1100);
    out = exchange(pipelined, sizeof(pipelined) - 1, false);
    ck_assert_msg(count(out, "HTTP/1.1 200") == 1 && count(out, "HTTP/1.1 429") == 2 &&
                      strstr(out, "HTTP/1.1 200") < strstr(out, "HTTP/1.1 429") &&
                      strstr(out, "GET /d HTTP/1.1") != NULL,
                  "%s", out);
    free(out);
    app = it_read_file("app.log", NULL);
    ck_assert_msg(app != NULL && strcmp(app, "GET /a HTTP/1.1\nGET /d HTTP/1.1\n") == 0,
                  "the app saw: %s", app != NULL ? app : "(nothing)");
    free(app);
    ck_assert_double_eq(it_stat(b_admin, "tollgate_http_denied_total", ""), 2);
    ck_assert_double_eq(it_stat(b_admin, "tollgate_http_rate_limited_total", ""), 4);
    ck_assert_double_eq(
        it_stat(b_admin, "tollgate_http_rate_limited_by_id_total", "id=\"" IT_API_ID "\""), 4);
    ck_assert_int_eq(it_count_lines("b.out", "\"status\":429", "\"outcome\":\"refused\"", NULL), 4);
}
END_TEST

/* One whole response (head and Content-Length body) from fd into buf. */
static void recv_response(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    char *end = NULL, *cl;

    buf[0] = '\0';
    for (int i = 0; i < 100; i++) {
        ssize_t r;

        if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            cl = strcasestr(buf, "content-length:");
            ck_assert_ptr_nonnull(cl);
            end += 4 + atoi(cl + 15);
        }
        if (end != NULL && buf + n >= end)
            return;
        r = recv(fd, buf + n, cap - 1 - n, 0);
        ck_assert_msg(r > 0, "connection ended after: %s", buf);
        n += (size_t)r;
        buf[n] = '\0';
    }
    ck_abort_msg("no whole response: %s", buf);
}

/* A reload's rules apply from the next request of a connection already open. */
START_TEST(test_reload_applies_to_the_next_request)
{
    static const char req[] = "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    char buf[4096];
    int fd;

    start_all("", "");
    fd = it_connect(out_port, 5000);
    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, req, sizeof(req) - 1));
    recv_response(fd, buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
    write_b("",
            "authorization:\n"
            "  rules:\n"
            "    - {name: no-x, action: deny, paths: [/x]}\n",
            b_mode);
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_generation", "", 2, 5000) >= 2,
                  "B did not reload");
    ck_assert(it_send_all(fd, req, sizeof(req) - 1));
    recv_response(fd, buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 403", 12) == 0, "%s", buf);
    close(fd);
}
END_TEST

/* A permissive port's plain-text caller: parsed the same, no identity to forward, and its
 * copies of our headers still removed; an mTLS caller of the same port gets them. */
START_TEST(test_permissive_plain_text_caller)
{
    char args[512], *out;

    b_mode = "permissive";
    start_all("client_cert_header: true", "");
    snprintf(args, sizeof(args),
             "-H 'X-Forwarded-Client-Cert: By=evil' -H 'Client-Cert: :ZXZpbA==:' "
             "http://127.0.0.1:%d/plain1 http://127.0.0.1:%d/plain2",
             in_port, in_port);
    out = curl(args);
    ck_assert_msg(strstr(out, "GET /plain1") != NULL && strstr(out, "GET /plain2") != NULL &&
                      strstr(out, "evil") == NULL && strstr(out, "ZXZpbA") == NULL &&
                      strcasestr(out, "client-cert") == NULL,
                  "%s", out);
    free(out);
    snprintf(args, sizeof(args), "http://127.0.0.1:%d/tls", out_port);
    out = curl(args);
    ck_assert_msg(count(out, XFCC_PREFIX) == 1 && count(out, "\nclient-cert: :MII") == 1, "%s",
                  out);
    free(out);
    ck_assert_double_eq(it_stat(b_admin, "tollgate_plaintext_connections_total", ""), 1);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE(
        "http", "http", NULL, setup, it_teardown, 60, test_keepalive_pipelined_headers_and_upgrade,
        test_smuggling_corpus_refused, test_rules_403_and_rate_limit_429,
        test_reload_applies_to_the_next_request, test_permissive_plain_text_caller);
}

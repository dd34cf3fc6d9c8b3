/* Logs and refusal reasons (issue 17 item 2), end to end on loopback.
 *
 * One inbound sidecar B (web) with a port for each refusal (a DENY rule, an allow list
 * without the caller, a revoked serial, and an open port that still checks chains and dates)
 * and one protocol: http port in front of a python app; calling sidecars with protocol: http
 * outbound ports, one per identity (api, a revoked api, api from another CA, api not yet
 * valid). For each refusal kind: the app of the calling side gets a 503 naming the kind
 * (X-Tollgate-Refusal) instead of a reset, the caller's sidecar logs the kind it read from
 * B's TLS alert (access log reason_code peer_refused, reason "peer_refused: KIND: ...", and
 * a diagnostic line with reason_code=KIND), and B's access log has its own reason_code.
 * Sidecar A writes its diagnostic log as JSON, parsed line by line by python's json. The
 * HTTP port adds x-request-id when the caller sent none and logs it with traceparent, the
 * upstream service time and the SNI. /logging changes B's level at run time on the admin
 * port; the health port does not serve it, nor does the admin port to a browser. */
#include "harness.h"
#include "tollgate/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int app_port, deny_port, allow_port, open_port, http_port, b_admin, b_health;
static int a_admin, to_deny, to_allow, to_http, r_port, s_port, r_admin, s_admin;

static const char app_methods[] =
    "    def any(self):\n"
    "        self.reply((self.requestline + '\\n' + str(self.headers)).encode('latin-1'))\n"
    "    do_GET = any\n";

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    IT_FREE_PORTS(&app_port, &deny_port, &allow_port, &open_port, &http_port, &b_admin, &b_health,
                  &a_admin, &to_deny, &to_allow, &to_http, &r_port, &s_port, &r_admin, &s_admin);
}

/* A request through port and everything read until the sidecar closes (malloc'd). */
static char *get(int port, const char *extra_headers)
{
    char req[512];
    size_t cap = 65536, n;
    char *buf = malloc(cap + 1);
    int fd = it_connect(port, 5000);

    ck_assert_int_ge(fd, 0);
    ck_assert_ptr_nonnull(buf);
    snprintf(req, sizeof(req), "GET /r HTTP/1.1\r\nHost: web\r\nConnection: close\r\n%s\r\n",
             extra_headers);
    ck_assert(it_send_all(fd, req, strlen(req)));
    n = it_recv_full(fd, buf, cap);
    buf[n] = '\0';
    close(fd);
    return buf;
}

/* A calling sidecar NAME with identity ID.pem (bundle: NULL for ca.pem), one protocol: http
 * outbound listener "out" on port to B's upstream port. (Ready by its admin port: a probe of
 * its outbound port would be a refused connection of its own.) */
static void start_caller(const char *name, const char *id, const char *bundle, int port,
                         int upstream, int admin)
{
    char file[64];

    snprintf(file, sizeof(file), "%s.yaml", name);
    it_cfg_write(file,
                 &(struct it_cfg){.admin = admin,
                                  .workers = 1,
                                  .id = id,
                                  .bundle = bundle,
                                  .timeouts = "drain: 1s",
                                  .out = {{"out", port, upstream, IT_WEB_ID, "protocol: http"}}},
                 NULL);
    it_sidecar_start(name, file, admin, 0);
}

static void start_all(void)
{
    char serial[80], more[256];

    it_certs("issue", "--ca", "ca", "--out", "rev", "--spiffe", IT_API_ID, NULL);
    it_certs("ca", "--out", "ca2", "--cn", "some other CA", NULL);
    it_certs("issue", "--ca", "ca2", "--out", "stranger", "--spiffe", IT_API_ID, NULL);
    it_certs("issue", "--ca", "ca", "--out", "old", "--spiffe", IT_API_ID, "--expired", NULL);
    {
        char *ca = it_read_file("ca.pem", NULL), *ca2 = it_read_file("ca2.pem", NULL);

        it_write_file("both.pem", "%s%s", ca, ca2);
        free(ca);
        free(ca2);
    }
    it_cert_serial("rev.pem", serial, sizeof(serial));
    it_http_app_start("app", app_port, app_methods);
    snprintf(more, sizeof(more), "allow: [\"spiffe://mesh.local/ns/default/sa/other\"]");
    it_cfg_write(
        "b.yaml",
        &(struct it_cfg){.admin = b_admin,
                         .workers = 1,
                         .id = "web",
                         .timeouts = "handshake: 2s, drain: 1s",
                         .in = {{"in-deny", deny_port, app_port},
                                {"in-allow", allow_port, app_port, .more = more},
                                {"in-open", open_port, app_port},
                                {"in-http", http_port, app_port, .more = "protocol: http"}}},
        "health: 127.0.0.1:%d\n"
        "authorization:\n"
        "  rules:\n"
        "    - {name: no-api-here, action: deny, principals: [\"%s\"], ports: [%d]}\n"
        "revocations: {serials: [\"%s\"]}\n",
        b_health, IT_API_ID, deny_port, serial);
    it_sidecar_start("b", "b.yaml", b_admin, 0);
    it_cfg_write("a.yaml",
                 &(struct it_cfg){
                     .admin = a_admin,
                     .workers = 1,
                     .id = "api",
                     .timeouts = "drain: 1s",
                     .out = {{"to-deny", to_deny, deny_port, IT_WEB_ID, "protocol: http"},
                             {"to-allow", to_allow, allow_port, IT_WEB_ID, "protocol: http"},
                             {"to-http", to_http, http_port, IT_WEB_ID, "sni: web.default.svc"}}},
                 "log_format: json\n");
    it_sidecar_start("a", "a.yaml", a_admin, 0);
    start_caller("r", "rev", NULL, r_port, open_port, r_admin);
    start_caller("s", "stranger", "both.pem", s_port, open_port, s_admin);
}

static const struct refusal {
    const char *caller;   /* its access log NAME.out and diagnostic log NAME.err */
    const char *listener; /* the caller's outbound listener */
    int *port;
    const char *kind;   /* what the caller reads from the alert */
    const char *b_code; /* B's own reason_code */
    const char *b_listener;
} refusals[] = {
    {"a", "to-deny", &to_deny, "denied", "denied", "in-deny"},
    {"a", "to-allow", &to_allow, "denied", "not_allowed", "in-allow"},
    {"r", "out", &r_port, "revoked", "revoked", "in-open"},
    {"s", "out", &s_port, "untrusted", "untrusted", "in-open"},
};

/* A sidecar never presents a certificate out of its dates (it refuses to, own_cert_expired),
 * so the expired kind's alert is seen by another TLS stack: openssl names it. */
static void expect_expired_alert(void)
{
    struct it_argv a;
    char *out = NULL, *err = NULL;

    it_openssl_argv(&a, "s_client", open_port, "old", NULL);
    IT_ARGV_ADD(&a, "-CAfile", "ca.pem", "-tls1_3", "-ign_eof"); /* until B closes */
    it_run(a.v, "GET / HTTP/1.1\r\n\r\n", 10000, &out, &err);
    ck_assert_msg(err != NULL && strstr(err, "alert certificate expired") != NULL,
                  "openssl heard no certificate_expired alert: %s", err ? err : "");
    free(out);
    free(err);
    ck_assert_int_ge(it_wait_lines("b.out", 1, 5000, "\"reason_code\":\"expired\"", NULL), 1);
}

static void expect_refusal(const struct refusal *c)
{
    char file[32], l[64], code[64], reason[96], line[IT_LINE_MAX], header[96];
    char *resp = get(*c->port, "");

    /* the app: a 503 naming the reason, not a reset */
    snprintf(header, sizeof(header), "\r\nX-Tollgate-Refusal: %s\r\n", c->kind);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 503 ", 13) == 0 && strstr(resp, header) != NULL,
                  "%s: the app got: %s", c->listener, resp);
    free(resp);
    /* the caller's access log: refused, peer_refused, and the kind read from the alert */
    snprintf(file, sizeof(file), "%s.out", c->caller);
    snprintf(l, sizeof(l), "\"listener\":\"%s\"", c->listener);
    snprintf(reason, sizeof(reason), "\"reason\":\"peer_refused: %s: ", c->kind);
    ck_assert_msg(it_wait_lines(file, 1, 5000, l, reason, "\"reason_code\":\"peer_refused\"",
                                "\"outcome\":\"refused\"", NULL) == 1,
                  "%s: no refused line in %s", c->kind, file);
    /* its diagnostic log names the kind as a field (JSON for a, text for the others) */
    snprintf(file, sizeof(file), "%s.err", c->caller);
    snprintf(code, sizeof(code),
             c->caller[0] == 'a' ? "\"reason_code\":\"%s\"" : "reason_code=\"%s\"", c->kind);
    ck_assert_msg(it_wait_lines(file, 1, 5000, "refused us", code, c->listener, NULL) >= 1,
                  "%s: no diagnostic line with %s in %s", c->kind, code, file);
    /* B's own line */
    snprintf(l, sizeof(l), "\"listener\":\"%s\"", c->b_listener);
    snprintf(code, sizeof(code), "\"reason_code\":\"%s\"", c->b_code);
    ck_assert_msg(it_wait_lines("b.out", 1, 5000, l, code, NULL) >= 1, "%s: B logged no %s",
                  c->kind, code);
    it_last_line("b.out", line, sizeof(line), l, code, NULL);
    it_expect_json_str(line, "outcome", "refused");
}

/* Every line of file is one JSON object with ts, level and msg strings. */
static void expect_json_lines(const char *file)
{
    static const char script[] =
        "import json,sys\n"
        "n=0\n"
        "for raw in open(sys.argv[1],'rb').read().decode('utf-8').splitlines():\n"
        "    o=json.loads(raw); n+=1\n"
        "    assert isinstance(o['ts'],str) and o['level'] in ('debug','info','warn','error')\n"
        "    assert isinstance(o['msg'],str), raw\n"
        "    assert set(o) <= {'ts','level','msg','fields'}, raw\n"
        "    if 'fields' in o: assert all(isinstance(v,str) for v in o['fields'].values())\n"
        "assert n > 0\n"
        "print(n)\n";
    const char *argv[] = {"/usr/bin/python3", "-c", script, file, NULL};
    char *out = NULL, *err = NULL;
    int st = it_run(argv, NULL, 10000, &out, &err);

    ck_assert_msg(st == 0, "%s is not JSON lines: %s", file, err ? err : "");
    free(out);
    free(err);
}

/* x-request-id added when absent and kept when present, both logged with traceparent, the
 * app's service time and the SNI the caller sent. */
static void expect_http_fields(void)
{
    char line[IT_LINE_MAX], id[80], got[80];
    char *resp =
        get(to_http, "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n");
    const char *p = strstr(resp, "\nx-request-id: ");

    ck_assert_msg(strncmp(resp, "HTTP/1.0 200", 12) == 0 || strncmp(resp, "HTTP/1.1 200", 12) == 0,
                  "%s", resp);
    ck_assert_msg(p != NULL, "the app got no x-request-id: %s", resp);
    ck_assert_int_eq(sscanf(p + 15, "%36[0-9a-f-]", id), 1);
    ck_assert_msg(strlen(id) == 36 && id[14] == '4', "not a UUID v4: %s", id);
    free(resp);
    it_wait_lines("b.out", 1, 5000, "\"listener\":\"in-http\"", "\"method\":\"GET\"", NULL);
    it_last_line("b.out", line, sizeof(line), "\"listener\":\"in-http\"", "\"method\":\"GET\"",
                 NULL);
    it_expect_json_str(line, "request_id", id);
    it_expect_json_str(line, "traceparent",
                       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    it_expect_json_str(line, "sni", "web.default.svc");
    ck_assert_msg(it_json_num(line, "upstream_service_time_ms") >= 0, "%s", line);
    ck_assert_ptr_null(strstr(line, "\"reason_code\":\"")); /* ok: null */
    it_log_line_ok("a.out", "\"listener\":\"to-http\"", line);
    it_expect_json_str(line, "sni", "web.default.svc");
    /* the caller's own ID goes through unchanged, once */
    resp = get(to_http, "X-Request-Id: caller-id-1\r\n");
    ck_assert_ptr_nonnull(strstr(resp, "\nX-Request-Id: caller-id-1\n"));
    ck_assert_ptr_null(strstr(resp, "\nx-request-id:"));
    free(resp);
    ck_assert_int_eq(it_wait_lines("b.out", 1, 5000, "\"request_id\":\"caller-id-1\"", NULL), 1);
    it_last_line("b.out", got, sizeof(got), "\"request_id\":\"caller-id-1\"", NULL);
}

/* /logging: shown and set on the admin port; absent from the health port; refused to a
 * browser. The level set is the one that filters from then on. */
static void expect_logging_endpoint(void)
{
    char *body = NULL;
    int fd, before;
    char buf[512] = "";
    static const char browser[] = "POST /logging?level=debug HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Origin: http://evil.example\r\nContent-Length: 0\r\n\r\n";

    ck_assert_int_eq(it_http(b_admin, "GET", "/logging", &body), 200);
    ck_assert_str_eq(body, "level: info\n");
    free(body);
    /* attack: the kubelet's port does not change levels, nor shows them */
    ck_assert_int_eq(it_http(b_health, "POST", "/logging?level=debug", NULL), 404);
    ck_assert_int_eq(it_http(b_health, "GET", "/logging", NULL), 404);
    /* attack: a page in a browser cannot reach it either */
    fd = it_connect(b_admin, 5000);
    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, browser, strlen(browser)));
    it_recv_full(fd, buf, sizeof(buf) - 1);
    close(fd);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 403", 12) == 0, "%s", buf);
    ck_assert_int_eq(it_http(b_admin, "POST", "/logging?level=loud", &body), 400);
    ck_assert_ptr_nonnull(strstr(body, "\"loud\" unknown"));
    free(body);
    ck_assert_int_eq(it_http(b_admin, "POST", "/logging", NULL), 400);
    ck_assert_int_eq(it_http(b_admin, "GET", "/logging", &body), 200);
    ck_assert_str_eq(body, "level: info\n"); /* nothing above changed it */
    free(body);
    /* warn: the next refusal's info line is not written (its access-log line still is) */
    ck_assert_int_eq(it_http(b_admin, "POST", "/logging?level=warn", &body), 200);
    ck_assert_str_eq(body, "level: warn (was info)\n");
    free(body);
    ck_assert_int_eq(it_count_lines("b.err", "log level warn (was info)", NULL), 1);
    before = it_count_lines("b.err", "in-deny: client", "refused: denied", NULL);
    free(get(to_deny, ""));
    ck_assert_int_eq(it_wait_lines("b.out", 2, 5000, "\"listener\":\"in-deny\"", NULL), 2);
    ck_assert_int_eq(it_count_lines("b.err", "in-deny: client", "refused: denied", NULL), before);
    /* back to info: it is written again */
    ck_assert_int_eq(it_http(b_admin, "POST", "/logging?level=info", NULL), 200);
    free(get(to_deny, ""));
    ck_assert_int_eq(
        it_wait_lines("b.err", before + 1, 5000, "in-deny: client", "refused: denied", NULL),
        before + 1);
}

START_TEST(test_refusal_reasons_and_log_fields)
{
    start_all();
    for (size_t i = 0; i < TG_NELEM(refusals); i++)
        expect_refusal(&refusals[i]);
    expect_expired_alert();
    expect_http_fields();
    expect_json_lines("a.err");
    expect_logging_endpoint();
}
END_TEST

/* tollgate-cp takes the sidecar's log_format: its diagnostic lines are JSON too. */
START_TEST(test_control_plane_logs_json)
{
    int cp_port = it_free_port();

    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    it_cp_tokens(NULL);
    it_write_file("mesh.yaml", "authorization:\n  default: allow\n");
    it_cp_cfg_write("cp.yaml", cp_port, 0,
                    "tokens: tokens.txt\nmesh: [mesh.yaml]\n"
                    "log_level: debug\nlog_format: json\n");
    it_cp_start("cp", "cp.yaml", cp_port);
    ck_assert_msg(it_wait_lines("cp.err", 1, 5000, "listening", NULL) >= 1,
                  "tollgate-cp logged no line saying it listens");
    expect_json_lines("cp.err");
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("logs", "logs", NULL, setup, it_teardown, 60,
                         test_refusal_reasons_and_log_fields, test_control_plane_logs_json);
}

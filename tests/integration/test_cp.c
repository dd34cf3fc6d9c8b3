/* The control plane end to end: tollgate-cp (a CA, a tokens file, a mesh file) and two
 * sidecars that bootstrap by token: A (outbound api-out -> B, expect web) and B (inbound
 * web-in -> echo, allow api).
 *
 * rotation (certificates of 10 s, renewed every 3 s): both become ready on their first
 * certificate; a renewal changes the serial B presents; then, while 100 connections stream
 * for 33 s, the sidecars renew about ten times each and the CA is rotated by editing
 * cp.yaml (the new root added, signing switched to it, the old root removed) with no
 * connection dropped, no handshake failed and every byte intact; a push the sidecars refuse
 * is NACKed and a mesh file the control plane refuses is not pushed, traffic unaffected; the
 * control plane killed and restarted: traffic unaffected, the sidecars reconnect.
 *
 * pushes (certificates of 1 h): pushed rate limits, proxy settings (cipher suites) and CRLs
 * take effect for new connections; a stale CRL is refused by the control plane (a sidecar
 * would refuse it) and the last good one kept. B also
 * has a protocol: http port (A's api-http -> B's web-http -> python -m http.server): a
 * pushed rule with HTTP conditions answers 403 there, a pushed requests_per_second 429, and
 * such a rule that could apply to B's TCP port is NACKed with the reason. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N_ROTATION_STREAMS 100
#define TTL_S 10 /* rotation: certificates live 10 s; renewed at 0.3 of that: every 3 s */

static int cp_port, echo_port, in_port, out_port, a_admin, b_admin;
static int app_port, http_in_port, http_out_port; /* pushes: the protocol: http path */
static bool with_http;
static struct it_proc *cp;

static const char mesh_ok[] = "authorization:\n"
                              "  default: allow\n"
                              "  rules:\n"
                              "    - name: api-to-web\n"
                              "      action: allow\n"
                              "      principals: [\"" IT_API_ID "\"]\n";

static struct it_proc *start_cp(void)
{
    return it_cp_start("cp", "cp.yaml", cp_port);
}

static int ttl_s;

/* cp.yaml: our own certificate SERVER.pem, signing with CA.pem, the roots pushed ROOTS. */
static void write_cp(const char *server, const char *ca, const char *roots)
{
    it_replace_file("cp.yaml",
                    "listen: 127.0.0.1:%d\n"
                    "trust_domain: mesh.local\n"
                    "server: {cert: %s.pem, key: %s.key}\n"
                    "ca: {cert: %s.pem, key: %s.key}\n"
                    "roots: %s\n"
                    "cert_ttl: %ds\n"
                    "tokens: tokens.txt\n"
                    "mesh: [mesh.yaml]\n"
                    "log_level: info\n",
                    cp_port, server, server, ca, ca, roots, ttl_s);
}

static void setup(void)
{
    it_setup();
    it_certs("ca", "--out", "ca", "--cn", "cp test CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    IT_FREE_PORTS(&cp_port, &in_port, &out_port, &a_admin, &b_admin);
    it_cp_tokens(NULL);
    it_write_file("mesh.yaml", "%s", mesh_ok);
    write_cp("cp", "ca", "[ca.pem]");
    cp = start_cp();
    it_echo_start("echo", &echo_port);
    if (with_http) {
        IT_FREE_PORTS(&app_port, &http_in_port, &http_out_port);
    }
    it_cfg_write_cp("b.yaml", b_admin, cp_port, "b.token",
                    &(struct it_cfg){.workers = 2,
                                     .cp_renew = 0.3,
                                     .in = {{"web-in", in_port, echo_port, IT_API_ID},
                                            {with_http ? "web-http" : NULL, http_in_port, app_port,
                                             .more = "protocol: http"}}});
    it_cfg_write_cp("a.yaml", a_admin, cp_port, "a.token",
                    &(struct it_cfg){.workers = 2,
                                     .cp_renew = 0.3,
                                     .out = {{"api-out", out_port, in_port, IT_WEB_ID},
                                             {with_http ? "api-http" : NULL, http_out_port,
                                              http_in_port, IT_WEB_ID}}});
}

static void setup_rotation(void)
{
    ttl_s = TTL_S;
    setup();
}

static void setup_pushes(void)
{
    ttl_s = 3600;
    with_http = true;
    setup();
}

static void probe_serial(char *serial, size_t cap)
{
    it_probe_serial(out_port, "a.out", serial, cap);
}

/* Waits until the sidecar's trust bundle holds n roots. */
static bool wait_roots(int admin, int n)
{
    char want[32], *dump = NULL;
    uint64_t end = it_now_ms() + 10000;
    bool found = false;

    snprintf(want, sizeof(want), "\"n_roots\":%d,", n);
    while (!found && it_now_ms() < end) {
        free(dump);
        dump = NULL;
        found = it_http(admin, "GET", "/config_dump", &dump) == 200 && strstr(dump, want) != NULL;
        if (!found)
            it_sleep_ms(200);
    }
    free(dump);
    return found;
}

START_TEST(test_cp_end_to_end)
{
    struct it_streams *st;
    struct it_proc *b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    struct it_proc *a = it_sidecar_start("a", "a.yaml", a_admin, 0);
    char s0[80], s[80], *dump = NULL;
    double certs0, a_certs0, rejected0, reconnects0, certs1, hs_failed0[2], rejected[2];
    uint64_t end, start;
    int phase = 0;

    (void)a;
    (void)b;
    /* ready on a certificate from the control plane: traffic flows */
    probe_serial(s0, sizeof(s0));
    ck_assert_int_eq(it_http(b_admin, "GET", "/config_dump", &dump), 200);
    ck_assert_msg(strstr(dump, IT_WEB_ID) != NULL && strstr(dump, "\"authorization\":\"") &&
                      strstr(dump, "\"trust_bundle\":\"") && strstr(dump, "control_plane"),
                  "config_dump: %s", dump);
    free(dump);

    /* a renewal changes the serial B presents */
    end = it_now_ms() + TTL_S * 1000;
    for (;;) {
        probe_serial(s, sizeof(s));
        if (strcmp(s, s0) != 0)
            break;
        ck_assert_msg(it_now_ms() < end, "B still presents serial %s after %d s", s0, TTL_S);
        it_sleep_ms(200);
    }

    /* 100 streams for 33 s through renewals and a CA rotation by file edits */
    it_certs("ca", "--out", "ca2", "--cn", "cp test CA 2", NULL);
    it_certs("issue", "--ca", "ca2", "--out", "cp2", "--spiffe", IT_CP_ID, NULL);
    st = it_streams_start(out_port, N_ROTATION_STREAMS, 2000);
    certs0 = it_stat(b_admin, "tollgate_cp_certs_accepted_total", "");
    a_certs0 = it_stat(a_admin, "tollgate_cp_certs_accepted_total", "");
    for (int i = 0; i < 2; i++) {
        hs_failed0[i] = it_stat(i ? b_admin : a_admin, "tollgate_handshakes_failed_total", "");
        rejected[i] = it_stat(i ? b_admin : a_admin, "tollgate_cp_pushes_rejected_total", "");
    }
    start = it_now_ms();
    for (int step = 0; it_now_ms() - start < 33000; step++) {
        uint64_t t = it_now_ms() - start;

        it_sleep_ms(500);
        if (step % 2 == 0)
            it_streams_expect_ok(st, "during renewals and the CA rotation");
        if (phase == 0 && t >= 3000) { /* 1: the new root joins the bundle */
            write_cp("cp", "ca", "[ca.pem, ca2.pem]");
            phase = 1;
        } else if (phase == 1 && t >= 8000) { /* 2: sign (and serve) under the new CA */
            ck_assert_msg(wait_roots(b_admin, 2) && wait_roots(a_admin, 2),
                          "the sidecars did not get the two-root bundle");
            write_cp("cp2", "ca2", "[ca.pem, ca2.pem]");
            phase = 2;
        } else if (phase == 2 && t >= 8000 + 2 * TTL_S * 1000) { /* 3: the old root goes */
            write_cp("cp2", "ca2", "[ca2.pem]");
            phase = 3;
        }
    }
    ck_assert_int_eq(phase, 3);
    ck_assert_msg(wait_roots(b_admin, 1) && wait_roots(a_admin, 1),
                  "the sidecars still hold the old root");
    ck_assert_int_eq(it_http(b_admin, "GET", "/config_dump", &dump), 200);
    ck_assert_msg(strstr(dump, "\"cn\":\"cp test CA 2\"") != NULL &&
                      strstr(dump, "\"cn\":\"cp test CA\"") == NULL,
                  "B's roots after the rotation: %s", dump);
    free(dump);
    it_streams_expect_progress(st, "after the CA rotation");
    probe_serial(s, sizeof(s)); /* a new handshake under the new root alone */
    for (int i = 0; i < 2; i++) {
        int admin = i ? b_admin : a_admin;

        ck_assert_msg(it_stat(admin, "tollgate_handshakes_failed_total", "") == hs_failed0[i],
                      "%c: %.0f handshakes failed during the rotation", i ? 'B' : 'A',
                      it_stat(admin, "tollgate_handshakes_failed_total", "") - hs_failed0[i]);
        ck_assert_msg(it_stat(admin, "tollgate_cp_pushes_rejected_total", "") == rejected[i],
                      "%c refused a push during the rotation", i ? 'B' : 'A');
    }
    certs1 = it_stat(b_admin, "tollgate_cp_certs_accepted_total", "");
    ck_assert_msg(certs1 >= certs0 + 10, "B renewed %.0f times in 33 s", certs1 - certs0);
    ck_assert_msg(it_stat(a_admin, "tollgate_cp_certs_accepted_total", "") >= a_certs0 + 10,
                  "A renewed too seldom");

    /* a push the sidecars refuse (a TLS 1.2 suite: tollgate-cp passes it, as a sidecar may
     * allow TLS 1.2, but these allow 1.3 only): NACKed, traffic unaffected */
    rejected0 = it_stat(b_admin, "tollgate_cp_pushes_rejected_total", "");
    it_replace_file("mesh.yaml",
                    "%ssettings:\n  tls: {cipher_suites: [TLS13-AES128-GCM-SHA256, "
                    "ECDHE-ECDSA-AES128-GCM-SHA256]}\n",
                    mesh_ok);
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_cp_pushes_rejected_total", "", rejected0 + 1,
                               10000) >= rejected0 + 1,
                  "B did not NACK the proxy_settings push");
    ck_assert_msg(it_wait_lines("cp.err", 1, 5000, "refused proxy_settings", NULL) >= 1,
                  "the control plane did not log the NACK");
    probe_serial(s, sizeof(s));
    it_streams_expect_progress(st, "after a NACKed push");

    /* a mesh file the control plane refuses (a rule that does not compile): not pushed */
    it_replace_file("mesh.yaml", "authorization:\n  rules:\n    - name: bad\n      action: allow\n"
                                 "      fingerprints: [\"zz\"]\n");
    ck_assert_msg(it_wait_lines("cp.err", 1, 5000, "refused, serving the last good", NULL) >= 1,
                  "the control plane did not refuse the broken mesh file");
    probe_serial(s, sizeof(s));
    it_streams_expect_progress(st, "after a refused mesh file");
    it_replace_file("mesh.yaml", "%s", mesh_ok);

    /* the control plane killed: traffic goes on; restarted: the sidecars reconnect */
    reconnects0 = it_stat(b_admin, "tollgate_cp_reconnects_total", "");
    ck_assert_int_eq(kill(cp->pid, SIGKILL), 0);
    it_wait(cp, 5000);
    it_sleep_ms(1500);
    probe_serial(s, sizeof(s));
    it_streams_expect_progress(st, "control plane down");
    ck_assert_int_eq(it_http(b_admin, "GET", "/ready", NULL), 200);
    cp = start_cp();
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_cp_reconnects_total", "", reconnects0 + 1,
                               10000) >= reconnects0 + 1,
                  "B did not try to reconnect");
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_cp_connected", "", 1, 10000) >= 1,
                  "B did not reconnect");
    ck_assert_msg(it_wait_stat(a_admin, "tollgate_cp_connected", "", 1, 10000) >= 1,
                  "A did not reconnect");
    certs1 = it_stat(b_admin, "tollgate_cp_certs_accepted_total", "");
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_cp_certs_accepted_total", "", certs1 + 1,
                               TTL_S * 1000) >= certs1 + 1,
                  "B did not renew through the restarted control plane");
    probe_serial(s, sizeof(s));
    it_streams_expect_progress(st, "after the control plane restart");

    fprintf(stderr, "cp: %llu bytes echoed over %d streams, %.0f renewals of B\n",
            (unsigned long long)it_streams_stop(st), N_ROTATION_STREAMS,
            it_stat(b_admin, "tollgate_cp_certs_accepted_total", ""));
}
END_TEST

/* A CRL by `openssl ca` under the control plane's CA revoking serial (NULL: none), valid for
 * seconds, into file. */
static void make_crl(const char *file, const char *serial, int seconds)
{
    it_crl_index("ca", &serial, serial != NULL);
    it_crl("ca", file, seconds);
}

/* Our serial in the sidecar's /config_dump, upper case as openssl's index wants it. */
static void serial_of(int admin, char *dst, size_t cap)
{
    char *dump = NULL, *p;
    size_t i = 0;

    ck_assert_int_eq(it_http(admin, "GET", "/config_dump", &dump), 200);
    ck_assert_msg((p = strstr(dump, "\"serial\":\"")) != NULL, "no serial in %s", dump);
    for (p += 10; *p != '"' && i + 1 < cap; p++)
        dst[i++] = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
    dst[i] = '\0';
    free(dump);
}

/* Pushes mesh.yaml = mesh_ok + extra and waits for B (and A) to ACK (or B to NACK). */
static void push(const char *extra, bool nack)
{
    const char *stat =
        nack ? "tollgate_cp_pushes_rejected_total" : "tollgate_cp_pushes_accepted_total";
    double b0 = it_stat(b_admin, stat, ""), a0 = it_stat(a_admin, stat, "");

    it_replace_file("mesh.yaml", "%s%s", mesh_ok, extra);
    ck_assert_msg(it_wait_stat(b_admin, stat, "", b0 + 1, 10000) >= b0 + 1, "B did not %s: %s",
                  nack ? "NACK" : "ACK", extra);
    if (!nack)
        ck_assert_msg(it_wait_stat(a_admin, stat, "", a0 + 1, 10000) >= a0 + 1, "A did not ACK: %s",
                      extra);
}

/* The status code of method / through A's api-http (one request, then the connection
 * closed), or -1 with nothing back. */
static int http_status(const char *method)
{
    char req[128], buf[4096];
    int fd = it_connect(http_out_port, 5000), code = -1;
    size_t n;

    ck_assert_int_ge(fd, 0);
    snprintf(req, sizeof(req), "%s / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n", method);
    ck_assert(it_send_all(fd, req, strlen(req)));
    n = it_recv_full(fd, buf, sizeof(buf) - 1);
    buf[n] = '\0';
    close(fd);
    if (n > 12 && strncmp(buf, "HTTP/1.", 7) == 0)
        code = atoi(buf + 9);
    return code;
}

/* Pushed rules with HTTP conditions and pushed requests_per_second on B's protocol: http
 * port; such a rule that could apply to B's TCP port NACKed. */
static void pushes_http(void)
{
    char extra[512], port[16];
    const char *argv[] = {"/usr/bin/python3", "-m",        "http.server", port,
                          "--bind",           "127.0.0.1", NULL};
    int limited = 0;

    snprintf(port, sizeof(port), "%d", app_port);
    it_spawn("app", argv, IT_STDIN_NULL);
    ck_assert_msg(it_wait_port(app_port, 10000), "python http.server did not start");
    ck_assert_int_eq(http_status("GET"), 200);
    ck_assert_int_eq(http_status("DELETE"), 501); /* http.server has no DELETE */

    /* a deny rule for DELETE on the HTTP port: 403 from B, the app never asked */
    snprintf(extra, sizeof(extra),
             "    - name: no-delete\n"
             "      action: deny\n"
             "      methods: [DELETE]\n"
             "      paths: [\"/*\"]\n"
             "      ports: [%d]\n",
             http_in_port);
    push(extra, false);
    ck_assert_int_eq(http_status("DELETE"), 403);
    ck_assert_int_eq(http_status("GET"), 200);

    /* the same rule without ports: it could apply to web-in (tcp): NACKed, the last kept */
    push("    - name: no-delete-anywhere\n"
         "      action: deny\n"
         "      methods: [DELETE]\n",
         true);
    ck_assert_msg(
        it_wait_lines("b.err", 1, 5000, "no-delete-anywhere", "has HTTP conditions", NULL) >= 1,
        "NACK without the reason");
    ck_assert_int_eq(http_status("DELETE"), 403);

    /* requests_per_second: 1 with a burst of 1 for A's identity: 429 from B (the rule kept,
     * so that only the limits change) */
    snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
             "rate_limits:\n  overrides:\n    - principal: \"%s\"\n      requests_per_second: 1\n"
             "      requests_burst: 1\n",
             IT_API_ID);
    push(extra, false);
    for (int round = 0; round < 10 && limited < 2; round++) { /* the push may be in flight */
        limited = 0;
        for (int i = 0; i < 4; i++)
            limited += http_status("GET") == 429;
    }
    ck_assert_msg(limited >= 2, "%d of 4 quick requests answered 429 under 1/s", limited);
    ck_assert_msg(it_stat(b_admin, "tollgate_http_rate_limited_total", "") >= 2,
                  "the 429s were not counted");

    /* back to mesh_ok alone: the rule and the limit gone */
    push("rate_limits: {}\n", false);
    for (int i = 0; i < 50 && http_status("DELETE") != 501; i++)
        it_sleep_ms(100);
    ck_assert_int_eq(http_status("DELETE"), 501);
}

START_TEST(test_cp_pushes)
{
    char err[256], serial[80], s[80], limit[256];
    int refused = 0;

    it_sidecar_start("b", "b.yaml", b_admin, 0);
    it_sidecar_start("a", "a.yaml", a_admin, 0);
    probe_serial(s, sizeof(s));

    /* rate limits: one new connection per second for A's identity */
    snprintf(
        limit, sizeof(limit),
        "rate_limits:\n  overrides: [{principal: \"%s\", connections_per_second: 1, burst: 1}]\n",
        IT_API_ID);
    pushes_http();
    push(limit, false);
    for (int i = 0; i < 4; i++)
        refused += it_round_trip(out_port, "limited?", err) < 0;
    ck_assert_msg(refused >= 2, "%d of 4 quick connections refused under 1/s", refused);
    ck_assert_msg(it_stat(b_admin, "tollgate_rate_limited_total", "") >= refused,
                  "the refusals were not counted as rate_limited");
    push("rate_limits: {}\n", false);
    it_sleep_ms(1100); /* the bucket refills */
    for (int i = 0; i < 4; i++)
        ck_assert_msg(it_round_trip(out_port, "unlimited", err) > 0, "limit lifted: %s", err);

    /* proxy settings: the cipher suite of new connections */
    push("settings:\n  tls: {cipher_suites: [TLS13-CHACHA20-POLY1305-SHA256]}\n", false);
    probe_serial(s, sizeof(s));
    ck_assert_msg(it_wait_lines("a.out", 1, 5000, "TLS13-CHACHA20-POLY1305-SHA256", NULL) >= 1,
                  "the pushed cipher suite was not used");

    /* a CRL revoking A's certificate: new connections from A are refused */
    serial_of(a_admin, serial, sizeof(serial));
    make_crl("crl.pem", serial, 3600);
    push("revocations:\n  crls: [crl.pem]\n", false);
    ck_assert_msg(it_round_trip(out_port, "revoked?", err) < 0, "a revoked certificate got in");
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_handshakes_failed_total", "reason=\"revoked\"", 1,
                               5000) >= 1,
                  "the refusal was not counted as revoked");

    /* a stale CRL (its nextUpdate passed): a sidecar would refuse it, so the control plane
     * refuses the file with the reason and goes on serving the last good one */
    make_crl("stale.pem", NULL, 0);
    it_replace_file("mesh.yaml", "%srevocations:\n  crls: [stale.pem]\n", mesh_ok);
    ck_assert_msg(it_wait_lines("cp.err", 1, 5000, "refused", "stale.pem", "stale", NULL) >= 1,
                  "the stale CRL was not refused with its reason");
    ck_assert_msg(it_round_trip(out_port, "still revoked?", err) < 0,
                  "the stale CRL replaced the good one");

    /* a fresh CRL revoking nothing: A gets in again */
    make_crl("crl.pem", NULL, 3600);
    push("revocations:\n  crls: [crl.pem]\n", false);
    ck_assert_msg(it_round_trip(out_port, "back", err) > 0, "after the revocation ended: %s", err);
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s =
        IT_TEST_SUITE("cp", "rotation", NULL, setup_rotation, it_teardown, 180, test_cp_end_to_end);

    IT_TEST_CASE(s, "pushes", setup_pushes, it_teardown, 90, test_cp_pushes);
    return s;
}

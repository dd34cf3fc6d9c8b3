/* The control plane end to end: tollgate-cp (a CA with a few-seconds certificate TTL, a
 * tokens file, a mesh file) and two sidecars that bootstrap by token: A (outbound api-out ->
 * B, expect web) and B (inbound web-in -> echo, allow api). Both become ready on their first
 * certificate; traffic flows; renewals change the serial B presents while 20 connections
 * stream without a dropped connection or a corrupted byte; a push the sidecars refuse is
 * NACKed and a mesh file the control plane refuses is not pushed, traffic unaffected; the
 * control plane killed and restarted: traffic unaffected, the sidecars reconnect. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N_STREAMS 20
#define CP_ID "spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp"
#define TTL_S 10 /* certificates live 10 s; renewed at 0.3 of that: every 3 s */

static int cp_port, echo_port, in_port, out_port, a_admin, b_admin;
static struct it_proc *cp;

static const char mesh_ok[] = "authorization:\n"
                              "  default_deny: false\n"
                              "  rules:\n"
                              "    - name: api-to-web\n"
                              "      action: allow\n"
                              "      principals: [\"" IT_API_ID "\"]\n";

static struct it_proc *start_cp(void)
{
    const char *argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    struct it_proc *p = it_spawn("cp", argv, IT_STDIN_NULL);

    ck_assert_msg(it_wait_port(cp_port, 10000), "tollgate-cp did not listen on %d", cp_port);
    return p;
}

static void write_sidecar(const char *file, const char *token, int admin, const char *listeners)
{
    it_write_file(file,
                  "admin: 127.0.0.1:%d\n"
                  "workers: 2\n"
                  "log_level: info\n"
                  "access_log: true\n"
                  "control_plane:\n"
                  "  address: 127.0.0.1:%d\n"
                  "  ca: ca.pem\n"
                  "  token: %s\n"
                  "  server_ids: [\"" CP_ID "\"]\n"
                  "  node_id: %s\n"
                  "  renew_fraction: 0.3\n"
                  "timeouts: {handshake: 5s, idle: 1h, connect: 2s, drain: 2s}\n"
                  "%s",
                  admin, cp_port, token, file, listeners);
}

static void setup(void)
{
    char listeners[1024];

    it_setup();
    it_certs("ca", "--out", "ca", "--cn", "cp test CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", CP_ID, NULL);
    cp_port = it_free_port();
    in_port = it_free_port();
    out_port = it_free_port();
    a_admin = it_free_port();
    b_admin = it_free_port();
    it_write_file("tokens.txt", "# TOKEN NAMESPACE SERVICE_ACCOUNT\n"
                                "aaaaaaaaaaaaaaaaaaaaaaaa default api\n"
                                "bbbbbbbbbbbbbbbbbbbbbbbb default web\n");
    it_write_file("a.token", "aaaaaaaaaaaaaaaaaaaaaaaa\n");
    it_write_file("b.token", "bbbbbbbbbbbbbbbbbbbbbbbb\n");
    it_write_file("mesh.yaml", "%s", mesh_ok);
    it_write_file("cp.yaml",
                  "listen: 127.0.0.1:%d\n"
                  "trust_domain: mesh.local\n"
                  "server: {cert: cp.pem, key: cp.key}\n"
                  "ca: {cert: ca.pem, key: ca.key}\n"
                  "cert_ttl: %ds\n"
                  "tokens: tokens.txt\n"
                  "mesh: [mesh.yaml]\n"
                  "log_level: info\n",
                  cp_port, TTL_S);
    cp = start_cp();
    it_echo_start("echo", &echo_port);
    snprintf(listeners, sizeof(listeners),
             "inbound:\n"
             "  - name: web-in\n"
             "    listen: 127.0.0.1:%d\n"
             "    upstream: 127.0.0.1:%d\n"
             "    allow: [\"" IT_API_ID "\"]\n",
             in_port, echo_port);
    write_sidecar("b.yaml", "b.token", b_admin, listeners);
    snprintf(listeners, sizeof(listeners),
             "outbound:\n"
             "  - name: api-out\n"
             "    listen: 127.0.0.1:%d\n"
             "    upstream: 127.0.0.1:%d\n"
             "    expect: [\"" IT_WEB_ID "\"]\n",
             out_port, in_port);
    write_sidecar("a.yaml", "a.token", a_admin, listeners);
}

static void teardown(void)
{
    it_teardown();
}

static void probe_serial(char *serial, size_t cap)
{
    it_probe_serial(out_port, "a.out", serial, cap);
}

START_TEST(test_cp_end_to_end)
{
    struct it_streams *st;
    struct it_proc *b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    struct it_proc *a = it_sidecar_start("a", "a.yaml", a_admin, 0);
    char s0[80], s[80], *dump = NULL;
    double certs0, rejected0, reconnects0, certs1;
    uint64_t end;

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

    /* 20 streams through renewals */
    st = it_streams_start(out_port, N_STREAMS, 2000);
    certs0 = it_stat(b_admin, "tollgate_cp_certs_accepted_total", "");
    end = it_now_ms() + 15000;
    while (it_now_ms() < end) {
        it_sleep_ms(1000);
        it_streams_expect_ok(st, "during renewals");
    }
    it_streams_expect_progress(st, "after renewals");
    certs1 = it_stat(b_admin, "tollgate_cp_certs_accepted_total", "");
    ck_assert_msg(certs1 >= certs0 + 3, "B renewed %.0f times in 15 s", certs1 - certs0);
    ck_assert_msg(it_stat(a_admin, "tollgate_cp_certs_accepted_total", "") >= 5,
                  "A renewed too seldom");

    /* a push the sidecars refuse (pushed rate limits): NACKed, traffic unaffected */
    rejected0 = it_stat(b_admin, "tollgate_cp_pushes_rejected_total", "");
    it_replace_file("mesh.yaml", "%srate_limits:\n  - match: \"*\"\n    max_concurrent: 5\n",
                    mesh_ok);
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_cp_pushes_rejected_total", "", rejected0 + 1,
                               10000) >= rejected0 + 1,
                  "B did not NACK the rate_limits push");
    ck_assert_msg(it_wait_lines("cp.err", 1, 5000, "refused rate_limits", NULL) >= 1,
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
            (unsigned long long)it_streams_stop(st), N_STREAMS,
            it_stat(b_admin, "tollgate_cp_certs_accepted_total", ""));
}
END_TEST

static Suite *cp_suite(void)
{
    Suite *s = suite_create("cp");
    TCase *tc = tcase_create("cp");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cp_end_to_end);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cp_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Control-plane failover: two tollgate-cp replicas built from the same files (CA, tokens,
 * mesh file), and two sidecars that bootstrap by token with `control_plane.address` a list of
 * both (A: api-out -> B, B: web-in -> echo). Both start on the first replica. Between the two
 * in the list is an impostor: a tollgate-cp whose certificate is from the mesh's CA but for
 * a workload's SPIFFE ID (a pod IP reused by another meshed pod, a wrong DNS answer).
 *
 * While streams run through A and B, the replica they are on is killed (SIGKILL, by pid):
 * each sidecar reconnects to the other within a few seconds (tollgate_cp_failovers_total,
 * tollgate_cp_replica and /config_dump name it), keeps the certificate it had (same serial,
 * no new CSR), drops no stream and corrupts no byte, and applies a push that only the second
 * replica can have sent (the mesh file changed after the first died). On the way the
 * sidecars try the impostor, refuse it in the handshake and move on at once. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_STREAMS 20
#define FAILOVER_MS 5000 /* "within a few seconds": lost stream, backoff 0.5-1 s, handshake */

static int cp1_port, cp2_port, evil_port, echo_port, in_port, out_port, a_admin, b_admin;
static struct it_proc *cp1;

static void write_replica(const char *file, int port)
{
    it_cp_cfg_write(file, port, 0,
                    "cert_ttl: 1h\n"
                    "tokens: tokens.txt\n"
                    "mesh: [mesh.yaml]\n"
                    "log_level: info\n");
}

static void setup(void)
{
    struct it_cfg a = {.workers = 2, .out = {{"api-out", 0, 0, IT_WEB_ID}}};
    struct it_cfg b = {.workers = 2, .in = {{"web-in", 0, 0, IT_API_ID}}};
    char list[96];

    it_setup();
    it_certs("ca", "--out", "ca", "--cn", "failover test CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    it_certs("issue", "--ca", "ca", "--out", "evil", "--spiffe", IT_WEB_ID, NULL);
    IT_FREE_PORTS(&cp1_port, &cp2_port, &evil_port, &in_port, &out_port, &a_admin, &b_admin);
    it_cp_tokens(NULL);
    it_write_file("mesh.yaml", "authorization: {default: allow}\n");
    write_replica("cp1.yaml", cp1_port);
    write_replica("cp2.yaml", cp2_port);
    it_write_file("evil.yaml",
                  "listen: 127.0.0.1:%d\n"
                  "trust_domain: mesh.local\n"
                  "server: {cert: evil.pem, key: evil.key}\n"
                  "ca: {cert: ca.pem, key: ca.key}\n"
                  "tokens: tokens.txt\n"
                  "mesh: [mesh.yaml]\n",
                  evil_port);
    cp1 = it_cp_start("cp1", "cp1.yaml", cp1_port);
    it_cp_start("cp2", "cp2.yaml", cp2_port);
    it_cp_start("evil", "evil.yaml", evil_port);
    snprintf(list, sizeof(list), "[127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d]", cp1_port, evil_port,
             cp2_port);
    it_echo_start("echo", &echo_port);
    b.in[0].listen = in_port;
    b.in[0].upstream = echo_port;
    b.cp_list = list;
    a.out[0].listen = out_port;
    a.out[0].upstream = in_port;
    a.cp_list = list;
    it_cfg_write_cp("b.yaml", b_admin, cp1_port, "b.token", &b);
    it_cfg_write_cp("a.yaml", a_admin, cp1_port, "a.token", &a);
    it_sidecar_start("b", "b.yaml", b_admin, 0);
    it_sidecar_start("a", "a.yaml", a_admin, 0);
}

/* The replica admin reports in /stats and /config_dump contains ":port" (and is connected). */
static bool on_replica(int admin, int port)
{
    char label[64], want[32];
    char *body = NULL;
    bool ok;

    snprintf(want, sizeof(want), ":%d", port);
    snprintf(label, sizeof(label), "replica=\"127.0.0.1:%d\"", port);
    if (it_stat(admin, "tollgate_cp_replica", label) != 1)
        return false;
    ok = it_http(admin, "GET", "/config_dump", &body) == 200 && body != NULL &&
         strstr(body, "\"connected\":true,\"replica\":\"127.0.0.1") != NULL &&
         strstr(strstr(body, "\"replica\":"), want) != NULL;
    free(body);
    return ok;
}

static bool wait_replica(int admin, int port, int timeout_ms)
{
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;

    do {
        if (on_replica(admin, port))
            return true;
        it_sleep_ms(50);
    } while (it_now_ms() < end);
    return false;
}

/* A's /config_dump parses as JSON (python3's json), and says where the control plane is:
 * both addresses of the list, the replica (port 2), one failover, and B's certificate among
 * the peers. */
static void expect_config_dump(int port2)
{
    static const char check[] = "import json, sys\n"
                                "d = json.load(open(sys.argv[1]))\n"
                                "cp = d['control_plane']\n"
                                "assert len(cp['addresses']) == 3, cp\n"
                                "assert cp['connected'] and cp['failovers'] == 1, cp\n"
                                "assert cp['replica'] == '127.0.0.1:' + sys.argv[2], cp\n"
                                "ids = [p['spiffe_id'] for p in d['peers']['list']]\n"
                                "assert ids == ['" IT_WEB_ID "'], d['peers']\n";
    char port[16], *body = NULL, *out = NULL, *err = NULL;
    const char *argv[] = {"/usr/bin/python3", "check.py", "dump.json", port, NULL};
    int st;

    snprintf(port, sizeof(port), "%d", port2);
    ck_assert_int_eq(it_http(a_admin, "GET", "/config_dump", &body), 200);
    it_write_file("dump.json", "%s", body);
    it_write_file("check.py", "%s", check);
    st = it_run(argv, NULL, 10000, &out, &err);
    ck_assert_msg(st == 0, "/config_dump: %s\n%s", err != NULL ? err : "", body);
    free(out);
    free(err);
    free(body);
}

START_TEST(test_cp_failover_under_traffic)
{
    const int admins[] = {a_admin, b_admin};
    struct it_streams *st;
    char serial_before[80], serial_after[80];
    double csrs[2], pushes[2], hs[2], cp_hs[2];
    uint64_t t0, took;

    for (int i = 0; i < 2; i++)
        ck_assert_msg(wait_replica(admins[i], cp1_port, 5000), "sidecar %c is not on replica 1",
                      "AB"[i]);
    it_probe_serial(out_port, "a.out", serial_before, sizeof(serial_before));
    st = it_streams_start(out_port, N_STREAMS, 9000);
    for (int i = 0; i < 2; i++) {
        csrs[i] = it_stat(admins[i], "tollgate_cp_csrs_sent_total", "");
        pushes[i] = it_stat(admins[i], "tollgate_cp_pushes_accepted_total", "");
        hs[i] = it_stat(admins[i], "tollgate_handshakes_failed_total", "");
        cp_hs[i] = it_stat(admins[i], "tollgate_cp_handshakes_failed_total", "");
        ck_assert_double_eq(it_stat(admins[i], "tollgate_cp_failovers_total", ""), 0);
    }
    it_sleep_ms(300);

    /* the replica both are on dies without a word */
    ck_assert_int_eq(kill(cp1->pid, SIGKILL), 0);
    t0 = it_now_ms();
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(wait_replica(admins[i], cp2_port, FAILOVER_MS),
                      "sidecar %c did not fail over to replica 2 within %d ms", "AB"[i],
                      FAILOVER_MS);
        it_streams_expect_ok(st, "during the failover");
    }
    took = it_now_ms() - t0;
    for (int i = 0; i < 2; i++) {
        ck_assert_double_eq(it_stat(admins[i], "tollgate_cp_failovers_total", ""), 1);
        ck_assert_msg(it_stat(admins[i], "tollgate_cp_csrs_sent_total", "") == csrs[i],
                      "sidecar %c asked for a new certificate after the failover", "AB"[i]);
        ck_assert_msg(it_stat(admins[i], "tollgate_cp_handshakes_failed_total", "") > cp_hs[i],
                      "sidecar %c did not try, and refuse, the impostor on its way", "AB"[i]);
    }

    /* a push only replica 2 can send: the mesh file changes after replica 1 died */
    it_replace_file("mesh.yaml", "authorization:\n"
                                 "  default: allow\n"
                                 "  rules:\n"
                                 "    - {name: api-to-web, action: allow, principals: "
                                 "[\"" IT_API_ID "\"]}\n");
    for (int i = 0; i < 2; i++)
        ck_assert_msg(it_wait_stat(admins[i], "tollgate_cp_pushes_accepted_total", "",
                                   pushes[i] + 1, 10000) >= pushes[i] + 1,
                      "sidecar %c did not apply replica 2's push", "AB"[i]);
    ck_assert_msg(it_wait_lines("cp2.err", 1, 5000, "pushed authorization", NULL) >= 1,
                  "replica 2 did not push the new authorization");

    expect_config_dump(cp2_port);
    it_probe_serial(out_port, "a.out", serial_after, sizeof(serial_after));
    ck_assert_str_eq(serial_after, serial_before); /* B's identity, as A sees it */
    it_streams_expect_progress(st, "after the failover");
    for (int i = 0; i < 2; i++)
        ck_assert_msg(it_stat(admins[i], "tollgate_handshakes_failed_total", "") == hs[i],
                      "sidecar %c: data-path handshakes failed during the failover", "AB"[i]);
    fprintf(stderr,
            "cp_failover: both sidecars on replica 2 %llu ms after the kill; %llu bytes "
            "echoed over %d streams\n",
            (unsigned long long)took, (unsigned long long)it_streams_stop(st), N_STREAMS);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("cp_failover", "failover", NULL, setup, it_teardown, 60,
                         test_cp_failover_under_traffic);
}

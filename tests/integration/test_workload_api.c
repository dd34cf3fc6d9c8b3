/* identity.workload_api against a Workload API server made with Debian's python3-grpcio
 * (tests/spiffe/workload_server.py, its code generated here from proto/workload.proto): a
 * sidecar pair both on Workload API identities carries traffic; B's SVID rotates under 50
 * live streams (zero drops, every byte checked); a malformed SVID and one whose key is not
 * its certificate's are refused and the last good one kept; a federated bundle lets a peer
 * of the foreign trust domain in only when the allow list names it; with the server gone the
 * last good SVID serves on and /ready follows its expiry, and a server that comes back is
 * found again. */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define N_STREAMS 50
#define ROTATE_MS 6000
#define PY "/usr/bin/python3"
#define PARTNER_OK "spiffe://partner.example/ns/p/sa/client"
#define PARTNER_NO "spiffe://partner.example/ns/p/sa/other"

struct wl_mesh {
    int echo_port, in_port, out_port, a_admin, b_admin;
    struct it_proc *echo, *a, *b, *a_wl, *b_wl;
};

static struct wl_mesh m;
static char cp_extra[512]; /* B's control_plane section, or "" */

static void setup(void)
{
    it_setup();
    memset(&m, 0, sizeof(m));
    cp_extra[0] = '\0';
}

static void teardown(void)
{
    it_teardown();
}

/* A spec for the server: one SVID of id from cert/key under ca.pem; garbage (may be NULL)
 * spoils one part; fed (may be NULL) a federated bundle of partner.example. */
static void write_spec(const char *file, const char *id, const char *cert, const char *key,
                       const char *garbage, const char *fed)
{
    char g[64] = "", f[160] = "";

    if (garbage != NULL)
        snprintf(g, sizeof(g), ",\"garbage\":\"%s\"", garbage);
    if (fed != NULL)
        snprintf(f, sizeof(f), ",\"federated\":{\"spiffe://partner.example\":\"%s\"}", fed);
    it_replace_file(file,
                    "{\"svids\":[{\"id\":\"%s\",\"cert\":\"%s\",\"key\":\"%s\","
                    "\"bundle\":\"ca.pem\"%s}]%s}\n",
                    id, cert, key, g, f);
}

/* The Python code of the server, generated once per test into its directory. */
static void gen_code(void)
{
    char proto[PATH_MAX], *err = NULL;
    const char *argv[] = {PY,
                          "-m",
                          "grpc_tools.protoc",
                          "-I",
                          proto,
                          "--python_out=gen",
                          "--grpc_python_out=gen",
                          "workload.proto",
                          NULL};
    int rc;

    snprintf(proto, sizeof(proto), "%s/proto", it_env("TG_SOURCE_DIR"));
    ck_assert_msg(mkdir("gen", 0700) == 0, "mkdir gen: %s", strerror(errno));
    rc = it_run(argv, NULL, 30000, NULL, &err);
    ck_assert_msg(rc == 0, "grpc_tools.protoc: %d: %s", rc, err ? err : "");
    free(err);
}

/* Starts the server name on SOCKET.sock serving spec; wait_server waits for it to listen. */
static struct it_proc *spawn_server(const char *name, const char *socket, const char *spec)
{
    char sock[PATH_MAX], script[PATH_MAX], proto[PATH_MAX];
    const char *argv[] = {PY,          script, "--socket",    sock,  "--spec", spec,
                          "--gen-dir", "gen",  "--proto-dir", proto, NULL};

    snprintf(sock, sizeof(sock), "%s/%s.sock", it_dir(), socket);
    snprintf(script, sizeof(script), "%s/tests/spiffe/workload_server.py", it_env("TG_SOURCE_DIR"));
    snprintf(proto, sizeof(proto), "%s/proto", it_env("TG_SOURCE_DIR"));
    return it_spawn(name, argv, IT_STDIN_NULL);
}

static void wait_server(const struct it_proc *p)
{
    char out[96];

    snprintf(out, sizeof(out), "%s.out", p->name);
    ck_assert_msg(it_wait_file_contains(out, "ready", 15000),
                  "%s: the Workload API server did not come up", p->name);
}

/* B: inbound web-in -> echo allowing api (and allow_extra); A: outbound api-out -> B. */
static void start_mesh(const char *allow_extra)
{
    m.echo = it_echo_start("echo", &m.echo_port);
    m.in_port = it_free_port();
    m.out_port = it_free_port();
    m.a_admin = it_free_port();
    m.b_admin = it_free_port();
    gen_code();
    m.b_wl = spawn_server("b-wl", "b-wl", "b.json");
    m.a_wl = spawn_server("a-wl", "a-wl", "a.json");
    wait_server(m.b_wl);
    wait_server(m.a_wl);
    it_write_file("b.yaml",
                  "admin: 127.0.0.1:%d\n"
                  "workers: 2\n"
                  "access_log: true\n"
                  "identity:\n"
                  "  workload_api: unix://%s/b-wl.sock\n"
                  "  spiffe_id: " IT_WEB_ID "\n"
                  "timeouts: {handshake: 5s, connect: 2s, drain: 2s}\n"
                  "%s"
                  "inbound:\n"
                  "  - name: web-in\n"
                  "    listen: 127.0.0.1:%d\n"
                  "    upstream: 127.0.0.1:%d\n"
                  "    allow: [\"" IT_API_ID "\"%s]\n",
                  m.b_admin, it_dir(), cp_extra, m.in_port, m.echo_port, allow_extra);
    it_write_file("a.yaml",
                  "admin: 127.0.0.1:%d\n"
                  "workers: 2\n"
                  "access_log: true\n"
                  "identity:\n"
                  "  workload_api: unix:%s/a-wl.sock\n"
                  "timeouts: {handshake: 5s, connect: 2s, drain: 2s}\n"
                  "outbound:\n"
                  "  - name: api-out\n"
                  "    listen: 127.0.0.1:%d\n"
                  "    upstream: 127.0.0.1:%d\n"
                  "    expect: [\"" IT_WEB_ID "\"]\n",
                  m.a_admin, it_dir(), m.out_port, m.in_port);
    m.b = it_sidecar_start("b", "b.yaml", m.b_admin, 0);
    m.a = it_sidecar_start("a", "a.yaml", m.a_admin, 0);
}

static void expect_serial(const char *want, const char *what)
{
    uint64_t end = it_now_ms() + ROTATE_MS;
    char got[80];

    for (;;) {
        it_probe_serial(m.out_port, "a.out", got, sizeof(got));
        if (strcmp(got, want) == 0)
            return;
        ck_assert_msg(it_now_ms() < end, "%s: new handshakes still see serial %s, want %s", what,
                      got, want);
        it_sleep_ms(100);
    }
}

static void serial_of(const char *pem, char *dst)
{
    it_cert_serial(pem, dst, 80);
}

START_TEST(test_workload_api_rotation_under_load)
{
    char web[80], web2[80], web3[80], got[80], *dump = NULL;
    struct it_streams *st;
    uint64_t bytes;

    it_mesh_certs();
    it_certs("issue", "--ca", "ca", "--out", "web2", "--spiffe", IT_WEB_ID, NULL);
    it_certs("issue", "--ca", "ca", "--out", "web3", "--spiffe", IT_WEB_ID, NULL);
    serial_of("web.pem", web);
    serial_of("web2.pem", web2);
    serial_of("web3.pem", web3);
    write_spec("a.json", IT_API_ID, "api.pem", "api.key", NULL, NULL);
    write_spec("b.json", IT_WEB_ID, "web.pem", "web.key", NULL, NULL);
    start_mesh("");
    expect_serial(web, "first SVID");
    ck_assert_int_eq(it_http(m.b_admin, "GET", "/config_dump", &dump), 200);
    ck_assert_msg(strstr(dump, "\"workload_api\":{") && strstr(dump, "\"connected\":true") &&
                      strstr(dump, "\"cert\":\"(workload API)\""),
                  "config_dump: %s", dump);
    free(dump);

    /* tollgate check: the config, and whether the socket is there */
    {
        const char *argv[] = {it_env("TG_BIN"), "check", "-c", "b.yaml", NULL};
        char *out = NULL;

        ck_assert_int_eq(it_run(argv, NULL, 10000, &out, NULL), 0);
        ck_assert_msg(strstr(out, "ok: identity from the Workload API at ") &&
                          strstr(out, "(socket present)"),
                      "tollgate check: %s", out);
        free(out);
    }
    {
        char *stats = NULL; /* promtool is clean on a sidecar whose identity is an SVID */

        ck_assert_int_eq(it_http(m.b_admin, "GET", "/stats", &stats), 200);
        it_promtool_clean("sidecar on the Workload API", stats);
        free(stats);
    }
    st = it_streams_start(m.out_port, N_STREAMS, 7000);
    it_streams_expect_progress(st, "before rotation");
    write_spec("b.json", IT_WEB_ID, "web2.pem", "web2.key", NULL, NULL);
    expect_serial(web2, "rotation 1");
    it_streams_expect_progress(st, "after rotation 1");

    /* refused, the last good kept: a chain that is no DER, then a key that is not the
     * certificate's */
    write_spec("b.json", IT_WEB_ID, "web3.pem", "web3.key", "chain", NULL);
    ck_assert_msg(it_wait_lines("b.err", 1, 5000, "SVID refused", "x509_svid", NULL) == 1,
                  "a malformed chain was not refused");
    write_spec("b.json", IT_WEB_ID, "web3.pem", "web2.key", NULL, NULL);
    ck_assert_msg(it_wait_lines("b.err", 2, 5000, "SVID refused", NULL) == 2,
                  "a key of another certificate was not refused");
    it_probe_serial(m.out_port, "a.out", got, sizeof(got));
    ck_assert_msg(strcmp(got, web2) == 0, "after refusals B serves %s, want %s", got, web2);
    ck_assert_int_eq(it_http(m.b_admin, "GET", "/ready", NULL), 200);
    it_streams_expect_progress(st, "after the refusals");

    write_spec("b.json", IT_WEB_ID, "web3.pem", "web3.key", NULL, NULL);
    expect_serial(web3, "rotation 2");
    it_streams_expect_ok(st, "after rotation 2");
    bytes = it_streams_stop(st);
    fprintf(stderr, "workload_api: %llu bytes echoed over %d streams through 2 rotations\n",
            (unsigned long long)bytes, N_STREAMS);
    ck_assert_msg(it_stat(m.b_admin, "tollgate_identity_reload_failures_total", "") >= 2,
                  "refusals not counted");
}
END_TEST

/* A round trip through an outbound listener (a partner's, or A's) gets through. */
static bool gets_through(int port)
{
    char err[256];

    return it_round_trip(port, "partner\n", err) >= 0;
}

/* The workers take a new generation at their next loop turn: a new connection right after
 * the log line may still get the old one. True once gets_through(port) == want (5 s). */
static bool comes_to(int port, bool want)
{
    for (uint64_t end = it_now_ms() + 5000; gets_through(port) != want; it_sleep_ms(100))
        if (it_now_ms() >= end)
            return false;
    return true;
}

static struct it_proc *start_partner(const char *name, const char *cert, int *port)
{
    char cfg[64];

    *port = it_free_port();
    snprintf(cfg, sizeof(cfg), "%s.yaml", name);
    it_write_file(cfg,
                  "workers: 1\n"
                  "identity:\n"
                  "  cert: %s.pem\n"
                  "  key: %s.key\n"
                  "  trust_bundle: pca.pem\n"
                  "  trust_domains: {mesh.local: ca.pem}\n"
                  "timeouts: {handshake: 5s, connect: 2s, drain: 1s}\n"
                  "outbound:\n"
                  "  - name: p-out\n"
                  "    listen: 127.0.0.1:%d\n"
                  "    upstream: 127.0.0.1:%d\n"
                  "    expect: [\"" IT_WEB_ID "\"]\n",
                  cert, cert, *port, m.in_port);
    return it_sidecar_start(name, cfg, 0, *port);
}

START_TEST(test_workload_api_federated_bundle)
{
    int c_port, d_port;
    double td0;

    it_mesh_certs();
    it_certs("ca", "--out", "pca", "--cn", "partner CA", NULL);
    it_certs("issue", "--ca", "pca", "--out", "pok", "--spiffe", PARTNER_OK, NULL);
    it_certs("issue", "--ca", "pca", "--out", "pno", "--spiffe", PARTNER_NO, NULL);
    write_spec("a.json", IT_API_ID, "api.pem", "api.key", NULL, NULL);
    write_spec("b.json", IT_WEB_ID, "web.pem", "web.key", NULL, NULL);
    start_mesh(", \"" PARTNER_OK "\"");
    start_partner("c", "pok", &c_port);
    start_partner("d", "pno", &d_port);

    /* a sidecar whose Workload API is not there (yet): not ready, its listener closed, and
     * /config_dump says why */
    {
        int e_admin = it_free_port(), e_port = it_free_port();
        char *dump = NULL;

        it_write_file("e.yaml",
                      "admin: 127.0.0.1:%d\n"
                      "identity: {workload_api: unix://%s/nobody.sock}\n"
                      "inbound: [{listen: 127.0.0.1:%d, upstream: 127.0.0.1:%d}]\n",
                      e_admin, it_dir(), e_port, m.echo_port);
        it_spawn("e", (const char *const[]){it_env("TG_BIN"), "run", "-c", "e.yaml", NULL},
                 IT_STDIN_NULL);
        ck_assert_msg(it_wait_http(e_admin, "/ready", 503, 10000), "no 503 before an SVID");
        ck_assert_int_lt(it_connect(e_port, 1000), 0);
        ck_assert_int_eq(it_http(e_admin, "GET", "/config_dump", &dump), 200);
        ck_assert_msg(strstr(dump, "\"identity\":null") && strstr(dump, "\"connected\":false") &&
                          strstr(dump, "nobody.sock: no such file or directory"),
                      "config_dump: %s", dump);
        free(dump);
    }
    /* no federated bundle: partner.example is no trust domain of B's */
    ck_assert_msg(!gets_through(c_port), "a partner got in without its bundle");
    /* wolfSSL's own chain check finds no root for it: untrusted */
    td0 = it_stat(m.b_admin, "tollgate_handshakes_failed_total", "reason=\"untrusted\"") +
          it_stat(m.b_admin, "tollgate_handshakes_failed_total", "reason=\"trust_domain\"");
    ck_assert_msg(td0 >= 1, "not refused as untrusted or trust_domain (%.0f)", td0);

    write_spec("b.json", IT_WEB_ID, "web.pem", "web.key", NULL, "pca.pem");
    ck_assert_msg(it_wait_lines("b.err", 1, 5000, "1 federated trust domains", NULL) == 1,
                  "the federated bundle was not taken");
    ck_assert_msg(comes_to(c_port, true), "the allowed partner was refused");
    ck_assert_msg(!gets_through(d_port), "a partner the allow list does not name got in");
    ck_assert_msg(
        it_stat(m.b_admin, "tollgate_handshakes_failed_total", "reason=\"not_allowed\"") >= 1,
        "not refused as not_allowed");

    /* the bundle withdrawn: the partner is refused again */
    write_spec("b.json", IT_WEB_ID, "web.pem", "web.key", NULL, NULL);
    ck_assert_msg(
        it_wait_lines("b.err", 1, 5000, "0 federated trust domains), generation 3", NULL) == 1,
        "the withdrawn bundle was not applied");
    ck_assert_msg(comes_to(c_port, false), "a partner got in after its bundle was withdrawn");
}
END_TEST

START_TEST(test_workload_api_server_gone)
{
    char web[80], got[80], *dump = NULL;
    long long not_after;
    int ready;

    it_mesh_certs();
    write_spec("a.json", IT_API_ID, "api.pem", "api.key", NULL, NULL);
    write_spec("b.json", IT_WEB_ID, "web.pem", "web.key", NULL, NULL);
    start_mesh("");
    /* a short-lived SVID, made now (a loaded machine takes its time to start the mesh) */
    it_certs("issue", "--ca", "ca", "--out", "short", "--spiffe", IT_WEB_ID, "--valid-for", "6s",
             NULL);
    serial_of("short.pem", web);
    write_spec("b.json", IT_WEB_ID, "short.pem", "short.key", NULL, NULL);
    expect_serial(web, "the short-lived SVID");
    ck_assert_int_eq(it_http(m.b_admin, "GET", "/config_dump", &dump), 200);
    not_after = it_json_num(dump, "not_after"); /* the identity's comes first */
    free(dump);
    ck_assert_int_gt(not_after, 0);
    it_stop(m.b_wl, 3000);
    ck_assert_msg(it_wait_lines("b.err", 1, 5000, "connection lost", NULL) == 1,
                  "B did not notice its Workload API server go");
    /* the last good SVID serves on, while it is valid */
    if ((long long)time(NULL) + 1 < not_after) {
        it_probe_serial(m.out_port, "a.out", got, sizeof(got));
        ck_assert_msg(strcmp(got, web) == 0, "with the server gone B serves %s, want %s", got, web);
    }
    ready = it_http(m.b_admin, "GET", "/ready", NULL);
    ck_assert_msg(ready == 200 || (long long)time(NULL) >= not_after,
                  "/ready %d with the SVID still valid", ready);
    /* until it expires: then not ready */
    ck_assert_msg(it_wait_http(m.b_admin, "/ready", 503, 12000),
                  "/ready still 200 after the SVID expired");
    ck_assert_msg((long long)time(NULL) >= not_after, "not ready before the SVID expired");
    /* the server comes back with a fresh SVID: found again (backoff at most 4 s) */
    write_spec("b.json", IT_WEB_ID, "web.pem", "web.key", NULL, NULL);
    m.b_wl = spawn_server("b-wl2", "b-wl", "b.json");
    wait_server(m.b_wl);
    ck_assert_msg(it_wait_http(m.b_admin, "/ready", 200, 12000), "not ready again");
}
END_TEST

#define CP_ID "spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp"

static void write_mesh(const char *action)
{
    it_replace_file("mesh.yaml",
                    "authorization:\n"
                    "  close_denied: false\n"
                    "  rules:\n"
                    "    - name: api\n"
                    "      action: %s\n"
                    "      principals: [\"" IT_API_ID "\"]\n",
                    action);
}

/* A control plane beside the Workload API: B authenticates with its token and takes the
 * pushed authorization (applied to each SVID's generation), never a certificate. */
START_TEST(test_workload_api_with_control_plane)
{
    const char *argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    int cp_port = it_free_port();
    char err[256], *dump = NULL;

    it_mesh_certs();
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", CP_ID, NULL);
    it_write_file("tokens.txt", "bbbbbbbbbbbbbbbbbbbbbbbb default web\n");
    it_write_file("b.token", "bbbbbbbbbbbbbbbbbbbbbbbb\n");
    write_mesh("allow");
    it_write_file("cp.yaml",
                  "listen: 127.0.0.1:%d\n"
                  "trust_domain: mesh.local\n"
                  "server: {cert: cp.pem, key: cp.key}\n"
                  "ca: {cert: ca.pem, key: ca.key}\n"
                  "tokens: tokens.txt\n"
                  "mesh: [mesh.yaml]\n",
                  cp_port);
    it_spawn("cp", argv, IT_STDIN_NULL);
    ck_assert_msg(it_wait_port(cp_port, 10000), "tollgate-cp did not listen");
    write_spec("a.json", IT_API_ID, "api.pem", "api.key", NULL, NULL);
    write_spec("b.json", IT_WEB_ID, "web.pem", "web.key", NULL, NULL);
    snprintf(cp_extra, sizeof(cp_extra),
             "control_plane:\n"
             "  address: 127.0.0.1:%d\n"
             "  ca: ca.pem\n"
             "  token: b.token\n"
             "  server_ids: [\"" CP_ID "\"]\n",
             cp_port);
    start_mesh("");
    ck_assert_msg(it_wait_lines("b.err", 1, 5000, "authorization", "applied", NULL) >= 1,
                  "the pushed authorization was not applied");
    ck_assert_msg(it_round_trip(m.out_port, "allowed\n", err) >= 0, "refused: %s", err);
    ck_assert_int_eq(it_http(m.b_admin, "GET", "/config_dump", &dump), 200);
    ck_assert_msg(strstr(dump, "\"control_plane\":{") && strstr(dump, "\"workload_api\":{") &&
                      strstr(dump, "\"cert\":\"(workload API)\""),
                  "config_dump: %s", dump);
    free(dump);
    /* the scrape of a sidecar on the Workload API with a control plane: promtool is clean */
    ck_assert_int_eq(it_http(m.b_admin, "GET", "/stats", &dump), 200);
    it_promtool_clean("sidecar on the Workload API", dump);
    free(dump);
    /* the control plane denies api now: the next connection is refused */
    write_mesh("deny");
    ck_assert_msg(it_wait_lines("b.err", 2, 5000, "authorization", "applied", NULL) >= 2,
                  "the second authorization was not applied");
    ck_assert_msg(comes_to(m.out_port, false), "A is not refused after the push");
    ck_assert_msg(it_stat(m.b_admin, "tollgate_cp_pushes_accepted_total", "") >= 2,
                  "pushes not counted");
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("workload_api", "workload_api", NULL, setup, teardown, 90,
                         test_workload_api_rotation_under_load, test_workload_api_federated_bundle,
                         test_workload_api_server_gone, test_workload_api_with_control_plane);
}

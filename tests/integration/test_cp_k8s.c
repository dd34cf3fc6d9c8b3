/* The control plane as deployed in Kubernetes, end to end on loopback: tollgate-cp with an
 * admin endpoint and a kubernetes section (service-account signing keys made by
 * python3-cryptography, tests/unit/jwt/make_fixtures.py, with tokens issued now). Its
 * /healthz and /stats answer, and bad requests get 404, 405, 431 and 408. A sidecar in
 * control-plane mode, pointed at the control plane by a DNS name ("localhost:PORT") with a
 * projected-token file as its token, bootstraps: it gets spiffe://mesh.local/ns/demo/sa/client
 * and becomes ready. A sidecar with an expired token, and one with a token for another
 * audience, are refused with their reasons. SIGTERM: the control plane exits 0. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ISS "https://kubernetes.default.svc.cluster.local"

static int cp_port, cp_admin;

/* Writes the token of that name from tokens.txt into file. */
static void token_file(const char *name, const char *file)
{
    char *all = it_read_file("tokens.txt", NULL), *line, *save = NULL;
    bool found = false;

    ck_assert_ptr_nonnull(all);
    for (line = strtok_r(all, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(name);

        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            it_write_file(file, "%s", line + n + 1); /* kubelet writes no newline */
            found = true;
        }
    }
    free(all);
    ck_assert_msg(found, "no token %s", name);
}

static void write_sidecar(const char *file, const char *token, int admin, int in_port,
                          int echo_port)
{
    it_cfg_write(file,
                 &(struct it_cfg){.admin = admin,
                                  .workers = 1,
                                  .cp_port = cp_port,
                                  .cp_host = "localhost",
                                  .cp_token = token,
                                  .in = {{"in", in_port, echo_port}}},
                 NULL);
}

/* Sends raw bytes to the admin port and returns the status of the answer (-1: none). */
static int raw_status(int fd, const char *send, char *buf, size_t cap)
{
    size_t n;
    int status = -1;

    if (send != NULL)
        ck_assert(it_send_all(fd, send, strlen(send)));
    n = it_recv_full(fd, buf, cap - 1);
    buf[n] = '\0';
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        status = -1;
    return status;
}

static void setup(void)
{
    const char *argv[] = {"/usr/bin/python3", NULL, ".", NULL, NULL};
    char script[4096], now[32], *err = NULL;

    it_setup();
    it_certs("ca", "--out", "ca", "--cn", "k8s test CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    snprintf(script, sizeof(script), "%s/tests/unit/jwt/make_fixtures.py", it_env("TG_SOURCE_DIR"));
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    argv[1] = script;
    argv[3] = now;
    ck_assert_msg(it_run(argv, NULL, 60000, NULL, &err) == 0, "make_fixtures.py: %s", err);
    free(err);
    IT_FREE_PORTS(&cp_port, &cp_admin);
    it_write_file("mesh.yaml", "settings: {inbound: {mode: strict}}\n");
    it_cp_cfg_write("cp.yaml", cp_port, cp_admin,
                    "cert_ttl: 1h\n"
                    "kubernetes:\n"
                    "  issuer: " ISS "\n"
                    "  audiences: [tollgate]\n"
                    "  keys: jwks.json\n"
                    "mesh: mesh.yaml\n");
}

START_TEST(test_cp_k8s_admin_and_token_bootstrap)
{
    const char *argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    struct it_proc *cp = it_spawn("cp", argv, IT_STDIN_NULL), *sc;
    int echo_port = 0, in_port = it_free_port(), sc_admin = it_free_port(), slow, fd;
    char buf[8192], big[6000], *body = NULL;
    uint64_t slow_start;

    cp->must_exit_0 = true;
    ck_assert_msg(it_wait_http(cp_admin, "/healthz", 200, 10000), "no 200 on /healthz");
    ck_assert_int_eq(it_http(cp_admin, "GET", "/healthz", &body), 200);
    ck_assert_str_eq(body, "ok\n");
    free(body);

    /* a client that never finishes its request is answered 408 and closed within ~5 s; it
     * waits while the rest runs */
    slow = it_connect(cp_admin, 8000);
    ck_assert_int_ge(slow, 0);
    ck_assert(it_send_all(slow, "GET /heal", 9));
    slow_start = it_now_ms();

    ck_assert_int_eq(it_http(cp_admin, "POST", "/healthz", NULL), 405);
    ck_assert_int_eq(it_http(cp_admin, "GET", "/config", NULL), 404);
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /stats HTTP/1.1\r\nX-Big: ", 28);
    big[sizeof(big) - 1] = '\0';
    fd = it_connect(cp_admin, 5000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(raw_status(fd, big, buf, sizeof(buf)), 431);
    close(fd);

    /* a sidecar bootstraps with a projected service-account token, reaching us by name */
    it_echo_start("echo", &echo_port);
    token_file("rs256_ok", "client.token");
    write_sidecar("client.yaml", "client.token", sc_admin, in_port, echo_port);
    sc = it_sidecar_start("client", "client.yaml", sc_admin, 0);
    (void)sc;
    ck_assert_msg(it_wait_lines("cp.err", 1, 5000, "is spiffe://mesh.local/ns/demo/sa/client",
                                "by service-account token", NULL) >= 1,
                  "the control plane did not log the token's identity");
    ck_assert_msg(
        it_wait_lines("cp.err", 1, 5000, "issued spiffe://mesh.local/ns/demo/sa/client", NULL) >= 1,
        "no certificate issued");
    ck_assert_int_eq(it_http(cp_admin, "GET", "/stats", &body), 200);
    ck_assert_msg(strstr(body, "tollgate_cp_certs_issued_total 1\n") != NULL &&
                      strstr(body, "tollgate_cp_streams_open 1\n") != NULL &&
                      strstr(body, "# TYPE tollgate_cp_pushes_total counter") != NULL,
                  "%s", body);
    free(body);

    /* expired, and for another audience: refused, each with its reason */
    token_file("expired", "expired.token");
    write_sidecar("expired.yaml", "expired.token", it_free_port(), it_free_port(), echo_port);
    token_file("wrong_aud", "aud.token");
    write_sidecar("aud.yaml", "aud.token", it_free_port(), it_free_port(), echo_port);
    /* a token line over 8 KiB is refused by the sidecar itself, never sent cut */
    {
        static char huge[9001];

        memset(huge, 'A', sizeof(huge) - 1);
        it_write_file("huge.token", "%s\n", huge);
    }
    write_sidecar("huge.yaml", "huge.token", it_free_port(), it_free_port(), echo_port);
    {
        const char *a1[] = {it_env("TG_BIN"), "run", "-c", "expired.yaml", NULL};
        const char *a2[] = {it_env("TG_BIN"), "run", "-c", "aud.yaml", NULL};
        const char *a3[] = {it_env("TG_BIN"), "run", "-c", "huge.yaml", NULL};

        it_spawn("expired", a1, IT_STDIN_NULL);
        it_spawn("aud", a2, IT_STDIN_NULL);
        it_spawn("huge", a3, IT_STDIN_NULL);
    }
    ck_assert_msg(it_wait_lines("huge.err", 1, 10000, "bootstrap token",
                                "first line over 8192 bytes", NULL) >= 1,
                  "a token over 8 KiB was not refused by the sidecar");
    ck_assert_msg(it_wait_lines("cp.err", 1, 10000,
                                "refused: service-account token refused: "
                                "expired ",
                                NULL) >= 1,
                  "the expired token was not refused as such");
    ck_assert_msg(it_wait_lines("cp.err", 1, 10000,
                                "refused: service-account token refused: "
                                "\"aud\" names none of our audiences",
                                NULL) >= 1,
                  "the wrong audience was not refused as such");
    ck_assert_msg(it_wait_lines("expired.err", 1, 10000, "closed by the control plane",
                                "service-account token refused: expired", NULL) >= 1,
                  "the sidecar was not told why");

    /* the slow client got 408 and was closed, within the timeout and a margin */
    ck_assert_int_eq(raw_status(slow, NULL, buf, sizeof(buf)), 408);
    ck_assert_msg(it_now_ms() - slow_start < 8000, "408 after %llu ms",
                  (unsigned long long)(it_now_ms() - slow_start));
    ck_assert_int_eq(it_recv_eof(slow), 0);
    close(slow);

    ck_assert_int_eq(it_stop(cp, 10000), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("cp_k8s", "cp_k8s", NULL, setup, it_teardown, 120,
                         test_cp_k8s_admin_and_token_bootstrap);
}

/* CRLs in the static config (identity.crl): made by `openssl ca`, checked by wolfSSL inside
 * the handshake, and replaced live: a certificate revoked in a new CRL is refused at its
 * next handshake ("revoked"); a broken or stale (nextUpdate passed) CRL is refused and the
 * last good one kept; an issuer without a CRL (an intermediate) is refused. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct it_proc *echo, *b;
static int echo_port, in_port, b_admin;

/* A fresh CRL into crl.pem, replaced in one step as a Secret update would. */
static void make_crl(void)
{
    it_crl("ca", "crl.pem", 86400);
}

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    make_crl();
    echo = it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&in_port, &b_admin);
    it_cfg_write("b.yaml",
                 &(struct it_cfg){.admin = b_admin,
                                  .id = "web",
                                  .id_more = "crl: [crl.pem]",
                                  .in = {{"web-in", in_port, echo_port}}},
                 NULL);
    b = it_sidecar_start("b", "b.yaml", b_admin, 0);
}

static bool call_as(const char *cert)
{
    return it_s_client_echo(in_port, cert);
}

/* Whether the sidecar at admin counted (within 5 s) a handshake of listener refused as
 * revoked. */
static bool counted_revoked(int admin, const char *listener, const char *direction)
{
    char labels[128];

    snprintf(labels, sizeof(labels), "listener=\"%s\",direction=\"%s\",reason=\"revoked\"",
             listener, direction);
    return it_wait_stat(admin, "tollgate_handshakes_failed_total", labels, 1, 5000) >= 1;
}

/* Revokes cert in the CA's CRL and waits for the sidecar whose log is err to reload it. */
static void revoke_and_reload(const char *cert, const char *err)
{
    it_openssl_ca("ca", "-revoke %s.pem", cert);
    make_crl();
    ck_assert_msg(it_wait_file_contains(err, "identity reloaded", 5000), "CRL not reloaded");
}

START_TEST(test_crl_revocation_applies_live_and_bad_crl_is_refused)
{
    ck_assert_msg(call_as("api"), "api refused under an empty CRL");

    /* a CRL that does not parse: refused, the old one stays */
    it_replace_file("crl.pem", "-----BEGIN X509 CRL-----\nnot a crl\n-----END X509 CRL-----\n");
    ck_assert_msg(it_wait_file_contains("b.err", "identity.crl", 5000), "broken CRL not reported");
    ck_assert(it_file_contains("b.err", "refused, keeping serial"));
    ck_assert_msg(call_as("api"), "api refused after a broken CRL was refused");

    /* revoke api: the next handshake is refused as revoked */
    revoke_and_reload("api", "b.err");
    ck_assert_msg(!call_as("api"), "a certificate revoked by CRL got through");
    ck_assert_msg(counted_revoked(b_admin, "web-in", "inbound"), "not counted as revoked");
    ck_assert_int_eq(it_echo_accepts(echo), 2);
}
END_TEST

/* The attack on a reload's edge: a caller about to be revoked opens its TCP connection first,
 * so that the sidecar accepts it under the old CRL, and shakes hands only once the new CRL is
 * in. The handshake ends under the new generation, and is refused as revoked. */
START_TEST(test_handshake_held_across_a_revocation_is_refused)
{
    char out[256] = "";
    struct it_proc *held = it_held_handshake("held", in_port, "api", false);

    ck_assert_msg(it_wait_file_contains("held.out", "connected", 10000),
                  "the caller did not connect");
    revoke_and_reload("api", "b.err");
    it_write_file("go", "go\n");
    ck_assert_msg(!it_held_through(held, out, sizeof(out)),
                  "a handshake held open across its revocation got through: %s", out);
    ck_assert_msg(counted_revoked(b_admin, "web-in", "inbound"), "not counted as revoked");
    ck_assert_int_eq(it_echo_accepts(echo), 0);
}
END_TEST

/* The same edge outbound: a server about to be revoked takes our sidecar's connection and
 * answers its ClientHello only once the new CRL is in; the sidecar refuses it as revoked and
 * the app's bytes never reach it. */
START_TEST(test_server_held_across_a_revocation_is_refused)
{
    int srv_port = it_free_port(), out_port = it_free_port(), a_admin = it_free_port(), fd;
    char out[256] = "", buf[8];
    struct it_proc *held = it_held_handshake("held", srv_port, "web", true);

    it_cfg_write("a.yaml",
                 &(struct it_cfg){.admin = a_admin,
                                  .id = "api",
                                  .id_more = "crl: [crl.pem]",
                                  .timeouts = "handshake: 10s, connect: 10s",
                                  .out = {{"api-out", out_port, srv_port, IT_WEB_ID}}},
                 NULL);
    it_sidecar_start("a", "a.yaml", a_admin, 0);
    ck_assert_msg(it_wait_file_contains("held.out", "listening", 10000),
                  "the server did not start");
    fd = it_connect(out_port, 5000);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(it_wait_file_contains("held.out", "connected", 10000),
                  "the sidecar did not dial the server");
    revoke_and_reload("web", "a.err");
    ck_assert(it_send_all(fd, "ping\n", 5));
    it_write_file("go", "go\n");
    ck_assert_msg(it_recv_full(fd, buf, 5) < 5, "the app got an answer from a revoked server");
    close(fd);
    ck_assert_msg(!it_held_through(held, out, sizeof(out)),
                  "a server held across its revocation got the app's bytes: %s", out);
    ck_assert_msg(counted_revoked(a_admin, "api-out", "outbound"), "not counted as revoked");
}
END_TEST

/* nextUpdate in the past: a CRL that is out of date may miss revocations, so it is refused
 * like a broken one and the last good one stays; api is still served under the good one. */
START_TEST(test_stale_crl_is_refused_and_the_last_good_one_kept)
{
    ck_assert_msg(call_as("api"), "api refused under a fresh CRL");
    it_crl("ca", "crl.pem", 0);
    ck_assert_msg(it_wait_file_contains("b.err", "refused, keeping serial", 5000),
                  "a stale CRL was not refused");
    ck_assert(it_file_contains("b.err", "identity.crl"));
    ck_assert_msg(call_as("api"), "api refused after a stale CRL was refused");
    ck_assert_int_eq(it_echo_accepts(echo), 2);
}
END_TEST

/* Once CRLs are configured every issuer needs one: a leaf under an intermediate (made by the
 * openssl CLI) for which no CRL is configured is refused, although nothing revoked it. */
START_TEST(test_issuer_without_a_crl_is_refused)
{
    char cmd[2048], *out = NULL, *err = NULL;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    bool echoed;

    snprintf(cmd, sizeof(cmd),
             "set -e; o='%s';"
             "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n'"
             " > int.ext;"
             "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
             "extendedKeyUsage=clientAuth,serverAuth\\nsubjectAltName=URI:" IT_API_ID "\\n'"
             " > deep.ext;"
             "$o req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout int1.key "
             "-out int1.csr -subj /CN=int1 2>/dev/null;"
             "$o x509 -req -in int1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
             "-extfile int.ext -out int1.pem 2>/dev/null;"
             "$o req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout deep.key "
             "-out deep.csr -subj /CN=deep 2>/dev/null;"
             "$o x509 -req -in deep.csr -CA int1.pem -CAkey int1.key -CAcreateserial -days 1 "
             "-extfile deep.ext -out deep.pem 2>/dev/null;"
             "(echo marker-c41; sleep 1) | $o s_client -connect 127.0.0.1:%d -CAfile ca.pem "
             "-tls1_3 -brief -cert deep.pem -key deep.key -cert_chain int1.pem 2>&1",
             it_openssl(), in_port);
    ck_assert_msg(it_run(argv, NULL, 30000, &out, &err) >= 0, "openssl did not end: %s", err);
    echoed = out != NULL && strstr(out, "marker-c41") != NULL;
    free(out);
    free(err);
    ck_assert_msg(!echoed, "a chain whose intermediate has no CRL got through");
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_handshakes_failed_total", "listener=\"web-in\"",
                               1, 5000) >= 1,
                  "the refusal was not counted");
    ck_assert_int_eq(it_echo_accepts(echo), 0);
    ck_assert_msg(call_as("api"), "api (issued by the root, which has a CRL) refused");
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("crl", "crl", NULL, setup, it_teardown, 60,
                         test_crl_revocation_applies_live_and_bad_crl_is_refused,
                         test_stale_crl_is_refused_and_the_last_good_one_kept,
                         test_handshake_held_across_a_revocation_is_refused,
                         test_server_held_across_a_revocation_is_refused,
                         test_issuer_without_a_crl_is_refused);
}

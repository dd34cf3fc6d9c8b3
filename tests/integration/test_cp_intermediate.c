/* tollgate-cp signing with an issuing intermediate under an offline root: cp.yaml's ca: holds
 * the intermediate's key and certificate, roots: the root's certificate; the root's key is
 * deleted before tollgate-cp starts. Two sidecars that bootstrap by token (A: api-out -> B,
 * B: web-in -> echo) hold only the root: their traffic proves that what tollgate-cp hands out
 * chains leaf, intermediate, root.
 *
 * revoke: the intermediate's CRL (openssl ca), published through tollgate-cp's
 * revocations.crls beside the root's (made before the root went off line), lists B's serial: A
 * refuses B as `revoked`; a CRL listing nothing lets it in again.
 *
 * rotation (certificates of 6 s, renewed every 2 s): while 100 streams run, cp.yaml switches
 * to a second intermediate under the same root: tollgate-cp reloads, the sidecars renew from
 * the new one, no stream drops, no handshake fails, every byte comes back. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_STREAMS 100

static int cp_port, echo_port, in_port, out_port, a_admin, b_admin, ttl_s;

/* cp.yaml signing with the intermediate INT (INT.pem, INT.key). */
static void write_cp(const char *in)
{
    it_replace_file("cp.yaml",
                    "listen: 127.0.0.1:%d\n"
                    "trust_domain: mesh.local\n"
                    "server: {cert: cp.pem, key: cp.key}\n"
                    "ca: {cert: %s.pem, key: %s.key}\n"
                    "roots: [root.pem]\n"
                    "cert_ttl: %ds\n"
                    "tokens: tokens.txt\n"
                    "mesh: [mesh.yaml]\n",
                    cp_port, in, in, ttl_s);
}

static void setup(void)
{
    char key[512], root[512], ca[512];

    it_setup();
    it_certs("ca", "--out", "root", "--cn", "offline root", NULL);
    it_certs("intermediate", "--ca", "root", "--out", "int1", "--cn", "issuing 1", NULL);
    it_certs("intermediate", "--ca", "root", "--out", "int2", "--cn", "issuing 2", NULL);
    it_certs("issue", "--ca", "int1", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    /* the root's CRL, made while it is on line: a trust domain with CRLs needs one of each CA */
    it_crl_index("root", NULL, 0);
    it_crl("root", "root.crl", 3600);
    snprintf(key, sizeof(key), "%s/root.key", it_dir());
    ck_assert_int_eq(unlink(key), 0); /* the root is offline from here on */
    /* ca.pem: what the sidecars verify tollgate-cp with, the root */
    snprintf(root, sizeof(root), "%s/root.pem", it_dir());
    snprintf(ca, sizeof(ca), "%s/ca.pem", it_dir());
    ck_assert_int_eq(
        it_run((const char *const[]){"/bin/cp", root, ca, NULL}, NULL, 5000, NULL, NULL), 0);
    IT_FREE_PORTS(&cp_port, &in_port, &out_port, &a_admin, &b_admin);
    it_cp_tokens(NULL);
    it_write_file("mesh.yaml", "authorization: {default: allow}\n");
    write_cp("int1");
    it_cp_start("cp", "cp.yaml", cp_port);
    it_echo_start("echo", &echo_port);
    it_cfg_write_cp("b.yaml", b_admin, cp_port, "b.token",
                    &(struct it_cfg){.workers = 2,
                                     .cp_renew = 0.3,
                                     .in = {{"web-in", in_port, echo_port, IT_API_ID}}});
    it_cfg_write_cp("a.yaml", a_admin, cp_port, "a.token",
                    &(struct it_cfg){.workers = 2,
                                     .cp_renew = 0.3,
                                     .out = {{"api-out", out_port, in_port, IT_WEB_ID}}});
    it_sidecar_start("b", "b.yaml", b_admin, 0);
    it_sidecar_start("a", "a.yaml", a_admin, 0);
}

static void setup_revoke(void)
{
    ttl_s = 3600;
    setup();
}

static void setup_rotation(void)
{
    ttl_s = 6;
    setup();
}

static void teardown(void)
{
    it_teardown();
}

/* Pushes mesh.yaml = text and waits for A to ACK it. */
static void push(const char *text)
{
    double a0 = it_stat(a_admin, "tollgate_cp_pushes_accepted_total", "");

    it_replace_file("mesh.yaml", "%s", text);
    ck_assert_msg(it_wait_stat(a_admin, "tollgate_cp_pushes_accepted_total", "", a0 + 1, 10000) >=
                      a0 + 1,
                  "A did not ACK: %s", text);
}

START_TEST(test_cp_intermediate_revokes_by_its_crl)
{
    char s[80], err[256];
    const char *serial = s;

    /* B's certificate, from int1, as A sees it (upper case for openssl's index) */
    it_probe_serial(out_port, "a.out", s, sizeof(s));
    for (char *p = s; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 32);
    it_crl_index("int1", &serial, 1);
    it_crl("int1", "int1.crl", 3600);
    push("authorization: {default: allow}\nrevocations: {crls: [root.crl, int1.crl]}\n");
    ck_assert_msg(it_round_trip(out_port, "revoked?", err) < 0, "a revoked certificate got in");
    ck_assert_msg(it_wait_stat(a_admin, "tollgate_handshakes_failed_total", "reason=\"revoked\"", 1,
                               5000) >= 1,
                  "A did not count B's certificate as revoked");
    /* the intermediate's CRL listing nothing: B gets in again */
    it_crl_index("int1", NULL, 0);
    it_crl("int1", "int1.crl", 3600);
    push("authorization: {default: allow}\nrevocations: {crls: [root.crl, int1.crl]}\n");
    ck_assert_msg(it_round_trip(out_port, "unrevoked", err) > 0, "after an empty CRL: %s", err);
}
END_TEST

START_TEST(test_cp_intermediate_rotates_live)
{
    struct it_streams *st;
    char s[80], int2_serial[80];
    double b0, a0, hs[2];
    uint64_t end;

    it_probe_serial(out_port, "a.out", s, sizeof(s));
    st = it_streams_start(out_port, N_STREAMS, 4000);
    hs[0] = it_stat(a_admin, "tollgate_handshakes_failed_total", "");
    hs[1] = it_stat(b_admin, "tollgate_handshakes_failed_total", "");
    it_sleep_ms(500);
    write_cp("int2");
    it_cert_serial("int2.pem", int2_serial, sizeof(int2_serial));
    ck_assert_msg(it_wait_lines("cp.err", 1, 10000, "CA serial", int2_serial, NULL) >= 1,
                  "tollgate-cp did not switch to int2 (serial %s)", int2_serial);
    /* two renewals each after the switch: the leaves now come from int2 */
    b0 = it_stat(b_admin, "tollgate_cp_certs_accepted_total", "");
    a0 = it_stat(a_admin, "tollgate_cp_certs_accepted_total", "");
    end = it_now_ms() + 4 * 1000 * (uint64_t)ttl_s;
    while (it_now_ms() < end &&
           (it_stat(b_admin, "tollgate_cp_certs_accepted_total", "") < b0 + 2 ||
            it_stat(a_admin, "tollgate_cp_certs_accepted_total", "") < a0 + 2)) {
        it_streams_expect_ok(st, "during the intermediate rotation");
        it_sleep_ms(250);
    }
    ck_assert_msg(it_stat(b_admin, "tollgate_cp_certs_accepted_total", "") >= b0 + 2 &&
                      it_stat(a_admin, "tollgate_cp_certs_accepted_total", "") >= a0 + 2,
                  "the sidecars did not renew from the new intermediate");
    it_probe_serial(out_port, "a.out", s, sizeof(s)); /* new leaves on both ends */
    it_streams_expect_progress(st, "after the intermediate rotation");
    ck_assert_msg(it_stat(a_admin, "tollgate_handshakes_failed_total", "") == hs[0] &&
                      it_stat(b_admin, "tollgate_handshakes_failed_total", "") == hs[1],
                  "handshakes failed during the intermediate rotation");
    fprintf(stderr, "cp_intermediate: %llu bytes echoed over %d streams through the rotation\n",
            (unsigned long long)it_streams_stop(st), N_STREAMS);
}
END_TEST

Suite *tg_test_suite(void)
{
    const struct {
        const char *name;
        void (*setup)(void);
        const TTest *test;
    } cases[] = {{"revoke", setup_revoke, test_cp_intermediate_revokes_by_its_crl},
                 {"rotation", setup_rotation, test_cp_intermediate_rotates_live}};
    Suite *s = suite_create("cp_intermediate");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);

        tcase_add_checked_fixture(tc, cases[i].setup, teardown);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

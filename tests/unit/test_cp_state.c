/* tollgate-cp's state and the CRLs it publishes: each is checked as a sidecar checks a pushed
 * one (a stale one refuses the state, naming its file), and those of our own roots, only
 * those, go into the server context that verifies client certificates. Certificates by
 * $TG_CERTS_BIN, CRLs by the openssl CLI. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "certs_util.h"
#include "cp_state.h"
#include "tollgate/tls.h"

#define CP_ID "spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp"

/* A CRL of ca (ca.pem, ca.key) revoking nothing, into out; its nextUpdate `hours` from now
 * (negative: that long ago, by setting the dates explicitly). */
static void make_crl(const char *ca, const char *out, int hours)
{
    char cmd[2048], dates[128] = "";

    cu_write("ca.cnf", "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\n"
                       "crlnumber = crlnumber\ndefault_md = sha256\npolicy = p\n[p]\n");
    cu_write("index.txt", "");
    cu_write("crlnumber", "01\n");
    if (hours > 0)
        snprintf(dates, sizeof(dates), "-crlhours %d", hours);
    else
        snprintf(dates, sizeof(dates),
                 "-crl_lastupdate 20200101000000Z -crl_nextupdate "
                 "20200102000000Z");
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl ca -config ca.cnf -batch -keyfile %s.key -cert %s.pem -gencrl %s "
             "-out %s 2>/dev/null",
             cu_dir, ca, ca, dates, out);
    ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

static void write_config(const char *crls)
{
    char text[1024];

    snprintf(text, sizeof(text),
             "listen: 127.0.0.1:0\n"
             "trust_domain: mesh.local\n"
             "server: {cert: cp.pem, key: cp.key}\n"
             "ca: {cert: root.pem, key: root.key}\n"
             "extra_roots: {partner.example: [partner.pem]}\n"
             "mesh: mesh.yaml\n");
    cu_write("cp.yaml", text);
    snprintf(text, sizeof(text), "revocations: {crls: [%s]}\n", crls);
    cu_write("mesh.yaml", crls[0] ? text : "authorization: {default: allow}\n");
}

static struct tg_cp_state *load(char *err)
{
    struct tg_cp_state *s = NULL;

    if (tg_cp_state_load(cu_path("cp.yaml"), &s, NULL, err) < 0)
        return NULL;
    return s;
}

static void setup(void)
{
    cu_setup();
    cu_certs("ca", "--out", "root", NULL);
    cu_certs("ca", "--out", "partner", "--cn", "partner root", NULL);
    cu_certs("issue", "--ca", "root", "--out", "cp", "--spiffe", CP_ID, NULL);
    make_crl("root", "own.crl", 1);
    make_crl("partner", "partner.crl", 1);
    ck_assert_int_eq(tg_tls_init(), 0);
}

static void teardown(void)
{
    tg_tls_cleanup();
    cu_teardown();
}

START_TEST(test_cp_state_own_crl_verifies_clients_partner_crl_only_pushed)
{
    struct tg_cp_state *none, *own, *both, *again;
    char err[TG_ERRLEN] = "";

    write_config("");
    ck_assert_msg((none = load(err)) != NULL, "%s", err);
    ck_assert_uint_eq(none->server_id->n_crl, 0);

    write_config("own.crl");
    ck_assert_msg((own = load(err)) != NULL, "%s", err);
    ck_assert_uint_eq(own->server_id->n_crl, 1);
    ck_assert_uint_eq(own->res[TG_RES_REVOCATIONS]->u.revocations.n_crls, 1);

    /* the partner's CRL is pushed (its sidecars' peers) but cannot revoke what we accept */
    write_config("partner.crl, own.crl");
    ck_assert_msg((both = load(err)) != NULL, "%s", err);
    ck_assert_uint_eq(both->server_id->n_crl, 1);
    ck_assert_uint_eq(both->res[TG_RES_REVOCATIONS]->u.revocations.n_crls, 2);
    ck_assert_msg((again = load(err)) != NULL, "%s", err);

    /* a stream verified under one state is trusted under another only with the same CRLs */
    ck_assert(!tg_cp_state_same_trust(none, own));
    ck_assert(tg_cp_state_same_trust(own, both));
    ck_assert(tg_cp_state_same_trust(both, again));
    tg_cp_state_unref(none);
    tg_cp_state_unref(own);
    tg_cp_state_unref(both);
    tg_cp_state_unref(again);
}
END_TEST

START_TEST(test_cp_state_crl_a_sidecar_would_refuse_is_refused)
{
    char err[TG_ERRLEN] = "";

    make_crl("root", "stale.crl", -1);
    write_config("own.crl, stale.crl");
    ck_assert_ptr_null(load(err));
    ck_assert_msg(strstr(err, "stale.crl") != NULL && strstr(err, "stale:") != NULL, "%s", err);

    /* signed by no root we publish */
    cu_certs("ca", "--out", "stranger", NULL);
    make_crl("stranger", "stranger.crl", 1);
    write_config("stranger.crl");
    ck_assert_ptr_null(load(err));
    ck_assert_msg(strstr(err, "stranger.crl") != NULL, "%s", err);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE("cp_state", "crls", &tc,
                             test_cp_state_own_crl_verifies_clients_partner_crl_only_pushed,
                             test_cp_state_crl_a_sidecar_would_refuse_is_refused);

    tcase_add_checked_fixture(tc, setup, teardown);
    return s;
}

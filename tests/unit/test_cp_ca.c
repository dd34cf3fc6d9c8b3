/* tollgate-cp signing with an intermediate under an offline root: cp.yaml's ca: holds the
 * intermediate's key and certificate, roots: the root's certificate (never its key). Loads
 * that do not hold refuse with a message naming what was wrong: an intermediate of another
 * root, a key that is not the certificate's, a certificate that is no CA or whose keyUsage
 * lacks keyCertSign. And what the intermediate issues chains leaf, intermediate, to the root.
 * Certificates by $TG_CERTS_BIN, the one with a bad keyUsage by the openssl CLI. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "certs_util.h"
#include "cp_ca.h"
#include "cp_state.h"
#include "tollgate/certgen.h"
#include "tollgate/file.h"
#include "tollgate/tls.h"

#define CP_ID "spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp"
#define WEB_ID "spiffe://mesh.local/ns/default/sa/web"

static void sh(const char *script)
{
    char cmd[2048];

    snprintf(cmd, sizeof(cmd), "cd %s && (%s) >/dev/null 2>&1", cu_dir, script);
    ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

static void setup(void)
{
    cu_setup();
    cu_certs("ca", "--out", "root", NULL);
    cu_certs("ca", "--out", "other", "--cn", "other root", NULL);
    cu_certs("intermediate", "--ca", "root", "--out", "int", NULL);
    cu_certs("intermediate", "--ca", "other", "--out", "stray", NULL);
    cu_certs("issue", "--ca", "root", "--out", "cp", "--spiffe", CP_ID, NULL);
    cu_certs("issue", "--ca", "root", "--out", "leaf", "--spiffe", WEB_ID, NULL);
    /* a CA:TRUE certificate under root whose keyUsage is digitalSignature only */
    cu_write("ku.cnf", "[e]\nbasicConstraints = critical,CA:TRUE\n"
                       "keyUsage = critical,digitalSignature\n");
    sh("openssl ecparam -name prime256v1 -genkey -noout -out ku.key && "
       "openssl req -new -key ku.key -subj /CN=ku -out ku.csr && "
       "openssl x509 -req -in ku.csr -CA root.pem -CAkey root.key -CAcreateserial -days 2 "
       "-extfile ku.cnf -extensions e -out ku.pem");
    ck_assert_int_eq(tg_tls_init(), 0);
}

static void teardown(void)
{
    tg_tls_cleanup();
    cu_teardown();
}

/* cp.yaml with ca: {cert, key} and, unless NULL, roots: [roots]. */
static void write_config(const char *cert, const char *key, const char *roots)
{
    FILE *f = fopen(cu_path("cp.yaml"), "w");

    ck_assert_ptr_nonnull(f);
    fprintf(f, "listen: 127.0.0.1:0\ntrust_domain: mesh.local\nmesh: mesh.yaml\n");
    fprintf(f, "server: {cert: cp.pem, key: cp.key}\nca: {cert: %s, key: %s}\n", cert, key);
    if (roots != NULL)
        fprintf(f, "roots: [%s]\n", roots);
    fclose(f);
    cu_write("mesh.yaml", "authorization: {default: allow}\n");
}

START_TEST(test_cp_ca_intermediate_loads)
{
    struct tg_cp_state *s = NULL;
    char err[TG_ERRLEN] = "";

    write_config("int.pem", "int.key", "root.pem");
    ck_assert_msg(tg_cp_state_load(cu_path("cp.yaml"), &s, NULL, err) == 0, "%s", err);
    tg_cp_state_unref(s);
    /* int.chain.pem: the intermediate and those above it, never the root: the same */
    write_config("int.chain.pem", "int.key", "root.pem");
    ck_assert_msg(tg_cp_state_load(cu_path("cp.yaml"), &s, NULL, err) == 0, "%s", err);
    tg_cp_state_unref(s);
}
END_TEST

/* One refusal each: the ca: files, the roots:, and the start of the message it must give. */
static const struct {
    const char *cert, *key, *roots, *want;
} bad[] = {
    {"stray.pem", "stray.key", "root.pem", "does not chain to the roots"},
    {"int.pem", "int.key", NULL, "roots: required, since ca.cert"},
    {"int.pem", "root.key", "root.pem", "the key does not belong to the certificate"},
    {"int.pem", "leaf.key", "root.pem", "the key does not belong to the certificate"},
    {"leaf.pem", "leaf.key", "root.pem", "is not a CA certificate"},
    {"ku.pem", "ku.key", "root.pem", "its keyUsage lacks keyCertSign"},
    {"root.key", "int.key", "root.pem", "cert: no certificate"},
};

START_TEST(test_cp_ca_refusals)
{
    struct tg_cp_state *s = NULL;
    char err[TG_ERRLEN] = "";

    write_config(bad[_i].cert, bad[_i].key, bad[_i].roots);
    ck_assert_int_lt(tg_cp_state_load(cu_path("cp.yaml"), &s, NULL, err), 0);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, bad[_i].want) != NULL, "%s/%s: got \"%s\", want \"%s\"", bad[_i].cert,
                  bad[_i].key, err, bad[_i].want);
}
END_TEST

/* A CSR signed through the intermediate: the chain handed back is the leaf, then the
 * intermediate, and it verifies against the root alone; the root's key is never read. */
START_TEST(test_cp_ca_intermediate_issues_a_chain)
{
    struct tg_cert_spec spec = {.cn = "web", .uris = (const char *const[]){WEB_ID}, .n_uris = 1};
    struct tg_cp_ca *ca = NULL;
    struct tg_key *k = NULL;
    struct tg_cert_der up;
    unsigned char *csr = NULL, *leaf = NULL, *up_der = NULL;
    char *cert, *key, *root, *chain = NULL, err[TG_ERRLEN] = "";
    const char *second;
    size_t cert_len, key_len, root_len, csr_len, chain_len, leaf_len;

    cert = cu_read("int.pem", &cert_len);
    key = cu_read("int.key", &key_len);
    root = cu_read("root.pem", &root_len);
    ck_assert_msg(tg_cp_ca_new(cert, cert_len, key, key_len, "int", &ca, err) == 0, "%s", err);
    ck_assert_ptr_null(tg_cp_ca_root_pem(ca));
    ck_assert_int_eq(tg_key_generate(&k, err), 0);
    ck_assert_int_eq(tg_csr_make(&spec, k, &csr, &csr_len, err), 0);
    ck_assert_msg(tg_cp_ca_sign(ca, csr, csr_len, WEB_ID, 3600, &chain, &chain_len, err) == 0, "%s",
                  err);
    second = strstr(chain + 1, "-----BEGIN CERTIFICATE-----");
    ck_assert_ptr_nonnull(second);
    ck_assert_ptr_null(strstr(second + 1, "-----BEGIN CERTIFICATE-----"));
    ck_assert_int_eq(tg_pem_cert_der(chain, chain_len, "leaf", &leaf, &leaf_len, err), 0);
    ck_assert_int_eq(tg_pem_cert_der(second, strlen(second), "int", &up_der, &up.len, err), 0);
    up.der = up_der;
    ck_assert_msg(tg_cert_chain_check((const char *const[]){root}, 1, &up, 1, leaf, leaf_len,
                                      "leaf", err) == 0,
                  "%s", err);
    /* and not without the intermediate */
    ck_assert_int_eq(
        tg_cert_chain_check((const char *const[]){root}, 1, NULL, 0, leaf, leaf_len, "leaf", err),
        TG_EINVAL);
    /* a CSR whose signature does not verify */
    csr[csr_len - 3] ^= 0x55;
    free(chain);
    chain = NULL;
    ck_assert_int_eq(tg_cp_ca_sign(ca, csr, csr_len, WEB_ID, 3600, &chain, &chain_len, err),
                     TG_EINVAL);
    ck_assert_ptr_null(chain);
    free(up_der);
    free(leaf);
    free(csr);
    tg_key_free(k);
    tg_cp_ca_free(ca);
    free(cert);
    tg_wipe_free(key, key_len);
    free(root);
}
END_TEST

/* The admission webhook's server certificate through the intermediate: leaf + intermediate,
 * and the key handed back is the leaf's. */
START_TEST(test_cp_ca_intermediate_issues_dns)
{
    struct tg_cp_ca *ca = NULL;
    struct tg_key *k = NULL;
    unsigned char *leaf = NULL;
    char *cert, *key, *chain = NULL, *leaf_key = NULL, err[TG_ERRLEN] = "";
    size_t cert_len, key_len, chain_len, leaf_key_len, leaf_len;

    cert = cu_read("int.chain.pem", &cert_len);
    key = cu_read("int.key", &key_len);
    ck_assert_msg(tg_cp_ca_new(cert, cert_len, key, key_len, "int", &ca, err) == 0, "%s", err);
    ck_assert_msg(tg_cp_ca_issue_dns(ca, (const char *const[]){"hook.svc"}, 1, 600, &chain,
                                     &chain_len, &leaf_key, &leaf_key_len, err) == 0,
                  "%s", err);
    ck_assert_ptr_nonnull(strstr(strstr(chain, "-----END CERTIFICATE-----"), "BEGIN CERTIFICATE"));
    ck_assert_int_eq(tg_pem_cert_der(chain, chain_len, "leaf", &leaf, &leaf_len, err), 0);
    ck_assert_int_eq(tg_key_decode(leaf_key, leaf_key_len, false, "leaf key", &k, err), 0);
    ck_assert_msg(tg_key_matches(k, leaf, leaf_len, "leaf", err) == 0, "%s", err);
    tg_key_free(k);
    free(leaf);
    free(chain);
    tg_wipe_free(leaf_key, leaf_key_len);
    tg_cp_ca_free(ca);
    free(cert);
    tg_wipe_free(key, key_len);
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s = suite_create("cp_ca");
    TCase *tc = tcase_create("intermediate");

    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_cp_ca_refusals, 0, TG_NELEM(bad));
    tcase_add_test(tc, test_cp_ca_intermediate_loads);
    tcase_add_test(tc, test_cp_ca_intermediate_issues_a_chain);
    tcase_add_test(tc, test_cp_ca_intermediate_issues_dns);
    return s;
}

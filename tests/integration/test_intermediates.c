/* An offline root with issuing intermediates, made by the openssl CLI at test time: an
 * intermediate's CRL revokes a leaf, the root's CRL revokes an intermediate (one known from
 * identity.intermediates), both refused as "revoked", and a CRL update closes the live
 * connections it now lists (close_denied). And
 * the CRLs that must not revoke: the root's CRL listing a serial the intermediate issued, a
 * federated partner's root (which copies our root's name) listing our intermediate's and
 * leaf's serials, and a CRL naming our intermediate but signed by an impostor, which does not
 * load at all. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define API2_ID "spiffe://mesh.local/ns/default/sa/api2"

static struct it_proc *echo, *a, *b, *c;
static int echo_port, in_port, a_port, c_port, a_admin, b_admin, c_admin;

static void sh(const char *script)
{
    char *err = NULL;
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    int rc = it_run(argv, NULL, 30000, NULL, &err);

    ck_assert_msg(rc == 0, "%s: %s", script, err != NULL ? err : "");
    free(err);
}

/* ca: root, int, p (the partner) or evil; args to `openssl ca` with that CA's database. */
static void ca(const char *name, const char *args)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "'%s' ca -config %s.cnf -batch -keyfile %s.key -cert %s.pem %s",
             it_openssl(), name, name, name, args);
    sh(cmd);
}

/* name.crl, fresh, replaced in one step as a Secret update would. */
static void gencrl(const char *name)
{
    char args[128], from[64], to[64];

    snprintf(args, sizeof(args), "-gencrl -crldays 1 -out %s.crl.new", name);
    ca(name, args);
    snprintf(from, sizeof(from), "%s.crl.new", name);
    snprintf(to, sizeof(to), "%s.crl", name);
    ck_assert_int_eq(rename(from, to), 0);
}

/* root (offline: only its certificate and CRLs reach the sidecars) -> int (issuing) -> web,
 * api; root -> int2 (issuing, not in any chain b holds: identity.intermediates) -> api2;
 * p: a partner's root with our root's very name; evil: a CA with int's name. */
static void make_pki(void)
{
    char script[4096];

    snprintf(script, sizeof(script),
             "set -e; o='%s'; n() { $o req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout $1.key -out $1.csr -subj \"$2\" 2>/dev/null; };"
             "db() { printf '[ca]\\ndefault_ca = d\\n[d]\\ndatabase = %%s.idx\\n"
             "crlnumber = %%s.num\\ndefault_md = sha256\\ndefault_crl_days = 1\\npolicy = p\\n"
             "[p]\\n' $1 $1 > $1.cnf; : > $1.idx; echo 01 > $1.num; };"
             "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n"
             "subjectKeyIdentifier=hash\\n' > root.ext;"
             "printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\nkeyUsage=critical,keyCertSign,"
             "cRLSign\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > int.ext;"
             "for r in root p evil; do case $r in root|p) s='/O=tollgate test/CN=offline root';;"
             " evil) s='/O=tollgate test/CN=issuing';; esac;"
             " n $r \"$s\"; $o x509 -req -in $r.csr -signkey $r.key -days 2 -extfile root.ext"
             " -out $r.pem 2>/dev/null; db $r; done;"
             "n int '/O=tollgate test/CN=issuing'; n int2 '/O=tollgate test/CN=issuing 2';"
             "for i in int:0x1001 int2:0x1002; do"
             " $o x509 -req -in ${i%%:*}.csr -CA root.pem -CAkey root.key -set_serial ${i#*:}"
             " -days 1 -extfile int.ext -out ${i%%:*}.pem 2>/dev/null; db ${i%%:*}; done; s=8193;"
             "for l in web api api2; do s=$((s+1)); n $l /CN=$l; i=int; [ $l = api2 ] && i=int2;"
             " printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
             "extendedKeyUsage=clientAuth,serverAuth\\nauthorityKeyIdentifier=keyid\\n"
             "subjectAltName=URI:spiffe://mesh.local/ns/default/sa/%%s\\n' $l > $l.ext;"
             " $o x509 -req -in $l.csr -CA $i.pem -CAkey $i.key -set_serial $s -days 1"
             " -extfile $l.ext -out $l.pem 2>/dev/null; cat $l.pem $i.pem > $l-chain.pem; done",
             it_openssl());
    sh(script);
    gencrl("root");
    gencrl("int");
    gencrl("int2");
    gencrl("p");
}

static void write_b(const char *crls, const char *extra_identity)
{
    it_replace_file("b.yaml",
                    "admin: 127.0.0.1:%d\n"
                    "workers: 2\n"
                    "log_level: info\n"
                    "access_log: true\n"
                    "identity: {cert: web-chain.pem, key: web.key, trust_bundle: root.pem, "
                    "crl: [%s]%s}\n"
                    "authorization: {close_denied: true}\n"
                    "timeouts: {handshake: 5s, idle: 1h, connect: 2s, drain: 1s}\n"
                    "inbound:\n"
                    "  - {name: web-in, listen: '127.0.0.1:%d', upstream: '127.0.0.1:%d', "
                    "allow: [\"" IT_API_ID "\", \"" API2_ID "\"]}\n",
                    b_admin, crls, extra_identity, in_port, echo_port);
}

/* b, and a (api) and c (api2) calling it, in the directory with the PKI */
static void start(const char *crls, const char *extra_identity)
{
    echo = it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&in_port, &a_port, &c_port, &a_admin, &b_admin, &c_admin);
    write_b(crls, extra_identity);
    b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    a = it_client_start("a", "api-chain.pem", "api.key", "root.pem", a_port, in_port, a_admin);
    c = it_client_start("c", "api2-chain.pem", "api2.key", "root.pem", c_port, in_port, c_admin);
}

static bool through(int port)
{
    char err[256];

    return it_round_trip(port, "intermediates-7c1", err) > 0;
}

/* Waits for the nth identity reload of b (counted in its log). */
static void wait_reload(int n)
{
    ck_assert_msg(it_wait_lines("b.err", n, 8000, "identity reloaded", NULL) >= n,
                  "b did not reload its CRLs");
}

static double revoked_refusals(void)
{
    return it_stat(b_admin, "tollgate_handshakes_failed_total",
                   "listener=\"web-in\",direction=\"inbound\",reason=\"revoked\"");
}

START_TEST(test_intermediate_crl_revokes_a_leaf_root_crl_an_intermediate)
{
    int live;
    char buf[8], *dump = NULL;

    it_setup();
    make_pki();
    start("root.crl, int.crl, int2.crl", ", intermediates: int2.pem");
    ck_assert_msg(through(a_port), "api refused under empty CRLs of root and intermediate");
    ck_assert_msg(through(c_port), "api2 refused under empty CRLs of root and intermediate");

    /* a live connection of api, then the intermediate's CRL lists api */
    live = it_connect(a_port, 8000);
    ck_assert_int_ge(live, 0);
    ck_assert(it_send_all(live, "live", 4));
    ck_assert_uint_eq(it_recv_full(live, buf, 4), 4);
    ca("int", "-revoke api.pem");
    gencrl("int");
    wait_reload(1);
    ck_assert_msg(it_recv_eof(live) == 0, "api's live connection outlived its revocation");
    close(live);
    ck_assert_msg(it_wait_file_contains("b.err", "revoked by the CRL of issuing", 5000),
                  "the live close does not name the CRL");
    ck_assert(it_file_contains("b.err", "closing live connection of " IT_API_ID));
    ck_assert_msg(!through(a_port), "a leaf revoked by the intermediate's CRL got through");
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_handshakes_failed_total",
                               "listener=\"web-in\",direction=\"inbound\",reason=\"revoked\"", 1,
                               5000) >= 1,
                  "the refusal was not counted as revoked");
    ck_assert_msg(through(c_port), "api2, not revoked, refused");

    /* the root's CRL lists int2 (known from identity.intermediates): its leaves are refused */
    ca("root", "-revoke int2.pem");
    gencrl("root");
    wait_reload(2);
    ck_assert_msg(!through(c_port), "a leaf under an intermediate revoked by the root got through");
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_handshakes_failed_total",
                               "listener=\"web-in\",direction=\"inbound\",reason=\"revoked\"", 2,
                               5000) >= 2,
                  "the refusal under a revoked intermediate was not counted as revoked");
    ck_assert(it_file_contains("b.err", "certificate 1 of its chain (serial 1002)"));
    ck_assert_int_eq(it_http(b_admin, "GET", "/config_dump", &dump), 200);
    ck_assert_msg(strstr(dump, "\"crls\":[{\"issuer\":\"offline root\",\"trust_domain\":"
                               "\"mesh.local\",\"signer\":\"root\",\"revoked\":1},"
                               "{\"issuer\":\"issuing\",\"trust_domain\":\"mesh.local\","
                               "\"signer\":\"intermediate\",\"revoked\":1},"
                               "{\"issuer\":\"issuing 2\",\"trust_domain\":\"mesh.local\","
                               "\"signer\":\"intermediate\",\"revoked\":0}]") != NULL,
                  "/config_dump does not show the CRLs: %s", dump);
    free(dump);
    ck_assert_int_eq(it_echo_accepts(echo), 4); /* a, c, the live one, c */
}
END_TEST

/* Attacks on the CRL rules: the root listing a serial its intermediate issued, a partner's
 * root with our root's name listing our serials (both loaded, revoking nothing of ours), a
 * CRL with our intermediate's name signed by another key, and an intermediates file with a
 * CA no root of ours signed (both refused, the last good kept). */
START_TEST(test_crls_revoke_only_what_their_signer_issued)
{
    it_setup();
    make_pki();
    /* the root did not issue api; the partner issued nothing of ours */
    ca("root", "-revoke api.pem");
    gencrl("root");
    ca("p", "-revoke int.pem");
    ca("p", "-revoke int2.pem");
    ca("p", "-revoke api.pem");
    gencrl("p");
    start("root.crl, int.crl, int2.crl, p.crl",
          ", intermediates: int2.pem, trust_domains: {partner.test: p.pem}");
    ck_assert_msg(through(a_port), "a CRL revoked a certificate its signer did not issue");
    ck_assert_msg(through(c_port), "a partner's CRL revoked our intermediate");
    ck_assert_msg(revoked_refusals() <= 0, "a refusal counted as revoked");

    /* evil has int's name, not its key: its CRL does not load as int's */
    ca("evil", "-revoke api.pem");
    ca("evil", "-gencrl -crldays 1 -out int.crl.new");
    ck_assert_int_eq(rename("int.crl.new", "int.crl"), 0);
    ck_assert_msg(it_wait_file_contains("b.err", "not signed by the CA it names", 8000),
                  "a CRL signed by an impostor of the intermediate was not refused");
    ck_assert(it_file_contains("b.err", "refused, keeping serial"));
    ck_assert_msg(through(a_port), "api refused after an impostor's CRL was refused");

    /* an "intermediate" that no root of ours signed does not become a CRL signer */
    sh("cp evil.pem int2.pem.new && mv int2.pem.new int2.pem");
    ck_assert_msg(
        it_wait_file_contains("b.err", "does not chain to a root of any trust bundle", 8000),
        "an intermediates file with a CA of no root of ours was not refused");
    ck_assert(it_file_contains("b.err", "identity.intermediates"));
    ck_assert_msg(through(c_port), "api2 refused after a bad intermediates file was refused");
    ck_assert_int_eq(it_echo_accepts(echo), 4);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("intermediates", "intermediates", NULL, NULL, it_teardown, 60,
                         test_intermediate_crl_revokes_a_leaf_root_crl_an_intermediate,
                         test_crls_revoke_only_what_their_signer_issued);
}

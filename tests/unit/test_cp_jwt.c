/* Kubernetes service-account tokens (controlplane/cp_jwt.c), against tokens and keys made by
 * python3-cryptography (tests/unit/jwt/make_fixtures.py): RS256 and ES256 accepted; a wrong
 * key, a tampered payload, alg none, HMAC, a wrong issuer or audience, expiry, nbf and iat in
 * the future, missing claims, a sub that disagrees, bad names, bad base64 and oversize all
 * refused with their own reason; keys as PEM and as a JWK Set; keys that must be refused; and
 * the decision of cp_authn.c with such a token. */
#include <check.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_authn.h"
#include "cp_jwt.h"
#include "tollgate/file.h"

#define NOW 1767225600 /* make_fixtures.py's clock */
#define ISS "https://kubernetes.default.svc.cluster.local"

static char aud_other[] = "other", aud_tollgate[] = "tollgate";
static char *aud_list[] = {aud_other, aud_tollgate};
static const struct tg_strlist audiences = {aud_list, 2};

/* name -> NULL: accepted as demo/client; else a substring of the refusal */
static const struct {
    const char *name;
    const char *want;
} cases[] = {
    {"rs256_ok", NULL},
    {"es256_ok", NULL},
    {"rs256_aud_string", NULL},
    {"rs256_aud_other_first", NULL},
    {"es256_unknown_kid", NULL},
    {"rs256_no_kid", NULL},
    {"rs256_exp_in_leeway", NULL},
    {"rs256_other_key", "RS256 signature does not verify with any of the 1 key"},
    {"es256_other_key", "ES256 signature does not verify"},
    {"rs256_tampered", "signature does not verify"},
    {"alg_none", "alg none: an unsigned token"},
    {"alg_hs256", "alg HS256: an HMAC token"},
    {"alg_ps256", "alg PS256: only RS256 and ES256"},
    {"crit", "\"crit\""},
    {"wrong_iss", "issuer \"https://evil.example\" is not"},
    {"wrong_aud", "\"aud\" names none of our audiences"},
    {"no_aud", "no \"aud\""},
    {"expired", "expired 120 s ago"},
    {"nbf_future", "not valid for another 600 s"},
    {"iat_future", "issued 600 s in the future"},
    {"no_exp", "no \"exp\""},
    {"exp_string", "must be numbers of seconds"},
    {"no_iss", "no \"iss\""},
    {"no_k8s", "no \"kubernetes.io\""},
    {"no_sub", "\"sub\" missing is not system:serviceaccount:demo:client"},
    {"sub_mismatch", "\"sub\" \"system:serviceaccount:demo:admin\" is not"},
    {"ns_dotdot", "namespace and service account must be"},
    {"ns_slash", "namespace and service account must be"},
    {"payload_not_json", "the payload is not JSON"},
    {"payload_array", "the payload is not a JSON object"},
    {"payload_dup_key", "duplicate object key"},
    {"es256_sig_short", "ES256 signature does not verify"},
    {"rs256_sig_noncanonical", "signature"},
};

static char *read_fixture(const char *name, size_t *len)
{
    char path[4096], err[TG_ERRLEN], *buf = NULL;
    size_t n;
    const char *src = getenv("TG_SOURCE_DIR"), *slash = strrchr(__FILE__, '/');

    if (src != NULL) /* else next to this file (scripts/test.sh's valgrind run sets no env) */
        snprintf(path, sizeof(path), "%s/tests/unit/jwt/%s", src, name);
    else
        snprintf(path, sizeof(path), "%.*s/jwt/%s", slash != NULL ? (int)(slash - __FILE__) : 1,
                 slash != NULL ? __FILE__ : ".", name);
    ck_assert_msg(tg_file_read(NULL, path, TG_FILE_MAX, 0, &buf, &n, err) == 0, "%s", err);
    if (len != NULL)
        *len = n;
    return buf;
}

/* The token of that name in tokens.txt (malloc'd). */
static char *fixture_token(const char *name)
{
    char *all = read_fixture("tokens.txt", NULL), *line, *save = NULL, *out = NULL;

    for (line = strtok_r(all, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(name);

        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            out = strdup(line + n + 1);
    }
    free(all);
    ck_assert_msg(out != NULL, "no token %s in tokens.txt", name);
    return out;
}

static struct tg_cp_jwt_keys *load_keys(const char *name)
{
    struct tg_cp_jwt_keys *k = NULL;
    char err[TG_ERRLEN] = "";
    size_t len;
    char *text = read_fixture(name, &len);

    ck_assert_msg(tg_cp_jwt_keys_parse(text, len, name, &k, err) == 0, "%s: %s", name, err);
    free(text);
    return k;
}

static int verify(const struct tg_cp_jwt_keys *k, const char *token, int64_t now, char *ns,
                  char *sa, char *err)
{
    struct tg_cp_jwt_rules r = {ISS, &audiences, k, now};

    return tg_cp_jwt_verify(&r, token, ns, sa, err);
}

static void check_case(const char *keys_file, int i)
{
    struct tg_cp_jwt_keys *k = load_keys(keys_file);
    char *token = fixture_token(cases[i].name);
    char ns[TG_CP_JWT_NAME_MAX + 1] = "", sa[TG_CP_JWT_NAME_MAX + 1] = "", err[TG_ERRLEN] = "";
    int rc = verify(k, token, NOW, ns, sa, err);

    if (cases[i].want == NULL) {
        ck_assert_msg(rc == 0, "%s with %s: %s", cases[i].name, keys_file, err);
        ck_assert_str_eq(ns, "demo");
        ck_assert_str_eq(sa, "client");
    } else {
        ck_assert_msg(rc == TG_EPEER, "%s with %s: accepted (rc %d)", cases[i].name, keys_file, rc);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "%s: \"%s\", want \"%s\"", cases[i].name,
                      err, cases[i].want);
    }
    free(token);
    tg_cp_jwt_keys_free(k);
}

START_TEST(test_jwt_table_pem_keys)
{
    check_case("keys.pem", _i);
}
END_TEST

START_TEST(test_jwt_table_jwks_keys)
{
    check_case("jwks.json", _i);
}
END_TEST

START_TEST(test_jwt_keys_counted_with_kids)
{
    struct tg_cp_jwt_keys *a = load_keys("keys.pem"), *b = load_keys("jwks.json");

    ck_assert_uint_eq(tg_cp_jwt_keys_count(a), 2);
    ck_assert_uint_eq(tg_cp_jwt_keys_count(b), 2);
    tg_cp_jwt_keys_free(a);
    tg_cp_jwt_keys_free(b);
}
END_TEST

static const struct {
    const char *file;
    const char *want;
} bad_keys[] = {
    {"bad-keys/rsa1024.pem", "an RSA key of 1024 bits"},
    {"bad-keys/p384.pem", "not on P-256"},
    {"bad-keys/private.pem", "only public keys belong here"},
    {"bad-keys/empty.pem", "no public key"},
    {"bad-keys/truncated.pem", "no -----END PUBLIC KEY-----"},
    {"bad-keys/jwks-hs.json", "\"kty\" oct"},
};

START_TEST(test_jwt_bad_keys_refused)
{
    struct tg_cp_jwt_keys *k = NULL;
    char err[TG_ERRLEN] = "";
    size_t len;
    char *text = read_fixture(bad_keys[_i].file, &len);

    ck_assert_int_eq(tg_cp_jwt_keys_parse(text, len, bad_keys[_i].file, &k, err), TG_ECONFIG);
    ck_assert_ptr_null(k);
    ck_assert_msg(strstr(err, bad_keys[_i].want) != NULL && strstr(err, bad_keys[_i].file),
                  "%s: %s", bad_keys[_i].file, err);
    free(text);
}
END_TEST

START_TEST(test_jwt_time_bounds)
{
    struct tg_cp_jwt_keys *k = load_keys("keys.pem");
    char *token = fixture_token("rs256_ok"); /* iat = nbf = NOW - 10, exp = NOW + 3600 */
    char ns[TG_CP_JWT_NAME_MAX + 1], sa[TG_CP_JWT_NAME_MAX + 1], err[TG_ERRLEN] = "";

    ck_assert_int_eq(verify(k, token, NOW + 3600 + TG_CP_JWT_LEEWAY_S - 1, ns, sa, err), 0);
    ck_assert_int_eq(verify(k, token, NOW + 3600 + TG_CP_JWT_LEEWAY_S, ns, sa, err), TG_EPEER);
    ck_assert_msg(strstr(err, "expired") != NULL, "%s", err);
    ck_assert_int_eq(verify(k, token, NOW - 10 - TG_CP_JWT_LEEWAY_S, ns, sa, err), 0);
    ck_assert_int_eq(verify(k, token, NOW - 11 - TG_CP_JWT_LEEWAY_S, ns, sa, err), TG_EPEER);
    ck_assert_msg(strstr(err, "not valid for another") != NULL, "%s", err);
    free(token);
    tg_cp_jwt_keys_free(k);
}
END_TEST

START_TEST(test_jwt_shape_refused)
{
    static const struct {
        const char *token;
        const char *want;
    } shapes[] = {
        {"", "not a JWT"},
        {"eyJhbGciOiJSUzI1NiJ9", "not a JWT"},
        {"eyJhbGciOiJSUzI1NiJ9.e30", "not a JWT"},
        {"eyJhbGciOiJSUzI1NiJ9.e30.x.y", "not a JWT"},
        {"eyJhbGciOiJSUzI1NiJ9..sig", "empty header or payload"},
        {".e30.sig", "empty header or payload"},
        {"eyJhbGciOiJSUzI1NiJ9=.e30.sig", "not a JWT"}, /* padding */
        {"eyJhbGci+iJSUzI1NiJ9.e30.sig", "not a JWT"},  /* standard alphabet */
        {"eyJhbGciOiJSUzI1NiJ9 .e30.sig", "not a JWT"},
        {"e.e30.sig", "header is not base64url"},        /* 1 char: no byte */
        {"eyK.e30.sig", "header is not base64url"},      /* non-zero spare bits */
        {"bm90IGpzb24.e30.sig", "header is not JSON"},   /* "not json" */
        {"WzFd.e30.sig", "header is not a JSON object"}, /* [1] */
        {"e30.e30.sig", "no \"alg\""},                   /* {} */
        {"eyJhbGciOiJSUzI1NiJ9.e30.", "signature is empty"},
    };
    struct tg_cp_jwt_keys *k = load_keys("keys.pem");
    char ns[TG_CP_JWT_NAME_MAX + 1], sa[TG_CP_JWT_NAME_MAX + 1], err[TG_ERRLEN];

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        err[0] = '\0';
        ck_assert_int_eq(verify(k, shapes[i].token, NOW, ns, sa, err), TG_EPEER);
        ck_assert_msg(strstr(err, shapes[i].want) != NULL, "\"%s\": %s", shapes[i].token, err);
    }
    tg_cp_jwt_keys_free(k);
}
END_TEST

START_TEST(test_jwt_oversize_refused)
{
    struct tg_cp_jwt_keys *k = load_keys("keys.pem");
    char *good = fixture_token("rs256_ok");
    size_t n = TG_CP_JWT_MAX + 1;
    char *big = malloc(n + 1);
    char ns[TG_CP_JWT_NAME_MAX + 1], sa[TG_CP_JWT_NAME_MAX + 1], err[TG_ERRLEN] = "";

    memset(big, 'A', n);
    big[n] = '\0';
    memcpy(big, good, strlen(good)); /* a real token, padded past the limit */
    ck_assert_int_eq(verify(k, big, NOW, ns, sa, err), TG_EPEER);
    ck_assert_msg(strstr(err, "more than 8192 bytes") != NULL, "%s", err);
    free(big);
    free(good);
    tg_cp_jwt_keys_free(k);
}
END_TEST

/* cp_authn.c with a service-account token: the SPIFFE ID comes from the token's claims;
 * without a kubernetes section it says so; Hello claims must agree. */
START_TEST(test_jwt_authn_decide)
{
    struct tg_cp_jwt_keys *k = load_keys("jwks.json");
    struct tg_cp_jwt_rules rules = {ISS, &audiences, k, NOW};
    char *token = fixture_token("es256_ok"), *bad = fixture_token("expired");
    struct tg_cp_authn_in in = {.trust_domain = "mesh.local", .token = token, .jwt = &rules};
    struct tg_cp_who who;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(tg_cp_authn_decide(&in, &who, err) == 0, "%s", err);
    ck_assert_str_eq(who.id, "spiffe://mesh.local/ns/demo/sa/client");
    ck_assert(who.by_jwt && !who.by_cert);
    in.claim_sa = "server";
    ck_assert_int_eq(tg_cp_authn_decide(&in, &who, err), TG_EPEER);
    ck_assert_msg(strstr(err, "claims service account server") != NULL, "%s", err);
    in.claim_sa = NULL;
    in.token = bad;
    ck_assert_int_eq(tg_cp_authn_decide(&in, &who, err), TG_EPEER);
    ck_assert_msg(strstr(err, "service-account token refused: expired") != NULL, "%s", err);
    in.token = token;
    in.jwt = NULL;
    ck_assert_int_eq(tg_cp_authn_decide(&in, &who, err), TG_EPEER);
    ck_assert_msg(strstr(err, "no kubernetes section") != NULL, "%s", err);
    in.token = "not-a-jwt-token-0123456789";
    in.jwt = &rules;
    ck_assert_int_eq(tg_cp_authn_decide(&in, &who, err), TG_EPEER);
    ck_assert_msg(strstr(err, "bootstrap token not recognised") != NULL, "%s", err);
    free(token);
    free(bad);
    tg_cp_jwt_keys_free(k);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s =
        TG_TEST_SUITE("cp_jwt", "jwt", &tc, test_jwt_keys_counted_with_kids, test_jwt_time_bounds,
                      test_jwt_shape_refused, test_jwt_oversize_refused, test_jwt_authn_decide);

    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_jwt_table_pem_keys, cases),
                  TG_TEST_LOOP(test_jwt_table_jwks_keys, cases),
                  TG_TEST_LOOP(test_jwt_bad_keys_refused, bad_keys));
    return s;
}

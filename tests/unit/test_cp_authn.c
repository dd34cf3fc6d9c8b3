/* tollgate-cp's identity decision (controlplane/cp_authn.c): the SPIFFE ID it signs comes
 * from how the stream authenticated (certificate, else bootstrap token), never from what
 * the sidecar asks for; and the tokens file. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "cp_authn.h"
#include "unit_util.h"

static const char tokens_text[] = "# token namespace service-account\n"
                                  "\n"
                                  "web-token-0123456789abcdef default web\n"
                                  "  api-token-0123456789abcdef\tprod   api  \r\n"
                                  "adm-token-0123456789abcdef tollgate-system admin";

static struct tg_cp_tokens tokens;

static void setup(void)
{
    char err[TG_ERRLEN] = "";

    ck_assert_msg(
        tg_cp_tokens_parse(tokens_text, strlen(tokens_text), "tokens.txt", &tokens, err) == 0, "%s",
        err);
}

static void teardown(void)
{
    tg_cp_tokens_cleanup(&tokens);
}

static int decide(const char *peer_id, const char *token, const char *ns, const char *sa,
                  struct tg_cp_who *who, char *err)
{
    struct tg_cp_authn_in in = {
        .trust_domain = "mesh.local",
        .peer_id = peer_id,
        .token = token,
        .tokens = &tokens,
        .claim_ns = ns,
        .claim_sa = sa,
    };

    return tg_cp_authn_decide(&in, who, err);
}

#define WEB_TOKEN "web-token-0123456789abcdef"
#define WEB_ID "spiffe://mesh.local/ns/default/sa/web"

/* What a token, and what the sidecar claims beside it, come to: the identity, or a refusal
 * (TG_EPEER) whose text has why. The central rule: a token of namespace A cannot obtain an
 * identity of namespace B, however the sidecar claims it. */
static const struct {
    const char *token, *ns, *sa;
    const char *id;  /* NULL: refused */
    const char *why; /* a part of the refusal's text; NULL: any */
} token_cases[] = {
    /* a token gives its own identity */
    {WEB_TOKEN, NULL, NULL, WEB_ID, NULL},
    {"api-token-0123456789abcdef", "", "", "spiffe://mesh.local/ns/prod/sa/api", NULL},
    /* a token of one namespace cannot get another's; matching claims are fine */
    {WEB_TOKEN, "prod", "api", NULL, "claims namespace prod"},
    {WEB_TOKEN, "default", "api", NULL, "claims service account api"},
    {WEB_TOKEN, "default", "web", WEB_ID, NULL},
    /* unknown or missing tokens */
    {"web-token-0123456789abcdeX", NULL, NULL, NULL, "not recognised"},
    {"web-token-0123456789abcde", NULL, NULL, NULL, NULL},
    {"web-token-0123456789abcdef0", NULL, NULL, NULL, NULL},
    {"", NULL, NULL, NULL, "who is asking"},
    {NULL, NULL, NULL, NULL, NULL},
};

START_TEST(test_cp_token_decides_identity)
{
    struct tg_cp_who who;
    char err[TG_ERRLEN] = "";
    int rc = decide(NULL, token_cases[_i].token, token_cases[_i].ns, token_cases[_i].sa, &who, err);
    const char *what = token_cases[_i].token != NULL ? token_cases[_i].token : "(no token)";

    if (token_cases[_i].id != NULL) {
        ck_assert_msg(rc == 0, "%s: %s", what, err);
        ck_assert_str_eq(who.id, token_cases[_i].id);
        ck_assert(!who.by_cert);
        return;
    }
    ck_assert_msg(rc == TG_EPEER, "%s: rc %d", what, rc);
    ck_assert_msg(token_cases[_i].why == NULL || strstr(err, token_cases[_i].why) != NULL, "%s: %s",
                  what, err);
}
END_TEST

START_TEST(test_cp_token_without_tokens_file_refused)
{
    struct tg_cp_who who;
    char err[TG_ERRLEN] = "";
    struct tg_cp_authn_in in = {.trust_domain = "mesh.local", .token = WEB_TOKEN};

    ck_assert_int_eq(tg_cp_authn_decide(&in, &who, err), TG_EPEER);
}
END_TEST

START_TEST(test_cp_certificate_identity_wins_over_token)
{
    struct tg_cp_who who;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(decide("spiffe://mesh.local/ns/prod/sa/api", WEB_TOKEN, NULL, NULL, &who, err),
                     0);
    ck_assert_str_eq(who.id, "spiffe://mesh.local/ns/prod/sa/api");
    ck_assert(who.by_cert);
    ck_assert_str_eq(who.ns, "prod");
    ck_assert_str_eq(who.sa, "api");
    /* and the certificate's namespace cannot be claimed away either */
    ck_assert_int_eq(decide("spiffe://mesh.local/ns/prod/sa/api", NULL, "default", NULL, &who, err),
                     TG_EPEER);
}
END_TEST

START_TEST(test_cp_certificate_must_be_a_workload_of_our_domain)
{
    static const char *bad[] = {
        "spiffe://other.td/ns/prod/sa/api",
        "spiffe://mesh.local/ns/prod",
        "spiffe://mesh.local/ns/prod/sa/api/x",
        "spiffe://mesh.local/sa/api/ns/prod",
        "spiffe://mesh.local",
        "spiffe://mesh.local/ns/../sa/api",
    };
    struct tg_cp_who who;
    char err[TG_ERRLEN] = "";

    for (size_t i = 0; i < TG_NELEM(bad); i++)
        ck_assert_msg(decide(bad[i], WEB_TOKEN, NULL, NULL, &who, err) == TG_EPEER, "%s accepted",
                      bad[i]);
}
END_TEST

START_TEST(test_cp_revoked_certificate_refused)
{
    char *serials[] = {UT_STR("a1b2")};
    char *shas[] = {UT_STR("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")};
    struct tg_strlist rs = {serials, 1}, rf = {shas, 1};
    struct tg_cp_authn_in in = {
        .trust_domain = "mesh.local",
        .peer_id = "spiffe://mesh.local/ns/prod/sa/api",
        .peer_serial = "00a1b2",
        .revoked_serials = &rs,
        .revoked_fingerprints = &rf,
    };
    struct tg_cp_who who;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_cp_authn_decide(&in, &who, err), TG_EPEER);
    ck_assert_msg(strstr(err, "revoked") != NULL, "%s", err);
    in.peer_serial = "a1b3";
    ck_assert_int_eq(tg_cp_authn_decide(&in, &who, err), 0);
    in.peer_sha256 = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF";
    ck_assert_int_eq(tg_cp_authn_decide(&in, &who, err), TG_EPEER);
}
END_TEST

static const struct {
    const char *text;
    const char *why; /* NULL: accepted */
} token_files[] = {
    {"", NULL},
    {"# nothing\n\n", NULL},
    {"abcdefghijklmnop ns sa\n", NULL},
    {"abcdefghijklmno ns sa\n", "tokens.txt:1: a token is 16 to 256"},
    {"abcdefghijklmnop ns\n", "tokens.txt:1: want TOKEN NAMESPACE SERVICE_ACCOUNT"},
    {"abcdefghijklmnop ns sa extra\n", "tokens.txt:1: want TOKEN"},
    {"\nabcdefghijklmnop .. sa\n", "tokens.txt:2: namespace and service account"},
    {"abcdefghijklmnop ns s/a\n", "tokens.txt:1: namespace and service account"},
    {"abcdefghijklmnop a b\nabcdefghijklmnop c d\n", "tokens.txt:2: token given twice"},
    {"abcdefghijklm\"op a b\n", "tokens.txt:1: a token"},
};

START_TEST(test_cp_tokens_file_table)
{
    struct tg_cp_tokens t = {0};
    char err[TG_ERRLEN] = "";
    int rc = tg_cp_tokens_parse(token_files[_i].text, strlen(token_files[_i].text), "tokens.txt",
                                &t, err);

    if (token_files[_i].why == NULL) {
        ck_assert_msg(rc == 0, "%s", err);
    } else {
        ck_assert_int_eq(rc, TG_ECONFIG);
        ck_assert_msg(strstr(err, token_files[_i].why) != NULL, "%s", err);
        ck_assert_uint_eq(t.n, 0);
    }
    tg_cp_tokens_cleanup(&t);
}
END_TEST

START_TEST(test_cp_tokens_file_nul_refused)
{
    struct tg_cp_tokens t = {0};
    char err[TG_ERRLEN] = "";
    static const char text[] = "abcdefghijklmnop a b\nabcdefgh\0ijklmnop c d\n";

    ck_assert_int_eq(tg_cp_tokens_parse(text, sizeof(text) - 1, "t", &t, err), TG_ECONFIG);
    ck_assert_msg(strstr(err, "t:2: NUL") != NULL, "%s", err);
}
END_TEST

/* kubernetes.token_review: the API server's answer decides a service-account token; a
 * refusal carries its reason, an acceptance its namespace, service account and pod, and the
 * Hello's claims are held against it as against any token. */
START_TEST(test_cp_token_review_decides)
{
    struct tg_cp_review ok = {.ok = true, .ns = "prod", .sa = "web", .pod = "web-0"};
    struct tg_cp_review no = {.ok = false,
                              .why = "service-account token refused by the API "
                                     "server: token has expired"};
    struct tg_cp_authn_in in = {
        .trust_domain = "mesh.local",
        .token = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        .tokens = &tokens,
        .review = &ok,
    };
    struct tg_cp_who who;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(tg_cp_authn_decide(&in, &who, err) == 0, "%s", err);
    ck_assert_str_eq(who.id, "spiffe://mesh.local/ns/prod/sa/web");
    ck_assert_str_eq(who.pod, "web-0");
    ck_assert(who.by_jwt && !who.by_cert);
    in.claim_ns = "default";
    ck_assert_int_eq(tg_cp_authn_decide(&in, &who, err), TG_EPEER);
    ck_assert_msg(strstr(err, "Hello claims namespace default but the token is of namespace prod"),
                  "%s", err);
    in.claim_ns = NULL;
    in.review = &no;
    ck_assert_int_eq(tg_cp_authn_decide(&in, &who, err), TG_EPEER);
    ck_assert_str_eq(err, no.why);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE("cp_authn", "authn", &tc, test_cp_token_without_tokens_file_refused,
                             test_cp_certificate_identity_wins_over_token,
                             test_cp_certificate_must_be_a_workload_of_our_domain,
                             test_cp_revoked_certificate_refused, test_cp_tokens_file_nul_refused,
                             test_cp_token_review_decides);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_cp_token_decides_identity, 0, TG_NELEM(token_cases));
    tcase_add_loop_test(tc, test_cp_tokens_file_table, 0, TG_NELEM(token_files));
    return s;
}

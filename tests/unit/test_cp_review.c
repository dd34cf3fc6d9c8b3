/* TokenReview (controlplane/cp_review.c): the request, what an answer must say for a token to
 * be accepted, and the bounded cache of answers. */
#include <check.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_review.h"

static char aud0[] = "tollgate";
static char *aud_v[] = {aud0};
static const struct tg_strlist ours = {aud_v, 1};

/* {"exp": 1000} as a JWT's payload: the cache bound */
#define TOKEN "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjEwMDB9.c2ln"

START_TEST(test_body)
{
    char *b = tg_cp_review_body(TOKEN, &ours);

    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(b, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
                        "\"spec\":{\"token\":\"" TOKEN "\",\"audiences\":[\"tollgate\"]}}");
    free(b);
}
END_TEST

static const char good[] =
    "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"user\":{\"username\":"
    "\"system:serviceaccount:prod:web\",\"extra\":{\"authentication.kubernetes.io/pod-name\":"
    "[\"web-0\"]}},\"audiences\":[\"tollgate\"]}}";

START_TEST(test_accepted)
{
    struct tg_cp_review r;

    tg_cp_review_read(201, good, TOKEN, &ours, 900, &r);
    ck_assert_msg(r.ok, "%s", r.why);
    ck_assert_str_eq(r.ns, "prod");
    ck_assert_str_eq(r.sa, "web");
    ck_assert_str_eq(r.pod, "web-0");
    ck_assert_int_eq(r.until, 960); /* 60 s */
    tg_cp_review_read(201, good, TOKEN, &ours, 980, &r);
    ck_assert_int_eq(r.until, 1000); /* never past the token's exp */
}
END_TEST

START_TEST(test_refused)
{
    static const struct {
        long status;
        const char *body, *want;
    } cases[] = {
        {403, "{}", "the API server answered HTTP 403"},
        {0, "", "the API server answered nothing"},
        {201, "not json", "not a TokenReview with a status"},
        {201, "{\"status\":{\"authenticated\":false,\"error\":\"token has expired\"}}",
         "refused by the API server: token has expired"},
        {201,
         "{\"status\":{\"authenticated\":true,\"user\":{\"username\":"
         "\"system:serviceaccount:prod:web\"},\"audiences\":[\"vault\"]}}",
         "none of our audiences"},
        {201,
         "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"alice\"},"
         "\"audiences\":[\"tollgate\"]}}",
         "user \"alice\" is not system:serviceaccount"},
        {201,
         "{\"status\":{\"authenticated\":true,\"user\":{\"username\":"
         "\"system:serviceaccount:prod:a/b\"},\"audiences\":[\"tollgate\"]}}",
         "is not system:serviceaccount"},
    };

    for (size_t i = 0; i < TG_NELEM(cases); i++) {
        struct tg_cp_review r;

        tg_cp_review_read(cases[i].status, cases[i].body, TOKEN, &ours, 100, &r);
        ck_assert(!r.ok);
        ck_assert_int_eq(r.until, 100 + TG_CP_REVIEW_BAD_TTL_S);
        ck_assert_msg(strstr(r.why, cases[i].want) != NULL, "\"%s\" does not say \"%s\"", r.why,
                      cases[i].want);
    }
}
END_TEST

START_TEST(test_cache)
{
    struct tg_cp_reviews *c;
    struct tg_cp_review r = {.ok = true, .until = 200};
    char tok[64];

    ck_assert_int_eq(tg_cp_reviews_new(&c), 0);
    ck_assert_int_eq(tg_cp_reviews_put(c, "tok-a", &r, 100), 0);
    ck_assert_ptr_nonnull(tg_cp_reviews_get(c, "tok-a", 150));
    ck_assert_ptr_null(tg_cp_reviews_get(c, "tok-ab", 150)); /* whole tokens only */
    ck_assert_ptr_null(tg_cp_reviews_get(c, "tok-a", 200));  /* expired, and dropped */
    ck_assert_uint_eq(tg_cp_reviews_count(c), 0);
    /* bounded: a full cache drops what expires first */
    for (int i = 0; i < TG_CP_REVIEW_CACHE + 10; i++) {
        snprintf(tok, sizeof(tok), "tok-%d", i);
        r.until = 1000 + i;
        ck_assert_int_eq(tg_cp_reviews_put(c, tok, &r, 100), 0);
    }
    ck_assert_uint_eq(tg_cp_reviews_count(c), TG_CP_REVIEW_CACHE);
    ck_assert_ptr_null(tg_cp_reviews_get(c, "tok-0", 100));
    ck_assert_ptr_nonnull(tg_cp_reviews_get(c, "tok-1033", 100));
    tg_cp_reviews_free(c);
}
END_TEST

Suite *tg_test_suite(void)
{
    return TG_TEST_SUITE("cp_review", "cp_review", NULL, test_body, test_accepted, test_refused,
                         test_cache);
}

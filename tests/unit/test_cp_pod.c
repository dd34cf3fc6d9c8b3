/* The control plane's check of Hello's pod claims (controlplane/cp_pod.c): which labels scope
 * a stream's rules, and which claims refuse it. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "cp_pod.h"
#include "k8s_objects.h"

static struct tg_k8s_obj *pods[2];
static struct tg_k8s_list list = {pods, 2};

static void setup(void)
{
    static const char *const json[2] = {
        "{\"metadata\":{\"name\":\"api-0\",\"namespace\":\"prod\",\"labels\":{\"app\":\"api\"}},"
        "\"spec\":{\"serviceAccountName\":\"api\"}}",
        "{\"metadata\":{\"name\":\"web-0\",\"namespace\":\"prod\",\"labels\":{\"tier\":\"front\","
        "\"app\":\"web\"}},\"spec\":{\"serviceAccountName\":\"web\"}}",
    };
    char err[TG_ERRLEN] = "";

    for (int i = 0; i < 2; i++)
        ck_assert_msg(tg_k8s_obj_parse(TG_K8S_POD, json[i], strlen(json[i]), &pods[i], err) == 0,
                      "%s", err);
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++)
        tg_k8s_obj_free(pods[i]);
}

static char k_app[] = "app", v_web[] = "web", v_db[] = "db", k_role[] = "role", v_adm[] = "admin";
static struct tg_res_label agrees = {k_app, v_web}, other = {k_app, v_db}, absent = {k_role, v_adm};
static const struct tg_k8s_obj *found;

/* Decides for a stream of namespace prod, service account sa, naming pod and claiming claim
 * (NULL: nothing). 0 with the verdict in *v and the Pod in found, or the error with err. */
static const char *token_pod; /* the pod of the stream's token (TokenReview); NULL: none */

static int decide(const char *sa, const char *pod, const struct tg_res_label *claim, bool discovery,
                  bool synced, enum tg_cp_pod_verdict *v, char *err)
{
    struct tg_cp_pod_in in = {
        .ns = "prod",
        .sa = sa,
        .claim_pod = pod,
        .token_pod = token_pod,
        .claims = claim,
        .n_claims = claim != NULL,
        .discovery = discovery,
        .synced = synced,
        .pods = &list,
    };

    return tg_cp_pod_decide(&in, v, &found, err);
}

static enum tg_cp_pod_verdict verdict(const char *sa, const char *pod,
                                      const struct tg_res_label *claim, bool discovery, bool synced)
{
    enum tg_cp_pod_verdict v;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(decide(sa, pod, claim, discovery, synced, &v, err) == 0, "%s", err);
    return v;
}

START_TEST(test_bound_to_the_pod)
{
    /* no claim, or a claim the Pod agrees with: the Pod's labels, sorted */
    ck_assert_int_eq(verdict("web", "web-0", NULL, true, true), TG_CP_POD_BOUND);
    ck_assert_ptr_eq(found, pods[1]);
    ck_assert_uint_eq(found->u.pod.n_labels, 2);
    ck_assert_str_eq(found->u.pod.labels[0].key, "app");
    ck_assert_str_eq(found->u.pod.labels[1].value, "front");
    ck_assert_int_eq(verdict("web", "web-0", &agrees, true, true), TG_CP_POD_BOUND);
}
END_TEST

/* The token's pod (TokenReview) is the pod: Hello may name it or nothing, not another. */
START_TEST(test_token_pod)
{
    enum tg_cp_pod_verdict v;
    char err[TG_ERRLEN] = "";

    token_pod = "web-0";
    ck_assert_int_eq(verdict("web", "", NULL, true, true), TG_CP_POD_BOUND);
    ck_assert_ptr_eq(found, pods[1]);
    ck_assert_int_eq(verdict("web", "web-0", NULL, true, true), TG_CP_POD_BOUND);
    ck_assert_int_eq(decide("web", "api-0", NULL, true, true, &v, err), TG_EPEER);
    ck_assert_msg(strstr(err, "Hello names pod api-0 but the token was issued for pod web-0"), "%s",
                  err);
    token_pod = NULL;
}
END_TEST

START_TEST(test_without_a_pod)
{
    /* no discovery: the claims, whatever they are */
    ck_assert_int_eq(verdict("web", "nowhere", &other, false, false), TG_CP_POD_CLAIMS);
    /* discovery, no pod named: nothing */
    ck_assert_int_eq(verdict("web", "", &other, true, true), TG_CP_POD_NONE);
    ck_assert_int_eq(verdict("web", NULL, NULL, true, true), TG_CP_POD_NONE);
    /* not listed yet: nothing for now */
    ck_assert_int_eq(verdict("web", "nowhere", &other, true, false), TG_CP_POD_WAIT);
    ck_assert_ptr_null(found);
}
END_TEST

START_TEST(test_refused)
{
    static char long_name[300];
    static const struct {
        const char *sa, *pod;
        const struct tg_res_label *claim;
        const char *want;
    } cases[] = {
        {"web", "web-1", NULL,
         "Hello names pod web-1, which is not among the Pods of namespace prod"},
        {"web", "api-0", NULL, "pod prod/api-0 runs under service account api, not web"},
        {"web", "web-0", &other, "Hello claims label app=db but pod prod/web-0 has app=web"},
        {"web", "web-0", &absent, "Hello claims label role=admin but pod prod/web-0 has no role"},
        {"web", long_name, NULL, "longer than 253 bytes"},
    };

    memset(long_name, 'a', sizeof(long_name) - 1);
    for (size_t i = 0; i < TG_NELEM(cases); i++) {
        enum tg_cp_pod_verdict v;
        char err[TG_ERRLEN] = "";

        ck_assert_int_eq(decide(cases[i].sa, cases[i].pod, cases[i].claim, true, true, &v, err),
                         TG_EPEER);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "\"%s\" does not say \"%s\"", err,
                      cases[i].want);
    }
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s = suite_create("cp_pod");
    TCase *tc = tcase_create("cp_pod");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_bound_to_the_pod);
    tcase_add_test(tc, test_without_a_pod);
    tcase_add_test(tc, test_token_pod);
    tcase_add_test(tc, test_refused);
    suite_add_tcase(s, tc);
    return s;
}

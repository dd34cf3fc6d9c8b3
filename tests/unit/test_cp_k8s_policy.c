/* Policy custom resources (controlplane/k8s/k8s_policy.h): what compiles and what is
 * refused with which message; every rule and limit scoped to its resource's namespace and
 * selector whatever the spec says; last good kept on a bad update, dropped on delete; a
 * Revocation only from the admin namespace; merge order (files first) and status staleness. */
#include <check.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_policy.h"
#include "k8s_publish.h"
#include "tollgate/esc.h"

#define WEB "spiffe://mesh.local/ns/prod/sa/web"

static const struct {
    enum tg_k8s_kind kind;
    const char *spec;
    const char *err; /* NULL: compiles */
} cases[] = {
    {TG_K8S_AUTHZ,
     "{\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"rules\":[{\"name\":\"no-batch\","
     "\"action\":\"deny\",\"principals\":[\"spiffe://mesh.local/ns/batch/*\"],\"ports\":[8080]}]}",
     NULL},
    {TG_K8S_AUTHZ, "{\"rules\":[{\"name\":\"a\",\"action\":\"allow\",\"namespaces\":[\"prod\"]}]}",
     NULL},
    {TG_K8S_AUTHZ, "{\"rules\":[]}", "spec: rules: required, 1 to 64 entries"},
    {TG_K8S_AUTHZ, "{}", "spec: rules: required"},
    {TG_K8S_AUTHZ, "{\"rules\":[{\"name\":\"a\",\"action\":\"maybe\"}]}",
     "spec: rules[0].action: \"maybe\" is not allow or deny"},
    {TG_K8S_AUTHZ, "{\"rules\":[{\"name\":\"a\",\"action\":\"allow\",\"namespace\":\"other\"}]}",
     "spec: rules[0].namespace: renamed to 'scope.namespace'"},
    {TG_K8S_AUTHZ, "{\"rules\":[{\"name\":\"a\",\"action\":\"allow\",\"ports\":[0]}]}",
     "spec: rules[0].ports[0]: 0 is out of range"},
    {TG_K8S_AUTHZ, "{\"rules\":[{\"name\":\"a\",\"action\":\"allow\",\"fingerprints\":[\"zz\"]}]}",
     "fingerprints"},
    {TG_K8S_AUTHZ,
     "{\"selector\":{\"matchExpressions\":[]},\"rules\":[{\"name\":\"a\",\"action\":\"allow\"}]}",
     "matchExpressions: not supported"},
    {TG_K8S_AUTHZ, "{\"scope\":\"mesh\",\"rules\":[{\"name\":\"a\",\"action\":\"allow\"}]}",
     "spec: scope: unknown key"},
    {TG_K8S_LIMITS,
     "{\"key\":\"id\",\"default\":{\"connections_per_second\":50},\"overrides\":"
     "[{\"principal\":\"spiffe://mesh.local/ns/batch/*\",\"connections_per_second\":5,"
     "\"burst\":10}]}",
     NULL},
    {TG_K8S_LIMITS, "{\"overrides\":[{\"principal\":\"a*b\"}]}", "only at the start or the end"},
    {TG_K8S_LIMITS, "{\"default\":{\"burst\":-1}}", "burst"},
    {TG_K8S_LIMITS, "{\"key\":\"ip\",\"default\":{}}",
     "spec: key: \"ip\" is not id or fingerprint"},
    {TG_K8S_LIMITS, "{\"selector\":{}}", "spec: default or overrides: required"},
    {TG_K8S_LIMITS, "{\"default\":{\"principal\":\"*\"}}", "default.principal: unknown"},
    {TG_K8S_LIMITS, "{\"limits\":[{\"match\":\"*\"}]}", "spec: limits: renamed to 'overrides'"},
    {TG_K8S_REVOKE, "{\"serials\":[\"0a1b2c\"]}", NULL},
    {TG_K8S_REVOKE, "{}", "both empty"},
    {TG_K8S_REVOKE, "{\"fingerprints\":[\"abc\"]}", "fingerprint"},
    /* what only the mesh files (mesh-wide) may set, and a scope of a rule's own */
    {TG_K8S_AUTHZ, "{\"default\":\"deny\",\"rules\":[{\"name\":\"a\",\"action\":\"allow\"}]}",
     "spec: default: set in the mesh files only"},
    {TG_K8S_AUTHZ,
     "{\"rules\":[{\"name\":\"a\",\"action\":\"allow\",\"namespaces\":[\"b\"],"
     "\"scope\":{\"namespace\":\"b\"}}]}",
     "spec: rules[0].scope: not in a policy resource"},
    {TG_K8S_LIMITS,
     "{\"overrides\":[{\"principal\":\"*\",\"burst\":1,\"scope\":{\"namespace\":\"b\"}}]}",
     "spec: overrides[0].scope: unknown key"},
    {TG_K8S_REVOKE, "{\"crls\":[\"x.crl\"]}", "spec: crls: set in the mesh files only"},
};

START_TEST(test_k8s_policy_compile_table)
{
    struct tg_resource *r = NULL;
    char err[TG_ERRLEN] = "";
    int rc = tg_k8s_policy_compile(cases[_i].kind, "prod", "p", cases[_i].spec, &r, err);

    if (cases[_i].err == NULL) {
        ck_assert_msg(rc == 0, "%s: %s", cases[_i].spec, err);
    } else {
        ck_assert_msg(rc == TG_EINVAL, "%s: compiled", cases[_i].spec);
        ck_assert_msg(strstr(err, cases[_i].err) != NULL, "%s: \"%s\" lacks \"%s\"", cases[_i].spec,
                      err, cases[_i].err);
    }
    tg_resource_free(r);
}
END_TEST

START_TEST(test_k8s_policy_scoped_to_own_namespace)
{
    struct tg_resource *r = NULL;
    char err[TG_ERRLEN] = "";
    const struct tg_res_rule *rule;

    /* namespace a's resource selecting labels of b's workloads: scoped to a all the same */
    ck_assert_int_eq(tg_k8s_policy_compile(
                         TG_K8S_AUTHZ, "a", "grab",
                         "{\"selector\":{\"matchLabels\":{\"app\":\"b-db\"}},"
                         "\"rules\":[{\"name\":\"x\",\"action\":\"deny\",\"principals\":[\"*\"]}]}",
                         &r, err),
                     0);
    rule = &r->u.authorization.rules[0];
    ck_assert_str_eq(rule->scope_namespace, "a");
    ck_assert_str_eq(rule->name, "k8s/a/grab/x");
    ck_assert_uint_eq(rule->n_scope_labels, 1);
    ck_assert_str_eq(rule->scope_labels[0].key, "app");
    tg_resource_free(r);
    r = NULL;
    ck_assert_int_eq(tg_k8s_policy_compile(TG_K8S_LIMITS, "a", "l",
                                           "{\"key\":\"fingerprint\",\"default\":{\"max_"
                                           "concurrent\":1},\"overrides\":[{\"principal\":"
                                           "\"spiffe://mesh.local/ns/a/*\",\"burst\":3}]}",
                                           &r, err),
                     0);
    /* the overrides in order, then the default as "*", as a mesh file's rate_limits */
    ck_assert_uint_eq(r->u.rate_limits.n_limits, 2);
    ck_assert_str_eq(r->u.rate_limits.limits[0].match, "spiffe://mesh.local/ns/a/*");
    ck_assert_uint_eq(r->u.rate_limits.limits[0].burst, 3);
    ck_assert_str_eq(r->u.rate_limits.limits[1].match, "*");
    ck_assert_uint_eq(r->u.rate_limits.limits[1].max_concurrent, 1);
    ck_assert_int_eq(r->u.rate_limits.limits[1].key_by, TG_RES_LIMIT_BY_FINGERPRINT);
    ck_assert_str_eq(r->u.rate_limits.limits[0].scope_namespace, "a");
    tg_resource_free(r);
}
END_TEST

/* A list of one object per kind given (NULL: none). */
struct fixture {
    struct tg_k8s_obj *objs[TG_K8S_NKINDS][2];
    struct tg_k8s_list lists[TG_K8S_NKINDS];
};

static void fx_set(struct fixture *f, enum tg_k8s_kind k, const char *json)
{
    char err[TG_ERRLEN] = "";

    tg_k8s_obj_free(f->objs[k][0]);
    f->objs[k][0] = NULL;
    f->lists[k] = (struct tg_k8s_list){NULL, 0};
    if (json == NULL)
        return;
    ck_assert_msg(tg_k8s_obj_parse(k, json, strlen(json), &f->objs[k][0], err) == 0, "%s", err);
    f->lists[k] = (struct tg_k8s_list){f->objs[k], 1};
}

static void fx_free(struct fixture *f)
{
    for (int k = 0; k < TG_K8S_NKINDS; k++)
        tg_k8s_obj_free(f->objs[k][0]);
}

static int stale_n;
static char stale_reason[64];

static void on_stale(void *arg, const struct tg_k8s_policy_status *st)
{
    (void)arg;
    stale_n++;
    snprintf(stale_reason, sizeof(stale_reason), "%s", st->reason);
}

static size_t merged_rules(const struct tg_k8s_policy *p, const struct tg_resource *files)
{
    struct tg_resource *m = NULL;
    size_t n;

    ck_assert_int_eq(tg_k8s_policy_merge(p, TG_RES_AUTHORIZATION, files, &m), 0);
    n = m->u.authorization.n_rules;
    ck_assert(m->u.authorization.default_deny == files->u.authorization.default_deny);
    tg_resource_free(m);
    return n;
}

#define GOOD                                                                                       \
    "{\"metadata\":{\"name\":\"p\",\"namespace\":\"prod\",\"generation\":1},\"spec\":{\"rules\":"  \
    "[{\"name\":\"a\",\"action\":\"deny\",\"principals\":[\"" WEB "\"]},{\"name\":\"b\","          \
    "\"action\":\"allow\",\"namespaces\":[\"prod\"]}]}}"
#define BAD                                                                                        \
    "{\"metadata\":{\"name\":\"p\",\"namespace\":\"prod\",\"generation\":2},\"spec\":{\"rules\":"  \
    "[{\"name\":\"a\",\"action\":\"nope\"}]}}"
#define BAD_WRITTEN                                                                                \
    "{\"metadata\":{\"name\":\"p\",\"namespace\":\"prod\",\"generation\":2},\"spec\":{\"rules\":"  \
    "[{\"name\":\"a\",\"action\":\"nope\"}]},\"status\":{\"conditions\":[{\"type\":\"Ready\","     \
    "\"status\":\"False\",\"reason\":\"InvalidSpec\",\"message\":\"%s\"}]}}"

START_TEST(test_k8s_policy_last_good_and_delete)
{
    struct tg_k8s_policy *p = NULL;
    struct tg_resource *files = tg_resource_new(TG_RES_AUTHORIZATION);
    struct fixture f = {0};
    bool changed;
    char written[2048], msg[TG_ERRLEN] = "", esc[2 * TG_ERRLEN];
    struct tg_resource *tmp = NULL;

    files->u.authorization.default_deny = true;
    ck_assert_int_eq(tg_k8s_policy_new("tollgate-system", &p), 0);
    ck_assert_uint_eq(merged_rules(p, files), 0);

    fx_set(&f, TG_K8S_AUTHZ, GOOD);
    ck_assert_int_eq(tg_k8s_policy_update(p, f.lists, &changed), 0);
    ck_assert(changed);
    ck_assert_uint_eq(merged_rules(p, files), 2);
    stale_n = 0;
    tg_k8s_policy_stale(p, on_stale, NULL);
    ck_assert_int_eq(stale_n, 1);
    ck_assert_str_eq(stale_reason, "Applied");

    /* a bad update: the last good rules stay, the status says why */
    fx_set(&f, TG_K8S_AUTHZ, BAD);
    ck_assert_int_eq(tg_k8s_policy_update(p, f.lists, &changed), 0);
    ck_assert(!changed);
    ck_assert_uint_eq(merged_rules(p, files), 2);
    stale_n = 0;
    tg_k8s_policy_stale(p, on_stale, NULL);
    ck_assert_int_eq(stale_n, 1);
    ck_assert_str_eq(stale_reason, "InvalidSpec");

    /* once the API shows that status, nothing is stale */
    ck_assert_int_ne(tg_k8s_policy_compile(TG_K8S_AUTHZ, "prod", "p",
                                           "{\"rules\":[{\"name\":\"a\",\"action\":\"nope\"}]}",
                                           &tmp, msg),
                     0);
    tg_esc(TG_ESC_JSON, msg, strlen(msg), esc, sizeof(esc), NULL);
    snprintf(written, sizeof(written), BAD_WRITTEN, esc);
    fx_set(&f, TG_K8S_AUTHZ, written);
    ck_assert_int_eq(tg_k8s_policy_update(p, f.lists, &changed), 0);
    stale_n = 0;
    tg_k8s_policy_stale(p, on_stale, NULL);
    ck_assert_int_eq(stale_n, 0);

    /* deleted: its rules go */
    fx_set(&f, TG_K8S_AUTHZ, NULL);
    ck_assert_int_eq(tg_k8s_policy_update(p, f.lists, &changed), 0);
    ck_assert(changed);
    ck_assert_uint_eq(merged_rules(p, files), 0);

    fx_free(&f);
    tg_resource_free(files);
    tg_k8s_policy_free(p);
}
END_TEST

START_TEST(test_k8s_policy_revocation_admin_namespace_only)
{
    struct tg_k8s_policy *p = NULL;
    struct tg_resource *files = tg_resource_new(TG_RES_REVOCATIONS), *m = NULL;
    struct fixture f = {0};
    bool changed;

    ck_assert_int_eq(tg_k8s_policy_new("tollgate-system", &p), 0);
    fx_set(
        &f, TG_K8S_REVOKE,
        "{\"metadata\":{\"name\":\"r\",\"namespace\":\"prod\"},\"spec\":{\"serials\":[\"0a\"]}}");
    ck_assert_int_eq(tg_k8s_policy_update(p, f.lists, &changed), 0);
    stale_n = 0;
    tg_k8s_policy_stale(p, on_stale, NULL);
    ck_assert_str_eq(stale_reason, "NotAdminNamespace");
    ck_assert_int_eq(tg_k8s_policy_merge(p, TG_RES_REVOCATIONS, files, &m), 0);
    ck_assert_uint_eq(m->u.revocations.serials.n, 0);
    tg_resource_free(m);

    fx_set(&f, TG_K8S_REVOKE,
           "{\"metadata\":{\"name\":\"r\",\"namespace\":\"tollgate-system\"},\"spec\":"
           "{\"serials\":[\"0a\"]}}");
    ck_assert_int_eq(tg_k8s_policy_update(p, f.lists, &changed), 0);
    ck_assert(changed);
    ck_assert_int_eq(tg_k8s_policy_merge(p, TG_RES_REVOCATIONS, files, &m), 0);
    ck_assert_uint_eq(m->u.revocations.serials.n, 1);
    tg_resource_free(m);
    fx_free(&f);
    tg_resource_free(files);
    tg_k8s_policy_free(p);
}
END_TEST

START_TEST(test_k8s_policy_status_patch)
{
    struct tg_k8s_policy_status st = {
        TG_K8S_AUTHZ, "prod", "p", 3, false, "InvalidSpec", "spec.rules: \"quoted\"\n"};
    char path[256],
        *body = tg_k8s_policy_status_patch(&st, "2026-12-07T05:00:00Z", path, sizeof(path));

    ck_assert_ptr_nonnull(body);
    ck_assert_str_eq(path, "/apis/tollgate.dev/v1alpha1/namespaces/prod/authorizationpolicies/p/"
                           "status");
    ck_assert_msg(strstr(body, "\"status\":\"False\"") != NULL &&
                      strstr(body, "\"reason\":\"InvalidSpec\"") != NULL &&
                      strstr(body, "\\\"quoted\\\"\\n") != NULL &&
                      strstr(body, "\"observedGeneration\":3") != NULL,
                  "%s", body);
    free(body);
}
END_TEST

static char stale_ns[64];
static int stale_creates, stale_patches;

static void on_cm(void *arg, const char *ns, bool create)
{
    (void)arg;
    snprintf(stale_ns, sizeof(stale_ns), "%s", ns);
    if (create)
        stale_creates++;
    else
        stale_patches++;
}

START_TEST(test_k8s_publish_stale)
{
    struct fixture f = {0};
    char path[256], *body;

    fx_set(&f, TG_K8S_NAMESPACE,
           "{\"metadata\":{\"name\":\"shop\",\"labels\":{\"tollgate.dev/inject\":\"enabled\"}}}");
    ck_assert_uint_eq(tg_k8s_publish_stale(f.lists, "PEM\n", on_cm, NULL), 1);
    ck_assert_int_eq(stale_creates, 1);
    ck_assert_str_eq(stale_ns, "shop");
    fx_set(&f, TG_K8S_CONFIGMAP,
           "{\"metadata\":{\"name\":\"tollgate-ca-root\",\"namespace\":\"shop\"},"
           "\"data\":{\"ca.pem\":\"OLD\\n\"}}");
    ck_assert_uint_eq(tg_k8s_publish_stale(f.lists, "PEM\n", on_cm, NULL), 1);
    ck_assert_int_eq(stale_patches, 1);
    ck_assert_uint_eq(tg_k8s_publish_stale(f.lists, "OLD\n", on_cm, NULL), 0);
    fx_set(&f, TG_K8S_NAMESPACE, "{\"metadata\":{\"name\":\"shop\"}}"); /* unlabelled */
    ck_assert_uint_eq(tg_k8s_publish_stale(f.lists, "PEM\n", on_cm, NULL), 0);

    body = tg_k8s_publish_request("shop", "PEM\n", true, path, sizeof(path));
    ck_assert_str_eq(path, "/api/v1/namespaces/shop/configmaps");
    ck_assert_msg(strstr(body, "\"name\":\"tollgate-ca-root\"") != NULL &&
                      strstr(body, "\"ca.pem\":\"PEM\\n\"") != NULL,
                  "%s", body);
    free(body);
    body = tg_k8s_publish_request("shop", "PEM\n", false, path, sizeof(path));
    ck_assert_str_eq(path, "/api/v1/namespaces/shop/configmaps/tollgate-ca-root");
    ck_assert_str_eq(body, "{\"data\":{\"ca.pem\":\"PEM\\n\"}}");
    free(body);
    fx_free(&f);
}
END_TEST

Suite *tg_test_suite(void)
{
    const TTest *const tests[] = {test_k8s_policy_scoped_to_own_namespace,
                                  test_k8s_policy_last_good_and_delete,
                                  test_k8s_policy_revocation_admin_namespace_only,
                                  test_k8s_policy_status_patch, test_k8s_publish_stale};
    Suite *s = suite_create("cp_k8s_policy");
    TCase *tc = tcase_create("cp_k8s_policy");

    tcase_add_loop_test(tc, test_k8s_policy_compile_table, 0, sizeof(cases) / sizeof(cases[0]));
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return s;
}

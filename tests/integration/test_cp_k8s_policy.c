/* Policy as Kubernetes custom resources, end to end on loopback: tollgate-cp with
 * kubernetes.discovery.policy_resources against the stand-in API server (tests/k8s/apiserver.py),
 * and two sidecars: A (spiffe://mesh.local/ns/default/sa/api, outbound api-out -> B) and B
 * (.../ns/default/sa/web, pod web-0 labelled app=web, named by its pod_info, inbound web-in
 * -> echo).
 *
 * In order: traffic A -> B flows. An AuthorizationPolicy in namespace evil selecting app=web
 * and denying A (the attack: a namespace's resource reaching another namespace's workloads)
 * is applied (Ready=True, it concerns evil's workloads) and changes nothing for B: no new
 * authorization is pushed to B and traffic flows. The same policy in namespace default
 * reaches B as a new authorization version and A is refused. An invalid update of it (an
 * action the schema does not have) gets Ready=False with the reason and changes nothing: A is
 * still refused. Deleting it removes its rule: A gets through again. A Revocation outside
 * the control plane's namespace gets Ready=False NotAdminNamespace. Every status goes through
 * the status subresource (a merge patch, counted by the stand-in). */
#include "harness.h"
#include "it_k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cp_port;
static struct it_k8s_pair pair;

static void setup(void)
{
    it_setup();
    it_k8s_certs();
    it_k8s_start("token-one", "1", 0);
    it_k8s_put("namespaces", "{\"metadata\":{\"name\":\"default\",\"labels\":"
                             "{\"tollgate.dev/inject\":\"enabled\"}}}");
    it_k8s_put("namespaces", "{\"metadata\":{\"name\":\"evil\"}}");
    /* B's pod: its labels, not B's Hello, select the policy resources (cp_pod.h) */
    it_k8s_put("pods",
               "{\"metadata\":{\"name\":\"web-0\",\"namespace\":\"default\",\"labels\":"
               "{\"app\":\"web\"}},\"spec\":{\"serviceAccountName\":\"web\",\"containers\":"
               "[{\"name\":\"app\",\"image\":\"web:1\"}]},\"status\":{\"phase\":\"Running\"}}");
    it_k8s_pod_info("b-pod", "default", "web-0", "app=\"web\"");
    it_k8s_mesh_files();
    IT_FREE_PORTS(&cp_port);
    it_write_file("mesh.yaml", "settings: {inbound: {mode: strict}}\n");
    it_k8s_write_cp("cp.yaml", cp_port, 0, "",
                    "    policy_resources: true\n    trust_configmaps: true\n");
    pair = (struct it_k8s_pair){.a_labels = "app: api", .b_pod_info = "b-pod"};
    it_k8s_pair_setup(cp_port, &pair);
}

static void teardown(void)
{
    it_teardown();
}

/* Waits until the resource's Ready condition has status want (and, if reason, that reason). */
static bool ready_is(const char *plural, const char *ns, const char *name, const char *want,
                     const char *reason, int timeout_ms)
{
    static char buf[1 << 16];
    char path[256], pat[64], rpat[128];
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;

    snprintf(path, sizeof(path), "/objects/%s/%s/%s", plural, ns, name);
    snprintf(pat, sizeof(pat), "\"status\": \"%s\"", want);
    snprintf(rpat, sizeof(rpat), "\"reason\": \"%s\"", reason != NULL ? reason : "");
    do {
        if (it_k8s_ctl("GET", path, "", buf, sizeof(buf)) == 200 &&
            strstr(buf, "\"type\": \"Ready\"") != NULL && strstr(buf, pat) != NULL &&
            (reason == NULL || strstr(buf, rpat) != NULL))
            return true;
        it_sleep_ms(20);
    } while (it_now_ms() < end);
    fprintf(stderr, "k8s policy: %s: %s\n", path, buf);
    return false;
}

static int authz_applied(void)
{
    return it_count_lines("b.err", "control plane: authorization version", "applied", NULL);
}

static void policy(const char *ns, const char *action)
{
    char j[1024];

    snprintf(
        j, sizeof(j),
        "{\"metadata\":{\"name\":\"deny-api\",\"namespace\":\"%s\"},\"spec\":{\"selector\":"
        "{\"matchLabels\":{\"app\":\"web\"}},\"rules\":[{\"name\":\"no-api\",\"action\":\"%s\","
        "\"principals\":[\"" IT_API_ID "\"]}]}}",
        ns, action);
    it_k8s_put("authorizationpolicies", j);
}

START_TEST(test_k8s_policy_resources_end_to_end)
{
    const char *cp_argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    struct it_proc *cp = it_spawn("cp", cp_argv, IT_STDIN_NULL);
    int b0;
    long long writes0;

    cp->must_exit_0 = true;
    ck_assert_msg(it_wait_port(cp_port, 10000), "tollgate-cp did not listen");
    it_sidecar_start("b", "b.yaml", pair.b_admin, 0);
    it_sidecar_start("a", "a.yaml", pair.a_admin, 0);
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, true, 5000),
                  "no traffic through A and B at the start");
    /* the first authorization comes once the cluster is listed (none before: see cp_k8s.h) */
    ck_assert_msg(it_wait_lines("b.err", 1, 5000, "control plane: authorization version", "applied",
                                NULL) >= 1,
                  "B got no authorization after the first sync");

    /* the attack: namespace evil's policy selecting app=web never reaches B in default */
    b0 = authz_applied();
    policy("evil", "deny");
    ck_assert_msg(ready_is("authorizationpolicies", "evil", "deny-api", "True", "Applied", 5000),
                  "evil/deny-api got no Ready=True");
    it_sleep_ms(300); /* a push, had there been one, would be on its way */
    ck_assert_int_eq(authz_applied(), b0);
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, true, 1000),
                  "evil's policy affected B in default");

    /* the same in default: B applies it, A is refused */
    b0 = authz_applied();
    policy("default", "deny");
    ck_assert_msg(it_wait_lines("b.err", b0 + 1, 5000, "control plane: authorization version",
                                "applied", NULL) > b0,
                  "B applied no new authorization");
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, false, 3000),
                  "A still gets through B's deny rule");
    ck_assert_msg(ready_is("authorizationpolicies", "default", "deny-api", "True", "Applied", 5000),
                  "default/deny-api got no Ready=True");

    /* an invalid update: Ready=False with the reason, the last good rule stays */
    b0 = authz_applied();
    writes0 = it_k8s_stat("status_writes");
    policy("default", "reject");
    ck_assert_msg(
        ready_is("authorizationpolicies", "default", "deny-api", "False", "InvalidSpec", 5000),
        "the invalid update got no Ready=False InvalidSpec");
    ck_assert_int_gt(it_k8s_stat("status_writes"), writes0);
    ck_assert_msg(it_file_contains("cp.err", "rules[0].action: \"reject\" is not allow or deny"),
                  "the control plane did not say what was wrong");
    ck_assert_int_eq(authz_applied(), b0);
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, false, 500),
                  "the invalid update dropped the last good rule");

    /* deleted: its rule goes */
    it_k8s_del("authorizationpolicies", "default", "deny-api");
    ck_assert_msg(it_wait_lines("b.err", b0 + 1, 5000, "control plane: authorization version",
                                "applied", NULL) > b0,
                  "B applied no new authorization after the delete");
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, true, 3000),
                  "A still refused after the policy was deleted");

    /* a RateLimit in the mesh files' shape reaches B; the old shape is refused, named */
    b0 = it_count_lines("b.err", "control plane: rate_limits version", "applied", NULL);
    it_k8s_put("ratelimits", "{\"metadata\":{\"name\":\"web\",\"namespace\":\"default\"},\"spec\":{"
                             "\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"key\":\"id\","
                             "\"default\":{\"max_concurrent\":100},\"overrides\":[{\"principal\":"
                             "\"" IT_API_ID "\",\"connections_per_second\":1000}]}}");
    ck_assert_msg(ready_is("ratelimits", "default", "web", "True", "Applied", 5000),
                  "default/web RateLimit got no Ready=True");
    ck_assert_msg(it_wait_lines("b.err", b0 + 1, 5000, "control plane: rate_limits version",
                                "applied", NULL) > b0,
                  "B applied no rate limits from the RateLimit");
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, true, 1000),
                  "A refused under a generous limit");
    it_k8s_put("ratelimits", "{\"metadata\":{\"name\":\"old\",\"namespace\":\"default\"},"
                             "\"spec\":{\"limits\":[{\"match\":\"*\",\"key_by\":\"id\"}]}}");
    ck_assert_msg(ready_is("ratelimits", "default", "old", "False", "InvalidSpec", 5000),
                  "the old RateLimit shape got no Ready=False InvalidSpec");
    ck_assert_msg(it_file_contains("cp.err", "spec: limits: renamed to 'overrides'"),
                  "the control plane did not name the old field");

    /* a Revocation is mesh-wide: refused outside the control plane's namespace */
    it_k8s_put("revocations", "{\"metadata\":{\"name\":\"r\",\"namespace\":\"evil\"},\"spec\":"
                              "{\"serials\":[\"0a1b2c\"]}}");
    ck_assert_msg(ready_is("revocations", "evil", "r", "False", "NotAdminNamespace", 5000),
                  "a Revocation outside tollgate-system was not refused");
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, true, 500),
                  "evil's Revocation affected traffic");

    ck_assert_int_eq(it_stop(cp, 10000), 0);
}
END_TEST

/* The second line of a PEM file (base64, no escapes in JSON): what to look for in a body. */
static void pem_line(const char *file, char *dst, size_t cap)
{
    char *pem = it_read_file(file, NULL), *nl;

    ck_assert_ptr_nonnull(pem);
    nl = strchr(pem, '\n');
    ck_assert_ptr_nonnull(nl);
    snprintf(dst, cap, "%.*s", (int)strcspn(nl + 1, "\n"), nl + 1);
    free(pem);
}

/* Waits until namespace ns's trust-root ConfigMap exists (want) holding n1 and n2 ("": any),
 * or is absent (!want). */
static bool configmap_is(const char *ns, bool want, const char *n1, const char *n2, int ms)
{
    static char buf[1 << 16];
    char path[256];
    uint64_t end = it_now_ms() + (uint64_t)ms;

    snprintf(path, sizeof(path), "/objects/configmaps/%s/tollgate-ca-root", ns);
    do {
        int st = it_k8s_ctl("GET", path, "", buf, sizeof(buf));

        if (want ? st == 200 && strstr(buf, "\"ca.pem\"") != NULL && strstr(buf, n1) != NULL &&
                       strstr(buf, n2) != NULL
                 : st == 404)
            return true;
        it_sleep_ms(20);
    } while (it_now_ms() < end);
    fprintf(stderr, "k8s configmaps: %s: %s\n", path, buf);
    return false;
}

/* Trust-root ConfigMaps: published in labelled namespaces only, in a namespace labelled
 * later, re-created when deleted, and following a CA rotation (roots: old and new). */
START_TEST(test_k8s_trust_configmaps)
{
    const char *cp_argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    struct it_proc *cp = it_spawn("cp", cp_argv, IT_STDIN_NULL);
    char old_line[128], new_line[128];

    cp->must_exit_0 = true;
    pem_line("ca.pem", old_line, sizeof(old_line));
    ck_assert_msg(configmap_is("default", true, old_line, "", 5000),
                  "no trust-root ConfigMap in the labelled namespace");
    ck_assert_msg(configmap_is("evil", false, "", "", 0), "a ConfigMap in an unlabelled one");

    it_k8s_put("namespaces", "{\"metadata\":{\"name\":\"shop\",\"labels\":"
                             "{\"tollgate.dev/inject\":\"enabled\"}}}");
    ck_assert_msg(configmap_is("shop", true, old_line, "", 3000),
                  "no ConfigMap in a namespace labelled later");

    it_k8s_del("configmaps", "default", "tollgate-ca-root");
    ck_assert_msg(configmap_is("default", true, old_line, "", 3000), "not re-created");
    ck_assert_int_eq(it_k8s_stat("cm_creates"), 3);

    /* a CA rotation: the bundle holds old and new; every ConfigMap follows */
    it_certs("ca", "--out", "ca2", "--cn", "k8s policy test CA 2", NULL);
    pem_line("ca2.pem", new_line, sizeof(new_line));
    it_k8s_write_cp("cp.yaml", cp_port, 0, "roots: [ca.pem, ca2.pem]\n",
                    "    policy_resources: true\n    trust_configmaps: true\n");
    ck_assert_msg(configmap_is("default", true, old_line, new_line, 5000) &&
                      configmap_is("shop", true, old_line, new_line, 1000),
                  "the ConfigMaps did not follow the rotation");
    ck_assert_int_eq(it_k8s_stat("cm_patches"), 2);
    ck_assert_int_eq(it_stop(cp, 10000), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s = suite_create("cp_k8s_policy");
    TCase *tc = tcase_create("cp_k8s_policy");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_k8s_policy_resources_end_to_end);
    tcase_add_test(tc, test_k8s_trust_configmaps);
    suite_add_tcase(s, tc);
    return s;
}

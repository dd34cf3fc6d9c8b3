/* Pod metadata checked, end to end on loopback: tollgate-cp with kubernetes.discovery against
 * the stand-in API server (tests/k8s/apiserver.py), and two sidecars that name their pods
 * through control_plane.pod_info (a downward API directory): A (sa api, pod api-0, labelled
 * app=api) and B (sa web, pod web-0, labelled app=web). mesh.yaml denies A at workloads of
 * namespace default labelled app=web.
 *
 * The attacks, both of which got through when Hello's labels were taken as claimed:
 *   - dodging a rule: B's labels file is empty, so its Hello claims no label; the Pod's labels
 *     scope its rules anyway, B gets the deny rule and A is refused;
 *   - taking another workload's rule: A claims app=web, a label its Pod does not carry; its
 *     stream is refused, saying so, and it gets nothing.
 * Then the labels follow the Pod: relabelled app=other, B's deny rule goes and A (now
 * claiming nothing) gets through. */
#include "harness.h"
#include "it_k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cp_port;
static struct it_k8s_pair pair;

/* Pod default/name under service account sa, labelled app=app. */
static void pod(const char *name, const char *sa, const char *app)
{
    char labels[128];

    snprintf(labels, sizeof(labels), "{\"app\":\"%s\",\"pod-template-hash\":\"7d9f\"}", app);
    it_k8s_pod("default", name, sa, labels, name[0] == 'a' ? "10.1.0.10" : "10.1.0.11");
}

static void setup(void)
{
    it_k8s_two_pods("{\"app\":\"api\",\"pod-template-hash\":\"7d9f\"}",
                    "{\"app\":\"web\",\"pod-template-hash\":\"7d9f\"}");
    IT_FREE_PORTS(&cp_port);
    it_write_file("mesh.yaml", "settings: {inbound: {mode: strict}}\n"
                               "authorization:\n"
                               "  rules:\n"
                               "    - name: no-api-at-web\n"
                               "      action: deny\n"
                               "      scope: {namespace: default, labels: {app: web}}\n"
                               "      principals: [\"" IT_API_ID "\"]\n");
    it_k8s_write_cp("cp.yaml", cp_port, 0, "", "");
    it_k8s_pod_info("a-pod", "default", "api-0", "app=\"api\"");
    it_k8s_pod_info("b-pod", "default", "web-0", ""); /* claims nothing */
    pair = (struct it_k8s_pair){.a_pod_info = "a-pod", .b_pod_info = "b-pod"};
    it_k8s_pair_setup(cp_port, &pair);
}

static void teardown(void)
{
    it_teardown();
}

START_TEST(test_k8s_pod_labels_from_the_pod)
{
    const char *cp_argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    const char *a_argv[] = {it_env("TG_BIN"), "run", "-c", "a.yaml", NULL};
    struct it_proc *cp = it_spawn("cp", cp_argv, IT_STDIN_NULL), *a;
    int refusals;

    cp->must_exit_0 = true;
    ck_assert_msg(it_wait_port(cp_port, 10000), "tollgate-cp did not listen");
    ck_assert_msg(it_wait_file_contains("cp.err", "pods listed", 5000), "the Pods were not listed");
    it_sidecar_start("b", "b.yaml", pair.b_admin, 0);

    /* dodging: B claims no label, yet the Pod's app=web scopes its rules */
    ck_assert_msg(
        it_wait_file_contains("cp.err", "pod \"web-0\"): rule-scoping labels: the Pod's, 2", 5000),
        "B's labels were not taken from its Pod");

    /* taking: A claims app=web, its Pod says app=api: refused, with the reason on both sides */
    it_replace_file("a-pod/labels", "app=\"web\"");
    a = it_spawn("a", a_argv, IT_STDIN_NULL); /* not ready until it stops lying */
    a->must_exit_0 = true;
    ck_assert_msg(it_wait_file_contains("cp.err",
                                        "Hello claims label app=web but pod default/api-0 has "
                                        "app=api",
                                        5000),
                  "A's forged label was not refused");
    ck_assert_msg(it_wait_file_contains("a.err", "has app=api", 5000),
                  "A was not told why it was refused");
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, false, 1000),
                  "traffic flows without A's identity?");
    refusals = it_count_lines("cp.err", "Hello claims label app=web", NULL);

    /* A fixed: its file says what its Pod says; B's deny rule (from B's Pod) refuses A */
    it_replace_file("a-pod/labels", "app=\"api\"");
    ck_assert_msg(it_wait_http(pair.a_admin, "/ready", 200, 10000),
                  "A was not ready once its labels were true");
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, false, 1500),
                  "A got through B's deny rule");
    ck_assert_int_eq(it_count_lines("cp.err", "Hello claims label app=web", NULL), refusals);

    /* the labels follow the Pod: relabelled, the deny rule leaves B and A gets through */
    pod("web-0", "web", "other");
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, true, 5000),
                  "B kept the rule of a label its Pod lost");

    /* a Pod that comes to contradict the stream ends it: web-0 under another service account */
    pod("web-0", "api", "other");
    ck_assert_msg(it_wait_file_contains("cp.err",
                                        "pod default/web-0 runs under service account "
                                        "api, not web",
                                        5000),
                  "B's stream outlived its Pod's change of service account");
    ck_assert_int_eq(it_stop(cp, 10000), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    return it_k8s_suite("cp_k8s_podmeta", test_k8s_pod_labels_from_the_pod, setup, teardown);
}

/* Bootstrap tokens checked by the API server (kubernetes.token_review), end to end on
 * loopback: tollgate-cp with discovery and token_review against the stand-in API server
 * (tests/k8s/apiserver.py), which answers TokenReviews for the service-account tokens the
 * test gives it.
 *
 * Sidecars A (default/api, pod api-0) and B (default/web, pod web-0) bootstrap with their
 * tokens, which the control plane has the API server review: both get identities and carry
 * traffic. Three more sidecars are refused, each saying why: C's token has expired, D's is
 * for another audience, E's was issued for pod api-0 while E names pod web-0 (the token's
 * pod binds the stream). */
#include "harness.h"
#include "it_k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cp_port;
static struct it_k8s_pair pair;

/* A token of a JWT's shape (the stand-in does not read it), and the stand-in told of it. */
static void sa_token(const char *file, const char *tag, const char *sa, const char *pod,
                     const char *aud, int ttl)
{
    char tok[128], j[512], reply[4096];

    snprintf(tok, sizeof(tok), "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.sig-%s", tag);
    it_write_file(file, "%s\n", tok);
    snprintf(j, sizeof(j),
             "{\"token\":\"%s\",\"namespace\":\"default\",\"serviceaccount\":\"%s\","
             "\"pod\":\"%s\",\"audiences\":[\"%s\"],\"ttl\":%d}",
             tok, sa, pod, aud, ttl);
    ck_assert_int_eq(it_k8s_ctl("POST", "/satoken", j, reply, sizeof(reply)), 200);
}

static void setup(void)
{
    it_k8s_two_pods("{}", "{}");
    sa_token("a.token", "a", "api", "api-0", "tollgate", 3600);
    sa_token("b.token", "b", "web", "web-0", "tollgate", 3600);
    sa_token("c.token", "c", "api", "api-0", "tollgate", 0); /* expired */
    sa_token("d.token", "d", "api", "api-0", "vault", 3600);
    sa_token("e.token", "e", "api", "api-0", "tollgate", 3600);
    it_k8s_pod_info("e-pod", "default", "web-0", "");
    IT_FREE_PORTS(&cp_port);
    it_write_file("mesh.yaml", "settings: {inbound: {mode: strict}}\n");
    /* kubernetes: {discovery: {...}, audiences: [tollgate], token_review: true} */
    it_k8s_write_cp("cp.yaml", cp_port, 0, "", "  audiences: [tollgate]\n  token_review: true\n");
    pair = (struct it_k8s_pair){0};
    it_k8s_pair_setup(cp_port, &pair);
}

static void teardown(void)
{
    it_teardown();
}

/* A sidecar that is refused: token file token, pod_info pod_info (NULL: none). */
static struct it_proc *refused_sidecar(const char *name, const char *token, const char *pod_info)
{
    char file[32];
    const char *argv[] = {it_env("TG_BIN"), "run", "-c", file, NULL};
    int port = it_free_port();
    struct it_cfg c = {
        .workers = 1, .cp_pod_info = pod_info, .out = {{"x-out", port, pair.in_port, IT_WEB_ID}}};
    struct it_proc *p;

    snprintf(file, sizeof(file), "%s.yaml", name);
    it_cfg_write_cp(file, 0, cp_port, token, &c);
    p = it_spawn(name, argv, IT_STDIN_NULL);
    p->must_exit_0 = true;
    return p;
}

START_TEST(test_k8s_token_review)
{
    const char *cp_argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    struct it_proc *cp = it_spawn("cp", cp_argv, IT_STDIN_NULL);

    cp->must_exit_0 = true;
    ck_assert_msg(it_wait_port(cp_port, 10000), "tollgate-cp did not listen");
    ck_assert_msg(it_wait_file_contains("cp.err", "pods listed", 5000), "the Pods were not listed");
    it_sidecar_start("b", "b.yaml", pair.b_admin, 0);
    it_sidecar_start("a", "a.yaml", pair.a_admin, 0);
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, true, 5000), "no traffic through A and B");
    ck_assert_int_eq(it_count_lines("cp.err",
                                    "is spiffe://mesh.local/ns/default/sa/api (by "
                                    "service-account token, reviewed by the API server)",
                                    NULL),
                     1);
    ck_assert_int_ge(it_k8s_stat("tokenreviews"), 2);
    /* the token named pod api-0, and A named none: the token's pod is A's */
    ck_assert_msg(it_file_contains("cp.err", "pod \"api-0\"): rule-scoping labels: the Pod's"),
                  "A was not bound to the token's pod");

    refused_sidecar("c", "c.token", NULL);
    refused_sidecar("d", "d.token", NULL);
    refused_sidecar("e", "e.token", "e-pod");
    ck_assert_msg(it_wait_file_contains("c.err", "service account token has expired", 5000),
                  "C's expired token was not refused by the API server");
    ck_assert_msg(it_wait_file_contains("d.err", "is invalid for the target audiences", 5000),
                  "D's token for another audience was not refused");
    ck_assert_msg(it_wait_file_contains("e.err",
                                        "Hello names pod web-0 but the token was issued for pod "
                                        "api-0",
                                        5000),
                  "E named another pod than its token's and was not refused");
    ck_assert_msg(it_k8s_traffic_becomes(pair.out_port, true, 1000), "A and B lost traffic");
    ck_assert_int_eq(it_stop(cp, 10000), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    return it_k8s_suite("cp_k8s_tokenreview", test_k8s_token_review, setup, teardown);
}

/* cp.yaml's kubernetes.discovery section (controlplane/cp_config.c): in-cluster, or an
 * explicit API server with its CA and token; the service-account token keys stay optional
 * beside it; every mistake named with its line and key. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_config.h"

#define BASE                                                                                       \
    "trust_domain: mesh.local\n"                                                                   \
    "server: {cert: cp.pem, key: cp.key}\n"                                                        \
    "ca: {cert: ca.pem, key: ca.key}\n"

static int parse(const char *text, struct tg_cp_config **c, char *err)
{
    return tg_cp_config_parse(text, strlen(text), "/etc/cp/cp.yaml", c, err);
}

/* Parses text, which must be valid: the caller frees the result. */
static struct tg_cp_config *parse_ok(const char *text)
{
    struct tg_cp_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(parse(text, &c, err) == 0, "%s", err);
    return c;
}

START_TEST(test_k8s_discovery_in_cluster)
{
    struct tg_cp_config *c = parse_ok(BASE "kubernetes:\n  discovery: {in_cluster: true}\n");

    ck_assert(c->k8s_discovery && c->k8s_in_cluster);
    ck_assert_ptr_null(c->k8s_api_server);
    ck_assert_ptr_null(c->k8s_ca);
    ck_assert_ptr_null(c->k8s_keys); /* token verification stays off */
    tg_cp_config_free(c);
}
END_TEST

START_TEST(test_k8s_discovery_explicit)
{
    struct tg_cp_config *c = parse_ok(BASE "kubernetes:\n"
                                           "  issuer: https://k8s\n"
                                           "  audiences: [tollgate]\n"
                                           "  keys: sa.pem\n"
                                           "  discovery:\n"
                                           "    api_server: https://10.0.0.1:6443\n"
                                           "    ca: k8s/ca.crt\n"
                                           "    token: /var/run/token\n");

    ck_assert(c->k8s_discovery && !c->k8s_in_cluster);
    ck_assert_str_eq(c->k8s_api_server, "https://10.0.0.1:6443");
    ck_assert_str_eq(c->k8s_ca, "/etc/cp/k8s/ca.crt");
    ck_assert_str_eq(c->k8s_token, "/var/run/token");
    ck_assert_str_eq(c->k8s_keys, "/etc/cp/sa.pem");
    tg_cp_config_free(c);
    c = parse_ok(BASE); /* off by default */
    ck_assert(!c->k8s_discovery);
    tg_cp_config_free(c);
}
END_TEST

START_TEST(test_k8s_token_review)
{
    struct tg_cp_config *c =
        parse_ok(BASE "kubernetes:\n  audiences: [tollgate]\n  token_review: true\n"
                      "  discovery: {in_cluster: true}\n");

    ck_assert(c->k8s_token_review && c->k8s_discovery);
    ck_assert_ptr_null(c->k8s_keys);
    ck_assert_str_eq(c->k8s_audiences.v[0], "tollgate");
    tg_cp_config_free(c);
}
END_TEST

static const struct {
    const char *yaml, *err;
} bad[] = {
    {"kubernetes:\n  discovery: {}\n",
     "cp.yaml:5: kubernetes.discovery: wants in_cluster: true, or api_server with ca and token"},
    {"kubernetes:\n  discovery: {in_cluster: false}\n", "kubernetes.discovery.in_cluster: true"},
    {"kubernetes:\n  discovery: {api_server: http://10.0.0.1, ca: a, token: t}\n",
     "kubernetes.discovery.api_server: \"http://10.0.0.1\" is not an https:// URL"},
    {"kubernetes:\n  discovery: {api_server: https://10.0.0.1, ca: a}\n",
     "wants in_cluster: true, or api_server with ca and token"},
    {"kubernetes:\n  discovery: {api_server: https://k, ca: a, token: t, in_cluster: true}\n",
     "in_cluster and api_server exclude each other"},
    {"kubernetes:\n  discovery: {in_cluster: true, watch: all}\n",
     "kubernetes.discovery.watch: unknown key"},
    {"kubernetes:\n  discovery: true\n", "kubernetes.discovery"},
    {"kubernetes:\n  issuer: https://k\n  discovery: {in_cluster: true}\n",
     "wants issuer, audiences and keys"},
    {"kubernetes: {}\n", "wants issuer, audiences and keys, or discovery"},
    {"kubernetes:\n  audiences: [tollgate]\n  token_review: true\n",
     "kubernetes: token_review wants discovery (the API server it asks)"},
    {"kubernetes:\n  token_review: true\n  discovery: {in_cluster: true}\n",
     "kubernetes: token_review wants audiences"},
    {"kubernetes:\n  audiences: [tollgate]\n  keys: sa.pem\n  token_review: true\n"
     "  discovery: {in_cluster: true}\n",
     "token_review excludes issuer and keys"},
};

START_TEST(test_k8s_discovery_refused)
{
    struct tg_cp_config *c = NULL;
    char text[1024], err[TG_ERRLEN] = "";

    snprintf(text, sizeof(text), BASE "%s", bad[_i].yaml);
    ck_assert_int_eq(parse(text, &c, err), TG_ECONFIG);
    ck_assert_msg(strstr(err, bad[_i].err) != NULL, "%s: got \"%s\"", bad[_i].yaml, err);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE("cp_k8s_config", "config", &tc, test_k8s_discovery_in_cluster,
                             test_k8s_discovery_explicit, test_k8s_token_review);

    tcase_add_loop_test(tc, test_k8s_discovery_refused, 0, TG_NELEM(bad));
    return s;
}

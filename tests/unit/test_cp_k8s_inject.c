/* Injection decisions (controlplane/k8s/k8s_inject.h) without a server: what each
 * AdmissionReview gets, and cp.yaml's kubernetes.webhook keys (cp_config.c). The HTTPS side,
 * the patched pods against the schemas and the probes end to end: tests/k8s/test_webhook.py. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_config.h"
#include "k8s_inject.h"

#define REVIEW(op, pod)                                                                            \
    "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"           \
    "\"uid\":\"u-1\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"               \
    "\"namespace\":\"prod\",\"operation\":\"" op "\",\"object\":" pod "}}"
#define POD(meta, spec) "{\"metadata\":{" meta "},\"spec\":{" spec "}}"
#define APP                                                                                        \
    "\"containers\":[{\"name\":\"app\",\"image\":\"a\",\"ports\":[{\"containerPort\":8080}]}]"

enum outcome { PATCHED, NO_PATCH, REFUSED, BAD_BODY };

static const struct {
    const char *what;
    const char *body;
    bool ns_known, ns_inject;
    enum outcome want;
    const char *reason; /* a word the refusal must name */
} cases[] = {
    {"a plain pod", REVIEW("CREATE", POD("", APP)), false, false, PATCHED, NULL},
    {"a pod of a labelled namespace", REVIEW("CREATE", POD("", APP)), true, true, PATCHED, NULL},
    {"a namespace whose label is gone", REVIEW("CREATE", POD("", APP)), true, false, NO_PATCH,
     NULL},
    {"an UPDATE", REVIEW("UPDATE", POD("", APP)), false, false, NO_PATCH, NULL},
    {"opted out", REVIEW("CREATE", POD("\"annotations\":{\"tollgate.dev/inject\":\"false\"}", APP)),
     false, false, NO_PATCH, NULL},
    {"already injected",
     REVIEW("CREATE", POD("\"annotations\":{\"tollgate.dev/injected\":\"true\"}", APP)), false,
     false, NO_PATCH, NULL},
    {"a tollgate-proxy already there",
     REVIEW("CREATE", POD("", APP ",\"initContainers\":[{\"name\":\"tollgate-proxy\"}]")), false,
     false, NO_PATCH, NULL},
    {"hostNetwork", REVIEW("CREATE", POD("", APP ",\"hostNetwork\":true")), false, false, REFUSED,
     "hostNetwork"},
    {"a sidecar port",
     REVIEW("CREATE", POD("", "\"containers\":[{\"name\":\"x\",\"ports\":[{\"containerPort\":"
                              "15090}]}]")),
     false, false, REFUSED, "15090"},
    {"a sidecar host port",
     REVIEW("CREATE", POD("", "\"containers\":[{\"name\":\"x\",\"ports\":[{\"containerPort\":80,"
                              "\"hostPort\":15021}]}]")),
     false, false, REFUSED, "hostPort"},
    {"a probe on an undeclared port name",
     REVIEW("CREATE", POD("", "\"containers\":[{\"name\":\"x\",\"readinessProbe\":{\"httpGet\":"
                              "{\"port\":\"web\"}}}]")),
     false, false, REFUSED, "web"},
    {"no containers", REVIEW("CREATE", "{\"metadata\":{}}"), false, false, REFUSED, "Pod"},
    {"not JSON", "{\"apiVersion\":", false, false, BAD_BODY, NULL},
    {"a Pod, not a review", POD("", APP), false, false, BAD_BODY, NULL},
    {"no uid",
     "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{}}", false,
     false, BAD_BODY, NULL},
    {"v1beta1", "{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\"}", false,
     false, BAD_BODY, NULL},
};

static struct tg_k8s_inject_ns lookup(void *arg, const char *ns)
{
    const int *i = arg;

    ck_assert_str_eq(ns, "prod");
    return (struct tg_k8s_inject_ns){cases[*i].ns_known, cases[*i].ns_inject};
}

START_TEST(test_inject_decisions)
{
    struct tg_k8s_inject_cfg cfg = {NULL};
    struct tg_k8s_inject_result res;
    char err[TG_ERRLEN] = "";
    int i = _i;
    int rc =
        tg_k8s_inject_review(cases[i].body, strlen(cases[i].body), &cfg, lookup, &i, &res, err);

    if (cases[i].want == BAD_BODY) {
        ck_assert_msg(rc == TG_EINVAL && err[0] != '\0', "%s: rc %d", cases[i].what, rc);
        return;
    }
    ck_assert_msg(rc == 0, "%s: %s", cases[i].what, err);
    ck_assert_msg(strstr(res.body, "\"uid\":\"u-1\"") != NULL, "%s: uid not echoed", cases[i].what);
    ck_assert_msg(res.patched == (cases[i].want == PATCHED), "%s: patched %d (%s)", cases[i].what,
                  res.patched, res.why);
    ck_assert_msg((strstr(res.body, "\"allowed\":false") != NULL) == (cases[i].want == REFUSED),
                  "%s: %s", cases[i].what, res.body);
    if (cases[i].reason != NULL)
        ck_assert_msg(strstr(res.reason, cases[i].reason) != NULL, "%s: %s", cases[i].what,
                      res.reason);
    free(res.body);
}
END_TEST

START_TEST(test_base64)
{
    static const char *const in[] = {"", "f", "fo", "foo", "foob"};
    static const char *const want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg=="};

    for (size_t i = 0; i < TG_NELEM(in); i++) {
        char *out = NULL;

        ck_assert_int_eq(tg_k8s_base64(in[i], strlen(in[i]), &out), 0);
        ck_assert_str_eq(out, want[i]);
        free(out);
    }
}
END_TEST

#define BASE                                                                                       \
    "trust_domain: mesh.local\n"                                                                   \
    "server: {cert: cp.pem, key: cp.key}\n"                                                        \
    "ca: {cert: ca.pem, key: ca.key}\n"

START_TEST(test_webhook_config_defaults)
{
    const char *text = BASE "kubernetes:\n  discovery: {in_cluster: true}\n  webhook: {}\n";
    struct tg_cp_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(tg_cp_config_parse(text, strlen(text), "/etc/cp/cp.yaml", &c, err) == 0, "%s",
                  err);
    ck_assert(c->webhook.on);
    ck_assert_str_eq(c->webhook.listen.text, "0.0.0.0:15017");
    ck_assert_str_eq(c->webhook.service, "tollgate-cp");
    ck_assert_str_eq(c->webhook.ns, "tollgate-system");
    ck_assert_str_eq(c->webhook.configuration, "tollgate-sidecar-injector");
    ck_assert_str_eq(c->webhook.image, "tollgate:0.1.0");
    tg_cp_config_free(c);
}
END_TEST

static const struct {
    const char *yaml;
    const char *want; /* in err */
} bad[] = {
    {"kubernetes:\n  issuer: https://i\n  audiences: [a]\n  keys: k.pem\n  webhook: {}\n",
     "webhook wants discovery"},
    {"kubernetes:\n  discovery: {in_cluster: true}\n  webhook: {service: Tollgate}\n",
     "not a DNS label"},
    {"kubernetes:\n  discovery: {in_cluster: true}\n  webhook: {listen: nowhere}\n", "listen"},
    {"kubernetes:\n  discovery: {in_cluster: true}\n  webhook: {port: 1}\n", "port"},
};

START_TEST(test_webhook_config_refused)
{
    char text[512];
    struct tg_cp_config *c = NULL;
    char err[TG_ERRLEN] = "";

    snprintf(text, sizeof(text), BASE "%s", bad[_i].yaml);
    ck_assert_int_ne(tg_cp_config_parse(text, strlen(text), "/etc/cp/cp.yaml", &c, err), 0);
    ck_assert_msg(strstr(err, bad[_i].want) != NULL, "%s: %s", bad[_i].want, err);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s =
        TG_TEST_SUITE("cp_k8s_inject", "inject", &tc, test_base64, test_webhook_config_defaults);

    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_inject_decisions, cases),
                  TG_TEST_LOOP(test_webhook_config_refused, bad));
    return s;
}

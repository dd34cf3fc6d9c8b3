/* Sidecar injection as a mutating admission webhook: one AdmissionReview v1 request in, its
 * response out ("Dynamic Admission Control" in the Kubernetes reference). Pure apart from
 * jansson and wolfSSL's base64: no I/O, no libuv; k8s_webhook.c serves it over HTTPS.
 *
 * What is injected is the shape of deploy/k8s/components/inject/sidecar-patch.yaml (the
 * kustomize Component, for clusters that allow no webhooks): the init container
 * tollgate-init (capture rules), the native sidecar tollgate-proxy, their volumes, and the
 * annotation TG_K8S_INJECTED_ANNOTATION; tests/k8s/test_webhook.py checks the two agree.
 * Beyond the Component, the webhook adds the Prometheus scrape annotations for the sidecar's
 * metrics port.
 *
 * Decisions, in this order (the response is always allowed unless said otherwise):
 *   1. the body is not an AdmissionReview v1 with a request and a uid: TG_EINVAL (HTTP 400);
 *   2. not a Pod CREATE: no patch;
 *   3. the namespace is known (ns_known) and not labelled TG_K8S_INJECT_LABEL=enabled: no
 *      patch (the webhook's namespaceSelector should not have sent it; a label removed since
 *      wins);
 *   4. annotated TG_K8S_INJECT_ANNOTATION: "false": no patch (opt-out);
 *   5. already injected (the annotation, or a container named tollgate-proxy or
 *      tollgate-init): no patch (so a second pass, reinvocationPolicy, changes nothing);
 *   6. a pod that cannot be made correct: refused (allowed: false, code 400, the reason in
 *      status.message): hostNetwork (the capture rules would be the node's), a container
 *      port or a hostPort among the sidecar's ports (15000, 15001, 15006, 15021, 15090), an
 *      object that is not a Pod's shape (spec.containers missing);
 *   7. otherwise a JSONPatch (RFC 6902) of "add" operations, base64 in response.patch. */
#ifndef TOLLGATE_K8S_INJECT_H
#define TOLLGATE_K8S_INJECT_H

#include <stdbool.h>
#include <stddef.h>

#include "tollgate/err.h"

/* The sidecar's ports in a pod (Istio's numbers where Istio has one: 15001, 15006, 15000,
 * 15021 health, 15090 Prometheus). */
#define TG_K8S_PORT_ADMIN 15000
#define TG_K8S_PORT_OUTBOUND 15001
#define TG_K8S_PORT_INBOUND 15006
#define TG_K8S_PORT_HEALTH 15021
#define TG_K8S_PORT_METRICS 15090

#define TG_K8S_INJECT_IMAGE "tollgate:0.1.0"
/* The app's original probes, JSON (include/tollgate/appprobe.h, TG_APPPROBE_ANNOTATION) */
#define TG_K8S_PROBES_ANNOTATION "tollgate.dev/app-probes"

struct tg_k8s_inject_cfg {
    const char *image; /* NULL: TG_K8S_INJECT_IMAGE */
};

/* What the namespace of a request is known to be (from the control plane's watch). */
struct tg_k8s_inject_ns {
    bool known;  /* the namespace is in the cache */
    bool inject; /* and labelled for injection */
};

/* Looks the request's namespace up; may be NULL (then rule 3 never applies). */
typedef struct tg_k8s_inject_ns (*tg_k8s_inject_lookup)(void *arg, const char *ns);

struct tg_k8s_inject_result {
    char *body; /* the AdmissionReview response, malloc'd JSON (the caller frees) */
    size_t len;
    bool patched;           /* a patch was made */
    const char *why;        /* static: what was decided ("injected", "opted out", ...) */
    char reason[TG_ERRLEN]; /* a refusal's message; "" when allowed */
};

/* Decides on the AdmissionReview in body[0..len) (at most the caller's cap). 0 with *res
 * filled, TG_EINVAL with err when the body is not an AdmissionReview (answer 400), TG_ENOMEM. */
TG_MUST_USE int tg_k8s_inject_review(const char *body, size_t len,
                                     const struct tg_k8s_inject_cfg *cfg,
                                     tg_k8s_inject_lookup lookup, void *arg,
                                     struct tg_k8s_inject_result *res, char *err);

/* in[0..n) as base64 (RFC 4648, with padding, no line breaks): *out malloc'd and
 * NUL-terminated. 0 or TG_ENOMEM. */
TG_MUST_USE int tg_k8s_base64(const char *in, size_t n, char **out);

#endif

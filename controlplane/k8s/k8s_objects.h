/* The Kubernetes objects the mesh watches, cut down to the fields it needs: v1 Namespace,
 * v1 Pod, v1 Service and discovery.k8s.io/v1 EndpointSlice, parsed from the API's JSON
 * (jansson, in k8s_objects.c only) into small structs. No jansson tree outlives a parse.
 *
 * Each object owns all its memory in one arena (tg_resource's), freed by tg_k8s_obj_free.
 * Objects are immutable once parsed: the cache replaces an object, it never edits one.
 * Pure apart from jansson: no I/O, no libuv. */
#ifndef TOLLGATE_K8S_OBJECTS_H
#define TOLLGATE_K8S_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/config.h"
#include "tollgate/err.h"
#include "tollgate/resource.h"

/* The mesh's own names (docs/kubernetes.md). */
#define TG_K8S_INJECT_LABEL "tollgate.dev/inject"          /* on a Namespace: "enabled" */
#define TG_K8S_INJECT_ANNOTATION "tollgate.dev/inject"     /* on a Pod: "false" opts out */
#define TG_K8S_INJECTED_ANNOTATION "tollgate.dev/injected" /* "true": the sidecar is in */
#define TG_K8S_TUNNEL_ANNOTATION "tollgate.dev/tunnel"     /* on a Service: off, auto, on */
#define TG_K8S_SIDECAR_CONTAINER "tollgate-proxy"          /* deploy/k8s/components/inject */
#define TG_K8S_CA_CONFIGMAP "tollgate-ca-root" /* the trust bundle, in each meshed namespace */
#define TG_K8S_CA_KEY "ca.pem"                 /* its data key */

#define TG_K8S_NAME_MAX 253 /* DNS-1123 subdomain */

enum tg_k8s_kind {
    TG_K8S_NAMESPACE = 0,
    TG_K8S_POD,
    TG_K8S_SERVICE,
    TG_K8S_SLICE,
    /* the policy custom resources (k8s_policy.h), watched with kubernetes.discovery.policy */
    TG_K8S_AUTHZ,
    TG_K8S_LIMITS,
    TG_K8S_REVOKE,
    /* the trust-root ConfigMaps (k8s_publish.h), watched with
     * kubernetes.discovery.trust_configmaps: only those named TG_K8S_CA_CONFIGMAP */
    TG_K8S_CONFIGMAP,
    TG_K8S_NKINDS
};
#define TG_K8S_NDISCOVERY 4 /* the kinds discovery always watches: NAMESPACE .. SLICE */

/* "Namespace", "Pod", "Service", "EndpointSlice", "AuthorizationPolicy", "RateLimit",
 * "Revocation". */
const char *tg_k8s_kind_name(enum tg_k8s_kind k);

enum tg_k8s_proto { TG_K8S_TCP = 0, TG_K8S_UDP = 1, TG_K8S_SCTP = 2 };

/* A Service port, or an EndpointSlice port. */
struct tg_k8s_port {
    const char *name;         /* "" when unnamed */
    const char *app_protocol; /* "" when absent */
    uint32_t port;            /* Service: port; EndpointSlice: the endpoints' port */
    enum tg_k8s_proto proto;
};

struct tg_k8s_namespace {
    bool inject; /* labelled TG_K8S_INJECT_LABEL=enabled */
};

struct tg_k8s_pod {
    const char *service_account; /* spec.serviceAccountName, "default" when absent */
    struct tg_strlist ips;       /* status.podIPs (or podIP) */
    bool sidecar;                /* carries TG_K8S_SIDECAR_CONTAINER or is annotated injected */
    bool opt_out;                /* annotated TG_K8S_INJECT_ANNOTATION: "false" */
    bool finished;               /* status.phase Succeeded or Failed */
    struct tg_res_label *labels; /* metadata.labels, sorted by key */
    size_t n_labels;
};

struct tg_k8s_service {
    struct tg_strlist cluster_ips; /* spec.clusterIPs (or clusterIP); empty: headless */
    struct tg_k8s_port *ports;
    size_t n_ports;
    bool external_name;         /* type ExternalName: no endpoints, nothing to derive */
    enum tg_tunnel_mode tunnel; /* annotated TG_K8S_TUNNEL_ANNOTATION; UNSET when absent or
                                 * not off, auto or on (then the object's warning says so) */
};

struct tg_k8s_endpoint {
    struct tg_strlist addresses;
    bool ready;      /* conditions.ready; absent means ready (API reference) */
    const char *pod; /* targetRef name when its kind is Pod (same namespace), else NULL */
};

struct tg_k8s_slice {
    const char *service; /* label kubernetes.io/service-name; NULL: not a Service's */
    int family;          /* AF_INET, AF_INET6; 0: FQDN (ignored) */
    struct tg_k8s_port *ports;
    size_t n_ports;
    struct tg_k8s_endpoint *endpoints;
    size_t n_endpoints;
};

/* A policy custom resource, kept as text so k8s_policy.c can compile it (and say what is
 * wrong with it) apart from the watch, which keeps every object whatever its spec holds. */
struct tg_k8s_policy_obj {
    const char *spec;         /* .spec as compact JSON with sorted keys; "{}" when absent */
    int64_t generation;       /* metadata.generation; 0 when absent */
    const char *ready;        /* status.conditions[type=Ready].status, "" when absent */
    const char *ready_reason; /* its reason and message, "" when absent */
    const char *ready_message;
};

struct tg_k8s_configmap {
    const char *ca_pem; /* data[TG_K8S_CA_KEY]; NULL when absent */
};

struct tg_k8s_obj {
    enum tg_k8s_kind kind;
    const char *ns; /* "" for a Namespace */
    const char *name;
    const char *key; /* "ns/name", or "name" for a Namespace: the cache's key */
    const char *resource_version;
    const char *warning; /* something the object says that was ignored (one line, printable),
                          * logged by whoever receives it; NULL: none */
    union {
        struct tg_k8s_namespace ns;
        struct tg_k8s_pod pod;
        struct tg_k8s_service svc;
        struct tg_k8s_slice slice;
        struct tg_k8s_policy_obj policy;
        struct tg_k8s_configmap cm;
    } u;
    struct tg_resource *arena; /* every pointer above points in here */
};

struct json_t;

/* Parses one object of kind k (a JSON object as the API serves it). 0 with *out
 * (tg_k8s_obj_free), or TG_EINVAL with err naming the field at fault (TG_ENOMEM). Checks
 * shape, not policy: names must be DNS-1123 names, addresses numeric, ports 1..65535;
 * fields the mesh does not use are ignored whatever they hold. */
TG_MUST_USE int tg_k8s_obj_from_json(enum tg_k8s_kind k, const struct json_t *j,
                                     struct tg_k8s_obj **out, char *err);
/* The same from text (tests). */
TG_MUST_USE int tg_k8s_obj_parse(enum tg_k8s_kind k, const char *text, size_t len,
                                 struct tg_k8s_obj **out, char *err);
/* NULL is fine. */
void tg_k8s_obj_free(struct tg_k8s_obj *o);

/* Replaces every byte of s outside printable ASCII with '?' (text from the API server goes
 * into one log line: no line breaks, no terminal escapes). Returns s. */
char *tg_k8s_printable(char *s);

#endif

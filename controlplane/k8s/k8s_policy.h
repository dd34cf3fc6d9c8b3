/* Policy as Kubernetes custom resources (group tollgate.dev, version v1alpha1; the
 * CustomResourceDefinitions are deploy/k8s/base/crds.yaml, the fields docs/kubernetes.md,
 * "Policy resources"): AuthorizationPolicy (rules), RateLimit (limits) and Revocation
 * (serials, fingerprints), compiled into the resources the control plane already pushes.
 *
 * Namespaced scope, by construction: every rule and limit of a resource in namespace N is
 * scoped to N (scope_namespace N, and spec.selector.matchLabels as its scope labels), so it
 * reaches only the sidecars whose authenticated identity is in N and whose Hello labels hold
 * every selector label. No field of the spec can name another namespace's workloads.
 * A Revocation is mesh-wide by nature (a certificate is revoked for every peer): one is
 * applied only from the control plane's own namespace (admin_namespace); anywhere else it
 * is refused with a Ready=False condition (reason NotAdminNamespace).
 *
 * Last good: a resource whose spec does not compile (a field the schema does not know, a
 * value the sidecars' policy compiler refuses) keeps what it last compiled to (nothing when
 * it never compiled) and gets Ready=False with the reason and message; a deleted resource's
 * rules go at once. The compiled form of each resource is kept by key and reused while its
 * spec text is unchanged, so a status write (which changes resourceVersion) compiles nothing.
 *
 * Pure apart from jansson: no I/O, no libuv. Loop thread only. */
#ifndef TOLLGATE_K8S_POLICY_H
#define TOLLGATE_K8S_POLICY_H

#include <stdbool.h>

#include "k8s_client.h"
#include "k8s_derive.h"
#include "tollgate/resource.h"

#define TG_K8S_POLICY_MAX_ITEMS 64 /* rules, limits per resource; the CRDs' maxItems */

struct tg_k8s_policy;

/* The Ready condition a resource should carry. */
struct tg_k8s_policy_status {
    enum tg_k8s_kind kind;
    const char *ns, *name;
    int64_t generation;
    bool ready;
    const char *reason;  /* "Applied", "InvalidSpec", "NotAdminNamespace" */
    const char *message; /* one line */
};

TG_MUST_USE int tg_k8s_policy_new(const char *admin_namespace, struct tg_k8s_policy **out);
/* NULL is fine. */
void tg_k8s_policy_free(struct tg_k8s_policy *p);

/* Compiles the policy kinds of lists (TG_K8S_AUTHZ .. TG_K8S_REVOKE; the others are not
 * read). *changed: whether what tg_k8s_policy_merge gives may differ from before. 0, or
 * TG_ENOMEM (nothing changed). */
TG_MUST_USE int tg_k8s_policy_update(struct tg_k8s_policy *p,
                                     const struct tg_k8s_list lists[TG_K8S_NKINDS], bool *changed);

/* Calls fn for every resource whose Ready condition, as last seen in the API, is not the
 * one it should carry (the caller writes it; the next update sees it written). Strings are
 * borrowed for the call. */
void tg_k8s_policy_stale(const struct tg_k8s_policy *p,
                         void (*fn)(void *arg, const struct tg_k8s_policy_status *st), void *arg);

/* The pushed resource of type t (TG_RES_AUTHORIZATION, _RATE_LIMITS, _REVOCATIONS; p NULL:
 * a copy of files'): files'
 * (the mesh files', which keep default_deny, close_denied_connections and CRLs) first, then
 * every compiled resource's, in key order. 0 with *out (tg_resource_free), or TG_ENOMEM. */
TG_MUST_USE int tg_k8s_policy_merge(const struct tg_k8s_policy *p, enum tg_res_type t,
                                    const struct tg_resource *files, struct tg_resource **out);

/* Compiles one resource's spec (JSON text) of kind k in namespace ns (tests, and update).
 * 0 with *out (a resource of the pushed type), or TG_EINVAL with err (TG_ENOMEM). */
TG_MUST_USE int tg_k8s_policy_compile(enum tg_k8s_kind k, const char *ns, const char *name,
                                      const char *spec, struct tg_resource **out, char *err);

/* The merge patch (application/merge-patch+json) that writes st as the resource's Ready
 * condition through the status subresource, stamped now (RFC 3339), and its path into path.
 * A string to free, or NULL (out of memory). ns and name are DNS names (k8s_objects.h
 * checked them): the path needs no escaping. */
char *tg_k8s_policy_status_patch(const struct tg_k8s_policy_status *st, const char *now, char *path,
                                 size_t cap);

#endif

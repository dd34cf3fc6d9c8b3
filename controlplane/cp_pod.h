/* Which labels scope a stream's rules: the control plane's check of Hello's pod claims
 * (pod_name, labels) against the authenticated identity and the Pod objects it watches.
 * Pure: no I/O, no libuv; the caller passes the Pod cache (k8s_client.h).
 *
 * Without kubernetes.discovery there is no Pod to check against: Hello's labels are taken
 * as claimed (TG_CP_POD_CLAIMS), as the sidecar's own config says them.
 * With it, labels come from the Pod and from nothing else:
 *   - the token names a pod (TokenReview): that is the pod, and a Hello naming another is
 *     refused;
 *   - Hello names no pod: no labels (TG_CP_POD_NONE): a rule or limit scoped by labels does
 *     not select the stream (one scoped by namespace alone still does);
 *   - the Pods are not listed yet: no labels for now (TG_CP_POD_WAIT); the check runs again
 *     once they are (and at every change of the cluster) and may then refuse the stream;
 *   - the pod is not in the authenticated namespace's Pods, runs under another service
 *     account, or Hello claims a label the Pod does not carry with that value: refused
 *     (TG_EPEER with the reason);
 *   - else the Pod's labels, all of them (TG_CP_POD_BOUND). A claim that says less than the
 *     Pod (the downward API file lags a label change) is not a contradiction. */
#ifndef TOLLGATE_CP_POD_H
#define TOLLGATE_CP_POD_H

#include <stdbool.h>
#include <stddef.h>

#include "k8s_derive.h"
#include "tollgate/err.h"
#include "tollgate/resource.h"

enum tg_cp_pod_verdict {
    TG_CP_POD_CLAIMS, /* no discovery: Hello's labels */
    TG_CP_POD_NONE,   /* no pod named: no labels */
    TG_CP_POD_WAIT,   /* Pods not listed yet: no labels until they are */
    TG_CP_POD_BOUND,  /* the Pod's labels */
};

struct tg_cp_pod_in {
    const char *ns, *sa;   /* authenticated (cp_authn.h) */
    const char *claim_pod; /* Hello.pod_name; NULL or "": none */
    const char *token_pod; /* the pod the token was issued for (TokenReview); NULL or "" */
    const struct tg_res_label *claims;
    size_t n_claims;
    bool discovery;                 /* kubernetes.discovery: Pods are watched */
    bool synced;                    /* and listed */
    const struct tg_k8s_list *pods; /* the Pod cache, sorted by "ns/name" */
};

/* 0 with *verdict (and, for TG_CP_POD_BOUND, *pod: the Pod, borrowed from in->pods), or
 * TG_EPEER with a one-line reason in err (fit to send back). */
TG_MUST_USE int tg_cp_pod_decide(const struct tg_cp_pod_in *in, enum tg_cp_pod_verdict *verdict,
                                 const struct tg_k8s_obj **pod, char *err);

#endif

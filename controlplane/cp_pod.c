/* Hello's pod claims against the Pod objects (cp_pod.h). */
#include "cp_pod.h"

#include <stdio.h>
#include <string.h>

static const char *pod_label(const struct tg_k8s_pod *p, const char *key)
{
    for (size_t i = 0; i < p->n_labels; i++)
        if (strcmp(p->labels[i].key, key) == 0)
            return p->labels[i].value;
    return NULL;
}

int tg_cp_pod_decide(const struct tg_cp_pod_in *in, enum tg_cp_pod_verdict *verdict,
                     const struct tg_k8s_obj **pod, char *err)
{
    char key[2 * TG_K8S_NAME_MAX + 2];
    const struct tg_k8s_obj *o;
    const char *name = in->claim_pod;

    *pod = NULL;
    if (!in->discovery) {
        *verdict = TG_CP_POD_CLAIMS;
        return 0;
    }
    if (in->token_pod != NULL && in->token_pod[0] != '\0') {
        if (name != NULL && name[0] != '\0' && strcmp(name, in->token_pod) != 0)
            return tg_err_set(err, TG_EPEER,
                              "Hello names pod %.253s but the token was issued for pod %.253s",
                              name, in->token_pod);
        name = in->token_pod;
    }
    if (name == NULL || name[0] == '\0') {
        *verdict = TG_CP_POD_NONE;
        return 0;
    }
    if (strlen(name) > TG_K8S_NAME_MAX)
        return tg_err_set(err, TG_EPEER, "Hello's pod_name is longer than %d bytes",
                          TG_K8S_NAME_MAX);
    if (!in->synced) {
        *verdict = TG_CP_POD_WAIT;
        return 0;
    }
    snprintf(key, sizeof(key), "%s/%s", in->ns, name);
    if (in->pods == NULL || (o = tg_k8s_list_find(in->pods, key)) == NULL)
        return tg_err_set(err, TG_EPEER,
                          "Hello names pod %s, which is not among the Pods of namespace %s", name,
                          in->ns);
    if (strcmp(o->u.pod.service_account, in->sa) != 0)
        return tg_err_set(err, TG_EPEER, "pod %s runs under service account %s, not %s", key,
                          o->u.pod.service_account, in->sa);
    for (size_t i = 0; i < in->n_claims; i++) {
        const char *have = pod_label(&o->u.pod, in->claims[i].key);

        if (have == NULL)
            return tg_err_set(err, TG_EPEER,
                              "Hello claims label %.100s=%.63s but pod %s has no %.100s",
                              in->claims[i].key, in->claims[i].value, key, in->claims[i].key);
        if (strcmp(have, in->claims[i].value) != 0)
            return tg_err_set(err, TG_EPEER,
                              "Hello claims label %.100s=%.63s but pod %s has %.100s=%.63s",
                              in->claims[i].key, in->claims[i].value, key, in->claims[i].key, have);
    }
    *verdict = TG_CP_POD_BOUND;
    *pod = o;
    return 0;
}

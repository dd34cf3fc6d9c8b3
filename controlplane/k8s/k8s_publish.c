/* The trust-root ConfigMaps (k8s_publish.h). */
#include "k8s_publish.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int by_key(const void *key, const void *elem)
{
    return strcmp(key, (*(struct tg_k8s_obj *const *)elem)->key);
}

size_t tg_k8s_publish_stale(const struct tg_k8s_list lists[TG_K8S_NKINDS], const char *pem,
                            void (*fn)(void *arg, const char *ns, bool create), void *arg)
{
    const struct tg_k8s_list *nss = &lists[TG_K8S_NAMESPACE], *cms = &lists[TG_K8S_CONFIGMAP];
    size_t n = 0;

    for (size_t i = 0; i < nss->n; i++) {
        const struct tg_k8s_obj *ns = nss->v[i];
        struct tg_k8s_obj *const *cm;
        char key[2 * TG_K8S_NAME_MAX + 2];

        if (!ns->u.ns.inject)
            continue;
        snprintf(key, sizeof(key), "%s/%s", ns->name, TG_K8S_CA_CONFIGMAP);
        cm = cms->n > 0 ? bsearch(key, cms->v, cms->n, sizeof(*cms->v), by_key) : NULL;
        if (cm != NULL && (*cm)->u.cm.ca_pem != NULL && strcmp((*cm)->u.cm.ca_pem, pem) == 0)
            continue;
        fn(arg, ns->name, cm == NULL);
        n++;
    }
    return n;
}

char *tg_k8s_publish_request(const char *ns, const char *pem, bool create, char *path, size_t cap)
{
    json_t *j;
    char *body;

    if (create) {
        snprintf(path, cap, "/api/v1/namespaces/%s/configmaps", ns);
        j = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}}, s:{s:s}}", "apiVersion", "v1", "kind",
                      "ConfigMap", "metadata", "name", TG_K8S_CA_CONFIGMAP, "namespace", ns,
                      "labels", "app.kubernetes.io/part-of", "tollgate",
                      "app.kubernetes.io/managed-by", "tollgate-cp", "data", TG_K8S_CA_KEY, pem);
    } else {
        snprintf(path, cap, "/api/v1/namespaces/%s/configmaps/%s", ns, TG_K8S_CA_CONFIGMAP);
        j = json_pack("{s:{s:s}}", "data", TG_K8S_CA_KEY, pem);
    }
    body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return body;
}

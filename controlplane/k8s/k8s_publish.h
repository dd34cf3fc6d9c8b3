/* The trust bundle published as a ConfigMap (TG_K8S_CA_CONFIGMAP, key TG_K8S_CA_KEY) in
 * every namespace labelled for injection (TG_K8S_INJECT_LABEL=enabled), for apps that verify
 * mesh certificates themselves (docs/kubernetes.md, "Trust-root ConfigMaps"). The control
 * plane watches only ConfigMaps of that name (a field selector, which RBAC's resourceNames
 * can then limit it to); each change to them, to the namespaces or to the bundle (a CA
 * rotation's roots: old and new while it lasts) brings the ones that differ up to date:
 * created when missing (deleted: created again), patched when they hold another bundle.
 * Pure apart from jansson: no I/O, no libuv. */
#ifndef TOLLGATE_K8S_PUBLISH_H
#define TOLLGATE_K8S_PUBLISH_H

#include <stdbool.h>

#include "k8s_derive.h"

/* Calls fn(arg, ns, create) for each namespace labelled for injection whose ConfigMap is
 * missing (create) or holds other than pem (lists: TG_K8S_NAMESPACE and TG_K8S_CONFIGMAP,
 * sorted by key as the cache holds them). Returns how many. */
size_t tg_k8s_publish_stale(const struct tg_k8s_list lists[TG_K8S_NKINDS], const char *pem,
                            void (*fn)(void *arg, const char *ns, bool create), void *arg);

/* The request that brings namespace ns's ConfigMap to pem: a POST of a new ConfigMap
 * (create), else a merge patch of its data; its path into path. A string to free (the body),
 * or NULL (out of memory). */
char *tg_k8s_publish_request(const char *ns, const char *pem, bool create, char *path, size_t cap);

#endif

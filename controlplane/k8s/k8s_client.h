/* A Kubernetes API client for tollgate-cp: lists and watches Namespaces, Pods, Services and
 * EndpointSlices with the API's own protocol ("Efficient detection of changes" in the API
 * concepts) and keeps a local cache of each, keyed by namespace/name, that the derivation
 * reads (k8s_derive.h); optionally the policy custom resources (k8s_policy.h) and the
 * trust-root ConfigMaps (k8s_publish.h) the same way. It also makes the few writes the
 * control plane needs (tg_k8s_client_request: a resource's status, a ConfigMap).
 *
 * Why on the control plane's loop and not in a thread: the cache is read by the derivation
 * and the pushes, which run on that loop; with libcurl's multi interface driven by the
 * loop (curl_multi_socket_action, one uv_poll per socket curl opens, one uv_timer for curl's
 * timeouts: libcurl's documented multi-uv pattern) there is no lock, no snapshot copy and
 * no second thread to stop. Nothing here blocks: curl does the TLS and the socket I/O in
 * non-blocking steps; the only blocking calls are reading the token file (small, local) and
 * parsing responses (capped).
 *
 * Per kind, one state machine:
 *   LIST   GET <path>?limit=500[&continue=C] page after page (the first page with no
 *          resourceVersion: a consistent read of the newest state); the pages gather into a
 *          new cache that replaces the old one only once the last page is in (a failed
 *          relist changes nothing). A 410 on a page (the continue token expired) starts
 *          the list again. Then WATCH from the list's metadata.resourceVersion.
 *   WATCH  GET <path>?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=T,
 *          a chunked stream of JSON lines {"type":..., "object":...}: ADDED and MODIFIED
 *          replace the object by key, DELETED removes it, BOOKMARK moves RV only, ERROR with
 *          a Status of code 410 (or an HTTP 410 answer) relists. Every event that carries one
 *          moves RV to its object's resourceVersion. A watch that ends (the server's timeout,
 *          a dropped connection) is started again from RV.
 * Errors (connection, TLS, status other than 200/401/410, a response that is not the shape
 * the API documents) are logged with what was wrong, change nothing, and retry after a
 * backoff: 250 ms doubling to 30 s, each wait drawn uniformly from [base/2, base] (jitter),
 * back to 250 ms after a success. An object that does not parse (k8s_objects.h) is logged
 * and skipped; the rest of its list or stream applies.
 *
 * Authentication: "Authorization: Bearer <token file>". The file is stat'ed before every
 * request and read again when its inode, size or mtime changed (the kubelet rotates projected
 * tokens by swapping a symbolic link); a 401 reads it again and retries once at once, then
 * backs off like any error. The API server is verified against the CA file (peer and host
 * name; https only).
 *
 * Caps: a list page at most 64 MiB, a watch event line at most 8 MiB, an error body 4 KiB.
 * Loop thread only. */
#ifndef TOLLGATE_K8S_CLIENT_H
#define TOLLGATE_K8S_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "k8s_derive.h"
#include "k8s_objects.h"

#define TG_K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define TG_K8S_POLICY_API "/apis/tollgate.dev/v1alpha1" /* deploy/k8s/base/crds.yaml */

struct tg_k8s_client_cfg {
    const char *api_server;   /* "https://host:port"; NULL: in-cluster from the environment */
    const char *ca_file;      /* NULL: TG_K8S_SA_DIR/ca.crt */
    const char *token_file;   /* NULL: TG_K8S_SA_DIR/token */
    unsigned watch_timeout_s; /* timeoutSeconds of a watch; 0: 300 */
    bool policy;              /* watch the policy custom resources too (k8s_policy.h) */
    bool configmaps;          /* and the trust-root ConfigMaps (k8s_publish.h) */
};

struct tg_k8s_client_stats {
    uint64_t lists; /* complete lists (all pages) */
    uint64_t list_pages;
    uint64_t watches; /* watch requests started */
    uint64_t events;  /* ADDED, MODIFIED, DELETED applied */
    uint64_t bookmarks;
    uint64_t gone;        /* 410s, either form: relists */
    uint64_t errors;      /* failed requests, bad responses */
    uint64_t bad_objects; /* objects skipped */
    uint64_t token_reads;
    uint64_t unauthorized; /* 401s */
};

struct tg_k8s_client;

/* Called on the loop after the cache of any kind changed (a list completed, an event
 * applied). Coalesce: several changes may come in one loop turn. */
typedef void (*tg_k8s_on_change)(void *arg);

/* Resolves the configuration (the environment for in-cluster), reads the token once and
 * starts the lists of the kinds cfg asks for. 0 with *out, or a negative code with err (nothing
 * left running). */
TG_MUST_USE int tg_k8s_client_new(uv_loop_t *loop, const struct tg_k8s_client_cfg *cfg,
                                  tg_k8s_on_change on_change, void *arg, struct tg_k8s_client **out,
                                  char *err);
/* Stops every request; on_closed(arg) runs once every handle is closed, then c is freed. */
void tg_k8s_client_close(struct tg_k8s_client *c, void (*on_closed)(void *arg), void *arg);

/* Every kind has been listed once: the cache describes the cluster. */
bool tg_k8s_client_synced(const struct tg_k8s_client *c);
/* The caches, sorted by key; borrowed until the loop runs again. */
void tg_k8s_client_lists(const struct tg_k8s_client *c, struct tg_k8s_list out[TG_K8S_NKINDS]);
const struct tg_k8s_client_stats *tg_k8s_client_stats(const struct tg_k8s_client *c);
/* The API server's URL as resolved. */
const char *tg_k8s_client_server(const struct tg_k8s_client *c);

/* A write (status of a policy resource, a ConfigMap): one request, its answer to on_reply.
 * Answered once, on the loop: status is the HTTP status (0: no answer; err then says why),
 * body the answer's first TG_K8S_REPLY_MAX bytes, NUL-terminated. Never answered after
 * tg_k8s_client_close (the request is dropped). Authenticated like the watches, 10 s
 * timeout, no retry (the caller decides). */
#define TG_K8S_REPLY_MAX 16384 /* a TokenReview echoes its token (up to 8 KiB) */
typedef void (*tg_k8s_on_reply)(void *arg, long status, const char *body, const char *err);
/* method "POST", "PUT", "PATCH"; path from "/api..." (the caller escapes it); body JSON, sent
 * with content_type. 0, or TG_ENOMEM (nothing sent, on_reply never runs). */
TG_MUST_USE int tg_k8s_client_request(struct tg_k8s_client *c, const char *method, const char *path,
                                      const char *body, const char *content_type,
                                      tg_k8s_on_reply on_reply, void *arg);

#endif

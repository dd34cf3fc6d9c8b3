/* tollgate-cp as a Kubernetes controller, part one: the mesh table derived from the cluster
 * (k8s/k8s_client.h watches, k8s/k8s_derive.h derives) and merged with the mesh files'
 * mesh_table (the overlay: it wins where it names the same address and port). A change in
 * the cluster is debounced (TG_CP_K8S_DEBOUNCE_MS from the first change, so a burst of
 * events makes one new version and a steady stream of them still one every 100 ms), then
 * the table is derived again and on_table runs, for the server to push what changed.
 * Until every watched kind has been listed once, there is no table (NULL): sidecars keep
 * what they hold rather than get a table that misses part of the cluster.
 * Loop thread only. */
#ifndef TOLLGATE_CP_K8S_H
#define TOLLGATE_CP_K8S_H

#include <uv.h>

#include "cp_config.h"
#include "k8s_client.h"
#include "tollgate/resource.h"

#define TG_CP_K8S_DEBOUNCE_MS 100
#define TG_CP_K8S_ADMIN_NS "tollgate-system" /* kubernetes.discovery.admin_namespace */

struct tg_cp_k8s;

/* Starts watching per cfg's kubernetes.discovery, with overlay (borrowed for this call: it
 * is copied) as the mesh files' table. 0 with *out, or a negative code with err. */
TG_MUST_USE int tg_cp_k8s_new(uv_loop_t *loop, const struct tg_cp_config *cfg,
                              const struct tg_resource *overlay, void (*on_table)(void *arg),
                              void *arg, struct tg_cp_k8s **out, char *err);
/* The mesh files were reloaded: merges again now (on_table runs when synced). */
void tg_cp_k8s_set_overlay(struct tg_cp_k8s *k, const struct tg_resource *overlay);
/* The state's resources (borrowed: copied), at start and after every reload. With
 * policy_resources, its policy (res[TG_RES_AUTHORIZATION], _RATE_LIMITS, _REVOCATIONS) is
 * merged with the custom resources' (k8s_policy.h) at each change; with trust_configmaps,
 * its trust bundle's roots are what the ConfigMaps publish (k8s_publish.h). */
void tg_cp_k8s_set_files(struct tg_cp_k8s *k, struct tg_resource *const res[TG_RES_N]);
/* What to push of policy type t: files (the state's) without policy_resources; with them,
 * files' and the custom resources' merged, NULL before the first sync (nothing pushed:
 * sidecars keep what they hold). Borrowed until the next on_table. */
const struct tg_resource *tg_cp_k8s_policy(const struct tg_cp_k8s *k, enum tg_res_type t,
                                           const struct tg_resource *files);
/* The merged mesh table (borrowed until the next on_table), NULL before the first sync. */
const struct tg_resource *tg_cp_k8s_table(const struct tg_cp_k8s *k);
const struct tg_k8s_client_stats *tg_cp_k8s_stats(const struct tg_cp_k8s *k);
/* The client (the webhook reads its Namespace cache and API server). */
const struct tg_k8s_client *tg_cp_k8s_client(const struct tg_cp_k8s *k);
/* One request to the API server through the client (tg_k8s_client_request). */
TG_MUST_USE int tg_cp_k8s_request(struct tg_cp_k8s *k, const char *method, const char *path,
                                  const char *body, const char *content_type,
                                  tg_k8s_on_reply on_reply, void *arg);
/* Stops; on_closed(arg) once every handle is closed, then k is freed. */
void tg_cp_k8s_close(struct tg_cp_k8s *k, void (*on_closed)(void *arg), void *arg);

#endif

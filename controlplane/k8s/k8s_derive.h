/* Secure naming derived from the cluster: from the Namespaces, Pods, Services and
 * EndpointSlices the control plane watches, the mesh table it pushes (resource.h,
 * TG_RES_MESH_TABLE). Pure: no I/O, no jansson, no libuv; the same input gives the same
 * bytes on every replica, so the push's content-hash version agrees everywhere.
 *
 * What is derived (docs/kubernetes.md, "Discovery"):
 * - A pod is meshed when it carries the sidecar (a container or init container named
 *   TG_K8S_SIDECAR_CONTAINER, or annotated TG_K8S_INJECTED_ANNOTATION "true"), or when its
 *   namespace is labelled TG_K8S_INJECT_LABEL=enabled and it does not opt out
 *   (TG_K8S_INJECT_ANNOTATION "false"). A finished pod (Succeeded, Failed) is not.
 * - Its identity: spiffe://<trust domain>/ns/<namespace>/sa/<serviceAccountName>.
 * - For every EndpointSlice of a Service (label kubernetes.io/service-name), every ready
 *   endpoint (conditions.ready true or absent) backed by a meshed pod gives, per TCP port of
 *   the slice, a destination <endpoint address>:<port> expecting the pod's identity; and
 *   for every TCP port of the Service, <each ClusterIP (IPv4 and IPv6)>:<port> expecting the
 *   identities of all the Service's meshed ready endpoints. Headless Services (no ClusterIP)
 *   give endpoint destinations only; ExternalName Services nothing.
 * - An endpoint whose pod is not meshed (or unknown: no Pod object, no targetRef) is
 *   "outside": it gets no destination, so the sidecar treats it per outside_mesh. A
 *   ClusterIP with no meshed endpoint is outside too; one with some meshed and some outside
 *   endpoints expects the meshed ones' identities (a connection that lands on an outside
 *   endpoint then fails its handshake: mixed Services are counted in stats.mixed).
 * - Protocol, per port: appProtocol when set, else the port name's prefix up to '-' (the
 *   Kubernetes/Istio convention "http-web"): "http" (also "kubernetes.io/http") is http;
 *   "http2", "grpc", "h2c", "kubernetes.io/h2c" and everything else are tcp, since the
 *   sidecar parses HTTP/1.1 only and must pipe HTTP/2 as bytes. One address:port claimed as
 *   both (two Services on one pod port) is tcp. UDP and SCTP ports are skipped.
 * - Tunnel mode: the Service's annotation TG_K8S_TUNNEL_ANNOTATION (off, auto, on; absent or
 *   any other value: unset, the sidecar listener's own) on each destination it gives. One
 *   address:port claimed by Services that disagree is unset; an http one is never on (HTTP
 *   ports are not carried over tunnels yet, and the sidecar refuses such a push): off.
 * - Output order: by address family, address bytes, then port; expected IDs sorted and
 *   without duplicates. outside_refuse is false (the overlay's setting applies on merge). */
#ifndef TOLLGATE_K8S_DERIVE_H
#define TOLLGATE_K8S_DERIVE_H

#include "k8s_objects.h"
#include "tollgate/resource.h"

/* The objects of one kind, sorted by key (strcmp), as the cache holds them. */
struct tg_k8s_list {
    struct tg_k8s_obj *const *v;
    size_t n;
};

struct tg_k8s_derive_stats {
    size_t destinations;
    size_t services_meshed;   /* with at least one meshed ready endpoint */
    size_t endpoints_outside; /* ready endpoints not backed by a meshed pod */
    size_t services_mixed;    /* meshed and outside ready endpoints together */
    size_t skipped;           /* names that make no SPIFFE ID, unparsable addresses */
};

/* Derives the mesh table from lists[TG_K8S_NAMESPACE .. TG_K8S_SLICE]. 0 with *out
 * (tg_resource_free) and *stats (may be NULL), or TG_ENOMEM. */
/* The object of key ("ns/name", or "name" for a Namespace) in l, sorted by key; NULL. */
const struct tg_k8s_obj *tg_k8s_list_find(const struct tg_k8s_list *l, const char *key);

TG_MUST_USE int tg_k8s_derive(const struct tg_k8s_list lists[TG_K8S_NKINDS],
                              const char *trust_domain, struct tg_resource **out,
                              struct tg_k8s_derive_stats *stats);

/* The table pushed: derived plus the hand-written overlay (the mesh files' mesh_table).
 * A destination the overlay names with the same address (or CIDR) and port as a derived one
 * replaces it: the overlay wins on overlap. Otherwise both are kept, and the sidecar's
 * longest-prefix match decides (a derived pod /32 beats an overlay's 10.0.0.0/8).
 * outside_refuse is the overlay's. Sorted as tg_k8s_derive's output. derived may be NULL.
 * 0 with *out, or TG_ENOMEM. */
TG_MUST_USE int tg_k8s_mesh_merge(const struct tg_resource *derived,
                                  const struct tg_resource *overlay, struct tg_resource **out);

#endif

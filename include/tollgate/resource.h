/* The resources the control plane pushes, as plain C: what cp_client.c makes of a Push on
 * the sidecar, and what the control plane reads from its mesh files before it encodes them
 * (the protobuf types stay inside cp_client.c and controlplane/stream.c). Structural only:
 * the consumers (generation building, policy, mesh table) check the values.
 *
 * Each resource owns all its memory in one arena; tg_resource_free() releases it at once.
 * Pure: no I/O, no libuv, no wolfSSL. */
#ifndef TOLLGATE_RESOURCE_H
#define TOLLGATE_RESOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/config.h"
#include "tollgate/err.h"

/* Numbered as tollgate.v1.ResourceType. */
enum tg_res_type {
    TG_RES_NONE = 0,
    TG_RES_IDENTITY = 1, /* only in ACK/NACK of a CSR answer; never a tg_resource */
    TG_RES_TRUST_BUNDLE = 2,
    TG_RES_AUTHORIZATION = 3,
    TG_RES_RATE_LIMITS = 4,
    TG_RES_REVOCATIONS = 5,
    TG_RES_MESH_TABLE = 6,
    TG_RES_PROXY_SETTINGS = 7,
    TG_RES_N
};

/* "identity", "trust_bundle", "authorization", "rate_limits", "revocations", "mesh_table",
 * "proxy_settings" (the keys of Hello.resource_versions); "none" otherwise. */
const char *tg_res_type_name(enum tg_res_type t);
/* The inverse; TG_RES_NONE for an unknown name. */
enum tg_res_type tg_res_type_from_name(const char *name);

struct tg_res_label {
    char *key;
    char *value;
};

/* Frees n labels kept outside a resource (each key and value malloc'd) and the array v. */
void tg_res_labels_free(struct tg_res_label *v, size_t n);

struct tg_res_domain_roots {
    char *trust_domain;
    struct tg_strlist roots_pem; /* one PEM certificate each */
};

struct tg_res_trust_bundle {
    struct tg_res_domain_roots *domains;
    size_t n_domains;
};

enum tg_res_action { TG_RES_ALLOW = 0, TG_RES_DENY = 1 };

struct tg_res_ports {
    uint32_t *v;
    size_t n;
};

struct tg_res_rule {
    char *name;
    enum tg_res_action action;
    char *scope_namespace; /* "" or NULL: any */
    struct tg_res_label *scope_labels;
    size_t n_scope_labels;
    struct tg_strlist principals, not_principals;
    struct tg_strlist namespaces, not_namespaces;
    struct tg_strlist trust_domains, not_trust_domains;
    struct tg_strlist fingerprints, not_fingerprints;
    struct tg_strlist serials, not_serials;
    struct tg_res_ports ports, not_ports;
    struct tg_strlist methods, paths, hosts; /* HTTP conditions, as tg_rule_cfg's */
    /* the control plane's own: it checked the scope (a policy resource's) and pushes the rule
     * without it, to the sidecars it concerns only (not pushed) */
    bool scope_resolved;
};

struct tg_res_authorization {
    struct tg_res_rule *rules;
    size_t n_rules;
    bool default_deny;
    bool close_denied_connections;
};

enum tg_res_limit_key { TG_RES_LIMIT_BY_ID = 0, TG_RES_LIMIT_BY_FINGERPRINT = 1 };

struct tg_res_limit {
    enum tg_res_limit_key key_by;
    char *match;                   /* principal pattern */
    double connections_per_second; /* 0: none */
    uint32_t burst;
    uint32_t max_concurrent;      /* 0: none */
    uint64_t bytes_per_second;    /* 0: none */
    uint32_t requests_per_second; /* protocol: http ports; 0: none */
    uint32_t requests_burst;      /* 0: one second's worth */
    /* the control plane's own: which sidecars get it (not pushed; scope as a rule's) */
    char *scope_namespace; /* "" or NULL: any */
    struct tg_res_label *scope_labels;
    size_t n_scope_labels;
};

struct tg_res_rate_limits {
    struct tg_res_limit *limits;
    size_t n_limits;
};

struct tg_res_blob {
    unsigned char *data;
    size_t len;
};

struct tg_res_revocations {
    struct tg_strlist serials;      /* lowercase hex */
    struct tg_strlist fingerprints; /* lowercase SHA-256 hex */
    struct tg_res_blob *crls;       /* DER */
    size_t n_crls;
};

enum tg_res_protocol { TG_RES_TCP = 0, TG_RES_HTTP = 1 };

struct tg_res_destination {
    char *address; /* "10.0.0.5", "10.0.0.0/24", "fd00::/64" */
    uint32_t port; /* 0: any */
    struct tg_strlist expected_ids;
    enum tg_res_protocol protocol;
    enum tg_tunnel_mode tunnel; /* numbered as tollgate.v1.TunnelMode; UNSET: the listener's */
};

struct tg_res_mesh_table {
    struct tg_res_destination *destinations;
    size_t n_destinations;
    bool outside_refuse; /* else passthrough */
};

enum tg_res_inbound_mode {
    TG_RES_INBOUND_UNSET = 0, /* keep the sidecar's own */
    TG_RES_INBOUND_STRICT = 1,
    TG_RES_INBOUND_PERMISSIVE = 2,
};

/* Zero/empty/NULL fields: keep the sidecar's own setting. */
struct tg_res_proxy_settings {
    char *min_tls_version; /* "1.2", "1.3" */
    struct tg_strlist cipher_suites;
    uint64_t handshake_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t connect_timeout_ms;
    enum tg_res_inbound_mode inbound_mode;
};

struct tg_arena_chunk;

struct tg_resource {
    enum tg_res_type type;
    union {
        struct tg_res_trust_bundle trust_bundle;
        struct tg_res_authorization authorization;
        struct tg_res_rate_limits rate_limits;
        struct tg_res_revocations revocations;
        struct tg_res_mesh_table mesh_table;
        struct tg_res_proxy_settings proxy_settings;
    } u;
    struct tg_arena_chunk *arena; /* every pointer above points in here */
};

/* A zeroed resource of type t, or NULL (out of memory). */
struct tg_resource *tg_resource_new(enum tg_res_type t);
void tg_resource_free(struct tg_resource *r);

/* Allocations that live as long as r: zeroed memory, copies of strings and bytes, and
 * zeroed arrays of n elements. NULL when out of memory (n == 0 gives a valid pointer). */
void *tg_resource_alloc(struct tg_resource *r, size_t size);
void *tg_resource_array(struct tg_resource *r, size_t n, size_t elem);
char *tg_resource_strdup(struct tg_resource *r, const char *s);
char *tg_resource_strndup(struct tg_resource *r, const char *s, size_t n);
void *tg_resource_memdup(struct tg_resource *r, const void *p, size_t n);
/* A list of n strings (copies); 0 or TG_ENOMEM. */
TG_MUST_USE int tg_resource_strlist(struct tg_resource *r, struct tg_strlist *dst,
                                    const char *const *src, size_t n);

#endif

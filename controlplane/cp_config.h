/* tollgate-cp's files, read by the one YAML layer (cfgload.h): its own configuration
 * (-c FILE) and the mesh files it names (authorization rules, rate limits, revocations, mesh
 * table, proxy settings), turned into struct tg_resource (resource.h). The mesh files'
 * authorization, rate_limits, revocations and mesh sections are the sidecar config's, read
 * with its tables (tg_config_section_fields). Every key and value is checked; the first
 * problem refuses the file with "FILE:LINE: KEY: what is wrong". Unknown keys, old
 * spellings, anchors and aliases are refused. Relative paths are resolved against the
 * directory of the file that names them. See README.md "Control plane" for the formats. */
#ifndef TOLLGATE_CP_CONFIG_H
#define TOLLGATE_CP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "tollgate/config.h"
#include "tollgate/resource.h"

#define TG_CP_DEFAULT_LISTEN "0.0.0.0:15010"
#define TG_CP_DEFAULT_TTL_MS (24ull * 3600 * 1000)

/* The front door (limits:, timeouts:): what a peer may hold before it has authenticated.
 * "Unauthenticated" is a stream whose Hello has not been accepted yet. */
struct tg_cp_limits {
    uint64_t max_connections;     /* streams open at once; default 10000 */
    uint64_t max_unauthenticated; /* of them, not yet past Hello; default 512 */
    uint64_t max_per_address;     /* of those, from one source address (IPv6: /64); default 16 */
    uint64_t handshake_ms;        /* TLS handshake, from accept; default 5 s */
    uint64_t hello_ms;            /* Hello, from the end of the handshake; default 5 s */
};

struct tg_cp_extra_roots {
    char *trust_domain;
    struct tg_strlist files;
};

struct tg_cp_config {
    char *path;
    struct tg_addr listen; /* default 0.0.0.0:15010 */
    char *trust_domain;
    char *server_cert; /* our own TLS identity: leaf (SPIFFE ID) + chain */
    char *server_key;
    char *ca_cert; /* signing CA, then its intermediates */
    char *ca_key;
    uint64_t cert_ttl_ms; /* default 24 h, at least 1 s */
    char *tokens;         /* bootstrap tokens file; NULL: none accepted */
    /* kubernetes: projected service-account tokens (cp_jwt.h); k8s_keys NULL: none */
    char *k8s_issuer;
    struct tg_strlist k8s_audiences; /* at least one */
    char *k8s_keys;                  /* PEM public keys or a JWK Set */
    bool k8s_token_review; /* token_review: true: the API server checks them (cp_review.h) */
    /* kubernetes.discovery (k8s_client.h): watch the API, derive the mesh table */
    bool k8s_discovery;
    bool k8s_in_cluster;       /* in_cluster: true */
    char *k8s_api_server;      /* NULL: in-cluster (KUBERNETES_SERVICE_HOST/PORT) */
    char *k8s_ca;              /* NULL: the mounted service account's ca.crt */
    char *k8s_token;           /* NULL: the mounted service account's token */
    bool k8s_policy;           /* policy_resources: true (k8s_policy.h) */
    bool k8s_trust_configmaps; /* trust_configmaps: true (k8s_publish.h) */
    char *k8s_admin_ns;        /* admin_namespace; NULL: TG_CP_K8S_ADMIN_NS */
    /* kubernetes.webhook (k8s/k8s_webhook.h): sidecar injection; wants discovery */
    struct tg_cp_webhook {
        bool on;
        struct tg_addr listen; /* default 0.0.0.0:15017 */
        char *service;         /* the webhook's Service; default tollgate-cp */
        char *ns;              /* its namespace; default tollgate-system */
        char *configuration;   /* MutatingWebhookConfiguration kept current; default
                                * tollgate-sidecar-injector */
        char *image;           /* the sidecar's image; default tollgate:0.1.0 */
    } webhook;
    struct tg_addr admin;    /* plain-HTTP /healthz and /stats; len 0: none */
    struct tg_strlist roots; /* our trust domain's roots; empty: ca.cert when self-signed */
    struct tg_cp_extra_roots *extra_roots;
    size_t n_extra_roots;
    struct tg_strlist mesh; /* mesh files */
    enum tg_log_level log_level;
    enum tg_log_format log_format; /* text (default) or json, as the sidecar's */
    struct tg_cp_limits limits;
};

/* Reads and checks path. 0 with *out (tg_cp_config_free), or TG_ECONFIG / TG_EIO / TG_ENOMEM
 * with err. */
TG_MUST_USE int tg_cp_config_load(const char *path, struct tg_cp_config **out, char *err);
/* The same from text; name stands for the file (paths resolve against its directory). */
TG_MUST_USE int tg_cp_config_parse(const char *text, size_t len, const char *name,
                                   struct tg_cp_config **out, char *err);
void tg_cp_config_free(struct tg_cp_config *c);

/* The mesh: one resource of each pushed type but the trust bundle (res[TG_RES_AUTHORIZATION]
 * .. res[TG_RES_PROXY_SETTINGS]); a type no file configures is an empty resource. Each
 * section (authorization, rate_limits, revocations, mesh_table, settings) may appear in one
 * file only. */
struct tg_cp_mesh {
    struct tg_resource *res[TG_RES_N];
    char *section_file[TG_RES_N]; /* which file set each section, for messages */
    struct tg_strlist crl_files;  /* read while parsing; watched with the rest */
};

/* Empty resources. 0 or TG_ENOMEM. */
TG_MUST_USE int tg_cp_mesh_init(struct tg_cp_mesh *m);
/* Adds the sections of one mesh file. */
TG_MUST_USE int tg_cp_mesh_load(struct tg_cp_mesh *m, const char *path, char *err);
TG_MUST_USE int tg_cp_mesh_parse(struct tg_cp_mesh *m, const char *text, size_t len,
                                 const char *name, char *err);
void tg_cp_mesh_cleanup(struct tg_cp_mesh *m);
/* One section's value v, written as in a mesh file (key: "authorization", "rate_limits",
 * "revocations", "mesh" or "settings"), into r, a new resource of that section's type;
 * path names v in messages ("" at the top). m NULL: not a mesh file (the policy resources,
 * k8s_policy.c), so CRL files are refused. 0, or TG_ECONFIG / TG_ENOMEM with cfg->err. */
struct tg_cfg;
struct tg_cfg_node;
TG_MUST_USE int tg_cp_section_read(struct tg_cfg *cfg, struct tg_cp_mesh *m, struct tg_resource *r,
                                   const char *key, const char *path, const struct tg_cfg_node *v);
/* Checks rules (and revocations, rv NULL: none) the way every sidecar will, with
 * tg_policy_compile: rules of every scope are checked, so the answer is the same for all.
 * The mesh files' authorization and the policy resources (k8s_policy.c) both use it. */
TG_MUST_USE int tg_cp_rules_check(const struct tg_res_authorization *a,
                                  const struct tg_res_revocations *rv, char *why);

#endif

/* The sidecar's configuration file (YAML, read by the one YAML layer, cfgload.h) turned into
 * a plain struct.
 * Pure: no libuv, no wolfSSL. tg_config_load() checks every key and value and refuses the
 * whole file on the first problem, naming file, line and key in err. Unknown keys are
 * errors. The struct is immutable once loaded and shared by reference (tg_config_unref). */
#ifndef TOLLGATE_CONFIG_H
#define TOLLGATE_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tollgate/err.h"

/* A resolved numeric socket address ("127.0.0.1:8443", "[::1]:8443"). text is as written. */
struct tg_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64];
};

struct tg_strlist {
    char **v;
    size_t n;
};

/* The same strings in the same order. */
bool tg_strlist_equal(const struct tg_strlist *a, const struct tg_strlist *b);

enum tg_inbound_mode {
    TG_MODE_STRICT,     /* only mTLS */
    TG_MODE_PERMISSIVE, /* mTLS when a ClientHello offers our ALPN; anything else plain */
};

/* tunnel: on an outbound listener or a mesh destination: whether app connections ride as
 * HTTP/2 CONNECT streams of a pooled mTLS connection to the destination's sidecar. */
enum tg_tunnel_mode {
    TG_TUNNEL_UNSET, /* a mesh destination without the key: its listener's mode */
    TG_TUNNEL_OFF,   /* one mTLS connection per app connection */
    TG_TUNNEL_AUTO,  /* a tunnel when the sidecar offers one (ALPN h2), else direct */
    TG_TUNNEL_ON,    /* a tunnel or nothing: refused when the sidecar offers none */
};

/* tunnel_pool: the outbound tunnels each worker keeps. */
struct tg_tunnel_pool_cfg {
    unsigned streams_per_connection;      /* default 100 (and the server's own cap) */
    unsigned connections_per_destination; /* per worker; default 2 */
    uint64_t idle_timeout_ms;             /* a tunnel without streams closes; default 60 s */
};

/* A listener's own limits, over all its callers (0: none). */
struct tg_listener_limit_cfg {
    unsigned conns_per_second; /* new connections accepted per second */
    unsigned burst;            /* 0: one second's worth */
    unsigned max_connections;  /* open at once; the excess is closed at accept */
    size_t bytes_per_second;   /* from all its clients together, paced by pausing reads */
};

/* protocol: http on an inbound listener: the http: settings. */
struct tg_http_cfg {
    bool xfcc;           /* add x-forwarded-client-cert (Envoy format); default true */
    bool client_cert;    /* add Client-Cert (RFC 9440, the DER in base64); default false */
    size_t max_head;     /* request head limit, bytes; default 64 KiB (at most buffer_size) */
    size_t max_line;     /* one line of a head, chunk size or trailer; default 16 KiB */
    unsigned max_fields; /* header fields per request; default 100 */
};

struct tg_inbound_cfg {
    char *name;                /* "name:" or "in-<listen>" */
    struct tg_addr listen;     /* mTLS in */
    struct tg_addr upstream;   /* plain text to the app; len 0 when transparent */
    bool transparent;          /* captured: the app is at the original destination */
    bool upstream_loopback;    /* transparent, upstream: loopback: at 127.0.0.1 / ::1 instead */
    enum tg_inbound_mode mode; /* default strict */
    bool proxy_protocol;       /* send a PROXY v2 header (address, SPIFFE ID, SHA-256) to the app */
    struct tg_strlist allow;   /* SPIFFE IDs allowed; empty: any ID of an accepted domain */
    bool allow_unauth;         /* allow_unauthenticated: plain text passes a non-empty allow */
    bool tunnels;              /* accept HTTP/2 CONNECT tunnels (ALPN h2) too; default false */
    bool http;                 /* protocol: http (default tcp): requests parsed, see http.h */
    bool http_given;           /* an http: mapping was written */
    struct tg_http_cfg http_cfg;
    struct tg_listener_limit_cfg limits;
};

struct tg_outbound_cfg {
    char *name;                 /* "name:" or "out-<listen>" */
    struct tg_addr listen;      /* plain text in from the app */
    struct tg_addr upstream;    /* mTLS out; len 0 when transparent */
    bool transparent;           /* captured: the original destination, looked up in mesh */
    struct tg_strlist expect;   /* server SPIFFE IDs accepted; at least one unless transparent */
    char *sni;                  /* optional SNI to send */
    bool http;                  /* protocol: http: a refusal is answered to the app with a 503 */
    enum tg_tunnel_mode tunnel; /* default off; a mesh destination's own mode wins */
    struct tg_listener_limit_cfg limits;
};

/* A mesh destination: where a transparent outbound connection goes decides which server
 * identities are expected (secure naming). */
struct tg_mesh_dest {
    struct sockaddr_storage net; /* family and network address (host bits zero) */
    unsigned prefix;             /* CIDR prefix length */
    uint16_t port;               /* 0: any port */
    struct tg_strlist expect;    /* at least one */
    char text[64];               /* the address as written */
    bool http;                   /* protocol: http: a transparent inbound listener's port */
    enum tg_tunnel_mode tunnel;  /* unset: the outbound listener's */
};

struct tg_intlist {
    int *v;
    size_t n;
};

struct tg_labels {
    char **keys;
    char **values;
    size_t n;
};

/* An authorization rule as written (checked by tg_policy_compile when a generation is
 * built; see policy.h for the semantics). */
struct tg_rule_cfg {
    char *name;
    bool deny;                     /* action: deny; else allow */
    char *scope_ns;                /* scope.namespace: for workloads of this namespace */
    struct tg_labels scope_labels; /* scope.labels: ... and carrying these labels */
    struct tg_strlist principals, not_principals;
    struct tg_strlist namespaces, not_namespaces;
    struct tg_strlist trust_domains, not_trust_domains;
    struct tg_strlist fingerprints, not_fingerprints;
    struct tg_strlist serials, not_serials;
    struct tg_intlist ports, not_ports;
    struct tg_strlist methods, paths, hosts; /* HTTP conditions: protocol: http ports only */
};

/* Per-identity limits (0: none). */
struct tg_limit_cfg {
    char *principal; /* overrides: exact SPIFFE ID or "prefix*"; NULL for the default */
    unsigned conns_per_second;
    unsigned burst; /* 0: one second's worth */
    unsigned max_concurrent;
    size_t bytes_per_second;      /* from the caller, paced by pausing reads */
    unsigned requests_per_second; /* protocol: http ports: requests, over it 429 */
    unsigned requests_burst;      /* 0: one second's worth */
};

/* control_plane: the identity and the mesh configuration come from tollgate-cp. */
#define TG_CP_ADDRESSES_MAX 16
struct tg_cp_cfg {
    bool enabled;                 /* the control_plane key is present */
    struct tg_addr address;       /* IP:PORT, [IPv6]:PORT, or HOST:PORT (len 0: resolved later);
                                   * the first of addresses */
    struct tg_strlist addresses;  /* control_plane.address, one or a list of replicas, as
                                   * checked (1 to TG_CP_ADDRESSES_MAX, no duplicates) */
    char *ca_path;                /* bootstrap root(s) the control plane is verified with */
    char *token_path;             /* bootstrap token file */
    struct tg_strlist server_ids; /* the control plane's accepted SPIFFE IDs (>= 1) */
    char *node_id;                /* Hello claims; NULL: none */
    char *namespace_;
    char *service_account;
    struct tg_labels labels; /* sent in Hello: picks the rules scoped by labels */
    char *pod_info;          /* downward API directory (podinfo.h): the pod's name, namespace
                              * and labels, read at each attempt; NULL: none */
    double renew_fraction;   /* renew at this fraction of the lifetime; default 0.5 */
};

/* identity.workload_api: the identity comes from the SPIFFE Workload API (a SPIRE agent). */
struct tg_wl_cfg_file {
    bool enabled;    /* identity.workload_api is set */
    char *endpoint;  /* as written: unix:///PATH, unix:/PATH, /PATH, or "default" */
    char *socket;    /* the Unix socket's path it resolved to ("default":
                      * $SPIFFE_ENDPOINT_SOCKET, read when the file is loaded) */
    char *spiffe_id; /* identity.spiffe_id: the SVID to take; NULL: the first */
};

enum tg_log_level { TG_LOG_DEBUG, TG_LOG_INFO, TG_LOG_WARN, TG_LOG_ERROR };
enum tg_log_format { TG_LOG_TEXT, TG_LOG_JSON };

struct tg_config {
    atomic_uint refs;   /* the control thread and each generation built from it */
    char *path;         /* the file it came from */
    struct tg_file_id { /* ... as it was when read (stat before the read): a change
                         * made before the watch began is found by comparing */
        uint64_t ino, size;
        int64_t mtime_ns;
    } file_id;
    struct tg_addr admin;   /* "admin:"; admin.len == 0 when absent (no admin endpoint) */
    struct tg_addr health;  /* "health:" (admin.h TG_ADMIN_HEALTH); len 0: none */
    struct tg_addr metrics; /* "metrics:" (admin.h TG_ADMIN_METRICS); len 0: none */
    unsigned workers;       /* 0 = one per CPU */

    struct tg_cp_cfg cp;      /* control_plane; cp.enabled false: static identity files */
    struct tg_wl_cfg_file wl; /* identity.workload_api (never with control_plane) */

    /* identity: static mode (required without control_plane, refused with it); the files
     * are reloaded when they change */
    char *cert_path;             /* leaf first, then intermediates (PEM) */
    char *key_path;              /* PEM private key */
    char *bundle_path;           /* trust bundle: our trust domain's CA roots (PEM) */
    char *intermediates_path;    /* identity.intermediates: CA certificates (PEM) besides our
                                  * chain's whose CRLs may be loaded; NULL: none */
    struct tg_strlist crl_paths; /* identity.crl: CRL files (PEM or DER), each of a CA of the
                                  * chain (revocation.h) */
    /* identity.trust_domains, a mapping: the federated trust domains accepted besides our
     * own, and each one's bundle file (trust_domain_bundles.v[i] holds the roots of
     * trust_domains.v[i]; only they may vouch for an ID of it). Static mode only. */
    struct tg_strlist trust_domains;
    struct tg_strlist trust_domain_bundles;
    unsigned max_chain_depth; /* default 4: certificates below the root, leaf included */

    /* tls */
    bool allow_tls12;    /* tls.min_version: "1.2"; default "1.3" only */
    bool tls_resumption; /* tls.resumption: session tickets between sidecars; default on */
    struct tg_strlist cipher_suites; /* tls.cipher_suites: a subset, in order; empty: all */

    /* timeouts, milliseconds */
    uint64_t handshake_timeout_ms; /* default 10 s */
    uint64_t idle_timeout_ms;      /* default 1 h */
    uint64_t connect_timeout_ms;   /* default 5 s */
    uint64_t drain_timeout_ms;     /* timeouts.drain: default 20 s; SIGTERM waits this long */

    size_t buffer_size; /* per direction, bytes; default 64 KiB (4 KiB .. 16 MiB) */
    struct tg_tunnel_pool_cfg tunnel_pool; /* outbound tunnels (tunnel: auto or on) */
    bool access_log;               /* default true: one JSON line per connection on stdout */
    enum tg_log_level log_level;   /* default info */
    enum tg_log_format log_format; /* default text (log.h) */
    bool access_log_text;          /* access_log_format: text (key=value); default json */

    /* workload: who we are, for rule scoping */
    char *workload_ns;
    struct tg_labels workload_labels;

    /* authorization (inbound) and revocation */
    bool authz_default_deny; /* authorization.default: deny */
    bool close_denied;       /* authorization.close_denied: a new generation closes the live
                              * connections of peers it now refuses */
    struct tg_rule_cfg *rules;
    size_t n_rules;
    struct tg_strlist revoked_serials;      /* revocations.serials */
    struct tg_strlist revoked_fingerprints; /* revocations.fingerprints */
    struct tg_strlist revocation_crls;      /* revocations.crls: tollgate-cp's files only */

    /* rate_limits (inbound, per caller) */
    bool limit_by_fingerprint;         /* rate_limits.key: fingerprint; default id */
    struct tg_limit_cfg limit_default; /* rate_limits.default */
    struct tg_limit_cfg *limits;       /* rate_limits.overrides, first match wins */
    size_t n_limits;

    /* mesh: for transparent outbound listeners */
    bool mesh_refuse_outside; /* mesh.outside: "refuse"; default "passthrough" (plain) */
    struct tg_mesh_dest *dests;
    size_t n_dests;

    /* settings.inbound.mode: tollgate-cp's mesh files only (pushed to every inbound listener) */
    enum tg_inbound_mode settings_mode;

    struct tg_inbound_cfg *inbound;
    size_t n_inbound;
    struct tg_outbound_cfg *outbound;
    size_t n_outbound;
};

/* Reads and checks path. On success *out owns a new config (one reference). On failure
 * returns TG_ECONFIG (or TG_EIO, TG_ENOMEM) and err holds "FILE:LINE: KEY: what is wrong".
 * Relative file paths in it are resolved against path's directory, made absolute with the
 * working directory (symbolic links are kept). Files over 1 MiB are refused. */
TG_MUST_USE int tg_config_load(const char *path, struct tg_config **out, char *err);

/* The identity of the file at path now (inode, size, modification time); false when it
 * cannot be read. */
bool tg_config_file_id(const char *path, struct tg_file_id *id);

/* Same, from a string (len bytes, no NUL needed); name stands for the file in messages, and
 * relative paths are resolved against its directory as written ("t.yaml": left as they are). */
TG_MUST_USE int tg_config_parse(const char *text, size_t len, const char *name,
                                struct tg_config **out, char *err);

/* Shared ownership: the control thread holds the current config, and each generation built
 * from it holds it too (its mesh table, trust domains and rules point into it). Any thread.
 * tg_config_unref frees with the last reference; NULL is fine. */
struct tg_config *tg_config_ref(struct tg_config *c);
void tg_config_unref(struct tg_config *c);

/* Parses "127.0.0.1:80" or "[::1]:80" (numeric host, port 1..65535; port 0 only when
 * allow_port0). Returns 0 or TG_EINVAL with err. */
TG_MUST_USE int tg_addr_parse(const char *s, bool allow_port0, struct tg_addr *out, char *err);

/* Parses "10.0.0.0/24", "fd00::/64" or a plain address into d's net, prefix and text (as
 * mesh.destinations[].address). 0 or TG_EINVAL with err. */
TG_MUST_USE int tg_cidr_parse(const char *v, struct tg_mesh_dest *d, char *err);

/* For a rule with HTTP conditions (methods, paths, hosts), named rule, with these ports and
 * not_ports: 0 when every connection it could apply to is HTTP, else TG_EINVAL with why
 * naming the listener (and port). A listener with protocol: http passes; another one with
 * a port (not transparent) fails when the rule could apply to its port; a transparent
 * inbound listener that is not protocol: http (it receives any port, and the mesh table
 * decides each port's protocol, dests[0..n_dests)) passes only when the rule lists ports:
 * and for each of them (not in not_ports), every address of the listener's families (IPv4;
 * and IPv6 for an IPv6 listener) finds an http mesh destination: a /0 destination for the
 * port (or, without one, for any port) exists, and every destination of that family for the
 * port or any port says http (a /0 one for any port that a /0 one for the port shadows
 * excepted). */
TG_MUST_USE int tg_config_http_rule_check(const struct tg_config *c,
                                          const struct tg_mesh_dest *dests, size_t n_dests,
                                          const char *rule, const int *ports, size_t n_ports,
                                          const int *not_ports, size_t n_not_ports, char *why);

/* The one spelling of a tunnel mode, as the tunnel: key has it: "off", "auto", "on" (exact
 * case). tg_config_tunnel_parse: 0, or TG_EINVAL for anything else (*out untouched);
 * tg_config_tunnel_name: the word, "unset" for TG_TUNNEL_UNSET or any other value. */
TG_MUST_USE int tg_config_tunnel_parse(const char *s, enum tg_tunnel_mode *out);
const char *tg_config_tunnel_name(enum tg_tunnel_mode m);

/* Parses "250ms", "10s", "5m", "1h", or a bare number of seconds. */
TG_MUST_USE int tg_duration_parse(const char *s, uint64_t *ms, char *err);

#endif

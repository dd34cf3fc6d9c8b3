/* Counters and histograms for /stats. Each worker owns one slot per listener and is its only
 * writer, so a counter update is a relaxed load and store (a plain mov on x86): no lock and no
 * locked instruction on the data path. The admin thread sums the slots when it renders.
 *
 * Histograms have fixed buckets (below), kept per slot as plain counters, one per bucket, and
 * made cumulative when rendered. Identity labels are bounded: the first TG_METRICS_IDS
 * identities seen get a label value each (a process-wide table, append-only, read without a
 * lock), every later one counts as "other". */
#ifndef TOLLGATE_METRICS_H
#define TOLLGATE_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/config.h"
#include "tollgate/err.h"
#include "tollgate/peers.h"

/* Why a handshake failed; each is a label value of tollgate_handshakes_failed_total. */
enum tg_hs_fail {
    TG_HSF_NO_CERT,       /* "no_peer_cert": client sent no certificate */
    TG_HSF_UNTRUSTED,     /* "untrusted": chain does not lead to the trust bundle */
    TG_HSF_EXPIRED,       /* "expired" */
    TG_HSF_NOT_YET_VALID, /* "not_yet_valid" */
    TG_HSF_BAD_CERT,      /* "bad_cert": CA leaf, wrong EKU, chain too deep, ... */
    TG_HSF_REVOKED,       /* "revoked": listed in a CRL */
    TG_HSF_BAD_SPIFFE,    /* "bad_spiffe_id": none, several, or malformed URI SAN */
    TG_HSF_TRUST_DOMAIN,  /* "trust_domain": ID in a domain we do not accept */
    TG_HSF_NOT_ALLOWED,   /* "not_allowed": inbound: ID not in the allow list */
    TG_HSF_UNEXPECTED,    /* "unexpected_server": outbound: server ID not expected */
    TG_HSF_PROTOCOL,      /* "protocol": version, cipher, malformed TLS */
    TG_HSF_TIMEOUT,       /* "timeout": handshake did not finish in time */
    TG_HSF_CLOSED,        /* "peer_closed": peer went away during the handshake */
    TG_HSF_PEER_REFUSED,  /* "peer_refused": the peer refused us (sent a fatal alert) */
    TG_HSF_OTHER,         /* "other" */
    TG_HSF_N
};

const char *tg_hs_fail_name(enum tg_hs_fail r);

/* Why a plain-text caller of a permissive inbound port was refused; each is a label value of
 * tollgate_plaintext_refused_total. */
enum tg_plain_refusal {
    TG_PLAIN_NOT_ALLOWED, /* "not_allowed": the listener's allow list names identities */
    TG_PLAIN_DENIED,      /* "denied": the authorization rules (a DENY, no ALLOW, default) */
    TG_PLAIN_N
};

struct tg_counter {
    _Atomic uint64_t v;
};

static inline void tg_counter_add(struct tg_counter *c, uint64_t n)
{
    atomic_store_explicit(&c->v, atomic_load_explicit(&c->v, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t tg_counter_get(const struct tg_counter *c)
{
    return atomic_load_explicit(&c->v, memory_order_relaxed);
}

/* The histograms, each with its fixed bucket bounds (metrics.c, docs/operations.md). */
enum tg_hist {
    TG_HIST_CONN,      /* tollgate_connection_duration_seconds: accept to close */
    TG_HIST_HANDSHAKE, /* tollgate_handshake_duration_seconds: first handshake byte to done */
    TG_HIST_REQUEST,   /* tollgate_http_request_duration_seconds: head read to response end */
    TG_HIST_N
};

#define TG_HIST_BUCKETS 16 /* the most bounds a histogram has; its +Inf bucket comes after */

struct tg_histogram {
    struct tg_counter bucket[TG_HIST_BUCKETS + 1]; /* not cumulative; [n_bounds] is +Inf */
    struct tg_counter sum_us;                      /* microseconds */
};

/* One observation of us microseconds in h, a histogram of kind k. The slot's worker only. */
void tg_histogram_observe(struct tg_histogram *h, enum tg_hist k, uint64_t us);

/* HTTP status classes, label code_class of tollgate_http_responses_total. */
enum { TG_HTTP_CLASSES = 5 }; /* 1xx .. 5xx */

/* Requests refused with 429, and connections and requests by identity: the first
 * TG_METRICS_IDS identities get a series each, every later one counts in "other", and a
 * caller without one (plain text) in "unknown", so the label set stays bounded. */
#define TG_METRICS_IDS 20
#define TG_METRICS_ID_OTHER TG_METRICS_IDS
#define TG_METRICS_ID_UNKNOWN (TG_METRICS_IDS + 1)
#define TG_METRICS_ID_SLOTS (TG_METRICS_IDS + 2)

struct tg_listener_stats {
    struct tg_counter opened;         /* connections accepted */
    struct tg_counter closed;         /* connections ended (active = opened - closed) */
    struct tg_counter bytes_received; /* payload bytes from the downstream */
    struct tg_counter bytes_sent;     /* payload bytes to the downstream */
    struct tg_counter hs_ok;
    struct tg_counter hs_failed[TG_HSF_N];
    struct tg_counter plain_refused[TG_PLAIN_N]; /* inbound: plain-text callers refused */
    struct tg_counter upstream_connect_failed;
    struct tg_counter plaintext;         /* passed through without mTLS (permissive, outside) */
    struct tg_counter policy_revoked;    /* inbound: refused, certificate revoked */
    struct tg_counter policy_denied;     /* inbound: refused by the authorization rules */
    struct tg_counter rate_limited;      /* inbound: refused, over a connection limit */
    struct tg_counter listener_limited;  /* refused at accept, over the listener's limits */
    struct tg_counter throttled;         /* inbound: reads paused for bytes_per_second */
    struct tg_counter refused_capture;   /* captured connections refused: outside the mesh,
                                          * a loop, or no original destination */
    struct tg_counter http_requests;     /* protocol: http: request heads parsed */
    struct tg_counter http_bad_requests; /* refused as malformed (400, 414, 431, 505) */
    struct tg_counter http_denied;       /* refused by an authorization rule (403) */
    struct tg_counter http_rate_limited; /* refused over requests_per_second (429) */
    struct tg_counter http_responses[TG_HTTP_CLASSES]; /* final status, by class */
    /* outbound tunnels (tunnel: auto | on) */
    struct tg_counter tunnels_opened;         /* pooled tunnels dialled */
    struct tg_counter tunnels_closed;         /* ... ended (open = opened - closed) */
    struct tg_counter tunnel_streams;         /* app connections opened as a stream */
    struct tg_counter tunnel_streams_refused; /* ... refused by the server's sidecar */
    struct tg_counter tunnel_retries;         /* ... tried again on another tunnel */
    struct tg_counter tunnel_fallbacks;       /* app connections sent direct (no h2, pool full) */
    struct tg_counter tunnel_bytes_sent;      /* bytes of frames into pooled tunnels */
    struct tg_counter tunnel_bytes_received;  /* ... and out of them */
    struct tg_histogram hist[TG_HIST_N];
    /* by the peer's identity index (tg_metrics_id_index): mTLS connections established,
     * requests answered, requests refused with 429 */
    struct tg_counter conns_by_id[TG_METRICS_ID_SLOTS];
    struct tg_counter requests_by_id[TG_METRICS_ID_SLOTS];
    struct tg_counter limited_by_id[TG_METRICS_ID_SLOTS];
};

/* The identities that have a label value of their own, in the order first seen. Append-only:
 * an entry is written before n is released, so a reader that acquires n reads whole
 * entries without the lock; the lock orders writers only, and is taken only while the table
 * is not full and an identity is new. */
struct tg_id_table {
    pthread_mutex_t lock;
    _Atomic size_t n;
    char *id[TG_METRICS_IDS]; /* malloc'd */
};

/* What the build info series says (tollgate_build_info). */
struct tg_build_info {
    const char *version; /* ours */
    const char *wolfssl; /* the wolfSSL version linked */
    bool aesni;          /* wolfSSL built with AES-NI */
};

/* Process-wide values written by the control thread. */
struct tg_process_stats {
    struct tg_counter identity_reloads;         /* new identity or bundle published */
    struct tg_counter identity_reload_failures; /* files changed but refused */
    _Atomic int64_t identity_expiry_unix;       /* not_after of our certificate, 0 = none */
    _Atomic uint64_t generation;                /* id of the newest generation */
};

struct tg_metrics {
    size_t n_workers;
    size_t n_listeners;
    const char **listener_names;      /* [n_listeners], borrowed */
    const char **listener_directions; /* [n_listeners]: "inbound" / "outbound", borrowed */
    struct tg_listener_stats *slots;  /* [n_workers * n_listeners] */
    struct tg_process_stats process;
    struct tg_id_table ids;
    struct tg_build_info build;            /* set by the caller after init; strings borrowed */
    struct tg_tunnel_pool_cfg tunnel_pool; /* set by the caller after init: shown as gauges */
    struct tg_peers peers;                 /* verified peers, for /config_dump (peers.h) */
};

/* Any thread: the label index of identity id: 0 .. TG_METRICS_IDS - 1, TG_METRICS_ID_OTHER
 * once the table is full (or out of memory), TG_METRICS_ID_UNKNOWN for NULL. Takes the
 * table's lock only to add a new identity, at most TG_METRICS_IDS times in the process. */
unsigned tg_metrics_id_index(struct tg_metrics *m, const char *id);

/* Allocates the slots. names/directions are borrowed and must outlive m. */
TG_MUST_USE int tg_metrics_init(struct tg_metrics *m, size_t n_workers, size_t n_listeners,
                                const char **names, const char **directions);
void tg_metrics_cleanup(struct tg_metrics *m);

static inline struct tg_listener_stats *tg_metrics_slot(struct tg_metrics *m, size_t worker,
                                                        size_t listener)
{
    return &m->slots[worker * m->n_listeners + listener];
}

/* Renders Prometheus text exposition (version 0.0.4) into a malloc'd NUL-terminated
 * string; *len gets its length. Returns NULL when out of memory. Any thread. own_id is this
 * sidecar's SPIFFE ID (the other end of every peer in the by-identity series), NULL when it
 * has none yet. Ends with the process series (tg_metrics_render_process). */
char *tg_metrics_render(const struct tg_metrics *m, const char *own_id, size_t *len);

/* One certificate of tollgate_certificate_expiry_timestamp_seconds. Strings borrowed. */
struct tg_cert_expiry {
    const char *kind;         /* "identity", "root", "ca" */
    const char *trust_domain; /* "" when unknown */
    const char *serial;       /* hex */
    int64_t not_after;        /* unix seconds */
};

/* The tollgate_certificate_expiry_timestamp_seconds family of the n certificates (its HELP
 * and TYPE even when n is 0). A malloc'd text as below, or NULL when out of memory. */
char *tg_metrics_render_certs(const struct tg_cert_expiry *c, size_t n, size_t *len);

/* tollgate_build_info and the standard process_* series (CPU seconds, resident and virtual
 * memory, open and max fds, start time) of the calling process, read from /proc; a value that
 * cannot be read is left out. A malloc'd text as above, or NULL when out of memory. */
char *tg_metrics_render_process(const struct tg_build_info *b, size_t *len);

#endif

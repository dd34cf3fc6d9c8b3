/* tollgate-cp's server: one libuv loop that accepts sidecars' streams (msgstream.h: TLS,
 * client certificate optional), watches every file the state was built from and rebuilds
 * the state when one changes (a state that does not load is refused with its reason and the
 * last good one keeps being served), and has cp_stream.c push what changed to every stream.
 * Streams survive reloads: each keeps the state of its handshake until it ends.
 *
 * The front door (cp.yaml limits: and timeouts:). A stream is unauthenticated from accept
 * until its Hello is accepted; while it is, it may send frames of TG_CP_HELLO_MAX bytes at
 * most, its Hello is decoded within a fixed allocation budget, and it must finish its TLS
 * handshake within timeouts.handshake and send its Hello within timeouts.hello after that.
 * At accept: a source address (IPv6: its /64) with max_unauthenticated_per_address
 * unauthenticated streams already gets refused; when max_unauthenticated are unauthenticated,
 * or max_connections are open, an unauthenticated stream is closed to make room: the oldest
 * of the source address that has the most (a flood comes from few addresses, many streams
 * each; a sidecar bootstraps with one stream, through within a round trip), and when none is
 * unauthenticated the new one is refused. Each is counted (tg_cp_server_stats). A stream
 * turned away gives its TLS session back at once (msgstream.h). So what peers can make us
 * hold before they authenticate is bounded by max_unauthenticated times one TLS handshake's
 * state and TG_CP_HELLO_MAX. */
#ifndef TOLLGATE_CP_SERVER_H
#define TOLLGATE_CP_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cp_authn.h"
#include "cp_state.h"
#include "k8s_webhook.h"
#include "tollgate/msgstream.h"

#define TG_CP_VERSION_MAX 64
#define TG_CP_IDLE_MS 60000 /* a sidecar pings every 10 s: a minute of silence ends it */
/* The largest frame before Hello is accepted. A real Hello, measured (three labels, six
 * resource versions): 367 bytes with a bootstrap token of 24 characters, 1.4 KiB with a
 * Kubernetes service-account token of 1.1 KiB, 8.5 KiB with the largest token a sidecar
 * sends (8 KiB); that leaves room for many labels. The CSR comes in a frame of its own,
 * after Hello. */
#define TG_CP_HELLO_MAX (16 * 1024)
/* What decoding a message before Hello may allocate (protobuf-c makes a struct per map
 * entry: a frame of empty entries costs some 30 times its size). */
#define TG_CP_HELLO_DECODE_BUDGET (64 * 1024)

struct tg_cp_server;
struct tg_cp_source;

/* One sidecar's stream. Owned by the server's list; freed when its msgstream closes. */
struct tg_cp_conn {
    struct tg_cp_server *srv;
    struct tg_msgstream *ms;
    struct tg_cp_state *state; /* reference: the TLS context of the handshake */
    struct tg_cp_conn *prev, *next;
    uint64_t id;
    uint64_t last_rx; /* uv_now of the last message */
    bool hello_seen;
    struct tg_cp_who who; /* who authenticated, after Hello */
    char *token;          /* Hello's bootstrap token (wiped), re-checked at each CSR */
    char *claim_ns, *claim_sa;
    char *claim_pod; /* Hello's pod_name */
    char node_id[128];
    struct tg_res_label *claims; /* Hello's labels */
    size_t n_claims;
    struct tg_res_label *labels; /* for rule scopes: the Pod's, or the claims (cp_pod.h) */
    size_t n_labels;
    int pod_verdict; /* enum tg_cp_pod_verdict of the last check */
    bool reviewing;  /* Hello waits for the API server's TokenReview answer */
    uint64_t csr_id; /* a CSR that came meanwhile (csr_der non-NULL), handled after Hello */
    unsigned char *csr_der;
    size_t csr_len;
    char sent[TG_RES_N][TG_CP_VERSION_MAX + 1]; /* last pushed, or held per Hello */
    char acked[TG_RES_N][TG_CP_VERSION_MAX + 1];
    char nonce[TG_RES_N][32]; /* of the last push of each type */
    uint64_t pushes;
    /* the front door */
    uint64_t accepted_at;             /* uv_now */
    uint64_t connected_at;            /* uv_now at the end of the handshake; 0 before */
    bool unauth;                      /* on the server's unauthenticated list */
    bool quiet;                       /* ended by the front door: logged at debug only */
    struct tg_cp_conn *uprev, *unext; /* that list, oldest first */
    struct tg_cp_source *source;      /* its source address, while on it; NULL: unknown */
};

struct tg_cp_server_stats {
    uint64_t streams; /* accepted */
    uint64_t open_streams;
    uint64_t refused; /* Hello refused */
    uint64_t certs_issued;
    uint64_t csrs_refused;
    uint64_t pushes;
    uint64_t acks;
    uint64_t nacks;
    uint64_t reloads;
    uint64_t reload_failures;
    /* the front door: streams refused or closed before they authenticated, by reason */
    uint64_t refused_max_connections; /* at accept: max_connections open, none to close */
    uint64_t refused_per_address;     /* at accept: its address at its cap */
    uint64_t evicted;                 /* closed to make room: the oldest unauthenticated */
    uint64_t handshake_timeouts;      /* no TLS handshake within timeouts.handshake */
    uint64_t hello_timeouts;          /* no Hello within timeouts.hello after it */
    uint64_t unauthenticated_open;    /* now */
};

/* Loads the state from config_path and listens. 0, or a negative code with err (nothing is
 * left running). */
TG_MUST_USE int tg_cp_server_new(uv_loop_t *loop, const char *config_path,
                                 struct tg_cp_server **out, char *err);
/* Stops listening, says goodbye to every stream, closes the watchers; on_closed(arg) runs
 * once everything is closed, then srv is freed. */
void tg_cp_server_close(struct tg_cp_server *srv, void (*on_closed)(void *arg), void *arg);

/* The current state (borrowed), and the address bound (port 0 in the file: the real one). */
struct tg_cp_state *tg_cp_server_state(const struct tg_cp_server *srv);
int tg_cp_server_port(const struct tg_cp_server *srv);
const struct tg_cp_server_stats *tg_cp_server_stats(const struct tg_cp_server *srv);
struct tg_cp_server_stats *tg_cp_server_stats_mut(struct tg_cp_server *srv);
uv_loop_t *tg_cp_server_loop(const struct tg_cp_server *srv);
/* The state is loaded and the stream listener bound, and we are not shutting down. */
bool tg_cp_server_healthy(const struct tg_cp_server *srv);
/* What is pushed of type t: the state's, but for the mesh table with kubernetes.discovery,
 * the derived table merged with the mesh files' (cp_k8s.h), NULL until the cluster has been
 * listed (nothing of that type is pushed then). */
const struct tg_resource *tg_cp_server_resource(const struct tg_cp_server *srv, enum tg_res_type t);
struct tg_cp_k8s;
/* NULL without kubernetes.discovery. */
const struct tg_cp_k8s *tg_cp_server_k8s(const struct tg_cp_server *srv);
/* The admission webhook (kubernetes.webhook), or NULL. */
const struct tg_k8s_webhook *tg_cp_server_webhook(const struct tg_cp_server *srv);
/* The admin endpoint's port (cp.yaml admin:), 0 when there is none. */
int tg_cp_server_admin_port(const struct tg_cp_server *srv);

/* Reloads the state now (as a file change does). 0, or the load's error (kept state). */
int tg_cp_server_reload(struct tg_cp_server *srv, const char *why);

/* kubernetes.token_review (cp_review.h): the server's cache of the API server's answers, and
 * asking it about token for stream conn_id: when the answer is in (cached unless the API
 * server could not be asked), tg_cp_stream_on_review runs for that stream if it is still
 * open; never after tg_cp_server_close. 0, or TG_ENOMEM / TG_EINVAL (no discovery). */
struct tg_cp_reviews *tg_cp_server_reviews(struct tg_cp_server *srv);
TG_MUST_USE int tg_cp_server_review(struct tg_cp_server *srv, uint64_t conn_id, const char *token);

/* c's Hello was accepted: it leaves the unauthenticated and may send frames up to
 * TG_FRAME_MAX. */
void tg_cp_server_authenticated(struct tg_cp_conn *c);

/* ---- cp_stream.c: the protocol (protobuf) on one stream ---- */

/* A frame from the sidecar. */
void tg_cp_stream_on_frame(struct tg_cp_conn *c, const char *frame, size_t len);
/* Pushes, to a stream past its Hello, every resource whose version differs from what it
 * was last sent (or holds). */
void tg_cp_stream_push_changed(struct tg_cp_conn *c);
/* The API server's answer about c's token (tg_cp_server_review): the Hello goes on. */
void tg_cp_stream_on_review(struct tg_cp_conn *c, const struct tg_cp_review *r);
/* Checks c's pod claims again (cp_pod.h) against the Pods watched now and takes the labels
 * that scope its rules: 1 when they changed, 0 when not, or TG_EPEER with the reason in err
 * (the caller refuses the stream), TG_ENOMEM. */
TG_MUST_USE int tg_cp_stream_check_pod(struct tg_cp_conn *c, char *err);
/* Sends Close with reason and ends the stream once it is written. */
void tg_cp_stream_refuse(struct tg_cp_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif

/* The sidecar's end of the control-plane stream (DESIGN.md, "Control-plane stream"). Runs
 * on the control thread's loop: resolves and connects to the control plane, handshakes TLS
 * (msgstream.h) verifying the server's SPIFFE ID, sends Hello (the bootstrap token while we
 * have no identity, and the resource versions we hold so a new stream resumes from them),
 * sends our CSR whenever asked, hands each certificate and push to the caller, and answers
 * ACK or NACK from the caller's verdict. Pings every 10 s; a stream that brings nothing for
 * 30 s, a frame over 4 MiB or a message that does not decode ends the stream with a logged
 * reason, and it reconnects after a jittered exponential backoff (1 s to 30 s). Losing the
 * stream changes nothing else: the caller keeps serving with what it has.
 *
 * protobuf-c stays inside cp_client.c: pushes arrive as struct tg_resource (resource.h).
 * Loop thread only. */
#ifndef TOLLGATE_CP_CLIENT_H
#define TOLLGATE_CP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tollgate/config.h"
#include "tollgate/resource.h"
#include "tollgate/tls.h"

#define TG_CP_PING_MS 10000  /* a Ping every 10 s; the control plane answers each */
#define TG_CP_STALL_MS 25000 /* nothing received for 25 s: the stream is dropped */
#define TG_CP_TICK_MS 1000   /* how often the stall is checked */
#define TG_CP_BACKOFF_MIN_MS 1000
#define TG_CP_BACKOFF_MAX_MS 30000
#define TG_CP_SA_ENV "TOLLGATE_SERVICE_ACCOUNT" /* with pod_info: Hello's service account */

struct tg_cp_client_cfg {
    const char *address;    /* "host:port" or "[v6]:port"; resolved at each attempt */
    const char *token_path; /* bootstrap token file, read at each attempt made without an
                             * identity; NULL: none */
    const struct tg_strlist *server_ids; /* the control plane's accepted SPIFFE IDs (>= 1) */
    const char *node_id;                 /* Hello claims; NULL or "" for none */
    const char *namespace_;
    const char *service_account;
    const char *version; /* our software version */
    const struct tg_res_label *labels;
    size_t n_labels;
    /* A downward API directory (podinfo.h), read at each attempt: Hello's pod_name,
     * namespace and labels come from it (a file that does not parse fails the attempt, logged:
     * nothing is sent that is wrong), and its service_account from $TOLLGATE_SERVICE_ACCOUNT
     * when set (the volume cannot carry spec.serviceAccountName). NULL: none. */
    const char *pod_info;
};

/* All callbacks run on the loop thread; arg is the ops' arg. */
struct tg_cp_client_ops {
    /* For each connection attempt: the TLS client context to connect with, normally
     * tg_tls_ctx_new_cp(current identity or NULL, bootstrap root, ...). *has_identity says
     * whether it presents a certificate; without one the bootstrap token goes in Hello.
     * The client owns *out and frees it when that connection is over. 0, or negative with
     * err (logged; the attempt is retried after the backoff). */
    int (*make_tls_ctx)(void *arg, struct tg_tls_ctx **out, bool *has_identity, char *err);
    /* The stream is up and Hello has been sent. May be NULL. */
    void (*on_up)(void *arg);
    /* The stream is gone (reason); a reconnect is scheduled. May be NULL. */
    void (*on_down)(void *arg, const char *reason);
    /* The signed chain (PEM: leaf, then intermediates) answering our last CSR. Return 0 when
     * it is applied (ACK) or negative with a one-line err (NACK). */
    int (*on_cert)(void *arg, const char *chain_pem, size_t len, char *err);
    /* The control plane refused our CSR; why is its one-line reason. May be NULL. */
    void (*on_cert_refused)(void *arg, const char *why);
    /* A pushed resource. Takes ownership of res whatever it returns (tg_resource_free).
     * Return 0 once applied (ACK; version is then what we hold for res->type) or negative
     * with a one-line err (NACK; we keep holding the version we had). */
    int (*on_push)(void *arg, struct tg_resource *res, const char *version, char *err);
    void *arg;
};

/* For /stats and /config_dump. */
struct tg_cp_client_stats {
    uint64_t connects;        /* streams that got through the TLS handshake */
    uint64_t reconnects;      /* connection attempts after the first */
    uint64_t disconnects;     /* established streams lost */
    uint64_t pushes_accepted; /* ACKed */
    uint64_t pushes_rejected; /* NACKed */
    uint64_t csrs_sent;
    uint64_t certs_accepted;
    uint64_t certs_rejected;              /* chains we NACKed */
    uint64_t csrs_refused;                /* by the control plane */
    uint64_t handshakes_failed[TG_HSF_N]; /* by reason: a server we refused, or that refused
                                           * us (TG_HSF_PEER_REFUSED), or a timeout */
    bool connected;
    char last_error[TG_ERRLEN]; /* why the last stream or attempt ended; "" if none */
};

struct tg_cp_client;

/* Checks and copies cfg (the caller's may go afterwards). Nothing is started. 0, or negative
 * with err (TG_EINVAL for a bad address or no server ID). */
TG_MUST_USE int tg_cp_client_new(uv_loop_t *loop, const struct tg_cp_client_cfg *cfg,
                                 const struct tg_cp_client_ops *ops, struct tg_cp_client **out,
                                 char *err);

/* Starts the first connection attempt now. */
void tg_cp_client_start(struct tg_cp_client *c);

/* Sends csr (copied) on the stream now, or as soon as a stream is up; it is sent again on
 * every new stream until an answer for it arrives. A newer CSR replaces one still waiting.
 * 0 or TG_ENOMEM. */
TG_MUST_USE int tg_cp_client_request_cert(struct tg_cp_client *c, const unsigned char *csr,
                                          size_t len, char *err);

/* Ends the stream and the timers; on_closed(arg) runs once everything is closed, then c is
 * freed. No callback of ops runs after this call. */
void tg_cp_client_close(struct tg_cp_client *c, void (*on_closed)(void *arg), void *arg);

const struct tg_cp_client_stats *tg_cp_client_stats(const struct tg_cp_client *c);

/* The version we hold of type t ("" for none). */
const char *tg_cp_client_version(const struct tg_cp_client *c, enum tg_res_type t);

/* What the client makes of a ServerMessage frame that carries a Push: the resource, checked
 * against the type it claims (*out owned by the caller), and its version (copied into
 * version, cap bytes). 0, or a negative code with a one-line err. Exposed for fuzzing. */
TG_MUST_USE int tg_cp_client_decode_push(const void *frame, size_t len, struct tg_resource **out,
                                         char *version, size_t cap, char *err);

/* The delay before connection attempt `attempt` (0 for the first retry): min(30 s, 1 s <<
 * attempt), of which a random half is taken off (jitter; rnd is any 32-bit random number).
 * Pure; exposed for tests. */
uint64_t tg_cp_backoff_ms(unsigned attempt, uint32_t rnd);

#endif

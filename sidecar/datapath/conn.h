/* One proxied connection: the downstream socket we accepted, the upstream socket we
 * connected, the TLS session on whichever side is the mesh side, and one plaintext buffer
 * per direction. conn.c owns the life cycle (accept, connect, handshake, timers, close);
 * pipe.c moves bytes. Everything runs on the owning worker's loop. Private to the data path
 * (sidecar/datapath/): the rest of the sidecar reaches it through worker.h. */
#ifndef TOLLGATE_CONN_H
#define TOLLGATE_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tollgate/buf.h"
#include "tollgate/gen.h"
#include "tollgate/metrics.h"
#include "tollgate/tls.h"
#include "tollgate/worker.h"

struct tg_conn;

struct tg_side {
    uv_tcp_t tcp;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct tg_conn *conn;
    struct tg_buf *wbuf; /* where writes to this side come from */
    size_t writing;      /* bytes of wbuf in flight; 0 = no write pending */
    bool open;           /* tcp initialised (must be closed) */
    bool connected;      /* accepted, or the connect succeeded */
    bool tls;            /* the TLS session talks over this side */
    bool reading;
    bool tcp_eof; /* the peer sent FIN */
};

/* One direction of bytes: plaintext from src's reader, to dst's writer. */
struct tg_dir {
    struct tg_side *src;
    struct tg_side *dst;
    struct tg_buf buf;
    struct tg_pool *pool;          /* where buf's storage comes from (the worker's pool, its
                                    * wide one for a tunnel stream's bytes, its wire one for
                                    * a tunnel's frames, both ways) */
    bool eof;                      /* no more plaintext will come from src */
    bool shut_issued;              /* uv_shutdown of dst requested */
    bool done;                     /* end carried to dst: close_notify (TLS) and FIN sent */
    struct tg_counter *bytes_stat; /* listener counter for this direction's payload */
    uint64_t *bytes;               /* the connection's own count */
};

enum tg_conn_state {
    TG_CONN_PEEK,      /* permissive inbound: waiting for the first bytes to choose */
    TG_CONN_CONNECT,   /* upstream connect in progress */
    TG_CONN_HANDSHAKE, /* TLS handshake in progress */
    TG_CONN_PIPE,      /* moving bytes */
};

struct tg_conn {
    struct tg_worker *w;
    const struct tg_listener_def *l;
    struct tg_listener_stats *stats;
    struct tg_gen *gen; /* reference held until the connection is freed */
    struct tg_side down;
    struct tg_side up;
    struct tg_dir dir[2];            /* [0] down -> up, [1] up -> down */
    struct tg_tls *tls;              /* NULL for a plain-text passthrough */
    struct tg_addr upstream;         /* where this connection goes */
    uint16_t dest_port;              /* the port the caller asked for (rules match on it) */
    struct tg_tls_peer_rule rule;    /* who may be on the TLS side's other end */
    uv_timer_t timer;                /* connect, handshake or idle deadline */
    uv_timer_t throttle;             /* bytes_per_second: resumes reading the caller */
    struct tg_ratelimit *rl;         /* the caller's limits, when it has any */
    struct tg_ratelimit_key *rl_key; /* its admission, released at the end */
    struct tg_http_conn *http;       /* protocol: http: requests and responses followed; owned */
    struct tg_tunnel *tunnel;        /* ALPN h2: CONNECT streams (tunnel.h); owned. Inbound: a
                                      * connection whose handshake chose h2; outbound: one of
                                      * the worker's pooled tunnels, from its dial on */
    struct tg_ostream *ostream;      /* outbound: carried as a stream of a pooled tunnel */
    struct tg_conn *carrier;         /* ... the tunnel that answered it, held (one of its
                                      * handles) until c is freed: c's log line names its
                                      * identity and TLS fields */
    enum tg_tunnel_mode tunnel_mode; /* outbound: the route's (off: a direct connection) */
    unsigned tunnel_tries;           /* streams opened for it so far (a refused one retries) */
    bool listener_counted;           /* in its listener's open count (under a cap) */
    bool peer_tracked;               /* in the verified peers' table (peers.h) */
    uint64_t rl_debt;                /* bytes read beyond the tokens taken so far */
    uint64_t ll_debt;                /* the same for the listener's bytes_per_second */
    /* its settings when this connection is HTTP (the listener's protocol: http, or the mesh
     * table's for a captured inbound port); NULL: a byte pipe. Set by route() */
    const struct tg_http_cfg *http_cfg;
    uv_connect_t creq;
    enum tg_conn_state state;
    bool closing;
    bool handshake_done;
    bool plain;    /* inbound: a plain-text caller (permissive port): no identity, decided as one */
    bool http_app; /* outbound: the app speaks HTTP (listener or mesh table): 503 on refusal */
    int open_handles;
    uint64_t start_unix_ms;
    uint64_t start_ns;       /* uv_hrtime() at accept: the connection duration histogram */
    uint64_t hs_start_ns;    /* ... at the first handshake step (0 before): the handshake's */
    unsigned peer_id_idx;    /* the peer's identity label (tg_metrics_id_index) */
    uint64_t last_active;    /* uv_now() of the last byte moved */
    uint64_t bytes_received; /* payload from the downstream */
    uint64_t bytes_sent;     /* payload to the downstream */
    const char *outcome;
    char reason[200];
    char peer_addr[64];
    char orig_dst[64];           /* transparent listeners: the original destination; "" otherwise */
    struct tg_conn *prev, *next; /* the worker's list */
};

/* Accepts one connection from server into a new tg_conn (on failure the socket is
 * accepted and closed, counted). */
void tg_conn_accept(struct tg_worker *w, const struct tg_listener_def *l, uv_stream_t *server);

/* Ends the connection: closes every handle; the last close callback logs, counts and frees.
 * Idempotent. outcome: "ok", "refused", "error", "timeout"; reason may be NULL. */
void tg_conn_close(struct tg_conn *c, const char *outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An access-log entry, zeroed, with what the connection says of itself: listener,
 * direction, peer, its ID (or the one it claimed), upstream, TLS version, cipher, serial,
 * resumption. The caller adds times, bytes and the outcome. */
struct tg_access_entry;
void tg_conn_log_entry(const struct tg_conn *c, struct tg_access_entry *e);

/* The connection moved bytes: the idle deadline starts again. */
void tg_conn_touch(struct tg_conn *c);

/* While backpressure keeps a socket from being read, libuv does not watch it at all, so a
 * reset from its peer would go unseen for as long as bytes trickle the other way. A
 * connection's timer (a tunnel's, for its streams) comes back this often to ask the kernel. */
#define TG_PAUSED_PROBE_MS 1000

/* (Re)arms the timer for the idle deadline, or sooner while a side is paused by
 * backpressure (its peer's resets are then probed for). */
void tg_conn_arm_idle(struct tg_conn *c);

/* The pending error on tcp's socket (SO_ERROR: -ECONNRESET, ...), or 0. */
int tg_conn_sock_error(uv_tcp_t *tcp);

/* conn.c: the caller of an inbound connection sent n more bytes; with a bytes_per_second
 * limit this may pause reading from it for a while. */
void tg_conn_paced(struct tg_conn *c, size_t n);
/* Whether reads from the caller are paced (its own or its listener's bytes_per_second). */
bool tg_conn_pacing(const struct tg_conn *c);
/* Whether reading from the caller waits for tokens now. */
bool tg_conn_in_debt(const struct tg_conn *c);

/* pipe.c: moves every byte that can move now, starts and stops reads for backpressure,
 * carries half-closes, and closes the connection when both directions are done. Call after
 * any event. */
void tg_pipe_progress(struct tg_conn *c);

/* pipe.c: the tunnel stream that carries c took bytes of dir[0]: reading from the app
 * starts again if it had stopped for room (nothing else moves: safe inside the session's
 * callbacks). */
void tg_pipe_read_again(struct tg_conn *c);
/* One read of side s now, without waiting for the loop to report it, then progress as after
 * any read: the app's first bytes usually wait in the socket when our handshake ends, and so
 * they leave in the same write as our Finished. */
void tg_pipe_read_now(struct tg_conn *c, struct tg_side *s);

/* pipe.c: libuv read callbacks for either side (handle->data is the tg_side). */
void tg_pipe_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void tg_pipe_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* conn.c: the server's sidecar refused us with a fatal alert (tg_tls_read said TG_EPEER, or
 * the handshake failed with TG_HSF_PEER_REFUSED): logs its reason, answers an HTTP app with
 * a 503 naming it when nothing was sent to the app yet, and closes. */
void tg_conn_peer_refused(struct tg_conn *c);

/* conn.c: TLS bytes arrived during the handshake (called from pipe.c). */
void tg_conn_handshake_step(struct tg_conn *c);

/* conn.c: the first bytes of a permissive inbound connection arrived (from pipe.c). */
void tg_conn_peek_step(struct tg_conn *c);

/* conn.c: admits the verified caller of c under its connection limits (rate and
 * concurrency), keyed by its SPIFFE ID or fingerprint: *rl and *key get its admission (NULL
 * without limits), to release at the end. false, with why, when over (counted). */
bool tg_conn_admit(struct tg_conn *c, struct tg_ratelimit **rl, struct tg_ratelimit_key **key,
                   char *why, size_t cap);

/* conn.c: the listener l's own limits (max_connections, connections_per_second) for one
 * more connection, or tunnel stream: false with why when over (counted in stats); *counted
 * is set when it took a place under max_connections, to give back at its end. */
bool tg_conn_listener_admit(const struct tg_listener_def *l, struct tg_listener_stats *stats,
                            bool *counted, char *why, size_t cap);

/* conn.c: one more of c's handles (a tunnel stream's socket) has closed; the last one frees
 * c. */
void tg_conn_handle_closed(struct tg_conn *c);

/* conn.c: an outbound connection whose route chose a tunnel goes direct after all (the
 * sidecar offers none, or the pool is full): its TLS session, then the upstream connect. */
void tg_conn_direct(struct tg_conn *c);

/* conn.c: a new pooled tunnel to app's upstream, for app's listener, generation and
 * expected identities: its TCP connect and mTLS handshake (offering ALPN h2) start; tun
 * becomes its c->tunnel; once the handshake is done tg_tunnel_ready is called. NULL when it
 * could not even start (why says so). */
struct tg_conn *tg_conn_dial_tunnel(struct tg_conn *app, struct tg_tunnel *tun, char *why,
                                    size_t cap);

/* conn.c: app was waiting for tunnel t, which failed before it carried anything: app ends
 * as t did (an HTTP app is answered 503 when t was refused by the server's sidecar). */
void tg_conn_tunnel_failed(struct tg_conn *app, const struct tg_conn *t);

/* conn.c: how long an app connection waits for its tunnel stream: a new tunnel's connect
 * and handshake, then the answer to its CONNECT (c's connect and handshake timeouts). */
uint64_t tg_conn_tunnel_wait_ms(const struct tg_conn *c);

/* conn.c: (re)arms c's one timer: on_timer decides by c's state what its end means. */
void tg_conn_arm_timer(struct tg_conn *c, uint64_t ms);

/* conn.c: the server's sidecar refused an outbound connection of kind (the reason's code):
 * the app of an HTTP port gets a 503 naming it instead of a reset, when nothing went to it
 * yet. Nothing for any other app. */
void tg_conn_answer_refusal(struct tg_conn *c, const char *kind);

/* conn.c: binds an inbound connection to the app to our exempt source address
 * (TG_INBOUND_SOURCE4/6), for a transparent listener. 0 or a libuv code. */
int tg_conn_bind_source(uv_tcp_t *tcp, bool v6);

/* conn.c: whether the caller of an inbound connection passes policy p (revocation, then the
 * rules). A verified TLS peer is decided by its identity and certificate; a plain-text caller
 * (c->plain) by no identity at all: rules that name identities never match it, their not_
 * forms do (Istio's semantics for an unauthenticated source), and default deny refuses it.
 * Counts a refusal and fills why with the verdict. A connection whose caller is neither yet
 * (still in its handshake or peek) passes. */
bool tg_conn_authorized(struct tg_conn *c, const struct tg_policy *p, char *why, size_t cap);

#endif

/* Worker threads: each has its own uv loop, its own SO_REUSEPORT listening sockets (the
 * kernel spreads connections among workers), its own buffer pool, and its own reference to
 * the current generation, replaced through its mailbox. */
#ifndef TOLLGATE_WORKER_H
#define TOLLGATE_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "tollgate/buf.h"
#include "tollgate/config.h"
#include "tollgate/gen.h"
#include "tollgate/metrics.h"
#include "tollgate/ratelimit.h"
#include "tollgate/tls.h"

/* A listener's limits over all its callers, shared by the workers (locked or atomic). */
struct tg_listener_limit {
    struct tg_ratelimit_global rate;  /* new connections per second */
    struct tg_ratelimit_global bytes; /* bytes per second read from the callers */
    atomic_bool bytes_on;             /* bytes has a limit */
    atomic_uint max;                  /* connections open at once; 0: no cap */
    atomic_uint open;                 /* connections open now (counted only under a cap) */
};

/* One configured listener, shared read-only by all workers. */
struct tg_listener_def {
    size_t index;              /* into the metrics slots */
    bool inbound;              /* mTLS in, plain to upstream; else plain in, mTLS to upstream */
    bool transparent;          /* captured traffic: the original destination decides the upstream */
    bool upstream_loopback;    /* transparent inbound: the app on loopback, not at the original */
    enum tg_inbound_mode mode; /* inbound: strict or permissive */
    bool proxy_protocol;       /* inbound: PROXY v2 header to the app */
    bool allow_unauth;         /* inbound: a plain-text caller passes the allow list */
    bool tunnels;              /* inbound: HTTP/2 CONNECT tunnels accepted too (ALPN h2) */
    const char *name;
    const struct tg_addr *listen;
    const struct tg_addr *upstream; /* NULL when transparent */
    struct tg_tls_peer_rule rule;   /* inbound: allow list; outbound: expected servers */
    const struct tg_http_cfg *http; /* inbound protocol: http: its settings; NULL: a byte pipe */
    /* transparent inbound, not protocol: http: the settings for a port the mesh table says
     * is protocol: http (the listener's http: or the defaults); NULL otherwise */
    const struct tg_http_cfg *http_mesh;
    const char *sni; /* outbound: the server name to send; NULL: none */
    bool http_app;   /* outbound protocol: http: a refusal by the server's sidecar is answered
                      * to the app with a 503 naming the reason */
    enum tg_tunnel_mode tunnel; /* outbound: off, auto or on (a mesh destination's wins) */
    struct tg_listener_limit *limit;
};

/* What every worker shares, read-only once the workers run. */
struct tg_runtime {
    const struct tg_config *cfg;
    const struct tg_listener_def *listeners;
    size_t n_listeners;
    struct tg_metrics *metrics;
};

struct tg_conn;

#define TG_TUNNEL_WINDOW 8 /* a tunnel stream's first window, in buffer_size buffers */
/* ... and the widest it grows while its app keeps up (h2tun.h), unless the first is wider */
#define TG_TUNNEL_WINDOW_MAX_BYTES (4u << 20)

struct tg_worker {
    unsigned index;
    const struct tg_runtime *rt;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;                  /* a new generation, drain or stop */
    _Atomic(struct tg_gen *) mailbox; /* the next generation, owned reference */
    atomic_bool drain_requested;
    atomic_bool stop_requested;
    atomic_size_t n_conns; /* open connections, for the drain wait */
    atomic_uint beats;     /* wake-ups handled: the control thread's watchdog sees it move */
    struct tg_gen *gen;    /* current, owned reference; loop thread only */
    uv_tcp_t *listeners;   /* [rt->n_listeners] */
    size_t open_listeners;
    /* [rt->n_listeners]: closed while out of file descriptors, bound again by rebind */
    enum { TG_LISTENING, TG_PAUSING, TG_PAUSED } * pause;
    uv_timer_t rebind;
    bool draining;
    struct tg_pool pool;
    /* what goes on the wire: TLS records and a tunnel's frames (both ways), a pool buffer's
     * worth of app bytes and what framing and encryption add to them, so that a full
     * buffer of the app's bytes leaves, and arrives, in one write (tg_worker_start) */
    struct tg_pool wire;
    /* a tunnel stream's buffer toward its app: room for its widest flow-control window
     * (TG_TUNNEL_WINDOW buffers' worth at first, up to TG_TUNNEL_WINDOW_MAX_BYTES), so one
     * stream's bulk transfer is not held to one buffer per round trip between the sidecars;
     * malloc'd, so only the part bytes have filled takes memory */
    struct tg_pool wide;
    uv_timer_t trim; /* each second: both pools give back what the last second did not need */
    struct tg_tls_cache *tickets; /* outbound: session tickets by upstream */
    struct tg_conn *conns;        /* open connections, linked through conn->next */
    struct tg_tunnels *tunnels;   /* outbound tunnels' pool (tunnel.h); made on first use */
};

/* Binds the worker's listeners (on the calling thread, so a bind error is reported here),
 * takes a reference on gen, and starts the thread. On failure nothing is left running. */
TG_MUST_USE int tg_worker_start(struct tg_worker *w, unsigned index, const struct tg_runtime *rt,
                                struct tg_gen *gen, char *err);

/* Any thread: hands g (a new reference is taken) to the worker; it switches at its next
 * loop turn, or before it accepts or reads anything (tg_worker_adopt), whichever comes
 * first. Connections keep the generation they started with. */
void tg_worker_publish(struct tg_worker *w, struct tg_gen *g);

/* Loop thread, before a decision (an accept, the bytes of a read): takes the generation
 * published last, if one waits. Its live-connection checks may close connections
 * (close_denied), the caller's too; its tunnels get GOAWAY. */
void tg_worker_adopt(struct tg_worker *w);

/* A tunnel stream's first flow-control window, in bytes; w->wide.block_size is its widest. */
static inline size_t tg_worker_tunnel_window(const struct tg_worker *w)
{
    return w->pool.block_size * TG_TUNNEL_WINDOW;
}

/* Any thread: stop accepting (listeners close); open connections carry on. */
void tg_worker_drain(struct tg_worker *w);

/* Control thread: asks the worker to show it is alive; its loop adds one to beats when it
 * gets to the wake-up. A worker stuck in a call never does (the watchdog, control.c). */
void tg_worker_ping(struct tg_worker *w);

/* Any thread: close every connection and handle; the thread ends. Then tg_worker_join. */
void tg_worker_stop(struct tg_worker *w);
void tg_worker_join(struct tg_worker *w);

/* Loop thread: connection bookkeeping used by conn.c. */
void tg_worker_conn_added(struct tg_worker *w, struct tg_conn *c);
void tg_worker_conn_removed(struct tg_worker *w, struct tg_conn *c);

/* Fails (-EADDRINUSE, err naming the address) when another socket holds addr, even one
 * bound with SO_REUSEPORT by another process of ours: workers share a port on purpose, two
 * sidecars must not. Call once per address before the workers bind. */
TG_MUST_USE int tg_listener_probe(const struct tg_addr *addr, char *err);

/* Creates a non-blocking TCP socket bound to addr with SO_REUSEADDR and SO_REUSEPORT, opens
 * it in tcp (initialised on loop) and listens. err names the address on failure. */
TG_MUST_USE int tg_listener_bind(uv_loop_t *loop, uv_tcp_t *tcp, const struct tg_addr *addr,
                                 uv_connection_cb on_conn, char *err);

#endif

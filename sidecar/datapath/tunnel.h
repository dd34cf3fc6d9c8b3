/* Tunnels between sidecars: an mTLS connection whose handshake chose ALPN h2 carries app
 * connections as HTTP/2 CONNECT streams (h2tun.h is the protocol; these files own the
 * sockets). Private to the data path.
 *
 * Inbound end (tunnel.c): each stream is decided as a connection of its own: the tunnel
 * peer's identity and the generation's rules for the port it asks for, its limits (a stream
 * counts as an app connection), one socket to the app, one access-log line. A refused stream
 * gets 403 with the reason and the tunnel stays up. The tunnel connection is freed only
 * after the last stream's socket has closed (each is one of its handles).
 *
 * Outbound end (tunout.c): each worker keeps a pool of tunnels, keyed by the destination
 * sidecar's address (its host, for a transparent listener), the expected identities, the
 * listener and the generation. An app connection whose route chose a tunnel (tunnel: auto
 * or on) joins one with room, or dials a new one, up to tunnel_pool's limits; it stays a
 * tg_conn of its own (its socket, timers, limits and access-log line), and its bytes go to
 * and from its stream instead of an upstream socket. A sidecar that does not choose h2 is
 * remembered for a while: auto goes direct, on refuses. Everything runs on one worker. */
#ifndef TOLLGATE_TUNNEL_H
#define TOLLGATE_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct tg_conn;
struct tg_tstream;
struct tg_ostream;
struct tg_worker;

struct tg_tunnel {
    struct tg_conn *c;           /* the mTLS connection that carries it */
    struct tg_h2tun *h2;         /* NULL while an outbound tunnel's handshake runs */
    struct tg_tstream *streams;  /* inbound: the streams and their app sockets */
    struct tg_ostream *ostreams; /* outbound: the stream records still held */
    size_t riding;               /* outbound: app connections on it (waiting or open) */
    uint64_t idle_since;         /* outbound: uv_now() when riding fell to 0 */
    bool outbound;               /* one of the worker's pool */
    bool in_pool;                /* outbound: still in the worker's list */
    bool retired;                /* outbound: takes no new streams (GOAWAY, a new
                                  * generation, the pool's idle close, a drain) */
    bool busy;                   /* inside the session's calls (no re-entry) */
    bool kicked;                 /* ... and asked to send again meanwhile */
    bool fed;                    /* the last tg_tunnel_io took bytes */
    bool ending;                 /* the session is over: close_notify queued, the peer's
                                  * own end awaited (LINGER_MS in tunnel.c) */
    uv_timer_t timer; /* inbound (made on first use, then one of c's handles): paced streams
                       * wait here for tokens; once the tunnel has closed, the streams that
                       * ended whole and still write their last bytes to their apps are timed
                       * here (tunnel.c, LINGER) */
    bool timer_open;
    struct tg_tunnel *pool_prev, *pool_next;
};

/* conn.c: c's handshake chose h2 (inbound, tunnels: true): c becomes a tunnel and starts
 * moving frames. On failure c is closed. */
void tg_tunnel_start(struct tg_conn *c);

/* pipe.c: the direction whose plaintext the session reads (inbound: dir[0], from the
 * caller; outbound: dir[1], from the server), and the one its frames go out by. */
struct tg_dir *tg_tunnel_in(struct tg_conn *c);
struct tg_dir *tg_tunnel_out(struct tg_conn *c);
/* At a tunnel's start: the frames both ways go into buffers of the worker's wire pool, with
 * room for a full buffer of app bytes as frames: encrypted whole on the way out, and on the
 * way in decrypted whole, so that one write to an app takes them all (a buffer of the app
 * pool's size took all but the last 36 bytes, which went in a second, tiny write). */
void tg_tunnel_frames_to_wire(struct tg_conn *c);

/* pipe.c: hands the plaintext in the in direction's buffer to the session (all of it) and
 * appends its frames to the out direction's; ends the tunnel once the session is over and
 * all is sent. */
void tg_tunnel_io(struct tg_conn *c);
/* pipe.c: whether the last tg_tunnel_io took bytes (TLS may hold more plaintext). */
bool tg_tunnel_more(const struct tg_conn *c);

/* conn.c, from tg_conn_close: every stream still open ends (inbound: its app socket reset,
 * unless the stream ended whole both ways and only its app has bytes left to take: those are
 * written first, within timeouts.idle of the app's last progress; outbound: the app
 * connection it carries closes, or tries another tunnel if the stream was never answered). */
void tg_tunnel_close(struct tg_conn *c);
/* worker.c: the streams of a closed tunnel still writing their last bytes to their apps end
 * now, with a reset, logged with outcome and why (at stop, when the drain deadline has
 * passed; by a new generation that revokes or denies the peer). Nothing for a connection
 * that is not a closed inbound tunnel. */
void tg_tunnel_end(struct tg_conn *c, const char *outcome, const char *why);
/* worker.c: whether c is a closed inbound tunnel with such streams. */
bool tg_tunnel_lingers(const struct tg_conn *c);
/* conn.c, when c's last handle has closed: frees the session and the streams. Copes with a
 * connection that is no tunnel. */
void tg_tunnel_free(struct tg_conn *c);

struct tg_policy;
/* A new generation that closes denied peers: each stream is decided again for its port and
 * a denied one ends. false, with why, when the peer is revoked: the whole tunnel must end
 * (tg_conn_close with outcome refused, or tg_tunnel_end once it has closed). */
bool tg_tunnel_recheck(struct tg_conn *c, const struct tg_policy *p, char *why, size_t cap);

/* A graceful end (a new generation, a drain): GOAWAY; open streams run to their end and new
 * ones go over a new connection. Nothing for a connection that is no tunnel. */
void tg_tunnel_drain(struct tg_conn *c);

/* ---- outbound (tunout.c) ---- */

/* conn.c: app's route chose a tunnel (c->tunnel_mode auto or on; no TLS session of its own):
 * it joins a pooled tunnel, dials one, goes direct (tg_conn_direct) or is refused. */
void tg_tunnel_join(struct tg_conn *app);
/* conn.c, from tg_conn_close: app leaves its stream (reset unless it ended well). */
void tg_tunnel_leave(struct tg_conn *app);
/* conn.c: a pooled tunnel's handshake is done: with h2 its waiting app connections open
 * their streams; without, they go direct or are refused, the sidecar is remembered, and
 * c closes. */
void tg_tunnel_ready(struct tg_conn *c);
/* conn.c: a tunnel's timer. Inbound: streams idle for the idle timeout end, and the tunnel
 * once it has had none for as long; outbound: the pool closes a tunnel that carried nothing
 * for tunnel_pool.idle_timeout (tg_tunnel_pool_idle). Arms the next deadline. */
void tg_tunnel_idle(struct tg_conn *c);
void tg_tunnel_pool_idle(struct tg_conn *c);
/* pipe.c, after an app connection carried by a stream moved bytes: the peer gets window
 * back for what the app took, the stream is told of the app's new bytes or its end. */
void tg_tunnel_app_progress(struct tg_conn *app);
/* worker.c, as the loop ends: the pool's remaining bookkeeping is freed. */
void tg_tunnel_pool_free(struct tg_worker *w);

/* tunnel.c, shared by both ends: the session has something to send (a window given back,
 * an app's bytes or end): sent now, or once the session's current call returns. */
void tg_tunnel_kick(struct tg_tunnel *tun);

/* tunnel.c: whether a and b are the same host (family and address; ports aside). */
bool tg_tunnel_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* tunout.c, for tunnel.c: after the session sent, app connections whose stream ended get
 * their turn; an outbound tunnel's close, free and retirement. */
void tg_tunnel_poke(struct tg_tunnel *tun);
void tg_tunnel_close_outbound(struct tg_tunnel *tun);
void tg_tunnel_free_outbound(struct tg_tunnel *tun);
void tg_tunnel_retire(struct tg_tunnel *tun);

#endif

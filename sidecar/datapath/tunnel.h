/* The inbound end of a tunnel: an mTLS connection whose handshake chose ALPN h2 carries app
 * connections as HTTP/2 CONNECT streams (h2tun.h is the protocol; this file owns the
 * sockets). Each stream is decided as a connection of its own: the tunnel peer's identity
 * and the generation's rules for the port it asks for, its limits (a stream counts as an app
 * connection), one socket to the app, one access-log line. A refused stream gets 403 with
 * the reason and the tunnel stays up. Everything runs on the tunnel connection's worker;
 * the tunnel connection is freed only after the last stream's socket has closed (each is
 * one of its handles). Private to the data path. */
#ifndef TOLLGATE_TUNNEL_H
#define TOLLGATE_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>

struct tg_conn;
struct tg_tunnel;

/* conn.c: c's handshake chose h2 (inbound, tunnels: true): c becomes a tunnel and starts
 * moving frames. On failure c is closed. */
void tg_tunnel_start(struct tg_conn *c);

/* pipe.c: hands the plaintext in c->dir[0].buf to the session (all of it) and appends its
 * frames to c->dir[1].buf; ends the tunnel once the session is over and all is sent. */
void tg_tunnel_io(struct tg_conn *c);
/* pipe.c: whether the last tg_tunnel_io took bytes (TLS may hold more plaintext). */
bool tg_tunnel_more(const struct tg_conn *c);

/* conn.c, from tg_conn_close: every stream still open ends (its app socket reset). */
void tg_tunnel_close(struct tg_conn *c);
/* conn.c, when c's last handle has closed: frees the session and the streams. Copes with a
 * connection that is no tunnel. */
void tg_tunnel_free(struct tg_conn *c);

struct tg_policy;
/* A new generation that closes denied peers: each stream is decided again for its port and
 * a denied one ends. false, with why, when the peer is revoked: the whole tunnel must end. */
bool tg_tunnel_recheck(struct tg_conn *c, const struct tg_policy *p, char *why, size_t cap);

/* A graceful end (a new generation, a drain): GOAWAY; open streams run to their end and the
 * peer opens new ones on a new connection. */
void tg_tunnel_drain(struct tg_conn *c);

#endif

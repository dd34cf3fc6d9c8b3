/* A stream of framed messages over TLS over TCP, on a libuv loop: the transport of the
 * control-plane stream, shared by the sidecar's client (cp_client.c) and tollgate-cp.
 * It connects or accepts, drives the TLS handshake (tls.h) with a deadline, cuts what
 * arrives into frames (frame.h) and hands each to on_frame, and frames, encrypts and writes
 * what is sent. It knows nothing of protobuf.
 *
 * Life cycle: tg_msgstream_connect/accept create the stream; from then on every way out
 * (tg_msgstream_close, a peer that goes away, a bad frame, a handshake that fails or times
 * out) ends in exactly one on_closed call, made after the last handle has closed; the stream
 * is freed as soon as on_closed returns. Loop thread only. */
#ifndef TOLLGATE_MSGSTREAM_H
#define TOLLGATE_MSGSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tollgate/err.h"
#include "tollgate/tls.h"

struct tg_msgstream;

struct tg_msgstream_ops {
    /* The handshake is done and the peer verified (tg_msgstream_peer says who; with a
     * peer_optional server context its id may be NULL). */
    void (*on_connected)(struct tg_msgstream *s);
    /* One complete frame, valid during the call. The callee may send or close. */
    void (*on_frame)(struct tg_msgstream *s, const char *frame, size_t len);
    /* The end, with a one-line reason. s is freed when this returns. */
    void (*on_closed)(struct tg_msgstream *s, const char *reason);
};

struct tg_msgstream_opts {
    uint64_t handshake_timeout_ms; /* 0: 10 s */
    size_t max_frame;              /* 0: TG_FRAME_MAX, in both directions */
    size_t max_frame_in;           /* frames from the peer, until raised; 0: max_frame */
    size_t max_queued;             /* plaintext waiting to be sent; 0: 4 * max_frame + 4 */
    bool raw; /* no framing (HTTPS: tollgate-cp's webhook): on_frame gets each piece of
               * plaintext as it is decrypted, whatever its size (the callee caps what it
               * keeps), and send queues the bytes as they are (max_queued still holds) */
};

/* Connects to addr and handshakes as a TLS client. ctx and rule are borrowed and must
 * outlive the stream (until on_closed). Returns 0 (then on_closed will come), or TG_ENOMEM
 * when nothing was created. */
TG_MUST_USE int tg_msgstream_connect(uv_loop_t *loop, const struct sockaddr *addr,
                                     struct tg_tls_ctx *ctx, const struct tg_tls_peer_rule *rule,
                                     const struct tg_msgstream_opts *opts,
                                     const struct tg_msgstream_ops *ops, void *data,
                                     struct tg_msgstream **out);

/* Accepts a connection waiting on server and handshakes as the TLS server. Same rules. */
TG_MUST_USE int tg_msgstream_accept(uv_loop_t *loop, uv_stream_t *server, struct tg_tls_ctx *ctx,
                                    const struct tg_tls_peer_rule *rule,
                                    const struct tg_msgstream_opts *opts,
                                    const struct tg_msgstream_ops *ops, void *data,
                                    struct tg_msgstream **out);

/* Frames msg and queues it (copied). Only after on_connected. 0; TG_ETOOBIG (over
 * max_frame, or the queue is over max_queued: the peer does not read) or TG_ENOMEM with err;
 * the stream stays open either way, the caller decides. */
TG_MUST_USE int tg_msgstream_send(struct tg_msgstream *s, const void *msg, size_t len, char *err);

/* Ends the stream (idempotent; the first reason is kept). With flush, what is queued is
 * written first, then close_notify, within a few seconds; without, at once. */
void tg_msgstream_close(struct tg_msgstream *s, bool flush, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The largest frame accepted from the peer from its next frame on (a server keeps it small
 * until the peer has authenticated), at most max_frame. */
void tg_msgstream_set_max_frame_in(struct tg_msgstream *s, size_t max);

void *tg_msgstream_data(const struct tg_msgstream *s);
/* After on_connected: the verified peer (empty again once the stream is closing). */
const struct tg_peer_info *tg_msgstream_peer(const struct tg_msgstream *s);
/* "10.0.0.5:41234", or "?" */
const char *tg_msgstream_peer_addr(const struct tg_msgstream *s);
/* The peer's address once the TCP connection is up (an accepted stream: at once);
 * ss_family AF_UNSPEC before, or when the kernel would not say. */
const struct sockaddr_storage *tg_msgstream_peer_sockaddr(const struct tg_msgstream *s);
bool tg_msgstream_is_connected(const struct tg_msgstream *s);
/* Bytes sent but not yet written to the socket (plaintext queued and ciphertext in flight):
 * 0 once the peer's kernel has it all. */
size_t tg_msgstream_queued(const struct tg_msgstream *s);
/* In on_closed: why the TLS handshake failed, or TG_HSF_N when it did not (it completed, or
 * the TCP connection never came up). */
enum tg_hs_fail tg_msgstream_hs_fail(const struct tg_msgstream *s);

#endif

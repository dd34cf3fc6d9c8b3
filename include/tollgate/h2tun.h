/* Either end of a tunnel between sidecars: app connections carried as HTTP/2 CONNECT
 * streams (RFC 9113 8.5) over one mTLS connection, with nghttp2, as a protocol adapter built
 * like the TLS adapter (tls.h): it never sees a socket. The caller feeds it the plaintext
 * the TLS session decrypted (tg_h2tun_recv) and encrypts what it appends to a buffer
 * (tg_h2tun_send), so the whole frame path runs in memory in tests and fuzzers.
 *
 * Streams: a request that is not CONNECT, or has no :authority, is answered 405 / 400 here
 * and never reaches the owner; a header block over TG_H2TUN_MAX_HEADERS bytes resets its
 * stream. For a CONNECT the owner gets on_open and answers with tg_h2tun_accept (200, then
 * the stream's bytes both ways) or tg_h2tun_refuse (a status and a `tollgate-reason`
 * header, END_STREAM); the tunnel stays up either way.
 *
 * Client streams: tg_h2tun_open sends a CONNECT for an authority; on_response gives the
 * answer (200: the stream's bytes flow both ways; anything else: refused, with the server's
 * reason). A stream the server never took (it sent GOAWAY first) closes with
 * TG_H2TUN_REFUSED: nothing of it reached the server, so the owner may try it elsewhere.
 *
 * Flow control: each stream's receive window starts at `window` bytes and is given back only
 * by tg_h2tun_consumed, so the owner holds at most that many unconsumed bytes per stream (a
 * peer that sends more breaks the protocol: the bytes past the window never reach the owner,
 * and the session ends with GOAWAY FLOW_CONTROL_ERROR). A stream whose owner keeps up (a
 * tg_h2tun_consumed that gives back half its window leaves the owner none of its bytes) has
 * its window doubled, up to `window_max`, for at most 8 streams of a session at once: so the
 * owner needs room for `window_max` bytes per stream, and holds at most `window` on each
 * stream but those 8. One exception, on a server: a client
 * may open streams before it has our SETTINGS, and until it acknowledges them it may send
 * 65,535 bytes on each (RFC 9113 6.9.2); a client's SETTINGS always precede its streams, so
 * a client's owner never gets more than its window. The connection's window is large enough
 * for every stream's, widened ones included. The other way nghttp2 asks the owner for bytes
 * (on_read) as the peer's windows allow; an owner with none says TG_EAGAIN and calls
 * tg_h2tun_resume when it has some.
 *
 * Every byte received is outside input: nghttp2 refuses frames that break the protocol with
 * GOAWAY (tg_h2tun_recv returns TG_EINVAL; the caller sends what is queued and closes).
 * Single-threaded; callbacks run inside tg_h2tun_recv and tg_h2tun_send, and may call
 * tg_h2tun_accept, _refuse, _reset, _consumed and _resume, never _free. */
#ifndef TOLLGATE_H2TUN_H
#define TOLLGATE_H2TUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tollgate/buf.h"
#include "tollgate/err.h"

#define TG_H2TUN_MAX_HEADERS 16384 /* bytes of one received header block */

/* RST_STREAM codes the owner may use (RFC 9113 7) */
#define TG_H2TUN_CANCEL 0x8
#define TG_H2TUN_REFUSED 0x7
#define TG_H2TUN_CONNECT_ERROR 0xa

/* stream is what the owner's on_open returned for the stream. */
struct tg_h2tun_ops {
    /* Server: a CONNECT for authority (as sent, NUL-terminated, at most 255 bytes). The owner
     * returns its stream, which the calls below get, and answers with tg_h2tun_accept or
     * tg_h2tun_refuse, now or later; or it refuses at once and returns NULL (nothing more is
     * said of the stream). */
    void *(*on_open)(void *arg, int32_t sid, const char *authority);
    /* Client: the final answer to stream's CONNECT: its status and the server's
     * tollgate-reason (NULL: none; 200 has none). */
    void (*on_response)(void *arg, void *stream, int status, const char *reason);
    /* Payload of a stream (bytes may come before the answer); the owner keeps all n bytes
     * (the window guarantees its room) and calls tg_h2tun_consumed once they have left. */
    void (*on_data)(void *arg, void *stream, const uint8_t *p, size_t n);
    /* END_STREAM from the peer: no more payload on stream. */
    void (*on_eof)(void *arg, void *stream);
    /* The stream is gone (both ends done, or reset: code != 0, by either side). Last call
     * for stream. */
    void (*on_close)(void *arg, void *stream, uint32_t code);
    /* Up to cap bytes of stream's payload for the peer into dst: the count, or 0 with *eof
     * set (END_STREAM), or TG_EAGAIN (none now: tg_h2tun_resume later). */
    ssize_t (*on_read)(void *arg, void *stream, uint8_t *dst, size_t cap, bool *eof);
    void *arg;
};

struct tg_h2tun;

/* A server session that has queued its SETTINGS (max_streams concurrent streams, a window of
 * window bytes per stream, widened up to window_max, each at most 16 MiB; a window_max below
 * window is window: no widening). 0 or TG_ENOMEM. */
TG_MUST_USE int tg_h2tun_new(const struct tg_h2tun_ops *ops, uint32_t window, uint32_t window_max,
                             uint32_t max_streams, struct tg_h2tun **out);
/* A client session (a CONNECT stream per tg_h2tun_open) that has queued its preface and
 * SETTINGS; windows as for a server; max_streams is not sent (the server's cap rules). */
TG_MUST_USE int tg_h2tun_new_client(const struct tg_h2tun_ops *ops, uint32_t window,
                                    uint32_t window_max, uint32_t max_streams,
                                    struct tg_h2tun **out);
/* Frees the session; on_close is not called for the streams still open (the owner lets its
 * own go). NULL is fine. */
void tg_h2tun_free(struct tg_h2tun *t);

/* Processes n bytes from the peer. 0, or TG_EINVAL with err: the peer broke the protocol
 * (the session has queued GOAWAY: send it, then close). */
TG_MUST_USE int tg_h2tun_recv(struct tg_h2tun *t, const uint8_t *p, size_t n, char *err);

/* Appends the frames ready to go to out, as far as its room allows (storage from pool).
 * 0, or TG_ENOMEM / TG_EINVAL. */
TG_MUST_USE int tg_h2tun_send(struct tg_h2tun *t, struct tg_buf *out, struct tg_pool *pool);

/* Client: opens a stream, a CONNECT for authority (HOST:PORT, at most 255 bytes); the
 * owner's stream is what the callbacks get. Its payload is asked for with on_read (say
 * TG_EAGAIN until the answer, so nothing is lost if the stream is refused). The stream ID,
 * or TG_EINVAL (not a client, a bad authority, or no new stream allowed) / TG_ENOMEM. */
TG_MUST_USE int32_t tg_h2tun_open(struct tg_h2tun *t, const char *authority, void *stream);
/* Client: whether a new stream may be opened (no GOAWAY either way, stream IDs left). */
bool tg_h2tun_can_open(struct tg_h2tun *t);
/* Streams open now (a server's: those whose request has begun). */
size_t tg_h2tun_streams(const struct tg_h2tun *t);
/* The peer's SETTINGS_MAX_CONCURRENT_STREAMS: before its SETTINGS, nghttp2's guess (100);
 * after SETTINGS without one, unlimited (UINT32_MAX). */
uint32_t tg_h2tun_peer_max_streams(const struct tg_h2tun *t);

/* Answers sid's CONNECT with 200; its payload then flows both ways. 0 or TG_EINVAL (sid is
 * gone or was answered). */
TG_MUST_USE int tg_h2tun_accept(struct tg_h2tun *t, int32_t sid);
/* Answers sid's CONNECT with status and reason (one line, in `tollgate-reason`), END_STREAM. */
void tg_h2tun_refuse(struct tg_h2tun *t, int32_t sid, int status, const char *reason);
/* Resets a stream (RST_STREAM with code). Not after tg_h2tun_refuse: nghttp2 would drop the
 * refusal not yet sent (the refusal ends the stream itself). */
void tg_h2tun_reset(struct tg_h2tun *t, int32_t sid, uint32_t code);
/* n bytes of sid's payload have left the owner: its window opens by n, and the connection's
 * (also after sid has closed: bytes an owner drops must be given back too). */
void tg_h2tun_consumed(struct tg_h2tun *t, int32_t sid, size_t n);
/* sid's receive window now (the first one, or as widened): what the peer may have in flight
 * to the owner at most. `window` for a stream the session no longer knows. */
size_t tg_h2tun_window(const struct tg_h2tun *t, int32_t sid);
/* sid has bytes (or its end) for the peer again after on_read said TG_EAGAIN. */
void tg_h2tun_resume(struct tg_h2tun *t, int32_t sid);
/* A graceful end: GOAWAY with the last stream taken; open streams run to their end. A
 * stream newer than that, read before the GOAWAY went out, is never offered to the owner:
 * RST_STREAM REFUSED_STREAM (the client may try it elsewhere). */
void tg_h2tun_goaway(struct tg_h2tun *t);
/* Whether the session is over (GOAWAY both ways or an error, nothing left to send). */
bool tg_h2tun_done(const struct tg_h2tun *t);
/* Whether frames wait to be sent. */
bool tg_h2tun_want_write(const struct tg_h2tun *t);

#endif

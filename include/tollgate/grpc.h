/* One gRPC call with a streamed answer (a server-streaming RPC), over HTTP/2 with nghttp2,
 * as a protocol adapter built like the TLS adapter (tls.h): it never sees a socket. The
 * caller feeds it the bytes it read (tg_grpc_recv) and sends what it hands out
 * (tg_grpc_take_output), so a whole exchange runs in memory in tests and fuzzers.
 *
 * The call (gRPC over HTTP/2, PROTOCOL-HTTP2.md): HEADERS with :method POST, :scheme http,
 * :path, content-type application/grpc, te trailers and the caller's metadata; one DATA
 * frame with the request message (a 5-byte prefix: flag 0, big-endian length) and
 * END_STREAM. Each answer message is reassembled and handed to on_message; the call ends
 * with the grpc-status of the trailers (or of a Trailers-Only answer).
 *
 * Every byte received is outside input: a message over max_message bytes, a compressed one,
 * an answer that is not HTTP 200 with content-type application/grpc, a header block over
 * 16 KiB, or any HTTP/2 protocol error ends the call (on_end, once) and the session (the
 * caller closes the connection). nghttp2 answers the peer's SETTINGS and PINGs, keeps the
 * flow-control windows open as messages are consumed, and sends GOAWAY on a protocol error.
 * One thread at a time; callbacks run inside tg_grpc_recv. */
#ifndef TOLLGATE_GRPC_H
#define TOLLGATE_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/err.h"

#define TG_GRPC_MAX_HEADERS 16384 /* bytes of one received header block */

struct tg_grpc_meta {
    const char *name; /* lowercase */
    const char *value;
};

struct tg_grpc_call {
    const char *authority; /* :authority ("localhost" for a Unix socket) */
    const char *path;      /* "/Service/Method" */
    const struct tg_grpc_meta *meta;
    size_t n_meta;
    const void *request; /* the serialised request message (copied) */
    size_t request_len;
    size_t max_message; /* bytes of one answer message */
};

struct tg_grpc_ops {
    /* One whole answer message (the prefix removed). Return 0, or negative with err to end
     * the call (the stream is reset with CANCEL and on_end follows with that err). */
    int (*on_message)(void *arg, const uint8_t *msg, size_t len, char *err);
    /* The call is over: status is the grpc-status received (0 OK), or -1 when it ended
     * otherwise (why says how). Runs once. */
    void (*on_end)(void *arg, int status, const char *why);
    void *arg;
};

struct tg_grpc;

/* A client session with the call submitted (nothing sent yet: take the output). 0, or
 * TG_ENOMEM / TG_EINVAL with err. */
TG_MUST_USE int tg_grpc_new(const struct tg_grpc_call *call, const struct tg_grpc_ops *ops,
                            struct tg_grpc **out, char *err);
void tg_grpc_free(struct tg_grpc *g);

/* Feeds bytes read from the connection. 0, or a negative code with err when the session is
 * over (a protocol error: take the output, which may hold a GOAWAY, then close). */
TG_MUST_USE int tg_grpc_recv(struct tg_grpc *g, const void *data, size_t len, char *err);

/* What the session wants sent now, in one malloc'd buffer the caller frees (*len 0 and *out
 * NULL when nothing). 0, or a negative code with err. */
TG_MUST_USE int tg_grpc_take_output(struct tg_grpc *g, uint8_t **out, size_t *len, char *err);

/* false once the session neither reads nor writes any more (GOAWAY, or the call is over
 * and nothing is left to send): the caller closes the connection. */
bool tg_grpc_alive(const struct tg_grpc *g);

/* true once on_end has run. */
bool tg_grpc_ended(const struct tg_grpc *g);

#endif

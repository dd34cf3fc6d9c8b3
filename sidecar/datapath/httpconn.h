/* The data path of an inbound protocol: http port (see http.h for the parsing).
 *
 * Caller -> app: each request head is parsed from the direction's plaintext buffer, decided
 * (authorization rules with HTTP conditions: 403; requests_per_second: 429), rewritten (the
 * caller's x-forwarded-client-cert / Client-Cert copies removed, ours added) into the
 * connection's output buffer, and its body copied after it as its framing says; then the
 * next pipelined request. A malformed request is answered 400 (414, 431, 505) and the
 * connection closed: the app sees exactly the requests parsed here.
 *
 * App -> caller: bytes pass unchanged; their framing is followed so that the sidecar knows
 * where each response ends. A request the sidecar answers itself while earlier requests are
 * still with the app waits (and reading further requests stops) until their responses are
 * complete, so responses never interleave. A 101 to an upgrade, or a 2xx to CONNECT, turns
 * both directions into a byte pipe.
 *
 * One access-log line per request. Everything runs on the connection's worker loop. */
#ifndef TOLLGATE_HTTPCONN_H
#define TOLLGATE_HTTPCONN_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

/* Makes c->http for a connection of a protocol: http listener (c->l->http set). 0 or
 * TG_ENOMEM. */
TG_MUST_USE int tg_http_conn_new(struct tg_conn *c);

/* At the connection's end: logs the requests still waiting for a response (status 0), gives
 * the buffer back and frees c->http. NULL c->http is fine. */
void tg_http_conn_free(struct tg_conn *c);

/* What is written to the app (the upstream side's wbuf). */
struct tg_buf *tg_http_conn_out(struct tg_conn *c);

/* pipe.c, on every round: moves what can move from the caller's plaintext to the app. */
void tg_http_conn_progress(struct tg_conn *c);

/* pipe.c: n bytes from the app were just appended to dir[1]'s buffer at p. */
void tg_http_conn_app_bytes(struct tg_conn *c, char *p, size_t n);

/* pipe.c, when idle: gives the output buffer back when it is empty. */
void tg_http_conn_release(struct tg_conn *c);

#endif

/* The admin HTTP server that both binaries run: the sidecar's admin endpoint (admin.h) and
 * tollgate-cp's (controlplane/cp_admin.h) are a table of routes each over this one server.
 * HTTP/1.1, one request per connection (Connection: close), on the loop given; callbacks
 * run on that loop, one at a time, and must not block it.
 *
 * Requests: the head is parsed by tg_adminreq_parse (adminreq.h); no body is read. A route
 * matches the path exactly (the query is ignored). Answers of the server itself:
 *   400 malformed head, or the client half-closed before the head ended
 *   403 a local-only route asked by a non-loopback peer or by a browser (the reason in the
 *       body; a warn line "admin: refused POST /drain from 10.0.0.5:4711: <reason>", at most
 *       20 such lines per 10 s, then one line counting those not written)
 *   404 no route; 405 with Allow when the route does not take the method (HEAD answers as
 *       GET without the body wherever the route allows HEAD)
 *   408 the head did not arrive within the head timeout
 *   431 the head is over head_max bytes
 * Bodies end with a newline; every answer has Cache-Control: no-store.
 *
 * Slots (issue 12 item 8): a client that connects and sends nothing, or a byte a second,
 * must not keep the probes out. So: the whole head must arrive within TG_ADMINSRV_HEAD_MS
 * of the accept (408, then closed); at most TG_ADMINSRV_MAX_CONNS connections are open and
 * at most TG_ADMINSRV_MAX_PER_PEER from one address; a new connection always gets a slot:
 * over the per-address cap the oldest connection of that address gives way, over the total
 * cap the oldest of the address holding the most connections does (closed without an
 * answer). A probe is answered as soon as its head is read, within one loop turn of its
 * accept, so only a flood of new connections between its accept and its read, from its own
 * address or from more than TG_ADMINSRV_MAX_CONNS / TG_ADMINSRV_MAX_PER_PEER addresses,
 * could push it out. After an answer our side is shut down and what the client still sends
 * is read and dropped for up to TG_ADMINSRV_LINGER_MS, so a close with unread bytes does not
 * reset the connection before the client has read the answer. */
#ifndef TOLLGATE_ADMINSRV_H
#define TOLLGATE_ADMINSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tollgate/adminreq.h"
#include "tollgate/config.h"
#include "tollgate/err.h"

#define TG_ADMINSRV_HEAD_MAX 8192  /* default head_max: request line and fields, blank line */
#define TG_ADMINSRV_MAX_CONNS 64   /* connections open at once */
#define TG_ADMINSRV_MAX_PER_PEER 8 /* from one IP address (a v4-mapped one counts as IPv4) */
#define TG_ADMINSRV_HEAD_MS 2000   /* from the accept to the end of the head */
#define TG_ADMINSRV_LINGER_MS 2000 /* after the answer: the client's leftover bytes dropped */

enum tg_adminsrv_access {
    TG_ADMINSRV_ANYONE, /* probes, metrics */
    TG_ADMINSRV_LOCAL,  /* loopback peers, not from a browser (tg_adminreq_refusal) */
};

struct tg_adminsrv_reply {
    int status;       /* 200, 500, 501, 503 ... (the reason phrase is the server's) */
    const char *type; /* Content-Type; NULL: text/plain; charset=utf-8 */
    const char *body; /* NULL with len 0: no body */
    size_t len;
    bool owned; /* body is malloc'd and now the server's; else it must be static */
};

/* A request answered later (a route's serve_async): the connection waits for it. */
struct tg_adminsrv_pending;

struct tg_adminsrv_route {
    const char *path;  /* "/live"; with prefix, "/app-health/" matches what starts with it */
    const char *allow; /* the methods, "GET, HEAD" or "POST": also the Allow of a 405 */
    enum tg_adminsrv_access access;
    /* Fills *out (zeroed before the call). May call tg_adminsrv_stop(); the answer is then
     * dropped (an owned body is still freed). */
    void (*serve)(void *arg, struct tg_adminsrv_reply *out);
    bool prefix;
    /* Instead of serve (NULL otherwise): starts the answer to path (path_len bytes, without
     * the query, valid during the call) and must end it with exactly one tg_adminsrv_answer(p,
     * ...), on the loop, within a bounded time (its own timeout): the connection and the
     * server wait for it (the head deadline no longer runs), even once the client has gone or
     * tg_adminsrv_stop was called. */
    void (*serve_async)(void *arg, const char *path, size_t path_len,
                        struct tg_adminsrv_pending *p);
};

/* In serve_async, during the call: the whole request head as parsed (method, query...). */
const struct tg_adminreq *tg_adminsrv_request(const struct tg_adminsrv_pending *p);

/* Ends a pending request with r (as serve fills it; an owned body becomes the server's). */
void tg_adminsrv_answer(struct tg_adminsrv_pending *p, const struct tg_adminsrv_reply *r);

struct tg_adminsrv_cfg {
    const char *name;                       /* "admin": starts log lines and messages */
    const struct tg_adminsrv_route *routes; /* borrowed: must outlive the server */
    size_t n_routes;
    void *arg;       /* passed to serve and on_closed; borrowed */
    size_t head_max; /* 0: TG_ADMINSRV_HEAD_MAX */
    /* Runs once the server has stopped and freed itself (after tg_adminsrv_stop, or after
     * a failed start); may be NULL. */
    void (*on_closed)(void *arg);
};

struct tg_adminsrv;

/* Binds addr and starts serving; *out is the caller's until tg_adminsrv_stop(). cfg is
 * copied. On failure returns a negative code with err set ("admin 127.0.0.1:15000: address
 * already in use") and *out untouched; on_closed then runs too: from the loop when a
 * listener had been made (the loop must run on), else before this returns. */
TG_MUST_USE int tg_adminsrv_start(uv_loop_t *loop, const struct tg_addr *addr,
                                  const struct tg_adminsrv_cfg *cfg, struct tg_adminsrv **out,
                                  char *err);

/* Closes the listener and every connection (requests in flight get no answer); frees s and
 * calls on_closed once the last handle has closed, so the caller drops its pointer now. A
 * NULL s does nothing; a second call does nothing. May be called from serve. */
void tg_adminsrv_stop(struct tg_adminsrv *s);

/* The port actually bound (useful with port 0). */
int tg_adminsrv_port(const struct tg_adminsrv *s);

/* The head timeout for connections accepted from now on (tests use a short one). */
void tg_adminsrv_set_timeout(struct tg_adminsrv *s, uint64_t ms);

#endif

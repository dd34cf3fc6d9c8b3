/* The admin HTTP endpoint (HTTP/1.1, one request per connection, Connection: close):
 *   GET /live         200 "live"
 *   GET /ready        200 "ready" or 503 "not ready"
 *   GET /stats        200 Prometheus text
 *   GET /config_dump  200 JSON (never a private key)
 *   POST /drain       200 "draining"
 * Anything else: 404 (405 for a known path with the wrong method); a malformed or oversize
 * request (head > 8 KiB) gets 400 and is closed. HEAD is accepted wherever GET is. Bodies
 * end with a newline ("live\n"). Runs on the loop given (the control thread's); the
 * callbacks run on that loop, one at a time, and must not block it.
 *
 * Limits: at most TG_ADMIN_MAX_CONNS connections at once (more are accepted and closed at
 * once); a connection that has not sent its whole head within the timeout (default
 * TG_ADMIN_TIMEOUT_MS) is closed without an answer. After the response our side is shut
 * down and what the client still sends is read and dropped for a short while, so a close
 * with unread bytes never resets the connection before the client has read the answer. */
#ifndef TOLLGATE_ADMIN_H
#define TOLLGATE_ADMIN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tollgate/config.h"

#define TG_ADMIN_HEAD_MAX 8192    /* bytes: request line and headers, blank line included */
#define TG_ADMIN_MAX_CONNS 64     /* admin connections open at once */
#define TG_ADMIN_TIMEOUT_MS 10000 /* to receive a whole request head */

struct tg_admin_ops {
    void *arg;
    bool (*ready)(void *arg);
    /* Return a malloc'd body (the admin frees it) and its length; NULL -> 500. */
    char *(*stats)(void *arg, size_t *len);
    char *(*config_dump)(void *arg, size_t *len);
    /* Starts draining; NULL when not supported (then 501). */
    void (*drain)(void *arg);
};

struct tg_admin;

/* Binds addr and starts serving; *out is owned by the caller until tg_admin_stop(). ops is
 * copied; ops->arg is borrowed and must outlive the admin. Any callback may be NULL: ready
 * then counts as ready, stats and config_dump as 501. On failure returns a negative code
 * with err set ("admin 127.0.0.1:15000: address already in use") and *out untouched; a
 * listener already made is closed, so the loop must still run for it to be freed. */
TG_MUST_USE int tg_admin_start(uv_loop_t *loop, const struct tg_addr *addr,
                               const struct tg_admin_ops *ops, struct tg_admin **out, char *err);

/* Closes the listener and every open admin connection (requests in flight get no answer);
 * frees a once the last handle has closed (the loop must run on), so the caller drops its
 * pointer now. A NULL a does nothing. May be called from an ops callback. */
void tg_admin_stop(struct tg_admin *a);

/* The port actually bound (useful with port 0). */
int tg_admin_port(const struct tg_admin *a);

/* Sets the head timeout for connections accepted from now on (tests use a short one). */
void tg_admin_set_timeout(struct tg_admin *a, uint64_t ms);

#endif

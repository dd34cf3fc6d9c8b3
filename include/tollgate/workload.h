/* The sidecar's client of the SPIFFE Workload API (identity.workload_api): one
 * FetchX509SVID call (grpc.h) on the Unix socket of a SPIRE agent or any Workload API
 * server, on the control thread's loop. Sends the `workload.spiffe.io: true` metadata the
 * spec requires; each answer is decoded (tg_wl_decode), its SVID picked (the configured
 * SPIFFE ID, or the first), converted (svid.h) and handed to on_svid, which builds a
 * generation from it or refuses it (the last good one stays; the refusal is logged and
 * counted here). A call that ends, a connection that fails or closes, or a protocol error
 * ends the connection and it reconnects after a jittered backoff (0.5 s to 4 s: the agent is
 * local). Losing the connection changes nothing else: the caller serves on with what it
 * holds until it expires.
 *
 * protobuf-c's workload messages stay inside workload.c. Loop thread only. */
#ifndef TOLLGATE_WORKLOAD_H
#define TOLLGATE_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tollgate/err.h"
#include "tollgate/svid.h"

#define TG_WL_MAX_MESSAGE (4 << 20) /* bytes of one X509SVIDResponse (gRPC's default) */
#define TG_WL_PATH "/SpiffeWorkloadAPI/FetchX509SVID"

struct tg_wl_cfg {
    const char *socket;    /* the Unix socket's path */
    const char *spiffe_id; /* the SVID to take among several; NULL: the first */
};

struct tg_wl_ops {
    /* A new SVID (s is the caller's now; it frees it with tg_svid_free whatever it returns).
     * Return 0 once it is in use, or negative with a one-line err (logged, counted as
     * refused; the caller keeps what it had). */
    int (*on_svid)(void *arg, struct tg_svid *s, char *err);
    /* An answer refused before it came to on_svid (it does not decode, names no usable
     * SVID); logged here already. May be NULL. */
    void (*on_refused)(void *arg, const char *why);
    void *arg;
};

struct tg_wl_stats {
    uint64_t connects;   /* calls answered with HTTP 200 */
    uint64_t reconnects; /* connection attempts after the first */
    uint64_t updates;    /* SVIDs accepted */
    uint64_t refused;    /* answers or SVIDs refused */
    bool connected;
    char last_error[TG_ERRLEN];
};

struct tg_wl_client;

/* Copies cfg. Nothing is started. 0, or negative with err. */
TG_MUST_USE int tg_wl_client_new(uv_loop_t *loop, const struct tg_wl_cfg *cfg,
                                 const struct tg_wl_ops *ops, struct tg_wl_client **out, char *err);
/* Connects now. */
void tg_wl_client_start(struct tg_wl_client *c);
/* Ends the connection and the timer; c is freed once its handles have closed. No callback
 * of ops runs after this call. */
void tg_wl_client_close(struct tg_wl_client *c);
const struct tg_wl_stats *tg_wl_client_stats(const struct tg_wl_client *c);

/* An X509SVIDResponse (msg, len bytes) into the SVID to use: the one whose spiffe_id is
 * want (NULL: the first), with the response's federated bundles and CRLs. 0, or a negative
 * code with a one-line err (a message that does not decode, no SVID, none with that ID, a
 * malformed part). Pure but for wolfSSL's PEM encoding; exposed for tests and fuzzing. */
TG_MUST_USE int tg_wl_decode(const uint8_t *msg, size_t len, const char *want, struct tg_svid **out,
                             char *err);

#endif

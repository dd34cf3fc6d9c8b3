/* The sidecar's admin endpoint: its pages as routes of the admin server both binaries run
 * (adminsrv.h, which says how requests are read, limited and refused):
 *   GET /live         200 "live" while the process runs (also while it drains)
 *   GET /ready        200 "ready" or 503 "not ready"
 *   GET /stats        200 Prometheus text
 *   GET /config_dump  200 JSON (never a private key)       loopback peers, not a browser
 *   POST /drain       200 "draining"                        loopback peers, not a browser
 * HEAD is accepted wherever GET is. Anyone who reaches the port may probe and scrape; the
 * two marked paths answer only loopback peers and never a browser's request (403 with the
 * reason, adminreq.h), whatever address the endpoint binds: a pod's admin port listens on
 * the pod IP for the kubelet, and a page in a browser on a VM can reach 127.0.0.1. Runs on
 * the loop given (the control thread's); the callbacks run on that loop. */
#ifndef TOLLGATE_ADMIN_H
#define TOLLGATE_ADMIN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tollgate/adminsrv.h"
#include "tollgate/config.h"

#define TG_ADMIN_HEAD_MAX TG_ADMINSRV_HEAD_MAX

struct tg_admin_ops {
    void *arg;
    bool (*ready)(void *arg);
    /* Return a malloc'd body (the admin frees it) and its length; NULL -> 500. */
    char *(*stats)(void *arg, size_t *len);
    char *(*config_dump)(void *arg, size_t *len);
    /* Starts draining; NULL when not supported (then 501). */
    void (*drain)(void *arg);
    /* The app's probes for GET /app-health/... (appprobe.h); borrowed, may be NULL (404). */
    const struct tg_appprobes *probes;
};

/* Which pages a listener serves. The sidecar runs one server per configured address: admin
 * (all of the above), and in a pod also health (config `health:`, the kubelet's port:
 * GET /live, /ready and /app-health/<container>/<livez|readyz|startupz>, the app's own
 * probe run locally, appprobe.h) and metrics (config `metrics:`, Prometheus' port: GET
 * /metrics and /stats/prometheus, the text of /stats). The same server code, another
 * table of routes. */
enum tg_admin_role { TG_ADMIN_FULL, TG_ADMIN_HEALTH, TG_ADMIN_METRICS };

struct tg_admin;

/* Binds addr and starts serving; *out is owned by the caller until tg_admin_stop(). ops is
 * copied; ops->arg is borrowed and must outlive the admin. Any callback may be NULL: ready
 * then counts as ready, stats and config_dump as 501. On failure returns a negative code
 * with err set ("admin 127.0.0.1:15000: address already in use") and *out untouched; a
 * listener already made is closed, so the loop must still run for it to be freed. */
TG_MUST_USE int tg_admin_start(uv_loop_t *loop, const struct tg_addr *addr,
                               const struct tg_admin_ops *ops, struct tg_admin **out, char *err);

/* tg_admin_start for one role's pages ("health 0.0.0.0:15021: ..." in err). */
TG_MUST_USE int tg_admin_start_role(uv_loop_t *loop, const struct tg_addr *addr,
                                    const struct tg_admin_ops *ops, enum tg_admin_role role,
                                    struct tg_admin **out, char *err);

/* Closes the listener and every open admin connection (requests in flight get no answer);
 * frees a once the last handle has closed (the loop must run on), so the caller drops its
 * pointer now. A NULL a does nothing. May be called from an ops callback. */
void tg_admin_stop(struct tg_admin *a);

/* The port actually bound (useful with port 0). */
int tg_admin_port(const struct tg_admin *a);

/* Sets the head timeout for connections accepted from now on (tests use a short one). */
void tg_admin_set_timeout(struct tg_admin *a, uint64_t ms);

#endif

/* tollgate-cp's admin endpoint (cp.yaml "admin: IP:PORT"): a small plain-HTTP/1.1 server on
 * the control plane's loop, for probes and scraping, not for the world:
 *   GET /healthz  200 "ok" while the state is loaded and the stream listener is bound;
 *                 503 once the control plane is shutting down
 *   GET /stats    counters in Prometheus text (streams, Hellos refused, certificates
 *                 issued, CSRs refused, pushes, ACKs, NACKs, reloads)
 * HEAD works as GET without the body; other methods get 405, other paths 404. One request
 * per connection (Connection: close). A request head is at most 4 KiB (else 431); a client
 * that has not sent its whole head within 5 s is closed (408); at most 64 clients at a time,
 * more are closed at once. Loop thread only. */
#ifndef TOLLGATE_CP_ADMIN_H
#define TOLLGATE_CP_ADMIN_H

#include <uv.h>

#include "tollgate/config.h"
#include "tollgate/err.h"

#define TG_CP_ADMIN_HEAD_MAX 4096
#define TG_CP_ADMIN_TIMEOUT_MS 5000
#define TG_CP_ADMIN_MAX_CLIENTS 64

struct tg_cp_server;
struct tg_cp_admin;

/* Listens on addr for srv (borrowed: srv outlives the admin endpoint). 0 with *out, or a
 * negative libuv code with err; on failure whatever was opened is closed and on_closed runs
 * as it does after tg_cp_admin_close. */
TG_MUST_USE int tg_cp_admin_new(uv_loop_t *loop, const struct tg_addr *addr,
                                struct tg_cp_server *srv, void (*on_closed)(void *arg), void *arg,
                                struct tg_cp_admin **out, char *err);
/* Closes the listener and every client; on_closed(arg) (given to _new) runs once all is
 * closed, then a is freed. */
void tg_cp_admin_close(struct tg_cp_admin *a);
/* The port bound (port 0 in the file: the one the kernel picked). */
int tg_cp_admin_port(const struct tg_cp_admin *a);

#endif

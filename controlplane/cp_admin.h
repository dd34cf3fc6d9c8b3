/* tollgate-cp's admin endpoint (cp.yaml "admin: IP:PORT"): its pages as routes of the admin
 * server both binaries run (tollgate/adminsrv.h, which says how requests are read, limited
 * and refused), for probes and scraping:
 *   GET /healthz  200 "ok" while the state is loaded and the stream listener is bound;
 *                 503 once the control plane is shutting down
 *   GET /stats    counters in Prometheus text (streams, Hellos refused, certificates
 *                 issued, CSRs refused, pushes, ACKs, NACKs, reloads)
 * HEAD works as GET without the body; other methods get 405, other paths 404. One request
 * per connection (Connection: close). A request head is at most 4 KiB (else 431); a client
 * that has not sent its whole head within TG_ADMINSRV_HEAD_MS is answered 408 and closed; at
 * most TG_ADMINSRV_MAX_CONNS clients at a time and TG_ADMINSRV_MAX_PER_PEER from one
 * address, the oldest giving way to a new one. Loop thread only. */
#ifndef TOLLGATE_CP_ADMIN_H
#define TOLLGATE_CP_ADMIN_H

#include <uv.h>

#include "tollgate/adminsrv.h"
#include "tollgate/config.h"
#include "tollgate/err.h"

#define TG_CP_ADMIN_HEAD_MAX 4096

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

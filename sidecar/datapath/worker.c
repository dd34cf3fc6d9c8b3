/* Worker threads: loop, listeners, generation mailbox, drain and stop. */
#include "tollgate/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "conn.h"
#include "tunnel.h"
#include "tollgate/log.h"
#include "tollgate/list.h"

/* Out of file descriptors, a listener is closed for this long, then bound again. */
#define ACCEPT_PAUSE_MS 250

static void on_accept(uv_stream_t *server, int status);

static void on_listener_closed(uv_handle_t *h)
{
    struct tg_worker *w = h->loop->data;
    size_t i = (size_t)((uv_tcp_t *)h - w->listeners);

    w->open_listeners--;
    if (w->pause[i] == TG_PAUSING)
        w->pause[i] = TG_PAUSED; /* its handle may be made again */
}

/* Listener i's socket of this worker, bound and listening. 0 or an error with err. */
static int bind_listener(struct tg_worker *w, size_t i, char *err)
{
    int rc =
        tg_listener_bind(&w->loop, &w->listeners[i], w->rt->listeners[i].listen, on_accept, err);

    if (rc < 0)
        return rc;
    w->listeners[i].data = tg_unconst(&w->rt->listeners[i]);
    w->open_listeners++;
    return 0;
}

/* Binds the paused listeners again, or tries later while descriptors are still short; never
 * once the worker drains or stops. */
static void on_rebind(uv_timer_t *t)
{
    struct tg_worker *w = t->data;
    bool again = false;

    if (w->draining || atomic_load(&w->stop_requested))
        return;
    for (size_t i = 0; i < w->rt->n_listeners; i++) {
        char err[TG_ERRLEN];

        if (w->pause[i] == TG_PAUSING) {
            again = true;
            continue;
        }
        if (w->pause[i] != TG_PAUSED)
            continue;
        if (bind_listener(w, i, err) < 0) {
            again = true;
            continue;
        }
        w->pause[i] = TG_LISTENING;
        tg_info("%s: accepting again", w->rt->listeners[i].name);
    }
    if (again)
        uv_timer_start(&w->rebind, on_rebind, ACCEPT_PAUSE_MS, 0);
}

/* Out of file descriptors (EMFILE, ENFILE, once libuv's reserve descriptor is spent): libuv
 * would call on_accept with the error again at once for as long as connections wait in the
 * backlog, a busy loop. The listener is closed instead, which refuses those connections (the
 * other workers' listeners on the port take new ones), and bound again ACCEPT_PAUSE_MS later,
 * and so on until a descriptor is free. */
static void pause_listener(struct tg_worker *w, uv_stream_t *server, int status)
{
    size_t i = (size_t)((uv_tcp_t *)server - w->listeners);
    const struct tg_listener_def *l = server->data;

    tg_warn("%s: accept: %s: not accepting for %d ms", l->name, uv_strerror(status),
            ACCEPT_PAUSE_MS);
    w->pause[i] = TG_PAUSING;
    uv_close((uv_handle_t *)server, on_listener_closed);
    if (!uv_is_active((uv_handle_t *)&w->rebind))
        uv_timer_start(&w->rebind, on_rebind, ACCEPT_PAUSE_MS, 0);
}

static void close_listeners(struct tg_worker *w)
{
    for (size_t i = 0; i < w->rt->n_listeners; i++)
        if (!uv_is_closing((uv_handle_t *)&w->listeners[i]))
            uv_close((uv_handle_t *)&w->listeners[i], on_listener_closed);
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Whether the new generation's CRLs list a certificate of the peer's chain (revocation.h);
 * counted as a revocation, why says which. */
static bool crl_revoked(struct tg_worker *w, struct tg_conn *c, char *why, size_t cap)
{
    char what[160];

    if (c->plain || c->tls == NULL ||
        tg_tls_peer_revoked(tg_tls_peer(c->tls), w->gen->identity, what, sizeof(what)) !=
            TG_REV_REVOKED)
        return false;
    tg_counter_add(&c->stats->policy_revoked, 1);
    snprintf(why, cap, "revoked: %s", what);
    return true;
}

/* A new generation that refuses a peer (revoked by serial, fingerprint or a CRL, or denied
 * by the rules) closes that peer's live connections too, when the generation asks for it
 * (authorization.close_denied); a plain-text caller is decided again as one without an
 * identity. */
static void recheck_conns(struct tg_worker *w)
{
    char why[240];

    for (struct tg_conn *c = w->conns; c != NULL; c = c->next) {
        if (!c->l->inbound || !(c->handshake_done || c->plain))
            continue;
        if (c->closing) { /* a closed tunnel's streams still writing to their apps, too */
            if (tg_tunnel_lingers(c) && (crl_revoked(w, c, why, sizeof(why)) ||
                                         !tg_tunnel_recheck(c, w->gen->policy, why, sizeof(why))))
                tg_tunnel_end(c, "refused", why);
            continue;
        }
        /* a tunnel's streams were decided by their own ports: only a revoked peer ends the
         * tunnel here; its streams end with it, and new ones are decided afresh */
        if (crl_revoked(w, c, why, sizeof(why)) ||
            (c->tunnel == NULL && !tg_conn_authorized(c, w->gen->policy, why, sizeof(why))) ||
            (c->tunnel != NULL && !tg_tunnel_recheck(c, w->gen->policy, why, sizeof(why)))) {
            tg_info("%s: closing live connection of %s: %s", c->l->name,
                    c->plain ? "a plain-text caller" : tg_tls_peer(c->tls)->id, why);
            tg_conn_close(c, "refused", "%s (live connection closed by a new generation)", why);
        }
    }
}

static void drain_tunnels(struct tg_worker *w)
{
    for (struct tg_conn *c = w->conns; c != NULL; c = c->next)
        tg_tunnel_drain(c);
}

void tg_worker_adopt(struct tg_worker *w)
{
    struct tg_gen *next;

    /* a plain load first: on every accept, the mailbox is nearly always empty */
    if (atomic_load_explicit(&w->mailbox, memory_order_acquire) == NULL)
        return;
    if ((next = atomic_exchange(&w->mailbox, NULL)) == NULL)
        return; /* wake-ups coalesce; only the newest generation matters */
    tg_gen_unref(w->gen);
    w->gen = next;
    if (next->close_denied)
        recheck_conns(w);
    drain_tunnels(w); /* new streams go over connections made with the new generation */
}

static void on_accept(uv_stream_t *server, int status)
{
    struct tg_worker *w = server->loop->data;
    const struct tg_listener_def *l = server->data;

    if (status == UV_EMFILE || status == UV_ENFILE) {
        pause_listener(w, server, status);
        return;
    }
    if (status < 0) {
        tg_warn("%s: accept: %s", l->name, uv_strerror(status));
        return;
    }
    /* the loop may see the connection before the wake-up that a reload sent first */
    tg_worker_adopt(w);
    tg_conn_accept(w, l, server);
}

static void on_wake(uv_async_t *a)
{
    struct tg_worker *w = a->data;

    atomic_fetch_add_explicit(&w->beats, 1, memory_order_relaxed);
    tg_worker_adopt(w);
    if (atomic_load(&w->drain_requested) && !w->draining) {
        w->draining = true;
        close_listeners(w);
        drain_tunnels(w);
    }
    if (atomic_load(&w->stop_requested)) {
        close_listeners(w);
        /* a closed connection leaves the list only in its last close callback */
        for (struct tg_conn *c = w->conns; c != NULL; c = c->next) {
            /* a closed tunnel's streams still writing to their apps */
            tg_tunnel_end(c, "timeout",
                          "drain deadline: closed at shutdown before its app took all");
            tg_conn_close(c, "timeout", "drain deadline: closed at shutdown");
        }
        uv_close((uv_handle_t *)&w->wake, NULL);
    }
}

static void on_trim(uv_timer_t *t)
{
    struct tg_worker *w = t->data;

    tg_pool_trim(&w->pool);
    tg_pool_trim(&w->wire);
    tg_pool_trim(&w->wide);
}

void tg_worker_conn_added(struct tg_worker *w, struct tg_conn *c)
{
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    atomic_fetch_add_explicit(&w->n_conns, 1, memory_order_relaxed);
}

void tg_worker_conn_removed(struct tg_worker *w, struct tg_conn *c)
{
    TG_DLIST_UNLINK(&w->conns, TG_DLIST_NO_TAIL, c, prev, next);
    atomic_fetch_sub_explicit(&w->n_conns, 1, memory_order_relaxed);
}

static void run(void *arg)
{
    struct tg_worker *w = arg;
    char name[16]; /* the kernel's limit: TASK_COMM_LEN */

    /* "tg-worker-N" in top -H, ps -T and /proc/PID/task/TID/comm */
    snprintf(name, sizeof(name), "tg-worker-%u", w->index);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* stop: anything still open (none expected) is closed so the loop can end */
    uv_walk(&w->loop, on_walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    tg_tunnel_pool_free(w);
}

int tg_worker_start(struct tg_worker *w, unsigned index, const struct tg_runtime *rt,
                    struct tg_gen *gen, char *err)
{
    size_t block = rt->cfg->buffer_size, window;
    int rc;

    memset(w, 0, sizeof(*w));
    w->index = index;
    w->rt = rt;
    atomic_init(&w->mailbox, NULL);
    atomic_init(&w->drain_requested, false);
    atomic_init(&w->stop_requested, false);
    atomic_init(&w->n_conns, 0);
    atomic_init(&w->beats, 0);
    /* a TLS record and its overhead must fit any buffer */
    tg_pool_init(&w->pool, block < 20 * 1024 ? 20 * 1024 : block, 16);
    /* a buffer of app bytes as HTTP/2 DATA frames (a 9-byte header per 16 KiB at most), then
     * as TLS records: sized for the pool's buffer, 65,536 bytes left as four records and
     * a fifth of 110 bytes, a second write, and a tunnel's frames as a sixth of 36 */
    tg_pool_init(&w->wire,
                 tg_tls_write_room(w->pool.block_size + (w->pool.block_size / 16384 + 1) * 9), 16);
    window = tg_worker_tunnel_window(w);
    tg_pool_init(&w->wide,
                 window > TG_TUNNEL_WINDOW_MAX_BYTES ? window : TG_TUNNEL_WINDOW_MAX_BYTES, 4);
    /* keep-alive traffic takes a buffer per request and gives it back: the pools keep what
     * a second's traffic needed, and on_trim returns the rest */
    tg_pool_keep_peak(&w->pool);
    tg_pool_keep_peak(&w->wire);
    tg_pool_keep_peak(&w->wide);
    if ((rc = uv_loop_init(&w->loop)) < 0)
        return tg_err_set(err, rc, "worker %u: loop: %s", index, uv_strerror(rc));
    w->loop.data = w;
    w->listeners = calloc(rt->n_listeners, sizeof(*w->listeners));
    w->pause = calloc(rt->n_listeners, sizeof(*w->pause));
    if (w->listeners == NULL || w->pause == NULL || tg_tls_cache_new(256, &w->tickets) < 0) {
        rc = tg_err_set(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < rt->n_listeners; i++) {
        if ((rc = bind_listener(w, i, err)) < 0)
            goto fail;
    }
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->trim);
    w->trim.data = w;
    uv_timer_start(&w->trim, on_trim, 1000, 1000);
    uv_unref((uv_handle_t *)&w->trim); /* the loop ends without waiting for it */
    uv_timer_init(&w->loop, &w->rebind);
    w->rebind.data = w;
    uv_unref((uv_handle_t *)&w->rebind);
    w->gen = tg_gen_ref(gen);
    if ((rc = uv_thread_create(&w->thread, run, w)) < 0) {
        tg_err_set(err, rc, "worker %u: thread: %s", index, uv_strerror(rc));
        tg_gen_unref(w->gen);
        w->gen = NULL;
        uv_close((uv_handle_t *)&w->wake, NULL);
        goto fail;
    }
    return 0;
fail:
    uv_walk(&w->loop, on_walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    free(w->listeners);
    free(w->pause);
    w->pause = NULL;
    w->listeners = NULL;
    tg_tls_cache_free(w->tickets);
    w->tickets = NULL;
    return rc;
}

void tg_worker_publish(struct tg_worker *w, struct tg_gen *g)
{
    tg_gen_unref(atomic_exchange(&w->mailbox, tg_gen_ref(g)));
    uv_async_send(&w->wake);
}

void tg_worker_ping(struct tg_worker *w)
{
    uv_async_send(&w->wake);
}

void tg_worker_drain(struct tg_worker *w)
{
    atomic_store(&w->drain_requested, true);
    uv_async_send(&w->wake);
}

void tg_worker_stop(struct tg_worker *w)
{
    atomic_store(&w->stop_requested, true);
    uv_async_send(&w->wake);
}

void tg_worker_join(struct tg_worker *w)
{
    uv_thread_join(&w->thread);
    tg_gen_unref(atomic_exchange(&w->mailbox, NULL));
    tg_gen_unref(w->gen);
    w->gen = NULL;
    if (uv_loop_close(&w->loop) != 0)
        tg_warn("worker %u: loop closed with handles open", w->index);
    tg_tls_cache_free(w->tickets);
    w->tickets = NULL;
    tg_pool_cleanup(&w->pool);
    tg_pool_cleanup(&w->wire);
    tg_pool_cleanup(&w->wide);
    free(w->listeners);
    free(w->pause);
    w->pause = NULL;
    w->listeners = NULL;
}

/* The outbound end of tunnels: each worker's pool, and app connections carried as CONNECT
 * streams (tunnel.h). */
#include "tunnel.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "tollgate/h2tun.h"
#include "tollgate/list.h"
#include "tollgate/log.h"

/* A sidecar that did not choose h2 is asked again after this long (it may be upgraded, or
 * its listener given tunnels: true). */
#define MISS_TTL_MS 30000
#define MISSES 64
/* A stream the server never took (GOAWAY, or its tunnel failed before answering) is tried
 * again on another tunnel, this many times in all. */
#define MAX_TRIES 3

/* One app connection's stream. It lives until both the app connection has left it and the
 * session has said the stream is gone (or never opened it), so the session's callbacks never
 * see freed memory. */
struct tg_ostream {
    struct tg_tunnel *tun;
    struct tg_conn *app; /* NULL once the app connection has left */
    int32_t sid;         /* 0: waiting for the tunnel's handshake */
    bool answered;       /* 200 came: bytes flow both ways */
    bool h2_gone;        /* the session is done with the stream */
    bool deferred;       /* on_read said TG_EAGAIN: resume when the app has bytes or its end */
    bool poke;           /* its END_STREAM went out: the app connection may be done */
    uint64_t delivered;  /* payload the server sent (into app->dir[1].buf) */
    uint64_t given;      /* ... given back to it as window */
    struct tg_ostream *prev, *next;
};

/* A destination whose sidecar did not choose h2. */
struct miss {
    const struct tg_listener_def *l;
    struct sockaddr_storage addr;
    uint64_t until; /* uv_now(); 0: a free slot */
};

/* The worker's pool: its tunnels, and the sidecars that offered none. */
struct tg_tunnels {
    struct tg_tunnel *list;
    struct miss misses[MISSES];
    size_t next_miss; /* the slot a new miss takes (the oldest) */
};

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

/* The same sidecar: for a transparent listener, the same host (any port: the tunnel's
 * streams name theirs); for an explicit one, the same address and port. */
static bool same_sidecar(const struct tg_listener_def *l, const struct sockaddr_storage *a,
                         const struct sockaddr_storage *b)
{
    return (l->transparent || port_of(a) == port_of(b)) && tg_tunnel_same_host(a, b);
}

/* The pool's key: sidecar address, expected identities (by value: a mesh table has a row,
 * and so a list, per port of a pod), listener and generation. */
static bool same_key(const struct tg_conn *t, const struct tg_conn *app)
{
    return t->gen == app->gen && t->l == app->l &&
           (t->rule.ids == app->rule.ids || tg_strlist_equal(t->rule.ids, app->rule.ids)) &&
           same_sidecar(app->l, &t->upstream.ss, &app->upstream.ss);
}

static struct tg_tunnels *pool_of(struct tg_worker *w)
{
    if (w->tunnels == NULL)
        w->tunnels = calloc(1, sizeof(*w->tunnels));
    return w->tunnels;
}

static bool missed(struct tg_tunnels *p, const struct tg_conn *app)
{
    uint64_t now = uv_now(&app->w->loop);

    for (size_t i = 0; i < MISSES; i++) {
        const struct miss *m = &p->misses[i];

        if (m->until > now && m->l == app->l && same_sidecar(app->l, &m->addr, &app->upstream.ss))
            return true;
    }
    return false;
}

static void remember_miss(struct tg_tunnels *p, const struct tg_conn *t)
{
    struct miss *m = &p->misses[p->next_miss];

    p->next_miss = (p->next_miss + 1) % MISSES;
    m->l = t->l;
    m->addr = t->upstream.ss;
    m->until = uv_now(&t->w->loop) + MISS_TTL_MS;
}

static unsigned capacity(const struct tg_tunnel *tun)
{
    unsigned cap = tun->c->w->rt->cfg->tunnel_pool.streams_per_connection;

    if (tun->h2 != NULL && tg_h2tun_peer_max_streams(tun->h2) < cap)
        cap = tg_h2tun_peer_max_streams(tun->h2);
    return cap;
}

static bool usable(struct tg_tunnel *tun)
{
    return !tun->retired && !tun->c->closing && !tun->ending && tun->riding < capacity(tun) &&
           (tun->h2 == NULL || tg_h2tun_can_open(tun->h2));
}

static void pool_remove(struct tg_tunnel *tun)
{
    if (!tun->in_pool)
        return;
    tun->in_pool = false;
    TG_DLIST_UNLINK(&tun->c->w->tunnels->list, TG_DLIST_NO_TAIL, tun, pool_prev, pool_next);
}

static void free_ostream(struct tg_ostream *os)
{
    TG_DLIST_UNLINK(&os->tun->ostreams, TG_DLIST_NO_TAIL, os, prev, next);
    free(os);
}

/* app stops riding os (which it still holds); os itself goes once the session is done
 * with it too. */
static void detach(struct tg_ostream *os)
{
    struct tg_tunnel *tun = os->tun;

    os->app->ostream = NULL;
    os->app = NULL;
    if (--tun->riding == 0)
        tun->idle_since = uv_now(&tun->c->w->loop);
    if (os->h2_gone || os->sid == 0 || tun->h2 == NULL)
        free_ostream(os);
}

/* ---- the stream's callbacks --------------------------------------------------------- */

static void on_response(void *arg, void *stream, int status, const char *reason)
{
    struct tg_ostream *os = stream;
    struct tg_conn *app = os->app;
    char kind[40];
    size_t k;

    (void)arg;
    if (app == NULL || app->closing)
        return;
    app->carrier = os->tun->c; /* answered: this tunnel carries app for good */
    app->carrier->open_handles++;
    if (status == 200) {
        os->answered = true;
        app->state = TG_CONN_PIPE;
        tg_conn_touch(app);
        tg_conn_arm_idle(app);
        tg_pipe_progress(app); /* the app is read from now on */
        return;
    }
    /* refused by the server's sidecar: its reason starts with the refusal's code */
    if (reason == NULL)
        reason = "no reason given";
    k = strcspn(reason, ":");
    snprintf(kind, sizeof(kind), "%.*s", (int)(k < sizeof(kind) - 1 ? k : sizeof(kind) - 1),
             reason);
    tg_counter_add(&app->stats->tunnel_streams_refused, 1);
    tg_info("%s: server %s refused a tunnel stream: %d %s", app->l->name, app->upstream.text,
            status, reason);
    tg_conn_answer_refusal(app, kind);
    tg_conn_close(app, "refused", "tunnel stream refused by the server's sidecar: %d %s", status,
                  reason);
}

static void on_data(void *arg, void *stream, const uint8_t *p, size_t n)
{
    struct tg_ostream *os = stream;
    struct tg_conn *app = os->app;
    struct tg_buf *b;

    (void)arg;
    os->delivered += n;
    if (app == NULL || app->closing) { /* nobody to give them to: the window goes back */
        tg_h2tun_consumed(os->tun->h2, os->sid, n);
        os->given += n;
        return;
    }
    b = &app->dir[1].buf;
    if (tg_buf_reserve(b, app->dir[1].pool, app->down.writing == 0) < 0 || tg_buf_room(b) < n) {
        tg_conn_close(app, "error", "no room for the server's bytes (window exceeded)");
        return;
    }
    memcpy(tg_buf_tail(b), p, n);
    tg_buf_commit(b, n);
    app->bytes_sent += n;
    tg_counter_add(&app->stats->bytes_sent, n);
    tg_conn_touch(app);
    tg_pipe_progress(app);
}

static void on_eof(void *arg, void *stream)
{
    struct tg_ostream *os = stream;

    (void)arg;
    if (os->app == NULL || os->app->closing)
        return;
    os->app->dir[1].eof = true; /* carried to the app as a FIN once its bytes are out */
    tg_pipe_progress(os->app);
}

static void on_close(void *arg, void *stream, uint32_t code)
{
    struct tg_ostream *os = stream;
    struct tg_conn *app = os->app;

    (void)arg;
    os->h2_gone = true;
    if (app == NULL) {
        free_ostream(os);
        return;
    }
    if (app->closing)
        return;
    if (!os->answered && code == TG_H2TUN_REFUSED && app->tunnel_tries < MAX_TRIES) {
        /* the server never took it (GOAWAY): nothing of the app's went out, try again */
        tg_counter_add(&app->stats->tunnel_retries, 1);
        detach(os);
        tg_tunnel_join(app);
        return;
    }
    if (code != 0) {
        tg_conn_close(app, "error", "tunnel stream reset by the server's sidecar (HTTP/2 error %u)",
                      code);
        return;
    }
    if (!os->answered) {
        tg_conn_close(app, "error", "tunnel stream ended without an answer");
        return;
    }
    tg_pipe_progress(app); /* both ends are done: the app connection may close */
}

static ssize_t on_read(void *arg, void *stream, uint8_t *dst, size_t cap, bool *eof)
{
    struct tg_ostream *os = stream;
    struct tg_conn *app = os->app;
    struct tg_dir *d;
    size_t n;

    (void)arg;
    if (app == NULL || app->closing)
        return TG_EINVAL; /* resets the stream */
    d = &app->dir[0];
    n = tg_buf_len(&d->buf);
    if (!os->answered || (n == 0 && !d->eof)) {
        os->deferred = true; /* until the answer, nothing of the app's goes out */
        return TG_EAGAIN;
    }
    if (n > 0) {
        n = n < cap ? n : cap;
        memcpy(dst, tg_buf_data(&d->buf), n);
        tg_buf_consume(&d->buf, n);
        tg_pipe_read_again(app);
        return (ssize_t)n;
    }
    *eof = true;
    d->done = true; /* END_STREAM carries the app's FIN */
    os->poke = true;
    return 0;
}

static const struct tg_h2tun_ops ops = {
    .on_response = on_response,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_close = on_close,
    .on_read = on_read,
};

/* ---- the pool ----------------------------------------------------------------------- */

static void open_stream(struct tg_ostream *os)
{
    struct tg_conn *app = os->app;
    int32_t sid = tg_h2tun_open(os->tun->h2, app->upstream.text, os);

    if (sid < 0) {
        os->h2_gone = true;
        tg_conn_close(app, "error", "tunnel to %s: no stream: %s", app->upstream.text,
                      tg_strerror(sid));
        return;
    }
    os->sid = sid;
    tg_counter_add(&app->stats->tunnel_streams, 1);
    tg_tunnel_kick(os->tun);
}

static void attach(struct tg_tunnel *tun, struct tg_conn *app)
{
    struct tg_ostream *os = calloc(1, sizeof(*os));

    if (os == NULL) {
        tg_conn_close(app, "error", "out of memory");
        return;
    }
    os->tun = tun;
    os->app = app;
    TG_DLIST_PUSH(&tun->ostreams, os, prev, next);
    tun->riding++;
    app->ostream = os;
    app->tunnel_tries++;
    app->state = TG_CONN_CONNECT;
    tg_conn_arm_timer(app, tg_conn_tunnel_wait_ms(app));
    if (tun->h2 != NULL)
        open_stream(os);
}

/* A new tunnel for app's key, app its first rider. false (app closed) when it could not
 * start. */
static bool dial(struct tg_tunnels *p, struct tg_conn *app)
{
    struct tg_tunnel *tun = calloc(1, sizeof(*tun));
    char why[TG_ERRLEN];

    if (tun == NULL) {
        tg_conn_close(app, "error", "out of memory");
        return false;
    }
    tun->outbound = true;
    if (tg_conn_dial_tunnel(app, tun, why, sizeof(why)) == NULL) {
        free(tun);
        tg_conn_close(app, "error", "tunnel to %s: %s", app->upstream.text, why);
        return false;
    }
    tun->in_pool = true;
    TG_DLIST_PUSH(&p->list, tun, pool_prev, pool_next);
    attach(tun, app); /* the dial's failure, if any, reaches app through tg_tunnel_close */
    return true;
}

/* Not over a tunnel after all: direct for auto, refused for on. */
static void no_tunnel(struct tg_conn *app, const char *why)
{
    if (app->tunnel_mode == TG_TUNNEL_ON) {
        tg_conn_close(app, "refused", "tunnel_required: %s (tunnel: on)", why);
        return;
    }
    tg_counter_add(&app->stats->tunnel_fallbacks, 1);
    tg_conn_direct(app);
}

void tg_tunnel_join(struct tg_conn *app)
{
    struct tg_tunnels *p = pool_of(app->w);
    const struct tg_tunnel_pool_cfg *cfg = &app->w->rt->cfg->tunnel_pool;
    struct tg_tunnel *best = NULL;
    unsigned n = 0, cap = 0;
    char why[160];

    if (p == NULL) {
        tg_conn_close(app, "error", "out of memory");
        return;
    }
    if (missed(p, app)) {
        snprintf(why, sizeof(why), "the sidecar at %s offers no tunnel (ALPN h2)",
                 app->upstream.text);
        no_tunnel(app, why);
        return;
    }
    for (struct tg_tunnel *tun = p->list, *next; tun != NULL; tun = next) {
        next = tun->pool_next;
        if (!same_key(tun->c, app))
            continue;
        if (tun->h2 != NULL && !tg_h2tun_can_open(tun->h2)) {
            /* GOAWAY from the server (its new generation, its drain): it will never take a
             * stream again, so it leaves the pool and no longer counts against
             * connections_per_destination; its streams run on (no call into the session
             * here: that could end streams and rejoin their apps while we walk the list) */
            tun->retired = true;
            pool_remove(tun);
            continue;
        }
        n++;
        cap = capacity(tun) > cap ? capacity(tun) : cap;
        if (best == NULL && usable(tun))
            best = tun;
    }
    if (best != NULL) {
        attach(best, app);
        return;
    }
    if (n < cfg->connections_per_destination) {
        dial(p, app);
        return;
    }
    /* the server's own limit (SETTINGS_MAX_CONCURRENT_STREAMS) may be below ours */
    snprintf(why, sizeof(why), "the pool's %u tunnels to %s carry %u streams each already", n,
             app->upstream.text, cap);
    no_tunnel(app, why);
}

void tg_tunnel_leave(struct tg_conn *app)
{
    struct tg_ostream *os = app->ostream;
    struct tg_tunnel *tun;

    if (os == NULL)
        return;
    tun = os->tun;
    if (!tun->c->closing && tun->h2 != NULL && os->sid > 0 && !os->h2_gone) {
        /* what the app never took still holds the tunnel's window: give it back */
        tg_h2tun_consumed(tun->h2, os->sid, os->delivered - os->given);
        os->given = os->delivered;
        if (strcmp(app->outcome, "ok") != 0)
            tg_h2tun_reset(tun->h2, os->sid, TG_H2TUN_CANCEL);
        tg_tunnel_kick(tun);
    }
    detach(os);
}

void tg_tunnel_ready(struct tg_conn *c)
{
    struct tg_tunnel *tun = c->tunnel;
    struct tg_h2tun_ops o = ops;
    struct tg_ostream *os, *next;
    char why[160];

    if (!tg_tls_alpn_h2(c->tls)) {
        remember_miss(c->w->tunnels, c);
        pool_remove(tun);
        snprintf(why, sizeof(why), "the sidecar at %s offers no tunnel (ALPN h2)",
                 c->upstream.text);
        tg_info("%s: %s: %s", c->l->name, c->upstream.text,
                "no tunnel offered (ALPN h2): direct connections for a while");
        for (os = tun->ostreams; os != NULL; os = next) {
            struct tg_conn *app = os->app;

            next = os->next;
            detach(os);
            no_tunnel(app, why);
        }
        tg_tls_shutdown(c->tls);
        tg_pipe_progress(c);
        tg_conn_close(c, "ok", "no tunnel offered");
        return;
    }
    o.arg = tun;
    if (tg_h2tun_new_client(&o, (uint32_t)tg_worker_tunnel_window(c->w),
                            (uint32_t)c->w->wide.block_size,
                            c->w->rt->cfg->tunnel_pool.streams_per_connection, &tun->h2) < 0) {
        tg_conn_close(c, "error", "tunnel: out of memory");
        return;
    }
    tg_counter_add(&c->stats->tunnels_opened, 1); /* a tunnel now: h2 chosen, a session */
    c->state = TG_CONN_PIPE;
    c->dir[0].eof = false;
    tg_tunnel_frames_to_wire(c);
    tun->idle_since = uv_now(&c->w->loop);
    tg_conn_touch(c);
    tg_conn_arm_timer(c, c->w->rt->cfg->tunnel_pool.idle_timeout_ms);
    tun->busy = true; /* one send for every waiting stream's CONNECT */
    for (os = tun->ostreams; os != NULL; os = next) {
        next = os->next;
        if (os->app != NULL && !os->app->closing)
            open_stream(os);
    }
    tun->busy = false;
    if (tun->retired)
        tg_h2tun_goaway(tun->h2);
    tg_pipe_progress(c);
}

void tg_tunnel_pool_idle(struct tg_conn *c)
{
    struct tg_tunnel *tun = c->tunnel;
    uint64_t idle = c->w->rt->cfg->tunnel_pool.idle_timeout_ms;
    uint64_t now = uv_now(&c->w->loop);

    if (tun->riding == 0 && now - tun->idle_since >= idle) {
        tg_tunnel_retire(tun);
        return;
    }
    tg_conn_arm_timer(c, tun->riding > 0 ? idle : idle - (now - tun->idle_since));
}

void tg_tunnel_retire(struct tg_tunnel *tun)
{
    tun->retired = true;
    pool_remove(tun);
    if (tun->h2 == NULL || tun->c->closing)
        return;               /* once its handshake is done: its waiting streams, then GOAWAY */
    tg_h2tun_goaway(tun->h2); /* its streams run to their end; then it closes */
    tg_tunnel_kick(tun);
}

void tg_tunnel_app_progress(struct tg_conn *app)
{
    struct tg_ostream *os = app->ostream;
    struct tg_tunnel *tun;
    struct tg_dir *d = &app->dir[0];
    uint64_t taken;
    bool kick = false;

    if (os == NULL || os->sid == 0 || os->h2_gone || app->closing)
        return;
    tun = os->tun;
    /* the window reopens only for bytes that left the buffer, and only as far as the room
     * at its tail takes what the server may then send (tg_buf_window_back) */
    taken = os->delivered - tg_buf_len(&app->dir[1].buf);
    if (taken > os->given && app->down.writing == 0) {
        size_t n = tg_buf_window_back(&app->dir[1].buf, app->dir[1].pool->block_size,
                                      tg_h2tun_window(tun->h2, os->sid), taken - os->given);

        if (n > 0) {
            tg_h2tun_consumed(tun->h2, os->sid, n);
            os->given += n;
            kick = true;
        }
    }
    if (os->deferred && os->answered && (tg_buf_len(&d->buf) > 0 || d->eof)) {
        os->deferred = false;
        tg_h2tun_resume(tun->h2, os->sid);
        kick = true;
    }
    if (kick)
        tg_tunnel_kick(tun);
}

void tg_tunnel_poke(struct tg_tunnel *tun)
{
    struct tg_ostream *os, *next;

    for (os = tun->ostreams; os != NULL; os = next) {
        next = os->next;
        if (os->poke && os->app != NULL) {
            os->poke = false;
            tg_pipe_progress(os->app); /* may close it: os stays (the stream is not gone) */
        }
    }
}

void tg_tunnel_close_outbound(struct tg_tunnel *tun)
{
    struct tg_conn *c = tun->c;
    struct tg_ostream *os, *next;

    pool_remove(tun);
    if (tun->h2 != NULL) /* one that was opened (a dial that found no h2 never was) */
        tg_counter_add(&c->stats->tunnels_closed, 1);
    for (os = tun->ostreams; os != NULL; os = next) {
        struct tg_conn *app = os->app;

        next = os->next;
        if (app == NULL || app->closing)
            continue;
        if (os->answered && os->h2_gone) {
            /* the stream ended whole both ways (a reset would have closed app): app only
             * waits for its own socket (the FIN's shutdown, the last writes), so the
             * tunnel's end (a GOAWAY'd tunnel with no streams left) is none of its business */
            detach(os);
            tg_pipe_progress(app);
            continue;
        }
        if (!os->answered && app->tunnel_tries < MAX_TRIES && c->handshake_done) {
            /* never answered, so nothing of the app's went out: another tunnel may carry it */
            tg_counter_add(&app->stats->tunnel_retries, 1);
            os->h2_gone = true;
            detach(os);
            tg_tunnel_join(app);
        } else if (!c->handshake_done) {
            os->h2_gone = true;
            detach(os);
            tg_conn_tunnel_failed(app, c);
        } else {
            tg_conn_close(app, "error", "tunnel to %s closed: %s", c->upstream.text,
                          c->reason[0] ? c->reason : c->outcome);
        }
    }
}

void tg_tunnel_free_outbound(struct tg_tunnel *tun)
{
    if (tun->in_pool)
        pool_remove(tun);
    while (tun->ostreams != NULL) {
        if (tun->ostreams->app != NULL)
            tun->ostreams->app->ostream = NULL;
        free_ostream(tun->ostreams);
    }
}

void tg_tunnel_pool_free(struct tg_worker *w)
{
    free(w->tunnels);
    w->tunnels = NULL;
}

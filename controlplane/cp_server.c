/* tollgate-cp's server: listener, streams, file watching and reloads (cp_server.h). */
#include "cp_server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_admin.h"
#include "cp_k8s.h"
#include "tollgate/log.h"

#define WATCH_INTERVAL_MS 1000
#define RELOAD_SETTLE_MS 300 /* files are seldom replaced in one step */
#define SWEEP_MS 10000

struct watcher {
    uv_fs_poll_t poll;
    struct tg_cp_server *srv;
};

struct tg_cp_server {
    uv_loop_t *loop;
    char *config_path;
    struct tg_cp_state *state;
    uv_tcp_t listener;
    uv_timer_t reload_timer;
    uv_timer_t sweep_timer;
    int open_handles;          /* listener, timers, watchers, admin endpoint */
    struct tg_cp_admin *admin; /* NULL: none */
    struct tg_cp_k8s *k8s;     /* kubernetes.discovery; NULL: none */
    bool admin_closing;
    struct watcher **watchers;
    size_t n_watchers;
    struct tg_cp_conn *conns;
    uint64_t next_id;
    int port;
    struct tg_cp_server_stats stats;
    bool closing;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

struct tg_cp_state *tg_cp_server_state(const struct tg_cp_server *srv)
{
    return srv->state;
}

int tg_cp_server_port(const struct tg_cp_server *srv)
{
    return srv->port;
}

const struct tg_cp_server_stats *tg_cp_server_stats(const struct tg_cp_server *srv)
{
    return &srv->stats;
}

struct tg_cp_server_stats *tg_cp_server_stats_mut(struct tg_cp_server *srv)
{
    return &srv->stats;
}

uv_loop_t *tg_cp_server_loop(const struct tg_cp_server *srv)
{
    return srv->loop;
}

bool tg_cp_server_healthy(const struct tg_cp_server *srv)
{
    return !srv->closing && srv->state != NULL && srv->port > 0;
}

const struct tg_resource *tg_cp_server_resource(const struct tg_cp_server *srv, enum tg_res_type t)
{
    if (t == TG_RES_MESH_TABLE && srv->k8s != NULL)
        return tg_cp_k8s_table(srv->k8s); /* NULL until the cluster is listed */
    return srv->state->res[t];
}

const struct tg_cp_k8s *tg_cp_server_k8s(const struct tg_cp_server *srv)
{
    return srv->k8s;
}

int tg_cp_server_admin_port(const struct tg_cp_server *srv)
{
    return srv->admin != NULL ? tg_cp_admin_port(srv->admin) : 0;
}

static void maybe_free(struct tg_cp_server *srv)
{
    void (*cb)(void *);
    void *arg;

    if (!srv->closing)
        return;
    if (srv->conns == NULL && srv->admin != NULL && !srv->admin_closing) {
        srv->admin_closing = true; /* last: /healthz says 503 while the streams end */
        tg_cp_admin_close(srv->admin);
    }
    if (srv->open_handles > 0 || srv->conns != NULL)
        return;
    cb = srv->on_closed;
    arg = srv->closed_arg;
    tg_cp_state_unref(srv->state);
    free(srv->watchers);
    free(srv->config_path);
    free(srv);
    if (cb != NULL)
        cb(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tg_cp_server *srv = h->data;

    srv->open_handles--;
    maybe_free(srv);
}

static void on_k8s_closed(void *arg)
{
    struct tg_cp_server *srv = arg;

    srv->k8s = NULL;
    srv->open_handles--;
    maybe_free(srv);
}

/* The derived mesh table changed: push it where it differs. */
static void on_k8s_table(void *arg)
{
    struct tg_cp_server *srv = arg;

    for (struct tg_cp_conn *c = srv->conns; c != NULL; c = c->next)
        tg_cp_stream_push_changed(c);
}

static void on_admin_closed(void *arg)
{
    struct tg_cp_server *srv = arg;

    srv->admin = NULL;
    srv->open_handles--;
    maybe_free(srv);
}

/* ---- streams ---- */

static void conn_free(struct tg_cp_conn *c)
{
    if (c->token != NULL)
        explicit_bzero(c->token, strlen(c->token));
    free(c->token);
    free(c->claim_ns);
    free(c->claim_sa);
    for (size_t i = 0; i < c->n_labels; i++) {
        free(c->labels[i].key);
        free(c->labels[i].value);
    }
    free(c->labels);
    tg_cp_state_unref(c->state);
    free(c);
}

static void on_stream_connected(struct tg_msgstream *s)
{
    struct tg_cp_conn *c = tg_msgstream_data(s);
    const struct tg_peer_info *peer = tg_msgstream_peer(s);

    c->last_rx = uv_now(c->srv->loop);
    tg_debug("stream %" PRIu64 " from %s: TLS up, client %s", c->id, tg_msgstream_peer_addr(s),
             peer->id != NULL ? peer->id : "without certificate");
}

static void on_stream_frame(struct tg_msgstream *s, const char *frame, size_t len)
{
    tg_cp_stream_on_frame(tg_msgstream_data(s), frame, len);
}

static void on_stream_closed(struct tg_msgstream *s, const char *reason)
{
    struct tg_cp_conn *c = tg_msgstream_data(s);
    struct tg_cp_server *srv = c->srv;

    if (c->hello_seen)
        tg_info("stream %" PRIu64 " (%s) ended: %s", c->id, c->who.id, reason);
    else
        tg_info("stream %" PRIu64 " from %s ended before Hello: %s", c->id,
                tg_msgstream_peer_addr(s), reason);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->stats.open_streams--;
    conn_free(c);
    maybe_free(srv);
}

static void on_drop_closed(uv_handle_t *h)
{
    free(h);
}

static void on_connection(uv_stream_t *server, int status)
{
    static const struct tg_msgstream_ops ops = {on_stream_connected, on_stream_frame,
                                                on_stream_closed};
    static const struct tg_strlist any = {NULL, 0};
    static const struct tg_tls_peer_rule rule = {&any};
    struct tg_cp_server *srv = server->data;
    struct tg_cp_conn *c;

    if (status < 0) {
        tg_warn("accept: %s", uv_strerror(status));
        return;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        uv_tcp_t *drop = malloc(sizeof(*drop)); /* take it off the backlog, let it go */

        tg_warn("accept: out of memory");
        if (drop == NULL)
            return;
        uv_tcp_init(srv->loop, drop);
        if (uv_accept(server, (uv_stream_t *)drop) < 0)
            tg_warn("accept: failed");
        uv_close((uv_handle_t *)drop, on_drop_closed);
        return;
    }
    c->srv = srv;
    c->id = ++srv->next_id;
    c->state = tg_cp_state_ref(srv->state);
    c->last_rx = uv_now(srv->loop);
    if (tg_msgstream_accept(srv->loop, server, c->state->tls, &rule, NULL, &ops, c, &c->ms) < 0) {
        tg_warn("accept: out of memory");
        conn_free(c);
        return;
    }
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->stats.streams++;
    srv->stats.open_streams++;
}

/* Ends streams that have been silent too long (a sidecar pings every 10 s), and those whose
 * Hello never came. */
static void on_sweep(uv_timer_t *t)
{
    struct tg_cp_server *srv = t->data;
    uint64_t now = uv_now(srv->loop);

    for (struct tg_cp_conn *c = srv->conns; c != NULL; c = c->next) {
        if (now - c->last_rx >= TG_CP_IDLE_MS)
            tg_msgstream_close(c->ms, false, "nothing received for %d s", TG_CP_IDLE_MS / 1000);
    }
}

/* ---- files ---- */

static void rewatch(struct tg_cp_server *srv, const struct tg_strlist *extra);

static void on_reload_timer(uv_timer_t *t)
{
    struct tg_cp_server *srv = t->data;

    if (tg_cp_server_reload(srv, "a file changed") < 0)
        return;
}

static void on_file_changed(uv_fs_poll_t *h, int status, const uv_stat_t *prev,
                            const uv_stat_t *curr)
{
    struct watcher *w = h->data;

    (void)status; /* a file that vanished is reported too: the reload says what is wrong */
    (void)prev;
    (void)curr;
    if (!w->srv->closing)
        uv_timer_start(&w->srv->reload_timer, on_reload_timer, RELOAD_SETTLE_MS, 0);
}

static void on_watcher_closed(uv_handle_t *h)
{
    struct watcher *w = h->data;
    struct tg_cp_server *srv = w->srv;

    free(w);
    srv->open_handles--;
    maybe_free(srv);
}

static void unwatch(struct tg_cp_server *srv)
{
    for (size_t i = 0; i < srv->n_watchers; i++)
        uv_close((uv_handle_t *)&srv->watchers[i]->poll, on_watcher_closed);
    srv->n_watchers = 0;
}

static void watch_one(struct tg_cp_server *srv, const char *path)
{
    struct watcher *w;
    int rc;

    for (size_t i = 0; i < srv->n_watchers; i++) {
        char p[4096];
        size_t n = sizeof(p);

        if (uv_fs_poll_getpath(&srv->watchers[i]->poll, p, &n) == 0 && strcmp(p, path) == 0)
            return;
    }
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return;
    w->srv = srv;
    w->poll.data = w;
    uv_fs_poll_init(srv->loop, &w->poll);
    srv->open_handles++;
    srv->watchers[srv->n_watchers++] = w;
    rc = uv_fs_poll_start(&w->poll, on_file_changed, path, WATCH_INTERVAL_MS);
    if (rc < 0)
        tg_warn("cannot watch %s: %s", path, uv_strerror(rc));
}

/* Watches the current state's files plus extra (from a load that failed: fixing any of them
 * should bring a retry). */
static void rewatch(struct tg_cp_server *srv, const struct tg_strlist *extra)
{
    size_t n = srv->state->files.n + (extra != NULL ? extra->n : 0);
    struct watcher **grown;

    unwatch(srv);
    grown = realloc(srv->watchers, (n + 1) * sizeof(*grown));
    if (grown == NULL) {
        tg_error("out of memory: files are not watched");
        return;
    }
    srv->watchers = grown;
    for (size_t i = 0; i < srv->state->files.n; i++)
        watch_one(srv, srv->state->files.v[i]);
    for (size_t i = 0; extra != NULL && i < extra->n; i++)
        watch_one(srv, extra->v[i]);
}

static void log_state(const struct tg_cp_state *s, const char *what)
{
    const struct tg_res_trust_bundle *b = &s->res[TG_RES_TRUST_BUNDLE]->u.trust_bundle;

    tg_info("%s: trust domain %s (%zu roots, %zu other domains), CA serial %s, certificates "
            "for %llu s, %zu tokens, %zu service-account keys, %zu rules, %zu limits, %zu "
            "destinations",
            what, s->cfg->trust_domain, b->domains[0].roots_pem.n, b->n_domains - 1,
            tg_cp_ca_serial(s->ca), (unsigned long long)(s->cfg->cert_ttl_ms / 1000), s->tokens.n,
            tg_cp_jwt_keys_count(s->jwt_keys),
            s->res[TG_RES_AUTHORIZATION]->u.authorization.n_rules,
            s->res[TG_RES_RATE_LIMITS]->u.rate_limits.n_limits,
            s->res[TG_RES_MESH_TABLE]->u.mesh_table.n_destinations);
}

int tg_cp_server_reload(struct tg_cp_server *srv, const char *why)
{
    struct tg_cp_state *s;
    struct tg_strlist tried = {NULL, 0};
    char err[TG_ERRLEN] = "";
    int rc = tg_cp_state_load(srv->config_path, &s, &tried, err);

    if (rc < 0) {
        srv->stats.reload_failures++;
        tg_error("reload (%s) refused, serving the last good configuration: %s", why, err);
        rewatch(srv, &tried);
        tg_cp_files_free(&tried);
        return rc;
    }
    if (memcmp(&s->cfg->listen.ss, &srv->state->cfg->listen.ss, s->cfg->listen.len) != 0)
        tg_warn("listen changed to %s: takes effect at the next start", s->cfg->listen.text);
    if (strcmp(s->cfg->admin.text, srv->state->cfg->admin.text) != 0)
        tg_warn("admin changed to %s: takes effect at the next start",
                s->cfg->admin.len > 0 ? s->cfg->admin.text : "none");
    if (s->cfg->k8s_discovery != srv->state->cfg->k8s_discovery ||
        strcmp(s->cfg->k8s_api_server ? s->cfg->k8s_api_server : "",
               srv->state->cfg->k8s_api_server ? srv->state->cfg->k8s_api_server : "") != 0)
        tg_warn("kubernetes.discovery changed: takes effect at the next start");
    tg_log_set_level(s->cfg->log_level);
    tg_cp_state_unref(srv->state);
    srv->state = s;
    srv->stats.reloads++;
    log_state(s, "reloaded");
    rewatch(srv, NULL);
    if (srv->k8s != NULL)
        tg_cp_k8s_set_overlay(srv->k8s, s->res[TG_RES_MESH_TABLE]); /* pushes, once synced */
    for (struct tg_cp_conn *c = srv->conns; c != NULL; c = c->next)
        tg_cp_stream_push_changed(c);
    return 0;
}

/* ---- life cycle ---- */

int tg_cp_server_new(uv_loop_t *loop, const char *config_path, struct tg_cp_server **out, char *err)
{
    struct tg_cp_server *srv = calloc(1, sizeof(*srv));
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;

    if (srv == NULL || (srv->config_path = strdup(config_path)) == NULL) {
        free(srv);
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    }
    srv->loop = loop;
    if ((rc = tg_cp_state_load(config_path, &srv->state, NULL, err)) < 0) {
        free(srv->config_path);
        free(srv);
        return rc;
    }
    tg_log_set_level(srv->state->cfg->log_level);
    srv->listener.data = srv;
    srv->reload_timer.data = srv;
    srv->sweep_timer.data = srv;
    uv_tcp_init(loop, &srv->listener);
    uv_timer_init(loop, &srv->reload_timer);
    uv_timer_init(loop, &srv->sweep_timer);
    srv->open_handles = 3;
    *out = srv;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&srv->state->cfg->listen.ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 128, on_connection);
    if (rc < 0) {
        tg_err_set(err, rc, "listen %s: %s", srv->state->cfg->listen.text, uv_strerror(rc));
        *out = NULL;
        tg_cp_server_close(srv, NULL, NULL);
        return rc;
    }
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) == 0)
        srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    if (srv->state->cfg->admin.len > 0) {
        srv->open_handles++; /* until on_admin_closed, whether _new succeeds or not */
        rc = tg_cp_admin_new(loop, &srv->state->cfg->admin, srv, on_admin_closed, srv, &srv->admin,
                             err);
        if (rc < 0) {
            *out = NULL;
            tg_cp_server_close(srv, NULL, NULL);
            return rc;
        }
    }
    if (srv->state->cfg->k8s_discovery) {
        rc = tg_cp_k8s_new(loop, srv->state->cfg, srv->state->res[TG_RES_MESH_TABLE], on_k8s_table,
                           srv, &srv->k8s, err);
        if (rc < 0) {
            *out = NULL;
            tg_cp_server_close(srv, NULL, NULL);
            return rc;
        }
        srv->open_handles++; /* until on_k8s_closed */
    }
    uv_timer_start(&srv->sweep_timer, on_sweep, SWEEP_MS, SWEEP_MS);
    rewatch(srv, NULL);
    log_state(srv->state, "loaded");
    tg_info("listening on %s (port %d)", srv->state->cfg->listen.text, srv->port);
    if (srv->admin != NULL)
        tg_info("admin endpoint on %s (port %d): /healthz /stats", srv->state->cfg->admin.text,
                tg_cp_admin_port(srv->admin));
    return 0;
}

void tg_cp_server_close(struct tg_cp_server *srv, void (*on_closed)(void *arg), void *arg)
{
    if (srv->closing)
        return;
    srv->closing = true;
    srv->on_closed = on_closed;
    srv->closed_arg = arg;
    unwatch(srv);
    if (srv->k8s != NULL)
        tg_cp_k8s_close(srv->k8s, on_k8s_closed, srv);
    uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
    uv_close((uv_handle_t *)&srv->reload_timer, on_handle_closed);
    uv_close((uv_handle_t *)&srv->sweep_timer, on_handle_closed);
    for (struct tg_cp_conn *c = srv->conns; c != NULL; c = c->next) {
        if (c->hello_seen)
            tg_cp_stream_refuse(c, "control plane shutting down");
        else
            tg_msgstream_close(c->ms, false, "control plane shutting down");
    }
}

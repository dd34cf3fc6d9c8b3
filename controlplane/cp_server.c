/* tollgate-cp's server: listener, streams, file watching and reloads (cp_server.h). */
#include "cp_server.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_admin.h"
#include "cp_k8s.h"
#include "cp_webhook.h"
#include "tollgate/closer.h"
#include "tollgate/frame.h"
#include "tollgate/log.h"
#include "tollgate/list.h"

#define WATCH_INTERVAL_MS 1000
#define RELOAD_SETTLE_MS 300 /* files are seldom replaced in one step */
#define SWEEP_MS 10000
#define DEADLINE_TICK_MS 100 /* the front door's deadlines are this precise */
#define SOURCE_BUCKETS 1024
#define ACCEPTS_PER_TURN 64 /* connections taken per loop iteration */
/* msgstream's own handshake deadline, a backstop behind ours */
#define HANDSHAKE_BACKSTOP_MS 2000

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
    uv_timer_t pace_timer;     /* runs while shared pushes are written or held */
    unsigned pushing;          /* streams with turn set */
    uv_timer_t deadline_timer; /* runs while a stream is unauthenticated */
    uv_check_t accept_turn;    /* after each iteration's I/O: the accept budget again */
    unsigned accepts_this_turn;
    bool accept_waiting;            /* a connection left on the listener for the next turn */
    struct tg_closer closer;        /* open: listener, timers, watchers, admin endpoint */
    struct tg_cp_admin *admin;      /* NULL: none */
    struct tg_cp_k8s *k8s;          /* kubernetes.discovery; NULL: none */
    struct tg_k8s_webhook *webhook; /* kubernetes.webhook; NULL: none */
    bool admin_closing;
    struct watcher **watchers;
    size_t n_watchers;
    struct tg_cp_conn *conns;
    struct tg_cp_conn *unauth_head, *unauth_tail; /* not yet past Hello, oldest first */
    struct tg_cp_source *sources[SOURCE_BUCKETS]; /* their source addresses */
    uint64_t next_id;
    int port;
    struct tg_cp_server_stats stats;
    struct tg_cp_server_stats logged; /* as of the last front-door summary in the log */
    uint64_t res_gen;                 /* tg_cp_server_res_gen */
    struct tg_cp_shared_push shared[TG_RES_N];
    struct tg_cp_reviews *reviews;    /* kubernetes.token_review's answers */
    struct review_wait *review_waits; /* TokenReviews in flight */
};

/* A TokenReview in flight, for stream conn_id (which may be gone by the answer). */
struct review_wait {
    struct tg_cp_server *srv;
    uint64_t conn_id;
    char *token; /* wiped */
    struct review_wait *prev, *next;
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
    return !srv->closer.closing && srv->state != NULL && srv->port > 0;
}

const struct tg_resource *tg_cp_server_resource(const struct tg_cp_server *srv, enum tg_res_type t)
{
    if (t == TG_RES_MESH_TABLE && srv->k8s != NULL)
        return tg_cp_k8s_table(srv->k8s); /* NULL until the cluster is listed */
    if (srv->k8s != NULL &&
        (t == TG_RES_AUTHORIZATION || t == TG_RES_RATE_LIMITS || t == TG_RES_REVOCATIONS))
        return tg_cp_k8s_policy(srv->k8s, t, srv->state->res[t]); /* with the custom resources */
    return srv->state->res[t];
}

uint64_t tg_cp_server_res_gen(const struct tg_cp_server *srv)
{
    return srv->res_gen;
}

struct tg_cp_shared_push *tg_cp_server_shared_push(struct tg_cp_server *srv, enum tg_res_type t)
{
    return &srv->shared[t];
}

static void on_pace(uv_timer_t *t);

bool tg_cp_server_push_turn(struct tg_cp_server *srv, struct tg_cp_conn *c)
{
    if (!srv->closer.closing && (!uv_is_active((uv_handle_t *)&srv->pace_timer) ||
                                 uv_timer_get_repeat(&srv->pace_timer) != TG_CP_PACE_MS))
        uv_timer_start(&srv->pace_timer, on_pace, TG_CP_PACE_MS, TG_CP_PACE_MS);
    if (c->pushing || srv->pushing >= TG_CP_PUSHING_MAX) {
        c->held = true;
        return false;
    }
    c->pushing = c->turn = true;
    c->turn_at = uv_now(srv->loop);
    srv->pushing++;
    return true;
}

static void give_back_turn(struct tg_cp_conn *c)
{
    if (c->turn) {
        c->turn = false;
        c->srv->pushing--;
    }
}

/* Turns given back by the streams that have written their push (or held one too long), then
 * given to held ones. */
static void on_pace(uv_timer_t *t)
{
    struct tg_cp_server *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    bool busy = false, ready = false;

    for (struct tg_cp_conn *c = srv->conns; c != NULL; c = c->next) {
        if (c->pushing && tg_msgstream_queued(c->ms) == 0) {
            c->pushing = false;
            give_back_turn(c);
        } else if (c->turn && now - c->turn_at >= TG_CP_TURN_MS) {
            give_back_turn(c); /* not reading: it keeps pushing, so gets nothing new */
        }
    }
    for (struct tg_cp_conn *c = srv->conns; c != NULL; c = c->next) {
        if (c->held && !c->pushing && srv->pushing < TG_CP_PUSHING_MAX) {
            c->held = false;
            tg_cp_stream_push_changed(c); /* may hold it again */
        }
        busy |= c->held || c->pushing;
        ready |= c->held && !c->pushing;
    }
    if (!busy)
        uv_timer_stop(t);
    else if (srv->pushing == 0 && !ready) /* only streams that do not read: look less often */
        uv_timer_set_repeat(t, TG_CP_PACE_IDLE_MS);
}

const struct tg_cp_k8s *tg_cp_server_k8s(const struct tg_cp_server *srv)
{
    return srv->k8s;
}

const struct tg_k8s_webhook *tg_cp_server_webhook(const struct tg_cp_server *srv)
{
    return srv->webhook;
}

int tg_cp_server_admin_port(const struct tg_cp_server *srv)
{
    return srv->admin != NULL ? tg_cp_admin_port(srv->admin) : 0;
}

/* ---- TokenReview (cp_review.h) ---- */

struct tg_cp_reviews *tg_cp_server_reviews(struct tg_cp_server *srv)
{
    return srv->reviews;
}

static void wait_free(struct review_wait *w)
{
    TG_DLIST_UNLINK(&w->srv->review_waits, TG_DLIST_NO_TAIL, w, prev, next);
    explicit_bzero(w->token, strlen(w->token));
    free(w->token);
    free(w);
}

/* Answers never given (the client closed first) and the cache. */
static void reviews_free(struct tg_cp_server *srv)
{
    while (srv->review_waits != NULL)
        wait_free(srv->review_waits);
    tg_cp_reviews_free(srv->reviews);
    srv->reviews = NULL;
}

static void on_review(void *arg, long status, const char *body, const char *err)
{
    struct review_wait *w = arg;
    struct tg_cp_server *srv = w->srv;
    int64_t now = (int64_t)time(NULL);
    struct tg_cp_review r;

    tg_cp_review_read(status, body, w->token, &srv->state->cfg->k8s_audiences, now, &r);
    if (status == 0)
        tg_err_set(r.why, TG_EPEER, "TokenReview: the API server could not be asked: %s", err);
    else if (status < 500 && tg_cp_reviews_put(srv->reviews, w->token, &r, now) < 0)
        tg_error("kubernetes: out of memory caching a TokenReview answer");
    if (!r.ok)
        tg_info("kubernetes: TokenReview for stream %" PRIu64 ": %s", w->conn_id, r.why);
    for (struct tg_cp_conn *c = srv->conns; c != NULL; c = c->next)
        if (c->id == w->conn_id)
            tg_cp_stream_on_review(c, &r);
    wait_free(w);
}

int tg_cp_server_review(struct tg_cp_server *srv, uint64_t conn_id, const char *token)
{
    struct review_wait *w;
    char *body;
    int rc;

    if (srv->k8s == NULL)
        return TG_EINVAL;
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return TG_ENOMEM;
    w->srv = srv;
    w->conn_id = conn_id;
    if ((w->token = strdup(token)) == NULL ||
        (body = tg_cp_review_body(token, &srv->state->cfg->k8s_audiences)) == NULL) {
        free(w->token);
        free(w);
        return TG_ENOMEM;
    }
    rc = tg_cp_k8s_request(srv->k8s, "POST", TG_CP_REVIEW_PATH, body, "application/json", on_review,
                           w);
    explicit_bzero(body, strlen(body));
    free(body);
    if (rc < 0) {
        explicit_bzero(w->token, strlen(w->token));
        free(w->token);
        free(w);
        return rc;
    }
    w->next = srv->review_waits;
    if (w->next != NULL)
        w->next->prev = w;
    srv->review_waits = w;
    return 0;
}

/* closed: how many of its handles or children have just closed (0 or 1). Frees it once it
 * is closing and nothing is left open. */
static void maybe_free(struct tg_cp_server *srv, int closed)
{
    struct tg_closer done = srv->closer; /* srv is freed below */

    srv->closer.open -= closed;
    if (!srv->closer.closing)
        return;
    if (srv->conns == NULL && srv->admin != NULL && !srv->admin_closing) {
        srv->admin_closing = true; /* last: /healthz says 503 while the streams end */
        tg_cp_admin_close(srv->admin);
    }
    if (!tg_closer_done(&srv->closer) || srv->conns != NULL)
        return;
    reviews_free(srv);
    tg_cp_state_unref(srv->state);
    for (int t = 0; t < TG_RES_N; t++)
        free(srv->shared[t].msg);
    free(srv->watchers);
    free(srv->config_path);
    free(srv);
    tg_closer_notify(&done);
}

static void on_handle_closed(uv_handle_t *h)
{
    maybe_free(h->data, 1);
}

static void on_k8s_closed(void *arg)
{
    struct tg_cp_server *srv = arg;

    srv->k8s = NULL;
    maybe_free(srv, 1);
}

static void on_webhook_closed(void *arg)
{
    struct tg_cp_server *srv = arg;

    srv->webhook = NULL;
    maybe_free(srv, 1);
}

/* The cluster changed: each stream's pod is checked again (its labels follow the Pod's; a
 * pod gone or changed so that it contradicts the stream ends it), then what differs is
 * pushed. */
static void on_k8s_table(void *arg)
{
    struct tg_cp_server *srv = arg;
    char err[TG_ERRLEN];

    srv->res_gen++;
    for (struct tg_cp_conn *c = srv->conns; c != NULL; c = c->next) {
        if (!c->hello_seen || !tg_msgstream_is_connected(c->ms))
            continue;
        if (tg_cp_stream_check_pod(c, err) < 0) {
            srv->stats.refused++;
            tg_warn("stream %" PRIu64 " (%s): pod check refused: %s", c->id, c->who.id, err);
            tg_cp_stream_refuse(c, "%s", err);
            continue;
        }
        tg_cp_stream_push_changed(c);
    }
}

static void on_admin_closed(void *arg)
{
    struct tg_cp_server *srv = arg;

    srv->admin = NULL;
    maybe_free(srv, 1);
}

/* ---- streams ---- */

static void conn_free(struct tg_cp_conn *c)
{
    give_back_turn(c);
    if (c->token != NULL)
        explicit_bzero(c->token, strlen(c->token));
    free(c->token);
    free(c->claim_ns);
    free(c->claim_sa);
    free(c->claim_pod);
    free(c->csr_der);
    tg_res_labels_free(c->claims, c->n_claims);
    tg_res_labels_free(c->labels, c->n_labels);
    tg_cp_state_unref(c->state);
    free(c);
}

/* ---- the front door (cp_server.h) ---- */

static void on_deadline(uv_timer_t *t);

/* A source address with unauthenticated streams, and how many: in the server's table while
 * it has one. */
struct tg_cp_source {
    unsigned char key[16];
    size_t key_len;
    uint64_t n;
    struct tg_cp_source *next; /* hash chain */
};

/* The source address of ms, as the per-address cap counts it: IPv4, or an IPv6 /64 (one
 * site's, which an attacker has whole). Its length, 0 when unknown. */
static size_t source_key(const struct tg_msgstream *ms, unsigned char key[16])
{
    const struct sockaddr_storage *ss = tg_msgstream_peer_sockaddr(ms);
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;

    if (ss->ss_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return 4;
    }
    if (ss->ss_family != AF_INET6)
        return 0;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        memcpy(key, a6->s6_addr + 12, 4);
        return 4;
    }
    memcpy(key, a6->s6_addr, 8);
    return 8;
}

static struct tg_cp_source **source_slot(struct tg_cp_server *srv, const unsigned char *key,
                                         size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    struct tg_cp_source **p;

    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 16777619u;
    for (p = &srv->sources[h % SOURCE_BUCKETS]; *p != NULL; p = &(*p)->next)
        if ((*p)->key_len == len && memcmp((*p)->key, key, len) == 0)
            break;
    return p; /* the entry, or where it would go */
}

static void unauth_add(struct tg_cp_server *srv, struct tg_cp_conn *c, const unsigned char *key,
                       size_t key_len)
{
    c->unauth = true;
    c->uprev = srv->unauth_tail;
    c->unext = NULL;
    if (srv->unauth_tail != NULL)
        srv->unauth_tail->unext = c;
    else
        srv->unauth_head = c;
    srv->unauth_tail = c;
    if (key_len > 0) {
        struct tg_cp_source **p = source_slot(srv, key, key_len);

        if (*p == NULL && (*p = calloc(1, sizeof(**p))) != NULL) {
            memcpy((*p)->key, key, key_len);
            (*p)->key_len = key_len;
        }
        if ((c->source = *p) != NULL) /* out of memory: not counted, still capped in all */
            c->source->n++;
    }
    if (srv->stats.unauthenticated_open++ == 0)
        uv_timer_start(&srv->deadline_timer, on_deadline, DEADLINE_TICK_MS, DEADLINE_TICK_MS);
}

static void unauth_remove(struct tg_cp_server *srv, struct tg_cp_conn *c)
{
    if (!c->unauth)
        return;
    c->unauth = false;
    TG_DLIST_UNLINK(&srv->unauth_head, &srv->unauth_tail, c, uprev, unext);
    c->uprev = c->unext = NULL;
    if (c->source != NULL && --c->source->n == 0) {
        struct tg_cp_source **p = source_slot(srv, c->source->key, c->source->key_len);

        *p = c->source->next;
        free(c->source);
    }
    c->source = NULL;
    if (--srv->stats.unauthenticated_open == 0)
        uv_timer_stop(&srv->deadline_timer);
}

/* The stream to close to make room: the oldest of the source address with the most
 * unauthenticated streams. NULL when none is unauthenticated. */
static struct tg_cp_conn *victim(const struct tg_cp_server *srv)
{
    struct tg_cp_conn *best = NULL;
    uint64_t most = 0;

    for (struct tg_cp_conn *p = srv->unauth_head; p != NULL; p = p->unext) {
        uint64_t n = p->source != NULL ? p->source->n : 1;

        if (best == NULL || n > most) { /* oldest first: ties keep the older */
            best = p;
            most = n;
        }
    }
    return best;
}

/* Ends c, not authenticated, for the front door: counted, logged at debug (a flood must not
 * flood the log too; on_sweep sums them up). */
static void turn_away(struct tg_cp_conn *c, uint64_t *counter, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void turn_away(struct tg_cp_conn *c, uint64_t *counter, const char *fmt, ...)
{
    char reason[TG_ERRLEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    unauth_remove(c->srv, c);
    c->quiet = true;
    (*counter)++;
    tg_msgstream_close(c->ms, false, "%s", reason);
}

/* Deadlines of the unauthenticated: the handshake from accept, Hello from the handshake. */
static void on_deadline(uv_timer_t *t)
{
    struct tg_cp_server *srv = t->data;
    const struct tg_cp_limits *lim = &srv->state->cfg->limits;
    uint64_t now = uv_now(srv->loop);
    struct tg_cp_conn *next;

    for (struct tg_cp_conn *c = srv->unauth_head; c != NULL; c = next) {
        next = c->unext; /* turn_away takes c off the list */
        if (c->connected_at != 0 && !tg_msgstream_is_connected(c->ms))
            continue; /* refused (its Close is being written, within msgstream's deadline) */
        if (c->connected_at == 0 && now - c->accepted_at >= lim->handshake_ms)
            turn_away(c, &srv->stats.handshake_timeouts,
                      "no TLS handshake within %" PRIu64 " ms (timeouts.handshake)",
                      lim->handshake_ms);
        else if (c->connected_at != 0 && now - c->connected_at >= lim->hello_ms)
            turn_away(c, &srv->stats.hello_timeouts,
                      "no Hello within %" PRIu64 " ms of the handshake (timeouts.hello)",
                      lim->hello_ms);
    }
}

/* At accept: the per-address cap, then room among the unauthenticated and the open. False
 * when c was refused. */
static bool admit(struct tg_cp_server *srv, struct tg_cp_conn *c)
{
    const struct tg_cp_limits *lim = &srv->state->cfg->limits;
    unsigned char key[16];
    size_t key_len = source_key(c->ms, key);
    const struct tg_cp_source *from = key_len > 0 ? *source_slot(srv, key, key_len) : NULL;
    struct tg_cp_conn *v;

    if (from != NULL && from->n >= lim->max_per_address) {
        turn_away(c, &srv->stats.refused_per_address,
                  "refused: %" PRIu64 " unauthenticated streams from its address already "
                  "(limits.max_unauthenticated_per_address)",
                  from->n);
        return false;
    }
    if (srv->stats.unauthenticated_open >= lim->max_unauthenticated ||
        srv->stats.open_streams > lim->max_connections) {
        if ((v = victim(srv)) == NULL) {
            turn_away(c, &srv->stats.refused_max_connections,
                      "refused: %" PRIu64 " streams open (limits.max_connections)",
                      srv->stats.open_streams - 1);
            return false;
        }
        turn_away(v, &srv->stats.evicted,
                  "closed to make room for a newer stream: the oldest of the %" PRIu64
                  " unauthenticated from its address, of %" PRIu64
                  " in all (limits.max_unauthenticated %" PRIu64 ", max_connections %" PRIu64 ")",
                  v->source != NULL ? v->source->n : 1, srv->stats.unauthenticated_open,
                  lim->max_unauthenticated, lim->max_connections);
    }
    unauth_add(srv, c, key, key_len);
    return true;
}

void tg_cp_server_authenticated(struct tg_cp_conn *c)
{
    unauth_remove(c->srv, c);
    tg_msgstream_set_max_frame_in(c->ms, TG_FRAME_MAX);
}

/* Once per sweep, when the front door turned anyone away: how many, why. */
static void log_front_door(struct tg_cp_server *srv)
{
    const struct tg_cp_server_stats *s = &srv->stats, *l = &srv->logged;
    uint64_t full = s->refused_max_connections - l->refused_max_connections,
             addr = s->refused_per_address - l->refused_per_address, room = s->evicted - l->evicted,
             hs = s->handshake_timeouts - l->handshake_timeouts,
             hello = s->hello_timeouts - l->hello_timeouts;

    if (full + addr + room + hs + hello == 0)
        return;
    tg_warn("front door, last %d s: refused %" PRIu64 " at max_connections and %" PRIu64
            " at the per-address cap, closed %" PRIu64 " to make room, %" PRIu64
            " at the handshake deadline and %" PRIu64 " at the Hello deadline; %" PRIu64
            " unauthenticated and %" PRIu64 " streams open",
            SWEEP_MS / 1000, full, addr, room, hs, hello, s->unauthenticated_open, s->open_streams);
    srv->logged = *s;
}

static void on_stream_connected(struct tg_msgstream *s)
{
    struct tg_cp_conn *c = tg_msgstream_data(s);
    const struct tg_peer_info *peer = tg_msgstream_peer(s);

    c->last_rx = uv_now(c->srv->loop);
    c->connected_at = c->last_rx > 0 ? c->last_rx : 1;
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
    else if (c->quiet)
        tg_debug("stream %" PRIu64 " from %s ended before Hello: %s", c->id,
                 tg_msgstream_peer_addr(s), reason);
    else
        tg_info("stream %" PRIu64 " from %s ended before Hello: %s", c->id,
                tg_msgstream_peer_addr(s), reason);
    unauth_remove(srv, c);
    TG_DLIST_UNLINK(&srv->conns, TG_DLIST_NO_TAIL, c, prev, next);
    srv->stats.open_streams--;
    conn_free(c);
    maybe_free(srv, 0);
}

static void on_drop_closed(uv_handle_t *h)
{
    free(h);
}

/* Takes the connection waiting on the listener. */
static void accept_one(struct tg_cp_server *srv)
{
    static const struct tg_msgstream_ops ops = {on_stream_connected, on_stream_frame,
                                                on_stream_closed};
    static const struct tg_strlist any = {NULL, 0};
    static const struct tg_tls_peer_rule rule = {&any};
    uv_stream_t *server = (uv_stream_t *)&srv->listener;
    const struct tg_cp_limits *lim = &srv->state->cfg->limits;
    struct tg_msgstream_opts opts = {
        .handshake_timeout_ms = lim->handshake_ms + HANDSHAKE_BACKSTOP_MS,
        .max_frame_in = TG_CP_HELLO_MAX,
    };
    struct tg_cp_conn *c;

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
    c->last_rx = c->accepted_at = uv_now(srv->loop);
    if (tg_msgstream_accept(srv->loop, server, c->state->tls, &rule, &opts, &ops, c, &c->ms) < 0) {
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
    (void)admit(srv, c);
}

/* At most ACCEPTS_PER_TURN connections are taken per loop iteration. Left on the listener,
 * a connection stops libuv from watching it until uv_accept (on_accept_turn, after this
 * iteration's I/O): otherwise clients that come back at once when they are closed to make
 * room keep libuv's accept loop going, with nothing else served and nothing closed freed. */
static void on_connection(uv_stream_t *server, int status)
{
    struct tg_cp_server *srv = server->data;

    if (status < 0) {
        tg_warn("accept: %s", uv_strerror(status));
        return;
    }
    if (srv->accepts_this_turn >= ACCEPTS_PER_TURN) {
        srv->accept_waiting = true;
        return;
    }
    srv->accepts_this_turn++;
    accept_one(srv);
}

static void on_accept_turn(uv_check_t *h)
{
    struct tg_cp_server *srv = h->data;

    srv->accepts_this_turn = 0;
    if (srv->accept_waiting && !srv->closer.closing) {
        srv->accept_waiting = false;
        srv->accepts_this_turn++;
        accept_one(srv); /* uv_accept watches the listener again */
    }
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
    log_front_door(srv);
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
    if (!w->srv->closer.closing)
        uv_timer_start(&w->srv->reload_timer, on_reload_timer, RELOAD_SETTLE_MS, 0);
}

static void on_watcher_closed(uv_handle_t *h)
{
    struct watcher *w = h->data;
    struct tg_cp_server *srv = w->srv;

    free(w);
    maybe_free(srv, 1);
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
    srv->closer.open++;
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
    tg_log_set_format(s->cfg->log_format);
    tg_cp_state_unref(srv->state);
    srv->state = s;
    srv->res_gen++;
    srv->stats.reloads++;
    log_state(s, "reloaded");
    rewatch(srv, NULL);
    if (srv->k8s != NULL) {
        tg_cp_k8s_set_files(srv->k8s, s->res);
        tg_cp_k8s_set_overlay(srv->k8s, s->res[TG_RES_MESH_TABLE]); /* pushes, once synced */
    }
    tg_cp_webhook_reload(srv->webhook, s); /* a new CA or new roots */
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
    if (tg_cp_reviews_new(&srv->reviews) < 0) {
        free(srv->config_path);
        free(srv);
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    }
    if ((rc = tg_cp_state_load(config_path, &srv->state, NULL, err)) < 0) {
        tg_cp_reviews_free(srv->reviews);
        free(srv->config_path);
        free(srv);
        return rc;
    }
    tg_log_set_level(srv->state->cfg->log_level);
    tg_log_set_format(srv->state->cfg->log_format);
    srv->listener.data = srv;
    srv->reload_timer.data = srv;
    srv->sweep_timer.data = srv;
    srv->pace_timer.data = srv;
    srv->deadline_timer.data = srv;
    srv->accept_turn.data = srv;
    uv_tcp_init(loop, &srv->listener);
    uv_timer_init(loop, &srv->reload_timer);
    uv_timer_init(loop, &srv->sweep_timer);
    uv_timer_init(loop, &srv->pace_timer);
    uv_timer_init(loop, &srv->deadline_timer);
    uv_check_init(loop, &srv->accept_turn);
    uv_check_start(&srv->accept_turn, on_accept_turn);
    srv->closer.open = 6;
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
        srv->closer.open++; /* until on_admin_closed, whether _new succeeds or not */
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
        srv->closer.open++; /* until on_k8s_closed */
        tg_cp_k8s_set_files(srv->k8s, srv->state->res);
        if ((rc = tg_cp_webhook_start(loop, srv->state, srv->k8s, &srv->webhook, err)) < 0) {
            *out = NULL;
            tg_cp_server_close(srv, NULL, NULL);
            return rc;
        }
        if (srv->webhook != NULL)
            srv->closer.open++; /* until on_webhook_closed */
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
    if (!tg_closer_start(&srv->closer, on_closed, arg))
        return;
    unwatch(srv);
    if (srv->webhook != NULL)
        tg_k8s_webhook_close(srv->webhook, on_webhook_closed, srv);
    if (srv->k8s != NULL)
        tg_cp_k8s_close(srv->k8s, on_k8s_closed, srv);
    uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
    uv_close((uv_handle_t *)&srv->reload_timer, on_handle_closed);
    uv_close((uv_handle_t *)&srv->sweep_timer, on_handle_closed);
    uv_close((uv_handle_t *)&srv->pace_timer, on_handle_closed);
    uv_close((uv_handle_t *)&srv->deadline_timer, on_handle_closed);
    uv_close((uv_handle_t *)&srv->accept_turn, on_handle_closed);
    for (struct tg_cp_conn *c = srv->conns; c != NULL; c = c->next) {
        if (c->hello_seen)
            tg_cp_stream_refuse(c, "control plane shutting down");
        else
            tg_msgstream_close(c->ms, false, "control plane shutting down");
    }
}

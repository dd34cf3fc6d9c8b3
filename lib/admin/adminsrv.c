/* The admin HTTP server of both binaries (adminsrv.h). */
#include "tollgate/adminsrv.h"
#include "tollgate/adminreq.h"
#include "tollgate/log.h"
#include "tollgate/list.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_TEXT "text/plain; charset=utf-8"
#define REFUSAL_LINES 20 /* refusal log lines per window */
#define REFUSAL_WINDOW_MS 10000

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* head deadline, then the linger */
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    struct tg_adminsrv *srv;
    struct conn *prev, *next;     /* srv->conns, oldest first, until freed */
    struct sockaddr_storage peer; /* a v4-mapped address stored as AF_INET */
    char peer_text[64];
    int open_handles;
    bool closing;
    const struct tg_adminreq *rq; /* during a serve_async call only */
    bool responded; /* answer queued: head[] is now a scratch buffer for dropped bytes */
    bool shut;      /* our side is shut down */
    bool peer_eof;
    bool pending; /* a serve_async answer is awaited: the memory stays until it comes */
    bool gone;    /* closed while pending: freed by tg_adminsrv_answer */
    bool head_only;
    char *body; /* malloc'd answer body, or NULL when it is static */
    char status[512];
    size_t head_len;
    char head[]; /* srv->cfg.head_max */
};

struct tg_adminsrv {
    uv_tcp_t listener;
    uv_tcp_t spare; /* takes a connection we cannot serve (out of memory), only to close it */
    struct tg_adminsrv_cfg cfg;
    struct conn *conns, *last;
    size_t n_live;   /* in conns and not closing: what the caps count */
    unsigned refs;   /* listener + busy spare + every conn; freed at 0 */
    bool spare_busy; /* spare is closing and cannot take another yet */
    bool backlog;    /* a connection is left in the listener until spare is free */
    bool stopping;
    uint64_t timeout_ms;
    int port;
    uint64_t log_window; /* loop ms the refusal-log window started */
    unsigned logged, unlogged;
};

static void admit(struct tg_adminsrv *s);

static void release(struct tg_adminsrv *s)
{
    if (--s->refs == 0) {
        void (*cb)(void *) = s->cfg.on_closed;
        void *arg = s->cfg.arg;

        free(s);
        if (cb != NULL)
            cb(arg);
        return;
    }
    if (s->backlog && !s->stopping)
        admit(s);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct tg_adminsrv *s = c->srv;

    if (--c->open_handles > 0)
        return;
    if (c->pending) { /* tg_adminsrv_answer frees it */
        c->gone = true;
        return;
    }
    TG_DLIST_UNLINK(&s->conns, &s->last, c, prev, next);
    free(c->body);
    free(c);
    release(s);
}

/* Idempotent; the only way a connection ends. Pending write and shutdown callbacks run
 * with UV_ECANCELED before the close callbacks, so c is still valid in them. */
static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->srv->n_live--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_timeout(uv_timer_t *t);

static void on_written(uv_write_t *req, int status)
{
    if (status < 0)
        conn_close(req->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    struct tg_adminsrv *s = c->srv;

    if (c->closing)
        return;
    c->shut = true;
    if (status < 0 || c->peer_eof) {
        conn_close(c);
        return;
    }
    /* wait for the client's FIN, dropping what it still sends, but not for long */
    uv_timer_start(&c->timer, on_timeout,
                   s->timeout_ms < TG_ADMINSRV_LINGER_MS ? s->timeout_ms : TG_ADMINSRV_LINGER_MS,
                   0);
}

/* Queues the whole answer and a shutdown of our side. An owned body is taken over (freed
 * with c), else it must be static. allow is the Allow header value, or NULL. */
static void respond(struct conn *c, const struct tg_adminsrv_reply *r, bool head_only,
                    const char *allow)
{
    uv_buf_t bufs[2];
    int n;

    if (r->owned)
        c->body = tg_unconst(r->body);
    c->responded = true;
    if (c->closing) /* serve stopped the server */
        return;
    n = snprintf(c->status, sizeof(c->status),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s"
                 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                 r->status, tg_adminreq_reason(r->status), r->type ? r->type : CT_TEXT, r->len,
                 allow ? "Allow: " : "", allow ? allow : "", allow ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(c->status)) {
        conn_close(c);
        return;
    }
    bufs[0] = uv_buf_init(c->status, (unsigned)n);
    bufs[1] = uv_buf_init(tg_unconst(r->body), (unsigned)r->len);
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, head_only || r->len == 0 ? 1 : 2,
                 on_written) < 0) {
        conn_close(c);
        return;
    }
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

static void respond_text(struct conn *c, int status, const char *text, bool head_only,
                         const char *allow)
{
    struct tg_adminsrv_reply r = {status, CT_TEXT, text, strlen(text), false};

    respond(c, &r, head_only, allow);
}

static void on_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;

    if (c->responded) { /* the linger is over, or the answer could not be written in time */
        conn_close(c);
        return;
    }
    respond_text(c, 408, "request timeout: the request head must arrive within the deadline\n",
                 false, NULL);
}

static bool method_allowed(const char *allow, const struct tg_adminreq *rq)
{
    const char *m = allow;

    while (*m != '\0') {
        size_t len = strcspn(m, ",");

        if (len == rq->method_len && memcmp(m, rq->method, len) == 0)
            return true;
        m += len;
        m += strspn(m, ", ");
    }
    return false;
}

/* At most REFUSAL_LINES per window: a refused peer must not be able to fill the disk. */
static void log_refusal(struct tg_adminsrv *s, struct conn *c, const struct tg_adminreq *rq,
                        const char *why)
{
    uint64_t now = uv_now(s->listener.loop);

    if (now - s->log_window >= REFUSAL_WINDOW_MS) {
        if (s->unlogged > 0)
            tg_warn("%s: %u more refusals in the last %d s not logged", s->cfg.name, s->unlogged,
                    REFUSAL_WINDOW_MS / 1000);
        s->log_window = now;
        s->logged = s->unlogged = 0;
    }
    if (s->logged >= REFUSAL_LINES) {
        s->unlogged++;
        return;
    }
    s->logged++;
    /* method is a token and path visible ASCII (the parser's rules): nothing to escape */
    tg_warn("%s: refused %.*s %.*s from %s: %s", s->cfg.name, (int)rq->method_len, rq->method,
            rq->path_len > 200 ? 200 : (int)rq->path_len, rq->path, c->peer_text, why);
}

static void finish(struct conn *c, const struct tg_adminsrv_reply *rp, bool head_only);

static void route(struct conn *c, const struct tg_adminreq *rq)
{
    struct tg_adminsrv *s = c->srv;
    const struct tg_adminsrv_route *rt = NULL;
    struct tg_adminsrv_reply r = {0};
    bool head_only = rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0;
    const char *why;
    char *msg;

    for (size_t i = 0; i < s->cfg.n_routes && rt == NULL; i++) {
        size_t n = strlen(s->cfg.routes[i].path);

        if ((n == rq->path_len || (s->cfg.routes[i].prefix && n < rq->path_len)) &&
            memcmp(s->cfg.routes[i].path, rq->path, n) == 0)
            rt = &s->cfg.routes[i];
    }
    if (rt == NULL) {
        respond_text(c, 404, "not found\n", head_only, NULL);
        return;
    }
    if (rt->access == TG_ADMINSRV_LOCAL &&
        (why = tg_adminreq_refusal(rq, (const struct sockaddr *)&c->peer)) != NULL) {
        log_refusal(s, c, rq, why);
        r.status = 403;
        if ((msg = malloc(strlen(why) + 16)) != NULL) {
            r.len = (size_t)sprintf(msg, "forbidden: %s\n", why);
            r.body = msg;
            r.owned = true;
        } else {
            r.body = "forbidden\n";
            r.len = strlen(r.body);
        }
        respond(c, &r, head_only, NULL);
        return;
    }
    if (!method_allowed(rt->allow, rq)) {
        respond_text(c, 405, "method not allowed\n", head_only, rt->allow);
        return;
    }
    if (rt->serve_async != NULL) {
        c->pending = true;
        c->head_only = head_only;
        uv_timer_stop(&c->timer); /* the route's own timeout bounds the wait */
        c->rq = rq;
        rt->serve_async(s->cfg.arg, rq->path, rq->path_len, (struct tg_adminsrv_pending *)c);
        c->rq = NULL; /* only valid during the call */
        return;
    }
    rt->serve(s->cfg.arg, &r);
    finish(c, &r, head_only);
}

const struct tg_adminreq *tg_adminsrv_request(const struct tg_adminsrv_pending *p)
{
    return ((const struct conn *)p)->rq;
}

void tg_adminsrv_answer(struct tg_adminsrv_pending *p, const struct tg_adminsrv_reply *r)
{
    struct conn *c = (struct conn *)p;

    c->pending = false;
    if (c->gone) { /* closed meanwhile: what on_conn_closed left undone */
        if (r->owned)
            free(tg_unconst(r->body));
        c->open_handles = 1;
        on_conn_closed((uv_handle_t *)&c->tcp);
        return;
    }
    if (c->closing) {
        if (r->owned)
            free(tg_unconst(r->body));
        return;
    }
    finish(c, r, c->head_only);
}

/* Sends what serve made of the request, or 500 when it made nothing. */
static void finish(struct conn *c, const struct tg_adminsrv_reply *rp, bool head_only)
{
    struct tg_adminsrv_reply r = *rp;

    if (r.status == 0 || r.len > UINT32_MAX) { /* uv_buf_t: an unsigned length */
        if (r.owned)
            free(tg_unconst(r.body));
        respond_text(c, 500, "internal error\n", head_only, NULL);
        return;
    }
    respond(c, &r, head_only, NULL);
}

/* New bytes arrived at head[from..head_len); answers once the blank line is in. */
static void on_head_bytes(struct conn *c, size_t from)
{
    struct tg_adminreq rq;
    size_t i;

    for (i = from; i < c->head_len; i++) {
        if (c->head[i] != '\n')
            continue;
        if ((i >= 1 && c->head[i - 1] == '\n') ||
            (i >= 2 && c->head[i - 1] == '\r' && c->head[i - 2] == '\n')) {
            if (tg_adminreq_parse(c->head, i + 1, &rq) < 0)
                respond_text(c, 400, "bad request\n", false, NULL);
            else
                route(c, &rq);
            return;
        }
    }
    if (c->head_len == c->srv->cfg.head_max)
        respond_text(c, 431, "request head too large\n", false, NULL);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    size_t max = c->srv->cfg.head_max;

    (void)suggested;
    /* before the answer head_len < head_max: a full head is answered at once */
    if (c->responded || c->pending) /* the head was used: the buffer is scratch now */
        *buf = uv_buf_init(c->head, (unsigned)max);
    else
        *buf = uv_buf_init(c->head + c->head_len, (unsigned)(max - c->head_len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    size_t from = c->head_len;

    (void)buf;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF) {
            conn_close(c);
        } else if (c->pending) { /* half-closed while we probe: answer all the same */
            c->peer_eof = true;
            uv_read_stop(st);
        } else if (c->responded) {
            c->peer_eof = true;
            uv_read_stop(st);
            if (c->shut)
                conn_close(c);
        } else if (c->head_len == 0) {
            conn_close(c); /* connected and left without a word */
        } else {
            /* half-closed before the head ended: answer, then close after the shutdown */
            c->peer_eof = true;
            uv_read_stop(st);
            respond_text(c, 400, "bad request\n", false, NULL);
        }
        return;
    }
    if (c->responded || c->pending)
        return; /* dropped: one request per connection */
    c->head_len += (size_t)nread;
    on_head_bytes(c, from);
}

/* ---- slots ---- */

static bool same_peer(const struct conn *a, const struct conn *b)
{
    if (a->peer.ss_family != b->peer.ss_family)
        return false;
    if (a->peer.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->peer)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)&b->peer)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)&a->peer)->sin6_addr,
                  &((const struct sockaddr_in6 *)&b->peer)->sin6_addr, 16) == 0;
}

/* Live connections from c's address, c included. */
static size_t peer_count(const struct tg_adminsrv *s, const struct conn *c)
{
    size_t n = 0;

    for (const struct conn *o = s->conns; o != NULL; o = o->next)
        n += !o->closing && same_peer(o, c);
    return n;
}

/* The oldest live connection of like's address (like itself excluded). */
static struct conn *oldest_of(struct tg_adminsrv *s, const struct conn *like)
{
    for (struct conn *o = s->conns; o != NULL; o = o->next)
        if (!o->closing && o != like && same_peer(o, like))
            return o;
    return NULL;
}

/* Makes room for the newest connection c (already counted): see adminsrv.h. The list is
 * at most TG_ADMINSRV_MAX_CONNS + 1 live long, so the quadratic scan stays small. */
static void make_room(struct tg_adminsrv *s, struct conn *c)
{
    struct conn *victim = NULL, *o;
    size_t most = 0, n;

    if (peer_count(s, c) > TG_ADMINSRV_MAX_PER_PEER) {
        victim = oldest_of(s, c);
    } else if (s->n_live > TG_ADMINSRV_MAX_CONNS) {
        for (o = s->conns; o != NULL; o = o->next) {
            if (o->closing || o == c || (n = peer_count(s, o)) <= most)
                continue;
            most = n;
            victim = o; /* the first of its address met in oldest-first order */
        }
    }
    if (victim == NULL)
        return;
    tg_debug("%s: %s: oldest connection from %s closed to make room for one from %s", s->cfg.name,
             same_peer(victim, c) ? "per-address cap" : "connection cap", victim->peer_text,
             c->peer_text);
    conn_close(victim);
}

static void peer_of(struct conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";

    memset(&c->peer, 0, sizeof(c->peer));
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(c->peer_text, sizeof(c->peer_text), "(unknown peer)");
        return; /* family 0: not loopback, one "address" of its own */
    }
    if (ss.ss_family == AF_INET6 &&
        IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&ss)->sin6_addr)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        struct sockaddr_in *in = (struct sockaddr_in *)&c->peer;

        in->sin_family = AF_INET;
        in->sin_port = in6->sin6_port;
        memcpy(&in->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
    } else {
        memcpy(&c->peer, &ss, sizeof(ss));
    }
    if (c->peer.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&c->peer;

        uv_ip4_name(in, ip, sizeof(ip));
        snprintf(c->peer_text, sizeof(c->peer_text), "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (c->peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&c->peer;

        uv_ip6_name(in6, ip, sizeof(ip));
        snprintf(c->peer_text, sizeof(c->peer_text), "[%s]:%u", ip,
                 (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(c->peer_text, sizeof(c->peer_text), "(address family %d)", (int)c->peer.ss_family);
    }
}

static struct conn *conn_new(struct tg_adminsrv *s)
{
    struct conn *c = malloc(sizeof(*c) + s->cfg.head_max);

    if (c == NULL)
        return NULL;
    memset(c, 0, sizeof(*c));
    if (uv_tcp_init(s->listener.loop, &c->tcp) < 0) {
        free(c);
        return NULL;
    }
    uv_timer_init(s->listener.loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->write_req.data = c;
    c->shutdown_req.data = c;
    c->open_handles = 2;
    c->srv = s;
    c->prev = s->last;
    if (s->last != NULL)
        s->last->next = c;
    else
        s->conns = c;
    s->last = c;
    s->n_live++;
    s->refs++;
    return c;
}

static void on_spare_closed(uv_handle_t *h)
{
    struct tg_adminsrv *s = h->data;

    s->spare_busy = false;
    release(s);
}

/* Takes the connection waiting in the listener: serves it, making room if the caps are
 * reached, or closes it when out of memory. libuv stops watching the listener until
 * uv_accept() is called, so one that cannot be taken now (spare busy) is taken from
 * on_spare_closed. */
static void admit(struct tg_adminsrv *s)
{
    uv_stream_t *server = (uv_stream_t *)&s->listener;
    struct conn *c = conn_new(s);
    int rc;

    s->backlog = false;
    if (c != NULL) {
        if ((rc = uv_accept(server, (uv_stream_t *)&c->tcp)) < 0) {
            tg_warn("%s: accept: %s", s->cfg.name, uv_strerror(rc));
            conn_close(c);
            return;
        }
        peer_of(c);
        make_room(s, c);
        if ((rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) < 0 ||
            (rc = uv_timer_start(&c->timer, on_timeout, s->timeout_ms, 0)) < 0) {
            tg_warn("%s: accept: %s", s->cfg.name, uv_strerror(rc));
            conn_close(c);
        }
        return;
    }
    if (s->spare_busy) {
        s->backlog = true;
        return;
    }
    if (uv_tcp_init(s->listener.loop, &s->spare) < 0)
        return;
    s->spare.data = s;
    s->spare_busy = true;
    s->refs++;
    if (uv_accept(server, (uv_stream_t *)&s->spare) == 0)
        tg_debug("%s: out of memory, connection refused", s->cfg.name);
    uv_close((uv_handle_t *)&s->spare, on_spare_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct tg_adminsrv *s = server->data;

    if (status < 0) {
        tg_warn("%s: listen: %s", s->cfg.name, uv_strerror(status));
        return;
    }
    admit(s);
}

static void on_listener_closed(uv_handle_t *h)
{
    release(h->data);
}

/* ---- life cycle ---- */

/* "ip:port" of addr for messages, when the caller gave no text. */
static const char *addr_text(const struct tg_addr *addr, char *buf, size_t cap)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)&addr->ss;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr->ss;
    char ip[64] = "?";

    if (addr->text[0] != '\0')
        return addr->text;
    if (addr->ss.ss_family == AF_INET) {
        uv_ip4_name(in, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (addr->ss.ss_family == AF_INET6) {
        uv_ip6_name(in6, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, cap, "(address family %d)", (int)addr->ss.ss_family);
    }
    return buf;
}

int tg_adminsrv_start(uv_loop_t *loop, const struct tg_addr *addr,
                      const struct tg_adminsrv_cfg *cfg, struct tg_adminsrv **out, char *err)
{
    struct tg_adminsrv *s = calloc(1, sizeof(*s));
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    bool inited = false;
    char text[96];
    int rc = TG_ENOMEM;

    if (s == NULL)
        goto fail;
    s->cfg = *cfg;
    if (s->cfg.name == NULL)
        s->cfg.name = "admin";
    if (s->cfg.head_max == 0)
        s->cfg.head_max = TG_ADMINSRV_HEAD_MAX;
    s->timeout_ms = TG_ADMINSRV_HEAD_MS;
    s->refs = 1; /* the listener */
    if ((rc = uv_tcp_init(loop, &s->listener)) < 0)
        goto fail;
    inited = true;
    s->listener.data = s;
    s->log_window = uv_now(loop);
    /* libuv sets SO_REUSEADDR, so a restart does not wait out TIME_WAIT */
    if ((rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr->ss, 0)) < 0)
        goto fail;
    /* a bind conflict may only show here (uv_tcp_bind defers EADDRINUSE) */
    if ((rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection)) < 0)
        goto fail;
    if ((rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len)) < 0)
        goto fail;
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    *out = s;
    return 0;
fail:
    tg_err_set(err, rc, "%s %s: %s", cfg->name ? cfg->name : "admin",
               addr_text(addr, text, sizeof(text)), tg_strerror(rc));
    if (inited) {
        s->stopping = true;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    } else {
        free(s);
        if (cfg->on_closed != NULL)
            cfg->on_closed(cfg->arg);
    }
    return rc;
}

void tg_adminsrv_stop(struct tg_adminsrv *s)
{
    if (s == NULL || s->stopping)
        return;
    s->stopping = true;
    s->backlog = false; /* closing the listener closes a connection left in it */
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        conn_close(c); /* unlinks only in its close callback, so the walk is safe */
}

int tg_adminsrv_port(const struct tg_adminsrv *s)
{
    return s->port;
}

void tg_adminsrv_set_timeout(struct tg_adminsrv *s, uint64_t ms)
{
    s->timeout_ms = ms;
}

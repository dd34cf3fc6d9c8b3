/* The inbound end of a tunnel: CONNECT streams to the app (tunnel.h). */
#include "tunnel.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "conn.h"
#include "tollgate/accesslog.h"
#include "tollgate/h2tun.h"
#include "tollgate/intercept.h"
#include "tollgate/list.h"
#include "tollgate/log.h"

/* A tunnel whose session is over sends close_notify, then waits this long at most for the
 * peer's own end before it closes its socket: frames the peer sent meanwhile (a window
 * update for bytes its apps took) are read and dropped, as a close with unread bytes would
 * answer them with a TCP reset, and the peer could lose the last frames we sent it (the
 * END_STREAMs its streams wait for) to that reset. */
#define LINGER_MS 2000

/* LINGER: a stream that ended whole both ways (its END_STREAM sent and the peer's received)
 * needs its tunnel no more, though its app may not have taken the last of the peer's bytes
 * yet (an app that half-closed before it read the whole upload): when the tunnel closes
 * (GOAWAY, the peer's idle close, a drain), those bytes are still written, then the FIN. A
 * stream whose app takes nothing for timeouts.idle meanwhile ends with a reset, as does
 * every such stream at the drain deadline or when a new generation revokes or denies the
 * caller (tg_tunnel_end); a tunnel closed by policy leaves none. Until then the stream's
 * socket holds the tunnel's tg_conn (closing, its TLS socket closed) and the worker's drain
 * waits for it. */

/* One app connection carried by the tunnel. It lives until both its socket has closed and
 * the session has said the stream is gone (or the session is freed). */
struct tg_tstream {
    struct tg_tunnel *tun;
    int32_t sid;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct tg_buf to_app;  /* the peer's payload; its window is this buffer's room */
    struct tg_buf to_peer; /* the app's bytes, taken by the session as windows allow */
    size_t writing;        /* bytes of to_app in flight to the app */
    size_t unacked;        /* bytes the app took, not yet given back as window */
    struct tg_addr upstream;
    uint16_t dest_port;
    char orig_dst[64]; /* transparent: the pod address and port it asked for, once valid */
    struct tg_ratelimit *rl;
    struct tg_ratelimit_key *rl_key;
    bool listener_counted; /* in its listener's open count (under max_connections) */
    uint64_t debt;         /* the peer's bytes not yet paid for from its bytes_per_second */
    uint64_t last_active;  /* uv_now() of its last byte either way: its idle deadline */
    bool connected, reading, app_eof, peer_eof, shut_issued, shut_done, deferred;
    bool sock_closing, sock_closed, h2_gone;
    bool flush_due; /* on_data added bytes: written once the session has read them all */
    bool refused;   /* answered with a refusal, which a RST_STREAM of ours would cancel */
    uint64_t start_unix_ms, bytes_received, bytes_sent;
    const char *outcome;
    char reason[200];
    struct tg_tstream *prev, *next;
};

static uint64_t unix_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void log_stream(struct tg_conn *c, const struct tg_tstream *st, const char *outcome,
                       const char *reason)
{
    struct tg_access_entry e;

    if (!c->w->rt->cfg->access_log)
        return;
    tg_conn_log_entry(c, &e); /* the tunnel's peer, identity and TLS fields */
    e.upstream = st->upstream.text;
    /* a captured tunnel's own original destination is the port its first stream asked for:
     * each stream's is the one it asked for */
    if (c->l->transparent)
        e.original_dst = st->orig_dst[0] ? st->orig_dst : NULL;
    e.start_unix_ms = st->start_unix_ms;
    e.bytes_received = st->bytes_received;
    e.bytes_sent = st->bytes_sent;
    e.duration_ms = unix_ms() - st->start_unix_ms;
    e.outcome = outcome;
    e.reason = reason != NULL && reason[0] ? reason : NULL;
    tg_accesslog_write(&e);
}

/* The stream moved bytes: its idle deadline, and the tunnel's, start again. */
static void touch(struct tg_tstream *st)
{
    st->last_active = uv_now(&st->tun->c->w->loop);
    tg_conn_touch(st->tun->c);
}

static void free_stream(struct tg_tstream *st)
{
    TG_DLIST_UNLINK(&st->tun->streams, TG_DLIST_NO_TAIL, st, prev, next);
    free(st);
}

static void timer_closed(uv_handle_t *h)
{
    tg_conn_handle_closed(((struct tg_tunnel *)h->data)->c);
}

/* The tunnel's own timer set to cb in ms (made on first use). */
static void timer_start(struct tg_tunnel *tun, uv_timer_cb cb, uint64_t ms)
{
    if (!tun->timer_open) {
        uv_timer_init(&tun->c->w->loop, &tun->timer);
        tun->timer.data = tun;
        tun->timer_open = true;
        tun->c->open_handles++;
    }
    uv_timer_start(&tun->timer, cb, ms, 0);
}

static void timer_close(struct tg_tunnel *tun)
{
    if (tun->timer_open && !uv_is_closing((uv_handle_t *)&tun->timer))
        uv_close((uv_handle_t *)&tun->timer, timer_closed);
}

/* After the tunnel closed: once no stream is left writing to its app, the timer goes. */
static void linger_check(struct tg_tunnel *tun)
{
    if (!tg_tunnel_lingers(tun->c))
        timer_close(tun);
}

static void on_stream_closed(uv_handle_t *h)
{
    struct tg_tstream *st = h->data;
    struct tg_conn *c = st->tun->c;

    st->sock_closed = true;
    if (st->rl_key != NULL)
        tg_ratelimit_conn_release(st->rl, st->rl_key, uv_hrtime());
    st->rl_key = NULL; /* the pace timer may still see the stream */
    st->debt = 0;
    if (st->listener_counted)
        atomic_fetch_sub(&c->l->limit->open, 1);
    log_stream(c, st, st->outcome, st->reason);
    tg_counter_add(&c->stats->closed, 1);
    tg_buf_drop(&st->to_app, &c->w->wide);
    tg_buf_drop(&st->to_peer, &c->w->pool);
    if (st->h2_gone)
        free_stream(st);
    if (c->closing)
        linger_check(c->tunnel); /* the last of the streams that outlived the tunnel */
    tg_conn_handle_closed(c);    /* may free c, and with it the streams the session held */
}

/* Ends the stream's app side: a reset on an error, so the app learns the stream broke;
 * RST_STREAM to the peer unless the session is done with it. The first outcome stays. */
static void end_stream(struct tg_tstream *st, const char *outcome, const char *reason)
{
    struct tg_conn *c = st->tun->c;

    if (st->sock_closing)
        return;
    st->sock_closing = true;
    st->outcome = outcome;
    if (reason != NULL)
        snprintf(st->reason, sizeof(st->reason), "%s", reason);
    if (!c->closing) {
        /* what the app will never take still counts against the tunnel's connection
         * window: give it back, or a few streams reset while full would stall the tunnel */
        tg_h2tun_consumed(st->tun->h2, st->sid, tg_buf_len(&st->to_app) + st->unacked);
        st->unacked = 0;
        if (strcmp(outcome, "ok") != 0 && !st->h2_gone && !st->refused)
            tg_h2tun_reset(st->tun->h2, st->sid, TG_H2TUN_CONNECT_ERROR);
    }
    if (strcmp(outcome, "ok") != 0 && st->connected &&
        uv_tcp_close_reset(&st->tcp, on_stream_closed) == 0)
        return;
    uv_close((uv_handle_t *)&st->tcp, on_stream_closed);
}

/* The stream could not reach the app: its CONNECT is answered with status and why (the
 * adapter then ends the stream itself). */
static void refuse_stream(struct tg_tstream *st, int status, const char *why)
{
    st->refused = true;
    tg_h2tun_refuse(st->tun->h2, st->sid, status, why);
}

/* The app's side failed: what was being done, and libuv's code (0: none). */
static void end_upstream(struct tg_tstream *st, const char *what, int rc)
{
    char why[200];

    snprintf(why, sizeof(why), "upstream %s: %s%s%s", st->upstream.text, what, rc < 0 ? ": " : "",
             rc < 0 ? uv_strerror(rc) : "");
    end_stream(st, "error", why);
}

static void progress(struct tg_conn *c)
{
    tg_pipe_progress(c);
}

static void maybe_done(struct tg_tstream *st)
{
    if (st->h2_gone && st->shut_done && st->app_eof && tg_buf_len(&st->to_peer) == 0)
        end_stream(st, "ok", NULL);
}

static void on_app_shutdown(uv_shutdown_t *req, int status)
{
    struct tg_tstream *st = req->handle->data;

    if (st->sock_closing)
        return;
    if (status < 0 && status != UV_ENOTCONN) {
        end_upstream(st, "shutdown", status);
        progress(st->tun->c);
        return;
    }
    st->shut_done = true;
    maybe_done(st);
}

/* What the app took goes back to the peer as window once no write is in flight, as far as
 * the room at the buffer's tail takes what the peer may then send (tg_buf_window_back),
 * and once the bytes are paid for (a paced caller's stream waits for its tokens, alone).
 * What stays is given back after the app's next write, or at once when the buffer empties. */
static void give_back(struct tg_tstream *st)
{
    struct tg_conn *c = st->tun->c;
    size_t n;

    if (st->writing > 0 || st->debt > 0 || st->unacked == 0 || st->sock_closing || c->closing)
        return;
    n = tg_buf_window_back(&st->to_app, c->w->wide.block_size,
                           tg_h2tun_window(st->tun->h2, st->sid), st->unacked);
    if (n == 0)
        return;
    tg_h2tun_consumed(st->tun->h2, st->sid, n);
    st->unacked -= n;
}

/* The app took n more bytes of to_app: progress, as a direct connection's writes are. */
static void gave(struct tg_tstream *st, size_t n)
{
    tg_buf_consume(&st->to_app, n);
    st->unacked += n;
    touch(st);
    give_back(st);
}

static void on_pace(uv_timer_t *t);

/* The caller's own bytes_per_second (its rate_limits) paces each of its streams as it does
 * its direct connections, from the same bucket: a stream's window goes back only for bytes
 * paid for, so the peer's stream waits while the others flow. */
static void pay(struct tg_tstream *st)
{
    struct tg_tunnel *tun = st->tun;
    uint64_t delay = 0, ms;

    if (st->debt == 0 || st->rl_key == NULL)
        return;
    st->debt -= tg_ratelimit_bytes_take(st->rl, st->rl_key, st->debt, uv_hrtime(), &delay);
    if (st->debt == 0)
        return;
    ms = delay / 1000000 + 1;
    if (!tun->timer_open || !uv_is_active((uv_handle_t *)&tun->timer) ||
        uv_timer_get_due_in(&tun->timer) > ms) {
        tg_counter_add(&tun->c->stats->throttled, 1);
        timer_start(tun, on_pace, ms);
    }
}

static void on_pace(uv_timer_t *t)
{
    struct tg_tunnel *tun = t->data;

    for (struct tg_tstream *st = tun->streams; st != NULL; st = st->next) {
        pay(st);
        give_back(st);
    }
    tg_pipe_progress(tun->c); /* the WINDOW_UPDATEs */
}

static void flush_app(struct tg_tstream *st);

static void on_app_write(uv_write_t *req, int status)
{
    struct tg_tstream *st = req->handle->data;
    size_t n = st->writing;

    if (st->sock_closing)
        return; /* UV_ECANCELED: never touch the peer */
    st->writing = 0;
    if (status < 0) { /* the write's bytes stay unacknowledged: the stream ends */
        end_upstream(st, "write", status);
        progress(st->tun->c);
        return;
    }
    gave(st, n);
    flush_app(st);
    progress(st->tun->c);
}

static void flush_app(struct tg_tstream *st)
{
    size_t len = tg_buf_len(&st->to_app);
    uv_buf_t b;
    int rc;

    if (st->sock_closing || !st->connected || st->writing > 0)
        return;
    if (len > 0) {
        b = uv_buf_init(tg_buf_data(&st->to_app), (unsigned)len);
        rc = uv_try_write((uv_stream_t *)&st->tcp, &b, 1);
        if (rc < 0 && rc != UV_EAGAIN) {
            end_upstream(st, "write", rc);
            return;
        }
        if (rc > 0 && (size_t)rc == len) {
            gave(st, len);
        } else {
            size_t done = rc > 0 ? (size_t)rc : 0;

            st->writing = len - done;
            if (done > 0) {
                tg_buf_consume(&st->to_app, done);
                st->unacked += done;
                touch(st);
            }
            b = uv_buf_init(tg_buf_data(&st->to_app), (unsigned)st->writing);
            rc = uv_write(&st->wreq, (uv_stream_t *)&st->tcp, &b, 1, on_app_write);
            if (rc < 0) {
                st->writing = 0;
                end_upstream(st, "write", rc);
            }
            return;
        }
    }
    /* all written: the storage goes back, so an idle stream holds no buffer (as pipe.c) */
    tg_buf_release(&st->to_app, &st->tun->c->w->wide);
    if (st->peer_eof && !st->shut_issued && tg_buf_len(&st->to_app) == 0) {
        st->shut_issued = true;
        rc = uv_shutdown(&st->sreq, (uv_stream_t *)&st->tcp, on_app_shutdown);
        if (rc < 0)
            end_upstream(st, "shutdown", rc);
    }
}

static void on_app_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tg_tstream *st = h->data;

    (void)suggested;
    *buf = uv_buf_init(NULL, 0);
    if (tg_buf_reserve(&st->to_peer, &st->tun->c->w->pool, true) < 0)
        return; /* UV_ENOBUFS follows: reading stops */
    *buf = uv_buf_init(tg_buf_tail(&st->to_peer), (unsigned)tg_buf_room(&st->to_peer));
}

static void set_reading(struct tg_tstream *st, bool want);

/* Reading the app stopped for room: its socket is probed for a reset (sweep). */
static bool paused(const struct tg_tstream *st)
{
    return st->connected && !st->reading && !st->app_eof && !st->sock_closing;
}

/* A stream paused: the tunnel's timer comes within TG_PAUSED_PROBE_MS (unless it is ending:
 * its timer is LINGER_MS then). */
static void arm_probe(struct tg_tunnel *tun)
{
    uv_timer_t *t = &tun->c->timer;

    if (!tun->c->closing && !tun->ending &&
        (!uv_is_active((uv_handle_t *)t) || uv_timer_get_due_in(t) > TG_PAUSED_PROBE_MS))
        tg_conn_arm_timer(tun->c, TG_PAUSED_PROBE_MS);
}

static void on_app_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tg_tstream *st = s->data;
    struct tg_conn *c = st->tun->c;

    (void)buf;
    if (st->sock_closing)
        return;
    if (nread == 0) { /* nothing after all (EAGAIN): no storage held for it */
        tg_buf_release(&st->to_peer, &c->w->pool);
        return;
    }
    if (nread > 0) {
        tg_buf_commit(&st->to_peer, (size_t)nread);
        st->bytes_sent += (size_t)nread;
        touch(st);
        if (tg_buf_room(&st->to_peer) == 0) {
            set_reading(st, false);
            arm_probe(st->tun);
        }
    } else if (nread == UV_ENOBUFS) {
        set_reading(st, false);
        arm_probe(st->tun);
    } else if (nread == UV_EOF) {
        set_reading(st, false);
        st->app_eof = true;
    } else {
        end_upstream(st, "read", (int)nread);
        progress(c);
        return;
    }
    if (st->deferred) {
        st->deferred = false;
        tg_h2tun_resume(st->tun->h2, st->sid);
    }
    progress(c);
}

static void set_reading(struct tg_tstream *st, bool want)
{
    if (want == st->reading || st->sock_closing || !st->connected || st->app_eof)
        return;
    st->reading = want;
    if (!want) {
        uv_read_stop((uv_stream_t *)&st->tcp);
        return;
    }
    if (uv_read_start((uv_stream_t *)&st->tcp, on_app_alloc, on_app_read) < 0) {
        st->reading = false;
        end_upstream(st, "read start failed", 0);
    }
}

/* ---- the session's callbacks -------------------------------------------------------- */

static bool parse_authority(const char *a, struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(a, ':');
    char *end;
    unsigned long port;
    size_t hlen;

    if (colon == NULL || colon == a || colon[1] == '\0')
        return false;
    port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port == 0 || port > 65535 || colon[1] < '0' || colon[1] > '9')
        return false;
    hlen = (size_t)(colon - a);
    if (hlen >= sizeof(host))
        return false;
    memset(ss, 0, sizeof(*ss));
    if (a[0] == '[') {
        if (hlen < 3 || a[hlen - 1] != ']')
            return false;
        memcpy(host, a + 1, hlen - 2);
        host[hlen - 2] = '\0';
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0;
    }
    memcpy(host, a, hlen);
    host[hlen] = '\0';
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

bool tg_tunnel_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

static void set_addr(struct tg_addr *dst, const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN] = "?";

    dst->ss = *ss;
    if (ss->ss_family == AF_INET6) {
        dst->len = sizeof(struct sockaddr_in6);
        uv_ip6_name((const struct sockaddr_in6 *)ss, host, sizeof(host));
        snprintf(dst->text, sizeof(dst->text), "[%s]:%u", host, port_of(ss));
    } else {
        dst->len = sizeof(struct sockaddr_in);
        uv_ip4_name((const struct sockaddr_in *)ss, host, sizeof(host));
        snprintf(dst->text, sizeof(dst->text), "%s:%u", host, port_of(ss));
    }
}

/* Where a stream for authority goes. An explicit listener sends every stream to its
 * upstream (the authority is only checked for form); a transparent one to the port asked
 * for, on this pod's own address only: the one the tunnel itself was sent to, so a peer
 * cannot reach any other host through us. */
static bool route_stream(struct tg_conn *c, const char *authority, struct tg_tstream *st, char *why,
                         size_t cap)
{
    struct tg_addr *up = &st->upstream;
    uint16_t *port = &st->dest_port;
    const struct tg_listener_def *l = c->l;
    struct sockaddr_storage want, orig;
    uv_os_fd_t fd;

    if (!parse_authority(authority, &want)) {
        snprintf(why, cap, "bad_authority: not an address and port");
        return false;
    }
    if (!l->transparent) {
        *up = *l->upstream;
        *port = port_of(&l->listen->ss);
        return true;
    }
    if (uv_fileno((uv_handle_t *)&c->down.tcp, &fd) < 0 ||
        tg_intercept_original_dst(fd, &orig) < 0 || !tg_tunnel_same_host(&want, &orig)) {
        snprintf(why, cap, "bad_authority: not this workload's address");
        return false;
    }
    set_addr(up, &want); /* an address of this pod's: the stream's original destination */
    snprintf(st->orig_dst, sizeof(st->orig_dst), "%s", up->text);
    *port = port_of(&want);
    if (*port == port_of(&l->listen->ss)) {
        snprintf(why, cap, "loop: the authority is our own port %u", *port);
        return false;
    }
    if (l->http_mesh != NULL) {
        const struct tg_mesh_dest *d = tg_mesh_lookup(&c->gen->mesh, &want);

        /* its requests must each be decided: a byte pipe would pass them all */
        if (d != NULL && d->http) {
            snprintf(why, cap, "http_port: port %u is protocol: http, not served over tunnels yet",
                     *port);
            return false;
        }
    }
    if (l->upstream_loopback) {
        memset(&orig, 0, sizeof(orig));
        if (want.ss_family == AF_INET6)
            uv_ip6_addr("::1", *port, (struct sockaddr_in6 *)&orig);
        else
            uv_ip4_addr("127.0.0.1", *port, (struct sockaddr_in *)&orig);
        set_addr(up, &orig);
    }
    return true;
}

/* The stream's verdict, as a connection's: revocation and the rules for its port, then the
 * caller's connection limits. */
static bool stream_allowed(struct tg_conn *c, uint16_t port, struct tg_tstream *st, char *why,
                           size_t cap)
{
    uint16_t tunnel_port = c->dest_port;
    const struct tg_http_cfg *http = c->http_cfg;
    bool ok;

    /* the rules match on the port this stream asked for, as for a byte pipe: never with the
     * leniency of an HTTP port, whose rules are decided for each request */
    c->dest_port = port;
    c->http_cfg = NULL;
    ok = tg_conn_authorized(c, c->gen->policy, why, cap);
    c->dest_port = tunnel_port;
    c->http_cfg = http;
    /* each stream is an app connection under the listener's own limits too */
    return ok && tg_conn_listener_admit(c->l, c->stats, &st->listener_counted, why, cap) &&
           tg_conn_admit(c, &st->rl, &st->rl_key, why, cap);
}

static void on_app_connect(uv_connect_t *req, int status)
{
    struct tg_tstream *st = req->handle->data;
    struct tg_conn *c = st->tun->c;

    if (st->sock_closing)
        return;
    if (status < 0) {
        tg_counter_add(&c->stats->upstream_connect_failed, 1);
        refuse_stream(st, 502, uv_strerror(status));
        end_upstream(st, "connect", status);
        progress(c);
        return;
    }
    st->connected = true;
    uv_tcp_nodelay(&st->tcp, 1);
    if (tg_h2tun_accept(st->tun->h2, st->sid) < 0) {
        end_stream(st, "error", "the stream was gone before the app answered");
        progress(c);
        return;
    }
    set_reading(st, true);
    flush_app(st); /* what the peer sent before the answer */
    progress(c);
}

static void *on_open(void *arg, int32_t sid, const char *authority)
{
    struct tg_tunnel *tun = arg;
    struct tg_conn *c = tun->c;
    struct tg_tstream *st = calloc(1, sizeof(*st));
    char why[200];
    uint64_t start = unix_ms();
    int rc;

    tg_counter_add(&c->stats->opened, 1);
    if (st == NULL) {
        tg_h2tun_refuse(tun->h2, sid, 503, "out of memory");
        tg_counter_add(&c->stats->closed, 1);
        return NULL;
    }
    st->tun = tun;
    st->sid = sid;
    st->start_unix_ms = start;
    st->last_active = uv_now(&c->w->loop);
    st->outcome = "ok";
    snprintf(st->upstream.text, sizeof(st->upstream.text), "%s", authority);
    if (!route_stream(c, authority, st, why, sizeof(why)) ||
        !stream_allowed(c, st->dest_port, st, why, sizeof(why))) {
        tg_info("%s: tunnel stream of %s to %s refused: %s", c->l->name, tg_tls_peer(c->tls)->id,
                authority, why);
        tg_h2tun_refuse(tun->h2, sid, 403, why);
        log_stream(c, st, "refused", why);
        tg_counter_add(&c->stats->closed, 1);
        if (st->listener_counted)
            atomic_fetch_sub(&c->l->limit->open, 1);
        free(st);
        return NULL;
    }
    uv_tcp_init(&c->w->loop, &st->tcp);
    st->tcp.data = st; /* the requests' callbacks find the stream through their handle */
    c->open_handles++;
    TG_DLIST_PUSH(&tun->streams, st, prev, next);
    if (c->l->transparent && !c->l->upstream_loopback &&
        (rc = tg_conn_bind_source(&st->tcp, st->upstream.ss.ss_family == AF_INET6)) < 0) {
        refuse_stream(st, 502, "no source address for the app");
        end_upstream(st, "source address", rc);
        return st;
    }
    rc = uv_tcp_connect(&st->creq, &st->tcp, (const struct sockaddr *)&st->upstream.ss,
                        on_app_connect);
    if (rc < 0) {
        tg_counter_add(&c->stats->upstream_connect_failed, 1);
        refuse_stream(st, 502, uv_strerror(rc));
        end_upstream(st, "connect", rc);
    }
    return st;
}

static void on_data(void *arg, void *stream, const uint8_t *p, size_t n)
{
    struct tg_tstream *st = stream;
    struct tg_conn *c = st->tun->c;

    (void)arg;
    if (st->sock_closing) { /* nobody to give them to: the window goes back at once */
        tg_h2tun_consumed(st->tun->h2, st->sid, n);
        return;
    }
    if (tg_buf_reserve(&st->to_app, &c->w->wide, st->writing == 0) < 0 ||
        tg_buf_room(&st->to_app) < n) {
        end_stream(st, "error", "no room for the peer's bytes (window exceeded)");
        tg_h2tun_consumed(st->tun->h2, st->sid, n);
        return;
    }
    memcpy(tg_buf_tail(&st->to_app), p, n);
    tg_buf_commit(&st->to_app, n);
    st->bytes_received += n;
    if (st->rl_key != NULL) {
        st->debt += n;
        pay(st);
    }
    touch(st);
    /* one write for all the DATA frames of this read (tg_tunnel_io), not one per frame */
    st->flush_due = true;
}

/* After the session has read what TLS gave it: each stream that got bytes writes them. */
static void flush_streams(struct tg_tunnel *tun)
{
    for (struct tg_tstream *st = tun->streams, *next; st != NULL; st = next) {
        next = st->next;
        if (st->flush_due) {
            st->flush_due = false;
            flush_app(st);
        }
    }
}

static void on_eof(void *arg, void *stream)
{
    struct tg_tstream *st = stream;

    (void)arg;
    st->peer_eof = true;
    flush_app(st);
}

static void on_close(void *arg, void *stream, uint32_t code)
{
    struct tg_tstream *st = stream;

    (void)arg;
    st->h2_gone = true;
    if (st->sock_closed) {
        free_stream(st);
        return;
    }
    if (code != 0) {
        char why[80];

        snprintf(why, sizeof(why), "stream reset by the tunnel peer (HTTP/2 error %u)", code);
        end_stream(st, "error", why);
    } else {
        maybe_done(st);
    }
}

static ssize_t on_read(void *arg, void *stream, uint8_t *dst, size_t cap, bool *eof)
{
    struct tg_tstream *st = stream;
    size_t n = tg_buf_len(&st->to_peer);

    (void)arg;
    if (n > 0) {
        n = n < cap ? n : cap;
        memcpy(dst, tg_buf_data(&st->to_peer), n);
        tg_buf_consume(&st->to_peer, n);
        tg_buf_release(&st->to_peer, &st->tun->c->w->pool); /* if the session took it all */
        set_reading(st, true);
        return (ssize_t)n;
    }
    if (st->app_eof) {
        *eof = true;
        return 0;
    }
    if (st->sock_closing)
        return TG_EINVAL; /* resets the stream */
    st->deferred = true;
    return TG_EAGAIN;
}

/* ---- the tunnel --------------------------------------------------------------------- */

void tg_tunnel_start(struct tg_conn *c)
{
    struct tg_tunnel *tun = calloc(1, sizeof(*tun));
    struct tg_h2tun_ops ops = {.on_open = on_open,
                               .on_data = on_data,
                               .on_eof = on_eof,
                               .on_close = on_close,
                               .on_read = on_read,
                               .arg = tun};

    if (tun == NULL ||
        tg_h2tun_new(&ops, (uint32_t)tg_worker_tunnel_window(c->w), (uint32_t)c->w->wide.block_size,
                     c->w->rt->cfg->tunnel_pool.streams_per_connection, &tun->h2) < 0) {
        free(tun);
        tg_conn_close(c, "error", "out of memory");
        return;
    }
    tun->c = c;
    c->tunnel = tun;
    c->state = TG_CONN_PIPE;
    tg_tunnel_frames_to_wire(c);
    if (c->listener_counted) { /* not an app connection: its streams count, each */
        atomic_fetch_sub(&c->l->limit->open, 1);
        c->listener_counted = false;
    }
    /* what the tunnel's TLS side writes comes from the frames the session makes */
    c->dir[1].eof = false;
    tg_conn_touch(c);
    tg_conn_arm_idle(c);
    tg_pipe_progress(c);
}

struct tg_dir *tg_tunnel_in(struct tg_conn *c)
{
    return &c->dir[c->l->inbound ? 0 : 1];
}

struct tg_dir *tg_tunnel_out(struct tg_conn *c)
{
    return &c->dir[c->l->inbound ? 1 : 0];
}

void tg_tunnel_frames_to_wire(struct tg_conn *c)
{
    for (int i = 0; i < 2; i++) {
        struct tg_dir *d = &c->dir[i];

        tg_buf_release(&d->buf, d->pool);
        if (d->buf.data == NULL) /* empty, as before any frame */
            d->pool = &c->w->wire;
    }
}

bool tg_tunnel_more(const struct tg_conn *c)
{
    return c->tunnel->fed && !c->dir[c->l->inbound ? 0 : 1].eof;
}

void tg_tunnel_kick(struct tg_tunnel *tun)
{
    if (tun->busy)
        tun->kicked = true; /* tg_tunnel_io sends again before it returns */
    else if (!tun->c->closing)
        tg_pipe_progress(tun->c);
}

/* Whether a stream still needs the tunnel (one that ended whole does not: LINGER). */
static bool needed(const struct tg_tunnel *tun)
{
    if (tun->riding > 0)
        return true;
    for (const struct tg_tstream *st = tun->streams; st != NULL; st = st->next)
        if (!st->h2_gone && !st->sock_closing)
            return true;
    return false;
}

void tg_tunnel_io(struct tg_conn *c)
{
    struct tg_tunnel *tun = c->tunnel;
    struct tg_buf *in = &tg_tunnel_in(c)->buf, *out = &tg_tunnel_out(c)->buf;
    char err[TG_ERRLEN];
    int rc = 0;

    tun->fed = false;
    tun->busy = true;
    if (tg_buf_len(in) > 0 && !tun->ending) {
        rc = tg_h2tun_recv(tun->h2, (const uint8_t *)tg_buf_data(in), tg_buf_len(in), err);
        tg_buf_consume(in, tg_buf_len(in));
        tun->fed = true;
        flush_streams(tun);
        if (rc < 0)
            tg_info("%s: tunnel %s %s: %s", c->l->name, c->l->inbound ? "of" : "to",
                    tg_tls_peer(c->tls)->id, err);
    } else if (tg_buf_len(in) > 0) { /* ending: read until the peer's end, dropped */
        tg_buf_consume(in, tg_buf_len(in));
        tun->fed = true;
    }
    /* the streams' callbacks ask for more sending (a window given back, an app's bytes);
     * each such kick is one more round here, never a call back into the session */
    do {
        size_t before = tg_buf_len(out);

        tun->kicked = false;
        if (!c->closing && (rc = tg_h2tun_send(tun->h2, out, tg_tunnel_out(c)->pool)) < 0)
            break;
        if (tun->outbound) /* an inbound tunnel's frames count as its listener's bytes */
            tg_counter_add(tg_tunnel_out(c)->bytes_stat, tg_buf_len(out) - before);
        if (!c->closing && tun->outbound)
            tg_tunnel_poke(tun);
    } while (tun->kicked && !c->closing);
    tun->busy = false;
    if (c->closing)
        return;
    if (rc < 0) {
        tg_conn_close(c, "error", "tunnel: out of memory");
        return;
    }
    if (tg_tunnel_in(c)->eof) { /* the peer's TLS stream ended: nothing more can come */
        tg_conn_close(c, needed(tun) ? "error" : "ok", "tunnel closed by the peer");
        return;
    }
    if (!tun->ending && tg_h2tun_done(tun->h2) && tg_buf_len(out) == 0) {
        /* close_notify, then the peer's end (above), or LINGER_MS (tg_tunnel_idle) */
        tun->ending = true;
        tg_tls_shutdown(c->tls);
        tg_conn_arm_timer(c, LINGER_MS);
    }
}

/* The stream ended whole both ways: only its app's socket is left (LINGER). */
static bool whole(const struct tg_tstream *st)
{
    return st->h2_gone && !st->sock_closing;
}

/* Ends the streams idle for timeouts.idle and, while the tunnel is open, those whose paused
 * app socket holds a reset nobody read (the peer is told at once); after the tunnel closed
 * (LINGER) only the idle limit applies. Returns in how many ms the next check is due. */
static uint64_t expire_streams(struct tg_tunnel *tun)
{
    struct tg_conn *c = tun->c;
    uint64_t now = uv_now(&c->w->loop), limit = c->gen->idle_timeout_ms, next = limit;
    int err;

    for (struct tg_tstream *st = tun->streams; st != NULL; st = st->next) {
        uint64_t idle = now - st->last_active;
        bool probe = !c->closing && paused(st);

        if (st->sock_closing)
            continue;
        if ((err = probe ? tg_conn_sock_error(&st->tcp) : 0) < 0) {
            end_upstream(st, "read", err);
        } else if (idle >= limit) {
            char why[120];

            if (c->closing)
                snprintf(why, sizeof(why),
                         "idle for %llu ms after its tunnel closed, %zu bytes not taken by the app",
                         (unsigned long long)idle, tg_buf_len(&st->to_app) + st->writing);
            else
                snprintf(why, sizeof(why), "idle for %llu ms", (unsigned long long)idle);
            end_stream(st, "timeout", why);
        } else {
            if (limit - idle < next)
                next = limit - idle;
            if (probe && next > TG_PAUSED_PROBE_MS)
                next = TG_PAUSED_PROBE_MS;
        }
    }
    return next;
}

/* LINGER's deadline: a stream whose app took nothing for timeouts.idle ends with a reset. */
static void on_linger(uv_timer_t *t)
{
    struct tg_tunnel *tun = t->data;

    timer_start(tun, on_linger, expire_streams(tun));
    linger_check(tun);
}

void tg_tunnel_close(struct tg_conn *c)
{
    struct tg_tunnel *tun = c->tunnel;
    char why[240];
    bool linger = false;

    if (tun == NULL)
        return;
    if (tun->outbound) {
        tg_tunnel_close_outbound(tun);
        return;
    }
    snprintf(why, sizeof(why), "tunnel closed: %s", c->reason[0] ? c->reason : c->outcome);
    for (struct tg_tstream *st = tun->streams; st != NULL; st = st->next) {
        /* not a tunnel closed by policy (a revoked or denied peer): its streams end, all */
        if (whole(st) && strcmp(c->outcome, "refused") != 0)
            linger = true;
        else
            end_stream(st, "error", why);
    }
    /* the pace is over (no window goes back now); the streams left write their last bytes */
    if (linger)
        timer_start(tun, on_linger, c->gen->idle_timeout_ms);
    else
        timer_close(tun);
}

bool tg_tunnel_lingers(const struct tg_conn *c)
{
    if (c->tunnel == NULL || c->tunnel->outbound || !c->closing)
        return false;
    for (const struct tg_tstream *st = c->tunnel->streams; st != NULL; st = st->next)
        if (!st->sock_closing)
            return true;
    return false;
}

void tg_tunnel_end(struct tg_conn *c, const char *outcome, const char *why)
{
    if (!tg_tunnel_lingers(c))
        return;
    for (struct tg_tstream *st = c->tunnel->streams; st != NULL; st = st->next)
        end_stream(st, outcome, why);
}

void tg_tunnel_free(struct tg_conn *c)
{
    struct tg_tunnel *tun = c->tunnel;

    if (tun == NULL)
        return;
    tg_h2tun_free(tun->h2); /* says nothing more of the streams */
    while (tun->streams != NULL)
        free_stream(tun->streams);
    tg_tunnel_free_outbound(tun);
    free(tun);
    c->tunnel = NULL;
}

bool tg_tunnel_recheck(struct tg_conn *c, const struct tg_policy *p, char *why, size_t cap)
{
    uint16_t tunnel_port = c->dest_port;
    const struct tg_http_cfg *http = c->http_cfg;
    bool revoked = false;

    c->http_cfg = NULL; /* as stream_allowed decides */
    for (struct tg_tstream *st = c->tunnel->streams; st != NULL && !revoked; st = st->next) {
        if (st->sock_closing)
            continue;
        c->dest_port = st->dest_port;
        if (!tg_conn_authorized(c, p, why, cap)) {
            char line[240];

            revoked = strncmp(why, "revoked:", 8) == 0;
            snprintf(line, sizeof(line), "%s (live stream closed by a new generation)", why);
            end_stream(st, "refused", line);
        }
    }
    c->dest_port = tunnel_port;
    c->http_cfg = http;
    return !revoked;
}

/* The inbound end's timer: streams idle for the idle timeout end (each is a connection of
 * its own), and so does one whose app reset its socket while we did not read it (probed each
 * TG_PAUSED_PROBE_MS, as a direct connection's paused side); the tunnel ends once it has had
 * no stream for as long. */
static void sweep(struct tg_conn *c)
{
    uint64_t now = uv_now(&c->w->loop), next = expire_streams(c->tunnel);

    if (c->tunnel->streams == NULL && now - c->last_active >= c->gen->idle_timeout_ms) {
        tg_conn_close(c, "timeout", "idle for %llu ms", (unsigned long long)(now - c->last_active));
        return;
    }
    tg_pipe_progress(c); /* the RST_STREAMs of the streams that ended */
    if (!c->closing)
        tg_conn_arm_timer(c, next);
}

void tg_tunnel_idle(struct tg_conn *c)
{
    if (c->tunnel->ending)
        tg_conn_close(c, "ok", NULL); /* the peer did not end in LINGER_MS */
    else if (c->tunnel->outbound)
        tg_tunnel_pool_idle(c);
    else
        sweep(c);
}

void tg_tunnel_drain(struct tg_conn *c)
{
    if (c->tunnel == NULL || c->closing)
        return;
    if (c->tunnel->outbound) {
        tg_tunnel_retire(c->tunnel);
        return;
    }
    tg_h2tun_goaway(c->tunnel->h2);
    tg_pipe_progress(c);
}

/* Connection life cycle: accept, upstream connect, handshake, deadlines, close. */
#include "tollgate/conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "tollgate/accesslog.h"
#include "tollgate/log.h"

static void start_connect(struct tg_conn *c);

static uint64_t unix_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void format_addr(const struct sockaddr_storage *ss, char *dst, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

        uv_ip4_name(a, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(dst, cap, "%s:%d", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

        uv_ip6_name(a, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(dst, cap, "[%s]:%d", host, port);
    } else {
        snprintf(dst, cap, "?");
    }
}

static void arm_timer(struct tg_conn *c, uint64_t ms);

static void on_timer(uv_timer_t *t)
{
    struct tg_conn *c = t->data;
    const struct tg_config *cfg = c->w->rt->cfg;
    uint64_t idle;

    switch (c->state) {
    case TG_CONN_CONNECT:
        tg_counter_add(&c->stats->upstream_connect_failed, 1);
        tg_conn_close(c, "error", "upstream %s: connect timed out", c->l->upstream->text);
        return;
    case TG_CONN_HANDSHAKE:
        tg_counter_add(&c->stats->hs_failed[TG_HSF_TIMEOUT], 1);
        tg_conn_close(c, "timeout", "%s: no handshake within %llu ms",
                      tg_hs_fail_name(TG_HSF_TIMEOUT),
                      (unsigned long long)cfg->handshake_timeout_ms);
        return;
    case TG_CONN_PIPE:
        idle = uv_now(&c->w->loop) - c->last_active;
        if (idle >= cfg->idle_timeout_ms) {
            tg_conn_close(c, "timeout", "idle for %llu ms", (unsigned long long)idle);
            return;
        }
        arm_timer(c, cfg->idle_timeout_ms - idle);
        return;
    }
}

static void arm_timer(struct tg_conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tg_conn *c = h->data;
    struct tg_access_entry e;
    const struct tg_peer_info *peer;

    if (h != (uv_handle_t *)&c->timer)
        c = ((struct tg_side *)h->data)->conn;
    if (--c->open_handles > 0)
        return;
    peer = c->tls != NULL ? tg_tls_peer(c->tls) : NULL;
    if (c->w->rt->cfg->access_log) {
        memset(&e, 0, sizeof(e));
        e.start_unix_ms = c->start_unix_ms;
        e.listener = c->l->name;
        e.direction = c->l->inbound ? "inbound" : "outbound";
        e.peer = c->peer_addr;
        e.peer_id = peer != NULL ? peer->id : NULL;
        e.upstream = c->l->upstream->text;
        e.tls_version = c->handshake_done ? tg_tls_version(c->tls) : NULL;
        e.cipher = c->handshake_done ? tg_tls_cipher(c->tls) : NULL;
        e.serial = peer != NULL && peer->id != NULL ? peer->serial : NULL;
        e.bytes_received = c->bytes_received;
        e.bytes_sent = c->bytes_sent;
        e.duration_ms = unix_ms() - c->start_unix_ms;
        e.outcome = c->outcome;
        e.reason = c->reason[0] ? c->reason : NULL;
        tg_accesslog_write(&e);
    }
    tg_counter_add(&c->stats->closed, 1);
    tg_tls_free(c->tls);
    tg_buf_drop(&c->dir[0].buf, &c->w->pool);
    tg_buf_drop(&c->dir[1].buf, &c->w->pool);
    tg_worker_conn_removed(c->w, c);
    tg_gen_unref(c->gen);
    free(c);
}

void tg_conn_close(struct tg_conn *c, const char *outcome, const char *fmt, ...)
{
    va_list ap;

    if (c->closing)
        return;
    c->closing = true;
    c->outcome = outcome;
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
        va_end(ap);
    }
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->down.tcp, on_handle_closed);
    if (c->up.open)
        uv_close((uv_handle_t *)&c->up.tcp, on_handle_closed);
}

void tg_conn_touch(struct tg_conn *c)
{
    c->last_active = uv_now(&c->w->loop);
}

/* Best effort, before a close: hand what TLS queued (an alert, close_notify) to the kernel
 * without waiting, so the peer learns why. */
static void flush_tls_now(struct tg_conn *c)
{
    struct tg_side *s = c->l->inbound ? &c->down : &c->up;
    struct tg_buf *out = tg_tls_cipher_out(c->tls);
    uv_buf_t b;

    if (!s->open || s->writing > 0 || tg_buf_len(out) == 0)
        return;
    b = uv_buf_init(tg_buf_data(out), (unsigned)tg_buf_len(out));
    if (uv_try_write((uv_stream_t *)&s->tcp, &b, 1) > 0)
        tg_buf_consume(out, tg_buf_len(out));
}

void tg_conn_handshake_step(struct tg_conn *c)
{
    int rc = tg_tls_handshake(c->tls);
    const char *why;
    enum tg_hs_fail fail;

    if (rc == TG_EAGAIN) {
        tg_pipe_progress(c);
        return;
    }
    if (rc == 0) {
        c->handshake_done = true;
        tg_counter_add(&c->stats->hs_ok, 1);
        if (c->l->inbound) {
            tg_pipe_progress(c); /* our Finished goes out while we connect upstream */
            if (!c->closing)
                start_connect(c);
            return;
        }
        c->state = TG_CONN_PIPE;
        tg_conn_touch(c);
        arm_timer(c, c->w->rt->cfg->idle_timeout_ms);
        tg_pipe_progress(c);
        return;
    }
    fail = tg_tls_fail(c->tls, &why);
    tg_counter_add(&c->stats->hs_failed[fail], 1);
    tg_info("%s: %s %s refused: %s: %s", c->l->name, c->l->inbound ? "client" : "server",
            c->peer_addr, tg_hs_fail_name(fail), why);
    flush_tls_now(c);
    tg_conn_close(c, "refused", "%s: %s", tg_hs_fail_name(fail), why);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct tg_conn *c = req->data;

    if (c->closing)
        return; /* UV_ECANCELED: the connection is going away */
    if (status < 0) {
        tg_counter_add(&c->stats->upstream_connect_failed, 1);
        if (c->tls != NULL && c->l->inbound) {
            tg_tls_shutdown(c->tls); /* the client sees a clean close_notify */
            flush_tls_now(c);
        }
        tg_conn_close(c, "error", "upstream %s: %s", c->l->upstream->text, uv_strerror(status));
        return;
    }
    c->up.connected = true;
    uv_tcp_nodelay(&c->up.tcp, 1);
    if (c->l->inbound) {
        c->state = TG_CONN_PIPE;
        tg_conn_touch(c);
        arm_timer(c, c->w->rt->cfg->idle_timeout_ms);
        tg_pipe_progress(c);
        return;
    }
    c->state = TG_CONN_HANDSHAKE;
    arm_timer(c, c->w->rt->cfg->handshake_timeout_ms);
    tg_conn_handshake_step(c); /* sends the ClientHello */
}

static void start_connect(struct tg_conn *c)
{
    int rc;

    c->state = TG_CONN_CONNECT;
    arm_timer(c, c->w->rt->cfg->connect_timeout_ms);
    rc = uv_tcp_init(&c->w->loop, &c->up.tcp);
    if (rc < 0) {
        tg_conn_close(c, "error", "upstream socket: %s", uv_strerror(rc));
        return;
    }
    c->up.open = true;
    c->open_handles++;
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->up.tcp, (const struct sockaddr *)&c->l->upstream->ss,
                        on_connect);
    if (rc < 0) {
        tg_counter_add(&c->stats->upstream_connect_failed, 1);
        tg_conn_close(c, "error", "upstream %s: %s", c->l->upstream->text, uv_strerror(rc));
    }
}

static void init_side(struct tg_conn *c, struct tg_side *s, bool tls)
{
    s->conn = c;
    s->tls = tls;
    s->tcp.data = s;
    s->wreq.data = s;
    s->sreq.data = s;
}

void tg_conn_accept(struct tg_worker *w, const struct tg_listener_def *l, uv_stream_t *server)
{
    struct tg_conn *c = calloc(1, sizeof(*c));
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;

    if (c == NULL) {
        tg_error("%s: out of memory accepting a connection", l->name);
        return;
    }
    c->w = w;
    c->l = l;
    c->stats = tg_metrics_slot(w->rt->metrics, w->index, l->index);
    c->gen = tg_gen_ref(w->gen);
    c->start_unix_ms = unix_ms();
    c->outcome = "ok";
    init_side(c, &c->down, l->inbound);
    init_side(c, &c->up, !l->inbound);
    c->dir[0] = (struct tg_dir){.src = &c->down, .dst = &c->up,
                                .bytes_stat = &c->stats->bytes_received,
                                .bytes = &c->bytes_received};
    c->dir[1] = (struct tg_dir){.src = &c->up, .dst = &c->down,
                                .bytes_stat = &c->stats->bytes_sent, .bytes = &c->bytes_sent};
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    uv_tcp_init(&w->loop, &c->down.tcp);
    c->down.open = true;
    c->open_handles++;
    tg_worker_conn_added(w, c);
    tg_counter_add(&c->stats->opened, 1);
    if ((rc = uv_accept(server, (uv_stream_t *)&c->down.tcp)) < 0) {
        tg_conn_close(c, "error", "accept: %s", uv_strerror(rc));
        return;
    }
    c->down.connected = true;
    if (uv_tcp_getpeername(&c->down.tcp, (struct sockaddr *)&ss, &len) == 0)
        format_addr(&ss, c->peer_addr, sizeof(c->peer_addr));
    uv_tcp_nodelay(&c->down.tcp, 1);
    rc = tg_tls_new(l->inbound ? c->gen->server : c->gen->client, &w->pool, &l->rule, &c->tls);
    if (rc < 0) {
        tg_conn_close(c, "error", "TLS session: %s", tg_strerror(rc));
        return;
    }
    /* Writes to the TLS side come from TLS; to the plain side, from the direction's buffer. */
    c->down.wbuf = l->inbound ? tg_tls_cipher_out(c->tls) : &c->dir[1].buf;
    c->up.wbuf = l->inbound ? &c->dir[0].buf : tg_tls_cipher_out(c->tls);
    if (l->inbound) {
        c->state = TG_CONN_HANDSHAKE;
        arm_timer(c, w->rt->cfg->handshake_timeout_ms);
        tg_pipe_progress(c); /* starts reading the ClientHello */
        return;
    }
    start_connect(c);
}

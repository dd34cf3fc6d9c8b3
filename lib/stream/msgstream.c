/* Framed messages over TLS over TCP (msgstream.h). One write in flight at a time: plaintext
 * waits in the queue, is encrypted into the session's cipher_out only while no write is
 * pending, and cipher_out is written whole, so its bytes may always move. */
#include "tollgate/msgstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/frame.h"

#define POOL_BLOCK (64 * 1024) /* holds a whole TLS record and then some */
#define PLAIN_CHUNK 16384      /* one TLS record of plaintext */
/* A queue emptied with more room than this gives it back: one large push (a mesh table of
 * some 500 KB) must not stay allocated on each of hundreds of idle streams. */
#define QUEUE_KEEP (64 * 1024)
#define HANDSHAKE_TIMEOUT_MS 10000
#define FLUSH_TIMEOUT_MS 5000
/* No block is kept once released: a control stream is idle nearly always, and a server with
 * thousands of streams must not hold two blocks for each (blocks come back between bursts). */
#define POOL_KEEP 0

struct queue {
    char *data;
    size_t head;
    size_t len;
    size_t cap;
};

struct tg_msgstream {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake deadline, then flush deadline */
    uv_connect_t creq;
    uv_write_t wreq;
    int open_handles;
    struct tg_pool pool;
    struct tg_tls_ctx *ctx;
    const struct tg_tls_peer_rule *rule;
    struct tg_tls *tls;
    struct tg_frame_decoder dec;
    struct queue q;
    size_t writing; /* bytes of cipher_out in flight */
    struct tg_msgstream_ops ops;
    struct tg_msgstream_opts opts;
    void *data;
    bool tcp_connected;
    bool hs_done;
    bool flushing;           /* closing after the queue is written */
    bool shutdown_sent;      /* close_notify queued */
    bool closing;            /* handles are closing */
    enum tg_hs_fail hs_fail; /* why the handshake failed; TG_HSF_N: it did not */
    char reason[TG_ERRLEN];
    char addr[64];
    struct sockaddr_storage peer_ss; /* AF_UNSPEC until known */
};

static void pump(struct tg_msgstream *s);

void *tg_msgstream_data(const struct tg_msgstream *s)
{
    return s->data;
}

enum tg_hs_fail tg_msgstream_hs_fail(const struct tg_msgstream *s)
{
    return s->hs_fail;
}

const struct tg_peer_info *tg_msgstream_peer(const struct tg_msgstream *s)
{
    static const struct tg_peer_info none;

    return s->tls != NULL ? tg_tls_peer(s->tls) : &none; /* none once closed (release) */
}

const char *tg_msgstream_peer_addr(const struct tg_msgstream *s)
{
    return s->addr;
}

const struct sockaddr_storage *tg_msgstream_peer_sockaddr(const struct tg_msgstream *s)
{
    return &s->peer_ss;
}

void tg_msgstream_set_max_frame_in(struct tg_msgstream *s, size_t max)
{
    tg_frame_decoder_set_max(&s->dec, max < s->opts.max_frame ? max : s->opts.max_frame);
}

bool tg_msgstream_is_connected(const struct tg_msgstream *s)
{
    return s->hs_done && !s->closing && !s->flushing;
}

size_t tg_msgstream_queued(const struct tg_msgstream *s)
{
    return s->q.len + s->writing;
}

/* The session, the frame being read and the queue. */
static void release(struct tg_msgstream *s)
{
    tg_tls_free(s->tls);
    s->tls = NULL;
    tg_frame_decoder_cleanup(&s->dec);
    free(s->q.data);
    memset(&s->q, 0, sizeof(s->q));
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tg_msgstream *s = h->data;

    if (--s->open_handles > 0)
        return;
    s->ops.on_closed(s, s->reason[0] ? s->reason : "closed");
    release(s);
    tg_pool_cleanup(&s->pool);
    free(s);
}

__attribute__((format(printf, 2, 0))) static void set_reason(struct tg_msgstream *s,
                                                             const char *fmt, va_list ap)
{
    if (s->reason[0] == '\0' && fmt != NULL)
        vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
}

static void close_now(struct tg_msgstream *s)
{
    if (s->closing)
        return;
    s->closing = true;
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    /* uv_close closed the socket: nothing more is read or written, so the session can go now
     * rather than after the close callbacks (a server turning thousands of peers away within
     * one loop iteration must not hold a session for each until then). A write in flight
     * still points into cipher_out: then it goes in on_handle_closed. */
    if (s->writing == 0)
        release(s);
}

static void on_flush_timeout(uv_timer_t *t)
{
    struct tg_msgstream *s = t->data;

    close_now(s);
}

void tg_msgstream_close(struct tg_msgstream *s, bool flush, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_reason(s, fmt, ap);
    va_end(ap);
    if (s->closing)
        return;
    if (!flush || !s->hs_done || !s->tcp_connected) {
        close_now(s);
        return;
    }
    if (s->flushing)
        return;
    s->flushing = true;
    uv_timer_start(&s->timer, on_flush_timeout, FLUSH_TIMEOUT_MS, 0);
    pump(s);
}

static void fail(struct tg_msgstream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fail(struct tg_msgstream *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_reason(s, fmt, ap);
    va_end(ap);
    close_now(s);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    struct tg_msgstream *s = req->data;
    size_t n = s->writing;

    if (s->closing)
        return; /* UV_ECANCELED */
    s->writing = 0;
    if (status < 0) {
        fail(s, "write: %s", uv_strerror(status));
        return;
    }
    tg_buf_consume(tg_tls_cipher_out(s->tls), n);
    pump(s);
}

/* Encrypts queued plaintext while there is room, then writes cipher_out whole. */
static void pump(struct tg_msgstream *s)
{
    struct tg_buf *out;
    uv_buf_t b;
    int rc;

    if (s->closing || !s->tcp_connected || s->writing > 0)
        return;
    out = tg_tls_cipher_out(s->tls);
    while (s->hs_done && s->q.len > 0) {
        size_t n = s->q.len < PLAIN_CHUNK ? s->q.len : PLAIN_CHUNK;

        if (tg_buf_reserve(out, &s->pool, true) < 0) {
            fail(s, "out of memory");
            return;
        }
        if (tg_buf_room(out) < tg_tls_write_room(n))
            break; /* the rest after this write */
        if (tg_tls_write(s->tls, s->q.data + s->q.head, n) < 0) {
            fail(s, "TLS write failed");
            return;
        }
        s->q.head += n;
        s->q.len -= n;
    }
    if (s->q.len == 0) {
        s->q.head = 0;
        if (s->q.cap > QUEUE_KEEP) {
            free(s->q.data);
            s->q.data = NULL;
            s->q.cap = 0;
        }
    }
    if (s->flushing && s->q.len == 0 && !s->shutdown_sent) {
        s->shutdown_sent = true;
        tg_tls_shutdown(s->tls);
    }
    if (tg_buf_len(out) > 0) {
        b = uv_buf_init(tg_buf_data(out), (unsigned)tg_buf_len(out));
        s->writing = b.len;
        rc = uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, on_write);
        if (rc < 0) {
            s->writing = 0;
            fail(s, "write: %s", uv_strerror(rc));
        }
        return;
    }
    if (s->shutdown_sent) {
        close_now(s);
        return;
    }
    tg_tls_release_buffers(s->tls);
}

int tg_msgstream_send(struct tg_msgstream *s, const void *msg, size_t len, char *err)
{
    unsigned char hdr[TG_FRAME_HDR];
    size_t need;
    int rc;

    if (s->closing || s->flushing || !s->hs_done)
        return tg_err_set(err, TG_ECLOSED, "stream is not open");
    if (!s->opts.raw && (rc = tg_frame_header(len, s->opts.max_frame, hdr, err)) < 0)
        return rc;
    need = (s->opts.raw ? 0 : TG_FRAME_HDR) + len;
    if (s->q.len + need > s->opts.max_queued)
        return tg_err_set(err, TG_ETOOBIG, "%zu bytes already wait to be sent: peer not reading",
                          s->q.len);
    if (s->q.head > 0 && s->q.head + s->q.len + need > s->q.cap) {
        memmove(s->q.data, s->q.data + s->q.head, s->q.len);
        s->q.head = 0;
    }
    if (s->q.len + need > s->q.cap) {
        size_t cap = s->q.cap ? s->q.cap : 4096;
        char *p;

        while (cap < s->q.len + need)
            cap *= 2;
        p = realloc(s->q.data, cap);
        if (p == NULL)
            return tg_err_set(err, TG_ENOMEM, "out of memory queueing %zu bytes", len);
        s->q.data = p;
        s->q.cap = cap;
    }
    if (!s->opts.raw)
        memcpy(s->q.data + s->q.head + s->q.len, hdr, TG_FRAME_HDR);
    if (len > 0)
        memcpy(s->q.data + s->q.head + s->q.len + need - len, msg, len);
    s->q.len += need;
    pump(s);
    return 0;
}

/* ---- reading ---- */

static void feed(struct tg_msgstream *s, const char *p, size_t n)
{
    char err[TG_ERRLEN];

    if (s->opts.raw) { /* no framing: the bytes as they came */
        if (n > 0 && !s->closing && !s->flushing)
            s->ops.on_frame(s, p, n);
        return;
    }
    while (n > 0 && !s->closing && !s->flushing) {
        const char *frame;
        size_t used, len;
        int rc = tg_frame_feed(&s->dec, p, n, &used, &frame, &len, err);

        p += used;
        n -= used;
        if (rc < 0) {
            fail(s, "%s", err);
            return;
        }
        if (rc == 1)
            s->ops.on_frame(s, frame, len);
    }
}

static void decrypt(struct tg_msgstream *s)
{
    char plain[PLAIN_CHUNK];
    char err[TG_ERRLEN];

    while (!s->closing) {
        int n = tg_tls_read(s->tls, plain, sizeof(plain));

        if (n == TG_EAGAIN)
            return;
        if (n == TG_ECLOSED) {
            if (tg_frame_decoder_eof(&s->dec, err) < 0)
                fail(s, "%s", err);
            else
                fail(s, "peer closed the stream");
            return;
        }
        if (n < 0) {
            const char *why;

            (void)tg_tls_fail(s->tls, &why);
            fail(s, "TLS read: %s", why);
            return;
        }
        feed(s, plain, (size_t)n);
    }
}

/* Best effort, before a close: hand what TLS queued (an alert) to the kernel at once. */
static void flush_now(struct tg_msgstream *s)
{
    struct tg_buf *out = tg_tls_cipher_out(s->tls);
    uv_buf_t b;

    if (!s->tcp_connected || s->writing > 0 || tg_buf_len(out) == 0)
        return;
    b = uv_buf_init(tg_buf_data(out), (unsigned)tg_buf_len(out));
    if (uv_try_write((uv_stream_t *)&s->tcp, &b, 1) > 0)
        tg_buf_consume(out, tg_buf_len(out));
}

static void handshake(struct tg_msgstream *s)
{
    int rc = tg_tls_handshake(s->tls);
    enum tg_hs_fail f;
    const char *why;

    if (rc == TG_EAGAIN)
        return;
    if (rc < 0) {
        f = tg_tls_fail(s->tls, &why);
        s->hs_fail = f;
        flush_now(s); /* the peer learns why from the alert */
        fail(s, "TLS handshake with %s: %s: %s", s->addr, tg_hs_fail_name(f), why);
        return;
    }
    s->hs_done = true;
    uv_timer_stop(&s->timer);
    s->ops.on_connected(s);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tg_msgstream *s = h->data;
    struct tg_buf *in = tg_tls_cipher_in(s->tls);

    (void)suggested;
    *buf = uv_buf_init(NULL, 0);
    if (tg_buf_reserve(in, &s->pool, true) < 0)
        return; /* UV_ENOBUFS follows */
    *buf = uv_buf_init(tg_buf_tail(in), (unsigned)tg_buf_room(in));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct tg_msgstream *s = stream->data;

    (void)buf;
    if (s->closing)
        return;
    if (nread == 0)
        return;
    if (nread == UV_EOF) {
        uv_read_stop(stream);
        tg_tls_set_eof(s->tls);
    } else if (nread == UV_ENOBUFS) {
        fail(s, "out of memory reading");
        return;
    } else if (nread < 0) {
        fail(s, "read: %s", uv_strerror((int)nread));
        return;
    } else {
        tg_buf_commit(tg_tls_cipher_in(s->tls), (size_t)nread);
    }
    if (!s->hs_done)
        handshake(s);
    if (s->hs_done && !s->closing)
        decrypt(s);
    if (!s->closing && nread == UV_EOF && !s->hs_done)
        fail(s, "peer closed during the TLS handshake");
    pump(s);
}

static void on_handshake_timeout(uv_timer_t *t)
{
    struct tg_msgstream *s = t->data;

    s->hs_fail = TG_HSF_TIMEOUT;
    fail(s, "TLS handshake with %s: %s", s->addr, tg_hs_fail_name(TG_HSF_TIMEOUT));
}

static void start(struct tg_msgstream *s)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;
    char host[INET6_ADDRSTRLEN] = "?";

    s->tcp_connected = true;
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0) {
        s->peer_ss = ss;
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
            snprintf(s->addr, sizeof(s->addr), "%s:%d", host,
                     ntohs(((struct sockaddr_in *)&ss)->sin_port));
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
            snprintf(s->addr, sizeof(s->addr), "[%s]:%d", host,
                     ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        }
    }
    uv_tcp_nodelay(&s->tcp, 1);
    rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (rc < 0) {
        fail(s, "read start: %s", uv_strerror(rc));
        return;
    }
    handshake(s); /* the client's ClientHello goes out now */
    pump(s);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct tg_msgstream *s = req->data;

    if (s->closing)
        return; /* UV_ECANCELED */
    if (status < 0) {
        fail(s, "connect to %s: %s", s->addr, uv_strerror(status));
        return;
    }
    start(s);
}

static int create(uv_loop_t *loop, struct tg_tls_ctx *ctx, const struct tg_tls_peer_rule *rule,
                  const struct tg_msgstream_opts *opts, const struct tg_msgstream_ops *ops,
                  void *data, struct tg_msgstream **out)
{
    struct tg_msgstream *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return TG_ENOMEM;
    s->loop = loop;
    s->ctx = ctx;
    s->rule = rule;
    s->ops = *ops;
    s->data = data;
    s->hs_fail = TG_HSF_N;
    if (opts != NULL)
        s->opts = *opts;
    if (s->opts.handshake_timeout_ms == 0)
        s->opts.handshake_timeout_ms = HANDSHAKE_TIMEOUT_MS;
    if (s->opts.max_frame == 0)
        s->opts.max_frame = TG_FRAME_MAX;
    if (s->opts.max_frame_in == 0 || s->opts.max_frame_in > s->opts.max_frame)
        s->opts.max_frame_in = s->opts.max_frame;
    if (s->opts.max_queued == 0)
        s->opts.max_queued = 4 * (s->opts.max_frame + TG_FRAME_HDR);
    snprintf(s->addr, sizeof(s->addr), "?");
    s->peer_ss.ss_family = AF_UNSPEC;
    tg_pool_init(&s->pool, POOL_BLOCK, POOL_KEEP);
    tg_frame_decoder_init(&s->dec, s->opts.max_frame_in);
    s->tcp.data = s;
    s->timer.data = s;
    s->creq.data = s;
    s->wreq.data = s;
    uv_tcp_init(loop, &s->tcp);
    uv_timer_init(loop, &s->timer);
    s->open_handles = 2;
    *out = s;
    uv_timer_start(&s->timer, on_handshake_timeout, s->opts.handshake_timeout_ms, 0);
    return 0;
}

static int new_session(struct tg_msgstream *s)
{
    int rc = tg_tls_new(s->ctx, &s->pool, s->rule, &s->tls);

    if (rc < 0)
        fail(s, "TLS session: %s", tg_strerror(rc));
    return rc;
}

int tg_msgstream_connect(uv_loop_t *loop, const struct sockaddr *addr, struct tg_tls_ctx *ctx,
                         const struct tg_tls_peer_rule *rule, const struct tg_msgstream_opts *opts,
                         const struct tg_msgstream_ops *ops, void *data, struct tg_msgstream **out)
{
    struct tg_msgstream *s;
    char host[INET6_ADDRSTRLEN] = "?";
    int rc = create(loop, ctx, rule, opts, ops, data, &s);

    if (rc < 0)
        return rc;
    *out = s;
    if (addr->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)addr, host, sizeof(host));
        snprintf(s->addr, sizeof(s->addr), "%s:%d", host,
                 ntohs(((const struct sockaddr_in *)addr)->sin_port));
    } else if (addr->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)addr, host, sizeof(host));
        snprintf(s->addr, sizeof(s->addr), "[%s]:%d", host,
                 ntohs(((const struct sockaddr_in6 *)addr)->sin6_port));
    }
    if (new_session(s) < 0)
        return 0;
    rc = uv_tcp_connect(&s->creq, &s->tcp, addr, on_connect);
    if (rc < 0)
        fail(s, "connect to %s: %s", s->addr, uv_strerror(rc));
    return 0;
}

int tg_msgstream_accept(uv_loop_t *loop, uv_stream_t *server, struct tg_tls_ctx *ctx,
                        const struct tg_tls_peer_rule *rule, const struct tg_msgstream_opts *opts,
                        const struct tg_msgstream_ops *ops, void *data, struct tg_msgstream **out)
{
    struct tg_msgstream *s;
    int rc = create(loop, ctx, rule, opts, ops, data, &s);

    if (rc < 0)
        return rc;
    *out = s;
    rc = uv_accept(server, (uv_stream_t *)&s->tcp);
    if (rc < 0) {
        fail(s, "accept: %s", uv_strerror(rc));
        return 0;
    }
    if (new_session(s) == 0)
        start(s);
    return 0;
}

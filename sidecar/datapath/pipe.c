/* The byte pump. Each direction has one plaintext buffer; a TLS side also has the session's
 * ciphertext buffers. Reading from a side stops while the buffer it fills is full and starts
 * again when a write drains it; at most one write per side is in flight, and buffers move
 * their bytes to the front only while no write from them is pending. Storage goes back to
 * the worker's pool whenever a buffer empties, so idle connections hold none. */
#include "conn.h"

#include <errno.h>
#include <unistd.h>

#include "httpconn.h"
#include "tunnel.h"
#include "tollgate/log.h"

#define RECORD_MAX 16384

static struct tg_dir *dir_from(struct tg_conn *c, const struct tg_side *src)
{
    return c->dir[0].src == src ? &c->dir[0] : &c->dir[1];
}

/* The buffer that reads from side s fill. */
static struct tg_buf *read_buf(struct tg_conn *c, struct tg_side *s)
{
    return s->tls ? tg_tls_cipher_in(c->tls) : &dir_from(c, s)->buf;
}

/* Bytes may move to the front of b unless a write from b is in flight. */
static bool may_move(const struct tg_side *dst, const struct tg_buf *b)
{
    return dst->writing == 0 || dst->wbuf != b;
}

void tg_pipe_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tg_side *s = h->data;
    struct tg_conn *c = s->conn;
    struct tg_buf *b = read_buf(c, s);
    struct tg_side *other = s == &c->down ? &c->up : &c->down;

    (void)suggested;
    *buf = uv_buf_init(NULL, 0);
    if (tg_buf_reserve(b, s->tls ? &c->w->wire : dir_from(c, s)->pool,
                       s->tls || may_move(other, b)) < 0)
        return; /* UV_ENOBUFS follows: reading stops */
    *buf = uv_buf_init(tg_buf_tail(b), (unsigned)tg_buf_room(b));
    /* a permissive peek's bytes may turn out to be plain text, for a buffer of the app pool:
     * no more of them than it holds (tg_conn_peek_step) */
    if (c->state == TG_CONN_PEEK && b->tail + buf->len > c->w->pool.block_size)
        buf->len = b->tail < c->w->pool.block_size ? c->w->pool.block_size - b->tail : 0;
}

static void account(struct tg_dir *d, size_t n)
{
    *d->bytes += n;
    tg_counter_add(d->bytes_stat, n);
}

void tg_pipe_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct tg_side *s = stream->data;
    struct tg_conn *c = s->conn;

    (void)buf;
    if (c->closing)
        return;
    if (nread > 0) {
        tg_buf_commit(read_buf(c, s), (size_t)nread);
        if (!s->tls)
            account(dir_from(c, s), (size_t)nread);
        if (!s->tls && s == &c->down && tg_conn_pacing(c))
            tg_conn_paced(c, (size_t)nread);
        tg_conn_touch(c);
        if (c->http != NULL && s == &c->up) /* responses are followed, not changed */
            tg_http_conn_app_bytes(c, tg_buf_tail(&c->dir[1].buf) - nread, (size_t)nread);
    } else if (nread == 0) {
        return;
    } else if (nread == UV_ENOBUFS) {
        uv_read_stop(stream);
        s->reading = false;
    } else if (nread == UV_EOF) {
        uv_read_stop(stream);
        s->reading = false;
        s->tcp_eof = true;
        if (s->tls)
            tg_tls_set_eof(c->tls);
        else
            dir_from(c, s)->eof = true;
    } else {
        tg_conn_close(c, "error", "%s read: %s", s == &c->down ? "downstream" : "upstream",
                      uv_strerror((int)nread));
        return;
    }
    /* what these bytes start (a handshake's end, a tunnel's stream, an HTTP request) is
     * decided by the newest generation, even before the wake-up that brings it */
    tg_worker_adopt(c->w);
    if (c->closing) /* ... which closed c (close_denied) */
        return;
    if (c->state == TG_CONN_PEEK)
        tg_conn_peek_step(c);
    else if (s->tls && c->state == TG_CONN_HANDSHAKE && !c->handshake_done)
        tg_conn_handshake_step(c);
    else
        tg_pipe_progress(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct tg_side *s = req->data;
    struct tg_conn *c = s->conn;
    size_t n = s->writing;

    if (c->closing)
        return; /* UV_ECANCELED: never touch the peer */
    s->writing = 0;
    if (status < 0) {
        tg_conn_close(c, "error", "%s write: %s", s == &c->down ? "downstream" : "upstream",
                      uv_strerror(status));
        return;
    }
    tg_buf_consume(s->wbuf, n);
    tg_conn_touch(c);
    tg_pipe_progress(c);
}

/* Writes what is queued for s. The kernel usually takes it all at once (uv_try_write), which
 * costs one syscall and no request; only the rest goes through uv_write and its callback.
 * Returns true when bytes left the buffer now, so the caller can fill it again. */
static bool flush(struct tg_conn *c, struct tg_side *s)
{
    uv_buf_t b;
    int rc;

    if (c->closing || !s->connected || s->writing > 0 || s->wbuf == NULL ||
        tg_buf_len(s->wbuf) == 0)
        return false;
    b = uv_buf_init(tg_buf_data(s->wbuf), (unsigned)tg_buf_len(s->wbuf));
    rc = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (rc == (int)b.len) {
        tg_buf_consume(s->wbuf, b.len);
        return true;
    }
    if (rc < 0 && rc != UV_EAGAIN) {
        tg_conn_close(c, "error", "%s write: %s", s == &c->down ? "downstream" : "upstream",
                      uv_strerror(rc));
        return false;
    }
    if (rc > 0) {
        tg_buf_consume(s->wbuf, (size_t)rc);
        b = uv_buf_init(tg_buf_data(s->wbuf), (unsigned)tg_buf_len(s->wbuf));
    }
    s->writing = b.len;
    rc = uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, on_write);
    if (rc < 0) {
        s->writing = 0;
        tg_conn_close(c, "error", "%s write: %s", s == &c->down ? "downstream" : "upstream",
                      uv_strerror(rc));
    }
    return false;
}

/* Decrypts what the TLS side received into d's buffer. */
static void decrypt(struct tg_conn *c, struct tg_dir *d)
{
    while (!d->eof) {
        int n;

        if (tg_buf_reserve(&d->buf, d->pool, may_move(d->dst, &d->buf)) < 0) {
            tg_conn_close(c, "error", "out of memory");
            return;
        }
        if (tg_buf_room(&d->buf) == 0)
            return;
        n = tg_tls_read(c->tls, tg_buf_tail(&d->buf), tg_buf_room(&d->buf));
        if (n > 0) {
            tg_buf_commit(&d->buf, (size_t)n);
            account(d, (size_t)n);
            if (d == &c->dir[0] && tg_conn_pacing(c))
                tg_conn_paced(c, (size_t)n);
            continue;
        }
        if (n == TG_EAGAIN)
            return;
        if (n == TG_ECLOSED) {
            d->eof = true;
            return;
        }
        if (n == TG_EPEER && !c->l->inbound) {
            tg_conn_peer_refused(c);
            return;
        }
        tg_conn_close(c, "error", "TLS read from %s failed", c->peer_addr);
        return;
    }
}

/* Encrypts d's buffer into the TLS side's ciphertext buffer, as much as fits. */
static void encrypt(struct tg_conn *c, struct tg_dir *d)
{
    struct tg_buf *out = tg_tls_cipher_out(c->tls);

    while (tg_buf_len(&d->buf) > 0) {
        size_t room, n = tg_buf_len(&d->buf), overhead;

        if (tg_buf_reserve(out, &c->w->wire, may_move(d->dst, out)) < 0) {
            tg_conn_close(c, "error", "out of memory");
            return;
        }
        room = tg_buf_room(out);
        overhead = tg_tls_write_room(room) - room;
        if (room <= overhead)
            return;
        if (n > room - overhead)
            n = room - overhead;
        if (tg_tls_write(c->tls, tg_buf_data(&d->buf), n) < 0) {
            tg_conn_close(c, "error", "TLS write to %s failed", c->peer_addr);
            return;
        }
        tg_buf_consume(&d->buf, n);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct tg_side *dst = req->data;
    struct tg_conn *c = dst->conn;

    if (c->closing)
        return;
    if (status < 0 && status != UV_ENOTCONN) {
        tg_conn_close(c, "error", "shutdown: %s", uv_strerror(status));
        return;
    }
    c->dir[c->dir[0].dst == dst ? 0 : 1].done = true;
    tg_pipe_progress(c);
}

/* Once src has ended and everything it sent has been written, end dst's write side:
 * close_notify first on a TLS side, then FIN. */
static void carry_eof(struct tg_conn *c, struct tg_dir *d)
{
    struct tg_side *dst = d->dst;
    int rc;

    if (d->shut_issued || !d->eof || tg_buf_len(&d->buf) > 0 || !dst->connected)
        return;
    if (dst->tls) {
        tg_tls_shutdown(c->tls);
        flush(c, dst);
    }
    if (dst->writing > 0 || tg_buf_len(dst->wbuf) > 0)
        return;
    d->shut_issued = true;
    rc = uv_shutdown(&dst->sreq, (uv_stream_t *)&dst->tcp, on_shutdown);
    if (rc < 0)
        tg_conn_close(c, "error", "shutdown: %s", uv_strerror(rc));
}

static void set_reading(struct tg_conn *c, struct tg_side *s, bool want)
{
    int rc;

    if (want == s->reading)
        return;
    s->reading = want;
    if (!want) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        if (c->state == TG_CONN_PIPE && !s->tcp_eof)
            tg_conn_arm_idle(c); /* probe the paused side for resets */
        return;
    }
    rc = uv_read_start((uv_stream_t *)&s->tcp, tg_pipe_on_alloc, tg_pipe_on_read);
    if (rc < 0)
        tg_conn_close(c, "error", "read start: %s", uv_strerror(rc));
}

/* Whether s should be read now: its stream has not ended, and the buffer it fills has room,
 * or no storage yet (it gets some when bytes arrive), or can make room by moving. */
static bool want_read(struct tg_conn *c, struct tg_side *s)
{
    struct tg_buf *b = read_buf(c, s);
    struct tg_side *other = s == &c->down ? &c->up : &c->down;

    if (!s->connected || s->tcp_eof)
        return false;
    if (s == &c->down && tg_conn_in_debt(c)) /* paced: the caller waits for its tokens */
        return false;
    if (!s->tls && c->state != TG_CONN_PIPE)
        return false;
    if (b->data == NULL || tg_buf_room(b) > 0)
        return true;
    return b->head > 0 && (s->tls || may_move(other, b));
}

void tg_pipe_progress(struct tg_conn *c)
{
    bool wrote = true;

    /* A synchronous write empties a buffer that encryption or decryption may fill again at
     * once; a few rounds, then the loop's other connections get their turn. */
    for (int round = 0; wrote && round < 4; round++) {
        if (c->closing)
            return;
        if (c->state == TG_CONN_PIPE && c->tunnel != NULL) {
            /* frames from the peer into the session (which takes all it is given), until TLS
             * has no more; then the session's frames back out */
            do {
                decrypt(c, tg_tunnel_in(c));
                if (!c->closing)
                    tg_tunnel_io(c);
            } while (!c->closing && tg_tunnel_more(c));
            if (!c->closing)
                encrypt(c, tg_tunnel_out(c));
        } else if (c->state == TG_CONN_PIPE) {
            for (int i = 0; i < 2 && !c->closing; i++) {
                struct tg_dir *d = &c->dir[i];

                if (d->src->tls)
                    decrypt(c, d);
                if (i == 0 && c->http != NULL && !c->closing)
                    tg_http_conn_progress(c); /* requests: parsed, decided, forwarded */
                if (d->dst->tls && !c->closing)
                    encrypt(c, d);
            }
        }
        wrote = flush(c, &c->down);
        wrote = flush(c, &c->up) || wrote;
    }
    if (c->ostream != NULL)
        tg_tunnel_app_progress(c); /* window back for what the app took; its new bytes */
    if (c->state == TG_CONN_PIPE) {
        carry_eof(c, &c->dir[0]);
        carry_eof(c, &c->dir[1]);
    }
    if (c->closing)
        return;
    set_reading(c, &c->down, want_read(c, &c->down));
    set_reading(c, &c->up, want_read(c, &c->up));
    if (c->closing)
        return;
    /* idle: give the storage back */
    for (int i = 0; i < 2; i++)
        if (c->dir[i].dst->writing == 0 || c->dir[i].dst->wbuf != &c->dir[i].buf)
            tg_buf_release(&c->dir[i].buf, c->dir[i].pool);
    if (c->tls != NULL && c->up.writing == 0 && c->down.writing == 0)
        tg_tls_release_buffers(c->tls);
    if (c->http != NULL)
        tg_http_conn_release(c);
    if (c->dir[0].done && c->dir[1].done && c->up.writing == 0 && c->down.writing == 0)
        tg_conn_close(c, "ok", NULL);
}

void tg_pipe_read_now(struct tg_conn *c, struct tg_side *s)
{
    uv_os_fd_t fd;
    uv_buf_t buf;
    ssize_t n;

    if (s->reading || s->tcp_eof || uv_fileno((uv_handle_t *)&s->tcp, &fd) < 0) {
        tg_pipe_progress(c);
        return;
    }
    tg_pipe_on_alloc((uv_handle_t *)&s->tcp, 0, &buf);
    if (buf.len == 0) {
        tg_pipe_progress(c); /* no room: the loop's reads wait for it as they would */
        return;
    }
    do
        n = read(fd, buf.base, buf.len);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        tg_pipe_progress(c); /* nothing yet: the loop reports it when it comes */
        return;
    }
    /* as libuv would have reported it */
    tg_pipe_on_read((uv_stream_t *)&s->tcp,
                    n > 0    ? n
                    : n == 0 ? UV_EOF
                             : uv_translate_sys_error(errno),
                    &buf);
}

void tg_pipe_read_again(struct tg_conn *c)
{
    if (c->closing)
        return;
    if (tg_buf_len(&c->dir[0].buf) == 0)
        tg_buf_release(&c->dir[0].buf, c->dir[0].pool);
    set_reading(c, &c->down, want_read(c, &c->down));
}

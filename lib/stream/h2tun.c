/* Both ends of a tunnel: CONNECT streams over an nghttp2 session, bytes in and bytes out
 * (h2tun.h). */
#include "tollgate/h2tun.h"

#include <nghttp2/nghttp2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/list.h"

#define AUTHORITY_MAX 255
#define WINDOW_MAX (16u << 20)
#define CONN_WINDOW_MAX 0x7fffffff /* RFC 9113 6.9.1 */
/* How many of a session's streams may have a window wider than the first at once: the bound
 * on what widening adds to the most the peer can make the owner hold (h2tun.h). */
#define WIDE_STREAMS 8

/* Each request stream's user data, from its first header to its close. */
struct req {
    size_t header_bytes;
    bool connect;            /* :method CONNECT */
    void *bound;             /* the owner's stream, once accepted */
    bool answered;           /* a response was submitted */
    bool refused;            /* ... a refusal: RST_STREAM NO_ERROR follows it (RFC 9113 8.1) */
    int status;              /* client: the response's :status (0: none yet) */
    size_t held;             /* payload the owner got and has not given back */
    uint32_t window;         /* its receive window: the session's first, or widened */
    struct req *prev, *next; /* the session's, freed with it (nghttp2_session_del says nothing
                              * of the streams still open) */
    char authority[AUTHORITY_MAX + 1]; /* server: as asked; client: tollgate-reason */
};

struct tg_h2tun {
    nghttp2_session *s;
    struct req *reqs;
    struct tg_h2tun_ops ops;
    struct tg_buf *out; /* during tg_h2tun_send */
    struct tg_pool *pool;
    size_t n_reqs;
    uint32_t window;     /* each stream's first receive window, as asked in our SETTINGS */
    uint32_t window_max; /* ... and the widest it may become (tg_h2tun_consumed) */
    size_t n_wide;       /* open streams whose window was widened, at most WIDE_STREAMS */
    bool client;
    bool goaway_received;
    bool goaway_sent;    /* tg_h2tun_goaway: nghttp2 would still let a client open streams */
    int32_t goaway_last; /* server: the last stream our GOAWAY takes */
    bool out_of_memory;
    uint8_t *direct_at; /* on_read_data: a DATA payload put in t->out, for on_send_data */
    size_t direct_len;
    char why[80]; /* what a callback found broken, for tg_h2tun_recv's error */
};

static struct req *req_of(const struct tg_h2tun *t, int32_t sid)
{
    return nghttp2_session_get_stream_user_data(t->s, sid);
}

static bool is_request(const nghttp2_frame *f)
{
    return f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST;
}

/* A response's header block (final or 1xx) on a client session. */
static bool is_response(const struct tg_h2tun *t, const nghttp2_frame *f)
{
    return t->client && f->hd.type == NGHTTP2_HEADERS &&
           (f->headers.cat == NGHTTP2_HCAT_RESPONSE || f->headers.cat == NGHTTP2_HCAT_HEADERS);
}

static void req_add(struct tg_h2tun *t, struct req *r)
{
    r->window = t->window;
    TG_DLIST_PUSH(&t->reqs, r, prev, next);
    t->n_reqs++;
}

static void req_free(struct tg_h2tun *t, struct req *r)
{
    TG_DLIST_UNLINK(&t->reqs, TG_DLIST_NO_TAIL, r, prev, next);
    t->n_reqs--;
    free(r);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct tg_h2tun *t = arg;
    struct req *r;

    if (!is_request(f))
        return 0;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (nghttp2_session_set_stream_user_data(s, f->hd.stream_id, r) != 0) {
        free(r);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    req_add(t, r);
    return 0;
}

static bool is(const uint8_t *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* src, at most cap - 1 bytes of it, as one line of visible ASCII into dst (the rest '?'): the
 * one form a reason takes either way, since a header value may hold tabs and bytes over 0x7f,
 * and the client's owner logs it and names it to an app. Its length. */
static size_t one_line(char *dst, size_t cap, const char *src, size_t n)
{
    size_t i;

    for (i = 0; i < cap - 1 && i < n && src[i] != '\0'; i++)
        dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
    dst[i] = '\0';
    return i;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
    struct tg_h2tun *t = arg;
    struct req *r;

    (void)s;
    (void)flags;
    if (!is_request(f) && !is_response(t, f))
        return 0; /* trailers: nothing of ours */
    r = req_of(t, f->hd.stream_id);
    if (r == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    r->header_bytes += nlen + vlen + 32; /* RFC 9113 6.5.2's accounting */
    if (r->header_bytes > TG_H2TUN_MAX_HEADERS)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    if (t->client) {
        if (is(name, nlen, ":status")) /* nghttp2 has checked it: three digits */
            r->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        else if (is(name, nlen, "tollgate-reason"))
            one_line(r->authority, sizeof(r->authority), (const char *)value, vlen);
        return 0;
    }
    if (is(name, nlen, ":method")) {
        r->connect = is(value, vlen, "CONNECT");
    } else if (is(name, nlen, ":authority")) {
        if (vlen > AUTHORITY_MAX)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        memcpy(r->authority, value, vlen);
        r->authority[vlen] = '\0';
    }
    return 0;
}

static int submit_status(struct tg_h2tun *t, int32_t sid, int status, const char *reason,
                         const nghttp2_data_provider *dp)
{
    struct req *r = req_of(t, sid);
    char st[4], why[200];
    nghttp2_nv nv[2];
    size_t n = 1;

    if (r == NULL || r->answered)
        return NGHTTP2_ERR_INVALID_ARGUMENT;
    r->answered = true;
    r->refused = dp == NULL;
    snprintf(st, sizeof(st), "%03u", (unsigned)status % 1000u);
    nv[0] = (nghttp2_nv){tg_unconst(":status"), (uint8_t *)st, 7, 3, NGHTTP2_NV_FLAG_NONE};
    if (reason != NULL) {
        nv[1] = (nghttp2_nv){tg_unconst("tollgate-reason"), (uint8_t *)why, 15,
                             one_line(why, sizeof(why), reason, SIZE_MAX), NGHTTP2_NV_FLAG_NONE};
        n = 2;
    }
    return nghttp2_submit_response(t->s, sid, nv, n, dp);
}

/* After a refusal has gone out whole, the peer is told to stop sending on that stream
 * without error, so the stream does not linger half-closed. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct tg_h2tun *t = arg;
    struct req *r;

    if (f->hd.type != NGHTTP2_HEADERS || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    r = req_of(t, f->hd.stream_id);
    if (r != NULL && r->refused)
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

/* A client's frame: the answer to a CONNECT, END_STREAM, GOAWAY. */
static int on_client_frame(struct tg_h2tun *t, const nghttp2_frame *f)
{
    struct req *r;

    if (f->hd.type == NGHTTP2_GOAWAY) {
        t->goaway_received = true;
        return 0;
    }
    if (f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS)
        return 0;
    r = req_of(t, f->hd.stream_id);
    if (r == NULL)
        return 0;
    if (is_response(t, f) && !r->answered && r->status >= 200) {
        r->answered = true;
        t->ops.on_response(t->ops.arg, r->bound, r->status,
                           r->status == 200 || r->authority[0] == '\0' ? NULL : r->authority);
    }
    if (r->answered && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        t->ops.on_eof(t->ops.arg, r->bound);
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct tg_h2tun *t = arg;
    struct req *r;

    if (t->client)
        return on_client_frame(t, f);
    if (f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS)
        return 0;
    r = req_of(t, f->hd.stream_id);
    if (r == NULL)
        return 0;
    if (!is_request(f)) { /* DATA, or trailers: END_STREAM of a bound stream */
        if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && r->bound != NULL)
            t->ops.on_eof(t->ops.arg, r->bound);
        return 0;
    }
    if (t->goaway_sent && f->hd.stream_id > t->goaway_last)
        /* read before our GOAWAY went out: never decided here (nor under the generation the
         * GOAWAY retires); REFUSED_STREAM tells the client to try it elsewhere */
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
    else if (!r->connect)
        submit_status(t, f->hd.stream_id, 405, "only CONNECT is served here", NULL);
    else if (r->authority[0] == '\0')
        submit_status(t, f->hd.stream_id, 400, "CONNECT without :authority", NULL);
    else if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
        submit_status(t, f->hd.stream_id, 400, "CONNECT that ends at once", NULL);
    else
        r->bound = t->ops.on_open(t->ops.arg, f->hd.stream_id, r->authority);
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *p, size_t n,
                         void *arg)
{
    struct tg_h2tun *t = arg;
    struct req *r = req_of(t, sid);
    int32_t window = nghttp2_session_get_stream_effective_local_window_size(s, sid);
    size_t room = window > 0 ? (size_t)window : 0;

    (void)flags;
    if (r == NULL || r->bound == NULL) {
        /* before an answer, or refused: nobody holds these bytes, give the window back */
        nghttp2_session_consume(s, sid, n);
        return 0;
    }
    /* nghttp2 resets a stream sent past its window but still hands the bytes over, and the
     * owner's room is the window (h2tun.h): the peer broke the protocol, the session ends
     * (RFC 9113 6.9.1 allows a connection error). nghttp2 allows 65,535 bytes until the peer
     * acknowledges our SETTINGS, but a client's SETTINGS precede its first stream, so a server
     * knows the window of every stream it is sent (6.9.2): the client holds it to ours. */
    if (t->client && r->window < room)
        room = r->window;
    if (r->held + n > room) {
        snprintf(t->why, sizeof(t->why), "stream %d sent past its flow-control window", (int)sid);
        nghttp2_session_terminate_session(s, NGHTTP2_FLOW_CONTROL_ERROR);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    r->held += n;
    t->ops.on_data(t->ops.arg, r->bound, p, n);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t code, void *arg)
{
    struct tg_h2tun *t = arg;
    struct req *r = req_of(t, sid);

    if (r == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(s, sid, NULL);
    if (r->bound != NULL)
        t->ops.on_close(t->ops.arg, r->bound, code);
    if (r->window > t->window)
        t->n_wide--;
    req_free(t, r);
    return 0;
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *p, size_t n, int flags, void *arg)
{
    struct tg_h2tun *t = arg;
    size_t room;

    (void)s;
    (void)flags;
    if (tg_buf_reserve(t->out, t->pool, true) < 0) {
        t->out_of_memory = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    room = tg_buf_room(t->out);
    if (room == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    n = n < room ? n : room;
    memcpy(tg_buf_tail(t->out), p, n);
    tg_buf_commit(t->out, n);
    return (ssize_t)n;
}

#define FRAME_HDLEN 9 /* RFC 9113, 4.1: length, type, flags, stream */

/* A DATA frame's payload goes from the owner straight into the output buffer, behind room for
 * the frame's header, which on_send_data writes once nghttp2 has made it (NO_COPY): one copy
 * of each payload byte instead of two (into nghttp2's frame buffer, then out of it), a few
 * percent of a bulk transfer's CPU. nghttp2 sends nothing else between the two calls. Without
 * room for a header and a byte, the payload takes the copying way. */
static ssize_t on_read_data(nghttp2_session *s, int32_t sid, uint8_t *dst, size_t cap,
                            uint32_t *flags, nghttp2_data_source *src, void *arg)
{
    struct tg_h2tun *t = arg;
    bool eof = false, direct = false;
    ssize_t n;

    (void)s;
    (void)sid;
    if (t->out != NULL && tg_buf_reserve(t->out, t->pool, true) == 0 &&
        tg_buf_room(t->out) > FRAME_HDLEN) {
        size_t room = tg_buf_room(t->out) - FRAME_HDLEN;

        dst = (uint8_t *)tg_buf_tail(t->out) + FRAME_HDLEN;
        cap = cap < room ? cap : room;
        direct = true;
    }
    n = t->ops.on_read(t->ops.arg, src->ptr, dst, cap, &eof);
    if (n == TG_EAGAIN)
        return NGHTTP2_ERR_DEFERRED;
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    if (eof)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (direct) {
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
        t->direct_at = dst;
        t->direct_len = (size_t)n;
    }
    return n;
}

/* The header of the DATA frame whose payload on_read_data put in place. */
static int on_send_data(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *arg)
{
    struct tg_h2tun *t = arg;

    (void)s;
    (void)src;
    /* never padded; and the payload must still be where it was put, just behind the tail */
    if (frame->data.padlen != 0 || t->out == NULL || length != t->direct_len ||
        t->direct_at != (uint8_t *)tg_buf_tail(t->out) + FRAME_HDLEN)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    memcpy(tg_buf_tail(t->out), framehd, FRAME_HDLEN);
    tg_buf_commit(t->out, FRAME_HDLEN + length);
    t->direct_at = NULL;
    return 0;
}

static int session_new(const struct tg_h2tun_ops *ops, uint32_t window, uint32_t window_max,
                       uint32_t max_streams, bool client, struct tg_h2tun **out)
{
    struct tg_h2tun *t = calloc(1, sizeof(*t));
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    nghttp2_settings_entry set[4];
    uint64_t conn_window;
    int rc = TG_ENOMEM;

    if (t == NULL)
        return rc;
    t->ops = *ops;
    t->client = client;
    if (window > WINDOW_MAX)
        window = WINDOW_MAX;
    if (window_max > WINDOW_MAX)
        window_max = WINDOW_MAX;
    t->window = window;
    t->window_max = window_max > window ? window_max : window;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        goto fail;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_send_data_callback(cb, on_send_data);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    /* windows open only as the owner's sockets take the bytes (h2tun.h) */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_reserved_remote_streams(opt, 0);
    if ((client ? nghttp2_session_client_new2 : nghttp2_session_server_new2)(&t->s, cb, t, opt) !=
        0)
        goto fail;
    /* a client's cap is on the streams the server may open: none (no push) */
    set[0] =
        (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, client ? 0 : max_streams};
    set[1] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window};
    set[2] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, TG_H2TUN_MAX_HEADERS};
    set[3] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
    if (nghttp2_submit_settings(t->s, NGHTTP2_FLAG_NONE, set, 4) != 0)
        goto fail;
    /* the connection's window holds every stream's, widened ones included, so only a
     * stream's own window stalls it */
    conn_window =
        (uint64_t)window * (max_streams + 1) + (uint64_t)(t->window_max - window) * WIDE_STREAMS;
    if (conn_window > CONN_WINDOW_MAX)
        conn_window = CONN_WINDOW_MAX;
    if (nghttp2_session_set_local_window_size(t->s, NGHTTP2_FLAG_NONE, 0, (int32_t)conn_window) !=
        0)
        goto fail;
    *out = t;
    t = NULL;
    rc = 0;
fail: /* and success: the set-up objects go either way */
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    tg_h2tun_free(t); /* NULL once handed out */
    return rc;
}

int tg_h2tun_new(const struct tg_h2tun_ops *ops, uint32_t window, uint32_t window_max,
                 uint32_t max_streams, struct tg_h2tun **out)
{
    return session_new(ops, window, window_max, max_streams, false, out);
}

int tg_h2tun_new_client(const struct tg_h2tun_ops *ops, uint32_t window, uint32_t window_max,
                        uint32_t max_streams, struct tg_h2tun **out)
{
    return session_new(ops, window, window_max, max_streams, true, out);
}

void tg_h2tun_free(struct tg_h2tun *t)
{
    if (t == NULL)
        return;
    /* the owner is told nothing more of its streams (h2tun.h) */
    nghttp2_session_del(t->s);
    while (t->reqs != NULL)
        req_free(t, t->reqs);
    free(t);
}

int tg_h2tun_recv(struct tg_h2tun *t, const uint8_t *p, size_t n, char *err)
{
    ssize_t k = nghttp2_session_mem_recv(t->s, p, n);

    if (k < 0)
        return tg_err_set(err, TG_EINVAL, "HTTP/2: %s",
                          t->why[0] != '\0' ? t->why : nghttp2_strerror((int)k));
    return 0;
}

int tg_h2tun_send(struct tg_h2tun *t, struct tg_buf *out, struct tg_pool *pool)
{
    int rc;

    t->out = out;
    t->pool = pool;
    rc = nghttp2_session_send(t->s);
    t->out = NULL;
    if (t->out_of_memory)
        return TG_ENOMEM;
    return rc == 0 ? 0 : TG_EINVAL;
}

int tg_h2tun_accept(struct tg_h2tun *t, int32_t sid)
{
    struct req *r = req_of(t, sid);
    nghttp2_data_provider dp = {.read_callback = on_read_data};

    if (r == NULL || r->bound == NULL)
        return TG_EINVAL;
    dp.source.ptr = r->bound;
    return submit_status(t, sid, 200, NULL, &dp) == 0 ? 0 : TG_EINVAL;
}

int32_t tg_h2tun_open(struct tg_h2tun *t, const char *authority, void *stream)
{
    struct req *r;
    nghttp2_data_provider dp = {.source.ptr = stream, .read_callback = on_read_data};
    nghttp2_nv nv[2];
    size_t alen = strlen(authority);
    int32_t sid;

    if (!t->client || alen == 0 || alen > AUTHORITY_MAX || !tg_h2tun_can_open(t))
        return TG_EINVAL;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return TG_ENOMEM;
    r->bound = stream;
    r->connect = true;
    nv[0] = (nghttp2_nv){tg_unconst(":method"), tg_unconst("CONNECT"), 7, 7, NGHTTP2_NV_FLAG_NONE};
    nv[1] = (nghttp2_nv){tg_unconst(":authority"), (uint8_t *)tg_unconst(authority), 10, alen,
                         NGHTTP2_NV_FLAG_NONE};
    sid = nghttp2_submit_request(t->s, NULL, nv, 2, &dp, r);
    if (sid < 0) {
        free(r);
        return sid == NGHTTP2_ERR_NOMEM ? TG_ENOMEM : TG_EINVAL;
    }
    req_add(t, r);
    return sid;
}

bool tg_h2tun_can_open(struct tg_h2tun *t)
{
    return !t->goaway_received && !t->goaway_sent &&
           nghttp2_session_check_request_allowed(t->s) != 0;
}

size_t tg_h2tun_streams(const struct tg_h2tun *t)
{
    return t->n_reqs;
}

uint32_t tg_h2tun_peer_max_streams(const struct tg_h2tun *t)
{
    return nghttp2_session_get_remote_settings(t->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

void tg_h2tun_refuse(struct tg_h2tun *t, int32_t sid, int status, const char *reason)
{
    (void)submit_status(t, sid, status, reason, NULL);
}

void tg_h2tun_reset(struct tg_h2tun *t, int32_t sid, uint32_t code)
{
    nghttp2_submit_rst_stream(t->s, NGHTTP2_FLAG_NONE, sid, code);
}

/* Doubles r's window, up to window_max, while the session has a wide stream to spare. */
static void widen(struct tg_h2tun *t, struct req *r, int32_t sid)
{
    uint32_t next = r->window > t->window_max / 2 ? t->window_max : r->window * 2;

    if (r->window >= t->window_max || (r->window == t->window && t->n_wide >= WIDE_STREAMS))
        return;
    if (nghttp2_session_set_local_window_size(t->s, NGHTTP2_FLAG_NONE, sid, (int32_t)next) != 0)
        return; /* out of memory for the frame: the window stays as it was */
    if (r->window == t->window)
        t->n_wide++;
    r->window = next;
}

void tg_h2tun_consumed(struct tg_h2tun *t, int32_t sid, size_t n)
{
    struct req *r = req_of(t, sid);
    int32_t unacked;

    if (r == NULL) {
        nghttp2_session_consume(t->s, sid, n);
        return;
    }
    r->held -= n < r->held ? n : r->held;
    unacked = nghttp2_session_get_stream_effective_recv_data_length(t->s, sid);
    nghttp2_session_consume(t->s, sid, n);
    /* half the window went and came back (nghttp2 queued a WINDOW_UPDATE) with nothing of
     * the stream's left with the owner: its app keeps up, so the window is what paces the
     * peer, and a wider one rides out more of the time a busy machine leaves either end
     * waiting for a core */
    if (r->held == 0 && nghttp2_session_get_stream_effective_recv_data_length(t->s, sid) < unacked)
        widen(t, r, sid);
}

size_t tg_h2tun_window(const struct tg_h2tun *t, int32_t sid)
{
    const struct req *r = req_of(t, sid);

    return r != NULL ? r->window : t->window;
}

void tg_h2tun_resume(struct tg_h2tun *t, int32_t sid)
{
    nghttp2_session_resume_data(t->s, sid);
}

void tg_h2tun_goaway(struct tg_h2tun *t)
{
    /* the last stream ID taken so far: the peer opens nothing newer here */
    if (!t->goaway_sent) /* a later GOAWAY never raises the last stream (RFC 9113 6.8) */
        t->goaway_last = nghttp2_session_get_last_proc_stream_id(t->s);
    t->goaway_sent = true;
    nghttp2_submit_goaway(t->s, NGHTTP2_FLAG_NONE, t->goaway_last, NGHTTP2_NO_ERROR, NULL, 0);
}

bool tg_h2tun_done(const struct tg_h2tun *t)
{
    return !nghttp2_session_want_read(t->s) && !nghttp2_session_want_write(t->s);
}

bool tg_h2tun_want_write(const struct tg_h2tun *t)
{
    return nghttp2_session_want_write(t->s) != 0;
}

/* The server end of a tunnel (h2tun.h) against an nghttp2 client session in memory: CONNECT
 * streams accepted and refused, payload both ways with END_STREAM, resets, windows that open
 * only as the owner consumes, requests that are not CONNECT, oversized header blocks. */
#include <check.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "tollgate/h2tun.h"

#define WINDOW 4096

/* The owner's side: one slot per stream id (odd ids up to 2 * NSLOT). */
#define NSLOT 16

struct ostream {
    int32_t sid;
    bool open, eof, closed;
    uint32_t code;
    size_t got;       /* payload bytes received */
    size_t consumed;  /* given back */
    const char *send; /* the answer, then END_STREAM */
    size_t sent;
    char authority[256];
};

struct pair {
    nghttp2_session *cl;
    struct tg_h2tun *srv;
    struct tg_pool pool;
    struct tg_buf out;
    struct ostream st[NSLOT];
    bool consume; /* the owner gives windows back at once */
    bool refuse;  /* the owner refuses every stream at open */
    /* what the client saw, by stream id / 2 */
    int status[NSLOT];
    char reason[NSLOT][200];
    size_t body[NSLOT];
    bool ended[NSLOT];
    uint32_t reset[NSLOT];
    bool was_reset[NSLOT];
    /* what the client sends on stream 1 */
    const char *upload;
    size_t upload_len, upload_off;
};

static struct pair P;

static int slot(int32_t sid) /* streams far apart may share one: tests reuse them */
{
    return sid / 2 % NSLOT;
}

static void *o_open(void *arg, int32_t sid, const char *authority)
{
    struct pair *p = arg;
    struct ostream *st = &p->st[slot(sid)];

    if (p->refuse) {
        tg_h2tun_refuse(p->srv, sid, 403, "denied: by\ntest");
        return NULL;
    }
    st->open = true;
    st->sid = sid;
    snprintf(st->authority, sizeof(st->authority), "%s", authority);
    return st;
}

static void o_data(void *arg, void *stream, const uint8_t *d, size_t n)
{
    struct pair *p = arg;
    struct ostream *st = stream;

    (void)d;
    ck_assert(!st->closed);
    st->got += n;
    ck_assert_msg(st->got - st->consumed <= WINDOW, "window exceeded");
    if (p->consume) {
        tg_h2tun_consumed(p->srv, st->sid, n);
        st->consumed += n;
    }
}

static void o_eof(void *arg, void *stream)
{
    (void)arg;
    ((struct ostream *)stream)->eof = true;
}

static void o_close(void *arg, void *stream, uint32_t code)
{
    struct ostream *st = stream;

    (void)arg;
    ck_assert(!st->closed);
    st->closed = true;
    st->code = code;
}

static ssize_t o_read(void *arg, void *stream, uint8_t *dst, size_t cap, bool *eof)
{
    struct ostream *st = stream;
    size_t n = strlen(st->send) - st->sent;

    (void)arg;
    n = n < cap ? n : cap;
    memcpy(dst, st->send + st->sent, n);
    st->sent += n;
    *eof = st->sent == strlen(st->send);
    return (ssize_t)n;
}

static int cl_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                     const uint8_t *v, size_t vl, uint8_t flags, void *arg)
{
    struct pair *p = arg;
    int i = slot(f->hd.stream_id);

    (void)s;
    (void)flags;
    if (nl == 7 && memcmp(n, ":status", 7) == 0)
        p->status[i] = atoi((const char *)v);
    if (nl == 15 && memcmp(n, "tollgate-reason", 15) == 0)
        snprintf(p->reason[i], sizeof(p->reason[i]), "%.*s", (int)vl, (const char *)v);
    return 0;
}

static int cl_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *d, size_t n,
                   void *arg)
{
    struct pair *p = arg;

    (void)s;
    (void)flags;
    (void)d;
    p->body[slot(sid)] += n;
    return 0;
}

static int cl_frame(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct pair *p = arg;

    (void)s;
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        p->ended[slot(f->hd.stream_id)] = true;
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        p->was_reset[slot(f->hd.stream_id)] = true;
        p->reset[slot(f->hd.stream_id)] = f->rst_stream.error_code;
    }
    return 0;
}

static ssize_t cl_upload(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t cap, uint32_t *flags,
                         nghttp2_data_source *src, void *arg)
{
    struct pair *p = arg;
    size_t n = p->upload_len - p->upload_off;

    (void)s;
    (void)sid;
    (void)src;
    if (p->upload == NULL)
        return NGHTTP2_ERR_DEFERRED; /* a CONNECT's stream stays open */
    n = n < cap ? n : cap;
    memcpy(buf, p->upload + p->upload_off, n);
    p->upload_off += n;
    if (p->upload_off == p->upload_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void setup(void)
{
    const struct tg_h2tun_ops ops = {.on_open = o_open,
                                     .on_data = o_data,
                                     .on_eof = o_eof,
                                     .on_close = o_close,
                                     .on_read = o_read,
                                     .arg = &P};
    nghttp2_session_callbacks *cb;

    memset(&P, 0, sizeof(P));
    P.consume = true;
    tg_pool_init(&P.pool, 16384, 4);
    ck_assert_int_eq(tg_h2tun_new(&ops, WINDOW, WINDOW, 4, &P.srv), 0);
    ck_assert_int_eq(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, cl_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cl_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cl_frame);
    ck_assert_int_eq(nghttp2_session_client_new(&P.cl, cb, &P), 0);
    nghttp2_session_callbacks_del(cb);
    ck_assert_int_eq(nghttp2_submit_settings(P.cl, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

static void pump(void);

/* After SETTINGS both ways: the stream window is WINDOW (before, the peer may use 65,535). */
static void setup_settled(void)
{
    setup();
    pump();
}

static void teardown(void)
{
    tg_h2tun_free(P.srv);
    nghttp2_session_del(P.cl);
    tg_buf_drop(&P.out, &P.pool);
    tg_pool_cleanup(&P.pool);
}

/* Moves bytes both ways until neither side has any. */
static void pump(void)
{
    char err[TG_ERRLEN] = "";

    for (int round = 0; round < 200; round++) {
        const uint8_t *d;
        ssize_t n;
        bool moved = false;

        while ((n = nghttp2_session_mem_send(P.cl, &d)) > 0) {
            ck_assert_msg(tg_h2tun_recv(P.srv, d, (size_t)n, err) == 0, "%s", err);
            moved = true;
        }
        ck_assert_int_eq(tg_h2tun_send(P.srv, &P.out, &P.pool), 0);
        if (tg_buf_len(&P.out) > 0) {
            n = nghttp2_session_mem_recv(P.cl, (const uint8_t *)tg_buf_data(&P.out),
                                         tg_buf_len(&P.out));
            ck_assert_int_eq(n, (ssize_t)tg_buf_len(&P.out));
            tg_buf_consume(&P.out, tg_buf_len(&P.out));
            moved = true;
        }
        if (!moved)
            return;
    }
    ck_abort_msg("the exchange does not settle");
}

static int32_t connect_to(const char *authority, bool upload)
{
    nghttp2_nv nv[] = {
        {(uint8_t *)tg_unconst(":method"), (uint8_t *)tg_unconst("CONNECT"), 7, 7, 0},
        {(uint8_t *)tg_unconst(":authority"), (uint8_t *)tg_unconst(authority), 10,
         strlen(authority), 0},
    };
    nghttp2_data_provider dp = {.read_callback = cl_upload};
    int32_t sid = nghttp2_submit_request(P.cl, NULL, nv, 2, &dp, NULL);

    (void)upload;
    ck_assert_int_gt(sid, 0);
    return sid;
}

START_TEST(test_h2tun_connect_both_ways_with_end_stream)
{
    static char big[3 * WINDOW + 17];
    int32_t sid;

    memset(big, 'u', sizeof(big));
    P.upload = big;
    P.upload_len = sizeof(big);
    sid = connect_to("10.0.0.7:8080", true);
    pump();
    ck_assert(P.st[slot(sid)].open);
    ck_assert_str_eq(P.st[slot(sid)].authority, "10.0.0.7:8080");
    ck_assert_int_eq(P.status[slot(sid)], 0); /* not answered yet: bytes wait in the window */
    P.st[slot(sid)].send = "the app's answer";
    ck_assert_int_eq(tg_h2tun_accept(P.srv, sid), 0);
    ck_assert_int_eq(tg_h2tun_accept(P.srv, sid), TG_EINVAL); /* once */
    pump();
    ck_assert_int_eq(P.status[slot(sid)], 200);
    ck_assert_uint_eq(P.st[slot(sid)].got, sizeof(big)); /* several windows' worth */
    ck_assert(P.st[slot(sid)].eof);
    ck_assert_uint_eq(P.body[slot(sid)], strlen("the app's answer"));
    ck_assert(P.ended[slot(sid)]);
    ck_assert(P.st[slot(sid)].closed);
    ck_assert_uint_eq(P.st[slot(sid)].code, 0);
}
END_TEST

START_TEST(test_h2tun_window_opens_only_when_consumed)
{
    static char big[3 * WINDOW];
    int32_t sid;

    P.consume = false;
    P.upload = big;
    P.upload_len = sizeof(big);
    sid = connect_to("a:1", true);
    pump();
    ck_assert_uint_eq(P.st[slot(sid)].got, WINDOW); /* a slow app: its stream stalls */
    tg_h2tun_consumed(P.srv, sid, WINDOW);
    P.st[slot(sid)].consumed = WINDOW;
    pump();
    ck_assert_uint_eq(P.st[slot(sid)].got, 2 * WINDOW);
}
END_TEST

/* Bytes the owner drops when a stream ends early are given back to the connection's window
 * too, even after the stream has closed: else a few streams reset while full would stall
 * the whole tunnel. */
START_TEST(test_h2tun_dropped_bytes_reopen_the_connection_window)
{
    static char big[WINDOW];

    /* 30 streams of a full window each, 120 KiB in all, well past the connection's 64 KiB:
     * each is reset while the owner holds its bytes, and the owner drops them after the
     * close; every stream still gets its whole window */
    P.consume = false;
    for (int i = 0; i < 30; i++) {
        int32_t sid;

        memset(P.st, 0, sizeof(P.st));
        P.upload = big;
        P.upload_len = WINDOW;
        P.upload_off = 0;
        sid = connect_to("a:1", true);
        pump();
        ck_assert_msg(P.st[slot(sid)].got == WINDOW, "stream %d of 30 stalled", i);
        ck_assert_int_eq(nghttp2_submit_rst_stream(P.cl, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL),
                         0);
        pump();
        tg_h2tun_consumed(P.srv, sid, WINDOW); /* the owner drops what it held */
    }
}
END_TEST

START_TEST(test_h2tun_refused_stream_leaves_tunnel_up)
{
    int32_t a, b;

    P.refuse = true;
    a = connect_to("a:1", false);
    pump();
    ck_assert_int_eq(P.status[slot(a)], 403);
    ck_assert_str_eq(P.reason[slot(a)], "denied: by?test"); /* one line */
    ck_assert(P.was_reset[slot(a)]);
    ck_assert_uint_eq(P.reset[slot(a)], NGHTTP2_NO_ERROR);
    P.refuse = false;
    b = connect_to("a:2", false);
    pump();
    P.st[slot(b)].send = "";
    ck_assert_int_eq(tg_h2tun_accept(P.srv, b), 0);
    pump();
    ck_assert_int_eq(P.status[slot(b)], 200);
    ck_assert(!tg_h2tun_done(P.srv));
}
END_TEST

START_TEST(test_h2tun_reset_both_ways)
{
    int32_t a = connect_to("a:1", false), b = connect_to("a:2", false);

    pump();
    P.st[slot(a)].send = P.st[slot(b)].send = "x";
    ck_assert_int_eq(tg_h2tun_accept(P.srv, a), 0);
    pump();
    ck_assert_int_eq(nghttp2_submit_rst_stream(P.cl, NGHTTP2_FLAG_NONE, a, NGHTTP2_CANCEL), 0);
    tg_h2tun_reset(P.srv, b, TG_H2TUN_CONNECT_ERROR);
    pump();
    ck_assert(P.st[slot(a)].closed);
    ck_assert_uint_eq(P.st[slot(a)].code, NGHTTP2_CANCEL);
    ck_assert(P.was_reset[slot(b)]);
    ck_assert_uint_eq(P.reset[slot(b)], NGHTTP2_CONNECT_ERROR);
    ck_assert(P.st[slot(b)].closed);
}
END_TEST

START_TEST(test_h2tun_only_connect_with_authority)
{
    nghttp2_nv get[] = {
        {(uint8_t *)tg_unconst(":method"), (uint8_t *)tg_unconst("GET"), 7, 3, 0},
        {(uint8_t *)tg_unconst(":scheme"), (uint8_t *)tg_unconst("https"), 7, 5, 0},
        {(uint8_t *)tg_unconst(":path"), (uint8_t *)tg_unconst("/"), 5, 1, 0},
        {(uint8_t *)tg_unconst(":authority"), (uint8_t *)tg_unconst("a:1"), 10, 3, 0},
    };
    int32_t sid = nghttp2_submit_request(P.cl, NULL, get, 4, NULL, NULL);

    pump();
    ck_assert_int_eq(P.status[slot(sid)], 405);
    ck_assert(!P.st[slot(sid)].open); /* the owner never heard of it */
}
END_TEST

START_TEST(test_h2tun_header_block_bounded)
{
    static char big[TG_H2TUN_MAX_HEADERS];
    nghttp2_nv nv[] = {
        {(uint8_t *)tg_unconst(":method"), (uint8_t *)tg_unconst("CONNECT"), 7, 7, 0},
        {(uint8_t *)tg_unconst(":authority"), (uint8_t *)tg_unconst("a:1"), 10, 3, 0},
        {(uint8_t *)tg_unconst("x-big"), (uint8_t *)big, 5, sizeof(big), 0},
    };
    int32_t sid;

    memset(big, 'b', sizeof(big));
    sid = nghttp2_submit_request(P.cl, NULL, nv, 3, NULL, NULL);
    pump();
    ck_assert(!P.st[slot(sid)].open);
    ck_assert(P.was_reset[slot(sid)]);
}
END_TEST

START_TEST(test_h2tun_goaway_lets_open_streams_finish)
{
    int32_t a = connect_to("a:1", false);

    pump();
    P.st[slot(a)].send = "late";
    tg_h2tun_goaway(P.srv);
    pump();
    ck_assert(!tg_h2tun_done(P.srv)); /* stream a is still open */
    ck_assert_int_eq(tg_h2tun_accept(P.srv, a), 0);
    P.upload = "";
    ck_assert_int_eq(nghttp2_session_resume_data(P.cl, a), 0);
    pump();
    ck_assert_uint_eq(P.body[slot(a)], 4);
    ck_assert(P.st[slot(a)].closed);
    ck_assert(tg_h2tun_done(P.srv));
}
END_TEST

/* nghttp2 takes new streams until our GOAWAY is out, and a tunnel reads what came before it
 * goes: a stream newer than the GOAWAY's last stream is never offered to the owner (it would
 * be decided under the generation the GOAWAY retires) but refused with REFUSED_STREAM, which
 * tells the client it may try it elsewhere; the streams before it go on. */
START_TEST(test_h2tun_stream_after_goaway_is_refused_for_retry)
{
    char err[TG_ERRLEN] = "";
    const uint8_t *d;
    ssize_t n;
    int32_t a = connect_to("a:1", false), b;

    pump();
    ck_assert(P.st[slot(a)].open);
    tg_h2tun_goaway(P.srv); /* submitted, not yet sent */
    b = connect_to("b:1", false);
    while ((n = nghttp2_session_mem_send(P.cl, &d)) > 0) /* b's HEADERS arrive first */
        ck_assert_msg(tg_h2tun_recv(P.srv, d, (size_t)n, err) == 0, "%s", err);
    pump();
    ck_assert(!P.st[slot(b)].open);
    ck_assert(P.was_reset[slot(b)]);
    ck_assert_uint_eq(P.reset[slot(b)], NGHTTP2_REFUSED_STREAM);
    ck_assert(!P.was_reset[slot(a)]);
    ck_assert_int_eq(tg_h2tun_accept(P.srv, a), 0);
}
END_TEST

/* A peer that sends past a stream's window (nghttp2's own client never would: the frame is
 * hand-made) ends the tunnel, and the owner never gets more than the window. */
START_TEST(test_h2tun_data_past_window_ends_session)
{
    static uint8_t frame[9 + WINDOW + 1] = {(WINDOW + 1) >> 16,
                                            (uint8_t)((WINDOW + 1) >> 8),
                                            (uint8_t)(WINDOW + 1),
                                            0 /* DATA */,
                                            0,
                                            0,
                                            0,
                                            0,
                                            1};
    char err[TG_ERRLEN] = "";
    int32_t sid = connect_to("a:1", false);

    P.consume = false;
    pump();
    ck_assert_int_eq(sid, 1);
    ck_assert_int_eq(tg_h2tun_recv(P.srv, frame, sizeof(frame), err), TG_EINVAL);
    ck_assert_msg(strstr(err, "window") != NULL, "%s", err);
    ck_assert_uint_eq(P.st[slot(sid)].got, 0);
    ck_assert_int_eq(tg_h2tun_send(P.srv, &P.out, &P.pool), 0); /* the GOAWAY */
    ck_assert(tg_h2tun_done(P.srv));
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE(
        "h2tun", "h2tun", &tc, test_h2tun_connect_both_ways_with_end_stream,
        test_h2tun_window_opens_only_when_consumed, test_h2tun_refused_stream_leaves_tunnel_up,
        test_h2tun_dropped_bytes_reopen_the_connection_window, test_h2tun_reset_both_ways,
        test_h2tun_only_connect_with_authority, test_h2tun_header_block_bounded,
        test_h2tun_goaway_lets_open_streams_finish,
        test_h2tun_stream_after_goaway_is_refused_for_retry,
        test_h2tun_data_past_window_ends_session);

    tcase_add_checked_fixture(tc, setup_settled, teardown);
    return s;
}

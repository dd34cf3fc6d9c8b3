/* The client end of a tunnel (h2tun.h) against its server end, back to back in memory: what
 * one session sends, the other receives. CONNECT streams opened and answered (200, or a
 * refusal with its reason), payload both ways over several windows that the owners give
 * back, END_STREAM each way, resets each way, a server's GOAWAY (a stream it never took
 * closes as refused), the server's stream cap, stream counting, authorities refused at
 * open. Then hostile servers, as hand-made frames: a header block over the cap, DATA past
 * the window, an answer on a stream never opened, a PUSH_PROMISE. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "tollgate/h2tun.h"

#define WINDOW 4096
#define MAX_STREAMS 8
#define NSLOT 16               /* owner slots, by stream ID: sid / 2 */
#define BIG (3 * WINDOW + 123) /* several windows' worth of payload */
#define WIRE_MAX (256 * 1024)  /* a hostile test's record of the client's output */
#define FLOW_CONTROL_ERROR 0x3 /* RFC 9113 7 */
#define PROTOCOL_ERROR 0x1

/* One owner's view of one stream. */
struct end {
    int32_t sid;
    bool open;           /* server: on_open came */
    int responses;       /* client: on_response calls */
    int status;          /* client: the answer */
    char reason[256];    /* client: tollgate-reason ("" for none) */
    char authority[256]; /* server: as asked */
    int eofs;            /* on_eof calls */
    bool closed;
    uint32_t code;
    size_t got, consumed, max_held;
    bool bad_byte;   /* payload that is not the sender's pattern */
    size_t send_len; /* payload to send (the pattern), then END_STREAM if end */
    size_t sent;
    bool end, deferred;
};

/* One session and its owner. */
struct side {
    struct tg_h2tun *t;
    struct tg_buf out;
    struct end st[NSLOT];
    bool hold;   /* keep received bytes until the test gives them back */
    bool refuse; /* server: refuse every CONNECT at open */
};

static struct tg_pool pool;
static struct side cl, srv;

/* A hostile test's client output, whole frames parsed from it. */
static uint8_t wire[WIRE_MAX];
static size_t wire_len, wire_off;
static bool goaway_sent;
static uint32_t goaway_code;
static uint32_t rst_code[NSLOT];
static bool rst_sent[NSLOT];

static int slot(int32_t sid)
{
    return sid / 2 % NSLOT;
}

static struct end *srv_end(int32_t sid)
{
    return &srv.st[slot(sid)];
}

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i % 251);
}

static void *on_open(void *arg, int32_t sid, const char *authority)
{
    struct side *sd = arg;
    struct end *e = &sd->st[slot(sid)];

    ck_assert(!e->open);
    e->open = true;
    e->sid = sid;
    snprintf(e->authority, sizeof(e->authority), "%s", authority);
    if (sd->refuse) {
        tg_h2tun_refuse(sd->t, sid, 403, "denied: no rule\nfor you");
        return NULL;
    }
    return e;
}

static void on_response(void *arg, void *stream, int status, const char *reason)
{
    struct side *sd = arg;
    struct end *e = stream;

    ck_assert(!e->closed);
    e->responses++;
    e->status = status;
    snprintf(e->reason, sizeof(e->reason), "%s", reason != NULL ? reason : "");
    if (status == 200 && e->deferred) { /* as tunout.c: the app's bytes may go now */
        e->deferred = false;
        tg_h2tun_resume(sd->t, e->sid);
    }
}

static void on_data(void *arg, void *stream, const uint8_t *p, size_t n)
{
    struct side *sd = arg;
    struct end *e = stream;

    ck_assert(!e->closed);
    for (size_t i = 0; i < n; i++)
        e->bad_byte |= p[i] != pattern(e->got + i);
    e->got += n;
    if (e->got - e->consumed > e->max_held)
        e->max_held = e->got - e->consumed;
    if (!sd->hold) {
        tg_h2tun_consumed(sd->t, e->sid, n);
        e->consumed += n;
    }
}

/* The owner's end of stream: no callback after its close. */
static struct end *alive(void *stream)
{
    ck_assert(!((struct end *)stream)->closed);
    return stream;
}

static void on_eof(void *arg, void *stream)
{
    (void)arg;
    alive(stream)->eofs++;
}

static void on_close(void *arg, void *stream, uint32_t code)
{
    struct end *e = alive(stream);

    (void)arg;
    e->closed = true;
    e->code = code;
}

static ssize_t on_read(void *arg, void *stream, uint8_t *dst, size_t cap, bool *eof)
{
    struct side *sd = arg;
    struct end *e = stream;
    size_t n = e->send_len - e->sent;

    ck_assert(!e->closed);
    if ((sd == &cl && e->status != 200) || (n == 0 && !e->end)) {
        e->deferred = true; /* nothing before the answer, as tunout.c */
        return TG_EAGAIN;
    }
    n = n < cap ? n : cap;
    for (size_t i = 0; i < n; i++)
        dst[i] = pattern(e->sent + i);
    e->sent += n;
    *eof = e->end && e->sent == e->send_len;
    return (ssize_t)n;
}

/* Both ends' owners: a server's is asked on_open, a client's told on_response. */
static const struct tg_h2tun_ops ops = {.on_open = on_open,
                                        .on_response = on_response,
                                        .on_data = on_data,
                                        .on_eof = on_eof,
                                        .on_close = on_close,
                                        .on_read = on_read};

/* e's owner has len more bytes to send, and then its end if end. */
static void say(struct side *sd, struct end *e, size_t len, bool end)
{
    e->send_len += len;
    e->end = end;
    if (e->deferred) {
        e->deferred = false;
        tg_h2tun_resume(sd->t, e->sid);
    }
}

/* Every byte e's owner holds has left it. */
static void give_back(struct side *sd, struct end *e)
{
    if (e->got > e->consumed)
        tg_h2tun_consumed(sd->t, e->sid, e->got - e->consumed);
    e->consumed = e->got;
}

static void pair_new(void)
{
    struct tg_h2tun_ops cl_ops = ops, srv_ops = ops; /* the session keeps a copy */

    memset(&cl, 0, sizeof(cl));
    memset(&srv, 0, sizeof(srv));
    cl_ops.arg = &cl;
    srv_ops.arg = &srv;
    ck_assert_int_eq(tg_h2tun_new_client(&cl_ops, WINDOW, WINDOW, MAX_STREAMS, &cl.t), 0);
    ck_assert_int_eq(tg_h2tun_new(&srv_ops, WINDOW, WINDOW, MAX_STREAMS, &srv.t), 0);
}

static void pair_free(void)
{
    tg_h2tun_free(cl.t);
    tg_h2tun_free(srv.t);
    cl.t = srv.t = NULL;
    tg_buf_drop(&cl.out, &pool);
    tg_buf_drop(&srv.out, &pool);
}

/* What from has to send, into from->out. */
static void flush(struct side *from)
{
    ck_assert_int_eq(tg_h2tun_send(from->t, &from->out, &pool), 0);
}

/* from's output, to to. Whether any moved. */
static bool deliver(struct side *from, struct side *to)
{
    char err[TG_ERRLEN] = "";
    size_t n = tg_buf_len(&from->out);

    if (n == 0)
        return false;
    ck_assert_msg(tg_h2tun_recv(to->t, (const uint8_t *)tg_buf_data(&from->out), n, err) == 0, "%s",
                  err);
    tg_buf_consume(&from->out, n);
    return true;
}

/* Moves bytes both ways until neither side has any. */
static void pump(void)
{
    for (int round = 0; round < 400; round++) {
        bool moved;

        flush(&cl);
        moved = deliver(&cl, &srv);
        flush(&srv);
        moved |= deliver(&srv, &cl);
        if (!moved)
            return;
    }
    ck_abort_msg("the exchange does not settle");
}

static void setup(void)
{
    tg_pool_init(&pool, 16384, 4);
    pair_new();
    pump(); /* SETTINGS both ways: the stream window is WINDOW from now on */
}

static void teardown(void)
{
    pair_free();
    tg_pool_cleanup(&pool);
}

/* A client stream for authority, opened: its owner's end (the next free one). */
static struct end *open_stream(const char *authority)
{
    struct end *e = &cl.st[0];

    while (e->sid != 0)
        e++;
    ck_assert(e < cl.st + NSLOT);
    e->sid = tg_h2tun_open(cl.t, authority, e);
    ck_assert_int_gt(e->sid, 0);
    return e;
}

/* A client stream answered 200, and the server's end of it. */
static struct end *open_accepted(const char *authority, struct end **server)
{
    struct end *e = open_stream(authority);

    pump();
    ck_assert(srv_end(e->sid)->open);
    ck_assert_int_eq(tg_h2tun_accept(srv.t, e->sid), 0);
    pump();
    ck_assert_int_eq(e->status, 200);
    *server = srv_end(e->sid);
    return e;
}

/* Both ends of an accepted stream send their last bytes (up from the client, down from the
 * server) and END_STREAM: all of them arrive, and the stream closes without error. */
static void finish(struct end *c, struct end *s, size_t up, size_t down)
{
    size_t up0 = s->got, down0 = c->got;

    say(&cl, c, up, true);
    say(&srv, s, down, true);
    pump();
    ck_assert_uint_eq(s->got - up0, up);
    ck_assert_uint_eq(c->got - down0, down);
    ck_assert(c->closed && s->closed);
    ck_assert_uint_eq(c->code, 0);
    ck_assert_uint_eq(s->code, 0);
}

START_TEST(test_h2tun_client_connect_accept)
{
    struct end *e = open_stream("10.0.0.7:8080");

    ck_assert_int_eq(e->sid, 1);
    say(&cl, e, 5, false); /* the app has bytes already: they wait for the answer */
    pump();
    ck_assert(srv_end(1)->open);
    ck_assert_str_eq(srv_end(1)->authority, "10.0.0.7:8080");
    ck_assert_int_eq(e->responses, 0);
    ck_assert_uint_eq(e->sent, 0); /* nothing of the app's before the 200 */
    ck_assert_int_eq(tg_h2tun_accept(srv.t, 1), 0);
    pump();
    ck_assert_int_eq(e->responses, 1);
    ck_assert_int_eq(e->status, 200);
    ck_assert_str_eq(e->reason, "");
    ck_assert_uint_eq(srv_end(1)->got, 5); /* ... and now they went */
    ck_assert(!srv_end(1)->bad_byte);
    ck_assert(!e->closed);
}
END_TEST

/* Both owners slow: each holds what it got until the test gives it back, a window at most;
 * the payload crosses in several windows each way, then END_STREAM each way. */
START_TEST(test_h2tun_client_payload_over_windows)
{
    struct end *s, *c = open_accepted("a:1", &s);
    int rounds = 0;

    cl.hold = srv.hold = true;
    say(&cl, c, BIG, true);
    say(&srv, s, BIG, true);
    while (c->got < BIG || s->got < BIG) {
        ck_assert_msg(++rounds < 20, "the payload stalls: %zu and %zu", c->got, s->got);
        pump();
        ck_assert_uint_le(c->max_held, WINDOW);
        ck_assert_uint_le(s->max_held, WINDOW);
        give_back(&cl, c);
        give_back(&srv, s);
    }
    pump();
    ck_assert_int_ge(rounds, 3); /* the windows did stop them */
    ck_assert_uint_eq(c->got, BIG);
    ck_assert_uint_eq(s->got, BIG);
    ck_assert(!c->bad_byte && !s->bad_byte);
    ck_assert_int_eq(c->eofs, 1);
    ck_assert_int_eq(s->eofs, 1);
    ck_assert(c->closed && s->closed);
    ck_assert_uint_eq(c->code, 0);
    ck_assert_uint_eq(s->code, 0);
    ck_assert_uint_eq(tg_h2tun_streams(cl.t), 0);
    ck_assert_uint_eq(tg_h2tun_streams(srv.t), 0);
}
END_TEST

/* Widening (h2tun.h): with window_max above window, a stream whose owner takes every byte at
 * once has its window doubled each time half of it comes back, up to window_max, both ways;
 * at most 8 of a session's streams at once, so the most a peer can make an owner hold stays
 * bounded; a wide stream that closes frees its place. */
START_TEST(test_h2tun_client_window_widens_while_the_owner_keeps_up)
{
    struct tg_h2tun_ops cl_ops = ops, srv_ops = ops;
    struct end *c[10], *s[10];
    int wide = 0;

    pair_free();
    memset(&cl, 0, sizeof(cl));
    memset(&srv, 0, sizeof(srv));
    cl_ops.arg = &cl;
    srv_ops.arg = &srv;
    ck_assert_int_eq(tg_h2tun_new_client(&cl_ops, WINDOW, 8 * WINDOW, 12, &cl.t), 0);
    ck_assert_int_eq(tg_h2tun_new(&srv_ops, WINDOW, 8 * WINDOW, 12, &srv.t), 0);
    pump();
    for (int i = 0; i < 10; i++) {
        char authority[16];

        snprintf(authority, sizeof(authority), "a:%d", i + 1);
        c[i] = open_accepted(authority, &s[i]);
        say(&cl, c[i], 40 * WINDOW, false); /* owners that keep up: the windows widen */
        say(&srv, s[i], 40 * WINDOW, false);
        pump();
        ck_assert_uint_eq(s[i]->got, 40 * WINDOW);
        ck_assert_uint_eq(c[i]->got, 40 * WINDOW);
    }
    cl.hold = srv.hold = true; /* now slow apps: each stream stalls at its window */
    for (int i = 0; i < 10; i++) {
        say(&cl, c[i], 40 * WINDOW, false);
        say(&srv, s[i], 40 * WINDOW, false);
    }
    pump();
    /* a stream holds its window less what was given back before a WINDOW_UPDATE was due
     * (under half of it): the first 8 streams, widened both ways, more than WINDOW */
    for (int i = 0; i < 10; i++) {
        size_t up = s[i]->got - s[i]->consumed, down = c[i]->got - c[i]->consumed;

        ck_assert_uint_le(up, i < 8 ? 8 * WINDOW : WINDOW);
        ck_assert_uint_le(down, i < 8 ? 8 * WINDOW : WINDOW);
        ck_assert_msg((up > 4 * WINDOW) == (i < 8), "stream %d holds %zu up", i, up);
        ck_assert_msg((down > 4 * WINDOW) == (i < 8), "stream %d holds %zu down", i, down);
        ck_assert(!s[i]->bad_byte && !c[i]->bad_byte);
    }

    /* a wide stream ends: one of the narrow ones that keep up takes its place */
    tg_h2tun_reset(cl.t, c[0]->sid, 0x8 /* CANCEL */);
    pump();
    ck_assert(c[0]->closed && s[0]->closed);
    cl.hold = srv.hold = false;
    for (int i = 1; i < 10; i++) {
        give_back(&srv, s[i]);
        give_back(&cl, c[i]);
    }
    pump();
    cl.hold = srv.hold = true;
    for (int i = 1; i < 10; i++) {
        say(&cl, c[i], 40 * WINDOW, false);
        say(&srv, s[i], 40 * WINDOW, false);
    }
    pump();
    for (int i = 1; i < 10; i++)
        wide += s[i]->got - s[i]->consumed > WINDOW && c[i]->got - c[i]->consumed > WINDOW;
    ck_assert_int_eq(wide, 8); /* the 7 left, and one of the last two */
    ck_assert(s[8]->got - s[8]->consumed > WINDOW || s[9]->got - s[9]->consumed > WINDOW);
}
END_TEST

/* END_STREAM one way leaves the other way open until its own. */
START_TEST(test_h2tun_client_half_close_each_way)
{
    struct end *s, *c = open_accepted("a:1", &s);

    say(&cl, c, 10, true);
    pump();
    ck_assert_int_eq(s->eofs, 1);
    ck_assert_int_eq(c->eofs, 0);
    ck_assert(!s->closed && !c->closed);
    say(&srv, s, 20, false); /* the server's way still flows */
    pump();
    ck_assert_uint_eq(c->got, 20);
    say(&srv, s, 0, true);
    pump();
    ck_assert_int_eq(c->eofs, 1);
    ck_assert(s->closed && c->closed);
    ck_assert_uint_eq(c->code, 0);

    /* and the other way round */
    c = open_accepted("a:2", &s);
    say(&srv, s, 7, true);
    pump();
    ck_assert_int_eq(c->eofs, 1);
    ck_assert_uint_eq(c->got, 7);
    ck_assert(!c->closed);
    say(&cl, c, 3, true);
    pump();
    ck_assert_uint_eq(s->got, 3);
    ck_assert(s->closed && c->closed);
}
END_TEST

START_TEST(test_h2tun_client_refusal_has_reason)
{
    struct end *c = open_stream("10.1.1.1:5432"), *s;

    srv.refuse = true;
    say(&cl, c, 100, true);
    pump();
    ck_assert_int_eq(c->responses, 1);
    ck_assert_int_eq(c->status, 403);
    ck_assert_str_eq(c->reason, "denied: no rule?for you"); /* one line */
    ck_assert_uint_eq(c->sent, 0); /* nothing of the app's went out: it may go elsewhere */
    ck_assert(c->closed);
    ck_assert_uint_eq(c->code, 0); /* the refusal ends the stream, no error */
    ck_assert_uint_eq(tg_h2tun_streams(cl.t), 0);
    /* the tunnel stays up for the next */
    srv.refuse = false;
    c = open_accepted("10.1.1.1:5433", &s);
    ck_assert_str_eq(s->authority, "10.1.1.1:5433");
    ck_assert(tg_h2tun_can_open(cl.t));
}
END_TEST

START_TEST(test_h2tun_client_reset_each_way)
{
    struct end *sa, *a = open_accepted("a:1", &sa);
    struct end *sb, *b = open_accepted("a:2", &sb);
    struct end *c = open_stream("a:3");

    pump();
    ck_assert(srv_end(c->sid)->open);
    tg_h2tun_reset(cl.t, a->sid, TG_H2TUN_CANCEL);         /* the app went */
    tg_h2tun_reset(srv.t, b->sid, TG_H2TUN_CONNECT_ERROR); /* the upstream failed */
    tg_h2tun_reset(cl.t, c->sid, TG_H2TUN_CANCEL);         /* gone before the answer */
    pump();
    ck_assert(a->closed && sa->closed && b->closed && sb->closed && c->closed);
    ck_assert_uint_eq(a->code, TG_H2TUN_CANCEL);
    ck_assert_uint_eq(sa->code, TG_H2TUN_CANCEL);
    ck_assert_uint_eq(b->code, TG_H2TUN_CONNECT_ERROR);
    ck_assert_uint_eq(sb->code, TG_H2TUN_CONNECT_ERROR);
    ck_assert_uint_eq(c->code, TG_H2TUN_CANCEL);
    ck_assert_int_eq(c->responses, 0);
    ck_assert_uint_eq(tg_h2tun_streams(cl.t), 0);
    ck_assert(srv_end(c->sid)->closed);
    ck_assert_uint_eq(srv_end(c->sid)->code, TG_H2TUN_CANCEL);
    ck_assert_uint_eq(tg_h2tun_streams(srv.t), 0);
    ck_assert(tg_h2tun_can_open(cl.t));
}
END_TEST

/* The server's GOAWAY names the last stream it took: one it never took (its HEADERS crossed
 * the GOAWAY, or had not left yet) closes as REFUSED, never answered, so the owner may try it
 * elsewhere; the streams it took run to their end. */
START_TEST(test_h2tun_client_goaway_refuses_later_streams)
{
    struct end *sa, *a = open_accepted("a:1", &sa);
    struct end *b, *c;

    tg_h2tun_goaway(srv.t);
    flush(&srv); /* the GOAWAY is on its way ... */
    ck_assert(tg_h2tun_can_open(cl.t));
    b = open_stream("a:2"); /* ... as b's HEADERS cross it */
    flush(&cl);
    deliver(&cl, &srv);
    ck_assert(!srv_end(b->sid)->open); /* the server ignores b */
    c = open_stream("a:3");            /* not sent before the GOAWAY comes */
    deliver(&srv, &cl);
    ck_assert(!tg_h2tun_can_open(cl.t));
    ck_assert_int_eq(tg_h2tun_open(cl.t, "a:4", &cl.st[NSLOT - 1]), TG_EINVAL);
    pump();
    ck_assert(b->closed && c->closed);
    ck_assert_uint_eq(b->code, TG_H2TUN_REFUSED);
    ck_assert_uint_eq(c->code, TG_H2TUN_REFUSED);
    ck_assert_int_eq(b->responses + c->responses, 0);
    ck_assert(!a->closed); /* a runs to its end */
    finish(a, sa, 4, 6);
    ck_assert(tg_h2tun_done(srv.t));
}
END_TEST

/* A client retires a tunnel (a new generation, a drain) with its own GOAWAY: nothing new
 * opens, the streams it has run to their end, then both sessions are done. */
START_TEST(test_h2tun_client_retires_with_goaway)
{
    struct end *s, *c = open_accepted("a:1", &s);

    tg_h2tun_goaway(cl.t);
    pump();
    ck_assert(!tg_h2tun_can_open(cl.t));
    ck_assert_int_eq(tg_h2tun_open(cl.t, "a:2", &cl.st[NSLOT - 1]), TG_EINVAL);
    ck_assert(!tg_h2tun_done(cl.t) && !tg_h2tun_done(srv.t));
    finish(c, s, 9, 11);
    ck_assert(tg_h2tun_done(cl.t));
    ck_assert(tg_h2tun_done(srv.t));
}
END_TEST

/* The server's cap, once its SETTINGS came; streams past it wait for a free one. */
START_TEST(test_h2tun_client_peer_max_streams)
{
    struct end *e[MAX_STREAMS + 2];

    pair_free();
    pair_new();
    ck_assert_uint_eq(tg_h2tun_peer_max_streams(cl.t), 100); /* none said yet: nghttp2's guess */
    pump();
    ck_assert_uint_eq(tg_h2tun_peer_max_streams(cl.t), MAX_STREAMS);
    for (int i = 0; i < MAX_STREAMS + 2; i++)
        e[i] = open_stream("a:1");
    pump();
    ck_assert_uint_eq(tg_h2tun_streams(cl.t), MAX_STREAMS + 2);
    ck_assert_uint_eq(tg_h2tun_streams(srv.t), MAX_STREAMS);
    ck_assert(!srv_end(e[MAX_STREAMS]->sid)->open);
    tg_h2tun_reset(cl.t, e[0]->sid, TG_H2TUN_CANCEL);
    pump();
    ck_assert(srv_end(e[MAX_STREAMS]->sid)->open); /* it took the free place */
    ck_assert(!srv_end(e[MAX_STREAMS + 1]->sid)->open);
    ck_assert_uint_eq(tg_h2tun_streams(srv.t), MAX_STREAMS);
}
END_TEST

START_TEST(test_h2tun_client_open_refuses_bad_authority)
{
    char longest[256], too_long[257];

    memset(longest, 'a', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    ck_assert_int_eq(tg_h2tun_open(cl.t, "", &cl.st[0]), TG_EINVAL);
    ck_assert_int_eq(tg_h2tun_open(cl.t, too_long, &cl.st[0]), TG_EINVAL);
    ck_assert_int_eq(tg_h2tun_open(srv.t, "a:1", &cl.st[0]), TG_EINVAL); /* not a client */
    ck_assert_uint_eq(tg_h2tun_streams(cl.t), 0);
    pump();
    ck_assert_uint_eq(tg_h2tun_streams(srv.t), 0); /* nothing went out */
    pump();
    ck_assert_str_eq(srv_end(open_stream(longest)->sid)->authority, "");
    pump();
    ck_assert_str_eq(srv_end(1)->authority, longest); /* 255 bytes are fine */
}
END_TEST

START_TEST(test_h2tun_client_streams_counted)
{
    struct end *s1, *c1 = open_accepted("a:1", &s1);
    struct end *s2, *c2 = open_accepted("a:2", &s2);

    open_stream("a:3");
    ck_assert_uint_eq(tg_h2tun_streams(cl.t), 3); /* counted from the open */
    pump();
    ck_assert_uint_eq(tg_h2tun_streams(srv.t), 3);
    finish(c1, s1, 0, 0);
    ck_assert_uint_eq(tg_h2tun_streams(cl.t), 2);
    ck_assert_uint_eq(tg_h2tun_streams(srv.t), 2);
    tg_h2tun_reset(srv.t, c2->sid, TG_H2TUN_CONNECT_ERROR);
    pump();
    ck_assert(s2->closed);
    ck_assert_uint_eq(tg_h2tun_streams(cl.t), 1);
    ck_assert_uint_eq(tg_h2tun_streams(srv.t), 1);
}
END_TEST

/* ---- hostile servers: hand-made frames (RFC 9113 4, HPACK RFC 7541 5.1 and 6.2.2) ---- */

#define T_DATA 0x0
#define T_HEADERS 0x1
#define T_RST_STREAM 0x3
#define T_SETTINGS 0x4
#define T_PUSH_PROMISE 0x5
#define T_GOAWAY 0x7
#define T_CONTINUATION 0x9
#define F_END_STREAM 0x1
#define F_ACK 0x1
#define F_END_HEADERS 0x4
#define FRAME_MAX 16384 /* SETTINGS_MAX_FRAME_SIZE's default */

static uint8_t in[64 * 1024]; /* what the hostile server sends */
static size_t in_len;

static void frame(uint8_t type, uint8_t flags, int32_t sid, const uint8_t *p, size_t n)
{
    uint8_t *h = in + in_len;

    ck_assert_uint_le(in_len + 9 + n, sizeof(in));
    h[0] = (uint8_t)(n >> 16);
    h[1] = (uint8_t)(n >> 8);
    h[2] = (uint8_t)n;
    h[3] = type;
    h[4] = flags;
    h[5] = (uint8_t)(sid >> 24);
    h[6] = (uint8_t)(sid >> 16);
    h[7] = (uint8_t)(sid >> 8);
    h[8] = (uint8_t)sid;
    if (n > 0)
        memcpy(h + 9, p, n);
    in_len += 9 + n;
}

/* A header block on sid, cut into HEADERS (or a PUSH_PROMISE, whose block follows the
 * promised stream's ID) and CONTINUATION frames. */
static void header_block(uint8_t type, uint8_t flags, int32_t sid, const uint8_t *p, size_t n)
{
    size_t first = n < FRAME_MAX ? n : FRAME_MAX;

    frame(type, flags | (first == n ? F_END_HEADERS : 0), sid, p, first);
    for (size_t at = first; at < n; at += FRAME_MAX) {
        size_t k = n - at < FRAME_MAX ? n - at : FRAME_MAX;

        frame(T_CONTINUATION, at + k == n ? F_END_HEADERS : 0, sid, p + at, k);
    }
}

/* An HPACK integer with a prefix of bits, in p; its length. */
static size_t hpack_int(uint8_t *p, uint8_t first, int bits, size_t v)
{
    size_t max = (1u << bits) - 1, n = 0;

    if (v < max) {
        p[n++] = (uint8_t)(first | v);
        return n;
    }
    p[n++] = (uint8_t)(first | max);
    for (v -= max; v >= 128; v /= 128)
        p[n++] = (uint8_t)(v % 128 | 128);
    p[n++] = (uint8_t)v;
    return n;
}

/* A literal field without indexing, new name: the dynamic table stays empty. */
static size_t hpack_field(uint8_t *p, const char *name, const char *value, size_t vlen)
{
    size_t n = 0;

    p[n++] = 0x00;
    n += hpack_int(p + n, 0, 7, strlen(name));
    memcpy(p + n, name, strlen(name));
    n += strlen(name);
    n += hpack_int(p + n, 0, 7, vlen);
    memcpy(p + n, value, vlen);
    return n + vlen;
}

static const uint8_t status_200 = 0x88; /* static table entry 8 */

/* :status with any value: the name from the static table (entry 8), a literal value. */
static size_t hpack_status(uint8_t *p, const char *value)
{
    p[0] = 0x08;
    p[1] = 3;
    memcpy(p + 2, value, 3);
    return 5;
}

/* The client's output so far, parsed: GOAWAY and RST_STREAM recorded. */
static void drain_client(void)
{
    for (;;) {
        size_t n;

        flush(&cl);
        n = tg_buf_len(&cl.out);
        if (n == 0)
            break;
        ck_assert_uint_le(wire_len + n, sizeof(wire));
        memcpy(wire + wire_len, tg_buf_data(&cl.out), n);
        wire_len += n;
        tg_buf_consume(&cl.out, n);
    }
    if (wire_off == 0 && wire_len >= 24)
        wire_off = 24; /* the client's preface */
    while (wire_off > 0 && wire_len - wire_off >= 9) {
        const uint8_t *h = wire + wire_off;
        size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
        int32_t sid = (int32_t)((uint32_t)(h[5] & 0x7f) << 24 | (uint32_t)h[6] << 16 |
                                (uint32_t)h[7] << 8 | h[8]);
        const uint8_t *pl = h + 9;

        if (wire_len - wire_off < 9 + len)
            break;
        if (h[3] == T_GOAWAY && len >= 8) {
            goaway_sent = true;
            goaway_code =
                (uint32_t)pl[4] << 24 | (uint32_t)pl[5] << 16 | (uint32_t)pl[6] << 8 | pl[7];
        } else if (h[3] == T_RST_STREAM && len == 4) {
            rst_sent[slot(sid)] = true;
            rst_code[slot(sid)] =
                (uint32_t)pl[0] << 24 | (uint32_t)pl[1] << 16 | (uint32_t)pl[2] << 8 | pl[3];
        }
        wire_off += 9 + len;
    }
}

/* The hostile server's frames so far, to the client: tg_h2tun_recv's result. */
static int send_in(char *err)
{
    int rc = tg_h2tun_recv(cl.t, in, in_len, err);

    in_len = 0;
    drain_client();
    return rc;
}

/* The hostile server answers e: status, and reason (NULL: none); tg_h2tun_recv's result. */
static int answer(struct end *e, const char *status, const char *reason, uint8_t flags, char *err)
{
    uint8_t block[300];
    size_t n = hpack_status(block, status);

    if (reason != NULL)
        n += hpack_field(block + n, "tollgate-reason", reason, strlen(reason));
    header_block(T_HEADERS, flags, e->sid, block, n);
    return send_in(err);
}

/* The session ended for the peer's fault: GOAWAY with code went out, nothing more opens. */
static void assert_ended(uint32_t code)
{
    ck_assert(goaway_sent);
    ck_assert_uint_eq(goaway_code, code);
    ck_assert(tg_h2tun_done(cl.t));
    ck_assert(!tg_h2tun_can_open(cl.t));
}

/* A client session whose server is the test: its SETTINGS (and their ACK if ack), stream 1
 * opened. */
static struct end *hostile_start(bool ack)
{
    char err[TG_ERRLEN] = "";
    struct end *e;

    pair_free();
    pair_new();
    tg_h2tun_free(srv.t); /* the server is the test */
    srv.t = NULL;
    wire_len = wire_off = in_len = 0;
    goaway_sent = false;
    memset(rst_sent, 0, sizeof(rst_sent));
    frame(T_SETTINGS, 0, 0, NULL, 0);
    if (ack)
        frame(T_SETTINGS, F_ACK, 0, NULL, 0);
    ck_assert_msg(send_in(err) == 0, "%s", err);
    ck_assert_uint_eq(tg_h2tun_peer_max_streams(cl.t), UINT32_MAX); /* SETTINGS without a cap */
    e = open_stream("a:1");
    drain_client();
    ck_assert(!goaway_sent);
    return e;
}

static struct end *hostile_setup(void)
{
    return hostile_start(true);
}

/* Many small fields, each well under the cap, over it together: the stream is reset, never
 * answered, and the tunnel stays up. */
START_TEST(test_h2tun_client_attack_header_block_over_cap)
{
    static uint8_t block[32 * 1024];
    static char value[500];
    struct end *e = hostile_setup();
    char err[TG_ERRLEN] = "";
    size_t n = 0;

    memset(value, 'h', sizeof(value));
    block[n++] = status_200;
    while (n < TG_H2TUN_MAX_HEADERS + 2000)
        n += hpack_field(block + n, "x-h", value, sizeof(value));
    header_block(T_HEADERS, 0, e->sid, block, n);
    ck_assert_msg(send_in(err) == 0, "%s", err);
    ck_assert_int_eq(e->responses, 0);
    ck_assert(e->closed);
    ck_assert_uint_ne(e->code, 0);
    ck_assert(rst_sent[slot(e->sid)]);
    ck_assert(!goaway_sent);
    ck_assert(tg_h2tun_can_open(cl.t));
    ck_assert_uint_eq(tg_h2tun_streams(cl.t), 0);
}
END_TEST

/* DATA past the stream's window: the owner never holds more than the window it gave, and the
 * session ends with FLOW_CONTROL_ERROR; also before the server acknowledged the window (it
 * had it before the stream: nghttp2 alone would allow 65,535 bytes). */
START_TEST(test_h2tun_client_attack_data_past_window)
{
    static uint8_t body[WINDOW + 1];
    struct end *e = hostile_start(_i == 0);
    char err[TG_ERRLEN] = "";

    cl.hold = true;
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = pattern(i);
    header_block(T_HEADERS, 0, e->sid, &status_200, 1);
    frame(T_DATA, 0, e->sid, body, WINDOW); /* the whole window: fine */
    ck_assert_msg(send_in(err) == 0, "%s", err);
    ck_assert_uint_eq(e->got, WINDOW);
    frame(T_DATA, 0, e->sid, body + WINDOW, 1); /* one byte more */
    ck_assert_int_eq(send_in(err), TG_EINVAL);
    ck_assert_msg(strstr(err, "window") != NULL, "%s", err);
    ck_assert_uint_le(e->max_held, WINDOW);
    ck_assert_uint_eq(e->got, WINDOW);
    assert_ended(FLOW_CONTROL_ERROR);
}
END_TEST

/* An answer on a stream the client never opened (odd: its own kind; even: the server's,
 * never allowed): a protocol error, the session ends; the real stream hears nothing. */
START_TEST(test_h2tun_client_attack_response_on_unopened_stream)
{
    const int32_t sids[] = {3, 2, 0x7ffffff1};
    struct end *e = hostile_setup();
    char err[TG_ERRLEN] = "";

    header_block(T_HEADERS, 0, sids[_i], &status_200, 1);
    (void)send_in(err); /* either way: GOAWAY is what counts */
    assert_ended(PROTOCOL_ERROR);
    ck_assert_int_eq(e->responses, 0);
}
END_TEST

/* The client said ENABLE_PUSH 0: a PUSH_PROMISE breaks the protocol, and nothing of it reaches
 * the owner. */
START_TEST(test_h2tun_client_attack_push_promise)
{
    struct end *e = hostile_setup();
    uint8_t block[128] = {0, 0, 0, 2}; /* the promised stream, then its request */
    size_t n = 4;
    char err[TG_ERRLEN] = "";

    header_block(T_HEADERS, 0, e->sid, &status_200, 1);
    ck_assert_msg(send_in(err) == 0, "%s", err);
    block[n++] = 0x82; /* :method GET */
    block[n++] = 0x87; /* :scheme https */
    block[n++] = 0x84; /* :path / */
    n += hpack_field(block + n, ":authority", "a:1", 3);
    header_block(T_PUSH_PROMISE, 0, e->sid, block, n);
    (void)send_in(err);
    assert_ended(PROTOCOL_ERROR);
    ck_assert_int_eq(e->responses, 1);
    ck_assert_uint_eq(e->got, 0);
}
END_TEST

/* 1xx answers are not the answer: on_response comes once, with the final status. */
START_TEST(test_h2tun_client_interim_then_final)
{
    struct end *e = hostile_setup();
    char err[TG_ERRLEN] = "";

    ck_assert_msg(answer(e, "100", NULL, 0, err) == 0, "%s", err);
    ck_assert_int_eq(e->responses, 0);
    ck_assert_msg(answer(e, "403", "denied: by policy", F_END_STREAM, err) == 0, "%s", err);
    ck_assert_int_eq(e->responses, 1);
    ck_assert_int_eq(e->status, 403);
    ck_assert_str_eq(e->reason, "denied: by policy");
    ck_assert_int_eq(e->eofs, 1);
    ck_assert(!goaway_sent);
}
END_TEST

/* Endless 1xx answers (each allowed, none final) count against the header cap together:
 * the stream is reset, never answered, and the tunnel stays up. */
START_TEST(test_h2tun_client_attack_endless_interim)
{
    struct end *e = hostile_setup();
    char err[TG_ERRLEN] = "";
    int sent = 0;

    while (!e->closed && sent < 1000) {
        ck_assert_msg(answer(e, "103", NULL, 0, err) == 0, "%s", err);
        sent++;
    }
    ck_assert_msg(e->closed, "%d 1xx answers and the stream lives", sent);
    ck_assert_int_le(sent, TG_H2TUN_MAX_HEADERS / 32 + 1);
    ck_assert_int_eq(e->responses, 0);
    ck_assert(rst_sent[slot(e->sid)]);
    ck_assert(!goaway_sent);
    ck_assert(tg_h2tun_can_open(cl.t));
}
END_TEST

/* A reason is outside input that the owner logs and names to an app: one line of visible
 * ASCII, whatever bytes a header value may hold (tabs, bytes over 0x7f). */
START_TEST(test_h2tun_client_reason_one_line)
{
    struct end *e = hostile_setup();
    char err[TG_ERRLEN] = "";

    ck_assert_msg(answer(e, "503", "down:\tfor\x80now", F_END_STREAM, err) == 0, "%s", err);
    ck_assert_int_eq(e->status, 503);
    ck_assert_str_eq(e->reason, "down:?for?now");
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE(
        "h2tun_client", "h2tun_client", &tc, test_h2tun_client_connect_accept,
        test_h2tun_client_payload_over_windows, test_h2tun_client_half_close_each_way,
        test_h2tun_client_refusal_has_reason, test_h2tun_client_reset_each_way,
        test_h2tun_client_goaway_refuses_later_streams, test_h2tun_client_retires_with_goaway,
        test_h2tun_client_peer_max_streams, test_h2tun_client_open_refuses_bad_authority,
        test_h2tun_client_streams_counted, test_h2tun_client_attack_header_block_over_cap,
        test_h2tun_client_attack_push_promise, test_h2tun_client_interim_then_final,
        test_h2tun_client_reason_one_line, test_h2tun_client_attack_endless_interim,
        test_h2tun_client_window_widens_while_the_owner_keeps_up);

    tcase_add_loop_test(tc, test_h2tun_client_attack_data_past_window, 0, 2); /* ACK or not */
    tcase_add_loop_test(tc, test_h2tun_client_attack_response_on_unopened_stream, 0, 3);
    tcase_add_checked_fixture(tc, setup, teardown);
    return s;
}

/* Fuzzing of the frame path of a tunnel's client end (h2tun.h): a client session with a few
 * CONNECT streams open is fed the input as its server's bytes (from the server's SETTINGS
 * on), cut into pieces. The input's first byte is not fed: its low six bits k choose the
 * pieces' size (k * k bytes; 0: the whole input at once, so a piece may hold more than a
 * window), bit 6 makes the owner hold what it gets until the piece is done (a slow app)
 * rather than give the window back at once. The owner behaves as tunout.c: nothing of a
 * stream's payload before its 200 (TG_EAGAIN, resumed at the answer), a refused stream's app
 * leaves (its bytes dropped and given back, on_read resets the stream), a stream the server
 * never took (REFUSED) is opened again while the session allows.
 *
 * Whatever the bytes: no crash, no leak, a protocol error is one line, no callback for a
 * stream after its close, at most one answer (a final status, 200 to 999, its reason one
 * line of visible ASCII) and one END_STREAM per stream, never more payload held than the
 * widest window (acknowledged by the server or not), the session's count of streams the owner's,
 * and its output bounded. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/h2tun.h"

#define WINDOW 1024
#define WINDOW_MAX (4 * WINDOW) /* widened while the owner keeps up */
#define MAX_STREAMS 16
#define FIRST_STREAMS 4
#define MAX_OPENS 24 /* streams opened in one run at the most, retries included */

struct fstream {
    bool used;
    int32_t sid;
    bool answered, left, deferred;
    int eofs;
    size_t held;    /* payload got and not given back */
    size_t to_send; /* payload left for the server once answered, then END_STREAM */
};

static struct fstream streams[MAX_STREAMS];
static struct tg_h2tun *session;
static size_t opens, open_now;
static bool hold;

static struct fstream *check(void *stream)
{
    struct fstream *st = stream;

    if (st < streams || st >= streams + MAX_STREAMS || !st->used)
        abort(); /* a callback for a stream never opened, or after its close */
    return st;
}

static void open_stream(void)
{
    static const char *const authorities[] = {"10.0.0.1:80", "db.default.svc:5432", "[::1]:443"};

    for (int i = 0; i < MAX_STREAMS && opens < MAX_OPENS; i++) {
        struct fstream *st = &streams[i];
        int32_t sid;

        if (st->used)
            continue;
        *st = (struct fstream){.used = true};
        sid = tg_h2tun_open(session, authorities[opens % 3], st);
        if (sid < 0) {
            st->used = false;
            return;
        }
        st->sid = sid;
        st->to_send = (size_t)sid * 13 % 200;
        opens++;
        open_now++;
        return;
    }
}

/* What the owner gives back after a piece (or at once when it does not hold). */
static void give_back(struct fstream *st)
{
    if (st->held > 0)
        tg_h2tun_consumed(session, st->sid, st->held);
    st->held = 0;
}

static void on_response(void *arg, void *stream, int status, const char *reason)
{
    struct fstream *st = check(stream);

    (void)arg;
    if (st->answered || status < 200 || status > 999)
        abort();
    for (const char *p = reason; p != NULL && *p != '\0'; p++) {
        if (*p < 0x20 || *p > 0x7e || p - reason >= 255)
            abort(); /* tunout.c logs it and puts its code in an app's 503 */
    }
    st->answered = true;
    if (status != 200) {
        st->left = true; /* the app connection closes as refused */
        give_back(st);
    } else if (st->deferred) {
        st->deferred = false;
        tg_h2tun_resume(session, st->sid);
    }
}

static void on_data(void *arg, void *stream, const uint8_t *p, size_t n)
{
    struct fstream *st = check(stream);

    (void)arg;
    (void)p;
    st->held += n;
    if (st->held > WINDOW_MAX)
        abort(); /* the widest window is the owner's room */
    if (!hold || st->left)
        give_back(st);
}

static void on_eof(void *arg, void *stream)
{
    (void)arg;
    if (++check(stream)->eofs > 1)
        abort();
}

static void on_close(void *arg, void *stream, uint32_t code)
{
    struct fstream *st = check(stream);
    bool retry = code == TG_H2TUN_REFUSED && !st->answered;

    (void)arg;
    give_back(st); /* the owner drops what it held, and says so */
    st->used = false;
    open_now--;
    if (retry && tg_h2tun_can_open(session))
        open_stream(); /* as tunout.c's retry, from inside the callback */
}

static ssize_t on_read(void *arg, void *stream, uint8_t *dst, size_t cap, bool *eof)
{
    struct fstream *st = check(stream);
    size_t n = st->to_send < cap ? st->to_send : cap;

    (void)arg;
    if (st->left)
        return TG_EINVAL; /* resets the stream */
    if (!st->answered) {
        st->deferred = true;
        return TG_EAGAIN;
    }
    memset(dst, 'c', n);
    st->to_send -= n;
    *eof = st->to_send == 0;
    return (ssize_t)n;
}

static const struct tg_h2tun_ops ops = {.on_response = on_response,
                                        .on_data = on_data,
                                        .on_eof = on_eof,
                                        .on_close = on_close,
                                        .on_read = on_read};

/* Sends what the session has, as a socket would take it: bounded rounds. */
static void drain(struct tg_buf *out, struct tg_pool *pool)
{
    for (int round = 0; round < 8; round++) {
        if (tg_h2tun_send(session, out, pool) < 0)
            abort();
        tg_buf_consume(out, tg_buf_len(out));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cut = size > 0 && data[0] % 64 != 0 ? (size_t)(data[0] % 64) * (data[0] % 64) : size,
           at = 1;
    struct tg_buf out = {0};
    struct tg_pool pool;
    char err[TG_ERRLEN] = "";

    memset(streams, 0, sizeof(streams));
    opens = open_now = 0;
    hold = size > 0 && (data[0] & 0x40);
    tg_pool_init(&pool, 16384, 2);
    if (tg_h2tun_new_client(&ops, WINDOW, WINDOW_MAX, MAX_STREAMS, &session) < 0)
        abort();
    for (int i = 0; i < FIRST_STREAMS; i++)
        open_stream();
    if (open_now != FIRST_STREAMS)
        abort();
    drain(&out, &pool); /* the preface, SETTINGS and the CONNECTs are out */
    while (at < size) {
        size_t n = size - at < cut ? size - at : cut;
        int rc = tg_h2tun_recv(session, data + at, n, err);

        at += n;
        for (int i = 0; i < MAX_STREAMS; i++) {
            if (streams[i].used)
                give_back(&streams[i]); /* the app took them */
        }
        drain(&out, &pool);
        if (tg_h2tun_streams(session) != open_now)
            abort();
        if (rc < 0) {
            fuzz_check_err(err);
            break;
        }
    }
    (void)tg_h2tun_done(session);
    (void)tg_h2tun_can_open(session);
    (void)tg_h2tun_peer_max_streams(session);
    tg_buf_drop(&out, &pool);
    tg_pool_cleanup(&pool);
    tg_h2tun_free(session); /* the owner's streams go with it, unannounced (h2tun.h) */
    session = NULL;
    return 0;
}

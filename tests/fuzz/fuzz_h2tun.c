/* Fuzzing of the frame path of a tunnel's server end (h2tun.h): the input is what a tunnel
 * peer sends after the HTTP/2 client preface (added here, so every input reaches the frame
 * parser), cut into pieces at points the input's first byte chooses. The owner accepts
 * some streams at once, refuses some, leaves some unanswered, gives their payload's window
 * back at once and answers with a few bytes and END_STREAM, as tunnel.c does. Whatever the
 * bytes: no crash, no leak, a protocol error is one line, no callback for a stream after its
 * close, and the session's output stays bounded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/h2tun.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define MAX_STREAMS 64

struct fstream {
    bool used;
    int32_t sid;
    bool pending;   /* to be accepted after this piece of input, as a connect finishes */
    size_t to_send; /* bytes of answer left */
};

static struct fstream streams[MAX_STREAMS];
static struct tg_h2tun *session;

static struct fstream *check(void *stream)
{
    struct fstream *st = stream;

    if (st < streams || st >= streams + MAX_STREAMS || !st->used)
        abort(); /* a callback for a stream never opened, or after its close */
    return st;
}

static void *on_open(void *arg, int32_t sid, const char *authority)
{
    (void)arg;
    if (strlen(authority) > 255)
        abort();
    if (sid % 3 == 0) {
        tg_h2tun_refuse(session, sid, 403, "denied: fuzz\nsecond line");
        return NULL;
    }
    for (int i = 0; i < MAX_STREAMS; i++) {
        if (streams[i].used)
            continue;
        streams[i] = (struct fstream){
            .used = true, .sid = sid, .pending = sid % 3 == 1, .to_send = (size_t)sid * 7 % 100};
        return &streams[i];
    }
    tg_h2tun_refuse(session, sid, 503, "out of streams");
    return NULL;
}

static void on_data(void *arg, void *stream, const uint8_t *p, size_t n)
{
    struct fstream *st = check(stream);

    (void)arg;
    (void)p;
    tg_h2tun_consumed(session, st->sid, n);
}

static void on_eof(void *arg, void *stream)
{
    (void)arg;
    check(stream);
}

static void on_close(void *arg, void *stream, uint32_t code)
{
    (void)arg;
    (void)code;
    check(stream)->used = false;
}

static ssize_t on_read(void *arg, void *stream, uint8_t *dst, size_t cap, bool *eof)
{
    struct fstream *st = check(stream);
    size_t n = st->to_send < cap ? st->to_send : cap;

    (void)arg;
    memset(dst, 'x', n);
    st->to_send -= n;
    *eof = st->to_send == 0;
    return (ssize_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct tg_h2tun_ops ops = {.on_open = on_open,
                                     .on_data = on_data,
                                     .on_eof = on_eof,
                                     .on_close = on_close,
                                     .on_read = on_read};
    struct tg_pool pool;
    struct tg_buf out = {0};
    char err[TG_ERRLEN] = "";
    size_t cut = size > 0 ? data[0] % 64 + 1 : 1, at = 0;
    bool failed = false;

    memset(streams, 0, sizeof(streams));
    tg_pool_init(&pool, 16384, 2);
    if (tg_h2tun_new(&ops, 65536, 4 * 65536, 100, &session) < 0)
        abort();
    if (tg_h2tun_recv(session, (const uint8_t *)PREFACE, sizeof(PREFACE) - 1, err) < 0)
        abort();
    while (at < size && !failed) {
        size_t n = size - at < cut ? size - at : cut;

        if (tg_h2tun_recv(session, data + at, n, err) < 0) {
            fuzz_check_err(err);
            failed = true;
        }
        at += n;
        for (int i = 0; i < MAX_STREAMS; i++) {
            if (streams[i].used && streams[i].pending) {
                streams[i].pending = false;
                if (tg_h2tun_accept(session, streams[i].sid) < 0)
                    abort(); /* open and unanswered: it must be answerable */
            }
        }
        /* the output drains as a socket would take it: bounded rounds */
        for (int round = 0; round < 8; round++) {
            if (tg_h2tun_send(session, &out, &pool) < 0)
                abort();
            tg_buf_consume(&out, tg_buf_len(&out));
        }
    }
    (void)tg_h2tun_done(session);
    tg_h2tun_free(session);
    session = NULL;
    tg_buf_drop(&out, &pool);
    tg_pool_cleanup(&pool);
    return 0;
}

/* The admin endpoint on a real loop on 127.0.0.1, port 0. Clients are plain blocking
 * sockets on a helper thread (each operation bounded by SO_RCVTIMEO/SO_SNDTIMEO); the test
 * thread runs the loop. The client thread only records what it saw; assertions run on the
 * test thread after the join. A guard timer stops the admin if a test runs too long. */
#include <check.h>
#include "check_main.h"
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "tollgate/admin.h"

#define GUARD_MS 8000
#define CLIENT_TIMEOUT_S 3
#define MAX_RESP 8

struct fix {
    uv_loop_t loop;
    uv_async_t done;     /* the client thread has finished */
    uv_async_t stop_now; /* the client thread asks for tg_admin_stop() */
    uv_timer_t guard;
    struct tg_admin *admin;
    struct tg_admin_ops ops;
    int port;
    uint64_t timeout_ms; /* 0: the default */
    void (*script)(struct fix *f);
    bool timed_out;
    int case_i;
    const char *path; /* run_get's */

    /* ops state, loop thread only */
    bool ready;
    const char *stats_body; /* NULL: the callback returns NULL */
    const char *config_body;
    bool stop_in_drain;
    int ready_calls, stats_calls, config_calls, drain_calls;

    /* what the client thread saw */
    char *resp[MAX_RESP]; /* whole responses, up to EOF */
    int end[MAX_RESP];    /* how each ended: 0 EOF, else errno (EAGAIN: timed out) */
    double secs[MAX_RESP];
    int n_resp;
    int connect_errno;
};

static struct fix F;

/* ---- client side (helper thread) ---- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* From 127.0.0.<src> (0: the kernel's choice, 127.0.0.1) to 127.0.0.1:port. */
static int dial_from(int src, int port)
{
    struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_S};
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in from = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    from.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)src);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if ((src != 0 && bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0) ||
        connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        F.connect_errno = errno;
        close(fd);
        return -1;
    }
    return fd;
}

static int dial(int port)
{
    return dial_from(0, port);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Reads to EOF (or error) and records the bytes, how it ended and how long it took. */
static void record(int fd)
{
    size_t len = 0, cap = 1024;
    char *buf = malloc(cap);
    double t0 = now_s();
    int end = 0;

    for (;;) {
        ssize_t r;

        if (len + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);

            ck_assert_ptr_nonnull(grown);
            buf = grown;
        }
        r = recv(fd, buf + len, cap - len - 1, 0);
        if (r > 0) {
            len += (size_t)r;
            continue;
        }
        end = r == 0 ? 0 : errno;
        break;
    }
    buf[len] = '\0';
    if (F.n_resp < MAX_RESP) {
        F.resp[F.n_resp] = buf;
        F.end[F.n_resp] = end == EWOULDBLOCK ? EAGAIN : end;
        F.secs[F.n_resp] = now_s() - t0;
        F.n_resp++;
    } else {
        free(buf);
    }
}

/* One request on its own connection; half_close sends our FIN after the bytes. */
static void exchange_n(const char *req, size_t len, bool half_close)
{
    int fd = dial(F.port);

    if (fd < 0) {
        if (F.n_resp < MAX_RESP) {
            F.resp[F.n_resp] = strdup("");
            F.end[F.n_resp++] = -1;
        }
        return;
    }
    send_all(fd, req, len);
    if (half_close)
        shutdown(fd, SHUT_WR);
    record(fd);
    close(fd);
}

static void exchange(const char *req)
{
    exchange_n(req, strlen(req), false);
}

/* ---- loop side ---- */

static bool on_ready(void *arg)
{
    struct fix *f = arg;

    f->ready_calls++;
    return f->ready;
}

/* A copy of body (NULL: a failure) and its length in *len: what a view callback returns. */
static char *view_body(const char *body, size_t *len)
{
    if (body == NULL)
        return NULL;
    *len = strlen(body);
    return strdup(body);
}

static char *on_stats(void *arg, size_t *len)
{
    struct fix *f = arg;

    f->stats_calls++;
    return view_body(f->stats_body, len);
}

static char *on_config_dump(void *arg, size_t *len)
{
    struct fix *f = arg;

    f->config_calls++;
    return view_body(f->config_body, len);
}

static void on_drain(void *arg)
{
    struct fix *f = arg;

    f->drain_calls++;
    if (f->stop_in_drain) {
        tg_admin_stop(f->admin);
        f->admin = NULL;
    }
}

static void on_done(uv_async_t *h)
{
    struct fix *f = h->data;

    tg_admin_stop(f->admin);
    f->admin = NULL;
    uv_close((uv_handle_t *)&f->done, NULL);
    uv_close((uv_handle_t *)&f->stop_now, NULL);
    uv_close((uv_handle_t *)&f->guard, NULL);
}

static void on_stop_now(uv_async_t *h)
{
    struct fix *f = h->data;

    tg_admin_stop(f->admin);
    f->admin = NULL;
}

static void on_guard(uv_timer_t *t)
{
    struct fix *f = t->data;

    /* the client's sockets fail fast once the admin is gone; then on_done ends the loop */
    f->timed_out = true;
    tg_admin_stop(f->admin);
    f->admin = NULL;
}

static void *client_main(void *arg)
{
    struct fix *f = arg;

    f->script(f);
    uv_async_send(&f->done);
    return NULL;
}

static void fix_init(void)
{
    memset(&F, 0, sizeof(F));
    F.ready = true;
    F.stats_body = "tollgate_generation 7\n";
    F.config_body = "{\"listeners\":[]}";
    F.ops = (struct tg_admin_ops){
        .arg = &F,
        .ready = on_ready,
        .stats = on_stats,
        .config_dump = on_config_dump,
        .drain = on_drain,
    };
}

static void loopback(struct tg_addr *addr, int port)
{
    memset(addr, 0, sizeof(*addr));
    ck_assert_int_eq(uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&addr->ss), 0);
    addr->len = sizeof(struct sockaddr_in);
    snprintf(addr->text, sizeof(addr->text), "127.0.0.1:%d", port);
}

/* Starts the admin, runs script on a client thread, runs the loop until everything has
 * closed, then checks that nothing is left on the loop. */
static void run(void (*script)(struct fix *f))
{
    struct tg_addr addr;
    char err[TG_ERRLEN] = "";
    pthread_t th;

    loopback(&addr, 0);
    F.script = script;
    ck_assert_int_eq(uv_loop_init(&F.loop), 0);
    ck_assert_msg(tg_admin_start(&F.loop, &addr, &F.ops, &F.admin, err) == 0, "%s", err);
    F.port = tg_admin_port(F.admin);
    ck_assert_int_gt(F.port, 0);
    if (F.timeout_ms != 0)
        tg_admin_set_timeout(F.admin, F.timeout_ms);
    ck_assert_int_eq(uv_async_init(&F.loop, &F.done, on_done), 0);
    ck_assert_int_eq(uv_async_init(&F.loop, &F.stop_now, on_stop_now), 0);
    ck_assert_int_eq(uv_timer_init(&F.loop, &F.guard), 0);
    F.done.data = F.stop_now.data = F.guard.data = &F;
    ck_assert_int_eq(uv_timer_start(&F.guard, on_guard, GUARD_MS, 0), 0);
    ck_assert_int_eq(pthread_create(&th, NULL, client_main, &F), 0);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    ck_assert_msg(!F.timed_out, "test timed out");
    ck_assert_int_eq(uv_loop_close(&F.loop), 0);
}

static void fix_cleanup(void)
{
    int i;

    for (i = 0; i < F.n_resp; i++)
        free(F.resp[i]);
}

static int status_of(const char *resp)
{
    int status = -1;

    if (sscanf(resp, "HTTP/1.1 %d ", &status) != 1)
        return -1;
    return status;
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");

    return p == NULL ? NULL : p + 4;
}

static void assert_response(int i, int status, const char *type, const char *body)
{
    char want[128];

    ck_assert_int_lt(i, F.n_resp);
    ck_assert_msg(status_of(F.resp[i]) == status, "want %d, got [%s]", status, F.resp[i]);
    ck_assert_int_eq(F.end[i], 0);
    ck_assert_ptr_nonnull(strstr(F.resp[i], "\r\nConnection: close\r\n"));
    if (type != NULL) {
        snprintf(want, sizeof(want), "\r\nContent-Type: %s\r\n", type);
        ck_assert_msg(strstr(F.resp[i], want) != NULL, "no [%s] in [%s]", want, F.resp[i]);
    }
    if (body != NULL) {
        snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n", strlen(body));
        ck_assert_msg(strstr(F.resp[i], want) != NULL, "no [%s] in [%s]", want, F.resp[i]);
        ck_assert_str_eq(body_of(F.resp[i]), body);
    }
}

/* ---- tests ---- */

static void script_get(struct fix *f)
{
    char req[128];

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n\r\n", f->path);
    exchange(req);
}

/* One GET of path, on a fresh server. */
static void run_get(const char *path)
{
    F.path = path;
    run(script_get);
}

static void script_live(struct fix *f)
{
    (void)f;
    exchange("GET /live HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n");
    exchange("GET /live HTTP/1.0\r\n\r\n");
    exchange("GET /live?verbose=1&x HTTP/1.1\r\nHost: a\r\n\r\n");
    exchange("GET /live HTTP/1.1\nHost: a\n\n"); /* bare LF ends lines too */
    exchange("HEAD /live HTTP/1.1\r\n\r\n");
}

START_TEST(test_admin_live)
{
    int i;

    run(script_live);
    ck_assert_int_eq(F.n_resp, 5);
    for (i = 0; i < 4; i++)
        assert_response(i, 200, "text/plain; charset=utf-8", "live\n");
    assert_response(4, 200, "text/plain; charset=utf-8", NULL);
    ck_assert_ptr_nonnull(strstr(F.resp[4], "\r\nContent-Length: 5\r\n"));
    ck_assert_str_eq(body_of(F.resp[4]), "");
}
END_TEST

START_TEST(test_admin_ready_true)
{
    run_get("/ready");
    assert_response(0, 200, "text/plain; charset=utf-8", "ready\n");
    ck_assert_int_eq(F.ready_calls, 1);
}
END_TEST

START_TEST(test_admin_ready_false)
{
    F.ready = false;
    run_get("/ready");
    assert_response(0, 503, "text/plain; charset=utf-8", "not ready\n");
    ck_assert_int_eq(F.ready_calls, 1);
}
END_TEST

START_TEST(test_admin_ready_without_callback_is_ready)
{
    F.ops.ready = NULL;
    run_get("/ready");
    assert_response(0, 200, NULL, "ready\n");
}
END_TEST

/* The views a callback renders: 200, its content type, its body, the callback called once. */
static const struct {
    const char *path, *type;
} views[] = {
    {"/stats", "text/plain; version=0.0.4; charset=utf-8"},
    {"/config_dump", "application/json"},
};

START_TEST(test_admin_view_body_from_callback)
{
    bool stats = _i == 0;

    run_get(views[_i].path);
    assert_response(0, 200, views[_i].type, stats ? F.stats_body : F.config_body);
    ck_assert_int_eq(stats ? F.stats_calls : F.config_calls, 1);
}
END_TEST

START_TEST(test_admin_stats_null_body_is_500)
{
    F.stats_body = NULL;
    run_get("/stats");
    assert_response(0, 500, NULL, NULL);
    ck_assert_int_eq(F.stats_calls, 1);
}
END_TEST

START_TEST(test_admin_stats_without_callback_is_501)
{
    F.ops.stats = NULL;
    run_get("/stats");
    assert_response(0, 501, NULL, NULL);
}
END_TEST

static void script_drain(struct fix *f)
{
    (void)f;
    exchange("GET /drain HTTP/1.1\r\n\r\n");
    exchange("POST /drain HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
}

START_TEST(test_admin_post_drain_calls_callback)
{
    run(script_drain);
    assert_response(0, 405, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(F.resp[0], "\r\nAllow: POST\r\n"));
    assert_response(1, 200, "text/plain; charset=utf-8", "draining\n");
    ck_assert_int_eq(F.drain_calls, 1);
}
END_TEST

START_TEST(test_admin_drain_without_callback_is_501)
{
    F.ops.drain = NULL;
    run(script_drain);
    assert_response(1, 501, NULL, NULL);
}
END_TEST

static void script_drain_body(struct fix *f)
{
    static const char req[] = "POST /drain HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world";

    (void)f;
    exchange(req);
}

START_TEST(test_admin_post_body_is_ignored)
{
    run(script_drain_body);
    assert_response(0, 200, NULL, "draining\n");
    ck_assert_int_eq(F.drain_calls, 1);
}
END_TEST

START_TEST(test_admin_stop_from_callback)
{
    F.stop_in_drain = true;
    run(script_drain);
    ck_assert_int_eq(F.drain_calls, 1);
    ck_assert_int_eq(F.n_resp, 2);
    ck_assert_str_eq(F.resp[1], ""); /* closed without an answer */
}
END_TEST

/* Requests and the status they get. */
#define R(s) s, sizeof(s) - 1
static const struct {
    const char *req;
    size_t len;
    bool half_close; /* send our FIN after the bytes */
    int status;
} requests[] = {
    {R("GET /nope HTTP/1.1\r\n\r\n"), false, 404},
    {R("GET / HTTP/1.1\r\n\r\n"), false, 404},
    {R("GET /live/ HTTP/1.1\r\n\r\n"), false, 404},
    {R("GET /LIVE HTTP/1.1\r\n\r\n"), false, 404},
    {R("POST /live HTTP/1.1\r\n\r\n"), false, 405},
    {R("get /live HTTP/1.1\r\n\r\n"), false, 405},
    {R("DELETE /stats HTTP/1.1\r\n\r\n"), false, 405},
    {R("GET /live HTTP/1.1\r\nX-Empty:\r\nX-Tab:\ta\tb\r\n\r\n"), false, 200},
    {R("GET /live HTTP/1.1\r\nX-Obs: caf\xc3\xa9\r\n\r\n"), false, 200},
    {R("\x00\x01\x02 garbage\r\n\r\n"), false, 400},
    {R("garbage\r\n\r\n"), false, 400},
    {R("\r\n\r\n"), false, 400},
    {R("GET\r\n\r\n"), false, 400},
    {R("GET /live\r\n\r\n"), false, 400},
    {R("GET /live HTTP/2.0\r\n\r\n"), false, 400},
    {R("GET /live HTTP/1.1x\r\n\r\n"), false, 400},
    {R("GET /live http/1.1\r\n\r\n"), false, 400},
    {R("GET live HTTP/1.1\r\n\r\n"), false, 400},
    {R("GET http://a/live HTTP/1.1\r\n\r\n"), false, 400},
    {R("GET  /live HTTP/1.1\r\n\r\n"), false, 400},
    {R("GET /live  HTTP/1.1\r\n\r\n"), false, 400},
    {R("GET /live HTTP/1.1 \r\n\r\n"), false, 400},
    {R("GET\t/live HTTP/1.1\r\n\r\n"), false, 400},
    {R("GE(T /live HTTP/1.1\r\n\r\n"), false, 400},
    {R("GET /li\x00ve HTTP/1.1\r\n\r\n"), false, 400},
    {R("GET /li\rve HTTP/1.1\r\n\r\n"), false, 400},
    {R("GET /live HTTP/1.1\r\nHost : a\r\n\r\n"), false, 400},
    {R("GET /live HTTP/1.1\r\n folded: a\r\n\r\n"), false, 400},
    {R("GET /live HTTP/1.1\r\nNoColon\r\n\r\n"), false, 400},
    {R("GET /live HTTP/1.1\r\n: empty-name\r\n\r\n"), false, 400},
    {R("GET /live HTTP/1.1\r\nX: a\rb\r\n\r\n"), false, 400},
    {R("GET /live HTTP/1.1\r\nX: \x01\r\n\r\n"), false, 400},
    {R("GET /live HTTP/1.1\r\nX: a\0b\r\n\r\n"), false, 400},
    {R("GET /live HTTP/1.1\r\n"), true, 400}, /* the head never ends */
    {R("G"), true, 400},
};

static void script_request_table(struct fix *f)
{
    exchange_n(requests[f->case_i].req, requests[f->case_i].len, requests[f->case_i].half_close);
}

START_TEST(test_admin_request_table)
{
    F.case_i = _i;
    run(script_request_table);
    ck_assert_int_eq(F.n_resp, 1);
    ck_assert_msg(status_of(F.resp[0]) == requests[_i].status, "case %d: want %d, got [%s]", _i,
                  requests[_i].status, F.resp[0]);
    ck_assert_int_eq(F.end[0], 0);
    if (requests[_i].status == 405)
        ck_assert_ptr_nonnull(strstr(F.resp[0], "\r\nAllow: "));
    ck_assert_int_eq(F.drain_calls, 0);
}
END_TEST

/* Random bytes, a few CRLFs mixed in so some heads end: every answer is well formed. */
static void script_random(struct fix *f)
{
    unsigned seed = 12345;
    char req[600];
    int i;
    size_t j, n;

    (void)f;
    for (i = 0; i < MAX_RESP; i++) {
        n = 1 + (size_t)rand_r(&seed) % sizeof(req);
        for (j = 0; j < n; j++)
            req[j] = rand_r(&seed) % 8 == 0 ? "\r\n"[rand_r(&seed) % 2] : (char)rand_r(&seed);
        if (i % 2 == 0)
            memcpy(req, "GET /live HTTP/1.1\r\n", n < 20 ? n : 20);
        exchange_n(req, n, true);
    }
}

START_TEST(test_admin_random_bytes)
{
    int i, st;

    F.timeout_ms = 1000;
    run(script_random);
    ck_assert_int_eq(F.n_resp, MAX_RESP);
    for (i = 0; i < MAX_RESP; i++) {
        st = status_of(F.resp[i]);
        ck_assert_msg(st == 400 || st == 200 || st == 404 || st == 405, "%d: [%s]", i, F.resp[i]);
        ck_assert_ptr_nonnull(body_of(F.resp[i]));
    }
}
END_TEST

/* A complete head of exactly n bytes: "GET /live HTTP/1.1\r\nX: aaaa...\r\n\r\n". */
static char *head_of_size(size_t n)
{
    static const char start[] = "GET /live HTTP/1.1\r\nX: ";
    char *p = malloc(n + 1);

    memcpy(p, start, sizeof(start) - 1);
    memset(p + sizeof(start) - 1, 'a', n - (sizeof(start) - 1) - 4);
    memcpy(p + n - 4, "\r\n\r\n", 5);
    return p;
}

static void script_oversize(struct fix *f)
{
    char *big = malloc(20000);

    (void)f;
    /* no end of head in sight */
    memcpy(big, "GET /live HTTP/1.1\r\nX: ", 23);
    memset(big + 23, 'a', 20000 - 23);
    exchange_n(big, 20000, false);
    free(big);
    big = head_of_size(TG_ADMIN_HEAD_MAX);
    exchange(big);
    free(big);
    big = head_of_size(TG_ADMIN_HEAD_MAX + 1);
    exchange(big);
    free(big);
}

START_TEST(test_admin_oversize_head_is_431)
{
    run(script_oversize);
    ck_assert_int_eq(F.n_resp, 3);
    assert_response(0, 431, "text/plain; charset=utf-8", NULL);
    assert_response(1, 200, NULL, "live\n"); /* exactly the limit */
    assert_response(2, 431, NULL, NULL);     /* one byte over */
}
END_TEST

static void script_early_close(struct fix *f)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    int fd;

    /* connect and leave at once */
    if ((fd = dial(f->port)) >= 0)
        close(fd);
    /* half a head, then gone */
    if ((fd = dial(f->port)) >= 0) {
        send_all(fd, "GET /li", 7);
        close(fd);
    }
    /* a whole request, gone before the answer */
    if ((fd = dial(f->port)) >= 0) {
        send_all(fd, "GET /stats HTTP/1.1\r\n\r\n", 23);
        close(fd);
    }
    /* reset instead of FIN */
    if ((fd = dial(f->port)) >= 0) {
        send_all(fd, "GET /live HTTP/1.1\r\n", 20);
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
    }
    if ((fd = dial(f->port)) >= 0) {
        send_all(fd, "GET /config_dump HTTP/1.1\r\n\r\n", 29);
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
    }
    /* the endpoint still answers */
    exchange("GET /live HTTP/1.1\r\n\r\n");
}

START_TEST(test_admin_client_closes_early)
{
    run(script_early_close);
    ck_assert_int_eq(F.n_resp, 1);
    assert_response(0, 200, NULL, "live\n");
}
END_TEST

static void script_slow(struct fix *f)
{
    int fd = dial(f->port);

    if (fd < 0)
        return;
    send_all(fd, "GET /li", 7);
    record(fd);
    close(fd);
    /* a new connection gets its own deadline */
    exchange("GET /live HTTP/1.1\r\n\r\n");
}

START_TEST(test_admin_slow_client_gets_408)
{
    F.timeout_ms = 200;
    run(script_slow);
    ck_assert_int_eq(F.n_resp, 2);
    assert_response(0, 408, "text/plain; charset=utf-8", NULL);
    ck_assert_msg(F.secs[0] > 0.1 && F.secs[0] < 2.0, "closed after %.3f s", F.secs[0]);
    assert_response(1, 200, NULL, "live\n");
}
END_TEST

static void script_stop_open(struct fix *f)
{
    int fds[3], i;

    for (i = 0; i < 3; i++) {
        fds[i] = dial(f->port);
        if (fds[i] >= 0 && i > 0)
            send_all(fds[i], "GET /live HTTP/1.1\r\n", 20);
    }
    /* answered, so the three before it have been accepted too */
    exchange("GET /live HTTP/1.1\r\n\r\n");
    uv_async_send(&f->stop_now);
    for (i = 0; i < 3; i++) {
        if (fds[i] < 0)
            continue;
        record(fds[i]);
        close(fds[i]);
    }
    i = dial(f->port); /* the listener is gone too */
    if (i >= 0)
        close(i);
}

START_TEST(test_admin_stop_closes_open_connections)
{
    int i;

    run(script_stop_open);
    ck_assert_int_eq(F.n_resp, 4);
    assert_response(0, 200, NULL, "live\n");
    for (i = 1; i < 4; i++) {
        ck_assert_str_eq(F.resp[i], "");
        ck_assert_msg(F.end[i] == 0 || F.end[i] == ECONNRESET, "end %d", F.end[i]);
        ck_assert_msg(F.secs[i] < 2.0, "closed after %.3f s", F.secs[i]);
    }
    ck_assert_int_eq(F.connect_errno, ECONNREFUSED);
}
END_TEST

/* Whether fd has been closed by the server (EOF or reset) within ms. */
static bool closed_within(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    char c;
    ssize_t r;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    r = recv(fd, &c, 1, 0);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* GET /live on fd, its answer recorded. */
static void get_live(int fd)
{
    send_all(fd, "GET /live HTTP/1.1\r\n\r\n", 22);
    record(fd);
}

/* case_i, as the script left it: bit 0, 1 and 2 for a, b and c closed. Only a must be. */
static void assert_only_first_closed(const char *a, const char *b, const char *c)
{
    ck_assert_msg(F.case_i == 1, "closed: %s %s, %s %s, %s %s", a, F.case_i & 1 ? "yes" : "NO", b,
                  F.case_i & 2 ? "YES" : "no", c, F.case_i & 4 ? "YES" : "no");
}

/* Over the per-address cap, the oldest connection of that address gives way to the new
 * one; the others, and other addresses, are left alone. */
static void script_peer_cap(struct fix *f)
{
    int idle[TG_ADMINSRV_MAX_PER_PEER], other, i;

    other = dial_from(2, f->port);
    for (i = 0; i < TG_ADMINSRV_MAX_PER_PEER; i++) {
        idle[i] = dial_from(3, f->port);
        usleep(2000); /* accepted in this order */
    }
    exchange_n("GET /live HTTP/1.1\r\n\r\n", 22, false); /* 127.0.0.1: inside its own cap */
    f->case_i = 0;
    /* one more from 127.0.0.3: served, and idle[0] is closed for it */
    {
        int fd = dial_from(3, f->port);

        get_live(fd);
        close(fd);
    }
    f->case_i |= closed_within(idle[0], 1000) ? 1 : 0;
    for (i = 1; i < TG_ADMINSRV_MAX_PER_PEER; i++)
        f->case_i |= closed_within(idle[i], 50) ? 2 : 0;
    f->case_i |= closed_within(other, 50) ? 4 : 0;
    if (idle[1] >= 0)
        get_live(idle[1]);
    for (i = 0; i < TG_ADMINSRV_MAX_PER_PEER; i++)
        close(idle[i]);
    close(other);
}

START_TEST(test_admin_per_peer_cap_oldest_gives_way)
{
    run(script_peer_cap);
    ck_assert_int_eq(F.n_resp, 3);
    assert_response(0, 200, NULL, "live\n");
    assert_response(1, 200, NULL, "live\n");
    assert_response(2, 200, NULL, "live\n");
    assert_only_first_closed("oldest", "others of its address", "another");
}
END_TEST

/* Over the total cap, the oldest connection of the address holding the most gives way: a
 * lone client (a probe) is never the one pushed out while anyone holds two. */
static void script_total_cap(struct fix *f)
{
    enum { PEERS = TG_ADMINSRV_MAX_CONNS / TG_ADMINSRV_MAX_PER_PEER };
    int idle[PEERS][TG_ADMINSRV_MAX_PER_PEER], lone, i, j, fd;

    lone = dial_from(100, f->port); /* the oldest of all, alone on its address */
    usleep(2000);
    for (i = 0; i < PEERS; i++) {
        for (j = 0; j < TG_ADMINSRV_MAX_PER_PEER - (i == 0); j++) {
            idle[i][j] = dial_from(10 + i, f->port);
            usleep(1000);
        }
    }
    idle[0][TG_ADMINSRV_MAX_PER_PEER - 1] = -1; /* 127.0.0.10 holds one less */
    /* all slots taken; a new client is served... */
    fd = dial_from(200, f->port);
    get_live(fd);
    close(fd);
    /* ...for it the oldest of 127.0.0.11 gave way, not the lone one nor 127.0.0.10's */
    f->case_i = 0;
    f->case_i |= closed_within(idle[1][0], 1000) ? 1 : 0;
    f->case_i |= closed_within(lone, 50) ? 2 : 0;
    f->case_i |= closed_within(idle[0][0], 50) ? 4 : 0;
    if (lone >= 0) {
        get_live(lone);
        close(lone);
    }
    for (i = 0; i < PEERS; i++)
        for (j = 0; j < TG_ADMINSRV_MAX_PER_PEER; j++)
            if (idle[i][j] >= 0)
                close(idle[i][j]);
}

START_TEST(test_admin_total_cap_busiest_address_gives_way)
{
    run(script_total_cap);
    ck_assert_int_eq(F.n_resp, 2);
    assert_response(0, 200, NULL, "live\n");
    assert_response(1, 200, NULL, "live\n");
    assert_only_first_closed("busiest's oldest", "the lone one", "127.0.0.10");
}
END_TEST

/* The local-only paths refuse a browser's requests even from loopback, without calling
 * their callbacks; the others answer them. */
static void script_browser(struct fix *f)
{
    (void)f;
    exchange("POST /drain HTTP/1.1\r\nOrigin: http://evil.example\r\n\r\n");
    exchange("POST /drain HTTP/1.1\r\nContent-Type: text/plain\r\n\r\n");
    exchange("GET /config_dump HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    exchange("HEAD /config_dump HTTP/1.1\r\nSec-Fetch-Site: cross-site\r\n\r\n");
    exchange("GET /stats HTTP/1.1\r\nOrigin: http://evil.example\r\n\r\n");
    exchange("GET /config_dump HTTP/1.1\r\nHost: localhost:15000\r\n\r\n");
}

START_TEST(test_admin_local_paths_refuse_browsers)
{
    run(script_browser);
    ck_assert_int_eq(F.n_resp, 6);
    assert_response(0, 403, NULL,
                    "forbidden: an Origin header: a browser's request, refused here\n");
    assert_response(1, 403, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(F.resp[1], "form content type"));
    assert_response(2, 403, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(F.resp[2], "Host is not"));
    assert_response(3, 403, NULL, NULL);
    ck_assert_str_eq(body_of(F.resp[3]), "");
    assert_response(4, 200, NULL, F.stats_body);
    assert_response(5, 200, "application/json", F.config_body);
    ck_assert_int_eq(F.drain_calls, 0);
    ck_assert_int_eq(F.config_calls, 1);
}
END_TEST

START_TEST(test_admin_start_fails_on_busy_port)
{
    struct tg_admin *a = NULL, *b = NULL;
    struct tg_addr addr;
    char err[TG_ERRLEN] = "";
    uv_loop_t loop;
    int rc;

    ck_assert_int_eq(uv_loop_init(&loop), 0);
    loopback(&addr, 0);
    ck_assert_msg(tg_admin_start(&loop, &addr, &F.ops, &a, err) == 0, "%s", err);
    loopback(&addr, tg_admin_port(a));
    rc = tg_admin_start(&loop, &addr, &F.ops, &b, err);
    ck_assert_int_eq(rc, UV_EADDRINUSE);
    ck_assert_ptr_null(b);
    ck_assert_msg(strstr(err, addr.text) != NULL && strstr(err, "address already in use"),
                  "err: %s", err);
    tg_admin_stop(a);
    tg_admin_stop(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE(
        "admin", "http", &tc, test_admin_live, test_admin_ready_true, test_admin_ready_false,
        test_admin_ready_without_callback_is_ready, test_admin_stats_null_body_is_500,
        test_admin_stats_without_callback_is_501, test_admin_post_drain_calls_callback,
        test_admin_drain_without_callback_is_501, test_admin_post_body_is_ignored,
        test_admin_stop_from_callback, test_admin_random_bytes, test_admin_oversize_head_is_431,
        test_admin_client_closes_early, test_admin_slow_client_gets_408,
        test_admin_stop_closes_open_connections, test_admin_per_peer_cap_oldest_gives_way,
        test_admin_total_cap_busiest_address_gives_way, test_admin_local_paths_refuse_browsers,
        test_admin_start_fails_on_busy_port);

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, fix_init, fix_cleanup);
    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_admin_request_table, requests),
                  TG_TEST_LOOP(test_admin_view_body_from_callback, views));
    return s;
}

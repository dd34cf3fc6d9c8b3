/* The control plane end to end: tollgate-cp (a CA with a few-seconds certificate TTL, a
 * tokens file, a mesh file) and two sidecars that bootstrap by token: A (outbound api-out ->
 * B, expect web) and B (inbound web-in -> echo, allow api). Both become ready on their first
 * certificate; traffic flows; renewals change the serial B presents while 20 connections
 * stream without a dropped connection or a corrupted byte; a push the sidecars refuse is
 * NACKed and a mesh file the control plane refuses is not pushed, traffic unaffected; the
 * control plane killed and restarted: traffic unaffected, the sidecars reconnect. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N_STREAMS 20
#define WINDOW (128 * 1024) /* bytes in flight per stream */
#define TICK_MS 10
#define TICK_BUDGET (4096)
#define IO_CHUNK (64 * 1024)
#define STOP_GRACE_MS 20000
#define CP_ID "spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp"
#define TTL_S 10 /* certificates live 10 s; renewed at 0.3 of that: every 3 s */

struct stream {
    int fd;
    uint64_t seed;
    uint64_t sent;
    _Atomic uint64_t recvd;
    bool shut, eof, failed;
    char err[160];
};

struct streamer {
    struct stream s[N_STREAMS];
    atomic_bool stop;
    _Atomic uint64_t total;
    pthread_t th;
};

static int cp_port, echo_port, in_port, out_port, a_admin, b_admin;
static struct it_proc *cp;

static const char mesh_ok[] = "authorization:\n"
                              "  default_deny: false\n"
                              "  rules:\n"
                              "    - name: api-to-web\n"
                              "      action: allow\n"
                              "      principals: [\"" IT_API_ID "\"]\n";

static struct it_proc *start_cp(void)
{
    const char *argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    struct it_proc *p = it_spawn("cp", argv, IT_STDIN_NULL);

    ck_assert_msg(it_wait_port(cp_port, 10000), "tollgate-cp did not listen on %d", cp_port);
    return p;
}

static void write_sidecar(const char *file, const char *token, int admin, const char *listeners)
{
    it_write_file(file,
                  "admin: 127.0.0.1:%d\n"
                  "workers: 2\n"
                  "log_level: info\n"
                  "access_log: true\n"
                  "control_plane:\n"
                  "  address: 127.0.0.1:%d\n"
                  "  ca: ca.pem\n"
                  "  token: %s\n"
                  "  server_ids: [\"" CP_ID "\"]\n"
                  "  node_id: %s\n"
                  "  renew_fraction: 0.3\n"
                  "timeouts: {handshake: 5s, idle: 1h, connect: 2s, drain: 2s}\n"
                  "%s",
                  admin, cp_port, token, file, listeners);
}

static void setup(void)
{
    char listeners[1024];

    it_setup();
    it_certs("ca", "--out", "ca", "--cn", "cp test CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", CP_ID, NULL);
    cp_port = it_free_port();
    in_port = it_free_port();
    out_port = it_free_port();
    a_admin = it_free_port();
    b_admin = it_free_port();
    it_write_file("tokens.txt", "# TOKEN NAMESPACE SERVICE_ACCOUNT\n"
                                "aaaaaaaaaaaaaaaaaaaaaaaa default api\n"
                                "bbbbbbbbbbbbbbbbbbbbbbbb default web\n");
    it_write_file("a.token", "aaaaaaaaaaaaaaaaaaaaaaaa\n");
    it_write_file("b.token", "bbbbbbbbbbbbbbbbbbbbbbbb\n");
    it_write_file("mesh.yaml", "%s", mesh_ok);
    it_write_file("cp.yaml",
                  "listen: 127.0.0.1:%d\n"
                  "trust_domain: mesh.local\n"
                  "server: {cert: cp.pem, key: cp.key}\n"
                  "ca: {cert: ca.pem, key: ca.key}\n"
                  "cert_ttl: %ds\n"
                  "tokens: tokens.txt\n"
                  "mesh: [mesh.yaml]\n"
                  "log_level: info\n",
                  cp_port, TTL_S);
    cp = start_cp();
    it_echo_start("echo", &echo_port);
    snprintf(listeners, sizeof(listeners),
             "inbound:\n"
             "  - name: web-in\n"
             "    listen: 127.0.0.1:%d\n"
             "    upstream: 127.0.0.1:%d\n"
             "    allow: [\"" IT_API_ID "\"]\n",
             in_port, echo_port);
    write_sidecar("b.yaml", "b.token", b_admin, listeners);
    snprintf(listeners, sizeof(listeners),
             "outbound:\n"
             "  - name: api-out\n"
             "    listen: 127.0.0.1:%d\n"
             "    upstream: 127.0.0.1:%d\n"
             "    expect: [\"" IT_WEB_ID "\"]\n",
             out_port, in_port);
    write_sidecar("a.yaml", "a.token", a_admin, listeners);
}

static void teardown(void)
{
    it_teardown();
}

static void __attribute__((format(printf, 2, 3)))
stream_fail(struct stream *s, const char *fmt, ...)
{
    va_list ap;

    s->failed = true;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
}

static void stream_write(struct stream *s, size_t *budget, char *buf)
{
    size_t room = WINDOW - (size_t)(s->sent - atomic_load(&s->recvd));
    size_t n = *budget < room ? *budget : room;
    ssize_t w;

    it_pattern(s->seed, s->sent, buf, n);
    w = send(s->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
        s->sent += (uint64_t)w;
        *budget -= (size_t)w;
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        stream_fail(s, "send after %llu bytes (%llu back): %s", (unsigned long long)s->sent,
                    (unsigned long long)atomic_load(&s->recvd), strerror(errno));
    }
}

static void stream_read(struct streamer *st, struct stream *s, char *buf)
{
    ssize_t r = recv(s->fd, buf, IO_CHUNK, MSG_DONTWAIT);
    uint64_t recvd = atomic_load(&s->recvd);

    if (r > 0) {
        size_t ok = it_pattern_check(s->seed, recvd, buf, (size_t)r);

        if (ok < (size_t)r || recvd + (uint64_t)r > s->sent) {
            stream_fail(s, "corrupt echo at offset %llu (sent %llu)",
                        (unsigned long long)(recvd + ok), (unsigned long long)s->sent);
            return;
        }
        atomic_store(&s->recvd, recvd + (uint64_t)r);
        atomic_fetch_add(&st->total, (uint64_t)r);
    } else if (r == 0) {
        if (!s->shut)
            stream_fail(s, "connection dropped: EOF after %llu of %llu bytes",
                        (unsigned long long)recvd, (unsigned long long)s->sent);
        else if (recvd != s->sent)
            stream_fail(s, "EOF with %llu of %llu bytes back", (unsigned long long)recvd,
                        (unsigned long long)s->sent);
        else
            s->eof = true;
    } else if (errno != EAGAIN && errno != EINTR) {
        stream_fail(s, "recv after %llu of %llu bytes: %s", (unsigned long long)recvd,
                    (unsigned long long)s->sent, strerror(errno));
    }
}

/* One poll loop for all streams, paced by a per-tick byte budget. After stop: half-close
 * each stream and read until every echo is complete and EOF arrives. */
static void *stream_main(void *arg)
{
    struct streamer *st = arg;
    static struct pollfd pfd[N_STREAMS];
    static size_t budget[N_STREAMS];
    char *buf = malloc(IO_CHUNK);
    uint64_t refill_at = 0, deadline = 0;

    for (;;) {
        uint64_t now = it_now_ms();
        int open = 0;

        if (atomic_load(&st->stop) && deadline == 0) {
            deadline = now + STOP_GRACE_MS;
            for (int i = 0; i < N_STREAMS; i++)
                if (!st->s[i].failed && shutdown(st->s[i].fd, SHUT_WR) == 0)
                    st->s[i].shut = true;
        }
        if (now >= refill_at) {
            for (int i = 0; i < N_STREAMS; i++)
                budget[i] = TICK_BUDGET;
            refill_at = now + TICK_MS;
        }
        for (int i = 0; i < N_STREAMS; i++) {
            struct stream *s = &st->s[i];
            short ev = POLLIN;

            pfd[i] = (struct pollfd){.fd = -1};
            if (s->eof || s->failed)
                continue;
            open++;
            if (!s->shut && budget[i] > 0 && s->sent - atomic_load(&s->recvd) < WINDOW)
                ev |= POLLOUT;
            pfd[i] = (struct pollfd){.fd = s->fd, .events = ev};
        }
        if (open == 0)
            break;
        if (deadline != 0 && now > deadline) {
            for (int i = 0; i < N_STREAMS; i++)
                if (!st->s[i].eof && !st->s[i].failed)
                    stream_fail(&st->s[i], "no EOF %d ms after stop (%llu of %llu bytes back)",
                                STOP_GRACE_MS, (unsigned long long)atomic_load(&st->s[i].recvd),
                                (unsigned long long)st->s[i].sent);
            break;
        }
        if (poll(pfd, N_STREAMS, TICK_MS) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < N_STREAMS; i++) {
            struct stream *s = &st->s[i];

            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            if (pfd[i].revents & POLLOUT)
                stream_write(s, &budget[i], buf);
            if (!s->failed && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                stream_read(st, s, buf);
        }
    }
    free(buf);
    return NULL;
}

/* A new connection through A; returns B's serial as A saw it (normalised). */
static void probe_serial(char *serial, size_t cap)
{
    char err[256] = "", peer[64], line[IT_LINE_MAX], raw[128];
    int local = it_round_trip(out_port, "probe\n", err);

    ck_assert_msg(local > 0, "new connection failed: %s", err);
    snprintf(peer, sizeof(peer), "\"peer\":\"127.0.0.1:%d\"", local);
    ck_assert_msg(it_wait_lines("a.out", 1, 5000, peer, NULL) == 1, "no A log line for %s", peer);
    it_last_line("a.out", line, sizeof(line), peer, NULL);
    ck_assert_msg(strstr(line, "\"outcome\":\"ok\"") != NULL, "%s", line);
    ck_assert_msg(it_json_str(line, "serial", raw, sizeof(raw)), "no serial: %s", line);
    it_serial_norm(raw, serial, cap);
}

static void expect_progress(struct streamer *st, const char *what)
{
    uint64_t before = atomic_load(&st->total);
    uint64_t end = it_now_ms() + 5000;

    while (atomic_load(&st->total) < before + 1024 * 1024 && it_now_ms() < end)
        it_sleep_ms(20);
    ck_assert_msg(atomic_load(&st->total) >= before + 1024 * 1024,
                  "%s: streams stalled (%llu bytes echoed in all)", what,
                  (unsigned long long)atomic_load(&st->total));
}

static void expect_streams_ok(struct streamer *st, const char *what)
{
    for (int i = 0; i < N_STREAMS; i++)
        ck_assert_msg(!st->s[i].failed, "%s: stream %d: %s", what, i, st->s[i].err);
}

START_TEST(test_cp_end_to_end)
{
    static struct streamer st;
    struct it_proc *b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    struct it_proc *a = it_sidecar_start("a", "a.yaml", a_admin, 0);
    char s0[80], s[80], *dump = NULL;
    double certs0, rejected0, reconnects0, certs1;
    uint64_t end;

    (void)a;
    (void)b;
    /* ready on a certificate from the control plane: traffic flows */
    probe_serial(s0, sizeof(s0));
    ck_assert_int_eq(it_http(b_admin, "GET", "/config_dump", &dump), 200);
    ck_assert_msg(strstr(dump, IT_WEB_ID) != NULL && strstr(dump, "\"authorization\":\"") &&
                      strstr(dump, "\"trust_bundle\":\"") && strstr(dump, "control_plane"),
                  "config_dump: %s", dump);
    free(dump);

    /* a renewal changes the serial B presents */
    end = it_now_ms() + TTL_S * 1000;
    for (;;) {
        probe_serial(s, sizeof(s));
        if (strcmp(s, s0) != 0)
            break;
        ck_assert_msg(it_now_ms() < end, "B still presents serial %s after %d s", s0, TTL_S);
        it_sleep_ms(200);
    }

    /* 20 streams through renewals */
    for (int i = 0; i < N_STREAMS; i++) {
        struct stream *x = &st.s[i];

        x->seed = 2000 + (uint64_t)i;
        x->fd = it_connect(out_port, 10000);
        ck_assert_msg(x->fd >= 0, "stream %d: connect: %s", i, strerror(-x->fd));
        fcntl(x->fd, F_SETFL, fcntl(x->fd, F_GETFL) | O_NONBLOCK);
    }
    ck_assert_int_eq(pthread_create(&st.th, NULL, stream_main, &st), 0);
    certs0 = it_stat(b_admin, "tollgate_cp_certs_accepted_total", "");
    end = it_now_ms() + 15000;
    while (it_now_ms() < end) {
        it_sleep_ms(1000);
        expect_streams_ok(&st, "during renewals");
    }
    expect_progress(&st, "after renewals");
    certs1 = it_stat(b_admin, "tollgate_cp_certs_accepted_total", "");
    ck_assert_msg(certs1 >= certs0 + 3, "B renewed %.0f times in 15 s", certs1 - certs0);
    ck_assert_msg(it_stat(a_admin, "tollgate_cp_certs_accepted_total", "") >= 5,
                  "A renewed too seldom");

    /* a push the sidecars refuse (pushed rate limits): NACKed, traffic unaffected */
    rejected0 = it_stat(b_admin, "tollgate_cp_pushes_rejected_total", "");
    it_replace_file("mesh.yaml", "%srate_limits:\n  - match: \"*\"\n    max_concurrent: 5\n",
                    mesh_ok);
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_cp_pushes_rejected_total", "", rejected0 + 1,
                               10000) >= rejected0 + 1,
                  "B did not NACK the rate_limits push");
    ck_assert_msg(it_wait_lines("cp.err", 1, 5000, "refused rate_limits", NULL) >= 1,
                  "the control plane did not log the NACK");
    probe_serial(s, sizeof(s));
    expect_progress(&st, "after a NACKed push");

    /* a mesh file the control plane refuses (a rule that does not compile): not pushed */
    it_replace_file("mesh.yaml", "authorization:\n  rules:\n    - name: bad\n      action: allow\n"
                                 "      fingerprints: [\"zz\"]\n");
    ck_assert_msg(it_wait_lines("cp.err", 1, 5000, "refused, serving the last good", NULL) >= 1,
                  "the control plane did not refuse the broken mesh file");
    probe_serial(s, sizeof(s));
    expect_progress(&st, "after a refused mesh file");
    it_replace_file("mesh.yaml", "%s", mesh_ok);

    /* the control plane killed: traffic goes on; restarted: the sidecars reconnect */
    reconnects0 = it_stat(b_admin, "tollgate_cp_reconnects_total", "");
    ck_assert_int_eq(kill(cp->pid, SIGKILL), 0);
    it_wait(cp, 5000);
    it_sleep_ms(1500);
    probe_serial(s, sizeof(s));
    expect_progress(&st, "control plane down");
    ck_assert_int_eq(it_http(b_admin, "GET", "/ready", NULL), 200);
    cp = start_cp();
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_cp_reconnects_total", "", reconnects0 + 1,
                               10000) >= reconnects0 + 1,
                  "B did not try to reconnect");
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_cp_connected", "", 1, 10000) >= 1,
                  "B did not reconnect");
    ck_assert_msg(it_wait_stat(a_admin, "tollgate_cp_connected", "", 1, 10000) >= 1,
                  "A did not reconnect");
    certs1 = it_stat(b_admin, "tollgate_cp_certs_accepted_total", "");
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_cp_certs_accepted_total", "", certs1 + 1,
                               TTL_S * 1000) >= certs1 + 1,
                  "B did not renew through the restarted control plane");
    probe_serial(s, sizeof(s));
    expect_progress(&st, "after the control plane restart");

    atomic_store(&st.stop, true);
    pthread_join(st.th, NULL);
    for (int i = 0; i < N_STREAMS; i++) {
        struct stream *x = &st.s[i];

        ck_assert_msg(!x->failed && x->eof, "stream %d: %s", i, x->failed ? x->err : "no EOF");
        ck_assert_msg(x->sent > 0 && atomic_load(&x->recvd) == x->sent,
                      "stream %d: %llu sent, %llu back", i, (unsigned long long)x->sent,
                      (unsigned long long)atomic_load(&x->recvd));
        close(x->fd);
    }
    fprintf(stderr, "cp: %llu bytes echoed over %d streams, %.0f renewals of B\n",
            (unsigned long long)atomic_load(&st.total), N_STREAMS,
            it_stat(b_admin, "tollgate_cp_certs_accepted_total", ""));
}
END_TEST

static Suite *cp_suite(void)
{
    Suite *s = suite_create("cp");
    TCase *tc = tcase_create("cp");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cp_end_to_end);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cp_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

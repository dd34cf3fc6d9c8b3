/* Identity rotation under load: 50 connections stream through A -> B -> echo while B's
 * certificate (then certificate and key) is replaced on disk the way an agent does it
 * (write a temporary file, rename() it over the old one). Open connections must go on
 * untouched; new handshakes must see the new serial; a broken file must be refused. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N_STREAMS 50
#define WINDOW (128 * 1024) /* bytes in flight per stream */
#define TICK_MS 10
#define TICK_BUDGET (4096) /* bytes per stream per tick: at most ~20 MB/s in all */
#define IO_CHUNK (64 * 1024)
#define STOP_GRACE_MS 20000 /* after stop: every stream must see all its echo and EOF */
#define ROTATE_MS 6000      /* a rotation must show in new handshakes within this */

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

static struct it_mesh mesh;

static void setup(void)
{
    it_setup();
    it_mesh_start(&mesh, "2s");
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
    int local = it_round_trip(mesh.out_port, "probe\n", err);

    ck_assert_msg(local > 0, "new connection during rotation failed: %s", err);
    snprintf(peer, sizeof(peer), "\"peer\":\"127.0.0.1:%d\"", local);
    ck_assert_msg(it_wait_lines("a.out", 1, 5000, peer, NULL) == 1, "no A log line for %s", peer);
    it_last_line("a.out", line, sizeof(line), peer, NULL);
    ck_assert_msg(strstr(line, "\"outcome\":\"ok\"") != NULL, "%s", line);
    ck_assert_msg(it_json_str(line, "serial", raw, sizeof(raw)), "no serial: %s", line);
    it_serial_norm(raw, serial, cap);
}

/* New handshakes see want within ROTATE_MS, and keep seeing it. */
static void expect_serial(const char *want, const char *what)
{
    uint64_t end = it_now_ms() + ROTATE_MS;
    char got[80];

    for (;;) {
        probe_serial(got, sizeof(got));
        if (strcmp(got, want) == 0)
            break;
        ck_assert_msg(it_now_ms() < end, "%s: new handshakes still see serial %s, want %s", what,
                      got, want);
        it_sleep_ms(100);
    }
    for (int i = 0; i < 3; i++) {
        probe_serial(got, sizeof(got));
        ck_assert_msg(strcmp(got, want) == 0, "%s: serial went back to %s", what, got);
    }
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

/* Lines of listener with outcome ok, the given serial and more than min_bytes received. */
static int count_serial_lines(const char *file, const char *listener, const char *serial,
                              long long min_bytes)
{
    char *text = it_read_file(file, NULL), *save = NULL, raw[128], norm[80];
    int n = 0;

    for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        if (strstr(l, listener) == NULL || strstr(l, "\"outcome\":\"ok\"") == NULL ||
            !it_json_str(l, "serial", raw, sizeof(raw)) ||
            it_json_num(l, "bytes_received") <= min_bytes)
            continue;
        it_serial_norm(raw, norm, sizeof(norm));
        n += strcmp(norm, serial) == 0;
    }
    free(text);
    return n;
}

START_TEST(test_rotation_under_load)
{
    static struct streamer st;
    char s1[80], s2[80], s3[80];
    uint64_t all_ready;
    double reloads, failures;
    int old_lines;

    for (int i = 0; i < N_STREAMS; i++) {
        struct stream *s = &st.s[i];

        s->seed = 1000 + (uint64_t)i;
        s->fd = it_connect(mesh.out_port, 10000);
        ck_assert_msg(s->fd >= 0, "stream %d: connect: %s", i, strerror(-s->fd));
        fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
    }
    ck_assert_int_eq(pthread_create(&st.th, NULL, stream_main, &st), 0);
    all_ready = it_now_ms() + 10000;
    for (int i = 0; i < N_STREAMS; i++) {
        while (atomic_load(&st.s[i].recvd) == 0 && it_now_ms() < all_ready)
            it_sleep_ms(10);
        ck_assert_msg(atomic_load(&st.s[i].recvd) > 0, "stream %d: no echo in 10 s", i);
    }
    expect_serial(mesh.web_serial, "before rotation");
    expect_progress(&st, "before rotation");

    /* 1: new certificate, same key */
    it_certs("issue", "--ca", "ca", "--out", "web-r1", "--spiffe", IT_WEB_ID, "--key", "web.key",
             NULL);
    it_cert_serial("web-r1.pem", s1, sizeof(s1));
    ck_assert_int_eq(rename("web-r1.pem", "web.pem"), 0);
    expect_serial(s1, "rotation 1 (certificate)");
    expect_progress(&st, "after rotation 1");

    /* 2: new key and certificate */
    it_certs("issue", "--ca", "ca", "--out", "web-r2", "--spiffe", IT_WEB_ID, NULL);
    it_cert_serial("web-r2.pem", s2, sizeof(s2));
    ck_assert_int_eq(rename("web-r2.key", "web.key"), 0);
    ck_assert_int_eq(rename("web-r2.pem", "web.pem"), 0);
    expect_serial(s2, "rotation 2 (key and certificate)");
    expect_progress(&st, "after rotation 2");
    reloads = it_stat(mesh.b_admin, "tollgate_identity_reloads_total", "");
    ck_assert_msg(reloads >= 2, "B counted %.0f identity reloads", reloads);

    /* 3: garbage is refused, the last good identity stays */
    failures = it_stat(mesh.b_admin, "tollgate_identity_reload_failures_total", "");
    it_replace_file("web.pem", "this is not a certificate\n");
    ck_assert_msg(it_wait_stat(mesh.b_admin, "tollgate_identity_reload_failures_total", "",
                               failures + 1, ROTATE_MS) >= failures + 1,
                  "B did not count the refused reload");
    ck_assert_msg(it_count_lines("b.err", "identity reload", "refused, keeping serial", NULL) >= 1,
                  "B logged no 'identity reload (...) refused, keeping serial' line");
    expect_serial(s2, "after a garbage certificate");
    ck_assert_int_eq(it_http(mesh.b_admin, "GET", "/ready", NULL), 200);
    expect_progress(&st, "after the garbage certificate");

    /* 4: files arriving in the wrong order: a new certificate whose key is not there yet is
     * refused; once the key follows, the pair is taken */
    it_certs("issue", "--ca", "ca", "--out", "web-r3", "--spiffe", IT_WEB_ID, NULL);
    it_cert_serial("web-r3.pem", s3, sizeof(s3));
    failures = it_stat(mesh.b_admin, "tollgate_identity_reload_failures_total", "");
    ck_assert_int_eq(rename("web-r3.pem", "web.pem"), 0);
    ck_assert_msg(it_wait_stat(mesh.b_admin, "tollgate_identity_reload_failures_total", "",
                               failures + 1, ROTATE_MS) >= failures + 1,
                  "B did not refuse a certificate that does not match its key");
    expect_serial(s2, "certificate without its key");
    ck_assert_int_eq(rename("web-r3.key", "web.key"), 0);
    expect_serial(s3, "rotation 3 (key after certificate)");
    expect_progress(&st, "after rotation 3");

    atomic_store(&st.stop, true);
    pthread_join(st.th, NULL);
    for (int i = 0; i < N_STREAMS; i++) {
        struct stream *s = &st.s[i];

        ck_assert_msg(!s->failed && s->eof, "stream %d: %s", i, s->failed ? s->err : "no EOF");
        ck_assert_msg(s->sent > 0 && atomic_load(&s->recvd) == s->sent,
                      "stream %d: %llu sent, %llu back", i, (unsigned long long)s->sent,
                      (unsigned long long)atomic_load(&s->recvd));
        close(s->fd);
    }
    fprintf(stderr, "rotation: %llu bytes echoed over %d streams\n",
            (unsigned long long)atomic_load(&st.total), N_STREAMS);
    /* the streams kept the identity they started with: all 50 logged the old serial (the
     * probes, which also log it, send 6 bytes) */
    old_lines = it_wait_lines("a.out", N_STREAMS, 5000, "\"listener\":\"api-out\"", NULL);
    ck_assert_msg(old_lines >= N_STREAMS, "A logged %d lines", old_lines);
    /* the probes' lines count above too: wait for every stream's own line, bounded */
    for (uint64_t until = it_now_ms() + 5000;;) {
        old_lines = count_serial_lines("a.out", "\"listener\":\"api-out\"", mesh.web_serial, 1000);
        if (old_lines >= N_STREAMS || it_now_ms() > until)
            break;
        it_sleep_ms(50);
    }
    ck_assert_msg(old_lines == N_STREAMS, "%d of %d streams logged the serial they started with",
                  old_lines, N_STREAMS);
}
END_TEST

static Suite *rotation_suite(void)
{
    Suite *s = suite_create("rotation");
    TCase *tc = tcase_create("rotation");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rotation_under_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rotation_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

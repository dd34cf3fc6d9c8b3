/* Rate limits per caller identity, end to end: a noisy identity limited to a few new
 * connections per second is refused beyond them while another identity runs unthrottled at
 * a higher rate; a bytes_per_second limit paces a caller's upload to within 15% over 10 s
 * (reads paused, the connection never cut); and a listener's connection cap closes the
 * excess at once while the connections within it carry on. */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NOISY_ID "spiffe://mesh.local/ns/default/sa/noisy"
#define BYTES_PER_SECOND (256 * 1024)

static struct it_proc *echo, *b;
static int echo_port, in_port, capped_port, shared_port, b_admin;

static void setup(void)
{
    char shared_more[64];

    it_setup();
    it_mesh_certs();
    it_certs("issue", "--ca", "ca", "--out", "noisy", "--spiffe", NOISY_ID, NULL);
    echo = it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&in_port, &capped_port, &shared_port, &b_admin);
    snprintf(shared_more, sizeof(shared_more), "limits: {bytes_per_second: %d}", BYTES_PER_SECOND);
    it_cfg_write(
        "b.yaml",
        &(struct it_cfg){
            .admin = b_admin,
            .id = "web",
            .in = {{"web-in", in_port, echo_port},
                   {"capped-in", capped_port, echo_port, .more = "limits: {max_connections: 3}"},
                   {"shared-in", shared_port, echo_port, .more = shared_more}}},
        "rate_limits:\n"
        "  overrides:\n"
        "    - {principal: \"" NOISY_ID "\", connections_per_second: 2, burst: 2}\n"
        "    - {principal: \"" IT_API_ID "\", bytes_per_second: %d}\n",
        BYTES_PER_SECOND);
    b = it_sidecar_start("b", "b.yaml", b_admin, 0);
}

/* An outbound sidecar with identity name, without resumption, towards B's port to. */
static int start_a_to(const char *name, int to)
{
    int port = it_free_port(), admin = it_free_port();
    char file[64];

    snprintf(file, sizeof(file), "%s.yaml", name);
    it_cfg_write(
        file, &(struct it_cfg){.admin = admin, .id = name, .out = {{"out", port, to, IT_WEB_ID}}},
        "tls: {resumption: false}\n");
    it_sidecar_start(name, file, admin, 0);
    return port;
}

static int start_a(const char *name)
{
    return start_a_to(name, in_port);
}

/* A connection through port that echoes a line, kept open. */
static int held(int port)
{
    char buf[8];
    int fd = it_connect(port, 5000);

    ck_assert_int_ge(fd, 0);
    if (!it_send_all(fd, "held\n", 5) || it_recv_full(fd, buf, 5) != 5) {
        close(fd);
        return -1;
    }
    return fd;
}

START_TEST(test_listener_cap_closes_the_excess_at_once)
{
    int port = start_a_to("api", capped_port), fds[3], extra;
    char buf[8];

    for (int i = 0; i < 3; i++)
        ck_assert_msg((fds[i] = held(port)) >= 0, "connection %d of 3 under the cap failed", i);
    extra = held(port);
    ck_assert_msg(extra < 0, "a 4th connection got through a cap of 3");
    ck_assert(it_wait_stat(b_admin, "tollgate_listener_limited_total", "listener=\"capped-in\"", 1,
                           5000) >= 1);
    for (int i = 0; i < 3; i++) /* the three are unaffected */
        ck_assert_msg(it_send_all(fds[i], "more\n", 5) && it_recv_full(fds[i], buf, 5) == 5,
                      "connection %d under the cap broke", i);
    close(fds[0]); /* room again, once B has seen the close */
    for (int i = 0; i < 50 && (extra = held(port)) < 0; i++)
        it_sleep_ms(100);
    ck_assert_msg(extra >= 0, "no room after one of the three closed");
    close(extra);
    close(fds[1]);
    close(fds[2]);
}
END_TEST

START_TEST(test_noisy_identity_limited_while_other_runs_free)
{
    int noisy = start_a("noisy"), other = start_a("api"), ok_noisy = 0, ok_other = 0;
    char err[256];
    uint64_t t0 = it_now_ms();

    /* 12 quick connections each, interleaved, well within one second */
    for (int i = 0; i < 12; i++) {
        ok_noisy += it_round_trip(noisy, "n\n", err) >= 0;
        ok_other += it_round_trip(other, "o\n", err) >= 0;
    }
    ck_assert_msg(it_now_ms() - t0 < 3000, "too slow to test a per-second limit");
    ck_assert_msg(ok_other == 12, "the unlimited identity got %d of 12", ok_other);
    ck_assert_msg(ok_noisy >= 2 && ok_noisy <= 4, "noisy got %d of 12 (limit 2/s, burst 2)",
                  ok_noisy);
    ck_assert(it_wait_stat(b_admin, "tollgate_rate_limited_total", "listener=\"web-in\"",
                           12 - ok_noisy, 5000) == 12 - ok_noisy);
    ck_assert(it_file_contains("b.err", "rate_limited: over 2 new connections per second"));
    /* a second later the noisy identity is admitted again */
    it_sleep_ms(1100);
    ck_assert_msg(it_round_trip(noisy, "n\n", err) >= 0, "noisy not admitted again: %s", err);
}
END_TEST

struct sender {
    int fd;
    uint64_t until_ms;
};

static void *send_until(void *arg)
{
    struct sender *s = arg;
    static char chunk[16384];

    memset(chunk, 'x', sizeof(chunk));
    while (it_now_ms() < s->until_ms)
        if (send(s->fd, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0)
            break;
    shutdown(s->fd, SHUT_WR);
    return NULL;
}

START_TEST(test_bytes_per_second_paces_within_15_percent)
{
    int port = start_a("api");
    struct sender s;
    pthread_t th;
    static char buf[65536];
    struct timeval tv = {.tv_sec = 5};
    uint64_t start, at2 = 0, got = 0, got_at2 = 0, got_at10 = 0;
    double rate;

    s.fd = it_connect(port, 5000);
    ck_assert_int_ge(s.fd, 0);
    setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    start = it_now_ms();
    s.until_ms = start + 11000;
    ck_assert_int_eq(pthread_create(&th, NULL, send_until, &s), 0);
    while (it_now_ms() < start + 10000) {
        ssize_t n = recv(s.fd, buf, sizeof(buf), 0);

        ck_assert_msg(n > 0, "the paced connection was cut (%zd)", n);
        got += (uint64_t)n;
        if (at2 == 0 && it_now_ms() >= start + 2000) {
            at2 = it_now_ms();
            got_at2 = got;
        }
    }
    got_at10 = got;
    rate = (double)(got_at10 - got_at2) * 1000.0 / (double)(it_now_ms() - at2);
    ck_assert_msg(rate > BYTES_PER_SECOND * 0.85 && rate < BYTES_PER_SECOND * 1.15,
                  "echoed %.0f bytes/s from second 2 to 10, limit %d", rate, BYTES_PER_SECOND);
    ck_assert(it_stat(b_admin, "tollgate_throttled_total", "listener=\"web-in\"") >= 1);
    shutdown(s.fd, SHUT_RDWR);
    pthread_join(th, NULL);
    close(s.fd);
}
END_TEST

/* A listener's bytes_per_second is shared by all its callers: two connections sending as
 * fast as they can get the limit between them (within 15% from second 2 to 6). */
START_TEST(test_listener_bytes_per_second_shared)
{
    int port = start_a_to("api", shared_port);
    struct sender s[2];
    pthread_t th[2];
    static char buf[65536];
    struct timeval tv = {.tv_sec = 5};
    uint64_t start, at2 = 0, got = 0, got_at2 = 0;
    double rate;

    for (int i = 0; i < 2; i++) {
        s[i].fd = it_connect(port, 5000);
        ck_assert_int_ge(s[i].fd, 0);
        setsockopt(s[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(s[i].fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    start = it_now_ms();
    for (int i = 0; i < 2; i++) {
        s[i].until_ms = start + 7000;
        ck_assert_int_eq(pthread_create(&th[i], NULL, send_until, &s[i]), 0);
    }
    while (it_now_ms() < start + 6000) {
        for (int i = 0; i < 2; i++) {
            ssize_t n = recv(s[i].fd, buf, sizeof(buf), MSG_DONTWAIT);

            ck_assert_msg(n > 0 || (n < 0 && errno == EAGAIN), "connection %d was cut", i);
            got += n > 0 ? (uint64_t)n : 0;
        }
        if (at2 == 0 && it_now_ms() >= start + 2000) {
            at2 = it_now_ms();
            got_at2 = got;
        }
        it_sleep_ms(5);
    }
    rate = (double)(got - got_at2) * 1000.0 / (double)(it_now_ms() - at2);
    ck_assert_msg(rate > BYTES_PER_SECOND * 0.85 && rate < BYTES_PER_SECOND * 1.15,
                  "two callers together got %.0f bytes/s, listener limit %d", rate,
                  BYTES_PER_SECOND);
    ck_assert(it_stat(b_admin, "tollgate_throttled_total", "listener=\"shared-in\"") >= 1);
    for (int i = 0; i < 2; i++) {
        shutdown(s[i].fd, SHUT_RDWR);
        pthread_join(th[i], NULL);
        close(s[i].fd);
    }
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("limits", "limits", NULL, setup, it_teardown, 90,
                         test_noisy_identity_limited_while_other_runs_free,
                         test_bytes_per_second_paces_within_15_percent,
                         test_listener_cap_closes_the_excess_at_once,
                         test_listener_bytes_per_second_shared);
}

/* The data path end to end: app -> A (outbound, plain in, mTLS out) -> B (inbound, mTLS in,
 * plain out) -> echo server, with real tollgate processes on loopback. */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG_BYTES (100ULL * 1024 * 1024) /* each way, one connection */
#define BIG_CHUNK (256 * 1024)
#define N_CONC 200
#define CONC_BYTES (4 * 1024)
#define HALF_BYTES (48 * 1024)
#define EARLY_BYTES (200 * 1024) /* more than A's first read takes (buffer_size) */

static struct it_mesh mesh;

static void setup(void)
{
    it_setup();
    it_mesh_start(&mesh, "2s");
}

static void expect_stat(int admin, const char *name, const char *labels, double want)
{
    double v = it_wait_stat(admin, name, labels, want, 5000);

    ck_assert_msg(v == want, "%s{%s} = %.0f, want %.0f", name, labels, v, want);
}

/* The listener of the sidecar at admin counts one connection (in direction), closed, with one
 * handshake that succeeded and none that failed. */
static void expect_one_connection(int admin, const char *listener, const char *direction)
{
    char labels[128];

    snprintf(labels, sizeof(labels), "listener=\"%s\",direction=\"%s\"", listener, direction);
    expect_stat(admin, "tollgate_connections_opened_total", labels, 1);
    snprintf(labels, sizeof(labels), "listener=\"%s\",result=\"ok\"", listener);
    expect_stat(admin, "tollgate_handshakes_total", labels, 1);
    snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
    expect_stat(admin, "tollgate_connections_closed_total", labels, 1);
    expect_stat(admin, "tollgate_handshakes_failed_total", labels, 0);
}

START_TEST(test_round_trip_through_both_sidecars)
{
    char err[256] = "";

    ck_assert_msg(it_round_trip(mesh.out_port, "hello through the mesh\n", err) > 0, "%s", err);
    ck_assert_int_eq(it_echo_accepts(mesh.echo), 1);
}
END_TEST

/* Sends and receives at once (two threads), so neither side's buffers have to hold it all. */
START_TEST(test_100_mib_each_way_arrive_identical)
{
    struct it_sender s = {.seed = 42, .bytes = BIG_BYTES, .chunk = BIG_CHUNK};
    struct it_sha256 *h = it_sha256_new();
    char *buf = malloc(BIG_CHUNK);
    char hex[65];
    uint64_t got = 0, bad_at = UINT64_MAX, t0 = it_now_ms();
    pthread_t th;
    ssize_t n;

    ck_assert_ptr_nonnull(buf);
    s.fd = it_connect(mesh.out_port, 30000);
    ck_assert_msg(s.fd >= 0, "connect: %s", strerror(-s.fd));
    ck_assert_int_eq(pthread_create(&th, NULL, it_pattern_sender, &s), 0);
    while ((n = recv(s.fd, buf, BIG_CHUNK, 0)) > 0) {
        size_t ok = bad_at == UINT64_MAX ? it_pattern_check(s.seed, got, buf, (size_t)n) : 0;

        if (bad_at == UINT64_MAX && ok < (size_t)n)
            bad_at = got + ok;
        it_sha256_update(h, buf, (size_t)n);
        got += (uint64_t)n;
    }
    ck_assert_msg(n == 0, "recv after %llu bytes: %s", (unsigned long long)got, strerror(errno));
    pthread_join(th, NULL);
    it_sha256_final(h, hex);
    fprintf(stderr, "100 MiB each way in %llu ms\n", (unsigned long long)(it_now_ms() - t0));
    ck_assert_msg(s.sent == BIG_BYTES, "sent only %llu bytes", (unsigned long long)s.sent);
    ck_assert_msg(got == BIG_BYTES, "received %llu bytes", (unsigned long long)got);
    ck_assert_msg(bad_at == UINT64_MAX, "first corrupt byte at offset %llu",
                  (unsigned long long)bad_at);
    ck_assert_str_eq(hex, s.hex);
    close(s.fd);
    free(buf);
    ck_assert_int_eq(it_echo_accepts(mesh.echo), 1);
    expect_stat(mesh.a_admin, "tollgate_bytes_received_total", "listener=\"api-out\"", BIG_BYTES);
    expect_stat(mesh.a_admin, "tollgate_bytes_sent_total", "listener=\"api-out\"", BIG_BYTES);
    expect_stat(mesh.b_admin, "tollgate_bytes_received_total", "listener=\"web-in\"", BIG_BYTES);
    expect_stat(mesh.b_admin, "tollgate_bytes_sent_total", "listener=\"web-in\"", BIG_BYTES);
}
END_TEST

START_TEST(test_200_concurrent_connections_echo)
{
    static int fds[N_CONC];
    char buf[CONC_BYTES];
    double active;

    for (int i = 0; i < N_CONC; i++) {
        fds[i] = it_connect(mesh.out_port, 15000);
        ck_assert_msg(fds[i] >= 0, "connection %d: %s", i, strerror(-fds[i]));
    }
    for (int i = 0; i < N_CONC; i++) {
        it_pattern((uint64_t)i, 0, buf, sizeof(buf));
        ck_assert_msg(it_send_all(fds[i], buf, sizeof(buf)), "send %d: %s", i, strerror(errno));
    }
    active = it_wait_stat(mesh.a_admin, "tollgate_connections_active", "listener=\"api-out\"",
                          N_CONC, 10000);
    ck_assert_msg(active == N_CONC, "A: %.0f active connections, want %d", active, N_CONC);
    for (int i = 0; i < N_CONC; i++) {
        size_t got = it_recv_full(fds[i], buf, sizeof(buf));

        ck_assert_msg(got == sizeof(buf), "connection %d: %zu bytes back: %s", i, got,
                      strerror(errno));
        ck_assert_msg(it_pattern_check((uint64_t)i, 0, buf, got) == got,
                      "connection %d: corrupt echo", i);
    }
    for (int i = 0; i < N_CONC; i++) {
        shutdown(fds[i], SHUT_WR);
        ck_assert_msg(it_recv_eof(fds[i]) == 0, "connection %d: no EOF", i);
        close(fds[i]);
    }
    ck_assert_int_eq(it_echo_accepts(mesh.echo), N_CONC);
    expect_stat(mesh.b_admin, "tollgate_connections_closed_total", "listener=\"web-in\"", N_CONC);
    expect_stat(mesh.a_admin, "tollgate_connections_closed_total", "listener=\"api-out\"", N_CONC);
    expect_stat(mesh.a_admin, "tollgate_connections_active", "listener=\"api-out\"", 0);
    expect_stat(mesh.b_admin, "tollgate_connections_active", "listener=\"web-in\"", 0);
}
END_TEST

START_TEST(test_half_close_still_gets_echo_then_eof)
{
    static char out[HALF_BYTES], in[HALF_BYTES];
    int fd = it_connect(mesh.out_port, 10000);
    size_t got;
    int eof;

    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    it_pattern(7, 0, out, sizeof(out));
    ck_assert(it_send_all(fd, out, sizeof(out)));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    got = it_recv_full(fd, in, sizeof(in));
    ck_assert_msg(got == sizeof(in), "after SHUT_WR got %zu of %zu bytes back: %s", got, sizeof(in),
                  strerror(errno));
    ck_assert(memcmp(in, out, sizeof(in)) == 0);
    eof = it_recv_eof(fd);
    ck_assert_msg(eof == 0, "no EOF after the echo: %s", eof > 0 ? "more data" : strerror(-eof));
    close(fd);
}
END_TEST

/* What a client sends and ends at once waits in A's socket while A's handshake runs; A reads
 * it when the handshake ends, before the loop reports it (its first buffer leaves with A's
 * Finished). More than that buffer holds, or nothing but the end, arrives whole. */
START_TEST(test_bytes_and_end_sent_before_the_handshake_ends)
{
    static char out[EARLY_BYTES], in[EARLY_BYTES];
    int fd = it_connect(mesh.out_port, 10000), empty = it_connect(mesh.out_port, 10000);
    size_t got;
    int eof;

    ck_assert_msg(fd >= 0 && empty >= 0, "connect: %s", strerror(-(fd < 0 ? fd : empty)));
    ck_assert_int_eq(shutdown(empty, SHUT_WR), 0); /* nothing to carry but the end */
    it_pattern(11, 0, out, sizeof(out));
    ck_assert(it_send_all(fd, out, sizeof(out)));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    got = it_recv_full(fd, in, sizeof(in));
    ck_assert_msg(got == sizeof(in), "got %zu of %zu bytes back: %s", got, sizeof(in),
                  strerror(errno));
    ck_assert_msg(it_pattern_check(11, 0, in, got) == got, "corrupt echo");
    eof = it_recv_eof(fd);
    ck_assert_msg(eof == 0, "no EOF after the echo: %s", eof > 0 ? "more data" : strerror(-eof));
    eof = it_recv_eof(empty);
    ck_assert_msg(eof == 0, "no EOF for a client that only ended: %s",
                  eof > 0 ? "data" : strerror(-eof));
    close(fd);
    close(empty);
}
END_TEST

/* The access log line's serial, normalised, is want. */
static void expect_serial(const char *line, const char *want)
{
    char v[256], serial[80];

    ck_assert_msg(it_json_str(line, "serial", v, sizeof(v)), "no serial: %s", line);
    it_serial_norm(v, serial, sizeof(serial));
    ck_assert_str_eq(serial, want);
}

START_TEST(test_access_log_lines_on_both_sidecars)
{
    const char *msg = "log me\n";
    char err[256] = "", peer[64], line[IT_LINE_MAX];
    int local = it_round_trip(mesh.out_port, msg, err);

    ck_assert_msg(local > 0, "%s", err);
    snprintf(peer, sizeof(peer), "\"peer\":\"127.0.0.1:%d\"", local);
    it_log_line_ok("a.out", peer, line);
    ck_assert_msg(strstr(line, "\"listener\":\"api-out\"") != NULL, "%s", line);
    ck_assert_msg(strstr(line, "\"direction\":\"outbound\"") != NULL, "%s", line);
    ck_assert_msg(strstr(line, "\"reason\":null") != NULL, "%s", line);
    it_expect_json_str(line, "peer_id", IT_WEB_ID);
    expect_serial(line, mesh.web_serial);
    it_expect_json_str(line, "tls_version", "TLSv1.3");
    ck_assert_msg(it_json_num(line, "bytes_received") == (long long)strlen(msg), "%s", line);
    ck_assert_msg(it_json_num(line, "bytes_sent") == (long long)strlen(msg), "%s", line);

    it_log_line_ok("b.out", "\"listener\":\"web-in\"", line);
    ck_assert_msg(strstr(line, "\"direction\":\"inbound\"") != NULL, "%s", line);
    it_expect_json_str(line, "peer_id", IT_API_ID);
    expect_serial(line, mesh.api_serial);
    snprintf(peer, sizeof(peer), "127.0.0.1:%d", mesh.echo_port);
    it_expect_json_str(line, "upstream", peer);
}
END_TEST

START_TEST(test_stats_count_connections_and_ready_is_200)
{
    char err[256] = "";

    ck_assert_int_eq(it_http(mesh.a_admin, "GET", "/ready", NULL), 200);
    ck_assert_int_eq(it_http(mesh.b_admin, "GET", "/ready", NULL), 200);
    ck_assert_int_eq(it_http(mesh.b_admin, "GET", "/live", NULL), 200);
    ck_assert_msg(it_round_trip(mesh.out_port, "count me\n", err) > 0, "%s", err);

    expect_one_connection(mesh.a_admin, "api-out", "outbound");
    expect_stat(mesh.a_admin, "tollgate_connections_active", "listener=\"api-out\"", 0);
    expect_stat(mesh.a_admin, "tollgate_bytes_received_total", "listener=\"api-out\"", 9);
    expect_stat(mesh.a_admin, "tollgate_bytes_sent_total", "listener=\"api-out\"", 9);

    expect_one_connection(mesh.b_admin, "web-in", "inbound");
    expect_stat(mesh.b_admin, "tollgate_connections_opened_total", "listener=\"dead-in\"", 0);
}
END_TEST

START_TEST(test_upstream_refusing_closes_client_cleanly)
{
    char line[IT_LINE_MAX];
    int fd = it_connect(mesh.dead_out_port, 10000);
    int eof;

    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    ck_assert(it_send_all(fd, "anyone there?\n", 14));
    eof = it_recv_eof(fd);
    ck_assert_msg(eof == 0, "want EOF, got %s", eof > 0 ? "data" : strerror(-eof));
    close(fd);
    expect_stat(mesh.b_admin, "tollgate_upstream_connect_failures_total", "listener=\"dead-in\"",
                1);
    ck_assert_msg(it_wait_lines("b.out", 1, 5000, "\"listener\":\"dead-in\"", NULL) == 1,
                  "no access log line for dead-in");
    ck_assert(it_last_line("b.out", line, sizeof(line), "\"listener\":\"dead-in\"", NULL));
    ck_assert_msg(strstr(line, "\"outcome\":\"ok\"") == NULL, "%s", line);
    ck_assert_int_eq(it_echo_accepts(mesh.echo), 0);
}
END_TEST

START_TEST(test_sigterm_without_connections_exits_0_quickly)
{
    uint64_t t0 = it_now_ms();
    int st = it_stop(mesh.b, 5000);
    uint64_t dt = it_now_ms() - t0;

    ck_assert_msg(st == 0, "B exited %d", st);
    ck_assert_msg(dt < 1500, "B took %llu ms to stop with no connections", (unsigned long long)dt);
    st = it_stop(mesh.a, 5000);
    ck_assert_msg(st == 0, "A exited %d", st);
}
END_TEST

START_TEST(test_sigterm_drains_open_connection_then_exits_0)
{
    char buf[16];
    int fd = it_connect(mesh.out_port, 10000);
    int late, st, eof;
    uint64_t t0, dt;

    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    ck_assert(it_send_all(fd, "before\n", 7));
    ck_assert_int_eq(it_recv_full(fd, buf, 7), 7);
    t0 = it_now_ms();
    ck_assert_int_eq(kill(mesh.b->pid, SIGTERM), 0);
    it_sleep_ms(500);
    /* draining: the listener is closed, the open connection still works */
    late = it_connect(mesh.in_port, 2000);
    ck_assert_msg(late == -ECONNREFUSED, "B still accepts while draining (%d)", late);
    ck_assert_msg(it_http(mesh.b_admin, "GET", "/ready", NULL) != 200, "B ready while draining");
    ck_assert(it_send_all(fd, "during\n", 7));
    ck_assert_msg(it_recv_full(fd, buf, 7) == 7 && memcmp(buf, "during\n", 7) == 0,
                  "open connection broken while draining: %s", strerror(errno));
    st = it_wait(mesh.b, 8000);
    dt = it_now_ms() - t0;
    ck_assert_msg(st == 0, "B exited %d after SIGTERM", st);
    ck_assert_msg(dt >= 1500 && dt <= 4500, "B exited after %llu ms, want about 2000",
                  (unsigned long long)dt);
    eof = it_recv_eof(fd);
    ck_assert_msg(eof == 0, "client: want EOF after B exited, got %s",
                  eof > 0 ? "data" : strerror(-eof));
    close(fd);
}
END_TEST

/* POST /drain does what SIGTERM does: not ready, the listener closed, open connections
 * carrying on; live meanwhile; then, at the drain deadline, it exits with status 3 so that
 * its supervisor starts a fresh one (a drained sidecar must not linger looking healthy). */
START_TEST(test_post_drain_closes_listener_then_exits_3)
{
    char buf[16];
    int fd = it_connect(mesh.out_port, 10000);
    int late, st;
    uint64_t t0;

    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    ck_assert(it_send_all(fd, "before\n", 7));
    ck_assert_int_eq(it_recv_full(fd, buf, 7), 7);
    t0 = it_now_ms();
    ck_assert_int_eq(it_http(mesh.b_admin, "POST", "/drain", NULL), 200);
    it_sleep_ms(300);
    ck_assert_msg(it_http(mesh.b_admin, "GET", "/ready", NULL) == 503, "B ready after /drain");
    ck_assert_int_eq(it_http(mesh.b_admin, "GET", "/live", NULL), 200);
    late = it_connect(mesh.in_port, 2000);
    ck_assert_msg(late == -ECONNREFUSED, "B still accepts after /drain (%d)", late);
    ck_assert(it_send_all(fd, "during\n", 7));
    ck_assert_msg(it_recv_full(fd, buf, 7) == 7 && memcmp(buf, "during\n", 7) == 0,
                  "open connection broken after /drain: %s", strerror(errno));
    ck_assert_msg(kill(mesh.b->pid, 0) == 0, "B exited before its drain deadline");
    st = it_wait(mesh.b, 8000);
    ck_assert_msg(st == 3, "B exited %d after /drain, want 3", st);
    ck_assert_msg(it_now_ms() - t0 >= 1500, "B exited after %llu ms, want about 2000",
                  (unsigned long long)(it_now_ms() - t0));
    mesh.b->must_exit_0 = false;
    close(fd);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE(
        "proxy", "proxy", NULL, setup, it_teardown, 120, test_round_trip_through_both_sidecars,
        test_100_mib_each_way_arrive_identical, test_200_concurrent_connections_echo,
        test_half_close_still_gets_echo_then_eof, test_bytes_and_end_sent_before_the_handshake_ends,
        test_access_log_lines_on_both_sidecars, test_stats_count_connections_and_ready_is_200,
        test_upstream_refusing_closes_client_cleanly,
        test_sigterm_without_connections_exits_0_quickly,
        test_sigterm_drains_open_connection_then_exits_0,
        test_post_drain_closes_listener_then_exits_3);
}

/* Rotation under tunnels: 100 app connections (25 under ASan) stream through A's outbound listener
 * (tunnel: on) into B's inbound one (tunnels: true) as CONNECT streams, every byte checked,
 * while the identities and the trust bundle change under them. A new generation on either
 * side sends GOAWAY: the streams already open run on over the old tunnel, new app
 * connections ride a new tunnel made under the new generation (they see the new serial),
 * and the old tunnel ends once its streams have. Then the ways a tunnel ends on purpose: a
 * SIGTERM drains with GOAWAY, and a revoked peer's tunnel closes with its streams.
 *
 * A runs one worker, so its streams fill one tunnel (tunnel_pool.streams_per_connection is
 * N_STREAMS) and every new app connection needs another: the pool's
 * connections_per_destination (2) is reached at the first rotation if tunnels that
 * received GOAWAY still count. Under ASan the streams (paced at about 400 KB/s each) would
 * keep A's one worker saturated, and a new connection then waits seconds for its turn: 25
 * streams there, the same paths at a quarter of the load. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N_STREAMS (UNDER_ASAN ? 25 : 100)
/* a rotation must show in new app connections within this (ASan: a loaded machine's reloads
 * and handshakes have been seen to take 6 s) */
#define ROTATE_MS (UNDER_ASAN ? 20000 : 6000)
#define B_LISTENER "\"listener\":\"web-in\""
#define A_LISTENER "\"listener\":\"api-out\""

static int echo_port, in_port, out_port, a_admin, b_admin;
static struct it_proc *sidecar_a, *sidecar_b;

/* B's config (web identity, trust bundle bundle.pem): web-in takes tunnels; more is its own
 * top-level YAML (NULL: none). */
static void write_b(const char *more)
{
    struct it_cfg b = it_cfg_of(b_admin, "web", 2, "handshake: 5s, idle: 1h, drain: 10s");

    b.bundle = "bundle.pem";
    b.in[0] = (struct it_listener){"web-in", in_port, echo_port, IT_API_ID, "tunnels: true"};
    it_cfg_write("b.yaml", &b, "%s", more != NULL ? more : "");
}

static void setup(void)
{
    struct it_cfg a;
    char *ca;

    it_setup();
    it_mesh_certs();
    ca = it_read_file("ca.pem", NULL);
    it_replace_file("bundle.pem", "%s", ca);
    free(ca);
    it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&in_port, &out_port, &a_admin, &b_admin);
    write_b(NULL);
    a = it_cfg_of(a_admin, "api", 1, "handshake: 5s, idle: 1h, connect: 2s, drain: 10s");
    a.bundle = "bundle.pem";
    a.out[0] = (struct it_listener){"api-out", out_port, in_port, IT_WEB_ID, "tunnel: \"on\""};
    it_cfg_write("a.yaml", &a, "tunnel_pool: {streams_per_connection: %d}\n", N_STREAMS);
    sidecar_b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    sidecar_a = it_sidecar_start("a", "a.yaml", a_admin, 0);
}

static double a_stat(const char *name)
{
    return it_stat(a_admin, name, "");
}

/* A new app connection through A, over a tunnel; B's serial as A logged it (normalised). */
static void probe_b_serial(char *serial, size_t cap)
{
    it_probe_serial(out_port, "a.out", serial, cap);
}

/* A new app connection through A; A's serial as B logged it on the stream's line. Every
 * stream of the test is still open while it probes, so B's last ok line is the probe's. */
static void probe_a_serial(char *serial, size_t cap)
{
    char err[256] = "", line[IT_LINE_MAX], raw[128];
    int before = it_count_lines("b.out", B_LISTENER, "\"outcome\":\"ok\"", NULL);

    ck_assert_msg(it_round_trip(out_port, "probe\n", err) > 0, "new connection: %s", err);
    ck_assert_msg(
        it_wait_lines("b.out", before + 1, 10000, B_LISTENER, "\"outcome\":\"ok\"", NULL) > before,
        "B logged no line for the probe");
    ck_assert(it_last_line("b.out", line, sizeof(line), B_LISTENER, "\"outcome\":\"ok\"", NULL));
    ck_assert_msg(it_json_str(line, "serial", raw, sizeof(raw)), "no serial: %s", line);
    it_serial_norm(raw, serial, cap);
}

static void expect_serial(void (*probe)(char *, size_t), const char *want, const char *what)
{
    it_expect_serial(probe, want, ROTATE_MS, what);
}

/* The streams still move, and a new app connection made since opened rode a tunnel opened
 * after *opened (which is moved on). */
static void expect_new_tunnel(struct it_streams *st, double *opened, const char *what)
{
    char err[256] = "";
    double now;

    ck_assert_msg(it_round_trip(out_port, "after\n", err) > 0, "%s: new connection: %s", what, err);
    now = a_stat("tollgate_tunnels_opened_total");
    ck_assert_msg(now > *opened, "%s: no new tunnel (%.0f opened in all)", what, now);
    *opened = now;
    it_streams_expect_progress(st, what);
    it_streams_expect_ok(st, what);
}

/* The streams half-close and every byte comes back; the tunnels open before the first
 * rotation (the streams') end once their streams have; none of the streams ended in error
 * on either side. */
static void finish(struct it_streams *st, double opened_before, const char *what)
{
    uint64_t bytes = it_streams_stop(st);
    double closed;
    int ok;

    fprintf(stderr, "%s: %llu bytes echoed over %d tunneled streams\n", what,
            (unsigned long long)bytes, N_STREAMS);
    closed = it_wait_stat(a_admin, "tollgate_tunnels_closed_total", "", opened_before, 10000);
    ck_assert_msg(closed >= opened_before, "%s: %.0f tunnels closed, the first %.0f should have",
                  what, closed, opened_before);
    ok = it_wait_lines("b.out", N_STREAMS, 10000, B_LISTENER, "\"outcome\":\"ok\"", NULL);
    ck_assert_msg(ok >= N_STREAMS, "%s: B logged %d ok streams", what, ok);
    ck_assert_int_eq(it_count_lines("a.out", A_LISTENER, "\"outcome\":\"error\"", NULL), 0);
    ck_assert_int_eq(it_count_lines("a.out", A_LISTENER, "\"outcome\":\"refused\"", NULL), 0);
    ck_assert_int_eq(it_count_lines("b.out", B_LISTENER, "\"outcome\":\"error\"", NULL), 0);
    ck_assert_int_eq(a_stat("tollgate_tunnel_streams_refused_total"), 0);
}

/* Starts the streams; they ride one tunnel. Its count of tunnels opened. */
static struct it_streams *start_streams(double *opened)
{
    struct it_streams *st = it_streams_start(out_port, N_STREAMS, 1000);

    it_streams_expect_progress(st, "before rotation");
    *opened = a_stat("tollgate_tunnels_opened_total");
    ck_assert_msg(*opened >= 1, "A opened no tunnel for %d streams", N_STREAMS);
    ck_assert_int_eq(a_stat("tollgate_tunnel_streams_total"), N_STREAMS);
    return st;
}

/* A connection through A that stays open: it sends msg and reads it back. */
static int held_open(void)
{
    int fd = it_connect(out_port, 5000);

    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    return fd;
}

static void held_echo(int fd, const char *msg)
{
    char back[64];

    ck_assert_msg(it_send_all(fd, msg, strlen(msg)), "%s: send", msg);
    ck_assert_msg(it_recv_full(fd, back, strlen(msg)) == strlen(msg) &&
                      memcmp(back, msg, strlen(msg)) == 0,
                  "%s: no echo", msg);
}

/* It half-closes and gets EOF back: it ended whole. */
static void held_end(int fd)
{
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_int_eq(it_recv_eof(fd), 0);
    close(fd);
}

/* New app connections see the serial of who.pem now (probe: A's or B's as the other logged
 * it). */
static void expect_current(const char *who, void (*probe)(char *, size_t), const char *what)
{
    char pem[32], serial[80];

    snprintf(pem, sizeof(pem), "%s.pem", who);
    it_cert_serial(pem, serial, sizeof(serial));
    expect_serial(probe, serial, what);
}

/* who (web: B, api: A) gets a new leaf of ca for id, on its key when keep_key, else on a new
 * one (the key goes first, as test_rotation's agent does it): new app connections see its
 * serial over a new tunnel while the streams go on. */
static void new_leaf(struct it_streams *st, double *opened, const char *ca, const char *who,
                     const char *id, bool keep_key, void (*probe)(char *, size_t), const char *what)
{
    static int n;
    char out[32], key[40], pem[40], old_key[32], old_pem[32], serial[80];

    snprintf(out, sizeof(out), "%s-r%d", who, ++n);
    snprintf(key, sizeof(key), "%s.key", out);
    snprintf(pem, sizeof(pem), "%s.pem", out);
    snprintf(old_key, sizeof(old_key), "%s.key", who);
    snprintf(old_pem, sizeof(old_pem), "%s.pem", who);
    it_certs("issue", "--ca", ca, "--out", out, "--spiffe", id, keep_key ? "--key" : NULL, old_key,
             NULL);
    it_cert_serial(pem, serial, sizeof(serial));
    if (!keep_key)
        ck_assert_int_eq(rename(key, old_key), 0);
    ck_assert_int_eq(rename(pem, old_pem), 0);
    expect_serial(probe, serial, what);
    expect_new_tunnel(st, opened, what);
}

/* B's certificate is replaced (new certificate, then new key and certificate) while 100
 * streams run over A's tunnel to it. A connection made between the two rotations stays open
 * through the second: then two tunnels that got GOAWAY still carry streams, and neither may
 * count against connections_per_destination (2), or new app connections would be refused. */
START_TEST(test_tunnel_rotation_server_cert)
{
    double first, opened;
    struct it_streams *st = start_streams(&first);
    int held;

    opened = first;
    expect_current("web", probe_b_serial, "before rotation");
    new_leaf(st, &opened, "ca", "web", IT_WEB_ID, true, probe_b_serial,
             "B rotation 1 (certificate)");
    held = held_open();
    held_echo(held, "held across rotation 2\n");
    new_leaf(st, &opened, "ca", "web", IT_WEB_ID, false, probe_b_serial,
             "B rotation 2 (key and certificate)");
    held_echo(held, "still there after rotation 2\n");
    held_end(held);
    finish(st, first, "B rotation");
}
END_TEST

/* A's own certificate is replaced while its 100 streams run: A retires its tunnels, the
 * streams go on, new app connections ride a new tunnel that B sees with A's new serial. */
START_TEST(test_tunnel_rotation_client_cert)
{
    double first, opened;
    struct it_streams *st = start_streams(&first);

    opened = first;
    expect_current("api", probe_a_serial, "before rotation");
    new_leaf(st, &opened, "ca", "api", IT_API_ID, true, probe_a_serial,
             "A rotation 1 (certificate)");
    new_leaf(st, &opened, "ca", "api", IT_API_ID, false, probe_a_serial,
             "A rotation 2 (key and certificate)");
    finish(st, first, "A rotation");
}
END_TEST

/* bundle.pem (both sidecars') becomes the PEM files of the NULL-terminated list. */
static void set_bundle(const char *pem, ...)
{
    char text[16384] = "";
    size_t len = 0;
    va_list ap;

    va_start(ap, pem);
    for (const char *f = pem; f != NULL; f = va_arg(ap, const char *)) {
        char *t = it_read_file(f, NULL);

        ck_assert_ptr_nonnull(t);
        ck_assert_uint_lt(len + strlen(t), sizeof(text));
        memcpy(text + len, t, strlen(t) + 1);
        len += strlen(t);
        free(t);
    }
    va_end(ap);
    it_replace_file("bundle.pem", "%s", text);
}

/* Waits until the sidecar at admin published a generation newer than gen0. */
static void wait_generation(int admin, double gen0, const char *what)
{
    ck_assert_msg(it_wait_stat(admin, "tollgate_generation", "", gen0 + 1, ROTATE_MS) >= gen0 + 1,
                  "%s: no new generation", what);
}

/* A change neither probe can see by serial: both sidecars publish a new generation. */
static void wait_reloads(double a0, double b0, const char *what)
{
    wait_generation(a_admin, a0, what);
    wait_generation(b_admin, b0, what);
}

/* CA rotation under 100 streams: the bundle gains a second CA, B then A get leaves of it,
 * and the old CA leaves the bundle. Every step is a new generation and a new tunnel. */
START_TEST(test_tunnel_ca_rotation)
{
    double first, opened, ra, rb;
    struct it_streams *st = start_streams(&first);

    opened = first;
    it_certs("ca", "--out", "ca2", "--cn", "mesh test CA 2", NULL);

    ra = it_stat(a_admin, "tollgate_generation", "");
    rb = it_stat(b_admin, "tollgate_generation", "");
    set_bundle("ca.pem", "ca2.pem", NULL);
    wait_reloads(ra, rb, "bundle gains CA 2");
    expect_new_tunnel(st, &opened, "bundle gains CA 2");

    new_leaf(st, &opened, "ca2", "web", IT_WEB_ID, false, probe_b_serial, "B's leaf of CA 2");
    new_leaf(st, &opened, "ca2", "api", IT_API_ID, false, probe_a_serial, "A's leaf of CA 2");

    ra = it_stat(a_admin, "tollgate_generation", "");
    rb = it_stat(b_admin, "tollgate_generation", "");
    set_bundle("ca2.pem", NULL);
    wait_reloads(ra, rb, "CA 1 leaves the bundle");
    expect_new_tunnel(st, &opened, "CA 1 leaves the bundle");
    expect_current("web", probe_b_serial, "CA 2 alone");
    finish(st, first, "CA rotation");
}
END_TEST

/* Within 2 s a new connection to port is refused, or closed before it echoes a byte. */
static bool not_taken(int port)
{
    char err[256] = "";
    uint64_t end = it_now_ms() + 2000;

    while (it_round_trip(port, "late\n", err) > 0) {
        if (it_now_ms() > end)
            return false;
        it_sleep_ms(50);
    }
    return true;
}

/* SIGTERM of the sidecar victim under 100 tunneled streams: its tunnels get GOAWAY, the
 * streams open then run on and end whole when half-closed, new app connections are not
 * taken, and it exits 0 before the drain deadline (10 s). */
static void sigterm_drains(struct it_proc *victim, const char *what)
{
    double first;
    struct it_streams *st = start_streams(&first);
    uint64_t t0;
    int status;

    kill(victim->pid, SIGTERM);
    it_sleep_ms(300);
    it_streams_expect_progress(st, what);
    ck_assert_msg(not_taken(out_port), "%s: a new app connection was carried while draining", what);
    it_streams_expect_ok(st, what);
    t0 = it_now_ms();
    it_streams_stop(st);
    status = it_wait(victim, 9000);
    ck_assert_msg(status == 0, "%s: status %d", what, status);
    fprintf(stderr, "%s: drained and exited %llu ms after the half-close\n", what,
            (unsigned long long)(it_now_ms() - t0));
    ck_assert_int_eq(
        it_wait_lines("b.out", N_STREAMS, 5000, B_LISTENER, "\"outcome\":\"ok\"", NULL), N_STREAMS);
    ck_assert_int_eq(it_count_lines("b.out", B_LISTENER, "\"outcome\":\"error\"", NULL), 0);
}

START_TEST(test_tunnel_sigterm_client_drains)
{
    sigterm_drains(sidecar_a, "SIGTERM of A");
    ck_assert_int_eq(it_count_lines("a.out", A_LISTENER, "\"outcome\":\"ok\"", NULL), N_STREAMS);
    ck_assert_int_eq(it_count_lines("a.out", A_LISTENER, "\"outcome\":\"error\"", NULL), 0);
}
END_TEST

START_TEST(test_tunnel_sigterm_server_drains)
{
    sigterm_drains(sidecar_b, "SIGTERM of B");
    ck_assert_int_eq(
        it_wait_lines("a.out", N_STREAMS, 5000, A_LISTENER, "\"outcome\":\"ok\"", NULL), N_STREAMS);
}
END_TEST

/* B revokes A's serial (authorization.close_denied: true) while 10 app connections ride a
 * tunnel: the tunnel and its streams end, each app connection closed; A's new connections
 * are refused. */
START_TEST(test_tunnel_revoked_peer_closed)
{
    char api[80], err[256] = "", more[256];
    int fds[10];
    double closed, gen = it_stat(b_admin, "tollgate_generation", "");

    write_b("authorization: {close_denied: true}\n");
    wait_generation(b_admin, gen, "close_denied");
    for (int i = 0; i < 10; i++) {
        char msg[16], back[16];

        snprintf(msg, sizeof(msg), "hello %02d\n", i);
        fds[i] = it_connect(out_port, 5000);
        ck_assert_int_ge(fds[i], 0);
        ck_assert(it_send_all(fds[i], msg, strlen(msg)));
        ck_assert_uint_eq(it_recv_full(fds[i], back, strlen(msg)), strlen(msg));
        ck_assert(memcmp(msg, back, strlen(msg)) == 0);
    }
    closed = a_stat("tollgate_tunnels_closed_total");
    it_cert_serial("api.pem", api, sizeof(api));
    snprintf(more, sizeof(more),
             "authorization: {close_denied: true}\nrevocations: {serials: [\"%s\"]}\n", api);
    write_b(more);
    for (int i = 0; i < 10; i++) {
        int r = it_recv_eof(fds[i]);

        ck_assert_msg(r == 0 || r == -ECONNRESET, "app connection %d: %d (%s)", i, r,
                      r < 0 ? strerror(-r) : "data");
        close(fds[i]);
    }
    ck_assert_msg(it_wait_stat(a_admin, "tollgate_tunnels_closed_total", "", closed + 1, 5000) >=
                      closed + 1,
                  "A's tunnel did not close");
    /* each stream's line names the revocation: refused (the one that was decided again
     * first) or ended with its tunnel */
    ck_assert_int_eq(it_wait_lines("b.out", 10, 5000, B_LISTENER, "revoked", NULL), 10);
    ck_assert_int_eq(it_count_lines("b.out", B_LISTENER, "\"outcome\":\"ok\"", NULL), 0);
    ck_assert_msg(it_round_trip(out_port, "again\n", err) < 0,
                  "a revoked caller's new connection went through");
    ck_assert_msg(it_stat(b_admin, "tollgate_revoked_total", "") >= 1, "B counted no revocation");
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s = IT_TEST_SUITE("tunnel_rotation", "server_cert", NULL, setup, it_teardown, 120,
                             test_tunnel_rotation_server_cert);

    IT_TEST_CASE(s, "client_cert", setup, it_teardown, 120, test_tunnel_rotation_client_cert);
    IT_TEST_CASE(s, "ca", setup, it_teardown, 120, test_tunnel_ca_rotation);
    IT_TEST_CASE(s, "sigterm_client", setup, it_teardown, 120, test_tunnel_sigterm_client_drains);
    IT_TEST_CASE(s, "sigterm_server", setup, it_teardown, 120, test_tunnel_sigterm_server_drains);
    IT_TEST_CASE(s, "revoked", setup, it_teardown, 120, test_tunnel_revoked_peer_closed);
    return s;
}

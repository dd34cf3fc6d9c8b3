/* The end of a tunnel stream at B, the inbound end: an app that half-closes before it has
 * read the whole upload still gets every byte when the tunnel closes under it (B's new
 * generation's GOAWAY, A's pool closing its idle tunnel), and SIGTERM's drain waits for it;
 * an app that does not read it is reset after timeouts.idle; an app that resets while B has
 * stopped reading it (its caller does not read) is found within a second, as on a direct
 * connection. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PY "/usr/bin/python3"
#define ON "tunnel: \"on\""
/* Less than B's window toward its app (8 x 64 KiB) and far more than the app's socket
 * buffers hold (tail_py): A's stream ends whole while most of it waits in B's own buffer */
#define UPLOAD (384 * 1024)
#define LONG "idle: 30s, drain: 10s" /* B's timeouts, longer than any test */

static int app_port, in_port, b_admin, a_admin, out_port;
static struct it_proc *sidecar_a, *sidecar_b, *app;

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    IT_FREE_PORTS(&app_port, &in_port, &b_admin, &a_admin, &out_port);
}

/* The app behind B, one connection: it half-closes at once, then reads nothing until the
 * file "go" appears (20 s at most), then everything. Its receive buffer is small and fixed,
 * and its MSS the least there is, so B's socket toward it stays small too (the kernel sizes
 * a send buffer by MSS times the congestion window: about 90 KiB here, 4 MiB without): what
 * it has not read waits in B's own buffer. Its end goes into tail.got: "got N SHA256HEX
 * END", END "eof" or the error that ended its reads. */
static const char tail_py[] =
    "import hashlib, os, socket, sys, time\n"
    "srv = socket.socket()\n"
    "srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n"
    "srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)\n"
    "srv.bind(('127.0.0.1', int(sys.argv[1])))\n"
    "srv.listen(1)\n"
    "srv.settimeout(20)\n"
    "print('listening', flush=True)\n"
    "s, _ = srv.accept()\n"
    "s.settimeout(20)\n"
    "s.shutdown(socket.SHUT_WR)\n"
    "deadline = time.time() + 20\n"
    "while not os.path.exists('go') and time.time() < deadline:\n"
    "    time.sleep(0.01)\n"
    "h, n, end = hashlib.sha256(), 0, 'eof'\n"
    "try:\n"
    "    while (b := s.recv(1 << 20)):\n"
    "        h.update(b)\n"
    "        n += len(b)\n"
    "except OSError as e:\n"
    "    end = type(e).__name__\n"
    "open('tail.tmp', 'w').write('got %d %s %s\\n' % (n, h.hexdigest(), end))\n"
    "os.rename('tail.tmp', 'tail.got')\n";

/* B: web-in, tunnels to the app, with timeouts (flow-map text); more is B's own top-level
 * YAML. */
static void write_b(const char *timeouts, const char *more)
{
    it_cfg_write(
        "b.yaml",
        &(struct it_cfg){.admin = b_admin,
                         .workers = 1,
                         .id = "web",
                         .timeouts = timeouts,
                         .in = {{"web-in", in_port, app_port, IT_API_ID, "tunnels: true"}}},
        "%s", more);
}

/* Starts the app NAME.py (script), then B (write_b) and A (pool: its tunnel_pool flow-map
 * text, NULL: the defaults). */
static void start_all(const char *name, const char *script, const char *timeouts, const char *pool)
{
    char port[16], file[32];
    struct it_cfg a = it_cfg_of(a_admin, "api", 1, NULL);

    snprintf(file, sizeof(file), "%s.py", name);
    it_write_file(file, "%s", script);
    snprintf(port, sizeof(port), "%d", app_port);
    app = it_spawn("app", (const char *const[]){PY, file, port, NULL}, IT_STDIN_NULL);
    ck_assert(it_wait_file_contains(app->out_path, "listening", 10000));
    write_b(timeouts, "");
    sidecar_b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    a.out[0] = (struct it_listener){"tun-out", out_port, in_port, IT_WEB_ID, ON};
    if (pool != NULL)
        it_cfg_write("a.yaml", &a, "tunnel_pool: {%s}\n", pool);
    else
        it_cfg_write("a.yaml", &a, NULL);
    sidecar_a = it_sidecar_start("a", "a.yaml", a_admin, 0);
}

/* The caller through A: UPLOAD bytes of pattern 5, its half-close, then the app's end (it
 * half-closed first). A's line for it says ok: A's stream ended whole, though the app has
 * read nothing. */
static void upload(void)
{
    static char buf[UPLOAD];
    char line[IT_LINE_MAX];
    int fd = it_connect(out_port, 10000);

    ck_assert_int_ge(fd, 0);
    it_pattern(5, 0, buf, sizeof(buf));
    ck_assert_msg(it_send_all(fd, buf, sizeof(buf)), "upload: %s", strerror(errno));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_int_eq(it_recv_eof(fd), 0);
    close(fd);
    it_log_line_ok("a.out", "\"listener\":\"tun-out\"", line);
    ck_assert_int_eq(it_json_num(line, "bytes_received"), UPLOAD);
}

/* The app got every byte of the upload and then a clean end; B logged the stream ok. */
static void expect_whole(const char *what)
{
    static char buf[UPLOAD];
    char want[160], hex[65];
    char *got;
    struct it_sha256 *h = it_sha256_new();

    it_pattern(5, 0, buf, sizeof(buf));
    it_sha256_update(h, buf, sizeof(buf));
    it_sha256_final(h, hex);
    snprintf(want, sizeof(want), "got %d %s eof", UPLOAD, hex);
    it_wait_file_contains("tail.got", "got", 15000);
    got = it_read_file("tail.got", NULL);
    ck_assert_msg(got != NULL && strstr(got, want) != NULL, "%s: the app %s, want %s", what,
                  got != NULL ? got : "never ended", want);
    free(got);
    ck_assert_int_eq(
        it_wait_lines("b.out", 1, 5000, "\"listener\":\"web-in\"", "\"outcome\":\"ok\"", NULL), 1);
    ck_assert_int_eq(it_count_lines("b.out", "\"outcome\":\"error\"", NULL), 0);
}

/* B's new generation (a new limit): its tunnel gets GOAWAY and closes as soon as the stream
 * has ended both ways, while the app has the tail to read. */
START_TEST(test_tail_survives_goaway)
{
    start_all("tail", tail_py, LONG, NULL);
    upload();
    write_b(LONG, "rate_limits: {default: {max_concurrent: 50}}\n");
    ck_assert(it_wait_stat(b_admin, "tollgate_generation", "", 2, 5000) >= 2);
    ck_assert(it_wait_stat(a_admin, "tollgate_tunnels_closed_total", "", 1, 5000) >= 1);
    it_write_file("go", "now\n");
    expect_whole("B's new generation");
}
END_TEST

/* A's pool closes the tunnel, idle for its idle_timeout (1 s) once the stream has ended. */
START_TEST(test_tail_survives_idle_close)
{
    start_all("tail", tail_py, LONG, "idle_timeout: 1s");
    upload();
    ck_assert(it_wait_stat(a_admin, "tollgate_tunnels_closed_total", "", 1, 5000) >= 1);
    it_write_file("go", "now\n");
    expect_whole("A's idle tunnel closed");
}
END_TEST

/* SIGTERM of B: GOAWAY, the tunnel closes, and the drain waits for the app to take the tail
 * (B still runs half a second later); then B exits 0, before its 10 s deadline. */
START_TEST(test_tail_survives_sigterm)
{
    uint64_t t0;

    start_all("tail", tail_py, LONG, NULL);
    upload();
    ck_assert_int_eq(kill(sidecar_b->pid, SIGTERM), 0);
    ck_assert(it_wait_stat(a_admin, "tollgate_tunnels_closed_total", "", 1, 5000) >= 1);
    ck_assert_msg(it_wait(sidecar_b, 500) < 0, "B exited with its app's tail unwritten");
    t0 = it_now_ms();
    it_write_file("go", "now\n");
    ck_assert_int_eq(it_wait(sidecar_b, 9000), 0);
    fprintf(stderr, "tunnel_tail: B exited %llu ms after its app began to read the tail\n",
            (unsigned long long)(it_now_ms() - t0));
    expect_whole("SIGTERM of B");
}
END_TEST

/* B's line for the stream says outcome, with why in its reason; the app, reading now,
 * finds a reset after what its own socket held. */
static void expect_cut(const char *outcome, const char *why)
{
    char line[IT_LINE_MAX], *got;

    ck_assert(it_last_line("b.out", line, sizeof(line), "\"listener\":\"web-in\"", NULL));
    it_expect_json_str(line, "outcome", outcome);
    ck_assert_msg(strstr(line, why) != NULL, "%s", line);
    it_write_file("go", "now\n");
    it_wait_file_contains("tail.got", "got", 15000);
    got = it_read_file("tail.got", NULL);
    ck_assert_msg(got != NULL && strstr(got, " ConnectionResetError") != NULL, "the app %s",
                  got != NULL ? got : "never ended");
    free(got);
}

/* An app that does not read the tail while B drains after SIGTERM (B's timeouts as given):
 * the stream ends with a reset, logged as timeout with why in its reason; B exits 0 then,
 * and the app finds the reset when it reads. */
static void unread_tail_ends(const char *timeouts, const char *why)
{
    uint64_t t0;

    start_all("tail", tail_py, timeouts, NULL);
    upload();
    t0 = it_now_ms();
    ck_assert_int_eq(kill(sidecar_b->pid, SIGTERM), 0);
    ck_assert_int_eq(it_wait(sidecar_b, 9000), 0);
    fprintf(stderr,
            "tunnel_tail: B (%s) with an app that did not read exited %llu ms after "
            "SIGTERM\n",
            timeouts, (unsigned long long)(it_now_ms() - t0));
    expect_cut("timeout", why);
}

/* After its tunnel closed, the stream is bounded by timeouts.idle (1 s), and B's drain ends
 * with it, well before its 10 s deadline. */
START_TEST(test_tail_bounded_by_idle)
{
    unread_tail_ends("idle: 1s, drain: 10s", "after its tunnel closed");
}
END_TEST

/* The drain deadline (1 s, idle 30 s) ends it first, and B exits then. */
START_TEST(test_tail_cut_at_drain_deadline)
{
    unread_tail_ends("idle: 30s, drain: 1s", "drain deadline");
}
END_TEST

/* A new generation that revokes the caller (authorization.close_denied) while its stream
 * writes its tail after the tunnel closed: the stream ends at once, refused with the
 * revocation, as a live direct connection would. */
START_TEST(test_tail_ends_when_peer_revoked)
{
    char api[80], more[256];

    start_all("tail", tail_py, LONG, "idle_timeout: 1s");
    write_b(LONG, "authorization: {close_denied: true}\n");
    ck_assert(it_wait_stat(b_admin, "tollgate_generation", "", 2, 5000) >= 2);
    upload();
    ck_assert(it_wait_stat(a_admin, "tollgate_tunnels_closed_total", "", 1, 5000) >= 1);
    it_cert_serial("api.pem", api, sizeof(api));
    snprintf(more, sizeof(more),
             "authorization: {close_denied: true}\nrevocations: {serials: [\"%s\"]}\n", api);
    write_b(LONG, more);
    ck_assert_int_eq(it_wait_lines("b.out", 1, 5000, "\"listener\":\"web-in\"", NULL), 1);
    expect_cut("refused", "revoked");
}
END_TEST

/* ---- the paused app side --------------------------------------------------------------- */

/* The app behind B: sends until nothing more goes for 500 ms (at most 64 MiB: its caller does
 * not read, so B stops reading it), then closes with a reset (SO_LINGER 0). */
static const char flood_py[] =
    "import socket, struct, sys, time\n"
    "srv = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
    "srv.settimeout(20)\n"
    "print('listening', flush=True)\n"
    "s, _ = srv.accept()\n"
    "s.setblocking(False)\n"
    "sent, stalled, chunk = 0, None, b'x' * 65536\n"
    "while sent < 64 << 20:\n"
    "    try:\n"
    "        sent += s.send(chunk)\n"
    "        stalled = None\n"
    "    except BlockingIOError:\n"
    "        stalled = stalled or time.time()\n"
    "        if time.time() - stalled > 0.5:\n"
    "            break\n"
    "        time.sleep(0.01)\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
    "s.close()\n"
    "print('reset after', sent, flush=True)\n";

/* B has stopped reading the app (the caller reads nothing) when the app resets: B finds it
 * by probing within a second, not after timeouts.idle (30 s), logs the stream as an error
 * and resets it, so the caller sees a reset once it reads. */
START_TEST(test_paused_app_reset_found)
{
    char buf[16384];
    int fd, end;
    uint64_t t0;

    start_all("flood", flood_py, LONG, NULL);
    fd = it_connect(out_port, 10000);
    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, "go\n", 3));
    ck_assert_msg(it_wait_file_contains(app->out_path, "reset after", 20000),
                  "the app did not stall");
    t0 = it_now_ms();
    ck_assert_msg(
        it_wait_lines("b.out", 1, 3000, "\"outcome\":\"error\"", "connection reset", NULL) == 1,
        "B did not find the paused app's reset within 3 s");
    fprintf(stderr, "tunnel_tail: the paused app's reset found in %llu ms\n",
            (unsigned long long)(it_now_ms() - t0));
    while ((end = (int)recv(fd, buf, sizeof(buf), 0)) > 0)
        ;
    end = end < 0 ? -errno : 0;
    close(fd);
    ck_assert_msg(end == -ECONNRESET, "the caller's stream ended with %s, not a reset",
                  end == 0 ? "a clean EOF" : strerror(-end));
}
END_TEST

/* Two test cases, so ctest runs them side by side. */
Suite *tg_test_suite(void)
{
    Suite *s = IT_TEST_SUITE("tunnel_tail", "close", NULL, setup, it_teardown, 60,
                             test_tail_survives_goaway, test_tail_survives_idle_close,
                             test_tail_survives_sigterm);

    IT_TEST_CASE(s, "bounded", setup, it_teardown, 60, test_tail_bounded_by_idle,
                 test_tail_cut_at_drain_deadline, test_tail_ends_when_peer_revoked,
                 test_paused_app_reset_found);
    return s;
}

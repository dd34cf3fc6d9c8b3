/* Outbound tunnels: app connections through sidecar A's pool (tunnel: on | auto) as HTTP/2
 * CONNECT streams to sidecar B's inbound listener (tunnels: true), to `openssl s_server` and
 * to an HBONE-style server on Debian's python3-h2 (tests/integration/tunnel_server.py), an
 * HTTP/2 implementation independent of the nghttp2 tollgate uses. One test case per
 * behaviour, so ctest runs them side by side. */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PY "/usr/bin/python3"
#define SS "/usr/bin/ss"
#define ON "tunnel: \"on\""
#define WEB_PEER "\"peer_id\":\"" IT_WEB_ID "\""

static int echo_port, in_port, plain_port, b_admin, a_admin, out_port, out2_port;
static struct it_proc *sidecar_a, *sidecar_b;

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&in_port, &plain_port, &b_admin, &a_admin, &out_port, &out2_port);
}

/* B (web): web-in takes tunnels, plain-in does not, both to the echo app; more is B's own
 * top-level YAML (NULL: none), extra one more inbound listener (its name NULL: none). */
static void write_b(const char *more, struct it_listener extra)
{
    it_cfg_write("b.yaml",
                 &(struct it_cfg){.admin = b_admin,
                                  .workers = 1,
                                  .id = "web",
                                  .in = {{"web-in", in_port, echo_port, IT_API_ID, "tunnels: true"},
                                         {"plain-in", plain_port, echo_port, IT_API_ID, NULL},
                                         extra}},
                 "%s", more != NULL ? more : "");
}

static void start_b(const char *more, struct it_listener extra)
{
    write_b(more, extra);
    sidecar_b = it_sidecar_start("b", "b.yaml", b_admin, 0);
}

/* A (api), one worker (one pool), with the outbound listeners out (up to four) and pool, its
 * tunnel_pool flow-map text (NULL: the defaults). */
static void start_a(const char *pool, const struct it_listener *out, size_t n)
{
    struct it_cfg c = {.admin = a_admin, .workers = 1, .id = "api"};

    ck_assert(n <= 4);
    memcpy(c.out, out, n * sizeof(*out));
    if (pool != NULL)
        it_cfg_write("a.yaml", &c, "tunnel_pool: {%s}\n", pool);
    else
        it_cfg_write("a.yaml", &c, NULL);
    sidecar_a = it_sidecar_start("a", "a.yaml", a_admin, 0);
}

/* A's counter name for listener. */
static double a_stat(const char *name, const char *listener)
{
    char labels[96];

    snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
    return it_stat(a_admin, name, labels);
}

/* Polls A's counter until it is want (5 s). */
static void expect_a_stat(const char *name, const char *listener, double want)
{
    uint64_t end = it_now_ms() + 5000;
    double got;

    while ((got = a_stat(name, listener)) != want && it_now_ms() < end)
        it_sleep_ms(20);
    ck_assert_msg(got == want, "%s{listener=\"%s\"}: %g, want %g", name, listener, got, want);
}

/* Reads fd until its end, dropping what comes: 0 for a clean EOF, -errno for an error (a
 * reset: -ECONNRESET), -EAGAIN when nothing ended within the socket's timeout. */
static int read_to_end(int fd)
{
    char buf[16384];

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);

        if (n == 0)
            return 0;
        if (n < 0)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* One app connection to port: len bytes of pattern seed, a half-close, then the echo of every
 * byte and the echo's end (EOF). false with why in err (cap 160). */
static bool echo_one(int port, uint64_t seed, size_t len, char *err)
{
    static _Thread_local char buf[65536];
    int fd = it_connect(port, 10000), rc;
    size_t got, bad;

    if (fd < 0) {
        snprintf(err, 160, "connect: %s", strerror(-fd));
        return false;
    }
    ck_assert(len <= sizeof(buf));
    it_pattern(seed, 0, buf, len);
    if (!it_send_all(fd, buf, len) || shutdown(fd, SHUT_WR) < 0) {
        snprintf(err, 160, "stream %llu: send: %s", (unsigned long long)seed, strerror(errno));
        close(fd);
        return false;
    }
    got = it_recv_full(fd, buf, len);
    bad = it_pattern_check(seed, 0, buf, got);
    rc = got == len && bad == len ? it_recv_eof(fd) : 1;
    close(fd);
    if (got != len || bad != len || rc != 0)
        snprintf(err, 160, "stream %llu: %zu of %zu bytes echoed, first bad at %zu, end %d",
                 (unsigned long long)seed, got, len, bad, rc);
    return got == len && bad == len && rc == 0;
}

/* ---- 1. a thousand app connections over one tunnel ---------------------------------- */

#define CONNS 1000
#define CLIENTS 8

struct clients {
    atomic_int next, ok;
    uint64_t deadline;
    pthread_mutex_t mu;
    char first_err[160];
};

static void *client_body(void *arg)
{
    struct clients *cl = arg;
    char err[160];
    int i;

    while ((i = atomic_fetch_add(&cl->next, 1)) < CONNS && it_now_ms() < cl->deadline) {
        if (echo_one(out_port, (uint64_t)i + 1, 1000 + (size_t)(i % 7) * 777, err)) {
            atomic_fetch_add(&cl->ok, 1);
            continue;
        }
        pthread_mutex_lock(&cl->mu);
        if (cl->first_err[0] == '\0')
            snprintf(cl->first_err, sizeof(cl->first_err), "%s", err);
        pthread_mutex_unlock(&cl->mu);
    }
    return NULL;
}

/* 1,000 app connections, eight at a time, each a few KiB every byte of which comes back,
 * ride one tunnel: one tunnel opened, 1,000 streams, one handshake at B; A logs one line
 * per app connection with B's identity and the tunnel's TLS fields. */
START_TEST(test_thousand_connections_one_tunnel)
{
    struct clients cl = {.deadline = it_now_ms() + (UNDER_ASAN ? 40000 : 12000),
                         .mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[CLIENTS];
    uint64_t t0;

    start_b(NULL, (struct it_listener){0});
    start_a("connections_per_destination: 1",
            (struct it_listener[]){{"tun-out", out_port, in_port, IT_WEB_ID, ON}}, 1);
    t0 = it_now_ms();
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, client_body, &cl), 0);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "tunnel_out: %d app connections through one tunnel in %llu ms\n",
            atomic_load(&cl.ok), (unsigned long long)(it_now_ms() - t0));
    ck_assert_msg(atomic_load(&cl.ok) == CONNS, "%d of %d whole; first failure: %s",
                  atomic_load(&cl.ok), CONNS, cl.first_err);
    expect_a_stat("tollgate_tunnel_streams_total", "tun-out", CONNS);
    ck_assert(a_stat("tollgate_tunnels_opened_total", "tun-out") == 1);
    ck_assert(a_stat("tollgate_tunnels_active", "tun-out") == 1);
    ck_assert(a_stat("tollgate_tunnel_fallbacks_total", "tun-out") == 0);
    ck_assert(it_stat(b_admin, "tollgate_handshakes_total", "listener=\"web-in\"") == 1);
    ck_assert_int_eq(it_wait_lines("a.out", CONNS, 10000, "\"listener\":\"tun-out\"",
                                   "\"outcome\":\"ok\"", WEB_PEER, "\"tls_version\":\"TLSv1.3\"",
                                   "\"cipher\":\"TLS13-", "\"serial\":\"", NULL),
                     CONNS);
    ck_assert_int_eq(it_wait_lines("b.out", CONNS, 10000, "\"listener\":\"web-in\"",
                                   "\"outcome\":\"ok\"", IT_API_ID, NULL),
                     CONNS);
}
END_TEST

/* ---- 2. half-close both ways -------------------------------------------------------- */

/* A server app that speaks first: sends GREETING bytes (byte i is i % 251), half-closes,
 * then reads to the client's end and writes "got N SHA256HEX" into srvfirst.got. */
#define GREETING 100000
#define AFTER (256 * 1024)
static const char srvfirst_py[] =
    "import hashlib, socket, sys\n"
    "srv = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
    "srv.settimeout(20)\n"
    "print('listening', flush=True)\n"
    "s, _ = srv.accept()\n"
    "s.settimeout(20)\n"
    "s.sendall(bytes(i % 251 for i in range(100000)))\n"
    "s.shutdown(socket.SHUT_WR)\n"
    "h, n = hashlib.sha256(), 0\n"
    "while True:\n"
    "    b = s.recv(65536)\n"
    "    if not b:\n"
    "        break\n"
    "    h.update(b)\n"
    "    n += len(b)\n"
    "open('srvfirst.tmp', 'w').write('got %d %s\\n' % (n, h.hexdigest()))\n"
    "__import__('os').rename('srvfirst.tmp', 'srvfirst.got')\n"
    "s.close()\n";

/* The app half-closes first and still gets every byte echoed, then the echo's end; a server
 * app that sends, then half-closes first, gets every byte the client sends after that. */
START_TEST(test_half_close_both_ways)
{
    static char buf[AFTER];
    int srv_port, first_in, fd;
    char port[16], err[160], want[160], hex[65], line[IT_LINE_MAX];
    struct it_sha256 *h;
    size_t got;

    IT_FREE_PORTS(&srv_port, &first_in);
    it_write_file("srvfirst.py", "%s", srvfirst_py);
    snprintf(port, sizeof(port), "%d", srv_port);
    /* not it_wait_port: its probe would be the one connection the server takes */
    ck_assert(it_wait_file_contains(
        it_spawn("srvfirst", (const char *const[]){PY, "srvfirst.py", port, NULL}, IT_STDIN_NULL)
            ->out_path,
        "listening", 10000));
    start_b(NULL, (struct it_listener){"first-in", first_in, srv_port, IT_API_ID, "tunnels: true"});
    start_a(NULL,
            (struct it_listener[]){{"tun-out", out_port, in_port, IT_WEB_ID, ON},
                                   {"first-out", out2_port, first_in, IT_WEB_ID, ON}},
            2);

    /* the app half-closes first: a pause, so the echo comes after the END_STREAM */
    fd = it_connect(out_port, 10000);
    ck_assert_int_ge(fd, 0);
    it_pattern(7, 0, buf, 64 * 1024);
    ck_assert(it_send_all(fd, buf, 64 * 1024));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    it_sleep_ms(200);
    got = it_recv_full(fd, buf, 64 * 1024);
    ck_assert_uint_eq(got, 64 * 1024);
    ck_assert_uint_eq(it_pattern_check(7, 0, buf, got), got);
    ck_assert_int_eq(it_recv_eof(fd), 0);
    close(fd);
    ck_assert_msg(echo_one(out_port, 8, 1, err), "%s", err);

    /* the server half-closes first; the client reads to that end, then sends on */
    fd = it_connect(out2_port, 10000);
    ck_assert_int_ge(fd, 0);
    got = it_recv_full(fd, buf, GREETING + 1);
    ck_assert_uint_eq(got, GREETING); /* then EOF: the server's half-close came through */
    for (size_t i = 0; i < got; i++)
        ck_assert_int_eq((unsigned char)buf[i], i % 251);
    it_pattern(9, 0, buf, AFTER);
    ck_assert_msg(it_send_all(fd, buf, AFTER), "send after the server's half-close: %s",
                  strerror(errno));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    h = it_sha256_new();
    it_sha256_update(h, buf, AFTER);
    it_sha256_final(h, hex);
    snprintf(want, sizeof(want), "got %d %s", AFTER, hex);
    ck_assert_msg(it_wait_file_contains("srvfirst.got", want, 10000), "the server app did not %s",
                  want);
    ck_assert_int_eq(read_to_end(fd), 0);
    close(fd);
    it_log_line_ok("a.out", "\"listener\":\"first-out\"", line);
    ck_assert_int_eq(it_json_num(line, "bytes_received"), AFTER);
    ck_assert_int_eq(it_json_num(line, "bytes_sent"), GREETING);
    ck_assert_int_eq(
        it_count_lines("a.out", "\"listener\":\"tun-out\"", "\"outcome\":\"ok\"", NULL), 2);
}
END_TEST

/* An app that sends and never reads: its stream stalls (every window and buffer on the way
 * fills, A stops reading it) while three streams beside it on the same tunnel run on; once
 * it reads, every byte comes back. */
START_TEST(test_slow_reader_stalls_only_its_stream)
{
    static char buf[64 * 1024];
    struct it_streams *st;
    uint64_t sent = 0, got = 0, stalled_at = 0;
    int fd;

    start_b(NULL, (struct it_listener){0});
    start_a("connections_per_destination: 1",
            (struct it_listener[]){{"tun-out", out_port, in_port, IT_WEB_ID, ON}}, 1);
    st = it_streams_start(out_port, 3, 800);
    fd = it_connect(out_port, 10000);
    ck_assert_int_ge(fd, 0);
    /* until nothing more goes for 500 ms, at most 64 MiB */
    while (sent < 64u << 20) {
        ssize_t n;

        it_pattern(77, sent, buf, sizeof(buf));
        n = send(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            sent += (uint64_t)n;
            stalled_at = 0;
            continue;
        }
        ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "send: %s", strerror(errno));
        if (stalled_at == 0)
            stalled_at = it_now_ms();
        else if (it_now_ms() - stalled_at > 500)
            break;
        it_sleep_ms(10);
    }
    /* most of it sits in the kernel's socket buffers on the way (loopback autotuning) */
    fprintf(stderr,
            "tunnel_out: a stream that is not read stalled after %llu KiB; A's RSS %ld KiB\n",
            (unsigned long long)(sent >> 10), it_rss_kib(sidecar_a->pid));
    ck_assert_msg(sent < 64u << 20, "64 MiB went into a stream nobody reads");
    ck_assert_msg(UNDER_ASAN || it_rss_kib(sidecar_a->pid) < 32 * 1024,
                  "A holds %ld KiB for a stream nobody reads", it_rss_kib(sidecar_a->pid));
    it_streams_expect_progress(st, "three streams beside a stalled one");
    it_streams_expect_progress(st, "three streams beside a stalled one, again");
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    while (got < sent) {
        size_t want = sent - got < sizeof(buf) ? (size_t)(sent - got) : sizeof(buf);
        size_t n = it_recv_full(fd, buf, want);

        ck_assert_msg(n == want, "the stalled stream: %llu of %llu bytes back",
                      (unsigned long long)(got + n), (unsigned long long)sent);
        ck_assert_uint_eq(it_pattern_check(77, got, buf, n), n);
        got += n;
    }
    ck_assert_int_eq(it_recv_eof(fd), 0);
    close(fd);
    it_streams_stop(st);
    ck_assert(a_stat("tollgate_tunnels_opened_total", "tun-out") == 1);
}
END_TEST

/* ---- 3. a stream refused by B while others run -------------------------------------- */

/* B lets api hold three connections at a time: three streams run, a fourth is refused by B
 * with its reason while the three carry on whole over the same tunnel; A's line says
 * refused with B's reason, and an app of a `protocol: http` listener gets a 503 naming it. */
START_TEST(test_refused_stream_others_run)
{
    struct it_streams *st;
    char line[IT_LINE_MAX], req[] = "GET / HTTP/1.1\r\nHost: web\r\n\r\n", resp[2048];
    int fd;
    size_t got;

    start_b("rate_limits:\n"
            "  overrides:\n"
            "    - {principal: \"" IT_API_ID "\", max_concurrent: 3}\n",
            (struct it_listener){0});
    start_a(
        NULL,
        (struct it_listener[]){{"tun-out", out_port, in_port, IT_WEB_ID, ON},
                               {"http-out", out2_port, in_port, IT_WEB_ID, "protocol: http, " ON}},
        2);
    st = it_streams_start(out_port, 3, 300);
    it_streams_expect_progress(st, "three streams");

    fd = it_connect(out_port, 10000);
    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, "refused?\n", 9));
    ck_assert_msg(it_recv_eof(fd) != 1, "the fourth stream got bytes");
    close(fd);
    ck_assert_int_eq(it_wait_lines("a.out", 1, 5000, "\"listener\":\"tun-out\"",
                                   "\"outcome\":\"refused\"", NULL),
                     1);
    ck_assert(it_last_line("a.out", line, sizeof(line), "\"outcome\":\"refused\"", NULL));
    ck_assert_msg(strstr(line, "refused by the server's sidecar: 403 rate_limited") != NULL, "%s",
                  line);
    it_expect_json_str(line, "peer_id", IT_WEB_ID);

    fd = it_connect(out2_port, 10000);
    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, req, strlen(req)));
    got = it_recv_full(fd, resp, sizeof(resp) - 1);
    resp[got] = '\0';
    close(fd);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 503 ", 13) == 0 &&
                      strstr(resp, "\r\nX-Tollgate-Refusal: rate_limited\r\n") != NULL,
                  "http-out answered: %s", resp);

    it_streams_expect_progress(st, "three streams after the refusals");
    it_streams_expect_ok(st, "three streams after the refusals");
    it_streams_stop(st);
    ck_assert(a_stat("tollgate_tunnels_opened_total", "tun-out") == 1);
    ck_assert(a_stat("tollgate_tunnel_streams_refused_total", "tun-out") == 1);
    ck_assert(a_stat("tollgate_tunnel_streams_refused_total", "http-out") == 1);
    ck_assert_int_eq(
        it_wait_lines("a.out", 3, 5000, "\"listener\":\"tun-out\"", "\"outcome\":\"ok\"", NULL), 3);
}
END_TEST

/* ---- 4. the tunnel's TCP connection killed ------------------------------------------ */

#define KILLED 4

/* `ss -K` on A's end of its tunnels to B's port (the kernel resets the connection): whether
 * the kernel destroyed one (it needs CONFIG_INET_DIAG_DESTROY and CAP_NET_ADMIN). */
static bool kill_tunnel_socket(void)
{
    char filter[32], *out = NULL;
    bool killed;

    snprintf(filter, sizeof(filter), ":%d", in_port);
    killed = it_run((const char *const[]){SS, "-K", "-tn", "dport", "=", filter, NULL}, NULL, 5000,
                    &out, NULL) == 0 &&
             out != NULL && strstr(out, "ESTAB") != NULL;
    free(out);
    return killed;
}

/* A relay of the test's own between A and B (python3, a thread each way), NAME, on port. */
static const char relay_py[] =
    "import socket, sys, threading\n"
    "srv = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
    "print('listening', flush=True)\n"
    "def pipe(a, b):\n"
    "    try:\n"
    "        while (d := a.recv(65536)):\n"
    "            b.sendall(d)\n"
    "        b.shutdown(socket.SHUT_WR)\n"
    "    except OSError:\n"
    "        pass\n"
    "while True:\n"
    "    c, _ = srv.accept()\n"
    "    u = socket.create_connection(('127.0.0.1', int(sys.argv[2])))\n"
    "    for a, b in ((c, u), (u, c)):\n"
    "        threading.Thread(target=pipe, args=(a, b), daemon=True).start()\n";

static struct it_proc *relay_start(const char *name, int port)
{
    static char p[16], up[16];
    struct it_proc *r;

    snprintf(p, sizeof(p), "%d", port);
    snprintf(up, sizeof(up), "%d", in_port);
    it_write_file("relay.py", "%s", relay_py);
    r = it_spawn(name, (const char *const[]){PY, "relay.py", p, up, NULL}, IT_STDIN_NULL);
    ck_assert_msg(it_wait_file_contains(r->out_path, "listening", 10000), "%s did not start", name);
    return r;
}

/* Four streams mid-transfer when the tunnel's TCP connection dies: destroyed by `ss -K`
 * (the kernel resets it), or with relay, the test's relay between A and B killed by pid.
 * Each app connection ends with a reset, not a clean EOF, logged as an error; a new app
 * connection opens a new tunnel and goes through whole. */
static void killed_mid_transfer(bool relay)
{
    struct it_proc *r = NULL;
    int fd[KILLED], upstream = in_port;
    char buf[8192], err[160];

    start_b(NULL, (struct it_listener){0});
    if (relay) {
        upstream = it_free_port();
        r = relay_start("relay", upstream);
    }
    start_a(NULL, (struct it_listener[]){{"tun-out", out_port, upstream, IT_WEB_ID, ON}}, 1);
    for (int i = 0; i < KILLED; i++) {
        fd[i] = it_connect(out_port, 5000);
        ck_assert_int_ge(fd[i], 0);
        it_pattern((uint64_t)i, 0, buf, sizeof(buf));
        ck_assert(it_send_all(fd[i], buf, sizeof(buf)));
        ck_assert_uint_eq(it_recv_full(fd[i], buf, sizeof(buf)), sizeof(buf));
        ck_assert_uint_eq(it_pattern_check((uint64_t)i, 0, buf, sizeof(buf)), sizeof(buf));
        ck_assert(it_send_all(fd[i], buf, sizeof(buf))); /* in flight when the tunnel dies */
    }
    ck_assert(a_stat("tollgate_tunnels_opened_total", "tun-out") == 1);
    if (relay) {
        ck_assert_int_eq(kill(r->pid, SIGKILL), 0);
        ck_assert_int_eq(it_wait(r, 5000), 128 + SIGKILL);
    } else {
        ck_assert_msg(kill_tunnel_socket(), "ss -K destroyed no socket to port %d", in_port);
    }
    for (int i = 0; i < KILLED; i++) {
        int end = read_to_end(fd[i]);

        ck_assert_msg(end == -ECONNRESET, "stream %d ended with %s, not a reset", i,
                      end == 0 ? "a clean EOF" : strerror(-end));
        close(fd[i]);
    }
    ck_assert_int_eq(it_wait_lines("a.out", KILLED, 5000, "\"listener\":\"tun-out\"",
                                   "\"outcome\":\"error\"", "tunnel to", NULL),
                     KILLED);
    if (relay)
        relay_start("relay2", upstream);
    ck_assert_msg(echo_one(out_port, 99, 30000, err), "after the kill: %s", err);
    ck_assert(a_stat("tollgate_tunnels_opened_total", "tun-out") == 2);
    expect_a_stat("tollgate_tunnels_active", "tun-out", 1);
    ck_assert(it_wait_http(a_admin, "/ready", 200, 2000));
}

START_TEST(test_tunnel_killed_by_ss)
{
    if (geteuid() != 0 || access(SS, X_OK) != 0) {
        fprintf(stderr,
                "tunnel_out: skipped ss -K (it wants root and %s); "
                "killed_relay kills a relay instead\n",
                SS);
        return;
    }
    killed_mid_transfer(false);
}
END_TEST

START_TEST(test_tunnel_killed_relay)
{
    killed_mid_transfer(true);
}
END_TEST

/* B's new generation (a new limit) while four streams run through A's one tunnel: B says
 * GOAWAY, the four run on to their end whole (zero dropped, each logged ok), and a new app
 * connection goes over a new tunnel although the pool allows one a destination. */
START_TEST(test_server_new_generation_drains)
{
    static const char limit[] = "rate_limits:\n"
                                "  overrides:\n"
                                "    - {principal: \"" IT_API_ID "\", max_concurrent: %d}\n";
    struct it_streams *st;
    char more[256], err[160];

    snprintf(more, sizeof(more), limit, 50);
    start_b(more, (struct it_listener){0});
    start_a("connections_per_destination: 1",
            (struct it_listener[]){{"tun-out", out_port, in_port, IT_WEB_ID, ON}}, 1);
    st = it_streams_start(out_port, 4, 400);
    it_streams_expect_progress(st, "four streams");
    snprintf(more, sizeof(more), limit, 51);
    write_b(more, (struct it_listener){0});
    ck_assert(it_wait_stat(b_admin, "tollgate_generation", "", 2, 5000) >= 2);
    it_streams_expect_progress(st, "four streams after B's GOAWAY");
    ck_assert_msg(echo_one(out_port, 1, 20000, err), "a new stream after B's GOAWAY: %s", err);
    ck_assert(a_stat("tollgate_tunnels_opened_total", "tun-out") == 2);
    it_streams_expect_progress(st, "four streams beside the new tunnel");
    it_streams_stop(st);
    ck_assert_int_eq(
        it_wait_lines("a.out", 5, 5000, "\"listener\":\"tun-out\"", "\"outcome\":\"ok\"", NULL), 5);
    ck_assert_int_eq(it_count_lines("a.out", "\"outcome\":\"error\"", NULL), 0);
    ck_assert_int_eq(it_count_lines("b.out", "\"outcome\":\"error\"", NULL), 0);
}
END_TEST

/* ---- 5. fallback where no tunnel is offered ----------------------------------------- */

/* A line through port to s_server -rev: whether it came back reversed. */
static bool reversed(int port)
{
    static const char line[] = "no tunnel here\n", rev[] = "ereh lennut on\n";
    char buf[sizeof(line)] = "";
    int fd = it_connect(port, 5000);
    bool ok;

    if (fd < 0)
        return false;
    ok = it_send_all(fd, line, strlen(line)) && it_recv_full(fd, buf, strlen(rev)) == strlen(rev) &&
         memcmp(buf, rev, strlen(rev)) == 0;
    close(fd);
    return ok;
}

/* A plain mTLS server (openssl s_server, no ALPN h2) and a B listener without tunnels: true.
 * auto goes direct and counts each fallback; on refuses with tunnel_required. A dial that
 * found no h2 opened no tunnel: tollgate_tunnels_opened_total stays 0. */
START_TEST(test_fallback_without_h2)
{
    int srv_port, auto_b, on_b;
    struct it_argv a;
    char err[160];

    IT_FREE_PORTS(&srv_port, &auto_b, &on_b);
    it_openssl_argv(&a, "s_server", srv_port, "web", NULL);
    IT_ARGV_ADD(&a, "-Verify", "1", "-CAfile", "ca.pem", "-rev");
    ck_assert(
        it_wait_file_contains(it_spawn("srv", a.v, IT_STDIN_PIPE)->out_path, "ACCEPT", 10000));
    start_b(NULL, (struct it_listener){0});
    start_a(NULL,
            (struct it_listener[]){{"auto-srv", out_port, srv_port, IT_WEB_ID, "tunnel: auto"},
                                   {"on-srv", out2_port, srv_port, IT_WEB_ID, ON},
                                   {"auto-b", auto_b, plain_port, IT_WEB_ID, "tunnel: auto"},
                                   {"on-b", on_b, plain_port, IT_WEB_ID, ON}},
            4);

    ck_assert_msg(reversed(out_port), "auto to s_server: no answer");
    ck_assert_msg(reversed(out_port), "auto to s_server, remembered: no answer");
    expect_a_stat("tollgate_tunnel_fallbacks_total", "auto-srv", 2);
    ck_assert(a_stat("tollgate_tunnel_streams_total", "auto-srv") == 0);
    ck_assert_msg(!reversed(out2_port), "on to s_server went through");
    ck_assert_msg(echo_one(auto_b, 1, 5000, err), "auto to plain-in: %s", err);
    ck_assert_msg(echo_one(auto_b, 2, 5000, err), "auto to plain-in, remembered: %s", err);
    expect_a_stat("tollgate_tunnel_fallbacks_total", "auto-b", 2);
    ck_assert_msg(!echo_one(on_b, 3, 10, err), "on to plain-in went through");
    ck_assert_int_eq(
        it_wait_lines("a.out", 2, 5000, "\"outcome\":\"refused\"", "tunnel_required", NULL), 2);
    ck_assert_int_eq(it_count_lines("a.out", "\"listener\":\"on-srv\"", "tunnel_required", NULL),
                     1);
    ck_assert_int_eq(it_count_lines("a.out", "\"listener\":\"on-b\"", "tunnel_required", NULL), 1);
    ck_assert_int_eq(
        it_count_lines("a.out", "\"listener\":\"auto-srv\"", "\"outcome\":\"ok\"", WEB_PEER, NULL),
        2);
    for (int i = 0; i < 4; i++) {
        const char *l = (const char *[]){"auto-srv", "on-srv", "auto-b", "on-b"}[i];

        ck_assert_msg(a_stat("tollgate_tunnels_opened_total", l) == 0,
                      "%s: %g tunnels opened, though no server chose h2", l,
                      a_stat("tollgate_tunnels_opened_total", l));
        ck_assert(a_stat("tollgate_tunnels_closed_total", l) == 0);
        ck_assert(a_stat("tollgate_tunnels_active", l) == 0);
    }
}
END_TEST

/* ---- 6. an independent HTTP/2 server ------------------------------------------------ */

static struct it_proc *server_start(const char *mode, int port)
{
    static char script[PATH_MAX], p[16];

    snprintf(script, sizeof(script), "%s/tests/integration/tunnel_server.py",
             it_env("TG_SOURCE_DIR"));
    snprintf(p, sizeof(p), "%d", port);
    struct it_proc *srv =
        it_spawn("h2srv", (const char *const[]){PY, script, p, mode, NULL}, IT_STDIN_NULL);

    ck_assert_msg(it_wait_file_contains(srv->out_path, "listening", 10000),
                  "tunnel_server.py did not start");
    return srv;
}

/* An app connection to port that sends what and then closes with a reset (SO_LINGER 0). */
static void reset_after(int port, const char *what)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    int fd = it_connect(port, 5000);

    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, what, strlen(what)));
    it_sleep_ms(100);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
}

/* Six concurrent streams through A into the python3-h2 server, every byte echoed and
 * checked; the server sees A's identity and ALPN h2 on its one tunnel. Resets both ways
 * beside them: the server's RST_STREAM reaches its app as a reset, an app's reset reaches
 * the server as RST_STREAM, and the six run on. */
START_TEST(test_interop_h2_server)
{
    struct it_proc *srv;
    struct it_streams *st;
    int srv_port = it_free_port(), fd, end;

    srv = server_start("echo", srv_port);
    start_a(NULL, (struct it_listener[]){{"h2-out", out_port, srv_port, IT_WEB_ID, ON}}, 1);
    st = it_streams_start(out_port, 6, 600);
    it_streams_expect_progress(st, "six streams through python3-h2");
    fd = it_connect(out_port, 5000);
    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, "rst!", 4));
    end = read_to_end(fd);
    ck_assert_msg(end == -ECONNRESET, "the server's RST_STREAM reached the app as %s",
                  end == 0 ? "a clean EOF" : strerror(-end));
    close(fd);
    reset_after(out_port, "hello");
    ck_assert_msg(it_wait_file_contains(srv->out_path, "reset by the client: 8", 5000),
                  "the app's reset did not reach the server as RST_STREAM CANCEL");
    it_streams_expect_progress(st, "six streams after two resets beside them");
    ck_assert_uint_gt(it_streams_stop(st), 1024 * 1024);
    ck_assert(it_file_contains(srv->out_path, "tunnel 1 peer " IT_API_ID " alpn h2"));
    ck_assert(!it_file_contains(srv->out_path, "tunnel 2"));
    ck_assert(a_stat("tollgate_tunnel_streams_total", "h2-out") == 8);
    ck_assert_int_eq(it_wait_lines("a.out", 6, 5000, "\"listener\":\"h2-out\"",
                                   "\"outcome\":\"ok\"", WEB_PEER, NULL),
                     6);
}
END_TEST

/* The server breaks the protocol in mode once three streams carried bytes: A's tunnel ends,
 * each of its streams with a reset at the app; A stays ready and opens a new tunnel. */
static void server_breaks(const char *mode)
{
    struct it_proc *srv;
    int srv_port = it_free_port(), fd[3];
    char buf[4096], err[160];

    srv = server_start(mode, srv_port);
    start_a(NULL, (struct it_listener[]){{"h2-out", out_port, srv_port, IT_WEB_ID, ON}}, 1);
    for (int i = 0; i < 3; i++) {
        fd[i] = it_connect(out_port, 5000);
        ck_assert_int_ge(fd[i], 0);
        it_pattern((uint64_t)i, 0, buf, sizeof(buf));
        ck_assert(it_send_all(fd[i], buf, sizeof(buf)));
    }
    for (int i = 0; i < 3; i++) {
        int end = read_to_end(fd[i]);

        ck_assert_msg(end == -ECONNRESET, "%s: stream %d ended with %s, not a reset", mode, i,
                      end == 0 ? "a clean EOF" : strerror(-end));
        close(fd[i]);
    }
    ck_assert(it_wait_file_contains(srv->out_path, "sent a bad frame", 5000));
    ck_assert_int_eq(
        it_wait_lines("a.out", 3, 5000, "\"listener\":\"h2-out\"", "\"outcome\":\"error\"", NULL),
        3);
    ck_assert(it_wait_http(a_admin, "/ready", 200, 2000));
    ck_assert_msg(echo_one(out_port, 5, 20000, err), "%s: after the bad tunnel: %s", mode, err);
    ck_assert(a_stat("tollgate_tunnels_opened_total", "h2-out") == 2);
    ck_assert(it_file_contains(srv->out_path, "tunnel 2 peer " IT_API_ID));
}

START_TEST(test_interop_malformed_frame)
{
    server_breaks("malformed");
}
END_TEST

START_TEST(test_interop_unsolicited_answer)
{
    server_breaks("unsolicited");
}
END_TEST

/* An app connection to port whose first len bytes of pattern seed came back: its fd. */
static int echoing(int port, uint64_t seed, size_t len)
{
    char buf[4096];
    int fd = it_connect(port, 5000);

    ck_assert_int_ge(fd, 0);
    ck_assert(len <= sizeof(buf));
    it_pattern(seed, 0, buf, len);
    ck_assert(it_send_all(fd, buf, len));
    ck_assert_uint_eq(it_recv_full(fd, buf, len), len);
    ck_assert_uint_eq(it_pattern_check(seed, 0, buf, len), len);
    return fd;
}

/* fd (of echoing's seed, len bytes so far) half-closes and ends cleanly. */
static void echo_end(int fd)
{
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_int_eq(it_recv_eof(fd), 0);
    close(fd);
}

/* The server answers one stream of three, then says GOAWAY naming it the last it took: the
 * other two were never answered, so nothing of theirs went out, and they are tried again on
 * a new tunnel, although the pool allows one tunnel a destination (the one that said GOAWAY
 * takes no new stream, so it no longer counts), while the first runs on to its end. */
START_TEST(test_interop_goaway_retried)
{
    struct it_proc *srv;
    int srv_port = it_free_port(), fd[3];
    char buf[1000];

    srv = server_start("goaway", srv_port);
    start_a("connections_per_destination: 1",
            (struct it_listener[]){{"h2-out", out_port, srv_port, IT_WEB_ID, ON}}, 1);
    fd[0] = echoing(out_port, 10, 1000);
    for (int i = 1; i < 3; i++) { /* held by the server, then retried */
        fd[i] = it_connect(out_port, 5000);
        ck_assert_int_ge(fd[i], 0);
        it_pattern((uint64_t)(10 + i), 0, buf, sizeof(buf));
        ck_assert(it_send_all(fd[i], buf, sizeof(buf)));
    }
    for (int i = 1; i < 3; i++) {
        ck_assert_msg(it_recv_full(fd[i], buf, sizeof(buf)) == sizeof(buf),
                      "stream %d: no echo after the GOAWAY", i);
        ck_assert_uint_eq(it_pattern_check((uint64_t)(10 + i), 0, buf, sizeof(buf)), sizeof(buf));
    }
    ck_assert(it_file_contains(srv->out_path, "goaway after stream 1"));
    it_pattern(10, 1000, buf, sizeof(buf)); /* the first stream runs on after the GOAWAY */
    ck_assert(it_send_all(fd[0], buf, sizeof(buf)));
    ck_assert_uint_eq(it_recv_full(fd[0], buf, sizeof(buf)), sizeof(buf));
    ck_assert_uint_eq(it_pattern_check(10, 1000, buf, sizeof(buf)), sizeof(buf));
    for (int i = 0; i < 3; i++)
        echo_end(fd[i]);
    ck_assert(a_stat("tollgate_tunnel_retries_total", "h2-out") == 2);
    ck_assert(a_stat("tollgate_tunnels_opened_total", "h2-out") == 2);
    ck_assert_int_eq(
        it_wait_lines("a.out", 3, 5000, "\"listener\":\"h2-out\"", "\"outcome\":\"ok\"", NULL), 3);
}
END_TEST

/* The server allows two streams a tunnel: A opens no third on it (h2 would end the tunnel)
 * but a second tunnel; with both full, tunnel: on refuses the fifth and says why. */
START_TEST(test_interop_peer_stream_limit)
{
    struct it_proc *srv;
    int srv_port = it_free_port(), fd[5];
    char line[IT_LINE_MAX];

    srv = server_start("max2", srv_port);
    start_a(NULL, (struct it_listener[]){{"h2-out", out_port, srv_port, IT_WEB_ID, ON}}, 1);
    for (int i = 0; i < 4; i++)
        fd[i] = echoing(out_port, (uint64_t)i, 100);
    ck_assert(a_stat("tollgate_tunnels_opened_total", "h2-out") == 2);
    fd[4] = it_connect(out_port, 5000);
    ck_assert_int_ge(fd[4], 0);
    ck_assert(it_send_all(fd[4], "x", 1));
    ck_assert_int_ne(it_recv_eof(fd[4]), 1);
    close(fd[4]);
    ck_assert(it_wait_lines("a.out", 1, 5000, "\"outcome\":\"refused\"", NULL) == 1);
    ck_assert(it_last_line("a.out", line, sizeof(line), "\"outcome\":\"refused\"", NULL));
    ck_assert_msg(strstr(line, "tunnel_required: the pool's 2 tunnels") != NULL &&
                      strstr(line, "carry 2 streams each") != NULL,
                  "%s", line);
    for (int i = 0; i < 4; i++)
        echo_end(fd[i]);
    ck_assert_msg(!it_file_contains(srv->out_path, "tunnel 1:") &&
                      !it_file_contains(srv->out_path, "tunnel 2:"),
                  "the server ended a tunnel: A opened more streams than it allows");
}
END_TEST

/* ---- 7. the pool in /stats and /config_dump ----------------------------------------- */

/* The pool's limits are shown and hold: eight open app connections with seven streams a
 * tunnel take two tunnels; once they end, the idle timeout closes both. */
START_TEST(test_pool_shown_and_limits_hold)
{
    char *dump = NULL, *stats = NULL, err[160];
    int fd[8];

    start_b(NULL, (struct it_listener){0});
    start_a("streams_per_connection: 7, connections_per_destination: 3, idle_timeout: 1s",
            (struct it_listener[]){{"tun-out", out_port, in_port, IT_WEB_ID, ON}}, 1);
    ck_assert_int_eq(it_http(a_admin, "GET", "/config_dump", &dump), 200);
    ck_assert_msg(strstr(dump,
                         "\"tunnel_pool\":{\"streams_per_connection\":7,"
                         "\"connections_per_destination\":3,\"idle_timeout_ms\":1000}") != NULL,
                  "%s", dump);
    ck_assert_msg(strstr(dump, "\"tunnel\":\"on\"") != NULL, "%s", dump);
    free(dump);
    ck_assert_int_eq(it_http(a_admin, "GET", "/stats", &stats), 200);
    ck_assert(it_metric(stats, "tollgate_tunnel_pool_limit", "limit=\"streams_per_connection\"") ==
              7);
    ck_assert(it_metric(stats, "tollgate_tunnel_pool_limit",
                        "limit=\"connections_per_destination\"") == 3);
    ck_assert(it_metric(stats, "tollgate_tunnel_pool_limit", "limit=\"idle_timeout_seconds\"") ==
              1);
    ck_assert(it_metric(stats, "tollgate_tunnels_active", "listener=\"tun-out\"") == 0);
    it_promtool_clean("/stats", stats);
    free(stats);

    for (int i = 0; i < 8; i++) {
        fd[i] = it_connect(out_port, 5000);
        ck_assert_int_ge(fd[i], 0);
        ck_assert(it_send_all(fd[i], "x", 1));
        ck_assert_uint_eq(it_recv_full(fd[i], err, 1), 1);
    }
    ck_assert(a_stat("tollgate_tunnels_active", "tun-out") == 2);
    ck_assert(a_stat("tollgate_tunnels_opened_total", "tun-out") == 2);
    for (int i = 0; i < 8; i++)
        close(fd[i]);
    expect_a_stat("tollgate_tunnels_active", "tun-out", 0);
    ck_assert(a_stat("tollgate_tunnels_closed_total", "tun-out") == 2);
    ck_assert_msg(echo_one(out_port, 1, 100, err), "after the idle close: %s", err);
    ck_assert(a_stat("tollgate_tunnels_opened_total", "tun-out") == 3);
}
END_TEST

/* A test case per behaviour (two for the close kin), so ctest runs them side by side; each
 * takes a few seconds. */
Suite *tg_test_suite(void)
{
    Suite *s = IT_TEST_SUITE("tunnel_out", "thousand", NULL, setup, it_teardown, 90,
                             test_thousand_connections_one_tunnel);

    IT_TEST_CASE(s, "half_close", setup, it_teardown, 60, test_half_close_both_ways,
                 test_slow_reader_stalls_only_its_stream);
    IT_TEST_CASE(s, "refused", setup, it_teardown, 60, test_refused_stream_others_run,
                 test_server_new_generation_drains);
    IT_TEST_CASE(s, "killed", setup, it_teardown, 60, test_tunnel_killed_by_ss,
                 test_tunnel_killed_relay);
    IT_TEST_CASE(s, "fallback", setup, it_teardown, 60, test_fallback_without_h2);
    IT_TEST_CASE(s, "interop", setup, it_teardown, 60, test_interop_h2_server,
                 test_interop_peer_stream_limit);
    IT_TEST_CASE(s, "interop_bad", setup, it_teardown, 60, test_interop_malformed_frame,
                 test_interop_unsolicited_answer);
    IT_TEST_CASE(s, "interop_goaway", setup, it_teardown, 60, test_interop_goaway_retried);
    IT_TEST_CASE(s, "pool", setup, it_teardown, 60, test_pool_shown_and_limits_hold);
    return s;
}

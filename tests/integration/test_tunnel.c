/* Tunnels: app connections as HTTP/2 CONNECT streams over one mTLS connection, into
 * tollgate's inbound listener (tunnels: true), driven by an HBONE-style client written on
 * Debian's python3-h2 (tests/integration/tunnel_client.py), an HTTP/2 implementation
 * independent of the nghttp2 tollgate uses. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PY "/usr/bin/python3"

static int echo_port, in_port, plain_port, self_port, b_admin;
static struct it_proc *sidecar_b;

/* B's config; max_concurrent is the api caller's limit (a change makes a new generation). */
static void write_b(int max_concurrent)
{
    it_cfg_write(
        "b.yaml",
        &(struct it_cfg){.admin = b_admin,
                         .id = "web",
                         .in = {{"web-in", in_port, echo_port, IT_API_ID, "tunnels: true"},
                                {"plain-in", plain_port, echo_port, IT_API_ID},
                                {"self-in", self_port, echo_port, IT_WEB_ID, "tunnels: true"}}},
        "rate_limits:\n"
        "  overrides:\n"
        "    - {principal: \"" IT_API_ID "\", max_concurrent: %d}\n"
        "authorization:\n"
        "  rules:\n"
        "    - {name: no-web-here, action: deny, principals: [\"" IT_WEB_ID "\"], ports: [%d]}\n",
        max_concurrent, self_port);
}

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&in_port, &plain_port, &self_port, &b_admin);
    write_b(8);
    sidecar_b = it_sidecar_start("b", "b.yaml", b_admin, 0);
}

/* Starts the client against port in mode with up to three more arguments (NULL: none). */
static struct it_proc *client_start(int port, const char *mode, const char *a, const char *b,
                                    const char *c)
{
    static char script[PATH_MAX], p[16], authority[32];

    snprintf(script, sizeof(script), "%s/tests/integration/tunnel_client.py",
             it_env("TG_SOURCE_DIR"));
    snprintf(p, sizeof(p), "%d", port);
    snprintf(authority, sizeof(authority), "127.0.0.1:%d", echo_port);
    const char *argv[] = {PY, script, p, authority, mode, a, b, c, NULL};

    return it_spawn("client", argv, IT_STDIN_NULL);
}

/* Waits (70 s at most) for the client to end; its output into out (cap bytes). Its status. */
static int client_end(struct it_proc *cl, char *out, size_t cap)
{
    int st = it_wait(cl, 70000);
    char *o = it_read_file(cl->out_path, NULL), *e = it_read_file(cl->err_path, NULL);

    snprintf(out, cap, "%s%s", o != NULL ? o : "", e != NULL ? e : "");
    free(o);
    free(e);
    return st;
}

/* Runs the client in mode (one more argument a, or NULL) to its end: it must print OK. */
static void client_ok(int port, const char *mode, const char *a)
{
    char out[8192];
    int st = client_end(client_start(port, mode, a, NULL, NULL), out, sizeof(out));

    ck_assert_msg(st == 0 && strstr(out, "OK") != NULL, "client %s: status %d: %s", mode, st, out);
}

/* The streams mode: n streams of bytes each, and the refusals when refused_too. */
static int client(int port, int streams, int bytes, bool refused_too, char *out, size_t cap)
{
    char n[16], b[16];

    snprintf(n, sizeof(n), "%d", streams);
    snprintf(b, sizeof(b), "%d", bytes);
    return client_end(client_start(port, "streams", n, b, refused_too ? "1" : "0"), out, cap);
}

/* Eight streams of 200 KiB each (several windows' worth, so flow control is exercised both
 * ways) over one tunnel, every byte checked; while they run a ninth is refused by the
 * caller's max_concurrent with 403 and its reason, and a GET with 405, the tunnel staying
 * up; each stream half-closes and the app's half-close comes back as END_STREAM; then the
 * limit is free again for a new stream on the same tunnel. One access-log line per stream,
 * with the tunnel's identity. */
START_TEST(test_tunnel_streams_interop)
{
    char out[8192], line[IT_LINE_MAX];
    int st = client(in_port, 8, 200 * 1024, true, out, sizeof(out));

    ck_assert_msg(st == 0 && strstr(out, "OK") != NULL, "client: status %d: %s", st, out);
    ck_assert_int_eq(it_wait_lines("b.out", 9, 5000, "\"outcome\":\"ok\"", IT_API_ID, NULL), 9);
    ck_assert(it_last_line("b.out", line, sizeof(line), "\"outcome\":\"refused\"", NULL));
    it_expect_json_str(line, "peer_id", IT_API_ID);
    ck_assert_msg(strstr(line, "rate_limited") != NULL, "%s", line);
    ck_assert(it_last_line("b.out", line, sizeof(line), "\"outcome\":\"ok\"", NULL));
    it_expect_json_str(line, "tls_version", "TLSv1.3");
    ck_assert_int_eq(it_json_num(line, "bytes_received"), 4);
    ck_assert_int_eq(it_json_num(line, "bytes_sent"), 4);
}
END_TEST

/* A listener without tunnels: true does not choose h2: the client's ALPN check fails, and
 * direct mTLS on the tunnel port still works beside tunnels. /config_dump says which
 * listeners take tunnels. */
START_TEST(test_tunnel_off_and_direct_beside)
{
    char out[8192], *dump = NULL;
    int st = client(plain_port, 1, 10, false, out, sizeof(out));

    ck_assert_msg(st != 0 && strstr(out, "ALPN") != NULL, "client: status %d: %s", st, out);
    ck_assert_msg(it_s_client_echo(in_port, "api"), "direct mTLS beside tunnels");
    ck_assert_int_eq(it_http(b_admin, "GET", "/config_dump", &dump), 200);
    ck_assert_msg(strstr(dump, "\"name\":\"web-in\"") != NULL &&
                      strstr(strstr(dump, "\"name\":\"web-in\""), "\"tunnels\":true") != NULL &&
                      strstr(strstr(dump, "\"name\":\"plain-in\""), "\"tunnels\"") ==
                          strstr(strstr(dump, "\"name\":\"self-in\""), "\"tunnels\""),
                  "%s", dump);
    free(dump);
}
END_TEST

/* Streams the rules deny get 403 with the rule's reason, each logged as refused; the tunnel
 * stays up. */
START_TEST(test_tunnel_denied_streams_tunnel_stays)
{
    char line[IT_LINE_MAX];

    client_ok(self_port, "denied", NULL);
    ck_assert_int_eq(it_wait_lines("b.out", 2, 5000, "\"outcome\":\"refused\"", IT_WEB_ID, NULL),
                     2);
    ck_assert(it_last_line("b.out", line, sizeof(line), "\"outcome\":\"refused\"", NULL));
    ck_assert_msg(strstr(line, "no-web-here") != NULL, "%s", line);
}
END_TEST

/* A peer that opens one stream over the 100 allowed gets REFUSED_STREAM for that one and
 * keeps its tunnel; one that sends a malformed frame gets GOAWAY PROTOCOL_ERROR; meanwhile
 * the streams of another tunnel carry every byte. */
START_TEST(test_tunnel_abuse_refused_others_unharmed)
{
    char other[16];

    snprintf(other, sizeof(other), "%d", self_port);
    client_ok(in_port, "abuse", other);
    ck_assert_int_eq(it_wait_lines("b.out", 3, 5000, "\"outcome\":\"ok\"", IT_API_ID, NULL), 3);
}
END_TEST

/* A new generation while streams run: GOAWAY, the streams end whole (zero dropped), and a
 * new stream goes over a new tunnel made under the new generation. */
START_TEST(test_tunnel_new_generation_drains_with_goaway)
{
    struct it_proc *cl = client_start(in_port, "drain", NULL, NULL, NULL);
    char out[8192];
    int st;

    ck_assert_msg(it_wait_file_contains("ready", "ready", 20000),
                  "the client's streams did not start");
    write_b(9); /* a new limit: a new generation */
    st = client_end(cl, out, sizeof(out));
    ck_assert_msg(st == 0 && strstr(out, "OK") != NULL, "client: status %d: %s", st, out);
    ck_assert_int_eq(it_count_lines("b.out", "\"outcome\":\"ok\"", IT_API_ID, NULL), 5);
    ck_assert_int_eq(it_count_lines("b.out", "\"outcome\":\"error\"", NULL), 0);
}
END_TEST

/* SIGTERM while streams run: GOAWAY, the streams end whole, then the sidecar exits 0. */
START_TEST(test_tunnel_sigterm_drains_with_goaway)
{
    struct it_proc *cl = client_start(in_port, "drain", "last", NULL, NULL);
    char out[8192];
    int st;

    ck_assert_msg(it_wait_file_contains("ready", "ready", 20000),
                  "the client's streams did not start");
    kill(sidecar_b->pid, SIGTERM);
    st = client_end(cl, out, sizeof(out));
    ck_assert_msg(st == 0 && strstr(out, "OK") != NULL, "client: status %d: %s", st, out);
    ck_assert_int_eq(it_wait(sidecar_b, 10000), 0);
    ck_assert_int_eq(it_count_lines("b.out", "\"outcome\":\"ok\"", IT_API_ID, NULL), 4);
}
END_TEST

/* The tunnel's TCP connection reset mid-transfer: every stream on it ends as an error, its
 * app connection closed, and logged; a new tunnel carries a new stream whole. */
START_TEST(test_tunnel_killed_mid_transfer)
{
    client_ok(in_port, "kill", NULL);
    ck_assert_int_eq(
        it_wait_lines("b.out", 5, 5000, "\"outcome\":\"error\"", "tunnel closed", NULL), 5);
    ck_assert_int_eq(it_wait_lines("b.out", 1, 5000, "\"outcome\":\"ok\"", NULL), 1);
}
END_TEST

/* A stream is an app connection to the listener's limits and deadlines, and to the
 * caller's bytes_per_second, too: with
 * max_connections 2, a third stream is refused (listener_limit) while two are open; a
 * stream idle for the idle timeout (2 s) is reset alone, logged as a timeout, while the
 * other goes on echoing on the same tunnel. */
START_TEST(test_tunnel_stream_limits_and_idle)
{
    int port, admin;
    char line[IT_LINE_MAX], out[8192];

    IT_FREE_PORTS(&port, &admin);
    struct it_cfg b2 = it_cfg_of(admin, "web", 1, "idle: 2s");

    b2.in[0] = (struct it_listener){"capped-in", port, echo_port, IT_API_ID,
                                    "tunnels: true, limits: {max_connections: 2}"};
    it_cfg_write("b2.yaml", &b2, "rate_limits:\n  default: {bytes_per_second: 256KiB}\n");
    it_sidecar_start("b2", "b2.yaml", admin, 0);
    client_ok(port, "deadlines", "2");
    /* the caller's bytes_per_second paces its streams: 2 x 400 KiB through a 256 KiB/s
     * bucket wait for tokens, and arrive whole */
    ck_assert_int_eq(client(port, 2, 400 * 1024, false, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "OK") != NULL, "%s", out);
    ck_assert_msg(it_stat(admin, "tollgate_throttled_total", "listener=\"capped-in\"") > 0,
                  "no stream of B2 waited for its bytes_per_second");
    ck_assert(it_last_line("b2.out", line, sizeof(line), "\"outcome\":\"timeout\"", NULL));
    ck_assert_msg(strstr(line, "idle for") != NULL, "%s", line);
    ck_assert_int_eq(
        it_wait_lines("b2.out", 1, 5000, "\"outcome\":\"refused\"", "listener_limit", NULL), 1);
    /* the busy stream, then the two paced ones */
    ck_assert_int_eq(it_wait_lines("b2.out", 3, 5000, "\"outcome\":\"ok\"", NULL), 3);
}
END_TEST

/* Two test cases, so ctest runs them side by side: streams and refusals, then the ways a
 * tunnel ends. */
Suite *tg_test_suite(void)
{
    Suite *s = IT_TEST_SUITE("tunnel", "streams", NULL, setup, it_teardown, 90,
                             test_tunnel_streams_interop, test_tunnel_off_and_direct_beside,
                             test_tunnel_abuse_refused_others_unharmed,
                             test_tunnel_denied_streams_tunnel_stays);

    IT_TEST_CASE(s, "ends", setup, it_teardown, 90, test_tunnel_new_generation_drains_with_goaway,
                 test_tunnel_killed_mid_transfer, test_tunnel_sigterm_drains_with_goaway,
                 test_tunnel_stream_limits_and_idle);
    return s;
}

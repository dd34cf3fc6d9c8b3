/* The tunnel keys in a running sidecar: /config_dump shows each outbound listener's mode, the
 * mesh destinations' own modes and tunnel_pool; a reload changes a destination's mode live,
 * refuses (and logs) a change to a listener's mode or to tunnel_pool, and refuses a bad mode
 * naming it, keeping what it had; a listener's mode reaches the data path (one connection
 * each: the keys, not the pool, whose own tests are test_tunnel's); and a mesh
 * destination's own mode wins over its listener's for captured connections, on loopback in
 * a network namespace of the test's own. */
#include "harness.h"

#include <jansson.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IP "/usr/sbin/ip"
#define IPTABLES "/usr/sbin/iptables"
#define ON "tunnel: \"on\""

static struct it_proc *b;
static int out_port, fixed_port, admin;

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    IT_FREE_PORTS(&out_port, &fixed_port, &admin);
}

/* B's config: a transparent outbound listener with tunnel: mode, a fixed one without the key,
 * one mesh destination with dest_mode, and tunnel_pool's streams_per_connection. */
static void write_b(const char *mode, const char *dest_mode, int streams)
{
    char cap_more[64];

    snprintf(cap_more, sizeof(cap_more), "transparent: true, tunnel: %s", mode);
    it_cfg_write("b.yaml",
                 &(struct it_cfg){.admin = admin,
                                  .workers = 1,
                                  .id = "web",
                                  .out = {{"cap", out_port, 0, NULL, cap_more},
                                          {"fixed", fixed_port, 9, IT_API_ID, NULL}}},
                 "mesh:\n"
                 "  destinations:\n"
                 "    - {address: 10.0.0.0/8, expect: [\"" IT_API_ID "\"]}\n"
                 "    - {address: 10.1.2.3, port: 5432, expect: [\"" IT_API_ID "\"], tunnel: %s}\n"
                 "tunnel_pool: {streams_per_connection: %d}\n",
                 dest_mode, streams);
}

/* /config_dump, parsed. */
static json_t *config_dump(void)
{
    char *body = NULL;
    json_error_t je;
    json_t *j;

    ck_assert_int_eq(it_http(admin, "GET", "/config_dump", &body), 200);
    j = json_loads(body, 0, &je);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", je.text, body);
    free(body);
    return j;
}

/* The modes the dump shows, as one line: "cap=auto fixed=off dest=on streams=50". */
static void modes(char *dst, size_t cap)
{
    json_t *j = config_dump(), *ls = json_object_get(j, "listeners");
    json_t *set = json_object_get(json_object_get(j, "mesh"), "tunnel");
    json_t *pool = json_object_get(j, "tunnel_pool");

    ck_assert_uint_eq(json_array_size(ls), 2);
    ck_assert_uint_eq(json_array_size(set), 1); /* 10.0.0.0/8 has no mode of its own */
    snprintf(dst, cap, "cap=%s fixed=%s dest=%s streams=%lld",
             json_string_value(json_object_get(json_array_get(ls, 0), "tunnel")),
             json_string_value(json_object_get(json_array_get(ls, 1), "tunnel")),
             json_string_value(json_object_get(json_array_get(set, 0), "tunnel")),
             (long long)json_integer_value(json_object_get(pool, "streams_per_connection")));
    json_decref(j);
}

/* Polls the dump until it shows want (a reload is applied on the control thread). */
static bool wait_modes(const char *want, int timeout_ms)
{
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;
    char got[128] = "";

    do {
        modes(got, sizeof(got));
        if (strcmp(got, want) == 0)
            return true;
        it_sleep_ms(50);
    } while (it_now_ms() < end);
    ck_abort_msg("config_dump: got \"%s\", want \"%s\"", got, want);
    return false;
}

START_TEST(test_tunnel_modes_shown_and_reloaded)
{
    char got[128];

    write_b("auto", "on", 50);
    b = it_sidecar_start("b", "b.yaml", admin, 0);
    modes(got, sizeof(got));
    ck_assert_str_eq(got, "cap=auto fixed=off dest=on streams=50");

    /* a destination's mode changes with the mesh table */
    write_b("auto", "off", 50);
    wait_modes("cap=auto fixed=off dest=off streams=50", 5000);

    /* a listener's mode and tunnel_pool need a restart: refused, named, nothing changes */
    write_b("\"on\"", "off", 50);
    ck_assert_msg(it_wait_file_contains("b.err", "config reload refused: outbound changed", 5000),
                  "a listener's new tunnel mode was not refused");
    write_b("auto", "off", 7);
    ck_assert_msg(
        it_wait_file_contains("b.err", "config reload refused: tunnel_pool changed", 5000),
        "a new tunnel_pool was not refused");
    /* a mode that is not one: refused with the key and the value */
    write_b("auto", "always", 50);
    ck_assert_msg(it_wait_file_contains("b.err", "\"always\" is not a tunnel mode", 5000),
                  "a bad tunnel mode was not refused");
    ck_assert(it_file_contains("b.err", "mesh.destinations[1].tunnel"));
    modes(got, sizeof(got));
    ck_assert_str_eq(got, "cap=auto fixed=off dest=off streams=50");
    ck_assert_int_eq(it_stop(b, 5000), 0);
}
END_TEST

/* A listener's key reaches the data path: auto rides B's tunnels, a listener without the key
 * goes direct to the same port, and on is refused where B offers no tunnel. */
START_TEST(test_listener_modes_take_effect)
{
    struct it_proc *a;
    int echo_port = 0, tun_in, plain_in, a_admin, auto_out, off_out, on_out; /* 0: pick one */
    char err[256] = "";

    it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&tun_in, &plain_in, &a_admin, &auto_out, &off_out, &on_out);
    it_cfg_write("b.yaml",
                 &(struct it_cfg){.admin = admin,
                                  .workers = 1,
                                  .id = "web",
                                  .in = {{"tun-in", tun_in, echo_port, IT_API_ID, "tunnels: true"},
                                         {"plain-in", plain_in, echo_port, IT_API_ID, NULL}}},
                 NULL);
    it_cfg_write(
        "a.yaml",
        &(struct it_cfg){.admin = a_admin,
                         .workers = 1,
                         .id = "api",
                         .out = {{"auto-out", auto_out, tun_in, IT_WEB_ID, "tunnel: auto"},
                                 {"off-out", off_out, tun_in, IT_WEB_ID, NULL},
                                 {"on-out", on_out, plain_in, IT_WEB_ID, "tunnel: \"on\""}}},
        NULL);
    b = it_sidecar_start("b", "b.yaml", admin, 0);
    a = it_sidecar_start("a", "a.yaml", a_admin, 0);
    ck_assert_msg(it_round_trip(auto_out, "over a tunnel\n", err) > 0, "auto: %s", err);
    ck_assert_msg(it_round_trip(off_out, "direct\n", err) > 0, "off: %s", err);
    ck_assert_msg(it_round_trip(on_out, "nowhere\n", err) < 0, "on went through without a tunnel");
    ck_assert(it_stat(a_admin, "tollgate_tunnel_streams_total", "listener=\"auto-out\"") == 1);
    ck_assert(it_stat(a_admin, "tollgate_tunnel_streams_total", "listener=\"off-out\"") == 0);
    ck_assert(it_stat(a_admin, "tollgate_tunnel_streams_total", "listener=\"on-out\"") == 0);
    ck_assert_msg(it_wait_file_contains("a.out", "tunnel_required", 5000),
                  "no tunnel_required refusal in A's access log");
    ck_assert_int_eq(it_stop(a, 5000), 0);
    ck_assert_int_eq(it_stop(b, 5000), 0); /* the echo server: it_teardown */
}
END_TEST

/* ---- a destination's own mode, on loopback ------------------------------------------ */

/* Runs the NULL-terminated command; whether it exited 0. */
static bool run_ok(const char *const *argv)
{
    char *err = NULL;
    int st = it_run(argv, NULL, 10000, NULL, &err);

    if (st != 0)
        fprintf(stderr, "tunnelcfg: %s: status %d: %s\n", argv[0], st, err != NULL ? err : "");
    free(err);
    return st == 0;
}

/* This test process and its children move to a network namespace of their own (loopback
 * up), where connections from 127.0.0.3 are redirected to port on and those from 127.0.0.4
 * to port off, as `tollgate init-iptables` captures an app's: a transparent listener then
 * reads a real original destination on loopback. false when that cannot be (not root, no
 * iptables), said on stderr. */
static bool capture_netns(int on, int off)
{
    char p_on[16], p_off[16];

    if (geteuid() != 0 || access(IPTABLES, X_OK) != 0 || unshare(CLONE_NEWNET) != 0) {
        fprintf(stderr,
                "tunnelcfg: skipped the precedence test: it wants root, %s and a "
                "network namespace of its own\n",
                IPTABLES);
        return false;
    }
    snprintf(p_on, sizeof(p_on), "%d", on);
    snprintf(p_off, sizeof(p_off), "%d", off);
    return run_ok((const char *const[]){IP, "link", "set", "lo", "up", NULL}) &&
           run_ok((const char *const[]){IPTABLES, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-s",
                                        "127.0.0.3", "-j", "REDIRECT", "--to-ports", p_on, NULL}) &&
           run_ok((const char *const[]){IPTABLES, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-s",
                                        "127.0.0.4", "-j", "REDIRECT", "--to-ports", p_off, NULL});
}

/* An app at src to 127.0.0.1:port: a line, its echo. */
static bool echo_from(const char *src, int port)
{
    static const char line[] = "which way?\n";
    char buf[sizeof(line)] = "";
    int fd = it_connect_from(src, port, 5000);
    bool ok;

    if (fd < 0)
        return false;
    ok = it_send_all(fd, line, strlen(line)) &&
         it_recv_full(fd, buf, strlen(line)) == strlen(line) &&
         memcmp(buf, line, strlen(line)) == 0;
    close(fd);
    return ok;
}

/* A mesh destination's own tunnel: wins over its outbound listener's, both ways, for real
 * captured connections (SO_ORIGINAL_DST) in a namespace of the test's own: through a
 * listener `tunnel: on`, a destination `off` goes direct (a handshake on B per connection,
 * no stream); through a listener `off`, a destination `on` rides one tunnel (one handshake
 * on B for two connections, two streams). */
START_TEST(test_destination_mode_wins)
{
    struct it_proc *a;
    int echo_port = 0, in_off, in_on, a_admin, cap_on, cap_off; /* 0: pick one */
    const char *lon = "listener=\"cap-on\"", *loff = "listener=\"cap-off\"";
    struct it_cfg ac;

    IT_FREE_PORTS(&in_off, &in_on, &a_admin, &cap_on, &cap_off);
    if (!capture_netns(cap_on, cap_off))
        return;
    it_echo_start("echo", &echo_port);
    ac = it_cfg_of(a_admin, "api", 1, NULL);
    it_cfg_write("b.yaml",
                 &(struct it_cfg){.admin = admin,
                                  .workers = 1,
                                  .id = "web",
                                  .in = {{"in-off", in_off, echo_port, IT_API_ID, "tunnels: true"},
                                         {"in-on", in_on, echo_port, IT_API_ID, "tunnels: true"}}},
                 NULL);
    ac.out[0] = (struct it_listener){"cap-on", cap_on, 0, NULL, "transparent: true, " ON};
    ac.out[1] = (struct it_listener){"cap-off", cap_off, 0, NULL, "transparent: true, tunnel: off"};
    it_cfg_write("a.yaml", &ac,
                 "mesh:\n"
                 "  outside: refuse\n"
                 "  destinations:\n"
                 "    - {address: 127.0.0.1, port: %d, expect: [\"" IT_WEB_ID "\"], tunnel: off}\n"
                 "    - {address: 127.0.0.1, port: %d, expect: [\"" IT_WEB_ID "\"], " ON "}\n",
                 in_off, in_on);
    b = it_sidecar_start("b", "b.yaml", admin, 0);
    a = it_sidecar_start("a", "a.yaml", a_admin, 0);

    for (int i = 0; i < 2; i++) {
        ck_assert_msg(echo_from("127.0.0.3", in_off), "listener on, destination off: no echo");
        ck_assert_msg(echo_from("127.0.0.4", in_on), "listener off, destination on: no echo");
    }
    ck_assert(it_stat(a_admin, "tollgate_tunnel_streams_total", lon) == 0);
    ck_assert(it_stat(a_admin, "tollgate_tunnels_opened_total", lon) == 0);
    ck_assert(it_stat(a_admin, "tollgate_tunnel_fallbacks_total", lon) == 0);
    ck_assert(it_stat(admin, "tollgate_handshakes_total", "listener=\"in-off\"") == 2);
    ck_assert(it_stat(a_admin, "tollgate_tunnel_streams_total", loff) == 2);
    ck_assert(it_stat(a_admin, "tollgate_tunnels_opened_total", loff) == 1);
    ck_assert(it_stat(admin, "tollgate_handshakes_total", "listener=\"in-on\"") == 1);
    /* B logs each app connection, with A's identity, whichever way it came */
    ck_assert_int_eq(it_wait_lines("b.out", 2, 5000, "\"listener\":\"in-off\"", IT_API_ID,
                                   "\"outcome\":\"ok\"", NULL),
                     2);
    ck_assert_int_eq(it_wait_lines("b.out", 2, 5000, "\"listener\":\"in-on\"", IT_API_ID,
                                   "\"outcome\":\"ok\"", NULL),
                     2);
    ck_assert_int_eq(
        it_wait_lines("a.out", 2, 5000, "\"listener\":\"cap-on\"", "\"outcome\":\"ok\"", NULL), 2);
    ck_assert_int_eq(it_stop(a, 5000), 0);
    ck_assert_int_eq(it_stop(b, 5000), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s = IT_TEST_SUITE("tunnelcfg", "tunnelcfg", NULL, setup, it_teardown, 60,
                             test_tunnel_modes_shown_and_reloaded, test_listener_modes_take_effect);

    IT_TEST_CASE(s, "precedence", setup, it_teardown, 60, test_destination_mode_wins);
    return s;
}

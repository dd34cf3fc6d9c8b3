/* The tunnel keys in a running sidecar: /config_dump shows each outbound listener's mode, the
 * mesh destinations' own modes and tunnel_pool; a reload changes a destination's mode live,
 * refuses (and logs) a change to a listener's mode or to tunnel_pool, and refuses a bad mode
 * naming it, keeping what it had; and a listener's mode reaches the data path (one
 * connection each: the keys, not the pool, whose own tests are test_tunnel's). */
#include "harness.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("tunnelcfg", "tunnelcfg", NULL, setup, it_teardown, 60,
                         test_tunnel_modes_shown_and_reloaded, test_listener_modes_take_effect);
}

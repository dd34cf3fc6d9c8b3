/* cp.yaml's front door (limits:, timeouts:): defaults, values, and a clear error for each
 * wrong one. Pure: tg_cp_config_parse on text. */
#include <check.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_config.h"

static const char base[] = "trust_domain: mesh.local\n"
                           "server: {cert: cp.pem, key: cp.key}\n"
                           "ca: {cert: ca.pem, key: ca.key}\n";

/* cp.yaml = base + extra: 0 with *out, or the error. */
static int parse(const char *extra, struct tg_cp_config **out, char *err)
{
    char text[2048];

    snprintf(text, sizeof(text), "%s%s", base, extra);
    return tg_cp_config_parse(text, strlen(text), "cp.yaml", out, err);
}

START_TEST(test_cp_config_front_door_defaults)
{
    struct tg_cp_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(parse("", &c, err) == 0, "%s", err);
    ck_assert_uint_eq(c->limits.max_connections, 10000);
    ck_assert_uint_eq(c->limits.max_unauthenticated, 512);
    ck_assert_uint_eq(c->limits.max_per_address, 16);
    ck_assert_uint_eq(c->limits.handshake_ms, 5000);
    ck_assert_uint_eq(c->limits.hello_ms, 5000);
    tg_cp_config_free(c);
}
END_TEST

START_TEST(test_cp_config_front_door_values)
{
    struct tg_cp_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(parse("limits: {max_connections: 500, max_unauthenticated: 100,\n"
                        "         max_unauthenticated_per_address: 4}\n"
                        "timeouts: {handshake: 2s, hello: 1500ms}\n",
                        &c, err) == 0,
                  "%s", err);
    ck_assert_uint_eq(c->limits.max_connections, 500);
    ck_assert_uint_eq(c->limits.max_unauthenticated, 100);
    ck_assert_uint_eq(c->limits.max_per_address, 4);
    ck_assert_uint_eq(c->limits.handshake_ms, 2000);
    ck_assert_uint_eq(c->limits.hello_ms, 1500);
    tg_cp_config_free(c);

    /* a default never exceeds what is set above it */
    ck_assert_msg(parse("limits: {max_connections: 10}\n", &c, err) == 0, "%s", err);
    ck_assert_uint_eq(c->limits.max_unauthenticated, 10);
    ck_assert_uint_eq(c->limits.max_per_address, 10);
    tg_cp_config_free(c);
}
END_TEST

static const struct {
    const char *extra, *want;
} bad[] = {
    {"limits: {max_conections: 5}\n", "cp.yaml:4: limits.max_conections: unknown key"},
    {"limits: {max_connections: 0}\n",
     "limits.max_connections: 0 is out of range (want 1..1000000)"},
    {"limits: {max_connections: -1}\n", "limits.max_connections: \"-1\" is not a whole number"},
    {"limits: {max_unauthenticated: lots}\n",
     "limits.max_unauthenticated: \"lots\" is not a whole number"},
    {"limits: {max_connections: 10, max_unauthenticated: 20}\n",
     "limits: max_unauthenticated (20) over max_connections (10)"},
    {"limits: {max_unauthenticated: 4, max_unauthenticated_per_address: 5}\n",
     "limits: max_unauthenticated_per_address (5) over max_unauthenticated (4)"},
    {"limits: 5\n", "limits: want a mapping"},
    {"timeouts: {handshake: 0s}\n", "timeouts.handshake: must be more than 0"},
    {"timeouts: {hello: 10ms}\n", "timeouts.hello: out of range (want 100ms to 300s)"},
    {"timeouts: {hello: 1h}\n", "timeouts.hello: out of range (want 100ms to 300s)"},
    {"timeouts: {idle: 1h}\n", "timeouts.idle: unknown key"},
};

START_TEST(test_cp_config_front_door_errors)
{
    struct tg_cp_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(parse(bad[_i].extra, &c, err), TG_ECONFIG);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, bad[_i].want) != NULL, "%s: got \"%s\", want \"%s\"", bad[_i].extra,
                  err, bad[_i].want);
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s = suite_create("cp_config");
    TCase *tc = tcase_create("front door");

    tcase_add_test(tc, test_cp_config_front_door_defaults);
    tcase_add_test(tc, test_cp_config_front_door_values);
    tcase_add_loop_test(tc, test_cp_config_front_door_errors, 0, TG_NELEM(bad));
    suite_add_tcase(s, tc);
    return s;
}

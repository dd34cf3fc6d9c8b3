/* cp.yaml's front door (limits:, timeouts:): defaults, values, and a clear error for each
 * wrong one. Pure: tg_cp_config_parse on text. */
#include <check.h>
#include <dirent.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_config.h"
#include "tollgate/file.h"

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

/* c's front-door limits are these. */
static void check_limits(const struct tg_cp_config *c, uint64_t conns, uint64_t unauth,
                         uint64_t per_address, uint64_t handshake_ms, uint64_t hello_ms)
{
    ck_assert_uint_eq(c->limits.max_connections, conns);
    ck_assert_uint_eq(c->limits.max_unauthenticated, unauth);
    ck_assert_uint_eq(c->limits.max_per_address, per_address);
    ck_assert_uint_eq(c->limits.handshake_ms, handshake_ms);
    ck_assert_uint_eq(c->limits.hello_ms, hello_ms);
}

START_TEST(test_cp_config_front_door_defaults)
{
    struct tg_cp_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(parse("", &c, err) == 0, "%s", err);
    check_limits(c, 10000, 512, 16, 5000, 5000);
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
    check_limits(c, 500, 100, 4, 2000, 1500);
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

/* ---- the committed files: tests/unit/cpconfig/{good,bad}/{mesh,cp}-*.yaml ---- */

/* Parses dir/name as a mesh file (mesh-*) or tollgate-cp's own (cp-*); the name alone
 * stands for the file in messages. */
static int parse_file(const char *dir, const char *name, char *err)
{
    char path[1024], *text = NULL;
    size_t len = 0;
    int rc;

    snprintf(path, sizeof(path), "%s/tests/unit/cpconfig/%s/%s", getenv("TG_SOURCE_DIR"), dir,
             name);
    ck_assert_msg(tg_file_read(NULL, path, TG_FILE_MAX, 0, &text, &len, err) == 0, "%s", err);
    if (strncmp(name, "mesh-", 5) == 0) {
        struct tg_cp_mesh m;

        ck_assert_int_eq(tg_cp_mesh_init(&m), 0);
        rc = tg_cp_mesh_parse(&m, text, len, name, err);
        tg_cp_mesh_cleanup(&m);
    } else {
        struct tg_cp_config *c = NULL;

        rc = tg_cp_config_parse(text, len, name, &c, err);
        tg_cp_config_free(c);
    }
    free(text);
    return rc;
}

/* Calls fn for each .yaml file of dir; at least one. */
static void each_file(const char *dir, void (*fn)(const char *dir, const char *name))
{
    char path[1024];
    struct dirent *e;
    DIR *d;
    int n = 0;

    ck_assert_ptr_nonnull(getenv("TG_SOURCE_DIR"));
    snprintf(path, sizeof(path), "%s/tests/unit/cpconfig/%s", getenv("TG_SOURCE_DIR"), dir);
    ck_assert_ptr_nonnull(d = opendir(path));
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);

        if (len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0) {
            fn(dir, e->d_name);
            n++;
        }
    }
    closedir(d);
    ck_assert_int_gt(n, 0);
}

static void good_one(const char *dir, const char *name)
{
    char err[TG_ERRLEN] = "";

    ck_assert_msg(parse_file(dir, name, err) == 0, "%s refused: %s", name, err);
}

/* The first line of a bad file is "# want: " and the error it must give (a prefix). */
static void bad_one(const char *dir, const char *name)
{
    char path[1024], want[512] = "", err[TG_ERRLEN] = "";
    FILE *f;

    snprintf(path, sizeof(path), "%s/tests/unit/cpconfig/%s/%s", getenv("TG_SOURCE_DIR"), dir,
             name);
    ck_assert_ptr_nonnull(f = fopen(path, "r"));
    ck_assert_ptr_nonnull(fgets(want, sizeof(want), f));
    fclose(f);
    ck_assert_msg(strncmp(want, "# want: ", 8) == 0, "%s: no \"# want: \" line", name);
    want[strcspn(want, "\n")] = '\0';
    ck_assert_msg(parse_file(dir, name, err) == TG_ECONFIG, "%s accepted", name);
    ck_assert_msg(strncmp(err, want + 8, strlen(want + 8)) == 0, "%s:\n  got:  %s\n  want: %s",
                  name, err, want + 8);
    ck_assert_msg(strchr(err, '\n') == NULL, "%s: err is not one line", name);
}

START_TEST(test_cp_config_good_files)
{
    each_file("good", good_one);
}
END_TEST

START_TEST(test_cp_config_bad_files)
{
    each_file("bad", bad_one);
}
END_TEST

/* What the walk of the mesh files' sections gives the resources pushed. */
START_TEST(test_cp_config_mesh_resources)
{
    static const char text[] =
        "authorization:\n"
        "  default: deny\n"
        "  rules: [{name: r, action: deny, scope: {namespace: prod}, principals: [\"*\"]}]\n"
        "rate_limits:\n"
        "  key: fingerprint\n"
        "  default: {connections_per_second: 9}\n"
        "  overrides: [{principal: \"spiffe://m/a\", burst: 3}]\n"
        "mesh:\n"
        "  outside: refuse\n"
        "  destinations:\n"
        "    - {address: 10.0.0.0/8, expect: [\"spiffe://m/b\"]}\n";
    char err[TG_ERRLEN] = "";
    struct tg_cp_mesh m;
    const struct tg_res_rate_limits *rl;
    const struct tg_res_mesh_table *t;
    const struct tg_res_authorization *a;

    ck_assert_int_eq(tg_cp_mesh_init(&m), 0);
    ck_assert_msg(tg_cp_mesh_parse(&m, text, strlen(text), "m.yaml", err) == 0, "%s", err);
    a = &m.res[TG_RES_AUTHORIZATION]->u.authorization;
    ck_assert(a->default_deny);
    ck_assert_uint_eq(a->n_rules, 1);
    ck_assert_int_eq(a->rules[0].action, TG_RES_DENY);
    ck_assert_str_eq(a->rules[0].scope_namespace, "prod");
    rl = &m.res[TG_RES_RATE_LIMITS]->u.rate_limits;
    ck_assert_uint_eq(rl->n_limits, 2); /* the override, then the default as "*" */
    ck_assert_str_eq(rl->limits[0].match, "spiffe://m/a");
    ck_assert_uint_eq(rl->limits[0].burst, 3);
    ck_assert_int_eq(rl->limits[0].key_by, TG_RES_LIMIT_BY_FINGERPRINT);
    ck_assert_str_eq(rl->limits[1].match, "*");
    ck_assert(rl->limits[1].connections_per_second == 9);
    t = &m.res[TG_RES_MESH_TABLE]->u.mesh_table;
    ck_assert(t->outside_refuse);
    ck_assert_uint_eq(t->n_destinations, 1);
    ck_assert_str_eq(t->destinations[0].address, "10.0.0.0/8");
    ck_assert_str_eq(t->destinations[0].expected_ids.v[0], "spiffe://m/b");
    /* a section in a second file */
    ck_assert_int_eq(tg_cp_mesh_parse(&m, "mesh: {}\n", 9, "n.yaml", err), TG_ECONFIG);
    ck_assert_msg(strstr(err, "n.yaml:1: mesh: already set in m.yaml") != NULL, "%s", err);
    tg_cp_mesh_cleanup(&m);
}
END_TEST

/* settings, in the sidecar's own tls:, timeouts: and a listener's mode: what is written is
 * pushed, what is not is left out (the sidecar keeps its own), "1.3" and strict included. */
static const struct {
    const char *text, *tls, *suite;
    uint64_t handshake, idle, connect;
    enum tg_res_inbound_mode mode;
} settings[] = {
    {"settings:\n  tls: {min_version: \"1.2\", cipher_suites: [TLS13-AES128-GCM-SHA256]}\n"
     "  timeouts: {handshake: 5s, idle: 10m, connect: 250ms}\n  inbound: {mode: permissive}\n",
     "1.2", "TLS13-AES128-GCM-SHA256", 5000, 600000, 250, TG_RES_INBOUND_PERMISSIVE},
    {"settings:\n  tls: {min_version: \"1.3\"}\n  inbound: {mode: strict}\n", "1.3", NULL, 0, 0, 0,
     TG_RES_INBOUND_STRICT},
    {"settings:\n  timeouts: {idle: 1h}\n", NULL, NULL, 0, 3600000, 0, TG_RES_INBOUND_UNSET},
    {"settings: {}\n", NULL, NULL, 0, 0, 0, TG_RES_INBOUND_UNSET},
};

START_TEST(test_cp_config_settings)
{
    char err[TG_ERRLEN] = "";
    const struct tg_res_proxy_settings *p;
    struct tg_cp_mesh m;

    ck_assert_int_eq(tg_cp_mesh_init(&m), 0);
    ck_assert_msg(
        tg_cp_mesh_parse(&m, settings[_i].text, strlen(settings[_i].text), "s.yaml", err) == 0,
        "%s", err);
    p = &m.res[TG_RES_PROXY_SETTINGS]->u.proxy_settings;
    if (settings[_i].tls == NULL)
        ck_assert_ptr_null(p->min_tls_version);
    else
        ck_assert_str_eq(p->min_tls_version, settings[_i].tls);
    ck_assert_uint_eq(p->cipher_suites.n, settings[_i].suite != NULL);
    if (settings[_i].suite != NULL)
        ck_assert_str_eq(p->cipher_suites.v[0], settings[_i].suite);
    ck_assert_uint_eq(p->handshake_timeout_ms, settings[_i].handshake);
    ck_assert_uint_eq(p->idle_timeout_ms, settings[_i].idle);
    ck_assert_uint_eq(p->connect_timeout_ms, settings[_i].connect);
    ck_assert_int_eq(p->inbound_mode, settings[_i].mode);
    tg_cp_mesh_cleanup(&m);
}
END_TEST

/* Nesting deeper than the layer allows is refused before any walk. */
START_TEST(test_cp_config_too_deep)
{
    char text[128], err[TG_ERRLEN] = "";
    struct tg_cp_mesh m;

    memset(text, '[', 40);
    memset(text + 40, ']', 40);
    text[80] = '\0';
    ck_assert_int_eq(tg_cp_mesh_init(&m), 0);
    ck_assert_int_eq(tg_cp_mesh_parse(&m, text, strlen(text), "d.yaml", err), TG_ECONFIG);
    ck_assert_msg(strstr(err, "nested deeper than 32 levels") != NULL, "%s", err);
    tg_cp_mesh_cleanup(&m);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE("cp_config", "front door", &tc, test_cp_config_front_door_defaults,
                             test_cp_config_front_door_values);

    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_cp_config_front_door_errors, bad));
    tc = TG_TEST_CASE(s, "files", test_cp_config_good_files, test_cp_config_bad_files,
                      test_cp_config_mesh_resources, test_cp_config_too_deep);
    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_cp_config_settings, settings));
    return s;
}

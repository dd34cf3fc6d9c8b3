/* /config_dump (sidecar/ops/views.c) as JSON a tool can read: each outbound listener's tunnel
 * mode, the mesh table's destinations whose own tunnel mode is set, and tunnel_pool. */
#include <check.h>
#include "check_main.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/views.h"

static const char yaml[] =
    "identity: {cert: c.pem, key: k.pem, trust_bundle: ca.pem}\n"
    "inbound: [{name: in, listen: '127.0.0.1:1', upstream: '127.0.0.1:2', tunnels: true}]\n"
    "outbound:\n"
    "  - {name: cap, listen: '127.0.0.1:3', transparent: true, tunnel: auto}\n"
    "  - {name: fixed, listen: '127.0.0.1:4', upstream: '127.0.0.1:5', expect: [spiffe://m/a]}\n"
    "mesh:\n"
    "  outside: refuse\n"
    "  destinations:\n"
    "    - {address: 10.0.0.0/8, expect: [spiffe://m/a]}\n"
    "    - {address: 10.1.2.3, port: 5432, expect: [spiffe://m/db], tunnel: on}\n"
    "    - {address: 'fd00::/64', expect: [spiffe://m/b], tunnel: off}\n"
    "tunnel_pool: {streams_per_connection: 50, idle_timeout: 2m}\n";

/* The dump of the sidecar yaml describes, with a generation holding its mesh table or none
 * (before the first certificate), parsed. */
static json_t *dump(bool with_gen)
{
    struct tg_config *c = NULL;
    struct tg_listener_def defs[3];
    struct tg_metrics m = {0};
    struct tg_gen g = {.id = 3};
    struct tg_runtime rt = {.listeners = defs, .n_listeners = 3, .metrics = &m};
    struct tg_view_src v = {.gen = with_gen ? &g : NULL, .rt = &rt};
    char err[TG_ERRLEN] = "", *text;
    json_error_t je;
    json_t *j;
    size_t len;

    ck_assert_msg(tg_config_parse(yaml, strlen(yaml), "t.yaml", &c, err) == 0, "%s", err);
    memset(defs, 0, sizeof(defs));
    defs[0] = (struct tg_listener_def){.inbound = true, .tunnels = true, .name = "in"};
    defs[0].listen = &c->inbound[0].listen;
    defs[0].upstream = &c->inbound[0].upstream;
    defs[0].rule.ids = &c->inbound[0].allow;
    for (size_t i = 0; i < 2; i++) { /* as control.c makes them */
        const struct tg_outbound_cfg *o = &c->outbound[i];

        defs[1 + i] = (struct tg_listener_def){.transparent = o->transparent,
                                               .name = o->name,
                                               .listen = &o->listen,
                                               .upstream = o->transparent ? NULL : &o->upstream,
                                               .tunnel = o->tunnel};
        defs[1 + i].rule.ids = &o->expect;
    }
    g.mesh = (struct tg_mesh){c->dests, c->n_dests, c->mesh_refuse_outside};
    rt.cfg = v.cfg = c;
    tg_peers_init(&m.peers);
    ck_assert_ptr_nonnull(text = tg_view_config_dump(&v, &len));
    ck_assert_uint_eq(strlen(text), len);
    j = json_loads(text, 0, &je);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", je.text, text);
    free(text);
    tg_peers_cleanup(&m.peers);
    tg_config_unref(c);
    return j;
}

START_TEST(test_views_config_dump_tunnels)
{
    json_t *j = dump(true);
    json_t *ls = json_object_get(j, "listeners"), *mesh = json_object_get(j, "mesh");
    json_t *set = json_object_get(mesh, "tunnel"), *pool = json_object_get(j, "tunnel_pool");

    ck_assert_uint_eq(json_array_size(ls), 3);
    ck_assert(json_object_get(json_array_get(ls, 0), "tunnel") == NULL); /* inbound: tunnels */
    ck_assert(json_is_true(json_object_get(json_array_get(ls, 0), "tunnels")));
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ls, 1), "tunnel")), "auto");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ls, 2), "tunnel")), "off");

    ck_assert_str_eq(json_string_value(json_object_get(mesh, "outside")), "refuse");
    ck_assert_int_eq(json_integer_value(json_object_get(mesh, "destinations")), 3);
    ck_assert_uint_eq(json_array_size(set), 2); /* the one without its own mode is left out */
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(set, 0), "address")),
                     "10.1.2.3");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(set, 0), "port")), 5432);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(set, 0), "tunnel")), "on");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(set, 1), "address")),
                     "fd00::/64");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(set, 1), "port")), 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(set, 1), "tunnel")), "off");

    ck_assert_int_eq(json_integer_value(json_object_get(pool, "streams_per_connection")), 50);
    ck_assert_int_eq(json_integer_value(json_object_get(pool, "connections_per_destination")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(pool, "idle_timeout_ms")), 120000);
    json_decref(j);
}
END_TEST

/* Before the first generation (control plane, Workload API) there is no mesh table yet. */
START_TEST(test_views_config_dump_without_generation)
{
    json_t *j = dump(false);

    ck_assert(json_is_null(json_object_get(j, "identity")));
    ck_assert(json_object_get(j, "mesh") == NULL);
    ck_assert(json_is_object(json_object_get(j, "tunnel_pool")));
    json_decref(j);
}
END_TEST

Suite *tg_test_suite(void)
{
    return TG_TEST_SUITE("views", "config_dump", NULL, test_views_config_dump_tunnels,
                         test_views_config_dump_without_generation);
}

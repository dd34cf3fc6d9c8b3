/* The renamed fields of proto/tollgate.proto on the wire: bytes written by field number, as
 * the proto had them before the rename (default_deny, close_denied_connections, key_by,
 * match, cidr_or_address, expected_ids, outside_mesh, min_tls_version, cipher_suites,
 * *_timeout_ms), decode into the same resource, and the messages filled under the new names
 * pack into exactly those bytes: older sidecars and control planes read and write the same
 * stream, and the content-hash versions stay the same. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "tollgate.pb-c.h"
#include "tollgate/cp_client.h"
#include "unit_util.h"

/* ---- protobuf bytes by hand: tag, varint, length-delimited ---- */

struct wire {
    uint8_t b[512];
    size_t n;
};

static void put_varint(struct wire *w, uint64_t v)
{
    do {
        ck_assert_uint_lt(w->n, sizeof(w->b));
        w->b[w->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
}

static void put_uint(struct wire *w, unsigned field, uint64_t v)
{
    put_varint(w, (uint64_t)field << 3); /* wire type 0: varint */
    put_varint(w, v);
}

static void put_bytes(struct wire *w, unsigned field, const void *p, size_t len)
{
    put_varint(w, (uint64_t)field << 3 | 2); /* wire type 2: length-delimited */
    put_varint(w, len);
    ck_assert_uint_le(w->n + len, sizeof(w->b));
    memcpy(w->b + w->n, p, len);
    w->n += len;
}

static void put_str(struct wire *w, unsigned field, const char *s)
{
    put_bytes(w, field, s, strlen(s));
}

static void put_msg(struct wire *w, unsigned field, const struct wire *m)
{
    put_bytes(w, field, m->b, m->n);
}

/* ServerMessage{push = Push{type, version "v1", nonce "n1", <field> = body}}. */
static void server_push(struct wire *out, unsigned type, unsigned field, const struct wire *body)
{
    struct wire push = {0};

    put_uint(&push, 1, type);
    put_str(&push, 2, "v1");
    put_str(&push, 3, "n1");
    put_msg(&push, field, body);
    put_msg(out, 2, &push);
}

/* The old layout of each resource with its renamed fields set. */
static void old_authorization(struct wire *out)
{
    struct wire ap = {0};

    put_uint(&ap, 2, 1); /* bool default_deny = true */
    put_uint(&ap, 3, 1); /* bool close_denied_connections = true */
    server_push(out, 3, 5, &ap);
}

static void old_rate_limits(struct wire *out)
{
    struct wire lim = {0}, rl = {0};

    put_uint(&lim, 1, 1);                           /* LimitKey key_by = FINGERPRINT */
    put_str(&lim, 2, "spiffe://mesh.local/ns/a/*"); /* string match */
    put_uint(&lim, 4, 5);                           /* burst */
    put_msg(&rl, 1, &lim);
    server_push(out, 4, 6, &rl);
}

static void old_mesh_table(struct wire *out)
{
    struct wire d = {0}, mt = {0};

    put_str(&d, 1, "10.0.0.0/24");                        /* string cidr_or_address */
    put_uint(&d, 2, 8080);                                /* port */
    put_str(&d, 3, "spiffe://mesh.local/ns/prod/sa/api"); /* repeated string expected_ids */
    put_uint(&d, 4, 1);                                   /* protocol HTTP */
    put_msg(&mt, 1, &d);
    put_uint(&mt, 2, 1); /* OutsideMesh outside_mesh = REFUSE */
    server_push(out, 6, 8, &mt);
}

static void old_proxy_settings(struct wire *out)
{
    struct wire ps = {0};

    put_str(&ps, 1, "1.2");                     /* min_tls_version */
    put_str(&ps, 2, "TLS13-AES128-GCM-SHA256"); /* cipher_suites */
    put_uint(&ps, 3, 5000);                     /* handshake_timeout_ms */
    put_uint(&ps, 4, 600000);                   /* idle_timeout_ms */
    put_uint(&ps, 5, 250);                      /* connect_timeout_ms */
    put_uint(&ps, 6, 2);                        /* inbound_mode PERMISSIVE */
    server_push(out, 7, 9, &ps);
}

static struct tg_resource *decode(const struct wire *w)
{
    struct tg_resource *r = NULL;
    char version[129], err[TG_ERRLEN] = "";

    ck_assert_msg(tg_cp_client_decode_push(w->b, w->n, &r, version, sizeof(version), err) == 0,
                  "%s", err);
    ck_assert_str_eq(version, "v1");
    return r;
}

/* p (its resource of type t set), in a ServerMessage, packed: the same bytes as want. */
static void pack_equals(Tollgate__V1__Push *p, enum tg_res_type t, const struct wire *want)
{
    static const Tollgate__V1__Push__ResourceCase case_of[TG_RES_N] = {
        [TG_RES_AUTHORIZATION] = TOLLGATE__V1__PUSH__RESOURCE_AUTHORIZATION,
        [TG_RES_RATE_LIMITS] = TOLLGATE__V1__PUSH__RESOURCE_RATE_LIMITS,
        [TG_RES_MESH_TABLE] = TOLLGATE__V1__PUSH__RESOURCE_MESH_TABLE,
        [TG_RES_PROXY_SETTINGS] = TOLLGATE__V1__PUSH__RESOURCE_PROXY_SETTINGS,
    };
    Tollgate__V1__ServerMessage sm = TOLLGATE__V1__SERVER_MESSAGE__INIT;
    uint8_t buf[512];
    size_t len;

    p->type = (Tollgate__V1__ResourceType)t;
    p->resource_case = case_of[t];
    p->version = UT_STR("v1");
    p->nonce = UT_STR("n1");
    sm.msg_case = TOLLGATE__V1__SERVER_MESSAGE__MSG_PUSH;
    sm.push = p;
    ck_assert_uint_le(tollgate__v1__server_message__get_packed_size(&sm), sizeof(buf));
    len = tollgate__v1__server_message__pack(&sm, buf);
    ck_assert_uint_eq(len, want->n);
    ck_assert_msg(memcmp(buf, want->b, len) == 0, "the new names pack other bytes than the old");
}

/* ---- tests ---- */

/* Each test's push (filled under the new names), the old bytes, and their decoding. */
static struct {
    Tollgate__V1__Push p;
    struct wire w;
    struct tg_resource *r;
} F;

static void setup(void)
{
    memset(&F, 0, sizeof(F));
    tollgate__v1__push__init(&F.p);
}

static void teardown(void)
{
    tg_resource_free(F.r);
}

START_TEST(test_pushwire_authorization)
{
    Tollgate__V1__AuthorizationPolicy ap = TOLLGATE__V1__AUTHORIZATION_POLICY__INIT;

    old_authorization(&F.w);
    F.r = decode(&F.w);
    ck_assert(F.r->u.authorization.default_deny);
    ck_assert(F.r->u.authorization.close_denied_connections);

    ap.default_ = TOLLGATE__V1__RULE_ACTION__RULE_ACTION_DENY;
    ap.close_denied = true;
    F.p.authorization = &ap;
    pack_equals(&F.p, TG_RES_AUTHORIZATION, &F.w);
}
END_TEST

/* The old bool's false (left out on the wire) is ALLOW; a value neither end knows is refused. */
START_TEST(test_pushwire_default_values)
{
    struct wire body = {0};
    char version[129], err[TG_ERRLEN] = "";

    put_uint(&body, 3, 1);
    server_push(&F.w, 3, 5, &body);
    F.r = decode(&F.w);
    ck_assert(!F.r->u.authorization.default_deny);
    tg_resource_free(F.r);
    F.r = NULL;
    F.w.n = body.n = 0;
    put_uint(&body, 2, 2);
    server_push(&F.w, 3, 5, &body);
    ck_assert_int_eq(tg_cp_client_decode_push(F.w.b, F.w.n, &F.r, version, sizeof(version), err),
                     TG_EINVAL);
    ck_assert_msg(strstr(err, "unknown default 2") != NULL, "%s", err);
}
END_TEST

START_TEST(test_pushwire_rate_limits)
{
    Tollgate__V1__RateLimits rl = TOLLGATE__V1__RATE_LIMITS__INIT;
    Tollgate__V1__Limit lim = TOLLGATE__V1__LIMIT__INIT, *limp = &lim;

    old_rate_limits(&F.w);
    F.r = decode(&F.w);
    ck_assert_uint_eq(F.r->u.rate_limits.n_limits, 1);
    ck_assert_int_eq(F.r->u.rate_limits.limits[0].key_by, TG_RES_LIMIT_BY_FINGERPRINT);
    ck_assert_str_eq(F.r->u.rate_limits.limits[0].match, "spiffe://mesh.local/ns/a/*");
    ck_assert_uint_eq(F.r->u.rate_limits.limits[0].burst, 5);

    lim.key = TOLLGATE__V1__LIMIT_KEY__LIMIT_KEY_FINGERPRINT;
    lim.principal = UT_STR("spiffe://mesh.local/ns/a/*");
    lim.burst = 5;
    rl.limits = &limp;
    rl.n_limits = 1;
    F.p.rate_limits = &rl;
    pack_equals(&F.p, TG_RES_RATE_LIMITS, &F.w);
}
END_TEST

START_TEST(test_pushwire_mesh_table)
{
    Tollgate__V1__MeshTable mt = TOLLGATE__V1__MESH_TABLE__INIT;
    Tollgate__V1__Destination d = TOLLGATE__V1__DESTINATION__INIT, *dp = &d;
    char *expect[] = {UT_STR("spiffe://mesh.local/ns/prod/sa/api")};
    const struct tg_res_destination *got;

    old_mesh_table(&F.w);
    F.r = decode(&F.w);
    ck_assert(F.r->u.mesh_table.outside_refuse);
    ck_assert_uint_eq(F.r->u.mesh_table.n_destinations, 1);
    got = &F.r->u.mesh_table.destinations[0];
    ck_assert_str_eq(got->address, "10.0.0.0/24");
    ck_assert_uint_eq(got->port, 8080);
    ck_assert_uint_eq(got->expected_ids.n, 1);
    ck_assert_str_eq(got->expected_ids.v[0], "spiffe://mesh.local/ns/prod/sa/api");
    ck_assert_int_eq(got->protocol, TG_RES_HTTP);
    ck_assert_int_eq(got->tunnel, TG_TUNNEL_UNSET); /* an older control plane's: unset */

    /* and packed with the tunnel field unset (its zero), the very bytes an older one sends */
    d.address = UT_STR("10.0.0.0/24");
    d.port = 8080;
    d.expect = expect;
    d.n_expect = 1;
    d.protocol = TOLLGATE__V1__PROTOCOL__PROTOCOL_HTTP;
    mt.destinations = &dp;
    mt.n_destinations = 1;
    mt.outside = TOLLGATE__V1__OUTSIDE_MESH__OUTSIDE_MESH_REFUSE;
    F.p.mesh_table = &mt;
    pack_equals(&F.p, TG_RES_MESH_TABLE, &F.w);
}
END_TEST

/* Destination.tunnel (field 5, TunnelMode): a varint after the old fields; every mode
 * decodes, and the message packs into the same bytes. */
static void tunnel_dest(struct wire *out, unsigned protocol, unsigned tunnel)
{
    struct wire d = {0}, mt = {0};

    put_str(&d, 1, "10.0.0.7");
    put_uint(&d, 2, 5432);
    put_str(&d, 3, "spiffe://mesh.local/ns/prod/sa/db");
    if (protocol != 0)
        put_uint(&d, 4, protocol);
    put_uint(&d, 5, tunnel);
    put_msg(&mt, 1, &d);
    server_push(out, 6, 8, &mt);
}

START_TEST(test_pushwire_tunnel_modes)
{
    static const struct {
        Tollgate__V1__TunnelMode pb;
        enum tg_tunnel_mode mode;
    } modes[] = {
        {TOLLGATE__V1__TUNNEL_MODE__TUNNEL_MODE_OFF, TG_TUNNEL_OFF},
        {TOLLGATE__V1__TUNNEL_MODE__TUNNEL_MODE_AUTO, TG_TUNNEL_AUTO},
        {TOLLGATE__V1__TUNNEL_MODE__TUNNEL_MODE_ON, TG_TUNNEL_ON},
    };

    for (size_t i = 0; i < TG_NELEM(modes); i++) {
        Tollgate__V1__MeshTable mt = TOLLGATE__V1__MESH_TABLE__INIT;
        Tollgate__V1__Destination d = TOLLGATE__V1__DESTINATION__INIT, *dp = &d;
        char *expect[] = {UT_STR("spiffe://mesh.local/ns/prod/sa/db")};

        F.w.n = 0;
        tunnel_dest(&F.w, 0, (unsigned)modes[i].pb);
        ck_assert_uint_eq((unsigned)modes[i].pb, i + 1); /* the numbers on the wire: 1, 2, 3 */
        F.r = decode(&F.w);
        ck_assert_uint_eq(F.r->u.mesh_table.n_destinations, 1);
        ck_assert_int_eq(F.r->u.mesh_table.destinations[0].tunnel, modes[i].mode);
        ck_assert_int_eq(F.r->u.mesh_table.destinations[0].protocol, TG_RES_TCP);
        tg_resource_free(F.r);
        F.r = NULL;

        d.address = UT_STR("10.0.0.7");
        d.port = 5432;
        d.expect = expect;
        d.n_expect = 1;
        d.tunnel = modes[i].pb;
        mt.destinations = &dp;
        mt.n_destinations = 1;
        tollgate__v1__push__init(&F.p);
        F.p.mesh_table = &mt;
        pack_equals(&F.p, TG_RES_MESH_TABLE, &F.w);
    }
}
END_TEST

/* A mode this sidecar does not know, or on with protocol http, refuses the push (the caller
 * NACKs it and keeps the last table): never read as another mode. */
START_TEST(test_pushwire_tunnel_refused)
{
    static const struct {
        unsigned protocol, tunnel;
        const char *want;
    } bad[] = {
        {0, 4, "destination 10.0.0.7: unknown tunnel mode 4 (want unset, off, auto or on)"},
        {0, 0x7fffffff, "destination 10.0.0.7: unknown tunnel mode 2147483647"},
        {1, 3,
         "destination 10.0.0.7: tunnel on with protocol http (HTTP ports are not carried "
         "over tunnels yet)"},
    };

    for (size_t i = 0; i < TG_NELEM(bad); i++) {
        char version[129], err[TG_ERRLEN] = "";

        F.w.n = 0;
        tunnel_dest(&F.w, bad[i].protocol, bad[i].tunnel);
        ck_assert_int_eq(
            tg_cp_client_decode_push(F.w.b, F.w.n, &F.r, version, sizeof(version), err), TG_EINVAL);
        ck_assert_ptr_null(F.r);
        ck_assert_msg(strstr(err, bad[i].want) != NULL, "%zu: %s", i, err);
    }
    /* auto with http is fine: such a destination connects directly */
    F.w.n = 0;
    tunnel_dest(&F.w, 1, 2);
    F.r = decode(&F.w);
    ck_assert_int_eq(F.r->u.mesh_table.destinations[0].tunnel, TG_TUNNEL_AUTO);
}
END_TEST

START_TEST(test_pushwire_proxy_settings)
{
    Tollgate__V1__ProxySettings ps = TOLLGATE__V1__PROXY_SETTINGS__INIT;
    char *suites[] = {UT_STR("TLS13-AES128-GCM-SHA256")};
    const struct tg_res_proxy_settings *got;

    old_proxy_settings(&F.w);
    F.r = decode(&F.w);
    got = &F.r->u.proxy_settings;
    ck_assert_str_eq(got->min_tls_version, "1.2");
    ck_assert_uint_eq(got->cipher_suites.n, 1);
    ck_assert_str_eq(got->cipher_suites.v[0], "TLS13-AES128-GCM-SHA256");
    ck_assert_uint_eq(got->handshake_timeout_ms, 5000);
    ck_assert_uint_eq(got->idle_timeout_ms, 600000);
    ck_assert_uint_eq(got->connect_timeout_ms, 250);
    ck_assert_int_eq(got->inbound_mode, TG_RES_INBOUND_PERMISSIVE);

    ps.tls_min_version = UT_STR("1.2");
    ps.tls_cipher_suites = suites;
    ps.n_tls_cipher_suites = 1;
    ps.timeouts_handshake_ms = 5000;
    ps.timeouts_idle_ms = 600000;
    ps.timeouts_connect_ms = 250;
    ps.inbound_mode = TOLLGATE__V1__INBOUND_MODE__INBOUND_MODE_PERMISSIVE;
    F.p.proxy_settings = &ps;
    pack_equals(&F.p, TG_RES_PROXY_SETTINGS, &F.w);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE("pushwire", "renamed_fields", &tc, test_pushwire_authorization,
                             test_pushwire_default_values, test_pushwire_rate_limits,
                             test_pushwire_mesh_table, test_pushwire_tunnel_modes,
                             test_pushwire_tunnel_refused, test_pushwire_proxy_settings);

    tcase_add_checked_fixture(tc, setup, teardown);
    return s;
}

/* intercept.c + mesh.c: telling mesh mTLS from anything else by a client's first bytes, and
 * choosing the expected servers of a captured destination. */
#include <arpa/inet.h>
#include <check.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "certs_util.h"
#include "unit_util.h"
#include "tollgate/intercept.h"
#include "tollgate/mesh.h"
#include "tollgate/tls.h"

static uint8_t hello[4096];
static size_t hello_len;

/* A real ClientHello, as our outbound side sends it. */
static void make_hello(void)
{
    struct tg_pool pool;
    struct tg_identity id = {0};
    struct tg_tls_settings st = {.server = false, .max_chain_depth = 4};
    struct tg_tls_ctx *ctx;
    struct tg_tls *t;
    char *ids[] = {UT_STR("spiffe://mesh.local/ns/default/sa/web")};
    struct tg_strlist list = {ids, 1};
    struct tg_tls_peer_rule rule = {&list};
    struct tg_buf *out;
    char err[TG_ERRLEN];

    cu_setup();
    cu_certs("ca", "--out", "ca", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "api", "--spiffe",
             "spiffe://mesh.local/ns/default/sa/api", NULL);
    id.chain_pem = cu_read("api.pem", &id.chain_len);
    id.key_pem = cu_read("api.key", &id.key_len);
    id.bundle_pem = cu_read("ca.pem", &id.bundle_len);
    ck_assert_int_eq(tg_tls_init(), 0);
    tg_pool_init(&pool, 20 * 1024, 2);
    ck_assert_msg(tg_tls_ctx_new(&id, &st, &ctx, err) == 0, "%s", err);
    ck_assert_int_eq(tg_tls_new(ctx, &pool, &rule, &t), 0);
    ck_assert_int_eq(tg_tls_handshake(t), TG_EAGAIN);
    out = tg_tls_cipher_out(t);
    ck_assert_uint_le(tg_buf_len(out), sizeof(hello));
    hello_len = tg_buf_len(out);
    memcpy(hello, tg_buf_data(out), hello_len);
    tg_tls_free(t);
    tg_tls_ctx_free(ctx);
    tg_pool_cleanup(&pool);
    free(id.chain_pem);
    free(id.key_pem);
    free(id.bundle_pem);
    cu_teardown();
}

START_TEST(test_peek_our_client_hello_is_mesh)
{
    make_hello();
    ck_assert_int_eq(hello[0], 0x16);
    ck_assert_int_eq(tg_intercept_peek(hello, hello_len), TG_PEEK_MESH);
    /* every shorter prefix asks for more, never decides wrongly */
    for (size_t n = 0; n < hello_len; n++)
        ck_assert_msg(tg_intercept_peek(hello, n) == TG_PEEK_MORE, "prefix %zu", n);
}
END_TEST

START_TEST(test_peek_other_alpn_or_plain_is_other)
{
    uint8_t copy[4096];
    uint8_t *at;

    make_hello();
    memcpy(copy, hello, hello_len);
    at = memmem(copy, hello_len, "tollgate", 8);
    ck_assert_ptr_nonnull(at);
    at[7] = 'X'; /* another protocol token: TLS, but not ours */
    ck_assert_int_eq(tg_intercept_peek(copy, hello_len), TG_PEEK_OTHER);
    ck_assert_int_eq(tg_intercept_peek((const uint8_t *)"GET / HTTP/1.1\r\n", 16), TG_PEEK_OTHER);
    ck_assert_int_eq(tg_intercept_peek((const uint8_t *)"\x16\x02", 2), TG_PEEK_OTHER);
    ck_assert_int_eq(tg_intercept_peek((const uint8_t *)"\x16\x03\x01\x00\x00", 5),
                     TG_PEEK_OTHER); /* empty record */
    ck_assert_int_eq(tg_intercept_peek((const uint8_t *)"\x16\x03\x01\x40\x01", 5),
                     TG_PEEK_OTHER); /* over 16 KiB */
    ck_assert_int_eq(tg_intercept_peek((const uint8_t *)"\x17\x03\x03", 3), TG_PEEK_OTHER);
}
END_TEST

START_TEST(test_peek_lying_lengths_are_other)
{
    uint8_t copy[4096];

    make_hello();
    /* handshake length larger than the record: spread over records, not ours */
    memcpy(copy, hello, hello_len);
    copy[7] = 0xff;
    ck_assert_int_eq(tg_intercept_peek(copy, hello_len), TG_PEEK_OTHER);
    /* extensions length that overruns the hello */
    for (size_t i = 9; i < hello_len; i++) {
        memcpy(copy, hello, hello_len);
        copy[i] ^= 0xff;
        (void)tg_intercept_peek(copy, hello_len); /* any verdict, no overread (ASan) */
    }
}
END_TEST

static struct tg_mesh_dest dest(const char *net, unsigned prefix, uint16_t port, const char *id)
{
    struct tg_mesh_dest d;
    static char names[16][32], *ids[16];
    static int n;

    memset(&d, 0, sizeof(d));
    if (strchr(net, ':') != NULL) {
        d.net.ss_family = AF_INET6;
        inet_pton(AF_INET6, net, &((struct sockaddr_in6 *)&d.net)->sin6_addr);
    } else {
        d.net.ss_family = AF_INET;
        inet_pton(AF_INET, net, &((struct sockaddr_in *)&d.net)->sin_addr);
    }
    d.prefix = prefix;
    d.port = port;
    ck_assert_int_lt(n, (int)TG_NELEM(ids));
    snprintf(names[n], sizeof(names[n]), "%s", id);
    ids[n] = names[n];
    d.expect.v = &ids[n++];
    d.expect.n = 1;
    return d;
}

static const char *lookup(const struct tg_mesh *m, const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    const struct tg_mesh_dest *d;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL)
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss);
    else
        uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss);
    d = tg_mesh_lookup(m, &ss);
    return d == NULL ? NULL : d->expect.v[0];
}

START_TEST(test_mesh_lookup_most_specific_wins)
{
    struct tg_mesh_dest d[] = {
        dest("10.0.0.0", 8, 0, "wide"),  dest("10.1.0.0", 16, 0, "narrow"),
        dest("10.1.2.3", 32, 0, "host"), dest("10.1.2.3", 32, 8080, "host-port"),
        dest("fd00::", 8, 0, "v6"),      dest("0.0.0.0", 0, 443, "any-443"),
    };
    struct tg_mesh m = {d, TG_NELEM(d), false};

    ck_assert_str_eq(lookup(&m, "10.9.9.9", 80), "wide");
    ck_assert_str_eq(lookup(&m, "10.1.9.9", 80), "narrow");
    ck_assert_str_eq(lookup(&m, "10.1.2.3", 80), "host");
    ck_assert_str_eq(lookup(&m, "10.1.2.3", 8080), "host-port");
    ck_assert_str_eq(lookup(&m, "fd00::1", 80), "v6");
    ck_assert_str_eq(lookup(&m, "192.0.2.1", 443), "any-443");
    ck_assert_ptr_null(lookup(&m, "192.0.2.1", 80));
    ck_assert_ptr_null(lookup(&m, "fe80::1", 80));
    ck_assert_str_eq(lookup(&m, "10.255.255.255", 1), "wide"); /* prefix edge */
    ck_assert_ptr_null(lookup(&m, "11.0.0.0", 1));
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s =
        TG_TEST_SUITE("intercept", "peek", &tc, test_peek_our_client_hello_is_mesh,
                      test_peek_other_alpn_or_plain_is_other, test_peek_lying_lengths_are_other,
                      test_mesh_lookup_most_specific_wins);

    tcase_set_timeout(tc, 60);
    return s;
}

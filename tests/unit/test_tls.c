/* tls.c: mutual TLS 1.3 handshakes run in memory through our I/O adapter, and the peer
 * checks that run inside the handshake. Certificates are made at run time. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "certs_util.h"
#include "tollgate/tls.h"

#define WEB "spiffe://mesh.local/ns/default/sa/web"
#define API "spiffe://mesh.local/ns/default/sa/api"

struct side {
    struct tg_identity id; /* filled from files without tg_identity_load's checks */
    struct tg_tls_ctx *ctx;
    struct tg_tls *tls;
    struct tg_strlist ids;
    char *idv[2];
    struct tg_tls_peer_rule rule;
    int rc;
};

static struct tg_pool pool;

static void setup(void)
{
    cu_setup();
    tg_pool_init(&pool, 20 * 1024, 8);
    ck_assert_int_eq(tg_tls_init(), 0);
    cu_certs("ca", "--out", "ca", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "web", "--spiffe", WEB, NULL);
    cu_certs("issue", "--ca", "ca", "--out", "api", "--spiffe", API, NULL);
}

static void teardown(void)
{
    tg_pool_cleanup(&pool);
    cu_teardown();
}

/* Loads prefix.pem/.key and the bundle as they are (expired or odd certificates too). */
static void side_init(struct side *s, const char *prefix, const char *bundle, bool server,
                      const char *peer_id, const struct tg_tls_settings *extra)
{
    char name[64];
    struct tg_tls_settings st = {.server = server, .max_chain_depth = 4};
    char err[TG_ERRLEN] = "";

    memset(s, 0, sizeof(*s));
    snprintf(name, sizeof(name), "%s.pem", prefix);
    s->id.chain_pem = cu_read(name, &s->id.chain_len);
    snprintf(name, sizeof(name), "%s.key", prefix);
    s->id.key_pem = cu_read(name, &s->id.key_len);
    s->id.bundle_pem = cu_read(bundle, &s->id.bundle_len);
    snprintf(s->id.trust_domain, sizeof(s->id.trust_domain), "mesh.local");
    if (extra != NULL)
        st = *extra, st.server = server;
    ck_assert_msg(tg_tls_ctx_new(&s->id, &st, &s->ctx, err) == 0, "%s", err);
    s->idv[0] = (char *)peer_id;
    s->ids.v = s->idv;
    s->ids.n = peer_id != NULL ? 1 : 0;
    s->rule.ids = &s->ids;
    ck_assert_int_eq(tg_tls_new(s->ctx, &pool, &s->rule, &s->tls), 0);
    s->rc = TG_EAGAIN;
}

static void side_free(struct side *s)
{
    tg_tls_free(s->tls);
    tg_tls_ctx_free(s->ctx);
    free(s->id.chain_pem);
    free(s->id.key_pem);
    free(s->id.bundle_pem);
}

/* Moves ciphertext from a's output to b's input. Returns bytes moved. */
static size_t carry(struct side *a, struct side *b)
{
    struct tg_buf *out = tg_tls_cipher_out(a->tls), *in = tg_tls_cipher_in(b->tls);
    size_t n = tg_buf_len(out);

    if (n == 0)
        return 0;
    ck_assert_int_eq(tg_buf_reserve(in, &pool, true), 0);
    if (n > tg_buf_room(in))
        n = tg_buf_room(in);
    memcpy(tg_buf_tail(in), tg_buf_data(out), n);
    tg_buf_commit(in, n);
    tg_buf_consume(out, n);
    return n;
}

/* Runs both handshakes until neither can move. */
static void handshake(struct side *c, struct side *s)
{
    for (int round = 0; round < 50; round++) {
        size_t moved;

        if (c->rc == TG_EAGAIN)
            c->rc = tg_tls_handshake(c->tls);
        moved = carry(c, s);
        if (s->rc == TG_EAGAIN)
            s->rc = tg_tls_handshake(s->tls);
        moved += carry(s, c);
        if (moved == 0 && (c->rc != TG_EAGAIN || s->rc != TG_EAGAIN))
            if (c->rc != TG_EAGAIN && s->rc != TG_EAGAIN)
                return;
        if (moved == 0 && c->rc == TG_EAGAIN && s->rc == TG_EAGAIN)
            return;
    }
}

static enum tg_hs_fail fail_of(struct side *s)
{
    const char *why;

    return tg_tls_fail(s->tls, &why);
}

START_TEST(test_tls_mutual_handshake_and_data)
{
    struct side c, s;
    char buf[64];
    int n;

    side_init(&s, "web", "ca.pem", true, API, NULL);
    side_init(&c, "api", "ca.pem", false, WEB, NULL);
    handshake(&c, &s);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_str_eq(tg_tls_peer(s.tls)->id, API);
    ck_assert_str_eq(tg_tls_peer(c.tls)->id, WEB);
    ck_assert_str_eq(tg_tls_version(c.tls), "TLSv1.3");
    ck_assert_uint_eq(strlen(tg_tls_peer(c.tls)->sha256), 64);

    ck_assert_int_eq(tg_buf_reserve(tg_tls_cipher_out(c.tls), &pool, true), 0);
    ck_assert_int_eq(tg_tls_write(c.tls, "ping", 4), 4);
    carry(&c, &s);
    n = tg_tls_read(s.tls, buf, sizeof(buf));
    ck_assert_int_eq(n, 4);
    ck_assert_mem_eq(buf, "ping", 4);
    ck_assert_int_eq(tg_tls_read(s.tls, buf, sizeof(buf)), TG_EAGAIN);

    /* close_notify one way; the other way still carries data (half-close) */
    tg_tls_shutdown(c.tls);
    carry(&c, &s);
    ck_assert_int_eq(tg_tls_read(s.tls, buf, sizeof(buf)), TG_ECLOSED);
    ck_assert_int_eq(tg_buf_reserve(tg_tls_cipher_out(s.tls), &pool, true), 0);
    ck_assert_int_eq(tg_tls_write(s.tls, "pong", 4), 4);
    carry(&s, &c);
    ck_assert_int_eq(tg_tls_read(c.tls, buf, sizeof(buf)), 4);
    ck_assert_mem_eq(buf, "pong", 4);
    side_free(&c);
    side_free(&s);
}
END_TEST

/* One refusal per row: which side refuses (server = inbound), and the category. */
static const struct {
    const char *name;
    const char *client;    /* client identity prefix */
    const char *server_id; /* id the client expects */
    const char *allow;     /* id the server allows (NULL: any) */
    bool server_refuses;
    enum tg_hs_fail why;
} refusals[] = {
    {"server not expected", "api", "spiffe://mesh.local/ns/default/sa/other", NULL, false,
     TG_HSF_UNEXPECTED},
    {"client not allowed", "api", WEB, "spiffe://mesh.local/ns/default/sa/other", true,
     TG_HSF_NOT_ALLOWED},
    {"expired client", "expired", WEB, NULL, true, TG_HSF_EXPIRED},
    {"not yet valid client", "future", WEB, NULL, true, TG_HSF_NOT_YET_VALID},
    {"foreign CA", "foreign", WEB, NULL, true, TG_HSF_UNTRUSTED},
    {"two URI SANs", "twouri", WEB, NULL, true, TG_HSF_BAD_SPIFFE},
    {"no SAN", "nosan", WEB, NULL, true, TG_HSF_BAD_SPIFFE},
    {"CA leaf", "caleaf", WEB, NULL, true, TG_HSF_BAD_CERT},
    {"serverAuth-only client", "srvonly", WEB, NULL, true, TG_HSF_BAD_CERT},
    {"other trust domain", "otherdomain", WEB, NULL, true, TG_HSF_TRUST_DOMAIN},
    {"self-signed client", "selfsigned", WEB, NULL, true, TG_HSF_UNTRUSTED},
};

static void make_bad_clients(void)
{
    cu_certs("ca", "--out", "foreignca", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "expired", "--spiffe", API, "--expired", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "future", "--spiffe", API, "--not-yet-valid", NULL);
    cu_certs("issue", "--ca", "foreignca", "--out", "foreign", "--spiffe", API, NULL);
    cu_certs("issue", "--ca", "ca", "--out", "twouri", "--spiffe", API, "--uri",
             "spiffe://mesh.local/ns/default/sa/web", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "nosan", "--spiffe", "spiffe://mesh.local/x",
             "--no-san", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "caleaf", "--spiffe", API, "--ca-flag", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "srvonly", "--spiffe", API, "--eku", "server", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "otherdomain", "--spiffe",
             "spiffe://other.local/ns/default/sa/api", NULL);
    cu_certs("issue", "--self-signed", "--out", "selfsigned", "--spiffe", API, NULL);
}

/* tg_tls_verify_chain (tollgate-certs verify) on the leaf of prefix.pem, as a server with
 * ca.pem and the trust domain mesh.local: its verdict. */
static int offline_verdict(const char *prefix, enum tg_hs_fail *fail)
{
    struct tg_identity trust;
    struct tg_tls_settings st = {.server = true, .max_chain_depth = 4};
    struct tg_cert_info leaf;
    static unsigned char der[16384];
    const unsigned char *ders[1] = {der};
    size_t len[1], pem_len;
    struct tg_tls_chain chain = {ders, len, 1};
    char name[64], why[TG_ERRLEN] = "";
    char *pem;
    int n, rc;

    memset(&trust, 0, sizeof(trust));
    snprintf(name, sizeof(name), "%s.pem", prefix);
    pem = cu_read(name, &pem_len);
    n = wc_CertPemToDer((const unsigned char *)pem, (int)pem_len, der, (int)sizeof(der), CERT_TYPE);
    ck_assert_int_gt(n, 0);
    len[0] = (size_t)n;
    trust.bundle_pem = cu_read("ca.pem", &trust.bundle_len);
    snprintf(trust.trust_domain, sizeof(trust.trust_domain), "mesh.local");
    rc = tg_tls_verify_chain(&trust, &st, &chain, &leaf, fail, why);
    ck_assert_msg(rc == 0 || rc == TG_EPEER, "%s: %d %s", prefix, rc, why);
    free(pem);
    free(trust.bundle_pem);
    return rc;
}

START_TEST(test_tls_refusals)
{
    struct side c, s;
    struct side *refuser;
    const char *why;

    make_bad_clients();
    side_init(&s, "web", "ca.pem", true, refusals[_i].allow, NULL);
    side_init(&c, refusals[_i].client, "ca.pem", false, refusals[_i].server_id, NULL);
    handshake(&c, &s);
    refuser = refusals[_i].server_refuses ? &s : &c;
    ck_assert_msg(refuser->rc == TG_EPEER, "%s: rc %d", refusals[_i].name, refuser->rc);
    ck_assert_msg(fail_of(refuser) == refusals[_i].why, "%s: reason %s (%s)", refusals[_i].name,
                  tg_hs_fail_name(fail_of(refuser)), (tg_tls_fail(refuser->tls, &why), why));
    ck_assert_ptr_null(tg_tls_peer(refuser->tls)->id);
    /* away from a handshake (tollgate-certs verify) the same chain gets the same reason */
    if (refusals[_i].server_refuses && refusals[_i].allow == NULL) {
        enum tg_hs_fail fail = TG_HSF_OTHER;

        ck_assert_int_eq(offline_verdict(refusals[_i].client, &fail), TG_EPEER);
        ck_assert_msg(fail == refusals[_i].why, "%s: offline reason %s, handshake's %s",
                      refusals[_i].name, tg_hs_fail_name(fail), tg_hs_fail_name(refusals[_i].why));
    }
    side_free(&c);
    side_free(&s);
}
END_TEST

START_TEST(test_tls_verify_chain_accepts_what_the_handshake_accepts)
{
    enum tg_hs_fail fail = TG_HSF_OTHER;

    ck_assert_int_eq(offline_verdict("api", &fail), 0);
    ck_assert_int_eq(offline_verdict("web", &fail), 0);
}
END_TEST

START_TEST(test_tls_extra_trust_domain_accepted_when_listed)
{
    struct side c, s;
    char *domains[] = {"other.local"};
    struct tg_strlist list = {domains, 1};
    struct tg_tls_settings st = {.max_chain_depth = 4, .trust_domains = &list};

    cu_certs("issue", "--ca", "ca", "--out", "otherdomain", "--spiffe",
             "spiffe://other.local/ns/default/sa/api", NULL);
    side_init(&s, "web", "ca.pem", true, NULL, &st);
    side_init(&c, "otherdomain", "ca.pem", false, WEB, NULL);
    handshake(&c, &s);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_str_eq(tg_tls_peer(s.tls)->id, "spiffe://other.local/ns/default/sa/api");
    side_free(&c);
    side_free(&s);
}
END_TEST

START_TEST(test_tls_chain_depth_limit)
{
    struct side c, s;
    struct tg_tls_settings st = {.max_chain_depth = 1};

    cu_certs("intermediate", "--ca", "ca", "--out", "inter", NULL);
    cu_certs("issue", "--ca", "inter", "--out", "deep", "--spiffe", API, NULL);
    /* two certificates sent (leaf + intermediate): fine with the default depth of 4 ... */
    side_init(&s, "web", "ca.pem", true, NULL, NULL);
    side_init(&c, "deep", "ca.pem", false, WEB, NULL);
    handshake(&c, &s);
    ck_assert_int_eq(s.rc, 0);
    side_free(&c);
    side_free(&s);
    /* ... refused with max_chain_depth 1 */
    side_init(&s, "web", "ca.pem", true, NULL, &st);
    side_init(&c, "deep", "ca.pem", false, WEB, NULL);
    handshake(&c, &s);
    ck_assert_int_eq(s.rc, TG_EPEER);
    ck_assert_int_eq(fail_of(&s), TG_HSF_BAD_CERT);
    side_free(&c);
    side_free(&s);
}
END_TEST

/* Full handshake, then the client reads the server's ticket and keeps it; the next
 * connection resumes: no certificates, both sides still know who the other is. */
static void full_then_ticket(struct side *c, struct side *s, struct tg_tls_cache *cache)
{
    char buf[16];

    const char *why = "";

    handshake(c, s);
    ck_assert_int_eq(c->rc, 0);
    ck_assert_msg(s->rc == 0, "server: %d %s", s->rc, (tg_tls_fail(s->tls, &why), why));
    ck_assert(!tg_tls_resumed(c->tls));
    carry(s, c); /* NewSessionTicket */
    ck_assert_int_eq(tg_tls_read(c->tls, buf, sizeof(buf)), TG_EAGAIN);
    tg_tls_remember(c->tls, cache, "127.0.0.1:8443");
}

START_TEST(test_tls_resumption_keeps_identities)
{
    struct tg_tls_settings st = {.max_chain_depth = 4, .resumption = true};
    struct tg_tls_cache *cache;
    struct side c, s;

    ck_assert_int_eq(tg_tls_cache_new(16, &cache), 0);
    side_init(&s, "web", "ca.pem", true, API, &st);
    side_init(&c, "api", "ca.pem", false, WEB, &st);
    full_then_ticket(&c, &s, cache);
    /* a second connection on the same contexts */
    tg_tls_free(c.tls);
    tg_tls_free(s.tls);
    ck_assert_int_eq(tg_tls_new(s.ctx, &pool, &s.rule, &s.tls), 0);
    ck_assert_int_eq(tg_tls_new(c.ctx, &pool, &c.rule, &c.tls), 0);
    c.rc = s.rc = TG_EAGAIN;
    tg_tls_offer(c.tls, cache, "127.0.0.1:8443");
    handshake(&c, &s);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(s.rc, 0);
    ck_assert(tg_tls_resumed(c.tls));
    ck_assert(tg_tls_resumed(s.tls));
    ck_assert_str_eq(tg_tls_peer(s.tls)->id, API);
    ck_assert_str_eq(tg_tls_peer(c.tls)->id, WEB);
    ck_assert_uint_eq(strlen(tg_tls_peer(s.tls)->sha256), 64);
    /* another upstream key has no ticket: full handshake */
    tg_tls_free(c.tls);
    tg_tls_free(s.tls);
    ck_assert_int_eq(tg_tls_new(s.ctx, &pool, &s.rule, &s.tls), 0);
    ck_assert_int_eq(tg_tls_new(c.ctx, &pool, &c.rule, &c.tls), 0);
    c.rc = s.rc = TG_EAGAIN;
    tg_tls_offer(c.tls, cache, "127.0.0.1:9999");
    handshake(&c, &s);
    ck_assert_int_eq(s.rc, 0);
    ck_assert(!tg_tls_resumed(s.tls));
    side_free(&c);
    side_free(&s);
    tg_tls_cache_free(cache);
}
END_TEST

/* A ticket never outlives the server context (a new generation: new bundle, revocations
 * or rules) and a resumed peer still meets the allow list of the session it resumes in. */
START_TEST(test_tls_resumption_refused_across_generations_and_rules)
{
    struct tg_tls_settings st = {.max_chain_depth = 4, .resumption = true};
    struct tg_tls_cache *cache;
    struct side c, s, s2, c2;
    struct tg_tls *t;
    char *other[] = {"spiffe://mesh.local/ns/default/sa/other"};
    struct tg_strlist only_other = {other, 1};
    struct tg_tls_peer_rule strict = {&only_other};

    ck_assert_int_eq(tg_tls_cache_new(16, &cache), 0);
    side_init(&s, "web", "ca.pem", true, API, &st);
    side_init(&c, "api", "ca.pem", false, WEB, &st);
    full_then_ticket(&c, &s, cache);

    /* same server context, an allow list that no longer has the client: refused */
    ck_assert_int_eq(tg_tls_new(s.ctx, &pool, &strict, &t), 0);
    tg_tls_free(s.tls);
    s.tls = t;
    tg_tls_free(c.tls);
    ck_assert_int_eq(tg_tls_new(c.ctx, &pool, &c.rule, &c.tls), 0);
    c.rc = s.rc = TG_EAGAIN;
    tg_tls_offer(c.tls, cache, "127.0.0.1:8443");
    handshake(&c, &s);
    ck_assert_int_eq(s.rc, TG_EPEER);
    ck_assert_int_eq(fail_of(&s), TG_HSF_NOT_ALLOWED);

    /* a new server context (new generation) cannot open the old ticket: full handshake */
    side_init(&s2, "web", "ca.pem", true, API, &st);
    tg_tls_free(c.tls);
    ck_assert_int_eq(tg_tls_new(c.ctx, &pool, &c.rule, &c.tls), 0);
    c.rc = TG_EAGAIN;
    tg_tls_offer(c.tls, cache, "127.0.0.1:8443");
    handshake(&c, &s2);
    ck_assert_int_eq(s2.rc, 0);
    ck_assert(!tg_tls_resumed(s2.tls));
    ck_assert_str_eq(tg_tls_peer(s2.tls)->id, API);

    /* a new client context (new generation) does not offer the old ticket at all */
    side_init(&c2, "api", "ca.pem", false, WEB, &st);
    tg_tls_offer(c2.tls, cache, "127.0.0.1:8443");
    tg_tls_free(s2.tls);
    ck_assert_int_eq(tg_tls_new(s2.ctx, &pool, &s2.rule, &s2.tls), 0);
    s2.rc = TG_EAGAIN;
    handshake(&c2, &s2);
    ck_assert_int_eq(c2.rc, 0);
    ck_assert(!tg_tls_resumed(c2.tls));
    side_free(&c2);
    side_free(&s2);
    side_free(&c);
    side_free(&s);
    tg_tls_cache_free(cache);
}
END_TEST

START_TEST(test_tls_version_text_names_aesni)
{
    ck_assert_ptr_nonnull(strstr(tg_tls_version_text(), "AES-NI"));
    ck_assert_ptr_nonnull(strstr(tg_tls_version_text(), "wolfSSL"));
}
END_TEST

/* tls.cipher_suites and pushed proxy settings: only suites we offer, each once, one of TLS 1.3. */
START_TEST(test_tls_check_suites)
{
    static const struct {
        const char *v[3];
        bool tls12;
        const char *want; /* NULL: accepted */
    } cases[] = {
        {{"TLS13-AES128-GCM-SHA256"}, false, NULL},
        {{"TLS_CHACHA20_POLY1305_SHA256", "TLS13-AES256-GCM-SHA384"}, false, NULL},
        {{"TLS13-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"}, true, NULL},
        {{"ECDHE-ECDSA-AES128-GCM-SHA256"}, false, "TLS 1.2 only"},
        {{"ECDHE-ECDSA-AES128-GCM-SHA256"}, true, "none for TLS 1.3"},
        {{"TLS13-AES128-CCM-SHA256"}, false, "unknown or not offered"},
        {{"AES128-SHA"}, true, "unknown or not offered"},
        {{"NULL-SHA256"}, true, "unknown or not offered"},
        {{"TLS13-AES128-GCM-SHA256", "TLS_AES_128_GCM_SHA256"}, false, "listed twice"},
    };

    for (size_t i = 0; i < TG_NELEM(cases); i++) {
        struct tg_strlist l = {(char **)cases[i].v, 0};
        char why[TG_ERRLEN] = "";
        int rc;

        while (l.n < 3 && cases[i].v[l.n] != NULL)
            l.n++;
        rc = tg_tls_check_suites(&l, cases[i].tls12, why);
        if (cases[i].want == NULL)
            ck_assert_msg(rc == 0, "case %zu refused: %s", i, why);
        else
            ck_assert_msg(rc == TG_EINVAL && strstr(why, cases[i].want) != NULL,
                          "case %zu: rc %d, %s", i, rc, why);
    }
}
END_TEST

/* A server restricted to one suite: the handshake picks it. */
START_TEST(test_tls_cipher_suites_applied)
{
    char *only[] = {"TLS13-CHACHA20-POLY1305-SHA256"};
    struct tg_strlist suites = {only, 1};
    struct tg_tls_settings st = {.max_chain_depth = 4, .cipher_suites = &suites};
    struct side c, s;

    side_init(&s, "web", "ca.pem", true, NULL, &st);
    side_init(&c, "api", "ca.pem", false, WEB, NULL);
    handshake(&c, &s);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_str_eq(tg_tls_cipher(c.tls), "TLS13-CHACHA20-POLY1305-SHA256");
    side_free(&c);
    side_free(&s);
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("handshake");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tls_mutual_handshake_and_data);
    tcase_add_test(tc, test_tls_check_suites);
    tcase_add_test(tc, test_tls_cipher_suites_applied);
    tcase_add_loop_test(tc, test_tls_refusals, 0, TG_NELEM(refusals));
    tcase_add_test(tc, test_tls_verify_chain_accepts_what_the_handshake_accepts);
    tcase_add_test(tc, test_tls_extra_trust_domain_accepted_when_listed);
    tcase_add_test(tc, test_tls_chain_depth_limit);
    tcase_add_test(tc, test_tls_resumption_keeps_identities);
    tcase_add_test(tc, test_tls_resumption_refused_across_generations_and_rules);
    tcase_add_test(tc, test_tls_version_text_names_aesni);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tls_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

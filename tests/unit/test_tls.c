/* tls.c: mutual TLS 1.3 handshakes run in memory through our I/O adapter, and the peer
 * checks that run inside the handshake. Certificates are made at run time. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/curve25519.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "certs_util.h"
#include "unit_util.h"
#include "tollgate/tls.h"

#define WEB "spiffe://mesh.local/ns/default/sa/web"
#define API "spiffe://mesh.local/ns/default/sa/api"

struct side {
    struct tg_identity id;      /* filled from files without tg_identity_load's checks */
    struct tg_identity *loaded; /* or loaded with them (side_init_id), freed with the side */
    struct tg_tls_ctx *ctx;
    struct tg_tls *tls;
    struct tg_strlist ids;
    char *idv[2];
    struct tg_tls_peer_rule rule;
    int rc;
};

static struct tg_pool pool;
/* Every certificate the cases use, made once for the test case (make_pki, in the parent
 * process); each case works on a copy of it in cu_dir. */
static char pki_dir[256];

static void setup(void)
{
    char cmd[600];

    cu_setup();
    snprintf(cmd, sizeof(cmd), "cp -a '%s/.' '%s/'", pki_dir, cu_dir);
    ck_assert_int_eq(system(cmd), 0);
    tg_pool_init(&pool, 20 * 1024, 8);
    ck_assert_int_eq(tg_tls_init(), 0);
}

static void teardown(void)
{
    tg_pool_cleanup(&pool);
    cu_teardown();
}

/* s's allow list (peer_id, or nobody) and its first session on s->ctx. */
static void side_start(struct side *s, const char *peer_id)
{
    s->idv[0] = tg_unconst(peer_id);
    s->ids.v = s->idv;
    s->ids.n = peer_id != NULL ? 1 : 0;
    s->rule.ids = &s->ids;
    ck_assert_int_eq(tg_tls_new(s->ctx, &pool, &s->rule, &s->tls), 0);
    s->rc = TG_EAGAIN;
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
    side_start(s, peer_id);
}

static void side_free(struct side *s)
{
    tg_tls_free(s->tls);
    tg_tls_ctx_free(s->ctx);
    tg_identity_free(s->loaded);
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

/* x refused its peer (TG_EPEER) for why; what (a case's name) and x's own text otherwise. */
static void assert_refused(struct side *x, enum tg_hs_fail why, const char *what)
{
    const char *text = "";
    enum tg_hs_fail got = tg_tls_fail(x->tls, &text);

    ck_assert_msg(x->rc == TG_EPEER && got == why, "%s: rc %d reason %s, want %s (%s)", what, x->rc,
                  tg_hs_fail_name(got), tg_hs_fail_name(why), text);
}

/* web serving api, both done with their handshakes. */
static void connected(struct side *c, struct side *s)
{
    side_init(s, "web", "ca.pem", true, API, NULL);
    side_init(c, "api", "ca.pem", false, WEB, NULL);
    handshake(c, s);
    ck_assert_int_eq(c->rc, 0);
    ck_assert_int_eq(s->rc, 0);
}

START_TEST(test_tls_mutual_handshake_and_data)
{
    struct side c, s;
    char buf[64];
    int n;

    connected(&c, &s);
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
    rc = tg_tls_verify_chain(&trust, &st, NULL, &chain, &leaf, fail, why);
    ck_assert_msg(rc == 0 || rc == TG_EPEER, "%s: %d %s", prefix, rc, why);
    free(pem);
    free(trust.bundle_pem);
    return rc;
}

/* The kind a client hears for each refusal of the server's (tls.h, "Refusal reasons in
 * alerts"). */
static const char *heard_kind(enum tg_hs_fail why)
{
    switch (why) {
    case TG_HSF_NOT_ALLOWED:
        return "denied";
    case TG_HSF_EXPIRED:
    case TG_HSF_NOT_YET_VALID:
        return "expired";
    case TG_HSF_UNTRUSTED:
    case TG_HSF_TRUST_DOMAIN:
        return "untrusted";
    case TG_HSF_BAD_CERT:
    case TG_HSF_BAD_SPIFFE:
        return "bad_cert";
    default:
        return NULL;
    }
}

/* c's handshake failed on the server's alert, or (TLS 1.3: the client is done first) its
 * first read does: either way TG_HSF_PEER_REFUSED with the kind of why. */
static void expect_heard(struct side *c, enum tg_hs_fail why, const char *what)
{
    char buf[16];
    const char *text = "";

    if (c->rc == 0) {
        c->rc = tg_tls_read(c->tls, buf, sizeof(buf));
    }
    ck_assert_msg(c->rc == TG_EPEER && tg_tls_fail(c->tls, &text) == TG_HSF_PEER_REFUSED,
                  "%s: client rc %d (%s)", what, c->rc, text);
    ck_assert_msg(tg_tls_peer_refusal(c->tls) != NULL &&
                      strcmp(tg_tls_peer_refusal(c->tls), heard_kind(why)) == 0,
                  "%s: heard %s, want %s (%s)", what, tg_tls_peer_refusal(c->tls), heard_kind(why),
                  text);
}

/* After the handshake, a refusal by policy ends the session with its kind's alert; a kind
 * without one (a limit) with close_notify. */
START_TEST(test_tls_refusal_after_handshake)
{
    static const struct {
        const char *reason, *heard;
    } cases[] = {
        {"denied: rule \"x\" (DENY) matched", "denied"},
        {"revoked: certificate serial 3f is revoked", "revoked"},
        {"rate_limited: 5 concurrent connections already", NULL},
    };

    for (size_t i = 0; i < TG_NELEM(cases); i++) {
        struct side c, s;
        char buf[16];
        int rc;

        connected(&c, &s);
        ck_assert_int_eq(tg_buf_reserve(tg_tls_cipher_out(s.tls), &pool, true), 0);
        tg_tls_refuse(s.tls, cases[i].reason);
        tg_tls_shutdown(s.tls); /* no second record after the alert */
        carry(&s, &c);
        rc = tg_tls_read(c.tls, buf, sizeof(buf));
        if (cases[i].heard == NULL) {
            ck_assert_msg(rc == TG_ECLOSED, "%s: rc %d", cases[i].reason, rc);
        } else {
            ck_assert_msg(rc == TG_EPEER, "%s: rc %d", cases[i].reason, rc);
            ck_assert_str_eq(tg_tls_peer_refusal(c.tls), cases[i].heard);
        }
        ck_assert_uint_eq(tg_buf_len(tg_tls_cipher_out(s.tls)), 0);
        side_free(&c);
        side_free(&s);
    }
    ck_assert_str_eq(tg_tls_alert_kind(49), "denied");
    ck_assert_ptr_null(tg_tls_alert_kind(40)); /* handshake_failure: none of ours */
}
END_TEST

START_TEST(test_tls_refusals)
{
    struct side c, s;
    struct side *refuser;
    const char *why;

    side_init(&s, "web", "ca.pem", true, refusals[_i].allow, NULL);
    side_init(&c, refusals[_i].client, "ca.pem", false, refusals[_i].server_id, NULL);
    handshake(&c, &s);
    refuser = refusals[_i].server_refuses ? &s : &c;
    ck_assert_msg(refuser->rc == TG_EPEER, "%s: rc %d", refusals[_i].name, refuser->rc);
    ck_assert_msg(fail_of(refuser) == refusals[_i].why, "%s: reason %s (%s)", refusals[_i].name,
                  tg_hs_fail_name(fail_of(refuser)), (tg_tls_fail(refuser->tls, &why), why));
    ck_assert_ptr_null(tg_tls_peer(refuser->tls)->id);
    if (refusals[_i].server_refuses) /* the client hears which kind, in the handshake or after */
        expect_heard(&c, refusals[_i].why, refusals[_i].name);
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

/* ---- trust domains and the roots that vouch for them ---- */

#define P_API "spiffe://partner.example/ns/default/sa/api"
#define CP_ID "spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp"

static void cat(const char *out, const char *a, const char *b, const char *c)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "cd %s && cat %s %s %s > %s", cu_dir, a, b, c ? c : "", out);
    ck_assert_int_eq(system(cmd), 0);
}

/* Our roots ca and ca2, a partner's root, intermediates under ca and the partner's root, and
 * the leaves the rows below present. */
static void make_federation(void)
{
    cu_certs("ca", "--out", "ca2", "--cn", "second root of mesh.local", NULL);
    cu_certs("ca", "--out", "partner", "--cn", "partner root", NULL);
    cu_certs("intermediate", "--ca", "ca", "--out", "int", NULL);
    cu_certs("intermediate", "--ca", "partner", "--out", "pint", NULL);
    cu_certs("issue", "--ca", "ca2", "--out", "api2", "--spiffe", API, NULL);
    cu_certs("issue", "--ca", "int", "--out", "api_int", "--spiffe", API, NULL);
    cu_certs("issue", "--ca", "partner", "--out", "p_api", "--spiffe", P_API, NULL);
    cu_certs("issue", "--ca", "partner", "--out", "evil", "--spiffe", API, NULL);
    cu_certs("issue", "--ca", "pint", "--out", "evil_int", "--spiffe", API, NULL);
    cu_certs("issue", "--ca", "ca", "--out", "ours_as_partner", "--spiffe", P_API, NULL);
    cu_certs("issue", "--ca", "partner", "--out", "evil_web", "--spiffe", WEB, NULL);
    cu_certs("issue", "--ca", "partner", "--out", "evil_cp", "--spiffe", CP_ID, NULL);
    cu_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", CP_ID, NULL);
    cat("ours.pem", "ca.pem", "ca2.pem", NULL);
    /* the partner's leaf with our (public) root appended, and our own leaf sent with the
     * whole chain, root included */
    cat("evilchain.pem", "evil.pem", "ca.pem", NULL);
    cat("evilchain.key", "evil.key", "", NULL);
    cat("api_int_root.pem", "api_int.pem", "ca.pem", NULL);
    cat("api_int_root.key", "api_int.key", "", NULL);
    cat("evilcp_chain.pem", "evil_cp.pem", "ca.pem", NULL);
    cat("evilcp_chain.key", "evil_cp.key", "", NULL);
}

/* PREFIX.pem/.key loaded as tollgate does: our roots ours.pem, partner.example's partner.pem. */
static struct tg_identity *load_federated(const char *prefix)
{
    char cert[64], key[64];
    char *dv[] = {UT_STR("partner.example")}, *fv[] = {tg_unconst(cu_path("partner.pem"))};
    struct tg_strlist domains = {dv, 1}, files = {fv, 1};
    struct tg_identity_files f = {.domains = &domains, .domain_bundles = &files};
    struct tg_identity *id = NULL;
    char err[TG_ERRLEN] = "";

    snprintf(cert, sizeof(cert), "%s.pem", prefix);
    snprintf(key, sizeof(key), "%s.key", prefix);
    f.cert = cu_path(cert);
    f.key = cu_path(key);
    f.bundle = cu_path("ours.pem");
    ck_assert_msg(tg_identity_load(&f, &id, err) == 0, "%s: %s", prefix, err);
    return id;
}

/* A side over a loaded identity (which the side frees). */
static void side_init_id(struct side *s, struct tg_identity *id, bool server, const char *peer_id)
{
    struct tg_tls_settings st = {.server = server, .max_chain_depth = 4};
    char err[TG_ERRLEN] = "";

    memset(s, 0, sizeof(*s));
    s->loaded = id;
    ck_assert_msg(tg_tls_ctx_new(id, &st, &s->ctx, err) == 0, "%s", err);
    side_start(s, peer_id);
}

static const struct {
    const char *client;  /* presents CLIENT.pem (leaf first, then what it sends with it) */
    enum tg_hs_fail why; /* TG_HSF_N: served */
    const char *id;
} vouched[] = {
    {"api", TG_HSF_N, API},                          /* our root */
    {"api2", TG_HSF_N, API},                         /* our second root (a CA rotation) */
    {"api_int", TG_HSF_N, API},                      /* our root <- our intermediate */
    {"api_int_root", TG_HSF_N, API},                 /* the same, our root sent too */
    {"p_api", TG_HSF_N, P_API},                      /* the partner's own ID from its root */
    {"evil", TG_HSF_TRUST_DOMAIN, API},              /* the partner's root vouching for our ID */
    {"evil_int", TG_HSF_TRUST_DOMAIN, API},          /* ... through its intermediate */
    {"evilchain", TG_HSF_UNTRUSTED, API},            /* ... with our root appended to its chain */
    {"ours_as_partner", TG_HSF_TRUST_DOMAIN, P_API}, /* our root vouching for the partner */
};

/* Inbound: an ID is served only from a chain that ends at a root of its own trust domain. */
START_TEST(test_tls_root_vouches_only_for_its_trust_domain)
{
    struct side c, s;
    const char *why = "";

    side_init_id(&s, load_federated("web"), true, NULL);
    side_init(&c, vouched[_i].client, "ca.pem", false, WEB, NULL);
    handshake(&c, &s);
    if (vouched[_i].why == TG_HSF_N) {
        ck_assert_msg(s.rc == 0 && c.rc == 0, "%s: server %d client %d: %s", vouched[_i].client,
                      s.rc, c.rc, (tg_tls_fail(s.tls, &why), why));
        ck_assert_str_eq(tg_tls_peer(s.tls)->id, vouched[_i].id);
    } else {
        assert_refused(&s, vouched[_i].why, vouched[_i].client);
        ck_assert_ptr_null(tg_tls_peer(s.tls)->id);
        ck_assert_str_eq(tg_tls_peer(s.tls)->claimed, vouched[_i].id);
    }
    side_free(&c);
    side_free(&s);
}
END_TEST

/* A context remembers the chains it found anchored (by their hash, with their domain): a
 * remembered good chain does not let another one through, nor a refused one become good. */
START_TEST(test_tls_remembered_chains_stay_exact)
{
    static const struct {
        const char *client;
        enum tg_hs_fail why;
    } seq[] = {
        {"api", TG_HSF_N},
        {"evil", TG_HSF_TRUST_DOMAIN},
        {"api", TG_HSF_N},
        {"evil", TG_HSF_TRUST_DOMAIN},
        {"evilchain", TG_HSF_UNTRUSTED},
        {"api_int", TG_HSF_N},
        {"evil_int", TG_HSF_TRUST_DOMAIN},
        {"api_int", TG_HSF_N},
        {"p_api", TG_HSF_N},
        {"ours_as_partner", TG_HSF_TRUST_DOMAIN},
    };
    struct side s;

    side_init_id(&s, load_federated("web"), true, NULL);
    for (size_t i = 0; i < TG_NELEM(seq); i++) {
        struct side c;

        side_init(&c, seq[i].client, "ca.pem", false, WEB, NULL);
        tg_tls_free(s.tls);
        ck_assert_int_eq(tg_tls_new(s.ctx, &pool, &s.rule, &s.tls), 0);
        s.rc = TG_EAGAIN;
        handshake(&c, &s);
        if (seq[i].why == TG_HSF_N)
            ck_assert_msg(s.rc == 0, "step %zu (%s): rc %d", i, seq[i].client, s.rc);
        else
            assert_refused(&s, seq[i].why, seq[i].client);
        side_free(&c);
    }
    side_free(&s);
}
END_TEST

/* Outbound: a server the partner's root vouches for under our ID is refused by the client. */
START_TEST(test_tls_partner_cannot_serve_as_our_id)
{
    struct side c, s;

    side_init(&s, "evil_web", "ours.pem", true, NULL, NULL);
    side_init_id(&c, load_federated("api"), false, WEB);
    handshake(&c, &s);
    assert_refused(&c, TG_HSF_TRUST_DOMAIN, "evil_web");
    side_free(&c);
    side_free(&s);
}
END_TEST

/* A client presenting prefix.pem (expecting WEB) is refused by the server s for why; frees
 * both sides. */
static void client_refused(struct side *s, const char *prefix, enum tg_hs_fail why)
{
    struct side c;

    side_init(&c, prefix, "ca.pem", false, WEB, NULL);
    handshake(&c, s);
    assert_refused(s, why, prefix);
    side_free(&c);
    side_free(s);
}

/* The check is a signature check: a root of another domain with our root's subject and key
 * identifier, even where wolfSSL's store took it for ours, does not vouch for our IDs. */
START_TEST(test_tls_copycat_root_is_not_ours)
{
    char cmd[2048], *copycat, *ours;
    size_t copycat_len, ours_len;
    struct side s;
    struct tg_identity *id;

    snprintf(cmd, sizeof(cmd),
             "cd %s && set -e; o=openssl;"
             "skid=$($o x509 -in ca.pem -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' ');"
             "$o ecparam -name prime256v1 -genkey -noout -out cc.key;"
             "$o x509 -in ca.pem -x509toreq -signkey cc.key -out cc.csr 2>/dev/null;"
             "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign\\n"
             "subjectKeyIdentifier=%%s\\n' $skid > cc.ext;"
             "$o x509 -req -in cc.csr -signkey cc.key -days 2 -extfile cc.ext -out cc.pem "
             "2>/dev/null;"
             "printf 'basicConstraints=critical,CA:FALSE\\nextendedKeyUsage=clientAuth\\n"
             "subjectAltName=URI:%s\\nauthorityKeyIdentifier=keyid\\n' > ccl.ext;"
             "$o req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ccleaf.key "
             "-out ccl.csr -subj /CN=api 2>/dev/null;"
             "$o x509 -req -in ccl.csr -CA cc.pem -CAkey cc.key -CAcreateserial -days 1 "
             "-extfile ccl.ext -out ccleaf.pem 2>/dev/null",
             cu_dir, API);
    ck_assert_int_eq(system(cmd), 0);
    /* a server whose wolfSSL store holds the copycat first (so it passes wolfSSL's own
     * check), with the copycat as copycat.example's root and ca as ours */
    copycat = cu_read("cc.pem", &copycat_len);
    ours = cu_read("ca.pem", &ours_len);
    id = calloc(1, sizeof(*id));
    id->chain_pem = cu_read("web.pem", &id->chain_len);
    id->key_pem = cu_read("web.key", &id->key_len);
    id->bundle_pem = malloc(copycat_len + ours_len + 1);
    memcpy(id->bundle_pem, copycat, copycat_len);
    memcpy(id->bundle_pem + copycat_len, ours, ours_len + 1);
    id->bundle_len = copycat_len + ours_len;
    id->domains = calloc(2, sizeof(*id->domains));
    id->n_domains = 2;
    id->domains[0] =
        (struct tg_trust_roots){.name = "mesh.local", .off = copycat_len, .len = ours_len};
    id->domains[1] = (struct tg_trust_roots){.name = "copycat.example", .len = copycat_len};
    snprintf(id->trust_domain, sizeof(id->trust_domain), "mesh.local");
    side_init_id(&s, id, true, NULL);
    client_refused(&s, "ccleaf", TG_HSF_TRUST_DOMAIN);
    free(copycat);
    free(ours);
}
END_TEST

/* sigmemo.c: what each call of wc_ecc_verify_hash (wrapped at link time, as wolfSSL's are)
 * answers, and how many were answered from memory. */
static int memo_verify(const byte *sig, word32 sig_len, const byte *hash, ecc_key *key,
                       uint64_t *hits)
{
    uint64_t misses, before;
    int res = -1;

    tg_tls_sigmemo_stats(&before, &misses);
    ck_assert_int_eq(wc_ecc_verify_hash(sig, sig_len, hash, 32, &res, key) == 0 || res == 0, 1);
    tg_tls_sigmemo_stats(hits, &misses);
    *hits -= before;
    return res;
}

/* Only an exact (key, hash, signature) that verified before is answered from memory: a
 * signature changed in one bit, another hash, another key, or a failure seen before, are
 * checked in full and fail. */
START_TEST(test_tls_sigmemo_remembers_only_what_verified)
{
    byte hash[32], other[32], sig[ECC_MAX_SIG_SIZE], bad[ECC_MAX_SIG_SIZE];
    word32 sig_len = sizeof(sig);
    ecc_key key, key2;
    WC_RNG rng;
    uint64_t hits;

    memset(hash, 0x5a, sizeof(hash));
    memset(other, 0xa5, sizeof(other));
    ck_assert_int_eq(wc_InitRng(&rng), 0);
    ck_assert_int_eq(wc_ecc_init(&key), 0);
    ck_assert_int_eq(wc_ecc_init(&key2), 0);
    ck_assert_int_eq(wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1), 0);
    ck_assert_int_eq(wc_ecc_make_key_ex(&rng, 32, &key2, ECC_SECP256R1), 0);
    ck_assert_int_eq(wc_ecc_sign_hash(hash, sizeof(hash), sig, &sig_len, &rng, &key), 0);
    memcpy(bad, sig, sig_len);
    bad[sig_len - 1] ^= 1; /* the last byte of s: still well-formed DER */

    ck_assert_int_eq(memo_verify(bad, sig_len, hash, &key, &hits), 0);
    ck_assert_int_eq(memo_verify(bad, sig_len, hash, &key, &hits), 0); /* failures: not kept */
    ck_assert_uint_eq(hits, 0);
    ck_assert_int_eq(memo_verify(sig, sig_len, hash, &key, &hits), 1);
    ck_assert_uint_eq(hits, 0); /* the first time: checked in full */
    ck_assert_int_eq(memo_verify(sig, sig_len, hash, &key, &hits), 1);
    ck_assert_uint_eq(hits, 1); /* then remembered */
    ck_assert_int_eq(memo_verify(bad, sig_len, hash, &key, &hits), 0);
    ck_assert_int_eq(memo_verify(sig, sig_len, other, &key, &hits), 0);
    ck_assert_int_eq(memo_verify(sig, sig_len, hash, &key2, &hits), 0);
    ck_assert_int_eq(memo_verify(sig, sig_len - 1, hash, &key, &hits), 0);
    ck_assert_uint_eq(hits, 0);
    ck_assert_int_eq(memo_verify(sig, sig_len, hash, &key, &hits), 1);
    ck_assert_uint_eq(hits, 1);
    wc_ecc_free(&key);
    wc_ecc_free(&key2);
    wc_FreeRng(&rng);
}
END_TEST

/* A peer met again: each side's check of the CA's signature on the other's certificate comes
 * from memory. A certificate whose signature was changed after its good twin was remembered
 * is refused as untrusted: the memory answers only for the exact signature. */
START_TEST(test_tls_sigmemo_second_handshake_and_forged_twin)
{
    unsigned char der[4096], pem[8192];
    char *text, *key;
    size_t text_len, key_len;
    uint64_t hits0, hits1, misses;
    struct side c, s;
    int n;

    connected(&c, &s);
    side_free(&c);
    side_free(&s);
    tg_tls_sigmemo_stats(&hits0, &misses);
    connected(&c, &s);
    ck_assert_str_eq(tg_tls_peer(s.tls)->id, API);
    side_free(&c);
    side_free(&s);
    tg_tls_sigmemo_stats(&hits1, &misses);
    ck_assert_uint_ge(hits1 - hits0, 2); /* the client's leaf and the server's */

    text = cu_read("api.pem", &text_len);
    n = wc_CertPemToDer((const unsigned char *)text, (int)text_len, der, (int)sizeof(der),
                        CERT_TYPE);
    ck_assert_int_gt(n, 0);
    der[n - 1] ^= 1; /* the CA's signature, last byte of s */
    n = wc_DerToPem(der, (word32)n, pem, (word32)sizeof(pem) - 1, CERT_TYPE);
    ck_assert_int_gt(n, 0);
    pem[n] = '\0';
    cu_write("forged.pem", (const char *)pem);
    key = cu_read("api.key", &key_len);
    cu_write("forged.key", key);
    side_init(&s, "web", "ca.pem", true, API, NULL);
    client_refused(&s, "forged", TG_HSF_UNTRUSTED);
    free(text);
    free(key);
}
END_TEST

/* A chain the context accepted before skips the leaf's parse (known_take), not the checks of
 * the session: the same peer comes out with the same facts, and an allow list that does not
 * name it still refuses it. */
START_TEST(test_tls_known_chain_keeps_session_checks)
{
    struct side c, s;
    struct tg_peer_info first;
    const struct tg_peer_info *p;

    connected(&c, &s);
    first = *tg_tls_peer(s.tls);
    first.id = strdup(first.id);
    first.links = malloc(first.n_links * sizeof(*first.links) + 1);
    memcpy(first.links, tg_tls_peer(s.tls)->links, first.n_links * sizeof(*first.links));
    side_free(&c);
    for (int i = 0; i < 2; i++) { /* the second time from the known chain */
        tg_tls_free(s.tls);
        side_start(&s, API);
        side_init(&c, "api", "ca.pem", false, WEB, NULL);
        handshake(&c, &s);
        ck_assert_int_eq(s.rc, 0);
        p = tg_tls_peer(s.tls);
        ck_assert_str_eq(p->id, first.id);
        ck_assert_str_eq(p->serial, first.serial);
        ck_assert_str_eq(p->sha256, first.sha256);
        ck_assert_int_eq(p->not_after, first.not_after);
        ck_assert_uint_eq(p->n_links, first.n_links);
        ck_assert_int_eq(memcmp(p->links, first.links, p->n_links * sizeof(*p->links)), 0);
        side_free(&c);
    }
    tg_tls_free(s.tls);
    side_start(&s, WEB); /* api is not allowed here */
    client_refused(&s, "api", TG_HSF_NOT_ALLOWED);
    free(first.id);
    free(first.links);
}
END_TEST

/* The control-plane client trusts the bootstrap root and our own trust domain's roots, never
 * a federated domain's, though our identity carries them. */
START_TEST(test_tls_control_plane_only_from_our_roots)
{
    static const struct {
        const char *server;
        bool with_identity, served;
    } cases[] = {
        {"cp", false, true},           {"cp", true, true},
        {"evil_cp", false, false},     {"evil_cp", true, false},
        {"evilcp_chain", true, false},
    };
    char *ca;
    size_t ca_len;

    ca = cu_read("ca.pem", &ca_len);
    for (size_t i = 0; i < TG_NELEM(cases); i++) {
        struct tg_tls_settings st = {.server = true, .max_chain_depth = 4, .peer_optional = true};
        struct tg_tls_settings cst = {.max_chain_depth = 4};
        struct tg_identity *id = cases[i].with_identity ? load_federated("api") : NULL;
        struct side c, s;
        char err[TG_ERRLEN] = "";

        side_init(&s, cases[i].server, "ca.pem", true, NULL, &st);
        memset(&c, 0, sizeof(c));
        ck_assert_msg(tg_tls_ctx_new_cp(id, ca, ca_len, &cst, &c.ctx, err) == 0, "%s", err);
        c.idv[0] = UT_STR(CP_ID);
        c.ids = (struct tg_strlist){c.idv, 1};
        c.rule.ids = &c.ids;
        ck_assert_int_eq(tg_tls_new(c.ctx, &pool, &c.rule, &c.tls), 0);
        c.rc = TG_EAGAIN;
        c.loaded = id;
        handshake(&c, &s);
        if (cases[i].served)
            ck_assert_msg(c.rc == 0, "case %zu: rc %d", i, c.rc);
        else
            ck_assert_msg(c.rc == TG_EPEER && (fail_of(&c) == TG_HSF_UNTRUSTED ||
                                               fail_of(&c) == TG_HSF_TRUST_DOMAIN),
                          "case %zu (%s): rc %d reason %s", i, cases[i].server, c.rc,
                          tg_hs_fail_name(fail_of(&c)));
        side_free(&c);
        side_free(&s);
    }
    free(ca);
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
    assert_refused(&s, TG_HSF_BAD_CERT, "deep, max_chain_depth 1");
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

/* A new session of x on its context, under its own rule, ready for a handshake. */
static void renew(struct side *x)
{
    tg_tls_free(x->tls);
    ck_assert_int_eq(tg_tls_new(x->ctx, &pool, &x->rule, &x->tls), 0);
    x->rc = TG_EAGAIN;
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
    renew(&s);
    renew(&c);
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
    renew(&s);
    renew(&c);
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
    char *other[] = {UT_STR("spiffe://mesh.local/ns/default/sa/other")};
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
    s.rc = TG_EAGAIN;
    renew(&c);
    tg_tls_offer(c.tls, cache, "127.0.0.1:8443");
    handshake(&c, &s);
    assert_refused(&s, TG_HSF_NOT_ALLOWED, "resumed outside the allow list");

    /* a new server context (new generation) cannot open the old ticket: full handshake */
    side_init(&s2, "web", "ca.pem", true, API, &st);
    renew(&c);
    tg_tls_offer(c.tls, cache, "127.0.0.1:8443");
    handshake(&c, &s2);
    ck_assert_int_eq(s2.rc, 0);
    ck_assert(!tg_tls_resumed(s2.tls));
    ck_assert_str_eq(tg_tls_peer(s2.tls)->id, API);

    /* a new client context (new generation) does not offer the old ticket at all */
    side_init(&c2, "api", "ca.pem", false, WEB, &st);
    tg_tls_offer(c2.tls, cache, "127.0.0.1:8443");
    renew(&s2);
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

/* x25519.c: the fixed-base key generation gives RFC 7748's public key for its test vector,
 * and wolfSSL's ladder's for any clamped key; with the static wolfSSL, both ends' key shares
 * in a handshake come from it, and the handshake agrees on a secret. */
START_TEST(test_tls_x25519_keys_by_fixed_base)
{
    static const unsigned char alice_priv[32] = {0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d,
                                                 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45,
                                                 0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a,
                                                 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a};
    static const unsigned char alice_pub[32] = {0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54,
                                                0x74, 0x8b, 0x7d, 0xdc, 0xb4, 0x3e, 0xf7, 0x5a,
                                                0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38, 0x1a, 0xf4,
                                                0xeb, 0xa4, 0xa9, 0x8e, 0xaa, 0x9b, 0x4e, 0x6a};
    unsigned char priv[32], pub[32], ladder[32];
    uint64_t before;
    struct side c, s;
    WC_RNG rng;

    memcpy(priv, alice_priv, sizeof(priv));
    priv[0] &= 248; /* the clamping X25519 applies to any scalar (RFC 7748, 5) */
    priv[31] = (unsigned char)((priv[31] & 127) | 64);
    tg_tls_x25519_public(pub, priv);
    ck_assert_mem_eq(pub, alice_pub, sizeof(pub));
    ck_assert_int_eq(wc_InitRng(&rng), 0);
    for (int i = 0; i < 500; i++) {
        ck_assert_int_eq(wc_curve25519_make_priv(&rng, sizeof(priv), priv), 0);
        if (i == 0)
            memset(priv + 1, 0, sizeof(priv) - 2); /* the smallest clamped scalar: 2^254 */
        if (i == 1)
            memset(priv + 1, 0xff, sizeof(priv) - 2); /* and near the largest */
        tg_tls_x25519_public(pub, priv);
        ck_assert_int_eq(wc_curve25519_make_pub(32, ladder, 32, priv), 0);
        ck_assert_mem_eq(pub, ladder, sizeof(pub));
    }
    wc_FreeRng(&rng);
#ifdef CUSTOM_RAND_GENERATE_BLOCK
    before = tg_tls_x25519_fixed_base_keys();
    connected(&c, &s); /* X25519 is both ends' first group */
    ck_assert_uint_eq(tg_tls_x25519_fixed_base_keys(), before + 2);
    side_free(&c);
    side_free(&s);
#else
    (void)before;
    (void)c;
    (void)s;
#endif
}
END_TEST

/* rand.c: tg_rand_block fills any size with the kernel's bytes; with the static wolfSSL
 * (CUSTOM_RAND_GENERATE_BLOCK), every draw of wolfSSL's, a key's and a handshake's, comes
 * through it, and `tollgate version` says so. */
START_TEST(test_tls_random_bytes_from_the_kernel)
{
    static unsigned char big[300000];
    unsigned char a[32], b[32];
    bool seen[256] = {false};
    size_t values = 0;
    uint64_t before;
    struct side c, s;
    WC_RNG rng;

    ck_assert_int_eq(tg_rand_block(a, sizeof(a)), 0);
    ck_assert_int_eq(tg_rand_block(b, sizeof(b)), 0);
    ck_assert_msg(memcmp(a, b, sizeof(a)) != 0, "two draws of 32 bytes alike");
    ck_assert_int_eq(tg_rand_block(big, sizeof(big)), 0); /* more than one getrandom gives */
    for (size_t i = sizeof(big) - 4096; i < sizeof(big); i++)
        seen[big[i]] = true; /* the tail too: every byte value among its last 4 KiB */
    for (int v = 0; v < 256; v++)
        values += seen[v];
    ck_assert_uint_eq(values, 256);
    ck_assert_int_eq(tg_rand_block(a, 0), 0);
#ifdef CUSTOM_RAND_GENERATE_BLOCK
    ck_assert(tg_rand_from_kernel());
    ck_assert_ptr_nonnull(strstr(tg_tls_version_text(), "random bytes from the kernel"));
    before = tg_rand_draws();
    ck_assert_int_eq(wc_InitRng(&rng), 0);
    ck_assert_int_eq(wc_RNG_GenerateBlock(&rng, a, sizeof(a)), 0);
    ck_assert_uint_eq(tg_rand_draws(), before + 1);
    wc_FreeRng(&rng);
    before = tg_rand_draws();
    connected(&c, &s); /* both ends' Hello randoms, key shares and signatures */
    ck_assert_uint_ge(tg_rand_draws(), before + 6);
    side_free(&c);
    side_free(&s);
#else
    (void)c;
    (void)s;
    (void)before;
    (void)rng;
    ck_assert(!tg_rand_from_kernel());
#endif
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
        struct tg_strlist l = {tg_unconst(cases[i].v), 0};
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
    char *only[] = {UT_STR("TLS13-CHACHA20-POLY1305-SHA256")};
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

static void make_pki(void)
{
    cu_setup();
    cu_certs("ca", "--out", "ca", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "web", "--spiffe", WEB, NULL);
    cu_certs("issue", "--ca", "ca", "--out", "api", "--spiffe", API, NULL);
    make_bad_clients();
    make_federation();
    snprintf(pki_dir, sizeof(pki_dir), "%s", cu_dir);
}

static void drop_pki(void)
{
    snprintf(cu_dir, sizeof(cu_dir), "%s", pki_dir);
    cu_teardown();
}

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE(
        "tls", "handshake", &tc, test_tls_mutual_handshake_and_data, test_tls_check_suites,
        test_tls_cipher_suites_applied, test_tls_verify_chain_accepts_what_the_handshake_accepts,
        test_tls_remembered_chains_stay_exact, test_tls_partner_cannot_serve_as_our_id,
        test_tls_copycat_root_is_not_ours, test_tls_control_plane_only_from_our_roots,
        test_tls_chain_depth_limit, test_tls_resumption_keeps_identities,
        test_tls_resumption_refused_across_generations_and_rules, test_tls_version_text_names_aesni,
        test_tls_sigmemo_remembers_only_what_verified,
        test_tls_sigmemo_second_handshake_and_forged_twin,
        test_tls_known_chain_keeps_session_checks, test_tls_random_bytes_from_the_kernel,
        test_tls_x25519_keys_by_fixed_base);

    tcase_add_unchecked_fixture(tc, make_pki, drop_pki);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_tls_refusals, 0, TG_NELEM(refusals));
    tcase_add_test(tc, test_tls_refusal_after_handshake);
    tcase_add_loop_test(tc, test_tls_root_vouches_only_for_its_trust_domain, 0, TG_NELEM(vouched));
    return s;
}

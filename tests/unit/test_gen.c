/* gen.c + identity.c: a generation is built complete or not at all from the identity files,
 * and lives exactly as long as its references. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "certs_util.h"
#include "unit_util.h"
#include "tollgate/gen.h"

#define WEB "spiffe://mesh.local/ns/default/sa/web"

static struct tg_config cfg;

static void setup(void)
{
    cu_setup();
    ck_assert_int_eq(tg_tls_init(), 0);
    cu_certs("ca", "--out", "ca", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "web", "--spiffe", WEB, NULL);
    memset(&cfg, 0, sizeof(cfg));
    cfg.cert_path = tg_unconst(cu_path("web.pem"));
    cfg.key_path = tg_unconst(cu_path("web.key"));
    cfg.bundle_path = tg_unconst(cu_path("ca.pem"));
    cfg.max_chain_depth = 4;
    atomic_init(&cfg.refs, 1000); /* the test owns it: generations never free it */
}

static void teardown(void)
{
    cu_teardown();
}

static int build(struct tg_gen **g, char *err)
{
    struct tg_gen_input in = {.cfg = &cfg};

    return tg_gen_build(&in, g, err);
}

START_TEST(test_gen_build_holds_identity_and_contexts)
{
    struct tg_gen *g;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(build(&g, err) == 0, "%s", err);
    ck_assert_uint_eq(atomic_load(&g->refcnt), 1);
    ck_assert_ptr_nonnull(g->server);
    ck_assert_ptr_nonnull(g->client);
    ck_assert_str_eq(g->identity->leaf.id.id, WEB);
    ck_assert_str_eq(g->identity->trust_domain, "mesh.local");
    ck_assert_uint_eq(g->identity->n_roots, 1);
    tg_gen_unref(g);
}
END_TEST

START_TEST(test_gen_refcount_frees_on_last_unref)
{
    struct tg_gen *g, *h;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(build(&g, err) == 0, "%s", err);
    ck_assert_ptr_eq(tg_gen_ref(g), g);
    ck_assert_ptr_eq(tg_gen_ref(g), g);
    ck_assert_uint_eq(atomic_load(&g->refcnt), 3);
    tg_gen_unref(g);
    tg_gen_unref(g);
    ck_assert_uint_eq(atomic_load(&g->refcnt), 1);
    /* a second build is a distinct generation with a later id */
    ck_assert_msg(build(&h, err) == 0, "%s", err);
    ck_assert_uint_gt(h->id, g->id);
    tg_gen_unref(g); /* freed here: ASan/valgrind runs check nothing leaks or is reused */
    tg_gen_unref(h);
    tg_gen_unref(NULL);
}
END_TEST

/* Each broken identity is refused with an error that names what was wrong. */
static const struct {
    const char *name;
    const char *make[12]; /* tollgate-certs words, run in the temp dir; {NULL} = none */
    const char *cert, *key, *bundle;
    const char *want; /* substring of the error */
} broken[] = {
    {"missing cert", {NULL}, "nope.pem", "web.key", "ca.pem", "nope.pem: cannot open"},
    {"key of another cert",
     {"issue", "--ca", "ca", "--out", "other", "--spiffe", WEB, NULL},
     "web.pem",
     "other.key",
     "ca.pem",
     "does not match"},
    {"expired leaf",
     {"issue", "--ca", "ca", "--out", "old", "--spiffe", WEB, "--expired", NULL},
     "old.pem",
     "old.key",
     "ca.pem",
     "expired"},
    {"foreign bundle",
     {"ca", "--out", "other-ca", NULL},
     "web.pem",
     "web.key",
     "other-ca.pem",
     "does not chain"},
    {"no SPIFFE ID",
     {"issue", "--ca", "ca", "--out", "dns", "--dns", "web.example", NULL},
     "dns.pem",
     "dns.key",
     "ca.pem",
     "URI SAN"},
    {"CA as leaf",
     {"issue", "--ca", "ca", "--out", "caleaf", "--spiffe", WEB, "--ca-flag", NULL},
     "caleaf.pem",
     "caleaf.key",
     "ca.pem",
     "CA certificate"},
    {"leaf as bundle", {NULL}, "web.pem", "web.key", "web.pem", "not a CA"},
    {"garbage cert", {NULL}, "ca.key", "web.key", "ca.pem", "no certificate"},
};

START_TEST(test_gen_build_refuses_broken_identity)
{
    struct tg_gen *g = NULL;
    char err[TG_ERRLEN] = "";
    char cmd[1024];
    size_t n = 0;

    if (broken[_i].make[0] != NULL) {
        n = (size_t)snprintf(cmd, sizeof(cmd), "cd %s && %s", cu_dir, getenv("TG_CERTS_BIN"));
        for (int w = 0; broken[_i].make[w] != NULL; w++)
            n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " '%s'", broken[_i].make[w]);
        snprintf(cmd + n, sizeof(cmd) - n, " >/dev/null");
        ck_assert_int_eq(system(cmd), 0);
    }
    cfg.cert_path = tg_unconst(cu_path(broken[_i].cert));
    cfg.key_path = tg_unconst(cu_path(broken[_i].key));
    cfg.bundle_path = tg_unconst(cu_path(broken[_i].bundle));
    ck_assert_int_lt(build(&g, err), 0);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(err, broken[_i].want) != NULL, "%s: error \"%s\" lacks \"%s\"",
                  broken[_i].name, err, broken[_i].want);
}
END_TEST

/* ---- control-plane mode: identity in memory, pushed resources ---- */

struct cp_fixture {
    char *chain, *key_pem, *root;
    size_t chain_len, key_len, root_len;
    struct tg_identity_key key;
    struct tg_cp_state st;
};

static struct tg_cp_res *push_bundle(const char *root)
{
    struct tg_resource *r = tg_resource_new(TG_RES_TRUST_BUNDLE);
    struct tg_res_trust_bundle *b = &r->u.trust_bundle;

    b->domains = tg_resource_array(r, 1, sizeof(*b->domains));
    b->n_domains = 1;
    b->domains[0].trust_domain = tg_resource_strdup(r, "mesh.local");
    ck_assert_int_eq(tg_resource_strlist(r, &b->domains[0].roots_pem, &root, 1), 0);
    return tg_cp_res_new(r, "tb-1");
}

static void cp_fixture_init(struct cp_fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->chain = cu_read("web.pem", &f->chain_len);
    f->key_pem = cu_read("web.key", &f->key_len);
    f->root = cu_read("ca.pem", &f->root_len);
    f->key.pem = f->key_pem;
    f->key.pem_len = f->key_len;
}

static void cp_fixture_cleanup(struct cp_fixture *f)
{
    for (int t = 0; t < TG_RES_N; t++)
        tg_cp_res_unref(f->st.res[t]);
    free(f->chain);
    free(f->key_pem);
    free(f->root);
}

static int cp_build(struct cp_fixture *f, struct tg_gen **g, char *err)
{
    struct tg_gen_input in = {.cfg = &cfg,
                              .chain_pem = f->chain,
                              .chain_len = f->chain_len,
                              .key = &f->key,
                              .cp = &f->st};

    return tg_gen_build(&in, g, err);
}

START_TEST(test_gen_cp_identity_needs_a_pushed_bundle)
{
    struct cp_fixture f;
    struct tg_gen *g = NULL;
    char err[TG_ERRLEN] = "";

    cp_fixture_init(&f);
    cfg.cert_path = cfg.key_path = cfg.bundle_path = NULL; /* never read in this mode */
    ck_assert_int_lt(cp_build(&f, &g, err), 0);
    ck_assert_msg(strstr(err, "trust bundle") != NULL, "%s", err);
    f.st.res[TG_RES_TRUST_BUNDLE] = push_bundle(f.root);
    ck_assert_msg(cp_build(&f, &g, err) == 0, "%s", err);
    ck_assert_str_eq(g->identity->leaf.id.id, WEB);
    ck_assert_uint_eq(g->identity->n_roots, 1);
    ck_assert_uint_eq(g->identity->n_domains, 1);
    ck_assert_str_eq(g->identity->domains[0].name, "mesh.local");
    /* the generation holds what it was built from after the caller lets go */
    tg_cp_res_unref(f.st.res[TG_RES_TRUST_BUNDLE]);
    f.st.res[TG_RES_TRUST_BUNDLE] = NULL;
    ck_assert_ptr_nonnull(g->pushed[TG_RES_TRUST_BUNDLE]);
    tg_gen_unref(g);
    cp_fixture_cleanup(&f);
}
END_TEST

/* A pushed bundle per trust domain: ours (the one our certificate is in) and federated ones,
 * each with roots of its own; anything that leaves a root's domain in doubt is refused. */
static struct tg_cp_res *push_domains(const char *const *names, const char *const *roots, size_t n)
{
    struct tg_resource *r = tg_resource_new(TG_RES_TRUST_BUNDLE);
    struct tg_res_trust_bundle *b = &r->u.trust_bundle;

    b->domains = tg_resource_array(r, n, sizeof(*b->domains));
    b->n_domains = n;
    for (size_t i = 0; i < n; i++) {
        b->domains[i].trust_domain = tg_resource_strdup(r, names[i]);
        ck_assert_int_eq(tg_resource_strlist(r, &b->domains[i].roots_pem, &roots[i], 1), 0);
    }
    return tg_cp_res_new(r, "tb-2");
}

START_TEST(test_gen_pushed_bundle_per_trust_domain)
{
    static const struct {
        const char *names[2];
        int roots[2]; /* 0: ours, 1: the partner's */
        size_t n;
        const char *want; /* NULL: built */
    } cases[] = {
        {{"partner.example", "mesh.local"}, {1, 0}, 2, NULL},
        {{"partner.example", NULL}, {1, 0}, 1, "no roots for our trust domain mesh.local"},
        {{"mesh.local", "partner.example"}, {0, 0}, 2, "is a root of mesh.local too"},
        {{"mesh.local", ""}, {0, 1}, 2, "without a name"},
        {{"mesh.local", "mesh.local"}, {0, 1}, 2, "our own trust domain"},
        {{"mesh.local", "Partner"}, {0, 1}, 2, "is not a trust domain name"},
        {{"mesh.local", "partner.example"}, {1, 0}, 2, "chain"},
    };
    struct cp_fixture f;
    char *partner;
    size_t partner_len;

    cu_certs("ca", "--out", "partner", NULL);
    partner = cu_read("partner.pem", &partner_len);
    cp_fixture_init(&f);
    for (size_t i = 0; i < TG_NELEM(cases); i++) {
        const char *roots[2] = {cases[i].roots[0] ? partner : f.root,
                                cases[i].roots[1] ? partner : f.root};
        struct tg_gen *g = NULL;
        char err[TG_ERRLEN] = "";
        int rc;

        tg_cp_res_unref(f.st.res[TG_RES_TRUST_BUNDLE]);
        f.st.res[TG_RES_TRUST_BUNDLE] = push_domains(cases[i].names, roots, cases[i].n);
        rc = cp_build(&f, &g, err);
        if (cases[i].want == NULL) {
            ck_assert_msg(rc == 0, "case %zu: %s", i, err);
            ck_assert_uint_eq(g->identity->n_domains, 2);
            ck_assert_str_eq(g->identity->domains[0].name, "mesh.local"); /* ours first */
            ck_assert_str_eq(g->identity->domains[1].name, "partner.example");
            tg_gen_unref(g);
        } else {
            ck_assert_msg(rc < 0 && strstr(err, cases[i].want) != NULL, "case %zu: rc %d: %s", i,
                          rc, err);
        }
    }
    cp_fixture_cleanup(&f);
    free(partner);
}
END_TEST

/* Static mode: each federated trust domain names its own bundle file. */
START_TEST(test_gen_federated_bundle_files)
{
    char *names[] = {UT_STR("partner.example")}, *files[1];
    struct tg_gen *g = NULL;
    char err[TG_ERRLEN] = "";

    cu_certs("ca", "--out", "partner", NULL);
    files[0] = tg_unconst(cu_path("partner.pem"));
    cfg.trust_domains = (struct tg_strlist){names, 1};
    cfg.trust_domain_bundles = (struct tg_strlist){files, 1};
    ck_assert_msg(build(&g, err) == 0, "%s", err);
    ck_assert_uint_eq(g->identity->n_domains, 2);
    ck_assert_uint_eq(g->identity->n_roots, 2);
    ck_assert_str_eq(g->identity->domains[1].name, "partner.example");
    tg_gen_unref(g);
    /* our own root listed as the partner's too: refused, naming the file and key */
    files[0] = tg_unconst(cu_path("ca.pem"));
    ck_assert_int_lt(build(&g, err), 0);
    ck_assert_msg(strstr(err, "identity.trust_domains.partner.example: ") != NULL &&
                      strstr(err, "is a root of mesh.local too") != NULL,
                  "%s", err);
    /* our own trust domain as a federated one */
    names[0] = UT_STR("mesh.local");
    files[0] = tg_unconst(cu_path("partner.pem"));
    ck_assert_int_lt(build(&g, err), 0);
    ck_assert_msg(strstr(err, "our own trust domain") != NULL, "%s", err);
    names[0] = UT_STR("partner.example");
    /* a missing file */
    files[0] = tg_unconst(cu_path("nothing.pem"));
    ck_assert_int_lt(build(&g, err), 0);
    ck_assert_msg(strstr(err, "identity.trust_domains.partner.example: ") != NULL &&
                      strstr(err, "cannot open") != NULL,
                  "%s", err);
    cfg.trust_domains = (struct tg_strlist){NULL, 0};
    cfg.trust_domain_bundles = (struct tg_strlist){NULL, 0};
}
END_TEST

START_TEST(test_gen_cp_key_must_match_chain)
{
    struct cp_fixture f;
    struct tg_identity_key *other;
    struct tg_gen *g = NULL;
    char err[TG_ERRLEN] = "";

    cp_fixture_init(&f);
    f.st.res[TG_RES_TRUST_BUNDLE] = push_bundle(f.root);
    ck_assert_int_eq(tg_identity_keygen(&other, err), 0);
    f.key = *other;
    ck_assert_int_lt(cp_build(&f, &g, err), 0);
    ck_assert_ptr_null(g);
    tg_identity_key_free(other);
    cp_fixture_cleanup(&f);
}
END_TEST

/* A pushed authorization replaces the config's rules whole. */
START_TEST(test_gen_pushed_authorization_wins)
{
    struct cp_fixture f;
    char *ids[] = {UT_STR(WEB)};
    struct tg_rule_cfg rules[2] = {
        {.name = UT_STR("a"), .deny = false, .principals = {ids, 1}},
        {.name = UT_STR("b"), .deny = true, .principals = {ids, 1}},
    };
    struct tg_resource *r = tg_resource_new(TG_RES_AUTHORIZATION);
    struct tg_res_authorization *a = &r->u.authorization;
    const char *who = WEB;
    struct tg_gen *g = NULL;
    char err[TG_ERRLEN] = "";

    cp_fixture_init(&f);
    cfg.rules = rules;
    cfg.n_rules = 2;
    f.st.res[TG_RES_TRUST_BUNDLE] = push_bundle(f.root);
    ck_assert_msg(cp_build(&f, &g, err) == 0, "%s", err);
    ck_assert_uint_eq(tg_policy_rule_count(g->policy), 2); /* the config's */
    tg_gen_unref(g);
    a->rules = tg_resource_array(r, 1, sizeof(*a->rules));
    a->n_rules = 1;
    a->rules[0].name = tg_resource_strdup(r, "pushed");
    ck_assert_int_eq(tg_resource_strlist(r, &a->rules[0].principals, &who, 1), 0);
    a->close_denied_connections = true;
    f.st.res[TG_RES_AUTHORIZATION] = tg_cp_res_new(r, "az-1");
    ck_assert_msg(cp_build(&f, &g, err) == 0, "%s", err);
    ck_assert_uint_eq(tg_policy_rule_count(g->policy), 1);
    ck_assert(g->close_denied);
    tg_gen_unref(g);
    /* a pushed rule that does not compile refuses the whole generation */
    a->rules[0].ports.v = tg_resource_array(r, 1, sizeof(uint32_t));
    a->rules[0].ports.v[0] = 70000;
    a->rules[0].ports.n = 1;
    ck_assert_int_lt(cp_build(&f, &g, err), 0);
    ck_assert_msg(strstr(err, "authorization (pushed)") != NULL, "%s", err);
    cfg.rules = NULL;
    cfg.n_rules = 0;
    cp_fixture_cleanup(&f);
}
END_TEST

START_TEST(test_gen_pushed_mesh_and_settings)
{
    struct cp_fixture f;
    struct tg_resource *r = tg_resource_new(TG_RES_MESH_TABLE);
    struct tg_resource *ps = tg_resource_new(TG_RES_PROXY_SETTINGS);
    struct tg_res_mesh_table *m = &r->u.mesh_table;
    const char *who = WEB;
    struct tg_gen *g = NULL;
    char err[TG_ERRLEN] = "";

    cp_fixture_init(&f);
    f.st.res[TG_RES_TRUST_BUNDLE] = push_bundle(f.root);
    m->destinations = tg_resource_array(r, 1, sizeof(*m->destinations));
    m->n_destinations = 1;
    m->destinations[0].address = tg_resource_strdup(r, "10.0.0.0/24");
    m->destinations[0].port = 8080;
    m->destinations[0].tunnel = TG_TUNNEL_AUTO;
    ck_assert_int_eq(tg_resource_strlist(r, &m->destinations[0].expected_ids, &who, 1), 0);
    m->outside_refuse = true;
    f.st.res[TG_RES_MESH_TABLE] = tg_cp_res_new(r, "mt-1");
    ck_assert_msg(cp_build(&f, &g, err) == 0, "%s", err);
    ck_assert_uint_eq(g->mesh.n, 1);
    ck_assert(g->mesh.refuse_outside);
    ck_assert_str_eq(g->mesh.dests[0].text, "10.0.0.0/24");
    ck_assert_uint_eq(g->mesh.dests[0].prefix, 24);
    ck_assert_uint_eq(g->mesh.dests[0].port, 8080);
    ck_assert_int_eq(g->mesh.dests[0].tunnel, TG_TUNNEL_AUTO); /* the destination's own mode */
    tg_gen_unref(g);
    m->destinations[0].address = tg_resource_strdup(r, "10.0.0.1/24");
    ck_assert_int_lt(cp_build(&f, &g, err), 0);
    ck_assert_msg(strstr(err, "mesh_table (pushed): destinations[0]") != NULL, "%s", err);
    m->destinations[0].address = tg_resource_strdup(r, "10.0.0.0/24");
    ps->u.proxy_settings.min_tls_version = tg_resource_strdup(ps, "1.1");
    f.st.res[TG_RES_PROXY_SETTINGS] = tg_cp_res_new(ps, "ps-1");
    ck_assert_int_lt(cp_build(&f, &g, err), 0);
    ck_assert_msg(strstr(err, "tls_min_version") != NULL, "%s", err);
    cp_fixture_cleanup(&f);
}
END_TEST

/* A transparent inbound listener that is not protocol: http: a rule with HTTP conditions
 * (the config's or a pushed one) is kept only while the mesh table makes its ports
 * protocol: http at every address; a pushed mesh table or rule that breaks that is refused. */
START_TEST(test_gen_http_rules_follow_the_mesh_table)
{
    struct cp_fixture f;
    char *paths[] = {UT_STR("/x")};
    int port80[] = {80};
    struct tg_rule_cfg rule = {
        .name = UT_STR("r"), .deny = true, .paths = {paths, 1}, .ports = {port80, 1}};
    struct tg_inbound_cfg in = {.name = UT_STR("captured"), .transparent = true};
    struct tg_resource *r = tg_resource_new(TG_RES_MESH_TABLE);
    struct tg_resource *az = tg_resource_new(TG_RES_AUTHORIZATION);
    struct tg_res_mesh_table *m = &r->u.mesh_table;
    struct tg_res_authorization *a = &az->u.authorization;
    const char *who = WEB, *path = "/y", *method = "GET";
    struct tg_gen *g = NULL;
    char err[TG_ERRLEN] = "";

    in.listen.ss.ss_family = AF_INET;
    cp_fixture_init(&f);
    cfg.inbound = &in;
    cfg.n_inbound = 1;
    cfg.rules = &rule;
    cfg.n_rules = 1;
    f.st.res[TG_RES_TRUST_BUNDLE] = push_bundle(f.root);
    m->destinations = tg_resource_array(r, 1, sizeof(*m->destinations));
    m->n_destinations = 1;
    m->destinations[0].address = tg_resource_strdup(r, "0.0.0.0/0");
    m->destinations[0].port = 80;
    m->destinations[0].protocol = TG_RES_HTTP;
    ck_assert_int_eq(tg_resource_strlist(r, &m->destinations[0].expected_ids, &who, 1), 0);
    f.st.res[TG_RES_MESH_TABLE] = tg_cp_res_new(r, "mt-1");
    ck_assert_msg(cp_build(&f, &g, err) == 0, "%s", err);
    ck_assert(g->mesh.dests[0].http);
    tg_gen_unref(g);
    /* the same table saying tcp: the config's rule could apply to a byte pipe */
    m->destinations[0].protocol = TG_RES_TCP;
    ck_assert_int_lt(cp_build(&f, &g, err), 0);
    ck_assert_msg(strstr(err, "mesh_table (pushed): authorization.rules[0]") != NULL &&
                      strstr(err, "port 80 of transparent inbound listener captured") != NULL,
                  "%s", err);
    m->destinations[0].protocol = TG_RES_HTTP;
    /* a pushed rule with HTTP conditions: its ports must be HTTP too */
    a->rules = tg_resource_array(az, 1, sizeof(*a->rules));
    a->n_rules = 1;
    a->rules[0].name = tg_resource_strdup(az, "pushed");
    ck_assert_int_eq(tg_resource_strlist(az, &a->rules[0].paths, &path, 1), 0);
    ck_assert_int_eq(tg_resource_strlist(az, &a->rules[0].methods, &method, 1), 0);
    a->rules[0].ports.v = tg_resource_array(az, 1, sizeof(uint32_t));
    a->rules[0].ports.v[0] = 81;
    a->rules[0].ports.n = 1;
    f.st.res[TG_RES_AUTHORIZATION] = tg_cp_res_new(az, "az-1");
    ck_assert_int_lt(cp_build(&f, &g, err), 0);
    ck_assert_msg(strstr(err, "authorization (pushed): rules[0]") != NULL &&
                      strstr(err, "port 81") != NULL,
                  "%s", err);
    a->rules[0].ports.v[0] = 80;
    ck_assert_msg(cp_build(&f, &g, err) == 0, "%s", err);
    ck_assert_uint_eq(tg_policy_rule_count(g->policy), 1);
    tg_gen_unref(g);
    a->rules[0].ports.n = 0; /* any port of the transparent listener */
    ck_assert_int_lt(cp_build(&f, &g, err), 0);
    ck_assert_msg(strstr(err, "any port of transparent inbound listener captured") != NULL, "%s",
                  err);
    cfg.inbound = NULL;
    cfg.n_inbound = 0;
    cfg.rules = NULL;
    cfg.n_rules = 0;
    cp_fixture_cleanup(&f);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE(
        "gen", "build", &tc, test_gen_build_holds_identity_and_contexts,
        test_gen_refcount_frees_on_last_unref, test_gen_cp_identity_needs_a_pushed_bundle,
        test_gen_cp_key_must_match_chain, test_gen_pushed_bundle_per_trust_domain,
        test_gen_federated_bundle_files, test_gen_http_rules_follow_the_mesh_table,
        test_gen_pushed_authorization_wins, test_gen_pushed_mesh_and_settings);

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_gen_build_refuses_broken_identity, broken));
    return s;
}

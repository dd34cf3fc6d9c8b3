/* gen.c + identity.c: a generation is built complete or not at all from the identity files,
 * and lives exactly as long as its references. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "certs_util.h"
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
    cfg.cert_path = (char *)cu_path("web.pem");
    cfg.key_path = (char *)cu_path("web.key");
    cfg.bundle_path = (char *)cu_path("ca.pem");
    cfg.max_chain_depth = 4;
    atomic_init(&cfg.refs, 1000); /* the test owns it: generations never free it */
}

static void teardown(void)
{
    cu_teardown();
}

static int build(struct tg_gen **g, char *err)
{
    struct tg_gen_input in = {&cfg};

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
     "web.pem", "other.key", "ca.pem", "does not match"},
    {"expired leaf",
     {"issue", "--ca", "ca", "--out", "old", "--spiffe", WEB, "--expired", NULL},
     "old.pem", "old.key", "ca.pem", "expired"},
    {"foreign bundle", {"ca", "--out", "other-ca", NULL}, "web.pem", "web.key", "other-ca.pem",
     "does not chain"},
    {"no SPIFFE ID",
     {"issue", "--ca", "ca", "--out", "dns", "--dns", "web.example", NULL},
     "dns.pem", "dns.key", "ca.pem", "URI SAN"},
    {"CA as leaf",
     {"issue", "--ca", "ca", "--out", "caleaf", "--spiffe", WEB, "--ca-flag", NULL},
     "caleaf.pem", "caleaf.key", "ca.pem", "CA certificate"},
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
    cfg.cert_path = (char *)cu_path(broken[_i].cert);
    cfg.key_path = (char *)cu_path(broken[_i].key);
    cfg.bundle_path = (char *)cu_path(broken[_i].bundle);
    ck_assert_int_lt(build(&g, err), 0);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(err, broken[_i].want) != NULL, "%s: error \"%s\" lacks \"%s\"",
                  broken[_i].name, err, broken[_i].want);
}
END_TEST

static Suite *gen_suite(void)
{
    Suite *s = suite_create("gen");
    TCase *tc = tcase_create("build");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gen_build_holds_identity_and_contexts);
    tcase_add_test(tc, test_gen_refcount_frees_on_last_unref);
    tcase_add_loop_test(tc, test_gen_build_refuses_broken_identity, 0, TG_NELEM(broken));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(gen_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* The command line: `tollgate check -c FILE` accepts a good file and names file, line and key
 * for a bad one; `tollgate version` says which wolfSSL and whether AES-NI is in. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define IDENTITY                                                                                   \
    "identity:\n"                                                                                  \
    "  cert: web.pem\n"                                                                            \
    "  key: web.key\n"                                                                             \
    "  trust_bundle: ca.pem\n"
#define INBOUND                                                                                    \
    "inbound:\n"                                                                                   \
    "  - name: web-in\n"                                                                           \
    "    listen: 127.0.0.1:18443\n"                                                                \
    "    upstream: 127.0.0.1:18080\n"
#define OUTBOUND                                                                                   \
    "outbound:\n"                                                                                  \
    "  - name: api-out\n"                                                                          \
    "    listen: 127.0.0.1:19000\n"                                                                \
    "    upstream: 127.0.0.1:18443\n"                                                              \
    "    expect: [\"" IT_API_ID "\"]\n"

static void setup(void)
{
    it_setup();
    it_mesh_certs();
}

static void teardown(void)
{
    it_teardown();
}

static int check(const char *file, char **out, char **err)
{
    const char *argv[] = {it_env("TG_BIN"), "check", "-c", file, NULL};
    int st = it_run(argv, NULL, 30000, out, err);

    ck_assert_msg(st >= 0, "tollgate check %s did not finish", file);
    return st;
}

/* Relative paths in the file are relative to the file, not to the working directory. */
START_TEST(test_check_good_config)
{
    char *out = NULL, *err = NULL;
    int st;

    ck_assert_int_eq(mkdir("conf", 0755), 0);
    ck_assert_int_eq(rename("web.pem", "conf/web.pem"), 0);
    ck_assert_int_eq(rename("web.key", "conf/web.key"), 0);
    ck_assert_int_eq(rename("ca.pem", "conf/ca.pem"), 0);
    it_certs("ca", "--out", "conf/other", "--cn", "other.local root", NULL);
    it_write_file("conf/good.yaml",
                  "admin: 127.0.0.1:15000\n"
                  "workers: 2\n"
                  "log_level: info\n"
                  "access_log: true\n" IDENTITY "  trust_domains: {other.local: other.pem}\n"
                  "  max_chain_depth: 4\n"
                  "tls:\n"
                  "  min_version: \"1.3\"\n"
                  "timeouts: {handshake: 10s, idle: 1h, connect: 5s, drain: 20s}\n" INBOUND
                  "    allow: [\"" IT_API_ID "\"]\n" OUTBOUND);
    st = check("conf/good.yaml", &out, &err);
    ck_assert_msg(st == 0, "exit %d; stderr: %s", st, err);
    ck_assert_msg(strstr(out, "conf/good.yaml: ok") != NULL, "stdout: %s", out);
    free(out);
    free(err);
}
END_TEST

static const struct bad {
    const char *name;
    const char *yaml;
    const char *key;    /* the message names it */
    const char *marker; /* the message's line is the one holding this text; NULL: any */
} bad_configs[] = {
    {"unknown top-level key", IDENTITY "colour: blue\n" INBOUND, "colour", "colour"},
    {"unknown identity key", IDENTITY "  flavour: vanilla\n" INBOUND, "flavour", "flavour"},
    {"unknown inbound key", IDENTITY INBOUND "    upstraem: 127.0.0.1:1\n", "upstraem", "upstraem"},
    {"missing identity.cert", "identity:\n  key: web.key\n  trust_bundle: ca.pem\n" INBOUND, "cert",
     NULL},
    {"missing identity", INBOUND, "identity", NULL},
    {"listen port out of range",
     IDENTITY "inbound:\n  - listen: 127.0.0.1:99999\n    upstream: 127.0.0.1:18080\n", "listen",
     "99999"},
    {"listen host not numeric",
     IDENTITY "inbound:\n  - listen: localhost:8443\n    upstream: 127.0.0.1:18080\n", "listen",
     "localhost"},
    {"upstream without port",
     IDENTITY "inbound:\n  - listen: 127.0.0.1:8443\n    upstream: 127.0.0.1\n", "upstream",
     "upstream"},
    {"outbound without expect",
     IDENTITY "outbound:\n  - listen: 127.0.0.1:9000\n    upstream: 127.0.0.1:8443\n", "expect",
     NULL},
    {"bad SPIFFE ID in allow",
     IDENTITY INBOUND "    allow: [\"spiffe://mesh.local/ns/../sa/api\"]\n", "allow", "allow"},
    {"bad duration", IDENTITY "timeouts: {handshake: soon}\n" INBOUND, "handshake", "soon"},
    {"TLS 1.1 minimum", IDENTITY "tls:\n  min_version: \"1.1\"\n" INBOUND, "min_version",
     "min_version"},
    {"workers not a number", "workers: many\n" IDENTITY INBOUND, "workers", "workers"},
    {"trust_domains as the list it used to be (no roots per domain)",
     IDENTITY "  trust_domains: [other.local]\n" INBOUND, "write {DOMAIN: ITS-BUNDLE.pem",
     "trust_domains"},
    {"certificate file missing",
     "identity:\n  cert: nothing-here.pem\n  key: web.key\n  trust_bundle: ca.pem\n" INBOUND,
     "nothing-here.pem", NULL},
};

START_TEST(test_check_bad_config_names_file_line_and_key)
{
    const struct bad *c = &bad_configs[_i];
    char *out = NULL, *err = NULL, where[64];
    int st;

    it_write_file("broken.yaml", "%s", c->yaml);
    st = check("broken.yaml", &out, &err);
    ck_assert_msg(st != 0, "%s: accepted; stdout: %s", c->name, out);
    ck_assert_msg(strncmp(err, "tollgate: broken.yaml:", 22) == 0,
                  "%s: stderr should start 'tollgate: broken.yaml:LINE:': %s", c->name, err);
    ck_assert_msg(strstr(err, c->key) != NULL, "%s: stderr does not name '%s': %s", c->name, c->key,
                  err);
    if (c->marker != NULL) {
        const char *at = strstr(c->yaml, c->marker);
        int line = 1;

        for (const char *p = c->yaml; p < at; p++)
            line += *p == '\n';
        snprintf(where, sizeof(where), "broken.yaml:%d:", line);
        ck_assert_msg(strstr(err, where) != NULL, "%s: want '%s' in: %s", c->name, where, err);
    }
    free(out);
    free(err);
}
END_TEST

START_TEST(test_check_key_not_matching_cert)
{
    char *out = NULL, *err = NULL;
    int st;

    it_write_file("mismatch.yaml", "identity:\n"
                                   "  cert: web.pem\n"
                                   "  key: api.key\n"
                                   "  trust_bundle: ca.pem\n" INBOUND);
    st = check("mismatch.yaml", &out, &err);
    ck_assert_msg(st != 0, "a key that does not match the certificate was accepted: %s", out);
    ck_assert_msg(strstr(err, "mismatch.yaml") != NULL, "stderr: %s", err);
    ck_assert_msg(strstr(err, "key") != NULL, "stderr does not mention the key: %s", err);
    free(out);
    free(err);
}
END_TEST

START_TEST(test_check_missing_file)
{
    char *out = NULL, *err = NULL;

    ck_assert_int_ne(check("no-such.yaml", &out, &err), 0);
    ck_assert_msg(strstr(err, "no-such.yaml") != NULL, "stderr: %s", err);
    free(out);
    free(err);
}
END_TEST

/* Workers share a port through SO_REUSEPORT; a second sidecar on the same port must not
 * quietly share it too: it refuses to start and says which address is taken. */
START_TEST(test_second_sidecar_on_same_port_refuses_to_start)
{
    int port = it_free_port(), up = it_free_port();
    char *out = NULL, *err = NULL;
    const char *argv[] = {it_env("TG_BIN"), "run", "-c", "second.yaml", NULL};
    struct it_proc *first;

    it_write_file("first.yaml",
                  IDENTITY "workers: 2\ninbound:\n  - listen: 127.0.0.1:%d\n"
                           "    upstream: 127.0.0.1:%d\n",
                  port, up);
    it_write_file("second.yaml",
                  IDENTITY "workers: 1\ninbound:\n  - listen: 127.0.0.1:%d\n"
                           "    upstream: 127.0.0.1:%d\n",
                  port, up);
    first = it_sidecar_start("first", "first.yaml", 0, port);
    ck_assert_int_eq(it_run(argv, NULL, 10000, &out, &err), 1);
    ck_assert_msg(strstr(err, "Address already in use") != NULL &&
                      strstr(err, "127.0.0.1:") != NULL,
                  "stderr: %s", err);
    free(out);
    free(err);
    ck_assert_int_eq(it_stop(first, 5000), 0);
}
END_TEST

START_TEST(test_version_names_wolfssl_and_aesni)
{
    const char *argv[] = {it_env("TG_BIN"), "version", NULL};
    char *out = NULL, *err = NULL;
    int st = it_run(argv, NULL, 10000, &out, &err);

    ck_assert_msg(st == 0, "exit %d: %s", st, err);
    ck_assert_msg(strstr(out, "tollgate") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "wolfSSL") != NULL, "no wolfSSL version: %s", out);
    ck_assert_msg(strstr(out, "AES-NI") != NULL, "no AES-NI: %s", out);
    free(out);
    free(err);
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_check_good_config);
    tcase_add_loop_test(tc, test_check_bad_config_names_file_line_and_key, 0,
                        (int)(sizeof(bad_configs) / sizeof(bad_configs[0])));
    tcase_add_test(tc, test_check_key_not_matching_cert);
    tcase_add_test(tc, test_check_missing_file);
    tcase_add_test(tc, test_second_sidecar_on_same_port_refuses_to_start);
    tcase_add_test(tc, test_version_names_wolfssl_and_aesni);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cli_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

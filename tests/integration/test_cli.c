/* The command line: `tollgate check -c FILE` accepts a good file and names file, line and key
 * for a bad one; `tollgate version` says which wolfSSL and whether AES-NI is in; every verb of
 * every binary answers --help and the version on stdout with exit 0, and a usage error on
 * stderr with exit 2 and a message naming what was wrong. */
#include "harness.h"
#include "tollgate/err.h"

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

/* ---- every verb of every binary ---- */

#define TG "TG_BIN"
#define CP "TG_CP_BIN"
#define CT "TG_CERTS_BIN"
#define ID_OK "spiffe://mesh.local/ns/default/sa/web"

static const struct cli_case {
    const char *bin; /* the variable naming the binary */
    const char *args[8];
    int status;
    const char *want; /* stdout holds it when status is 0, stderr otherwise */
} cli_cases[] = {
    /* tollgate */
    {TG, {"--version"}, 0, "wolfSSL"},
    {TG, {"version"}, 0, "wolfSSL"},
    {TG, {"help"}, 0, "usage: tollgate"},
    {TG, {"--help"}, 0, "usage: tollgate"},
    {TG, {"-h"}, 0, "usage: tollgate"},
    {TG, {"help", "run"}, 0, "usage: tollgate run"},
    {TG, {"run", "--help"}, 0, "usage: tollgate run"},
    {TG, {"run", "-h"}, 0, "usage: tollgate run"},
    {TG, {"check", "--help"}, 0, "usage: tollgate check"},
    {TG, {"help", "check"}, 0, "usage: tollgate check"},
    {TG, {"version", "--help"}, 0, "usage: tollgate version"},
    {TG, {"help", "version"}, 0, "usage: tollgate version"},
    {TG, {"init-iptables", "--help"}, 0, "usage: tollgate init-iptables"},
    {TG, {"help", "init-iptables"}, 0, "usage: tollgate init-iptables"},
    {TG, {"help", "help"}, 0, "usage: tollgate help"},
    {TG, {NULL}, 2, "missing command"},
    {TG, {"frobnicate"}, 2, "unknown command 'frobnicate'"},
    {TG, {"-V"}, 2, "unknown command '-V'"},
    {TG, {"help", "frobnicate"}, 2, "unknown command 'frobnicate'"},
    {TG, {"run"}, 2, "-c FILE"},
    {TG, {"check"}, 2, "-c FILE"},
    {TG, {"check", "-c"}, 2, "-c/--config wants the config FILE"},
    {TG, {"check", "-c", "a.yaml", "extra"}, 2, "unexpected argument 'extra'"},
    {TG, {"check", "-c", "a.yaml", "--config", "b.yaml"}, 2, "given twice"},
    {TG, {"run", "--bogus"}, 2, "--bogus"},
    {TG, {"version", "extra"}, 2, "unexpected argument 'extra'"},
    {TG, {"help", "run", "extra"}, 2, "unexpected argument 'extra'"},
    {TG, {"init-iptables", "--bogus"}, 2, "--bogus"},
    /* tollgate-cp */
    {CP, {"--version"}, 0, "tollgate-cp"},
    {CP, {"version"}, 0, "tollgate-cp"},
    {CP, {"help"}, 0, "usage: tollgate-cp"},
    {CP, {"--help"}, 0, "usage: tollgate-cp"},
    {CP, {"-h"}, 0, "usage: tollgate-cp"},
    {CP, {"run", "--help"}, 0, "usage: tollgate-cp run"},
    {CP, {"run", "-h"}, 0, "usage: tollgate-cp run"},
    {CP, {"help", "run"}, 0, "usage: tollgate-cp run"},
    {CP, {"check", "--help"}, 0, "usage: tollgate-cp check"},
    {CP, {"version", "--help"}, 0, "usage: tollgate-cp version"},
    {CP, {"help", "help"}, 0, "usage: tollgate-cp help"},
    {CP, {NULL}, 2, "missing command"},
    {CP, {"frobnicate"}, 2, "unknown command 'frobnicate'"},
    {CP, {"run"}, 2, "-c FILE"},
    {CP, {"check", "-c", "mesh.yaml", "extra"}, 2, "unexpected argument 'extra'"},
    {CP, {"check", "--bogus"}, 2, "--bogus"},
    {CP, {"version", "extra"}, 2, "unexpected argument 'extra'"},
    /* tollgate-certs */
    {CT, {"--version"}, 0, "tollgate-certs"},
    {CT, {"version"}, 0, "tollgate-certs"},
    {CT, {"help"}, 0, "usage: tollgate-certs"},
    {CT, {"--help"}, 0, "usage: tollgate-certs"},
    {CT, {"-h"}, 0, "usage: tollgate-certs"},
    {CT, {"help", "issue"}, 0, "usage: tollgate-certs issue"},
    {CT, {"ca", "--help"}, 0, "usage: tollgate-certs ca"},
    {CT, {"intermediate", "--help"}, 0, "usage: tollgate-certs intermediate"},
    {CT, {"issue", "--help"}, 0, "usage: tollgate-certs issue"},
    {CT, {"issue", "-h"}, 0, "usage: tollgate-certs issue"},
    {CT, {"csr", "--help"}, 0, "usage: tollgate-certs csr"},
    {CT, {"keygen", "--help"}, 0, "usage: tollgate-certs keygen"},
    {CT, {"show", "--help"}, 0, "usage: tollgate-certs show"},
    {CT, {"inspect", "--help"}, 0, "usage: tollgate-certs inspect"},
    {CT, {"verify", "--help"}, 0, "usage: tollgate-certs verify"},
    {CT, {"version", "--help"}, 0, "usage: tollgate-certs version"},
    {CT, {"help", "help"}, 0, "usage: tollgate-certs help"},
    {CT, {NULL}, 2, "missing command"},
    {CT, {"frobnicate"}, 2, "unknown command 'frobnicate'"},
    {CT, {"help", "frobnicate"}, 2, "unknown command 'frobnicate'"},
    {CT, {"issue", "--out", "x", "--spiffe", ID_OK, "--days", "3"}, 2, "--valid-for 72h"},
    {CT, {"issue", "--out", "x", "--spiffe", ID_OK, "--hours", "2"}, 2, "--valid-for 2h"},
    {CT, {"issue", "--out", "x", "--spiffe", ID_OK, "--seconds", "30"}, 2, "--valid-for 30s"},
    {CT, {"ca", "--out", "x", "--not-before-days", "3"}, 2, "--backdate 72h"},
    {CT, {"ca", "--out", "x", "--valid-for", "10y"}, 2, "\"10y\" is not a duration"},
    {CT, {"ca", "--out", "x", "--valid-for", "1500ms"}, 2, "whole seconds"},
    {CT, {"ca", "--out", "x", "--valid-for", "0s"}, 2, "--valid-for"},
    {CT, {"ca", "--out", "x", "--backdate", "-1h"}, 2, "\"-1h\" is not a duration"},
    {CT,
     {"issue", "--ca", "ca", "--out", "x", "--spiffe", "spiffe://Mesh.local/ns/a/sa/b"},
     2,
     "spiffe://Mesh.local/ns/a/sa/b"},
    {CT,
     {"issue", "--ca", "ca", "--out", "x", "--spiffe", "spiffe://mesh.local/ns/../sa/b"},
     2,
     "--spiffe"},
    {CT,
     {"issue", "--ca", "ca", "--out", "x", "--spiffe", "spiffe://mesh.local"},
     2,
     "trust domain, not a workload"},
    {CT,
     {"csr", "--key", "k.key", "--out", "x.csr", "--spiffe", "spiffe://mesh.local/a/"},
     2,
     "--spiffe"},
    {CT, {"inspect"}, 2, "FILE"},
    {CT, {"inspect", "a.pem", "b.pem"}, 2, "unexpected argument 'b.pem'"},
    {CT, {"verify", "chain.pem"}, 2, "--bundle"},
    {CT, {"verify", "--bundle", "ca.pem"}, 2, "CHAIN"},
    {CT, {"verify", "--bundle", "ca.pem", "--peer", "sideways", "chain.pem"}, 2, "--peer"},
    {CT, {"version", "extra"}, 2, "unexpected argument 'extra'"},
};

/* One case: NULL when it behaved, else what went wrong (static buffer). */
static const char *cli_case_run(const struct cli_case *c)
{
    static char why[1024];
    const char *argv[10] = {it_env(c->bin)};
    char line[256] = "";
    char *out = NULL, *err = NULL;
    size_t n = 1;
    int st;

    for (size_t i = 0; i < 8 && c->args[i] != NULL; i++) {
        argv[n++] = c->args[i];
        snprintf(line + strlen(line), sizeof(line) - strlen(line), " %s", c->args[i]);
    }
    st = it_run(argv, NULL, 10000, &out, &err);
    why[0] = '\0';
    if (st != c->status)
        snprintf(why, sizeof(why), "%s%s: exit %d, want %d; stdout: %.200s; stderr: %.200s", c->bin,
                 line, st, c->status, out, err);
    else if (c->status == 0 && strstr(out, c->want) == NULL)
        snprintf(why, sizeof(why), "%s%s: stdout lacks '%s': %.200s", c->bin, line, c->want, out);
    else if (c->status == 0 && err[0] != '\0')
        snprintf(why, sizeof(why), "%s%s: stderr not empty: %.200s", c->bin, line, err);
    else if (c->status != 0 && strstr(err, c->want) == NULL)
        snprintf(why, sizeof(why), "%s%s: stderr lacks '%s': %.200s", c->bin, line, c->want, err);
    else if (c->status != 0 && out[0] != '\0')
        snprintf(why, sizeof(why), "%s%s: a usage error printed on stdout: %.200s", c->bin, line,
                 out);
    free(out);
    free(err);
    return why[0] != '\0' ? why : NULL;
}

/* All cases in one test (a process each, not a test each: it runs under ASan too), every
 * failure listed. */
START_TEST(test_cli_every_verb)
{
    static char report[16384];
    size_t at = 0, failed = 0;

    for (size_t i = 0; i < TG_NELEM(cli_cases); i++) {
        const char *why = cli_case_run(&cli_cases[i]);

        if (why == NULL)
            continue;
        failed++;
        if (at < sizeof(report))
            at += (size_t)snprintf(report + at, sizeof(report) - at, "\n  %s", why);
    }
    ck_assert_msg(failed == 0, "%zu of %zu command lines misbehaved:%s", failed,
                  TG_NELEM(cli_cases), report);
}
END_TEST

/* --version and version are one command: the same text. */
START_TEST(test_cli_version_spellings_agree)
{
    const char *bins[] = {TG, CP, CT};
    const char *bin = it_env(bins[_i]);
    const char *a1[] = {bin, "--version", NULL}, *a2[] = {bin, "version", NULL};
    char *o1 = NULL, *o2 = NULL;

    ck_assert_int_eq(it_run(a1, NULL, 10000, &o1, NULL), 0);
    ck_assert_int_eq(it_run(a2, NULL, 10000, &o2, NULL), 0);
    ck_assert_str_eq(o1, o2);
    ck_assert_msg(strstr(o1, "wolfSSL") != NULL, "%s: %s", bins[_i], o1);
    free(o1);
    free(o2);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = IT_TEST_SUITE("cli", "cli", &tc, setup, it_teardown, 30, test_check_good_config,
                             test_check_key_not_matching_cert, test_check_missing_file,
                             test_second_sidecar_on_same_port_refuses_to_start,
                             test_version_names_wolfssl_and_aesni);

    tcase_add_loop_test(tc, test_check_bad_config_names_file_line_and_key, 0,
                        (int)(sizeof(bad_configs) / sizeof(bad_configs[0])));
    tc = IT_TEST_CASE(s, "verbs", it_setup, it_teardown, 120, test_cli_every_verb);
    tcase_add_loop_test(tc, test_cli_version_spellings_agree, 0, 3);
    return s;
}

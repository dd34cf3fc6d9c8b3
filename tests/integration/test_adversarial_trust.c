/* Adversarial: a federated root must not vouch for our own trust domain (issue 12, item 1).
 *
 * Our trust domain is mesh.local (roots ca and, for a CA rotation, ca2). Two federated
 * partners: partner.example (root "partner") and copycat.example, whose root copies our
 * root's subject DN and subject key identifier over a key of its own (the openssl CLI makes
 * it; wolfSSL finds signers by key identifier, so it looks like our root). Each partner may
 * mint whatever it likes; the sidecars must accept from it only IDs of its own domain.
 *
 * Attacks, each a certificate claiming one of our IDs that a partner signed:
 *   inbound: openssl s_client calls sidecar B's web-in (allow [api, partner's api]) as api;
 *   outbound: openssl s_server serves sidecar A's outbound listener that expects web;
 *   control plane: a sidecar S that holds tollgate-cp's pushed bundle (partner roots in it)
 *   meets a fake control plane (openssl s_server on the control plane's port) claiming the
 *   control plane's ID.
 * Each in three forms: signed by the partner root, signed by the copycat root, and signed by
 * the partner root with our own root appended to the chain (a check of the top of the chain
 * alone would take that for one of ours). Each must end inside the handshake with reason
 * trust_domain or untrusted, counted, with no byte through. Before the fix (one trust store,
 * the list spelling of trust_domains) the partner-signed forms got through in all three
 * places; the copycat's was refused only because wolfSSL kept whichever root with that key
 * identifier came first in the bundle (ours; with the copycat's first, ours was shadowed).
 *
 * Controls, which must still be served: the partner's own IDs from the partner root where
 * allowed or expected, and our IDs from either of our two roots (a CA rotation). And the
 * configuration: the old spelling, and a migration that left a partner's root among ours,
 * are refused by tollgate check (and tollgate-cp check) with the way out named. */
#include "harness.h"
#include "tollgate/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define P_API_ID "spiffe://partner.example/ns/default/sa/api"
#define P_WEB_ID "spiffe://partner.example/ns/default/sa/web"
#define PAYLOAD "trust boundary payload, must not pass a refusal\n"
#define PAYLOAD_REV "lasufer a ssap ton tsum ,daolyap yradnuob tsurt\n" /* s_server -rev */
#define PEER_TIMEOUT_MS 10000

/* Every attack runs even when an earlier one got through; the test fails at its end with
 * the list of those that did. */
static char through[4096];

static void got_through(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void got_through(const char *fmt, ...)
{
    size_t n = strlen(through);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(through + n, sizeof(through) - n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "GOT THROUGH: %s\n", through + n);
    n = strlen(through);
    snprintf(through + n, sizeof(through) - n, "; ");
}

/* ---- PKI ------------------------------------------------------------------------------ */

/* Runs the shell command that fmt formats (it must fit in 2 KiB); it must exit 0. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[2048], *err = NULL;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && (size_t)n < sizeof(cmd), "command too long: %s", cmd);
    ck_assert_msg(it_run(argv, NULL, 20000, NULL, &err) == 0, "failed: %s\n%s", cmd,
                  err ? err : "");
    free(err);
}

/* copycat.pem: a self-signed CA with ca.pem's subject DN and subject key identifier, and a
 * key of its own. */
static void make_copycat(void)
{
    sh("set -e; o='%s';"
       "skid=$($o x509 -in ca.pem -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' ');"
       "$o ecparam -name prime256v1 -genkey -noout -out copycat.key;"
       "$o x509 -in ca.pem -x509toreq -signkey copycat.key -out copycat.csr 2>/dev/null;"
       "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n"
       "subjectKeyIdentifier=%%s\\nauthorityKeyIdentifier=keyid:always\\n' $skid > cc.ext;"
       "$o x509 -req -in copycat.csr -signkey copycat.key -days 2 -extfile cc.ext "
       "-out copycat.pem 2>/dev/null",
       it_openssl());
}

/* NAME.pem/.key: a leaf for id signed by the CA ca (openssl), its authority key identifier
 * taken from the CA. */
static void openssl_leaf(const char *name, const char *ca, const char *id)
{
    sh("set -e; o='%s';"
       "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
       "extendedKeyUsage=serverAuth,clientAuth\\nsubjectAltName=URI:%s\\n"
       "authorityKeyIdentifier=keyid\\n' > %s.ext;"
       "$o req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key "
       "-out %s.csr -subj /CN=%s 2>/dev/null;"
       "$o x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial -days 1 "
       "-extfile %s.ext -out %s.pem 2>/dev/null",
       it_openssl(), id, name, name, name, name, name, ca, ca, name, name);
}

/* Our roots ca and ca2, the partner's root, the copycat root. */
static void make_roots(void)
{
    it_certs("ca", "--out", "ca", "--cn", "mesh test CA", NULL);
    it_certs("ca", "--out", "ca2", "--cn", "mesh test CA 2", NULL);
    it_certs("ca", "--out", "partner", "--cn", "partner root CA", NULL);
    make_copycat();
}

/* Sidecar NAME (config NAME.yaml, admin port admin) presenting ID.pem: our trust domain's
 * roots, and each federated domain with its own; c's listeners; more: top-level YAML. */
static void start_federated(const char *name, const char *id, int admin, struct it_cfg *c,
                            const char *more)
{
    char file[64];

    sh("cat ca.pem ca2.pem > ours.pem");
    snprintf(file, sizeof(file), "%s.yaml", name);
    c->admin = admin;
    c->workers = 1;
    c->id = id;
    c->bundle = "ours.pem";
    c->id_more = "trust_domains: {partner.example: partner.pem, copycat.example: copycat.pem}";
    c->timeouts = "handshake: 3s, drain: 1s";
    it_cfg_write(file, c, "%s", more);
    it_sidecar_start(name, file, admin, 0);
}

/* ---- checks --------------------------------------------------------------------------- */

static double stat0(int admin, const char *name, const char *labels)
{
    double v = it_stat(admin, name, labels);

    return v < 0 ? 0 : v;
}

/* The listener has n failed handshakes, each with reason trust_domain or untrusted. */
static void expect_refused(int admin, const char *what, const char *listener, int n)
{
    char labels[160];
    double failed, td, un;

    snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
    failed = it_wait_stat(admin, "tollgate_handshakes_failed_total", labels, n, 5000);
    snprintf(labels, sizeof(labels), "listener=\"%s\",reason=\"trust_domain\"", listener);
    td = stat0(admin, "tollgate_handshakes_failed_total", labels);
    snprintf(labels, sizeof(labels), "listener=\"%s\",reason=\"untrusted\"", listener);
    un = stat0(admin, "tollgate_handshakes_failed_total", labels);
    ck_assert_msg(failed == n && td + un == n,
                  "%s: %.0f failed handshakes (trust_domain %.0f, untrusted %.0f); want %d, "
                  "each refused as trust_domain or untrusted",
                  what, failed, td, un, n);
}

/* ---- inbound -------------------------------------------------------------------------- */

static int in_port, b_admin, echo_port;
static struct it_proc *echo;

static void start_b(void)
{
    start_federated(
        "b", "web", b_admin,
        &(struct it_cfg){.in = {{"web-in", in_port, echo_port,
                                 .more = "allow: [\"" IT_API_ID "\", \"" P_API_ID "\"]"}}},
        "");
}

/* s_client presents NAME.pem (and chain, when not NULL) to B's web-in and sends PAYLOAD.
 * Returns 2 when the echo came back, 1 when the session stayed open without it, 0 when B
 * closed it (a refusal ends at once). */
static int call_b(const char *name, const char *chain)
{
    struct it_argv a;
    struct it_proc *cli;
    uint64_t end = it_now_ms() + PEER_TIMEOUT_MS;
    bool echoed = false, open = true;

    it_openssl_argv(&a, "s_client", in_port, name, chain);
    IT_ARGV_ADD(&a, "-ign_eof");
    cli = it_spawn(name, a.v, IT_STDIN_PIPE);
    ck_assert(it_send_all(cli->stdin_fd, PAYLOAD, strlen(PAYLOAD)));
    while (!echoed && open && it_now_ms() < end) {
        echoed = it_file_contains(cli->out_path, PAYLOAD);
        open = it_wait(cli, 0) < 0;
        if (!echoed && open)
            it_sleep_ms(20);
    }
    echoed = echoed || it_file_contains(cli->out_path, PAYLOAD);
    it_stop(cli, 2000);
    return echoed ? 2 : open ? 1 : 0;
}

START_TEST(test_inbound_partner_cannot_vouch_for_our_ids)
{
    static const struct {
        const char *name, *chain;
    } attacks[] = {
        {"evil_api", NULL},     /* partner root signs our api ID */
        {"copycat_api", NULL},  /* the copycat root signs it */
        {"evil_api", "ca.pem"}, /* partner-signed, our root appended to the chain */
    };
    double accepted0;
    int accepts, refused = 0;

    make_roots();
    it_certs("issue", "--ca", "ca", "--out", "web", "--spiffe", IT_WEB_ID, NULL);
    it_certs("issue", "--ca", "ca", "--out", "api", "--spiffe", IT_API_ID, NULL);
    it_certs("issue", "--ca", "ca2", "--out", "api2", "--spiffe", IT_API_ID, NULL);
    it_certs("issue", "--ca", "partner", "--out", "p_api", "--spiffe", P_API_ID, NULL);
    it_certs("issue", "--ca", "partner", "--out", "evil_api", "--spiffe", IT_API_ID, NULL);
    openssl_leaf("copycat_api", "copycat", IT_API_ID);
    start_b();

    for (size_t i = 0; i < TG_NELEM(attacks); i++) {
        char what[96];

        snprintf(what, sizeof(what), "inbound %s%s%s", attacks[i].name,
                 attacks[i].chain ? " + chain " : "", attacks[i].chain ? attacks[i].chain : "");
        fprintf(stderr, "attack: %s\n", what);
        accepts = it_echo_accepts(echo);
        if (call_b(attacks[i].name, attacks[i].chain) > 0 || it_echo_accepts(echo) > accepts) {
            got_through("%s: served by web-in as %s", what, IT_API_ID);
            continue;
        }
        expect_refused(b_admin, what, "web-in", ++refused);
        ck_assert_msg(through[0] != '\0' ||
                          stat0(b_admin, "tollgate_handshakes_total", "listener=\"web-in\"") == 0,
                      "%s: a handshake completed", what);
    }

    /* controls: our api from either root, the partner's own api from the partner root */
    accepts = it_echo_accepts(echo);
    accepted0 = stat0(b_admin, "tollgate_handshakes_total", "listener=\"web-in\"");
    ck_assert_msg(call_b("api", NULL) == 2, "our api (root ca) was not served");
    ck_assert_msg(call_b("api2", NULL) == 2, "our api (root ca2) was not served");
    ck_assert_msg(call_b("p_api", NULL) == 2, "the partner's own api was not served");
    ck_assert_msg(it_echo_accepts(echo) == accepts + 3, "the app saw %d connections, want %d",
                  it_echo_accepts(echo), accepts + 3);
    ck_assert(stat0(b_admin, "tollgate_handshakes_total", "listener=\"web-in\"") == accepted0 + 3);
    ck_assert_msg(through[0] == '\0', "attacks that got through: %s", through);
}
END_TEST

/* ---- outbound ------------------------------------------------------------------------- */

static const struct upstream {
    const char *listener, *cert, *chain, *expect;
    bool control; /* must be served */
} upstreams[] = {
    {"evil-out", "evil_web", NULL, IT_WEB_ID, false},
    {"copycat-out", "copycat_web", NULL, IT_WEB_ID, false},
    {"chain-out", "evil_web", "ca.pem", IT_WEB_ID, false},
    {"partner-out", "p_web", NULL, P_WEB_ID, true},
    {"rotated-out", "web2", NULL, IT_WEB_ID, true},
};

/* A plain client sends PAYLOAD through A's listener at port: whether s_server's answer came
 * back; a refused upstream's client must be closed. */
static bool call_through_a(int port, bool control, const char *what)
{
    char buf[128];
    size_t got;
    int fd = it_connect(port, PEER_TIMEOUT_MS), eof;

    ck_assert_msg(fd >= 0, "%s: connect to A: %s", what, strerror(-fd));
    it_send_all(fd, PAYLOAD, strlen(PAYLOAD)); /* may fail: A may have closed already */
    memset(buf, 0, sizeof(buf));
    got = it_recv_full(fd, buf, strlen(PAYLOAD_REV));
    if (!control) {
        eof = got > 0 ? 1 : it_recv_eof(fd);
        ck_assert_msg(got > 0 || eof == 0 || eof == -ECONNRESET,
                      "%s: the client of a refused upstream was not closed (%s)", what,
                      strerror(-eof));
    }
    close(fd);
    return got == strlen(PAYLOAD_REV) && memcmp(buf, PAYLOAD_REV, got) == 0;
}

START_TEST(test_outbound_partner_cannot_serve_as_our_ids)
{
    int a_admin = it_free_port(), out_ports[TG_NELEM(upstreams)];
    struct it_proc *srv[TG_NELEM(upstreams)];
    struct it_cfg a = {0};

    make_roots();
    it_certs("issue", "--ca", "ca", "--out", "api", "--spiffe", IT_API_ID, NULL);
    it_certs("issue", "--ca", "ca2", "--out", "web2", "--spiffe", IT_WEB_ID, NULL);
    it_certs("issue", "--ca", "partner", "--out", "p_web", "--spiffe", P_WEB_ID, NULL);
    it_certs("issue", "--ca", "partner", "--out", "evil_web", "--spiffe", IT_WEB_ID, NULL);
    openssl_leaf("copycat_web", "copycat", IT_WEB_ID);
    for (size_t i = 0; i < TG_NELEM(upstreams); i++) {
        const struct upstream *u = &upstreams[i];
        struct it_argv arg;
        int port = it_free_port();

        it_openssl_argv(&arg, "s_server", port, u->cert, u->chain);
        IT_ARGV_ADD(&arg, "-alpn", "tollgate", "-rev"); /* answers each line reversed */
        srv[i] = it_spawn(u->listener, arg.v, IT_STDIN_PIPE);
        out_ports[i] = it_free_port();
        a.out[i] = (struct it_listener){u->listener, out_ports[i], port, u->expect, NULL};
    }
    for (size_t i = 0; i < TG_NELEM(upstreams); i++)
        ck_assert_msg(it_wait_file_contains(srv[i]->out_path, "ACCEPT", 10000),
                      "s_server %s did not start", upstreams[i].listener);
    start_federated("a", "api", a_admin, &a, "tls: {resumption: false}\n");

    for (size_t i = 0; i < TG_NELEM(upstreams); i++) {
        const struct upstream *u = &upstreams[i];
        char what[96];
        bool answered;

        snprintf(what, sizeof(what), "outbound %s (%s%s%s)", u->listener, u->cert,
                 u->chain ? " + chain " : "", u->chain ? u->chain : "");
        fprintf(stderr, "%s: %s\n", u->control ? "control" : "attack", what);
        answered = call_through_a(out_ports[i], u->control, what);
        if (u->control) {
            ck_assert_msg(answered, "%s: no answer from a good server", what);
            continue;
        }
        if (answered || it_file_contains(srv[i]->out_path, "must not pass")) {
            got_through("%s: the impostor served A as %s", what, u->expect);
            continue;
        }
        expect_refused(a_admin, what, u->listener, 1);
    }
    ck_assert_msg(through[0] == '\0', "attacks that got through: %s", through);
}
END_TEST

/* ---- control plane -------------------------------------------------------------------- */

/* s_server on port as the control plane: cert (and chain) claiming IT_CP_ID. */
static struct it_proc *fake_cp(int port, const char *cert, const char *chain)
{
    struct it_argv a;
    struct it_proc *p;

    it_openssl_argv(&a, "s_server", port, cert, chain);
    IT_ARGV_ADD(&a, "-alpn", "tollgate");
    p = it_spawn("fake_cp", a.v, IT_STDIN_PIPE);
    ck_assert_msg(it_wait_file_contains(p->out_path, "ACCEPT", 10000), "fake control plane %s",
                  cert);
    return p;
}

START_TEST(test_control_plane_impostor_signed_by_a_partner_is_refused)
{
    static const struct {
        const char *cert, *chain;
    } fakes[] = {
        {"evil_cp", NULL},
        {"copycat_cp", NULL},
        {"evil_cp", "ca.pem"},
    };
    int cp_port = it_free_port(), s_admin = it_free_port(), in = it_free_port();
    struct it_proc *cp;
    char *dump = NULL;
    int connects, refused = 0;

    make_roots();
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    it_certs("issue", "--ca", "partner", "--out", "evil_cp", "--spiffe", IT_CP_ID, NULL);
    openssl_leaf("copycat_cp", "copycat", IT_CP_ID);
    it_write_file("tokens.txt", "ssssssssssssssssssssssss default web\n");
    it_write_file("s.token", "ssssssssssssssssssssssss\n");
    it_write_file("mesh.yaml", "authorization:\n  default: allow\n");
    it_cp_cfg_write("cp.yaml", cp_port, 0,
                    "roots: [ca.pem, ca2.pem]\n"
                    "extra_roots:\n"
                    "  partner.example: [partner.pem]\n"
                    "  copycat.example: [copycat.pem]\n"
                    "cert_ttl: 1h\n"
                    "tokens: tokens.txt\n"
                    "mesh: [mesh.yaml]\n");
    cp = it_cp_start("cp", "cp.yaml", cp_port);
    it_cfg_write("s.yaml",
                 &(struct it_cfg){.admin = s_admin,
                                  .workers = 1,
                                  .cp_port = cp_port,
                                  .cp_token = "s.token",
                                  .in = {{"web-in", in, 9}}},
                 NULL);
    it_sidecar_start("s", "s.yaml", s_admin, 0);
    /* S holds the pushed bundle, partner roots and all */
    ck_assert_int_eq(it_http(s_admin, "GET", "/config_dump", &dump), 200);
    ck_assert_msg(strstr(dump, "\"n_roots\":4") != NULL, "S does not hold 4 roots: %s", dump);
    free(dump);
    connects = it_count_lines("s.err", "control plane: connected to", NULL);
    ck_assert_int_eq(connects, 1);
    it_stop(cp, 5000);

    for (size_t i = 0; i < TG_NELEM(fakes); i++) {
        int seen = it_count_lines("s.err", "control plane", "TLS handshake with", NULL);
        struct it_proc *f = fake_cp(cp_port, fakes[i].cert, fakes[i].chain);
        uint64_t end = it_now_ms() + 15000;
        char what[96];

        snprintf(what, sizeof(what), "control plane %s%s%s", fakes[i].cert,
                 fakes[i].chain ? " + chain " : "", fakes[i].chain ? fakes[i].chain : "");
        fprintf(stderr, "attack: %s\n", what);
        while (it_now_ms() < end &&
               it_count_lines("s.err", "control plane", "TLS handshake with", NULL) == seen &&
               it_count_lines("s.err", "control plane: connected to", NULL) == connects)
            it_sleep_ms(50);
        if (it_count_lines("s.err", "control plane: connected to", NULL) > connects) {
            got_through("%s: S took it for the control plane", what);
            connects = it_count_lines("s.err", "control plane: connected to", NULL);
            it_stop(f, 2000);
            continue;
        }
        ck_assert_msg(it_count_lines("s.err", "control plane", "TLS handshake with", NULL) > seen,
                      "%s: S did not try the impostor within 15 s", what);
        refused++;
        ck_assert_msg(
            it_count_lines("s.err", "TLS handshake with", ": trust_domain: ", NULL) +
                    it_count_lines("s.err", "TLS handshake with", ": untrusted: ", NULL) ==
                refused,
            "%s: not refused as trust_domain or untrusted", what);
        it_stop(f, 2000);
    }
    ck_assert_msg(through[0] == '\0', "attacks that got through: %s", through);
    ck_assert_msg(
        stat0(s_admin, "tollgate_cp_handshakes_failed_total", "reason=\"trust_domain\"") +
                stat0(s_admin, "tollgate_cp_handshakes_failed_total", "reason=\"untrusted\"") ==
            refused,
        "the control plane's refusals were not counted");
}
END_TEST

/* ---- configuration -------------------------------------------------------------------- */

/* `tollgate check` on FILE: its exit status, stderr into err (malloc'd). */
static int check(const char *file, char **err)
{
    const char *argv[] = {it_env("TG_BIN"), "check", "-c", file, NULL};
    int st = it_run(argv, NULL, 30000, NULL, err);

    ck_assert_msg(st >= 0, "tollgate check %s did not finish", file);
    return st;
}

/* Writes FILE: web's identity with trust bundle BUNDLE and trust_domains DOMAINS (flow text),
 * and one listener; `tollgate check` on it, as check(). */
static int check_trust(const char *file, const char *bundle, const char *domains, char **err)
{
    it_write_file(file,
                  "identity:\n  cert: web.pem\n  key: web.key\n  trust_bundle: %s\n"
                  "  trust_domains: %s\n"
                  "inbound:\n"
                  "  - {name: web-in, listen: '127.0.0.1:18443', upstream: '127.0.0.1:18080'}\n",
                  bundle, domains);
    return check(file, err);
}

/* As check_trust(), which must refuse the file with an error holding want and also. */
static void check_trust_refused(const char *file, const char *bundle, const char *domains,
                                const char *want, const char *also)
{
    char *err = NULL;

    ck_assert_int_eq(check_trust(file, bundle, domains, &err), 1);
    ck_assert_msg(strstr(err, want) && strstr(err, also), "%s", err);
    free(err);
}

/* The spelling that put every root in one bundle is refused with the new one named, and so is
 * a migration that left the partner's root in our trust bundle. */
START_TEST(test_config_says_which_roots_vouch_for_which_domain)
{
    char *err = NULL;

    make_roots();
    it_certs("issue", "--ca", "ca", "--out", "web", "--spiffe", IT_WEB_ID, NULL);
    sh("cat ca.pem partner.pem > all.pem");
    check_trust_refused("old.yaml", "all.pem", "[partner.example]",
                        "old.yaml:5: identity.trust_domains: a list of names no longer",
                        "{DOMAIN: ITS-BUNDLE.pem, ...}");
    check_trust_refused("half.yaml", "all.pem", "{partner.example: partner.pem}",
                        "identity.trust_domains.partner.example: ", "is a root of mesh.local too");
    ck_assert_int_eq(check_trust("new.yaml", "ca.pem", "{partner.example: partner.pem}", &err), 0);
    free(err);

    /* tollgate-cp refuses the same at load, rather than push what every sidecar NACKs */
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    it_write_file("mesh.yaml", "authorization:\n  default: allow\n");
    it_write_file("cp.yaml", "trust_domain: mesh.local\n"
                             "server: {cert: cp.pem, key: cp.key}\n"
                             "ca: {cert: ca.pem, key: ca.key}\n"
                             "roots: [ca.pem]\n"
                             "extra_roots:\n"
                             "  partner.example: [all.pem]\n"
                             "mesh: [mesh.yaml]\n");
    {
        const char *argv[] = {it_env("TG_CP_BIN"), "check", "-c", "cp.yaml", NULL};

        ck_assert_int_eq(it_run(argv, NULL, 30000, NULL, &err), 1);
        ck_assert_msg(strstr(err, "extra_roots") && strstr(err, "is a root of mesh.local too"),
                      "%s", err);
        free(err);
    }
}
END_TEST

/* ---- suite ---------------------------------------------------------------------------- */

static void setup(void)
{
    through[0] = '\0';
    it_setup();
    echo_port = 0;
    echo = it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&in_port, &b_admin);
}

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("adversarial_trust", "trust", NULL, setup, it_teardown, 60,
                         test_inbound_partner_cannot_vouch_for_our_ids,
                         test_outbound_partner_cannot_serve_as_our_ids,
                         test_control_plane_impostor_signed_by_a_partner_is_refused,
                         test_config_says_which_roots_vouch_for_which_domain);
}

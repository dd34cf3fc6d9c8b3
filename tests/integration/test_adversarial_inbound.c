/* Adversarial: plain-text callers on permissive inbound ports (issue 12, item 6).
 *
 * A caller that sends no TLS has no identity. Sidecar B has one permissive listener per
 * attack, all to the same echo app, under `authorization.default: deny` and rules scoped
 * by port: rules that name identities (principals, "*", namespaces, trust domains,
 * fingerprints, serials) must never match a plain-text caller, a DENY with not_principals
 * ["*"] (Istio's way to refuse plain text) must refuse it, default deny must refuse it, a
 * listener's allow list must refuse it, and a protocol: http port must answer 403. Each
 * refusal is logged and counted with its reason, and the app never sees the caller.
 * Positive controls: mTLS callers (through sidecar A) are allowed where the rules say so;
 * a plain-text caller is let in only by an explicit choice (allow_unauthenticated on the
 * listener, or a rule that names no identity); not_ forms follow Istio for an
 * unauthenticated source; close_denied closes a live plain-text connection that a new
 * generation refuses; a first burst of plain text over a buffer's size arrives whole. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tollgate/err.h"

/* B's listeners: each its own port, named for the attack it holds. */
enum {
    L_DEFAULT,    /* no rule for its port: default deny */
    L_PRINCIPAL,  /* allow principals [api] */
    L_ANY_ID,     /* allow principals ["*"] */
    L_NAMESPACE,  /* allow namespaces [default] */
    L_DOMAIN,     /* allow trust_domains [mesh.local] */
    L_CERT,       /* allow fingerprints [api's]; allow serials [api's] */
    L_DENY_PLAIN, /* deny not_principals ["*"]; allow by port alone */
    L_LISTED,     /* the listener's allow: [api]; a rule allows its port to anyone */
    L_HTTP,       /* protocol: http, default deny */
    L_N
};

static const char *const names[L_N] = {
    "default-deny", "principal",  "any-id", "namespace", "domain",
    "cert",         "deny-plain", "listed", "http",
};

static struct it_proc *echo, *b;
static int echo_port, b_admin, a_admin, port[L_N];
static char api_sha256[80], api_serial[80];

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    it_cert_sha256("api.pem", api_sha256, sizeof(api_sha256));
    it_cert_serial("api.pem", api_serial, sizeof(api_serial));
    echo = it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&b_admin, &a_admin);
    for (int i = 0; i < L_N; i++)
        port[i] = it_free_port();
}

/* B: the rules below, then extra_rules (YAML list items, may be ""), then one permissive
 * listener per attack (listed_extra: more keys of the L_LISTED listener, may be ""). */
static void write_b(const char *extra_rules, const char *listed_extra, bool close_denied)
{
    struct it_cfg c = {
        .admin = b_admin, .workers = 1, .id = "web", .timeouts = "handshake: 2s, drain: 1s"};
    char listed_more[256];

    snprintf(listed_more, sizeof(listed_more), "mode: permissive%s", listed_extra);
    for (int i = 0; i < L_N; i++)
        c.in[i] =
            (struct it_listener){names[i], port[i], echo_port, i == L_LISTED ? IT_API_ID : NULL,
                                 i == L_HTTP     ? "mode: permissive, protocol: http"
                                 : i == L_LISTED ? listed_more
                                                 : "mode: permissive"};
    it_cfg_write(
        "b.yaml", &c,
        "authorization:\n"
        "  default: deny\n"
        "  close_denied: %s\n"
        "  rules:\n"
        "    - {name: api-only, action: allow, principals: [\"" IT_API_ID "\"], ports: [%d]}\n"
        "    - {name: any-id, action: allow, principals: [\"*\"], ports: [%d]}\n"
        "    - {name: ns-default, action: allow, namespaces: [default], ports: [%d]}\n"
        "    - {name: our-domain, action: allow, trust_domains: [mesh.local], ports: [%d]}\n"
        "    - {name: api-cert, action: allow, fingerprints: [\"%s\"], ports: [%d]}\n"
        "    - {name: api-serial, action: allow, serials: [\"%s\"], ports: [%d]}\n"
        "    - {name: need-mtls, action: deny, not_principals: [\"*\"], ports: [%d]}\n"
        "    - {name: deny-plain-port, action: allow, ports: [%d]}\n"
        "    - {name: listed-port, action: allow, ports: [%d]}\n"
        "%s",
        close_denied ? "true" : "false", port[L_PRINCIPAL], port[L_ANY_ID], port[L_NAMESPACE],
        port[L_DOMAIN], api_sha256, port[L_CERT], api_serial, port[L_CERT], port[L_DENY_PLAIN],
        port[L_DENY_PLAIN], port[L_LISTED], extra_rules);
}

/* A: outbound api-<i> to B's listener i for the listed ones, as spiffe .../sa/api. */
static int out_port[L_N];

static void start_a(const int *which, size_t n)
{
    struct it_cfg c = {.admin = a_admin, .workers = 1, .id = "api", .timeouts = "drain: 1s"};
    char names_out[L_N][32];

    ck_assert_uint_le(n, L_N);
    for (size_t k = 0; k < n; k++) {
        int i = which[k];

        out_port[i] = it_free_port();
        snprintf(names_out[k], sizeof(names_out[k]), "api-%s", names[i]);
        c.out[k] = (struct it_listener){names_out[k], out_port[i], port[i], IT_WEB_ID, NULL};
    }
    it_cfg_write("a.yaml", &c, "tls: {resumption: false}\n");
    it_sidecar_start("a", "a.yaml", a_admin, 0);
}

/* A plain-text caller: sends a line and waits for its echo. true when the app echoed it
 * (the caller got through); false when B closed the connection first. */
static bool plain_call(int i)
{
    char msg[96], err[256] = "";

    snprintf(msg, sizeof(msg), "plain-text caller of %s, no TLS at all\n", names[i]);
    return it_round_trip(port[i], msg, err) >= 0;
}

/* An mTLS caller with identity api, through A. */
static bool mtls_call(int i)
{
    char msg[96], err[256] = "";

    snprintf(msg, sizeof(msg), "mTLS caller of %s\n", names[i]);
    return it_round_trip(out_port[i], msg, err) >= 0;
}

static double refused(int i, const char *reason)
{
    char labels[160];

    snprintf(labels, sizeof(labels), "listener=\"%s\",reason=\"%s\"", names[i], reason);
    return it_stat(b_admin, "tollgate_plaintext_refused_total", labels);
}

/* An HTTP request in plain text to the protocol: http port; the status line it got back. */
static void plain_http(char *status, size_t cap)
{
    static const char req[] = "GET /secret HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n";
    int fd = it_connect(port[L_HTTP], 5000);
    size_t n;

    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, req, sizeof(req) - 1));
    n = it_recv_full(fd, status, cap - 1);
    status[n] = '\0';
    if (strchr(status, '\r') != NULL)
        *strchr(status, '\r') = '\0';
    close(fd);
}

START_TEST(test_plain_callers_never_match_identity_rules)
{
    static const int ids[] = {L_PRINCIPAL, L_ANY_ID,     L_NAMESPACE, L_DOMAIN,
                              L_CERT,      L_DENY_PLAIN, L_DEFAULT};
    static const int mtls[] = {L_PRINCIPAL, L_ANY_ID,     L_NAMESPACE, L_DOMAIN,
                               L_CERT,      L_DENY_PLAIN, L_LISTED};
    char status[512], line[IT_LINE_MAX];

    write_b("", "", false);
    b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    start_a(mtls, TG_NELEM(mtls));

    /* the attacks: no identity, so no identity rule lets it in; default deny refuses it */
    for (size_t k = 0; k < TG_NELEM(ids); k++)
        ck_assert_msg(!plain_call(ids[k]), "a plain-text caller got through %s", names[ids[k]]);
    /* the listener's allow list names an identity: a plain-text caller has none */
    ck_assert_msg(!plain_call(L_LISTED), "a plain-text caller passed the allow list");
    ck_assert_int_eq(it_echo_accepts(echo), 0); /* the app saw none of them */
    /* protocol: http: every request is decided; default deny answers 403 (the app gets the
     * connection, as for an mTLS caller, but never the request) */
    plain_http(status, sizeof(status));
    ck_assert_msg(strncmp(status, "HTTP/1.1 403", 12) == 0, "plain HTTP got: %s", status);

    /* the positive controls: mTLS callers the rules name get through */
    for (size_t k = 0; k < TG_NELEM(mtls); k++)
        ck_assert_msg(mtls_call(mtls[k]), "api over mTLS refused by %s", names[mtls[k]]);
    ck_assert_int_eq(it_echo_accepts(echo), 1 + (int)TG_NELEM(mtls));

    /* each refusal logged with its reason and counted */
    for (size_t k = 0; k < TG_NELEM(ids); k++)
        ck_assert_msg(refused(ids[k], "denied") == 1, "%s: plaintext_refused{denied} = %g",
                      names[ids[k]], refused(ids[k], "denied"));
    ck_assert_double_eq(refused(L_LISTED, "not_allowed"), 1);
    ck_assert_double_eq(refused(L_LISTED, "denied"), 0);
    ck_assert(it_file_contains("b.err", "default-deny: client 127.0.0.1:"));
    ck_assert(it_file_contains("b.err", "(plain text, no identity) refused: denied: default deny"));
    ck_assert(it_file_contains("b.err", "refused: denied: denied by rule need-mtls"));
    ck_assert(it_file_contains("b.err", "refused: denied: no ALLOW rule matched"));
    ck_assert(it_file_contains("b.err", "listed: client 127.0.0.1:"));
    ck_assert(it_file_contains("b.err", "refused: not_allowed: "));
    ck_assert(it_wait_lines("b.out", 1, 5000, "\"listener\":\"any-id\"", "\"outcome\":\"refused\"",
                            NULL) == 1);
    ck_assert(it_last_line("b.out", line, sizeof(line), "\"listener\":\"listed\"",
                           "\"outcome\":\"refused\"", NULL));
    ck_assert_msg(strstr(line, "not_allowed") != NULL, "%s", line);
    ck_assert_double_eq(it_stat(b_admin, "tollgate_http_denied_total", "listener=\"http\""), 1);
    /* only the HTTP one went on in plain text, to have its requests decided */
    ck_assert_double_eq(it_stat(b_admin, "tollgate_plaintext_connections_total", ""), 1);
}
END_TEST

START_TEST(test_plain_callers_let_in_only_explicitly)
{
    static const int mtls[] = {L_LISTED, L_DEFAULT};
    char rules[256];

    /* not-authenticated: allows callers without an identity only (Istio: notPrincipals "*"
     * matches an unauthenticated source), on the namespace port beside ns-default; the
     * listed port lets plain-text callers past its allow list; default deny stays */
    snprintf(rules, sizeof(rules),
             "    - {name: not-authenticated, action: allow, not_principals: [\"*\"], "
             "ports: [%d]}\n",
             port[L_NAMESPACE]);
    write_b(rules, ", allow_unauthenticated: true", false);
    b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    start_a(mtls, TG_NELEM(mtls));

    ck_assert_msg(plain_call(L_LISTED), "allow_unauthenticated: plain-text caller refused");
    ck_assert_msg(mtls_call(L_LISTED), "allow_unauthenticated: api over mTLS refused");
    /* the namespace port: ns-default (needs an identity) or not-authenticated (needs none) */
    ck_assert_msg(plain_call(L_NAMESPACE), "not_principals [*]: plain-text caller refused");
    ck_assert_msg(!plain_call(L_DEFAULT), "default deny let a plain-text caller in");
    ck_assert_msg(!mtls_call(L_DEFAULT), "default deny let api in");
    ck_assert_double_eq(it_stat(b_admin, "tollgate_plaintext_connections_total", ""), 2);
    ck_assert_double_eq(refused(L_DEFAULT, "denied"), 1);
}
END_TEST

START_TEST(test_not_forms_and_close_denied_for_plain_callers)
{
    int fd;
    char buf[64], rules[256];

    /* not_namespaces: [other] on the default-deny port: a caller without a namespace is not
     * in "other", so the rule matches it (Istio's semantics for not_ fields) */
    snprintf(rules, sizeof(rules),
             "    - {name: not-other-ns, action: allow, not_namespaces: [other], ports: [%d]}\n",
             port[L_DEFAULT]);
    write_b(rules, "", true);
    b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    ck_assert_msg(plain_call(L_DEFAULT), "not_namespaces: plain-text caller refused");

    /* a live plain-text connection, then rules that refuse it, with close_denied: closed */
    fd = it_connect(port[L_DEFAULT], 5000);
    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, "live\n", 5));
    ck_assert_int_eq(it_recv_full(fd, buf, 5), 5);
    write_b("    - {name: need-mtls-everywhere, action: deny, not_principals: [\"*\"]}\n", "",
            true);
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_generation", "", 2, 5000) >= 2,
                  "B did not reload");
    ck_assert_msg(it_recv_eof(fd) == 0, "the live plain-text connection stayed open");
    close(fd);
    ck_assert(
        it_wait_file_contains("b.err", "closing live connection of a plain-text caller", 5000));
    ck_assert_msg(!plain_call(L_DEFAULT), "need-mtls-everywhere let a plain-text caller in");
}
END_TEST

/* A plain-text caller whose first burst is more than a buffer: the peek reads no more than
 * the app-side buffer the plain text then moves to can hold (the TLS side's buffers are
 * larger), and every byte reaches the app and comes back. */
START_TEST(test_plain_caller_first_burst_over_a_buffer)
{
    static char buf[128 * 1024];
    size_t got, sent = 0;
    int fd;

    write_b("", ", allow_unauthenticated: true", false);
    b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    it_pattern(5, 0, buf, sizeof(buf));
    /* B stopped while the burst queues in the kernel, so its first read finds all of it */
    ck_assert_int_eq(kill(b->pid, SIGSTOP), 0);
    fd = it_connect(port[L_LISTED], 5000);
    ck_assert_int_ge(fd, 0);
    while (sent < sizeof(buf)) {
        ssize_t n = send(fd, buf + sent, sizeof(buf) - sent, MSG_DONTWAIT);

        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    ck_assert_int_eq(kill(b->pid, SIGCONT), 0);
    ck_assert_uint_gt(sent, 64 * 1024);
    ck_assert(it_send_all(fd, buf + sent, sizeof(buf) - sent));
    got = it_recv_full(fd, buf, sizeof(buf));
    ck_assert_uint_eq(got, sizeof(buf));
    ck_assert_uint_eq(it_pattern_check(5, 0, buf, got), got);
    close(fd);
    ck_assert_double_eq(it_stat(b_admin, "tollgate_plaintext_connections_total", ""), 1);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("adversarial_inbound", "plain_text_callers", NULL, setup, it_teardown, 60,
                         test_plain_callers_never_match_identity_rules,
                         test_plain_callers_let_in_only_explicitly,
                         test_not_forms_and_close_denied_for_plain_callers,
                         test_plain_caller_first_burst_over_a_buffer);
}

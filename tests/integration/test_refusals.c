/* Every way a peer is refused, each with its reason: in the access log ("reason":"<category>:
 * ..."), on stderr ("<listener>: client ADDR refused: <category>: ..."), and in
 * tollgate_handshakes_failed_total{reason="<category>"}; and the app never sees a connection.
 * Clients are `openssl s_client`, so the certificates meet an independent TLS stack. */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define OTHER_API_ID "spiffe://other.local/ns/default/sa/api"
#define CLIENT_TIMEOUT_MS 15000

static struct it_proc *echo, *b;
static int echo_port, web_in, open_in, b_admin;

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    echo_port = 0;
    echo = it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&web_in, &open_in, &b_admin);
}

/* B: web identity; web-in allows only api; open-in allows any ID of an accepted domain. */
static void start_b(const char *trust_domains)
{
    char domains[256] = "";

    if (trust_domains != NULL)
        snprintf(domains, sizeof(domains), "trust_domains: {%s}", trust_domains);
    it_cfg_write("b.yaml",
                 &(struct it_cfg){.admin = b_admin,
                                  .workers = 2,
                                  .id = "web",
                                  .id_more = trust_domains != NULL ? domains : NULL,
                                  .timeouts = "handshake: 2s, drain: 1s",
                                  .in = {{"web-in", web_in, echo_port, IT_API_ID},
                                         {"open-in", open_in, echo_port}}},
                 NULL);
    b = it_sidecar_start("b", "b.yaml", b_admin, 0);
}

/* openssl s_client against 127.0.0.1:port, sending a line and then waiting for the server
 * to close (-ign_eof). cert may be NULL (no client certificate). version: "-tls1_3" etc.
 * Returns its exit status; ck_asserts that it did end, i.e. that tollgate closed. */
static int s_client(int port, const char *cert, const char *version, const char *cipher, char **out,
                    char **err)
{
    struct it_argv a;
    int st;

    it_openssl_argv(&a, "s_client", port, cert, NULL);
    IT_ARGV_ADD(&a, "-CAfile", "ca.pem", "-ign_eof", version);
    if (cipher != NULL)
        IT_ARGV_ADD(&a, "-cipher", cipher);
    st = it_run(a.v, "hello, is this the app?\n", CLIENT_TIMEOUT_MS, out, err);
    ck_assert_msg(st >= 0,
                  "s_client (%s) still connected after %d ms: tollgate did not close "
                  "the refused connection",
                  cert ? cert : "no cert", CLIENT_TIMEOUT_MS);
    return st;
}

/* The failure shows in B's access log and counters, once; with refused, also as outcome
 * "refused" and on stderr. The app never sees a connection. */
static void expect_failed(const char *listener, const char *reason, bool refused)
{
    char l[64], r[64], who[64], why[64], labels[128], line[IT_LINE_MAX];
    double v;

    snprintf(l, sizeof(l), "\"listener\":\"%s\"", listener);
    snprintf(r, sizeof(r), "\"reason\":\"%s: ", reason);
    ck_assert_msg(it_wait_lines("b.out", 1, 5000, l, NULL) == 1, "no access log line for %s",
                  listener);
    it_last_line("b.out", line, sizeof(line), l, NULL);
    ck_assert_msg(strstr(line, r) != NULL, "want %s in access log line: %s", r, line);
    ck_assert_msg(strstr(line, "\"direction\":\"inbound\"") != NULL, "%s", line);
    ck_assert_msg(strstr(line, "\"outcome\":\"ok\"") == NULL, "%s", line);
    if (refused) {
        ck_assert_msg(strstr(line, "\"outcome\":\"refused\"") != NULL, "%s", line);
        snprintf(who, sizeof(who), "%s: client 127.0.0.1:", listener);
        snprintf(why, sizeof(why), " refused: %s: ", reason);
        ck_assert_msg(it_count_lines("b.err", who, why, NULL) == 1, "want one '%s...%s' in stderr",
                      who, why);
    }

    snprintf(labels, sizeof(labels), "listener=\"%s\",reason=\"%s\"", listener, reason);
    v = it_wait_stat(b_admin, "tollgate_handshakes_failed_total", labels, 1, 5000);
    ck_assert_msg(v == 1, "handshakes_failed_total{%s} = %.0f", labels, v);
    snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
    v = it_stat(b_admin, "tollgate_handshakes_failed_total", labels);
    ck_assert_msg(v == 1, "%s: %.0f failed handshakes counted in all, want 1", listener, v);
    v = it_stat(b_admin, "tollgate_handshakes_total", labels);
    ck_assert_msg(v == 0, "%s: %.0f handshakes counted ok", listener, v);
    ck_assert_int_eq(it_echo_accepts(echo), 0);
}

static void expect_refused(const char *listener, const char *reason)
{
    expect_failed(listener, reason, true);
}

static const struct refusal {
    const char *name;
    const char *spiffe;
    const char *extra[4]; /* more `tollgate-certs issue` arguments */
    bool other_ca;
    const char *listener;
    const char *reason;
} refusals[] = {
    {"wrong_ca", IT_API_ID, {NULL}, true, "web-in", "untrusted"},
    {"expired", IT_API_ID, {"--expired"}, false, "web-in", "expired"},
    {"not_yet_valid", IT_API_ID, {"--not-yet-valid"}, false, "web-in", "not_yet_valid"},
    {"not_in_allow_list",
     "spiffe://mesh.local/ns/default/sa/intruder",
     {NULL},
     false,
     "web-in",
     "not_allowed"},
    {"two_uri_sans",
     IT_API_ID,
     {"--uri", "spiffe://mesh.local/ns/default/sa/web"},
     false,
     "open-in",
     "bad_spiffe_id"},
    {"no_uri_san", IT_API_ID, {"--no-san"}, false, "open-in", "bad_spiffe_id"},
    {"ca_flag_leaf", IT_API_ID, {"--ca-flag"}, false, "web-in", "bad_cert"},
    {"server_only_eku", IT_API_ID, {"--eku", "server"}, false, "web-in", "bad_cert"},
    {"codesign_eku", IT_API_ID, {"--eku", "codesign"}, false, "web-in", "bad_cert"},
    {"other_trust_domain", OTHER_API_ID, {NULL}, false, "open-in", "trust_domain"},
};

START_TEST(test_refused_with_reason)
{
    const struct refusal *c = &refusals[_i];
    const char *e0 = c->extra[0], *e1 = c->extra[1];
    char *out = NULL, *err = NULL;

    fprintf(stderr, "refusal case %s\n", c->name);
    start_b(NULL);
    if (c->other_ca)
        it_certs("ca", "--out", "ca2", "--cn", "some other CA", NULL);
    /* a NULL extra ends the argument list early */
    it_certs("issue", "--ca", c->other_ca ? "ca2" : "ca", "--out", "client", "--spiffe", c->spiffe,
             e0, e1, NULL);
    s_client(c->listener[0] == 'w' ? web_in : open_in, "client", "-tls1_3", NULL, &out, &err);
    ck_assert_msg(out == NULL || strstr(out, "hello, is this") == NULL, "%s: data came back",
                  c->name);
    expect_refused(c->listener, c->reason);
    free(out);
    free(err);
}
END_TEST

START_TEST(test_client_without_cert_is_no_peer_cert)
{
    start_b(NULL);
    s_client(web_in, NULL, "-tls1_3", NULL, NULL, NULL);
    expect_refused("web-in", "no_peer_cert");
}
END_TEST

/* A client with a good certificate that speaks only version (cipher: NULL or its -cipher)
 * fails its handshake, refused as "protocol". */
static void expect_version_refused(const char *version, const char *cipher)
{
    char *err = NULL;
    int st;

    start_b(NULL);
    it_certs("issue", "--ca", "ca", "--out", "client", "--spiffe", IT_API_ID, NULL);
    st = s_client(web_in, "client", version, cipher, NULL, &err);
    ck_assert_msg(st != 0, "a %s handshake succeeded: %s", version, err ? err : "");
    expect_refused("web-in", "protocol");
    free(err);
}

/* OpenSSL 3 still sends a TLS 1.1 ClientHello at security level 0 (checked: record version
 * 0x0302), so tollgate does see one and must call it a protocol failure. */
START_TEST(test_tls11_client_is_protocol)
{
    expect_version_refused("-tls1_1", "DEFAULT:@SECLEVEL=0");
}
END_TEST

START_TEST(test_tls12_client_refused_when_min_is_13)
{
    expect_version_refused("-tls1_2", NULL);
}
END_TEST

/* Plain bytes where a ClientHello belongs. */
START_TEST(test_plain_text_client_is_protocol)
{
    const char *req = "GET / HTTP/1.1\r\nHost: web\r\n\r\n";
    int fd, eof;

    start_b(NULL);
    fd = it_connect(web_in, 10000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    it_send_all(fd, req, strlen(req));
    eof = it_recv_eof(fd);
    ck_assert_msg(eof != -EAGAIN && eof != 1, "plain text client not closed: %d", eof);
    close(fd);
    expect_failed("web-in", "protocol", false);
}
END_TEST

/* A client that connects and says nothing is closed at the handshake timeout (2 s here). */
START_TEST(test_silent_client_is_timeout)
{
    uint64_t t0;
    int fd, eof;

    start_b(NULL);
    fd = it_connect(web_in, 8000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    t0 = it_now_ms();
    eof = it_recv_eof(fd);
    ck_assert_msg(eof == 0 || eof == -ECONNRESET, "silent client not closed in 8 s: %d", eof);
    ck_assert_msg(it_now_ms() - t0 >= 1500, "closed after %llu ms, before the 2 s timeout",
                  (unsigned long long)(it_now_ms() - t0));
    close(fd);
    expect_failed("web-in", "timeout", false);
}
END_TEST

/* A client that goes away in the middle of the handshake: the start of a TLS record that
 * announces 256 bytes of ClientHello, 40 bytes of it, then FIN. */
START_TEST(test_client_leaving_mid_handshake_is_peer_closed)
{
    static const char head[] = "\x16\x03\x01\x01\x00\x01\x00\x00\xfc\x03\x03";
    char hello[40] = {0};
    int fd;

    start_b(NULL);
    memcpy(hello, head, sizeof(head) - 1);
    fd = it_connect(web_in, 8000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    ck_assert(it_send_all(fd, hello, sizeof(hello)));
    shutdown(fd, SHUT_WR);
    ck_assert_msg(it_recv_eof(fd) != -EAGAIN, "not closed after the client left");
    close(fd);
    expect_failed("web-in", "peer_closed", false);
}
END_TEST

/* Outbound: A expects a db identity, but the server at the upstream is web. A refuses it. */
START_TEST(test_outbound_unexpected_server)
{
    int a_admin = it_free_port(), out_port = it_free_port();
    char why[128], line[IT_LINE_MAX];
    int fd, eof;
    double v;

    start_b(NULL);
    it_cfg_write("a.yaml",
                 &(struct it_cfg){.admin = a_admin,
                                  .id = "api",
                                  .out = {{"api-out", out_port, web_in,
                                           "spiffe://mesh.local/ns/default/sa/db"}}},
                 NULL);
    it_sidecar_start("a", "a.yaml", a_admin, 0);
    fd = it_connect(out_port, 10000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    it_send_all(fd, "secret for db\n", 14);
    eof = it_recv_eof(fd);
    ck_assert_msg(eof == 0 || eof == -ECONNRESET, "want the connection closed, got %s",
                  eof > 0 ? "data" : strerror(-eof));
    close(fd);

    v = it_wait_stat(a_admin, "tollgate_handshakes_failed_total",
                     "listener=\"api-out\",direction=\"outbound\",reason=\"unexpected_server\"", 1,
                     5000);
    ck_assert_msg(v == 1, "A: handshakes_failed_total{unexpected_server} = %.0f", v);
    /* the server named is the one refused: the upstream, not the app that connected */
    snprintf(why, sizeof(why), "api-out: server 127.0.0.1:%d refused: unexpected_server: ", web_in);
    ck_assert_msg(it_count_lines("a.err", why, NULL) == 1, "A stderr has no '%s' line:\n%s", why,
                  it_read_file("a.err", NULL));
    ck_assert_msg(it_wait_lines("a.out", 1, 5000, "\"listener\":\"api-out\"",
                                "\"outcome\":\"refused\"", NULL) == 1,
                  "no refused access log line on A");
    it_last_line("a.out", line, sizeof(line), "\"listener\":\"api-out\"", NULL);
    ck_assert_msg(strstr(line, "\"reason\":\"unexpected_server: ") != NULL, "%s", line);
    ck_assert_int_eq(it_echo_accepts(echo), 0);
}
END_TEST

/* An other.local certificate from other.local's own root is served once each side names
 * the other's trust domain with its roots. */
START_TEST(test_other_trust_domain_accepted_when_listed)
{
    int a_admin = it_free_port(), out_port = it_free_port();
    char err[256] = "", line[IT_LINE_MAX], id[256];

    it_certs("ca", "--out", "other_ca", "--cn", "other.local root", NULL);
    start_b("other.local: other_ca.pem");
    it_certs("issue", "--ca", "other_ca", "--out", "other", "--spiffe", OTHER_API_ID, NULL);
    it_cfg_write("a.yaml",
                 &(struct it_cfg){.admin = a_admin,
                                  .id = "other",
                                  .bundle = "other_ca.pem",
                                  .id_more = "trust_domains: {mesh.local: ca.pem}",
                                  .out = {{"other-out", out_port, open_in, IT_WEB_ID}}},
                 NULL);
    it_sidecar_start("a", "a.yaml", a_admin, 0);
    ck_assert_msg(it_round_trip(out_port, "from another trust domain\n", err) > 0, "%s", err);
    it_log_line_ok("b.out", "\"listener\":\"open-in\"", line);
    ck_assert_msg(it_json_str(line, "peer_id", id, sizeof(id)) && strcmp(id, OTHER_API_ID) == 0,
                  "%s", line);
    ck_assert_int_eq(it_echo_accepts(echo), 1);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = IT_TEST_SUITE(
        "refusals", "refusals", &tc, setup, it_teardown, 60,
        test_client_without_cert_is_no_peer_cert, test_tls11_client_is_protocol,
        test_tls12_client_refused_when_min_is_13, test_plain_text_client_is_protocol,
        test_silent_client_is_timeout, test_client_leaving_mid_handshake_is_peer_closed,
        test_outbound_unexpected_server, test_other_trust_domain_accepted_when_listed);

    tcase_add_loop_test(tc, test_refused_with_reason, 0,
                        (int)(sizeof(refusals) / sizeof(refusals[0])));
    return s;
}

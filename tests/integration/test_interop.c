/* tollgate against OpenSSL, with certificates made only by the openssl CLI (EC P-256, URI SAN
 * from an extfile, PKCS#8 keys): s_client talks to tollgate's inbound listener, and s_server
 * is the mTLS upstream of tollgate's outbound listener. */
#include "harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void openssl(const char *arg, ...)
{
    va_list ap;

    va_start(ap, arg);
    it_tool_v(it_openssl(), arg, ap);
    va_end(ap);
}

static void openssl_leaf(const char *name, const char *spiffe)
{
    char key[64], csr[64], pem[64], ext[64], cn[64];

    snprintf(key, sizeof(key), "%s.key", name);
    snprintf(csr, sizeof(csr), "%s.csr", name);
    snprintf(pem, sizeof(pem), "%s.pem", name);
    snprintf(ext, sizeof(ext), "%s.ext", name);
    snprintf(cn, sizeof(cn), "/CN=%s", name);
    it_write_file(ext, IT_SVID_EXT, spiffe);
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", cn, NULL);
    openssl("x509", "-req", "-in", csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-sha256", "-out", pem, "-extfile", ext, NULL);
}

static void setup(void)
{
    it_setup();
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "3", "-sha256", "-subj",
            "/CN=openssl interop CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign", NULL);
    openssl_leaf("web", IT_WEB_ID);
    openssl_leaf("api", IT_API_ID);
}

START_TEST(test_openssl_s_client_to_inbound)
{
    const char *msg = "hello from openssl s_client\n";
    int echo_port = 0, in_port = it_free_port(), admin = it_free_port();
    struct it_proc *echo = it_echo_start("echo", &echo_port), *cli;
    struct it_cfg b = it_cfg_of(admin, "web", 0, NULL);
    char addr[32], line[IT_LINE_MAX];
    int st;

    b.in[0] = (struct it_listener){"web-in", in_port, echo_port, IT_API_ID, NULL};
    it_cfg_write("b.yaml", &b, NULL);
    it_sidecar_start("b", "b.yaml", admin, 0);

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", in_port);
    /* -quiet prints only the payload; -no_ign_eof (after it) ends the session on stdin EOF;
     * -verify_return_error: s_client checks tollgate's certificate chain for real */
    /* clang-format off */
    const char *argv[] = {it_openssl(), "s_client", "-connect", addr, "-tls1_3",
                          "-cert", "api.pem", "-key", "api.key", "-CAfile", "ca.pem",
                          "-verify", "2", "-verify_return_error", "-quiet", "-no_ign_eof",
                          NULL};
    /* clang-format on */
    cli = it_spawn("s_client", argv, IT_STDIN_PIPE);
    ck_assert(it_send_all(cli->stdin_fd, msg, strlen(msg)));
    ck_assert_msg(it_wait_file_contains(cli->out_path, msg, 10000),
                  "no echo through tollgate to s_client");
    close(cli->stdin_fd);
    cli->stdin_fd = -1;
    st = it_wait(cli, 10000);
    ck_assert_msg(st == 0, "s_client exited %d", st);

    it_log_line_ok("b.out", "\"listener\":\"web-in\"", line);
    it_expect_json_str(line, "peer_id", IT_API_ID);
    it_expect_json_str(line, "tls_version", "TLSv1.3");
    ck_assert_msg(it_json_num(line, "bytes_received") == (long long)strlen(msg), "%s", line);
    ck_assert_int_eq(it_echo_accepts(echo), 1);
}
END_TEST

static bool server_said(const struct it_proc *srv, const char *what)
{
    return it_file_contains(srv->out_path, what) || it_file_contains(srv->err_path, what);
}

START_TEST(test_openssl_s_server_as_outbound_upstream)
{
    const char *msg = "hello interop\n", *want = "poretni olleh\n";
    int srv_port = it_free_port(), out_port = it_free_port(), admin = it_free_port();
    struct it_cfg a = it_cfg_of(admin, "api", 0, NULL);
    char addr[32], buf[64], line[IT_LINE_MAX];
    struct it_proc *srv;
    int fd, eof, st;
    double hs;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", srv_port);
    /* -Verify + -verify_return_error: a client certificate is required and checked;
     * -rev answers each line reversed */
    /* clang-format off */
    const char *argv[] = {it_openssl(), "s_server", "-accept", addr, "-tls1_3",
                          "-cert", "web.pem", "-key", "web.key", "-CAfile", "ca.pem",
                          "-Verify", "2", "-verify_return_error", "-alpn", "tollgate",
                          "-rev", "-naccept", "1", NULL};
    /* clang-format on */
    srv = it_spawn("s_server", argv, IT_STDIN_NULL);
    ck_assert_msg(it_wait_file_contains(srv->out_path, "ACCEPT", 10000), "s_server did not start");

    a.out[0] = (struct it_listener){"api-out", out_port, srv_port, IT_WEB_ID, NULL};
    it_cfg_write("a.yaml", &a, NULL);
    it_sidecar_start("a", "a.yaml", admin, 0);

    fd = it_connect(out_port, 10000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    ck_assert(it_send_all(fd, msg, strlen(msg)));
    memset(buf, 0, sizeof(buf));
    ck_assert_msg(it_recv_full(fd, buf, strlen(want)) == strlen(want) && strcmp(buf, want) == 0,
                  "s_server answered '%s' (%s)", buf, strerror(errno));
    shutdown(fd, SHUT_WR);
    eof = it_recv_eof(fd);
    ck_assert_msg(eof == 0, "want EOF after half-close, got %s", eof > 0 ? "data" : strerror(-eof));
    close(fd);

    /* -naccept 1: s_server exits after this connection, flushing what it buffered; it
     * reports on stdout or stderr depending on the mode: look in both */
    st = it_wait(srv, 5000);
    ck_assert_msg(st == 0, "s_server exited %d", st);
    ck_assert_msg(server_said(srv, "Protocol version: TLSv1.3"), "s_server did not report TLSv1.3");
    ck_assert_msg(server_said(srv, "Peer certificate: CN = api"),
                  "s_server saw no client certificate");
    ck_assert_msg(server_said(srv, "Verification: OK"), "s_server did not verify tollgate");
    ck_assert_msg(server_said(srv, "ALPN protocols advertised by the client: tollgate"),
                  "tollgate did not offer ALPN \"tollgate\"");
    hs = it_wait_stat(admin, "tollgate_handshakes_total", "listener=\"api-out\",result=\"ok\"", 1,
                      5000);
    ck_assert_msg(hs == 1, "A counted %.0f handshakes", hs);
    it_log_line_ok("a.out", "\"listener\":\"api-out\"", line);
    it_expect_json_str(line, "peer_id", IT_WEB_ID);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("interop", "openssl", NULL, setup, it_teardown, 60,
                         test_openssl_s_client_to_inbound,
                         test_openssl_s_server_as_outbound_upstream);
}

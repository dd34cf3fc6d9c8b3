/* PROXY protocol v2 to the app: a real consumer (nginx, `listen ... proxy_protocol`) sees the
 * caller's address through the sidecar, and our decoder finds the SPIFFE ID and certificate
 * SHA-256 TLVs in what the app receives. */
#include "harness.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tollgate/proxyproto.h"

static int in_port, b_admin, app_port;

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    IT_FREE_PORTS(&in_port, &b_admin, &app_port);
}

static struct it_proc *start_b(void)
{
    it_cfg_write(
        "b.yaml",
        &(struct it_cfg){.admin = b_admin,
                         .id = "web",
                         .in = {{"web-in", in_port, app_port, .more = "proxy_protocol: true"}}},
        NULL);
    return it_sidecar_start("b", "b.yaml", b_admin, 0);
}

/* curl-like: s_client as api sends an HTTP request; returns the whole output. */
static char *call(const char *request)
{
    char cmd[600], *out = NULL;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};

    snprintf(cmd, sizeof(cmd),
             "(printf '%s'; sleep 1) | '%s' s_client -connect 127.0.0.1:%d -CAfile ca.pem "
             "-tls1_3 -quiet -cert api.pem -key api.key 2>&1",
             request, it_openssl(), in_port);
    ck_assert_int_ge(it_run(argv, NULL, 15000, &out, NULL), 0);
    return out;
}

START_TEST(test_nginx_sees_the_callers_address)
{
    const char *nginx = "/usr/sbin/nginx";
    char conf[1024], *out, line[IT_LINE_MAX], peer[64];
    struct it_proc *ng;
    const char *argv[] = {nginx, "-p", it_dir(), "-c", "nginx.conf", NULL};

    if (access(nginx, X_OK) != 0) {
        fprintf(stderr, "nginx is not installed (apt-get install nginx-light)\n");
        ck_abort_msg("nginx missing");
    }
    snprintf(conf, sizeof(conf),
             "daemon off; master_process off; worker_processes 1; pid nginx.pid;\n"
             "error_log stderr;\n"
             "events { worker_connections 64; }\n"
             "http { access_log off; client_body_temp_path tmp; proxy_temp_path tmp;\n"
             "  fastcgi_temp_path tmp; uwsgi_temp_path tmp; scgi_temp_path tmp;\n"
             "  server { listen 127.0.0.1:%d proxy_protocol;\n"
             "    location / { return 200 \"pp=$proxy_protocol_addr:$proxy_protocol_port\\n\"; }\n"
             "  } }\n",
             app_port);
    it_write_file("nginx.conf", "%s", conf);
    ck_assert_int_eq(mkdir("tmp", 0700), 0);
    ng = it_spawn("nginx", argv, IT_STDIN_NULL);
    ck_assert_msg(it_wait_port(app_port, 5000), "nginx did not start");
    start_b();
    out = call("GET / HTTP/1.0\\r\\n\\r\\n");
    ck_assert_msg(strstr(out, "pp=127.0.0.1:") != NULL, "nginx did not get the PROXY header: %s",
                  out);
    /* the port nginx saw is the caller's port, as B's access log has it */
    ck_assert(it_wait_lines("b.out", 1, 5000, "\"listener\":\"web-in\"", NULL) == 1);
    ck_assert(it_json_str(it_last_line("b.out", line, sizeof(line), "web-in", NULL) ? line : "",
                          "peer", peer, sizeof(peer)));
    ck_assert_msg(strstr(out, peer) != NULL, "nginx saw %s, B's caller was %s", out, peer);
    free(out);
    it_stop(ng, 5000);
}
END_TEST

/* A one-shot app that reads the PROXY header, decodes it with our decoder, and answers with
 * what it found. */
static void decoding_app(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1, c;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    uint8_t buf[4096];
    size_t n = 0, used;
    struct tg_proxyproto h;
    char err[TG_ERRLEN], reply[4096];
    int rc = TG_EAGAIN;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 4) < 0)
        _exit(2);
    c = accept(s, NULL, NULL);
    while (rc == TG_EAGAIN && n < sizeof(buf)) {
        ssize_t r = read(c, buf + n, sizeof(buf) - n);

        if (r <= 0 && n == 0) { /* the test's readiness probe: take the next one */
            close(c);
            c = accept(s, NULL, NULL);
            continue;
        }
        if (r <= 0)
            _exit(3);
        n += (size_t)r;
        rc = tg_proxyproto_decode(buf, n, &h, &used, err);
    }
    if (rc == 0 && n == used) { /* the header came alone: wait for the first payload */
        ssize_t r = read(c, buf + n, sizeof(buf) - n);

        n += r > 0 ? (size_t)r : 0;
    }
    if (rc < 0)
        snprintf(reply, sizeof(reply), "decode-error %s\n", err);
    else
        snprintf(reply, sizeof(reply), "id=%.*s sha=%02x%02x ssl=%d rest=%.*s\n",
                 (int)h.spiffe_id_len, h.spiffe_id ? h.spiffe_id : "", h.sha256 ? h.sha256[0] : 0,
                 h.sha256 ? h.sha256[1] : 0, h.ssl, (int)(n - used), (const char *)buf + used);
    if (write(c, reply, strlen(reply)) < 0)
        _exit(4);
    sleep(1);
    _exit(0);
}

START_TEST(test_tlvs_carry_spiffe_id_and_fingerprint)
{
    char *out, fp[80], want[128];
    pid_t pid = fork();
    const char *argv[] = {it_env("TG_CERTS_BIN"), "show", "api.pem", NULL};
    char *show;

    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        decoding_app(app_port);
    ck_assert_msg(it_wait_port(app_port, 5000), "decoding app did not start");
    start_b();
    out = call("hello");
    ck_assert_int_eq(it_run(argv, NULL, 10000, &show, NULL), 0);
    ck_assert_int_eq(sscanf(strstr(show, "sha256="), "sha256=%64s", fp), 1);
    snprintf(want, sizeof(want), "id=" IT_API_ID " sha=%.4s ssl=1 rest=hello", fp);
    ck_assert_msg(strstr(out, want) != NULL, "want \"%s\" in: %s", want, out);
    free(out);
    free(show);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("proxyproto", "proxyproto", NULL, setup, it_teardown, 60,
                         test_nginx_sees_the_callers_address,
                         test_tlvs_carry_spiffe_id_and_fingerprint);
}

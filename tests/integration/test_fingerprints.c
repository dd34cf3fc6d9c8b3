/* Certificates by fingerprint, end to end: a rate limit keyed by fingerprint holds one
 * certificate of a workload to its limit while another certificate of the same SPIFFE ID
 * (a second replica) is unaffected, and the access log names each by the SHA-256
 * fingerprint that rules, revocations and limits use; /config_dump's peers table lists each
 * certificate let through, by fingerprint, with its connections. */
#include "harness.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct it_proc *echo, *a, *b, *d;
static int echo_port, in_port, a_port, d_port, a_admin, b_admin, d_admin;

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    /* a second certificate of the same workload, as a second replica holds */
    it_certs("issue", "--ca", "ca", "--out", "api2", "--spiffe", IT_API_ID, NULL);
    echo = it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&in_port, &a_port, &d_port, &a_admin, &b_admin, &d_admin);
    it_write_file("b.yaml",
                  "admin: 127.0.0.1:%d\n"
                  "workers: 2\n"
                  "access_log: true\n"
                  "identity: {cert: web.pem, key: web.key, trust_bundle: ca.pem}\n"
                  "timeouts: {handshake: 5s, idle: 1h, connect: 2s, drain: 1s}\n"
                  "rate_limits:\n"
                  "  key: fingerprint\n"
                  "  default: {max_concurrent: 1}\n"
                  "inbound:\n"
                  "  - {name: web-in, listen: '127.0.0.1:%d', upstream: '127.0.0.1:%d', "
                  "allow: [\"" IT_API_ID "\"]}\n",
                  b_admin, in_port, echo_port);
    b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    a = it_client_start("a", "api.pem", "api.key", "ca.pem", a_port, in_port, a_admin);
    d = it_client_start("d", "api2.pem", "api2.key", "ca.pem", d_port, in_port, d_admin);
}

/* The SHA-256 fingerprint of pem's certificate by the openssl CLI, as lowercase hex. */
static void fingerprint(const char *pem, char *dst, size_t cap)
{
    char cmd[256], *out = NULL, *p;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    size_t n = 0;

    snprintf(cmd, sizeof(cmd), "'%s' x509 -in %s -noout -fingerprint -sha256", it_openssl(), pem);
    ck_assert_int_eq(it_run(argv, NULL, 10000, &out, NULL), 0);
    p = strchr(out, '=');
    ck_assert_ptr_nonnull(p);
    for (p++; *p != '\0' && *p != '\n' && n + 1 < cap; p++)
        if (*p != ':')
            dst[n++] = (char)tolower((unsigned char)*p);
    dst[n] = '\0';
    free(out);
    ck_assert_uint_eq(n, 64);
}

START_TEST(test_limit_by_fingerprint_holds_one_certificate_not_its_workload)
{
    char fp_a[80], fp_d[80], line[IT_LINE_MAX], got[80], err[256], buf[4];
    int live;

    fingerprint("api.pem", fp_a, sizeof(fp_a));
    fingerprint("api2.pem", fp_d, sizeof(fp_d));
    ck_assert_str_ne(fp_a, fp_d);

    /* api's one allowed connection, held open */
    live = it_connect(a_port, 8000);
    ck_assert_int_ge(live, 0);
    ck_assert(it_send_all(live, "held", 4));
    ck_assert_uint_eq(it_recv_full(live, buf, 4), 4);

    /* a second one of the same certificate is over the limit */
    ck_assert_msg(it_round_trip(a_port, "fingerprint-limit", err) < 0,
                  "a second connection of one certificate got past max_concurrent 1");
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_rate_limited_total", "", 1, 5000) >= 1,
                  "the limit was not counted");
    ck_assert_msg(it_wait_lines("b.out", 1, 5000, "\"outcome\":\"refused\"", NULL) >= 1,
                  "no access-log line for the refusal");
    ck_assert(it_last_line("b.out", line, sizeof(line), "\"outcome\":\"refused\"", NULL));
    ck_assert_msg(strstr(line, "rate_limited") != NULL, "%s", line);
    ck_assert_msg(it_json_str(line, "sha256", got, sizeof(got)) && strcmp(got, fp_a) == 0,
                  "refused line without api.pem's fingerprint %s: %s", fp_a, line);

    /* the same SPIFFE ID with another certificate is its own bucket */
    ck_assert_msg(it_round_trip(d_port, "fingerprint-limit", err) > 0,
                  "another certificate of the same workload was limited: %s", err);
    /* b writes its line when its side of the connection has closed too */
    ck_assert_msg(it_wait_lines("b.out", 1, 5000, "\"outcome\":\"ok\"", fp_d, NULL) >= 1,
                  "no ok line with api2.pem's fingerprint %s", fp_d);
    ck_assert(it_last_line("b.out", line, sizeof(line), "\"outcome\":\"ok\"", fp_d, NULL));
    ck_assert_msg(it_json_str(line, "sha256", got, sizeof(got)) && strcmp(got, fp_d) == 0,
                  "ok line without api2.pem's fingerprint %s: %s", fp_d, line);
    ck_assert_msg(it_json_str(line, "peer_id", got, sizeof(got)) && strcmp(got, IT_API_ID) == 0,
                  "%s", line);

    /* once the held connection ends, the first certificate gets through again */
    close(live);
    ck_assert_msg(it_wait_lines("b.out", 2, 5000, "\"outcome\":\"ok\"", NULL) >= 2,
                  "the held connection was not logged");
    ck_assert_msg(it_round_trip(a_port, "fingerprint-limit", err) > 0,
                  "api.pem still limited after its connection closed: %s", err);
    ck_assert_int_eq(it_echo_accepts(echo), 3);
}
END_TEST

/* The row of /config_dump's peers list (on admin) for fingerprint fp, copied into row; false
 * when there is none. */
static bool peer_row(int admin, const char *fp, char *row, size_t cap)
{
    char key[96], *dump = NULL;
    const char *at, *start, *end;
    bool found = false;

    snprintf(key, sizeof(key), "\"sha256\":\"%s\"", fp);
    ck_assert_int_eq(it_http(admin, "GET", "/config_dump", &dump), 200);
    if ((start = strstr(dump, "\"peers\":{")) != NULL && (at = strstr(start, key)) != NULL) {
        while (at > start && *at != '{')
            at--;
        end = strchr(at, '}');
        ck_assert_ptr_nonnull(end);
        ck_assert_uint_lt((size_t)(end - at) + 2, cap);
        memcpy(row, at, (size_t)(end - at) + 1);
        row[end - at + 1] = '\0';
        found = true;
    }
    free(dump);
    return found;
}

/* peer_row, waiting up to 5 s for the row to show active connections `active`. */
static void wait_peer_row(int admin, const char *fp, long long active, char *row, size_t cap)
{
    uint64_t end = it_now_ms() + 5000;

    while (!(peer_row(admin, fp, row, cap) && it_json_num(row, "active") == active) &&
           it_now_ms() < end)
        it_sleep_ms(50);
    ck_assert_msg(peer_row(admin, fp, row, cap) && it_json_num(row, "active") == active,
                  "no peer %s with %lld open connections in /config_dump", fp, active);
}

/* /config_dump lists each peer certificate by fingerprint, with its SPIFFE ID, serial,
 * expiry and connections (issue 15: "/config_dump shows the peer's SHA-256 fingerprint"):
 * B, both of api's certificates (one held open, one closed; a connection refused by the
 * limit is not counted); A, B's certificate. */
START_TEST(test_config_dump_lists_each_peer_certificate)
{
    char fp_a[80], fp_d[80], fp_b[80], want[80], got[80], norm[80], row[1024], err[256], buf[4];
    int live;

    fingerprint("api.pem", fp_a, sizeof(fp_a));
    fingerprint("api2.pem", fp_d, sizeof(fp_d));
    fingerprint("web.pem", fp_b, sizeof(fp_b));
    live = it_connect(a_port, 8000);
    ck_assert_int_ge(live, 0);
    ck_assert(it_send_all(live, "held", 4));
    ck_assert_uint_eq(it_recv_full(live, buf, 4), 4);
    ck_assert_msg(it_round_trip(a_port, "over-the-limit", err) < 0, "not limited");
    ck_assert_msg(it_round_trip(d_port, "peers", err) > 0, "%s", err);

    wait_peer_row(b_admin, fp_a, 1, row, sizeof(row));
    ck_assert_msg(it_json_str(row, "spiffe_id", got, sizeof(got)) && !strcmp(got, IT_API_ID), "%s",
                  row);
    it_cert_serial("api.pem", want, sizeof(want));
    ck_assert(it_json_str(row, "serial", got, sizeof(got)));
    it_serial_norm(got, norm, sizeof(norm));
    ck_assert_str_eq(norm, want);
    ck_assert_msg(it_json_num(row, "inbound") == 1 && it_json_num(row, "outbound") == 0 &&
                      it_json_num(row, "not_after") > it_json_num(row, "last_seen") &&
                      it_json_num(row, "last_seen") > 0,
                  "%s", row);
    wait_peer_row(b_admin, fp_d, 0, row, sizeof(row));
    ck_assert_msg(it_json_num(row, "inbound") == 1, "%s", row);
    wait_peer_row(a_admin, fp_b, 1, row, sizeof(row));
    ck_assert_msg(it_json_str(row, "spiffe_id", got, sizeof(got)) && !strcmp(got, IT_WEB_ID) &&
                      it_json_num(row, "outbound") >= 1 && it_json_num(row, "inbound") == 0,
                  "%s", row);
    close(live);
    wait_peer_row(b_admin, fp_a, 0, row, sizeof(row));
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("fingerprints", "fingerprints", NULL, setup, it_teardown, 60,
                         test_limit_by_fingerprint_holds_one_certificate_not_its_workload,
                         test_config_dump_lists_each_peer_certificate);
}

/* Identity rotation under load: 50 connections stream through A -> B -> echo while B's
 * certificate (then certificate and key) is replaced on disk the way an agent does it
 * (write a temporary file, rename() it over the old one). Open connections must go on
 * untouched; new handshakes must see the new serial; a broken file must be refused. */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N_STREAMS 50
#define ROTATE_MS 6000 /* a rotation must show in new handshakes within this */

static struct it_mesh mesh;

static void setup(void)
{
    it_setup();
    it_mesh_start(&mesh, "2s");
}

/* A new connection through A; returns B's serial as A saw it (normalised). */
static void probe_serial(char *serial, size_t cap)
{
    it_probe_serial(mesh.out_port, "a.out", serial, cap);
}

/* New handshakes see want within ROTATE_MS, and keep seeing it. */
static void expect_serial(const char *want, const char *what)
{
    it_expect_serial(probe_serial, want, ROTATE_MS, what);
}

/* Lines of listener with outcome ok, the given serial and more than min_bytes received. */
static int count_serial_lines(const char *file, const char *listener, const char *serial,
                              long long min_bytes)
{
    char *text = it_read_file(file, NULL), *save = NULL, raw[128], norm[80];
    int n = 0;

    for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        if (strstr(l, listener) == NULL || strstr(l, "\"outcome\":\"ok\"") == NULL ||
            !it_json_str(l, "serial", raw, sizeof(raw)) ||
            it_json_num(l, "bytes_received") <= min_bytes)
            continue;
        it_serial_norm(raw, norm, sizeof(norm));
        n += strcmp(norm, serial) == 0;
    }
    free(text);
    return n;
}

START_TEST(test_rotation_under_load)
{
    struct it_streams *st;
    char s1[80], s2[80], s3[80];
    double reloads, failures;
    int old_lines;

    st = it_streams_start(mesh.out_port, N_STREAMS, 1000);
    expect_serial(mesh.web_serial, "before rotation");
    it_streams_expect_progress(st, "before rotation");

    /* 1: new certificate, same key */
    it_certs("issue", "--ca", "ca", "--out", "web-r1", "--spiffe", IT_WEB_ID, "--key", "web.key",
             NULL);
    it_cert_serial("web-r1.pem", s1, sizeof(s1));
    ck_assert_int_eq(rename("web-r1.pem", "web.pem"), 0);
    expect_serial(s1, "rotation 1 (certificate)");
    it_streams_expect_progress(st, "after rotation 1");

    /* 2: new key and certificate */
    it_certs("issue", "--ca", "ca", "--out", "web-r2", "--spiffe", IT_WEB_ID, NULL);
    it_cert_serial("web-r2.pem", s2, sizeof(s2));
    ck_assert_int_eq(rename("web-r2.key", "web.key"), 0);
    ck_assert_int_eq(rename("web-r2.pem", "web.pem"), 0);
    expect_serial(s2, "rotation 2 (key and certificate)");
    it_streams_expect_progress(st, "after rotation 2");
    reloads = it_stat(mesh.b_admin, "tollgate_identity_reloads_total", "");
    ck_assert_msg(reloads >= 2, "B counted %.0f identity reloads", reloads);

    /* 3: garbage is refused, the last good identity stays */
    failures = it_stat(mesh.b_admin, "tollgate_identity_reload_failures_total", "");
    it_replace_file("web.pem", "this is not a certificate\n");
    ck_assert_msg(it_wait_stat(mesh.b_admin, "tollgate_identity_reload_failures_total", "",
                               failures + 1, ROTATE_MS) >= failures + 1,
                  "B did not count the refused reload");
    ck_assert_msg(it_count_lines("b.err", "identity reload", "refused, keeping serial", NULL) >= 1,
                  "B logged no 'identity reload (...) refused, keeping serial' line");
    expect_serial(s2, "after a garbage certificate");
    ck_assert_int_eq(it_http(mesh.b_admin, "GET", "/ready", NULL), 200);
    it_streams_expect_progress(st, "after the garbage certificate");

    /* 4: files arriving in the wrong order: a new certificate whose key is not there yet is
     * refused; once the key follows, the pair is taken */
    it_certs("issue", "--ca", "ca", "--out", "web-r3", "--spiffe", IT_WEB_ID, NULL);
    it_cert_serial("web-r3.pem", s3, sizeof(s3));
    failures = it_stat(mesh.b_admin, "tollgate_identity_reload_failures_total", "");
    ck_assert_int_eq(rename("web-r3.pem", "web.pem"), 0);
    ck_assert_msg(it_wait_stat(mesh.b_admin, "tollgate_identity_reload_failures_total", "",
                               failures + 1, ROTATE_MS) >= failures + 1,
                  "B did not refuse a certificate that does not match its key");
    expect_serial(s2, "certificate without its key");
    ck_assert_int_eq(rename("web-r3.key", "web.key"), 0);
    expect_serial(s3, "rotation 3 (key after certificate)");
    it_streams_expect_progress(st, "after rotation 3");

    fprintf(stderr, "rotation: %llu bytes echoed over %d streams\n",
            (unsigned long long)it_streams_stop(st), N_STREAMS);
    /* the streams kept the identity they started with: all 50 logged the old serial (the
     * probes, which also log it, send 6 bytes) */
    old_lines = it_wait_lines("a.out", N_STREAMS, 5000, "\"listener\":\"api-out\"", NULL);
    ck_assert_msg(old_lines >= N_STREAMS, "A logged %d lines", old_lines);
    /* the probes' lines count above too: wait for every stream's own line, bounded */
    for (uint64_t until = it_now_ms() + 5000;;) {
        old_lines = count_serial_lines("a.out", "\"listener\":\"api-out\"", mesh.web_serial, 1000);
        if (old_lines >= N_STREAMS || it_now_ms() > until)
            break;
        it_sleep_ms(50);
    }
    ck_assert_msg(old_lines == N_STREAMS, "%d of %d streams logged the serial they started with",
                  old_lines, N_STREAMS);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("rotation", "rotation", NULL, setup, it_teardown, 120,
                         test_rotation_under_load);
}

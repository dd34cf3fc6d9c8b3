/* The Prometheus surface of both daemons (issue 17, item 1): every scrape passes
 * `promtool check metrics` (sidecar static, sidecar of a control plane, tollgate-cp), and the
 * histograms, identity labels and response classes move with the traffic that went through.
 *
 * Static: app (python http.server) and echo <- sidecar B (web; web-in: TCP, web-http:
 * protocol: http; a metrics: listener) <=mTLS= sidecar A (api; api-out, api-http). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int echo_port, app_port, in_port, http_in_port, out_port, http_out_port, a_admin, b_admin,
    b_metrics, cp_port, cp_admin;

static const char app_methods[] = "    def do_GET(self):\n"
                                  "        self.reply(b'hello')\n";

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    IT_FREE_PORTS(&app_port, &in_port, &http_in_port, &out_port, &http_out_port, &a_admin, &b_admin,
                  &b_metrics, &cp_port, &cp_admin);
}

/* `promtool check metrics` on text: its linter (names, units, HELP, TYPE, histograms).
 * $PROMTOOL, else Debian's /usr/bin/promtool (package prometheus). */
static char *scrape(int port, const char *path)
{
    char *body = NULL;

    ck_assert_msg(it_http(port, "GET", path, &body) == 200, "GET %s on %d", path, port);
    return body;
}

/* The value of name{labels} in text, which must be there. */
static double metric(const char *text, const char *name, const char *labels)
{
    double v = it_metric(text, name, labels);

    ck_assert_msg(v >= 0, "no %s{%s} in the scrape", name, labels);
    return v;
}

static void start_static(void)
{
    it_echo_start("echo", &echo_port);
    it_http_app_start("app", app_port, app_methods);
    it_cfg_write("b.yaml",
                 &(struct it_cfg){.admin = b_admin,
                                  .workers = 2,
                                  .id = "web",
                                  .in = {{"web-in", in_port, echo_port, IT_API_ID},
                                         {"web-http", http_in_port, app_port, IT_API_ID,
                                          .more = "protocol: http"}}},
                 "metrics: 127.0.0.1:%d\n", b_metrics);
    it_sidecar_start("b", "b.yaml", b_admin, 0);
    it_cfg_write("a.yaml",
                 &(struct it_cfg){.admin = a_admin,
                                  .workers = 2,
                                  .id = "api",
                                  .out = {{"api-out", out_port, in_port, IT_WEB_ID},
                                          {"api-http", http_out_port, http_in_port, IT_WEB_ID}}},
                 NULL);
    it_sidecar_start("a", "a.yaml", a_admin, 0);
}

/* Buckets, _count and _sum of the handshake, connection and request histograms move with n
 * connections and n requests; by-identity series name both ends; 2xx counted. */
START_TEST(test_metrics_static_promtool_and_histograms)
{
    enum { N = 4 };
    const char *in_l = "listener=\"web-in\"", *http_l = "listener=\"web-http\"";
    char err[256], labels[256], *before, *b_stats, *b_prom, *a_stats, *body;
    char *p;
    double hs0, inf, le5;

    start_static();
    before = scrape(b_admin, "/stats");
    it_promtool_clean("sidecar B before traffic", before);
    hs0 = metric(before, "tollgate_handshake_duration_seconds_count", in_l);
    ck_assert(hs0 == 0);
    ck_assert(metric(before, "tollgate_connection_duration_seconds_bucket",
                     "listener=\"web-in\",le=\"+Inf\"") == 0);

    for (int i = 0; i < N; i++) {
        ck_assert_msg(it_round_trip(out_port, "ping", err) > 0, "round trip %d: %s", i, err);
        body = NULL;
        ck_assert_int_eq(it_http(http_out_port, "GET", "/x", &body), 200);
        ck_assert_str_eq(body, "hello");
        free(body);
    }
    /* the connections' ends are counted in their last close callback */
    ck_assert(it_wait_stat(b_admin, "tollgate_connection_duration_seconds_count", in_l, N, 5000) >=
              N);
    ck_assert(
        it_wait_stat(b_admin, "tollgate_connection_duration_seconds_count", http_l, N, 5000) >= N);

    b_stats = scrape(b_admin, "/stats");
    b_prom = scrape(b_metrics, "/metrics");
    a_stats = scrape(a_admin, "/stats");
    it_promtool_clean("sidecar B /stats", b_stats);
    it_promtool_clean("sidecar B metrics: /metrics", b_prom);
    it_promtool_clean("sidecar A /stats", a_stats);

    /* handshakes: one per connection, each well under 5 s on loopback */
    ck_assert(metric(b_stats, "tollgate_handshake_duration_seconds_count", in_l) == N);
    inf = metric(b_stats, "tollgate_handshake_duration_seconds_bucket",
                 "listener=\"web-in\",le=\"+Inf\"");
    le5 = metric(b_stats, "tollgate_handshake_duration_seconds_bucket",
                 "listener=\"web-in\",le=\"5\"");
    ck_assert(inf == N && le5 == N);
    ck_assert(metric(b_stats, "tollgate_handshake_duration_seconds_sum", in_l) > 0);
    ck_assert(
        metric(a_stats, "tollgate_handshake_duration_seconds_count", "listener=\"api-out\"") == N);
    ck_assert(metric(b_stats, "tollgate_connection_duration_seconds_bucket",
                     "listener=\"web-in\",le=\"+Inf\"") == N);
    /* requests: one per connection, answered 200 by the app */
    ck_assert(metric(b_stats, "tollgate_http_request_duration_seconds_count", http_l) == N);
    ck_assert(metric(b_stats, "tollgate_http_request_duration_seconds_bucket",
                     "listener=\"web-http\",le=\"60\"") == N);
    ck_assert(metric(b_stats, "tollgate_http_responses_total",
                     "listener=\"web-http\",code_class=\"2xx\"") == N);
    ck_assert(metric(b_stats, "tollgate_http_responses_total",
                     "listener=\"web-http\",code_class=\"5xx\"") == 0);
    /* identities: the caller is the source on B, the destination on A */
    snprintf(labels, sizeof(labels), "%s,source_id=\"%s\",destination_id=\"%s\"", in_l, IT_API_ID,
             IT_WEB_ID);
    ck_assert(metric(b_stats, "tollgate_connections_by_identity_total", labels) == N);
    snprintf(labels, sizeof(labels), "%s,source_id=\"%s\",destination_id=\"%s\"", http_l, IT_API_ID,
             IT_WEB_ID);
    ck_assert(metric(b_stats, "tollgate_http_requests_by_identity_total", labels) == N);
    snprintf(labels, sizeof(labels), "listener=\"api-out\",source_id=\"%s\",destination_id=\"%s\"",
             IT_API_ID, IT_WEB_ID);
    ck_assert(metric(a_stats, "tollgate_connections_by_identity_total", labels) == N);
    /* the expiry of our certificate and of the root, as timestamps in the future */
    ck_assert(metric(b_stats, "tollgate_certificate_expiry_timestamp_seconds",
                     "kind=\"identity\",trust_domain=\"mesh.local\"") > (double)time(NULL));
    ck_assert(metric(b_stats, "tollgate_certificate_expiry_timestamp_seconds",
                     "kind=\"root\",trust_domain=\"mesh.local\"") > (double)time(NULL));
    ck_assert(metric(b_stats, "tollgate_build_info", "aesni=") == 1);
    ck_assert(metric(b_stats, "process_open_fds", "") > 3);
    ck_assert(metric(b_stats, "process_resident_memory_bytes", "") > 0);
    /* the metrics listener serves the same text */
    ck_assert_ptr_nonnull(p = strstr(b_prom, "tollgate_handshake_duration_seconds_count"));
    free(before);
    free(b_stats);
    free(b_prom);
    free(a_stats);
}
END_TEST

/* tollgate-cp and a sidecar of it: both scrapes pass promtool, with certificate expiry,
 * build and process series. */
START_TEST(test_metrics_control_plane_promtool)
{
    char *cp_stats, *b_stats;

    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    it_cp_tokens(NULL);
    it_write_file("mesh.yaml", "authorization:\n  default: allow\n");
    it_cp_cfg_write("cp.yaml", cp_port, cp_admin, "tokens: tokens.txt\nmesh: [mesh.yaml]\n");
    it_cp_start("cp", "cp.yaml", cp_port);
    it_echo_start("echo", &echo_port);
    it_cfg_write_cp(
        "b.yaml", b_admin, cp_port, "b.token",
        &(struct it_cfg){.workers = 1, .in = {{"web-in", in_port, echo_port, IT_API_ID}}});
    it_sidecar_start("b", "b.yaml", b_admin, 0);
    b_stats = scrape(b_admin, "/stats");
    cp_stats = scrape(cp_admin, "/stats");
    it_promtool_clean("sidecar of a control plane", b_stats);
    it_promtool_clean("tollgate-cp", cp_stats);
    ck_assert(metric(b_stats, "tollgate_cp_connected", "") == 1);
    ck_assert(metric(b_stats, "tollgate_certificate_expiry_timestamp_seconds",
                     "kind=\"identity\"") > (double)time(NULL));
    /* tollgate-cp: its serving certificate, the roots it pushes, its signing CA */
    ck_assert(metric(cp_stats, "tollgate_certificate_expiry_timestamp_seconds",
                     "kind=\"identity\",trust_domain=\"mesh.local\"") > (double)time(NULL));
    ck_assert(metric(cp_stats, "tollgate_certificate_expiry_timestamp_seconds",
                     "kind=\"root\",trust_domain=\"mesh.local\"") > (double)time(NULL));
    ck_assert(metric(cp_stats, "tollgate_certificate_expiry_timestamp_seconds",
                     "kind=\"ca\",trust_domain=\"mesh.local\"") > (double)time(NULL));
    ck_assert(metric(cp_stats, "tollgate_build_info", "aesni=") == 1);
    ck_assert(metric(cp_stats, "process_cpu_seconds_total", "") >= 0);
    ck_assert(metric(cp_stats, "process_start_time_seconds", "") > (double)time(NULL) - 600);
    ck_assert(metric(cp_stats, "process_open_fds", "") > 3);
    free(b_stats);
    free(cp_stats);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("metrics", "metrics", NULL, setup, it_teardown, 60,
                         test_metrics_static_promtool_and_histograms,
                         test_metrics_control_plane_promtool);
}

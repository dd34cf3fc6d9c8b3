#include <check.h>
#include "check_main.h"
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate/metrics.h"

static const struct {
    enum tg_hs_fail r;
    const char *name;
} reasons[] = {
    {TG_HSF_NO_CERT, "no_peer_cert"},
    {TG_HSF_UNTRUSTED, "untrusted"},
    {TG_HSF_EXPIRED, "expired"},
    {TG_HSF_NOT_YET_VALID, "not_yet_valid"},
    {TG_HSF_BAD_CERT, "bad_cert"},
    {TG_HSF_BAD_SPIFFE, "bad_spiffe_id"},
    {TG_HSF_TRUST_DOMAIN, "trust_domain"},
    {TG_HSF_NOT_ALLOWED, "not_allowed"},
    {TG_HSF_UNEXPECTED, "unexpected_server"},
    {TG_HSF_PROTOCOL, "protocol"},
    {TG_HSF_TIMEOUT, "timeout"},
    {TG_HSF_CLOSED, "peer_closed"},
    {TG_HSF_REVOKED, "revoked"},
    {TG_HSF_PEER_REFUSED, "peer_refused"},
    {TG_HSF_OTHER, "other"},
};

START_TEST(test_metrics_hs_fail_names)
{
    ck_assert_int_eq(TG_NELEM(reasons), TG_HSF_N);
    ck_assert_str_eq(tg_hs_fail_name(reasons[_i].r), reasons[_i].name);
}
END_TEST

START_TEST(test_metrics_hs_fail_name_out_of_range)
{
    ck_assert_str_eq(tg_hs_fail_name(TG_HSF_N), "other");
    ck_assert_str_eq(tg_hs_fail_name((enum tg_hs_fail)(TG_HSF_N + 5)), "other");
}
END_TEST

/* Checks the exposition format line by line: HELP then TYPE once per family before its
 * samples, metric and label names well formed, label values properly escaped, a numeric
 * value, no series twice. Returns NULL or what is wrong. */
static const char *check_exposition(const char *text, size_t len)
{
    static char why[320];
    char family[128] = "", seen[96][128];
    const char *p = text, *end = text + len;
    size_t n_seen = 0, i;
    bool hist = false;

    if (len == 0 || text[len - 1] != '\n' || strlen(text) != len)
        return "not newline-terminated text";
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        char name[128];
        size_t n = 0;

        if (strncmp(p, "# HELP ", 7) == 0) {
            if (sscanf(p + 7, "%127[a-zA-Z0-9_:]", family) != 1)
                return "bad HELP";
            for (i = 0; i < n_seen; i++) {
                if (strcmp(seen[i], family) == 0)
                    return "family twice";
            }
            if (n_seen == TG_NELEM(seen))
                return "too many families";
            strcpy(seen[n_seen++], family);
            p = eol + 1;
            if (strncmp(p, "# TYPE ", 7) != 0 || strncmp(p + 7, family, strlen(family)) != 0)
                return "HELP without TYPE";
            p += 7 + strlen(family);
            hist = strncmp(p, " histogram\n", 11) == 0;
            if (strncmp(p, " counter\n", 9) != 0 && strncmp(p, " gauge\n", 7) != 0 && !hist)
                return "bad TYPE";
            p = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1;
            continue;
        }
        if (*p == '#')
            return "stray comment";
        if (!(isalpha((unsigned char)*p) || *p == '_' || *p == ':'))
            return "bad metric name";
        while (p < eol && (isalnum((unsigned char)*p) || *p == '_' || *p == ':') && n < 127)
            name[n++] = *p++;
        name[n] = '\0';
        if (strcmp(name, family) != 0 && !(hist && strncmp(name, family, strlen(family)) == 0 &&
                                           (strcmp(name + strlen(family), "_bucket") == 0 ||
                                            strcmp(name + strlen(family), "_sum") == 0 ||
                                            strcmp(name + strlen(family), "_count") == 0))) {
            snprintf(why, sizeof(why), "sample %s outside its family %s", name, family);
            return why;
        }
        if (*p == '{') {
            p++;
            while (*p != '}') {
                if (!(isalpha((unsigned char)*p) || *p == '_'))
                    return "bad label name";
                while (isalnum((unsigned char)*p) || *p == '_')
                    p++;
                if (p[0] != '=' || p[1] != '"')
                    return "label without =\"";
                for (p += 2; *p != '"'; p++) {
                    if (*p == '\n' || *p == '\0')
                        return "raw newline in a label value";
                    if (*p == '\\') {
                        p++;
                        if (*p != '\\' && *p != '"' && *p != 'n')
                            return "bad escape";
                    }
                }
                p++;
                if (*p == ',')
                    p++;
                else if (*p != '}')
                    return "bad label list";
            }
            p++;
        }
        if (*p != ' ')
            return "no space before the value";
        p++;
        if (*p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return "value is not a number";
        while (isdigit((unsigned char)*p))
            p++;
        if (*p == '.' && isdigit((unsigned char)p[1])) /* a _sum, CPU seconds, a start time */
            for (p++; isdigit((unsigned char)*p); p++)
                ;
        if (p != eol)
            return "junk after the value";
        p = eol + 1;
    }
    return NULL;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    const char *p = text;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
        p++;
    }
    return false;
}

#define ASSERT_LINE(text, line)                                                                    \
    ck_assert_msg(has_line(text, line), "no line [%s] in:\n%s", line, text)

static const char *names[] = {"in-a", "out-b"};

/* m rendered (own_id as given), checked well formed; the caller frees it. */
static char *render_ok(const struct tg_metrics *m, const char *own_id)
{
    size_t len = 0;
    char *text = tg_metrics_render(m, own_id, &len);

    ck_assert_ptr_nonnull(text);
    ck_assert_msg(check_exposition(text, len) == NULL, "%s in:\n%s", check_exposition(text, len),
                  text);
    return text;
}

static const char *dirs[] = {"inbound", "outbound"};

START_TEST(test_metrics_render_sums_workers)
{
    struct tg_metrics m;
    char *text;
    size_t len = 0, w;

    ck_assert_int_eq(tg_metrics_init(&m, 3, 2, names, dirs), 0);
    for (w = 0; w < 3; w++) {
        struct tg_listener_stats *a = tg_metrics_slot(&m, w, 0);
        struct tg_listener_stats *b = tg_metrics_slot(&m, w, 1);

        tg_counter_add(&a->opened, w + 1); /* 6 */
        tg_counter_add(&a->closed, w);     /* 3 */
        tg_counter_add(&a->bytes_received, 1000 * (w + 1));
        tg_counter_add(&a->bytes_sent, 7);
        tg_counter_add(&a->hs_ok, 2);
        tg_counter_add(&a->hs_failed[TG_HSF_UNTRUSTED], w);
        tg_counter_add(&b->opened, 10);
        tg_counter_add(&b->closed, 10);
        tg_counter_add(&b->upstream_connect_failed, 1);
        tg_counter_add(&b->hs_failed[TG_HSF_UNEXPECTED], 5);
    }
    tg_counter_add(&tg_metrics_slot(&m, 2, 1)->hs_failed[TG_HSF_TIMEOUT], UINT64_MAX / 2);
    text = tg_metrics_render(&m, NULL, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), len);
    ck_assert_msg(check_exposition(text, len) == NULL, "%s in:\n%s", check_exposition(text, len),
                  text);

    ASSERT_LINE(text, "# TYPE tollgate_connections_opened_total counter");
    ASSERT_LINE(text,
                "tollgate_connections_opened_total{listener=\"in-a\",direction=\"inbound\"} 6");
    ASSERT_LINE(text,
                "tollgate_connections_opened_total{listener=\"out-b\",direction=\"outbound\"} 30");
    ASSERT_LINE(text,
                "tollgate_connections_closed_total{listener=\"in-a\",direction=\"inbound\"} 3");
    ASSERT_LINE(text, "# TYPE tollgate_connections_active gauge");
    ASSERT_LINE(text, "tollgate_connections_active{listener=\"in-a\",direction=\"inbound\"} 3");
    ASSERT_LINE(text, "tollgate_connections_active{listener=\"out-b\",direction=\"outbound\"} 0");
    ASSERT_LINE(text,
                "tollgate_bytes_received_total{listener=\"in-a\",direction=\"inbound\"} 6000");
    ASSERT_LINE(text, "tollgate_bytes_sent_total{listener=\"in-a\",direction=\"inbound\"} 21");
    ASSERT_LINE(
        text, "tollgate_handshakes_total{listener=\"in-a\",direction=\"inbound\",result=\"ok\"} 6");
    ASSERT_LINE(text, "tollgate_handshakes_failed_total{listener=\"in-a\",direction=\"inbound\","
                      "reason=\"untrusted\"} 3");
    ASSERT_LINE(text, "tollgate_handshakes_failed_total{listener=\"out-b\",direction=\"outbound\","
                      "reason=\"unexpected_server\"} 15");
    ASSERT_LINE(text, "tollgate_handshakes_failed_total{listener=\"out-b\",direction=\"outbound\","
                      "reason=\"timeout\"} 9223372036854775807");
    ASSERT_LINE(text, "tollgate_upstream_connect_failures_total{listener=\"out-b\","
                      "direction=\"outbound\"} 3");
    ASSERT_LINE(text, "tollgate_upstream_connect_failures_total{listener=\"in-a\","
                      "direction=\"inbound\"} 0");
    ck_assert_ptr_nonnull(strstr(text, "# HELP tollgate_connections_opened_total "));
    free(text);
    tg_metrics_cleanup(&m);
}
END_TEST

START_TEST(test_metrics_every_reason_series_present)
{
    struct tg_metrics m;
    char line[256], *text;
    size_t len = 0, l, r;

    ck_assert_int_eq(tg_metrics_init(&m, 2, 2, names, dirs), 0);
    text = tg_metrics_render(&m, NULL, &len);
    ck_assert_ptr_nonnull(text);
    for (l = 0; l < 2; l++) {
        for (r = 0; r < TG_HSF_N; r++) {
            snprintf(line, sizeof(line),
                     "tollgate_handshakes_failed_total{listener=\"%s\",direction=\"%s\","
                     "reason=\"%s\"} 0",
                     names[l], dirs[l], tg_hs_fail_name((enum tg_hs_fail)r));
            ASSERT_LINE(text, line);
        }
    }
    free(text);
    tg_metrics_cleanup(&m);
}
END_TEST

START_TEST(test_metrics_label_values_escaped)
{
    const char *odd_names[] = {"we\"ird\\name\nnext", "plain"};
    const char *odd_dirs[] = {"inbound", "outbound"};
    struct tg_metrics m;
    char *text;
    size_t len = 0;

    ck_assert_int_eq(tg_metrics_init(&m, 1, 2, odd_names, odd_dirs), 0);
    tg_counter_add(&tg_metrics_slot(&m, 0, 0)->opened, 4);
    text = tg_metrics_render(&m, NULL, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(check_exposition(text, len) == NULL, "%s", check_exposition(text, len));
    ASSERT_LINE(text, "tollgate_connections_opened_total{listener=\"we\\\"ird\\\\name\\nnext\","
                      "direction=\"inbound\"} 4");
    free(text);
    tg_metrics_cleanup(&m);
}
END_TEST

START_TEST(test_metrics_process_values)
{
    struct tg_metrics m;
    char *text;
    size_t len = 0;
    long long secs = 0;
    const char *p;

    ck_assert_int_eq(tg_metrics_init(&m, 1, 1, names, dirs), 0);
    tg_counter_add(&m.process.identity_reloads, 3);
    tg_counter_add(&m.process.identity_reload_failures, 1);
    atomic_store(&m.process.generation, 42);

    text = tg_metrics_render(&m, NULL, &len);
    ck_assert_ptr_nonnull(text);
    ASSERT_LINE(text, "tollgate_identity_reloads_total 3");
    ASSERT_LINE(text, "tollgate_identity_reload_failures_total 1");
    ASSERT_LINE(text, "# TYPE tollgate_generation gauge");
    ASSERT_LINE(text, "tollgate_generation 42");
    ck_assert_ptr_null(strstr(text, "tollgate_identity_expiry_seconds")); /* no identity */
    free(text);

    atomic_store(&m.process.identity_expiry_unix, (int64_t)time(NULL) + 3600);
    text = tg_metrics_render(&m, NULL, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(check_exposition(text, len) == NULL, "%s", check_exposition(text, len));
    ASSERT_LINE(text, "# TYPE tollgate_identity_expiry_seconds gauge");
    p = strstr(text, "\ntollgate_identity_expiry_seconds ");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sscanf(p, "\ntollgate_identity_expiry_seconds %lld", &secs), 1);
    ck_assert_msg(secs > 3590 && secs <= 3600, "%lld", secs);
    free(text);

    atomic_store(&m.process.identity_expiry_unix, (int64_t)time(NULL) - 60);
    text = tg_metrics_render(&m, NULL, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(check_exposition(text, len) == NULL, "%s", check_exposition(text, len));
    p = strstr(text, "\ntollgate_identity_expiry_seconds ");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sscanf(p, "\ntollgate_identity_expiry_seconds %lld", &secs), 1);
    ck_assert_msg(secs < -50 && secs >= -70, "%lld", secs); /* expired: negative */
    free(text);
    tg_metrics_cleanup(&m);
}
END_TEST

START_TEST(test_metrics_no_listeners)
{
    struct tg_metrics m;
    char *text;
    size_t len = 0;

    ck_assert_int_eq(tg_metrics_init(&m, 4, 0, NULL, NULL), 0);
    text = tg_metrics_render(&m, NULL, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(check_exposition(text, len) == NULL, "%s", check_exposition(text, len));
    ASSERT_LINE(text, "# TYPE tollgate_handshakes_failed_total counter");
    ASSERT_LINE(text, "tollgate_generation 0");
    free(text);
    tg_metrics_cleanup(&m);
    tg_metrics_cleanup(&m); /* safe twice */
}
END_TEST

START_TEST(test_metrics_many_listeners)
{
    enum { N = 200 };
    static char name_buf[N][32];
    const char *many_names[N], *many_dirs[N];
    struct tg_metrics m;
    char *text, line[160];
    size_t len = 0, i;

    for (i = 0; i < N; i++) {
        snprintf(name_buf[i], sizeof(name_buf[i]), "listener-%zu", i);
        many_names[i] = name_buf[i];
        many_dirs[i] = i % 2 ? "outbound" : "inbound";
    }
    ck_assert_int_eq(tg_metrics_init(&m, 8, N, many_names, many_dirs), 0);
    for (i = 0; i < N; i++)
        tg_counter_add(&tg_metrics_slot(&m, i % 8, i)->bytes_sent, i);
    text = tg_metrics_render(&m, NULL, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(check_exposition(text, len) == NULL, "%s", check_exposition(text, len));
    snprintf(line, sizeof(line),
             "tollgate_bytes_sent_total{listener=\"listener-199\",direction=\"outbound\"} 199");
    ASSERT_LINE(text, line);
    free(text);
    tg_metrics_cleanup(&m);
}
END_TEST

START_TEST(test_metrics_histogram_buckets_cumulative)
{
    struct tg_metrics m;
    char *text;

    ck_assert_int_eq(tg_metrics_init(&m, 2, 2, names, dirs), 0);
    /* a value on a bound counts in that bound's bucket (le: less than or equal) */
    tg_histogram_observe(&tg_metrics_slot(&m, 0, 0)->hist[TG_HIST_HANDSHAKE], TG_HIST_HANDSHAKE,
                         1000); /* 1 ms */
    tg_histogram_observe(&tg_metrics_slot(&m, 1, 0)->hist[TG_HIST_HANDSHAKE], TG_HIST_HANDSHAKE,
                         1001);
    tg_histogram_observe(&tg_metrics_slot(&m, 1, 0)->hist[TG_HIST_HANDSHAKE], TG_HIST_HANDSHAKE,
                         60 * 1000000ull); /* beyond every bound: +Inf only */
    tg_histogram_observe(&tg_metrics_slot(&m, 0, 1)->hist[TG_HIST_CONN], TG_HIST_CONN, 0);
    text = render_ok(&m, NULL);
    ASSERT_LINE(text, "# TYPE tollgate_handshake_duration_seconds histogram");
    ASSERT_LINE(text, "tollgate_handshake_duration_seconds_bucket{listener=\"in-a\","
                      "direction=\"inbound\",le=\"0.0005\"} 0");
    ASSERT_LINE(text, "tollgate_handshake_duration_seconds_bucket{listener=\"in-a\","
                      "direction=\"inbound\",le=\"0.001\"} 1");
    ASSERT_LINE(text, "tollgate_handshake_duration_seconds_bucket{listener=\"in-a\","
                      "direction=\"inbound\",le=\"0.002\"} 2");
    ASSERT_LINE(text, "tollgate_handshake_duration_seconds_bucket{listener=\"in-a\","
                      "direction=\"inbound\",le=\"10\"} 2");
    ASSERT_LINE(text, "tollgate_handshake_duration_seconds_bucket{listener=\"in-a\","
                      "direction=\"inbound\",le=\"+Inf\"} 3");
    ASSERT_LINE(text, "tollgate_handshake_duration_seconds_count{listener=\"in-a\","
                      "direction=\"inbound\"} 3");
    ASSERT_LINE(text, "tollgate_handshake_duration_seconds_sum{listener=\"in-a\","
                      "direction=\"inbound\"} 60.002001");
    ASSERT_LINE(text, "tollgate_connection_duration_seconds_bucket{listener=\"out-b\","
                      "direction=\"outbound\",le=\"0.001\"} 1");
    ASSERT_LINE(text, "tollgate_connection_duration_seconds_count{listener=\"in-a\","
                      "direction=\"inbound\"} 0");
    ASSERT_LINE(text, "tollgate_http_request_duration_seconds_bucket{listener=\"in-a\","
                      "direction=\"inbound\",le=\"60\"} 0");
    free(text);
    tg_metrics_cleanup(&m);
}
END_TEST

START_TEST(test_metrics_identity_labels_bounded)
{
    struct tg_metrics m;
    char id[64], *text;
    unsigned i;

    ck_assert_int_eq(tg_metrics_init(&m, 2, 2, names, dirs), 0);
    ck_assert_uint_eq(tg_metrics_id_index(&m, NULL), TG_METRICS_ID_UNKNOWN);
    for (i = 0; i < TG_METRICS_IDS + 5; i++) {
        snprintf(id, sizeof(id), "spiffe://mesh.local/ns/default/sa/c%u", i);
        ck_assert_uint_eq(tg_metrics_id_index(&m, id),
                          i < TG_METRICS_IDS ? i : TG_METRICS_ID_OTHER);
    }
    ck_assert_uint_eq(tg_metrics_id_index(&m, "spiffe://mesh.local/ns/default/sa/c3"), 3);
    tg_counter_add(&tg_metrics_slot(&m, 0, 0)->conns_by_id[3], 2);
    tg_counter_add(&tg_metrics_slot(&m, 1, 0)->conns_by_id[3], 1);
    tg_counter_add(&tg_metrics_slot(&m, 1, 0)->conns_by_id[TG_METRICS_ID_OTHER], 4);
    tg_counter_add(&tg_metrics_slot(&m, 0, 1)->conns_by_id[0], 5);
    tg_counter_add(&tg_metrics_slot(&m, 0, 0)->requests_by_id[TG_METRICS_ID_UNKNOWN], 6);
    tg_counter_add(&tg_metrics_slot(&m, 0, 0)->limited_by_id[1], 7);
    tg_counter_add(&tg_metrics_slot(&m, 1, 1)->limited_by_id[1], 1);
    text = render_ok(&m, "spiffe://mesh.local/ns/default/sa/me");
    /* inbound: the peer is the source; outbound: the destination */
    ASSERT_LINE(text, "tollgate_connections_by_identity_total{listener=\"in-a\",direction="
                      "\"inbound\",source_id=\"spiffe://mesh.local/ns/default/sa/c3\","
                      "destination_id=\"spiffe://mesh.local/ns/default/sa/me\"} 3");
    ASSERT_LINE(text, "tollgate_connections_by_identity_total{listener=\"in-a\",direction="
                      "\"inbound\",source_id=\"other\","
                      "destination_id=\"spiffe://mesh.local/ns/default/sa/me\"} 4");
    ASSERT_LINE(text, "tollgate_connections_by_identity_total{listener=\"out-b\",direction="
                      "\"outbound\",source_id=\"spiffe://mesh.local/ns/default/sa/me\","
                      "destination_id=\"spiffe://mesh.local/ns/default/sa/c0\"} 5");
    ASSERT_LINE(text, "tollgate_http_requests_by_identity_total{listener=\"in-a\",direction="
                      "\"inbound\",source_id=\"unknown\","
                      "destination_id=\"spiffe://mesh.local/ns/default/sa/me\"} 6");
    ASSERT_LINE(
        text, "tollgate_http_rate_limited_by_id_total{id=\"spiffe://mesh.local/ns/default/sa/c1\"} "
              "8");
    /* series still at 0 are left out: at most 22 per listener whatever the traffic */
    ck_assert_ptr_null(strstr(text, "sa/c2\""));
    free(text);
    tg_metrics_cleanup(&m);
}
END_TEST

struct racer {
    struct tg_metrics *m;
    unsigned seed;
    unsigned got[40];
};

static void *race_ids(void *arg)
{
    struct racer *r = arg;
    char id[64];

    for (unsigned i = 0; i < 40; i++) {
        snprintf(id, sizeof(id), "spiffe://mesh.local/sa/x%u", (i * 7 + r->seed) % 40);
        r->got[(i * 7 + r->seed) % 40] = tg_metrics_id_index(r->m, id);
    }
    return NULL;
}

/* Threads adding the same identities at once agree on every index and fill the table once. */
START_TEST(test_metrics_identity_index_threads_agree)
{
    struct tg_metrics m;
    struct racer r[4];
    pthread_t t[4];
    unsigned i, k, n_own = 0;

    ck_assert_int_eq(tg_metrics_init(&m, 1, 1, names, dirs), 0);
    for (k = 0; k < 4; k++) {
        r[k] = (struct racer){.m = &m, .seed = k * 11};
        ck_assert_int_eq(pthread_create(&t[k], NULL, race_ids, &r[k]), 0);
    }
    for (k = 0; k < 4; k++)
        pthread_join(t[k], NULL);
    for (i = 0; i < 40; i++) {
        for (k = 1; k < 4; k++)
            ck_assert_uint_eq(r[k].got[i], r[0].got[i]);
        n_own += r[0].got[i] < TG_METRICS_IDS;
    }
    ck_assert_uint_eq(n_own, TG_METRICS_IDS);
    ck_assert_uint_eq(atomic_load(&m.ids.n), TG_METRICS_IDS);
    tg_metrics_cleanup(&m);
}
END_TEST

START_TEST(test_metrics_response_classes)
{
    struct tg_metrics m;
    char *text;

    ck_assert_int_eq(tg_metrics_init(&m, 1, 1, names, dirs), 0);
    tg_counter_add(&tg_metrics_slot(&m, 0, 0)->http_responses[1], 9);
    tg_counter_add(&tg_metrics_slot(&m, 0, 0)->http_responses[4], 2);
    text = render_ok(&m, NULL);
    ASSERT_LINE(text, "tollgate_http_responses_total{listener=\"in-a\",direction=\"inbound\","
                      "code_class=\"1xx\"} 0");
    ASSERT_LINE(text, "tollgate_http_responses_total{listener=\"in-a\",direction=\"inbound\","
                      "code_class=\"2xx\"} 9");
    ASSERT_LINE(text, "tollgate_http_responses_total{listener=\"in-a\",direction=\"inbound\","
                      "code_class=\"5xx\"} 2");
    free(text);
    tg_metrics_cleanup(&m);
}
END_TEST

START_TEST(test_metrics_build_and_process_series)
{
    const struct tg_build_info b = {"1.2.3", "5.5.4", true};
    char *text;
    size_t len = 0;
    double start = 0, cpu = -1;
    long long fds = -1;
    const char *p;

    text = tg_metrics_render_process(&b, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(check_exposition(text, len) == NULL, "%s in:\n%s", check_exposition(text, len),
                  text);
    ASSERT_LINE(text, "tollgate_build_info{version=\"1.2.3\",wolfssl=\"5.5.4\",aesni=\"true\"} 1");
    ASSERT_LINE(text, "# TYPE process_cpu_seconds_total counter");
    ck_assert_ptr_nonnull(p = strstr(text, "\nprocess_cpu_seconds_total "));
    ck_assert_int_eq(sscanf(p, "\nprocess_cpu_seconds_total %lf", &cpu), 1);
    ck_assert(cpu >= 0);
    ck_assert_ptr_nonnull(p = strstr(text, "\nprocess_open_fds "));
    ck_assert_int_eq(sscanf(p, "\nprocess_open_fds %lld", &fds), 1);
    ck_assert(fds >= 3); /* stdin, stdout, stderr at least */
    ck_assert_ptr_nonnull(p = strstr(text, "\nprocess_start_time_seconds "));
    ck_assert_int_eq(sscanf(p, "\nprocess_start_time_seconds %lf", &start), 1);
    ck_assert_msg(start <= (double)time(NULL) + 1 && start > (double)time(NULL) - 3600, "%f",
                  start);
    ck_assert_ptr_nonnull(strstr(text, "\nprocess_resident_memory_bytes "));
    ck_assert_ptr_nonnull(strstr(text, "\nprocess_max_fds "));
    free(text);
}
END_TEST

START_TEST(test_metrics_cert_expiry_series)
{
    const struct tg_cert_expiry c[] = {
        {"identity", "mesh.local", "0a1b", 1900000000},
        {"root", "we\"ird", "ff", 2000000000},
    };
    size_t len = 0;
    char *text = tg_metrics_render_certs(c, TG_NELEM(c), &len);

    ck_assert_ptr_nonnull(text);
    ck_assert_msg(check_exposition(text, len) == NULL, "%s", check_exposition(text, len));
    ASSERT_LINE(text, "# TYPE tollgate_certificate_expiry_timestamp_seconds gauge");
    ASSERT_LINE(text, "tollgate_certificate_expiry_timestamp_seconds{kind=\"identity\","
                      "trust_domain=\"mesh.local\",serial=\"0a1b\"} 1900000000");
    ASSERT_LINE(text, "tollgate_certificate_expiry_timestamp_seconds{kind=\"root\","
                      "trust_domain=\"we\\\"ird\",serial=\"ff\"} 2000000000");
    free(text);
    /* no certificate yet: the family without samples, still well formed */
    text = tg_metrics_render_certs(NULL, 0, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(check_exposition(text, len) == NULL, "%s", check_exposition(text, len));
    ck_assert_ptr_null(strstr(text, "\ntollgate_certificate_expiry_timestamp_seconds{"));
    free(text);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE(
        "metrics", "render", &tc, test_metrics_hs_fail_name_out_of_range,
        test_metrics_render_sums_workers, test_metrics_every_reason_series_present,
        test_metrics_label_values_escaped, test_metrics_process_values, test_metrics_no_listeners,
        test_metrics_many_listeners, test_metrics_histogram_buckets_cumulative,
        test_metrics_identity_labels_bounded, test_metrics_identity_index_threads_agree,
        test_metrics_response_classes, test_metrics_build_and_process_series,
        test_metrics_cert_expiry_series);

    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_metrics_hs_fail_names, reasons));
    return s;
}

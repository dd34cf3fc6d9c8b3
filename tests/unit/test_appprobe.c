/* The app's probes handed to the sidecar (sidecar/ops/appprobe.c): the JSON injection writes,
 * what is refused in it, and one run of each kind against a port on 127.0.0.1. */
#include <check.h>

#include "check_main.h"
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "tollgate/appprobe.h"

static const struct {
    const char *json;
    bool ok;
} cases[] = {
    {"{}", true},
    {"{\"app/livez\":{\"tcpSocket\":{\"port\":8080}}}", true},
    {"{\"app/readyz\":{\"httpGet\":{\"path\":\"/h?x=1\",\"port\":80},\"timeoutSeconds\":3}}", true},
    {"{\"app/readyz\":{\"httpGet\":{\"port\":80}}}", true},
    {"[]", false},
    {"not json", false},
    {"{\"app/livez\":{}}", false},
    {"{\"app/livez\":{\"tcpSocket\":{\"port\":8080},\"httpGet\":{\"port\":1}}}", false},
    {"{\"app/livez\":{\"tcpSocket\":{\"port\":0}}}", false},
    {"{\"app/livez\":{\"tcpSocket\":{\"port\":\"http\"}}}", false},
    {"{\"app/livez\":{\"httpGet\":{\"port\":80,\"path\":\"/a b\"}}}", false},
    {"{\"app/livez\":{\"httpGet\":{\"port\":80,\"path\":\"/a\\r\\nX: y\"}}}", false},
    {"{\"app/livez\":{\"httpGet\":{\"port\":80,\"path\":\"relative\"}}}", false},
    {"{\"livez\":{\"tcpSocket\":{\"port\":80}}}", false},
    {"{\"app/livez\":{\"tcpSocket\":{\"port\":80},\"timeoutSeconds\":0}}", false},
    {"{\"a/livez\":{\"tcpSocket\":{\"port\":80}},\"a/livez\":{\"tcpSocket\":{\"port\":81}}}",
     false},
};

START_TEST(test_appprobes_parse_table)
{
    struct tg_appprobes *t = NULL;
    char err[TG_ERRLEN] = "";
    bool ok = tg_appprobes_parse(cases[_i].json, strlen(cases[_i].json), &t, err) == 0;

    ck_assert_msg(ok == cases[_i].ok, "%s: %s", cases[_i].json, err);
    ck_assert(ok || err[0] != '\0');
    tg_appprobes_free(t);
}
END_TEST

START_TEST(test_appprobes_find)
{
    const char *json = "{\"app/livez\":{\"tcpSocket\":{\"port\":8080}},"
                       "\"app/readyz\":{\"httpGet\":{\"port\":8081}}}";
    struct tg_appprobes *t = NULL;
    char err[TG_ERRLEN] = "";
    const struct tg_appprobe *p;

    ck_assert_msg(tg_appprobes_parse(json, strlen(json), &t, err) == 0, "%s", err);
    p = tg_appprobes_find(t, "app/readyz", 10);
    ck_assert(p != NULL && p->http && p->port == 8081 && strcmp(p->path, "/") == 0 &&
              p->timeout_ms == 1000);
    ck_assert_ptr_null(tg_appprobes_find(t, "app/ready", 9));
    ck_assert_ptr_null(tg_appprobes_find(NULL, "app/readyz", 10));
    tg_appprobes_free(t);
}
END_TEST

struct verdict {
    int calls;
    bool ok;
};

static void on_done(void *arg, bool ok, const char *why)
{
    struct verdict *v = arg;

    ck_assert(why != NULL && why[0] != '\0');
    v->calls++;
    v->ok = ok;
}

static void on_conn(uv_stream_t *server, int status)
{
    (void)server;
    (void)status; /* left in the backlog: connected, never answered */
}

/* tcpSocket passes on an accepting port and fails on a closed one; httpGet on a port that
 * accepts and never answers fails at its timeout. Every handle closed at the end. */
START_TEST(test_appprobe_runs)
{
    uv_loop_t loop;
    uv_tcp_t server;
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    struct tg_appprobe p = {.timeout_ms = 300};
    struct verdict up = {0}, silent = {0}, down = {0};
    char healthz[] = "/healthz";

    ck_assert_int_eq(uv_loop_init(&loop), 0);
    uv_tcp_init(&loop, &server);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    ck_assert_int_eq(uv_tcp_bind(&server, (const struct sockaddr *)&sa, 0), 0);
    ck_assert_int_eq(uv_listen((uv_stream_t *)&server, 8, on_conn), 0);
    uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len);
    p.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    ck_assert_int_eq(tg_appprobe_run(&loop, &p, on_done, &up), 0);
    p.http = true;
    p.path = healthz;
    ck_assert_int_eq(tg_appprobe_run(&loop, &p, on_done, &silent), 0);
    ck_assert_int_eq(up.calls + silent.calls, 0); /* never from inside the call */
    while (up.calls + silent.calls < 2) /* the listener keeps the loop alive; Check's timeout
                                         * bounds this */
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert(up.calls == 1 && up.ok);
    ck_assert(silent.calls == 1 && !silent.ok);
    uv_close((uv_handle_t *)&server, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    p.http = false;
    ck_assert_int_eq(tg_appprobe_run(&loop, &p, on_done, &down), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert(down.calls == 1 && !down.ok);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE("appprobe", "appprobe", &tc, test_appprobes_find, test_appprobe_runs);

    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_appprobes_parse_table, cases));
    return s;
}

/* The stand-in Kubernetes API server for integration tests (it_k8s.h). */
#include "it_k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "harness.h"

int it_k8s_api_port, it_k8s_ctl_port;

/* One request to the stand-in's control port; returns the status, the body in buf. */
int it_k8s_ctl(const char *method, const char *path, const char *body, char *buf, size_t cap)
{
    char req[8192];
    int fd = it_connect(it_k8s_ctl_port, 5000), status = -1;
    size_t n;
    const char *p;

    ck_assert_msg(fd >= 0, "control port %d: %d", it_k8s_ctl_port, fd);
    snprintf(req, sizeof(req),
             "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             method, path, strlen(body), body);
    ck_assert(it_send_all(fd, req, strlen(req)));
    n = it_recv_full(fd, buf, cap - 1);
    buf[n] = '\0';
    close(fd);
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    p = strstr(buf, "\r\n\r\n");
    if (p != NULL)
        memmove(buf, p + 4, strlen(p + 4) + 1);
    return status;
}

void it_k8s_put(const char *plural, const char *json)
{
    char path[128], buf[4096];

    snprintf(path, sizeof(path), "/objects/%s", plural);
    ck_assert_msg(it_k8s_ctl("PUT", path, json, buf, sizeof(buf)) == 200, "PUT %s: %s", json, buf);
}

void it_k8s_del(const char *plural, const char *ns, const char *name)
{
    char path[256], buf[4096];

    snprintf(path, sizeof(path), "/objects/%s/%s/%s", plural, ns, name);
    ck_assert_msg(it_k8s_ctl("DELETE", path, "", buf, sizeof(buf)) == 200, "DELETE %s: %s", path,
                  buf);
}

long long it_k8s_stat(const char *key)
{
    char buf[4096];

    ck_assert_int_eq(it_k8s_ctl("GET", "/stats", "", buf, sizeof(buf)), 200);
    return it_json_num(buf, key);
}

/* Waits until the stand-in's counter key is want (both control planes relisted, say). */
bool it_k8s_wait_stat(const char *key, long long want, int timeout_ms)
{
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;

    while (it_k8s_stat(key) != want) {
        if (it_now_ms() >= end)
            return false;
        it_sleep_ms(20);
    }
    return true;
}

void it_k8s_certs(void)
{
    const char *ossl = it_openssl();
    const char *ca[] = {ossl,
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-keyout",
                        "api-ca.key",
                        "-out",
                        "api-ca.pem",
                        "-days",
                        "1",
                        "-subj",
                        "/CN=stand-in cluster CA",
                        NULL};
    const char *csr[] = {
        ossl,      "req",     "-newkey", "ec",      "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "api.key", "-out",    "api.csr", "-subj",    "/CN=kube-apiserver",      NULL};
    const char *sign[] = {ossl,      "x509",       "-req",   "-in",        "api.csr",
                          "-CA",     "api-ca.pem", "-CAkey", "api-ca.key", "-CAcreateserial",
                          "-out",    "api.pem",    "-days",  "1",          "-extfile",
                          "api.ext", NULL};

    it_write_file("api.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    ck_assert_int_eq(it_run(ca, NULL, 20000, NULL, NULL), 0);
    ck_assert_int_eq(it_run(csr, NULL, 20000, NULL, NULL), 0);
    ck_assert_int_eq(it_run(sign, NULL, 20000, NULL, NULL), 0);
}

void it_k8s_start(const char *token, const char *bookmark_s, int max_page)
{
    char script[4096], page[16], *out;
    const char *argv[] = {"/usr/bin/python3",
                          script,
                          "--cert",
                          "api.pem",
                          "--key",
                          "api.key",
                          "--token",
                          token,
                          "--bookmark-interval",
                          bookmark_s,
                          "--max-page",
                          page,
                          NULL};

    snprintf(page, sizeof(page), "%d", max_page);
    snprintf(script, sizeof(script), "%s/tests/k8s/apiserver.py", it_env("TG_SOURCE_DIR"));
    it_spawn("apiserver", argv, IT_STDIN_NULL);
    ck_assert_msg(it_wait_file_contains("apiserver.out", "\"ctl\"", 10000),
                  "the stand-in API server did not start");
    out = it_read_file("apiserver.out", NULL);
    it_k8s_api_port = (int)it_json_num(out, "port");
    it_k8s_ctl_port = (int)it_json_num(out, "ctl");
    free(out);
    ck_assert(it_k8s_api_port > 0 && it_k8s_ctl_port > 0);
}

void it_k8s_mesh_files(void)
{
    it_certs("ca", "--out", "ca", "--cn", "k8s test CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    it_cp_tokens(NULL);
    it_write_file("api.token", "token-one\n");
}

void it_k8s_write_cp(const char *file, int port, int admin, const char *top, const char *discovery)
{
    it_cp_cfg_write(file, port, admin,
                    "%s"
                    "tokens: tokens.txt\n"
                    "mesh: [mesh.yaml]\n"
                    "kubernetes:\n"
                    "  discovery:\n"
                    "    api_server: https://127.0.0.1:%d\n"
                    "    ca: api-ca.pem\n"
                    "    token: api.token\n"
                    "%s",
                    top, it_k8s_api_port, discovery);
}

#define SIDECAR_TIMEOUTS "handshake: 5s, idle: 1h, connect: 2s, drain: 1s"

/* One sidecar of the pair: FILE with its admin and control-plane ports, token file, pod
 * labels and pod info, and the listener in or out (the other NULL). */
static void write_sidecar(const char *file, int admin, int cp, const char *token,
                          const char *labels, const char *pod_info, const struct it_listener *in,
                          const struct it_listener *out)
{
    struct it_cfg c = {.workers = 1,
                       .log_level = "info",
                       .timeouts = SIDECAR_TIMEOUTS,
                       .cp_labels = labels,
                       .cp_pod_info = pod_info};

    if (in != NULL)
        c.in[0] = *in;
    if (out != NULL)
        c.out[0] = *out;
    it_cfg_write_cp(file, admin, cp, token, &c);
}

void it_k8s_write_sidecars(const struct it_k8s_pair *p)
{
    write_sidecar("b.yaml", p->b_admin, p->b_cp, "b.token", p->b_labels, p->b_pod_info,
                  &(struct it_listener){"web-in", p->in_port, p->echo_port, p->b_allow, NULL},
                  NULL);
    write_sidecar("a.yaml", p->a_admin, p->a_cp, "a.token", p->a_labels, p->a_pod_info, NULL,
                  &(struct it_listener){"api-out", p->out_port, p->in_port, IT_WEB_ID, NULL});
}

void it_k8s_pod_info(const char *dir, const char *ns, const char *name, const char *labels)
{
    char path[512];

    ck_assert_int_eq(mkdir(dir, 0755) == 0 || errno == EEXIST, 1);
    snprintf(path, sizeof(path), "%s/name", dir);
    it_replace_file(path, "%s", name);
    snprintf(path, sizeof(path), "%s/namespace", dir);
    it_replace_file(path, "%s", ns);
    snprintf(path, sizeof(path), "%s/labels", dir);
    it_replace_file(path, "%s", labels);
}

void it_k8s_pair_setup(int cp_port, struct it_k8s_pair *p)
{
    IT_FREE_PORTS(&p->in_port, &p->out_port, &p->a_admin, &p->b_admin);
    p->a_cp = p->b_cp = cp_port;
    it_echo_start("echo", &p->echo_port);
    it_k8s_write_sidecars(p);
}

bool it_k8s_traffic_becomes(int out_port, bool want, int timeout_ms)
{
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;
    char err[256];

    do {
        if ((it_round_trip(out_port, "through A and B", err) > 0) == want)
            return true;
        it_sleep_ms(50);
    } while (it_now_ms() < end);
    return false;
}

Suite *it_k8s_suite(const char *name, const TTest *test, void (*setup)(void),
                    void (*teardown)(void))
{
    TCase *tc;
    Suite *s = tg_test_suite_of(name, name, &test, 1, &tc);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    return s;
}

void it_k8s_pod(const char *ns, const char *name, const char *sa, const char *labels,
                const char *ip)
{
    char j[1024];

    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\",\"labels\":%s},\"spec\":"
             "{\"serviceAccountName\":\"%s\",\"containers\":[{\"name\":\"app\",\"image\":"
             "\"app:1\"}]},\"status\":{\"phase\":\"Running\",\"podIP\":\"%s\"}}",
             name, ns, labels, sa, ip);
    it_k8s_put("pods", j);
}

void it_k8s_two_pods(const char *api_labels, const char *web_labels)
{
    it_setup();
    it_k8s_certs();
    it_k8s_start("token-one", "1", 0);
    it_k8s_put("namespaces", "{\"metadata\":{\"name\":\"default\"}}");
    it_k8s_pod("default", "api-0", "api", api_labels, "10.1.0.10");
    it_k8s_pod("default", "web-0", "web", web_labels, "10.1.0.11");
    it_k8s_mesh_files();
}

/* Discovery from the Kubernetes API, end to end on loopback: tollgate-cp with
 * kubernetes.discovery against the stand-in API server (tests/k8s/apiserver.py: HTTPS with a
 * CA made here, bearer tokens, list/watch with BOOKMARKs and 410 Gone), and two sidecars A
 * (outbound api-out -> B) and B (inbound web-in -> echo) that bootstrap by token and get
 * their mesh tables from it while they carry traffic.
 *
 * In order: the first list gives a table (counted in the control plane's log) that both
 * sidecars apply; a pod that starts, changes service account and stops each reaches both
 * sidecars as a new mesh_table version within 1 s of the API server taking the change
 * (measured from the control request's answer to the sidecar's "applied" line), A from one
 * control plane and B from a second replica, with the same version (content hashes); an object
 * that does not parse is logged and changes nothing, and so are list pages and a watch event
 * that are not JSON (the event comes again on the next watch); watches cut mid-stream resume from
 * the last resourceVersion (a BOOKMARK's: no relist); 410 Gone as a watch ERROR event and as the
 * HTTP status each bring one relist of every kind, after which changes still arrive; an
 * expired token gets 401s until the token file holds a new one, then changes arrive again.
 * Lists come in pages of one (the stand-in's cap), and a continue token that expired between
 * pages (410) starts that list again. Traffic through A and B works throughout, and the
 * objects served validate against the
 * official schemas (npm kubernetes-models, when installed: tests/deploy/validate_schema.cjs).
 * SIGTERM: the control plane exits 0.
 *
 * in_cluster: the API server from KUBERNETES_SERVICE_HOST/PORT (and the service account's
 * files, here overridden by ca: and token:) gives the same first table; without those
 * variables the control plane does not start, and says why; with a CA that did not sign the
 * API server's certificate it derives nothing and says why. */
#include "harness.h"
#include "it_k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PUSH_BOUND_MS 1000

static int cp_port, cp2_port, cp_admin;
static struct it_k8s_pair pair = {.b_allow = IT_API_ID};

static void pod(const char *name, const char *sa, const char *ip)
{
    char j[1024];

    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"prod\",\"labels\":{\"app\":\"web\"}},"
             "\"spec\":{\"serviceAccountName\":\"%s\",\"containers\":[{\"name\":\"app\","
             "\"image\":\"web:1\"}],\"initContainers\":[{\"name\":\"tollgate-proxy\","
             "\"image\":\"tollgate:0.1.0\",\"restartPolicy\":\"Always\"}]},"
             "\"status\":{\"phase\":\"Running\",\"podIP\":\"%s\",\"podIPs\":[{\"ip\":\"%s\"}]}}",
             name, sa, ip, ip);
    it_k8s_put("pods", j);
}

/* The slice of Service web holding the pods web-1 (10.1.0.11) and, when with2, web-2. */
static void slice(bool with2)
{
    char j[2048];

    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"web-a1\",\"namespace\":\"prod\",\"labels\":"
             "{\"kubernetes.io/service-name\":\"web\"}},\"addressType\":\"IPv4\","
             "\"ports\":[{\"name\":\"http\",\"port\":8080,\"protocol\":\"TCP\"}],"
             "\"endpoints\":[{\"addresses\":[\"10.1.0.11\"],\"conditions\":{\"ready\":true},"
             "\"targetRef\":{\"kind\":\"Pod\",\"namespace\":\"prod\",\"name\":\"web-1\"}}%s]}",
             with2 ? ",{\"addresses\":[\"10.1.0.12\"],\"conditions\":{\"ready\":true},"
                     "\"targetRef\":{\"kind\":\"Pod\",\"namespace\":\"prod\",\"name\":\"web-2\"}}"
                   : "");
    it_k8s_put("endpointslices", j);
}

static int applied(const char *log)
{
    return it_count_lines(log, "mesh_table version", "applied", NULL);
}

/* The version of the last mesh table log applied. */
static void last_version(const char *log, char *dst, size_t cap)
{
    char line[IT_LINE_MAX];
    const char *v;

    dst[0] = '\0';
    if (it_last_line(log, line, sizeof(line), "control plane: mesh_table version", "applied",
                     NULL) &&
        (v = strstr(line, "mesh_table version ")) != NULL)
        snprintf(dst, cap, "%.16s", v + strlen("mesh_table version "));
}

/* Waits until both sidecars have applied more mesh tables than a0/b0, and the same version
 * (A's from one control plane, B's from the other: content hashes agree); returns the ms it
 * took from t0 (or -1 after bound_ms). */
static long wait_both(int a0, int b0, uint64_t t0, int bound_ms)
{
    uint64_t end = t0 + (uint64_t)bound_ms;
    char va[32], vb[32];

    while (it_now_ms() < end) {
        last_version("a.err", va, sizeof(va));
        last_version("b.err", vb, sizeof(vb));
        if (applied("a.err") > a0 && applied("b.err") > b0 && strcmp(va, vb) == 0)
            return (long)(it_now_ms() - t0);
        it_sleep_ms(5);
    }
    return -1;
}

/* Runs change, then asserts both sidecars apply a new table within bound_ms. */
#define EXPECT_PUSH(what, bound_ms, change)                                                        \
    do {                                                                                           \
        int a0_ = applied("a.err"), b0_ = applied("b.err");                                        \
        uint64_t t0_;                                                                              \
        long ms_;                                                                                  \
        change;                                                                                    \
        t0_ = it_now_ms();                                                                         \
        ms_ = wait_both(a0_, b0_, t0_, bound_ms);                                                  \
        ck_assert_msg(ms_ >= 0, "%s: no new mesh_table in both sidecars within %d ms", what,       \
                      bound_ms);                                                                   \
        fprintf(stderr,                                                                            \
                "k8s watch: %s: both sidecars, one per replica, applied the same new table in "    \
                "%ld ms\n",                                                                        \
                what, ms_);                                                                        \
    } while (0)

/* A control plane's cp.yaml (admin 0: none). */
static void write_cp(const char *file, int port, int admin)
{
    it_k8s_write_cp(file, port, admin, "log_level: debug\n", "");
}

static void setup(void)
{
    it_setup();
    it_k8s_certs();
    it_k8s_start("token-one", "0.3", 1);
    /* the cluster: a labelled namespace, Service web (ClusterIP 10.96.0.10, port 80 -> 8080,
     * named http), its pod web-1 with the sidecar, and an unmeshed namespace */
    it_k8s_put("namespaces", "{\"metadata\":{\"name\":\"prod\",\"labels\":"
                             "{\"tollgate.dev/inject\":\"enabled\"}}}");
    it_k8s_put("namespaces", "{\"metadata\":{\"name\":\"legacy\"}}");
    pod("web-1", "web", "10.1.0.11");
    it_k8s_put("services",
               "{\"metadata\":{\"name\":\"web\",\"namespace\":\"prod\"},\"spec\":"
               "{\"type\":\"ClusterIP\",\"clusterIP\":\"10.96.0.10\",\"clusterIPs\":"
               "[\"10.96.0.10\"],\"ipFamilies\":[\"IPv4\"],\"selector\":{\"app\":\"web\"},"
               "\"ports\":[{\"name\":\"http\",\"port\":80,\"targetPort\":8080,"
               "\"protocol\":\"TCP\"}]}}");
    slice(false);

    it_k8s_mesh_files();
    IT_FREE_PORTS(&cp_port, &cp2_port, &cp_admin, &pair.in_port, &pair.out_port, &pair.a_admin,
                  &pair.b_admin);
    /* the overlay: a VM network outside the cluster */
    it_write_file("mesh.yaml", "mesh:\n"
                               "  outside: passthrough\n"
                               "  destinations:\n"
                               "    - address: 192.168.10.0/24\n"
                               "      expect: [\"spiffe://mesh.local/ns/vm/sa/legacy\"]\n");
    write_cp("cp.yaml", cp_port, cp_admin);
    write_cp("cp2.yaml", cp2_port, 0); /* a second replica: B's */
    it_echo_start("echo", &pair.echo_port);
    pair.a_cp = cp_port;
    pair.b_cp = cp2_port; /* a second replica: B's */
    it_k8s_write_sidecars(&pair);
}

static void traffic(const char *when)
{
    char err[256] = "";

    ck_assert_msg(it_round_trip(pair.out_port, "through A and B", err) > 0, "%s: %s", when, err);
}

/* The control plane's last "mesh table derived" line holds want. */
static bool derived(const char *want, int timeout_ms)
{
    char line[IT_LINE_MAX];
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;

    do {
        if (it_last_line("cp.err", line, sizeof(line), "mesh table derived", NULL) &&
            strstr(line, want) != NULL)
            return true;
        it_sleep_ms(20);
    } while (it_now_ms() < end);
    return false;
}

static void validate_schemas(void)
{
    char *objs = malloc(1 << 20), script[4096], node_path[4096];
    const char *argv[] = {"/usr/bin/node", script, "objects.json", NULL};
    char *out = NULL;
    int rc;

    ck_assert_ptr_nonnull(objs);
    ck_assert_int_eq(it_k8s_ctl("GET", "/objects", "", objs, 1 << 20), 200);
    it_write_file("objects.json", "%s", objs);
    free(objs);
    if (access("/usr/bin/node", X_OK) != 0) {
        fprintf(stderr, "k8s watch: no /usr/bin/node: schema validation skipped\n");
        return;
    }
    snprintf(script, sizeof(script), "%s/tests/deploy/validate_schema.cjs",
             it_env("TG_SOURCE_DIR"));
    snprintf(node_path, sizeof(node_path), "%s/.cache/npm/node_modules", it_env("TG_SOURCE_DIR"));
    if (getenv("NODE_PATH") == NULL)
        setenv("NODE_PATH", node_path, 1);
    rc = it_run(argv, NULL, 30000, &out, NULL);
    if (rc == 77)
        fprintf(stderr, "k8s watch: %s", out != NULL ? out : "kubernetes-models missing\n");
    else
        ck_assert_msg(rc == 0, "served objects do not match the Kubernetes schemas:\n%s", out);
    if (rc == 0)
        fprintf(stderr, "k8s watch: %s", out);
    free(out);
}

START_TEST(test_k8s_watch_end_to_end)
{
    const char *cp_argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    struct it_proc *cp = it_spawn("cp", cp_argv, IT_STDIN_NULL);
    long long lists0, un0;
    char buf[4096];

    const char *cp2_argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp2.yaml", NULL};
    struct it_proc *cp2 = it_spawn("cp2", cp2_argv, IT_STDIN_NULL);

    ck_assert_msg(it_wait_port(cp_port, 10000), "tollgate-cp did not listen");
    ck_assert_msg(it_wait_port(cp2_port, 10000), "the second tollgate-cp did not listen");
    it_sidecar_start("b", "b.yaml", pair.b_admin, 0);
    it_sidecar_start("a", "a.yaml", pair.a_admin, 0);
    traffic("at start");
    /* the first table: web-1:8080, the ClusterIP 10.96.0.10:80, the overlay's VM network */
    ck_assert_msg(derived("2 destinations (1 services meshed", 5000), "no first table");
    ck_assert_msg(it_wait_lines("a.err", 1, 5000, "mesh_table version", "applied", NULL) >= 1 &&
                      it_wait_lines("b.err", 1, 5000, "mesh_table version", "applied", NULL) >= 1,
                  "the sidecars never applied a mesh table");

    EXPECT_PUSH("pod web-2 starts", PUSH_BOUND_MS, {
        pod("web-2", "web", "10.1.0.12");
        slice(true);
    });
    ck_assert(derived("3 destinations", 1000));
    EXPECT_PUSH("pod web-2 changes service account", PUSH_BOUND_MS,
                pod("web-2", "web-v2", "10.1.0.12"));
    EXPECT_PUSH("pod web-2 stops", PUSH_BOUND_MS, {
        slice(false);
        it_k8s_del("pods", "prod", "web-2");
    });
    ck_assert(derived("2 destinations", 1000));
    traffic("after pod changes");

    /* a Pod the control plane cannot read: logged, nothing pushed */
    {
        int a0 = applied("a.err");

        it_k8s_put("pods", "{\"metadata\":{\"name\":\"bad\",\"namespace\":\"prod\"},\"spec\":"
                           "{\"serviceAccountName\":\"Not_A_Name\",\"containers\":[]}}");
        ck_assert(it_wait_lines("cp.err", 1, 2000, "watch pods: ADDED event skipped",
                                "spec.serviceAccountName: not a DNS-1123 name", NULL) >= 1);
        it_sleep_ms(300);
        ck_assert_int_eq(applied("a.err"), a0);
        it_k8s_del("pods", "prod", "bad");
    }

    /* list pages that are not JSON: logged, nothing changes, the list is tried again */
    {
        int a0 = applied("a.err");
        long long l0 = it_k8s_stat("lists");

        ck_assert_int_eq(
            it_k8s_ctl("POST", "/corrupt", "{\"what\": \"list\", \"count\": 2}", buf, sizeof(buf)),
            200);
        ck_assert_int_eq(it_k8s_ctl("POST", "/gone", "{\"mode\": \"event\"}", buf, sizeof(buf)),
                         200);
        ck_assert_msg(it_k8s_wait_stat("lists", l0 + 8, 5000), "the lists were not tried again");
        ck_assert_int_eq(it_count_lines("cp.err", "kubernetes: list", ": not JSON: ", NULL) +
                             it_count_lines("cp2.err", "kubernetes: list", ": not JSON: ", NULL),
                         2);
        it_sleep_ms(300);
        ck_assert_int_eq(applied("a.err"), a0);
    }
    /* a watch event line that is not JSON: the watch starts again from the last good
     * resourceVersion, and the event lost on the spoiled stream comes again */
    EXPECT_PUSH("a change whose watch event arrived spoiled", 3000, {
        ck_assert_int_eq(
            it_k8s_ctl("POST", "/corrupt", "{\"what\": \"watch\", \"count\": 1}", buf, sizeof(buf)),
            200);
        pod("web-2", "web", "10.1.0.12");
        slice(true);
    });
    ck_assert_int_eq(
        it_count_lines("cp.err", "an event is not JSON", "reconnecting from", NULL) +
            it_count_lines("cp2.err", "an event is not JSON", "reconnecting from", NULL),
        1);

    /* BOOKMARKs move the resourceVersion; cut watches resume from it without a relist */
    ck_assert(it_k8s_stat("bookmarks") > 0);
    lists0 = it_k8s_stat("lists");
    ck_assert_int_eq(it_k8s_ctl("POST", "/drop", "{}", buf, sizeof(buf)), 200);
    ck_assert(it_wait_lines("cp.err", 4, 3000, "dropped", "reconnecting from", NULL) >= 4);
    EXPECT_PUSH("a change after the watches were cut", 2000, pod("web-2", "web-v2", "10.1.0.12"));
    ck_assert_int_eq(it_k8s_stat("lists"), lists0);

    /* 410 Gone as an ERROR event: one relist of each kind, then changes arrive again */
    ck_assert_int_eq(it_k8s_ctl("POST", "/gone", "{\"mode\": \"event\"}", buf, sizeof(buf)), 200);
    ck_assert(it_wait_lines("cp.err", 8, 3000, "410 Gone", "relisting", NULL) >= 8);
    ck_assert(it_wait_lines("cp.err", 8, 3000, "relisted", NULL) >= 8);
    ck_assert_msg(it_k8s_wait_stat("lists", lists0 + 8, 3000),
                  "not one relist of each kind by each");
    EXPECT_PUSH("a change after 410 (event)", PUSH_BOUND_MS, pod("web-2", "web", "10.1.0.12"));

    /* lists are paged; a continue token that expires mid-list (410) starts that list again */
    ck_assert(it_k8s_stat("pages") > it_k8s_stat("lists"));
    lists0 = it_k8s_stat("lists");
    ck_assert_int_eq(it_k8s_ctl("POST", "/expire", "{\"count\": 1}", buf, sizeof(buf)), 200);
    ck_assert_int_eq(it_k8s_ctl("POST", "/gone", "{\"mode\": \"event\"}", buf, sizeof(buf)), 200);
    {
        uint64_t end = it_now_ms() + 3000;

        while (
            it_count_lines("cp.err", "list", ": 410 Gone (The provided continue", NULL) +
                    it_count_lines("cp2.err", "list", ": 410 Gone (The provided continue", NULL) <
                1 &&
            it_now_ms() < end)
            it_sleep_ms(20);
        ck_assert_msg(it_now_ms() < end, "no list restarted after its continue token expired");
    }
    ck_assert(it_wait_lines("cp.err", 12, 3000, "relisted", NULL) >= 12);
    ck_assert_int_eq(it_k8s_stat("gone_continue"), 1);
    ck_assert_msg(it_k8s_wait_stat("lists", lists0 + 8, 3000),
                  "not one relist of each kind by each");

    /* 410 Gone as the HTTP status of the watch request (the watches cut, then refused) */
    ck_assert_int_eq(it_k8s_ctl("POST", "/gone", "{\"mode\": \"http\"}", buf, sizeof(buf)), 200);
    ck_assert(it_wait_lines("cp.err", 16, 5000, "watch", ": 410 Gone (too old resource version",
                            "): relisting", NULL) >= 16);
    ck_assert(it_wait_lines("cp.err", 16, 5000, "relisted", NULL) >= 16);
    ck_assert(it_k8s_stat("gone_http") >= 4);
    EXPECT_PUSH("a change after 410 (http)", PUSH_BOUND_MS, {
        slice(false);
        it_k8s_del("pods", "prod", "web-2");
    });

    /* the token expires: 401s until the token file holds a new one the server accepts */
    un0 = it_k8s_stat("unauthorized");
    ck_assert_int_eq(
        it_k8s_ctl("POST", "/token", "{\"token\": \"token-one\", \"ttl\": 0}", buf, sizeof(buf)),
        200);
    ck_assert_int_eq(it_k8s_ctl("POST", "/drop", "{}", buf, sizeof(buf)), 200);
    ck_assert(it_wait_lines("cp.err", 1, 3000, "401 Unauthorized", NULL) >= 1);
    ck_assert(it_k8s_stat("unauthorized") > un0);
    ck_assert_int_eq(
        it_k8s_ctl("POST", "/token", "{\"token\": \"token-two\", \"ttl\": null}", buf, sizeof(buf)),
        200);
    it_replace_file("api.token", "token-two");
    EXPECT_PUSH("a change after the token was rotated", 5000, {
        pod("web-2", "web", "10.1.0.12");
        slice(true);
    });

    traffic("at the end");
    /* what the control plane counted */
    ck_assert(it_stat(cp_admin, "tollgate_cp_k8s_synced", "") == 1);
    ck_assert(it_stat(cp_admin, "tollgate_cp_k8s_gone_total", "") >= 16);
    ck_assert(it_stat(cp_admin, "tollgate_cp_k8s_bookmarks_total", "") > 0);
    ck_assert(it_stat(cp_admin, "tollgate_cp_k8s_bad_objects_total", "") >= 1);
    ck_assert(it_stat(cp_admin, "tollgate_cp_k8s_unauthorized_total", "") >= 1);
    ck_assert(it_stat(cp_admin, "tollgate_cp_k8s_lists_total", "") >= 20);
    validate_schemas();
    ck_assert_int_eq(it_stop(cp, 5000), 0);
    ck_assert_int_eq(it_stop(cp2, 5000), 0);
}
END_TEST

START_TEST(test_k8s_in_cluster)
{
    const char *argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    char port[16], *err = NULL;

    struct it_proc *cp;

    /* the same cp.yaml, but in_cluster: the address from the environment */
    it_cp_cfg_write("cp.yaml", cp_port, 0,
                    "mesh: [mesh.yaml]\n"
                    "kubernetes:\n"
                    "  discovery: {in_cluster: true, ca: api-ca.pem, token: api.token}\n");
    unsetenv("KUBERNETES_SERVICE_HOST");
    ck_assert_int_eq(it_run(argv, NULL, 10000, NULL, &err), 1);
    ck_assert_msg(strstr(err, "kubernetes.discovery: no api_server, and not in a cluster "
                              "(KUBERNETES_SERVICE_HOST is not set)") != NULL,
                  "%s", err);
    free(err);
    snprintf(port, sizeof(port), "%d", it_k8s_api_port);
    setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", port, 1);
    /* the mesh CA is not the cluster's: the API server is not believed */
    it_cp_cfg_write("cp-wrong.yaml", cp_port, 0,
                    "kubernetes:\n"
                    "  discovery: {in_cluster: true, ca: ca.pem, token: api.token}\n");
    argv[3] = "cp-wrong.yaml";
    cp = it_spawn("cp-wrong", argv, IT_STDIN_NULL);
    ck_assert(it_wait_lines("cp-wrong.err", 4, 5000, "kubernetes: list", "certificate", NULL) >= 4);
    ck_assert_int_eq(it_count_lines("cp-wrong.err", "mesh table derived", NULL), 0);
    ck_assert_int_eq(it_stop(cp, 5000), 0);
    argv[3] = "cp.yaml";
    cp = it_spawn("cp", argv, IT_STDIN_NULL);
    ck_assert(it_wait_lines("cp.err", 1, 5000, "watching namespaces",
                            "at https://127.0.0.1:", NULL) >= 1);
    ck_assert_msg(derived("2 destinations (1 services meshed", 5000), "no first table");
    ck_assert_int_eq(it_stop(cp, 5000), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("cp_k8s_watch", "watch", NULL, setup, it_teardown, 60,
                         test_k8s_watch_end_to_end, test_k8s_in_cluster);
}

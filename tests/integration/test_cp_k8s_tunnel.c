/* The tollgate.dev/tunnel annotation end to end on loopback: a Service in the stand-in API
 * server (tests/k8s/apiserver.py), tollgate-cp with kubernetes.discovery deriving the mesh
 * table, and sidecar B getting it over its stream: B's /config_dump shows the Service's mode
 * on its ClusterIP and its endpoint, a new value replaces it, and a value that is not a mode
 * is logged by tollgate-cp with the Service's name and leaves the Service in the mesh without
 * one (never fatal). */
#include "harness.h"
#include "it_k8s.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cp_port;
static struct it_k8s_pair pair;

static void setup(void)
{
    it_k8s_two_pods("{\"app\":\"api\"}", "{\"app\":\"web\"}");
    /* the namespace's pods are meshed: their endpoints become destinations */
    it_k8s_put("namespaces",
               "{\"metadata\":{\"name\":\"default\",\"labels\":{\"tollgate.dev/inject\":"
               "\"enabled\"}}}");
    it_k8s_put("endpointslices",
               "{\"metadata\":{\"name\":\"web-a\",\"namespace\":\"default\",\"labels\":"
               "{\"kubernetes.io/service-name\":\"web\"}},\"addressType\":\"IPv4\",\"ports\":"
               "[{\"name\":\"tcp-web\",\"port\":8080,\"protocol\":\"TCP\"}],\"endpoints\":"
               "[{\"addresses\":[\"10.1.0.11\"],\"conditions\":{\"ready\":true},\"targetRef\":"
               "{\"kind\":\"Pod\",\"namespace\":\"default\",\"name\":\"web-0\"}}]}");
    IT_FREE_PORTS(&cp_port);
    it_write_file("mesh.yaml", "mesh: {outside: passthrough}\n");
    it_k8s_write_cp("cp.yaml", cp_port, 0, "", "");
    pair = (struct it_k8s_pair){0};
    it_k8s_pair_setup(cp_port, &pair);
}

/* Service default/web (ClusterIP 10.96.0.11, port 8080) annotated tollgate.dev/tunnel: value
 * (NULL: no annotation). */
static void service(const char *value)
{
    char j[1024], ann[128] = "";

    if (value != NULL)
        snprintf(ann, sizeof(ann), ",\"annotations\":{\"tollgate.dev/tunnel\":\"%s\"}", value);
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"web\",\"namespace\":\"default\"%s},\"spec\":"
             "{\"clusterIP\":\"10.96.0.11\",\"ports\":[{\"name\":\"tcp-web\",\"port\":8080,"
             "\"protocol\":\"TCP\"}]}}",
             ann);
    it_k8s_put("services", j);
}

/* B's pushed mesh table as "DESTINATIONS ADDRESS:PORT=MODE ...": the count and each
 * destination with a mode of its own, from /config_dump. */
static void b_modes(char *dst, size_t cap)
{
    char *body = NULL;
    json_t *j, *mesh, *set;
    size_t used;

    ck_assert_int_eq(it_http(pair.b_admin, "GET", "/config_dump", &body), 200);
    ck_assert_ptr_nonnull(j = json_loads(body, 0, NULL));
    free(body);
    mesh = json_object_get(j, "mesh");
    set = json_object_get(mesh, "tunnel");
    used = (size_t)snprintf(dst, cap, "%lld",
                            (long long)json_integer_value(json_object_get(mesh, "destinations")));
    for (size_t i = 0; i < json_array_size(set) && used < cap; i++) {
        const json_t *d = json_array_get(set, i);

        used += (size_t)snprintf(dst + used, cap - used, " %s:%lld=%s",
                                 json_string_value(json_object_get(d, "address")),
                                 (long long)json_integer_value(json_object_get(d, "port")),
                                 json_string_value(json_object_get(d, "tunnel")));
    }
    json_decref(j);
}

/* Polls B's dump until it says want (the push takes a debounce and a round trip). */
static void b_modes_become(const char *want)
{
    uint64_t end = it_now_ms() + 10000;
    char got[256] = "";

    while (it_now_ms() < end) {
        b_modes(got, sizeof(got));
        if (strcmp(got, want) == 0)
            return;
        it_sleep_ms(50);
    }
    ck_abort_msg("B's mesh table: got \"%s\", want \"%s\"", got, want);
}

START_TEST(test_k8s_tunnel_annotation_reaches_the_sidecar)
{
    const char *cp_argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    struct it_proc *cp = it_spawn("cp", cp_argv, IT_STDIN_NULL);

    cp->must_exit_0 = true;
    service("auto");
    ck_assert_msg(it_wait_port(cp_port, 10000), "tollgate-cp did not listen");
    it_sidecar_start("b", "b.yaml", pair.b_admin, 0);
    b_modes_become("2 10.1.0.11:8080=auto 10.96.0.11:8080=auto");

    service("off"); /* changed: pushed again */
    b_modes_become("2 10.1.0.11:8080=off 10.96.0.11:8080=off");

    service("yes"); /* not a mode: logged with the Service's name, the Service stays */
    ck_assert_msg(it_wait_file_contains("cp.err",
                                        "kubernetes: services default/web: annotation "
                                        "tollgate.dev/tunnel \"yes\" is not off, auto or on: "
                                        "ignored",
                                        5000),
                  "the bad annotation was not logged");
    b_modes_become("2");
    ck_assert_int_eq(it_stop(cp, 10000), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    return it_k8s_suite("cp_k8s_tunnel", test_k8s_tunnel_annotation_reaches_the_sidecar, setup,
                        it_teardown);
}

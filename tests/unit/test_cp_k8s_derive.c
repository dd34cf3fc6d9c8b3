/* Secure naming derived from the cluster (controlplane/k8s/k8s_derive.c) and the objects it
 * reads (k8s_objects.c): JSON in the API reference's shapes in, mesh table out, no I/O. The
 * table is rendered one destination a line, "ADDRESS PORT PROTO ID[,ID]", so each test reads
 * as the table it expects. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_derive.h"

#define MAX_OBJS 32

struct world {
    struct tg_k8s_obj *objs[TG_K8S_NKINDS][MAX_OBJS];
    size_t n[TG_K8S_NKINDS];
};

static struct world w;
static char out[8192];

static void setup(void)
{
    memset(&w, 0, sizeof(w));
}

static void teardown(void)
{
    for (int k = 0; k < TG_K8S_NKINDS; k++)
        for (size_t i = 0; i < w.n[k]; i++)
            tg_k8s_obj_free(w.objs[k][i]);
}

static void add(enum tg_k8s_kind k, const char *json)
{
    char err[TG_ERRLEN] = "";
    struct tg_k8s_obj *o;

    ck_assert_msg(tg_k8s_obj_parse(k, json, strlen(json), &o, err) == 0, "%s: %s", json, err);
    /* replace by key, as the cache does */
    for (size_t i = 0; i < w.n[k]; i++) {
        if (strcmp(w.objs[k][i]->key, o->key) == 0) {
            tg_k8s_obj_free(w.objs[k][i]);
            w.objs[k][i] = o;
            return;
        }
    }
    ck_assert(w.n[k] < MAX_OBJS);
    w.objs[k][w.n[k]++] = o;
}

static void del(enum tg_k8s_kind k, const char *key)
{
    for (size_t i = 0; i < w.n[k]; i++) {
        if (strcmp(w.objs[k][i]->key, key) == 0) {
            tg_k8s_obj_free(w.objs[k][i]);
            w.objs[k][i] = w.objs[k][--w.n[k]];
            return;
        }
    }
    ck_abort_msg("no %s", key);
}

static void ns(const char *name, bool inject)
{
    char j[512];

    snprintf(j, sizeof(j),
             "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\","
             "\"resourceVersion\":\"1\",\"labels\":{%s}}}",
             name, inject ? "\"tollgate.dev/inject\":\"enabled\"" : "");
    add(TG_K8S_NAMESPACE, j);
}

/* sidecar: the container list holds tollgate-proxy (as an init container, native sidecar) */
static void pod(const char *nsn, const char *name, const char *sa, const char *ips, bool sidecar)
{
    char j[1024];

    snprintf(j, sizeof(j),
             "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"%s\",\"resourceVersion\":\"7\"},\"spec\":{%s%s%s"
             "\"containers\":[{\"name\":\"app\",\"image\":\"app:1\"}]%s},"
             "\"status\":{\"phase\":\"Running\",\"podIPs\":[%s]}}",
             name, nsn, sa ? "\"serviceAccountName\":\"" : "", sa ? sa : "", sa ? "\"," : "",
             sidecar ? ",\"initContainers\":[{\"name\":\"tollgate-proxy\",\"image\":\"t:1\","
                       "\"restartPolicy\":\"Always\"}]"
                     : "",
             ips);
    add(TG_K8S_POD, j);
}

/* tunnel: the value of the annotation tollgate.dev/tunnel (a JSON string's body); NULL: none */
static void svc_tunnel(const char *nsn, const char *name, const char *tunnel,
                       const char *cluster_ips, const char *ports)
{
    char j[1024], ann[128] = "";

    if (tunnel != NULL)
        snprintf(ann, sizeof(ann), ",\"annotations\":{\"tollgate.dev/tunnel\":\"%s\"}", tunnel);
    snprintf(j, sizeof(j),
             "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"%s\"%s},\"spec\":{\"clusterIPs\":[%s],\"ports\":[%s]}}",
             name, nsn, ann, cluster_ips, ports);
    add(TG_K8S_SERVICE, j);
}

static void svc(const char *nsn, const char *name, const char *cluster_ips, const char *ports)
{
    svc_tunnel(nsn, name, NULL, cluster_ips, ports);
}

static void slice(const char *nsn, const char *name, const char *service, const char *type,
                  const char *ports, const char *endpoints)
{
    char j[2048];

    snprintf(j, sizeof(j),
             "{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\","
             "\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\",\"labels\":"
             "{\"kubernetes.io/service-name\":\"%s\"}},\"addressType\":\"%s\","
             "\"ports\":[%s],\"endpoints\":[%s]}",
             name, nsn, service, type, ports, endpoints);
    add(TG_K8S_SLICE, j);
}

static int cmp_obj(const void *a, const void *b)
{
    return strcmp((*(struct tg_k8s_obj *const *)a)->key, (*(struct tg_k8s_obj *const *)b)->key);
}

/* Derives (and checks it derives the same twice), renders into out. */
static const char *derive(struct tg_k8s_derive_stats *st)
{
    struct tg_k8s_list lists[TG_K8S_NKINDS];
    struct tg_resource *r;
    size_t used = 0;

    for (int k = 0; k < TG_K8S_NKINDS; k++) {
        qsort(w.objs[k], w.n[k], sizeof(w.objs[k][0]), cmp_obj);
        lists[k] = (struct tg_k8s_list){w.objs[k], w.n[k]};
    }
    ck_assert_int_eq(tg_k8s_derive(lists, "mesh.local", &r, st), 0);
    out[0] = '\0';
    for (size_t i = 0; i < r->u.mesh_table.n_destinations; i++) {
        const struct tg_res_destination *d = &r->u.mesh_table.destinations[i];

        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s %u %s ", d->address, d->port,
                                 d->protocol == TG_RES_HTTP ? "http" : "tcp");
        for (size_t k = 0; k < d->expected_ids.n; k++)
            used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%s", k ? "," : "",
                                     d->expected_ids.v[k] + strlen("spiffe://mesh.local/"));
        if (d->tunnel != TG_TUNNEL_UNSET)
            used += (size_t)snprintf(out + used, sizeof(out) - used, " tunnel=%s",
                                     tg_config_tunnel_name(d->tunnel));
        used += (size_t)snprintf(out + used, sizeof(out) - used, "\n");
    }
    ck_assert(!r->u.mesh_table.outside_refuse);
    tg_resource_free(r);
    return out;
}

#define EP(ip, podname, ready)                                                                     \
    "{\"addresses\":[\"" ip "\"],\"conditions\":{\"ready\":" ready "},\"targetRef\":"              \
    "{\"kind\":\"Pod\",\"namespace\":\"prod\",\"name\":\"" podname "\"}}"

/* Two ports, two slices (a Service's endpoints split across slices), one meshed namespace. */
static void two_ports_two_slices(void)
{
    ns("prod", true);
    pod("prod", "web-1", "web", "{\"ip\":\"10.1.0.11\"}", true);
    pod("prod", "web-2", "web", "{\"ip\":\"10.1.0.12\"}", true);
    svc("prod", "web", "\"10.96.0.10\"",
        "{\"name\":\"http\",\"port\":80,\"targetPort\":8080,\"protocol\":\"TCP\"},"
        "{\"name\":\"metrics\",\"port\":9090,\"protocol\":\"TCP\"}");
    slice("prod", "web-abc", "web", "IPv4",
          "{\"name\":\"http\",\"port\":8080,\"protocol\":\"TCP\"},"
          "{\"name\":\"metrics\",\"port\":9090,\"protocol\":\"TCP\"}",
          EP("10.1.0.11", "web-1", "true"));
    slice("prod", "web-def", "web", "IPv4",
          "{\"name\":\"http\",\"port\":8080,\"protocol\":\"TCP\"},"
          "{\"name\":\"metrics\",\"port\":9090,\"protocol\":\"TCP\"}",
          EP("10.1.0.12", "web-2", "true"));
}

START_TEST(test_k8s_service_two_ports_two_slices)
{
    struct tg_k8s_derive_stats st;

    two_ports_two_slices();
    ck_assert_str_eq(derive(&st), "10.1.0.11 8080 http ns/prod/sa/web\n"
                                  "10.1.0.11 9090 tcp ns/prod/sa/web\n"
                                  "10.1.0.12 8080 http ns/prod/sa/web\n"
                                  "10.1.0.12 9090 tcp ns/prod/sa/web\n"
                                  "10.96.0.10 80 http ns/prod/sa/web\n"
                                  "10.96.0.10 9090 tcp ns/prod/sa/web\n");
    ck_assert_uint_eq(st.destinations, 6);
    ck_assert_uint_eq(st.services_meshed, 1);
}
END_TEST

START_TEST(test_k8s_pod_changes_service_account)
{
    two_ports_two_slices();
    pod("prod", "web-2", "web-v2", "{\"ip\":\"10.1.0.12\"}", true);
    ck_assert_str_eq(derive(NULL), "10.1.0.11 8080 http ns/prod/sa/web\n"
                                   "10.1.0.11 9090 tcp ns/prod/sa/web\n"
                                   "10.1.0.12 8080 http ns/prod/sa/web-v2\n"
                                   "10.1.0.12 9090 tcp ns/prod/sa/web-v2\n"
                                   "10.96.0.10 80 http ns/prod/sa/web,ns/prod/sa/web-v2\n"
                                   "10.96.0.10 9090 tcp ns/prod/sa/web,ns/prod/sa/web-v2\n");
    /* and the pod going away: its slice loses it, then the Pod is deleted */
    slice("prod", "web-def", "web", "IPv4", "{\"name\":\"http\",\"port\":8080}", "");
    del(TG_K8S_POD, "prod/web-2");
    ck_assert_str_eq(derive(NULL), "10.1.0.11 8080 http ns/prod/sa/web\n"
                                   "10.1.0.11 9090 tcp ns/prod/sa/web\n"
                                   "10.96.0.10 80 http ns/prod/sa/web\n"
                                   "10.96.0.10 9090 tcp ns/prod/sa/web\n");
}
END_TEST

START_TEST(test_k8s_unready_endpoint_is_left_out)
{
    struct tg_k8s_derive_stats st;

    two_ports_two_slices();
    slice("prod", "web-def", "web", "IPv4",
          "{\"name\":\"http\",\"port\":8080,\"protocol\":\"TCP\"}",
          EP("10.1.0.12", "web-2", "false"));
    ck_assert_str_eq(derive(&st), "10.1.0.11 8080 http ns/prod/sa/web\n"
                                  "10.1.0.11 9090 tcp ns/prod/sa/web\n"
                                  "10.96.0.10 80 http ns/prod/sa/web\n"
                                  "10.96.0.10 9090 tcp ns/prod/sa/web\n");
    ck_assert_uint_eq(st.endpoints_outside, 0);
}
END_TEST

/* Namespace not labelled: only the pod that carries the sidecar is meshed; the other is
 * outside, and the ClusterIP expects the meshed one only (a mixed Service, counted). */
START_TEST(test_k8s_pod_without_sidecar_is_outside)
{
    struct tg_k8s_derive_stats st;

    two_ports_two_slices();
    ns("prod", false);
    pod("prod", "web-2", "web2", "{\"ip\":\"10.1.0.12\"}", false);
    pod("prod", "web-1", "web", "{\"ip\":\"10.1.0.11\"}", true);
    ck_assert_str_eq(derive(&st), "10.1.0.11 8080 http ns/prod/sa/web\n"
                                  "10.1.0.11 9090 tcp ns/prod/sa/web\n"
                                  "10.96.0.10 80 http ns/prod/sa/web\n"
                                  "10.96.0.10 9090 tcp ns/prod/sa/web\n");
    ck_assert_uint_eq(st.endpoints_outside, 1);
    ck_assert_uint_eq(st.services_mixed, 1);
    /* no sidecar anywhere: nothing at all, the ClusterIP included */
    pod("prod", "web-1", "web", "{\"ip\":\"10.1.0.11\"}", false);
    ck_assert_str_eq(derive(&st), "");
    ck_assert_uint_eq(st.services_meshed, 0);
    /* labelled namespace: meshed, unless the pod opts out */
    ns("prod", true);
    add(TG_K8S_POD, "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"prod\",\"annotations\":"
                    "{\"tollgate.dev/inject\":\"false\"}},\"spec\":{\"serviceAccountName\":"
                    "\"web\",\"containers\":[]},\"status\":{\"podIP\":\"10.1.0.11\"}}");
    ck_assert_str_eq(derive(&st), "10.1.0.12 8080 http ns/prod/sa/web2\n"
                                  "10.1.0.12 9090 tcp ns/prod/sa/web2\n"
                                  "10.96.0.10 80 http ns/prod/sa/web2\n"
                                  "10.96.0.10 9090 tcp ns/prod/sa/web2\n");
}
END_TEST

START_TEST(test_k8s_dual_stack_cluster_ips)
{
    ns("prod", true);
    pod("prod", "db-0", NULL, "{\"ip\":\"10.1.0.20\"},{\"ip\":\"fd00:1::20\"}", false);
    svc("prod", "db", "\"10.96.0.30\",\"fd00:96:0:0::30\"", "{\"name\":\"tcp-pg\",\"port\":5432}");
    slice("prod", "db-v4", "db", "IPv4", "{\"name\":\"tcp-pg\",\"port\":5432}",
          EP("10.1.0.20", "db-0", "true"));
    slice("prod", "db-v6", "db", "IPv6", "{\"name\":\"tcp-pg\",\"port\":5432}",
          EP("fd00:1:0::20", "db-0", "null"));
    ck_assert_str_eq(derive(NULL), "10.1.0.20 5432 tcp ns/prod/sa/default\n"
                                   "10.96.0.30 5432 tcp ns/prod/sa/default\n"
                                   "fd00:1::20 5432 tcp ns/prod/sa/default\n"
                                   "fd00:96::30 5432 tcp ns/prod/sa/default\n");
}
END_TEST

START_TEST(test_k8s_headless_service_endpoints_only)
{
    ns("prod", true);
    pod("prod", "kafka-0", "kafka", "{\"ip\":\"10.1.0.40\"}", true);
    add(TG_K8S_SERVICE, "{\"metadata\":{\"name\":\"kafka\",\"namespace\":\"prod\"},\"spec\":"
                        "{\"clusterIP\":\"None\",\"clusterIPs\":[\"None\"],\"ports\":"
                        "[{\"name\":\"broker\",\"port\":9092}]}}");
    slice("prod", "kafka-x", "kafka", "IPv4", "{\"name\":\"broker\",\"port\":9092}",
          EP("10.1.0.40", "kafka-0", "true"));
    ck_assert_str_eq(derive(NULL), "10.1.0.40 9092 tcp ns/prod/sa/kafka\n");
}
END_TEST

/* appProtocol beats the name; the name's prefix up to '-' counts; HTTP/2 and gRPC are piped
 * as tcp (the sidecar parses HTTP/1.1 only); UDP is not the mesh's. */
START_TEST(test_k8s_app_protocol_and_port_names)
{
    ns("prod", true);
    pod("prod", "p", "p", "{\"ip\":\"10.1.0.50\"}", true);
    svc("prod", "p", "\"10.96.0.50\"",
        "{\"name\":\"http-web\",\"port\":1},{\"name\":\"web\",\"port\":2,\"appProtocol\":"
        "\"http\"},{\"name\":\"http\",\"port\":3,\"appProtocol\":\"kubernetes.io/h2c\"},"
        "{\"name\":\"grpc\",\"port\":4},{\"name\":\"http2\",\"port\":5},{\"port\":6},"
        "{\"name\":\"dns\",\"port\":53,\"protocol\":\"UDP\"},{\"name\":\"HTTP\",\"port\":7}");
    slice("prod", "p-1", "p", "IPv4", "{\"name\":\"web\",\"port\":2,\"appProtocol\":\"http\"}",
          EP("10.1.0.50", "p", "true"));
    ck_assert_str_eq(derive(NULL), "10.1.0.50 2 http ns/prod/sa/p\n"
                                   "10.96.0.50 1 http ns/prod/sa/p\n"
                                   "10.96.0.50 2 http ns/prod/sa/p\n"
                                   "10.96.0.50 3 tcp ns/prod/sa/p\n"
                                   "10.96.0.50 4 tcp ns/prod/sa/p\n"
                                   "10.96.0.50 5 tcp ns/prod/sa/p\n"
                                   "10.96.0.50 6 tcp ns/prod/sa/p\n"
                                   "10.96.0.50 7 http ns/prod/sa/p\n");
}
END_TEST

/* tollgate.dev/tunnel on a Service: its mode on every destination it gives; never on for
 * an http port (off); a pod port two Services claim with different modes: unset. */
START_TEST(test_k8s_tunnel_annotation)
{
    ns("prod", true);
    pod("prod", "db", "db", "{\"ip\":\"10.1.0.70\"}", true);
    svc_tunnel("prod", "db", "on", "\"10.96.0.70\"",
               "{\"name\":\"pg\",\"port\":5432},{\"name\":\"http-admin\",\"port\":80}");
    svc_tunnel("prod", "db-ro", "auto", "\"10.96.0.71\"", "{\"name\":\"pg\",\"port\":5432}");
    svc("prod", "db-any", "\"10.96.0.72\"", "{\"name\":\"pg\",\"port\":5432}");
    slice("prod", "db-1", "db", "IPv4", "{\"name\":\"pg\",\"port\":5432}",
          EP("10.1.0.70", "db", "true"));
    slice("prod", "db-ro-1", "db-ro", "IPv4", "{\"name\":\"pg\",\"port\":5432}",
          EP("10.1.0.70", "db", "true"));
    ck_assert_str_eq(derive(NULL), "10.1.0.70 5432 tcp ns/prod/sa/db\n" /* on and auto: unset */
                                   "10.96.0.70 80 http ns/prod/sa/db tunnel=off\n"
                                   "10.96.0.70 5432 tcp ns/prod/sa/db tunnel=on\n"
                                   "10.96.0.71 5432 tcp ns/prod/sa/db tunnel=auto\n");
    /* both Services of the pod port agree: kept */
    svc_tunnel("prod", "db-ro", "on", "\"10.96.0.71\"", "{\"name\":\"pg\",\"port\":5432}");
    ck_assert_str_eq(derive(NULL), "10.1.0.70 5432 tcp ns/prod/sa/db tunnel=on\n"
                                   "10.96.0.70 80 http ns/prod/sa/db tunnel=off\n"
                                   "10.96.0.70 5432 tcp ns/prod/sa/db tunnel=on\n"
                                   "10.96.0.71 5432 tcp ns/prod/sa/db tunnel=on\n");
}
END_TEST

/* A value that is not a mode: the Service is kept, unset, and its warning names the value
 * (logged by the watch with the Service's name), one printable line. */
static const struct {
    const char *value, *warning;
} tunnel_bad[] = {
    {"yes", "annotation tollgate.dev/tunnel \"yes\" is not off, auto or on: ignored"},
    {"On", "annotation tollgate.dev/tunnel \"On\" is not off, auto or on: ignored"},
    {"", "annotation tollgate.dev/tunnel \"\" is not off, auto or on: ignored"},
    {"on\\n\\u001b[2J", "annotation tollgate.dev/tunnel \"on??[2J\" is not off"},
};

START_TEST(test_k8s_tunnel_annotation_bad_value)
{
    const struct tg_k8s_obj *o;

    svc_tunnel("prod", "web", tunnel_bad[_i].value, "\"10.96.0.80\"", "{\"port\":80}");
    o = w.objs[TG_K8S_SERVICE][0];
    ck_assert_int_eq(o->u.svc.tunnel, TG_TUNNEL_UNSET);
    ck_assert_ptr_nonnull(o->warning);
    ck_assert_msg(strncmp(o->warning, tunnel_bad[_i].warning, strlen(tunnel_bad[_i].warning)) == 0,
                  "%s", o->warning);
    svc_tunnel("prod", "web", "off", "\"10.96.0.80\"", "{\"port\":80}"); /* fixed: no warning */
    ck_assert_int_eq(w.objs[TG_K8S_SERVICE][0]->u.svc.tunnel, TG_TUNNEL_OFF);
    ck_assert_ptr_null(w.objs[TG_K8S_SERVICE][0]->warning);
}
END_TEST

/* Endpoints without a Pod reference, slices of no Service, finished pods: nothing. */
START_TEST(test_k8s_unknown_pods_are_outside)
{
    ns("prod", true);
    svc("prod", "ext", "\"10.96.0.60\"", "{\"port\":443}");
    slice("prod", "ext-1", "ext", "IPv4", "{\"port\":443}",
          "{\"addresses\":[\"192.0.2.1\"]},"
          "{\"addresses\":[\"10.1.0.61\"],\"targetRef\":{\"kind\":\"Pod\",\"name\":\"gone\"}}");
    add(TG_K8S_POD, "{\"metadata\":{\"name\":\"done\",\"namespace\":\"prod\"},\"spec\":"
                    "{\"containers\":[]},\"status\":{\"phase\":\"Succeeded\",\"podIP\":"
                    "\"10.1.0.62\"}}");
    slice("prod", "ext-2", "ext", "IPv4", "{\"port\":443}", EP("10.1.0.62", "done", "true"));
    ck_assert_str_eq(derive(NULL), "");
}
END_TEST

/* The overlay (hand-written mesh file) wins where it names the same address and port. */
START_TEST(test_k8s_merge_overlay_wins)
{
    struct tg_k8s_list lists[TG_K8S_NKINDS];
    struct tg_resource *d, *o = tg_resource_new(TG_RES_MESH_TABLE), *m;
    static const char *const vm_id[] = {"spiffe://mesh.local/ns/vm/sa/legacy"};
    struct tg_res_mesh_table *t = &o->u.mesh_table;

    two_ports_two_slices();
    for (int k = 0; k < TG_K8S_NKINDS; k++) {
        qsort(w.objs[k], w.n[k], sizeof(w.objs[k][0]), cmp_obj);
        lists[k] = (struct tg_k8s_list){w.objs[k], w.n[k]};
    }
    ck_assert_int_eq(tg_k8s_derive(lists, "mesh.local", &d, NULL), 0);
    t->destinations = tg_resource_array(o, 2, sizeof(*t->destinations));
    t->destinations[0].address = tg_resource_strdup(o, "10.96.0.10"); /* as a derived one */
    t->destinations[0].port = 80;
    t->destinations[0].tunnel = TG_TUNNEL_AUTO; /* kept with the rest of the overlay's */
    ck_assert_int_eq(tg_resource_strlist(o, &t->destinations[0].expected_ids, vm_id, 1), 0);
    t->destinations[1].address = tg_resource_strdup(o, "10.0.0.0/8"); /* kept beside /32s */
    ck_assert_int_eq(tg_resource_strlist(o, &t->destinations[1].expected_ids, vm_id, 1), 0);
    t->n_destinations = 2;
    t->outside_refuse = true;
    ck_assert_int_eq(tg_k8s_mesh_merge(d, o, &m), 0);
    ck_assert(m->u.mesh_table.outside_refuse);
    ck_assert_uint_eq(m->u.mesh_table.n_destinations, 7);
    ck_assert_str_eq(m->u.mesh_table.destinations[0].address, "10.0.0.0/8");
    ck_assert_str_eq(m->u.mesh_table.destinations[5].address, "10.96.0.10");
    ck_assert_uint_eq(m->u.mesh_table.destinations[5].port, 80);
    ck_assert_str_eq(m->u.mesh_table.destinations[5].expected_ids.v[0], vm_id[0]);
    ck_assert_uint_eq(m->u.mesh_table.destinations[5].expected_ids.n, 1);
    ck_assert_int_eq(m->u.mesh_table.destinations[5].tunnel, TG_TUNNEL_AUTO);
    ck_assert_int_eq(m->u.mesh_table.destinations[0].tunnel, TG_TUNNEL_UNSET);
    tg_resource_free(m);
    ck_assert_int_eq(tg_k8s_mesh_merge(NULL, o, &m), 0); /* no cluster yet: the overlay */
    ck_assert_uint_eq(m->u.mesh_table.n_destinations, 2);
    tg_resource_free(m);
    tg_resource_free(d);
    tg_resource_free(o);
}
END_TEST

static const struct {
    enum tg_k8s_kind kind;
    const char *json, *err;
} bad_objects[] = {
    {TG_K8S_POD, "[]", "not an object"},
    {TG_K8S_POD, "{\"metadata\":{\"name\":\"Web\",\"namespace\":\"p\"},\"spec\":{}}",
     "metadata.name: not a DNS-1123 name"},
    {TG_K8S_POD,
     "{\"metadata\":{\"name\":\"w\",\"namespace\":\"p\"},\"spec\":"
     "{\"serviceAccountName\":\"a/../b\"}}",
     "spec.serviceAccountName"},
    {TG_K8S_POD,
     "{\"metadata\":{\"name\":\"w\",\"namespace\":\"p\"},\"spec\":{},\"status\":"
     "{\"podIP\":\"10.0.0.999\"}}",
     "status.podIP: not a numeric address"},
    {TG_K8S_SERVICE,
     "{\"metadata\":{\"name\":\"s\",\"namespace\":\"p\"},\"spec\":{\"ports\":"
     "[{\"port\":70000}]}}",
     "spec.ports: port not an integer 1..65535"},
    {TG_K8S_SERVICE,
     "{\"metadata\":{\"name\":\"s\",\"namespace\":\"p\"},\"spec\":"
     "{\"clusterIPs\":[\"web.example\"]}}",
     "spec.clusterIPs"},
    {TG_K8S_SLICE,
     "{\"metadata\":{\"name\":\"s\",\"namespace\":\"p\"},\"addressType\":"
     "\"IPv4\",\"endpoints\":[{\"addresses\":[\"fd00::1\"]}]}",
     "endpoints[].addresses: not a numeric address of its family"},
    {TG_K8S_SLICE,
     "{\"metadata\":{\"name\":\"s\",\"namespace\":\"p\"},\"addressType\":"
     "\"IPv4\",\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],\"conditions\":"
     "{\"ready\":\"yes\"}}]}",
     "conditions.ready: not a boolean"},
    {TG_K8S_SLICE, "{\"metadata\":{\"name\":\"s\",\"namespace\":\"p\"},\"addressType\":\"X\"}",
     "addressType"},
    {TG_K8S_NAMESPACE, "{\"metadata\":{\"name\":\"n\",\"namespace\":\"x\"}}",
     "metadata.namespace: set on a Namespace"},
    {TG_K8S_NAMESPACE, "{\"metadata\":{\"name\":\"n\",\"labels\":[]}}",
     "metadata.labels: not an object"},
};

START_TEST(test_k8s_bad_objects_named)
{
    struct tg_k8s_obj *o = NULL;
    char err[TG_ERRLEN] = "";
    const char *j = bad_objects[_i].json;

    ck_assert_int_eq(tg_k8s_obj_parse(bad_objects[_i].kind, j, strlen(j), &o, err), TG_EINVAL);
    ck_assert_msg(strstr(err, bad_objects[_i].err) != NULL, "%s: got \"%s\"", j, err);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE(
        "cp_k8s_derive", "derive", &tc, /* services, then pods, then the merge */
        test_k8s_service_two_ports_two_slices, test_k8s_dual_stack_cluster_ips,
        test_k8s_headless_service_endpoints_only, test_k8s_app_protocol_and_port_names,
        test_k8s_unready_endpoint_is_left_out, test_k8s_pod_changes_service_account,
        test_k8s_pod_without_sidecar_is_outside, test_k8s_unknown_pods_are_outside,
        test_k8s_tunnel_annotation, test_k8s_merge_overlay_wins);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_k8s_bad_objects_named, 0, TG_NELEM(bad_objects));
    tcase_add_loop_test(tc, test_k8s_tunnel_annotation_bad_value, 0, TG_NELEM(tunnel_bad));
    return s;
}

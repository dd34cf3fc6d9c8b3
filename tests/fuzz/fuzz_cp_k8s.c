/* Fuzzing of what tollgate-cp reads from the Kubernetes API (controlplane/k8s/): the first
 * byte picks the kind (Namespace, Pod, Service, EndpointSlice, the policy resources, the
 * trust-root ConfigMap), the rest is the object's JSON; a policy resource's spec is compiled.
 * Each must parse or be refused with one line, without crashing or leaking; what parses is
 * then fed, with a fixed Namespace and Pod, to the derivation, whose output must hold only
 * SPIFFE IDs of the trust domain, be sorted and free of duplicates, and carry only tunnel
 * modes a sidecar accepts. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "k8s_derive.h"
#include "k8s_policy.h"
#include "tollgate/spiffe.h"

/* The cluster the fuzzed object joins: it replaces the fixed object of its kind. */
static const char *const fixed[TG_K8S_NDISCOVERY] = {
    "{\"metadata\":{\"name\":\"prod\",\"labels\":{\"tollgate.dev/inject\":\"enabled\"}}}",
    "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"prod\"},\"spec\":"
    "{\"serviceAccountName\":\"web\"},\"status\":{\"podIP\":\"10.1.0.11\"}}",
    "{\"metadata\":{\"name\":\"web\",\"namespace\":\"prod\"},\"spec\":{\"clusterIP\":"
    "\"10.96.0.10\",\"ports\":[{\"name\":\"http\",\"port\":80}]}}",
    "{\"metadata\":{\"name\":\"web-a\",\"namespace\":\"prod\",\"labels\":"
    "{\"kubernetes.io/service-name\":\"web\"}},\"addressType\":\"IPv4\",\"ports\":"
    "[{\"port\":8080}],\"endpoints\":[{\"addresses\":[\"10.1.0.11\"],\"targetRef\":"
    "{\"kind\":\"Pod\",\"name\":\"web-1\"}}]}",
};

static void check_table(const struct tg_resource *r)
{
    const struct tg_res_mesh_table *t = &r->u.mesh_table;

    for (size_t i = 0; i < t->n_destinations; i++) {
        const struct tg_res_destination *d = &t->destinations[i];
        unsigned char a[16];

        if (inet_pton(strchr(d->address, ':') ? AF_INET6 : AF_INET, d->address, a) != 1 ||
            d->port == 0 || d->port > 65535 || d->expected_ids.n == 0)
            abort();
        /* a mode the sidecar takes: never out of range, never on for http (it refuses that) */
        if (d->tunnel > TG_TUNNEL_ON || (d->protocol == TG_RES_HTTP && d->tunnel == TG_TUNNEL_ON))
            abort();
        for (size_t k = 0; k < d->expected_ids.n; k++) {
            struct tg_spiffe_id id;

            if (tg_spiffe_parse(d->expected_ids.v[k], &id, NULL) < 0 ||
                !tg_spiffe_in_domain(&id, "mesh.local"))
                abort();
            if (k > 0 && strcmp(d->expected_ids.v[k - 1], d->expected_ids.v[k]) >= 0)
                abort(); /* sorted, no duplicates */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_k8s_obj *objs[TG_K8S_NKINDS] = {NULL}, *o = NULL;
    struct tg_k8s_list lists[TG_K8S_NKINDS];
    struct tg_resource *r = NULL;
    char err[TG_ERRLEN] = "";
    enum tg_k8s_kind k;

    if (size < 1 || size > 256 * 1024)
        return 0;
    k = (enum tg_k8s_kind)(data[0] % TG_K8S_NKINDS);
    if (tg_k8s_obj_parse(k, (const char *)data + 1, size - 1, &o, err) < 0) {
        fuzz_check_err(err);
        return 0;
    }
    if (k >= TG_K8S_NDISCOVERY) { /* a policy resource, compiled; a ConfigMap: parsed is all */
        if (k <= TG_K8S_REVOKE &&
            tg_k8s_policy_compile(k, o->ns, o->name, o->u.policy.spec, &r, err) < 0)
            fuzz_check_err(err);
        tg_resource_free(r);
        tg_k8s_obj_free(o);
        return 0;
    }
    for (int i = 0; i < TG_K8S_NKINDS; i++) {
        if (i >= TG_K8S_NDISCOVERY) {
            lists[i] = (struct tg_k8s_list){NULL, 0};
            continue;
        }
        if (i == (int)k) {
            objs[i] = o;
        } else if (tg_k8s_obj_parse((enum tg_k8s_kind)i, fixed[i], strlen(fixed[i]), &objs[i],
                                    err) < 0) {
            abort();
        }
        lists[i] = (struct tg_k8s_list){&objs[i], 1};
    }
    if (tg_k8s_derive(lists, "mesh.local", &r, NULL) == 0) {
        check_table(r);
        tg_resource_free(r);
    }
    for (int i = 0; i < TG_K8S_NDISCOVERY; i++)
        tg_k8s_obj_free(objs[i]);
    return 0;
}

/* Secure naming derived from the cluster (k8s_derive.h). Every (address, port, identity)
 * claim becomes one row; rows are sorted, and each run of one address and port becomes a
 * destination. Sorting is what makes the output the same on every replica. */
#include "k8s_derive.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tollgate/spiffe.h"

struct row {
    int family;
    unsigned char addr[16];
    unsigned prefix;
    uint32_t port;
    bool http;
    enum tg_tunnel_mode tunnel;           /* derive: the Service's annotation */
    const char *id;                       /* derive: one identity per row */
    const struct tg_res_destination *dst; /* merge: the destination the row stands for */
    bool overlay;
    size_t seq; /* merge: order of input, the last tie-break */
};

struct rows {
    struct row *v;
    size_t n, cap;
};

static int rows_add(struct rows *r, const struct row *x)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct row *grown = realloc(r->v, cap * sizeof(*grown));

        if (grown == NULL)
            return TG_ENOMEM;
        r->v = grown;
        r->cap = cap;
    }
    r->v[r->n++] = *x;
    return 0;
}

static int addr_len(int family)
{
    return family == AF_INET ? 4 : 16;
}

static int cmp_place(const struct row *a, const struct row *b)
{
    int c;

    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    if ((c = memcmp(a->addr, b->addr, (size_t)addr_len(a->family))) != 0)
        return c;
    if (a->prefix != b->prefix)
        return a->prefix < b->prefix ? -1 : 1;
    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    return 0;
}

static int cmp_row(const void *pa, const void *pb)
{
    const struct row *a = pa, *b = pb;
    int c = cmp_place(a, b);

    if (c != 0)
        return c;
    if (a->overlay != b->overlay) /* merge: the overlay's first, it wins */
        return a->overlay ? -1 : 1;
    if (a->id != NULL && b->id != NULL && (c = strcmp(a->id, b->id)) != 0)
        return c;
    if (a->http != b->http)
        return (int)a->http - (int)b->http;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* "10.0.0.5" or "10.0.0.0/24", already checked by whoever made it. */
static bool parse_place(const char *s, struct row *r)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);

    if (n >= sizeof(host))
        return false;
    memcpy(host, s, n);
    host[n] = '\0';
    memset(r->addr, 0, sizeof(r->addr));
    r->family = strchr(host, ':') != NULL ? AF_INET6 : AF_INET;
    if (inet_pton(r->family, host, r->addr) != 1)
        return false;
    r->prefix = slash != NULL ? (unsigned)atoi(slash + 1) : (unsigned)addr_len(r->family) * 8;
    return true;
}

const struct tg_k8s_obj *tg_k8s_list_find(const struct tg_k8s_list *l, const char *key)
{
    size_t lo = 0, hi = l->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, l->v[mid]->key);

        if (c == 0)
            return l->v[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static bool is_http(const struct tg_k8s_port *p)
{
    const char *s = p->app_protocol[0] != '\0' ? p->app_protocol : p->name;
    size_t n = p->app_protocol[0] != '\0' ? strlen(s) : strcspn(s, "-");

    return (n == 4 && strncasecmp(s, "http", 4) == 0) ||
           (n == 18 && strncasecmp(s, "kubernetes.io/http", 18) == 0);
}

struct derive {
    const struct tg_k8s_list *lists;
    const struct tg_k8s_obj **slices; /* of a Service and an IP family, by namespace/service */
    size_t n_slices;
    const char *td;
    struct tg_resource *scratch; /* identities, freed at the end */
    struct rows rows;
    struct tg_k8s_derive_stats st;
};

/* The identity of the pod behind an endpoint, or NULL when it is outside the mesh. */
static const char *endpoint_id(struct derive *d, const struct tg_k8s_obj *slice,
                               const struct tg_k8s_endpoint *e, int *rc)
{
    char key[2 * TG_K8S_NAME_MAX + 2], id[TG_SPIFFE_MAX + 1];
    const struct tg_k8s_obj *pod, *ns;
    struct tg_spiffe_id parsed;
    const char *out;

    *rc = 0;
    if (e->pod == NULL)
        return NULL;
    snprintf(key, sizeof(key), "%s/%s", slice->ns, e->pod);
    if ((pod = tg_k8s_list_find(&d->lists[TG_K8S_POD], key)) == NULL || pod->u.pod.finished)
        return NULL;
    ns = tg_k8s_list_find(&d->lists[TG_K8S_NAMESPACE], slice->ns);
    if (!pod->u.pod.sidecar && !(ns != NULL && ns->u.ns.inject && !pod->u.pod.opt_out))
        return NULL;
    snprintf(id, sizeof(id), "spiffe://%s/ns/%s/sa/%s", d->td, pod->ns, pod->u.pod.service_account);
    if (tg_spiffe_parse(id, &parsed, NULL) < 0) {
        d->st.skipped++;
        return NULL;
    }
    if ((out = tg_resource_strdup(d->scratch, id)) == NULL)
        *rc = TG_ENOMEM;
    return out;
}

static int add_claim(struct derive *d, const char *address, uint32_t port, bool http,
                     enum tg_tunnel_mode tunnel, const char *id)
{
    struct row r = {.port = port, .http = http, .tunnel = tunnel, .id = id};

    if (!parse_place(address, &r)) {
        d->st.skipped++;
        return 0;
    }
    r.prefix = (unsigned)addr_len(r.family) * 8;
    return rows_add(&d->rows, &r);
}

/* Slices by (namespace, service name, key): a Service's slices are one run, found by a
 * binary search, so a derivation costs O((S + L) log L), not O(S * L). */
static int cmp_owner(const char *ns, const char *svc, const struct tg_k8s_obj *b)
{
    int c = strcmp(ns, b->ns);

    return c != 0 ? c : strcmp(svc, b->u.slice.service);
}

static int cmp_slice(const void *pa, const void *pb)
{
    const struct tg_k8s_obj *a = *(const struct tg_k8s_obj *const *)pa;
    const struct tg_k8s_obj *b = *(const struct tg_k8s_obj *const *)pb;
    int c = cmp_owner(a->ns, a->u.slice.service, b);

    return c != 0 ? c : strcmp(a->key, b->key);
}

static int index_slices(struct derive *d)
{
    const struct tg_k8s_list *l = &d->lists[TG_K8S_SLICE];

    if ((d->slices = calloc(l->n + 1, sizeof(*d->slices))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i]->u.slice.service != NULL && l->v[i]->u.slice.family != 0)
            d->slices[d->n_slices++] = l->v[i];
    if (d->n_slices > 0)
        qsort(d->slices, d->n_slices, sizeof(*d->slices), cmp_slice);
    return 0;
}

/* One Service: its slices' endpoints, then its ClusterIPs for every meshed endpoint. */
static int derive_service(struct derive *d, const struct tg_k8s_obj *svc)
{
    const struct tg_k8s_service *s = &svc->u.svc;
    size_t meshed = 0, outside = 0, lo = 0, hi = d->n_slices;
    int rc;

    if (s->external_name)
        return 0;
    while (lo < hi) { /* the first slice of this Service */
        size_t mid = lo + (hi - lo) / 2;

        if (cmp_owner(svc->ns, svc->name, d->slices[mid]) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < d->n_slices && cmp_owner(svc->ns, svc->name, d->slices[i]) == 0; i++) {
        const struct tg_k8s_obj *so = d->slices[i];
        const struct tg_k8s_slice *sl = &so->u.slice;

        for (size_t e = 0; e < sl->n_endpoints; e++) {
            const struct tg_k8s_endpoint *ep = &sl->endpoints[e];
            const char *id;

            if (!ep->ready)
                continue;
            if ((id = endpoint_id(d, so, ep, &rc)) == NULL) {
                if (rc < 0)
                    return rc;
                outside++;
                continue;
            }
            meshed++;
            for (size_t p = 0; p < sl->n_ports; p++) {
                if (sl->ports[p].proto != TG_K8S_TCP || sl->ports[p].port == 0)
                    continue;
                for (size_t a = 0; a < ep->addresses.n; a++)
                    if ((rc = add_claim(d, ep->addresses.v[a], sl->ports[p].port,
                                        is_http(&sl->ports[p]), s->tunnel, id)) < 0)
                        return rc;
            }
            for (size_t p = 0; p < s->n_ports; p++) {
                if (s->ports[p].proto != TG_K8S_TCP)
                    continue;
                for (size_t a = 0; a < s->cluster_ips.n; a++)
                    if ((rc = add_claim(d, s->cluster_ips.v[a], s->ports[p].port,
                                        is_http(&s->ports[p]), s->tunnel, id)) < 0)
                        return rc;
            }
        }
    }
    d->st.endpoints_outside += outside;
    d->st.services_meshed += meshed > 0;
    d->st.services_mixed += meshed > 0 && outside > 0;
    return 0;
}

/* Rows sorted by place: each run of one place becomes a destination (ids: the run's
 * distinct identities; http only if every row says http; the tunnel mode the rows agree on,
 * else unset, and never on for http: HTTP ports are not carried over tunnels yet). */
static int build(struct rows *rows, bool from_overlay_wins, struct tg_resource *out)
{
    struct tg_res_mesh_table *t = &out->u.mesh_table;
    size_t n = 0;

    for (size_t i = 0; i < rows->n; i++)
        n += i == 0 || cmp_place(&rows->v[i - 1], &rows->v[i]) != 0;
    if ((t->destinations = tg_resource_array(out, n, sizeof(*t->destinations))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0, end; i < rows->n; i = end) {
        struct tg_res_destination *dst = &t->destinations[t->n_destinations++];
        const struct row *r = &rows->v[i];
        char text[INET6_ADDRSTRLEN + 8];
        size_t ids = 0;

        for (end = i + 1; end < rows->n && cmp_place(r, &rows->v[end]) == 0; end++)
            ;
        inet_ntop(r->family, r->addr, text, sizeof(text));
        if (r->prefix != (unsigned)addr_len(r->family) * 8)
            snprintf(text + strlen(text), sizeof(text) - strlen(text), "/%u", r->prefix);
        if ((dst->address = tg_resource_strdup(out, text)) == NULL)
            return TG_ENOMEM;
        dst->port = r->port;
        if (from_overlay_wins) { /* merge: the first of the run is the one kept */
            const struct tg_res_destination *src = r->dst;

            dst->protocol = src->protocol;
            dst->tunnel = src->tunnel;
            if (tg_resource_strlist(out, &dst->expected_ids,
                                    (const char *const *)src->expected_ids.v,
                                    src->expected_ids.n) < 0)
                return TG_ENOMEM;
            continue;
        }
        dst->protocol = TG_RES_HTTP;
        dst->tunnel = r->tunnel;
        if ((dst->expected_ids.v = tg_resource_array(out, end - i, sizeof(char *))) == NULL)
            return TG_ENOMEM;
        for (size_t k = i; k < end; k++) {
            if (!rows->v[k].http)
                dst->protocol = TG_RES_TCP;
            if (rows->v[k].tunnel != r->tunnel)
                dst->tunnel = TG_TUNNEL_UNSET; /* Services that disagree: the listener's */
            if (ids > 0 && strcmp(dst->expected_ids.v[ids - 1], rows->v[k].id) == 0)
                continue;
            if ((dst->expected_ids.v[ids++] = tg_resource_strdup(out, rows->v[k].id)) == NULL)
                return TG_ENOMEM;
        }
        dst->expected_ids.n = ids;
        if (dst->protocol == TG_RES_HTTP && dst->tunnel == TG_TUNNEL_ON)
            dst->tunnel = TG_TUNNEL_OFF;
    }
    return 0;
}

int tg_k8s_derive(const struct tg_k8s_list lists[TG_K8S_NKINDS], const char *trust_domain,
                  struct tg_resource **out, struct tg_k8s_derive_stats *stats)
{
    struct derive d = {.lists = lists, .td = trust_domain};
    struct tg_resource *r = tg_resource_new(TG_RES_MESH_TABLE);
    int rc = TG_ENOMEM;

    if (r == NULL || (d.scratch = tg_resource_new(TG_RES_NONE)) == NULL ||
        (rc = index_slices(&d)) < 0)
        goto fail;
    for (size_t i = 0; i < lists[TG_K8S_SERVICE].n; i++)
        if ((rc = derive_service(&d, lists[TG_K8S_SERVICE].v[i])) < 0)
            goto fail;
    if (d.rows.n > 0) /* qsort wants a non-NULL base even for nothing */
        qsort(d.rows.v, d.rows.n, sizeof(*d.rows.v), cmp_row);
    if ((rc = build(&d.rows, false, r)) < 0)
        goto fail;
    d.st.destinations = r->u.mesh_table.n_destinations;
    if (stats != NULL)
        *stats = d.st;
    *out = r;
    free(d.rows.v);
    free(d.slices);
    tg_resource_free(d.scratch);
    return 0;
fail:
    free(d.rows.v);
    free(d.slices);
    tg_resource_free(d.scratch);
    tg_resource_free(r);
    return rc;
}

static int add_table(struct rows *rows, const struct tg_resource *res, bool overlay)
{
    const struct tg_res_mesh_table *t;
    int rc;

    if (res == NULL)
        return 0;
    t = &res->u.mesh_table;
    for (size_t i = 0; i < t->n_destinations; i++) {
        struct row r = {.port = t->destinations[i].port,
                        .dst = &t->destinations[i],
                        .overlay = overlay,
                        .seq = rows->n};

        if (!parse_place(t->destinations[i].address, &r))
            continue; /* both sources check their addresses: cannot happen */
        if ((rc = rows_add(rows, &r)) < 0)
            return rc;
    }
    return 0;
}

int tg_k8s_mesh_merge(const struct tg_resource *derived, const struct tg_resource *overlay,
                      struct tg_resource **out)
{
    struct tg_resource *r = tg_resource_new(TG_RES_MESH_TABLE);
    struct rows rows = {0};
    int rc = TG_ENOMEM;

    if (r == NULL)
        goto fail;
    if ((rc = add_table(&rows, derived, false)) < 0 || (rc = add_table(&rows, overlay, true)) < 0)
        goto fail;
    if (rows.n > 0)
        qsort(rows.v, rows.n, sizeof(*rows.v), cmp_row);
    if ((rc = build(&rows, true, r)) < 0)
        goto fail;
    r->u.mesh_table.outside_refuse = overlay != NULL && overlay->u.mesh_table.outside_refuse;
    free(rows.v);
    *out = r;
    return 0;
fail:
    free(rows.v);
    tg_resource_free(r);
    return rc;
}

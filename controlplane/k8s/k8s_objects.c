/* Kubernetes objects from the API's JSON into small structs (k8s_objects.h). Shapes as the
 * API reference gives them: v1 Namespace, v1 Pod, v1 Service, discovery.k8s.io/v1
 * EndpointSlice. */
#include "k8s_objects.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 10000 /* ports, endpoints, addresses, containers of one object */

static const char *const kind_names[TG_K8S_NKINDS] = {
    "Namespace",           "Pod",       "Service",    "EndpointSlice",
    "AuthorizationPolicy", "RateLimit", "Revocation", "ConfigMap"};

const char *tg_k8s_kind_name(enum tg_k8s_kind k)
{
    return (unsigned)k < TG_K8S_NKINDS ? kind_names[k] : "?";
}

struct parse {
    struct tg_k8s_obj *o;
    char *err;
};

static int bad(struct parse *p, const char *fmt, const char *field)
{
    return tg_err_set(p->err, TG_EINVAL, "%s %s: %s: %s", tg_k8s_kind_name(p->o->kind),
                      p->o->key != NULL ? p->o->key : "(unnamed)", field, fmt);
}

/* A DNS-1123 name: [a-z0-9] at both ends, [a-z0-9.-] inside, 1..max bytes. */
static bool dns_name(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") != n)
        return false;
    return s[0] != '-' && s[0] != '.' && s[n - 1] != '-' && s[n - 1] != '.';
}

/* An optional string member: "" when absent or null; a non-string is an error. */
static int opt_str(struct parse *p, const json_t *obj, const char *k, const char *field,
                   const char **out)
{
    const json_t *v = json_object_get(obj, k);

    *out = "";
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return bad(p, "not a string", field);
    if ((*out = tg_resource_strdup(p->o->arena, json_string_value(v))) == NULL)
        return TG_ENOMEM;
    return 0;
}

/* An optional member of type (JSON_OBJECT or JSON_ARRAY, at most MAX_ITEMS items): NULL
 * when absent or null; another type is an error. */
static int opt_member(struct parse *p, const json_t *obj, const char *k, const char *field,
                      json_type type, const json_t **out)
{
    const json_t *v = json_object_get(obj, k);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_typeof(v) != type)
        return bad(p, type == JSON_OBJECT ? "not an object" : "not an array", field);
    if (json_is_array(v) && json_array_size(v) > MAX_ITEMS)
        return bad(p, "too many items", field);
    *out = v;
    return 0;
}

/* The value of a label or annotation, NULL when absent. */
static const char *map_value(const json_t *map, const char *k)
{
    const json_t *v = map != NULL ? json_object_get(map, k) : NULL;

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* addresses (strings) of family (AF_INET, AF_INET6, 0: either), canonical text. */
static int addresses(struct parse *p, const json_t *arr, int family, const char *field,
                     struct tg_strlist *out)
{
    size_t n = arr != NULL ? json_array_size(arr) : 0;

    out->n = 0;
    if ((out->v = tg_resource_array(p->o->arena, n, sizeof(char *))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        unsigned char bin[16];
        char text[INET6_ADDRSTRLEN];
        const char *s = json_string_value(v);
        int f;

        if (s == NULL)
            return bad(p, "not a string", field);
        f = strchr(s, ':') != NULL ? AF_INET6 : AF_INET;
        if ((family != 0 && f != family) || inet_pton(f, s, bin) != 1)
            return bad(p, "not a numeric address of its family", field);
        inet_ntop(f, bin, text, sizeof(text));
        if ((out->v[out->n++] = tg_resource_strdup(p->o->arena, text)) == NULL)
            return TG_ENOMEM;
    }
    return 0;
}

static int ports(struct parse *p, const json_t *arr, bool slice, struct tg_k8s_port **out,
                 size_t *n_out)
{
    size_t n = arr != NULL ? json_array_size(arr) : 0;
    const char *field = slice ? "ports" : "spec.ports";

    *n_out = 0;
    if ((*out = tg_resource_array(p->o->arena, n, sizeof(**out))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i), *port;
        struct tg_k8s_port *pt = &(*out)[i];
        const char *proto;
        int rc;

        if (!json_is_object(v))
            return bad(p, "an item is not an object", field);
        if ((rc = opt_str(p, v, "name", field, &pt->name)) < 0 ||
            (rc = opt_str(p, v, "appProtocol", field, &pt->app_protocol)) < 0 ||
            (rc = opt_str(p, v, "protocol", field, &proto)) < 0)
            return rc;
        if (proto[0] == '\0' || strcmp(proto, "TCP") == 0)
            pt->proto = TG_K8S_TCP;
        else if (strcmp(proto, "UDP") == 0)
            pt->proto = TG_K8S_UDP;
        else if (strcmp(proto, "SCTP") == 0)
            pt->proto = TG_K8S_SCTP;
        else
            return bad(p, "protocol not TCP, UDP or SCTP", field);
        port = json_object_get(v, "port");
        if (slice && (port == NULL || json_is_null(port))) {
            pt->port = 0; /* "all ports": nothing the mesh table can say */
        } else if (!json_is_integer(port) || json_integer_value(port) < 1 ||
                   json_integer_value(port) > 65535) {
            return bad(p, "port not an integer 1..65535", field);
        } else {
            pt->port = (uint32_t)json_integer_value(port);
        }
    }
    *n_out = n;
    return 0;
}

static int parse_namespace(struct parse *p, const json_t *meta)
{
    const json_t *labels = NULL;
    const char *v;
    int rc;

    if ((rc = opt_member(p, meta, "labels", "metadata.labels", JSON_OBJECT, &labels)) < 0)
        return rc;
    v = map_value(labels, TG_K8S_INJECT_LABEL);
    p->o->u.ns.inject = v != NULL && strcmp(v, "enabled") == 0;
    return 0;
}

static bool has_container(const json_t *arr, const char *name)
{
    for (size_t i = 0; arr != NULL && i < json_array_size(arr); i++) {
        const char *n = json_string_value(json_object_get(json_array_get(arr, i), "name"));

        if (n != NULL && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct tg_res_label *)a)->key, ((const struct tg_res_label *)b)->key);
}

/* metadata.labels (strings, at most MAX_ITEMS) into the arena, sorted by key. */
static int pod_labels(struct parse *p, const json_t *labels, struct tg_k8s_pod *pod)
{
    size_t n = labels != NULL ? json_object_size(labels) : 0;
    const char *k;
    json_t *v;

    if (n > MAX_ITEMS)
        return bad(p, "too many items", "metadata.labels");
    if ((pod->labels = tg_resource_array(p->o->arena, n, sizeof(*pod->labels))) == NULL)
        return TG_ENOMEM;
    json_object_foreach(tg_unconst(labels), k, v)
    {
        struct tg_res_label *l = &pod->labels[pod->n_labels];

        if (!json_is_string(v))
            return bad(p, "a label value that is not a string", "metadata.labels");
        l->key = tg_resource_strdup(p->o->arena, k);
        l->value = tg_resource_strdup(p->o->arena, json_string_value(v));
        if (l->key == NULL || l->value == NULL)
            return TG_ENOMEM;
        pod->n_labels++;
    }
    qsort(pod->labels, pod->n_labels, sizeof(*pod->labels), label_cmp);
    return 0;
}

static int parse_pod(struct parse *p, const json_t *meta, const json_t *spec, const json_t *status)
{
    struct tg_k8s_pod *pod = &p->o->u.pod;
    const json_t *ann = NULL, *cs = NULL, *ics = NULL, *ips = NULL, *labels = NULL;
    const char *v, *phase = "", *ip = "";
    int rc;

    if ((rc = opt_member(p, meta, "labels", "metadata.labels", JSON_OBJECT, &labels)) < 0 ||
        (rc = pod_labels(p, labels, pod)) < 0 ||
        (rc = opt_member(p, meta, "annotations", "metadata.annotations", JSON_OBJECT, &ann)) < 0 ||
        (rc = opt_str(p, spec, "serviceAccountName", "spec.serviceAccountName",
                      &pod->service_account)) < 0 ||
        (rc = opt_member(p, spec, "containers", "spec.containers", JSON_ARRAY, &cs)) < 0 ||
        (rc = opt_member(p, spec, "initContainers", "spec.initContainers", JSON_ARRAY, &ics)) < 0)
        return rc;
    if (pod->service_account[0] == '\0')
        pod->service_account = "default";
    else if (!dns_name(pod->service_account, TG_K8S_NAME_MAX))
        return bad(p, "not a DNS-1123 name", "spec.serviceAccountName");
    if (status != NULL &&
        ((rc = opt_str(p, status, "phase", "status.phase", &phase)) < 0 ||
         (rc = opt_str(p, status, "podIP", "status.podIP", &ip)) < 0 ||
         (rc = opt_member(p, status, "podIPs", "status.podIPs", JSON_ARRAY, &ips)) < 0))
        return rc;
    if (ips != NULL && json_array_size(ips) > 0) {
        json_t *flat = json_array();

        if (flat == NULL)
            return TG_ENOMEM;
        for (size_t i = 0; i < json_array_size(ips); i++) {
            json_t *one = json_object_get(json_array_get(ips, i), "ip");

            if (one != NULL && json_array_append(flat, one) < 0) {
                json_decref(flat);
                return TG_ENOMEM;
            }
        }
        rc = addresses(p, flat, 0, "status.podIPs", &pod->ips);
        json_decref(flat);
        if (rc < 0)
            return rc;
    } else if (ip[0] != '\0') {
        json_t *one = json_pack("[s]", ip);

        if (one == NULL)
            return TG_ENOMEM;
        rc = addresses(p, one, 0, "status.podIP", &pod->ips);
        json_decref(one);
        if (rc < 0)
            return rc;
    }
    v = map_value(ann, TG_K8S_INJECTED_ANNOTATION);
    pod->sidecar = has_container(cs, TG_K8S_SIDECAR_CONTAINER) ||
                   has_container(ics, TG_K8S_SIDECAR_CONTAINER) ||
                   (v != NULL && strcmp(v, "true") == 0);
    v = map_value(ann, TG_K8S_INJECT_ANNOTATION);
    pod->opt_out = v != NULL && strcmp(v, "false") == 0;
    pod->finished = strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0;
    return 0;
}

/* The Service's TG_K8S_TUNNEL_ANNOTATION: a value that is not a mode is ignored, never
 * fatal (the Service is still in the mesh), and said in the object's warning. */
static int service_tunnel(struct parse *p, const json_t *meta, struct tg_k8s_service *s)
{
    const json_t *ann = NULL;
    const char *v;
    char text[160];
    int rc;

    if ((rc = opt_member(p, meta, "annotations", "metadata.annotations", JSON_OBJECT, &ann)) < 0)
        return rc;
    if ((v = map_value(ann, TG_K8S_TUNNEL_ANNOTATION)) == NULL ||
        tg_config_tunnel_parse(v, &s->tunnel) == 0)
        return 0;
    snprintf(text, sizeof(text),
             "annotation " TG_K8S_TUNNEL_ANNOTATION " \"%.40s\" is not off, auto or on: ignored",
             v);
    if ((p->o->warning = tg_resource_strdup(p->o->arena, tg_k8s_printable(text))) == NULL)
        return TG_ENOMEM;
    return 0;
}

static int parse_service(struct parse *p, const json_t *meta, const json_t *spec)
{
    struct tg_k8s_service *s = &p->o->u.svc;
    const json_t *ips = NULL, *pts = NULL;
    const char *type = "", *ip = "";
    int rc;

    if (spec == NULL)
        return bad(p, "missing", "spec");
    if ((rc = service_tunnel(p, meta, s)) < 0 ||
        (rc = opt_str(p, spec, "type", "spec.type", &type)) < 0 ||
        (rc = opt_str(p, spec, "clusterIP", "spec.clusterIP", &ip)) < 0 ||
        (rc = opt_member(p, spec, "clusterIPs", "spec.clusterIPs", JSON_ARRAY, &ips)) < 0 ||
        (rc = opt_member(p, spec, "ports", "spec.ports", JSON_ARRAY, &pts)) < 0)
        return rc;
    s->external_name = strcmp(type, "ExternalName") == 0;
    if ((rc = ports(p, pts, false, &s->ports, &s->n_ports)) < 0)
        return rc;
    if (strcmp(ip, "None") == 0 || s->external_name)
        return 0; /* headless: endpoints only */
    if (ips != NULL && json_array_size(ips) > 0)
        return addresses(p, ips, 0, "spec.clusterIPs", &s->cluster_ips);
    if (ip[0] != '\0') {
        json_t *one = json_pack("[s]", ip);

        if (one == NULL)
            return TG_ENOMEM;
        rc = addresses(p, one, 0, "spec.clusterIP", &s->cluster_ips);
        json_decref(one);
    }
    return rc;
}

static int parse_slice(struct parse *p, const json_t *root, const json_t *meta)
{
    struct tg_k8s_slice *sl = &p->o->u.slice;
    const json_t *labels = NULL, *pts = NULL, *eps = NULL;
    const char *type, *svc;
    int rc;

    if ((rc = opt_member(p, meta, "labels", "metadata.labels", JSON_OBJECT, &labels)) < 0 ||
        (rc = opt_str(p, root, "addressType", "addressType", &type)) < 0 ||
        (rc = opt_member(p, root, "ports", "ports", JSON_ARRAY, &pts)) < 0 ||
        (rc = opt_member(p, root, "endpoints", "endpoints", JSON_ARRAY, &eps)) < 0)
        return rc;
    if (strcmp(type, "IPv4") == 0)
        sl->family = AF_INET;
    else if (strcmp(type, "IPv6") == 0)
        sl->family = AF_INET6;
    else if (strcmp(type, "FQDN") == 0)
        return 0; /* deprecated; nothing the mesh table can hold */
    else
        return bad(p, "not IPv4, IPv6 or FQDN", "addressType");
    if ((svc = map_value(labels, "kubernetes.io/service-name")) != NULL) {
        if (!dns_name(svc, 63))
            return bad(p, "not a DNS-1123 label", "metadata.labels[kubernetes.io/service-name]");
        if ((sl->service = tg_resource_strdup(p->o->arena, svc)) == NULL)
            return TG_ENOMEM;
    }
    if ((rc = ports(p, pts, true, &sl->ports, &sl->n_ports)) < 0)
        return rc;
    sl->n_endpoints = 0;
    if ((sl->endpoints = tg_resource_array(p->o->arena, eps != NULL ? json_array_size(eps) : 0,
                                           sizeof(*sl->endpoints))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; eps != NULL && i < json_array_size(eps); i++) {
        const json_t *e = json_array_get(eps, i), *addrs = NULL, *cond = NULL, *ref = NULL, *ready;
        struct tg_k8s_endpoint *ep = &sl->endpoints[sl->n_endpoints++];
        const char *kind = "", *name = "";

        if (!json_is_object(e))
            return bad(p, "an item is not an object", "endpoints");
        if ((rc = opt_member(p, e, "addresses", "endpoints[].addresses", JSON_ARRAY, &addrs)) < 0 ||
            (rc = opt_member(p, e, "conditions", "endpoints[].conditions", JSON_OBJECT, &cond)) <
                0 ||
            (rc = opt_member(p, e, "targetRef", "endpoints[].targetRef", JSON_OBJECT, &ref)) < 0)
            return rc;
        if (addrs == NULL || json_array_size(addrs) == 0)
            return bad(p, "at least one address", "endpoints[].addresses");
        if ((rc = addresses(p, addrs, sl->family, "endpoints[].addresses", &ep->addresses)) < 0)
            return rc;
        ready = cond != NULL ? json_object_get(cond, "ready") : NULL;
        if (ready != NULL && !json_is_null(ready) && !json_is_boolean(ready))
            return bad(p, "not a boolean", "endpoints[].conditions.ready");
        ep->ready = ready == NULL || json_is_null(ready) || json_is_true(ready);
        if (ref != NULL &&
            ((rc = opt_str(p, ref, "kind", "endpoints[].targetRef.kind", &kind)) < 0 ||
             (rc = opt_str(p, ref, "name", "endpoints[].targetRef.name", &name)) < 0))
            return rc;
        if (strcmp(kind, "Pod") == 0) {
            if (!dns_name(name, TG_K8S_NAME_MAX))
                return bad(p, "not a DNS-1123 name", "endpoints[].targetRef.name");
            ep->pod = name;
        }
    }
    return 0;
}

/* A policy resource: its spec as text (checked later, by k8s_policy.c) and its Ready
 * condition as last written (so a status already saying the same is not written again). */
static int parse_policy(struct parse *p, const json_t *meta, const json_t *spec,
                        const json_t *status)
{
    struct tg_k8s_policy_obj *pol = &p->o->u.policy;
    const json_t *gen = json_object_get(meta, "generation"), *conds = NULL, *c;
    char *text = spec != NULL ? json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    size_t i;
    int rc;

    if (spec != NULL && text == NULL)
        return TG_ENOMEM;
    pol->spec = tg_resource_strdup(p->o->arena, text != NULL ? text : "{}");
    free(text);
    if (pol->spec == NULL)
        return TG_ENOMEM;
    pol->generation = json_is_integer(gen) ? (int64_t)json_integer_value(gen) : 0;
    pol->ready = pol->ready_reason = pol->ready_message = "";
    if (status != NULL &&
        (rc = opt_member(p, status, "conditions", "status.conditions", JSON_ARRAY, &conds)) < 0)
        return rc;
    json_array_foreach(conds, i, c)
    {
        const char *type = map_value(c, "type");

        if (type == NULL || strcmp(type, "Ready") != 0)
            continue;
        if ((rc = opt_str(p, c, "status", "status.conditions[Ready].status", &pol->ready)) < 0 ||
            (rc = opt_str(p, c, "reason", "status.conditions[Ready].reason", &pol->ready_reason)) <
                0 ||
            (rc = opt_str(p, c, "message", "status.conditions[Ready].message",
                          &pol->ready_message)) < 0)
            return rc;
    }
    return 0;
}

int tg_k8s_obj_from_json(enum tg_k8s_kind k, const json_t *j, struct tg_k8s_obj **out, char *err)
{
    struct tg_k8s_obj *o = NULL;
    struct tg_resource *arena = tg_resource_new(TG_RES_NONE);
    struct parse p = {NULL, err};
    const json_t *meta = NULL, *spec = NULL, *status = NULL;
    const char *ns = "", *name = "", *rv = "";
    char key[2 * TG_K8S_NAME_MAX + 2];
    struct tg_k8s_obj tmp = {.kind = k};
    int rc = TG_ENOMEM;

    p.o = &tmp;
    if (arena == NULL || (o = tg_resource_alloc(arena, sizeof(*o))) == NULL)
        goto fail;
    o->kind = k;
    o->arena = tmp.arena = arena;
    if (!json_is_object(j)) {
        rc = bad(&p, "not an object", "(object)");
        goto fail;
    }
    if ((rc = opt_member(&p, j, "metadata", "metadata", JSON_OBJECT, &meta)) < 0)
        goto fail;
    if (meta == NULL) {
        rc = bad(&p, "missing", "metadata");
        goto fail;
    }
    if ((rc = opt_str(&p, meta, "name", "metadata.name", &name)) < 0 ||
        (rc = opt_str(&p, meta, "namespace", "metadata.namespace", &ns)) < 0 ||
        (rc = opt_str(&p, meta, "resourceVersion", "metadata.resourceVersion", &rv)) < 0)
        goto fail;
    if (!dns_name(name, TG_K8S_NAME_MAX)) {
        rc = bad(&p, "not a DNS-1123 name", "metadata.name");
        goto fail;
    }
    if (k == TG_K8S_NAMESPACE ? ns[0] != '\0' : !dns_name(ns, 63)) {
        rc = bad(&p, k == TG_K8S_NAMESPACE ? "set on a Namespace" : "not a DNS-1123 label",
                 "metadata.namespace");
        goto fail;
    }
    if (k == TG_K8S_NAMESPACE)
        snprintf(key, sizeof(key), "%s", name);
    else
        snprintf(key, sizeof(key), "%s/%s", ns, name);
    if ((o->key = tg_resource_strdup(arena, key)) == NULL)
        goto fail;
    o->ns = ns;
    o->name = name;
    o->resource_version = rv;
    p.o = o;
    if ((rc = opt_member(&p, j, "spec", "spec", JSON_OBJECT, &spec)) < 0 ||
        (rc = opt_member(&p, j, "status", "status", JSON_OBJECT, &status)) < 0)
        goto fail;
    switch (k) {
    case TG_K8S_NAMESPACE:
        rc = parse_namespace(&p, meta);
        break;
    case TG_K8S_POD:
        rc = spec == NULL ? bad(&p, "missing", "spec") : parse_pod(&p, meta, spec, status);
        break;
    case TG_K8S_SERVICE:
        rc = parse_service(&p, meta, spec);
        break;
    case TG_K8S_SLICE:
        rc = parse_slice(&p, j, meta);
        break;
    case TG_K8S_AUTHZ:
    case TG_K8S_LIMITS:
    case TG_K8S_REVOKE:
        rc = parse_policy(&p, meta, spec, status);
        break;
    case TG_K8S_CONFIGMAP: {
        const json_t *data = NULL;
        const char *pem = NULL;

        if ((rc = opt_member(&p, j, "data", "data", JSON_OBJECT, &data)) < 0)
            break;
        pem = map_value(data, TG_K8S_CA_KEY);
        if (pem != NULL && (o->u.cm.ca_pem = tg_resource_strdup(arena, pem)) == NULL)
            rc = TG_ENOMEM;
        break;
    }
    default:
        rc = tg_err_set(err, TG_EINVAL, "unknown kind");
    }
    if (rc < 0)
        goto fail;
    *out = o;
    return 0;
fail:
    if (rc == TG_ENOMEM)
        tg_err_set(err, rc, "out of memory");
    tg_resource_free(arena);
    return rc;
}

char *tg_k8s_printable(char *s)
{
    for (char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    return s;
}

int tg_k8s_obj_parse(enum tg_k8s_kind k, const char *text, size_t len, struct tg_k8s_obj **out,
                     char *err)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    int rc;

    if (j == NULL) /* je.text quotes the input near the error */
        return tg_err_set(err, TG_EINVAL, "%s: not JSON: %s (line %d)", tg_k8s_kind_name(k),
                          tg_k8s_printable(je.text), je.line);
    rc = tg_k8s_obj_from_json(k, j, out, err);
    json_decref(j);
    return rc;
}

void tg_k8s_obj_free(struct tg_k8s_obj *o)
{
    if (o != NULL)
        tg_resource_free(o->arena);
}

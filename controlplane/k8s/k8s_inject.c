/* Sidecar injection by admission webhook (k8s_inject.h). */

#include "k8s_inject.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_objects.h"
#include "tollgate/certgen.h"
#include "tollgate/log.h"

#define INIT_CONTAINER "tollgate-init"

/* deploy/k8s/components/inject/sidecar-patch.yaml as JSON: the two init containers (the
 * image is set from the configuration) and the volumes. tests/k8s/test_webhook.py compares
 * what is injected with that file, so the two cannot drift apart unnoticed. */
static const char INIT_JSON[] =
    "[{\"name\":\"tollgate-init\",\"image\":\"\",\"imagePullPolicy\":\"IfNotPresent\","
    "\"command\":[\"tollgate\",\"init-iptables\"],"
    "\"args\":[\"--inbound-port=15006\",\"--outbound-port=15001\",\"--admin-port=15000\","
    "\"--proxy-uid=1337\",\"--proxy-gid=1337\",\"--exclude-inbound-ports=15021,15090\"],"
    "\"resources\":{\"requests\":{\"cpu\":\"10m\",\"memory\":\"16Mi\"},"
    "\"limits\":{\"cpu\":\"100m\",\"memory\":\"64Mi\"}},"
    "\"securityContext\":{\"runAsUser\":0,\"runAsNonRoot\":false,"
    "\"allowPrivilegeEscalation\":false,\"readOnlyRootFilesystem\":true,"
    "\"capabilities\":{\"drop\":[\"ALL\"],\"add\":[\"NET_ADMIN\",\"NET_RAW\"]}},"
    "\"volumeMounts\":[{\"name\":\"tollgate-xtables-lock\",\"mountPath\":\"/run\"}]},"
    "{\"name\":\"tollgate-proxy\",\"image\":\"\",\"imagePullPolicy\":\"IfNotPresent\","
    "\"restartPolicy\":\"Always\",\"args\":[\"run\",\"-c\",\"/etc/tollgate/sidecar.yaml\"],"
    "\"env\":["
    "{\"name\":\"TOLLGATE_POD_NAME\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":"
    "\"metadata.name\"}}},"
    "{\"name\":\"TOLLGATE_POD_NAMESPACE\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":"
    "\"metadata.namespace\"}}},"
    "{\"name\":\"TOLLGATE_SERVICE_ACCOUNT\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":"
    "\"spec.serviceAccountName\"}}}],"
    "\"ports\":[{\"name\":\"tollgate-health\",\"containerPort\":15021},"
    "{\"name\":\"tollgate-metrics\",\"containerPort\":15090}],"
    "\"startupProbe\":{\"httpGet\":{\"path\":\"/ready\",\"port\":15021},"
    "\"periodSeconds\":1,\"failureThreshold\":60},"
    "\"readinessProbe\":{\"httpGet\":{\"path\":\"/ready\",\"port\":15021},\"periodSeconds\":5},"
    "\"livenessProbe\":{\"httpGet\":{\"path\":\"/live\",\"port\":15021},\"periodSeconds\":10,"
    "\"failureThreshold\":3},"
    "\"resources\":{\"requests\":{\"cpu\":\"50m\",\"memory\":\"32Mi\"},"
    "\"limits\":{\"cpu\":\"1\",\"memory\":\"128Mi\"}},"
    "\"securityContext\":{\"runAsUser\":1337,\"runAsGroup\":1337,\"runAsNonRoot\":true,"
    "\"allowPrivilegeEscalation\":false,\"readOnlyRootFilesystem\":true,"
    "\"capabilities\":{\"drop\":[\"ALL\"]}},"
    "\"volumeMounts\":["
    "{\"name\":\"tollgate-config\",\"mountPath\":\"/etc/tollgate\",\"readOnly\":true},"
    "{\"name\":\"tollgate-token\",\"mountPath\":\"/var/run/tollgate/token\",\"readOnly\":true},"
    "{\"name\":\"tollgate-root\",\"mountPath\":\"/var/run/tollgate/root\",\"readOnly\":true},"
    "{\"name\":\"tollgate-podinfo\",\"mountPath\":\"/var/run/tollgate/podinfo\","
    "\"readOnly\":true}]}]";

static const char VOLUMES_JSON[] =
    "[{\"name\":\"tollgate-xtables-lock\",\"emptyDir\":{\"medium\":\"Memory\","
    "\"sizeLimit\":\"1Mi\"}},"
    "{\"name\":\"tollgate-config\",\"configMap\":{\"name\":\"tollgate-sidecar\"}},"
    "{\"name\":\"tollgate-root\",\"configMap\":{\"name\":\"tollgate-root-ca\"}},"
    "{\"name\":\"tollgate-token\",\"projected\":{\"sources\":[{\"serviceAccountToken\":"
    "{\"audience\":\"tollgate\",\"expirationSeconds\":3600,\"path\":\"token\"}}]}},"
    "{\"name\":\"tollgate-podinfo\",\"downwardAPI\":{\"items\":["
    "{\"path\":\"name\",\"fieldRef\":{\"fieldPath\":\"metadata.name\"}},"
    "{\"path\":\"namespace\",\"fieldRef\":{\"fieldPath\":\"metadata.namespace\"}},"
    "{\"path\":\"labels\",\"fieldRef\":{\"fieldPath\":\"metadata.labels\"}}]}}]";

static const int sidecar_ports[] = {TG_K8S_PORT_ADMIN, TG_K8S_PORT_OUTBOUND, TG_K8S_PORT_INBOUND,
                                    TG_K8S_PORT_HEALTH, TG_K8S_PORT_METRICS};

static const char *str_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* "/" and "~" in a JSON Pointer token (RFC 6901 section 3). */
static void pointer_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;

    for (; *in != '\0' && o + 3 < cap; in++) {
        if (*in == '~' || *in == '/') {
            out[o++] = '~';
            out[o++] = *in == '~' ? '0' : '1';
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

static int add_op(json_t *patch, const char *path, json_t *value)
{
    json_t *op = json_pack("{s:s, s:s, s:o}", "op", "add", "path", path, "value", value);

    return op == NULL || json_array_append_new(patch, op) < 0 ? TG_ENOMEM : 0;
}

/* Whether any container of list (an array, or absent) is named name. */
static bool has_container(const json_t *list, const char *name)
{
    size_t i;
    const json_t *c;

    json_array_foreach(list, i, c)
    {
        const char *n = str_at(c, "name");

        if (n != NULL && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

static bool is_sidecar_port(json_int_t p)
{
    for (size_t i = 0; i < TG_NELEM(sidecar_ports); i++)
        if (p == sidecar_ports[i])
            return true;
    return false;
}

/* A port of any container that the sidecar needs: the reason in why. */
static bool port_clash(const json_t *spec, char *why)
{
    static const char *const lists[] = {"initContainers", "containers"};

    for (size_t l = 0; l < TG_NELEM(lists); l++) {
        size_t i, j;
        const json_t *c, *p;

        json_array_foreach(json_object_get(spec, lists[l]), i, c)
        {
            json_array_foreach(json_object_get(c, "ports"), j, p)
            {
                static const char *const fields[] = {"containerPort", "hostPort"};

                for (size_t f = 0; f < TG_NELEM(fields); f++) {
                    json_int_t n = json_integer_value(json_object_get(p, fields[f]));

                    if (!is_sidecar_port(n))
                        continue;
                    snprintf(why, TG_ERRLEN,
                             "tollgate: container %.64s: %s %lld is one of the sidecar's ports "
                             "(15000, 15001, 15006, 15021, 15090): move it, or opt the pod out "
                             "with the annotation " TG_K8S_INJECT_ANNOTATION ": \"false\"",
                             str_at(c, "name") ? str_at(c, "name") : "?", fields[f], (long long)n);
                    return true;
                }
            }
        }
    }
    return false;
}

/* The port of a probe action: a number, or the name of one of the container's ports. */
static json_int_t probe_port(const json_t *container, const json_t *action)
{
    const json_t *port = json_object_get(action, "port"), *p;
    size_t i;

    if (json_is_integer(port))
        return json_integer_value(port);
    if (!json_is_string(port))
        return -1;
    json_array_foreach(json_object_get(container, "ports"), i, p)
    {
        const char *name = str_at(p, "name");

        if (name != NULL && strcmp(name, json_string_value(port)) == 0)
            return json_integer_value(json_object_get(p, "containerPort"));
    }
    return -1;
}

/* The probes injection rewrites: httpGet (HTTP, no host, no headers) and tcpSocket (no
 * host). Others (exec, grpc, HTTPS, another host) reach the app as before. */
static bool rewritable(const json_t *probe, const json_t **action, bool *http)
{
    const json_t *h = json_object_get(probe, "httpGet"), *t = json_object_get(probe, "tcpSocket");
    const char *scheme = str_at(h, "scheme"), *host;

    if (json_is_object(h)) {
        host = str_at(h, "host");
        *action = h;
        *http = true;
        return (scheme == NULL || strcmp(scheme, "HTTP") == 0) &&
               (host == NULL || host[0] == '\0') &&
               json_array_size(json_object_get(h, "httpHeaders")) == 0;
    }
    host = str_at(t, "host");
    *action = t;
    *http = false;
    return json_is_object(t) && (host == NULL || host[0] == '\0');
}

static const char *const probe_kinds[][2] = {
    {"livenessProbe", "livez"}, {"readinessProbe", "readyz"}, {"startupProbe", "startupz"}};

/* Rewrites container i's probes to the sidecar's health port (a replace per probe into
 * patch) and records the originals in orig ("app/livez" -> {httpGet|tcpSocket,
 * timeoutSeconds}: appprobe.h). A named port the container does not have: why, refused. */
static int rewrite_probes(const json_t *c, size_t i, json_t *patch, json_t *orig, char *why)
{
    const char *name = str_at(c, "name");

    for (size_t k = 0; k < TG_NELEM(probe_kinds); k++) {
        const json_t *probe = json_object_get(c, probe_kinds[k][0]), *action;
        json_t *now, *was;
        json_int_t port, to;
        bool http;
        char path[128], key[96], target[160];

        if (!json_is_object(probe) || name == NULL || !rewritable(probe, &action, &http))
            continue;
        if ((port = probe_port(c, action)) < 1 || port > 65535) {
            snprintf(why, TG_ERRLEN,
                     "tollgate: container %.64s: %s names port %s, which the container does not "
                     "declare",
                     name, probe_kinds[k][0],
                     json_is_string(json_object_get(action, "port"))
                         ? json_string_value(json_object_get(action, "port"))
                         : "?");
            return 1;
        }
        snprintf(key, sizeof(key), "%.63s/%s", name, probe_kinds[k][1]);
        snprintf(target, sizeof(target), "/app-health/%s", key);
        to = json_integer_value(json_object_get(probe, "timeoutSeconds"));
        was = json_pack("{s:{s:I}, s:I}", http ? "httpGet" : "tcpSocket", "port", port,
                        "timeoutSeconds", to > 0 ? to : (json_int_t)1);
        if (was == NULL)
            return TG_ENOMEM;
        if (http && str_at(action, "path") != NULL)
            json_object_set_new(json_object_get(was, "httpGet"), "path",
                                json_string(str_at(action, "path")));
        if (json_object_set_new(orig, key, was) < 0 || (now = json_deep_copy(probe)) == NULL)
            return TG_ENOMEM;
        json_object_del(now, "httpGet");
        json_object_del(now, "tcpSocket");
        if (json_object_set_new(now, "httpGet",
                                json_pack("{s:s, s:i, s:s}", "path", target, "port",
                                          TG_K8S_PORT_HEALTH, "scheme", "HTTP")) < 0) {
            json_decref(now);
            return TG_ENOMEM;
        }
        snprintf(path, sizeof(path), "/spec/containers/%zu/%s", i, probe_kinds[k][0]);
        if (json_array_append_new(patch, json_pack("{s:s, s:s, s:o}", "op", "replace", "path", path,
                                                   "value", now)) < 0)
            return TG_ENOMEM;
    }
    return 0;
}

/* The operations that inject the sidecar into pod (its spec checked by the caller). */
static int make_patch(const json_t *pod, const struct tg_k8s_inject_cfg *cfg, json_t *patch,
                      char *why)
{
    const json_t *meta = json_object_get(pod, "metadata");
    const json_t *spec = json_object_get(pod, "spec");
    const json_t *ann = json_object_get(meta, "annotations");
    const char *image = cfg->image != NULL ? cfg->image : TG_K8S_INJECT_IMAGE;
    const char *annotations[5][2] = {
        {TG_K8S_INJECTED_ANNOTATION, "true"},
        {"prometheus.io/scrape", "true"},
        {"prometheus.io/port", "15090"},
        {"prometheus.io/path", "/stats/prometheus"},
    };
    size_t n_ann = 4;
    char *probes_text = NULL;
    json_t *inits = json_loads(INIT_JSON, 0, NULL);
    json_t *vols = json_loads(VOLUMES_JSON, 0, NULL);
    json_t *orig = json_object(), *probes = json_array();
    json_t *c;
    size_t i;
    int rc = TG_ENOMEM;

    if (inits == NULL || vols == NULL || orig == NULL || probes == NULL)
        goto fail;
    json_array_foreach(json_object_get(spec, "containers"), i,
                       c) if ((rc = rewrite_probes(c, i, probes, orig, why)) !=
                              0) goto fail; /* 1: refused, why says so */
    rc = TG_ENOMEM;
    if (json_object_size(orig) > 0) { /* the sidecar reads the originals from its env */
        char *text = json_dumps(orig, JSON_COMPACT | JSON_SORT_KEYS);
        json_t *env =
            json_pack("{s:s, s:{s:{s:s}}}", "name", "TOLLGATE_APP_PROBES", "valueFrom", "fieldRef",
                      "fieldPath", "metadata.annotations['" TG_K8S_PROBES_ANNOTATION "']");
        int bad = text == NULL || env == NULL ||
                  json_array_append_new(json_object_get(json_array_get(inits, 1), "env"), env) < 0;

        if (bad) {
            free(text);
            goto fail;
        }
        annotations[n_ann][0] = TG_K8S_PROBES_ANNOTATION;
        annotations[n_ann++][1] = text;
        probes_text = text;
    }
    json_array_foreach(inits, i,
                       c) if (json_object_set_new(c, "image", json_string(image)) < 0) goto fail;
    if (!json_is_object(meta) && add_op(patch, "/metadata", json_object()) < 0)
        goto fail;
    if (!json_is_object(ann) && add_op(patch, "/metadata/annotations", json_object()) < 0)
        goto fail;
    for (i = 0; i < n_ann; i++) {
        char path[128], tok[64];

        pointer_escape(annotations[i][0], tok, sizeof(tok));
        snprintf(path, sizeof(path), "/metadata/annotations/%s", tok);
        if (add_op(patch, path, json_string(annotations[i][1])) < 0)
            goto fail;
    }
    /* ours first, in order (the rules are written before the sidecar starts, both before the
     * pod's own init containers), then the pod's own, as the Component's merge does */
    if (!json_is_array(json_object_get(spec, "initContainers"))) {
        if (add_op(patch, "/spec/initContainers", json_incref(inits)) < 0)
            goto fail;
    } else {
        for (i = json_array_size(inits); i-- > 0;)
            if (add_op(patch, "/spec/initContainers/0", json_incref(json_array_get(inits, i))) < 0)
                goto fail;
    }
    if (!json_is_array(json_object_get(spec, "volumes"))) {
        if (add_op(patch, "/spec/volumes", json_incref(vols)) < 0)
            goto fail;
    } else {
        json_array_foreach(vols, i,
                           c) if (add_op(patch, "/spec/volumes/-", json_incref(c)) < 0) goto fail;
    }
    json_array_foreach(probes, i, c) if (json_array_append(patch, c) < 0) goto fail;
    rc = 0;
fail:
    json_decref(inits);
    json_decref(vols);
    json_decref(orig);
    json_decref(probes);
    free(probes_text);
    return rc;
}

int tg_k8s_base64(const char *in, size_t n, char **out)
{
    size_t cap = (n + 2) / 3 * 4 + 1;
    char *p = malloc(cap);

    if (p == NULL)
        return TG_ENOMEM;
    if (tg_base64_encode(in, n, p, &cap) != 0) {
        free(p);
        return TG_ENOMEM;
    }
    p[cap] = '\0';
    *out = p;
    return 0;
}

/* The response: allowed, with patch (may be NULL), or refused with reason. */
static int respond(const char *uid, const json_t *patch, const char *reason,
                   struct tg_k8s_inject_result *res)
{
    json_t *r = json_pack("{s:s, s:b}", "uid", uid, "allowed", reason == NULL);
    json_t *review = NULL;
    char *text = NULL, *b64 = NULL;
    int rc = TG_ENOMEM;

    if (r == NULL)
        goto fail;
    if (reason != NULL && json_object_set_new(r, "status",
                                              json_pack("{s:i, s:s, s:s}", "code", 400, "reason",
                                                        "BadRequest", "message", reason)) < 0)
        goto fail;
    if (patch != NULL && json_array_size(patch) > 0) {
        if ((text = json_dumps(patch, JSON_COMPACT)) == NULL ||
            tg_k8s_base64(text, strlen(text), &b64) < 0)
            goto fail;
        if (json_object_set_new(r, "patchType", json_string("JSONPatch")) < 0 ||
            json_object_set_new(r, "patch", json_string(b64)) < 0)
            goto fail;
        res->patched = true;
    }
    review = json_pack("{s:s, s:s, s:O}", "apiVersion", "admission.k8s.io/v1", "kind",
                       "AdmissionReview", "response", r);
    if (review == NULL || (res->body = json_dumps(review, JSON_COMPACT)) == NULL)
        goto fail;
    res->len = strlen(res->body);
    rc = 0;
fail:
    json_decref(r);
    json_decref(review);
    free(text);
    free(b64);
    return rc;
}

/* Rules 2 to 6 of the header: NULL and *patch set to inject, or why not in res. */
static int decide(const json_t *req, const struct tg_k8s_inject_cfg *cfg,
                  tg_k8s_inject_lookup lookup, void *arg, json_t *patch,
                  struct tg_k8s_inject_result *res)
{
    const json_t *kind = json_object_get(req, "kind");
    const json_t *pod = json_object_get(req, "object");
    const json_t *meta = json_object_get(pod, "metadata");
    const json_t *spec = json_object_get(pod, "spec");
    const json_t *ann = json_object_get(meta, "annotations");
    const char *op = str_at(req, "operation"), *ns = str_at(req, "namespace");
    const char *opt = str_at(ann, TG_K8S_INJECT_ANNOTATION);
    int rc;
    const char *done = str_at(ann, TG_K8S_INJECTED_ANNOTATION);

    if (op == NULL || strcmp(op, "CREATE") != 0 || str_at(kind, "kind") == NULL ||
        strcmp(str_at(kind, "kind"), "Pod") != 0 ||
        (str_at(kind, "group") != NULL && str_at(kind, "group")[0] != '\0')) {
        res->why = "not a pod being created";
        return 0;
    }
    if (lookup != NULL && ns != NULL) {
        struct tg_k8s_inject_ns n = lookup(arg, ns);

        if (n.known && !n.inject) {
            res->why = "namespace not labelled " TG_K8S_INJECT_LABEL "=enabled";
            return 0;
        }
    }
    if (opt != NULL && strcmp(opt, "false") == 0) {
        res->why = "opted out";
        return 0;
    }
    if ((done != NULL && strcmp(done, "true") == 0) ||
        has_container(json_object_get(spec, "initContainers"), TG_K8S_SIDECAR_CONTAINER) ||
        has_container(json_object_get(spec, "initContainers"), INIT_CONTAINER) ||
        has_container(json_object_get(spec, "containers"), TG_K8S_SIDECAR_CONTAINER)) {
        res->why = "already injected";
        return 0;
    }
    res->why = "refused";
    if (!json_is_object(spec) || !json_is_array(json_object_get(spec, "containers"))) {
        snprintf(res->reason, sizeof(res->reason),
                 "tollgate: request.object is not a Pod (no spec.containers)");
        return 0;
    }
    if (json_is_true(json_object_get(spec, "hostNetwork"))) {
        snprintf(res->reason, sizeof(res->reason),
                 "tollgate: a hostNetwork pod shares the node's network, where the sidecar's "
                 "capture rules would take the node's traffic: opt it out with the "
                 "annotation " TG_K8S_INJECT_ANNOTATION
                 ": \"false\" or run it in a namespace without injection");
        return 0;
    }
    if (port_clash(spec, res->reason))
        return 0;
    res->why = "injected";
    rc = make_patch(pod, cfg, patch, res->reason);
    if (rc == 1) { /* refused: no patch */
        res->why = "refused";
        json_array_clear(patch);
        return 0;
    }
    return rc;
}

int tg_k8s_inject_review(const char *body, size_t len, const struct tg_k8s_inject_cfg *cfg,
                         tg_k8s_inject_lookup lookup, void *arg, struct tg_k8s_inject_result *res,
                         char *err)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    json_t *patch = json_array();
    const json_t *req;
    const char *api, *kind, *uid;
    int rc = TG_EINVAL;

    memset(res, 0, sizeof(*res));
    if (patch == NULL) {
        rc = TG_ENOMEM;
        goto done;
    }
    if (root == NULL) {
        tg_err_set(err, rc, "body is not JSON: %s (line %d)", je.text, je.line);
        goto done;
    }
    api = str_at(root, "apiVersion");
    kind = str_at(root, "kind");
    if (api == NULL || strcmp(api, "admission.k8s.io/v1") != 0 || kind == NULL ||
        strcmp(kind, "AdmissionReview") != 0) {
        tg_err_set(err, rc, "not an AdmissionReview of admission.k8s.io/v1");
        goto done;
    }
    req = json_object_get(root, "request");
    if (!json_is_object(req) || (uid = str_at(req, "uid")) == NULL || uid[0] == '\0') {
        tg_err_set(err, rc, "AdmissionReview without request.uid");
        goto done;
    }
    if ((rc = decide(req, cfg, lookup, arg, patch, res)) < 0)
        goto done;
    rc = respond(uid, patch, res->reason[0] != '\0' ? res->reason : NULL, res);
done:
    json_decref(root);
    json_decref(patch);
    return rc;
}

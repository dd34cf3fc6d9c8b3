/* The derived mesh table, debounced and merged with the mesh files (cp_k8s.h). */
#include "cp_k8s.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "k8s_policy.h"
#include "k8s_publish.h"

#include "tollgate/closer.h"
#include "tollgate/log.h"

struct tg_cp_k8s {
    struct tg_k8s_client *client;
    uv_timer_t debounce;
    struct tg_closer closer; /* open: the debounce timer, the client */
    char *trust_domain;
    struct tg_resource *derived; /* NULL before the first sync */
    struct tg_resource *overlay; /* a copy of the mesh files' table */
    struct tg_resource *merged;  /* what is pushed; NULL before the first sync */
    void (*on_table)(void *arg);
    void *arg;
    /* kubernetes.discovery.policy_resources (k8s_policy.h); NULL: not watched */
    struct tg_k8s_policy *policy;
    struct tg_resource *files[TG_RES_N];  /* copies of the mesh files' policy resources */
    struct tg_resource *pushed[TG_RES_N]; /* files' and the custom resources'; NULL: not yet */
    /* kubernetes.discovery.trust_configmaps (k8s_publish.h) */
    bool publish;
    char *bundle_pem;   /* our trust domain's roots, one PEM text; NULL: none yet */
    unsigned cm_writes; /* ConfigMap writes in flight: no new ones until they are answered */
    bool cm_again;      /* something changed meanwhile: look again after them */
};

static void remerge(struct tg_cp_k8s *k)
{
    struct tg_resource *m;

    if (k->derived == NULL)
        return;
    if (tg_k8s_mesh_merge(k->derived, k->overlay, &m) < 0) {
        tg_error("kubernetes: out of memory merging the mesh table: keeping the last one");
        return;
    }
    tg_resource_free(k->merged);
    k->merged = m;
    k->on_table(k->arg);
}

static const enum tg_res_type policy_types[] = {TG_RES_AUTHORIZATION, TG_RES_RATE_LIMITS,
                                                TG_RES_REVOCATIONS};

/* dst[t] = src[t] merged with p's compiled custom resources (p NULL: a copy), for each policy
 * type, all or none. */
static int merge_into(const struct tg_k8s_policy *p, struct tg_resource *const src[TG_RES_N],
                      struct tg_resource *dst[TG_RES_N])
{
    struct tg_resource *m[TG_RES_N] = {NULL};

    for (size_t i = 0; i < TG_NELEM(policy_types); i++) {
        enum tg_res_type t = policy_types[i];

        if (src[t] == NULL || tg_k8s_policy_merge(p, t, src[t], &m[t]) < 0) {
            for (size_t j = 0; j < i; j++)
                tg_resource_free(m[policy_types[j]]);
            return TG_ENOMEM;
        }
    }
    for (size_t i = 0; i < TG_NELEM(policy_types); i++) {
        tg_resource_free(dst[policy_types[i]]);
        dst[policy_types[i]] = m[policy_types[i]];
    }
    return 0;
}

/* The pushed policy resources again, from the files' and the compiled custom resources. */
static void remerge_policy(struct tg_cp_k8s *k)
{
    if (merge_into(k->policy, k->files, k->pushed) < 0)
        tg_error("kubernetes: out of memory merging the policy resources: keeping the last");
}

/* A write to the API that failed: what it was, and the answer (a v1 Status names the object). */
static void write_failed(const char *what, long status, const char *body, const char *err)
{
    if (status == 0)
        tg_warn("kubernetes: writing %s: %s", what, err);
    else
        tg_warn("kubernetes: writing %s: HTTP %ld %.300s", what, status, body);
}

static void on_status_written(void *arg, long status, const char *body, const char *err)
{
    (void)arg;
    if (status < 200 || status > 299)
        write_failed("the status of a policy resource", status, body, err);
}

static void write_status(void *arg, const struct tg_k8s_policy_status *st)
{
    struct tg_cp_k8s *k = arg;
    char path[1024], now[32], *body;
    time_t t = time(NULL);
    struct tm tm;

    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    if (st->ready)
        tg_info("kubernetes: %s %s/%s applied", tg_k8s_kind_name(st->kind), st->ns, st->name);
    else
        tg_warn("kubernetes: %s %s/%s not applied (%s): %s%s", tg_k8s_kind_name(st->kind), st->ns,
                st->name, st->reason, st->message,
                st->reason[0] == 'I' ? " (its last good version, if any, stays)" : "");
    body = tg_k8s_policy_status_patch(st, now, path, sizeof(path));
    if (body == NULL ||
        tg_k8s_client_request(k->client, "PATCH", path, body, "application/merge-patch+json",
                              on_status_written, k) < 0)
        tg_error("kubernetes: out of memory writing the status of %s", path);
    free(body);
}

static void update_policy(struct tg_cp_k8s *k, const struct tg_k8s_list lists[TG_K8S_NKINDS])
{
    bool changed = false;

    if (k->policy == NULL)
        return;
    if (tg_k8s_policy_update(k->policy, lists, &changed) < 0) {
        tg_error("kubernetes: out of memory compiling the policy resources: keeping the last");
        return;
    }
    if (changed || k->pushed[TG_RES_AUTHORIZATION] == NULL)
        remerge_policy(k);
    tg_k8s_policy_stale(k->policy, write_status, k);
}

static void on_change(void *arg);

static void on_cm_written(void *arg, long status, const char *body, const char *err)
{
    struct tg_cp_k8s *k = arg;

    k->cm_writes--;
    if (status == 200 || status == 201)
        tg_debug("kubernetes: ConfigMap " TG_K8S_CA_CONFIGMAP " written");
    else if (status != 409) /* 409: created meanwhile (another replica); the watch shows it */
        write_failed("a ConfigMap " TG_K8S_CA_CONFIGMAP, status, body, err);
    if (k->cm_writes == 0 && k->cm_again) {
        k->cm_again = false;
        on_change(k);
    }
}

static void write_cm(void *arg, const char *ns, bool create)
{
    struct tg_cp_k8s *k = arg;
    char path[512], *body = tg_k8s_publish_request(ns, k->bundle_pem, create, path, sizeof(path));

    tg_info("kubernetes: %s ConfigMap %s/" TG_K8S_CA_CONFIGMAP " (the trust bundle)",
            create ? "creating" : "updating", ns);
    if (body == NULL ||
        tg_k8s_client_request(k->client, create ? "POST" : "PATCH", path, body,
                              create ? "application/json" : "application/merge-patch+json",
                              on_cm_written, k) < 0)
        tg_error("kubernetes: out of memory writing ConfigMap %s/" TG_K8S_CA_CONFIGMAP, ns);
    else
        k->cm_writes++;
    free(body);
}

static void publish(struct tg_cp_k8s *k, const struct tg_k8s_list lists[TG_K8S_NKINDS])
{
    if (!k->publish || k->bundle_pem == NULL)
        return;
    if (k->cm_writes > 0) {
        k->cm_again = true; /* the answers may change what is stale: look after them */
        return;
    }
    tg_k8s_publish_stale(lists, k->bundle_pem, write_cm, k);
}

static void on_debounce(uv_timer_t *t)
{
    struct tg_cp_k8s *k = t->data;
    struct tg_k8s_list lists[TG_K8S_NKINDS];
    struct tg_k8s_derive_stats st;
    struct tg_resource *d;

    if (!tg_k8s_client_synced(k->client))
        return; /* the last list to complete calls again */
    tg_k8s_client_lists(k->client, lists);
    update_policy(k, lists);
    publish(k, lists);
    if (tg_k8s_derive(lists, k->trust_domain, &d, &st) < 0) {
        tg_error("kubernetes: out of memory deriving the mesh table: keeping the last one");
        return;
    }
    tg_info("kubernetes: mesh table derived from %zu services, %zu pods: %zu destinations (%zu "
            "services meshed, %zu endpoints outside the mesh, %zu services mixed, %zu skipped)",
            lists[TG_K8S_SERVICE].n, lists[TG_K8S_POD].n, st.destinations, st.services_meshed,
            st.endpoints_outside, st.services_mixed, st.skipped);
    tg_resource_free(k->derived);
    k->derived = d;
    remerge(k);
}

static void on_change(void *arg)
{
    struct tg_cp_k8s *k = arg;

    if (!k->closer.closing && !uv_is_active((uv_handle_t *)&k->debounce))
        uv_timer_start(&k->debounce, on_debounce, TG_CP_K8S_DEBOUNCE_MS, 0);
}

static int copy_overlay(const struct tg_resource *src, struct tg_resource **out)
{
    /* merging with nothing is a copy */
    return tg_k8s_mesh_merge(NULL, src, out);
}

void tg_cp_k8s_set_overlay(struct tg_cp_k8s *k, const struct tg_resource *overlay)
{
    struct tg_resource *o;

    if (copy_overlay(overlay, &o) < 0) {
        tg_error("kubernetes: out of memory copying the mesh files' table: keeping the last");
        return;
    }
    tg_resource_free(k->overlay);
    k->overlay = o;
    remerge(k);
}

const struct tg_resource *tg_cp_k8s_table(const struct tg_cp_k8s *k)
{
    return k->merged;
}

/* Our trust domain's roots (the bundle's first domain) as one PEM text, or NULL. */
static char *bundle_text(const struct tg_resource *b)
{
    const struct tg_strlist *roots = &b->u.trust_bundle.domains[0].roots_pem;
    size_t len = 1, at = 0;
    char *out;

    for (size_t i = 0; i < roots->n; i++)
        len += strlen(roots->v[i]) + 1;
    if ((out = malloc(len)) == NULL)
        return NULL;
    for (size_t i = 0; i < roots->n; i++) {
        size_t n = strlen(roots->v[i]);

        memcpy(out + at, roots->v[i], n);
        at += n;
        if (n > 0 && roots->v[i][n - 1] != '\n')
            out[at++] = '\n';
    }
    out[at] = '\0';
    return out;
}

void tg_cp_k8s_set_files(struct tg_cp_k8s *k, struct tg_resource *const res[TG_RES_N])
{
    char *pem;

    if (k->publish && res[TG_RES_TRUST_BUNDLE] != NULL &&
        res[TG_RES_TRUST_BUNDLE]->u.trust_bundle.n_domains > 0) {
        if ((pem = bundle_text(res[TG_RES_TRUST_BUNDLE])) == NULL) {
            tg_error("kubernetes: out of memory copying the trust bundle: keeping the last");
        } else if (k->bundle_pem == NULL || strcmp(pem, k->bundle_pem) != 0) {
            free(k->bundle_pem);
            k->bundle_pem = pem;
            on_change(k); /* the ConfigMaps follow, once listed */
        } else {
            free(pem);
        }
    }
    if (k->policy == NULL)
        return;
    if (merge_into(NULL, res, k->files) < 0) {
        tg_error("kubernetes: out of memory copying the mesh files' policy: keeping the last");
        return;
    }
    if (k->pushed[TG_RES_AUTHORIZATION] != NULL)
        remerge_policy(k); /* else: at the first sync */
}

const struct tg_resource *tg_cp_k8s_policy(const struct tg_cp_k8s *k, enum tg_res_type t,
                                           const struct tg_resource *files)
{
    return k->policy != NULL ? k->pushed[t] : files;
}

const struct tg_k8s_client_stats *tg_cp_k8s_stats(const struct tg_cp_k8s *k)
{
    return tg_k8s_client_stats(k->client);
}

const struct tg_k8s_client *tg_cp_k8s_client(const struct tg_cp_k8s *k)
{
    return k->client;
}

int tg_cp_k8s_request(struct tg_cp_k8s *k, const char *method, const char *path, const char *body,
                      const char *content_type, tg_k8s_on_reply on_reply, void *arg)
{
    return tg_k8s_client_request(k->client, method, path, body, content_type, on_reply, arg);
}

static void k8s_free(void *owner)
{
    struct tg_cp_k8s *k = owner;

    tg_resource_free(k->derived);
    tg_resource_free(k->overlay);
    tg_resource_free(k->merged);
    for (int t = 0; t < TG_RES_N; t++) {
        tg_resource_free(k->files[t]);
        tg_resource_free(k->pushed[t]);
    }
    tg_k8s_policy_free(k->policy);
    free(k->bundle_pem);
    free(k->trust_domain);
    free(k);
}

static void maybe_free(struct tg_cp_k8s *k)
{
    if (--k->closer.open == 0)
        tg_closer_finish(&k->closer, k8s_free, k);
}

static void on_timer_closed(uv_handle_t *h)
{
    maybe_free(h->data);
}

static void on_client_closed(void *arg)
{
    maybe_free(arg);
}

int tg_cp_k8s_new(uv_loop_t *loop, const struct tg_cp_config *cfg,
                  const struct tg_resource *overlay, void (*on_table)(void *arg), void *arg,
                  struct tg_cp_k8s **out, char *err)
{
    struct tg_cp_k8s *k = calloc(1, sizeof(*k));
    struct tg_k8s_client_cfg kc = {.api_server = cfg->k8s_api_server,
                                   .ca_file = cfg->k8s_ca,
                                   .token_file = cfg->k8s_token,
                                   .policy = cfg->k8s_policy,
                                   .configmaps = cfg->k8s_trust_configmaps};
    int rc;

    if (k == NULL || (k->trust_domain = strdup(cfg->trust_domain)) == NULL ||
        copy_overlay(overlay, &k->overlay) < 0 ||
        (cfg->k8s_policy &&
         tg_k8s_policy_new(cfg->k8s_admin_ns ? cfg->k8s_admin_ns : TG_CP_K8S_ADMIN_NS, &k->policy) <
             0)) {
        if (k != NULL)
            k8s_free(k);
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    }
    k->on_table = on_table;
    k->arg = arg;
    k->publish = cfg->k8s_trust_configmaps;
    if ((rc = tg_k8s_client_new(loop, &kc, on_change, k, &k->client, err)) < 0) {
        k8s_free(k);
        return rc;
    }
    uv_timer_init(loop, &k->debounce);
    k->debounce.data = k;
    k->closer.open = 2;
    *out = k;
    return 0;
}

void tg_cp_k8s_close(struct tg_cp_k8s *k, void (*on_closed)(void *arg), void *arg)
{
    if (!tg_closer_start(&k->closer, on_closed, arg))
        return;
    uv_close((uv_handle_t *)&k->debounce, on_timer_closed);
    tg_k8s_client_close(k->client, on_client_closed, k);
}

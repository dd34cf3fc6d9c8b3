#include "tollgate/gen.h"

#include <stdio.h>
#include <stdlib.h>

static atomic_uint_fast64_t next_id = 1;

static struct tg_policy_strs strs(const struct tg_strlist *l)
{
    return (struct tg_policy_strs){l->v, l->n};
}

static struct tg_policy_ports ports(const struct tg_intlist *l)
{
    return (struct tg_policy_ports){l->v, l->n};
}

/* The rules, scopes and revocations of the config, compiled. */
static int build_policy(const struct tg_config *cfg, struct tg_policy **out, char *err)
{
    size_t n_labels = cfg->workload_labels.n;
    struct tg_policy_rule *rules = calloc(cfg->n_rules + 1, sizeof(*rules));
    struct tg_policy_label *labels;
    struct tg_policy_input in;
    size_t total = n_labels, at = 0;
    char why[TG_ERRLEN];
    int rc;

    for (size_t i = 0; i < cfg->n_rules; i++)
        total += cfg->rules[i].scope_labels.n;
    labels = calloc(total + 1, sizeof(*labels));
    if (rules == NULL || labels == NULL) {
        free(rules);
        free(labels);
        return TG_ENOMEM;
    }
    for (size_t i = 0; i < n_labels; i++)
        labels[at++] = (struct tg_policy_label){cfg->workload_labels.keys[i],
                                                cfg->workload_labels.values[i]};
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct tg_rule_cfg *r = &cfg->rules[i];
        struct tg_policy_rule *p = &rules[i];

        p->name = r->name;
        p->action = r->deny ? TG_POLICY_DENY : TG_POLICY_ALLOW;
        p->scope.ns = r->scope_ns;
        if (r->scope_labels.n > 0) {
            p->scope.kind = TG_POLICY_SCOPE_WORKLOAD;
            p->scope.labels = &labels[at];
            p->scope.n_labels = r->scope_labels.n;
            for (size_t j = 0; j < r->scope_labels.n; j++)
                labels[at++] = (struct tg_policy_label){r->scope_labels.keys[j],
                                                        r->scope_labels.values[j]};
        } else {
            p->scope.kind = r->scope_ns != NULL ? TG_POLICY_SCOPE_NAMESPACE
                                                : TG_POLICY_SCOPE_MESH;
        }
        p->principals = strs(&r->principals);
        p->not_principals = strs(&r->not_principals);
        p->namespaces = strs(&r->namespaces);
        p->not_namespaces = strs(&r->not_namespaces);
        p->trust_domains = strs(&r->trust_domains);
        p->not_trust_domains = strs(&r->not_trust_domains);
        p->fingerprints = strs(&r->fingerprints);
        p->not_fingerprints = strs(&r->not_fingerprints);
        p->serials = strs(&r->serials);
        p->not_serials = strs(&r->not_serials);
        p->ports = ports(&r->ports);
        p->not_ports = ports(&r->not_ports);
    }
    in = (struct tg_policy_input){
        .workload_ns = cfg->workload_ns,
        .workload_labels = labels,
        .n_workload_labels = n_labels,
        .rules = rules,
        .n_rules = cfg->n_rules,
        .default_deny = cfg->authz_default_deny,
        .revoked_serials = strs(&cfg->revoked_serials),
        .revoked_fingerprints = strs(&cfg->revoked_fingerprints),
    };
    rc = tg_policy_compile(&in, out, why);
    if (rc < 0)
        tg_err_set(err, rc, "authorization: %s", why);
    free(rules);
    free(labels);
    return rc;
}

int tg_gen_build(const struct tg_gen_input *in, struct tg_gen **out, char *err)
{
    struct tg_config *cfg = in->cfg;
    struct tg_identity_files files = {cfg->cert_path, cfg->key_path, cfg->bundle_path,
                                      &cfg->crl_paths};
    struct tg_tls_settings s = {
        .allow_tls12 = cfg->allow_tls12,
        .max_chain_depth = cfg->max_chain_depth,
        .trust_domains = &cfg->trust_domains,
        .resumption = cfg->tls_resumption,
    };
    struct tg_gen *g = calloc(1, sizeof(*g));
    int rc = TG_ENOMEM;

    if (g == NULL)
        return rc;
    atomic_init(&g->refcnt, 1);
    g->cfg = tg_config_ref(cfg);
    if ((rc = build_policy(cfg, &g->policy, err)) < 0)
        goto fail;
    g->close_denied = cfg->close_denied;
    if ((rc = tg_identity_load(&files, &g->identity, err)) < 0)
        goto fail;
    s.server = true;
    if ((rc = tg_tls_ctx_new(g->identity, &s, &g->server, err)) < 0)
        goto fail;
    s.server = false;
    if ((rc = tg_tls_ctx_new(g->identity, &s, &g->client, err)) < 0)
        goto fail;
    g->mesh = (struct tg_mesh){cfg->dests, cfg->n_dests, cfg->mesh_refuse_outside};
    g->id = atomic_fetch_add(&next_id, 1);
    *out = g;
    return 0;
fail:
    tg_gen_unref(g); /* copes with a half-built generation */
    return rc;
}

struct tg_gen *tg_gen_ref(struct tg_gen *g)
{
    atomic_fetch_add_explicit(&g->refcnt, 1, memory_order_relaxed);
    return g;
}

void tg_gen_unref(struct tg_gen *g)
{
    if (g == NULL || atomic_fetch_sub_explicit(&g->refcnt, 1, memory_order_acq_rel) != 1)
        return;
    tg_tls_ctx_free(g->server);
    tg_tls_ctx_free(g->client);
    tg_identity_free(g->identity);
    tg_policy_free(g->policy);
    tg_config_unref(g->cfg);
    free(g);
}

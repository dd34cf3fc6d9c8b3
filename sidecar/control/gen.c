#include "tollgate/gen.h"
#include "tollgate/ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t next_id = 1;

static struct tg_policy_strs strs(const struct tg_strlist *l)
{
    return tg_policy_strs_of(l->v, l->n);
}

static struct tg_policy_ports ports(const struct tg_intlist *l)
{
    return (struct tg_policy_ports){l->v, l->n};
}

/* The peer and HTTP conditions of a rule, spelt alike in the config's rules (struct tg_rule_cfg)
 * and the pushed ones (struct tg_res_rule): a macro, as the two are different types. The ports
 * are given, converted: the pushed ones arrive as uint32_t. */
#define SET_CONDITIONS(p, r, ports_, not_ports_)                                                   \
    do {                                                                                           \
        (p)->principals = strs(&(r)->principals);                                                  \
        (p)->not_principals = strs(&(r)->not_principals);                                          \
        (p)->namespaces = strs(&(r)->namespaces);                                                  \
        (p)->not_namespaces = strs(&(r)->not_namespaces);                                          \
        (p)->trust_domains = strs(&(r)->trust_domains);                                            \
        (p)->not_trust_domains = strs(&(r)->not_trust_domains);                                    \
        (p)->fingerprints = strs(&(r)->fingerprints);                                              \
        (p)->not_fingerprints = strs(&(r)->not_fingerprints);                                      \
        (p)->serials = strs(&(r)->serials);                                                        \
        (p)->not_serials = strs(&(r)->not_serials);                                                \
        (p)->ports = (ports_);                                                                     \
        (p)->not_ports = (not_ports_);                                                             \
        (p)->methods = strs(&(r)->methods);                                                        \
        (p)->paths = strs(&(r)->paths);                                                            \
        (p)->hosts = strs(&(r)->hosts);                                                            \
    } while (0)

/* An array for our workload's labels and n_scope more (the rules' scopes), with ours copied in
 * at its start; *at is where the rules' go. NULL: out of memory. */
static struct tg_policy_label *labels_new(const struct tg_config *cfg, size_t n_scope, size_t *at)
{
    struct tg_policy_label *labels = calloc(cfg->workload_labels.n + n_scope + 1, sizeof(*labels));

    for (*at = 0; labels != NULL && *at < cfg->workload_labels.n; (*at)++)
        labels[*at] = (struct tg_policy_label){cfg->workload_labels.keys[*at],
                                               cfg->workload_labels.values[*at]};
    return labels;
}

/* Compiles rules (with the label array of labels_new) for our workload; the revocations are
 * rv's when it is not NULL, else the config's. */
static int compile(const struct tg_config *cfg, struct tg_policy_rule *rules, size_t n_rules,
                   struct tg_policy_label *labels, bool default_deny,
                   const struct tg_res_revocations *rv, struct tg_policy **out, char *why)
{
    struct tg_policy_input in = {
        .workload_ns = cfg->workload_ns,
        .workload_labels = labels,
        .n_workload_labels = cfg->workload_labels.n,
        .rules = rules,
        .n_rules = n_rules,
        .default_deny = default_deny,
        .revoked_serials = strs(rv != NULL ? &rv->serials : &cfg->revoked_serials),
        .revoked_fingerprints = strs(rv != NULL ? &rv->fingerprints : &cfg->revoked_fingerprints),
    };

    return tg_policy_compile(&in, out, why);
}

/* The rules, scopes and revocations of the config (the revocations pushed instead, when
 * rv is not NULL), compiled. */
static int build_policy_rev(const struct tg_config *cfg, const struct tg_res_revocations *rv,
                            struct tg_policy **out, char *err)
{
    struct tg_policy_rule *rules = calloc(cfg->n_rules + 1, sizeof(*rules));
    struct tg_policy_label *labels;
    size_t n_scope = 0, at;
    char why[TG_ERRLEN];
    int rc = TG_ENOMEM;

    for (size_t i = 0; i < cfg->n_rules; i++)
        n_scope += cfg->rules[i].scope_labels.n;
    labels = labels_new(cfg, n_scope, &at);
    if (rules == NULL || labels == NULL)
        goto done;
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
                labels[at++] =
                    (struct tg_policy_label){r->scope_labels.keys[j], r->scope_labels.values[j]};
        } else {
            p->scope.kind = r->scope_ns != NULL ? TG_POLICY_SCOPE_NAMESPACE : TG_POLICY_SCOPE_MESH;
        }
        SET_CONDITIONS(p, r, ports(&r->ports), ports(&r->not_ports));
    }
    rc = compile(cfg, rules, cfg->n_rules, labels, cfg->authz_default_deny, rv, out, why);
    if (rc < 0)
        tg_err_set(err, rc, "authorization: %s", why);
done:
    free(rules);
    free(labels);
    return rc;
}

/* ---- control-plane pushes ---- */

struct tg_cp_res *tg_cp_res_new(struct tg_resource *r, const char *version)
{
    struct tg_cp_res *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        tg_resource_free(r);
        return NULL;
    }
    atomic_init(&p->refs, 1);
    p->r = r;
    snprintf(p->version, sizeof(p->version), "%s", version);
    return p;
}

static void cp_res_free(struct tg_cp_res *p)
{
    tg_resource_free(p->r);
    free(p);
}

TG_REF_DEFINE(struct tg_cp_res, tg_cp_res_ref, tg_cp_res_unref, refs, cp_res_free)

static const struct tg_resource *pushed(const struct tg_gen_input *in, enum tg_res_type t)
{
    return in->cp != NULL && in->cp->res[t] != NULL ? in->cp->res[t]->r : NULL;
}

/* Ports arrive as uint32_t; the policy takes int so that it can refuse out-of-range ones. */
static struct tg_policy_ports rports(const struct tg_res_ports *p, int **pool, size_t *at)
{
    int *start = *pool + *at;

    for (size_t i = 0; i < p->n; i++)
        (*pool)[(*at)++] = p->v[i] > 0x7fffffff ? -1 : (int)p->v[i];
    return (struct tg_policy_ports){start, p->n};
}

/* The pushed authorization (replacing the config's) and revocations (replacing the
 * config's), compiled with our workload's namespace and labels; a rule with HTTP conditions
 * checked against the listeners and the mesh table. */
static int build_pushed_policy(const struct tg_gen_input *in, const struct tg_mesh *mesh,
                               struct tg_policy **out, bool *close_denied, char *err)
{
    const struct tg_config *cfg = in->cfg;
    const struct tg_resource *az = pushed(in, TG_RES_AUTHORIZATION);
    const struct tg_resource *rv = pushed(in, TG_RES_REVOCATIONS);
    const struct tg_res_authorization *a = &az->u.authorization;
    size_t n_scope = 0, n_ports = 0, at, pat = 0;
    struct tg_policy_rule *rules = calloc(a->n_rules + 1, sizeof(*rules));
    struct tg_policy_label *labels;
    int *portpool;
    char why[TG_ERRLEN];
    int rc = TG_ENOMEM;

    for (size_t i = 0; i < a->n_rules; i++) {
        n_scope += a->rules[i].n_scope_labels;
        n_ports += a->rules[i].ports.n + a->rules[i].not_ports.n;
    }
    labels = labels_new(cfg, n_scope, &at);
    portpool = calloc(n_ports + 1, sizeof(*portpool));
    if (rules == NULL || labels == NULL || portpool == NULL)
        goto done;
    for (size_t i = 0; i < a->n_rules; i++) {
        const struct tg_res_rule *r = &a->rules[i];
        struct tg_policy_rule *p = &rules[i];
        const char *ns =
            r->scope_namespace != NULL && r->scope_namespace[0] ? r->scope_namespace : NULL;

        p->name = r->name;
        p->action = r->action == TG_RES_DENY ? TG_POLICY_DENY : TG_POLICY_ALLOW;
        p->scope.ns = ns;
        if (r->n_scope_labels > 0) {
            p->scope.kind = TG_POLICY_SCOPE_WORKLOAD;
            p->scope.labels = &labels[at];
            p->scope.n_labels = r->n_scope_labels;
            for (size_t j = 0; j < r->n_scope_labels; j++)
                labels[at++] =
                    (struct tg_policy_label){r->scope_labels[j].key, r->scope_labels[j].value};
        } else {
            p->scope.kind = ns != NULL ? TG_POLICY_SCOPE_NAMESPACE : TG_POLICY_SCOPE_MESH;
        }
        SET_CONDITIONS(p, r, rports(&r->ports, &portpool, &pat),
                       rports(&r->not_ports, &portpool, &pat));
        if (r->methods.n + r->paths.n + r->hosts.n > 0 &&
            (rc = tg_config_http_rule_check(cfg, mesh->dests, mesh->n,
                                            r->name != NULL ? r->name : "", p->ports.v, p->ports.n,
                                            p->not_ports.v, p->not_ports.n, why)) < 0) {
            tg_err_set(err, rc, "authorization (pushed): rules[%zu]: %s", i, why);
            goto done;
        }
    }
    *close_denied = a->close_denied_connections;
    rc = compile(cfg, rules, a->n_rules, labels, a->default_deny,
                 rv != NULL ? &rv->u.revocations : NULL, out, why);
    if (rc < 0)
        tg_err_set(err, rc, "authorization (pushed): %s", why);
done:
    free(rules);
    free(labels);
    free(portpool);
    return rc;
}

/* The pushed mesh table as the config's destinations (expected IDs borrowed from the push,
 * which the generation holds). */
static int build_pushed_mesh(struct tg_gen *g, const struct tg_res_mesh_table *m, char *err)
{
    g->pushed_dests = calloc(m->n_destinations + 1, sizeof(*g->pushed_dests));
    if (g->pushed_dests == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < m->n_destinations; i++) {
        const struct tg_res_destination *s = &m->destinations[i];
        struct tg_mesh_dest *d = &g->pushed_dests[i];
        char why[TG_ERRLEN];

        if (tg_cidr_parse(s->address != NULL ? s->address : "", d, why) < 0)
            return tg_err_set(err, TG_EINVAL, "mesh_table (pushed): destinations[%zu]: %s", i, why);
        if (s->port > 65535)
            return tg_err_set(err, TG_EINVAL,
                              "mesh_table (pushed): destinations[%zu]: port %u out of range", i,
                              (unsigned)s->port);
        if (s->expected_ids.n == 0)
            return tg_err_set(err, TG_EINVAL, "mesh_table (pushed): destinations[%zu]: no expect",
                              i);
        d->port = (uint16_t)s->port;
        d->expect = s->expected_ids;
        d->http = s->protocol == TG_RES_HTTP;
        d->tunnel = s->tunnel;
    }
    g->mesh = (struct tg_mesh){g->pushed_dests, m->n_destinations, m->outside_refuse};
    return 0;
}

/* The pushed trust bundle as tg_identity takes it: one PEM text per trust domain, named. */
struct pushed_roots {
    struct tg_identity_roots *d; /* [n]; d[i].pem is text[i] */
    char **text;
    size_t n;
};

static void pushed_roots_free(struct pushed_roots *p)
{
    for (size_t i = 0; p->text != NULL && i < p->n; i++)
        free(p->text[i]);
    free(p->text);
    free(p->d);
}

static int pushed_roots(const struct tg_res_trust_bundle *b, struct pushed_roots *out, char *err)
{
    memset(out, 0, sizeof(*out));
    if (b->n_domains == 0)
        return tg_err_set(err, TG_EINVAL, "trust bundle (pushed): no trust domain");
    out->d = calloc(b->n_domains, sizeof(*out->d));
    out->text = calloc(b->n_domains, sizeof(*out->text));
    if (out->d == NULL || out->text == NULL)
        return TG_ENOMEM;
    out->n = b->n_domains; /* texts not made yet are NULL: pushed_roots_free copes */
    for (size_t i = 0; i < b->n_domains; i++) {
        const struct tg_res_domain_roots *r = &b->domains[i];
        size_t len = 0;
        FILE *f = open_memstream(&out->text[i], &len);

        if (f == NULL)
            return TG_ENOMEM;
        for (size_t j = 0; j < r->roots_pem.n; j++)
            fprintf(f, "%s\n", r->roots_pem.v[j]);
        if (fclose(f) != 0)
            return TG_ENOMEM;
        out->d[i] = (struct tg_identity_roots){r->trust_domain != NULL ? r->trust_domain : "",
                                               out->text[i], len};
    }
    return 0;
}

static int load_cp_identity(const struct tg_gen_input *in, struct tg_gen *g, char *err)
{
    const struct tg_resource *tb = pushed(in, TG_RES_TRUST_BUNDLE);
    const struct tg_resource *rv = pushed(in, TG_RES_REVOCATIONS);
    struct tg_identity_pem p = {.chain = in->chain_pem, .chain_len = in->chain_len};
    struct tg_identity_crl *crls = NULL;
    struct pushed_roots roots;
    int rc;

    if (tb == NULL || in->key == NULL)
        return tg_err_set(err, TG_EINVAL, "no trust bundle from the control plane yet");
    /* every domain named: ours is the one our certificate's ID is in (see tg_identity_pem) */
    if ((rc = pushed_roots(&tb->u.trust_bundle, &roots, err)) < 0)
        goto done;
    if (rv != NULL && rv->u.revocations.n_crls > 0) {
        if ((crls = calloc(rv->u.revocations.n_crls, sizeof(*crls))) == NULL) {
            rc = TG_ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < rv->u.revocations.n_crls; i++)
            crls[i] = (struct tg_identity_crl){rv->u.revocations.crls[i].data,
                                               rv->u.revocations.crls[i].len};
        p.crls = crls;
        p.n_crls = rv->u.revocations.n_crls;
    }
    p.key = in->key->pem;
    p.key_len = in->key->pem_len;
    p.domains = roots.d;
    p.n_domains = roots.n;
    rc = tg_identity_from_pem(&p, &g->identity, err);
done:
    free(crls);
    pushed_roots_free(&roots);
    return rc;
}

#define LIMIT_KEYS 10000 /* callers remembered per limiter; idle full buckets make room */

static struct tg_ratelimit_limits limits_of_cfg(const struct tg_limit_cfg *l)
{
    return (struct tg_ratelimit_limits){
        .conns = {l->conns_per_second, l->burst},
        .max_conns = l->max_concurrent,
        .bytes = {l->bytes_per_second, 0},
        .requests = {l->requests_per_second, l->requests_burst},
    };
}

/* A pushed limit as the table takes it; TG_EINVAL with err for a value it cannot take. */
static int limits_of_push(const struct tg_res_limit *l, size_t i, struct tg_ratelimit_limits *out,
                          char *err)
{
    double cps = l->connections_per_second;
    char why[TG_ERRLEN];

    if (l->match == NULL || tg_limit_match_check(l->match, why) < 0)
        return tg_err_set(err, TG_EINVAL, "rate_limits (pushed): limits[%zu]: %s", i,
                          l->match == NULL ? "no principal" : why);
    if (!isfinite(cps) || cps < 0 || cps > 1e6 || cps != floor(cps))
        return tg_err_set(err, TG_EINVAL,
                          "rate_limits (pushed): limits[%zu]: connections_per_second %g (want a "
                          "whole number from 0 to 1000000)",
                          i, cps);
    if (l->burst > 1000000 || l->max_concurrent > 1000000 || l->bytes_per_second > (1ULL << 40))
        return tg_err_set(err, TG_EINVAL,
                          "rate_limits (pushed): limits[%zu]: burst, max_concurrent (at most "
                          "1000000) or bytes_per_second (at most 1 TiB) out of range",
                          i);
    if (l->requests_per_second > 10000000 || l->requests_burst > 10000000)
        return tg_err_set(err, TG_EINVAL,
                          "rate_limits (pushed): limits[%zu]: requests_per_second %u or "
                          "requests_burst %u over 10000000",
                          i, (unsigned)l->requests_per_second, (unsigned)l->requests_burst);
    *out = (struct tg_ratelimit_limits){
        .conns = {(uint64_t)cps, l->burst},
        .max_conns = l->max_concurrent,
        .bytes = {l->bytes_per_second, 0},
        .requests = {l->requests_per_second, l->requests_burst},
    };
    return 0;
}

/* The limiters: the pushed ones, or the config's overrides then its default (matching "*"). */
static int build_limits(const struct tg_gen_input *in, struct tg_gen *g, char *err)
{
    const struct tg_config *cfg = in->cfg;
    const struct tg_resource *rl = pushed(in, TG_RES_RATE_LIMITS);
    size_t n = rl != NULL ? rl->u.rate_limits.n_limits : cfg->n_limits + 1;
    struct tg_limit_rule *rules = calloc(n + 1, sizeof(*rules));
    int rc = 0;

    if (rules == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (rl != NULL) {
            const struct tg_res_limit *l = &rl->u.rate_limits.limits[i];

            rules[i].match = l->match;
            rules[i].by_fingerprint = l->key_by == TG_RES_LIMIT_BY_FINGERPRINT;
            rc = limits_of_push(l, i, &rules[i].lim, err);
        } else {
            const struct tg_limit_cfg *l =
                i < cfg->n_limits ? &cfg->limits[i] : &cfg->limit_default;

            rules[i].match = i < cfg->n_limits ? l->principal : "*";
            rules[i].by_fingerprint = cfg->limit_by_fingerprint;
            rules[i].lim = limits_of_cfg(l);
        }
    }
    if (rc == 0 && (rc = tg_limit_set_new(rules, n, in->prev_limits, LIMIT_KEYS, &g->limits)) < 0)
        tg_err_set(err, rc, "rate_limits%s: %s", rl != NULL ? " (pushed)" : "",
                   rc == TG_ENOMEM ? "out of memory" : "a principal is not usable");
    free(rules);
    return rc;
}

/* Pushed proxy settings over the config's: TLS versions and suites into s, the timeouts and
 * the inbound mode into g. */
static int apply_settings(const struct tg_res_proxy_settings *p, struct tg_gen *g,
                          struct tg_tls_settings *s, char *err)
{
    static const uint64_t max_ms = 24ULL * 3600 * 1000;
    char why[TG_ERRLEN];

    if (p->min_tls_version != NULL && p->min_tls_version[0] != '\0') {
        const char *v = p->min_tls_version;

        if (strcmp(v, "1.2") != 0 && strcmp(v, "1.3") != 0)
            return tg_err_set(
                err, TG_EINVAL,
                "proxy_settings (pushed): tls_min_version \"%.20s\" (want 1.2 or 1.3)", v);
        s->allow_tls12 = strcmp(v, "1.2") == 0;
    }
    if (p->cipher_suites.n > 0) {
        if (tg_tls_check_suites(&p->cipher_suites, s->allow_tls12, why) < 0)
            return tg_err_set(err, TG_EINVAL, "proxy_settings (pushed): %s", why);
        s->cipher_suites = &p->cipher_suites;
    }
    if (p->handshake_timeout_ms > max_ms || p->idle_timeout_ms > max_ms ||
        p->connect_timeout_ms > max_ms)
        return tg_err_set(err, TG_EINVAL,
                          "proxy_settings (pushed): a timeout over 24 h (handshake %llu ms, idle "
                          "%llu ms, connect %llu ms)",
                          (unsigned long long)p->handshake_timeout_ms,
                          (unsigned long long)p->idle_timeout_ms,
                          (unsigned long long)p->connect_timeout_ms);
    if (p->handshake_timeout_ms > 0)
        g->handshake_timeout_ms = p->handshake_timeout_ms;
    if (p->idle_timeout_ms > 0)
        g->idle_timeout_ms = p->idle_timeout_ms;
    if (p->connect_timeout_ms > 0)
        g->connect_timeout_ms = p->connect_timeout_ms;
    if (p->inbound_mode != TG_RES_INBOUND_UNSET) {
        g->inbound_mode_set = true;
        g->inbound_mode =
            p->inbound_mode == TG_RES_INBOUND_PERMISSIVE ? TG_MODE_PERMISSIVE : TG_MODE_STRICT;
    }
    return 0;
}

/* The config's rules with HTTP conditions against a pushed mesh table (the static one was
 * checked at load): a push that would make one apply to a port that is not HTTP is refused. */
static int check_cfg_http_rules(const struct tg_config *cfg, const struct tg_mesh *m, char *err)
{
    char why[TG_ERRLEN];

    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct tg_rule_cfg *r = &cfg->rules[i];

        if (r->methods.n + r->paths.n + r->hosts.n > 0 &&
            tg_config_http_rule_check(cfg, m->dests, m->n, r->name, r->ports.v, r->ports.n,
                                      r->not_ports.v, r->not_ports.n, why) < 0)
            return tg_err_set(err, TG_EINVAL, "mesh_table (pushed): authorization.rules[%zu]: %s",
                              i, why);
    }
    return 0;
}

/* A generation without identity or TLS contexts: references, policy, settings (into s),
 * limits and mesh table. */
static int build_parts(const struct tg_gen_input *in, struct tg_gen *g, struct tg_tls_settings *s,
                       char *err)
{
    struct tg_config *cfg = in->cfg;
    const struct tg_resource *ps = pushed(in, TG_RES_PROXY_SETTINGS);
    const struct tg_resource *mt = pushed(in, TG_RES_MESH_TABLE);
    int rc;

    atomic_init(&g->refcnt, 1);
    g->cfg = tg_config_ref(cfg);
    for (int t = 0; in->cp != NULL && t < TG_RES_N; t++)
        if (in->cp->res[t] != NULL)
            g->pushed[t] = tg_cp_res_ref(in->cp->res[t]);
    *s = (struct tg_tls_settings){
        .allow_tls12 = cfg->allow_tls12,
        .max_chain_depth = cfg->max_chain_depth,
        .resumption = cfg->tls_resumption,
        .cipher_suites = &cfg->cipher_suites,
    };
    g->close_denied = cfg->close_denied;
    /* the mesh table first: it decides which ports of a transparent inbound listener are HTTP */
    if (mt != NULL && (rc = build_pushed_mesh(g, &mt->u.mesh_table, err)) < 0)
        return rc;
    if (mt == NULL)
        g->mesh = (struct tg_mesh){cfg->dests, cfg->n_dests, cfg->mesh_refuse_outside};
    if (pushed(in, TG_RES_AUTHORIZATION) != NULL)
        rc = build_pushed_policy(in, &g->mesh, &g->policy, &g->close_denied, err);
    else if ((rc = check_cfg_http_rules(cfg, &g->mesh, err)) < 0)
        return rc;
    else if (pushed(in, TG_RES_REVOCATIONS) != NULL) /* the config's rules */
        rc = build_policy_rev(cfg, &pushed(in, TG_RES_REVOCATIONS)->u.revocations, &g->policy, err);
    else
        rc = build_policy_rev(cfg, NULL, &g->policy, err);
    if (rc < 0)
        return rc;
    g->handshake_timeout_ms = cfg->handshake_timeout_ms;
    g->idle_timeout_ms = cfg->idle_timeout_ms;
    g->connect_timeout_ms = cfg->connect_timeout_ms;
    if (ps != NULL && (rc = apply_settings(&ps->u.proxy_settings, g, s, err)) < 0)
        return rc;
    return build_limits(in, g, err);
}

int tg_gen_check(const struct tg_gen_input *in, char *err)
{
    const struct tg_resource *tb = pushed(in, TG_RES_TRUST_BUNDLE);
    struct tg_gen *g = calloc(1, sizeof(*g));
    struct tg_tls_settings s;
    struct pushed_roots roots = {0};
    char why[TG_ERRLEN];
    int rc = TG_ENOMEM;

    if (g == NULL)
        return rc;
    if ((rc = build_parts(in, g, &s, err)) == 0 && tb != NULL &&
        (rc = pushed_roots(&tb->u.trust_bundle, &roots, err)) == 0 &&
        (rc = tg_identity_check_roots(roots.d, roots.n, why)) < 0)
        tg_err_set(err, rc, "trust bundle (pushed): %s", why);
    pushed_roots_free(&roots);
    tg_gen_unref(g);
    return rc;
}

int tg_gen_apply_push(const struct tg_gen_input *in, struct tg_cp_res *p, bool build,
                      struct tg_gen **out, char *err)
{
    struct tg_cp_state *st = tg_unconst(in->cp);
    enum tg_res_type t = p->r->type;
    struct tg_cp_res *old = st->res[t];
    int rc;

    st->res[t] = p;
    rc = build ? tg_gen_build(in, out, err) : tg_gen_check(in, err);
    if (rc < 0) {
        st->res[t] = old;
        tg_cp_res_unref(p);
        return rc;
    }
    tg_cp_res_unref(old);
    return 0;
}

int tg_gen_build(const struct tg_gen_input *in, struct tg_gen **out, char *err)
{
    struct tg_config *cfg = in->cfg;
    struct tg_identity_files files = {cfg->cert_path,         cfg->key_path,
                                      cfg->bundle_path,       &cfg->crl_paths,
                                      &cfg->trust_domains,    &cfg->trust_domain_bundles,
                                      cfg->intermediates_path};
    struct tg_tls_settings s;
    struct tg_gen *g = calloc(1, sizeof(*g));
    int rc = TG_ENOMEM;

    if (g == NULL)
        return rc;
    if ((rc = build_parts(in, g, &s, err)) < 0)
        goto fail;
    if (in->svid != NULL)
        rc = tg_svid_identity(in->svid, &g->identity, err);
    else if (in->chain_pem == NULL)
        rc = tg_identity_load(&files, &g->identity, err);
    else
        rc = load_cp_identity(in, g, err);
    if (rc < 0)
        goto fail;
    s.server = true;
    if ((rc = tg_tls_ctx_new(g->identity, &s, &g->server, err)) < 0)
        goto fail;
    s.server = false;
    if ((rc = tg_tls_ctx_new(g->identity, &s, &g->client, err)) < 0)
        goto fail;
    g->id = atomic_fetch_add(&next_id, 1);
    *out = g;
    return 0;
fail:
    tg_gen_unref(g); /* copes with a half-built generation */
    return rc;
}

static void gen_free(struct tg_gen *g)
{
    tg_tls_ctx_free(g->server);
    tg_tls_ctx_free(g->client);
    tg_identity_free(g->identity);
    tg_policy_free(g->policy);
    tg_limit_set_unref(g->limits);
    tg_config_unref(g->cfg);
    for (int t = 0; t < TG_RES_N; t++)
        tg_cp_res_unref(g->pushed[t]);
    free(g->pushed_dests);
    free(g);
}

TG_REF_DEFINE(struct tg_gen, tg_gen_ref, tg_gen_unref, refcnt, gen_free)

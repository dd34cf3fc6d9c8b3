/* Policy custom resources compiled into pushed resources (k8s_policy.h). */
#include "k8s_policy.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_config.h"
#include "tollgate/cfgload.h"

#define NPOLICY 3 /* TG_K8S_AUTHZ .. TG_K8S_REVOKE */

/* One resource as last seen, and what it last compiled to. */
struct entry {
    enum tg_k8s_kind kind;
    struct tg_resource *seen; /* a copy of the object as last listed: key, ns, name, status */
    const char *key, *ns, *name;
    struct tg_k8s_policy_obj pol; /* its spec field unused */
    char *spec;                   /* the spec text last compiled (good or not) */
    struct tg_resource *good;     /* the last spec that compiled; NULL: none ever did */
    bool ready;
    const char *reason;
    char message[TG_ERRLEN];
};

struct tg_k8s_policy {
    struct entry *v; /* in (kind, key) order */
    size_t n;
    char admin_ns[]; /* in the same allocation */
};

/* ---- compiling one spec ---- */

/* A spec is the mesh files' section of the same name (cp_config.c reads it, with the
 * sidecar's tables), plus spec.selector; JSON is YAML, so the one YAML layer reads it. */
static const struct {
    const char *section;
    enum tg_res_type type;
    const char *const mesh_only[3]; /* the section's keys a namespaced resource cannot set */
} kinds[NPOLICY] = {
    {"authorization", TG_RES_AUTHORIZATION, {"default", "close_denied", NULL}},
    {"rate_limits", TG_RES_RATE_LIMITS, {NULL}},
    {"revocations", TG_RES_REVOCATIONS, {"crls", NULL}},
};

static int refuse_expressions(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                              void *dst, void *obj)
{
    (void)dst;
    (void)obj;
    return tg_cfg_fail(cfg, v->line, path, "not supported: use matchLabels");
}

static const struct tg_cfg_field selector_fields[] = {
    TG_CFG_ROW("matchLabels", TG_CFG_LABELS, 0),
    TG_CFG_ROWX("matchExpressions", TG_CFG_FUNC, 0, .fn = refuse_expressions),
    {.key = NULL},
};

/* spec.selector's labels as every rule's (or limit's) scope labels, in r. */
static int scope_labels(struct tg_resource *r, const struct tg_labels *sel,
                        struct tg_res_label **out, size_t *n)
{
    if ((*out = tg_resource_array(r, sel->n, sizeof(**out))) == NULL)
        return TG_ENOMEM;
    for (*n = 0; *n < sel->n; (*n)++) {
        (*out)[*n].key = tg_resource_strdup(r, sel->keys[*n]);
        (*out)[*n].value = tg_resource_strdup(r, sel->values[*n]);
        if ((*out)[*n].key == NULL || (*out)[*n].value == NULL)
            return TG_ENOMEM;
    }
    return 0;
}

/* Scopes every rule and limit of r to namespace ns and the selector: written in the
 * resource, a scope of their own is refused (the namespace and spec.selector say it). */
static int scope_all(struct tg_cfg *cfg, struct tg_resource *r, const char *ns, const char *name,
                     const struct tg_labels *sel)
{
    struct tg_res_label *labels;
    size_t n_labels, n = r->type == TG_RES_AUTHORIZATION ? r->u.authorization.n_rules
                         : r->type == TG_RES_RATE_LIMITS ? r->u.rate_limits.n_limits
                                                         : 0;
    const char *what = r->type == TG_RES_AUTHORIZATION ? "rules" : "overrides";
    char full[TG_ERRLEN], at[TG_CFG_KEYPATH];

    if (n > TG_K8S_POLICY_MAX_ITEMS)
        return tg_cfg_fail(cfg, 0, what, "more than %d entries", TG_K8S_POLICY_MAX_ITEMS);
    if (scope_labels(r, sel, &labels, &n_labels) < 0)
        return tg_cfg_nomem(cfg);
    for (size_t i = 0; i < n; i++) {
        char **scope_ns;
        struct tg_res_label **scope_l;
        size_t *n_scope_l;

        if (r->type == TG_RES_AUTHORIZATION) {
            struct tg_res_rule *d = &r->u.authorization.rules[i];

            scope_ns = &d->scope_namespace;
            scope_l = &d->scope_labels;
            n_scope_l = &d->n_scope_labels;
            /* named for where it came from, unique among every rule pushed */
            snprintf(full, sizeof(full), "k8s/%s/%s/%s", ns, name, d->name);
            if ((d->name = tg_resource_strdup(r, full)) == NULL)
                return tg_cfg_nomem(cfg);
            d->scope_resolved = true; /* the sidecar needs no namespace or labels of its own */
        } else {
            struct tg_res_limit *d = &r->u.rate_limits.limits[i];

            scope_ns = &d->scope_namespace;
            scope_l = &d->scope_labels;
            n_scope_l = &d->n_scope_labels;
        }
        if (*scope_ns != NULL || *n_scope_l > 0) {
            snprintf(at, sizeof(at), "%s[%zu].scope", what, i);
            return tg_cfg_fail(cfg, 0, at,
                               "not in a policy resource: its namespace and spec.selector "
                               "scope it");
        }
        if ((*scope_ns = tg_resource_strdup(r, ns)) == NULL)
            return tg_cfg_nomem(cfg);
        *scope_l = labels;
        *n_scope_l = n_labels;
    }
    return 0;
}

/* The spec's mapping without selector (read into sel), into body (kids malloc'd). */
static int split_selector(struct tg_cfg *cfg, const struct tg_cfg_node *spec, int kind,
                          struct tg_cfg_node *body, struct tg_labels *sel)
{
    *body = *spec;
    body->n = 0;
    if ((body->kids = calloc(2 * spec->n + 1, sizeof(*body->kids))) == NULL)
        return tg_cfg_nomem(cfg);
    for (size_t i = 0; i < spec->n; i++) {
        const struct tg_cfg_node *k = spec->kids[2 * i], *v = spec->kids[2 * i + 1];
        int rc;

        for (size_t j = 0; kinds[kind].mesh_only[j] != NULL; j++)
            if (strcmp(k->str, kinds[kind].mesh_only[j]) == 0)
                return tg_cfg_fail(cfg, 0, k->str,
                                   "set in the mesh files only: a policy resource is namespaced");
        if (strcmp(k->str, "selector") != 0) {
            body->kids[2 * body->n] = spec->kids[2 * i];
            body->kids[2 * body->n++ + 1] = spec->kids[2 * i + 1];
        } else if ((rc = tg_cfg_walk(cfg, v, "selector", selector_fields, sel)) < 0) {
            return rc;
        }
    }
    return 0;
}

int tg_k8s_policy_compile(enum tg_k8s_kind k, const char *ns, const char *name, const char *spec,
                          struct tg_resource **out, char *err)
{
    struct tg_cfg cfg = {.file = "spec", .err = err};
    struct tg_cfg_doc doc = {0};
    struct tg_cfg_node body = {0};
    struct tg_labels sel = {0};
    struct tg_resource *r = NULL;
    int kind = (int)k - TG_K8S_AUTHZ, rc;

    if (k < TG_K8S_AUTHZ || k > TG_K8S_REVOKE)
        return tg_err_set(err, TG_EINVAL, "not a policy kind");
    if ((rc = tg_cfg_doc_parse(spec, strlen(spec), "spec", &doc, err)) < 0)
        return rc;
    for (struct tg_cfg_node *n = doc.nodes; n != NULL; n = n->next)
        n->line = 0; /* one line of JSON: the key paths say where */
    if (doc.root == NULL || doc.root->type != TG_CFG_T_MAPPING) {
        rc = tg_err_set(err, TG_EINVAL, "spec: not a JSON object");
        goto fail;
    }
    if ((rc = split_selector(&cfg, doc.root, kind, &body, &sel)) < 0)
        goto fail;
    if ((r = tg_resource_new(kinds[kind].type)) == NULL) {
        rc = tg_cfg_nomem(&cfg);
        goto fail;
    }
    if ((rc = tg_cp_section_read(&cfg, NULL, r, kinds[kind].section, "", &body)) < 0 ||
        (rc = scope_all(&cfg, r, ns, name, &sel)) < 0)
        goto fail;
    if (k == TG_K8S_REVOKE && r->u.revocations.serials.n + r->u.revocations.fingerprints.n == 0) {
        rc = tg_err_set(err, TG_EINVAL, "spec: serials and fingerprints: both empty");
        goto fail;
    }
    if (k == TG_K8S_AUTHZ && r->u.authorization.n_rules == 0) {
        rc = tg_err_set(err, TG_EINVAL, "spec: rules: required, 1 to %d entries",
                        TG_K8S_POLICY_MAX_ITEMS);
        goto fail;
    }
    if (k == TG_K8S_LIMITS && r->u.rate_limits.n_limits == 0) {
        rc = tg_err_set(err, TG_EINVAL, "spec: default or overrides: required");
        goto fail;
    }
    *out = r;
    r = NULL;
fail:
    if (rc < 0 && rc != TG_ENOMEM)
        rc = TG_EINVAL; /* the resource's status says why; the caller keeps the last good */
    tg_resource_free(r);
    tg_labels_free(&sel);
    free(body.kids);
    tg_cfg_doc_free(&doc);
    return rc;
}

/* ---- the resources by key ---- */

int tg_k8s_policy_new(const char *admin_namespace, struct tg_k8s_policy **out)
{
    size_t n = strlen(admin_namespace) + 1;
    struct tg_k8s_policy *p = calloc(1, sizeof(*p) + n);

    if (p == NULL)
        return TG_ENOMEM;
    memcpy(p->admin_ns, admin_namespace, n);
    *out = p;
    return 0;
}

static void entry_clear(struct entry *e)
{
    tg_resource_free(e->seen);
    free(e->spec);
    tg_resource_free(e->good);
}

void tg_k8s_policy_free(struct tg_k8s_policy *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        entry_clear(&p->v[i]);
    free(p->v);
    free(p);
}

/* (kind, key) order: the lists' order, kind after kind. */
static int entry_cmp(const struct entry *e, enum tg_k8s_kind kind, const char *key)
{
    if (e->kind != kind)
        return e->kind < kind ? -1 : 1;
    return strcmp(e->key, key);
}

/* Brings e (its kind set, the rest as last seen or zero) up to o, which it copies. */
static int entry_update(struct tg_k8s_policy *p, struct entry *e, const struct tg_k8s_obj *o,
                        bool *changed)
{
    const struct tg_k8s_policy_obj *pol = &o->u.policy;
    struct tg_resource *r = NULL, *seen = tg_resource_new(TG_RES_NONE);
    char *spec;
    int rc;

    if (seen == NULL || (e->key = tg_resource_strdup(seen, o->key)) == NULL ||
        (e->ns = tg_resource_strdup(seen, o->ns)) == NULL ||
        (e->name = tg_resource_strdup(seen, o->name)) == NULL ||
        (e->pol.ready = tg_resource_strdup(seen, pol->ready)) == NULL ||
        (e->pol.ready_reason = tg_resource_strdup(seen, pol->ready_reason)) == NULL ||
        (e->pol.ready_message = tg_resource_strdup(seen, pol->ready_message)) == NULL) {
        tg_resource_free(seen);
        tg_resource_free(e->seen);
        e->seen = NULL; /* a zero entry: cleared like any */
        e->key = "";
        return TG_ENOMEM;
    }
    e->pol.generation = pol->generation;
    tg_resource_free(e->seen);
    e->seen = seen;
    if (e->spec != NULL && strcmp(e->spec, pol->spec) == 0)
        return 0; /* a status write, a label: nothing to compile */
    if ((spec = strdup(pol->spec)) == NULL)
        return TG_ENOMEM;
    free(e->spec);
    e->spec = spec;
    e->ready = false;
    if (o->kind == TG_K8S_REVOKE && strcmp(o->ns, p->admin_ns) != 0) {
        e->reason = "NotAdminNamespace";
        snprintf(e->message, sizeof(e->message),
                 "a Revocation applies to the whole mesh: it is read only in namespace %s",
                 p->admin_ns);
        return 0; /* never applied: nothing to keep */
    }
    rc = tg_k8s_policy_compile(o->kind, o->ns, o->name, pol->spec, &r, e->message);
    if (rc == TG_ENOMEM)
        return rc;
    if (rc < 0) {
        e->reason = "InvalidSpec";
        return 0; /* e->good stays: the last good policy */
    }
    tg_resource_free(e->good);
    e->good = r;
    e->ready = true;
    e->reason = "Applied";
    snprintf(e->message, sizeof(e->message), "compiled and pushed to the sidecars it selects");
    *changed = true;
    return 0;
}

/* The new entries are built beside the old ones (both in (kind, key) order: a merge walk);
 * an old entry moves over when its object is still listed, and is cleared when not (deleted:
 * its rules go). Out of memory: the resources not walked yet are dropped (*changed says so)
 * and come back with the next update. */
int tg_k8s_policy_update(struct tg_k8s_policy *p, const struct tg_k8s_list lists[TG_K8S_NKINDS],
                         bool *changed)
{
    size_t total = 0, old = 0, n = 0;
    struct entry *v;
    int rc = 0;

    *changed = false;
    for (int k = TG_K8S_AUTHZ; k <= TG_K8S_REVOKE; k++)
        total += lists[k].n;
    if ((v = calloc(total + 1, sizeof(*v))) == NULL)
        return TG_ENOMEM;
    for (int k = TG_K8S_AUTHZ; k <= TG_K8S_REVOKE && rc == 0; k++) {
        for (size_t i = 0; i < lists[k].n && rc == 0; i++, n++) {
            const struct tg_k8s_obj *o = lists[k].v[i];

            while (old < p->n && entry_cmp(&p->v[old], (enum tg_k8s_kind)k, o->key) < 0) {
                *changed = *changed || p->v[old].good != NULL;
                entry_clear(&p->v[old++]); /* deleted */
            }
            if (old < p->n && entry_cmp(&p->v[old], (enum tg_k8s_kind)k, o->key) == 0)
                v[n] = p->v[old++];
            v[n].kind = (enum tg_k8s_kind)k;
            rc = entry_update(p, &v[n], o, changed);
        }
    }
    for (; old < p->n; old++) {
        *changed = *changed || p->v[old].good != NULL;
        entry_clear(&p->v[old]);
    }
    free(p->v);
    p->v = v;
    p->n = n;
    return rc;
}

void tg_k8s_policy_stale(const struct tg_k8s_policy *p,
                         void (*fn)(void *arg, const struct tg_k8s_policy_status *st), void *arg)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct entry *e = &p->v[i];
        const struct tg_k8s_policy_obj *seen = &e->pol;
        struct tg_k8s_policy_status st = {e->kind,  e->ns,     e->name,   seen->generation,
                                          e->ready, e->reason, e->message};

        if (e->reason == NULL)
            continue;
        if (strcmp(seen->ready, e->ready ? "True" : "False") == 0 &&
            strcmp(seen->ready_reason, e->reason) == 0 &&
            strcmp(seen->ready_message, e->message) == 0)
            continue;
        fn(arg, &st);
    }
}

/* ---- merging with the mesh files' ---- */

static int copy_strs(struct tg_resource *r, struct tg_strlist *dst, const struct tg_strlist *src)
{
    return tg_resource_strlist(r, dst, (const char *const *)src->v, src->n);
}

static int copy_ports(struct tg_resource *r, struct tg_res_ports *dst,
                      const struct tg_res_ports *src)
{
    dst->n = src->n;
    if (src->n == 0) {
        dst->v = NULL;
        return 0;
    }
    return (dst->v = tg_resource_memdup(r, src->v, src->n * sizeof(*src->v))) == NULL ? TG_ENOMEM
                                                                                      : 0;
}

static int copy_labels(struct tg_resource *r, struct tg_res_label **dst, size_t *n_dst,
                       const struct tg_res_label *src, size_t n)
{
    if ((*dst = tg_resource_array(r, n, sizeof(**dst))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (((*dst)[i].key = tg_resource_strdup(r, src[i].key)) == NULL ||
            ((*dst)[i].value = tg_resource_strdup(r, src[i].value)) == NULL)
            return TG_ENOMEM;
    *n_dst = n;
    return 0;
}

static char *copy_str(struct tg_resource *r, const char *s)
{
    return s != NULL ? tg_resource_strdup(r, s) : NULL;
}

static int copy_rule(struct tg_resource *r, struct tg_res_rule *d, const struct tg_res_rule *s)
{
    static const size_t lists[] = {offsetof(struct tg_res_rule, principals),
                                   offsetof(struct tg_res_rule, not_principals),
                                   offsetof(struct tg_res_rule, namespaces),
                                   offsetof(struct tg_res_rule, not_namespaces),
                                   offsetof(struct tg_res_rule, trust_domains),
                                   offsetof(struct tg_res_rule, not_trust_domains),
                                   offsetof(struct tg_res_rule, fingerprints),
                                   offsetof(struct tg_res_rule, not_fingerprints),
                                   offsetof(struct tg_res_rule, serials),
                                   offsetof(struct tg_res_rule, not_serials),
                                   offsetof(struct tg_res_rule, methods),
                                   offsetof(struct tg_res_rule, paths),
                                   offsetof(struct tg_res_rule, hosts)};

    for (size_t i = 0; i < TG_NELEM(lists); i++)
        if (copy_strs(r, (struct tg_strlist *)((char *)d + lists[i]),
                      (const struct tg_strlist *)((const char *)s + lists[i])) < 0)
            return TG_ENOMEM;
    d->name = copy_str(r, s->name);
    d->action = s->action;
    d->scope_resolved = s->scope_resolved;
    d->scope_namespace = copy_str(r, s->scope_namespace);
    if ((s->name != NULL && d->name == NULL) ||
        (s->scope_namespace != NULL && d->scope_namespace == NULL) ||
        copy_labels(r, &d->scope_labels, &d->n_scope_labels, s->scope_labels, s->n_scope_labels) <
            0 ||
        copy_ports(r, &d->ports, &s->ports) < 0 || copy_ports(r, &d->not_ports, &s->not_ports) < 0)
        return TG_ENOMEM;
    return 0;
}

static int copy_limit(struct tg_resource *r, struct tg_res_limit *d, const struct tg_res_limit *s)
{
    *d = *s;
    d->match = copy_str(r, s->match);
    d->scope_namespace = copy_str(r, s->scope_namespace);
    if ((s->match != NULL && d->match == NULL) ||
        (s->scope_namespace != NULL && d->scope_namespace == NULL))
        return TG_ENOMEM;
    return copy_labels(r, &d->scope_labels, &d->n_scope_labels, s->scope_labels, s->n_scope_labels);
}

/* Appends src's strings to dst (grown in r). */
static int append_strs(struct tg_resource *r, struct tg_strlist *dst, const struct tg_strlist *src)
{
    char **v = tg_resource_array(r, dst->n + src->n, sizeof(*v));

    if (v == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < dst->n; i++)
        v[i] = dst->v[i]; /* already in r */
    for (size_t i = 0; i < src->n; i++)
        if ((v[dst->n + i] = tg_resource_strdup(r, src->v[i])) == NULL)
            return TG_ENOMEM;
    dst->v = v;
    dst->n += src->n;
    return 0;
}

/* The items of a compiled resource (rules, limits) and their count. */
static const void *items_of(const struct tg_resource *g, size_t *n)
{
    if (g->type == TG_RES_AUTHORIZATION) {
        *n = g->u.authorization.n_rules;
        return g->u.authorization.rules;
    }
    *n = g->u.rate_limits.n_limits;
    return g->u.rate_limits.limits;
}

typedef int (*copy_fn)(struct tg_resource *r, void *dst, const void *src);

static int copy_rule_v(struct tg_resource *r, void *dst, const void *src)
{
    return copy_rule(r, dst, src);
}

static int copy_limit_v(struct tg_resource *r, void *dst, const void *src)
{
    return copy_limit(r, dst, src);
}

/* Into r, an array (*out, *n) of files' items (fv, fn) then those of every compiled resource
 * of r's type, elem bytes each, copied by copy. */
static int merge_items(const struct tg_k8s_policy *p, struct tg_resource *r, const void *fv,
                       size_t fn, size_t elem, copy_fn copy, void **out, size_t *n)
{
    size_t total = fn, gn;
    char *v;

    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].good != NULL && p->v[i].good->type == r->type) {
            items_of(p->v[i].good, &gn);
            total += gn;
        }
    if ((v = tg_resource_array(r, total, elem)) == NULL)
        return TG_ENOMEM;
    *out = v;
    for (size_t i = 0; i < fn; i++)
        if (copy(r, v + (*n)++ * elem, (const char *)fv + i * elem) < 0)
            return TG_ENOMEM;
    for (size_t i = 0; i < p->n; i++) {
        const char *gv;

        if (p->v[i].good == NULL || p->v[i].good->type != r->type)
            continue;
        gv = items_of(p->v[i].good, &gn);
        for (size_t j = 0; j < gn; j++)
            if (copy(r, v + (*n)++ * elem, gv + j * elem) < 0)
                return TG_ENOMEM;
    }
    return 0;
}

static int merge_authz(const struct tg_k8s_policy *p, const struct tg_res_authorization *f,
                       struct tg_resource *r)
{
    struct tg_res_authorization *a = &r->u.authorization;
    void *v = NULL;
    int rc =
        merge_items(p, r, f->rules, f->n_rules, sizeof(*a->rules), copy_rule_v, &v, &a->n_rules);

    a->rules = v;
    a->default_deny = f->default_deny;
    a->close_denied_connections = f->close_denied_connections;
    return rc;
}

static int merge_limits(const struct tg_k8s_policy *p, const struct tg_res_rate_limits *f,
                        struct tg_resource *r)
{
    void *v = NULL;
    int rc = merge_items(p, r, f->limits, f->n_limits, sizeof(*r->u.rate_limits.limits),
                         copy_limit_v, &v, &r->u.rate_limits.n_limits);

    r->u.rate_limits.limits = v;
    return rc;
}

static int merge_revocations(const struct tg_k8s_policy *p, const struct tg_res_revocations *f,
                             struct tg_resource *r)
{
    struct tg_res_revocations *rv = &r->u.revocations;

    if (copy_strs(r, &rv->serials, &f->serials) < 0 ||
        copy_strs(r, &rv->fingerprints, &f->fingerprints) < 0 ||
        (rv->crls = tg_resource_array(r, f->n_crls, sizeof(*rv->crls))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < f->n_crls; i++) {
        rv->crls[i].len = f->crls[i].len;
        if ((rv->crls[i].data = tg_resource_memdup(r, f->crls[i].data, f->crls[i].len)) == NULL)
            return TG_ENOMEM;
    }
    rv->n_crls = f->n_crls;
    for (size_t i = 0; i < p->n; i++) {
        const struct tg_resource *g = p->v[i].good;

        if (g == NULL || g->type != TG_RES_REVOCATIONS)
            continue;
        if (append_strs(r, &rv->serials, &g->u.revocations.serials) < 0 ||
            append_strs(r, &rv->fingerprints, &g->u.revocations.fingerprints) < 0)
            return TG_ENOMEM;
    }
    return 0;
}

int tg_k8s_policy_merge(const struct tg_k8s_policy *p, enum tg_res_type t,
                        const struct tg_resource *files, struct tg_resource **out)
{
    static const struct tg_k8s_policy none = {0};
    struct tg_resource *r = tg_resource_new(t);
    int rc = TG_EINVAL;

    if (p == NULL)
        p = &none; /* a copy of files */
    if (r == NULL)
        return TG_ENOMEM;
    if (t == TG_RES_AUTHORIZATION)
        rc = merge_authz(p, &files->u.authorization, r);
    else if (t == TG_RES_RATE_LIMITS)
        rc = merge_limits(p, &files->u.rate_limits, r);
    else if (t == TG_RES_REVOCATIONS)
        rc = merge_revocations(p, &files->u.revocations, r);
    if (rc < 0) {
        tg_resource_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

char *tg_k8s_policy_status_patch(const struct tg_k8s_policy_status *st, const char *now, char *path,
                                 size_t cap)
{
    static const char *const plurals[NPOLICY] = {"authorizationpolicies", "ratelimits",
                                                 "revocations"};
    json_t *cond =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "type", "Ready", "status",
                  st->ready ? "True" : "False", "reason", st->reason, "message", st->message,
                  "lastTransitionTime", now, "observedGeneration", (json_int_t)st->generation);
    json_t *patch = cond != NULL ? json_pack("{s:{s:I, s:[o]}}", "status", "observedGeneration",
                                             (json_int_t)st->generation, "conditions", cond)
                                 : NULL;
    char *body = patch != NULL ? json_dumps(patch, JSON_COMPACT) : NULL;

    json_decref(patch);
    snprintf(path, cap, TG_K8S_POLICY_API "/namespaces/%s/%s/%s/status", st->ns,
             plurals[st->kind - TG_K8S_AUTHZ], st->name);
    return body;
}

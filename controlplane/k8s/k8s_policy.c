/* Policy custom resources compiled into pushed resources (k8s_policy.h). */
#include "k8s_policy.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_config.h"

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

struct cc {
    json_t *spec;
    struct tg_resource *r;
    const char *ns, *name;
    struct tg_res_label *sel; /* spec.selector.matchLabels */
    size_t n_sel;
    enum tg_res_limit_key key; /* RateLimit spec.key */
    char *err;
};

static int bad(struct cc *c, const char *field, const char *fmt, const char *what)
{
    return tg_err_set(c->err, TG_EINVAL, "spec.%s: %s%s", field, fmt, what != NULL ? what : "");
}

/* Every key of obj is among keys (NULL-terminated): the schema's, and nothing else. */
static int known_keys(struct cc *c, json_t *obj, const char *at, const char *const *keys)
{
    const char *k;
    json_t *v;

    json_object_foreach(obj, k, v)
    {
        size_t i = 0;
        char field[128];

        while (keys[i] != NULL && strcmp(keys[i], k) != 0)
            i++;
        if (keys[i] == NULL) {
            snprintf(field, sizeof(field), "%s%.64s", at, k);
            return bad(c, field, "unknown field", NULL);
        }
    }
    return 0;
}

/* The list obj.<k>, of strings (sv) or of ports (pv, when not NULL); absent: empty. */
static int list(struct cc *c, const json_t *obj, const char *k, const char *at,
                struct tg_strlist *sv, struct tg_res_ports *pv)
{
    const json_t *a = json_object_get(obj, k), *v;
    char field[128];
    size_t i, n = json_array_size(a);

    snprintf(field, sizeof(field), "%s%s", at, k);
    if (a == NULL)
        return 0;
    if (!json_is_array(a) || n > TG_K8S_POLICY_MAX_VALUES)
        return bad(c, field, "not a list of at most 256 ", pv != NULL ? "ports" : "strings");
    if (pv != NULL ? (pv->v = tg_resource_array(c->r, n, sizeof(*pv->v))) == NULL
                   : (sv->v = tg_resource_array(c->r, n, sizeof(*sv->v))) == NULL)
        return TG_ENOMEM;
    json_array_foreach(a, i, v)
    {
        if (pv != NULL) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
                return bad(c, field, "an entry that is not a port (1..65535)", NULL);
            pv->v[pv->n++] = (uint32_t)json_integer_value(v);
            continue;
        }
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 1024)
            return bad(c, field, "an entry that is not a string of 1 to 1024 bytes", NULL);
        if ((sv->v[sv->n++] = tg_resource_strdup(c->r, json_string_value(v))) == NULL)
            return TG_ENOMEM;
    }
    return 0;
}

/* A label key ([prefix/]name) or value, as Kubernetes allows them (roughly: the API server
 * has checked the labels of pods; this keeps a selector from holding what none can match). */
static bool label_ok(const char *s, bool key)
{
    size_t n = strlen(s);

    if (n > (key ? 316u : 63u) || (key && n == 0))
        return false;
    return strspn(s, key ? "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./"
                         : "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
           n;
}

/* spec.selector: {matchLabels: {k: v}}; absent: every pod of the namespace. */
static int selector(struct cc *c, struct tg_res_label **out, size_t *n)
{
    static const char *const sel_keys[] = {"matchLabels", NULL};
    json_t *sel = json_object_get(c->spec, "selector"), *ml, *v;
    const char *k;
    int rc;

    *out = NULL;
    *n = 0;
    if (sel == NULL)
        return 0;
    if (!json_is_object(sel))
        return bad(c, "selector", "not an object", NULL);
    if (json_object_get(sel, "matchExpressions") != NULL)
        return bad(c, "selector.matchExpressions", "not supported: use matchLabels", NULL);
    if ((rc = known_keys(c, sel, "selector.", sel_keys)) < 0)
        return rc;
    ml = json_object_get(sel, "matchLabels");
    if (ml == NULL)
        return 0;
    if (!json_is_object(ml) || json_object_size(ml) > 64)
        return bad(c, "selector.matchLabels", "not a map of at most 64 labels", NULL);
    if ((*out = tg_resource_array(c->r, json_object_size(ml), sizeof(**out))) == NULL)
        return TG_ENOMEM;
    json_object_foreach(ml, k, v)
    {
        if (!label_ok(k, true) || !json_is_string(v) || !label_ok(json_string_value(v), false))
            return bad(c, "selector.matchLabels: not a label: ", "", k);
        (*out)[*n].key = tg_resource_strdup(c->r, k);
        (*out)[*n].value = tg_resource_strdup(c->r, json_string_value(v));
        if ((*out)[*n].key == NULL || (*out)[*n].value == NULL)
            return TG_ENOMEM;
        (*n)++;
    }
    return 0;
}

/* The list spec.<k> of 1..TG_K8S_POLICY_MAX_ITEMS objects. */
static int items(struct cc *c, const char *k, json_t **out)
{
    *out = json_object_get(c->spec, k);
    if (*out == NULL)
        return bad(c, k, "required", NULL);
    if (!json_is_array(*out) || json_array_size(*out) == 0 ||
        json_array_size(*out) > TG_K8S_POLICY_MAX_ITEMS)
        return bad(c, k, "not a list of 1 to 64 entries", NULL);
    return 0;
}

static const char *const rule_keys[] = {"name",          "action",
                                        "principals",    "not_principals",
                                        "namespaces",    "not_namespaces",
                                        "trust_domains", "not_trust_domains",
                                        "fingerprints",  "not_fingerprints",
                                        "serials",       "not_serials",
                                        "ports",         "not_ports",
                                        "methods",       "paths",
                                        "hosts",         NULL};

static int one_rule(struct cc *c, json_t *j, const char *at, void *dst)
{
    struct tg_res_rule *d = dst;
    const json_t *name = json_object_get(j, "name"), *action = json_object_get(j, "action");
    char full[TG_ERRLEN];
    int rc;

    if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > 63)
        return bad(c, at, "name: required, 1 to 63 characters", NULL);
    if (!json_is_string(action) || (strcmp(json_string_value(action), "allow") != 0 &&
                                    strcmp(json_string_value(action), "deny") != 0))
        return bad(c, at, "action: required, allow or deny", NULL);
    /* named for where it came from, unique among every rule pushed */
    snprintf(full, sizeof(full), "k8s/%s/%s/%s", c->ns, c->name, json_string_value(name));
    if ((d->name = tg_resource_strdup(c->r, full)) == NULL ||
        (d->scope_namespace = tg_resource_strdup(c->r, c->ns)) == NULL)
        return TG_ENOMEM;
    d->action = strcmp(json_string_value(action), "deny") == 0 ? TG_RES_DENY : TG_RES_ALLOW;
    d->scope_labels = c->sel;
    d->n_scope_labels = c->n_sel;
    d->scope_resolved = true; /* the sidecar needs no workload namespace or labels of its own */
#define S(f)                                                                                       \
    if ((rc = list(c, j, #f, at, &d->f, NULL)) < 0)                                                \
        return rc;
    S(principals)
    S(not_principals)
    S(namespaces)
    S(not_namespaces)
    S(trust_domains)
    S(not_trust_domains)
    S(fingerprints)
    S(not_fingerprints)
    S(serials)
    S(not_serials)
    S(methods)
    S(paths)
    S(hosts)
#undef S
    if ((rc = list(c, j, "ports", at, NULL, &d->ports)) < 0 ||
        (rc = list(c, j, "not_ports", at, NULL, &d->not_ports)) < 0)
        return rc;
    return 0;
}

/* The rules (or revocations) as every sidecar's policy compiler will read them. */
static int check_compiles(struct cc *c, struct tg_res_rule *rules, size_t n,
                          const struct tg_res_revocations *rv)
{
    const struct tg_res_authorization a = {.rules = rules, .n_rules = n};

    return tg_cp_rules_check(&a, rv, c->err);
}

/* One entry of the spec's list: checked, and written into dst (an element of its array). */
typedef int (*item_fn)(struct cc *c, json_t *j, const char *at, void *dst);

/* spec: {selector, <k>: [items]}: the selector into c, *out an array of the items (fn scopes
 * each to c's selector). */
static int compile_list(struct cc *c, const char *k, const char *const *item_keys, size_t elem,
                        item_fn fn, void **out, size_t *n)
{
    const char *const keys[] = {"selector", k, NULL};
    json_t *list, *j;
    size_t i;
    int rc;

    if ((rc = known_keys(c, c->spec, "", keys)) < 0 || (rc = selector(c, &c->sel, &c->n_sel)) < 0 ||
        (rc = items(c, k, &list)) < 0)
        return rc;
    if ((*out = tg_resource_array(c->r, json_array_size(list), elem)) == NULL)
        return TG_ENOMEM;
    json_array_foreach(list, i, j)
    {
        char at[64];

        snprintf(at, sizeof(at), "%s[%zu].", k, i);
        if (!json_is_object(j))
            return bad(c, at, "not an object", NULL);
        if ((rc = known_keys(c, j, at, item_keys)) < 0 ||
            (rc = fn(c, j, at, (char *)*out + i * elem)) < 0)
            return rc;
        (*n)++;
    }
    return 0;
}

static int compile_authz(struct cc *c)
{
    struct tg_res_authorization *a = &c->r->u.authorization;
    void *v = NULL;
    int rc = compile_list(c, "rules", rule_keys, sizeof(*a->rules), one_rule, &v, &a->n_rules);

    a->rules = v;
    return rc < 0 ? rc : check_compiles(c, a->rules, a->n_rules, NULL);
}

/* "*", "prefix*", "*suffix" or an exact SPIFFE ID, as the pushed form's match takes. */
static bool pattern_ok(const char *s)
{
    size_t n = strlen(s);
    const char *star = strchr(s, '*');

    if (n == 0 || n > 2048 || strspn(s, "\t\r\n ") > 0 || strpbrk(s, "\t\r\n ") != NULL)
        return false;
    if (star == NULL)
        return strncmp(s, "spiffe://", 9) == 0 && n > 9;
    return strchr(star + 1, '*') == NULL && (star == s || star == s + n - 1);
}

/* A limit's keys, as in the mesh files' rate_limits: principal (overrides only), then its
 * values. */
static const char *const limit_keys[] = {
    "principal",        "connections_per_second", "burst",          "max_concurrent",
    "bytes_per_second", "requests_per_second",    "requests_burst", NULL};

/* One limit: an override (its principal a pattern) or, when principal is false, the default
 * (pushed as principal "*", after the overrides, as the mesh files' default is). */
static int one_limit(struct cc *c, json_t *j, const char *at, bool principal,
                     struct tg_res_limit *d)
{
    static const struct {
        const char *k;
        uint64_t max;
    } nums[] = {{"burst", UINT32_MAX},
                {"max_concurrent", UINT32_MAX},
                {"bytes_per_second", 1ULL << 40},
                {"requests_per_second", 10000000},
                {"requests_burst", 10000000}};
    const json_t *who = json_object_get(j, "principal"),
                 *cps = json_object_get(j, "connections_per_second");
    uint64_t v[TG_NELEM(nums)] = {0};
    int rc;

    if (!json_is_object(j))
        return bad(c, at, "not an object", NULL);
    if ((rc = known_keys(c, j, at, principal ? limit_keys : limit_keys + 1)) < 0)
        return rc;
    if (principal && (!json_is_string(who) || !pattern_ok(json_string_value(who))))
        return bad(c, at, "principal: required: \"*\", \"prefix*\", \"*suffix\" or a spiffe:// ID",
                   NULL);
    if (cps != NULL &&
        (!json_is_number(cps) || json_number_value(cps) < 0 || json_number_value(cps) > 1000000))
        return bad(c, at, "connections_per_second: a number from 0 to 1000000", NULL);
    for (size_t k = 0; k < TG_NELEM(nums); k++) {
        const json_t *n = json_object_get(j, nums[k].k);

        if (n == NULL)
            continue;
        if (!json_is_integer(n) || json_integer_value(n) < 0 ||
            (uint64_t)json_integer_value(n) > nums[k].max)
            return bad(c, at, "out of range or not an integer: ", nums[k].k);
        v[k] = (uint64_t)json_integer_value(n);
    }
    if ((d->match = tg_resource_strdup(c->r, principal ? json_string_value(who) : "*")) == NULL ||
        (d->scope_namespace = tg_resource_strdup(c->r, c->ns)) == NULL)
        return TG_ENOMEM;
    d->key_by = c->key;
    d->connections_per_second = cps != NULL ? json_number_value(cps) : 0;
    d->burst = (uint32_t)v[0];
    d->max_concurrent = (uint32_t)v[1];
    d->bytes_per_second = v[2];
    d->requests_per_second = (uint32_t)v[3];
    d->requests_burst = (uint32_t)v[4];
    d->scope_labels = c->sel;
    d->n_scope_labels = c->n_sel;
    return 0;
}

/* spec: {selector, key, default, overrides}, the shape of a mesh file's rate_limits. */
static int compile_limits(struct cc *c)
{
    static const char *const keys[] = {"selector", "key", "default", "overrides", NULL};
    struct tg_res_rate_limits *rl = &c->r->u.rate_limits;
    json_t *key = json_object_get(c->spec, "key"), *def = json_object_get(c->spec, "default"),
           *ov = json_object_get(c->spec, "overrides"), *j;
    size_t i;
    int rc;

    if ((rc = known_keys(c, c->spec, "", keys)) < 0 || (rc = selector(c, &c->sel, &c->n_sel)) < 0)
        return rc;
    if (key != NULL &&
        (!json_is_string(key) || (strcmp(json_string_value(key), "id") != 0 &&
                                  strcmp(json_string_value(key), "fingerprint") != 0)))
        return bad(c, "key", "id or fingerprint", NULL);
    c->key = key != NULL && strcmp(json_string_value(key), "fingerprint") == 0
                 ? TG_RES_LIMIT_BY_FINGERPRINT
                 : TG_RES_LIMIT_BY_ID;
    if (def == NULL && ov == NULL)
        return bad(c, "default", "required, or overrides", NULL);
    if (ov != NULL && (!json_is_array(ov) || json_array_size(ov) == 0 ||
                       json_array_size(ov) > TG_K8S_POLICY_MAX_ITEMS))
        return bad(c, "overrides", "not a list of 1 to 64 entries", NULL);
    rl->limits = tg_resource_array(c->r, json_array_size(ov) + 1, sizeof(*rl->limits));
    if (rl->limits == NULL)
        return TG_ENOMEM;
    json_array_foreach(ov, i, j)
    {
        char at[64];

        snprintf(at, sizeof(at), "overrides[%zu].", i);
        if ((rc = one_limit(c, j, at, true, &rl->limits[rl->n_limits])) < 0)
            return rc;
        rl->n_limits++;
    }
    if (def != NULL) {
        if ((rc = one_limit(c, def, "default.", false, &rl->limits[rl->n_limits])) < 0)
            return rc;
        rl->n_limits++;
    }
    return 0;
}

static int compile_revoke(struct cc *c)
{
    static const char *const keys[] = {"serials", "fingerprints", NULL};
    struct tg_res_revocations *rv = &c->r->u.revocations;
    int rc;

    if ((rc = known_keys(c, c->spec, "", keys)) < 0 ||
        (rc = list(c, c->spec, "serials", "", &rv->serials, NULL)) < 0 ||
        (rc = list(c, c->spec, "fingerprints", "", &rv->fingerprints, NULL)) < 0)
        return rc;
    if (rv->serials.n + rv->fingerprints.n == 0)
        return bad(c, "serials", "and fingerprints: both empty", NULL);
    return check_compiles(c, NULL, 0, rv);
}

int tg_k8s_policy_compile(enum tg_k8s_kind k, const char *ns, const char *name, const char *spec,
                          struct tg_resource **out, char *err)
{
    static const enum tg_res_type types[NPOLICY] = {TG_RES_AUTHORIZATION, TG_RES_RATE_LIMITS,
                                                    TG_RES_REVOCATIONS};
    json_error_t je;
    struct cc c = {.ns = ns, .name = name, .err = err};
    int rc;

    if (k < TG_K8S_AUTHZ || k > TG_K8S_REVOKE)
        return tg_err_set(err, TG_EINVAL, "not a policy kind");
    if ((c.spec = json_loads(spec, JSON_REJECT_DUPLICATES, &je)) == NULL ||
        !json_is_object(c.spec)) {
        json_decref(c.spec);
        return tg_err_set(err, TG_EINVAL, "spec: not a JSON object");
    }
    if ((c.r = tg_resource_new(types[k - TG_K8S_AUTHZ])) == NULL) {
        json_decref(c.spec);
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    }
    rc = k == TG_K8S_AUTHZ    ? compile_authz(&c)
         : k == TG_K8S_LIMITS ? compile_limits(&c)
                              : compile_revoke(&c);
    json_decref(c.spec);
    if (rc < 0) {
        if (rc == TG_ENOMEM)
            tg_err_set(err, rc, "out of memory");
        tg_resource_free(c.r);
        return rc;
    }
    *out = c.r;
    return 0;
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

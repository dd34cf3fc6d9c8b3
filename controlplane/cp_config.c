/* tollgate-cp's configuration and mesh files (cp_config.h): the schema tables of its own
 * keys, read by the one YAML layer (cfgload.h), and the checks that span several keys. The
 * mesh files' authorization, rate_limits, revocations, mesh and settings sections are read
 * with the sidecar's own tables (tg_config_section_fields) into a struct tg_config, then
 * copied into the resources pushed to the sidecars: a rule, a limit, a destination, a TLS
 * setting or a timeout is written the same way in both files. */
#include "cp_config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cp_ca.h"
#include "tollgate/cfgload.h"
#include "tollgate/file.h"
#include "tollgate/policy.h"
#include "tollgate/tls.h"

#define CPC(m) offsetof(struct tg_cp_config, m)
#define CPL(m) offsetof(struct tg_cp_limits, m)
#define MAX_CRLS 64

/* ==== tollgate-cp's own configuration ==== */

void tg_cp_config_free(struct tg_cp_config *c)
{
    if (c == NULL)
        return;
    free(c->path);
    free(c->trust_domain);
    free(c->server_cert);
    free(c->server_key);
    free(c->ca_cert);
    free(c->ca_key);
    free(c->tokens);
    free(c->k8s_issuer);
    tg_strlist_free(&c->k8s_audiences);
    free(c->k8s_keys);
    free(c->k8s_api_server);
    free(c->k8s_ca);
    free(c->k8s_token);
    free(c->k8s_admin_ns);
    free(c->webhook.service);
    free(c->webhook.ns);
    free(c->webhook.configuration);
    free(c->webhook.image);
    tg_strlist_free(&c->roots);
    for (size_t i = 0; i < c->n_extra_roots; i++) {
        free(c->extra_roots[i].trust_domain);
        tg_strlist_free(&c->extra_roots[i].files);
    }
    free(c->extra_roots);
    tg_strlist_free(&c->mesh);
    free(c);
}

static int check_trust_domain(const char *s, char *norm, char *why)
{
    (void)norm;
    return tg_trust_domain_check(s, why);
}

static int check_api_server(const char *s, char *norm, char *why)
{
    (void)norm;
    if (strncmp(s, "https://", 8) != 0 || s[8] == '\0' || strpbrk(s, "?# ") != NULL)
        return tg_err_set(why, TG_EINVAL, "\"%.64s\" is not an https:// URL", s);
    return 0;
}

static int check_discovery(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                           void *dst, void *obj)
{
    struct tg_cp_config *c = obj;
    const struct tg_cfg_node *key = NULL;
    char item[TG_CFG_KEYPATH];

    (void)dst;
    c->k8s_discovery = true;
    if (tg_cfg_get(v, "in_cluster", &key) != NULL && !c->k8s_in_cluster)
        return tg_cfg_fail(cfg, key->line, tg_cfg_join(item, path, "in_cluster"),
                           "true, or name api_server instead");
    if (c->k8s_api_server != NULL && c->k8s_in_cluster)
        return tg_cfg_fail(cfg, v->line, path, "in_cluster and api_server exclude each other");
    if (c->k8s_api_server != NULL ? c->k8s_ca == NULL || c->k8s_token == NULL : !c->k8s_in_cluster)
        return tg_cfg_fail(cfg, v->line, path,
                           "wants in_cluster: true, or api_server with ca and token");
    return 0;
}

static int check_dns_label(const char *s, char *norm, char *why)
{
    (void)norm;
    if (strlen(s) > 63 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(s))
        return tg_err_set(why, TG_EINVAL,
                          "\"%.64s\" is not a DNS label (lowercase [a-z0-9-], 63 at most)", s);
    return 0;
}

/* kubernetes.webhook: the admission webhook's defaults, in one place, for keys not given. */
static int check_webhook(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                         void *dst, void *obj)
{
    static const char *const defaults[] = {"tollgate-cp", "tollgate-system",
                                           "tollgate-sidecar-injector", "tollgate:0.1.0"};
    struct tg_cp_webhook *w = dst;
    char **fields[] = {&w->service, &w->ns, &w->configuration, &w->image};
    char why[TG_ERRLEN];

    (void)obj;
    w->on = true;
    if (w->listen.len == 0 && tg_addr_parse("0.0.0.0:15017", false, &w->listen, why) < 0)
        return tg_cfg_fail(cfg, v->line, path, "%s", why);
    for (size_t i = 0; i < TG_NELEM(fields); i++)
        if (*fields[i] == NULL && (*fields[i] = strdup(defaults[i])) == NULL)
            return tg_cfg_nomem(cfg);
    return 0;
}

static int check_kubernetes(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                            void *dst, void *obj)
{
    const struct tg_cp_config *c = obj;

    (void)dst;
    if (c->k8s_token_review) {
        if (!c->k8s_discovery)
            return tg_cfg_fail(cfg, v->line, path,
                               "token_review wants discovery (the API server it asks)");
        if (c->k8s_keys != NULL || c->k8s_issuer != NULL)
            return tg_cfg_fail(cfg, v->line, path,
                               "token_review excludes issuer and keys (the API server checks "
                               "tokens; keys are for a control plane that cannot ask it)");
        if (c->k8s_audiences.n == 0)
            return tg_cfg_fail(cfg, v->line, path, "token_review wants audiences");
    } else if ((c->k8s_issuer != NULL || c->k8s_audiences.n != 0 || c->k8s_keys != NULL) &&
               (c->k8s_issuer == NULL || c->k8s_audiences.n == 0 || c->k8s_keys == NULL)) {
        return tg_cfg_fail(cfg, v->line, path, "wants issuer, audiences and keys");
    }
    if (c->k8s_issuer == NULL && !c->k8s_discovery)
        return tg_cfg_fail(cfg, v->line, path, "wants issuer, audiences and keys, or discovery");
    if (c->webhook.on && !c->k8s_discovery)
        return tg_cfg_fail(cfg, v->line, path,
                           "webhook wants discovery (the API server it patches)");
    return 0;
}

/* extra_roots: {TRUST_DOMAIN: FILE or [FILES]}, the federated domains' roots. */
static int read_extra_roots(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                            void *dst, void *obj)
{
    static const struct tg_cfg_field files = TG_CFG_ROW("", TG_CFG_PATHS, 0);
    struct tg_cp_config *c = obj;
    char item[TG_CFG_KEYPATH], why[TG_ERRLEN];
    int rc;

    (void)dst;
    if (v->type != TG_CFG_T_MAPPING)
        return tg_cfg_wrong_type(cfg, v, path, "a mapping of trust domains to root files");
    if ((c->extra_roots = calloc(v->n + 1, sizeof(*c->extra_roots))) == NULL)
        return tg_cfg_nomem(cfg);
    for (size_t i = 0; i < v->n; i++) {
        const struct tg_cfg_node *k = v->kids[2 * i];
        struct tg_cp_extra_roots *e = &c->extra_roots[c->n_extra_roots];

        tg_cfg_join(item, path, k->str);
        if (tg_trust_domain_check(k->str, why) < 0)
            return tg_cfg_fail(cfg, k->line, item, "%s", why);
        if ((e->trust_domain = strdup(k->str)) == NULL)
            return tg_cfg_nomem(cfg);
        c->n_extra_roots++;
        if ((rc = tg_cfg_read(cfg, v->kids[2 * i + 1], item, &files, &e->files)) < 0)
            return rc;
    }
    return 0;
}

/* limits: what the file says (0: not said), checked against each other, then over the
 * defaults. */
static const struct tg_cfg_field limit_fields[] = {
    TG_CFG_ROWX("max_connections", TG_CFG_UINT, CPL(max_connections), .size = sizeof(uint64_t),
                .min = 1, .max = 1000000),
    TG_CFG_ROWX("max_unauthenticated", TG_CFG_UINT, CPL(max_unauthenticated),
                .size = sizeof(uint64_t), .min = 1, .max = 1000000),
    TG_CFG_ROWX("max_unauthenticated_per_address", TG_CFG_UINT, CPL(max_per_address),
                .size = sizeof(uint64_t), .min = 1, .max = 1000000),
    {.key = NULL},
};

static int read_limits(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path, void *dst,
                       void *obj)
{
    struct tg_cp_limits set = {0}, *l = dst;
    int rc;

    (void)obj;
    if ((rc = tg_cfg_walk(cfg, v, path, limit_fields, &set)) < 0)
        return rc;
    if (set.max_unauthenticated > 0 && set.max_connections > 0 &&
        set.max_unauthenticated > set.max_connections)
        return tg_cfg_fail(
            cfg, v->line, path, "max_unauthenticated (%llu) over max_connections (%llu)",
            (unsigned long long)set.max_unauthenticated, (unsigned long long)set.max_connections);
    if (set.max_per_address > 0 && set.max_unauthenticated > 0 &&
        set.max_per_address > set.max_unauthenticated)
        return tg_cfg_fail(cfg, v->line, path,
                           "max_unauthenticated_per_address (%llu) over max_unauthenticated "
                           "(%llu)",
                           (unsigned long long)set.max_per_address,
                           (unsigned long long)set.max_unauthenticated);
    if (set.max_connections > 0)
        l->max_connections = set.max_connections;
    if (set.max_unauthenticated > 0)
        l->max_unauthenticated = set.max_unauthenticated;
    if (set.max_per_address > 0)
        l->max_per_address = set.max_per_address;
    return 0;
}

static const struct tg_cfg_field timeout_fields[] = {
    TG_CFG_ROWX("handshake", TG_CFG_DURATION, CPL(handshake_ms), .min = 100, .max = 300000),
    TG_CFG_ROWX("hello", TG_CFG_DURATION, CPL(hello_ms), .min = 100, .max = 300000),
    {.key = NULL},
};

static const struct tg_cfg_field server_fields[] = {
    TG_CFG_ROWX("cert", TG_CFG_PATH, CPC(server_cert), .required = true),
    TG_CFG_ROWX("key", TG_CFG_PATH, CPC(server_key), .required = true),
    {.key = NULL},
};

static const struct tg_cfg_field ca_fields[] = {
    TG_CFG_ROWX("cert", TG_CFG_PATH, CPC(ca_cert), .required = true),
    TG_CFG_ROWX("key", TG_CFG_PATH, CPC(ca_key), .required = true),
    {.key = NULL},
};

static const struct tg_cfg_field discovery_fields[] = {
    TG_CFG_ROW("in_cluster", TG_CFG_BOOL, CPC(k8s_in_cluster)),
    TG_CFG_ROWX("api_server", TG_CFG_STR, CPC(k8s_api_server), .item = check_api_server),
    TG_CFG_ROW("ca", TG_CFG_PATH, CPC(k8s_ca)),
    TG_CFG_ROW("token", TG_CFG_PATH, CPC(k8s_token)),
    /* docs/kubernetes.md, "Policy resources" and "Trust-root ConfigMaps" */
    TG_CFG_ROW("policy_resources", TG_CFG_BOOL, CPC(k8s_policy)),
    TG_CFG_ROW("trust_configmaps", TG_CFG_BOOL, CPC(k8s_trust_configmaps)),
    TG_CFG_ROWX("admin_namespace", TG_CFG_STR, CPC(k8s_admin_ns), .item = check_dns_label),
    {.key = NULL},
};

#define CPW(m) offsetof(struct tg_cp_webhook, m)
static const struct tg_cfg_field webhook_fields[] = {
    TG_CFG_ROW("listen", TG_CFG_ADDR, CPW(listen)),
    TG_CFG_ROWX("service", TG_CFG_STR, CPW(service), .item = check_dns_label),
    TG_CFG_ROWX("namespace", TG_CFG_STR, CPW(ns), .item = check_dns_label),
    TG_CFG_ROWX("configuration", TG_CFG_STR, CPW(configuration), .item = check_dns_label),
    TG_CFG_ROW("image", TG_CFG_STR, CPW(image)),
    {.key = NULL},
};

static const struct tg_cfg_field kubernetes_fields[] = {
    TG_CFG_ROW("issuer", TG_CFG_STR, CPC(k8s_issuer)),
    TG_CFG_ROWX("audiences", TG_CFG_STRS, CPC(k8s_audiences), .min = 1),
    TG_CFG_ROW("keys", TG_CFG_PATH, CPC(k8s_keys)),
    TG_CFG_ROW("token_review", TG_CFG_BOOL, CPC(k8s_token_review)),
    TG_CFG_ROWX("discovery", TG_CFG_MAP, 0, .sub = discovery_fields, .fn = check_discovery),
    TG_CFG_ROWX("webhook", TG_CFG_MAP, CPC(webhook), .sub = webhook_fields, .fn = check_webhook),
    {.key = NULL},
};

static const struct tg_cfg_field config_fields[] = {
    TG_CFG_ROW("listen", TG_CFG_ADDR, CPC(listen)), /* port 0: any (tests) */
    TG_CFG_ROWX("trust_domain", TG_CFG_STR, CPC(trust_domain), .item = check_trust_domain,
                .required = true),
    TG_CFG_ROWX("server", TG_CFG_MAP, 0, .sub = server_fields, .required = true),
    TG_CFG_ROWX("ca", TG_CFG_MAP, 0, .sub = ca_fields, .required = true),
    TG_CFG_ROWX("cert_ttl", TG_CFG_DURATION, CPC(cert_ttl_ms), .min = 1000,
                .max = 366ull * 24 * 3600 * 1000),
    TG_CFG_ROW("tokens", TG_CFG_PATH, CPC(tokens)),
    TG_CFG_ROWX("kubernetes", TG_CFG_MAP, 0, .sub = kubernetes_fields, .fn = check_kubernetes),
    TG_CFG_ROW("admin", TG_CFG_ADDR, CPC(admin)),
    TG_CFG_ROW("roots", TG_CFG_PATHS, CPC(roots)),
    TG_CFG_ROWX("extra_roots", TG_CFG_FUNC, 0, .fn = read_extra_roots),
    TG_CFG_ROW("mesh", TG_CFG_PATHS, CPC(mesh)),
    TG_CFG_ROWX("limits", TG_CFG_FUNC, CPC(limits), .fn = read_limits),
    TG_CFG_ROWX("timeouts", TG_CFG_MAP, CPC(limits), .sub = timeout_fields),
    TG_CFG_ROWX("log_level", TG_CFG_ENUM, CPC(log_level), .size = sizeof(enum tg_log_level),
                .choices = tg_cfg_log_levels, .what = "a log level"),
    TG_CFG_ROWX("log_format", TG_CFG_ENUM, CPC(log_format), .size = sizeof(enum tg_log_format),
                .choices = tg_cfg_log_formats, .what = "a log format"),
    {.key = NULL},
};

/* Parses text into doc; a mapping at the top, or an empty file (root NULL). */
static int open_doc(struct tg_cfg *cfg, const char *text, size_t len, struct tg_cfg_doc *doc)
{
    int rc;

    if ((rc = tg_cfg_doc_parse(text, len, cfg->file, doc, cfg->err)) < 0)
        return rc;
    if (doc->root != NULL && doc->root->type != TG_CFG_T_MAPPING) {
        rc = tg_cfg_wrong_type(cfg, doc->root, NULL, "a mapping of keys at the top");
        tg_cfg_doc_free(doc);
        return rc;
    }
    return 0;
}

int tg_cp_config_parse(const char *text, size_t len, const char *name, struct tg_cp_config **out,
                       char *err)
{
    struct tg_cp_config *c = calloc(1, sizeof(*c));
    struct tg_cfg cfg = {.file = name, .err = err};
    struct tg_cfg_doc doc = {0};
    char *base = NULL;
    int rc = TG_ENOMEM;

    if (c == NULL)
        return tg_err_set(err, rc, "%s: out of memory", name);
    c->cert_ttl_ms = TG_CP_DEFAULT_TTL_MS;
    c->log_level = TG_LOG_INFO;
    c->limits = (struct tg_cp_limits){.max_connections = 10000,
                                      .max_unauthenticated = 512,
                                      .max_per_address = 16,
                                      .handshake_ms = 5000,
                                      .hello_ms = 5000};
    if (tg_addr_parse(TG_CP_DEFAULT_LISTEN, false, &c->listen, err) < 0 ||
        (c->path = strdup(name)) == NULL || tg_cfg_base(name, true, &base) < 0) {
        tg_err_set(err, rc, "%s: out of memory", name);
        goto fail;
    }
    cfg.base = base;
    if ((rc = open_doc(&cfg, text, len, &doc)) < 0)
        goto fail;
    rc = TG_ECONFIG;
    if (doc.root == NULL) {
        tg_cfg_fail(&cfg, 0, NULL, "empty file");
        goto fail;
    }
    if ((rc = tg_cfg_walk(&cfg, doc.root, "", config_fields, c)) < 0)
        goto fail;
    /* a default never exceeds what was set above it */
    if (c->limits.max_unauthenticated > c->limits.max_connections)
        c->limits.max_unauthenticated = c->limits.max_connections;
    if (c->limits.max_per_address > c->limits.max_unauthenticated)
        c->limits.max_per_address = c->limits.max_unauthenticated;
    for (size_t i = 0; i < c->n_extra_roots; i++) {
        if (strcmp(c->extra_roots[i].trust_domain, c->trust_domain) == 0) {
            rc = tg_cfg_fail(&cfg, tg_cfg_get(doc.root, "extra_roots", NULL)->line, "extra_roots",
                             "%s is our own trust domain: its roots go under roots",
                             c->trust_domain);
            goto fail;
        }
    }
    tg_cfg_doc_free(&doc);
    free(base);
    *out = c;
    return 0;
fail:
    tg_cfg_doc_free(&doc);
    free(base);
    tg_cp_config_free(c);
    return rc;
}

int tg_cp_config_load(const char *path, struct tg_cp_config **out, char *err)
{
    char *text;
    size_t len;
    int rc = tg_file_read(NULL, path, TG_CFG_MAX_FILE, 0, &text, &len, err);

    if (rc < 0)
        return rc;
    rc = tg_cp_config_parse(text, len, path, out, err);
    free(text);
    return rc;
}

/* ==== mesh files ==== */

static int copy_strs(struct tg_resource *r, struct tg_strlist *dst, const struct tg_strlist *src)
{
    return tg_resource_strlist(r, dst, (const char *const *)src->v, src->n);
}

static int copy_ports(struct tg_resource *r, struct tg_res_ports *dst, const struct tg_intlist *src)
{
    if ((dst->v = tg_resource_array(r, src->n, sizeof(uint32_t))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < src->n; i++)
        dst->v[i] = (uint32_t)src->v[i];
    dst->n = src->n;
    return 0;
}

#define PAIR(m)                                                                                    \
    {                                                                                              \
        offsetof(struct tg_res_rule, m), offsetof(struct tg_rule_cfg, m)                           \
    }

static int copy_rule(struct tg_resource *r, struct tg_res_rule *d, const struct tg_rule_cfg *s)
{
    static const size_t lists[][2] = {
        PAIR(principals),    PAIR(not_principals),    PAIR(namespaces),   PAIR(not_namespaces),
        PAIR(trust_domains), PAIR(not_trust_domains), PAIR(fingerprints), PAIR(not_fingerprints),
        PAIR(serials),       PAIR(not_serials),       PAIR(methods),      PAIR(paths),
        PAIR(hosts),
    };

    d->action = s->deny ? TG_RES_DENY : TG_RES_ALLOW;
    if ((d->name = tg_resource_strdup(r, s->name)) == NULL ||
        (s->scope_ns != NULL && (d->scope_namespace = tg_resource_strdup(r, s->scope_ns)) == NULL))
        return TG_ENOMEM;
    if ((d->scope_labels = tg_resource_array(r, s->scope_labels.n, sizeof(*d->scope_labels))) ==
        NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < s->scope_labels.n; i++) {
        struct tg_res_label *l = &d->scope_labels[i];

        if ((l->key = tg_resource_strdup(r, s->scope_labels.keys[i])) == NULL ||
            (l->value = tg_resource_strdup(r, s->scope_labels.values[i])) == NULL)
            return TG_ENOMEM;
        d->n_scope_labels++;
    }
    for (size_t i = 0; i < TG_NELEM(lists); i++)
        if (copy_strs(r, (struct tg_strlist *)((char *)d + lists[i][0]),
                      (const struct tg_strlist *)((const char *)s + lists[i][1])) < 0)
            return TG_ENOMEM;
    if (copy_ports(r, &d->ports, &s->ports) < 0 || copy_ports(r, &d->not_ports, &s->not_ports) < 0)
        return TG_ENOMEM;
    return 0;
}

static int make_authorization(struct tg_resource *r, const struct tg_config *c)
{
    struct tg_res_authorization *a = &r->u.authorization;

    a->default_deny = c->authz_default_deny;
    a->close_denied_connections = c->close_denied;
    if ((a->rules = tg_resource_array(r, c->n_rules, sizeof(*a->rules))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < c->n_rules; i++) {
        if (copy_rule(r, &a->rules[i], &c->rules[i]) < 0)
            return TG_ENOMEM;
        a->n_rules++;
    }
    return 0;
}

static int copy_limit(struct tg_resource *r, struct tg_res_limit *d, const struct tg_limit_cfg *s,
                      const char *match, bool by_fingerprint)
{
    *d = (struct tg_res_limit){
        .key_by = by_fingerprint ? TG_RES_LIMIT_BY_FINGERPRINT : TG_RES_LIMIT_BY_ID,
        .match = tg_resource_strdup(r, match),
        .connections_per_second = s->conns_per_second,
        .burst = s->burst,
        .max_concurrent = s->max_concurrent,
        .bytes_per_second = s->bytes_per_second,
        .requests_per_second = s->requests_per_second,
        .requests_burst = s->requests_burst,
    };
    return d->match == NULL ? TG_ENOMEM : 0;
}

/* The overrides in order, then the default as "*" (first match wins, as on the sidecar). */
static int make_rate_limits(struct tg_resource *r, const struct tg_config *c)
{
    struct tg_res_rate_limits *rl = &r->u.rate_limits;
    const struct tg_limit_cfg *d = &c->limit_default;
    bool has_default = d->conns_per_second || d->burst || d->max_concurrent ||
                       d->bytes_per_second || d->requests_per_second || d->requests_burst;

    if ((rl->limits = tg_resource_array(r, c->n_limits + 1, sizeof(*rl->limits))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < c->n_limits; i++) {
        if (copy_limit(r, &rl->limits[i], &c->limits[i], c->limits[i].principal,
                       c->limit_by_fingerprint) < 0)
            return TG_ENOMEM;
        rl->n_limits++;
    }
    if (has_default) {
        if (copy_limit(r, &rl->limits[rl->n_limits], d, "*", c->limit_by_fingerprint) < 0)
            return TG_ENOMEM;
        rl->n_limits++;
    }
    return 0;
}

static int make_mesh_table(struct tg_resource *r, const struct tg_config *c)
{
    struct tg_res_mesh_table *t = &r->u.mesh_table;

    t->outside_refuse = c->mesh_refuse_outside;
    if ((t->destinations = tg_resource_array(r, c->n_dests, sizeof(*t->destinations))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < c->n_dests; i++) {
        const struct tg_mesh_dest *s = &c->dests[i];
        struct tg_res_destination *d = &t->destinations[i];

        d->port = s->port;
        d->protocol = s->http ? TG_RES_HTTP : TG_RES_TCP;
        d->tunnel = s->tunnel;
        if ((d->address = tg_resource_strdup(r, s->text)) == NULL ||
            copy_strs(r, &d->expected_ids, &s->expect) < 0)
            return TG_ENOMEM;
        t->n_destinations++;
    }
    return 0;
}

/* Reads one CRL file (the path as resolved) into the revocations resource; the file is
 * watched with the rest. */
static int add_crl(struct tg_cfg *cfg, struct tg_cp_mesh *m, struct tg_resource *r,
                   const struct tg_cfg_node *v, const char *key, const char *path)
{
    struct tg_res_revocations *rv = &r->u.revocations;
    struct tg_strlist *files = &m->crl_files;
    char **grown, *data = NULL, why[TG_ERRLEN];
    struct stat st;
    size_t len;
    int rc;

    grown = realloc(files->v, (files->n + 1) * sizeof(char *));
    if (grown == NULL)
        return tg_cfg_nomem(cfg);
    files->v = grown;
    if ((files->v[files->n] = strdup(path)) == NULL)
        return tg_cfg_nomem(cfg);
    files->n++;
    if (stat(path, &st) < 0)
        return tg_cfg_fail(cfg, v->line, key, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return tg_cfg_fail(cfg, v->line, key, "%s: not a regular file", path);
    if ((rc = tg_file_read(NULL, path, TG_FILE_MAX, 0, &data, &len, why)) < 0)
        return tg_cfg_fail(cfg, v->line, key, "%s", why);
    rc = tg_cp_ca_crl_der((const unsigned char *)data, len, path, r, &rv->crls[rv->n_crls], why);
    free(data);
    if (rc < 0)
        return rc == TG_ENOMEM ? tg_cfg_nomem(cfg) : tg_cfg_fail(cfg, v->line, key, "%s", why);
    rv->n_crls++;
    return 0;
}

static int make_revocations(struct tg_cfg *cfg, struct tg_cp_mesh *m, struct tg_resource *r,
                            const struct tg_config *in, const struct tg_cfg_node *v,
                            const char *key)
{
    struct tg_res_revocations *rv = &r->u.revocations;
    const struct tg_cfg_node *crls = tg_cfg_get(v, "crls", NULL);
    char item[TG_CFG_KEYPATH];
    int rc;

    if (copy_strs(r, &rv->serials, &in->revoked_serials) < 0 ||
        copy_strs(r, &rv->fingerprints, &in->revoked_fingerprints) < 0 ||
        (rv->crls = tg_resource_array(r, in->revocation_crls.n, sizeof(*rv->crls))) == NULL)
        return tg_cfg_nomem(cfg);
    if (m == NULL && in->revocation_crls.n > 0)
        return tg_cfg_fail(cfg, crls->line, tg_cfg_join(item, key, "crls"),
                           "CRL files are read from the mesh files only");
    if (in->revocation_crls.n > MAX_CRLS)
        return tg_cfg_fail(cfg, crls->line, "revocations.crls", "more than %d CRL files", MAX_CRLS);
    for (size_t i = 0; i < in->revocation_crls.n; i++) {
        snprintf(item, sizeof(item), "%s.crls[%zu]", key, i);
        if ((rc = add_crl(cfg, m, r, crls->type == TG_CFG_T_LIST ? crls->kids[i] : crls, item,
                          in->revocation_crls.v[i])) < 0)
            return rc;
    }
    return 0;
}

int tg_cp_rules_check(const struct tg_res_authorization *a, const struct tg_res_revocations *rv,
                      char *why)
{
    struct tg_policy_input in = {0};
    struct tg_policy_rule *rules = calloc(a->n_rules + 1, sizeof(*rules));
    struct tg_policy_label *labels = NULL;
    int *ports = NULL;
    size_t n_labels = 0, n_ports = 0, li = 0, pi = 0;
    struct tg_policy *p = NULL;
    int rc = TG_ENOMEM;

    for (size_t i = 0; i < a->n_rules; i++) {
        n_labels += a->rules[i].n_scope_labels;
        n_ports += a->rules[i].ports.n + a->rules[i].not_ports.n;
    }
    labels = calloc(n_labels + 1, sizeof(*labels));
    ports = calloc(n_ports + 1, sizeof(*ports));
    if (rules == NULL || labels == NULL || ports == NULL)
        goto done;
    for (size_t i = 0; i < a->n_rules; i++) {
        const struct tg_res_rule *s = &a->rules[i];
        struct tg_policy_rule *d = &rules[i];

        d->name = s->name;
        d->action = s->action == TG_RES_DENY ? TG_POLICY_DENY : TG_POLICY_ALLOW;
        d->scope.ns =
            s->scope_namespace != NULL && s->scope_namespace[0] ? s->scope_namespace : NULL;
        d->scope.kind = s->n_scope_labels > 0 ? TG_POLICY_SCOPE_WORKLOAD
                        : d->scope.ns != NULL ? TG_POLICY_SCOPE_NAMESPACE
                                              : TG_POLICY_SCOPE_MESH;
        d->scope.labels = labels + li;
        d->scope.n_labels = s->n_scope_labels;
        for (size_t j = 0; j < s->n_scope_labels; j++, li++) {
            labels[li].key = s->scope_labels[j].key;
            labels[li].value = s->scope_labels[j].value;
        }
#define STRS(f) d->f = tg_policy_strs_of(s->f.v, s->f.n)
        STRS(principals);
        STRS(not_principals);
        STRS(namespaces);
        STRS(not_namespaces);
        STRS(trust_domains);
        STRS(not_trust_domains);
        STRS(fingerprints);
        STRS(not_fingerprints);
        STRS(serials);
        STRS(not_serials);
        STRS(methods);
        STRS(paths);
        STRS(hosts);
#undef STRS
        d->ports = (struct tg_policy_ports){ports + pi, s->ports.n};
        for (size_t j = 0; j < s->ports.n; j++)
            ports[pi++] = (int)s->ports.v[j];
        d->not_ports = (struct tg_policy_ports){ports + pi, s->not_ports.n};
        for (size_t j = 0; j < s->not_ports.n; j++)
            ports[pi++] = (int)s->not_ports.v[j];
    }
    in.rules = rules;
    in.n_rules = a->n_rules;
    in.default_deny = a->default_deny;
    if (rv != NULL) {
        in.revoked_serials = tg_policy_strs_of(rv->serials.v, rv->serials.n);
        in.revoked_fingerprints = tg_policy_strs_of(rv->fingerprints.v, rv->fingerprints.n);
    }
    rc = tg_policy_compile(&in, &p, why);
    tg_policy_free(p);
done:
    free(rules);
    free(labels);
    free(ports);
    return rc;
}

static int check_rules(struct tg_cfg *cfg, const struct tg_cfg_node *n, const char *path,
                       const struct tg_res_authorization *a, const struct tg_res_revocations *rv)
{
    char why[TG_ERRLEN] = "";
    int rc = tg_cp_rules_check(a, rv, why);

    if (rc == TG_ENOMEM)
        return tg_cfg_nomem(cfg);
    if (rc < 0)
        return tg_cfg_fail(cfg, n->line, path, "%s", why);
    return rc;
}

/* Whether the settings mapping v says section.key (tls.min_version, inbound.mode): their
 * zero values are choices, not "keep the sidecar's own". */
static bool said(const struct tg_cfg_node *v, const char *section, const char *key)
{
    const struct tg_cfg_node *m = tg_cfg_get(v, section, NULL);

    return m != NULL && m->type == TG_CFG_T_MAPPING && tg_cfg_get(m, key, NULL) != NULL;
}

/* settings, read with the sidecar's own rows (tg_config_section_fields), as ProxySettings.
 * The cipher suites are checked as a sidecar checks them (tls.h), so a list that every
 * sidecar would refuse is refused here first; without a pushed min_version a TLS 1.2 suite
 * passes, as a sidecar may allow 1.2 in its own file (one that does not NACKs the push). */
static int make_settings(struct tg_cfg *cfg, struct tg_resource *r, const struct tg_config *in,
                         const struct tg_cfg_node *v, const char *path)
{
    struct tg_res_proxy_settings *p = &r->u.proxy_settings;
    const struct tg_cfg_node *tls = tg_cfg_get(v, "tls", NULL);
    const struct tg_cfg_node *suites = tls != NULL ? tg_cfg_get(tls, "cipher_suites", NULL) : NULL;
    bool min_said = said(v, "tls", "min_version");
    char why[TG_ERRLEN], key[TG_CFG_KEYPATH];

    if (tg_tls_check_suites(&in->cipher_suites, !min_said || in->allow_tls12, why) < 0)
        return tg_cfg_fail(cfg, suites != NULL ? suites->line : v->line,
                           tg_cfg_join(key, path, "tls.cipher_suites"), "%s", why);
    p->handshake_timeout_ms = in->handshake_timeout_ms;
    p->idle_timeout_ms = in->idle_timeout_ms;
    p->connect_timeout_ms = in->connect_timeout_ms;
    p->inbound_mode = !said(v, "inbound", "mode")               ? TG_RES_INBOUND_UNSET
                      : in->settings_mode == TG_MODE_PERMISSIVE ? TG_RES_INBOUND_PERMISSIVE
                                                                : TG_RES_INBOUND_STRICT;
    if (min_said &&
        (p->min_tls_version = tg_resource_strdup(r, in->allow_tls12 ? "1.2" : "1.3")) == NULL)
        return TG_ENOMEM;
    return copy_strs(r, &p->cipher_suites, &in->cipher_suites);
}

static const struct {
    const char *key;
    enum tg_res_type type;
} sections[] = {
    {"authorization", TG_RES_AUTHORIZATION}, {"rate_limits", TG_RES_RATE_LIMITS},
    {"revocations", TG_RES_REVOCATIONS},     {"mesh", TG_RES_MESH_TABLE},
    {"settings", TG_RES_PROXY_SETTINGS},
};

/* Old spellings of whole sections. */
static const struct {
    const char *old, *now;
} renamed_sections[] = {
    {"mesh_table", "mesh"},
    {"revocation", "revocations"},
};

int tg_cp_section_read(struct tg_cfg *cfg, struct tg_cp_mesh *m, struct tg_resource *r,
                       const char *key, const char *path, const struct tg_cfg_node *v)
{
    struct tg_config *in = NULL;
    int rc;

    if (r->type == TG_RES_RATE_LIMITS && v->type == TG_CFG_T_LIST)
        return tg_cfg_fail(cfg, v->line, path,
                           "a list of limits is now a mapping, as in the sidecar's file: "
                           "{key: id, default: {...}, overrides: [{principal: ..., ...}]}");
    if ((in = calloc(1, sizeof(*in))) == NULL)
        return tg_cfg_nomem(cfg);
    atomic_init(&in->refs, 1); /* freed, with all it holds, by tg_config_unref */
    if ((rc = tg_cfg_walk(cfg, v, path, tg_config_section_fields(key), in)) < 0)
        goto done;
    switch (r->type) {
    case TG_RES_AUTHORIZATION:
        if ((rc = make_authorization(r, in)) < 0)
            break;
        rc = check_rules(cfg, v, path, &r->u.authorization, NULL);
        break;
    case TG_RES_RATE_LIMITS:
        rc = make_rate_limits(r, in);
        break;
    case TG_RES_MESH_TABLE:
        rc = make_mesh_table(r, in);
        break;
    case TG_RES_PROXY_SETTINGS:
        rc = make_settings(cfg, r, in, v, path);
        break;
    default:
        rc = make_revocations(cfg, m, r, in, v, path);
        break;
    }
    if (rc == TG_ENOMEM)
        tg_cfg_nomem(cfg);
done:
    tg_config_unref(in);
    return rc;
}

int tg_cp_mesh_init(struct tg_cp_mesh *m)
{
    memset(m, 0, sizeof(*m));
    for (int t = TG_RES_AUTHORIZATION; t < TG_RES_N; t++) {
        if ((m->res[t] = tg_resource_new((enum tg_res_type)t)) == NULL) {
            tg_cp_mesh_cleanup(m);
            return TG_ENOMEM;
        }
    }
    return 0;
}

void tg_cp_mesh_cleanup(struct tg_cp_mesh *m)
{
    for (int t = 0; t < TG_RES_N; t++) {
        tg_resource_free(m->res[t]);
        free(m->section_file[t]);
    }
    tg_strlist_free(&m->crl_files);
    memset(m, 0, sizeof(*m));
}

static int read_mesh_file(struct tg_cfg *cfg, struct tg_cp_mesh *m, const struct tg_cfg_node *root)
{
    for (size_t i = 0; i < root->n; i++) {
        const struct tg_cfg_node *k = root->kids[2 * i], *v = root->kids[2 * i + 1];
        enum tg_res_type t = TG_RES_NONE;
        struct tg_resource *r;
        int rc;

        for (size_t j = 0; j < TG_NELEM(sections); j++)
            if (strcmp(k->str, sections[j].key) == 0)
                t = sections[j].type;
        for (size_t j = 0; j < TG_NELEM(renamed_sections); j++)
            if (strcmp(k->str, renamed_sections[j].old) == 0)
                return tg_cfg_fail(cfg, k->line, k->str, "renamed to '%s'",
                                   renamed_sections[j].now);
        if (t == TG_RES_NONE)
            return tg_cfg_fail(cfg, k->line, NULL, "\"%.64s\": unknown key (want %s)", k->str,
                               "authorization, rate_limits, revocations, mesh or settings");
        if (m->section_file[t] != NULL)
            return tg_cfg_fail(cfg, k->line, k->str, "already set in %s", m->section_file[t]);
        if ((r = tg_resource_new(t)) == NULL)
            return tg_cfg_nomem(cfg);
        if ((rc = tg_cp_section_read(cfg, m, r, k->str, k->str, v)) == 0 &&
            (m->section_file[t] = strdup(cfg->file)) == NULL)
            rc = tg_cfg_nomem(cfg);
        if (rc < 0) {
            tg_resource_free(r);
            return rc;
        }
        tg_resource_free(m->res[t]);
        m->res[t] = r;
    }
    return 0;
}

int tg_cp_mesh_parse(struct tg_cp_mesh *m, const char *text, size_t len, const char *name,
                     char *err)
{
    struct tg_cfg cfg = {.file = name, .err = err};
    struct tg_cfg_doc doc = {0};
    char *base = NULL;
    int rc;

    if (tg_cfg_base(name, true, &base) < 0)
        return tg_err_set(err, TG_ENOMEM, "%s: out of memory", name);
    cfg.base = base;
    if ((rc = open_doc(&cfg, text, len, &doc)) == 0 && doc.root != NULL)
        rc = read_mesh_file(&cfg, m, doc.root);
    tg_cfg_doc_free(&doc);
    free(base);
    return rc;
}

int tg_cp_mesh_load(struct tg_cp_mesh *m, const char *path, char *err)
{
    char *text;
    size_t len;
    int rc = tg_file_read(NULL, path, TG_CFG_MAX_FILE, 0, &text, &len, err);

    if (rc < 0)
        return rc;
    rc = tg_cp_mesh_parse(m, text, len, path, err);
    free(text);
    return rc;
}

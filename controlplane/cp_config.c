/* tollgate-cp's configuration and mesh files (cp_config.h), read with libyaml's document API
 * and walked with the checks below. The documents are small (1 MiB at most); a node reached
 * twice is an alias and is refused, so no input makes the walk longer than the text. */
#include "cp_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "cp_ca.h"
#include "tollgate/esc.h"
#include "tollgate/file.h"
#include "tollgate/policy.h"
#include "tollgate/spiffe.h"

#define MAX_FILE TG_FILE_MAX
#define MAX_ITEMS 4096
#define KEYLEN 160
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define TD_CHARS "abcdefghijklmnopqrstuvwxyz0123456789._-"

struct yw {
    yaml_document_t doc;
    const char *file;
    char *err;
    unsigned char *seen; /* per node: reached already */
    size_t n_nodes;
};

static int fail_at(struct yw *y, const yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(struct yw *y, const yaml_node_t *n, const char *key, const char *fmt, ...)
{
    char msg[TG_ERRLEN];
    va_list ap;

    va_start(ap, fmt);
    tg_esc_vformat(msg, sizeof(msg), fmt, ap); /* values quoted in fmt stay quoted (esc.h) */
    va_end(ap);
    tg_err_set(y->err, TG_ECONFIG, "%s:%lu: %s%s%s", y->file,
               n != NULL ? (unsigned long)n->start_mark.line + 1 : 1UL, key, key[0] ? ": " : "",
               msg);
    return TG_ECONFIG;
}

/* The node with this index, the first time it is reached. */
static yaml_node_t *child(struct yw *y, int index, const char *key, int *rc)
{
    yaml_node_t *n = yaml_document_get_node(&y->doc, index);

    if (n == NULL || index < 1 || (size_t)index > y->n_nodes) {
        *rc = fail_at(y, NULL, key, "malformed document");
        return NULL;
    }
    if (y->seen[index - 1]) {
        *rc = fail_at(y, n, key, "anchors and aliases are not supported");
        return NULL;
    }
    y->seen[index - 1] = 1;
    return n;
}

static const char *kind_name(const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE    ? "a mapping"
           : n->type == YAML_SEQUENCE_NODE ? "a list"
                                           : "a scalar";
}

/* ---- scalars ---- */

static int get_str(struct yw *y, const yaml_node_t *n, const char *key, const char **out)
{
    *out = "";
    if (n->type != YAML_SCALAR_NODE)
        return fail_at(y, n, key, "want a string, not %s", kind_name(n));
    if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
        return fail_at(y, n, key, "NUL byte in the value");
    *out = (const char *)n->data.scalar.value;
    return 0;
}

static int get_nonempty(struct yw *y, const yaml_node_t *n, const char *key, const char **out)
{
    int rc = get_str(y, n, key, out);

    if (rc == 0 && (*out)[0] == '\0')
        return fail_at(y, n, key, "empty");
    return rc;
}

static int get_bool(struct yw *y, const yaml_node_t *n, const char *key, bool *out)
{
    const char *s;
    int rc = get_str(y, n, key, &s);

    if (rc < 0)
        return rc;
    if (strcmp(s, "true") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0)
        *out = false;
    else
        return fail_at(y, n, key, "want true or false, not \"%.64s\"", s);
    return 0;
}

static int get_uint(struct yw *y, const yaml_node_t *n, const char *key, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    const char *s;
    char *end;
    unsigned long long v;
    int rc = get_str(y, n, key, &s);

    if (rc < 0)
        return rc;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max)
        return fail_at(y, n, key, "want a whole number from %llu to %llu, not \"%.64s\"",
                       (unsigned long long)min, (unsigned long long)max, s);
    *out = v;
    return 0;
}

static int get_double(struct yw *y, const yaml_node_t *n, const char *key, double *out)
{
    const char *s;
    char *end;
    double v;
    int rc = get_str(y, n, key, &s);

    if (rc < 0)
        return rc;
    errno = 0;
    v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !(v >= 0 && v <= 1e12))
        return fail_at(y, n, key, "want a number from 0 to 1e12, not \"%.64s\"", s);
    *out = v;
    return 0;
}

static int get_duration(struct yw *y, const yaml_node_t *n, const char *key, uint64_t *ms)
{
    char why[TG_ERRLEN];
    const char *s;
    int rc = get_str(y, n, key, &s);

    if (rc < 0)
        return rc;
    if (tg_duration_parse(s, ms, why) < 0)
        return fail_at(y, n, key, "%s", why);
    if (*ms == 0)
        return fail_at(y, n, key, "must be more than zero");
    return 0;
}

/* ---- containers ---- */

static int want(struct yw *y, const yaml_node_t *n, const char *key, yaml_node_type_t type)
{
    if (n->type != type)
        return fail_at(y, n, key, "want %s, not %s",
                       type == YAML_MAPPING_NODE ? "a mapping" : "a list", kind_name(n));
    return 0;
}

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

/* A list of at most max entries; what names them in the error ("more than 64 CRL files"). */
static int want_list(struct yw *y, const yaml_node_t *n, const char *key, size_t max,
                     const char *what)
{
    int rc;

    if ((rc = want(y, n, key, YAML_SEQUENCE_NODE)) < 0)
        return rc;
    if (seq_len(n) > max)
        return fail_at(y, n, key, "more than %zu %s", max, what);
    return 0;
}

/* Called for the i-th entry of a list, whose key is "list[i]". */
typedef int (*entry_fn)(struct yw *y, void *obj, const yaml_node_t *v, const char *key, size_t i);

/* fn for each entry of the list n (checked by want_list), in order; stops at an error. */
static int walk_list(struct yw *y, const yaml_node_t *n, const char *key, entry_fn fn, void *obj)
{
    size_t i = 0;
    int rc;

    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++, i++) {
        char sub[KEYLEN];
        yaml_node_t *v;

        snprintf(sub, sizeof(sub), "%s[%zu]", key, i);
        if ((v = child(y, *it, sub, &rc)) == NULL || (rc = fn(y, obj, v, sub, i)) < 0)
            return rc;
    }
    return 0;
}

/* Checks that a mapping's keys are scalars that appear once. */
static int check_keys(struct yw *y, const yaml_node_t *n, const char *key)
{
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);

        if (k == NULL || k->type != YAML_SCALAR_NODE)
            return fail_at(y, k, key, "keys must be strings");
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *o = yaml_document_get_node(&y->doc, q->key);

            if (strcmp((char *)o->data.scalar.value, (char *)k->data.scalar.value) == 0)
                return fail_at(y, k, key, "%.64s given twice", (char *)k->data.scalar.value);
        }
    }
    return 0;
}

static void subkey(char *dst, const char *parent, const char *k)
{
    snprintf(dst, KEYLEN, "%s%s%s", parent, parent[0] ? "." : "", k);
}

/* Each mapping walker gets (key name, value node) for every pair and says whether it knows
 * the key; unknown keys are errors. */
typedef int (*pair_fn)(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key);

static int walk_map(struct yw *y, const yaml_node_t *n, const char *key, pair_fn fn, void *obj)
{
    int rc;

    if ((rc = want(y, n, key, YAML_MAPPING_NODE)) < 0 || (rc = check_keys(y, n, key)) < 0)
        return rc;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
        char sub[KEYLEN];
        yaml_node_t *v;

        subkey(sub, key, (char *)k->data.scalar.value);
        y->seen[p->key - 1] = 1;
        if ((v = child(y, p->value, sub, &rc)) == NULL)
            return rc;
        rc = fn(y, obj, (char *)k->data.scalar.value, v, sub);
        if (rc == 1)
            return fail_at(y, k, sub, "unknown key");
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- strings lists, in a resource or on the heap ---- */

typedef int (*item_check)(struct yw *y, const yaml_node_t *n, const char *key, const char *s,
                          char *norm);

struct str_list {
    struct tg_resource *r;
    struct tg_strlist *dst;
    item_check check;
};

static int on_str_entry(struct yw *y, void *obj, const yaml_node_t *v, const char *key, size_t i)
{
    struct str_list *l = obj;
    char norm[TG_SPIFFE_MAX + 1] = "";
    const char *s;
    int rc;

    (void)i;
    if ((rc = get_nonempty(y, v, key, &s)) < 0)
        return rc;
    if (l->check != NULL && (rc = l->check(y, v, key, s, norm)) < 0)
        return rc;
    if ((l->dst->v[l->dst->n] = tg_resource_strdup(l->r, norm[0] ? norm : s)) == NULL)
        return TG_ENOMEM;
    l->dst->n++;
    return 0;
}

/* A list of strings (each checked, and replaced by norm when the check writes one) into
 * dst, allocated in r. */
static int get_list(struct yw *y, const yaml_node_t *n, const char *key, struct tg_resource *r,
                    struct tg_strlist *dst, item_check check)
{
    struct str_list l = {r, dst, check};
    int rc;

    if ((rc = want_list(y, n, key, MAX_ITEMS, "entries")) < 0)
        return rc;
    if ((dst->v = tg_resource_array(r, seq_len(n), sizeof(char *))) == NULL)
        return TG_ENOMEM;
    dst->n = 0;
    return walk_list(y, n, key, on_str_entry, &l);
}

static int check_id(struct yw *y, const yaml_node_t *n, const char *key, const char *s, char *norm)
{
    struct tg_spiffe_id id;
    char why[TG_ERRLEN];

    (void)norm;
    if (tg_spiffe_parse(s, &id, why) < 0)
        return fail_at(y, n, key, "%s", why);
    if (id.path_off == id.len)
        return fail_at(y, n, key, "%s names a trust domain, not a workload", s);
    return 0;
}

/* "*", "spiffe://...*" (prefix), "*x" (suffix) or an exact SPIFFE ID. */
static int check_pattern(struct yw *y, const yaml_node_t *n, const char *key, const char *s,
                         char *norm)
{
    size_t len = strlen(s);
    const char *star = strchr(s, '*');

    if (star == NULL)
        return check_id(y, n, key, s, norm);
    if (strchr(star + 1, '*') != NULL || (star != s && star != s + len - 1))
        return fail_at(y, n, key, "\"%.64s\": one '*', at the start or the end", s);
    if (star == s + len - 1 && len > 1 && strncmp(s, "spiffe://", 9) != 0)
        return fail_at(y, n, key, "\"%.64s\": a prefix pattern starts with spiffe://", s);
    return 0;
}

static int check_td(struct yw *y, const yaml_node_t *n, const char *key, const char *s, char *norm)
{
    (void)norm;
    if (strspn(s, TD_CHARS) != strlen(s) || strlen(s) > 255)
        return fail_at(y, n, key, "\"%.64s\" is not a trust domain (lowercase [a-z0-9._-])", s);
    return 0;
}

/* s written into norm by fn (a tg_policy_*_norm). */
static int check_norm(struct yw *y, const yaml_node_t *n, const char *key, const char *s,
                      char *norm, int (*fn)(const char *in, char *out, char *err))
{
    char why[TG_ERRLEN];

    if (fn(s, norm, why) < 0)
        return fail_at(y, n, key, "%s", why);
    return 0;
}

static int check_fingerprint(struct yw *y, const yaml_node_t *n, const char *key, const char *s,
                             char *norm)
{
    return check_norm(y, n, key, s, norm, tg_policy_fingerprint_norm);
}

static int check_serial(struct yw *y, const yaml_node_t *n, const char *key, const char *s,
                        char *norm)
{
    return check_norm(y, n, key, s, norm, tg_policy_serial_norm);
}

static int check_cipher(struct yw *y, const yaml_node_t *n, const char *key, const char *s,
                        char *norm)
{
    (void)norm;
    if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(s))
        return fail_at(y, n, key, "\"%.64s\" is not a cipher suite name", s);
    return 0;
}

/* ---- paths ---- */

/* path resolved against the directory of base (absolute, made so with the working directory). */
static char *resolve(const char *base, const char *path)
{
    char cwd[PATH_MAX], *out;
    const char *slash = strrchr(base, '/');
    int dir_len = slash != NULL ? (int)(slash - base) : 0;
    int n;

    if (path[0] == '/')
        return strdup(path);
    if (slash != NULL && base[0] == '/')
        n = asprintf(&out, "%.*s/%s", dir_len, base, path);
    else if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    else if (slash != NULL)
        n = asprintf(&out, "%s/%.*s/%s", cwd, dir_len, base, path);
    else
        n = asprintf(&out, "%s/%s", cwd, path);
    return n < 0 ? NULL : out;
}

static int get_path(struct yw *y, const yaml_node_t *n, const char *key, char **out)
{
    const char *s;
    int rc = get_nonempty(y, n, key, &s);

    if (rc < 0)
        return rc;
    free(*out);
    if ((*out = resolve(y->file, s)) == NULL)
        return tg_err_set(y->err, TG_ENOMEM, "out of memory");
    return 0;
}

static void strlist_free(struct tg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* A list on the heap, of at most max entries, each filled by fn; a single string is a list
 * of one. */
static int get_heap_list(struct yw *y, const yaml_node_t *n, const char *key, size_t max,
                         struct tg_strlist *out, entry_fn fn)
{
    int rc;

    strlist_free(out);
    if (n->type == YAML_SCALAR_NODE) {
        if ((out->v = calloc(1, sizeof(char *))) == NULL)
            return TG_ENOMEM;
        return fn(y, out, n, key, 0);
    }
    if ((rc = want_list(y, n, key, max, "entries")) < 0)
        return rc;
    if ((out->v = calloc(seq_len(n) + 1, sizeof(char *))) == NULL)
        return TG_ENOMEM;
    return walk_list(y, n, key, fn, out);
}

static int on_path_entry(struct yw *y, void *obj, const yaml_node_t *v, const char *key, size_t i)
{
    struct tg_strlist *out = obj;

    out->n++;
    return get_path(y, v, key, &out->v[i]);
}

/* A list of paths (a single string is a list of one) on the heap. */
static int get_paths(struct yw *y, const yaml_node_t *n, const char *key, struct tg_strlist *out)
{
    return get_heap_list(y, n, key, MAX_ITEMS, out, on_path_entry);
}

/* ---- documents ---- */

/* Parses text into y (one document, a mapping at the top). */
static int open_doc(struct yw *y, const char *text, size_t len, const char *name, char *err,
                    yaml_node_t **root)
{
    yaml_parser_t parser;
    int ok;

    memset(y, 0, sizeof(*y));
    y->file = name;
    y->err = err;
    if (len > MAX_FILE)
        return tg_err_set(err, TG_ECONFIG, "%s: larger than %d bytes", name, MAX_FILE);
    if (!yaml_parser_initialize(&parser))
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    ok = yaml_parser_load(&parser, &y->doc);
    if (!ok) {
        tg_err_set(err, TG_ECONFIG, "%s:%lu: %s%s%s", name,
                   (unsigned long)(parser.problem_mark.line + 1),
                   parser.problem ? parser.problem : "YAML error", parser.context ? " " : "",
                   parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return TG_ECONFIG;
    }
    yaml_parser_delete(&parser);
    y->n_nodes = (size_t)(y->doc.nodes.top - y->doc.nodes.start);
    y->seen = calloc(y->n_nodes + 1, 1);
    if (y->seen == NULL) {
        yaml_document_delete(&y->doc);
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    }
    *root = yaml_document_get_root_node(&y->doc);
    if (*root == NULL)
        return 0; /* an empty file */
    y->seen[0] = 1;
    if ((*root)->type != YAML_MAPPING_NODE) {
        int rc = fail_at(y, *root, "", "the file must be a mapping of keys");

        yaml_document_delete(&y->doc);
        free(y->seen);
        return rc;
    }
    return 0;
}

static void close_doc(struct yw *y)
{
    yaml_document_delete(&y->doc);
    free(y->seen);
}

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
    strlist_free(&c->k8s_audiences);
    free(c->k8s_keys);
    free(c->k8s_api_server);
    free(c->k8s_ca);
    free(c->k8s_token);
    free(c->k8s_admin_ns);
    strlist_free(&c->roots);
    for (size_t i = 0; i < c->n_extra_roots; i++) {
        free(c->extra_roots[i].trust_domain);
        strlist_free(&c->extra_roots[i].files);
    }
    free(c->extra_roots);
    strlist_free(&c->mesh);
    free(c);
}

static int on_server(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct tg_cp_config *c = obj;

    if (strcmp(k, "cert") == 0)
        return get_path(y, v, key, &c->server_cert);
    if (strcmp(k, "key") == 0)
        return get_path(y, v, key, &c->server_key);
    return 1;
}

static int on_ca(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct tg_cp_config *c = obj;

    if (strcmp(k, "cert") == 0)
        return get_path(y, v, key, &c->ca_cert);
    if (strcmp(k, "key") == 0)
        return get_path(y, v, key, &c->ca_key);
    return 1;
}

static int on_string_entry(struct yw *y, void *obj, const yaml_node_t *v, const char *key, size_t i)
{
    struct tg_strlist *out = obj;
    const char *s;
    int rc;

    if ((rc = get_nonempty(y, v, key, &s)) < 0)
        return rc;
    if ((out->v[i] = strdup(s)) == NULL)
        return TG_ENOMEM;
    out->n++;
    return 0;
}

/* A list of non-empty strings (a single string is a list of one) on the heap. */
static int get_strings(struct yw *y, const yaml_node_t *n, const char *key, struct tg_strlist *out)
{
    return get_heap_list(y, n, key, 64, out, on_string_entry);
}

static int on_discovery(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct tg_cp_config *c = obj;
    const char *s;
    bool in_cluster;
    int rc;

    if (strcmp(k, "in_cluster") == 0) {
        if ((rc = get_bool(y, v, key, &in_cluster)) < 0)
            return rc;
        c->k8s_in_cluster = in_cluster;
        return in_cluster ? 0 : fail_at(y, v, key, "true, or name api_server instead");
    }
    if (strcmp(k, "api_server") == 0) {
        if ((rc = get_nonempty(y, v, key, &s)) < 0)
            return rc;
        if (strncmp(s, "https://", 8) != 0 || s[8] == '\0' || strpbrk(s, "?# ") != NULL)
            return fail_at(y, v, key, "\"%.64s\" is not an https:// URL", s);
        return (c->k8s_api_server = strdup(s)) == NULL ? TG_ENOMEM : 0;
    }
    if (strcmp(k, "ca") == 0)
        return get_path(y, v, key, &c->k8s_ca);
    if (strcmp(k, "token") == 0)
        return get_path(y, v, key, &c->k8s_token);
    if (strcmp(k, "policy_resources") == 0) /* docs/kubernetes.md, "Policy resources" */
        return get_bool(y, v, key, &c->k8s_policy);
    if (strcmp(k, "trust_configmaps") == 0) /* docs/kubernetes.md, "Trust-root ConfigMaps" */
        return get_bool(y, v, key, &c->k8s_trust_configmaps);
    if (strcmp(k, "admin_namespace") == 0) {
        if ((rc = get_nonempty(y, v, key, &s)) < 0)
            return rc;
        free(c->k8s_admin_ns);
        return (c->k8s_admin_ns = strdup(s)) == NULL ? TG_ENOMEM : 0;
    }
    return 1;
}

static int on_kubernetes(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct tg_cp_config *c = obj;
    const char *s;
    int rc;

    if (strcmp(k, "issuer") == 0) {
        if ((rc = get_nonempty(y, v, key, &s)) < 0)
            return rc;
        free(c->k8s_issuer);
        return (c->k8s_issuer = strdup(s)) == NULL ? TG_ENOMEM : 0;
    }
    if (strcmp(k, "audiences") == 0) {
        if ((rc = get_strings(y, v, key, &c->k8s_audiences)) < 0)
            return rc;
        return c->k8s_audiences.n == 0 ? fail_at(y, v, key, "at least one audience") : 0;
    }
    if (strcmp(k, "keys") == 0)
        return get_path(y, v, key, &c->k8s_keys);
    if (strcmp(k, "discovery") == 0) {
        c->k8s_discovery = true;
        if ((rc = walk_map(y, v, key, on_discovery, c)) < 0)
            return rc;
        if (c->k8s_api_server != NULL && c->k8s_in_cluster)
            return fail_at(y, v, key, "in_cluster and api_server exclude each other");
        if (c->k8s_api_server != NULL ? c->k8s_ca == NULL || c->k8s_token == NULL
                                      : !c->k8s_in_cluster)
            return fail_at(y, v, key, "wants in_cluster: true, or api_server with ca and token");
        return 0;
    }
    return 1;
}

static int on_extra_root(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct tg_cp_config *c = obj;
    struct tg_cp_extra_roots *e;

    if (strspn(k, TD_CHARS) != strlen(k) || k[0] == '\0')
        return fail_at(y, v, key, "\"%.64s\" is not a trust domain (lowercase [a-z0-9._-])", k);
    e = &c->extra_roots[c->n_extra_roots];
    if ((e->trust_domain = strdup(k)) == NULL)
        return TG_ENOMEM;
    c->n_extra_roots++;
    return get_paths(y, v, key, &e->files);
}

/* limits: and timeouts:, one row per key. */
static const struct limit_key {
    const char *section, *name;
    size_t off;
    bool duration;
    uint64_t min, max;
} LIMIT_KEYS[] = {
    {"limits", "max_connections", offsetof(struct tg_cp_limits, max_connections), false, 1,
     1000000},
    {"limits", "max_unauthenticated", offsetof(struct tg_cp_limits, max_unauthenticated), false, 1,
     1000000},
    {"limits", "max_unauthenticated_per_address", offsetof(struct tg_cp_limits, max_per_address),
     false, 1, 1000000},
    {"timeouts", "handshake", offsetof(struct tg_cp_limits, handshake_ms), true, 100, 300000},
    {"timeouts", "hello", offsetof(struct tg_cp_limits, hello_ms), true, 100, 300000},
};

static int on_limit_key(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key,
                        const char *section)
{
    struct tg_cp_limits *l = obj;

    for (size_t i = 0; i < TG_NELEM(LIMIT_KEYS); i++) {
        const struct limit_key *e = &LIMIT_KEYS[i];
        uint64_t *dst = (uint64_t *)((char *)l + e->off);
        int rc;

        if (strcmp(e->section, section) != 0 || strcmp(e->name, k) != 0)
            continue;
        if (!e->duration)
            return get_uint(y, v, key, e->min, e->max, dst);
        if ((rc = get_duration(y, v, key, dst)) < 0)
            return rc;
        if (*dst < e->min || *dst > e->max)
            return fail_at(y, v, key, "want %llums to %llus", (unsigned long long)e->min,
                           (unsigned long long)e->max / 1000);
        return 0;
    }
    return 1;
}

static int on_limits(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    return on_limit_key(y, obj, k, v, key, "limits");
}

static int on_cp_timeouts(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    return on_limit_key(y, obj, k, v, key, "timeouts");
}

static int on_config(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct tg_cp_config *c = obj;
    char why[TG_ERRLEN];
    const char *s;
    uint64_t ms;
    int rc;

    if (strcmp(k, "listen") == 0) {
        if ((rc = get_str(y, v, key, &s)) < 0)
            return rc;
        if (tg_addr_parse(s, true, &c->listen, why) < 0) /* port 0: any (tests) */
            return fail_at(y, v, key, "%s", why);
        return 0;
    }
    if (strcmp(k, "trust_domain") == 0) {
        if ((rc = get_nonempty(y, v, key, &s)) < 0 || (rc = check_td(y, v, key, s, NULL)) < 0)
            return rc;
        free(c->trust_domain);
        return (c->trust_domain = strdup(s)) == NULL ? TG_ENOMEM : 0;
    }
    if (strcmp(k, "server") == 0)
        return walk_map(y, v, key, on_server, c);
    if (strcmp(k, "ca") == 0)
        return walk_map(y, v, key, on_ca, c);
    if (strcmp(k, "cert_ttl") == 0) {
        if ((rc = get_duration(y, v, key, &ms)) < 0)
            return rc;
        if (ms < 1000 || ms > 366ull * 24 * 3600 * 1000)
            return fail_at(y, v, key, "want 1s to 366 days");
        c->cert_ttl_ms = ms;
        return 0;
    }
    if (strcmp(k, "tokens") == 0)
        return get_path(y, v, key, &c->tokens);
    if (strcmp(k, "kubernetes") == 0) {
        if ((rc = walk_map(y, v, key, on_kubernetes, c)) < 0)
            return rc;
        if ((c->k8s_issuer != NULL || c->k8s_audiences.n != 0 || c->k8s_keys != NULL) &&
            (c->k8s_issuer == NULL || c->k8s_audiences.n == 0 || c->k8s_keys == NULL))
            return fail_at(y, v, key, "wants issuer, audiences and keys");
        if (c->k8s_issuer == NULL && !c->k8s_discovery)
            return fail_at(y, v, key, "wants issuer, audiences and keys, or discovery");
        return 0;
    }
    if (strcmp(k, "admin") == 0) {
        if ((rc = get_str(y, v, key, &s)) < 0)
            return rc;
        if (tg_addr_parse(s, true, &c->admin, why) < 0) /* port 0: any (tests) */
            return fail_at(y, v, key, "%s", why);
        return 0;
    }
    if (strcmp(k, "roots") == 0)
        return get_paths(y, v, key, &c->roots);
    if (strcmp(k, "extra_roots") == 0) {
        size_t n;

        if ((rc = want(y, v, key, YAML_MAPPING_NODE)) < 0)
            return rc;
        n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
        if ((c->extra_roots = calloc(n + 1, sizeof(*c->extra_roots))) == NULL)
            return TG_ENOMEM;
        return walk_map(y, v, key, on_extra_root, c);
    }
    if (strcmp(k, "mesh") == 0)
        return get_paths(y, v, key, &c->mesh);
    if (strcmp(k, "limits") == 0) {
        struct tg_cp_limits set = {0}; /* what the file says; 0: not said */

        if ((rc = walk_map(y, v, key, on_limits, &set)) < 0)
            return rc;
        if (set.max_unauthenticated > 0 && set.max_connections > 0 &&
            set.max_unauthenticated > set.max_connections)
            return fail_at(y, v, key, "max_unauthenticated (%llu) over max_connections (%llu)",
                           (unsigned long long)set.max_unauthenticated,
                           (unsigned long long)set.max_connections);
        if (set.max_per_address > 0 && set.max_unauthenticated > 0 &&
            set.max_per_address > set.max_unauthenticated)
            return fail_at(y, v, key,
                           "max_unauthenticated_per_address (%llu) over max_unauthenticated "
                           "(%llu)",
                           (unsigned long long)set.max_per_address,
                           (unsigned long long)set.max_unauthenticated);
        if (set.max_connections > 0)
            c->limits.max_connections = set.max_connections;
        if (set.max_unauthenticated > 0)
            c->limits.max_unauthenticated = set.max_unauthenticated;
        if (set.max_per_address > 0)
            c->limits.max_per_address = set.max_per_address;
        return 0;
    }
    if (strcmp(k, "timeouts") == 0)
        return walk_map(y, v, key, on_cp_timeouts, &c->limits);
    if (strcmp(k, "log_level") == 0) {
        static const char *const levels[] = {"debug", "info", "warn", "error"};

        if ((rc = get_str(y, v, key, &s)) < 0)
            return rc;
        for (size_t i = 0; i < TG_NELEM(levels); i++) {
            if (strcmp(s, levels[i]) == 0) {
                c->log_level = (enum tg_log_level)i;
                return 0;
            }
        }
        return fail_at(y, v, key, "want debug, info, warn or error");
    }
    return 1;
}

int tg_cp_config_parse(const char *text, size_t len, const char *name, struct tg_cp_config **out,
                       char *err)
{
    struct tg_cp_config *c = calloc(1, sizeof(*c));
    yaml_node_t *root = NULL;
    struct yw y;
    int rc;

    if (c == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    c->cert_ttl_ms = TG_CP_DEFAULT_TTL_MS;
    c->log_level = TG_LOG_INFO;
    c->limits = (struct tg_cp_limits){.max_connections = 10000,
                                      .max_unauthenticated = 512,
                                      .max_per_address = 16,
                                      .handshake_ms = 5000,
                                      .hello_ms = 5000};
    if (tg_addr_parse(TG_CP_DEFAULT_LISTEN, false, &c->listen, err) < 0 ||
        (c->path = strdup(name)) == NULL) {
        tg_cp_config_free(c);
        return TG_ENOMEM;
    }
    if ((rc = open_doc(&y, text, len, name, err, &root)) < 0) {
        tg_cp_config_free(c);
        return rc;
    }
    if (root == NULL) {
        rc = tg_err_set(err, TG_ECONFIG, "%s: empty file", name);
        goto done;
    }
    if ((rc = walk_map(&y, root, "", on_config, c)) < 0)
        goto done;
    rc = TG_ECONFIG;
    if (c->trust_domain == NULL)
        fail_at(&y, root, "trust_domain", "required");
    else if (c->server_cert == NULL || c->server_key == NULL)
        fail_at(&y, root, "server", "required, with cert and key");
    else if (c->ca_cert == NULL || c->ca_key == NULL)
        fail_at(&y, root, "ca", "required, with cert and key");
    else
        rc = 0;
    /* a default never exceeds what was set above it */
    if (c->limits.max_unauthenticated > c->limits.max_connections)
        c->limits.max_unauthenticated = c->limits.max_connections;
    if (c->limits.max_per_address > c->limits.max_unauthenticated)
        c->limits.max_per_address = c->limits.max_unauthenticated;
    for (size_t i = 0; rc == 0 && i < c->n_extra_roots; i++)
        if (strcmp(c->extra_roots[i].trust_domain, c->trust_domain) == 0)
            rc = fail_at(&y, root, "extra_roots",
                         "%s is our own trust domain: its roots go under roots", c->trust_domain);
done:
    if (rc == TG_ENOMEM)
        tg_err_set(err, rc, "out of memory");
    close_doc(&y);
    if (rc < 0) {
        tg_cp_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int tg_cp_config_load(const char *path, struct tg_cp_config **out, char *err)
{
    char *text;
    size_t len;
    int rc = tg_file_read(NULL, path, MAX_FILE, 0, &text, &len, err);

    if (rc < 0)
        return rc;
    rc = tg_cp_config_parse(text, len, path, out, err);
    free(text);
    return rc;
}

/* ==== mesh files ==== */

struct mesh_ctx {
    struct tg_cp_mesh *m;
    struct tg_resource *r; /* the section being read */
    void *item;            /* the rule, limit or destination being read */
};

/* A list of mappings read into an array in the resource (rules, limits, destinations). */
struct map_list {
    struct mesh_ctx *mc;
    void *items;   /* the array, one entry per list entry */
    size_t size;   /* of one item */
    size_t *count; /* the items begun */
    pair_fn on_pair;
    const char *(*missing)(const void *item); /* the required key an item lacks, or NULL */
};

static int on_map_entry(struct yw *y, void *obj, const yaml_node_t *v, const char *key, size_t i)
{
    struct map_list *l = obj;
    const char *missing;
    int rc;

    l->mc->item = (char *)l->items + i * l->size;
    (*l->count)++;
    if ((rc = walk_map(y, v, key, l->on_pair, l->mc)) < 0)
        return rc;
    if ((missing = l->missing(l->mc->item)) != NULL)
        return fail_at(y, v, key, "%s: required", missing);
    return 0;
}

/* Checks that v is a list of at most MAX_ITEMS mappings (what names them) and allocates
 * l->items for them in the section's resource; returns it, or NULL with *rc. The caller
 * stores it, then walks the list with on_map_entry and l. */
static void *map_list_new(struct yw *y, const yaml_node_t *v, const char *key, const char *what,
                          struct map_list *l, int *rc)
{
    if ((*rc = want_list(y, v, key, MAX_ITEMS, what)) < 0)
        return NULL;
    if ((l->items = tg_resource_array(l->mc->r, seq_len(v), l->size)) == NULL)
        *rc = TG_ENOMEM;
    return l->items;
}

static int on_scope_label(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct mesh_ctx *mc = obj;
    struct tg_res_rule *rule = mc->item;
    struct tg_res_label *l = &rule->scope_labels[rule->n_scope_labels];
    const char *s;
    int rc;

    if ((rc = get_str(y, v, key, &s)) < 0)
        return rc;
    if ((l->key = tg_resource_strdup(mc->r, k)) == NULL ||
        (l->value = tg_resource_strdup(mc->r, s)) == NULL)
        return TG_ENOMEM;
    rule->n_scope_labels++;
    return 0;
}

static int on_scope(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct mesh_ctx *mc = obj;
    struct tg_res_rule *rule = mc->item;
    const char *s;
    int rc;

    if (strcmp(k, "namespace") == 0) {
        if ((rc = get_nonempty(y, v, key, &s)) < 0)
            return rc;
        if (strspn(s, NAME_CHARS) != strlen(s))
            return fail_at(y, v, key, "\"%.64s\" is not a namespace name", s);
        return (rule->scope_namespace = tg_resource_strdup(mc->r, s)) == NULL ? TG_ENOMEM : 0;
    }
    if (strcmp(k, "labels") == 0) {
        size_t n;

        if ((rc = want(y, v, key, YAML_MAPPING_NODE)) < 0)
            return rc;
        n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
        if (n == 0)
            return fail_at(y, v, key, "at least one label");
        if ((rule->scope_labels = tg_resource_array(mc->r, n, sizeof(struct tg_res_label))) == NULL)
            return TG_ENOMEM;
        return walk_map(y, v, key, on_scope_label, mc);
    }
    return 1;
}

static int on_port_entry(struct yw *y, void *obj, const yaml_node_t *v, const char *key, size_t i)
{
    struct tg_res_ports *dst = obj;
    uint64_t port;
    int rc;

    (void)i;
    if ((rc = get_uint(y, v, key, 1, 65535, &port)) < 0)
        return rc;
    dst->v[dst->n++] = (uint32_t)port;
    return 0;
}

static int get_ports(struct yw *y, const yaml_node_t *n, const char *key, struct tg_resource *r,
                     struct tg_res_ports *dst)
{
    int rc;

    if ((rc = want_list(y, n, key, MAX_ITEMS, "entries")) < 0)
        return rc;
    if ((dst->v = tg_resource_array(r, seq_len(n), sizeof(uint32_t))) == NULL)
        return TG_ENOMEM;
    return walk_list(y, n, key, on_port_entry, dst);
}

static int on_rule(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    static const struct {
        const char *name;
        size_t off;
        item_check check;
    } lists[] = {
        {"principals", offsetof(struct tg_res_rule, principals), check_pattern},
        {"not_principals", offsetof(struct tg_res_rule, not_principals), check_pattern},
        {"namespaces", offsetof(struct tg_res_rule, namespaces), NULL},
        {"not_namespaces", offsetof(struct tg_res_rule, not_namespaces), NULL},
        {"trust_domains", offsetof(struct tg_res_rule, trust_domains), NULL},
        {"not_trust_domains", offsetof(struct tg_res_rule, not_trust_domains), NULL},
        {"fingerprints", offsetof(struct tg_res_rule, fingerprints), check_fingerprint},
        {"not_fingerprints", offsetof(struct tg_res_rule, not_fingerprints), check_fingerprint},
        {"serials", offsetof(struct tg_res_rule, serials), check_serial},
        {"not_serials", offsetof(struct tg_res_rule, not_serials), check_serial},
        {"methods", offsetof(struct tg_res_rule, methods), NULL}, /* checked by check_rules */
        {"paths", offsetof(struct tg_res_rule, paths), NULL},
        {"hosts", offsetof(struct tg_res_rule, hosts), NULL},
    };
    struct mesh_ctx *mc = obj;
    struct tg_res_rule *rule = mc->item;
    const char *s;
    int rc;

    for (size_t i = 0; i < TG_NELEM(lists); i++)
        if (strcmp(k, lists[i].name) == 0)
            return get_list(y, v, key, mc->r, (struct tg_strlist *)((char *)rule + lists[i].off),
                            lists[i].check);
    if (strcmp(k, "name") == 0) {
        if ((rc = get_nonempty(y, v, key, &s)) < 0)
            return rc;
        return (rule->name = tg_resource_strdup(mc->r, s)) == NULL ? TG_ENOMEM : 0;
    }
    if (strcmp(k, "action") == 0) {
        if ((rc = get_str(y, v, key, &s)) < 0)
            return rc;
        if (strcmp(s, "allow") == 0 || strcmp(s, "ALLOW") == 0)
            rule->action = TG_RES_ALLOW;
        else if (strcmp(s, "deny") == 0 || strcmp(s, "DENY") == 0)
            rule->action = TG_RES_DENY;
        else
            return fail_at(y, v, key, "want allow or deny");
        return 0;
    }
    if (strcmp(k, "scope") == 0)
        return walk_map(y, v, key, on_scope, mc);
    if (strcmp(k, "ports") == 0)
        return get_ports(y, v, key, mc->r, &rule->ports);
    if (strcmp(k, "not_ports") == 0)
        return get_ports(y, v, key, mc->r, &rule->not_ports);
    return 1;
}

/* Checks the rules the way every sidecar will: tg_policy_compile (rules of every scope are
 * checked, so the answer is the same for all). */
static int check_rules(struct yw *y, const yaml_node_t *n, const struct tg_res_authorization *a,
                       const struct tg_res_revocations *rv)
{
    struct tg_policy_input in = {0};
    struct tg_policy_rule *rules = calloc(a->n_rules + 1, sizeof(*rules));
    struct tg_policy_label *labels = NULL;
    int *ports = NULL;
    size_t n_labels = 0, n_ports = 0, li = 0, pi = 0;
    struct tg_policy *p = NULL;
    char why[TG_ERRLEN];
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
#define STRS(f) d->f = (struct tg_policy_strs){s->f.v, s->f.n}
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
        in.revoked_serials = (struct tg_policy_strs){rv->serials.v, rv->serials.n};
        in.revoked_fingerprints = (struct tg_policy_strs){rv->fingerprints.v, rv->fingerprints.n};
    }
    rc = tg_policy_compile(&in, &p, why);
    if (rc == TG_ENOMEM)
        tg_err_set(y->err, rc, "out of memory");
    else if (rc < 0)
        rc = fail_at(y, n, "authorization", "%s", why);
    tg_policy_free(p);
done:
    free(rules);
    free(labels);
    free(ports);
    return rc;
}

static const char *rule_missing(const void *item)
{
    return ((const struct tg_res_rule *)item)->name == NULL ? "name" : NULL;
}

static int on_authorization(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct mesh_ctx *mc = obj;
    struct tg_res_authorization *a = &mc->r->u.authorization;
    struct map_list l = {mc, NULL, sizeof(*a->rules), &a->n_rules, on_rule, rule_missing};
    int rc;

    if (strcmp(k, "default_deny") == 0)
        return get_bool(y, v, key, &a->default_deny);
    if (strcmp(k, "close_denied_connections") == 0)
        return get_bool(y, v, key, &a->close_denied_connections);
    if (strcmp(k, "rules") != 0)
        return 1;
    if ((a->rules = map_list_new(y, v, key, "rules", &l, &rc)) == NULL)
        return rc;
    return walk_list(y, v, key, on_map_entry, &l);
}

static int on_limit(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct mesh_ctx *mc = obj;
    struct tg_res_limit *l = mc->item;
    const char *s;
    uint64_t u;
    int rc;

    if (strcmp(k, "match") == 0) {
        if ((rc = get_nonempty(y, v, key, &s)) < 0 || (rc = check_pattern(y, v, key, s, NULL)) < 0)
            return rc;
        return (l->match = tg_resource_strdup(mc->r, s)) == NULL ? TG_ENOMEM : 0;
    }
    if (strcmp(k, "key_by") == 0) {
        if ((rc = get_str(y, v, key, &s)) < 0)
            return rc;
        if (strcmp(s, "id") == 0)
            l->key_by = TG_RES_LIMIT_BY_ID;
        else if (strcmp(s, "fingerprint") == 0)
            l->key_by = TG_RES_LIMIT_BY_FINGERPRINT;
        else
            return fail_at(y, v, key, "want id or fingerprint");
        return 0;
    }
    if (strcmp(k, "connections_per_second") == 0)
        return get_double(y, v, key, &l->connections_per_second);
    if (strcmp(k, "burst") == 0) {
        rc = get_uint(y, v, key, 0, UINT32_MAX, &u);
        l->burst = (uint32_t)u;
        return rc;
    }
    if (strcmp(k, "max_concurrent") == 0) {
        rc = get_uint(y, v, key, 0, UINT32_MAX, &u);
        l->max_concurrent = (uint32_t)u;
        return rc;
    }
    if (strcmp(k, "bytes_per_second") == 0)
        return get_uint(y, v, key, 0, UINT64_MAX, &l->bytes_per_second);
    if (strcmp(k, "requests_per_second") == 0) { /* the sidecar config's range */
        rc = get_uint(y, v, key, 0, 10000000, &u);
        l->requests_per_second = (uint32_t)u;
        return rc;
    }
    if (strcmp(k, "requests_burst") == 0) {
        rc = get_uint(y, v, key, 0, 10000000, &u);
        l->requests_burst = (uint32_t)u;
        return rc;
    }
    return 1;
}

static const char *limit_missing(const void *item)
{
    return ((const struct tg_res_limit *)item)->match == NULL ? "match" : NULL;
}

static int get_limits(struct yw *y, struct mesh_ctx *mc, yaml_node_t *v, const char *key)
{
    struct tg_res_rate_limits *rl = &mc->r->u.rate_limits;
    struct map_list l = {mc, NULL, sizeof(*rl->limits), &rl->n_limits, on_limit, limit_missing};
    int rc;

    if ((rl->limits = map_list_new(y, v, key, "limits", &l, &rc)) == NULL)
        return rc;
    return walk_list(y, v, key, on_map_entry, &l);
}

static int add_crl(struct yw *y, struct mesh_ctx *mc, const yaml_node_t *v, const char *key,
                   const char *path)
{
    struct tg_res_revocations *rv = &mc->r->u.revocations;
    struct tg_strlist *files = &mc->m->crl_files;
    char **grown, *data = NULL, why[TG_ERRLEN];
    struct stat st;
    size_t len;
    int rc;

    grown = realloc(files->v, (files->n + 1) * sizeof(char *));
    if (grown == NULL)
        return TG_ENOMEM;
    files->v = grown;
    if ((files->v[files->n] = strdup(path)) == NULL)
        return TG_ENOMEM;
    files->n++;
    if (stat(path, &st) < 0)
        return fail_at(y, v, key, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail_at(y, v, key, "%s: not a regular file", path);
    if ((rc = tg_file_read(NULL, path, MAX_FILE, 0, &data, &len, why)) < 0)
        return fail_at(y, v, key, "%s", why);
    rc =
        tg_cp_ca_crl_der((const unsigned char *)data, len, path, mc->r, &rv->crls[rv->n_crls], why);
    free(data);
    if (rc < 0)
        return rc == TG_ENOMEM ? rc : fail_at(y, v, key, "%s", why);
    rv->n_crls++;
    return 0;
}

static int on_crl_entry(struct yw *y, void *obj, const yaml_node_t *v, const char *key, size_t i)
{
    char *path = NULL;
    int rc;

    (void)i;
    if ((rc = get_path(y, v, key, &path)) == 0)
        rc = add_crl(y, obj, v, key, path);
    free(path);
    return rc;
}

static int on_revocations(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct mesh_ctx *mc = obj;
    struct tg_res_revocations *rv = &mc->r->u.revocations;
    int rc;

    if (strcmp(k, "serials") == 0)
        return get_list(y, v, key, mc->r, &rv->serials, check_serial);
    if (strcmp(k, "fingerprints") == 0)
        return get_list(y, v, key, mc->r, &rv->fingerprints, check_fingerprint);
    if (strcmp(k, "crls") != 0)
        return 1;
    if ((rc = want_list(y, v, key, 64, "CRL files")) < 0)
        return rc;
    if ((rv->crls = tg_resource_array(mc->r, seq_len(v), sizeof(*rv->crls))) == NULL)
        return TG_ENOMEM;
    return walk_list(y, v, key, on_crl_entry, mc);
}

/* "10.0.0.5", "10.0.0.0/24", "fd00::/64": a network address with its host bits zero. */
static int check_address(struct yw *y, const yaml_node_t *n, const char *key, const char *s)
{
    unsigned char addr[16];
    char host[64], *end;
    const char *slash = strchr(s, '/');
    size_t host_len = slash != NULL ? (size_t)(slash - s) : strlen(s);
    int family, bits;
    long prefix;

    if (host_len >= sizeof(host))
        return fail_at(y, n, key, "\"%.64s\" is not an address or CIDR", s);
    memcpy(host, s, host_len);
    host[host_len] = '\0';
    family = strchr(host, ':') != NULL ? AF_INET6 : AF_INET;
    bits = family == AF_INET ? 32 : 128;
    if (inet_pton(family, host, addr) != 1)
        return fail_at(y, n, key, "\"%.64s\" is not an address or CIDR", s);
    prefix = bits;
    if (slash != NULL) {
        errno = 0;
        prefix = strtol(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || prefix > bits)
            return fail_at(y, n, key, "\"%.64s\": prefix length 0 to %d", s, bits);
    }
    for (int b = (int)prefix; b < bits; b++)
        if (addr[b / 8] & (0x80 >> (b % 8)))
            return fail_at(y, n, key, "\"%.64s\": host bits set past the prefix", s);
    return 0;
}

static int on_destination(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct mesh_ctx *mc = obj;
    struct tg_res_destination *d = mc->item;
    const char *s;
    uint64_t port;
    int rc;

    if (strcmp(k, "address") == 0) {
        if ((rc = get_nonempty(y, v, key, &s)) < 0 || (rc = check_address(y, v, key, s)) < 0)
            return rc;
        return (d->address = tg_resource_strdup(mc->r, s)) == NULL ? TG_ENOMEM : 0;
    }
    if (strcmp(k, "port") == 0) {
        rc = get_uint(y, v, key, 0, 65535, &port);
        d->port = (uint32_t)port;
        return rc;
    }
    if (strcmp(k, "expected_ids") == 0) {
        if ((rc = get_list(y, v, key, mc->r, &d->expected_ids, check_id)) < 0)
            return rc;
        return d->expected_ids.n == 0 ? fail_at(y, v, key, "at least one SPIFFE ID") : 0;
    }
    if (strcmp(k, "protocol") == 0) {
        if ((rc = get_str(y, v, key, &s)) < 0)
            return rc;
        if (strcmp(s, "tcp") == 0)
            d->protocol = TG_RES_TCP;
        else if (strcmp(s, "http") == 0)
            d->protocol = TG_RES_HTTP;
        else
            return fail_at(y, v, key, "want tcp or http");
        return 0;
    }
    return 1;
}

static const char *destination_missing(const void *item)
{
    const struct tg_res_destination *d = item;

    return d->address == NULL ? "address" : d->expected_ids.n == 0 ? "expected_ids" : NULL;
}

static int on_mesh_table(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct mesh_ctx *mc = obj;
    struct tg_res_mesh_table *t = &mc->r->u.mesh_table;
    struct map_list l = {mc,
                         NULL,
                         sizeof(*t->destinations),
                         &t->n_destinations,
                         on_destination,
                         destination_missing};
    const char *s;
    int rc;

    if (strcmp(k, "outside_mesh") == 0) {
        if ((rc = get_str(y, v, key, &s)) < 0)
            return rc;
        if (strcmp(s, "passthrough") == 0)
            t->outside_refuse = false;
        else if (strcmp(s, "refuse") == 0)
            t->outside_refuse = true;
        else
            return fail_at(y, v, key, "want passthrough or refuse");
        return 0;
    }
    if (strcmp(k, "destinations") != 0)
        return 1;
    if ((t->destinations = map_list_new(y, v, key, "destinations", &l, &rc)) == NULL)
        return rc;
    return walk_list(y, v, key, on_map_entry, &l);
}

static int on_timeouts(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct tg_res_proxy_settings *p = obj;

    if (strcmp(k, "handshake") == 0)
        return get_duration(y, v, key, &p->handshake_timeout_ms);
    if (strcmp(k, "idle") == 0)
        return get_duration(y, v, key, &p->idle_timeout_ms);
    if (strcmp(k, "connect") == 0)
        return get_duration(y, v, key, &p->connect_timeout_ms);
    return 1;
}

static int on_settings(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct mesh_ctx *mc = obj;
    struct tg_res_proxy_settings *p = &mc->r->u.proxy_settings;
    const char *s;
    int rc;

    if (strcmp(k, "min_tls_version") == 0) {
        if ((rc = get_str(y, v, key, &s)) < 0)
            return rc;
        if (strcmp(s, "1.2") != 0 && strcmp(s, "1.3") != 0)
            return fail_at(y, v, key, "want \"1.2\" or \"1.3\"");
        return (p->min_tls_version = tg_resource_strdup(mc->r, s)) == NULL ? TG_ENOMEM : 0;
    }
    if (strcmp(k, "cipher_suites") == 0)
        return get_list(y, v, key, mc->r, &p->cipher_suites, check_cipher);
    if (strcmp(k, "timeouts") == 0)
        return walk_map(y, v, key, on_timeouts, p);
    if (strcmp(k, "inbound_mode") == 0) {
        if ((rc = get_str(y, v, key, &s)) < 0)
            return rc;
        if (strcmp(s, "strict") == 0 || strcmp(s, "STRICT") == 0)
            p->inbound_mode = TG_RES_INBOUND_STRICT;
        else if (strcmp(s, "permissive") == 0 || strcmp(s, "PERMISSIVE") == 0)
            p->inbound_mode = TG_RES_INBOUND_PERMISSIVE;
        else
            return fail_at(y, v, key, "want strict or permissive");
        return 0;
    }
    return 1;
}

static const struct {
    const char *key;
    enum tg_res_type type;
} sections[] = {
    {"authorization", TG_RES_AUTHORIZATION}, {"rate_limits", TG_RES_RATE_LIMITS},
    {"revocations", TG_RES_REVOCATIONS},     {"mesh_table", TG_RES_MESH_TABLE},
    {"settings", TG_RES_PROXY_SETTINGS},
};

static int on_mesh_file(struct yw *y, void *obj, const char *k, yaml_node_t *v, const char *key)
{
    struct mesh_ctx *mc = obj;
    struct tg_cp_mesh *m = mc->m;
    enum tg_res_type t = TG_RES_NONE;
    struct tg_resource *r;
    int rc;

    for (size_t i = 0; i < TG_NELEM(sections); i++)
        if (strcmp(k, sections[i].key) == 0)
            t = sections[i].type;
    if (t == TG_RES_NONE)
        return 1;
    if (m->section_file[t] != NULL)
        return fail_at(y, v, key, "already set in %s", m->section_file[t]);
    if ((r = tg_resource_new(t)) == NULL)
        return TG_ENOMEM;
    mc->r = r;
    switch (t) {
    case TG_RES_AUTHORIZATION:
        rc = walk_map(y, v, key, on_authorization, mc);
        break;
    case TG_RES_RATE_LIMITS:
        rc = get_limits(y, mc, v, key);
        break;
    case TG_RES_REVOCATIONS:
        rc = walk_map(y, v, key, on_revocations, mc);
        break;
    case TG_RES_MESH_TABLE:
        rc = walk_map(y, v, key, on_mesh_table, mc);
        break;
    default:
        rc = walk_map(y, v, key, on_settings, mc);
        break;
    }
    if (rc == 0 && t == TG_RES_AUTHORIZATION)
        rc = check_rules(y, v, &r->u.authorization, NULL);
    if (rc == 0 && (m->section_file[t] = strdup(y->file)) == NULL)
        rc = TG_ENOMEM;
    if (rc < 0) {
        tg_resource_free(r);
        return rc;
    }
    tg_resource_free(m->res[t]);
    m->res[t] = r;
    return 0;
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
    strlist_free(&m->crl_files);
    memset(m, 0, sizeof(*m));
}

int tg_cp_mesh_parse(struct tg_cp_mesh *m, const char *text, size_t len, const char *name,
                     char *err)
{
    struct mesh_ctx mc = {m, NULL, NULL};
    yaml_node_t *root = NULL;
    struct yw y;
    int rc;

    if ((rc = open_doc(&y, text, len, name, err, &root)) < 0)
        return rc;
    if (root != NULL)
        rc = walk_map(&y, root, "", on_mesh_file, &mc);
    if (rc == TG_ENOMEM)
        tg_err_set(err, rc, "out of memory");
    close_doc(&y);
    return rc;
}

int tg_cp_mesh_load(struct tg_cp_mesh *m, const char *path, char *err)
{
    char *text;
    size_t len;
    int rc = tg_file_read(NULL, path, MAX_FILE, 0, &text, &len, err);

    if (rc < 0)
        return rc;
    rc = tg_cp_mesh_parse(m, text, len, path, err);
    free(text);
    return rc;
}

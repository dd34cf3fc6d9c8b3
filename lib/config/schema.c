/* The schema walker (cfgload.h): a mapping of the tree read by a table of fields, one kind
 * of value per key. It descends only where a table does, so it recurses no deeper than the
 * tables. Every value is checked here, by the one grammar of its kind (grammar.c). */
#include "tollgate/cfgload.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tollgate/esc.h"

int tg_cfg_fail(const struct tg_cfg *cfg, size_t line, const char *path, const char *fmt, ...)
{
    char what[TG_ERRLEN];
    char where[32] = "";
    va_list ap;

    va_start(ap, fmt);
    tg_esc_vformat(what, sizeof(what), fmt, ap); /* values quoted in fmt stay one line */
    va_end(ap);
    if (line > 0)
        snprintf(where, sizeof(where), ":%zu", line);
    if (path == NULL || path[0] == '\0')
        return tg_err_set(cfg->err, TG_ECONFIG, "%s%s: %s", cfg->file, where, what);
    return tg_err_set(cfg->err, TG_ECONFIG, "%s%s: %s: %s", cfg->file, where, path, what);
}

int tg_cfg_nomem(const struct tg_cfg *cfg)
{
    return tg_err_set(cfg->err, TG_ENOMEM, "%s: out of memory", cfg->file);
}

const char *tg_cfg_join(char *dst, const char *parent, const char *key)
{
    /* cut short if need be: it only names things */
    if (snprintf(dst, TG_CFG_KEYPATH, "%s%s%s", parent, parent[0] != '\0' ? "." : "", key) < 0)
        dst[0] = '\0';
    return dst;
}

static const char *item_path(char *dst, const char *parent, size_t i)
{
    if (snprintf(dst, TG_CFG_KEYPATH, "%s[%zu]", parent, i) < 0)
        dst[0] = '\0';
    return dst;
}

int tg_cfg_wrong_type(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                      const char *want)
{
    if (v->type == TG_CFG_T_SCALAR && v->null)
        return tg_cfg_fail(cfg, v->line, path, "has no value (want %s)", want);
    return tg_cfg_fail(cfg, v->line, path, "want %s, not %s", want,
                       v->type == TG_CFG_T_SCALAR ? "a single value"
                       : v->type == TG_CFG_T_LIST ? "a list"
                                                  : "a mapping");
}

int tg_cfg_scalar(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                  const char **out)
{
    if (v->type != TG_CFG_T_SCALAR || v->null) {
        if (v->type == TG_CFG_T_SCALAR)
            return tg_cfg_fail(cfg, v->line, path, "has no value");
        return tg_cfg_wrong_type(cfg, v, path, "a single value");
    }
    *out = v->str;
    return 0;
}

static int want_list(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                     const char *want)
{
    return v->type == TG_CFG_T_LIST ? 0 : tg_cfg_wrong_type(cfg, v, path, want);
}

int tg_cfg_path(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path, const char *s,
                char **dst)
{
    size_t blen, vlen = strlen(s);

    if (vlen == 0)
        return tg_cfg_fail(cfg, v->line, path, "is empty (want a file path)");
    blen = cfg->base == NULL || s[0] == '/' ? 0 : strlen(cfg->base) + 1;
    if (blen + vlen >= PATH_MAX)
        return tg_cfg_fail(cfg, v->line, path, "\"%.64s...\": path is too long", s);
    if ((*dst = malloc(blen + vlen + 1)) == NULL)
        return tg_cfg_nomem(cfg);
    if (blen > 0) {
        memcpy(*dst, cfg->base, blen - 1);
        (*dst)[blen - 1] = '/';
    }
    memcpy(*dst + blen, s, vlen + 1);
    return 0;
}

/* The directory relative paths in name are resolved against: "a/b.yaml" -> "a", "/b.yaml" ->
 * "" (paths become "/..."), "b.yaml" -> NULL (paths stay as written). When absolute, a
 * relative name is first put under the working directory. Not realpath(): a symbolic link in the
 * path (a Kubernetes ConfigMap mount swaps one on every update) must stay a link so that a reload
 * sees the new files. */
int tg_cfg_base(const char *name, bool absolute, char **base)
{
    const char *slash = strrchr(name, '/');
    size_t dlen = slash == NULL ? 0 : (size_t)(slash - name);
    char cwd[PATH_MAX];
    size_t clen = 0;

    *base = NULL;
    if (absolute && name[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
        clen = strlen(cwd);
    if (slash == NULL && clen == 0)
        return 0;
    if ((*base = malloc(clen + 1 + dlen + 1)) == NULL)
        return TG_ENOMEM;
    memcpy(*base, cwd, clen);
    if (clen > 0 && dlen > 0)
        (*base)[clen++] = '/';
    memcpy(*base + clen, name, dlen);
    (*base)[clen + dlen] = '\0';
    return 0;
}

void tg_strlist_free(struct tg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

bool tg_strlist_equal(const struct tg_strlist *a, const struct tg_strlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

void tg_labels_free(struct tg_labels *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->keys[i]);
        free(l->values[i]);
    }
    free(l->keys);
    free(l->values);
    memset(l, 0, sizeof(*l));
}

static void put_uint(void *dst, size_t size, uint64_t u)
{
    switch (size) {
    case 1:
        *(uint8_t *)dst = (uint8_t)u;
        break;
    case 2:
        *(uint16_t *)dst = (uint16_t)u;
        break;
    case 4:
        *(uint32_t *)dst = (uint32_t)u;
        break;
    default:
        *(uint64_t *)dst = u;
        break;
    }
}

static int read_uint(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                     uint64_t min, uint64_t max, uint64_t *u)
{
    const char *s;
    size_t n;
    int rc;

    if ((rc = tg_cfg_scalar(cfg, v, path, &s)) < 0)
        return rc;
    if (!v->plain)
        return tg_cfg_fail(cfg, v->line, path, "want a number, not a quoted string");
    n = strspn(s, "0123456789");
    *u = 0;
    for (size_t i = 0; i < n && s[n] == '\0'; i++) {
        if (*u > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10) {
            n = 0;
            break;
        }
        *u = *u * 10 + (uint64_t)(s[i] - '0');
    }
    if (n == 0 || s[n] != '\0')
        return tg_cfg_fail(cfg, v->line, path, "\"%.64s\" is not a whole number (want %llu..%llu)",
                           s, (unsigned long long)min, (unsigned long long)max);
    if (*u < min || *u > max)
        return tg_cfg_fail(cfg, v->line, path, "%s is out of range (want %llu..%llu)", s,
                           (unsigned long long)min, (unsigned long long)max);
    return 0;
}

/* "a, b or c" from choices, into dst[TG_ERRLEN]. */
static const char *choice_names(char *dst, const struct tg_cfg_choice *c)
{
    size_t o = 0;

    dst[0] = '\0';
    for (size_t i = 0; c[i].name != NULL && o < TG_ERRLEN; i++)
        o += (size_t)snprintf(dst + o, TG_ERRLEN - o, "%s%s",
                              i == 0                  ? ""
                              : c[i + 1].name == NULL ? " or "
                                                      : ", ",
                              c[i].name);
    return dst;
}

static int read_enum(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                     const struct tg_cfg_field *f, void *dst)
{
    char names[TG_ERRLEN];
    const char *s;
    int rc;

    if ((rc = tg_cfg_scalar(cfg, v, path, &s)) < 0)
        return rc;
    for (const struct tg_cfg_choice *c = f->choices; c->name != NULL; c++) {
        if (strcmp(c->name, s) == 0) {
            put_uint(dst, f->size, (uint64_t)c->value);
            return 0;
        }
    }
    if (f->what != NULL)
        return tg_cfg_fail(cfg, v->line, path, "\"%.64s\" is not %s (want %s)", s, f->what,
                           choice_names(names, f->choices));
    return tg_cfg_fail(cfg, v->line, path, "\"%.64s\" is not %s", s,
                       choice_names(names, f->choices));
}

static int read_strs(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                     const struct tg_cfg_field *f, struct tg_strlist *l)
{
    char item[TG_CFG_KEYPATH], why[TG_ERRLEN];
    char *norm = NULL;
    int rc;

    const struct tg_cfg_node *const *kids = (const struct tg_cfg_node *const *)v->kids;
    size_t n = v->n;

    if (f->kind == TG_CFG_PATHS && v->type == TG_CFG_T_SCALAR && !v->null) {
        kids = &v; /* a file, or a list of files */
        n = 1;
    } else if ((rc = want_list(cfg, v, path,
                               f->kind == TG_CFG_PATHS ? "a list of files" : "a list")) < 0) {
        return rc;
    }
    tg_strlist_free(l);
    if ((l->v = calloc(n + 1, sizeof(*l->v))) == NULL ||
        (f->item != NULL && (norm = malloc(TG_CFG_NORM)) == NULL)) {
        rc = tg_cfg_nomem(cfg);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const struct tg_cfg_node *e = kids[i];
        const char *s;

        item_path(item, path, i);
        if ((rc = tg_cfg_scalar(cfg, e, item, &s)) < 0)
            goto done;
        if (s[0] == '\0') {
            rc = tg_cfg_fail(cfg, e->line, item, "is empty");
            goto done;
        }
        if (f->kind == TG_CFG_PATHS) {
            if ((rc = tg_cfg_path(cfg, e, item, s, &l->v[l->n])) < 0)
                goto done;
            l->n++;
            continue;
        }
        if (f->kind == TG_CFG_IDS && tg_workload_id_check(s, why) < 0) {
            rc = tg_cfg_fail(cfg, e->line, item, "%s", why);
            goto done;
        }
        if (norm != NULL) {
            norm[0] = '\0';
            if (f->item(s, norm, why) < 0) {
                rc = tg_cfg_fail(cfg, e->line, item, "%s", why);
                goto done;
            }
            s = norm[0] != '\0' ? norm : s;
        }
        if ((l->v[l->n] = strdup(s)) == NULL) {
            rc = tg_cfg_nomem(cfg);
            goto done;
        }
        l->n++;
    }
    rc = 0;
    if (l->n < f->min)
        rc = tg_cfg_fail(cfg, v->line, path, "is empty (want at least %llu %s)",
                         (unsigned long long)f->min, f->kind == TG_CFG_IDS ? "SPIFFE ID" : "entry");
done:
    free(norm);
    return rc;
}

static int read_ports(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                      struct tg_intlist *l)
{
    char item[TG_CFG_KEYPATH];
    uint64_t u;
    int rc;

    if ((rc = want_list(cfg, v, path, "a list of ports")) < 0)
        return rc;
    free(l->v);
    l->n = 0;
    if ((l->v = calloc(v->n + 1, sizeof(*l->v))) == NULL)
        return tg_cfg_nomem(cfg);
    for (size_t i = 0; i < v->n; i++) {
        if ((rc = read_uint(cfg, v->kids[i], item_path(item, path, i), 1, 65535, &u)) < 0)
            return rc;
        l->v[l->n++] = (int)u;
    }
    return 0;
}

static int read_labels(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                       struct tg_labels *l)
{
    char item[TG_CFG_KEYPATH];
    int rc;

    if (v->type != TG_CFG_T_MAPPING)
        return tg_cfg_wrong_type(cfg, v, path, "a mapping of labels");
    tg_labels_free(l);
    if ((l->keys = calloc(v->n + 1, sizeof(char *))) == NULL ||
        (l->values = calloc(v->n + 1, sizeof(char *))) == NULL)
        return tg_cfg_nomem(cfg);
    for (size_t i = 0; i < v->n; i++) {
        const struct tg_cfg_node *k = v->kids[2 * i];
        const char *s;

        if (k->null || k->str[0] == '\0')
            return tg_cfg_fail(cfg, k->line, path, "an empty name");
        tg_cfg_join(item, path, k->str);
        if ((rc = tg_cfg_scalar(cfg, v->kids[2 * i + 1], item, &s)) < 0)
            return rc;
        if ((l->keys[l->n] = strdup(k->str)) == NULL)
            return tg_cfg_nomem(cfg);
        if ((l->values[l->n] = strdup(s)) == NULL) {
            free(l->keys[l->n]);
            return tg_cfg_nomem(cfg);
        }
        l->n++;
    }
    return 0;
}

static int read_list(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                     const struct tg_cfg_field *f, void *obj)
{
    char item[TG_CFG_KEYPATH], want[64];
    void **arr = (void **)((char *)obj + f->off);
    size_t *n = (size_t *)((char *)obj + f->count);
    int rc;

    snprintf(want, sizeof(want), "a list of %s", f->what);
    if ((rc = want_list(cfg, v, path, want)) < 0)
        return rc;
    if (*arr != NULL)
        return tg_cfg_fail(cfg, v->line, path, "given twice");
    if ((*arr = calloc(v->n + 1, f->size)) == NULL)
        return tg_cfg_nomem(cfg);
    for (size_t i = 0; i < v->n; i++) {
        const struct tg_cfg_node *e = v->kids[i];
        char *el = (char *)*arr + i * f->size;

        item_path(item, path, i);
        if (e->type != TG_CFG_T_MAPPING)
            return tg_cfg_wrong_type(cfg, e, item, "a mapping");
        if (f->init != NULL)
            f->init(el);
        (*n)++; /* counted now: the owner frees a half-read one */
        if ((rc = tg_cfg_walk(cfg, e, item, f->sub, el)) < 0)
            return rc;
        if (f->fn != NULL && (rc = f->fn(cfg, e, item, el, obj)) < 0)
            return rc;
    }
    return 0;
}

/* One value of the kind f says, into obj + f->off. */
int tg_cfg_read(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                const struct tg_cfg_field *f, void *obj)
{
    void *dst = (char *)obj + f->off;
    char why[TG_ERRLEN];
    const char *s = NULL;
    uint64_t u;
    int rc;

    switch (f->kind) {
    case TG_CFG_MAP:
        if ((rc = tg_cfg_walk(cfg, v, path, f->sub, dst)) < 0)
            return rc;
        return f->fn != NULL ? f->fn(cfg, v, path, dst, obj) : 0;
    case TG_CFG_LIST:
        return read_list(cfg, v, path, f, obj);
    case TG_CFG_FUNC:
        return f->fn(cfg, v, path, dst, obj);
    case TG_CFG_STRS:
    case TG_CFG_IDS:
    case TG_CFG_PATHS:
        return read_strs(cfg, v, path, f, dst);
    case TG_CFG_PORTS:
        return read_ports(cfg, v, path, dst);
    case TG_CFG_LABELS:
        return read_labels(cfg, v, path, dst);
    case TG_CFG_UINT:
        if ((rc = read_uint(cfg, v, path, f->min, f->max, &u)) < 0)
            return rc;
        put_uint(dst, f->size, u);
        return 0;
    case TG_CFG_PORT:
        if ((rc = read_uint(cfg, v, path, 1, 65535, &u)) < 0)
            return rc;
        *(uint16_t *)dst = (uint16_t)u;
        return 0;
    case TG_CFG_ENUM:
        return read_enum(cfg, v, path, f, dst);
    case TG_CFG_RENAMED:
        return tg_cfg_fail(cfg, v->line, path, "renamed to '%s'", f->renamed);
    default:
        break;
    }
    if ((rc = tg_cfg_scalar(cfg, v, path, &s)) < 0)
        return rc;
    switch (f->kind) {
    case TG_CFG_STR: {
        char norm[TG_CFG_NORM] = "";

        if (s[0] == '\0')
            return tg_cfg_fail(cfg, v->line, path, "is empty");
        if (f->item != NULL && f->item(s, norm, why) < 0)
            return tg_cfg_fail(cfg, v->line, path, "%s", why);
        free(*(char **)dst);
        return (*(char **)dst = strdup(norm[0] != '\0' ? norm : s)) == NULL ? tg_cfg_nomem(cfg) : 0;
    }
    case TG_CFG_BOOL:
        if (!v->plain)
            return tg_cfg_fail(cfg, v->line, path, "want true or false, not a quoted string");
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
            *(bool *)dst = true;
        else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
            *(bool *)dst = false;
        else
            return tg_cfg_fail(cfg, v->line, path, "\"%.64s\" is not true or false", s);
        return 0;
    case TG_CFG_SIZE:
        if (tg_size_parse(s, &u, why) < 0)
            return tg_cfg_fail(cfg, v->line, path, "%s", why);
        if (u < f->min || u > f->max)
            return tg_cfg_fail(cfg, v->line, path,
                               "\"%.64s\" is out of range (want %llu..%llu bytes)", s,
                               (unsigned long long)f->min, (unsigned long long)f->max);
        *(size_t *)dst = (size_t)u;
        return 0;
    case TG_CFG_DURATION:
        if (tg_duration_parse(s, &u, why) < 0)
            return tg_cfg_fail(cfg, v->line, path, "%s", why);
        if (u == 0)
            return tg_cfg_fail(cfg, v->line, path, "must be more than 0");
        if (u < f->min || (f->max > 0 && u > f->max))
            return tg_cfg_fail(cfg, v->line, path, "out of range (want %llums to %llus)",
                               (unsigned long long)f->min, (unsigned long long)f->max / 1000);
        *(uint64_t *)dst = u;
        return 0;
    case TG_CFG_PATH:
        free(*(char **)dst);
        *(char **)dst = NULL;
        return tg_cfg_path(cfg, v, path, s, dst);
    case TG_CFG_ADDR:
        if (tg_addr_parse(s, f->min == 0, dst, why) < 0)
            return tg_cfg_fail(cfg, v->line, path, "%s", why);
        return 0;
    case TG_CFG_HOSTPORT:
        if (tg_hostport_parse(s, dst, why) < 0)
            return tg_cfg_fail(cfg, v->line, path, "%s", why);
        return 0;
    case TG_CFG_CIDR:
        if (tg_cidr_parse(s, dst, why) < 0)
            return tg_cfg_fail(cfg, v->line, path, "%s", why);
        return 0;
    default:
        return tg_cfg_fail(cfg, v->line, path, "internal error: no reader for this key");
    }
}

int tg_cfg_walk(struct tg_cfg *cfg, const struct tg_cfg_node *m, const char *path,
                const struct tg_cfg_field *fields, void *obj)
{
    char child[TG_CFG_KEYPATH];
    const struct tg_cfg_field *f;
    int rc;

    if (m->type != TG_CFG_T_MAPPING)
        return tg_cfg_wrong_type(cfg, m, path, "a mapping");
    for (size_t i = 0; i < m->n; i++) {
        const struct tg_cfg_node *k = m->kids[2 * i];

        for (f = fields; f->key != NULL; f++)
            if (strcmp(f->key, k->str) == 0)
                break;
        if (f->key == NULL) {
            bool plain = k->str[0] != '\0' &&
                         strspn(k->str, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789_-") == strlen(k->str) &&
                         strlen(k->str) < 64;

            if (plain)
                return tg_cfg_fail(cfg, k->line, tg_cfg_join(child, path, k->str), "unknown key");
            return tg_cfg_fail(cfg, k->line, NULL, "%s%s\"%.60s%s\": unknown key", path,
                               path[0] != '\0' ? "." : "", k->str,
                               strlen(k->str) > 60 ? "..." : "");
        }
        tg_cfg_join(child, path, f->key);
        if (f->kind == TG_CFG_RENAMED)
            return tg_cfg_fail(cfg, k->line, child, "renamed to '%s'", f->renamed);
        if ((rc = tg_cfg_read(cfg, m->kids[2 * i + 1], child, f, obj)) < 0)
            return rc;
    }
    for (f = fields; f->key != NULL; f++)
        if (f->required && tg_cfg_get(m, f->key, NULL) == NULL)
            return tg_cfg_fail(cfg, m->line, tg_cfg_join(child, path, f->key),
                               "missing (required)");
    return 0;
}

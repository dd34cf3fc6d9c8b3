/* The only user of libyaml (cfgload.h): a text becomes a tree of struct tg_cfg_node, built
 * from libyaml's events one at a time with an explicit stack, so no input makes this code
 * recurse, and refused as soon as it does not fit (anchors, aliases, tags, duplicate keys,
 * too deep, too many entries). */
#include "tollgate/cfgload.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define SORTED_KEYS 64 /* a mapping with more keys is checked for duplicates once, sorted */
#define TG_STR_(x) #x
#define TG_STR(x) TG_STR_(x)

struct build {
    yaml_parser_t yp;
    yaml_event_t ev;
    bool have_ev;
    const char *name;
    char *err;
    struct tg_cfg_doc *doc;
    struct tg_cfg_node *stack[TG_CFG_MAX_DEPTH + 1];
    size_t cap[TG_CFG_MAX_DEPTH + 1]; /* kids allocated for stack[i] */
    size_t len[TG_CFG_MAX_DEPTH + 1]; /* kids stored */
    size_t depth;
};

static int bfail(struct build *b, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bfail(struct build *b, size_t line, const char *fmt, ...)
{
    char what[TG_ERRLEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (line == 0)
        return tg_err_set(b->err, TG_ECONFIG, "%s: %s", b->name, what);
    return tg_err_set(b->err, TG_ECONFIG, "%s:%zu: %s", b->name, line, what);
}

/* The key path where the next node goes ("inbound[0].allow[3]"), for messages; upto levels
 * of the stack (the open containers). */
static const char *where(const struct build *b, size_t upto, char *dst)
{
    size_t o = 0;

    dst[0] = '\0';
    for (size_t i = 0; i < upto && o < TG_CFG_KEYPATH; i++) {
        const struct tg_cfg_node *c = b->stack[i];
        int n = 0;

        bool top = i + 1 == b->depth; /* below it, the open child is already attached */
        size_t len = b->len[i];

        if (c->type == TG_CFG_T_MAPPING && (top ? len % 2 == 1 : len >= 2))
            n = snprintf(dst + o, TG_CFG_KEYPATH - o, "%s%.64s", o > 0 ? "." : "",
                         c->kids[top ? len - 1 : len - 2]->str);
        else if (c->type == TG_CFG_T_LIST)
            n = snprintf(dst + o, TG_CFG_KEYPATH - o, "[%zu]", top ? len : len - 1);
        o += n > 0 ? (size_t)n : 0;
    }
    return dst;
}

/* "FILE:LINE: PATH: what", PATH where the next node goes. */
static int pfail(struct build *b, size_t line, size_t upto, const char *what)
{
    char path[TG_CFG_KEYPATH];

    where(b, upto, path);
    if (path[0] == '\0')
        return bfail(b, line, "%s", what);
    return bfail(b, line, "%s: %s", path, what);
}

static int syntax_error(struct build *b)
{
    const yaml_parser_t *p = &b->yp;
    const char *problem = p->problem != NULL ? p->problem : "unknown problem";

    if (p->error == YAML_MEMORY_ERROR)
        return tg_err_set(b->err, TG_ENOMEM, "%s: out of memory", b->name);
    if (p->error == YAML_READER_ERROR)
        return bfail(b, 0, "byte %zu: %s", p->problem_offset, problem);
    if (p->context != NULL)
        return bfail(b, p->problem_mark.line + 1, "YAML syntax error: %s (%s at line %zu)", problem,
                     p->context, p->context_mark.line + 1);
    return bfail(b, p->problem_mark.line + 1, "YAML syntax error: %s", problem);
}

static struct tg_cfg_node *new_node(struct build *b, enum tg_cfg_type type)
{
    struct tg_cfg_node *n = calloc(1, sizeof(*n));

    if (n == NULL)
        return NULL;
    n->type = type;
    n->line = b->ev.start_mark.line + 1;
    n->next = b->doc->nodes;
    b->doc->nodes = n;
    return n;
}

/* Adds n to the open container on top of the stack (or makes it the root). */
static int attach(struct build *b, struct tg_cfg_node *n)
{
    struct tg_cfg_node *top;
    size_t *cap, *len;

    if (b->depth == 0) {
        b->doc->root = n;
        return 0;
    }
    top = b->stack[b->depth - 1];
    cap = &b->cap[b->depth - 1];
    len = &b->len[b->depth - 1];
    if (top->type == TG_CFG_T_MAPPING && *len % 2 == 0) { /* a key */
        char path[TG_CFG_KEYPATH];

        if (n->type != TG_CFG_T_SCALAR)
            return pfail(b, n->line, b->depth,
                         n->type == TG_CFG_T_MAPPING ? "a key must be a name, not a mapping"
                                                     : "a key must be a name, not a list");
        where(b, b->depth, path);
        for (size_t i = 0; i < top->n && top->n < SORTED_KEYS; i++) /* more: at the end */
            if (strcmp(top->kids[2 * i]->str, n->str) == 0)
                return bfail(b, n->line, "%s%s%.64s: duplicate key (first at line %zu)", path,
                             path[0] != '\0' ? "." : "", n->str, top->kids[2 * i]->line);
        if (top->n == TG_CFG_MAX_ITEMS)
            return pfail(b, n->line, b->depth - 1, "more than " TG_STR(TG_CFG_MAX_ITEMS) " keys");
    } else if (top->type == TG_CFG_T_LIST && top->n == TG_CFG_MAX_ITEMS) {
        return pfail(b, n->line, b->depth - 1, "more than " TG_STR(TG_CFG_MAX_ITEMS) " entries");
    }
    if (*len == *cap) {
        size_t ncap = *cap == 0 ? 8 : *cap * 2;
        struct tg_cfg_node **k = realloc(top->kids, ncap * sizeof(*k));

        if (k == NULL)
            return tg_err_set(b->err, TG_ENOMEM, "%s: out of memory", b->name);
        top->kids = k;
        *cap = ncap;
    }
    top->kids[(*len)++] = n;
    top->n = top->type == TG_CFG_T_MAPPING ? *len / 2 : *len;
    return 0;
}

static int on_scalar(struct build *b)
{
    const yaml_event_t *ev = &b->ev;
    const char *v = (const char *)ev->data.scalar.value;
    struct tg_cfg_node *n = new_node(b, TG_CFG_T_SCALAR);

    if (n == NULL || (n->str = strdup(v)) == NULL)
        return tg_err_set(b->err, TG_ENOMEM, "%s: out of memory", b->name);
    if (strlen(v) != ev->data.scalar.length)
        return pfail(b, n->line, b->depth, "contains a NUL byte");
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    n->null = n->plain && (v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
                           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0);
    return attach(b, n);
}

static int cmp_key(const void *x, const void *y)
{
    const struct tg_cfg_node *a = *(const struct tg_cfg_node *const *)x;
    const struct tg_cfg_node *c = *(const struct tg_cfg_node *const *)y;
    int r = strcmp(a->str, c->str);

    return r != 0 ? r : (a->line > c->line) - (a->line < c->line);
}

/* A large mapping, complete: its keys sorted, so that a duplicate costs n log n to find, not
 * n * n; the one reported is the duplicate that comes first in the file. */
static int check_sorted_keys(struct build *b, const struct tg_cfg_node *m)
{
    const struct tg_cfg_node **keys = malloc(m->n * sizeof(*keys));
    const struct tg_cfg_node *dup = NULL, *first = NULL;
    char path[TG_CFG_KEYPATH];

    if (keys == NULL)
        return tg_err_set(b->err, TG_ENOMEM, "%s: out of memory", b->name);
    for (size_t i = 0; i < m->n; i++)
        keys[i] = m->kids[2 * i];
    qsort(keys, m->n, sizeof(*keys), cmp_key);
    for (size_t i = 1; i < m->n; i++) {
        if (strcmp(keys[i]->str, keys[i - 1]->str) == 0 &&
            (dup == NULL || keys[i]->line < dup->line)) {
            dup = keys[i];
            first = keys[i - 1];
        }
    }
    free(keys);
    if (dup == NULL)
        return 0;
    where(b, b->depth, path);
    return bfail(b, dup->line, "%s%s%.64s: duplicate key (first at line %zu)", path,
                 path[0] != '\0' ? "." : "", dup->str, first->line);
}

static int on_open(struct build *b, enum tg_cfg_type type)
{
    struct tg_cfg_node *n = new_node(b, type);
    int rc;

    if (n == NULL)
        return tg_err_set(b->err, TG_ENOMEM, "%s: out of memory", b->name);
    if (b->depth == TG_CFG_MAX_DEPTH)
        return pfail(b, n->line, b->depth,
                     "nested deeper than " TG_STR(TG_CFG_MAX_DEPTH) " levels");
    if ((rc = attach(b, n)) < 0)
        return rc;
    b->stack[b->depth] = n;
    b->cap[b->depth] = 0;
    b->len[b->depth] = 0;
    b->depth++;
    return 0;
}

/* Refuses what a settings file has no use for; 1 at the end of the stream. */
static int step(struct build *b)
{
    const yaml_event_t *ev = &b->ev;
    const yaml_char_t *anchor = NULL, *tag = NULL;
    size_t line = ev->start_mark.line + 1;

    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return pfail(b, line, b->depth, "aliases (*name) are not supported");
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    case YAML_DOCUMENT_START_EVENT:
        if (b->doc->root != NULL)
            return bfail(b, line, "a second YAML document (want only one)");
        return 0;
    case YAML_STREAM_END_EVENT:
        return 1;
    default:
        break;
    }
    if (anchor != NULL)
        return pfail(b, line, b->depth, "anchors (&name) are not supported");
    if (tag != NULL)
        return pfail(b, line, b->depth, "tags (!tag) are not supported");
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return on_scalar(b);
    case YAML_SEQUENCE_START_EVENT:
        return on_open(b, TG_CFG_T_LIST);
    case YAML_MAPPING_START_EVENT:
        return on_open(b, TG_CFG_T_MAPPING);
    case YAML_MAPPING_END_EVENT:
        if (b->stack[b->depth - 1]->n >= SORTED_KEYS) {
            int rc = check_sorted_keys(b, b->stack[b->depth - 1]);

            if (rc < 0)
                return rc;
        }
        b->depth--;
        return 0;
    case YAML_SEQUENCE_END_EVENT:
        b->depth--;
        return 0;
    default:
        return 0;
    }
}

int tg_cfg_doc_parse(const char *text, size_t len, const char *name, struct tg_cfg_doc *doc,
                     char *err)
{
    struct build b = {.name = name, .err = err, .doc = doc};
    int rc = 0;

    memset(doc, 0, sizeof(*doc));
    if (len > TG_CFG_MAX_FILE)
        return bfail(&b, 0, "larger than %d bytes", TG_CFG_MAX_FILE);
    if (!yaml_parser_initialize(&b.yp))
        return tg_err_set(err, TG_ENOMEM, "%s: out of memory", name);
    yaml_parser_set_input_string(&b.yp, (const unsigned char *)text, len);
    while (rc == 0) {
        if (!yaml_parser_parse(&b.yp, &b.ev)) {
            rc = syntax_error(&b);
            break;
        }
        rc = step(&b);
        yaml_event_delete(&b.ev);
    }
    yaml_parser_delete(&b.yp);
    if (rc < 0) {
        tg_cfg_doc_free(doc);
        return rc;
    }
    return 0;
}

void tg_cfg_doc_free(struct tg_cfg_doc *doc)
{
    struct tg_cfg_node *n = doc->nodes;

    while (n != NULL) {
        struct tg_cfg_node *next = n->next;

        free(n->str);
        free(n->kids);
        free(n);
        n = next;
    }
    memset(doc, 0, sizeof(*doc));
}

const struct tg_cfg_node *tg_cfg_get(const struct tg_cfg_node *m, const char *key,
                                     const struct tg_cfg_node **key_node)
{
    for (size_t i = 0; m != NULL && m->type == TG_CFG_T_MAPPING && i < m->n; i++) {
        if (strcmp(m->kids[2 * i]->str, key) == 0) {
            if (key_node != NULL)
                *key_node = m->kids[2 * i];
            return m->kids[2 * i + 1];
        }
    }
    return NULL;
}

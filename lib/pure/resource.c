/* Pushed resources as plain C, each in its own arena (resource.h). */
#include "tollgate/resource.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_MIN 4096

struct tg_arena_chunk {
    struct tg_arena_chunk *next;
    size_t used;
    size_t cap;
    max_align_t data[]; /* cap bytes */
};

static const char *const type_names[TG_RES_N] = {
    [TG_RES_NONE] = "none",
    [TG_RES_IDENTITY] = "identity",
    [TG_RES_TRUST_BUNDLE] = "trust_bundle",
    [TG_RES_AUTHORIZATION] = "authorization",
    [TG_RES_RATE_LIMITS] = "rate_limits",
    [TG_RES_REVOCATIONS] = "revocations",
    [TG_RES_MESH_TABLE] = "mesh_table",
    [TG_RES_PROXY_SETTINGS] = "proxy_settings",
};

const char *tg_res_type_name(enum tg_res_type t)
{
    return (unsigned)t < TG_RES_N ? type_names[t] : "none";
}

enum tg_res_type tg_res_type_from_name(const char *name)
{
    for (int t = TG_RES_IDENTITY; t < TG_RES_N; t++)
        if (strcmp(name, type_names[t]) == 0)
            return (enum tg_res_type)t;
    return TG_RES_NONE;
}

struct tg_resource *tg_resource_new(enum tg_res_type t)
{
    struct tg_resource *r = calloc(1, sizeof(*r));

    if (r != NULL)
        r->type = t;
    return r;
}

void tg_res_labels_free(struct tg_res_label *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i].key);
        free(v[i].value);
    }
    free(v);
}

void tg_resource_free(struct tg_resource *r)
{
    if (r == NULL)
        return;
    while (r->arena != NULL) {
        struct tg_arena_chunk *next = r->arena->next;

        free(r->arena);
        r->arena = next;
    }
    free(r);
}

void *tg_resource_alloc(struct tg_resource *r, size_t size)
{
    const size_t align = sizeof(max_align_t);
    struct tg_arena_chunk *c = r->arena;
    size_t need = (size + align - 1) / align * align;
    void *p;

    if (need == 0)
        need = align;
    if (need < size)
        return NULL; /* overflow */
    if (c == NULL || c->cap - c->used < need) {
        size_t cap = need > CHUNK_MIN ? need : CHUNK_MIN;

        if (cap > SIZE_MAX - sizeof(*c))
            return NULL;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = r->arena;
        r->arena = c;
    }
    p = (char *)c->data + c->used;
    c->used += need;
    memset(p, 0, size);
    return p;
}

void *tg_resource_array(struct tg_resource *r, size_t n, size_t elem)
{
    if (elem != 0 && n > SIZE_MAX / elem)
        return NULL;
    return tg_resource_alloc(r, n * elem);
}

char *tg_resource_strndup(struct tg_resource *r, const char *s, size_t n)
{
    char *p = tg_resource_alloc(r, n + 1);

    if (p != NULL && n > 0)
        memcpy(p, s, n);
    return p;
}

char *tg_resource_strdup(struct tg_resource *r, const char *s)
{
    return tg_resource_strndup(r, s, strlen(s));
}

void *tg_resource_memdup(struct tg_resource *r, const void *src, size_t n)
{
    void *p = tg_resource_alloc(r, n);

    if (p != NULL && n > 0)
        memcpy(p, src, n);
    return p;
}

int tg_resource_strlist(struct tg_resource *r, struct tg_strlist *dst, const char *const *src,
                        size_t n)
{
    dst->n = 0;
    dst->v = tg_resource_array(r, n, sizeof(char *));
    if (dst->v == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((dst->v[i] = tg_resource_strdup(r, src[i])) == NULL)
            return TG_ENOMEM;
    }
    dst->n = n;
    return 0;
}

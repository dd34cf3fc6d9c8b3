/* TokenReview requests, answers and their cache (cp_review.h). */
#include "cp_review.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/esc.h"

#define SA_PREFIX "system:serviceaccount:"
#define POD_NAME_EXTRA "authentication.kubernetes.io/pod-name"

char *tg_cp_review_body(const char *token, const struct tg_strlist *audiences)
{
    json_t *aud = json_array(), *j;
    char *out;

    for (size_t i = 0; aud != NULL && i < audiences->n; i++)
        if (json_array_append_new(aud, json_string(audiences->v[i])) < 0) {
            json_decref(aud);
            return NULL;
        }
    j = json_pack("{s:s, s:s, s:{s:s, s:o}}", "apiVersion", "authentication.k8s.io/v1", "kind",
                  "TokenReview", "spec", "token", token, "audiences", aud);
    if (j == NULL)
        return NULL;
    out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return out;
}

/* Formatted by the one escaper (esc.h): the API server's text goes into logs and Close. */
__attribute__((format(printf, 3, 4))) static void refuse(struct tg_cp_review *out, int64_t now,
                                                         const char *fmt, ...)
{
    va_list ap;

    out->ok = false;
    out->until = now + TG_CP_REVIEW_BAD_TTL_S;
    va_start(ap, fmt);
    tg_esc_vformat(out->why, sizeof(out->why), fmt, ap);
    va_end(ap);
}

static bool audience_ok(const json_t *aud, const struct tg_strlist *ours)
{
    for (size_t i = 0; i < json_array_size(aud); i++) {
        const char *a = json_string_value(json_array_get(aud, i));

        for (size_t j = 0; a != NULL && j < ours->n; j++)
            if (strcmp(a, ours->v[j]) == 0)
                return true;
    }
    return false;
}

/* "system:serviceaccount:NS:SA" into out's ns and sa. */
static bool split_username(const char *user, struct tg_cp_review *out)
{
    const char *ns, *colon;
    size_t ns_len;

    if (user == NULL || strncmp(user, SA_PREFIX, strlen(SA_PREFIX)) != 0)
        return false;
    ns = user + strlen(SA_PREFIX);
    if ((colon = strchr(ns, ':')) == NULL || (ns_len = (size_t)(colon - ns)) > TG_CP_JWT_NAME_MAX)
        return false;
    memcpy(out->ns, ns, ns_len);
    out->ns[ns_len] = '\0';
    if (strlen(colon + 1) > TG_CP_JWT_NAME_MAX)
        return false;
    snprintf(out->sa, sizeof(out->sa), "%s", colon + 1);
    return tg_cp_jwt_name_ok(out->ns) && tg_cp_jwt_name_ok(out->sa);
}

void tg_cp_review_read(long status, const char *body, const char *token,
                       const struct tg_strlist *audiences, int64_t now, struct tg_cp_review *out)
{
    json_t *j = json_loads(body != NULL ? body : "", JSON_REJECT_DUPLICATES, NULL);
    const json_t *st = json_object_get(j, "status"), *user = json_object_get(st, "user");
    const json_t *pods = json_object_get(json_object_get(user, "extra"), POD_NAME_EXTRA);
    const char *pod = json_string_value(json_array_get(pods, 0));
    int64_t exp;

    memset(out, 0, sizeof(*out));
    if (status != 200 && status != 201)
        refuse(out, now, "TokenReview: the API server answered %s%ld",
               status == 0 ? "nothing: " : "HTTP ", status);
    else if (!json_is_object(st))
        refuse(out, now, "TokenReview: the answer is not a TokenReview with a status");
    else if (!json_is_true(json_object_get(st, "authenticated")))
        refuse(out, now, "service-account token refused by the API server: %.150s",
               json_string_value(json_object_get(st, "error")) != NULL
                   ? json_string_value(json_object_get(st, "error"))
                   : "not authenticated");
    else if (!audience_ok(json_object_get(st, "audiences"), audiences))
        refuse(out, now,
               "service-account token refused: the API server finds none of our audiences "
               "(%.100s) in it",
               audiences->v[0]);
    else if (!split_username(json_string_value(json_object_get(user, "username")), out))
        refuse(out, now,
               "service-account token refused: user \"%.150s\" is not "
               "system:serviceaccount:<namespace>:<name>",
               json_string_value(json_object_get(user, "username")) != NULL
                   ? json_string_value(json_object_get(user, "username"))
                   : "");
    else if (pod != NULL && strlen(pod) > TG_CP_REVIEW_POD_MAX)
        refuse(out, now, "TokenReview: a pod name longer than %d bytes", TG_CP_REVIEW_POD_MAX);
    else {
        out->ok = true;
        snprintf(out->pod, sizeof(out->pod), "%s", pod != NULL ? pod : "");
        out->until = now + TG_CP_REVIEW_TTL_S;
        if (tg_cp_jwt_peek_exp(token, &exp) == 0 && exp < out->until)
            out->until = exp;
    }
    json_decref(j);
}

/* ---- the cache ---- */

struct entry {
    char *token; /* wiped before free */
    struct tg_cp_review r;
};

struct tg_cp_reviews {
    struct entry v[TG_CP_REVIEW_CACHE];
    size_t n;
};

int tg_cp_reviews_new(struct tg_cp_reviews **out)
{
    return (*out = calloc(1, sizeof(**out))) == NULL ? TG_ENOMEM : 0;
}

static void drop(struct tg_cp_reviews *c, size_t i)
{
    explicit_bzero(c->v[i].token, strlen(c->v[i].token));
    free(c->v[i].token);
    c->v[i] = c->v[--c->n];
}

void tg_cp_reviews_free(struct tg_cp_reviews *c)
{
    while (c != NULL && c->n > 0)
        drop(c, 0);
    free(c);
}

const struct tg_cp_review *tg_cp_reviews_get(struct tg_cp_reviews *c, const char *token,
                                             int64_t now)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->v[i].token, token) != 0)
            continue;
        if (c->v[i].r.until > now)
            return &c->v[i].r;
        drop(c, i);
        return NULL;
    }
    return NULL;
}

int tg_cp_reviews_put(struct tg_cp_reviews *c, const char *token, const struct tg_cp_review *r,
                      int64_t now)
{
    char *copy = strdup(token);
    size_t soonest = 0;

    if (copy == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < c->n;) { /* the same token again, and what has expired, go */
        if (strcmp(c->v[i].token, token) == 0 || c->v[i].r.until <= now)
            drop(c, i);
        else
            i++;
    }
    if (c->n == TG_CP_REVIEW_CACHE) {
        for (size_t i = 1; i < c->n; i++)
            if (c->v[i].r.until < c->v[soonest].r.until)
                soonest = i;
        drop(c, soonest);
    }
    c->v[c->n].token = copy;
    c->v[c->n].r = *r;
    c->n++;
    return 0;
}

size_t tg_cp_reviews_count(const struct tg_cp_reviews *c)
{
    return c->n;
}

/* Service-account tokens checked by the API server: the TokenReview API
 * (authentication.k8s.io/v1), for kubernetes.token_review. The request body, the answer's
 * checks and a bounded cache of answers; the request itself goes through the Kubernetes
 * client (k8s_client.h: tg_k8s_client_request, on the loop, never blocking it) from
 * cp_stream.c. Pure apart from jansson: no I/O, no libuv.
 *
 * A token is accepted only when the answer is HTTP 201 (or 200) with a TokenReview whose
 * status says authenticated: true, whose user.username is
 * "system:serviceaccount:NS:SA" with NS and SA names fit for a SPIFFE path, and whose
 * status.audiences holds one of ours (we ask for ours in spec.audiences; the API server
 * answers with those the token is valid for: an answer without ours is a token for someone
 * else, refused). The pod the token was issued for (user.extra
 * "authentication.kubernetes.io/pod-name") comes with it when the API server says.
 *
 * The cache: answers, good or bad, keyed by the whole token (compared in full, never by a
 * hash that another token could share), at most TG_CP_REVIEW_CACHE of them (a full cache
 * drops the entry closest to expiry), each kept TG_CP_REVIEW_TTL_S when good (never past
 * the token's own "exp", read without verifying: the API server verified it) and
 * TG_CP_REVIEW_BAD_TTL_S when refused. Tokens are wiped when dropped. */
#ifndef TOLLGATE_CP_REVIEW_H
#define TOLLGATE_CP_REVIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "cp_jwt.h"
#include "tollgate/config.h"
#include "tollgate/err.h"

#define TG_CP_REVIEW_PATH "/apis/authentication.k8s.io/v1/tokenreviews"
#define TG_CP_REVIEW_CACHE 1024
#define TG_CP_REVIEW_TTL_S 60
#define TG_CP_REVIEW_BAD_TTL_S 10
#define TG_CP_REVIEW_POD_MAX 253

struct tg_cp_review {
    bool ok;
    char ns[TG_CP_JWT_NAME_MAX + 1];
    char sa[TG_CP_JWT_NAME_MAX + 1];
    char pod[TG_CP_REVIEW_POD_MAX + 1]; /* "" when the answer names none */
    char why[TG_ERRLEN];                /* when !ok: one line, fit to send back */
    int64_t until;                      /* seconds since the epoch: cached until then */
};

/* The TokenReview to POST for token (JSON, malloc'd), asking for audiences; NULL when out of
 * memory. */
char *tg_cp_review_body(const char *token, const struct tg_strlist *audiences);
/* Reads the API server's answer (status, body) into *out (ok or not, with why), for a
 * token checked at now; audiences are ours. Never fails: an answer it cannot read is a
 * refusal saying so. */
void tg_cp_review_read(long status, const char *body, const char *token,
                       const struct tg_strlist *audiences, int64_t now, struct tg_cp_review *out);

struct tg_cp_reviews;
TG_MUST_USE int tg_cp_reviews_new(struct tg_cp_reviews **out);
void tg_cp_reviews_free(struct tg_cp_reviews *c); /* NULL is fine */
/* The cached answer for token, fresh at now, or NULL. */
const struct tg_cp_review *tg_cp_reviews_get(struct tg_cp_reviews *c, const char *token,
                                             int64_t now);
/* Caches r for token (a copy of both). 0 or TG_ENOMEM. */
TG_MUST_USE int tg_cp_reviews_put(struct tg_cp_reviews *c, const char *token,
                                  const struct tg_cp_review *r, int64_t now);
size_t tg_cp_reviews_count(const struct tg_cp_reviews *c);

#endif

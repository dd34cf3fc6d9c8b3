/* Kubernetes service-account tokens (projected, audience-bound JWTs) as a sidecar's bootstrap
 * credential: the keys that sign them, and their verification. The signature is checked by
 * lib/pki (jws.h), the JSON read with jansson (used nowhere else). Loop thread or any thread: no
 * shared state; keys are immutable once parsed.
 *
 * A token is accepted only when all of these hold (RFC 7515 compact serialization, RFC 7519
 * claims, Kubernetes' claim layout):
 *   - at most TG_CP_JWT_MAX bytes, three unpadded base64url parts, each decoding cleanly;
 *   - header "alg" RS256 or ES256 (never "none", never HS*: a public key is not an HMAC
 *     secret), no "crit";
 *   - the signature verifies with one of the keys (those with the header's "kid" when one
 *     has it; RSA at least 2048 bits, EC only P-256);
 *   - "iss" equals the configured issuer, "aud" (a string or a list) holds one of the
 *     configured audiences;
 *   - "exp" (required) is after now, "nbf" and "iat" (when present) are not after now, each
 *     with TG_CP_JWT_LEEWAY_S of clock skew;
 *   - "kubernetes.io": {"namespace": NS, "serviceaccount": {"name": SA}} with NS and SA names
 *     fit for a SPIFFE path, and "sub" equal to "system:serviceaccount:NS:SA".
 * Legacy secret-based tokens (no "aud", no "exp") are therefore refused. */
#ifndef TOLLGATE_CP_JWT_H
#define TOLLGATE_CP_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/config.h"
#include "tollgate/err.h"

#define TG_CP_JWT_MAX 8192     /* bytes of a token */
#define TG_CP_JWT_MAX_KEYS 64  /* in a keys file */
#define TG_CP_JWT_LEEWAY_S 60  /* clock skew allowed on exp, nbf and iat */
#define TG_CP_JWT_NAME_MAX 128 /* namespace and service account names */

struct tg_cp_jwt_keys;

/* Parses a keys file: either PEM public keys ("PUBLIC KEY", as in the API server's
 * --service-account-key-file, or "RSA PUBLIC KEY"), or a JWK Set ({"keys": [...]}, as served
 * at /openid/v1/jwks). At least one key, at most TG_CP_JWT_MAX_KEYS; RSA keys of 2048 bits
 * or more and EC P-256 keys only; a private key or a certificate is refused. name stands for
 * the file in messages. 0 with *out (tg_cp_jwt_keys_free), or TG_ECONFIG / TG_ENOMEM with
 * err. */
TG_MUST_USE int tg_cp_jwt_keys_parse(const char *text, size_t len, const char *name,
                                     struct tg_cp_jwt_keys **out, char *err);
/* NULL is fine. */
void tg_cp_jwt_keys_free(struct tg_cp_jwt_keys *k);
size_t tg_cp_jwt_keys_count(const struct tg_cp_jwt_keys *k);

struct tg_cp_jwt_rules {
    const char *issuer;
    const struct tg_strlist *audiences; /* at least one */
    const struct tg_cp_jwt_keys *keys;
    int64_t now; /* seconds since the epoch */
};

/* Verifies token (NUL-terminated) under r. 0 with the token's namespace and service account
 * in ns and sa (TG_CP_JWT_NAME_MAX + 1 bytes each), or TG_EPEER with the first reason it is
 * refused in err (fit to log and to send back; it quotes nothing of the token but short
 * claim values), or TG_ENOMEM. */
TG_MUST_USE int tg_cp_jwt_verify(const struct tg_cp_jwt_rules *r, const char *token, char *ns,
                                 char *sa, char *err);

/* The "exp" claim of token, read WITHOUT checking anything else (to bound how long an
 * answer of the API server, which did verify it, is cached). 0 with *exp, or -1. */
int tg_cp_jwt_peek_exp(const char *token, int64_t *exp);
/* Whether s is a namespace or service-account name fit for a SPIFFE path, as checked above. */
bool tg_cp_jwt_name_ok(const char *s);

#endif

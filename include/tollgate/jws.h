/* Public keys that check JWS signatures (RFC 7515, algorithms of RFC 7518): RS256
 * (RSASSA-PKCS1-v1_5 with SHA-256) and ES256 (ECDSA on P-256 with SHA-256), nothing else.
 * The door to wolfSSL for whoever verifies signed tokens (tollgate-cp's service-account
 * tokens, cp_jwt.c): callers see no wolfSSL type.
 *
 * A key is checked when it is made, so a key that exists is one tollgate verifies with: RSA
 * of TG_JWS_RSA_MIN_BITS to TG_JWS_RSA_MAX_BITS, EC on P-256 with its point on the curve.
 * Functions with what and err write one line into err (TG_ERRLEN bytes) starting with what,
 * naming what was wrong; they return 0, TG_EINVAL (the input is not such a key) or
 * TG_ENOMEM. Keys are immutable once made: any thread may verify with one, concurrently. */
#ifndef TOLLGATE_JWS_H
#define TOLLGATE_JWS_H

#include <stdbool.h>
#include <stddef.h>

#include "tollgate/err.h"

#define TG_JWS_RSA_MIN_BITS 2048
#define TG_JWS_RSA_MAX_BITS 8192
#define TG_JWS_SIG_MAX (TG_JWS_RSA_MAX_BITS / 8) /* bytes of the longest signature */
#define TG_JWS_P256_COORD 32                     /* bytes of an EC P-256 coordinate */
#define TG_SHA256_LEN 32

enum tg_jws_alg {
    TG_JWS_RS256, /* keys made from RSA */
    TG_JWS_ES256, /* keys made from EC P-256 */
};

struct tg_jws_key;

/* A public key from DER: with spki, a SubjectPublicKeyInfo holding an RSA or an EC key;
 * without, a PKCS#1 RSAPublicKey. The DER must end where the key ends. *out: the caller
 * frees it with tg_jws_key_free. */
TG_MUST_USE int tg_jws_key_from_der(const unsigned char *der, size_t len, bool spki,
                                    struct tg_jws_key **out, const char *what, char *err);

/* An RSA public key from its modulus n and exponent e, big-endian unsigned (a JWK's "n" and
 * "e", RFC 7518 section 6.3.1). */
TG_MUST_USE int tg_jws_key_from_rsa(const unsigned char *n, size_t n_len, const unsigned char *e,
                                    size_t e_len, struct tg_jws_key **out, const char *what,
                                    char *err);

/* An EC P-256 public key from its coordinates x and y, TG_JWS_P256_COORD bytes each,
 * big-endian (a JWK's "x" and "y", RFC 7518 section 6.2.1). */
TG_MUST_USE int tg_jws_key_from_p256(const unsigned char *x, const unsigned char *y,
                                     struct tg_jws_key **out, const char *what, char *err);

/* NULL is fine. */
void tg_jws_key_free(struct tg_jws_key *k);

/* The one algorithm k verifies. */
enum tg_jws_alg tg_jws_key_alg(const struct tg_jws_key *k);

/* Whether sig (sig_len bytes, as a JWS carries it: for RS256 the modulus' length, for ES256
 * r || s, 64 bytes) signs data under alg with k. 0, or TG_EPEER for any signature that does
 * not verify, including one of the wrong length and alg not being k's algorithm. */
TG_MUST_USE int tg_jws_verify(const struct tg_jws_key *k, enum tg_jws_alg alg,
                              const unsigned char *data, size_t data_len, const unsigned char *sig,
                              size_t sig_len);

/* SHA-256 of data into out (TG_SHA256_LEN bytes). 0, or TG_ETLS. */
TG_MUST_USE int tg_sha256(const void *data, size_t len, unsigned char *out);

#endif

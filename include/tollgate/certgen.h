/* Making keys, certificates and certificate requests, for callers that see no wolfSSL type
 * (tollgate-certs; tollgate-cp's CA can use the same calls). EC P-256 keys, ECDSA with
 * SHA-256 signatures, X.509 v3 certificates whose basicConstraints is critical (RFC 5280
 * 4.2.1.9), random serials unless one is given. Built on x509.h, the wolfSSL-level steps.
 *
 * Functions with err write one line into it (TG_ERRLEN bytes) naming what was wrong; what,
 * where given, starts that line. They return 0 or a negative TG_E* code: TG_EINVAL for input
 * that is not what the call takes, TG_ENOMEM, TG_ETLS when wolfCrypt itself fails. No global
 * state; any thread. Memory handed out is the caller's: keys with tg_key_free, key PEM with
 * tg_wipe_free (file.h), the rest with free(). */
#ifndef TOLLGATE_CERTGEN_H
#define TOLLGATE_CERTGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/err.h"

#define TG_CERT_CN_MAX 63     /* bytes of a subject common name */
#define TG_CERT_SERIAL_MAX 20 /* bytes of a serial (RFC 5280 4.1.2.2) */

/* An EC P-256 key pair; the private half is wiped when it is freed. Immutable once made. */
struct tg_key;

/* A new key from the system's random generator. */
TG_MUST_USE int tg_key_generate(struct tg_key **out, char *err);

/* A P-256 private key from data (len bytes): PEM "EC PRIVATE KEY" (SEC1) or "PRIVATE KEY"
 * (PKCS#8), or with allow_der the same as DER. The public half is derived when the file
 * lacks it. Copies of the key bytes are wiped. */
TG_MUST_USE int tg_key_decode(const char *data, size_t len, bool allow_der, const char *what,
                              struct tg_key **out, char *err);

/* NULL is fine. */
void tg_key_free(struct tg_key *k);

/* The key as PEM "EC PRIVATE KEY" (SEC1): *pem NUL-terminated, *pem_len without the NUL; the
 * caller frees it with tg_wipe_free(*pem, *pem_len + 1). */
TG_MUST_USE int tg_key_pem(const struct tg_key *k, char **pem, size_t *pem_len, char *err);

/* Whether the certificate cert (DER) holds k's public key: 0, or TG_EINVAL naming what. */
TG_MUST_USE int tg_key_matches(const struct tg_key *k, const unsigned char *cert, size_t len,
                               const char *what, char *err);

/* What a certificate says. Strings are borrowed for the call only. */
struct tg_cert_spec {
    const char *cn;                /* subject commonName, at most TG_CERT_CN_MAX bytes */
    const unsigned char *serial;   /* big-endian, first byte not zero; NULL: 16 random bytes */
    size_t serial_len;             /* at most TG_CERT_SERIAL_MAX, one less when the top bit is
                                    * set (DER adds a zero byte) */
    int64_t not_before, not_after; /* unix seconds, 1950 to 9999 */
    bool ca;                       /* basicConstraints CA:TRUE; false writes CA:FALSE */
    int path_len;                  /* with ca: pathLenConstraint 0 to 255, or -1 for none */
    const char *key_usage;         /* RFC 5280 names, comma-separated: "digitalSignature",
                                    * "keyCertSign,cRLSign"...; NULL: no extension */
    const char *ext_key_usage;     /* "serverAuth", "clientAuth", "codeSigning", comma-
                                    * separated; NULL: no extension (any purpose) */
    const char *const *uris;       /* subjectAltName: the URIs, then the DNS names; no names:
                                    * no extension */
    size_t n_uris;
    const char *const *dns;
    size_t n_dns;
};

/* Who signs: a CA's certificate (DER: its subject becomes the issuer, its key identifier the
 * authorityKeyIdentifier) and its key, which must match it. */
struct tg_cert_issuer {
    const unsigned char *der;
    size_t len;
    const struct tg_key *key;
};

/* A certificate for subject's public key as spec says, signed by issuer, or self-signed by
 * subject when issuer is NULL. *der malloc'd, *der_len its size. */
TG_MUST_USE int tg_cert_make(const struct tg_cert_spec *spec, const struct tg_key *subject,
                             const struct tg_cert_issuer *issuer, unsigned char **der,
                             size_t *der_len, char *err);

/* A PKCS#10 certificate request (v1) for key, signed by it: subject commonName cn, and the
 * subjectAltName of spec's uris and dns names. Only cn, uris and dns of spec are read. */
TG_MUST_USE int tg_csr_make(const struct tg_cert_spec *spec, const struct tg_key *key,
                            unsigned char **der, size_t *der_len, char *err);

enum tg_pem_type {
    TG_PEM_CERT, /* "CERTIFICATE" */
    TG_PEM_CSR,  /* "CERTIFICATE REQUEST" */
};

/* der as PEM of type: *pem malloc'd and NUL-terminated, *pem_len without the NUL. */
TG_MUST_USE int tg_pem_encode(const unsigned char *der, size_t len, enum tg_pem_type type,
                              char **pem, size_t *pem_len, char *err);

/* The first "CERTIFICATE" block of pem (len bytes) as DER: *der malloc'd. TG_EINVAL naming
 * what when there is none or it does not decode. */
TG_MUST_USE int tg_pem_cert_der(const char *pem, size_t len, const char *what, unsigned char **der,
                                size_t *der_len, char *err);

/* ---- what a CA checks (cacheck.c) ---- */

/* A certificate as DER, borrowed. */
struct tg_cert_der {
    const unsigned char *der;
    size_t len;
};

/* Whether der parses and is self-signed (a root). */
bool tg_cert_self_signed(const unsigned char *der, size_t len);

/* Whether the certificate der chains to one of roots (PEM strings) through cas (DER, from
 * the root side down: cas[0] is signed by a root, each next one by the one before). what
 * starts err. 0, TG_EINVAL or TG_ENOMEM. */
TG_MUST_USE int tg_cert_chain_check(const char *const *roots, size_t n_roots,
                                    const struct tg_cert_der *cas, size_t n_cas,
                                    const unsigned char *der, size_t len, const char *what,
                                    char *err);

/* Whether the CRL crl (DER) is signed by one of roots (PEM) or of cas (DER, from the root
 * side down, each verified first) and loads as a TLS context trusting them loads it. */
bool tg_crl_signed_by(const char *const *roots, size_t n_roots, const struct tg_cert_der *cas,
                      size_t n_cas, const unsigned char *crl, size_t len);

/* The public key of a PKCS#10 request (DER) after its own signature verifies (proof that the
 * asker holds the private key): EC P-256 only. *out holds no private half: it can be the
 * subject of tg_cert_make, never a signer. TG_EINVAL naming what was wrong. */
TG_MUST_USE int tg_csr_key(const unsigned char *csr, size_t len, struct tg_key **out, char *err);

/* in (n bytes) as base64 without line breaks into out (*cap bytes, room for the NUL-less
 * text: 4 * ceil(n / 3)); *cap becomes the length. 0, or TG_ETOOBIG. */
TG_MUST_USE int tg_base64_encode(const void *in, size_t n, char *out, size_t *cap);

#endif

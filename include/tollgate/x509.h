/* Building X.509 certificates with wolfSSL's certificate generation, at wolfSSL's level (its
 * Cert, ecc_key and WC_RNG types): the steps under certgen.h, which is what callers outside
 * lib/pki use. EC P-256 keys, ECDSA with SHA-256. This header includes wolfSSL, so only
 * lib/pki includes it (callers elsewhere use certgen.h). Functions with err write one line
 * into it (TG_ERRLEN bytes) naming what was wrong; what, where given, starts that line. No global
 * state; any thread, one Cert per thread. */
#ifndef TOLLGATE_X509_H
#define TOLLGATE_X509_H

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "tollgate/err.h"

/* Room for a certificate with the largest SubjectAltName wolfSSL takes. */
#define TG_X509_DER_CAP (CTC_MAX_ALT_SIZE + 8192)
/* Random serials: this many bytes, positive, first byte non-zero. */
#define TG_X509_SERIAL_LEN 16

/* An EC P-256 private key (SEC1 or PKCS#8; PEM, or also DER when allow_der) from data (len
 * bytes) into key, which the caller initialised (wc_ecc_init) and frees. The public key is
 * derived when the file lacks it. Copies of the key bytes are wiped. 0, TG_EINVAL or
 * TG_ENOMEM. */
TG_MUST_USE int tg_x509_key_decode(const char *data, size_t len, bool allow_der, ecc_key *key,
                                   const char *what, char *err);

/* Whether the certificate cert (DER) holds key's public key. 0, or TG_EINVAL. */
TG_MUST_USE int tg_x509_key_matches(const unsigned char *cert, size_t len, ecc_key *key,
                                    const char *what, char *err);

/* wc_InitCert, then ECDSA with SHA-256 as the signature. 0 or TG_ETLS. */
TG_MUST_USE int tg_x509_cert_init(Cert *cert, char *err);

/* A random serial of TG_X509_SERIAL_LEN bytes: positive (RFC 5280 4.1.2.2), and with a
 * non-zero first byte, so it is always that long and prints the same everywhere. */
TG_MUST_USE int tg_x509_set_serial(Cert *cert, WC_RNG *rng, char *err);

/* notBefore and notAfter: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280
 * 4.1.2.5). 0, or TG_EINVAL for dates before 1950 or after 9999. */
TG_MUST_USE int tg_x509_set_validity(Cert *cert, time_t not_before, time_t not_after, char *err);

/* The subject's common name (UTF8String). 0, or TG_EINVAL when it is too long. */
TG_MUST_USE int tg_x509_set_cn(Cert *cert, const char *cn, char *err);

/* SubjectAltName: the uris, then the dns names (none: no extension). 0, or TG_ETOOBIG. */
TG_MUST_USE int tg_x509_set_alt_names(Cert *cert, const char *const *uris, size_t n_uris,
                                      const char *const *dns, size_t n_dns, char *err);

/* subjectKeyIdentifier from subject; then, with issuer (DER of the signing certificate, and
 * its key), the issuer name and authorityKeyIdentifier from it (from issuer_key when the
 * issuer has no SKID); with issuer NULL, a self-signed certificate whose AKID is its own
 * key's. 0 or TG_ETLS. */
TG_MUST_USE int tg_x509_set_key_ids(Cert *cert, ecc_key *subject, const unsigned char *issuer,
                                    size_t issuer_len, ecc_key *issuer_key, char *err);

/* Encodes cert for subject's public key, marks basicConstraints critical (der.h) and signs
 * with signer's key, into der (cap bytes, TG_X509_DER_CAP will do). *der_len: the size.
 * 0, or TG_ETLS / TG_ETOOBIG / TG_EINVAL / TG_ENOMEM. */
TG_MUST_USE int tg_x509_make(Cert *cert, ecc_key *subject, ecc_key *signer, WC_RNG *rng,
                             unsigned char *der, size_t cap, size_t *der_len, char *err);

/* der as PEM of type (CERT_TYPE, CERTREQ_TYPE...): *pem malloc'd and NUL-terminated, the
 * caller frees it; *pem_len without the NUL. 0, or TG_ENOMEM / TG_ETLS. */
TG_MUST_USE int tg_x509_pem(const unsigned char *der, size_t len, int type, char **pem,
                            size_t *pem_len, char *err);

#endif

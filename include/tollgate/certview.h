/* Reading what a certificate, a certificate request, a key or a CRL says, for display
 * (tollgate-certs show and inspect), with no wolfSSL type in sight. What the sidecar itself
 * judges (serial, fingerprint, dates, CA flag, SPIFFE ID) comes from tg_cert_inspect
 * (identity.h); this adds the rest a person wants to see: names as text, the key's type,
 * extended key usages, every subjectAltName, a request's self-signature.
 *
 * Nothing here verifies a chain (tls.h does). Functions with err write one line into it
 * (TG_ERRLEN bytes) naming what was wrong and return TG_EINVAL for input that does not
 * parse, or TG_ENOMEM. Text outputs are always NUL-terminated, cut to their size. No global
 * state; any thread. */
#ifndef TOLLGATE_CERTVIEW_H
#define TOLLGATE_CERTVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/err.h"

#define TG_NAME_TEXT 512 /* a distinguished name as text */
#define TG_KEY_TEXT 64   /* "EC P-256", "RSA 2048 bits", "Ed25519" */

enum tg_san_type { TG_SAN_URI, TG_SAN_DNS, TG_SAN_IP, TG_SAN_EMAIL };

struct tg_san {
    enum tg_san_type type;
    char *value; /* NUL-terminated; an IP address as text */
    size_t len;  /* of value: a NUL inside a name counts (the sidecar refuses such an ID) */
};

/* A certificate or a request, as a person reads it. Owned by the caller's struct; its
 * subjectAltNames freed by tg_cert_view_cleanup. */
struct tg_cert_view {
    char subject[TG_NAME_TEXT]; /* RFC 2253 order, ", " between; "(none)" or "(empty)" */
    char issuer[TG_NAME_TEXT];  /* certificates only */
    char key[TG_KEY_TEXT];      /* the subject's public key type */
    bool self_signed;           /* certificates: issuer and subject the same */
    bool path_len_set;          /* certificates: a pathLenConstraint, path_len */
    int path_len;
    bool eku_set;        /* certificates: an extendedKeyUsage extension, eku its names */
    char eku[160];       /* "serverAuth, clientAuth"; "" with none tollgate names */
    bool sig_ok;         /* requests: the self-signature verifies */
    struct tg_san *sans; /* in certificate order, email addresses last. IP addresses only
                          * with a wolfSSL built with WOLFSSL_IP_ALT_NAME: tollgate's is not,
                          * so they are not listed */
    size_t n_sans;
};

/* One DER certificate (no signature check) into view, which the caller zeroed. On failure
 * view holds nothing to free. */
TG_MUST_USE int tg_cert_view(const unsigned char *der, size_t len, struct tg_cert_view *view,
                             char *err);

/* One DER PKCS#10 request into view (subject, key, sig_ok, sans), as tg_cert_view. */
TG_MUST_USE int tg_csr_view(const unsigned char *der, size_t len, struct tg_cert_view *view,
                            char *err);

/* Frees the subjectAltNames; view may be zeroed or half-filled. */
void tg_cert_view_cleanup(struct tg_cert_view *view);

/* What PEM blocks tg_pem_block_der decodes. */
enum tg_pem_block {
    TG_PEM_BLOCK_CERT,        /* "CERTIFICATE", "TRUSTED CERTIFICATE" */
    TG_PEM_BLOCK_CRL,         /* "X509 CRL" */
    TG_PEM_BLOCK_CSR,         /* "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST" */
    TG_PEM_BLOCK_PUBLIC_KEY,  /* "PUBLIC KEY" */
    TG_PEM_BLOCK_PRIVATE_KEY, /* "EC PRIVATE KEY", "RSA PRIVATE KEY", "PRIVATE KEY"... */
};

/* The DER of the one PEM block in text (len bytes, BEGIN to END line) of kind: *der
 * malloc'd, *der_len its size; free it with tg_wipe_free(*der, *der_len) (a private key's
 * bytes). TG_EINVAL when it does not decode as that kind. */
TG_MUST_USE int tg_pem_block_der(const char *text, size_t len, enum tg_pem_block kind,
                                 unsigned char **der, size_t *der_len);

/* The type of a private key in a PEM block (as tg_pem_block_der takes it) into out
 * (TG_KEY_TEXT bytes): "EC P-256", "RSA 2048 bits", "Ed25519", or a sentence saying tollgate
 * does not read it. The key's bytes are wiped once read. TG_EINVAL when the block does not
 * decode. */
TG_MUST_USE int tg_private_key_type(const char *text, size_t len, char *out);

/* The type of a SubjectPublicKeyInfo (DER) into out (TG_KEY_TEXT bytes), as above. */
void tg_public_key_type(const unsigned char *der, size_t len, char *out);

/* The issuer of a DER CRL as text (as a subject above) into out (TG_NAME_TEXT bytes); "(none)" when
 * it does not parse. */
void tg_crl_issuer(const unsigned char *der, size_t len, char *out);

/* An ASN.1 UTCTime or GeneralizedTime, the whole TLV (len bytes), as unix seconds. 0, or
 * TG_EINVAL. */
TG_MUST_USE int tg_asn_time(const unsigned char *tlv, size_t len, int64_t *out);

#endif

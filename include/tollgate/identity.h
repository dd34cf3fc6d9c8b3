/* Our identity (certificate chain + private key) and trust bundle, read from PEM files and
 * checked before anything uses them; and the inspection of one X.509 certificate that the
 * handshake's verification and the tooling share. wolfSSL stays behind this file and tls.c. */
#ifndef TOLLGATE_IDENTITY_H
#define TOLLGATE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/config.h"
#include "tollgate/err.h"
#include "tollgate/spiffe.h"

#define TG_SERIAL_HEX 65 /* up to 32 serial bytes as hex + NUL */
#define TG_SHA256_HEX 65

/* What one certificate says, as far as tollgate cares. */
struct tg_cert_info {
    char serial[TG_SERIAL_HEX]; /* lowercase hex, no leading zero bytes */
    char sha256[TG_SHA256_HEX]; /* of the DER */
    int64_t not_before;         /* unix seconds */
    int64_t not_after;
    char cn[65];            /* subject commonName, "" when none (cut at 64 bytes) */
    bool is_ca;             /* basicConstraints CA:TRUE */
    bool key_cert_sign;     /* keyUsage keyCertSign */
    bool eku_set;           /* extendedKeyUsage present */
    bool eku_server;        /* serverAuth (or anyExtendedKeyUsage) */
    bool eku_client;        /* clientAuth (or anyExtendedKeyUsage) */
    int n_uri;              /* URI SANs */
    bool id_ok;             /* exactly one URI SAN and it is a valid SPIFFE ID */
    struct tg_spiffe_id id; /* valid when id_ok */
    char id_err[TG_ERRLEN]; /* why not, when !id_ok */
};

/* Parses one DER certificate (no signature check). 0, or TG_EPEER with err. */
TG_MUST_USE int tg_cert_inspect(const unsigned char *der, size_t len, struct tg_cert_info *out,
                                char *err);

/* Our identity as loaded from files. Immutable once loaded; shared by generations. */
struct tg_identity {
    char *chain_pem; /* leaf first, then intermediates */
    size_t chain_len;
    char *key_pem; /* wiped before free */
    size_t key_len;
    char *bundle_pem;
    size_t bundle_len;
    size_t n_roots;
    struct tg_cert_info *roots; /* what each root of the bundle says, [n_roots] */
    char **crl;                 /* CRLs as read, PEM or DER */
    size_t *crl_len;
    bool *crl_pem;
    size_t n_crl;
    struct tg_cert_info leaf;
    char trust_domain[256];
};

struct tg_identity_files {
    const char *cert;
    const char *key;
    const char *bundle;
    const struct tg_strlist *crls; /* may be NULL or empty */
};

/* Reads the three files and checks them: the chain parses and its leaf carries one valid
 * SPIFFE ID, is not a CA, and is valid now; the key is the leaf's; the bundle holds at least
 * one CA certificate and the chain leads to it. On failure returns a negative code and err
 * names the file and the problem; nothing is kept. */
TG_MUST_USE int tg_identity_load(const struct tg_identity_files *f, struct tg_identity **out,
                                 char *err);

void tg_identity_free(struct tg_identity *id);

/* A trust bundle and its CRLs (crls may be NULL) alone, with no identity of our own: read and
 * checked as tg_identity_load checks them, messages naming them bundle_name and crl_name (an
 * option or a config key) before the path. For checking a peer's chain away from a handshake
 * (tg_tls_verify_chain, tollgate-certs verify). The result has no chain, key or leaf, and an
 * empty trust_domain. */
TG_MUST_USE int tg_identity_load_trust(const char *bundle, const struct tg_strlist *crls,
                                       const char *bundle_name, const char *crl_name,
                                       struct tg_identity **out, char *err);

/* Checks a trust bundle alone (PEM, len bytes): at least one certificate, each a CA usable
 * as a root. 0, or TG_EINVAL with err. */
TG_MUST_USE int tg_identity_check_bundle(const char *pem, size_t len, char *err);

/* Unix time now (seconds); the one clock identity checks use. */
int64_t tg_identity_now(void);

/* ---- identities made in memory (control-plane mode) ---- */

/* Our private key, made here and never written anywhere: EC P-256 as SEC1 DER and as PEM
 * ("EC PRIVATE KEY", NUL-terminated). Both are wiped before they are freed. */
struct tg_identity_key {
    unsigned char *der;
    size_t der_len;
    char *pem;
    size_t pem_len;
};

/* Makes a new P-256 key. 0, or a negative code with err. */
TG_MUST_USE int tg_identity_keygen(struct tg_identity_key **out, char *err);
/* Wipes and frees. NULL is fine. */
void tg_identity_key_free(struct tg_identity_key *k);

/* A PKCS#10 CSR (DER, malloc'd; the caller frees) signed with k. spiffe_hint (may be NULL)
 * goes in as the one URI SAN and its service account as the CN; the control plane signs the
 * identity of whoever authenticated whatever the CSR asks for, so the hint is only a
 * courtesy. 0, or a negative code with err (TG_ESPIFFE for a malformed hint). */
TG_MUST_USE int tg_identity_csr(const struct tg_identity_key *k, const char *spiffe_hint,
                                unsigned char **der, size_t *len, char *err);

/* A CRL in memory, DER or PEM. */
struct tg_identity_crl {
    const void *data;
    size_t len;
};

/* The three PEM texts of an identity, in memory (not NUL-terminated; lengths in bytes), and
 * its CRLs. */
struct tg_identity_pem {
    const char *chain; /* leaf first, then intermediates */
    size_t chain_len;
    const char *key;
    size_t key_len;
    const char *bundle;
    size_t bundle_len;
    const struct tg_identity_crl *crls; /* each must be signed by a root of the bundle and not
                                         * past its nextUpdate */
    size_t n_crls;
};

/* tg_identity_load for texts in memory: copies them and makes the same checks; err names
 * them "(in memory)" and a CRL by its position. */
TG_MUST_USE int tg_identity_from_pem(const struct tg_identity_pem *p, struct tg_identity **out,
                                     char *err);

#endif

/* Our identity (certificate chain + private key) and trust bundle, read from PEM files and
 * checked before anything uses them; and the inspection of one X.509 certificate that the
 * handshake's verification and the tooling share. wolfSSL stays behind lib/pki (tls.h). */
#ifndef TOLLGATE_IDENTITY_H
#define TOLLGATE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/config.h"
#include "tollgate/err.h"
#include "tollgate/metrics.h"
#include "tollgate/spiffe.h"

struct tg_revocations;

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
    bool ku_set;            /* keyUsage present */
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

/* A trust domain name is at most this long (the SPIFFE spec's limit), NUL excluded. */
#define TG_TRUST_DOMAIN_MAX 255

/* The roots of one trust domain: the only ones that may vouch for an ID of that domain
 * (tls.c checks the chain a peer sends against the roots of its ID's trust domain). */
struct tg_trust_roots {
    char name[TG_TRUST_DOMAIN_MAX + 1];
    size_t off, len; /* its PEM text: bundle_pem + off, len bytes */
    size_t first, n; /* its roots: roots[first .. first + n) */
};

/* Our identity as loaded from files. Immutable once loaded; shared by generations. */
struct tg_identity {
    char *chain_pem; /* leaf first, then intermediates */
    size_t chain_len;
    char *key_pem; /* wiped before free */
    size_t key_len;
    char *bundle_pem; /* every root of every trust domain in domains, ours first */
    size_t bundle_len;
    size_t n_roots;
    struct tg_cert_info *roots;     /* what each root of the bundle says, [n_roots] */
    struct tg_trust_roots *domains; /* [n_domains]: [0] our trust domain, then each federated
                                     * one. NULL in an identity filled by hand (tests): then
                                     * bundle_pem is our trust domain's roots, and no other
                                     * domain is accepted. */
    size_t n_domains;
    char **crl; /* CRLs as read, PEM or DER */
    size_t *crl_len;
    bool *crl_pem;
    size_t n_crl;
    char *inter_pem; /* identity.intermediates as read, or NULL */
    size_t inter_len;
    struct tg_revocations *rev; /* the CRLs tied to their signers (revocation.h), and the roots;
                                 * NULL in an identity filled by hand: nothing is revoked */
    struct tg_cert_info leaf;
    char trust_domain[TG_TRUST_DOMAIN_MAX + 1]; /* our leaf's */
};

struct tg_identity_files {
    const char *cert;
    const char *key;
    const char *bundle;            /* our trust domain's roots */
    const struct tg_strlist *crls; /* may be NULL or empty */
    /* federated trust domains (may be NULL or empty), and each one's bundle file:
     * domain_bundles->v[i] holds the roots of domains->v[i] */
    const struct tg_strlist *domains;
    const struct tg_strlist *domain_bundles;
    /* CA certificates (PEM) besides our chain's intermediates whose CRLs may be loaded: each
     * must chain to a root of one of the bundles (then it is of that root's trust domain),
     * given root side first. NULL: none. */
    const char *intermediates;
};

/* Reads the files and checks them: the chain parses and its leaf carries one valid SPIFFE
 * ID, is not a CA, and is valid now; the key is the leaf's; each bundle holds at least one
 * CA certificate; the chain leads to a root of our trust domain's bundle (the leaf's trust
 * domain is ours); a federated domain is not ours, and no root is in two domains' bundles,
 * nor in one whose name differs from the trust domain of a SPIFFE ID the root carries. On
 * failure returns a negative code and err names the file (and its config key) and the
 * problem; nothing is kept. */
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

/* One trust domain's roots in memory (PEM, not NUL-terminated). */
struct tg_identity_roots {
    const char *domain;
    const char *pem;
    size_t len;
};

/* Checks trust bundles alone, as tg_identity_from_pem would (one per trust domain, PEM):
 * each domain a valid trust domain name, named once, with at least one certificate, each a
 * CA usable as a root, no root in two domains, nor in one whose name differs from the trust
 * domain of a SPIFFE ID the root carries. 0, or TG_EINVAL with err naming the domain. */
TG_MUST_USE int tg_identity_check_roots(const struct tg_identity_roots *d, size_t n, char *err);

/* The trust domain root i of id belongs to (ours for an identity filled by hand). */
const char *tg_identity_root_domain(const struct tg_identity *id, size_t i);

/* Our certificate (kind "identity") then each root (kind "root") of id, into out (room for
 * 1 + id->n_roots), for the expiry metrics; strings borrowed from id. Returns how many. */
size_t tg_identity_expiries(const struct tg_identity *id, struct tg_cert_expiry *out);

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

/* The PEM texts of an identity, in memory (not NUL-terminated; lengths in bytes), and its
 * CRLs. */
struct tg_identity_pem {
    const char *chain; /* leaf first, then intermediates */
    size_t chain_len;
    const char *key;
    size_t key_len;
    const char *bundle; /* our trust domain's roots; NULL: those of the entry of domains named
                         * by our leaf's trust domain (a pushed bundle names every domain) */
    size_t bundle_len;
    const struct tg_identity_roots *domains; /* the federated trust domains (and, with bundle
                                              * NULL, ours), each with its own roots */
    size_t n_domains;
    const struct tg_identity_crl *crls; /* each signed by a CA of the bundle or of our chain
                                         * (revocation.h), not past its nextUpdate */
    size_t n_crls;
};

/* tg_identity_load for texts in memory: copies them and makes the same checks; err names
 * them "(in memory)", a trust bundle by its domain and a CRL by its position. */
TG_MUST_USE int tg_identity_from_pem(const struct tg_identity_pem *p, struct tg_identity **out,
                                     char *err);

#endif

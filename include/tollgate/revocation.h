/* Revocation by CRL: each CRL tied, when it is loaded, to the CA whose key signed it (a root of
 * the bundle, an intermediate of our own chain, or one of identity.intermediates), and each
 * certificate of a peer's verified chain checked against the CRLs of the CA that issued it,
 * that CA found by its key, never by its name.
 *
 * Policy (docs/security.md, "CRLs"):
 * - a CRL applies only to certificates its signer issued: a CRL signed by another CA, of our
 *   trust domain or of a federated one, revokes nothing of ours whatever serials it lists;
 * - a CRL no known CA signed, a stale one (nextUpdate passed), a delta, partitioned or
 *   indirect one does not load (the whole identity is refused, the last good one kept);
 * - once a trust domain has a CRL, every certificate of a chain of that domain (leaf and
 *   intermediates, up to the root) must have its issuer's CRL among them, else the peer is
 *   refused ("untrusted"): a CA whose CRL was forgotten must not pass unchecked. A domain
 *   without any CRL is not checked (a federated partner that publishes none to us).
 *
 * Immutable once made; any thread. wolfSSL stays inside revocation.c. */
#ifndef TOLLGATE_REVOCATION_H
#define TOLLGATE_REVOCATION_H

#include <stdbool.h>
#include <stddef.h>

#include "tollgate/err.h"

#define TG_KEY_ID_LEN 32 /* SHA-256 of a CA's public key */

/* One certificate of a verified chain, as revocation sees it. */
struct tg_chain_link {
    char serial[65];                         /* as tg_cert_info.serial */
    unsigned char issuer_key[TG_KEY_ID_LEN]; /* the issuing CA's key; all zero: not known */
};

enum tg_rev_verdict {
    TG_REV_OK = 0,
    TG_REV_REVOKED, /* listed by its issuer's CRL */
    TG_REV_NO_CRL,  /* its domain has CRLs, its issuer none */
};

struct tg_revocations;

/* A CA that may sign CRLs, DER; domain indexes the names given to tg_revocations_new. */
struct tg_rev_ca {
    const unsigned char *der;
    size_t len;
    size_t domain;
    bool root;
};

/* One CRL, DER; name names it in messages ("identity.crl: FILE"). */
struct tg_rev_crl {
    const unsigned char *der;
    size_t len;
    const char *name;
};

/* Ties each CRL to the CA among cas that signed it (its issuer name, its signature checked by
 * wolfSSL with that CA alone, cRLSign when the CA has keyUsage, nextUpdate not passed) and
 * reads its serials. domains: the trust domains' names (cas[i].domain < n_domains). 0, or a
 * negative code with err naming the CRL; nothing is kept. */
TG_MUST_USE int tg_revocations_new(const struct tg_rev_ca *cas, size_t n_cas,
                                   const char *const *domains, size_t n_domains,
                                   const struct tg_rev_crl *crls, size_t n_crls,
                                   struct tg_revocations **out, char *err);
void tg_revocations_free(struct tg_revocations *r);

/* The links of a chain a peer sent (der[0] its leaf, each certificate signed by the next,
 * the last by a root of trust domain domain: all already verified), into *links (malloc'd,
 * the caller frees) and *n: one per certificate that is not itself a root. The last one's
 * issuer is found among the domain's roots (r may be NULL: not found). 0 or TG_ENOMEM. */
TG_MUST_USE int tg_revocations_links(const struct tg_revocations *r, const char *domain,
                                     const unsigned char *const *der, const size_t *len, size_t n,
                                     struct tg_chain_link **links, size_t *n_links);

/* The verdict on a chain of trust domain domain (r NULL: no CRLs, TG_REV_OK); why (cap bytes)
 * names the certificate and the CA on anything else. */
enum tg_rev_verdict tg_revocations_check(const struct tg_revocations *r, const char *domain,
                                         const struct tg_chain_link *links, size_t n, char *why,
                                         size_t cap);

/* Whether r holds any CRL. */
bool tg_revocations_any(const struct tg_revocations *r);

/* What one CRL is, for /config_dump. */
struct tg_rev_crl_info {
    const char *issuer; /* its signer's commonName, "" when none */
    const char *domain; /* its signer's trust domain */
    bool root;          /* signed by a root (else by an intermediate of our chain) */
    size_t n_serials;   /* how many certificates it lists */
};

/* The CRLs of r (NULL: none). */
size_t tg_revocations_n(const struct tg_revocations *r);
/* The i-th one (i < tg_revocations_n(r)). */
void tg_revocations_crl(const struct tg_revocations *r, size_t i, struct tg_rev_crl_info *out);

#endif

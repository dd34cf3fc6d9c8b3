/* An X.509-SVID as the SPIFFE Workload API hands it (DER: the chain, a PKCS#8 key, our trust
 * domain's bundle, foreign trust domains' bundles, CRLs) turned into the PEM texts an
 * identity is built from (tg_identity_from_pem, identity.h). Everything here came through a
 * socket: each DER list is split and checked for shape here, and the certificates
 * themselves by tg_identity_from_pem. wolfSSL (PEM encoding) stays behind this file. */
#ifndef TOLLGATE_SVID_H
#define TOLLGATE_SVID_H

#include <stddef.h>

#include "tollgate/err.h"
#include "tollgate/identity.h"

#define TG_SVID_MAX_CERTS 64      /* certificates in one chain or one bundle */
#define TG_SVID_MAX_DOMAINS 64    /* federated trust domains */
#define TG_SVID_MAX_CRLS 16       /* CRLs in one response */
#define TG_SVID_MAX_DER (1 << 20) /* bytes of one chain, key, bundle or CRL */

/* One federated trust domain's bundle as received: DER certificates, concatenated. */
struct tg_svid_fed {
    const char *domain; /* "spiffe://partner.example" (as the spec keys them) or a bare name */
    const unsigned char *der;
    size_t len;
};

/* One response's SVID, as received. */
struct tg_svid_der {
    const char *spiffe_id;
    const unsigned char *chain; /* DER certificates, concatenated, leaf first */
    size_t chain_len;
    const unsigned char *key; /* PKCS#8 DER */
    size_t key_len;
    const unsigned char *bundle; /* our trust domain's roots: DER certificates, concatenated */
    size_t bundle_len;
    const struct tg_svid_fed *fed;
    size_t n_fed;
    const struct tg_identity_crl *crls; /* DER */
    size_t n_crls;
};

/* The same as PEM texts, owned; immutable once made. The key is wiped before it is freed. */
struct tg_svid {
    char spiffe_id[TG_SPIFFE_MAX + 1];
    char *chain, *key, *bundle;
    size_t chain_len, key_len, bundle_len;
    struct tg_identity_roots *domains; /* [n_domains]: each federated domain; domain and pem
                                        * owned (cast from const only in tg_svid_free) */
    size_t n_domains;
    struct tg_identity_crl *crls; /* [n_crls]; data owned */
    size_t n_crls;
};

/* Converts d. Each DER list must be a sequence of whole DER SEQUENCEs (at most
 * TG_SVID_MAX_CERTS), each part at most TG_SVID_MAX_DER bytes, a federated domain's name a
 * trust domain (with or without "spiffe://"). 0, or a negative code with a one-line err
 * naming the part; nothing is kept. */
TG_MUST_USE int tg_svid_from_der(const struct tg_svid_der *d, struct tg_svid **out, char *err);

void tg_svid_free(struct tg_svid *s);

/* The identity s makes, checked as every identity is (tg_identity_from_pem): the chain
 * parses, its leaf carries s->spiffe_id and is valid now, the key is the leaf's, the chain
 * leads to our bundle's roots, no root in two domains. 0, or a negative code with err. */
TG_MUST_USE int tg_svid_identity(const struct tg_svid *s, struct tg_identity **out, char *err);

#endif

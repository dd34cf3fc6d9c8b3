/* tollgate-cp's certificate authority: the signing CA (key and certificate from files; an
 * intermediate under an offline root is fine), the issuing of SPIFFE leaf certificates for
 * CSRs, and the certificate handling around it (roots, CRLs), through lib/pki's certgen.h
 * (no wolfSSL here). */
#ifndef TOLLGATE_CP_CA_H
#define TOLLGATE_CP_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/err.h"
#include "tollgate/resource.h"

struct tg_cp_ca;

/* cert_pem: the signing CA's certificate first, then the intermediates above it (which go
 * into every issued chain; a self-signed certificate in the file does not). key_pem: its
 * EC P-256 private key (SEC1 or PKCS#8 PEM). what names the files in messages. Checks that
 * the certificate is a CA (basicConstraints CA:TRUE) that may sign certificates (a keyUsage
 * without keyCertSign is refused), is valid now, and the key is its own.
 * 0, or a negative code with err. */
TG_MUST_USE int tg_cp_ca_new(const char *cert_pem, size_t cert_len, const char *key_pem,
                             size_t key_len, const char *what, struct tg_cp_ca **out, char *err);
void tg_cp_ca_free(struct tg_cp_ca *ca);

/* The CA certificate (PEM, NUL-terminated) when it is self-signed (a root), else NULL. */
const char *tg_cp_ca_root_pem(const struct tg_cp_ca *ca);
/* The signing certificate's serial (hex) and expiry, for logs. */
const char *tg_cp_ca_serial(const struct tg_cp_ca *ca);
int64_t tg_cp_ca_not_after(const struct tg_cp_ca *ca);

/* Whether the CA's chain (the signing certificate and the intermediates given with it)
 * leads to one of roots (PEM certificates). 0, or TG_EINVAL with err. */
TG_MUST_USE int tg_cp_ca_check_roots(const struct tg_cp_ca *ca, const struct tg_strlist *roots,
                                     char *err);

/* Issues a certificate for spiffe_id to the key of csr (DER PKCS#10, EC P-256, whose own
 * signature must verify; nothing else of it is used). Valid from a little before now
 * (skew: min(60 s, ttl/10)) to now + ttl_s, but never past the CA's own expiry. basicConstraints
 * CA:FALSE (critical), keyUsage digitalSignature, EKU serverAuth + clientAuth, the one URI
 * SAN, CN the service account. *chain (malloc'd, NUL-terminated PEM): the leaf, then the
 * intermediates. 0, or a negative code with err (TG_EINVAL: the CSR is bad). */
TG_MUST_USE int tg_cp_ca_sign(const struct tg_cp_ca *ca, const unsigned char *csr, size_t csr_len,
                              const char *spiffe_id, int64_t ttl_s, char **chain, size_t *chain_len,
                              char *err);

/* Issues a server certificate (EKU serverAuth) for the DNS names dns[0..n_dns) (dns[0] also
 * the CN) to a key made here: tollgate-cp's admission webhook. Validity as tg_cp_ca_sign.
 * *chain (the leaf, then the intermediates) and *key_pem ("EC PRIVATE KEY") are malloc'd,
 * NUL-terminated; the caller wipes the key before freeing it. 0, or a negative code with err. */
TG_MUST_USE int tg_cp_ca_issue_dns(const struct tg_cp_ca *ca, const char *const *dns, size_t n_dns,
                                   int64_t ttl_s, char **chain, size_t *chain_len, char **key_pem,
                                   size_t *key_len, char *err);

/* Appends each certificate of pem (len bytes) to out as its own PEM string, allocated in r.
 * Each must parse and be a CA certificate; at least one. what names the source in err. */
TG_MUST_USE int tg_cp_ca_split_roots(const char *pem, size_t len, const char *what,
                                     struct tg_resource *r, struct tg_strlist *out, char *err);

/* A CRL as DER: data (len bytes) is PEM ("X509 CRL") or already DER. The result is
 * allocated in r. what names the source in err. */
TG_MUST_USE int tg_cp_ca_crl_der(const unsigned char *data, size_t len, const char *what,
                                 struct tg_resource *r, struct tg_res_blob *out, char *err);

/* Whether crl (DER) is signed by one of roots (PEM certificates) or by a CA of ca's chain
 * below them (the signing intermediate and those above it), as a TLS context trusting them
 * loads it: for a CRL already checked against the whole trust bundle (so fresh and well
 * formed), false means another trust domain signed it. */
bool tg_cp_ca_crl_signed_by(const struct tg_cp_ca *ca, const struct tg_strlist *roots,
                            const struct tg_res_blob *crl);

#endif

/* The contents of one X.509 CRL (RFC 5280 section 5), read from DER: who issued it and which
 * serials it lists. Pure: no I/O, no wolfSSL. The signature is not checked here: identity.c
 * checks it with wolfSSL against the CA the CRL names, and ties the list to that CA's key.
 *
 * Refused, because the list would not mean what a plain CRL means and we would apply it
 * wrongly: a delta CRL (deltaCRLIndicator), a partitioned or indirect one
 * (issuingDistributionPoint, an entry's certificateIssuer), and any critical extension we do
 * not know (RFC 5280 5.2: such a CRL must not be used). */
#ifndef TOLLGATE_CRL_H
#define TOLLGATE_CRL_H

#include <stdbool.h>
#include <stddef.h>

#include "tollgate/err.h"

#define TG_CRL_SERIAL_HEX 65 /* up to 32 serial bytes as hex + NUL, as tg_cert_info.serial */

struct tg_crl_view {
    const unsigned char *issuer; /* the issuer Name's DER contents (the RDNs, without
                                  * the SEQUENCE header), inside the input */
    size_t issuer_len;
    char (*serials)[TG_CRL_SERIAL_HEX]; /* malloc'd, sorted (strcmp), no duplicates; lowercase
                                         * hex without leading zero bytes */
    size_t n_serials;
};

/* Reads a DER CertificateList. 0, or TG_EINVAL with err naming what is wrong, or TG_ENOMEM.
 * On success the caller frees out with tg_crl_view_cleanup. */
TG_MUST_USE int tg_crl_parse(const unsigned char *der, size_t len, struct tg_crl_view *out,
                             char *err);
void tg_crl_view_cleanup(struct tg_crl_view *v);

/* Whether serial (as tg_crl_view.serials spells it) is listed. */
bool tg_crl_lists(const struct tg_crl_view *v, const char *serial);

#endif

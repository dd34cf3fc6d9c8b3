/* Small DER pieces that wolfSSL cannot be asked for. Pure: no I/O, no wolfSSL. Used by x509.c,
 * which builds certificates for tollgate-certs and tollgate-cp, and by the CRL readers of
 * identity.c and tollgate-certs inspect. */
#ifndef TOLLGATE_DER_H
#define TOLLGATE_DER_H

#include <stddef.h>

#include "tollgate/err.h"

/* The one DER reader: the header of the TLV at buf[*off] (buf ends at end), definite lengths
 * of up to four bytes. *tag and *len (the content's length) are set and *off moves to the
 * content, which must fit before end. 0, or TG_EINVAL (the header or content does not fit). */
TG_MUST_USE int tg_der_header(const unsigned char *buf, size_t end, size_t *off, unsigned char *tag,
                              size_t *len);

/* RFC 5280 4.2.1.9 wants basicConstraints critical in CA certificates, and SPIFFE X509-SVID
 * section 4.1 in leaves too, but wolfSSL 5.5.4's (non-template) encoder always writes it
 * non-critical. Between wc_MakeCert and wc_SignCert, this rewrites the TBSCertificate in tbs
 * (*len bytes, cap bytes of room) with "critical TRUE" inserted and the lengths of the
 * extension, the extension list, the [3] wrapper and the TBS fixed. Nothing else changes;
 * without basicConstraints, or when it is already critical, nothing changes at all.
 * 0, TG_EINVAL (tbs does not parse), TG_ETOOBIG (cap too small) or TG_ENOMEM. */
TG_MUST_USE int tg_der_mark_bc_critical(unsigned char *tbs, int *len, size_t cap);

/* SubjectAltName's GeneralNames (RFC 5280 4.2.1.6): each of uris as a uniformResourceIdentifier,
 * then each of dns as a dNSName, in that order, into out (cap bytes). *len: the bytes written;
 * 0, with nothing written, when there are no names. 0, or TG_ETOOBIG when cap is too small. */
TG_MUST_USE int tg_der_general_names(unsigned char *out, size_t cap, const char *const *uris,
                                     size_t n_uris, const char *const *dns, size_t n_dns,
                                     size_t *len);

/* n bytes as lowercase hex into dst (2n + 1 bytes). */
void tg_hex(const unsigned char *src, size_t n, char *dst);

/* A serial number (a DER INTEGER's content bytes) as certificates, CRLs and rules spell it:
 * lowercase hex without leading zero bytes, into dst (cap bytes). 0, or TG_ETOOBIG when it
 * does not fit (dst then ""), TG_EINVAL when n is 0. */
TG_MUST_USE int tg_serial_hex(const unsigned char *p, size_t n, char *dst, size_t cap);

#endif

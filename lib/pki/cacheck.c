/* The checks a CA makes of what it is given (certgen.h): roots, chains, CSRs and CRLs. */
#include "tollgate/certgen.h"

#include "tollgate/x509.h" /* wolfssl/options.h first */

#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool tg_cert_self_signed(const unsigned char *der, size_t len)
{
    DecodedCert dc;
    bool yes;

    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    yes = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) == 0 && dc.selfSigned;
    wc_FreeDecodedCert(&dc);
    return yes;
}

/* A certificate manager holding roots (PEM) and then cas (DER, each verified by what is
 * loaded before it, so from the root side down). NULL: out of memory, or *bad set to the
 * index of the CA that did not verify. */
static WOLFSSL_CERT_MANAGER *store_of(const char *const *roots, size_t n_roots,
                                      const struct tg_cert_der *cas, size_t n_cas, size_t *bad)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();

    *bad = SIZE_MAX;
    if (cm == NULL)
        return NULL;
    for (size_t i = 0; i < n_roots; i++)
        wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)roots[i], (long)strlen(roots[i]),
                                        WOLFSSL_FILETYPE_PEM);
    for (size_t i = 0; i < n_cas; i++) {
        if (wolfSSL_CertManagerLoadCABuffer(cm, cas[i].der, (long)cas[i].len,
                                            WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS) {
            *bad = i;
            wolfSSL_CertManagerFree(cm);
            return NULL;
        }
    }
    return cm;
}

int tg_cert_chain_check(const char *const *roots, size_t n_roots, const struct tg_cert_der *cas,
                        size_t n_cas, const unsigned char *der, size_t len, const char *what,
                        char *err)
{
    size_t bad;
    WOLFSSL_CERT_MANAGER *cm = store_of(roots, n_roots, cas, n_cas, &bad);
    int v;

    if (cm == NULL && bad == SIZE_MAX)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    if (cm == NULL)
        return tg_err_set(err, TG_EINVAL, "%s: intermediate %zu does not chain to the roots", what,
                          n_cas - bad);
    v = wolfSSL_CertManagerVerifyBuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1);
    wolfSSL_CertManagerFree(cm);
    if (v != WOLFSSL_SUCCESS)
        return tg_err_set(err, TG_EINVAL, "%s does not chain to the roots: %s", what,
                          wolfSSL_ERR_reason_error_string((unsigned long)v));
    return 0;
}

bool tg_crl_signed_by(const char *const *roots, size_t n_roots, const struct tg_cert_der *cas,
                      size_t n_cas, const unsigned char *crl, size_t len)
{
    size_t bad;
    WOLFSSL_CERT_MANAGER *cm = store_of(roots, n_roots, cas, n_cas, &bad);
    bool ok;

    if (cm == NULL)
        return false;
    ok = wolfSSL_CertManagerLoadCRLBuffer(cm, crl, (long)len, WOLFSSL_FILETYPE_ASN1) ==
         WOLFSSL_SUCCESS;
    wolfSSL_CertManagerFree(cm);
    return ok;
}

int tg_base64_encode(const void *in, size_t n, char *out, size_t *cap)
{
    word32 w = (word32)*cap;

    if (Base64_Encode_NoNl(in, (word32)n, (byte *)out, &w) != 0)
        return TG_ETOOBIG;
    *cap = w;
    return 0;
}

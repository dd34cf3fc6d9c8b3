/* Certificate building at wolfSSL's level, under certgen.c and tollgate-cp's CA (x509.h). */
#include "tollgate/x509.h"

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/der.h"

#if !defined(WOLFSSL_CERT_GEN) || !defined(WOLFSSL_CERT_EXT) || !defined(WOLFSSL_ALT_NAMES) ||     \
    !defined(WOLFSSL_CERT_REQ) || !defined(WOLFSSL_KEY_GEN) || !defined(HAVE_ECC)
#error "x509.c needs wolfSSL with certgen, certext, certreq, keygen and ALT_NAMES"
#endif

int tg_x509_key_decode(const char *data, size_t len, bool allow_der, ecc_key *key, const char *what,
                       char *err)
{
    unsigned char *der = malloc(len + 1);
    int der_len, ret, rc = TG_EINVAL;
    word32 idx = 0;

    if (der == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory reading %s", what);
    if (!allow_der || memmem(data, len, "-----BEGIN", 10) != NULL) {
        der_len = wc_KeyPemToDer((const byte *)data, (int)len, der, (int)len, NULL);
        if (der_len <= 0) {
            tg_err_set(err, rc, "%s: no PEM private key: %s", what, wc_GetErrorString(der_len));
            goto fail;
        }
    } else {
        memcpy(der, data, len);
        der_len = (int)len;
    }
    ret = wc_EccPrivateKeyDecode(der, &idx, key, (word32)der_len);
    if (ret != 0) {
        /* PKCS#8 wraps the SEC1 key: step over the wrapper and try again */
        idx = 0;
        if (wc_GetPkcs8TraditionalOffset(der, &idx, (word32)der_len) >= 0)
            ret = wc_EccPrivateKeyDecode(der, &idx, key, (word32)der_len);
    }
    if (ret != 0) {
        tg_err_set(err, rc, "%s: not an EC private key: %s", what, wc_GetErrorString(ret));
        goto fail;
    }
    if (key->dp == NULL || key->dp->id != ECC_SECP256R1) {
        tg_err_set(err, rc, "%s: not a P-256 key", what);
        goto fail;
    }
    if (key->type == ECC_PRIVATEKEY_ONLY && (ret = wc_ecc_make_pub(key, NULL)) != 0) {
        tg_err_set(err, rc, "%s: cannot derive the public key: %s", what, wc_GetErrorString(ret));
        goto fail;
    }
    rc = 0;
fail:
    explicit_bzero(der, len + 1);
    free(der);
    return rc;
}

int tg_x509_key_matches(const unsigned char *cert, size_t len, ecc_key *key, const char *what,
                        char *err)
{
    DecodedCert dc;
    byte cert_pub[256], key_pub[256];
    word32 cert_pub_len = sizeof(cert_pub);
    int key_pub_len, ret, rc = TG_EINVAL;

    wc_InitDecodedCert(&dc, cert, (word32)len, NULL);
    ret = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL);
    if (ret != 0) {
        tg_err_set(err, rc, "%s: cannot parse the certificate: %s", what, wc_GetErrorString(ret));
        goto fail;
    }
    ret = wc_GetPubKeyDerFromCert(&dc, cert_pub, &cert_pub_len);
    key_pub_len = wc_EccPublicKeyToDer(key, key_pub, sizeof(key_pub), 1);
    if (ret != 0 || key_pub_len <= 0) {
        tg_err_set(err, rc, "%s: cannot read the public keys", what);
        goto fail;
    }
    if ((word32)key_pub_len != cert_pub_len || memcmp(cert_pub, key_pub, cert_pub_len) != 0) {
        tg_err_set(err, rc, "%s: the key does not belong to the certificate", what);
        goto fail;
    }
    rc = 0;
fail:
    wc_FreeDecodedCert(&dc);
    return rc;
}

int tg_x509_cert_init(Cert *cert, char *err)
{
    int ret = wc_InitCert(cert);

    if (ret != 0)
        return tg_err_set(err, TG_ETLS, "init cert: %s", wc_GetErrorString(ret));
    cert->sigType = CTC_SHA256wECDSA;
    return 0;
}

int tg_x509_set_serial(Cert *cert, WC_RNG *rng, char *err)
{
    int ret = wc_RNG_GenerateBlock(rng, cert->serial, TG_X509_SERIAL_LEN);

    if (ret != 0)
        return tg_err_set(err, TG_ETLS, "random serial: %s", wc_GetErrorString(ret));
    cert->serial[0] &= 0x7f;
    if (cert->serial[0] == 0)
        cert->serial[0] = 0x01;
    cert->serialSz = TG_X509_SERIAL_LEN;
    return 0;
}

static int encode_time(time_t t, byte *out, int *out_len)
{
    struct tm tm;
    char s[64];
    int n, year;

    if (gmtime_r(&t, &tm) == NULL)
        return TG_EINVAL;
    year = tm.tm_year + 1900;
    if (year < 1950 || year > 9999) /* UTCTime starts at 1950; GeneralizedTime has 4 digits */
        return TG_EINVAL;
    if (year < 2050) {
        n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = ASN_UTC_TIME;
    } else {
        n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = ASN_GENERALIZED_TIME;
    }
    if (n <= 0 || n + 2 > CTC_DATE_SIZE)
        return TG_EINVAL;
    out[1] = (byte)n;
    memcpy(out + 2, s, (size_t)n);
    *out_len = n + 2;
    return 0;
}

int tg_x509_set_validity(Cert *cert, time_t not_before, time_t not_after, char *err)
{
    if (encode_time(not_before, cert->beforeDate, &cert->beforeDateSz) < 0 ||
        encode_time(not_after, cert->afterDate, &cert->afterDateSz) < 0)
        return tg_err_set(err, TG_EINVAL, "validity dates out of range");
    return 0;
}

int tg_x509_set_cn(Cert *cert, const char *cn, char *err)
{
    size_t len = strlen(cn);

    if (len >= CTC_NAME_SIZE)
        return tg_err_set(err, TG_EINVAL, "common name longer than %d bytes: %s", CTC_NAME_SIZE - 1,
                          cn);
    memcpy(cert->subject.commonName, cn, len + 1);
    cert->subject.commonNameEnc = CTC_UTF8;
    return 0;
}

int tg_x509_set_alt_names(Cert *cert, const char *const *uris, size_t n_uris,
                          const char *const *dns, size_t n_dns, char *err)
{
    size_t len;

    if (tg_der_general_names(cert->altNames, sizeof(cert->altNames), uris, n_uris, dns, n_dns,
                             &len) < 0)
        return tg_err_set(err, TG_ETOOBIG, "subject alt names longer than %d bytes",
                          CTC_MAX_ALT_SIZE);
    cert->altNamesSz = (int)len;
    return 0;
}

int tg_x509_set_key_ids(Cert *cert, ecc_key *subject, const unsigned char *issuer,
                        size_t issuer_len, ecc_key *issuer_key, char *err)
{
    int ret;

    if ((ret = wc_SetSubjectKeyIdFromPublicKey_ex(cert, ECC_TYPE, subject)) != 0)
        return tg_err_set(err, TG_ETLS, "subject key id: %s", wc_GetErrorString(ret));
    if (issuer == NULL) {
        cert->selfSigned = 1;
        ret = wc_SetAuthKeyIdFromPublicKey_ex(cert, ECC_TYPE, subject);
    } else {
        if ((ret = wc_SetIssuerBuffer(cert, issuer, (int)issuer_len)) != 0)
            return tg_err_set(err, TG_ETLS, "issuer name: %s", wc_GetErrorString(ret));
        ret = wc_SetAuthKeyIdFromCert(cert, issuer, (int)issuer_len);
        if (ret == ASN_NO_SKID) /* a CA made elsewhere without a SKID: use its key */
            ret = wc_SetAuthKeyIdFromPublicKey_ex(cert, ECC_TYPE, issuer_key);
    }
    if (ret != 0)
        return tg_err_set(err, TG_ETLS, "authority key id: %s", wc_GetErrorString(ret));
    return 0;
}

int tg_x509_make(Cert *cert, ecc_key *subject, ecc_key *signer, WC_RNG *rng, unsigned char *der,
                 size_t cap, size_t *der_len, char *err)
{
    int tbs_len, len, rc;

    tbs_len = wc_MakeCert(cert, der, (word32)cap, NULL, subject, rng);
    if (tbs_len <= 0)
        return tg_err_set(err, TG_ETLS, "making the certificate: %s", wc_GetErrorString(tbs_len));
    if ((rc = tg_der_mark_bc_critical(der, &tbs_len, cap)) < 0)
        return tg_err_set(err, rc, "marking basicConstraints critical failed");
    len = wc_SignCert(tbs_len, CTC_SHA256wECDSA, der, (word32)cap, NULL, signer, rng);
    if (len <= 0)
        return tg_err_set(err, TG_ETLS, "signing the certificate: %s", wc_GetErrorString(len));
    *der_len = (size_t)len;
    return 0;
}

int tg_x509_pem(const unsigned char *der, size_t len, int type, char **pem, size_t *pem_len,
                char *err)
{
    size_t cap = len * 4 / 3 + len / 48 + 128; /* base64, a newline per 64, BEGIN/END lines */
    char *out = malloc(cap + 1);
    int n;

    if (out == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    n = wc_DerToPem(der, (word32)len, (byte *)out, (word32)cap, type);
    if (n <= 0) {
        free(out);
        return tg_err_set(err, TG_ETLS, "PEM-encoding: %s", wc_GetErrorString(n));
    }
    out[n] = '\0';
    *pem = out;
    *pem_len = (size_t)n;
    return 0;
}

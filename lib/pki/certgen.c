/* Keys, certificates and requests behind plain C types (certgen.h), on x509.c's steps. */
#include "tollgate/certgen.h"

#include "tollgate/x509.h" /* wolfssl/options.h first */

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <stdlib.h>
#include <string.h>

#include "tollgate/file.h"

_Static_assert(TG_CERT_CN_MAX == CTC_NAME_SIZE - 1, "TG_CERT_CN_MAX follows wolfSSL's Cert");
_Static_assert(TG_CERT_SERIAL_MAX == CTC_SERIAL_SIZE, "TG_CERT_SERIAL_MAX follows wolfSSL's");

#define KEY_DER_CAP 256 /* a P-256 SEC1 key is 121 bytes */

struct tg_key {
    ecc_key ecc;
};

/* wolfCrypt takes keys by non-const pointer even where it only reads them. */
static ecc_key *ecc_of(const struct tg_key *k)
{
    return &((struct tg_key *)tg_unconst(k))->ecc;
}

static int key_new(struct tg_key **out, char *err)
{
    struct tg_key *k = calloc(1, sizeof(*k));
    int ret;

    if (k == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    if ((ret = wc_ecc_init(&k->ecc)) != 0) {
        free(k);
        return tg_err_set(err, TG_ETLS, "ecc init: %s", wc_GetErrorString(ret));
    }
    *out = k;
    return 0;
}

void tg_key_free(struct tg_key *k)
{
    if (k == NULL)
        return;
    wc_ecc_free(&k->ecc); /* zeroes the private scalar */
    explicit_bzero(k, sizeof(*k));
    free(k);
}

int tg_key_generate(struct tg_key **out, char *err)
{
    struct tg_key *k = NULL;
    WC_RNG rng;
    int ret, rc;

    if ((ret = wc_InitRng(&rng)) != 0)
        return tg_err_set(err, TG_ETLS, "random generator: %s", wc_GetErrorString(ret));
    if ((rc = key_new(&k, err)) == 0 &&
        (ret = wc_ecc_make_key_ex(&rng, 32, &k->ecc, ECC_SECP256R1)) != 0)
        rc = tg_err_set(err, TG_ETLS, "making a P-256 key: %s", wc_GetErrorString(ret));
    wc_FreeRng(&rng);
    if (rc < 0) {
        tg_key_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int tg_key_decode(const char *data, size_t len, bool allow_der, const char *what,
                  struct tg_key **out, char *err)
{
    struct tg_key *k = NULL;
    int rc;

    if ((rc = key_new(&k, err)) < 0)
        return rc;
    if ((rc = tg_x509_key_decode(data, len, allow_der, &k->ecc, what, err)) < 0) {
        tg_key_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int tg_key_pem(const struct tg_key *k, char **pem, size_t *pem_len, char *err)
{
    unsigned char der[KEY_DER_CAP];
    int der_len = wc_EccKeyToDer(ecc_of(k), der, sizeof(der));
    int rc;

    if (der_len <= 0)
        return tg_err_set(err, TG_ETLS, "encoding the key: %s", wc_GetErrorString(der_len));
    rc = tg_x509_pem(der, (size_t)der_len, ECC_PRIVATEKEY_TYPE, pem, pem_len, err);
    explicit_bzero(der, sizeof(der));
    return rc;
}

int tg_key_matches(const struct tg_key *k, const unsigned char *cert, size_t len, const char *what,
                   char *err)
{
    return tg_x509_key_matches(cert, len, ecc_of(k), what, err);
}

/* The spec's serial, or a random one. */
static int set_serial(Cert *cert, const struct tg_cert_spec *s, WC_RNG *rng, char *err)
{
    if (s->serial == NULL)
        return tg_x509_set_serial(cert, rng, err);
    if (s->serial_len == 0 || s->serial[0] == 0 || s->serial_len > TG_CERT_SERIAL_MAX ||
        (s->serial_len == TG_CERT_SERIAL_MAX && (s->serial[0] & 0x80)))
        return tg_err_set(err, TG_EINVAL,
                          "serial: want 1 to %d bytes, the first not zero (%d with the top bit "
                          "set)",
                          TG_CERT_SERIAL_MAX, TG_CERT_SERIAL_MAX - 1);
    memcpy(cert->serial, s->serial, s->serial_len);
    cert->serialSz = (int)s->serial_len;
    return 0;
}

/* basicConstraints, keyUsage and extendedKeyUsage. */
static int set_usage(Cert *cert, const struct tg_cert_spec *s, char *err)
{
    int ret;

    if (s->ca) {
        cert->isCA = 1;
        if (s->path_len > 255)
            return tg_err_set(err, TG_EINVAL, "path length %d: at most 255", s->path_len);
        if (s->path_len >= 0) {
            cert->pathLen = (byte)s->path_len;
            cert->pathLenSet = 1;
        }
    } else {
        cert->basicConstSet = 1; /* CA:FALSE, written out explicitly */
    }
    if (s->key_usage != NULL && (ret = wc_SetKeyUsage(cert, s->key_usage)) != 0)
        return tg_err_set(err, TG_EINVAL, "key usage %s: %s", s->key_usage, wc_GetErrorString(ret));
    if (s->ext_key_usage != NULL && (ret = wc_SetExtKeyUsage(cert, s->ext_key_usage)) != 0)
        return tg_err_set(err, TG_EINVAL, "extended key usage %s: %s", s->ext_key_usage,
                          wc_GetErrorString(ret));
    return 0;
}

/* What a certificate and a request share: the subject's name and alternative names. */
static int set_names(Cert *cert, const struct tg_cert_spec *s, char *err)
{
    int rc = tg_x509_set_cn(cert, s->cn, err);

    if (rc == 0 && s->n_uris + s->n_dns > 0)
        rc = tg_x509_set_alt_names(cert, s->uris, s->n_uris, s->dns, s->n_dns, err);
    return rc;
}

/* What making a certificate or a request holds; job_end() undoes job_begin(), also after a
 * failure. */
struct job {
    WC_RNG rng;
    bool rng_ok;
    Cert *cert;
    unsigned char *der;
};

static int job_begin(struct job *j, char *err)
{
    int ret;

    if ((ret = wc_InitRng(&j->rng)) != 0)
        return tg_err_set(err, TG_ETLS, "random generator: %s", wc_GetErrorString(ret));
    j->rng_ok = true;
    j->cert = calloc(1, sizeof(*j->cert));
    j->der = malloc(TG_X509_DER_CAP);
    if (j->cert == NULL || j->der == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    return tg_x509_cert_init(j->cert, err);
}

/* Hands the DER over on success. */
static int job_end(struct job *j, int rc, size_t len, unsigned char **der, size_t *der_len)
{
    if (rc == 0) {
        *der = j->der;
        *der_len = len;
        j->der = NULL;
    }
    free(j->der);
    free(j->cert);
    if (j->rng_ok)
        wc_FreeRng(&j->rng);
    return rc;
}

int tg_cert_make(const struct tg_cert_spec *spec, const struct tg_key *subject,
                 const struct tg_cert_issuer *issuer, unsigned char **der, size_t *der_len,
                 char *err)
{
    ecc_key *signer = issuer != NULL ? ecc_of(issuer->key) : ecc_of(subject);
    struct job j = {0};
    size_t len = 0;
    int rc;

    if (issuer != NULL &&
        (rc = tg_key_matches(issuer->key, issuer->der, issuer->len, "issuer", err)) < 0)
        return rc;
    if ((rc = job_begin(&j, err)) < 0 || (rc = set_names(j.cert, spec, err)) < 0 ||
        (rc = set_serial(j.cert, spec, &j.rng, err)) < 0 ||
        (rc = tg_x509_set_validity(j.cert, (time_t)spec->not_before, (time_t)spec->not_after,
                                   err)) < 0 ||
        (rc = set_usage(j.cert, spec, err)) < 0)
        return job_end(&j, rc, 0, der, der_len);
    if (issuer == NULL)
        rc = tg_x509_set_key_ids(j.cert, ecc_of(subject), NULL, 0, NULL, err);
    else
        rc = tg_x509_set_key_ids(j.cert, ecc_of(subject), issuer->der, issuer->len, signer, err);
    if (rc == 0)
        rc = tg_x509_make(j.cert, ecc_of(subject), signer, &j.rng, j.der, TG_X509_DER_CAP, &len,
                          err);
    return job_end(&j, rc, len, der, der_len);
}

int tg_csr_make(const struct tg_cert_spec *spec, const struct tg_key *key, unsigned char **der,
                size_t *der_len, char *err)
{
    struct job j = {0};
    int len, rc;

    if ((rc = job_begin(&j, err)) < 0)
        return job_end(&j, rc, 0, der, der_len);
    j.cert->version = 0; /* PKCS#10 v1 */
    if ((rc = set_names(j.cert, spec, err)) < 0)
        return job_end(&j, rc, 0, der, der_len);
    len = wc_MakeCertReq_ex(j.cert, j.der, TG_X509_DER_CAP, ECC_TYPE, ecc_of(key));
    if (len <= 0)
        return job_end(&j, tg_err_set(err, TG_ETLS, "making the CSR: %s", wc_GetErrorString(len)),
                       0, der, der_len);
    len = wc_SignCert_ex(j.cert->bodySz, j.cert->sigType, j.der, TG_X509_DER_CAP, ECC_TYPE,
                         ecc_of(key), &j.rng);
    if (len <= 0)
        return job_end(&j, tg_err_set(err, TG_ETLS, "signing the CSR: %s", wc_GetErrorString(len)),
                       0, der, der_len);
    return job_end(&j, 0, (size_t)len, der, der_len);
}

int tg_pem_encode(const unsigned char *der, size_t len, enum tg_pem_type type, char **pem,
                  size_t *pem_len, char *err)
{
    return tg_x509_pem(der, len, type == TG_PEM_CSR ? CERTREQ_TYPE : CERT_TYPE, pem, pem_len, err);
}

int tg_pem_cert_der(const char *pem, size_t len, const char *what, unsigned char **der,
                    size_t *der_len, char *err)
{
    unsigned char *out = malloc(len + 1);
    int n;

    if (out == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    n = wc_CertPemToDer((const byte *)pem, (int)len, out, (int)len + 1, CERT_TYPE);
    if (n <= 0) {
        free(out);
        return tg_err_set(err, TG_EINVAL, "%s: no PEM certificate: %s", what, wc_GetErrorString(n));
    }
    *der = out;
    *der_len = (size_t)n;
    return 0;
}

int tg_csr_key(const unsigned char *csr, size_t len, struct tg_key **out, char *err)
{
    struct tg_key *k = NULL;
    DecodedCert dc;
    byte spki[256];
    word32 spki_len = sizeof(spki), idx = 0;
    int ret, rc = TG_EINVAL;

    if (len == 0 || len > 64 * 1024)
        return tg_err_set(err, rc, "CSR of %zu bytes", len);
    wc_InitDecodedCert(&dc, csr, (word32)len, NULL);
    ret = wc_ParseCert(&dc, CERTREQ_TYPE, VERIFY, NULL);
    if (ret != 0) {
        tg_err_set(err, rc, "CSR does not parse or its signature does not verify: %s",
                   wc_GetErrorString(ret));
        goto fail;
    }
    if (dc.keyOID != ECDSAk || wc_GetPubKeyDerFromCert(&dc, spki, &spki_len) != 0) {
        tg_err_set(err, rc, "CSR key is not an EC key");
        goto fail;
    }
    if ((rc = key_new(&k, err)) < 0)
        goto fail;
    rc = TG_EINVAL;
    if ((ret = wc_EccPublicKeyDecode(spki, &idx, &k->ecc, spki_len)) != 0) {
        tg_err_set(err, rc, "CSR key does not decode: %s", wc_GetErrorString(ret));
        goto fail;
    }
    if (k->ecc.dp == NULL || k->ecc.dp->id != ECC_SECP256R1) {
        tg_err_set(err, rc, "CSR key is not P-256");
        goto fail;
    }
    *out = k;
    k = NULL;
    rc = 0;
fail:
    tg_key_free(k);
    wc_FreeDecodedCert(&dc);
    return rc;
}

/* JWS signature keys and verification with wolfCrypt (jws.h). */
#include "tollgate/jws.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/signature.h>

#include <stdlib.h>

struct tg_jws_key {
    enum tg_jws_alg alg;
    RsaKey rsa;  /* alg RS256 */
    ecc_key ecc; /* alg ES256 */
};

void tg_jws_key_free(struct tg_jws_key *k)
{
    if (k == NULL)
        return;
    if (k->alg == TG_JWS_RS256)
        wc_FreeRsaKey(&k->rsa);
    else
        wc_ecc_free(&k->ecc);
    free(k);
}

/* A key of alg with its wolfCrypt object initialised, or NULL. */
static struct tg_jws_key *key_new(enum tg_jws_alg alg)
{
    struct tg_jws_key *k = calloc(1, sizeof(*k));
    int ret;

    if (k == NULL)
        return NULL;
    k->alg = alg;
    ret = alg == TG_JWS_RS256 ? wc_InitRsaKey(&k->rsa, NULL) : wc_ecc_init(&k->ecc);
    if (ret != 0) {
        free(k);
        return NULL;
    }
    return k;
}

/* Hands k over in *out when it is fit to verify with (jws.h), else frees it. */
static int key_done(struct tg_jws_key *k, struct tg_jws_key **out, const char *what, char *err)
{
    int rc = 0;

    if (k->alg == TG_JWS_RS256) {
        int bits = wc_RsaEncryptSize(&k->rsa) * 8;

        if (bits < TG_JWS_RSA_MIN_BITS || bits > TG_JWS_RSA_MAX_BITS)
            rc = tg_err_set(err, TG_EINVAL, "%s: an RSA key of %d bits (want %d to %d)", what, bits,
                            TG_JWS_RSA_MIN_BITS, TG_JWS_RSA_MAX_BITS);
    } else if (k->ecc.dp == NULL || k->ecc.dp->id != ECC_SECP256R1) {
        rc = tg_err_set(err, TG_EINVAL, "%s: an EC key not on P-256 (ES256 wants P-256)", what);
    } else if (wc_ecc_check_key(&k->ecc) != 0) {
        rc = tg_err_set(err, TG_EINVAL, "%s: the EC point is not on the curve", what);
    }
    if (rc < 0) {
        tg_jws_key_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int tg_jws_key_from_der(const unsigned char *der, size_t len, bool spki, struct tg_jws_key **out,
                        const char *what, char *err)
{
    struct tg_jws_key *k = key_new(TG_JWS_RS256);
    word32 idx = 0;

    if (k == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    if (wc_RsaPublicKeyDecode(der, &idx, &k->rsa, (word32)len) == 0 && idx == len)
        return key_done(k, out, what, err);
    tg_jws_key_free(k);
    if (!spki)
        return tg_err_set(err, TG_EINVAL, "%s: not an RSA public key", what);
    if ((k = key_new(TG_JWS_ES256)) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    idx = 0;
    if (wc_EccPublicKeyDecode(der, &idx, &k->ecc, (word32)len) != 0 || idx != len) {
        tg_jws_key_free(k);
        return tg_err_set(err, TG_EINVAL, "%s: not an RSA or EC public key", what);
    }
    return key_done(k, out, what, err);
}

int tg_jws_key_from_rsa(const unsigned char *n, size_t n_len, const unsigned char *e, size_t e_len,
                        struct tg_jws_key **out, const char *what, char *err)
{
    struct tg_jws_key *k = key_new(TG_JWS_RS256);

    if (k == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    if (n_len == 0 || e_len == 0 ||
        wc_RsaPublicKeyDecodeRaw(n, (word32)n_len, e, (word32)e_len, &k->rsa) != 0) {
        tg_jws_key_free(k);
        return tg_err_set(err, TG_EINVAL, "%s: not an RSA modulus and exponent", what);
    }
    return key_done(k, out, what, err);
}

int tg_jws_key_from_p256(const unsigned char *x, const unsigned char *y, struct tg_jws_key **out,
                         const char *what, char *err)
{
    struct tg_jws_key *k = key_new(TG_JWS_ES256);

    if (k == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    if (wc_ecc_import_unsigned(&k->ecc, x, y, NULL, ECC_SECP256R1) != 0) {
        tg_jws_key_free(k);
        return tg_err_set(err, TG_EINVAL, "%s: not a P-256 point", what);
    }
    return key_done(k, out, what, err);
}

enum tg_jws_alg tg_jws_key_alg(const struct tg_jws_key *k)
{
    return k->alg;
}

int tg_jws_verify(const struct tg_jws_key *k, enum tg_jws_alg alg, const unsigned char *data,
                  size_t data_len, const unsigned char *sig, size_t sig_len)
{
    struct tg_jws_key *key = tg_unconst(k); /* wolfCrypt takes keys by non-const pointer */
    unsigned char der[80];
    word32 der_len = sizeof(der);
    int ret;

    if (alg != k->alg)
        return TG_EPEER;
    if (alg == TG_JWS_RS256) {
        if ((size_t)wc_RsaEncryptSize(&key->rsa) != sig_len)
            return TG_EPEER;
        ret =
            wc_SignatureVerify(WC_HASH_TYPE_SHA256, WC_SIGNATURE_TYPE_RSA_W_ENC, data,
                               (word32)data_len, sig, (word32)sig_len, &key->rsa, sizeof(key->rsa));
        return ret == 0 ? 0 : TG_EPEER;
    }
    /* JWS carries r || s (RFC 7518 section 3.4); wolfCrypt verifies DER */
    if (sig_len != 2 * TG_JWS_P256_COORD ||
        wc_ecc_rs_raw_to_sig(sig, TG_JWS_P256_COORD, sig + TG_JWS_P256_COORD, TG_JWS_P256_COORD,
                             der, &der_len) != 0)
        return TG_EPEER;
    ret = wc_SignatureVerify(WC_HASH_TYPE_SHA256, WC_SIGNATURE_TYPE_ECC, data, (word32)data_len,
                             der, der_len, &key->ecc, sizeof(key->ecc));
    return ret == 0 ? 0 : TG_EPEER;
}

int tg_sha256(const void *data, size_t len, unsigned char *out)
{
    return wc_Sha256Hash(data, (word32)len, out) == 0 ? 0 : TG_ETLS;
}

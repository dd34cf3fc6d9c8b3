/* The control plane's CA (cp_ca.h): certificates built with x509.h, which tollgate-certs
 * (certs/certtool.c) shares. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include "cp_ca.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate/identity.h"
#include "tollgate/spiffe.h"
#include "tollgate/x509.h"

#define MAX_CHAIN 8
#define MAX_SKEW_S 60

struct tg_cp_ca {
    ecc_key key;
    bool key_ok;
    unsigned char *der; /* the signing certificate */
    size_t der_len;
    struct tg_cert_info info;
    unsigned char *up_der[MAX_CHAIN]; /* intermediates above it, from the file */
    size_t up_len[MAX_CHAIN];
    size_t n_up;
    char *chain_pem; /* PEM of the signing certificate and up_der, unless it is a root:
                      * appended to every issued leaf */
    size_t chain_len;
    char *root_pem; /* the signing certificate as PEM when it is self-signed */
};

/* ---- PEM ---- */

/* Finds the next "-----BEGIN <label>-----" block at or after *pos. Returns 1 with its bounds,
 * 0 at the end, TG_EINVAL for a block without its END line. */
static int next_block(const char *pem, size_t len, size_t *pos, const char *label,
                      const char **start, size_t *block_len)
{
    char begin[64], end[64];
    const char *b, *e;

    snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
    snprintf(end, sizeof(end), "-----END %s-----", label);
    if (*pos >= len)
        return 0;
    b = memmem(pem + *pos, len - *pos, begin, strlen(begin));
    if (b == NULL)
        return 0;
    e = memmem(b, (size_t)(pem + len - b), end, strlen(end));
    if (e == NULL)
        return TG_EINVAL;
    e += strlen(end);
    *pos = (size_t)(e - pem);
    *start = b;
    *block_len = (size_t)(e - b);
    return 1;
}

/* The next certificate of pem as DER (malloc'd) and its PEM block. 1, 0 at the end, or
 * TG_EINVAL / TG_ENOMEM. */
static int next_cert(const char *pem, size_t len, size_t *pos, unsigned char **der, size_t *der_len,
                     const char **block, size_t *block_len)
{
    int n, found = next_block(pem, len, pos, "CERTIFICATE", block, block_len);
    unsigned char *buf;

    if (found <= 0)
        return found;
    buf = malloc(*block_len);
    if (buf == NULL)
        return TG_ENOMEM;
    n = wc_CertPemToDer((const unsigned char *)*block, (int)*block_len, buf, (int)*block_len,
                        CERT_TYPE);
    if (n <= 0) {
        free(buf);
        return TG_EINVAL;
    }
    *der = buf;
    *der_len = (size_t)n;
    return 1;
}

static bool self_signed(const unsigned char *der, size_t len)
{
    DecodedCert dc;
    bool yes;

    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    yes = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) == 0 && dc.selfSigned;
    wc_FreeDecodedCert(&dc);
    return yes;
}

/* ---- the CA ---- */

void tg_cp_ca_free(struct tg_cp_ca *ca)
{
    if (ca == NULL)
        return;
    if (ca->key_ok)
        wc_ecc_free(&ca->key);
    free(ca->der);
    for (size_t i = 0; i < ca->n_up; i++)
        free(ca->up_der[i]);
    free(ca->chain_pem);
    free(ca->root_pem);
    free(ca);
}

const char *tg_cp_ca_root_pem(const struct tg_cp_ca *ca)
{
    return ca->root_pem;
}

const char *tg_cp_ca_serial(const struct tg_cp_ca *ca)
{
    return ca->info.serial;
}

int64_t tg_cp_ca_not_after(const struct tg_cp_ca *ca)
{
    return ca->info.not_after;
}

/* Reads the certificates of the cert file: the first signs, the rest go with every leaf. */
static int load_certs(struct tg_cp_ca *ca, const char *pem, size_t len, const char *what, char *err)
{
    size_t pos = 0, n = 0, block_len;
    const char *block;
    unsigned char *der;
    size_t der_len;
    int found;

    while ((found = next_cert(pem, len, &pos, &der, &der_len, &block, &block_len)) == 1) {
        bool root = self_signed(der, der_len);
        char *grown;

        if (n > 0 && root) {
            free(der); /* a root in the file: sidecars have it in their bundle */
            n++;
            continue;
        }
        if (n > 0 && ca->n_up == MAX_CHAIN) {
            free(der);
            return tg_err_set(err, TG_EINVAL, "%s: cert: more than %d intermediates", what,
                              MAX_CHAIN);
        }
        if (n == 0) {
            ca->der = der;
            ca->der_len = der_len;
        } else {
            ca->up_der[ca->n_up] = der;
            ca->up_len[ca->n_up++] = der_len;
        }
        n++;
        if (root)
            continue; /* a root signs: nothing goes with the leaves */
        /* the signing certificate and those above it, below the root, go with every leaf */
        if ((grown = realloc(ca->chain_pem, ca->chain_len + block_len + 2)) == NULL)
            return TG_ENOMEM;
        ca->chain_pem = grown;
        memcpy(ca->chain_pem + ca->chain_len, block, block_len);
        ca->chain_len += block_len;
        ca->chain_pem[ca->chain_len++] = '\n';
        ca->chain_pem[ca->chain_len] = '\0';
    }
    if (found < 0)
        return tg_err_set(err, TG_EINVAL, "%s: cert: malformed PEM certificate", what);
    if (n == 0)
        return tg_err_set(err, TG_EINVAL, "%s: cert: no certificate", what);
    return 0;
}

int tg_cp_ca_new(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                 const char *what, struct tg_cp_ca **out, char *err)
{
    struct tg_cp_ca *ca = calloc(1, sizeof(*ca));
    char why[TG_ERRLEN], key_what[TG_ERRLEN];
    int64_t now = tg_identity_now();
    int rc = TG_ENOMEM;

    if (ca == NULL)
        return rc;
    if ((rc = load_certs(ca, cert_pem, cert_len, what, err)) < 0)
        goto fail;
    if ((rc = tg_cert_inspect(ca->der, ca->der_len, &ca->info, why)) < 0) {
        tg_err_set(err, rc, "%s: cert: %s", what, why);
        goto fail;
    }
    rc = TG_EINVAL;
    if (!ca->info.is_ca || (!ca->info.key_cert_sign && ca->info.eku_set)) {
        tg_err_set(err, rc, "%s: cert (serial %s) is not a CA certificate", what, ca->info.serial);
        goto fail;
    }
    if (ca->info.not_after <= now || ca->info.not_before > now + MAX_SKEW_S) {
        tg_err_set(err, rc, "%s: cert (serial %s) is not valid now", what, ca->info.serial);
        goto fail;
    }
    if (wc_ecc_init(&ca->key) != 0) {
        rc = TG_ETLS;
        goto fail;
    }
    ca->key_ok = true;
    snprintf(key_what, sizeof(key_what), "%s: key", what);
    if ((rc = tg_x509_key_decode(key_pem, key_len, false, &ca->key, key_what, err)) < 0 ||
        (rc = tg_x509_key_matches(ca->der, ca->der_len, &ca->key, what, err)) < 0)
        goto fail;
    if (self_signed(ca->der, ca->der_len)) {
        size_t n;

        if ((rc = tg_x509_pem(ca->der, ca->der_len, CERT_TYPE, &ca->root_pem, &n, err)) < 0)
            goto fail;
    }
    *out = ca;
    return 0;
fail:
    tg_cp_ca_free(ca);
    return rc;
}

int tg_cp_ca_check_roots(const struct tg_cp_ca *ca, const struct tg_strlist *roots, char *err)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    int rc = TG_EINVAL, v;

    if (cm == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < roots->n; i++)
        wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)roots->v[i],
                                        (long)strlen(roots->v[i]), WOLFSSL_FILETYPE_PEM);
    /* the intermediates from the root side down, each verified by what is loaded */
    for (size_t i = ca->n_up; i-- > 0;) {
        if (wolfSSL_CertManagerLoadCABuffer(cm, ca->up_der[i], (long)ca->up_len[i],
                                            WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS) {
            tg_err_set(err, rc, "CA intermediate %zu does not chain to the roots", i + 1);
            goto fail;
        }
    }
    v = wolfSSL_CertManagerVerifyBuffer(cm, ca->der, (long)ca->der_len, WOLFSSL_FILETYPE_ASN1);
    if (v != WOLFSSL_SUCCESS) {
        tg_err_set(err, rc, "CA certificate (serial %s) does not chain to the roots: %s",
                   ca->info.serial, wolfSSL_ERR_reason_error_string((unsigned long)v));
        goto fail;
    }
    rc = 0;
fail:
    wolfSSL_CertManagerFree(cm);
    return rc;
}

/* ---- issuing ---- */

/* The CSR's public key, after checking the CSR's own signature (proof that the asker holds
 * the private key). */
static int csr_key(const unsigned char *csr, size_t len, ecc_key *key, char *err)
{
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
    if ((ret = wc_EccPublicKeyDecode(spki, &idx, key, spki_len)) != 0) {
        tg_err_set(err, rc, "CSR key does not decode: %s", wc_GetErrorString(ret));
        goto fail;
    }
    if (key->dp == NULL || key->dp->id != ECC_SECP256R1) {
        tg_err_set(err, rc, "CSR key is not P-256");
        goto fail;
    }
    rc = 0;
fail:
    wc_FreeDecodedCert(&dc);
    return rc;
}

/* What a leaf says beyond its key: CN, SANs and extended key usage. */
struct leaf_spec {
    const char *cn;
    const char *const *uris;
    size_t n_uris;
    const char *const *dns;
    size_t n_dns;
    const char *eku;
};

static int fill_leaf(const struct tg_cp_ca *ca, const struct leaf_spec *ls, int64_t ttl_s,
                     ecc_key *subject, WC_RNG *rng, Cert *cert, char *err)
{
    time_t now = time(NULL), na = now + (time_t)ttl_s;
    int64_t skew = ttl_s / 10 < MAX_SKEW_S ? ttl_s / 10 : MAX_SKEW_S;
    int ret, rc;

    if ((rc = tg_x509_set_cn(cert, ls->cn, err)) < 0 ||
        (rc = tg_x509_set_serial(cert, rng, err)) < 0)
        return rc;
    if (na > (time_t)ca->info.not_after)
        na = (time_t)ca->info.not_after; /* never outlive the CA */
    if ((rc = tg_x509_set_validity(cert, now - (time_t)skew, na, err)) < 0)
        return rc;
    cert->basicConstSet = 1; /* CA:FALSE, written out (critical: see der.h) */
    if ((ret = wc_SetKeyUsage(cert, "digitalSignature")) != 0 ||
        (ret = wc_SetExtKeyUsage(cert, ls->eku)) != 0)
        return tg_err_set(err, TG_ETLS, "key usage: %s", wc_GetErrorString(ret));
    if (tg_x509_set_alt_names(cert, ls->uris, ls->n_uris, ls->dns, ls->n_dns, err) < 0)
        return tg_err_set(err, TG_ETOOBIG, "names too long for a certificate");
    return tg_x509_set_key_ids(cert, subject, ca->der, ca->der_len, tg_unconst(&ca->key), err);
}

/* Makes the certificate of ls for subject and appends the CA's chain: *chain malloc'd PEM. */
static int issue(const struct tg_cp_ca *ca, const struct leaf_spec *ls, int64_t ttl_s,
                 ecc_key *subject, WC_RNG *rng, char **chain, size_t *chain_len, char *err)
{
    Cert *cert = calloc(1, sizeof(*cert));
    byte *der = malloc(TG_X509_DER_CAP);
    char *leaf = NULL, *out;
    size_t leaf_len = 0, der_len;
    int rc = TG_ENOMEM;

    if (cert == NULL || der == NULL)
        goto fail;
    if ((rc = tg_x509_cert_init(cert, err)) < 0 ||
        (rc = fill_leaf(ca, ls, ttl_s, subject, rng, cert, err)) < 0 ||
        (rc = tg_x509_make(cert, subject, tg_unconst(&ca->key), rng, der, TG_X509_DER_CAP, &der_len,
                           err)) < 0 ||
        (rc = tg_x509_pem(der, der_len, CERT_TYPE, &leaf, &leaf_len, err)) < 0)
        goto fail;
    rc = TG_ENOMEM;
    if ((out = malloc(leaf_len + ca->chain_len + 1)) == NULL)
        goto fail;
    memcpy(out, leaf, leaf_len);
    if (ca->chain_len > 0)
        memcpy(out + leaf_len, ca->chain_pem, ca->chain_len);
    out[leaf_len + ca->chain_len] = '\0';
    *chain = out;
    *chain_len = leaf_len + ca->chain_len;
    rc = 0;
fail:
    free(leaf);
    free(der);
    free(cert);
    return rc;
}

/* Where the subject's public key comes from: a CSR, or a key made here. */
typedef int (*load_key_fn)(const void *arg, size_t len, ecc_key *key, char *err);

/* Makes the subject key with load, then the certificate of ls for it. */
static int issue_with(const struct tg_cp_ca *ca, const struct leaf_spec *ls, int64_t ttl_s,
                      load_key_fn load, const void *arg, size_t len, char **chain,
                      size_t *chain_len, char *err)
{
    ecc_key subject;
    WC_RNG rng;
    bool subject_ok = false, rng_ok = false;
    int rc = TG_ETLS;

    if (ttl_s <= 0 || wc_InitRng(&rng) != 0) {
        tg_err_set(err, rc, "random generator");
        goto fail;
    }
    rng_ok = true;
    if (wc_ecc_init(&subject) != 0)
        goto fail;
    subject_ok = true;
    if ((rc = load(arg, len, &subject, err)) < 0)
        goto fail;
    rc = issue(ca, ls, ttl_s, &subject, &rng, chain, chain_len, err);
fail:
    if (subject_ok)
        wc_ecc_free(&subject);
    if (rng_ok)
        wc_FreeRng(&rng);
    return rc;
}

static int load_csr(const void *csr, size_t len, ecc_key *key, char *err)
{
    return csr_key(csr, len, key, err);
}

static int load_pem(const void *pem, size_t len, ecc_key *key, char *err)
{
    return tg_x509_key_decode(pem, len, false, key, "new key", err);
}

int tg_cp_ca_sign(const struct tg_cp_ca *ca, const unsigned char *csr, size_t csr_len,
                  const char *spiffe_id, int64_t ttl_s, char **chain, size_t *chain_len, char *err)
{
    struct tg_spiffe_id id;
    struct leaf_spec ls = {.n_uris = 1, .eku = "serverAuth,clientAuth"};
    const char *sa;
    int rc;

    if ((rc = tg_spiffe_parse(spiffe_id, &id, err)) < 0)
        return rc;
    /* CN: the service account, or "tollgate" when it does not fit */
    sa = strstr(id.id + id.path_off, "/sa/");
    ls.cn = sa != NULL && strlen(sa + 4) < CTC_NAME_SIZE ? sa + 4 : "tollgate";
    ls.uris = (const char *const[]){id.id};
    return issue_with(ca, &ls, ttl_s, load_csr, csr, csr_len, chain, chain_len, err);
}

int tg_cp_ca_issue_dns(const struct tg_cp_ca *ca, const char *const *dns, size_t n_dns,
                       int64_t ttl_s, char **chain, size_t *chain_len, char **key_pem,
                       size_t *key_len, char *err)
{
    struct leaf_spec ls = {.dns = dns, .n_dns = n_dns, .eku = "serverAuth"};
    struct tg_identity_key *k = NULL;
    int rc;

    if (n_dns == 0 || strlen(dns[0]) >= CTC_NAME_SIZE)
        return tg_err_set(err, TG_EINVAL, "a DNS name of at most %d bytes is needed",
                          CTC_NAME_SIZE - 1);
    ls.cn = dns[0];
    if ((rc = tg_identity_keygen(&k, err)) < 0)
        return rc;
    if ((rc = issue_with(ca, &ls, ttl_s, load_pem, k->pem, k->pem_len, chain, chain_len, err)) < 0)
        goto done;
    if ((*key_pem = malloc(k->pem_len + 1)) == NULL) {
        free(*chain);
        *chain = NULL;
        rc = TG_ENOMEM;
        goto done;
    }
    memcpy(*key_pem, k->pem, k->pem_len + 1);
    *key_len = k->pem_len;
done:
    tg_identity_key_free(k);
    return rc;
}

/* ---- roots and CRLs ---- */

int tg_cp_ca_split_roots(const char *pem, size_t len, const char *what, struct tg_resource *r,
                         struct tg_strlist *out, char *err)
{
    size_t pos = 0, block_len, der_len, n = 0;
    const char *block;
    unsigned char *der;
    int found;

    while ((found = next_cert(pem, len, &pos, &der, &der_len, &block, &block_len)) == 1) {
        struct tg_cert_info info;
        char why[TG_ERRLEN];
        char **v;
        int rc = tg_cert_inspect(der, der_len, &info, why);

        free(der);
        n++;
        if (rc < 0)
            return tg_err_set(err, TG_EINVAL, "%s: certificate %zu: %s", what, n, why);
        if (!info.is_ca)
            return tg_err_set(err, TG_EINVAL, "%s: certificate %zu (serial %s) is not a CA", what,
                              n, info.serial);
        v = tg_resource_array(r, out->n + 1, sizeof(char *));
        if (v == NULL)
            return TG_ENOMEM;
        if (out->n > 0)
            memcpy(v, out->v, out->n * sizeof(char *));
        if ((v[out->n] = tg_resource_strndup(r, block, block_len)) == NULL)
            return TG_ENOMEM;
        out->v = v;
        out->n++;
    }
    if (found < 0)
        return tg_err_set(err, TG_EINVAL, "%s: malformed PEM certificate", what);
    if (n == 0)
        return tg_err_set(err, TG_EINVAL, "%s: no certificate", what);
    return 0;
}

int tg_cp_ca_crl_der(const unsigned char *data, size_t len, const char *what, struct tg_resource *r,
                     struct tg_res_blob *out, char *err)
{
    size_t pos = 0, block_len;
    const char *block, *b64, *b64_end;
    word32 der_len;
    int found = next_block((const char *)data, len, &pos, "X509 CRL", &block, &block_len);

    if (found < 0)
        return tg_err_set(err, TG_EINVAL, "%s: malformed PEM CRL", what);
    if (found == 0) {
        if (len < 2 || data[0] != 0x30)
            return tg_err_set(err, TG_EINVAL, "%s: neither a PEM nor a DER CRL", what);
        out->data = tg_resource_memdup(r, data, len);
        out->len = len;
        return out->data == NULL ? TG_ENOMEM : 0;
    }
    b64 = strchr(block, '\n');
    b64_end = block + block_len - strlen("-----END X509 CRL-----");
    if (b64 == NULL || b64 >= b64_end)
        return tg_err_set(err, TG_EINVAL, "%s: empty PEM CRL", what);
    der_len = (word32)(b64_end - b64);
    if ((out->data = tg_resource_alloc(r, der_len)) == NULL)
        return TG_ENOMEM;
    if (Base64_Decode((const byte *)b64, (word32)(b64_end - b64), out->data, &der_len) != 0)
        return tg_err_set(err, TG_EINVAL, "%s: PEM CRL does not decode", what);
    out->len = der_len;
    return 0;
}

bool tg_cp_ca_crl_signed_by(const struct tg_strlist *roots, const struct tg_res_blob *crl)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    bool ok;

    if (cm == NULL)
        return false;
    for (size_t i = 0; i < roots->n; i++)
        wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)roots->v[i],
                                        (long)strlen(roots->v[i]), WOLFSSL_FILETYPE_PEM);
    ok = wolfSSL_CertManagerLoadCRLBuffer(cm, crl->data, (long)crl->len, WOLFSSL_FILETYPE_ASN1) ==
         WOLFSSL_SUCCESS;
    wolfSSL_CertManagerFree(cm);
    return ok;
}

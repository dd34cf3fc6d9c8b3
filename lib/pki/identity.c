/* Identity files and certificate inspection (wolfSSL's ASN.1 parser). */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>

#include "tollgate/identity.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate/file.h"

#define MAX_PEM_FILE TG_FILE_MAX
#define BUNDLE_KEY "identity.trust_bundle" /* the config keys, as messages name the files */
#define CRL_KEY "identity.crl"

int64_t tg_identity_now(void)
{
    return (int64_t)time(NULL);
}

static void hex(const unsigned char *src, size_t n, char *dst)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = digits[src[i] >> 4];
        dst[2 * i + 1] = digits[src[i] & 15];
    }
    dst[2 * n] = '\0';
}

static int asn_time(const byte *raw, int raw_len, int64_t *out)
{
    const byte *date;
    byte format;
    int len;
    struct tm tm;

    if (raw == NULL || wc_GetDateInfo(raw, raw_len, &date, &format, &len) != 0)
        return -1;
    memset(&tm, 0, sizeof(tm));
    if (wc_GetDateAsCalendarTime(date, len, format, &tm) != 0)
        return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

int tg_cert_inspect(const unsigned char *der, size_t len, struct tg_cert_info *out, char *err)
{
    struct DecodedCert dc;
    byte digest[WC_SHA256_DIGEST_SIZE];
    const DNS_entry *uri = NULL;
    size_t skip = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len == 0 || len > 64 * 1024)
        return tg_err_set(err, TG_EPEER, "certificate of %zu bytes", len);
    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    rc = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL);
    if (rc != 0) {
        wc_FreeDecodedCert(&dc);
        return tg_err_set(err, TG_EPEER, "certificate does not parse: %s",
                          wolfSSL_ERR_reason_error_string((unsigned long)rc));
    }
    while (skip + 1 < (size_t)dc.serialSz && dc.serial[skip] == 0)
        skip++;
    hex(dc.serial + skip, (size_t)dc.serialSz - skip, out->serial);
    if (wc_Sha256Hash(der, (word32)len, digest) == 0)
        hex(digest, sizeof(digest), out->sha256);
    if (asn_time(dc.beforeDate, dc.beforeDateLen, &out->not_before) != 0 ||
        asn_time(dc.afterDate, dc.afterDateLen, &out->not_after) != 0) {
        wc_FreeDecodedCert(&dc);
        return tg_err_set(err, TG_EPEER, "certificate validity dates do not parse");
    }
    if (dc.subjectCN != NULL && dc.subjectCNLen > 0)
        snprintf(out->cn, sizeof(out->cn), "%.*s", dc.subjectCNLen < 64 ? (int)dc.subjectCNLen : 64,
                 dc.subjectCN);
    out->is_ca = dc.isCA;
    out->key_cert_sign = dc.extKeyUsageSet && (dc.extKeyUsage & KEYUSE_KEY_CERT_SIGN);
    out->eku_set = dc.extExtKeyUsageSet;
    out->eku_server = dc.extExtKeyUsage & (EXTKEYUSE_SERVER_AUTH | EXTKEYUSE_ANY);
    out->eku_client = dc.extExtKeyUsage & (EXTKEYUSE_CLIENT_AUTH | EXTKEYUSE_ANY);
    for (const DNS_entry *e = dc.altNames; e != NULL; e = e->next) {
        if (e->type == ASN_URI_TYPE) {
            out->n_uri++;
            uri = e;
        }
    }
    if (out->n_uri != 1) {
        snprintf(out->id_err, sizeof(out->id_err), "%d URI SANs (want exactly one SPIFFE ID)",
                 out->n_uri);
    } else if (tg_spiffe_parse_n(uri->name, (size_t)uri->len, &out->id, out->id_err) == 0) {
        out->id_ok = true;
    }
    wc_FreeDecodedCert(&dc);
    return 0;
}

/* Finds the next "-----BEGIN CERTIFICATE-----" block at or after *pos and converts it to
 * DER (malloc'd). Returns 1 when one was found, 0 at the end, negative on error. */
static int next_cert(const char *pem, size_t len, size_t *pos, unsigned char **der, size_t *der_len)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    const char *b, *e;
    unsigned char *buf;
    int n;

    if (*pos >= len)
        return 0;
    b = memmem(pem + *pos, len - *pos, begin, sizeof(begin) - 1);
    if (b == NULL)
        return 0;
    e = memmem(b, (size_t)(pem + len - b), end, sizeof(end) - 1);
    if (e == NULL)
        return TG_EINVAL;
    e += sizeof(end) - 1;
    *pos = (size_t)(e - pem);
    buf = malloc((size_t)(e - b));
    if (buf == NULL)
        return TG_ENOMEM;
    n = wc_CertPemToDer((const unsigned char *)b, (int)(e - b), buf, (int)(e - b), CERT_TYPE);
    if (n <= 0) {
        free(buf);
        return TG_EINVAL;
    }
    *der = buf;
    *der_len = (size_t)n;
    return 1;
}

void tg_identity_free(struct tg_identity *id)
{
    if (id == NULL)
        return;
    free(id->chain_pem);
    tg_wipe_free(id->key_pem, id->key_len);
    free(id->bundle_pem);
    free(id->roots);
    for (size_t i = 0; i < id->n_crl; i++)
        free(id->crl[i]);
    free(id->crl);
    free(id->crl_len);
    free(id->crl_pem);
    free(id);
}

/* Counts the bundle's certificates, each of which must be a CA, and loads them into cm. what
 * names the bundle in messages (its config key). */
static int load_bundle(struct tg_identity *id, const char *what, const char *path,
                       WOLFSSL_CERT_MANAGER *cm, char *err)
{
    size_t pos = 0;
    unsigned char *der;
    size_t der_len;
    int found;

    while ((found = next_cert(id->bundle_pem, id->bundle_len, &pos, &der, &der_len)) == 1) {
        struct tg_cert_info info;
        int rc = tg_cert_inspect(der, der_len, &info, err);

        if (rc == 0 && !info.is_ca)
            rc = tg_err_set(err, TG_EINVAL, "certificate %zu (serial %s) is not a CA",
                            id->n_roots + 1, info.serial);
        if (rc == 0 &&
            wolfSSL_CertManagerLoadCABuffer(cm, der, (long)der_len, WOLFSSL_FILETYPE_ASN1) != 1)
            rc = tg_err_set(err, TG_EINVAL, "certificate %zu (serial %s) is not usable as a root",
                            id->n_roots + 1, info.serial);
        free(der);
        if (rc == 0) {
            struct tg_cert_info *grown = realloc(id->roots, (id->n_roots + 1) * sizeof(*grown));

            if (grown == NULL)
                return TG_ENOMEM;
            id->roots = grown;
            id->roots[id->n_roots] = info;
        }
        if (rc < 0) {
            char why[TG_ERRLEN];

            snprintf(why, sizeof(why), "%s", err);
            return tg_err_set(err, TG_EINVAL, "%s: %s: %s", what, path, why);
        }
        id->n_roots++;
    }
    if (found < 0)
        return tg_err_set(err, TG_EINVAL, "%s: %s: malformed PEM", what, path);
    if (id->n_roots == 0)
        return tg_err_set(err, TG_EINVAL, "%s: %s: no certificate", what, path);
    return 0;
}

int tg_identity_check_bundle(const char *pem, size_t len, char *err)
{
    struct tg_identity id = {.bundle_pem = (char *)pem, .bundle_len = len};
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    int rc;

    if (cm == NULL)
        return TG_ENOMEM;
    rc = load_bundle(&id, BUNDLE_KEY, "(pushed)", cm, err);
    free(id.roots);
    wolfSSL_CertManagerFree(cm);
    return rc;
}

/* Checks the chain: leaf first, then intermediates, leading to a root already in cm. */
static int check_chain(struct tg_identity *id, const char *path, WOLFSSL_CERT_MANAGER *cm,
                       char *err)
{
    unsigned char *der[16];
    size_t der_len[16], n = 0, pos = 0;
    int found, rc = 0;
    int64_t now = tg_identity_now();

    while (n < TG_NELEM(der) &&
           (found = next_cert(id->chain_pem, id->chain_len, &pos, &der[n], &der_len[n])) == 1)
        n++;
    if (n == 0) {
        return tg_err_set(err, TG_EINVAL, "identity.cert: %s: no certificate in the file", path);
    }
    rc = tg_cert_inspect(der[0], der_len[0], &id->leaf, err);
    if (rc == 0 && !id->leaf.id_ok)
        rc = tg_err_set(err, TG_EINVAL, "%s", id->leaf.id_err);
    else if (rc == 0 && (id->leaf.is_ca || id->leaf.key_cert_sign))
        rc = tg_err_set(err, TG_EINVAL, "leaf is a CA certificate");
    else if (rc == 0 && id->leaf.not_after <= now)
        rc = tg_err_set(err, TG_EINVAL, "leaf expired %lld seconds ago",
                        (long long)(now - id->leaf.not_after));
    else if (rc == 0 && id->leaf.not_before > now + 300)
        rc = tg_err_set(err, TG_EINVAL, "leaf is not valid for another %lld seconds",
                        (long long)(id->leaf.not_before - now));
    /* intermediates from the root side down, each verified by what is already loaded */
    for (size_t i = n; rc == 0 && i-- > 1;) {
        if (wolfSSL_CertManagerLoadCABuffer(cm, der[i], (long)der_len[i], WOLFSSL_FILETYPE_ASN1) !=
            1)
            rc = tg_err_set(err, TG_EINVAL, "intermediate %zu does not chain to the bundle", i);
    }
    if (rc == 0) {
        int v =
            wolfSSL_CertManagerVerifyBuffer(cm, der[0], (long)der_len[0], WOLFSSL_FILETYPE_ASN1);
        if (v != 1)
            rc = tg_err_set(err, TG_EINVAL, "leaf does not chain to the trust bundle: %s",
                            wolfSSL_ERR_reason_error_string((unsigned long)v));
    }
    for (size_t i = 0; i < n; i++)
        free(der[i]);
    if (rc < 0) {
        char why[TG_ERRLEN];

        snprintf(why, sizeof(why), "%s", err);
        return tg_err_set(err, TG_EINVAL, "identity.cert: %s: %s", path, why);
    }
    return 0;
}

/* Room for n CRLs in id. */
static int alloc_crls(struct tg_identity *id, size_t n)
{
    id->crl = calloc(n + 1, sizeof(*id->crl));
    id->crl_len = calloc(n + 1, sizeof(*id->crl_len));
    id->crl_pem = calloc(n + 1, sizeof(*id->crl_pem));
    return id->crl == NULL || id->crl_len == NULL || id->crl_pem == NULL ? TG_ENOMEM : 0;
}

static int read_crls(struct tg_identity *id, const char *what, const struct tg_strlist *paths,
                     char *err)
{
    if (paths == NULL || paths->n == 0)
        return 0;
    if (alloc_crls(id, paths->n) < 0)
        return TG_ENOMEM;
    for (size_t i = 0; i < paths->n; i++) {
        int rc =
            tg_file_read(what, paths->v[i], MAX_PEM_FILE, 0, &id->crl[i], &id->crl_len[i], err);

        if (rc < 0)
            return rc;
        id->n_crl++;
    }
    return 0;
}

/* One DER TLV at *p (before end): its tag, and *p moved past it (enter: into it). */
static int der_next(const unsigned char **p, const unsigned char *end, bool enter, int *tag)
{
    const unsigned char *q = *p;
    size_t len = 0;

    if (end - q < 2)
        return -1;
    *tag = q[0];
    if (q[1] < 0x80) {
        len = q[1];
        q += 2;
    } else {
        int n = q[1] & 0x7f;

        if (n == 0 || n > 4 || end - q < 2 + n)
            return -1;
        for (int i = 0; i < n; i++)
            len = len << 8 | q[2 + i];
        q += 2 + n;
    }
    if ((size_t)(end - q) < len)
        return -1;
    *p = enter ? q : q + len;
    return 0;
}

/* The nextUpdate of a CRL (DER or PEM): 0, or -1 when it has none or does not parse. Only to
 * tell a stale CRL from a broken one in messages: wolfSSL refuses both alike. */
static int crl_next_update(const char *data, size_t len, bool pem, int64_t *out)
{
    DerBuffer *der = NULL;
    const unsigned char *p = (const unsigned char *)data, *end = p + len, *t;
    int tag, rc = -1;

    if (pem) {
        if (wc_PemToDer(p, (long)len, CRL_TYPE, &der, NULL, NULL, NULL) != 0) {
            wc_FreeDer(&der); /* wolfSSL 5.5 leaves it allocated when the base64 is bad */
            return -1;
        }
        p = der->buffer;
        end = p + der->length;
    }
    /* CertificateList { TBSCertList { version?, signature, issuer, thisUpdate, nextUpdate? */
    if (der_next(&p, end, true, &tag) == 0 && tag == 0x30 && der_next(&p, end, true, &tag) == 0 &&
        tag == 0x30 && (t = p, der_next(&t, end, false, &tag)) == 0 &&
        (tag != 0x02 || der_next(&p, end, false, &tag) == 0) &&
        der_next(&p, end, false, &tag) == 0 && der_next(&p, end, false, &tag) == 0 &&
        der_next(&p, end, false, &tag) == 0) {
        t = p;
        if (der_next(&t, end, false, &tag) == 0 && (tag == 0x17 || tag == 0x18))
            rc = asn_time(p, (int)(t - p), out);
    }
    wc_FreeDer(&der);
    return rc;
}

/* Checks that each CRL parses, is signed by a root of the bundle (already in cm) and is not
 * stale: a CRL that could never apply is a configuration error, not a silent no-op. paths
 * name them in err (NULL: by position), after what. */
static int check_crls(struct tg_identity *id, const char *what, const struct tg_strlist *paths,
                      WOLFSSL_CERT_MANAGER *cm, char *err)
{
    for (size_t i = 0; i < id->n_crl; i++) {
        char name[48];
        int64_t next = 0;
        int rc;

        id->crl_pem[i] = memmem(id->crl[i], id->crl_len[i], "-----BEGIN X509 CRL-----", 24) != NULL;
        rc = wolfSSL_CertManagerLoadCRLBuffer(
            cm, (const unsigned char *)id->crl[i], (long)id->crl_len[i],
            id->crl_pem[i] ? WOLFSSL_FILETYPE_PEM : WOLFSSL_FILETYPE_ASN1);
        if (rc == WOLFSSL_SUCCESS)
            continue;
        snprintf(name, sizeof(name), "(in memory) CRL %zu", i + 1);
        if (crl_next_update(id->crl[i], id->crl_len[i], id->crl_pem[i], &next) == 0 &&
            next <= tg_identity_now())
            return tg_err_set(err, TG_EINVAL, "%s: %s: stale: its nextUpdate passed %lld s ago",
                              what, paths != NULL && i < paths->n ? paths->v[i] : name,
                              (long long)(tg_identity_now() - next));
        return tg_err_set(err, TG_EINVAL, "%s: %s: not a CRL signed by a root of the bundle: %s",
                          what, paths != NULL && i < paths->n ? paths->v[i] : name,
                          wolfSSL_ERR_reason_error_string((unsigned long)rc));
    }
    return 0;
}

static int check_key(struct tg_identity *id, const struct tg_identity_files *f, char *err)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLS_server_method());
    int rc = 0;

    if (ctx == NULL)
        return TG_ENOMEM;
    if (wolfSSL_CTX_use_certificate_chain_buffer_format(ctx, (const unsigned char *)id->chain_pem,
                                                        (long)id->chain_len,
                                                        WOLFSSL_FILETYPE_PEM) != 1)
        rc = tg_err_set(err, TG_EINVAL, "identity.cert: %s: not usable", f->cert);
    else if (wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)id->key_pem,
                                               (long)id->key_len, WOLFSSL_FILETYPE_PEM) != 1)
        rc = tg_err_set(err, TG_EINVAL, "identity.key: %s: not a PEM private key", f->key);
    else if (wolfSSL_CTX_check_private_key(ctx) != 1)
        rc = tg_err_set(err, TG_EINVAL, "identity.key: %s: does not match certificate %s", f->key,
                        f->cert);
    wolfSSL_CTX_free(ctx);
    return rc;
}

/* ---- identities made in memory: key, CSR, signed chain ---- */

#define KEY_DER_CAP 256 /* SEC1 P-256 private key: 121 bytes */
#define KEY_PEM_CAP 1024
#define CSR_DER_CAP 4096 /* a CSR with one URI SAN of at most TG_SPIFFE_MAX bytes */

void tg_identity_key_free(struct tg_identity_key *k)
{
    if (k == NULL)
        return;
    tg_wipe_free((char *)k->der, k->der_len);
    tg_wipe_free(k->pem, k->pem_len);
    explicit_bzero(k, sizeof(*k));
    free(k);
}

int tg_identity_keygen(struct tg_identity_key **out, char *err)
{
    struct tg_identity_key *k = calloc(1, sizeof(*k));
    WC_RNG rng;
    ecc_key key;
    bool rng_ok = false, key_ok = false;
    int ret, rc = TG_ENOMEM;

    if (k == NULL)
        return rc;
    if ((k->der = malloc(KEY_DER_CAP)) == NULL || (k->pem = malloc(KEY_PEM_CAP)) == NULL)
        goto fail;
    rc = TG_ETLS;
    if ((ret = wc_InitRng(&rng)) != 0) {
        tg_err_set(err, rc, "random generator: %s", wc_GetErrorString(ret));
        goto fail;
    }
    rng_ok = true;
    if ((ret = wc_ecc_init(&key)) != 0) {
        tg_err_set(err, rc, "ecc init: %s", wc_GetErrorString(ret));
        goto fail;
    }
    key_ok = true;
    if ((ret = wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1)) != 0) {
        tg_err_set(err, rc, "making a P-256 key: %s", wc_GetErrorString(ret));
        goto fail;
    }
    ret = wc_EccKeyToDer(&key, k->der, KEY_DER_CAP);
    if (ret <= 0) {
        tg_err_set(err, rc, "encoding the key: %s", wc_GetErrorString(ret));
        goto fail;
    }
    k->der_len = (size_t)ret;
    ret = wc_DerToPem(k->der, (word32)k->der_len, (byte *)k->pem, KEY_PEM_CAP - 1,
                      ECC_PRIVATEKEY_TYPE);
    if (ret <= 0) {
        tg_err_set(err, rc, "PEM-encoding the key: %s", wc_GetErrorString(ret));
        goto fail;
    }
    k->pem_len = (size_t)ret;
    k->pem[k->pem_len] = '\0';
    wc_ecc_free(&key);
    wc_FreeRng(&rng);
    *out = k;
    return 0;
fail:
    if (key_ok)
        wc_ecc_free(&key);
    if (rng_ok)
        wc_FreeRng(&rng);
    if (k->der != NULL)
        k->der_len = KEY_DER_CAP; /* wipe all of it */
    if (k->pem != NULL)
        k->pem_len = KEY_PEM_CAP;
    tg_identity_key_free(k);
    return rc;
}

/* Writes a DER tag and length (short or long form) at out; returns its size. */
static size_t der_header(unsigned char *out, unsigned char tag, size_t len)
{
    size_t n = 0;

    out[n++] = tag;
    if (len < 0x80) {
        out[n++] = (unsigned char)len;
    } else if (len <= 0xff) {
        out[n++] = 0x81;
        out[n++] = (unsigned char)len;
    } else {
        out[n++] = 0x82;
        out[n++] = (unsigned char)(len >> 8);
        out[n++] = (unsigned char)len;
    }
    return n;
}

/* SubjectAltName GeneralNames holding one URI. */
static int set_uri_san(Cert *cert, const char *uri, char *err)
{
    size_t len = strlen(uri), inner;
    unsigned char hdr[4];

    inner = der_header(hdr, ASN_CONTEXT_SPECIFIC | ASN_URI_TYPE, len) + len;
    if (der_header(hdr, 0x30, inner) + inner > sizeof(cert->altNames))
        return tg_err_set(err, TG_ETOOBIG, "SPIFFE ID of %zu bytes does not fit a CSR", len);
    cert->altNamesSz = (int)der_header(cert->altNames, 0x30, inner);
    cert->altNamesSz += (int)der_header(cert->altNames + cert->altNamesSz,
                                        ASN_CONTEXT_SPECIFIC | ASN_URI_TYPE, len);
    memcpy(cert->altNames + cert->altNamesSz, uri, len);
    cert->altNamesSz += (int)len;
    return 0;
}

int tg_identity_csr(const struct tg_identity_key *k, const char *spiffe_hint, unsigned char **out,
                    size_t *out_len, char *err)
{
    Cert *cert = calloc(1, sizeof(*cert));
    unsigned char *der = malloc(CSR_DER_CAP);
    struct tg_spiffe_id id;
    WC_RNG rng;
    ecc_key key;
    bool rng_ok = false, key_ok = false;
    word32 idx = 0;
    const char *sa;
    int ret, rc = TG_ENOMEM;

    if (cert == NULL || der == NULL)
        goto fail;
    rc = TG_ETLS;
    if ((ret = wc_InitRng(&rng)) != 0) {
        tg_err_set(err, rc, "random generator: %s", wc_GetErrorString(ret));
        goto fail;
    }
    rng_ok = true;
    if ((ret = wc_ecc_init(&key)) != 0) {
        tg_err_set(err, rc, "ecc init: %s", wc_GetErrorString(ret));
        goto fail;
    }
    key_ok = true;
    if ((ret = wc_EccPrivateKeyDecode(k->der, &idx, &key, (word32)k->der_len)) != 0) {
        tg_err_set(err, rc, "decoding our key: %s", wc_GetErrorString(ret));
        goto fail;
    }
    if ((ret = wc_InitCert(cert)) != 0) {
        tg_err_set(err, rc, "init CSR: %s", wc_GetErrorString(ret));
        goto fail;
    }
    cert->version = 0; /* PKCS#10 v1 */
    cert->sigType = CTC_SHA256wECDSA;
    strcpy(cert->subject.commonName, "tollgate");
    cert->subject.commonNameEnc = CTC_UTF8;
    if (spiffe_hint != NULL) {
        if ((rc = tg_spiffe_parse(spiffe_hint, &id, err)) < 0)
            goto fail;
        sa = strstr(id.id + id.path_off, "/sa/");
        if (sa != NULL && strlen(sa + 4) < CTC_NAME_SIZE && strchr(sa + 4, '/') == NULL)
            strcpy(cert->subject.commonName, sa + 4);
        if ((rc = set_uri_san(cert, id.id, err)) < 0)
            goto fail;
        rc = TG_ETLS;
    }
    ret = wc_MakeCertReq_ex(cert, der, CSR_DER_CAP, ECC_TYPE, &key);
    if (ret <= 0) {
        tg_err_set(err, rc, "making the CSR: %s", wc_GetErrorString(ret));
        goto fail;
    }
    ret = wc_SignCert_ex(cert->bodySz, cert->sigType, der, CSR_DER_CAP, ECC_TYPE, &key, &rng);
    if (ret <= 0) {
        tg_err_set(err, rc, "signing the CSR: %s", wc_GetErrorString(ret));
        goto fail;
    }
    *out = der;
    *out_len = (size_t)ret;
    der = NULL;
    rc = 0;
fail:
    if (key_ok)
        wc_ecc_free(&key);
    if (rng_ok)
        wc_FreeRng(&rng);
    free(cert);
    free(der);
    return rc;
}

/* The checks of an identity whose texts are in place; f names them in messages. */
static int check_identity(struct tg_identity *id, const struct tg_identity_files *f, char *err)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    int rc;

    if (cm == NULL)
        return TG_ENOMEM;
    /* our own chain before the CRLs: a CRL that revokes us must still apply to our peers
     * (and a renewal replaces our certificate) */
    if ((rc = load_bundle(id, BUNDLE_KEY, f->bundle, cm, err)) == 0 &&
        (rc = check_chain(id, f->cert, cm, err)) == 0 &&
        (rc = check_crls(id, CRL_KEY, f->crls, cm, err)) == 0 && (rc = check_key(id, f, err)) == 0)
        tg_spiffe_trust_domain(&id->leaf.id, id->trust_domain, sizeof(id->trust_domain));
    wolfSSL_CertManagerFree(cm);
    return rc;
}

static char *dup_text(const char *src, size_t len)
{
    char *p = malloc(len + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, src, len);
    p[len] = '\0';
    return p;
}

int tg_identity_from_pem(const struct tg_identity_pem *p, struct tg_identity **out, char *err)
{
    static const struct tg_identity_files names = {
        .cert = "(in memory)", .key = "(in memory)", .bundle = "(in memory)"};
    struct tg_identity *id = calloc(1, sizeof(*id));
    int rc = TG_ENOMEM;

    if (id == NULL)
        return rc;
    if (p->chain_len > MAX_PEM_FILE || p->key_len > MAX_PEM_FILE || p->bundle_len > MAX_PEM_FILE) {
        rc = tg_err_set(err, TG_ETOOBIG, "identity PEM larger than %d bytes", MAX_PEM_FILE);
        goto fail;
    }
    if ((id->chain_pem = dup_text(p->chain, p->chain_len)) == NULL)
        goto fail;
    id->chain_len = p->chain_len;
    if ((id->key_pem = dup_text(p->key, p->key_len)) == NULL)
        goto fail;
    id->key_len = p->key_len;
    if ((id->bundle_pem = dup_text(p->bundle, p->bundle_len)) == NULL)
        goto fail;
    id->bundle_len = p->bundle_len;
    if (p->n_crls > 0 && alloc_crls(id, p->n_crls) < 0)
        goto fail;
    for (size_t i = 0; i < p->n_crls; i++, id->n_crl++) {
        if (p->crls[i].len > MAX_PEM_FILE) {
            rc = tg_err_set(err, TG_ETOOBIG, "CRL %zu larger than %d bytes", i + 1, MAX_PEM_FILE);
            goto fail;
        }
        if ((id->crl[i] = dup_text(p->crls[i].data, p->crls[i].len)) == NULL)
            goto fail;
        id->crl_len[i] = p->crls[i].len;
    }
    if ((rc = check_identity(id, &names, err)) < 0)
        goto fail;
    *out = id;
    return 0;
fail:
    tg_identity_free(id);
    return rc;
}

int tg_identity_load(const struct tg_identity_files *f, struct tg_identity **out, char *err)
{
    struct tg_identity *id = calloc(1, sizeof(*id));
    int rc = TG_ENOMEM;

    if (id == NULL)
        return rc;
    if ((rc = tg_file_read("identity.cert", f->cert, MAX_PEM_FILE, 0, &id->chain_pem,
                           &id->chain_len, err)) < 0)
        goto fail;
    if ((rc = tg_file_read("identity.key", f->key, MAX_PEM_FILE, TG_FILE_SECRET, &id->key_pem,
                           &id->key_len, err)) < 0)
        goto fail;
    if ((rc = tg_file_read(BUNDLE_KEY, f->bundle, MAX_PEM_FILE, 0, &id->bundle_pem, &id->bundle_len,
                           err)) < 0)
        goto fail;
    if ((rc = read_crls(id, CRL_KEY, f->crls, err)) < 0)
        goto fail;
    if ((rc = check_identity(id, f, err)) < 0)
        goto fail;
    *out = id;
    return 0;
fail:
    tg_identity_free(id);
    return rc;
}

int tg_identity_load_trust(const char *bundle, const struct tg_strlist *crls,
                           const char *bundle_name, const char *crl_name, struct tg_identity **out,
                           char *err)
{
    struct tg_identity *id = calloc(1, sizeof(*id));
    WOLFSSL_CERT_MANAGER *cm = NULL;
    int rc = TG_ENOMEM;

    if (id == NULL)
        return rc;
    if ((rc = tg_file_read(bundle_name, bundle, MAX_PEM_FILE, 0, &id->bundle_pem, &id->bundle_len,
                           err)) < 0 ||
        (rc = read_crls(id, crl_name, crls, err)) < 0)
        goto fail;
    rc = TG_ENOMEM;
    if ((cm = wolfSSL_CertManagerNew()) == NULL)
        goto fail;
    if ((rc = load_bundle(id, bundle_name, bundle, cm, err)) < 0 ||
        (rc = check_crls(id, crl_name, crls, cm, err)) < 0)
        goto fail;
    wolfSSL_CertManagerFree(cm);
    *out = id;
    return 0;
fail:
    wolfSSL_CertManagerFree(cm);
    tg_identity_free(id);
    return rc;
}

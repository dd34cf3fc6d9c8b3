/* What certificates, requests, keys and CRLs say, as text (certview.h), read with wolfSSL's
 * decoder and its OpenSSL-compatible name printer. */
#include "tollgate/certview.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/ec.h>
#include <wolfssl/openssl/evp.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate/file.h"

#ifndef IGNORE_NAME_CONSTRAINTS
#define EMAIL_NAMES(dc) ((dc)->altEmailNames)
#else
#define EMAIL_NAMES(dc) NULL
#endif

static void name_text(WOLFSSL_X509_NAME *name, char *out)
{
    WOLFSSL_BIO *bio = wolfSSL_BIO_new(wolfSSL_BIO_s_mem());
    char *data = NULL;
    int n;

    snprintf(out, TG_NAME_TEXT, "(none)");
    if (bio == NULL || name == NULL)
        goto done;
    if (wolfSSL_X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) != WOLFSSL_SUCCESS)
        goto done;
    n = wolfSSL_BIO_get_mem_data(bio, &data);
    if (n > 0)
        snprintf(out, TG_NAME_TEXT, "%.*s", n, data);
    else
        snprintf(out, TG_NAME_TEXT, "(empty)");
done:
    wolfSSL_BIO_free(bio);
}

/* "EC P-256", "RSA 2048 bits", "Ed25519"... from a public or private key. */
static void pkey_text(WOLFSSL_EVP_PKEY *k, word32 oid, char *out)
{
    if (oid == ED25519k) {
        snprintf(out, TG_KEY_TEXT, "Ed25519");
    } else if (oid == ED448k) {
        snprintf(out, TG_KEY_TEXT, "Ed448");
    } else if (k != NULL && wolfSSL_EVP_PKEY_id(k) == EVP_PKEY_EC) {
        WOLFSSL_EC_KEY *ec = wolfSSL_EVP_PKEY_get0_EC_KEY(k);
        int nid = ec != NULL ? wolfSSL_EC_GROUP_get_curve_name(wolfSSL_EC_KEY_get0_group(ec)) : 0;
        const char *nist = nid > 0 ? wolfSSL_EC_curve_nid2nist(nid) : NULL;
        const char *sn = nid > 0 ? wolfSSL_OBJ_nid2sn(nid) : NULL;

        snprintf(out, TG_KEY_TEXT, "EC %s",
                 nist != NULL ? nist
                 : sn != NULL ? sn
                              : "(unknown curve)");
    } else if (k != NULL && wolfSSL_EVP_PKEY_id(k) == EVP_PKEY_RSA) {
        snprintf(out, TG_KEY_TEXT, "RSA %d bits", wolfSSL_EVP_PKEY_bits(k));
    } else {
        snprintf(out, TG_KEY_TEXT, "(a key type tollgate does not read)");
    }
}

void tg_cert_view_cleanup(struct tg_cert_view *view)
{
    for (size_t i = 0; i < view->n_sans; i++)
        free(view->sans[i].value);
    free(view->sans);
    view->sans = NULL;
    view->n_sans = 0;
}

/* One subjectAltName onto view->sans (room for it made), when it is of a type tollgate names
 * (URI, DNS, IP, email). */
static int copy_san(const DNS_entry *e, struct tg_cert_view *view, char *err)
{
    struct tg_san *s = &view->sans[view->n_sans];
    char ip[INET6_ADDRSTRLEN];
    const char *src = e->name; /* wolfSSL may hand an IP address over as text already */

    if (e->type == ASN_URI_TYPE)
        s->type = TG_SAN_URI;
    else if (e->type == ASN_DNS_TYPE)
        s->type = TG_SAN_DNS;
    else if (e->type == ASN_RFC822_TYPE)
        s->type = TG_SAN_EMAIL;
    else if (e->type == ASN_IP_TYPE)
        s->type = TG_SAN_IP;
    else
        return 0;
    s->len = e->len > 0 ? (size_t)e->len : 0;
    if (s->type == TG_SAN_IP &&
        ((e->len == 4 && inet_ntop(AF_INET, e->name, ip, sizeof(ip)) != NULL) ||
         (e->len == 16 && inet_ntop(AF_INET6, e->name, ip, sizeof(ip)) != NULL))) {
        src = ip;
        s->len = strlen(ip);
    }
    if ((s->value = malloc(s->len + 1)) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    memcpy(s->value, src, s->len);
    s->value[s->len] = '\0';
    view->n_sans++;
    return 0;
}

/* The subjectAltNames of names and then of emails (wolfSSL lists email addresses apart, when
 * it keeps them for name constraints) into view. */
static int copy_sans(const DNS_entry *names, const DNS_entry *emails, struct tg_cert_view *view,
                     char *err)
{
    const DNS_entry *lists[] = {names, emails};
    size_t n = 0;
    int rc = 0;

    for (size_t l = 0; l < TG_NELEM(lists); l++)
        for (const DNS_entry *e = lists[l]; e != NULL; e = e->next)
            n++;
    if (n > 0 && (view->sans = calloc(n, sizeof(*view->sans))) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    for (size_t l = 0; l < TG_NELEM(lists); l++)
        for (const DNS_entry *e = lists[l]; rc == 0 && e != NULL; e = e->next)
            rc = copy_san(e, view, err);
    if (rc < 0)
        tg_cert_view_cleanup(view);
    return rc;
}

static void eku_text(const DecodedCert *dc, struct tg_cert_view *view)
{
    static const struct {
        int bit;
        const char *name;
    } ekus[] = {
        {EXTKEYUSE_SERVER_AUTH, "serverAuth"},  {EXTKEYUSE_CLIENT_AUTH, "clientAuth"},
        {EXTKEYUSE_CODESIGN, "codeSigning"},    {EXTKEYUSE_EMAILPROT, "emailProtection"},
        {EXTKEYUSE_TIMESTAMP, "timeStamping"},  {EXTKEYUSE_OCSP_SIGN, "OCSPSigning"},
        {EXTKEYUSE_ANY, "anyExtendedKeyUsage"},
    };
    size_t at = 0;

    view->eku_set = dc->extExtKeyUsageSet;
    view->eku[0] = '\0';
    for (size_t i = 0; view->eku_set && i < TG_NELEM(ekus); i++)
        if ((dc->extExtKeyUsage & ekus[i].bit) && at < sizeof(view->eku))
            at += (size_t)snprintf(view->eku + at, sizeof(view->eku) - at, "%s%s",
                                   at > 0 ? ", " : "", ekus[i].name);
}

/* A certificate, or with csr a request, into view. */
static int view_der(const unsigned char *der, size_t len, bool csr, struct tg_cert_view *view,
                    char *err)
{
    DecodedCert dc;
    WOLFSSL_X509 *x;
    WOLFSSL_EVP_PKEY *pk;
    int ret, rc;

    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    if ((ret = wc_ParseCert(&dc, csr ? CERTREQ_TYPE : CERT_TYPE, NO_VERIFY, NULL)) != 0) {
        wc_FreeDecodedCert(&dc);
        return tg_err_set(err, TG_EINVAL, "%s", wc_GetErrorString(ret));
    }
    x = csr ? wolfSSL_X509_REQ_d2i(NULL, der, (int)len)
            : wolfSSL_X509_load_certificate_buffer(der, (int)len, WOLFSSL_FILETYPE_ASN1);
    pk = x != NULL ? wolfSSL_X509_get_pubkey(x) : NULL;
    name_text(x != NULL ? wolfSSL_X509_get_subject_name(x) : NULL, view->subject);
    pkey_text(pk, dc.keyOID, view->key);
    if (csr) {
        view->sig_ok = pk != NULL && wolfSSL_X509_REQ_verify(x, pk) == WOLFSSL_SUCCESS;
    } else {
        name_text(x != NULL ? wolfSSL_X509_get_issuer_name(x) : NULL, view->issuer);
        view->self_signed = dc.selfSigned;
        view->path_len_set = dc.pathLengthSet;
        view->path_len = dc.pathLength;
        eku_text(&dc, view);
    }
    rc = copy_sans(dc.altNames, EMAIL_NAMES(&dc), view, err);
    wolfSSL_EVP_PKEY_free(pk);
    wolfSSL_X509_free(x);
    wc_FreeDecodedCert(&dc);
    return rc;
}

int tg_cert_view(const unsigned char *der, size_t len, struct tg_cert_view *view, char *err)
{
    return view_der(der, len, false, view, err);
}

int tg_csr_view(const unsigned char *der, size_t len, struct tg_cert_view *view, char *err)
{
    return view_der(der, len, true, view, err);
}

/* wolfSSL's PEM decoder; *key_format: a private key's algorithm. */
static int block_der(const char *text, size_t len, enum tg_pem_block kind, unsigned char **der,
                     size_t *der_len, int *key_format)
{
    static const int types[] = {
        [TG_PEM_BLOCK_CERT] = CERT_TYPE,
        [TG_PEM_BLOCK_CRL] = CRL_TYPE,
        [TG_PEM_BLOCK_CSR] = CERTREQ_TYPE,
        [TG_PEM_BLOCK_PUBLIC_KEY] = PUBLICKEY_TYPE,
        [TG_PEM_BLOCK_PRIVATE_KEY] = PRIVATEKEY_TYPE,
    };
    DerBuffer *d = NULL;
    int ret = wc_PemToDer((const unsigned char *)text, (long)len, types[kind], &d, NULL, NULL,
                          key_format);

    if (ret == 0 && (*der = malloc(d->length > 0 ? d->length : 1)) == NULL)
        ret = TG_ENOMEM;
    if (ret == 0) {
        memcpy(*der, d->buffer, d->length);
        *der_len = d->length;
    }
    wc_FreeDer(&d); /* wipes a private key's bytes; wolfSSL 5.5 may leave it on bad base64 */
    return ret == 0 ? 0 : ret == TG_ENOMEM ? ret : TG_EINVAL;
}

int tg_pem_block_der(const char *text, size_t len, enum tg_pem_block kind, unsigned char **der,
                     size_t *der_len)
{
    return block_der(text, len, kind, der, der_len, NULL);
}

/* "P-256" for wolfCrypt's "SECP256R1", as openssl and the NIST name it. */
static const char *curve_text(const char *name)
{
    static const struct {
        const char *wolf, *nist;
    } curves[] = {{"SECP256R1", "P-256"}, {"SECP384R1", "P-384"}, {"SECP521R1", "P-521"}};

    for (size_t i = 0; i < TG_NELEM(curves); i++)
        if (strcmp(name, curves[i].wolf) == 0)
            return curves[i].nist;
    return name;
}

int tg_private_key_type(const char *text, size_t len, char *out)
{
    unsigned char *der = NULL;
    size_t der_len = 0;
    word32 idx = 0;
    int format = 0, rc;

    if ((rc = block_der(text, len, TG_PEM_BLOCK_PRIVATE_KEY, &der, &der_len, &format)) < 0)
        return rc;
    snprintf(out, TG_KEY_TEXT, "(a key type tollgate does not read)");
    if (format == ED25519k || format == ED448k)
        snprintf(out, TG_KEY_TEXT, format == ED25519k ? "Ed25519" : "Ed448");
    if (wc_GetPkcs8TraditionalOffset(der, &idx, (word32)der_len) < 0)
        idx = 0; /* not PKCS#8: the key itself */
    if (format == ECDSAk) {
        ecc_key k; /* wolfCrypt key objects wipe their secrets when freed */

        if (wc_ecc_init(&k) == 0) {
            if (wc_EccPrivateKeyDecode(der, &idx, &k, (word32)der_len) == 0 && k.dp != NULL)
                snprintf(out, TG_KEY_TEXT, "EC %s", curve_text(k.dp->name));
            wc_ecc_free(&k);
        }
    } else if (format == RSAk) {
        RsaKey k;

        if (wc_InitRsaKey(&k, NULL) == 0) {
            if (wc_RsaPrivateKeyDecode(der, &idx, &k, (word32)der_len) == 0)
                snprintf(out, TG_KEY_TEXT, "RSA %d bits", wc_RsaEncryptSize(&k) * 8);
            wc_FreeRsaKey(&k);
        }
    }
    tg_wipe_free(der, der_len);
    return 0;
}

void tg_public_key_type(const unsigned char *der, size_t len, char *out)
{
    const unsigned char *p = der;
    WOLFSSL_EVP_PKEY *k = wolfSSL_d2i_PUBKEY(NULL, &p, (long)len);

    pkey_text(k, k == NULL && len == 44 ? ED25519k : 0, out);
    wolfSSL_EVP_PKEY_free(k);
}

void tg_crl_issuer(const unsigned char *der, size_t len, char *out)
{
    WOLFSSL_X509_CRL *crl = wolfSSL_d2i_X509_CRL(NULL, der, (int)len);

    name_text(crl != NULL ? wolfSSL_X509_CRL_get_issuer_name(crl) : NULL, out);
    wolfSSL_X509_CRL_free(crl);
}

int tg_asn_time(const unsigned char *tlv, size_t len, int64_t *out)
{
    const byte *date;
    byte format;
    int dlen;
    struct tm tm = {0};

    if (wc_GetDateInfo(tlv, (int)len, &date, &format, &dlen) != 0 ||
        wc_GetDateAsCalendarTime(date, dlen, format, &tm) != 0)
        return TG_EINVAL;
    *out = (int64_t)timegm(&tm);
    return 0;
}

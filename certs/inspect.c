/* tollgate-certs inspect and verify: reading PEM files the way the sidecar reads them.
 *
 * inspect names what each PEM block is and what it says; for a certificate the serial,
 * SHA-256 fingerprint and SPIFFE ID come from tg_cert_inspect, the sidecar's own reading
 * (identity.h), so they print in the form its logs and rules use. A private key shows its
 * type only: its bytes are wiped once read. verify hands the chain to tg_tls_verify_chain,
 * the checks of the sidecar's handshake (tls.h), and prints the handshake's reason names. */
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

#include "certtool.h"
#include "tollgate/der.h"
#include "tollgate/file.h"
#include "tollgate/identity.h"
#include "tollgate/metrics.h"
#include "tollgate/spiffe.h"
#include "tollgate/tls.h"

#define MAX_CHAIN 32 /* certificates verify reads from the chain and intermediates files */
#define NAME_CAP 512

void certs_rfc3339(int64_t t, char *out)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, CERTS_RFC3339, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, CERTS_RFC3339, "(unix %lld)", (long long)t);
}

/* ---- PEM blocks ---- */

struct pem_block {
    char label[48];   /* what follows "-----BEGIN " */
    const char *text; /* from "-----BEGIN" to the end of "-----END ...-----" */
    size_t len;
};

/* The next block at or after *pos. 1 found, 0 none left, TG_EINVAL an unterminated one. */
static int next_block(const char *s, size_t len, size_t *pos, struct pem_block *b)
{
    static const char begin[] = "-----BEGIN ";
    const char *p, *label, *dash, *end;
    char want[80];
    size_t n;

    if (*pos >= len || (p = memmem(s + *pos, len - *pos, begin, sizeof(begin) - 1)) == NULL)
        return 0;
    label = p + sizeof(begin) - 1;
    dash = memmem(label, (size_t)(s + len - label), "-----", 5);
    if (dash == NULL || (n = (size_t)(dash - label)) == 0 || n >= sizeof(b->label) ||
        memchr(label, '\n', n) != NULL)
        return TG_EINVAL;
    memcpy(b->label, label, n);
    b->label[n] = '\0';
    snprintf(want, sizeof(want), "-----END %s-----", b->label);
    end = memmem(dash, (size_t)(s + len - dash), want, strlen(want));
    if (end == NULL)
        return TG_EINVAL;
    end += strlen(want);
    b->text = p;
    b->len = (size_t)(end - p);
    *pos = (size_t)(end - s);
    return 1;
}

/* The DER of a block (wolfSSL's PEM decoder); *der is freed with wc_FreeDer, which wipes a
 * private key's. keyFormat: the key's algorithm for PRIVATEKEY_TYPE. */
static int block_der(const struct pem_block *b, int type, DerBuffer **der, int *key_format)
{
    int ret = wc_PemToDer((const unsigned char *)b->text, (long)b->len, type, der, NULL, NULL,
                          key_format);

    if (ret != 0) {
        wc_FreeDer(der); /* wolfSSL 5.5 may leave it allocated on bad base64 */
        *der = NULL;
    }
    return ret;
}

/* ---- names, keys, SANs ---- */

static void name_text(WOLFSSL_X509_NAME *name, char *out, size_t cap)
{
    WOLFSSL_BIO *bio = wolfSSL_BIO_new(wolfSSL_BIO_s_mem());
    char *data = NULL;
    int n;

    snprintf(out, cap, "(none)");
    if (bio == NULL || name == NULL)
        goto done;
    if (wolfSSL_X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) != WOLFSSL_SUCCESS)
        goto done;
    n = wolfSSL_BIO_get_mem_data(bio, &data);
    if (n > 0)
        snprintf(out, cap, "%.*s", n, data);
    else
        snprintf(out, cap, "(empty)");
done:
    wolfSSL_BIO_free(bio);
}

/* "EC P-256", "RSA 2048 bits", "Ed25519"... from a public or private key. */
static void pkey_text(WOLFSSL_EVP_PKEY *k, word32 oid, char *out, size_t cap)
{
    if (oid == ED25519k) {
        snprintf(out, cap, "Ed25519");
    } else if (oid == ED448k) {
        snprintf(out, cap, "Ed448");
    } else if (k != NULL && wolfSSL_EVP_PKEY_id(k) == EVP_PKEY_EC) {
        WOLFSSL_EC_KEY *ec = wolfSSL_EVP_PKEY_get0_EC_KEY(k);
        int nid = ec != NULL ? wolfSSL_EC_GROUP_get_curve_name(wolfSSL_EC_KEY_get0_group(ec)) : 0;
        const char *nist = nid > 0 ? wolfSSL_EC_curve_nid2nist(nid) : NULL;
        const char *sn = nid > 0 ? wolfSSL_OBJ_nid2sn(nid) : NULL;

        snprintf(out, cap, "EC %s", nist != NULL ? nist : sn != NULL ? sn : "(unknown curve)");
    } else if (k != NULL && wolfSSL_EVP_PKEY_id(k) == EVP_PKEY_RSA) {
        snprintf(out, cap, "RSA %d bits", wolfSSL_EVP_PKEY_bits(k));
    } else {
        snprintf(out, cap, "(a key type tollgate does not read)");
    }
}

static void print_sans(const DNS_entry *names)
{
    for (const DNS_entry *e = names; e != NULL; e = e->next)
        if (e->type == ASN_URI_TYPE)
            printf("  uri: %.*s\n", e->len, e->name);
    for (const DNS_entry *e = names; e != NULL; e = e->next)
        if (e->type == ASN_DNS_TYPE)
            printf("  dns: %.*s\n", e->len, e->name);
    for (const DNS_entry *e = names; e != NULL; e = e->next) {
        char ip[INET6_ADDRSTRLEN];

        if (e->type != ASN_IP_TYPE)
            continue;
        if ((e->len == 4 && inet_ntop(AF_INET, e->name, ip, sizeof(ip)) != NULL) ||
            (e->len == 16 && inet_ntop(AF_INET6, e->name, ip, sizeof(ip)) != NULL))
            printf("  ip: %s\n", ip);
        else /* wolfSSL may hand it over as text already */
            printf("  ip: %.*s\n", e->len, e->name);
    }
    for (const DNS_entry *e = names; e != NULL; e = e->next)
        if (e->type == ASN_RFC822_TYPE)
            printf("  email: %.*s\n", e->len, e->name);
}

/* The SPIFFE ID line as the sidecar judges a peer's URI SANs: exactly one, and valid. */
static void print_spiffe(const DNS_entry *names)
{
    const DNS_entry *uri = NULL;
    struct tg_spiffe_id id;
    char why[TG_ERRLEN];
    int n = 0;

    for (const DNS_entry *e = names; e != NULL; e = e->next)
        if (e->type == ASN_URI_TYPE)
            uri = e, n++;
    if (n != 1)
        printf("  spiffe_id: none: %d URI SANs (want exactly one SPIFFE ID)\n", n);
    else if (tg_spiffe_parse_n(uri->name, (size_t)uri->len, &id, why) < 0)
        printf("  spiffe_id: none: %s\n", why);
    else
        printf("  spiffe_id: %s\n", id.id);
}

static void print_eku(const DecodedCert *dc)
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
    const char *sep = "";

    if (!dc->extExtKeyUsageSet) {
        printf("  ext_key_usage: (none: any)\n");
        return;
    }
    printf("  ext_key_usage: ");
    for (size_t i = 0; i < TG_NELEM(ekus); i++) {
        if (dc->extExtKeyUsage & ekus[i].bit) {
            printf("%s%s", sep, ekus[i].name);
            sep = ", ";
        }
    }
    printf("%s\n", sep[0] == '\0' ? "(none known)" : "");
}

/* ---- one certificate ---- */

static int print_cert(const unsigned char *der, size_t len, int index, char *err)
{
    struct tg_cert_info info;
    DecodedCert dc;
    WOLFSSL_X509 *x = NULL;
    WOLFSSL_EVP_PKEY *pk = NULL;
    char name[NAME_CAP], nb[CERTS_RFC3339], na[CERTS_RFC3339], key[64];
    int64_t now = tg_identity_now();
    char why[TG_ERRLEN];
    int ret, rc;

    if ((rc = tg_cert_inspect(der, len, &info, why)) < 0)
        return tg_err_set(err, TG_EINVAL, "certificate %d: %s", index, why);
    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    if ((ret = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL)) != 0) {
        wc_FreeDecodedCert(&dc);
        return tg_err_set(err, TG_EINVAL, "certificate %d: %s", index, wc_GetErrorString(ret));
    }
    x = wolfSSL_X509_load_certificate_buffer(der, (int)len, WOLFSSL_FILETYPE_ASN1);
    printf("certificate %d\n", index);
    name_text(x != NULL ? wolfSSL_X509_get_subject_name(x) : NULL, name, sizeof(name));
    printf("  subject: %s\n", name);
    name_text(x != NULL ? wolfSSL_X509_get_issuer_name(x) : NULL, name, sizeof(name));
    printf("  issuer: %s\n", name);
    printf("  serial: %s\n", info.serial);
    printf("  sha256: %s\n", info.sha256);
    certs_rfc3339(info.not_before, nb);
    certs_rfc3339(info.not_after, na);
    printf("  not_before: %s\n", nb);
    printf("  not_after: %s\n", na);
    printf("  validity: %s\n", now < info.not_before   ? "not yet valid"
                               : now >= info.not_after ? "expired"
                                                       : "valid now");
    if (info.is_ca && dc.pathLengthSet)
        printf("  kind: CA%s, path length %d\n", dc.selfSigned ? " (self-signed: a root)" : "",
               dc.pathLength);
    else if (info.is_ca)
        printf("  kind: CA%s\n", dc.selfSigned ? " (self-signed: a root)" : "");
    else
        printf("  kind: leaf%s\n", dc.selfSigned ? " (self-signed)" : "");
    pk = x != NULL ? wolfSSL_X509_get_pubkey(x) : NULL;
    pkey_text(pk, dc.keyOID, key, sizeof(key));
    printf("  key: %s\n", key);
    print_eku(&dc);
    print_sans(dc.altNames);
    printf("  spiffe_id: %s%s\n",
           info.id_ok ? "" : "none: ", info.id_ok ? info.id.id : info.id_err);
    wolfSSL_EVP_PKEY_free(pk);
    wolfSSL_X509_free(x);
    wc_FreeDecodedCert(&dc);
    return 0;
}

/* ---- CRLs: read with a small DER walk (wolfSSL 5.5 lists no revoked entries) ---- */

/* One TLV at *p (before end): tag, content and its length; *p moves past it. 0 or -1. */
static int tlv(const unsigned char **p, const unsigned char *end, int *tag,
               const unsigned char **content, size_t *clen)
{
    size_t off = 0;
    unsigned char t;

    if (tg_der_header(*p, (size_t)(end - *p), &off, &t, clen) < 0)
        return -1;
    *tag = t;
    *content = *p + off;
    *p = *content + *clen;
    return 0;
}

/* A Time TLV starting at t (whole TLV, len bytes) as RFC 3339. */
static int time_text(const unsigned char *t, size_t len, char *out)
{
    const byte *date;
    byte format;
    int dlen;
    struct tm tm = {0};

    if (wc_GetDateInfo(t, (int)len, &date, &format, &dlen) != 0 ||
        wc_GetDateAsCalendarTime(date, dlen, format, &tm) != 0)
        return -1;
    certs_rfc3339((int64_t)timegm(&tm), out);
    return 0;
}

static void serial_hex(const unsigned char *b, size_t n, char *out, size_t cap)
{
    size_t skip = 0, at = 0;

    while (skip + 1 < n && b[skip] == 0)
        skip++;
    for (size_t i = skip; i < n && at + 3 <= cap; i++)
        at += (size_t)snprintf(out + at, cap - at, "%02x", b[i]);
}

static int print_crl(const unsigned char *der, size_t len, int index, char *err)
{
    const unsigned char *p = der, *end = der + len, *c, *tbs_end, *t0;
    size_t clen;
    int tag;
    char when[CERTS_RFC3339], name[NAME_CAP];
    WOLFSSL_X509_CRL *crl;
    size_t n_revoked = 0;

    /* CertificateList ::= SEQUENCE { tbsCertList SEQUENCE { version INTEGER OPTIONAL,
     * signature, issuer, thisUpdate, nextUpdate OPTIONAL, revokedCertificates OPTIONAL,
     * [0] crlExtensions OPTIONAL }, ... } */
    if (tlv(&p, end, &tag, &c, &clen) < 0 || tag != 0x30)
        return tg_err_set(err, TG_EINVAL, "CRL %d does not parse", index);
    p = c;
    end = c + clen;
    if (tlv(&p, end, &tag, &c, &clen) < 0 || tag != 0x30)
        return tg_err_set(err, TG_EINVAL, "CRL %d: no tbsCertList", index);
    p = c;
    tbs_end = c + clen;
    crl = wolfSSL_d2i_X509_CRL(NULL, der, (int)len);
    name_text(crl != NULL ? wolfSSL_X509_CRL_get_issuer_name(crl) : NULL, name, sizeof(name));
    wolfSSL_X509_CRL_free(crl);
    printf("crl %d\n", index);
    printf("  issuer: %s\n", name);
    if (tlv(&p, tbs_end, &tag, &c, &clen) == 0 && tag == 0x02 && /* version */
        tlv(&p, tbs_end, &tag, &c, &clen) < 0)
        return tg_err_set(err, TG_EINVAL, "CRL %d does not parse", index);
    if (tlv(&p, tbs_end, &tag, &c, &clen) < 0) /* issuer */
        return tg_err_set(err, TG_EINVAL, "CRL %d does not parse", index);
    t0 = p;
    if (tlv(&p, tbs_end, &tag, &c, &clen) < 0 || time_text(t0, (size_t)(p - t0), when) < 0)
        return tg_err_set(err, TG_EINVAL, "CRL %d: thisUpdate does not parse", index);
    printf("  this_update: %s\n", when);
    t0 = p;
    if (tlv(&p, tbs_end, &tag, &c, &clen) == 0 && (tag == 0x17 || tag == 0x18)) {
        /* nextUpdate; then what follows it */
        if (time_text(t0, (size_t)(p - t0), when) < 0)
            return tg_err_set(err, TG_EINVAL, "CRL %d: nextUpdate does not parse", index);
        printf("  next_update: %s\n", when); /* stale or not: verify judges, with the clock */
        if (tlv(&p, tbs_end, &tag, &c, &clen) < 0)
            tag = -1;
    } else {
        printf("  next_update: (none)\n");
    }
    if (tag == 0x30) { /* revokedCertificates */
        const unsigned char *r = c, *r_end = c + clen;

        while (r < r_end) {
            const unsigned char *e, *s, *d0, *q, *q_end;
            size_t elen, slen;
            int etag, stag;
            char serial[2 * 64 + 1] = "";

            if (tlv(&r, r_end, &etag, &e, &elen) < 0 || etag != 0x30)
                return tg_err_set(err, TG_EINVAL, "CRL %d: a revoked entry does not parse", index);
            q = e;
            q_end = e + elen;
            if (tlv(&q, q_end, &stag, &s, &slen) < 0 || stag != 0x02)
                return tg_err_set(err, TG_EINVAL, "CRL %d: a revoked serial does not parse", index);
            serial_hex(s, slen, serial, sizeof(serial));
            d0 = q;
            if (tlv(&q, q_end, &stag, &s, &slen) < 0 || time_text(d0, (size_t)(q - d0), when) < 0)
                snprintf(when, sizeof(when), "(date unreadable)");
            printf("  revoked: %s since %s\n", serial, when);
            n_revoked++;
        }
    }
    if (n_revoked == 0)
        printf("  revoked: none\n");
    return 0;
}

/* ---- keys and requests ---- */

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

/* The type of the private key in der (traditional or PKCS#8; format: its algorithm, from
 * the PEM decoder), read with wolfCrypt, whose key objects wipe their secrets when freed. */
static void private_key_text(byte *der, word32 len, int format, char *out, size_t cap)
{
    word32 idx = 0;

    snprintf(out, cap, "(a key type tollgate does not read)");
    if (format == ED25519k || format == ED448k) {
        snprintf(out, cap, format == ED25519k ? "Ed25519" : "Ed448");
        return;
    }
    if (wc_GetPkcs8TraditionalOffset(der, &idx, len) < 0)
        idx = 0; /* not PKCS#8: the key itself */
    if (format == ECDSAk) {
        ecc_key k;

        if (wc_ecc_init(&k) != 0)
            return;
        if (wc_EccPrivateKeyDecode(der, &idx, &k, len) == 0 && k.dp != NULL)
            snprintf(out, cap, "EC %s", curve_text(k.dp->name));
        wc_ecc_free(&k);
    } else if (format == RSAk) {
        RsaKey k;

        if (wc_InitRsaKey(&k, NULL) != 0)
            return;
        if (wc_RsaPrivateKeyDecode(der, &idx, &k, len) == 0)
            snprintf(out, cap, "RSA %d bits", wc_RsaEncryptSize(&k) * 8);
        wc_FreeRsaKey(&k);
    }
}

static int print_private_key(const struct pem_block *b, int index, char *err)
{
    DerBuffer *der = NULL;
    int format = 0;
    char key[64];

    if (strcmp(b->label, "ENCRYPTED PRIVATE KEY") == 0) {
        printf("private key %d\n  type: encrypted PKCS#8 (its type is inside the encryption)\n",
               index);
        return 0;
    }
    if (block_der(b, PRIVATEKEY_TYPE, &der, &format) != 0)
        return tg_err_set(err, TG_EINVAL, "private key %d does not parse", index);
    private_key_text(der->buffer, der->length, format, key, sizeof(key));
    wc_FreeDer(&der); /* wipes the key's bytes */
    printf("private key %d\n  type: %s (the key itself is not shown)\n", index, key);
    return 0;
}

static int print_public_key(const struct pem_block *b, int index, char *err)
{
    DerBuffer *der = NULL;
    WOLFSSL_EVP_PKEY *k;
    const unsigned char *p;
    char key[64];

    if (block_der(b, PUBLICKEY_TYPE, &der, NULL) != 0)
        return tg_err_set(err, TG_EINVAL, "public key %d does not parse", index);
    p = der->buffer;
    k = wolfSSL_d2i_PUBKEY(NULL, &p, (long)der->length);
    pkey_text(k, k == NULL && der->length == 44 ? ED25519k : 0, key, sizeof(key));
    wolfSSL_EVP_PKEY_free(k);
    wc_FreeDer(&der);
    printf("public key %d\n  type: %s\n", index, key);
    return 0;
}

static int print_csr(const struct pem_block *b, int index, char *err)
{
    DerBuffer *der = NULL;
    DecodedCert dc;
    WOLFSSL_X509 *req = NULL;
    WOLFSSL_EVP_PKEY *pk = NULL;
    char name[NAME_CAP], key[64];
    int ret, rc = 0;

    if (block_der(b, CERTREQ_TYPE, &der, NULL) != 0)
        return tg_err_set(err, TG_EINVAL, "certificate request %d does not parse", index);
    wc_InitDecodedCert(&dc, der->buffer, der->length, NULL);
    if ((ret = wc_ParseCert(&dc, CERTREQ_TYPE, NO_VERIFY, NULL)) != 0) {
        rc =
            tg_err_set(err, TG_EINVAL, "certificate request %d: %s", index, wc_GetErrorString(ret));
        goto done;
    }
    req = wolfSSL_X509_REQ_d2i(NULL, der->buffer, (int)der->length);
    pk = req != NULL ? wolfSSL_X509_get_pubkey(req) : NULL;
    printf("certificate request %d\n", index);
    name_text(req != NULL ? wolfSSL_X509_get_subject_name(req) : NULL, name, sizeof(name));
    printf("  subject: %s\n", name);
    pkey_text(pk, dc.keyOID, key, sizeof(key));
    printf("  key: %s\n", key);
    printf("  signature: %s\n", pk != NULL && wolfSSL_X509_REQ_verify(req, pk) == WOLFSSL_SUCCESS
                                    ? "valid"
                                    : "NOT valid");
    print_sans(dc.altNames);
    print_spiffe(dc.altNames);
done:
    wolfSSL_EVP_PKEY_free(pk);
    wolfSSL_X509_free(req);
    wc_FreeDecodedCert(&dc);
    wc_FreeDer(&der);
    return rc;
}

/* ---- inspect ---- */

static int print_block(const struct pem_block *b, int *counts, char *err)
{
    DerBuffer *der = NULL;
    int rc;

    if (strcmp(b->label, "CERTIFICATE") == 0 || strcmp(b->label, "TRUSTED CERTIFICATE") == 0) {
        if (block_der(b, CERT_TYPE, &der, NULL) != 0)
            return tg_err_set(err, TG_EINVAL, "certificate %d: bad PEM", counts[0] + 1);
        rc = print_cert(der->buffer, der->length, ++counts[0], err);
        wc_FreeDer(&der);
        return rc;
    }
    if (strcmp(b->label, "X509 CRL") == 0) {
        if (block_der(b, CRL_TYPE, &der, NULL) != 0)
            return tg_err_set(err, TG_EINVAL, "CRL %d: bad PEM", counts[1] + 1);
        rc = print_crl(der->buffer, der->length, ++counts[1], err);
        wc_FreeDer(&der);
        return rc;
    }
    if (strstr(b->label, "PRIVATE KEY") != NULL)
        return print_private_key(b, ++counts[2], err);
    if (strcmp(b->label, "PUBLIC KEY") == 0)
        return print_public_key(b, ++counts[3], err);
    if (strcmp(b->label, "CERTIFICATE REQUEST") == 0 ||
        strcmp(b->label, "NEW CERTIFICATE REQUEST") == 0)
        return print_csr(b, ++counts[4], err);
    printf("%s\n  (a kind of PEM block tollgate does not read)\n", b->label);
    return 0;
}

int certs_inspect(const char *path, char *err)
{
    char *file = NULL;
    size_t len = 0, pos = 0;
    struct pem_block b;
    int counts[5] = {0};
    int found, blocks = 0, rc;

    if ((rc = tg_file_read(NULL, path, TG_FILE_MAX, TG_FILE_SECRET, &file, &len, err)) < 0)
        return rc;
    while ((found = next_block(file, len, &pos, &b)) == 1) {
        char why[TG_ERRLEN];

        blocks++;
        if (print_block(&b, counts, why) < 0) {
            rc = tg_err_set(err, TG_EINVAL, "%s: %s", path, why);
            goto done;
        }
    }
    if (found < 0) {
        rc = tg_err_set(err, TG_EINVAL, "%s: a PEM block without its END line", path);
        goto done;
    }
    if (blocks == 0 && len > 0 && (unsigned char)file[0] == 0x30) { /* one DER certificate */
        char why[TG_ERRLEN];

        if (print_cert((const unsigned char *)file, len, 1, why) < 0) {
            rc = tg_err_set(err, TG_EINVAL, "%s: no PEM, and not a DER certificate: %s", path, why);
            goto done;
        }
        blocks = 1;
    }
    if (blocks == 0)
        rc = tg_err_set(err, TG_EINVAL, "%s: no PEM block (-----BEGIN ...) in it", path);
done:
    explicit_bzero(file, len); /* it may hold a private key */
    free(file);
    return rc;
}

/* ---- verify ---- */

struct chain {
    unsigned char *der[MAX_CHAIN];
    size_t len[MAX_CHAIN];
    size_t n;
};

/* Appends the certificates of path (PEM; or one DER certificate) to c. Other blocks (a key
 * kept beside its certificate) are skipped. what names the file in messages. */
static int read_certs(const char *what, const char *path, struct chain *c, char *err)
{
    char *file = NULL;
    size_t len = 0, pos = 0, before = c->n;
    struct pem_block b;
    DerBuffer *der = NULL;
    int found, rc;

    if ((rc = tg_file_read(NULL, path, TG_FILE_MAX, TG_FILE_SECRET, &file, &len, err)) < 0)
        return rc;
    while ((found = next_block(file, len, &pos, &b)) == 1) {
        if (strcmp(b.label, "CERTIFICATE") != 0)
            continue;
        if (c->n == MAX_CHAIN) {
            rc = tg_err_set(err, TG_EINVAL, "%s: %s: more than %d certificates", what, path,
                            MAX_CHAIN);
            goto done;
        }
        if (block_der(&b, CERT_TYPE, &der, NULL) != 0 ||
            (c->der[c->n] = malloc(der->length)) == NULL) {
            rc = tg_err_set(err, TG_EINVAL, "%s: %s: certificate %zu: bad PEM", what, path,
                            c->n - before + 1);
            goto done;
        }
        memcpy(c->der[c->n], der->buffer, der->length);
        c->len[c->n++] = der->length;
        wc_FreeDer(&der);
    }
    if (found < 0) {
        rc = tg_err_set(err, TG_EINVAL, "%s: %s: a PEM block without its END line", what, path);
        goto done;
    }
    if (c->n == before && len > 0 && (unsigned char)file[0] == 0x30 && c->n < MAX_CHAIN &&
        (c->der[c->n] = malloc(len)) != NULL) { /* one DER certificate */
        memcpy(c->der[c->n], file, len);
        c->len[c->n++] = len;
    }
    if (c->n == before)
        rc = tg_err_set(err, TG_EINVAL, "%s: %s: no certificate in it", what, path);
done:
    wc_FreeDer(&der);
    explicit_bzero(file, len);
    free(file);
    return rc;
}

int certs_verify(const struct certs_verify *v, char *err)
{
    static const char *const sides[] = {"client", "server"};
    struct tg_identity *trust = NULL;
    struct chain c = {.n = 0};
    struct tg_tls_chain tc;
    struct tg_tls_settings st = {.max_chain_depth = v->max_chain_depth};
    struct tg_cert_info leaf;
    enum tg_hs_fail fail;
    char why[TG_ERRLEN], na[CERTS_RFC3339];
    const char *as = v->peer != NULL ? v->peer : "client and a server";
    int rc;

    if ((rc = read_certs("CHAIN", v->chain, &c, err)) < 0 ||
        (v->intermediates != NULL &&
         (rc = read_certs("--intermediates", v->intermediates, &c, err)) < 0))
        goto done;
    if ((rc = tg_identity_load_trust(v->bundle, &v->crls, "--bundle", "--crl", &trust, err)) < 0)
        goto done;
    tc.der = (const unsigned char *const *)c.der;
    tc.len = c.len;
    tc.n = c.n;
    for (size_t i = 0; i < TG_NELEM(sides); i++) {
        if (v->peer != NULL && strcmp(v->peer, sides[i]) != 0)
            continue;
        st.server = i == 0; /* a client's chain is what a server verifies */
        rc = tg_tls_verify_chain(trust, &st, &v->domains, &tc, &leaf, &fail, why);
        if (rc == TG_EPEER) {
            printf("%s: refused: %s: %s\n", v->chain, tg_hs_fail_name(fail), why);
            rc = 1;
            goto done;
        }
        if (rc < 0) {
            tg_err_set(err, rc, "%s", why);
            goto done;
        }
    }
    certs_rfc3339(leaf.not_after, na);
    printf("%s: ok: %s as a %s (serial %s, sha256 %s, not_after %s)%s\n", v->chain, leaf.id.id, as,
           leaf.serial, leaf.sha256, na,
           v->domains.n == 0 ? "; trust domain not checked (no --trust-domain)" : "");
    rc = 0;
done:
    for (size_t i = 0; i < c.n; i++)
        free(c.der[i]);
    tg_identity_free(trust);
    return rc;
}

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

#include "tollgate/der.h"
#include "tollgate/file.h"
#include "tollgate/revocation.h"

#define MAX_PEM_FILE TG_FILE_MAX
#define CRL_KEY "identity.crl" /* the config key, as messages name the files */

int64_t tg_identity_now(void)
{
    return (int64_t)time(NULL);
}

const char *tg_identity_root_domain(const struct tg_identity *id, size_t i)
{
    for (size_t d = 0; d < id->n_domains; d++)
        if (i >= id->domains[d].first && i < id->domains[d].first + id->domains[d].n)
            return id->domains[d].name;
    return id->trust_domain;
}

size_t tg_identity_expiries(const struct tg_identity *id, struct tg_cert_expiry *out)
{
    out[0] =
        (struct tg_cert_expiry){"identity", id->trust_domain, id->leaf.serial, id->leaf.not_after};
    for (size_t i = 0; i < id->n_roots; i++)
        out[1 + i] = (struct tg_cert_expiry){"root", tg_identity_root_domain(id, i),
                                             id->roots[i].serial, id->roots[i].not_after};
    return 1 + id->n_roots;
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
    if (dc.serialSz > 0 &&
        tg_serial_hex(dc.serial, (size_t)dc.serialSz, out->serial, sizeof(out->serial)) < 0) {
        wc_FreeDecodedCert(&dc);
        return tg_err_set(err, TG_EPEER, "certificate serial of %d bytes", dc.serialSz);
    }
    if (wc_Sha256Hash(der, (word32)len, digest) == 0)
        tg_hex(digest, sizeof(digest), out->sha256);
    if (asn_time(dc.beforeDate, dc.beforeDateLen, &out->not_before) != 0 ||
        asn_time(dc.afterDate, dc.afterDateLen, &out->not_after) != 0) {
        wc_FreeDecodedCert(&dc);
        return tg_err_set(err, TG_EPEER, "certificate validity dates do not parse");
    }
    if (dc.subjectCN != NULL && dc.subjectCNLen > 0)
        snprintf(out->cn, sizeof(out->cn), "%.*s", dc.subjectCNLen < 64 ? (int)dc.subjectCNLen : 64,
                 dc.subjectCN);
    out->is_ca = dc.isCA;
    out->ku_set = dc.extKeyUsageSet;
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
    free(id->domains);
    for (size_t i = 0; i < id->n_crl; i++)
        free(id->crl[i]);
    free(id->crl);
    free(id->crl_len);
    free(id->crl_pem);
    free(id->inter_pem);
    tg_revocations_free(id->rev);
    free(id);
}

/* Appends len bytes of text and a newline to the identity's bundle. */
static int append_bundle(struct tg_identity *id, const char *text, size_t len)
{
    char *grown = realloc(id->bundle_pem, id->bundle_len + len + 2);

    if (grown == NULL)
        return TG_ENOMEM;
    id->bundle_pem = grown;
    memcpy(id->bundle_pem + id->bundle_len, text, len);
    id->bundle_len += len;
    id->bundle_pem[id->bundle_len++] = '\n';
    id->bundle_pem[id->bundle_len] = '\0';
    return 0;
}

/* 0 when name is a trust domain name: what spiffe.c takes after "spiffe://", no path. */
static int check_domain_name(const char *name, char *err)
{
    char buf[TG_TRUST_DOMAIN_MAX + 10];
    struct tg_spiffe_id sid;
    size_t n = strlen(name);

    if (n == 0)
        return tg_err_set(err, TG_EINVAL, "a trust domain without a name");
    if (n > TG_TRUST_DOMAIN_MAX)
        return tg_err_set(err, TG_EINVAL, "trust domain \"%.40s...\" longer than %d bytes", name,
                          TG_TRUST_DOMAIN_MAX);
    snprintf(buf, sizeof(buf), "spiffe://%s", name);
    if (tg_spiffe_parse(buf, &sid, NULL) < 0 || sid.path_off != sid.len)
        return tg_err_set(err, TG_EINVAL,
                          "\"%.60s\" is not a trust domain name (want [a-z0-9.-_]+)", name);
    return 0;
}

/* The name of the trust domain whose roots hold root i of id. */
static const char *domain_of(const struct tg_identity *id, size_t i)
{
    for (size_t d = 0; d < id->n_domains; d++)
        if (i >= id->domains[d].first && i < id->domains[d].first + id->domains[d].n)
            return id->domains[d].name;
    return "?";
}

/* One root of domain name (certificate k of its bundle, DER): a CA, not a root of an earlier
 * domain of id, not carrying a SPIFFE ID of another domain, usable as a root in a store of its
 * domain alone (dcm) and in cm (NULL: none). 0, or TG_EINVAL with err. */
static int check_root(const struct tg_identity *id, const char *name, size_t k,
                      const unsigned char *der, size_t der_len, WOLFSSL_CERT_MANAGER *dcm,
                      WOLFSSL_CERT_MANAGER *cm, struct tg_cert_info *info, char *err)
{
    if (tg_cert_inspect(der, der_len, info, err) < 0)
        return TG_EINVAL;
    if (!info->is_ca)
        return tg_err_set(err, TG_EINVAL, "certificate %zu (serial %s) is not a CA", k,
                          info->serial);
    for (size_t i = 0; i < id->n_roots; i++)
        if (strcmp(id->roots[i].sha256, info->sha256) == 0 && strcmp(domain_of(id, i), name) != 0)
            return tg_err_set(err, TG_EINVAL,
                              "certificate %zu (serial %s) is a root of %.60s too: a root "
                              "vouches for one trust domain only",
                              k, info->serial, domain_of(id, i));
    if (info->id_ok && name[0] != '\0' && !tg_spiffe_in_domain(&info->id, name))
        return tg_err_set(err, TG_EINVAL, "certificate %zu (serial %s) is a CA of %.80s, not of %s",
                          k, info->serial, info->id.id, name);
    /* alone: tls.c keeps each domain's roots in a store of their own */
    if (wolfSSL_CertManagerLoadCABuffer(dcm, der, (long)der_len, WOLFSSL_FILETYPE_ASN1) != 1 ||
        (cm != NULL &&
         wolfSSL_CertManagerLoadCABuffer(cm, der, (long)der_len, WOLFSSL_FILETYPE_ASN1) != 1))
        return tg_err_set(err, TG_EINVAL,
                          "certificate %zu (serial %s) is not usable as a root (a CA signed by "
                          "no root before it in this bundle)",
                          k, info->serial);
    return 0;
}

/* Adds the trust domain name with its roots (PEM, len bytes) to id (see check_root), each
 * loaded into cm too (NULL: none). what names the roots in err ("identity.trust_bundle:
 * FILE"). */
static int load_domain(struct tg_identity *id, const char *name, const char *what, const char *pem,
                       size_t len, WOLFSSL_CERT_MANAGER *cm, char *err)
{
    struct tg_trust_roots *grown = realloc(id->domains, (id->n_domains + 1) * sizeof(*grown));
    WOLFSSL_CERT_MANAGER *dcm = NULL;
    size_t pos = 0, first = id->n_roots;
    unsigned char *der;
    size_t der_len;
    char why[TG_ERRLEN];
    int found, rc = TG_ENOMEM;

    if (grown == NULL)
        return rc;
    id->domains = grown;
    grown = &id->domains[id->n_domains];
    memset(grown, 0, sizeof(*grown));
    snprintf(grown->name, sizeof(grown->name), "%s", name);
    grown->off = id->bundle_len;
    grown->len = len;
    grown->first = first;
    if ((dcm = wolfSSL_CertManagerNew()) == NULL || (rc = append_bundle(id, pem, len)) < 0)
        goto fail;
    id->n_domains++;
    while ((found = next_cert(pem, len, &pos, &der, &der_len)) == 1) {
        struct tg_cert_info info, *more;

        rc = check_root(id, name, id->n_roots - first + 1, der, der_len, dcm, cm, &info, why);
        free(der);
        if (rc < 0) {
            rc = tg_err_set(err, rc, "%s: %s", what, why);
            goto fail;
        }
        rc = TG_ENOMEM;
        if ((more = realloc(id->roots, (id->n_roots + 1) * sizeof(*more))) == NULL)
            goto fail;
        id->roots = more;
        id->roots[id->n_roots++] = info;
        id->domains[id->n_domains - 1].n++;
    }
    rc = 0;
    if (found < 0)
        rc = tg_err_set(err, TG_EINVAL, "%s: malformed PEM", what);
    else if (id->n_roots == first)
        rc = tg_err_set(err, TG_EINVAL, "%s: no certificate", what);
fail:
    wolfSSL_CertManagerFree(dcm);
    return rc;
}

/* A federated domain: a valid name, not ours nor one already loaded, and its roots. */
static int load_federated(struct tg_identity *id, const char *name, const char *what,
                          const char *pem, size_t len, WOLFSSL_CERT_MANAGER *cm, char *err)
{
    char why[TG_ERRLEN];

    if (check_domain_name(name, why) < 0)
        return tg_err_set(err, TG_EINVAL, "%s: %s", what, why);
    for (size_t i = 0; i < id->n_domains; i++) {
        if (strcmp(id->domains[i].name, name) != 0)
            continue;
        if (i == 0)
            return tg_err_set(err, TG_EINVAL,
                              "%s: %s is our own trust domain (our certificate's): its roots are "
                              "ours, not a federated domain's",
                              what, name);
        return tg_err_set(err, TG_EINVAL, "%s: trust domain %s named twice", what, name);
    }
    return load_domain(id, name, what, pem, len, cm, err);
}

int tg_identity_check_roots(const struct tg_identity_roots *d, size_t n, char *err)
{
    struct tg_identity id;
    char what[96], why[TG_ERRLEN];
    int rc = 0;

    memset(&id, 0, sizeof(id));
    if (n == 0)
        rc = tg_err_set(err, TG_EINVAL, "trust bundle: no trust domain");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = d[i].domain != NULL ? d[i].domain : "";

        snprintf(what, sizeof(what), "trust bundle of %.60s", name[0] ? name : "(no name)");
        if (check_domain_name(name, why) < 0) {
            rc = tg_err_set(err, TG_EINVAL, "%s: %s", what, why);
            break;
        }
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (strcmp(id.domains[j].name, name) == 0)
                rc = tg_err_set(err, TG_EINVAL, "%s: trust domain named twice", what);
        if (rc == 0)
            rc = load_domain(&id, name, what, d[i].pem, d[i].len, NULL, err);
    }
    free(id.bundle_pem);
    free(id.roots);
    free(id.domains);
    return rc;
}

/* Checks the chain: leaf first, then intermediates, leading to a root already in cm (our
 * trust domain's roots, and nothing else yet). */
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
            rc = tg_err_set(err, TG_EINVAL,
                            "intermediate %zu does not chain to our trust domain's roots", i);
    }
    if (rc == 0) {
        int v =
            wolfSSL_CertManagerVerifyBuffer(cm, der[0], (long)der_len[0], WOLFSSL_FILETYPE_ASN1);
        if (v != 1)
            rc = tg_err_set(err, TG_EINVAL, "leaf does not chain to our trust domain's roots: %s",
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
    size_t off = 0, len;
    unsigned char t;

    if (tg_der_header(*p, (size_t)(end - *p), &off, &t, &len) < 0)
        return -1;
    *tag = t;
    *p += enter ? off : off + len;
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

/* One CRL as DER into *der (*owned: malloc'd by wolfSSL, free with wc_FreeDer). */
static int crl_der(const struct tg_identity *id, size_t i, DerBuffer **owned,
                   const unsigned char **der, size_t *len)
{
    *owned = NULL;
    *der = (const unsigned char *)id->crl[i];
    *len = id->crl_len[i];
    if (!id->crl_pem[i])
        return 0;
    if (wc_PemToDer(*der, (long)*len, CRL_TYPE, owned, NULL, NULL, NULL) != 0) {
        wc_FreeDer(owned); /* wolfSSL 5.5 leaves it allocated when the base64 is bad */
        return -1;
    }
    *der = (*owned)->buffer;
    *len = (*owned)->length;
    return 0;
}

#define MAX_INTERMEDIATES 64

/* identity.intermediates (path names it in err): each certificate a CA that chains to the
 * roots of one trust domain (with the intermediates before it), appended to c as of that
 * domain. The roots and our chain's intermediates are c[0 .. *n). */
static int add_intermediates(const struct tg_identity *id, const char *path, struct tg_rev_ca *c,
                             size_t *n, char *err)
{
    WOLFSSL_CERT_MANAGER **cms = calloc(id->n_domains + 1, sizeof(*cms));
    size_t pos = 0, k = 0, known = *n;
    unsigned char *der;
    size_t der_len;
    int found, rc = TG_ENOMEM;

    if (cms == NULL)
        return rc;
    for (size_t d = 0; d < id->n_domains; d++)
        if ((cms[d] = wolfSSL_CertManagerNew()) == NULL)
            goto done;
    for (size_t i = 0; i < known; i++)
        (void)wolfSSL_CertManagerLoadCABuffer(cms[c[i].domain], c[i].der, (long)c[i].len,
                                              WOLFSSL_FILETYPE_ASN1);
    rc = 0;
    while (rc == 0 &&
           (found = next_cert(id->inter_pem, id->inter_len, &pos, &der, &der_len)) == 1) {
        struct tg_cert_info info;
        size_t d = id->n_domains;

        k++;
        if (k > MAX_INTERMEDIATES)
            rc = tg_err_set(err, TG_EINVAL, "identity.intermediates: %s: more than %d certificates",
                            path, MAX_INTERMEDIATES);
        else if (tg_cert_inspect(der, der_len, &info, NULL) < 0 || !info.is_ca)
            rc = tg_err_set(err, TG_EINVAL,
                            "identity.intermediates: %s: certificate %zu is not a CA certificate",
                            path, k);
        for (d = 0; rc == 0 && d < id->n_domains; d++)
            if (wolfSSL_CertManagerVerifyBuffer(cms[d], der, (long)der_len,
                                                WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS)
                break;
        if (rc == 0 && d == id->n_domains)
            rc = tg_err_set(err, TG_EINVAL,
                            "identity.intermediates: %s: certificate %zu (CN %s) does not chain to "
                            "a root of any trust bundle (give the root side first)",
                            path, k, info.cn);
        if (rc == 0 && wolfSSL_CertManagerLoadCABuffer(cms[d], der, (long)der_len,
                                                       WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS)
            rc = TG_ENOMEM;
        if (rc < 0) {
            free(der);
            break;
        }
        c[(*n)++] = (struct tg_rev_ca){der, der_len, d, false};
    }
    if (rc == 0 && found < 0)
        rc = tg_err_set(err, TG_EINVAL, "identity.intermediates: %s: malformed PEM", path);
    if (rc == 0 && k == 0)
        rc = tg_err_set(err, TG_EINVAL, "identity.intermediates: %s: no certificate", path);
done:
    for (size_t d = 0; d < id->n_domains; d++)
        wolfSSL_CertManagerFree(cms[d]);
    free(cms);
    return rc;
}

/* The CAs that may sign CRLs: every root of every trust domain of id, then the
 * intermediates of our own chain (checked by check_chain to lead to our roots), then those
 * of identity.intermediates (inter_path), as DER in cas (n_cas; each der malloc'd). */
static int crl_signers(const struct tg_identity *id, const char *inter_path, struct tg_rev_ca **cas,
                       size_t *n_cas, char *err)
{
    size_t cap = id->n_roots + 16 + MAX_INTERMEDIATES + 1, n = 0;
    struct tg_rev_ca *c = calloc(cap, sizeof(*c));
    unsigned char *der;
    size_t der_len;
    int found = 1;

    if (c == NULL)
        return TG_ENOMEM;
    for (size_t d = 0; d < id->n_domains; d++) {
        size_t pos = id->domains[d].off, end = id->domains[d].off + id->domains[d].len;

        while (n < cap && (found = next_cert(id->bundle_pem, end, &pos, &der, &der_len)) == 1)
            c[n++] = (struct tg_rev_ca){der, der_len, d, true};
    }
    if (id->chain_pem != NULL) {
        size_t pos = 0, k = 0;

        while (n < cap &&
               (found = next_cert(id->chain_pem, id->chain_len, &pos, &der, &der_len)) == 1) {
            if (k++ == 0) { /* our leaf signs nothing */
                free(der);
                continue;
            }
            c[n++] = (struct tg_rev_ca){der, der_len, 0, false};
        }
    }
    *cas = c;
    if (found < 0) {
        *n_cas = n;
        return TG_ENOMEM; /* the same PEM parsed before: only memory can fail */
    }
    found = id->inter_pem != NULL ? add_intermediates(id, inter_path, c, &n, err) : 0;
    *n_cas = n;
    return found;
}

/* Checks each CRL (parses, not stale, signed by one of our CAs: revocation.h) and ties it to
 * its signer in id->rev, which is made even without CRLs (it knows the roots, for the links
 * of a peer's chain). paths name them in err (NULL: by position). */
static int check_crls(struct tg_identity *id, const char *what, const struct tg_strlist *paths,
                      const char *inter_path, char *err)
{
    struct tg_rev_ca *cas = NULL;
    struct tg_rev_crl *crls = calloc(id->n_crl + 1, sizeof(*crls));
    DerBuffer **owned = calloc(id->n_crl + 1, sizeof(*owned));
    char(*names)[TG_ERRLEN] = calloc(id->n_crl + 1, sizeof(*names));
    const char **domains = calloc(id->n_domains + 1, sizeof(*domains));
    size_t n_cas = 0;
    int rc = TG_ENOMEM;

    if (crls == NULL || owned == NULL || names == NULL || domains == NULL ||
        (rc = crl_signers(id, inter_path, &cas, &n_cas, err)) < 0)
        goto done;
    for (size_t i = 0; i < id->n_domains; i++)
        domains[i] = id->domains[i].name;
    for (size_t i = 0; i < id->n_crl; i++) {
        char name[48];
        int64_t next = 0;

        snprintf(name, sizeof(name), "(in memory) CRL %zu", i + 1);
        snprintf(names[i], TG_ERRLEN, "%s: %s", what,
                 paths != NULL && i < paths->n ? paths->v[i] : name);
        id->crl_pem[i] = memmem(id->crl[i], id->crl_len[i], "-----BEGIN X509 CRL-----", 24) != NULL;
        if (crl_der(id, i, &owned[i], &crls[i].der, &crls[i].len) < 0) {
            rc = tg_err_set(err, TG_EINVAL, "%s: malformed PEM CRL", names[i]);
            goto done;
        }
        crls[i].name = names[i];
        if (crl_next_update(id->crl[i], id->crl_len[i], id->crl_pem[i], &next) == 0 &&
            next <= tg_identity_now()) {
            rc = tg_err_set(err, TG_EINVAL, "%s: stale: its nextUpdate passed %lld s ago", names[i],
                            (long long)(tg_identity_now() - next));
            goto done;
        }
    }
    rc = tg_revocations_new(cas, n_cas, domains, id->n_domains, crls, id->n_crl, &id->rev, err);
done:
    for (size_t i = 0; cas != NULL && i < n_cas; i++)
        free(tg_unconst(cas[i].der));
    for (size_t i = 0; owned != NULL && i < id->n_crl; i++)
        wc_FreeDer(&owned[i]);
    free(cas);
    free(crls);
    free(owned);
    free(names);
    free(domains);
    return rc;
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

/* Where an identity's trust bundles come from, and the words that name them in messages. */
struct bundles {
    const char *own; /* our trust domain's roots; NULL: the entry of fed named by our leaf */
    size_t own_len;
    const char *own_what;                /* "identity.trust_bundle: FILE" */
    const struct tg_identity_roots *fed; /* federated domains (and ours when own is NULL) */
    size_t n_fed;
    char (*fed_what)[TG_ERRLEN]; /* [n_fed] "identity.trust_domains.D: FILE"; NULL in memory */
};

/* The trust domain of the leaf of chain (PEM) into dst, or "" when it has none. */
static void leaf_domain(const char *chain, size_t len, char *dst, size_t cap)
{
    unsigned char *der;
    size_t der_len, pos = 0;
    struct tg_cert_info info;

    dst[0] = '\0';
    if (next_cert(chain, len, &pos, &der, &der_len) != 1)
        return;
    if (tg_cert_inspect(der, der_len, &info, NULL) == 0 && info.id_ok &&
        info.id.td_len <= TG_TRUST_DOMAIN_MAX)
        tg_spiffe_trust_domain(&info.id, dst, cap);
    free(der);
}

/* The checks of an identity whose chain, key and CRLs are in place, with its trust bundles
 * from b; f names the files in messages. */
static int check_identity(struct tg_identity *id, const struct tg_identity_files *f,
                          const struct bundles *b, char *err)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    char ours[TG_TRUST_DOMAIN_MAX + 1], what[TG_ERRLEN];
    const char *own = b->own;
    size_t own_len = b->own_len, own_i = b->n_fed;
    int rc = 0;

    if (cm == NULL)
        return TG_ENOMEM;
    leaf_domain(id->chain_pem, id->chain_len, ours, sizeof(ours));
    for (size_t i = 0; own == NULL && ours[0] != '\0' && i < b->n_fed; i++) {
        if (b->fed[i].domain != NULL && strcmp(b->fed[i].domain, ours) == 0) {
            own = b->fed[i].pem;
            own_len = b->fed[i].len;
            own_i = i;
        }
    }
    snprintf(what, sizeof(what), "%s", b->own_what);
    if (b->own == NULL)
        snprintf(what, sizeof(what), "trust bundle of %.60s", ours);
    /* our roots alone first: our chain must lead to one of them, not to a federated root;
     * then our own chain before the CRLs: a CRL that revokes us must still apply to our
     * peers (and a renewal replaces our certificate) */
    if (own == NULL && ours[0] != '\0')
        rc = tg_err_set(err, TG_EINVAL,
                        "trust bundle: no roots for our trust domain %.60s (our certificate's)",
                        ours);
    else if (own != NULL)
        rc = load_domain(id, ours, what, own, own_len, cm, err);
    if (rc == 0)
        rc = check_chain(id, f->cert, cm, err);
    if (rc == 0 && id->leaf.id.td_len > TG_TRUST_DOMAIN_MAX)
        rc = tg_err_set(err, TG_EINVAL, "identity.cert: %s: trust domain longer than %d bytes",
                        f->cert, TG_TRUST_DOMAIN_MAX);
    if (rc == 0)
        tg_spiffe_trust_domain(&id->leaf.id, id->trust_domain, sizeof(id->trust_domain));
    for (size_t i = 0; rc == 0 && i < b->n_fed; i++) {
        const char *name = b->fed[i].domain != NULL ? b->fed[i].domain : "";

        if (i == own_i)
            continue;
        if (b->fed_what != NULL)
            snprintf(what, sizeof(what), "%s", b->fed_what[i]);
        else
            snprintf(what, sizeof(what), "trust bundle of %.60s", name[0] ? name : "(no name)");
        rc = load_federated(id, name, what, b->fed[i].pem, b->fed[i].len, cm, err);
    }
    if (rc == 0 && (rc = check_crls(id, CRL_KEY, f->crls, f->intermediates, err)) == 0)
        rc = check_key(id, f, err);
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
    struct bundles b = {.own = p->bundle,
                        .own_len = p->bundle_len,
                        .own_what = "identity.trust_bundle: (in memory)",
                        .fed = p->domains,
                        .n_fed = p->n_domains};
    int rc = TG_ENOMEM;

    if (id == NULL)
        return rc;
    if (p->chain_len > MAX_PEM_FILE || p->key_len > MAX_PEM_FILE || p->bundle_len > MAX_PEM_FILE) {
        rc = tg_err_set(err, TG_ETOOBIG, "identity PEM larger than %d bytes", MAX_PEM_FILE);
        goto fail;
    }
    for (size_t i = 0; i < p->n_domains; i++) {
        if (p->domains[i].len > MAX_PEM_FILE) {
            rc = tg_err_set(err, TG_ETOOBIG, "trust bundle of %.60s larger than %d bytes",
                            p->domains[i].domain != NULL ? p->domains[i].domain : "(no name)",
                            MAX_PEM_FILE);
            goto fail;
        }
    }
    if ((id->chain_pem = dup_text(p->chain, p->chain_len)) == NULL)
        goto fail;
    id->chain_len = p->chain_len;
    if ((id->key_pem = dup_text(p->key, p->key_len)) == NULL)
        goto fail;
    id->key_len = p->key_len;
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
    if ((rc = check_identity(id, &names, &b, err)) < 0)
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
    size_t n_fed = f->domains != NULL ? f->domains->n : 0;
    struct tg_identity_roots *fed = calloc(n_fed + 1, sizeof(*fed));
    char(*fed_what)[TG_ERRLEN] = calloc(n_fed + 1, sizeof(*fed_what));
    char *own = NULL, own_what[TG_ERRLEN];
    struct bundles b = {.fed = fed, .fed_what = fed_what, .own_what = own_what};
    int rc = TG_ENOMEM;

    if (id == NULL || fed == NULL || fed_what == NULL)
        goto fail;
    if ((rc = tg_file_read("identity.cert", f->cert, MAX_PEM_FILE, 0, &id->chain_pem,
                           &id->chain_len, err)) < 0)
        goto fail;
    if ((rc = tg_file_read("identity.key", f->key, MAX_PEM_FILE, TG_FILE_SECRET, &id->key_pem,
                           &id->key_len, err)) < 0)
        goto fail;
    if ((rc = tg_file_read("identity.trust_bundle", f->bundle, MAX_PEM_FILE, 0, &own, &b.own_len,
                           err)) < 0)
        goto fail;
    b.own = own;
    snprintf(own_what, sizeof(own_what), "identity.trust_bundle: %s", f->bundle);
    for (; b.n_fed < n_fed; b.n_fed++) {
        char key[96];
        char *text;

        snprintf(key, sizeof(key), "identity.trust_domains.%.60s", f->domains->v[b.n_fed]);
        if ((rc = tg_file_read(key, f->domain_bundles->v[b.n_fed], MAX_PEM_FILE, 0, &text,
                               &fed[b.n_fed].len, err)) < 0)
            goto fail;
        fed[b.n_fed].domain = f->domains->v[b.n_fed];
        fed[b.n_fed].pem = text;
        snprintf(fed_what[b.n_fed], TG_ERRLEN, "%s: %s", key, f->domain_bundles->v[b.n_fed]);
    }
    if ((rc = read_crls(id, CRL_KEY, f->crls, err)) < 0)
        goto fail;
    if (f->intermediates != NULL &&
        (rc = tg_file_read("identity.intermediates", f->intermediates, MAX_PEM_FILE, 0,
                           &id->inter_pem, &id->inter_len, err)) < 0)
        goto fail;
    if ((rc = check_identity(id, f, &b, err)) < 0)
        goto fail;
    *out = id;
    id = NULL;
fail: /* and done: what was read is copied into the identity */
    tg_identity_free(id);
    free(own);
    for (size_t i = 0; i < b.n_fed; i++)
        free(tg_unconst(fed[i].pem));
    free(fed);
    free(fed_what);
    return rc;
}

int tg_identity_load_trust(const char *bundle, const struct tg_strlist *crls,
                           const char *bundle_name, const char *crl_name, struct tg_identity **out,
                           char *err)
{
    struct tg_identity *id = calloc(1, sizeof(*id));
    WOLFSSL_CERT_MANAGER *cm = NULL;
    char *pem = NULL, what[TG_ERRLEN];
    size_t len = 0;
    int rc = TG_ENOMEM;

    if (id == NULL)
        return rc;
    if ((rc = tg_file_read(bundle_name, bundle, MAX_PEM_FILE, 0, &pem, &len, err)) < 0 ||
        (rc = read_crls(id, crl_name, crls, err)) < 0)
        goto fail;
    rc = TG_ENOMEM;
    if ((cm = wolfSSL_CertManagerNew()) == NULL)
        goto fail;
    /* one nameless domain: the bundle as it was given, whatever the roots vouch for */
    snprintf(what, sizeof(what), "%s: %s", bundle_name, bundle);
    if ((rc = load_domain(id, "", what, pem, len, cm, err)) < 0 ||
        (rc = check_crls(id, crl_name, crls, NULL, err)) < 0)
        goto fail;
    wolfSSL_CertManagerFree(cm);
    free(pem);
    *out = id;
    return 0;
fail:
    wolfSSL_CertManagerFree(cm);
    free(pem);
    tg_identity_free(id);
    return rc;
}

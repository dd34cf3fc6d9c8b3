/* Revocation by CRL (revocation.h): CRLs tied to the key of the CA that signed them, checked
 * for each certificate of a verified chain against its issuer's key. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "tollgate/revocation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/crl.h"
#include "tollgate/der.h"

struct ca {
    unsigned char key[TG_KEY_ID_LEN];
    unsigned char *subject; /* Name DER */
    size_t subject_len;
    unsigned char *pub; /* roots: the key, to tell which root signed a chain's last certificate */
    size_t pub_len;
    int key_oid;
    size_t domain;
    bool root;
    char cn[65];
};

struct crl {
    size_t ca; /* its signer, cas[ca] */
    struct tg_crl_view v;
};

struct tg_revocations {
    struct ca *cas;
    size_t n_cas;
    struct crl *crls;
    size_t n_crls;
    char **domains;       /* [n_domains] */
    bool *domain_has_crl; /* [n_domains] */
    size_t n_domains;
};

/* The key identity of a parsed certificate: SHA-256 over its public key's bytes. */
static int key_id(const DecodedCert *dc, unsigned char out[TG_KEY_ID_LEN])
{
    if (dc->publicKey == NULL || dc->pubKeySize == 0)
        return -1;
    return wc_Sha256Hash(dc->publicKey, dc->pubKeySize, out) == 0 ? 0 : -1;
}

static void *dup_bytes(const void *src, size_t len)
{
    void *p = malloc(len > 0 ? len : 1);

    if (p != NULL)
        memcpy(p, src, len);
    return p;
}

void tg_revocations_free(struct tg_revocations *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_cas; i++) {
        free(r->cas[i].subject);
        free(r->cas[i].pub);
    }
    for (size_t i = 0; i < r->n_crls; i++)
        tg_crl_view_cleanup(&r->crls[i].v);
    for (size_t i = 0; i < r->n_domains; i++)
        free(r->domains[i]);
    free(r->cas);
    free(r->crls);
    free(r->domains);
    free(r->domain_has_crl);
    free(r);
}

static int add_ca(struct tg_revocations *r, const struct tg_rev_ca *in, char *err)
{
    struct ca *ca = &r->cas[r->n_cas];
    DecodedCert dc;
    int rc = TG_ENOMEM;

    memset(ca, 0, sizeof(*ca));
    wc_InitDecodedCert(&dc, in->der, (word32)in->len, NULL);
    if (wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) != 0 || key_id(&dc, ca->key) < 0 ||
        dc.subjectRaw == NULL) {
        rc = tg_err_set(err, TG_EINVAL, "a CA certificate does not parse");
        goto done;
    }
    ca->subject_len = (size_t)dc.subjectRawLen;
    ca->pub_len = dc.pubKeySize;
    ca->key_oid = (int)dc.keyOID;
    ca->domain = in->domain;
    ca->root = in->root;
    if (dc.subjectCN != NULL && dc.subjectCNLen > 0)
        snprintf(ca->cn, sizeof(ca->cn), "%.*s", dc.subjectCNLen < 64 ? dc.subjectCNLen : 64,
                 dc.subjectCN);
    if ((ca->subject = dup_bytes(dc.subjectRaw, ca->subject_len)) == NULL ||
        (ca->pub = dup_bytes(dc.publicKey, ca->pub_len)) == NULL)
        goto done;
    r->n_cas++;
    rc = 0;
done:
    if (rc < 0) {
        free(ca->subject);
        free(ca->pub);
    }
    wc_FreeDecodedCert(&dc);
    return rc;
}

/* Whether ca's certificate (DER) signed crl: wolfSSL loads the CRL into a store holding that
 * CA alone, so a success can only be its key's (and nextUpdate is checked on the way).
 * *wolf_err: wolfSSL's reason when not. */
static bool signed_by(const struct tg_rev_ca *ca, const struct tg_rev_crl *crl, int *wolf_err)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    DecodedCert dc;
    bool ok = false;
    int rc;

    if (cm == NULL) {
        *wolf_err = MEMORY_E;
        return false;
    }
    wc_InitDecodedCert(&dc, ca->der, (word32)ca->len, NULL);
    /* RFC 5280 6.3.3 (f): a CA with keyUsage signs CRLs only with cRLSign */
    if (wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) != 0 || !dc.isCA ||
        (dc.extKeyUsageSet && !(dc.extKeyUsage & KEYUSE_CRL_SIGN))) {
        *wolf_err = 0;
        goto done;
    }
    rc = wolfSSL_CertManagerLoadCABuffer(cm, ca->der, (long)ca->len, WOLFSSL_FILETYPE_ASN1);
    if (rc == WOLFSSL_SUCCESS)
        rc = wolfSSL_CertManagerLoadCRLBuffer(cm, crl->der, (long)crl->len, WOLFSSL_FILETYPE_ASN1);
    ok = rc == WOLFSSL_SUCCESS;
    *wolf_err = ok ? 0 : rc;
done:
    wc_FreeDecodedCert(&dc);
    wolfSSL_CertManagerFree(cm);
    return ok;
}

/* The CA among cas that signed crl (named issuer), into *signer; else err says why. */
static int find_signer(const struct tg_revocations *r, const struct tg_rev_ca *cas,
                       const struct tg_rev_crl *crl, const struct tg_crl_view *v, size_t *signer,
                       char *err)
{
    int why = 0;
    bool named = false, no_crl_sign = false;

    for (size_t i = 0; i < r->n_cas; i++) {
        int e = 0;

        if (r->cas[i].subject_len != v->issuer_len ||
            memcmp(r->cas[i].subject, v->issuer, v->issuer_len) != 0)
            continue;
        named = true;
        if (signed_by(&cas[i], crl, &e)) {
            *signer = i;
            return 0;
        }
        if (e == 0)
            no_crl_sign = true;
        else
            why = e;
    }
    if (!named)
        return tg_err_set(err, TG_EINVAL,
                          "%s: its issuer is none of our CAs (the roots of the trust bundles, the "
                          "intermediates of our chain and of identity.intermediates)",
                          crl->name);
    if (why != 0)
        return tg_err_set(err, TG_EINVAL, "%s: not signed by the CA it names: %s", crl->name,
                          wolfSSL_ERR_reason_error_string((unsigned long)why));
    return tg_err_set(err, TG_EINVAL, "%s: the CA it names %s", crl->name,
                      no_crl_sign ? "may not sign CRLs (keyUsage without cRLSign)"
                                  : "is not usable");
}

int tg_revocations_new(const struct tg_rev_ca *cas, size_t n_cas, const char *const *domains,
                       size_t n_domains, const struct tg_rev_crl *crls, size_t n_crls,
                       struct tg_revocations **out, char *err)
{
    struct tg_revocations *r = calloc(1, sizeof(*r));
    int rc = TG_ENOMEM;

    if (r == NULL)
        return rc;
    if ((r->cas = calloc(n_cas + 1, sizeof(*r->cas))) == NULL ||
        (r->crls = calloc(n_crls + 1, sizeof(*r->crls))) == NULL ||
        (r->domains = calloc(n_domains + 1, sizeof(*r->domains))) == NULL ||
        (r->domain_has_crl = calloc(n_domains + 1, sizeof(*r->domain_has_crl))) == NULL)
        goto fail;
    for (; r->n_domains < n_domains; r->n_domains++)
        if ((r->domains[r->n_domains] = strdup(domains[r->n_domains])) == NULL)
            goto fail;
    for (size_t i = 0; i < n_cas; i++) {
        if (cas[i].domain >= n_domains) {
            rc = tg_err_set(err, TG_EINVAL, "a CA of no trust domain");
            goto fail;
        }
        if ((rc = add_ca(r, &cas[i], err)) < 0)
            goto fail;
    }
    for (size_t i = 0; i < n_crls; i++) {
        struct crl *c = &r->crls[r->n_crls];
        char why[TG_ERRLEN];

        if ((rc = tg_crl_parse(crls[i].der, crls[i].len, &c->v, why)) < 0) {
            tg_err_set(err, rc, "%s: %s", crls[i].name, why);
            goto fail;
        }
        r->n_crls++;
        if ((rc = find_signer(r, cas, &crls[i], &c->v, &c->ca, err)) < 0)
            goto fail;
        r->domain_has_crl[r->cas[c->ca].domain] = true;
    }
    *out = r;
    return 0;
fail:
    tg_revocations_free(r);
    return rc;
}

bool tg_revocations_any(const struct tg_revocations *r)
{
    return r != NULL && r->n_crls > 0;
}

/* The index of domain among r's, or r->n_domains when not one of them. */
static size_t domain_index(const struct tg_revocations *r, const char *domain)
{
    for (size_t i = 0; i < r->n_domains; i++)
        if (strcmp(r->domains[i], domain) == 0)
            return i;
    return r->n_domains;
}

/* The root of domain d that issued dc (the last certificate of a verified chain): by name,
 * and by signature when several roots share the name (a root rotated under the same name). */
static const struct ca *root_of(const struct tg_revocations *r, size_t d, const DecodedCert *dc,
                                const unsigned char *der, size_t len)
{
    const struct ca *found = NULL;
    size_t named = 0;

    for (size_t i = 0; i < r->n_cas; i++) {
        const struct ca *ca = &r->cas[i];

        if (!ca->root || ca->domain != d || dc->issuerRaw == NULL ||
            ca->subject_len != (size_t)dc->issuerRawLen ||
            memcmp(ca->subject, dc->issuerRaw, ca->subject_len) != 0)
            continue;
        named++;
        found = ca;
    }
    if (named <= 1)
        return found;
    for (size_t i = 0; i < r->n_cas; i++) {
        const struct ca *ca = &r->cas[i];

        if (ca->root && ca->domain == d &&
            wc_CheckCertSigPubKey(der, (word32)len, NULL, ca->pub, (word32)ca->pub_len,
                                  ca->key_oid) == 0)
            return ca;
    }
    return NULL;
}

int tg_revocations_links(const struct tg_revocations *r, const char *domain,
                         const unsigned char *const *der, const size_t *len, size_t n,
                         struct tg_chain_link **links, size_t *n_links)
{
    struct tg_chain_link *l = calloc(n + 1, sizeof(*l));
    unsigned char next_key[TG_KEY_ID_LEN];
    bool have_next = false;

    if (l == NULL)
        return TG_ENOMEM;
    *n_links = 0;
    /* from the root side down: each certificate's key is the issuer key of the one before */
    for (size_t i = n; i-- > 0;) {
        DecodedCert dc;
        unsigned char key[TG_KEY_ID_LEN];
        bool parsed, is_root = false;

        wc_InitDecodedCert(&dc, der[i], (word32)len[i], NULL);
        parsed = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) == 0 && key_id(&dc, key) == 0;
        if (parsed && i == n - 1 && r != NULL) {
            size_t d = domain_index(r, domain);
            const struct ca *root;

            for (size_t k = 0; k < r->n_cas; k++)
                if (r->cas[k].root && memcmp(r->cas[k].key, key, sizeof(key)) == 0)
                    is_root = true; /* the peer sent the root itself */
            if (!is_root && (root = root_of(r, d, &dc, der[i], len[i])) != NULL) {
                memcpy(next_key, root->key, sizeof(next_key));
                have_next = true;
            }
        }
        if (!is_root) {
            struct tg_chain_link *k = &l[i];

            if (parsed &&
                tg_serial_hex(dc.serial, (size_t)dc.serialSz, k->serial, sizeof(k->serial)) < 0)
                k->serial[0] = '\0'; /* lists nothing: wolfSSL keeps at most 32 bytes */
            if (have_next)
                memcpy(k->issuer_key, next_key, sizeof(next_key));
            (*n_links)++;
        }
        have_next = parsed;
        if (parsed)
            memcpy(next_key, key, sizeof(next_key));
        wc_FreeDecodedCert(&dc);
    }
    *links = l;
    return 0;
}

enum tg_rev_verdict tg_revocations_check(const struct tg_revocations *r, const char *domain,
                                         const struct tg_chain_link *links, size_t n, char *why,
                                         size_t cap)
{
    static const unsigned char unknown[TG_KEY_ID_LEN];
    size_t d;

    if (!tg_revocations_any(r))
        return TG_REV_OK;
    d = domain_index(r, domain);
    /* every listed certificate first: revoked says more than a missing CRL */
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < r->n_crls; k++) {
            const struct ca *ca = &r->cas[r->crls[k].ca];

            if (memcmp(links[i].issuer_key, unknown, TG_KEY_ID_LEN) == 0 ||
                memcmp(ca->key, links[i].issuer_key, TG_KEY_ID_LEN) != 0 ||
                !tg_crl_lists(&r->crls[k].v, links[i].serial))
                continue;
            snprintf(why, cap,
                     "certificate %zu of its chain (serial %s) is revoked by the CRL of %s", i,
                     links[i].serial, ca->cn[0] ? ca->cn : "its issuer");
            return TG_REV_REVOKED;
        }
    }
    for (size_t i = 0; d < r->n_domains && r->domain_has_crl[d] && i < n; i++) {
        bool covered = false;

        for (size_t k = 0; k < r->n_crls && !covered; k++)
            covered = memcmp(r->cas[r->crls[k].ca].key, links[i].issuer_key, TG_KEY_ID_LEN) == 0 &&
                      memcmp(links[i].issuer_key, unknown, TG_KEY_ID_LEN) != 0;
        if (!covered) {
            snprintf(why, cap,
                     "certificate %zu of its chain (serial %s): its issuer has no CRL, and trust "
                     "domain %s has CRLs (each of its CAs needs one)",
                     i, links[i].serial, r->domains[d][0] ? r->domains[d] : "(bundle)");
            return TG_REV_NO_CRL;
        }
    }
    return TG_REV_OK;
}

size_t tg_revocations_n(const struct tg_revocations *r)
{
    return r != NULL ? r->n_crls : 0;
}

void tg_revocations_crl(const struct tg_revocations *r, size_t i, struct tg_rev_crl_info *out)
{
    const struct ca *ca = &r->cas[r->crls[i].ca];

    out->issuer = ca->cn;
    out->domain = r->domains[ca->domain];
    out->root = ca->root;
    out->n_serials = r->crls[i].v.n_serials;
}

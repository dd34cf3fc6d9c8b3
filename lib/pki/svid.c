/* X.509-SVIDs from the Workload API into PEM (svid.h). */
#include "tollgate/svid.h"

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/asn_public.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/der.h"
#include "tollgate/file.h"
#include "tollgate/x509.h"

/* Each certificate of a concatenated DER list (what the spec sends for a chain or a bundle)
 * as PEM, appended to one text. 0, or a negative code with err naming what. */
static int certs_pem(const unsigned char *der, size_t len, const char *what, char **out,
                     size_t *out_len, char *err)
{
    FILE *f;
    size_t off = 0, n = 0;
    int rc = 0;

    *out = NULL;
    *out_len = 0;
    if (len == 0)
        return tg_err_set(err, TG_EINVAL, "%s: empty", what);
    if (len > TG_SVID_MAX_DER)
        return tg_err_set(err, TG_ETOOBIG, "%s: %zu bytes, over %d", what, len, TG_SVID_MAX_DER);
    if ((f = open_memstream(out, out_len)) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    while (rc == 0 && off < len) {
        size_t start = off, body;
        unsigned char tag;
        char *pem = NULL;
        size_t pem_len;

        if (++n > TG_SVID_MAX_CERTS) {
            rc = tg_err_set(err, TG_ETOOBIG, "%s: more than %d certificates", what,
                            TG_SVID_MAX_CERTS);
            break;
        }
        if (tg_der_header(der, len, &off, &tag, &body) < 0 || tag != 0x30) {
            rc = tg_err_set(err, TG_EINVAL, "%s: certificate %zu is not a DER SEQUENCE", what, n);
            break;
        }
        off += body;
        if ((rc = tg_x509_pem(der + start, off - start, CERT_TYPE, &pem, &pem_len, err)) < 0)
            break;
        if (fwrite(pem, 1, pem_len, f) != pem_len)
            rc = tg_err_set(err, TG_ENOMEM, "out of memory");
        free(pem);
    }
    if (fclose(f) != 0 && rc == 0)
        rc = tg_err_set(err, TG_ENOMEM, "out of memory");
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

static int key_pem(const unsigned char *der, size_t len, char **out, size_t *out_len, char *err)
{
    size_t off = 0, body;
    unsigned char tag;

    if (len == 0 || len > TG_SVID_MAX_DER)
        return tg_err_set(err, TG_EINVAL, "x509_svid_key: %zu bytes", len);
    /* one whole SEQUENCE and nothing after it: PKCS#8 PrivateKeyInfo */
    if (tg_der_header(der, len, &off, &tag, &body) < 0 || tag != 0x30 || off + body != len)
        return tg_err_set(err, TG_EINVAL, "x509_svid_key: not one DER SEQUENCE (PKCS#8)");
    return tg_x509_pem(der, len, PKCS8_PRIVATEKEY_TYPE, out, out_len, err);
}

/* "spiffe://td" (the spec's key) or "td"; checked as a trust domain by tg_identity_from_pem */
static int fed_name(const char *key, char **out, char *err)
{
    struct tg_spiffe_id id;
    char td[TG_TRUST_DOMAIN_MAX + 1];

    if (key == NULL || key[0] == '\0')
        return tg_err_set(err, TG_EINVAL, "federated_bundles: a bundle without a trust domain");
    if (strncmp(key, "spiffe://", 9) == 0) {
        if (tg_spiffe_parse(key, &id, err) < 0 || id.path_off != id.len)
            return tg_err_set(err, TG_EINVAL,
                              "federated_bundles: \"%.80s\" is not a trust domain ID", key);
        tg_spiffe_trust_domain(&id, td, sizeof(td));
        key = td;
    }
    if ((*out = strdup(key)) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    return 0;
}

void tg_svid_free(struct tg_svid *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; s->domains != NULL && i < s->n_domains; i++) {
        free(tg_unconst(s->domains[i].domain));
        free(tg_unconst(s->domains[i].pem));
    }
    free(s->domains);
    tg_wipe_free(s->key, s->key_len); /* the chain and bundles are public */
    free(s->chain);
    free(s->bundle);
    for (size_t i = 0; s->crls != NULL && i < s->n_crls; i++)
        free(tg_unconst(s->crls[i].data));
    free(s->crls);
    free(s);
}

int tg_svid_from_der(const struct tg_svid_der *d, struct tg_svid **out, char *err)
{
    struct tg_svid *s = calloc(1, sizeof(*s));
    int rc = TG_ENOMEM;

    if (s == NULL)
        return tg_err_set(err, rc, "out of memory");
    if (d->n_fed > TG_SVID_MAX_DOMAINS || d->n_crls > TG_SVID_MAX_CRLS) {
        rc = tg_err_set(err, TG_ETOOBIG, "%zu federated bundles and %zu CRLs, over %d and %d",
                        d->n_fed, d->n_crls, TG_SVID_MAX_DOMAINS, TG_SVID_MAX_CRLS);
        goto fail;
    }
    snprintf(s->spiffe_id, sizeof(s->spiffe_id), "%s", d->spiffe_id != NULL ? d->spiffe_id : "");
    if ((rc = certs_pem(d->chain, d->chain_len, "x509_svid", &s->chain, &s->chain_len, err)) < 0 ||
        (rc = key_pem(d->key, d->key_len, &s->key, &s->key_len, err)) < 0 ||
        (rc = certs_pem(d->bundle, d->bundle_len, "bundle", &s->bundle, &s->bundle_len, err)) < 0)
        goto fail;
    if (d->n_fed > 0 && (s->domains = calloc(d->n_fed, sizeof(*s->domains))) == NULL) {
        rc = tg_err_set(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < d->n_fed; i++) {
        struct tg_identity_roots *r = &s->domains[i];
        const struct tg_svid_fed *f = &d->fed[i];
        char *name = NULL, *pem = NULL, what[TG_ERRLEN];

        if ((rc = fed_name(f->domain, &name, err)) < 0)
            goto fail;
        r->domain = name;
        s->n_domains++; /* tg_svid_free frees it from here on, pem or not */
        snprintf(what, sizeof(what), "federated_bundles[%.80s]", name);
        if ((rc = certs_pem(f->der, f->len, what, &pem, &r->len, err)) < 0)
            goto fail;
        r->pem = pem;
    }
    if (d->n_crls > 0 && (s->crls = calloc(d->n_crls, sizeof(*s->crls))) == NULL) {
        rc = tg_err_set(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    for (; s->n_crls < d->n_crls; s->n_crls++) {
        const struct tg_identity_crl *c = &d->crls[s->n_crls];
        void *copy;

        if (c->len == 0 || c->len > TG_SVID_MAX_DER) {
            rc = tg_err_set(err, TG_EINVAL, "crl %zu: %zu bytes", s->n_crls + 1, c->len);
            goto fail;
        }
        if ((copy = malloc(c->len)) == NULL) {
            rc = tg_err_set(err, TG_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(copy, c->data, c->len);
        s->crls[s->n_crls] = (struct tg_identity_crl){copy, c->len};
    }
    *out = s;
    return 0;
fail:
    tg_svid_free(s);
    return rc;
}

int tg_svid_identity(const struct tg_svid *s, struct tg_identity **out, char *err)
{
    /* the texts are ours; the identity copies them */
    struct tg_identity_pem p = {.chain = s->chain,
                                .key = s->key,
                                .bundle = s->bundle,
                                .domains = s->domains,
                                .crls = s->crls};
    struct tg_identity *id;
    int rc;

    p.chain_len = s->chain_len;
    p.key_len = s->key_len;
    p.bundle_len = s->bundle_len;
    p.n_domains = s->n_domains;
    p.n_crls = s->n_crls;
    if ((rc = tg_identity_from_pem(&p, &id, err)) < 0)
        return rc;
    /* the entry's spiffe_id is what a registration entry says; the certificate must agree */
    if (strcmp(id->leaf.id.id, s->spiffe_id) != 0) {
        rc = tg_err_set(err, TG_EINVAL,
                        "x509_svid: the certificate's ID %.200s is not the entry's %.200s",
                        id->leaf.id.id, s->spiffe_id);
        tg_identity_free(id);
        return rc;
    }
    *out = id;
    return 0;
}

/* The control plane's CA (cp_ca.h): certificates built and checked through certgen.h, which
 * tollgate-certs (certs/certtool.c) shares; wolfSSL stays behind lib/pki. */
#include "cp_ca.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate/certgen.h"
#include "tollgate/certview.h"
#include "tollgate/file.h"
#include "tollgate/identity.h"
#include "tollgate/spiffe.h"

#define MAX_CHAIN 8
#define MAX_SKEW_S 60

struct tg_cp_ca {
    struct tg_key *key;
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
    int found = next_block(pem, len, pos, "CERTIFICATE", block, block_len);

    if (found <= 0)
        return found;
    return tg_pem_block_der(*block, *block_len, TG_PEM_BLOCK_CERT, der, der_len) < 0 ? TG_EINVAL
                                                                                     : 1;
}

/* ---- the CA ---- */

void tg_cp_ca_free(struct tg_cp_ca *ca)
{
    if (ca == NULL)
        return;
    tg_key_free(ca->key);
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
        bool root = tg_cert_self_signed(der, der_len);
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
    if (!ca->info.is_ca) {
        tg_err_set(err, rc,
                   "%s: cert (serial %s) is not a CA certificate (basicConstraints CA:TRUE)", what,
                   ca->info.serial);
        goto fail;
    }
    if (ca->info.ku_set && !ca->info.key_cert_sign) {
        tg_err_set(err, rc, "%s: cert (serial %s): its keyUsage lacks keyCertSign", what,
                   ca->info.serial);
        goto fail;
    }
    if (ca->info.not_after <= now || ca->info.not_before > now + MAX_SKEW_S) {
        tg_err_set(err, rc, "%s: cert (serial %s) is not valid now", what, ca->info.serial);
        goto fail;
    }
    snprintf(key_what, sizeof(key_what), "%s: key", what);
    if ((rc = tg_key_decode(key_pem, key_len, false, key_what, &ca->key, err)) < 0 ||
        (rc = tg_key_matches(ca->key, ca->der, ca->der_len, what, err)) < 0)
        goto fail;
    if (tg_cert_self_signed(ca->der, ca->der_len)) {
        size_t n;

        if ((rc = tg_pem_encode(ca->der, ca->der_len, TG_PEM_CERT, &ca->root_pem, &n, err)) < 0)
            goto fail;
    }
    *out = ca;
    return 0;
fail:
    tg_cp_ca_free(ca);
    return rc;
}

/* The certificates above the signing one, from the root side down, then (with self) the
 * signing one: what verifies the next. cas has room for MAX_CHAIN + 1. */
static size_t chain_down(const struct tg_cp_ca *ca, bool self, struct tg_cert_der *cas)
{
    size_t n = 0;

    for (size_t i = ca->n_up; i-- > 0;)
        cas[n++] = (struct tg_cert_der){ca->up_der[i], ca->up_len[i]};
    if (self)
        cas[n++] = (struct tg_cert_der){ca->der, ca->der_len};
    return n;
}

int tg_cp_ca_check_roots(const struct tg_cp_ca *ca, const struct tg_strlist *roots, char *err)
{
    struct tg_cert_der cas[MAX_CHAIN + 1];
    char what[TG_ERRLEN];
    size_t n = chain_down(ca, false, cas);

    snprintf(what, sizeof(what), "CA certificate (serial %s)", ca->info.serial);
    return tg_cert_chain_check((const char *const *)roots->v, roots->n, cas, n, ca->der,
                               ca->der_len, what, err);
}

/* ---- issuing ---- */

/* What a leaf says beyond its key: CN, SANs and extended key usage. */
struct leaf_spec {
    const char *cn;
    const char *const *uris;
    size_t n_uris;
    const char *const *dns;
    size_t n_dns;
    const char *eku;
};

/* Makes the certificate of ls for subject and appends the CA's chain: *chain malloc'd PEM. */
static int issue(const struct tg_cp_ca *ca, const struct leaf_spec *ls, int64_t ttl_s,
                 const struct tg_key *subject, char **chain, size_t *chain_len, char *err)
{
    int64_t now = (int64_t)time(NULL), skew = ttl_s / 10 < MAX_SKEW_S ? ttl_s / 10 : MAX_SKEW_S;
    struct tg_cert_spec spec = {.cn = ls->cn,
                                .not_before = now - skew,
                                .not_after = now + ttl_s,
                                .key_usage = "digitalSignature",
                                .ext_key_usage = ls->eku,
                                .uris = ls->uris,
                                .n_uris = ls->n_uris,
                                .dns = ls->dns,
                                .n_dns = ls->n_dns};
    struct tg_cert_issuer by = {ca->der, ca->der_len, ca->key};
    unsigned char *der = NULL;
    char *leaf = NULL, *out;
    size_t leaf_len = 0, der_len;
    int rc;

    if (ttl_s <= 0)
        return tg_err_set(err, TG_EINVAL, "TTL of %lld s", (long long)ttl_s);
    if (spec.not_after > ca->info.not_after)
        spec.not_after = ca->info.not_after; /* never outlive the CA */
    if ((rc = tg_cert_make(&spec, subject, &by, &der, &der_len, err)) < 0 ||
        (rc = tg_pem_encode(der, der_len, TG_PEM_CERT, &leaf, &leaf_len, err)) < 0)
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
    return rc;
}

int tg_cp_ca_sign(const struct tg_cp_ca *ca, const unsigned char *csr, size_t csr_len,
                  const char *spiffe_id, int64_t ttl_s, char **chain, size_t *chain_len, char *err)
{
    struct tg_spiffe_id id;
    struct leaf_spec ls = {.n_uris = 1, .eku = "serverAuth,clientAuth"};
    struct tg_key *subject = NULL;
    const char *sa;
    int rc;

    if ((rc = tg_spiffe_parse(spiffe_id, &id, err)) < 0)
        return rc;
    /* CN: the service account, or "tollgate" when it does not fit */
    sa = strstr(id.id + id.path_off, "/sa/");
    ls.cn = sa != NULL && strlen(sa + 4) <= TG_CERT_CN_MAX ? sa + 4 : "tollgate";
    ls.uris = (const char *const[]){id.id};
    if ((rc = tg_csr_key(csr, csr_len, &subject, err)) < 0)
        return rc;
    rc = issue(ca, &ls, ttl_s, subject, chain, chain_len, err);
    tg_key_free(subject);
    return rc;
}

int tg_cp_ca_issue_dns(const struct tg_cp_ca *ca, const char *const *dns, size_t n_dns,
                       int64_t ttl_s, char **chain, size_t *chain_len, char **key_pem,
                       size_t *key_len, char *err)
{
    struct leaf_spec ls = {.dns = dns, .n_dns = n_dns, .eku = "serverAuth"};
    struct tg_key *k = NULL;
    int rc;

    if (n_dns == 0 || strlen(dns[0]) > TG_CERT_CN_MAX)
        return tg_err_set(err, TG_EINVAL, "a DNS name of at most %d bytes is needed",
                          TG_CERT_CN_MAX);
    ls.cn = dns[0];
    if ((rc = tg_key_generate(&k, err)) < 0)
        return rc;
    if ((rc = issue(ca, &ls, ttl_s, k, chain, chain_len, err)) < 0)
        goto done;
    if ((rc = tg_key_pem(k, key_pem, key_len, err)) < 0) {
        free(*chain);
        *chain = NULL;
    }
done:
    tg_key_free(k);
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
    const char *block;
    unsigned char *der;
    size_t der_len;
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
    if (tg_pem_block_der(block, block_len, TG_PEM_BLOCK_CRL, &der, &der_len) < 0)
        return tg_err_set(err, TG_EINVAL, "%s: PEM CRL does not decode", what);
    out->data = tg_resource_memdup(r, der, der_len);
    out->len = der_len;
    free(der);
    return out->data == NULL ? TG_ENOMEM : 0;
}

bool tg_cp_ca_crl_signed_by(const struct tg_cp_ca *ca, const struct tg_strlist *roots,
                            const struct tg_res_blob *crl)
{
    struct tg_cert_der cas[MAX_CHAIN + 1];
    size_t n = chain_down(ca, !tg_cert_self_signed(ca->der, ca->der_len), cas);

    return tg_crl_signed_by((const char *const *)roots->v, roots->n, cas, n, crl->data, crl->len);
}

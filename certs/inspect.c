/* tollgate-certs inspect and verify: reading PEM files the way the sidecar reads them.
 *
 * inspect names what each PEM block is and what it says; for a certificate the serial,
 * SHA-256 fingerprint and SPIFFE ID come from tg_cert_inspect, the sidecar's own reading
 * (identity.h), so they print in the form its logs and rules use; the rest (names, key types,
 * subjectAltNames) from certview.h, so no file here sees wolfSSL. A private key shows its
 * type only: its bytes are wiped once read. verify hands the chain to tg_tls_verify_chain,
 * the checks of the sidecar's handshake (tls.h), and prints the handshake's reason names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certtool.h"
#include "tollgate/certview.h"
#include "tollgate/der.h"
#include "tollgate/file.h"
#include "tollgate/identity.h"
#include "tollgate/metrics.h"
#include "tollgate/spiffe.h"
#include "tollgate/tls.h"

#define MAX_CHAIN 32 /* certificates verify reads from the chain and intermediates files */

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

/* ---- certificates and requests ---- */

static void print_sans(const struct tg_cert_view *v)
{
    static const struct {
        enum tg_san_type type;
        const char *name;
    } kinds[] = {
        {TG_SAN_URI, "uri"}, {TG_SAN_DNS, "dns"}, {TG_SAN_IP, "ip"}, {TG_SAN_EMAIL, "email"}};

    for (size_t k = 0; k < TG_NELEM(kinds); k++)
        for (size_t i = 0; i < v->n_sans; i++)
            if (v->sans[i].type == kinds[k].type)
                printf("  %s: %s\n", kinds[k].name, v->sans[i].value);
}

/* The SPIFFE ID line as the sidecar judges a peer's URI SANs: exactly one, and valid. */
static void print_spiffe(const struct tg_cert_view *v)
{
    const struct tg_san *uri = NULL;
    struct tg_spiffe_id id;
    char why[TG_ERRLEN];
    int n = 0;

    for (size_t i = 0; i < v->n_sans; i++)
        if (v->sans[i].type == TG_SAN_URI)
            uri = &v->sans[i], n++;
    if (n != 1)
        printf("  spiffe_id: none: %d URI SANs (want exactly one SPIFFE ID)\n", n);
    else if (tg_spiffe_parse_n(uri->value, uri->len, &id, why) < 0)
        printf("  spiffe_id: none: %s\n", why);
    else
        printf("  spiffe_id: %s\n", id.id);
}

static int print_cert(const unsigned char *der, size_t len, int index, char *err)
{
    struct tg_cert_info info;
    struct tg_cert_view v = {0};
    char nb[CERTS_RFC3339], na[CERTS_RFC3339];
    int64_t now = tg_identity_now();
    char why[TG_ERRLEN];
    int rc;

    if ((rc = tg_cert_inspect(der, len, &info, why)) < 0 ||
        (rc = tg_cert_view(der, len, &v, why)) < 0)
        return tg_err_set(err, rc == TG_ENOMEM ? rc : TG_EINVAL, "certificate %d: %s", index, why);
    printf("certificate %d\n", index);
    printf("  subject: %s\n", v.subject);
    printf("  issuer: %s\n", v.issuer);
    printf("  serial: %s\n", info.serial);
    printf("  sha256: %s\n", info.sha256);
    certs_rfc3339(info.not_before, nb);
    certs_rfc3339(info.not_after, na);
    printf("  not_before: %s\n", nb);
    printf("  not_after: %s\n", na);
    printf("  validity: %s\n", now < info.not_before   ? "not yet valid"
                               : now >= info.not_after ? "expired"
                                                       : "valid now");
    if (info.is_ca && v.path_len_set)
        printf("  kind: CA%s, path length %d\n", v.self_signed ? " (self-signed: a root)" : "",
               v.path_len);
    else if (info.is_ca)
        printf("  kind: CA%s\n", v.self_signed ? " (self-signed: a root)" : "");
    else
        printf("  kind: leaf%s\n", v.self_signed ? " (self-signed)" : "");
    printf("  key: %s\n", v.key);
    if (!v.eku_set)
        printf("  ext_key_usage: (none: any)\n");
    else
        printf("  ext_key_usage: %s\n", v.eku[0] != '\0' ? v.eku : "(none known)");
    print_sans(&v);
    printf("  spiffe_id: %s%s\n",
           info.id_ok ? "" : "none: ", info.id_ok ? info.id.id : info.id_err);
    tg_cert_view_cleanup(&v);
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

/* Steps into the TLV at *p (before *end) when its tag is want: *p and *end then bound its
 * content. 0 or -1. */
static int enter(const unsigned char **p, const unsigned char **end, int want)
{
    const unsigned char *c;
    size_t clen;
    int tag;

    if (tlv(p, *end, &tag, &c, &clen) < 0 || tag != want)
        return -1;
    *p = c;
    *end = c + clen;
    return 0;
}

/* A Time TLV starting at t (whole TLV, len bytes) as RFC 3339. */
static int time_text(const unsigned char *t, size_t len, char *out)
{
    int64_t when;

    if (tg_asn_time(t, len, &when) < 0)
        return -1;
    certs_rfc3339(when, out);
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
    const unsigned char *p = der, *tbs_end = der + len, *c, *t0;
    size_t clen;
    int tag;
    char when[CERTS_RFC3339], name[TG_NAME_TEXT];
    size_t n_revoked = 0;

    /* CertificateList ::= SEQUENCE { tbsCertList SEQUENCE { version INTEGER OPTIONAL,
     * signature, issuer, thisUpdate, nextUpdate OPTIONAL, revokedCertificates OPTIONAL,
     * [0] crlExtensions OPTIONAL }, ... } */
    if (enter(&p, &tbs_end, 0x30) < 0)
        return tg_err_set(err, TG_EINVAL, "CRL %d does not parse", index);
    if (enter(&p, &tbs_end, 0x30) < 0)
        return tg_err_set(err, TG_EINVAL, "CRL %d: no tbsCertList", index);
    tg_crl_issuer(der, len, name);
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
            const unsigned char *s, *d0, *q = r, *q_end = r_end;
            size_t slen;
            int stag;
            char serial[2 * 64 + 1] = "";

            if (enter(&q, &q_end, 0x30) < 0)
                return tg_err_set(err, TG_EINVAL, "CRL %d: a revoked entry does not parse", index);
            r = q_end;
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

static int print_private_key(const struct pem_block *b, int index, char *err)
{
    char key[TG_KEY_TEXT];

    if (strcmp(b->label, "ENCRYPTED PRIVATE KEY") == 0) {
        printf("private key %d\n  type: encrypted PKCS#8 (its type is inside the encryption)\n",
               index);
        return 0;
    }
    if (tg_private_key_type(b->text, b->len, key) < 0)
        return tg_err_set(err, TG_EINVAL, "private key %d does not parse", index);
    printf("private key %d\n  type: %s (the key itself is not shown)\n", index, key);
    return 0;
}

static int print_public_key(const struct pem_block *b, int index, char *err)
{
    unsigned char *der = NULL;
    size_t der_len;
    char key[TG_KEY_TEXT];

    if (tg_pem_block_der(b->text, b->len, TG_PEM_BLOCK_PUBLIC_KEY, &der, &der_len) < 0)
        return tg_err_set(err, TG_EINVAL, "public key %d does not parse", index);
    tg_public_key_type(der, der_len, key);
    free(der);
    printf("public key %d\n  type: %s\n", index, key);
    return 0;
}

static int print_csr(const struct pem_block *b, int index, char *err)
{
    struct tg_cert_view v = {0};
    unsigned char *der = NULL;
    size_t der_len;
    char why[TG_ERRLEN];
    int rc;

    if (tg_pem_block_der(b->text, b->len, TG_PEM_BLOCK_CSR, &der, &der_len) < 0)
        return tg_err_set(err, TG_EINVAL, "certificate request %d does not parse", index);
    rc = tg_csr_view(der, der_len, &v, why);
    free(der);
    if (rc < 0)
        return tg_err_set(err, rc == TG_ENOMEM ? rc : TG_EINVAL, "certificate request %d: %s",
                          index, why);
    printf("certificate request %d\n", index);
    printf("  subject: %s\n", v.subject);
    printf("  key: %s\n", v.key);
    printf("  signature: %s\n", v.sig_ok ? "valid" : "NOT valid");
    print_sans(&v);
    print_spiffe(&v);
    tg_cert_view_cleanup(&v);
    return 0;
}

/* ---- inspect ---- */

static int print_block(const struct pem_block *b, int *counts, char *err)
{
    unsigned char *der = NULL;
    size_t der_len;
    int rc;

    if (strcmp(b->label, "CERTIFICATE") == 0 || strcmp(b->label, "TRUSTED CERTIFICATE") == 0) {
        if (tg_pem_block_der(b->text, b->len, TG_PEM_BLOCK_CERT, &der, &der_len) < 0)
            return tg_err_set(err, TG_EINVAL, "certificate %d: bad PEM", counts[0] + 1);
        rc = print_cert(der, der_len, ++counts[0], err);
        free(der);
        return rc;
    }
    if (strcmp(b->label, "X509 CRL") == 0) {
        if (tg_pem_block_der(b->text, b->len, TG_PEM_BLOCK_CRL, &der, &der_len) < 0)
            return tg_err_set(err, TG_EINVAL, "CRL %d: bad PEM", counts[1] + 1);
        rc = print_crl(der, der_len, ++counts[1], err);
        free(der);
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
        if (tg_pem_block_der(b.text, b.len, TG_PEM_BLOCK_CERT, &c->der[c->n], &c->len[c->n]) < 0) {
            rc = tg_err_set(err, TG_EINVAL, "%s: %s: certificate %zu: bad PEM", what, path,
                            c->n - before + 1);
            goto done;
        }
        c->n++;
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

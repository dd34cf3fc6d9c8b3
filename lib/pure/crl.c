/* CRL contents (crl.h): RFC 5280 section 5.1, read with the one DER reader (der.h). */
#include "tollgate/crl.h"

#include <stdlib.h>
#include <string.h>

#include "tollgate/der.h"

#define TAG_BOOLEAN 0x01
#define TAG_INTEGER 0x02
#define TAG_BIT_STRING 0x03
#define TAG_OCTET_STRING 0x04
#define TAG_OID 0x06
#define TAG_UTC_TIME 0x17
#define TAG_GEN_TIME 0x18
#define TAG_SEQUENCE 0x30
#define TAG_CRL_EXTENSIONS 0xa0 /* [0] EXPLICIT */
#define MAX_SERIAL_BYTES 32     /* RFC 5280 allows 20; tg_cert_info keeps 32 */

/* A cursor over the contents of one constructed value. */
struct cur {
    const unsigned char *buf;
    size_t off, end;
};

/* The next TLV: its tag, content at *in (a cursor over it), and c moved past it. */
static int next(struct cur *c, unsigned char *tag, struct cur *in)
{
    size_t off = c->off, len;

    *in = (struct cur){c->buf, c->end, c->end}; /* empty, on failure */
    if (c->off >= c->end || tg_der_header(c->buf, c->end, &off, tag, &len) < 0)
        return TG_EINVAL;
    in->buf = c->buf;
    in->off = off;
    in->end = off + len;
    c->off = off + len;
    return 0;
}

/* The tag of the next TLV without moving, or -1 at the end. */
static int peek(const struct cur *c)
{
    return c->off < c->end ? c->buf[c->off] : -1;
}

static int expect(struct cur *c, unsigned char want, struct cur *in, const char *what, char *err)
{
    unsigned char tag;

    if (next(c, &tag, in) < 0 || tag != want)
        return tg_err_set(err, TG_EINVAL, "CRL: %s does not parse", what);
    return 0;
}

/* "2.5.29.n" as DER content: 55 1d n. */
static bool is_ce(const struct cur *oid, unsigned char n)
{
    return oid->end - oid->off == 3 && oid->buf[oid->off] == 0x55 &&
           oid->buf[oid->off + 1] == 0x1d && oid->buf[oid->off + 2] == n;
}

#define CE_CRL_NUMBER 0x14
#define CE_REASON 0x15
#define CE_INVALIDITY_DATE 0x18
#define CE_DELTA_INDICATOR 0x1b
#define CE_ISSUING_DP 0x1c
#define CE_CERT_ISSUER 0x1d
#define CE_AUTHORITY_KEY_ID 0x23

/* Extensions (SEQUENCE OF Extension): the ones that change what the list means are refused,
 * and so is any critical one we do not know. entry: of a revoked certificate (else of the
 * CRL), for the messages and the choice of known ones. */
static int check_extensions(struct cur exts, bool entry, char *err)
{
    const char *where = entry ? "an entry's extension" : "extension";

    while (exts.off < exts.end) {
        struct cur ext, oid, v;
        unsigned char tag;
        bool critical = false, known;

        if (expect(&exts, TAG_SEQUENCE, &ext, where, err) < 0 ||
            expect(&ext, TAG_OID, &oid, where, err) < 0)
            return TG_EINVAL;
        if (peek(&ext) == TAG_BOOLEAN) {
            if (next(&ext, &tag, &v) < 0 || v.end - v.off != 1)
                return tg_err_set(err, TG_EINVAL, "CRL: %s does not parse", where);
            critical = v.buf[v.off] != 0;
        }
        if (expect(&ext, TAG_OCTET_STRING, &v, where, err) < 0)
            return TG_EINVAL;
        if (!entry && is_ce(&oid, CE_DELTA_INDICATOR))
            return tg_err_set(err, TG_EINVAL,
                              "CRL: a delta CRL (deltaCRLIndicator): not supported, "
                              "give the complete CRL");
        if (!entry && is_ce(&oid, CE_ISSUING_DP))
            return tg_err_set(err, TG_EINVAL,
                              "CRL: issuingDistributionPoint (a partitioned or indirect CRL): "
                              "not supported, give a complete CRL of its issuer");
        if (entry && is_ce(&oid, CE_CERT_ISSUER))
            return tg_err_set(err, TG_EINVAL,
                              "CRL: an entry names a certificateIssuer (an indirect CRL): not "
                              "supported, each CA's CRL must be its own");
        known = entry ? is_ce(&oid, CE_REASON) || is_ce(&oid, CE_INVALIDITY_DATE)
                      : is_ce(&oid, CE_CRL_NUMBER) || is_ce(&oid, CE_AUTHORITY_KEY_ID);
        if (critical && !known)
            return tg_err_set(err, TG_EINVAL,
                              "CRL: %s critical and unknown (RFC 5280 5.2: the CRL must not be "
                              "used)",
                              where);
    }
    return 0;
}

static int cmp_serial(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* revokedCertificates: each entry's serial, as tg_cert_inspect spells a certificate's. */
static int read_entries(struct cur list, struct tg_crl_view *out, char *err)
{
    size_t n = 0, cap = 0;
    struct cur probe = list, e;
    unsigned char tag;

    while (probe.off < probe.end) {
        if (next(&probe, &tag, &e) < 0 || tag != TAG_SEQUENCE)
            return tg_err_set(err, TG_EINVAL, "CRL: a revoked certificate entry does not parse");
        cap++;
    }
    if (cap == 0)
        return 0;
    if ((out->serials = calloc(cap, sizeof(*out->serials))) == NULL)
        return TG_ENOMEM;
    while (list.off < list.end) {
        struct cur serial, when;

        (void)next(&list, &tag, &e); /* checked above */
        if (expect(&e, TAG_INTEGER, &serial, "a revoked certificate's serial", err) < 0)
            return TG_EINVAL;
        if (next(&e, &tag, &when) < 0 || (tag != TAG_UTC_TIME && tag != TAG_GEN_TIME))
            return tg_err_set(err, TG_EINVAL, "CRL: a revocation date does not parse");
        if (peek(&e) == TAG_SEQUENCE) {
            struct cur exts;

            (void)next(&e, &tag, &exts);
            if (check_extensions(exts, true, err) < 0)
                return TG_EINVAL;
        }
        if (e.off != e.end)
            return tg_err_set(err, TG_EINVAL, "CRL: a revoked certificate entry has extra bytes");
        if (tg_serial_hex(serial.buf + serial.off, serial.end - serial.off, out->serials[n++],
                          TG_CRL_SERIAL_HEX) < 0)
            return tg_err_set(err, TG_EINVAL, "CRL: a serial of %zu bytes (at most %d)",
                              serial.end - serial.off, MAX_SERIAL_BYTES);
    }
    qsort(out->serials, n, sizeof(*out->serials), cmp_serial);
    out->n_serials = 0;
    for (size_t i = 0; i < n; i++) /* a serial listed twice counts once */
        if (out->n_serials == 0 || strcmp(out->serials[out->n_serials - 1], out->serials[i]) != 0)
            memmove(out->serials[out->n_serials++], out->serials[i], TG_CRL_SERIAL_HEX);
    return 0;
}

int tg_crl_parse(const unsigned char *der, size_t len, struct tg_crl_view *out, char *err)
{
    struct cur all = {der, 0, len}, list, tbs, x;
    unsigned char tag;
    int rc;

    memset(out, 0, sizeof(*out));
    if (expect(&all, TAG_SEQUENCE, &list, "CertificateList", err) < 0)
        return TG_EINVAL;
    if (all.off != all.end)
        return tg_err_set(err, TG_EINVAL, "CRL: bytes after the CertificateList");
    if (expect(&list, TAG_SEQUENCE, &tbs, "tbsCertList", err) < 0 ||
        expect(&list, TAG_SEQUENCE, &x, "signatureAlgorithm", err) < 0 ||
        expect(&list, TAG_BIT_STRING, &x, "signatureValue", err) < 0)
        return TG_EINVAL;
    if (list.off != list.end)
        return tg_err_set(err, TG_EINVAL, "CRL: bytes after the signature");
    if (peek(&tbs) == TAG_INTEGER) {
        (void)next(&tbs, &tag, &x);
        if (x.end - x.off != 1 || x.buf[x.off] != 1)
            return tg_err_set(err, TG_EINVAL, "CRL: version is not v2");
    }
    if (expect(&tbs, TAG_SEQUENCE, &x, "signature", err) < 0)
        return TG_EINVAL;
    if (expect(&tbs, TAG_SEQUENCE, &x, "issuer", err) < 0)
        return TG_EINVAL;
    out->issuer = der + x.off;
    out->issuer_len = x.end - x.off;
    if (next(&tbs, &tag, &x) < 0 || (tag != TAG_UTC_TIME && tag != TAG_GEN_TIME))
        return tg_err_set(err, TG_EINVAL, "CRL: thisUpdate does not parse");
    if (peek(&tbs) == TAG_UTC_TIME || peek(&tbs) == TAG_GEN_TIME)
        (void)next(&tbs, &tag, &x); /* nextUpdate: wolfSSL checks it when it loads the CRL */
    if (peek(&tbs) == TAG_SEQUENCE) {
        (void)next(&tbs, &tag, &x);
        if ((rc = read_entries(x, out, err)) < 0) {
            tg_crl_view_cleanup(out);
            return rc;
        }
    }
    if (peek(&tbs) == TAG_CRL_EXTENSIONS) {
        struct cur exts;

        (void)next(&tbs, &tag, &x);
        if (expect(&x, TAG_SEQUENCE, &exts, "crlExtensions", err) < 0 ||
            check_extensions(exts, false, err) < 0) {
            tg_crl_view_cleanup(out);
            return TG_EINVAL;
        }
    }
    if (tbs.off != tbs.end) {
        tg_crl_view_cleanup(out);
        return tg_err_set(err, TG_EINVAL, "CRL: unexpected bytes in tbsCertList");
    }
    return 0;
}

void tg_crl_view_cleanup(struct tg_crl_view *v)
{
    free(v->serials);
    memset(v, 0, sizeof(*v));
}

bool tg_crl_lists(const struct tg_crl_view *v, const char *serial)
{
    return v->n_serials > 0 &&
           bsearch(serial, v->serials, v->n_serials, sizeof(*v->serials), cmp_serial) != NULL;
}

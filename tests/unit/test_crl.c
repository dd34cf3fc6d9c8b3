/* tg_crl_parse: what a CRL lists, and the CRLs refused because their list would not mean what
 * a plain CRL means (delta, partitioned, indirect, unknown critical extensions) or does not
 * parse. CRLs are built here byte by byte; the signature is identity.c's business. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "tollgate/crl.h"

struct b {
    unsigned char p[2048];
    size_t n;
};

static void put(struct b *b, const void *src, size_t len)
{
    ck_assert_uint_le(b->n + len, sizeof(b->p));
    memcpy(b->p + b->n, src, len);
    b->n += len;
}

/* tag, length, then the bytes of inner */
static void tlv(struct b *out, unsigned char tag, const struct b *inner)
{
    unsigned char h[4] = {tag};
    size_t n = 1;

    if (inner->n < 0x80) {
        h[n++] = (unsigned char)inner->n;
    } else {
        h[n++] = 0x82;
        h[n++] = (unsigned char)(inner->n >> 8);
        h[n++] = (unsigned char)inner->n;
    }
    put(out, h, n);
    put(out, inner->p, inner->n);
}

static void raw(struct b *out, unsigned char tag, const void *bytes, size_t len)
{
    struct b in = {.n = 0};

    put(&in, bytes, len);
    tlv(out, tag, &in);
}

static const unsigned char ECDSA_SHA256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const unsigned char CN[] = {0x55, 0x04, 0x03};

static void ext(struct b *out, unsigned char ce, bool critical)
{
    struct b e = {.n = 0};
    const unsigned char oid[] = {0x55, 0x1d, ce}, yes = 0xff, value[] = {0x02, 0x01, 0x05};

    raw(&e, 0x06, oid, sizeof(oid));
    if (critical)
        raw(&e, 0x01, &yes, 1);
    raw(&e, 0x04, value, sizeof(value));
    tlv(out, 0x30, &e);
}

static void entry(struct b *out, const unsigned char *serial, size_t len, int ext_ce, bool critical)
{
    struct b e = {.n = 0}, exts = {.n = 0};

    raw(&e, 0x02, serial, len);
    raw(&e, 0x17, "260101000000Z", 13);
    if (ext_ce > 0) {
        ext(&exts, (unsigned char)ext_ce, critical);
        tlv(&e, 0x30, &exts);
    }
    tlv(out, 0x30, &e);
}

/* A CRL of issuer CN=issuing: entries (already encoded, may be empty) and crl_exts (the
 * Extensions' contents; n == 0: none). */
static void crl(struct b *out, const struct b *entries, const struct b *crl_exts)
{
    struct b tbs = {.n = 0}, alg = {.n = 0}, name = {.n = 0}, rdn = {.n = 0}, atv = {.n = 0};
    struct b list = {.n = 0}, w = {.n = 0}, seq = {.n = 0};
    const unsigned char v2 = 1, sig[] = {0x00, 0x30, 0x00};

    raw(&alg, 0x06, ECDSA_SHA256, sizeof(ECDSA_SHA256));
    raw(&atv, 0x06, CN, sizeof(CN));
    raw(&atv, 0x0c, "issuing", 7);
    tlv(&rdn, 0x30, &atv);
    tlv(&name, 0x31, &rdn);
    raw(&tbs, 0x02, &v2, 1);
    tlv(&tbs, 0x30, &alg);
    tlv(&tbs, 0x30, &name);
    raw(&tbs, 0x17, "260101000000Z", 13);
    raw(&tbs, 0x17, "260201000000Z", 13);
    if (entries->n > 0)
        tlv(&tbs, 0x30, entries);
    if (crl_exts->n > 0) {
        tlv(&seq, 0x30, crl_exts);
        tlv(&tbs, 0xa0, &seq);
    }
    tlv(&list, 0x30, &tbs);
    tlv(&list, 0x30, &alg);
    raw(&list, 0x03, sig, sizeof(sig));
    tlv(&w, 0x30, &list);
    *out = w;
}

START_TEST(test_crl_lists_serials_as_certificates_spell_them)
{
    const unsigned char s1[] = {0x10, 0x01}, s2[] = {0x00, 0x80}, s3[] = {0x00, 0x00, 0x2a};
    struct b entries = {.n = 0}, exts = {.n = 0}, der;
    struct tg_crl_view v;
    char err[TG_ERRLEN] = "";

    entry(&entries, s1, sizeof(s1), 0x15, false); /* reasonCode */
    entry(&entries, s2, sizeof(s2), 0, false);
    entry(&entries, s3, sizeof(s3), 0x18, true); /* invalidityDate, critical: known */
    entry(&entries, s1, sizeof(s1), 0, false);   /* twice */
    ext(&exts, 0x14, false);                     /* cRLNumber */
    ext(&exts, 0x23, false);                     /* authorityKeyIdentifier */
    ext(&exts, 0x2e, false);                     /* freshestCRL: unknown, not critical */
    crl(&der, &entries, &exts);
    ck_assert_msg(tg_crl_parse(der.p, der.n, &v, err) == 0, "%s", err);
    ck_assert_uint_eq(v.n_serials, 3);
    ck_assert_str_eq(v.serials[0], "1001");
    ck_assert_str_eq(v.serials[1], "2a");
    ck_assert_str_eq(v.serials[2], "80");
    ck_assert(tg_crl_lists(&v, "1001"));
    ck_assert(tg_crl_lists(&v, "80"));
    ck_assert(!tg_crl_lists(&v, "0080"));
    ck_assert(!tg_crl_lists(&v, "1002"));
    ck_assert_uint_eq(v.issuer_len, 18); /* SET { SEQ { OID, UTF8String "issuing" } } */
    ck_assert_int_eq(v.issuer[0], 0x31);
    tg_crl_view_cleanup(&v);
}
END_TEST

START_TEST(test_crl_without_entries_lists_nothing)
{
    struct b none = {.n = 0}, der;
    struct tg_crl_view v;
    char err[TG_ERRLEN] = "";

    crl(&der, &none, &none);
    ck_assert_msg(tg_crl_parse(der.p, der.n, &v, err) == 0, "%s", err);
    ck_assert_uint_eq(v.n_serials, 0);
    ck_assert(!tg_crl_lists(&v, "1"));
    tg_crl_view_cleanup(&v);
}
END_TEST

/* Each CRL refused, and the words of its refusal. */
static const struct {
    int crl_ext, crl_critical, entry_ext, entry_critical;
    const char *want;
} refused[] = {
    {0x1b, 1, 0, 0, "delta CRL"},
    {0x1c, 1, 0, 0, "issuingDistributionPoint"},
    {0x1c, 0, 0, 0, "issuingDistributionPoint"},
    {0x30, 1, 0, 0, "critical and unknown"},
    {0, 0, 0x1d, 1, "certificateIssuer"},
    {0, 0, 0x30, 1, "an entry's extension critical and unknown"},
};

START_TEST(test_crl_extensions_that_change_its_meaning_are_refused)
{
    const unsigned char s[] = {0x07};
    struct b entries = {.n = 0}, exts = {.n = 0}, der;
    struct tg_crl_view v;
    char err[TG_ERRLEN] = "";

    entry(&entries, s, sizeof(s), refused[_i].entry_ext, refused[_i].entry_critical);
    if (refused[_i].crl_ext > 0)
        ext(&exts, (unsigned char)refused[_i].crl_ext, refused[_i].crl_critical);
    crl(&der, &entries, &exts);
    ck_assert_int_eq(tg_crl_parse(der.p, der.n, &v, err), TG_EINVAL);
    ck_assert_msg(strstr(err, refused[_i].want) != NULL, "%zu: %s", (size_t)_i, err);
    ck_assert_ptr_null(v.serials);
}
END_TEST

START_TEST(test_crl_malformed_is_refused)
{
    unsigned char big[40];
    struct b entries = {.n = 0}, none = {.n = 0}, der, more;
    struct tg_crl_view v;
    char err[TG_ERRLEN] = "";

    memset(big, 0x11, sizeof(big));
    entry(&entries, big, 33, 0, false); /* a serial longer than 32 bytes */
    crl(&der, &entries, &none);
    ck_assert_int_eq(tg_crl_parse(der.p, der.n, &v, err), TG_EINVAL);
    ck_assert_msg(strstr(err, "serial of 33 bytes") != NULL, "%s", err);

    crl(&der, &none, &none);
    for (size_t cut = 0; cut < der.n; cut++) /* every truncation */
        ck_assert_msg(tg_crl_parse(der.p, cut, &v, err) == TG_EINVAL, "cut at %zu", cut);
    more = der;
    put(&more, "\x00", 1);
    ck_assert_int_eq(tg_crl_parse(more.p, more.n, &v, err), TG_EINVAL);
    ck_assert_msg(strstr(err, "bytes after") != NULL, "%s", err);
    ck_assert_int_eq(tg_crl_parse((const unsigned char *)"\x30\x00", 2, &v, err), TG_EINVAL);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE("crl", "crl", &tc, test_crl_lists_serials_as_certificates_spell_them,
                             test_crl_without_entries_lists_nothing, test_crl_malformed_is_refused);

    TG_TEST_LOOPS(tc,
                  TG_TEST_LOOP(test_crl_extensions_that_change_its_meaning_are_refused, refused));
    return s;
}

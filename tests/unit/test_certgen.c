/* lib/pki: certgen.c, keys, certificates and requests made behind plain C types; and
 * certview.c, what they say as a person reads it.
 *
 * certgen: a root, an intermediate and a leaf come out as the sidecar reads them
 * (tg_cert_inspect: CA flags, serial, dates, SPIFFE ID; tg_cert_view: path length, EKU,
 * names); a request carries its names and a valid self-signature; keys round-trip through
 * PEM. Bad input is refused with what was wrong named and nothing handed out: a CN too long,
 * serials that are zero, too long or negative, a path length over 255, an unknown key usage,
 * dates past 9999, an issuer whose key is not its certificate's, keys that are garbage or
 * not P-256.
 *
 * certview: a certificate made by the openssl CLI (IP, email, URI and DNS names,
 * codeSigning, a two-part subject) reads back as openssl prints it (but for a space after
 * each comma); times decode in both ASN.1 forms; public key types are named; garbage is
 * refused (or named "(none)") without crashing or leaking. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "tollgate/certgen.h"
#include "tollgate/certview.h"
#include "tollgate/file.h"
#include "tollgate/identity.h"

#define T0 1767225600 /* 2026-01-01 */

static const char *const leaf_uri[] = {"spiffe://mesh.local/ns/demo/sa/web"};
static const char *const leaf_dns[] = {"web.demo.svc"};

static struct tg_key *root_key, *leaf_key;
static unsigned char *root_der;
static size_t root_len;

static struct tg_cert_spec ca_spec(void)
{
    return (struct tg_cert_spec){.cn = "test root",
                                 .not_before = T0,
                                 .not_after = T0 + 86400,
                                 .ca = true,
                                 .path_len = 1,
                                 .key_usage = "keyCertSign,cRLSign"};
}

static struct tg_cert_spec leaf_spec(void)
{
    return (struct tg_cert_spec){.cn = "web",
                                 .not_before = T0,
                                 .not_after = T0 + 3600,
                                 .path_len = -1,
                                 .key_usage = "digitalSignature",
                                 .ext_key_usage = "serverAuth,clientAuth",
                                 .uris = leaf_uri,
                                 .n_uris = 1,
                                 .dns = leaf_dns,
                                 .n_dns = 1};
}

static void setup(void)
{
    struct tg_cert_spec s = ca_spec();
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_key_generate(&root_key, err), 0);
    ck_assert_int_eq(tg_key_generate(&leaf_key, err), 0);
    ck_assert_msg(tg_cert_make(&s, root_key, NULL, &root_der, &root_len, err) == 0, "%s", err);
}

static void teardown(void)
{
    free(root_der);
    tg_key_free(root_key);
    tg_key_free(leaf_key);
}

START_TEST(test_root_and_leaf)
{
    struct tg_cert_spec s = leaf_spec();
    struct tg_cert_issuer issuer = {root_der, root_len, root_key};
    struct tg_cert_info info;
    struct tg_cert_view v = {0};
    unsigned char *der = NULL;
    size_t len = 0;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_cert_inspect(root_der, root_len, &info, err), 0);
    ck_assert(info.is_ca && info.key_cert_sign && !info.eku_set);
    ck_assert_int_eq(info.not_before, T0);
    ck_assert_int_eq(info.not_after, T0 + 86400);
    ck_assert_uint_eq(strlen(info.serial), 32); /* 16 random bytes, first not zero */
    ck_assert_int_eq(tg_cert_view(root_der, root_len, &v, err), 0);
    ck_assert(v.self_signed && v.path_len_set && v.path_len == 1 && !v.eku_set);
    ck_assert_str_eq(v.subject, "CN=test root");
    tg_cert_view_cleanup(&v);

    ck_assert_msg(tg_cert_make(&s, leaf_key, &issuer, &der, &len, err) == 0, "%s", err);
    ck_assert_int_eq(tg_key_matches(leaf_key, der, len, "leaf", err), 0);
    ck_assert_int_eq(tg_key_matches(root_key, der, len, "leaf", err), TG_EINVAL);
    ck_assert_msg(strstr(err, "leaf: the key does not belong") != NULL, "%s", err);
    ck_assert_int_eq(tg_cert_inspect(der, len, &info, err), 0);
    ck_assert(!info.is_ca && info.eku_server && info.eku_client && info.id_ok);
    ck_assert_str_eq(info.id.id, leaf_uri[0]);
    ck_assert_str_eq(info.cn, "web");
    ck_assert_int_eq(tg_cert_view(der, len, &v, err), 0);
    ck_assert(!v.self_signed && !v.path_len_set);
    ck_assert_str_eq(v.issuer, "CN=test root");
    ck_assert_str_eq(v.key, "EC P-256");
    ck_assert_str_eq(v.eku, "serverAuth, clientAuth");
    ck_assert_uint_eq(v.n_sans, 2);
    ck_assert(v.sans[0].type == TG_SAN_URI && strcmp(v.sans[0].value, leaf_uri[0]) == 0);
    ck_assert(v.sans[1].type == TG_SAN_DNS && strcmp(v.sans[1].value, leaf_dns[0]) == 0);
    tg_cert_view_cleanup(&v);
    free(der);
}
END_TEST

START_TEST(test_fixed_serial_and_far_dates)
{
    static const unsigned char serial[] = {0x80, 0xaa};
    struct tg_cert_spec s = leaf_spec();
    struct tg_cert_info info;
    unsigned char *der = NULL;
    size_t len = 0;
    char err[TG_ERRLEN] = "";

    s.serial = serial;
    s.serial_len = sizeof(serial);
    s.not_after = 2556143999; /* 2050-12-31: GeneralizedTime (RFC 5280 4.1.2.5) */
    ck_assert_msg(tg_cert_make(&s, leaf_key, NULL, &der, &len, err) == 0, "%s", err);
    ck_assert_int_eq(tg_cert_inspect(der, len, &info, err), 0);
    ck_assert_str_eq(info.serial, "80aa");
    ck_assert_int_eq(info.not_after, 2556143999);
    free(der);
}
END_TEST

/* Each spec is refused with want in the message, and nothing is handed out. */
START_TEST(test_bad_specs_refused)
{
    static const unsigned char zero[] = {0x00, 0x01}, negative[TG_CERT_SERIAL_MAX] = {0x80},
                               long_serial[TG_CERT_SERIAL_MAX + 1] = {0x01};
    char long_cn[TG_CERT_CN_MAX + 2];
    struct {
        struct tg_cert_spec spec;
        const char *want;
    } bad[8];
    struct tg_cert_issuer wrong = {root_der, root_len, leaf_key};
    unsigned char *der = NULL;
    size_t len = 0, n = 0;
    char err[TG_ERRLEN];

    memset(long_cn, 'a', sizeof(long_cn) - 1);
    long_cn[sizeof(long_cn) - 1] = '\0';
    for (size_t i = 0; i < TG_NELEM(bad); i++)
        bad[i].spec = leaf_spec();
    bad[n].spec.cn = long_cn, bad[n++].want = "common name longer than 63 bytes";
    bad[n].spec.serial = zero, bad[n].spec.serial_len = sizeof(zero), bad[n++].want = "serial";
    bad[n].spec.serial = negative, bad[n].spec.serial_len = sizeof(negative),
    bad[n++].want = "serial";
    bad[n].spec.serial = long_serial, bad[n].spec.serial_len = sizeof(long_serial),
    bad[n++].want = "serial";
    bad[n].spec.ca = true, bad[n].spec.path_len = 300, bad[n++].want = "path length 300";
    bad[n].spec.key_usage = "digitalSignature,flying", bad[n++].want = "key usage";
    bad[n].spec.ext_key_usage = "walking", bad[n++].want = "extended key usage walking";
    bad[n].spec.not_after = 253402300800LL, bad[n++].want = "validity dates out of range";
    for (size_t i = 0; i < n; i++) {
        err[0] = '\0';
        int rc = tg_cert_make(&bad[i].spec, leaf_key, NULL, &der, &len, err);

        ck_assert_msg(rc == TG_EINVAL, "%zu: rc %d, want TG_EINVAL (%s)", i, rc, bad[i].want);
        ck_assert_ptr_null(der);
        ck_assert_msg(strstr(err, bad[i].want) != NULL, "%zu: \"%s\", want \"%s\"", i, err,
                      bad[i].want);
    }
    ck_assert_int_eq(tg_cert_make(&bad[0].spec, leaf_key, &wrong, &der, &len, err), TG_EINVAL);
    ck_assert_msg(strstr(err, "issuer: the key does not belong") != NULL, "%s", err);
    ck_assert_ptr_null(der);
}
END_TEST

START_TEST(test_csr)
{
    struct tg_cert_spec s = leaf_spec();
    struct tg_cert_view v = {0};
    unsigned char *der = NULL, *back = NULL;
    char *pem = NULL;
    size_t len = 0, pem_len = 0, back_len = 0;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(tg_csr_make(&s, leaf_key, &der, &len, err) == 0, "%s", err);
    ck_assert_int_eq(tg_pem_encode(der, len, TG_PEM_CSR, &pem, &pem_len, err), 0);
    ck_assert_ptr_nonnull(strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----"));
    ck_assert_uint_eq(strlen(pem), pem_len);
    ck_assert_int_eq(tg_pem_block_der(pem, pem_len, TG_PEM_BLOCK_CSR, &back, &back_len), 0);
    ck_assert(back_len == len && memcmp(back, der, len) == 0);
    ck_assert_int_eq(tg_csr_view(der, len, &v, err), 0);
    ck_assert(v.sig_ok);
    ck_assert_str_eq(v.subject, "CN=web");
    ck_assert_str_eq(v.key, "EC P-256");
    ck_assert_uint_eq(v.n_sans, 2);
    tg_cert_view_cleanup(&v);
    /* one byte of the signed part changed: the signature no longer holds */
    der[len / 3] ^= 0x01;
    if (tg_csr_view(der, len, &v, err) == 0)
        ck_assert(!v.sig_ok);
    tg_cert_view_cleanup(&v);
    free(back);
    free(pem);
    free(der);
}
END_TEST

START_TEST(test_key_pem_round_trip)
{
    struct tg_key *back = NULL;
    char *pem = NULL;
    size_t pem_len = 0;
    char err[TG_ERRLEN] = "", type[TG_KEY_TEXT];

    ck_assert_int_eq(tg_key_pem(leaf_key, &pem, &pem_len, err), 0);
    ck_assert_ptr_nonnull(strstr(pem, "-----BEGIN EC PRIVATE KEY-----"));
    ck_assert_int_eq(tg_key_decode(pem, pem_len, false, "leaf.key", &back, err), 0);
    ck_assert_int_eq(tg_private_key_type(pem, pem_len, type), 0);
    ck_assert_str_eq(type, "EC P-256");
    tg_wipe_free(pem, pem_len + 1);
    /* the decoded key signs certificates that match the original */
    {
        struct tg_cert_spec s = leaf_spec();
        unsigned char *der = NULL;
        size_t len = 0;

        ck_assert_int_eq(tg_cert_make(&s, back, NULL, &der, &len, err), 0);
        ck_assert_int_eq(tg_key_matches(leaf_key, der, len, "leaf", err), 0);
        free(der);
    }
    tg_key_free(back);
}
END_TEST

START_TEST(test_bad_keys_refused)
{
    static const char garbage[] = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE "
                                  "KEY-----\n";
    unsigned char der[256];
    struct tg_key *k = NULL;
    char err[TG_ERRLEN] = "";
    WC_RNG rng;
    ecc_key p384;
    int len;

    ck_assert_int_eq(tg_key_decode(garbage, sizeof(garbage) - 1, false, "bad.key", &k, err),
                     TG_EINVAL);
    ck_assert_ptr_null(k);
    ck_assert_msg(strncmp(err, "bad.key: ", 9) == 0, "%s", err);
    /* DER only where allowed */
    ck_assert_int_eq(tg_key_decode("\x30\x03\x02\x01\x01", 5, false, "der.key", &k, err),
                     TG_EINVAL);
    ck_assert_msg(strstr(err, "no PEM private key") != NULL, "%s", err);
    /* a P-384 key */
    ck_assert_int_eq(wc_InitRng(&rng), 0);
    ck_assert_int_eq(wc_ecc_init(&p384), 0);
    ck_assert_int_eq(wc_ecc_make_key_ex(&rng, 48, &p384, ECC_SECP384R1), 0);
    len = wc_EccKeyToDer(&p384, der, sizeof(der));
    wc_ecc_free(&p384);
    wc_FreeRng(&rng);
    ck_assert_int_gt(len, 0);
    ck_assert_int_eq(tg_key_decode((const char *)der, (size_t)len, true, "p384.key", &k, err),
                     TG_EINVAL);
    ck_assert_msg(strstr(err, "p384.key: not a P-256 key") != NULL, "%s", err);
    ck_assert_ptr_null(k);
    tg_key_free(NULL);
}
END_TEST

START_TEST(test_pem_cert_der)
{
    char err[TG_ERRLEN] = "", *pem = NULL;
    unsigned char *der = NULL;
    size_t len = 0, pem_len = 0;

    ck_assert_int_eq(tg_pem_encode(root_der, root_len, TG_PEM_CERT, &pem, &pem_len, err), 0);
    ck_assert_int_eq(tg_pem_cert_der(pem, pem_len, "root.pem", &der, &len, err), 0);
    ck_assert(len == root_len && memcmp(der, root_der, len) == 0);
    free(der);
    der = NULL;
    ck_assert_int_eq(tg_pem_cert_der("no pem here", 11, "x.pem", &der, &len, err), TG_EINVAL);
    ck_assert_msg(strstr(err, "x.pem: no PEM certificate") != NULL, "%s", err);
    ck_assert_ptr_null(der);
    free(pem);
}
END_TEST

/* ---- certview ---- */

/* openssl req -x509 -newkey ec (P-256) -subj "/O=tollgate test/CN=san" -addext
 * subjectAltName=IP:10.0.0.1,IP:::1,email:ops@example.com,URI:spiffe://mesh.local/ns/a/sa/b,
 * DNS:a.example -addext extendedKeyUsage=codeSigning -days 36500 */
static const char san_pem[] = "-----BEGIN CERTIFICATE-----\n"
                              "MIICGDCCAb6gAwIBAgIUQ/YScCU0g1bxYyAfYWG6MCe18o0wCgYIKoZIzj0EAwIw\n"
                              "JjEWMBQGA1UECgwNdG9sbGdhdGUgdGVzdDEMMAoGA1UEAwwDc2FuMCAXDTI2MTIw\n"
                              "NzA0NTYwNFoYDzIxMjYxMTEzMDQ1NjA0WjAmMRYwFAYDVQQKDA10b2xsZ2F0ZSB0\n"
                              "ZXN0MQwwCgYDVQQDDANzYW4wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARuFMfZ\n"
                              "lV0n7Pb5zqu28iyb7XNbd5MSJIT96S/sf9lWCJXATIkDbzgxiw8a5RwSdnSqsgZi\n"
                              "KprAD8VfkFM18HPJo4HHMIHEMB0GA1UdDgQWBBQvcV502VAPqtEP5FqsoE0ByEc6\n"
                              "ODAfBgNVHSMEGDAWgBQvcV502VAPqtEP5FqsoE0ByEc6ODAPBgNVHRMBAf8EBTAD\n"
                              "AQH/MFwGA1UdEQRVMFOHBAoAAAGHEAAAAAAAAAAAAAAAAAAAAAGBD29wc0BleGFt\n"
                              "cGxlLmNvbYYdc3BpZmZlOi8vbWVzaC5sb2NhbC9ucy9hL3NhL2KCCWEuZXhhbXBs\n"
                              "ZTATBgNVHSUEDDAKBggrBgEFBQcDAzAKBggqhkjOPQQDAgNIADBFAiBpdKp5cGoA\n"
                              "+du57BKGlkwyapAntxEW2FVf6dQVv12JAAIhAL69b9QqM0qfcYAVpDBgJgUc0sY+\n"
                              "ohKee/pbcsjRRTeM\n"
                              "-----END CERTIFICATE-----\n";

START_TEST(test_cert_as_openssl_prints_it)
{
    static const struct {
        enum tg_san_type type;
        const char *value;
    } want[] = {/* IP addresses: not kept by tollgate's wolfSSL build (certview.h) */
                {TG_SAN_URI, "spiffe://mesh.local/ns/a/sa/b"},
                {TG_SAN_DNS, "a.example"},
                {TG_SAN_EMAIL, "ops@example.com"}};
    struct tg_cert_view v = {0};
    unsigned char *der = NULL;
    size_t len = 0;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_pem_block_der(san_pem, sizeof(san_pem) - 1, TG_PEM_BLOCK_CERT, &der, &len),
                     0);
    ck_assert_int_eq(tg_cert_view(der, len, &v, err), 0);
    ck_assert_str_eq(v.subject, "CN=san, O=tollgate test");
    ck_assert_str_eq(v.issuer, "CN=san, O=tollgate test");
    ck_assert_str_eq(v.key, "EC P-256");
    ck_assert(v.self_signed && !v.path_len_set && v.eku_set);
    ck_assert_str_eq(v.eku, "codeSigning");
    ck_assert_uint_eq(v.n_sans, TG_NELEM(want));
    for (size_t i = 0; i < TG_NELEM(want); i++) {
        ck_assert_int_eq(v.sans[i].type, want[i].type);
        ck_assert_str_eq(v.sans[i].value, want[i].value);
        ck_assert_uint_eq(v.sans[i].len, strlen(want[i].value));
    }
    tg_cert_view_cleanup(&v);
    tg_cert_view_cleanup(&v); /* twice is fine */
    free(der);
}
END_TEST

START_TEST(test_garbage_refused)
{
    static const unsigned char junk[] = {0x30, 0x82, 0x01, 0x00, 0x02, 0x01};
    struct tg_cert_view v = {0};
    unsigned char *der = NULL;
    size_t len = 0;
    char err[TG_ERRLEN] = "", text[TG_NAME_TEXT];

    ck_assert_int_eq(tg_cert_view(junk, sizeof(junk), &v, err), TG_EINVAL);
    ck_assert_uint_eq(v.n_sans, 0);
    ck_assert_int_eq(tg_csr_view(junk, sizeof(junk), &v, err), TG_EINVAL);
    ck_assert_uint_eq(v.n_sans, 0);
    /* a certificate is not a CSR, a CRL or a key */
    ck_assert_int_eq(tg_pem_block_der(san_pem, sizeof(san_pem) - 1, TG_PEM_BLOCK_CSR, &der, &len),
                     TG_EINVAL);
    ck_assert_int_eq(tg_pem_block_der(san_pem, sizeof(san_pem) - 1, TG_PEM_BLOCK_CRL, &der, &len),
                     TG_EINVAL);
    ck_assert_int_eq(tg_private_key_type(san_pem, sizeof(san_pem) - 1, text), TG_EINVAL);
    ck_assert_ptr_null(der);
    tg_crl_issuer(junk, sizeof(junk), text);
    ck_assert_str_eq(text, "(none)");
    tg_public_key_type(junk, sizeof(junk), text);
    ck_assert_str_eq(text, "(a key type tollgate does not read)");
}
END_TEST

START_TEST(test_public_key_type)
{
    unsigned char spki[128];
    char text[TG_KEY_TEXT];
    WC_RNG rng;
    ecc_key k;
    int len;

    ck_assert_int_eq(wc_InitRng(&rng), 0);
    ck_assert_int_eq(wc_ecc_init(&k), 0);
    ck_assert_int_eq(wc_ecc_make_key_ex(&rng, 48, &k, ECC_SECP384R1), 0);
    len = wc_EccPublicKeyToDer(&k, spki, sizeof(spki), 1);
    wc_ecc_free(&k);
    wc_FreeRng(&rng);
    ck_assert_int_gt(len, 0);
    tg_public_key_type(spki, (size_t)len, text);
    ck_assert_str_eq(text, "EC P-384");
}
END_TEST

START_TEST(test_asn_time)
{
    static const unsigned char utc[] = "\x17\x0d"
                                       "491231235959Z",
                               gen[] = "\x18\x0f"
                                       "20500101000000Z",
                               bad[] = "\x17\x0d"
                                       "49123123595xZ";
    int64_t t = 0;

    ck_assert_int_eq(tg_asn_time(utc, sizeof(utc) - 1, &t), 0);
    ck_assert_int_eq(t, 2524607999);
    ck_assert_int_eq(tg_asn_time(gen, sizeof(gen) - 1, &t), 0);
    ck_assert_int_eq(t, 2524608000);
    ck_assert_int_eq(tg_asn_time(bad, sizeof(bad) - 1, &t), TG_EINVAL);
    ck_assert_int_eq(tg_asn_time(utc, 5, &t), TG_EINVAL);
}
END_TEST

Suite *tg_test_suite(void)
{
    const TTest *made[] = {
        test_root_and_leaf,      test_fixed_serial_and_far_dates, test_bad_specs_refused, test_csr,
        test_key_pem_round_trip, test_bad_keys_refused,           test_pem_cert_der};
    const TTest *read[] = {test_cert_as_openssl_prints_it, test_garbage_refused,
                           test_public_key_type, test_asn_time};
    Suite *s = suite_create("certgen");
    TCase *certgen = tcase_create("certgen"), *certview = tcase_create("certview");

    tcase_add_checked_fixture(certgen, setup, teardown);
    for (size_t i = 0; i < TG_NELEM(made); i++)
        tcase_add_test(certgen, made[i]);
    for (size_t i = 0; i < TG_NELEM(read); i++)
        tcase_add_test(certview, read[i]);
    suite_add_tcase(s, certgen);
    suite_add_tcase(s, certview);
    return s;
}

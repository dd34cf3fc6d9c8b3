/* lib/pki/certview.c: what certificates, keys and dates say, as a person reads them. A
 * certificate made by the openssl CLI (IP, email, URI and DNS names, codeSigning, a two-part
 * subject) reads back as openssl prints it (but for a space after each comma); times decode in both
 * ASN.1 forms; public key types are named; garbage is refused (or named "(none)") without crashing
 * or leaking. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "tollgate/certview.h"

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
    Suite *s = suite_create("certview");
    TCase *tc = tcase_create("certview");

    tcase_add_test(tc, test_cert_as_openssl_prints_it);
    tcase_add_test(tc, test_garbage_refused);
    tcase_add_test(tc, test_public_key_type);
    tcase_add_test(tc, test_asn_time);
    suite_add_tcase(s, tc);
    return s;
}

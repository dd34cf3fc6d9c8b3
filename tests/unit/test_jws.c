/* lib/pki/jws.c: JWS signature keys. Keys and signatures are made here with wolfCrypt (the
 * adapter under test wraps it): ES256 and RS256 signatures verify with keys read every way a
 * key file carries them (SubjectPublicKeyInfo, PKCS#1, JWK coordinates); a tampered message,
 * a tampered or mis-sized signature and the other algorithm are refused; keys tollgate must
 * not verify with (RSA under 2048 bits, P-384, a point off the curve, trailing bytes,
 * garbage) are refused with what was wrong named. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/signature.h>
#include <check.h>
#include "check_main.h"
#include <string.h>

#include "tollgate/jws.h"

static const unsigned char msg[] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0";

static WC_RNG rng;
static ecc_key ec;
static RsaKey rsa;
static unsigned char ec_sig[64], rsa_sig[256];

static void setup(void)
{
    unsigned char der[80], r[32], s[32];
    word32 der_len = sizeof(der), r_len = sizeof(r), s_len = sizeof(s), sig_len = sizeof(rsa_sig);

    ck_assert_int_eq(wc_InitRng(&rng), 0);
    ck_assert_int_eq(wc_ecc_init(&ec), 0);
    ck_assert_int_eq(wc_ecc_make_key_ex(&rng, 32, &ec, ECC_SECP256R1), 0);
    ck_assert_int_eq(wc_SignatureGenerate(WC_HASH_TYPE_SHA256, WC_SIGNATURE_TYPE_ECC, msg,
                                          sizeof(msg) - 1, der, &der_len, &ec, sizeof(ec), &rng),
                     0);
    ck_assert_int_eq(wc_ecc_sig_to_rs(der, der_len, r, &r_len, s, &s_len), 0);
    /* r || s, each left-padded to 32 bytes (RFC 7518 section 3.4) */
    memset(ec_sig, 0, sizeof(ec_sig));
    memcpy(ec_sig + 32 - r_len, r, r_len);
    memcpy(ec_sig + 64 - s_len, s, s_len);
    ck_assert_int_eq(wc_InitRsaKey(&rsa, NULL), 0);
    ck_assert_int_eq(wc_MakeRsaKey(&rsa, 2048, WC_RSA_EXPONENT, &rng), 0);
    ck_assert_int_eq(wc_SignatureGenerate(WC_HASH_TYPE_SHA256, WC_SIGNATURE_TYPE_RSA_W_ENC, msg,
                                          sizeof(msg) - 1, rsa_sig, &sig_len, &rsa, sizeof(rsa),
                                          &rng),
                     0);
    ck_assert_uint_eq(sig_len, sizeof(rsa_sig));
}

static void teardown(void)
{
    wc_FreeRsaKey(&rsa);
    wc_ecc_free(&ec);
    wc_FreeRng(&rng);
}

/* Refused as a key, with want in the message and nothing handed out. */
static void assert_refused(int rc, struct tg_jws_key *k, const char *err, const char *want)
{
    ck_assert_int_eq(rc, TG_EINVAL);
    ck_assert_ptr_null(k);
    ck_assert_msg(strstr(err, want) != NULL, "\"%s\", want \"%s\"", err, want);
    ck_assert_msg(strncmp(err, "keyfile", 7) == 0, "\"%s\" does not start with what", err);
}

static void assert_verifies(const struct tg_jws_key *k, enum tg_jws_alg alg,
                            const unsigned char *sig, size_t sig_len)
{
    unsigned char bad[256];

    ck_assert_int_eq(tg_jws_key_alg(k), alg);
    ck_assert_int_eq(tg_jws_verify(k, alg, msg, sizeof(msg) - 1, sig, sig_len), 0);
    /* one changed byte of the message, of the signature; a signature cut short */
    ck_assert_int_eq(tg_jws_verify(k, alg, msg, sizeof(msg) - 2, sig, sig_len), TG_EPEER);
    memcpy(bad, sig, sig_len);
    bad[sig_len / 2] ^= 0x01;
    ck_assert_int_eq(tg_jws_verify(k, alg, msg, sizeof(msg) - 1, bad, sig_len), TG_EPEER);
    ck_assert_int_eq(tg_jws_verify(k, alg, msg, sizeof(msg) - 1, sig, sig_len - 1), TG_EPEER);
    /* the other algorithm, even with the right bytes */
    ck_assert_int_eq(tg_jws_verify(k, alg == TG_JWS_ES256 ? TG_JWS_RS256 : TG_JWS_ES256, msg,
                                   sizeof(msg) - 1, sig, sig_len),
                     TG_EPEER);
}

START_TEST(test_es256_spki_and_coordinates)
{
    unsigned char spki[128], x[32], y[32];
    word32 x_len = sizeof(x), y_len = sizeof(y);
    int spki_len = wc_EccPublicKeyToDer(&ec, spki, sizeof(spki), 1);
    struct tg_jws_key *a = NULL, *b = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_int_gt(spki_len, 0);
    ck_assert_int_eq(tg_jws_key_from_der(spki, (size_t)spki_len, true, &a, "keyfile", err), 0);
    assert_verifies(a, TG_JWS_ES256, ec_sig, sizeof(ec_sig));
    ck_assert_int_eq(wc_ecc_export_public_raw(&ec, x, &x_len, y, &y_len), 0);
    ck_assert_int_eq(tg_jws_key_from_p256(x, y, &b, "keyfile", err), 0);
    assert_verifies(b, TG_JWS_ES256, ec_sig, sizeof(ec_sig));
    tg_jws_key_free(a);
    tg_jws_key_free(b);
}
END_TEST

START_TEST(test_rs256_spki_pkcs1_and_raw)
{
    unsigned char spki[512], pkcs1[512], n[256], e[8];
    word32 n_len = sizeof(n), e_len = sizeof(e);
    int spki_len = wc_RsaKeyToPublicDer(&rsa, spki, sizeof(spki));
    int pkcs1_len = wc_RsaKeyToPublicDer_ex(&rsa, pkcs1, sizeof(pkcs1), 0);
    struct tg_jws_key *a = NULL, *b = NULL, *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_int_gt(spki_len, 0);
    ck_assert_int_gt(pkcs1_len, 0);
    ck_assert_int_eq(tg_jws_key_from_der(spki, (size_t)spki_len, true, &a, "keyfile", err), 0);
    assert_verifies(a, TG_JWS_RS256, rsa_sig, sizeof(rsa_sig));
    ck_assert_int_eq(tg_jws_key_from_der(pkcs1, (size_t)pkcs1_len, false, &b, "keyfile", err), 0);
    assert_verifies(b, TG_JWS_RS256, rsa_sig, sizeof(rsa_sig));
    ck_assert_int_eq(wc_RsaFlattenPublicKey(&rsa, e, &e_len, n, &n_len), 0);
    ck_assert_int_eq(tg_jws_key_from_rsa(n, n_len, e, e_len, &c, "keyfile", err), 0);
    assert_verifies(c, TG_JWS_RS256, rsa_sig, sizeof(rsa_sig));
    /* an ES256 signature's length, and the EC signature itself: refused */
    ck_assert_int_eq(tg_jws_verify(c, TG_JWS_RS256, msg, sizeof(msg) - 1, ec_sig, sizeof(ec_sig)),
                     TG_EPEER);
    tg_jws_key_free(a);
    tg_jws_key_free(b);
    tg_jws_key_free(c);
}
END_TEST

START_TEST(test_keys_refused)
{
    unsigned char der[600], x[32], y[32];
    word32 x_len = sizeof(x), y_len = sizeof(y);
    struct tg_jws_key *k = NULL;
    char err[TG_ERRLEN] = "";
    RsaKey small;
    ecc_key p384;
    int len;

    /* RSA 1024: too weak to verify with */
    ck_assert_int_eq(wc_InitRsaKey(&small, NULL), 0);
    ck_assert_int_eq(wc_MakeRsaKey(&small, 1024, WC_RSA_EXPONENT, &rng), 0);
    len = wc_RsaKeyToPublicDer(&small, der, sizeof(der));
    wc_FreeRsaKey(&small);
    ck_assert_int_gt(len, 0);
    assert_refused(tg_jws_key_from_der(der, (size_t)len, true, &k, "keyfile", err), k, err,
                   "an RSA key of 1024 bits");
    /* P-384: ES256 is P-256 only */
    ck_assert_int_eq(wc_ecc_init(&p384), 0);
    ck_assert_int_eq(wc_ecc_make_key_ex(&rng, 48, &p384, ECC_SECP384R1), 0);
    len = wc_EccPublicKeyToDer(&p384, der, sizeof(der), 1);
    wc_ecc_free(&p384);
    ck_assert_int_gt(len, 0);
    assert_refused(tg_jws_key_from_der(der, (size_t)len, true, &k, "keyfile", err), k, err,
                   "not on P-256");
    /* an EC key where only RSA (PKCS#1) may stand; trailing bytes; garbage */
    len = wc_EccPublicKeyToDer(&ec, der, sizeof(der), 1);
    ck_assert_int_gt(len, 0);
    assert_refused(tg_jws_key_from_der(der, (size_t)len, false, &k, "keyfile", err), k, err,
                   "not an RSA public key");
    der[len] = 0;
    assert_refused(tg_jws_key_from_der(der, (size_t)len + 1, true, &k, "keyfile", err), k, err,
                   "not an RSA or EC public key");
    memset(der, 0x30, 64);
    assert_refused(tg_jws_key_from_der(der, 64, true, &k, "keyfile", err), k, err,
                   "not an RSA or EC public key");
    /* a point off the curve: y changed by one bit */
    ck_assert_int_eq(wc_ecc_export_public_raw(&ec, x, &x_len, y, &y_len), 0);
    y[31] ^= 0x01;
    assert_refused(tg_jws_key_from_p256(x, y, &k, "keyfile", err), k, err, "not on the curve");
    /* an empty modulus */
    assert_refused(tg_jws_key_from_rsa(der, 0, der, 3, &k, "keyfile", err), k, err,
                   "not an RSA modulus");
    tg_jws_key_free(NULL);
}
END_TEST

START_TEST(test_sha256)
{
    /* FIPS 180-2, appendix B.1 */
    static const unsigned char abc[TG_SHA256_LEN] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    unsigned char out[TG_SHA256_LEN];

    ck_assert_int_eq(tg_sha256("abc", 3, out), 0);
    ck_assert_mem_eq(out, abc, sizeof(out));
}
END_TEST

Suite *tg_test_suite(void)
{
    const TTest *tests[] = {test_es256_spki_and_coordinates, test_rs256_spki_pkcs1_and_raw,
                            test_keys_refused, test_sha256};
    Suite *s = suite_create("jws");
    TCase *tc = tcase_create("jws");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    for (size_t i = 0; i < TG_NELEM(tests); i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return s;
}

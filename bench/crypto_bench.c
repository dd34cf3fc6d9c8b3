/* The crypto floor of a full handshake, one operation at a time, in the wolfSSL that tollgate
 * links: what each side of a mutual TLS 1.3 handshake cannot avoid (one ECDSA P-256 signature,
 * the peer's CertificateVerify to check, an ephemeral key share made and combined) and what it
 * could (the CA's signature on a peer certificate met before, answered from memory by
 * sigmemo.c; the random generator wolfSSL sets up for every session). Thread CPU time, median
 * of 7 runs of n operations.
 *
 *   ./build/bench/crypto_bench [operations per run, default 2000] */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/curve25519.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cputime.h"
#include "tollgate/tls.h"

#define RUNS 7
/* P-256 keys taken in turn where each handshake meets a new one (an ECDHE peer's), more than
 * wolfSSL's fixed-point cache keeps (FP_ECC: FP_ENTRIES points per thread, 4 in the build
 * scripts/setup.sh makes, 16 by default), so none is met again while cached */
#define FRESH_KEYS 64

static WC_RNG rng;
static ecc_key key, fresh[FRESH_KEYS];
static unsigned next_fresh;
static curve25519_key xkey, xpeer;
static byte hash[32], sig[ECC_MAX_SIG_SIZE];
static word32 sig_len;

/* into a buffer of its own: a signature's DER length varies, and sig must stay the one that
 * sig_len describes for the verifications below */
static int op_sign(void)
{
    byte out[ECC_MAX_SIG_SIZE];
    word32 n = sizeof(out);

    return wc_ecc_sign_hash(hash, sizeof(hash), out, &n, &rng, &key);
}

/* a fresh hash each time, as a CertificateVerify's transcript is: never from memory; by
 * key, the same peer's each time (its table in wolfSSL's fixed-point cache from the second
 * on), or by a public key not met lately */
static int verify_fresh_hash(ecc_key *by)
{
    int res = 0, rc;

    hash[0]++;
    rc = wc_ecc_verify_hash(sig, sig_len, hash, sizeof(hash), &res, by);
    hash[0]--;
    return rc == 0 && res == 0 ? 0 : -1; /* the changed hash must fail, in full */
}

static int op_verify(void)
{
    return verify_fresh_hash(&key);
}

static int op_verify_new_key(void)
{
    return verify_fresh_hash(&fresh[next_fresh++ % FRESH_KEYS]);
}

/* the same signature again, as the CA's on a peer certificate met before */
static int op_verify_again(void)
{
    int res = 0;

    return wc_ecc_verify_hash(sig, sig_len, hash, sizeof(hash), &res, &key) == 0 && res == 1 ? 0
                                                                                             : -1;
}

static int op_p256_share(void)
{
    ecc_key k;
    byte out[MAX_ECC_BYTES];
    word32 n = sizeof(out);
    int rc = wc_ecc_init(&k);

    if (rc == 0 && (rc = wc_ecc_make_key_ex(&rng, 32, &k, ECC_SECP256R1)) == 0 &&
        (rc = wc_ecc_set_rng(&k, &rng)) == 0)
        rc = wc_ecc_shared_secret(&k, &fresh[next_fresh++ % FRESH_KEYS], out, &n);
    wc_ecc_free(&k);
    return rc;
}

/* as the P-256 one, with wolfSSL's X25519 calls */
static int op_x25519_share(void)
{
    curve25519_key k;
    byte out[CURVE25519_KEYSIZE];
    word32 n = sizeof(out);
    int rc = wc_curve25519_init(&k);

    if (rc == 0 && (rc = wc_curve25519_make_key(&rng, CURVE25519_KEYSIZE, &k)) == 0)
        rc = wc_curve25519_shared_secret(&k, &xpeer, out, &n);
    wc_curve25519_free(&k);
    return rc;
}

static int op_rng(void)
{
    WC_RNG r;
    int rc = wc_InitRng(&r);

    if (rc == 0)
        wc_FreeRng(&r);
    return rc;
}

static int measure(const char *what, int (*op)(void), int n)
{
    double t[RUNS];

    for (int r = 0; r < RUNS; r++) {
        double t0 = now_us();

        for (int i = 0; i < n; i++)
            if (op() != 0) {
                fprintf(stderr, "crypto_bench: %s failed\n", what);
                return -1;
            }
        t[r] = (now_us() - t0) / n;
    }
    qsort(t, RUNS, sizeof(t[0]), cmp_double);
    printf("%-52s %7.1f us\n", what, t[RUNS / 2]);
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000, rc = 1;
    uint64_t hits, misses;

    memset(hash, 0x5a, sizeof(hash));
    sig_len = sizeof(sig);
    if (wc_InitRng(&rng) != 0)
        n = 0;
    for (int i = 0; i < FRESH_KEYS; i++) /* every one initialised: all are freed at the end */
        if (wc_ecc_init(&fresh[i]) != 0 ||
            (n > 0 && wc_ecc_make_key_ex(&rng, 32, &fresh[i], ECC_SECP256R1) != 0))
            n = 0;
    if (n < 1 || wc_ecc_init(&key) != 0 || wc_curve25519_init(&xkey) != 0 ||
        wc_curve25519_init(&xpeer) != 0 || wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1) != 0 ||
        wc_curve25519_make_key(&rng, CURVE25519_KEYSIZE, &xkey) != 0 ||
        wc_curve25519_make_key(&rng, CURVE25519_KEYSIZE, &xpeer) != 0 ||
        wc_ecc_set_rng(&key, &rng) != 0 ||
        wc_ecc_sign_hash(hash, sizeof(hash), sig, &sig_len, &rng, &key) != 0) {
        fprintf(stderr, "usage: crypto_bench [operations per run]\n");
        return 1;
    }
    printf("%s; per operation, median of %d runs of %d\n", tg_tls_version_text(), RUNS, n);
    if (measure("ECDSA P-256 sign (our CertificateVerify)", op_sign, n) == 0 &&
        measure("ECDSA P-256 verify (the peer's CertificateVerify)", op_verify, n) == 0 &&
        measure("ECDSA P-256 verify, a public key not met lately", op_verify_new_key, n) == 0 &&
        measure("ECDSA P-256 verify met before (sigmemo.c)", op_verify_again, n) == 0 &&
        measure("X25519 key share: make + combine", op_x25519_share, n) == 0 &&
        measure("P-256 key share: make + combine", op_p256_share, n) == 0 &&
        measure("random generator set up (one per WOLFSSL)", op_rng, n) == 0)
        rc = 0;
    tg_tls_sigmemo_stats(&hits, &misses);
    printf("verifications answered from memory: %llu of %llu\n", (unsigned long long)hits,
           (unsigned long long)(hits + misses));
    wc_ecc_free(&key);
    for (int i = 0; i < FRESH_KEYS; i++)
        wc_ecc_free(&fresh[i]);
    wc_curve25519_free(&xkey);
    wc_curve25519_free(&xpeer);
    wc_FreeRng(&rng);
    return rc;
}

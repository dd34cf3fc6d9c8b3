/* ECDSA verifications remembered. In every full handshake wolfSSL checks the CA's signature on
 * the certificate the peer sent (ParseCertRelative, ConfirmSignature, wc_ecc_verify_hash): 45 us
 * of curve arithmetic per side, a fifth of the handshake's CPU, for a result that never changes,
 * since a sidecar meets the same few peer certificates again and again. The link sends wolfSSL's
 * calls of wc_ecc_verify_hash here (-Wl,--wrap, in CMakeLists.txt, for the static wolfSSL that
 * scripts/setup.sh builds; with a shared libwolfssl nothing is wrapped and nothing changes).
 *
 * A verification that succeeded is remembered by the SHA-256 of what it was a function of: the
 * public key (uncompressed point), the hash and the signature, each with its length. The same
 * three again get the same answer without the arithmetic; anything else, a failure included,
 * is verified as before. Only successes are kept: a signature that failed costs its full check
 * every time. Per thread (each worker its own table, no lock), direct-mapped, SIGMEMO_SLOTS
 * slots: a newer success replaces the slot's older one. The CertificateVerify of each handshake
 * signs a fresh transcript, so it never hits and only replaces one slot in SIGMEMO_SLOTS. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "tollgate/tls.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#ifdef TG_WOLFSSL_WRAPPED /* the static wolfSSL, linked with --wrap (CMakeLists.txt) */

#define SIGMEMO_SLOTS 256

/* all zero: empty (a SHA-256 of zero is out of reach) */
static _Thread_local unsigned char memo[SIGMEMO_SLOTS][WC_SHA256_DIGEST_SIZE];
static atomic_uint_fast64_t memo_hits, memo_misses;

/* wolfSSL's own, under the name the linker gives it (-Wl,--wrap=wc_ecc_verify_hash) */
int __real_wc_ecc_verify_hash(const byte *sig, word32 siglen, const byte *hash, word32 hashlen,
                              int *res, ecc_key *key);
int __wrap_wc_ecc_verify_hash(const byte *sig, word32 siglen, const byte *hash, word32 hashlen,
                              int *res, ecc_key *key);

static int sha_field(wc_Sha256 *sha, const byte *p, word32 n)
{
    byte len[4] = {(byte)(n >> 24), (byte)(n >> 16), (byte)(n >> 8), (byte)n};
    int rc = wc_Sha256Update(sha, len, sizeof(len));

    return rc == 0 ? wc_Sha256Update(sha, p, n) : rc;
}

/* The memo key of (key, hash, sig); 0, or -1 when the key cannot be exported (not memoized). */
static int memo_key(const byte *sig, word32 siglen, const byte *hash, word32 hashlen, ecc_key *key,
                    unsigned char *out)
{
    byte point[2 * MAX_ECC_BYTES + 1];
    word32 point_len = sizeof(point);
    wc_Sha256 sha;
    int rc;

    if (key == NULL || sig == NULL || hash == NULL ||
        wc_ecc_export_x963(key, point, &point_len) != 0)
        return -1;
    if ((rc = wc_InitSha256(&sha)) != 0)
        return -1;
    rc = sha_field(&sha, point, point_len);
    if (rc == 0)
        rc = sha_field(&sha, hash, hashlen);
    if (rc == 0)
        rc = sha_field(&sha, sig, siglen);
    if (rc == 0)
        rc = wc_Sha256Final(&sha, out);
    wc_Sha256Free(&sha);
    return rc == 0 ? 0 : -1;
}

int __wrap_wc_ecc_verify_hash(const byte *sig, word32 siglen, const byte *hash, word32 hashlen,
                              int *res, ecc_key *key)
{
    unsigned char k[WC_SHA256_DIGEST_SIZE];
    bool keyed = res != NULL && memo_key(sig, siglen, hash, hashlen, key, k) == 0;
    unsigned char *slot = memo[keyed ? ((unsigned)k[0] << 8 | k[1]) % SIGMEMO_SLOTS : 0];
    int rc;

    if (keyed && memcmp(slot, k, sizeof(k)) == 0) {
        atomic_fetch_add_explicit(&memo_hits, 1, memory_order_relaxed);
        *res = 1;
        return 0;
    }
    rc = __real_wc_ecc_verify_hash(sig, siglen, hash, hashlen, res, key);
    if (!keyed)
        return rc;
    atomic_fetch_add_explicit(&memo_misses, 1, memory_order_relaxed);
    if (rc == 0 && *res == 1)
        memcpy(slot, k, sizeof(k));
    return rc;
}

void tg_tls_sigmemo_stats(uint64_t *hits, uint64_t *misses)
{
    *hits = atomic_load_explicit(&memo_hits, memory_order_relaxed);
    *misses = atomic_load_explicit(&memo_misses, memory_order_relaxed);
}

#else /* a shared libwolfssl: its own calls stay inside it, nothing is remembered */

void tg_tls_sigmemo_stats(uint64_t *hits, uint64_t *misses)
{
    *hits = 0;
    *misses = 0;
}

#endif

/* X25519 key shares made with a fixed-base multiplication. Every full TLS 1.3 handshake makes
 * one X25519 key pair per side (TLSX_KeyShare_GenX25519Key, wc_curve25519_make_key), and
 * wolfSSL 5.5.4 computes its public key with the same Montgomery ladder it uses for a peer's
 * unknown point: 37 us here, as much as the shared secret itself. The base point is fixed, so
 * the multiplication can use the precomputed table of Ed25519's signing path instead
 * (ge_scalarmult_base, constant time, 13 us) and map the Edwards point to the Montgomery
 * u-coordinate, u = (1 + y) / (1 - y) = (Z + Y) / (Z - Y) (RFC 7748, 4.1): the same public key,
 * bit for bit, as BoringSSL's and OpenSSL's X25519 key generation make it.
 *
 * The link sends wolfSSL's calls of wc_curve25519_make_key here (-Wl,--wrap, CMakeLists.txt,
 * for the static wolfSSL that scripts/setup.sh builds, as sigmemo.c's); with a shared
 * libwolfssl nothing is wrapped and nothing changes. The private key is drawn and clamped by
 * wolfSSL's own wc_curve25519_make_priv, as before. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/curve25519.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "tollgate/tls.h"

#include <stdatomic.h>
#include <string.h>

#ifdef TG_WOLFSSL_WRAPPED
#include <wolfssl/wolfcrypt/fe_operations.h>
#include <wolfssl/wolfcrypt/ge_operations.h>

#if defined(WOLF_CRYPTO_CB) || defined(WOLFSSL_SE050)
#error "wc_curve25519_make_key's hardware paths are not in this replacement"
#endif

static atomic_uint_fast64_t made;

/* replaces wolfSSL's wc_curve25519_make_key (-Wl,--wrap) */
int __wrap_wc_curve25519_make_key(WC_RNG *rng, int keysize, curve25519_key *key);

void tg_tls_x25519_public(unsigned char pub[32], const unsigned char priv[32])
{
    ge_p3 a;
    fe num, den, inv;

    fe_init(); /* picks the AVX2 field arithmetic once per process, as wolfSSL's callers do */
    ge_scalarmult_base(&a, priv); /* needs priv[31] <= 127: clamped keys have bit 255 clear */
    fe_add(num, a.Z, a.Y);
    fe_sub(den, a.Z, a.Y);
    /* Z - Y = 0 only at the identity (y = 1), never a clamped multiple of B: a clamped scalar
     * is a multiple of 8 below 2^255, and B's order L is odd and above 2^252, so the smallest
     * such multiple of L, 8L, is out of its range */
    fe_invert(inv, den);
    fe_mul(num, num, inv);
    fe_tobytes(pub, num);
}

int __wrap_wc_curve25519_make_key(WC_RNG *rng, int keysize, curve25519_key *key)
{
    int rc;

    if (key == NULL || rng == NULL)
        return BAD_FUNC_ARG;
    rc = wc_curve25519_make_priv(rng, keysize, key->k); /* checks keysize, clamps */
    if (rc != 0)
        return rc;
    key->privSet = 1;
    tg_tls_x25519_public(key->p.point, key->k);
    key->pubSet = 1;
    atomic_fetch_add_explicit(&made, 1, memory_order_relaxed);
    return 0;
}

uint64_t tg_tls_x25519_fixed_base_keys(void)
{
    return atomic_load_explicit(&made, memory_order_relaxed);
}

#else /* a shared libwolfssl: its own calls stay inside it, its ladder makes every key */

void tg_tls_x25519_public(unsigned char pub[32], const unsigned char priv[32])
{
    if (wc_curve25519_make_pub(CURVE25519_KEYSIZE, pub, CURVE25519_KEYSIZE, priv) != 0)
        memset(pub, 0, CURVE25519_KEYSIZE);
}

uint64_t tg_tls_x25519_fixed_base_keys(void)
{
    return 0;
}

#endif

/* Random bytes for wolfSSL: the kernel's getrandom(2), on every call.
 *
 * wolfSSL's default generator is a SHA-256 Hash_DRBG per WOLFSSL object, set up in
 * wolfSSL_new: a known-answer self-test of the DRBG, a seed read from /dev/urandom (open, read,
 * close) and the instantiation. That cost 11 to 15 us per side of every full handshake
 * (docs/performance.md, "Full handshakes"), a tenth of the crypto a handshake cannot avoid,
 * for three draws of 32 bytes (the Hello's random, the key share, the ECDSA nonce).
 *
 * The static wolfSSL that scripts/setup.sh builds is configured with --disable-hashdrbg and
 * CUSTOM_RAND_GENERATE_BLOCK=tg_rand_block, which makes every WC_RNG draw here instead, from
 * the kernel's CSPRNG, as Go's crypto/rand and glibc's arc4random do: one system call of about
 * 1 us per draw, no state of ours to seed, reseed, lock between threads or duplicate across a
 * fork. With any other wolfSSL (a system libwolfssl) this function is never called. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/random.h>

#include "tollgate/tls.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/random.h>

static atomic_uint_fast64_t draws;

uint64_t tg_rand_draws(void)
{
    return atomic_load_explicit(&draws, memory_order_relaxed);
}

bool tg_rand_from_kernel(void)
{
#ifdef CUSTOM_RAND_GENERATE_BLOCK
    return true;
#else
    return false;
#endif
}

int tg_rand_block(unsigned char *out, unsigned int sz)
{
    atomic_fetch_add_explicit(&draws, 1, memory_order_relaxed);
    while (sz > 0) {
        ssize_t n = getrandom(out, sz, 0); /* blocks only before the kernel is seeded, at boot */

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1; /* wolfSSL fails the draw, and the handshake or key with it */
        }
        out += n;
        sz -= (unsigned int)n;
    }
    return 0;
}

/* The static wolfSSL: its OpenSSL layer's RAND_poll asks for a seed here. */
#ifdef CUSTOM_RAND_GENERATE_BLOCK
int wc_GenerateSeed(OS_Seed *os, byte *seed, word32 sz)
{
    (void)os;
    return tg_rand_block(seed, sz);
}
#endif

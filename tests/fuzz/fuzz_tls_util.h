/* Shared by the TLS fuzzers (fuzz_tls, fuzz_chain): fixed randomness and time, the test PKI
 * of fuzz_certs.h, and two in-memory endpoints made by our own code (tls.c).
 *
 * Randomness: the wolfSSL build of scripts/setup.sh draws every random byte from
 * tg_rand_block (lib/pki/rand.c: the kernel's getrandom). These fuzzers are linked with
 * -Wl,--wrap=tg_rand_block,--wrap=gettimeofday (tests/CMakeLists.txt), which reroutes the
 * calls of wolfSSL's static objects to __wrap_tg_rand_block here: a splitmix64 stream that
 * fuzz_rng_reset() restarts for every input. Every Hello random, key share and signature
 * nonce of an input is then the same for the same input, so a finding replays. The
 * production build is not changed.
 *
 * Time: wolfSSL's certificate date checks and session times go through wc_Time, pinned by
 * wc_SetTimeCb to FUZZ_NOW, and the link also reroutes gettimeofday (TLS 1.3 ticket ages) to
 * FUZZ_NOW. Replaying one input in a fresh process puts the same bytes on the wire
 * (fuzz_tls's TG_FUZZ_STATS digest shows it). Header-only; one copy per fuzzer. */
#ifndef TOLLGATE_FUZZ_TLS_UTIL_H
#define TOLLGATE_FUZZ_TLS_UTIL_H

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_certs.h"
#include "fuzz_util.h"
#include "tollgate/tls.h"

#define FUZZ_SERVER_ID "spiffe://mesh.local/ns/default/sa/server"
#define FUZZ_CLIENT_ID "spiffe://mesh.local/ns/default/sa/client"

/* ---- fixed randomness ---- */

int __wrap_tg_rand_block(unsigned char *out, unsigned int sz);
int __wrap_gettimeofday(struct timeval *tv, void *tz);

static uint64_t fuzz_rng_state;
static uint64_t fuzz_draws; /* draws served: shows the rerouting works */

static void fuzz_rng_reset(void)
{
    fuzz_rng_state = 0x7f4a7c15u;
}

static uint64_t fuzz_rng_next(void)
{
    uint64_t z = (fuzz_rng_state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int __wrap_tg_rand_block(unsigned char *out, unsigned int sz)
{
    fuzz_draws++;
    for (unsigned int i = 0; i < sz; i++)
        out[i] = (unsigned char)fuzz_rng_next();
    return 0;
}

/* ---- fixed time ---- */

/* TLS 1.3 tickets carry the time in milliseconds (wolfSSL's tls13.c calls gettimeofday) */
int __wrap_gettimeofday(struct timeval *tv, void *tz)
{
    (void)tz;
    tv->tv_sec = (time_t)FUZZ_NOW;
    tv->tv_usec = 0;
    return 0;
}

static time_t fuzz_time(time_t *t)
{
    if (t != NULL)
        *t = (time_t)FUZZ_NOW;
    return (time_t)FUZZ_NOW;
}

/* ---- endpoints ---- */

static struct tg_pool fuzz_pool;

/* Once per process: the library, the clock, and the buffer pool. */
static void fuzz_tls_once(void)
{
    FUZZ_ONCE();
    fuzz_rng_reset();
    if (tg_tls_init() < 0)
        abort();
    wc_SetTimeCb(fuzz_time);
    tg_pool_init(&fuzz_pool, 20 * 1024, 8);
}

/* An identity filled in place from the fixed PKI, as tls.c's unit test does (the checks of
 * tg_identity_load are identity.c's business, not the handshake's). */
static void fuzz_identity(struct tg_identity *id, const char *chain, const char *key)
{
    memset(id, 0, sizeof(*id));
    id->chain_pem = tg_unconst(chain);
    id->chain_len = strlen(chain);
    id->key_pem = tg_unconst(key);
    id->key_len = strlen(key);
    id->bundle_pem = tg_unconst(FUZZ_ROOT_PEM);
    id->bundle_len = strlen(FUZZ_ROOT_PEM);
    snprintf(id->trust_domain, sizeof(id->trust_domain), "mesh.local");
}

/* Copies up to what fits of src into b (a session's cipher_in); returns bytes taken. */
static size_t fuzz_feed(struct tg_buf *b, const void *src, size_t n)
{
    if (n == 0)
        return 0;
    if (tg_buf_reserve(b, &fuzz_pool, true) < 0)
        abort();
    if (n > tg_buf_room(b))
        n = tg_buf_room(b);
    memcpy(tg_buf_tail(b), src, n);
    tg_buf_commit(b, n);
    return n;
}

#endif

/* Shared by the TLS fuzzers (fuzz_tls, fuzz_chain): fixed randomness and time, the test PKI
 * of fuzz_certs.h, and two in-memory endpoints made by our own code (tls.c).
 *
 * Randomness: the wolfSSL build of scripts/setup.sh has no seed callback (no WC_RNG_SEED_CB,
 * no CUSTOM_RAND_GENERATE), and its wc_GenerateSeed reads /dev/urandom with open/read/close.
 * These fuzzers are linked with -Wl,--wrap=open,--wrap=read,--wrap=close,--wrap=gettimeofday
 * (tests/CMakeLists.txt), which reroutes only the calls made from the static objects of that
 * link (wolfSSL's random.o among them; libc, libuv and the sanitizer runtimes are untouched):
 * an open of /dev/urandom gets a descriptor of /dev/null, and reads from it return a
 * splitmix64 stream that fuzz_rng_reset() restarts for every input. Every DRBG that wolfSSL seeds
 * during an input (one per WOLFSSL object) is then the same for the same input, so a finding
 * replays. The production wolfSSL build is not changed.
 *
 * Time: wolfSSL's certificate date checks and session times go through wc_Time, pinned by
 * wc_SetTimeCb to FUZZ_NOW, and the link also reroutes gettimeofday (TLS 1.3 ticket ages) to
 * FUZZ_NOW. Replaying one input in a fresh process puts the same bytes on the wire
 * (fuzz_tls's TG_FUZZ_STATS digest shows it). Header-only; one copy per fuzzer. */
#ifndef TOLLGATE_FUZZ_TLS_UTIL_H
#define TOLLGATE_FUZZ_TLS_UTIL_H

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include <fcntl.h>
#include <stdarg.h>
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

int __real_open(const char *path, int flags, ...);
ssize_t __real_read(int fd, void *buf, size_t n);
int __real_close(int fd);
int __wrap_open(const char *path, int flags, ...);
ssize_t __wrap_read(int fd, void *buf, size_t n);
int __wrap_close(int fd);
int __wrap_gettimeofday(struct timeval *tv, void *tz);

static int fuzz_urandom_fd = -1;
static uint64_t fuzz_rng_state;
static uint64_t fuzz_seeds; /* reads served: shows the rerouting works */

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

int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    va_list ap;
    int fd;

    if (strcmp(path, "/dev/urandom") == 0 || strcmp(path, "/dev/random") == 0) {
        fd = __real_open("/dev/null", O_RDONLY);
        fuzz_urandom_fd = fd;
        return fd;
    }
    if (flags & O_CREAT) {
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return __real_open(path, flags, mode);
}

ssize_t __wrap_read(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;

    if (fd < 0 || fd != fuzz_urandom_fd)
        return __real_read(fd, buf, n);
    fuzz_seeds++;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)fuzz_rng_next();
    return (ssize_t)n;
}

int __wrap_close(int fd)
{
    if (fd == fuzz_urandom_fd)
        fuzz_urandom_fd = -1;
    return __real_close(fd);
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

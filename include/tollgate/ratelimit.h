/* Rate limits: token buckets with the clock passed in (now_ns, nanoseconds of a monotonic
 * clock such as uv_hrtime()). Pure: no I/O, no libuv.
 *
 * Three layers:
 * - struct tg_bucket: one token bucket in the caller's memory, no lock.
 * - struct tg_ratelimit_global: a listener-wide bucket (no key) with its own mutex.
 * - struct tg_ratelimit: buckets keyed by a string (SPIFFE ID or fingerprint): per key a
 *   new-connections bucket, a count of concurrent connections and a bytes bucket.
 *
 * Threads: ONE keyed table per process (per listener if limits differ), shared by all
 * workers, every call under the table's mutex. Why not a table per worker with rate/N:
 * SO_REUSEPORT spreads one identity's connections over the workers by a hash of the
 * 4-tuple, so a split limit is wrong whenever the spread is uneven (one connection would get
 * rate/N bytes per second, N connections landing on one worker 1/N of their due), and
 * concurrent-connection counts cannot be split at all. The shared table is exact, and cheap:
 * the critical sections are O(1) with no allocation except when a key is first seen, and the
 * byte path takes the lock once per read of up to a whole buffer (64 KiB by default), never
 * per byte, through a handle, without hashing the key again. Pacing (the timer that waits
 * out a delay) stays with the connection on its own worker.
 *
 * The table's state outlives generations: limits from a new generation are applied with
 * tg_ratelimit_set_limits, which keeps every bucket's level (clamped to the new burst).
 *
 * Integer arithmetic throughout: a bucket holds whole tokens and the time of its last
 * update; the fraction of a token earned since is kept by advancing that time only by the
 * time the whole tokens took. */
#ifndef TOLLGATE_RATELIMIT_H
#define TOLLGATE_RATELIMIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/err.h"

#define TG_RATELIMIT_KEY_MAX 2048 /* bytes of a key, as a SPIFFE ID */

struct tg_bucket_limit {
    uint64_t rate;  /* tokens per second; 0: no limit */
    uint64_t burst; /* capacity; 0: one second's worth (rate), and at least 1 */
};

struct tg_bucket {
    uint64_t level;   /* whole tokens */
    uint64_t last_ns; /* when level was brought up to date (minus the fraction of a token) */
};

/* Starts full. */
void tg_bucket_init(struct tg_bucket *b, const struct tg_bucket_limit *lim, uint64_t now_ns);

/* Takes up to want tokens; returns how many it took (all of want when lim->rate is 0).
 * When that is fewer than want, *delay_ns (if not NULL) gets the time until
 * min(want - taken, burst) more tokens will be there; else 0. */
uint64_t tg_bucket_take(struct tg_bucket *b, const struct tg_bucket_limit *lim, uint64_t want,
                        uint64_t now_ns, uint64_t *delay_ns);

/* Tokens available at now_ns, without taking any. */
uint64_t tg_bucket_level(const struct tg_bucket *b, const struct tg_bucket_limit *lim,
                         uint64_t now_ns);

/* Brings b up to now_ns under old, then clamps its level to next's burst: a limit change
 * neither refills nor empties a bucket. From no limit, the bucket starts full. */
void tg_bucket_relimit(struct tg_bucket *b, const struct tg_bucket_limit *old,
                       const struct tg_bucket_limit *next, uint64_t now_ns);

/* ---- a listener-wide bucket, shared by the workers ---- */

struct tg_ratelimit_global {
    pthread_mutex_t lock;
    struct tg_bucket_limit lim;
    struct tg_bucket b;
};

TG_MUST_USE int tg_ratelimit_global_init(struct tg_ratelimit_global *g,
                                         const struct tg_bucket_limit *lim, uint64_t now_ns);
void tg_ratelimit_global_cleanup(struct tg_ratelimit_global *g);
/* As tg_bucket_take; thread-safe. */
uint64_t tg_ratelimit_global_take(struct tg_ratelimit_global *g, uint64_t want, uint64_t now_ns,
                                  uint64_t *delay_ns);
void tg_ratelimit_global_set_limit(struct tg_ratelimit_global *g, const struct tg_bucket_limit *lim,
                                   uint64_t now_ns);

/* ---- buckets keyed by identity ---- */

struct tg_ratelimit_limits {
    struct tg_bucket_limit conns;    /* new connections per second, per key */
    uint32_t max_conns;              /* concurrent connections per key; 0: no limit */
    struct tg_bucket_limit bytes;    /* bytes per second per key (what the caller counts) */
    struct tg_bucket_limit requests; /* HTTP requests per second per key (protocol: http) */
};

struct tg_ratelimit;
/* One key's state. A handle is valid from a successful tg_ratelimit_conn_acquire to its
 * tg_ratelimit_conn_release: a key with connections is never evicted. */
struct tg_ratelimit_key;

/* A table of at most max_keys keys (> 0), with one reference. Returns 0, TG_EINVAL or
 * TG_ENOMEM. */
TG_MUST_USE int tg_ratelimit_new(const struct tg_ratelimit_limits *lim, size_t max_keys,
                                 struct tg_ratelimit **out);
/* References: a table is shared by the limit sets (below) that keep its buckets. Any thread. */
struct tg_ratelimit *tg_ratelimit_ref(struct tg_ratelimit *t);
/* The last unref frees the table and every key; outstanding handles die with it. NULL is
 * fine. */
void tg_ratelimit_unref(struct tg_ratelimit *t);

/* New limits for every key, effective from now_ns; levels are kept (tg_bucket_relimit). A
 * lower max_conns refuses new connections until enough old ones end. O(keys). */
void tg_ratelimit_set_limits(struct tg_ratelimit *t, const struct tg_ratelimit_limits *lim,
                             uint64_t now_ns);

enum tg_ratelimit_result {
    TG_RATELIMIT_ADMIT = 0,       /* admitted: *handle is set */
    TG_RATELIMIT_OVER_RATE,       /* no new-connection token; *retry_ns until there is one */
    TG_RATELIMIT_OVER_CONCURRENT, /* max_conns open already; *retry_ns is 0 (unknown) */
};

/* Admits a new connection for key (len bytes, 1..TG_RATELIMIT_KEY_MAX): concurrency first,
 * so a refusal for it spends no token. Returns a TG_RATELIMIT_* (>= 0), or TG_EINVAL (bad
 * key), TG_ENOMEM, or TG_ETOOBIG: the key is new and the table is full of keys it cannot
 * evict without losing state (with connections, or with buckets not yet full again); the
 * caller should refuse the connection. retry_ns may be NULL. */
TG_MUST_USE int tg_ratelimit_conn_acquire(struct tg_ratelimit *t, const char *key, size_t len,
                                          uint64_t now_ns, struct tg_ratelimit_key **handle,
                                          uint64_t *retry_ns);
/* Ends a connection admitted by tg_ratelimit_conn_acquire; k is invalid afterwards. */
void tg_ratelimit_conn_release(struct tg_ratelimit *t, struct tg_ratelimit_key *k, uint64_t now_ns);

/* Takes up to want bytes from k's byte bucket, as tg_bucket_take. */
uint64_t tg_ratelimit_bytes_take(struct tg_ratelimit *t, struct tg_ratelimit_key *k, uint64_t want,
                                 uint64_t now_ns, uint64_t *delay_ns);

/* Frees keys without connections whose buckets are full again (forgetting them loses
 * nothing), oldest first; returns how many. For a periodic timer: new keys evict such keys
 * on their own when the table is full. */
/* Takes one request token from k's request bucket: true when there was one (or no limit);
 * false with *retry_ns until the next. */
bool tg_ratelimit_request_take(struct tg_ratelimit *t, struct tg_ratelimit_key *k, uint64_t now_ns,
                               uint64_t *retry_ns);

size_t tg_ratelimit_sweep(struct tg_ratelimit *t, uint64_t now_ns);

struct tg_ratelimit_stat {
    uint32_t active;      /* concurrent connections */
    uint64_t conn_tokens; /* UINT64_MAX: no limit */
    uint64_t byte_tokens; /* UINT64_MAX: no limit */
};

/* The limits the table applies now. */
struct tg_ratelimit_limits tg_ratelimit_limits_of(struct tg_ratelimit *t);

/* Keys in the table. */
size_t tg_ratelimit_count(struct tg_ratelimit *t);
/* k's state at now_ns; false when the key is not in the table. For /stats and tests. */
bool tg_ratelimit_stat(struct tg_ratelimit *t, const char *key, size_t len, uint64_t now_ns,
                       struct tg_ratelimit_stat *st);

/* ---- limit sets: which table applies to which caller ---- */

/* One limiter of a set: callers whose SPIFFE ID matches match ("*", "prefix*", "*suffix" or
 * an exact ID) get lim, counted per SPIFFE ID or per certificate fingerprint. */
struct tg_limit_rule {
    const char *match;
    bool by_fingerprint;
    struct tg_ratelimit_limits lim;
};

struct tg_limiter {
    char *match; /* owned copy */
    bool by_fingerprint;
    struct tg_ratelimit_limits lim; /* what this set applies */
    struct tg_ratelimit *table;     /* reference; NULL: lim limits nothing */
};

/* The limiters of a generation, first match wins. Immutable; refcounted (any thread). */
struct tg_limit_set {
    atomic_uint refs;
    size_t n;
    struct tg_limiter v[];
};

/* A set of n rules. The table of a rule whose match and key are those of a limiter of prev
 * (may be NULL) is that limiter's table, so that its buckets carry on; the others are new.
 * No table's limits change until tg_limit_set_apply. Returns 0, TG_EINVAL (a rule whose match
 * is empty, over TG_RATELIMIT_KEY_MAX, or has '*' elsewhere than at one end) or TG_ENOMEM. */
TG_MUST_USE int tg_limit_set_new(const struct tg_limit_rule *rules, size_t n,
                                 const struct tg_limit_set *prev, size_t max_keys,
                                 struct tg_limit_set **out);
/* Gives every table of s the limits of s (levels kept: tg_ratelimit_set_limits). For the
 * moment s is published. */
void tg_limit_set_apply(struct tg_limit_set *s, uint64_t now_ns);
/* The limiter for the caller id, or NULL when none matches or s is NULL. */
const struct tg_limiter *tg_limit_set_find(const struct tg_limit_set *s, const char *id);
struct tg_limit_set *tg_limit_set_ref(struct tg_limit_set *s);
/* The last unref frees; NULL is fine. */
void tg_limit_set_unref(struct tg_limit_set *s);
/* Whether match is a valid limiter pattern; why says what is wrong when not. */
TG_MUST_USE int tg_limit_match_check(const char *match, char *why);

#endif

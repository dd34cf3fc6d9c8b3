/* tg_bucket_*, tg_ratelimit_*: token buckets and the keyed limit table, on a fake clock. */
#include <check.h>
#include "check_main.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/ratelimit.h"

#define MS 1000000ULL
#define S 1000000000ULL
#define T0 (1000 * S) /* the fake clock starts anywhere */

START_TEST(test_bucket_rate_and_burst)
{
    struct tg_bucket_limit lim = {.rate = 10, .burst = 5};
    struct tg_bucket b;
    uint64_t delay;

    tg_bucket_init(&b, &lim, T0);
    ck_assert_uint_eq(tg_bucket_level(&b, &lim, T0), 5); /* starts full */
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 4, T0, &delay), 4);
    ck_assert_uint_eq(delay, 0);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 3, T0, &delay), 1); /* partial */
    ck_assert_uint_eq(delay, 200 * MS);                            /* 2 more at 10/s */
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1, T0, &delay), 0);
    ck_assert_uint_eq(delay, 100 * MS);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1, T0 + 99 * MS, &delay), 0);
    ck_assert_uint_eq(delay, 1 * MS);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1, T0 + 100 * MS, &delay), 1);
    /* a long pause refills to the burst, not beyond */
    ck_assert_uint_eq(tg_bucket_level(&b, &lim, T0 + 3600 * S), 5);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 100, T0 + 3600 * S, NULL), 5);
}
END_TEST

START_TEST(test_bucket_refill_keeps_fractions)
{
    struct tg_bucket_limit lim = {.rate = 3, .burst = 3};
    struct tg_bucket b;
    uint64_t delay;

    tg_bucket_init(&b, &lim, T0);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 3, T0, NULL), 3);
    /* 1.5 tokens earned: 1 now, the half carries over */
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 3, T0 + 500 * MS, &delay), 1);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 3, T0 + 1000 * MS, &delay), 2);
    /* 3 per second exactly over 10 s of small steps: no fraction is lost or made up */
    {
        uint64_t got = 0;

        for (uint64_t t = T0 + 1000 * MS; t <= T0 + 11000 * MS; t += 5 * MS)
            got += tg_bucket_take(&b, &lim, 1, t, NULL);
        ck_assert_uint_eq(got, 30);
    }
}
END_TEST

START_TEST(test_bucket_delay_counts_partial_progress)
{
    struct tg_bucket_limit lim = {.rate = 1000, .burst = 1000};
    struct tg_bucket b;
    uint64_t delay;

    tg_bucket_init(&b, &lim, T0);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1500, T0, &delay), 1000);
    ck_assert_uint_eq(delay, 500 * MS); /* the missing 500 */
    /* 300 earned; 700 missing of the 1000 asked */
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1000, T0 + 300 * MS, &delay), 300);
    ck_assert_uint_eq(delay, 700 * MS);
    /* asking for more than the burst waits for a burst at most */
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1 << 20, T0 + 300 * MS, &delay), 0);
    ck_assert_uint_eq(delay, 1000 * MS);
    /* half a token's time already spent shortens the wait */
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1, T0 + 300 * MS + 500000, &delay), 0);
    ck_assert_uint_eq(delay, 500000);
}
END_TEST

START_TEST(test_bucket_defaults_and_unlimited)
{
    struct tg_bucket_limit none = {0, 0}, rate_only = {.rate = 50}, tiny = {.rate = 1};
    struct tg_bucket b;
    uint64_t delay = 7;

    tg_bucket_init(&b, &none, T0);
    ck_assert_uint_eq(tg_bucket_take(&b, &none, UINT64_MAX, T0, &delay), UINT64_MAX);
    ck_assert_uint_eq(delay, 0);
    ck_assert_uint_eq(tg_bucket_level(&b, &none, T0), UINT64_MAX);
    tg_bucket_init(&b, &rate_only, T0);
    ck_assert_uint_eq(tg_bucket_level(&b, &rate_only, T0), 50); /* burst: a second's worth */
    tg_bucket_init(&b, &tiny, T0);
    ck_assert_uint_eq(tg_bucket_take(&b, &tiny, 2, T0, &delay), 1);
    ck_assert_uint_eq(delay, 1 * S);
}
END_TEST

START_TEST(test_bucket_clock_steps_back)
{
    struct tg_bucket_limit lim = {.rate = 10, .burst = 10};
    struct tg_bucket b;
    uint64_t delay;

    tg_bucket_init(&b, &lim, T0);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 10, T0, NULL), 10);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1, T0 - 5 * S, &delay), 0);
    ck_assert_uint_eq(delay, 5 * S + 100 * MS); /* earning resumes from T0 */
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1, T0 + 100 * MS, NULL), 1);
}
END_TEST

START_TEST(test_bucket_large_numbers)
{
    struct tg_bucket_limit lim = {.rate = 10ULL * 1000 * 1000 * 1000, .burst = 1ULL << 40};
    struct tg_bucket b;
    uint64_t delay;

    tg_bucket_init(&b, &lim, 0);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1ULL << 40, 0, NULL), 1ULL << 40);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1ULL << 40, 1 * S, &delay), 10ULL * 1000000000);
    ck_assert_uint_eq(tg_bucket_level(&b, &lim, UINT64_MAX), 1ULL << 40);
    ck_assert_uint_eq(tg_bucket_take(&b, &lim, 1ULL << 40, UINT64_MAX, NULL), 1ULL << 40);
}
END_TEST

START_TEST(test_bucket_limit_change_keeps_level)
{
    struct tg_bucket_limit a = {.rate = 10, .burst = 10}, big = {.rate = 100, .burst = 100},
                           small = {.rate = 1, .burst = 2}, none = {0, 0};
    struct tg_bucket b;

    tg_bucket_init(&b, &a, T0);
    ck_assert_uint_eq(tg_bucket_take(&b, &a, 7, T0, NULL), 7);
    /* 100 ms at the old rate earn 1: level 4, under the new burst: kept */
    tg_bucket_relimit(&b, &a, &big, T0 + 100 * MS);
    ck_assert_uint_eq(tg_bucket_level(&b, &big, T0 + 100 * MS), 4);
    /* then the new rate: 100/s */
    ck_assert_uint_eq(tg_bucket_level(&b, &big, T0 + 150 * MS), 9);
    /* a smaller burst clamps */
    tg_bucket_relimit(&b, &big, &small, T0 + 150 * MS);
    ck_assert_uint_eq(tg_bucket_level(&b, &small, T0 + 150 * MS), 2);
    ck_assert_uint_eq(tg_bucket_level(&b, &small, T0 + 10 * S), 2);
    /* from no limit: full */
    tg_bucket_relimit(&b, &none, &a, T0 + 11 * S);
    ck_assert_uint_eq(tg_bucket_level(&b, &a, T0 + 11 * S), 10);
}
END_TEST

START_TEST(test_global_bucket)
{
    struct tg_bucket_limit lim = {.rate = 2, .burst = 2}, more = {.rate = 4, .burst = 4};
    struct tg_ratelimit_global g;
    uint64_t delay;

    ck_assert_int_eq(tg_ratelimit_global_init(&g, &lim, T0), 0);
    ck_assert_uint_eq(tg_ratelimit_global_take(&g, 1, T0, &delay), 1);
    ck_assert_uint_eq(tg_ratelimit_global_take(&g, 1, T0, &delay), 1);
    ck_assert_uint_eq(tg_ratelimit_global_take(&g, 1, T0, &delay), 0);
    ck_assert_uint_eq(delay, 500 * MS);
    tg_ratelimit_global_set_limit(&g, &more, T0);
    ck_assert_uint_eq(tg_ratelimit_global_take(&g, 1, T0, NULL), 0); /* still empty */
    ck_assert_uint_eq(tg_ratelimit_global_take(&g, 1, T0 + 250 * MS, NULL), 1);
    tg_ratelimit_global_cleanup(&g);
}
END_TEST

#define KEY(s) s, strlen(s)
#define A "spiffe://mesh.local/ns/a/sa/a"
#define B "spiffe://mesh.local/ns/b/sa/b"
#define C "spiffe://mesh.local/ns/c/sa/c"

/* A table of cap keys under lim; with a, key A admitted at T0 into *a. */
static struct tg_ratelimit *table_new(const struct tg_ratelimit_limits *lim, size_t cap,
                                      struct tg_ratelimit_key **a)
{
    struct tg_ratelimit *t = NULL;

    ck_assert_int_eq(tg_ratelimit_new(lim, cap, &t), 0);
    if (a != NULL)
        ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0, a, NULL), TG_RATELIMIT_ADMIT);
    return t;
}

START_TEST(test_table_connection_rate)
{
    struct tg_ratelimit_limits lim = {.conns = {.rate = 2, .burst = 2}};
    struct tg_ratelimit *t;
    struct tg_ratelimit_key *k[4];
    uint64_t retry = 7;

    t = table_new(&lim, 16, NULL);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0, &k[0], &retry), TG_RATELIMIT_ADMIT);
    ck_assert_uint_eq(retry, 0);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0, &k[1], &retry), TG_RATELIMIT_ADMIT);
    ck_assert_ptr_eq(k[0], k[1]); /* one state per key */
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0, &k[2], &retry),
                     TG_RATELIMIT_OVER_RATE);
    ck_assert_uint_eq(retry, 500 * MS);
    /* other keys have their own buckets */
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(B), T0, &k[3], NULL), TG_RATELIMIT_ADMIT);
    /* closing gives no token back: a rate, not a count */
    tg_ratelimit_conn_release(t, k[0], T0);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0 + 499 * MS, &k[2], &retry),
                     TG_RATELIMIT_OVER_RATE);
    ck_assert_uint_eq(retry, 1 * MS);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0 + 500 * MS, &k[2], NULL),
                     TG_RATELIMIT_ADMIT);
    tg_ratelimit_unref(t);
}
END_TEST

START_TEST(test_table_concurrency)
{
    struct tg_ratelimit_limits lim = {.conns = {.rate = 10, .burst = 3}, .max_conns = 1};
    struct tg_ratelimit *t;
    struct tg_ratelimit_key *k, *k2;
    struct tg_ratelimit_stat st;
    uint64_t retry = 7;

    t = table_new(&lim, 16, &k);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0, &k2, &retry),
                     TG_RATELIMIT_OVER_CONCURRENT);
    ck_assert_uint_eq(retry, 0);
    /* the refusal spent no rate token */
    ck_assert(tg_ratelimit_stat(t, KEY(A), T0, &st));
    ck_assert_uint_eq(st.active, 1);
    ck_assert_uint_eq(st.conn_tokens, 2);
    ck_assert_uint_eq(st.byte_tokens, UINT64_MAX); /* no byte limit */
    tg_ratelimit_conn_release(t, k, T0);
    ck_assert(tg_ratelimit_stat(t, KEY(A), T0, &st));
    ck_assert_uint_eq(st.active, 0);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0, &k2, NULL), TG_RATELIMIT_ADMIT);
    tg_ratelimit_conn_release(t, k2, T0);
    tg_ratelimit_unref(t);
}
END_TEST

START_TEST(test_table_concurrency_unlimited_rate)
{
    struct tg_ratelimit_limits lim = {.max_conns = 3};
    struct tg_ratelimit *t;
    struct tg_ratelimit_key *k[4];

    t = table_new(&lim, 16, NULL);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0, &k[i], NULL), TG_RATELIMIT_ADMIT);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0, &k[3], NULL),
                     TG_RATELIMIT_OVER_CONCURRENT);
    /* a lower limit refuses until enough connections end */
    lim.max_conns = 1;
    tg_ratelimit_set_limits(t, &lim, T0);
    tg_ratelimit_conn_release(t, k[0], T0);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0, &k[3], NULL),
                     TG_RATELIMIT_OVER_CONCURRENT);
    tg_ratelimit_conn_release(t, k[1], T0);
    tg_ratelimit_conn_release(t, k[2], T0);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0, &k[3], NULL), TG_RATELIMIT_ADMIT);
    tg_ratelimit_unref(t);
}
END_TEST

START_TEST(test_table_bytes)
{
    struct tg_ratelimit_limits lim = {.bytes = {.rate = 1 << 20, .burst = 1 << 16}};
    struct tg_ratelimit *t;
    struct tg_ratelimit_key *a, *a2, *b;
    uint64_t delay;

    t = table_new(&lim, 16, &a);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0, &a2, NULL), TG_RATELIMIT_ADMIT);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(B), T0, &b, NULL), TG_RATELIMIT_ADMIT);
    ck_assert_uint_eq(tg_ratelimit_bytes_take(t, a, 40000, T0, &delay), 40000);
    ck_assert_uint_eq(delay, 0);
    /* the key's connections share its bucket */
    ck_assert_uint_eq(tg_ratelimit_bytes_take(t, a2, 40000, T0, &delay), 65536 - 40000);
    ck_assert_uint_eq(delay, (40000 - 25536) * S / (1 << 20) + 1); /* rounded up */
    ck_assert_uint_eq(tg_ratelimit_bytes_take(t, a, 1, T0, &delay), 0);
    ck_assert_uint_eq(tg_ratelimit_bytes_take(t, b, 65536, T0, NULL), 65536);
    /* 1 MiB/s: 1024 bytes a millisecond (and 576 ns) */
    ck_assert_uint_eq(tg_ratelimit_bytes_take(t, a, 4096, T0 + 1 * MS, NULL), 1048);
    tg_ratelimit_conn_release(t, a, T0);
    tg_ratelimit_conn_release(t, a2, T0);
    tg_ratelimit_conn_release(t, b, T0);
    tg_ratelimit_unref(t);
}
END_TEST

START_TEST(test_table_limit_change_keeps_level)
{
    struct tg_ratelimit_limits lim = {.bytes = {.rate = 1000, .burst = 1000}};
    struct tg_ratelimit *t;
    struct tg_ratelimit_key *a;
    struct tg_ratelimit_stat st;

    t = table_new(&lim, 16, &a);
    ck_assert_uint_eq(tg_ratelimit_bytes_take(t, a, 700, T0, NULL), 700);
    lim.bytes = (struct tg_bucket_limit){.rate = 10000, .burst = 10000};
    tg_ratelimit_set_limits(t, &lim, T0 + 100 * MS); /* 100 earned at the old rate */
    ck_assert(tg_ratelimit_stat(t, KEY(A), T0 + 100 * MS, &st));
    ck_assert_uint_eq(st.byte_tokens, 400);
    ck_assert(tg_ratelimit_stat(t, KEY(A), T0 + 110 * MS, &st));
    ck_assert_uint_eq(st.byte_tokens, 500); /* the new rate from then on */
    lim.bytes = (struct tg_bucket_limit){.rate = 10, .burst = 50};
    tg_ratelimit_set_limits(t, &lim, T0 + 110 * MS);
    ck_assert(tg_ratelimit_stat(t, KEY(A), T0 + 110 * MS, &st));
    ck_assert_uint_eq(st.byte_tokens, 50); /* clamped */
    tg_ratelimit_conn_release(t, a, T0);
    tg_ratelimit_unref(t);
}
END_TEST

START_TEST(test_table_eviction)
{
    struct tg_ratelimit_limits lim = {.conns = {.rate = 1, .burst = 1}};
    struct tg_ratelimit *t;
    struct tg_ratelimit_key *k;
    struct tg_ratelimit_stat st;

    t = table_new(&lim, 2, &k);
    tg_ratelimit_conn_release(t, k, T0);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(B), T0 + 100 * MS, &k, NULL),
                     TG_RATELIMIT_ADMIT);
    tg_ratelimit_conn_release(t, k, T0 + 100 * MS);
    /* full, and A's bucket is not full again: forgetting it would forgive it */
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(C), T0 + 500 * MS, &k, NULL), TG_ETOOBIG);
    ck_assert_uint_eq(tg_ratelimit_count(t), 2);
    /* at T0 + 1 s A (idle longest) is whole again and makes room; B is not, and stays */
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(C), T0 + 1 * S, &k, NULL),
                     TG_RATELIMIT_ADMIT);
    ck_assert(!tg_ratelimit_stat(t, KEY(A), T0 + 1 * S, &st));
    ck_assert(tg_ratelimit_stat(t, KEY(B), T0 + 1 * S, &st));
    ck_assert_uint_eq(tg_ratelimit_count(t), 2);
    /* C has a connection: never evicted, however old */
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0 + 2 * S, &k, NULL),
                     TG_RATELIMIT_ADMIT); /* B goes */
    ck_assert(!tg_ratelimit_stat(t, KEY(B), T0 + 2 * S, &st));
    ck_assert(tg_ratelimit_stat(t, KEY(C), T0 + 2 * S, &st));
    ck_assert_uint_eq(st.active, 1);
    tg_ratelimit_conn_release(t, k, T0 + 2 * S); /* A idle, its bucket empty */
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(B), T0 + 100 * S, &k, NULL),
                     TG_RATELIMIT_ADMIT); /* A goes, C stays */
    ck_assert(tg_ratelimit_stat(t, KEY(C), T0 + 100 * S, &st));
    ck_assert(!tg_ratelimit_stat(t, KEY(A), T0 + 100 * S, &st));
    tg_ratelimit_unref(t); /* with C's and B's connections still open */
}
END_TEST

START_TEST(test_table_refused_use_counts_as_recent)
{
    struct tg_ratelimit_limits lim = {.conns = {.rate = 1, .burst = 1}};
    struct tg_ratelimit *t;
    struct tg_ratelimit_key *k;
    struct tg_ratelimit_stat st;

    t = table_new(&lim, 2, &k);
    tg_ratelimit_conn_release(t, k, T0);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(B), T0, &k, NULL), TG_RATELIMIT_ADMIT);
    tg_ratelimit_conn_release(t, k, T0);
    /* A tried again: now B is the one idle longest */
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(A), T0 + 500 * MS, &k, NULL),
                     TG_RATELIMIT_OVER_RATE);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(C), T0 + 5 * S, &k, NULL),
                     TG_RATELIMIT_ADMIT);
    ck_assert(tg_ratelimit_stat(t, KEY(A), T0 + 5 * S, &st));
    ck_assert(!tg_ratelimit_stat(t, KEY(B), T0 + 5 * S, &st));
    tg_ratelimit_conn_release(t, k, T0 + 5 * S);
    tg_ratelimit_unref(t);
}
END_TEST

START_TEST(test_table_sweep)
{
    struct tg_ratelimit_limits lim = {.conns = {.rate = 10, .burst = 10}};
    struct tg_ratelimit *t;
    struct tg_ratelimit_key *a, *b, *c;

    t = table_new(&lim, 16, &a);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(B), T0, &b, NULL), TG_RATELIMIT_ADMIT);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(C), T0, &c, NULL), TG_RATELIMIT_ADMIT);
    tg_ratelimit_conn_release(t, a, T0);
    tg_ratelimit_conn_release(t, b, T0);
    ck_assert_uint_eq(tg_ratelimit_sweep(t, T0 + 50 * MS), 0); /* not full yet */
    ck_assert_uint_eq(tg_ratelimit_sweep(t, T0 + 100 * MS), 2);
    ck_assert_uint_eq(tg_ratelimit_count(t), 1); /* C has a connection */
    tg_ratelimit_conn_release(t, c, T0 + 100 * MS);
    ck_assert_uint_eq(tg_ratelimit_sweep(t, T0 + 200 * MS), 1);
    ck_assert_uint_eq(tg_ratelimit_count(t), 0);
    tg_ratelimit_unref(t);
}
END_TEST

START_TEST(test_table_many_keys)
{
    struct tg_ratelimit_limits lim = {.conns = {.rate = 5}};
    struct tg_ratelimit *t;
    struct tg_ratelimit_key *k;
    struct tg_ratelimit_stat st;
    char key[64];

    t = table_new(&lim, 5000, NULL);
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "spiffe://td/ns/n/sa/s%d", i);
        ck_assert_int_eq(tg_ratelimit_conn_acquire(t, KEY(key), T0, &k, NULL), TG_RATELIMIT_ADMIT);
    }
    ck_assert_uint_eq(tg_ratelimit_count(t), 3000);
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "spiffe://td/ns/n/sa/s%d", i);
        ck_assert(tg_ratelimit_stat(t, KEY(key), T0, &st));
        ck_assert_uint_eq(st.active, 1);
        ck_assert_uint_eq(st.conn_tokens, 4);
    }
    tg_ratelimit_unref(t);
}
END_TEST

START_TEST(test_table_bad_arguments)
{
    struct tg_ratelimit_limits lim = {{0, 0}, 0, {0, 0}, {0, 0}};
    struct tg_ratelimit *t = NULL;
    struct tg_ratelimit_key *k;
    char *big = calloc(1, TG_RATELIMIT_KEY_MAX + 1);

    ck_assert_ptr_nonnull(big);
    memset(big, 'a', TG_RATELIMIT_KEY_MAX + 1);
    ck_assert_int_eq(tg_ratelimit_new(&lim, 0, &t), TG_EINVAL);
    ck_assert_ptr_null(t);
    t = table_new(&lim, 1, NULL);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, "", 0, T0, &k, NULL), TG_EINVAL);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, big, TG_RATELIMIT_KEY_MAX + 1, T0, &k, NULL),
                     TG_EINVAL);
    ck_assert_int_eq(tg_ratelimit_conn_acquire(t, big, TG_RATELIMIT_KEY_MAX, T0, &k, NULL),
                     TG_RATELIMIT_ADMIT);
    tg_ratelimit_conn_release(t, k, T0);
    tg_ratelimit_unref(t);
    tg_ratelimit_unref(NULL);
    free(big);
}
END_TEST

/* Workers share one table: with the clock standing still, exactly a burst of connections
 * gets in per key however the threads interleave, and every count comes back to zero. */
struct worker_arg {
    struct tg_ratelimit *t;
    int admitted;
};

static void *worker(void *p)
{
    struct worker_arg *w = p;

    for (int i = 0; i < 2000; i++) {
        struct tg_ratelimit_key *k;
        const char *key = i % 2 ? A : B;

        if (tg_ratelimit_conn_acquire(w->t, KEY(key), T0, &k, NULL) != TG_RATELIMIT_ADMIT)
            continue;
        w->admitted++;
        (void)tg_ratelimit_bytes_take(w->t, k, 100, T0, NULL);
        tg_ratelimit_conn_release(w->t, k, T0);
    }
    return NULL;
}

START_TEST(test_table_shared_by_threads)
{
    struct tg_ratelimit_limits lim = {.conns = {.rate = 1, .burst = 1500}};
    struct worker_arg args[4];
    pthread_t th[4];
    struct tg_ratelimit_stat sa, sb;
    int total = 0;

    ck_assert_int_eq(tg_ratelimit_new(&lim, 16, &args[0].t), 0);
    for (int i = 0; i < 4; i++) {
        args[i] = (struct worker_arg){args[0].t, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        total += args[i].admitted;
    }
    /* 4000 attempts a key, 1500 tokens a key */
    ck_assert_int_eq(total, 3000);
    ck_assert(tg_ratelimit_stat(args[0].t, KEY(A), T0, &sa));
    ck_assert(tg_ratelimit_stat(args[0].t, KEY(B), T0, &sb));
    ck_assert_uint_eq(sa.active + sb.active, 0);
    ck_assert_uint_eq(sa.conn_tokens + sb.conn_tokens, 0);
    tg_ratelimit_unref(args[0].t);
}
END_TEST

/* Limit sets: first match wins, in every match form; a limiter that stays keeps its table
 * (and so its buckets' levels, under the new limits once applied); a new one starts full. */
START_TEST(test_limit_set_match_and_carry_over)
{
    struct tg_limit_rule r1[] = {
        {"spiffe://mesh.local/ns/a/*", false, {.conns = {1, 2}}},
        {"*/sa/b", true, {.max_conns = 1}},
        {"spiffe://mesh.local/ns/c/sa/c", false, {{0, 0}, 0, {0, 0}, {0, 0}}}, /* exempt */
        {"*", false, {.conns = {100, 100}}},
    };
    struct tg_limit_rule r2[] = {
        {"spiffe://mesh.local/ns/a/*", false, {.conns = {1, 5}}},
        {"*/sa/b", false, {.max_conns = 1}}, /* now keyed by ID: another table */
    };
    struct tg_limit_set *s1 = NULL, *s2 = NULL;
    const struct tg_limiter *l;
    struct tg_ratelimit_key *k;
    struct tg_ratelimit_stat st;

    ck_assert_int_eq(tg_limit_set_new(r1, 4, NULL, 100, &s1), 0);
    ck_assert_str_eq(tg_limit_set_find(s1, A)->match, "spiffe://mesh.local/ns/a/*");
    ck_assert_str_eq(tg_limit_set_find(s1, B)->match, "*/sa/b");
    ck_assert(tg_limit_set_find(s1, B)->by_fingerprint);
    ck_assert_ptr_null(tg_limit_set_find(s1, "spiffe://mesh.local/ns/c/sa/c")->table);
    ck_assert_str_eq(tg_limit_set_find(s1, "spiffe://other/x")->match, "*");
    ck_assert_ptr_null(tg_limit_set_find(NULL, A));

    /* A spends both of its burst */
    l = tg_limit_set_find(s1, A);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(tg_ratelimit_conn_acquire(l->table, KEY(A), T0, &k, NULL),
                         TG_RATELIMIT_ADMIT);
        tg_ratelimit_conn_release(l->table, k, T0);
    }
    ck_assert_int_eq(tg_ratelimit_conn_acquire(l->table, KEY(A), T0, &k, NULL),
                     TG_RATELIMIT_OVER_RATE);

    ck_assert_int_eq(tg_limit_set_new(r2, 2, s1, 100, &s2), 0);
    ck_assert_ptr_eq(tg_limit_set_find(s2, A)->table, tg_limit_set_find(s1, A)->table);
    ck_assert_ptr_ne(tg_limit_set_find(s2, B)->table, tg_limit_set_find(s1, B)->table);
    ck_assert_ptr_null(tg_limit_set_find(s2, "spiffe://other/x"));
    /* nothing changes until applied; then the level is kept (0) under burst 5 */
    ck_assert_uint_eq(tg_ratelimit_limits_of(tg_limit_set_find(s2, A)->table).conns.burst, 2);
    tg_limit_set_apply(s2, T0);
    ck_assert_uint_eq(tg_ratelimit_limits_of(tg_limit_set_find(s2, A)->table).conns.burst, 5);
    ck_assert(tg_ratelimit_stat(tg_limit_set_find(s2, A)->table, KEY(A), T0, &st));
    ck_assert_uint_eq(st.conn_tokens, 0);
    /* the old set goes; the carried table lives on in the new one */
    tg_limit_set_unref(s1);
    ck_assert(tg_ratelimit_stat(tg_limit_set_find(s2, A)->table, KEY(A), T0 + S, &st));
    ck_assert_uint_eq(st.conn_tokens, 1);
    tg_limit_set_unref(s2);
}
END_TEST

START_TEST(test_limit_set_bad_match)
{
    static const char *bad[] = {"", "spiffe://a*b", "**", "*a*", "a*b*"};
    char why[TG_ERRLEN];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tg_limit_rule r = {bad[i], false, {.max_conns = 1}};
        struct tg_limit_set *s = NULL;

        ck_assert_msg(tg_limit_match_check(bad[i], why) == TG_EINVAL, "\"%s\" accepted", bad[i]);
        ck_assert_int_eq(tg_limit_set_new(&r, 1, NULL, 10, &s), TG_EINVAL);
        ck_assert_ptr_null(s);
    }
    ck_assert_int_eq(tg_limit_match_check("*", why), 0);
    ck_assert_int_eq(tg_limit_match_check("spiffe://x/*", why), 0);
    ck_assert_int_eq(tg_limit_match_check("*/sa/x", why), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    return TG_TEST_SUITE(
        "ratelimit", "core", NULL, test_bucket_rate_and_burst, test_bucket_refill_keeps_fractions,
        test_bucket_delay_counts_partial_progress, test_bucket_defaults_and_unlimited,
        test_bucket_clock_steps_back, test_bucket_large_numbers,
        test_bucket_limit_change_keeps_level, test_global_bucket, test_table_connection_rate,
        test_table_concurrency, test_table_concurrency_unlimited_rate, test_table_bytes,
        test_table_limit_change_keeps_level, test_table_eviction,
        test_table_refused_use_counts_as_recent, test_table_sweep, test_table_many_keys,
        test_table_bad_arguments, test_table_shared_by_threads, test_limit_set_match_and_carry_over,
        test_limit_set_bad_match);
}

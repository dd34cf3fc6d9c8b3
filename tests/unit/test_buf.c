/* buf.c: fixed buffers whose storage comes from a pool only while they hold bytes. */
#include <check.h>
#include "check_main.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/buf.h"

/* A pool of size-byte buffers (max_free kept) and b holding one of them, empty. */
static void pool_and_buf(struct tg_pool *p, struct tg_buf *b, size_t size, size_t max_free)
{
    tg_pool_init(p, size, max_free);
    ck_assert_int_eq(tg_buf_reserve(b, p, true), 0);
}

START_TEST(test_buf_storage_comes_and_goes_with_bytes)
{
    struct tg_pool p;
    struct tg_buf b = {0};

    tg_pool_init(&p, 64, 4);
    ck_assert_uint_eq(tg_buf_room(&b), 0);
    ck_assert_int_eq(tg_buf_reserve(&b, &p, true), 0);
    ck_assert_uint_eq(tg_buf_room(&b), 64);
    ck_assert_uint_eq(p.n_out, 1);
    memcpy(tg_buf_tail(&b), "abcdef", 6);
    tg_buf_commit(&b, 6);
    tg_buf_release(&b, &p); /* not empty: kept */
    ck_assert_ptr_nonnull(b.data);
    tg_buf_consume(&b, 6);
    ck_assert_uint_eq(b.head, 0); /* empty starts again at the front */
    tg_buf_release(&b, &p);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(p.n_out, 0);
    ck_assert_uint_eq(p.n_free, 1); /* kept for reuse */
    tg_pool_cleanup(&p);
    ck_assert_uint_eq(p.n_free, 0);
}
END_TEST

START_TEST(test_buf_moves_bytes_only_when_allowed)
{
    struct tg_pool p;
    struct tg_buf b = {0};

    pool_and_buf(&p, &b, 16, 1);
    memcpy(tg_buf_tail(&b), "0123456789abcdef", 16);
    tg_buf_commit(&b, 16);
    tg_buf_consume(&b, 10);
    ck_assert_uint_eq(tg_buf_room(&b), 0);
    ck_assert_int_eq(tg_buf_reserve(&b, &p, false), 0); /* a write is in flight: no move */
    ck_assert_uint_eq(tg_buf_room(&b), 0);
    ck_assert_int_eq(tg_buf_reserve(&b, &p, true), 0);
    ck_assert_uint_eq(tg_buf_room(&b), 10);
    ck_assert_uint_eq(tg_buf_len(&b), 6);
    ck_assert_mem_eq(tg_buf_data(&b), "abcdef", 6);
    tg_buf_drop(&b, &p);
    ck_assert_ptr_null(b.data);
    tg_pool_cleanup(&p);
}
END_TEST

START_TEST(test_pool_keeps_at_most_max_free)
{
    struct tg_pool p;
    struct tg_buf b[5] = {0};

    tg_pool_init(&p, 32, 2);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tg_buf_reserve(&b[i], &p, true), 0);
    ck_assert_uint_eq(p.n_out, 5);
    for (int i = 0; i < 5; i++)
        tg_buf_release(&b[i], &p);
    ck_assert_uint_eq(p.n_out, 0);
    ck_assert_uint_eq(p.n_free, 2);
    tg_pool_cleanup(&p);
}
END_TEST

/* Takes n blocks of p into b[0..n-1], then gives them all back. */
static void burst(struct tg_pool *p, struct tg_buf *b, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(tg_buf_reserve(&b[i], p, true), 0);
    for (int i = 0; i < n; i++)
        tg_buf_release(&b[i], p);
}

/* keep_peak: bursts of the same size take no block from malloc after the first; a period
 * with smaller bursts gives back what it did not need, down to max_free after an idle one. */
START_TEST(test_pool_keeps_a_burst_until_trimmed)
{
    struct tg_pool p;
    struct tg_buf b[6] = {0};

    tg_pool_init(&p, 32, 1);
    tg_pool_keep_peak(&p);
    burst(&p, b, 6);
    ck_assert_uint_eq(p.n_free, 6); /* all kept, beyond max_free */
    burst(&p, b, 6);
    ck_assert_uint_eq(p.n_free, 6); /* the same six again: no malloc, no free */
    tg_pool_trim(&p);
    ck_assert_uint_eq(p.n_free, 6); /* the period needed six */
    ck_assert_int_eq(tg_buf_reserve(&b[0], &p, true), 0);
    burst(&p, b + 1, 2); /* three out at once at most */
    tg_pool_trim(&p);    /* one still out: two more are kept for the next such burst */
    ck_assert_uint_eq(p.n_free, 2);
    ck_assert_uint_eq(p.n_out, 1);
    tg_buf_release(&b[0], &p);
    tg_pool_trim(&p); /* an idle period: back to max_free */
    ck_assert_uint_eq(p.n_free, 1);
    tg_pool_trim(&p);
    ck_assert_uint_eq(p.n_free, 1);
    tg_pool_cleanup(&p);
}
END_TEST

#ifndef NDEBUG
/* Debug builds (the ASan stage) stop at the first cursor that leaves its bounds. */
START_TEST(test_buf_consume_past_len_aborts)
{
    struct tg_pool p;
    struct tg_buf b = {0};

    pool_and_buf(&p, &b, 32, 1);
    tg_buf_commit(&b, 4);
    tg_buf_consume(&b, 5);
}
END_TEST

START_TEST(test_buf_commit_past_room_aborts)
{
    struct tg_pool p;
    struct tg_buf b = {0};

    pool_and_buf(&p, &b, 32, 1);
    tg_buf_commit(&b, 33);
}
END_TEST
#endif

/* tg_buf_window_back: window goes back only as far as the room at the tail takes what the
 * peer may then send; bytes move to the front only when that costs no more than it gains. */
START_TEST(test_buf_window_back_keeps_the_peer_within_the_room)
{
    struct tg_pool p;
    struct tg_buf b = {0};
    size_t sent = 0, taken = 0, given = 0, got = 0;
    uint32_t seed = 12345;

    pool_and_buf(&p, &b, 100, 1);
    tg_buf_commit(&b, 90);
    tg_buf_consume(&b, 30); /* the app took 30 of 90: 60 held from offset 30, room 10 */
    ck_assert_uint_eq(tg_buf_window_back(&b, 100, 100, 30), 0); /* the peer could send 40 */
    ck_assert_uint_eq(b.head, 30);                              /* moving 60 to gain 30: no */
    tg_buf_consume(&b, 30);
    ck_assert_uint_eq(tg_buf_window_back(&b, 100, 100, 60), 60); /* moved 30, room 70 */
    ck_assert_uint_eq(b.head, 0);
    ck_assert_uint_eq(tg_buf_len(&b), 30);
    tg_buf_drop(&b, &p);
    ck_assert_uint_eq(tg_buf_window_back(&b, 100, 100, 40), 40); /* no storage: a whole block */

    /* a peer that sends all its window allows, an app that takes what it likes: the peer's
     * bytes always fit at the tail, and everything goes back in the end (window 100 and a
     * narrower 60, in blocks of 100) */
    for (size_t window = 100; window >= 60; window -= 40) {
        for (int step = 0; step < 20000; step++) {
            size_t allowed = window - (sent - given), room, n;

            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 2 == 0) { /* the peer sends up to its window */
                n = (seed >> 8) % (allowed + 1);
                ck_assert_int_eq(tg_buf_reserve(&b, &p, true), 0);
                room = tg_buf_room(&b);
                ck_assert_msg(allowed <= room, "the peer may send %zu, room %zu", allowed, room);
                tg_buf_commit(&b, n);
                sent += n;
            } else { /* the app takes some, and window goes back */
                n = (seed >> 8) % (tg_buf_len(&b) + 1);
                tg_buf_consume(&b, n);
                got += n;
                taken += n;
                n = tg_buf_window_back(&b, 100, window, taken);
                taken -= n;
                given += n;
            }
        }
        got += tg_buf_len(&b);
        taken += tg_buf_len(&b);
        tg_buf_consume(&b, tg_buf_len(&b));
        given += tg_buf_window_back(&b, 100, window, taken);
        ck_assert_uint_eq(given, sent);
        ck_assert_uint_eq(got, sent);
        taken = 0;
    }
    tg_buf_drop(&b, &p);
    tg_pool_cleanup(&p);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE(
        "buf", "buf", &tc, test_buf_storage_comes_and_goes_with_bytes,
        test_buf_moves_bytes_only_when_allowed, test_pool_keeps_at_most_max_free,
        test_pool_keeps_a_burst_until_trimmed, test_buf_window_back_keeps_the_peer_within_the_room);

#ifndef NDEBUG
    tcase_add_test_raise_signal(tc, test_buf_consume_past_len_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_buf_commit_past_room_aborts, SIGABRT);
#endif
    return s;
}

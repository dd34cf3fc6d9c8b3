/* The verified peers' table of /config_dump (peers.h): one row per certificate with its
 * connection counts, bounded at TG_PEERS_MAX rows, an idle row given to a newer certificate,
 * connections of peers it cannot keep counted apart, malformed arguments refused. */
#include <check.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/peers.h"

/* A fingerprint of 64 hex digits made from i. */
static const char *fp(unsigned i, char buf[TG_PEERS_HEX])
{
    snprintf(buf, TG_PEERS_HEX, "%064x", i);
    return buf;
}

START_TEST(test_peers_counts_connections_per_certificate)
{
    struct tg_peers p;
    struct tg_peer_row *rows;
    uint64_t untracked, evicted;
    char a[TG_PEERS_HEX], b[TG_PEERS_HEX];
    size_t n;

    tg_peers_init(&p);
    ck_assert(tg_peers_open(&p, "spiffe://m/ns/a/sa/x", fp(1, a), "0a1b", 2000, true, 100));
    ck_assert(tg_peers_open(&p, "spiffe://m/ns/a/sa/x", a, "0a1b", 2000, true, 101));
    ck_assert(tg_peers_open(&p, "spiffe://m/ns/b/sa/y", fp(2, b), "0c", 3000, false, 102));
    tg_peers_close(&p, a);
    n = tg_peers_snapshot(&p, &rows, &untracked, &evicted);
    ck_assert_uint_eq(n, 2);
    /* most recently seen first */
    ck_assert_str_eq(rows[0].id, "spiffe://m/ns/b/sa/y");
    ck_assert_uint_eq(rows[0].outbound, 1);
    ck_assert_uint_eq(rows[0].inbound, 0);
    ck_assert_str_eq(rows[1].sha256, a);
    ck_assert_str_eq(rows[1].serial, "0a1b");
    ck_assert_int_eq(rows[1].not_after, 2000);
    ck_assert_int_eq(rows[1].first_seen, 100);
    ck_assert_int_eq(rows[1].last_seen, 101);
    ck_assert_uint_eq(rows[1].inbound, 2);
    ck_assert_uint_eq(rows[1].active, 1);
    ck_assert_uint_eq(untracked + evicted, 0);
    tg_peers_snapshot_free(rows, n);
    tg_peers_cleanup(&p);
}
END_TEST

/* A caller with many certificates cannot grow the table: past TG_PEERS_MAX rows with open
 * connections a new one is not kept; once a row is idle, the least recently seen idle row
 * goes to the newcomer. */
START_TEST(test_peers_bounded)
{
    struct tg_peers p;
    struct tg_peer_row *rows;
    uint64_t untracked, evicted;
    char f[TG_PEERS_HEX], g[TG_PEERS_HEX];
    size_t n;

    tg_peers_init(&p);
    for (unsigned i = 0; i < TG_PEERS_MAX; i++)
        ck_assert(tg_peers_open(&p, "spiffe://m/ns/a/sa/x", fp(i, f), "01", 1, true, 1000 + i));
    ck_assert(!tg_peers_open(&p, "spiffe://m/ns/a/sa/x", fp(9999, f), "01", 1, true, 5000));
    /* two idle rows: 7 (seen at 1007) and 3 (seen at 1003); 3 is taken first */
    tg_peers_close(&p, fp(7, f));
    tg_peers_close(&p, fp(3, f));
    ck_assert(tg_peers_open(&p, "spiffe://m/ns/a/sa/new", fp(9999, f), "02", 1, true, 6000));
    n = tg_peers_snapshot(&p, &rows, &untracked, &evicted);
    ck_assert_uint_eq(n, TG_PEERS_MAX);
    ck_assert_uint_eq(untracked, 1);
    ck_assert_uint_eq(evicted, 1);
    ck_assert_str_eq(rows[0].id, "spiffe://m/ns/a/sa/new");
    for (size_t i = 0; i < n; i++)
        ck_assert_str_ne(rows[i].sha256, fp(3, g));
    tg_peers_snapshot_free(rows, n);
    /* the close of a connection never tracked finds nothing to take from */
    tg_peers_close(&p, fp(12345, f));
    tg_peers_cleanup(&p);
}
END_TEST

START_TEST(test_peers_refuses_malformed)
{
    struct tg_peers p;
    struct tg_peer_row *rows;
    uint64_t untracked, evicted;
    char f[TG_PEERS_HEX], *long_id = malloc(TG_PEERS_ID_MAX + 2);

    ck_assert_ptr_nonnull(long_id);
    memset(long_id, 'a', TG_PEERS_ID_MAX + 1);
    long_id[TG_PEERS_ID_MAX + 1] = '\0';
    tg_peers_init(&p);
    ck_assert(!tg_peers_open(&p, NULL, fp(1, f), "01", 1, true, 1));
    ck_assert(!tg_peers_open(&p, long_id, fp(1, f), "01", 1, true, 1));
    ck_assert(!tg_peers_open(&p, "spiffe://m/ns/a/sa/x", "", "01", 1, true, 1));
    ck_assert(!tg_peers_open(&p, "spiffe://m/ns/a/sa/x", "ABCD", "01", 1, true, 1));
    ck_assert(!tg_peers_open(&p, "spiffe://m/ns/a/sa/x", fp(1, f), "0x1", 1, true, 1));
    ck_assert_uint_eq(tg_peers_snapshot(&p, &rows, &untracked, &evicted), 0);
    ck_assert_ptr_null(rows);
    tg_peers_cleanup(&p);
    free(long_id);
}
END_TEST

Suite *tg_test_suite(void)
{
    return TG_TEST_SUITE("peers", "peers", NULL, test_peers_counts_connections_per_certificate,
                         test_peers_bounded, test_peers_refuses_malformed);
}

/* The one Check main every unit and integration test links (tests/check_main.c).
 *
 * A test file defines tg_test_suite() (its tcases, fixtures and timeouts) and no main().
 * The shared main runs that suite with CK_ENV (CK_VERBOSITY, CK_RUN_SUITE, CK_RUN_CASE,
 * CK_FORK apply) and exits 0 when every test passed, 1 otherwise. */
#ifndef TG_TESTS_CHECK_MAIN_H
#define TG_TESTS_CHECK_MAIN_H

#include <check.h>
#include <stddef.h>

/* The suite this test program runs. Every test file defines it. */
Suite *tg_test_suite(void);

/* A test case named tcase, added to s, that runs tests[0..n-1] (the names START_TEST
 * defines) once each, in order. Returns it, for what the file adds (fixtures, a timeout, loop
 * tests). */
TCase *tg_test_case_of(Suite *s, const char *tcase, const TTest *const *tests, size_t n);
/* A suite named suite of that one test case: what most test files are. *tc, unless tc is
 * NULL, gets the test case. */
Suite *tg_test_suite_of(const char *suite, const char *tcase, const TTest *const *tests, size_t n,
                        TCase **tc);
/* The same with the tests listed: TG_TEST_SUITE("buf", "buf", NULL, test_a, test_b). */
#define TG_TEST_LIST(...)                                                                          \
    (const TTest *const[]){__VA_ARGS__},                                                           \
        sizeof((const TTest *const[]){__VA_ARGS__}) / sizeof(const TTest *)
#define TG_TEST_CASE(s, tcase, ...) tg_test_case_of(s, tcase, TG_TEST_LIST(__VA_ARGS__))
#define TG_TEST_SUITE(suite, tcase, tc, ...)                                                       \
    tg_test_suite_of(suite, tcase, TG_TEST_LIST(__VA_ARGS__), tc)

/* A loop test over a table: test runs once for each _i from 0 to the table's length. */
struct tg_test_loop {
    const TTest *test;
    int n;
};
#define TG_TEST_LOOP(test, table)                                                                  \
    {                                                                                              \
        test, (int)(sizeof(table) / sizeof((table)[0]))                                            \
    }
/* Adds loops[0..n-1] to tc, in order, and returns tc. */
TCase *tg_test_add_loops(TCase *tc, const struct tg_test_loop *loops, size_t n);
/* The same with the loops listed: TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_a, cases)). */
#define TG_TEST_LOOPS(tc, ...)                                                                     \
    tg_test_add_loops(tc, (const struct tg_test_loop[]){__VA_ARGS__},                              \
                      sizeof((const struct tg_test_loop[]){__VA_ARGS__}) /                         \
                          sizeof(struct tg_test_loop))

/* Optional: a test file that re-executes itself as a helper process (a fake control plane,
 * a load server) defines this. When the program is started with arguments, the shared main
 * calls it instead of running the suite and exits with what it returns; without it, any
 * argument is a usage error (exit 2). It returns TG_TEST_NO_SUBCOMMAND for a command it does
 * not know: the main says so and exits 2. */
int tg_test_subcommand(int argc, char **argv);
#define TG_TEST_NO_SUBCOMMAND (-1)

#endif

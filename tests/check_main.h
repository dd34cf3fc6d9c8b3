/* The one Check main every unit and integration test links (tests/check_main.c).
 *
 * A test file defines tg_test_suite() (its tcases, fixtures and timeouts) and no main().
 * The shared main runs that suite with CK_ENV (CK_VERBOSITY, CK_RUN_SUITE, CK_RUN_CASE,
 * CK_FORK apply) and exits 0 when every test passed, 1 otherwise. */
#ifndef TG_TESTS_CHECK_MAIN_H
#define TG_TESTS_CHECK_MAIN_H

#include <check.h>

/* The suite this test program runs. Every test file defines it. */
Suite *tg_test_suite(void);

/* Optional: a test file that re-executes itself as a helper process (a fake control plane,
 * a load server) defines this. When the program is started with arguments, the shared main
 * calls it instead of running the suite and exits with what it returns; without it, any
 * argument is a usage error (exit 2). */
int tg_test_subcommand(int argc, char **argv);

#endif

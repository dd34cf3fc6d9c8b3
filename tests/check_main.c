/* The one Check main of every unit and integration test (see check_main.h). */
#include "check_main.h"

#include <stdio.h>
#include <stdlib.h>

/* Weak: only the tests that re-execute themselves as helpers define it. */
__attribute__((weak)) int tg_test_subcommand(int argc, char **argv);

TCase *tg_test_case_of(Suite *s, const char *tcase, const TTest *const *tests, size_t n)
{
    TCase *tc = tcase_create(tcase);

    for (size_t i = 0; i < n; i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return tc;
}

Suite *tg_test_suite_of(const char *suite, const char *tcase, const TTest *const *tests, size_t n,
                        TCase **tc)
{
    Suite *s = suite_create(suite);
    TCase *c = tg_test_case_of(s, tcase, tests, n);

    if (tc != NULL)
        *tc = c;
    return s;
}

TCase *tg_test_add_loops(TCase *tc, const struct tg_test_loop *loops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tcase_add_loop_test(tc, loops[i].test, 0, loops[i].n);
    return tc;
}

int main(int argc, char **argv)
{
    SRunner *sr;
    int failed;

    if (argc > 1 && tg_test_subcommand != NULL) {
        if ((failed = tg_test_subcommand(argc, argv)) != TG_TEST_NO_SUBCOMMAND)
            return failed;
        fprintf(stderr, "%s: unknown helper command %s\n", argv[0], argv[1]);
        return 2;
    }
    if (argc > 1) {
        fprintf(stderr, "%s: takes no arguments (select tests with CK_RUN_SUITE/CK_RUN_CASE)\n",
                argv[0]);
        return 2;
    }
    sr = srunner_create(tg_test_suite());
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

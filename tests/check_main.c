/* The one Check main of every unit and integration test (see check_main.h). */
#include "check_main.h"

#include <stdio.h>
#include <stdlib.h>

/* Weak: only the tests that re-execute themselves as helpers define it. */
__attribute__((weak)) int tg_test_subcommand(int argc, char **argv);

int main(int argc, char **argv)
{
    SRunner *sr;
    int failed;

    if (argc > 1) {
        if (tg_test_subcommand != NULL)
            return tg_test_subcommand(argc, argv);
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

/* Unit-test helpers that are not about certificates (those are in certs_util.h).
 * Header-only; each test binary that includes it gets its own copy. */
#ifndef TOLLGATE_TEST_UNIT_UTIL_H
#define TOLLGATE_TEST_UNIT_UTIL_H

/* The string literal s as writable chars (a compound literal: static at file scope, else alive
 * to the end of the enclosing block). For the char * of a config's lists (struct tg_strlist),
 * which own their strings, filled by a test with literals. */
#define UT_STR(s) ((char[]){s})

/* A test named name that runs check(i) for every case i of the array table, in one process:
 * for tables of cheap cases, where a fork per case (tcase_add_loop_test) costs more than the
 * case, under ASan most of all. */
#define UT_TABLE_TEST(name, table, check)                                                          \
    START_TEST(name)                                                                               \
    {                                                                                              \
        for (int i = 0; i < (int)(sizeof(table) / sizeof((table)[0])); i++)                        \
            check(i);                                                                              \
    }                                                                                              \
    END_TEST

#endif

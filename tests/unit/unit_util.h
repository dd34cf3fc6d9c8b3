/* Unit-test helpers that are not about certificates (those are in certs_util.h).
 * Header-only; each test binary that includes it gets its own copy. */
#ifndef TOLLGATE_TEST_UNIT_UTIL_H
#define TOLLGATE_TEST_UNIT_UTIL_H

#include <check.h>
#include <stdio.h>
#include <unistd.h>

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

/* Runs write(arg) with fd (STDOUT_FILENO, STDERR_FILENO) on a pipe and reads back what it
 * wrote (at most cap - 1 bytes, NUL-terminated); its length. For the log writers, which
 * write each line with one write(2) and must not block: the pipe holds more than a line. */
static inline size_t ut_capture_fd(int fd, void (*write_fn)(const void *), const void *arg,
                                   char *dst, size_t cap)
{
    int fds[2], saved;
    ssize_t r;

    ck_assert_int_eq(pipe(fds), 0);
    fflush(fd == STDOUT_FILENO ? stdout : stderr);
    saved = dup(fd);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fds[1], fd), 0);
    write_fn(arg);
    ck_assert_int_ge(dup2(saved, fd), 0);
    close(saved);
    close(fds[1]);
    r = read(fds[0], dst, cap - 1);
    ck_assert_int_ge(r, 0);
    dst[r] = '\0';
    if (r > 0) /* one write, nothing after it */
        ck_assert_int_eq(read(fds[0], dst + r, 1), 0);
    close(fds[0]);
    return (size_t)r;
}

#endif

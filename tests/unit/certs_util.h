/* Unit-test helper: makes certificates at run time with $TG_CERTS_BIN (tollgate-certs) in a
 * fresh temporary directory, and reads PEM files. Header-only; each test binary that
 * includes it gets its own copy. */
#ifndef TOLLGATE_TEST_CERTS_UTIL_H
#define TOLLGATE_TEST_CERTS_UTIL_H

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char cu_dir[256];

/* Runs tollgate-certs with the words given (NULL-terminated) inside cu_dir; fails the test
 * when it does not exit 0. */
static void cu_certs(const char *first, ...)
{
    const char *bin = getenv("TG_CERTS_BIN");
    char cmd[2048];
    size_t n;
    va_list ap;

    ck_assert_msg(bin != NULL, "TG_CERTS_BIN is not set (run through ctest)");
    n = (size_t)snprintf(cmd, sizeof(cmd), "cd %s && %s", cu_dir, bin);
    va_start(ap, first);
    for (const char *w = first; w != NULL; w = va_arg(ap, const char *))
        n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " '%s'", w);
    va_end(ap);
    snprintf(cmd + n, sizeof(cmd) - n, " >/dev/null");
    ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

static void cu_setup(void)
{
    snprintf(cu_dir, sizeof(cu_dir), "/tmp/tg-unit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(cu_dir));
}

static void cu_teardown(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cu_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", cu_dir);
}

/* cu_dir + "/" + name, in a static rotating buffer. */
__attribute__((unused)) static const char *cu_path(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];

    snprintf(b, 512, "%s/%s", cu_dir, name);
    return b;
}

/* Writes text into cu_dir/name. */
__attribute__((unused)) static void cu_write(const char *name, const char *text)
{
    FILE *f = fopen(cu_path(name), "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

__attribute__((unused)) static char *cu_read(const char *name, size_t *len)
{
    FILE *f = fopen(cu_path(name), "rb");
    char *data;
    long n;

    ck_assert_msg(f != NULL, "cannot open %s", name);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    data = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return data;
}

#endif

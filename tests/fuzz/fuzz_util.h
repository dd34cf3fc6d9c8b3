/* Shared by the fuzzers: the error rule every refusal obeys, and once-per-process set-up.
 * Header-only; one copy per fuzzer. */
#ifndef TOLLGATE_FUZZ_UTIL_H
#define TOLLGATE_FUZZ_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/err.h"

/* libFuzzer's entry point, which every fuzz_<parser>.c defines (replay_main.c calls it too). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The error rule: a refusal says why in one non-empty line that fits err[TG_ERRLEN];
 * anything else aborts. */
static inline void fuzz_check_err(const char *err)
{
    size_t n = strnlen(err, TG_ERRLEN);

    if (n == 0 || n == TG_ERRLEN || memchr(err, '\n', n) != NULL)
        abort();
}

/* The error rule, and the line names the input: it starts with what (the file name the
 * parser was given), or with "out of memory" when oom_ok. */
static inline void fuzz_check_err_names(const char *err, const char *what, bool oom_ok)
{
    fuzz_check_err(err);
    if (strncmp(err, what, strlen(what)) != 0 &&
        (!oom_ok || strncmp(err, "out of memory", 13) != 0))
        abort();
}

/* The input read as a stream of choices: each fuzz_next() takes the next byte, 0 once the
 * input is used up, so that every input, however short, makes a whole case. */
struct fuzz_reader {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fuzz_next(struct fuzz_reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

/* n choices into dst. */
static inline void fuzz_take(struct fuzz_reader *r, void *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ((uint8_t *)dst)[i] = fuzz_next(r);
}

/* In a set-up function: returns at once on every call but the first. */
#define FUZZ_ONCE()                                                                                \
    do {                                                                                           \
        static bool fuzz_once_done_;                                                               \
        if (fuzz_once_done_)                                                                       \
            return;                                                                                \
        fuzz_once_done_ = true;                                                                    \
    } while (0)

/* A set-up step that cannot fail did: says what (who: the fuzzer's name) and aborts. */
static inline _Noreturn void fuzz_setup_failed(const char *who, const char *err)
{
    fprintf(stderr, "%s: %s\n", who, err);
    abort();
}

/* TG_FUZZ_STATS=1 in the environment: print the fuzzer's counters at exit. */
static inline void fuzz_stats_at_exit(void (*print)(void))
{
    if (getenv("TG_FUZZ_STATS") != NULL)
        atexit(print);
}

#endif

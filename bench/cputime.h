/* What the CPU-time benchmarks share (tls_bench, crypto_bench): the calling thread's CPU time,
 * which other work on a shared machine disturbs less than wall time, and the order of a
 * qsort of doubles for their medians. Header-only. */
#ifndef TOLLGATE_BENCH_CPUTIME_H
#define TOLLGATE_BENCH_CPUTIME_H

#include <time.h>

/* The calling thread's CPU time, in microseconds. */
static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

#endif

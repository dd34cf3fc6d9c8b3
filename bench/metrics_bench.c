/* What the metrics cost the data path, without I/O: ns per histogram observation (a
 * connection's, values spread over its buckets), ns per identity label lookup (once per
 * mTLS connection: the worst found case, the 20th of 20 identities, and a newcomer once the
 * table is full), and µs per scrape of a sidecar with 2 workers and 4 listeners. Best of 7
 * rounds each, to damp the noise of a shared machine. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tollgate/metrics.h"

#define ROUNDS 7

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static volatile unsigned sink;

static double time_observe(struct tg_listener_stats *s, long n)
{
    double t0 = now_s();

    for (long i = 0; i < n; i++) /* 0 to 4 s, in 997 µs steps: every bucket of the first half */
        tg_histogram_observe(&s->hist[TG_HIST_CONN], TG_HIST_CONN, (uint64_t)(i * 997 % 4000000));
    return (now_s() - t0) / (double)n * 1e9;
}

static double time_index(struct tg_metrics *m, const char *id, long n)
{
    double t0 = now_s();

    for (long i = 0; i < n; i++)
        sink += tg_metrics_id_index(m, id);
    return (now_s() - t0) / (double)n * 1e9;
}

static double time_render(const struct tg_metrics *m, int n, size_t *len)
{
    double t0 = now_s();

    for (int i = 0; i < n; i++)
        free(tg_metrics_render(m, "spiffe://mesh.local/ns/default/sa/web", len));
    return (now_s() - t0) / n * 1e6;
}

int main(void)
{
    static const char *names[] = {"web-in", "web-http", "api-out", "db-out"};
    static const char *dirs[] = {"inbound", "inbound", "outbound", "outbound"};
    double observe = 1e9, found = 1e9, other = 1e9, render = 1e9;
    struct tg_metrics m;
    char id[96];
    size_t len = 0;

    if (tg_metrics_init(&m, 2, 4, names, dirs) < 0)
        return 1;
    m.build = (struct tg_build_info){"bench", "n/a", false};
    for (int i = 0; i < TG_METRICS_IDS; i++) {
        snprintf(id, sizeof(id), "spiffe://mesh.local/ns/default/sa/service-%02d", i);
        tg_counter_add(&tg_metrics_slot(&m, 0, 0)->conns_by_id[tg_metrics_id_index(&m, id)], 1);
    }
    for (int r = 0; r < ROUNDS; r++) {
        double t;

        if ((t = time_observe(tg_metrics_slot(&m, 0, 0), 5000000)) < observe)
            observe = t;
        if ((t = time_index(&m, id, 1000000)) < found) /* the last one added */
            found = t;
        if ((t = time_index(&m, "spiffe://mesh.local/ns/default/sa/newcomer", 1000000)) < other)
            other = t;
        if ((t = time_render(&m, 50, &len)) < render)
            render = t;
    }
    printf("histogram observation: %.1f ns\n", observe);
    printf("identity label, 20th of 20: %.1f ns; table full, a newcomer (\"other\"): %.1f ns\n",
           found, other);
    printf("scrape, 2 workers x 4 listeners: %.1f us, %zu bytes\n", render, len);
    tg_metrics_cleanup(&m);
    return 0;
}

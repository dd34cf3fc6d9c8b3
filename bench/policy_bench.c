/* ns per tg_policy_decide with 10 rules and with 10,000 rules of the same mix (exact,
 * prefix and suffix principals, fingerprints, port-only rules; one DENY in seven), for 4096
 * callers drawn so that a rule of each kind names about one in ten. The compiled policy
 * files rules in hash tables (prefixes and suffixes by length) and port buckets, so the cost
 * grows with the number of distinct prefix/suffix lengths, not of rules: the target is at
 * most 2x. The two sizes run in alternate rounds and the best round of each counts, to damp
 * the noise of a shared machine. Prints one line per size and the ratio; exits 1 when the
 * ratio is over the target. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate/policy.h"

#define N_PEERS 4096
#define TARGET 2.0

struct set {
    struct tg_policy_rule *rules;
    char (*vals)[96];
    const char **ptrs;
    char (*names)[24]; /* "r" and up to 20 digits */
    int *ports;
};

/* xorshift: the same callers every run */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int make_rules(size_t n, struct set *s)
{
    s->rules = calloc(n, sizeof(*s->rules));
    s->vals = calloc(n, sizeof(*s->vals));
    s->ptrs = calloc(n, sizeof(*s->ptrs));
    s->names = calloc(n, sizeof(*s->names));
    s->ports = calloc(n, sizeof(*s->ports));
    if (!s->rules || !s->vals || !s->ptrs || !s->names || !s->ports)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct tg_policy_rule *r = &s->rules[i];

        snprintf(s->names[i], sizeof(s->names[i]), "r%zu", i);
        r->name = s->names[i];
        r->action = i % 7 == 6 ? TG_POLICY_DENY : TG_POLICY_ALLOW;
        s->ptrs[i] = s->vals[i];
        switch (i % 5) {
        case 0:
            snprintf(s->vals[i], sizeof(s->vals[i]), "spiffe://mesh.local/ns/n%zu/sa/s%zu", i, i);
            r->principals = (struct tg_policy_strs){&s->ptrs[i], 1};
            break;
        case 1:
            snprintf(s->vals[i], sizeof(s->vals[i]), "spiffe://mesh.local/ns/n%zu/*", i);
            r->principals = (struct tg_policy_strs){&s->ptrs[i], 1};
            break;
        case 2:
            snprintf(s->vals[i], sizeof(s->vals[i]), "*/sa/s%zu", i);
            r->principals = (struct tg_policy_strs){&s->ptrs[i], 1};
            break;
        case 3:
            snprintf(s->vals[i], sizeof(s->vals[i]), "%064zx", i * 2654435761u);
            r->fingerprints = (struct tg_policy_strs){&s->ptrs[i], 1};
            break;
        case 4:
            s->ports[i] = 1000 + (int)(i % 100);
            r->ports = (struct tg_policy_ports){&s->ports[i], 1};
            break;
        }
    }
    return 0;
}

static void free_rules(struct set *s)
{
    free(s->rules);
    free(s->vals);
    free(s->ptrs);
    free(s->names);
    free(s->ports);
}

/* Callers for n rules: IDs and fingerprints drawn from twice the rule range. */
static int make_peers(size_t n, struct tg_spiffe_id *ids, struct tg_policy_peer *peers,
                      uint16_t *ports)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    char err[TG_ERRLEN], id[96], fp[80];

    for (size_t j = 0; j < N_PEERS; j++) {
        size_t k = rnd(&seed) % (2 * n), k2 = rnd(&seed) % 3 ? k : rnd(&seed) % (2 * n);

        snprintf(id, sizeof(id), "spiffe://mesh.local/ns/n%zu/sa/s%zu", k, k2);
        snprintf(fp, sizeof(fp), "%064zx", (rnd(&seed) % (2 * n)) * 2654435761u);
        ports[j] = (uint16_t)(rnd(&seed) % 2 ? 1000 + rnd(&seed) % 100 : 8080);
        if (tg_spiffe_parse(id, &ids[j], err) != 0 ||
            tg_policy_peer_init(&peers[j], &ids[j], fp, "1f", err) != 0) {
            fprintf(stderr, "policy_bench: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

struct bench {
    size_t n;
    struct set rules;
    struct tg_policy *p;
    struct tg_spiffe_id *ids;
    struct tg_policy_peer *peers;
    uint16_t *ports;
    double best, allowed;
};

static void bench_init(struct bench *bn, size_t n)
{
    struct tg_policy_input in = {.workload_ns = "default"};
    char err[TG_ERRLEN];

    bn->n = n;
    bn->best = 1e30;
    bn->ids = calloc(N_PEERS, sizeof(*bn->ids));
    bn->peers = calloc(N_PEERS, sizeof(*bn->peers));
    bn->ports = calloc(N_PEERS, sizeof(*bn->ports));
    if (!bn->ids || !bn->peers || !bn->ports || make_rules(n, &bn->rules) != 0 ||
        make_peers(n, bn->ids, bn->peers, bn->ports) != 0) {
        fprintf(stderr, "policy_bench: out of memory\n");
        exit(2);
    }
    in.rules = bn->rules.rules;
    in.n_rules = n;
    if (tg_policy_compile(&in, &bn->p, err) != 0) {
        fprintf(stderr, "policy_bench: %s\n", err);
        exit(2);
    }
}

/* One round of about 0.1 s. */
static void bench_round(struct bench *bn)
{
    size_t iters = 0, allowed = 0;
    double t0 = now_ns(), t;

    do {
        for (size_t j = 0; j < N_PEERS; j++) {
            struct tg_policy_verdict v;

            tg_policy_decide(bn->p, &bn->peers[j], bn->ports[j], &v);
            allowed += v.allow;
        }
        iters += N_PEERS;
    } while ((t = now_ns()) - t0 < 1e8);
    if ((t - t0) / (double)iters < bn->best)
        bn->best = (t - t0) / (double)iters;
    bn->allowed = 100.0 * (double)allowed / (double)iters;
}

static void bench_cleanup(struct bench *bn)
{
    tg_policy_free(bn->p);
    free_rules(&bn->rules);
    free(bn->ids);
    free(bn->peers);
    free(bn->ports);
}

int main(void)
{
    static struct bench small, large;
    double ratio;

    bench_init(&small, 10);
    bench_init(&large, 10000);
    for (int round = 0; round < 10; round++) {
        bench_round(&small);
        bench_round(&large);
    }
    ratio = large.best / small.best;
    printf("policy_bench: %zu rules: %.1f ns/decision (%.0f%% allowed)\n", small.n, small.best,
           small.allowed);
    printf("policy_bench: %zu rules: %.1f ns/decision (%.0f%% allowed)\n", large.n, large.best,
           large.allowed);
    printf("policy_bench: ratio %.2fx (target <= %.1fx): %s\n", ratio, TARGET,
           ratio <= TARGET ? "ok" : "OVER");
    bench_cleanup(&small);
    bench_cleanup(&large);
    return ratio <= TARGET ? 0 : 1;
}

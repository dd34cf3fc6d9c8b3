/* Token buckets and the keyed limit table (see ratelimit.h for the threading choice).
 *
 * The table: keys in a chained hash table that doubles up to max_keys, each key separately
 * allocated so that handles stay put. Keys without connections are also on an idle list,
 * most recently idle first; a new key in a full table evicts the least recently idle one if
 * its buckets are full again (it is then indistinguishable from a new key), and is refused
 * otherwise: evicting a key still paying back a burst would hand it a fresh one. */
#include "tollgate/ratelimit.h"
#include "tollgate/list.h"
#include "tollgate/ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1000000000ULL

__extension__ typedef unsigned __int128 u128;

/* a * b / c (c > 0), rounded down or up, saturating at UINT64_MAX */
static uint64_t muldiv(uint64_t a, uint64_t b, uint64_t c, bool up)
{
    u128 p = (u128)a * b;
    u128 q = p / c + (up && p % c != 0);

    return q > UINT64_MAX ? UINT64_MAX : (uint64_t)q;
}

static uint64_t burst_of(const struct tg_bucket_limit *lim)
{
    if (lim->burst > 0)
        return lim->burst;
    return lim->rate > 0 ? lim->rate : 1;
}

void tg_bucket_init(struct tg_bucket *b, const struct tg_bucket_limit *lim, uint64_t now_ns)
{
    b->level = burst_of(lim);
    b->last_ns = now_ns;
}

/* Brings the level up to now. A clock that stands still or steps back earns nothing. */
static void refill(struct tg_bucket *b, const struct tg_bucket_limit *lim, uint64_t now)
{
    uint64_t burst = burst_of(lim), add;

    if (now <= b->last_ns)
        return;
    if (b->level >= burst) {
        b->level = burst;
        b->last_ns = now;
        return;
    }
    add = muldiv(now - b->last_ns, lim->rate, NS_PER_S, false);
    if (add >= burst - b->level) {
        b->level = burst;
        b->last_ns = now;
        return;
    }
    b->level += add;
    /* only the time those whole tokens took: the fraction of the next one is kept */
    b->last_ns += muldiv(add, NS_PER_S, lim->rate, false);
}

uint64_t tg_bucket_take(struct tg_bucket *b, const struct tg_bucket_limit *lim, uint64_t want,
                        uint64_t now_ns, uint64_t *delay_ns)
{
    uint64_t got, need, ready;

    if (delay_ns != NULL)
        *delay_ns = 0;
    if (lim->rate == 0)
        return want;
    refill(b, lim, now_ns);
    got = want < b->level ? want : b->level;
    b->level -= got;
    if (got == want || delay_ns == NULL)
        return got;
    /* the level is 0 now, and tokens accrue from last_ns on */
    need = want - got < burst_of(lim) ? want - got : burst_of(lim);
    ready = b->last_ns + muldiv(need, NS_PER_S, lim->rate, true);
    if (ready < b->last_ns)
        ready = UINT64_MAX;
    *delay_ns = ready > now_ns ? ready - now_ns : 1;
    return got;
}

uint64_t tg_bucket_level(const struct tg_bucket *b, const struct tg_bucket_limit *lim,
                         uint64_t now_ns)
{
    struct tg_bucket copy = *b;

    if (lim->rate == 0)
        return UINT64_MAX;
    refill(&copy, lim, now_ns);
    return copy.level;
}

void tg_bucket_relimit(struct tg_bucket *b, const struct tg_bucket_limit *old,
                       const struct tg_bucket_limit *next, uint64_t now_ns)
{
    if (old->rate == 0) {
        tg_bucket_init(b, next, now_ns);
        return;
    }
    refill(b, old, now_ns);
    if (b->level >= burst_of(next)) {
        b->level = burst_of(next);
        b->last_ns = now_ns > b->last_ns ? now_ns : b->last_ns;
    }
}

/* ---- the listener-wide bucket ---- */

int tg_ratelimit_global_init(struct tg_ratelimit_global *g, const struct tg_bucket_limit *lim,
                             uint64_t now_ns)
{
    if (pthread_mutex_init(&g->lock, NULL) != 0)
        return TG_ENOMEM;
    g->lim = *lim;
    tg_bucket_init(&g->b, lim, now_ns);
    return 0;
}

void tg_ratelimit_global_cleanup(struct tg_ratelimit_global *g)
{
    pthread_mutex_destroy(&g->lock);
}

uint64_t tg_ratelimit_global_take(struct tg_ratelimit_global *g, uint64_t want, uint64_t now_ns,
                                  uint64_t *delay_ns)
{
    uint64_t got;

    pthread_mutex_lock(&g->lock);
    got = tg_bucket_take(&g->b, &g->lim, want, now_ns, delay_ns);
    pthread_mutex_unlock(&g->lock);
    return got;
}

void tg_ratelimit_global_set_limit(struct tg_ratelimit_global *g, const struct tg_bucket_limit *lim,
                                   uint64_t now_ns)
{
    pthread_mutex_lock(&g->lock);
    tg_bucket_relimit(&g->b, &g->lim, lim, now_ns);
    g->lim = *lim;
    pthread_mutex_unlock(&g->lock);
}

/* ---- the keyed table ---- */

struct tg_ratelimit_key {
    struct tg_ratelimit_key *chain;                 /* next in the hash bucket */
    struct tg_ratelimit_key *idle_prev, *idle_next; /* idle list, while active == 0 */
    uint64_t hash;
    uint32_t active;
    struct tg_bucket conns, bytes, requests;
    size_t len;
    char key[];
};

struct tg_ratelimit {
    atomic_uint refs;
    pthread_mutex_t lock;
    struct tg_ratelimit_limits lim;
    struct tg_ratelimit_key **buckets;
    size_t mask;  /* buckets - 1 */
    size_t count; /* keys */
    size_t max_keys;
    struct tg_ratelimit_key *idle_head, *idle_tail; /* head: most recently idle */
};

/* FNV-1a: keys are identities from certificates our CA signed, not attacker's choice. */
static uint64_t hash_key(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 32);
}

static void idle_unlink(struct tg_ratelimit *t, struct tg_ratelimit_key *k)
{
    TG_DLIST_UNLINK(&t->idle_head, &t->idle_tail, k, idle_prev, idle_next);
    k->idle_prev = k->idle_next = NULL;
}

static void idle_push(struct tg_ratelimit *t, struct tg_ratelimit_key *k)
{
    k->idle_prev = NULL;
    k->idle_next = t->idle_head;
    if (t->idle_head != NULL)
        t->idle_head->idle_prev = k;
    else
        t->idle_tail = k;
    t->idle_head = k;
}

static bool on_idle_list(const struct tg_ratelimit *t, const struct tg_ratelimit_key *k)
{
    return k->idle_prev != NULL || t->idle_head == k;
}

/* Forgetting k loses nothing: no connection, and both buckets full at now. */
static bool evictable(const struct tg_ratelimit *t, const struct tg_ratelimit_key *k, uint64_t now)
{
    const struct tg_ratelimit_limits *l = &t->lim;

    return k->active == 0 &&
           (l->conns.rate == 0 ||
            tg_bucket_level(&k->conns, &l->conns, now) >= burst_of(&l->conns)) &&
           (l->bytes.rate == 0 ||
            tg_bucket_level(&k->bytes, &l->bytes, now) >= burst_of(&l->bytes)) &&
           (l->requests.rate == 0 ||
            tg_bucket_level(&k->requests, &l->requests, now) >= burst_of(&l->requests));
}

static void remove_key(struct tg_ratelimit *t, struct tg_ratelimit_key *k)
{
    struct tg_ratelimit_key **pp = &t->buckets[k->hash & t->mask];

    while (*pp != k)
        pp = &(*pp)->chain;
    *pp = k->chain;
    if (on_idle_list(t, k))
        idle_unlink(t, k);
    t->count--;
    free(k);
}

static struct tg_ratelimit_key *find(const struct tg_ratelimit *t, const char *key, size_t len,
                                     uint64_t h)
{
    struct tg_ratelimit_key *k = t->buckets[h & t->mask];

    while (k != NULL && (k->hash != h || k->len != len || memcmp(k->key, key, len) != 0))
        k = k->chain;
    return k;
}

/* Doubles the bucket array while there are more keys than buckets; keys do not move. */
static void maybe_grow(struct tg_ratelimit *t)
{
    size_t n = (t->mask + 1) * 2;
    struct tg_ratelimit_key **nb;

    if (t->count <= t->mask + 1 || n > t->max_keys * 2)
        return;
    if ((nb = calloc(n, sizeof(*nb))) == NULL)
        return; /* chains just grow longer */
    for (size_t i = 0; i <= t->mask; i++) {
        while (t->buckets[i] != NULL) {
            struct tg_ratelimit_key *k = t->buckets[i];

            t->buckets[i] = k->chain;
            k->chain = nb[k->hash & (n - 1)];
            nb[k->hash & (n - 1)] = k;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->mask = n - 1;
}

static int insert(struct tg_ratelimit *t, const char *key, size_t len, uint64_t h, uint64_t now,
                  struct tg_ratelimit_key **out)
{
    struct tg_ratelimit_key *k;

    if (t->count >= t->max_keys) {
        if (t->idle_tail == NULL || !evictable(t, t->idle_tail, now))
            return TG_ETOOBIG;
        remove_key(t, t->idle_tail);
    }
    if ((k = calloc(1, sizeof(*k) + len)) == NULL)
        return TG_ENOMEM;
    memcpy(k->key, key, len);
    k->len = len;
    k->hash = h;
    tg_bucket_init(&k->conns, &t->lim.conns, now);
    tg_bucket_init(&k->bytes, &t->lim.bytes, now);
    tg_bucket_init(&k->requests, &t->lim.requests, now);
    k->chain = t->buckets[h & t->mask];
    t->buckets[h & t->mask] = k;
    t->count++;
    idle_push(t, k);
    maybe_grow(t);
    *out = k;
    return 0;
}

int tg_ratelimit_new(const struct tg_ratelimit_limits *lim, size_t max_keys,
                     struct tg_ratelimit **out)
{
    struct tg_ratelimit *t;
    size_t n = 16;

    if (max_keys == 0 || max_keys > SIZE_MAX / 4)
        return TG_EINVAL;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return TG_ENOMEM;
    if ((t->buckets = calloc(n, sizeof(*t->buckets))) == NULL ||
        pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->buckets);
        free(t);
        return TG_ENOMEM;
    }
    atomic_init(&t->refs, 1);
    t->mask = n - 1;
    t->max_keys = max_keys;
    t->lim = *lim;
    *out = t;
    return 0;
}

static void ratelimit_free(struct tg_ratelimit *t)
{
    for (size_t i = 0; i <= t->mask; i++) {
        while (t->buckets[i] != NULL) {
            struct tg_ratelimit_key *k = t->buckets[i];

            t->buckets[i] = k->chain;
            free(k);
        }
    }
    pthread_mutex_destroy(&t->lock);
    free(t->buckets);
    free(t);
}

TG_REF_DEFINE(struct tg_ratelimit, tg_ratelimit_ref, tg_ratelimit_unref, refs, ratelimit_free)

void tg_ratelimit_set_limits(struct tg_ratelimit *t, const struct tg_ratelimit_limits *lim,
                             uint64_t now_ns)
{
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i <= t->mask; i++) {
        for (struct tg_ratelimit_key *k = t->buckets[i]; k != NULL; k = k->chain) {
            tg_bucket_relimit(&k->conns, &t->lim.conns, &lim->conns, now_ns);
            tg_bucket_relimit(&k->bytes, &t->lim.bytes, &lim->bytes, now_ns);
            tg_bucket_relimit(&k->requests, &t->lim.requests, &lim->requests, now_ns);
        }
    }
    t->lim = *lim;
    pthread_mutex_unlock(&t->lock);
}

int tg_ratelimit_conn_acquire(struct tg_ratelimit *t, const char *key, size_t len, uint64_t now_ns,
                              struct tg_ratelimit_key **handle, uint64_t *retry_ns)
{
    uint64_t h = hash_key(key, len), retry = 0;
    struct tg_ratelimit_key *k;
    int rc = TG_RATELIMIT_ADMIT;

    if (len == 0 || len > TG_RATELIMIT_KEY_MAX)
        return TG_EINVAL;
    pthread_mutex_lock(&t->lock);
    if ((k = find(t, key, len, h)) == NULL && (rc = insert(t, key, len, h, now_ns, &k)) < 0)
        goto out;
    if (t->lim.max_conns > 0 && k->active >= t->lim.max_conns) {
        rc = TG_RATELIMIT_OVER_CONCURRENT;
    } else if (tg_bucket_take(&k->conns, &t->lim.conns, 1, now_ns, &retry) == 0) {
        rc = TG_RATELIMIT_OVER_RATE;
    } else {
        if (k->active++ == 0)
            idle_unlink(t, k);
        *handle = k;
    }
    if (k->active == 0) { /* refused and still idle: it was just used */
        idle_unlink(t, k);
        idle_push(t, k);
    }
out:
    pthread_mutex_unlock(&t->lock);
    if (retry_ns != NULL)
        *retry_ns = rc == TG_RATELIMIT_OVER_RATE ? retry : 0;
    return rc;
}

void tg_ratelimit_conn_release(struct tg_ratelimit *t, struct tg_ratelimit_key *k, uint64_t now_ns)
{
    (void)now_ns; /* the buckets earn by their own clock; kept for symmetry and tracing */
    pthread_mutex_lock(&t->lock);
    if (k->active > 0 && --k->active == 0)
        idle_push(t, k);
    pthread_mutex_unlock(&t->lock);
}

uint64_t tg_ratelimit_bytes_take(struct tg_ratelimit *t, struct tg_ratelimit_key *k, uint64_t want,
                                 uint64_t now_ns, uint64_t *delay_ns)
{
    uint64_t got;

    pthread_mutex_lock(&t->lock);
    got = tg_bucket_take(&k->bytes, &t->lim.bytes, want, now_ns, delay_ns);
    pthread_mutex_unlock(&t->lock);
    return got;
}

bool tg_ratelimit_request_take(struct tg_ratelimit *t, struct tg_ratelimit_key *k, uint64_t now_ns,
                               uint64_t *retry_ns)
{
    uint64_t got;

    pthread_mutex_lock(&t->lock);
    got = tg_bucket_take(&k->requests, &t->lim.requests, 1, now_ns, retry_ns);
    pthread_mutex_unlock(&t->lock);
    return got == 1;
}

size_t tg_ratelimit_sweep(struct tg_ratelimit *t, uint64_t now_ns)
{
    size_t n = 0;

    pthread_mutex_lock(&t->lock);
    while (t->idle_tail != NULL && evictable(t, t->idle_tail, now_ns)) {
        remove_key(t, t->idle_tail);
        n++;
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

struct tg_ratelimit_limits tg_ratelimit_limits_of(struct tg_ratelimit *t)
{
    struct tg_ratelimit_limits l;

    pthread_mutex_lock(&t->lock);
    l = t->lim;
    pthread_mutex_unlock(&t->lock);
    return l;
}

size_t tg_ratelimit_count(struct tg_ratelimit *t)
{
    size_t n;

    pthread_mutex_lock(&t->lock);
    n = t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}

bool tg_ratelimit_stat(struct tg_ratelimit *t, const char *key, size_t len, uint64_t now_ns,
                       struct tg_ratelimit_stat *st)
{
    struct tg_ratelimit_key *k;

    pthread_mutex_lock(&t->lock);
    if ((k = find(t, key, len, hash_key(key, len))) != NULL) {
        st->active = k->active;
        st->conn_tokens = tg_bucket_level(&k->conns, &t->lim.conns, now_ns);
        st->byte_tokens = tg_bucket_level(&k->bytes, &t->lim.bytes, now_ns);
    }
    pthread_mutex_unlock(&t->lock);
    return k != NULL;
}

/* ---- limit sets ---- */

static bool limits_nothing(const struct tg_ratelimit_limits *l)
{
    return l->conns.rate == 0 && l->max_conns == 0 && l->bytes.rate == 0 && l->requests.rate == 0;
}

int tg_limit_match_check(const char *match, char *why)
{
    size_t n = match != NULL ? strlen(match) : 0;
    const char *star = n > 0 ? strchr(match, '*') : NULL;

    if (n == 0)
        return tg_err_set(why, TG_EINVAL,
                          "empty match (want \"*\", \"prefix*\", \"*suffix\" or an ID)");
    if (n > TG_RATELIMIT_KEY_MAX)
        return tg_err_set(why, TG_EINVAL, "match of %zu bytes (at most %d)", n,
                          TG_RATELIMIT_KEY_MAX);
    if (star != NULL && n > 1 && star != match && star != match + n - 1)
        return tg_err_set(why, TG_EINVAL, "match \"%.80s\": '*' only at the start or the end",
                          match);
    if (star != NULL && n > 1 && strchr(star + 1, '*') != NULL)
        return tg_err_set(why, TG_EINVAL, "match \"%.80s\": one '*' at most", match);
    return 0;
}

static bool matches(const char *p, const char *id)
{
    size_t n = strlen(p), m = strlen(id);

    if (n == 1 && p[0] == '*')
        return true;
    if (n > 0 && p[n - 1] == '*')
        return strncmp(id, p, n - 1) == 0;
    if (p[0] == '*')
        return m >= n - 1 && memcmp(id + m - (n - 1), p + 1, n - 1) == 0;
    return strcmp(id, p) == 0;
}

/* prev's table for rule r: the first limiter with the same match and key, not yet taken. */
static struct tg_ratelimit *reuse(const struct tg_limit_set *prev, const struct tg_limit_rule *r,
                                  const struct tg_limit_set *s)
{
    for (size_t i = 0; prev != NULL && i < prev->n; i++) {
        const struct tg_limiter *p = &prev->v[i];
        bool taken = false;

        if (p->table == NULL || p->by_fingerprint != r->by_fingerprint ||
            strcmp(p->match, r->match) != 0)
            continue;
        for (size_t j = 0; j < s->n && !taken; j++)
            taken = s->v[j].table == p->table;
        if (!taken)
            return p->table;
    }
    return NULL;
}

int tg_limit_set_new(const struct tg_limit_rule *rules, size_t n, const struct tg_limit_set *prev,
                     size_t max_keys, struct tg_limit_set **out)
{
    struct tg_limit_set *s = calloc(1, sizeof(*s) + (n + 1) * sizeof(s->v[0]));
    char why[TG_ERRLEN];
    int rc = TG_ENOMEM;

    if (s == NULL)
        return rc;
    atomic_init(&s->refs, 1);
    for (size_t i = 0; i < n; i++) {
        const struct tg_limit_rule *r = &rules[i];
        struct tg_limiter *l = &s->v[i];
        struct tg_ratelimit *t;

        if ((rc = tg_limit_match_check(r->match, why)) < 0)
            goto fail;
        if ((l->match = strdup(r->match)) == NULL) {
            rc = TG_ENOMEM;
            goto fail;
        }
        l->by_fingerprint = r->by_fingerprint;
        l->lim = r->lim;
        s->n++;
        if (limits_nothing(&r->lim))
            continue;
        if ((t = reuse(prev, r, s)) != NULL)
            l->table = tg_ratelimit_ref(t);
        else if ((rc = tg_ratelimit_new(&r->lim, max_keys, &l->table)) < 0)
            goto fail;
    }
    *out = s;
    return 0;
fail:
    tg_limit_set_unref(s);
    return rc;
}

void tg_limit_set_apply(struct tg_limit_set *s, uint64_t now_ns)
{
    for (size_t i = 0; s != NULL && i < s->n; i++)
        if (s->v[i].table != NULL)
            tg_ratelimit_set_limits(s->v[i].table, &s->v[i].lim, now_ns);
}

const struct tg_limiter *tg_limit_set_find(const struct tg_limit_set *s, const char *id)
{
    for (size_t i = 0; s != NULL && i < s->n; i++)
        if (matches(s->v[i].match, id))
            return &s->v[i];
    return NULL;
}

static void limit_set_free(struct tg_limit_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].match);
        tg_ratelimit_unref(s->v[i].table);
    }
    free(s);
}

TG_REF_DEFINE(struct tg_limit_set, tg_limit_set_ref, tg_limit_set_unref, refs, limit_set_free)

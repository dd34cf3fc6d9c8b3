/* Authorization rules compiled so that a decision scans no rule list (see policy.h).
 *
 * Every kept rule becomes a struct crule holding its fields as sorted sets, for checking a
 * candidate. Each rule is filed under the values of ONE positive field, its key field, in
 * that field's index: exact values, "x*" prefixes and "*x" suffixes (stored reversed) each
 * in a hash table, ports in sorted port buckets. A rule matches only if its key field does,
 * so looking the peer's values up in every index finds every rule that can match; each
 * candidate is then checked in full. Rules with no usable key field (only not_ fields or
 * "*") go to the scan list. Rule lists are kept in input order, so the first match of each
 * action is the one with the lowest index, exactly what an in-order scan would report.
 *
 * Prefix search: the prefix table also lists the distinct lengths of its keys; the probe's
 * leading bytes of each of those lengths are looked up, with one pass of hashing shared by
 * all lengths (the hash consumes 8-byte words, so the state after each whole word serves
 * every longer prefix). Suffixes are the same on the probe read backwards. The cost is one
 * lookup per distinct length, whatever the number of rules; distinct lengths are few in
 * practice (SPIFFE IDs of one shape differ in a name or two).
 *
 * What keeps 10,000 rules near the cost of 10 (bench/policy_bench.c) is memory traffic:
 * each table has a small Bloom filter that turns most misses away, the probes of one
 * decision are prefetched together so that their cache misses overlap, and rule list
 * entries carry the rule's action and whether it needs checking at all, so that a typical
 * one-field rule is decided without loading it. */
#include "tollgate/policy.h"

#include "tollgate/http.h"

#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { F_PRINCIPAL, F_NAMESPACE, F_TRUST_DOMAIN, F_FINGERPRINT, F_SERIAL, NFIELDS };
enum { KEY_PORT = NFIELDS, KEY_NONE }; /* key fields besides the string fields */
enum { K_EXACT, K_PREFIX, K_SUFFIX, NKINDS };

static const char *const field_names[NFIELDS] = {
    "principals", "namespaces", "trust_domains", "fingerprints", "serials",
};

#define NO_RULE UINT32_MAX
#define SCHEME "spiffe://"
#define SCHEME_LEN (sizeof(SCHEME) - 1)
#define CHUNK_SIZE (64 * 1024)

struct sv { /* a string view; values are never longer than TG_SPIFFE_MAX */
    const char *s;
    uint32_t len;
};

struct strset { /* one match field of one rule */
    struct sv *exact;
    struct sv *prefix; /* without the '*' */
    struct sv *suffix; /* without the '*', not reversed */
    uint32_t n_exact, n_prefix, n_suffix;
    bool any;  /* "*" */
    bool used; /* the field has values */
};

struct portset { /* sorted, no duplicates */
    uint16_t *v;
    uint32_t n;
};

/* A rule's HTTP conditions (each list empty when not used). */
struct httpconds {
    struct sv *methods, *paths, *hosts;
    uint32_t n_methods, n_paths, n_hosts;
};

struct crule {
    const struct httpconds *http; /* NULL: none */
    const char *name;
    const char *reason; /* "denied by rule X" or "allowed by rule X" */
    enum tg_policy_action action;
    uint16_t pos_mask, neg_mask; /* bit f: pos[f] / neg[f] is used */
    struct portset ports, not_ports;
    struct strset *pos, *neg; /* NFIELDS each; out of line: a candidate whose only field is
                               * the key it was found by is decided from this cache line */
};

/* A rule list entry: the rule's id and two flags, so that most candidates are decided
 * without loading the rule. */
#define E_ID 0x3fffffffu
#define E_DENY 0x80000000u   /* the rule denies */
#define E_UNCOND 0x40000000u /* the rule has no field besides the key it is filed under */

struct rlist { /* entries p->ids[off .. off + n), ids ascending; first == p->ids[off] */
    uint32_t first, off, n;
};

struct slot {
    const char *s; /* NULL: free */
    uint32_t len;
    uint32_t hash;
    struct rlist r;
};

struct hmap { /* open addressing, linear probing, at most a quarter full */
    struct slot *slots;
    uint32_t mask;
    uint32_t filter_mask; /* words of filter - 1 */
    uint64_t *filter;     /* a blocked Bloom filter of the keys, two bits in one word: a miss
                           * costs a test in a small array instead of a slot's cache line */
};

struct keyed { /* a distinct key with its rules, while building */
    struct sv key;
    struct rlist r;
};

struct lenmap { /* keys of several lengths: the table and its lengths, ascending */
    struct hmap map;
    uint32_t *lens;
    uint32_t n_lens;
};

struct fidx {
    struct hmap exact;
    struct lenmap prefix, suffix; /* suffix keys are stored reversed */
};

struct port_ent {
    uint16_t port;
    struct rlist r;
};

struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct arena { /* zeroed bump allocations, all freed at once */
    struct chunk *head;
};

struct tg_policy {
    struct arena arena;
    struct crule *rules;
    uint32_t n_rules;
    uint32_t *ids; /* malloc'd; the entries of all rule lists */
    struct fidx idx[NFIELDS];
    struct port_ent *ports;
    uint32_t n_ports;
    struct rlist scan;
    bool default_deny;
    struct hmap revoked_serials, revoked_fingerprints;
    uint8_t allow_port[65536 / 8]; /* bit set: some ALLOW rule applies to that port */
};

/* ---- arena ---- */

static void *arena_alloc(struct arena *a, size_t n, size_t size)
{
    size_t al = alignof(max_align_t);
    size_t bytes;
    void *ptr;

    if (size != 0 && n > SIZE_MAX / 2 / size)
        return NULL;
    bytes = (n * size + al - 1) / al * al;
    if (bytes == 0)
        bytes = al;
    if (a->head == NULL || a->head->cap - a->head->used < bytes) {
        size_t cap = bytes > CHUNK_SIZE ? bytes : CHUNK_SIZE;
        struct chunk *c = calloc(1, sizeof(*c) + cap);

        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    ptr = (unsigned char *)a->head->data + a->head->used;
    a->head->used += bytes;
    return ptr;
}

static char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1, 1);

    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

static void arena_cleanup(struct arena *a)
{
    while (a->head != NULL) {
        struct chunk *c = a->head;

        a->head = c->next;
        free(c);
    }
}

/* ---- strings, hashing ---- */

static int sv_cmp(struct sv a, struct sv b)
{
    int c = memcmp(a.s, b.s, a.len < b.len ? a.len : b.len);

    if (c != 0)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int sv_cmp_q(const void *a, const void *b)
{
    return sv_cmp(*(const struct sv *)a, *(const struct sv *)b);
}

static bool starts_with(struct sv s, struct sv p)
{
    return s.len >= p.len && memcmp(s.s, p.s, p.len) == 0;
}

static bool ends_with(struct sv s, struct sv p)
{
    return s.len >= p.len && memcmp(s.s + s.len - p.len, p.s, p.len) == 0;
}

/* The hash: 8-byte words (the last one partial, zero-padded, possibly empty) folded in
 * with a multiply, then a murmur3 finaliser with the length. Words are little-endian
 * numbers whatever the host, so that word k of a key read backwards equals word k of the
 * reversed key stored at build time. Keys come from the configuration, not from callers, so
 * an unseeded hash cannot be flooded by them. */
#define HASH_SEED 0x243f6a8885a308d3ULL

static uint64_t hash_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

static uint64_t hash_fin(uint64_t h, uint32_t len)
{
    h ^= len;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

/* n (<= 8) bytes of k from off, forward or (rev) counting from the end backwards, as a
 * little-endian number: byte i of the run is bits 8i..8i+7. Where 8 bytes are there to
 * load, one load and a mask; only near the end of k byte by byte. */
static uint64_t hash_word(struct sv k, uint32_t off, uint32_t n, bool rev)
{
    uint64_t w = 0;

    if (off + 8 <= k.len) {
        memcpy(&w, k.s + (rev ? k.len - off - 8 : off), 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (rev)
            w = __builtin_bswap64(w);
#else
        if (!rev)
            w = __builtin_bswap64(w);
#endif
        return n == 8 ? w : w & ((1ULL << (8 * n)) - 1);
    }
    for (uint32_t i = 0; i < n; i++)
        w |= (uint64_t)(unsigned char)k.s[rev ? k.len - 1 - off - i : off + i] << (8 * i);
    return w;
}

static uint64_t hash_key(struct sv k)
{
    uint64_t h = HASH_SEED;
    uint32_t off = 0;

    for (; off + 8 <= k.len; off += 8)
        h = hash_mix(h, hash_word(k, off, 8, false));
    return hash_fin(hash_mix(h, hash_word(k, off, k.len - off, false)), k.len);
}

/* From slot i on, the first slot that is free or holds a key of this hash and length. */
static const struct slot *slot_scan(const struct hmap *m, uint64_t h, uint32_t len, uint32_t i)
{
    for (;; i = (i + 1) & m->mask) {
        const struct slot *s = &m->slots[i];

        if (s->s == NULL || (s->hash == (uint32_t)(h >> 32) && s->len == len))
            return s;
    }
}

/* s's key equals the first s->len bytes of k (rev: of k read backwards). */
static bool key_eq(const struct slot *s, struct sv k, bool rev)
{
    uint32_t j = 0;

    if (!rev)
        return memcmp(s->s, k.s, s->len) == 0;
    while (j < s->len && s->s[j] == k.s[k.len - 1 - j])
        j++;
    return j == s->len;
}

/* Continues the search from a slot slot_scan found; NULL when the key is absent. */
static const struct slot *slot_confirm(const struct hmap *m, uint64_t h, const struct slot *s,
                                       struct sv k, bool rev)
{
    while (s->s != NULL && !key_eq(s, k, rev))
        s = slot_scan(m, h, s->len, ((uint32_t)(s - m->slots) + 1) & m->mask);
    return s->s != NULL ? s : NULL;
}

static const struct slot *hmap_find(const struct hmap *m, uint64_t h, struct sv k, uint32_t len,
                                    bool rev)
{
    return slot_confirm(m, h, slot_scan(m, h, len, (uint32_t)h & m->mask), k, rev);
}

/* Word (h >> 32) & filter_mask, bits h >> 52 and h >> 58 (mod 64): the slot uses the low
 * bits. */
static uint64_t filter_bits(uint64_t h)
{
    return (1ULL << ((h >> 52) & 63)) | (1ULL << ((h >> 58) & 63));
}

static bool filter_has(const struct hmap *m, uint64_t h)
{
    uint64_t bits = filter_bits(h);

    return (m->filter[(h >> 32) & m->filter_mask] & bits) == bits;
}

static const struct slot *hmap_get(const struct hmap *m, struct sv k)
{
    uint64_t h;

    if (m->slots == NULL)
        return NULL;
    h = hash_key(k);
    if (!filter_has(m, h))
        return NULL;
    return hmap_find(m, h, k, k.len, false);
}

/* ---- matching a single rule ---- */

static bool set_has(const struct strset *set, struct sv v)
{
    if (v.s == NULL)
        return false; /* an absent attribute matches no value, "*" included */
    if (set->any)
        return true;
    if (set->n_exact > 0 &&
        bsearch(&v, set->exact, set->n_exact, sizeof(struct sv), sv_cmp_q) != NULL)
        return true;
    for (uint32_t i = 0; i < set->n_prefix; i++) {
        if (starts_with(v, set->prefix[i]))
            return true;
    }
    for (uint32_t i = 0; i < set->n_suffix; i++) {
        if (ends_with(v, set->suffix[i]))
            return true;
    }
    return false;
}

static bool ports_has(const struct portset *ps, uint16_t port)
{
    uint32_t lo = 0, hi = ps->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (ps->v[mid] == port)
            return true;
        if (ps->v[mid] < port)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Every non-empty field matches; skip is the key field the rule was found through, known
 * to match already. */
static bool http_matches(const struct httpconds *h, const struct tg_policy_request *req)
{
    bool ok = h->n_methods == 0;

    if (req == NULL)
        return false; /* a connection, not a request: HTTP conditions cannot hold */
    for (uint32_t i = 0; !ok && i < h->n_methods; i++)
        ok = h->methods[i].len == req->method_len &&
             memcmp(h->methods[i].s, req->method, req->method_len) == 0;
    if (!ok)
        return false;
    if (h->n_paths > 0) {
        const char *q = memchr(req->target, '?', req->target_len);
        size_t n = q != NULL ? (size_t)(q - req->target) : req->target_len;

        ok = false;
        for (uint32_t i = 0; !ok && i < h->n_paths; i++) {
            struct sv p = h->paths[i];

            if (p.len > 0 && p.s[p.len - 1] == '*')
                ok = n >= p.len - 1 && memcmp(req->target, p.s, p.len - 1) == 0;
            else
                ok = n == p.len && memcmp(req->target, p.s, n) == 0;
        }
        if (!ok)
            return false;
    }
    if (h->n_hosts > 0) {
        const char *hs = req->host;
        size_t n = req->host_len;

        if (hs == NULL)
            return false;
        /* without the port: the last ':' after any IPv6 literal's ']' */
        for (size_t i = n; i > 0; i--) {
            if (hs[i - 1] == ']')
                break;
            if (hs[i - 1] == ':') {
                n = i - 1;
                break;
            }
        }
        ok = false;
        for (uint32_t i = 0; !ok && i < h->n_hosts; i++)
            ok = h->hosts[i].len == n && strncasecmp(h->hosts[i].s, hs, n) == 0;
    }
    return ok;
}

static bool rule_matches(const struct crule *r, const struct sv *val, uint16_t port, int skip,
                         const struct tg_policy_request *req)
{
    if (r->http != NULL && !http_matches(r->http, req))
        return false;
    if (r->ports.n > 0 && skip != KEY_PORT && !ports_has(&r->ports, port))
        return false;
    if (r->not_ports.n > 0 && ports_has(&r->not_ports, port))
        return false;
    for (unsigned m = r->pos_mask & ~(1u << skip); m != 0; m &= m - 1) {
        int f = __builtin_ctz(m);

        if (!set_has(&r->pos[f], val[f]))
            return false;
    }
    for (unsigned m = r->neg_mask; m != 0; m &= m - 1) {
        int f = __builtin_ctz(m);

        if (set_has(&r->neg[f], val[f]))
            return false;
    }
    return true;
}

/* ---- decision ---- */

struct best {
    uint32_t deny, allow; /* lowest matching rule id of each action, NO_RULE: none yet */
};

static bool allow_applies(const struct tg_policy *p, uint16_t port)
{
    return (p->allow_port[port >> 3] >> (port & 7)) & 1;
}

/* Checks the candidates of l. Only a DENY below the best DENY can change the verdict, and
 * an ALLOW only while no DENY matched; ids ascend, so the rest of l cannot matter once
 * neither holds. */
static void consider(const struct tg_policy *p, struct rlist l, const struct sv *val, uint16_t port,
                     int skip, struct best *b, const struct tg_policy_request *req)
{
    for (uint32_t i = 0; i < l.n; i++) {
        uint32_t e = i == 0 ? l.first : p->ids[l.off + i];
        uint32_t id = e & E_ID;
        bool deny = e & E_DENY;

        if (id >= b->deny && (b->deny != NO_RULE || id >= b->allow))
            break;
        if (deny ? id >= b->deny : (b->deny != NO_RULE || id >= b->allow))
            continue;
        if ((e & E_UNCOND) || rule_matches(&p->rules[id], val, port, skip, req)) {
            if (deny)
                b->deny = id;
            else
                b->allow = id;
        }
    }
}

/* Hash probes are queued and their slots prefetched, so that the cache misses of one
 * decision's lookups (unrelated lines of large tables) overlap instead of adding up. */
#define BATCH 16

struct probe {
    const struct hmap *m;
    uint64_t h;
    uint32_t len;
    int f; /* the field looked up: the key field of the rules it finds */
    bool rev;
};

struct batch {
    const struct tg_policy *p;
    const struct sv *val;
    uint16_t port;
    const struct tg_policy_request *req;
    unsigned n;
    struct best b;
    struct probe v[BATCH];
};

/* Two passes, so that the misses overlap again: the first finds each probe's slot by hash
 * and starts loading its key and first rule, the second compares keys and checks rules. */
static void flush(struct batch *bt)
{
    const struct slot *hit[BATCH];

    for (unsigned i = 0; i < bt->n; i++) {
        const struct probe *q = &bt->v[i];

        hit[i] = slot_scan(q->m, q->h, q->len, (uint32_t)q->h & q->m->mask);
        if (hit[i]->s != NULL) {
            __builtin_prefetch(hit[i]->s);
            __builtin_prefetch(&bt->p->rules[hit[i]->r.first & E_ID]);
        }
    }
    for (unsigned i = 0; i < bt->n; i++) {
        const struct probe *q = &bt->v[i];
        const struct slot *s = slot_confirm(q->m, q->h, hit[i], bt->val[q->f], q->rev);

        if (s != NULL)
            consider(bt->p, s->r, bt->val, bt->port, q->f, &bt->b, bt->req);
    }
    bt->n = 0;
}

static void queue(struct batch *bt, const struct hmap *m, uint64_t h, uint32_t len, int f, bool rev)
{
    if (!filter_has(m, h))
        return;
    __builtin_prefetch(&m->slots[(uint32_t)h & m->mask]);
    bt->v[bt->n++] = (struct probe){m, h, len, f, rev};
    if (bt->n == BATCH)
        flush(bt);
}

/* Queues k's leading bytes (rev: trailing bytes, reversed) of every length lm holds, then,
 * with exact, k itself. The hash state after each whole word serves all the lengths, which
 * ascend. */
static void lookup(struct batch *bt, const struct hmap *exact, const struct lenmap *lm, int f,
                   bool rev)
{
    struct sv k = bt->val[f];
    uint64_t h = HASH_SEED;
    uint32_t done = 0, i = 0;

    if (exact != NULL && exact->slots == NULL)
        exact = NULL;
    for (;;) {
        const struct hmap *m;
        uint32_t len;

        if (i < lm->n_lens && lm->lens[i] <= k.len) {
            m = &lm->map;
            len = lm->lens[i++];
        } else if (exact != NULL) {
            m = exact;
            len = k.len;
            exact = NULL;
        } else {
            return;
        }
        for (; done + 8 <= len; done += 8)
            h = hash_mix(h, hash_word(k, done, 8, rev));
        queue(bt, m, hash_fin(hash_mix(h, hash_word(k, done, len - done, rev)), len), len, f, rev);
    }
}

static void peer_values(const struct tg_policy_peer *peer, struct sv *val)
{
    memset(val, 0, NFIELDS * sizeof(*val));
    if (peer->id != NULL) {
        val[F_PRINCIPAL] = (struct sv){peer->id, (uint32_t)peer->id_len};
        val[F_TRUST_DOMAIN] = (struct sv){peer->td, (uint32_t)peer->td_len};
    }
    if (peer->id != NULL && peer->ns != NULL)
        val[F_NAMESPACE] = (struct sv){peer->ns, (uint32_t)peer->ns_len};
    if (peer->sha256[0] != '\0')
        val[F_FINGERPRINT] = (struct sv){peer->sha256, (uint32_t)strlen(peer->sha256)};
    if (peer->serial[0] != '\0')
        val[F_SERIAL] = (struct sv){peer->serial, (uint32_t)strlen(peer->serial)};
}

static void verdict(struct tg_policy_verdict *v, bool allow, enum tg_policy_outcome o,
                    const struct crule *r, const char *reason)
{
    v->allow = allow;
    v->outcome = o;
    v->rule = r != NULL ? r->name : NULL;
    v->reason = r != NULL ? r->reason : reason;
}

void tg_policy_decide(const struct tg_policy *p, const struct tg_policy_peer *peer, uint16_t port,
                      struct tg_policy_verdict *v)
{
    tg_policy_decide_request(p, peer, port, NULL, v);
}

void tg_policy_decide_request(const struct tg_policy *p, const struct tg_policy_peer *peer,
                              uint16_t port, const struct tg_policy_request *req,
                              struct tg_policy_verdict *v)
{
    struct sv val[NFIELDS];
    bool applies = allow_applies(p, port);
    struct batch bt; /* not zeroed: its probes are written as they are queued */
    struct best *b = &bt.b;

    bt.p = p;
    bt.val = val;
    bt.port = port;
    bt.req = req;
    bt.n = 0;
    /* with no ALLOW rule for this port, pretend rule 0 matched: no ALLOW is worth checking */
    bt.b = (struct best){NO_RULE, applies ? NO_RULE : 0};
    peer_values(peer, val);
    if ((val[F_SERIAL].s != NULL && hmap_get(&p->revoked_serials, val[F_SERIAL]) != NULL) ||
        (val[F_FINGERPRINT].s != NULL &&
         hmap_get(&p->revoked_fingerprints, val[F_FINGERPRINT]) != NULL)) {
        verdict(v, false, TG_POLICY_REVOKED, NULL, "revoked");
        return;
    }
    for (int f = 0; f < NFIELDS; f++) {
        const struct fidx *x = &p->idx[f];

        if (val[f].s == NULL)
            continue;
        lookup(&bt, &x->exact, &x->prefix, f, false);
        if (x->suffix.n_lens > 0)
            lookup(&bt, NULL, &x->suffix, f, true);
    }
    flush(&bt);
    if (p->n_ports > 0) {
        uint32_t lo = 0, hi = p->n_ports;

        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;

            if (p->ports[mid].port < port)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < p->n_ports && p->ports[lo].port == port)
            consider(p, p->ports[lo].r, val, port, KEY_PORT, b, req);
    }
    consider(p, p->scan, val, port, KEY_NONE, b, req);

    if (b->deny != NO_RULE)
        verdict(v, false, TG_POLICY_DENIED, &p->rules[b->deny], NULL);
    else if (applies && b->allow != NO_RULE)
        verdict(v, true, TG_POLICY_ALLOWED, &p->rules[b->allow], NULL);
    else if (applies)
        verdict(v, false, TG_POLICY_NO_MATCH, NULL, "no ALLOW rule matched");
    else if (p->default_deny)
        verdict(v, false, TG_POLICY_DEFAULT_DENY, NULL, "default deny");
    else
        verdict(v, true, TG_POLICY_DEFAULT_ALLOW, NULL, "default allow");
}

size_t tg_policy_rule_count(const struct tg_policy *p)
{
    return p->n_rules;
}

/* ---- normalising fingerprints and serials ---- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int bad_byte(char *err, const char *what, unsigned char c, size_t at)
{
    if (c > 0x20 && c < 0x7f)
        return tg_err_set(err, TG_EINVAL, "%s: '%c' at byte %zu", what, c, at);
    return tg_err_set(err, TG_EINVAL, "%s: byte 0x%02x at byte %zu", what, c, at);
}

int tg_policy_fingerprint_norm(const char *in, char out[TG_POLICY_SHA256_HEX + 1], char *err)
{
    static const char what[] = "not a SHA-256 fingerprint";
    size_t n = strnlen(in, 3 * 32);
    bool colons = n == 3 * 32 - 1; /* "ab:cd:...": 32 pairs, 31 colons */
    size_t k = 0;

    if (n != TG_POLICY_SHA256_HEX && !colons)
        return tg_err_set(err, TG_EINVAL, "%s (64 hex digits, pairs may be split by ':')", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];

        if (colons && i % 3 == 2) {
            if (c != ':')
                return bad_byte(err, what, c, i);
            continue;
        }
        if (hexval(c) < 0)
            return bad_byte(err, what, c, i);
        out[k++] = "0123456789abcdef"[hexval(c)];
    }
    out[k] = '\0';
    return 0;
}

int tg_policy_serial_norm(const char *in, char out[TG_POLICY_SERIAL_MAX + 1], char *err)
{
    static const char what[] = "not a hex serial";
    size_t n = strnlen(in, 1024), i = 0, k = 0;
    bool digit_before = false;

    if (n == 1024)
        return tg_err_set(err, TG_EINVAL, "%s: too long", what);
    if (n >= 2 && in[0] == '0' && (in[1] == 'x' || in[1] == 'X'))
        i = 2;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c == ':') {
            /* a separator only between digits: no leading, trailing or doubled ':' */
            if (!digit_before || i + 1 == n)
                return bad_byte(err, what, c, i);
            digit_before = false;
            continue;
        }
        if (hexval(c) < 0)
            return bad_byte(err, what, c, i);
        digit_before = true;
        if (k == 0 && c == '0')
            continue; /* leading zero */
        if (k == TG_POLICY_SERIAL_MAX)
            return tg_err_set(err, TG_EINVAL, "%s: over %d significant digits", what,
                              TG_POLICY_SERIAL_MAX);
        out[k++] = "0123456789abcdef"[hexval(c)];
    }
    if (!digit_before)
        return tg_err_set(err, TG_EINVAL, "%s: no digits", what);
    if (k == 0)
        out[k++] = '0';
    out[k] = '\0';
    return 0;
}

/* The namespace of /ns/<ns>/sa/<sa>, the Kubernetes-style SPIFFE path; anything else has
 * none. */
static void peer_namespace(struct tg_policy_peer *peer, const char *path, size_t n)
{
    size_t ns_end = 4;

    if (n < 4 || memcmp(path, "/ns/", 4) != 0)
        return;
    while (ns_end < n && path[ns_end] != '/')
        ns_end++;
    if (ns_end == 4 || n - ns_end < 5 || memcmp(path + ns_end, "/sa/", 4) != 0)
        return;
    if (memchr(path + ns_end + 4, '/', n - ns_end - 4) != NULL)
        return; /* spiffe_parse refuses empty segments, so <sa> is non-empty */
    peer->ns = path + 4;
    peer->ns_len = ns_end - 4;
}

int tg_policy_peer_init(struct tg_policy_peer *peer, const struct tg_spiffe_id *id,
                        const char *sha256, const char *serial, char *err)
{
    int rc;

    memset(peer, 0, sizeof(*peer));
    if (sha256 != NULL && sha256[0] != '\0' &&
        (rc = tg_policy_fingerprint_norm(sha256, peer->sha256, err)) < 0)
        return rc;
    if (serial != NULL && serial[0] != '\0' &&
        (rc = tg_policy_serial_norm(serial, peer->serial, err)) < 0)
        return rc;
    if (id == NULL)
        return 0;
    peer->id = id->id;
    peer->id_len = id->len;
    peer->td = id->id + SCHEME_LEN;
    peer->td_len = id->td_len;
    peer_namespace(peer, id->id + id->path_off, id->len - id->path_off);
    return 0;
}

/* ---- compiling ---- */

struct pair {
    struct sv key;
    uint32_t rule;
};

struct pairs {
    struct pair *v;
    size_t n, cap;
};

struct port_pair {
    uint16_t port;
    uint32_t rule;
};

struct build {
    struct tg_policy *p;
    struct arena scratch; /* the values of rules that are checked but not kept */
    struct pairs keys[NFIELDS][NKINDS];
    struct port_pair *ports;
    size_t n_ports, cap_ports;
    size_t n_ids, cap_ids;
    char *err;
};

static int nomem(char *err)
{
    return tg_err_set(err, TG_ENOMEM, "out of memory compiling the policy");
}

static int grow(void **v, size_t *cap, size_t n, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 16;
    void *nv;

    if (n < *cap)
        return 0;
    if (ncap > SIZE_MAX / elem)
        return TG_ENOMEM;
    if ((nv = realloc(*v, ncap * elem)) == NULL)
        return TG_ENOMEM;
    *v = nv;
    *cap = ncap;
    return 0;
}

static int push_pair(struct build *b, struct pairs *ps, struct sv key, uint32_t rule)
{
    if (grow((void **)&ps->v, &ps->cap, ps->n, sizeof(*ps->v)) < 0)
        return nomem(b->err);
    ps->v[ps->n++] = (struct pair){key, rule};
    return 0;
}

static int push_id(struct build *b, uint32_t id)
{
    if (grow((void **)&b->p->ids, &b->cap_ids, b->n_ids, sizeof(*b->p->ids)) < 0)
        return nomem(b->err);
    b->p->ids[b->n_ids++] = id;
    return 0;
}

static void build_cleanup(struct build *b)
{
    for (int f = 0; f < NFIELDS; f++) {
        for (int k = 0; k < NKINDS; k++)
            free(b->keys[f][k].v);
    }
    free(b->ports);
    arena_cleanup(&b->scratch);
}

/* A value as it may appear in an error line: at most 48 bytes, unprintables as '?'. */
static const char *show(const char *v, char *buf, size_t cap)
{
    size_t i = 0;

    for (; v[i] != '\0' && i + 4 < cap && i < 48; i++)
        buf[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
    if (v[i] != '\0') {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

static int bad_value(char *err, const char *rule, const char *field, size_t i, const char *v,
                     const char *why)
{
    char shown[64];

    return tg_err_set(err, TG_EINVAL, "rule \"%.64s\": %s[%zu] \"%s\": %s", rule, field, i,
                      show(v, shown, sizeof(shown)), why);
}

static bool td_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool seg_char(unsigned char c)
{
    return td_char(c) || (c >= 'A' && c <= 'Z');
}

static bool all_of(const char *s, size_t n, bool (*ok)(unsigned char), bool slash)
{
    for (size_t i = 0; i < n; i++) {
        if (!ok((unsigned char)s[i]) && !(slash && s[i] == '/'))
            return false;
    }
    return true;
}

/* Checks one value of a string field; *kind and *out get its form and what to match. */
static int parse_value(struct build *b, struct arena *a, const char *rule, int f, const char *field,
                       size_t i, const char *v, int *kind, bool *any, struct sv *out)
{
    size_t n = strnlen(v, TG_SPIFFE_MAX + 1);
    const char *body = v;
    size_t body_len = n;
    const char *star = memchr(v, '*', n);
    char norm[TG_POLICY_SERIAL_MAX + 1], why[TG_ERRLEN];
    int rc;

    *any = false;
    *kind = K_EXACT;
    if (n == 0)
        return bad_value(b->err, rule, field, i, v, "empty value");
    if (n > TG_SPIFFE_MAX)
        return bad_value(b->err, rule, field, i, v, "longer than 2048 bytes");
    if (f == F_FINGERPRINT || f == F_SERIAL) {
        rc = f == F_FINGERPRINT ? tg_policy_fingerprint_norm(v, norm, why)
                                : tg_policy_serial_norm(v, norm, why);
        if (rc < 0)
            return bad_value(b->err, rule, field, i, v, why);
        body = norm;
        body_len = strlen(norm);
    } else if (n == 1 && star != NULL) {
        *any = true;
        return 0;
    } else if (star != NULL) {
        if (memchr(star + 1, '*', n - (size_t)(star - v) - 1) != NULL ||
            (star != v && star != v + n - 1))
            return bad_value(b->err, rule, field, i, v,
                             "'*' only as \"*\", a prefix \"x*\" or a suffix \"*x\"");
        *kind = star == v ? K_SUFFIX : K_PREFIX;
        body = star == v ? v + 1 : v;
        body_len = n - 1;
    }
    if (f == F_PRINCIPAL && *kind == K_EXACT) {
        struct tg_spiffe_id *id = malloc(sizeof(*id));

        if (id == NULL)
            return nomem(b->err);
        rc = tg_spiffe_parse(v, id, why);
        free(id);
        if (rc < 0)
            return bad_value(b->err, rule, field, i, v, why);
    } else if (f == F_PRINCIPAL && *kind == K_PREFIX) {
        if (body_len < SCHEME_LEN || memcmp(body, SCHEME, SCHEME_LEN) != 0)
            return bad_value(b->err, rule, field, i, v, "a prefix must start with \"spiffe://\"");
        if (!all_of(body + SCHEME_LEN, body_len - SCHEME_LEN, seg_char, true))
            return bad_value(b->err, rule, field, i, v, "not a SPIFFE ID prefix");
    } else if (f == F_PRINCIPAL && !all_of(body, body_len, seg_char, true)) {
        return bad_value(b->err, rule, field, i, v, "not a SPIFFE ID suffix");
    } else if (f == F_NAMESPACE && !all_of(body, body_len, seg_char, false)) {
        return bad_value(b->err, rule, field, i, v, "a namespace is of [A-Za-z0-9._-]");
    } else if (f == F_TRUST_DOMAIN && !all_of(body, body_len, td_char, false)) {
        return bad_value(b->err, rule, field, i, v, "a trust domain is of [a-z0-9._-]");
    }
    if ((out->s = arena_strndup(a, body, body_len)) == NULL)
        return nomem(b->err);
    out->len = (uint32_t)body_len;
    return 0;
}

static int build_set(struct build *b, struct arena *a, const char *rule, int f, bool neg,
                     const struct tg_policy_strs *in, struct strset *set)
{
    char field[32];
    size_t keep = 0;

    snprintf(field, sizeof(field), "%s%s", neg ? "not_" : "", field_names[f]);
    if (in->n == 0)
        return 0;
    if (in->v == NULL)
        return tg_err_set(b->err, TG_EINVAL, "rule \"%.64s\": %s: no values", rule, field);
    set->used = true;
    set->exact = arena_alloc(a, in->n, sizeof(struct sv));
    set->prefix = arena_alloc(a, in->n, sizeof(struct sv));
    set->suffix = arena_alloc(a, in->n, sizeof(struct sv));
    if (set->exact == NULL || set->prefix == NULL || set->suffix == NULL)
        return nomem(b->err);
    for (size_t i = 0; i < in->n; i++) {
        struct sv v;
        int kind, rc;
        bool any;

        if (in->v[i] == NULL)
            return tg_err_set(b->err, TG_EINVAL, "rule \"%.64s\": %s[%zu]: NULL value", rule, field,
                              i);
        if ((rc = parse_value(b, a, rule, f, field, i, in->v[i], &kind, &any, &v)) < 0)
            return rc;
        if (any)
            set->any = true;
        else if (kind == K_EXACT)
            set->exact[set->n_exact++] = v;
        else if (kind == K_PREFIX)
            set->prefix[set->n_prefix++] = v;
        else
            set->suffix[set->n_suffix++] = v;
    }
    qsort(set->exact, set->n_exact, sizeof(struct sv), sv_cmp_q);
    for (uint32_t i = 0; i < set->n_exact; i++) { /* drop duplicates */
        if (keep == 0 || sv_cmp(set->exact[keep - 1], set->exact[i]) != 0)
            set->exact[keep++] = set->exact[i];
    }
    set->n_exact = (uint32_t)keep;
    return 0;
}

static int u16_cmp(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static int build_ports(struct build *b, struct arena *a, const char *rule, const char *field,
                       const struct tg_policy_ports *in, struct portset *ps)
{
    uint32_t keep = 0;

    if (in->n == 0)
        return 0;
    if (in->v == NULL)
        return tg_err_set(b->err, TG_EINVAL, "rule \"%.64s\": %s: no values", rule, field);
    if ((ps->v = arena_alloc(a, in->n, sizeof(uint16_t))) == NULL)
        return nomem(b->err);
    for (size_t i = 0; i < in->n; i++) {
        if (in->v[i] < 1 || in->v[i] > 65535)
            return tg_err_set(b->err, TG_EINVAL,
                              "rule \"%.64s\": %s[%zu]: %d out of range (1-65535)", rule, field, i,
                              in->v[i]);
        ps->v[i] = (uint16_t)in->v[i];
    }
    qsort(ps->v, in->n, sizeof(uint16_t), u16_cmp);
    for (size_t i = 0; i < in->n; i++) {
        if (keep == 0 || ps->v[keep - 1] != ps->v[i])
            ps->v[keep++] = ps->v[i];
    }
    ps->n = keep;
    return 0;
}

static int check_scope(const struct tg_policy_rule *r, char *err)
{
    const struct tg_policy_scope *s = &r->scope;

    switch (s->kind) {
    case TG_POLICY_SCOPE_MESH:
        return 0;
    case TG_POLICY_SCOPE_NAMESPACE:
        if (s->ns == NULL || s->ns[0] == '\0')
            return tg_err_set(err, TG_EINVAL, "rule \"%.64s\": scope: namespace is empty", r->name);
        return 0;
    case TG_POLICY_SCOPE_WORKLOAD:
        if (s->n_labels == 0 || s->labels == NULL)
            return tg_err_set(err, TG_EINVAL, "rule \"%.64s\": scope: workload without labels",
                              r->name);
        for (size_t i = 0; i < s->n_labels; i++) {
            if (s->labels[i].key == NULL || s->labels[i].key[0] == '\0' ||
                s->labels[i].value == NULL)
                return tg_err_set(err, TG_EINVAL, "rule \"%.64s\": scope: labels[%zu] is empty",
                                  r->name, i);
        }
        return 0;
    }
    return tg_err_set(err, TG_EINVAL, "rule \"%.64s\": scope: unknown kind %d", r->name,
                      (int)s->kind);
}

static bool has_label(const struct tg_policy_input *in, const struct tg_policy_label *l)
{
    for (size_t i = 0; i < in->n_workload_labels; i++) {
        const struct tg_policy_label *w = &in->workload_labels[i];

        if (w->key != NULL && w->value != NULL && strcmp(w->key, l->key) == 0 &&
            strcmp(w->value, l->value) == 0)
            return true;
    }
    return false;
}

static bool scope_applies(const struct tg_policy_input *in, const struct tg_policy_scope *s)
{
    if (s->kind == TG_POLICY_SCOPE_MESH)
        return true;
    if (s->ns != NULL && (in->workload_ns == NULL || strcmp(s->ns, in->workload_ns) != 0))
        return false;
    for (size_t i = 0; s->kind == TG_POLICY_SCOPE_WORKLOAD && i < s->n_labels; i++) {
        if (!has_label(in, &s->labels[i]))
            return false;
    }
    return true;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_names(const struct tg_policy_input *in, char *err)
{
    const char **names;
    int rc = 0;

    if (in->n_rules > 0 && in->rules == NULL)
        return tg_err_set(err, TG_EINVAL, "rules: no values");
    for (size_t i = 0; i < in->n_rules; i++) {
        if (in->rules[i].name == NULL || in->rules[i].name[0] == '\0')
            return tg_err_set(err, TG_EINVAL, "rule #%zu: name is empty", i + 1);
    }
    if (in->n_rules < 2)
        return 0;
    if ((names = malloc(in->n_rules * sizeof(*names))) == NULL)
        return nomem(err);
    for (size_t i = 0; i < in->n_rules; i++)
        names[i] = in->rules[i].name;
    qsort(names, in->n_rules, sizeof(*names), name_cmp);
    for (size_t i = 1; i < in->n_rules && rc == 0; i++) {
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = tg_err_set(err, TG_EINVAL, "rule \"%.64s\": duplicate name", names[i]);
    }
    free(names);
    return rc;
}

/* "denied by rule X" / "allowed by rule X", made once so that a verdict just points at it */
static const char *reason(struct arena *a, const struct tg_policy_rule *r)
{
    size_t n = strlen(r->name) + sizeof("allowed by rule ");
    char *s = arena_alloc(a, n, 1);

    if (s != NULL)
        snprintf(s, n, "%s by rule %s", r->action == TG_POLICY_DENY ? "denied" : "allowed",
                 r->name);
    return s;
}

/* Requests are matched by their normalised path (http.h, "request targets"), so a rule's
 * path that is not in that form could never match: it is refused, with the form to write.
 * A prefix is checked with a byte after it, so that "/a/." (a prefix of "/a/.well-known")
 * is not taken for a "." segment. */
static int check_rule_path(struct build *b, const char *rule, size_t i, const char *v, size_t len)
{
    char tmp[2050], norm[2050], why[TG_ERRLEN];
    bool prefix = v[len - 1] == '*';
    size_t body = len - prefix, n;

    memcpy(tmp, v, body);
    if (prefix)
        tmp[body++] = 'x';
    if (tg_http_path_normalize(tmp, body, norm, sizeof(norm), &n, why) < 0)
        return tg_err_set(b->err, TG_EINVAL, "rule \"%.64s\": paths[%zu] \"%.64s\": %s", rule, i, v,
                          why);
    if (n != body || memcmp(norm, tmp, n) != 0)
        return tg_err_set(b->err, TG_EINVAL,
                          "rule \"%.64s\": paths[%zu] \"%.64s\": not in normal form (requests are "
                          "matched normalised): write \"%.*s%s\"",
                          rule, i, v, (int)(n - prefix < 64 ? n - prefix : 64), norm,
                          prefix ? "*" : "");
    return 0;
}

/* One list of HTTP conditions into the arena: methods are tokens, paths start with '/' (a
 * prefix ends in '*'), hosts are names or addresses without spaces. */
static int build_http_list(struct build *b, struct arena *a, const char *rule, const char *field,
                           const struct tg_policy_strs *in, struct sv **out, uint32_t *n)
{
    static const char tchars[] = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
                                 "nopqrstuvwxyz";
    int rc;

    *n = 0;
    if (in->n == 0)
        return 0;
    if ((*out = arena_alloc(a, in->n, sizeof(**out))) == NULL)
        return nomem(b->err);
    for (size_t i = 0; i < in->n; i++) {
        const char *v = in->v[i];
        size_t len = strlen(v);
        bool ok = len > 0 && len <= 2048;

        if (ok && strcmp(field, "methods") == 0)
            ok = strspn(v, tchars) == len && strchr(v, '*') == NULL;
        else if (ok && strcmp(field, "paths") == 0)
            ok = v[0] == '/' && strcspn(v, " \t\r\n?#") == len &&
                 (strchr(v, '*') == NULL || strchr(v, '*') == v + len - 1);
        else if (ok)
            ok = strcspn(v, " \t\r\n,/@*") == len;
        if (!ok)
            return tg_err_set(
                b->err, TG_EINVAL, "rule \"%.64s\": %s[%zu] \"%.64s\": %s", rule, field, i, v,
                strcmp(field, "methods") == 0 ? "not a method (a token such as GET)"
                : strcmp(field, "paths") == 0 ? "not a path (\"/exact\" or \"/prefix*\", no query)"
                                              : "not a host name");
        if (strcmp(field, "paths") == 0 && (rc = check_rule_path(b, rule, i, v, len)) < 0)
            return rc;
        if (((*out)[i].s = arena_strndup(a, v, len)) == NULL)
            return nomem(b->err);
        (*out)[i].len = (uint32_t)len;
    }
    *n = (uint32_t)in->n;
    return 0;
}

/* Checks rule r and, when it applies to this workload, keeps it as rules[n_rules]. */
static int compile_rule(struct build *b, const struct tg_policy_input *in,
                        const struct tg_policy_rule *r)
{
    const struct tg_policy_strs *pos[NFIELDS] = {&r->principals, &r->namespaces, &r->trust_domains,
                                                 &r->fingerprints, &r->serials};
    const struct tg_policy_strs *neg[NFIELDS] = {&r->not_principals, &r->not_namespaces,
                                                 &r->not_trust_domains, &r->not_fingerprints,
                                                 &r->not_serials};
    struct tg_policy *p = b->p;
    bool keep = scope_applies(in, &r->scope);
    struct arena *a = keep ? &p->arena : &b->scratch;
    struct crule scratch_rule = {0}, *cr = keep ? &p->rules[p->n_rules] : &scratch_rule;
    size_t used = r->ports.n + r->not_ports.n;
    int rc;

    memset(cr, 0, sizeof(*cr));
    if ((cr->pos = arena_alloc(a, 2 * NFIELDS, sizeof(*cr->pos))) == NULL)
        return nomem(b->err);
    cr->neg = cr->pos + NFIELDS;
    if (r->action != TG_POLICY_ALLOW && r->action != TG_POLICY_DENY)
        return tg_err_set(b->err, TG_EINVAL, "rule \"%.64s\": unknown action %d", r->name,
                          (int)r->action);
    if ((rc = check_scope(r, b->err)) < 0)
        return rc;
    for (int f = 0; f < NFIELDS; f++) {
        used += pos[f]->n + neg[f]->n;
        if ((rc = build_set(b, a, r->name, f, false, pos[f], &cr->pos[f])) < 0)
            return rc;
        if ((rc = build_set(b, a, r->name, f, true, neg[f], &cr->neg[f])) < 0)
            return rc;
    }
    if ((rc = build_ports(b, a, r->name, "ports", &r->ports, &cr->ports)) < 0)
        return rc;
    if ((rc = build_ports(b, a, r->name, "not_ports", &r->not_ports, &cr->not_ports)) < 0)
        return rc;
    if (r->methods.n + r->paths.n + r->hosts.n > 0) {
        struct httpconds *h = arena_alloc(a, 1, sizeof(*h));

        if (h == NULL)
            return nomem(b->err);
        if ((rc = build_http_list(b, a, r->name, "methods", &r->methods, &h->methods,
                                  &h->n_methods)) < 0 ||
            (rc = build_http_list(b, a, r->name, "paths", &r->paths, &h->paths, &h->n_paths)) < 0 ||
            (rc = build_http_list(b, a, r->name, "hosts", &r->hosts, &h->hosts, &h->n_hosts)) < 0)
            return rc;
        cr->http = h;
        used += r->methods.n + r->paths.n + r->hosts.n;
    }
    if (used == 0)
        return tg_err_set(b->err, TG_EINVAL,
                          "rule \"%.64s\": empty rule (no match field; it would match everyone)",
                          r->name);
    if (!keep) {
        arena_cleanup(&b->scratch);
        return 0;
    }
    cr->action = r->action;
    for (int f = 0; f < NFIELDS; f++) {
        cr->pos_mask |= (uint16_t)(cr->pos[f].used << f);
        cr->neg_mask |= (uint16_t)(cr->neg[f].used << f);
    }
    if ((cr->name = arena_strndup(a, r->name, strlen(r->name))) == NULL ||
        (cr->reason = reason(a, r)) == NULL)
        return nomem(b->err);
    p->n_rules++;
    return 0;
}

/* The most selective positive field that can file the rule ("*" files nothing). */
static int key_field(const struct crule *r)
{
    static const int order[] = {F_FINGERPRINT, F_SERIAL, F_PRINCIPAL, F_NAMESPACE, F_TRUST_DOMAIN};

    for (size_t i = 0; i < TG_NELEM(order); i++) {
        if (r->pos[order[i]].used && !r->pos[order[i]].any)
            return order[i];
    }
    return r->ports.n > 0 ? KEY_PORT : KEY_NONE;
}

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    int c = sv_cmp(x->key, y->key);

    if (c != 0)
        return c;
    return (x->rule & E_ID) < (y->rule & E_ID) ? -1 : (x->rule & E_ID) > (y->rule & E_ID);
}

/* Sorts ps into distinct keys, each with its ascending rule list (appended to p->ids); *out
 * is a temporary array for the caller to free. */
static int group_pairs(struct build *b, struct pairs *ps, struct keyed **out, uint32_t *n)
{
    struct keyed *g;
    uint32_t k = 0;

    *out = NULL;
    *n = 0;
    if (ps->n == 0)
        return 0;
    qsort(ps->v, ps->n, sizeof(*ps->v), pair_cmp);
    if ((g = malloc(ps->n * sizeof(*g))) == NULL)
        return nomem(b->err);
    for (size_t i = 0; i < ps->n; i++) {
        bool new_key = i == 0 || sv_cmp(ps->v[i - 1].key, ps->v[i].key) != 0;

        if (new_key)
            g[k++] = (struct keyed){ps->v[i].key, {ps->v[i].rule, (uint32_t)b->n_ids, 0}};
        if (new_key || ps->v[i - 1].rule != ps->v[i].rule) {
            if (push_id(b, ps->v[i].rule) < 0) {
                free(g);
                return TG_ENOMEM;
            }
            g[k - 1].r.n++;
        }
    }
    *out = g;
    *n = k;
    return 0;
}

static int build_hmap(struct build *b, struct hmap *m, const struct keyed *g, uint32_t n)
{
    uint32_t cap = 16; /* the filter takes cap / 16 words */

    if (n == 0)
        return 0;
    while (cap < 4 * (uint64_t)n)
        cap *= 2;
    if ((m->slots = arena_alloc(&b->p->arena, cap, sizeof(*m->slots))) == NULL ||
        (m->filter = arena_alloc(&b->p->arena, cap / 16, sizeof(*m->filter))) == NULL)
        return nomem(b->err);
    m->mask = cap - 1;
    m->filter_mask = cap / 16 - 1; /* >= 16 bits a key: about 2% of misses get through */
    for (uint32_t i = 0; i < n; i++) {
        uint64_t h = hash_key(g[i].key);
        uint32_t at = (uint32_t)h & m->mask;

        while (m->slots[at].s != NULL)
            at = (at + 1) & m->mask;
        m->slots[at] = (struct slot){g[i].key.s, g[i].key.len, (uint32_t)(h >> 32), g[i].r};
        m->filter[(h >> 32) & m->filter_mask] |= filter_bits(h);
    }
    return 0;
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static int build_lenmap(struct build *b, struct pairs *ps, struct lenmap *lm)
{
    struct keyed *g;
    uint32_t n, k = 0;
    int rc;

    if ((rc = group_pairs(b, ps, &g, &n)) < 0)
        return rc;
    if (n > 0 && (lm->lens = arena_alloc(&b->p->arena, n, sizeof(*lm->lens))) == NULL)
        rc = nomem(b->err);
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        lm->lens[i] = g[i].key.len;
    if (rc == 0 && n > 0) {
        qsort(lm->lens, n, sizeof(*lm->lens), u32_cmp);
        for (uint32_t i = 0; i < n; i++) {
            if (k == 0 || lm->lens[k - 1] != lm->lens[i])
                lm->lens[k++] = lm->lens[i];
        }
        lm->n_lens = k;
        rc = build_hmap(b, &lm->map, g, n);
    }
    free(g);
    return rc;
}

static int port_pair_cmp(const void *a, const void *b)
{
    const struct port_pair *x = a, *y = b;

    if (x->port != y->port)
        return x->port < y->port ? -1 : 1;
    return (x->rule & E_ID) < (y->rule & E_ID) ? -1 : (x->rule & E_ID) > (y->rule & E_ID);
}

/* The entry for rule id filed under key field k. */
static uint32_t entry(const struct crule *r, uint32_t id, int k)
{
    unsigned others = r->pos_mask & ~(k < NFIELDS ? 1u << k : 0u);
    bool uncond = others == 0 && r->neg_mask == 0 && (r->ports.n == 0 || k == KEY_PORT) &&
                  r->not_ports.n == 0 && r->http == NULL;

    return id | (r->action == TG_POLICY_DENY ? E_DENY : 0) | (uncond ? E_UNCOND : 0);
}

/* Files a rule that has a key field under each of that field's values. */
static int file_rule(struct build *b, uint32_t rule)
{
    const struct crule *r = &b->p->rules[rule];
    int k = key_field(r);
    uint32_t id = entry(r, rule, k);
    int rc = 0;

    if (k == KEY_PORT) {
        for (uint32_t i = 0; i < r->ports.n; i++) {
            if (grow((void **)&b->ports, &b->cap_ports, b->n_ports, sizeof(*b->ports)) < 0)
                return nomem(b->err);
            b->ports[b->n_ports++] = (struct port_pair){r->ports.v[i], id};
        }
        return 0;
    }
    for (uint32_t i = 0; i < r->pos[k].n_exact && rc == 0; i++)
        rc = push_pair(b, &b->keys[k][K_EXACT], r->pos[k].exact[i], id);
    for (uint32_t i = 0; i < r->pos[k].n_prefix && rc == 0; i++)
        rc = push_pair(b, &b->keys[k][K_PREFIX], r->pos[k].prefix[i], id);
    for (uint32_t i = 0; i < r->pos[k].n_suffix && rc == 0; i++) {
        struct sv s = r->pos[k].suffix[i];
        char *rev = arena_alloc(&b->p->arena, s.len + 1, 1);

        if (rev == NULL)
            return nomem(b->err);
        for (uint32_t j = 0; j < s.len; j++)
            rev[j] = s.s[s.len - 1 - j];
        rc = push_pair(b, &b->keys[k][K_SUFFIX], (struct sv){rev, s.len}, id);
    }
    return rc;
}

static int build_indexes(struct build *b)
{
    struct tg_policy *p = b->p;
    uint32_t k = 0;
    int rc;

    /* the scan list takes the first ids; the indexes' lists follow as they are grouped */
    p->scan.off = 0;
    for (uint32_t id = 0; id < p->n_rules; id++) {
        if (key_field(&p->rules[id]) == KEY_NONE &&
            (rc = push_id(b, entry(&p->rules[id], id, KEY_NONE))) < 0)
            return rc;
    }
    p->scan.n = (uint32_t)b->n_ids;
    p->scan.first = p->scan.n > 0 ? p->ids[0] : 0;
    for (uint32_t id = 0; id < p->n_rules; id++) {
        if (key_field(&p->rules[id]) != KEY_NONE && (rc = file_rule(b, id)) < 0)
            return rc;
    }
    for (int f = 0; f < NFIELDS; f++) {
        struct fidx *x = &p->idx[f];
        struct keyed *g;
        uint32_t n;

        if ((rc = group_pairs(b, &b->keys[f][K_EXACT], &g, &n)) < 0)
            return rc;
        rc = build_hmap(b, &x->exact, g, n);
        free(g);
        if (rc < 0 || (rc = build_lenmap(b, &b->keys[f][K_PREFIX], &x->prefix)) < 0 ||
            (rc = build_lenmap(b, &b->keys[f][K_SUFFIX], &x->suffix)) < 0)
            return rc;
    }
    if (b->n_ports == 0)
        return 0;
    qsort(b->ports, b->n_ports, sizeof(*b->ports), port_pair_cmp);
    if ((p->ports = arena_alloc(&p->arena, b->n_ports, sizeof(*p->ports))) == NULL)
        return nomem(b->err);
    for (size_t i = 0; i < b->n_ports; i++) {
        if (i == 0 || b->ports[i - 1].port != b->ports[i].port)
            p->ports[k++] =
                (struct port_ent){b->ports[i].port, {b->ports[i].rule, (uint32_t)b->n_ids, 0}};
        if ((rc = push_id(b, b->ports[i].rule)) < 0)
            return rc;
        p->ports[k - 1].r.n++;
    }
    p->n_ports = k;
    return 0;
}

/* Bit P of allow_port: some ALLOW rule's port fields accept port P. Rules with only
 * not_ports accept every port outside their list, so together they leave out only the ports
 * in all of their lists: counted per port. */
static int build_allow_ports(struct build *b)
{
    struct tg_policy *p = b->p;
    uint32_t *excluded = NULL, n_not_only = 0;

    for (uint32_t id = 0; id < p->n_rules; id++) {
        const struct crule *r = &p->rules[id];

        if (r->action != TG_POLICY_ALLOW)
            continue;
        if (r->ports.n == 0 && r->not_ports.n == 0) {
            memset(p->allow_port, 0xff, sizeof(p->allow_port));
            break;
        }
        for (uint32_t i = 0; i < r->ports.n; i++) {
            if (!ports_has(&r->not_ports, r->ports.v[i]))
                p->allow_port[r->ports.v[i] >> 3] |= (uint8_t)(1u << (r->ports.v[i] & 7));
        }
        if (r->ports.n > 0)
            continue;
        if (excluded == NULL && (excluded = calloc(65536, sizeof(*excluded))) == NULL)
            return nomem(b->err);
        n_not_only++;
        for (uint32_t i = 0; i < r->not_ports.n; i++)
            excluded[r->not_ports.v[i]]++;
    }
    for (uint32_t port = 1; excluded != NULL && port < 65536; port++) {
        if (excluded[port] < n_not_only)
            p->allow_port[port >> 3] |= (uint8_t)(1u << (port & 7));
    }
    p->allow_port[0] &= (uint8_t)~1u; /* port 0 is never a destination */
    free(excluded);
    return 0;
}

static int build_revoked(struct build *b, const struct tg_policy_strs *in, int f, const char *field,
                         struct hmap *m)
{
    struct pairs ps = {NULL, 0, 0};
    struct keyed *g = NULL;
    uint32_t n;
    int rc = 0;

    if (in->n > 0 && in->v == NULL)
        return tg_err_set(b->err, TG_EINVAL, "%s: no values", field);
    for (size_t i = 0; i < in->n && rc == 0; i++) {
        char norm[TG_POLICY_SERIAL_MAX + 1], why[TG_ERRLEN];
        char *copy;

        if (in->v[i] == NULL) {
            rc = tg_err_set(b->err, TG_EINVAL, "%s[%zu]: NULL value", field, i);
            break;
        }
        rc = f == F_SERIAL ? tg_policy_serial_norm(in->v[i], norm, why)
                           : tg_policy_fingerprint_norm(in->v[i], norm, why);
        if (rc < 0) {
            char shown[64];

            rc = tg_err_set(b->err, TG_EINVAL, "%s[%zu] \"%s\": %s", field, i,
                            show(in->v[i], shown, sizeof(shown)), why);
            break;
        }
        if ((copy = arena_strndup(&b->p->arena, norm, strlen(norm))) == NULL) {
            rc = nomem(b->err);
            break;
        }
        rc = push_pair(b, &ps, (struct sv){copy, (uint32_t)strlen(norm)}, 0);
    }
    if (rc == 0 && (rc = group_pairs(b, &ps, &g, &n)) == 0)
        rc = build_hmap(b, m, g, n);
    free(g);
    free(ps.v);
    return rc;
}

int tg_policy_compile(const struct tg_policy_input *in, struct tg_policy **out, char *err)
{
    struct build b;
    struct tg_policy *p = calloc(1, sizeof(*p));
    int rc = TG_ENOMEM;

    memset(&b, 0, sizeof(b));
    b.p = p;
    b.err = err;
    if (p == NULL) {
        rc = nomem(err);
        goto fail;
    }
    p->default_deny = in->default_deny;
    if ((rc = check_names(in, err)) < 0)
        goto fail;
    if (in->n_rules > UINT32_MAX / 4) {
        rc = tg_err_set(err, TG_ETOOBIG, "rules: too many (%zu)", in->n_rules);
        goto fail;
    }
    if ((p->rules = arena_alloc(&p->arena, in->n_rules, sizeof(*p->rules))) == NULL) {
        rc = nomem(err);
        goto fail;
    }
    for (size_t i = 0; i < in->n_rules; i++) {
        if ((rc = compile_rule(&b, in, &in->rules[i])) < 0)
            goto fail;
    }
    if ((rc = build_indexes(&b)) < 0 || (rc = build_allow_ports(&b)) < 0)
        goto fail;
    if ((rc = build_revoked(&b, &in->revoked_serials, F_SERIAL, "revoked_serials",
                            &p->revoked_serials)) < 0)
        goto fail;
    if ((rc = build_revoked(&b, &in->revoked_fingerprints, F_FINGERPRINT, "revoked_fingerprints",
                            &p->revoked_fingerprints)) < 0)
        goto fail;
    build_cleanup(&b);
    *out = p;
    return 0;
fail:
    build_cleanup(&b);
    tg_policy_free(p);
    return rc;
}

void tg_policy_free(struct tg_policy *p)
{
    if (p == NULL)
        return;
    arena_cleanup(&p->arena);
    free(p->ids);
    free(p);
}

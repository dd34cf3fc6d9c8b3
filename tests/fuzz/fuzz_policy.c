/* Differential fuzzing of tg_policy_decide against a reference written here: the bytes pick
 * a small rule set (values cut from a few IDs, so prefixes nest and suffixes overlap), a
 * workload, revocations and a caller; the reference applies policy.h's semantics by
 * scanning the rules in order, straight from the input, with its own value spelling rules.
 * Any disagreement in outcome or deciding rule aborts. Some inputs carry one invalid value,
 * which must make the compile fail. */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/policy.h"

#define MAX_RULES 10
#define MAX_VALS 3
#define VAL_LEN 160

static const char *const ids[] = {
    "spiffe://a.org/ns/x/sa/p", "spiffe://a.org/ns/x/sa/pq",      "spiffe://a.org/ns/xy/sa/p",
    "spiffe://a.org/ns/y/sa/q", "spiffe://b.org/ns/x/sa/p",       "spiffe://a.org/job/x",
    "spiffe://b.org",           "spiffe://a.org/ns/x/sa/p/extra",
};
static const char *const namespaces[] = {"x", "xy", "y", "q"};
static const char *const domains[] = {"a.org", "b.org", "org", "c"};
static const char *const fps[] = {
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
    "0000000000000000000000000000000000000000000000000000000000000000",
};
static const char *const serials[] = {"1", "a1", "ff", "100", "0"};
static const int port_vals[] = {80, 81, 443, 8080};

/* Storage for every string and list of one input. */
struct fz {
    struct tg_policy_rule rules[MAX_RULES];
    char names[MAX_RULES][8];
    char vals[MAX_RULES][12][MAX_VALS][VAL_LEN];
    const char *ptrs[MAX_RULES][12][MAX_VALS];
    int ports[MAX_RULES][2][MAX_VALS];
    struct tg_policy_label labels[MAX_RULES][2];
    char rev_vals[2][VAL_LEN];
    const char *rev_ptrs[2];
};

enum { PRIN, NS, TD, FP, SER, NSTR };

/* Rewrites a hex value in another accepted spelling: case, colons, leading zeros, 0x. */
static void respell(struct fuzz_reader *r, int kind, const char *in, char *out)
{
    unsigned how = fuzz_next(r);
    size_t n = strlen(in), k = 0;

    if (kind == SER && (how & 1)) {
        out[k++] = '0';
        out[k++] = 'x';
    }
    if (kind == SER && (how & 2)) {
        out[k++] = '0';
        out[k++] = '0';
    }
    for (size_t i = 0; i < n; i++) {
        if (kind == FP && (how & 4) && i > 0 && i % 2 == 0)
            out[k++] = ':';
        out[k++] = (how & 8) ? (char)toupper((unsigned char)in[i]) : in[i];
    }
    out[k] = '\0';
}

/* A value for a string field: exact, cut into "x*" or "*x", or "*". */
static void gen_value(struct fuzz_reader *r, int kind, char *out)
{
    unsigned pick = fuzz_next(r), form = fuzz_next(r) % 8, cut = fuzz_next(r);
    const char *base;
    size_t n, lo;

    switch (kind) {
    case PRIN:
        base = ids[pick % TG_NELEM(ids)];
        lo = 9; /* a prefix keeps the scheme; a suffix starts after it */
        break;
    case NS:
        base = namespaces[pick % TG_NELEM(namespaces)];
        lo = 1;
        break;
    case TD:
        base = domains[pick % TG_NELEM(domains)];
        lo = 1;
        break;
    case FP:
        respell(r, FP, fps[pick % TG_NELEM(fps)], out);
        return;
    default:
        respell(r, SER, serials[pick % TG_NELEM(serials)], out);
        return;
    }
    n = strlen(base);
    if (form == 0) {
        strcpy(out, "*");
    } else if (form <= 2 && n > lo) { /* prefix of lo..n bytes */
        size_t k = lo + cut % (n - lo + 1);

        snprintf(out, VAL_LEN, "%.*s*", (int)k, base);
    } else if (form <= 4 && n > lo) { /* suffix from byte lo..n-1 */
        size_t k = lo + cut % (n - lo);

        snprintf(out, VAL_LEN, "*%s", base + k);
    } else {
        strcpy(out, base);
    }
}

static const struct tg_policy_label workload_labels[] = {{"app", "p"}};

/* refused in every string field */
static const char *const invalid[] = {"spiffe://A/x", "a*b", "", "z z", "spiffe://a/"};

static void gen_input(struct fuzz_reader *r, struct fz *z, struct tg_policy_input *in, bool *bad)
{
    unsigned n_rules = fuzz_next(r) % (MAX_RULES + 1);
    int bad_at = fuzz_next(r) % 16 == 0 ? (int)(fuzz_next(r) % (MAX_RULES * 12)) : -1;

    memset(in, 0, sizeof(*in));
    *bad = false;
    in->workload_ns = "x";
    in->workload_labels = workload_labels;
    in->n_workload_labels = 1;
    in->default_deny = fuzz_next(r) & 1;
    for (unsigned i = 0; i < n_rules; i++) {
        struct tg_policy_rule *rule = &z->rules[i];
        struct tg_policy_strs *strs[2][NSTR] = {
            {&rule->principals, &rule->namespaces, &rule->trust_domains, &rule->fingerprints,
             &rule->serials},
            {&rule->not_principals, &rule->not_namespaces, &rule->not_trust_domains,
             &rule->not_fingerprints, &rule->not_serials},
        };
        struct tg_policy_ports *ports[2] = {&rule->ports, &rule->not_ports};
        unsigned scope = fuzz_next(r) % 6;
        bool any = false;

        snprintf(z->names[i], sizeof(z->names[i]), "r%u", i);
        rule->name = z->names[i];
        rule->action = fuzz_next(r) & 1 ? TG_POLICY_DENY : TG_POLICY_ALLOW;
        z->labels[i][0] = (struct tg_policy_label){"app", scope == 4 ? "q" : "p"};
        if (scope == 1 || scope == 2)
            rule->scope = (struct tg_policy_scope){TG_POLICY_SCOPE_NAMESPACE,
                                                   scope == 1 ? "x" : "y", NULL, 0};
        else if (scope >= 3)
            rule->scope = (struct tg_policy_scope){TG_POLICY_SCOPE_WORKLOAD,
                                                   scope == 5 ? "y" : NULL, z->labels[i], 1};
        for (int f = 0; f < 12; f++) {
            unsigned pres = fuzz_next(r);
            unsigned n = pres % 4 == 0 ? 1 + (pres >> 2) % MAX_VALS : 0;

            any |= n > 0;
            for (unsigned k = 0; k < n; k++) {
                if (f < 10) {
                    gen_value(r, f % NSTR, z->vals[i][f][k]);
                    z->ptrs[i][f][k] = z->vals[i][f][k];
                } else {
                    z->ports[i][f - 10][k] = port_vals[fuzz_next(r) % TG_NELEM(port_vals)];
                }
            }
            if ((int)(i * 12 + f) == bad_at) { /* one invalid value */
                if (n == 0)
                    n = 1;
                if (f < 10) {
                    strcpy(z->vals[i][f][0], invalid[fuzz_next(r) % TG_NELEM(invalid)]);
                    z->ptrs[i][f][0] = z->vals[i][f][0];
                } else {
                    z->ports[i][f - 10][0] = fuzz_next(r) & 1 ? 0 : 65536;
                }
                *bad = any = true;
            }
            if (f < 10)
                *strs[f / NSTR][f % NSTR] = (struct tg_policy_strs){z->ptrs[i][f], n};
            else
                *ports[f - 10] = (struct tg_policy_ports){z->ports[i][f - 10], n};
        }
        if (!any) {
            z->ports[i][0][0] = port_vals[fuzz_next(r) % TG_NELEM(port_vals)];
            rule->ports = (struct tg_policy_ports){z->ports[i][0], 1};
        }
    }
    in->rules = z->rules;
    in->n_rules = n_rules;
    if (fuzz_next(r) % 4 == 0) {
        respell(r, SER, serials[fuzz_next(r) % TG_NELEM(serials)], z->rev_vals[0]);
        z->rev_ptrs[0] = z->rev_vals[0];
        in->revoked_serials = (struct tg_policy_strs){&z->rev_ptrs[0], 1};
    }
    if (fuzz_next(r) % 4 == 0) {
        respell(r, FP, fps[fuzz_next(r) % TG_NELEM(fps)], z->rev_vals[1]);
        z->rev_ptrs[1] = z->rev_vals[1];
        in->revoked_fingerprints = (struct tg_policy_strs){&z->rev_ptrs[1], 1};
    }
}

/* ---- the reference ---- */

struct ref_peer {
    const char *id, *fp, *serial; /* NULL: absent; fp and serial canonical */
    char td[VAL_LEN], ns[VAL_LEN];
    bool has_ns;
};

/* Canonical hex: no colons, no 0x, lowercase; serials without leading zeros. */
static void canon(const char *in, bool serial, char *out)
{
    size_t k = 0;

    if (serial && in[0] == '0' && (in[1] == 'x' || in[1] == 'X'))
        in += 2;
    for (; *in != '\0'; in++) {
        if (*in == ':')
            continue;
        if (serial && k == 0 && *in == '0')
            continue;
        out[k++] = (char)tolower((unsigned char)*in);
    }
    if (serial && k == 0)
        out[k++] = '0';
    out[k] = '\0';
}

static void ref_peer_init(struct ref_peer *p, const char *id, const char *fp, const char *serial)
{
    static char fpbuf[VAL_LEN], serbuf[VAL_LEN];
    char a[VAL_LEN], b[VAL_LEN], rest[VAL_LEN];

    memset(p, 0, sizeof(*p));
    p->id = id;
    if (fp != NULL) {
        canon(fp, false, fpbuf);
        p->fp = fpbuf;
    }
    if (serial != NULL) {
        canon(serial, true, serbuf);
        p->serial = serbuf;
    }
    if (id == NULL)
        return;
    sscanf(id + 9, "%159[^/]", p->td); /* VAL_LEN - 1 */
    /* exactly "/ns/<a>/sa/<b>" after the trust domain */
    rest[0] = '\0';
    if (sscanf(id + 9 + strlen(p->td), "/ns/%159[^/]/sa/%159[^/]%159s", a, b, rest) >= 2 &&
        rest[0] == '\0') {
        strcpy(p->ns, a);
        p->has_ns = true;
    }
}

static bool ref_value(const char *pat, const char *v, int kind)
{
    size_t n = strlen(pat), m;
    char c[VAL_LEN];

    if (v == NULL)
        return false;
    if (kind == FP || kind == SER) {
        canon(pat, kind == SER, c);
        return strcmp(c, v) == 0;
    }
    m = strlen(v);
    if (strcmp(pat, "*") == 0)
        return true;
    if (pat[0] == '*')
        return m >= n - 1 && strcmp(v + m - (n - 1), pat + 1) == 0;
    if (pat[n - 1] == '*')
        return strncmp(v, pat, n - 1) == 0;
    return strcmp(pat, v) == 0;
}

static bool ref_field(const struct tg_policy_strs *s, bool neg, const char *v, int kind)
{
    bool any = false;

    if (s->n == 0)
        return true;
    for (size_t i = 0; i < s->n; i++)
        any |= ref_value(s->v[i], v, kind);
    return neg ? !any : any;
}

static bool ref_ports(const struct tg_policy_ports *s, bool neg, int port)
{
    bool any = false;

    if (s->n == 0)
        return true;
    for (size_t i = 0; i < s->n; i++)
        any |= s->v[i] == port;
    return neg ? !any : any;
}

static bool ref_applies(const struct tg_policy_input *in, const struct tg_policy_rule *r)
{
    if (r->scope.kind == TG_POLICY_SCOPE_MESH)
        return true;
    if (r->scope.ns != NULL && strcmp(r->scope.ns, in->workload_ns) != 0)
        return false;
    for (size_t i = 0; r->scope.kind == TG_POLICY_SCOPE_WORKLOAD && i < r->scope.n_labels; i++) {
        bool found = false;

        for (size_t j = 0; j < in->n_workload_labels; j++)
            found |= strcmp(r->scope.labels[i].key, in->workload_labels[j].key) == 0 &&
                     strcmp(r->scope.labels[i].value, in->workload_labels[j].value) == 0;
        if (!found)
            return false;
    }
    return true;
}

static bool ref_rule(const struct tg_policy_rule *r, const struct ref_peer *p, int port)
{
    const char *v[NSTR] = {p->id, p->has_ns ? p->ns : NULL, p->id ? p->td : NULL, p->fp, p->serial};

    return ref_field(&r->principals, false, v[PRIN], PRIN) &&
           ref_field(&r->not_principals, true, v[PRIN], PRIN) &&
           ref_field(&r->namespaces, false, v[NS], NS) &&
           ref_field(&r->not_namespaces, true, v[NS], NS) &&
           ref_field(&r->trust_domains, false, v[TD], TD) &&
           ref_field(&r->not_trust_domains, true, v[TD], TD) &&
           ref_field(&r->fingerprints, false, v[FP], FP) &&
           ref_field(&r->not_fingerprints, true, v[FP], FP) &&
           ref_field(&r->serials, false, v[SER], SER) &&
           ref_field(&r->not_serials, true, v[SER], SER) && ref_ports(&r->ports, false, port) &&
           ref_ports(&r->not_ports, true, port);
}

static enum tg_policy_outcome ref_decide(const struct tg_policy_input *in, const struct ref_peer *p,
                                         int port, const char **rule)
{
    bool applies = false;

    *rule = NULL;
    for (size_t i = 0; i < in->revoked_serials.n; i++) {
        if (ref_value(in->revoked_serials.v[i], p->serial, SER))
            return TG_POLICY_REVOKED;
    }
    for (size_t i = 0; i < in->revoked_fingerprints.n; i++) {
        if (ref_value(in->revoked_fingerprints.v[i], p->fp, FP))
            return TG_POLICY_REVOKED;
    }
    for (size_t i = 0; i < in->n_rules; i++) {
        const struct tg_policy_rule *r = &in->rules[i];

        if (r->action == TG_POLICY_DENY && ref_applies(in, r) && ref_rule(r, p, port)) {
            *rule = r->name;
            return TG_POLICY_DENIED;
        }
    }
    for (size_t i = 0; i < in->n_rules; i++) {
        const struct tg_policy_rule *r = &in->rules[i];

        if (r->action != TG_POLICY_ALLOW || !ref_applies(in, r))
            continue;
        if (ref_ports(&r->ports, false, port) && ref_ports(&r->not_ports, true, port))
            applies = true;
        if (ref_rule(r, p, port)) {
            *rule = r->name;
            return TG_POLICY_ALLOWED;
        }
    }
    if (applies)
        return TG_POLICY_NO_MATCH;
    return in->default_deny ? TG_POLICY_DEFAULT_DENY : TG_POLICY_DEFAULT_ALLOW;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fz z;
    static struct tg_spiffe_id sid;
    struct fuzz_reader r = {data, size};
    struct tg_policy_input in;
    struct tg_policy *p = NULL;
    char err[TG_ERRLEN] = "";
    bool bad;
    int rc;

    memset(&z, 0, sizeof(z));
    gen_input(&r, &z, &in, &bad);
    rc = tg_policy_compile(&in, &p, err);
    if (bad) {
        if (rc != TG_EINVAL || p != NULL || strchr(err, '\n') != NULL || err[0] == '\0')
            abort();
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "fuzz_policy: valid input refused: %s\n", err);
        abort();
    }
    /* every caller on every port */
    for (size_t c = 0; c < 4; c++) {
        unsigned pick = fuzz_next(&r) % (TG_NELEM(ids) + 1);
        const char *id = pick < TG_NELEM(ids) ? ids[pick] : NULL;
        unsigned fpick = fuzz_next(&r), spick = fuzz_next(&r);
        char fp[VAL_LEN], ser[VAL_LEN];
        const char *fpp = NULL, *serp = NULL;
        struct tg_policy_peer peer;
        struct ref_peer ref;

        if (fpick % 4 != 3) {
            respell(&r, FP, fps[fpick % 4], fp);
            fpp = fp;
        }
        if (spick % 6 != 5) {
            respell(&r, SER, serials[spick % 6], ser);
            serp = ser;
        }
        if (id != NULL && tg_spiffe_parse(id, &sid, err) != 0)
            abort();
        if (tg_policy_peer_init(&peer, id != NULL ? &sid : NULL, fpp, serp, err) != 0)
            abort();
        ref_peer_init(&ref, id, fpp, serp);
        for (size_t k = 0; k < TG_NELEM(port_vals) + 1; k++) {
            int port = k < TG_NELEM(port_vals) ? port_vals[k] : 9;
            struct tg_policy_verdict v;
            const char *want_rule;
            enum tg_policy_outcome want = ref_decide(&in, &ref, port, &want_rule);

            tg_policy_decide(p, &peer, (uint16_t)port, &v);
            if (v.outcome != want || (want_rule == NULL) != (v.rule == NULL) ||
                (want_rule != NULL && strcmp(want_rule, v.rule) != 0) ||
                v.allow != (want == TG_POLICY_ALLOWED || want == TG_POLICY_DEFAULT_ALLOW)) {
                fprintf(stderr, "fuzz_policy: peer %s port %d: got %d %s, want %d %s\n",
                        id ? id : "-", port, v.outcome, v.rule ? v.rule : "-", want,
                        want_rule ? want_rule : "-");
                abort();
            }
        }
    }
    tg_policy_free(p);
    return 0;
}

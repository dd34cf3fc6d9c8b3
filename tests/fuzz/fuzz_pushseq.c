/* Push sequences: a shadow sidecar in control-plane mode takes a sequence of pushes and
 * identity rotations decoded from the input, through the sidecar's own path -- the frame
 * decoded by tg_cp_client_decode_push (cp_client.c), the resource held in a tg_cp_state, a
 * generation built by tg_gen_build (gen.c: identity, bundle, CRLs, policy, limits, mesh
 * table, settings, both TLS contexts) -- and is checked after every step against a model of
 * what the sidecar must hold.
 *
 * The apply step mirrors on_cp_push/on_cp_cert of control.c (static there): swap the new
 * resource (or chain and key) into the state; with no trust bundle yet, hold it and ACK;
 * otherwise build a generation, and on failure put the old one back and NACK.
 *
 * Steps, 3 bytes each (op, a, b), plus data for some:
 *   op % 5 == 0: a push of type a (2..7) made from variant b of a small table of valid and
 *                invalid resources (resource_variant), version "v<b % 4>";
 *   op % 5 == 1: an identity rotation: a % 4 picks the chain and key (server, client, a chain
 *                with the other's key, garbage);
 *   op % 5 == 2: a raw frame: b bytes of the input, as the control plane could send;
 *   op % 5 == 3: as 0, then the byte at (b * 7) of the frame xor a;
 *   op % 5 == 4: the frame last ACKed for type a again (same content, same version).
 *
 * Model, per resource type (index enum tg_res_type, so a new type needs only a row in
 * resource_variant): the version last ACKed, the frame that carried it, and whether a
 * generation has been built with it. Checked after every step:
 *   - a NACK changes nothing: every held resource, the chain, the key and the published
 *     generation are the very same objects as before;
 *   - an ACK holds the pushed version; the held version of every type is the model's;
 *   - a published generation was built from exactly the held resources (nothing half
 *     applied): gen->pushed[t] == state[t] for every type, after every successful build;
 *   - re-pushing what is held and built (op 4) is accepted.
 * A push held while there is nothing to build with is checked as far as it can be without
 * an identity (tg_gen_check). Counted (TG_FUZZ_STATS=1 prints it): NACKs while something is
 * held unbuilt ("held_then_refused"); nearly all are the pushed resource's own fault (a
 * bundle that does not parse), the rest a held certificate the first bundle refuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "fuzz_certs.h"
#include "../unit/unit_util.h"
#include "tollgate.pb-c.h"
#include "tollgate/cp_client.h"
#include "tollgate/gen.h"
#include "tollgate/tls.h"

#define STEPS_MAX 24
#define FRAME_MAX 8192

static const char CONFIG[] = "control_plane:\n"
                             "  address: 127.0.0.1:1\n"
                             "  ca: ca.pem\n"
                             "  token: token\n"
                             "  server_ids: [\"spiffe://mesh.local/cp\"]\n"
                             "inbound:\n"
                             "  - name: in\n"
                             "    listen: 127.0.0.1:1\n"
                             "    upstream: 127.0.0.1:2\n"
                             "outbound:\n"
                             "  - name: out\n"
                             "    listen: 127.0.0.1:3\n"
                             "    upstream: 127.0.0.1:4\n"
                             "    expect: [\"spiffe://mesh.local/ns/default/sa/server\"]\n";

static struct tg_config *cfg;
static struct tg_identity_key keys[2]; /* server, client: PEM only, as gen.c reads them */
static uint64_t stats[8];
enum { S_ACK, S_NACK, S_HELD, S_BUILT, S_HELD_THEN_REFUSED, S_REPUSH, S_RAW_REASON };

static void print_stats(void)
{
    fprintf(stderr,
            "fuzz_pushseq: ACK %llu (held %llu, built %llu), NACK %llu, held_then_refused %llu, "
            "re-pushes %llu, multi-line reasons from a build %llu\n",
            (unsigned long long)stats[S_ACK], (unsigned long long)stats[S_HELD],
            (unsigned long long)stats[S_BUILT], (unsigned long long)stats[S_NACK],
            (unsigned long long)stats[S_HELD_THEN_REFUSED], (unsigned long long)stats[S_REPUSH],
            (unsigned long long)stats[S_RAW_REASON]);
}

static char *root_pem[1];

static void setup(void)
{
    char err[TG_ERRLEN];

    FUZZ_ONCE();
    if (tg_tls_init() < 0 ||
        tg_config_parse(CONFIG, sizeof(CONFIG) - 1, "fuzz.yaml", &cfg, err) < 0) {
        fuzz_setup_failed("fuzz_pushseq", err);
    }
    keys[0].pem = tg_unconst(FUZZ_SERVER_KEY);
    keys[0].pem_len = strlen(FUZZ_SERVER_KEY);
    keys[1].pem = tg_unconst(FUZZ_CLIENT_KEY);
    keys[1].pem_len = strlen(FUZZ_CLIENT_KEY);
    root_pem[0] = tg_unconst(FUZZ_ROOT_PEM);
    fuzz_stats_at_exit(print_stats);
}

/* ---- pushes made from a table ---- */

/* protobuf-c's strings are char *: writable copies, which outlive the messages */
static char *not_pem[] = {UT_STR("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")};
static char *ids_ok[] = {UT_STR("spiffe://mesh.local/ns/default/sa/client")};
static char *ids_bad[] = {UT_STR("https://mesh.local/x")};
static char *serial_ok[] = {UT_STR("0abc")};
static char *serial_bad[] = {UT_STR("XYZ")};
static char *fpr_bad[] = {UT_STR("abcd")};
static char *suites_ok[] = {UT_STR("TLS13-AES128-GCM-SHA256")};
static char *suites_bad[] = {UT_STR("NULL-MD5")};
static char td_ok[] = "mesh.local", td_other[] = "other.test", td_bad[] = "Bad..Domain";
static char rule_name[] = "r", match_any[] = "*", match_bad[] = "spiffe://[";
static char addr_ok[] = "10.0.0.0/24", addr_bad[] = "999.1.1.1";
static char tls12[] = "1.2", tls11[] = "1.1", tls_default[] = "", nonce[] = "n";
static uint32_t port_ok[] = {443}, port_bad[] = {70000};
static unsigned char crl_junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};

/* Fills p with variant v of a resource of type t (messages in *m, which outlive p). Variant
 * 0 is empty where empty is valid; the others mix valid and invalid values. */
struct msgs {
    Tollgate__V1__TrustBundle tb;
    Tollgate__V1__TrustDomainRoots roots[2], *rootsp[2];
    Tollgate__V1__AuthorizationPolicy ap;
    Tollgate__V1__Rule rule, *rulep[1];
    Tollgate__V1__RateLimits rl;
    Tollgate__V1__Limit limit, *limitp[1];
    Tollgate__V1__Revocations rv;
    ProtobufCBinaryData crl[1];
    Tollgate__V1__MeshTable mt;
    Tollgate__V1__Destination dest, *destp[1];
    Tollgate__V1__ProxySettings ps;
};

/* The one element elem in list (through the pointer array ptrs), n_list 1; in variant 0 of v,
 * the list stays empty. */
#define ONE_UNLESS_VARIANT_0(list, n_list, ptrs, elem, v)                                          \
    do {                                                                                           \
        (ptrs)[0] = (elem);                                                                        \
        if ((v) % 5 != 0) {                                                                        \
            (list) = (ptrs);                                                                       \
            (n_list) = 1;                                                                          \
        }                                                                                          \
    } while (0)

static void resource_variant(Tollgate__V1__Push *p, struct msgs *m, enum tg_res_type t, unsigned v)
{
    switch (t) {
    case TG_RES_TRUST_BUNDLE:
        tollgate__v1__trust_bundle__init(&m->tb);
        for (int i = 0; i < 2; i++) {
            tollgate__v1__trust_domain_roots__init(&m->roots[i]);
            m->rootsp[i] = &m->roots[i];
        }
        m->roots[0].trust_domain = td_ok;
        m->roots[0].n_roots_pem = 1;
        m->roots[0].roots_pem = v % 5 == 3 ? not_pem : root_pem;
        m->roots[1].trust_domain = td_other;
        m->roots[1].n_roots_pem = 1;
        m->roots[1].roots_pem = root_pem;
        m->tb.domains = m->rootsp;
        /* 2: no domain at all; 1: the same root for two domains, refused (a root vouches for
         * one trust domain only) */
        m->tb.n_domains = v % 5 == 2 ? 0 : v % 5 == 1 ? 2 : 1;
        if (v % 5 == 4)
            m->roots[0].trust_domain = td_bad;
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_TRUST_BUNDLE;
        p->trust_bundle = &m->tb;
        break;
    case TG_RES_AUTHORIZATION:
        tollgate__v1__authorization_policy__init(&m->ap);
        tollgate__v1__rule__init(&m->rule);
        m->rule.name = rule_name;
        ONE_UNLESS_VARIANT_0(m->ap.rules, m->ap.n_rules, m->rulep, &m->rule, v);
        m->rule.principals = v % 5 == 2 ? ids_bad : ids_ok;
        m->rule.n_principals = 1;
        if (v % 5 == 3) {
            m->rule.ports = port_bad;
            m->rule.n_ports = 1;
        } else if (v % 5 == 4) {
            m->rule.ports = port_ok;
            m->rule.n_ports = 1;
            m->rule.action = TOLLGATE__V1__RULE_ACTION__RULE_ACTION_DENY;
            m->ap.default_ = TOLLGATE__V1__RULE_ACTION__RULE_ACTION_DENY;
        }
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_AUTHORIZATION;
        p->authorization = &m->ap;
        break;
    case TG_RES_RATE_LIMITS:
        tollgate__v1__rate_limits__init(&m->rl);
        tollgate__v1__limit__init(&m->limit);
        ONE_UNLESS_VARIANT_0(m->rl.limits, m->rl.n_limits, m->limitp, &m->limit, v);
        m->limit.principal = v % 5 == 3 ? match_bad : match_any;
        m->limit.connections_per_second = v % 5 == 2 ? -1.5 : 10;
        m->limit.burst = v % 5 == 4 ? 4000000000u : 5;
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_RATE_LIMITS;
        p->rate_limits = &m->rl;
        break;
    case TG_RES_REVOCATIONS:
        tollgate__v1__revocations__init(&m->rv);
        if (v % 5 == 1 || v % 5 == 2) {
            m->rv.serials = v % 5 == 1 ? serial_ok : serial_bad;
            m->rv.n_serials = 1;
        } else if (v % 5 == 3) {
            m->rv.fingerprints = fpr_bad;
            m->rv.n_fingerprints = 1;
        } else if (v % 5 == 4) {
            m->crl[0] = (ProtobufCBinaryData){sizeof(crl_junk), crl_junk};
            m->rv.crls = m->crl;
            m->rv.n_crls = 1;
        }
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_REVOCATIONS;
        p->revocations = &m->rv;
        break;
    case TG_RES_MESH_TABLE:
        tollgate__v1__mesh_table__init(&m->mt);
        tollgate__v1__destination__init(&m->dest);
        ONE_UNLESS_VARIANT_0(m->mt.destinations, m->mt.n_destinations, m->destp, &m->dest, v);
        m->dest.address = v % 5 == 2 ? addr_bad : addr_ok;
        m->dest.port = 443;
        m->dest.expect = v % 5 == 3 ? ids_bad : ids_ok;
        m->dest.n_expect = v % 5 == 4 ? 0 : 1;
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_MESH_TABLE;
        p->mesh_table = &m->mt;
        break;
    case TG_RES_PROXY_SETTINGS:
        tollgate__v1__proxy_settings__init(&m->ps);
        m->ps.tls_min_version = v % 5 == 1 ? tls12 : v % 5 == 2 ? tls11 : tls_default;
        if (v % 5 == 3) {
            m->ps.tls_cipher_suites = v & 8 ? suites_ok : suites_bad;
            m->ps.n_tls_cipher_suites = 1;
        } else if (v % 5 == 4) {
            m->ps.timeouts_idle_ms = v & 8 ? 1000 : 1ULL << 60;
        }
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_PROXY_SETTINGS;
        p->proxy_settings = &m->ps;
        break;
    default:
        break; /* a push that carries nothing */
    }
}

/* A ServerMessage with a push of type t, variant v, into buf; its length. */
static size_t make_frame(enum tg_res_type t, unsigned v, const char *version, uint8_t *buf)
{
    Tollgate__V1__ServerMessage sm = TOLLGATE__V1__SERVER_MESSAGE__INIT;
    Tollgate__V1__Push p = TOLLGATE__V1__PUSH__INIT;
    struct msgs m;

    memset(&m, 0, sizeof(m));
    p.type = (Tollgate__V1__ResourceType)t;
    p.version = tg_unconst(version);
    p.nonce = nonce;
    resource_variant(&p, &m, t, v);
    sm.msg_case = TOLLGATE__V1__SERVER_MESSAGE__MSG_PUSH;
    sm.push = &p;
    if (tollgate__v1__server_message__get_packed_size(&sm) > FRAME_MAX)
        abort();
    return tollgate__v1__server_message__pack(&sm, buf);
}

/* ---- the shadow sidecar and the model ---- */

struct shadow {
    struct tg_cp_state cps;
    const char *chain; /* NULL: none yet */
    const struct tg_identity_key *key;
    struct tg_gen *gen; /* the published generation */
};

struct model {
    char version[TG_RES_N][129];
    uint8_t frame[TG_RES_N][FRAME_MAX];
    size_t frame_len[TG_RES_N];
    bool built[TG_RES_N]; /* a generation has been built with what is held */
};

static void input_of(struct shadow *s, struct tg_gen_input *in)
{
    *in = (struct tg_gen_input){
        .cfg = cfg,
        .chain_pem = s->chain,
        .chain_len = s->chain != NULL ? strlen(s->chain) : 0,
        .key = s->key,
        .cp = &s->cps,
        .prev_limits = s->gen != NULL ? s->gen->limits : NULL, /* as control.c: buckets stay */
    };
}

static int build(struct shadow *s, struct tg_gen **out, char *err)
{
    struct tg_gen_input in;

    input_of(s, &in);
    return tg_gen_build(&in, out, err);
}

static void publish(struct shadow *s, struct model *m, struct tg_gen *g)
{
    tg_gen_unref(s->gen);
    s->gen = g;
    stats[S_BUILT]++;
    for (int t = 0; t < TG_RES_N; t++) {
        if (g->pushed[t] != s->cps.res[t])
            abort(); /* the generation must be made of exactly what is held */
        m->built[t] = true;
    }
}

/* on_cp_push of control.c, through the same tg_gen_apply_push. Takes res. 0 (ACK) or
 * negative (NACK). */
static int apply_push(struct shadow *s, struct model *m, struct tg_resource *res,
                      const char *version, char *err)
{
    enum tg_res_type t = res->type;
    bool can_build =
        s->chain != NULL && (s->cps.res[TG_RES_TRUST_BUNDLE] != NULL || t == TG_RES_TRUST_BUNDLE);
    struct tg_gen_input in;
    struct tg_cp_res *p;
    struct tg_gen *g = NULL;
    int rc;

    if ((p = tg_cp_res_new(res, version)) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    input_of(s, &in);
    if ((rc = tg_gen_apply_push(&in, p, can_build, &g, err)) < 0)
        return rc;
    if (!can_build) {
        m->built[t] = false;
        stats[S_HELD]++;
        return 0;
    }
    publish(s, m, g);
    return 0;
}

/* on_cp_cert of control.c, with chain and key already checked for being what we asked. */
static int apply_cert(struct shadow *s, struct model *m, const char *chain,
                      const struct tg_identity_key *key, char *err)
{
    const char *old_chain = s->chain;
    const struct tg_identity_key *old_key = s->key;
    struct tg_gen *g;
    int rc;

    s->chain = chain;
    s->key = key;
    if (s->cps.res[TG_RES_TRUST_BUNDLE] == NULL) {
        stats[S_HELD]++;
        return 0;
    }
    if ((rc = build(s, &g, err)) < 0) {
        s->chain = old_chain;
        s->key = old_key;
        return rc;
    }
    publish(s, m, g);
    return 0;
}

/* Everything a NACK must leave as it was. */
struct snapshot {
    struct tg_cp_res *res[TG_RES_N];
    const char *chain;
    const struct tg_identity_key *key;
    struct tg_gen *gen;
};

static void take(const struct shadow *s, struct snapshot *x)
{
    memcpy(x->res, s->cps.res, sizeof(x->res));
    x->chain = s->chain;
    x->key = s->key;
    x->gen = s->gen;
}

/* A refusal says why, in one line. The reasons of a build may quote pushed bytes, which
 * cp_client makes one line before the NACK and the log (one_line): counted, not fatal. */
static void check_err(const char *err, bool from_build)
{
    size_t n = strnlen(err, TG_ERRLEN);

    if (from_build && n > 0 && n < TG_ERRLEN && memchr(err, '\n', n) != NULL) {
        if (stats[S_RAW_REASON]++ == 0 && getenv("TG_FUZZ_STATS") != NULL)
            fprintf(stderr, "fuzz_pushseq: first multi-line reason: \"%s\"\n", err);
        return;
    }
    if (n == 0 || n == TG_ERRLEN || memchr(err, '\n', n) != NULL) {
        fprintf(stderr, "fuzz_pushseq: a refusal must say why in one line: \"%.*s\"\n", (int)n,
                err);
        abort();
    }
}

/* The version a tg_cp_res holds, against the one pushed: as much as it has room for (all of
 * the 128 bytes cp_client accepts). */
static bool same_version(const char *held, const char *pushed)
{
    return strncmp(held, pushed, sizeof(((struct tg_cp_res *)0)->version) - 1) == 0;
}

/* A refusal of type t while another type's resource was ACKed without a build. */
static void note_held_then_refused(const struct shadow *s, const struct model *m,
                                   enum tg_res_type t)
{
    for (int u = TG_RES_TRUST_BUNDLE; u < TG_RES_N; u++) {
        if (u != (int)t && s->cps.res[u] != NULL && !m->built[u]) {
            stats[S_HELD_THEN_REFUSED]++;
            return;
        }
    }
}

/* One push frame through decode and apply; the model follows. */
static void push(struct shadow *s, struct model *m, const uint8_t *frame, size_t len, bool repush)
{
    struct tg_resource *r = NULL;
    struct snapshot before;
    char version[129], err[TG_ERRLEN] = "";
    bool had_bundle = s->cps.res[TG_RES_TRUST_BUNDLE] != NULL, all_built = s->gen != NULL;
    enum tg_res_type t;
    int rc;

    take(s, &before);
    for (int u = 0; u < TG_RES_N; u++)
        all_built = all_built && (s->cps.res[u] == NULL || m->built[u]);
    if (tg_cp_client_decode_push(frame, len, &r, version, sizeof(version), err) < 0) {
        check_err(err, false);
        if (r != NULL || memcmp(&before.res, s->cps.res, sizeof(before.res)) != 0)
            abort();
        stats[S_NACK]++;
        return;
    }
    t = r->type;
    rc = apply_push(s, m, r, version, err);
    if (rc < 0) {
        struct snapshot after;

        check_err(err, true);
        take(s, &after);
        if (memcmp(&before, &after, sizeof(before)) != 0)
            abort(); /* a NACK must leave everything as it was */
        if (repush && all_built)
            abort(); /* what was held and built, pushed again, must be accepted */
        if (!had_bundle || t == TG_RES_TRUST_BUNDLE)
            note_held_then_refused(s, m, t);
        stats[S_NACK]++;
        return;
    }
    stats[S_ACK]++;
    if (s->cps.res[t] == NULL || !same_version(s->cps.res[t]->version, version))
        abort();
    snprintf(m->version[t], sizeof(m->version[t]), "%s", version);
    memcpy(m->frame[t], frame, len);
    m->frame_len[t] = len;
}

static void check_model(const struct shadow *s, const struct model *m)
{
    for (int t = 0; t < TG_RES_N; t++) {
        const char *held = s->cps.res[t] != NULL ? s->cps.res[t]->version : "";

        if (!same_version(held, m->version[t]))
            abort();
    }
    if (s->gen != NULL && s->chain == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *chains[4] = {
        FUZZ_SERVER_CHAIN, FUZZ_CLIENT_CHAIN, FUZZ_SERVER_CHAIN,
        "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"};
    static uint8_t frame[FRAME_MAX];
    static struct model m;
    struct shadow s = {0};
    size_t at = 0;

    setup();
    memset(&m, 0, sizeof(m));
    for (int step = 0; step < STEPS_MAX && at + 3 <= size; step++) {
        unsigned op = data[at] % 5, a = data[at + 1], b = data[at + 2];
        enum tg_res_type t = (enum tg_res_type)(TG_RES_TRUST_BUNDLE + a % (TG_RES_N - 2));
        char version[8], err[TG_ERRLEN] = "";
        size_t len;

        at += 3;
        snprintf(version, sizeof(version), "v%u", b % 4);
        switch (op) {
        case 0:
            len = make_frame(t, b, version, frame);
            push(&s, &m, frame, len, false);
            break;
        case 1: {
            struct snapshot before, after;
            const char *chain = chains[a % 4];
            const struct tg_identity_key *key = &keys[a % 4 == 1 || a % 4 == 2];

            take(&s, &before);
            if (apply_cert(&s, &m, chain, key, err) < 0) {
                check_err(err, true);
                note_held_then_refused(&s, &m, TG_RES_IDENTITY);
                take(&s, &after);
                if (memcmp(&before, &after, sizeof(before)) != 0)
                    abort();
                stats[S_NACK]++;
            } else {
                stats[S_ACK]++;
            }
            break;
        }
        case 2:
            len = b < size - at ? b : size - at;
            push(&s, &m, data + at, len, false);
            at += len;
            break;
        case 3:
            len = make_frame(t, b, version, frame);
            frame[(b * 7) % len] ^= (uint8_t)(a | 1);
            push(&s, &m, frame, len, false);
            break;
        default:
            if (m.frame_len[t] > 0) {
                memcpy(frame, m.frame[t], m.frame_len[t]);
                stats[S_REPUSH]++;
                push(&s, &m, frame, m.frame_len[t], true);
            }
        }
        check_model(&s, &m);
    }
    tg_gen_unref(s.gen);
    for (int t = 0; t < TG_RES_N; t++)
        tg_cp_res_unref(s.cps.res[t]);
    return 0;
}

/* tg_policy_*: authorization rules, revocation and their compile-time checks. */
#include <check.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/policy.h"

#define STRS(...)                                                                                  \
    {                                                                                              \
        (const char *const[]){__VA_ARGS__}, TG_NELEM(((const char *const[]){__VA_ARGS__}))         \
    }
#define PORTS(...)                                                                                 \
    {                                                                                              \
        (const int[]){__VA_ARGS__}, TG_NELEM(((const int[]){__VA_ARGS__}))                         \
    }
#define RULES(...)                                                                                 \
    (const struct tg_policy_rule[]){__VA_ARGS__},                                                  \
        TG_NELEM(((const struct tg_policy_rule[]){__VA_ARGS__}))
#define LABELS(...)                                                                                \
    (const struct tg_policy_label[]){__VA_ARGS__},                                                 \
        TG_NELEM(((const struct tg_policy_label[]){__VA_ARGS__}))

#define FP_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define FP_A_COLONS                                                                                \
    "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:"   \
    "EE:FF"
#define FP_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

#define WEB_ID "spiffe://mesh.local/ns/prod/sa/web"
#define DB_ID "spiffe://mesh.local/ns/prod/sa/db"

/* The callers the table uses. */
enum { WEB, DB, DEV, OTHER, NONS, NOID, PLAIN };
static const struct {
    const char *id, *sha256, *serial;
} peers[] = {
    [WEB] = {WEB_ID, FP_A, "0a1b"},
    [DB] = {DB_ID, FP_B, "01"},
    [DEV] = {"spiffe://mesh.local/ns/dev/sa/web", NULL, "02"},
    [OTHER] = {"spiffe://other.org/ns/prod/sa/web", NULL, NULL},
    [NONS] = {"spiffe://mesh.local/job/batch", NULL, NULL},
    [NOID] = {NULL, FP_B, NULL},
    [PLAIN] = {NULL, NULL, NULL}, /* a plain-text caller: no certificate at all */
};

/* One ALLOW rule, named a, of the conditions given: what most cases ask about. */
#define RULE_A(...) RULES({.name = "a", __VA_ARGS__})
/* DENY web as rule d, for workloads of the scope given (kind, namespace, labels). */
#define DENY_WEB_SCOPED(...)                                                                       \
    RULES({.name = "d",                                                                            \
           .action = TG_POLICY_DENY,                                                               \
           .principals = STRS(WEB_ID),                                                             \
           .scope = {__VA_ARGS__}})

/* Conditions in three fields that web meets. */
#define WEB_MEETS                                                                                  \
    .principals = STRS("spiffe://mesh.local/*"), .namespaces = STRS("prod"),                       \
    .fingerprints = STRS(FP_A)

/* Rule sets that several cases ask about. */
#define DB_ON_8080 RULE_A(.principals = STRS(DB_ID), .ports = PORTS(8080))
#define DB_NOT_ON_9090 RULE_A(.principals = STRS(DB_ID), .not_ports = PORTS(9090))
#define DENY_22 RULES({.name = "d", .action = TG_POLICY_DENY, .ports = PORTS(22)})
#define DENY_DB RULES({.name = "d", .action = TG_POLICY_DENY, .principals = STRS(DB_ID)})
#define ALL_BUT_WEB                                                                                \
    RULES({.name = "all", .trust_domains = STRS("mesh.local")},                                    \
          {.name = "no-web", .action = TG_POLICY_DENY, .principals = STRS(WEB_ID)})

/* The workload the rules are compiled for. */
static const struct tg_policy_label workload_labels[] = {{"app", "web"}, {"tier", "front"}};

static const struct {
    const char *what;
    const struct tg_policy_rule *rules;
    size_t n_rules;
    bool default_deny;
    int peer;
    uint16_t port;
    enum tg_policy_outcome want;
    const char *rule; /* deciding rule, NULL for the defaults */
} cases[] = {
    /* principals: exact, prefix, suffix, any, not_ */
    {"exact principal", RULE_A(.principals = STRS(WEB_ID)), false, WEB, 80, TG_POLICY_ALLOWED, "a"},
    {"exact principal, other peer", RULE_A(.principals = STRS(WEB_ID)), false, DB, 80,
     TG_POLICY_NO_MATCH, NULL},
    {"exact principal, no ID", RULE_A(.principals = STRS(WEB_ID)), false, NOID, 80,
     TG_POLICY_NO_MATCH, NULL},
    {"prefix principal", RULE_A(.principals = STRS("spiffe://mesh.local/ns/prod/*")), false, DB, 80,
     TG_POLICY_ALLOWED, "a"},
    {"prefix principal, other ns", RULE_A(.principals = STRS("spiffe://mesh.local/ns/prod/*")),
     false, DEV, 80, TG_POLICY_NO_MATCH, NULL},
    {"nested prefixes",
     RULES({.name = "a", .principals = STRS("spiffe://mesh.local/ns/prod/sa/x*")},
           {.name = "b", .principals = STRS("spiffe://mesh.local/*")},
           {.name = "c", .principals = STRS("spiffe://mesh.local/ns/p*")}),
     false, WEB, 80, TG_POLICY_ALLOWED, "b"},
    {"suffix principal", RULE_A(.principals = STRS("*/sa/web")), false, DEV, 80, TG_POLICY_ALLOWED,
     "a"},
    {"suffix principal, other sa", RULE_A(.principals = STRS("*/sa/web")), false, DB, 80,
     TG_POLICY_NO_MATCH, NULL},
    {"any principal", RULE_A(.principals = STRS("*")), false, OTHER, 80, TG_POLICY_ALLOWED, "a"},
    {"any principal needs an ID", RULE_A(.principals = STRS("*")), false, NOID, 80,
     TG_POLICY_NO_MATCH, NULL},
    {"not_principals, listed", RULE_A(.not_principals = STRS(WEB_ID)), false, WEB, 80,
     TG_POLICY_NO_MATCH, NULL},
    {"not_principals, unlisted", RULE_A(.not_principals = STRS(WEB_ID)), false, DB, 80,
     TG_POLICY_ALLOWED, "a"},
    {"not_principals, no ID", RULE_A(.not_principals = STRS("*")), false, NOID, 80,
     TG_POLICY_ALLOWED, "a"},
    {"not_principals prefix", RULE_A(.not_principals = STRS("spiffe://mesh.local/*")), false, OTHER,
     80, TG_POLICY_ALLOWED, "a"},
    /* namespaces */
    {"namespace", RULE_A(.namespaces = STRS("prod")), false, WEB, 80, TG_POLICY_ALLOWED, "a"},
    {"namespace, other", RULE_A(.namespaces = STRS("prod")), false, DEV, 80, TG_POLICY_NO_MATCH,
     NULL},
    {"namespace, ID without one", RULE_A(.namespaces = STRS("*")), false, NONS, 80,
     TG_POLICY_NO_MATCH, NULL},
    {"namespace prefix", RULE_A(.namespaces = STRS("pr*")), false, OTHER, 80, TG_POLICY_ALLOWED,
     "a"},
    {"namespace suffix", RULE_A(.namespaces = STRS("*ev")), false, DEV, 80, TG_POLICY_ALLOWED, "a"},
    {"not_namespaces", RULE_A(.not_namespaces = STRS("dev")), false, DEV, 80, TG_POLICY_NO_MATCH,
     NULL},
    {"not_namespaces, ID without one", RULE_A(.not_namespaces = STRS("dev")), false, NONS, 80,
     TG_POLICY_ALLOWED, "a"},
    /* trust domains */
    {"trust domain", RULE_A(.trust_domains = STRS("mesh.local")), false, NONS, 80,
     TG_POLICY_ALLOWED, "a"},
    {"trust domain, other", RULE_A(.trust_domains = STRS("mesh.local")), false, OTHER, 80,
     TG_POLICY_NO_MATCH, NULL},
    {"trust domain suffix", RULE_A(.trust_domains = STRS("*.org")), false, OTHER, 80,
     TG_POLICY_ALLOWED, "a"},
    {"trust domain is not a prefix match", RULE_A(.trust_domains = STRS("mesh.loc")), false, WEB,
     80, TG_POLICY_NO_MATCH, NULL},
    {"not_trust_domains", RULE_A(.not_trust_domains = STRS("other.org")), false, OTHER, 80,
     TG_POLICY_NO_MATCH, NULL},
    /* fingerprints, in any accepted spelling */
    {"fingerprint", RULE_A(.fingerprints = STRS(FP_A)), false, WEB, 80, TG_POLICY_ALLOWED, "a"},
    {"fingerprint, colons and upper case", RULE_A(.fingerprints = STRS(FP_A_COLONS)), false, WEB,
     80, TG_POLICY_ALLOWED, "a"},
    {"fingerprint, other", RULE_A(.fingerprints = STRS(FP_A)), false, DB, 80, TG_POLICY_NO_MATCH,
     NULL},
    {"fingerprint, unknown", RULE_A(.fingerprints = STRS(FP_A)), false, DEV, 80, TG_POLICY_NO_MATCH,
     NULL},
    {"fingerprint without an ID", RULE_A(.fingerprints = STRS(FP_B)), false, NOID, 80,
     TG_POLICY_ALLOWED, "a"},
    {"not_fingerprints", RULE_A(.not_fingerprints = STRS(FP_A_COLONS)), false, WEB, 80,
     TG_POLICY_NO_MATCH, NULL},
    {"not_fingerprints, unknown", RULE_A(.not_fingerprints = STRS(FP_A)), false, DEV, 80,
     TG_POLICY_ALLOWED, "a"},
    /* serials: leading zeros, case, colons, 0x */
    {"serial", RULE_A(.serials = STRS("0x000A1B")), false, WEB, 80, TG_POLICY_ALLOWED, "a"},
    {"serial with colons", RULE_A(.serials = STRS("00:0a:1b")), false, WEB, 80, TG_POLICY_ALLOWED,
     "a"},
    {"serial, other", RULE_A(.serials = STRS("a1b0")), false, WEB, 80, TG_POLICY_NO_MATCH, NULL},
    {"not_serials", RULE_A(.not_serials = STRS("1")), false, DB, 80, TG_POLICY_NO_MATCH, NULL},
    {"not_serials, unlisted", RULE_A(.not_serials = STRS("1")), false, WEB, 80, TG_POLICY_ALLOWED,
     "a"},
    /* ports: an ALLOW rule only counts on the ports it names */
    {"port-scoped allow, right peer", RULE_A(.principals = STRS(DB_ID), .ports = PORTS(8080, 8443)),
     false, DB, 8443, TG_POLICY_ALLOWED, "a"},
    {"port-scoped allow, wrong peer", DB_ON_8080, false, WEB, 8080, TG_POLICY_NO_MATCH, NULL},
    {"port-scoped allow, other port", DB_ON_8080, false, WEB, 9090, TG_POLICY_DEFAULT_ALLOW, NULL},
    {"port-scoped allow, other port, default deny", DB_ON_8080, true, WEB, 9090,
     TG_POLICY_DEFAULT_DENY, NULL},
    {"not_ports allow, excluded port", DB_NOT_ON_9090, false, WEB, 9090, TG_POLICY_DEFAULT_ALLOW,
     NULL},
    {"not_ports allow, other port", DB_NOT_ON_9090, false, WEB, 8080, TG_POLICY_NO_MATCH, NULL},
    {"two not_ports allows cover each other's port",
     RULES({.name = "a", .principals = STRS(DB_ID), .not_ports = PORTS(9090)},
           {.name = "b", .principals = STRS(DB_ID), .not_ports = PORTS(8080)}),
     false, WEB, 9090, TG_POLICY_NO_MATCH, NULL},
    {"ports and not_ports together",
     RULES(
         {.name = "a", .principals = STRS(DB_ID), .ports = PORTS(80, 81), .not_ports = PORTS(81)}),
     false, WEB, 81, TG_POLICY_DEFAULT_ALLOW, NULL},
    {"ports-only allow", RULE_A(.ports = PORTS(8080)), false, NOID, 8080, TG_POLICY_ALLOWED, "a"},
    {"ports-only deny", DENY_22, false, WEB, 22, TG_POLICY_DENIED, "d"},
    {"ports-only deny, other port", DENY_22, false, WEB, 23, TG_POLICY_DEFAULT_ALLOW, NULL},
    {"any principal on a port", RULE_A(.principals = STRS("*"), .ports = PORTS(80)), false, WEB, 80,
     TG_POLICY_ALLOWED, "a"},
    /* every field must match */
    {"all fields match",
     RULE_A(WEB_MEETS, .serials = STRS("a1b"), .ports = PORTS(80), .not_principals = STRS(DB_ID)),
     false, WEB, 80, TG_POLICY_ALLOWED, "a"},
    {"one field fails", RULE_A(WEB_MEETS, .serials = STRS("a1c"), .ports = PORTS(80)), false, WEB,
     80, TG_POLICY_NO_MATCH, NULL},
    {"a not_ field fails",
     RULES(
         {.name = "a", .principals = STRS("spiffe://mesh.local/*"), .not_namespaces = STRS("p*")}),
     false, WEB, 80, TG_POLICY_NO_MATCH, NULL},
    {"any value of a field", RULE_A(.principals = STRS(DB_ID, "*/sa/web", "spiffe://x*")), false,
     WEB, 80, TG_POLICY_ALLOWED, "a"},
    /* DENY before ALLOW; the first rule in input order reports */
    {"deny over allow", ALL_BUT_WEB, false, WEB, 80, TG_POLICY_DENIED, "no-web"},
    {"deny does not hit others", ALL_BUT_WEB, false, DB, 80, TG_POLICY_ALLOWED, "all"},
    {"first deny reports",
     RULES({.name = "d1", .action = TG_POLICY_DENY, .principals = STRS("*/web")},
           {.name = "d0", .action = TG_POLICY_DENY, .fingerprints = STRS(FP_A)},
           {.name = "d2", .action = TG_POLICY_DENY, .not_namespaces = STRS("x")}),
     false, WEB, 80, TG_POLICY_DENIED, "d1"},
    {"first allow reports",
     RULES({.name = "a2", .not_principals = STRS(DB_ID)}, {.name = "a1", .serials = STRS("a1b")},
           {.name = "a0", .principals = STRS(WEB_ID)}),
     false, WEB, 80, TG_POLICY_ALLOWED, "a2"},
    {"only deny rules, none matches", DENY_DB, false, WEB, 80, TG_POLICY_DEFAULT_ALLOW, NULL},
    {"only deny rules, default deny", DENY_DB, true, WEB, 80, TG_POLICY_DEFAULT_DENY, NULL},
    {"no rules", NULL, 0, false, WEB, 80, TG_POLICY_DEFAULT_ALLOW, NULL},
    {"no rules, default deny", NULL, 0, true, WEB, 80, TG_POLICY_DEFAULT_DENY, NULL},
    /* scope: rules for other workloads are dropped */
    {"namespace scope, ours", DENY_WEB_SCOPED(TG_POLICY_SCOPE_NAMESPACE, "prod", NULL, 0), false,
     WEB, 80, TG_POLICY_DENIED, "d"},
    {"namespace scope, other", DENY_WEB_SCOPED(TG_POLICY_SCOPE_NAMESPACE, "dev", NULL, 0), false,
     WEB, 80, TG_POLICY_DEFAULT_ALLOW, NULL},
    {"workload scope, labels we carry",
     DENY_WEB_SCOPED(TG_POLICY_SCOPE_WORKLOAD, NULL, LABELS({"tier", "front"}, {"app", "web"})),
     false, WEB, 80, TG_POLICY_DENIED, "d"},
    {"workload scope, a label we lack",
     DENY_WEB_SCOPED(TG_POLICY_SCOPE_WORKLOAD, NULL, LABELS({"app", "web"}, {"tier", "back"})),
     false, WEB, 80, TG_POLICY_DEFAULT_ALLOW, NULL},
    {"workload scope, other namespace",
     DENY_WEB_SCOPED(TG_POLICY_SCOPE_WORKLOAD, "dev", LABELS({"app", "web"})), false, WEB, 80,
     TG_POLICY_DEFAULT_ALLOW, NULL},
    {"workload scope, our namespace",
     DENY_WEB_SCOPED(TG_POLICY_SCOPE_WORKLOAD, "prod", LABELS({"app", "web"})), false, WEB, 80,
     TG_POLICY_DENIED, "d"},
    {"a dropped allow leaves no allow rule",
     RULES({.name = "a",
            .principals = STRS(DB_ID),
            .scope = {TG_POLICY_SCOPE_WORKLOAD, NULL, LABELS({"app", "db"})}}),
     false, WEB, 80, TG_POLICY_DEFAULT_ALLOW, NULL},
    /* a plain-text caller (permissive port): an unauthenticated source as Istio defines it.
     * Fields that name identities never match it, "*" included; their not_ forms always do;
     * a rule that names no identity (ports only) matches it like anyone. */
    {"plain: principal", RULE_A(.principals = STRS(WEB_ID)), false, PLAIN, 80, TG_POLICY_NO_MATCH,
     NULL},
    {"plain: any principal", RULE_A(.principals = STRS("*")), false, PLAIN, 80, TG_POLICY_NO_MATCH,
     NULL},
    {"plain: principal prefix", RULE_A(.principals = STRS("spiffe://*")), false, PLAIN, 80,
     TG_POLICY_NO_MATCH, NULL},
    {"plain: namespace", RULE_A(.namespaces = STRS("*")), false, PLAIN, 80, TG_POLICY_NO_MATCH,
     NULL},
    {"plain: trust domain", RULE_A(.trust_domains = STRS("*")), false, PLAIN, 80,
     TG_POLICY_NO_MATCH, NULL},
    {"plain: fingerprint", RULE_A(.fingerprints = STRS(FP_A)), false, PLAIN, 80, TG_POLICY_NO_MATCH,
     NULL},
    {"plain: serial", RULE_A(.serials = STRS("0a1b")), false, PLAIN, 80, TG_POLICY_NO_MATCH, NULL},
    {"plain: deny any principal does not match",
     RULES({.name = "d", .action = TG_POLICY_DENY, .principals = STRS("*")}), false, PLAIN, 80,
     TG_POLICY_DEFAULT_ALLOW, NULL},
    {"plain: deny not_principals any (require mTLS)",
     RULES({.name = "d", .action = TG_POLICY_DENY, .not_principals = STRS("*")},
           {.name = "a", .ports = PORTS(80)}),
     false, PLAIN, 80, TG_POLICY_DENIED, "d"},
    {"plain: allow not_principals any (unauthenticated only)", RULE_A(.not_principals = STRS("*")),
     true, PLAIN, 80, TG_POLICY_ALLOWED, "a"},
    {"plain: not_namespaces matches (ISTIO-SECURITY-2021-004)",
     RULE_A(.not_namespaces = STRS("dev")), false, PLAIN, 80, TG_POLICY_ALLOWED, "a"},
    {"plain: not_trust_domains, not_fingerprints, not_serials match",
     RULES({.name = "a",
            .not_trust_domains = STRS("mesh.local"),
            .not_fingerprints = STRS(FP_A),
            .not_serials = STRS("1")}),
     false, PLAIN, 80, TG_POLICY_ALLOWED, "a"},
    {"plain: ports only", RULE_A(.ports = PORTS(80)), true, PLAIN, 80, TG_POLICY_ALLOWED, "a"},
    {"plain: default deny", RULE_A(.ports = PORTS(81)), true, PLAIN, 80, TG_POLICY_DEFAULT_DENY,
     NULL},
    {"plain: mixed rule needs its identity field too",
     RULE_A(.ports = PORTS(80), .principals = STRS("*")), false, PLAIN, 80, TG_POLICY_NO_MATCH,
     NULL},
};

static void peer_of(int i, struct tg_spiffe_id *id, struct tg_policy_peer *peer)
{
    char err[TG_ERRLEN] = "";

    if (peers[i].id != NULL)
        ck_assert_int_eq(tg_spiffe_parse(peers[i].id, id, err), 0);
    ck_assert_msg(tg_policy_peer_init(peer, peers[i].id != NULL ? id : NULL, peers[i].sha256,
                                      peers[i].serial, err) == 0,
                  "peer %d: %s", i, err);
}

static const char *const outcome_names[] = {"revoked",      "denied",  "no-match",
                                            "default-deny", "allowed", "default-allow"};

/* p compiled from in; the test fails if it does not compile. */
static struct tg_policy *compiled(const struct tg_policy_input *in)
{
    struct tg_policy *p;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(tg_policy_compile(in, &p, err) == 0, "%s", err);
    return p;
}

/* The verdict of p for peers[who] calling port. */
static struct tg_policy_verdict decide(const struct tg_policy *p, int who, uint16_t port)
{
    static struct tg_spiffe_id id; /* the peer points into it */
    struct tg_policy_peer peer;
    struct tg_policy_verdict v;

    peer_of(who, &id, &peer);
    tg_policy_decide(p, &peer, port, &v);
    return v;
}

START_TEST(test_policy_decide_table)
{
    struct tg_policy_input in = {
        .workload_ns = "prod",
        .workload_labels = workload_labels,
        .n_workload_labels = TG_NELEM(workload_labels),
        .rules = cases[_i].rules,
        .n_rules = cases[_i].n_rules,
        .default_deny = cases[_i].default_deny,
    };
    struct tg_policy_verdict v;
    struct tg_policy *p = NULL;
    char err[TG_ERRLEN] = "";
    char want_reason[128];

    ck_assert_msg(tg_policy_compile(&in, &p, err) == 0, "%s: %s", cases[_i].what, err);
    v = decide(p, cases[_i].peer, cases[_i].port);
    ck_assert_msg(v.outcome == cases[_i].want, "%s: got %s (%s), want %s", cases[_i].what,
                  outcome_names[v.outcome], v.reason, outcome_names[cases[_i].want]);
    ck_assert_int_eq(v.allow, cases[_i].want == TG_POLICY_ALLOWED ||
                                  cases[_i].want == TG_POLICY_DEFAULT_ALLOW);
    if (cases[_i].rule == NULL) {
        ck_assert_ptr_null(v.rule);
    } else {
        ck_assert_ptr_nonnull(v.rule);
        ck_assert_str_eq(v.rule, cases[_i].rule);
        snprintf(want_reason, sizeof(want_reason), "%s by rule %s", v.allow ? "allowed" : "denied",
                 cases[_i].rule);
        ck_assert_str_eq(v.reason, want_reason);
    }
    tg_policy_free(p);
}
END_TEST

START_TEST(test_policy_reasons)
{
    const struct tg_policy_rule rules[] = {
        {.name = "a", .principals = STRS(DB_ID), .ports = PORTS(80)},
    };
    struct tg_policy_input in = {.rules = rules, .n_rules = 1};
    struct tg_policy *p = compiled(&in);
    struct tg_policy_verdict v;

    ck_assert_str_eq(decide(p, WEB, 80).reason, "no ALLOW rule matched");
    ck_assert_str_eq(decide(p, WEB, 81).reason, "default allow");
    ck_assert_str_eq(decide(p, DB, 80).reason, "allowed by rule a");
    tg_policy_free(p);

    in.n_rules = 0;
    in.default_deny = true;
    p = compiled(&in);
    v = decide(p, DB, 80);
    ck_assert_str_eq(v.reason, "default deny");
    ck_assert(!v.allow);
    tg_policy_free(p);
}
END_TEST

START_TEST(test_policy_revocation)
{
    const struct tg_policy_rule rules[] = {
        {.name = "all", .trust_domains = STRS("*")},
    };
    struct tg_policy_input in = {
        .rules = rules,
        .n_rules = 1,
        .revoked_serials = STRS("0x0A:1B", "ff"),
        .revoked_fingerprints =
            STRS("FFEEDDCCBBAA99887766554433221100FFEEDDCCBBAA99887766554433221100"),
    };
    struct tg_policy *p = compiled(&in);
    struct tg_policy_verdict v = decide(p, WEB, 80); /* serial 0a1b */

    ck_assert_int_eq(v.outcome, TG_POLICY_REVOKED);
    ck_assert(!v.allow);
    ck_assert_ptr_null(v.rule);
    ck_assert_str_eq(v.reason, "revoked");
    /* fingerprint FP_B, no ID */
    ck_assert_int_eq(decide(p, NOID, 80).outcome, TG_POLICY_REVOKED);
    ck_assert_int_eq(decide(p, DEV, 80).outcome, TG_POLICY_ALLOWED);
    tg_policy_free(p);
}
END_TEST

/* Revocation wins even over a default allow with no rules. */
START_TEST(test_policy_revocation_without_rules)
{
    struct tg_policy_input in = {.revoked_serials = STRS("1")};
    struct tg_policy *p = compiled(&in);

    ck_assert_uint_eq(tg_policy_rule_count(p), 0);
    ck_assert_int_eq(decide(p, DB, 80).outcome, TG_POLICY_REVOKED);
    tg_policy_free(p);
}
END_TEST

START_TEST(test_policy_scope_drops_rules)
{
    static const struct tg_policy_label app_web[] = {{"app", "web"}};
    const struct tg_policy_rule rules[] = {
        {.name = "mesh", .principals = STRS("*")},
        {.name = "prod", .principals = STRS("*"), .scope = {TG_POLICY_SCOPE_NAMESPACE, "prod"}},
        {.name = "dev", .principals = STRS("*"), .scope = {TG_POLICY_SCOPE_NAMESPACE, "dev"}},
        {.name = "web",
         .principals = STRS("*"),
         .scope = {TG_POLICY_SCOPE_WORKLOAD, NULL, app_web, 1}},
    };
    struct tg_policy_input in = {.rules = rules, .n_rules = TG_NELEM(rules)};
    struct tg_policy *p;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_policy_compile(&in, &p, err), 0); /* no namespace, no labels */
    ck_assert_uint_eq(tg_policy_rule_count(p), 1);
    tg_policy_free(p);
    in.workload_ns = "prod";
    in.workload_labels = workload_labels;
    in.n_workload_labels = TG_NELEM(workload_labels);
    ck_assert_int_eq(tg_policy_compile(&in, &p, err), 0);
    ck_assert_uint_eq(tg_policy_rule_count(p), 3);
    tg_policy_free(p);
}
END_TEST

/* why: a substring of the error; every error names the rule and the field. */
static const struct {
    const struct tg_policy_rule *rules;
    size_t n_rules;
    const char *why;
} bad_cases[] = {
    {RULES({.name = "r", .fingerprints = STRS("00112233")}),
     "rule \"r\": fingerprints[0] \"00112233\": not a SHA-256 fingerprint"},
    {RULES({.name = "r",
            .not_fingerprints =
                STRS(FP_A, "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")}),
     "rule \"r\": not_fingerprints[1] \"zz1122"},
    {RULES({.name = "r",
            .fingerprints = STRS("00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:"
                                 "55:66:77:88:99:AA:BB:CC:DD:EE-FF")}),
     "'-' at byte 92"},
    {RULES({.name = "r", .fingerprints = STRS("*")}), "not a SHA-256 fingerprint"},
    {RULES({.name = "r", .serials = STRS("12g4")}),
     "rule \"r\": serials[0] \"12g4\": not a hex serial: 'g'"},
    {RULES({.name = "r", .serials = STRS(":12")}), "not a hex serial: ':' at byte 0"},
    {RULES({.name = "r", .serials = STRS("12::34")}), "':' at byte 3"},
    {RULES({.name = "r", .serials = STRS("0x")}), "no digits"},
    {RULES({.name = "r", .not_serials = STRS("")}), "rule \"r\": not_serials[0] \"\": empty value"},
    {RULES({.name = "r",
            .serials = STRS("11111111111111111111111111111111111111111111111111111111111111111")}),
     "over 64 significant digits"},
    {RULES({.name = "r", .principals = STRS("spiffe://Mesh.local/a")}),
     "rule \"r\": principals[0] \"spiffe://Mesh.local/a\": trust domain must be lowercase"},
    {RULES({.name = "r", .principals = STRS(WEB_ID, "spiffe://td/a/")}),
     "principals[1] \"spiffe://td/a/\": trailing '/'"},
    {RULES({.name = "r", .not_principals = STRS("web")}), "not_principals[0] \"web\": scheme"},
    {RULES({.name = "r", .principals = STRS("spiffe://a*b")}), "'*' only as"},
    {RULES({.name = "r", .principals = STRS("**")}), "'*' only as"},
    {RULES({.name = "r", .principals = STRS("*a*")}), "'*' only as"},
    {RULES({.name = "r", .principals = STRS("mesh*")}), "must start with \"spiffe://\""},
    {RULES({.name = "r", .principals = STRS("*/a b")}), "not a SPIFFE ID suffix"},
    {RULES({.name = "r", .namespaces = STRS("a/b")}), "namespaces[0] \"a/b\": a namespace"},
    {RULES({.name = "r", .trust_domains = STRS("Mesh.local")}), "trust_domains[0] \"Mesh.local\""},
    {RULES({.name = "r", .ports = PORTS(80, 65536)}), "rule \"r\": ports[1]: 65536 out of range"},
    {RULES({.name = "r", .not_ports = PORTS(0)}), "rule \"r\": not_ports[0]: 0 out of range"},
    {RULES({.name = "r", .ports = PORTS(-1)}), "ports[0]: -1 out of range"},
    {RULES({.name = "r"}), "rule \"r\": empty rule"},
    {RULES({.name = "r", .action = TG_POLICY_DENY}), "rule \"r\": empty rule"},
    {RULES({.name = "r", .action = 7, .ports = PORTS(80)}), "rule \"r\": unknown action 7"},
    {RULES({.name = "", .ports = PORTS(80)}), "rule #1: name is empty"},
    {RULES({.name = "x", .ports = PORTS(80)}, {.ports = PORTS(80)}), "rule #2: name is empty"},
    {RULES({.name = "x", .ports = PORTS(80)}, {.name = "x", .ports = PORTS(81)}),
     "rule \"x\": duplicate name"},
    {RULES({.name = "r", .ports = PORTS(80), .scope = {TG_POLICY_SCOPE_NAMESPACE, NULL}}),
     "rule \"r\": scope: namespace is empty"},
    {RULES({.name = "r", .ports = PORTS(80), .scope = {TG_POLICY_SCOPE_WORKLOAD, "prod"}}),
     "rule \"r\": scope: workload without labels"},
    {RULES({.name = "r", .ports = PORTS(80), .scope = {9}}), "rule \"r\": scope: unknown kind 9"},
    {RULES({.name = "r",
            .ports = PORTS(80),
            .scope = {TG_POLICY_SCOPE_WORKLOAD, NULL, LABELS({"", "x"})}}),
     "rule \"r\": scope: labels[0] is empty"},
    /* a rule for another workload is still checked */
    {RULES({.name = "r", .serials = STRS("q"), .scope = {TG_POLICY_SCOPE_NAMESPACE, "elsewhere"}}),
     "rule \"r\": serials[0] \"q\""},
    /* unprintable bytes do not reach the error line */
    {RULES({.name = "r", .namespaces = STRS("a\nb")}), "namespaces[0] \"a?b\""},
};

START_TEST(test_policy_compile_errors)
{
    struct tg_policy_input in = {.rules = bad_cases[_i].rules, .n_rules = bad_cases[_i].n_rules};
    struct tg_policy *p = NULL;
    char err[TG_ERRLEN] = "";
    int rc = tg_policy_compile(&in, &p, err);

    ck_assert_msg(rc == TG_EINVAL, "case %d: rc %d, err \"%s\"", _i, rc, err);
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(err, bad_cases[_i].why) != NULL, "err \"%s\" lacks \"%s\"", err,
                  bad_cases[_i].why);
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(test_policy_revocation_errors)
{
    struct tg_policy_input in = {.revoked_serials = STRS("1", "xyz")};
    struct tg_policy *p = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_policy_compile(&in, &p, err), TG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "revoked_serials[1] \"xyz\": not a hex serial"));
    in.revoked_serials.n = 0;
    in.revoked_fingerprints = (struct tg_policy_strs)STRS("abc");
    ck_assert_int_eq(tg_policy_compile(&in, &p, err), TG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "revoked_fingerprints[0] \"abc\""));
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_policy_normalisers)
{
    char out[TG_POLICY_SERIAL_MAX + 1], err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_policy_fingerprint_norm(FP_A_COLONS, out, err), 0);
    ck_assert_str_eq(out, FP_A);
    ck_assert_int_eq(tg_policy_fingerprint_norm(FP_A, out, err), 0);
    ck_assert_str_eq(out, FP_A);
    ck_assert_int_eq(tg_policy_fingerprint_norm(FP_A "0", out, err), TG_EINVAL);
    ck_assert_int_eq(tg_policy_fingerprint_norm("", out, err), TG_EINVAL);
    ck_assert_int_eq(tg_policy_serial_norm("0000", out, err), 0);
    ck_assert_str_eq(out, "0");
    ck_assert_int_eq(tg_policy_serial_norm("0X00:Ab:Cd", out, err), 0);
    ck_assert_str_eq(out, "abcd");
    ck_assert_int_eq(tg_policy_serial_norm("12:", out, err), TG_EINVAL);
    ck_assert_int_eq(tg_policy_serial_norm("", out, err), TG_EINVAL);
}
END_TEST

START_TEST(test_policy_peer_init)
{
    static const struct {
        const char *id, *ns;
    } ids[] = {
        {"spiffe://td/ns/prod/sa/web", "prod"},
        {"spiffe://td/ns/prod/sa/web/x", NULL},
        {"spiffe://td/ns/prod/sb/web", NULL},
        {"spiffe://td/ns/prod", NULL},
        {"spiffe://td/ns", NULL},
        {"spiffe://td", NULL},
        {"spiffe://td/x/ns/prod/sa/web", NULL},
        {"spiffe://td/ns/a.b-c/sa/s", "a.b-c"},
    };
    static struct tg_spiffe_id id;
    struct tg_policy_peer peer;
    char err[TG_ERRLEN] = "";

    for (size_t i = 0; i < TG_NELEM(ids); i++) {
        ck_assert_int_eq(tg_spiffe_parse(ids[i].id, &id, err), 0);
        ck_assert_int_eq(tg_policy_peer_init(&peer, &id, NULL, "", err), 0);
        ck_assert_str_eq(peer.id, ids[i].id);
        ck_assert_uint_eq(peer.td_len, 2);
        ck_assert_int_eq(memcmp(peer.td, "td", 2), 0);
        if (ids[i].ns == NULL) {
            ck_assert_msg(peer.ns == NULL, "%s", ids[i].id);
        } else {
            ck_assert_uint_eq(peer.ns_len, strlen(ids[i].ns));
            ck_assert_int_eq(memcmp(peer.ns, ids[i].ns, peer.ns_len), 0);
        }
        ck_assert_str_eq(peer.sha256, "");
        ck_assert_str_eq(peer.serial, "");
    }
    ck_assert_int_eq(tg_policy_peer_init(&peer, NULL, FP_A_COLONS, "00ff", err), 0);
    ck_assert_ptr_null(peer.id);
    ck_assert_str_eq(peer.sha256, FP_A);
    ck_assert_str_eq(peer.serial, "ff");
    ck_assert_int_eq(tg_policy_peer_init(&peer, NULL, "123", NULL, err), TG_EINVAL);
    ck_assert_int_eq(tg_policy_peer_init(&peer, NULL, NULL, "x", err), TG_EINVAL);
}
END_TEST

/* A peer of SPIFFE ID id (and certificate SHA-256 sha256, or NULL) on port is decided for the
 * reason want. */
static void decides(const struct tg_policy *p, const char *id, const char *sha256, uint16_t port,
                    const char *want)
{
    struct tg_spiffe_id sid;
    struct tg_policy_peer peer;
    struct tg_policy_verdict v;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(tg_spiffe_parse(id, &sid, err) == 0, "%s: %s", id, err);
    ck_assert_msg(tg_policy_peer_init(&peer, &sid, sha256, NULL, err) == 0, "%s: %s", id, err);
    tg_policy_decide(p, &peer, port, &v);
    ck_assert_msg(strcmp(v.reason, want) == 0, "%s on %u: %s, want %s", id, port, v.reason, want);
}

/* Many rules filed in every index: each peer is decided as an in-order scan would, by the
 * first DENY, else the first ALLOW. */
START_TEST(test_policy_many_rules)
{
    enum { N = 2000 };
    struct tg_policy_rule *rules = calloc(N, sizeof(*rules));
    char(*names)[16] = calloc(N, sizeof(*names));
    char(*vals)[96] = calloc(N, sizeof(*vals));
    const char **ptrs = calloc(N, sizeof(*ptrs));
    int *ports = calloc(N, sizeof(*ports));
    struct tg_policy_input in = {.rules = rules, .n_rules = N};
    struct tg_policy *p;
    char err[TG_ERRLEN] = "", want[80];

    ck_assert(rules && names && vals && ptrs && ports);
    for (int i = 0; i < N; i++) {
        struct tg_policy_rule *r = &rules[i];
        const struct tg_policy_strs one = {&ptrs[i], 1}; /* the value vals[i] */
        const struct tg_policy_ports port = {&ports[i], 1};

        snprintf(names[i], sizeof(names[i]), "r%d", i);
        r->name = names[i];
        r->action = i % 7 == 3 ? TG_POLICY_DENY : TG_POLICY_ALLOW;
        ptrs[i] = vals[i];
        ports[i] = 1000 + i % 50;
        switch (i % 5) {
        case 0: /* an exact ID */
            snprintf(vals[i], sizeof(vals[i]), "spiffe://mesh.local/ns/n%d/sa/s%d", i, i);
            r->principals = one;
            break;
        case 1: /* an ID prefix */
            snprintf(vals[i], sizeof(vals[i]), "spiffe://mesh.local/ns/n%d/*", i);
            r->principals = one;
            break;
        case 2: /* an ID suffix, on its port only */
            snprintf(vals[i], sizeof(vals[i]), "*/sa/s%d", i);
            r->principals = one;
            r->ports = port;
            break;
        case 3: /* a fingerprint */
            snprintf(vals[i], sizeof(vals[i]), "%064x", i);
            r->fingerprints = one;
            break;
        case 4: /* any namespace but one, on its port only */
            snprintf(vals[i], sizeof(vals[i]), "n%d", i);
            r->not_namespaces = one;
            r->ports = port;
            break;
        }
    }
    ck_assert_msg(tg_policy_compile(&in, &p, err) == 0, "%s", err);
    ck_assert_uint_eq(tg_policy_rule_count(p), N);
    /* exact rule 20; no rule on port 1020 names other peers (rules 20 + 50k are exact) */
    decides(p, "spiffe://mesh.local/ns/n20/sa/s20", NULL, 1020, "allowed by rule r20");
    /* the fingerprint DENY of rule 38 (38 % 7 == 3) beats every ALLOW */
    snprintf(want, sizeof(want), "%064x", 38);
    decides(p, "spiffe://mesh.local/ns/n20/sa/s20", want, 1020, "denied by rule r38");
    /* prefix rule 11; rules without ports apply to every port */
    decides(p, "spiffe://mesh.local/ns/n11/sa/x", NULL, 1011, "allowed by rule r11");
    decides(p, "spiffe://mesh.local/ns/n11/sa/x", NULL, 80, "allowed by rule r11");
    /* port 1004: rule 4 (not_namespaces n4) allows, but rule 304 (DENY, not_namespaces n304,
     * port 1004) matches too */
    decides(p, "spiffe://mesh.local/ns/n11/sa/x", NULL, 1004, "denied by rule r304");
    /* suffix rule 12 on its port only */
    decides(p, "spiffe://mesh.local/ns/zz/sa/s12", NULL, 1012, "allowed by rule r12");
    decides(p, "spiffe://mesh.local/ns/zz/sa/s12", NULL, 1013, "no ALLOW rule matched");
    decides(p, "spiffe://other/x", NULL, 80, "no ALLOW rule matched");
    tg_policy_free(p);
    free(rules);
    free(names);
    free(vals);
    free(ptrs);
    free(ports);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE("policy", "core", &tc, test_policy_reasons, test_policy_revocation,
                             test_policy_revocation_without_rules, test_policy_scope_drops_rules,
                             test_policy_revocation_errors, test_policy_normalisers,
                             test_policy_peer_init, test_policy_many_rules);

    tcase_add_loop_test(tc, test_policy_decide_table, 0, TG_NELEM(cases));
    tcase_add_loop_test(tc, test_policy_compile_errors, 0, TG_NELEM(bad_cases));
    return s;
}

/* Authorization: rules and revocation compiled into an immutable decision structure. Pure:
 * no I/O, no libuv, no wolfSSL.
 *
 * Semantics follow Istio's AuthorizationPolicy. A rule matches a peer on a destination port
 * when EVERY non-empty match field matches: a field matches when any of its values matches;
 * a not_ field matches when none of its values matches. A peer that lacks an attribute (no
 * SPIFFE ID, no namespace in its ID, unknown fingerprint or serial) matches no value of that
 * attribute, so the field fails and its not_ form passes. Decision order:
 *   1. the certificate's serial or fingerprint is revoked -> refuse ("revoked");
 *   2. a DENY rule matches -> refuse ("denied by rule X");
 *   3. some ALLOW rule applies to this port (its port fields accept it) and none matches ->
 *      refuse ("no ALLOW rule matched");
 *   4. an ALLOW rule matched -> allow ("allowed by rule X"); no ALLOW rule for this port ->
 *      allow ("default allow"), or refuse when the input asks for default deny.
 * When several rules of the deciding kind match, the first in input order is reported.
 *
 * String values of principals, namespaces and trust_domains take four forms: exact, "x*"
 * (prefix), "*x" (suffix) and "*" (any value that is present). An exact principal must be a
 * valid SPIFFE ID; a prefix principal must start with "spiffe://". Fingerprints are SHA-256
 * in hex, 64 digits, either case, optionally colon-separated in pairs ("AB:CD:..."). Serials
 * are hex, either case, optionally colon-separated; leading zeros do not count. Ports are
 * 1..65535.
 *
 * A decision does not scan the rules: each rule is filed under one of its positive fields
 * (fingerprint, serial, principal, namespace, trust domain, port, in that preference) in a
 * hash table (exact values, and prefixes and suffixes by length) or a port bucket; only
 * rules with nothing to file them under (only not_ fields, or only "*") are checked every
 * time. A decision costs one lookup per distinct prefix or suffix length in use.
 *
 * Threads: a compiled struct tg_policy is immutable; any number of threads may call
 * tg_policy_decide on it at once. */
#ifndef TOLLGATE_POLICY_H
#define TOLLGATE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/err.h"
#include "tollgate/spiffe.h"

#define TG_POLICY_SHA256_HEX 64 /* hex digits of a SHA-256 fingerprint */
#define TG_POLICY_SERIAL_MAX 64 /* significant hex digits of a serial (RFC 5280 says 40) */

enum tg_policy_action {
    TG_POLICY_ALLOW,
    TG_POLICY_DENY,
};

/* Which workloads a rule is for. Rules for other workloads are dropped at compile time
 * (but still checked, so one input is valid or invalid for every workload alike). */
enum tg_policy_scope_kind {
    TG_POLICY_SCOPE_MESH,      /* every workload */
    TG_POLICY_SCOPE_NAMESPACE, /* workloads of namespace ns */
    TG_POLICY_SCOPE_WORKLOAD,  /* workloads carrying all labels (and of namespace ns if set) */
};

struct tg_policy_label {
    const char *key;
    const char *value;
};

struct tg_policy_scope {
    enum tg_policy_scope_kind kind;
    const char *ns;                       /* NAMESPACE: required; WORKLOAD: NULL for any */
    const struct tg_policy_label *labels; /* WORKLOAD: at least one */
    size_t n_labels;
};

/* A read-only view of a list of strings: a table of literals, or a config's char ** through
 * tg_policy_strs_of(). */
struct tg_policy_strs {
    const char *const *v;
    size_t n;
};

/* The view of n strings at v. C converts char ** to const char *const * only with a cast; this
 * one adds const at every level, so it hides nothing from -Wcast-qual. */
static inline struct tg_policy_strs tg_policy_strs_of(char *const *v, size_t n)
{
    return (struct tg_policy_strs){(const char *const *)v, n};
}

struct tg_policy_ports {
    const int *v; /* int, so that an out-of-range value from a parser can be refused */
    size_t n;
};

/* One rule as written in the configuration or pushed by the control plane. All borrowed:
 * tg_policy_compile copies what it keeps. */
struct tg_policy_rule {
    const char *name; /* non-empty, unique within the input */
    enum tg_policy_action action;
    struct tg_policy_scope scope;
    struct tg_policy_strs principals, not_principals;       /* SPIFFE IDs */
    struct tg_policy_strs namespaces, not_namespaces;       /* <ns> of /ns/<ns>/sa/<sa> */
    struct tg_policy_strs trust_domains, not_trust_domains; /* "mesh.local" */
    struct tg_policy_strs fingerprints, not_fingerprints;   /* certificate SHA-256 */
    struct tg_policy_strs serials, not_serials;             /* certificate serial */
    struct tg_policy_ports ports, not_ports;                /* destination port */
    /* HTTP conditions, for protocol: http ports only: a rule with any of them matches only
     * a request (tg_policy_decide_request), never a connection (tg_policy_decide). methods:
     * exact ("GET"); paths: exact ("/health") or prefix ("/api/" then '*'), matched against the
     * request's normalised target (http.h, "request targets") up to any '?', and therefore
     * refused unless already in that normal form ("/a/../b", "//a", "/%61" are, with the form
     * to write); hosts: the Host header without its port, any case. */
    struct tg_policy_strs methods, paths, hosts;
};

struct tg_policy_input {
    const char *workload_ns; /* this workload's namespace; NULL if it has none */
    const struct tg_policy_label *workload_labels;
    size_t n_workload_labels;
    const struct tg_policy_rule *rules;
    size_t n_rules;
    bool default_deny; /* refuse when no ALLOW rule applies to the port (default: allow) */
    struct tg_policy_strs revoked_serials;
    struct tg_policy_strs revoked_fingerprints;
};

struct tg_policy;

/* Checks in and builds the decision structure. On success *out owns a new policy
 * (tg_policy_free) that keeps no pointer into in. On failure returns TG_EINVAL (or
 * TG_ENOMEM) with one line in err naming the rule and field, e.g.
 * rule "web": fingerprints[1] "zz": not a SHA-256 fingerprint (64 hex digits). */
TG_MUST_USE int tg_policy_compile(const struct tg_policy_input *in, struct tg_policy **out,
                                  char *err);
void tg_policy_free(struct tg_policy *p);

/* Rules kept for this workload (after scoping). */
size_t tg_policy_rule_count(const struct tg_policy *p);

/* The calling peer, as the decision sees it. Fill with tg_policy_peer_init. */
struct tg_policy_peer {
    const char *id; /* whole SPIFFE ID, borrowed; NULL when the peer has none */
    size_t id_len;
    const char *td; /* trust domain, inside id */
    size_t td_len;
    const char *ns; /* namespace, inside id; NULL unless the path is /ns/<ns>/sa/<sa> */
    size_t ns_len;
    char sha256[TG_POLICY_SHA256_HEX + 1]; /* lowercase hex; "" when unknown */
    char serial[TG_POLICY_SERIAL_MAX + 1]; /* normalised hex; "" when unknown */
};

/* Fills peer from a parsed ID (NULL: none; borrowed, must outlive peer) and hex fingerprint
 * and serial (NULL or "": unknown) in any form the rules accept. TG_EINVAL with err when
 * one of them is malformed. */
TG_MUST_USE int tg_policy_peer_init(struct tg_policy_peer *peer, const struct tg_spiffe_id *id,
                                    const char *sha256, const char *serial, char *err);

enum tg_policy_outcome {
    TG_POLICY_REVOKED,       /* "revoked" */
    TG_POLICY_DENIED,        /* "denied by rule X" */
    TG_POLICY_NO_MATCH,      /* "no ALLOW rule matched" */
    TG_POLICY_DEFAULT_DENY,  /* "default deny" */
    TG_POLICY_ALLOWED,       /* "allowed by rule X" */
    TG_POLICY_DEFAULT_ALLOW, /* "default allow" */
};

struct tg_policy_verdict {
    bool allow;
    enum tg_policy_outcome outcome;
    const char *rule;   /* the deciding rule's name, NULL for the others; lives in the policy */
    const char *reason; /* one line; static or in the policy: valid while the policy lives */
};

/* Decides for peer calling port. Never fails; no allocation; thread-safe. Rules with HTTP
 * conditions do not match. */
void tg_policy_decide(const struct tg_policy *p, const struct tg_policy_peer *peer, uint16_t port,
                      struct tg_policy_verdict *v);

/* One HTTP request, for the rules' HTTP conditions. Borrowed. */
struct tg_policy_request {
    const char *method;
    size_t method_len;
    const char *target; /* the normalised target, path and query (tg_http_target_normalize) */
    size_t target_len;
    const char *host; /* the Host header's value, or NULL */
    size_t host_len;
};

/* As tg_policy_decide, for one request on a protocol: http port: rules with HTTP conditions
 * match when those match too. */
void tg_policy_decide_request(const struct tg_policy *p, const struct tg_policy_peer *peer,
                              uint16_t port, const struct tg_policy_request *req,
                              struct tg_policy_verdict *v);

/* Normalisers the compiler uses, for parsers that want to check values early. out gets
 * lowercase hex: 64 digits for a fingerprint; for a serial no leading zeros ("0" for zero).
 * TG_EINVAL with err when malformed. */
TG_MUST_USE int tg_policy_fingerprint_norm(const char *in, char out[TG_POLICY_SHA256_HEX + 1],
                                           char *err);
TG_MUST_USE int tg_policy_serial_norm(const char *in, char out[TG_POLICY_SERIAL_MAX + 1],
                                      char *err);

#endif

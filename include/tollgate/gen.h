/* A configuration generation: everything a connection needs to decide and to handshake,
 * built complete or not at all, immutable once published, freed by the last unref.
 * Workers each hold a reference; a connection takes one at accept and keeps it to its end,
 * so a rotation never touches a live connection. Refcounting is atomic: any thread. */
#ifndef TOLLGATE_GEN_H
#define TOLLGATE_GEN_H

#include <stdatomic.h>
#include <stdint.h>

#include "tollgate/config.h"
#include "tollgate/identity.h"
#include "tollgate/mesh.h"
#include "tollgate/policy.h"
#include "tollgate/ratelimit.h"
#include "tollgate/resource.h"
#include "tollgate/svid.h"
#include "tollgate/tls.h"

/* A resource pushed by the control plane and accepted, shared by the control thread (which
 * holds the newest of each type) and every generation built from it (whose mesh table points
 * into it). Refcounting is atomic: any thread. */
struct tg_cp_res {
    atomic_uint refs;
    struct tg_resource *r; /* owned */
    char version[129];     /* as pushed (cp_client takes up to 128 bytes) */
};

/* Takes ownership of r (freed on failure too). NULL: out of memory. */
struct tg_cp_res *tg_cp_res_new(struct tg_resource *r, const char *version);
struct tg_cp_res *tg_cp_res_ref(struct tg_cp_res *p);
/* The last unref frees; NULL is fine. */
void tg_cp_res_unref(struct tg_cp_res *p);

/* What the control plane has given us: the newest accepted resource of each type (NULL:
 * none yet). Index by enum tg_res_type; TG_RES_IDENTITY is never set. */
struct tg_cp_state {
    struct tg_cp_res *res[TG_RES_N];
};

struct tg_gen {
    atomic_uint refcnt;
    struct tg_config *cfg;        /* reference: the mesh, rules and trust domains point into it */
    uint64_t id;                  /* 1, 2, ... in build order */
    struct tg_identity *identity; /* owned */
    struct tg_tls_ctx *server;    /* inbound handshakes */
    struct tg_tls_ctx *client;    /* outbound handshakes */
    struct tg_mesh mesh;          /* transparent outbound: destination -> expected servers */
    struct tg_policy *policy;     /* inbound: revocation and authorization rules */
    bool close_denied;            /* close live connections this generation refuses */
    struct tg_limit_set *limits;  /* inbound, per caller; its tables outlive generations */
    uint64_t handshake_timeout_ms, idle_timeout_ms, connect_timeout_ms;
    bool inbound_mode_set;              /* pushed: every inbound listener uses inbound_mode */
    enum tg_inbound_mode inbound_mode;  /* when inbound_mode_set */
    struct tg_cp_res *pushed[TG_RES_N]; /* references to the pushes it was built from */
    struct tg_mesh_dest *pushed_dests;  /* the pushed mesh table, converted; owned */
};

/* Where the identity comes from:
 * - static mode (chain_pem NULL): the files named by the config (identity.cert/key/
 *   trust_bundle/crl, and each federated domain's bundle in identity.trust_domains), read at
 *   each build;
 * - control-plane mode: the chain the control plane signed, our in-memory key, and the
 *   pushed trust bundle (cp->res[TG_RES_TRUST_BUNDLE], required) domain by domain: ours is
 *   the one our certificate's ID is in, each other one federated, with its own roots; and as
 *   CRLs those of the pushed revocations (identity.crl is not used).
 * Precedence: a pushed resource, once one of its type has been accepted, replaces the
 * config's matching section whole: authorization (rules, default, close_denied),
 * revocations (serials, fingerprints), mesh table (destinations, outside), rate limits
 * (every limiter; the config's rate_limits.key is kept). Proxy settings override, each where it
 * is set: tls.min_version, the cipher suites, the handshake, idle and connect timeouts, and
 * the mode of every inbound listener. Sections nothing was pushed for come from the config.
 * Connections keep the generation they started with, and with it its timeouts. */
struct tg_gen_input {
    struct tg_config *cfg; /* the generation takes a reference */
    const char *chain_pem; /* NULL: static mode */
    size_t chain_len;
    const struct tg_identity_key *key;      /* control-plane mode: our key */
    const struct tg_cp_state *cp;           /* pushed resources (the generation refs them); NULL:
                                             * none */
    const struct tg_limit_set *prev_limits; /* the published generation's: tables whose
                                             * limiter stays keep their buckets; may be NULL */
    const struct tg_svid *svid; /* Workload API mode (identity.workload_api): the identity,
                                 * its bundle, federated bundles and CRLs, all from the SVID
                                 * (tg_svid_identity); chain_pem is then NULL */
};

/* Builds the identity (see struct tg_gen_input), the policy and both TLS contexts. On failure
 * nothing is kept and err says what was wrong. The new generation has one reference. */
TG_MUST_USE int tg_gen_build(const struct tg_gen_input *in, struct tg_gen **out, char *err);

/* What tg_gen_build checks that needs no identity: the policy, proxy settings, rate limits,
 * mesh table and (pushed) trust bundle of in. For a push that arrives before the control
 * plane's first certificate or trust bundle: it is NACKed now rather than held, so that it
 * cannot block the first generation later. 0, or a negative code with err. */
TG_MUST_USE int tg_gen_check(const struct tg_gen_input *in, char *err);

/* A push accepted or not: p (taken) replaces in->cp's resource of its type, then what in
 * makes with it is built into *out (build true) or only checked (tg_gen_check: nothing to
 * build with yet). On failure in->cp is as it was, p is released and err says why. in->cp is
 * the control thread's state, cast from const here only. 0 or a negative code. */
TG_MUST_USE int tg_gen_apply_push(const struct tg_gen_input *in, struct tg_cp_res *p, bool build,
                                  struct tg_gen **out, char *err);

struct tg_gen *tg_gen_ref(struct tg_gen *g);
/* Drops a reference; the last one frees. NULL is fine. Copes with a half-built g. */
void tg_gen_unref(struct tg_gen *g);

#endif

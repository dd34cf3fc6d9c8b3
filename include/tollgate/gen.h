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
#include "tollgate/tls.h"

struct tg_gen {
    atomic_uint refcnt;
    struct tg_config *cfg;       /* reference: the mesh, rules and trust domains point into it */
    uint64_t id;                 /* 1, 2, ... in build order */
    struct tg_identity *identity; /* owned */
    struct tg_tls_ctx *server;   /* inbound handshakes */
    struct tg_tls_ctx *client;   /* outbound handshakes */
    struct tg_mesh mesh;         /* transparent outbound: destination -> expected servers */
    struct tg_policy *policy;    /* inbound: revocation and authorization rules */
    bool close_denied;           /* close live connections this generation refuses */
};

struct tg_gen_input {
    struct tg_config *cfg; /* the generation takes a reference */
};

/* Reads the identity files named by the config and builds both TLS contexts. On failure
 * nothing is kept and err says what was wrong. The new generation has one reference. */
TG_MUST_USE int tg_gen_build(const struct tg_gen_input *in, struct tg_gen **out, char *err);

struct tg_gen *tg_gen_ref(struct tg_gen *g);
/* Drops a reference; the last one frees. NULL is fine. Copes with a half-built g. */
void tg_gen_unref(struct tg_gen *g);

#endif

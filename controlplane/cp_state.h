/* Everything tollgate-cp serves, loaded from its files in one go: configuration, bootstrap
 * tokens, signing CA, its own TLS identity and context, and the resources it pushes. Built
 * complete or not at all, immutable once built; streams hold a reference (the TLS context
 * of their handshake lives here), a reload builds a new one and the old goes with its last
 * stream. Loop thread only (the count is not atomic). */
#ifndef TOLLGATE_CP_STATE_H
#define TOLLGATE_CP_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "cp_authn.h"
#include "cp_ca.h"
#include "cp_config.h"
#include "cp_jwt.h"
#include "tollgate/identity.h"
#include "tollgate/resource.h"
#include "tollgate/tls.h"

struct tg_cp_state {
    unsigned refs;
    struct tg_cp_config *cfg;
    struct tg_cp_tokens tokens;
    struct tg_cp_jwt_keys *jwt_keys; /* kubernetes.keys; NULL: no service-account tokens */
    struct tg_cp_ca *ca;
    /* our TLS identity; bundle: our trust domain's roots; CRLs: those of the published ones
     * that our roots signed (the others are other trust domains') */
    struct tg_identity *server_id;
    struct tg_tls_ctx *tls;            /* server context: client certificate optional */
    struct tg_resource *res[TG_RES_N]; /* TRUST_BUNDLE .. PROXY_SETTINGS, never NULL */
    struct tg_strlist crl_files;       /* revocations.crls, in the order of the CRLs */
    struct tg_strlist files;           /* every file read, to watch for changes */
};

/* Reads config_path and every file it names. 0 with *out (one reference), or a negative code
 * with err naming the file (and line) at fault. On failure *files_out, when not NULL, still
 * receives the files read so far (the caller watches them to retry; tg_cp_files_free). */
TG_MUST_USE int tg_cp_state_load(const char *config_path, struct tg_cp_state **out,
                                 struct tg_strlist *files_out, char *err);

/* Whether a and b verify client certificates alike: the same roots and the same CRLs in
 * their TLS contexts. A stream verified under a may be trusted under b. */
bool tg_cp_state_same_trust(const struct tg_cp_state *a, const struct tg_cp_state *b);

struct tg_cp_state *tg_cp_state_ref(struct tg_cp_state *s);
/* NULL is fine. */
void tg_cp_state_unref(struct tg_cp_state *s);

void tg_cp_files_free(struct tg_strlist *files);

#endif

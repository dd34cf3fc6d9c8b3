/* tollgate-certs: what the tool's reading side (inspect.c: inspect, verify) offers the
 * command line (certtool.c). One process, one thread. Functions with err write one line into
 * it (TG_ERRLEN bytes) naming what was wrong. */
#ifndef TOLLGATE_CERTTOOL_H
#define TOLLGATE_CERTTOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/config.h"
#include "tollgate/err.h"

#define CERTS_RFC3339 24 /* "2026-12-07T01:51:52Z" and its NUL, with room */

/* Unix seconds as RFC 3339 in UTC ("2026-12-07T01:51:52Z"); out has CERTS_RFC3339 bytes. */
void certs_rfc3339(int64_t t, char *out);

/* Prints every PEM block of path (certificates of a chain, CRLs, keys, CSRs, public keys;
 * a file without PEM may be one DER certificate): what each is, never a private key's bytes.
 * 0; TG_EINVAL when nothing in it could be read, with err. */
int certs_inspect(const char *path, char *err);

/* tollgate-certs verify. */
struct certs_verify {
    const char *bundle;
    struct tg_strlist crls;
    const char *intermediates; /* NULL: none besides the chain file's own */
    const char *chain;
    const char *peer;          /* "client", "server" or NULL: both */
    struct tg_strlist domains; /* --trust-domain, accepted besides none */
    unsigned max_chain_depth;
};

/* Checks the chain as the sidecar's handshake would (tg_tls_verify_chain) and prints the
 * verdict on stdout: "ok: ..." (returns 0) or "refused: REASON: why" (returns 1). Files that
 * cannot be read or used: a negative code with err. */
int certs_verify(const struct certs_verify *v, char *err);

#endif

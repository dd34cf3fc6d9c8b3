/* SPIFFE IDs (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md), parsed
 * strictly. Pure: no I/O, no libuv, no wolfSSL. */
#ifndef TOLLGATE_SPIFFE_H
#define TOLLGATE_SPIFFE_H

#include <stdbool.h>
#include <stddef.h>

#include "tollgate/err.h"

#define TG_SPIFFE_MAX 2048 /* bytes, whole ID, as the SPIFFE spec recommends */

struct tg_spiffe_id {
    char id[TG_SPIFFE_MAX + 1]; /* the whole ID, NUL-terminated */
    size_t len;
    size_t td_len;   /* trust domain: id + 9 (after "spiffe://"), td_len bytes */
    size_t path_off; /* path starts at id + path_off ('/' or end) */
};

/* Parses a NUL-terminated ID. 0 on success; TG_ESPIFFE with a one-line reason in err:
 * scheme must be lowercase "spiffe", trust domain non-empty of [a-z0-9.-_], path segments
 * non-empty of [A-Za-z0-9.-_] and not "." or "..", no trailing '/', no percent-encoding,
 * query, fragment, port or user info, at most TG_SPIFFE_MAX bytes. A trust-domain ID
 * ("spiffe://td", empty path: path_off == len) is valid, as in the spec; a workload's
 * certificate needs a path, which callers that want one check. out is written only on
 * success; err may be NULL. */
TG_MUST_USE int tg_spiffe_parse(const char *s, struct tg_spiffe_id *out, char *err);

/* Same for a buffer that is not NUL-terminated (from a certificate); an embedded NUL is
 * refused. */
TG_MUST_USE int tg_spiffe_parse_n(const char *s, size_t n, struct tg_spiffe_id *out, char *err);

/* Copies the trust domain into dst (NUL-terminated, truncated to cap). */
void tg_spiffe_trust_domain(const struct tg_spiffe_id *id, char *dst, size_t cap);

/* true when id's trust domain equals td (exact, case-sensitive: both are lowercase). */
bool tg_spiffe_in_domain(const struct tg_spiffe_id *id, const char *td);

/* The longest Unix socket path (sun_path holds 108 bytes with its NUL). */
#define TG_SPIFFE_SOCKET_MAX 107

/* A Workload API endpoint address (SPIFFE Workload Endpoint spec, section 4: the form of
 * SPIFFE_ENDPOINT_SOCKET) into the Unix socket's path, NUL-terminated in path (cap bytes):
 * "unix:///abs/path" or "unix:/abs/path"; with bare_path, a plain "/abs/path" too (the
 * config file's convenience; the variable takes URIs only). Refused with a one-line err
 * (TG_EINVAL): tcp:// (tollgate speaks to a local agent over its Unix socket only), another
 * scheme, an authority ("unix://host/..."), a relative path, a query or fragment, an empty
 * path, or one longer than TG_SPIFFE_SOCKET_MAX bytes. */
TG_MUST_USE int tg_spiffe_endpoint_socket(const char *uri, bool bare_path, char *path, size_t cap,
                                          char *err);

#endif

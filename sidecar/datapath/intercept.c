#include "tollgate/intercept.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "tollgate/tls.h"

/* linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h; those headers clash with
 * glibc's netinet/in.h, so the two values are spelled out. */
#define SO_ORIGINAL_DST 80
#define IP6T_SO_ORIGINAL_DST 80

int tg_intercept_original_dst(int fd, struct sockaddr_storage *out)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);

    memset(out, 0, sizeof(*out));
    if (getsockname(fd, (struct sockaddr *)&local, &len) < 0)
        return -errno;
    len = sizeof(*out);
    if (local.ss_family == AF_INET6) {
        if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, &len) < 0)
            return -errno;
        return 0;
    }
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, &len) < 0)
        return -errno;
    return 0;
}

/* A bounds-checked reader over one ClientHello. */
struct reader {
    const uint8_t *p;
    size_t n;
    size_t at;
    int ok;
};

static unsigned get(struct reader *r, size_t bytes)
{
    unsigned v = 0;

    if (!r->ok || r->n - r->at < bytes) {
        r->ok = 0;
        return 0;
    }
    for (size_t i = 0; i < bytes; i++)
        v = v << 8 | r->p[r->at++];
    return v;
}

static void skip(struct reader *r, size_t bytes)
{
    if (!r->ok || r->n - r->at < bytes) {
        r->ok = 0;
        return;
    }
    r->at += bytes;
}

/* Whether an ALPN extension body (RFC 7301 3.1) lists our token. */
static int alpn_lists_ours(const uint8_t *p, size_t n)
{
    struct reader r = {p, n, 0, 1};
    size_t list = get(&r, 2);

    if (!r.ok || list != n - 2)
        return 0;
    while (r.ok && r.at < n) {
        size_t len = get(&r, 1);

        if (!r.ok || len == 0 || r.n - r.at < len)
            return 0;
        if (len == sizeof(TG_ALPN) - 1 && memcmp(p + r.at, TG_ALPN, len) == 0)
            return 1;
        r.at += len;
    }
    return 0;
}

enum tg_peek tg_intercept_peek(const uint8_t *p, size_t n)
{
    struct reader r;
    size_t rec_len, hs_len, ext_end;

    if (n == 0)
        return TG_PEEK_MORE;
    if (p[0] != 0x16) /* not a TLS handshake record */
        return TG_PEEK_OTHER;
    if (n >= 2 && p[1] != 0x03) /* record version 3.x */
        return TG_PEEK_OTHER;
    if (n < 5)
        return TG_PEEK_MORE;
    rec_len = (size_t)p[3] << 8 | p[4];
    if (rec_len < 4 || rec_len > 16384)
        return TG_PEEK_OTHER;
    if (n < 5 + rec_len)
        return TG_PEEK_MORE;
    r = (struct reader){p + 5, rec_len, 0, 1};
    if (get(&r, 1) != 1) /* client_hello */
        return TG_PEEK_OTHER;
    hs_len = get(&r, 3);
    if (!r.ok || hs_len > rec_len - 4)
        return TG_PEEK_OTHER; /* spread over several records: not a sidecar of ours */
    r.n = 4 + hs_len;
    skip(&r, 2 + 32);     /* legacy_version, random */
    skip(&r, get(&r, 1)); /* legacy_session_id */
    skip(&r, get(&r, 2)); /* cipher_suites */
    skip(&r, get(&r, 1)); /* legacy_compression_methods */
    ext_end = get(&r, 2);
    if (!r.ok || ext_end != r.n - r.at)
        return TG_PEEK_OTHER;
    while (r.ok && r.at < r.n) {
        unsigned type = get(&r, 2);
        size_t len = get(&r, 2);

        if (!r.ok || r.n - r.at < len)
            return TG_PEEK_OTHER;
        if (type == 16) /* application_layer_protocol_negotiation */
            return alpn_lists_ours(r.p + r.at, len) ? TG_PEEK_MESH : TG_PEEK_OTHER;
        r.at += len;
    }
    return TG_PEEK_OTHER;
}

#include "tollgate/mesh.h"

#include <netinet/in.h>
#include <string.h>

/* Whether the first prefix bits of a and b agree. */
static bool prefix_match(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;

    if (memcmp(a, b, whole) != 0)
        return false;
    return rest == 0 || ((a[whole] ^ b[whole]) & (0xff00 >> rest) & 0xff) == 0;
}

const struct tg_mesh_dest *tg_mesh_lookup(const struct tg_mesh *m,
                                          const struct sockaddr_storage *addr)
{
    const struct tg_mesh_dest *best = NULL;
    const unsigned char *ab;
    uint16_t port;

    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;

        ab = (const unsigned char *)&a->sin_addr;
        port = ntohs(a->sin_port);
    } else if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;

        ab = (const unsigned char *)&a->sin6_addr;
        port = ntohs(a->sin6_port);
    } else {
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++) {
        const struct tg_mesh_dest *d = &m->dests[i];
        const unsigned char *db;

        if (d->net.ss_family != addr->ss_family || (d->port != 0 && d->port != port))
            continue;
        db = d->net.ss_family == AF_INET
                 ? (const unsigned char *)&((const struct sockaddr_in *)&d->net)->sin_addr
                 : (const unsigned char *)&((const struct sockaddr_in6 *)&d->net)->sin6_addr;
        if (!prefix_match(ab, db, d->prefix))
            continue;
        if (best == NULL || d->prefix > best->prefix ||
            (d->prefix == best->prefix && d->port != 0 && best->port == 0))
            best = d;
    }
    return best;
}

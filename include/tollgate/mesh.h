/* The mesh table: which server identities may serve a destination ("secure naming").
 * Pure: no I/O. Immutable once built; lives in a generation. */
#ifndef TOLLGATE_MESH_H
#define TOLLGATE_MESH_H

#include <stdbool.h>
#include <sys/socket.h>

#include "tollgate/config.h"

struct tg_mesh {
    const struct tg_mesh_dest *dests; /* borrowed from the config (or a push) */
    size_t n;
    bool refuse_outside; /* a destination outside the mesh: refuse, else plain passthrough */
};

/* The most specific destination holding addr (address and port): the longest prefix wins,
 * and at equal length one naming the port beats one for any port. NULL: outside the mesh. */
const struct tg_mesh_dest *tg_mesh_lookup(const struct tg_mesh *m,
                                          const struct sockaddr_storage *addr);

#endif

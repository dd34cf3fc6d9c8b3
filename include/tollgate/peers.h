/* The peers the data path has verified, for /config_dump (issue 15: "/config_dump shows the
 * peer's SHA-256 fingerprint"): one row per peer certificate, keyed by its SHA-256
 * fingerprint, with its SPIFFE ID, serial and expiry, how many connections it had in each
 * direction, how many are open and when it was last seen.
 *
 * Bounded: at most TG_PEERS_MAX rows. A new certificate when the table is full takes the row
 * of the least recently seen one with no open connection; when every row has open
 * connections it is not kept, and its connections count in `untracked` only. A row with open
 * connections is never taken, so the close of a tracked connection always finds its row.
 * Nothing secret: what is here is in the peer's certificate, which it shows anyone.
 *
 * Any thread: one lock, taken once when a connection's handshake has been accepted and once
 * when it ends, never per byte. */
#ifndef TOLLGATE_PEERS_H
#define TOLLGATE_PEERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/err.h"

#define TG_PEERS_MAX 64
#define TG_PEERS_ID_MAX 2048 /* a SPIFFE ID's longest (DESIGN.md, "Identity") */
#define TG_PEERS_HEX 65      /* serial (up to 32 bytes) or SHA-256, hex, NUL */

struct tg_peer_row {
    char *id; /* SPIFFE ID, malloc'd */
    char sha256[TG_PEERS_HEX];
    char serial[TG_PEERS_HEX];
    int64_t not_after;  /* unix seconds */
    int64_t first_seen; /* unix seconds */
    int64_t last_seen;  /* unix seconds: its last connection's start */
    uint64_t inbound;   /* connections from it (it was the client) */
    uint64_t outbound;  /* connections to it (it was the server) */
    uint64_t active;    /* of those, open now */
};

struct tg_peers {
    pthread_mutex_t lock;
    size_t n;
    struct tg_peer_row rows[TG_PEERS_MAX];
    uint64_t untracked; /* connections of peers not kept: the table was full of open ones */
    uint64_t evicted;   /* rows given to a newer certificate */
};

void tg_peers_init(struct tg_peers *p);
void tg_peers_cleanup(struct tg_peers *p);

/* A connection with a verified peer starts (sha256 and serial lowercase hex, id its SPIFFE
 * ID). Whether it is tracked: then tg_peers_close must be called when it ends; when not (out
 * of memory, a malformed argument, or no row free) it must not be. */
TG_MUST_USE bool tg_peers_open(struct tg_peers *p, const char *id, const char *sha256,
                               const char *serial, int64_t not_after, bool inbound, int64_t now);
/* A tracked connection of the peer with this fingerprint has ended. */
void tg_peers_close(struct tg_peers *p, const char *sha256);

/* A copy of the table, most recently seen first, into *rows (malloc'd, with malloc'd ids;
 * tg_peers_snapshot_free). Returns the number of rows, or 0 with *rows NULL when empty or
 * out of memory. */
size_t tg_peers_snapshot(struct tg_peers *p, struct tg_peer_row **rows, uint64_t *untracked,
                         uint64_t *evicted);
void tg_peers_snapshot_free(struct tg_peer_row *rows, size_t n);

#endif

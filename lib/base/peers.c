/* The verified peers' table for /config_dump (peers.h). */
#include "tollgate/peers.h"

#include <stdlib.h>
#include <string.h>

void tg_peers_init(struct tg_peers *p)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
}

void tg_peers_cleanup(struct tg_peers *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->rows[i].id);
    p->n = 0;
    pthread_mutex_destroy(&p->lock);
}

static bool hex_ok(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n < TG_PEERS_HEX && strspn(s, "0123456789abcdef") == n;
}

/* The row of sha256, or NULL. Under the lock. */
static struct tg_peer_row *find(struct tg_peers *p, const char *sha256)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->rows[i].sha256, sha256) == 0)
            return &p->rows[i];
    return NULL;
}

/* A free row: a new one, or the least recently seen without open connections; NULL when
 * every row has some. Under the lock. */
static struct tg_peer_row *free_row(struct tg_peers *p)
{
    struct tg_peer_row *old = NULL;

    if (p->n < TG_PEERS_MAX)
        return &p->rows[p->n++];
    for (size_t i = 0; i < p->n; i++)
        if (p->rows[i].active == 0 && (old == NULL || p->rows[i].last_seen < old->last_seen))
            old = &p->rows[i];
    if (old != NULL) {
        free(old->id);
        old->id = NULL;
        p->evicted++;
    }
    return old;
}

bool tg_peers_open(struct tg_peers *p, const char *id, const char *sha256, const char *serial,
                   int64_t not_after, bool inbound, int64_t now)
{
    struct tg_peer_row *r;
    char *copy = NULL;

    if (id == NULL || strlen(id) > TG_PEERS_ID_MAX || !hex_ok(sha256) ||
        (serial[0] != '\0' && !hex_ok(serial)) || (copy = strdup(id)) == NULL)
        return false;
    pthread_mutex_lock(&p->lock);
    if ((r = find(p, sha256)) == NULL) {
        if ((r = free_row(p)) == NULL) {
            p->untracked++;
            pthread_mutex_unlock(&p->lock);
            free(copy);
            return false;
        }
        memset(r, 0, sizeof(*r));
        r->id = copy;
        copy = NULL;
        memcpy(r->sha256, sha256, strlen(sha256) + 1);
        memcpy(r->serial, serial, strlen(serial) + 1);
        r->not_after = not_after;
        r->first_seen = now;
    }
    r->last_seen = now;
    r->active++;
    if (inbound)
        r->inbound++;
    else
        r->outbound++;
    pthread_mutex_unlock(&p->lock);
    free(copy); /* the row was there already */
    return true;
}

void tg_peers_close(struct tg_peers *p, const char *sha256)
{
    struct tg_peer_row *r;

    pthread_mutex_lock(&p->lock);
    if ((r = find(p, sha256)) != NULL && r->active > 0)
        r->active--;
    pthread_mutex_unlock(&p->lock);
}

static int by_last_seen(const void *a, const void *b)
{
    const struct tg_peer_row *x = a, *y = b;

    if (x->last_seen != y->last_seen)
        return x->last_seen < y->last_seen ? 1 : -1;
    return strcmp(x->sha256, y->sha256);
}

void tg_peers_snapshot_free(struct tg_peer_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i].id);
    free(rows);
}

size_t tg_peers_snapshot(struct tg_peers *p, struct tg_peer_row **rows, uint64_t *untracked,
                         uint64_t *evicted)
{
    struct tg_peer_row *v;
    size_t n = 0, want;

    *rows = NULL;
    pthread_mutex_lock(&p->lock);
    *untracked = p->untracked;
    *evicted = p->evicted;
    want = p->n;
    if (want == 0 || (v = calloc(want, sizeof(*v))) == NULL) {
        pthread_mutex_unlock(&p->lock);
        return 0;
    }
    for (; n < want; n++) {
        v[n] = p->rows[n];
        if ((v[n].id = strdup(p->rows[n].id)) == NULL)
            break;
    }
    pthread_mutex_unlock(&p->lock);
    if (n < want) {
        tg_peers_snapshot_free(v, n);
        return 0;
    }
    qsort(v, n, sizeof(*v), by_last_seen);
    *rows = v;
    return n;
}

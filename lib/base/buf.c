#include "tollgate/buf.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void tg_pool_init(struct tg_pool *p, size_t block_size, size_t max_free)
{
    memset(p, 0, sizeof(*p));
    p->block_size = block_size;
    p->max_free = max_free;
}

void tg_pool_keep_peak(struct tg_pool *p)
{
    p->keep_all = true;
}

/* Frees kept blocks until keep are left. */
static void free_beyond(struct tg_pool *p, size_t keep)
{
    while (p->n_free > keep) {
        void *next = *(void **)p->free_list;

        free(p->free_list);
        p->free_list = next;
        p->n_free--;
    }
}

void tg_pool_trim(struct tg_pool *p)
{
    size_t keep = p->peak - p->n_out; /* the period's peak, less what is out now */

    free_beyond(p, keep > p->max_free ? keep : p->max_free);
    p->peak = p->n_out;
}

void tg_pool_cleanup(struct tg_pool *p)
{
    assert(p->n_out == 0); /* every block came back */
    free_beyond(p, 0);
}

static void *pool_get(struct tg_pool *p)
{
    void *block = p->free_list;

    if (block != NULL) {
        p->free_list = *(void **)block;
        p->n_free--;
    } else {
        block = malloc(p->block_size);
        if (block == NULL)
            return NULL;
    }
    if (++p->n_out > p->peak)
        p->peak = p->n_out;
    return block;
}

static void pool_put(struct tg_pool *p, void *block)
{
    assert(p->n_out > 0);
    p->n_out--;
    if (p->n_free >= p->max_free && !p->keep_all) {
        free(block);
        return;
    }
    *(void **)block = p->free_list;
    p->free_list = block;
    p->n_free++;
}

int tg_buf_reserve(struct tg_buf *b, struct tg_pool *p, bool may_move)
{
    if (b->data == NULL) {
        b->data = pool_get(p);
        if (b->data == NULL)
            return TG_ENOMEM;
        b->cap = p->block_size;
        b->head = b->tail = 0;
        return 0;
    }
    if (may_move && b->head > 0 && b->tail == b->cap) {
        size_t n = tg_buf_len(b);

        memmove(b->data, b->data + b->head, n);
        b->head = 0;
        b->tail = n;
    }
    return 0;
}

void tg_buf_compact(struct tg_buf *b)
{
    size_t n = tg_buf_len(b);

    if (b->head == 0 || b->head < n)
        return;
    memmove(b->data, b->data + b->head, n);
    b->head = 0;
    b->tail = n;
}

size_t tg_buf_window_back(struct tg_buf *b, size_t block, size_t window, size_t taken)
{
    size_t room, held = tg_buf_len(b) + taken;

    tg_buf_compact(b);
    room = b->data != NULL ? b->cap - b->tail : block;
    /* after giving back g, the peer may send window - (held - g): at most the room */
    if (room + held <= window)
        return 0;
    return room + held - window < taken ? room + held - window : taken;
}

/* The cursors' invariant, head <= tail <= cap, is checked where they move (debug builds), as
 * s2n-tls's stuffers do: a caller that commits more than the room or consumes more than it
 * holds stops there, not several calls later in someone else's bytes. */
void tg_buf_commit(struct tg_buf *b, size_t n)
{
    assert(n <= tg_buf_room(b));
    assert(n == 0 || b->data != NULL);
    b->tail += n;
}

void tg_buf_consume(struct tg_buf *b, size_t n)
{
    assert(n <= tg_buf_len(b));
    b->head += n;
    if (b->head == b->tail)
        b->head = b->tail = 0;
}

void tg_buf_release(struct tg_buf *b, struct tg_pool *p)
{
    if (b->data == NULL || b->head != b->tail)
        return;
    pool_put(p, b->data);
    b->data = NULL;
    b->cap = b->head = b->tail = 0;
}

void tg_buf_drop(struct tg_buf *b, struct tg_pool *p)
{
    if (b->data == NULL)
        return;
    pool_put(p, b->data);
    b->data = NULL;
    b->cap = b->head = b->tail = 0;
}

/* A fixed-capacity byte buffer: bytes are appended at the tail and consumed from the head.
 * Storage comes from a tg_pool on first use and goes back when the buffer is empty, so an
 * idle connection holds no buffer memory. Single-threaded (one worker owns pool and bufs). */
#ifndef TOLLGATE_BUF_H
#define TOLLGATE_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "tollgate/err.h"

/* Free list of equal-size blocks. Keeps at most max_free blocks for reuse, or, after
 * tg_pool_keep_peak, a burst's worth until tg_pool_trim. */
struct tg_pool {
    size_t block_size;
    size_t max_free;
    size_t n_free;
    size_t n_out;  /* blocks handed out and not yet returned */
    size_t peak;   /* the most handed out at once since the last tg_pool_trim */
    bool keep_all; /* tg_pool_keep_peak: blocks come back to the list, tg_pool_trim frees */
    void *free_list;
};

void tg_pool_init(struct tg_pool *p, size_t block_size, size_t max_free);
/* From now on every block that comes back is kept, and tg_pool_trim, called periodically,
 * frees those the last period did not need. A pool whose demand comes in bursts (a worker's
 * buffers under keep-alive traffic: every request takes one and gives it back) then stops
 * handing blocks to malloc and free, which for large blocks means the heap growing and being
 * trimmed again, page faults included, many times a second. */
void tg_pool_keep_peak(struct tg_pool *p);
/* Frees the kept blocks beyond max_free and beyond what the most blocks handed out at once
 * since the previous call would need; the period starts again. */
void tg_pool_trim(struct tg_pool *p);
/* Frees the kept blocks. Every block must have come back first. */
void tg_pool_cleanup(struct tg_pool *p);

struct tg_buf {
    char *data; /* NULL while the buffer holds no storage */
    size_t head;
    size_t tail;
    size_t cap;
};

static inline size_t tg_buf_len(const struct tg_buf *b)
{
    return b->tail - b->head;
}

static inline char *tg_buf_data(const struct tg_buf *b)
{
    return b->data + b->head;
}

/* Room at the tail; 0 while there is no storage (call tg_buf_reserve first). */
static inline size_t tg_buf_room(const struct tg_buf *b)
{
    return b->cap - b->tail;
}

static inline char *tg_buf_tail(const struct tg_buf *b)
{
    return b->data + b->tail;
}

/* Makes sure the buffer has storage and, when no write is in flight from it (the caller
 * says so with may_move) and its tail has reached the end, moves the bytes to the front so
 * the room is all at the tail. Returns 0 or TG_ENOMEM. */
TG_MUST_USE int tg_buf_reserve(struct tg_buf *b, struct tg_pool *p, bool may_move);

/* Moves the bytes to the front, wherever the tail is, when that costs no more bytes moved
 * than it gains room (head >= length): repeated, each byte moves at most once for each byte
 * consumed before it. Never while a write from the buffer is in flight. */
void tg_buf_compact(struct tg_buf *b);

/* Flow control over b, a buffer that holds a peer's bytes until they leave (a tunnel
 * stream's toward its app): taken bytes have left it and not yet gone back to the peer as
 * window, and the peer may have `window` bytes in flight at most. Returns how many of them
 * may go back now: as many as keep what the peer may then send (window less what b holds
 * and what stays untaken) within the room at b's tail (a whole block of block bytes when b
 * has no storage). Moves b's bytes to the front first when that is cheap
 * (tg_buf_compact): never call it while a write from b is in flight. What it holds back
 * goes back on a later call, at the latest once b has emptied. */
size_t tg_buf_window_back(struct tg_buf *b, size_t block, size_t window, size_t taken);

/* Records n bytes written at the tail; n at most tg_buf_room() (asserted in debug builds). */
void tg_buf_commit(struct tg_buf *b, size_t n);

/* Drops n bytes from the head, at most tg_buf_len() (asserted in debug builds); an empty
 * buffer starts again at offset 0. */
void tg_buf_consume(struct tg_buf *b, size_t n);

/* Gives the storage back to the pool if the buffer is empty. */
void tg_buf_release(struct tg_buf *b, struct tg_pool *p);

/* Gives the storage back whatever it holds (on close). */
void tg_buf_drop(struct tg_buf *b, struct tg_pool *p);

#endif

/* Writing into a fixed buffer of the caller's: a write that does not fit sets full and
 * writes nothing, and so does every write after it, so the writer checks once at the end.
 * Pure: no allocation, any thread. */
#ifndef TOLLGATE_CURSOR_H
#define TOLLGATE_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct tg_cursor {
    char *dst;  /* cap bytes */
    size_t len; /* written so far */
    size_t cap;
    bool full; /* a write did not fit */
};

static inline void tg_cursor_put(struct tg_cursor *c, const void *src, size_t n)
{
    if (c->full || n > c->cap - c->len) {
        c->full = true;
        return;
    }
    memcpy(c->dst + c->len, src, n);
    c->len += n;
}

#endif

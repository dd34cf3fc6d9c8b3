/* The asynchronous end of an object that owns libuv handles or children which close
 * asynchronously (the `_close` verb, STYLE.md): the first close starts it and records whom
 * to tell; each handle's or child's close callback counts down open; the owner frees itself
 * once closing and nothing is open, then tells. Loop thread only, like the handles. */
#ifndef TOLLGATE_CLOSER_H
#define TOLLGATE_CLOSER_H

#include <stdbool.h>
#include <stddef.h>

struct tg_closer {
    bool closing;
    int open;                     /* handles and children whose close is still to come */
    void (*on_closed)(void *arg); /* told after the owner is freed; NULL: nobody */
    void *arg;
};

/* Starts the end with whom to tell. false when it had started already: the caller then
 * does nothing more (closing is idempotent). */
static inline bool tg_closer_start(struct tg_closer *cl, void (*on_closed)(void *arg), void *arg)
{
    if (cl->closing)
        return false;
    cl->closing = true;
    cl->on_closed = on_closed;
    cl->arg = arg;
    return true;
}

/* Whether the owner may be freed: closing, and nothing left open. */
static inline bool tg_closer_done(const struct tg_closer *cl)
{
    return cl->closing && cl->open == 0;
}

/* Tells whoever closed the owner; done is a copy taken before the owner was freed. */
static inline void tg_closer_notify(const struct tg_closer *done)
{
    if (done->on_closed != NULL)
        done->on_closed(done->arg);
}

/* Frees the owner with free_owner(owner), cl being inside it, then tells whoever closed it. */
static inline void tg_closer_finish(struct tg_closer *cl, void (*free_owner)(void *owner),
                                    void *owner)
{
    struct tg_closer done = *cl;

    free_owner(owner);
    tg_closer_notify(&done);
}

#endif

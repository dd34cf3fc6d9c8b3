#ifndef TOLLGATE_REF_H
#define TOLLGATE_REF_H

#include <stdatomic.h>
#include <stdbool.h>

/* Reference counts shared between threads (generations, configs, limit sets, pushed
 * resources): taking a reference needs no ordering; dropping one orders every earlier
 * write before the free that follows the last. */

static inline void tg_ref_take(atomic_uint *refs)
{
    atomic_fetch_add_explicit(refs, 1, memory_order_relaxed);
}

/* True when this was the last reference: the caller frees the object. */
static inline bool tg_ref_drop(atomic_uint *refs)
{
    return atomic_fetch_sub_explicit(refs, 1, memory_order_acq_rel) == 1;
}

/* Defines the _ref and _unref of a shared type T whose count is its member `member`:
 * `T *ref(T *o)` takes a reference and returns o; `void unref(T *o)` accepts NULL and calls
 * destroy(o) when it drops the last reference. One definition for every shared type, so that
 * none forgets the NULL test or the ordering. The names are spelt out in full, to be found. */
#define TG_REF_DEFINE(T, ref, unref, member, destroy)                                              \
    T *ref(T *o)                                                                                   \
    {                                                                                              \
        tg_ref_take(&o->member);                                                                   \
        return o;                                                                                  \
    }                                                                                              \
    void unref(T *o)                                                                               \
    {                                                                                              \
        if (o != NULL && tg_ref_drop(&o->member))                                                  \
            destroy(o);                                                                            \
    }

#endif

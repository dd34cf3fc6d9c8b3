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

#endif

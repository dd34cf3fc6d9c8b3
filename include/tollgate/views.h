/* The admin endpoint's views of a running sidecar, rendered on the control thread from
 * what it holds: /stats (Prometheus text: the metrics, then the control-plane client's
 * counters) and /config_dump (JSON: identity, roots, trust domains, control-plane resource
 * versions, listeners; never a key). Each returns a malloc'd text (the caller frees it) or
 * NULL when out of memory. Every string is written through the one JSON escaper (esc.h). */
#ifndef TOLLGATE_VIEWS_H
#define TOLLGATE_VIEWS_H

#include <stddef.h>

#include "tollgate/config.h"
#include "tollgate/cp_client.h"
#include "tollgate/gen.h"
#include "tollgate/metrics.h"
#include "tollgate/worker.h"
#include "tollgate/workload.h"

struct tg_view_src {
    const struct tg_config *cfg;   /* as the process started: listeners, paths */
    const struct tg_gen *gen;      /* newest published; NULL before the first certificate */
    const struct tg_runtime *rt;   /* the listeners */
    const struct tg_cp_client *cp; /* NULL: static mode */
    const struct tg_wl_client *wl; /* NULL: not identity.workload_api */
};

/* gen: the newest published generation, NULL before the first certificate. */
char *tg_view_stats(struct tg_metrics *m, const struct tg_gen *gen, const struct tg_cp_client *cp,
                    size_t *len);
char *tg_view_config_dump(const struct tg_view_src *v, size_t *len);

#endif

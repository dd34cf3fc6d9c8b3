/* tollgate-cp's admission webhook (k8s/k8s_webhook.h) started from its configuration
 * (kubernetes.webhook in cp.yaml) and the state loaded from it: the CA that issues the
 * serving certificate, our trust domain's roots for the caBundle, the API server, CA and
 * token of kubernetes.discovery, and the discovery's Namespace cache for the label re-check.
 * Loop thread only. */
#ifndef TOLLGATE_CP_WEBHOOK_H
#define TOLLGATE_CP_WEBHOOK_H

#include <uv.h>

#include "cp_k8s.h"
#include "cp_state.h"
#include "k8s_webhook.h"

/* Starts the webhook when s->cfg->webhook.on (else *out stays NULL and 0 is returned); k is
 * the running discovery (borrowed: it must outlive the webhook). */
TG_MUST_USE int tg_cp_webhook_start(uv_loop_t *loop, const struct tg_cp_state *s,
                                    const struct tg_cp_k8s *k, struct tg_k8s_webhook **out,
                                    char *err);
/* A reloaded state: a new CA or new roots reach the webhook. w may be NULL. */
void tg_cp_webhook_reload(struct tg_k8s_webhook *w, const struct tg_cp_state *s);

#endif

#include "tollgate/gen.h"

#include <stdlib.h>

static atomic_uint_fast64_t next_id = 1;

int tg_gen_build(const struct tg_gen_input *in, struct tg_gen **out, char *err)
{
    const struct tg_config *cfg = in->cfg;
    struct tg_identity_files files = {cfg->cert_path, cfg->key_path, cfg->bundle_path};
    struct tg_tls_settings s = {
        .allow_tls12 = cfg->allow_tls12,
        .max_chain_depth = cfg->max_chain_depth,
        .trust_domains = &cfg->trust_domains,
        .resumption = cfg->tls_resumption,
    };
    struct tg_gen *g = calloc(1, sizeof(*g));
    int rc = TG_ENOMEM;

    if (g == NULL)
        return rc;
    atomic_init(&g->refcnt, 1);
    if ((rc = tg_identity_load(&files, &g->identity, err)) < 0)
        goto fail;
    s.server = true;
    if ((rc = tg_tls_ctx_new(g->identity, &s, &g->server, err)) < 0)
        goto fail;
    s.server = false;
    if ((rc = tg_tls_ctx_new(g->identity, &s, &g->client, err)) < 0)
        goto fail;
    g->mesh = (struct tg_mesh){cfg->dests, cfg->n_dests, cfg->mesh_refuse_outside};
    g->id = atomic_fetch_add(&next_id, 1);
    *out = g;
    return 0;
fail:
    tg_gen_unref(g); /* copes with a half-built generation */
    return rc;
}

struct tg_gen *tg_gen_ref(struct tg_gen *g)
{
    atomic_fetch_add_explicit(&g->refcnt, 1, memory_order_relaxed);
    return g;
}

void tg_gen_unref(struct tg_gen *g)
{
    if (g == NULL || atomic_fetch_sub_explicit(&g->refcnt, 1, memory_order_acq_rel) != 1)
        return;
    tg_tls_ctx_free(g->server);
    tg_tls_ctx_free(g->client);
    tg_identity_free(g->identity);
    free(g);
}

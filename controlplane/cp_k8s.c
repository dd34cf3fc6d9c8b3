/* The derived mesh table, debounced and merged with the mesh files (cp_k8s.h). */
#include "cp_k8s.h"

#include <stdlib.h>
#include <string.h>

#include "tollgate/closer.h"
#include "tollgate/log.h"

struct tg_cp_k8s {
    struct tg_k8s_client *client;
    uv_timer_t debounce;
    struct tg_closer closer; /* open: the debounce timer, the client */
    char *trust_domain;
    struct tg_resource *derived; /* NULL before the first sync */
    struct tg_resource *overlay; /* a copy of the mesh files' table */
    struct tg_resource *merged;  /* what is pushed; NULL before the first sync */
    void (*on_table)(void *arg);
    void *arg;
};

static void remerge(struct tg_cp_k8s *k)
{
    struct tg_resource *m;

    if (k->derived == NULL)
        return;
    if (tg_k8s_mesh_merge(k->derived, k->overlay, &m) < 0) {
        tg_error("kubernetes: out of memory merging the mesh table: keeping the last one");
        return;
    }
    tg_resource_free(k->merged);
    k->merged = m;
    k->on_table(k->arg);
}

static void on_debounce(uv_timer_t *t)
{
    struct tg_cp_k8s *k = t->data;
    struct tg_k8s_list lists[TG_K8S_NKINDS];
    struct tg_k8s_derive_stats st;
    struct tg_resource *d;

    if (!tg_k8s_client_synced(k->client))
        return; /* the last list to complete calls again */
    tg_k8s_client_lists(k->client, lists);
    if (tg_k8s_derive(lists, k->trust_domain, &d, &st) < 0) {
        tg_error("kubernetes: out of memory deriving the mesh table: keeping the last one");
        return;
    }
    tg_info("kubernetes: mesh table derived from %zu services, %zu pods: %zu destinations (%zu "
            "services meshed, %zu endpoints outside the mesh, %zu services mixed, %zu skipped)",
            lists[TG_K8S_SERVICE].n, lists[TG_K8S_POD].n, st.destinations, st.services_meshed,
            st.endpoints_outside, st.services_mixed, st.skipped);
    tg_resource_free(k->derived);
    k->derived = d;
    remerge(k);
}

static void on_change(void *arg)
{
    struct tg_cp_k8s *k = arg;

    if (!k->closer.closing && !uv_is_active((uv_handle_t *)&k->debounce))
        uv_timer_start(&k->debounce, on_debounce, TG_CP_K8S_DEBOUNCE_MS, 0);
}

static int copy_overlay(const struct tg_resource *src, struct tg_resource **out)
{
    /* merging with nothing is a copy */
    return tg_k8s_mesh_merge(NULL, src, out);
}

void tg_cp_k8s_set_overlay(struct tg_cp_k8s *k, const struct tg_resource *overlay)
{
    struct tg_resource *o;

    if (copy_overlay(overlay, &o) < 0) {
        tg_error("kubernetes: out of memory copying the mesh files' table: keeping the last");
        return;
    }
    tg_resource_free(k->overlay);
    k->overlay = o;
    remerge(k);
}

const struct tg_resource *tg_cp_k8s_table(const struct tg_cp_k8s *k)
{
    return k->merged;
}

const struct tg_k8s_client_stats *tg_cp_k8s_stats(const struct tg_cp_k8s *k)
{
    return tg_k8s_client_stats(k->client);
}

const struct tg_k8s_client *tg_cp_k8s_client(const struct tg_cp_k8s *k)
{
    return k->client;
}

static void k8s_free(void *owner)
{
    struct tg_cp_k8s *k = owner;

    tg_resource_free(k->derived);
    tg_resource_free(k->overlay);
    tg_resource_free(k->merged);
    free(k->trust_domain);
    free(k);
}

static void maybe_free(struct tg_cp_k8s *k)
{
    if (--k->closer.open == 0)
        tg_closer_finish(&k->closer, k8s_free, k);
}

static void on_timer_closed(uv_handle_t *h)
{
    maybe_free(h->data);
}

static void on_client_closed(void *arg)
{
    maybe_free(arg);
}

int tg_cp_k8s_new(uv_loop_t *loop, const struct tg_cp_config *cfg,
                  const struct tg_resource *overlay, void (*on_table)(void *arg), void *arg,
                  struct tg_cp_k8s **out, char *err)
{
    struct tg_cp_k8s *k = calloc(1, sizeof(*k));
    struct tg_k8s_client_cfg kc = {
        .api_server = cfg->k8s_api_server, .ca_file = cfg->k8s_ca, .token_file = cfg->k8s_token};
    int rc;

    if (k == NULL || (k->trust_domain = strdup(cfg->trust_domain)) == NULL ||
        copy_overlay(overlay, &k->overlay) < 0) {
        if (k != NULL)
            k8s_free(k);
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    }
    k->on_table = on_table;
    k->arg = arg;
    if ((rc = tg_k8s_client_new(loop, &kc, on_change, k, &k->client, err)) < 0) {
        k8s_free(k);
        return rc;
    }
    uv_timer_init(loop, &k->debounce);
    k->debounce.data = k;
    k->closer.open = 2;
    *out = k;
    return 0;
}

void tg_cp_k8s_close(struct tg_cp_k8s *k, void (*on_closed)(void *arg), void *arg)
{
    if (!tg_closer_start(&k->closer, on_closed, arg))
        return;
    uv_close((uv_handle_t *)&k->debounce, on_timer_closed);
    tg_k8s_client_close(k->client, on_client_closed, k);
}

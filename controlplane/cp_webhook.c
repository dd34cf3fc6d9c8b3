/* The admission webhook from tollgate-cp's state (cp_webhook.h). */
#include "cp_webhook.h"

#include <stdlib.h>
#include <string.h>

#include "k8s_client.h"
#include "tollgate/log.h"

/* Our trust domain's roots, one PEM text (malloc'd), or NULL when out of memory. */
static char *roots_pem(const struct tg_cp_state *s)
{
    const struct tg_strlist *r = &s->res[TG_RES_TRUST_BUNDLE]->u.trust_bundle.domains[0].roots_pem;
    size_t len = 1;
    char *out;

    for (size_t i = 0; i < r->n; i++)
        len += strlen(r->v[i]) + 1;
    if ((out = malloc(len)) == NULL)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; i < r->n; i++) { /* each block ends its line */
        size_t n = strlen(r->v[i]);

        strcat(out, r->v[i]);
        if (n > 0 && r->v[i][n - 1] != '\n')
            strcat(out, "\n");
    }
    return out;
}

static struct tg_k8s_inject_ns lookup(void *arg, const char *ns)
{
    const struct tg_k8s_client *c = tg_cp_k8s_client(arg);
    struct tg_k8s_inject_ns out = {false, false};
    struct tg_k8s_list lists[TG_K8S_NKINDS];

    if (!tg_k8s_client_synced(c))
        return out; /* not known yet: the namespaceSelector decided */
    tg_k8s_client_lists(c, lists);
    for (size_t i = 0; i < lists[TG_K8S_NAMESPACE].n; i++) {
        const struct tg_k8s_obj *o = lists[TG_K8S_NAMESPACE].v[i];

        if (strcmp(o->name, ns) == 0) {
            out.known = true;
            out.inject = o->u.ns.inject;
            break;
        }
    }
    return out;
}

int tg_cp_webhook_start(uv_loop_t *loop, const struct tg_cp_state *s, const struct tg_cp_k8s *k,
                        struct tg_k8s_webhook **out, char *err)
{
    const struct tg_cp_config *c = s->cfg;
    const struct tg_k8s_client *kc;
    struct tg_k8s_webhook_cfg wc;
    char *bundle;
    int rc;

    *out = NULL;
    if (!c->webhook.on || k == NULL)
        return 0;
    kc = tg_cp_k8s_client(k);
    wc = (struct tg_k8s_webhook_cfg){
        .listen = &c->webhook.listen,
        .service = c->webhook.service,
        .ns = c->webhook.ns,
        .configuration = c->webhook.configuration,
        .image = c->webhook.image,
        .api_server = tg_k8s_client_server(kc),
        .ca_file = c->k8s_ca != NULL ? c->k8s_ca : TG_K8S_SA_DIR "/ca.crt",
        .token_file = c->k8s_token != NULL ? c->k8s_token : TG_K8S_SA_DIR "/token",
    };
    if ((bundle = roots_pem(s)) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    rc = tg_k8s_webhook_new(loop, &wc, s->ca, bundle, lookup, tg_unconst(k), out, err);
    free(bundle);
    return rc;
}

void tg_cp_webhook_reload(struct tg_k8s_webhook *w, const struct tg_cp_state *s)
{
    char *bundle;

    if (w == NULL)
        return;
    if ((bundle = roots_pem(s)) == NULL) {
        tg_error("webhook: out of memory: the reloaded CA and roots are not used");
        return;
    }
    tg_k8s_webhook_set_ca(w, s->ca, bundle);
    free(bundle);
}

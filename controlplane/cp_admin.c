/* tollgate-cp's admin pages (cp_admin.h) over the shared admin server (adminsrv.h). */
#include "cp_admin.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_k8s.h"
#include "cp_server.h"
#include "k8s_webhook.h"
#include "tollgate/metrics.h"
#include "tollgate/tls.h"

#define BODY_MAX 8192

struct tg_cp_admin {
    struct tg_cp_server *srv;
    struct tg_adminsrv *http;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void on_healthz(void *arg, struct tg_adminsrv_reply *out)
{
    struct tg_cp_admin *a = arg;

    out->status = tg_cp_server_healthy(a->srv) ? 200 : 503;
    out->body = out->status == 200 ? "ok\n" : "shutting down\n";
    out->len = strlen(out->body);
}

struct metric {
    const char *name, *type, *help;
    uint64_t v;
};

static size_t put_metrics(char *body, size_t o, const struct metric *m, size_t n)
{
    for (size_t i = 0; i < n && o < BODY_MAX; i++) {
        int w = snprintf(body + o, BODY_MAX - o, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n",
                         m[i].name, m[i].help, m[i].name, m[i].type, m[i].name, m[i].v);

        if (w < 0)
            break;
        o += (size_t)w;
    }
    return o;
}

/* Appends text (n bytes, freed here; NULL: out of memory, nothing appended) to *body (o
 * bytes so far; grown, or left as it is when out of memory) and returns its new length. */
static size_t append(char **body, size_t o, char *text, size_t n)
{
    char *grown;

    if (text != NULL && (grown = realloc(*body, o + n + 1)) != NULL) {
        memcpy(grown + o, text, n + 1);
        *body = grown;
        o += n;
    }
    free(text);
    return o;
}

/* The expiry of our serving certificate ("identity"), each root of our bundle and the
 * signing CA, as timestamps. */
static size_t put_certs(char **body, size_t o, const struct tg_cp_state *st)
{
    const struct tg_identity *id = st->server_id;
    struct tg_cert_expiry *c = calloc(id != NULL ? 2 + id->n_roots : 1, sizeof(*c));
    size_t n = 0, len = 0;
    char *text;

    if (c == NULL)
        return o;
    if (id != NULL)
        n = tg_identity_expiries(id, c);
    c[n++] = (struct tg_cert_expiry){"ca", st->cfg->trust_domain, tg_cp_ca_serial(st->ca),
                                     tg_cp_ca_not_after(st->ca)};
    text = tg_metrics_render_certs(c, n, &len); /* len is set by the call: not an argument */
    free(c);
    return append(body, o, text, len);
}

/* tollgate_build_info and the process_* series, as the sidecar's. */
static size_t put_process(char **body, size_t o)
{
    const struct tg_build_info b = {TG_VERSION, tg_tls_wolfssl_version(), tg_tls_aesni()};
    size_t n = 0;
    char *text = tg_metrics_render_process(&b, &n);

    return append(body, o, text, n);
}

static void on_stats(void *arg, struct tg_adminsrv_reply *out)
{
    struct tg_cp_admin *a = arg;
    const struct tg_cp_server_stats *s = tg_cp_server_stats(a->srv);
    const struct tg_cp_k8s *k8s = tg_cp_server_k8s(a->srv);
    const struct tg_k8s_client_stats none = {0}, *k = k8s != NULL ? tg_cp_k8s_stats(k8s) : &none;
    const struct metric k8s_m[] = {
        /* only with kubernetes.discovery */
        {"tollgate_cp_k8s_lists_total", "counter", "Kubernetes lists completed", k->lists},
        {"tollgate_cp_k8s_watches_total", "counter", "Kubernetes watches started", k->watches},
        {"tollgate_cp_k8s_events_total", "counter", "Kubernetes watch events applied", k->events},
        {"tollgate_cp_k8s_bookmarks_total", "counter", "Kubernetes BOOKMARKs", k->bookmarks},
        {"tollgate_cp_k8s_gone_total", "counter", "Kubernetes 410 Gone (relists)", k->gone},
        {"tollgate_cp_k8s_errors_total", "counter", "Kubernetes requests failed", k->errors},
        {"tollgate_cp_k8s_bad_objects_total", "counter", "Kubernetes objects skipped",
         k->bad_objects},
        {"tollgate_cp_k8s_unauthorized_total", "counter", "Kubernetes 401 answers",
         k->unauthorized},
        {"tollgate_cp_k8s_synced", "gauge", "1 once the cluster is listed and a table pushable",
         k8s != NULL && tg_cp_k8s_table(k8s) != NULL},
    };
    const struct tg_k8s_webhook *wh = tg_cp_server_webhook(a->srv);
    const struct tg_k8s_webhook_stats wnone = {0},
                                      *w = wh != NULL ? tg_k8s_webhook_stats(wh) : &wnone;
    const struct metric webhook_m[] = {
        /* only with kubernetes.webhook */
        {"tollgate_cp_webhook_reviews_total", "counter", "AdmissionReviews decided", w->requests},
        {"tollgate_cp_webhook_injected_total", "counter", "Pods patched with the sidecar",
         w->injected},
        {"tollgate_cp_webhook_refused_total", "counter", "Pods refused (allowed: false)",
         w->refused},
        {"tollgate_cp_webhook_rejected_total", "counter",
         "Webhook requests answered with an HTTP error", w->rejected},
        {"tollgate_cp_webhook_certs_total", "counter", "Serving certificates issued", w->certs},
        {"tollgate_cp_webhook_cabundle_ok_total", "counter", "caBundle checks that ended current",
         w->bundle_ok},
        {"tollgate_cp_webhook_cabundle_failed_total", "counter", "caBundle checks that failed",
         w->bundle_failed},
    };
    const struct metric m[] = {
        {"tollgate_cp_streams_total", "counter", "Streams accepted", s->streams},
        {"tollgate_cp_streams_open", "gauge", "Streams connected now", s->open_streams},
        {"tollgate_cp_hellos_refused_total", "counter", "Hellos refused (authentication)",
         s->refused},
        {"tollgate_cp_certs_issued_total", "counter", "CSRs signed", s->certs_issued},
        {"tollgate_cp_csrs_refused_total", "counter", "CSRs refused", s->csrs_refused},
        {"tollgate_cp_pushes_total", "counter", "Resources pushed", s->pushes},
        {"tollgate_cp_acks_total", "counter", "Pushes ACKed", s->acks},
        {"tollgate_cp_nacks_total", "counter", "Pushes NACKed", s->nacks},
        {"tollgate_cp_reloads_total", "counter", "Configuration reloads", s->reloads},
        {"tollgate_cp_reload_failures_total", "counter", "Reloads refused", s->reload_failures},
        {"tollgate_cp_unauthenticated_open", "gauge", "Streams open and not yet past Hello",
         s->unauthenticated_open},
    };
    /* the front door's refusals (cp.yaml limits, timeouts), by reason */
    const struct {
        const char *reason;
        uint64_t v;
    } r[] = {
        {"max_connections", s->refused_max_connections},
        {"per_address", s->refused_per_address},
        {"evicted", s->evicted},
        {"handshake_timeout", s->handshake_timeouts},
        {"hello_timeout", s->hello_timeouts},
    };
    char *body = malloc(BODY_MAX);
    size_t o = 0;

    if (body == NULL) {
        out->status = 500;
        out->body = "internal error\n";
        out->len = strlen(out->body);
        return;
    }
    o = put_metrics(body, o, m, TG_NELEM(m));
    if (k8s != NULL)
        o = put_metrics(body, o, k8s_m, TG_NELEM(k8s_m));
    if (wh != NULL)
        o = put_metrics(body, o, webhook_m, TG_NELEM(webhook_m));
    for (size_t i = 0; i < TG_NELEM(r) && o < BODY_MAX; i++) {
        int n = snprintf(body + o, BODY_MAX - o,
                         "%stollgate_cp_connections_refused_total{reason=\"%s\"} %" PRIu64 "\n",
                         i > 0 ? ""
                               : "# HELP tollgate_cp_connections_refused_total Streams refused or "
                                 "closed before they authenticated\n"
                                 "# TYPE tollgate_cp_connections_refused_total counter\n",
                         r[i].reason, r[i].v);

        if (n < 0)
            break;
        o += (size_t)n;
    }
    if (o >= BODY_MAX)
        o = BODY_MAX - 1;
    o = put_certs(&body, o, tg_cp_server_state(a->srv));
    o = put_process(&body, o);
    *out =
        (struct tg_adminsrv_reply){200, "text/plain; version=0.0.4; charset=utf-8", body, o, true};
}

static const struct tg_adminsrv_route routes[] = {
    {"/healthz", "GET, HEAD", TG_ADMINSRV_ANYONE, on_healthz, false, NULL},
    {"/stats", "GET, HEAD", TG_ADMINSRV_ANYONE, on_stats, false, NULL},
};

static void on_http_closed(void *arg)
{
    struct tg_cp_admin *a = arg;
    void (*cb)(void *) = a->on_closed;
    void *cb_arg = a->closed_arg;

    free(a);
    if (cb != NULL)
        cb(cb_arg);
}

int tg_cp_admin_new(uv_loop_t *loop, const struct tg_addr *addr, struct tg_cp_server *srv,
                    void (*on_closed)(void *arg), void *arg, struct tg_cp_admin **out, char *err)
{
    struct tg_cp_admin *a = calloc(1, sizeof(*a));
    struct tg_adminsrv_cfg cfg = {.name = "admin",
                                  .routes = routes,
                                  .n_routes = TG_NELEM(routes),
                                  .arg = a,
                                  .head_max = TG_CP_ADMIN_HEAD_MAX,
                                  .on_closed = on_http_closed};
    int rc;

    if (a == NULL) {
        if (on_closed != NULL)
            on_closed(arg); /* as promised: it runs on every failure */
        return tg_err_set(err, UV_ENOMEM, "admin %s: out of memory", addr->text);
    }
    a->srv = srv;
    a->on_closed = on_closed;
    a->closed_arg = arg;
    /* on failure on_http_closed frees a and calls on_closed */
    if ((rc = tg_adminsrv_start(loop, addr, &cfg, &a->http, err)) < 0)
        return rc;
    *out = a;
    return 0;
}

void tg_cp_admin_close(struct tg_cp_admin *a)
{
    tg_adminsrv_stop(a->http); /* a is freed in on_http_closed */
}

int tg_cp_admin_port(const struct tg_cp_admin *a)
{
    return tg_adminsrv_port(a->http);
}

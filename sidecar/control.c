/* The control thread: generations, file watching, admin endpoint, signals, drain. */
#include "tollgate/control.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "tollgate/admin.h"
#include "tollgate/gen.h"
#include "tollgate/log.h"
#include "tollgate/metrics.h"
#include "tollgate/worker.h"

#define WATCH_INTERVAL_MS 1000
#define RELOAD_SETTLE_MS 200 /* cert and key files are seldom replaced in one step */
#define DRAIN_POLL_MS 100

struct control {
    const struct tg_config *cfg; /* the one the process started with: listeners, workers */
    struct tg_config *cur;       /* the newest accepted: what generations are built from */
    uv_loop_t loop;
    struct tg_runtime rt;
    struct tg_listener_def *defs;
    const char **names;
    const char **directions;
    struct tg_metrics metrics;
    struct tg_worker *workers;
    struct tg_limiter *limiters; /* rt.limiters */
    unsigned n_workers;
    unsigned started;
    struct tg_gen *gen; /* newest published */
    struct tg_admin *admin;
    uv_fs_poll_t *watch;   /* config file, cert, key, bundle, then each CRL */
    size_t n_watch;
    uv_timer_t reload_timer;
    uv_timer_t drain_timer;
    uv_signal_t sigterm, sigint, sighup;
    bool config_changed; /* the config file changed since the last rebuild */
    bool draining; /* not ready, listeners closed */
    bool stopping; /* a signal: exit once drained */
    uint64_t drain_deadline;
    int exit_code;
};

static void publish(struct control *ctl, struct tg_gen *g)
{
    for (unsigned i = 0; i < ctl->started; i++)
        tg_worker_publish(&ctl->workers[i], g);
    tg_gen_unref(ctl->gen);
    ctl->gen = g;
    atomic_store(&ctl->metrics.process.generation, g->id);
    atomic_store(&ctl->metrics.process.identity_expiry_unix, g->identity->leaf.not_after);
}

static void reload(struct control *ctl, const char *why)
{
    struct tg_gen_input in = {ctl->cur};
    struct tg_gen *g;
    char err[TG_ERRLEN] = "";
    const struct tg_cert_info *old = &ctl->gen->identity->leaf;

    if (tg_gen_build(&in, &g, err) < 0) {
        tg_counter_add(&ctl->metrics.process.identity_reload_failures, 1);
        tg_warn("identity reload (%s) refused, keeping serial %s: %s", why, old->serial, err);
        return;
    }
    tg_info("identity reloaded (%s): %s serial %s -> %s, generation %llu", why,
            g->identity->leaf.id.id, old->serial, g->identity->leaf.serial,
            (unsigned long long)g->id);
    tg_counter_add(&ctl->metrics.process.identity_reloads, 1);
    publish(ctl, g);
}

/* ---- rate limits ---- */

#define LIMIT_KEYS 10000 /* callers remembered per limiter; idle full buckets make room */

static struct tg_ratelimit_limits limits_of(const struct tg_limit_cfg *l)
{
    return (struct tg_ratelimit_limits){
        .conns = {l->conns_per_second, l->burst},
        .max_conns = l->max_concurrent,
        .bytes = {l->bytes_per_second, 0},
    };
}

static bool unlimited(const struct tg_limit_cfg *l)
{
    return l->conns_per_second == 0 && l->max_concurrent == 0 && l->bytes_per_second == 0;
}

/* One limiter per override, then the default; a table only where there is a limit. */
static int make_limiters(struct control *ctl)
{
    const struct tg_config *cfg = ctl->cfg;
    size_t n = cfg->n_limits + 1;

    ctl->limiters = calloc(n, sizeof(*ctl->limiters));
    if (ctl->limiters == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct tg_limit_cfg *l = i < cfg->n_limits ? &cfg->limits[i] : &cfg->limit_default;
        struct tg_limiter *t = &ctl->limiters[i];

        t->principal = l->principal;
        t->lim = limits_of(l);
        if (!unlimited(l) && tg_ratelimit_new(&t->lim, LIMIT_KEYS, &t->table) < 0)
            return TG_ENOMEM;
    }
    ctl->rt.limiters = ctl->limiters;
    ctl->rt.n_limiters = n;
    ctl->rt.limit_by_fingerprint = cfg->limit_by_fingerprint;
    return 0;
}

/* A reload keeps the buckets and changes their limits; a limiter that would have to appear
 * or disappear, or match other callers, needs a restart (see needs_restart). */
static void relimit(struct control *ctl, const struct tg_config *next)
{
    uint64_t now = uv_hrtime();

    for (size_t i = 0; i < ctl->rt.n_limiters; i++) {
        struct tg_limiter *t = &ctl->limiters[i];
        const struct tg_limit_cfg *l = i < next->n_limits ? &next->limits[i]
                                                           : &next->limit_default;

        t->lim = limits_of(l);
        if (t->table != NULL)
            tg_ratelimit_set_limits(t->table, &t->lim, now);
    }
}

static void free_limiters(struct control *ctl)
{
    for (size_t i = 0; ctl->limiters != NULL && i < ctl->rt.n_limiters; i++)
        tg_ratelimit_free(ctl->limiters[i].table);
    free(ctl->limiters);
}

static bool same_list(const struct tg_strlist *a, const struct tg_strlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* What the workers and the file watches were set up with; a difference needs a restart.
 * Returns the first key that differs, or NULL. */
static const char *needs_restart(const struct tg_config *a, const struct tg_config *b)
{
    if (strcmp(a->admin.text, b->admin.text) != 0)
        return "admin";
    if (a->workers != b->workers)
        return "workers";
    if (a->buffer_size != b->buffer_size)
        return "buffer_size";
    if (a->access_log != b->access_log)
        return "access_log";
    if (a->handshake_timeout_ms != b->handshake_timeout_ms ||
        a->idle_timeout_ms != b->idle_timeout_ms ||
        a->connect_timeout_ms != b->connect_timeout_ms ||
        a->drain_timeout_ms != b->drain_timeout_ms)
        return "timeouts";
    if (!same_str(a->cert_path, b->cert_path) || !same_str(a->key_path, b->key_path) ||
        !same_str(a->bundle_path, b->bundle_path) || !same_list(&a->crl_paths, &b->crl_paths))
        return "identity file paths";
    if (a->n_inbound != b->n_inbound || a->n_outbound != b->n_outbound)
        return "listeners";
    if (a->n_limits != b->n_limits || a->limit_by_fingerprint != b->limit_by_fingerprint ||
        unlimited(&a->limit_default) != unlimited(&b->limit_default))
        return "rate_limits (which limiters exist)";
    for (size_t i = 0; i < a->n_limits; i++)
        if (strcmp(a->limits[i].principal, b->limits[i].principal) != 0 ||
            unlimited(&a->limits[i]) != unlimited(&b->limits[i]))
            return "rate_limits.overrides (principals)";
    for (size_t i = 0; i < a->n_inbound; i++) {
        const struct tg_inbound_cfg *x = &a->inbound[i], *y = &b->inbound[i];

        if (strcmp(x->name, y->name) || strcmp(x->listen.text, y->listen.text) ||
            strcmp(x->upstream.text, y->upstream.text) || x->transparent != y->transparent ||
            x->mode != y->mode || x->proxy_protocol != y->proxy_protocol ||
            !same_list(&x->allow, &y->allow))
            return "inbound";
    }
    for (size_t i = 0; i < a->n_outbound; i++) {
        const struct tg_outbound_cfg *x = &a->outbound[i], *y = &b->outbound[i];

        if (strcmp(x->name, y->name) || strcmp(x->listen.text, y->listen.text) ||
            strcmp(x->upstream.text, y->upstream.text) || x->transparent != y->transparent ||
            !same_list(&x->expect, &y->expect) || !same_str(x->sni, y->sni))
            return "outbound";
    }
    return NULL;
}

static void reload_config(struct control *ctl)
{
    struct tg_config *next;
    char err[TG_ERRLEN] = "";
    const char *key;

    if (tg_config_load(ctl->cfg->path, &next, err) < 0) {
        tg_counter_add(&ctl->metrics.process.identity_reload_failures, 1);
        tg_warn("config reload refused, keeping generation %llu: %s",
                (unsigned long long)ctl->gen->id, err);
        return;
    }
    if ((key = needs_restart(ctl->cfg, next)) != NULL) {
        tg_counter_add(&ctl->metrics.process.identity_reload_failures, 1);
        tg_warn("config reload refused: %s changed, which needs a restart; keeping "
                "generation %llu",
                key, (unsigned long long)ctl->gen->id);
        tg_config_unref(next);
        return;
    }
    relimit(ctl, next);
    tg_config_unref(ctl->cur);
    ctl->cur = next;
    reload(ctl, "config changed");
}

static void on_reload_timer(uv_timer_t *t)
{
    struct control *ctl = t->data;

    if (ctl->config_changed) {
        ctl->config_changed = false;
        reload_config(ctl); /* builds from the new file, identity files included */
        return;
    }
    reload(ctl, "files changed");
}

static void on_file_changed(uv_fs_poll_t *h, int status, const uv_stat_t *prev,
                            const uv_stat_t *curr)
{
    struct control *ctl = h->data;

    (void)prev;
    (void)curr;
    (void)status; /* a file that vanished is reported too; the rebuild says what is wrong */
    if (ctl->draining)
        return;
    if (h == &ctl->watch[0])
        ctl->config_changed = true;
    uv_timer_start(&ctl->reload_timer, on_reload_timer, RELOAD_SETTLE_MS, 0);
}

/* ---- admin ---- */

static bool on_admin_ready(void *arg)
{
    struct control *ctl = arg;

    return ctl->gen != NULL && !ctl->draining && ctl->started == ctl->n_workers;
}

static char *on_admin_stats(void *arg, size_t *len)
{
    struct control *ctl = arg;

    return tg_metrics_render(&ctl->metrics, len);
}

/* Appends s to the JSON text as a string literal. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static char *on_admin_config_dump(void *arg, size_t *len)
{
    struct control *ctl = arg;
    const struct tg_identity *id = ctl->gen->identity;
    char *text = NULL;
    FILE *f = open_memstream(&text, len);

    if (f == NULL)
        return NULL;
    fprintf(f,
            "{\"generation\":%llu,\"identity\":{\"spiffe_id\":", (unsigned long long)ctl->gen->id);
    json_str(f, id->leaf.id.id);
    fprintf(f, ",\"serial\":\"%s\",\"sha256\":\"%s\",\"not_before\":%lld,\"not_after\":%lld,",
            id->leaf.serial, id->leaf.sha256, (long long)id->leaf.not_before,
            (long long)id->leaf.not_after);
    fputs("\"cert\":", f);
    json_str(f, ctl->cfg->cert_path);
    fputs(",\"trust_bundle\":", f);
    json_str(f, ctl->cfg->bundle_path);
    fprintf(f, ",\"roots\":%zu},\"trust_domains\":[", id->n_roots);
    json_str(f, id->trust_domain);
    for (size_t i = 0; i < ctl->gen->cfg->trust_domains.n; i++) {
        fputc(',', f);
        json_str(f, ctl->gen->cfg->trust_domains.v[i]);
    }
    fputs("],\"listeners\":[", f);
    for (size_t i = 0; i < ctl->rt.n_listeners; i++) {
        const struct tg_listener_def *l = &ctl->defs[i];

        fprintf(f, "%s{\"name\":", i ? "," : "");
        json_str(f, l->name);
        fprintf(f, ",\"direction\":\"%s\",\"listen\":", l->inbound ? "inbound" : "outbound");
        json_str(f, l->listen->text);
        fputs(",\"upstream\":", f);
        json_str(f, l->transparent ? "original destination" : l->upstream->text);
        fprintf(f, ",\"%s\":[", l->inbound ? "allow" : "expect");
        for (size_t j = 0; j < l->rule.ids->n; j++) {
            if (j)
                fputc(',', f);
            json_str(f, l->rule.ids->v[j]);
        }
        fputs("]}", f);
    }
    fputs("]}\n", f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static void start_drain(struct control *ctl, const char *why);

static void on_admin_drain(void *arg)
{
    struct control *ctl = arg;

    start_drain(ctl, "POST /drain");
}

/* ---- drain and stop ---- */

static size_t open_conns(struct control *ctl)
{
    size_t n = 0;

    for (unsigned i = 0; i < ctl->started; i++)
        n += atomic_load(&ctl->workers[i].n_conns);
    return n;
}

static void stop_everything(struct control *ctl)
{
    for (unsigned i = 0; i < ctl->started; i++)
        tg_worker_stop(&ctl->workers[i]);
    uv_close((uv_handle_t *)&ctl->drain_timer, NULL);
    uv_close((uv_handle_t *)&ctl->reload_timer, NULL);
    for (size_t i = 0; i < ctl->n_watch; i++)
        uv_close((uv_handle_t *)&ctl->watch[i], NULL);
    uv_close((uv_handle_t *)&ctl->sigterm, NULL);
    uv_close((uv_handle_t *)&ctl->sigint, NULL);
    uv_close((uv_handle_t *)&ctl->sighup, NULL);
    tg_admin_stop(ctl->admin);
    ctl->admin = NULL;
}

static void on_drain_timer(uv_timer_t *t)
{
    struct control *ctl = t->data;
    size_t n = open_conns(ctl);

    if (!ctl->stopping)
        return;
    if (n > 0 && uv_now(&ctl->loop) < ctl->drain_deadline)
        return;
    if (n > 0)
        tg_warn("drain deadline reached: closing %zu connections", n);
    else
        tg_info("drained: no connections left");
    stop_everything(ctl);
}

static void start_drain(struct control *ctl, const char *why)
{
    if (ctl->draining)
        return;
    ctl->draining = true;
    tg_info("draining (%s): not ready, listeners closed, %zu connections open", why,
            open_conns(ctl));
    for (unsigned i = 0; i < ctl->started; i++)
        tg_worker_drain(&ctl->workers[i]);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct control *ctl = s->data;

    if (signum == SIGHUP) {
        reload(ctl, "SIGHUP");
        return;
    }
    if (ctl->stopping) {
        tg_warn("second signal: stopping now");
        ctl->drain_deadline = 0;
        return;
    }
    start_drain(ctl, signum == SIGTERM ? "SIGTERM" : "SIGINT");
    ctl->stopping = true;
    ctl->drain_deadline = uv_now(&ctl->loop) + ctl->cfg->drain_timeout_ms;
    uv_timer_start(&ctl->drain_timer, on_drain_timer, 0, DRAIN_POLL_MS);
}

/* ---- start-up ---- */

static int make_listeners(struct control *ctl)
{
    const struct tg_config *cfg = ctl->cfg;
    size_t n = cfg->n_inbound + cfg->n_outbound;

    ctl->defs = calloc(n, sizeof(*ctl->defs));
    ctl->names = calloc(n, sizeof(*ctl->names));
    ctl->directions = calloc(n, sizeof(*ctl->directions));
    if (ctl->defs == NULL || ctl->names == NULL || ctl->directions == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct tg_listener_def *l = &ctl->defs[i];

        l->index = i;
        l->inbound = i < cfg->n_inbound;
        if (l->inbound) {
            const struct tg_inbound_cfg *in = &cfg->inbound[i];

            l->name = in->name;
            l->listen = &in->listen;
            l->upstream = in->transparent ? NULL : &in->upstream;
            l->transparent = in->transparent;
            l->mode = in->mode;
            l->proxy_protocol = in->proxy_protocol;
            l->rule.ids = &in->allow;
        } else {
            const struct tg_outbound_cfg *out = &cfg->outbound[i - cfg->n_inbound];

            l->name = out->name;
            l->listen = &out->listen;
            l->upstream = out->transparent ? NULL : &out->upstream;
            l->transparent = out->transparent;
            l->rule.ids = &out->expect;
        }
        ctl->names[i] = l->name;
        ctl->directions[i] = l->inbound ? "inbound" : "outbound";
    }
    ctl->rt.cfg = cfg;
    ctl->rt.listeners = ctl->defs;
    ctl->rt.n_listeners = n;
    ctl->rt.metrics = &ctl->metrics;
    return 0;
}

static void init_handles(struct control *ctl)
{
    const struct tg_config *cfg = ctl->cfg;
    const char *fixed[4] = {cfg->path, cfg->cert_path, cfg->key_path, cfg->bundle_path};

    uv_timer_init(&ctl->loop, &ctl->reload_timer);
    ctl->reload_timer.data = ctl;
    uv_timer_init(&ctl->loop, &ctl->drain_timer);
    ctl->drain_timer.data = ctl;
    for (size_t i = 0; i < ctl->n_watch; i++) {
        const char *file = i < 4 ? fixed[i] : cfg->crl_paths.v[i - 4];

        uv_fs_poll_init(&ctl->loop, &ctl->watch[i]);
        ctl->watch[i].data = ctl;
        uv_fs_poll_start(&ctl->watch[i], on_file_changed, file, WATCH_INTERVAL_MS);
    }
    uv_signal_init(&ctl->loop, &ctl->sigterm);
    uv_signal_init(&ctl->loop, &ctl->sigint);
    uv_signal_init(&ctl->loop, &ctl->sighup);
    ctl->sigterm.data = ctl->sigint.data = ctl->sighup.data = ctl;
    uv_signal_start(&ctl->sigterm, on_signal, SIGTERM);
    uv_signal_start(&ctl->sigint, on_signal, SIGINT);
    uv_signal_start(&ctl->sighup, on_signal, SIGHUP);
}

int tg_control_run(struct tg_config *cfg)
{
    struct control *ctl = calloc(1, sizeof(*ctl));
    struct tg_gen_input in = {cfg};
    struct tg_admin_ops ops;
    char err[TG_ERRLEN] = "";
    int rc = 1;

    if (ctl == NULL)
        return 1;
    ctl->cfg = cfg;
    ctl->cur = tg_config_ref(cfg);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&ctl->loop);
    ctl->n_workers = cfg->workers ? cfg->workers : uv_available_parallelism();
    if (tg_gen_build(&in, &ctl->gen, err) < 0) {
        tg_error("%s", err);
        goto done;
    }
    if (make_listeners(ctl) < 0 || make_limiters(ctl) < 0 ||
        tg_metrics_init(&ctl->metrics, ctl->n_workers, ctl->rt.n_listeners, ctl->names,
                        ctl->directions) < 0 ||
        (ctl->workers = calloc(ctl->n_workers, sizeof(*ctl->workers))) == NULL ||
        (ctl->watch = calloc(4 + cfg->crl_paths.n, sizeof(*ctl->watch))) == NULL) {
        tg_error("out of memory");
        goto done;
    }
    atomic_store(&ctl->metrics.process.generation, ctl->gen->id);
    atomic_store(&ctl->metrics.process.identity_expiry_unix, ctl->gen->identity->leaf.not_after);
    for (size_t i = 0; i < ctl->rt.n_listeners; i++) {
        if (tg_listener_probe(ctl->defs[i].listen, err) < 0) {
            tg_error("%s", err);
            goto stop;
        }
    }
    for (; ctl->started < ctl->n_workers; ctl->started++) {
        if (tg_worker_start(&ctl->workers[ctl->started], ctl->started, &ctl->rt, ctl->gen, err) <
            0) {
            tg_error("%s", err);
            goto stop;
        }
    }
    if (cfg->admin.len > 0) {
        ops = (struct tg_admin_ops){ctl, on_admin_ready, on_admin_stats, on_admin_config_dump,
                                    on_admin_drain};
        if (tg_admin_start(&ctl->loop, &cfg->admin, &ops, &ctl->admin, err) < 0) {
            tg_error("%s", err);
            goto stop;
        }
    }
    ctl->n_watch = 4 + cfg->crl_paths.n;
    init_handles(ctl);
    tg_info("tollgate %s: %s, serial %s, %u workers, %zu listeners, generation %llu", TG_VERSION,
            ctl->gen->identity->leaf.id.id, ctl->gen->identity->leaf.serial, ctl->n_workers,
            ctl->rt.n_listeners, (unsigned long long)ctl->gen->id);
    uv_run(&ctl->loop, UV_RUN_DEFAULT);
    rc = 0;
    goto join;
stop:
    for (unsigned i = 0; i < ctl->started; i++)
        tg_worker_stop(&ctl->workers[i]);
join:
    for (unsigned i = 0; i < ctl->started; i++)
        tg_worker_join(&ctl->workers[i]);
    uv_run(&ctl->loop, UV_RUN_DEFAULT); /* admin and timers finish closing */
    tg_metrics_cleanup(&ctl->metrics);
done:
    tg_gen_unref(ctl->gen);
    tg_config_unref(ctl->cur);
    if (uv_loop_close(&ctl->loop) != 0)
        tg_warn("control loop closed with handles open");
    free(ctl->workers);
    free_limiters(ctl);
    free(ctl->watch);
    free(ctl->defs);
    free(ctl->names);
    free(ctl->directions);
    free(ctl);
    if (rc == 0)
        tg_info("stopped");
    return rc;
}

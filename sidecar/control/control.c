/* The control thread: generations, file watching, admin endpoint, signals, drain. */
#include "tollgate/control.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "tollgate/admin.h"
#include "tollgate/appprobe.h"
#include "tollgate/cp_client.h"
#include "tollgate/file.h"
#include "tollgate/gen.h"
#include "tollgate/identity.h"
#include "tollgate/log.h"
#include "tollgate/metrics.h"
#include "tollgate/notify.h"
#include "tollgate/views.h"
#include "tollgate/worker.h"
#include "tollgate/workload.h"

#define WATCH_INTERVAL_MS 1000
#define RELOAD_SETTLE_MS 200 /* cert and key files are seldom replaced in one step */
#define DRAIN_POLL_MS 100

struct control {
    const struct tg_config *cfg; /* the one the process started with: listeners, workers */
    struct tg_config *cur;       /* the newest accepted: what generations are built from */
    uv_loop_t loop;
    bool loop_ready; /* uv_loop_init succeeded: teardown runs and closes it */
    struct tg_runtime rt;
    struct tg_listener_def *defs;
    const char **names;
    const char **directions;
    struct tg_metrics metrics;
    struct tg_worker *workers;
    struct tg_listener_limit *llimits; /* [rt.n_listeners], the defs point here */
    size_t n_llimits;                  /* initialised */
    unsigned n_workers;
    unsigned started;
    struct tg_gen *gen; /* newest published */
    struct tg_admin *admin;
    struct tg_admin *health;     /* "health:", the kubelet's port; NULL: none */
    struct tg_admin *metrics_ep; /* "metrics:", Prometheus' port; NULL: none */
    struct tg_appprobes *probes; /* TG_APPPROBE_ENV (appprobe.h); NULL: none */
    uv_fs_poll_t *watch;         /* config, cert, key, bundle, each CRL, each federated bundle */
    size_t n_watch;
    uv_timer_t reload_timer;
    uv_timer_t drain_timer;
    uv_timer_t watchdog_timer; /* WATCHDOG_USEC/2, when systemd asks for a watchdog */
    struct tg_notify notify;   /* sd_notify: READY, STOPPING, STATUS, WATCHDOG */
    unsigned *beats_seen;      /* [n_workers]: each worker's beats at the last watchdog tick */
    unsigned pinged;           /* workers pinged at the last tick */
    bool watchdog_stalled;     /* a worker missed a tick: pings withheld (logged once) */
    uv_signal_t sigterm, sigint, sighup;
    bool config_changed; /* the config file changed since the last rebuild */
    bool draining;       /* not ready, listeners closed */
    bool stopping;       /* exit once drained: a signal, or POST /drain */
    bool signalled;      /* SIGTERM or SIGINT came: a second one stops at once */
    uint64_t drain_deadline;
    int exit_code;

    /* control-plane mode (cfg->cp.enabled) */
    struct tg_cp_client *cp;
    struct tg_cp_state cps;      /* the newest accepted push of each type */
    struct tg_identity_key *key; /* the key of the chain we hold; NULL: none yet */
    char *chain;                 /* the signed chain we hold (PEM); NULL: none yet */
    size_t chain_len;
    struct tg_identity_key *pending_key; /* the key of the CSR waiting for an answer */
    unsigned char *pending_csr;
    size_t pending_csr_len;
    char *ca_pem; /* the bootstrap root, read at start */
    size_t ca_len;
    struct tg_res_label *labels; /* Hello labels, pointing into cfg */
    uv_timer_t renew_timer;      /* next renewal, or the retry of one */
    unsigned renew_attempt;      /* retries of the current renewal */
    int64_t renew_at_ms;         /* loop ms the current renewal started; 0: none */

    /* Workload API mode (cfg->wl.enabled) */
    struct tg_wl_client *wl;
    struct tg_svid *svid; /* the SVID the newest generation was built from; NULL: none yet */
};

static int start_workers(struct control *ctl, char *err);
static void stop_cp(struct control *ctl);

/* ---- systemd (notify.h) ---- */

static void notify(struct control *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notify(struct control *ctl, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    int rc;

    if (ctl->notify.fd < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if ((rc = tg_notify_send(&ctl->notify, msg)) < 0)
        tg_warn("NOTIFY_SOCKET: send failed: %s", strerror(-rc));
}

/* Every listener accepts: systemd may start the units ordered after ours. */
static void notify_ready(struct control *ctl)
{
    notify(ctl, "READY=1\nSTATUS=ready: %s, %zu listeners, generation %llu\nMAINPID=%ld",
           ctl->gen->identity->leaf.id.id, ctl->rt.n_listeners, (unsigned long long)ctl->gen->id,
           (long)getpid());
}

/* WATCHDOG=1 only when every worker answered the previous tick's ping: a worker stuck in a
 * call stops the pings, and systemd restarts the sidecar (WatchdogSec=). */
static void on_watchdog_timer(uv_timer_t *t)
{
    struct control *ctl = t->data;
    unsigned stuck = ctl->pinged;

    for (unsigned i = 0; i < ctl->pinged; i++)
        if (atomic_load(&ctl->workers[i].beats) == ctl->beats_seen[i]) {
            stuck = i;
            break;
        }
    if (stuck == ctl->pinged) {
        notify(ctl, "WATCHDOG=1");
        if (ctl->watchdog_stalled)
            tg_info("watchdog: every worker answers again");
        ctl->watchdog_stalled = false;
    } else if (!ctl->watchdog_stalled) {
        tg_error("watchdog: worker %u has not answered for %llu ms: keep-alives to systemd "
                 "withheld",
                 stuck, (unsigned long long)(ctl->notify.watchdog_usec / 2000));
        ctl->watchdog_stalled = true;
    }
    for (unsigned i = 0; i < ctl->started; i++) {
        ctl->beats_seen[i] = atomic_load(&ctl->workers[i].beats);
        tg_worker_ping(&ctl->workers[i]);
    }
    ctl->pinged = ctl->started;
}

static void publish(struct control *ctl, struct tg_gen *g)
{
    char err[TG_ERRLEN] = "";
    bool first = ctl->gen == NULL;

    tg_limit_set_apply(g->limits, uv_hrtime()); /* shared tables take the new limits now */
    for (unsigned i = 0; i < ctl->started; i++)
        tg_worker_publish(&ctl->workers[i], g);
    tg_gen_unref(ctl->gen);
    ctl->gen = g;
    atomic_store(&ctl->metrics.process.generation, g->id);
    atomic_store(&ctl->metrics.process.identity_expiry_unix, g->identity->leaf.not_after);
    /* control-plane and Workload API modes: listeners open only once there is an identity
     * and a bundle */
    if (first && (ctl->cfg->cp.enabled || ctl->cfg->wl.enabled) && !ctl->draining) {
        if (start_workers(ctl, err) < 0) {
            tg_error("%s; stopping", err);
            ctl->exit_code = 1;
            raise(SIGTERM);
            return;
        }
        tg_info("ready: %s, serial %s, %u workers, %zu listeners, generation %llu",
                g->identity->leaf.id.id, g->identity->leaf.serial, ctl->n_workers,
                ctl->rt.n_listeners, (unsigned long long)g->id);
        notify_ready(ctl);
    } else if (!first) {
        notify(ctl, "STATUS=ready: %s, %zu listeners, generation %llu", g->identity->leaf.id.id,
               ctl->rt.n_listeners, (unsigned long long)g->id);
    }
}

/* A generation from the current config and, in control-plane mode, the chain and key we hold
 * and the pushes accepted so far. */
static void build_input(struct control *ctl, struct tg_gen_input *in)
{
    *in = (struct tg_gen_input){.cfg = ctl->cur, .prev_limits = ctl->gen ? ctl->gen->limits : NULL};
    if (ctl->cfg->cp.enabled) {
        in->chain_pem = ctl->chain;
        in->chain_len = ctl->chain_len;
        in->key = ctl->key;
        in->cp = &ctl->cps;
    }
    if (ctl->cfg->wl.enabled)
        in->svid = ctl->svid;
}

static int build(struct control *ctl, struct tg_gen **out, char *err)
{
    struct tg_gen_input in;

    build_input(ctl, &in);
    if (ctl->cfg->cp.enabled && !ctl->cfg->wl.enabled && ctl->chain == NULL)
        return tg_err_set(err, TG_EINVAL, "no identity from the control plane yet");
    if (ctl->cfg->wl.enabled && ctl->svid == NULL)
        return tg_err_set(err, TG_EINVAL, "no SVID from the Workload API yet");
    return tg_gen_build(&in, out, err);
}

static void reload(struct control *ctl, const char *why)
{
    struct tg_gen *g;
    char err[TG_ERRLEN] = "", old[TG_SERIAL_HEX];

    if (ctl->gen == NULL) {
        tg_info("reload (%s) skipped: no identity from the %s yet", why,
                ctl->cfg->wl.enabled ? "Workload API" : "control plane");
        return;
    }
    snprintf(old, sizeof(old), "%s", ctl->gen->identity->leaf.serial);
    if (build(ctl, &g, err) < 0) {
        tg_counter_add(&ctl->metrics.process.identity_reload_failures, 1);
        tg_warn("identity reload (%s) refused, keeping serial %s: %s", why, old, err);
        return;
    }
    tg_counter_add(&ctl->metrics.process.identity_reloads, 1);
    publish(ctl, g);
    /* said once the workers can take it: what arrives after this line is decided by it */
    tg_info("identity reloaded (%s): %s serial %s -> %s, generation %llu", why,
            g->identity->leaf.id.id, old, g->identity->leaf.serial, (unsigned long long)g->id);
}

/* ---- listener limits ---- */

/* From no limit the bucket starts full; otherwise it keeps its level (tg_bucket_relimit). */
static void set_listener_limit(struct tg_listener_limit *l, const struct tg_listener_limit_cfg *c)
{
    struct tg_bucket_limit rate = {c->conns_per_second, c->burst};
    struct tg_bucket_limit bytes = {c->bytes_per_second, 0};

    tg_ratelimit_global_set_limit(&l->rate, &rate, uv_hrtime());
    tg_ratelimit_global_set_limit(&l->bytes, &bytes, uv_hrtime());
    atomic_store(&l->bytes_on, c->bytes_per_second > 0);
    atomic_store(&l->max, c->max_connections);
}

static const struct tg_listener_limit_cfg *listener_limit_cfg(const struct tg_config *cfg, size_t i)
{
    return i < cfg->n_inbound ? &cfg->inbound[i].limits : &cfg->outbound[i - cfg->n_inbound].limits;
}

/* A reload changes the listeners' limits in place: the buckets keep their levels. */
static void relimit_listeners(struct control *ctl, const struct tg_config *next)
{
    for (size_t i = 0; i < ctl->rt.n_listeners; i++)
        set_listener_limit(&ctl->llimits[i], listener_limit_cfg(next, i));
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
    if (a->tunnel_pool.streams_per_connection != b->tunnel_pool.streams_per_connection ||
        a->tunnel_pool.connections_per_destination != b->tunnel_pool.connections_per_destination ||
        a->tunnel_pool.idle_timeout_ms != b->tunnel_pool.idle_timeout_ms)
        return "tunnel_pool";
    if (a->access_log != b->access_log)
        return "access_log";
    if (a->access_log_text != b->access_log_text || a->log_format != b->log_format)
        return "access_log_format or log_format";
    if (!same_str(a->cert_path, b->cert_path) || !same_str(a->key_path, b->key_path) ||
        !same_str(a->bundle_path, b->bundle_path) ||
        !tg_strlist_equal(&a->crl_paths, &b->crl_paths) ||
        !same_str(a->intermediates_path, b->intermediates_path) ||
        !tg_strlist_equal(&a->trust_domains, &b->trust_domains) ||
        !tg_strlist_equal(&a->trust_domain_bundles, &b->trust_domain_bundles))
        return "identity file paths";
    if (a->cp.enabled != b->cp.enabled ||
        (a->cp.enabled && (!tg_strlist_equal(&a->cp.addresses, &b->cp.addresses) ||
                           !same_str(a->cp.ca_path, b->cp.ca_path) ||
                           !same_str(a->cp.token_path, b->cp.token_path) ||
                           !tg_strlist_equal(&a->cp.server_ids, &b->cp.server_ids) ||
                           !same_str(a->cp.node_id, b->cp.node_id) ||
                           !same_str(a->cp.namespace_, b->cp.namespace_) ||
                           !same_str(a->cp.service_account, b->cp.service_account) ||
                           a->cp.renew_fraction != b->cp.renew_fraction)))
        return "control_plane";
    if (a->wl.enabled != b->wl.enabled ||
        (a->wl.enabled &&
         (strcmp(a->wl.socket, b->wl.socket) != 0 || !same_str(a->wl.spiffe_id, b->wl.spiffe_id))))
        return "identity.workload_api";
    if (a->n_inbound != b->n_inbound || a->n_outbound != b->n_outbound)
        return "listeners";
    for (size_t i = 0; i < a->n_inbound; i++) {
        const struct tg_inbound_cfg *x = &a->inbound[i], *y = &b->inbound[i];

        if (strcmp(x->name, y->name) || strcmp(x->listen.text, y->listen.text) ||
            strcmp(x->upstream.text, y->upstream.text) || x->transparent != y->transparent ||
            x->mode != y->mode || x->proxy_protocol != y->proxy_protocol ||
            !tg_strlist_equal(&x->allow, &y->allow) || x->allow_unauth != y->allow_unauth ||
            x->tunnels != y->tunnels || x->http != y->http ||
            x->http_cfg.xfcc != y->http_cfg.xfcc ||
            x->http_cfg.client_cert != y->http_cfg.client_cert ||
            x->http_cfg.max_head != y->http_cfg.max_head ||
            x->http_cfg.max_line != y->http_cfg.max_line ||
            x->http_cfg.max_fields != y->http_cfg.max_fields)
            return "inbound";
    }
    for (size_t i = 0; i < a->n_outbound; i++) {
        const struct tg_outbound_cfg *x = &a->outbound[i], *y = &b->outbound[i];

        if (strcmp(x->name, y->name) || strcmp(x->listen.text, y->listen.text) ||
            strcmp(x->upstream.text, y->upstream.text) || x->transparent != y->transparent ||
            !tg_strlist_equal(&x->expect, &y->expect) || !same_str(x->sni, y->sni) ||
            x->http != y->http || x->tunnel != y->tunnel)
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
                (unsigned long long)(ctl->gen != NULL ? ctl->gen->id : 0), err);
        return;
    }
    if ((key = needs_restart(ctl->cfg, next)) != NULL) {
        tg_counter_add(&ctl->metrics.process.identity_reload_failures, 1);
        tg_warn("config reload refused: %s changed, which needs a restart; keeping "
                "generation %llu",
                key, (unsigned long long)(ctl->gen != NULL ? ctl->gen->id : 0));
        tg_config_unref(next);
        return;
    }
    relimit_listeners(ctl, next);
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

/* The watch compares each file with how it found it first, a stat made on a thread of
 * libuv's some time after the start: a config file replaced in between (by a test, an
 * operator, an agent) would never be seen. Once the watch runs, the file is compared with
 * how it was read. */
static void on_startup_check(uv_timer_t *t)
{
    struct control *ctl = t->data;
    struct tg_file_id now;

    if (ctl->draining || !tg_config_file_id(ctl->cfg->path, &now) ||
        memcmp(&now, &ctl->cfg->file_id, sizeof(now)) == 0)
        return;
    ctl->config_changed = true;
    uv_timer_start(&ctl->reload_timer, on_reload_timer, RELOAD_SETTLE_MS, 0);
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

    /* an expired certificate cannot complete a handshake: not ready until a new one comes */
    return ctl->gen != NULL && !ctl->draining && ctl->started == ctl->n_workers &&
           ctl->gen->identity->leaf.not_after > tg_identity_now();
}

static char *on_admin_stats(void *arg, size_t *len)
{
    struct control *ctl = arg;

    return tg_view_stats(&ctl->metrics, ctl->gen, ctl->cp, len);
}

static char *on_admin_config_dump(void *arg, size_t *len)
{
    const struct control *ctl = arg;
    const struct tg_view_src src = {ctl->cfg, ctl->gen, &ctl->rt, ctl->cp, ctl->wl};

    return tg_view_config_dump(&src, len);
}

static void start_stop(struct control *ctl, const char *why);

/* A drained sidecar must not linger looking healthy (issue 12 item 3): it exits like a
 * stopped one, once its connections are gone or timeouts.drain has passed, but with
 * TG_EXIT_DRAINED, so that a supervisor restarts it (Restart=on-failure; the kubelet restarts
 * a native sidecar whatever its status). /live stays 200 meanwhile: a liveness kill would cut
 * the connections it is finishing. */
static void on_admin_drain(void *arg)
{
    struct control *ctl = arg;

    if (ctl->stopping)
        return; /* already on its way out (a signal, or an earlier POST) */
    if (ctl->exit_code == 0)
        ctl->exit_code = TG_EXIT_DRAINED;
    start_stop(ctl, "POST /drain");
}

/* ---- drain and stop ---- */

static size_t open_conns(struct control *ctl)
{
    size_t n = 0;

    for (unsigned i = 0; i < ctl->started; i++)
        n += atomic_load(&ctl->workers[i].n_conns);
    return n;
}

static void stop_admins(struct control *ctl);

static void stop_everything(struct control *ctl)
{
    for (unsigned i = 0; i < ctl->started; i++)
        tg_worker_stop(&ctl->workers[i]);
    uv_close((uv_handle_t *)&ctl->drain_timer, NULL);
    uv_close((uv_handle_t *)&ctl->watchdog_timer, NULL);
    uv_close((uv_handle_t *)&ctl->reload_timer, NULL);
    for (size_t i = 0; i < ctl->n_watch; i++)
        uv_close((uv_handle_t *)&ctl->watch[i], NULL);
    uv_close((uv_handle_t *)&ctl->sigterm, NULL);
    uv_close((uv_handle_t *)&ctl->sigint, NULL);
    uv_close((uv_handle_t *)&ctl->sighup, NULL);
    stop_admins(ctl);
    stop_cp(ctl);
    tg_wl_client_close(ctl->wl);
    ctl->wl = NULL;
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
    if (ctl->exit_code == TG_EXIT_DRAINED)
        tg_info("drained on request (POST /drain): exiting with exit status %d, for the "
                "supervisor to start a fresh sidecar",
                TG_EXIT_DRAINED);
    stop_everything(ctl);
}

static void start_drain(struct control *ctl, const char *why)
{
    if (ctl->draining)
        return;
    ctl->draining = true;
    tg_info("draining (%s): not ready, listeners closed, %zu connections open", why,
            open_conns(ctl));
    notify(ctl, "STOPPING=1\nSTATUS=draining (%s): %zu connections open", why, open_conns(ctl));
    for (unsigned i = 0; i < ctl->started; i++)
        tg_worker_drain(&ctl->workers[i]);
}

/* Drains, then exits once no connection is left or at the drain deadline. */
static void start_stop(struct control *ctl, const char *why)
{
    start_drain(ctl, why);
    ctl->stopping = true;
    ctl->drain_deadline = uv_now(&ctl->loop) + ctl->cur->drain_timeout_ms;
    uv_timer_start(&ctl->drain_timer, on_drain_timer, 0, DRAIN_POLL_MS);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct control *ctl = s->data;

    if (signum == SIGHUP) {
        reload(ctl, "SIGHUP");
        return;
    }
    if (ctl->signalled) {
        tg_warn("second signal: stopping now");
        ctl->drain_deadline = 0;
        return;
    }
    ctl->signalled = true;
    /* a stop the supervisor asked for is a clean one, even during a requested drain (a
     * preStop hook's POST /drain, then the kubelet's SIGTERM), and keeps that drain's
     * deadline */
    if (ctl->exit_code == TG_EXIT_DRAINED)
        ctl->exit_code = 0;
    if (!ctl->stopping)
        start_stop(ctl, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- control plane (cfg->cp.enabled) ---- */

/* A fresh key and its CSR, for the first identity and each renewal. The key is used only if
 * the chain answering this CSR is accepted. */
static int new_csr(struct control *ctl, char *err)
{
    const char *hint = ctl->gen != NULL ? ctl->gen->identity->leaf.id.id : NULL;
    int rc;

    tg_identity_key_free(ctl->pending_key);
    ctl->pending_key = NULL;
    free(ctl->pending_csr);
    ctl->pending_csr = NULL;
    if ((rc = tg_identity_keygen(&ctl->pending_key, err)) < 0)
        return rc;
    return tg_identity_csr(ctl->pending_key, hint, &ctl->pending_csr, &ctl->pending_csr_len, err);
}

static void on_renew_timer(uv_timer_t *t);

/* Sends the pending CSR (making one first if there is none), and arms a retry with backoff
 * in case no answer comes: the client re-sends on a new stream by itself, this covers a
 * refusal or an answer we refused. */
static void request_cert(struct control *ctl)
{
    char err[TG_ERRLEN] = "";
    uint64_t retry = tg_cp_backoff_ms(ctl->renew_attempt, (uint32_t)rand()) + 1000;

    if (ctl->pending_csr == NULL && new_csr(ctl, err) < 0) {
        tg_warn("cannot make a key and CSR: %s; retrying in %llu ms", err,
                (unsigned long long)retry);
    } else if (tg_cp_client_request_cert(ctl->cp, ctl->pending_csr, ctl->pending_csr_len, err) <
               0) {
        tg_warn("cannot queue our CSR: %s; retrying in %llu ms", err, (unsigned long long)retry);
    }
    if (ctl->renew_attempt < 16)
        ctl->renew_attempt++;
    uv_timer_start(&ctl->renew_timer, on_renew_timer, retry, 0);
}

static void on_renew_timer(uv_timer_t *t)
{
    struct control *ctl = t->data;

    if (ctl->renew_at_ms == 0) {
        ctl->renew_at_ms = (int64_t)uv_now(&ctl->loop);
        tg_info("renewing our certificate (serial %s, expires in %lld s)",
                ctl->gen != NULL ? ctl->gen->identity->leaf.serial : "none",
                ctl->gen != NULL
                    ? (long long)(ctl->gen->identity->leaf.not_after - tg_identity_now())
                    : 0LL);
    } else {
        tg_warn("no certificate yet for our CSR; asking again (attempt %u)",
                ctl->renew_attempt + 1);
    }
    request_cert(ctl);
}

/* The next renewal: renew_fraction of the lifetime left when the certificate arrived. */
static void schedule_renewal(struct control *ctl)
{
    int64_t left_ms = (ctl->gen->identity->leaf.not_after - tg_identity_now()) * 1000;
    uint64_t delay = left_ms > 0 ? (uint64_t)((double)left_ms * ctl->cfg->cp.renew_fraction) : 0;

    ctl->renew_attempt = 0;
    ctl->renew_at_ms = 0;
    uv_timer_start(&ctl->renew_timer, on_renew_timer, delay, 0);
}

static int on_cp_tls_ctx(void *arg, struct tg_tls_ctx **out, bool *has_identity, char *err)
{
    struct control *ctl = arg;
    struct tg_tls_settings s = {.max_chain_depth = ctl->cfg->max_chain_depth};
    const struct tg_identity *id = ctl->gen != NULL ? ctl->gen->identity : NULL;

    /* an expired certificate would be refused: bootstrap again with the token; an SVID from
     * the Workload API is not the control plane's to verify: the token authenticates us */
    if (id != NULL && (id->leaf.not_after <= tg_identity_now() || ctl->cfg->wl.enabled))
        id = NULL;
    *has_identity = id != NULL;
    return tg_tls_ctx_new_cp(id, ctl->ca_pem, ctl->ca_len, &s, out, err);
}

static int on_cp_cert(void *arg, const char *chain_pem, size_t len, char *err)
{
    struct control *ctl = arg;
    struct tg_identity_key *old_key = ctl->key;
    char *old_chain = ctl->chain, *chain = malloc(len + 1);
    size_t old_len = ctl->chain_len;
    struct tg_gen *g = NULL;
    int rc;

    if (chain == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    if (ctl->pending_key == NULL || ctl->cfg->wl.enabled) {
        free(chain);
        return tg_err_set(err, TG_EINVAL, "a certificate we did not ask for");
    }
    memcpy(chain, chain_pem, len);
    chain[len] = '\0';
    ctl->chain = chain;
    ctl->chain_len = len;
    ctl->key = ctl->pending_key;
    if (ctl->cps.res[TG_RES_TRUST_BUNDLE] == NULL) {
        /* checked and used once the trust bundle arrives */
        tg_info("certificate received; waiting for the trust bundle");
        goto accepted;
    }
    if ((rc = build(ctl, &g, err)) < 0) {
        ctl->chain = old_chain;
        ctl->chain_len = old_len;
        ctl->key = old_key;
        free(chain); /* cp_client logs the NACK with err */
        return rc;
    }
    tg_counter_add(&ctl->metrics.process.identity_reloads, 1);
    publish(ctl, g);
    tg_info("identity from the control plane: %s serial %s (expires in %lld s), generation %llu",
            g->identity->leaf.id.id, g->identity->leaf.serial,
            (long long)(g->identity->leaf.not_after - tg_identity_now()),
            (unsigned long long)g->id);
    schedule_renewal(ctl);
accepted:
    ctl->pending_key = NULL;
    free(ctl->pending_csr);
    ctl->pending_csr = NULL;
    tg_identity_key_free(old_key);
    free(old_chain);
    if (g == NULL)
        uv_timer_stop(&ctl->renew_timer);
    return 0;
}

static int on_cp_push(void *arg, struct tg_resource *res, const char *version, char *err)
{
    struct control *ctl = arg;
    enum tg_res_type t = res->type;
    struct tg_gen_input in;
    struct tg_cp_res *p;
    struct tg_gen *g = NULL;
    bool can_build, first;
    int rc;

    if (t <= TG_RES_IDENTITY || t >= TG_RES_N) {
        tg_resource_free(res);
        return tg_err_set(err, TG_EINVAL, "unexpected resource type %d", (int)t);
    }
    if ((p = tg_cp_res_new(res, version)) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    /* nothing to build with (yet, or any more: our certificate expired while the control
     * plane was away, and the new one is on its way): checked as far as it can be, held */
    can_build = ctl->chain != NULL &&
                (ctl->cps.res[TG_RES_TRUST_BUNDLE] != NULL || t == TG_RES_TRUST_BUNDLE) &&
                !(ctl->gen != NULL && ctl->gen->identity->leaf.not_after <= tg_identity_now());
    /* with the Workload API the identity and every trust bundle are its (a pushed bundle and
     * pushed CRLs are checked and held, not used): a push applies once there is an SVID */
    if (ctl->cfg->wl.enabled)
        can_build = ctl->svid != NULL;
    build_input(ctl, &in);
    if ((rc = tg_gen_apply_push(&in, p, can_build, &g, err)) < 0)
        return rc; /* cp_client logs the NACK with err */
    if (!can_build) {
        tg_info("%s %s held; waiting for %s", tg_res_type_name(t), version,
                ctl->cfg->wl.enabled                        ? "an SVID from the Workload API"
                : ctl->chain == NULL                        ? "our certificate"
                : ctl->cps.res[TG_RES_TRUST_BUNDLE] == NULL ? "the trust bundle"
                                                            : "a new certificate (ours expired)");
        return 0; /* built with the next generation */
    }
    first = ctl->gen == NULL && !ctl->cfg->wl.enabled;
    if (first)
        tg_info("identity from the control plane: %s serial %s (expires in %lld s)",
                g->identity->leaf.id.id, g->identity->leaf.serial,
                (long long)(g->identity->leaf.not_after - tg_identity_now()));
    publish(ctl, g);
    /* said once the workers can take it: what arrives after this line is decided by it */
    tg_info("%s %s applied: generation %llu", tg_res_type_name(t), version,
            (unsigned long long)g->id);
    if (first)
        schedule_renewal(ctl);
    return 0;
}

static int start_cp(struct control *ctl, char *err)
{
    const struct tg_cp_cfg *cp = &ctl->cfg->cp;
    struct tg_cp_client_cfg cc = {
        .address = cp->address.text,
        .addresses = &cp->addresses,
        .token_path = cp->token_path,
        .server_ids = &cp->server_ids,
        .node_id = cp->node_id,
        .namespace_ = cp->namespace_,
        .service_account = cp->service_account,
        .version = TG_VERSION,
        .n_labels = cp->labels.n,
        .pod_info = cp->pod_info,
    };
    struct tg_cp_client_ops ops = {
        .make_tls_ctx = on_cp_tls_ctx,
        /* on_up/on_down: cp_client logs the stream's ups and downs; nothing else changes */
        .on_cert = on_cp_cert,
        /* on_cert_refused: cp_client logs it; the renew timer's retry asks again */
        .on_push = on_cp_push,
        .arg = ctl,
    };
    int rc;

    if ((rc = tg_file_read("control_plane.ca", cp->ca_path, TG_FILE_MAX, 0, &ctl->ca_pem,
                           &ctl->ca_len, err)) < 0)
        return rc;
    if (!ctl->cfg->wl.enabled && (rc = new_csr(ctl, err)) < 0)
        return rc;
    ctl->labels = calloc(cp->labels.n + 1, sizeof(*ctl->labels));
    if (ctl->labels == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < cp->labels.n; i++)
        ctl->labels[i] = (struct tg_res_label){cp->labels.keys[i], cp->labels.values[i]};
    cc.labels = ctl->labels;
    if ((rc = tg_cp_client_new(&ctl->loop, &cc, &ops, &ctl->cp, err)) < 0)
        return rc;
    uv_timer_init(&ctl->loop, &ctl->renew_timer); /* closed by stop_cp */
    ctl->renew_timer.data = ctl;
    tg_cp_client_start(ctl->cp);
    if (ctl->cfg->wl.enabled) {
        tg_info("control plane %s: policy, limits and mesh table (our identity comes from the "
                "Workload API)",
                cp->address.text);
        return 0;
    }
    ctl->renew_at_ms = (int64_t)uv_now(&ctl->loop); /* the first request, not a renewal */
    request_cert(ctl);
    tg_info("tollgate %s: waiting for an identity from the control plane %s; %zu listeners "
            "open once it comes",
            TG_VERSION, cp->address.text, ctl->rt.n_listeners);
    return 0;
}

static void stop_cp(struct control *ctl)
{
    if (ctl->cp == NULL)
        return;
    uv_close((uv_handle_t *)&ctl->renew_timer, NULL);
    tg_cp_client_close(ctl->cp, NULL, NULL);
    ctl->cp = NULL;
}

static void free_cp(struct control *ctl)
{
    for (int t = 0; t < TG_RES_N; t++)
        tg_cp_res_unref(ctl->cps.res[t]);
    tg_identity_key_free(ctl->key);
    tg_identity_key_free(ctl->pending_key);
    free(ctl->pending_csr);
    free(ctl->chain);
    free(ctl->ca_pem);
    free(ctl->labels);
}

/* ---- Workload API (cfg->wl.enabled) ---- */

/* Each SVID the Workload API sends becomes a generation, as a file rotation does; one that
 * does not make one is refused and the last good one serves on. */
static int on_wl_svid(void *arg, struct tg_svid *s, char *err)
{
    struct control *ctl = arg;
    struct tg_svid *old = ctl->svid;
    struct tg_gen *g;
    int rc;

    ctl->svid = s;
    if ((rc = build(ctl, &g, err)) < 0) {
        ctl->svid = old;
        tg_svid_free(s);
        tg_counter_add(&ctl->metrics.process.identity_reload_failures, 1);
        return rc; /* the client logs it, naming the socket */
    }
    tg_counter_add(&ctl->metrics.process.identity_reloads, 1);
    tg_svid_free(old);
    publish(ctl, g);
    tg_info("identity from the Workload API: %s serial %s (expires in %lld s, %zu federated "
            "trust domains), generation %llu",
            g->identity->leaf.id.id, g->identity->leaf.serial,
            (long long)(g->identity->leaf.not_after - tg_identity_now()),
            g->identity->n_domains > 0 ? g->identity->n_domains - 1 : 0, (unsigned long long)g->id);
    return 0;
}

static void on_wl_refused(void *arg, const char *why)
{
    struct control *ctl = arg;

    (void)why; /* logged by the client */
    tg_counter_add(&ctl->metrics.process.identity_reload_failures, 1);
}

static int start_wl(struct control *ctl, char *err)
{
    const struct tg_wl_cfg cfg = {ctl->cfg->wl.socket, ctl->cfg->wl.spiffe_id};
    const struct tg_wl_ops ops = {on_wl_svid, on_wl_refused, ctl};
    int rc;

    if ((rc = tg_wl_client_new(&ctl->loop, &cfg, &ops, &ctl->wl, err)) < 0)
        return rc;
    tg_wl_client_start(ctl->wl);
    tg_info("tollgate %s: waiting for an SVID from the Workload API at %s; %zu listeners open "
            "once it comes",
            TG_VERSION, ctl->cfg->wl.socket, ctl->rt.n_listeners);
    return 0;
}

/* ---- start-up ---- */

static int make_listeners(struct control *ctl)
{
    const struct tg_config *cfg = ctl->cfg;
    size_t n = cfg->n_inbound + cfg->n_outbound;

    ctl->defs = calloc(n, sizeof(*ctl->defs));
    ctl->names = calloc(n, sizeof(*ctl->names));
    ctl->directions = calloc(n, sizeof(*ctl->directions));
    ctl->llimits = calloc(n, sizeof(*ctl->llimits));
    if (ctl->defs == NULL || ctl->names == NULL || ctl->directions == NULL || ctl->llimits == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct tg_listener_def *l = &ctl->defs[i];

        if (tg_ratelimit_global_init(&ctl->llimits[i].rate, &(struct tg_bucket_limit){0, 0},
                                     uv_hrtime()) < 0)
            return TG_ENOMEM;
        if (tg_ratelimit_global_init(&ctl->llimits[i].bytes, &(struct tg_bucket_limit){0, 0},
                                     uv_hrtime()) < 0) {
            tg_ratelimit_global_cleanup(&ctl->llimits[i].rate);
            return TG_ENOMEM;
        }
        ctl->n_llimits++;
        set_listener_limit(&ctl->llimits[i], listener_limit_cfg(cfg, i));
        l->limit = &ctl->llimits[i];
        l->index = i;
        l->inbound = i < cfg->n_inbound;
        if (l->inbound) {
            const struct tg_inbound_cfg *in = &cfg->inbound[i];

            l->name = in->name;
            l->listen = &in->listen;
            l->upstream = in->transparent ? NULL : &in->upstream;
            l->transparent = in->transparent;
            l->upstream_loopback = in->upstream_loopback;
            l->mode = in->mode;
            l->proxy_protocol = in->proxy_protocol;
            l->allow_unauth = in->allow_unauth;
            l->tunnels = in->tunnels;
            l->http = in->http ? &in->http_cfg : NULL;
            l->http_mesh = in->transparent && !in->http ? &in->http_cfg : NULL;
            l->rule.ids = &in->allow;
        } else {
            const struct tg_outbound_cfg *out = &cfg->outbound[i - cfg->n_inbound];

            l->name = out->name;
            l->listen = &out->listen;
            l->upstream = out->transparent ? NULL : &out->upstream;
            l->transparent = out->transparent;
            l->rule.ids = &out->expect;
            l->sni = out->sni;
            l->http_app = out->http;
            l->tunnel = out->tunnel == TG_TUNNEL_UNSET ? TG_TUNNEL_OFF : out->tunnel;
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
    uv_timer_init(&ctl->loop, &ctl->watchdog_timer);
    ctl->watchdog_timer.data = ctl;
    if (ctl->notify.watchdog_usec > 0) {
        uint64_t ms = ctl->notify.watchdog_usec / 2000;

        uv_timer_start(&ctl->watchdog_timer, on_watchdog_timer, 0, ms > 0 ? ms : 1);
    }
    for (size_t i = 0; i < ctl->n_watch; i++) {
        size_t k = i - 4 - cfg->crl_paths.n; /* past the CRLs: bundles, then intermediates */
        const char *file = i < 4                             ? fixed[i]
                           : i < 4 + cfg->crl_paths.n        ? cfg->crl_paths.v[i - 4]
                           : k < cfg->trust_domain_bundles.n ? cfg->trust_domain_bundles.v[k]
                                                             : cfg->intermediates_path;

        uv_fs_poll_init(&ctl->loop, &ctl->watch[i]);
        ctl->watch[i].data = ctl;
        uv_fs_poll_start(&ctl->watch[i], on_file_changed, file, WATCH_INTERVAL_MS);
    }
    /* by then every watch has its first look (a change before it is compared by hand) */
    uv_timer_start(&ctl->reload_timer, on_startup_check, 2 * WATCH_INTERVAL_MS, 0);
    uv_signal_init(&ctl->loop, &ctl->sigterm);
    uv_signal_init(&ctl->loop, &ctl->sigint);
    uv_signal_init(&ctl->loop, &ctl->sighup);
    ctl->sigterm.data = ctl->sigint.data = ctl->sighup.data = ctl;
    uv_signal_start(&ctl->sigterm, on_signal, SIGTERM);
    uv_signal_start(&ctl->sigint, on_signal, SIGINT);
    uv_signal_start(&ctl->sighup, on_signal, SIGHUP);
}

static int start_workers(struct control *ctl, char *err)
{
    for (; ctl->started < ctl->n_workers; ctl->started++) {
        int rc =
            tg_worker_start(&ctl->workers[ctl->started], ctl->started, &ctl->rt, ctl->gen, err);

        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The admin endpoint and, when configured, the health and metrics listeners: the same
 * server, three tables of routes (admin.h). The app's probes come from the environment. */
static int start_admins(struct control *ctl, struct tg_admin_ops *ops, char *err)
{
    const struct tg_config *cfg = ctl->cur;
    const char *env = getenv(TG_APPPROBE_ENV);
    char why[TG_ERRLEN];
    int rc;

    if (env != NULL && env[0] != '\0' &&
        (rc = tg_appprobes_parse(env, strlen(env), &ctl->probes, why)) < 0)
        return tg_err_set(err, rc, TG_APPPROBE_ENV ": %s", why);
    ops->probes = ctl->probes;
    if (cfg->admin.len > 0 &&
        (rc = tg_admin_start(&ctl->loop, &cfg->admin, ops, &ctl->admin, err)) < 0)
        return rc;
    if (cfg->health.len > 0 && (rc = tg_admin_start_role(&ctl->loop, &cfg->health, ops,
                                                         TG_ADMIN_HEALTH, &ctl->health, err)) < 0)
        return rc;
    if (cfg->metrics.len > 0 &&
        (rc = tg_admin_start_role(&ctl->loop, &cfg->metrics, ops, TG_ADMIN_METRICS,
                                  &ctl->metrics_ep, err)) < 0)
        return rc;
    return 0;
}

static void stop_admins(struct control *ctl)
{
    tg_admin_stop(ctl->admin);
    tg_admin_stop(ctl->health);
    tg_admin_stop(ctl->metrics_ep);
    ctl->admin = ctl->health = ctl->metrics_ep = NULL;
}

/* Set-up, in order: the loop, the first generation (static mode), listeners and metrics,
 * workers, the admin endpoint, the control-plane client, the file watches and signals. On
 * failure err says why and teardown() undoes what was made, whatever it was. */
static int setup(struct control *ctl, char *err)
{
    struct tg_config *cfg = ctl->cur;
    struct tg_gen_input in = {.cfg = cfg};
    struct tg_admin_ops ops = {
        ctl, on_admin_ready, on_admin_stats, on_admin_config_dump, on_admin_drain, NULL};
    /* cp, Workload API: the config file only */
    size_t n_watch = cfg->cp.enabled || cfg->wl.enabled
                         ? 1
                         : 4 + cfg->crl_paths.n + cfg->trust_domain_bundles.n +
                               (cfg->intermediates_path != NULL);
    int rc;

    if ((rc = uv_loop_init(&ctl->loop)) < 0)
        return tg_err_set(err, rc, "control loop: %s", uv_strerror(rc));
    ctl->loop_ready = true;
    ctl->n_workers = cfg->workers ? cfg->workers : uv_available_parallelism();
    /* control plane, Workload API: the first generation comes with our first certificate */
    if (!cfg->cp.enabled && !cfg->wl.enabled && (rc = tg_gen_build(&in, &ctl->gen, err)) < 0)
        return rc;
    if ((rc = make_listeners(ctl)) < 0 ||
        (rc = tg_metrics_init(&ctl->metrics, ctl->n_workers, ctl->rt.n_listeners, ctl->names,
                              ctl->directions)) < 0)
        return tg_err_set(err, rc, "out of memory");
    ctl->metrics.build =
        (struct tg_build_info){TG_VERSION, tg_tls_wolfssl_version(), tg_tls_aesni()};
    ctl->metrics.tunnel_pool = ctl->rt.cfg->tunnel_pool;
    if ((ctl->workers = calloc(ctl->n_workers, sizeof(*ctl->workers))) == NULL ||
        (ctl->beats_seen = calloc(ctl->n_workers, sizeof(*ctl->beats_seen))) == NULL ||
        (ctl->watch = calloc(n_watch, sizeof(*ctl->watch))) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    for (size_t i = 0; i < ctl->rt.n_listeners; i++)
        if ((rc = tg_listener_probe(ctl->defs[i].listen, err)) < 0)
            return rc;
    if (ctl->gen != NULL) {
        atomic_store(&ctl->metrics.process.generation, ctl->gen->id);
        atomic_store(&ctl->metrics.process.identity_expiry_unix,
                     ctl->gen->identity->leaf.not_after);
        if ((rc = start_workers(ctl, err)) < 0)
            return rc;
    }
    if ((rc = start_admins(ctl, &ops, err)) < 0)
        return rc;
    if (cfg->cp.enabled && (rc = start_cp(ctl, err)) < 0) {
        char why[TG_ERRLEN];

        snprintf(why, sizeof(why), "%s", err);
        return tg_err_set(err, rc, "control_plane: %s", why);
    }
    if (cfg->wl.enabled && (rc = start_wl(ctl, err)) < 0)
        return rc;
    ctl->n_watch = n_watch;
    init_handles(ctl);
    return 0;
}

/* Undoes setup(), all of it or the part that was made: workers joined (they were told to
 * stop, by stop_everything or by the caller), the loop run until its handles have closed,
 * then everything freed. */
static void teardown(struct control *ctl)
{
    for (unsigned i = 0; i < ctl->started; i++)
        tg_worker_join(&ctl->workers[i]);
    if (ctl->loop_ready) {
        uv_run(&ctl->loop, UV_RUN_DEFAULT); /* admin and timers finish closing */
        if (uv_loop_close(&ctl->loop) != 0)
            tg_warn("control loop closed with handles open");
    }
    tg_metrics_cleanup(&ctl->metrics);
    tg_gen_unref(ctl->gen);
    tg_config_unref(ctl->cur);
    free_cp(ctl);
    tg_svid_free(ctl->svid);
    free(ctl->workers);
    free(ctl->beats_seen);
    tg_notify_close(&ctl->notify);
    tg_appprobes_free(ctl->probes);
    for (size_t i = 0; i < ctl->n_llimits; i++) {
        tg_ratelimit_global_cleanup(&ctl->llimits[i].rate);
        tg_ratelimit_global_cleanup(&ctl->llimits[i].bytes);
    }
    free(ctl->llimits);
    free(ctl->watch);
    free(ctl->defs);
    free(ctl->names);
    free(ctl->directions);
    free(ctl);
}

int tg_control_run(struct tg_config *cfg)
{
    struct control *ctl = calloc(1, sizeof(*ctl));
    char err[TG_ERRLEN] = "";
    int rc;

    if (ctl == NULL)
        return 1;
    ctl->cfg = cfg;
    ctl->cur = tg_config_ref(cfg);
    ctl->notify.fd = -1;
    signal(SIGPIPE, SIG_IGN);
    if (tg_notify_open(&ctl->notify, err) < 0 || setup(ctl, err) < 0)
        goto fail;
    if (ctl->gen != NULL) {
        tg_info("tollgate %s: %s, serial %s, %u workers, %zu listeners, generation %llu",
                TG_VERSION, ctl->gen->identity->leaf.id.id, ctl->gen->identity->leaf.serial,
                ctl->n_workers, ctl->rt.n_listeners, (unsigned long long)ctl->gen->id);
        notify_ready(ctl);
    } else {
        notify(ctl, "STATUS=waiting for an identity from the control plane");
    }
    uv_run(&ctl->loop, UV_RUN_DEFAULT);
    rc = ctl->exit_code;
    teardown(ctl);
    if (rc == 0)
        tg_info("stopped");
    return rc;
fail:
    tg_error("%s", err);
    /* the loop never ran: nothing has told the workers or the admin endpoint to stop */
    for (unsigned i = 0; i < ctl->started; i++)
        tg_worker_stop(&ctl->workers[i]);
    stop_admins(ctl);
    teardown(ctl);
    return 1;
}

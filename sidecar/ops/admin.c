/* The sidecar's admin pages (admin.h) over the shared admin server (adminsrv.h). */
#include "tollgate/admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/appprobe.h"
#include "tollgate/log.h"

#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"
#define CT_JSON "application/json"

struct tg_admin {
    uv_loop_t *loop;
    struct tg_admin_ops ops;
    struct tg_adminsrv *srv;
};

static void text(struct tg_adminsrv_reply *out, int status, const char *body)
{
    out->status = status;
    out->body = body;
    out->len = strlen(body);
}

static void serve_body(char *(*get)(void *, size_t *), void *arg, const char *type,
                       struct tg_adminsrv_reply *out)
{
    size_t len = 0;
    char *body;

    if (get == NULL) {
        text(out, 501, "not implemented\n");
        return;
    }
    if ((body = get(arg, &len)) == NULL) {
        text(out, 500, "internal error\n");
        return;
    }
    *out = (struct tg_adminsrv_reply){200, type, body, len, true};
}

static void on_live(void *arg, struct tg_adminsrv_reply *out)
{
    (void)arg;
    text(out, 200, "live\n");
}

static void on_ready(void *arg, struct tg_adminsrv_reply *out)
{
    struct tg_admin *a = arg;

    if (a->ops.ready == NULL || a->ops.ready(a->ops.arg))
        text(out, 200, "ready\n");
    else
        text(out, 503, "not ready\n");
}

static void on_stats(void *arg, struct tg_adminsrv_reply *out)
{
    struct tg_admin *a = arg;

    serve_body(a->ops.stats, a->ops.arg, CT_PROM, out);
}

static void on_config_dump(void *arg, struct tg_adminsrv_reply *out)
{
    struct tg_admin *a = arg;

    serve_body(a->ops.config_dump, a->ops.arg, CT_JSON, out);
}

static void on_drain(void *arg, struct tg_adminsrv_reply *out)
{
    struct tg_admin *a = arg;

    if (a->ops.drain == NULL) {
        text(out, 501, "not implemented\n");
        return;
    }
    a->ops.drain(a->ops.arg);
    text(out, 200, "draining\n");
}

/* An answer formatted into a malloc'd body; out of memory: 500. */
static void answer(struct tg_adminsrv_reply *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void answer(struct tg_adminsrv_reply *out, int status, const char *fmt, ...)
{
    char *body = malloc(256);
    va_list ap;
    int n;

    if (body == NULL) {
        text(out, 500, "out of memory\n");
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(body, 256, fmt, ap);
    va_end(ap);
    out->status = status;
    out->body = body; /* the server's now (owned) */
    out->len = n < 0 ? 0 : n > 255 ? 255 : (size_t)n;
    out->owned = true;
}

/* GET /logging: the diagnostic log's level. POST /logging?level=LEVEL: sets it for the whole
 * process at once, until the next POST or a restart (the config file's log_level is read at
 * start-up only). Local only: it changes state. */
static void logging(const struct tg_adminreq *rq, struct tg_adminsrv_reply *out)
{
    enum tg_log_level was = tg_log_get_level(), level;
    const char *q = rq->query;
    size_t n = rq->query_len;

    if (rq->method_len != 4 || memcmp(rq->method, "POST", 4) != 0) {
        answer(out, 200, "level: %s\n", tg_log_level_name(was));
        return;
    }
    if (q == NULL || n < 6 || memcmp(q, "level=", 6) != 0) {
        text(out, 400, "POST /logging?level=LEVEL, LEVEL one of debug, info, warn, error\n");
        return;
    }
    if (tg_log_level_parse(q + 6, n - 6, &level) < 0) {
        /* the query is visible ASCII (adminreq.h): no escaping needed, only a bound */
        answer(out, 400, "level \"%.*s\" unknown: one of debug, info, warn, error\n",
               n - 6 > 32 ? 32 : (int)(n - 6), q + 6);
        return;
    }
    tg_log_set_level(level);
    tg_warn("admin: log level %s (was %s), set by POST /logging", tg_log_level_name(level),
            tg_log_level_name(was));
    answer(out, 200, "level: %s (was %s)\n", tg_log_level_name(level), tg_log_level_name(was));
}

static void on_logging(void *arg, const char *path, size_t len, struct tg_adminsrv_pending *p)
{
    struct tg_adminsrv_reply r = {0};

    (void)arg, (void)path, (void)len;
    logging(tg_adminsrv_request(p), &r);
    tg_adminsrv_answer(p, &r);
}

/* One app probe run for a kubelet's request on the health listener. */
struct probe_req {
    struct tg_adminsrv_pending *p;
    char name[96];
};

static void on_probe_done(void *arg, bool ok, const char *why)
{
    struct probe_req *q = arg;
    struct tg_adminsrv_reply r = {ok ? 200 : 503, NULL, NULL, 0, true};
    char *body = malloc(strlen(why) + strlen(q->name) + 8);

    if (body == NULL) {
        r.body = ok ? "ok\n" : "failed\n";
        r.len = strlen(r.body);
        r.owned = false;
    } else {
        r.len = (size_t)sprintf(body, "%s: %s\n", q->name, why);
        r.body = body;
    }
    tg_adminsrv_answer(q->p, &r);
    free(q);
}

/* GET /app-health/<container>/<livez|readyz|startupz>: the app's own probe, run here. */
static void on_app_health(void *arg, const char *path, size_t len, struct tg_adminsrv_pending *p)
{
    struct tg_admin *a = arg;
    size_t skip = strlen(TG_APPPROBE_PREFIX);
    const struct tg_appprobe *pr = tg_appprobes_find(a->ops.probes, path + skip, len - skip);
    struct tg_adminsrv_reply r = {404, NULL, "no such app probe\n", 18, false};
    struct probe_req *q;

    if (pr == NULL || (q = calloc(1, sizeof(*q))) == NULL) {
        if (pr != NULL)
            r = (struct tg_adminsrv_reply){500, NULL, "out of memory\n", 14, false};
        tg_adminsrv_answer(p, &r);
        return;
    }
    q->p = p;
    snprintf(q->name, sizeof(q->name), "%s", pr->name);
    if (tg_appprobe_run(a->loop, pr, on_probe_done, q) < 0) {
        free(q);
        r = (struct tg_adminsrv_reply){500, NULL, "out of memory\n", 14, false};
        tg_adminsrv_answer(p, &r);
    }
}

static const struct tg_adminsrv_route routes[] = {
    {"/live", "GET, HEAD", TG_ADMINSRV_ANYONE, on_live, false, NULL},
    {"/ready", "GET, HEAD", TG_ADMINSRV_ANYONE, on_ready, false, NULL},
    {"/stats", "GET, HEAD", TG_ADMINSRV_ANYONE, on_stats, false, NULL},
    {"/config_dump", "GET, HEAD", TG_ADMINSRV_LOCAL, on_config_dump, false, NULL},
    {"/drain", "POST", TG_ADMINSRV_LOCAL, on_drain, false, NULL},
    {"/logging", "GET, HEAD, POST", TG_ADMINSRV_LOCAL, NULL, false, on_logging},
};

/* The kubelet's port: readiness, liveness and the app's probes, nothing else. */
static const struct tg_adminsrv_route health_routes[] = {
    {"/live", "GET, HEAD", TG_ADMINSRV_ANYONE, on_live, false, NULL},
    {"/ready", "GET, HEAD", TG_ADMINSRV_ANYONE, on_ready, false, NULL},
    {TG_APPPROBE_PREFIX, "GET, HEAD", TG_ADMINSRV_ANYONE, NULL, true, on_app_health},
};

/* Prometheus' port: the scrape only (the text of /stats). */
static const struct tg_adminsrv_route metrics_routes[] = {
    {"/metrics", "GET, HEAD", TG_ADMINSRV_ANYONE, on_stats, false, NULL},
    {"/stats/prometheus", "GET, HEAD", TG_ADMINSRV_ANYONE, on_stats, false, NULL},
};

static const struct {
    const char *name;
    const struct tg_adminsrv_route *routes;
    size_t n;
} roles[] = {
    [TG_ADMIN_FULL] = {"admin", routes, TG_NELEM(routes)},
    [TG_ADMIN_HEALTH] = {"health", health_routes, TG_NELEM(health_routes)},
    [TG_ADMIN_METRICS] = {"metrics", metrics_routes, TG_NELEM(metrics_routes)},
};

static void on_srv_closed(void *arg)
{
    free(arg);
}

int tg_admin_start(uv_loop_t *loop, const struct tg_addr *addr, const struct tg_admin_ops *ops,
                   struct tg_admin **out, char *err)
{
    return tg_admin_start_role(loop, addr, ops, TG_ADMIN_FULL, out, err);
}

int tg_admin_start_role(uv_loop_t *loop, const struct tg_addr *addr, const struct tg_admin_ops *ops,
                        enum tg_admin_role role, struct tg_admin **out, char *err)
{
    struct tg_admin *a = calloc(1, sizeof(*a));
    struct tg_adminsrv_cfg cfg = {.name = roles[role].name,
                                  .routes = roles[role].routes,
                                  .n_routes = roles[role].n,
                                  .arg = a,
                                  .head_max = TG_ADMIN_HEAD_MAX,
                                  .on_closed = on_srv_closed};
    int rc;

    if (a == NULL)
        return tg_err_set(err, TG_ENOMEM, "%s %s: out of memory", roles[role].name, addr->text);
    a->loop = loop;
    a->ops = *ops;
    /* on failure the server frees a through on_srv_closed */
    if ((rc = tg_adminsrv_start(loop, addr, &cfg, &a->srv, err)) < 0)
        return rc;
    *out = a;
    return 0;
}

void tg_admin_stop(struct tg_admin *a)
{
    if (a != NULL)
        tg_adminsrv_stop(a->srv); /* a is freed with the server */
}

int tg_admin_port(const struct tg_admin *a)
{
    return tg_adminsrv_port(a->srv);
}

void tg_admin_set_timeout(struct tg_admin *a, uint64_t ms)
{
    tg_adminsrv_set_timeout(a->srv, ms);
}

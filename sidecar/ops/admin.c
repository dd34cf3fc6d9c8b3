/* The sidecar's admin pages (admin.h) over the shared admin server (adminsrv.h). */
#include "tollgate/admin.h"

#include <stdlib.h>
#include <string.h>

#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"
#define CT_JSON "application/json"

struct tg_admin {
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

static const struct tg_adminsrv_route routes[] = {
    {"/live", "GET, HEAD", TG_ADMINSRV_ANYONE, on_live},
    {"/ready", "GET, HEAD", TG_ADMINSRV_ANYONE, on_ready},
    {"/stats", "GET, HEAD", TG_ADMINSRV_ANYONE, on_stats},
    {"/config_dump", "GET, HEAD", TG_ADMINSRV_LOCAL, on_config_dump},
    {"/drain", "POST", TG_ADMINSRV_LOCAL, on_drain},
};

static void on_srv_closed(void *arg)
{
    free(arg);
}

int tg_admin_start(uv_loop_t *loop, const struct tg_addr *addr, const struct tg_admin_ops *ops,
                   struct tg_admin **out, char *err)
{
    struct tg_admin *a = calloc(1, sizeof(*a));
    struct tg_adminsrv_cfg cfg = {.name = "admin",
                                  .routes = routes,
                                  .n_routes = TG_NELEM(routes),
                                  .arg = a,
                                  .head_max = TG_ADMIN_HEAD_MAX,
                                  .on_closed = on_srv_closed};
    int rc;

    if (a == NULL)
        return tg_err_set(err, TG_ENOMEM, "admin %s: out of memory", addr->text);
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

/* tollgate-cp's admin endpoint (cp_admin.h). */
#include "cp_admin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_server.h"
#include "tollgate/log.h"

#define BODY_MAX 4096

struct client {
    struct tg_cp_admin *admin;
    struct client *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    int open_handles;
    bool closing;
    size_t len;
    char head[TG_CP_ADMIN_HEAD_MAX];
    char *reply; /* being written */
};

struct tg_cp_admin {
    uv_loop_t *loop;
    struct tg_cp_server *srv;
    uv_tcp_t listener;
    bool listener_open;
    bool closing;
    struct client *clients;
    size_t n_clients;
    int port;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void maybe_free(struct tg_cp_admin *a)
{
    void (*cb)(void *) = a->on_closed;
    void *arg = a->closed_arg;

    if (!a->closing || a->listener_open || a->clients != NULL)
        return;
    free(a);
    if (cb != NULL)
        cb(arg);
}

/* ---- clients ---- */

static void on_client_closed(uv_handle_t *h)
{
    struct client *c = h->data;
    struct tg_cp_admin *a = c->admin;

    if (--c->open_handles > 0)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        a->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    a->n_clients--;
    free(c->reply);
    free(c);
    maybe_free(a);
}

static void client_close(struct client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
    uv_close((uv_handle_t *)&c->timer, on_client_closed);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status; /* closed either way */
    client_close(req->data);
}

static void reply(struct client *c, int status, const char *reason, bool head_only,
                  const char *extra, const char *body)
{
    size_t body_len = strlen(body), cap = body_len + 512;
    uv_buf_t buf;
    int n;

    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    if ((c->reply = malloc(cap)) == NULL) {
        client_close(c);
        return;
    }
    n = snprintf(c->reply, cap,
                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%s",
                 status, reason, body_len, extra, head_only ? "" : body);
    buf = uv_buf_init(c->reply, (unsigned)n);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0)
        client_close(c);
}

static void stats_body(const struct tg_cp_server *srv, char *dst, size_t cap)
{
    const struct tg_cp_server_stats *s = tg_cp_server_stats(srv);
    const struct {
        const char *name, *type, *help;
        uint64_t v;
    } m[] = {
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
    size_t o = 0;

    dst[0] = '\0';
    for (size_t i = 0; i < TG_NELEM(m) && o < cap; i++) {
        int n = snprintf(dst + o, cap - o, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n",
                         m[i].name, m[i].help, m[i].name, m[i].type, m[i].name, m[i].v);

        if (n < 0)
            break;
        o += (size_t)n;
    }
    for (size_t i = 0; i < TG_NELEM(r) && o < cap; i++) {
        int n = snprintf(dst + o, cap - o,
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
}

/* The request head is complete: answer it. */
static void on_request(struct client *c)
{
    char method[8] = "", path[64] = "", version[16] = "", body[BODY_MAX];
    bool head_only;

    c->head[c->len] = '\0';
    if (sscanf(c->head, "%7[A-Z] %63[^ \r\n] %15[^\r\n]", method, path, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        reply(c, 400, "Bad Request", false, "", "bad request\n");
        return;
    }
    head_only = strcmp(method, "HEAD") == 0;
    if (strcmp(path, "/healthz") != 0 && strcmp(path, "/stats") != 0) {
        reply(c, 404, "Not Found", head_only, "", "not found: try /healthz or /stats\n");
        return;
    }
    if (strcmp(method, "GET") != 0 && !head_only) {
        reply(c, 405, "Method Not Allowed", false, "Allow: GET, HEAD\r\n", "method not allowed\n");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        if (tg_cp_server_healthy(c->admin->srv))
            reply(c, 200, "OK", head_only, "", "ok\n");
        else
            reply(c, 503, "Service Unavailable", head_only, "", "shutting down\n");
        return;
    }
    stats_body(c->admin->srv, body, sizeof(body));
    reply(c, 200, "OK", head_only, "", body);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->head + c->len, (unsigned)(sizeof(c->head) - 1 - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct client *c = s->data;

    (void)buf;
    if (n < 0) {
        client_close(c);
        return;
    }
    c->len += (size_t)n;
    c->head[c->len] = '\0';
    if (strstr(c->head, "\r\n\r\n") != NULL || strstr(c->head, "\n\n") != NULL)
        on_request(c);
    else if (c->len == sizeof(c->head) - 1)
        reply(c, 431, "Request Header Fields Too Large", false, "", "request head too large\n");
}

static void on_timeout(uv_timer_t *t)
{
    struct client *c = t->data;

    reply(c, 408, "Request Timeout", false, "", "request timeout\n");
}

static void on_drop_closed(uv_handle_t *h)
{
    free(h);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct tg_cp_admin *a = server->data;
    struct client *c;

    if (status < 0)
        return;
    if (a->n_clients >= TG_CP_ADMIN_MAX_CLIENTS || (c = calloc(1, sizeof(*c))) == NULL) {
        uv_tcp_t *drop = malloc(sizeof(*drop)); /* take it off the backlog, let it go */

        if (drop == NULL)
            return;
        uv_tcp_init(a->loop, drop);
        (void)uv_accept(server, (uv_stream_t *)drop);
        uv_close((uv_handle_t *)drop, on_drop_closed);
        return;
    }
    c->admin = a;
    c->tcp.data = c->timer.data = c;
    uv_tcp_init(a->loop, &c->tcp);
    uv_timer_init(a->loop, &c->timer);
    c->open_handles = 2;
    c->next = a->clients;
    if (a->clients != NULL)
        a->clients->prev = c;
    a->clients = c;
    a->n_clients++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        client_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, TG_CP_ADMIN_TIMEOUT_MS, 0);
}

/* ---- life cycle ---- */

static void on_listener_closed(uv_handle_t *h)
{
    struct tg_cp_admin *a = h->data;

    a->listener_open = false;
    maybe_free(a);
}

int tg_cp_admin_new(uv_loop_t *loop, const struct tg_addr *addr, struct tg_cp_server *srv,
                    void (*on_closed)(void *arg), void *arg, struct tg_cp_admin **out, char *err)
{
    struct tg_cp_admin *a = calloc(1, sizeof(*a));
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;

    if (a == NULL)
        return tg_err_set(err, UV_ENOMEM, "admin: out of memory");
    a->loop = loop;
    a->srv = srv;
    a->on_closed = on_closed;
    a->closed_arg = arg;
    a->listener.data = a;
    uv_tcp_init(loop, &a->listener);
    a->listener_open = true;
    rc = uv_tcp_bind(&a->listener, (const struct sockaddr *)&addr->ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, 64, on_connection);
    if (rc < 0) {
        tg_err_set(err, rc, "admin %s: %s", addr->text, uv_strerror(rc));
        tg_cp_admin_close(a);
        return rc;
    }
    if (uv_tcp_getsockname(&a->listener, (struct sockaddr *)&ss, &len) == 0)
        a->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    *out = a;
    return 0;
}

void tg_cp_admin_close(struct tg_cp_admin *a)
{
    if (a->closing)
        return;
    a->closing = true;
    uv_close((uv_handle_t *)&a->listener, on_listener_closed);
    for (struct client *c = a->clients; c != NULL; c = c->next)
        client_close(c);
}

int tg_cp_admin_port(const struct tg_cp_admin *a)
{
    return a->port;
}

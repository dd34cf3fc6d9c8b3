#include "tollgate/admin.h"
#include "tollgate/log.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* After the response: how long the client's leftover bytes are read and dropped. */
#define LINGER_MS 2000

#define CT_TEXT "text/plain; charset=utf-8"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"
#define CT_JSON "application/json"

struct admin_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* head deadline, then the linger */
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    struct tg_admin *admin;
    struct admin_conn *prev, *next; /* tg_admin.conns, until freed */
    int open_handles;
    bool closing;
    bool responded; /* response queued: head[] is now a scratch buffer for dropped bytes */
    bool shut;      /* our side is shut down */
    bool peer_eof;
    char *body; /* malloc'd response body, or NULL when it is static */
    char status[512];
    size_t head_len;
    char head[TG_ADMIN_HEAD_MAX];
};

struct tg_admin {
    uv_tcp_t listener;
    uv_tcp_t spare; /* takes a connection we will not serve, only to close it */
    struct tg_admin_ops ops;
    struct admin_conn *conns;
    size_t n_conns;  /* in conns, closing ones included: they still hold memory */
    unsigned refs;   /* listener + busy spare + every conn; freed at 0 */
    bool spare_busy; /* spare is closing and cannot take another yet */
    bool backlog;    /* a connection is left in the listener until spare is free */
    bool stopping;
    uint64_t timeout_ms;
    int port;
};

struct request {
    const char *method;
    size_t method_len;
    const char *path; /* target without the query */
    size_t path_len;
};

enum page { PAGE_LIVE, PAGE_READY, PAGE_STATS, PAGE_CONFIG, PAGE_DRAIN };

static const struct {
    const char *path;
    const char *allow; /* also the Allow header of a 405 */
    enum page page;
} routes[] = {
    {"/live", "GET, HEAD", PAGE_LIVE},   {"/ready", "GET, HEAD", PAGE_READY},
    {"/stats", "GET, HEAD", PAGE_STATS}, {"/config_dump", "GET, HEAD", PAGE_CONFIG},
    {"/drain", "POST", PAGE_DRAIN},
};

static void admit(struct tg_admin *a);

static void release(struct tg_admin *a)
{
    if (--a->refs == 0) {
        free(a);
        return;
    }
    if (a->backlog && !a->stopping)
        admit(a);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct admin_conn *c = h->data;
    struct tg_admin *a = c->admin;

    if (--c->open_handles > 0)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    a->n_conns--;
    free(c->body);
    free(c);
    release(a);
}

/* Idempotent; the only way a connection ends. Pending write and shutdown callbacks run
 * with UV_ECANCELED before the close callbacks, so c is still valid in them. */
static void conn_close(struct admin_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_written(uv_write_t *req, int status)
{
    if (status < 0)
        conn_close(req->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct admin_conn *c = req->data;
    struct tg_admin *a = c->admin;

    if (c->closing)
        return;
    c->shut = true;
    if (status < 0 || c->peer_eof) {
        conn_close(c);
        return;
    }
    /* wait for the client's FIN, dropping what it still sends, but not for long */
    uv_timer_start(&c->timer, on_timeout, a->timeout_ms < LINGER_MS ? a->timeout_ms : LINGER_MS, 0);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* Queues the whole response and a shutdown of our side. body is taken over when owned
 * (freed with c), else it must be static. allow is the Allow header value, or NULL. */
static void respond(struct admin_conn *c, int status, const char *type, char *body, size_t len,
                    bool owned, bool head_only, const char *allow)
{
    uv_buf_t bufs[2];
    int n;

    if (owned)
        c->body = body;
    c->responded = true;
    if (c->closing) /* an ops callback stopped the admin */
        return;
    n = snprintf(c->status, sizeof(c->status),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s"
                 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                 status, reason_phrase(status), type, len, allow ? "Allow: " : "",
                 allow ? allow : "", allow ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(c->status)) {
        conn_close(c);
        return;
    }
    bufs[0] = uv_buf_init(c->status, (unsigned)n);
    bufs[1] = uv_buf_init(body, (unsigned)len);
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, head_only || len == 0 ? 1 : 2,
                 on_written) < 0) {
        conn_close(c);
        return;
    }
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

static void respond_text(struct admin_conn *c, int status, const char *text, bool head_only,
                         const char *allow)
{
    respond(c, status, CT_TEXT, (char *)text, strlen(text), false, head_only, allow);
}

/* tchar of RFC 9110 section 5.6.2. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Cuts the line at p (n bytes, ending in '\n'); CRLF or a bare LF ends it (RFC 9112
 * section 2.2), a CR anywhere else is an error. Returns the line length without its end,
 * sets *next past the end, or returns -1. */
static long take_line(const char *p, size_t n, size_t *next)
{
    const char *lf = memchr(p, '\n', n);
    size_t len;

    if (lf == NULL)
        return -1;
    len = (size_t)(lf - p);
    *next = len + 1;
    if (len > 0 && p[len - 1] == '\r')
        len--;
    if (memchr(p, '\r', len) != NULL)
        return -1;
    return (long)len;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 section 3), with an
 * origin-form target; then field lines (section 5) up to the empty line. Values are not
 * needed: this server reads no body and closes after one answer. */
static int parse_head(const char *p, size_t n, struct request *rq)
{
    size_t i = 0, next, at = 0;
    long len;
    const char *line, *target;
    size_t target_len;

    if ((len = take_line(p, n, &next)) < 0)
        return -1;
    line = p;
    while (i < (size_t)len && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i >= (size_t)len || line[i] != ' ')
        return -1;
    rq->method = line;
    rq->method_len = i++;
    target = line + i;
    while (i < (size_t)len && line[i] > 0x20 && line[i] < 0x7f)
        i++;
    target_len = (size_t)(line + i - target);
    if (target_len == 0 || target[0] != '/' || i >= (size_t)len || line[i] != ' ')
        return -1;
    i++;
    if ((size_t)len - i != 8 ||
        (memcmp(line + i, "HTTP/1.1", 8) != 0 && memcmp(line + i, "HTTP/1.0", 8) != 0))
        return -1;
    rq->path = target; /* routing ignores the query */
    rq->path_len = 0;
    while (rq->path_len < target_len && target[rq->path_len] != '?')
        rq->path_len++;

    for (at = next; at < n; at += next) {
        if ((len = take_line(p + at, n - at, &next)) < 0)
            return -1;
        if (len == 0)
            return at + next == n ? 0 : -1;
        line = p + at;
        /* no whitespace before the colon, and none starting a line (obs-fold) */
        i = 0;
        while (i < (size_t)len && is_tchar((unsigned char)line[i]))
            i++;
        if (i == 0 || i >= (size_t)len || line[i] != ':')
            return -1;
        for (i++; i < (size_t)len; i++) {
            unsigned char ch = (unsigned char)line[i];

            if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
                return -1;
        }
    }
    return -1;
}

static bool method_allowed(const char *allow, const struct request *rq)
{
    const char *m = allow;

    while (*m != '\0') {
        size_t len = strcspn(m, ",");

        if (len == rq->method_len && memcmp(m, rq->method, len) == 0)
            return true;
        m += len;
        m += strspn(m, ", ");
    }
    return false;
}

static void serve_body(struct admin_conn *c, char *(*get)(void *, size_t *), const char *type,
                       bool head_only)
{
    struct tg_admin_ops *ops = &c->admin->ops;
    size_t len = 0;
    char *body;

    if (get == NULL) {
        respond_text(c, 501, "not implemented\n", head_only, NULL);
        return;
    }
    body = get(ops->arg, &len);
    if (body == NULL || len > UINT32_MAX) { /* uv_buf_t holds an unsigned length */
        free(body);
        respond_text(c, 500, "internal error\n", head_only, NULL);
        return;
    }
    respond(c, 200, type, body, len, true, head_only, NULL);
}

static void route(struct admin_conn *c, const struct request *rq)
{
    struct tg_admin_ops *ops = &c->admin->ops;
    bool head_only = rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0;
    size_t i;

    for (i = 0; i < TG_NELEM(routes); i++) {
        if (strlen(routes[i].path) == rq->path_len &&
            memcmp(routes[i].path, rq->path, rq->path_len) == 0)
            break;
    }
    if (i == TG_NELEM(routes)) {
        respond_text(c, 404, "not found\n", head_only, NULL);
        return;
    }
    if (!method_allowed(routes[i].allow, rq)) {
        respond_text(c, 405, "method not allowed\n", head_only, routes[i].allow);
        return;
    }
    switch (routes[i].page) {
    case PAGE_LIVE:
        respond_text(c, 200, "live\n", head_only, NULL);
        break;
    case PAGE_READY:
        if (ops->ready == NULL || ops->ready(ops->arg))
            respond_text(c, 200, "ready\n", head_only, NULL);
        else
            respond_text(c, 503, "not ready\n", head_only, NULL);
        break;
    case PAGE_STATS:
        serve_body(c, ops->stats, CT_PROM, head_only);
        break;
    case PAGE_CONFIG:
        serve_body(c, ops->config_dump, CT_JSON, head_only);
        break;
    case PAGE_DRAIN:
        if (ops->drain == NULL) {
            respond_text(c, 501, "not implemented\n", false, NULL);
            break;
        }
        ops->drain(ops->arg);
        respond_text(c, 200, "draining\n", false, NULL);
        break;
    }
}

/* New bytes arrived at head[from..head_len); answers once the blank line is in. */
static void on_head_bytes(struct admin_conn *c, size_t from)
{
    struct request rq;
    size_t i;

    for (i = from; i < c->head_len; i++) {
        if (c->head[i] != '\n')
            continue;
        if ((i >= 1 && c->head[i - 1] == '\n') ||
            (i >= 2 && c->head[i - 1] == '\r' && c->head[i - 2] == '\n')) {
            if (parse_head(c->head, i + 1, &rq) < 0)
                respond_text(c, 400, "bad request\n", false, NULL);
            else
                route(c, &rq);
            return;
        }
    }
    if (c->head_len == sizeof(c->head))
        respond_text(c, 400, "request head too large\n", false, NULL);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct admin_conn *c = h->data;

    (void)suggested;
    /* before the answer head_len < sizeof(head): a full head is answered at once */
    if (c->responded)
        *buf = uv_buf_init(c->head, sizeof(c->head));
    else
        *buf = uv_buf_init(c->head + c->head_len, (unsigned)(sizeof(c->head) - c->head_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct admin_conn *c = s->data;
    size_t from = c->head_len;

    (void)buf;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF) {
            conn_close(c);
        } else if (c->responded) {
            c->peer_eof = true;
            uv_read_stop(s);
            if (c->shut)
                conn_close(c);
        } else if (c->head_len == 0) {
            conn_close(c); /* connected and left without a word */
        } else {
            /* half-closed before the head ended: answer, then close after the shutdown */
            c->peer_eof = true;
            uv_read_stop(s);
            respond_text(c, 400, "bad request\n", false, NULL);
        }
        return;
    }
    if (c->responded)
        return; /* dropped: one request per connection */
    c->head_len += (size_t)nread;
    on_head_bytes(c, from);
}

static struct admin_conn *conn_new(struct tg_admin *a)
{
    struct admin_conn *c = malloc(sizeof(*c));

    if (c == NULL)
        return NULL;
    memset(c, 0, offsetof(struct admin_conn, head));
    if (uv_tcp_init(a->listener.loop, &c->tcp) < 0) {
        free(c);
        return NULL;
    }
    uv_timer_init(a->listener.loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->write_req.data = c;
    c->shutdown_req.data = c;
    c->open_handles = 2;
    c->admin = a;
    c->next = a->conns;
    if (a->conns != NULL)
        a->conns->prev = c;
    a->conns = c;
    a->n_conns++;
    a->refs++;
    return c;
}

static void on_spare_closed(uv_handle_t *h)
{
    struct tg_admin *a = h->data;

    a->spare_busy = false;
    release(a);
}

/* Takes the connection waiting in the listener: serves it, or closes it when over the cap
 * or out of memory. libuv stops watching the listener until uv_accept() is called, so one
 * that cannot be taken now (spare busy) is taken from on_spare_closed. */
static void admit(struct tg_admin *a)
{
    uv_stream_t *server = (uv_stream_t *)&a->listener;
    struct admin_conn *c = NULL;
    int rc;

    a->backlog = false;
    if (a->n_conns < TG_ADMIN_MAX_CONNS)
        c = conn_new(a);
    if (c != NULL) {
        if ((rc = uv_accept(server, (uv_stream_t *)&c->tcp)) < 0 ||
            (rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) < 0 ||
            (rc = uv_timer_start(&c->timer, on_timeout, a->timeout_ms, 0)) < 0) {
            tg_warn("admin: accept: %s", uv_strerror(rc));
            conn_close(c);
        }
        return;
    }
    if (a->spare_busy) {
        a->backlog = true;
        return;
    }
    if (uv_tcp_init(a->listener.loop, &a->spare) < 0)
        return;
    a->spare.data = a;
    a->spare_busy = true;
    a->refs++;
    if (uv_accept(server, (uv_stream_t *)&a->spare) == 0)
        tg_debug("admin: %s, connection refused",
                 a->n_conns < TG_ADMIN_MAX_CONNS ? "out of memory" : "too many connections");
    uv_close((uv_handle_t *)&a->spare, on_spare_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct tg_admin *a = server->data;

    if (status < 0) {
        tg_warn("admin: listen: %s", uv_strerror(status));
        return;
    }
    admit(a);
}

static void on_listener_closed(uv_handle_t *h)
{
    release(h->data);
}

/* "ip:port" of addr for messages, when the caller gave no text. */
static const char *addr_text(const struct tg_addr *addr, char *buf, size_t cap)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)&addr->ss;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr->ss;
    char ip[64] = "?";

    if (addr->text[0] != '\0')
        return addr->text;
    if (addr->ss.ss_family == AF_INET) {
        uv_ip4_name(in, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (addr->ss.ss_family == AF_INET6) {
        uv_ip6_name(in6, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, cap, "(address family %d)", (int)addr->ss.ss_family);
    }
    return buf;
}

int tg_admin_start(uv_loop_t *loop, const struct tg_addr *addr, const struct tg_admin_ops *ops,
                   struct tg_admin **out, char *err)
{
    struct tg_admin *a = calloc(1, sizeof(*a));
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    bool inited = false;
    char text[96];
    int rc = TG_ENOMEM;

    if (a == NULL)
        goto fail;
    a->ops = *ops;
    a->timeout_ms = TG_ADMIN_TIMEOUT_MS;
    a->refs = 1; /* the listener */
    if ((rc = uv_tcp_init(loop, &a->listener)) < 0)
        goto fail;
    inited = true;
    a->listener.data = a;
    /* libuv sets SO_REUSEADDR, so a restart does not wait out TIME_WAIT */
    if ((rc = uv_tcp_bind(&a->listener, (const struct sockaddr *)&addr->ss, 0)) < 0)
        goto fail;
    /* a bind conflict may only show here (uv_tcp_bind defers EADDRINUSE) */
    if ((rc = uv_listen((uv_stream_t *)&a->listener, 128, on_connection)) < 0)
        goto fail;
    if ((rc = uv_tcp_getsockname(&a->listener, (struct sockaddr *)&ss, &len)) < 0)
        goto fail;
    a->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    *out = a;
    return 0;
fail:
    tg_err_set(err, rc, "admin %s: %s", addr_text(addr, text, sizeof(text)), tg_strerror(rc));
    if (inited) {
        a->stopping = true;
        uv_close((uv_handle_t *)&a->listener, on_listener_closed);
    } else {
        free(a);
    }
    return rc;
}

void tg_admin_stop(struct tg_admin *a)
{
    struct admin_conn *c;

    if (a == NULL || a->stopping)
        return;
    a->stopping = true;
    a->backlog = false; /* closing the listener closes a connection left in it */
    uv_close((uv_handle_t *)&a->listener, on_listener_closed);
    for (c = a->conns; c != NULL; c = c->next)
        conn_close(c); /* unlinks only in its close callback, so the walk is safe */
}

int tg_admin_port(const struct tg_admin *a)
{
    return a->port;
}

void tg_admin_set_timeout(struct tg_admin *a, uint64_t ms)
{
    a->timeout_ms = ms;
}

/* The app's probes, run locally for the kubelet (appprobe.h). */
#include "tollgate/appprobe.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MAX 1024 /* of the app's answer, what is kept: its status line is enough */

void tg_appprobes_free(struct tg_appprobes *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].name);
        free(t->v[i].path);
    }
    free(t->v);
    free(t);
}

static int port_of(const json_t *action, const char *name, uint16_t *out, char *err)
{
    const json_t *p = json_object_get(action, "port");
    json_int_t n = json_integer_value(p);

    if (!json_is_integer(p) || n < 1 || n > 65535)
        return tg_err_set(err, TG_EINVAL, "%s: port: a number 1..65535 wanted", name);
    *out = (uint16_t)n;
    return 0;
}

static int parse_one(const char *name, const json_t *v, struct tg_appprobe *p, char *err)
{
    const json_t *http = json_object_get(v, "httpGet"), *tcp = json_object_get(v, "tcpSocket");
    const json_t *to = json_object_get(v, "timeoutSeconds");
    const char *path = "/";
    int rc;

    if (!json_is_object(v) || (http != NULL) == (tcp != NULL))
        return tg_err_set(err, TG_EINVAL, "%s: one of httpGet and tcpSocket wanted", name);
    if (strchr(name, '/') == NULL || strlen(name) > 300)
        return tg_err_set(err, TG_EINVAL, "%.64s: not CONTAINER/livez|readyz|startupz", name);
    if (to != NULL &&
        (!json_is_integer(to) || json_integer_value(to) < 1 || json_integer_value(to) > 3600))
        return tg_err_set(err, TG_EINVAL, "%s: timeoutSeconds: 1..3600 wanted", name);
    p->timeout_ms = to != NULL ? (uint64_t)json_integer_value(to) * 1000 : 1000;
    p->http = http != NULL;
    if ((rc = port_of(p->http ? http : tcp, name, &p->port, err)) < 0)
        return rc;
    if (p->http && json_object_get(http, "path") != NULL) {
        path = json_string_value(json_object_get(http, "path"));
        /* one request line: visible ASCII only, so nothing can be smuggled into it */
        if (path == NULL || path[0] != '/' || strlen(path) > 2048)
            return tg_err_set(err, TG_EINVAL, "%s: path: an absolute path wanted", name);
        for (const char *c = path; *c != '\0'; c++)
            if (*c <= ' ' || *c >= 0x7f)
                return tg_err_set(err, TG_EINVAL, "%s: path: a byte that is not visible ASCII",
                                  name);
    }
    if ((p->name = strdup(name)) == NULL || (p->http && (p->path = strdup(path)) == NULL))
        return TG_ENOMEM;
    return 0;
}

int tg_appprobes_parse(const char *json, size_t len, struct tg_appprobes **out, char *err)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    struct tg_appprobes *t = calloc(1, sizeof(*t));
    const char *name;
    json_t *v;
    int rc = TG_ENOMEM;

    if (t == NULL)
        goto fail;
    rc = TG_EINVAL;
    if (root == NULL) {
        tg_err_set(err, rc, "not JSON: %s", je.text);
        goto fail;
    }
    if (!json_is_object(root) || json_object_size(root) > TG_APPPROBE_MAX) {
        tg_err_set(err, rc, "an object of at most %d probes wanted", TG_APPPROBE_MAX);
        goto fail;
    }
    rc = TG_ENOMEM;
    if ((t->v = calloc(json_object_size(root) + 1, sizeof(*t->v))) == NULL)
        goto fail;
    json_object_foreach(root, name, v)
    {
        if ((rc = parse_one(name, v, &t->v[t->n], err)) < 0) {
            t->n++; /* freed with the rest */
            goto fail;
        }
        t->n++;
    }
    json_decref(root);
    *out = t;
    return 0;
fail:
    json_decref(root);
    tg_appprobes_free(t);
    return rc;
}

const struct tg_appprobe *tg_appprobes_find(const struct tg_appprobes *t, const char *name,
                                            size_t len)
{
    for (size_t i = 0; t != NULL && i < t->n; i++)
        if (strlen(t->v[i].name) == len && memcmp(t->v[i].name, name, len) == 0)
            return &t->v[i];
    return NULL;
}

/* ---- one run ---- */

struct run {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_write_t wreq;
    int open_handles;
    bool finished;
    bool http;
    char *request;
    size_t request_len;
    char answer[ANSWER_MAX];
    size_t answer_len;
    void (*done)(void *arg, bool ok, const char *why);
    void *arg;
};

static void on_closed(uv_handle_t *h)
{
    struct run *r = h->data;

    if (--r->open_handles > 0)
        return;
    free(r->request);
    free(r);
}

/* The verdict, once; then everything closes. */
static void finish(struct run *r, bool ok, const char *why)
{
    if (r->finished)
        return;
    r->finished = true;
    r->done(r->arg, ok, why);
    uv_close((uv_handle_t *)&r->tcp, on_closed);
    uv_close((uv_handle_t *)&r->timer, on_closed);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, false, "the app did not answer within timeoutSeconds");
}

/* "HTTP/1.1 204 ..." in the answer so far: 1 pass, 0 fail, -1 not yet complete. */
static int verdict(const struct run *r)
{
    const char *eol = memchr(r->answer, '\n', r->answer_len);
    int status;

    if (eol == NULL)
        return r->answer_len == sizeof(r->answer) ? 0 : -1;
    if (r->answer_len < 12 || memcmp(r->answer, "HTTP/1.", 7) != 0 || r->answer[8] != ' ' ||
        sscanf(r->answer + 9, "%3d", &status) != 1)
        return 0;
    return status >= 200 && status < 400;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct run *r = h->data;

    (void)suggested;
    *buf = uv_buf_init(r->answer + r->answer_len, (unsigned)(sizeof(r->answer) - r->answer_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct run *r = s->data;
    int v;

    (void)buf;
    if (r->finished || nread == 0)
        return;
    if (nread > 0)
        r->answer_len += (size_t)nread;
    v = verdict(r);
    if (v < 0 && nread > 0)
        return;
    if (v == 1)
        finish(r, true, "the app answered 2xx or 3xx");
    else
        finish(r, false,
               v == 0 ? "the app answered with a status outside 200..399"
                      : "the app closed the connection without an answer");
}

static void on_written(uv_write_t *w, int status)
{
    struct run *r = w->data;

    if (status < 0)
        finish(r, false, "the request could not be sent to the app");
}

static void on_connect(uv_connect_t *c, int status)
{
    struct run *r = c->data;
    uv_buf_t b;

    if (r->finished)
        return; /* UV_ECANCELED */
    if (status < 0) {
        finish(r, false, "the app's port refused the connection");
        return;
    }
    if (!r->http) {
        finish(r, true, "the app's port accepted the connection");
        return;
    }
    b = uv_buf_init(r->request, (unsigned)r->request_len);
    if (uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read) < 0 ||
        uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, on_written) < 0)
        finish(r, false, "the request could not be sent to the app");
}

static void on_start(uv_timer_t *t)
{
    struct run *r = t->data;

    (void)t;
    finish(r, false, "the app's port refused the connection");
}

int tg_appprobe_run(uv_loop_t *loop, const struct tg_appprobe *p,
                    void (*done)(void *arg, bool ok, const char *why), void *arg)
{
    struct run *r = calloc(1, sizeof(*r));
    struct sockaddr_in sa;
    int rc;

    if (r == NULL)
        return TG_ENOMEM;
    r->http = p->http;
    r->done = done;
    r->arg = arg;
    if (p->http) {
        size_t cap = strlen(p->path) + 160;

        if ((r->request = malloc(cap)) == NULL) {
            free(r);
            return TG_ENOMEM;
        }
        r->request_len = (size_t)snprintf(r->request, cap,
                                          "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                                          "User-Agent: kube-probe/tollgate\r\nAccept: */*\r\n"
                                          "Connection: close\r\n\r\n",
                                          p->path, (unsigned)p->port);
    }
    r->tcp.data = r;
    r->timer.data = r;
    r->creq.data = r;
    r->wreq.data = r;
    uv_tcp_init(loop, &r->tcp);
    uv_timer_init(loop, &r->timer);
    r->open_handles = 2;
    uv_ip4_addr("127.0.0.1", p->port, &sa);
    uv_timer_start(&r->timer, on_timeout, p->timeout_ms, 0);
    rc = uv_tcp_connect(&r->creq, &r->tcp, (const struct sockaddr *)&sa, on_connect);
    if (rc < 0) /* the verdict from the loop, never from inside this call */
        uv_timer_start(&r->timer, on_start, 0, 0);
    return 0;
}

/* The admission webhook's server, certificate and caBundle (k8s_webhook.h). */
#include "k8s_webhook.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/adminreq.h"
#include "tollgate/file.h"
#include "tollgate/http.h"
#include "tollgate/identity.h"
#include "tollgate/log.h"
#include "tollgate/msgstream.h"
#include "tollgate/tls.h"

#define SWEEP_MS 500
#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 60000
#define API_TIMEOUT_S 10
#define API_BODY_MAX (4u << 20)
#define N_NAMES 4

/* A TLS context and the connections still using it. */
struct ctxref {
    struct tg_tls_ctx *ctx;
    unsigned refs;
};

struct wconn {
    struct tg_k8s_webhook *w;
    struct tg_msgstream *ms;
    struct ctxref *ctx;
    char *buf; /* the request so far */
    size_t len;
    size_t cap;
    size_t scanned;
    uint64_t deadline; /* uv_now */
    bool answered;
    struct wconn *next;
};

enum { J_SERVER, J_CA, J_TOKEN, J_CONFIG, J_SERVICE, J_NS, J_BUNDLE, J_N };

/* One caBundle check on the thread pool: its inputs are copies, its outputs read after. */
struct bundle_job {
    uv_work_t req;
    struct tg_k8s_webhook *w;
    char *str[J_N]; /* copies of the webhook's settings and the bundle, base64 */
    int rc;
    bool patched;
    char msg[TG_ERRLEN];
};

struct tg_k8s_webhook {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep;
    uv_timer_t renew;              /* the certificate's half-life */
    uv_timer_t retry;              /* the caBundle check after a failure */
    int open_handles;              /* the four handles, a job in flight */
    struct tg_k8s_webhook_cfg cfg; /* its strings are owned[] */
    char *owned[7];
    char *names[N_NAMES];
    const struct tg_cp_ca *ca;
    char ca_serial[64];
    struct ctxref *ctx; /* the current one */
    char *bundle_pem;
    bool bundle_dirty; /* a check is wanted (again) */
    bool job_running;
    uint64_t retry_ms;
    tg_k8s_inject_lookup lookup;
    void *lookup_arg;
    struct wconn *conns;
    size_t n_conns;
    int port;
    bool closing;
    struct tg_k8s_webhook_stats stats;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static const struct tg_tls_peer_rule any_peer = {.ids = &(const struct tg_strlist){NULL, 0}};

static void ctx_unref(struct ctxref *r)
{
    if (r == NULL || --r->refs > 0)
        return;
    tg_tls_ctx_free(r->ctx);
    free(r);
}

/* ---- the serving certificate ---- */

static int issue(struct tg_k8s_webhook *w, const struct tg_cp_ca *ca, char *err)
{
    char *chain = NULL, *key = NULL;
    size_t chain_len = 0, key_len = 0;
    struct ctxref *r = calloc(1, sizeof(*r));
    int rc = TG_ENOMEM;

    if (r == NULL)
        return tg_err_set(err, rc, "out of memory");
    if ((rc = tg_cp_ca_issue_dns(ca, (const char *const *)w->names, N_NAMES, TG_K8S_WEBHOOK_CERT_S,
                                 &chain, &chain_len, &key, &key_len, err)) < 0)
        goto fail;
    if ((rc = tg_tls_ctx_new_https(chain, chain_len, key, key_len, &r->ctx, err)) < 0)
        goto fail;
    r->refs = 1;
    ctx_unref(w->ctx);
    w->ctx = r;
    r = NULL;
    w->ca = ca;
    snprintf(w->ca_serial, sizeof(w->ca_serial), "%s", tg_cp_ca_serial(ca));
    w->stats.certs++;
    tg_info("webhook: serving certificate for %s issued by CA serial %s", w->names[2],
            w->ca_serial);
fail:
    if (r != NULL) {
        tg_tls_ctx_free(r->ctx);
        free(r);
    }
    free(chain);
    tg_wipe_free(key, key_len);
    return rc;
}

static void on_renew(uv_timer_t *t);

static void schedule_renew(struct tg_k8s_webhook *w)
{
    int64_t left = tg_cp_ca_not_after(w->ca) - tg_identity_now();
    int64_t life = left < TG_K8S_WEBHOOK_CERT_S ? left : TG_K8S_WEBHOOK_CERT_S;
    uint64_t ms = life > 2 ? (uint64_t)life * 500 : 1000;

    uv_timer_start(&w->renew, on_renew, ms, 0);
}

static void on_renew(uv_timer_t *t)
{
    struct tg_k8s_webhook *w = t->data;
    char err[TG_ERRLEN] = "";

    if (issue(w, w->ca, err) < 0)
        tg_error("webhook: renewing the serving certificate: %s (the current one serves on)", err);
    schedule_renew(w);
}

/* ---- the caBundle ---- */

struct curl_body {
    char *p;
    size_t len;
    bool over;
};

static size_t on_curl_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct curl_body *b = arg;
    size_t n = size * nmemb;
    char *grown;

    if (b->len + n > API_BODY_MAX) {
        b->over = true;
        return 0;
    }
    if ((grown = realloc(b->p, b->len + n + 1)) == NULL)
        return 0;
    b->p = grown;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* One request to the API server: *status and body (malloc'd) back, or a negative code. */
static int api_call(struct bundle_job *j, const char *method, const char *path,
                    const char *content_type, const char *send, long *status,
                    struct curl_body *body)
{
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    char *token = NULL, url[1024], auth[64];
    size_t token_len = 0;
    char *hdr = NULL;
    CURLcode cr;
    int rc = TG_ENOMEM;

    if (e == NULL)
        goto done;
    if ((rc = tg_file_read("kubernetes.discovery.token", j->str[J_TOKEN], 64 * 1024, TG_FILE_SECRET,
                           &token, &token_len, j->msg)) < 0)
        goto done;
    while (token_len > 0 && (token[token_len - 1] == '\n' || token[token_len - 1] == '\r'))
        token[--token_len] = '\0';
    rc = TG_ENOMEM;
    snprintf(auth, sizeof(auth), "Authorization: Bearer ");
    if ((hdr = malloc(strlen(auth) + token_len + 1)) == NULL)
        goto done;
    snprintf(hdr, strlen(auth) + token_len + 1, "%s%s", auth, token);
    if ((h = curl_slist_append(h, hdr)) == NULL ||
        (h = curl_slist_append(h, "Accept: application/json")) == NULL)
        goto done;
    if (content_type != NULL) {
        char ct[128];

        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        if ((h = curl_slist_append(h, ct)) == NULL)
            goto done;
    }
    snprintf(url, sizeof(url), "%s%s", j->str[J_SERVER], path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_CAINFO, j->str[J_CA]);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)API_TIMEOUT_S);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    if (send != NULL)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, send);
    if ((cr = curl_easy_perform(e)) != CURLE_OK) {
        rc = tg_err_set(j->msg, TG_EIO, "%s %s: %s", method, url,
                        body->over ? "answer too large" : curl_easy_strerror(cr));
        goto done;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    rc = 0;
done:
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    tg_wipe_free(hdr, hdr != NULL ? strlen(hdr) : 0);
    tg_wipe_free(token, token_len);
    return rc;
}

/* The JSON patch that puts our bundle in each of our webhooks, or NULL when they all hold
 * it already (*n_ours: how many are ours). */
static json_t *bundle_patch(struct bundle_job *j, json_t *cfg, size_t *n_ours)
{
    const char *rv =
        json_string_value(json_object_get(json_object_get(cfg, "metadata"), "resourceVersion"));
    json_t *patch = json_array(), *hook;
    size_t i;
    bool change = false;

    *n_ours = 0;
    if (patch == NULL || rv == NULL)
        goto fail;
    if (json_array_append_new(patch, json_pack("{s:s, s:s, s:s}", "op", "test", "path",
                                               "/metadata/resourceVersion", "value", rv)) < 0)
        goto fail;
    json_array_foreach(json_object_get(cfg, "webhooks"), i, hook)
    {
        json_t *cc = json_object_get(hook, "clientConfig");
        json_t *svc = json_object_get(cc, "service");
        const char *name = json_string_value(json_object_get(svc, "name"));
        const char *ns = json_string_value(json_object_get(svc, "namespace"));
        const char *have = json_string_value(json_object_get(cc, "caBundle"));
        char path[96];

        if (name == NULL || ns == NULL || strcmp(name, j->str[J_SERVICE]) != 0 ||
            strcmp(ns, j->str[J_NS]) != 0)
            continue;
        (*n_ours)++;
        if (have != NULL && strcmp(have, j->str[J_BUNDLE]) == 0)
            continue;
        snprintf(path, sizeof(path), "/webhooks/%zu/clientConfig/caBundle", i);
        if (json_array_append_new(patch, json_pack("{s:s, s:s, s:s}", "op", "add", "path", path,
                                                   "value", j->str[J_BUNDLE])) < 0)
            goto fail;
        change = true;
    }
    if (change)
        return patch;
fail:
    json_decref(patch);
    return NULL;
}

/* Thread pool: GET, then PATCH where needed; twice when a concurrent write got between. */
static void on_bundle_work(uv_work_t *req)
{
    struct bundle_job *j = req->data;
    char path[512];

    snprintf(path, sizeof(path),
             "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/%s",
             j->str[J_CONFIG]);
    for (int attempt = 0; attempt < 2; attempt++) {
        struct curl_body got = {0}, put = {0};
        json_t *cfg = NULL, *patch = NULL;
        char *text = NULL;
        long status = 0;
        size_t ours = 0;

        j->rc = api_call(j, "GET", path, NULL, NULL, &status, &got);
        if (j->rc == 0 && status != 200)
            j->rc = tg_err_set(j->msg, TG_EIO, "GET %s: HTTP %ld", path, status);
        if (j->rc == 0 && (cfg = json_loadb(got.p, got.len, 0, NULL)) == NULL)
            j->rc = tg_err_set(j->msg, TG_EINVAL, "GET %s: the answer is not JSON", path);
        if (j->rc == 0 && (patch = bundle_patch(j, cfg, &ours)) == NULL && ours == 0)
            j->rc = tg_err_set(j->msg, TG_ECONFIG,
                               "%s names no webhook with clientConfig.service %s/%s",
                               j->str[J_CONFIG], j->str[J_NS], j->str[J_SERVICE]);
        if (j->rc == 0 && patch != NULL) {
            if ((text = json_dumps(patch, JSON_COMPACT)) == NULL)
                j->rc = TG_ENOMEM;
            else
                j->rc =
                    api_call(j, "PATCH", path, "application/json-patch+json", text, &status, &put);
            if (j->rc == 0 && status == 200) {
                j->patched = true;
            } else if (j->rc == 0) {
                j->rc = tg_err_set(j->msg, TG_EIO, "PATCH %s: HTTP %ld", path, status);
            }
        }
        free(got.p);
        free(put.p);
        free(text);
        json_decref(cfg);
        json_decref(patch);
        /* 409 Conflict or 422 (the test op failed): someone wrote between our GET and PATCH */
        if (j->rc == TG_EIO && (status == 409 || status == 422))
            continue;
        break;
    }
}

static void start_bundle_job(struct tg_k8s_webhook *w);

static void on_retry(uv_timer_t *t)
{
    start_bundle_job(t->data);
}

static void maybe_free(struct tg_k8s_webhook *w);

static void job_free(struct bundle_job *j)
{
    for (size_t i = 0; i < J_N; i++)
        free(j->str[i]);
    free(j);
}

static void on_bundle_done(uv_work_t *req, int status)
{
    struct bundle_job *j = req->data;
    struct tg_k8s_webhook *w = j->w;

    w->job_running = false;
    w->open_handles--;
    if (w->closing) {
        job_free(j);
        maybe_free(w);
        return;
    }
    if (status == 0 && j->rc == 0) {
        w->stats.bundle_ok++;
        w->retry_ms = RETRY_MIN_MS;
        tg_info("webhook: caBundle of %s %s", j->str[J_CONFIG],
                j->patched ? "written" : "already current");
    } else {
        w->stats.bundle_failed++;
        w->bundle_dirty = true;
        tg_warn("webhook: caBundle of %s not written: %s (again in %llu ms)", j->str[J_CONFIG],
                j->msg[0] ? j->msg : tg_strerror(j->rc), (unsigned long long)w->retry_ms);
        uv_timer_start(&w->retry, on_retry, w->retry_ms, 0);
        w->retry_ms = w->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : w->retry_ms * 2;
    }
    job_free(j);
    if (w->bundle_dirty && !uv_is_active((uv_handle_t *)&w->retry))
        start_bundle_job(w);
}

static char *b64(const char *s)
{
    char *out = NULL;

    return tg_k8s_base64(s, strlen(s), &out) < 0 ? NULL : out;
}

static void start_bundle_job(struct tg_k8s_webhook *w)
{
    struct bundle_job *j;

    if (w->closing || w->job_running || !w->bundle_dirty)
        return;
    if ((j = calloc(1, sizeof(*j))) == NULL)
        goto oom;
    j->w = w;
    j->req.data = j;
    {
        const char *from[J_N] = {w->cfg.api_server,    w->cfg.ca_file, w->cfg.token_file,
                                 w->cfg.configuration, w->cfg.service, w->cfg.ns};

        for (size_t i = 0; i < J_BUNDLE; i++)
            if ((j->str[i] = strdup(from[i])) == NULL) {
                job_free(j);
                goto oom;
            }
    }
    if ((j->str[J_BUNDLE] = b64(w->bundle_pem)) == NULL) {
        job_free(j);
        goto oom;
    }
    if (uv_queue_work(w->loop, &j->req, on_bundle_work, on_bundle_done) < 0) {
        job_free(j);
        goto oom;
    }
    w->bundle_dirty = false;
    w->job_running = true;
    w->open_handles++;
    return;
oom:
    tg_error("webhook: out of memory starting the caBundle check (again in %d ms)", RETRY_MAX_MS);
    uv_timer_start(&w->retry, on_retry, RETRY_MAX_MS, 0);
}

/* ---- serving ---- */

/* Answers and closes (after the answer is written). */
static void answer(struct wconn *c, int status, const char *type, const char *body, size_t len)
{
    char head[256], err[TG_ERRLEN];
    int n;

    if (c->answered)
        return;
    c->answered = true;
    if (status != 200)
        c->w->stats.rejected++;
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                 status, tg_adminreq_reason(status), type, len,
                 status == 405 ? "Allow: POST\r\n" : "");
    if (tg_msgstream_send(c->ms, head, (size_t)n, err) < 0 ||
        (len > 0 && tg_msgstream_send(c->ms, body, len, err) < 0)) {
        tg_msgstream_close(c->ms, false, "webhook: %s", err);
        return;
    }
    tg_msgstream_close(c->ms, true, "answered %d", status);
}

static void answer_text(struct wconn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void answer_text(struct wconn *c, int status, const char *fmt, ...)
{
    char text[TG_ERRLEN + 2];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(text, sizeof(text) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(text) - 2)
        n = (int)sizeof(text) - 2;
    text[n++] = '\n';
    text[n] = '\0';
    answer(c, status, "text/plain; charset=utf-8", text, (size_t)n);
}

static void review(struct wconn *c, const char *body, size_t len)
{
    struct tg_k8s_webhook *w = c->w;
    struct tg_k8s_inject_cfg ic = {.image = w->cfg.image};
    struct tg_k8s_inject_result res;
    char err[TG_ERRLEN] = "";
    int rc = tg_k8s_inject_review(body, len, &ic, w->lookup, w->lookup_arg, &res, err);

    if (rc == TG_EINVAL) {
        tg_warn("webhook: refused a request from %s: %s", tg_msgstream_peer_addr(c->ms), err);
        answer_text(c, 400, "%s", err);
        return;
    }
    if (rc < 0) {
        answer_text(c, 500, "out of memory");
        return;
    }
    w->stats.requests++;
    if (res.patched)
        w->stats.injected++;
    if (res.reason[0] != '\0') {
        w->stats.refused++;
        tg_warn("webhook: pod refused: %s", res.reason);
    } else {
        tg_debug("webhook: %s", res.why);
    }
    answer(c, 200, "application/json", res.body, res.len);
    free(res.body);
}

/* Reads as far as the bytes go: the head, then the body it announces. */
static void parse(struct wconn *c)
{
    static const struct tg_http_limits lim = {
        .max_head = TG_K8S_WEBHOOK_HEAD_MAX, .max_line = 8192, .max_fields = 64};
    struct tg_http_field fields[64];
    struct tg_http_request rq;
    char err[TG_ERRLEN] = "";
    int status = 400;
    int rc = tg_http_parse_request(c->buf, c->len, &lim, fields, &c->scanned, &rq, &status, err);

    if (rc < 0) {
        answer_text(c, status, "%s", err);
        return;
    }
    if (rc == 0)
        return;
    if (rq.target_len != strlen(TG_K8S_WEBHOOK_PATH) ||
        memcmp(rq.target, TG_K8S_WEBHOOK_PATH, rq.target_len) != 0) {
        /* the API server adds ?timeout=10s: the query is allowed */
        if (!(rq.target_len > strlen(TG_K8S_WEBHOOK_PATH) &&
              memcmp(rq.target, TG_K8S_WEBHOOK_PATH "?", strlen(TG_K8S_WEBHOOK_PATH) + 1) == 0)) {
            answer_text(c, 404, "only " TG_K8S_WEBHOOK_PATH " is served here");
            return;
        }
    }
    if (rq.method_len != 4 || memcmp(rq.method, "POST", 4) != 0) {
        answer_text(c, 405, "only POST");
        return;
    }
    if (rq.framing != TG_HTTP_LENGTH) {
        answer_text(c, 411, "a Content-Length body is needed");
        return;
    }
    if (rq.content_length > TG_K8S_WEBHOOK_BODY_MAX) {
        answer_text(c, 413, "body of %llu bytes: at most %u", (unsigned long long)rq.content_length,
                    TG_K8S_WEBHOOK_BODY_MAX);
        return;
    }
    if (c->len - rq.head_len < rq.content_length)
        return; /* more to come */
    review(c, c->buf + rq.head_len, (size_t)rq.content_length);
}

static void on_connected(struct tg_msgstream *s)
{
    (void)s;
}

static void on_frame(struct tg_msgstream *s, const char *p, size_t n)
{
    struct wconn *c = tg_msgstream_data(s);

    if (c->answered)
        return; /* what follows the request is dropped */
    if (c->len + n > TG_K8S_WEBHOOK_HEAD_MAX + TG_K8S_WEBHOOK_BODY_MAX) {
        answer_text(c, 413, "request over %u bytes",
                    TG_K8S_WEBHOOK_HEAD_MAX + TG_K8S_WEBHOOK_BODY_MAX);
        return;
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 16384;
        char *grown;

        while (cap < c->len + n + 1)
            cap *= 2;
        if ((grown = realloc(c->buf, cap)) == NULL) {
            tg_msgstream_close(s, false, "out of memory");
            return;
        }
        c->buf = grown;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    parse(c);
}

static void on_conn_closed(struct tg_msgstream *s, const char *reason)
{
    struct wconn *c = tg_msgstream_data(s);
    struct tg_k8s_webhook *w = c->w;

    if (!c->answered)
        tg_debug("webhook: connection from %s closed: %s", tg_msgstream_peer_addr(s), reason);
    for (struct wconn **p = &w->conns; *p != NULL; p = &(*p)->next) {
        if (*p == c) { /* at most TG_K8S_WEBHOOK_MAX_CONNS + 1 to walk */
            *p = c->next;
            break;
        }
    }
    w->n_conns--;
    ctx_unref(c->ctx);
    free(c->buf);
    free(c);
    maybe_free(w);
}

static const struct tg_msgstream_ops conn_ops = {
    .on_connected = on_connected, .on_frame = on_frame, .on_closed = on_conn_closed};

static void on_connection(uv_stream_t *server, int status)
{
    struct tg_k8s_webhook *w = server->data;
    struct tg_msgstream_opts opts = {
        .raw = true, .handshake_timeout_ms = TG_K8S_WEBHOOK_REQUEST_MS, .max_queued = 1u << 20};
    struct wconn *c;

    if (status < 0 || w->closing)
        return;
    if ((c = calloc(1, sizeof(*c))) == NULL ||
        tg_msgstream_accept(w->loop, server, w->ctx->ctx, &any_peer, &opts, &conn_ops, c, &c->ms) <
            0) {
        free(c);
        tg_error("webhook: out of memory accepting a connection");
        return;
    }
    c->w = w;
    c->ctx = w->ctx;
    w->ctx->refs++;
    c->deadline = uv_now(w->loop) + TG_K8S_WEBHOOK_REQUEST_MS;
    c->next = w->conns;
    w->conns = c;
    w->n_conns++;
    if (w->n_conns > TG_K8S_WEBHOOK_MAX_CONNS) {
        c->answered = true;
        tg_msgstream_close(c->ms, false, "over %d connections", TG_K8S_WEBHOOK_MAX_CONNS);
    }
}

static void on_sweep(uv_timer_t *t)
{
    struct tg_k8s_webhook *w = t->data;
    uint64_t now = uv_now(w->loop);

    for (struct wconn *c = w->conns; c != NULL; c = c->next)
        if (!c->answered && c->deadline <= now) {
            c->answered = true;
            tg_msgstream_close(c->ms, false, "request not complete within %d ms",
                               TG_K8S_WEBHOOK_REQUEST_MS);
        }
}

/* ---- life cycle ---- */

static void webhook_free(struct tg_k8s_webhook *w)
{
    ctx_unref(w->ctx);
    for (size_t i = 0; i < N_NAMES; i++)
        free(w->names[i]);
    for (size_t i = 0; i < TG_NELEM(w->owned); i++)
        free(w->owned[i]);
    free(w->bundle_pem);
    free(w);
}

static void maybe_free(struct tg_k8s_webhook *w)
{
    void (*cb)(void *) = w->on_closed;
    void *arg = w->closed_arg;

    if (!w->closing || w->open_handles > 0 || w->conns != NULL)
        return;
    webhook_free(w);
    if (cb != NULL)
        cb(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tg_k8s_webhook *w = h->data;

    w->open_handles--;
    maybe_free(w);
}

static int copy_cfg(struct tg_k8s_webhook *w, const struct tg_k8s_webhook_cfg *cfg)
{
    const char *const *src[] = {&cfg->service,    &cfg->ns,      &cfg->configuration, &cfg->image,
                                &cfg->api_server, &cfg->ca_file, &cfg->token_file};
    const char **dst[] = {&w->cfg.service,    &w->cfg.ns,      &w->cfg.configuration, &w->cfg.image,
                          &w->cfg.api_server, &w->cfg.ca_file, &w->cfg.token_file};

    for (size_t i = 0; i < TG_NELEM(src); i++) {
        if (*src[i] == NULL || (w->owned[i] = strdup(*src[i])) == NULL)
            return TG_ENOMEM;
        *dst[i] = w->owned[i];
    }
    for (size_t i = 0; i < N_NAMES; i++) {
        static const char *const suffix[N_NAMES] = {"", "", ".svc", ".svc.cluster.local"};
        size_t n = strlen(cfg->service) + strlen(cfg->ns) + 32;

        if ((w->names[i] = malloc(n)) == NULL)
            return TG_ENOMEM;
        if (i == 0)
            snprintf(w->names[i], n, "%s", cfg->service);
        else
            snprintf(w->names[i], n, "%s.%s%s", cfg->service, cfg->ns, suffix[i]);
    }
    w->cfg.listen = NULL;
    return 0;
}

int tg_k8s_webhook_new(uv_loop_t *loop, const struct tg_k8s_webhook_cfg *cfg,
                       const struct tg_cp_ca *ca, const char *bundle_pem,
                       tg_k8s_inject_lookup lookup, void *arg, struct tg_k8s_webhook **out,
                       char *err)
{
    struct tg_k8s_webhook *w = calloc(1, sizeof(*w));
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;

    if (w == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    if (copy_cfg(w, cfg) < 0 || (w->bundle_pem = strdup(bundle_pem)) == NULL) {
        webhook_free(w);
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    }
    w->loop = loop;
    w->lookup = lookup;
    w->lookup_arg = arg;
    w->retry_ms = RETRY_MIN_MS;
    w->bundle_dirty = true;
    if ((rc = issue(w, ca, err)) < 0) {
        webhook_free(w);
        return rc;
    }
    w->listener.data = w;
    w->sweep.data = w;
    w->renew.data = w;
    w->retry.data = w;
    uv_tcp_init(loop, &w->listener);
    uv_timer_init(loop, &w->sweep);
    uv_timer_init(loop, &w->renew);
    uv_timer_init(loop, &w->retry);
    w->open_handles = 4;
    rc = uv_tcp_bind(&w->listener, (const struct sockaddr *)&cfg->listen->ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&w->listener, 128, on_connection);
    if (rc < 0) {
        tg_err_set(err, rc, "webhook listen %s: %s", cfg->listen->text, uv_strerror(rc));
        tg_k8s_webhook_close(w, NULL, NULL);
        return rc;
    }
    if (uv_tcp_getsockname(&w->listener, (struct sockaddr *)&ss, &len) == 0)
        w->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    uv_timer_start(&w->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    schedule_renew(w);
    start_bundle_job(w);
    tg_info("webhook: serving AdmissionReviews on %s (port %d), POST " TG_K8S_WEBHOOK_PATH
            ", keeping %s current",
            cfg->listen->text, w->port, w->cfg.configuration);
    *out = w;
    return 0;
}

void tg_k8s_webhook_set_ca(struct tg_k8s_webhook *w, const struct tg_cp_ca *ca,
                           const char *bundle_pem)
{
    char err[TG_ERRLEN] = "";

    if (strcmp(tg_cp_ca_serial(ca), w->ca_serial) != 0) {
        if (issue(w, ca, err) < 0)
            tg_error("webhook: a certificate from the new CA: %s (the current one serves on)", err);
        else
            schedule_renew(w);
    }
    w->ca = ca; /* the old one goes with its state: never kept past this call */
    if (strcmp(bundle_pem, w->bundle_pem) != 0) {
        char *copy = strdup(bundle_pem);

        if (copy == NULL) {
            tg_error("webhook: out of memory copying the new roots: caBundle not written");
            return;
        }
        free(w->bundle_pem);
        w->bundle_pem = copy;
        w->bundle_dirty = true;
        w->retry_ms = RETRY_MIN_MS;
        uv_timer_stop(&w->retry);
        start_bundle_job(w); /* or after the one in flight */
    }
}

int tg_k8s_webhook_port(const struct tg_k8s_webhook *w)
{
    return w->port;
}

const struct tg_k8s_webhook_stats *tg_k8s_webhook_stats(const struct tg_k8s_webhook *w)
{
    return &w->stats;
}

void tg_k8s_webhook_close(struct tg_k8s_webhook *w, void (*on_closed)(void *arg), void *arg)
{
    if (w->closing)
        return;
    w->closing = true;
    w->on_closed = on_closed;
    w->closed_arg = arg;
    uv_close((uv_handle_t *)&w->listener, on_handle_closed);
    uv_close((uv_handle_t *)&w->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&w->renew, on_handle_closed);
    uv_close((uv_handle_t *)&w->retry, on_handle_closed);
    for (struct wconn *c = w->conns; c != NULL; c = c->next)
        tg_msgstream_close(c->ms, false, "control plane shutting down");
}

/* The Kubernetes list/watch client on the control plane's loop (k8s_client.h). */
#include "k8s_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tollgate/closer.h"
#include "tollgate/file.h"
#include "tollgate/log.h"
#include "tollgate/list.h"

#define PAGE_LIMIT 500
#define MAX_PAGE (64u << 20)
#define MAX_LINE (8u << 20)
#define MAX_ERRBODY 4096
#define MAX_TOKEN (16 * 1024)
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define CONNECT_TIMEOUT_MS 5000
#define LIST_TIMEOUT_MS 60000

static const char *const paths[TG_K8S_NKINDS] = {
    [TG_K8S_NAMESPACE] = "/api/v1/namespaces",
    [TG_K8S_POD] = "/api/v1/pods",
    [TG_K8S_SERVICE] = "/api/v1/services",
    [TG_K8S_SLICE] = "/apis/discovery.k8s.io/v1/endpointslices",
    [TG_K8S_AUTHZ] = TG_K8S_POLICY_API "/authorizationpolicies",
    [TG_K8S_LIMITS] = TG_K8S_POLICY_API "/ratelimits",
    [TG_K8S_REVOKE] = TG_K8S_POLICY_API "/revocations",
    /* ours only: RBAC grants list and watch on this name alone (resourceNames) */
    [TG_K8S_CONFIGMAP] = ("/api/v1/configmaps?fieldSelector=metadata.name%3D" TG_K8S_CA_CONFIGMAP),
};

struct cache {
    struct tg_k8s_obj **v;
    size_t n, cap;
};

enum wstate { W_LIST, W_WATCH };

struct watcher {
    struct tg_k8s_client *c;
    enum tg_k8s_kind kind;
    enum wstate state;
    CURL *easy; /* the request in flight, or NULL */
    char curl_err[CURL_ERROR_SIZE];
    char *rv;                    /* watch from here */
    char *cont;                  /* list: the next page's continue token */
    struct cache cache, pending; /* pending: the pages of a list in progress */
    bool synced;
    char *buf; /* list: the body; watch: the bytes after the last whole line */
    size_t len, cap, scanned;
    long status;
    bool relist; /* an ERROR 410 event: relist once the transfer is down */
    bool failed; /* a bad response found inside a callback (logged there) */
    bool retried_401;
    bool got_event;
    uint64_t started;
    uint64_t backoff_ms;
    uv_timer_t retry;
};

struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct tg_k8s_client *c;
    struct sock *prev, *next;
};

struct tg_k8s_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timeout;
    struct tg_closer closer; /* open: the timer, each socket and retry timer */
    struct sock *socks;
    struct watcher w[TG_K8S_NKINDS];
    char *server, *ca_file, *token_file;
    char *token;
    size_t token_len;
    struct stat token_st;
    struct curl_slist *headers;
    unsigned watch_timeout_s;
    uint64_t rng;
    tg_k8s_on_change on_change;
    void *arg;
    struct tg_k8s_client_stats stats;
    struct tg_k8s_req *reqs; /* writes in flight (tg_k8s_client_request) */
};

/* ---- the cache: sorted by key ---- */

static size_t lower_bound(const struct cache *c, const char *key, bool *found)
{
    size_t lo = 0, hi = c->n;

    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(key, c->v[mid]->key);

        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Takes o; replaces the object of the same key. */
static int cache_put(struct cache *c, struct tg_k8s_obj *o)
{
    bool found;
    size_t i = lower_bound(c, o->key, &found);

    if (found) {
        tg_k8s_obj_free(c->v[i]);
        c->v[i] = o;
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct tg_k8s_obj **grown = realloc(c->v, cap * sizeof(*grown));

        if (grown == NULL) {
            tg_k8s_obj_free(o);
            return TG_ENOMEM;
        }
        c->v = grown;
        c->cap = cap;
    }
    memmove(&c->v[i + 1], &c->v[i], (c->n - i) * sizeof(*c->v));
    c->v[i] = o;
    c->n++;
    return 0;
}

static bool cache_del(struct cache *c, const char *key)
{
    bool found;
    size_t i = lower_bound(c, key, &found);

    if (!found)
        return false;
    tg_k8s_obj_free(c->v[i]);
    memmove(&c->v[i], &c->v[i + 1], (c->n - i - 1) * sizeof(*c->v));
    c->n--;
    return true;
}

static void cache_clear(struct cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        tg_k8s_obj_free(c->v[i]);
    free(c->v);
    *c = (struct cache){0};
}

/* ---- helpers ---- */

static const char *kind_plural(enum tg_k8s_kind k)
{
    static const char *const names[TG_K8S_NKINDS] = {
        "namespaces", "pods",        "services",  "endpointslices", "authorizationpolicies",
        "ratelimits", "revocations", "configmaps"};

    return names[k];
}

static void set_str(char **dst, const char *s)
{
    char *copy = s != NULL ? strdup(s) : NULL;

    if (s != NULL && copy == NULL) {
        tg_error("kubernetes: out of memory");
        return; /* keep the old one */
    }
    free(*dst);
    *dst = copy;
}

static uint64_t next_random(struct tg_k8s_client *c)
{
    c->rng ^= c->rng << 13; /* xorshift64: jitter, not secrecy */
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng;
}

static void notify(struct tg_k8s_client *c)
{
    if (c->on_change != NULL && !c->closer.closing)
        c->on_change(c->arg);
}

/* Reads the token file when it changed since the last read (or force). 0, or an error
 * with err (the old token stays). */
static int token_refresh(struct tg_k8s_client *c, bool force, char *err)
{
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (stat(c->token_file, &st) < 0)
        return tg_err_set(err, TG_EIO, "token %s: cannot stat: %s", c->token_file, strerror(errno));
    if (!force && c->token != NULL && st.st_ino == c->token_st.st_ino &&
        st.st_dev == c->token_st.st_dev && st.st_size == c->token_st.st_size &&
        st.st_mtim.tv_sec == c->token_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == c->token_st.st_mtim.tv_nsec)
        return 0;
    if ((rc = tg_file_read("token", c->token_file, MAX_TOKEN, TG_FILE_SECRET, &text, &len, err)) <
        0)
        return rc;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (text[i] <= ' ' || text[i] == 0x7f) {
            tg_wipe_free(text, len);
            return tg_err_set(err, TG_EINVAL, "token %s: a control character or space inside",
                              c->token_file);
        }
    }
    if (len == 0) {
        tg_wipe_free(text, len);
        return tg_err_set(err, TG_EINVAL, "token %s: empty", c->token_file);
    }
    tg_wipe_free(c->token, c->token_len);
    c->token = text;
    c->token_len = len;
    c->token_st = st;
    c->stats.token_reads++;
    tg_debug("kubernetes: token read from %s (%zu bytes)", c->token_file, len);
    return 0;
}

/* ---- requests ---- */

static void start(struct watcher *w);

static void on_retry(uv_timer_t *t)
{
    start(t->data);
}

static void backoff(struct watcher *w)
{
    uint64_t base = w->backoff_ms != 0 ? w->backoff_ms : BACKOFF_MIN_MS;
    uint64_t wait = base / 2 + next_random(w->c) % (base / 2 + 1);

    w->backoff_ms = base * 2 < BACKOFF_MAX_MS ? base * 2 : BACKOFF_MAX_MS;
    tg_debug("kubernetes: %s: retrying in %" PRIu64 " ms", kind_plural(w->kind), wait);
    uv_timer_start(&w->retry, on_retry, wait, 0);
}

static void to_list(struct watcher *w)
{
    w->state = W_LIST;
    free(w->cont);
    w->cont = NULL;
    cache_clear(&w->pending);
}

static int append(struct watcher *w, const char *p, size_t n)
{
    if (w->cap - w->len < n + 1) {
        size_t cap = w->cap ? w->cap : 16384;
        char *grown;

        while (cap - w->len < n + 1)
            cap *= 2;
        if ((grown = realloc(w->buf, cap)) == NULL)
            return TG_ENOMEM;
        w->buf = grown;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    w->buf[w->len] = '\0';
    return 0;
}

/* metadata.resourceVersion, when it is one: opaque, but printable and without spaces (it goes
 * into URLs and log lines). */
static const char *meta_rv(const json_t *obj)
{
    const char *rv =
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));

    for (const char *p = rv; p != NULL && *p != '\0'; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return NULL;
    return rv != NULL && strlen(rv) <= 256 ? rv : NULL;
}

/* A string of the API server's, fit for one log line (cut at cap - 1 bytes). */
static const char *quote(const char *s, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", s != NULL ? s : "");
    return tg_k8s_printable(dst);
}

/* One watch event line. 0 to go on, -1 to end the transfer (w->relist or w->failed). */
/* An object kept with something in it ignored (k8s_objects.h): said once each time it
 * arrives, naming it. */
static void warn_obj(const char *what, const struct tg_k8s_obj *o)
{
    if (o->warning != NULL)
        tg_warn("kubernetes: %s %s: %s", what, o->key, o->warning);
}

static int on_event(struct watcher *w, const char *line, size_t len)
{
    struct tg_k8s_client *c = w->c;
    const char *what = kind_plural(w->kind);
    json_error_t je;
    json_t *ev = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    const json_t *obj;
    const char *type, *rv;
    struct tg_k8s_obj *o = NULL;
    char err[TG_ERRLEN] = "", q[256];
    int rc = -1;

    if (ev == NULL) {
        tg_warn("kubernetes: watch %s: an event is not JSON (%s): reconnecting from %s", what,
                tg_k8s_printable(je.text), w->rv);
        w->failed = true;
        return -1;
    }
    type = json_string_value(json_object_get(ev, "type"));
    obj = json_object_get(ev, "object");
    if (type == NULL || !json_is_object(obj)) {
        tg_warn("kubernetes: watch %s: an event without type or object: reconnecting from %s", what,
                w->rv);
        w->failed = true;
        goto done;
    }
    w->got_event = true;
    if (strcmp(type, "ERROR") == 0) {
        const json_t *code = json_object_get(obj, "code");
        const char *msg = json_string_value(json_object_get(obj, "message"));

        if (json_is_integer(code) && json_integer_value(code) == 410) {
            tg_info("kubernetes: watch %s: 410 Gone (%s): relisting", what,
                    quote(msg, q, sizeof(q)));
            c->stats.gone++;
            w->relist = true;
        } else {
            tg_warn("kubernetes: watch %s: ERROR event (code %" JSON_INTEGER_FORMAT ": %s)", what,
                    json_is_integer(code) ? json_integer_value(code) : 0, quote(msg, q, sizeof(q)));
            w->failed = true;
        }
        goto done;
    }
    if (strcmp(type, "BOOKMARK") == 0) {
        if ((rv = meta_rv(obj)) == NULL || rv[0] == '\0') {
            tg_warn("kubernetes: watch %s: a BOOKMARK without resourceVersion", what);
            w->failed = true;
            goto done;
        }
        set_str(&w->rv, rv);
        c->stats.bookmarks++;
        rc = 0;
        goto done;
    }
    if (strcmp(type, "ADDED") != 0 && strcmp(type, "MODIFIED") != 0 &&
        strcmp(type, "DELETED") != 0) {
        tg_warn("kubernetes: watch %s: unknown event type \"%s\"", what, quote(type, q, 33));
        w->failed = true;
        goto done;
    }
    rc = 0;
    if ((rv = meta_rv(obj)) != NULL && rv[0] != '\0')
        set_str(&w->rv, rv);
    if (tg_k8s_obj_from_json(w->kind, obj, &o, err) < 0) {
        tg_warn("kubernetes: watch %s: %s event skipped: %s", what, type, err);
        c->stats.bad_objects++;
        goto done;
    }
    c->stats.events++;
    if (type[0] != 'D')
        warn_obj(what, o);
    if (type[0] == 'D') {
        cache_del(&w->cache, o->key);
        tg_k8s_obj_free(o);
    } else if (cache_put(&w->cache, o) < 0) {
        tg_error("kubernetes: out of memory: relisting %s", what);
        w->relist = true;
        rc = -1;
        goto done;
    }
    notify(c);
done:
    json_decref(ev);
    return rc;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct watcher *w = arg;
    size_t n = size * nmemb;

    if (w->status == 0)
        curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->status);
    if (w->status != 200) { /* an error's body: keep its start for the log */
        if (w->len < MAX_ERRBODY &&
            append(w, p, n < MAX_ERRBODY - w->len ? n : MAX_ERRBODY - w->len) < 0)
            return 0;
        return n;
    }
    if (w->state == W_LIST) {
        if (w->len + n > MAX_PAGE) {
            tg_warn("kubernetes: list %s: a page larger than %u bytes", kind_plural(w->kind),
                    MAX_PAGE);
            w->failed = true;
            return 0;
        }
        return append(w, p, n) < 0 ? 0 : n;
    }
    if (append(w, p, n) < 0)
        return 0;
    for (;;) {
        char *nl = memchr(w->buf + w->scanned, '\n', w->len - w->scanned);
        size_t line;

        if (nl == NULL)
            break;
        line = (size_t)(nl - w->buf);
        if (line > 0 && on_event(w, w->buf, line) < 0)
            return 0;
        memmove(w->buf, nl + 1, w->len - line - 1);
        w->len -= line + 1;
        w->buf[w->len] = '\0';
        w->scanned = 0;
        if (w->c->closer.closing)
            return 0;
    }
    w->scanned = w->len;
    if (w->len > MAX_LINE) {
        tg_warn("kubernetes: watch %s: an event longer than %u bytes", kind_plural(w->kind),
                MAX_LINE);
        w->failed = true;
        return 0;
    }
    return n;
}

static void start(struct watcher *w)
{
    struct tg_k8s_client *c = w->c;
    char url[4096], err[TG_ERRLEN] = "";
    char *esc = NULL;
    CURL *e;

    if (c->closer.closing || w->easy != NULL)
        return;
    if (token_refresh(c, false, err) < 0) {
        tg_warn("kubernetes: %s: %s", kind_plural(w->kind), err);
        c->stats.errors++;
        backoff(w);
        return;
    }
    if ((e = curl_easy_init()) == NULL)
        goto oom;
    if (w->state == W_LIST) {
        if (w->cont != NULL && (esc = curl_easy_escape(e, w->cont, 0)) == NULL)
            goto oom;
        snprintf(url, sizeof(url), "%s%s%slimit=%d%s%s", c->server, paths[w->kind],
                 strchr(paths[w->kind], '?') != NULL ? "&" : "?", PAGE_LIMIT,
                 esc != NULL ? "&continue=" : "", esc != NULL ? esc : "");
    } else {
        if ((esc = curl_easy_escape(e, w->rv, 0)) == NULL)
            goto oom;
        snprintf(url, sizeof(url),
                 "%s%s%swatch=1&allowWatchBookmarks=true&timeoutSeconds=%u&resourceVersion=%s",
                 c->server, paths[w->kind], strchr(paths[w->kind], '?') != NULL ? "&" : "?",
                 c->watch_timeout_s, esc);
        c->stats.watches++;
    }
    curl_free(esc);
    w->easy = e;
    w->len = w->scanned = 0;
    w->status = 0;
    w->relist = w->failed = w->got_event = false;
    w->curl_err[0] = '\0';
    w->started = uv_now(c->loop);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 0L); /* a rotated CA file counts at once */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
    curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, c->token);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(e, CURLOPT_PRIVATE, w);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, w->curl_err);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     w->state == W_LIST ? (long)LIST_TIMEOUT_MS
                                        : (long)(c->watch_timeout_s + 30) * 1000L);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        w->easy = NULL;
        curl_easy_cleanup(e);
        goto oom;
    }
    return;
oom:
    curl_free(esc);
    if (e != NULL && w->easy == NULL)
        curl_easy_cleanup(e);
    tg_error("kubernetes: %s: cannot start a request (out of memory)", kind_plural(w->kind));
    c->stats.errors++;
    backoff(w);
}

/* A list page in w->buf. 0, or -1 (logged). */
static int on_page(struct watcher *w)
{
    struct tg_k8s_client *c = w->c;
    const char *what = kind_plural(w->kind);
    json_error_t je;
    json_t *j = json_loadb(w->buf != NULL ? w->buf : "", w->len, JSON_REJECT_DUPLICATES, &je);
    const json_t *items, *meta;
    const char *rv, *cont;
    int rc = -1;

    if (j == NULL) {
        tg_warn("kubernetes: list %s: not JSON: %s (line %d)", what, tg_k8s_printable(je.text),
                je.line);
        return -1;
    }
    items = json_object_get(j, "items");
    meta = json_object_get(j, "metadata");
    rv = meta_rv(j);
    cont = json_string_value(json_object_get(meta, "continue"));
    if (!json_is_array(items) || rv == NULL || rv[0] == '\0') {
        tg_warn("kubernetes: list %s: not a list (want items[] and metadata.resourceVersion)",
                what);
        goto done;
    }
    for (size_t i = 0; i < json_array_size(items); i++) {
        struct tg_k8s_obj *o;
        char err[TG_ERRLEN] = "";

        if (tg_k8s_obj_from_json(w->kind, json_array_get(items, i), &o, err) < 0) {
            tg_warn("kubernetes: list %s: item skipped: %s", what, err);
            c->stats.bad_objects++;
            continue;
        }
        warn_obj(what, o);
        if (cache_put(&w->pending, o) < 0) {
            tg_error("kubernetes: list %s: out of memory", what);
            goto done;
        }
    }
    c->stats.list_pages++;
    if (cont != NULL && cont[0] != '\0') {
        set_str(&w->cont, cont);
        rc = 0;
        goto done;
    }
    cache_clear(&w->cache); /* the last page: the new cache replaces the old whole */
    w->cache = w->pending;
    w->pending = (struct cache){0};
    free(w->cont);
    w->cont = NULL;
    set_str(&w->rv, rv);
    w->state = W_WATCH;
    if (!w->synced)
        tg_info("kubernetes: %s listed: %zu (resourceVersion %s)", what, w->cache.n, rv);
    else
        tg_info("kubernetes: %s relisted: %zu (resourceVersion %s)", what, w->cache.n, rv);
    w->synced = true;
    c->stats.lists++;
    notify(c);
    rc = 0;
done:
    json_decref(j);
    return rc;
}

/* The Status message of an error body, for the log. */
static void status_message(const struct watcher *w, char *dst, size_t cap)
{
    json_t *j = w->len > 0 ? json_loadb(w->buf, w->len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "message"));

    quote(msg, dst, cap);
    json_decref(j);
}

static void on_done(struct watcher *w, CURLcode result)
{
    struct tg_k8s_client *c = w->c;
    const char *what = kind_plural(w->kind), *verb = w->state == W_LIST ? "list" : "watch";
    char msg[512], err[TG_ERRLEN] = "";
    long status = 0;

    curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(c->multi, w->easy);
    curl_easy_cleanup(w->easy);
    w->easy = NULL;
    if (c->closer.closing)
        return;
    if (w->relist) {
        to_list(w);
        start(w);
        return;
    }
    if (w->failed) {
        c->stats.errors++;
        backoff(w);
        return;
    }
    if (result != CURLE_OK) {
        if (w->state == W_WATCH && status == 200) {
            tg_info("kubernetes: watch %s dropped (%s): reconnecting from %s", what,
                    w->curl_err[0] ? w->curl_err : curl_easy_strerror(result), w->rv);
            if (w->got_event)
                w->backoff_ms = 0;
        } else {
            tg_warn("kubernetes: %s %s: %s", verb, what,
                    w->curl_err[0] ? w->curl_err : curl_easy_strerror(result));
        }
        c->stats.errors++;
        backoff(w);
        return;
    }
    switch (status) {
    case 200:
        w->retried_401 = false;
        if (w->state == W_LIST) {
            if (on_page(w) < 0) {
                c->stats.errors++;
                backoff(w);
                return;
            }
            w->backoff_ms = 0;
            start(w);
            return;
        }
        if (!w->got_event && uv_now(c->loop) - w->started < 1000) {
            backoff(w); /* a server that ends watches at once: do not spin */
            return;
        }
        w->backoff_ms = 0;
        start(w); /* the watch timed out: go on from where we are */
        return;
    case 401:
        c->stats.unauthorized++;
        if (token_refresh(c, true, err) < 0)
            tg_warn("kubernetes: %s %s: 401 Unauthorized, and %s", verb, what, err);
        else
            tg_warn("kubernetes: %s %s: 401 Unauthorized: token read again from %s", verb, what,
                    c->token_file);
        if (!w->retried_401) {
            w->retried_401 = true;
            start(w);
            return;
        }
        backoff(w);
        return;
    case 410:
        c->stats.gone++;
        status_message(w, msg, sizeof(msg));
        tg_info("kubernetes: %s %s: 410 Gone (%s): relisting", verb, what, msg);
        to_list(w);
        start(w);
        return;
    default:
        status_message(w, msg, sizeof(msg));
        tg_warn("kubernetes: %s %s: HTTP %ld%s%s", verb, what, status, msg[0] ? ": " : "", msg);
        c->stats.errors++;
        backoff(w);
    }
}

static bool req_done(struct tg_k8s_client *c, CURL *e, CURLcode result);

static void check_done(struct tg_k8s_client *c)
{
    CURLMsg *m;
    int left;

    while (c->multi != NULL && (m = curl_multi_info_read(c->multi, &left)) != NULL) {
        struct watcher *w = NULL;

        if (m->msg != CURLMSG_DONE)
            continue;
        if (req_done(c, m->easy_handle, m->data.result))
            continue; /* a write, not a watcher's */
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&w);
        on_done(w, m->data.result);
    }
}

/* ---- libcurl on libuv ---- */

static void maybe_free(struct tg_k8s_client *c, int closed);

static void on_sock_closed(uv_handle_t *h)
{
    struct sock *k = h->data;
    struct tg_k8s_client *c = k->c;

    free(k);
    maybe_free(c, 1);
}

static void sock_close(struct sock *k)
{
    struct tg_k8s_client *c = k->c;

    TG_DLIST_UNLINK(&c->socks, TG_DLIST_NO_TAIL, k, prev, next);
    uv_poll_stop(&k->poll);
    uv_close((uv_handle_t *)&k->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock *k = h->data;
    struct tg_k8s_client *c = k->c;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(c->multi, k->fd, flags, &running);
    check_done(c);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct tg_k8s_client *c = userp;
    struct sock *k = socketp;
    int events = 0;

    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (k != NULL) {
            curl_multi_assign(c->multi, s, NULL);
            sock_close(k);
        }
        return 0;
    }
    if (k == NULL) {
        if ((k = calloc(1, sizeof(*k))) == NULL)
            return -1;
        k->fd = s;
        k->c = c;
        if (uv_poll_init_socket(c->loop, &k->poll, s) < 0) {
            free(k);
            return -1;
        }
        k->poll.data = k;
        c->closer.open++;
        k->next = c->socks;
        if (c->socks != NULL)
            c->socks->prev = k;
        c->socks = k;
        curl_multi_assign(c->multi, s, k);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&k->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    struct tg_k8s_client *c = t->data;
    int running;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    struct tg_k8s_client *c = userp;

    (void)m;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timeout);
    else
        uv_timer_start(&c->timeout, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- life cycle ---- */

static void client_free(void *owner)
{
    struct tg_k8s_client *c = owner;

    for (int k = 0; k < TG_K8S_NKINDS; k++) {
        struct watcher *w = &c->w[k];

        cache_clear(&w->cache);
        cache_clear(&w->pending);
        free(w->rv);
        free(w->cont);
        free(w->buf);
    }
    curl_slist_free_all(c->headers);
    tg_wipe_free(c->token, c->token_len);
    free(c->server);
    free(c->ca_file);
    free(c->token_file);
    free(c);
}

/* closed: how many of its handles or children have just closed (0 or 1). Frees it once it
 * is closing and nothing is left open. */
static void maybe_free(struct tg_k8s_client *c, int closed)
{
    c->closer.open -= closed;
    if (tg_closer_done(&c->closer))
        tg_closer_finish(&c->closer, client_free, c);
}

static void on_handle_closed(uv_handle_t *h)
{
    maybe_free(h->data, 1);
}

/* The API server's URL: cfg's, else https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
 * (brackets around an IPv6 host). */
static int resolve_server(const struct tg_k8s_client_cfg *cfg, char **out, char *err)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    char url[512];
    size_t n;

    if (cfg->api_server != NULL) {
        snprintf(url, sizeof(url), "%s", cfg->api_server);
    } else {
        if (host == NULL || host[0] == '\0')
            return tg_err_set(err, TG_ECONFIG,
                              "kubernetes.discovery: no api_server, and not in a cluster "
                              "(KUBERNETES_SERVICE_HOST is not set)");
        if (port == NULL || port[0] == '\0')
            port = "443";
        if (strspn(port, "0123456789") != strlen(port) || strlen(host) > 255 ||
            strspn(host, "0123456789abcdefABCDEF.:-abcdefghijklmnopqrstuvwxyz") != strlen(host))
            return tg_err_set(err, TG_ECONFIG,
                              "kubernetes.discovery: KUBERNETES_SERVICE_HOST/PORT \"%.64s\" "
                              "\"%.16s\" is not a host and port",
                              host, port);
        snprintf(url, sizeof(url), strchr(host, ':') != NULL ? "https://[%s]:%s" : "https://%s:%s",
                 host, port);
    }
    n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    if (strncmp(url, "https://", 8) != 0 || n == 8 || strpbrk(url, "?# \r\n") != NULL)
        return tg_err_set(err, TG_ECONFIG,
                          "kubernetes.discovery.api_server: \"%.128s\" is not an https:// URL",
                          url);
    return (*out = strdup(url)) == NULL ? TG_ENOMEM : 0;
}

int tg_k8s_client_new(uv_loop_t *loop, const struct tg_k8s_client_cfg *cfg,
                      tg_k8s_on_change on_change, void *arg, struct tg_k8s_client **out, char *err)
{
    static bool curl_ready;
    struct tg_k8s_client *c = calloc(1, sizeof(*c));
    struct stat st;
    int rc = TG_ENOMEM;

    if (c == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            free(c);
            return tg_err_set(err, TG_ENOMEM, "kubernetes: libcurl does not initialise");
        }
        curl_ready = true;
    }
    c->loop = loop;
    c->on_change = on_change;
    c->arg = arg;
    c->watch_timeout_s = cfg->watch_timeout_s != 0 ? cfg->watch_timeout_s : 300;
    c->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)c;
    if (c->rng == 0)
        c->rng = 1;
    if ((rc = resolve_server(cfg, &c->server, err)) < 0)
        goto fail;
    c->ca_file = strdup(cfg->ca_file != NULL ? cfg->ca_file : TG_K8S_SA_DIR "/ca.crt");
    c->token_file = strdup(cfg->token_file != NULL ? cfg->token_file : TG_K8S_SA_DIR "/token");
    c->headers = curl_slist_append(NULL, "Accept: application/json");
    if (c->ca_file == NULL || c->token_file == NULL || c->headers == NULL) {
        rc = TG_ENOMEM;
        goto fail;
    }
    if (stat(c->ca_file, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = tg_err_set(err, TG_ECONFIG, "kubernetes.discovery.ca: %s: not a readable file",
                        c->ca_file);
        goto fail;
    }
    if ((rc = token_refresh(c, true, err)) < 0)
        goto fail;
    if ((c->multi = curl_multi_init()) == NULL) {
        rc = TG_ENOMEM;
        goto fail;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timeout);
    c->timeout.data = c;
    c->closer.open = 1;
    for (int k = 0; k < TG_K8S_NKINDS; k++) {
        struct watcher *w = &c->w[k];

        w->c = c;
        w->kind = (enum tg_k8s_kind)k;
        w->state = W_LIST;
        uv_timer_init(loop, &w->retry);
        w->retry.data = w;
        c->closer.open++;
    }
    tg_info("kubernetes: watching namespaces, pods, services and endpointslices%s at %s (CA %s, "
            "token %s)",
            cfg->policy ? ", and the policy resources of " TG_K8S_POLICY_API : "", c->server,
            c->ca_file, c->token_file);
    for (int k = 0; k < TG_K8S_NKINDS; k++) {
        if (k < TG_K8S_NDISCOVERY || (cfg->policy && k != TG_K8S_CONFIGMAP) ||
            (cfg->configmaps && k == TG_K8S_CONFIGMAP))
            start(&c->w[k]);
        else
            c->w[k].synced = true; /* not watched: an empty list, known */
    }
    *out = c;
    return 0;
fail:
    if (rc == TG_ENOMEM)
        tg_err_set(err, rc, "out of memory");
    client_free(c);
    return rc;
}

static void on_retry_closed(uv_handle_t *h)
{
    struct watcher *w = h->data;
    struct tg_k8s_client *c = w->c;

    maybe_free(c, 1);
}

static void reqs_cancel(struct tg_k8s_client *c);

void tg_k8s_client_close(struct tg_k8s_client *c, void (*on_closed)(void *arg), void *arg)
{
    if (!tg_closer_start(&c->closer, on_closed, arg))
        return;
    for (int k = 0; k < TG_K8S_NKINDS; k++) {
        struct watcher *w = &c->w[k];

        if (w->easy != NULL) {
            curl_multi_remove_handle(c->multi, w->easy);
            curl_easy_cleanup(w->easy);
            w->easy = NULL;
        }
        uv_close((uv_handle_t *)&w->retry, on_retry_closed);
    }
    reqs_cancel(c);
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks != NULL) /* those curl did not remove itself */
        sock_close(c->socks);
    uv_close((uv_handle_t *)&c->timeout, on_handle_closed);
}

bool tg_k8s_client_synced(const struct tg_k8s_client *c)
{
    for (int k = 0; k < TG_K8S_NKINDS; k++)
        if (!c->w[k].synced)
            return false;
    return true;
}

void tg_k8s_client_lists(const struct tg_k8s_client *c, struct tg_k8s_list out[TG_K8S_NKINDS])
{
    for (int k = 0; k < TG_K8S_NKINDS; k++)
        out[k] = (struct tg_k8s_list){c->w[k].cache.v, c->w[k].cache.n};
}

const struct tg_k8s_client_stats *tg_k8s_client_stats(const struct tg_k8s_client *c)
{
    return &c->stats;
}

const char *tg_k8s_client_server(const struct tg_k8s_client *c)
{
    return c->server;
}

/* ---- writes (k8s_client.h: tg_k8s_client_request) ---- */

#define REQ_TIMEOUT_MS 10000

struct tg_k8s_req {
    struct tg_k8s_client *c;
    CURL *easy;
    struct curl_slist *headers;
    char *body; /* what is sent; curl reads it in place */
    char reply[TG_K8S_REPLY_MAX + 1];
    size_t len;
    char curl_err[CURL_ERROR_SIZE];
    tg_k8s_on_reply on_reply;
    void *arg;
    struct tg_k8s_req *prev, *next;
};

static size_t on_req_write(char *p, size_t size, size_t n, void *arg)
{
    struct tg_k8s_req *r = arg;
    size_t len = size * n, room = TG_K8S_REPLY_MAX - r->len;

    memcpy(r->reply + r->len, p, len < room ? len : room); /* the rest is dropped */
    r->len += len < room ? len : room;
    r->reply[r->len] = '\0';
    return len;
}

static void req_free(struct tg_k8s_req *r)
{
    struct tg_k8s_client *c = r->c;

    if (r->prev != NULL)
        r->prev->next = r->next;
    else if (c->reqs == r)
        c->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    if (r->easy != NULL) {
        if (c->multi != NULL)
            curl_multi_remove_handle(c->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}

/* Whether e was a write's; if so, it is answered and freed. */
static bool req_done(struct tg_k8s_client *c, CURL *e, CURLcode result)
{
    struct tg_k8s_req *r = c->reqs;
    long status = 0;
    char err[TG_ERRLEN] = "";

    while (r != NULL && r->easy != e)
        r = r->next;
    if (r == NULL)
        return false;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (result != CURLE_OK) {
        snprintf(err, sizeof(err), "%s", r->curl_err[0] ? r->curl_err : curl_easy_strerror(result));
        status = 0;
    } else if (status == 401) {
        c->stats.unauthorized++;
        (void)token_refresh(c, true, err); /* the next write carries the new one */
        err[0] = '\0';
    }
    if (status < 200 || status > 299)
        c->stats.errors++;
    r->on_reply(r->arg, status, r->reply, err);
    req_free(r);
    return true;
}

static void reqs_cancel(struct tg_k8s_client *c)
{
    while (c->reqs != NULL)
        req_free(c->reqs);
}

int tg_k8s_client_request(struct tg_k8s_client *c, const char *method, const char *path,
                          const char *body, const char *content_type, tg_k8s_on_reply on_reply,
                          void *arg)
{
    struct tg_k8s_req *r = calloc(1, sizeof(*r));
    char url[2048], ctype[128], err[TG_ERRLEN];

    if (r == NULL)
        return TG_ENOMEM;
    r->c = c;
    r->on_reply = on_reply;
    r->arg = arg;
    r->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = r;
    c->reqs = r;
    if (token_refresh(c, false, err) < 0)
        tg_warn("kubernetes: %s (the last token is sent)", err);
    snprintf(url, sizeof(url), "%s%s", c->server, path);
    snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type);
    if ((r->body = strdup(body)) == NULL || (r->easy = curl_easy_init()) == NULL ||
        (r->headers = curl_slist_append(NULL, "Accept: application/json")) == NULL ||
        curl_slist_append(r->headers, ctype) == NULL)
        goto fail;
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
    curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(r->easy, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(r->easy, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(r->easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
    curl_easy_setopt(r->easy, CURLOPT_XOAUTH2_BEARER, c->token);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_req_write);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)REQ_TIMEOUT_MS);
    if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK)
        goto fail;
    return 0;
fail:
    req_free(r);
    return TG_ENOMEM;
}

/* Requests and responses of protocol: http ports on the data path (see httpconn.h). */
#include "httpconn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "tollgate/accesslog.h"
#include "tollgate/http.h"
#include "tollgate/log.h"
#include "tollgate/policy.h"
#include "tollgate/spiffe.h"

#define INFLIGHT 8            /* pipelined requests with the app at once; more wait to be read */
#define RESP_LIMIT (1u << 20) /* the app's response heads and lines (trusted, but bounded) */

enum rq_state {
    RQ_HEAD,    /* next: a request head */
    RQ_BODY,    /* copying the body of the last forwarded request */
    RQ_WAIT,    /* an upgrade or CONNECT went to the app: its response decides what follows */
    RQ_TUNNEL,  /* a byte pipe from now on */
    RQ_DISCARD, /* nothing more is read from the caller (closing, or it asked to close) */
};

/* A request: forwarded and waiting for its response, or answered by the sidecar. */
struct entry {
    uint64_t start_unix_ms;
    uint64_t start_ns;
    uint64_t req_bytes; /* sent to the app: rewritten head and body */
    bool head, connect, upgrade;
    char method[16];
    char path[192];
    char host[64];
    bool has_host;
};

struct tg_http_conn {
    struct tg_http_limits lim;
    struct tg_http_limits resp_lim;
    enum rq_state rq;
    size_t scanned;
    struct tg_http_body body;
    bool keep_alive;          /* of the request whose body is being copied */
    bool switching;           /* ... and it asked for an upgrade or is a CONNECT */
    struct entry q[INFLIGHT]; /* forwarded, oldest first */
    unsigned q_first, q_n;
    bool resp_active; /* a response is being followed (for q's first) */
    struct tg_http_response resp;
    bool tunnel; /* the app side is a byte pipe */
    bool lost;   /* the app's bytes no longer follow requests: no response of ours fits in */
    bool closed; /* answered with close: the caller's bytes are dropped, the app's too */
    /* a refusal waiting for the responses before it */
    bool local_pending;
    int local_status;
    unsigned local_retry; /* Retry-After, seconds */
    bool local_close;
    struct entry local;
    char local_reason[160];
    /* the caller, for the headers and the rules; set up at the first request */
    bool caller_ready;
    struct tg_http_caller who;
    struct tg_spiffe_id id;
    struct tg_policy_peer peer;
    bool peer_ok;
    char *lines; /* who.lines' storage, malloc'd */
    struct tg_buf out;
};

/* The parsed fields of a head and its normalised target live only while it is decided and
 * rewritten, so each worker thread has one array and one target buffer for all its
 * connections (freed when the thread ends). */
static pthread_once_t fields_once = PTHREAD_ONCE_INIT;
static pthread_key_t fields_key;

struct fields {
    unsigned cap;
    size_t path_cap;
    char *path; /* after v[cap] */
    struct tg_http_field v[];
};

static void fields_key_make(void)
{
    if (pthread_key_create(&fields_key, free) != 0)
        abort(); /* only at start-up, and only when the system is out of keys */
}

/* Room for n fields and a target of a request line up to line bytes (the normalised target
 * is never longer than the line). */
static struct fields *thread_fields(unsigned n, size_t line)
{
    struct fields *f;

    pthread_once(&fields_once, fields_key_make);
    f = pthread_getspecific(fields_key);
    if (f != NULL && f->cap >= n && f->path_cap >= line)
        return f;
    free(f);
    pthread_setspecific(fields_key, NULL);
    if ((f = malloc(sizeof(*f) + n * sizeof(f->v[0]) + line)) == NULL)
        return NULL;
    f->cap = n;
    f->path_cap = line;
    f->path = (char *)&f->v[n];
    pthread_setspecific(fields_key, f);
    return f;
}

static uint64_t unix_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

int tg_http_conn_new(struct tg_conn *c)
{
    const struct tg_http_cfg *cfg = c->http_cfg;
    struct tg_http_conn *h = calloc(1, sizeof(*h));

    if (h == NULL)
        return TG_ENOMEM;
    /* a head must fit the direction's buffer whole */
    h->lim.max_head = cfg->max_head < c->w->pool.block_size ? cfg->max_head : c->w->pool.block_size;
    h->lim.max_line = cfg->max_line;
    h->lim.max_fields = cfg->max_fields;
    h->resp_lim = (struct tg_http_limits){RESP_LIMIT, RESP_LIMIT, 10000};
    c->http = h;
    return 0;
}

struct tg_buf *tg_http_conn_out(struct tg_conn *c)
{
    return &c->http->out;
}

static void copy_str(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void log_request(struct tg_conn *c, const struct entry *e, unsigned status,
                        uint64_t resp_bytes, const char *outcome, const char *reason)
{
    struct tg_access_entry a;

    if (status >= 100 && status <= 599) { /* 0: no response */
        tg_counter_add(&c->stats->http_responses[status / 100 - 1], 1);
        tg_counter_add(&c->stats->requests_by_id[c->peer_id_idx], 1);
        tg_histogram_observe(&c->stats->hist[TG_HIST_REQUEST], TG_HIST_REQUEST,
                             (uv_hrtime() - e->start_ns) / 1000);
    }
    if (!c->w->rt->cfg->access_log)
        return;
    tg_conn_log_entry(c, &a);
    a.start_unix_ms = e->start_unix_ms;
    a.bytes_received = e->req_bytes;
    a.bytes_sent = resp_bytes;
    a.duration_ms = (uv_hrtime() - e->start_ns) / 1000000;
    a.outcome = outcome;
    a.reason = reason;
    a.method = e->method;
    a.path = e->path;
    a.host = e->has_host ? e->host : NULL;
    a.status = status;
    tg_accesslog_write(&a);
}

void tg_http_conn_free(struct tg_conn *c)
{
    struct tg_http_conn *h = c->http;

    if (h == NULL)
        return;
    for (unsigned i = 0; i < h->q_n; i++) {
        const struct entry *e = &h->q[(h->q_first + i) % INFLIGHT];

        if (i == 0 && h->resp_active && h->resp.status >= 200 &&
            h->resp.body.framing == TG_HTTP_TO_EOF) /* a response that ends with the app's close */
            log_request(c, e, (unsigned)h->resp.status, h->resp.bytes, "ok", NULL);
        else
            log_request(c, e, 0, i == 0 && h->resp_active ? h->resp.bytes : 0, "error",
                        "no complete response before the connection ended");
    }
    tg_buf_drop(&h->out, &c->w->pool);
    free(h->lines);
    free(h);
    c->http = NULL;
}

void tg_http_conn_release(struct tg_conn *c)
{
    if (c->up.writing == 0 || c->up.wbuf != &c->http->out)
        tg_buf_release(&c->http->out, &c->w->pool);
}

/* ---- the sidecar's own responses ---- */

/* What the response tracking needs of a request and its start (the duration histogram), and
 * what its log line says (only with the access log on: without it, nothing is copied). */
static void fill_entry(struct entry *e, const struct tg_http_request *req, bool log)
{
    e->req_bytes = 0;
    e->head = req != NULL && req->head;
    e->connect = req != NULL && req->connect;
    e->upgrade = req != NULL && req->upgrade;
    e->has_host = false;
    e->method[0] = e->path[0] = e->host[0] = '\0';
    e->start_ns = uv_hrtime(); /* the request duration histogram */
    if (!log)
        return;
    e->start_unix_ms = unix_ms();
    if (req == NULL) {
        strcpy(e->method, "-");
        strcpy(e->path, "-");
        return;
    }
    copy_str(e->method, sizeof(e->method), req->method, req->method_len);
    if (req->path != NULL) /* what the rules saw and the app got */
        copy_str(e->path, sizeof(e->path), req->path, req->path_len);
    else
        copy_str(e->path, sizeof(e->path), req->target, req->target_len);
    if (req->host != NULL) {
        e->has_host = true;
        copy_str(e->host, sizeof(e->host), req->host, req->host_len);
    }
}

/* Stops taking anything from the caller: its bytes are dropped, its direction ends (FIN to
 * the app once what went before is written). */
static void stop_reading_caller(struct tg_conn *c)
{
    struct tg_buf *in = &c->dir[0].buf;

    c->http->rq = RQ_DISCARD;
    tg_buf_consume(in, tg_buf_len(in));
    c->dir[0].eof = true;
}

/* Sends the pending refusal once nothing of the app's is owed before it. */
static void try_local(struct tg_conn *c)
{
    struct tg_http_conn *h = c->http;
    struct tg_buf *b = &c->dir[1].buf;
    size_t n;

    if (!h->local_pending || h->q_n > 0 || h->resp_active)
        return;
    if (h->lost || c->dir[1].shut_issued) {
        tg_conn_close(c, "error", "HTTP %d for %s could not be answered in order", h->local_status,
                      h->local.path);
        return;
    }
    /* a plain-text caller is written from this buffer: no moving under a write */
    if (tg_buf_reserve(b, &c->w->pool, c->down.writing == 0 || c->down.wbuf != b) < 0) {
        tg_conn_close(c, "error", "out of memory");
        return;
    }
    n = tg_http_local_response(h->local_status, h->local_retry, h->local_close, tg_buf_tail(b),
                               tg_buf_room(b));
    if (n == 0)
        return; /* the app's last response still fills the buffer: after it drains */
    tg_buf_commit(b, n);
    c->bytes_sent += n;
    tg_counter_add(&c->stats->bytes_sent, n);
    h->local_pending = false;
    log_request(c, &h->local, (unsigned)h->local_status, n, "refused", h->local_reason);
    if (h->local_close) {
        h->closed = true;
        c->dir[1].eof = true; /* close_notify and FIN after it */
        stop_reading_caller(c);
    }
}

/* The sidecar answers this request itself (e NULL: it could not be parsed). */
static void refuse(struct tg_conn *c, int status, unsigned retry, bool close, const struct entry *e,
                   const char *why)
{
    struct tg_http_conn *h = c->http;

    h->local_pending = true;
    h->local_status = status;
    h->local_retry = retry;
    h->local_close = close;
    if (e != NULL) {
        h->local = *e;
    } else {
        fill_entry(&h->local, NULL, c->w->rt->cfg->access_log);
    }
    copy_str(h->local_reason, sizeof(h->local_reason), why, strlen(why));
    if (close)
        h->rq = RQ_DISCARD; /* what follows is not parsed; dropped once we have answered */
    try_local(c);
}

/* ---- decisions ---- */

static void caller_setup(struct tg_conn *c)
{
    struct tg_http_conn *h = c->http;
    const struct tg_peer_info *peer =
        c->tls != NULL && c->handshake_done ? tg_tls_peer(c->tls) : NULL;
    char err[TG_ERRLEN];

    h->caller_ready = true;
    h->who.xfcc = c->http_cfg->xfcc;
    h->who.client_cert = c->http_cfg->client_cert;
    h->who.our_id = c->gen->identity->leaf.id.id;
    if (peer == NULL || peer->id == NULL) {
        /* plain text (permissive): no identity to forward; each request is decided as a
         * caller without one (h->peer zeroed: no ID, fingerprint or serial) */
        h->peer_ok = c->plain;
        return;
    }
    h->who.peer_id = peer->id;
    h->who.sha256 = peer->sha256;
    h->who.der = peer->der;
    h->who.der_len = peer->der_len;
    /* the added lines are the same for every request: rendered once (Client-Cert's base64
     * would otherwise cost more than the rest of the request's handling) */
    {
        size_t cap = 128 + strlen(h->who.our_id) + strlen(peer->id) + 4 * (peer->der_len / 3 + 1);

        if ((h->lines = malloc(cap)) != NULL &&
            (h->who.lines_len = tg_http_caller_lines(&h->who, h->lines, cap)) > 0)
            h->who.lines = h->lines;
    }
    h->peer_ok = tg_spiffe_parse(peer->id, &h->id, err) == 0 &&
                 tg_policy_peer_init(&h->peer, &h->id, peer->sha256, peer->serial, err) == 0;
}

/* 0 to forward, or the status the sidecar answers with (403, 429) and why. */
static int decide(struct tg_conn *c, const struct tg_http_request *req, unsigned *retry, char *why,
                  size_t cap)
{
    struct tg_http_conn *h = c->http;
    struct tg_policy_request pr = {req->method,   req->method_len, req->path,
                                   req->path_len, req->host,       req->host_len};
    struct tg_policy_verdict v;
    uint64_t wait = 0;

    if (!h->peer_ok) {
        snprintf(why, cap, "denied: peer identity unusable for policy");
        return 403;
    }
    /* each request is decided by the newest rules (the worker's generation), not those the
     * connection was accepted under: a reload or a revocation counts from the next request */
    tg_policy_decide_request(c->w->gen->policy, &h->peer, c->dest_port, &pr, &v);
    if (!v.allow) {
        tg_counter_add(&c->stats->http_denied, 1);
        snprintf(why, cap, "%s: %s", v.outcome == TG_POLICY_REVOKED ? "revoked" : "denied",
                 v.reason);
        return 403;
    }
    if (c->rl_key != NULL && !tg_ratelimit_request_take(c->rl, c->rl_key, uv_hrtime(), &wait)) {
        tg_counter_add(&c->stats->http_rate_limited, 1);
        tg_counter_add(&c->stats->limited_by_id[c->peer_id_idx], 1);
        *retry = (unsigned)((wait + 999999999ull) / 1000000000ull);
        if (*retry == 0)
            *retry = 1;
        snprintf(why, cap, "rate_limited: over the requests per second (retry in %llu ms)",
                 (unsigned long long)(wait / 1000000));
        return 429;
    }
    return 0;
}

/* ---- caller -> app ---- */

static void message_done(struct tg_conn *c, bool keep_alive)
{
    struct tg_http_conn *h = c->http;

    /* An upgrade or CONNECT waits for its response, unless that came before the end of the
     * body (its entry is gone then: a tunnel, or requests go on). */
    if (h->switching)
        h->rq = h->tunnel ? RQ_TUNNEL : h->q_n == 0 ? RQ_HEAD : RQ_WAIT;
    else
        h->rq = keep_alive ? RQ_HEAD : RQ_DISCARD;
}

/* A head at the start of the caller's buffer: parse, decide, forward. false: stop for now. */
static bool next_head(struct tg_conn *c)
{
    struct tg_http_conn *h = c->http;
    struct tg_buf *in = &c->dir[0].buf;
    struct fields *scratch;
    struct tg_http_request req;
    struct entry e;
    char err[TG_ERRLEN], why[160];
    unsigned retry = 0;
    int status, rc;
    size_t n;

    /* one head at a time into an empty output buffer: the rewritten head always fits */
    if (tg_buf_len(in) == 0 || h->q_n == INFLIGHT || tg_buf_len(&h->out) > 0 || c->up.writing > 0)
        return false;
    if ((scratch = thread_fields(h->lim.max_fields, h->lim.max_line)) == NULL) {
        tg_conn_close(c, "error", "out of memory");
        return false;
    }
    rc = tg_http_parse_request(tg_buf_data(in), tg_buf_len(in), &h->lim, scratch->v, &h->scanned,
                               &req, &status, err);
    if (rc == 0) {
        if (c->dir[0].eof) /* an unfinished request and nothing more coming */
            tg_buf_consume(in, tg_buf_len(in));
        return false;
    }
    h->scanned = 0;
    tg_counter_add(&c->stats->http_requests, 1);
    if (rc < 0) {
        tg_counter_add(&c->stats->http_bad_requests, 1);
        tg_info("%s: client %s: request refused (%d): %s", c->l->name, c->peer_addr, status, err);
        refuse(c, status, 0, true, NULL, err);
        return false;
    }
    /* the rules and the app see one path: the normalised one (http.h, "request targets") */
    if (tg_http_target_normalize(&req, scratch->path, scratch->path_cap, &status, err) < 0) {
        tg_counter_add(&c->stats->http_bad_requests, 1);
        tg_info("%s: client %s: request refused (%d): %s", c->l->name, c->peer_addr, status, err);
        fill_entry(&e, &req, c->w->rt->cfg->access_log);
        tg_buf_consume(in, (size_t)rc);
        refuse(c, status, 0, true, &e, err);
        return false;
    }
    if (!h->caller_ready)
        caller_setup(c);
    fill_entry(&e, &req, c->w->rt->cfg->access_log);
    if ((status = decide(c, &req, &retry, why, sizeof(why))) != 0) {
        /* a body we would have to skip, or an expectation the caller waits on: close after */
        bool close = req.framing != TG_HTTP_NO_BODY || !req.keep_alive || req.expect_continue ||
                     req.upgrade || req.connect;

        e.req_bytes = 0;
        tg_buf_consume(in, (size_t)rc);
        refuse(c, status, retry, close, &e, why);
        return !h->local_pending && !c->closing;
    }
    if (tg_buf_reserve(&h->out, &c->w->pool, true) < 0) {
        tg_conn_close(c, "error", "out of memory");
        return false;
    }
    n = tg_http_rewrite(&req, &h->who, tg_buf_tail(&h->out), tg_buf_room(&h->out));
    if (n == 0) {
        tg_counter_add(&c->stats->http_bad_requests, 1);
        tg_buf_consume(in, (size_t)rc);
        refuse(c, 431, 0, true, &e, "request head too large with the headers added");
        return false;
    }
    tg_buf_commit(&h->out, n);
    tg_buf_consume(in, (size_t)rc);
    e.req_bytes = n;
    h->q[(h->q_first + h->q_n) % INFLIGHT] = e;
    h->q_n++;
    tg_http_body_init(&h->body, req.framing, req.content_length, &h->lim);
    h->keep_alive = req.keep_alive;
    h->switching = req.upgrade || req.connect;
    if (req.framing == TG_HTTP_NO_BODY ||
        (req.framing == TG_HTTP_LENGTH && req.content_length == 0))
        message_done(c, req.keep_alive);
    else
        h->rq = RQ_BODY;
    return true;
}

/* Copies body (or tunnel) bytes; false: stop for now. */
static bool copy_bytes(struct tg_conn *c, bool body)
{
    struct tg_http_conn *h = c->http;
    struct tg_buf *in = &c->dir[0].buf;
    size_t n = tg_buf_len(in), used = n;
    char err[TG_ERRLEN];
    int rc = 0;

    if (n == 0)
        return false;
    if (tg_buf_reserve(&h->out, &c->w->pool, c->up.writing == 0) < 0) {
        tg_conn_close(c, "error", "out of memory");
        return false;
    }
    if (n > tg_buf_room(&h->out))
        n = used = tg_buf_room(&h->out);
    if (n == 0)
        return false;
    if (body) {
        rc = tg_http_body_feed(&h->body, tg_buf_data(in), n, &used, err);
        if (rc < 0) {
            /* the head went to the app already: no clean answer is possible */
            tg_counter_add(&c->stats->http_bad_requests, 1);
            tg_conn_close(c, "error", "request body from %s: %s", c->peer_addr, err);
            return false;
        }
    }
    memcpy(tg_buf_tail(&h->out), tg_buf_data(in), used);
    tg_buf_commit(&h->out, used);
    tg_buf_consume(in, used);
    if (h->q_n > 0) /* (counted to the newest request still waiting, if any) */
        h->q[(h->q_first + h->q_n - 1) % INFLIGHT].req_bytes += used;
    if (rc == 1)
        message_done(c, h->keep_alive);
    return true;
}

void tg_http_conn_progress(struct tg_conn *c)
{
    struct tg_http_conn *h = c->http;

    try_local(c);
    for (int rounds = 0; rounds < 64 && !c->closing && !h->local_pending; rounds++) {
        bool more = false;

        switch (h->rq) {
        case RQ_HEAD:
            more = next_head(c);
            break;
        case RQ_BODY:
            more = copy_bytes(c, true);
            break;
        case RQ_TUNNEL:
            more = copy_bytes(c, false);
            break;
        case RQ_WAIT:
            break;
        case RQ_DISCARD:
            if (h->closed || tg_buf_len(&c->dir[0].buf) > 0)
                stop_reading_caller(c);
            break;
        }
        if (!more)
            break;
    }
}

/* ---- app -> caller ---- */

void tg_http_conn_app_bytes(struct tg_conn *c, char *p, size_t n)
{
    struct tg_http_conn *h = c->http;
    char err[TG_ERRLEN];
    size_t pos = 0;

    if (h->closed) { /* we answered and close: nothing of the app's goes after that */
        c->dir[1].buf.tail -= n;
        return;
    }
    while (pos < n && !h->tunnel && !h->lost) {
        const struct entry *e;
        size_t used;
        int rc;

        if (!h->resp_active) {
            if (h->q_n == 0) {
                h->lost = true;
                tg_info("%s: app sent %zu bytes with no request outstanding; following "
                        "responses stops on this connection",
                        c->l->name, n - pos);
                break;
            }
            e = &h->q[h->q_first];
            tg_http_response_init(&h->resp, &h->resp_lim, e->head, e->connect, e->upgrade);
            h->resp_active = true;
        }
        e = &h->q[h->q_first];
        rc = tg_http_response_feed(&h->resp, p + pos, n - pos, &used, err);
        pos += used;
        if (rc < 0) {
            h->lost = true;
            tg_info("%s: response from the app to %s: %s; following responses stops on this "
                    "connection",
                    c->l->name, e->path, err);
            break;
        }
        if (rc == TG_HTTP_RESP_MORE || rc == TG_HTTP_RESP_INTERIM)
            continue;
        log_request(c, e, (unsigned)h->resp.status, h->resp.bytes, "ok", NULL);
        h->resp_active = false;
        h->q_first = (h->q_first + 1) % INFLIGHT;
        h->q_n--;
        if (rc == TG_HTTP_RESP_TUNNEL) {
            h->tunnel = true;
            if (h->rq == RQ_WAIT)
                h->rq = RQ_TUNNEL;
        } else if (h->rq == RQ_WAIT && h->q_n == 0) {
            h->rq = RQ_HEAD; /* the upgrade or CONNECT was refused: requests go on */
        }
    }
    try_local(c);
}

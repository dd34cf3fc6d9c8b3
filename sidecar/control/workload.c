/* The SPIFFE Workload API client (workload.h). The only home of the workload messages'
 * protobuf-c code: an X509SVIDResponse is unpacked, converted and freed (its key bytes
 * wiped) in tg_wl_decode. */
#include "tollgate/workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/cp_client.h"
#include "tollgate/grpc.h"
#include "tollgate/log.h"
#include "workload.pb-c.h"

#define BACKOFF_MAX_ATTEMPT 2 /* 1 s << 2: at most 4 s between attempts (a local agent) */
#define BACKOFF_FIRST_MS 500  /* after a call that was answered: try again soon */
#define READ_CHUNK 16384

struct tg_wl_client {
    uv_loop_t *loop;
    struct tg_wl_ops ops;
    char *socket;
    char *spiffe_id;
    uv_pipe_t pipe;
    bool pipe_open; /* initialised and not yet closed */
    uv_connect_t connect;
    uv_timer_t retry;
    int open_handles;
    struct tg_grpc *grpc; /* the current call, or NULL */
    unsigned attempt;     /* failed attempts in a row */
    bool started, closing, answered;
    struct tg_wl_stats stats;
    char why[TG_ERRLEN]; /* how the current connection's call ended; "" while it runs */
    char rbuf[READ_CHUNK];
};

static void schedule_retry(struct tg_wl_client *c, const char *why);

/* ---- decoding ---- */

/* the key bytes of every SVID of m, wiped before protobuf-c frees them */
static void wipe_keys(X509SVIDResponse *m)
{
    for (size_t i = 0; i < m->n_svids; i++)
        if (m->svids[i] != NULL && m->svids[i]->x509_svid_key.data != NULL)
            explicit_bzero(m->svids[i]->x509_svid_key.data, m->svids[i]->x509_svid_key.len);
}

int tg_wl_decode(const uint8_t *msg, size_t len, const char *want, struct tg_svid **out, char *err)
{
    X509SVIDResponse *m = x509_svidresponse__unpack(NULL, len, msg);
    const X509SVID *pick = NULL;
    struct tg_svid_fed *fed = NULL;
    struct tg_identity_crl *crls = NULL;
    struct tg_svid_der d;
    int rc;

    if (m == NULL)
        return tg_err_set(err, TG_EINVAL, "X509SVIDResponse: does not decode");
    if (m->n_svids == 0) {
        rc = tg_err_set(err, TG_EINVAL, "X509SVIDResponse: no SVID (is this workload registered?)");
        goto done;
    }
    for (size_t i = 0; i < m->n_svids && pick == NULL; i++)
        if (want == NULL || strcmp(m->svids[i]->spiffe_id, want) == 0)
            pick = m->svids[i];
    if (pick == NULL) {
        rc = tg_err_set(err, TG_EINVAL, "X509SVIDResponse: none of its %zu SVIDs is %.200s",
                        m->n_svids, want);
        goto done;
    }
    if (m->n_federated_bundles > TG_SVID_MAX_DOMAINS || m->n_crl > TG_SVID_MAX_CRLS) {
        rc = tg_err_set(err, TG_ETOOBIG, "X509SVIDResponse: %zu federated bundles, %zu CRLs",
                        m->n_federated_bundles, m->n_crl);
        goto done;
    }
    fed = calloc(m->n_federated_bundles + 1, sizeof(*fed));
    crls = calloc(m->n_crl + 1, sizeof(*crls));
    if (fed == NULL || crls == NULL) {
        rc = tg_err_set(err, TG_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < m->n_federated_bundles; i++)
        fed[i] =
            (struct tg_svid_fed){m->federated_bundles[i]->key, m->federated_bundles[i]->value.data,
                                 m->federated_bundles[i]->value.len};
    for (size_t i = 0; i < m->n_crl; i++)
        crls[i] = (struct tg_identity_crl){m->crl[i].data, m->crl[i].len};
    d = (struct tg_svid_der){
        .spiffe_id = pick->spiffe_id,
        .chain = pick->x509_svid.data,
        .chain_len = pick->x509_svid.len,
        .key = pick->x509_svid_key.data,
        .key_len = pick->x509_svid_key.len,
        .bundle = pick->bundle.data,
        .bundle_len = pick->bundle.len,
        .fed = fed,
        .n_fed = m->n_federated_bundles,
        .crls = crls,
        .n_crls = m->n_crl,
    };
    rc = tg_svid_from_der(&d, out, err);
done:
    free(fed);
    free(crls);
    wipe_keys(m);
    x509_svidresponse__free_unpacked(m, NULL);
    return rc;
}

/* ---- the connection ---- */

static uint32_t random32(void)
{
    uint32_t r = 0;

    if (uv_random(NULL, NULL, &r, sizeof(r), 0, NULL) == 0)
        return r;
    return (uint32_t)rand();
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tg_wl_client *c = h->data;

    if (--c->open_handles > 0)
        return;
    free(c->socket);
    free(c->spiffe_id);
    free(c);
}

static void on_pipe_closed(uv_handle_t *h)
{
    struct tg_wl_client *c = h->data;

    if (c->closing) {
        on_handle_closed(h);
        return;
    }
    c->open_handles--; /* the pipe is made anew at the next attempt */
}

/* Ends the current connection (if any), then retries after the backoff unless closing. */
static void drop(struct tg_wl_client *c, const char *why)
{
    if (c->grpc != NULL) {
        tg_grpc_free(c->grpc);
        c->grpc = NULL;
    }
    if (c->stats.connected)
        tg_warn("workload API %s: connection lost: %s", c->socket, why);
    c->stats.connected = false;
    if (c->pipe_open) {
        c->pipe_open = false;
        uv_close((uv_handle_t *)&c->pipe, on_pipe_closed);
    }
    if (!c->closing)
        schedule_retry(c, why);
}

static void on_write(uv_write_t *w, int status)
{
    free(w->data);
    free(w);
    (void)status; /* a failed write shows as a read error or EOF, which drops */
}

/* Sends what the HTTP/2 session has queued; drops the connection once the session is over. */
static void flush(struct tg_wl_client *c)
{
    char err[TG_ERRLEN] = "";
    uint8_t *out;
    size_t len;
    uv_write_t *w;
    uv_buf_t b;
    int rc;

    if (tg_grpc_take_output(c->grpc, &out, &len, err) < 0) {
        drop(c, err);
        return;
    }
    if (len > 0) {
        if ((w = malloc(sizeof(*w))) == NULL) {
            free(out);
            drop(c, "out of memory");
            return;
        }
        w->data = out;
        b = uv_buf_init((char *)out, (unsigned)len);
        if ((rc = uv_write(w, (uv_stream_t *)&c->pipe, &b, 1, on_write)) < 0) {
            free(out);
            free(w);
            drop(c, uv_strerror(rc));
            return;
        }
    }
    if (!tg_grpc_alive(c->grpc))
        drop(c, c->why[0] ? c->why : "the call ended");
}

static int on_message(void *arg, const uint8_t *msg, size_t len, char *err)
{
    struct tg_wl_client *c = arg;
    struct tg_svid *s = NULL;
    bool decoded;
    int rc;

    if (!c->answered) {
        c->answered = true;
        c->stats.connects++;
        c->stats.connected = true;
        tg_info("workload API %s: connected", c->socket);
    }
    decoded = (rc = tg_wl_decode(msg, len, c->spiffe_id, &s, err)) == 0;
    if (decoded)
        rc = c->ops.on_svid(c->ops.arg, s, err);
    if (rc < 0) {
        /* a bad answer is refused, the stream stays: the next update may be good */
        c->stats.refused++;
        snprintf(c->stats.last_error, sizeof(c->stats.last_error), "%s", err);
        tg_warn("workload API %s: SVID refused, keeping the last good identity: %s", c->socket,
                err);
        if (!decoded && c->ops.on_refused != NULL)
            c->ops.on_refused(c->ops.arg, err);
        err[0] = '\0';
        return 0;
    }
    c->attempt = 0;
    c->stats.updates++;
    return 0;
}

static void on_end(void *arg, int status, const char *why)
{
    struct tg_wl_client *c = arg;

    snprintf(c->why, sizeof(c->why), "FetchX509SVID ended: %s", why);
    (void)status; /* any end, even OK, ends the stream: reconnect */
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct tg_wl_client *c = h->data;

    (void)hint;
    *b = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct tg_wl_client *c = s->data;
    char err[TG_ERRLEN] = "";

    if (n == 0)
        return;
    if (n < 0) {
        snprintf(err, sizeof(err), "%s",
                 n == UV_EOF ? "closed by the server" : uv_strerror((int)n));
        drop(c, err);
        return;
    }
    if (tg_grpc_recv(c->grpc, b->base, (size_t)n, err) < 0 && c->why[0] == '\0')
        snprintf(c->why, sizeof(c->why), "%s", err);
    explicit_bzero(b->base, (size_t)n); /* key material */
    flush(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct tg_wl_client *c = req->data;
    static const struct tg_grpc_meta meta[] = {{"workload.spiffe.io", "true"}};
    const struct tg_grpc_call call = {
        .authority = "localhost",
        .path = TG_WL_PATH,
        .meta = meta,
        .n_meta = TG_NELEM(meta),
        .request = NULL, /* X509SVIDRequest has no fields: zero bytes */
        .request_len = 0,
        .max_message = TG_WL_MAX_MESSAGE,
    };
    const struct tg_grpc_ops ops = {on_message, on_end, c};
    char err[TG_ERRLEN] = "";
    int rc;

    if (c->closing || status == UV_ECANCELED)
        return;
    if (status < 0) {
        snprintf(err, sizeof(err), "connect %s: %s", c->socket, uv_strerror(status));
        drop(c, err);
        return;
    }
    if (tg_grpc_new(&call, &ops, &c->grpc, err) < 0) {
        drop(c, err);
        return;
    }
    if ((rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read)) < 0) {
        drop(c, uv_strerror(rc));
        return;
    }
    flush(c);
}

static void attempt_connect(struct tg_wl_client *c)
{
    int rc;

    c->answered = false;
    c->why[0] = '\0';
    if ((rc = uv_pipe_init(c->loop, &c->pipe, 0)) < 0) {
        schedule_retry(c, uv_strerror(rc));
        return;
    }
    c->pipe.data = c;
    c->pipe_open = true;
    c->open_handles++;
    c->connect.data = c;
    uv_pipe_connect(&c->connect, &c->pipe, c->socket, on_connect);
}

static void on_retry_timer(uv_timer_t *t)
{
    struct tg_wl_client *c = t->data;

    c->stats.reconnects++;
    attempt_connect(c);
}

static void schedule_retry(struct tg_wl_client *c, const char *why)
{
    unsigned a = c->attempt < BACKOFF_MAX_ATTEMPT ? c->attempt : BACKOFF_MAX_ATTEMPT;
    uint64_t delay = c->answered ? BACKOFF_FIRST_MS : tg_cp_backoff_ms(a, random32());

    if (!c->answered)
        c->attempt++;
    snprintf(c->stats.last_error, sizeof(c->stats.last_error), "%s", why);
    if (c->attempt <= 1 || c->attempt % 8 == 0) /* a gone agent is not a log flood */
        tg_warn("workload API %s: %s; retrying in %llu ms", c->socket, why,
                (unsigned long long)delay);
    c->answered = false;
    uv_timer_start(&c->retry, on_retry_timer, delay, 0);
}

/* ---- lifetime ---- */

int tg_wl_client_new(uv_loop_t *loop, const struct tg_wl_cfg *cfg, const struct tg_wl_ops *ops,
                     struct tg_wl_client **out, char *err)
{
    struct tg_wl_client *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    c->loop = loop;
    c->ops = *ops;
    c->socket = strdup(cfg->socket);
    c->spiffe_id = cfg->spiffe_id != NULL ? strdup(cfg->spiffe_id) : NULL;
    if (c->socket == NULL || (cfg->spiffe_id != NULL && c->spiffe_id == NULL)) {
        free(c->socket);
        free(c->spiffe_id);
        free(c);
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    }
    uv_timer_init(loop, &c->retry);
    c->retry.data = c;
    c->open_handles = 1;
    *out = c;
    return 0;
}

void tg_wl_client_start(struct tg_wl_client *c)
{
    c->started = true;
    attempt_connect(c);
}

void tg_wl_client_close(struct tg_wl_client *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    tg_grpc_free(c->grpc);
    c->grpc = NULL;
    if (c->pipe_open) {
        c->pipe_open = false;
        uv_close((uv_handle_t *)&c->pipe, on_pipe_closed);
    }
    /* a pipe of an earlier attempt may still be closing: on_pipe_closed counts it then */
    uv_close((uv_handle_t *)&c->retry, on_handle_closed);
}

const struct tg_wl_stats *tg_wl_client_stats(const struct tg_wl_client *c)
{
    return &c->stats;
}

/* One server-streaming gRPC call over an nghttp2 client session, bytes in and bytes out
 * (grpc.h). */
#include "tollgate/grpc.h"

#include <nghttp2/nghttp2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX 5 /* gRPC message prefix: compressed flag, 4-byte big-endian length */

struct tg_grpc {
    nghttp2_session *s;
    struct tg_grpc_ops ops;
    int32_t stream;
    uint8_t *req; /* the prefixed request, sent by on_read_request */
    size_t req_len, req_sent;
    size_t max_message;
    uint8_t *msg; /* answer bytes not yet a whole message; wiped as they are consumed */
    size_t msg_len, msg_cap;
    size_t header_bytes; /* of the header block being received */
    bool got_status;     /* ":status: 200" seen */
    bool grpc_type;      /* content-type application/grpc[+proto] seen */
    int grpc_status;     /* -1: none yet */
    char grpc_message[128];
    bool ended;
    bool terminate; /* the session is to be told to finish, once out of nghttp2's calls */
    char why[TG_ERRLEN];
};

/* Ends the call once: on_end, the stream reset when it is still open, the session told to
 * finish (GOAWAY once the output is taken) by finish_session. */
static void end_call(struct tg_grpc *g, int status, const char *why, bool reset)
{
    if (g->ended)
        return;
    g->ended = true;
    snprintf(g->why, sizeof(g->why), "%s", why);
    if (reset)
        nghttp2_submit_rst_stream(g->s, NGHTTP2_FLAG_NONE, g->stream, NGHTTP2_CANCEL);
    g->terminate = true;
    g->ops.on_end(g->ops.arg, status, g->why);
}

/* Tells nghttp2 to finish the session of an ended call, never from inside its callbacks:
 * terminated inside nghttp2_session_mem_recv, a frame size error later in the same input
 * trips an assertion of nghttp2's (1.52: it expects to terminate the session itself). */
static void finish_session(struct tg_grpc *g)
{
    if (g->terminate) {
        g->terminate = false;
        nghttp2_session_terminate_session(g->s, NGHTTP2_NO_ERROR);
    }
}

static void fail_call(struct tg_grpc *g, const char *why)
{
    end_call(g, -1, why, true);
}

static ssize_t on_read_request(nghttp2_session *s, int32_t stream, uint8_t *buf, size_t cap,
                               uint32_t *flags, nghttp2_data_source *src, void *arg)
{
    struct tg_grpc *g = arg;
    size_t n = g->req_len - g->req_sent;

    (void)s;
    (void)stream;
    (void)src;
    n = n < cap ? n : cap;
    memcpy(buf, g->req + g->req_sent, n);
    g->req_sent += n;
    if (g->req_sent == g->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF; /* our one message: the request half-closes */
    return (ssize_t)n;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct tg_grpc *g = arg;

    (void)s;
    (void)f;
    g->header_bytes = 0;
    return 0;
}

static bool is(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *arg)
{
    struct tg_grpc *g = arg;

    (void)s;
    (void)flags;
    if (f->hd.stream_id != g->stream || g->ended)
        return 0;
    g->header_bytes += name_len + value_len + 32; /* as HTTP/2 counts a field (RFC 9113 6.5.2) */
    if (g->header_bytes > TG_GRPC_MAX_HEADERS) {
        fail_call(g, "header block over 16 KiB");
        return 0;
    }
    if (is(name, name_len, ":status")) {
        if (!is(value, value_len, "200")) {
            char why[64];

            snprintf(why, sizeof(why), "HTTP status %.3s, not 200", (const char *)value);
            fail_call(g, why);
            return 0;
        }
        g->got_status = true;
    } else if (is(name, name_len, "content-type")) {
        g->grpc_type = value_len >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                       (value_len == 16 || value[16] == '+' || value[16] == ';');
    } else if (is(name, name_len, "grpc-status")) {
        int v = 0;

        if (value_len == 0 || value_len > 2) {
            fail_call(g, "malformed grpc-status");
            return 0;
        }
        for (size_t i = 0; i < value_len; i++) {
            if (value[i] < '0' || value[i] > '9') {
                fail_call(g, "malformed grpc-status");
                return 0;
            }
            v = v * 10 + (value[i] - '0');
        }
        g->grpc_status = v;
    } else if (is(name, name_len, "grpc-message")) {
        size_t n =
            value_len < sizeof(g->grpc_message) - 1 ? value_len : sizeof(g->grpc_message) - 1;

        memcpy(g->grpc_message, value, n);
        g->grpc_message[n] = '\0';
    }
    return 0;
}

/* Cuts whole messages off the front of g->msg. */
static void drain_messages(struct tg_grpc *g)
{
    while (!g->ended && g->msg_len >= PREFIX) {
        size_t len =
            (size_t)g->msg[1] << 24 | (size_t)g->msg[2] << 16 | (size_t)g->msg[3] << 8 | g->msg[4];
        char err[TG_ERRLEN] = "";

        if (g->msg[0] != 0) {
            fail_call(g, "a compressed message (none was offered)");
            return;
        }
        if (len > g->max_message) {
            snprintf(err, sizeof(err), "a message of %zu bytes, over %zu", len, g->max_message);
            fail_call(g, err);
            return;
        }
        if (g->msg_len < PREFIX + len)
            return;
        if (g->ops.on_message(g->ops.arg, g->msg + PREFIX, len, err) < 0) {
            fail_call(g, err[0] ? err : "message refused");
            return;
        }
        g->msg_len -= PREFIX + len;
        memmove(g->msg, g->msg + PREFIX + len, g->msg_len);
        explicit_bzero(g->msg + g->msg_len, PREFIX + len); /* key material */
    }
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream, const uint8_t *data,
                         size_t len, void *arg)
{
    struct tg_grpc *g = arg;

    (void)s;
    (void)flags;
    if (stream != g->stream || g->ended)
        return 0;
    if (!g->got_status || !g->grpc_type) {
        fail_call(g, "data before a 200 answer with content-type application/grpc");
        return 0;
    }
    /* at most one prefix and one largest message are ever held */
    if (g->msg_len + len > g->msg_cap) {
        size_t cap = g->msg_cap ? g->msg_cap : 4096;
        uint8_t *p;

        while (cap < g->msg_len + len)
            cap *= 2;
        if (cap > PREFIX + g->max_message + 16384)
            cap = PREFIX + g->max_message + 16384;
        if (cap < g->msg_len + len) {
            /* cannot be: what is held is less than one largest message (else it would have
             * been handed out or refused), a DATA frame at most 16 KiB */
            fail_call(g, "message buffer over its bound");
            return 0;
        }
        if ((p = malloc(cap)) == NULL) {
            fail_call(g, "out of memory");
            return 0;
        }
        if (g->msg != NULL) {
            memcpy(p, g->msg, g->msg_len);
            explicit_bzero(g->msg, g->msg_cap);
            free(g->msg);
        }
        g->msg = p;
        g->msg_cap = cap;
    }
    memcpy(g->msg + g->msg_len, data, len);
    g->msg_len += len;
    drain_messages(g);
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct tg_grpc *g = arg;
    char why[TG_ERRLEN];

    (void)s;
    if (f->hd.stream_id != g->stream || g->ended)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && g->got_status && !g->grpc_type &&
        f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        fail_call(g, "the answer's content-type is not application/grpc");
        return 0;
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        if (g->grpc_status < 0) {
            end_call(g, -1, "the answer ended without grpc-status", false);
        } else if (g->msg_len > 0) {
            end_call(g, -1, "the answer ended inside a message", false);
        } else {
            snprintf(why, sizeof(why), "grpc-status %d%s%s", g->grpc_status,
                     g->grpc_message[0] ? ": " : "", g->grpc_message);
            end_call(g, g->grpc_status, why, false);
        }
    }
    return 0;
}

/* nghttp2 found the peer breaking HTTP/2 and is closing the connection (GOAWAY with an
 * error): the call is over, and says why. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct tg_grpc *g = arg;
    char why[96];

    (void)s;
    if (f->hd.type != NGHTTP2_GOAWAY || f->goaway.error_code == NGHTTP2_NO_ERROR || g->ended)
        return 0;
    snprintf(why, sizeof(why), "HTTP/2 protocol error from the server (%s)",
             nghttp2_http2_strerror(f->goaway.error_code));
    end_call(g, -1, why, false);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream, uint32_t code, void *arg)
{
    struct tg_grpc *g = arg;
    char why[96];

    (void)s;
    if (stream != g->stream || g->ended)
        return 0;
    snprintf(why, sizeof(why), "the stream was reset (%s)", nghttp2_http2_strerror(code));
    end_call(g, -1, why, false);
    return 0;
}

void tg_grpc_free(struct tg_grpc *g)
{
    if (g == NULL)
        return;
    nghttp2_session_del(g->s);
    free(g->req);
    if (g->msg != NULL)
        explicit_bzero(g->msg, g->msg_cap);
    free(g->msg);
    free(g);
}

int tg_grpc_new(const struct tg_grpc_call *call, const struct tg_grpc_ops *ops,
                struct tg_grpc **out, char *err)
{
    struct tg_grpc *g = calloc(1, sizeof(*g));
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    nghttp2_nv *nv = NULL;
    nghttp2_data_provider body;
    /* a small window per stream: what the server may send ahead of our reading */
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, TG_GRPC_MAX_HEADERS},
    };
    static const char *const fixed[][2] = {
        {":method", "POST"},
        {":scheme", "http"},
        {":path", NULL},
        {":authority", NULL},
        {"content-type", "application/grpc"},
        {"te", "trailers"},
    };
    size_t n_nv = TG_NELEM(fixed) + call->n_meta;
    int rc = TG_ENOMEM;

    if (g == NULL)
        return tg_err_set(err, rc, "out of memory");
    g->ops = *ops;
    g->max_message = call->max_message;
    g->grpc_status = -1;
    if (call->request_len > UINT32_MAX) {
        rc = tg_err_set(err, TG_EINVAL, "request too large");
        goto fail;
    }
    if ((g->req = malloc(PREFIX + call->request_len)) == NULL ||
        (nv = calloc(n_nv, sizeof(*nv))) == NULL || nghttp2_session_callbacks_new(&cb) != 0 ||
        nghttp2_option_new(&opt) != 0)
        goto nomem;
    g->req[0] = 0;
    for (int i = 0; i < 4; i++)
        g->req[1 + i] = (uint8_t)(call->request_len >> (24 - 8 * i));
    if (call->request_len > 0)
        memcpy(g->req + PREFIX, call->request, call->request_len);
    g->req_len = PREFIX + call->request_len;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_option_set_max_reserved_remote_streams(opt, 0);
    if (nghttp2_session_client_new2(&g->s, cb, g, opt) != 0)
        goto nomem;
    if (nghttp2_submit_settings(g->s, NGHTTP2_FLAG_NONE, settings, TG_NELEM(settings)) != 0)
        goto nomem;
    for (size_t i = 0; i < n_nv; i++) {
        const char *name = i < TG_NELEM(fixed) ? fixed[i][0] : call->meta[i - TG_NELEM(fixed)].name;
        const char *value =
            i < TG_NELEM(fixed) ? fixed[i][1] : call->meta[i - TG_NELEM(fixed)].value;

        if (i == 2)
            value = call->path;
        if (i == 3)
            value = call->authority;
        nv[i] = (nghttp2_nv){(uint8_t *)tg_unconst(name), (uint8_t *)tg_unconst(value),
                             strlen(name), strlen(value), NGHTTP2_NV_FLAG_NONE};
    }
    body.source.ptr = g;
    body.read_callback = on_read_request;
    g->stream = nghttp2_submit_request(g->s, NULL, nv, n_nv, &body, g);
    if (g->stream < 0) {
        rc = tg_err_set(err, TG_EINVAL, "HTTP/2 request: %s", nghttp2_strerror(g->stream));
        goto fail;
    }
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    free(nv);
    *out = g;
    return 0;
nomem:
    rc = tg_err_set(err, TG_ENOMEM, "out of memory");
fail:
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    free(nv);
    tg_grpc_free(g);
    return rc;
}

int tg_grpc_recv(struct tg_grpc *g, const void *data, size_t len, char *err)
{
    ssize_t n;

    if (g->ended) /* the call is over: what follows is not read */
        return 0;
    n = nghttp2_session_mem_recv(g->s, data, len);
    finish_session(g);
    if (n < 0) {
        char why[TG_ERRLEN];

        snprintf(why, sizeof(why), "HTTP/2: %s", nghttp2_strerror((int)n));
        end_call(g, -1, why, false);
        return tg_err_set(err, TG_EINVAL, "%s", why);
    }
    return 0;
}

int tg_grpc_take_output(struct tg_grpc *g, uint8_t **out, size_t *len, char *err)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    int rc = 0;

    *out = NULL;
    *len = 0;
    if (f == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    finish_session(g);
    for (;;) {
        const uint8_t *p;
        ssize_t k = nghttp2_session_mem_send(g->s, &p);

        if (k < 0) {
            rc = tg_err_set(err, TG_EINVAL, "HTTP/2: %s", nghttp2_strerror((int)k));
            break;
        }
        if (k == 0)
            break;
        if (fwrite(p, 1, (size_t)k, f) != (size_t)k) {
            rc = tg_err_set(err, TG_ENOMEM, "out of memory");
            break;
        }
    }
    if (fclose(f) != 0 && rc == 0)
        rc = tg_err_set(err, TG_ENOMEM, "out of memory");
    if (rc < 0 || n == 0) {
        free(buf);
        return rc;
    }
    *out = (uint8_t *)buf;
    *len = n;
    return 0;
}

bool tg_grpc_alive(const struct tg_grpc *g)
{
    return nghttp2_session_want_read(g->s) || nghttp2_session_want_write(g->s);
}

bool tg_grpc_ended(const struct tg_grpc *g)
{
    return g->ended;
}

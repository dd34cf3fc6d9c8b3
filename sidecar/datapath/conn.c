/* Connection life cycle: accept, upstream connect, handshake, deadlines, close. */
#include "conn.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "httpconn.h"
#include "tunnel.h"
#include "tollgate/accesslog.h"
#include "tollgate/intercept.h"
#include "tollgate/log.h"
#include "tollgate/proxyproto.h"
#include "tollgate/spiffe.h"

/* A permissive port waits this long for a client's first bytes; a client that sends
 * nothing speaks second (SMTP, MySQL, ...) and goes to the app in plain text. */
#define PEEK_WINDOW_MS 1000

static void start_connect(struct tg_conn *c);
static int make_tls(struct tg_conn *c);

static uint64_t unix_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void format_addr(const struct sockaddr_storage *ss, char *dst, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

        uv_ip4_name(a, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(dst, cap, "%s:%d", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

        uv_ip6_name(a, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(dst, cap, "[%s]:%d", host, port);
    } else {
        snprintf(dst, cap, "?");
    }
}

static bool paused(const struct tg_side *s)
{
    return s->connected && !s->reading && !s->tcp_eof;
}

int tg_conn_sock_error(uv_tcp_t *tcp)
{
    uv_os_fd_t fd;
    int e = 0;
    socklen_t len = sizeof(e);

    if (uv_fileno((uv_handle_t *)tcp, &fd) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        return 0;
    return -e;
}

/* A pending socket error (ECONNRESET, ...) on a side nobody reads. */
static int probe(struct tg_side *s)
{
    return paused(s) ? tg_conn_sock_error(&s->tcp) : 0;
}

uint64_t tg_conn_tunnel_wait_ms(const struct tg_conn *c)
{
    return c->gen->connect_timeout_ms + c->gen->handshake_timeout_ms;
}

/* One of the worker's outbound tunnels (not an app connection of its own). */
static bool pooled(const struct tg_conn *c)
{
    return c->tunnel != NULL && !c->l->inbound;
}

static void on_timer(uv_timer_t *t)
{
    struct tg_conn *c = t->data;
    uint64_t idle;

    switch (c->state) {
    case TG_CONN_PEEK:
        tg_conn_peek_step(c);
        return;
    case TG_CONN_CONNECT:
        tg_counter_add(&c->stats->upstream_connect_failed, 1);
        if (c->ostream != NULL)
            tg_conn_close(c, "timeout", "upstream %s: no tunnel stream within %llu ms",
                          c->upstream.text, (unsigned long long)tg_conn_tunnel_wait_ms(c));
        else
            tg_conn_close(c, "error", "upstream %s: connect timed out", c->upstream.text);
        return;
    case TG_CONN_HANDSHAKE:
        tg_counter_add(&c->stats->hs_failed[TG_HSF_TIMEOUT], 1);
        tg_conn_close(c, "timeout", "%s: no handshake within %llu ms",
                      tg_hs_fail_name(TG_HSF_TIMEOUT),
                      (unsigned long long)c->gen->handshake_timeout_ms);
        return;
    case TG_CONN_PIPE: {
        int down = probe(&c->down), up = probe(&c->up);

        if (down < 0 || up < 0) {
            tg_conn_close(c, "error", "%s: %s", down < 0 ? "downstream" : "upstream",
                          uv_strerror(down < 0 ? down : up));
            return;
        }
        if (c->tunnel != NULL) { /* its streams' deadlines, and its own */
            tg_tunnel_idle(c);
            return;
        }
        idle = uv_now(&c->w->loop) - c->last_active;
        if (idle >= c->gen->idle_timeout_ms) {
            tg_conn_close(c, "timeout", "idle for %llu ms", (unsigned long long)idle);
            return;
        }
        tg_conn_arm_idle(c);
        return;
    }
    }
}

void tg_conn_arm_timer(struct tg_conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static uint64_t mono_ns(void)
{
    return uv_hrtime();
}

void tg_conn_log_entry(const struct tg_conn *c, struct tg_access_entry *e)
{
    /* a connection carried by a tunnel stream shows the tunnel's identity and TLS fields */
    const struct tg_conn *t = c->carrier != NULL ? c->carrier : c;
    const struct tg_peer_info *peer = t->tls != NULL ? tg_tls_peer(t->tls) : NULL;

    memset(e, 0, sizeof(*e));
    e->listener = c->l->name;
    e->direction = c->l->inbound ? "inbound" : "outbound";
    e->peer = c->peer_addr;
    e->peer_id = peer == NULL ? NULL : peer->id != NULL ? peer->id : peer->claimed;
    e->upstream = c->upstream.text;
    e->original_dst = c->orig_dst[0] ? c->orig_dst : NULL;
    e->sni = t->tls == NULL ? NULL : c->l->inbound ? tg_tls_sni(t->tls) : c->l->sni;
    e->tls_version = t->handshake_done ? tg_tls_version(t->tls) : NULL;
    e->cipher = t->handshake_done ? tg_tls_cipher(t->tls) : NULL;
    e->serial = peer != NULL && peer->serial[0] ? peer->serial : NULL;
    e->sha256 = peer != NULL && peer->sha256[0] ? peer->sha256 : NULL;
    e->resumed = t->handshake_done && tg_tls_resumed(t->tls);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tg_conn *c = h->data;

    if (h != (uv_handle_t *)&c->timer && h != (uv_handle_t *)&c->throttle)
        c = ((struct tg_side *)h->data)->conn;
    tg_conn_handle_closed(c);
}

void tg_conn_handle_closed(struct tg_conn *c)
{
    struct tg_access_entry e;

    if (--c->open_handles > 0)
        return;
    if (c->rl_key != NULL)
        tg_ratelimit_conn_release(c->rl, c->rl_key, mono_ns());
    if (c->listener_counted)
        atomic_fetch_sub(&c->l->limit->open, 1);
    if (c->peer_tracked)
        tg_peers_close(&c->w->rt->metrics->peers, tg_tls_peer(c->tls)->sha256);
    if (c->w->rt->cfg->access_log && c->tunnel == NULL) { /* a tunnel logs its streams */
        tg_conn_log_entry(c, &e);
        e.start_unix_ms = c->start_unix_ms;
        e.bytes_received = c->bytes_received;
        e.bytes_sent = c->bytes_sent;
        e.duration_ms = unix_ms() - c->start_unix_ms;
        e.outcome = c->outcome;
        e.reason = c->reason[0] ? c->reason : NULL;
        tg_accesslog_write(&e);
    }
    if (!pooled(c)) { /* a tunnel is no app connection: its own series count it */
        tg_counter_add(&c->stats->closed, 1);
        tg_histogram_observe(&c->stats->hist[TG_HIST_CONN], TG_HIST_CONN,
                             (uv_hrtime() - c->start_ns) / 1000);
    }
    if (c->handshake_done && !c->l->inbound)
        tg_tls_remember(c->tls, c->w->tickets, c->upstream.text);
    tg_http_conn_free(c); /* logs requests left without a response */
    tg_tunnel_free(c);
    tg_tls_free(c->tls);
    tg_buf_drop(&c->dir[0].buf, c->dir[0].pool);
    tg_buf_drop(&c->dir[1].buf, c->dir[1].pool);
    tg_worker_conn_removed(c->w, c);
    tg_gen_unref(c->gen);
    if (c->carrier != NULL)
        tg_conn_handle_closed(c->carrier); /* the tunnel's hold for c's log line */
    free(c);
}

/* An error while piping ends the connection with a reset, not a FIN queued behind unsent
 * bytes: the peer (often the other sidecar) learns at once that the stream is broken.
 * Earlier failures (an upstream that refuses) still close the caller cleanly. */
static void close_side(struct tg_conn *c, struct tg_side *s)
{
    if (c->state == TG_CONN_PIPE && strcmp(c->outcome, "error") == 0 && s->connected &&
        uv_tcp_close_reset(&s->tcp, on_handle_closed) == 0)
        return;
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
}

void tg_conn_close(struct tg_conn *c, const char *outcome, const char *fmt, ...)
{
    va_list ap;

    if (c->closing)
        return;
    c->closing = true;
    c->outcome = outcome;
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
        va_end(ap);
    }
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->throttle, on_handle_closed);
    tg_tunnel_close(c); /* its streams' sockets, or the app connections it carries */
    tg_tunnel_leave(c); /* the stream that carries c */
    if (c->down.open)
        close_side(c, &c->down);
    if (c->up.open)
        close_side(c, &c->up);
}

void tg_conn_arm_idle(struct tg_conn *c)
{
    uint64_t idle = uv_now(&c->w->loop) - c->last_active;
    uint64_t left = c->gen->idle_timeout_ms - idle;

    if ((paused(&c->down) || paused(&c->up)) && left > TG_PAUSED_PROBE_MS)
        left = TG_PAUSED_PROBE_MS;
    tg_conn_arm_timer(c, left);
}

void tg_conn_touch(struct tg_conn *c)
{
    c->last_active = uv_now(&c->w->loop);
}

/* Best effort, before a close: hand what TLS queued (an alert, close_notify) to the kernel
 * without waiting, so the peer learns why. */
static void flush_tls_now(struct tg_conn *c)
{
    struct tg_side *s = c->l->inbound ? &c->down : &c->up;
    struct tg_buf *out;
    uv_buf_t b;

    if (c->tls == NULL)
        return;
    out = tg_tls_cipher_out(c->tls);
    if (!s->open || s->writing > 0 || tg_buf_len(out) == 0)
        return;
    b = uv_buf_init(tg_buf_data(out), (unsigned)tg_buf_len(out));
    if (uv_try_write((uv_stream_t *)&s->tcp, &b, 1) > 0)
        tg_buf_consume(out, tg_buf_len(out));
}

bool tg_conn_admit(struct tg_conn *c, struct tg_ratelimit **rl, struct tg_ratelimit_key **rkey,
                   char *why, size_t cap)
{
    const struct tg_peer_info *peer = tg_tls_peer(c->tls);
    const struct tg_limiter *lim = tg_limit_set_find(c->gen->limits, peer->id);
    const char *key;
    uint64_t retry = 0;
    int rc;

    if (lim == NULL || lim->table == NULL)
        return true;
    key = lim->by_fingerprint ? peer->sha256 : peer->id;
    rc = tg_ratelimit_conn_acquire(lim->table, key, strlen(key), mono_ns(), rkey, &retry);
    if (rc == TG_RATELIMIT_ADMIT) {
        *rl = lim->table;
        return true;
    }
    tg_counter_add(&c->stats->rate_limited, 1);
    if (rc == TG_RATELIMIT_OVER_RATE)
        snprintf(why, cap, "rate_limited: over %llu new connections per second (retry in %llu ms)",
                 (unsigned long long)lim->lim.conns.rate, (unsigned long long)(retry / 1000000));
    else if (rc == TG_RATELIMIT_OVER_CONCURRENT)
        snprintf(why, cap, "rate_limited: %u concurrent connections already", lim->lim.max_conns);
    else
        snprintf(why, cap, "rate_limited: %s", tg_strerror(rc));
    return false;
}

static void on_throttle(uv_timer_t *t)
{
    struct tg_conn *c = t->data;

    tg_conn_paced(c, 0);
    tg_pipe_progress(c);
}

bool tg_conn_pacing(const struct tg_conn *c)
{
    return c->rl_key != NULL || atomic_load_explicit(&c->l->limit->bytes_on, memory_order_relaxed);
}

bool tg_conn_in_debt(const struct tg_conn *c)
{
    return c->rl_debt > 0 || c->ll_debt > 0;
}

/* Pays what the caller sent from its own byte bucket and its listener's; while either is
 * owed, reading from the caller pauses until the later of the two has tokens again. */
void tg_conn_paced(struct tg_conn *c, size_t n)
{
    uint64_t delay = 0, ldelay = 0, now = mono_ns();
    struct tg_listener_limit *ll = c->l->limit;

    if (c->closing)
        return;
    if (c->rl_key != NULL) {
        c->rl_debt += n;
        if (c->rl_debt > 0)
            c->rl_debt -= tg_ratelimit_bytes_take(c->rl, c->rl_key, c->rl_debt, now, &delay);
    }
    if (atomic_load_explicit(&ll->bytes_on, memory_order_relaxed)) {
        c->ll_debt += n;
    } else {
        c->ll_debt = 0; /* the limit was lifted */
    }
    if (c->ll_debt > 0)
        c->ll_debt -= tg_ratelimit_global_take(&ll->bytes, c->ll_debt, now, &ldelay);
    if (!tg_conn_in_debt(c) || uv_is_active((uv_handle_t *)&c->throttle))
        return;
    if (ldelay > delay)
        delay = ldelay;
    tg_counter_add(&c->stats->throttled, 1);
    uv_timer_start(&c->throttle, on_throttle, delay / 1000000 + 1, 0);
}

bool tg_conn_authorized(struct tg_conn *c, const struct tg_policy *p, char *why, size_t cap)
{
    const struct tg_peer_info *peer = NULL;
    struct tg_spiffe_id id;
    struct tg_policy_peer pp;
    struct tg_policy_verdict v;
    char err[TG_ERRLEN];

    if (c->plain) {
        memset(&pp, 0, sizeof(pp)); /* no identity, fingerprint or serial */
    } else {
        if (c->tls == NULL || !c->handshake_done)
            return true;
        peer = tg_tls_peer(c->tls);
        if (peer->id == NULL || tg_spiffe_parse(peer->id, &id, err) < 0 ||
            tg_policy_peer_init(&pp, &id, peer->sha256, peer->serial, err) < 0) {
            snprintf(why, cap, "peer identity unusable for policy");
            return false;
        }
    }
    tg_policy_decide(p, &pp, c->dest_port, &v);
    if (v.allow)
        return true;
    /* protocol: http: rules with HTTP conditions never match a connection, so only a refusal
     * that holds for every request (revoked, a DENY without HTTP conditions) is made here;
     * the ALLOW rules are decided for each request (403) */
    if (c->http_cfg != NULL &&
        (v.outcome == TG_POLICY_NO_MATCH || v.outcome == TG_POLICY_DEFAULT_DENY))
        return true;
    if (peer == NULL) {
        tg_counter_add(&c->stats->plain_refused[TG_PLAIN_DENIED], 1);
        snprintf(why, cap, "denied: %s", v.reason);
        return false;
    }
    tg_counter_add(
        v.outcome == TG_POLICY_REVOKED ? &c->stats->policy_revoked : &c->stats->policy_denied, 1);
    if (v.outcome == TG_POLICY_REVOKED)
        snprintf(why, cap, "revoked: certificate serial %s (sha256 %.16s...) is revoked",
                 peer->serial, peer->sha256);
    else
        snprintf(why, cap, "denied: %s", v.reason);
    return false;
}

/* Our certificate has expired (the control plane is away; /ready already says so): a peer
 * that checks refuses it in the handshake, naming the reason; one that does not must not get
 * through either. */
static bool own_cert_expired(const struct tg_conn *c)
{
    return c->gen->identity->leaf.not_after <= (int64_t)(c->start_unix_ms / 1000);
}

/* A peer verified and let through goes in the peers' table of /config_dump. */
static void track_peer(struct tg_conn *c)
{
    const struct tg_peer_info *p = tg_tls_peer(c->tls);

    if (p->id != NULL)
        c->peer_tracked =
            tg_peers_open(&c->w->rt->metrics->peers, p->id, p->sha256, p->serial, p->not_after,
                          c->l->inbound, (int64_t)(c->start_unix_ms / 1000));
}

/* A connection accepted before a reload shook hands with the generation it was accepted under;
 * the worker holds a newer one now. A peer whose chain the newer CRLs revoke is refused as a
 * revoked handshake is: a caller must not escape a revocation by opening its TCP connection
 * before it and shaking hands after. Whether it is refused. */
static bool revoked_since_accept(struct tg_conn *c)
{
    const struct tg_peer_info *peer = tg_tls_peer(c->tls);
    const char *side = c->l->inbound ? "client" : "server";
    char what[160], why[240];

    if (c->gen == c->w->gen ||
        tg_tls_peer_revoked(peer, c->w->gen->identity, what, sizeof(what)) != TG_REV_REVOKED)
        return false;
    snprintf(why, sizeof(why), "%s %s: %s", side, peer->id, what);
    tg_counter_add(&c->stats->hs_failed[TG_HSF_REVOKED], 1);
    tg_info("%s: %s %s refused: revoked: %s (by a reload during its handshake)", c->l->name, side,
            c->l->inbound ? c->peer_addr : c->upstream.text, why);
    tg_tls_refuse(c->tls, "revoked");
    flush_tls_now(c);
    tg_conn_close(c, "refused", "revoked: %s", why);
    return true;
}

void tg_conn_handshake_step(struct tg_conn *c)
{
    const char *why;
    enum tg_hs_fail fail;
    int rc;

    if (c->hs_start_ns == 0)
        c->hs_start_ns = uv_hrtime(); /* the first call: the ClientHello goes out or came in */
    if ((rc = tg_tls_handshake(c->tls)) == TG_EAGAIN) {
        tg_pipe_progress(c);
        return;
    }
    if (rc == 0) {
        char verdict[160];

        if (revoked_since_accept(c))
            return;
        c->handshake_done = true;
        tg_counter_add(&c->stats->hs_ok, 1);
        tg_histogram_observe(&c->stats->hist[TG_HIST_HANDSHAKE], TG_HIST_HANDSHAKE,
                             (uv_hrtime() - c->hs_start_ns) / 1000);
        c->peer_id_idx = tg_metrics_id_index(c->w->rt->metrics, tg_tls_peer(c->tls)->id);
        tg_counter_add(&c->stats->conns_by_id[c->peer_id_idx], 1);
        if (own_cert_expired(c)) {
            tg_tls_shutdown(c->tls);
            flush_tls_now(c);
            tg_conn_close(c, "refused",
                          "our certificate (serial %s) expired; waiting for a new one",
                          c->gen->identity->leaf.serial);
            return;
        }
        if (c->http == NULL || !c->http_cfg->client_cert)
            tg_tls_drop_peer_der(c->tls); /* only Client-Cert needs the certificate itself */
        if (c->l->inbound && c->l->tunnels && tg_tls_alpn_h2(c->tls)) {
            tg_tunnel_start(c); /* each stream is decided as a connection */
            return;
        }
        /* the worker's newest rules, as for the live connections a reload checks again */
        if (c->l->inbound && (!tg_conn_authorized(c, c->w->gen->policy, verdict, sizeof(verdict)) ||
                              !tg_conn_admit(c, &c->rl, &c->rl_key, verdict, sizeof(verdict)))) {
            tg_info("%s: client %s (%s) refused: %s", c->l->name, c->peer_addr,
                    tg_tls_peer(c->tls)->id, verdict);
            tg_tls_refuse(c->tls, verdict); /* the alert of its kind tells the caller why */
            flush_tls_now(c);
            tg_conn_close(c, "refused", "%s", verdict);
            return;
        }
        track_peer(c);
        if (pooled(c)) {
            tg_tunnel_ready(c); /* h2 chosen or not, the tunnel decides */
            return;
        }
        if (c->l->inbound) {
            tg_pipe_progress(c); /* our Finished goes out while we connect upstream */
            if (!c->closing)
                start_connect(c);
            return;
        }
        c->state = TG_CONN_PIPE;
        tg_conn_touch(c);
        tg_conn_arm_timer(c, c->gen->idle_timeout_ms);
        tg_pipe_read_now(c, &c->down); /* the app's request rides with our Finished */
        return;
    }
    fail = tg_tls_fail(c->tls, &why);
    if (fail == TG_HSF_PEER_REFUSED && !c->l->inbound) {
        tg_conn_peer_refused(c);
        return;
    }
    tg_counter_add(&c->stats->hs_failed[fail], 1);
    tg_info("%s: %s %s refused: %s: %s", c->l->name, c->l->inbound ? "client" : "server",
            c->l->inbound ? c->peer_addr : c->upstream.text, tg_hs_fail_name(fail), why);
    flush_tls_now(c);
    tg_conn_close(c, "refused", "%s: %s", tg_hs_fail_name(fail), why);
}

void tg_conn_answer_refusal(struct tg_conn *c, const char *kind)
{
    char msg[512], body[160];
    int len =
        snprintf(body, sizeof(body),
                 "upstream refused: the server's sidecar refused this connection: %s\n", kind);
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; "
                     "charset=utf-8\r\nX-Tollgate-Refusal: %s\r\nConnection: close\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     kind, len, body);
    uv_buf_t b = uv_buf_init(msg, (unsigned)n);

    if (!c->http_app || c->bytes_sent > 0 || !c->down.open)
        return;
    /* nothing went to the app yet, so nothing is queued before it: one try, now */
    if (c->down.writing == 0 && uv_try_write((uv_stream_t *)&c->down.tcp, &b, 1) == n) {
        c->bytes_sent += (uint64_t)n;
        tg_counter_add(&c->stats->bytes_sent, (uint64_t)n);
    }
}

void tg_conn_peer_refused(struct tg_conn *c)
{
    const char *why, *kind = tg_tls_peer_refusal(c->tls);
    enum tg_hs_fail fail = tg_tls_fail(c->tls, &why);
    const struct tg_log_field fields[] = {
        {"listener", c->l->name},
        {"upstream", c->upstream.text},
        {"reason_code", kind != NULL ? kind : "other"},
    };

    tg_counter_add(&c->stats->hs_failed[TG_HSF_PEER_REFUSED], 1);
    tg_log_fields(TG_LOG_INFO, fields, TG_NELEM(fields), "%s: server %s refused us: %s", c->l->name,
                  c->upstream.text, why);
    tg_conn_answer_refusal(c, kind != NULL ? kind : "other");
    tg_conn_close(c, "refused", "%s: %s", tg_hs_fail_name(fail), why);
}

static int hex_nibble(char ch)
{
    return ch <= '9' ? ch - '0' : ch - 'a' + 10;
}

/* The PROXY v2 header goes first in the bytes to the app: the caller's address, the address
 * it asked for, and (over mTLS) its SPIFFE ID and certificate SHA-256 as TLVs. */
static int send_proxy_header(struct tg_conn *c)
{
    struct tg_proxyproto h;
    const struct tg_peer_info *peer = c->tls != NULL ? tg_tls_peer(c->tls) : NULL;
    uint8_t sha[32], hdr[TG_PP2_ENCODED_MAX];
    struct tg_buf *b = c->up.wbuf; /* the direction's buffer, or what HTTP sends the app */
    char err[TG_ERRLEN];
    size_t len;
    int n = sizeof(h.src);

    memset(&h, 0, sizeof(h));
    if (uv_tcp_getpeername(&c->down.tcp, (struct sockaddr *)&h.src, &n) < 0)
        return tg_err_set(err, TG_EIO, "no peer address");
    if (c->l->transparent) {
        uv_os_fd_t fd;

        if (uv_fileno((uv_handle_t *)&c->down.tcp, &fd) < 0 ||
            tg_intercept_original_dst(fd, &h.dst) < 0)
            h.dst = c->l->listen->ss;
    } else {
        h.dst = c->l->listen->ss;
    }
    if (peer != NULL && peer->id != NULL) {
        h.spiffe_id = peer->id;
        h.spiffe_id_len = strlen(peer->id);
        for (int i = 0; i < 32; i++)
            sha[i] = (uint8_t)(hex_nibble(peer->sha256[2 * i]) << 4 |
                               hex_nibble(peer->sha256[2 * i + 1]));
        h.sha256 = sha;
        h.ssl = true;
        h.ssl_client = TG_PP2_CLIENT_SSL | TG_PP2_CLIENT_CERT_CONN;
        h.ssl_version = tg_tls_version(c->tls);
        h.ssl_version_len = strlen(h.ssl_version);
    }
    if (tg_proxyproto_encode(&h, hdr, sizeof(hdr), &len, err) < 0)
        return TG_EINVAL;
    /* the direction's buffer may already hold the first plain bytes (permissive peek) */
    if (tg_buf_reserve(b, &c->w->pool, true) < 0 || tg_buf_room(b) + b->head < len)
        return TG_ENOMEM;
    memmove(b->data + len, tg_buf_data(b), tg_buf_len(b));
    memcpy(b->data, hdr, len);
    b->tail = len + tg_buf_len(b);
    b->head = 0;
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct tg_conn *c = req->data;

    if (c->closing)
        return; /* UV_ECANCELED: the connection is going away */
    if (status < 0) {
        tg_counter_add(&c->stats->upstream_connect_failed, 1);
        if (c->tls != NULL && c->l->inbound) {
            tg_tls_shutdown(c->tls); /* the client sees a clean close_notify */
            flush_tls_now(c);
        }
        tg_conn_close(c, "error", "upstream %s: %s", c->upstream.text, uv_strerror(status));
        return;
    }
    c->up.connected = true;
    uv_tcp_nodelay(&c->up.tcp, 1);
    if (c->l->inbound && c->l->proxy_protocol && send_proxy_header(c) < 0) {
        tg_conn_close(c, "error", "PROXY protocol header could not be made");
        return;
    }
    if (c->l->inbound || c->tls == NULL) {
        c->state = TG_CONN_PIPE;
        tg_conn_touch(c);
        tg_conn_arm_timer(c, c->gen->idle_timeout_ms);
        tg_pipe_progress(c);
        return;
    }
    c->state = TG_CONN_HANDSHAKE;
    tg_conn_arm_timer(c, c->gen->handshake_timeout_ms);
    tg_conn_handshake_step(c); /* sends the ClientHello */
}

/* Captured inbound to the original destination (the pod's own address) leaves from
 * TG_INBOUND_SOURCE4/6, which the capture rules exempt on lo: from any other source the
 * connection would be captured again as inbound. */
int tg_conn_bind_source(uv_tcp_t *tcp, bool v6)
{
    struct sockaddr_storage src;
    int rc;

    memset(&src, 0, sizeof(src));
    if (v6)
        rc = uv_ip6_addr(TG_INBOUND_SOURCE6, 0, (struct sockaddr_in6 *)&src);
    else
        rc = uv_ip4_addr(TG_INBOUND_SOURCE4, 0, (struct sockaddr_in *)&src);
    if (rc == 0)
        rc = uv_tcp_bind(tcp, (const struct sockaddr *)&src, 0);
    return rc;
}

static int bind_inbound_source(struct tg_conn *c)
{
    bool v6 = c->upstream.ss.ss_family == AF_INET6;
    int rc = tg_conn_bind_source(&c->up.tcp, v6);

    if (rc < 0) {
        tg_counter_add(&c->stats->upstream_connect_failed, 1);
        if (c->tls != NULL) {
            tg_tls_shutdown(c->tls); /* the client sees a clean close_notify */
            flush_tls_now(c);
        }
        tg_conn_close(c, "error", "upstream %s: source address %s: %s%s", c->upstream.text,
                      v6 ? TG_INBOUND_SOURCE6 : TG_INBOUND_SOURCE4, uv_strerror(rc),
                      v6 && rc == UV_EADDRNOTAVAIL
                          ? " (not on lo: tollgate init-iptables adds it; or upstream: loopback)"
                          : "");
    }
    return rc;
}

static void start_connect(struct tg_conn *c)
{
    int rc;

    c->state = TG_CONN_CONNECT;
    tg_conn_arm_timer(c, c->gen->connect_timeout_ms);
    rc = uv_tcp_init(&c->w->loop, &c->up.tcp);
    if (rc < 0) {
        tg_conn_close(c, "error", "upstream socket: %s", uv_strerror(rc));
        return;
    }
    c->up.open = true;
    c->open_handles++;
    if (c->l->inbound && c->l->transparent && !c->l->upstream_loopback &&
        bind_inbound_source(c) < 0)
        return;
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->up.tcp, (const struct sockaddr *)&c->upstream.ss, on_connect);
    if (rc < 0) {
        tg_counter_add(&c->stats->upstream_connect_failed, 1);
        tg_conn_close(c, "error", "upstream %s: %s", c->upstream.text, uv_strerror(rc));
    }
}

static void set_upstream(struct tg_conn *c, const struct sockaddr_storage *ss)
{
    c->upstream.ss = *ss;
    c->upstream.len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    format_addr(ss, c->upstream.text, sizeof(c->upstream.text));
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

/* Whether the caller is our own inbound source address: our connection to the app at an
 * original destination, captured again because the capture rules lack its exemption. */
static bool from_inbound_source(const struct tg_conn *c)
{
    struct sockaddr_storage ss;
    struct in_addr a4;
    struct in6_addr a6;
    int len = sizeof(ss);

    if (uv_tcp_getpeername(&c->down.tcp, (struct sockaddr *)&ss, &len) < 0)
        return false;
    if (ss.ss_family == AF_INET)
        return inet_pton(AF_INET, TG_INBOUND_SOURCE4, &a4) == 1 &&
               memcmp(&((struct sockaddr_in *)&ss)->sin_addr, &a4, sizeof(a4)) == 0;
    return ss.ss_family == AF_INET6 && inet_pton(AF_INET6, TG_INBOUND_SOURCE6, &a6) == 1 &&
           memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr, &a6, sizeof(a6)) == 0;
}

/* Decides where the connection goes and whether it is mTLS: a fixed upstream, or for a
 * captured connection its original destination (inbound: the app at that very address and
 * port, the pod's own, as Istio does since 1.10, so an app bound only to loopback is not
 * exposed; or on loopback at the same port with upstream: loopback; outbound: the mesh
 * table's expected servers, or plain text / refusal outside the mesh). Makes the TLS
 * session when there is one. Closes c and returns -1 on refusal. */
static int route(struct tg_conn *c)
{
    const struct tg_listener_def *l = c->l;
    const struct tg_mesh_dest *dest = NULL;
    struct sockaddr_storage orig;
    uv_os_fd_t fd;
    int rc;

    c->rule = l->rule;
    c->http_app = l->http_app;
    c->dest_port = port_of(&l->listen->ss);
    c->http_cfg = l->http;
    if (!l->transparent) {
        c->upstream = *l->upstream;
    } else {
        if (uv_fileno((uv_handle_t *)&c->down.tcp, &fd) < 0 ||
            (rc = tg_intercept_original_dst(fd, &orig)) < 0) {
            tg_counter_add(&c->stats->refused_capture, 1);
            tg_conn_close(c, "refused",
                          "no original destination (not a redirected "
                          "connection)");
            return -1;
        }
        if (port_of(&orig) == port_of(&l->listen->ss)) {
            tg_counter_add(&c->stats->refused_capture, 1);
            tg_conn_close(c, "refused", "loop: original destination is our own port %u",
                          port_of(&orig));
            return -1;
        }
        c->dest_port = port_of(&orig);
        format_addr(&orig, c->orig_dst, sizeof(c->orig_dst));
        if (l->inbound) {
            struct sockaddr_storage app = orig;

            if (from_inbound_source(c)) {
                tg_counter_add(&c->stats->refused_capture, 1);
                tg_conn_close(c, "refused",
                              "loop: our own connection to the app was captured again (the "
                              "capture rules must exempt %s and %s on lo: tollgate "
                              "init-iptables)",
                              TG_INBOUND_SOURCE4, TG_INBOUND_SOURCE6);
                return -1;
            }
            if (l->upstream_loopback) {
                memset(&app, 0, sizeof(app));
                if (orig.ss_family == AF_INET6)
                    uv_ip6_addr("::1", port_of(&orig), (struct sockaddr_in6 *)&app);
                else
                    uv_ip4_addr("127.0.0.1", port_of(&orig), (struct sockaddr_in *)&app);
            }
            set_upstream(c, &app);
            if (l->http_mesh != NULL) { /* the mesh table says which of our ports are HTTP */
                const struct tg_mesh_dest *d = tg_mesh_lookup(&c->gen->mesh, &orig);

                if (d != NULL && d->http)
                    c->http_cfg = l->http_mesh;
            }
        } else {
            dest = tg_mesh_lookup(&c->gen->mesh, &orig);
            set_upstream(c, &orig);
            if (dest == NULL && c->gen->mesh.refuse_outside) {
                tg_counter_add(&c->stats->refused_capture, 1);
                tg_conn_close(c, "refused", "outside_mesh: %s is not a mesh destination",
                              c->upstream.text);
                return -1;
            }
            if (dest == NULL)
                return 0; /* passthrough in plain text */
            c->rule.ids = &dest->expect;
            c->http_app = dest->http;
        }
    }
    if (!l->inbound && own_cert_expired(c)) { /* no upstream connection for nothing */
        tg_conn_close(c, "refused", "our certificate (serial %s) expired; waiting for a new one",
                      c->gen->identity->leaf.serial);
        return -1;
    }
    if (!l->inbound) {
        c->tunnel_mode = dest != NULL && dest->tunnel != TG_TUNNEL_UNSET ? dest->tunnel : l->tunnel;
        /* a port the server's sidecar serves as protocol: http decides each request there,
         * which its tunnel end does not do yet: such a port always goes direct */
        if (c->tunnel_mode == TG_TUNNEL_UNSET || (dest != NULL && dest->http))
            c->tunnel_mode = TG_TUNNEL_OFF;
        if (c->tunnel_mode != TG_TUNNEL_OFF)
            return 0; /* the pool decides; a TLS session of its own only if it goes direct */
    }
    return make_tls(c);
}

/* The connection's own TLS session (route() chose mTLS). Closes c and returns -1 on
 * failure. */
static int make_tls(struct tg_conn *c)
{
    const struct tg_listener_def *l = c->l;
    int rc;

    rc = tg_tls_new(l->inbound ? c->gen->server : c->gen->client, &c->w->wire, &c->rule, &c->tls);
    if (rc < 0) {
        tg_conn_close(c, "error", "TLS session: %s", tg_strerror(rc));
        return -1;
    }
    if (!l->inbound)
        tg_tls_offer(c->tls, c->w->tickets, c->upstream.text);
    if (!l->inbound && l->sni != NULL && tg_tls_set_sni(c->tls, l->sni) < 0) {
        tg_conn_close(c, "error", "TLS session: SNI %s not set", l->sni);
        return -1;
    }
    if (l->inbound && l->tunnels && tg_tls_offer_h2(c->tls) < 0) {
        tg_conn_close(c, "error", "TLS session: ALPN h2 could not be offered");
        return -1;
    }
    return 0;
}

/* A plain-text caller of a permissive port has no identity: the listener's allow list, when
 * it names identities, refuses it unless allow_unauthenticated says otherwise; then the
 * rules decide as for any caller without an identity. */
static bool plain_admitted(struct tg_conn *c, char *why, size_t cap)
{
    if (c->l->rule.ids->n > 0 && !c->l->allow_unauth) {
        tg_counter_add(&c->stats->plain_refused[TG_PLAIN_NOT_ALLOWED], 1);
        snprintf(why, cap,
                 "not_allowed: the listener's allow list names identities and a plain-text "
                 "caller has none (allow_unauthenticated: true lets it in)");
        return false;
    }
    return tg_conn_authorized(c, c->gen->policy, why, cap);
}

void tg_conn_peek_step(struct tg_conn *c)
{
    struct tg_buf *in = tg_tls_cipher_in(c->tls);
    char verdict[200];
    bool timed_out = uv_timer_get_due_in(&c->timer) == 0;
    enum tg_peek p = tg_intercept_peek((const uint8_t *)tg_buf_data(in), tg_buf_len(in));

    if (p == TG_PEEK_MORE && !timed_out && !c->down.tcp_eof &&
        tg_buf_len(in) < c->w->pool.block_size) {
        tg_pipe_progress(c);
        return;
    }
    if (p == TG_PEEK_MESH) {
        c->state = TG_CONN_HANDSHAKE;
        tg_conn_arm_timer(c, c->gen->handshake_timeout_ms);
        tg_conn_handshake_step(c);
        return;
    }
    /* plain text for the app: what arrived so far moves to the downstream direction */
    if (tg_buf_len(in) > 0) {
        if (tg_buf_reserve(&c->dir[0].buf, &c->w->pool, true) < 0) {
            tg_conn_close(c, "error", "out of memory");
            return;
        }
        /* the peek read no more than this buffer holds (tg_pipe_on_alloc) */
        if (tg_buf_room(&c->dir[0].buf) < tg_buf_len(in)) {
            tg_conn_close(c, "error", "peek: %zu bytes for a buffer of %zu", tg_buf_len(in),
                          tg_buf_room(&c->dir[0].buf));
            return;
        }
        memcpy(tg_buf_tail(&c->dir[0].buf), tg_buf_data(in), tg_buf_len(in));
        tg_buf_commit(&c->dir[0].buf, tg_buf_len(in));
        c->bytes_received += tg_buf_len(in);
        tg_counter_add(&c->stats->bytes_received, tg_buf_len(in));
        tg_buf_consume(in, tg_buf_len(in));
    }
    c->dir[0].eof = c->down.tcp_eof;
    tg_tls_free(c->tls);
    c->tls = NULL;
    c->down.tls = false;
    c->down.wbuf = &c->dir[1].buf;
    c->plain = true;
    if (!plain_admitted(c, verdict, sizeof(verdict))) {
        tg_info("%s: client %s (plain text, no identity) refused: %s", c->l->name, c->peer_addr,
                verdict);
        tg_conn_close(c, "refused", "%s", verdict);
        return;
    }
    tg_counter_add(&c->stats->plaintext, 1);
    start_connect(c);
}

bool tg_conn_listener_admit(const struct tg_listener_def *l, struct tg_listener_stats *stats,
                            bool *counted, char *why, size_t cap)
{
    struct tg_listener_limit *ll = l->limit;
    unsigned max = atomic_load_explicit(&ll->max, memory_order_relaxed);

    if (max > 0) {
        if (atomic_fetch_add(&ll->open, 1) >= max) {
            atomic_fetch_sub(&ll->open, 1);
            tg_counter_add(&stats->listener_limited, 1);
            snprintf(why, cap, "listener_limit: %u connections open already", max);
            return false;
        }
        *counted = true;
    }
    if (tg_ratelimit_global_take(&ll->rate, 1, mono_ns(), NULL) == 0) {
        tg_counter_add(&stats->listener_limited, 1);
        snprintf(why, cap, "listener_limit: over its connections_per_second");
        return false;
    }
    return true;
}

/* The listener's own limits, before any work on the connection: over its cap or its rate,
 * the connection is closed at once, before TLS or the upstream cost anything. */
static bool listener_admitted(struct tg_conn *c)
{
    char why[120];

    if (tg_conn_listener_admit(c->l, c->stats, &c->listener_counted, why, sizeof(why)))
        return true;
    tg_conn_close(c, "refused", "%s", why);
    return false;
}

static void init_side(struct tg_conn *c, struct tg_side *s, bool tls)
{
    s->conn = c;
    s->tls = tls;
    s->tcp.data = s;
    s->wreq.data = s;
    s->sreq.data = s;
}

/* What every connection starts with: listener l (its sides: the TLS one the mesh side),
 * stats, a reference on gen, its clocks, its directions, its two timers; in w's list. */
static void conn_init(struct tg_conn *c, struct tg_worker *w, const struct tg_listener_def *l,
                      struct tg_listener_stats *stats, struct tg_gen *gen)
{
    c->w = w;
    c->l = l;
    c->stats = stats;
    c->gen = tg_gen_ref(gen);
    c->start_unix_ms = unix_ms();
    c->start_ns = uv_hrtime();
    c->peer_id_idx = TG_METRICS_ID_UNKNOWN;
    c->outcome = "ok";
    init_side(c, &c->down, l->inbound);
    init_side(c, &c->up, !l->inbound);
    c->dir[0] = (struct tg_dir){.src = &c->down,
                                .dst = &c->up,
                                .pool = &w->pool,
                                .bytes_stat = &c->stats->bytes_received,
                                .bytes = &c->bytes_received};
    c->dir[1] = (struct tg_dir){.src = &c->up,
                                .dst = &c->down,
                                .pool = &w->pool,
                                .bytes_stat = &c->stats->bytes_sent,
                                .bytes = &c->bytes_sent};
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(&w->loop, &c->throttle);
    c->throttle.data = c;
    c->open_handles = 2;
    tg_worker_conn_added(w, c);
}

void tg_conn_accept(struct tg_worker *w, const struct tg_listener_def *l, uv_stream_t *server)
{
    struct tg_conn *c = calloc(1, sizeof(*c));
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;

    if (c == NULL) {
        tg_error("%s: out of memory accepting a connection", l->name);
        return;
    }
    /* the loop's clock is read once per iteration: after a burst of accepts (or a busy
     * machine) it lags, and a timeout armed from it fires that much early (a 2 s handshake
     * deadline seen at 1.6 s in test_load). One clock read per accept keeps deadlines whole. */
    uv_update_time(&w->loop);
    conn_init(c, w, l, tg_metrics_slot(w->rt->metrics, w->index, l->index), w->gen);
    uv_tcp_init(&w->loop, &c->down.tcp);
    c->down.open = true;
    c->open_handles++;
    tg_counter_add(&c->stats->opened, 1);
    if ((rc = uv_accept(server, (uv_stream_t *)&c->down.tcp)) < 0) {
        tg_conn_close(c, "error", "accept: %s", uv_strerror(rc));
        return;
    }
    c->down.connected = true;
    if (uv_tcp_getpeername(&c->down.tcp, (struct sockaddr *)&ss, &len) == 0)
        format_addr(&ss, c->peer_addr, sizeof(c->peer_addr));
    if (!listener_admitted(c))
        return;
    uv_tcp_nodelay(&c->down.tcp, 1);
    if (route(c) < 0)
        return;
    if (c->tunnel_mode == TG_TUNNEL_AUTO || c->tunnel_mode == TG_TUNNEL_ON) {
        c->down.wbuf = &c->dir[1].buf; /* what the tunnel stream brings, a window's worth */
        c->dir[1].pool = &w->wide;
        c->up.tls = false; /* no socket of its own upstream: a stream */
        tg_tunnel_join(c);
        return;
    }
    if (c->tls == NULL) { /* plain-text passthrough */
        c->down.tls = c->up.tls = false;
        c->down.wbuf = &c->dir[1].buf;
        c->up.wbuf = &c->dir[0].buf;
        tg_counter_add(&c->stats->plaintext, 1);
        start_connect(c);
        return;
    }
    /* Writes to the TLS side come from TLS; to the plain side, from the direction's buffer. */
    c->down.wbuf = l->inbound ? tg_tls_cipher_out(c->tls) : &c->dir[1].buf;
    c->up.wbuf = l->inbound ? &c->dir[0].buf : tg_tls_cipher_out(c->tls);
    if (c->http_cfg != NULL) { /* the app gets what the request parser forwards */
        if (tg_http_conn_new(c) < 0) {
            tg_conn_close(c, "error", "out of memory");
            return;
        }
        c->up.wbuf = tg_http_conn_out(c);
    }
    if (l->inbound &&
        (c->gen->inbound_mode_set ? c->gen->inbound_mode : l->mode) == TG_MODE_PERMISSIVE) {
        c->state = TG_CONN_PEEK;
        tg_conn_arm_timer(c, PEEK_WINDOW_MS);
        tg_pipe_progress(c); /* reads the first bytes into the TLS input buffer */
        return;
    }
    if (l->inbound) {
        c->state = TG_CONN_HANDSHAKE;
        tg_conn_arm_timer(c, c->gen->handshake_timeout_ms);
        tg_pipe_progress(c); /* starts reading the ClientHello */
        return;
    }
    start_connect(c);
}

void tg_conn_direct(struct tg_conn *c)
{
    c->tunnel_mode = TG_TUNNEL_OFF;
    if (make_tls(c) < 0)
        return;
    c->up.tls = true;
    c->down.wbuf = &c->dir[1].buf;
    c->dir[1].pool = &c->w->pool; /* empty: no stream ever answered */
    c->up.wbuf = tg_tls_cipher_out(c->tls);
    start_connect(c);
}

struct tg_conn *tg_conn_dial_tunnel(struct tg_conn *app, struct tg_tunnel *tun, char *why,
                                    size_t cap)
{
    struct tg_conn *c = calloc(1, sizeof(*c));
    struct tg_worker *w = app->w;
    int rc;

    if (c == NULL) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    conn_init(c, w, app->l, app->stats, app->gen);
    c->upstream = app->upstream;
    c->rule = app->rule;
    c->dest_port = app->dest_port;
    snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", app->upstream.text);
    /* down is never opened: a tunnel has no app socket. Frames for the server go out
     * through dir[0]; its plaintext comes in through dir[1]: the tunnel series count them */
    c->dir[0].bytes_stat = &c->stats->tunnel_bytes_sent;
    c->dir[1].bytes_stat = &c->stats->tunnel_bytes_received;
    c->tunnel = tun;
    tun->c = c;
    rc = tg_tls_new(c->gen->client, &w->wire, &c->rule, &c->tls);
    if (rc == 0) {
        tg_tls_offer(c->tls, w->tickets, c->upstream.text);
        if (c->l->sni != NULL && tg_tls_set_sni(c->tls, c->l->sni) < 0)
            rc = TG_EINVAL;
        else
            rc = tg_tls_offer_h2(c->tls);
    }
    if (rc < 0) {
        snprintf(why, cap, "TLS session: %s", tg_strerror(rc));
        c->tunnel = NULL; /* the caller still owns tun */
        tg_conn_close(c, "error", "%s", why);
        return NULL;
    }
    c->up.wbuf = tg_tls_cipher_out(c->tls);
    start_connect(c); /* a failure closes c, and with it the tunnel's waiting streams */
    return c;
}

void tg_conn_tunnel_failed(struct tg_conn *app, const struct tg_conn *t)
{
    const char *kind = t->tls != NULL ? tg_tls_peer_refusal(t->tls) : NULL;

    if (kind != NULL)
        tg_conn_answer_refusal(app, kind);
    tg_conn_close(app, t->outcome, "tunnel to %s: %s", t->upstream.text,
                  t->reason[0] ? t->reason : t->outcome);
}

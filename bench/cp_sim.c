/* cp_sim: N simulated sidecars on tollgate-cp's stream, each authenticated by a bootstrap
 * token, acknowledging every push at once and recording when each version arrived. Driven by
 * bench/k8s_scale.py (see bench/README.md); it never makes a key or sends a CSR, so it costs
 * the control plane only what the streams themselves cost.
 *
 *   cp_sim PORT CA_PEM CP_ID TOKENS N
 *
 * TOKENS holds "TOKEN NAMESPACE SERVICE_ACCOUNT" lines (tollgate-cp's tokens file); stream i
 * uses line i % lines. The streams are the project's own (msgstream.h: TLS 1.3, the control
 * plane verified against CA_PEM as CP_ID) on one libuv loop. A stream the control plane ends
 * is opened again a second later, its Hello naming the versions it holds (as a sidecar
 * resumes). Pings every 10 s. Runs until SIGTERM or SIGINT.
 *
 * Output, one line each, on stdout (times are CLOCK_MONOTONIC in nanoseconds, the clock of
 * Python's time.monotonic_ns, so the driver can subtract its own):
 *   complete TYPE VERSION STREAMS FIRST_NS LAST_NS BYTES
 *       every one of the N streams has acknowledged TYPE at VERSION: FIRST_NS when the first
 *       push of it arrived, LAST_NS when the last ACK was sent, BYTES the frames of those
 *       pushes summed over the streams (the protobuf message, before TLS);
 *   status T connected=C hello_answered=H pushes=P push_bytes=B reconnects=R
 *       every second. */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#include "cp_sim.pb-c.h"
#include "tollgate.pb-c.h"
#include "tollgate/file.h"
#include "tollgate/msgstream.h"
#include "tollgate/resource.h"

#define VERSION_MAX 64
#define PING_EVERY_S 10

struct sim {
    int index;
    char *token, *ns, *sa;   /* in the tokens file's text */
    struct tg_msgstream *ms; /* NULL: closed, opened again by the tick */
    bool answered;           /* something came back after Hello: it was accepted */
    char held[TG_RES_N][VERSION_MAX + 1];
};

/* One version of one type, as the streams report it. */
struct seen {
    int type;
    char version[VERSION_MAX + 1];
    int streams;
    uint64_t first_ns, last_ns, bytes;
};

static uv_loop_t *loop;
static struct tg_tls_ctx *ctx;
static struct tg_tls_peer_rule rule;
static struct sockaddr_in cp_addr;
static struct sim *sims;
static int n_sims, ticks;
static struct seen *seen;
static size_t n_seen, cap_seen;
static uint64_t pushes, push_bytes, reconnects;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Our messages are small (Hello, Ack, Ping): packed on the stack. */
static void send_client_msg(struct sim *s, const Tollgate__V1__ClientMessage *m)
{
    uint8_t buf[4096];
    char err[TG_ERRLEN];

    if (tollgate__v1__client_message__get_packed_size(m) > sizeof(buf)) {
        tg_msgstream_close(s->ms, false, "a message over %zu bytes", sizeof(buf));
        return;
    }
    if (tg_msgstream_send(s->ms, buf, tollgate__v1__client_message__pack(m, buf), err) < 0)
        tg_msgstream_close(s->ms, false, "sending: %s", err);
}

static void on_connected(struct tg_msgstream *ms)
{
    struct sim *s = tg_msgstream_data(ms);
    Tollgate__V1__ClientMessage m = TOLLGATE__V1__CLIENT_MESSAGE__INIT;
    Tollgate__V1__Hello h = TOLLGATE__V1__HELLO__INIT;
    Tollgate__V1__Hello__ResourceVersionsEntry e[TG_RES_N], *ep[TG_RES_N];
    char node[32], version[] = "cp_sim", names[TG_RES_N][32];

    snprintf(node, sizeof(node), "sim-%d", s->index);
    h.node_id = node;
    h.namespace_ = s->ns;
    h.service_account = s->sa;
    h.token = s->token;
    h.version = version;
    for (int t = TG_RES_TRUST_BUNDLE; t < TG_RES_N; t++) {
        if (s->held[t][0] == '\0')
            continue;
        tollgate__v1__hello__resource_versions_entry__init(&e[h.n_resource_versions]);
        snprintf(names[t], sizeof(names[t]), "%s", tg_res_type_name((enum tg_res_type)t));
        e[h.n_resource_versions].key = names[t];
        e[h.n_resource_versions].value = s->held[t];
        ep[h.n_resource_versions] = &e[h.n_resource_versions];
        h.n_resource_versions++;
    }
    h.resource_versions = ep;
    m.msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_HELLO;
    m.hello = &h;
    send_client_msg(s, &m);
}

static struct seen *seen_of(int type, const char *version)
{
    for (size_t i = n_seen; i-- > 0;)
        if (seen[i].type == type && strcmp(seen[i].version, version) == 0)
            return &seen[i];
    if (n_seen == cap_seen) {
        size_t cap = cap_seen ? 2 * cap_seen : 64;
        struct seen *v = realloc(seen, cap * sizeof(*v));

        if (v == NULL)
            return NULL;
        seen = v;
        cap_seen = cap;
    }
    memset(&seen[n_seen], 0, sizeof(seen[0]));
    seen[n_seen].type = type;
    snprintf(seen[n_seen].version, sizeof(seen[0].version), "%s", version);
    return &seen[n_seen++];
}

static void on_push(struct sim *s, const Tollgate__Bench__ServerHead__PushHead *p, size_t len,
                    uint64_t rx_ns)
{
    Tollgate__V1__ClientMessage m = TOLLGATE__V1__CLIENT_MESSAGE__INIT;
    Tollgate__V1__Ack ack = TOLLGATE__V1__ACK__INIT;
    int t = p->type;
    struct seen *v;

    pushes++;
    push_bytes += len;
    ack.type = (Tollgate__V1__ResourceType)p->type;
    ack.version = p->version;
    ack.nonce = p->nonce;
    m.msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_ACK;
    m.ack = &ack;
    send_client_msg(s, &m);
    if (t < TG_RES_TRUST_BUNDLE || t >= TG_RES_N || strcmp(s->held[t], p->version) == 0 ||
        (v = seen_of(t, p->version)) == NULL)
        return;
    snprintf(s->held[t], sizeof(s->held[t]), "%s", p->version);
    if (v->streams++ == 0)
        v->first_ns = rx_ns;
    v->last_ns = now_ns();
    v->bytes += len;
    if (v->streams == n_sims)
        printf("complete %s %s %d %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
               tg_res_type_name((enum tg_res_type)t), v->version, v->streams, v->first_ns,
               v->last_ns, v->bytes);
}

/* Only the envelope is decoded (cp_sim.proto): the resource stays bytes. */
static void on_frame(struct tg_msgstream *ms, const char *frame, size_t len)
{
    struct sim *s = tg_msgstream_data(ms);
    uint64_t rx = now_ns();
    Tollgate__Bench__ServerHead *m =
        tollgate__bench__server_head__unpack(NULL, len, (const uint8_t *)frame);

    if (m == NULL) {
        tg_msgstream_close(ms, false, "a message of %zu bytes that does not decode", len);
        return;
    }
    s->answered = true;
    if (m->push != NULL)
        on_push(s, m->push, len, rx);
    else if (m->close != NULL)
        fprintf(stderr, "cp_sim: stream %d closed by the control plane: %s\n", s->index,
                m->close->reason);
    tollgate__bench__server_head__free_unpacked(m, NULL);
}

static void on_closed(struct tg_msgstream *ms, const char *reason)
{
    struct sim *s = tg_msgstream_data(ms);

    fprintf(stderr, "cp_sim: stream %d ended: %s\n", s->index, reason);
    s->ms = NULL;
    s->answered = false;
}

static const struct tg_msgstream_ops ops = {on_connected, on_frame, on_closed};

static void sim_open(struct sim *s)
{
    if (tg_msgstream_connect(loop, (const struct sockaddr *)&cp_addr, ctx, &rule, NULL, &ops, s,
                             &s->ms) < 0) {
        fprintf(stderr, "cp_sim: out of memory opening stream %d\n", s->index);
        s->ms = NULL;
    }
}

static void ping(struct sim *s)
{
    Tollgate__V1__ClientMessage m = TOLLGATE__V1__CLIENT_MESSAGE__INIT;
    Tollgate__V1__Ping p = TOLLGATE__V1__PING__INIT;

    p.id = (uint64_t)ticks;
    m.msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_PING;
    m.ping = &p;
    send_client_msg(s, &m);
}

static void on_tick(uv_timer_t *t)
{
    int connected = 0, answered = 0;

    (void)t;
    ticks++;
    for (int i = 0; i < n_sims; i++) {
        struct sim *s = &sims[i];

        if (s->ms == NULL) {
            reconnects++;
            sim_open(s);
        } else if (tg_msgstream_is_connected(s->ms)) {
            connected++;
            answered += s->answered;
            if (ticks % PING_EVERY_S == 0)
                ping(s);
        }
    }
    printf("status %d connected=%d hello_answered=%d pushes=%" PRIu64 " push_bytes=%" PRIu64
           " reconnects=%" PRIu64 "\n",
           ticks, connected, answered, pushes, push_bytes, reconnects);
}

static uv_timer_t tick;
static uv_signal_t sigterm, sigint;

/* The end: every stream closed, then the handles; uv_run returns when they are. */
static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    for (int i = 0; i < n_sims; i++)
        if (sims[i].ms != NULL)
            tg_msgstream_close(sims[i].ms, false, "cp_sim stops");
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
}

/* Splits the tokens file into sims[i].token, .ns, .sa (pointers into text): line i % lines. */
static int read_tokens(char *text)
{
    char *line, *save = NULL;
    struct sim *v = NULL;
    int n = 0;

    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        struct sim *w = realloc(v, (size_t)(n + 1) * sizeof(*w));
        char *save2 = NULL;

        if (w == NULL)
            goto fail;
        v = w;
        v[n].token = strtok_r(line, " \t", &save2);
        v[n].ns = strtok_r(NULL, " \t", &save2);
        v[n].sa = strtok_r(NULL, " \t", &save2);
        if (v[n].sa == NULL) {
            fprintf(stderr, "cp_sim: tokens line %d is not \"TOKEN NAMESPACE SA\"\n", n + 1);
            goto fail;
        }
        n++;
    }
    if (n == 0)
        goto fail;
    for (int i = 0; i < n_sims; i++) {
        sims[i].token = v[i % n].token;
        sims[i].ns = v[i % n].ns;
        sims[i].sa = v[i % n].sa;
    }
    free(v);
    return 0;
fail:
    free(v);
    return -1;
}

int main(int argc, char **argv)
{
    struct tg_tls_settings set = {.max_chain_depth = 4};
    char err[TG_ERRLEN] = "", *ca_pem = NULL, *tokens = NULL, *ids_v[1];
    struct tg_strlist ids = {ids_v, 1};
    size_t ca_len, tokens_len;
    struct rlimit rl;
    int rc = 0;

    if (argc != 6 || (n_sims = atoi(argv[5])) <= 0) {
        fprintf(stderr, "usage: cp_sim PORT CA_PEM CP_ID TOKENS N\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* as tollgate-cp does: 500 streams each grow a buffer (realloc, doubling) to reassemble
     * 500 KB frames; keep what is freed on the way in the heap instead of mapping fresh pages */
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ids_v[0] = argv[3];
    rule.ids = &ids;
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &cp_addr);
    sims = calloc((size_t)n_sims, sizeof(*sims));
    if (sims == NULL || tg_file_read(NULL, argv[2], TG_FILE_MAX, 0, &ca_pem, &ca_len, err) < 0 ||
        tg_file_read(NULL, argv[4], 64 * TG_FILE_MAX, 0, &tokens, &tokens_len, err) < 0 ||
        read_tokens(tokens) < 0 || tg_tls_init() < 0 ||
        tg_tls_ctx_new_cp(NULL, ca_pem, ca_len, &set, &ctx, err) < 0) {
        fprintf(stderr, "cp_sim: %s\n", err[0] ? err : "cannot start");
        rc = 1;
        goto fail;
    }
    loop = uv_default_loop();
    for (int i = 0; i < n_sims; i++) {
        sims[i].index = i;
        sim_open(&sims[i]);
    }
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 1000, 1000);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
fail:
    free(seen);
    free(sims);
    free(tokens);
    free(ca_pem);
    tg_tls_ctx_free(ctx);
    tg_tls_cleanup();
    return rc;
}

/* cp_flood: many clients that never authenticate to tollgate-cp, each doing the worst it can
 * to the control plane's memory before authentication, and coming back at once whenever the
 * control plane closes it. Driven by bench/cp_flood.sh; see bench/README.md.
 *
 *   cp_flood PORT CA_PEM CP_ID CLIENTS SECONDS [MODE]
 *
 * Client i connects from 127.0.0.(2 + i % 250), so that the per-address cap (16 by default)
 * does not hide the total. MODE (default worst: half of the clients each way):
 *   fragment  a TLS record of 16 KiB holding the start of a ClientHello that claims 18 KiB,
 *             then the header and a few bytes of a second record: wolfSSL holds a buffer for
 *             the record and one for the handshake message, until the handshake deadline;
 *   hello     a whole TLS handshake (no client certificate), then a Hello frame announcing the
 *             largest size accepted before authentication and all of it but its last byte,
 *             until the Hello deadline;
 *   silent    a TCP connection that sends nothing;
 *   worst     fragment and hello, alternately.
 * Every second it prints "t=S open=N held=H reconnects=R refused=F"; at the end one line
 * "summary ..." of key=value pairs. The client's TLS is the project's adapter (tls.h) over
 * non-blocking sockets on one epoll loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tollgate/file.h"
#include "tollgate/frame.h"
#include "tollgate/tls.h"

#define HELLO_MAX (16 * 1024) /* TG_CP_HELLO_MAX of controlplane/cp_server.h */
#define ADDRESSES 250

enum mode { FRAGMENT, HELLO, SILENT };
enum phase { CONNECTING, HANDSHAKE, SENDING, HOLDING };

struct client {
    int fd;
    int index;
    enum mode mode;
    enum phase phase;
    struct tg_pool pool;
    struct tg_tls *tls;
    unsigned char *out; /* raw bytes still to send (fragment), or NULL */
    size_t out_len, out_off;
    bool was_held;
};

static struct tg_tls_ctx *ctx;
static struct tg_tls_peer_rule rule;
static int ep, port;
static unsigned long long reconnects, refused_connect, held_total, handshakes;
static unsigned char fragment_bytes[5 + 16384 + 5 + 16];
static unsigned char *hello_bytes; /* frame header and all but the last byte of the body */
static size_t hello_len;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void client_reset(struct client *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    tg_tls_free(c->tls);
    c->tls = NULL;
    tg_pool_cleanup(&c->pool);
    c->out = NULL;
    c->out_len = c->out_off = 0;
}

static void watch(struct client *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    epoll_ctl(ep, op, c->fd, &ev);
}

static void client_start(struct client *c)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    int one = 1;

    client_reset(c);
    c->was_held = false;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        perror("socket");
        exit(1);
    }
    setsockopt(c->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    src.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(2 + c->index % ADDRESSES));
    if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
        perror("bind");
        exit(1);
    }
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    dst.sin_port = htons((uint16_t)port);
    c->phase = CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
        refused_connect++;
        client_reset(c);
        return;
    }
    watch(c, EPOLLOUT | EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
}

/* The control plane ended it, or it failed: again, at once. */
static void client_again(struct client *c)
{
    reconnects++;
    client_start(c);
}

/* Sends what TLS queued; false when the connection is gone. */
static bool flush_tls(struct client *c)
{
    struct tg_buf *out = tg_tls_cipher_out(c->tls);

    while (tg_buf_len(out) > 0) {
        ssize_t n = send(c->fd, tg_buf_data(out), tg_buf_len(out), MSG_NOSIGNAL);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0)
            return false;
        tg_buf_consume(out, (size_t)n);
    }
    tg_buf_release(out, &c->pool);
    return true;
}

/* Sends c->out from c->out_off on; false when the connection is gone. */
static bool flush_raw(struct client *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0)
            return false;
        c->out_off += (size_t)n;
    }
    return true;
}

/* Reads what there is: into TLS while handshaking, else dropped. False at EOF or error. */
static bool drain(struct client *c)
{
    char buf[16384];

    for (;;) {
        ssize_t n;

        if (c->phase == HANDSHAKE) {
            struct tg_buf *in = tg_tls_cipher_in(c->tls);

            if (tg_buf_reserve(in, &c->pool, true) < 0 || tg_buf_room(in) == 0)
                return false;
            n = recv(c->fd, tg_buf_tail(in), tg_buf_room(in), 0);
            if (n > 0)
                tg_buf_commit(in, (size_t)n);
        } else {
            n = recv(c->fd, buf, sizeof(buf), 0);
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0)
            return false;
    }
}

static void hold(struct client *c)
{
    c->phase = HOLDING;
    if (!c->was_held) {
        c->was_held = true;
        held_total++;
    }
    watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
}

static void step(struct client *c, uint32_t events)
{
    if ((events & (EPOLLERR | EPOLLHUP)) && c->phase == CONNECTING) {
        refused_connect++;
        client_again(c);
        return;
    }
    if (c->phase == CONNECTING && (events & EPOLLOUT)) {
        if (c->mode == SILENT) {
            hold(c);
            return;
        }
        if (c->mode == FRAGMENT) {
            c->out = fragment_bytes;
            c->out_len = sizeof(fragment_bytes);
            c->phase = SENDING;
        } else {
            tg_pool_init(&c->pool, 64 * 1024, 1);
            if (tg_tls_new(ctx, &c->pool, &rule, &c->tls) < 0) {
                fprintf(stderr, "cp_flood: out of memory\n");
                exit(1);
            }
            c->phase = HANDSHAKE;
        }
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !drain(c)) {
        client_again(c);
        return;
    }
    if (c->phase == HANDSHAKE) {
        int rc = tg_tls_handshake(c->tls);

        if (!flush_tls(c) || (rc < 0 && rc != TG_EAGAIN)) {
            client_again(c);
            return;
        }
        if (rc == 0) {
            handshakes++;
            for (size_t off = 0; off < hello_len; off += 16384) {
                size_t n = hello_len - off < 16384 ? hello_len - off : 16384;
                struct tg_buf *out = tg_tls_cipher_out(c->tls);

                if (tg_buf_reserve(out, &c->pool, true) < 0 ||
                    tg_buf_room(out) < tg_tls_write_room(n) ||
                    tg_tls_write(c->tls, (const char *)hello_bytes + off, n) < 0 || !flush_tls(c)) {
                    client_again(c);
                    return;
                }
            }
            c->phase = SENDING;
        }
    }
    if (c->phase == SENDING) {
        bool ok = c->tls != NULL ? flush_tls(c) : flush_raw(c);
        bool done =
            c->tls != NULL ? tg_buf_len(tg_tls_cipher_out(c->tls)) == 0 : c->out_off == c->out_len;

        if (!ok) {
            client_again(c);
            return;
        }
        if (done)
            hold(c);
        else
            watch(c, EPOLLOUT | EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
    }
}

static char *slurp(const char *path, size_t *len)
{
    char *buf = NULL, err[TG_ERRLEN];

    if (tg_file_read(NULL, path, TG_FILE_MAX, 0, &buf, len, err) < 0) {
        fprintf(stderr, "cp_flood: %s\n", err);
        exit(2);
    }
    return buf;
}

static void make_payloads(void)
{
    size_t n = 0, body = HELLO_MAX;

    /* record 1: handshake, 16384 bytes: client_hello claiming 18000 bytes, its first 16380 */
    fragment_bytes[n++] = 0x16;
    fragment_bytes[n++] = 0x03;
    fragment_bytes[n++] = 0x01;
    fragment_bytes[n++] = 0x40;
    fragment_bytes[n++] = 0x00;
    fragment_bytes[n++] = 0x01;
    fragment_bytes[n++] = 0x00;
    fragment_bytes[n++] = (unsigned char)(18000 >> 8);
    fragment_bytes[n++] = (unsigned char)(18000 & 0xff);
    fragment_bytes[n++] = 0x03; /* legacy_version 1.2, then zeros */
    fragment_bytes[n++] = 0x03;
    n = 5 + 16384;
    /* record 2: announces 16384 bytes, sends 16 */
    fragment_bytes[n++] = 0x16;
    fragment_bytes[n++] = 0x03;
    fragment_bytes[n++] = 0x01;
    fragment_bytes[n++] = 0x40;
    fragment_bytes[n++] = 0x00;
    /* a Hello frame of the largest size accepted before authentication, all but its last
     * byte: ClientMessage.hello, then empty labels */
    hello_len = TG_FRAME_HDR + body - 1;
    hello_bytes = calloc(1, TG_FRAME_HDR + body);
    hello_bytes[0] = (unsigned char)(body >> 24);
    hello_bytes[1] = (unsigned char)(body >> 16);
    hello_bytes[2] = (unsigned char)(body >> 8);
    hello_bytes[3] = (unsigned char)body;
    hello_bytes[4] = 0x0a;
    hello_bytes[5] = (unsigned char)(((body - 3) & 0x7f) | 0x80); /* varint of body - 3 */
    hello_bytes[6] = (unsigned char)((body - 3) >> 7);
    for (size_t i = 7; i + 1 < TG_FRAME_HDR + body; i += 2) {
        hello_bytes[i] = 0x22;
        hello_bytes[i + 1] = 0x00;
    }
}

int main(int argc, char **argv)
{
    struct tg_tls_settings s = {.max_chain_depth = 4};
    static char *ids[1];
    static struct tg_strlist id_list = {ids, 1};
    struct rlimit rl;
    struct client *clients;
    char err[TG_ERRLEN] = "", *ca_pem;
    size_t ca_len;
    int n_clients, seconds;
    const char *mode = argc > 6 ? argv[6] : "worst";
    double t0, next_report;
    struct epoll_event evs[256];

    if (argc < 6) {
        fprintf(stderr, "usage: cp_flood PORT CA_PEM CP_ID CLIENTS SECONDS "
                        "[worst|fragment|hello|silent]\n");
        return 2;
    }
    port = atoi(argv[1]);
    ca_pem = slurp(argv[2], &ca_len);
    ids[0] = argv[3];
    rule.ids = &id_list;
    n_clients = atoi(argv[4]);
    seconds = atoi(argv[5]);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (tg_tls_init() < 0 || tg_tls_ctx_new_cp(NULL, ca_pem, ca_len, &s, &ctx, err) < 0) {
        fprintf(stderr, "cp_flood: TLS: %s\n", err);
        return 1;
    }
    make_payloads();
    ep = epoll_create1(0);
    clients = calloc((size_t)n_clients, sizeof(*clients));
    for (int i = 0; i < n_clients; i++) {
        clients[i].fd = -1;
        clients[i].index = i;
        clients[i].mode = strcmp(mode, "fragment") == 0 ? FRAGMENT
                          : strcmp(mode, "hello") == 0  ? HELLO
                          : strcmp(mode, "silent") == 0 ? SILENT
                          : i % 2 == 0                  ? FRAGMENT
                                                        : HELLO;
        client_start(&clients[i]);
    }
    t0 = now_s();
    next_report = t0 + 1;
    while (now_s() < t0 + seconds) {
        int n = epoll_wait(ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), 100);

        for (int i = 0; i < n; i++)
            step(evs[i].data.ptr, evs[i].events);
        for (int i = 0; i < n_clients; i++)
            if (clients[i].fd < 0)
                client_start(&clients[i]); /* connect() itself failed: try again */
        if (now_s() >= next_report) {
            int open = 0, held = 0;

            for (int i = 0; i < n_clients; i++) {
                open += clients[i].fd >= 0;
                held += clients[i].phase == HOLDING;
            }
            printf("t=%.0f open=%d held=%d reconnects=%llu handshakes=%llu refused=%llu\n",
                   now_s() - t0, open, held, reconnects, handshakes, refused_connect);
            fflush(stdout);
            next_report += 1;
        }
    }
    printf("summary clients=%d mode=%s seconds=%d reconnects=%llu handshakes=%llu held=%llu "
           "connect_refused=%llu\n",
           n_clients, mode, seconds, reconnects, handshakes, held_total, refused_connect);
    for (int i = 0; i < n_clients; i++)
        client_reset(&clients[i]);
    free(clients);
    free(hello_bytes);
    free(ca_pem);
    tg_tls_ctx_free(ctx);
    tg_tls_cleanup();
    return 0;
}

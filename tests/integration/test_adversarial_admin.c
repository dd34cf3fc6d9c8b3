/* The admin endpoints attacked as an outsider would (issue 12, items 3 and 8).
 *
 * Item 3: POST /drain takes a sidecar off the mesh. It must come only from a loopback peer
 * (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) and never from a browser, whatever address the
 * admin binds; /config_dump follows the same rule; refusals are 403 with a reason and a log
 * line. A non-loopback peer needs an address that is not 127/8: the test moves itself into a
 * network namespace of its own (unshare(CLONE_NEWNET): it and the sidecar it starts see only
 * that namespace's lo, with 10.77.0.1 and fd00:7467::1 added), so nothing is left on the
 * host however the test ends. A drained sidecar exits with status 3 once its connections
 * are gone or timeouts.drain has passed, so a supervisor restarts it; SIGTERM during such a
 * drain still exits 0 at the same deadline.
 *
 * Item 8: idle and byte-a-second clients, from one address and from many (127.0.0.2..15),
 * reconnecting as they are closed, against the sidecar's and the control plane's admin
 * ports, while the probes (/live, /ready; /healthz) must keep answering within 1 s, the
 * kubelet's default probe timeout. */
#include "harness.h"
#include "tollgate/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define V4_OUTSIDE "10.77.0.1"
#define V6_OUTSIDE "fd00:7467::1"
#define PROBE_DEADLINE_MS 1000 /* the kubelet's default timeoutSeconds */
#define FLOOD_MAX 256

static void setup(void)
{
    it_setup();
}

/* ---- raw HTTP from a chosen source address ------------------------------------------ */

struct answer {
    int status; /* -1: no answer */
    char body[512];
    uint64_t ms;
};

/* Connects from src (NULL: the kernel's choice) to dst:port; dst and src are IPv4 or IPv6
 * literals. Returns the fd or -errno. */
static int dial_from(const char *src, const char *dst, int port, int timeout_ms)
{
    struct sockaddr_storage sd = {0}, ss = {0};
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    socklen_t len;
    int fd, one = 1, family = strchr(dst, ':') != NULL ? AF_INET6 : AF_INET;

    if (family == AF_INET) {
        struct sockaddr_in *d = (struct sockaddr_in *)&sd, *s = (struct sockaddr_in *)&ss;

        d->sin_family = s->sin_family = AF_INET;
        d->sin_port = htons((uint16_t)port);
        ck_assert_int_eq(inet_pton(AF_INET, dst, &d->sin_addr), 1);
        if (src != NULL)
            ck_assert_int_eq(inet_pton(AF_INET, src, &s->sin_addr), 1);
        len = sizeof(*d);
    } else {
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&sd, *s = (struct sockaddr_in6 *)&ss;

        d->sin6_family = s->sin6_family = AF_INET6;
        d->sin6_port = htons((uint16_t)port);
        ck_assert_int_eq(inet_pton(AF_INET6, dst, &d->sin6_addr), 1);
        if (src != NULL)
            ck_assert_int_eq(inet_pton(AF_INET6, src, &s->sin6_addr), 1);
        len = sizeof(*d);
    }
    if ((fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* bounds connect() too */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if ((src != NULL && bind(fd, (struct sockaddr *)&ss, len) != 0) ||
        connect(fd, (struct sockaddr *)&sd, len) != 0) {
        int e = errno;

        close(fd);
        return -e;
    }
    return fd;
}

/* One request (the whole head and body in req) on its own connection; reads to EOF. */
static struct answer ask(const char *src, const char *dst, int port, const char *req)
{
    struct answer a = {.status = -1};
    char buf[8192];
    size_t n = 0;
    uint64_t t0 = it_now_ms();
    int fd = dial_from(src, dst, port, PROBE_DEADLINE_MS);
    const char *b;

    if (fd >= 0) {
        if (it_send_all(fd, req, strlen(req)))
            n = it_recv_full(fd, buf, sizeof(buf) - 1);
        close(fd);
    }
    buf[n] = '\0';
    a.ms = it_now_ms() - t0;
    if (sscanf(buf, "HTTP/1.1 %d ", &a.status) != 1)
        a.status = -1;
    if ((b = strstr(buf, "\r\n\r\n")) != NULL)
        snprintf(a.body, sizeof(a.body), "%s", b + 4);
    return a;
}

#define DRAIN_REQ "POST /drain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
#define DUMP_REQ "GET /config_dump HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

static int get_status(const char *src, const char *dst, int port, const char *path)
{
    char req[256];

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    return ask(src, dst, port, req).status;
}

/* ---- a sidecar with one inbound listener -------------------------------------------- */

static void certs(void)
{
    it_certs("ca", "--out", "ca", "--cn", "admin test CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "web", "--spiffe", IT_WEB_ID, NULL);
}

/* admin: the admin address as written in the config ("127.0.0.1:PORT", "[::]:PORT"). */
static struct it_proc *sidecar(const char *name, const char *admin, int admin_port, int in_port,
                               const char *drain)
{
    char file[64], timeouts[64];

    snprintf(file, sizeof(file), "%s.yaml", name);
    snprintf(timeouts, sizeof(timeouts), "handshake: 10s, drain: %s", drain);
    it_cfg_write(file,
                 &(struct it_cfg){.admin_at = admin,
                                  .workers = 1,
                                  .id = "web",
                                  .timeouts = timeouts,
                                  .in = {{"web-in", in_port, it_free_port()}}},
                 NULL);
    return it_sidecar_start(name, file, admin_port, 0);
}

/* ---- item 3: who may drain ---------------------------------------------------------- */

static const char *ip_bin(void)
{
    static const char *const paths[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};

    for (size_t i = 0; i < TG_NELEM(paths); i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

static void ip(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5,
               const char *a6, const char *a7)
{
    const char *argv[] = {ip_bin(), a1, a2, a3, a4, a5, a6, a7, NULL};
    char *err = NULL;
    int st = it_run(argv, NULL, 10000, NULL, &err);

    ck_assert_msg(st == 0, "ip %s %s %s %s: %d: %s", a1, a2, a3, a4 ? a4 : "", st, err ? err : "");
    free(err);
}

/* Moves this test process (and what it starts from now on) into a new network namespace
 * with lo up and two non-loopback addresses on it. False when not permitted. */
static bool own_netns(void)
{
    if (ip_bin() == NULL || unshare(CLONE_NEWNET) != 0) {
        fprintf(stderr, "SKIPPED: needs root for a network namespace and ip(8): %s\n",
                strerror(errno));
        return false;
    }
    ip("link", "set", "lo", "up", NULL, NULL, NULL);
    ip("addr", "add", V4_OUTSIDE "/32", "dev", "lo", NULL, NULL);
    ip("-6", "addr", "add", V6_OUTSIDE "/128", "dev", "lo", "nodad");
    return true;
}

START_TEST(test_drain_and_config_dump_refused_from_non_loopback_peer)
{
    int admin, in_port, st;
    struct it_proc *b;
    struct answer a;

    if (!own_netns())
        return;
    certs();
    IT_FREE_PORTS(&admin, &in_port);
    {
        char addr[32];

        snprintf(addr, sizeof(addr), "[::]:%d", admin); /* all addresses, both families */
        b = sidecar("b", addr, admin, in_port, "1s");
    }

    /* a peer on another address of this host (v4, seen as ::ffff:10.77.0.1) and over v6 */
    a = ask(V4_OUTSIDE, V4_OUTSIDE, admin, DRAIN_REQ);
    ck_assert_msg(a.status == 403, "POST /drain from " V4_OUTSIDE ": %d %s", a.status, a.body);
    ck_assert_msg(strstr(a.body, "loopback") != NULL, "no reason: %s", a.body);
    a = ask(V6_OUTSIDE, V6_OUTSIDE, admin, DRAIN_REQ);
    ck_assert_msg(a.status == 403, "POST /drain from " V6_OUTSIDE ": %d %s", a.status, a.body);
    a = ask(V4_OUTSIDE, V4_OUTSIDE, admin, DUMP_REQ);
    ck_assert_msg(a.status == 403, "GET /config_dump from " V4_OUTSIDE ": %d", a.status);
    a = ask(V6_OUTSIDE, V6_OUTSIDE, admin, DUMP_REQ);
    ck_assert_msg(a.status == 403, "GET /config_dump from " V6_OUTSIDE ": %d", a.status);
    ck_assert_msg(it_wait_lines("b.err", 1, 2000, "refused POST /drain from", "10.77.0.1",
                                "not a loopback peer", NULL) >= 1,
                  "no log line for the refused drain");
    ck_assert_msg(
        it_wait_lines("b.err", 1, 2000, "refused GET /config_dump from", "fd00:7467::1", NULL) >= 1,
        "no log line for the refused config_dump");

    /* nothing changed: still serving, and the probes answer anyone */
    ck_assert_int_eq(get_status(V4_OUTSIDE, V4_OUTSIDE, admin, "/ready"), 200);
    ck_assert_int_eq(get_status(V6_OUTSIDE, V6_OUTSIDE, admin, "/live"), 200);
    ck_assert_int_eq(get_status(V4_OUTSIDE, V4_OUTSIDE, admin, "/stats"), 200);
    ck_assert(it_wait_port(in_port, 1000));
    ck_assert_int_eq(it_wait(b, 0), -1);

    /* loopback peers over v6 and v4-mapped may read the configuration and drain */
    ck_assert_int_eq(ask(NULL, "::1", admin, DUMP_REQ).status, 200);
    a = ask("127.0.0.9", "127.0.0.1", admin, DRAIN_REQ);
    ck_assert_msg(a.status == 200, "POST /drain from 127.0.0.9: %d %s", a.status, a.body);
    st = it_wait(b, 5000);
    ck_assert_msg(st == 3, "drained sidecar: exit status %d, want 3", st);
    b->must_exit_0 = false;
}
END_TEST

/* Requests a browser can make without a CORS preflight (or that a DNS-rebinding page makes
 * same-origin), each of which must be refused even from loopback. */
static const struct {
    const char *what, *req;
} browser[] = {
    {"cross-site form POST",
     "POST /drain HTTP/1.1\r\nHost: 127.0.0.1:15000\r\nOrigin: http://evil.example\r\n"
     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=b"},
    {"form POST without Origin (older browser)",
     "POST /drain HTTP/1.1\r\nHost: 127.0.0.1\r\n"
     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\r\n"},
    {"multipart form",
     "POST /drain HTTP/1.1\r\nHost: 127.0.0.1\r\n"
     "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 0\r\n\r\n"},
    {"text/plain fetch no-cors", "POST /drain HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 "content-type: Text/Plain;charset=UTF-8\r\n\r\n"},
    {"Origin: null (sandboxed frame)",
     "POST /drain HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: null\r\n\r\n"},
    {"Sec-Fetch-Site cross-site", "POST /drain HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\n\r\n"},
    {"Sec-Fetch-Site same-site",
     "POST /drain HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: same-site\r\n\r\n"},
    {"DNS rebinding (Host is not a loopback name)",
     "POST /drain HTTP/1.1\r\nHost: rebind.evil.example:15000\r\n\r\n"},
    {"config_dump read by a cross-site page",
     "GET /config_dump HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n\r\n"},
    {"config_dump through DNS rebinding",
     "GET /config_dump HTTP/1.1\r\nHost: rebind.evil.example\r\nSec-Fetch-Site: "
     "same-origin\r\n\r\n"},
};

START_TEST(test_browser_requests_refused_even_from_loopback)
{
    int admin = it_free_port(), in_port = it_free_port(), st;
    struct it_proc *b;
    struct answer a;
    char addr[32];

    certs();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", admin);
    b = sidecar("b", addr, admin, in_port, "1s");
    for (size_t i = 0; i < TG_NELEM(browser); i++) {
        a = ask(NULL, "127.0.0.1", admin, browser[i].req);
        ck_assert_msg(a.status == 403, "%s: got %d %s", browser[i].what, a.status, a.body);
        ck_assert_msg(strlen(a.body) > 10, "%s: no reason in the body", browser[i].what);
    }
    ck_assert_msg(
        it_wait_lines("b.err", 1, 2000, "refused POST /drain from 127.0.0.1", "Origin", NULL) >= 1,
        "no log line naming the Origin refusal");
    /* none of them drained it */
    ck_assert_int_eq(it_http(admin, "GET", "/ready", NULL), 200);
    ck_assert(it_wait_port(in_port, 1000));

    /* what an operator sends (curl, a preStop exec) still works: also with a JSON type, a
     * localhost Host and the fetch metadata a browser's own address bar would add */
    a = ask(NULL, "127.0.0.1", admin,
            "GET /config_dump HTTP/1.1\r\nHost: localhost:15000\r\nSec-Fetch-Site: none\r\n\r\n");
    ck_assert_msg(a.status == 200, "config_dump typed into a browser: %d %s", a.status, a.body);
    a = ask(NULL, "127.0.0.1", admin,
            "POST /drain HTTP/1.1\r\nHost: [::1]:15000\r\nUser-Agent: curl/8\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
    ck_assert_msg(a.status == 200, "a plain loopback POST /drain: %d %s", a.status, a.body);
    st = it_wait(b, 5000);
    ck_assert_msg(st == 3, "drained sidecar: exit status %d, want 3", st);
    b->must_exit_0 = false;
}
END_TEST

/* ---- item 3: a drained sidecar does not linger -------------------------------------- */

/* Sidecar b (admin port admin, drain 1.5 s) holding an open connection (a client still in
 * its handshake, which keeps the drain going; its fd into *held), then POST /drain at *t0. */
static struct it_proc *drain_holding(int admin, int in_port, int *held, uint64_t *t0)
{
    struct it_proc *b;
    char addr[32];

    certs();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", admin);
    b = sidecar("b", addr, admin, in_port, "1500ms");
    *held = it_connect(in_port, 5000);
    ck_assert_int_ge(*held, 0);
    it_sleep_ms(100); /* accepted */
    *t0 = it_now_ms();
    ck_assert_int_eq(it_http(admin, "POST", "/drain", NULL), 200);
    return b;
}

START_TEST(test_drained_sidecar_exits_3_at_its_deadline)
{
    int admin = it_free_port(), in_port = it_free_port(), held, st;
    struct it_proc *b;
    uint64_t t0, dt;
    char addr[32];

    b = drain_holding(admin, in_port, &held, &t0);
    it_sleep_ms(300);
    ck_assert_int_eq(it_http(admin, "GET", "/ready", NULL), 503);
    /* live while it finishes what it holds: a kill now would cut those connections */
    ck_assert_int_eq(it_http(admin, "GET", "/live", NULL), 200);
    ck_assert_int_eq(it_connect(in_port, 1000), -ECONNREFUSED);
    ck_assert_int_eq(it_wait(b, 0), -1);
    st = it_wait(b, 5000);
    dt = it_now_ms() - t0;
    ck_assert_msg(st == 3, "exit status %d after POST /drain, want 3 (restart me)", st);
    ck_assert_msg(dt >= 1300 && dt < 3500, "exited %llu ms after the drain, want about 1500",
                  (unsigned long long)dt);
    b->must_exit_0 = false;
    ck_assert_int_eq(it_recv_eof(held), 0);
    close(held);
    ck_assert(it_wait_lines("b.err", 1, 1000, "drained on request", "exit status 3", NULL) >= 1);

    /* no connection: it goes at once */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", admin);
    b = sidecar("c", addr, admin, in_port, "20s");
    t0 = it_now_ms();
    ck_assert_int_eq(it_http(admin, "POST", "/drain", NULL), 200);
    st = it_wait(b, 5000);
    dt = it_now_ms() - t0;
    ck_assert_msg(st == 3 && dt < 1500, "idle sidecar: exit %d after %llu ms", st,
                  (unsigned long long)dt);
    b->must_exit_0 = false;
}
END_TEST

START_TEST(test_sigterm_during_requested_drain_keeps_deadline_and_exits_0)
{
    int admin = it_free_port(), in_port = it_free_port(), held, st;
    struct it_proc *b;
    uint64_t t0, dt;

    /* a preStop hook drains, then the kubelet sends SIGTERM: the stop it asked for is
     * clean (0), and the drain is not cut short */
    b = drain_holding(admin, in_port, &held, &t0);
    it_sleep_ms(200);
    ck_assert_int_eq(kill(b->pid, SIGTERM), 0);
    it_sleep_ms(300);
    ck_assert_int_eq(it_wait(b, 0), -1);
    st = it_wait(b, 5000);
    dt = it_now_ms() - t0;
    ck_assert_msg(st == 0, "exit status %d after POST /drain then SIGTERM, want 0", st);
    ck_assert_msg(dt >= 1300 && dt < 3500, "exited %llu ms after the drain, want about 1500",
                  (unsigned long long)dt);
    close(held);
}
END_TEST

/* ---- item 8: probes under an idle and slow flood ------------------------------------ */

struct flood {
    int port;
    int n;
    int fd[FLOOD_MAX];
    char src[FLOOD_MAX][16];
    bool slow[FLOOD_MAX];
    size_t sent[FLOOD_MAX];
    uint64_t next_byte_ms;
    int reconnects;
};

static const char slow_head[] = "GET /live HTTP/1.1\r\nX-Slow: ";

static void flood_add(struct flood *f, const char *src, int count, bool slow)
{
    for (int i = 0; i < count && f->n < FLOOD_MAX; i++, f->n++) {
        snprintf(f->src[f->n], sizeof(f->src[f->n]), "%s", src);
        f->slow[f->n] = slow;
        f->sent[f->n] = 0;
        f->fd[f->n] = dial_from(src, "127.0.0.1", f->port, 200);
    }
}

/* Reconnects every attacker the server has closed (the worst it can do is to come straight
 * back) and sends the slow ones their next byte once a second. */
static void flood_tend(struct flood *f)
{
    uint64_t now = it_now_ms();
    bool tick = now >= f->next_byte_ms;

    if (tick)
        f->next_byte_ms = now + 1000;
    for (int i = 0; i < f->n; i++) {
        struct pollfd p = {.fd = f->fd[i], .events = POLLIN};

        if (f->fd[i] >= 0 && poll(&p, 1, 0) == 1) {
            close(f->fd[i]); /* answered (408) or closed: come back */
            f->fd[i] = -1;
        }
        if (f->fd[i] < 0) {
            f->fd[i] = dial_from(f->src[i], "127.0.0.1", f->port, 200);
            f->sent[i] = 0;
            f->reconnects++;
            continue;
        }
        if (f->slow[i] && tick) {
            char c = f->sent[i] < sizeof(slow_head) - 1 ? slow_head[f->sent[i]] : 'a';

            if (send(f->fd[i], &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                f->sent[i]++;
        }
    }
}

static void flood_stop(struct flood *f)
{
    for (int i = 0; i < f->n; i++)
        if (f->fd[i] >= 0)
            close(f->fd[i]);
    f->n = 0;
}

/* Idle and slow clients: 10 from each of 127.0.0.2..13, 10 slow from each of
 * 127.0.0.14..15, and 12 idle from 127.0.0.1, the probes' own address. */
static void flood_start(struct flood *f, int port)
{
    char src[16];

    memset(f, 0, sizeof(*f));
    f->port = port;
    for (int i = 2; i <= 15; i++) {
        snprintf(src, sizeof(src), "127.0.0.%d", i);
        flood_add(f, src, 10, i >= 14);
    }
    flood_add(f, "127.0.0.1", 12, false);
}

/* For about secs seconds, every 150 ms: tend the flood, then probe each path (from
 * 127.0.0.1, and every other round from an attacker's address, 127.0.0.2). Each probe must
 * get its status within PROBE_DEADLINE_MS. */
static void probe_under_flood(struct flood *f, const char *const paths[], const int want[],
                              size_t n_paths, int secs, const char *who)
{
    uint64_t end = it_now_ms() + (uint64_t)secs * 1000, worst = 0;
    int probes = 0, round = 0;

    while (it_now_ms() < end) {
        flood_tend(f);
        for (size_t i = 0; i < n_paths; i++) {
            char req[256];
            const char *src = round % 2 == 0 ? "127.0.0.1" : "127.0.0.2";
            struct answer a;

            snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: kube-probe/1.29\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     paths[i]);
            a = ask(src, "127.0.0.1", f->port, req);
            ck_assert_msg(a.status == want[i] && a.ms < PROBE_DEADLINE_MS,
                          "%s: probe %d (%s from %s) under %d attackers: status %d after %llu ms",
                          who, probes, paths[i], src, f->n, a.status, (unsigned long long)a.ms);
            worst = a.ms > worst ? a.ms : worst;
            probes++;
        }
        round++;
        it_sleep_ms(150);
    }
    fprintf(stderr, "%s: %d probes under %d attackers (%d reconnects), slowest %llu ms\n", who,
            probes, f->n, f->reconnects, (unsigned long long)worst);
}

START_TEST(test_sidecar_probes_answer_under_idle_and_slow_flood)
{
    static const char *const paths[] = {"/live", "/ready"};
    static const int want[] = {200, 200};
    int admin = it_free_port(), in_port = it_free_port();
    struct flood *f = calloc(1, sizeof(*f));
    char addr[32];

    certs();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", admin);
    sidecar("b", addr, admin, in_port, "1s");
    flood_start(f, admin);
    probe_under_flood(f, paths, want, 2, 4, "sidecar");
    flood_stop(f);
    free(f);
    ck_assert_int_eq(it_http(admin, "GET", "/live", NULL), 200);
}
END_TEST

START_TEST(test_control_plane_probes_answer_under_idle_and_slow_flood)
{
    static const char *const paths[] = {"/healthz"};
    static const int want[] = {200};
    const char *argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};
    int admin = it_free_port();
    struct flood *f = calloc(1, sizeof(*f));
    struct it_proc *cp;

    it_certs("ca", "--out", "ca", "--cn", "admin test CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    it_write_file("mesh.yaml", "settings: {inbound: {mode: strict}}\n");
    it_cp_cfg_write("cp.yaml", it_free_port(), admin, "mesh: mesh.yaml\n");
    cp = it_spawn("cp", argv, IT_STDIN_NULL);
    cp->must_exit_0 = true;
    ck_assert_msg(it_wait_http(admin, "/healthz", 200, 10000), "control plane not healthy");
    flood_start(f, admin);
    probe_under_flood(f, paths, want, 1, 4, "control plane");
    flood_stop(f);
    free(f);
    ck_assert_int_eq(it_http(admin, "GET", "/healthz", NULL), 200);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("adversarial_admin", "admin", NULL, setup, it_teardown, 60,
                         test_drain_and_config_dump_refused_from_non_loopback_peer,
                         test_browser_requests_refused_even_from_loopback,
                         test_drained_sidecar_exits_3_at_its_deadline,
                         test_sigterm_during_requested_drain_keeps_deadline_and_exits_0,
                         test_sidecar_probes_answer_under_idle_and_slow_flood,
                         test_control_plane_probes_answer_under_idle_and_slow_flood);
}

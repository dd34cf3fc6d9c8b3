/* The control plane's front door, tried as an attacker would (issue 12, items 2 and 4), against a
 * real tollgate-cp on loopback:
 *
 * crl: a stolen key whose certificate a CRL the control plane publishes lists connects with it and
 * asks for a fresh certificate: refused, nothing issued; a stream opened before its certificate was
 * revoked by CRL, or before it expired, gets no certificate at its next CSR. A bootstrap token
 * still gets one (the CA works).
 *
 * big hello: a 4 MiB Hello of empty map entries before authentication is refused at its frame
 * header and the control plane's peak RSS barely moves; a Hello of real size with an 8 KiB token is
 * read (refused for the token, not for its size); a 16 KiB Hello of empty map entries is not
 * decoded.
 *
 * flood: half-open TCP connections, half-sent ClientHellos and handshaken streams that half-send
 * their Hello, from several 127.0.0.x addresses, past the caps (refused, counted) and refilled as
 * they are closed, while a real sidecar bootstraps by token and renews.
 *
 * deadlines: a client that never finishes its handshake, and one that never sends its first
 * message, are closed at the deadline.
 *
 * The attackers' TLS is the project's own adapter (tls.h) over blocking sockets. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tollgate.pb-c.h"
#include "tollgate/frame.h"
#include "tollgate/identity.h"
#include "tollgate/tls.h"

#define TOKEN "aaaaaaaaaaaaaaaaaaaaaaaa"
#define DB_ID "spiffe://mesh.local/ns/default/sa/db"

static int cp_port, cp_admin;
static struct it_proc *cp;
static char *ca_pem;
static size_t ca_len;

/* ---- the control plane ---- */

/* cp.yaml with extra appended (limits, timeouts). */
static void write_cp(int ttl_s, const char *extra)
{
    it_cp_cfg_write("cp.yaml", cp_port, cp_admin,
                    "cert_ttl: %ds\n"
                    "tokens: tokens.txt\n"
                    "mesh: [mesh.yaml]\n"
                    "log_level: info\n"
                    "%s",
                    ttl_s, extra);
}

static void start_cp(void)
{
    const char *argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};

    cp = it_spawn("cp", argv, IT_STDIN_NULL);
    cp->must_exit_0 = true; /* a leak (ASan builds) or a crash fails the test */
    ck_assert_msg(it_wait_http(cp_admin, "/healthz", 200, 10000), "tollgate-cp did not start");
}

static double cp_stat(const char *name, const char *labels)
{
    return it_stat(cp_admin, name, labels);
}

/* The control plane's peak resident set (VmHWM), KiB. */
static long cp_peak_kib(void)
{
    char path[64], *text, *p;
    long kib = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)cp->pid);
    text = it_read_file(path, NULL);
    if (text != NULL && (p = strstr(text, "VmHWM:")) != NULL)
        kib = strtol(p + 6, NULL, 10);
    free(text);
    return kib;
}

/* A CRL by `openssl ca` under ca revoking the serials (upper-case hex, even length), into crl.pem,
 * replaced in one step. */
static void make_crl(const char *const *serials, size_t n)
{
    it_crl_index("ca", serials, n);
    it_crl("ca", "crl.pem", 3600);
}

static void setup(void)
{
    it_setup();
    it_certs("ca", "--out", "ca", "--cn", "adversarial cp CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    IT_FREE_PORTS(&cp_port, &cp_admin);
    it_write_file("tokens.txt", TOKEN " default web\n");
    it_write_file("mesh.yaml", "%s", "authorization: {default: allow}\n");
    ca_pem = it_read_file("ca.pem", &ca_len);
    ck_assert(ca_pem != NULL);
    ck_assert_int_eq(tg_tls_init(), 0);
}

/* ---- a client over a blocking socket, with the project's TLS adapter ---- */

static char cp_id[] = IT_CP_ID, *cp_ids_v[] = {cp_id};
static const struct tg_strlist cp_ids = {cp_ids_v, 1};
static const struct tg_tls_peer_rule cp_rule = {&cp_ids};

struct tc {
    int fd;
    struct tg_pool pool;
    struct tg_identity *id;
    struct tg_tls_ctx *ctx;
    struct tg_tls *tls;
    char *pt; /* plaintext received, not yet a whole frame */
    size_t pt_len;
    bool closed;
};

/* A TCP connection to the control plane from src (127.0.0.x), or -errno. */
static int tcp_from(const char *src)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    inet_pton(AF_INET, src, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;

        close(fd);
        return -e;
    }
    sa.sin_port = htons((uint16_t)cp_port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;

        close(fd);
        return -e;
    }
    return fd;
}

/* Connects from src and sets up TLS presenting cert (cert.pem, cert.key; NULL: none). */
static void tc_open(struct tc *t, const char *src, const char *cert)
{
    struct tg_tls_settings s = {.max_chain_depth = 4};
    char err[TG_ERRLEN] = "", certf[64], keyf[64];

    memset(t, 0, sizeof(*t));
    t->fd = tcp_from(src);
    ck_assert_msg(t->fd >= 0, "connect from %s: %s", src, strerror(-t->fd));
    tg_pool_init(&t->pool, 64 * 1024, 2);
    if (cert != NULL) {
        struct tg_identity_files f = {.cert = certf, .key = keyf, .bundle = "ca.pem"};

        snprintf(certf, sizeof(certf), "%s.pem", cert);
        snprintf(keyf, sizeof(keyf), "%s.key", cert);
        ck_assert_msg(tg_identity_load(&f, &t->id, err) == 0, "%s: %s", cert, err);
    }
    ck_assert_msg(tg_tls_ctx_new_cp(t->id, ca_pem, ca_len, &s, &t->ctx, err) == 0, "%s", err);
    ck_assert_int_eq(tg_tls_new(t->ctx, &t->pool, &cp_rule, &t->tls), 0);
}

static void tc_close(struct tc *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    tg_tls_free(t->tls);
    t->tls = NULL;
    tg_tls_ctx_free(t->ctx);
    t->ctx = NULL;
    tg_identity_free(t->id);
    t->id = NULL;
    tg_pool_cleanup(&t->pool);
    free(t->pt);
    t->pt = NULL;
}

/* Sends what TLS queued. False once the peer is gone. */
static bool tc_flush(struct tc *t)
{
    struct tg_buf *out = tg_tls_cipher_out(t->tls);

    while (tg_buf_len(out) > 0) {
        ssize_t n = send(t->fd, tg_buf_data(out), tg_buf_len(out), MSG_NOSIGNAL);

        if (n <= 0)
            return false;
        tg_buf_consume(out, (size_t)n);
    }
    tg_buf_release(out, &t->pool);
    return true;
}

/* Reads what arrives within ms into TLS. 1 bytes, 0 EOF, -1 nothing in time or an error. */
static int tc_fill(struct tc *t, int ms)
{
    struct tg_buf *in = tg_tls_cipher_in(t->tls);
    struct pollfd p = {t->fd, POLLIN, 0};
    ssize_t n;

    if (tg_buf_reserve(in, &t->pool, true) < 0 || tg_buf_room(in) == 0)
        return -1;
    if (poll(&p, 1, ms) <= 0)
        return -1;
    n = recv(t->fd, tg_buf_tail(in), tg_buf_room(in), 0);
    if (n < 0)
        return errno == ECONNRESET ? 0 : -1;
    if (n == 0) {
        tg_tls_set_eof(t->tls);
        t->closed = true;
        return 0;
    }
    tg_buf_commit(in, (size_t)n);
    return 1;
}

/* 0 when the handshake is done, else the adapter's code (TG_EAGAIN: nothing within ms). */
static int tc_handshake(struct tc *t, int ms)
{
    uint64_t end = it_now_ms() + (uint64_t)ms;

    for (;;) {
        int rc = tg_tls_handshake(t->tls);

        tc_flush(t);
        if (rc != TG_EAGAIN)
            return rc;
        if (it_now_ms() >= end || (tc_fill(t, (int)(end - it_now_ms())) == 0 && t->closed &&
                                   tg_buf_len(tg_tls_cipher_in(t->tls)) == 0 &&
                                   (rc = tg_tls_handshake(t->tls)) != TG_EAGAIN))
            return rc;
    }
}

/* Encrypts and sends len bytes. False once the peer is gone. */
static bool tc_write(struct tc *t, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        size_t n = len < 16384 ? len : 16384;
        struct tg_buf *out = tg_tls_cipher_out(t->tls);

        if (tg_buf_reserve(out, &t->pool, true) < 0 || tg_buf_room(out) < tg_tls_write_room(n))
            return false;
        if (tg_tls_write(t->tls, p, n) < 0 || !tc_flush(t))
            return false;
        p += n;
        len -= n;
    }
    return true;
}

static bool tc_send(struct tc *t, const Tollgate__V1__ClientMessage *m)
{
    size_t len = tollgate__v1__client_message__get_packed_size(m);
    uint8_t *buf = malloc(TG_FRAME_HDR + len + 1);
    char err[TG_ERRLEN];
    bool ok;

    ck_assert(buf != NULL);
    ck_assert_int_eq(tg_frame_header(len, TG_FRAME_MAX, buf, err), 0);
    tollgate__v1__client_message__pack(m, buf + TG_FRAME_HDR);
    ok = tc_write(t, buf, TG_FRAME_HDR + len);
    free(buf);
    return ok;
}

static bool tc_hello(struct tc *t, const char *token)
{
    Tollgate__V1__ClientMessage m = TOLLGATE__V1__CLIENT_MESSAGE__INIT;
    Tollgate__V1__Hello h = TOLLGATE__V1__HELLO__INIT;
    char node_id[] = "adversary", version[] = "test";

    h.node_id = node_id;
    h.version = version;
    if (token != NULL)
        h.token = tg_unconst(token);
    m.msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_HELLO;
    m.hello = &h;
    return tc_send(t, &m);
}

static bool tc_csr(struct tc *t, uint64_t request_id)
{
    Tollgate__V1__ClientMessage m = TOLLGATE__V1__CLIENT_MESSAGE__INIT;
    Tollgate__V1__CsrRequest r = TOLLGATE__V1__CSR_REQUEST__INIT;
    struct tg_identity_key *k = NULL;
    unsigned char *der = NULL;
    size_t len = 0;
    char err[TG_ERRLEN];
    bool ok;

    ck_assert_msg(tg_identity_keygen(&k, err) == 0, "%s", err);
    ck_assert_msg(tg_identity_csr(k, NULL, &der, &len, err) == 0, "%s", err);
    r.request_id = request_id;
    r.csr_der = (ProtobufCBinaryData){len, der};
    m.msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_CSR;
    m.csr = &r;
    ok = tc_send(t, &m);
    free(der);
    tg_identity_key_free(k);
    return ok;
}

/* The next message from the control plane within ms: 1 with *out (free it), 0 when the stream
 * ended, -1 when nothing came in time. */
static int tc_recv(struct tc *t, int ms, Tollgate__V1__ServerMessage **out)
{
    uint64_t end = it_now_ms() + (uint64_t)ms;
    char buf[16384];

    for (;;) {
        int n;

        if (t->pt_len >= TG_FRAME_HDR) {
            const unsigned char *h = (const unsigned char *)t->pt;
            size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];

            if (t->pt_len >= TG_FRAME_HDR + len) {
                *out = tollgate__v1__server_message__unpack(NULL, len,
                                                            (const uint8_t *)t->pt + TG_FRAME_HDR);
                ck_assert_msg(*out != NULL, "a message from the control plane does not decode");
                t->pt_len -= TG_FRAME_HDR + len;
                memmove(t->pt, t->pt + TG_FRAME_HDR + len, t->pt_len);
                return 1;
            }
        }
        n = tg_tls_read(t->tls, buf, sizeof(buf));
        if (n > 0) {
            char *grown = realloc(t->pt, t->pt_len + (size_t)n);

            ck_assert(grown != NULL);
            t->pt = grown;
            memcpy(t->pt + t->pt_len, buf, (size_t)n);
            t->pt_len += (size_t)n;
            continue;
        }
        if (n != TG_EAGAIN)
            return 0;
        tc_flush(t);
        if (it_now_ms() >= end)
            return -1;
        if (tc_fill(t, (int)(end - it_now_ms())) < 0 && it_now_ms() >= end)
            return -1;
    }
}

enum outcome { GOT_CERT, GOT_CSR_ERROR, GOT_CLOSE, ENDED, NOTHING };

/* Reads until the answer to a CSR, a Close, the end, or ms; the Close reason into why. */
static enum outcome tc_csr_answer(struct tc *t, int ms, char *why, size_t cap)
{
    uint64_t end = it_now_ms() + (uint64_t)ms;
    Tollgate__V1__ServerMessage *m;

    snprintf(why, cap, "%s", "");
    while (it_now_ms() < end) {
        int rc = tc_recv(t, (int)(end - it_now_ms()), &m);
        enum outcome o = NOTHING;

        if (rc == 0)
            return ENDED;
        if (rc < 0)
            return NOTHING;
        if (m->msg_case == TOLLGATE__V1__SERVER_MESSAGE__MSG_CLOSE) {
            snprintf(why, cap, "%s", m->close->reason);
            o = GOT_CLOSE;
        } else if (m->msg_case == TOLLGATE__V1__SERVER_MESSAGE__MSG_CSR) {
            o = m->csr->result_case == TOLLGATE__V1__CSR_RESPONSE__RESULT_CHAIN_PEM ? GOT_CERT
                                                                                    : GOT_CSR_ERROR;
            if (o == GOT_CSR_ERROR)
                snprintf(why, cap, "%s", m->csr->error);
        }
        tollgate__v1__server_message__free_unpacked(m, NULL);
        if (o != NOTHING)
            return o;
    }
    return NOTHING;
}

/* A new stream presenting CERT.pem that asks for a certificate (CSR request id): the answer,
 * or ENDED when the handshake, the Hello or the CSR failed. Closes the stream. */
static enum outcome tc_new_stream_csr(const char *cert, uint64_t id, char *why, size_t cap)
{
    struct tc t;
    enum outcome o = ENDED;

    tc_open(&t, "127.0.0.1", cert);
    if (tc_handshake(&t, 5000) == 0 && tc_hello(&t, NULL) && tc_csr(&t, id))
        o = tc_csr_answer(&t, 5000, why, cap);
    tc_close(&t);
    return o;
}

/* Waits for the first push after Hello: the stream was accepted. */
static bool tc_accepted(struct tc *t, int ms)
{
    Tollgate__V1__ServerMessage *m = NULL;
    bool pushed;

    if (tc_recv(t, ms, &m) != 1)
        return false;
    pushed = m->msg_case == TOLLGATE__V1__SERVER_MESSAGE__MSG_PUSH;
    tollgate__v1__server_message__free_unpacked(m, NULL);
    return pushed;
}

static const char *outcome_name(enum outcome o)
{
    static const char *const names[] = {"a certificate", "a CSR error", "Close", "the end",
                                        "nothing"};

    return names[o];
}

/* ---- item 2: revocation by CRL ---- */

/* A stolen key and its certificate, which a CRL the control plane publishes lists: refused, nothing
 * issued, whether the CRL came before the stream or after it. */
START_TEST(test_crl_revoked_certificate_gets_no_new_one)
{
    static const char *const first[] = {"5A5A0001"};
    static const char *const both[] = {"5A5A0001", "5A5A0002"};
    struct tc tok, live, brief;
    char why[TG_ERRLEN];
    enum outcome o;

    it_certs("issue", "--ca", "ca", "--out", "stolen", "--spiffe", IT_WEB_ID, "--serial",
             "5A5A0001", NULL);
    it_certs("issue", "--ca", "ca", "--out", "live", "--spiffe", IT_API_ID, "--serial", "5A5A0002",
             NULL);
    it_certs("issue", "--ca", "ca", "--out", "brief", "--spiffe", DB_ID, "--valid-for", "4s", NULL);
    make_crl(first, 1);
    it_write_file("mesh.yaml", "%s",
                  "authorization: {default: allow}\nrevocations: {crls: [crl.pem]}\n");
    write_cp(3600, "");
    start_cp();

    /* the CA works: a bootstrap token gets a certificate */
    tc_open(&tok, "127.0.0.1", NULL);
    ck_assert_int_eq(tc_handshake(&tok, 5000), 0);
    ck_assert(tc_hello(&tok, TOKEN) && tc_csr(&tok, 1));
    o = tc_csr_answer(&tok, 5000, why, sizeof(why));
    ck_assert_msg(o == GOT_CERT, "a bootstrap token got %s: %s", outcome_name(o), why);
    tc_close(&tok);

    /* two streams by certificates nobody has revoked yet */
    tc_open(&live, "127.0.0.1", "live");
    tc_open(&brief, "127.0.0.1", "brief");
    ck_assert_int_eq(tc_handshake(&live, 5000), 0);
    ck_assert_int_eq(tc_handshake(&brief, 5000), 0);
    ck_assert(tc_hello(&live, NULL) && tc_hello(&brief, NULL));
    ck_assert_msg(tc_accepted(&live, 5000) && tc_accepted(&brief, 5000),
                  "certificates nobody revoked were refused");

    /* the stolen key: its certificate is on the published CRL */
    o = tc_new_stream_csr("stolen", 2, why, sizeof(why));
    ck_assert_msg(o != GOT_CERT, "a certificate revoked by CRL was issued a fresh one");

    /* live's certificate revoked by a new CRL while its stream is open: its CSR gets nothing */
    make_crl(both, 2);
    ck_assert_msg(it_wait_lines("cp.err", 1, 10000, "reloaded", NULL) >= 1,
                  "the new CRL was not loaded");
    ck_assert(tc_csr(&live, 3));
    o = tc_csr_answer(&live, 5000, why, sizeof(why));
    ck_assert_msg(o != GOT_CERT, "a stream whose certificate a new CRL lists got a certificate");
    tc_close(&live);
    o = tc_new_stream_csr("live", 4, why, sizeof(why));
    ck_assert_msg(o != GOT_CERT, "a reconnect with a certificate revoked by CRL got a new one");

    /* brief's certificate expired while its stream was open: its CSR gets nothing
     * */
    while (tg_identity_now() <= brief.id->leaf.not_after)
        it_sleep_ms(100);
    ck_assert(tc_csr(&brief, 5));
    o = tc_csr_answer(&brief, 5000, why, sizeof(why));
    ck_assert_msg(o != GOT_CERT, "a stream whose certificate expired got a new one");
    tc_close(&brief);

    ck_assert_msg(it_wait_lines("cp.err", 2, 5000, "TLS handshake", "revoked", NULL) >= 2,
                  "the refusals in the handshake do not say revoked");
    ck_assert_msg(it_wait_lines("cp.err", 1, 5000, "expired", "reconnect", NULL) >= 1,
                  "the expired certificate's refusal does not say so");
    ck_assert_msg(cp_stat("tollgate_cp_certs_issued_total", "") == 1,
                  "%.0f certificates issued, want 1 (the token's)",
                  cp_stat("tollgate_cp_certs_issued_total", ""));
}
END_TEST

/* ---- item 4: before authentication ---- */

/* A frame header for a ClientMessage{hello: Hello{labels: n empty entries}} and the body's first
 * bytes: *hdr_len bytes in hdr, then 2 * n bytes of 0x22 0x00.
 * */
static size_t hello_of_labels(size_t n, unsigned char *hdr)
{
    size_t inner = 2 * n, i = 0, total;
    unsigned char varint[10];
    size_t vl = 0, v = inner;

    do {
        varint[vl++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v > 0);
    total = 1 + vl + inner;
    hdr[i++] = (unsigned char)(total >> 24);
    hdr[i++] = (unsigned char)(total >> 16);
    hdr[i++] = (unsigned char)(total >> 8);
    hdr[i++] = (unsigned char)total;
    hdr[i++] = 0x0a; /* ClientMessage.hello */
    memcpy(hdr + i, varint, vl);
    return i + vl;
}

START_TEST(test_huge_hello_before_authentication_is_refused_early)
{
    unsigned char hdr[16];
    size_t n = (TG_FRAME_MAX - 16) / 2, hl = hello_of_labels(n, hdr), sent = 0;
    char *chunk = malloc(65536), why[TG_ERRLEN], big_token[8193];
    struct tc t;
    long peak0, peak1;
    enum outcome o;

    ck_assert(chunk != NULL);
    for (size_t i = 0; i < 65536; i += 2) {
        chunk[i] = 0x22; /* Hello.labels, an empty map entry */
        chunk[i + 1] = 0x00;
    }
    write_cp(3600, "");
    start_cp();
    peak0 = cp_peak_kib();

    tc_open(&t, "127.0.0.1", NULL);
    ck_assert_int_eq(tc_handshake(&t, 5000), 0);
    if (tc_write(&t, hdr, hl)) {
        while (sent < 2 * n) {
            size_t k = 2 * n - sent < 65536 ? 2 * n - sent : 65536;

            if (!tc_write(&t, chunk, k))
                break;
            sent += k;
        }
    }
    o = tc_csr_answer(&t, 10000, why, sizeof(why));
    tc_close(&t);
    peak1 = cp_peak_kib();
    fprintf(stderr,
            "big hello: %zu of %zu bytes sent, then %s (%s); peak RSS %ld -> %ld "
            "KiB\n",
            sent, 2 * n, outcome_name(o), why, peak0, peak1);
    ck_assert_msg(o == ENDED || o == GOT_CLOSE, "the stream was not ended: %s", outcome_name(o));
    ck_assert_msg(peak1 - peak0 < 8 * 1024, "a 4 MiB Hello before authentication took %ld KiB",
                  peak1 - peak0);
    ck_assert_msg(it_wait_lines("cp.err", 1, 5000, "over the limit", NULL) >= 1,
                  "the refusal does not say why");

    /* a Hello of a real size: an 8 KiB token (JWT-shaped, not valid) is read, and refused for what
     * it is */
    memset(big_token, 'x', sizeof(big_token) - 1);
    memcpy(big_token, "eyJhbGciOiJSUzI1NiJ9.", 21);
    big_token[sizeof(big_token) - 10] = '.';
    big_token[sizeof(big_token) - 1] = '\0';
    tc_open(&t, "127.0.0.1", NULL);
    ck_assert_int_eq(tc_handshake(&t, 5000), 0);
    ck_assert(tc_hello(&t, big_token));
    o = tc_csr_answer(&t, 5000, why, sizeof(why));
    ck_assert_msg(o == GOT_CLOSE && strstr(why, "token") != NULL,
                  "an 8 KiB token got %s: %s (want Close for the token)", outcome_name(o), why);
    tc_close(&t);

    /* a Hello within the frame limit but all empty map entries: not decoded into thousands of
     * structs before authentication */
    n = (16 * 1024 - 8) / 2;
    hl = hello_of_labels(n, hdr);
    tc_open(&t, "127.0.0.1", NULL);
    ck_assert_int_eq(tc_handshake(&t, 5000), 0);
    ck_assert(tc_write(&t, hdr, hl) && tc_write(&t, chunk, 2 * n));
    o = tc_csr_answer(&t, 5000, why, sizeof(why));
    ck_assert_msg(o == GOT_CLOSE && strstr(why, "does not decode") != NULL,
                  "a Hello of %zu empty labels got %s: %s (want Close: does not decode)", n,
                  outcome_name(o), why);
    tc_close(&t);
    free(chunk);
}
END_TEST

/* ---- the flood ---- */

enum flood_kind { SILENT, PARTIAL_RECORD, HALF_HELLO };

struct slot {
    enum flood_kind kind;
    char src[16];
    struct tc t;
    bool open, tls;
};

/* A TLS record header announcing 16 KiB of ClientHello, and a little of it. */
static const unsigned char partial_record[] = {0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00,
                                               0x3f, 0xfc, 0x03, 0x03, 0x11, 0x22, 0x33};

static void slot_open(struct slot *s)
{
    s->tls = false;
    if (s->kind == HALF_HELLO) {
        static const unsigned char half[] = {0x00, 0x00, 0x08, 0x00, 0x0a, 0x80};

        tc_open(&s->t, s->src, NULL);
        s->tls = true;
        if (tc_handshake(&s->t, 3000) == 0)
            tc_write(&s->t, half, sizeof(half)); /* a Hello frame of 2 KiB, 2 bytes of it */
    } else {
        memset(&s->t, 0, sizeof(s->t));
        s->t.fd = tcp_from(s->src);
        ck_assert_msg(s->t.fd >= 0, "connect from %s: %s", s->src, strerror(-s->t.fd));
        if (s->kind == PARTIAL_RECORD)
            (void)!send(s->t.fd, partial_record, sizeof(partial_record), MSG_NOSIGNAL);
    }
    s->open = true;
}

static void slot_close(struct slot *s)
{
    if (!s->open)
        return;
    if (s->tls) {
        tc_close(&s->t);
    } else {
        close(s->t.fd);
        s->t.fd = -1;
    }
    s->open = false;
}

/* Whether the control plane closed the slot's connection. */
static bool slot_ended(struct slot *s)
{
    struct pollfd p = {s->t.fd, POLLIN, 0};
    char buf[4096];

    if (poll(&p, 1, 0) <= 0)
        return false;
    for (;;) {
        ssize_t n = recv(s->t.fd, buf, sizeof(buf), MSG_DONTWAIT);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return true;
        if (n < 0)
            return false;
    }
}

#define N_SLOTS 24

START_TEST(test_flood_past_the_caps_while_a_sidecar_bootstraps_and_renews)
{
    struct slot slots[N_SLOTS];
    int sc_admin = it_free_port(), refills = 0;
    double certs = 0;
    uint64_t end;
    long peak0, peak1;
    bool renewed = false;

    write_cp(4, "limits:\n"
                "  max_connections: 64\n"
                "  max_unauthenticated: 12\n"
                "  max_unauthenticated_per_address: 3\n"
                "timeouts: {handshake: 5s, hello: 5s}\n");
    start_cp();
    peak0 = cp_peak_kib();
    /* 8 silent ones from 127.0.0.2 (3 admitted), 4 of every kind from each of 127.0.0.3 ..
     * 127.0.0.6 (3 admitted from each): 15 admitted for 12 places */
    for (int i = 0; i < N_SLOTS; i++) {
        struct slot *s = &slots[i];

        memset(s, 0, sizeof(*s));
        s->kind = i < 8 ? SILENT : i % 3 == 0 ? HALF_HELLO : i % 3 == 1 ? PARTIAL_RECORD : SILENT;
        snprintf(s->src, sizeof(s->src), "127.0.0.%d", i < 8 ? 2 : 3 + (i - 8) / 4);
        slot_open(s);
    }
    ck_assert_msg(it_wait_stat(cp_admin, "tollgate_cp_connections_refused_total",
                               "reason=\"per_address\"", 5, 5000) >= 5,
                  "connections over the per-address cap were not refused");

    it_write_file("sc.token", TOKEN "\n");
    it_cfg_write("sc.yaml",
                 &(struct it_cfg){.admin = sc_admin,
                                  .workers = 1,
                                  .cp_port = cp_port,
                                  .cp_token = "sc.token",
                                  .cp_node = "sc",
                                  .cp_renew = 0.5,
                                  .in = {{"in", it_free_port(), it_free_port()}}},
                 NULL);
    it_sidecar_start("sc", "sc.yaml", sc_admin, 0);

    /* keep the flood up: every connection the control plane ends is opened again
     * */
    end = it_now_ms() + 9000;
    while (it_now_ms() < end && !renewed) {
        for (int i = 0; i < N_SLOTS; i++) {
            if (slot_ended(&slots[i])) {
                slot_close(&slots[i]);
                slot_open(&slots[i]);
                refills++;
            }
        }
        certs = it_stat(sc_admin, "tollgate_cp_certs_accepted_total", "");
        renewed = certs >= 3;
        it_sleep_ms(50);
    }
    peak1 = cp_peak_kib();
    fprintf(stderr,
            "flood: %d refills; refused: %.0f per address, %.0f evicted, %.0f "
            "max_connections, "
            "%.0f hello timeouts, %.0f handshake timeouts; sidecar certificates "
            "%.0f; peak RSS "
            "%ld -> %ld KiB\n",
            refills, cp_stat("tollgate_cp_connections_refused_total", "reason=\"per_address\""),
            cp_stat("tollgate_cp_connections_refused_total", "reason=\"evicted\""),
            cp_stat("tollgate_cp_connections_refused_total", "reason=\"max_connections\""),
            cp_stat("tollgate_cp_connections_refused_total", "reason=\"hello_timeout\""),
            cp_stat("tollgate_cp_connections_refused_total", "reason=\"handshake_timeout\""), certs,
            peak0, peak1);
    ck_assert_msg(renewed, "the sidecar got %.0f certificates under the flood (want 3)", certs);
    ck_assert_msg(cp_stat("tollgate_cp_connections_refused_total", "reason=\"evicted\"") >= 1,
                  "nothing was refused over max_unauthenticated");
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps what the churn frees */
    ck_assert_msg(peak1 - peak0 < 16 * 1024, "the flood took %ld KiB", peak1 - peak0);
#endif
    ck_assert_msg(cp_stat("tollgate_cp_unauthenticated_open", "") <= 12,
                  "%.0f unauthenticated streams open, cap 12",
                  cp_stat("tollgate_cp_unauthenticated_open", ""));
    for (int i = 0; i < N_SLOTS; i++)
        slot_close(&slots[i]);
}
END_TEST

/* ---- deadlines ---- */

/* Seconds until the control plane ends fd's connection (reading and dropping what it sends), or -1
 * when it is still open after ms. */
static double seconds_to_close(int fd, int ms)
{
    uint64_t t0 = it_now_ms(), end = t0 + (uint64_t)ms;
    char buf[4096];

    while (it_now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};

        if (poll(&p, 1, (int)(end - it_now_ms())) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);

        if (n <= 0)
            return (double)(it_now_ms() - t0) / 1000;
    }
    return -1;
}

START_TEST(test_deadlines_for_the_handshake_and_the_first_message)
{
    struct tc silent_tls, half_tls;
    int silent, partial;
    double s1, s2, s3, s4;
    static const unsigned char half[] = {0x00, 0x00, 0x00, 0x40, 0x0a};

    write_cp(3600, "timeouts: {handshake: 1s, hello: 1s}\n");
    start_cp();
    silent = tcp_from("127.0.0.1");
    partial = tcp_from("127.0.0.1");
    ck_assert(silent >= 0 && partial >= 0);
    ck_assert(send(partial, partial_record, sizeof(partial_record), MSG_NOSIGNAL) > 0);
    tc_open(&silent_tls, "127.0.0.1", NULL);
    tc_open(&half_tls, "127.0.0.1", NULL);
    ck_assert_int_eq(tc_handshake(&silent_tls, 5000), 0);
    ck_assert_int_eq(tc_handshake(&half_tls, 5000), 0);
    ck_assert(tc_write(&half_tls, half, sizeof(half))); /* a Hello of 64 bytes, 1 of them */

    s1 = seconds_to_close(silent, 4000);
    s2 = seconds_to_close(partial, 4000);
    s3 = seconds_to_close(silent_tls.fd, 4000);
    s4 = seconds_to_close(half_tls.fd, 4000);
    fprintf(stderr,
            "deadlines: silent %.1f s, partial ClientHello %.1f s, no Hello %.1f "
            "s, half "
            "a Hello %.1f s\n",
            s1, s2, s3, s4);
    ck_assert_msg(s1 >= 0, "a connection that sends nothing was not closed at the deadline");
    ck_assert_msg(s2 >= 0, "a half-sent ClientHello was not closed at the deadline");
    ck_assert_msg(s3 >= 0, "a stream that sends no message was not closed at the deadline");
    ck_assert_msg(s4 >= 0, "a stream that half-sends its Hello was not closed at the deadline");
    ck_assert(cp_stat("tollgate_cp_connections_refused_total", "reason=\"handshake_timeout\"") >=
              2);
    ck_assert(cp_stat("tollgate_cp_connections_refused_total", "reason=\"hello_timeout\"") >= 2);
    close(silent);
    close(partial);
    tc_close(&silent_tls);
    tc_close(&half_tls);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("adversarial_cp", "front door", NULL, setup, it_teardown, 60,
                         test_crl_revoked_certificate_gets_no_new_one,
                         test_huge_hello_before_authentication_is_refused_early,
                         test_flood_past_the_caps_while_a_sidecar_bootstraps_and_renews,
                         test_deadlines_for_the_handshake_and_the_first_message);
}

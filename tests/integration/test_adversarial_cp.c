/* The control plane's front door, tried as an attacker would (issue 12), against a real
 * tollgate-cp on loopback:
 *
 * crl: a stolen key whose certificate a CRL the control plane publishes lists connects with
 * it and asks for a fresh certificate: refused, nothing issued; a stream opened before its
 * certificate was revoked by CRL, or before it expired, gets no certificate at its next CSR.
 * A bootstrap token still gets one (the CA works).
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

#define CP_ID "spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp"
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
    it_replace_file("cp.yaml",
                    "listen: 127.0.0.1:%d\n"
                    "admin: 127.0.0.1:%d\n"
                    "trust_domain: mesh.local\n"
                    "server: {cert: cp.pem, key: cp.key}\n"
                    "ca: {cert: ca.pem, key: ca.key}\n"
                    "cert_ttl: %ds\n"
                    "tokens: tokens.txt\n"
                    "mesh: [mesh.yaml]\n"
                    "log_level: info\n"
                    "%s",
                    cp_port, cp_admin, ttl_s, extra);
}

static void start_cp(void)
{
    const char *argv[] = {it_env("TG_CP_BIN"), "run", "-c", "cp.yaml", NULL};

    cp = it_spawn("cp", argv, IT_STDIN_NULL);
    ck_assert_msg(it_wait_http(cp_admin, "/healthz", 200, 10000), "tollgate-cp did not start");
}

static double cp_stat(const char *name, const char *labels)
{
    return it_stat(cp_admin, name, labels);
}

/* A CRL by `openssl ca` under ca revoking the serials (upper-case hex, even length), into
 * crl.pem, replaced in one step. */
static void make_crl(const char *const *serials, size_t n)
{
    char cmd[1024], *out = NULL, *err = NULL, index[1024] = "";
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};

    it_write_file("ca.cnf", "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\n"
                            "crlnumber = crlnumber\ndefault_md = sha256\npolicy = p\n[p]\n");
    if (!it_file_contains("crlnumber", "0"))
        it_write_file("crlnumber", "01\n");
    for (size_t i = 0; i < n; i++)
        snprintf(index + strlen(index), sizeof(index) - strlen(index),
                 "R\t301231235959Z\t240101000000Z\t%s\tunknown\t/CN=x%zu\n", serials[i], i);
    it_write_file("index.txt", "%s", index);
    snprintf(cmd, sizeof(cmd),
             "'%s' ca -config ca.cnf -batch -keyfile ca.key -cert ca.pem -gencrl -crlhours 1 "
             "-out crl.new && mv crl.new crl.pem",
             it_openssl());
    ck_assert_msg(it_run(argv, NULL, 15000, &out, &err) == 0, "openssl ca -gencrl: %s", err);
    free(out);
    free(err);
}

static void setup(void)
{
    it_setup();
    it_certs("ca", "--out", "ca", "--cn", "adversarial cp CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", CP_ID, NULL);
    cp_port = it_free_port();
    cp_admin = it_free_port();
    it_write_file("tokens.txt", TOKEN " default web\n");
    it_write_file("mesh.yaml", "%s", "authorization: {default_deny: false}\n");
    ca_pem = it_read_file("ca.pem", &ca_len);
    ck_assert(ca_pem != NULL);
    ck_assert_int_eq(tg_tls_init(), 0);
}

static void teardown(void)
{
    it_teardown();
}

/* ---- a client over a blocking socket, with the project's TLS adapter ---- */

static char *cp_ids_v[] = {CP_ID};
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
        struct tg_identity_files f = {certf, keyf, "ca.pem", NULL};

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

    h.node_id = "adversary";
    h.version = "test";
    if (token != NULL)
        h.token = (char *)token;
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

/* The next message from the control plane within ms: 1 with *out (free it), 0 when the
 * stream ended, -1 when nothing came in time. */
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

/* A stolen key and its certificate, which a CRL the control plane publishes lists: refused,
 * nothing issued, whether the CRL came before the stream or after it. */
START_TEST(test_crl_revoked_certificate_gets_no_new_one)
{
    static const char *const first[] = {"5A5A0001"};
    static const char *const both[] = {"5A5A0001", "5A5A0002"};
    struct tc tok, live, brief, stolen, again;
    char why[TG_ERRLEN];
    enum outcome o;
    int rc;

    it_certs("issue", "--ca", "ca", "--out", "stolen", "--spiffe", IT_WEB_ID, "--serial",
             "5A5A0001", NULL);
    it_certs("issue", "--ca", "ca", "--out", "live", "--spiffe", IT_API_ID, "--serial", "5A5A0002",
             NULL);
    it_certs("issue", "--ca", "ca", "--out", "brief", "--spiffe", DB_ID, "--seconds", "4", NULL);
    make_crl(first, 1);
    it_write_file("mesh.yaml", "%s",
                  "authorization: {default_deny: false}\nrevocations: {crls: [crl.pem]}\n");
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
    tc_open(&stolen, "127.0.0.1", "stolen");
    rc = tc_handshake(&stolen, 5000);
    if (rc == 0 && tc_hello(&stolen, NULL) && tc_csr(&stolen, 2))
        o = tc_csr_answer(&stolen, 5000, why, sizeof(why));
    else
        o = ENDED;
    ck_assert_msg(o != GOT_CERT, "a certificate revoked by CRL was issued a fresh one");
    tc_close(&stolen);

    /* live's certificate revoked by a new CRL while its stream is open: its CSR gets nothing */
    make_crl(both, 2);
    ck_assert_msg(it_wait_lines("cp.err", 1, 10000, "reloaded", NULL) >= 1,
                  "the new CRL was not loaded");
    ck_assert(tc_csr(&live, 3));
    o = tc_csr_answer(&live, 5000, why, sizeof(why));
    ck_assert_msg(o != GOT_CERT, "a stream whose certificate a new CRL lists got a certificate");
    tc_close(&live);
    tc_open(&again, "127.0.0.1", "live");
    rc = tc_handshake(&again, 5000);
    if (rc == 0 && tc_hello(&again, NULL) && tc_csr(&again, 4))
        o = tc_csr_answer(&again, 5000, why, sizeof(why));
    else
        o = ENDED;
    ck_assert_msg(o != GOT_CERT, "a reconnect with a certificate revoked by CRL got a new one");
    tc_close(&again);

    /* brief's certificate expired while its stream was open: its CSR gets nothing */
    while (tg_identity_now() <= brief.id->leaf.not_after)
        it_sleep_ms(100);
    ck_assert(tc_csr(&brief, 5));
    o = tc_csr_answer(&brief, 5000, why, sizeof(why));
    ck_assert_msg(o != GOT_CERT, "a stream whose certificate expired got a new one");
    tc_close(&brief);

    ck_assert_msg(it_count_lines("cp.err", "TLS handshake", "revoked", NULL) >= 2,
                  "the refusals in the handshake do not say revoked");
    ck_assert_msg(it_count_lines("cp.err", "expired", "reconnect", NULL) >= 1,
                  "the expired certificate's refusal does not say so");
    ck_assert_msg(cp_stat("tollgate_cp_certs_issued_total", "") == 1,
                  "%.0f certificates issued, want 1 (the token's)",
                  cp_stat("tollgate_cp_certs_issued_total", ""));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("adversarial_cp");
    TCase *tc = tcase_create("front door");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_crl_revoked_certificate_gets_no_new_one);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

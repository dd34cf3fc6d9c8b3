/* Adversarial: log injection (issue 12, item 9). Every string an outsider controls is sent
 * with control characters and a forged log line in it, and every log the processes write
 * must still hold one event per line, each line of the format it claims:
 *
 * - tollgate-cp (log_level debug), by a raw stream client built here on tollgate's own
 *   msgstream (TLS 1.3 and framing) and protobuf messages: Hello.node_id, .namespace,
 *   .service_account, .version and .token (a bootstrap token, and a service-account JWT whose
 *   header is read before any signature), a Nack's nonce and error, an Ack's nonce, and a CSR
 *   whose subject is the forged line. Its stderr is checked, and the exact escaped (and,
 *   where the line quotes it, quoted) form of a node_id and a namespace claim.
 * - a sidecar (log_level debug, access log on): an mTLS port reached by `openssl s_client`
 *   with a forged SNI and ALPN and a client certificate (signed by the mesh CA) whose CN and
 *   URI SAN carry the forged line; a permissive TCP port sent a PROXY line and a forged line
 *   in plain text; a permissive protocol: http port sent requests whose method, target and
 *   a header carry what HTTP lets through (quotes and a backslash in the target; C1
 *   controls, a bidi override and bytes that are not UTF-8 in the header: a Host with them
 *   is refused as invalid before anything logs it); and /config_dump with a trust bundle
 *   whose extra root's CN holds an escape, a C1 control, DEL, a bidi override and a
 *   character cut by the 64-byte CN field. Its stderr (text), stdout (JSON access log) and
 *   the /config_dump body are checked.
 *
 * The check (python3, `checker` below): every line valid UTF-8 with no raw control byte, no
 * C1 control, no line or paragraph separator and no bidi control; a text line starts with
 * "YYYY-MM-DDTHH:MM:SS.mmmZ level " and never with the forged time stamp; a JSON line is one
 * JSON object. And each field that the process does log must be found in its log (so the
 * attack reached the sink; a field that is never logged is still sent). */
#include "harness.h"
#include "tollgate.pb-c.h"
#include "tollgate/msgstream.h"
#include "tollgate/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ISS "https://kubernetes.default.svc.cluster.local"
#define TOKEN "aaaaaaaaaaaaaaaaaaaaaaaa" /* tokens.txt: default/api */
#define FORGED_TS "1999-01-01T00:00:00.000Z"
/* what follows the forged line: a terminal escape, a C1 CSI, a right-to-left override, the
 * quotes and a backslash */
#define TAIL " \x1b[2J\xc2\x9b\xe2\x80\xae\"'\\ end"
#define FORGE(field) "x\r\n" FORGED_TS " error FORGED " field TAIL
#define RAW_DEADLINE_MS 5000

/* argv[1]: text or json; argv[2]: the file. Exit 0, or 1 with the first bad line. */
static const char checker[] =
    "import json, re, sys\n"
    "mode, path = sys.argv[1], sys.argv[2]\n"
    "data = open(path, 'rb').read()\n"
    "pre = re.compile(rb'\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z "
    "(debug|info|warn|error) ')\n"
    "odd = re.compile('[\\u0080-\\u009f\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e"
    "\\u2066-\\u2069]')\n"
    "def bad(i, line, why):\n"
    "    print('%s line %d: %s: %r' % (path, i, why, line[:300]))\n"
    "    sys.exit(1)\n"
    "if data and not data.endswith(b'\\n'):\n"
    "    bad(0, data[-100:], 'no newline at the end')\n"
    "lines = data.split(b'\\n')[:-1]\n"
    "for i, line in enumerate(lines, 1):\n"
    "    if re.search(rb'[\\x00-\\x1f\\x7f]', line): bad(i, line, 'raw control byte')\n"
    "    try: s = line.decode('utf-8')\n"
    "    except UnicodeDecodeError as e: bad(i, line, 'not UTF-8: %s' % e)\n"
    "    if odd.search(s): bad(i, line, 'C1 control, separator or bidi control')\n"
    "    if mode == 'text':\n"
    "        if not pre.match(line): bad(i, line, 'not a log line')\n"
    "        if line.startswith(b'" FORGED_TS "'): bad(i, line, 'forged line')\n"
    "    else:\n"
    "        try: v = json.loads(s)\n"
    "        except ValueError as e: bad(i, line, 'not JSON: %s' % e)\n"
    "        if not isinstance(v, dict): bad(i, line, 'not a JSON object')\n"
    "print('%d lines ok' % len(lines))\n";

static void expect_lines_hold(const char *mode, const char *file)
{
    const char *argv[] = {"/usr/bin/python3", "checker.py", mode, file, NULL};
    char *out = NULL, *err = NULL;
    int st;

    it_write_file("checker.py", "%s", checker);
    st = it_run(argv, NULL, 20000, &out, &err);
    ck_assert_msg(st == 0, "%s (%s): %s%s", file, mode, out ? out : "", err ? err : "");
    free(out);
    free(err);
}

static void expect_reached(const char *file, const char *marker)
{
    ck_assert_msg(it_file_contains(file, marker), "%s: \"%s\" never reached the log", file, marker);
}

static void openssl_ok(const char *const *args)
{
    const char *argv[32];
    char *err = NULL;
    size_t n = 0;
    int st;

    argv[n++] = it_openssl();
    for (; *args != NULL && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    st = it_run(argv, NULL, 30000, NULL, &err);
    ck_assert_msg(st == 0, "openssl %s exited %d: %s", argv[1], st, err ? err : "");
    free(err);
}

static void setup(void)
{
    it_setup();
    it_certs("ca", "--out", "ca", "--cn", "log test CA", NULL);
}

/* ---- a raw client of tollgate-cp --------------------------------------------------- */

struct raw {
    uv_loop_t loop;
    uv_timer_t deadline;
    struct tg_msgstream *ms;
    Tollgate__V1__ClientMessage **msgs;
    size_t n_msgs;
    bool wait_csr; /* close once the CSR is answered; else wait for the server to close */
    bool connected, closed, csr_answered;
    char reason[TG_ERRLEN];
};

static void raw_send(struct tg_msgstream *s, const Tollgate__V1__ClientMessage *m)
{
    size_t len = tollgate__v1__client_message__get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    char err[TG_ERRLEN];

    ck_assert_ptr_nonnull(buf);
    tollgate__v1__client_message__pack(m, buf);
    ck_assert_msg(tg_msgstream_send(s, buf, len, err) == 0, "send: %s", err);
    free(buf);
}

static void on_raw_connected(struct tg_msgstream *s)
{
    struct raw *r = tg_msgstream_data(s);

    r->connected = true;
    for (size_t i = 0; i < r->n_msgs; i++)
        raw_send(s, r->msgs[i]);
}

static void on_raw_frame(struct tg_msgstream *s, const char *frame, size_t len)
{
    struct raw *r = tg_msgstream_data(s);
    Tollgate__V1__ServerMessage *m =
        tollgate__v1__server_message__unpack(NULL, len, (const uint8_t *)frame);

    if (m != NULL && m->msg_case == TOLLGATE__V1__SERVER_MESSAGE__MSG_CSR) {
        r->csr_answered = true;
        if (r->wait_csr)
            tg_msgstream_close(s, true, "CSR answered");
    }
    tollgate__v1__server_message__free_unpacked(m, NULL);
}

static void on_raw_closed(struct tg_msgstream *s, const char *reason)
{
    struct raw *r = tg_msgstream_data(s);

    r->closed = true;
    r->ms = NULL;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    uv_timer_stop(&r->deadline);
}

static void on_raw_deadline(uv_timer_t *t)
{
    struct raw *r = t->data;

    if (r->ms != NULL)
        tg_msgstream_close(r->ms, false, "deadline");
}

/* One stream to 127.0.0.1:port that sends msgs in order; waits (bounded) for the CSR's
 * answer (wait_csr) or for the server to close the stream. */
static void raw_stream(int port, Tollgate__V1__ClientMessage **msgs, size_t n, bool wait_csr)
{
    static const struct tg_msgstream_ops ops = {on_raw_connected, on_raw_frame, on_raw_closed};
    char cp_id[] = IT_CP_ID, *ca = it_read_file("ca.pem", NULL), err[TG_ERRLEN] = "";
    char *ids_v[] = {cp_id};
    struct tg_strlist ids = {ids_v, 1};
    struct tg_tls_peer_rule rule = {&ids};
    struct tg_tls_settings set = {.max_chain_depth = 4};
    struct tg_tls_ctx *ctx = NULL;
    struct sockaddr_in addr;
    struct raw r = {.msgs = msgs, .n_msgs = n, .wait_csr = wait_csr};

    ck_assert_ptr_nonnull(ca);
    ck_assert_int_eq(tg_tls_init(), 0);
    ck_assert_msg(tg_tls_ctx_new_cp(NULL, ca, strlen(ca), &set, &ctx, err) == 0, "ctx: %s", err);
    ck_assert_int_eq(uv_loop_init(&r.loop), 0);
    uv_timer_init(&r.loop, &r.deadline);
    r.deadline.data = &r;
    uv_timer_start(&r.deadline, on_raw_deadline, RAW_DEADLINE_MS, 0);
    uv_ip4_addr("127.0.0.1", port, &addr);
    ck_assert_int_eq(tg_msgstream_connect(&r.loop, (const struct sockaddr *)&addr, ctx, &rule, NULL,
                                          &ops, &r, &r.ms),
                     0);
    while (!r.closed && uv_run(&r.loop, UV_RUN_ONCE) != 0)
        ;
    uv_close((uv_handle_t *)&r.deadline, NULL);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&r.loop), 0);
    tg_tls_ctx_free(ctx);
    free(ca);
    ck_assert_msg(r.connected, "no TLS to the control plane: %s", r.reason);
    ck_assert_msg(!wait_csr || r.csr_answered, "the CSR got no answer: %s", r.reason);
}

/* Hello with the given claims (NULL: empty). */
/* The head of a ClientMessage initialiser; the one message of its oneof follows. */
#define CLIENT_MESSAGE_INIT PROTOBUF_C_MESSAGE_INIT(&tollgate__v1__client_message__descriptor)

static void hello(Tollgate__V1__ClientMessage *m, Tollgate__V1__Hello *h, const char *token,
                  const char *node, const char *ns, const char *sa, const char *version)
{
    tollgate__v1__client_message__init(m);
    tollgate__v1__hello__init(h);
    h->token = tg_unconst(token);
    h->node_id = tg_unconst(node != NULL ? node : "");
    h->namespace_ = tg_unconst(ns != NULL ? ns : "");
    h->service_account = tg_unconst(sa != NULL ? sa : "");
    h->version = tg_unconst(version != NULL ? version : "");
    m->msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_HELLO;
    m->hello = h;
}

static void hello_only(int port, const char *token, const char *node, const char *ns,
                       const char *sa, const char *version)
{
    Tollgate__V1__ClientMessage m;
    Tollgate__V1__Hello h;
    Tollgate__V1__ClientMessage *msgs[] = {&m};

    hello(&m, &h, token, node, ns, sa, version);
    raw_stream(port, msgs, 1, false);
}

static void b64url(const char *in, char *out, size_t cap)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(in), o = 0;
    const unsigned char *s = (const unsigned char *)in;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);

        ck_assert(o + 5 < cap);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = tab[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    out[o] = '\0';
}

START_TEST(test_cp_logs_hold_against_forged_fields)
{
    int port = it_free_port();
    char header[256], jwt[512], *csr;
    size_t csr_len;
    struct it_proc *cp;

    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    {
        /* the service-account signing key (its public half is all the control plane needs),
         * and a CSR whose subject is the forged line (no '/' or '\\': -subj syntax) */
        const char *key[] = {"ecparam", "-name", "prime256v1", "-genkey",
                             "-noout",  "-out",  "sa.key",     NULL};
        const char *pub[] = {"ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", NULL};
        const char *req[] = {
            "req",    "-new",     "-key",
            "sa.key", "-subj",    "/CN=x\r\n" FORGED_TS " error FORGED csr \x1b[2J\xc2\x9b",
            "-utf8",  "-outform", "DER",
            "-out",   "evil.csr", NULL};

        openssl_ok(key);
        openssl_ok(pub);
        openssl_ok(req);
    }
    it_write_file("tokens.txt", TOKEN " default api\n");
    it_write_file("mesh.yaml", "settings: {inbound: {mode: strict}}\n");
    it_cp_cfg_write("cp.yaml", port, 0,
                    "cert_ttl: 1h\n"
                    "tokens: tokens.txt\n"
                    "kubernetes: {issuer: \"" ISS "\", audiences: [tollgate], keys: sa.pub}\n"
                    "mesh: mesh.yaml\n"
                    "log_level: debug\n");
    cp = it_cp_start("cp", "cp.yaml", port);
    cp->must_exit_0 = true;

    /* refused Hellos: an unknown bootstrap token; a JWT whose alg (read before the
     * signature) is a C1 CSI, the marker and a right-to-left override; claims that
     * contradict the token */
    hello_only(port, FORGE("token"), FORGE("node_id"), NULL, NULL, NULL);
    b64url("{\"alg\":\"\xc2\x9b"
           "FORGED jwt\xe2\x80\xae\"}",
           header, sizeof(header));
    snprintf(jwt, sizeof(jwt), "%s.eyJ9.c2ln", header);
    hello_only(port, jwt, FORGE("node_id"), NULL, NULL, NULL);
    hello_only(port, TOKEN, FORGE("node_id"), FORGE("namespace"), NULL, NULL);
    hello_only(port, TOKEN, FORGE("node_id"), NULL, FORGE("service_account"), NULL);

    /* an accepted stream: Hello, then a Nack, an Ack and a CSR the control plane signs */
    csr = it_read_file("evil.csr", &csr_len);
    ck_assert_ptr_nonnull(csr);
    {
        char nack_nonce[] = FORGE("nack_nonce"), nack_error[] = FORGE("nack_error");
        char ack_nonce[] = FORGE("ack_nonce"), ack_version[] = FORGE("ack_version");
        Tollgate__V1__Hello h;
        Tollgate__V1__Nack nack = {PROTOBUF_C_MESSAGE_INIT(&tollgate__v1__nack__descriptor),
                                   .type = TOLLGATE__V1__RESOURCE_TYPE__RESOURCE_TYPE_TRUST_BUNDLE,
                                   .nonce = nack_nonce, .error = nack_error};
        Tollgate__V1__Ack ack = {PROTOBUF_C_MESSAGE_INIT(&tollgate__v1__ack__descriptor),
                                 .type = TOLLGATE__V1__RESOURCE_TYPE__RESOURCE_TYPE_IDENTITY,
                                 .version = ack_version, .nonce = ack_nonce};
        Tollgate__V1__CsrRequest req = {
            PROTOBUF_C_MESSAGE_INIT(&tollgate__v1__csr_request__descriptor), .request_id = 7,
            .csr_der = {csr_len, (uint8_t *)csr}};
        Tollgate__V1__ClientMessage m_hello,
            m_nack = {CLIENT_MESSAGE_INIT, .msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_NACK,
                      .nack = &nack},
            m_ack = {CLIENT_MESSAGE_INIT, .msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_ACK,
                     .ack = &ack},
            m_csr = {CLIENT_MESSAGE_INIT, .msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_CSR,
                     .csr = &req};
        Tollgate__V1__ClientMessage *msgs[] = {&m_hello, &m_nack, &m_ack, &m_csr};

        hello(&m_hello, &h, TOKEN, FORGE("node_id"), "default", "api", FORGE("version"));
        raw_stream(port, msgs, 4, true);
    }
    free(csr);
    ck_assert_msg(
        it_wait_file_contains("cp.err", "issued spiffe://mesh.local/ns/default/sa/api", 10000),
        "the crafted CSR was not signed");
    ck_assert_int_eq(it_stop(cp, 10000), 0);

    expect_lines_hold("text", "cp.err");
    expect_reached("cp.err", "FORGED node_id");
    expect_reached("cp.err", "FORGED jwt");
    expect_reached("cp.err", "FORGED namespace");
    expect_reached("cp.err", "FORGED service_account");
    expect_reached("cp.err", "FORGED version");
    expect_reached("cp.err", "FORGED nack_nonce");
    expect_reached("cp.err", "FORGED nack_error");
    expect_reached("cp.err", "FORGED ack_nonce");
    /* the exact form: escaped, and quoted where the format quotes it */
    expect_reached("cp.err",
                   "(node \"x\\x0d\\x0a" FORGED_TS
                   " error FORGED node_id \\x1b[2J\\xc2\\x9b\\xe2\\x80\\xae\\\"'\\\\ end\")");
    expect_reached("cp.err",
                   "Hello claims namespace x\\x0d\\x0a" FORGED_TS
                   " error FORGED namespace \\x1b[2J\\xc2\\x9b\\xe2\\x80\\xae\"'\\ end but");
}
END_TEST

/* ---- a sidecar ---------------------------------------------------------------------- */

/* "subjectAltName = DER:..." for one URI (shorter than 128 bytes) */
static void san_der(const char *uri, char *dst, size_t cap)
{
    size_t n = strlen(uri), o;
    unsigned char der[160];

    ck_assert(n < 120);
    der[0] = 0x30;
    der[1] = (unsigned char)(n + 2);
    der[2] = 0x86;
    der[3] = (unsigned char)n;
    memcpy(der + 4, uri, n);
    o = (size_t)snprintf(dst, cap, "subjectAltName = DER:");
    for (size_t i = 0; i < n + 4; i++)
        o += (size_t)snprintf(dst + o, cap - o, "%02x%s", der[i], i + 3 < n + 4 ? ":" : "");
    ck_assert(o + 2 < cap);
    strcat(dst, "\n");
}

/* A client certificate signed by the mesh CA with a forged CN and URI SAN; and an extra
 * root for the trust bundle whose CN holds an escape, a C1 control, DEL, a bidi override
 * and, cut by the 64-byte CN field in the middle, an 'é'. */
static void hostile_certs(void)
{
    char ext[512];
    const char *key[] = {"ecparam", "-name", "prime256v1", "-genkey",
                         "-noout",  "-out",  "evil.key",   NULL};
    const char *req[] = {"req",      "-new",
                         "-key",     "evil.key",
                         "-subj",    "/CN=x\r\n" FORGED_TS " error FORGED cn \x1b[2J\xc2\x9b",
                         "-utf8",    "-out",
                         "evil.csr", NULL};
    const char *sign[] = {"x509",     "-req",     "-in",    "evil.csr", "-CA",
                          "ca.pem",   "-CAkey",   "ca.key", "-days",    "1",
                          "-extfile", "evil.ext", "-out",   "evil.pem", NULL};
    const char *root[] = {"req",
                          "-x509",
                          "-new",
                          "-key",
                          "evil.key",
                          "-days",
                          "2",
                          "-utf8",
                          "-subj",
                          "/CN=root\x1b[31m\xc2\x9b\x7f\xe2\x80\xae"
                          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\xc3\xa9",
                          "-out",
                          "evil-root.pem",
                          NULL};
    char *ca, *evil_root;

    openssl_ok(key);
    openssl_ok(req);
    san_der("spiffe://mesh.local/ns/default/sa/api\n" FORGED_TS " error FORGED san\x1b[2J", ext,
            sizeof(ext));
    it_write_file("evil.ext",
                  "basicConstraints = critical, CA:FALSE\n"
                  "keyUsage = critical, digitalSignature\n"
                  "extendedKeyUsage = clientAuth, serverAuth\n"
                  "%s",
                  ext);
    openssl_ok(sign);
    openssl_ok(root);
    ca = it_read_file("ca.pem", NULL);
    evil_root = it_read_file("evil-root.pem", NULL);
    ck_assert(ca != NULL && evil_root != NULL);
    it_write_file("bundle.pem", "%s%s", ca, evil_root);
    free(ca);
    free(evil_root);
}

/* openssl s_client to the mTLS port with a forged SNI and ALPN and the hostile certificate;
 * it is refused, whatever it says. */
static void hostile_tls_client(int port)
{
    char connect[32];
    const char *argv[] = {it_openssl(),  "s_client",
                          "-connect",    connect,
                          "-servername", "x\r\n" FORGED_TS " error FORGED sni \x1b[2J",
                          "-alpn",       "tollgate,x\r\n" FORGED_TS " error FORGED alpn \x1b[2J",
                          "-cert",       "evil.pem",
                          "-key",        "evil.key",
                          NULL};

    snprintf(connect, sizeof(connect), "127.0.0.1:%d", port);
    it_run(argv, "", 10000, NULL, NULL);
}

/* Sends raw bytes on a new connection to port and reads the answer until EOF or 5 s. */
static void send_raw(int port, const char *bytes)
{
    char buf[4096];
    int fd = it_connect(port, 5000);

    ck_assert_int_ge(fd, 0);
    ck_assert(it_send_all(fd, bytes, strlen(bytes)));
    shutdown(fd, SHUT_WR);
    it_recv_full(fd, buf, sizeof(buf));
    close(fd);
}

START_TEST(test_sidecar_logs_hold_against_forged_fields)
{
    int echo_port = 0, admin = it_free_port(), mtls_port = it_free_port(),
        tcp_port = it_free_port(), http_port = it_free_port();
    struct it_proc *b;
    char *body = NULL;

    it_certs("issue", "--ca", "ca", "--out", "web", "--spiffe", IT_WEB_ID, NULL);
    hostile_certs();
    it_echo_start("echo", &echo_port);
    it_cfg_write(
        "b.yaml",
        &(struct it_cfg){
            .admin = admin,
            .workers = 1,
            .log_level = "debug",
            .id = "web",
            .bundle = "bundle.pem",
            .timeouts = "handshake: 2s, idle: 5s, drain: 1s",
            .in = {{"mtls-in", mtls_port, echo_port, IT_API_ID},
                   {"tcp-in", tcp_port, echo_port, .more = "mode: permissive"},
                   {"http-in", http_port, echo_port, .more = "protocol: http, mode: permissive"}}},
        NULL);
    b = it_sidecar_start("b", "b.yaml", admin, 0);

    hostile_tls_client(mtls_port);
    send_raw(tcp_port, "PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n" FORGE("plain") "\r\n");
    /* the echo server is the app: it answers with the request, which is no HTTP response,
     * and the sidecar logs that with the request's target */
    /* a target with quotes and a backslash (a stricter parser may refuse it: then only
     * the refusal is logged), then one any parser takes; one worker: lines in order */
    send_raw(http_port, "FORGED-method|~ /\"x\\y'?q=\"z HTTP/1.1\r\n"
                        "Host: forged-host-1.example\r\n"
                        "X-Evil: \xc2\x9b\xe2\x80\xae\xff\"FORGED header\\\r\n"
                        "\r\n");
    send_raw(http_port, "FORGED-method|~ /FORGED-path'%0d%0a HTTP/1.1\r\n"
                        "Host: forged-host-2.example\r\n"
                        "X-Evil: \xc2\x9b\xe2\x80\xae\xff\"FORGED header\\\r\n"
                        "\r\n");
    ck_assert_int_eq(it_http(admin, "GET", "/config_dump", &body), 200);
    ck_assert_ptr_nonnull(body);
    it_write_file("config_dump.json", "%s", body);
    free(body);
    ck_assert_msg(it_wait_file_contains("b.out", "forged-host-2.example", 5000),
                  "no access-log line for the HTTP request");
    ck_assert_int_eq(it_stop(b, 10000), 0);

    expect_lines_hold("text", "b.err");
    expect_lines_hold("json", "b.out");
    expect_lines_hold("json", "config_dump.json");
    ck_assert_msg(it_file_contains("b.err", "FORGED-path") ||
                      it_file_contains("b.out", "FORGED-path"),
                  "the request target never reached a log");
    expect_reached("b.out", "tcp-in");
    expect_reached("config_dump.json", "AAAAAAAA");
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("adversarial_log", "adversarial_log", NULL, setup, it_teardown, 60,
                         test_cp_logs_hold_against_forged_fields,
                         test_sidecar_logs_hold_against_forged_fields);
}

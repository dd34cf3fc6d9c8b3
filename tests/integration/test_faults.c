/* Faults around the control plane and the process, end to end on 127.0.0.1.
 *
 * (1) One timeline for three faults (about 70-100 s): two tollgate-cp processes serve the
 * same CA and files, "long" (certificates of 10 min) and "short" (30 s, renewed at half).
 * Sidecars A (outbound api) and B (inbound web) are on long; S (inbound store) on short. At t0
 * long is killed and short stopped with SIGSTOP (a control plane that stalls with its socket
 * open). Long stays down for 60 s while streams through A -> B keep flowing and a new
 * connection succeeds every second. S serves on (A -> S every second) and must notice the
 * stall within 30 s; its certificate expires meanwhile: S turns not ready no later than its
 * expiry, A's handshakes to S fail as "expired", nothing reaches S's app, plain text neither.
 * Then short is continued (SIGCONT): S gets a new certificate (by its token: the expired one
 * would be refused) and is ready within a second of it. The mesh file changes during the
 * outage; long back up, A and B reconnect (backoff capped at 30 s), apply and ACK the new
 * authorization version, and S holds it too.
 *
 * (2) Beside it (same test, own processes): a fake control plane in this binary
 * (`it_test_faults fakecp ...`: tollgate's own msgstream, protobuf and the control plane's CA
 * code) that pushes 100 resources a second for 30 s to sidecar SB, valid and invalid
 * alternating (among them a fresh and a stale CRL made by `openssl ca`): every valid one must
 * be ACKed, every invalid one NACKed with a reason, nothing half-applied (SB holds the last
 * valid version of each), traffic through SA -> SB unaffected, SB's memory bounded.
 * The same fake, presenting another SPIFFE ID or under another root, must never hear the
 * sidecar's token.
 *
 * (3) SIGTERM while 64 MiB go each way on one connection: the transfer completes
 * byte-identical, new connections are refused, exit status 0. */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STORE_ID "spiffe://mesh.local/ns/default/sa/store"
#define MIB (1024 * 1024)

/* The figures; under AddressSanitizer (an unoptimised build, run again by test.sh for
 * its memory checks) the outage is shorter: 35 s, with 20 s certificates. */
#define OUTAGE_MS (UNDER_ASAN ? 35000 : 60000)
#define SHORT_TTL (UNDER_ASAN ? "20s" : "30s")

static char self_exe[PATH_MAX];

static void setup(void)
{
    ssize_t n;

    it_setup();
    n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    ck_assert(n > 0);
    self_exe[n] = '\0';
}

static bool round_trip(int port)
{
    char err[256] = "";

    return it_round_trip(port, "through?\n", err) > 0;
}

/* A sidecar on the control plane at cp_port, with its token file and c's listeners. */
static void write_cp_sidecar(const char *file, int admin, int cp_port, const char *token,
                             struct it_cfg *c)
{
    c->workers = 1;
    c->cp_renew = 0.5;
    it_cfg_write_cp(file, admin, cp_port, token, c);
}

/* ---- (1) control plane stalled, killed, certificate expiry ------------------------- */

static const char mesh_v1[] = "authorization:\n"
                              "  rules:\n"
                              "    - name: api-may-call\n"
                              "      action: allow\n"
                              "      principals: [\"" IT_API_ID "\"]\n";
static const char mesh_v2[] = "authorization:\n"
                              "  rules:\n"
                              "    - name: api-may-call-v2\n"
                              "      action: allow\n"
                              "      principals: [\"" IT_API_ID "\"]\n";

static void write_cp_yaml(const char *file, int port, const char *ttl)
{
    it_cp_cfg_write(file, port, 0,
                    "cert_ttl: %s\n"
                    "tokens: tokens.txt\n"
                    "mesh: [mesh.yaml]\n"
                    "log_level: debug\n",
                    ttl);
}

static struct it_proc *start_cp(const char *name, const char *yaml, int port)
{
    return it_cp_start(name, yaml, port);
}

/* "authorization":"VERSION" of /config_dump */
static void held_version(int admin, const char *type, char *dst, size_t cap)
{
    char *dump = NULL;

    dst[0] = '\0';
    if (it_http(admin, "GET", "/config_dump", &dump) == 200)
        it_json_str(dump, type, dst, cap);
    free(dump);
}

/* The largest N of "next attempt in N ms" in a log, and how many there are. */
static long max_backoff(const char *log, int *count)
{
    char *text = it_read_file(log, NULL);
    long max = 0;

    *count = 0;
    for (const char *p = text; p != NULL && (p = strstr(p, "next attempt in ")) != NULL; p++) {
        long v = strtol(p + 16, NULL, 10);

        max = v > max ? v : max;
        (*count)++;
    }
    free(text);
    return max;
}

/* ---- the fake control plane (`it_test_faults fakecp PORT CERT`, in the test's dir) ------ */

/* It serves one sidecar at a time with tollgate's own msgstream (TLS 1.3, length framing)
 * and the control plane's CA code: on Hello it pushes the trust bundle (ca.pem), answers
 * CSRs with IT_WEB_ID certificates of 1 h signed by ca.pem/ca.key, answers Pings, and once
 * the file storm.go exists pushes STORM_RATE resources a second for STORM_MS, valid and
 * invalid alternating, checking each answer against what it sent. It reports on stdout:
 * "connected", "hello token=yes|no", "storm sent=... valid=... invalid=... acked=...
 * nacked=... wrong=... unanswered=...", "last authorization=V mesh_table=V revocations=V",
 * and "wrong: ..." for each answer that does not fit. */
#include "cp_ca.h"
#include "tollgate.pb-c.h"
#include "tollgate/file.h"
#include "tollgate/log.h"
#include "tollgate/msgstream.h"
#include "tollgate/tls.h"

#define STORM_RATE 100
#define STORM_MS 30000 /* within the outage's wait, even under ASan */
#define STORM_MAX (STORM_RATE * STORM_MS / 1000 + 16)

struct fake {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_timer_t tick;
    struct tg_tls_ctx *tls;
    struct tg_identity *id;
    struct tg_cp_ca *ca;
    char *ca_pem;
    struct tg_msgstream *ms;
    bool storming, storm_done, reported;
    uint64_t storm_t0, storm_end;
    int sent, valid, invalid, acked, nacked, wrong;
    char kind[STORM_MAX]; /* 'v' or 'i' per nonce; 'a' once answered */
    char last[TG_RES_N][32];
    char *crl_fresh, *crl_stale; /* DER, made by the test with openssl ca */
    size_t crl_fresh_len, crl_stale_len;
    int last_i[TG_RES_N];
    char sent_version[STORM_MAX][24];
};

static struct fake fk;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void fake_send(const Tollgate__V1__ServerMessage *m)
{
    size_t len = tollgate__v1__server_message__get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    char err[TG_ERRLEN];

    if (buf == NULL || fk.ms == NULL) {
        free(buf);
        return;
    }
    tollgate__v1__server_message__pack(m, buf);
    if (tg_msgstream_send(fk.ms, buf, len, err) < 0)
        say("send failed: %s", err);
    free(buf);
}

static void fake_push(Tollgate__V1__Push *p)
{
    Tollgate__V1__ServerMessage m = TOLLGATE__V1__SERVER_MESSAGE__INIT;

    m.msg_case = TOLLGATE__V1__SERVER_MESSAGE__MSG_PUSH;
    m.push = p;
    fake_send(&m);
}

/* b: a trust bundle of one domain, trust_domain, with the one root *root (d and *dp the
 * caller's). */
static void one_domain_bundle(Tollgate__V1__TrustBundle *b, Tollgate__V1__TrustDomainRoots *d,
                              Tollgate__V1__TrustDomainRoots **dp, char *trust_domain, char **root)
{
    *dp = d;
    d->trust_domain = trust_domain;
    d->n_roots_pem = 1;
    d->roots_pem = root;
    b->n_domains = 1;
    b->domains = dp;
}

static void push_bundle(void)
{
    Tollgate__V1__Push p = TOLLGATE__V1__PUSH__INIT;
    Tollgate__V1__TrustBundle b = TOLLGATE__V1__TRUST_BUNDLE__INIT;
    Tollgate__V1__TrustDomainRoots d = TOLLGATE__V1__TRUST_DOMAIN_ROOTS__INIT, *dp;
    char *roots[1] = {fk.ca_pem}, trust_domain[] = "mesh.local";
    char version[] = "bundle-1", nonce[] = "bundle";

    one_domain_bundle(&b, &d, &dp, trust_domain, roots);
    p.type = TOLLGATE__V1__RESOURCE_TYPE__RESOURCE_TYPE_TRUST_BUNDLE;
    p.version = version;
    p.nonce = nonce;
    p.resource_case = TOLLGATE__V1__PUSH__RESOURCE_TRUST_BUNDLE;
    p.trust_bundle = &b;
    fake_push(&p);
}

/* Push number i of the storm: even ones valid, odd ones invalid, in kinds that rotate. */
static void storm_push(int i)
{
    Tollgate__V1__Push p = TOLLGATE__V1__PUSH__INIT;
    Tollgate__V1__AuthorizationPolicy az = TOLLGATE__V1__AUTHORIZATION_POLICY__INIT;
    Tollgate__V1__Rule r1 = TOLLGATE__V1__RULE__INIT, r2 = TOLLGATE__V1__RULE__INIT;
    Tollgate__V1__Rule *rules[2] = {&r1, &r2};
    Tollgate__V1__MeshTable mt = TOLLGATE__V1__MESH_TABLE__INIT;
    Tollgate__V1__Destination d = TOLLGATE__V1__DESTINATION__INIT, *dp = &d;
    Tollgate__V1__Revocations rv = TOLLGATE__V1__REVOCATIONS__INIT;
    Tollgate__V1__TrustBundle b = TOLLGATE__V1__TRUST_BUNDLE__INIT;
    Tollgate__V1__TrustDomainRoots td = TOLLGATE__V1__TRUST_DOMAIN_ROOTS__INIT, *tdp;
    char api_id[] = IT_API_ID, web_id[] = IT_WEB_ID, fp[] = "zz", broken[] = "broken";
    char junk[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    char trust_domain[] = "mesh.local", no_version[] = "";
    char *api[1] = {api_id}, *web[1] = {web_id}, *bad_fp[1] = {fp}, *junk_root[1] = {junk};
    char serial[40], *serials[1] = {serial}, nonce[16], version[24], name[40], addr[32];
    uint32_t bad_port[1] = {70000};
    ProtobufCBinaryData crl;
    bool valid = i % 2 == 0;
    int kind = (i / 2) % (valid ? 4 : 8);
    enum tg_res_type t;

    snprintf(nonce, sizeof(nonce), "%d", i);
    snprintf(version, sizeof(version), "storm-%d", i);
    snprintf(name, sizeof(name), "allow-api-%d", i);
    p.nonce = nonce;
    p.version = version;
    /* the valid authorization: default deny, api allowed (traffic flows only under it) */
    az.default_ = TOLLGATE__V1__RULE_ACTION__RULE_ACTION_DENY;
    az.n_rules = 1;
    az.rules = rules;
    r1.name = name;
    r1.action = TOLLGATE__V1__RULE_ACTION__RULE_ACTION_ALLOW;
    r1.n_principals = 1;
    r1.principals = api;
    d.address = addr;
    snprintf(addr, sizeof(addr), "10.%d.%d.0/24", (i >> 8) & 255, i & 255);
    d.port = (uint32_t)(i % 65535) + 1;
    d.n_expect = 1;
    d.expect = web;
    mt.n_destinations = 1;
    mt.destinations = &dp;
    snprintf(serial, sizeof(serial), "7f%06x", i);
    rv.n_serials = 1;
    rv.serials = serials;
    if (valid) {
        t = kind == 0 ? TG_RES_AUTHORIZATION : kind == 1 ? TG_RES_MESH_TABLE : TG_RES_REVOCATIONS;
        if (kind == 3) { /* a serial and a fresh CRL of the CA */
            crl = (ProtobufCBinaryData){fk.crl_fresh_len, (uint8_t *)fk.crl_fresh};
            rv.n_crls = 1;
            rv.crls = &crl;
        }
    } else {
        /* each would deny api if any part of it were applied, or carries garbage */
        r1.action = TOLLGATE__V1__RULE_ACTION__RULE_ACTION_DENY;
        r2.name = broken;
        r2.action = TOLLGATE__V1__RULE_ACTION__RULE_ACTION_ALLOW;
        r2.n_principals = 1;
        r2.principals = api;
        az.n_rules = 2;
        t = TG_RES_AUTHORIZATION;
        switch (kind) {
        case 0: /* a fingerprint that is not hex */
            r2.n_fingerprints = 1;
            r2.fingerprints = bad_fp;
            break;
        case 1: /* a port out of range */
            r2.n_ports = 1;
            r2.ports = bad_port;
            break;
        case 2: /* an action that does not exist */
            r2.action = (Tollgate__V1__RuleAction)7;
            break;
        case 3: /* claims to be authorization, carries a mesh table */
            p.type = TOLLGATE__V1__RESOURCE_TYPE__RESOURCE_TYPE_AUTHORIZATION;
            p.resource_case = TOLLGATE__V1__PUSH__RESOURCE_MESH_TABLE;
            p.mesh_table = &mt;
            break;
        case 4: /* no version */
            p.version = no_version;
            break;
        case 5: /* a destination with an unknown protocol */
            t = TG_RES_MESH_TABLE;
            d.protocol = (Tollgate__V1__Protocol)9;
            break;
        case 6: /* a CRL of the CA whose nextUpdate has passed */
            t = TG_RES_REVOCATIONS;
            crl = (ProtobufCBinaryData){fk.crl_stale_len, (uint8_t *)fk.crl_stale};
            rv.n_crls = 1;
            rv.crls = &crl;
            break;
        default: /* a trust bundle whose root is not a certificate */
            t = TG_RES_TRUST_BUNDLE;
            one_domain_bundle(&b, &td, &tdp, trust_domain, junk_root);
            break;
        }
    }
    if (p.resource_case == TOLLGATE__V1__PUSH__RESOURCE__NOT_SET) {
        p.type = (Tollgate__V1__ResourceType)t;
        switch (t) {
        case TG_RES_AUTHORIZATION:
            p.resource_case = TOLLGATE__V1__PUSH__RESOURCE_AUTHORIZATION;
            p.authorization = &az;
            break;
        case TG_RES_MESH_TABLE:
            p.resource_case = TOLLGATE__V1__PUSH__RESOURCE_MESH_TABLE;
            p.mesh_table = &mt;
            break;
        case TG_RES_REVOCATIONS:
            p.resource_case = TOLLGATE__V1__PUSH__RESOURCE_REVOCATIONS;
            p.revocations = &rv;
            break;
        default:
            p.resource_case = TOLLGATE__V1__PUSH__RESOURCE_TRUST_BUNDLE;
            p.trust_bundle = &b;
            break;
        }
    }
    fk.kind[i] = valid ? 'v' : 'i';
    snprintf(fk.sent_version[i], sizeof(fk.sent_version[i]), "%s", p.version);
    if (valid) {
        fk.valid++;
        snprintf(fk.last[t], sizeof(fk.last[t]), "%s", version);
    } else {
        fk.invalid++;
    }
    fk.sent++;
    fake_push(&p);
}

static void storm_report(void)
{
    int unanswered = 0;

    for (int i = 0; i < fk.sent; i++)
        unanswered += fk.kind[i] != 'a';
    say("storm sent=%d valid=%d invalid=%d acked=%d nacked=%d wrong=%d unanswered=%d", fk.sent,
        fk.valid, fk.invalid, fk.acked, fk.nacked, fk.wrong, unanswered);
    say("last authorization=%s mesh_table=%s revocations=%s", fk.last[TG_RES_AUTHORIZATION],
        fk.last[TG_RES_MESH_TABLE], fk.last[TG_RES_REVOCATIONS]);
    fk.reported = true;
}

static void on_fake_tick(uv_timer_t *t)
{
    uint64_t now = uv_now(&fk.loop);

    (void)t;
    if (fk.ms == NULL || !tg_msgstream_is_connected(fk.ms))
        return;
    if (!fk.storming && !fk.storm_done && access("storm.go", F_OK) == 0) {
        fk.storming = true;
        fk.storm_t0 = now;
        say("storm begins");
    }
    if (fk.storming) {
        /* catch up to STORM_RATE a second since the start, whatever the timer's jitter */
        uint64_t due = (now - fk.storm_t0) * STORM_RATE / 1000 + 1;

        while ((uint64_t)fk.sent < due && fk.sent < STORM_MAX - 1 && now - fk.storm_t0 < STORM_MS)
            storm_push(fk.sent);
        if (now - fk.storm_t0 >= STORM_MS) {
            fk.storming = false;
            fk.storm_done = true;
            fk.storm_end = now;
        }
    }
    if (fk.storm_done && !fk.reported &&
        (fk.acked + fk.nacked + fk.wrong >= fk.sent || now - fk.storm_end > 10000))
        storm_report();
}

static void answer(const char *nonce, bool ack, const char *version, const char *error)
{
    char *end;
    long i = strtol(nonce, &end, 10);

    if (*nonce == '\0' || *end != '\0' || i < 0 || i >= fk.sent) {
        if (strcmp(nonce, "bundle") != 0)
            say("wrong: answer to unknown nonce '%s'", nonce);
        return;
    }
    if (fk.kind[i] == 'a') {
        fk.wrong++;
        say("wrong: push %ld answered twice", i);
        return;
    }
    if (ack && fk.kind[i] == 'v' && strcmp(version, fk.sent_version[i]) == 0) {
        fk.acked++;
    } else if (!ack && fk.kind[i] == 'i' && error != NULL && error[0] != '\0') {
        fk.nacked++;
        if (fk.nacked <= 8)
            say("nack %ld: %s", i, error);
    } else {
        fk.wrong++;
        say("wrong: push %ld (%s) got %s %s", i, fk.kind[i] == 'v' ? "valid" : "invalid",
            ack ? "ACK" : "NACK", ack ? version : error);
    }
    fk.kind[i] = 'a';
}

static void on_csr(const Tollgate__V1__CsrRequest *r)
{
    Tollgate__V1__ServerMessage m = TOLLGATE__V1__SERVER_MESSAGE__INIT;
    Tollgate__V1__CsrResponse resp = TOLLGATE__V1__CSR_RESPONSE__INIT;
    char *chain = NULL, err[TG_ERRLEN] = "";
    size_t len = 0;

    resp.request_id = r->request_id;
    if (tg_cp_ca_sign(fk.ca, r->csr_der.data, r->csr_der.len, IT_WEB_ID, 3600, &chain, &len, err) <
        0) {
        resp.result_case = TOLLGATE__V1__CSR_RESPONSE__RESULT_ERROR;
        resp.error = err;
    } else {
        resp.result_case = TOLLGATE__V1__CSR_RESPONSE__RESULT_CHAIN_PEM;
        resp.chain_pem = chain;
    }
    m.msg_case = TOLLGATE__V1__SERVER_MESSAGE__MSG_CSR;
    m.csr = &resp;
    fake_send(&m);
    say("csr %" PRIu64 " answered%s%s", r->request_id, err[0] ? ": " : "", err);
    free(chain);
}

static void on_fake_frame(struct tg_msgstream *s, const char *frame, size_t len)
{
    Tollgate__V1__ClientMessage *m =
        tollgate__v1__client_message__unpack(NULL, len, (const uint8_t *)frame);
    Tollgate__V1__ServerMessage out = TOLLGATE__V1__SERVER_MESSAGE__INIT;
    Tollgate__V1__Pong pong = TOLLGATE__V1__PONG__INIT;

    if (m == NULL) {
        say("wrong: a frame of %zu bytes does not decode", len);
        tg_msgstream_close(s, false, "undecodable");
        return;
    }
    switch (m->msg_case) {
    case TOLLGATE__V1__CLIENT_MESSAGE__MSG_HELLO:
        say("hello token=%s", m->hello->token[0] != '\0' ? "yes" : "no");
        push_bundle();
        break;
    case TOLLGATE__V1__CLIENT_MESSAGE__MSG_CSR:
        on_csr(m->csr);
        break;
    case TOLLGATE__V1__CLIENT_MESSAGE__MSG_ACK:
        if (m->ack->type == TOLLGATE__V1__RESOURCE_TYPE__RESOURCE_TYPE_IDENTITY)
            say("identity acked");
        else
            answer(m->ack->nonce, true, m->ack->version, NULL);
        break;
    case TOLLGATE__V1__CLIENT_MESSAGE__MSG_NACK:
        answer(m->nack->nonce, false, NULL, m->nack->error);
        break;
    case TOLLGATE__V1__CLIENT_MESSAGE__MSG_PING:
        pong.id = m->ping->id;
        out.msg_case = TOLLGATE__V1__SERVER_MESSAGE__MSG_PONG;
        out.pong = &pong;
        fake_send(&out);
        break;
    default:
        break;
    }
    tollgate__v1__client_message__free_unpacked(m, NULL);
}

static void on_fake_connected(struct tg_msgstream *s)
{
    (void)s;
    say("connected");
}

static void on_fake_closed(struct tg_msgstream *s, const char *reason)
{
    if (s == fk.ms)
        fk.ms = NULL;
    say("closed: %s", reason);
}

static void on_fake_connection(uv_stream_t *server, int status)
{
    static const struct tg_msgstream_ops ops = {on_fake_connected, on_fake_frame, on_fake_closed};
    static const struct tg_strlist any = {NULL, 0};
    static const struct tg_tls_peer_rule rule = {&any};
    struct tg_msgstream *ms;

    if (status < 0 ||
        tg_msgstream_accept(&fk.loop, server, fk.tls, &rule, NULL, &ops, NULL, &ms) < 0)
        return;
    if (fk.ms != NULL) /* one sidecar at a time: the newest */
        tg_msgstream_close(fk.ms, false, "replaced");
    fk.ms = ms;
}

/* Not it_read_file: Check's asserts (even passing ones) must not run outside a test. */
static char *slurp(const char *name, size_t *len)
{
    char *buf = NULL, err[TG_ERRLEN];

    if (tg_file_read(NULL, name, TG_FILE_MAX, 0, &buf, len, err) < 0)
        say("fake: %s", err);
    return buf;
}

static int fake_cp(int port, const char *cert, const char *own_ca)
{
    struct tg_tls_settings ts = {.server = true, .max_chain_depth = 4, .peer_optional = true};
    struct sockaddr_in sa;
    char certf[96], keyf[96], err[TG_ERRLEN] = "", *cp_pem, *cp_key, *ca_key, *own;
    size_t cp_len = 0, key_len = 0, ca_len = 0, ca_key_len = 0, own_len = 0;
    struct tg_identity_pem idp;

    snprintf(certf, sizeof(certf), "%s.pem", cert);
    snprintf(keyf, sizeof(keyf), "%s.key", cert);
    cp_pem = slurp(certf, &cp_len);
    cp_key = slurp(keyf, &key_len);
    fk.ca_pem = slurp("ca.pem", &ca_len);
    ca_key = slurp("ca.key", &ca_key_len);
    own = slurp(own_ca, &own_len);
    fk.crl_fresh = slurp("fresh.crl.der", &fk.crl_fresh_len);
    fk.crl_stale = slurp("stale.crl.der", &fk.crl_stale_len);
    if (cp_pem == NULL || cp_key == NULL || fk.ca_pem == NULL || ca_key == NULL || own == NULL) {
        say("fake: missing files");
        return 2;
    }
    tg_log_set_level(TG_LOG_WARN);
    idp = (struct tg_identity_pem){.chain = cp_pem,
                                   .chain_len = cp_len,
                                   .key = cp_key,
                                   .key_len = key_len,
                                   .bundle = own,
                                   .bundle_len = own_len};
    if (tg_tls_init() < 0 || tg_identity_from_pem(&idp, &fk.id, err) < 0 ||
        tg_tls_ctx_new(fk.id, &ts, &fk.tls, err) < 0 ||
        tg_cp_ca_new(fk.ca_pem, ca_len, ca_key, ca_key_len, "ca", &fk.ca, err) < 0) {
        say("fake: %s", err);
        return 2;
    }
    uv_loop_init(&fk.loop);
    uv_tcp_init(&fk.loop, &fk.server);
    uv_ip4_addr("127.0.0.1", port, &sa);
    if (uv_tcp_bind(&fk.server, (const struct sockaddr *)&sa, 0) < 0 ||
        uv_listen((uv_stream_t *)&fk.server, 16, on_fake_connection) < 0) {
        say("fake: cannot listen on %d", port);
        return 2;
    }
    uv_timer_init(&fk.loop, &fk.tick);
    uv_timer_start(&fk.tick, on_fake_tick, 5, 5);
    say("listening");
    uv_run(&fk.loop, UV_RUN_DEFAULT); /* until killed */
    return 0;
}

static struct it_proc *fake_start(const char *name, int port, const char *cert, const char *own_ca)
{
    char p[16];
    const char *argv[] = {self_exe, "fakecp", p, cert, own_ca, NULL};
    struct it_proc *f;

    snprintf(p, sizeof(p), "%d", port);
    f = it_spawn(name, argv, IT_STDIN_NULL);
    ck_assert_msg(it_wait_port(port, 10000), "the fake control plane did not listen");
    return f;
}

/* ---- (2) a push storm ---------------------------------------------------------------- */

/* fresh.crl.der and stale.crl.der (nextUpdate a day ago) of ca, by `openssl ca` */
static void make_crls(void)
{
    char cmd[1024], *err = NULL;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};

    it_crl("ca", "fresh.crl.pem", 86400);
    it_crl("ca", "stale.crl.pem", 0);
    snprintf(cmd, sizeof(cmd),
             "set -e; o='%s'; for c in fresh stale; do"
             " $o crl -in $c.crl.pem -outform DER -out $c.crl.der; done",
             it_openssl());
    ck_assert_msg(it_run(argv, NULL, 20000, NULL, &err) == 0, "openssl crl: %s", err);
    free(err);
}

/* A storm runs beside the control-plane outage (its own fake control plane, CA files shared):
 * sidecar SB (inbound web, on the fake) and SA (outbound api, static files), streams through
 * them; storm_tick() is called from the outage's loops, storm_finish() checks it all. */
struct storm {
    int cp_port, out_port, b_admin;
    struct it_proc *fake, *b;
    struct it_streams *st;
    uint64_t t0, next_probe;
    long rss0, rss_max;
    int probes;
    bool done;
};

static void storm_setup(struct storm *x)
{
    int echo_port = 0, in_port = it_free_port(), a_admin = it_free_port();

    memset(x, 0, sizeof(*x));
    IT_FREE_PORTS(&x->cp_port, &x->out_port, &x->b_admin);
    it_certs("issue", "--ca", "ca", "--out", "api", "--spiffe", IT_API_ID, NULL);
    it_write_file("sb.token", "bbbbbbbbbbbbbbbbbbbbbbbb\n");
    make_crls();
    x->fake = fake_start("fake", x->cp_port, "cp", "ca.pem");
    it_echo_start("secho", &echo_port);
    write_cp_sidecar("sb.yaml", x->b_admin, x->cp_port, "sb.token",
                     &(struct it_cfg){.in = {{"web-in", in_port, echo_port, IT_API_ID}}});
    x->b = it_sidecar_start("sb", "sb.yaml", x->b_admin, 0);
    it_cfg_write("sa.yaml",
                 &(struct it_cfg){.admin = a_admin,
                                  .workers = 1,
                                  .id = "api",
                                  .out = {{"api-out", x->out_port, in_port, IT_WEB_ID}}},
                 NULL);
    it_sidecar_start("sa", "sa.yaml", a_admin, 0);
    ck_assert_msg(round_trip(x->out_port), "SA -> SB before the storm");
    x->st = it_streams_start(x->out_port, 10, 9000);
}

static void storm_begin(struct storm *x)
{
    it_write_file("storm.go", "go\n");
    ck_assert(it_wait_file_contains(x->fake->out_path, "storm begins", 5000));
    x->t0 = it_now_ms();
    x->next_probe = x->t0 + 500;
}

/* While it lasts: a new connection every second, the streams intact, SB's RSS sampled. */
static void storm_tick(struct storm *x)
{
    uint64_t now = it_now_ms();
    long rss;

    if (x->done || x->t0 == 0)
        return;
    if (it_file_contains(x->fake->out_path, "storm sent=")) {
        x->done = true;
        return;
    }
    if (now >= x->next_probe) {
        ck_assert_msg(round_trip(x->out_port), "a new connection failed %llu ms into the storm",
                      (unsigned long long)(now - x->t0));
        it_streams_expect_ok(x->st, "during the push storm");
        x->probes++;
        x->next_probe += 1000;
    }
    rss = it_rss_kib(x->b->pid);
    if (now >= x->t0 + 5000 && x->rss0 == 0)
        x->rss0 = rss;
    x->rss_max = rss > x->rss_max ? rss : x->rss_max;
}

static void storm_finish(struct storm *x)
{
    static const char *const types[3] = {"authorization", "mesh_table", "revocations"};
    char line[IT_LINE_MAX], want[3][40], held[40], *dump = NULL;
    int sent = -1, valid = -1, invalid = -1, acked = -1, nacked = -1, wrong = -1, unans = -1;
    uint64_t end = x->t0 + STORM_MS + 15000;

    while (!x->done && it_now_ms() < end) {
        storm_tick(x);
        it_sleep_ms(100);
    }
    ck_assert_msg(it_last_line(x->fake->out_path, line, sizeof(line), "storm sent=", NULL),
                  "the fake control plane did not finish its storm");
    ck_assert_int_eq(sscanf(line,
                            "storm sent=%d valid=%d invalid=%d acked=%d nacked=%d wrong=%d "
                            "unanswered=%d",
                            &sent, &valid, &invalid, &acked, &nacked, &wrong, &unans),
                     7);
    fprintf(stderr,
            "(2) %s in %d ms; SB RSS %ld KiB after 5 s, max %ld KiB; %d new connections during "
            "it\n",
            line, STORM_MS, x->rss0, x->rss_max, x->probes);
    ck_assert_msg(sent >= STORM_RATE * STORM_MS / 1000 - 10, "only %d pushes sent", sent);
    ck_assert_msg(wrong == 0 && unans == 0 && acked == valid && nacked == invalid,
                  "answers do not fit: %s (see fake.out)", line);
    ck_assert(it_last_line(x->fake->out_path, line, sizeof(line), "last authorization=", NULL));
    ck_assert_int_eq(sscanf(line, "last authorization=%39s mesh_table=%39s revocations=%39s",
                            want[0], want[1], want[2]),
                     3);
    ck_assert_int_eq(it_http(x->b_admin, "GET", "/config_dump", &dump), 200);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(it_json_str(dump, types[i], held, sizeof(held)), "no %s in %s", types[i],
                      dump);
        ck_assert_msg(strcmp(held, want[i]) == 0, "SB holds %s %s, the last valid push was %s",
                      types[i], held, want[i]);
    }
    free(dump);
    ck_assert_msg(strstr(dump = it_read_file(x->fake->out_path, NULL), "nack 1: ") != NULL,
                  "no NACK reason logged");
    free(dump);
    ck_assert_msg(round_trip(x->out_port), "SA -> SB after the storm");
    it_streams_expect_progress(x->st, "after the push storm");
    it_streams_stop(x->st);
    if (!UNDER_ASAN)
        ck_assert_msg(x->rss_max < x->rss0 + 16 * 1024,
                      "SB's RSS grew from %ld to %ld KiB in the storm", x->rss0, x->rss_max);
}

START_TEST(test_cp_killed_60s_another_stalled_certificate_expires_push_storm_beside)
{
    static struct storm storm;
    int cpl_port = it_free_port(), cps_port = it_free_port(), echo_port = 0, echo2_port = 0;
    int in_port = it_free_port(), s_in_port = it_free_port(), out_port = it_free_port();
    int s_out_port = it_free_port(), a_admin = it_free_port(), b_admin = it_free_port();
    int s_admin = it_free_port();
    struct it_proc *cpl, *cps, *echo2;
    struct it_streams *st;
    char v_before[80], v_after[80], v_s[80];
    double ra0, rb0, rs0, certs_s = 0;
    uint64_t t0, t_stall = 0, t_unready = 0, t_cont = 0, t_cert = 0, t_ready = 0, now;
    uint64_t next_probe, end;
    long long s_not_after;
    int probes = 0, s_probes = 0, echo2_before = 0, attempts;
    long backoff;
    bool expired_checked = false, s_back_checked = false;

    it_certs("ca", "--out", "ca", "--cn", "faults CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    it_cp_tokens("ssssssssssssssssssssssss default store\n");
    it_write_file("s.token", "ssssssssssssssssssssssss\n");
    it_write_file("mesh.yaml", "%s", mesh_v1);
    write_cp_yaml("cpl.yaml", cpl_port, "10m");
    write_cp_yaml("cps.yaml", cps_port, SHORT_TTL);
    cpl = start_cp("cpl", "cpl.yaml", cpl_port);
    cps = start_cp("cps", "cps.yaml", cps_port);
    it_echo_start("echo", &echo_port);
    echo2 = it_echo_start("echo2", &echo2_port);

    write_cp_sidecar("b.yaml", b_admin, cpl_port, "b.token",
                     &(struct it_cfg){.in = {{"web-in", in_port, echo_port, IT_API_ID}}});
    write_cp_sidecar("s.yaml", s_admin, cps_port, "s.token",
                     &(struct it_cfg){.in = {{"store-in", s_in_port, echo2_port, IT_API_ID}}});
    write_cp_sidecar("a.yaml", a_admin, cpl_port, "a.token",
                     &(struct it_cfg){.out = {{"api-out", out_port, in_port, IT_WEB_ID},
                                              {"store-out", s_out_port, s_in_port, STORE_ID}}});
    it_sidecar_start("b", "b.yaml", b_admin, 0);
    it_sidecar_start("s", "s.yaml", s_admin, 0);
    it_sidecar_start("a", "a.yaml", a_admin, 0);
    ck_assert_msg(round_trip(out_port), "A -> B before the faults");
    ck_assert_msg(round_trip(s_out_port), "A -> S before the faults");
    held_version(b_admin, "authorization", v_before, sizeof(v_before));
    ck_assert_msg(v_before[0] != '\0', "B holds no authorization version");
    st = it_streams_start(out_port, 10, 7000);
    storm_setup(&storm);
    ra0 = it_stat(a_admin, "tollgate_cp_reconnects_total", "");
    rb0 = it_stat(b_admin, "tollgate_cp_reconnects_total", "");
    rs0 = it_stat(s_admin, "tollgate_cp_reconnects_total", "");

    /* t0: long is killed, short stalls (its socket stays open); the storm starts beside */
    storm_begin(&storm);
    t0 = it_now_ms();
    ck_assert_int_eq(kill(cpl->pid, SIGKILL), 0);
    ck_assert_int_eq(kill(cps->pid, SIGSTOP), 0);
    it_wait(cpl, 5000);
    it_replace_file("mesh.yaml", "%s", mesh_v2);
    /* S's last certificate: tollgate_identity_expiry_seconds is the time left */
    s_not_after = (long long)it_stat(s_admin, "tollgate_identity_expiry_seconds", "");
    ck_assert_msg(s_not_after > 0, "S's /stats has no tollgate_identity_expiry_seconds");
    s_not_after += (long long)time(NULL);
    fprintf(stderr, "(1) S's certificate expires in %lld s\n", s_not_after - (long long)time(NULL));
    next_probe = t0;
    end = t0 + OUTAGE_MS;
    /* until long is back (and, if it takes longer, until S has its new certificate) */
    while ((now = it_now_ms()) < end || (t_cont > 0 && t_ready == 0 && now < end + 40000)) {
        if (now < end && now >= next_probe) { /* a new connection every second succeeds */
            ck_assert_msg(round_trip(out_port),
                          "new connection A -> B failed %llu ms into the "
                          "outage",
                          (unsigned long long)(now - t0));
            probes++;
            it_streams_expect_ok(st, "control plane down");
            /* S serves on while its control plane stalls, until its certificate expires */
            if ((long long)time(NULL) < s_not_after - 1) {
                ck_assert_msg(round_trip(s_out_port), "A -> S failed %llu ms into the stall",
                              (unsigned long long)(now - t0));
                s_probes++;
            }
            next_probe += 1000;
        }
        if (t_stall == 0 && it_file_contains("s.err", "nothing from the control plane"))
            t_stall = now;
        if (t_unready == 0 && it_http(s_admin, "GET", "/ready", NULL) != 200) {
            t_unready = now;
            ck_assert_msg((long long)time(NULL) >= s_not_after - 2,
                          "S not ready %lld s before its certificate expires",
                          s_not_after - (long long)time(NULL));
        }
        /* not ready from the second its certificate expires */
        if (t_cont == 0 && (long long)time(NULL) >= s_not_after)
            ck_assert_msg(it_http(s_admin, "GET", "/ready", NULL) != 200,
                          "S ready with its certificate expired");
        if (!expired_checked && (long long)time(NULL) >= s_not_after + 2) {
            double exp0 = it_stat(a_admin, "tollgate_handshakes_failed_total",
                                  "listener=\"store-out\",reason=\"expired\"");
            int fd;

            echo2_before = it_echo_accepts(echo2);
            ck_assert_msg(!round_trip(s_out_port), "A -> S succeeded with S's certificate "
                                                   "expired");
            ck_assert_msg(it_wait_stat(a_admin, "tollgate_handshakes_failed_total",
                                       "listener=\"store-out\",reason=\"expired\"",
                                       (exp0 < 0 ? 0 : exp0) + 1, 5000) >= 1,
                          "A did not count S's expired certificate");
            /* never plain text: a plain client gets nothing from S's app */
            fd = it_connect(s_in_port, 3000);
            if (fd >= 0) {
                char buf[64];

                it_send_all(fd, "plain text?\n", 12);
                ck_assert_msg(it_recv_full(fd, buf, 12) == 0 || memcmp(buf, "plain", 5) != 0,
                              "S echoed plain text with an expired certificate");
                close(fd);
            }
            /* a caller that ignores the expiry (s_client does not fail on a verify error)
             * with a good certificate of its own: S must not present the expired one */
            {
                char cmd[512], *out = NULL;
                const char *sh[] = {"/bin/sh", "-c", cmd, NULL};

                it_certs("issue", "--ca", "ca", "--out", "probe", "--spiffe", IT_API_ID, NULL);
                snprintf(cmd, sizeof(cmd),
                         "echo through? | '%s' s_client -connect 127.0.0.1:%d -cert probe.pem "
                         "-key probe.key -quiet -ign_eof 2>&1",
                         it_openssl(), s_in_port);
                (void)it_run(sh, NULL, 5000, &out, NULL);
                ck_assert_msg(out == NULL || strstr(out, "through?") == NULL,
                              "S served a caller with its certificate expired: %s", out);
                free(out);
            }
            ck_assert_msg(it_echo_accepts(echo2) == echo2_before,
                          "S's app got %d connections with S's certificate expired",
                          it_echo_accepts(echo2) - echo2_before);
            expired_checked = true;
        }
        /* the stall noticed and the certificate expired: short comes back (SIGCONT) */
        if (t_cont == 0 && t_stall > 0 && expired_checked) {
            certs_s = it_stat(s_admin, "tollgate_cp_certs_accepted_total", "");
            ck_assert_int_eq(kill(cps->pid, SIGCONT), 0);
            t_cont = now;
        }
        if (t_cont > 0 && t_cert == 0 &&
            it_stat(s_admin, "tollgate_cp_certs_accepted_total", "") > certs_s)
            t_cert = now;
        if (t_cert > 0 && t_ready == 0 && it_http(s_admin, "GET", "/ready", NULL) == 200)
            t_ready = now;
        if (t_ready > 0 && !s_back_checked) {
            ck_assert_msg(round_trip(s_out_port), "A -> S after S's new certificate");
            s_back_checked = true;
        }
        if (now >= end && cpl->pid == 0)
            cpl = start_cp("cpl2", "cpl.yaml", cpl_port); /* back after OUTAGE_MS */
        storm_tick(&storm);
        it_sleep_ms(t_cert > 0 && t_ready == 0 ? 10 : 100);
    }
    if (cpl->pid == 0)
        cpl = start_cp("cpl2", "cpl.yaml", cpl_port);
    storm_finish(&storm);
    fprintf(stderr,
            "(1) short's stall noticed by S after %llu ms; S not ready %lld ms before its expiry; "
            "short continued %llu ms after t0, S's new certificate %llu ms later, ready %llu ms "
            "after it; %d new connections A -> B during the outage, %d A -> S during the stall\n",
            (unsigned long long)(t_stall - t0),
            s_not_after * 1000 - (long long)(time(NULL) * 1000 - (it_now_ms() - t_unready)),
            (unsigned long long)(t_cont - t0), (unsigned long long)(t_cert - t_cont),
            (unsigned long long)(t_ready - t_cert), probes, s_probes);
    ck_assert_msg(t_stall > 0 && t_stall - t0 <= 30000, "S noticed the stall after %llu ms",
                  (unsigned long long)(t_stall - t0));
    ck_assert_msg(expired_checked, "S's certificate did not expire during the stall");
    ck_assert_msg(t_unready > 0, "S stayed ready with its certificate expired");
    ck_assert_msg(t_cert > 0, "S got no new certificate from the continued control plane");
    ck_assert_msg(t_ready > 0 && t_ready <= t_cert + 1000,
                  "S ready %lld ms after its new certificate", (long long)(t_ready - t_cert));
    ck_assert_int_eq(it_http(b_admin, "GET", "/ready", NULL), 200);
    ck_assert_int_eq(it_http(a_admin, "GET", "/ready", NULL), 200);

    /* long is back: A and B reconnect, apply and ACK what changed meanwhile */
    ck_assert_msg(it_wait_stat(b_admin, "tollgate_cp_connected", "", 1, 40000) >= 1,
                  "B did not reconnect");
    ck_assert_msg(it_wait_stat(a_admin, "tollgate_cp_connected", "", 1, 40000) >= 1,
                  "A did not reconnect");
    ck_assert(it_stat(a_admin, "tollgate_cp_reconnects_total", "") > ra0);
    ck_assert(it_stat(b_admin, "tollgate_cp_reconnects_total", "") > rb0);
    ck_assert(it_stat(s_admin, "tollgate_cp_reconnects_total", "") > rs0);
    ck_assert_msg(it_wait_lines("b.err", 1, 10000, "authorization version", "applied", NULL) >= 1,
                  "B did not apply the new authorization");
    held_version(b_admin, "authorization", v_after, sizeof(v_after));
    ck_assert_msg(strcmp(v_after, v_before) != 0, "B still holds authorization %s", v_before);
    ck_assert_msg(
        it_wait_lines("cpl2.err", 2, 10000, "authorization version", v_after, "applied", NULL) >= 2,
        "the control plane did not get the ACKs of authorization %s from A and B", v_after);
    /* S too, from the continued control plane (offered before or after its new certificate) */
    end = it_now_ms() + 5000;
    do {
        held_version(s_admin, "authorization", v_s, sizeof(v_s));
        if (strcmp(v_s, v_after) == 0)
            break;
        it_sleep_ms(100);
    } while (it_now_ms() < end);
    ck_assert_msg(strcmp(v_s, v_after) == 0, "S holds authorization %s, want %s", v_s, v_after);
    backoff = max_backoff("b.err", &attempts);
    fprintf(stderr, "(1) B: %d attempts planned while long was down, the longest wait %ld ms\n",
            attempts, backoff);
    ck_assert_msg(backoff <= 30000 && backoff >= 8000, "B's longest backoff %ld ms", backoff);
    ck_assert_msg(attempts >= 4 && attempts <= 20, "B planned %d attempts", attempts);
    it_streams_expect_progress(st, "after the control plane's return");
    fprintf(stderr, "(1) %llu bytes echoed over 10 streams\n",
            (unsigned long long)it_streams_stop(st));
}
END_TEST

/* ---- a control plane with the wrong identity ------------------------------------------ */

/* The same CA, another SPIFFE ID; and the right ID from a CA the sidecar does not trust. Both
 * made by the openssl CLI. The sidecar must end each handshake and never send its token. */
static void openssl_leaf(const char *name, const char *ca, const char *id)
{
    char cmd[2048], *err = NULL;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};

    snprintf(cmd, sizeof(cmd),
             "set -e; o='%s';"
             "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
             "extendedKeyUsage=serverAuth,clientAuth\\nsubjectAltName=URI:%s\\n' > %s.ext;"
             "$o req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key "
             "-out %s.csr -subj /CN=%s 2>/dev/null;"
             "$o x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial -days 1 "
             "-extfile %s.ext -out %s.pem 2>/dev/null",
             it_openssl(), id, name, name, name, name, name, ca, ca, name, name);
    ck_assert_msg(it_run(argv, NULL, 20000, NULL, &err) == 0, "openssl %s: %s", name, err);
    free(err);
}

START_TEST(test_control_plane_with_wrong_identity_never_hears_the_token)
{
    char cmd[1024], *err = NULL;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int p1 = it_free_port(), p2 = it_free_port(), adm1 = it_free_port(), adm2 = it_free_port();
    struct it_proc *f1, *f2, *s1, *s2;
    const char *run1[] = {it_env("TG_BIN"), "run", "-c", "s1.yaml", NULL};
    const char *run2[] = {it_env("TG_BIN"), "run", "-c", "s2.yaml", NULL};

    snprintf(cmd, sizeof(cmd),
             "set -e; for c in ca other; do '%s' req -x509 -newkey ec -pkeyopt "
             "ec_paramgen_curve:P-256 -nodes -keyout $c.key -out $c.pem -days 2 -subj /CN=$c "
             "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
             "2>/dev/null; done",
             it_openssl());
    ck_assert_msg(it_run(argv, NULL, 20000, NULL, &err) == 0, "openssl CAs: %s", err);
    free(err);
    openssl_leaf("evil", "ca", "spiffe://mesh.local/ns/default/sa/not-the-cp");
    openssl_leaf("foreign", "other", IT_CP_ID);
    it_write_file("b.token", "bbbbbbbbbbbbbbbbbbbbbbbb\n");
    f1 = fake_start("fake_evil", p1, "evil", "ca.pem");
    f2 = fake_start("fake_foreign", p2, "foreign", "other.pem");
    write_cp_sidecar("s1.yaml", adm1, p1, "b.token",
                     &(struct it_cfg){.in = {{"web-in", it_free_port(), 9}}});
    write_cp_sidecar("s2.yaml", adm2, p2, "b.token",
                     &(struct it_cfg){.in = {{"web-in", it_free_port(), 9}}});
    s1 = it_spawn("s1", run1, IT_STDIN_NULL);
    s2 = it_spawn("s2", run2, IT_STDIN_NULL);
    s1->must_exit_0 = s2->must_exit_0 = true;
    ck_assert(it_wait_http(adm1, "/live", 200, 10000));
    ck_assert(it_wait_http(adm2, "/live", 200, 10000));
    ck_assert_msg(it_wait_lines("s1.err", 2, 10000, "control plane", "unexpected", NULL) >= 2 ||
                      it_wait_lines("s1.err", 2, 1000, "control plane", "not_allowed", NULL) >= 2,
                  "s1 did not refuse the control plane with the wrong ID twice");
    ck_assert_msg(it_wait_lines("s2.err", 2, 10000, "control plane", "untrusted", NULL) >= 2,
                  "s2 did not refuse the control plane of a foreign CA twice");
    ck_assert_msg(!it_file_contains(f1->out_path, "hello") &&
                      !it_file_contains(f2->out_path, "hello"),
                  "a control plane with the wrong identity got a Hello (and the token)");
    ck_assert_msg(!it_file_contains(f1->out_path, "connected") &&
                      !it_file_contains(f2->out_path, "connected"),
                  "a handshake with a wrong control plane completed");
    ck_assert_int_eq(it_http(adm1, "GET", "/ready", NULL), 503);
    ck_assert_int_eq(it_http(adm2, "GET", "/ready", NULL), 503);
}
END_TEST

/* ---- (3) SIGTERM during a transfer ------------------------------------------------------ */

#define T_BYTES (64ull * MIB)
#define T_CHUNK (256 * 1024)

START_TEST(test_sigterm_during_transfer_completes_identical_refuses_new_exits_0)
{
    struct it_mesh m;
    /* T_BYTES of pattern 77, paced to about 32 MiB/s so the transfer is in flight when
     * SIGTERM comes */
    struct it_sender snd = {.seed = 77, .bytes = T_BYTES, .chunk = T_CHUNK, .pause_ms = 8};
    struct it_sha256 *h;
    char *buf = malloc(T_CHUNK), hex[65];
    uint64_t got = 0, bad_at = UINT64_MAX, t_term = 0, t_done;
    bool termed = false;
    pthread_t th;
    ssize_t n;
    int late = 0, st;

    ck_assert_ptr_nonnull(buf);
    it_mesh_certs();
    it_mesh_start(&m, "20s");
    snd.fd = it_connect(m.out_port, 30000);
    ck_assert_msg(snd.fd >= 0, "connect: %s", strerror(-snd.fd));
    h = it_sha256_new();
    ck_assert_int_eq(pthread_create(&th, NULL, it_pattern_sender, &snd), 0);
    while ((n = recv(snd.fd, buf, T_CHUNK, 0)) > 0) {
        size_t ok = bad_at == UINT64_MAX ? it_pattern_check(77, got, buf, (size_t)n) : 0;

        if (bad_at == UINT64_MAX && ok < (size_t)n)
            bad_at = got + ok;
        it_sha256_update(h, buf, (size_t)n);
        got += (uint64_t)n;
        if (!termed && got >= T_BYTES / 4) {
            ck_assert_int_eq(kill(m.b->pid, SIGTERM), 0);
            t_term = it_now_ms();
            termed = true;
            /* B's listeners close once its workers have the drain: refused from then on,
             * while the transfer goes on (a loaded machine may take a few hundred ms to
             * deliver the signal and act on it: an ASan B took 340 ms at -j4) */
            for (uint64_t end = it_now_ms() + 5000; it_now_ms() < end; it_sleep_ms(50)) {
                late = it_connect(m.in_port, 2000);
                if (late < 0)
                    break;
                close(late);
            }
        }
    }
    ck_assert_msg(n == 0, "recv after %llu bytes: %s", (unsigned long long)got, strerror(errno));
    t_done = it_now_ms();
    pthread_join(th, NULL);
    it_sha256_final(h, hex);
    close(snd.fd);
    free(buf);
    st = it_wait(m.b, 10000);
    fprintf(stderr,
            "(3) SIGTERM at %llu of %llu bytes: the transfer ended %llu ms later, identical %s; "
            "B exited %d %llu ms after SIGTERM\n",
            (unsigned long long)(T_BYTES / 4), (unsigned long long)T_BYTES,
            (unsigned long long)(t_done - t_term), bad_at == UINT64_MAX ? "yes" : "no", st,
            (unsigned long long)(it_now_ms() - t_term));
    ck_assert_msg(termed, "B was not signalled");
    ck_assert_msg(late == -ECONNREFUSED, "a new connection to B while draining: %d", late);
    ck_assert_msg(snd.sent == T_BYTES && got == T_BYTES, "sent %llu, received %llu of %llu",
                  (unsigned long long)snd.sent, (unsigned long long)got,
                  (unsigned long long)T_BYTES);
    ck_assert_msg(bad_at == UINT64_MAX, "first corrupt byte at %llu", (unsigned long long)bad_at);
    ck_assert_str_eq(hex, snd.hex);
    ck_assert_msg(st == 0, "B exited %d after SIGTERM", st);
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s =
        IT_TEST_SUITE("faults", "cp_outage", NULL, setup, it_teardown, 180,
                      test_cp_killed_60s_another_stalled_certificate_expires_push_storm_beside);

    IT_TEST_CASE(s, "wrong_cp", setup, it_teardown, 60,
                 test_control_plane_with_wrong_identity_never_hears_the_token);
    IT_TEST_CASE(s, "sigterm", setup, it_teardown, 60,
                 test_sigterm_during_transfer_completes_identical_refuses_new_exits_0);
    return s;
}

int tg_test_subcommand(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "fakecp") == 0)
        return fake_cp(atoi(argv[2]), argv[3], argv[4]);
    return TG_TEST_NO_SUBCOMMAND;
}

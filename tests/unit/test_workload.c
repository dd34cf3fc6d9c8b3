/* identity.workload_api: the endpoint address forms, the config key's checks, the gRPC
 * adapter against an nghttp2 server session in memory (answers whole and cut anywhere, and
 * the answers it must refuse), and an X509SVIDResponse decoded into an identity. */
#include <check.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#include "certs_util.h"
#include "check_main.h"
#include "tollgate/config.h"
#include "tollgate/grpc.h"
#include "tollgate/spiffe.h"
#include "tollgate/workload.h"
#include "workload.pb-c.h"

/* ---- endpoint addresses ---- */

static const struct {
    const char *uri;
    bool bare;
    const char *path; /* NULL: refused, and err contains why */
    const char *why;
} endpoints[] = {
    {"unix:///run/spire/agent.sock", false, "/run/spire/agent.sock", NULL},
    {"unix:/run/spire/agent.sock", false, "/run/spire/agent.sock", NULL},
    {"/run/spire/agent.sock", true, "/run/spire/agent.sock", NULL},
    {"/run/spire/agent.sock", false, NULL, "not a unix:///PATH address"},
    {"tcp://127.0.0.1:8081", false, NULL, "tcp endpoints are not supported"},
    {"unix://host/run/a.sock", false, NULL, "names no host"},
    {"unix:run/a.sock", false, NULL, "must be absolute"},
    {"unix:///run/a.sock?x=1", false, NULL, "query or fragment"},
    {"unix:///run/a.sock#f", false, NULL, "query or fragment"},
    {"unix:///", false, NULL, "no socket path"},
    {"http:///run/a.sock", false, NULL, "not a unix:///PATH address"},
    {"unix:///aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     false, NULL, "longer than 107 bytes"},
};

START_TEST(test_endpoint_forms)
{
    char path[TG_SPIFFE_SOCKET_MAX + 1] = "", err[TG_ERRLEN] = "";
    int rc =
        tg_spiffe_endpoint_socket(endpoints[_i].uri, endpoints[_i].bare, path, sizeof(path), err);

    if (endpoints[_i].path != NULL) {
        ck_assert_msg(rc == 0, "%s: %s", endpoints[_i].uri, err);
        ck_assert_str_eq(path, endpoints[_i].path);
    } else {
        ck_assert_msg(rc < 0, "%s accepted", endpoints[_i].uri);
        ck_assert_msg(strstr(err, endpoints[_i].why) != NULL, "%s: %s", endpoints[_i].uri, err);
    }
}
END_TEST

/* ---- the config key ---- */

#define OUT1                                                                                       \
    "outbound:\n  - listen: 127.0.0.1:9000\n    upstream: 127.0.0.1:8443\n"                        \
    "    expect: [spiffe://m/a]\n"

static const struct {
    const char *yaml;
    const char *want; /* NULL: accepted */
} configs[] = {
    {"identity: {workload_api: unix:///run/a.sock}\n" OUT1, NULL},
    {"identity: {workload_api: /run/a.sock, spiffe_id: spiffe://m/web}\n" OUT1, NULL},
    {"identity: {workload_api: unix:///run/a.sock, cert: c}\n" OUT1,
     "identity.cert: not used with identity.workload_api"},
    {"identity: {workload_api: unix:///run/a.sock, trust_domains: {p.example: p.pem}}\n" OUT1,
     "identity.trust_domains: not used with identity.workload_api"},
    {"identity: {workload_api: unix:///run/a.sock, crl: [c.pem]}\n" OUT1,
     "identity.crl: not used with identity.workload_api"},
    {"identity: {workload_api: unix:///run/a.sock}\ncontrol_plane: {address: 127.0.0.1:1, ca: c, "
     "token: t, server_ids: [spiffe://m/cp]}\n" OUT1,
     NULL},
    {"identity: {cert: c, key: k, trust_bundle: b, spiffe_id: spiffe://m/web}\n" OUT1,
     "identity.spiffe_id: only with identity.workload_api"},
    {"identity: {workload_api: unix:///run/a.sock, spiffe_id: spiffe://M/web}\n" OUT1,
     "identity.spiffe_id: "},
    {"identity: {workload_api: tcp://127.0.0.1:1}\n" OUT1,
     "identity.workload_api: \"tcp://127.0.0.1:1\": tcp endpoints are not supported"},
    {"identity: {workload_api: \"\"}\n" OUT1, "identity.workload_api: is empty"},
};

START_TEST(test_config_workload_api)
{
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";
    int rc = tg_config_parse(configs[_i].yaml, strlen(configs[_i].yaml), "t.yaml", &c, err);

    if (configs[_i].want == NULL) {
        ck_assert_msg(rc == 0, "%s", err);
        ck_assert(c->wl.enabled);
        ck_assert_str_eq(c->wl.socket, "/run/a.sock");
        tg_config_unref(c);
    } else {
        ck_assert_msg(rc < 0, "accepted: %s", configs[_i].yaml);
        ck_assert_msg(strstr(err, configs[_i].want) != NULL, "%s", err);
    }
}
END_TEST

START_TEST(test_config_workload_api_default_from_env)
{
    static const char yaml[] = "identity: {workload_api: default}\n" OUT1;
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";

    unsetenv("SPIFFE_ENDPOINT_SOCKET");
    ck_assert(tg_config_parse(yaml, strlen(yaml), "t.yaml", &c, err) < 0);
    ck_assert_msg(strstr(err, "SPIFFE_ENDPOINT_SOCKET is not set") != NULL, "%s", err);
    setenv("SPIFFE_ENDPOINT_SOCKET", "/run/a.sock", 1); /* the variable takes URIs only */
    ck_assert(tg_config_parse(yaml, strlen(yaml), "t.yaml", &c, err) < 0);
    ck_assert_msg(strstr(err, "SPIFFE_ENDPOINT_SOCKET: \"/run/a.sock\": not a unix") != NULL, "%s",
                  err);
    setenv("SPIFFE_ENDPOINT_SOCKET", "unix:///tmp/agent.sock", 1);
    ck_assert_msg(tg_config_parse(yaml, strlen(yaml), "t.yaml", &c, err) == 0, "%s", err);
    ck_assert_str_eq(c->wl.socket, "/tmp/agent.sock");
    ck_assert_str_eq(c->wl.endpoint, "default");
    tg_config_unref(c);
    unsetenv("SPIFFE_ENDPOINT_SOCKET");
}
END_TEST

/* ---- the gRPC adapter against an nghttp2 server in memory ---- */

struct srv {
    nghttp2_session *s;
    int32_t stream;
    bool saw_meta, saw_te, saw_path;
    /* what the client got */
    int messages;
    size_t bytes;
    uint8_t last[64];
    int ends, status;
    char why[TG_ERRLEN];
    /* what the server sends as the answer's body */
    const uint8_t *body;
    size_t body_len, body_off;
    const char *grpc_status; /* in the trailers, or in the headers of a Trailers-Only answer */
};

static int srv_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                         const uint8_t *v, size_t vl, uint8_t flags, void *arg)
{
    struct srv *x = arg;

    (void)s;
    (void)flags;
    x->stream = f->hd.stream_id;
    if (nl == 18 && memcmp(n, "workload.spiffe.io", 18) == 0 && vl == 4 && !memcmp(v, "true", 4))
        x->saw_meta = true;
    if (nl == 2 && memcmp(n, "te", 2) == 0 && vl == 8 && !memcmp(v, "trailers", 8))
        x->saw_te = true;
    if (nl == 5 && memcmp(n, ":path", 5) == 0 && vl == strlen(TG_WL_PATH) &&
        !memcmp(v, TG_WL_PATH, vl))
        x->saw_path = true;
    return 0;
}

static ssize_t srv_read_body(nghttp2_session *s, int32_t stream, uint8_t *buf, size_t cap,
                             uint32_t *flags, nghttp2_data_source *src, void *arg)
{
    struct srv *x = arg;
    size_t n = x->body_len - x->body_off;

    (void)src;
    n = n < cap ? n : cap;
    memcpy(buf, x->body + x->body_off, n);
    x->body_off += n;
    if (x->body_off == x->body_len) {
        nghttp2_nv t[] = {{(uint8_t *)tg_unconst("grpc-status"),
                           (uint8_t *)tg_unconst(x->grpc_status), 11, strlen(x->grpc_status), 0}};

        /* trailers follow the last DATA (submitted earlier they would overtake it) */
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        ck_assert_int_eq(nghttp2_submit_trailer(s, stream, t, 1), 0);
    }
    return (ssize_t)n;
}

static int cl_on_message(void *arg, const uint8_t *msg, size_t len, char *err)
{
    struct srv *x = arg;

    (void)err;
    x->messages++;
    x->bytes += len;
    memcpy(x->last, msg, len < sizeof(x->last) ? len : sizeof(x->last));
    return 0;
}

static void cl_on_end(void *arg, int status, const char *why)
{
    struct srv *x = arg;

    x->ends++;
    x->status = status;
    snprintf(x->why, sizeof(x->why), "%s", why);
}

static void srv_init(struct srv *x)
{
    nghttp2_session_callbacks *cb;

    memset(x, 0, sizeof(*x));
    ck_assert_int_eq(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, srv_on_header);
    ck_assert_int_eq(nghttp2_session_server_new(&x->s, cb, x), 0);
    nghttp2_session_callbacks_del(cb);
    ck_assert_int_eq(nghttp2_submit_settings(x->s, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

/* Moves bytes both ways until neither side has any; the server's go to the client in
 * pieces of chunk bytes (a frame cut anywhere). */
static void pump(struct srv *x, struct tg_grpc *g, size_t chunk)
{
    char err[TG_ERRLEN] = "";

    for (int round = 0; round < 50; round++) {
        uint8_t *out;
        size_t len;
        const uint8_t *p;
        ssize_t n;
        bool moved = false;

        ck_assert_int_eq(tg_grpc_take_output(g, &out, &len, err), 0);
        if (len > 0) {
            ck_assert_int_eq(nghttp2_session_mem_recv(x->s, out, len), (ssize_t)len);
            moved = true;
        }
        free(out);
        while ((n = nghttp2_session_mem_send(x->s, &p)) > 0) {
            for (size_t off = 0; off < (size_t)n; off += chunk) {
                size_t k = (size_t)n - off < chunk ? (size_t)n - off : chunk;

                if (tg_grpc_recv(g, p + off, k, err) < 0)
                    return;
            }
            moved = true;
        }
        if (!moved)
            return;
    }
    ck_abort_msg("the exchange does not settle");
}

static const struct tg_grpc_meta wl_meta[] = {{"workload.spiffe.io", "true"}};

static struct tg_grpc *client(struct srv *x, size_t max_message)
{
    const struct tg_grpc_call call = {"localhost", TG_WL_PATH, wl_meta, 1, NULL, 0, max_message};
    const struct tg_grpc_ops ops = {cl_on_message, cl_on_end, x};
    struct tg_grpc *g;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(tg_grpc_new(&call, &ops, &g, err) == 0, "%s", err);
    return g;
}

/* The server answers the call: headers (status, content-type), then the body and trailers
 * with grpc_status, or without a body a Trailers-Only answer. */
static void answer(struct srv *x, const char *status, const char *ctype, const uint8_t *body,
                   size_t len, const char *grpc_status)
{
    nghttp2_nv h[] = {
        {(uint8_t *)tg_unconst(":status"), (uint8_t *)tg_unconst(status), 7, strlen(status), 0},
        {(uint8_t *)tg_unconst("content-type"), (uint8_t *)tg_unconst(ctype), 12, strlen(ctype), 0},
        {(uint8_t *)tg_unconst("grpc-status"), (uint8_t *)tg_unconst(grpc_status), 11,
         strlen(grpc_status), 0},
    };
    nghttp2_data_provider d = {.read_callback = srv_read_body};

    ck_assert_int_gt(x->stream, 0);
    x->body = body;
    x->body_len = len;
    x->grpc_status = grpc_status;
    ck_assert_int_eq(
        nghttp2_submit_response(x->s, x->stream, h, len > 0 ? 2 : 3, len > 0 ? &d : NULL), 0);
}

/* n messages of size bytes each, every byte i % 251, each with its gRPC prefix */
static uint8_t *messages(int n, size_t size, uint8_t flag, size_t *len)
{
    uint8_t *b = malloc((size + 5) * (size_t)n), *p = b;

    ck_assert_ptr_nonnull(b);
    for (int k = 0; k < n; k++) {
        *p++ = flag;
        for (int i = 3; i >= 0; i--)
            *p++ = (uint8_t)(size >> (8 * i));
        for (size_t i = 0; i < size; i++)
            *p++ = (uint8_t)(i % 251);
    }
    *len = (size + 5) * (size_t)n;
    return b;
}

START_TEST(test_grpc_messages_whole_and_cut)
{
    static const size_t chunks[] = {1, 7, 100000};
    struct srv x;
    struct tg_grpc *g;
    size_t len;
    uint8_t *body = messages(3, 20000, 0, &len);

    for (size_t c = 0; c < TG_NELEM(chunks); c++) {
        srv_init(&x);
        g = client(&x, 65536);
        pump(&x, g, chunks[c]);
        ck_assert(x.saw_meta && x.saw_te && x.saw_path);
        answer(&x, "200", "application/grpc", body, len, "0");
        pump(&x, g, chunks[c]);
        ck_assert_int_eq(x.messages, 3);
        ck_assert_uint_eq(x.bytes, 60000);
        ck_assert_uint_eq(x.last[63], 63);
        ck_assert_int_eq(x.ends, 1);
        ck_assert_int_eq(x.status, 0);
        ck_assert(!tg_grpc_alive(g)); /* the call is over: the caller closes */
        tg_grpc_free(g);
        nghttp2_session_del(x.s);
    }
    free(body);
}
END_TEST

static const struct {
    const char *status, *ctype, *grpc_status;
    size_t size;
    uint8_t flag;
    const char *why;
} refusals[] = {
    {"200", "application/grpc", "0", 70000, 0, "a message of 70000 bytes, over 65536"},
    {"200", "application/grpc", "0", 10, 1, "a compressed message"},
    {"404", "text/html", "0", 10, 0, "HTTP status 404"},
    {"200", "text/html", "0", 10, 0, "content-type is not application/grpc"},
    {"200", "application/grpc", "7", 0, 0, "grpc-status 7"},
    {"200", "application/grpc", "x", 0, 0, "malformed grpc-status"},
};

START_TEST(test_grpc_refusals)
{
    struct srv x;
    struct tg_grpc *g;
    size_t len = 0;
    uint8_t *body =
        refusals[_i].size ? messages(1, refusals[_i].size, refusals[_i].flag, &len) : NULL;

    srv_init(&x);
    g = client(&x, 65536);
    pump(&x, g, 4096);
    answer(&x, refusals[_i].status, refusals[_i].ctype, body, len, refusals[_i].grpc_status);
    pump(&x, g, 4096);
    ck_assert_int_eq(x.messages, 0);
    ck_assert_int_eq(x.ends, 1);
    ck_assert_msg(strstr(x.why, refusals[_i].why) != NULL, "%s", x.why);
    ck_assert(!tg_grpc_alive(g));
    tg_grpc_free(g);
    nghttp2_session_del(x.s);
    free(body);
}
END_TEST

START_TEST(test_grpc_garbage_ends_the_session)
{
    static const uint8_t junk[] = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    struct srv x = {0};
    struct tg_grpc *g = client(&x, 65536);
    char err[TG_ERRLEN] = "";
    uint8_t *out;
    size_t len;

    if (tg_grpc_recv(g, junk, sizeof(junk) - 1, err) < 0)
        ck_assert(err[0] != '\0');
    ck_assert_int_eq(tg_grpc_take_output(g, &out, &len, err), 0);
    free(out);
    ck_assert_int_eq(x.ends, 1);
    ck_assert_int_eq(x.status, -1);
    ck_assert(!tg_grpc_alive(g));
    tg_grpc_free(g);
}
END_TEST

/* ---- decoding an X509SVIDResponse ---- */

/* NAME.pem's first certificate (key: NAME.key as PKCS#8), as DER, by the openssl CLI */
static ProtobufCBinaryData der_of(bool key, const char *name)
{
    char cmd[1024], file[64], der[80], *out;
    size_t len;

    snprintf(file, sizeof(file), "%s.%s", name, key ? "key" : "pem");
    snprintf(cmd, sizeof(cmd), "cd %s && openssl %s -in %s -outform DER -out %s.der", cu_dir,
             key ? "pkcs8 -topk8 -nocrypt" : "x509", file, file);
    ck_assert_msg(system(cmd) == 0, "%s", cmd);
    snprintf(der, sizeof(der), "%s.der", file);
    out = cu_read(der, &len);
    return (ProtobufCBinaryData){len, (uint8_t *)out};
}

#define CERT_DER false
#define KEY_DER true

struct resp {
    X509SVIDResponse r;
    X509SVID s[2], *sp[2];
    X509SVIDResponse__FederatedBundlesEntry f, *fp[1];
    uint8_t *packed;
    size_t len;
};

/* fed_key names the federated bundle (bad_fed: its bytes are no DER); trailing_junk follows
 * web's chain with bytes that are no certificate */
static void make_resp(struct resp *x, const char *fed_key, bool bad_fed, bool trailing_junk)
{
    ProtobufCBinaryData ca = der_of(CERT_DER, "ca"), pca = der_of(CERT_DER, "pca");

    memset(x, 0, sizeof(*x));
    x509_svidresponse__init(&x->r);
    for (int i = 0; i < 2; i++) {
        const char *name = i == 0 ? "api" : "web";

        x509_svid__init(&x->s[i]);
        x->s[i].spiffe_id = tg_unconst(i == 0 ? "spiffe://mesh.local/ns/default/sa/api"
                                              : "spiffe://mesh.local/ns/default/sa/web");
        x->s[i].x509_svid = der_of(CERT_DER, name);
        x->s[i].x509_svid_key = der_of(KEY_DER, name);
        x->s[i].bundle = ca;
        x->sp[i] = &x->s[i];
    }
    if (trailing_junk) {
        x->s[1].x509_svid.data = realloc(x->s[1].x509_svid.data, x->s[1].x509_svid.len + 3);
        memcpy(x->s[1].x509_svid.data + x->s[1].x509_svid.len, "\x02\x05x", 3);
        x->s[1].x509_svid.len += 3;
    }
    x->r.n_svids = 2;
    x->r.svids = x->sp;
    x509_svidresponse__federated_bundles_entry__init(&x->f);
    x->f.key = (char *)tg_unconst(fed_key);
    x->f.value = pca;
    if (bad_fed)
        x->f.value.len = 7; /* a certificate's first bytes only */
    x->fp[0] = &x->f;
    x->r.n_federated_bundles = 1;
    x->r.federated_bundles = x->fp;
    x->len = x509_svidresponse__get_packed_size(&x->r);
    x->packed = malloc(x->len);
    ck_assert_ptr_nonnull(x->packed);
    x509_svidresponse__pack(&x->r, x->packed);
    for (int i = 0; i < 2; i++) {
        free(x->s[i].x509_svid.data);
        free(x->s[i].x509_svid_key.data);
    }
    free(ca.data);
    free(pca.data);
}

static void decode_setup(void)
{
    cu_setup();
    cu_certs("ca", "--out", "ca", NULL);
    cu_certs("ca", "--out", "pca", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "api", "--spiffe",
             "spiffe://mesh.local/ns/default/sa/api", NULL);
    cu_certs("issue", "--ca", "ca", "--out", "web", "--spiffe",
             "spiffe://mesh.local/ns/default/sa/web", NULL);
}

START_TEST(test_decode_picks_the_svid)
{
    struct resp x;
    struct tg_svid *s = NULL;
    struct tg_identity *id = NULL;
    char err[TG_ERRLEN] = "";

    make_resp(&x, "spiffe://partner.example", false, false);
    /* the first, or the one asked for */
    ck_assert_msg(tg_wl_decode(x.packed, x.len, NULL, &s, err) == 0, "%s", err);
    ck_assert_str_eq(s->spiffe_id, "spiffe://mesh.local/ns/default/sa/api");
    tg_svid_free(s);
    ck_assert_msg(tg_wl_decode(x.packed, x.len, "spiffe://mesh.local/ns/default/sa/web", &s, err) ==
                      0,
                  "%s", err);
    ck_assert_str_eq(s->spiffe_id, "spiffe://mesh.local/ns/default/sa/web");
    ck_assert_uint_eq(s->n_domains, 1);
    ck_assert_str_eq(s->domains[0].domain, "partner.example");
    ck_assert_msg(tg_svid_identity(s, &id, err) == 0, "%s", err);
    ck_assert_str_eq(id->leaf.id.id, "spiffe://mesh.local/ns/default/sa/web");
    ck_assert_uint_eq(id->n_domains, 2);
    tg_identity_free(id);
    /* the entry says one ID, the certificate another: refused */
    snprintf(s->spiffe_id, sizeof(s->spiffe_id), "spiffe://mesh.local/ns/default/sa/api");
    ck_assert(tg_svid_identity(s, &id, err) < 0);
    ck_assert_msg(strstr(err, "is not the entry's") != NULL, "%s", err);
    tg_svid_free(s);
    ck_assert(tg_wl_decode(x.packed, x.len, "spiffe://mesh.local/ns/default/sa/db", &s, err) < 0);
    ck_assert_msg(strstr(err, "none of its 2 SVIDs is spiffe://mesh.local/ns/default/sa/db"), "%s",
                  err);
    ck_assert(tg_wl_decode(x.packed, x.len - 1, NULL, &s, err) < 0);
    ck_assert_msg(strstr(err, "does not decode") != NULL, "%s", err);
    free(x.packed);
}
END_TEST

START_TEST(test_decode_refuses_malformed_parts)
{
    struct resp x;
    struct tg_svid *s = NULL;
    char err[TG_ERRLEN] = "";

    make_resp(&x, "spiffe://partner.example/path", false, false);
    ck_assert(tg_wl_decode(x.packed, x.len, NULL, &s, err) < 0);
    ck_assert_msg(strstr(err, "is not a trust domain ID") != NULL, "%s", err);
    free(x.packed);
    make_resp(&x, "partner.example", false, true);
    ck_assert(tg_wl_decode(x.packed, x.len, "spiffe://mesh.local/ns/default/sa/web", &s, err) < 0);
    ck_assert_msg(strstr(err, "x509_svid: certificate 2 is not a DER SEQUENCE") != NULL, "%s", err);
    free(x.packed);
    /* a federated bundle cut short: refused, its name freed with the rest (ASan) */
    make_resp(&x, "partner.example", true, false);
    ck_assert(tg_wl_decode(x.packed, x.len, NULL, &s, err) < 0);
    ck_assert_msg(strstr(err, "federated_bundles[partner.example]: certificate 1 is not") != NULL,
                  "%s", err);
    free(x.packed);
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s = suite_create("workload");
    TCase *tc = tcase_create("endpoint_config");
    TCase *grpc = tcase_create("grpc");
    TCase *dec = tcase_create("decode");

    tcase_add_loop_test(tc, test_endpoint_forms, 0, TG_NELEM(endpoints));
    tcase_add_loop_test(tc, test_config_workload_api, 0, TG_NELEM(configs));
    tcase_add_test(tc, test_config_workload_api_default_from_env);
    suite_add_tcase(s, tc);
    tcase_add_test(grpc, test_grpc_messages_whole_and_cut);
    tcase_add_loop_test(grpc, test_grpc_refusals, 0, TG_NELEM(refusals));
    tcase_add_test(grpc, test_grpc_garbage_ends_the_session);
    suite_add_tcase(s, grpc);
    tcase_add_checked_fixture(dec, decode_setup, cu_teardown);
    tcase_add_test(dec, test_decode_picks_the_svid);
    tcase_add_test(dec, test_decode_refuses_malformed_parts);
    suite_add_tcase(s, dec);
    return s;
}

/* The control-plane stream end to end in one process: tollgate-cp's server (controlplane/)
 * and the sidecar's client (sidecar/control/cp_client.c) on one loop on 127.0.0.1, certificates
 * made with $TG_CERTS_BIN. Bootstrap by token, CSR, the six pushes and their ACKs, NACK, reload,
 * resume after a reconnect (by certificate), a refused token, and bad frames. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "certs_util.h"
#include "unit_util.h"
#include "cp_server.h"
#include "tollgate/cp_client.h"
#include "tollgate/frame.h"
#include "tollgate/identity.h"
#include "tollgate/msgstream.h"

#define CP_ID "spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp"
#define WEB_TOKEN "web-token-0123456789abcdef"
#define DEADLINE_MS 20000

static const char mesh_yaml[] = "authorization:\n"
                                "  default: deny\n"
                                "  close_denied: true\n"
                                "  rules:\n"
                                "    - name: allow-web\n"
                                "      action: allow\n"
                                "      scope: {namespace: prod}\n"
                                "      principals: [\"spiffe://mesh.local/ns/default/sa/web\"]\n"
                                "    - name: deny-bad\n"
                                "      action: deny\n"
                                "      principals: [\"spiffe://mesh.local/ns/bad/*\"]\n"
                                "      methods: [DELETE]\n"
                                "      paths: [/admin/*, /x]\n"
                                "      hosts: [web.local]\n"
                                "rate_limits:\n"
                                "  key: fingerprint\n"
                                "  overrides:\n"
                                "    - principal: \"spiffe://mesh.local/ns/default/*\"\n"
                                "      connections_per_second: 100\n"
                                "      burst: 200\n"
                                "      requests_per_second: 7\n"
                                "      requests_burst: 9\n"
                                "revocations:\n"
                                "  serials: [\"0A:1B\"]\n"
                                "mesh:\n"
                                "  outside: refuse\n"
                                "  destinations:\n"
                                "    - address: 10.0.0.0/24\n"
                                "      port: 8080\n"
                                "      expect: [\"spiffe://mesh.local/ns/prod/sa/api\"]\n"
                                "      protocol: http\n"
                                "      tunnel: auto\n"
                                "settings:\n"
                                "  tls:\n"
                                "    min_version: \"1.2\"\n"
                                "    cipher_suites: [TLS13-AES128-GCM-SHA256]\n"
                                "  timeouts: {handshake: 5s, idle: 10m, connect: 250ms}\n"
                                "  inbound: {mode: permissive}\n";

struct h {
    uv_loop_t loop;
    uv_timer_t poll;
    uint64_t deadline;
    struct tg_cp_server *srv;
    struct tg_cp_client *cli;
    char *root_pem;
    size_t root_len;
    struct tg_identity_key *key;
    struct tg_identity *id;
    int ups, downs, certs, csr_refused;
    int pushes[TG_RES_N];
    size_t authz_rules;
    char http_conds[128];    /* the first pushed rule's methods, paths, hosts */
    uint32_t rps, rburst;    /* the first pushed limit's requests_per_second, requests_burst */
    char got[TG_RES_N][256]; /* what each push's fields that were renamed in 2026-12 carry */
    int nack_type;
    bool (*until)(struct h *h);
    char last_down[TG_ERRLEN];
    char cert_refused[TG_ERRLEN];
};

static struct h H;

/* ---- client callbacks ---- */

static int on_make_ctx(void *arg, struct tg_tls_ctx **out, bool *has_identity, char *err)
{
    struct h *h = arg;
    struct tg_tls_settings s = {.max_chain_depth = 4};

    *has_identity = h->id != NULL;
    return tg_tls_ctx_new_cp(h->id, h->root_pem, h->root_len, &s, out, err);
}

static void on_up(void *arg)
{
    struct h *h = arg;
    unsigned char *csr;
    size_t len;
    char err[TG_ERRLEN] = "";

    h->ups++;
    if (h->id != NULL || h->key != NULL)
        return;
    ck_assert_msg(tg_identity_keygen(&h->key, err) == 0, "%s", err);
    /* the CSR asks for another identity: the control plane must not care */
    ck_assert_msg(tg_identity_csr(h->key, "spiffe://mesh.local/ns/prod/sa/api", &csr, &len, err) ==
                      0,
                  "%s", err);
    ck_assert_int_eq(tg_cp_client_request_cert(h->cli, csr, len, err), 0);
    free(csr);
}

static void on_down(void *arg, const char *reason)
{
    struct h *h = arg;

    h->downs++;
    snprintf(h->last_down, sizeof(h->last_down), "%s", reason);
}

static int on_cert(void *arg, const char *chain, size_t len, char *err)
{
    struct h *h = arg;
    struct tg_identity_pem p = {.chain = chain,
                                .chain_len = len,
                                .key = h->key->pem,
                                .key_len = h->key->pem_len,
                                .bundle = h->root_pem,
                                .bundle_len = h->root_len};
    struct tg_identity *id;
    int rc = tg_identity_from_pem(&p, &id, err);

    if (rc < 0)
        return rc;
    tg_identity_free(h->id);
    h->id = id;
    h->certs++;
    return 0;
}

static void on_cert_refused(void *arg, const char *why)
{
    struct h *h = arg;

    h->csr_refused++;
    snprintf(h->cert_refused, sizeof(h->cert_refused), "%s", why);
}

/* The fields of r whose protobuf names changed (proto/tollgate.proto), as one line. */
static void describe(const struct tg_resource *r, char *dst, size_t cap)
{
    const struct tg_res_authorization *a = &r->u.authorization;
    const struct tg_res_rate_limits *l = &r->u.rate_limits;
    const struct tg_res_mesh_table *m = &r->u.mesh_table;
    const struct tg_res_proxy_settings *p = &r->u.proxy_settings;

    dst[0] = '\0';
    if (r->type == TG_RES_AUTHORIZATION)
        snprintf(dst, cap, "default %s close_denied %d", a->default_deny ? "deny" : "allow",
                 a->close_denied_connections);
    if (r->type == TG_RES_RATE_LIMITS && l->n_limits > 0)
        snprintf(dst, cap, "key %s principal %s",
                 l->limits[0].key_by == TG_RES_LIMIT_BY_FINGERPRINT ? "fingerprint" : "id",
                 l->limits[0].match);
    if (r->type == TG_RES_MESH_TABLE && m->n_destinations > 0)
        snprintf(dst, cap, "outside %s address %s expect %s tunnel %s",
                 m->outside_refuse ? "refuse" : "-", m->destinations[0].address,
                 m->destinations[0].expected_ids.n > 0 ? m->destinations[0].expected_ids.v[0] : "-",
                 tg_config_tunnel_name(m->destinations[0].tunnel));
    if (r->type == TG_RES_PROXY_SETTINGS)
        snprintf(dst, cap, "tls %s %s timeouts %llu %llu %llu mode %d",
                 p->min_tls_version != NULL ? p->min_tls_version : "-",
                 p->cipher_suites.n > 0 ? p->cipher_suites.v[0] : "-",
                 (unsigned long long)p->handshake_timeout_ms,
                 (unsigned long long)p->idle_timeout_ms, (unsigned long long)p->connect_timeout_ms,
                 (int)p->inbound_mode);
}

static int on_push(void *arg, struct tg_resource *res, const char *version, char *err)
{
    struct h *h = arg;
    int type = res->type;

    ck_assert(version[0] != '\0');
    h->pushes[type]++;
    if (type == TG_RES_AUTHORIZATION)
        h->authz_rules = res->u.authorization.n_rules;
    if (type == TG_RES_AUTHORIZATION && res->u.authorization.n_rules > 0) {
        const struct tg_res_rule *r = &res->u.authorization.rules[0];
        const struct tg_strlist *l[] = {&r->methods, &r->paths, &r->hosts};
        size_t at = 0;

        h->http_conds[0] = '\0';
        for (size_t i = 0; i < 3; i++)
            for (size_t j = 0; j < l[i]->n && at < sizeof(h->http_conds); j++)
                at += (size_t)snprintf(h->http_conds + at, sizeof(h->http_conds) - at, "%s%s",
                                       at ? " " : "", l[i]->v[j]);
    }
    if (type == TG_RES_RATE_LIMITS && res->u.rate_limits.n_limits > 0) {
        h->rps = res->u.rate_limits.limits[0].requests_per_second;
        h->rburst = res->u.rate_limits.limits[0].requests_burst;
    }
    describe(res, h->got[type], sizeof(h->got[type]));
    tg_resource_free(res);
    if (type == h->nack_type)
        return tg_err_set(err, TG_EINVAL, "test refuses %s", tg_res_type_name(type));
    return 0;
}

/* ---- running ---- */

static void on_poll(uv_timer_t *t)
{
    struct h *h = t->data;

    if (h->until(h) || uv_now(&h->loop) >= h->deadline)
        uv_stop(&h->loop);
}

static bool run_until(bool (*until)(struct h *h), uint64_t ms)
{
    H.until = until;
    H.deadline = uv_now(&H.loop) + ms;
    uv_timer_start(&H.poll, on_poll, 10, 10);
    uv_run(&H.loop, UV_RUN_DEFAULT);
    uv_timer_stop(&H.poll);
    return until(&H);
}

static bool never(struct h *h)
{
    (void)h;
    return false;
}

static void write_file(const char *name, const char *text)
{
    FILE *f = fopen(cu_path(name), "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void write_config(int port)
{
    char text[1024];

    snprintf(text, sizeof(text),
             "listen: 127.0.0.1:%d\n"
             "trust_domain: mesh.local\n"
             "server: {cert: cp.pem, key: cp.key}\n"
             "ca: {cert: root.pem, key: root.key}\n"
             "cert_ttl: 1h\n"
             "tokens: tokens.txt\n"
             "mesh: mesh.yaml\n"
             "log_level: warn\n",
             port);
    write_file("cp.yaml", text);
}

static void start_server(void)
{
    char err[TG_ERRLEN] = "";

    ck_assert_msg(tg_cp_server_new(&H.loop, cu_path("cp.yaml"), &H.srv, err) == 0, "%s", err);
}

/* The control plane as the client expects it (kept by the client), and the client's labels. */
static char *cp_ids[] = {UT_STR(CP_ID)};
static const struct tg_strlist server_ids = {cp_ids, 1};
static const struct tg_res_label labels[] = {{UT_STR("app"), UT_STR("web")}};

/* A client of our server, or of addresses when not NULL. */
static void start_client_of(const struct tg_strlist *addresses)
{
    struct tg_cp_client_ops ops = {on_make_ctx,     on_up,   on_down, on_cert,
                                   on_cert_refused, on_push, &H};
    char address[64], err[TG_ERRLEN] = "";
    struct tg_cp_client_cfg cfg = {
        .address = address,
        .addresses = addresses,
        .token_path = cu_path("token"),
        .server_ids = &server_ids,
        .node_id = "node-1",
        .version = "test",
        .labels = labels,
        .n_labels = 1,
    };

    snprintf(address, sizeof(address), "127.0.0.1:%d", tg_cp_server_port(H.srv));
    ck_assert_msg(tg_cp_client_new(&H.loop, &cfg, &ops, &H.cli, err) == 0, "%s", err);
    tg_cp_client_start(H.cli);
}

static void start_client(void)
{
    start_client_of(NULL);
}

static void setup(void)
{
    memset(&H, 0, sizeof(H));
    cu_setup();
    cu_certs("ca", "--out", "root", NULL);
    cu_certs("issue", "--ca", "root", "--out", "cp", "--spiffe", CP_ID, NULL);
    write_file("tokens.txt", WEB_TOKEN " default web\n");
    write_file("token", WEB_TOKEN "\n");
    write_file("mesh.yaml", mesh_yaml);
    write_config(0);
    H.root_pem = cu_read("root.pem", &H.root_len);
    ck_assert_int_eq(tg_tls_init(), 0);
    ck_assert_int_eq(uv_loop_init(&H.loop), 0);
    uv_timer_init(&H.loop, &H.poll);
    H.poll.data = &H;
    start_server();
}

static void teardown(void)
{
    if (H.cli != NULL)
        tg_cp_client_close(H.cli, NULL, NULL);
    if (H.srv != NULL)
        tg_cp_server_close(H.srv, NULL, NULL);
    uv_close((uv_handle_t *)&H.poll, NULL);
    uv_run(&H.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&H.loop), 0);
    tg_identity_free(H.id);
    tg_identity_key_free(H.key);
    free(H.root_pem);
    tg_tls_cleanup();
    cu_teardown();
}

static int total_pushes(const struct h *h)
{
    int n = 0;

    for (int t = 0; t < TG_RES_N; t++)
        n += h->pushes[t];
    return n;
}

static bool bootstrapped(struct h *h)
{
    return h->certs == 1 && total_pushes(h) == 6 &&
           tg_cp_server_stats(h->srv)->acks >= 7; /* six pushes and the certificate */
}

/* ---- tests ---- */

START_TEST(test_cp_stream_bootstrap_by_token)
{
    const struct tg_cp_client_stats *cs;

    start_client();
    ck_assert_msg(run_until(bootstrapped, DEADLINE_MS), "certs %d pushes %d acks %llu", H.certs,
                  total_pushes(&H), (unsigned long long)tg_cp_server_stats(H.srv)->acks);
    /* the token's identity, not the one the CSR asked for */
    ck_assert_str_eq(H.id->leaf.id.id, "spiffe://mesh.local/ns/default/sa/web");
    ck_assert(H.id->leaf.eku_client && H.id->leaf.eku_server && !H.id->leaf.is_ca);
    ck_assert_int_le(H.id->leaf.not_after - tg_identity_now(), 3600);
    for (int t = TG_RES_TRUST_BUNDLE; t < TG_RES_N; t++) {
        ck_assert_int_eq(H.pushes[t], 1);
        ck_assert_str_ne(tg_cp_client_version(H.cli, (enum tg_res_type)t), "");
    }
    /* "allow-web" protects namespace prod: not pushed to a default sidecar */
    ck_assert_uint_eq(H.authz_rules, 1);
    /* the HTTP conditions and request limits survive the mesh file, the encoder and the
     * client's decoding */
    ck_assert_str_eq(H.http_conds, "DELETE /admin/* /x web.local");
    ck_assert_uint_eq(H.rps, 7);
    ck_assert_uint_eq(H.rburst, 9);
    /* so do the fields renamed in the proto, under the names of the YAML */
    ck_assert_str_eq(H.got[TG_RES_AUTHORIZATION], "default deny close_denied 1");
    ck_assert_str_eq(H.got[TG_RES_RATE_LIMITS],
                     "key fingerprint principal spiffe://mesh.local/ns/default/*");
    ck_assert_str_eq(
        H.got[TG_RES_MESH_TABLE],
        "outside refuse address 10.0.0.0/24 expect spiffe://mesh.local/ns/prod/sa/api tunnel "
        "auto");
    ck_assert_str_eq(H.got[TG_RES_PROXY_SETTINGS],
                     "tls 1.2 TLS13-AES128-GCM-SHA256 timeouts 5000 600000 250 mode 2");
    cs = tg_cp_client_stats(H.cli);
    ck_assert(cs->connected);
    ck_assert_uint_eq(cs->pushes_accepted, 6);
    ck_assert_uint_eq(cs->csrs_sent, 1);
    ck_assert_uint_eq(cs->certs_accepted, 1);
    ck_assert_uint_eq(tg_cp_server_stats(H.srv)->certs_issued, 1);
}
END_TEST

static bool one_nack(struct h *h)
{
    return tg_cp_server_stats(h->srv)->nacks == 1 && total_pushes(h) == 6;
}

START_TEST(test_cp_stream_nack_keeps_last_version)
{
    H.nack_type = TG_RES_MESH_TABLE;
    start_client();
    ck_assert(run_until(one_nack, DEADLINE_MS));
    ck_assert_str_eq(tg_cp_client_version(H.cli, TG_RES_MESH_TABLE), "");
    ck_assert_str_ne(tg_cp_client_version(H.cli, TG_RES_PROXY_SETTINGS), "");
    ck_assert_uint_eq(tg_cp_client_stats(H.cli)->pushes_rejected, 1);
    ck_assert_uint_eq(tg_cp_client_stats(H.cli)->pushes_accepted, 5);
}
END_TEST

static bool limits_twice(struct h *h)
{
    return h->pushes[TG_RES_RATE_LIMITS] == 2;
}

START_TEST(test_cp_stream_reload_pushes_what_changed)
{
    char text[sizeof(mesh_yaml) + 64];
    const char *old_version;
    char before[64];

    start_client();
    ck_assert(run_until(bootstrapped, DEADLINE_MS));
    old_version = tg_cp_client_version(H.cli, TG_RES_RATE_LIMITS);
    snprintf(before, sizeof(before), "%s", old_version);
    snprintf(text, sizeof(text), "%s", mesh_yaml);
    memcpy(strstr(text, "burst: 200"), "burst: 300", 10);
    write_file("mesh.yaml", text);
    ck_assert_int_eq(tg_cp_server_reload(H.srv, "test"), 0);
    ck_assert(run_until(limits_twice, DEADLINE_MS));
    run_until(never, 300);
    ck_assert_str_ne(tg_cp_client_version(H.cli, TG_RES_RATE_LIMITS), before);
    ck_assert_int_eq(total_pushes(&H), 7); /* only the rate limits again */
    /* a file that does not parse is refused and changes nothing */
    write_file("mesh.yaml", "rate_limits: [\n");
    ck_assert_int_eq(tg_cp_server_reload(H.srv, "test"), TG_ECONFIG);
    run_until(never, 200);
    ck_assert_int_eq(total_pushes(&H), 7);
    ck_assert(tg_cp_client_stats(H.cli)->connected);
}
END_TEST

static bool up_twice(struct h *h)
{
    return h->ups == 2 && tg_cp_server_stats(h->srv)->streams == 1 &&
           tg_cp_server_stats(h->srv)->open_streams == 1 && h->downs == 1;
}

static void on_old_server_closed(void *arg)
{
    (void)arg;
}

/* The stream ends; the client comes back with its certificate (the token file is gone) and
 * the versions it holds, and nothing is pushed again. */
START_TEST(test_cp_stream_resume_after_reconnect)
{
    int port;

    start_client();
    ck_assert(run_until(bootstrapped, DEADLINE_MS));
    port = tg_cp_server_port(H.srv);
    tg_cp_server_close(H.srv, on_old_server_closed, NULL);
    H.srv = NULL;
    run_until(never, 100);
    ck_assert_int_eq(H.downs, 1);
    ck_assert_msg(strstr(H.last_down, "shutting down") != NULL, "%s", H.last_down);
    ck_assert_int_eq(unlink(cu_path("token")), 0);
    write_config(port);
    start_server();
    ck_assert_msg(run_until(up_twice, DEADLINE_MS), "ups %d downs %d: %s", H.ups, H.downs,
                  tg_cp_client_stats(H.cli)->last_error);
    run_until(never, 300);
    ck_assert_uint_eq(tg_cp_server_stats(H.srv)->pushes, 0);
    ck_assert_uint_eq(tg_cp_server_stats(H.srv)->refused, 0);
    ck_assert_int_eq(total_pushes(&H), 6);
    ck_assert_uint_ge(tg_cp_client_stats(H.cli)->reconnects, 1);
}
END_TEST

/* A list of replicas: the first refuses connections (nothing listens on port 1), the second
 * is ours. One round tries both, without a backoff between them. */
START_TEST(test_cp_stream_tries_every_replica)
{
    char live[64], dead[] = "127.0.0.1:1";
    char *v[] = {dead, live};
    const struct tg_strlist addresses = {v, 2};
    const struct tg_cp_client_stats *cs;

    snprintf(live, sizeof(live), "127.0.0.1:%d", tg_cp_server_port(H.srv));
    start_client_of(&addresses);
    ck_assert_msg(run_until(bootstrapped, DEADLINE_MS), "%s",
                  tg_cp_client_stats(H.cli)->last_error);
    cs = tg_cp_client_stats(H.cli);
    ck_assert_str_eq(cs->replica, live);
    ck_assert_uint_eq(cs->reconnects, 1); /* the dead one, then ours */
    ck_assert_uint_eq(cs->failovers, 0);  /* the first stream is no failover */
    ck_assert_msg(strstr(cs->last_error, "127.0.0.1:1") != NULL, "%s", cs->last_error);
}
END_TEST

/* A replica that takes the TCP connection and never answers (a hung process, a SYN-ACK from
 * a box in the way): the try is given up at TG_CP_CONNECT_TIMEOUT_MS, counted as a handshake
 * timeout, and the next replica serves us in the same round. */
START_TEST(test_cp_stream_silent_replica_times_out)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    char silent[64], live[64];
    char *v[] = {silent, live};
    const struct tg_strlist addresses = {v, 2};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint64_t t0;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(fd, 8), 0); /* the kernel completes the connect; nobody reads */
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
    snprintf(silent, sizeof(silent), "127.0.0.1:%d", ntohs(sin.sin_port));
    snprintf(live, sizeof(live), "127.0.0.1:%d", tg_cp_server_port(H.srv));
    uv_update_time(&H.loop);
    t0 = uv_now(&H.loop);
    start_client_of(&addresses);
    ck_assert_msg(run_until(bootstrapped, DEADLINE_MS), "%s",
                  tg_cp_client_stats(H.cli)->last_error);
    ck_assert_uint_ge(uv_now(&H.loop) - t0, TG_CP_CONNECT_TIMEOUT_MS);
    ck_assert_uint_lt(uv_now(&H.loop) - t0, TG_CP_CONNECT_TIMEOUT_MS + 3000);
    ck_assert_uint_eq(tg_cp_client_stats(H.cli)->handshakes_failed[TG_HSF_TIMEOUT], 1);
    ck_assert_str_eq(tg_cp_client_stats(H.cli)->replica, live);
    close(fd);
}
END_TEST

static bool refused(struct h *h)
{
    return strstr(tg_cp_client_stats(h->cli)->last_error, "not recognised") != NULL;
}

START_TEST(test_cp_stream_unknown_token_refused)
{
    write_file("token", "not-a-known-token-0123456789\n");
    start_client();
    ck_assert_msg(run_until(refused, DEADLINE_MS), "%s", tg_cp_client_stats(H.cli)->last_error);
    ck_assert_int_eq(H.certs, 0);
    ck_assert_int_eq(total_pushes(&H), 0);
    ck_assert_uint_ge(tg_cp_server_stats(H.srv)->refused, 1);
}
END_TEST

/* ---- raw streams with bad frames ---- */

struct raw {
    struct tg_msgstream *ms;
    struct tg_tls_ctx *ctx;
    const char *payload;
    size_t len;
    int frames;
    bool closed;
    char reason[TG_ERRLEN];
};

static void raw_connected(struct tg_msgstream *s)
{
    struct raw *r = tg_msgstream_data(s);
    char err[TG_ERRLEN];

    ck_assert_msg(tg_msgstream_send(s, r->payload, r->len, err) == 0, "%s", err);
}

static void raw_frame(struct tg_msgstream *s, const char *frame, size_t len)
{
    struct raw *r = tg_msgstream_data(s);

    (void)frame;
    (void)len;
    r->frames++;
}

static void raw_closed(struct tg_msgstream *s, const char *reason)
{
    struct raw *r = tg_msgstream_data(s);

    r->closed = true;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

static struct raw RAW;

static bool raw_done(struct h *h)
{
    (void)h;
    return RAW.closed;
}

static void raw_run(const char *payload, size_t len, size_t max_frame)
{
    static const struct tg_msgstream_ops ops = {raw_connected, raw_frame, raw_closed};
    static const struct tg_tls_peer_rule rule = {&server_ids};
    struct tg_msgstream_opts opts = {.max_frame = max_frame};
    struct tg_tls_settings s = {.max_chain_depth = 4};
    struct sockaddr_in a;
    char err[TG_ERRLEN] = "";

    memset(&RAW, 0, sizeof(RAW));
    RAW.payload = payload;
    RAW.len = len;
    ck_assert_msg(tg_tls_ctx_new_cp(NULL, H.root_pem, H.root_len, &s, &RAW.ctx, err) == 0, "%s",
                  err);
    uv_ip4_addr("127.0.0.1", tg_cp_server_port(H.srv), &a);
    ck_assert_int_eq(tg_msgstream_connect(&H.loop, (struct sockaddr *)&a, RAW.ctx, &rule, &opts,
                                          &ops, &RAW, &RAW.ms),
                     0);
    ck_assert(run_until(raw_done, DEADLINE_MS));
    tg_tls_ctx_free(RAW.ctx);
}

START_TEST(test_cp_stream_undecodable_message_closes)
{
    raw_run("\xff\xff\xff", 3, 0);
    ck_assert_int_eq(RAW.frames, 1); /* the Close message, saying why */
    ck_assert_uint_eq(tg_cp_server_stats(H.srv)->open_streams, 0);
}
END_TEST

START_TEST(test_cp_stream_oversize_frame_closes)
{
    size_t n = TG_FRAME_MAX + 1;
    char *big = calloc(1, n);

    raw_run(big, n, 2 * TG_FRAME_MAX);
    free(big);
    ck_assert_int_eq(RAW.frames, 0);
    run_until(never, 100);
    ck_assert_uint_eq(tg_cp_server_stats(H.srv)->open_streams, 0);
}
END_TEST

START_TEST(test_cp_stream_first_message_must_be_hello)
{
    static const char ping[] = {0x2a, 0x02, 0x08, 0x01}; /* ClientMessage{ping{id: 1}} */

    raw_run(ping, sizeof(ping), 0);
    ck_assert_int_eq(RAW.frames, 1);
}
END_TEST

/* Reconnect delays: 1 s doubling to 30 s, of which a random half is taken off. */
START_TEST(test_cp_stream_backoff_bounds)
{
    static const uint64_t base[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};

    for (unsigned a = 0; a < TG_NELEM(base); a++) {
        ck_assert_uint_eq(tg_cp_backoff_ms(a, 0), base[a] / 2);
        ck_assert_uint_eq(tg_cp_backoff_ms(a, (uint32_t)(base[a] / 2)), base[a]);
        for (uint32_t r = 1; r < 2000000; r = r * 7 + 3) {
            uint64_t d = tg_cp_backoff_ms(a, r);

            ck_assert(d >= base[a] / 2 && d <= base[a]);
        }
    }
    ck_assert_uint_le(tg_cp_backoff_ms(1000, UINT32_MAX), TG_CP_BACKOFF_MAX_MS);
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s = TG_TEST_SUITE("cp_stream", "pure", NULL, test_cp_stream_backoff_bounds);
    TCase *tc = TG_TEST_CASE(
        s, "stream", test_cp_stream_bootstrap_by_token, test_cp_stream_nack_keeps_last_version,
        test_cp_stream_reload_pushes_what_changed, test_cp_stream_resume_after_reconnect,
        test_cp_stream_unknown_token_refused, test_cp_stream_tries_every_replica,
        test_cp_stream_silent_replica_times_out, test_cp_stream_undecodable_message_closes,
        test_cp_stream_oversize_frame_closes, test_cp_stream_first_message_must_be_hello);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    return s;
}

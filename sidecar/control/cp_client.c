/* The control-plane stream, sidecar side (cp_client.h). The only home of protobuf-c in the
 * sidecar: ServerMessages are unpacked here, turned into struct tg_resource, and freed here. */
#include "tollgate/cp_client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate.pb-c.h"
#include "tollgate/closer.h"
#include "tollgate/file.h"
#include "tollgate/frame.h"
#include "tollgate/log.h"
#include "tollgate/msgstream.h"
#include "tollgate/pbstream.h"
#include "tollgate/podinfo.h"

#define MAX_TOKEN (8192 + 2) /* a line of up to 8 KiB (what tollgate-cp takes), \n, NUL */
#define VERSION_MAX 128      /* longest version we keep; longer ones are NACKed */

enum state { ST_IDLE, ST_RESOLVING, ST_CONNECTING, ST_UP };

/* One configured address of the control plane. */
struct target {
    char *host;
    char *port;
    char *text; /* as configured, for logs and views */
};

/* One address of a round, and the name it came from. */
struct round_addr {
    struct sockaddr_storage ss;
    size_t target;
};

struct tg_cp_client {
    uv_loop_t *loop;
    struct tg_cp_client_ops ops;
    /* copied configuration */
    struct target *targets;
    size_t n_targets;
    char *token_path;
    struct tg_strlist server_ids;
    struct tg_tls_peer_rule rule;
    char *node_id, *namespace_, *service_account, *version;
    struct tg_res_label *labels;
    size_t n_labels;
    char *pod_info; /* the downward API directory, or NULL */

    enum state state;
    uv_timer_t retry; /* backoff between attempts */
    uv_timer_t ping;  /* ping and stall check while up */
    uv_getaddrinfo_t gai;
    bool resolving; /* gai in flight (counts as open) */
    /* the round (cp_client.h, "Replicas"): every name resolved, then each address tried */
    size_t resolve_i;                         /* the target being resolved */
    struct round_addr addrs[TG_CP_ROUND_MAX]; /* this round's addresses */
    size_t n_addrs;                           /* of addrs */
    size_t cur;                               /* the one being tried */
    size_t tried;                             /* addresses of this round tried */
    struct sockaddr_storage last;             /* the one we were last on; AF_UNSPEC: none */
    bool ever_up;                             /* a stream was up once (failovers) */
    uint64_t attempts;                        /* connection attempts made */
    struct tg_closer closer;                  /* open: the retry and ping timers */
    struct tg_msgstream *ms;                  /* the current connection, or NULL */
    struct tg_tls_ctx *ctx;                   /* ms's context, freed with it */
    bool has_identity;                        /* ctx presents a certificate */
    unsigned attempt;                         /* failed attempts in a row */
    bool started;
    uint64_t last_rx;   /* uv_now of the last message */
    uint64_t last_ping; /* uv_now of the last Ping sent */
    uint64_t ping_id;
    char versions[TG_RES_N][VERSION_MAX + 1];

    unsigned char *csr; /* waiting for its answer */
    size_t csr_len;
    uint64_t csr_id;
    uint64_t next_csr_id;

    struct tg_cp_client_stats stats;
};

static void schedule_retry(struct tg_cp_client *c);

/* ---- small things ---- */

uint64_t tg_cp_backoff_ms(unsigned attempt, uint32_t rnd)
{
    uint64_t base = TG_CP_BACKOFF_MAX_MS;

    if (attempt < 16 && ((uint64_t)TG_CP_BACKOFF_MIN_MS << attempt) < base)
        base = (uint64_t)TG_CP_BACKOFF_MIN_MS << attempt;
    /* "equal jitter": half fixed, half random, so replicas and sidecars spread out */
    return base / 2 + (uint64_t)rnd % (base / 2 + 1);
}

static uint32_t random32(void)
{
    uint32_t r;

    if (uv_random(NULL, NULL, &r, sizeof(r), 0, NULL) == 0)
        return r;
    return (uint32_t)time(NULL) * 2654435761u;
}

const struct tg_cp_client_stats *tg_cp_client_stats(const struct tg_cp_client *c)
{
    return &c->stats;
}

const char *tg_cp_client_version(const struct tg_cp_client *c, enum tg_res_type t)
{
    return (unsigned)t < TG_RES_N ? c->versions[t] : "";
}

static char *dup_or_empty(const char *s)
{
    return strdup(s != NULL ? s : "");
}

/* "host:port", "[v6]:port". */
static int split_address(const char *a, struct target *t, char *err)
{
    char **host = &t->host, **port = &t->port;

    const char *colon, *h = a, *h_end;

    if (a[0] == '[') {
        h = a + 1;
        h_end = strchr(h, ']');
        if (h_end == NULL || h_end[1] != ':')
            return tg_err_set(err, TG_EINVAL, "control plane address %s: want [host]:port", a);
        colon = h_end + 1;
    } else {
        colon = strrchr(a, ':');
        if (colon == NULL || memchr(a, ':', (size_t)(colon - a)) != NULL)
            return tg_err_set(err, TG_EINVAL, "control plane address %s: want host:port", a);
        h_end = colon;
    }
    if (h_end == h || colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
        atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
        return tg_err_set(err, TG_EINVAL, "control plane address %s: want host:port", a);
    *host = strndup(h, (size_t)(h_end - h));
    *port = strdup(colon + 1);
    t->text = strdup(a);
    if (*host == NULL || *port == NULL || t->text == NULL)
        return TG_ENOMEM;
    return 0;
}

/* The configured addresses: cfg->addresses, or cfg->address alone. */
static int copy_targets(struct tg_cp_client *c, const struct tg_cp_client_cfg *cfg, char *err)
{
    const char *const one[] = {cfg->address};
    const char *const *v = one;
    size_t n = cfg->address != NULL ? 1 : 0;
    int rc;

    if (cfg->addresses != NULL && cfg->addresses->n > 0) {
        v = (const char *const *)cfg->addresses->v;
        n = cfg->addresses->n;
    }
    if (n == 0 || n > TG_CP_ROUND_MAX)
        return tg_err_set(err, TG_EINVAL, "control plane: %zu addresses (want 1 to %d)", n,
                          TG_CP_ROUND_MAX);
    if ((c->targets = calloc(n, sizeof(*c->targets))) == NULL)
        return TG_ENOMEM;
    for (; c->n_targets < n; c->n_targets++)
        if ((rc = split_address(v[c->n_targets], &c->targets[c->n_targets], err)) < 0) {
            c->n_targets++; /* half-filled: freed with the rest */
            return rc;
        }
    return 0;
}

static void free_client(struct tg_cp_client *c)
{
    struct tg_closer done = c->closer; /* c is freed below */

    for (size_t i = 0; i < c->n_targets; i++) {
        free(c->targets[i].host);
        free(c->targets[i].port);
        free(c->targets[i].text);
    }
    free(c->targets);
    free(c->token_path);
    for (size_t i = 0; i < c->server_ids.n; i++)
        free(c->server_ids.v[i]);
    free(c->server_ids.v);
    free(c->node_id);
    free(c->namespace_);
    free(c->service_account);
    free(c->pod_info);
    free(c->version);
    tg_res_labels_free(c->labels, c->n_labels);
    free(c->csr);
    free(c);
    tg_closer_notify(&done);
}

int tg_cp_client_new(uv_loop_t *loop, const struct tg_cp_client_cfg *cfg,
                     const struct tg_cp_client_ops *ops, struct tg_cp_client **out, char *err)
{
    struct tg_cp_client *c = calloc(1, sizeof(*c));
    int rc = TG_ENOMEM;

    if (c == NULL)
        return rc;
    c->loop = loop;
    c->ops = *ops;
    if (cfg->server_ids == NULL || cfg->server_ids->n == 0) {
        rc = tg_err_set(err, TG_EINVAL, "control plane: no server SPIFFE ID to expect");
        goto fail;
    }
    if ((rc = copy_targets(c, cfg, err)) < 0)
        goto fail;
    rc = TG_ENOMEM;
    c->server_ids.v = calloc(cfg->server_ids->n, sizeof(char *));
    if (c->server_ids.v == NULL)
        goto fail;
    for (; c->server_ids.n < cfg->server_ids->n; c->server_ids.n++) {
        c->server_ids.v[c->server_ids.n] = strdup(cfg->server_ids->v[c->server_ids.n]);
        if (c->server_ids.v[c->server_ids.n] == NULL)
            goto fail;
    }
    c->rule.ids = &c->server_ids;
    c->token_path = cfg->token_path != NULL ? strdup(cfg->token_path) : NULL;
    c->node_id = dup_or_empty(cfg->node_id);
    c->namespace_ = dup_or_empty(cfg->namespace_);
    c->service_account =
        dup_or_empty(cfg->pod_info != NULL && getenv(TG_CP_SA_ENV) != NULL ? getenv(TG_CP_SA_ENV)
                                                                           : cfg->service_account);
    c->version = dup_or_empty(cfg->version);
    c->pod_info = cfg->pod_info != NULL ? strdup(cfg->pod_info) : NULL;
    if ((cfg->token_path != NULL && c->token_path == NULL) ||
        (cfg->pod_info != NULL && c->pod_info == NULL) || c->node_id == NULL ||
        c->namespace_ == NULL || c->service_account == NULL || c->version == NULL)
        goto fail;
    if (cfg->n_labels > 0) {
        c->labels = calloc(cfg->n_labels, sizeof(*c->labels));
        if (c->labels == NULL)
            goto fail;
        for (; c->n_labels < cfg->n_labels; c->n_labels++) {
            c->labels[c->n_labels].key = strdup(cfg->labels[c->n_labels].key);
            c->labels[c->n_labels].value = strdup(cfg->labels[c->n_labels].value);
            if (c->labels[c->n_labels].key == NULL || c->labels[c->n_labels].value == NULL) {
                c->n_labels++;
                goto fail;
            }
        }
    }
    uv_timer_init(loop, &c->retry);
    uv_timer_init(loop, &c->ping);
    c->retry.data = c;
    c->ping.data = c;
    c->closer.open = 2;
    c->next_csr_id = 1;
    c->last.ss_family = AF_UNSPEC;
    *out = c;
    return 0;
fail:
    free_client(c);
    return rc;
}

/* ---- sending ---- */

/* 0, or an error (the stream is then closed). */
static int send_msg(struct tg_cp_client *c, const Tollgate__V1__ClientMessage *m)
{
    return tg_pbstream_send(c->ms, &m->base);
}

static void send_ack(struct tg_cp_client *c, enum tg_res_type t, const char *version,
                     const char *nonce)
{
    Tollgate__V1__ClientMessage m = TOLLGATE__V1__CLIENT_MESSAGE__INIT;
    Tollgate__V1__Ack ack = TOLLGATE__V1__ACK__INIT;

    ack.type = (Tollgate__V1__ResourceType)t;
    ack.version = tg_unconst(version);
    ack.nonce = tg_unconst(nonce);
    m.msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_ACK;
    m.ack = &ack;
    send_msg(c, &m);
}

static void send_nack(struct tg_cp_client *c, int type, const char *nonce, const char *error)
{
    Tollgate__V1__ClientMessage m = TOLLGATE__V1__CLIENT_MESSAGE__INIT;
    Tollgate__V1__Nack nack = TOLLGATE__V1__NACK__INIT;

    nack.type = (Tollgate__V1__ResourceType)type;
    nack.nonce = tg_unconst(nonce);
    nack.error = tg_unconst(error);
    m.msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_NACK;
    m.nack = &nack;
    send_msg(c, &m);
}

static void send_csr(struct tg_cp_client *c)
{
    Tollgate__V1__ClientMessage m = TOLLGATE__V1__CLIENT_MESSAGE__INIT;
    Tollgate__V1__CsrRequest req = TOLLGATE__V1__CSR_REQUEST__INIT;

    req.request_id = c->csr_id;
    req.csr_der.data = c->csr;
    req.csr_der.len = c->csr_len;
    m.msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_CSR;
    m.csr = &req;
    if (send_msg(c, &m) == 0) {
        c->stats.csrs_sent++;
        tg_info("control plane: CSR %" PRIu64 " sent", c->csr_id);
    }
}

int tg_cp_client_request_cert(struct tg_cp_client *c, const unsigned char *csr, size_t len,
                              char *err)
{
    unsigned char *copy = malloc(len > 0 ? len : 1);

    if (copy == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory for a CSR of %zu bytes", len);
    memcpy(copy, csr, len);
    free(c->csr);
    c->csr = copy;
    c->csr_len = len;
    c->csr_id = c->next_csr_id++;
    if (c->state == ST_UP)
        send_csr(c);
    return 0;
}

/* Reads the bootstrap token: the file's first line, surrounding white space trimmed. A first
 * line longer than we send is refused rather than cut. */
static int read_token(const char *path, char *dst, size_t cap, char *err)
{
    char *text = NULL;
    size_t len = 0, n, skip;
    int rc;

    if ((rc = tg_file_read("bootstrap token", path, TG_FILE_MAX, TG_FILE_SECRET, &text, &len,
                           err)) < 0)
        return rc;
    n = strcspn(text, "\r\n");
    if (n > cap - 2) {
        tg_wipe_free(text, len);
        return tg_err_set(err, TG_ETOOBIG, "bootstrap token %s: first line over %zu bytes", path,
                          cap - 2);
    }
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
        n--;
    skip = strspn(text, " \t");
    skip = skip < n ? skip : n;
    memcpy(dst, text + skip, n - skip);
    dst[n - skip] = '\0';
    tg_wipe_free(text, len);
    if (dst[0] == '\0')
        return tg_err_set(err, TG_EINVAL, "bootstrap token %s: empty", path);
    return 0;
}

/* The three files of the downward API directory dir, parsed (podinfo.h). */
static int read_pod_info(const char *dir, struct tg_podinfo *out, char *err)
{
    static const char *const names[3] = {"name", "namespace", "labels"};
    char *text[3] = {NULL, NULL, NULL}, path[4096];
    size_t len[3] = {0, 0, 0};
    int rc = 0;

    for (size_t i = 0; i < 3 && rc == 0; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        rc = tg_file_read("control_plane.pod_info", path, TG_PODINFO_FILE_MAX, 0, &text[i], &len[i],
                          err);
    }
    if (rc == 0)
        rc = tg_podinfo_parse(dir, text[0], len[0], text[1], len[1], text[2], len[2], out, err);
    for (size_t i = 0; i < 3; i++)
        free(text[i]);
    return rc;
}

static void send_hello(struct tg_cp_client *c, const char *token, const struct tg_podinfo *pod)
{
    Tollgate__V1__ClientMessage m = TOLLGATE__V1__CLIENT_MESSAGE__INIT;
    Tollgate__V1__Hello hello = TOLLGATE__V1__HELLO__INIT;
    Tollgate__V1__Hello__LabelsEntry labels[TG_PODINFO_MAX_LABELS];
    Tollgate__V1__Hello__LabelsEntry *label_ptrs[TG_PODINFO_MAX_LABELS];
    Tollgate__V1__Hello__ResourceVersionsEntry vers[TG_RES_N], *ver_ptrs[TG_RES_N];
    const struct tg_res_label *lv = pod != NULL ? pod->labels : c->labels;
    size_t n = 0, nl = pod != NULL ? pod->n_labels : c->n_labels;

    hello.node_id = c->node_id;
    hello.namespace_ = pod != NULL ? tg_unconst(pod->ns) : c->namespace_;
    hello.pod_name = tg_unconst(pod != NULL ? pod->name : "");
    hello.service_account = c->service_account;
    hello.version = c->version;
    hello.token = tg_unconst(token != NULL ? token : "");
    for (size_t i = 0; i < nl && i < TG_NELEM(labels); i++) {
        tollgate__v1__hello__labels_entry__init(&labels[i]);
        labels[i].key = lv[i].key;
        labels[i].value = lv[i].value;
        label_ptrs[i] = &labels[i];
        hello.n_labels++;
    }
    hello.labels = label_ptrs;
    for (int t = TG_RES_TRUST_BUNDLE; t < TG_RES_N; t++) {
        if (c->versions[t][0] == '\0')
            continue;
        tollgate__v1__hello__resource_versions_entry__init(&vers[n]);
        vers[n].key = tg_unconst(tg_res_type_name((enum tg_res_type)t));
        vers[n].value = c->versions[t];
        ver_ptrs[n] = &vers[n];
        n++;
    }
    hello.n_resource_versions = n;
    hello.resource_versions = ver_ptrs;
    m.msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_HELLO;
    m.hello = &hello;
    send_msg(c, &m);
}

/* ---- protobuf to struct tg_resource ---- */

static int copy_list(struct tg_resource *r, struct tg_strlist *dst, char **src, size_t n)
{
    return tg_resource_strlist(r, dst, (const char *const *)src, n);
}

static int copy_ports(struct tg_resource *r, struct tg_res_ports *dst, const uint32_t *src,
                      size_t n, char *err)
{
    if ((dst->v = tg_resource_memdup(r, src, n * sizeof(*src))) == NULL)
        return TG_ENOMEM;
    dst->n = n;
    for (size_t i = 0; i < n; i++)
        if (src[i] == 0 || src[i] > 65535)
            return tg_err_set(err, TG_EINVAL, "port %" PRIu32 " out of range", src[i]);
    return 0;
}

static int from_trust_bundle(struct tg_resource *r, const Tollgate__V1__TrustBundle *m)
{
    struct tg_res_trust_bundle *b = &r->u.trust_bundle;

    if ((b->domains = tg_resource_array(r, m->n_domains, sizeof(*b->domains))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < m->n_domains; i++) {
        struct tg_res_domain_roots *d = &b->domains[i];

        if ((d->trust_domain = tg_resource_strdup(r, m->domains[i]->trust_domain)) == NULL ||
            copy_list(r, &d->roots_pem, m->domains[i]->roots_pem, m->domains[i]->n_roots_pem) < 0)
            return TG_ENOMEM;
        b->n_domains++;
    }
    return 0;
}

static int from_rule(struct tg_resource *r, struct tg_res_rule *d, const Tollgate__V1__Rule *m,
                     char *err)
{
    int rc;

    if (m->action != TOLLGATE__V1__RULE_ACTION__RULE_ACTION_ALLOW &&
        m->action != TOLLGATE__V1__RULE_ACTION__RULE_ACTION_DENY)
        return tg_err_set(err, TG_EINVAL, "rule %s: unknown action %d", m->name, (int)m->action);
    d->action =
        m->action == TOLLGATE__V1__RULE_ACTION__RULE_ACTION_DENY ? TG_RES_DENY : TG_RES_ALLOW;
    if ((d->name = tg_resource_strdup(r, m->name)) == NULL ||
        (d->scope_namespace = tg_resource_strdup(r, m->scope_namespace)) == NULL)
        return TG_ENOMEM;
    d->scope_labels = tg_resource_array(r, m->n_scope_labels, sizeof(*d->scope_labels));
    if (d->scope_labels == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < m->n_scope_labels; i++) {
        d->scope_labels[i].key = tg_resource_strdup(r, m->scope_labels[i]->key);
        d->scope_labels[i].value = tg_resource_strdup(r, m->scope_labels[i]->value);
        if (d->scope_labels[i].key == NULL || d->scope_labels[i].value == NULL)
            return TG_ENOMEM;
        d->n_scope_labels++;
    }
    if (copy_list(r, &d->principals, m->principals, m->n_principals) < 0 ||
        copy_list(r, &d->not_principals, m->not_principals, m->n_not_principals) < 0 ||
        copy_list(r, &d->namespaces, m->namespaces, m->n_namespaces) < 0 ||
        copy_list(r, &d->not_namespaces, m->not_namespaces, m->n_not_namespaces) < 0 ||
        copy_list(r, &d->trust_domains, m->trust_domains, m->n_trust_domains) < 0 ||
        copy_list(r, &d->not_trust_domains, m->not_trust_domains, m->n_not_trust_domains) < 0 ||
        copy_list(r, &d->fingerprints, m->fingerprints, m->n_fingerprints) < 0 ||
        copy_list(r, &d->not_fingerprints, m->not_fingerprints, m->n_not_fingerprints) < 0 ||
        copy_list(r, &d->serials, m->serials, m->n_serials) < 0 ||
        copy_list(r, &d->not_serials, m->not_serials, m->n_not_serials) < 0 ||
        copy_list(r, &d->methods, m->methods, m->n_methods) < 0 ||
        copy_list(r, &d->paths, m->paths, m->n_paths) < 0 ||
        copy_list(r, &d->hosts, m->hosts, m->n_hosts) < 0)
        return TG_ENOMEM;
    if ((rc = copy_ports(r, &d->ports, m->ports, m->n_ports, err)) < 0 ||
        (rc = copy_ports(r, &d->not_ports, m->not_ports, m->n_not_ports, err)) < 0)
        return rc;
    return 0;
}

static int from_authorization(struct tg_resource *r, const Tollgate__V1__AuthorizationPolicy *m,
                              char *err)
{
    struct tg_res_authorization *a = &r->u.authorization;
    int rc;

    if (m->default_ != TOLLGATE__V1__RULE_ACTION__RULE_ACTION_ALLOW &&
        m->default_ != TOLLGATE__V1__RULE_ACTION__RULE_ACTION_DENY)
        return tg_err_set(err, TG_EINVAL, "unknown default %d (want ALLOW or DENY)",
                          (int)m->default_);
    a->default_deny = m->default_ == TOLLGATE__V1__RULE_ACTION__RULE_ACTION_DENY;
    a->close_denied_connections = m->close_denied;
    if ((a->rules = tg_resource_array(r, m->n_rules, sizeof(*a->rules))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < m->n_rules; i++) {
        if ((rc = from_rule(r, &a->rules[i], m->rules[i], err)) < 0)
            return rc;
        a->n_rules++;
    }
    return 0;
}

static int from_rate_limits(struct tg_resource *r, const Tollgate__V1__RateLimits *m, char *err)
{
    struct tg_res_rate_limits *l = &r->u.rate_limits;

    if ((l->limits = tg_resource_array(r, m->n_limits, sizeof(*l->limits))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < m->n_limits; i++) {
        const Tollgate__V1__Limit *s = m->limits[i];
        struct tg_res_limit *d = &l->limits[i];

        if (s->key != TOLLGATE__V1__LIMIT_KEY__LIMIT_KEY_ID &&
            s->key != TOLLGATE__V1__LIMIT_KEY__LIMIT_KEY_FINGERPRINT)
            return tg_err_set(err, TG_EINVAL, "limit %zu: unknown key %d", i, (int)s->key);
        if (!(s->connections_per_second >= 0 && s->connections_per_second < 1e12))
            return tg_err_set(err, TG_EINVAL, "limit %zu: connections_per_second out of range", i);
        d->key_by = s->key == TOLLGATE__V1__LIMIT_KEY__LIMIT_KEY_FINGERPRINT
                        ? TG_RES_LIMIT_BY_FINGERPRINT
                        : TG_RES_LIMIT_BY_ID;
        if ((d->match = tg_resource_strdup(r, s->principal)) == NULL)
            return TG_ENOMEM;
        d->connections_per_second = s->connections_per_second;
        d->burst = s->burst;
        d->max_concurrent = s->max_concurrent;
        d->bytes_per_second = s->bytes_per_second;
        d->requests_per_second = s->requests_per_second;
        d->requests_burst = s->requests_burst;
        l->n_limits++;
    }
    return 0;
}

static int from_revocations(struct tg_resource *r, const Tollgate__V1__Revocations *m)
{
    struct tg_res_revocations *v = &r->u.revocations;

    if (copy_list(r, &v->serials, m->serials, m->n_serials) < 0 ||
        copy_list(r, &v->fingerprints, m->fingerprints, m->n_fingerprints) < 0)
        return TG_ENOMEM;
    if ((v->crls = tg_resource_array(r, m->n_crls, sizeof(*v->crls))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < m->n_crls; i++) {
        v->crls[i].data = tg_resource_memdup(r, m->crls[i].data, m->crls[i].len);
        if (v->crls[i].data == NULL)
            return TG_ENOMEM;
        v->crls[i].len = m->crls[i].len;
        v->n_crls++;
    }
    return 0;
}

/* tollgate.v1.TunnelMode as enum tg_tunnel_mode; false for a value this sidecar does not
 * know (a newer control plane's, or garbage): the push is refused, not read as another. */
static bool tunnel_mode(int v, enum tg_tunnel_mode *out)
{
    switch (v) {
    case TOLLGATE__V1__TUNNEL_MODE__TUNNEL_MODE_UNSET:
        *out = TG_TUNNEL_UNSET;
        return true;
    case TOLLGATE__V1__TUNNEL_MODE__TUNNEL_MODE_OFF:
        *out = TG_TUNNEL_OFF;
        return true;
    case TOLLGATE__V1__TUNNEL_MODE__TUNNEL_MODE_AUTO:
        *out = TG_TUNNEL_AUTO;
        return true;
    case TOLLGATE__V1__TUNNEL_MODE__TUNNEL_MODE_ON:
        *out = TG_TUNNEL_ON;
        return true;
    default:
        return false;
    }
}

static int from_mesh_table(struct tg_resource *r, const Tollgate__V1__MeshTable *m, char *err)
{
    struct tg_res_mesh_table *t = &r->u.mesh_table;

    if (m->outside != TOLLGATE__V1__OUTSIDE_MESH__OUTSIDE_MESH_PASSTHROUGH &&
        m->outside != TOLLGATE__V1__OUTSIDE_MESH__OUTSIDE_MESH_REFUSE)
        return tg_err_set(err, TG_EINVAL, "unknown outside %d", (int)m->outside);
    t->outside_refuse = m->outside == TOLLGATE__V1__OUTSIDE_MESH__OUTSIDE_MESH_REFUSE;
    t->destinations = tg_resource_array(r, m->n_destinations, sizeof(*t->destinations));
    if (t->destinations == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < m->n_destinations; i++) {
        const Tollgate__V1__Destination *s = m->destinations[i];
        struct tg_res_destination *d = &t->destinations[i];

        if (s->protocol != TOLLGATE__V1__PROTOCOL__PROTOCOL_TCP &&
            s->protocol != TOLLGATE__V1__PROTOCOL__PROTOCOL_HTTP)
            return tg_err_set(err, TG_EINVAL, "destination %s: unknown protocol %d", s->address,
                              (int)s->protocol);
        if (s->port > 65535)
            return tg_err_set(err, TG_EINVAL, "destination %s: port %" PRIu32 " out of range",
                              s->address, s->port);
        if (!tunnel_mode((int)s->tunnel, &d->tunnel))
            return tg_err_set(err, TG_EINVAL,
                              "destination %s: unknown tunnel mode %d (want unset, off, auto or "
                              "on)",
                              s->address, (int)s->tunnel);
        if (d->tunnel == TG_TUNNEL_ON && s->protocol == TOLLGATE__V1__PROTOCOL__PROTOCOL_HTTP)
            return tg_err_set(err, TG_EINVAL,
                              "destination %s: tunnel on with protocol http (HTTP ports are not "
                              "carried over tunnels yet)",
                              s->address);
        d->protocol =
            s->protocol == TOLLGATE__V1__PROTOCOL__PROTOCOL_HTTP ? TG_RES_HTTP : TG_RES_TCP;
        d->port = s->port;
        if ((d->address = tg_resource_strdup(r, s->address)) == NULL ||
            copy_list(r, &d->expected_ids, s->expect, s->n_expect) < 0)
            return TG_ENOMEM;
        t->n_destinations++;
    }
    return 0;
}

static int from_proxy_settings(struct tg_resource *r, const Tollgate__V1__ProxySettings *m,
                               char *err)
{
    struct tg_res_proxy_settings *p = &r->u.proxy_settings;

    switch (m->inbound_mode) {
    case TOLLGATE__V1__INBOUND_MODE__INBOUND_MODE_UNSPECIFIED:
        p->inbound_mode = TG_RES_INBOUND_UNSET;
        break;
    case TOLLGATE__V1__INBOUND_MODE__INBOUND_MODE_STRICT:
        p->inbound_mode = TG_RES_INBOUND_STRICT;
        break;
    case TOLLGATE__V1__INBOUND_MODE__INBOUND_MODE_PERMISSIVE:
        p->inbound_mode = TG_RES_INBOUND_PERMISSIVE;
        break;
    default:
        return tg_err_set(err, TG_EINVAL, "unknown inbound_mode %d", (int)m->inbound_mode);
    }
    if ((p->min_tls_version = tg_resource_strdup(r, m->tls_min_version)) == NULL ||
        copy_list(r, &p->cipher_suites, m->tls_cipher_suites, m->n_tls_cipher_suites) < 0)
        return TG_ENOMEM;
    p->handshake_timeout_ms = m->timeouts_handshake_ms;
    p->idle_timeout_ms = m->timeouts_idle_ms;
    p->connect_timeout_ms = m->timeouts_connect_ms;
    return 0;
}

/* Names from the wire may hold anything: a message stays one line. */
static void one_line(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

/* A field this sidecar does not know could change what a resource means (a new condition of
 * an allow rule, dropped, would widen it): refused, never dropped silently. Walks m and every
 * message inside it (repeated ones, map entries, the member of a oneof that is set). */
static int unknown_field(const ProtobufCMessage *m, char *err)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;

    if (m->n_unknown_fields > 0)
        return tg_err_set(err, TG_EINVAL, "%s has field %u, which this sidecar does not know",
                          d->short_name, m->unknown_fields[0].tag);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *at = (const char *)m + f->offset;
        int rc;

        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)at;

            for (size_t j = 0; j < n; j++)
                if ((rc = unknown_field(v[j], err)) < 0)
                    return rc;
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
            continue; /* another member of the oneof: its pointer is not this one's */
        if (*(ProtobufCMessage *const *)at != NULL &&
            (rc = unknown_field(*(ProtobufCMessage *const *)at, err)) < 0)
            return rc;
    }
    return 0;
}

/* The resource a push carries, checked against the type it claims. */
static int from_push(const Tollgate__V1__Push *p, struct tg_resource **out, char *err)
{
    static const int case_of[TG_RES_N] = {
        [TG_RES_TRUST_BUNDLE] = TOLLGATE__V1__PUSH__RESOURCE_TRUST_BUNDLE,
        [TG_RES_AUTHORIZATION] = TOLLGATE__V1__PUSH__RESOURCE_AUTHORIZATION,
        [TG_RES_RATE_LIMITS] = TOLLGATE__V1__PUSH__RESOURCE_RATE_LIMITS,
        [TG_RES_REVOCATIONS] = TOLLGATE__V1__PUSH__RESOURCE_REVOCATIONS,
        [TG_RES_MESH_TABLE] = TOLLGATE__V1__PUSH__RESOURCE_MESH_TABLE,
        [TG_RES_PROXY_SETTINGS] = TOLLGATE__V1__PUSH__RESOURCE_PROXY_SETTINGS,
    };
    enum tg_res_type t = (enum tg_res_type)p->type;
    struct tg_resource *r;
    int rc = TG_ENOMEM;

    if ((int)t < TG_RES_TRUST_BUNDLE || t >= TG_RES_N)
        return tg_err_set(err, TG_EINVAL, "unknown resource type %d", (int)p->type);
    if (unknown_field(&p->base, err) < 0)
        return TG_EINVAL;
    if ((int)p->resource_case != case_of[t])
        return tg_err_set(err, TG_EINVAL, "push of type %s carries no %s", tg_res_type_name(t),
                          tg_res_type_name(t));
    if (strlen(p->version) == 0 || strlen(p->version) > VERSION_MAX)
        return tg_err_set(err, TG_EINVAL, "version of %zu bytes (want 1 to %d)", strlen(p->version),
                          VERSION_MAX);
    if ((r = tg_resource_new(t)) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    switch (t) {
    case TG_RES_TRUST_BUNDLE:
        rc = from_trust_bundle(r, p->trust_bundle);
        break;
    case TG_RES_AUTHORIZATION:
        rc = from_authorization(r, p->authorization, err);
        break;
    case TG_RES_RATE_LIMITS:
        rc = from_rate_limits(r, p->rate_limits, err);
        break;
    case TG_RES_REVOCATIONS:
        rc = from_revocations(r, p->revocations);
        break;
    case TG_RES_MESH_TABLE:
        rc = from_mesh_table(r, p->mesh_table, err);
        break;
    case TG_RES_PROXY_SETTINGS:
        rc = from_proxy_settings(r, p->proxy_settings, err);
        break;
    default:
        break;
    }
    if (rc == TG_ENOMEM)
        tg_err_set(err, rc, "out of memory");
    if (rc < 0) {
        one_line(err);
        tg_resource_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int tg_cp_client_decode_push(const void *frame, size_t len, struct tg_resource **out, char *version,
                             size_t cap, char *err)
{
    Tollgate__V1__ServerMessage *m =
        tollgate__v1__server_message__unpack(NULL, len, (const uint8_t *)frame);
    int rc;

    if (m == NULL)
        return tg_err_set(err, TG_EINVAL, "message of %zu bytes does not decode", len);
    if (m->msg_case != TOLLGATE__V1__SERVER_MESSAGE__MSG_PUSH) {
        rc = tg_err_set(err, TG_EINVAL, "not a push");
    } else if ((rc = from_push(m->push, out, err)) == 0) {
        snprintf(version, cap, "%s", m->push->version);
    }
    tollgate__v1__server_message__free_unpacked(m, NULL);
    return rc;
}

/* ---- receiving ---- */

static void on_push(struct tg_cp_client *c, const Tollgate__V1__Push *p)
{
    struct tg_resource *r = NULL;
    char err[TG_ERRLEN] = "";
    enum tg_res_type t = (enum tg_res_type)p->type;
    int rc = from_push(p, &r, err);

    if (rc == 0) {
        rc = c->ops.on_push(c->ops.arg, r, p->version, err);
        if (rc < 0 && err[0] == '\0')
            snprintf(err, sizeof(err), "%s", tg_strerror(rc));
        one_line(err); /* the reason may quote what was pushed: logs and NACKs stay one line */
    }
    if (c->closer.closing || c->ms == NULL)
        return;
    if (rc < 0) {
        c->stats.pushes_rejected++;
        tg_warn("control plane: %s version %s refused, keeping %s: %s", tg_res_type_name(t),
                p->version, (unsigned)t < TG_RES_N && c->versions[t][0] ? c->versions[t] : "none",
                err);
        send_nack(c, p->type, p->nonce, err);
        return;
    }
    c->stats.pushes_accepted++;
    snprintf(c->versions[t], sizeof(c->versions[t]), "%s", p->version);
    tg_info("control plane: %s version %s applied", tg_res_type_name(t), p->version);
    send_ack(c, t, p->version, p->nonce);
}

static void on_csr_response(struct tg_cp_client *c, const Tollgate__V1__CsrResponse *m)
{
    char nonce[24], err[TG_ERRLEN] = "";
    int rc;

    if (c->csr == NULL || m->request_id != c->csr_id) {
        tg_debug("control plane: answer to CSR %" PRIu64 " ignored (not the one waiting)",
                 m->request_id);
        return;
    }
    free(c->csr);
    c->csr = NULL;
    snprintf(nonce, sizeof(nonce), "%" PRIu64, m->request_id);
    if (m->result_case != TOLLGATE__V1__CSR_RESPONSE__RESULT_CHAIN_PEM) {
        const char *why = m->result_case == TOLLGATE__V1__CSR_RESPONSE__RESULT_ERROR
                              ? m->error
                              : "no chain and no error";

        c->stats.csrs_refused++;
        tg_warn("control plane: CSR %" PRIu64 " refused: %s", m->request_id, why);
        if (c->ops.on_cert_refused != NULL)
            c->ops.on_cert_refused(c->ops.arg, why);
        return;
    }
    rc = c->ops.on_cert(c->ops.arg, m->chain_pem, strlen(m->chain_pem), err);
    if (c->closer.closing || c->ms == NULL)
        return;
    if (rc < 0) {
        if (err[0] == '\0')
            snprintf(err, sizeof(err), "%s", tg_strerror(rc));
        one_line(err);
        c->stats.certs_rejected++;
        tg_warn("control plane: certificate for CSR %" PRIu64 " refused: %s", m->request_id, err);
        send_nack(c, TG_RES_IDENTITY, nonce, err);
        return;
    }
    c->stats.certs_accepted++;
    send_ack(c, TG_RES_IDENTITY, "", nonce);
}

static void on_frame(struct tg_msgstream *s, const char *frame, size_t len)
{
    struct tg_cp_client *c = tg_msgstream_data(s);
    Tollgate__V1__ServerMessage *m =
        tollgate__v1__server_message__unpack(NULL, len, (const uint8_t *)frame);

    if (m == NULL) {
        tg_msgstream_close(s, false, "message of %zu bytes from the control plane does not decode",
                           len);
        return;
    }
    c->last_rx = uv_now(c->loop);
    /* the control plane serves us (a Close does not count): the backoff starts anew */
    if (m->msg_case != TOLLGATE__V1__SERVER_MESSAGE__MSG_CLOSE)
        c->attempt = 0;
    switch (m->msg_case) {
    case TOLLGATE__V1__SERVER_MESSAGE__MSG_PUSH:
        on_push(c, m->push);
        break;
    case TOLLGATE__V1__SERVER_MESSAGE__MSG_CSR:
        on_csr_response(c, m->csr);
        break;
    case TOLLGATE__V1__SERVER_MESSAGE__MSG_PONG:
        break;
    case TOLLGATE__V1__SERVER_MESSAGE__MSG_CLOSE:
        tg_msgstream_close(s, false, "closed by the control plane: %s", m->close->reason);
        break;
    default:
        tg_msgstream_close(s, false, "message of %zu bytes from the control plane has no content",
                           len);
        break;
    }
    tollgate__v1__server_message__free_unpacked(m, NULL);
}

static void on_ping_timer(uv_timer_t *t)
{
    struct tg_cp_client *c = t->data;
    Tollgate__V1__ClientMessage m = TOLLGATE__V1__CLIENT_MESSAGE__INIT;
    Tollgate__V1__Ping ping = TOLLGATE__V1__PING__INIT;

    if (c->state != ST_UP || c->ms == NULL)
        return;
    if (uv_now(c->loop) - c->last_rx >= TG_CP_STALL_MS) {
        tg_msgstream_close(c->ms, false, "nothing from the control plane for %d s",
                           TG_CP_STALL_MS / 1000);
        return;
    }
    if (uv_now(c->loop) - c->last_ping < TG_CP_PING_MS)
        return;
    c->last_ping = uv_now(c->loop);
    ping.id = ++c->ping_id;
    m.msg_case = TOLLGATE__V1__CLIENT_MESSAGE__MSG_PING;
    m.ping = &ping;
    send_msg(c, &m);
}

/* ---- connection life cycle ---- */

/* closed: how many of its handles or children have just closed (0 or 1). Frees it once it
 * is closing and nothing is left open. */
static void maybe_free(struct tg_cp_client *c, int closed)
{
    c->closer.open -= closed;
    if (tg_closer_done(&c->closer) && c->ms == NULL && !c->resolving)
        free_client(c);
}

/* The replica of the address being tried, "NAME:PORT (ADDRESS:PORT)", into dst. */
static void describe_replica(const struct tg_cp_client *c, const char *addr, char *dst, size_t cap)
{
    const char *name = c->targets[c->addrs[c->cur].target].text;

    if (strcmp(name, addr) == 0)
        snprintf(dst, cap, "%s", name);
    else
        snprintf(dst, cap, "%s (%s)", name, addr);
}

static bool same_sockaddr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

static void on_connected(struct tg_msgstream *s)
{
    struct tg_cp_client *c = tg_msgstream_data(s);
    char token[MAX_TOKEN] = "", err[TG_ERRLEN] = "";
    const struct tg_peer_info *peer = tg_msgstream_peer(s);
    struct tg_podinfo pod = {0};
    const struct sockaddr_storage *at = &c->addrs[c->cur].ss;

    if (!c->has_identity && c->token_path != NULL &&
        read_token(c->token_path, token, sizeof(token), err) < 0) {
        tg_msgstream_close(s, false, "%s", err);
        return;
    }
    if (c->pod_info != NULL && read_pod_info(c->pod_info, &pod, err) < 0) {
        explicit_bzero(token, sizeof(token));
        tg_msgstream_close(s, false, "%s", err);
        return;
    }
    c->state = ST_UP;
    c->stats.connects++;
    c->stats.connected = true;
    if (c->ever_up && !same_sockaddr(&c->last, at))
        c->stats.failovers++;
    c->ever_up = true;
    c->last = *at;
    describe_replica(c, tg_msgstream_peer_addr(s), c->stats.replica, sizeof(c->stats.replica));
    c->last_rx = c->last_ping = uv_now(c->loop);
    tg_info("control plane: connected to %s (%s)%s", c->stats.replica,
            peer->id != NULL ? peer->id : "?", c->has_identity ? "" : ", bootstrapping");
    send_hello(c, c->has_identity ? NULL : token, c->pod_info != NULL ? &pod : NULL);
    explicit_bzero(token, sizeof(token));
    tg_podinfo_cleanup(&pod);
    if (c->csr != NULL && c->ms != NULL)
        send_csr(c);
    uv_timer_start(&c->ping, on_ping_timer, TG_CP_TICK_MS, TG_CP_TICK_MS);
    if (c->ops.on_up != NULL && c->ms != NULL)
        c->ops.on_up(c->ops.arg);
}

static void try_next(struct tg_cp_client *c);

static void on_stream_closed(struct tg_msgstream *s, const char *reason)
{
    struct tg_cp_client *c = tg_msgstream_data(s);
    bool was_up = c->state == ST_UP;

    if (tg_msgstream_hs_fail(s) < TG_HSF_N)
        c->stats.handshakes_failed[tg_msgstream_hs_fail(s)]++;
    c->ms = NULL;
    tg_tls_ctx_free(c->ctx);
    c->ctx = NULL;
    c->state = ST_IDLE;
    c->stats.connected = false;
    uv_timer_stop(&c->ping);
    snprintf(c->stats.last_error, sizeof(c->stats.last_error), "%s", reason);
    if (c->closer.closing) {
        maybe_free(c, 0);
        return;
    }
    if (was_up) {
        c->stats.disconnects++;
        tg_warn("control plane: stream with %s lost: %s (serving on with what we have)",
                c->stats.replica, reason);
        if (c->ops.on_down != NULL)
            c->ops.on_down(c->ops.arg, reason);
        if (!c->closer.closing)
            schedule_retry(c); /* a new round, starting after this replica */
        return;
    }
    tg_warn("control plane: %s: %s", c->targets[c->addrs[c->cur].target].text, reason);
    c->cur = (c->cur + 1) % c->n_addrs;
    try_next(c); /* the next replica at once; the backoff is per round */
}

/* The round is over without a stream: the backoff, then a new round. */
static void attempt_failed(struct tg_cp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void attempt_failed(struct tg_cp_client *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->stats.last_error, sizeof(c->stats.last_error), fmt, ap);
    va_end(ap);
    tg_warn("control plane: %s", c->stats.last_error);
    c->state = ST_IDLE;
    schedule_retry(c);
}

/* Connects to this round's address c->cur. */
static void connect_to(struct tg_cp_client *c)
{
    static const struct tg_msgstream_ops ops = {on_connected, on_frame, on_stream_closed};
    const struct tg_msgstream_opts opts = {.handshake_timeout_ms = TG_CP_CONNECT_TIMEOUT_MS};
    char err[TG_ERRLEN] = "";
    int rc;

    if (c->attempts++ > 0)
        c->stats.reconnects++;
    c->tried++;
    c->has_identity = false;
    rc = c->ops.make_tls_ctx(c->ops.arg, &c->ctx, &c->has_identity, err);
    if (rc < 0) {
        c->ctx = NULL;
        attempt_failed(c, "TLS context: %s", err[0] ? err : tg_strerror(rc));
        return;
    }
    if (!c->has_identity && c->token_path == NULL) {
        tg_tls_ctx_free(c->ctx);
        c->ctx = NULL;
        attempt_failed(c, "no identity yet and no bootstrap token configured");
        return;
    }
    c->state = ST_CONNECTING;
    rc = tg_msgstream_connect(c->loop, (const struct sockaddr *)&c->addrs[c->cur].ss, c->ctx,
                              &c->rule, &opts, &ops, c, &c->ms);
    if (rc < 0) {
        tg_tls_ctx_free(c->ctx);
        c->ctx = NULL;
        attempt_failed(c, "connect: %s", tg_strerror(rc));
    }
}

/* The next address of the round not yet tried, or the end of the round. */
static void try_next(struct tg_cp_client *c)
{
    if (c->tried < c->n_addrs) {
        connect_to(c);
        return;
    }
    /* each failure was logged, and last_error keeps the last one's reason */
    if (c->n_addrs > 1)
        tg_warn("control plane: none of %zu addresses answered", c->n_addrs);
    c->state = ST_IDLE;
    schedule_retry(c);
}

/* Every name is resolved: the round starts after the address we were last on. */
static void addresses_ready(struct tg_cp_client *c)
{
    if (c->n_addrs == 0) {
        c->state = ST_IDLE; /* last_error says why, and was logged */
        schedule_retry(c);
        return;
    }
    c->cur = 0;
    c->tried = 0;
    for (size_t i = 0; i < c->n_addrs; i++)
        if (same_sockaddr(&c->addrs[i].ss, &c->last)) {
            c->cur = (i + 1) % c->n_addrs;
            break;
        }
    try_next(c);
}

/* Adds what a name resolved to, once each, up to TG_CP_ROUND_MAX. */
static void add_addrs(struct tg_cp_client *c, const struct addrinfo *res)
{
    for (; res != NULL; res = res->ai_next) {
        bool seen = false;

        if ((res->ai_family != AF_INET && res->ai_family != AF_INET6) ||
            res->ai_addrlen > sizeof(struct sockaddr_storage))
            continue;
        if (c->n_addrs == TG_CP_ROUND_MAX) {
            tg_warn("control plane: over %d addresses; the rest are not tried", TG_CP_ROUND_MAX);
            return;
        }
        memset(&c->addrs[c->n_addrs], 0, sizeof(c->addrs[0]));
        memcpy(&c->addrs[c->n_addrs].ss, res->ai_addr, res->ai_addrlen);
        for (size_t i = 0; i < c->n_addrs && !seen; i++)
            seen = same_sockaddr(&c->addrs[i].ss, &c->addrs[c->n_addrs].ss);
        if (seen)
            continue;
        c->addrs[c->n_addrs++].target = c->resolve_i;
    }
}

static void resolve_next(struct tg_cp_client *c);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct tg_cp_client *c = req->data;

    c->resolving = false;
    if (c->closer.closing) {
        uv_freeaddrinfo(res);
        maybe_free(c, 0);
        return;
    }
    if (status < 0 || res == NULL) {
        snprintf(c->stats.last_error, sizeof(c->stats.last_error), "resolving %s: %s",
                 c->targets[c->resolve_i].host, uv_strerror(status < 0 ? status : UV_EAI_NONAME));
        tg_warn("control plane: %s", c->stats.last_error);
    } else {
        add_addrs(c, res);
    }
    uv_freeaddrinfo(res);
    c->resolve_i++;
    resolve_next(c);
}

/* Resolves the names from c->resolve_i on, one at a time, then starts trying. */
static void resolve_next(struct tg_cp_client *c)
{
    struct addrinfo hints;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    for (; c->resolve_i < c->n_targets; c->resolve_i++) {
        const struct target *t = &c->targets[c->resolve_i];

        c->gai.data = c;
        c->resolving = true;
        rc = uv_getaddrinfo(c->loop, &c->gai, on_resolved, t->host, t->port, &hints);
        if (rc == 0)
            return;
        c->resolving = false;
        snprintf(c->stats.last_error, sizeof(c->stats.last_error), "resolving %s: %s", t->host,
                 uv_strerror(rc));
        tg_warn("control plane: %s", c->stats.last_error);
    }
    addresses_ready(c);
}

static void attempt(struct tg_cp_client *c)
{
    if (c->closer.closing)
        return;
    c->state = ST_RESOLVING;
    c->resolve_i = 0;
    c->n_addrs = 0;
    resolve_next(c);
}

static void on_retry_timer(uv_timer_t *t)
{
    attempt(t->data);
}

static void schedule_retry(struct tg_cp_client *c)
{
    uint64_t delay = tg_cp_backoff_ms(c->attempt, random32());

    if (c->attempt < 31)
        c->attempt++;
    tg_info("control plane: next attempt in %" PRIu64 " ms", delay);
    uv_timer_start(&c->retry, on_retry_timer, delay, 0);
}

void tg_cp_client_start(struct tg_cp_client *c)
{
    if (c->started)
        return;
    c->started = true;
    attempt(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    maybe_free(h->data, 1);
}

void tg_cp_client_close(struct tg_cp_client *c, void (*on_closed)(void *arg), void *arg)
{
    if (!tg_closer_start(&c->closer, on_closed, arg))
        return;
    uv_close((uv_handle_t *)&c->retry, on_timer_closed);
    uv_close((uv_handle_t *)&c->ping, on_timer_closed);
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->gai);
    if (c->ms != NULL)
        tg_msgstream_close(c->ms, true, "sidecar shutting down");
}

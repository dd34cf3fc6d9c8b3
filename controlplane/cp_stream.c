/* The control-plane protocol on one sidecar's stream (cp_server.h): Hello and its
 * authentication, CSRs, pushes with versions and nonces, ACK/NACK, Ping. The only file of
 * tollgate-cp that uses protobuf-c; every message unpacked here is freed here. Outgoing
 * messages are built in a scratch arena pointing at the state's resources, packed, and the
 * arena dropped. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_k8s.h"
#include "cp_pod.h"
#include "cp_server.h"
#include "tollgate.pb-c.h"
#include "tollgate/log.h"
#include "tollgate/pbstream.h"

/* ---- sending ---- */

/* m packed into a new buffer (*len bytes), or NULL when out of memory. */
static uint8_t *pack_server_msg(const Tollgate__V1__ServerMessage *m, size_t *len)
{
    uint8_t *buf;

    *len = tollgate__v1__server_message__get_packed_size(m);
    if ((buf = malloc(*len > 0 ? *len : 1)) != NULL)
        tollgate__v1__server_message__pack(m, buf);
    return buf;
}

static void send_packed(struct tg_cp_conn *c, const uint8_t *buf, size_t len)
{
    char err[TG_ERRLEN];

    if (tg_msgstream_send(c->ms, buf, len, err) < 0)
        tg_msgstream_close(c->ms, false, "sending: %s", err);
}

static void send_server_msg(struct tg_cp_conn *c, const Tollgate__V1__ServerMessage *m)
{
    (void)tg_pbstream_send(c->ms, &m->base); /* a failure closes the stream */
}

void tg_cp_stream_refuse(struct tg_cp_conn *c, const char *fmt, ...)
{
    Tollgate__V1__ServerMessage m = TOLLGATE__V1__SERVER_MESSAGE__INIT;
    Tollgate__V1__Close close = TOLLGATE__V1__CLOSE__INIT;
    char reason[TG_ERRLEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    close.reason = reason;
    m.msg_case = TOLLGATE__V1__SERVER_MESSAGE__MSG_CLOSE;
    m.close = &close;
    if (tg_msgstream_is_connected(c->ms))
        send_server_msg(c, &m);
    tg_msgstream_close(c->ms, true, "%s", reason);
}

/* ---- resources to protobuf, in a scratch arena ---- */

/* A message described by d, in arena a, with its defaults set. */
static void *new_msg(struct tg_resource *a, const ProtobufCMessageDescriptor *d)
{
    void *m = tg_resource_alloc(a, d->sizeof_message);

    if (m != NULL)
        protobuf_c_message_init(d, m);
    return m;
}

/* n messages described by d, as an array of pointers, in arena a; NULL when out of memory. */
static void *new_msgs(struct tg_resource *a, const ProtobufCMessageDescriptor *d, size_t n)
{
    void **v = tg_resource_array(a, n, sizeof(void *));

    for (size_t i = 0; v != NULL && i < n; i++)
        if ((v[i] = new_msg(a, d)) == NULL)
            return NULL;
    return v;
}

static Tollgate__V1__TrustBundle *pb_bundle(struct tg_resource *a,
                                            const struct tg_res_trust_bundle *b)
{
    Tollgate__V1__TrustBundle *m = new_msg(a, &tollgate__v1__trust_bundle__descriptor);

    if (m == NULL || (m->domains = new_msgs(a, &tollgate__v1__trust_domain_roots__descriptor,
                                            b->n_domains)) == NULL)
        return NULL;
    m->n_domains = b->n_domains;
    for (size_t i = 0; i < b->n_domains; i++) {
        Tollgate__V1__TrustDomainRoots *d = m->domains[i];

        d->trust_domain = b->domains[i].trust_domain;
        d->n_roots_pem = b->domains[i].roots_pem.n;
        d->roots_pem = b->domains[i].roots_pem.v;
    }
    return m;
}

/* A rule (or limit) concerns a sidecar when its scope names the sidecar's namespace (or none)
 * and every scope label is among the sidecar's labels. */
static bool concerns(const char *scope_ns, const struct tg_res_label *labels, size_t n,
                     const struct tg_cp_conn *c)
{
    if (scope_ns != NULL && scope_ns[0] != '\0' && strcmp(scope_ns, c->who.ns) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool found = false;

        for (size_t j = 0; j < c->n_labels && !found; j++)
            found = strcmp(labels[i].key, c->labels[j].key) == 0 &&
                    strcmp(labels[i].value, c->labels[j].value) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* A rule as pushed to c. Its scope goes with it only when the stream's labels are its own
 * claims (no kubernetes.discovery), for the sidecar to match against its workload section as
 * before; otherwise the control plane has decided already, from the authenticated namespace
 * and the Pod's labels (concerns), and the rule goes unscoped so that an injected sidecar,
 * which has no workload section, applies it. */
static Tollgate__V1__Rule *pb_rule(struct tg_resource *a, const struct tg_res_rule *r,
                                   const struct tg_cp_conn *c)
{
    Tollgate__V1__Rule *m = new_msg(a, &tollgate__v1__rule__descriptor);
    bool resolved = r->scope_resolved || c->pod_verdict != TG_CP_POD_CLAIMS;

    if (m == NULL)
        return NULL;
    m->name = r->name;
    m->action = r->action == TG_RES_DENY ? TOLLGATE__V1__RULE_ACTION__RULE_ACTION_DENY
                                         : TOLLGATE__V1__RULE_ACTION__RULE_ACTION_ALLOW;
    if (r->scope_namespace != NULL && !resolved)
        m->scope_namespace = r->scope_namespace;
    m->scope_labels =
        new_msgs(a, &tollgate__v1__rule__scope_labels_entry__descriptor, r->n_scope_labels);
    if (m->scope_labels == NULL)
        return NULL;
    m->n_scope_labels = resolved ? 0 : r->n_scope_labels;
    for (size_t i = 0; i < m->n_scope_labels; i++) {
        m->scope_labels[i]->key = r->scope_labels[i].key;
        m->scope_labels[i]->value = r->scope_labels[i].value;
    }
#define LIST(f)                                                                                    \
    do {                                                                                           \
        m->n_##f = r->f.n;                                                                         \
        m->f = r->f.v;                                                                             \
    } while (0)
    LIST(principals);
    LIST(not_principals);
    LIST(namespaces);
    LIST(not_namespaces);
    LIST(trust_domains);
    LIST(not_trust_domains);
    LIST(fingerprints);
    LIST(not_fingerprints);
    LIST(serials);
    LIST(not_serials);
    LIST(ports);
    LIST(not_ports);
    LIST(methods);
    LIST(paths);
    LIST(hosts);
#undef LIST
    return m;
}

static Tollgate__V1__AuthorizationPolicy *
pb_authz(struct tg_resource *a, const struct tg_res_authorization *z, const struct tg_cp_conn *c)
{
    Tollgate__V1__AuthorizationPolicy *m =
        new_msg(a, &tollgate__v1__authorization_policy__descriptor);

    if (m == NULL || (m->rules = tg_resource_array(a, z->n_rules, sizeof(void *))) == NULL)
        return NULL;
    m->default_ = z->default_deny ? TOLLGATE__V1__RULE_ACTION__RULE_ACTION_DENY
                                  : TOLLGATE__V1__RULE_ACTION__RULE_ACTION_ALLOW;
    m->close_denied = z->close_denied_connections;
    for (size_t i = 0; i < z->n_rules; i++) {
        if (!concerns(z->rules[i].scope_namespace, z->rules[i].scope_labels,
                      z->rules[i].n_scope_labels, c))
            continue;
        if ((m->rules[m->n_rules] = pb_rule(a, &z->rules[i], c)) == NULL)
            return NULL;
        m->n_rules++;
    }
    return m;
}

static Tollgate__V1__RateLimits *
pb_limits(struct tg_resource *a, const struct tg_res_rate_limits *l, const struct tg_cp_conn *c)
{
    Tollgate__V1__RateLimits *m = new_msg(a, &tollgate__v1__rate_limits__descriptor);
    size_t n = 0;

    for (size_t i = 0; i < l->n_limits; i++)
        n += concerns(l->limits[i].scope_namespace, l->limits[i].scope_labels,
                      l->limits[i].n_scope_labels, c);
    if (m == NULL || (m->limits = new_msgs(a, &tollgate__v1__limit__descriptor, n)) == NULL)
        return NULL;
    for (size_t i = 0; i < l->n_limits; i++) {
        const struct tg_res_limit *s = &l->limits[i];
        Tollgate__V1__Limit *d;

        if (!concerns(s->scope_namespace, s->scope_labels, s->n_scope_labels, c))
            continue;
        d = m->limits[m->n_limits++];
        d->key = s->key_by == TG_RES_LIMIT_BY_FINGERPRINT
                     ? TOLLGATE__V1__LIMIT_KEY__LIMIT_KEY_FINGERPRINT
                     : TOLLGATE__V1__LIMIT_KEY__LIMIT_KEY_ID;
        d->principal = s->match;
        d->connections_per_second = s->connections_per_second;
        d->burst = s->burst;
        d->max_concurrent = s->max_concurrent;
        d->bytes_per_second = s->bytes_per_second;
        d->requests_per_second = s->requests_per_second;
        d->requests_burst = s->requests_burst;
    }
    return m;
}

static Tollgate__V1__Revocations *pb_revocations(struct tg_resource *a,
                                                 const struct tg_res_revocations *r)
{
    Tollgate__V1__Revocations *m = new_msg(a, &tollgate__v1__revocations__descriptor);

    if (m == NULL || (m->crls = tg_resource_array(a, r->n_crls, sizeof(*m->crls))) == NULL)
        return NULL;
    m->n_serials = r->serials.n;
    m->serials = r->serials.v;
    m->n_fingerprints = r->fingerprints.n;
    m->fingerprints = r->fingerprints.v;
    for (size_t i = 0; i < r->n_crls; i++)
        m->crls[i] = (ProtobufCBinaryData){r->crls[i].len, r->crls[i].data};
    m->n_crls = r->n_crls;
    return m;
}

/* enum tg_tunnel_mode as tollgate.v1.TunnelMode. */
static Tollgate__V1__TunnelMode pb_tunnel(enum tg_tunnel_mode m)
{
    switch (m) {
    case TG_TUNNEL_OFF:
        return TOLLGATE__V1__TUNNEL_MODE__TUNNEL_MODE_OFF;
    case TG_TUNNEL_AUTO:
        return TOLLGATE__V1__TUNNEL_MODE__TUNNEL_MODE_AUTO;
    case TG_TUNNEL_ON:
        return TOLLGATE__V1__TUNNEL_MODE__TUNNEL_MODE_ON;
    default:
        return TOLLGATE__V1__TUNNEL_MODE__TUNNEL_MODE_UNSET;
    }
}

static Tollgate__V1__MeshTable *pb_mesh(struct tg_resource *a, const struct tg_res_mesh_table *t)
{
    Tollgate__V1__MeshTable *m = new_msg(a, &tollgate__v1__mesh_table__descriptor);

    if (m == NULL || (m->destinations = new_msgs(a, &tollgate__v1__destination__descriptor,
                                                 t->n_destinations)) == NULL)
        return NULL;
    m->outside = t->outside_refuse ? TOLLGATE__V1__OUTSIDE_MESH__OUTSIDE_MESH_REFUSE
                                   : TOLLGATE__V1__OUTSIDE_MESH__OUTSIDE_MESH_PASSTHROUGH;
    m->n_destinations = t->n_destinations;
    for (size_t i = 0; i < t->n_destinations; i++) {
        const struct tg_res_destination *s = &t->destinations[i];
        Tollgate__V1__Destination *d = m->destinations[i];

        d->address = s->address;
        d->port = s->port;
        d->n_expect = s->expected_ids.n;
        d->expect = s->expected_ids.v;
        d->protocol = s->protocol == TG_RES_HTTP ? TOLLGATE__V1__PROTOCOL__PROTOCOL_HTTP
                                                 : TOLLGATE__V1__PROTOCOL__PROTOCOL_TCP;
        d->tunnel = pb_tunnel(s->tunnel);
    }
    return m;
}

static Tollgate__V1__ProxySettings *pb_settings(struct tg_resource *a,
                                                const struct tg_res_proxy_settings *p)
{
    Tollgate__V1__ProxySettings *m = new_msg(a, &tollgate__v1__proxy_settings__descriptor);

    if (m == NULL)
        return NULL;
    if (p->min_tls_version != NULL)
        m->tls_min_version = p->min_tls_version;
    m->n_tls_cipher_suites = p->cipher_suites.n;
    m->tls_cipher_suites = p->cipher_suites.v;
    m->timeouts_handshake_ms = p->handshake_timeout_ms;
    m->timeouts_idle_ms = p->idle_timeout_ms;
    m->timeouts_connect_ms = p->connect_timeout_ms;
    m->inbound_mode = p->inbound_mode == TG_RES_INBOUND_STRICT
                          ? TOLLGATE__V1__INBOUND_MODE__INBOUND_MODE_STRICT
                      : p->inbound_mode == TG_RES_INBOUND_PERMISSIVE
                          ? TOLLGATE__V1__INBOUND_MODE__INBOUND_MODE_PERMISSIVE
                          : TOLLGATE__V1__INBOUND_MODE__INBOUND_MODE_UNSPECIFIED;
    return m;
}

/* The version of a resource: FNV-1a 64 of its packed form, in hex. A content hash, so every
 * replica of the control plane names the same content alike and a sidecar resumes across
 * them. Not a security property: the stream is authenticated. */
static void version_of(const ProtobufCMessage *m, struct tg_resource *a, char *out, size_t cap)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = tg_resource_alloc(a, len + 1);
    uint64_t h = 0xcbf29ce484222325ull;

    if (buf == NULL) {
        snprintf(out, cap, "?");
        return;
    }
    protobuf_c_message_pack(m, buf);
    for (size_t i = 0; i < len; i++) {
        h ^= buf[i];
        h *= 0x100000001b3ull;
    }
    snprintf(out, cap, "%016" PRIx64, h);
}

/* Builds the push of type t for c into m (in a). 0 or TG_ENOMEM. */
static int build_push(struct tg_cp_conn *c, enum tg_res_type t, struct tg_resource *a,
                      Tollgate__V1__Push *p, char *version, size_t cap)
{
    const struct tg_resource *r = tg_cp_server_resource(c->srv, t);
    const ProtobufCMessage *body = NULL;

    if (r == NULL)
        return TG_EAGAIN; /* not known yet: push nothing of this type */

    p->type = (Tollgate__V1__ResourceType)t;
    switch (t) {
    case TG_RES_TRUST_BUNDLE:
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_TRUST_BUNDLE;
        body = (const ProtobufCMessage *)(p->trust_bundle = pb_bundle(a, &r->u.trust_bundle));
        break;
    case TG_RES_AUTHORIZATION:
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_AUTHORIZATION;
        body = (const ProtobufCMessage *)(p->authorization = pb_authz(a, &r->u.authorization, c));
        break;
    case TG_RES_RATE_LIMITS:
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_RATE_LIMITS;
        body = (const ProtobufCMessage *)(p->rate_limits = pb_limits(a, &r->u.rate_limits, c));
        break;
    case TG_RES_REVOCATIONS:
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_REVOCATIONS;
        body = (const ProtobufCMessage *)(p->revocations = pb_revocations(a, &r->u.revocations));
        break;
    case TG_RES_MESH_TABLE:
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_MESH_TABLE;
        body = (const ProtobufCMessage *)(p->mesh_table = pb_mesh(a, &r->u.mesh_table));
        break;
    case TG_RES_PROXY_SETTINGS:
        p->resource_case = TOLLGATE__V1__PUSH__RESOURCE_PROXY_SETTINGS;
        body = (const ProtobufCMessage *)(p->proxy_settings = pb_settings(a, &r->u.proxy_settings));
        break;
    default:
        return TG_EINVAL;
    }
    if (body == NULL)
        return TG_ENOMEM;
    version_of(body, a, version, cap);
    return 0;
}

/* The same bytes for every stream: all but authorization and rate limits, which are cut to
 * each sidecar's scope (concerns). */
static bool shared_type(enum tg_res_type t)
{
    return t != TG_RES_AUTHORIZATION && t != TG_RES_RATE_LIMITS;
}

/* The shared push of type t, built again when what is pushed has changed since. 0, TG_EAGAIN
 * (nothing of that type yet) or TG_ENOMEM. */
static int shared_push(struct tg_cp_conn *c, enum tg_res_type t, struct tg_cp_shared_push **out)
{
    struct tg_cp_shared_push *sp = tg_cp_server_shared_push(c->srv, t);
    const struct tg_resource *r = tg_cp_server_resource(c->srv, t);
    uint64_t gen = tg_cp_server_res_gen(c->srv);
    Tollgate__V1__ServerMessage m = TOLLGATE__V1__SERVER_MESSAGE__INIT;
    Tollgate__V1__Push p = TOLLGATE__V1__PUSH__INIT;
    struct tg_resource *a;
    uint8_t *msg;
    size_t len;
    int rc;

    if (r == NULL)
        return TG_EAGAIN;
    *out = sp;
    if (sp->msg != NULL && sp->res == r && sp->gen == gen)
        return 0;
    if ((a = tg_resource_new(TG_RES_NONE)) == NULL)
        return TG_ENOMEM;
    if ((rc = build_push(c, t, a, &p, sp->version, sizeof(sp->version))) < 0) {
        tg_resource_free(a);
        return rc;
    }
    /* per type, never the same twice in this process: unique on every stream it goes to */
    snprintf(sp->nonce, sizeof(sp->nonce), "s%d-%" PRIu64, (int)t, ++sp->builds);
    p.version = sp->version;
    p.nonce = sp->nonce;
    m.msg_case = TOLLGATE__V1__SERVER_MESSAGE__MSG_PUSH;
    m.push = &p;
    msg = pack_server_msg(&m, &len);
    tg_resource_free(a);
    if (msg == NULL)
        return TG_ENOMEM;
    free(sp->msg);
    sp->msg = msg;
    sp->len = len;
    sp->res = r;
    sp->gen = gen;
    return 0;
}

/* c has been sent version of type t. */
static void pushed(struct tg_cp_conn *c, enum tg_res_type t, const char *version)
{
    snprintf(c->sent[t], sizeof(c->sent[t]), "%s", version);
    tg_cp_server_stats_mut(c->srv)->pushes++;
    tg_info("stream %" PRIu64 " (%s): pushed %s version %s", c->id, c->who.id, tg_res_type_name(t),
            version);
}

/* Sends c the shared push of type t if it lacks that version and has a turn (paced:
 * cp_server.h); without a turn it is held and sent the newest version later. 0, or
 * TG_ENOMEM. */
static int push_shared(struct tg_cp_conn *c, enum tg_res_type t)
{
    struct tg_cp_shared_push *sp;
    int rc = shared_push(c, t, &sp);

    if (rc == TG_EAGAIN)
        return 0;
    if (rc < 0)
        return rc;
    if (strcmp(sp->version, c->sent[t]) != 0 && tg_cp_server_push_turn(c->srv, c)) {
        snprintf(c->nonce[t], sizeof(c->nonce[t]), "%s", sp->nonce);
        send_packed(c, sp->msg, sp->len);
        pushed(c, t, sp->version);
    }
    return 0;
}

/* Builds the push of type t for c alone and sends it if c lacks that version. 0, or
 * TG_ENOMEM. */
static int push_own(struct tg_cp_conn *c, enum tg_res_type t)
{
    Tollgate__V1__ServerMessage m = TOLLGATE__V1__SERVER_MESSAGE__INIT;
    Tollgate__V1__Push p = TOLLGATE__V1__PUSH__INIT;
    struct tg_resource *a = tg_resource_new(TG_RES_NONE);
    char version[TG_CP_VERSION_MAX + 1];
    int rc = a == NULL ? TG_ENOMEM : build_push(c, t, a, &p, version, sizeof(version));

    if (rc == TG_EAGAIN)
        rc = 0;
    else if (rc == 0 && strcmp(version, c->sent[t]) != 0) {
        snprintf(c->nonce[t], sizeof(c->nonce[t]), "%" PRIu64 "-%" PRIu64, c->id, ++c->pushes);
        p.version = version;
        p.nonce = c->nonce[t];
        m.msg_case = TOLLGATE__V1__SERVER_MESSAGE__MSG_PUSH;
        m.push = &p;
        send_server_msg(c, &m);
        pushed(c, t, version);
    }
    tg_resource_free(a);
    return rc;
}

void tg_cp_stream_push_changed(struct tg_cp_conn *c)
{
    if (!c->hello_seen)
        return;
    for (int t = TG_RES_TRUST_BUNDLE; t < TG_RES_N && tg_msgstream_is_connected(c->ms); t++) {
        int rc = shared_type((enum tg_res_type)t) ? push_shared(c, (enum tg_res_type)t)
                                                  : push_own(c, (enum tg_res_type)t);

        if (rc < 0) {
            tg_msgstream_close(c->ms, false, "out of memory building a push");
            return;
        }
    }
}

/* ---- receiving ---- */

static char *dup_claim(const char *s)
{
    return strdup(s != NULL ? s : "");
}

/* A client certificate is verified in the handshake, by tls.c under the state of that
 * handshake (chain, expiry, CRLs), and by nothing else here. Before a stream is trusted again
 * (its Hello, each CSR) the certificate must still be valid now, and the roots and CRLs we
 * hold now must be those it was verified under; if not, the stream is told to reconnect, and
 * the new handshake verifies it again (or refuses it, as a sidecar would). */
static int still_verified(const struct tg_cp_conn *c, const struct tg_peer_info *peer, char *err)
{
    int64_t now = tg_identity_now();

    if (peer->not_after <= now)
        return tg_err_set(err, TG_EPEER, "client certificate %s (serial %s) expired %lld s ago",
                          peer->id, peer->serial, (long long)(now - peer->not_after));
    if (!tg_cp_state_same_trust(c->state, tg_cp_server_state(c->srv)))
        return tg_err_set(err, TG_EPEER,
                          "client certificate %s (serial %s) was verified under roots or CRLs "
                          "that have changed since",
                          peer->id, peer->serial);
    return 0;
}

/* Whether c's token is for the API server to check (kubernetes.token_review): no client
 * certificate, and a token of a JWT's shape. */
static bool needs_review(const struct tg_cp_conn *c)
{
    const struct tg_cp_state *s = tg_cp_server_state(c->srv);

    return s->cfg->k8s_token_review && tg_msgstream_peer(c->ms)->id == NULL && c->token != NULL &&
           tg_cp_authn_jwt_shaped(c->token);
}

/* Who c is. review: the API server's answer about its token, or NULL: the cached one when
 * the token needs one (none cached: refused, for the caller to have the stream reconnect). */
static int authenticate(struct tg_cp_conn *c, const struct tg_cp_review *review,
                        struct tg_cp_who *who, char *err)
{
    const struct tg_cp_state *s = tg_cp_server_state(c->srv);
    const struct tg_peer_info *peer = tg_msgstream_peer(c->ms);
    const struct tg_res_revocations *rv = &s->res[TG_RES_REVOCATIONS]->u.revocations;
    const struct tg_cp_jwt_rules jwt = {
        .issuer = s->cfg->k8s_issuer,
        .audiences = &s->cfg->k8s_audiences,
        .keys = s->jwt_keys,
        .now = (int64_t)time(NULL),
    };
    struct tg_cp_authn_in in = {
        .trust_domain = s->cfg->trust_domain,
        .peer_id = peer->id,
        .peer_serial = peer->serial,
        .peer_sha256 = peer->sha256,
        .token = c->token,
        .tokens = &s->tokens,
        .jwt = s->jwt_keys != NULL ? &jwt : NULL,
        .claim_ns = c->claim_ns,
        .claim_sa = c->claim_sa,
        .revoked_serials = &rv->serials,
        .revoked_fingerprints = &rv->fingerprints,
    };
    int rc;

    if (peer->id != NULL && (rc = still_verified(c, peer, err)) < 0)
        return rc;
    if (review == NULL && needs_review(c) &&
        (review = tg_cp_reviews_get(tg_cp_server_reviews(c->srv), c->token, jwt.now)) == NULL)
        return tg_err_set(err, TG_EPEER,
                          "the API server's review of the service-account token has expired");
    in.review = review;
    return tg_cp_authn_decide(&in, who, err);
}

/* A copy of n labels (n + 1 entries, so that none is calloc(0)); NULL when out of memory. */
static struct tg_res_label *copy_labels(const struct tg_res_label *v, size_t n)
{
    struct tg_res_label *l = calloc(n + 1, sizeof(*l));

    for (size_t i = 0; l != NULL && i < n; i++) {
        l[i].key = strdup(v[i].key);
        l[i].value = strdup(v[i].value);
        if (l[i].key == NULL || l[i].value == NULL) {
            tg_res_labels_free(l, n);
            return NULL;
        }
    }
    return l;
}

static bool same_labels(const struct tg_res_label *a, size_t na, const struct tg_res_label *b,
                        size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i].key, b[i].key) != 0 || strcmp(a[i].value, b[i].value) != 0)
            return false;
    return true;
}

static const char *const verdict_names[] = {"as claimed (no kubernetes.discovery)",
                                            "none (Hello names no pod)",
                                            "none until the Pods are listed", "the Pod's"};

int tg_cp_stream_check_pod(struct tg_cp_conn *c, char *err)
{
    const struct tg_cp_k8s *k = tg_cp_server_k8s(c->srv);
    const struct tg_k8s_client *kc = k != NULL ? tg_cp_k8s_client(k) : NULL;
    struct tg_k8s_list lists[TG_K8S_NKINDS];
    struct tg_cp_pod_in in = {
        .ns = c->who.ns,
        .sa = c->who.sa,
        .claim_pod = c->claim_pod,
        .token_pod = c->who.pod,
        .claims = c->claims,
        .n_claims = c->n_claims,
        .discovery = kc != NULL,
        .synced = kc != NULL && tg_k8s_client_synced(kc),
        .pods = &lists[TG_K8S_POD],
    };
    enum tg_cp_pod_verdict v;
    const struct tg_k8s_obj *pod;
    const struct tg_res_label *want = NULL;
    struct tg_res_label *copy;
    size_t n = 0;
    int rc;

    if (kc != NULL)
        tg_k8s_client_lists(kc, lists);
    if ((rc = tg_cp_pod_decide(&in, &v, &pod, err)) < 0)
        return rc;
    if (v == TG_CP_POD_CLAIMS) {
        want = c->claims;
        n = c->n_claims;
    } else if (v == TG_CP_POD_BOUND) {
        want = pod->u.pod.labels;
        n = pod->u.pod.n_labels;
    }
    if (c->labels != NULL && (int)v == c->pod_verdict &&
        same_labels(c->labels, c->n_labels, want, n))
        return 0;
    if ((copy = copy_labels(want, n)) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    tg_res_labels_free(c->labels, c->n_labels);
    c->labels = copy;
    c->n_labels = n;
    c->pod_verdict = (int)v;
    tg_info("stream %" PRIu64 " (%s, pod \"%s\"): rule-scoping labels: %s, %zu", c->id, c->who.id,
            pod != NULL       ? pod->name
            : c->claim_pod[0] ? c->claim_pod
                              : "?",
            verdict_names[v], n);
    return 1;
}

static void on_csr(struct tg_cp_conn *c, uint64_t request_id, const uint8_t *der, size_t len);

/* The second half of Hello, once what it claims is copied into c: who it is (review: the API
 * server's answer about its token, or NULL), its pod, then the pushes. A token the API server
 * must check and has not (cached) sends it off: this runs again with the answer. */
static void finish_hello(struct tg_cp_conn *c, const struct tg_cp_review *review)
{
    struct tg_cp_server_stats *st = tg_cp_server_stats_mut(c->srv);
    char err[TG_ERRLEN];
    int rc;

    if (review == NULL && needs_review(c) &&
        tg_cp_reviews_get(tg_cp_server_reviews(c->srv), c->token, (int64_t)time(NULL)) == NULL) {
        if ((rc = tg_cp_server_review(c->srv, c->id, c->token)) < 0) {
            tg_cp_stream_refuse(c, "cannot ask the API server about the token: %s",
                                tg_strerror(rc));
            return;
        }
        c->reviewing = true;
        return;
    }
    if ((rc = authenticate(c, review, &c->who, err)) == 0)
        rc = tg_cp_stream_check_pod(c, err);
    if (rc < 0) {
        st->refused++;
        tg_warn("stream %" PRIu64 " from %s (node \"%s\") refused: %s", c->id,
                tg_msgstream_peer_addr(c->ms), c->node_id[0] ? c->node_id : "?", err);
        tg_cp_stream_refuse(c, "%s", err);
        return;
    }
    c->hello_seen = true;
    tg_cp_server_authenticated(c);
    tg_info("stream %" PRIu64 " from %s: node \"%s\" is %s (by %s)", c->id,
            tg_msgstream_peer_addr(c->ms), c->node_id[0] ? c->node_id : "?", c->who.id,
            c->who.by_cert ? "certificate"
            : review != NULL || needs_review(c)
                ? "service-account token, reviewed by the API server"
            : c->who.by_jwt ? "service-account token"
                            : "bootstrap token");
    tg_cp_stream_push_changed(c);
    if (c->csr_der != NULL && tg_msgstream_is_connected(c->ms)) {
        on_csr(c, c->csr_id, c->csr_der, c->csr_len); /* it came while the API server answered */
        free(c->csr_der);
        c->csr_der = NULL;
    }
}

void tg_cp_stream_on_review(struct tg_cp_conn *c, const struct tg_cp_review *r)
{
    if (!c->reviewing || !tg_msgstream_is_connected(c->ms))
        return;
    c->reviewing = false;
    finish_hello(c, r);
}

static void on_hello(struct tg_cp_conn *c, const Tollgate__V1__Hello *h)
{
    if (c->hello_seen || c->reviewing) {
        tg_cp_stream_refuse(c, "a second Hello");
        return;
    }
    snprintf(c->node_id, sizeof(c->node_id), "%s", h->node_id);
    c->token = dup_claim(h->token);
    c->claim_ns = dup_claim(h->namespace_);
    c->claim_sa = dup_claim(h->service_account);
    c->claim_pod = dup_claim(h->pod_name);
    c->claims = calloc(h->n_labels + 1, sizeof(*c->claims));
    if (c->token == NULL || c->claim_ns == NULL || c->claim_sa == NULL || c->claim_pod == NULL ||
        c->claims == NULL) {
        tg_msgstream_close(c->ms, false, "out of memory");
        return;
    }
    for (size_t i = 0; i < h->n_labels; i++) {
        c->claims[i].key = strdup(h->labels[i]->key);
        c->claims[i].value = strdup(h->labels[i]->value);
        c->n_claims++;
        if (c->claims[i].key == NULL || c->claims[i].value == NULL) {
            tg_msgstream_close(c->ms, false, "out of memory");
            return;
        }
    }
    /* resume: what the sidecar holds is not pushed again */
    for (size_t i = 0; i < h->n_resource_versions; i++) {
        enum tg_res_type t = tg_res_type_from_name(h->resource_versions[i]->key);

        if (t >= TG_RES_TRUST_BUNDLE && t < TG_RES_N)
            snprintf(c->sent[t], sizeof(c->sent[t]), "%s", h->resource_versions[i]->value);
    }
    tg_debug("stream %" PRIu64 ": Hello from sidecar \"%s\"", c->id,
             h->version[0] ? h->version : "?");
    finish_hello(c, NULL);
}

static void on_csr(struct tg_cp_conn *c, uint64_t request_id, const uint8_t *der, size_t len)
{
    struct tg_cp_server_stats *st = tg_cp_server_stats_mut(c->srv);
    const struct tg_cp_state *s = tg_cp_server_state(c->srv);
    Tollgate__V1__ServerMessage m = TOLLGATE__V1__SERVER_MESSAGE__INIT;
    Tollgate__V1__CsrResponse resp = TOLLGATE__V1__CSR_RESPONSE__INIT;
    struct tg_cp_who who;
    char err[TG_ERRLEN], *chain = NULL;
    size_t chain_len;
    int64_t ttl = (int64_t)(s->cfg->cert_ttl_ms / 1000);
    int rc;

    /* again, against the current files: a token taken out, a service-account token expired,
     * a certificate revoked (serial, fingerprint, CRL) or expired since the Hello, or roots
     * and CRLs changed since the handshake: no new identity on this stream. It is closed, and
     * the sidecar reconnects: with its certificate if it has one (verified again in the
     * handshake: a revoked one is refused there), else with its token (kubelet rewrites a
     * service-account token's file before it expires). */
    rc = authenticate(c, NULL, &who, err);
    if (rc == 0 && strcmp(who.id, c->who.id) != 0)
        rc = tg_err_set(err, TG_EPEER, "identity changed since Hello (%.100s, now %.100s)",
                        c->who.id, who.id);
    if (rc < 0) {
        st->csrs_refused++;
        tg_warn("stream %" PRIu64 ": CSR %" PRIu64 " for %s refused: %s", c->id, request_id,
                c->who.id, err);
        tg_cp_stream_refuse(c, "%s; reconnect", err);
        return;
    }
    rc = tg_cp_ca_sign(s->ca, der, len, c->who.id, ttl, &chain, &chain_len, err);
    resp.request_id = request_id;
    if (chain != NULL) {
        resp.result_case = TOLLGATE__V1__CSR_RESPONSE__RESULT_CHAIN_PEM;
        resp.chain_pem = chain;
        st->certs_issued++;
        tg_info("stream %" PRIu64 ": issued %s for %lld s (CSR %" PRIu64 ", CA serial %s)", c->id,
                c->who.id, (long long)ttl, request_id, tg_cp_ca_serial(s->ca));
    } else {
        resp.result_case = TOLLGATE__V1__CSR_RESPONSE__RESULT_ERROR;
        resp.error = err;
        st->csrs_refused++;
        tg_warn("stream %" PRIu64 ": CSR %" PRIu64 " for %s refused: %s", c->id, request_id,
                c->who.id, err);
    }
    m.msg_case = TOLLGATE__V1__SERVER_MESSAGE__MSG_CSR;
    m.csr = &resp;
    send_server_msg(c, &m);
    free(chain);
}

static bool type_ok(Tollgate__V1__ResourceType t)
{
    return (int)t >= TG_RES_IDENTITY && (int)t < TG_RES_N;
}

static void on_ack(struct tg_cp_conn *c, const Tollgate__V1__Ack *a)
{
    enum tg_res_type t = (enum tg_res_type)a->type;

    if (!type_ok(a->type))
        return;
    tg_cp_server_stats_mut(c->srv)->acks++;
    if (t == TG_RES_IDENTITY) {
        tg_debug("stream %" PRIu64 ": certificate of CSR \"%s\" applied", c->id, a->nonce);
        return;
    }
    if (strcmp(a->nonce, c->nonce[t]) != 0)
        return; /* an answer to an older push */
    snprintf(c->acked[t], sizeof(c->acked[t]), "%s", a->version);
    tg_debug("stream %" PRIu64 " (%s): %s version \"%s\" applied", c->id, c->who.id,
             tg_res_type_name(t), a->version);
}

static void on_nack(struct tg_cp_conn *c, const Tollgate__V1__Nack *n)
{
    enum tg_res_type t = (enum tg_res_type)n->type;

    tg_cp_server_stats_mut(c->srv)->nacks++;
    tg_warn("stream %" PRIu64 " (%s, node \"%s\") refused %s (nonce \"%s\"): \"%.200s\"", c->id,
            c->who.id, c->node_id[0] ? c->node_id : "?",
            type_ok(n->type) ? tg_res_type_name(t) : "an unknown type", n->nonce, n->error);
}

static void on_ping(struct tg_cp_conn *c, const Tollgate__V1__Ping *p)
{
    Tollgate__V1__ServerMessage m = TOLLGATE__V1__SERVER_MESSAGE__INIT;
    Tollgate__V1__Pong pong = TOLLGATE__V1__PONG__INIT;

    pong.id = p->id;
    m.msg_case = TOLLGATE__V1__SERVER_MESSAGE__MSG_PONG;
    m.pong = &pong;
    send_server_msg(c, &m);
}

/* A CSR that arrives while Hello waits for the API server (the last one wins; its frame was
 * at most TG_CP_HELLO_MAX bytes). */
static void keep_csr(struct tg_cp_conn *c, const Tollgate__V1__CsrRequest *req)
{
    unsigned char *copy = malloc(req->csr_der.len + 1);

    if (copy == NULL) {
        tg_msgstream_close(c->ms, false, "out of memory");
        return;
    }
    memcpy(copy, req->csr_der.data, req->csr_der.len);
    free(c->csr_der);
    c->csr_der = copy;
    c->csr_len = req->csr_der.len;
    c->csr_id = req->request_id;
}

/* Before Hello, decoding may allocate TG_CP_HELLO_DECODE_BUDGET bytes in all: a small frame
 * of empty map entries must not become a large heap. */
struct budget {
    size_t left;
};

static void *budget_alloc(void *arg, size_t size)
{
    struct budget *b = arg;

    if (size > b->left)
        return NULL; /* protobuf-c frees what it took and the unpack fails */
    b->left -= size;
    return malloc(size);
}

static void budget_free(void *arg, void *p)
{
    (void)arg;
    free(p);
}

void tg_cp_stream_on_frame(struct tg_cp_conn *c, const char *frame, size_t len)
{
    struct budget b = {TG_CP_HELLO_DECODE_BUDGET};
    ProtobufCAllocator budgeted = {budget_alloc, budget_free, &b};
    ProtobufCAllocator *alloc = c->hello_seen ? NULL : &budgeted;
    Tollgate__V1__ClientMessage *m =
        tollgate__v1__client_message__unpack(alloc, len, (const uint8_t *)frame);

    if (m == NULL) {
        const char *within = alloc != NULL ? " (within the memory allowed before Hello)" : "";

        tg_warn("stream %" PRIu64 " from %s: message of %zu bytes does not decode%s", c->id,
                tg_msgstream_peer_addr(c->ms), len, within);
        tg_cp_stream_refuse(c, "message of %zu bytes does not decode%s", len, within);
        return;
    }
    c->last_rx = uv_now(tg_cp_server_loop(c->srv));
    if (c->reviewing && m->msg_case == TOLLGATE__V1__CLIENT_MESSAGE__MSG_CSR) {
        keep_csr(c, m->csr); /* the sidecar sends it right after Hello: answered after it */
    } else if (c->reviewing && m->msg_case == TOLLGATE__V1__CLIENT_MESSAGE__MSG_PING) {
        on_ping(c, m->ping);
    } else if (!c->hello_seen && !c->reviewing &&
               m->msg_case != TOLLGATE__V1__CLIENT_MESSAGE__MSG_HELLO) {
        tg_cp_stream_refuse(c, "the first message must be Hello");
    } else {
        switch (m->msg_case) {
        case TOLLGATE__V1__CLIENT_MESSAGE__MSG_HELLO:
            on_hello(c, m->hello);
            break;
        case TOLLGATE__V1__CLIENT_MESSAGE__MSG_CSR:
            on_csr(c, m->csr->request_id, m->csr->csr_der.data, m->csr->csr_der.len);
            break;
        case TOLLGATE__V1__CLIENT_MESSAGE__MSG_ACK:
            on_ack(c, m->ack);
            break;
        case TOLLGATE__V1__CLIENT_MESSAGE__MSG_NACK:
            on_nack(c, m->nack);
            break;
        case TOLLGATE__V1__CLIENT_MESSAGE__MSG_PING:
            on_ping(c, m->ping);
            break;
        default:
            tg_cp_stream_refuse(c, "message of %zu bytes has no content", len);
            break;
        }
    }
    tollgate__v1__client_message__free_unpacked(m, alloc);
}

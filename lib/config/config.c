/* The sidecar's configuration file: the schema tables below, read by the one YAML layer
 * (cfgload.h), and the checks that span several keys. The tables for authorization,
 * rate_limits, revocations and mesh are shared with tollgate-cp's mesh files (config.h,
 * tg_config_section_fields), so a rule, a limit or a destination is written the same way in
 * both. */
#include "tollgate/config.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tollgate/cfgload.h"
#include "tollgate/file.h"
#include "tollgate/policy.h"
#include "tollgate/ratelimit.h"
#include "tollgate/ref.h"

#define MAX_NAME 64 /* listener names */
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

#define CFG(m) offsetof(struct tg_config, m)
#define IN(m) offsetof(struct tg_inbound_cfg, m)
#define OUT(m) offsetof(struct tg_outbound_cfg, m)
#define DEST(m) offsetof(struct tg_mesh_dest, m)
#define RULE(m) offsetof(struct tg_rule_cfg, m)
#define LIM(m) offsetof(struct tg_limit_cfg, m)
#define HTTPC(m) offsetof(struct tg_http_cfg, m)
#define LLIM(m) offsetof(struct tg_listener_limit_cfg, m)
#define UINT_ROW(k, type, m, lo, hi)                                                               \
    TG_CFG_ROWX(k, TG_CFG_UINT, offsetof(type, m), .size = TG_CFG_SIZEOF(type, m), .min = lo,      \
                .max = hi)
#define ENUM_ROW(k, type, m, c, w)                                                                 \
    TG_CFG_ROWX(k, TG_CFG_ENUM, offsetof(type, m), .size = TG_CFG_SIZEOF(type, m), .choices = c,   \
                .what = w)
#define RENAMED_ROW(old, new) TG_CFG_ROWX(old, TG_CFG_RENAMED, 0, .renamed = new)

/* Enumerations, as data: a new choice is a row. */
static const struct tg_cfg_choice action_choices[] = {{"allow", 0}, {"deny", 1}, {NULL, 0}};
static const struct tg_cfg_choice keyby_choices[] = {{"id", 0}, {"fingerprint", 1}, {NULL, 0}};
static const struct tg_cfg_choice outside_choices[] = {
    {"passthrough", 0}, {"refuse", 1}, {NULL, 0}};
static const struct tg_cfg_choice protocol_choices[] = {{"tcp", 0}, {"http", 1}, {NULL, 0}};
static const struct tg_cfg_choice mode_choices[] = {
    {"strict", TG_MODE_STRICT}, {"permissive", TG_MODE_PERMISSIVE}, {NULL, 0}};
const struct tg_cfg_choice tg_cfg_log_levels[] = {{"debug", TG_LOG_DEBUG},
                                                  {"info", TG_LOG_INFO},
                                                  {"warn", TG_LOG_WARN},
                                                  {"error", TG_LOG_ERROR},
                                                  {NULL, 0}};
const struct tg_cfg_choice tg_cfg_log_formats[] = {
    {"text", TG_LOG_TEXT}, {"json", TG_LOG_JSON}, {NULL, 0}};
static const struct tg_cfg_choice alogfmt_choices[] = {{"json", 0}, {"text", 1}, {NULL, 0}};
static const struct tg_cfg_choice tlsver_choices[] = {{"1.3", 0}, {"1.2", 1}, {NULL, 0}};
static const struct tg_cfg_choice tunnel_choices[] = {
    {"off", TG_TUNNEL_OFF}, {"auto", TG_TUNNEL_AUTO}, {"on", TG_TUNNEL_ON}, {NULL, 0}};

int tg_config_tunnel_parse(const char *s, enum tg_tunnel_mode *out)
{
    for (const struct tg_cfg_choice *c = tunnel_choices; c->name != NULL; c++) {
        if (strcmp(c->name, s) == 0) {
            *out = (enum tg_tunnel_mode)c->value;
            return 0;
        }
    }
    return TG_EINVAL;
}

const char *tg_config_tunnel_name(enum tg_tunnel_mode m)
{
    for (const struct tg_cfg_choice *c = tunnel_choices; c->name != NULL; c++)
        if (c->value == (int)m)
            return c->name;
    return "unset";
}

/* The parse in progress, for checks across keys (cfg->user). */
struct parse {
    struct tg_config *c;
};

static struct tg_config *config_of(const struct tg_cfg *cfg)
{
    return ((const struct parse *)cfg->user)->c;
}

/* ---- the shared sections: authorization, rate_limits, revocations, mesh ---- */

/* Fingerprints and serials in normal form, as the policy compares them (policy.h). */
static int check_fingerprint(const char *s, char *norm, char *why)
{
    char inner[TG_ERRLEN];

    if (tg_policy_fingerprint_norm(s, norm, inner) < 0)
        return tg_err_set(why, TG_EINVAL, "\"%.64s\": %s", s, inner);
    return 0;
}

static int check_serial(const char *s, char *norm, char *why)
{
    char inner[TG_ERRLEN];

    if (tg_policy_serial_norm(s, norm, inner) < 0)
        return tg_err_set(why, TG_EINVAL, "\"%.64s\": %s", s, inner);
    return 0;
}

/* A limit's principal: "*", "prefix*", "*suffix" or an exact ID (ratelimit.h). */
static int check_match(const char *s, char *norm, char *why)
{
    (void)norm;
    return tg_limit_match_check(s, why);
}

/* A cipher suite's name, as wolfSSL spells them ("TLS13-AES128-GCM-SHA256"); which ones are
 * offered is checked where the TLS context is made (tls.h). */
static int check_cipher(const char *s, char *norm, char *why)
{
    (void)norm;
    if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(s))
        return tg_err_set(why, TG_EINVAL, "\"%.64s\" is not a cipher suite name", s);
    return 0;
}

static const struct tg_cfg_field scope_fields[] = {
    TG_CFG_ROW("namespace", TG_CFG_STR, RULE(scope_ns)),
    TG_CFG_ROW("labels", TG_CFG_LABELS, RULE(scope_labels)),
    {.key = NULL},
};

static const struct tg_cfg_field rule_fields[] = {
    TG_CFG_ROWX("name", TG_CFG_STR, RULE(name), .required = true),
    TG_CFG_ROWX("action", TG_CFG_ENUM, RULE(deny), .size = sizeof(bool), .choices = action_choices,
                .required = true),
    TG_CFG_ROWX("scope", TG_CFG_MAP, 0, .sub = scope_fields),
    TG_CFG_ROW("principals", TG_CFG_STRS, RULE(principals)),
    TG_CFG_ROW("not_principals", TG_CFG_STRS, RULE(not_principals)),
    TG_CFG_ROW("namespaces", TG_CFG_STRS, RULE(namespaces)),
    TG_CFG_ROW("not_namespaces", TG_CFG_STRS, RULE(not_namespaces)),
    TG_CFG_ROW("trust_domains", TG_CFG_STRS, RULE(trust_domains)),
    TG_CFG_ROW("not_trust_domains", TG_CFG_STRS, RULE(not_trust_domains)),
    TG_CFG_ROWX("fingerprints", TG_CFG_STRS, RULE(fingerprints), .item = check_fingerprint),
    TG_CFG_ROWX("not_fingerprints", TG_CFG_STRS, RULE(not_fingerprints), .item = check_fingerprint),
    TG_CFG_ROWX("serials", TG_CFG_STRS, RULE(serials), .item = check_serial),
    TG_CFG_ROWX("not_serials", TG_CFG_STRS, RULE(not_serials), .item = check_serial),
    TG_CFG_ROW("ports", TG_CFG_PORTS, RULE(ports)),
    TG_CFG_ROW("not_ports", TG_CFG_PORTS, RULE(not_ports)),
    TG_CFG_ROW("methods", TG_CFG_STRS, RULE(methods)),
    TG_CFG_ROW("paths", TG_CFG_STRS, RULE(paths)),
    TG_CFG_ROW("hosts", TG_CFG_STRS, RULE(hosts)),
    RENAMED_ROW("namespace", "scope.namespace"),
    RENAMED_ROW("labels", "scope.labels"),
    {.key = NULL},
};

static const struct tg_cfg_field authz_fields[] = {
    ENUM_ROW("default", struct tg_config, authz_default_deny, action_choices, NULL),
    TG_CFG_ROW("close_denied", TG_CFG_BOOL, CFG(close_denied)),
    TG_CFG_ROWX("rules", TG_CFG_LIST, CFG(rules), .count = CFG(n_rules),
                .size = sizeof(struct tg_rule_cfg), .sub = rule_fields, .what = "rules"),
    RENAMED_ROW("default_deny", "default"),
    RENAMED_ROW("close_denied_connections", "close_denied"),
    {.key = NULL},
};

#define LIMIT_ROWS                                                                                 \
    UINT_ROW("connections_per_second", struct tg_limit_cfg, conns_per_second, 0, 1000000),         \
        UINT_ROW("burst", struct tg_limit_cfg, burst, 0, 1000000),                                 \
        UINT_ROW("max_concurrent", struct tg_limit_cfg, max_concurrent, 0, 1000000),               \
        UINT_ROW("requests_per_second", struct tg_limit_cfg, requests_per_second, 0, 10000000),    \
        UINT_ROW("requests_burst", struct tg_limit_cfg, requests_burst, 0, 10000000),              \
        TG_CFG_ROWX("bytes_per_second", TG_CFG_SIZE, LIM(bytes_per_second), .min = 1,              \
                    .max = 1ULL << 40)

static const struct tg_cfg_field limit_fields[] = {
    LIMIT_ROWS,
    {.key = NULL},
};

static const struct tg_cfg_field override_fields[] = {
    TG_CFG_ROWX("principal", TG_CFG_STR, LIM(principal), .item = check_match, .required = true),
    LIMIT_ROWS,
    RENAMED_ROW("match", "principal"),
    RENAMED_ROW("key_by", "rate_limits.key"),
    {.key = NULL},
};

static const struct tg_cfg_field ratelimit_fields[] = {
    ENUM_ROW("key", struct tg_config, limit_by_fingerprint, keyby_choices, NULL),
    TG_CFG_ROWX("default", TG_CFG_MAP, CFG(limit_default), .sub = limit_fields),
    TG_CFG_ROWX("overrides", TG_CFG_LIST, CFG(limits), .count = CFG(n_limits),
                .size = sizeof(struct tg_limit_cfg), .sub = override_fields, .what = "limits"),
    RENAMED_ROW("key_by", "key"),
    RENAMED_ROW("limits", "overrides"),
    {.key = NULL},
};

static const struct tg_cfg_field revocation_fields[] = {
    TG_CFG_ROWX("serials", TG_CFG_STRS, CFG(revoked_serials), .item = check_serial),
    TG_CFG_ROWX("fingerprints", TG_CFG_STRS, CFG(revoked_fingerprints), .item = check_fingerprint),
    TG_CFG_ROW("crls", TG_CFG_PATHS, CFG(revocation_crls)),
    {.key = NULL},
};

/* tunnel (outbound listeners, mesh destinations: how we connect out) and tunnels (inbound
 * listeners: whether we accept them) are one letter apart: where one is written in the
 * other's place, the error names the right one. */
static int tunnel_key_misplaced(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                                void *dst, void *obj)
{
    size_t n = strlen(path);
    bool inbound_key = n >= 7 && strcmp(path + n - 7, "tunnels") == 0;

    (void)dst;
    (void)obj;
    return tg_cfg_fail(cfg, v->line, path, "%s",
                       inbound_key ? "an inbound listener's key (it accepts tunnels); here write "
                                     "tunnel: off, auto or on"
                                   : "not an inbound key (an inbound listener accepts tunnels "
                                     "with tunnels: true; tunnel: off, auto or on is for "
                                     "outbound listeners and mesh destinations)");
}

static const struct tg_cfg_field dest_fields[] = {
    TG_CFG_ROWX("address", TG_CFG_CIDR, 0, .required = true),
    TG_CFG_ROW("port", TG_CFG_PORT, DEST(port)),
    TG_CFG_ROWX("expect", TG_CFG_IDS, DEST(expect), .required = true, .min = 1),
    ENUM_ROW("protocol", struct tg_mesh_dest, http, protocol_choices, "a protocol"),
    ENUM_ROW("tunnel", struct tg_mesh_dest, tunnel, tunnel_choices, "a tunnel mode"),
    RENAMED_ROW("expected_ids", "expect"),
    TG_CFG_ROWX("tunnels", TG_CFG_FUNC, 0, .fn = tunnel_key_misplaced),
    {.key = NULL},
};

/* tunnel: on promises a tunnel or nothing, and the destination's sidecar refuses a stream to
 * a protocol: http port (its requests must each be decided; tunnel.c): such a destination
 * could never be reached. auto is fine there: it connects directly. */
static int check_dest(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path, void *dst,
                      void *obj)
{
    const struct tg_mesh_dest *d = dst;
    const struct tg_cfg_node *k = NULL;
    char key[TG_CFG_KEYPATH];

    (void)obj;
    if (d->tunnel == TG_TUNNEL_ON && d->http && tg_cfg_get(v, "tunnel", &k) != NULL)
        return tg_cfg_fail(cfg, k->line, tg_cfg_join(key, path, "tunnel"),
                           "on is not for a protocol: http destination yet (HTTP ports are not "
                           "carried over tunnels: want auto or off)");
    return 0;
}

static const struct tg_cfg_field mesh_fields[] = {
    ENUM_ROW("outside", struct tg_config, mesh_refuse_outside, outside_choices, NULL),
    TG_CFG_ROWX("destinations", TG_CFG_LIST, CFG(dests), .count = CFG(n_dests),
                .size = sizeof(struct tg_mesh_dest), .sub = dest_fields, .fn = check_dest,
                .what = "destinations"),
    RENAMED_ROW("outside_mesh", "outside"),
    {.key = NULL},
};

/* The tls and timeouts keys tollgate-cp also pushes (its settings section, below). */
#define TLS_ROWS                                                                                   \
    ENUM_ROW("min_version", struct tg_config, allow_tls12, tlsver_choices, "a TLS version"),       \
        TG_CFG_ROWX("cipher_suites", TG_CFG_STRS, CFG(cipher_suites), .item = check_cipher)
#define TIMEOUT_ROWS                                                                               \
    TG_CFG_ROW("handshake", TG_CFG_DURATION, CFG(handshake_timeout_ms)),                           \
        TG_CFG_ROW("idle", TG_CFG_DURATION, CFG(idle_timeout_ms)),                                 \
        TG_CFG_ROW("connect", TG_CFG_DURATION, CFG(connect_timeout_ms))

static const struct tg_cfg_field tls_fields[] = {
    TLS_ROWS,
    TG_CFG_ROW("resumption", TG_CFG_BOOL, CFG(tls_resumption)),
    {.key = NULL},
};

static const struct tg_cfg_field timeout_fields[] = {
    TIMEOUT_ROWS,
    TG_CFG_ROW("drain", TG_CFG_DURATION, CFG(drain_timeout_ms)),
    {.key = NULL},
};

/* tollgate-cp's settings section (ProxySettings): the sidecar's own tls and timeouts keys and
 * the mode of its inbound listeners, pushed to every sidecar. A key the stream does not carry
 * is refused (not_pushed). A timeout or list left out stays 0 or empty, and is left out of the
 * push; tollgate-cp tells a min_version or mode left out by the document. */
static int not_pushed(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path, void *dst,
                      void *obj)
{
    (void)dst;
    (void)obj;
    return tg_cfg_fail(cfg, v->line, path,
                       "not pushed by tollgate-cp (set it in each sidecar's own file)");
}

#define NOT_PUSHED_ROW(k) TG_CFG_ROWX(k, TG_CFG_FUNC, 0, .fn = not_pushed)

static const struct tg_cfg_field settings_tls_fields[] = {
    TLS_ROWS,
    NOT_PUSHED_ROW("resumption"),
    {.key = NULL},
};

static const struct tg_cfg_field settings_timeout_fields[] = {
    TIMEOUT_ROWS,
    NOT_PUSHED_ROW("drain"),
    {.key = NULL},
};

static const struct tg_cfg_field settings_inbound_fields[] = {
    ENUM_ROW("mode", struct tg_config, settings_mode, mode_choices, "a mode"),
    {.key = NULL},
};

static const struct tg_cfg_field settings_fields[] = {
    TG_CFG_ROWX("tls", TG_CFG_MAP, 0, .sub = settings_tls_fields),
    TG_CFG_ROWX("timeouts", TG_CFG_MAP, 0, .sub = settings_timeout_fields),
    TG_CFG_ROWX("inbound", TG_CFG_MAP, 0, .sub = settings_inbound_fields),
    RENAMED_ROW("min_tls_version", "tls.min_version"),
    RENAMED_ROW("cipher_suites", "tls.cipher_suites"),
    RENAMED_ROW("inbound_mode", "inbound.mode"),
    {.key = NULL},
};

const struct tg_cfg_field *tg_config_section_fields(const char *section)
{
    static const struct {
        const char *name;
        const struct tg_cfg_field *fields;
    } sections[] = {
        {"authorization", authz_fields},    {"rate_limits", ratelimit_fields},
        {"revocations", revocation_fields}, {"mesh", mesh_fields},
        {"settings", settings_fields},
    };

    for (size_t i = 0; i < TG_NELEM(sections); i++)
        if (strcmp(sections[i].name, section) == 0)
            return sections[i].fields;
    return NULL;
}

/* ---- the sidecar's own keys ---- */

/* Same port and family, and the same host or either one the wildcard (both cannot bind). */
static bool addr_clash(const struct tg_addr *x, const struct tg_addr *y)
{
    if (x->len == 0 || y->len == 0 || x->ss.ss_family != y->ss.ss_family)
        return false;
    if (x->ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&x->ss;
        const struct sockaddr_in *b = (const struct sockaddr_in *)&y->ss;

        return a->sin_port == b->sin_port &&
               (a->sin_addr.s_addr == b->sin_addr.s_addr || a->sin_addr.s_addr == INADDR_ANY ||
                b->sin_addr.s_addr == INADDR_ANY);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&x->ss;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&y->ss;

        return a->sin6_port == b->sin6_port &&
               (memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0 ||
                IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&b->sin6_addr));
    }
}

/* A listen or admin address: one that does not clash with any other one already read. */
static int read_listen(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path, void *dst,
                       void *obj)
{
    const struct tg_config *c = config_of(cfg);
    char other[TG_CFG_KEYPATH] = "", why[TG_ERRLEN];
    const struct tg_addr *o = NULL;
    struct tg_addr a;
    const char *s;
    int rc;

    (void)obj;
    if ((rc = tg_cfg_scalar(cfg, v, path, &s)) < 0)
        return rc;
    if (tg_addr_parse(s, false, &a, why) < 0)
        return tg_cfg_fail(cfg, v->line, path, "%s", why);
    const struct {
        const char *key;
        const struct tg_addr *addr;
    } tops[] = {{"admin", &c->admin}, {"health", &c->health}, {"metrics", &c->metrics}};

    for (size_t i = 0; o == NULL && i < TG_NELEM(tops); i++) {
        if (addr_clash(&a, tops[i].addr)) {
            o = tops[i].addr;
            snprintf(other, sizeof(other), "%s", tops[i].key);
        }
    }
    for (size_t i = 0; o == NULL && i < c->n_inbound; i++) {
        if (addr_clash(&a, &c->inbound[i].listen)) {
            o = &c->inbound[i].listen;
            snprintf(other, sizeof(other), "inbound[%zu].listen", i);
        }
    }
    for (size_t i = 0; o == NULL && i < c->n_outbound; i++) {
        if (addr_clash(&a, &c->outbound[i].listen)) {
            o = &c->outbound[i].listen;
            snprintf(other, sizeof(other), "outbound[%zu].listen", i);
        }
    }
    if (o != NULL && strcmp(a.text, o->text) == 0)
        return tg_cfg_fail(cfg, v->line, path, "%s is already used by %s", a.text, other);
    if (o != NULL)
        return tg_cfg_fail(cfg, v->line, path, "%s is already used by %s (%s)", a.text, other,
                           o->text);
    *(struct tg_addr *)dst = a;
    return 0;
}

/* Listener names are unique across inbound and outbound; self is the one being named. */
static int check_name(struct tg_cfg *cfg, size_t line, const char *path, char *const *self)
{
    const struct tg_config *c = config_of(cfg);
    char other[TG_CFG_KEYPATH] = "";

    for (size_t i = 0; other[0] == '\0' && i < c->n_inbound; i++) {
        const char *n = c->inbound[i].name;

        if (&c->inbound[i].name != self && n != NULL && strcmp(n, *self) == 0)
            snprintf(other, sizeof(other), "inbound[%zu]", i);
    }
    for (size_t i = 0; other[0] == '\0' && i < c->n_outbound; i++) {
        const char *n = c->outbound[i].name;

        if (&c->outbound[i].name != self && n != NULL && strcmp(n, *self) == 0)
            snprintf(other, sizeof(other), "outbound[%zu]", i);
    }
    if (other[0] == '\0')
        return 0;
    return tg_cfg_fail(cfg, line, path, "name \"%s\" is already used by %s", *self, other);
}

static int read_name(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path, void *dst,
                     void *obj)
{
    char **name = dst;
    const char *s;
    int rc;

    (void)obj;
    if ((rc = tg_cfg_scalar(cfg, v, path, &s)) < 0)
        return rc;
    if (s[0] == '\0' || strspn(s, NAME_CHARS) != strlen(s))
        return tg_cfg_fail(cfg, v->line, path, "\"%.64s\" is not a name (want [A-Za-z0-9._-]+)", s);
    if (strlen(s) > MAX_NAME)
        return tg_cfg_fail(cfg, v->line, path, "longer than %d characters", MAX_NAME);
    if ((*name = strdup(s)) == NULL)
        return tg_cfg_nomem(cfg);
    return check_name(cfg, v->line, path, name);
}

/* SNI (RFC 6066 3): a DNS host name, never an IP literal. */
static int check_sni(const char *s, char *norm, char *why)
{
    unsigned char addr[sizeof(struct in6_addr)];
    size_t n = strlen(s);

    (void)norm;
    if (n > 253 || s[0] == '.' || s[0] == '-' || strspn(s, NAME_CHARS) != n)
        return tg_err_set(why, TG_EINVAL, "\"%.64s\" is not a host name", s);
    if (inet_pton(AF_INET, s, addr) == 1)
        return tg_err_set(why, TG_EINVAL, "\"%.64s\" is an IP address; SNI must be a host name", s);
    return 0;
}

/* An inbound upstream: an address, or "original" / "loopback" (len 0, text only). */
static int read_inup(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path, void *dst,
                     void *obj)
{
    struct tg_addr *a = dst;
    char why[TG_ERRLEN];
    const char *s;
    int rc;

    (void)obj;
    if ((rc = tg_cfg_scalar(cfg, v, path, &s)) < 0)
        return rc;
    if (strcmp(s, "original") == 0 || strcmp(s, "loopback") == 0) {
        memset(a, 0, sizeof(*a));
        snprintf(a->text, sizeof(a->text), "%s", s);
        return 0;
    }
    if (tg_addr_parse(s, false, a, why) < 0)
        return tg_cfg_fail(cfg, v->line, path,
                           "%s; or, with transparent: true, original or loopback", why);
    return 0;
}

static int read_fraction(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                         void *dst, void *obj)
{
    const char *s;
    char *end;
    double d;
    int rc;

    (void)obj;
    if ((rc = tg_cfg_scalar(cfg, v, path, &s)) < 0)
        return rc;
    d = strtod(s, &end);
    if (!v->plain || s[0] == '\0' || *end != '\0' || !(d > 0.0 && d < 1.0))
        return tg_cfg_fail(cfg, v->line, path,
                           "\"%.64s\" is not a fraction (want a number between 0 and 1, e.g. 0.5)",
                           s);
    *(double *)dst = d;
    return 0;
}

/* control_plane.address: one HOST:PORT, or a list of them (the replicas, tried in turn:
 * cp_client.h). Each is checked as the one address always was; a list that is empty, longer
 * than TG_CP_ADDRESSES_MAX or names one address twice is refused. */
static int read_cp_address(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                           void *dst, void *obj)
{
    static const struct tg_cfg_field one = TG_CFG_ROW("address", TG_CFG_HOSTPORT, 0);
    struct tg_config *c = config_of(cfg);
    const struct tg_cfg_node *const *kids = (const struct tg_cfg_node *const *)v->kids;
    size_t n = v->n;
    char item[TG_CFG_KEYPATH];

    (void)dst;
    (void)obj;
    if (v->type == TG_CFG_T_SCALAR) {
        kids = &v;
        n = 1;
    } else if (v->type != TG_CFG_T_LIST) {
        return tg_cfg_wrong_type(cfg, v, path, "HOST:PORT or a list of them");
    } else if (n == 0 || n > TG_CP_ADDRESSES_MAX) {
        return tg_cfg_fail(cfg, v->line, path, "a list of %zu addresses (want 1 to %d)", n,
                           TG_CP_ADDRESSES_MAX);
    }
    tg_strlist_free(&c->cp.addresses);
    if ((c->cp.addresses.v = calloc(n, sizeof(char *))) == NULL)
        return tg_cfg_nomem(cfg);
    for (size_t i = 0; i < n; i++) {
        struct tg_addr a;
        int rc;

        if (v->type == TG_CFG_T_LIST)
            snprintf(item, sizeof(item), "%s[%zu]", path, i);
        else
            snprintf(item, sizeof(item), "%s", path);
        if ((rc = tg_cfg_read(cfg, kids[i], item, &one, &a)) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->cp.addresses.v[j], a.text) == 0)
                return tg_cfg_fail(cfg, kids[i]->line, item, "%s is listed twice", a.text);
        if ((c->cp.addresses.v[i] = strdup(a.text)) == NULL)
            return tg_cfg_nomem(cfg);
        c->cp.addresses.n++;
        if (i == 0)
            c->cp.address = a;
    }
    return 0;
}

/* identity.trust_domains: a mapping of each federated trust domain to its own bundle file,
 * {partner.example: partner-roots.pem}: only those roots may vouch for an ID of it. The list
 * of names it used to be said which domains to accept, not which roots vouch for each (every
 * root sat in identity.trust_bundle, so a partner's could vouch for ours): refused, naming
 * the new spelling; an empty list still means none. */
static int read_federation(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                           void *dst, void *obj)
{
    static const struct tg_cfg_field pairs = {.kind = TG_CFG_LABELS};
    struct tg_config *c = obj;
    struct tg_strlist *names = &c->trust_domains, *files = &c->trust_domain_bundles;
    struct tg_labels l = {0};
    char item[TG_CFG_KEYPATH], why[TG_ERRLEN];
    int rc;

    (void)dst;
    if (v->type == TG_CFG_T_LIST && v->n == 0)
        return 0;
    if (v->type == TG_CFG_T_LIST)
        return tg_cfg_fail(cfg, v->line, path,
                           "a list of names no longer says which roots vouch for each: write "
                           "{DOMAIN: ITS-BUNDLE.pem, ...} and keep only our own roots in "
                           "identity.trust_bundle");
    if (v->type != TG_CFG_T_MAPPING)
        return tg_cfg_wrong_type(cfg, v, path, "a mapping of trust domains to bundle files");
    if ((rc = tg_cfg_read(cfg, v, path, &pairs, &l)) < 0)
        goto done;
    rc = tg_cfg_nomem(cfg);
    if ((names->v = calloc(l.n + 1, sizeof(char *))) == NULL ||
        (files->v = calloc(l.n + 1, sizeof(char *))) == NULL)
        goto done;
    for (size_t i = 0; i < l.n; i++) { /* l holds v's pairs in order */
        snprintf(item, sizeof(item), "%s.%.60s", path, l.keys[i]);
        if (tg_trust_domain_check(l.keys[i], why) < 0) {
            rc = tg_cfg_fail(cfg, v->kids[2 * i]->line, item, "%s", why);
            goto done;
        }
        names->v[names->n++] = l.keys[i];
        l.keys[i] = NULL;
        if ((rc = tg_cfg_path(cfg, v->kids[2 * i + 1], item, l.values[i], &files->v[i])) < 0)
            goto done;
        files->n++;
    }
    rc = 0;
done:
    tg_labels_free(&l);
    return rc;
}

static int read_http(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path, void *dst,
                     void *obj);

static const struct tg_cfg_field identity_fields[] = {
    TG_CFG_ROW("cert", TG_CFG_PATH, CFG(cert_path)),
    TG_CFG_ROW("key", TG_CFG_PATH, CFG(key_path)),
    TG_CFG_ROW("trust_bundle", TG_CFG_PATH, CFG(bundle_path)),
    TG_CFG_ROW("crl", TG_CFG_PATHS, CFG(crl_paths)),
    TG_CFG_ROW("intermediates", TG_CFG_PATH, CFG(intermediates_path)),
    TG_CFG_ROWX("trust_domains", TG_CFG_FUNC, 0, .fn = read_federation),
    UINT_ROW("max_chain_depth", struct tg_config, max_chain_depth, 1, 16),
    TG_CFG_ROW("workload_api", TG_CFG_STR, CFG(wl.endpoint)),
    TG_CFG_ROW("spiffe_id", TG_CFG_STR, CFG(wl.spiffe_id)),
    {.key = NULL},
};

/* control_plane.pod_info names the pod (docs/kubernetes.md, "Pod metadata"): the claims it
 * replaces are not written beside it. */
static int check_cp(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path, void *dst,
                    void *obj)
{
    const struct tg_config *c = obj;

    (void)dst;
    if (c->cp.pod_info != NULL && (c->cp.labels.n > 0 || c->cp.namespace_ != NULL))
        return tg_cfg_fail(cfg, v->line, path,
                           "pod_info excludes namespace and labels (they are read from it)");
    return 0;
}

static const struct tg_cfg_field cp_fields[] = {
    TG_CFG_ROWX("address", TG_CFG_FUNC, 0, .required = true, .fn = read_cp_address),
    TG_CFG_ROWX("ca", TG_CFG_PATH, CFG(cp.ca_path), .required = true),
    TG_CFG_ROWX("token", TG_CFG_PATH, CFG(cp.token_path), .required = true),
    TG_CFG_ROWX("server_ids", TG_CFG_IDS, CFG(cp.server_ids), .required = true, .min = 1),
    TG_CFG_ROW("node_id", TG_CFG_STR, CFG(cp.node_id)),
    TG_CFG_ROW("namespace", TG_CFG_STR, CFG(cp.namespace_)),
    TG_CFG_ROW("service_account", TG_CFG_STR, CFG(cp.service_account)),
    TG_CFG_ROW("labels", TG_CFG_LABELS, CFG(cp.labels)),
    TG_CFG_ROW("pod_info", TG_CFG_PATH, CFG(cp.pod_info)),
    TG_CFG_ROWX("renew_fraction", TG_CFG_FUNC, CFG(cp.renew_fraction), .fn = read_fraction),
    {.key = NULL},
};

static const struct tg_cfg_field workload_fields[] = {
    TG_CFG_ROW("namespace", TG_CFG_STR, CFG(workload_ns)),
    TG_CFG_ROW("labels", TG_CFG_LABELS, CFG(workload_labels)),
    {.key = NULL},
};

static const struct tg_cfg_field listener_limit_fields[] = {
    UINT_ROW("connections_per_second", struct tg_listener_limit_cfg, conns_per_second, 0, 1000000),
    UINT_ROW("burst", struct tg_listener_limit_cfg, burst, 0, 1000000),
    UINT_ROW("max_connections", struct tg_listener_limit_cfg, max_connections, 0, 10000000),
    TG_CFG_ROWX("bytes_per_second", TG_CFG_SIZE, LLIM(bytes_per_second), .min = 1,
                .max = 1ULL << 40),
    {.key = NULL},
};

static const struct tg_cfg_field http_fields[] = {
    TG_CFG_ROW("xfcc", TG_CFG_BOOL, HTTPC(xfcc)),
    TG_CFG_ROW("client_cert_header", TG_CFG_BOOL, HTTPC(client_cert)),
    TG_CFG_ROWX("max_head", TG_CFG_SIZE, HTTPC(max_head), .min = 1024, .max = 16 << 20),
    TG_CFG_ROWX("max_line", TG_CFG_SIZE, HTTPC(max_line), .min = 256, .max = 16 << 20),
    UINT_ROW("max_headers", struct tg_http_cfg, max_fields, 1, 10000),
    {.key = NULL},
};

static int read_http(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path, void *dst,
                     void *obj)
{
    ((struct tg_inbound_cfg *)obj)->http_given = true;
    return tg_cfg_walk(cfg, v, path, http_fields, dst);
}

static const struct tg_cfg_field inbound_fields[] = {
    TG_CFG_ROWX("name", TG_CFG_FUNC, IN(name), .fn = read_name),
    TG_CFG_ROWX("listen", TG_CFG_FUNC, IN(listen), .fn = read_listen, .required = true),
    TG_CFG_ROWX("upstream", TG_CFG_FUNC, IN(upstream), .fn = read_inup),
    TG_CFG_ROW("transparent", TG_CFG_BOOL, IN(transparent)),
    ENUM_ROW("mode", struct tg_inbound_cfg, mode, mode_choices, "a mode"),
    TG_CFG_ROW("proxy_protocol", TG_CFG_BOOL, IN(proxy_protocol)),
    TG_CFG_ROW("allow", TG_CFG_IDS, IN(allow)),
    TG_CFG_ROW("allow_unauthenticated", TG_CFG_BOOL, IN(allow_unauth)),
    TG_CFG_ROW("tunnels", TG_CFG_BOOL, IN(tunnels)),
    TG_CFG_ROWX("tunnel", TG_CFG_FUNC, 0, .fn = tunnel_key_misplaced),
    ENUM_ROW("protocol", struct tg_inbound_cfg, http, protocol_choices, "a protocol"),
    TG_CFG_ROWX("http", TG_CFG_FUNC, IN(http_cfg), .fn = read_http),
    TG_CFG_ROWX("limits", TG_CFG_MAP, IN(limits), .sub = listener_limit_fields),
    {.key = NULL},
};

static const struct tg_cfg_field outbound_fields[] = {
    TG_CFG_ROWX("name", TG_CFG_FUNC, OUT(name), .fn = read_name),
    TG_CFG_ROWX("listen", TG_CFG_FUNC, OUT(listen), .fn = read_listen, .required = true),
    TG_CFG_ROWX("upstream", TG_CFG_ADDR, OUT(upstream), .min = 1),
    TG_CFG_ROW("transparent", TG_CFG_BOOL, OUT(transparent)),
    TG_CFG_ROWX("expect", TG_CFG_IDS, OUT(expect), .min = 1),
    TG_CFG_ROWX("sni", TG_CFG_STR, OUT(sni), .item = check_sni),
    ENUM_ROW("protocol", struct tg_outbound_cfg, http, protocol_choices, "a protocol"),
    ENUM_ROW("tunnel", struct tg_outbound_cfg, tunnel, tunnel_choices, "a tunnel mode"),
    TG_CFG_ROWX("tunnels", TG_CFG_FUNC, 0, .fn = tunnel_key_misplaced),
    TG_CFG_ROWX("limits", TG_CFG_MAP, OUT(limits), .sub = listener_limit_fields),
    {.key = NULL},
};

/* tunnel_pool: the outbound tunnels each worker keeps (config.h). */
static const struct tg_cfg_field tunnel_pool_fields[] = {
    UINT_ROW("streams_per_connection", struct tg_tunnel_pool_cfg, streams_per_connection, 1, 1000),
    UINT_ROW("connections_per_destination", struct tg_tunnel_pool_cfg, connections_per_destination,
             1, 64),
    TG_CFG_ROWX("idle_timeout", TG_CFG_DURATION,
                offsetof(struct tg_tunnel_pool_cfg, idle_timeout_ms), .min = 1000,
                .max = 3600 * 1000),
    {.key = NULL},
};

/* A listener has an upstream address, or is transparent (captured traffic), never both. A
 * transparent inbound listener's upstream says where the original destination's port is
 * reached: "original" (the default: the original destination itself) or "loopback". */
static int check_upstream(struct tg_cfg *cfg, size_t line, const char *path, bool transparent,
                          const struct tg_addr *upstream)
{
    char key[TG_CFG_KEYPATH];
    bool word = upstream->len == 0 && upstream->text[0] != '\0';

    tg_cfg_join(key, path, "upstream");
    if (transparent && upstream->len > 0)
        return tg_cfg_fail(cfg, line, key,
                           "not with transparent: true as an address (the original destination "
                           "is used: want original, the default, or loopback)");
    if (!transparent && word)
        return tg_cfg_fail(cfg, line, key,
                           "%s only with transparent: true (a fixed upstream is an address, "
                           "IP:PORT)",
                           upstream->text);
    if (!transparent && upstream->len == 0)
        return tg_cfg_fail(cfg, line, key, "missing (required unless transparent: true)");
    return 0;
}

/* A listener without name: is named "in-LISTEN" or "out-LISTEN". */
static int default_name(struct tg_cfg *cfg, size_t line, const char *path, const char *prefix,
                        char **name, const struct tg_addr *listen)
{
    size_t len = strlen(prefix) + 1 + strlen(listen->text);

    if (*name != NULL)
        return 0;
    if ((*name = malloc(len + 1)) == NULL)
        return tg_cfg_nomem(cfg);
    snprintf(*name, len + 1, "%s-%s", prefix, listen->text);
    return check_name(cfg, line, path, name);
}

static void inbound_init(void *el)
{
    ((struct tg_inbound_cfg *)el)->http_cfg = (struct tg_http_cfg){
        .xfcc = true,
        .max_head = 64 << 10,
        .max_line = 16 << 10,
        .max_fields = 100,
    };
}

static void outbound_init(void *el)
{
    ((struct tg_outbound_cfg *)el)->tunnel = TG_TUNNEL_OFF;
}

static int check_inbound(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                         void *dst, void *obj)
{
    struct tg_inbound_cfg *l = dst;
    char key[TG_CFG_KEYPATH];
    int rc;

    (void)obj;
    if ((rc = check_upstream(cfg, v->line, path, l->transparent, &l->upstream)) < 0)
        return rc;
    if (l->transparent) { /* "original" is the default: the same as no upstream */
        l->upstream_loopback = strcmp(l->upstream.text, "loopback") == 0;
        if (!l->upstream_loopback)
            l->upstream.text[0] = '\0';
    }
    if (l->allow_unauth && l->allow.n == 0)
        return tg_cfg_fail(cfg, v->line, tg_cfg_join(key, path, "allow_unauthenticated"),
                           "only with an allow list (without one the listener refuses no "
                           "plain-text caller; the authorization rules decide)");
    if (l->tunnels && (l->http || l->proxy_protocol))
        return tg_cfg_fail(cfg, v->line, tg_cfg_join(key, path, "tunnels"),
                           "not with %s yet (a tunnel's streams are byte pipes)",
                           l->http ? "protocol: http" : "proxy_protocol: true");
    if (l->http_given && !l->http && !l->transparent)
        return tg_cfg_fail(cfg, v->line, tg_cfg_join(key, path, "http"),
                           "only with protocol: http or transparent: true");
    return default_name(cfg, v->line, path, "in", &l->name, &l->listen);
}

static int check_outbound(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                          void *dst, void *obj)
{
    struct tg_outbound_cfg *l = dst;
    char key[TG_CFG_KEYPATH];
    int rc;

    (void)obj;
    if ((rc = check_upstream(cfg, v->line, path, l->transparent, &l->upstream)) < 0)
        return rc;
    if (!l->transparent && l->expect.n == 0)
        return tg_cfg_fail(cfg, v->line, tg_cfg_join(key, path, "expect"),
                           "missing (required unless transparent: true)");
    if (l->transparent && l->expect.n > 0)
        return tg_cfg_fail(cfg, v->line, tg_cfg_join(key, path, "expect"),
                           "not with transparent: true (mesh.destinations says who serves each "
                           "address)");
    return default_name(cfg, v->line, path, "out", &l->name, &l->listen);
}

static const struct tg_cfg_field top_fields[] = {
    TG_CFG_ROWX("admin", TG_CFG_FUNC, CFG(admin), .fn = read_listen),
    TG_CFG_ROWX("health", TG_CFG_FUNC, CFG(health), .fn = read_listen),
    TG_CFG_ROWX("metrics", TG_CFG_FUNC, CFG(metrics), .fn = read_listen),
    UINT_ROW("workers", struct tg_config, workers, 0, 256),
    ENUM_ROW("log_level", struct tg_config, log_level, tg_cfg_log_levels, "a log level"),
    ENUM_ROW("log_format", struct tg_config, log_format, tg_cfg_log_formats, "a log format"),
    TG_CFG_ROW("access_log", TG_CFG_BOOL, CFG(access_log)),
    ENUM_ROW("access_log_format", struct tg_config, access_log_text, alogfmt_choices,
             "an access log format"),
    TG_CFG_ROWX("buffer_size", TG_CFG_SIZE, CFG(buffer_size), .min = 4 << 10, .max = 16 << 20),
    TG_CFG_ROWX("tunnel_pool", TG_CFG_MAP, CFG(tunnel_pool), .sub = tunnel_pool_fields),
    TG_CFG_ROWX("identity", TG_CFG_MAP, 0, .sub = identity_fields),
    TG_CFG_ROWX("control_plane", TG_CFG_MAP, 0, .sub = cp_fields, .fn = check_cp),
    TG_CFG_ROWX("tls", TG_CFG_MAP, 0, .sub = tls_fields),
    TG_CFG_ROWX("timeouts", TG_CFG_MAP, 0, .sub = timeout_fields),
    TG_CFG_ROWX("inbound", TG_CFG_LIST, CFG(inbound), .count = CFG(n_inbound),
                .size = sizeof(struct tg_inbound_cfg), .sub = inbound_fields, .init = inbound_init,
                .fn = check_inbound, .what = "listeners"),
    TG_CFG_ROWX("outbound", TG_CFG_LIST, CFG(outbound), .count = CFG(n_outbound),
                .size = sizeof(struct tg_outbound_cfg), .sub = outbound_fields,
                .init = outbound_init, .fn = check_outbound, .what = "listeners"),
    TG_CFG_ROWX("mesh", TG_CFG_MAP, 0, .sub = mesh_fields),
    TG_CFG_ROWX("workload", TG_CFG_MAP, 0, .sub = workload_fields),
    TG_CFG_ROWX("authorization", TG_CFG_MAP, 0, .sub = authz_fields),
    TG_CFG_ROWX("revocations", TG_CFG_MAP, 0, .sub = revocation_fields),
    TG_CFG_ROWX("rate_limits", TG_CFG_MAP, 0, .sub = ratelimit_fields),
    RENAMED_ROW("revocation", "revocations"),
    RENAMED_ROW("mesh_table", "mesh"),
    {.key = NULL},
};

/* identity.workload_api and identity.spiffe_id: the endpoint resolved to its socket (with
 * "default", from SPIFFE_ENDPOINT_SOCKET, as the SPIFFE Workload Endpoint spec says), the ID
 * checked; nothing else of identity but max_chain_depth goes with it. A control_plane beside
 * it authenticates with its token and pushes everything but the identity. line: identity's. */
static int check_workload_api(struct tg_cfg *cfg, size_t line)
{
    struct tg_config *c = config_of(cfg);
    static const char *const names[] = {"identity.cert",          "identity.key",
                                        "identity.trust_bundle",  "identity.crl",
                                        "identity.trust_domains", "identity.intermediates"};
    const bool set[] = {c->cert_path != NULL,   c->key_path != NULL,
                        c->bundle_path != NULL, c->crl_paths.n > 0,
                        c->trust_domains.n > 0, c->intermediates_path != NULL};
    const char *uri = c->wl.endpoint, *from = "identity.workload_api";
    char path[TG_SPIFFE_SOCKET_MAX + 1], why[TG_ERRLEN];
    struct tg_spiffe_id id;

    if (c->wl.spiffe_id != NULL && tg_spiffe_parse(c->wl.spiffe_id, &id, why) < 0)
        return tg_cfg_fail(cfg, line, "identity.spiffe_id", "%s", why);
    if (c->wl.spiffe_id != NULL && c->wl.endpoint == NULL)
        return tg_cfg_fail(cfg, line, "identity.spiffe_id",
                           "only with identity.workload_api (it picks one of its SVIDs)");
    if (c->wl.endpoint == NULL)
        return 0;
    c->wl.enabled = true; /* with control_plane too: it pushes policy, limits, mesh table */
    for (size_t i = 0; i < TG_NELEM(names); i++)
        if (set[i])
            return tg_cfg_fail(cfg, line, names[i],
                               "not used with identity.workload_api (the SVID, its bundle and "
                               "the federated bundles come from the Workload API; remove it)");
    if (strcmp(uri, "default") == 0) {
        uri = getenv("SPIFFE_ENDPOINT_SOCKET");
        from = "SPIFFE_ENDPOINT_SOCKET";
        if (uri == NULL || uri[0] == '\0')
            return tg_cfg_fail(cfg, line, "identity.workload_api",
                               "default: SPIFFE_ENDPOINT_SOCKET is not set (set it to "
                               "unix:///PATH, or write the socket's address here)");
    }
    if (tg_spiffe_endpoint_socket(uri, from[0] == 'i', path, sizeof(path), why) < 0)
        return tg_cfg_fail(cfg, line, from, "%s", why);
    if ((c->wl.socket = strdup(path)) == NULL)
        return tg_err_set(cfg->err, TG_ENOMEM, "%s: out of memory", cfg->file);
    return 0;
}

/* Static files, the control plane or the Workload API: one of them. */
static int check_identity_source(struct tg_cfg *cfg, const struct tg_cfg_node *root)
{
    struct tg_config *c = config_of(cfg);
    static const char *const names[] = {"identity.cert", "identity.key", "identity.trust_bundle",
                                        "identity.crl", "identity.intermediates"};
    const bool set[] = {c->cert_path != NULL, c->key_path != NULL, c->bundle_path != NULL,
                        c->crl_paths.n > 0, c->intermediates_path != NULL};
    const struct tg_cfg_node *key = NULL;
    const struct tg_cfg_node *id = tg_cfg_get(root, "identity", &key);
    size_t line = key != NULL ? key->line : 0;
    int rc;

    c->cp.enabled = tg_cfg_get(root, "control_plane", NULL) != NULL;
    if ((rc = check_workload_api(cfg, line)) < 0 || c->wl.enabled)
        return rc;
    if (!c->cp.enabled) {
        if (id == NULL)
            return tg_cfg_fail(cfg, 0, "identity", "missing (required)");
        for (size_t i = 0; i < 3; i++)
            if (!set[i])
                return tg_cfg_fail(cfg, line, names[i], "missing (required)");
        return 0;
    }
    for (size_t i = 0; i < TG_NELEM(names); i++)
        if (set[i])
            return tg_cfg_fail(cfg, line, names[i],
                               "not used with control_plane (the identity comes from the control "
                               "plane; remove it)");
    if (c->trust_domains.n > 0)
        return tg_cfg_fail(cfg, line, "identity.trust_domains",
                           "not used with control_plane (its trust bundle names each federated "
                           "domain with its roots: extra_roots in tollgate-cp)");
    return 0;
}

static bool has_port(const int *v, size_t n, int port)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == port)
            return true;
    return false;
}

/* Whether every address of family fam at port finds an http destination (see
 * tg_config_http_rule_check). */
static bool mesh_port_http(const struct tg_mesh_dest *dests, size_t n, int fam, int port)
{
    bool all_port = false, all_any = false, http_any = true, http = true;

    for (size_t i = 0; i < n; i++) {
        const struct tg_mesh_dest *d = &dests[i];

        if (d->net.ss_family != fam || (d->port != 0 && d->port != port))
            continue;
        if (d->prefix == 0 && d->port == 0) { /* shadowed by a /0 one for the port */
            all_any = true;
            http_any = http_any && d->http;
            continue;
        }
        all_port = all_port || d->prefix == 0;
        http = http && d->http;
    }
    return http && (all_port || (all_any && http_any));
}

int tg_config_http_rule_check(const struct tg_config *c, const struct tg_mesh_dest *dests,
                              size_t n_dests, const char *rule, const int *ports, size_t n_ports,
                              const int *not_ports, size_t n_not_ports, char *why)
{
    for (size_t j = 0; j < c->n_inbound; j++) {
        const struct tg_inbound_cfg *l = &c->inbound[j];
        int fam = l->listen.ss.ss_family;
        int port = ntohs(fam == AF_INET6 ? ((const struct sockaddr_in6 *)&l->listen.ss)->sin6_port
                                         : ((const struct sockaddr_in *)&l->listen.ss)->sin_port);

        if (l->http)
            continue;
        if (l->transparent && n_ports == 0)
            return tg_err_set(why, TG_EINVAL,
                              "rule \"%s\" has HTTP conditions but could apply to any port of "
                              "transparent inbound listener %s, which is not protocol: http (list "
                              "the rule's ports:, protocol: http in the mesh table)",
                              rule, l->name);
        for (size_t i = 0; l->transparent && i < n_ports; i++) {
            if (has_port(not_ports, n_not_ports, ports[i]) ||
                (mesh_port_http(dests, n_dests, AF_INET, ports[i]) &&
                 (fam != AF_INET6 || mesh_port_http(dests, n_dests, AF_INET6, ports[i]))))
                continue;
            return tg_err_set(why, TG_EINVAL,
                              "rule \"%s\" has HTTP conditions but could apply to port %d of "
                              "transparent inbound listener %s: the mesh table does not make it "
                              "protocol: http at every address (want 0.0.0.0/0%s for it, all its "
                              "destinations http)",
                              rule, ports[i], l->name, fam == AF_INET6 ? " and ::/0" : "");
        }
        if (l->transparent)
            continue;
        if ((n_ports == 0 || has_port(ports, n_ports, port)) &&
            !has_port(not_ports, n_not_ports, port))
            return tg_err_set(why, TG_EINVAL,
                              "rule \"%s\" has HTTP conditions (methods, paths, hosts) but could "
                              "apply to port %d of inbound listener %s, which is not protocol: "
                              "http (limit the rule with ports:)",
                              rule, port, l->name);
    }
    return 0;
}

/* A rule with HTTP conditions (methods, paths, hosts) must not apply to a port that is not
 * protocol: http: there, no request is parsed, and the rule would match on the other
 * fields alone. */
static int check_http_rules(struct tg_cfg *cfg)
{
    const struct tg_config *c = config_of(cfg);
    char key[TG_CFG_KEYPATH], why[TG_ERRLEN];

    for (size_t i = 0; i < c->n_rules; i++) {
        const struct tg_rule_cfg *r = &c->rules[i];

        if (r->methods.n + r->paths.n + r->hosts.n == 0)
            continue;
        snprintf(key, sizeof(key), "authorization.rules[%zu]", i);
        if (tg_config_http_rule_check(c, c->dests, c->n_dests, r->name, r->ports.v, r->ports.n,
                                      r->not_ports.v, r->not_ports.n, why) < 0)
            return tg_cfg_fail(cfg, 0, key, "%s", why);
    }
    return 0;
}

static int parse_text(const char *text, size_t len, const char *name, const char *base,
                      struct tg_config **out, char *err)
{
    struct tg_config *c = calloc(1, sizeof(*c));
    struct parse ps = {.c = c};
    struct tg_cfg cfg = {.file = name, .base = base, .err = err, .user = &ps};
    struct tg_cfg_doc doc = {0};
    int rc = TG_ENOMEM;

    if (c == NULL)
        return tg_err_set(err, rc, "%s: out of memory", name);
    atomic_init(&c->refs, 1);
    c->access_log = true;
    c->log_level = TG_LOG_INFO;
    c->buffer_size = 64 << 10;
    c->tunnel_pool = (struct tg_tunnel_pool_cfg){
        .streams_per_connection = 100, .connections_per_destination = 2, .idle_timeout_ms = 60000};
    c->max_chain_depth = 4;
    c->handshake_timeout_ms = 10 * 1000;
    c->idle_timeout_ms = 60 * 60 * 1000;
    c->connect_timeout_ms = 5 * 1000;
    c->drain_timeout_ms = 20 * 1000;
    c->tls_resumption = true;
    c->cp.renew_fraction = 0.5;
    if ((c->path = strdup(name)) == NULL) {
        tg_err_set(err, rc, "%s: out of memory", name);
        goto fail;
    }
    if ((rc = tg_cfg_doc_parse(text, len, name, &doc, err)) < 0)
        goto fail;
    rc = TG_ECONFIG;
    if (doc.root == NULL) {
        tg_cfg_fail(&cfg, 0, NULL, "file is empty (want a mapping of settings)");
        goto fail;
    }
    if (doc.root->type != TG_CFG_T_MAPPING) {
        tg_cfg_wrong_type(&cfg, doc.root, NULL, "a mapping of settings at the top");
        goto fail;
    }
    if ((rc = tg_cfg_walk(&cfg, doc.root, "", top_fields, c)) < 0)
        goto fail;
    rc = TG_ECONFIG;
    if (c->n_inbound + c->n_outbound == 0) {
        tg_cfg_fail(&cfg, 0, "inbound, outbound", "no listeners (want at least one)");
        goto fail;
    }
    if (c->revocation_crls.n > 0) {
        tg_cfg_fail(&cfg, 0, "revocations.crls",
                    "only in tollgate-cp's mesh files (the sidecar reads CRL files from "
                    "identity.crl)");
        goto fail;
    }
    if ((rc = check_http_rules(&cfg)) < 0 || (rc = check_identity_source(&cfg, doc.root)) < 0)
        goto fail;
    rc = TG_ECONFIG;
    for (size_t i = 0; i < c->n_inbound; i++) {
        /* a stream's window is its buffer, and a peer may send 65,535 bytes on a stream
         * before it has our SETTINGS (RFC 9113 6.9.2) */
        if (c->inbound[i].tunnels && c->buffer_size < 65535) {
            tg_cfg_fail(&cfg, 0, "buffer_size", "at least 64KiB with tunnels: true (inbound %s)",
                        c->inbound[i].name);
            goto fail;
        }
    }
    tg_cfg_doc_free(&doc);
    *out = c;
    return 0;
fail:
    tg_cfg_doc_free(&doc);
    tg_config_unref(c);
    return rc;
}

int tg_config_parse(const char *text, size_t len, const char *name, struct tg_config **out,
                    char *err)
{
    char *base = NULL;
    int rc;

    if (tg_cfg_base(name, false, &base) < 0)
        return tg_err_set(err, TG_ENOMEM, "%s: out of memory", name);
    rc = parse_text(text, len, name, base, out, err);
    free(base);
    return rc;
}

bool tg_config_file_id(const char *path, struct tg_file_id *id)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return false;
    *id = (struct tg_file_id){(uint64_t)st.st_ino, (uint64_t)st.st_size,
                              (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec};
    return true;
}

int tg_config_load(const char *path, struct tg_config **out, char *err)
{
    char *text = NULL, *base = NULL;
    struct tg_file_id id = {0};
    size_t len = 0;
    int rc;

    (void)tg_config_file_id(path, &id); /* before the read: a later change differs */
    if ((rc = tg_file_read(NULL, path, TG_CFG_MAX_FILE, 0, &text, &len, err)) < 0)
        return rc;
    /* relative paths in the file are made absolute now: the result must not depend on the
     * working directory at the time the TLS layer opens (or reloads) them */
    if ((rc = tg_cfg_base(path, true, &base)) < 0)
        tg_err_set(err, rc, "%s: out of memory", path);
    else
        rc = parse_text(text, len, path, base, out, err);
    if (rc == 0)
        (*out)->file_id = id;
    free(text);
    free(base);
    return rc;
}

static void config_free(struct tg_config *c)
{
    for (size_t i = 0; i < c->n_inbound; i++) {
        free(c->inbound[i].name);
        tg_strlist_free(&c->inbound[i].allow);
    }
    for (size_t i = 0; i < c->n_outbound; i++) {
        free(c->outbound[i].name);
        free(c->outbound[i].sni);
        tg_strlist_free(&c->outbound[i].expect);
    }
    for (size_t i = 0; i < c->n_dests; i++)
        tg_strlist_free(&c->dests[i].expect);
    for (size_t i = 0; i < c->n_rules; i++) {
        struct tg_rule_cfg *r = &c->rules[i];

        free(r->name);
        free(r->scope_ns);
        tg_labels_free(&r->scope_labels);
        tg_strlist_free(&r->principals);
        tg_strlist_free(&r->not_principals);
        tg_strlist_free(&r->namespaces);
        tg_strlist_free(&r->not_namespaces);
        tg_strlist_free(&r->trust_domains);
        tg_strlist_free(&r->not_trust_domains);
        tg_strlist_free(&r->fingerprints);
        tg_strlist_free(&r->not_fingerprints);
        tg_strlist_free(&r->serials);
        tg_strlist_free(&r->not_serials);
        tg_strlist_free(&r->methods);
        tg_strlist_free(&r->paths);
        tg_strlist_free(&r->hosts);
        free(r->ports.v);
        free(r->not_ports.v);
    }
    free(c->rules);
    for (size_t i = 0; i < c->n_limits; i++)
        free(c->limits[i].principal);
    free(c->limits);
    free(c->workload_ns);
    tg_labels_free(&c->workload_labels);
    tg_strlist_free(&c->revoked_serials);
    tg_strlist_free(&c->revoked_fingerprints);
    tg_strlist_free(&c->revocation_crls);
    free(c->dests);
    free(c->inbound);
    free(c->outbound);
    tg_strlist_free(&c->trust_domains);
    tg_strlist_free(&c->trust_domain_bundles);
    tg_strlist_free(&c->crl_paths);
    tg_strlist_free(&c->cipher_suites);
    free(c->cert_path);
    free(c->wl.endpoint);
    free(c->wl.socket);
    free(c->wl.spiffe_id);
    free(c->key_path);
    free(c->bundle_path);
    free(c->intermediates_path);
    free(c->cp.ca_path);
    free(c->cp.token_path);
    tg_strlist_free(&c->cp.server_ids);
    tg_strlist_free(&c->cp.addresses);
    free(c->cp.node_id);
    free(c->cp.namespace_);
    free(c->cp.service_account);
    tg_labels_free(&c->cp.labels);
    free(c->cp.pod_info);
    free(c->path);
    free(c);
}

TG_REF_DEFINE(struct tg_config, tg_config_ref, tg_config_unref, refs, config_free)

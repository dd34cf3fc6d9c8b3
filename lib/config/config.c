/* The configuration file, read with libyaml's event API and checked against the tables
 * below: each mapping has a fixed set of keys, each key one kind of value. The first problem
 * ends the load with "FILE:LINE: KEY.PATH: what is wrong". Events are taken one at a time and
 * refused as soon as they do not fit, so no input makes this code recurse deeper than the
 * tables do. Anchors, aliases and tags are refused: a settings file has no need of them, and
 * aliases would let a small file stand for a large one. */
#include "tollgate/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "tollgate/file.h"
#include "tollgate/spiffe.h"

#define MAX_FILE (1024 * 1024) /* bytes of YAML */
#define MAX_ITEMS 1024         /* entries in any one list */
#define MAX_NAME 64            /* listener names */
#define MAX_FIELDS 24          /* keys in one mapping table */
#define KEYPATH 128            /* "inbound[12].allow[3]" and the like */
#define SHOW 64                /* a value quoted in a message */
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

enum kind {
    K_MAP,      /* a nested mapping whose keys fill the same object (sub) */
    K_ADDR,     /* struct tg_addr */
    K_LISTEN,   /* struct tg_addr, unique across listeners and admin */
    K_HOSTPORT, /* struct tg_addr: numeric as K_ADDR, or a DNS name:PORT (len 0, text only) */
    K_UINT,     /* unsigned, min..max */
    K_BOOL,     /* bool */
    K_LEVEL,    /* enum tg_log_level */
    K_SIZE,     /* size_t, bytes or KiB/MiB, min..max */
    K_DURATION, /* uint64_t milliseconds, > 0 */
    K_PATH,     /* char *, resolved against the file's directory */
    K_TLSVER,   /* bool allow_tls12 */
    K_NAME,     /* char *, listener name, unique */
    K_SNI,      /* char *, a host name */
    K_IDS,      /* struct tg_strlist of SPIFFE IDs, at least min */
    K_DOMAINS,  /* identity.trust_domains: federated trust domain -> its bundle file */
    K_INBOUND,  /* the inbound listener list */
    K_OUTBOUND, /* the outbound listener list */
    K_MODE,     /* enum tg_inbound_mode */
    K_OUTSIDE,  /* bool mesh_refuse_outside: "passthrough" or "refuse" */
    K_DESTS,    /* the mesh destination list */
    K_CIDR,     /* struct tg_mesh_dest's net and prefix: an address or address/prefix */
    K_PORT,     /* uint16_t, 1..65535 */
    K_STRS,     /* struct tg_strlist of plain strings (checked later by their user) */
    K_PORTS,    /* struct tg_intlist of ports */
    K_LABELS,   /* struct tg_labels: a mapping of names to values */
    K_ACTION,   /* bool deny: "allow" or "deny" */
    K_DEFAULT,  /* bool default deny: "allow" or "deny" */
    K_RULES,    /* the authorization rule list */
    K_STR,      /* char *, a non-empty name */
    K_PATHS,    /* struct tg_strlist of paths, each resolved like K_PATH */
    K_LIMITS,   /* the rate_limits.overrides list */
    K_KEYBY,    /* bool: "id" or "fingerprint" */
    K_FRACTION, /* double, strictly between 0 and 1 */
    K_PROTOCOL, /* bool http: "tcp" or "http" */
    K_HTTP,     /* an inbound listener's http: mapping (struct tg_http_cfg) */
    K_INUP,     /* struct tg_addr: as K_ADDR, or "original" / "loopback" (len 0, text only) */
};

struct field {
    const char *key;
    enum kind kind;
    size_t off; /* of the member in the object the mapping fills */
    bool required;
    unsigned long long min, max;
    const struct field *sub; /* K_MAP */
    bool static_only;        /* required, but only without control_plane */
};

#define CFG(m) offsetof(struct tg_config, m)
#define IN(m) offsetof(struct tg_inbound_cfg, m)
#define OUT(m) offsetof(struct tg_outbound_cfg, m)
#define DEST(m) offsetof(struct tg_mesh_dest, m)
#define RULE(m) offsetof(struct tg_rule_cfg, m)
#define LIM(m) offsetof(struct tg_limit_cfg, m)
#define HTTPC(m) offsetof(struct tg_http_cfg, m)
#define LLIM(m) offsetof(struct tg_listener_limit_cfg, m)

static const struct field identity_fields[] = {
    {.key = "cert", .kind = K_PATH, .off = CFG(cert_path), .static_only = true},
    {.key = "key", .kind = K_PATH, .off = CFG(key_path), .static_only = true},
    {.key = "trust_bundle", .kind = K_PATH, .off = CFG(bundle_path), .static_only = true},
    {.key = "crl", .kind = K_PATHS, .off = CFG(crl_paths)},
    {.key = "trust_domains", .kind = K_DOMAINS},
    {.key = "max_chain_depth", .kind = K_UINT, .off = CFG(max_chain_depth), .min = 1, .max = 16},
    {.key = "workload_api", .kind = K_STR, .off = CFG(wl.endpoint)},
    {.key = "spiffe_id", .kind = K_STR, .off = CFG(wl.spiffe_id)},
    {.key = NULL},
};

static const struct field cp_fields[] = {
    {.key = "address", .kind = K_HOSTPORT, .off = CFG(cp.address), .required = true},
    {.key = "ca", .kind = K_PATH, .off = CFG(cp.ca_path), .required = true},
    {.key = "token", .kind = K_PATH, .off = CFG(cp.token_path), .required = true},
    {.key = "server_ids", .kind = K_IDS, .off = CFG(cp.server_ids), .required = true, .min = 1},
    {.key = "node_id", .kind = K_STR, .off = CFG(cp.node_id)},
    {.key = "namespace", .kind = K_STR, .off = CFG(cp.namespace_)},
    {.key = "service_account", .kind = K_STR, .off = CFG(cp.service_account)},
    {.key = "labels", .kind = K_LABELS, .off = CFG(cp.labels)},
    {.key = "renew_fraction", .kind = K_FRACTION, .off = CFG(cp.renew_fraction)},
    {.key = NULL},
};

static const struct field tls_fields[] = {
    {.key = "min_version", .kind = K_TLSVER, .off = CFG(allow_tls12)},
    {.key = "resumption", .kind = K_BOOL, .off = CFG(tls_resumption)},
    {.key = "cipher_suites", .kind = K_STRS, .off = CFG(cipher_suites)},
    {.key = NULL},
};

static const struct field timeout_fields[] = {
    {.key = "handshake", .kind = K_DURATION, .off = CFG(handshake_timeout_ms)},
    {.key = "idle", .kind = K_DURATION, .off = CFG(idle_timeout_ms)},
    {.key = "connect", .kind = K_DURATION, .off = CFG(connect_timeout_ms)},
    {.key = "drain", .kind = K_DURATION, .off = CFG(drain_timeout_ms)},
    {.key = NULL},
};

static const struct field mesh_fields[] = {
    {.key = "outside", .kind = K_OUTSIDE, .off = CFG(mesh_refuse_outside)},
    {.key = "destinations", .kind = K_DESTS},
    {.key = NULL},
};

static const struct field dest_fields[] = {
    {.key = "address", .kind = K_CIDR, .off = 0, .required = true},
    {.key = "port", .kind = K_PORT, .off = DEST(port)},
    {.key = "expect", .kind = K_IDS, .off = DEST(expect), .required = true, .min = 1},
    {.key = "protocol", .kind = K_PROTOCOL, .off = DEST(http)},
    {.key = NULL},
};

static const struct field workload_fields[] = {
    {.key = "namespace", .kind = K_STR, .off = CFG(workload_ns)},
    {.key = "labels", .kind = K_LABELS, .off = CFG(workload_labels)},
    {.key = NULL},
};

static const struct field authz_fields[] = {
    {.key = "default", .kind = K_DEFAULT, .off = CFG(authz_default_deny)},
    {.key = "close_denied", .kind = K_BOOL, .off = CFG(close_denied)},
    {.key = "rules", .kind = K_RULES},
    {.key = NULL},
};

static const struct field revocation_fields[] = {
    {.key = "serials", .kind = K_STRS, .off = CFG(revoked_serials)},
    {.key = "fingerprints", .kind = K_STRS, .off = CFG(revoked_fingerprints)},
    {.key = NULL},
};

static const struct field rule_fields[] = {
    {.key = "name", .kind = K_STR, .off = RULE(name), .required = true},
    {.key = "action", .kind = K_ACTION, .off = RULE(deny), .required = true},
    {.key = "namespace", .kind = K_STR, .off = RULE(scope_ns)},
    {.key = "labels", .kind = K_LABELS, .off = RULE(scope_labels)},
    {.key = "principals", .kind = K_STRS, .off = RULE(principals)},
    {.key = "not_principals", .kind = K_STRS, .off = RULE(not_principals)},
    {.key = "namespaces", .kind = K_STRS, .off = RULE(namespaces)},
    {.key = "not_namespaces", .kind = K_STRS, .off = RULE(not_namespaces)},
    {.key = "trust_domains", .kind = K_STRS, .off = RULE(trust_domains)},
    {.key = "not_trust_domains", .kind = K_STRS, .off = RULE(not_trust_domains)},
    {.key = "fingerprints", .kind = K_STRS, .off = RULE(fingerprints)},
    {.key = "not_fingerprints", .kind = K_STRS, .off = RULE(not_fingerprints)},
    {.key = "serials", .kind = K_STRS, .off = RULE(serials)},
    {.key = "not_serials", .kind = K_STRS, .off = RULE(not_serials)},
    {.key = "ports", .kind = K_PORTS, .off = RULE(ports)},
    {.key = "not_ports", .kind = K_PORTS, .off = RULE(not_ports)},
    {.key = "methods", .kind = K_STRS, .off = RULE(methods)},
    {.key = "paths", .kind = K_STRS, .off = RULE(paths)},
    {.key = "hosts", .kind = K_STRS, .off = RULE(hosts)},
    {.key = NULL},
};

#define LIMIT_FIELDS                                                                               \
    {.key = "connections_per_second",                                                              \
     .kind = K_UINT,                                                                               \
     .off = LIM(conns_per_second),                                                                 \
     .max = 1000000},                                                                              \
        {.key = "burst", .kind = K_UINT, .off = LIM(burst), .max = 1000000},                       \
        {.key = "max_concurrent", .kind = K_UINT, .off = LIM(max_concurrent), .max = 1000000},     \
        {.key = "requests_per_second",                                                             \
         .kind = K_UINT,                                                                           \
         .off = LIM(requests_per_second),                                                          \
         .max = 10000000},                                                                         \
        {.key = "requests_burst", .kind = K_UINT, .off = LIM(requests_burst), .max = 10000000},    \
    {                                                                                              \
        .key = "bytes_per_second", .kind = K_SIZE, .off = LIM(bytes_per_second), .min = 1,         \
        .max = 1ULL << 40                                                                          \
    }

static const struct field limit_fields[] = {
    LIMIT_FIELDS,
    {.key = NULL},
};

static const struct field override_fields[] = {
    {.key = "principal", .kind = K_STR, .off = LIM(principal), .required = true},
    LIMIT_FIELDS,
    {.key = NULL},
};

static const struct field ratelimit_fields[] = {
    {.key = "key", .kind = K_KEYBY, .off = CFG(limit_by_fingerprint)},
    {.key = "default", .kind = K_MAP, .sub = limit_fields, .off = CFG(limit_default)},
    {.key = "overrides", .kind = K_LIMITS},
    {.key = NULL},
};

static const struct field top_fields[] = {
    {.key = "admin", .kind = K_LISTEN, .off = CFG(admin)},
    {.key = "workers", .kind = K_UINT, .off = CFG(workers), .min = 0, .max = 256},
    {.key = "log_level", .kind = K_LEVEL, .off = CFG(log_level)},
    {.key = "access_log", .kind = K_BOOL, .off = CFG(access_log)},
    {.key = "buffer_size",
     .kind = K_SIZE,
     .off = CFG(buffer_size),
     .min = 4 << 10,
     .max = 16 << 20},
    {.key = "identity", .kind = K_MAP, .static_only = true, .sub = identity_fields},
    {.key = "control_plane", .kind = K_MAP, .sub = cp_fields},
    {.key = "tls", .kind = K_MAP, .sub = tls_fields},
    {.key = "timeouts", .kind = K_MAP, .sub = timeout_fields},
    {.key = "inbound", .kind = K_INBOUND},
    {.key = "outbound", .kind = K_OUTBOUND},
    {.key = "mesh", .kind = K_MAP, .sub = mesh_fields},
    {.key = "workload", .kind = K_MAP, .sub = workload_fields},
    {.key = "authorization", .kind = K_MAP, .sub = authz_fields},
    {.key = "revocation", .kind = K_MAP, .sub = revocation_fields},
    {.key = "rate_limits", .kind = K_MAP, .sub = ratelimit_fields},
    {.key = NULL},
};

static const struct field listener_limit_fields[] = {
    {.key = "connections_per_second",
     .kind = K_UINT,
     .off = LLIM(conns_per_second),
     .max = 1000000},
    {.key = "burst", .kind = K_UINT, .off = LLIM(burst), .max = 1000000},
    {.key = "max_connections", .kind = K_UINT, .off = LLIM(max_connections), .max = 10000000},
    {.key = "bytes_per_second",
     .kind = K_SIZE,
     .off = LLIM(bytes_per_second),
     .min = 1,
     .max = 1ULL << 40},
    {.key = NULL},
};

static const struct field http_fields[] = {
    {.key = "xfcc", .kind = K_BOOL, .off = HTTPC(xfcc)},
    {.key = "client_cert_header", .kind = K_BOOL, .off = HTTPC(client_cert)},
    {.key = "max_head", .kind = K_SIZE, .off = HTTPC(max_head), .min = 1024, .max = 16 << 20},
    {.key = "max_line", .kind = K_SIZE, .off = HTTPC(max_line), .min = 256, .max = 16 << 20},
    {.key = "max_headers", .kind = K_UINT, .off = HTTPC(max_fields), .min = 1, .max = 10000},
    {.key = NULL},
};

static const struct field inbound_fields[] = {
    {.key = "name", .kind = K_NAME, .off = IN(name)},
    {.key = "listen", .kind = K_LISTEN, .off = IN(listen), .required = true},
    {.key = "upstream", .kind = K_INUP, .off = IN(upstream)},
    {.key = "transparent", .kind = K_BOOL, .off = IN(transparent)},
    {.key = "mode", .kind = K_MODE, .off = IN(mode)},
    {.key = "proxy_protocol", .kind = K_BOOL, .off = IN(proxy_protocol)},
    {.key = "allow", .kind = K_IDS, .off = IN(allow), .min = 0},
    {.key = "allow_unauthenticated", .kind = K_BOOL, .off = IN(allow_unauth)},
    {.key = "protocol", .kind = K_PROTOCOL, .off = IN(http)},
    {.key = "http", .kind = K_HTTP, .off = IN(http_cfg), .sub = http_fields},
    {.key = "limits", .kind = K_MAP, .sub = listener_limit_fields, .off = IN(limits)},
    {.key = NULL},
};

static const struct field outbound_fields[] = {
    {.key = "name", .kind = K_NAME, .off = OUT(name)},
    {.key = "listen", .kind = K_LISTEN, .off = OUT(listen), .required = true},
    {.key = "upstream", .kind = K_ADDR, .off = OUT(upstream)},
    {.key = "transparent", .kind = K_BOOL, .off = OUT(transparent)},
    {.key = "expect", .kind = K_IDS, .off = OUT(expect), .min = 1},
    {.key = "sni", .kind = K_SNI, .off = OUT(sni)},
    {.key = "limits", .kind = K_MAP, .sub = listener_limit_fields, .off = OUT(limits)},
    {.key = NULL},
};

/* walk_map() keeps one line number per key of a table */
_Static_assert(TG_NELEM(top_fields) <= MAX_FIELDS, "top_fields");
_Static_assert(TG_NELEM(identity_fields) <= MAX_FIELDS, "identity_fields");
_Static_assert(TG_NELEM(cp_fields) <= MAX_FIELDS, "cp_fields");
_Static_assert(TG_NELEM(inbound_fields) <= MAX_FIELDS, "inbound_fields");
_Static_assert(TG_NELEM(outbound_fields) <= MAX_FIELDS, "outbound_fields");
_Static_assert(TG_NELEM(timeout_fields) <= MAX_FIELDS, "timeout_fields");
_Static_assert(TG_NELEM(mesh_fields) <= MAX_FIELDS, "mesh_fields");
_Static_assert(TG_NELEM(dest_fields) <= MAX_FIELDS, "dest_fields");
_Static_assert(TG_NELEM(rule_fields) <= MAX_FIELDS, "rule_fields");

struct parse {
    yaml_parser_t yp;
    bool yp_ready;
    yaml_event_t ev; /* the current event, valid while have_ev */
    bool have_ev;
    const char *name; /* the file, in messages */
    const char *base; /* directory for relative paths; NULL leaves them as written */
    char *err;
    struct tg_config *c;
    size_t key_line;           /* line of the key whose value is read next; 0 for the top */
    size_t static_line;        /* the first static_only key found missing: its map's line */
    char static_path[KEYPATH]; /* and its path; "" when none */
    size_t cp_line;            /* line of control_plane; 0 when absent */
    size_t identity_line;      /* line of identity; 0 when absent */
};

/* Writes s as a quoted, escaped, one-line and possibly shortened form into buf[SHOW]. */
static const char *show(char *buf, const char *s)
{
    size_t o = 0;

    buf[o++] = '"';
    for (; *s != '\0' && o + 8 < SHOW; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            o += (size_t)snprintf(buf + o, SHOW - o, "\\x%02x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    if (*s != '\0') {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static size_t line_of(const struct parse *ps)
{
    return ps->ev.start_mark.line + 1;
}

/* "FILE:LINE: PATH: what" with LINE left out when 0 and PATH when empty. */
static int fail(struct parse *ps, size_t line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct parse *ps, size_t line, const char *path, const char *fmt, ...)
{
    char what[TG_ERRLEN];
    char where[32] = "";
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(where, sizeof(where), ":%zu", line);
    if (path == NULL || path[0] == '\0')
        return tg_err_set(ps->err, TG_ECONFIG, "%s%s: %s", ps->name, where, what);
    return tg_err_set(ps->err, TG_ECONFIG, "%s%s: %s: %s", ps->name, where, path, what);
}

static int syntax_error(struct parse *ps)
{
    const yaml_parser_t *p = &ps->yp;
    const char *problem = p->problem != NULL ? p->problem : "unknown problem";

    if (p->error == YAML_MEMORY_ERROR)
        return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
    if (p->error == YAML_READER_ERROR)
        return tg_err_set(ps->err, TG_ECONFIG, "%s: byte %zu: %s", ps->name, p->problem_offset,
                          problem);
    if (p->context != NULL)
        return fail(ps, p->problem_mark.line + 1, NULL, "YAML syntax error: %s (%s at line %zu)",
                    problem, p->context, p->context_mark.line + 1);
    return fail(ps, p->problem_mark.line + 1, NULL, "YAML syntax error: %s", problem);
}

/* Takes the next event; path names the value it belongs to, for messages. */
static int next(struct parse *ps, const char *path)
{
    const yaml_event_t *ev = &ps->ev;
    const yaml_char_t *anchor = NULL, *tag = NULL;

    if (ps->have_ev)
        yaml_event_delete(&ps->ev);
    ps->have_ev = false;
    if (!yaml_parser_parse(&ps->yp, &ps->ev))
        return syntax_error(ps);
    ps->have_ev = true;
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return fail(ps, line_of(ps), path, "aliases (*name) are not supported");
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    default:
        break;
    }
    if (anchor != NULL)
        return fail(ps, line_of(ps), path, "anchors (&name) are not supported");
    if (tag != NULL)
        return fail(ps, line_of(ps), path, "tags (!tag) are not supported");
    return 0;
}

static bool is_null(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;

    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* The current event is not the want'ed kind of node: say what it is instead. */
static int wrong_type(struct parse *ps, const char *path, const char *want)
{
    switch (ps->ev.type) {
    case YAML_SCALAR_EVENT:
        if (is_null(&ps->ev) && strcmp(want, "a single value") == 0)
            return fail(ps, line_of(ps), path, "has no value");
        if (is_null(&ps->ev))
            return fail(ps, line_of(ps), path, "has no value (want %s)", want);
        return fail(ps, line_of(ps), path, "want %s, not a single value", want);
    case YAML_SEQUENCE_START_EVENT:
        return fail(ps, line_of(ps), path, "want %s, not a list", want);
    case YAML_MAPPING_START_EVENT:
        return fail(ps, line_of(ps), path, "want %s, not a mapping", want);
    default:
        return fail(ps, line_of(ps), path, "want %s", want);
    }
}

/* Takes the next event, which must be a non-null scalar without NUL bytes. */
static int scalar(struct parse *ps, const char *path, const char **out)
{
    int rc;

    if ((rc = next(ps, path)) < 0)
        return rc;
    if (ps->ev.type != YAML_SCALAR_EVENT || is_null(&ps->ev))
        return wrong_type(ps, path, "a single value");
    if (strlen((const char *)ps->ev.data.scalar.value) != ps->ev.data.scalar.length)
        return fail(ps, line_of(ps), path, "contains a NUL byte");
    *out = (const char *)ps->ev.data.scalar.value;
    return 0;
}

static bool quoted(const struct parse *ps)
{
    return ps->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
}

/* Formats a key path into dst[KEYPATH], cut short if need be (it only names things). */
static const char *keypath(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const char *keypath(char *dst, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(dst, KEYPATH, fmt, ap);
    va_end(ap);
    return dst;
}

static const char *join(char *dst, const char *path, const char *key)
{
    return keypath(dst, "%s%s%s", path, path[0] != '\0' ? "." : "", key);
}

/* Digits only, no sign, no overflow. */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* A number with one of the suffixes (each with its multiplier); "" may be among them. */
static bool parse_scaled(const char *s, const char *const *suffix, const uint64_t *mult,
                         size_t nsuffix, uint64_t *out)
{
    size_t digits = strspn(s, "0123456789");
    uint64_t v;

    if (!parse_u64(s, digits, &v))
        return false;
    for (size_t i = 0; i < nsuffix; i++) {
        if (strcmp(s + digits, suffix[i]) != 0)
            continue;
        if (v > UINT64_MAX / mult[i])
            return false;
        *out = v * mult[i];
        return true;
    }
    return false;
}

int tg_duration_parse(const char *s, uint64_t *ms, char *err)
{
    static const char *const suffix[] = {"ms", "s", "m", "h", ""};
    static const uint64_t mult[] = {1, 1000, 60 * 1000, 60 * 60 * 1000, 1000};
    char shown[SHOW];

    if (!parse_scaled(s, suffix, mult, TG_NELEM(suffix), ms))
        return tg_err_set(err, TG_EINVAL, "%s is not a duration (want e.g. 250ms, 10s, 5m, 1h)",
                          show(shown, s));
    return 0;
}

static bool parse_port(const char *s, bool allow_port0, uint16_t *port)
{
    uint64_t v;

    if (strlen(s) > 5 || !parse_u64(s, strlen(s), &v) || v > 65535 || (v == 0 && !allow_port0))
        return false;
    *port = (uint16_t)v;
    return true;
}

int tg_addr_parse(const char *s, bool allow_port0, struct tg_addr *out, char *err)
{
    struct tg_addr a;
    char host[INET6_ADDRSTRLEN];
    char shown[SHOW];
    const char *h = s, *port;
    size_t hlen;
    uint16_t p;
    int family = AF_INET;

    memset(&a, 0, sizeof(a));
    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (close == NULL || close[1] != ':')
            return tg_err_set(err, TG_EINVAL, "%s is not an address (want [IPv6]:PORT)",
                              show(shown, s));
        family = AF_INET6;
        h = s + 1;
        hlen = (size_t)(close - h);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');

        if (colon == NULL)
            return tg_err_set(err, TG_EINVAL, "%s is not an address (want IP:PORT)",
                              show(shown, s));
        if (memchr(s, ':', (size_t)(colon - s)) != NULL)
            return tg_err_set(err, TG_EINVAL,
                              "%s is not an address (IPv6 goes in brackets: [::1]:PORT)",
                              show(shown, s));
        hlen = (size_t)(colon - s);
        port = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return tg_err_set(err, TG_EINVAL, "%s is not an address (want a numeric IP and a port)",
                          show(shown, s));
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;

        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return tg_err_set(err, TG_EINVAL, "%s is not an address (not a numeric IPv6 host)",
                              show(shown, s));
        sin6->sin6_family = AF_INET6;
        a.len = sizeof(*sin6);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;

        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return tg_err_set(err, TG_EINVAL, "%s is not an address (%s)", show(shown, s),
                              strspn(host, "0123456789.") == hlen
                                  ? "not a numeric IPv4 host"
                                  : "host must be a numeric IP; names are not resolved");
        sin->sin_family = AF_INET;
        a.len = sizeof(*sin);
    }
    if (!parse_port(port, allow_port0, &p))
        return tg_err_set(err, TG_EINVAL, "%s: port must be a number %d..65535", show(shown, s),
                          allow_port0 ? 0 : 1);
    if (family == AF_INET6)
        ((struct sockaddr_in6 *)&a.ss)->sin6_port = htons(p);
    else
        ((struct sockaddr_in *)&a.ss)->sin_port = htons(p);
    snprintf(a.text, sizeof(a.text), "%s", s);
    *out = a;
    return 0;
}

/* A DNS name (RFC 1123 labels of [A-Za-z0-9-], 1..63 bytes, not starting or ending with '-',
 * an optional final dot), or a numeric address as tg_addr_parse takes it, then ":PORT". A name
 * is resolved by whoever connects (cp_client.c, at every attempt): here it is only checked,
 * and a->len stays 0. */
static int parse_hostport(const char *s, struct tg_addr *out, char *err)
{
    static const char ldh[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-";
    const char *colon = strrchr(s, ':');
    char shown[SHOW];
    size_t hlen, i = 0;
    uint16_t p;

    if (s[0] == '[' || (colon != NULL && strspn(s, "0123456789.") == (size_t)(colon - s)))
        return tg_addr_parse(s, false, out, err); /* [IPv6]:PORT or IPv4:PORT */
    if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
        return tg_err_set(err, TG_EINVAL,
                          "%s is not an address (want HOST:PORT, IP:PORT or [IPv6]:PORT)",
                          show(shown, s));
    hlen = (size_t)(colon - s);
    if (hlen > 0 && s[hlen - 1] == '.')
        hlen--; /* a fully qualified name */
    if (hlen == 0 || hlen > 253)
        return tg_err_set(err, TG_EINVAL, "%s: the host name must be 1 to 253 characters",
                          show(shown, s));
    while (i < hlen) {
        size_t n = strspn(s + i, ldh);

        n = n < hlen - i ? n : hlen - i;
        if (n == 0 || n > 63 || s[i] == '-' || s[i + n - 1] == '-' ||
            (i + n < hlen && s[i + n] != '.'))
            return tg_err_set(err, TG_EINVAL,
                              "%s: not a DNS name (labels of 1 to 63 letters, digits and '-', "
                              "not starting or ending with '-', separated by dots)",
                              show(shown, s));
        i += n + 1;
    }
    if (!parse_port(colon + 1, false, &p))
        return tg_err_set(err, TG_EINVAL, "%s: port must be a number 1..65535", show(shown, s));
    if (strlen(s) >= sizeof(out->text))
        return tg_err_set(err, TG_EINVAL, "%s: HOST:PORT longer than %zu characters",
                          show(shown, s), sizeof(out->text) - 1);
    memset(out, 0, sizeof(*out));
    snprintf(out->text, sizeof(out->text), "%s", s);
    return 0;
}

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

/* A listen or admin address must not clash with any other one already read. */
static int check_listen(struct parse *ps, const char *path, const struct tg_addr *a)
{
    const struct tg_config *c = ps->c;
    char other[KEYPATH] = "";
    const struct tg_addr *o = NULL;

    if (addr_clash(a, &c->admin)) {
        o = &c->admin;
        keypath(other, "admin");
    }
    for (size_t i = 0; o == NULL && i < c->n_inbound; i++) {
        if (addr_clash(a, &c->inbound[i].listen)) {
            o = &c->inbound[i].listen;
            keypath(other, "inbound[%zu].listen", i);
        }
    }
    for (size_t i = 0; o == NULL && i < c->n_outbound; i++) {
        if (addr_clash(a, &c->outbound[i].listen)) {
            o = &c->outbound[i].listen;
            keypath(other, "outbound[%zu].listen", i);
        }
    }
    if (o == NULL)
        return 0;
    if (strcmp(a->text, o->text) == 0)
        return fail(ps, line_of(ps), path, "%s is already used by %s", a->text, other);
    return fail(ps, line_of(ps), path, "%s is already used by %s (%s)", a->text, other, o->text);
}

/* Listener names are unique across inbound and outbound; self is the one being named. */
static int check_name(struct parse *ps, size_t line, const char *path, char *const *self)
{
    const struct tg_config *c = ps->c;
    char other[KEYPATH] = "";

    for (size_t i = 0; other[0] == '\0' && i < c->n_inbound; i++) {
        const char *n = c->inbound[i].name;

        if (&c->inbound[i].name != self && n != NULL && strcmp(n, *self) == 0)
            keypath(other, "inbound[%zu]", i);
    }
    for (size_t i = 0; other[0] == '\0' && i < c->n_outbound; i++) {
        const char *n = c->outbound[i].name;

        if (&c->outbound[i].name != self && n != NULL && strcmp(n, *self) == 0)
            keypath(other, "outbound[%zu]", i);
    }
    if (other[0] == '\0')
        return 0;
    return fail(ps, line, path, "name \"%s\" is already used by %s", *self, other);
}

static int parse_name(struct parse *ps, const char *path, char **dst)
{
    const char *v;
    char shown[SHOW];
    int rc;

    if ((rc = scalar(ps, path, &v)) < 0)
        return rc;
    if (v[0] == '\0' || strspn(v, NAME_CHARS) != strlen(v))
        return fail(ps, line_of(ps), path, "%s is not a name (want [A-Za-z0-9._-]+)",
                    show(shown, v));
    if (strlen(v) > MAX_NAME)
        return fail(ps, line_of(ps), path, "longer than %d characters", MAX_NAME);
    if ((*dst = strdup(v)) == NULL)
        return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
    return check_name(ps, line_of(ps), path, dst);
}

/* SNI (RFC 6066 3): a DNS host name, never an IP literal. */
static int parse_sni(struct parse *ps, const char *path, char **dst)
{
    const char *v;
    char shown[SHOW];
    unsigned char addr[sizeof(struct in6_addr)];
    size_t n;
    int rc;

    if ((rc = scalar(ps, path, &v)) < 0)
        return rc;
    n = strlen(v);
    if (n == 0 || n > 253 || v[0] == '.' || v[0] == '-' || strspn(v, NAME_CHARS) != n)
        return fail(ps, line_of(ps), path, "%s is not a host name", show(shown, v));
    if (inet_pton(AF_INET, v, addr) == 1)
        return fail(ps, line_of(ps), path, "%s is an IP address; SNI must be a host name",
                    show(shown, v));
    if ((*dst = strdup(v)) == NULL)
        return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
    return 0;
}

/* v as a path, made absolute against the file's directory, into *dst. */
static int resolve_path(struct parse *ps, const char *path, const char *v, char **dst)
{
    char shown[SHOW];
    size_t blen, vlen;

    vlen = strlen(v);
    if (vlen == 0)
        return fail(ps, line_of(ps), path, "is empty (want a file path)");
    blen = ps->base == NULL || v[0] == '/' ? 0 : strlen(ps->base) + 1;
    if (blen + vlen >= PATH_MAX)
        return fail(ps, line_of(ps), path, "%s: path is too long", show(shown, v));
    if ((*dst = malloc(blen + vlen + 1)) == NULL)
        return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
    if (blen > 0) {
        memcpy(*dst, ps->base, blen - 1);
        (*dst)[blen - 1] = '/';
    }
    memcpy(*dst + blen, v, vlen + 1);
    return 0;
}

static int parse_path(struct parse *ps, const char *path, char **dst)
{
    const char *v;
    int rc;

    if ((rc = scalar(ps, path, &v)) < 0)
        return rc;
    return resolve_path(ps, path, v, dst);
}

/* A SPIFFE ID (for allow/expect) or a bare trust domain name (for trust_domains). */
static int check_list_item(struct parse *ps, const char *path, enum kind kind, const char *v)
{
    struct tg_spiffe_id id;
    char why[TG_ERRLEN];
    char shown[SHOW];
    char buf[TG_SPIFFE_MAX + 1];
    size_t n;

    if (kind == K_STRS)
        return v[0] != '\0' ? 0 : fail(ps, line_of(ps), path, "is empty");
    if (kind == K_IDS) {
        if (tg_spiffe_parse(v, &id, why) < 0)
            return fail(ps, line_of(ps), path, "%s is not a SPIFFE ID: %s", show(shown, v), why);
        if (id.path_off == id.len) /* a workload's certificate always has a path */
            return fail(ps, line_of(ps), path,
                        "%s names a trust domain, not a workload (want spiffe://DOMAIN/PATH)",
                        show(shown, v));
        return 0;
    }
    if (strncmp(v, "spiffe://", 9) == 0)
        return fail(ps, line_of(ps), path, "%s: want the trust domain name without spiffe://",
                    show(shown, v));
    /* the trust domain rule lives in spiffe.c: check "spiffe://NAME" and want no path */
    n = strlen(v);
    if (n > 255) /* the SPIFFE spec's limit (TG_TRUST_DOMAIN_MAX) */
        return fail(ps, line_of(ps), path, "%s is longer than 255 bytes (not a trust domain)",
                    show(shown, v));
    if (n <= TG_SPIFFE_MAX - 9) {
        memcpy(buf, "spiffe://", 9);
        memcpy(buf + 9, v, n + 1);
    }
    if (n > TG_SPIFFE_MAX - 9 || tg_spiffe_parse(buf, &id, why) < 0 || id.path_off != id.len)
        return fail(ps, line_of(ps), path, "%s is not a trust domain name (want [a-z0-9.-_]+)",
                    show(shown, v));
    return 0;
}

/* Room for element n of *arr (*cap allocated, elem bytes each): doubles it when full, up to
 * MAX_ITEMS elements (what names them in the message). 0, or an error naming path. */
static int grow(struct parse *ps, const char *path, void **arr, size_t n, size_t *cap, size_t elem,
                const char *what)
{
    size_t ncap = *cap == 0 ? 4 : *cap * 2;
    void *na;

    if (n == MAX_ITEMS)
        return fail(ps, line_of(ps), path, "more than %d %s", MAX_ITEMS, what);
    if (n < *cap)
        return 0;
    if ((na = realloc(*arr, ncap * elem)) == NULL)
        return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
    *arr = na;
    *cap = ncap;
    return 0;
}

static int parse_strlist(struct parse *ps, const char *path, const struct field *f,
                         struct tg_strlist *list)
{
    char item[KEYPATH];
    size_t cap = 0;
    int rc;

    if ((rc = next(ps, path)) < 0)
        return rc;
    if (ps->ev.type != YAML_SEQUENCE_START_EVENT)
        return wrong_type(ps, path, "a list");
    for (;;) {
        const char *v;

        if ((rc = next(ps, path)) < 0)
            return rc;
        if (ps->ev.type == YAML_SEQUENCE_END_EVENT)
            break;
        keypath(item, "%s[%zu]", path, list->n);
        if (ps->ev.type != YAML_SCALAR_EVENT || is_null(&ps->ev))
            return wrong_type(ps, item, "a single value");
        v = (const char *)ps->ev.data.scalar.value;
        if (strlen(v) != ps->ev.data.scalar.length)
            return fail(ps, line_of(ps), item, "contains a NUL byte");
        if ((rc = check_list_item(ps, item, f->kind, v)) < 0)
            return rc;
        if ((rc = grow(ps, path, (void **)&list->v, list->n, &cap, sizeof(*list->v), "entries")) <
            0)
            return rc;
        if ((list->v[list->n] = strdup(v)) == NULL)
            return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
        list->n++;
    }
    if (list->n < f->min)
        return fail(ps, line_of(ps), path, "is empty (want at least %llu SPIFFE ID)", f->min);
    return 0;
}

static int walk_map(struct parse *ps, const char *path, const struct field *fields, void *obj);

/* A list of file paths, each resolved against the file's directory like a single one. */
static int parse_paths(struct parse *ps, const char *path, struct tg_strlist *list)
{
    char item[KEYPATH];
    size_t cap = 0;
    int rc;

    if ((rc = next(ps, path)) < 0)
        return rc;
    if (ps->ev.type != YAML_SEQUENCE_START_EVENT)
        return wrong_type(ps, path, "a list of files");
    for (;;) {
        if ((rc = grow(ps, path, (void **)&list->v, list->n, &cap, sizeof(*list->v), "entries")) <
            0)
            return rc;
        keypath(item, "%s[%zu]", path, list->n);
        if ((rc = next(ps, item)) < 0)
            return rc;
        if (ps->ev.type == YAML_SEQUENCE_END_EVENT)
            return 0;
        if (ps->ev.type != YAML_SCALAR_EVENT || is_null(&ps->ev))
            return wrong_type(ps, item, "a file path");
        if ((rc = resolve_path(ps, item, (const char *)ps->ev.data.scalar.value,
                               &list->v[list->n])) < 0)
            return rc;
        list->n++;
    }
}

/* identity.trust_domains: a mapping of each federated trust domain to its own bundle file,
 * {partner.example: partner-roots.pem}: only those roots may vouch for an ID of it. The list
 * of names it used to be said which domains to accept, not which roots vouch for each (every
 * root sat in identity.trust_bundle, so a partner's could vouch for ours): refused, naming
 * the new spelling; an empty list still means none. */
static int parse_federation(struct parse *ps, const char *path)
{
    struct tg_strlist *names = &ps->c->trust_domains, *files = &ps->c->trust_domain_bundles;
    char item[KEYPATH];
    size_t cap = 0, cap2 = 0, line;
    int rc;

    if ((rc = next(ps, path)) < 0)
        return rc;
    if (ps->ev.type == YAML_SEQUENCE_START_EVENT) {
        line = line_of(ps);
        if ((rc = next(ps, path)) < 0)
            return rc;
        if (ps->ev.type == YAML_SEQUENCE_END_EVENT)
            return 0;
        return fail(ps, line, path,
                    "a list of names no longer says which roots vouch for each: write "
                    "{DOMAIN: ITS-BUNDLE.pem, ...} and keep only our own roots in "
                    "identity.trust_bundle");
    }
    if (ps->ev.type != YAML_MAPPING_START_EVENT)
        return wrong_type(ps, path, "a mapping of trust domains to bundle files");
    for (;;) {
        const char *v;

        if ((rc = next(ps, path)) < 0)
            return rc;
        if (ps->ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        if (ps->ev.type != YAML_SCALAR_EVENT || is_null(&ps->ev))
            return wrong_type(ps, path, "a trust domain name");
        v = (const char *)ps->ev.data.scalar.value;
        if (strlen(v) != ps->ev.data.scalar.length)
            return fail(ps, line_of(ps), path, "a trust domain name contains a NUL byte");
        if (v[0] == '\0')
            return fail(ps, line_of(ps), path, "an empty trust domain name");
        keypath(item, "%s.%.60s", path, v);
        if ((rc = check_list_item(ps, item, K_DOMAINS, v)) < 0)
            return rc;
        for (size_t i = 0; i < names->n; i++)
            if (strcmp(names->v[i], v) == 0)
                return fail(ps, line_of(ps), item, "duplicate trust domain");
        if ((rc = grow(ps, path, (void **)&names->v, names->n, &cap, sizeof(*names->v),
                       "trust domains")) < 0 ||
            (rc = grow(ps, path, (void **)&files->v, files->n, &cap2, sizeof(*files->v),
                       "trust domains")) < 0)
            return rc;
        if ((names->v[names->n] = strdup(v)) == NULL)
            return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
        names->n++;
        if ((rc = parse_path(ps, item, &files->v[files->n])) < 0)
            return rc;
        files->n++;
    }
}

/* A list of mappings (YAML sequence of mappings), each read with fields into a new zeroed
 * element of *arr (elem bytes each) and counted in *n as soon as it exists, so that
 * tg_config_unref frees a half-read one. what names the entries in messages ("rules");
 * shape shows what one looks like; check, when set, runs on each element after its keys. */
static int parse_map_list(struct parse *ps, const char *path, void **arr, size_t *n, size_t elem,
                          const struct field *fields, const char *what, const char *shape,
                          int (*check)(struct parse *ps, const char *item, void *el))
{
    char item[KEYPATH], want[64];
    size_t cap = 0;
    int rc;

    if ((rc = next(ps, path)) < 0)
        return rc;
    snprintf(want, sizeof(want), "a list of %s", what);
    if (ps->ev.type != YAML_SEQUENCE_START_EVENT)
        return wrong_type(ps, path, want);
    for (;;) {
        char *el;

        if ((rc = next(ps, path)) < 0)
            return rc;
        if (ps->ev.type == YAML_SEQUENCE_END_EVENT)
            return 0;
        keypath(item, "%s[%zu]", path, *n);
        if (ps->ev.type != YAML_MAPPING_START_EVENT)
            return wrong_type(ps, item, shape);
        if ((rc = grow(ps, path, arr, *n, &cap, elem, what)) < 0)
            return rc;
        el = (char *)*arr + *n * elem;
        memset(el, 0, elem);
        (*n)++;
        ps->key_line = line_of(ps);
        if ((rc = walk_map(ps, item, fields, el)) < 0)
            return rc;
        if (check != NULL && (rc = check(ps, item, el)) < 0)
            return rc;
    }
}

static int check_limit(struct parse *ps, const char *item, void *el)
{
    const char *p = ((const struct tg_limit_cfg *)el)->principal;

    if (strncmp(p, "spiffe://", 9) != 0)
        return fail(ps, ps->key_line, item,
                    "principal: \"%.40s\" is not a SPIFFE ID or prefix (spiffe://...)", p);
    return 0;
}

/* A list of ports (1..65535). */
static int parse_ports(struct parse *ps, const char *path, struct tg_intlist *list)
{
    char item[KEYPATH];
    size_t cap = 0;
    uint64_t u;
    int rc;

    if ((rc = next(ps, path)) < 0)
        return rc;
    if (ps->ev.type != YAML_SEQUENCE_START_EVENT)
        return wrong_type(ps, path, "a list of ports");
    for (;;) {
        const char *v;

        if ((rc = next(ps, path)) < 0)
            return rc;
        if (ps->ev.type == YAML_SEQUENCE_END_EVENT)
            return 0;
        keypath(item, "%s[%zu]", path, list->n);
        if (ps->ev.type != YAML_SCALAR_EVENT || is_null(&ps->ev))
            return wrong_type(ps, item, "a port");
        v = (const char *)ps->ev.data.scalar.value;
        if (quoted(ps) || !parse_u64(v, strlen(v), &u) || u < 1 || u > 65535) {
            char shown[SHOW];

            return fail(ps, line_of(ps), item, "%s is not a port (want 1..65535)", show(shown, v));
        }
        if ((rc = grow(ps, path, (void **)&list->v, list->n, &cap, sizeof(*list->v), "entries")) <
            0)
            return rc;
        list->v[list->n++] = (int)u;
    }
}

/* A mapping of label names to values, e.g. {app: web, tier: front}. */
static int parse_labels(struct parse *ps, const char *path, struct tg_labels *l)
{
    char item[KEYPATH];
    size_t cap = 0;
    int rc;

    if ((rc = next(ps, path)) < 0)
        return rc;
    if (ps->ev.type != YAML_MAPPING_START_EVENT)
        return wrong_type(ps, path, "a mapping of labels");
    for (;;) {
        const char *v;
        char *key;

        if ((rc = next(ps, path)) < 0)
            return rc;
        if (ps->ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        if (ps->ev.type != YAML_SCALAR_EVENT || is_null(&ps->ev) || ps->ev.data.scalar.length == 0)
            return wrong_type(ps, path, "a label name");
        key = strdup((const char *)ps->ev.data.scalar.value);
        if (key == NULL)
            return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
        join(item, path, key);
        for (size_t i = 0; i < l->n; i++) {
            if (strcmp(l->keys[i], key) == 0) {
                free(key);
                return fail(ps, line_of(ps), item, "duplicate label");
            }
        }
        if ((rc = scalar(ps, item, &v)) < 0) {
            free(key);
            return rc;
        }
        if (l->n == MAX_ITEMS) {
            free(key);
            return fail(ps, line_of(ps), path, "more than %d labels", MAX_ITEMS);
        }
        if (l->n == cap) {
            size_t ncap = cap == 0 ? 4 : cap * 2;
            char **nk = realloc(l->keys, ncap * sizeof(*nk));
            char **nv = nk == NULL ? NULL : realloc(l->values, ncap * sizeof(*nv));

            if (nk != NULL)
                l->keys = nk;
            if (nv == NULL) {
                free(key);
                return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
            }
            l->values = nv;
            cap = ncap;
        }
        l->keys[l->n] = key;
        if ((l->values[l->n] = strdup(v)) == NULL) {
            free(key);
            return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
        }
        l->n++;
    }
}

/* A listener has an upstream address, or is transparent (captured traffic), never both. A
 * transparent inbound listener's upstream says where the original destination's port is
 * reached: "original" (the default: the original destination itself) or "loopback". */
static int check_upstream(struct parse *ps, size_t line, const char *path, bool transparent,
                          const struct tg_addr *upstream)
{
    char key[KEYPATH];
    bool word = upstream->len == 0 && upstream->text[0] != '\0';

    join(key, path, "upstream");
    if (transparent && upstream->len > 0)
        return fail(ps, line, key,
                    "not with transparent: true as an address (the original destination is "
                    "used: want original, the default, or loopback)");
    if (!transparent && word)
        return fail(ps, line, key,
                    "%s only with transparent: true (a fixed upstream is an address, IP:PORT)",
                    upstream->text);
    if (!transparent && upstream->len == 0)
        return fail(ps, line, key, "missing (required unless transparent: true)");
    return 0;
}

/* "10.0.0.0/8", "10.1.2.3" (a /32), "fd00::/8", "::1". Host bits must be zero. */
static int parse_cidr(const char *v, struct tg_mesh_dest *d, char *why)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(v, '/');
    size_t hlen = slash ? (size_t)(slash - v) : strlen(v);
    unsigned char *bytes;
    unsigned max, prefix;
    uint64_t p;

    if (hlen == 0 || hlen >= sizeof(host))
        return tg_err_set(why, TG_EINVAL, "\"%.40s\" is not an address or CIDR", v);
    memcpy(host, v, hlen);
    host[hlen] = '\0';
    memset(&d->net, 0, sizeof(d->net));
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&d->net)->sin_addr) == 1) {
        d->net.ss_family = AF_INET;
        bytes = (unsigned char *)&((struct sockaddr_in *)&d->net)->sin_addr;
        max = 32;
    } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&d->net)->sin6_addr) == 1) {
        d->net.ss_family = AF_INET6;
        bytes = (unsigned char *)&((struct sockaddr_in6 *)&d->net)->sin6_addr;
        max = 128;
    } else {
        return tg_err_set(why, TG_EINVAL, "\"%.40s\" is not an address or CIDR", v);
    }
    prefix = max;
    if (slash != NULL) {
        if (!parse_u64(slash + 1, strlen(slash + 1), &p) || p > max)
            return tg_err_set(why, TG_EINVAL, "\"%.40s\": prefix length must be 0..%u", v, max);
        prefix = (unsigned)p;
    }
    for (unsigned bit = prefix; bit < max; bit++)
        if (bytes[bit / 8] & (0x80 >> (bit % 8)))
            return tg_err_set(why, TG_EINVAL, "\"%.40s\" has host bits set beyond /%u", v, prefix);
    d->prefix = prefix;
    snprintf(d->text, sizeof(d->text), "%s", v);
    return 0;
}

int tg_cidr_parse(const char *v, struct tg_mesh_dest *d, char *err)
{
    return parse_cidr(v, d, err);
}

/* inbound: or outbound:, a list of mappings. Each listener is counted in the config as soon
 * as it is allocated, so tg_config_unref() frees a half-read one. */
static int parse_listeners(struct parse *ps, const char *path, bool inbound)
{
    struct tg_config *c = ps->c;
    size_t *n = inbound ? &c->n_inbound : &c->n_outbound;
    size_t size = inbound ? sizeof(*c->inbound) : sizeof(*c->outbound);
    char *arr = NULL; /* c->inbound or c->outbound; this is the only key that fills it */
    char item[KEYPATH];
    size_t cap = 0;
    int rc;

    if ((rc = next(ps, path)) < 0)
        return rc;
    if (ps->ev.type != YAML_SEQUENCE_START_EVENT)
        return wrong_type(ps, path, "a list of listeners");
    for (;;) {
        size_t item_line;
        char **name;
        char *listen_text;

        if ((rc = next(ps, path)) < 0)
            return rc;
        if (ps->ev.type == YAML_SEQUENCE_END_EVENT)
            break;
        keypath(item, "%s[%zu]", path, *n);
        if (ps->ev.type != YAML_MAPPING_START_EVENT)
            return wrong_type(ps, item, "a mapping (listen:, upstream:, ...)");
        if ((rc = grow(ps, path, (void **)&arr, *n, &cap, size, "listeners")) < 0)
            return rc;
        if (inbound)
            c->inbound = (struct tg_inbound_cfg *)arr;
        else
            c->outbound = (struct tg_outbound_cfg *)arr;
        memset(arr + *n * size, 0, size);
        if (inbound)
            ((struct tg_inbound_cfg *)(arr + *n * size))->http_cfg = (struct tg_http_cfg){
                .xfcc = true,
                .max_head = 64 << 10,
                .max_line = 16 << 10,
                .max_fields = 100,
            };
        (*n)++;
        item_line = ps->key_line = line_of(ps);
        if ((rc = walk_map(ps, item, inbound ? inbound_fields : outbound_fields,
                           arr + (*n - 1) * size)) < 0)
            return rc;
        if (inbound) {
            struct tg_inbound_cfg *l = &c->inbound[*n - 1];

            if ((rc = check_upstream(ps, item_line, item, l->transparent, &l->upstream)) < 0)
                return rc;
            if (l->transparent) { /* "original" is the default: the same as no upstream */
                l->upstream_loopback = strcmp(l->upstream.text, "loopback") == 0;
                if (!l->upstream_loopback)
                    l->upstream.text[0] = '\0';
            }
            if (l->allow_unauth && l->allow.n == 0) {
                char key[KEYPATH];

                return fail(ps, item_line, join(key, item, "allow_unauthenticated"),
                            "only with an allow list (without one the listener refuses no "
                            "plain-text caller; the authorization rules decide)");
            }
            name = &c->inbound[*n - 1].name;
            listen_text = c->inbound[*n - 1].listen.text;
            if (l->http_given && !l->http && !l->transparent) {
                char key[KEYPATH];

                return fail(ps, item_line, join(key, item, "http"),
                            "only with protocol: http or transparent: true");
            }
        } else {
            const struct tg_outbound_cfg *l = &c->outbound[*n - 1];
            char key[KEYPATH];

            if ((rc = check_upstream(ps, item_line, item, l->transparent, &l->upstream)) < 0)
                return rc;
            if (!l->transparent && l->expect.n == 0)
                return fail(ps, item_line, join(key, item, "expect"),
                            "missing (required unless transparent: true)");
            if (l->transparent && l->expect.n > 0)
                return fail(ps, item_line, join(key, item, "expect"),
                            "not with transparent: true (mesh.destinations says who serves "
                            "each address)");
            name = &c->outbound[*n - 1].name;
            listen_text = c->outbound[*n - 1].listen.text;
        }
        if (*name == NULL) {
            size_t len = strlen(listen_text) + 4;

            if ((*name = malloc(len + 1)) == NULL)
                return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
            snprintf(*name, len + 1, "%s-%s", inbound ? "in" : "out", listen_text);
            if ((rc = check_name(ps, item_line, item, name)) < 0)
                return rc;
        }
    }
    return 0;
}

/* One value of the kind f says, into obj + f->off; the current event is its key. */
static int parse_value(struct parse *ps, const char *path, const struct field *f, void *obj)
{
    void *dst = (char *)obj + f->off;
    char shown[SHOW];
    char why[TG_ERRLEN];
    const char *v = NULL;
    uint64_t u;
    int rc;

    switch (f->kind) {
    case K_MAP:
        if ((rc = next(ps, path)) < 0)
            return rc;
        if (ps->ev.type != YAML_MAPPING_START_EVENT)
            return wrong_type(ps, path, "a mapping");
        return walk_map(ps, path, f->sub, (char *)obj + f->off); /* off 0: the same object */
    case K_HTTP:
        ((struct tg_inbound_cfg *)obj)->http_given = true;
        if ((rc = next(ps, path)) < 0)
            return rc;
        if (ps->ev.type != YAML_MAPPING_START_EVENT)
            return wrong_type(ps, path, "a mapping");
        return walk_map(ps, path, f->sub, dst);
    case K_INBOUND:
    case K_OUTBOUND:
        return parse_listeners(ps, path, f->kind == K_INBOUND);
    case K_DESTS:
        return parse_map_list(ps, path, (void **)&ps->c->dests, &ps->c->n_dests,
                              sizeof(*ps->c->dests), dest_fields, "destinations",
                              "a mapping (address:, port:, expect:)", NULL);
    case K_RULES:
        return parse_map_list(ps, path, (void **)&ps->c->rules, &ps->c->n_rules,
                              sizeof(*ps->c->rules), rule_fields, "rules",
                              "a mapping (name:, action:, principals:, ...)", NULL);
    case K_STRS:
        return parse_strlist(ps, path, f, dst);
    case K_PATHS:
        return parse_paths(ps, path, dst);
    case K_LIMITS:
        return parse_map_list(ps, path, (void **)&ps->c->limits, &ps->c->n_limits,
                              sizeof(*ps->c->limits), override_fields, "limits",
                              "a mapping (principal:, connections_per_second:, ...)", check_limit);
    case K_PORTS:
        return parse_ports(ps, path, dst);
    case K_LABELS:
        return parse_labels(ps, path, dst);
    case K_IDS:
        return parse_strlist(ps, path, f, dst);
    case K_DOMAINS:
        return parse_federation(ps, path);
    case K_NAME:
        return parse_name(ps, path, dst);
    case K_SNI:
        return parse_sni(ps, path, dst);
    case K_PATH:
        return parse_path(ps, path, dst);
    default:
        break;
    }
    /* the rest are single values */
    if ((rc = scalar(ps, path, &v)) < 0)
        return rc;
    switch (f->kind) {
    case K_INUP:
        if (strcmp(v, "original") == 0 || strcmp(v, "loopback") == 0) {
            struct tg_addr *a = dst;

            memset(a, 0, sizeof(*a));
            snprintf(a->text, sizeof(a->text), "%s", v);
            return 0;
        }
        if (tg_addr_parse(v, false, dst, why) < 0)
            return fail(ps, line_of(ps), path,
                        "%s; or, with transparent: true, original or loopback", why);
        return 0;
    case K_ADDR:
    case K_LISTEN: {
        struct tg_addr a;

        if (tg_addr_parse(v, false, &a, why) < 0)
            return fail(ps, line_of(ps), path, "%s", why);
        if (f->kind == K_LISTEN && (rc = check_listen(ps, path, &a)) < 0)
            return rc;
        *(struct tg_addr *)dst = a;
        return 0;
    }
    case K_HOSTPORT:
        if (parse_hostport(v, (struct tg_addr *)dst, why) < 0)
            return fail(ps, line_of(ps), path, "%s", why);
        return 0;
    case K_UINT:
        if (quoted(ps))
            return fail(ps, line_of(ps), path, "want a number, not a quoted string");
        if (!parse_u64(v, strlen(v), &u))
            return fail(ps, line_of(ps), path, "%s is not a whole number (want %llu..%llu)",
                        show(shown, v), f->min, f->max);
        if (u < f->min || u > f->max)
            return fail(ps, line_of(ps), path, "%s is out of range (want %llu..%llu)", v, f->min,
                        f->max);
        *(unsigned *)dst = (unsigned)u;
        return 0;
    case K_BOOL:
        if (quoted(ps))
            return fail(ps, line_of(ps), path, "want true or false, not a quoted string");
        if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
            *(bool *)dst = true;
        else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
            *(bool *)dst = false;
        else
            return fail(ps, line_of(ps), path, "%s is not true or false", show(shown, v));
        return 0;
    case K_LEVEL: {
        static const char *const names[] = {"debug", "info", "warn", "error"};
        static const enum tg_log_level levels[] = {TG_LOG_DEBUG, TG_LOG_INFO, TG_LOG_WARN,
                                                   TG_LOG_ERROR};

        for (size_t i = 0; i < TG_NELEM(names); i++) {
            if (strcmp(v, names[i]) == 0) {
                *(enum tg_log_level *)dst = levels[i];
                return 0;
            }
        }
        return fail(ps, line_of(ps), path,
                    "%s is not a log level (want debug, info, warn or error)", show(shown, v));
    }
    case K_SIZE: {
        static const char *const suffix[] = {"", "KiB", "MiB"};
        static const uint64_t mult[] = {1, 1 << 10, 1 << 20};

        if (!parse_scaled(v, suffix, mult, TG_NELEM(suffix), &u))
            return fail(ps, line_of(ps), path,
                        "%s is not a size (want bytes, or a number with KiB or MiB)",
                        show(shown, v));
        if (f->max == 16 << 20 && (u < f->min || u > f->max))
            return fail(ps, line_of(ps), path, "%s is out of range (want 4KiB..16MiB)",
                        show(shown, v));
        if (u < f->min || u > f->max)
            return fail(ps, line_of(ps), path, "%s is out of range (want %llu..%llu bytes)",
                        show(shown, v), f->min, f->max);
        *(size_t *)dst = (size_t)u;
        return 0;
    }
    case K_DURATION:
        if (tg_duration_parse(v, &u, why) < 0)
            return fail(ps, line_of(ps), path, "%s", why);
        if (u == 0)
            return fail(ps, line_of(ps), path, "must be more than 0");
        *(uint64_t *)dst = u;
        return 0;
    case K_MODE:
        if (strcmp(v, "strict") == 0 || strcmp(v, "permissive") == 0) {
            *(enum tg_inbound_mode *)dst =
                strcmp(v, "strict") == 0 ? TG_MODE_STRICT : TG_MODE_PERMISSIVE;
            return 0;
        }
        return fail(ps, line_of(ps), path, "%s is not a mode (want strict or permissive)",
                    show(shown, v));
    case K_OUTSIDE:
        if (strcmp(v, "passthrough") == 0 || strcmp(v, "refuse") == 0) {
            *(bool *)dst = strcmp(v, "refuse") == 0;
            return 0;
        }
        return fail(ps, line_of(ps), path, "%s is not passthrough or refuse", show(shown, v));
    case K_STR:
        if (v[0] == '\0')
            return fail(ps, line_of(ps), path, "is empty");
        if ((*(char **)dst = strdup(v)) == NULL)
            return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
        return 0;
    case K_KEYBY:
        if (strcmp(v, "id") == 0 || strcmp(v, "fingerprint") == 0) {
            *(bool *)dst = strcmp(v, "fingerprint") == 0;
            return 0;
        }
        return fail(ps, line_of(ps), path, "%s is not id or fingerprint", show(shown, v));
    case K_ACTION:
    case K_DEFAULT:
        if (strcasecmp(v, "allow") == 0 || strcasecmp(v, "deny") == 0) {
            *(bool *)dst = strcasecmp(v, "deny") == 0;
            return 0;
        }
        return fail(ps, line_of(ps), path, "%s is not allow or deny", show(shown, v));
    case K_CIDR:
        if (parse_cidr(v, dst, why) < 0)
            return fail(ps, line_of(ps), path, "%s", why);
        return 0;
    case K_FRACTION: {
        char *end;
        double d;

        errno = 0;
        d = strtod(v, &end);
        if (quoted(ps) || v[0] == '\0' || *end != '\0' || errno != 0 || !(d > 0.0 && d < 1.0))
            return fail(ps, line_of(ps), path,
                        "%s is not a fraction (want a number between 0 and 1, e.g. 0.5)",
                        show(shown, v));
        *(double *)dst = d;
        return 0;
    }
    case K_PROTOCOL:
        if (strcmp(v, "tcp") == 0 || strcmp(v, "http") == 0) {
            *(bool *)dst = strcmp(v, "http") == 0;
            return 0;
        }
        return fail(ps, line_of(ps), path, "%s is not a protocol (want tcp or http)",
                    show(shown, v));
    case K_PORT:
        if (quoted(ps) || !parse_u64(v, strlen(v), &u) || u < 1 || u > 65535)
            return fail(ps, line_of(ps), path, "%s is not a port (want 1..65535)", show(shown, v));
        *(uint16_t *)dst = (uint16_t)u;
        return 0;
    case K_TLSVER:
        if (strcmp(v, "1.3") == 0 || strcmp(v, "1.2") == 0) {
            *(bool *)dst = strcmp(v, "1.2") == 0;
            return 0;
        }
        if (strcmp(v, "1.0") == 0 || strcmp(v, "1.1") == 0)
            return fail(ps, line_of(ps), path, "TLS %s is not supported (want \"1.2\" or \"1.3\")",
                        v);
        return fail(ps, line_of(ps), path, "%s is not a TLS version (want \"1.2\" or \"1.3\")",
                    show(shown, v));
    default:
        return fail(ps, line_of(ps), path, "internal error: no parser for this key");
    }
}

/* Reads the keys of a mapping whose MAPPING_START is the current event, up to its end. */
static int walk_map(struct parse *ps, const char *path, const struct field *fields, void *obj)
{
    size_t seen[MAX_FIELDS] = {0}; /* line of each key seen, 0 when not yet */
    size_t map_line = ps->key_line;
    char child[KEYPATH];
    const struct field *f;
    int rc;

    for (;;) {
        const char *key;
        size_t len, line;

        if ((rc = next(ps, path)) < 0)
            return rc;
        if (ps->ev.type == YAML_MAPPING_END_EVENT)
            break;
        line = line_of(ps);
        if (ps->ev.type != YAML_SCALAR_EVENT)
            return fail(ps, line, path, "a key must be a name, not a %s",
                        ps->ev.type == YAML_MAPPING_START_EVENT ? "mapping" : "list");
        key = (const char *)ps->ev.data.scalar.value;
        len = ps->ev.data.scalar.length;
        for (f = fields; f->key != NULL; f++) {
            if (strlen(f->key) == len && memcmp(f->key, key, len) == 0)
                break;
        }
        if (f->key == NULL) {
            char shown[SHOW];
            bool plain = len > 0 && strlen(key) == len &&
                         strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789_-") == len &&
                         len < SHOW;

            return fail(ps, line, join(child, path, plain ? key : show(shown, key)), "unknown key");
        }
        if (seen[f - fields] != 0)
            return fail(ps, line, join(child, path, f->key), "duplicate key (first at line %zu)",
                        seen[f - fields]);
        seen[f - fields] = line;
        ps->key_line = line;
        if (fields == top_fields && strcmp(f->key, "control_plane") == 0)
            ps->cp_line = line;
        if (fields == top_fields && strcmp(f->key, "identity") == 0)
            ps->identity_line = line;
        if ((rc = parse_value(ps, join(child, path, f->key), f, obj)) < 0)
            return rc;
    }
    for (f = fields; f->key != NULL; f++) {
        if (f->required && seen[f - fields] == 0)
            return fail(ps, map_line, join(child, path, f->key), "missing (required)");
        /* decided once the whole file is read: control_plane may come later */
        if (f->static_only && seen[f - fields] == 0 && ps->static_path[0] == '\0') {
            ps->static_line = map_line;
            snprintf(ps->static_path, sizeof(ps->static_path), "%s", join(child, path, f->key));
        }
    }
    return 0;
}

/* identity.workload_api and identity.spiffe_id: the endpoint resolved to its socket (with
 * "default", from SPIFFE_ENDPOINT_SOCKET, as the SPIFFE Workload Endpoint spec says), the ID
 * checked; nothing else of identity but max_chain_depth goes with it. A control_plane beside
 * it authenticates with its token and pushes everything but the identity. */
static int check_workload_api(struct parse *ps)
{
    struct tg_config *c = ps->c;
    static const char *const names[] = {"identity.cert", "identity.key", "identity.trust_bundle",
                                        "identity.crl", "identity.trust_domains"};
    const bool set[] = {c->cert_path != NULL, c->key_path != NULL, c->bundle_path != NULL,
                        c->crl_paths.n > 0, c->trust_domains.n > 0};
    const char *uri = c->wl.endpoint, *from = "identity.workload_api";
    char path[TG_SPIFFE_SOCKET_MAX + 1], why[TG_ERRLEN];
    struct tg_spiffe_id id;

    if (c->wl.spiffe_id != NULL && tg_spiffe_parse(c->wl.spiffe_id, &id, why) < 0)
        return fail(ps, ps->identity_line, "identity.spiffe_id", "%s", why);
    if (c->wl.spiffe_id != NULL && c->wl.endpoint == NULL)
        return fail(ps, ps->identity_line, "identity.spiffe_id",
                    "only with identity.workload_api (it picks one of its SVIDs)");
    if (c->wl.endpoint == NULL)
        return 0;
    c->wl.enabled = true; /* with control_plane too: it pushes policy, limits, mesh table */
    for (size_t i = 0; i < TG_NELEM(names); i++)
        if (set[i])
            return fail(ps, ps->identity_line, names[i],
                        "not used with identity.workload_api (the SVID, its bundle and the "
                        "federated bundles come from the Workload API; remove it)");
    if (strcmp(uri, "default") == 0) {
        uri = getenv("SPIFFE_ENDPOINT_SOCKET");
        from = "SPIFFE_ENDPOINT_SOCKET";
        if (uri == NULL || uri[0] == '\0')
            return fail(ps, ps->identity_line, "identity.workload_api",
                        "default: SPIFFE_ENDPOINT_SOCKET is not set (set it to unix:///PATH, "
                        "or write the socket's address here)");
    }
    if (tg_spiffe_endpoint_socket(uri, from[0] == 'i', path, sizeof(path), why) < 0)
        return fail(ps, ps->identity_line, from, "%s", why);
    if ((c->wl.socket = strdup(path)) == NULL)
        return tg_err_set(ps->err, TG_ENOMEM, "%s: out of memory", ps->name);
    return 0;
}

/* Static files, the control plane or the Workload API: one of them. */
static int check_identity_source(struct parse *ps)
{
    struct tg_config *c = ps->c;
    static const char *const names[] = {"identity.cert", "identity.key", "identity.trust_bundle",
                                        "identity.crl"};
    const bool set[] = {c->cert_path != NULL, c->key_path != NULL, c->bundle_path != NULL,
                        c->crl_paths.n > 0};
    int rc;

    c->cp.enabled = ps->cp_line > 0;
    if ((rc = check_workload_api(ps)) < 0 || c->wl.enabled)
        return rc;
    if (!c->cp.enabled) {
        if (ps->static_path[0] != '\0')
            return fail(ps, ps->static_line, ps->static_path, "missing (required)");
        return 0;
    }
    for (size_t i = 0; i < TG_NELEM(names); i++)
        if (set[i])
            return fail(ps, ps->identity_line, names[i],
                        "not used with control_plane (the identity comes from the control "
                        "plane; remove it)");
    if (c->trust_domains.n > 0)
        return fail(ps, ps->identity_line, "identity.trust_domains",
                    "not used with control_plane (its trust bundle names each federated domain "
                    "with its roots: extra_roots in tollgate-cp)");
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
static int check_http_rules(struct parse *ps)
{
    const struct tg_config *c = ps->c;
    char key[KEYPATH], why[TG_ERRLEN];

    for (size_t i = 0; i < c->n_rules; i++) {
        const struct tg_rule_cfg *r = &c->rules[i];

        if (r->methods.n + r->paths.n + r->hosts.n == 0)
            continue;
        keypath(key, "authorization.rules[%zu]", i);
        if (tg_config_http_rule_check(c, c->dests, c->n_dests, r->name, r->ports.v, r->ports.n,
                                      r->not_ports.v, r->not_ports.n, why) < 0)
            return fail(ps, 0, key, "%s", why);
    }
    return 0;
}

static int parse_stream(struct parse *ps)
{
    int rc;

    if ((rc = next(ps, NULL)) < 0) /* STREAM_START */
        return rc;
    if ((rc = next(ps, NULL)) < 0)
        return rc;
    if (ps->ev.type == YAML_STREAM_END_EVENT)
        return fail(ps, 0, NULL, "file is empty (want a mapping of settings)");
    if ((rc = next(ps, NULL)) < 0) /* after DOCUMENT_START */
        return rc;
    if (ps->ev.type != YAML_MAPPING_START_EVENT)
        return wrong_type(ps, NULL, "a mapping of settings at the top");
    ps->key_line = 0; /* a missing top-level key has no line to name */
    if ((rc = walk_map(ps, "", top_fields, ps->c)) < 0)
        return rc;
    if ((rc = next(ps, NULL)) < 0) /* DOCUMENT_END */
        return rc;
    if ((rc = next(ps, NULL)) < 0)
        return rc;
    if (ps->ev.type != YAML_STREAM_END_EVENT)
        return fail(ps, line_of(ps), NULL, "a second YAML document (want only one)");
    if (ps->c->n_inbound + ps->c->n_outbound == 0)
        return fail(ps, 0, "inbound, outbound", "no listeners (want at least one)");
    if ((rc = check_http_rules(ps)) < 0)
        return rc;
    return check_identity_source(ps);
}

static void parse_cleanup(struct parse *ps)
{
    if (ps->have_ev)
        yaml_event_delete(&ps->ev);
    ps->have_ev = false;
    if (ps->yp_ready)
        yaml_parser_delete(&ps->yp);
    ps->yp_ready = false;
}

static int parse_text(const char *text, size_t len, const char *name, const char *base,
                      struct tg_config **out, char *err)
{
    struct parse ps = {.name = name, .base = base, .err = err};
    struct tg_config *c = calloc(1, sizeof(*c));
    int rc = TG_ENOMEM;

    if (c == NULL)
        return tg_err_set(err, rc, "%s: out of memory", name);
    ps.c = c;
    atomic_init(&c->refs, 1);
    c->access_log = true;
    c->log_level = TG_LOG_INFO;
    c->buffer_size = 64 << 10;
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
    if (len > MAX_FILE) {
        rc = fail(&ps, 0, NULL, "larger than %d bytes", MAX_FILE);
        goto fail;
    }
    if (!yaml_parser_initialize(&ps.yp)) {
        tg_err_set(err, rc, "%s: out of memory", name);
        goto fail;
    }
    ps.yp_ready = true;
    yaml_parser_set_input_string(&ps.yp, (const unsigned char *)text, len);
    if ((rc = parse_stream(&ps)) < 0)
        goto fail;
    parse_cleanup(&ps);
    *out = c;
    return 0;
fail:
    parse_cleanup(&ps);
    tg_config_unref(c);
    return rc;
}

/* The directory relative paths in name are resolved against: "a/b.yaml" -> "a", "/b.yaml" ->
 * "" (paths become "/..."), "b.yaml" -> NULL (paths stay as written). When absolute, a
 * relative name is first put under the working directory. Not realpath(): a symbolic link in the
 * path (a Kubernetes ConfigMap mount swaps one on every update) must stay a link so that a reload
 * sees the new files. */
static int make_base(const char *name, bool absolute, char **base)
{
    const char *slash = strrchr(name, '/');
    size_t dlen = slash == NULL ? 0 : (size_t)(slash - name);
    char cwd[PATH_MAX];
    size_t clen = 0;

    *base = NULL;
    if (absolute && name[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
        clen = strlen(cwd);
    if (slash == NULL && clen == 0)
        return 0;
    if ((*base = malloc(clen + 1 + dlen + 1)) == NULL)
        return TG_ENOMEM;
    memcpy(*base, cwd, clen);
    if (clen > 0 && dlen > 0)
        (*base)[clen++] = '/';
    memcpy(*base + clen, name, dlen);
    (*base)[clen + dlen] = '\0';
    return 0;
}

int tg_config_parse(const char *text, size_t len, const char *name, struct tg_config **out,
                    char *err)
{
    char *base = NULL;
    int rc;

    if (make_base(name, false, &base) < 0)
        return tg_err_set(err, TG_ENOMEM, "%s: out of memory", name);
    rc = parse_text(text, len, name, base, out, err);
    free(base);
    return rc;
}

int tg_config_load(const char *path, struct tg_config **out, char *err)
{
    char *text = NULL, *base = NULL;
    size_t len = 0;
    int rc;

    if ((rc = tg_file_read(NULL, path, MAX_FILE, 0, &text, &len, err)) < 0)
        return rc;
    /* relative paths in the file are made absolute now: the result must not depend on the
     * working directory at the time the TLS layer opens (or reloads) them */
    if ((rc = make_base(path, true, &base)) < 0)
        tg_err_set(err, rc, "%s: out of memory", path);
    else
        rc = parse_text(text, len, path, base, out, err);
    free(text);
    free(base);
    return rc;
}

static void labels_free(struct tg_labels *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->keys[i]);
        free(l->values[i]);
    }
    free(l->keys);
    free(l->values);
}

static void strlist_free(struct tg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

struct tg_config *tg_config_ref(struct tg_config *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void tg_config_unref(struct tg_config *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < c->n_inbound; i++) {
        free(c->inbound[i].name);
        strlist_free(&c->inbound[i].allow);
    }
    for (size_t i = 0; i < c->n_outbound; i++) {
        free(c->outbound[i].name);
        free(c->outbound[i].sni);
        strlist_free(&c->outbound[i].expect);
    }
    for (size_t i = 0; i < c->n_dests; i++)
        strlist_free(&c->dests[i].expect);
    for (size_t i = 0; i < c->n_rules; i++) {
        struct tg_rule_cfg *r = &c->rules[i];

        free(r->name);
        free(r->scope_ns);
        labels_free(&r->scope_labels);
        strlist_free(&r->principals);
        strlist_free(&r->not_principals);
        strlist_free(&r->namespaces);
        strlist_free(&r->not_namespaces);
        strlist_free(&r->trust_domains);
        strlist_free(&r->not_trust_domains);
        strlist_free(&r->fingerprints);
        strlist_free(&r->not_fingerprints);
        strlist_free(&r->serials);
        strlist_free(&r->not_serials);
        strlist_free(&r->methods);
        strlist_free(&r->paths);
        strlist_free(&r->hosts);
        free(r->ports.v);
        free(r->not_ports.v);
    }
    free(c->rules);
    for (size_t i = 0; i < c->n_limits; i++)
        free(c->limits[i].principal);
    free(c->limits);
    free(c->workload_ns);
    labels_free(&c->workload_labels);
    strlist_free(&c->revoked_serials);
    strlist_free(&c->revoked_fingerprints);
    free(c->dests);
    free(c->inbound);
    free(c->outbound);
    strlist_free(&c->trust_domains);
    strlist_free(&c->trust_domain_bundles);
    strlist_free(&c->crl_paths);
    strlist_free(&c->cipher_suites);
    free(c->cert_path);
    free(c->wl.endpoint);
    free(c->wl.socket);
    free(c->wl.spiffe_id);
    free(c->key_path);
    free(c->bundle_path);
    free(c->cp.ca_path);
    free(c->cp.token_path);
    strlist_free(&c->cp.server_ids);
    free(c->cp.node_id);
    free(c->cp.namespace_);
    free(c->cp.service_account);
    labels_free(&c->cp.labels);
    free(c->path);
    free(c);
}

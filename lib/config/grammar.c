/* The grammars of values, each written once and used by every file (cfgload.h, config.h):
 * durations, sizes, addresses, HOST:PORT, CIDRs, trust domain names, workload IDs. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "tollgate/cfgload.h"
#include "tollgate/spiffe.h"

#define SHOW 64 /* a value quoted in a message */

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

/* parse_scaled, or TG_EINVAL with "VALUE is not WHAT". */
static int parse_units(const char *s, const char *const *suffix, const uint64_t *mult,
                       size_t nsuffix, uint64_t *out, const char *what, char *err)
{
    char shown[SHOW];

    if (!parse_scaled(s, suffix, mult, nsuffix, out))
        return tg_err_set(err, TG_EINVAL, "%s is not %s", show(shown, s), what);
    return 0;
}

int tg_duration_parse(const char *s, uint64_t *ms, char *err)
{
    static const char *const suffix[] = {"ms", "s", "m", "h", ""};
    static const uint64_t mult[] = {1, 1000, 60 * 1000, 60 * 60 * 1000, 1000};

    return parse_units(s, suffix, mult, TG_NELEM(suffix), ms,
                       "a duration (want e.g. 250ms, 10s, 5m, 1h)", err);
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
int tg_hostport_parse(const char *s, struct tg_addr *out, char *err)
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

int tg_size_parse(const char *s, uint64_t *bytes, char *err)
{
    static const char *const suffix[] = {"", "KiB", "MiB"};
    static const uint64_t mult[] = {1, 1 << 10, 1 << 20};

    return parse_units(s, suffix, mult, TG_NELEM(suffix), bytes,
                       "a size (want bytes, or a number with KiB or MiB)", err);
}

int tg_workload_id_check(const char *s, char *why)
{
    struct tg_spiffe_id id;
    char inner[TG_ERRLEN];
    char shown[SHOW];

    if (tg_spiffe_parse(s, &id, inner) < 0)
        return tg_err_set(why, TG_EINVAL, "%s is not a SPIFFE ID: %s", show(shown, s), inner);
    if (id.path_off == id.len) /* a workload's certificate always has a path */
        return tg_err_set(why, TG_EINVAL,
                          "%s names a trust domain, not a workload (want spiffe://DOMAIN/PATH)",
                          show(shown, s));
    return 0;
}

/* The trust domain rule lives in spiffe.c: "spiffe://NAME" must parse, with no path. */
int tg_trust_domain_check(const char *s, char *why)
{
    struct tg_spiffe_id id;
    char buf[TG_SPIFFE_MAX + 1], inner[TG_ERRLEN];
    char shown[SHOW];
    size_t n = strlen(s);

    if (strncmp(s, "spiffe://", 9) == 0)
        return tg_err_set(why, TG_EINVAL, "%s: want the trust domain name without spiffe://",
                          show(shown, s));
    if (n > 255) /* the SPIFFE spec's limit (TG_TRUST_DOMAIN_MAX) */
        return tg_err_set(why, TG_EINVAL, "%s is longer than 255 bytes (not a trust domain)",
                          show(shown, s));
    memcpy(buf, "spiffe://", 9);
    memcpy(buf + 9, s, n + 1);
    if (n == 0 || tg_spiffe_parse(buf, &id, inner) < 0 || id.path_off != id.len)
        return tg_err_set(why, TG_EINVAL, "%s is not a trust domain name (want [a-z0-9.-_]+)",
                          show(shown, s));
    return 0;
}

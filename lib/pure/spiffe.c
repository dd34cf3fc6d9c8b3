/* SPIFFE ID parsing, strict (SPIFFE-ID.md sections 2.1 to 2.3). Pure: no I/O. Every refusal
 * names the first offending byte so that a log line says what to fix. */
#include "tollgate/spiffe.h"

#include <string.h>
#include <strings.h>

#define SCHEME "spiffe://"
#define SCHEME_LEN (sizeof(SCHEME) - 1)

static bool is_td_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
           ch == '_';
}

static bool is_path_char(unsigned char ch)
{
    return is_td_char(ch) || (ch >= 'A' && ch <= 'Z');
}

/* Explains why ch may not appear in the part named where (at byte off of the ID). The
 * reserved URI characters get their own reasons, as the spec forbids each of them by name. */
static int bad_char(unsigned char ch, size_t off, const char *where, char *err)
{
    if (ch == '\0')
        return tg_err_set(err, TG_ESPIFFE, "NUL byte at byte %zu", off);
    if (ch >= 0x80)
        return tg_err_set(err, TG_ESPIFFE, "non-ASCII byte 0x%02x at byte %zu", ch, off);
    if (ch == '%')
        return tg_err_set(err, TG_ESPIFFE, "percent-encoding not allowed (byte %zu)", off);
    if (ch == '?')
        return tg_err_set(err, TG_ESPIFFE, "query not allowed (byte %zu)", off);
    if (ch == '#')
        return tg_err_set(err, TG_ESPIFFE, "fragment not allowed (byte %zu)", off);
    if (ch >= 'A' && ch <= 'Z')
        return tg_err_set(err, TG_ESPIFFE, "%s must be lowercase (byte %zu)", where, off);
    if (ch < 0x20 || ch == 0x7f)
        return tg_err_set(err, TG_ESPIFFE, "control byte 0x%02x in %s at byte %zu", ch, where, off);
    return tg_err_set(err, TG_ESPIFFE, "'%c' not allowed in %s (byte %zu)", ch, where, off);
}

/* The trust domain runs from the scheme to the first '/' or the end; *td_len gets its length. */
static int check_trust_domain(const char *s, size_t n, size_t *td_len, char *err)
{
    size_t end = SCHEME_LEN;

    while (end < n && s[end] != '/')
        end++;
    if (end == SCHEME_LEN)
        return tg_err_set(err, TG_ESPIFFE, "trust domain is empty");
    /* Name user info before the first bad byte: "spiffe://u:p@td" is user info, not a port,
     * though its first bad byte is the ':'. An '@' after '?' or '#' is not user info. */
    for (size_t i = SCHEME_LEN; i < end && s[i] != '?' && s[i] != '#'; i++) {
        if (s[i] == '@')
            return tg_err_set(err, TG_ESPIFFE, "user info not allowed in trust domain");
    }
    for (size_t i = SCHEME_LEN; i < end; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == ':')
            return tg_err_set(err, TG_ESPIFFE, "port not allowed in trust domain (byte %zu)", i);
        if (!is_td_char(ch))
            return bad_char(ch, i, "trust domain", err);
    }
    *td_len = end - SCHEME_LEN;
    return 0;
}

/* The path s[off..n): empty, or ('/' segment)+ with each segment non-empty, not "." or
 * "..", of [A-Za-z0-9.-_] (spec 2.2). */
static int check_path(const char *s, size_t off, size_t n, char *err)
{
    size_t i = off;

    while (i < n) {
        size_t seg = ++i; /* skip the '/' */

        while (i < n && s[i] != '/') {
            if (!is_path_char((unsigned char)s[i]))
                return bad_char((unsigned char)s[i], i, "path", err);
            i++;
        }
        if (i == seg && i == n)
            return tg_err_set(err, TG_ESPIFFE, "trailing '/' not allowed");
        if (i == seg)
            return tg_err_set(err, TG_ESPIFFE, "empty path segment (\"//\") at byte %zu", seg);
        if (s[seg] == '.' && (i - seg == 1 || (i - seg == 2 && s[seg + 1] == '.')))
            return tg_err_set(err, TG_ESPIFFE, "path segment \"%.*s\" not allowed", (int)(i - seg),
                              s + seg);
    }
    return 0;
}

static int check_scheme(const char *s, size_t n, char *err)
{
    static const char scheme[] = "spiffe:";
    size_t k = sizeof(scheme) - 1;

    if (n >= k && memcmp(s, scheme, k) == 0) {
        if (n < SCHEME_LEN || s[k] != '/' || s[k + 1] != '/')
            return tg_err_set(err, TG_ESPIFFE, "missing \"//\" after \"spiffe:\"");
        return 0;
    }
    if (n >= k && strncasecmp(s, scheme, k) == 0)
        return tg_err_set(err, TG_ESPIFFE, "scheme must be lowercase \"spiffe\"");
    return tg_err_set(err, TG_ESPIFFE, "scheme must be \"spiffe://\"");
}

int tg_spiffe_parse_n(const char *s, size_t n, struct tg_spiffe_id *out, char *err)
{
    size_t td_len = 0;
    int rc;

    if (n > TG_SPIFFE_MAX)
        return tg_err_set(err, TG_ESPIFFE, "longer than %d bytes", TG_SPIFFE_MAX);
    if ((rc = check_scheme(s, n, err)) < 0)
        return rc;
    if ((rc = check_trust_domain(s, n, &td_len, err)) < 0)
        return rc;
    if ((rc = check_path(s, SCHEME_LEN + td_len, n, err)) < 0)
        return rc;
    memcpy(out->id, s, n);
    out->id[n] = '\0';
    out->len = n;
    out->td_len = td_len;
    out->path_off = SCHEME_LEN + td_len;
    return 0;
}

int tg_spiffe_parse(const char *s, struct tg_spiffe_id *out, char *err)
{
    /* strnlen: a longer string is refused without reading all of it */
    return tg_spiffe_parse_n(s, strnlen(s, TG_SPIFFE_MAX + 1), out, err);
}

void tg_spiffe_trust_domain(const struct tg_spiffe_id *id, char *dst, size_t cap)
{
    size_t n = id->td_len;

    if (cap == 0)
        return;
    if (n > cap - 1)
        n = cap - 1;
    memcpy(dst, id->id + SCHEME_LEN, n);
    dst[n] = '\0';
}

bool tg_spiffe_in_domain(const struct tg_spiffe_id *id, const char *td)
{
    return strlen(td) == id->td_len && memcmp(id->id + SCHEME_LEN, td, id->td_len) == 0;
}

int tg_spiffe_endpoint_socket(const char *uri, bool bare_path, char *path, size_t cap, char *err)
{
    const char *p;
    size_t n;

    if (strncmp(uri, "unix:", 5) == 0) {
        p = uri + 5;
        if (strncmp(p, "//", 2) == 0) {
            if (p[2] != '/')
                return tg_err_set(err, TG_EINVAL,
                                  "\"%.80s\": a unix: address names no host (want unix:///PATH)",
                                  uri);
            p += 2;
        }
    } else if (strncmp(uri, "tcp:", 4) == 0) {
        return tg_err_set(err, TG_EINVAL,
                          "\"%.80s\": tcp endpoints are not supported (want the agent's Unix "
                          "socket: unix:///PATH)",
                          uri);
    } else if (bare_path && uri[0] == '/') {
        p = uri;
    } else {
        return tg_err_set(err, TG_EINVAL, "\"%.80s\": not a unix:///PATH address", uri);
    }
    if (p[0] != '/')
        return tg_err_set(err, TG_EINVAL, "\"%.80s\": the socket path must be absolute", uri);
    if (strpbrk(p, "?#") != NULL)
        return tg_err_set(err, TG_EINVAL, "\"%.80s\": a query or fragment is not allowed", uri);
    n = strlen(p);
    if (n < 2)
        return tg_err_set(err, TG_EINVAL, "\"%.80s\": no socket path", uri);
    if (n > TG_SPIFFE_SOCKET_MAX || n >= cap)
        return tg_err_set(err, TG_EINVAL, "\"%.80s\": socket path longer than %d bytes", uri,
                          TG_SPIFFE_SOCKET_MAX);
    memcpy(path, p, n + 1);
    return 0;
}

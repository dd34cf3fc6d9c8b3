/* Admin request heads and who may send them (adminreq.h). */
#include "tollgate/adminreq.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* ---- parsing ---- */

/* tchar of RFC 9110 section 5.6.2. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Cuts the line at p (n bytes); CRLF or a bare LF ends it (RFC 9112 section 2.2), a CR
 * anywhere else is an error. Returns the line length without its end, sets *next past the
 * end, or returns -1. */
static long take_line(const char *p, size_t n, size_t *next)
{
    const char *lf = memchr(p, '\n', n);
    size_t len;

    if (lf == NULL)
        return -1;
    len = (size_t)(lf - p);
    *next = len + 1;
    if (len > 0 && p[len - 1] == '\r')
        len--;
    if (memchr(p, '\r', len) != NULL)
        return -1;
    return (long)len;
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

static bool value_is(const char *v, size_t len, const char *want)
{
    return name_is(v, len, want);
}

/* The media type of a Content-Type value: up to ';', without whitespace around it. */
static bool is_form_type(const char *v, size_t len)
{
    static const char *const form[] = {"application/x-www-form-urlencoded", "multipart/form-data",
                                       "text/plain"};
    size_t n = 0;

    while (n < len && v[n] != ';')
        n++;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < TG_NELEM(form); i++)
        if (value_is(v, n, form[i]))
            return true;
    return false;
}

/* A field line `name ":" OWS value OWS` of len bytes; records what access needs. */
static int take_field(const char *line, size_t len, struct tg_adminreq *rq)
{
    size_t i = 0, name_len, v, end;

    /* no whitespace before the colon, and none starting a line (obs-fold) */
    while (i < len && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i >= len || line[i] != ':')
        return -1;
    name_len = i;
    for (i++; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];

        if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
            return -1;
    }
    for (v = name_len + 1; v < len && (line[v] == ' ' || line[v] == '\t'); v++)
        ;
    for (end = len; end > v && (line[end - 1] == ' ' || line[end - 1] == '\t'); end--)
        ;
    if (name_is(line, name_len, "host")) {
        if (rq->host != NULL)
            return -1;
        rq->host = line + v;
        rq->host_len = end - v;
    } else if (name_is(line, name_len, "origin")) {
        rq->origin = true;
    } else if (name_is(line, name_len, "sec-fetch-site")) {
        if (!value_is(line + v, end - v, "same-origin") && !value_is(line + v, end - v, "none"))
            rq->cross_site = true;
    } else if (name_is(line, name_len, "content-type")) {
        if (is_form_type(line + v, end - v))
            rq->form_type = true;
    }
    return 0;
}

int tg_adminreq_parse(const char *p, size_t n, struct tg_adminreq *rq)
{
    size_t i = 0, next, at;
    long len;
    const char *line, *target;
    size_t target_len;

    memset(rq, 0, sizeof(*rq));
    if ((len = take_line(p, n, &next)) < 0)
        return TG_EINVAL;
    line = p;
    while (i < (size_t)len && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i >= (size_t)len || line[i] != ' ')
        return TG_EINVAL;
    rq->method = line;
    rq->method_len = i++;
    target = line + i;
    while (i < (size_t)len && line[i] > 0x20 && line[i] < 0x7f)
        i++;
    target_len = (size_t)(line + i - target);
    if (target_len == 0 || target[0] != '/' || i >= (size_t)len || line[i] != ' ')
        return TG_EINVAL;
    i++;
    if ((size_t)len - i != 8 ||
        (memcmp(line + i, "HTTP/1.1", 8) != 0 && memcmp(line + i, "HTTP/1.0", 8) != 0))
        return TG_EINVAL;
    rq->path = target; /* routing ignores the query */
    while (rq->path_len < target_len && target[rq->path_len] != '?')
        rq->path_len++;
    if (rq->path_len < target_len) {
        rq->query = target + rq->path_len + 1;
        rq->query_len = target_len - rq->path_len - 1;
    }

    for (at = next; at < n; at += next) {
        if ((len = take_line(p + at, n - at, &next)) < 0)
            return TG_EINVAL;
        if (len == 0)
            return at + next == n ? 0 : TG_EINVAL;
        if (take_field(p + at, (size_t)len, rq) < 0)
            return TG_EINVAL;
    }
    return TG_EINVAL;
}

/* ---- access ---- */

bool tg_adminreq_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* localhost, 127.x.y.z or [::1], each with an optional :port. */
static bool host_is_loopback(const char *h, size_t len)
{
    char name[64];
    size_t n = len;
    const char *port = NULL;
    unsigned char bin[16];

    if (len > 0 && h[0] == '[') {
        const char *close = memchr(h, ']', len);

        if (close == NULL || (size_t)(close - h) - 1 >= sizeof(name))
            return false;
        n = (size_t)(close - h) - 1;
        memcpy(name, h + 1, n);
        name[n] = '\0';
        if ((size_t)(close - h) + 1 < len) {
            if (close[1] != ':')
                return false;
            port = close + 2;
        }
        if (inet_pton(AF_INET6, name, bin) != 1 || !IN6_IS_ADDR_LOOPBACK((struct in6_addr *)bin))
            return false;
    } else {
        const char *colon = memchr(h, ':', len);

        if (colon != NULL) {
            n = (size_t)(colon - h);
            port = colon + 1;
        }
        if (n >= sizeof(name))
            return false;
        memcpy(name, h, n);
        name[n] = '\0';
        if (strcasecmp(name, "localhost") != 0 &&
            (inet_pton(AF_INET, name, bin) != 1 || bin[0] != 127))
            return false;
    }
    if (port != NULL) {
        const char *end = h + len;

        if (port == end)
            return false;
        for (; port < end; port++)
            if (*port < '0' || *port > '9')
                return false;
    }
    return true;
}

const char *tg_adminreq_refusal(const struct tg_adminreq *rq, const struct sockaddr *peer)
{
    if (!tg_adminreq_loopback(peer))
        return "not a loopback peer: this path answers 127.0.0.0/8 and ::1 only";
    if (rq->origin)
        return "an Origin header: a browser's request, refused here";
    if (rq->cross_site)
        return "Sec-Fetch-Site is neither same-origin nor none: a browser's cross-site request";
    if (rq->form_type)
        return "a form content type (application/x-www-form-urlencoded, multipart/form-data, "
               "text/plain): what a browser's form sends";
    if (rq->host != NULL && rq->host_len > 0 && !host_is_loopback(rq->host, rq->host_len))
        return "Host is not localhost, 127.x.y.z or [::1]: a DNS-rebinding page's request";
    return NULL;
}

const char *tg_adminreq_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

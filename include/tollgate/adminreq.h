/* Admin request heads and who may send them. Pure: no I/O, no libuv; adminsrv.c reads the
 * bytes and calls these (and so does the fuzzer, tests/fuzz/fuzz_adminreq.c).
 *
 * Parsing (tg_adminreq_parse), RFC 9112: request-line = method SP request-target SP
 * HTTP-version, with an origin-form target ("/path?query") and HTTP/1.1 or HTTP/1.0; then
 * field lines up to the empty line, each `name ":" OWS value OWS`. Lines end in CRLF or a
 * bare LF (section 2.2); a CR anywhere else, whitespace before a colon, a line starting with
 * whitespace (obs-fold), a control character in a value, or a second Host field
 * (section 3.2) make the head malformed. Values are not copied: the result points into the
 * caller's bytes, which must outlive it.
 *
 * Access (tg_adminreq_refusal), for the paths that change state or expose configuration
 * (POST /drain, GET /config_dump): issue 12 item 3. The peer must be loopback, whatever
 * address the endpoint binds, and the request must not be a browser's, because a page on any
 * site can make a browser send a POST to 127.0.0.1 (a form, or fetch() in no-cors mode, needs
 * no preflight), and a DNS-rebinding page can even read the answer. So, in this order:
 *   1. the peer is 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104;
 *   2. no Origin field (browsers send it with every POST and with every cross-origin
 *      request; curl and probes never do);
 *   3. Sec-Fetch-Site, when present, is same-origin or none (none: the user typed the URL);
 *   4. Content-Type, when present, is not one a form or a preflight-free fetch can send:
 *      application/x-www-form-urlencoded, multipart/form-data, text/plain (any parameters,
 *      any case);
 *   5. Host, when present and not empty, names loopback: localhost, an IPv4 literal in
 *      127.0.0.0/8 or [::1], each with an optional :port. A rebinding page's requests carry
 *      its own host name.
 * The first rule broken is the reason, a static string for the 403 body and the log line. */
#ifndef TOLLGATE_ADMINREQ_H
#define TOLLGATE_ADMINREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "tollgate/err.h"

struct tg_adminreq {
    const char *method; /* a token (tchar only) */
    size_t method_len;
    const char *path; /* the target up to '?': visible ASCII only, starts with '/' */
    size_t path_len;
    const char *query; /* after the '?', visible ASCII; NULL: no '?' */
    size_t query_len;
    const char *host; /* the Host value without surrounding whitespace; NULL: none */
    size_t host_len;
    bool origin;     /* an Origin field, whatever its value ("null" included) */
    bool cross_site; /* Sec-Fetch-Site other than same-origin or none */
    bool form_type;  /* a Content-Type of the three above */
};

/* Parses the head in p[0..n), which must end with the empty line (n counts it). Returns 0
 * with *rq set, or TG_EINVAL when malformed (then *rq is unspecified). */
TG_MUST_USE int tg_adminreq_parse(const char *p, size_t n, struct tg_adminreq *rq);

/* Whether sa (AF_INET or AF_INET6; anything else is not) is a loopback address. */
bool tg_adminreq_loopback(const struct sockaddr *sa);

/* NULL when the request from peer may use a local-only path, else why not (static). */
const char *tg_adminreq_refusal(const struct tg_adminreq *rq, const struct sockaddr *peer);

/* The reason phrase of an answer's status line (RFC 9110 section 15): "Not Found". */
const char *tg_adminreq_reason(int status);

#endif

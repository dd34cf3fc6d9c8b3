/* Captured connections: the original destination the app asked for (iptables REDIRECT keeps
 * it for SO_ORIGINAL_DST), and the first-bytes test that tells mesh mTLS from anything else
 * on a PERMISSIVE inbound port. No libuv here. */
#ifndef TOLLGATE_INTERCEPT_H
#define TOLLGATE_INTERCEPT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tollgate/err.h"

/* The source address of the sidecar's own connection to the app at a captured connection's
 * original destination (the pod's address; inbound upstream: original). The capture rules
 * exempt it on lo, or that connection would be captured again as inbound (a loop); as
 * Istio's inbound passthrough does with the same addresses. IPv4 has all of 127/8 on lo;
 * ::6 is not on lo until init-iptables adds it (ip -6 addr add ::6/128 dev lo). */
#define TG_INBOUND_SOURCE4 "127.0.0.6"
#define TG_INBOUND_SOURCE6 "::6"

/* The destination before REDIRECT (IPv4 SO_ORIGINAL_DST or IPv6 IP6T_SO_ORIGINAL_DST).
 * 0, or a negative errno (-ENOENT: the connection was not redirected). */
TG_MUST_USE int tg_intercept_original_dst(int fd, struct sockaddr_storage *out);

enum tg_peek {
    TG_PEEK_MORE,  /* a TLS record has started: need more bytes to decide */
    TG_PEEK_MESH,  /* a TLS ClientHello offering ALPN "tollgate": mesh mTLS */
    TG_PEEK_OTHER, /* anything else: plain text, or TLS that is not ours */
};

/* Classifies the first n bytes a client sent. Reads only within p[0..n). A ClientHello
 * spread over more than one record, or longer than 16 KiB, is TG_PEEK_OTHER. */
enum tg_peek tg_intercept_peek(const uint8_t *p, size_t n);

#endif

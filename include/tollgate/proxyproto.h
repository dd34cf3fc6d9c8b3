/* PROXY protocol version 2 (haproxy's proxy-protocol.txt, section 2.2): the header the
 * sidecar may send to the app ahead of a TCP stream, telling it who called. Pure: no I/O,
 * no libuv, no wolfSSL.
 *
 * Encoded: the PROXY command (LOCAL for health checks), TCP over IPv4 or IPv6 (a mix of the
 * two is sent as IPv6 with the IPv4 address mapped, ::ffff:a.b.c.d), and these TLVs, in
 * this order when present:
 *   0x03 PP2_TYPE_CRC32C   CRC32c of the whole header, big-endian (spec 2.2.5)
 *   0x20 PP2_TYPE_SSL      client flags, verify result, and the sub-TLV
 *        0x21 PP2_SUBTYPE_SSL_VERSION ("TLSv1.3")
 *   0xE0 TG_PP2_TYPE_SPIFFE_ID  the caller's SPIFFE ID, as bytes, no NUL
 *   0xE1 TG_PP2_TYPE_SHA256     SHA-256 of the caller's certificate (DER), 32 raw bytes
 * 0xE0 and 0xE1 are ours, from the range the spec leaves to applications (0xE0-0xEF,
 * PP2_TYPE_MIN_CUSTOM..PP2_TYPE_MAX_CUSTOM); an app reading them must know tollgate.
 *
 * The decoder is strict (for tests, fuzzing, and apps written against us): signature,
 * version 2, command LOCAL or PROXY, PROXY over TCP4 or TCP6 only, TLVs that exactly fill
 * the announced length, no repeated TLV of a type it knows, a valid SPIFFE ID in 0xE0,
 * exactly 32 bytes in 0xE1, a CRC32c that checks. TLVs of other types are skipped, as the
 * spec says. */
#ifndef TOLLGATE_PROXYPROTO_H
#define TOLLGATE_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tollgate/err.h"
#include "tollgate/spiffe.h"

#define TG_PP2_HEADER_LEN 16                   /* signature, version/command, family, length */
#define TG_PP2_MAX (TG_PP2_HEADER_LEN + 65535) /* the longest header there can be */
/* the longest we encode: addresses, CRC, SSL with a 255-byte version, ID, fingerprint */
#define TG_PP2_ENCODED_MAX (TG_PP2_HEADER_LEN + 36 + 7 + 3 + 5 + 3 + 255 + 3 + TG_SPIFFE_MAX + 35)

#define TG_PP2_TYPE_CRC32C 0x03
#define TG_PP2_TYPE_NOOP 0x04
#define TG_PP2_TYPE_SSL 0x20
#define TG_PP2_SUBTYPE_SSL_VERSION 0x21
#define TG_PP2_TYPE_SPIFFE_ID 0xE0
#define TG_PP2_TYPE_SHA256 0xE1

#define TG_PP2_CLIENT_SSL 0x01       /* the client connected over TLS */
#define TG_PP2_CLIENT_CERT_CONN 0x02 /* ... and sent a certificate on this connection */
#define TG_PP2_CLIENT_CERT_SESS 0x04 /* ... or on the session it resumed */

/* One header. For encoding the caller fills it (pointers are borrowed); decoding fills it
 * with pointers into the decoded buffer, valid while that buffer is. */
struct tg_proxyproto {
    bool local;                       /* LOCAL command: no addresses (ss_family AF_UNSPEC) */
    struct sockaddr_storage src, dst; /* PROXY: AF_INET or AF_INET6, with ports */
    const char *spiffe_id;            /* TLV 0xE0; NULL: none */
    size_t spiffe_id_len;
    const uint8_t *sha256;   /* TLV 0xE1, 32 bytes; NULL: none */
    bool ssl;                /* TLV 0x20 */
    uint8_t ssl_client;      /* TG_PP2_CLIENT_* bits */
    uint32_t ssl_verify;     /* 0: the client certificate was verified */
    const char *ssl_version; /* sub-TLV 0x21, e.g. "TLSv1.3"; NULL: none */
    size_t ssl_version_len;
    bool crc32c; /* TLV 0x03: encode one / decode found one (and it checked) */
};

/* Writes h into buf (cap bytes); *len gets its size, at most TG_PP2_ENCODED_MAX.
 * TG_EINVAL for an address family other than AF_INET/AF_INET6, an empty SPIFFE ID or one
 * over TG_SPIFFE_MAX bytes, or an SSL version of 0 or over 255 bytes; TG_EAGAIN when cap is
 * too small (*len then gets the size needed). err (may be NULL) says which. The SPIFFE ID
 * is not parsed again: it comes from a verified certificate. */
TG_MUST_USE int tg_proxyproto_encode(const struct tg_proxyproto *h, uint8_t *buf, size_t cap,
                                     size_t *len, char *err);

/* Reads a header from the start of buf (n bytes). 0: *h filled, *used its length (the app's
 * data follows). TG_EAGAIN: a valid beginning, more bytes needed (*used gets the total when
 * the fixed part is there, else 0). TG_EINVAL: not a header we accept, err (may be NULL)
 * says why. *h is meaningful only after 0. */
TG_MUST_USE int tg_proxyproto_decode(const uint8_t *buf, size_t n, struct tg_proxyproto *h,
                                     size_t *used, char *err);

/* CRC32c (Castagnoli, RFC 4960 appendix B) of n bytes. */
uint32_t tg_proxyproto_crc32c(const void *data, size_t n);

#endif

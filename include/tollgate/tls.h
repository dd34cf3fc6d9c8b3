/* The wolfSSL adapter. wolfSSL never sees a socket: it reads the ciphertext we received from
 * the connection's cipher_in buffer and appends what it wants sent to cipher_out, so
 * handshakes run (and are tested) in memory. wolfSSL's other doors in lib/pki are identity.c
 * (certificates, keys, CRLs), certgen.c over x509.c (making certificates), certview.c
 * (reading them for display) and jws.c (token signatures); only the control plane's CA
 * (cp_ca.c) still calls it directly, for now.
 *
 * Threads: a tg_tls_ctx is immutable after tg_tls_ctx_new and may be used from any thread to
 * make sessions (wolfSSL reference-counts the WOLFSSL_CTX under its own lock). A tg_tls
 * belongs to one connection on one worker. */
#ifndef TOLLGATE_TLS_H
#define TOLLGATE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/buf.h"
#include "tollgate/config.h"
#include "tollgate/identity.h"
#include "tollgate/metrics.h"
#include "tollgate/revocation.h"

#define TG_ALPN "tollgate"
#define TG_ALPN_H2 "h2" /* a tunnel of HTTP/2 CONNECT streams (h2tun.h) */

struct tg_tls_settings {
    bool server;
    bool allow_tls12;
    unsigned max_chain_depth; /* certificates the peer sends, leaf included */
    bool peer_optional;       /* server: a client without a certificate gets through the handshake
                               * (tg_tls_peer()->id stays NULL): the control plane's bootstrap */
    bool resumption;          /* TLS 1.3 session tickets between sidecars */
    const struct tg_strlist *cipher_suites; /* NULL or empty: all we offer; else a subset, in
                                             * order of preference (tg_tls_check_suites) */
};

/* Checks a cipher-suite list: each a suite we offer (TLS 1.3: TLS13-AES128-GCM-SHA256 or
 * TLS_AES_128_GCM_SHA256, ...; with TLS 1.2 allowed also its ECDHE AEAD suites), each once,
 * at least one TLS 1.3 suite. 0, or TG_EINVAL with why naming the first bad one. */
TG_MUST_USE int tg_tls_check_suites(const struct tg_strlist *suites, bool allow_tls12, char *why);

struct tg_tls_ctx;

/* Makes a context presenting id and trusting id's bundle: a peer's ID is accepted when it is
 * in one of id's trust domains (ours and the federated ones) and the chain the peer sent ends
 * at a root of that trust domain (checked inside the handshake, after wolfSSL's own chain
 * check: each certificate signed by the next one's key, the last by a root of the ID's
 * domain; a failure is TG_HSF_UNTRUSTED or TG_HSF_TRUST_DOMAIN). id must outlive the
 * context. Returns 0, or a negative code with err. */
TG_MUST_USE int tg_tls_ctx_new(const struct tg_identity *id, const struct tg_tls_settings *s,
                               struct tg_tls_ctx **out, char *err);
void tg_tls_ctx_free(struct tg_tls_ctx *ctx);

/* A client context for the control-plane stream. Presents id (NULL before the first
 * identity: no client certificate) and trusts the roots in ca_pem (the bootstrap root of
 * the sidecar's config) plus, with id, the roots of id's own trust domain: never a federated
 * domain's, whatever a push says. The chain the server sends must end at one of those roots
 * (checked as for tg_tls_ctx_new), and its ID be one of the session's peer rule. Keeps no
 * pointer to id. s->server and s->resumption are ignored (a client, no tickets). Returns 0,
 * or a negative code with err. */
TG_MUST_USE int tg_tls_ctx_new_cp(const struct tg_identity *id, const char *ca_pem, size_t ca_len,
                                  const struct tg_tls_settings *s, struct tg_tls_ctx **out,
                                  char *err);

/* A server context for plain HTTPS (tollgate-cp's admission webhook): presents chain_pem
 * (leaf first) with key_pem, TLS 1.2 or 1.3, asks no client certificate and verifies no peer
 * (sessions from it get no peer ID; pass a rule with an empty list). Copies both texts.
 * Returns 0, or a negative code with err. */
TG_MUST_USE int tg_tls_ctx_new_https(const char *chain_pem, size_t chain_len, const char *key_pem,
                                     size_t key_len, struct tg_tls_ctx **out, char *err);

/* Fills out with sz random bytes from the kernel (getrandom); 0, or -1 if the kernel refused.
 * The static wolfSSL draws all its randomness here (rand.c, scripts/setup.sh). */
int tg_rand_block(unsigned char *out, unsigned int sz);
/* Whether the linked wolfSSL draws from tg_rand_block (the static build), and how many draws
 * tg_rand_block has answered since the start. */
bool tg_rand_from_kernel(void);
uint64_t tg_rand_draws(void);

/* ECDSA verifications answered from memory (sigmemo.c) and made in full, since the start of
 * the process, all threads: a verification is remembered once it succeeded, by its public key,
 * hash and signature, so a peer certificate met again costs no signature check. */
void tg_tls_sigmemo_stats(uint64_t *hits, uint64_t *misses);

/* The X25519 public key of a clamped private key, both little-endian as on the wire, by the
 * fixed-base multiplication that makes the static wolfSSL's key shares (x25519.c). And how
 * many key pairs it has made since the start of the process (0 with a shared libwolfssl,
 * whose own ladder makes them). */
void tg_tls_x25519_public(unsigned char pub[32], const unsigned char priv[32]);
uint64_t tg_tls_x25519_fixed_base_keys(void);

/* Global library set-up and tear-down; once per process. */
TG_MUST_USE int tg_tls_init(void);
void tg_tls_cleanup(void);
/* "wolfSSL 5.5.4, AES-NI: yes" etc. */
const char *tg_tls_version_text(void);
bool tg_tls_aesni(void);
/* The wolfSSL version linked, "5.5.4" (tollgate_build_info). */
const char *tg_tls_wolfssl_version(void);

struct tg_tls;

/* Who is accepted on the other end, beyond chain and trust domain: inbound, an allow list
 * of client IDs (empty: any); outbound, the expected server IDs (never empty). */
struct tg_tls_peer_rule {
    const struct tg_strlist *ids;
};

/* A session for one connection. The buffers come from pool on demand. rule is borrowed and
 * must outlive the session. */
TG_MUST_USE int tg_tls_new(struct tg_tls_ctx *ctx, struct tg_pool *pool,
                           const struct tg_tls_peer_rule *rule, struct tg_tls **out);
/* Wipes and frees; the buffers go back to the pool. NULL is fine. */
void tg_tls_free(struct tg_tls *t);
/* Before the handshake: offers ALPN "h2" too (a server: a tunnel to a client that lists it
 * first; a client: a tunnel first, then ours). 0 or TG_ETLS. */
TG_MUST_USE int tg_tls_offer_h2(struct tg_tls *t);
/* After the handshake: whether ALPN chose "h2". */
bool tg_tls_alpn_h2(const struct tg_tls *t);

/* Ciphertext received from the peer goes here (reserve, write at tail, commit). */
struct tg_buf *tg_tls_cipher_in(struct tg_tls *t);
/* Ciphertext to send to the peer; the caller writes it out and consumes it. */
struct tg_buf *tg_tls_cipher_out(struct tg_tls *t);
/* The peer's TCP stream ended: no more ciphertext will come. */
void tg_tls_set_eof(struct tg_tls *t);

/* Drives the handshake: 0 done, TG_EAGAIN wants more input (or output room), TG_EPEER the
 * peer or its certificate was refused (tg_tls_fail says why), TG_ETLS/TG_ECLOSED other. */
TG_MUST_USE int tg_tls_handshake(struct tg_tls *t);

/* Decrypts into dst: > 0 bytes, TG_EAGAIN (needs input), TG_ECLOSED (close_notify or EOF),
 * TG_EPEER (the peer sent a fatal alert: tg_tls_fail says TG_HSF_PEER_REFUSED and why,
 * tg_tls_peer_refusal the kind), or another negative code. */
TG_MUST_USE int tg_tls_read(struct tg_tls *t, char *dst, size_t cap);

/* Room needed in cipher_out for tg_tls_write of n plaintext bytes to succeed whole. */
size_t tg_tls_write_room(size_t n);
/* Encrypts n bytes into cipher_out. The caller makes sure cipher_out has
 * tg_tls_write_room(n) bytes free. Returns n, or a negative code. */
TG_MUST_USE int tg_tls_write(struct tg_tls *t, const char *src, size_t n);

/* Server: the server name (SNI) the client's ClientHello asked for, when its first record
 * arrived whole; NULL: none. Outside input: for logs, through the escaper. */
const char *tg_tls_sni(const struct tg_tls *t);
/* Client: the server name to send (outbound listeners' sni). 0 or TG_ETLS. */
TG_MUST_USE int tg_tls_set_sni(struct tg_tls *t, const char *name);

/* Refusal reasons in alerts: an inbound tells a refused caller why with a fatal alert, one
 * per kind; the caller's sidecar decodes it.
 *   denied, not_allowed        access_denied (49)        heard as "denied"
 *   revoked                    certificate_revoked (44)  "revoked"
 *   expired, not_yet_valid     certificate_expired (45)  "expired"
 *   untrusted, trust_domain    unknown_ca (48)           "untrusted"
 *   bad_cert, bad_spiffe_id    bad_certificate (42)      "bad_cert"
 *   no_peer_cert               certificate_required (116) "no_peer_cert"
 * Other kinds (rate_limited, listener_limit...) end with close_notify. A server session
 * sends these itself when its verify callback refuses the client. */

/* Ends the session with the alert of the refusal kind reason starts with ("denied: ..."),
 * or close_notify when the kind has none. Once: later calls, and tg_tls_shutdown, do
 * nothing. */
void tg_tls_refuse(struct tg_tls *t, const char *reason);
/* The kind a received alert stands for ("denied" for access_denied...), or NULL. */
const char *tg_tls_alert_kind(int alert);
/* After TG_EPEER with TG_HSF_PEER_REFUSED: the kind of the peer's alert, or NULL (an alert
 * that is none of ours). */
const char *tg_tls_peer_refusal(const struct tg_tls *t);

/* Appends close_notify to cipher_out (once). */
void tg_tls_shutdown(struct tg_tls *t);

/* After a failure: the category and a one-line reason. */
enum tg_hs_fail tg_tls_fail(const struct tg_tls *t, const char **why);

/* The verified peer, after the handshake (fields empty before). */
struct tg_peer_info {
    char *id;          /* SPIFFE ID, malloc'd; NULL until verified */
    char *claimed;     /* a refused peer's SPIFFE ID, for logs only; NULL otherwise */
    int64_t not_after; /* of the peer's certificate */
    char serial[TG_SERIAL_HEX];
    char sha256[TG_SHA256_HEX];
    uint8_t *der; /* the peer's certificate, malloc'd (Client-Cert on HTTP ports); NULL once
                   * dropped, or when the session resumed from a ticket that had none */
    size_t der_len;
    struct tg_chain_link *links; /* its chain as revocation sees it (revocation.h), malloc'd:
                                  * a live connection is checked again when CRLs change */
    size_t n_links;
};
const struct tg_peer_info *tg_tls_peer(const struct tg_tls *t);
/* Whether a verified peer's chain is revoked, or lacks a CRL its trust domain needs, by id's
 * CRLs (a new generation's, for its live connections): revocation.h. why as there. */
enum tg_rev_verdict tg_tls_peer_revoked(const struct tg_peer_info *p, const struct tg_identity *id,
                                        char *why, size_t cap);
/* Frees the peer certificate's DER kept by the handshake, for connections that do not
 * forward it (most): call once the handshake is done. */
void tg_tls_drop_peer_der(struct tg_tls *t);
/* Whether the handshake resumed an earlier session (no certificates were exchanged; the
 * peer is the one verified when the ticket was issued, checked again against the rules). */
bool tg_tls_resumed(const struct tg_tls *t);

/* Client-side resumption: one worker's tickets, by upstream address. Single-threaded. A
 * ticket is offered only to a context made after the same generation as the one it came
 * from, and only while the server's certificate it stands for is valid. */
struct tg_tls_cache;

TG_MUST_USE int tg_tls_cache_new(size_t slots, struct tg_tls_cache **out);
void tg_tls_cache_free(struct tg_tls_cache *cache);
/* Before the handshake: offers the ticket held for key (the upstream address), if any. */
void tg_tls_offer(struct tg_tls *t, struct tg_tls_cache *cache, const char *key);
/* After a verified client session (typically at close): keeps its ticket for key. */
void tg_tls_remember(struct tg_tls *t, struct tg_tls_cache *cache, const char *key);
const char *tg_tls_version(const struct tg_tls *t);

/* A peer's chain as it would send it: der[0] the leaf, then its intermediates. */
struct tg_tls_chain {
    const unsigned char *const *der;
    const size_t *len;
    size_t n;
};

/* Checks chain away from a handshake (tollgate-certs verify), with the handshake's own
 * checks: trust's bundle and CRLs loaded as a context loads them; the certificates verified
 * from the root side down as wolfSSL takes a peer's chain; then the leaf checks of the
 * handshake for s->server's side (true: the chain is a client's): s->max_chain_depth, not a
 * CA, the extendedKeyUsage of its side, one valid SPIFFE ID; and its trust domain when one
 * is known (trust->trust_domain or domains, which may be NULL; none: not checked). The
 * bundle stands for the domains as one: a bundle per domain is the handshake's business.
 * Allow and expect lists are not checked. *leaf gets what the leaf says as far as it parses.
 * Returns 0 (accepted), TG_EPEER (refused: *fail is the handshake's reason, why its line), or
 * another negative code with why (no certificate, trust not usable, out of memory). */
TG_MUST_USE int tg_tls_verify_chain(const struct tg_identity *trust,
                                    const struct tg_tls_settings *s,
                                    const struct tg_strlist *domains,
                                    const struct tg_tls_chain *chain, struct tg_cert_info *leaf,
                                    enum tg_hs_fail *fail, char *why);
const char *tg_tls_cipher(const struct tg_tls *t);
/* Gives wolfSSL's and our buffers back while the connection is idle. */
void tg_tls_release_buffers(struct tg_tls *t);

#endif

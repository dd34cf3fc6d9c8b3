/* wolfSSL adapter: contexts, in-memory I/O, and the peer checks that run inside the
 * handshake (chain depth, leaf usage, SPIFFE ID, trust domain and the root it was vouched for
 * by, allow/expect lists). */
#include <wolfssl/options.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/memory.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "tollgate/tls.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TLS 1.3 record: header 5, content type 1, AEAD tag 16; TLS 1.2 GCM: 5 + 8 + 16. */
#define RECORD_OVERHEAD 64
#define RECORD_MAX 16384

/* Server tickets: the ticket itself is wolfSSL's session state, sealed with AES-128-GCM
 * under a key made with the context (so a new generation -- new bundle, revocations or
 * rules -- invalidates every earlier ticket). TLS 1.3 resumption sends no certificates, so
 * the ticket's key_name names the slot that remembers the peer it was issued to. */
#define TICKET_SLOTS 1024
#define TICKET_LIFETIME_S 3600
#define TICKET_NAME_LEN 8

struct ticket_slot {
    uint32_t nonce; /* changes when the slot is given to another peer */
    struct tg_peer_info peer;
};

/* Who may vouch for which IDs: one store per trust domain holding that domain's roots and
 * nothing else. The context's own store cannot say it: it holds every domain's roots, and
 * wolfSSL adds to it each intermediate CA a peer's chain brought (internal.c, AddCA with
 * WOLFSSL_CHAIN_CA), and it finds a signer by key identifier or name, not by the chain sent. */
struct anchors {
    char domain[TG_TRUST_DOMAIN_MAX + 1]; /* "" (control-plane client): any ID's */
    WOLFSSL_CERT_MANAGER *cm;
};

/* Chains found anchored, by the SHA-256 of the chain a peer sent (each certificate's length
 * and bytes): where a chain ends is a fact about its bytes and the context's stores, both
 * fixed, so a peer that comes back with the same chain costs a hash, not the signature checks
 * (a full handshake makes two or three of its own). Direct-mapped; a collision of slots
 * replaces the older chain. */
#define ANCHORED_SLOTS 512

/* What the checks of a chain's leaf and its revocation links came to, kept with the anchored
 * chain once a handshake accepted it: every field is a function of the chain's bytes and of
 * the context (its depth limit, its CRLs), so a peer met again costs the chain's hash instead
 * of two parses of its certificate (tg_cert_inspect, tg_revocations_links). What depends on
 * the session (the allow or expect list) and on the time (wolfSSL's date checks, our own
 * certificate's) is checked every time. */
struct known_leaf {
    char serial[TG_SERIAL_HEX];
    char sha256[TG_SHA256_HEX];
    int64_t not_after;
    struct tg_chain_link *links;
    size_t n_links;
    size_t id_len, td_len, path_off; /* the SPIFFE ID as tg_spiffe_parse cut it */
    char id[];
};

struct anchored_slot {
    unsigned char hash[WC_SHA256_DIGEST_SIZE];
    const struct anchors *a; /* NULL: empty */
    struct known_leaf *leaf; /* NULL: not kept yet */
};

struct tg_tls_ctx {
    WOLFSSL_CTX *ctx;
    struct anchors *anchors; /* [n_anchors], made with the context, read-only after */
    size_t n_anchors;
    pthread_mutex_t anchored_lock; /* the slots below: workers share the context */
    bool anchored_lock_ready;
    struct anchored_slot *anchored; /* [ANCHORED_SLOTS], made with the first chain */
    uint64_t serial;                /* unique per context, for the client cache */
    bool server;
    bool peer_optional; /* server: a client may come without a certificate */
    bool resumption;
    unsigned max_chain_depth;
    const struct tg_identity *id;
    pthread_mutex_t lock; /* the ticket state below: workers share the context */
    bool lock_ready;
    WC_RNG rng;
    bool rng_ready;
    unsigned char ticket_key[16];
    unsigned char ticket_name[TICKET_NAME_LEN];
    struct ticket_slot *slots; /* [TICKET_SLOTS], made with the first ticket */
};

struct tg_tls_cache_entry {
    char key[64];
    uint64_t ctx_serial;
    WOLFSSL_SESSION *session;
    struct tg_peer_info peer;
};

struct tg_tls_cache {
    size_t n;
    struct tg_tls_cache_entry *e;
};

static atomic_uint_fast64_t next_ctx_serial = 1;

struct tg_tls {
    WOLFSSL *ssl;
    struct tg_tls_ctx *ctx;
    struct tg_pool *pool;
    const struct tg_tls_peer_rule *rule;
    struct tg_buf cipher_in;
    struct tg_buf cipher_out;
    bool eof;
    bool shutdown_sent;
    enum tg_hs_fail fail;
    bool failed;
    char why[200];
    struct tg_peer_info peer;
    struct tg_peer_info resumed; /* who a ticket stands for, until the handshake says */
    const char *peer_kind; /* the refusal kind of the peer's fatal alert (tg_tls_alert_kind) */
    bool sni_looked;       /* server: the ClientHello was searched for a server name */
    char sni[256];         /* what it asked for; "" none */
};

static const char CIPHERS_13[] =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256";
static const char CIPHERS_12[] =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384";

/* The suites we may offer: wolfSSL's name, its IANA name, TLS 1.3 or not. */
static const struct suite {
    const char *name, *iana;
    bool tls13;
} SUITES[] = {
    {"TLS13-AES128-GCM-SHA256", "TLS_AES_128_GCM_SHA256", true},
    {"TLS13-AES256-GCM-SHA384", "TLS_AES_256_GCM_SHA384", true},
    {"TLS13-CHACHA20-POLY1305-SHA256", "TLS_CHACHA20_POLY1305_SHA256", true},
    {"ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", false},
    {"ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", false},
    {"ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", false},
    {"ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", false},
    {"ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", false},
};

static const struct suite *find_suite(const char *name)
{
    for (size_t i = 0; i < TG_NELEM(SUITES); i++)
        if (strcmp(name, SUITES[i].name) == 0 || strcmp(name, SUITES[i].iana) == 0)
            return &SUITES[i];
    return NULL;
}

int tg_tls_check_suites(const struct tg_strlist *suites, bool allow_tls12, char *why)
{
    bool tls13 = false;

    for (size_t i = 0; i < suites->n; i++) {
        const struct suite *s = find_suite(suites->v[i]);

        if (s == NULL)
            return tg_err_set(why, TG_EINVAL,
                              "cipher suite \"%.60s\" unknown or not offered (AEAD suites only)",
                              suites->v[i]);
        if (!s->tls13 && !allow_tls12)
            return tg_err_set(why, TG_EINVAL, "cipher suite %s is TLS 1.2 only (min version 1.3)",
                              s->name);
        for (size_t j = 0; j < i; j++)
            if (find_suite(suites->v[j]) == s)
                return tg_err_set(why, TG_EINVAL, "cipher suite %s listed twice", s->name);
        tls13 = tls13 || s->tls13;
    }
    if (suites->n > 0 && !tls13)
        return tg_err_set(why, TG_EINVAL, "cipher suites: none for TLS 1.3");
    return 0;
}

/* The wolfSSL cipher list for s: the suites asked for in order, or all we offer. */
static int set_suites(WOLFSSL_CTX *ctx, const struct tg_tls_settings *s, char *err)
{
    char list[512] = "";
    size_t at = 0;

    if (s->cipher_suites == NULL || s->cipher_suites->n == 0)
        return wolfSSL_CTX_set_cipher_list(ctx, s->allow_tls12 ? CIPHERS_12 : CIPHERS_13) ==
                       WOLFSSL_SUCCESS
                   ? 0
                   : tg_err_set(err, TG_ETLS, "TLS: cipher suites not available");
    if (tg_tls_check_suites(s->cipher_suites, s->allow_tls12, err) < 0)
        return TG_EINVAL;
    for (size_t i = 0; i < s->cipher_suites->n; i++)
        at += (size_t)snprintf(list + at, sizeof(list) - at, "%s%s", i ? ":" : "",
                               find_suite(s->cipher_suites->v[i])->name);
    if (wolfSSL_CTX_set_cipher_list(ctx, list) != WOLFSSL_SUCCESS)
        return tg_err_set(err, TG_ETLS, "TLS: cipher suites %s not available", list);
    return 0;
}

/* The key exchange groups we offer and accept, best first. */
static int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};

/* The versions, suites and key exchange groups of a context we serve or dial with s. */
static int set_protocol(WOLFSSL_CTX *ctx, const struct tg_tls_settings *s, char *err)
{
    int rc;

    if (wolfSSL_CTX_SetMinVersion(ctx, s->allow_tls12 ? WOLFSSL_TLSV1_2 : WOLFSSL_TLSV1_3) !=
        WOLFSSL_SUCCESS)
        return tg_err_set(err, TG_ETLS, "TLS: cannot set the minimum version");
    if ((rc = set_suites(ctx, s, err)) < 0)
        return rc;
    if (wolfSSL_CTX_set_groups(ctx, groups, (int)TG_NELEM(groups)) != WOLFSSL_SUCCESS)
        return tg_err_set(err, TG_ETLS, "TLS: key exchange groups not available");
    return 0;
}

/* Our certificate chain and its private key, both PEM; false if wolfSSL takes either not. */
static bool use_key_pair(WOLFSSL_CTX *ctx, const char *chain, size_t chain_len, const char *key,
                         size_t key_len)
{
    return wolfSSL_CTX_use_certificate_chain_buffer_format(ctx, (const unsigned char *)chain,
                                                           (long)chain_len, WOLFSSL_FILETYPE_PEM) ==
               WOLFSSL_SUCCESS &&
           wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)key, (long)key_len,
                                             WOLFSSL_FILETYPE_PEM) == WOLFSSL_SUCCESS;
}

int tg_tls_init(void)
{
    return wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : TG_ETLS;
}

void tg_tls_cleanup(void)
{
    wolfSSL_Cleanup();
}

bool tg_tls_aesni(void)
{
#ifdef WOLFSSL_AESNI
    return true;
#else
    return false;
#endif
}

const char *tg_tls_wolfssl_version(void)
{
    return wolfSSL_lib_version();
}

const char *tg_tls_version_text(void)
{
    static char text[160];

    snprintf(text, sizeof(text), "wolfSSL %s, AES-NI %s, random bytes from %s",
             wolfSSL_lib_version(),
             tg_tls_aesni() ? "compiled in" : "NOT compiled in (crypto not accelerated)",
             tg_rand_from_kernel() ? "the kernel (getrandom)" : "wolfSSL's Hash_DRBG");
    return text;
}

/* ---- in-memory I/O ---- */

static int on_tls_recv(WOLFSSL *ssl, char *dst, int cap, void *arg)
{
    struct tg_tls *t = arg;
    size_t n = tg_buf_len(&t->cipher_in);

    (void)ssl;
    if (n == 0)
        return t->eof ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
    n = n < (size_t)cap ? n : (size_t)cap;
    memcpy(dst, tg_buf_data(&t->cipher_in), n);
    tg_buf_consume(&t->cipher_in, n);
    return (int)n;
}

static int on_tls_send(WOLFSSL *ssl, char *src, int n, void *arg)
{
    struct tg_tls *t = arg;

    (void)ssl;
    /* no move: a write of the bytes already queued may be in flight */
    if (tg_buf_reserve(&t->cipher_out, t->pool, false) < 0)
        return WOLFSSL_CBIO_ERR_GENERAL;
    if (tg_buf_room(&t->cipher_out) < (size_t)n)
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    memcpy(tg_buf_tail(&t->cipher_out), src, (size_t)n);
    tg_buf_commit(&t->cipher_out, (size_t)n);
    return n;
}

/* ---- peer verification ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int refuse(struct tg_tls *t, enum tg_hs_fail why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct tg_tls *t, enum tg_hs_fail why, const char *fmt, ...)
{
    va_list ap;

    t->failed = true;
    t->fail = why;
    va_start(ap, fmt);
    vsnprintf(t->why, sizeof(t->why), fmt, ap);
    va_end(ap);
    return 0;
}

/* ---- refusal reasons in alerts ----
 *
 * The inbound tells a refused caller why in the fatal alert it sends (RFC 8446 6.2), one
 * alert per kind of refusal, so the caller's sidecar can log the reason and answer its app
 * with it; the table reads both ways. Kinds not listed (rate_limited, listener_limit) get
 * close_notify: no alert means "later". */
static const struct {
    const char *kind;  /* the refusal kind as our reasons start (tg_hs_fail names, policy) */
    int alert;         /* sent */
    const char *heard; /* the kind a caller logs when it receives this alert */
} refusal_alerts[] = {
    {"denied", access_denied, "denied"},
    {"not_allowed", access_denied, "denied"},
    {"revoked", certificate_revoked, "revoked"},
    {"expired", certificate_expired, "expired"},
    {"not_yet_valid", certificate_expired, "expired"},
    {"untrusted", unknown_ca, "untrusted"},
    {"trust_domain", unknown_ca, "untrusted"},
    {"bad_cert", bad_certificate, "bad_cert"},
    {"bad_spiffe_id", bad_certificate, "bad_cert"},
    {"no_peer_cert", certificate_required, "no_peer_cert"},
};

/* wolfSSL's own function (declared WOLFSSL_LOCAL in its internal.h; our wolfSSL is the
 * pinned static build, where it links): the public API has no fatal alert of the caller's
 * choosing. It appends the alert to our output buffer like any record. */
int SendAlert(WOLFSSL *ssl, int severity, int type);

static int alert_of(const char *kind, size_t n)
{
    for (size_t i = 0; i < TG_NELEM(refusal_alerts); i++)
        if (strlen(refusal_alerts[i].kind) == n && memcmp(refusal_alerts[i].kind, kind, n) == 0)
            return refusal_alerts[i].alert;
    return -1;
}

const char *tg_tls_alert_kind(int alert)
{
    for (size_t i = 0; i < TG_NELEM(refusal_alerts); i++)
        if (refusal_alerts[i].alert == alert)
            return refusal_alerts[i].heard;
    return NULL;
}

void tg_tls_refuse(struct tg_tls *t, const char *reason)
{
    int alert = alert_of(reason, strspn(reason, "abcdefghijklmnopqrstuvwxyz_"));

    if (alert < 0 || t->shutdown_sent) {
        tg_tls_shutdown(t);
        return;
    }
    t->shutdown_sent = true; /* a fatal alert ends the session: no close_notify after it */
    SendAlert(t->ssl, alert_fatal, alert);
}

/* The server refuses a client's certificate in our verify callback: wolfSSL would say
 * bad_certificate for any reason of ours; the caller learns which one first. */
static void refusal_alert(struct tg_tls *t)
{
    if (t->ctx->server)
        tg_tls_refuse(t, tg_hs_fail_name(t->fail));
}

/* A fatal alert from the peer: why names it, and the refusal kind when it is one of ours. */
static void heard_alert(struct tg_tls *t)
{
    WOLFSSL_ALERT_HISTORY h;
    const char *kind;

    wolfSSL_get_alert_history(t->ssl, &h);
    kind = tg_tls_alert_kind(h.last_rx.code);
    refuse(t, TG_HSF_PEER_REFUSED, "%s: peer sent alert %d (%s)", kind != NULL ? kind : "other",
           h.last_rx.code, wolfSSL_alert_desc_string_long(h.last_rx.code));
    t->peer_kind = kind;
}

static enum tg_hs_fail classify(int wolf_err, const char **text)
{
    *text = wolfSSL_ERR_reason_error_string((unsigned long)wolf_err);
    switch (wolf_err) {
    case ASN_AFTER_DATE_E:
        return TG_HSF_EXPIRED;
    case ASN_BEFORE_DATE_E:
        return TG_HSF_NOT_YET_VALID;
    case ASN_NO_SIGNER_E:
    case ASN_SELF_SIGNED_E:
    case ASN_SIG_CONFIRM_E:
        return TG_HSF_UNTRUSTED;
    case NO_PEER_CERT:
        return TG_HSF_NO_CERT;
    case CRL_CERT_REVOKED:
        return TG_HSF_REVOKED;
    case ASN_ALT_NAME_E: /* a SAN wolfSSL will not parse: an empty or relative URI */
        return TG_HSF_BAD_SPIFFE;
    case EXTKEYUSE_AUTH_E:
    case ASN_PATHLEN_SIZE_E:
    case ASN_PATHLEN_INV_E:
        return TG_HSF_BAD_CERT;
    case VERSION_ERROR:
    case MATCH_SUITE_ERROR:
    case PARSE_ERROR:
    case BUFFER_ERROR:
    case UNKNOWN_RECORD_TYPE:
        return TG_HSF_PROTOCOL;
    case SOCKET_ERROR_E:
    case SOCKET_PEER_CLOSED_E:
        return TG_HSF_CLOSED;
    default:
        return TG_HSF_OTHER;
    }
}

/* The store of the roots that may vouch for id: its trust domain's, or NULL when we accept
 * no ID of that domain. */
static const struct anchors *anchors_for(const struct tg_tls_ctx *c, const struct tg_spiffe_id *id)
{
    for (size_t i = 0; i < c->n_anchors; i++)
        if (c->anchors[i].domain[0] == '\0' || tg_spiffe_in_domain(id, c->anchors[i].domain))
            return &c->anchors[i];
    return NULL;
}

static bool listed(const struct tg_strlist *l, const struct tg_spiffe_id *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], id->id) == 0)
            return true;
    return false;
}

/* The checks on the peer's ID that a verified certificate and a resumed session share:
 * trust domain, then the allow list (inbound) or the expected servers (outbound). */
static bool accepted(struct tg_tls *t, const struct tg_spiffe_id *id)
{
    const struct tg_tls_ctx *c = t->ctx;
    const char *side = c->server ? "client" : "server";

    if (anchors_for(c, id) == NULL)
        return refuse(t, TG_HSF_TRUST_DOMAIN, "%s %s: trust domain not accepted", side, id->id);
    if (c->server && t->rule->ids->n > 0 && !listed(t->rule->ids, id))
        return refuse(t, TG_HSF_NOT_ALLOWED, "client %s not in the allow list", id->id);
    if (!c->server && !listed(t->rule->ids, id))
        return refuse(t, TG_HSF_UNEXPECTED, "server %s is not an expected identity", id->id);
    return true;
}

/* wolfSSL's verdict on a certificate of the chain, as a reason: a failure that names no
 * reason of ours is "untrusted". */
static enum tg_hs_fail verify_fail(int wolf_err, const char **text)
{
    enum tg_hs_fail why = classify(wolf_err, text);

    return why == TG_HSF_OTHER ? TG_HSF_UNTRUSTED : why;
}

static bool leaf_refused(enum tg_hs_fail *fail, enum tg_hs_fail why, char *dst, size_t cap,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static bool leaf_refused(enum tg_hs_fail *fail, enum tg_hs_fail why, char *dst, size_t cap,
                         const char *fmt, ...)
{
    va_list ap;

    *fail = why;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    return false;
}

/* The checks of the peer's leaf that need no session, made after the chain verified: the
 * chain's length, a leaf that is not a CA, the extendedKeyUsage of its side (a client
 * needs clientAuth, a server serverAuth; none at all is fine), exactly one valid SPIFFE ID.
 * server: we are the server, the peer a client. Inside the handshake (on_verify) and away
 * from one (tg_tls_verify_chain). info is filled as far as the certificate parses (serial
 * "" when it does not); on false, *fail and dst (cap bytes) say why. */
static bool leaf_ok(bool server, unsigned max_depth, int n_certs, const unsigned char *der,
                    size_t len, struct tg_cert_info *info, enum tg_hs_fail *fail, char *dst,
                    size_t cap)
{
    const char *side = server ? "client" : "server";
    char err[TG_ERRLEN];

    memset(info, 0, sizeof(*info));
    if (n_certs > (int)max_depth)
        return leaf_refused(fail, TG_HSF_BAD_CERT, dst, cap,
                            "%s chain of %d certificates (max_chain_depth %u)", side, n_certs,
                            max_depth);
    if (der == NULL || n_certs < 1 || tg_cert_inspect(der, len, info, err) < 0)
        return leaf_refused(fail, TG_HSF_BAD_CERT, dst, cap, "%s certificate: %s", side,
                            der == NULL ? "none" : err);
    if (info->is_ca || info->key_cert_sign)
        return leaf_refused(fail, TG_HSF_BAD_CERT, dst, cap,
                            "%s leaf is a CA certificate (serial %s)", side, info->serial);
    if (info->eku_set && !(server ? info->eku_client : info->eku_server))
        return leaf_refused(fail, TG_HSF_BAD_CERT, dst, cap,
                            "%s leaf lacks extendedKeyUsage %s (serial %s)", side,
                            server ? "clientAuth" : "serverAuth", info->serial);
    if (!info->id_ok)
        return leaf_refused(fail, TG_HSF_BAD_SPIFFE, dst, cap, "%s certificate (serial %s): %s",
                            side, info->serial, info->id_err);
    return true;
}

/* SHA-256 over each certificate of the chain the peer sent: its length, then its bytes. */
static int chain_hash(const WOLFSSL_X509_STORE_CTX *store, unsigned char *out)
{
    wc_Sha256 sha;
    int rc = wc_InitSha256(&sha);

    for (int i = 0; rc == 0 && i < store->totalCerts; i++) {
        unsigned char len[4];

        put_be32(len, store->certs[i].length);
        rc = wc_Sha256Update(&sha, len, sizeof(len));
        if (rc == 0)
            rc = wc_Sha256Update(&sha, store->certs[i].buffer, store->certs[i].length);
    }
    if (rc == 0)
        rc = wc_Sha256Final(&sha, out);
    wc_Sha256Free(&sha);
    return rc;
}

static void known_leaf_free(struct known_leaf *k)
{
    if (k != NULL)
        free(k->links);
    free(k);
}

/* Whether the chain the peer sent (certs[0] its leaf, already verified by wolfSSL against the
 * context's store) ends at a root of a: each certificate signed by the key of the next one
 * sent, which must be a CA, and the last one signed by a root in a's store. A real signature
 * check each time: a partner's root may copy the subject and key identifier of ours, or a
 * peer append our (public) root to a chain that a partner signed. */
static bool anchored(struct tg_tls *t, const WOLFSSL_X509_STORE_CTX *store, const struct anchors *a,
                     const char *side, const char *id, const unsigned char *hash, bool hashed)
{
    const WOLFSSL_BUFFER_INFO *top = &store->certs[store->totalCerts - 1];
    struct tg_tls_ctx *c = t->ctx;
    bool known = false;
    size_t slot = hashed ? (size_t)be32(hash) % ANCHORED_SLOTS : 0;
    int v;

    if (hashed && c->anchored_lock_ready) {
        pthread_mutex_lock(&c->anchored_lock);
        known = c->anchored != NULL && c->anchored[slot].a == a &&
                memcmp(c->anchored[slot].hash, hash, WC_SHA256_DIGEST_SIZE) == 0;
        pthread_mutex_unlock(&c->anchored_lock);
    }
    if (known)
        return true;

    for (int i = 0; i + 1 < store->totalCerts; i++) {
        const WOLFSSL_BUFFER_INFO *cert = &store->certs[i], *next = &store->certs[i + 1];
        DecodedCert issuer;
        int rc;

        wc_InitDecodedCert(&issuer, next->buffer, next->length, NULL);
        rc = wc_ParseCert(&issuer, CERT_TYPE, NO_VERIFY, NULL);
        if (rc == 0 && (!issuer.isCA ||
                        (issuer.extKeyUsageSet && !(issuer.extKeyUsage & KEYUSE_KEY_CERT_SIGN))))
            rc = -1;
        if (rc == 0)
            rc = wc_CheckCertSigPubKey(cert->buffer, cert->length, NULL, issuer.publicKey,
                                       issuer.pubKeySize, (int)issuer.keyOID);
        wc_FreeDecodedCert(&issuer);
        if (rc != 0)
            return refuse(t, TG_HSF_UNTRUSTED,
                          "%s certificate %d is not signed by the CA sent after it in its chain",
                          side, i);
    }
    v = wolfSSL_CertManagerVerifyBuffer(a->cm, top->buffer, top->length, WOLFSSL_FILETYPE_ASN1);
    if (v != WOLFSSL_SUCCESS)
        return refuse(t, TG_HSF_TRUST_DOMAIN, "%s %s: its chain does not end at a root of %s", side,
                      id, a->domain[0] ? a->domain : "the control plane's trust");
    if (hashed && c->anchored_lock_ready) {
        pthread_mutex_lock(&c->anchored_lock);
        if (c->anchored == NULL)
            c->anchored = calloc(ANCHORED_SLOTS, sizeof(*c->anchored));
        if (c->anchored != NULL &&
            (c->anchored[slot].a != a ||
             memcmp(c->anchored[slot].hash, hash, WC_SHA256_DIGEST_SIZE) != 0)) {
            known_leaf_free(c->anchored[slot].leaf);
            c->anchored[slot].leaf = NULL;
            memcpy(c->anchored[slot].hash, hash, WC_SHA256_DIGEST_SIZE);
            c->anchored[slot].a = a;
        }
        pthread_mutex_unlock(&c->anchored_lock);
    }
    return true;
}

/* The chain a peer sent (anchored at a root of a's domain) against our CRLs (revocation.h):
 * its links are kept with the peer, so that a new generation's CRLs can close it later. */
static bool check_revocation(struct tg_tls *t, const WOLFSSL_X509_STORE_CTX *store,
                             const struct anchors *a, const char *side,
                             const struct tg_cert_info *info)
{
    const unsigned char *der[16];
    size_t len[16], n = 0;
    const struct tg_revocations *rev = t->ctx->id != NULL ? t->ctx->id->rev : NULL;
    char why[160];

    for (int i = 0; i < store->totalCerts && n < TG_NELEM(der); i++, n++) {
        der[n] = store->certs[i].buffer;
        len[n] = store->certs[i].length;
    }
    if (t->peer.links == NULL && /* else taken from a known chain (known_take) */
        tg_revocations_links(rev, a->domain, der, len, n, &t->peer.links, &t->peer.n_links) < 0)
        return refuse(t, TG_HSF_OTHER, "out of memory");
    switch (
        tg_revocations_check(rev, a->domain, t->peer.links, t->peer.n_links, why, sizeof(why))) {
    case TG_REV_REVOKED:
        return refuse(t, TG_HSF_REVOKED, "%s %s: %s", side, info->id.id, why);
    case TG_REV_NO_CRL:
        return refuse(t, TG_HSF_UNTRUSTED, "%s %s: %s", side, info->id.id, why);
    case TG_REV_OK:
        break;
    }
    return true;
}

/* A chain accepted before by this context (its hash in an anchored slot with a kept leaf):
 * fills info with what the leaf's checks found and gives the session a copy of the chain's
 * revocation links. false: not known (or out of memory), check it in full. */
static bool known_take(struct tg_tls *t, const unsigned char *hash, struct tg_cert_info *info)
{
    struct tg_tls_ctx *c = t->ctx;
    const struct anchored_slot *slot;
    const struct known_leaf *k;
    bool found = false;

    if (!c->anchored_lock_ready)
        return false;
    pthread_mutex_lock(&c->anchored_lock);
    slot = c->anchored != NULL ? &c->anchored[be32(hash) % ANCHORED_SLOTS] : NULL;
    k = slot != NULL && slot->leaf != NULL && memcmp(slot->hash, hash, sizeof(slot->hash)) == 0
            ? slot->leaf
            : NULL;
    if (k != NULL &&
        (k->n_links == 0 || (t->peer.links = malloc(k->n_links * sizeof(*k->links))) != NULL)) {
        memset(info, 0, sizeof(*info));
        memcpy(info->serial, k->serial, sizeof(info->serial));
        memcpy(info->sha256, k->sha256, sizeof(info->sha256));
        info->not_after = k->not_after;
        info->id_ok = true;
        memcpy(info->id.id, k->id, k->id_len + 1);
        info->id.len = k->id_len;
        info->id.td_len = k->td_len;
        info->id.path_off = k->path_off;
        if (k->n_links > 0)
            memcpy(t->peer.links, k->links, k->n_links * sizeof(*k->links));
        t->peer.n_links = k->n_links;
        found = true;
    }
    pthread_mutex_unlock(&c->anchored_lock);
    return found;
}

/* Keeps what a chain anchored at a and accepted now came to (info, the session's links), in
 * its anchored slot if that still holds it. Out of memory: not kept, checked in full again. */
static void known_keep(struct tg_tls *t, const unsigned char *hash, const struct anchors *a,
                       const struct tg_cert_info *info)
{
    struct tg_tls_ctx *c = t->ctx;
    struct anchored_slot *slot;
    struct known_leaf *k = malloc(sizeof(*k) + info->id.len + 1);

    if (k == NULL || !c->anchored_lock_ready)
        goto fail;
    memcpy(k->serial, info->serial, sizeof(k->serial));
    memcpy(k->sha256, info->sha256, sizeof(k->sha256));
    k->not_after = info->not_after;
    k->id_len = info->id.len;
    k->td_len = info->id.td_len;
    k->path_off = info->id.path_off;
    memcpy(k->id, info->id.id, info->id.len + 1);
    k->n_links = t->peer.n_links;
    k->links = NULL;
    if (k->n_links > 0 && (k->links = malloc(k->n_links * sizeof(*k->links))) == NULL)
        goto fail;
    if (k->n_links > 0)
        memcpy(k->links, t->peer.links, k->n_links * sizeof(*k->links));
    pthread_mutex_lock(&c->anchored_lock);
    slot = c->anchored != NULL ? &c->anchored[be32(hash) % ANCHORED_SLOTS] : NULL;
    if (slot != NULL && slot->a == a && memcmp(slot->hash, hash, sizeof(slot->hash)) == 0) {
        known_leaf_free(slot->leaf);
        slot->leaf = k;
        k = NULL;
    }
    pthread_mutex_unlock(&c->anchored_lock);
fail:
    known_leaf_free(k);
}

/* Runs for the peer's leaf on success and failure (WOLFSSL_ALWAYS_VERIFY_CB), and for any
 * certificate that failed. Returning 0 fails the handshake with an alert. */
static int verify_cert(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    struct tg_tls *t = store->userCtx;
    const struct tg_tls_ctx *c = t->ctx;
    const struct anchors *a;
    struct tg_cert_info info;
    const char *side = c->server ? "client" : "server";
    const char *text;
    bool have = store->certs != NULL && store->totalCerts >= 1, hashed, known;
    unsigned char hash[WC_SHA256_DIGEST_SIZE];
    enum tg_hs_fail fail;

    if (t->failed)
        return 0;
    if (!preverify) {
        fail = verify_fail(store->error, &text);
        return refuse(t, fail, "%s certificate %d: %s", side, store->error_depth, text);
    }
    if (store->error_depth != 0)
        return 1;
    if (c->peer_optional && !have)
        return 1; /* no certificate and none required: the control plane's bootstrap */
    free(t->peer.links);
    t->peer.links = NULL;
    hashed = have && chain_hash(store, hash) == 0;
    known = hashed && known_take(t, hash, &info);
    if (!known && !leaf_ok(c->server, c->max_chain_depth, store->totalCerts,
                           have ? store->certs[0].buffer : NULL, have ? store->certs[0].length : 0,
                           &info, &fail, t->why, sizeof(t->why))) {
        memcpy(t->peer.serial, info.serial, sizeof(info.serial));
        t->failed = true;
        t->fail = fail;
        return 0;
    }
    memcpy(t->peer.serial, info.serial, sizeof(info.serial)); /* for logs, refused or not */
    t->peer.claimed = strdup(info.id.id);                     /* names who was refused, in logs */
    if ((a = anchors_for(c, &info.id)) == NULL)
        return refuse(t, TG_HSF_TRUST_DOMAIN, "%s %s: trust domain not accepted", side, info.id.id);
    if (!anchored(t, store, a, side, info.id.id, hash, hashed) ||
        !check_revocation(t, store, a, side, &info) || !accepted(t, &info.id))
        return 0;
    if (hashed && !known)
        known_keep(t, hash, a, &info);
    t->peer.id = t->peer.claimed;
    t->peer.claimed = NULL;
    if (t->peer.id == NULL)
        return refuse(t, TG_HSF_OTHER, "out of memory");
    memcpy(t->peer.sha256, info.sha256, sizeof(info.sha256));
    t->peer.not_after = info.not_after;
    /* kept for the Client-Cert header of HTTP ports, and for the ticket issued now; dropped
     * after the handshake by connections that do not need it */
    free(t->peer.der);
    t->peer.der_len = 0;
    if ((t->peer.der = malloc(store->certs[0].length)) != NULL) {
        memcpy(t->peer.der, store->certs[0].buffer, store->certs[0].length);
        t->peer.der_len = store->certs[0].length;
    }
    return 1;
}

static int on_verify(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    struct tg_tls *t = store->userCtx;
    int ok = verify_cert(preverify, store);

    if (!ok && t->failed)
        refusal_alert(t); /* before wolfSSL's own bad_certificate */
    return ok;
}

/* ---- resumption ---- */

static void peer_clear(struct tg_peer_info *p)
{
    free(p->id);
    free(p->claimed);
    free(p->der);
    free(p->links);
    memset(p, 0, sizeof(*p));
}

static int peer_copy(struct tg_peer_info *dst, const struct tg_peer_info *src)
{
    peer_clear(dst);
    *dst = *src;
    dst->claimed = NULL;
    dst->der = NULL;
    dst->der_len = 0;
    dst->links = NULL;
    dst->n_links = 0;
    if (src->der != NULL && (dst->der = malloc(src->der_len)) != NULL) {
        memcpy(dst->der, src->der, src->der_len);
        dst->der_len = src->der_len;
    }
    if (src->n_links > 0 && (dst->links = malloc(src->n_links * sizeof(*src->links))) != NULL) {
        memcpy(dst->links, src->links, src->n_links * sizeof(*src->links));
        dst->n_links = src->n_links;
    }
    dst->id = strdup(src->id);
    return dst->id != NULL && (src->n_links == 0 || dst->links != NULL) ? 0 : TG_ENOMEM;
}

/* The name of the trust domain of id that holds sid: as anchors_for picks a store ("" for a
 * bundle that stands for every domain), or NULL when none does. */
static const char *domain_of_id(const struct tg_identity *id, const struct tg_spiffe_id *sid)
{
    for (size_t i = 0; i < id->n_domains; i++)
        if (id->domains[i].name[0] == '\0' || tg_spiffe_in_domain(sid, id->domains[i].name))
            return id->domains[i].name;
    return id->n_domains == 0 ? id->trust_domain : NULL;
}

enum tg_rev_verdict tg_tls_peer_revoked(const struct tg_peer_info *p, const struct tg_identity *id,
                                        char *why, size_t cap)
{
    struct tg_spiffe_id sid;
    const char *domain;

    if (p->id == NULL || p->n_links == 0 || tg_spiffe_parse(p->id, &sid, NULL) < 0 ||
        (domain = domain_of_id(id, &sid)) == NULL)
        return TG_REV_OK;
    return tg_revocations_check(id->rev, domain, p->links, p->n_links, why, cap);
}

void tg_tls_drop_peer_der(struct tg_tls *t)
{
    free(t->peer.der);
    t->peer.der = NULL;
    t->peer.der_len = 0;
}

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* AES-128-GCM over the ticket in place; AAD = key_name | iv. */
static int seal(const struct tg_tls_ctx *c, bool enc, const unsigned char *name,
                const unsigned char *iv, unsigned char *mac, unsigned char *ticket, int len)
{
    unsigned char aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ];
    Aes aes;
    int rc;

    memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
    memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
        return -1;
    rc = wc_AesGcmSetKey(&aes, c->ticket_key, sizeof(c->ticket_key));
    if (rc == 0 && enc)
        rc = wc_AesGcmEncrypt(&aes, ticket, ticket, (word32)len, iv, 12, mac, 16, aad, sizeof(aad));
    else if (rc == 0)
        rc = wc_AesGcmDecrypt(&aes, ticket, ticket, (word32)len, iv, 12, mac, 16, aad, sizeof(aad));
    wc_AesFree(&aes);
    return rc == 0 ? 0 : -1;
}

/* Issues a ticket only for a verified peer, and on resumption gives the session back the
 * peer its ticket was issued to. Anything wrong: REJECT, and the handshake goes on in full. */
static int on_ticket(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                     unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc, unsigned char *ticket,
                     int len, int *out_len, void *arg)
{
    struct tg_tls_ctx *c = arg;
    struct tg_tls *t = wolfSSL_GetIOReadCtx(ssl); /* our session rides as the I/O context */
    struct ticket_slot *slot;
    uint32_t index, nonce;
    int rc = WOLFSSL_TICKET_RET_REJECT;

    if (t == NULL || len <= 0)
        return rc;
    *out_len = len;
    pthread_mutex_lock(&c->lock);
    if (enc) {
        /* a full handshake's verified peer, or the one a resumed session stands for */
        const struct tg_peer_info *who = t->peer.id != NULL ? &t->peer : &t->resumed;

        if (who->id == NULL)
            goto done;
        if (c->slots == NULL && (c->slots = calloc(TICKET_SLOTS, sizeof(*c->slots))) == NULL)
            goto done;
        index = hash_str(who->sha256) % TICKET_SLOTS;
        slot = &c->slots[index];
        if (slot->peer.id == NULL || strcmp(slot->peer.sha256, who->sha256) != 0) {
            if (peer_copy(&slot->peer, who) < 0 ||
                wc_RNG_GenerateBlock(&c->rng, (byte *)&slot->nonce, sizeof(slot->nonce)) != 0)
                goto done;
        }
        memcpy(name, c->ticket_name, TICKET_NAME_LEN);
        put_be32(name + TICKET_NAME_LEN, index);
        put_be32(name + TICKET_NAME_LEN + 4, slot->nonce);
        memset(iv, 0, WOLFSSL_TICKET_IV_SZ);
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
        if (wc_RNG_GenerateBlock(&c->rng, iv, 12) != 0 ||
            seal(c, true, name, iv, mac, ticket, len) < 0)
            goto done;
        rc = WOLFSSL_TICKET_RET_OK;
        goto done;
    }
    index = be32(name + TICKET_NAME_LEN);
    nonce = be32(name + TICKET_NAME_LEN + 4);
    if (memcmp(name, c->ticket_name, TICKET_NAME_LEN) != 0 || index >= TICKET_SLOTS ||
        c->slots == NULL)
        goto done;
    slot = &c->slots[index];
    if (slot->peer.id == NULL || slot->nonce != nonce ||
        slot->peer.not_after <= tg_identity_now() || seal(c, false, name, iv, mac, ticket, len) < 0)
        goto done;
    if (peer_copy(&t->resumed, &slot->peer) == 0)
        rc = WOLFSSL_TICKET_RET_OK;
done:
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int tg_tls_cache_new(size_t slots, struct tg_tls_cache **out)
{
    struct tg_tls_cache *cache = calloc(1, sizeof(*cache));

    if (cache == NULL || (cache->e = calloc(slots, sizeof(*cache->e))) == NULL) {
        free(cache);
        return TG_ENOMEM;
    }
    cache->n = slots;
    *out = cache;
    return 0;
}

void tg_tls_cache_free(struct tg_tls_cache *cache)
{
    if (cache == NULL)
        return;
    for (size_t i = 0; i < cache->n; i++) {
        wolfSSL_SESSION_free(cache->e[i].session);
        peer_clear(&cache->e[i].peer);
    }
    free(cache->e);
    free(cache);
}

static struct tg_tls_cache_entry *cache_slot(struct tg_tls_cache *cache, const char *key)
{
    return &cache->e[hash_str(key) % cache->n];
}

void tg_tls_offer(struct tg_tls *t, struct tg_tls_cache *cache, const char *key)
{
    struct tg_tls_cache_entry *e = cache_slot(cache, key);

    if (!t->ctx->resumption || t->ctx->server || e->session == NULL || strcmp(e->key, key) != 0 ||
        e->ctx_serial != t->ctx->serial || e->peer.not_after <= tg_identity_now())
        return;
    if (peer_copy(&t->resumed, &e->peer) < 0)
        return;
    if (wolfSSL_set_session(t->ssl, e->session) != WOLFSSL_SUCCESS)
        peer_clear(&t->resumed);
}

void tg_tls_remember(struct tg_tls *t, struct tg_tls_cache *cache, const char *key)
{
    struct tg_tls_cache_entry *e = cache_slot(cache, key);
    WOLFSSL_SESSION *session;

    if (!t->ctx->resumption || t->ctx->server || t->peer.id == NULL ||
        strlen(key) >= sizeof(e->key))
        return;
    session = wolfSSL_get1_session(t->ssl);
    if (session == NULL)
        return;
    if (!wolfSSL_SESSION_has_ticket(session) || peer_copy(&e->peer, &t->peer) < 0) {
        wolfSSL_SESSION_free(session);
        return;
    }
    wolfSSL_SESSION_free(e->session);
    e->session = session;
    e->ctx_serial = t->ctx->serial;
    snprintf(e->key, sizeof(e->key), "%s", key);
}

bool tg_tls_resumed(const struct tg_tls *t)
{
    return wolfSSL_session_reused(t->ssl) == 1;
}

/* What a context trusts: id's bundle. Its CRLs are not wolfSSL's business: wolfSSL finds a
 * CRL by its issuer's name and wants one for every CA of every chain once any is loaded;
 * ours are tied to their signer's key and checked after the chain (check_revocation). The
 * handshake's contexts and tg_tls_verify_chain load it alike. */
static int load_trust(WOLFSSL_CTX *ctx, const struct tg_identity *id, char *err)
{
    if (wolfSSL_CTX_load_verify_buffer(ctx, (const unsigned char *)id->bundle_pem,
                                       (long)id->bundle_len,
                                       WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        return tg_err_set(err, TG_ETLS, "TLS: trust bundle not usable");
    return 0;
}

/* The roots of id's own trust domain (all of bundle_pem in an identity filled by hand). */
static void own_roots(const struct tg_identity *id, const char **pem, size_t *len)
{
    *pem = id->bundle_pem;
    *len = id->bundle_len;
    if (id->n_domains > 0) {
        *pem = id->bundle_pem + id->domains[0].off;
        *len = id->domains[0].len;
    }
}

/* A new store for domain's roots (n texts of PEM), the context's anchors[c->n_anchors]; the
 * array has room. */
static int add_anchors(struct tg_tls_ctx *c, const char *domain, const char *const *pem,
                       const size_t *len, size_t n, char *err)
{
    struct anchors *a = &c->anchors[c->n_anchors];

    snprintf(a->domain, sizeof(a->domain), "%s", domain);
    if ((a->cm = wolfSSL_CertManagerNew()) == NULL)
        return TG_ENOMEM;
    c->n_anchors++;
    for (size_t i = 0; i < n; i++)
        if (wolfSSL_CertManagerLoadCABuffer(a->cm, (const unsigned char *)pem[i], (long)len[i],
                                            WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
            return tg_err_set(err, TG_ETLS, "TLS: the roots of %.60s are not usable",
                              domain[0] ? domain : "the control plane");
    return 0;
}

/* One store per trust domain of id (our own only, for an identity filled by hand). */
static int make_anchors(struct tg_tls_ctx *c, const struct tg_identity *id, char *err)
{
    size_t n = id->n_domains > 0 ? id->n_domains : 1;

    if ((c->anchors = calloc(n, sizeof(*c->anchors))) == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *pem = id->bundle_pem;
        size_t len = id->bundle_len;
        int rc;

        if (id->n_domains > 0) {
            pem = id->bundle_pem + id->domains[i].off;
            len = id->domains[i].len;
        }
        rc = add_anchors(c, id->n_domains > 0 ? id->domains[i].name : id->trust_domain, &pem, &len,
                         1, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* wolfSSL never sees a socket (on_tls_recv/on_tls_send), and keeps no session cache: resumption,
 * where we allow it, is by tickets only. */
static void use_memory_io(WOLFSSL_CTX *ctx)
{
    wolfSSL_CTX_SetIORecv(ctx, on_tls_recv);
    wolfSSL_CTX_SetIOSend(ctx, on_tls_send);
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
}

int tg_tls_ctx_new(const struct tg_identity *id, const struct tg_tls_settings *s,
                   struct tg_tls_ctx **out, char *err)
{
    struct tg_tls_ctx *c = calloc(1, sizeof(*c));
    WOLFSSL_METHOD *method;
    int rc = TG_ENOMEM;

    if (c == NULL)
        return rc;
    c->server = s->server;
    c->peer_optional = s->server && s->peer_optional;
    c->resumption = s->resumption;
    c->serial = atomic_fetch_add(&next_ctx_serial, 1);
    c->max_chain_depth = s->max_chain_depth;
    c->id = id;
    if (s->server)
        method = s->allow_tls12 ? wolfSSLv23_server_method() : wolfTLSv1_3_server_method();
    else
        method = s->allow_tls12 ? wolfSSLv23_client_method() : wolfTLSv1_3_client_method();
    if (method == NULL || (c->ctx = wolfSSL_CTX_new(method)) == NULL)
        goto fail;
    if ((rc = set_protocol(c->ctx, s, err)) < 0)
        goto fail;
    rc = TG_ETLS;
    if (!use_key_pair(c->ctx, id->chain_pem, id->chain_len, id->key_pem, id->key_len)) {
        tg_err_set(err, rc, "TLS: identity not usable");
        goto fail;
    }
    if ((rc = load_trust(c->ctx, id, err)) < 0)
        goto fail;
    if ((rc = make_anchors(c, id, err)) < 0)
        goto fail;
    if (pthread_mutex_init(&c->anchored_lock, NULL) == 0)
        c->anchored_lock_ready = true; /* else no memory of anchored chains: slower, as safe */
    rc = TG_ETLS;
    wolfSSL_CTX_set_verify(
        c->ctx, WOLFSSL_VERIFY_PEER | (c->peer_optional ? 0 : WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT),
        on_verify);
    use_memory_io(c->ctx);
    if (s->server && !s->resumption) {
        wolfSSL_CTX_no_ticket_TLSv13(c->ctx);
    } else if (s->server) {
        if (pthread_mutex_init(&c->lock, NULL) != 0) {
            tg_err_set(err, rc, "TLS: cannot make the session-ticket lock");
            goto fail;
        }
        c->lock_ready = true;
        if (wc_InitRng(&c->rng) != 0) {
            tg_err_set(err, rc, "TLS: cannot make the session-ticket key (random generator)");
            goto fail;
        }
        c->rng_ready = true;
        if (wc_RNG_GenerateBlock(&c->rng, c->ticket_key, sizeof(c->ticket_key)) != 0 ||
            wc_RNG_GenerateBlock(&c->rng, c->ticket_name, sizeof(c->ticket_name)) != 0) {
            tg_err_set(err, rc, "TLS: cannot make the session-ticket key (random generator)");
            goto fail;
        }
        wolfSSL_CTX_set_TicketEncCb(c->ctx, on_ticket);
        wolfSSL_CTX_set_TicketEncCtx(c->ctx, c);
        wolfSSL_CTX_set_TicketHint(c->ctx, TICKET_LIFETIME_S);
    }
    *out = c;
    return 0;
fail:
    tg_tls_ctx_free(c);
    return rc;
}

/* A plain HTTPS server (tollgate-cp's admission webhook): the API server verifies us by its
 * caBundle and presents no certificate, so none is asked for; TLS 1.2 or 1.3, no tickets. */
int tg_tls_ctx_new_https(const char *chain_pem, size_t chain_len, const char *key_pem,
                         size_t key_len, struct tg_tls_ctx **out, char *err)
{
    struct tg_tls_ctx *c = calloc(1, sizeof(*c));
    struct tg_tls_settings s = {.server = true, .allow_tls12 = true};
    int rc = TG_ENOMEM;

    if (c == NULL)
        return rc;
    c->server = true;
    c->peer_optional = true;
    c->serial = atomic_fetch_add(&next_ctx_serial, 1);
    if ((c->ctx = wolfSSL_CTX_new(wolfSSLv23_server_method())) == NULL)
        goto fail;
    if ((rc = set_protocol(c->ctx, &s, err)) < 0)
        goto fail;
    rc = TG_ETLS;
    if (!use_key_pair(c->ctx, chain_pem, chain_len, key_pem, key_len)) {
        tg_err_set(err, rc, "TLS: certificate or key not usable");
        goto fail;
    }
    wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_NONE, NULL);
    use_memory_io(c->ctx);
    wolfSSL_CTX_no_ticket_TLSv13(c->ctx);
    *out = c;
    return 0;
fail:
    tg_tls_ctx_free(c);
    return rc;
}

/* The control-plane stream is ours at both ends: TLS 1.3 only, no tickets. */
int tg_tls_ctx_new_cp(const struct tg_identity *id, const char *ca_pem, size_t ca_len,
                      const struct tg_tls_settings *s, struct tg_tls_ctx **out, char *err)
{
    struct tg_tls_ctx *c = calloc(1, sizeof(*c));
    const char *roots[2] = {ca_pem, NULL};
    size_t lens[2] = {ca_len, 0};
    int rc = TG_ENOMEM;

    if (c == NULL)
        return rc;
    /* c->id stays NULL: the server's exact ID is checked, and id may go before we do */
    c->max_chain_depth = s->max_chain_depth;
    if ((c->ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method())) == NULL)
        goto fail;
    rc = TG_ETLS;
    if (wolfSSL_CTX_set_cipher_list(c->ctx, CIPHERS_13) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_groups(c->ctx, groups, (int)TG_NELEM(groups)) != WOLFSSL_SUCCESS) {
        tg_err_set(err, rc, "TLS: cipher suites or key exchange groups not available");
        goto fail;
    }
    if (id != NULL &&
        !use_key_pair(c->ctx, id->chain_pem, id->chain_len, id->key_pem, id->key_len)) {
        tg_err_set(err, rc, "TLS: identity not usable");
        goto fail;
    }
    if (wolfSSL_CTX_load_verify_buffer(c->ctx, (const unsigned char *)ca_pem, (long)ca_len,
                                       WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        tg_err_set(err, rc, "TLS: control-plane root not usable");
        goto fail;
    }
    /* our own trust domain's roots, never a federated one's: a partner must not be able to
     * vouch for the control plane */
    if (id != NULL) {
        own_roots(id, &roots[1], &lens[1]);
        if (wolfSSL_CTX_load_verify_buffer(c->ctx, (const unsigned char *)roots[1], (long)lens[1],
                                           WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
            tg_err_set(err, rc, "TLS: trust bundle not usable");
            goto fail;
        }
    }
    if ((c->anchors = calloc(1, sizeof(*c->anchors))) == NULL) {
        rc = TG_ENOMEM;
        goto fail;
    }
    if ((rc = add_anchors(c, "", roots, lens, id != NULL ? 2 : 1, err)) < 0)
        goto fail;
    if (pthread_mutex_init(&c->anchored_lock, NULL) == 0)
        c->anchored_lock_ready = true;
    wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_PEER, on_verify);
    use_memory_io(c->ctx);
    *out = c;
    return 0;
fail:
    tg_tls_ctx_free(c);
    return rc;
}

void tg_tls_ctx_free(struct tg_tls_ctx *c)
{
    if (c == NULL)
        return;
    wolfSSL_CTX_free(c->ctx);
    for (size_t i = 0; i < c->n_anchors; i++)
        wolfSSL_CertManagerFree(c->anchors[i].cm);
    free(c->anchors);
    for (size_t i = 0; c->anchored != NULL && i < ANCHORED_SLOTS; i++)
        known_leaf_free(c->anchored[i].leaf);
    free(c->anchored);
    if (c->anchored_lock_ready)
        pthread_mutex_destroy(&c->anchored_lock);
    for (size_t i = 0; c->slots != NULL && i < TICKET_SLOTS; i++)
        peer_clear(&c->slots[i].peer);
    free(c->slots);
    if (c->rng_ready)
        wc_FreeRng(&c->rng);
    if (c->lock_ready)
        pthread_mutex_destroy(&c->lock);
    explicit_bzero(c->ticket_key, sizeof(c->ticket_key));
    free(c);
}

int tg_tls_new(struct tg_tls_ctx *ctx, struct tg_pool *pool, const struct tg_tls_peer_rule *rule,
               struct tg_tls **out)
{
    struct tg_tls *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return TG_ENOMEM;
    t->ctx = ctx;
    t->pool = pool;
    t->rule = rule;
    t->ssl = wolfSSL_new(ctx->ctx);
    if (t->ssl == NULL) {
        free(t);
        return TG_ENOMEM;
    }
    wolfSSL_SetIOReadCtx(t->ssl, t);
    wolfSSL_SetIOWriteCtx(t->ssl, t);
    wolfSSL_SetCertCbCtx(t->ssl, t);
    /* The client offers our token; the server accepts it and still serves a plain TLS
     * client that offers none (an explicit inbound listener). */
    if (wolfSSL_UseALPN(t->ssl, tg_unconst(TG_ALPN), sizeof(TG_ALPN) - 1,
                        ctx->server ? WOLFSSL_ALPN_CONTINUE_ON_MISMATCH
                                    : WOLFSSL_ALPN_FAILED_ON_MISMATCH) != WOLFSSL_SUCCESS) {
        tg_tls_free(t);
        return TG_ETLS;
    }
    *out = t;
    return 0;
}

int tg_tls_offer_h2(struct tg_tls *t)
{
    /* replaces the list tg_tls_new set; a server picks the first of the client's list that it
     * knows, so the client's order decides: a tunnel first, ours as the fallback */
    static const char list[] = TG_ALPN_H2 "," TG_ALPN;

    if (wolfSSL_UseALPN(t->ssl, tg_unconst(list), sizeof(list) - 1,
                        t->ctx->server ? WOLFSSL_ALPN_CONTINUE_ON_MISMATCH
                                       : WOLFSSL_ALPN_FAILED_ON_MISMATCH) != WOLFSSL_SUCCESS)
        return TG_ETLS;
    return 0;
}

bool tg_tls_alpn_h2(const struct tg_tls *t)
{
    char *name = NULL;
    word16 len = 0;

    return wolfSSL_ALPN_GetProtocol(t->ssl, &name, &len) == WOLFSSL_SUCCESS && name != NULL &&
           len == sizeof(TG_ALPN_H2) - 1 && memcmp(name, TG_ALPN_H2, len) == 0;
}

void tg_tls_free(struct tg_tls *t)
{
    if (t == NULL)
        return;
    wolfSSL_free(t->ssl);
    tg_buf_drop(&t->cipher_in, t->pool);
    tg_buf_drop(&t->cipher_out, t->pool);
    peer_clear(&t->peer);
    peer_clear(&t->resumed);
    free(t);
}

struct tg_buf *tg_tls_cipher_in(struct tg_tls *t)
{
    return &t->cipher_in;
}

struct tg_buf *tg_tls_cipher_out(struct tg_tls *t)
{
    return &t->cipher_out;
}

void tg_tls_set_eof(struct tg_tls *t)
{
    t->eof = true;
}

/* A resumed session: the peer is who the ticket was issued to, if the rules of this
 * generation still accept it. */
static int resumed(struct tg_tls *t)
{
    struct tg_spiffe_id id;

    if (t->resumed.id == NULL || tg_spiffe_parse(t->resumed.id, &id, NULL) < 0)
        return refuse(t, TG_HSF_OTHER, "resumed session without a verified identity"), TG_EPEER;
    if (!accepted(t, &id)) {
        refusal_alert(t);
        return TG_EPEER;
    }
    peer_clear(&t->peer);
    t->peer = t->resumed;
    memset(&t->resumed, 0, sizeof(t->resumed));
    return 0;
}

/* The server name the client asked for, for the access log only (our server answers any):
 * read from the ClientHello before wolfSSL takes it, when its first record arrived whole
 * (wolfSSL keeps no SNI it was not configured with). */
static void look_for_sni(struct tg_tls *t)
{
    const unsigned char *p;
    size_t n = tg_buf_len(&t->cipher_in);
    unsigned int sz = sizeof(t->sni) - 1;

    if (!t->ctx->server || t->sni_looked || n < 5)
        return;
    p = (const unsigned char *)tg_buf_data(&t->cipher_in); /* storage only when n > 0 */
    t->sni_looked = true;
    if (n < 5 + ((size_t)p[3] << 8 | p[4]) || n > UINT32_MAX ||
        wolfSSL_SNI_GetFromBuffer(p, (unsigned int)n, WOLFSSL_SNI_HOST_NAME,
                                  (unsigned char *)t->sni, &sz) != WOLFSSL_SUCCESS)
        sz = 0;
    t->sni[sz < sizeof(t->sni) ? sz : sizeof(t->sni) - 1] = '\0';
}

int tg_tls_set_sni(struct tg_tls *t, const char *name)
{
    size_t n = strlen(name);

    if (n > UINT16_MAX ||
        wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, name, (unsigned short)n) != WOLFSSL_SUCCESS)
        return TG_ETLS;
    return 0;
}

const char *tg_tls_sni(const struct tg_tls *t)
{
    return t->sni[0] != '\0' ? t->sni : NULL;
}

int tg_tls_handshake(struct tg_tls *t)
{
    int rc, e;
    const char *text;
    enum tg_hs_fail fail;

    look_for_sni(t);
    rc = t->ctx->server ? wolfSSL_accept(t->ssl) : wolfSSL_connect(t->ssl);
    if (rc == WOLFSSL_SUCCESS) {
        if (wolfSSL_session_reused(t->ssl) == 1)
            return resumed(t);
        if (t->peer.id == NULL && !t->ctx->peer_optional) /* never let it through */
            return refuse(t, TG_HSF_NO_CERT, "no verified peer identity"), TG_EPEER;
        return 0;
    }
    e = wolfSSL_get_error(t->ssl, rc);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
        return TG_EAGAIN;
    if (t->failed)
        return TG_EPEER;
    if (e == FATAL_ERROR) {
        WOLFSSL_ALERT_HISTORY h;

        heard_alert(t);
        wolfSSL_get_alert_history(t->ssl, &h);
        if (h.last_rx.code == certificate_required)
            t->fail = TG_HSF_NO_CERT;
        else if (h.last_rx.code == 70 /* protocol_version */)
            t->fail = TG_HSF_PROTOCOL;
        return TG_EPEER;
    }
    fail = classify(e, &text);
    refuse(t, fail, "%s (%d)", text, e);
    if (t->eof && t->fail == TG_HSF_OTHER)
        t->fail = TG_HSF_CLOSED;
    return t->fail == TG_HSF_CLOSED ? TG_ECLOSED : TG_EPEER;
}

int tg_tls_read(struct tg_tls *t, char *dst, size_t cap)
{
    int n, e;

    /* Nothing new to decrypt: answer without asking wolfSSL, whose every WANT_READ formats
     * an error string (OPENSSL_EXTRA's error reporting). */
    if (tg_buf_len(&t->cipher_in) == 0 && !t->eof && !wolfSSL_has_pending(t->ssl))
        return TG_EAGAIN;
    n = wolfSSL_read(t->ssl, dst, cap > INT32_MAX ? INT32_MAX : (int)cap);

    if (n > 0)
        return n;
    e = wolfSSL_get_error(t->ssl, n);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
        return TG_EAGAIN;
    if (e == WOLFSSL_ERROR_ZERO_RETURN || e == ZERO_RETURN)
        return TG_ECLOSED;
    if (e == FATAL_ERROR) { /* after our handshake: the server's refusal of our certificate */
        heard_alert(t);
        return TG_EPEER;
    }
    if (t->eof && tg_buf_len(&t->cipher_in) == 0 &&
        (e == SOCKET_ERROR_E || e == SOCKET_PEER_CLOSED_E))
        return TG_ECLOSED; /* EOF without close_notify: treated as the end of the stream */
    snprintf(t->why, sizeof(t->why), "%s", wolfSSL_ERR_reason_error_string((unsigned long)e));
    return TG_ETLS;
}

size_t tg_tls_write_room(size_t n)
{
    return n + (n / RECORD_MAX + 1) * RECORD_OVERHEAD;
}

int tg_tls_write(struct tg_tls *t, const char *src, size_t n)
{
    int rc = wolfSSL_write(t->ssl, src, (int)n);

    if (rc > 0)
        return rc;
    snprintf(t->why, sizeof(t->why), "%s",
             wolfSSL_ERR_reason_error_string((unsigned long)wolfSSL_get_error(t->ssl, rc)));
    return TG_ETLS;
}

void tg_tls_shutdown(struct tg_tls *t)
{
    if (t->shutdown_sent)
        return;
    t->shutdown_sent = true;
    wolfSSL_shutdown(t->ssl);
}

const char *tg_tls_peer_refusal(const struct tg_tls *t)
{
    return t->failed && t->fail == TG_HSF_PEER_REFUSED ? t->peer_kind : NULL;
}

enum tg_hs_fail tg_tls_fail(const struct tg_tls *t, const char **why)
{
    *why = t->why;
    return t->failed ? t->fail : TG_HSF_OTHER;
}

const struct tg_peer_info *tg_tls_peer(const struct tg_tls *t)
{
    return &t->peer;
}

const char *tg_tls_version(const struct tg_tls *t)
{
    return wolfSSL_get_version(t->ssl);
}

const char *tg_tls_cipher(const struct tg_tls *t)
{
    return wolfSSL_get_cipher_name(t->ssl);
}

void tg_tls_release_buffers(struct tg_tls *t)
{
    tg_buf_release(&t->cipher_in, t->pool);
    tg_buf_release(&t->cipher_out, t->pool);
}

/* ---- a chain checked away from a handshake ---- */

/* Whether id is of trust's domain or one of domains (NULL: none), when either names one. */
static bool in_domains(const struct tg_identity *trust, const struct tg_strlist *domains,
                       const struct tg_spiffe_id *id)
{
    size_t n = domains != NULL ? domains->n : 0;

    if (trust->trust_domain[0] == '\0' && n == 0)
        return true; /* none known: not checked */
    if (trust->trust_domain[0] != '\0' && tg_spiffe_in_domain(id, trust->trust_domain))
        return true;
    for (size_t i = 0; i < n; i++)
        if (tg_spiffe_in_domain(id, domains->v[i]))
            return true;
    return false;
}

int tg_tls_verify_chain(const struct tg_identity *trust, const struct tg_tls_settings *s,
                        const struct tg_strlist *domains, const struct tg_tls_chain *chain,
                        struct tg_cert_info *leaf, enum tg_hs_fail *fail, char *why)
{
    struct tg_tls_ctx c = {.server = s->server, .max_chain_depth = s->max_chain_depth};
    const char *side = s->server ? "client" : "server", *domain;
    struct tg_chain_link *links = NULL;
    size_t n_links = 0;
    char rev_why[160];
    WOLFSSL_CERT_MANAGER *cm;
    struct tg_cert_info info;
    const char *text;
    int v, rc;

    memset(leaf, 0, sizeof(*leaf));
    *fail = TG_HSF_OTHER;
    if (chain->n == 0)
        return tg_err_set(why, TG_EINVAL, "no certificate");
    if ((c.ctx = wolfSSL_CTX_new(wolfTLS_server_method())) == NULL)
        return TG_ENOMEM;
    if ((rc = load_trust(c.ctx, trust, why)) < 0)
        goto done;
    cm = wolfSSL_CTX_GetCertManager(c.ctx);
    rc = TG_EPEER;
    /* As the handshake takes a peer's chain: from the root side down, each certificate
     * verified (signature, dates, CRLs) by what is trusted so far, and an intermediate that
     * is a CA trusted in turn; then the leaf, and its checks as on_verify makes them. */
    for (size_t i = chain->n; i-- > 0;) {
        v = wolfSSL_CertManagerVerifyBuffer(cm, chain->der[i], (long)chain->len[i],
                                            WOLFSSL_FILETYPE_ASN1);
        if (v != WOLFSSL_SUCCESS) {
            *fail = verify_fail(v, &text);
            tg_err_set(why, rc, "%s certificate %zu: %s", side, i, text);
            goto done;
        }
        if (i > 0 && tg_cert_inspect(chain->der[i], chain->len[i], &info, NULL) == 0 &&
            info.is_ca &&
            wolfSSL_CertManagerLoadCABuffer(cm, chain->der[i], (long)chain->len[i],
                                            WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS) {
            *fail = TG_HSF_UNTRUSTED;
            tg_err_set(why, rc, "%s certificate %zu: not usable as a CA", side, i);
            goto done;
        }
    }
    if (!leaf_ok(s->server, s->max_chain_depth, (int)chain->n, chain->der[0], chain->len[0], leaf,
                 fail, why, TG_ERRLEN))
        goto done;
    if (!in_domains(trust, domains, &leaf->id)) {
        *fail = TG_HSF_TRUST_DOMAIN;
        tg_err_set(why, rc, "%s %s: trust domain not accepted", side, leaf->id.id);
        goto done;
    }
    if ((domain = domain_of_id(trust, &leaf->id)) == NULL)
        domain = "";
    if (tg_revocations_links(trust->rev, domain, chain->der, chain->len, chain->n, &links,
                             &n_links) < 0) {
        rc = TG_ENOMEM;
        goto done;
    }
    switch (tg_revocations_check(trust->rev, domain, links, n_links, rev_why, sizeof(rev_why))) {
    case TG_REV_REVOKED:
        *fail = TG_HSF_REVOKED;
        tg_err_set(why, rc, "%s %s: %s", side, leaf->id.id, rev_why);
        goto done;
    case TG_REV_NO_CRL:
        *fail = TG_HSF_UNTRUSTED;
        tg_err_set(why, rc, "%s %s: %s", side, leaf->id.id, rev_why);
        goto done;
    case TG_REV_OK:
        break;
    }
    rc = 0;
done:
    free(links);
    wolfSSL_CTX_free(c.ctx);
    return rc;
}

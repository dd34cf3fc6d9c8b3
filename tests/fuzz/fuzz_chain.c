/* Mutated certificate chains through our whole verify + SPIFFE path: the chain arrives in a
 * real handshake of one of our sessions (tls.c), so wolfSSL's chain validation against the
 * bundle and our verify callback (depth, leaf usage, tg_cert_inspect, SPIFFE ID, trust
 * domain, allow or expect list) run exactly as for a peer, in either role.
 *
 * How the chain gets in without the peer's key: TLS 1.2 (allow_tls12 set on our session)
 * sends Certificate in plain text, and both roles verify it when it arrives, before any key
 * exchange; wolfSSL's ProcessPeerCerts and our callback are the ones TLS 1.3 uses. The fuzzer
 * writes the flight before it by hand: a ServerHello (our side the client) or a ClientHello
 * (our side the server), then the Certificate message with the chain.
 *
 * Input: byte 0 options (bit 0: our side is the server; bits 1-2: max_chain_depth 4, 1, 2,
 * 3), then items [kind u8][len u16 big-endian][bytes]: kind 0 is a certificate's DER as is,
 * kind 1/2/3 a TBSCertificate that the fuzzer signs (ECDSA P-256 SHA-256) with the
 * intermediate's, the root's or the server leaf's key, so mutations inside it (names, SANs,
 * extensions, dates) still reach our code with a valid signature.
 *
 * Oracle: an accepted chain (our session holds a peer ID) must have a leaf that
 * tg_cert_inspect accepts, with exactly that SPIFFE ID, in mesh.local, the one the rule
 * names, not a CA, with the EKU our role needs, and no more certificates than the depth. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "fuzz_tls_util.h"

#define MAX_ITEMS 12
#define MAX_CERT 4096

struct signer {
    ecc_key key;
};

static struct signer signers[3]; /* intermediate, root, server leaf */
static struct tg_identity server_id, client_id;
static struct tg_tls_ctx *ctxs[2][4]; /* [server][depth selector] */
static uint64_t stats[TG_HSF_N + 2];

static void print_stats(void)
{
    fprintf(stderr, "fuzz_chain: accepted %llu, still waiting %llu", (unsigned long long)stats[0],
            (unsigned long long)stats[1]);
    for (int i = 0; i < TG_HSF_N; i++)
        if (stats[2 + i])
            fprintf(stderr, ", %s %llu", tg_hs_fail_name((enum tg_hs_fail)i),
                    (unsigned long long)stats[2 + i]);
    fprintf(stderr, "; draws from the fixed generator: %llu\n", (unsigned long long)fuzz_draws);
}

static void load_signer(struct signer *s, const char *pem)
{
    unsigned char der[512];
    word32 idx = 0;
    int n = wc_KeyPemToDer((const unsigned char *)pem, (int)strlen(pem), der, sizeof(der), NULL);

    if (n <= 0 || wc_ecc_init(&s->key) != 0 ||
        wc_EccPrivateKeyDecode(der, &idx, &s->key, (word32)n) != 0)
        abort();
}

static void setup(void)
{
    char err[TG_ERRLEN];

    FUZZ_ONCE();
    fuzz_tls_once();
    load_signer(&signers[0], FUZZ_INTER_KEY);
    load_signer(&signers[1], FUZZ_ROOT_KEY);
    load_signer(&signers[2], FUZZ_SERVER_KEY);
    fuzz_identity(&server_id, FUZZ_SERVER_CHAIN, FUZZ_SERVER_KEY);
    fuzz_identity(&client_id, FUZZ_CLIENT_CHAIN, FUZZ_CLIENT_KEY);
    for (int server = 0; server < 2; server++) {
        for (int d = 0; d < 4; d++) {
            struct tg_tls_settings s = {
                .server = server,
                .allow_tls12 = true,
                .max_chain_depth = d == 0 ? 4 : (unsigned)d,
            };

            if (tg_tls_ctx_new(server ? &server_id : &client_id, &s, &ctxs[server][d], err) < 0) {
                fuzz_setup_failed("fuzz_chain", err);
            }
        }
    }
    fuzz_stats_at_exit(print_stats);
}

/* ---- building messages ---- */

struct out {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct out *o, const void *src, size_t n)
{
    if (n == 0)
        return;
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->p = realloc(o->p, o->cap);
        if (o->p == NULL)
            abort();
    }
    memcpy(o->p + o->n, src, n);
    o->n += n;
}

static void put_n(struct out *o, size_t v, int bytes)
{
    unsigned char b[4];

    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    put(o, b, (size_t)bytes);
}

/* DER length of n. */
static void put_len(struct out *o, size_t n)
{
    if (n < 0x80) {
        put_n(o, n, 1);
    } else if (n < 0x100) {
        put_n(o, 0x81, 1);
        put_n(o, n, 1);
    } else {
        put_n(o, 0x82, 1);
        put_n(o, n, 2);
    }
}

/* Certificate ::= SEQUENCE { tbs, ecdsa-with-SHA256, BIT STRING signature } */
static void sign_tbs(struct out *cert, const unsigned char *tbs, size_t len, struct signer *s,
                     WC_RNG *rng)
{
    static const unsigned char alg[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                        0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    unsigned char hash[WC_SHA256_DIGEST_SIZE], sig[80];
    word32 sig_len = sizeof(sig);
    struct out body = {0};

    if (wc_Sha256Hash(tbs, (word32)len, hash) != 0 ||
        wc_ecc_sign_hash(hash, sizeof(hash), sig, &sig_len, rng, &s->key) != 0)
        abort();
    put(&body, tbs, len);
    put(&body, alg, sizeof(alg));
    put_n(&body, 0x03, 1);
    put_len(&body, sig_len + 1);
    put_n(&body, 0, 1);
    put(&body, sig, sig_len);
    put_n(cert, 0x30, 1);
    put_len(cert, body.n);
    put(cert, body.p, body.n);
    free(body.p);
}

/* Handshake message msg (type, 24-bit length, body) in records of at most 16384 bytes. */
static void put_records(struct out *o, const struct out *msg)
{
    for (size_t at = 0; at < msg->n;) {
        size_t n = msg->n - at < 16384 ? msg->n - at : 16384;

        put_n(o, 22, 1);
        put_n(o, 0x0303, 2);
        put_n(o, n, 2);
        put(o, msg->p + at, n);
        at += n;
    }
}

static void server_hello(struct out *o)
{
    struct out m = {0};
    unsigned char random[32];

    for (size_t i = 0; i < sizeof(random); i++)
        random[i] = (unsigned char)(i * 7 + 1); /* no downgrade sentinel */
    put_n(&m, 2, 1);
    put_n(&m, 2 + 32 + 1 + 2 + 1, 3);
    put_n(&m, 0x0303, 2);
    put(&m, random, sizeof(random));
    put_n(&m, 0, 1);      /* session id */
    put_n(&m, 0xc02b, 2); /* ECDHE-ECDSA-AES128-GCM-SHA256 */
    put_n(&m, 0, 1);      /* no compression; no extensions */
    put_records(o, &m);
    free(m.p);
}

static void client_hello(struct out *o)
{
    static const unsigned char ext[] = {
        0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17, /* supported_groups: P-256 */
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00,             /* ec_point_formats: uncompressed */
        0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03, /* signature_algorithms */
    };
    struct out m = {0};
    unsigned char random[32];

    for (size_t i = 0; i < sizeof(random); i++)
        random[i] = (unsigned char)(i * 5 + 3);
    put_n(&m, 1, 1);
    put_n(&m, 2 + 32 + 1 + 4 + 2 + 2 + sizeof(ext), 3);
    put_n(&m, 0x0303, 2);
    put(&m, random, sizeof(random));
    put_n(&m, 0, 1);      /* session id */
    put_n(&m, 2, 2);      /* cipher suites */
    put_n(&m, 0xc02b, 2); /* ECDHE-ECDSA-AES128-GCM-SHA256 */
    put_n(&m, 0x0100, 2); /* compression: null */
    put_n(&m, sizeof(ext), 2);
    put(&m, ext, sizeof(ext));
    put_records(o, &m);
    free(m.p);
}

/* ---- driving our session ---- */

/* Feeds bytes to t and drives its handshake while it wants more. */
static int drive(struct tg_tls *t, const unsigned char *p, size_t n)
{
    int rc = tg_tls_handshake(t);

    while (rc == TG_EAGAIN && n > 0) {
        size_t took = fuzz_feed(tg_tls_cipher_in(t), p, n);

        p += took;
        n -= took;
        tg_buf_consume(tg_tls_cipher_out(t), tg_buf_len(tg_tls_cipher_out(t)));
        rc = tg_tls_handshake(t);
    }
    tg_buf_consume(tg_tls_cipher_out(t), tg_buf_len(tg_tls_cipher_out(t)));
    return rc;
}

static void check_accepted(struct tg_tls *t, bool server, unsigned depth, const struct out *certs,
                           size_t n_certs, const size_t *len)
{
    const struct tg_peer_info *peer = tg_tls_peer(t);
    struct tg_cert_info info;
    char err[TG_ERRLEN];

    if (n_certs < 1 || n_certs > depth)
        abort();
    if (tg_cert_inspect(certs->p, len[0], &info, err) < 0 || !info.id_ok || info.is_ca ||
        info.key_cert_sign)
        abort();
    if (info.eku_set && !(server ? info.eku_client : info.eku_server))
        abort();
    if (strcmp(peer->id, info.id.id) != 0 || strcmp(peer->sha256, info.sha256) != 0 ||
        !tg_spiffe_in_domain(&info.id, "mesh.local"))
        abort();
    if (strcmp(peer->id, server ? FUZZ_CLIENT_ID : FUZZ_SERVER_ID) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char client_ids[] = FUZZ_CLIENT_ID, server_ids[] = FUZZ_SERVER_ID;
    char *allow[] = {client_ids}, *expect[] = {server_ids};
    struct tg_strlist allow_list = {allow, 1}, expect_list = {expect, 1};
    struct tg_tls_peer_rule rule;
    struct out certs = {0}, msg = {0}, wire = {0};
    size_t len[MAX_ITEMS], n_certs = 0, at = 1;
    bool server;
    unsigned depth_sel, depth;
    struct tg_tls *t;
    WC_RNG rng;
    int rc;

    setup();
    if (size < 1)
        return 0;
    server = data[0] & 1;
    depth_sel = (data[0] >> 1) & 3;
    depth = depth_sel == 0 ? 4 : depth_sel;
    fuzz_rng_reset();
    if (wc_InitRng(&rng) != 0)
        abort();
    while (at + 3 <= size && n_certs < MAX_ITEMS) {
        unsigned kind = data[at] & 3;
        size_t n = (size_t)data[at + 1] << 8 | data[at + 2], before = certs.n;

        at += 3;
        if (n > size - at)
            n = size - at;
        if (n > MAX_CERT)
            n = MAX_CERT;
        if (kind == 0)
            put(&certs, data + at, n);
        else
            sign_tbs(&certs, data + at, n, &signers[kind - 1], &rng);
        len[n_certs++] = certs.n - before;
        at += n;
    }
    wc_FreeRng(&rng);

    /* Certificate: type 11, length, certificate_list<0..2^24-1> of opaque<1..2^24-1> */
    put_n(&msg, 11, 1);
    put_n(&msg, 3 + certs.n + 3 * n_certs, 3);
    put_n(&msg, certs.n + 3 * n_certs, 3);
    for (size_t i = 0, off = 0; i < n_certs; off += len[i], i++) {
        put_n(&msg, len[i], 3);
        if (len[i] > 0)
            put(&msg, certs.p + off, len[i]);
    }
    if (server)
        client_hello(&wire);
    else
        server_hello(&wire);
    put_records(&wire, &msg);

    rule.ids = server ? &allow_list : &expect_list;
    if (tg_tls_new(ctxs[server][depth_sel], &fuzz_pool, &rule, &t) < 0)
        abort();
    rc = drive(t, wire.p, wire.n);
    if (rc == 0)
        abort(); /* no key exchange was sent: the handshake cannot have finished */
    if (tg_tls_peer(t)->id != NULL) {
        check_accepted(t, server, depth, &certs, n_certs, len);
        stats[0]++;
    } else if (rc == TG_EAGAIN) {
        stats[1]++;
    } else {
        const char *why;

        stats[2 + tg_tls_fail(t, &why)]++;
    }
    tg_tls_free(t);
    free(certs.p);
    free(msg.p);
    free(wire.p);
    return 0;
}

/* The TLS handshake and record layer of one of our sessions (tls.c, in either role) against
 * a real peer: a second session made by our own code with the test PKI of fuzz_certs.h. The
 * fuzzer sits on the wire from the peer to us and, record by record, passes, corrupts,
 * truncates, drops, duplicates, replaces or splits what the peer sends (the delivery in
 * pieces is the arbitrary read split of a socket). Randomness and time are fixed
 * (fuzz_tls_util.h), so the same input makes the same bytes, and an unmutated prefix of the
 * peer's flight (ServerHello ... Certificate, encrypted in TLS 1.3) reaches our verify
 * callback and SPIFFE checks; a mutation after it decrypts to garbage and tests the failure
 * paths. After the handshake the peer sends data and close_notify through the same filter.
 *
 * Input: byte 0 options
 *   bit 0: our side is the server; bit 1: TLS 1.2 allowed on both sides;
 *   bit 2: the peer presents the wrong identity (the other role's certificate);
 *   bit 3: our server issues session tickets (resumption);
 *   bit 4: the peer client presents no certificate (our side the server);
 *   bit 5: resumption: a first, untouched handshake gets the peer client a ticket from our
 *          server, and the fuzzed handshake offers it (the ticket travels in the ClientHello
 *          the ops mutate, so our ticket callback opens mutated tickets);
 * byte 1: bytes of application data the peer sends (x 64); then ops, one per record from
 * the peer (see apply()). When the ops run out, records pass unchanged.
 *
 * Oracle: our handshake finishing means a verified peer with exactly the expected ID, and
 * never with the wrong or no certificate; with no mutation at all, both handshakes finish
 * (a resumption resumes) and the data arrive intact, then the close. Set TG_FUZZ_STATS=1 for a
 * summary of the outcomes (how many inputs reached a verified peer, which refusals) at exit, and a
 * digest of every byte both sides were given: the same inputs, replayed, must give the same digest.
 */
#include "fuzz_tls_util.h"

#define ROUNDS 40
#define GOT_MAX 65536

static struct tg_identity server_id, client_id;
static struct tg_tls_ctx *ours[2][2][2];               /* [server][tls12][resumption] */
static struct tg_tls_ctx *peers[2][2][2];              /* [peer is server][tls12][wrong identity] */
static struct tg_tls_ctx *peer_anon[2];                /* [tls12]: a client without a certificate */
static struct tg_tls_ctx *peer_resume[2];              /* [tls12]: a client that keeps tickets */
static uint64_t stats[TG_HSF_N + 4];                   /* ..., refusals by reason, resumed */
static uint64_t wire_digest = 14695981039346656037ull; /* FNV-1a of every byte delivered */

static void print_stats(void)
{
    fprintf(stderr,
            "fuzz_tls: verified peer and handshake done %llu, data intact %llu, "
            "no verdict %llu",
            (unsigned long long)stats[0], (unsigned long long)stats[1],
            (unsigned long long)stats[2]);
    for (int i = 0; i < TG_HSF_N; i++)
        if (stats[3 + i])
            fprintf(stderr, ", %s %llu", tg_hs_fail_name((enum tg_hs_fail)i),
                    (unsigned long long)stats[3 + i]);
    fprintf(stderr, "; resumed %llu", (unsigned long long)stats[3 + TG_HSF_N]);
    fprintf(stderr, "; draws from the fixed generator: %llu; wire digest %016llx\n",
            (unsigned long long)fuzz_draws, (unsigned long long)wire_digest);
}

static struct tg_tls_ctx *make_ctx(const struct tg_identity *id, bool server, bool tls12,
                                   bool resumption)
{
    struct tg_tls_settings s = {
        .server = server, .allow_tls12 = tls12, .max_chain_depth = 4, .resumption = resumption};
    struct tg_tls_ctx *c;
    char err[TG_ERRLEN];

    if (tg_tls_ctx_new(id, &s, &c, err) < 0) {
        fuzz_setup_failed("fuzz_tls", err);
    }
    return c;
}

static void setup(void)
{
    char err[TG_ERRLEN];

    FUZZ_ONCE();
    fuzz_tls_once();
    fuzz_identity(&server_id, FUZZ_SERVER_CHAIN, FUZZ_SERVER_KEY);
    fuzz_identity(&client_id, FUZZ_CLIENT_CHAIN, FUZZ_CLIENT_KEY);
    for (int v = 0; v < 2; v++) {
        struct tg_tls_settings s = {.allow_tls12 = v, .max_chain_depth = 4};

        for (int r = 0; r < 2; r++) {
            ours[1][v][r] = make_ctx(&server_id, true, v, r);
            ours[0][v][r] = make_ctx(&client_id, false, v, false);
        }
        for (int w = 0; w < 2; w++) {
            peers[1][v][w] = make_ctx(w ? &client_id : &server_id, true, v, false);
            peers[0][v][w] = make_ctx(w ? &server_id : &client_id, false, v, false);
        }
        peer_resume[v] = make_ctx(&client_id, false, v, true);
        if (tg_tls_ctx_new_cp(NULL, FUZZ_ROOT_PEM, strlen(FUZZ_ROOT_PEM), &s, &peer_anon[v], err) <
            0) {
            fuzz_setup_failed("fuzz_tls", err);
        }
    }
    fuzz_stats_at_exit(print_stats);
}

/* ---- one endpoint ---- */

struct end {
    struct tg_tls *t;
    int hs;      /* TG_EAGAIN, 0, or the failure */
    bool closed; /* read the end of the stream */
    bool failed; /* a read failed after the handshake */
    char *got;   /* what tg_tls_read gave */
    size_t n_got;
};

/* Handshake while it wants to, then reads what there is to read. */
static void step(struct end *e)
{
    if (e->hs == TG_EAGAIN)
        e->hs = tg_tls_handshake(e->t);
    if (e->hs != 0)
        return;
    for (int i = 0; i < 64 && !e->closed && !e->failed; i++) {
        char buf[4096];
        int n = tg_tls_read(e->t, buf, sizeof(buf));

        if (n == TG_EAGAIN)
            break;
        if (n == TG_ECLOSED) {
            e->closed = true;
        } else if (n < 0) {
            e->failed = true;
        } else if (e->n_got + (size_t)n <= GOT_MAX) {
            memcpy(e->got + e->n_got, buf, (size_t)n);
            e->n_got += (size_t)n;
        }
    }
}

/* Gives e the bytes in pieces of split (0: all at once), stepping after each piece. */
static void deliver(struct end *e, const unsigned char *p, size_t n, size_t split)
{
    for (size_t i = 0; i < n; i++) /* the same input must put the same bytes on the wire */
        wire_digest = (wire_digest ^ p[i]) * 1099511628211ull;
    for (size_t guard = 0; n > 0 && guard < 65536; guard++) { /* pieces of 1 byte too */
        size_t piece = split == 0 || split > n ? n : split;
        size_t took = fuzz_feed(tg_tls_cipher_in(e->t), p, piece);

        p += took;
        n -= took;
        step(e);
    }
}

/* ---- the wire from the peer to us ---- */

struct ops {
    const uint8_t *p;
    size_t n;
    bool mutated;
};

static unsigned op_byte(struct ops *o)
{
    unsigned b;

    if (o->n == 0)
        return 0;
    b = *o->p;
    o->p++;
    o->n--;
    return b;
}

/* One record of the peer's, as the op says:
 *   0 pass; 1 flip the byte at offset (2 bytes) with a mask (1 byte); 2 truncate to a length
 *   (1 byte); 3 drop; 4 pass twice; 5 replace by a record of type (1 byte) and a body of
 *   len (1 byte) bytes taken from the input; 6 rewrite the header's type and version bytes
 *   (3 bytes); 7 pass in pieces of 1..64 bytes (1 byte), which must change nothing. */
static void apply(struct ops *o, struct end *us, const unsigned char *rec, size_t n)
{
    unsigned op = o->n > 0 ? op_byte(o) & 7 : 0;
    unsigned char copy[5 + 16384 + 2048 + 256];
    size_t at, len;

    if (op != 0 && op != 7) /* a split changes no byte */
        o->mutated = true;
    switch (op) {
    case 1:
        memcpy(copy, rec, n);
        at = op_byte(o) << 8;
        at = (at | op_byte(o)) % n;
        copy[at] ^= (unsigned char)(op_byte(o) | 1);
        deliver(us, copy, n, 0);
        break;
    case 2:
        deliver(us, rec, op_byte(o) % n, 0);
        break;
    case 3:
        break;
    case 4:
        deliver(us, rec, n, 0);
        deliver(us, rec, n, 0);
        break;
    case 5:
        copy[0] = (unsigned char)op_byte(o);
        copy[1] = 3;
        copy[2] = 3;
        len = op_byte(o);
        len = len < o->n ? len : o->n;
        copy[3] = 0;
        copy[4] = (unsigned char)len;
        memcpy(copy + 5, o->p, len);
        o->p += len;
        o->n -= len;
        deliver(us, copy, 5 + len, 0);
        break;
    case 6:
        memcpy(copy, rec, n);
        copy[0] = (unsigned char)op_byte(o);
        copy[1] = (unsigned char)op_byte(o);
        copy[2] = (unsigned char)op_byte(o);
        deliver(us, copy, n, 0);
        break;
    case 7:
        deliver(us, rec, n, op_byte(o) % 64 + 1);
        break;
    default:
        deliver(us, rec, n, 0);
    }
}

struct wire {
    unsigned char buf[2 * (5 + 16384 + 2048 + 256)];
    size_t n;
};

/* Takes what the peer wrote; gives us each whole record through apply(); with flush, also
 * a partial one left at the end. */
static void carry_to_us(struct end *peer, struct end *us, struct wire *w, struct ops *o, bool flush)
{
    struct tg_buf *out = tg_tls_cipher_out(peer->t);

    for (int guard = 0; guard < 256; guard++) {
        size_t take = tg_buf_len(out), rec;

        if (take > sizeof(w->buf) - w->n)
            take = sizeof(w->buf) - w->n;
        if (take > 0) {
            memcpy(w->buf + w->n, tg_buf_data(out), take);
            w->n += take;
            tg_buf_consume(out, take);
        }
        if (w->n < 5)
            break;
        rec = 5 + ((size_t)w->buf[3] << 8 | w->buf[4]);
        if (rec > w->n) {
            if (rec > sizeof(w->buf) / 2) { /* no record of ours is that long */
                deliver(us, w->buf, w->n, 0);
                w->n = 0;
            }
            break;
        }
        apply(o, us, w->buf, rec);
        memmove(w->buf, w->buf + rec, w->n - rec);
        w->n -= rec;
    }
    if (flush && w->n > 0) {
        deliver(us, w->buf, w->n, 0);
        w->n = 0;
    }
}

static size_t carry_to_peer(struct end *us, struct end *peer)
{
    struct tg_buf *out = tg_tls_cipher_out(us->t);
    size_t n = tg_buf_len(out);

    if (n == 0)
        return 0; /* no storage either: tg_buf_data would be NULL + 0 */
    deliver(peer, (const unsigned char *)tg_buf_data(out), n, 0);
    tg_buf_consume(out, n);
    return n;
}

static void end_free(struct end *e)
{
    tg_tls_free(e->t);
    free(e->got);
}

static bool writes(struct end *e, const char *p, size_t n)
{
    struct tg_buf *out = tg_tls_cipher_out(e->t);

    if (tg_buf_reserve(out, &fuzz_pool, true) < 0 || tg_buf_room(out) < tg_tls_write_room(n))
        return false;
    return tg_tls_write(e->t, p, n) == (int)n;
}

/* Both handshakes until neither moves; the client speaks first. */
static void handshake(struct end *us, struct end *peer, struct wire *w, struct ops *o, bool server)
{
    for (int round = 0; round < ROUNDS; round++) {
        size_t moved;

        if (!server)
            step(us);
        moved = carry_to_peer(us, peer);
        step(peer);
        moved += tg_buf_len(tg_tls_cipher_out(peer->t));
        carry_to_us(peer, us, w, o, peer->hs != TG_EAGAIN);
        if (server)
            step(us);
        if (us->hs != TG_EAGAIN && (peer->hs != TG_EAGAIN || us->hs < 0)) {
            carry_to_peer(us, peer); /* our alert or last flight */
            step(peer);
            break;
        }
        if (moved == 0 && tg_buf_len(tg_tls_cipher_out(us->t)) == 0)
            break;
    }
}

/* An untouched full handshake of the resuming client with our ticket-issuing server; the
 * client keeps the ticket in cache. Whether it got one. */
static bool first_handshake(bool tls12, struct tg_tls_cache *cache)
{
    static char client_ids[] = FUZZ_CLIENT_ID, server_ids[] = FUZZ_SERVER_ID;
    char *allow[] = {client_ids}, *expect[] = {server_ids};
    struct tg_strlist allow_list = {allow, 1}, expect_list = {expect, 1};
    struct tg_tls_peer_rule our_rule = {&allow_list}, peer_rule = {&expect_list};
    struct end us = {.hs = TG_EAGAIN}, peer = {.hs = TG_EAGAIN};
    struct ops none = {NULL, 0, false};
    static struct wire w;
    bool ok;

    w.n = 0;
    us.got = malloc(GOT_MAX);
    peer.got = malloc(GOT_MAX);
    if (us.got == NULL || peer.got == NULL ||
        tg_tls_new(ours[1][tls12][1], &fuzz_pool, &our_rule, &us.t) < 0 ||
        tg_tls_new(peer_resume[tls12], &fuzz_pool, &peer_rule, &peer.t) < 0)
        abort();
    handshake(&us, &peer, &w, &none, true);
    carry_to_peer(&us, &peer); /* the NewSessionTicket */
    ok = us.hs == 0 && peer.hs == 0;
    if (ok)
        tg_tls_remember(peer.t, cache, "upstream");
    end_free(&us);
    end_free(&peer);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char client_ids[] = FUZZ_CLIENT_ID, server_ids[] = FUZZ_SERVER_ID;
    char *allow[] = {client_ids}, *expect[] = {server_ids};
    struct tg_strlist allow_list = {allow, 1}, expect_list = {expect, 1}, anyone = {NULL, 0};
    struct tg_tls_peer_rule our_rule, peer_rule;
    struct end us = {.hs = TG_EAGAIN}, peer = {.hs = TG_EAGAIN};
    static struct wire w;
    struct ops o;
    bool server, tls12, wrong, resumption, anon, resume;
    struct tg_tls_cache *cache = NULL;
    size_t n_app;
    char app[64 * 255];

    setup();
    if (size < 2)
        return 0;
    server = data[0] & 1;
    tls12 = data[0] & 2;
    wrong = data[0] & 4;
    resume = (data[0] & 32) != 0;
    server = server || resume;
    resumption = server && (data[0] & 8 || resume);
    anon = server && (data[0] & 16) && !resume;
    wrong = wrong && !resume;
    n_app = 64 * (size_t)data[1];
    o = (struct ops){data + 2, size - 2, false};
    w.n = 0;
    for (size_t i = 0; i < n_app; i++)
        app[i] = (char)('a' + i % 26);

    fuzz_rng_reset();
    if (resume && tg_tls_cache_new(1, &cache) < 0)
        abort();
    our_rule.ids = server ? &allow_list : &expect_list;
    peer_rule.ids = server ? &expect_list : &anyone;
    us.got = malloc(GOT_MAX);
    peer.got = malloc(GOT_MAX);
    if (us.got == NULL || peer.got == NULL ||
        tg_tls_new(ours[server][tls12][resumption], &fuzz_pool, &our_rule, &us.t) < 0 ||
        tg_tls_new(resume ? peer_resume[tls12]
                   : anon ? peer_anon[tls12]
                          : peers[!server][tls12][wrong],
                   &fuzz_pool, &peer_rule, &peer.t) < 0)
        abort();

    if (resume && !first_handshake(tls12, cache))
        abort(); /* an untouched handshake must work and leave a ticket */
    if (resume)
        tg_tls_offer(peer.t, cache, "upstream");
    handshake(&us, &peer, &w, &o, server);
    if (us.hs == 0) {
        const struct tg_peer_info *p = tg_tls_peer(us.t);

        if (p->id == NULL || strcmp(p->id, server ? FUZZ_CLIENT_ID : FUZZ_SERVER_ID) != 0 ||
            wrong || anon)
            abort(); /* a wrong "yes" */
        stats[0]++;
    } else if (us.hs == TG_EAGAIN) {
        stats[2]++;
    } else {
        const char *why;

        stats[3 + tg_tls_fail(us.t, &why)]++;
    }
    if (!o.mutated && !wrong && !anon && (us.hs != 0 || peer.hs != 0))
        abort(); /* nothing touched, both right: it must work */
    if (!o.mutated && resume && !tg_tls_resumed(us.t))
        abort(); /* and a ticket offered untouched must resume */
    if (resume && us.hs == 0 && tg_tls_resumed(us.t))
        stats[2 + 1 + TG_HSF_N]++;

    /* data and close_notify from the peer, through the same filter; then ours back */
    if (us.hs == 0 && peer.hs == 0) {
        for (size_t at = 0; at < n_app;) {
            size_t n = n_app - at < 4096 ? n_app - at : 4096;

            if (!writes(&peer, app + at, n))
                break;
            at += n;
            carry_to_us(&peer, &us, &w, &o, false);
        }
        tg_tls_shutdown(peer.t);
        carry_to_us(&peer, &us, &w, &o, true);
        if (!us.failed && writes(&us, "pong", 4)) {
            tg_tls_shutdown(us.t);
            carry_to_peer(&us, &peer);
        }
        if (!o.mutated && (!us.closed || us.n_got != n_app || memcmp(us.got, app, n_app) != 0 ||
                           peer.n_got != 4 || !peer.closed))
            abort(); /* an untouched stream must arrive whole */
        if (!o.mutated)
            stats[1]++;
    }
    end_free(&us);
    end_free(&peer);
    tg_tls_cache_free(cache);
    return 0;
}

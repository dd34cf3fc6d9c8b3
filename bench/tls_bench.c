/* CPU per full mutual TLS 1.3 handshake, both ends in one thread, in memory through the TLS
 * adapter (no sockets, no tickets): what the two sidecars of a new connection spend on the
 * handshake itself, chain checks included. Two chains: a leaf signed by the root, and a leaf
 * signed by an intermediate (sent with it). Thread CPU time, not wall time, so other work on
 * a shared machine disturbs it less. Each round makes new contexts (a new generation) and
 * times their first handshake ("first": nothing remembered about the peer's chain) and then
 * n more ("again": the same peers, as sidecars that talk often); the median of the rounds'
 * figures counts.
 *
 *   ./build/bench/tls_bench ./build/tollgate-certs [handshakes per round, default 100]
 *                           [rounds, default 15] [root|intermediate: one chain only]
 *
 * It makes its certificates with tollgate-certs in a temporary directory, removed at the end. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cputime.h"
#include "tollgate/tls.h"

#define ROUNDS_MAX 101
#define SERVER_ID "spiffe://bench.local/ns/default/sa/server"
#define CLIENT_ID "spiffe://bench.local/ns/default/sa/client"

static char dir[64];
static int rounds = 15;

static int certs(const char *bin, const char *args)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "cd %s && '%s' %s >/dev/null", dir, bin, args);
    return system(cmd) == 0 ? 0 : -1;
}

static struct tg_identity *load(const char *name, char *err)
{
    char cert[128], key[128], bundle[128];
    struct tg_identity_files f = {.cert = cert, .key = key, .bundle = bundle};
    struct tg_identity *id = NULL;

    snprintf(cert, sizeof(cert), "%s/%s.pem", dir, name);
    snprintf(key, sizeof(key), "%s/%s.key", dir, name);
    snprintf(bundle, sizeof(bundle), "%s/ca.pem", dir);
    return tg_identity_load(&f, &id, err) == 0 ? id : NULL;
}

/* Moves a's ciphertext to b. */
static void carry(struct tg_tls *a, struct tg_tls *b, struct tg_pool *pool)
{
    struct tg_buf *out = tg_tls_cipher_out(a), *in = tg_tls_cipher_in(b);

    while (tg_buf_len(out) > 0 && tg_buf_reserve(in, pool, true) == 0) {
        size_t n = tg_buf_len(out) < tg_buf_room(in) ? tg_buf_len(out) : tg_buf_room(in);

        memcpy(tg_buf_tail(in), tg_buf_data(out), n);
        tg_buf_commit(in, n);
        tg_buf_consume(out, n);
    }
}

/* One full handshake; 0 when both ends verified each other. */
static int handshake(struct tg_tls_ctx *sc, struct tg_tls_ctx *cc, struct tg_pool *pool,
                     const struct tg_tls_peer_rule *srule, const struct tg_tls_peer_rule *crule)
{
    struct tg_tls *s = NULL, *c = NULL;
    int rs = TG_EAGAIN, rc = TG_EAGAIN;

    if (tg_tls_new(sc, pool, srule, &s) < 0 || tg_tls_new(cc, pool, crule, &c) < 0) {
        tg_tls_free(s);
        return -1;
    }
    for (int i = 0; i < 20 && (rs == TG_EAGAIN || rc == TG_EAGAIN); i++) {
        if (rc == TG_EAGAIN)
            rc = tg_tls_handshake(c);
        carry(c, s, pool);
        if (rs == TG_EAGAIN)
            rs = tg_tls_handshake(s);
        carry(s, c, pool);
    }
    tg_tls_free(s);
    tg_tls_free(c);
    return rs == 0 && rc == 0 ? 0 : -1;
}

static int run(const char *what, const char *server, const char *client, int n)
{
    struct tg_tls_settings st = {.max_chain_depth = 4};
    char server_id[] = SERVER_ID, *server_ids[] = {server_id};
    struct tg_strlist none = {NULL, 0}, expect = {server_ids, 1};
    struct tg_tls_peer_rule srule = {&none}, crule = {&expect};
    struct tg_identity *sid, *cid;
    struct tg_pool pool;
    char err[TG_ERRLEN] = "";
    double first[ROUNDS_MAX], again[ROUNDS_MAX];
    int rc = -1;

    tg_pool_init(&pool, 20 * 1024, 8);
    if ((sid = load(server, err)) == NULL || (cid = load(client, err)) == NULL)
        goto done;
    for (int r = 0; r < rounds; r++) {
        struct tg_tls_ctx *sc = NULL, *cc = NULL;
        double t0, t1;
        int bad = 0;

        st.server = true;
        if (tg_tls_ctx_new(sid, &st, &sc, err) == 0) {
            st.server = false;
            if (tg_tls_ctx_new(cid, &st, &cc, err) == 0) {
                t0 = now_us();
                bad += handshake(sc, cc, &pool, &srule, &crule) < 0;
                t1 = now_us();
                first[r] = t1 - t0;
                for (int i = 0; i < n; i++)
                    bad += handshake(sc, cc, &pool, &srule, &crule) < 0;
                again[r] = n > 0 ? (now_us() - t1) / n : 0;
            }
        }
        tg_tls_ctx_free(sc);
        tg_tls_ctx_free(cc);
        if (sc == NULL || cc == NULL)
            goto done;
        if (bad > 0) {
            snprintf(err, sizeof(err), "%d handshakes failed", bad);
            goto done;
        }
    }
    qsort(first, (size_t)rounds, sizeof(first[0]), cmp_double);
    qsort(again, (size_t)rounds, sizeof(again[0]), cmp_double);
    printf("%-30s first %7.1f us, again %7.1f us CPU per full handshake (both ends)\n", what,
           first[rounds / 2], again[rounds / 2]);
    rc = 0;
done:
    if (rc < 0)
        fprintf(stderr, "tls_bench: %s: %s\n", what, err);
    tg_identity_free(sid);
    tg_identity_free(cid);
    tg_pool_cleanup(&pool);
    return rc;
}

int main(int argc, char **argv)
{
    int n = argc > 2 ? atoi(argv[2]) : 100, rc = 1;
    char *bin = realpath(argc > 1 ? argv[1] : "./build/tollgate-certs", NULL);
    char cmd[128];

    snprintf(dir, sizeof(dir), "/tmp/tls-bench-XXXXXX");
    if (argc > 3)
        rounds = atoi(argv[3]);
    if (bin == NULL || n < 0 || rounds < 1 || rounds > ROUNDS_MAX || mkdtemp(dir) == NULL ||
        tg_tls_init() < 0) {
        fprintf(stderr,
                "usage: tls_bench PATH/TO/tollgate-certs [handshakes per round] "
                "[rounds, 1..%d]\n",
                ROUNDS_MAX);
        free(bin);
        return 1;
    }
    if (certs(bin, "ca --out ca") < 0 || certs(bin, "intermediate --ca ca --out int") < 0 ||
        certs(bin, "issue --ca ca --out server --spiffe " SERVER_ID) < 0 ||
        certs(bin, "issue --ca ca --out client --spiffe " CLIENT_ID) < 0 ||
        certs(bin, "issue --ca int --out server2 --spiffe " SERVER_ID) < 0 ||
        certs(bin, "issue --ca int --out client2 --spiffe " CLIENT_ID) < 0) {
        fprintf(stderr, "tls_bench: %s did not make the certificates\n", bin);
        goto done;
    }
    rc = 0;
    if (argc <= 4 || strcmp(argv[4], "root") == 0)
        rc = run("leaf <- root", "server", "client", n);
    if (rc == 0 && (argc <= 4 || strcmp(argv[4], "intermediate") == 0))
        rc = run("leaf <- intermediate <- root", "server2", "client2", n);
    rc = rc == 0 ? 0 : 1;
done:
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "tls_bench: could not remove %s\n", dir);
    tg_tls_cleanup();
    free(bin);
    return rc;
}

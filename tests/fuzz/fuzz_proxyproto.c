/* Fuzzing of the PROXY protocol v2 decoder and encoder.
 * 1. The bytes as a header: the decoder must not crash; an accepted header must point only
 *    inside the input and, encoded again, decode to the same fields (never longer: unknown
 *    TLVs are dropped); a refusal says why in one line.
 * 2. The bytes as the fields of a header: encode, then decode must give them back, and
 *    every proper prefix of the encoding must ask for more. */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/proxyproto.h"

static bool inside(const void *p, size_t n, const uint8_t *buf, size_t size)
{
    const uint8_t *q = p;

    return q >= buf && q + n <= buf + size;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    const struct sockaddr_in *a4 = (const void *)a, *b4 = (const void *)b;
    const struct sockaddr_in6 *a6 = (const void *)a, *b6 = (const void *)b;

    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return a4->sin_port == b4->sin_port && memcmp(&a4->sin_addr, &b4->sin_addr, 4) == 0;
    return a6->sin6_port == b6->sin6_port && memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0;
}

/* got is v4 sent as ::ffff:a.b.c.d */
static bool mapped(const struct sockaddr_storage *v4, const struct sockaddr_storage *got)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const struct sockaddr_in *a = (const void *)v4;
    const struct sockaddr_in6 *b = (const void *)got;

    return got->ss_family == AF_INET6 && a->sin_port == b->sin6_port &&
           memcmp(&b->sin6_addr, prefix, 12) == 0 &&
           memcmp((const uint8_t *)&b->sin6_addr + 12, &a->sin_addr, 4) == 0;
}

static bool same_bytes(const void *a, size_t an, const void *b, size_t bn)
{
    if ((a == NULL) != (b == NULL))
        return false;
    return a == NULL || (an == bn && memcmp(a, b, an) == 0);
}

static bool same(const struct tg_proxyproto *a, const struct tg_proxyproto *b)
{
    if (a->local != b->local || a->ssl != b->ssl || a->crc32c != b->crc32c)
        return false;
    if (!a->local && (!same_addr(&a->src, &b->src) || !same_addr(&a->dst, &b->dst)))
        return false;
    if (!same_bytes(a->spiffe_id, a->spiffe_id_len, b->spiffe_id, b->spiffe_id_len) ||
        !same_bytes(a->sha256, 32, b->sha256, 32))
        return false;
    if (a->ssl &&
        (a->ssl_client != b->ssl_client || a->ssl_verify != b->ssl_verify ||
         !same_bytes(a->ssl_version, a->ssl_version_len, b->ssl_version, b->ssl_version_len)))
        return false;
    return true;
}

static void decode_arbitrary(const uint8_t *data, size_t size)
{
    static uint8_t again[TG_PP2_ENCODED_MAX];
    struct tg_proxyproto h, h2;
    char err[TG_ERRLEN] = "";
    size_t used = 99, len, used2;
    int rc = tg_proxyproto_decode(data, size, &h, &used, err);

    if (rc == TG_EAGAIN) {
        if (used != 0 && (used <= size || used < TG_PP2_HEADER_LEN || used > TG_PP2_MAX))
            abort();
        return;
    }
    if (rc != 0) {
        if (rc != TG_EINVAL)
            abort();
        fuzz_check_err(err);
        return;
    }
    if (used < TG_PP2_HEADER_LEN || used > size)
        abort();
    if ((h.spiffe_id != NULL && !inside(h.spiffe_id, h.spiffe_id_len, data, used)) ||
        (h.sha256 != NULL && !inside(h.sha256, 32, data, used)) ||
        (h.ssl_version != NULL && !inside(h.ssl_version, h.ssl_version_len, data, used)))
        abort();
    if (tg_proxyproto_encode(&h, again, sizeof(again), &len, err) != 0 || len > used)
        abort();
    if (tg_proxyproto_decode(again, len, &h2, &used2, err) != 0 || used2 != len || !same(&h, &h2))
        abort();
}

static void gen_addr(struct fuzz_reader *r, struct sockaddr_storage *ss, bool v6)
{
    memset(ss, 0, sizeof(*ss));
    if (v6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

        s->sin6_family = AF_INET6;
        fuzz_take(r, &s->sin6_addr, 16);
        fuzz_take(r, &s->sin6_port, 2);
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;

        s->sin_family = AF_INET;
        fuzz_take(r, &s->sin_addr, 4);
        fuzz_take(r, &s->sin_port, 2);
    }
}

static const char *const ids[] = {
    "spiffe://mesh.local/ns/default/sa/web",
    "spiffe://td",
    "spiffe://a.b-c_d/X/y.z",
};

static void encode_fields(const uint8_t *data, size_t size)
{
    static uint8_t buf[TG_PP2_ENCODED_MAX];
    struct fuzz_reader r = {data, size};
    uint8_t flags = fuzz_next(&r), sha[32], version[40];
    struct tg_proxyproto h, out;
    char err[TG_ERRLEN] = "";
    size_t len, used;
    const size_t cuts[] = {0, 1, 11, 12, 13, 14, 15, 16, 17};

    memset(&h, 0, sizeof(h));
    h.local = (flags & 0x01) != 0;
    if (!h.local) {
        gen_addr(&r, &h.src, flags & 0x02);
        gen_addr(&r, &h.dst, flags & 0x04);
    }
    if (flags & 0x08) {
        h.spiffe_id = ids[fuzz_next(&r) % 3];
        h.spiffe_id_len = strlen(h.spiffe_id);
    }
    if (flags & 0x10) {
        fuzz_take(&r, sha, sizeof(sha));
        h.sha256 = sha;
    }
    if (flags & 0x20) {
        h.ssl = true;
        h.ssl_client = fuzz_next(&r);
        fuzz_take(&r, &h.ssl_verify, 4);
        h.ssl_version_len = fuzz_next(&r) % sizeof(version);
        for (size_t i = 0; i < h.ssl_version_len; i++)
            version[i] = (uint8_t)(0x21 + fuzz_next(&r) % 0x5e); /* printable, no space */
        h.ssl_version = h.ssl_version_len > 0 ? (const char *)version : NULL;
    }
    h.crc32c = (flags & 0x40) != 0;
    if (tg_proxyproto_encode(&h, buf, sizeof(buf), &len, err) != 0)
        abort();
    if (tg_proxyproto_decode(buf, len, &out, &used, err) != 0 || used != len)
        abort();
    if (h.local) { /* the addresses are not sent */
        out.src = h.src;
        out.dst = h.dst;
    }
    if (!h.local && h.src.ss_family != h.dst.ss_family) { /* sent as IPv6, IPv4 mapped */
        if (h.src.ss_family == AF_INET6 ? !same_addr(&h.src, &out.src) : !mapped(&h.src, &out.src))
            abort();
        if (h.dst.ss_family == AF_INET6 ? !same_addr(&h.dst, &out.dst) : !mapped(&h.dst, &out.dst))
            abort();
        out.src = h.src;
        out.dst = h.dst;
    }
    if (!same(&h, &out))
        abort();
    for (size_t i = 0; i < TG_NELEM(cuts); i++) {
        if (cuts[i] < len && tg_proxyproto_decode(buf, cuts[i], &out, &used, err) != TG_EAGAIN)
            abort();
    }
    if (tg_proxyproto_decode(buf, len - 1, &out, &used, err) != TG_EAGAIN ||
        used != (len - 1 < TG_PP2_HEADER_LEN ? 0 : len))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_arbitrary(data, size);
    encode_fields(data, size);
    return 0;
}

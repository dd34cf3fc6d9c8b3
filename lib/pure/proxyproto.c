/* PROXY protocol v2 encoder and strict decoder (see proxyproto.h; section numbers are
 * those of haproxy's proxy-protocol.txt). */
#include "tollgate/proxyproto.h"

#include <netinet/in.h>
#include <string.h>

/* 2.2: the 12-byte signature */
static const uint8_t signature[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                      0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

enum {
    CMD_LOCAL = 0x0,
    CMD_PROXY = 0x1,
    FAM_TCP4 = 0x11,
    FAM_TCP6 = 0x21,
    ADDR4_LEN = 12, /* 2 x 4 address bytes, 2 x 2 port bytes */
    ADDR6_LEN = 36, /* 2 x 16, 2 x 2 */
    ADDRUNIX_LEN = 216,
    SSL_FIXED_LEN = 5, /* client (1), verify (4) */
    SHA256_LEN = 32,
};

/* CRC32c, reflected polynomial 0x82f63b78 */
static const uint32_t crc_table[256] = {
    0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c, 0x26a1e7e8, 0xd4ca64eb,
    0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b, 0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24,
    0x105ec76f, 0xe235446c, 0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
    0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc, 0xbc267848, 0x4e4dfb4b,
    0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a, 0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35,
    0xaa64d611, 0x580f5512, 0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
    0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad, 0x1642ae59, 0xe4292d5a,
    0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a, 0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595,
    0x417b1dbc, 0xb3109ebf, 0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
    0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f, 0xed03a29b, 0x1f682198,
    0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927, 0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38,
    0xdbfc821c, 0x2997011f, 0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
    0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e, 0x4767748a, 0xb50cf789,
    0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859, 0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46,
    0x7198540d, 0x83f3d70e, 0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
    0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de, 0xdde0eb2a, 0x2f8b6829,
    0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c, 0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93,
    0x082f63b7, 0xfa44e0b4, 0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
    0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b, 0xb4091bff, 0x466298fc,
    0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c, 0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033,
    0xa24bb5a6, 0x502036a5, 0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
    0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975, 0x0e330a81, 0xfc588982,
    0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d, 0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622,
    0x38cc2a06, 0xcaa7a905, 0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
    0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8, 0xe52cc12c, 0x1747422f,
    0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff, 0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0,
    0xd3d3e1ab, 0x21b862a8, 0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
    0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78, 0x7fab5e8c, 0x8dc0dd8f,
    0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee, 0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1,
    0x69e9f0d5, 0x9b8273d6, 0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
    0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69, 0xd5cf889d, 0x27a40b9e,
    0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e, 0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc;
}

uint32_t tg_proxyproto_crc32c(const void *data, size_t n)
{
    return crc_update(0xffffffffu, data, n) ^ 0xffffffffu;
}

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v & 0xffff);
}

static uint32_t get16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t get32(const uint8_t *p)
{
    return get16(p) << 16 | get16(p + 2);
}

/* ---- encoding ---- */

/* The address bytes of ss (16 for IPv6, IPv4 mapped when v6) and its port. */
static void addr_bytes(const struct sockaddr_storage *ss, bool v6, uint8_t *a, uint16_t *port)
{
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

    if (ss->ss_family == AF_INET6) {
        memcpy(a, &s6->sin6_addr, 16);
        *port = ntohs(s6->sin6_port);
        return;
    }
    if (v6) { /* ::ffff:a.b.c.d, RFC 4291 2.5.5.2 */
        memset(a, 0, 10);
        a[10] = a[11] = 0xff;
        a += 12;
    }
    memcpy(a, &s4->sin_addr, 4);
    *port = ntohs(s4->sin_port);
}

static uint8_t *put_tlv(uint8_t *p, uint8_t type, const void *v, size_t n)
{
    p[0] = type;
    put16(p + 1, (uint32_t)n);
    if (n > 0)
        memcpy(p + 3, v, n);
    return p + 3 + n;
}

int tg_proxyproto_encode(const struct tg_proxyproto *h, uint8_t *buf, size_t cap, size_t *len,
                         char *err)
{
    bool v6 = false;
    size_t alen = 0, ssl_len = 0, total;
    uint8_t *p, *crc_at = NULL;

    *len = 0;
    if (!h->local) {
        int sf = h->src.ss_family, df = h->dst.ss_family;

        if ((sf != AF_INET && sf != AF_INET6) || (df != AF_INET && df != AF_INET6))
            return tg_err_set(err, TG_EINVAL, "PROXY v2: addresses must be IPv4 or IPv6");
        v6 = sf == AF_INET6 || df == AF_INET6;
        alen = v6 ? ADDR6_LEN : ADDR4_LEN;
    }
    if (h->spiffe_id != NULL && (h->spiffe_id_len == 0 || h->spiffe_id_len > TG_SPIFFE_MAX))
        return tg_err_set(err, TG_EINVAL, "PROXY v2: SPIFFE ID of %zu bytes", h->spiffe_id_len);
    if (h->ssl_version != NULL && (h->ssl_version_len == 0 || h->ssl_version_len > 255))
        return tg_err_set(err, TG_EINVAL, "PROXY v2: SSL version of %zu bytes", h->ssl_version_len);
    if (h->ssl)
        ssl_len = SSL_FIXED_LEN + (h->ssl_version != NULL ? 3 + h->ssl_version_len : 0);
    total = alen + (h->crc32c ? 3 + 4 : 0) + (h->ssl ? 3 + ssl_len : 0) +
            (h->spiffe_id != NULL ? 3 + h->spiffe_id_len : 0) +
            (h->sha256 != NULL ? 3 + SHA256_LEN : 0);
    /* at most 36 + 7 + 266 + 2051 + 35 bytes: the 16-bit length always suffices */
    *len = TG_PP2_HEADER_LEN + total;
    if (cap < *len)
        return tg_err_set(err, TG_EAGAIN, "PROXY v2: %zu bytes needed, %zu given", *len, cap);

    memcpy(buf, signature, sizeof(signature));
    buf[12] = 0x20 | (h->local ? CMD_LOCAL : CMD_PROXY);
    buf[13] = h->local ? 0x00 : v6 ? FAM_TCP6 : FAM_TCP4;
    put16(buf + 14, (uint32_t)total);
    p = buf + TG_PP2_HEADER_LEN;
    if (!h->local) {
        size_t n = v6 ? 16 : 4;
        uint16_t sport, dport;

        addr_bytes(&h->src, v6, p, &sport);
        addr_bytes(&h->dst, v6, p + n, &dport);
        put16(p + 2 * n, sport);
        put16(p + 2 * n + 2, dport);
        p += alen;
    }
    if (h->crc32c) {
        crc_at = p + 3;
        p = put_tlv(p, TG_PP2_TYPE_CRC32C, "\0\0\0\0", 4); /* zero while summing (2.2.5) */
    }
    if (h->ssl) {
        p[0] = TG_PP2_TYPE_SSL;
        put16(p + 1, (uint32_t)ssl_len);
        p[3] = h->ssl_client;
        put32(p + 4, h->ssl_verify);
        p += 3 + SSL_FIXED_LEN;
        if (h->ssl_version != NULL)
            p = put_tlv(p, TG_PP2_SUBTYPE_SSL_VERSION, h->ssl_version, h->ssl_version_len);
    }
    if (h->spiffe_id != NULL)
        p = put_tlv(p, TG_PP2_TYPE_SPIFFE_ID, h->spiffe_id, h->spiffe_id_len);
    if (h->sha256 != NULL)
        p = put_tlv(p, TG_PP2_TYPE_SHA256, h->sha256, SHA256_LEN);
    if (crc_at != NULL)
        put32(crc_at, tg_proxyproto_crc32c(buf, *len)); /* network byte order, as haproxy */
    return 0;
}

/* ---- decoding ---- */

static int bad(char *err, const char *why)
{
    return tg_err_set(err, TG_EINVAL, "PROXY v2: %s", why);
}

static void set_addr(struct sockaddr_storage *ss, bool v6, const uint8_t *a, uint32_t port)
{
    memset(ss, 0, sizeof(*ss));
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a, 16);
        s6->sin6_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, a, 4);
        s4->sin_port = htons((uint16_t)port);
    }
}

/* The PP2_TYPE_SSL value (2.2.5): client, verify, then sub-TLVs that fill the rest. */
static int decode_ssl(const uint8_t *v, size_t n, struct tg_proxyproto *h, char *err)
{
    size_t p = SSL_FIXED_LEN;

    if (n < SSL_FIXED_LEN)
        return bad(err, "SSL TLV shorter than 5 bytes");
    h->ssl = true;
    h->ssl_client = v[0];
    h->ssl_verify = get32(v + 1);
    while (p < n) {
        size_t len;

        if (n - p < 3 || (len = get16(v + p + 1)) > n - p - 3)
            return bad(err, "SSL sub-TLV runs past its TLV");
        if (v[p] == TG_PP2_SUBTYPE_SSL_VERSION) {
            if (h->ssl_version != NULL)
                return bad(err, "SSL version given twice");
            if (len == 0)
                return bad(err, "SSL version is empty");
            for (size_t i = 0; i < len; i++) {
                if (v[p + 3 + i] <= 0x20 || v[p + 3 + i] >= 0x7f)
                    return bad(err, "SSL version is not printable ASCII");
            }
            h->ssl_version = (const char *)v + p + 3;
            h->ssl_version_len = len;
        }
        p += 3 + len;
    }
    return 0;
}

static int check_spiffe(const uint8_t *v, size_t n, char *err)
{
    struct tg_spiffe_id id; /* 2 KiB on the stack: the parser wants a place for its result */
    char why[TG_ERRLEN];

    if (tg_spiffe_parse_n((const char *)v, n, &id, why) < 0)
        return tg_err_set(err, TG_EINVAL, "PROXY v2: SPIFFE ID TLV: %s", why);
    return 0;
}

static int decode_tlv(uint8_t type, const uint8_t *v, size_t n, struct tg_proxyproto *h, char *err)
{
    int rc;

    switch (type) {
    case TG_PP2_TYPE_CRC32C:
        if (h->crc32c)
            return bad(err, "CRC32c TLV given twice");
        if (n != 4)
            return bad(err, "CRC32c TLV is not 4 bytes");
        h->crc32c = true;
        return 0;
    case TG_PP2_TYPE_SSL:
        if (h->ssl)
            return bad(err, "SSL TLV given twice");
        return decode_ssl(v, n, h, err);
    case TG_PP2_TYPE_SPIFFE_ID:
        if (h->spiffe_id != NULL)
            return bad(err, "SPIFFE ID TLV given twice");
        if ((rc = check_spiffe(v, n, err)) < 0)
            return rc;
        h->spiffe_id = (const char *)v;
        h->spiffe_id_len = n;
        return 0;
    case TG_PP2_TYPE_SHA256:
        if (h->sha256 != NULL)
            return bad(err, "SHA-256 TLV given twice");
        if (n != SHA256_LEN)
            return bad(err, "SHA-256 TLV is not 32 bytes");
        h->sha256 = v;
        return 0;
    default:
        return 0; /* 2.2: other types, PP2_TYPE_NOOP among them, are skipped */
    }
}

/* 2.2: byte 13 is the address family (high nibble) and transport (low nibble); the address
 * block's size follows from the family. */
static int address_len(uint8_t fam, size_t *alen)
{
    static const size_t by_family[] = {0, ADDR4_LEN, ADDR6_LEN, ADDRUNIX_LEN};

    if ((fam >> 4) > 3 || (fam & 0xf) > 2)
        return -1;
    *alen = by_family[fam >> 4];
    return 0;
}

/* The fixed 16 bytes, as far as they are there: a prefix of a valid header is not refused. */
static int check_fixed(const uint8_t *buf, size_t n, char *err)
{
    size_t alen;

    if (memcmp(buf, signature, n < sizeof(signature) ? n : sizeof(signature)) != 0)
        return bad(err, "not a PROXY protocol v2 signature");
    if (n > 12 && (buf[12] >> 4) != 2)
        return bad(err, "version is not 2");
    if (n > 12 && (buf[12] & 0xf) != CMD_LOCAL && (buf[12] & 0xf) != CMD_PROXY)
        return bad(err, "command is neither LOCAL nor PROXY");
    if (n > 13 && address_len(buf[13], &alen) < 0)
        return bad(err, "unknown address family or transport");
    /* 2.2: a LOCAL header's addresses are skipped, whatever they are; PROXY: TCP only */
    if (n > 13 && (buf[12] & 0xf) == CMD_PROXY && buf[13] != FAM_TCP4 && buf[13] != FAM_TCP6)
        return bad(err, "PROXY command over other than TCP/IPv4 or TCP/IPv6");
    return 0;
}

int tg_proxyproto_decode(const uint8_t *buf, size_t n, struct tg_proxyproto *h, size_t *used,
                         char *err)
{
    size_t total, alen = 0, p, crc_at = 0;
    int rc;

    *used = 0;
    if ((rc = check_fixed(buf, n < TG_PP2_HEADER_LEN ? n : TG_PP2_HEADER_LEN, err)) < 0)
        return rc;
    if (n < TG_PP2_HEADER_LEN)
        return TG_EAGAIN;
    total = TG_PP2_HEADER_LEN + get16(buf + 14);
    *used = total;
    if (n < total)
        return TG_EAGAIN;
    (void)address_len(buf[13], &alen);
    if (total - TG_PP2_HEADER_LEN < alen)
        return bad(err, "length is shorter than the addresses");
    memset(h, 0, sizeof(*h));
    h->local = (buf[12] & 0xf) == CMD_LOCAL;
    if (!h->local) {
        bool v6 = buf[13] == FAM_TCP6;
        size_t k = v6 ? 16 : 4;
        const uint8_t *a = buf + TG_PP2_HEADER_LEN;

        set_addr(&h->src, v6, a, get16(a + 2 * k));
        set_addr(&h->dst, v6, a + k, get16(a + 2 * k + 2));
    }
    for (p = TG_PP2_HEADER_LEN + alen; p < total;) {
        size_t len;

        if (total - p < 3 || (len = get16(buf + p + 1)) > total - p - 3)
            return bad(err, "TLV runs past the header");
        if (buf[p] == TG_PP2_TYPE_CRC32C)
            crc_at = p + 3;
        if ((rc = decode_tlv(buf[p], buf + p + 3, len, h, err)) < 0)
            return rc;
        p += 3 + len;
    }
    if (h->crc32c) { /* 2.2.5: summed with the field as zeros */
        uint32_t crc = crc_update(0xffffffffu, buf, crc_at);

        crc = crc_update(crc, (const uint8_t *)"\0\0\0\0", 4);
        crc = crc_update(crc, buf + crc_at + 4, total - crc_at - 4) ^ 0xffffffffu;
        if (crc != get32(buf + crc_at))
            return bad(err, "CRC32c does not match");
    }
    return 0;
}

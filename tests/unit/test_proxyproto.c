/* tg_proxyproto_*: PROXY protocol v2 encoding, strict decoding and CRC32c. */
#include <arpa/inet.h>
#include <check.h>
#include "check_main.h"
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/proxyproto.h"

#define SIG "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"
#define ID "spiffe://td/a"
/* 192.0.2.1:51234 -> 198.51.100.7:8080 */
#define ADDR4 "\xc0\x00\x02\x01\xc6\x33\x64\x07\xc8\x22\x1f\x90"

static const uint8_t sha[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

/* ss = ip:port; IPv6 when ip has a ':'. */
static void set_addr(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    bool v6 = strchr(ip, ':') != NULL;

    memset(ss, 0, sizeof(*ss));
    ss->ss_family = v6 ? AF_INET6 : AF_INET;
    if (v6)
        s6->sin6_port = htons(port);
    else
        s4->sin_port = htons(port);
    ck_assert_int_eq(inet_pton(ss->ss_family, ip, v6 ? (void *)&s6->sin6_addr : &s4->sin_addr), 1);
}

static void addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    ck_assert_int_eq(a->ss_family, b->ss_family);
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

        ck_assert_int_eq(x->sin_port, y->sin_port);
        ck_assert_int_eq(memcmp(&x->sin_addr, &y->sin_addr, 4), 0);
    } else {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

        ck_assert_int_eq(x->sin6_port, y->sin6_port);
        ck_assert_int_eq(memcmp(&x->sin6_addr, &y->sin6_addr, 16), 0);
    }
}

START_TEST(test_proxyproto_crc32c_check_value)
{
    /* the CRC-32C check value (RFC 3720 B.4 family) */
    ck_assert_uint_eq(tg_proxyproto_crc32c("123456789", 9), 0xe3069283);
    ck_assert_uint_eq(tg_proxyproto_crc32c("", 0), 0);
}
END_TEST

/* h encodes to exactly the n bytes of want. */
static void encodes_to(const struct tg_proxyproto *h, const uint8_t *want, size_t n)
{
    uint8_t buf[256];
    size_t len;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(tg_proxyproto_encode(h, buf, sizeof(buf), &len, err) == 0, "%s", err);
    ck_assert_uint_eq(len, n);
    ck_assert_int_eq(memcmp(buf, want, len), 0);
}

/* h from 192.0.2.1:1 to 192.0.2.2:2, encoded into buf; its length. */
static size_t encode_192(struct tg_proxyproto *h, uint8_t *buf, size_t cap)
{
    size_t len = 0;

    set_addr(&h->src, "192.0.2.1", 1);
    set_addr(&h->dst, "192.0.2.2", 2);
    ck_assert_int_eq(tg_proxyproto_encode(h, buf, cap, &len, NULL), 0);
    return len;
}

START_TEST(test_proxyproto_exact_bytes_ipv4)
{
    static const uint8_t want[] = SIG "\x21\x11\x00\x3f" ADDR4 "\xe0\x00\x0d" ID "\xe1\x00\x20"
                                      "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d"
                                      "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b"
                                      "\x1c\x1d\x1e\x1f";
    struct tg_proxyproto h = {.spiffe_id = ID, .spiffe_id_len = strlen(ID), .sha256 = sha};

    set_addr(&h.src, "192.0.2.1", 51234);
    set_addr(&h.dst, "198.51.100.7", 8080);
    encodes_to(&h, want, sizeof(want) - 1);
}
END_TEST

START_TEST(test_proxyproto_exact_bytes_local_and_ipv6)
{
    static const uint8_t local[] = SIG "\x20\x00\x00\x00";
    static const uint8_t v6[] =
        SIG "\x21\x21\x00\x24"
            "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
            "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x0a\x00\x00\x02"
            "\x00\x50\x01\xbb";
    struct tg_proxyproto h = {.local = true};

    encodes_to(&h, local, 16);
    /* a mix of families goes as IPv6, the IPv4 address mapped */
    h.local = false;
    set_addr(&h.src, "2001:db8::1", 80);
    set_addr(&h.dst, "10.0.0.2", 443);
    encodes_to(&h, v6, sizeof(v6) - 1);
}
END_TEST

START_TEST(test_proxyproto_crc_field)
{
    struct tg_proxyproto h = {.crc32c = true, .spiffe_id = ID, .spiffe_id_len = strlen(ID)};
    uint8_t buf[128], copy[128];
    size_t len;
    uint32_t crc;

    len = encode_192(&h, buf, sizeof(buf));
    /* the CRC TLV comes right after the addresses; big-endian, over the zeroed header */
    ck_assert_int_eq(buf[28], TG_PP2_TYPE_CRC32C);
    ck_assert_int_eq(buf[29], 0);
    ck_assert_int_eq(buf[30], 4);
    memcpy(copy, buf, len);
    memset(copy + 31, 0, 4);
    crc = tg_proxyproto_crc32c(copy, len);
    ck_assert_uint_eq((uint32_t)buf[31] << 24 | buf[32] << 16 | buf[33] << 8 | buf[34], crc);
}
END_TEST

static void round_trip(const struct tg_proxyproto *in)
{
    uint8_t buf[TG_PP2_ENCODED_MAX + 8];
    struct tg_proxyproto out;
    size_t len, used;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_proxyproto_encode(in, buf, sizeof(buf), &len, err), 0);
    memcpy(buf + len, "GET /", 5); /* the app's bytes follow */
    ck_assert_msg(tg_proxyproto_decode(buf, len + 5, &out, &used, err) == 0, "%s", err);
    ck_assert_uint_eq(used, len);
    ck_assert_int_eq(out.local, in->local);
    if (!in->local) {
        addr_eq(&out.src, &in->src);
        addr_eq(&out.dst, &in->dst);
    }
    ck_assert_int_eq(out.spiffe_id != NULL, in->spiffe_id != NULL);
    if (in->spiffe_id != NULL) {
        ck_assert_uint_eq(out.spiffe_id_len, in->spiffe_id_len);
        ck_assert_int_eq(memcmp(out.spiffe_id, in->spiffe_id, in->spiffe_id_len), 0);
    }
    ck_assert_int_eq(out.sha256 != NULL, in->sha256 != NULL);
    if (in->sha256 != NULL)
        ck_assert_int_eq(memcmp(out.sha256, in->sha256, 32), 0);
    ck_assert_int_eq(out.ssl, in->ssl);
    ck_assert_int_eq(out.crc32c, in->crc32c);
    if (in->ssl) {
        ck_assert_uint_eq(out.ssl_client, in->ssl_client);
        ck_assert_uint_eq(out.ssl_verify, in->ssl_verify);
        ck_assert_int_eq(out.ssl_version != NULL, in->ssl_version != NULL);
        if (in->ssl_version != NULL) {
            ck_assert_uint_eq(out.ssl_version_len, in->ssl_version_len);
            ck_assert_int_eq(memcmp(out.ssl_version, in->ssl_version, in->ssl_version_len), 0);
        }
    }
}

START_TEST(test_proxyproto_round_trip)
{
    struct tg_proxyproto h = {
        .spiffe_id = "spiffe://mesh.local/ns/prod/sa/web",
        .spiffe_id_len = strlen("spiffe://mesh.local/ns/prod/sa/web"),
        .sha256 = sha,
        .ssl = true,
        .ssl_client = TG_PP2_CLIENT_SSL | TG_PP2_CLIENT_CERT_CONN,
        .ssl_verify = 0,
        .ssl_version = "TLSv1.3",
        .ssl_version_len = 7,
        .crc32c = true,
    };

    set_addr(&h.src, "10.1.2.3", 40000);
    set_addr(&h.dst, "10.1.2.4", 8443);
    round_trip(&h);
    set_addr(&h.src, "fe80::1", 1);
    set_addr(&h.dst, "::1", 65535);
    round_trip(&h);
    h.ssl_version = NULL;
    h.ssl_verify = 0x01020304;
    h.crc32c = false;
    round_trip(&h);
    h.ssl = false;
    h.sha256 = NULL;
    round_trip(&h);
    h.spiffe_id = NULL;
    round_trip(&h);
    h.local = true;
    round_trip(&h);
}
END_TEST

START_TEST(test_proxyproto_every_prefix_wants_more)
{
    struct tg_proxyproto h = {.spiffe_id = ID, .spiffe_id_len = strlen(ID), .crc32c = true};
    uint8_t buf[128];
    struct tg_proxyproto out;
    size_t len, used;

    len = encode_192(&h, buf, sizeof(buf));
    for (size_t n = 0; n < len; n++) {
        ck_assert_msg(tg_proxyproto_decode(buf, n, &out, &used, NULL) == TG_EAGAIN, "%zu", n);
        ck_assert_uint_eq(used, n < 16 ? 0 : len);
    }
    ck_assert_int_eq(tg_proxyproto_decode(buf, len, &out, &used, NULL), 0);
}
END_TEST

START_TEST(test_proxyproto_encode_errors)
{
    struct tg_proxyproto h = {.spiffe_id = ID, .spiffe_id_len = strlen(ID)};
    uint8_t buf[64];
    size_t len;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_proxyproto_encode(&h, buf, sizeof(buf), &len, err), TG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "IPv4 or IPv6")); /* AF_UNSPEC addresses */
    set_addr(&h.src, "192.0.2.1", 1);
    h.dst.ss_family = AF_UNIX;
    ck_assert_int_eq(tg_proxyproto_encode(&h, buf, sizeof(buf), &len, err), TG_EINVAL);
    set_addr(&h.dst, "192.0.2.2", 2);
    ck_assert_int_eq(tg_proxyproto_encode(&h, buf, 20, &len, err), TG_EAGAIN);
    ck_assert_uint_eq(len, 16 + 12 + 3 + strlen(ID));
    ck_assert_ptr_nonnull(strstr(err, "44 bytes needed"));
    ck_assert_int_eq(tg_proxyproto_encode(&h, buf, len, &len, err), 0);
    h.spiffe_id_len = 0;
    ck_assert_int_eq(tg_proxyproto_encode(&h, buf, sizeof(buf), &len, err), TG_EINVAL);
    h.spiffe_id_len = TG_SPIFFE_MAX + 1;
    ck_assert_int_eq(tg_proxyproto_encode(&h, buf, sizeof(buf), &len, err), TG_EINVAL);
    h.spiffe_id = NULL;
    h.ssl = true;
    h.ssl_version = "";
    ck_assert_int_eq(tg_proxyproto_encode(&h, buf, sizeof(buf), &len, err), TG_EINVAL);
}
END_TEST

/* Raw headers: version/command byte, family byte, then the bytes after the length. */
#define RAW(vc, fam, body, why)                                                                    \
    {                                                                                              \
        vc, fam, (const uint8_t *)body, sizeof(body) - 1, why                                      \
    }

static const struct {
    uint8_t vc, fam;
    const uint8_t *body;
    size_t n;
    const char *why; /* NULL: accepted */
} raw_cases[] = {
    /* accepted */
    RAW(0x21, 0x11, ADDR4, NULL),
    RAW(0x21, 0x11, ADDR4 "\x04\x00\x02zz", NULL), /* NOOP */
    RAW(0x21, 0x11,
        ADDR4 "\x42\x00\x00"
              "\xee\x00\x01x",
        NULL),                                      /* unknown types */
    RAW(0x20, 0x00, "", NULL),                      /* LOCAL */
    RAW(0x20, 0x11, ADDR4 "\xe0\x00\x0d" ID, NULL), /* LOCAL skips addresses */
    RAW(0x20, 0x12, ADDR4, NULL),                   /* ... of any family */
    RAW(0x21, 0x11, ADDR4 "\x20\x00\x0f\x07\x00\x00\x00\x00\x21\x00\x07TLSv1.3", NULL),
    RAW(0x21, 0x11, ADDR4 "\x20\x00\x09\x07\x00\x00\x00\x00\x23\x00\x01x", NULL), /* sub */
    /* header */
    RAW(0x11, 0x11, ADDR4, "version is not 2"),
    RAW(0x31, 0x11, ADDR4, "version is not 2"),
    RAW(0x22, 0x11, ADDR4, "neither LOCAL nor PROXY"),
    RAW(0x21, 0x12, ADDR4, "other than TCP"), /* UDP */
    RAW(0x21, 0x31, ADDR4, "other than TCP"), /* UNIX */
    RAW(0x21, 0x00, "", "other than TCP"),    /* PROXY needs addresses */
    RAW(0x21, 0x41, ADDR4, "unknown address family"),
    RAW(0x20, 0x13, ADDR4, "unknown address family"),
    RAW(0x21, 0x11, "\xc0\x00\x02\x01", "shorter than the addresses"),
    RAW(0x21, 0x21, ADDR4, "shorter than the addresses"),
    /* TLVs */
    RAW(0x21, 0x11, ADDR4 "\xe0", "TLV runs past"),
    RAW(0x21, 0x11, ADDR4 "\xe0\x00", "TLV runs past"),
    RAW(0x21, 0x11, ADDR4 "\xe0\x00\x0e" ID, "TLV runs past"),
    RAW(0x21, 0x11, ADDR4 "\xe0\x00\x0d" ID "\xe0\x00\x0d" ID, "SPIFFE ID TLV given twice"),
    RAW(0x21, 0x11, ADDR4 "\xe0\x00\x0dspiffe://TD/a", "SPIFFE ID TLV: trust domain must"),
    RAW(0x21, 0x11, ADDR4 "\xe0\x00\x00", "SPIFFE ID TLV: scheme"),
    RAW(0x21, 0x11, ADDR4 "\xe0\x00\x0dspiffe://td/\x00", "SPIFFE ID TLV: NUL"),
    RAW(0x21, 0x11, ADDR4 "\xe1\x00\x01x", "SHA-256 TLV is not 32 bytes"),
    RAW(0x21, 0x11,
        ADDR4 "\xe1\x00\x21"
              "0123456789abcdef0123456789abcdef!",
        "SHA-256 TLV is not 32 bytes"),
    RAW(0x21, 0x11, ADDR4 "\x03\x00\x03xyz", "CRC32c TLV is not 4 bytes"),
    RAW(0x21, 0x11, ADDR4 "\x03\x00\x04wxyz", "CRC32c does not match"),
    RAW(0x21, 0x11, ADDR4 "\x20\x00\x04\x07\x00\x00\x00", "SSL TLV shorter"),
    RAW(0x21, 0x11, ADDR4 "\x20\x00\x05\x07\x00\x00\x00\x00\x20\x00\x05\x07\x00\x00\x00\x00",
        "SSL TLV given twice"),
    RAW(0x21, 0x11, ADDR4 "\x20\x00\x07\x07\x00\x00\x00\x00\x21\x00", "SSL sub-TLV runs past"),
    RAW(0x21, 0x11, ADDR4 "\x20\x00\x09\x07\x00\x00\x00\x00\x21\x00\x02x", "SSL sub-TLV runs"),
    RAW(0x21, 0x11, ADDR4 "\x20\x00\x08\x07\x00\x00\x00\x00\x21\x00\x00", "SSL version is empty"),
    RAW(0x21, 0x11, ADDR4 "\x20\x00\x09\x07\x00\x00\x00\x00\x21\x00\x01 ", "not printable"),
    RAW(0x21, 0x11, ADDR4 "\x20\x00\x0d\x07\x00\x00\x00\x00\x21\x00\x01x\x21\x00\x01y",
        "SSL version given twice"),
};

START_TEST(test_proxyproto_decode_raw)
{
    uint8_t buf[512];
    struct tg_proxyproto h;
    size_t used, n = 16 + raw_cases[_i].n;
    char err[TG_ERRLEN] = "";
    int rc;

    memcpy(buf, SIG, 12);
    buf[12] = raw_cases[_i].vc;
    buf[13] = raw_cases[_i].fam;
    buf[14] = (uint8_t)(raw_cases[_i].n >> 8);
    buf[15] = (uint8_t)raw_cases[_i].n;
    memcpy(buf + 16, raw_cases[_i].body, raw_cases[_i].n);
    rc = tg_proxyproto_decode(buf, n, &h, &used, err);
    if (raw_cases[_i].why == NULL) {
        ck_assert_msg(rc == 0, "case %d: %s", _i, err);
        ck_assert_uint_eq(used, n);
    } else {
        ck_assert_msg(rc == TG_EINVAL, "case %d: rc %d", _i, rc);
        ck_assert_msg(strstr(err, raw_cases[_i].why) != NULL, "case %d: \"%s\" lacks \"%s\"", _i,
                      err, raw_cases[_i].why);
        ck_assert_ptr_null(strchr(err, '\n'));
    }
}
END_TEST

START_TEST(test_proxyproto_decode_fields)
{
    static const uint8_t in[] =
        SIG "\x20\x11\x00\x24" ADDR4 "\xe0\x00\x0d" ID "\x20\x00\x05\x05\x00\x00\x00\x2a";
    struct tg_proxyproto h;
    size_t used;

    ck_assert_int_eq(tg_proxyproto_decode(in, sizeof(in) - 1, &h, &used, NULL), 0);
    ck_assert(h.local);
    ck_assert_int_eq(h.src.ss_family, AF_UNSPEC); /* LOCAL: addresses ignored */
    ck_assert_uint_eq(h.spiffe_id_len, strlen(ID));
    ck_assert_ptr_eq(h.spiffe_id, (const char *)in + 31); /* points into the input */
    ck_assert(h.ssl);
    ck_assert_uint_eq(h.ssl_client, TG_PP2_CLIENT_SSL | TG_PP2_CLIENT_CERT_SESS);
    ck_assert_uint_eq(h.ssl_verify, 42);
    ck_assert_ptr_null(h.ssl_version);
    ck_assert(!h.crc32c);
}
END_TEST

START_TEST(test_proxyproto_bad_prefixes)
{
    struct tg_proxyproto h;
    size_t used;
    char err[TG_ERRLEN] = "";

    /* refused as soon as a byte is wrong, not when the header is complete */
    ck_assert_int_eq(tg_proxyproto_decode((const uint8_t *)"PROXY TCP4 ", 11, &h, &used, err),
                     TG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "signature"));
    ck_assert_int_eq(tg_proxyproto_decode((const uint8_t *)"\r\n\r\n\0\r\nX", 8, &h, &used, err),
                     TG_EINVAL);
    ck_assert_int_eq(tg_proxyproto_decode((const uint8_t *)SIG "\x21\x12", 14, &h, &used, err),
                     TG_EINVAL);
    ck_assert_int_eq(tg_proxyproto_decode((const uint8_t *)SIG "\x21\x11\xff", 15, &h, &used, err),
                     TG_EAGAIN);
    ck_assert_int_eq(tg_proxyproto_decode((const uint8_t *)"", 0, &h, &used, err), TG_EAGAIN);
}
END_TEST

START_TEST(test_proxyproto_crc_catches_flips)
{
    struct tg_proxyproto h = {
        .spiffe_id = ID, .spiffe_id_len = strlen(ID), .crc32c = true, .sha256 = sha};
    uint8_t buf[128];
    struct tg_proxyproto out;
    size_t len, used;

    len = encode_192(&h, buf, sizeof(buf));
    for (size_t i = 0; i < len; i++) {
        if (i == 28)
            continue; /* the CRC TLV's type: changed, the TLV is one to skip, and unchecked */
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1 << bit);
            ck_assert_msg(tg_proxyproto_decode(buf, len, &out, &used, NULL) != 0, "byte %zu", i);
            buf[i] ^= (uint8_t)(1 << bit);
        }
    }
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE("proxyproto", "core", &tc, test_proxyproto_crc32c_check_value,
                             test_proxyproto_exact_bytes_ipv4,
                             test_proxyproto_exact_bytes_local_and_ipv6, test_proxyproto_crc_field,
                             test_proxyproto_round_trip, test_proxyproto_every_prefix_wants_more,
                             test_proxyproto_encode_errors, test_proxyproto_decode_fields,
                             test_proxyproto_bad_prefixes, test_proxyproto_crc_catches_flips);

    tcase_add_loop_test(tc, test_proxyproto_decode_raw, 0, TG_NELEM(raw_cases));
    return s;
}

/* tg_frame_*: length framing of the control-plane stream (4-byte big-endian length, body;
 * bodies over the limit refused on the header; zero-length frames are frames). */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "tollgate/frame.h"

/* Feeds all of src, in one call per piece as the pieces come, collecting the frames into
 * out (each as header + body again, so the result compares with the encoded stream). */
struct sink {
    char *data;
    size_t len;
    size_t frames;
};

static int feed_all(struct tg_frame_decoder *d, const char *src, size_t n, struct sink *s,
                    char *err)
{
    while (n > 0) {
        const char *frame;
        size_t used, len;
        int rc = tg_frame_feed(d, src, n, &used, &frame, &len, err);

        ck_assert(used <= n);
        src += used;
        n -= used;
        if (rc < 0)
            return rc;
        if (rc == 1) {
            unsigned char hdr[TG_FRAME_HDR];

            ck_assert_int_eq(tg_frame_header(len, TG_FRAME_MAX, hdr, err), 0);
            s->data = realloc(s->data, s->len + TG_FRAME_HDR + len);
            ck_assert_ptr_nonnull(s->data);
            memcpy(s->data + s->len, hdr, TG_FRAME_HDR);
            if (len > 0)
                memcpy(s->data + s->len + TG_FRAME_HDR, frame, len);
            s->len += TG_FRAME_HDR + len;
            s->frames++;
        } else {
            ck_assert_int_eq(rc, 0);
            ck_assert_uint_eq(n, 0); /* 0 only once everything is consumed */
        }
    }
    return 0;
}

/* A stream of three frames: "hello", an empty one, and 300 bytes. */
static char *three_frames(size_t *len)
{
    static const char *bodies[] = {"hello", "", NULL};
    char big[300], *out = NULL, *enc, *grown;
    size_t n = 0, enc_len;
    char err[TG_ERRLEN];

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    for (int i = 0; i < 3; i++) {
        const char *b = bodies[i] != NULL ? bodies[i] : big;
        size_t bl = bodies[i] != NULL ? strlen(bodies[i]) : sizeof(big);

        ck_assert_int_eq(tg_frame_encode(b, bl, TG_FRAME_MAX, &enc, &enc_len, err), 0);
        grown = realloc(out, n + enc_len);
        ck_assert_ptr_nonnull(grown);
        out = grown;
        memcpy(out + n, enc, enc_len);
        n += enc_len;
        free(enc);
    }
    *len = n;
    return out;
}

START_TEST(test_frame_round_trip)
{
    struct tg_frame_decoder d;
    struct sink s = {0};
    char err[TG_ERRLEN] = "";
    size_t n;
    char *stream = three_frames(&n);

    ck_assert_uint_eq(n, 4 + 5 + 4 + 0 + 4 + 300);
    ck_assert_int_eq(memcmp(stream, "\0\0\0\5hello\0\0\0\0\0\0\1\54", 17), 0);
    tg_frame_decoder_init(&d, TG_FRAME_MAX);
    ck_assert_int_eq(feed_all(&d, stream, n, &s, err), 0);
    ck_assert_uint_eq(s.frames, 3);
    ck_assert_uint_eq(s.len, n);
    ck_assert_int_eq(memcmp(s.data, stream, n), 0);
    ck_assert_int_eq(tg_frame_decoder_eof(&d, err), 0);
    tg_frame_decoder_cleanup(&d);
    free(s.data);
    free(stream);
}
END_TEST

/* Every way of cutting the stream in two, and one byte at a time, gives the same frames. */
START_TEST(test_frame_every_split_point)
{
    size_t n;
    char *stream = three_frames(&n);
    char err[TG_ERRLEN] = "";

    for (size_t cut = 0; cut <= n; cut++) {
        struct tg_frame_decoder d;
        struct sink s = {0};

        tg_frame_decoder_init(&d, TG_FRAME_MAX);
        ck_assert_int_eq(feed_all(&d, stream, cut, &s, err), 0);
        ck_assert_int_eq(feed_all(&d, stream + cut, n - cut, &s, err), 0);
        ck_assert_msg(s.frames == 3 && s.len == n && memcmp(s.data, stream, n) == 0, "cut at %zu",
                      cut);
        tg_frame_decoder_cleanup(&d);
        free(s.data);
    }
    {
        struct tg_frame_decoder d;
        struct sink s = {0};

        tg_frame_decoder_init(&d, TG_FRAME_MAX);
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(feed_all(&d, stream + i, 1, &s, err), 0);
        ck_assert_uint_eq(s.frames, 3);
        ck_assert_int_eq(memcmp(s.data, stream, n), 0);
        tg_frame_decoder_cleanup(&d);
        free(s.data);
    }
    free(stream);
}
END_TEST

/* One decoder and what its last feed returned. */
struct feeder {
    struct tg_frame_decoder d;
    const char *frame;
    size_t used, len;
    char err[TG_ERRLEN];
};

static void feeder_init(struct feeder *f, size_t max)
{
    memset(f, 0, sizeof(*f));
    tg_frame_decoder_init(&f->d, max);
}

static int feed(struct feeder *f, const void *src, size_t n)
{
    return tg_frame_feed(&f->d, src, n, &f->used, &f->frame, &f->len, f->err);
}

/* feed stops right after a complete frame: the caller sees the rest as not used. */
START_TEST(test_frame_stops_after_each_frame)
{
    struct feeder f;
    size_t n;
    char *stream = three_frames(&n);

    feeder_init(&f, TG_FRAME_MAX);
    ck_assert_int_eq(feed(&f, stream, n), 1);
    ck_assert_uint_eq(f.used, 9);
    ck_assert_uint_eq(f.len, 5);
    ck_assert_int_eq(memcmp(f.frame, "hello", 5), 0);
    ck_assert_int_eq(feed(&f, stream + 9, n - 9), 1);
    ck_assert_uint_eq(f.used, 4);
    ck_assert_uint_eq(f.len, 0);
    ck_assert_ptr_nonnull(f.frame);
    ck_assert_int_eq(feed(&f, stream + 13, n - 13), 1);
    ck_assert_uint_eq(f.used, 304);
    ck_assert_uint_eq(f.len, 300);
    ck_assert_int_eq(feed(&f, stream, 0), 0);
    ck_assert_uint_eq(f.used, 0);
    tg_frame_decoder_cleanup(&f.d);
    free(stream);
}
END_TEST

START_TEST(test_frame_oversize_refused_on_header)
{
    struct feeder f;
    /* 4 MiB + 1 */
    static const unsigned char hdr[] = {0x00, 0x40, 0x00, 0x01, 'x'};

    feeder_init(&f, TG_FRAME_MAX);
    ck_assert_int_eq(feed(&f, hdr, 2), 0);
    ck_assert_int_eq(feed(&f, hdr + 2, 3), TG_ETOOBIG);
    ck_assert_uint_eq(f.used, 2);
    ck_assert_msg(strstr(f.err, "4194305 bytes") != NULL && strstr(f.err, "4194304") != NULL, "%s",
                  f.err);
    ck_assert_ptr_null(f.d.body); /* nothing allocated for the claimed size */
    /* sticky */
    ck_assert_int_eq(feed(&f, "abc", 3), TG_ETOOBIG);
    tg_frame_decoder_cleanup(&f.d);
}
END_TEST

START_TEST(test_frame_max_exactly_accepted)
{
    struct feeder f;
    char *enc, *body = calloc(1, TG_FRAME_MAX);
    size_t enc_len;

    ck_assert_int_eq(tg_frame_encode(body, TG_FRAME_MAX + 1, TG_FRAME_MAX, &enc, &enc_len, f.err),
                     TG_ETOOBIG);
    ck_assert_int_eq(tg_frame_encode(body, TG_FRAME_MAX, TG_FRAME_MAX, &enc, &enc_len, f.err), 0);
    feeder_init(&f, TG_FRAME_MAX);
    ck_assert_int_eq(feed(&f, enc, enc_len), 1);
    ck_assert_uint_eq(f.len, TG_FRAME_MAX);
    ck_assert_uint_eq(f.used, enc_len);
    /* the large buffer is let go when the next frame starts */
    ck_assert_int_eq(feed(&f, "\0\0\0\1z", 5), 1);
    ck_assert_uint_eq(f.len, 1);
    ck_assert_int_eq(f.frame[0], 'z');
    tg_frame_decoder_cleanup(&f.d);
    free(enc);
    free(body);
}
END_TEST

START_TEST(test_frame_small_limit)
{
    struct feeder f;

    feeder_init(&f, 3);
    ck_assert_int_eq(feed(&f, "\0\0\0\3abc", 7), 1);
    ck_assert_int_eq(feed(&f, "\0\0\0\4abcd", 8), TG_ETOOBIG);
    tg_frame_decoder_cleanup(&f.d);
}
END_TEST

/* A server raises the limit once its peer has authenticated: from the next header on. */
START_TEST(test_frame_limit_raised_between_frames)
{
    struct feeder f;

    feeder_init(&f, 3);
    ck_assert_int_eq(feed(&f, "\0\0\0\3abc\0\0\0\5hello", 16), 1);
    ck_assert_uint_eq(f.used, 7);
    tg_frame_decoder_set_max(&f.d, 5);
    ck_assert_int_eq(feed(&f, "\0\0\0\5hello", 9), 1);
    ck_assert_uint_eq(f.len, 5);
    ck_assert_int_eq(feed(&f, "\0\0\0\6", 4), TG_ETOOBIG);
    tg_frame_decoder_cleanup(&f.d);
}
END_TEST

START_TEST(test_frame_truncated_at_eof)
{
    struct feeder f;

    feeder_init(&f, TG_FRAME_MAX);
    ck_assert_int_eq(tg_frame_decoder_eof(&f.d, f.err), 0); /* nothing at all: clean */
    ck_assert_int_eq(feed(&f, "\0\0", 2), 0);
    ck_assert_int_eq(tg_frame_decoder_eof(&f.d, f.err), TG_ECLOSED);
    ck_assert_msg(strstr(f.err, "header (2 of 4 bytes)") != NULL, "%s", f.err);
    ck_assert_int_eq(feed(&f, "\0\5he", 4), 0);
    ck_assert_int_eq(tg_frame_decoder_eof(&f.d, f.err), TG_ECLOSED);
    ck_assert_msg(strstr(f.err, "(2 of 5 bytes)") != NULL, "%s", f.err);
    ck_assert_int_eq(feed(&f, "llo", 3), 1);
    ck_assert_int_eq(tg_frame_decoder_eof(&f.d, f.err), 0); /* ended right after a frame */
    tg_frame_decoder_cleanup(&f.d);
}
END_TEST

START_TEST(test_frame_header_encoding)
{
    unsigned char hdr[TG_FRAME_HDR];
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_frame_header(0x01020304, UINT32_MAX, hdr, err), 0);
    ck_assert_int_eq(memcmp(hdr, "\1\2\3\4", 4), 0);
    ck_assert_int_eq(tg_frame_header(TG_FRAME_MAX + 1, TG_FRAME_MAX, hdr, err), TG_ETOOBIG);
    ck_assert_msg(strstr(err, "over the limit") != NULL, "%s", err);
}
END_TEST

Suite *tg_test_suite(void)
{
    return TG_TEST_SUITE("frame", "frame", NULL, test_frame_round_trip,
                         test_frame_every_split_point, test_frame_stops_after_each_frame,
                         test_frame_oversize_refused_on_header, test_frame_max_exactly_accepted,
                         test_frame_small_limit, test_frame_limit_raised_between_frames,
                         test_frame_truncated_at_eof, test_frame_header_encoding);
}

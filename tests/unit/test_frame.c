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

/* feed stops right after a complete frame: the caller sees the rest as not used. */
START_TEST(test_frame_stops_after_each_frame)
{
    struct tg_frame_decoder d;
    const char *frame;
    size_t n, used, len;
    char err[TG_ERRLEN] = "";
    char *stream = three_frames(&n);

    tg_frame_decoder_init(&d, TG_FRAME_MAX);
    ck_assert_int_eq(tg_frame_feed(&d, stream, n, &used, &frame, &len, err), 1);
    ck_assert_uint_eq(used, 9);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(memcmp(frame, "hello", 5), 0);
    ck_assert_int_eq(tg_frame_feed(&d, stream + 9, n - 9, &used, &frame, &len, err), 1);
    ck_assert_uint_eq(used, 4);
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_nonnull(frame);
    ck_assert_int_eq(tg_frame_feed(&d, stream + 13, n - 13, &used, &frame, &len, err), 1);
    ck_assert_uint_eq(used, 304);
    ck_assert_uint_eq(len, 300);
    ck_assert_int_eq(tg_frame_feed(&d, stream, 0, &used, &frame, &len, err), 0);
    ck_assert_uint_eq(used, 0);
    tg_frame_decoder_cleanup(&d);
    free(stream);
}
END_TEST

START_TEST(test_frame_oversize_refused_on_header)
{
    struct tg_frame_decoder d;
    const char *frame;
    size_t used, len;
    char err[TG_ERRLEN] = "";
    /* 4 MiB + 1 */
    static const unsigned char hdr[] = {0x00, 0x40, 0x00, 0x01, 'x'};

    tg_frame_decoder_init(&d, TG_FRAME_MAX);
    ck_assert_int_eq(tg_frame_feed(&d, hdr, 2, &used, &frame, &len, err), 0);
    ck_assert_int_eq(tg_frame_feed(&d, hdr + 2, 3, &used, &frame, &len, err), TG_ETOOBIG);
    ck_assert_uint_eq(used, 2);
    ck_assert_msg(strstr(err, "4194305 bytes") != NULL && strstr(err, "4194304") != NULL, "%s",
                  err);
    ck_assert_ptr_null(d.body); /* nothing allocated for the claimed size */
    /* sticky */
    ck_assert_int_eq(tg_frame_feed(&d, "abc", 3, &used, &frame, &len, err), TG_ETOOBIG);
    tg_frame_decoder_cleanup(&d);
}
END_TEST

START_TEST(test_frame_max_exactly_accepted)
{
    struct tg_frame_decoder d;
    const char *frame = NULL;
    size_t used, len = 0;
    char err[TG_ERRLEN] = "";
    char *enc, *body = calloc(1, TG_FRAME_MAX);
    size_t enc_len;

    ck_assert_int_eq(tg_frame_encode(body, TG_FRAME_MAX + 1, TG_FRAME_MAX, &enc, &enc_len, err),
                     TG_ETOOBIG);
    ck_assert_int_eq(tg_frame_encode(body, TG_FRAME_MAX, TG_FRAME_MAX, &enc, &enc_len, err), 0);
    tg_frame_decoder_init(&d, TG_FRAME_MAX);
    ck_assert_int_eq(tg_frame_feed(&d, enc, enc_len, &used, &frame, &len, err), 1);
    ck_assert_uint_eq(len, TG_FRAME_MAX);
    ck_assert_uint_eq(used, enc_len);
    /* the large buffer is let go when the next frame starts */
    ck_assert_int_eq(tg_frame_feed(&d, "\0\0\0\1z", 5, &used, &frame, &len, err), 1);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(frame[0], 'z');
    tg_frame_decoder_cleanup(&d);
    free(enc);
    free(body);
}
END_TEST

START_TEST(test_frame_small_limit)
{
    struct tg_frame_decoder d;
    const char *frame;
    size_t used, len;
    char err[TG_ERRLEN] = "";

    tg_frame_decoder_init(&d, 3);
    ck_assert_int_eq(tg_frame_feed(&d, "\0\0\0\3abc", 7, &used, &frame, &len, err), 1);
    ck_assert_int_eq(tg_frame_feed(&d, "\0\0\0\4abcd", 8, &used, &frame, &len, err), TG_ETOOBIG);
    tg_frame_decoder_cleanup(&d);
}
END_TEST

/* A server raises the limit once its peer has authenticated: from the next header on. */
START_TEST(test_frame_limit_raised_between_frames)
{
    struct tg_frame_decoder d;
    const char *frame;
    size_t used, len;
    char err[TG_ERRLEN] = "";

    tg_frame_decoder_init(&d, 3);
    ck_assert_int_eq(tg_frame_feed(&d, "\0\0\0\3abc\0\0\0\5hello", 16, &used, &frame, &len, err),
                     1);
    ck_assert_uint_eq(used, 7);
    tg_frame_decoder_set_max(&d, 5);
    ck_assert_int_eq(tg_frame_feed(&d, "\0\0\0\5hello", 9, &used, &frame, &len, err), 1);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(tg_frame_feed(&d, "\0\0\0\6", 4, &used, &frame, &len, err), TG_ETOOBIG);
    tg_frame_decoder_cleanup(&d);
}
END_TEST

START_TEST(test_frame_truncated_at_eof)
{
    struct tg_frame_decoder d;
    const char *frame;
    size_t used, len;
    char err[TG_ERRLEN] = "";

    tg_frame_decoder_init(&d, TG_FRAME_MAX);
    ck_assert_int_eq(tg_frame_decoder_eof(&d, err), 0); /* nothing at all: clean */
    ck_assert_int_eq(tg_frame_feed(&d, "\0\0", 2, &used, &frame, &len, err), 0);
    ck_assert_int_eq(tg_frame_decoder_eof(&d, err), TG_ECLOSED);
    ck_assert_msg(strstr(err, "header (2 of 4 bytes)") != NULL, "%s", err);
    ck_assert_int_eq(tg_frame_feed(&d, "\0\5he", 4, &used, &frame, &len, err), 0);
    ck_assert_int_eq(tg_frame_decoder_eof(&d, err), TG_ECLOSED);
    ck_assert_msg(strstr(err, "(2 of 5 bytes)") != NULL, "%s", err);
    ck_assert_int_eq(tg_frame_feed(&d, "llo", 3, &used, &frame, &len, err), 1);
    ck_assert_int_eq(tg_frame_decoder_eof(&d, err), 0); /* ended right after a frame */
    tg_frame_decoder_cleanup(&d);
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

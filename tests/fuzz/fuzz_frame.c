/* Fuzzing of the frame decoder. The input is a control byte string and a stream:
 *   byte 0: limit selector (small limits make the oversize path reachable);
 *   bytes 1..8: read-split seeds; the rest: the stream.
 * The stream is fed in pieces whose sizes come from the seeds, as reads from a socket would
 * come. A reference decoder written here, reading the whole stream at once, says which
 * frames and which outcome (clean end, truncated, over the limit) to expect; the
 * incremental decoder must agree frame for frame. Then every frame is encoded again and
 * the result must equal the consumed prefix of the input. Any disagreement aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/frame.h"

struct ref {
    size_t n_frames;
    size_t consumed; /* bytes of the stream that form whole frames */
    int outcome;     /* 0 clean end, TG_ECLOSED truncated, TG_ETOOBIG over the limit */
};

static struct ref ref_decode(const uint8_t *s, size_t n, size_t max)
{
    struct ref r = {0, 0, 0};
    size_t off = 0;

    while (off < n) {
        size_t len;

        if (n - off < 4) {
            r.outcome = TG_ECLOSED;
            return r;
        }
        len =
            (size_t)s[off] << 24 | (size_t)s[off + 1] << 16 | (size_t)s[off + 2] << 8 | s[off + 3];
        if (len > max) {
            r.outcome = TG_ETOOBIG;
            return r;
        }
        if (n - off - 4 < len) {
            r.outcome = TG_ECLOSED;
            return r;
        }
        off += 4 + len;
        r.n_frames++;
        r.consumed = off;
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[] = {0, 1, 16, 255, 4096, TG_FRAME_MAX};
    struct tg_frame_decoder d;
    const uint8_t *stream, *seeds;
    size_t n, max, off = 0, frames = 0, re_len = 0, piece = 0;
    uint8_t *re;
    int outcome = 0;
    struct ref want;
    char err[TG_ERRLEN];

    if (size < 9)
        return 0;
    max = limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
    seeds = data + 1;
    stream = data + 9;
    n = size - 9;
    want = ref_decode(stream, n, max);
    re = malloc(n + 1);
    if (re == NULL)
        return 0;
    tg_frame_decoder_init(&d, max);
    while (off < n) {
        /* piece sizes 1..256 from the seeds, cycling; a zero seed means "all the rest" */
        size_t len = seeds[piece++ % 8];
        size_t used = 0;

        len = len == 0 ? n - off : len;
        if (len > n - off)
            len = n - off;
        while (len > 0) {
            const char *frame;
            size_t flen;
            int rc;

            err[0] = '\0';
            rc = tg_frame_feed(&d, stream + off, len, &used, &frame, &flen, err);
            if (used > len)
                abort();
            off += used;
            len -= used;
            if (rc < 0) {
                fuzz_check_err(err);
                if (rc != TG_ETOOBIG)
                    abort();
                outcome = rc;
                goto done;
            }
            if (rc == 1) {
                unsigned char hdr[TG_FRAME_HDR];

                if (tg_frame_header(flen, max, hdr, err) != 0)
                    abort();
                memcpy(re + re_len, hdr, TG_FRAME_HDR);
                if (flen > 0)
                    memcpy(re + re_len + TG_FRAME_HDR, frame, flen);
                re_len += TG_FRAME_HDR + flen;
                frames++;
            } else if (rc != 0 || len != 0) {
                abort(); /* 0 means everything offered was consumed */
            }
        }
    }
    err[0] = '\0';
    outcome = tg_frame_decoder_eof(&d, err);
    if (outcome != 0)
        fuzz_check_err(err);
done:
    if (outcome != want.outcome || frames != want.n_frames || re_len != want.consumed ||
        memcmp(re, stream, re_len) != 0)
        abort();
    tg_frame_decoder_cleanup(&d);
    free(re);
    return 0;
}

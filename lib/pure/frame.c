/* Length framing: 4-byte big-endian length, then the body (frame.h). */
#include "tollgate/frame.h"

#include <stdlib.h>
#include <string.h>

/* The body buffer grows with what has arrived, not with what the header claims: a peer that
 * announces 4 MiB and sends nothing costs us this much. */
#define FIRST_CAP (64 * 1024)

void tg_frame_decoder_init(struct tg_frame_decoder *d, size_t max)
{
    memset(d, 0, sizeof(*d));
    d->max = max > UINT32_MAX ? UINT32_MAX : max;
}

void tg_frame_decoder_set_max(struct tg_frame_decoder *d, size_t max)
{
    d->max = max > UINT32_MAX ? UINT32_MAX : max;
}

void tg_frame_decoder_cleanup(struct tg_frame_decoder *d)
{
    free(d->body);
    d->body = NULL;
    d->body_cap = 0;
}

static int fail(struct tg_frame_decoder *d, char *err, int code, size_t len)
{
    d->failed = code;
    if (code == TG_ETOOBIG)
        return tg_err_set(err, code, "frame of %zu bytes is over the limit of %zu bytes", len,
                          d->max);
    return tg_err_set(err, code, "out of memory for a frame of %zu bytes", len);
}

/* Makes room for `want` body bytes in total. */
static int grow(struct tg_frame_decoder *d, size_t want)
{
    size_t cap = d->body_cap ? d->body_cap : FIRST_CAP;
    char *p;

    if (want <= d->body_cap)
        return 0;
    while (cap < want)
        cap *= 2;
    if (cap > d->body_len)
        cap = d->body_len;
    p = realloc(d->body, cap);
    if (p == NULL)
        return TG_ENOMEM;
    d->body = p;
    d->body_cap = cap;
    return 0;
}

int tg_frame_feed(struct tg_frame_decoder *d, const void *src, size_t n, size_t *used,
                  const char **frame, size_t *len, char *err)
{
    const unsigned char *p = src;
    size_t off = 0;

    *used = 0;
    if (d->failed == TG_ETOOBIG)
        return tg_err_set(err, d->failed, "frame over the limit of %zu bytes", d->max);
    if (d->failed != 0)
        return tg_err_set(err, d->failed, "frame decoder failed earlier");
    if (d->hdr_have == TG_FRAME_HDR && d->body_have == d->body_len) {
        /* the frame handed out last time is done with: start the next one */
        d->hdr_have = 0;
        d->body_have = 0;
        d->body_len = 0;
        if (d->body_cap > FIRST_CAP) /* one large frame does not pin its memory */
            tg_frame_decoder_cleanup(d);
    }
    while (d->hdr_have < TG_FRAME_HDR && off < n)
        d->hdr[d->hdr_have++] = p[off++];
    if (d->hdr_have < TG_FRAME_HDR) {
        *used = off;
        return 0;
    }
    if (d->body_have == 0 && d->body_len == 0) {
        d->body_len = (size_t)d->hdr[0] << 24 | (size_t)d->hdr[1] << 16 | (size_t)d->hdr[2] << 8 |
                      (size_t)d->hdr[3];
        if (d->body_len > d->max) {
            *used = off;
            return fail(d, err, TG_ETOOBIG, d->body_len);
        }
    }
    if (d->body_have < d->body_len && off < n) {
        size_t take = d->body_len - d->body_have;

        if (take > n - off)
            take = n - off;
        if (grow(d, d->body_have + take) < 0) {
            *used = off;
            return fail(d, err, TG_ENOMEM, d->body_len);
        }
        memcpy(d->body + d->body_have, p + off, take);
        d->body_have += take;
        off += take;
    }
    *used = off;
    if (d->body_have < d->body_len)
        return 0;
    /* complete; the state is reset at the next call so *frame stays valid until then */
    *frame = d->body != NULL ? d->body : (const char *)d->hdr;
    *len = d->body_len;
    return 1;
}

int tg_frame_decoder_eof(const struct tg_frame_decoder *d, char *err)
{
    if (d->hdr_have == 0 || (d->hdr_have == TG_FRAME_HDR && d->body_have == d->body_len))
        return 0;
    if (d->hdr_have < TG_FRAME_HDR)
        return tg_err_set(err, TG_ECLOSED, "stream ended inside a frame header (%zu of %d bytes)",
                          d->hdr_have, TG_FRAME_HDR);
    return tg_err_set(err, TG_ECLOSED, "stream ended inside a frame (%zu of %zu bytes)",
                      d->body_have, d->body_len);
}

int tg_frame_header(size_t len, size_t max, unsigned char hdr[TG_FRAME_HDR], char *err)
{
    if (max > UINT32_MAX)
        max = UINT32_MAX;
    if (len > max) {
        tg_err_set(err, TG_ETOOBIG, "frame of %zu bytes is over the limit of %zu bytes", len, max);
        return TG_ETOOBIG;
    }
    hdr[0] = (unsigned char)(len >> 24);
    hdr[1] = (unsigned char)(len >> 16);
    hdr[2] = (unsigned char)(len >> 8);
    hdr[3] = (unsigned char)len;
    return 0;
}

int tg_frame_encode(const void *body, size_t len, size_t max, char **out, size_t *out_len,
                    char *err)
{
    unsigned char hdr[TG_FRAME_HDR];
    char *buf;
    int rc;

    if ((rc = tg_frame_header(len, max, hdr, err)) < 0)
        return rc;
    buf = malloc(TG_FRAME_HDR + len);
    if (buf == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory for a frame of %zu bytes", len);
    memcpy(buf, hdr, TG_FRAME_HDR);
    if (len > 0)
        memcpy(buf + TG_FRAME_HDR, body, len);
    *out = buf;
    *out_len = TG_FRAME_HDR + len;
    return 0;
}

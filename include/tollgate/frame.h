/* Length framing of the control-plane stream: each message is a 4-byte big-endian length,
 * then that many bytes. Pure: no I/O, no libuv; fuzzed (tests/fuzz/fuzz_frame.c).
 *
 * The decoder takes the bytes in whatever pieces the network delivers and hands back one
 * complete frame at a time. A length over the decoder's maximum (TG_FRAME_MAX for the
 * stream) is an error as soon as the 4 length bytes are in, before any body arrives.
 * A zero-length frame is a valid frame (an empty protobuf message encodes to zero bytes);
 * the layer above decides whether an empty message means anything. */
#ifndef TOLLGATE_FRAME_H
#define TOLLGATE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "tollgate/err.h"

#define TG_FRAME_HDR 4
#define TG_FRAME_MAX (4u * 1024 * 1024) /* bytes of message, header not counted */

struct tg_frame_decoder {
    size_t max;                      /* largest body accepted */
    unsigned char hdr[TG_FRAME_HDR]; /* length bytes so far */
    size_t hdr_have;
    size_t body_len; /* valid once hdr_have == TG_FRAME_HDR */
    size_t body_have;
    char *body; /* grows as the body arrives; owned */
    size_t body_cap;
    int failed; /* sticky error code, 0 while healthy */
};

/* max: largest body length accepted, at most TG_FRAME_MAX is the stream's rule (a larger
 * value is clamped to UINT32_MAX). */
void tg_frame_decoder_init(struct tg_frame_decoder *d, size_t max);
/* Changes the largest body accepted, from the next frame header on (a frame whose header is
 * in already was checked against the old limit): a server raises it once its peer has
 * authenticated. Clamped like tg_frame_decoder_init. */
void tg_frame_decoder_set_max(struct tg_frame_decoder *d, size_t max);
/* Frees the body storage. The decoder may be initialised again. */
void tg_frame_decoder_cleanup(struct tg_frame_decoder *d);

/* Consumes bytes from src (n of them) until one frame is complete or src is used up, and
 * stores in *used how many bytes it took (the rest belongs to the next call).
 * Returns 1 with *frame and *len set when a frame is complete: *frame points into the
 * decoder and stays valid until the next call to tg_frame_feed or cleanup (for a zero-length
 * frame, *frame is a valid pointer to no bytes). Returns 0 when all of src was consumed and
 * no frame is complete yet. Returns TG_ETOOBIG (length over max) or TG_ENOMEM with a
 * one-line err; after an error every call fails the same way. */
TG_MUST_USE int tg_frame_feed(struct tg_frame_decoder *d, const void *src, size_t n, size_t *used,
                              const char **frame, size_t *len, char *err);

/* The stream ended. 0 when it ended between frames; TG_ECLOSED with err naming how much of a
 * frame had arrived otherwise. */
TG_MUST_USE int tg_frame_decoder_eof(const struct tg_frame_decoder *d, char *err);

/* Writes the 4-byte header for a body of len bytes. TG_ETOOBIG with err when len > max. */
TG_MUST_USE int tg_frame_header(size_t len, size_t max, unsigned char hdr[TG_FRAME_HDR], char *err);

/* Header and body in one new buffer (*out, *out_len; the caller frees). 0, TG_ETOOBIG or
 * TG_ENOMEM. */
TG_MUST_USE int tg_frame_encode(const void *body, size_t len, size_t max, char **out,
                                size_t *out_len, char *err);

#endif

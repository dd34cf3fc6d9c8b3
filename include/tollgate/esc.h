/* Escaping of strings from outside (peers, the control plane, requests, certificates, files)
 * wherever they are written: the diagnostic log (log.h) and error texts (tg_err_set), which
 * format through tg_esc_vformat, and JSON (the access log, the admin's /config_dump), which
 * uses TG_ESC_JSON. One escaper, so that one event is always exactly one line and no field
 * can pose as another.
 *
 * Escaped in every mode:
 *   - C0 controls U+0000..U+001F (NUL, TAB, LF, CR, ESC...) and DEL;
 *   - C1 controls U+0080..U+009F (a terminal takes U+009B as CSI, U+0085 as a new line);
 *   - the line and paragraph separators U+2028 and U+2029;
 *   - the bidirectional controls that reorder what a viewer shows ("Trojan Source"): U+061C,
 *     U+200E, U+200F, U+202A..U+202E, U+2066..U+2069;
 *   - every byte that is not part of well-formed UTF-8 (RFC 3629 section 4: stray
 *     continuation bytes, truncated sequences, overlong forms, surrogates, code points past
 *     U+10FFFF), judged byte by byte: each such byte is escaped on its own.
 * Everything else (printable ASCII, well-formed UTF-8) is written as it is.
 *
 * How, by mode:
 *   TG_ESC_TEXT     each escaped byte as \xHH (two lowercase hex digits; a code point of
 *                   several bytes gives one \xHH per byte); a backslash stays as it is.
 *                   Idempotent: its output passes through it again unchanged, so an error
 *                   text built with it can be logged with it and nothing doubles.
 *   TG_ESC_TEXT_DQ  a value between double quotes: as TG_ESC_TEXT, and '"' as \" and '\' as
 *                   \\, so the closing quote cannot be forged.
 *   TG_ESC_TEXT_SQ  the same between single quotes: '\'' as \' and '\' as \\.
 *   TG_ESC_JSON     the inside of a JSON string (RFC 8259 section 7): '"' as \", '\' as \\,
 *                   controls, DEL and the code points above as \u00XX or \uXXXX, and each
 *                   byte that is not well-formed UTF-8 as \ufffd (U+FFFD, the replacement
 *                   character), so the document stays valid UTF-8 and every JSON parser
 *                   takes it; the byte's value is lost there (the text log keeps it as \xHH).
 *
 * Pure; any thread. */
#ifndef TOLLGATE_ESC_H
#define TOLLGATE_ESC_H

#include <stdarg.h>
#include <stddef.h>

enum tg_esc_mode { TG_ESC_TEXT, TG_ESC_TEXT_DQ, TG_ESC_TEXT_SQ, TG_ESC_JSON };

/* The longest escape of one piece: a three-byte code point in TG_ESC_TEXT, "\xe2\x80\xa8". */
#define TG_ESC_PIECE_MAX 12

/* One step of the escaper: the bytes that stand for the next in_len bytes of the input. */
struct tg_esc_piece {
    const char *out; /* out_len bytes: the input itself (a run that needs no escape), or buf */
    size_t out_len;
    size_t in_len; /* >= 1 */
    char buf[TG_ESC_PIECE_MAX];
};

/* The next piece of s[0..n), n >= 1: a run as long as possible that is written as it is, or
 * the escape of one byte or one code point. Loop until the input is used up. */
void tg_esc_next(enum tg_esc_mode mode, const char *s, size_t n, struct tg_esc_piece *p);

/* Escapes s[0..n) into dst (cap bytes; NUL-terminated when cap > 0). What does not fit is
 * left out, never cutting an escape or a UTF-8 sequence. Returns the length written; *used
 * (unless NULL) gets the input bytes it stands for (n when everything fitted). */
size_t tg_esc(enum tg_esc_mode mode, const char *s, size_t n, char *dst, size_t cap, size_t *used);

/* vsnprintf that escapes: the literal text of fmt as TG_ESC_TEXT, and each %s and %c
 * argument as TG_ESC_TEXT, or as TG_ESC_TEXT_DQ when fmt puts it between double quotes
 * ("\"%s\"", or anywhere after an odd number of '"' in fmt) or as TG_ESC_TEXT_SQ when fmt
 * writes it as '%s'. Precision cuts a %s argument's input bytes (as printf does: it need
 * not be NUL-terminated) back to a whole UTF-8 sequence; width pads the escaped text.
 * Other conversions are printf's (%n writes nothing). Output that does not fit in cap is
 * cut at a piece boundary; dst is NUL-terminated when cap > 0. Returns the length written. */
size_t tg_esc_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
size_t tg_esc_format(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Length of the well-formed UTF-8 sequence at s (n >= 1 bytes available), or 0 when the
 * first byte does not start one (RFC 3629 section 4). */
size_t tg_esc_utf8_len(const unsigned char *s, size_t n);

#endif

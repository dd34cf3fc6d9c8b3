#include "tollgate/esc.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

static const char hex[] = "0123456789abcdef";

size_t tg_esc_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t need, i;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        need = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        need = 3;
        if (s[0] == 0xe0) /* overlong below U+0800 */
            lo = 0xa0;
        else if (s[0] == 0xed) /* surrogates U+D800..U+DFFF */
            hi = 0x9f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        need = 4;
        if (s[0] == 0xf0) /* overlong below U+10000 */
            lo = 0x90;
        else if (s[0] == 0xf4) /* past U+10FFFF */
            hi = 0x8f;
    } else {
        return 0; /* ASCII, a continuation byte, 0xc0, 0xc1 or 0xf5..0xff */
    }
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return need;
}

static uint32_t decode(const unsigned char *s, size_t len)
{
    uint32_t cp = len == 2 ? s[0] & 0x1f : len == 3 ? s[0] & 0x0f : s[0] & 0x07;

    for (size_t i = 1; i < len; i++)
        cp = cp << 6 | (s[i] & 0x3f);
    return cp;
}

/* Code points beyond ASCII that are escaped although well-formed (esc.h). */
static bool invisible(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0x061c ||
           cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

/* Length of the character at s if it is written as it is, else 0. */
static size_t plain_len(enum tg_esc_mode mode, const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;

    if (c < 0x20 || c == 0x7f)
        return 0;
    if (c == '\\')
        return mode == TG_ESC_TEXT ? 1 : 0;
    if (c == '"')
        return mode == TG_ESC_TEXT_DQ || mode == TG_ESC_JSON ? 0 : 1;
    if (c == '\'')
        return mode == TG_ESC_TEXT_SQ ? 0 : 1;
    if (c < 0x80)
        return 1;
    len = tg_esc_utf8_len(s, n);
    return len > 0 && !invisible(decode(s, len)) ? len : 0;
}

static size_t put_x(char *dst, unsigned char c)
{
    dst[0] = '\\';
    dst[1] = 'x';
    dst[2] = hex[c >> 4];
    dst[3] = hex[c & 0xf];
    return 4;
}

static size_t put_u(char *dst, uint32_t cp)
{
    dst[0] = '\\';
    dst[1] = 'u';
    dst[2] = hex[cp >> 12 & 0xf];
    dst[3] = hex[cp >> 8 & 0xf];
    dst[4] = hex[cp >> 4 & 0xf];
    dst[5] = hex[cp & 0xf];
    return 6;
}

/* The escape of the one byte or code point at s, which plain_len() refused. */
static void escape_one(enum tg_esc_mode mode, const unsigned char *s, size_t n,
                       struct tg_esc_piece *p)
{
    unsigned char c = s[0];
    size_t len, o = 0;

    p->out = p->buf;
    p->in_len = 1;
    if (c == '\\' || c == '"' || c == '\'') {
        p->buf[o++] = '\\';
        p->buf[o++] = (char)c;
    } else if (c < 0x80) { /* a control or DEL */
        o = mode == TG_ESC_JSON ? put_u(p->buf, c) : put_x(p->buf, c);
    } else if ((len = tg_esc_utf8_len(s, n)) == 0) { /* not UTF-8: this byte alone */
        o = mode == TG_ESC_JSON ? put_u(p->buf, 0xfffd) : put_x(p->buf, c);
    } else { /* well-formed but invisible */
        p->in_len = len;
        if (mode == TG_ESC_JSON)
            o = put_u(p->buf, decode(s, len));
        else
            for (size_t i = 0; i < len; i++)
                o += put_x(p->buf + o, s[i]);
    }
    assert(o <= sizeof(p->buf));
    p->out_len = o;
}

void tg_esc_next(enum tg_esc_mode mode, const char *s, size_t n, struct tg_esc_piece *p)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k;

    assert(n > 0);
    while (i < n && (k = plain_len(mode, u + i, n - i)) > 0)
        i += k;
    if (i > 0) {
        p->out = s;
        p->out_len = i;
        p->in_len = i;
        return;
    }
    escape_one(mode, u, n, p);
}

/* ---- a bounded output ---- */

/* dst holds at most lim = cap - 1 bytes and its NUL; once something did not fit, full. */
struct out {
    char *dst;
    size_t len, lim;
    bool full;
};

/* A plain run of text may be cut, at a UTF-8 boundary; an escape is written whole or not. */
static void emit(struct out *o, const char *s, size_t n, bool cuttable)
{
    size_t room = o->lim - o->len;

    if (o->full)
        return;
    if (n > room) {
        o->full = true;
        if (!cuttable)
            return;
        n = room;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--; /* s[n] starts the first character left out */
    }
    memcpy(o->dst + o->len, s, n);
    o->len += n;
}

/* Escapes s[0..n) into o; returns the input bytes it wrote for. */
static size_t emit_esc(struct out *o, enum tg_esc_mode mode, const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && !o->full) {
        struct tg_esc_piece p;
        size_t before = o->len;

        tg_esc_next(mode, s + i, n - i, &p);
        emit(o, p.out, p.out_len, p.out != p.buf);
        i += p.out != p.buf ? o->len - before : o->full ? 0 : p.in_len;
    }
    return i;
}

static size_t esc_len(enum tg_esc_mode mode, const char *s, size_t n)
{
    size_t i = 0, len = 0;

    while (i < n) {
        struct tg_esc_piece p;

        tg_esc_next(mode, s + i, n - i, &p);
        len += p.out_len;
        i += p.in_len;
    }
    return len;
}

size_t tg_esc(enum tg_esc_mode mode, const char *s, size_t n, char *dst, size_t cap, size_t *used)
{
    struct out o = {.dst = dst, .len = 0, .lim = cap > 0 ? cap - 1 : 0, .full = cap == 0};
    size_t u = emit_esc(&o, mode, s, n);

    if (cap > 0)
        dst[o.len] = '\0';
    if (used != NULL)
        *used = u;
    return o.len;
}

/* ---- the formatter ---- */

static void pad(struct out *o, size_t n)
{
    static const char spaces[] = "                                ";

    while (n > 0 && !o->full) {
        size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;

        emit(o, spaces, k, true);
        n -= k;
    }
}

/* A %s or %c argument: n bytes of s, with the field width w (left: '-' flag). */
static void emit_arg(struct out *o, enum tg_esc_mode mode, const char *s, size_t n, size_t w,
                     bool left)
{
    size_t len = w > 0 ? esc_len(mode, s, n) : 0;

    if (!left && w > len)
        pad(o, w - len);
    emit_esc(o, mode, s, n);
    if (left && w > len)
        pad(o, w - len);
}

/* The first n bytes of s, cut by a precision (s[n] may be out of bounds): without the lead
 * and continuation bytes of a UTF-8 sequence that the cut split. */
static size_t cut_to_char(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = n, want;

    while (k > 0 && n - k < 3 && (u[k - 1] & 0xc0) == 0x80)
        k--;
    if (k == 0)
        return n;
    k--; /* u[k] starts the last character, if it is a lead byte */
    want = u[k] >= 0xc2 && u[k] <= 0xdf   ? 2
           : u[k] >= 0xe0 && u[k] <= 0xef ? 3
           : u[k] >= 0xf0 && u[k] <= 0xf4 ? 4
                                          : 0;
    return want > n - k ? k : n;
}

struct spec {
    char flags[8];
    size_t n_flags;
    int width; /* -1: none */
    int prec;  /* -1: none */
    char len[3];
    char conv;
};

/* Formats one numeric or pointer conversion with printf into o. */
static void emit_number(struct out *o, const struct spec *sp, va_list *ap)
{
    char fmt[32], tmp[512];
    size_t f = 0;
    int n = 0;

    fmt[f++] = '%';
    memcpy(fmt + f, sp->flags, sp->n_flags);
    f += sp->n_flags;
    if (sp->width >= 0)
        f += (size_t)snprintf(fmt + f, sizeof(fmt) - f, "%d", sp->width);
    if (sp->prec >= 0)
        f += (size_t)snprintf(fmt + f, sizeof(fmt) - f, ".%d", sp->prec);
    f += (size_t)snprintf(fmt + f, sizeof(fmt) - f, "%s%c", sp->len, sp->conv);
    assert(f < sizeof(fmt));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    switch (sp->conv) {
    case 'd':
    case 'i':
        if (strcmp(sp->len, "l") == 0)
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, long));
        else if (strcmp(sp->len, "ll") == 0 || strcmp(sp->len, "q") == 0)
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, long long));
        else if (strcmp(sp->len, "j") == 0)
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, intmax_t));
        else if (strcmp(sp->len, "z") == 0)
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, ssize_t));
        else if (strcmp(sp->len, "t") == 0)
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, ptrdiff_t));
        else
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, int));
        break;
    case 'u':
    case 'o':
    case 'x':
    case 'X':
        if (strcmp(sp->len, "l") == 0)
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, unsigned long));
        else if (strcmp(sp->len, "ll") == 0 || strcmp(sp->len, "q") == 0)
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, unsigned long long));
        else if (strcmp(sp->len, "j") == 0)
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, uintmax_t));
        else if (strcmp(sp->len, "z") == 0)
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, size_t));
        else if (strcmp(sp->len, "t") == 0)
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, ptrdiff_t));
        else
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, unsigned));
        break;
    case 'p':
        n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, void *));
        break;
    default: /* e f g a, upper case too */
        if (strcmp(sp->len, "L") == 0)
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, long double));
        else
            n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, double));
        break;
    }
#pragma GCC diagnostic pop
    if (n < 0)
        return;
    emit_esc(o, TG_ESC_TEXT, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Reads "[flags][width][.prec][length]conv" after a '%' at *pp; false when it is not one
 * we know (the caller then writes the rest of fmt as text and stops). */
static bool parse_spec(const char **pp, struct spec *sp, va_list *ap)
{
    const char *p = *pp;
    size_t l = 0;

    memset(sp, 0, sizeof(*sp));
    sp->width = sp->prec = -1;
    while (*p != '\0' && strchr("-+ #0'", *p) != NULL) {
        if (sp->n_flags < sizeof(sp->flags))
            sp->flags[sp->n_flags++] = *p;
        p++;
    }
    if (*p == '*') {
        sp->width = va_arg(*ap, int);
        if (sp->width < 0) { /* a negative width is the '-' flag */
            sp->width = sp->width == INT_MIN ? 0 : -sp->width;
            if (sp->n_flags < sizeof(sp->flags))
                sp->flags[sp->n_flags++] = '-';
        }
        p++;
    } else if (*p >= '0' && *p <= '9') {
        for (sp->width = 0; *p >= '0' && *p <= '9'; p++)
            sp->width = sp->width < 100000 ? sp->width * 10 + (*p - '0') : sp->width;
    }
    if (*p == '.') {
        p++;
        if (*p == '*') {
            sp->prec = va_arg(*ap, int); /* negative: as if none */
            p++;
        } else {
            for (sp->prec = 0; *p >= '0' && *p <= '9'; p++)
                sp->prec = sp->prec < 100000 ? sp->prec * 10 + (*p - '0') : sp->prec;
        }
        if (sp->prec < 0)
            sp->prec = -1;
    }
    while (*p != '\0' && strchr("hljztLq", *p) != NULL && l < 2)
        sp->len[l++] = *p++;
    sp->conv = *p;
    if (sp->conv == '\0' || strchr("diouxXeEfFgGaAcspnm%", sp->conv) == NULL)
        return false;
    if (strcmp(sp->len, "") != 0 && strchr("csm%", sp->conv) != NULL)
        return false; /* %lc, %ls: wide characters, not used here */
    *pp = p + 1;
    return true;
}

static bool has_flag(const struct spec *sp, char f)
{
    return memchr(sp->flags, f, sp->n_flags) != NULL;
}

size_t tg_esc_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
{
    struct out o = {.dst = dst, .len = 0, .lim = cap > 0 ? cap - 1 : 0, .full = cap == 0};
    const char *p = fmt;
    bool dq = false;  /* after an odd number of '"' in fmt */
    char prev = '\0'; /* the last literal character before a conversion */
    int saved_errno = errno;
    va_list args;

    va_copy(args, ap);
    while (*p != '\0' && !o.full) {
        const char *start = p;
        struct spec sp;
        enum tg_esc_mode mode;

        if (*p != '%') {
            while (*p != '\0' && *p != '%') {
                if (*p == '"')
                    dq = !dq;
                p++;
            }
            emit_esc(&o, TG_ESC_TEXT, start, (size_t)(p - start));
            prev = p[-1];
            continue;
        }
        p++;
        if (!parse_spec(&p, &sp, &args)) { /* not a conversion we know: text, and stop */
            emit_esc(&o, TG_ESC_TEXT, start, strlen(start));
            break;
        }
        mode = dq ? TG_ESC_TEXT_DQ : prev == '\'' && p[0] == '\'' ? TG_ESC_TEXT_SQ : TG_ESC_TEXT;
        prev = '\0';
        switch (sp.conv) {
        case '%':
            emit(&o, "%", 1, false);
            break;
        case 'n':
            (void)va_arg(args, void *); /* never written */
            break;
        case 'm': {
            const char *s = strerror(saved_errno);

            emit_arg(&o, mode, s, strlen(s), sp.width > 0 ? (size_t)sp.width : 0,
                     has_flag(&sp, '-'));
            break;
        }
        case 'c': {
            char c = (char)va_arg(args, int);

            emit_arg(&o, mode, &c, 1, sp.width > 0 ? (size_t)sp.width : 0, has_flag(&sp, '-'));
            break;
        }
        case 's': {
            const char *s = va_arg(args, const char *);
            size_t n;

            if (s == NULL)
                s = "(null)";
            n = sp.prec >= 0 ? strnlen(s, (size_t)sp.prec) : strlen(s);
            if (sp.prec >= 0 && n == (size_t)sp.prec)
                n = cut_to_char(s, n);
            emit_arg(&o, mode, s, n, sp.width > 0 ? (size_t)sp.width : 0, has_flag(&sp, '-'));
            break;
        }
        default:
            emit_number(&o, &sp, &args);
            break;
        }
    }
    va_end(args);
    if (cap > 0)
        dst[o.len] = '\0';
    errno = saved_errno;
    return o.len;
}

size_t tg_esc_format(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    n = tg_esc_vformat(dst, cap, fmt, ap);
    va_end(ap);
    return n;
}

/* esc.c: the one escaper of strings from outside (text logs, error texts, JSON), its
 * formatter, and the two sinks that format through it (tg_log, tg_err_set). Table-driven:
 * every control byte, every C1 control, overlong and truncated UTF-8, surrogates, code
 * points past U+10FFFF, separators and bidi controls, quotes and backslashes, in every mode. */
#include <check.h>
#include "check_main.h"
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "tollgate/err.h"
#include "tollgate/esc.h"
#include "tollgate/log.h"

static const enum tg_esc_mode modes[] = {TG_ESC_TEXT, TG_ESC_TEXT_DQ, TG_ESC_TEXT_SQ, TG_ESC_JSON};

/* tg_esc of n bytes into a static buffer. */
static const char *esc_n(enum tg_esc_mode mode, const char *s, size_t n)
{
    static char out[4096];
    size_t used;
    size_t len = tg_esc(mode, s, n, out, sizeof(out), &used);

    ck_assert_uint_eq(used, n);
    ck_assert_uint_eq(len, strlen(out));
    return out;
}

static const char *esc(enum tg_esc_mode mode, const char *s)
{
    return esc_n(mode, s, strlen(s));
}

/* ---- single bytes -------------------------------------------------------------------- */

START_TEST(test_esc_every_single_byte)
{
    for (unsigned c = 0; c < 256; c++) {
        char in[1] = {(char)c}, text[8], dq[8], sq[8], json[8];

        if (c < 0x20 || c == 0x7f || c >= 0x80) {
            snprintf(text, sizeof(text), "\\x%02x", c);
            snprintf(json, sizeof(json), c >= 0x80 ? "\\ufffd" : "\\u%04x", c);
        } else {
            snprintf(text, sizeof(text), "%c", c);
            snprintf(json, sizeof(json), c == '"' || c == '\\' ? "\\%c" : "%c", c);
        }
        ck_assert_str_eq(esc_n(TG_ESC_TEXT, in, 1), text);
        ck_assert_str_eq(esc_n(TG_ESC_JSON, in, 1), json);
        if (c == '"' || c == '\\')
            snprintf(dq, sizeof(dq), "\\%c", c);
        else
            snprintf(dq, sizeof(dq), "%s", text);
        if (c == '\'' || c == '\\')
            snprintf(sq, sizeof(sq), "\\%c", c);
        else
            snprintf(sq, sizeof(sq), "%s", text);
        ck_assert_str_eq(esc_n(TG_ESC_TEXT_DQ, in, 1), dq);
        ck_assert_str_eq(esc_n(TG_ESC_TEXT_SQ, in, 1), sq);
    }
}
END_TEST

START_TEST(test_esc_every_c1_control)
{
    for (unsigned cp = 0x80; cp <= 0x9f; cp++) {
        char in[3] = {(char)0xc2, (char)cp, 'x'}, want[32];

        snprintf(want, sizeof(want), "\\xc2\\x%02xx", cp);
        ck_assert_str_eq(esc_n(TG_ESC_TEXT, in, 3), want);
        ck_assert_str_eq(esc_n(TG_ESC_TEXT_DQ, in, 3), want);
        snprintf(want, sizeof(want), "\\u%04xx", cp);
        ck_assert_str_eq(esc_n(TG_ESC_JSON, in, 3), want);
    }
    /* U+00A0 and up are printable: as they are */
    ck_assert_str_eq(esc(TG_ESC_TEXT, "\xc2\xa0\xc3\xa9"), "\xc2\xa0\xc3\xa9");
    ck_assert_str_eq(esc(TG_ESC_JSON, "\xc2\xa0\xc3\xa9"), "\xc2\xa0\xc3\xa9");
}
END_TEST

/* ---- the table ----------------------------------------------------------------------- */

/* A column that wants what the column before it says (text: the input as it is). */
#define SAME NULL

static const struct {
    const char *in;
    const char *text, *dq, *json; /* what each mode makes of in, or SAME */
} table[] = {
    /* plain */
    {"", SAME, SAME, SAME},
    {"abc xyz", SAME, SAME, SAME},
    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", SAME, SAME, SAME},
    {"\xef\xbf\xbd", SAME, SAME, SAME}, /* U+FFFD itself */
    {"\xf4\x8f\xbf\xbf", SAME, SAME, SAME},
    /* a forged line */
    {"x\r\n2026-01-01T00:00:00.000Z error forged",
     "x\\x0d\\x0a2026-01-01T00:00:00.000Z error forged", SAME,
     "x\\u000d\\u000a2026-01-01T00:00:00.000Z error forged"},
    {"a\x1b[31mred\x1b[0m", "a\\x1b[31mred\\x1b[0m", SAME, "a\\u001b[31mred\\u001b[0m"},
    {"tab\there", "tab\\x09here", SAME, "tab\\u0009here"},
    /* quotes and backslashes */
    {"a\"b", SAME, "a\\\"b", SAME},
    {"a'b", SAME, SAME, SAME},
    {"a\\b", SAME, "a\\\\b", SAME},
    {"\\\"", SAME, "\\\\\\\"", SAME},
    {"\\x0a", SAME, "\\\\x0a", SAME},
    /* separators and bidi controls */
    {"\xe2\x80\xa8", "\\xe2\\x80\\xa8", SAME, "\\u2028"},
    {"\xe2\x80\xa9", "\\xe2\\x80\\xa9", SAME, "\\u2029"},
    {"\xd8\x9c", "\\xd8\\x9c", SAME, "\\u061c"},
    {"\xe2\x80\x8e\xe2\x80\x8f", "\\xe2\\x80\\x8e\\xe2\\x80\\x8f", SAME, "\\u200e\\u200f"},
    {"\xe2\x80\xaa\xe2\x80\xae", "\\xe2\\x80\\xaa\\xe2\\x80\\xae", SAME, "\\u202a\\u202e"},
    {"\xe2\x81\xa6\xe2\x81\xa9", "\\xe2\\x81\\xa6\\xe2\\x81\\xa9", SAME, "\\u2066\\u2069"},
    {"\xe2\x80\xa7\xe2\x80\xaf\xe2\x81\xa5\xe2\x81\xaa", SAME, SAME,
     SAME}, /* neighbours: printable */
    /* overlong forms */
    {"\xc0\xaf", "\\xc0\\xaf", SAME, "\\ufffd\\ufffd"},
    {"\xc1\xbf", "\\xc1\\xbf", SAME, "\\ufffd\\ufffd"},
    {"\xe0\x80\xaf", "\\xe0\\x80\\xaf", SAME, "\\ufffd\\ufffd\\ufffd"},
    {"\xe0\x9f\xbf", "\\xe0\\x9f\\xbf", SAME, "\\ufffd\\ufffd\\ufffd"},
    {"\xf0\x80\x80\xaf", "\\xf0\\x80\\x80\\xaf", SAME, "\\ufffd\\ufffd\\ufffd\\ufffd"},
    {"\xf0\x8f\xbf\xbf", "\\xf0\\x8f\\xbf\\xbf", SAME, "\\ufffd\\ufffd\\ufffd\\ufffd"},
    /* an overlong LF does not become a line break anywhere */
    {"\xc0\x8a", "\\xc0\\x8a", SAME, "\\ufffd\\ufffd"},
    /* surrogates */
    {"\xed\xa0\x80", "\\xed\\xa0\\x80", SAME, "\\ufffd\\ufffd\\ufffd"},
    {"\xed\xbf\xbf", "\\xed\\xbf\\xbf", SAME, "\\ufffd\\ufffd\\ufffd"},
    {"\xed\x9f\xbf", SAME, SAME, SAME}, /* U+D7FF is fine */
    /* past U+10FFFF */
    {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80", SAME, "\\ufffd\\ufffd\\ufffd\\ufffd"},
    {"\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80", SAME, "\\ufffd\\ufffd\\ufffd\\ufffd"},
    /* truncated sequences, at the end and before more text */
    {"x\xc3", "x\\xc3", SAME, "x\\ufffd"},
    {"\xe2\x82", "\\xe2\\x82", SAME, "\\ufffd\\ufffd"},
    {"\xe2\x82x", "\\xe2\\x82x", SAME, "\\ufffd\\ufffdx"},
    {"\xf0\x9f\x98", "\\xf0\\x9f\\x98", SAME, "\\ufffd\\ufffd\\ufffd"},
    {"\xf0\x9f\x98\n", "\\xf0\\x9f\\x98\\x0a", SAME, "\\ufffd\\ufffd\\ufffd\\u000a"},
    /* stray continuation bytes */
    {"\x80\xbf", "\\x80\\xbf", SAME, "\\ufffd\\ufffd"},
    {"\xc3\xa9\xa9", "\xc3\xa9\\xa9", SAME, "\xc3\xa9\\ufffd"},
};

START_TEST(test_esc_table)
{
    static const enum tg_esc_mode mode[] = {TG_ESC_TEXT, TG_ESC_TEXT_DQ, TG_ESC_JSON};
    static const char *const name[] = {"text", "dq", "json"};

    for (size_t i = 0; i < TG_NELEM(table); i++) {
        const char *column[] = {table[i].text, table[i].dq, table[i].json}, *want = table[i].in;

        for (size_t m = 0; m < TG_NELEM(mode); m++) {
            want = column[m] != SAME ? column[m] : want;
            ck_assert_msg(strcmp(esc(mode[m], table[i].in), want) == 0, "row %zu %s: %s", i,
                          name[m], esc(mode[m], table[i].in));
        }
    }
}
END_TEST

START_TEST(test_esc_nul_inside_the_input)
{
    ck_assert_str_eq(esc_n(TG_ESC_TEXT, "a\0b", 3), "a\\x00b");
    ck_assert_str_eq(esc_n(TG_ESC_JSON, "a\0b", 3), "a\\u0000b");
}
END_TEST

/* ---- properties over many inputs ---------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* Random bytes, most of them from the interesting ones. */
static size_t random_input(char *dst, size_t cap)
{
    static const char *const parts[] = {
        "a",
        " ",
        "\"",
        "'",
        "\\",
        "\n",
        "\r",
        "\x1b",
        "\x7f",
        "\x00",
        "\xc2\x85",
        "\xc2\x9b",
        "\xc3\xa9",
        "\xe2\x80\xae",
        "\xe2\x80\xa8",
        "\xed\xa0\x80",
        "\xf0\x9f\x98\x80",
        "\xf0\x9f",
        "\xff",
        "\x80",
        "\xc0\x8a",
        "\xe2",
        "%",
        "x",
    };
    size_t n = 0, k = rnd(24);

    for (size_t i = 0; i < k; i++) {
        const char *p = parts[rnd(TG_NELEM(parts))];
        size_t len = p[0] == '\0' ? 1 : strlen(p);

        if (n + len > cap)
            break;
        memcpy(dst + n, p, len);
        n += len;
    }
    return n;
}

/* Why out is not valid UTF-8 free of control bytes and of the escaped code points; NULL
 * when it is. (Check's assertions are slow: one per string, not per byte.) */
static const char *unclean(const char *out, size_t n)
{
    const unsigned char *u = (const unsigned char *)out;

    for (size_t i = 0; i < n;) {
        size_t len;

        if (u[i] < 0x20 || u[i] == 0x7f)
            return "control byte";
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        if ((len = tg_esc_utf8_len(u + i, n - i)) == 0)
            return "not UTF-8";
        if (u[i] == 0xc2 && u[i + 1] < 0xa0)
            return "C1 control";
        if (u[i] == 0xe2 && u[i + 1] == 0x80 &&
            (u[i + 2] == 0xa8 || u[i + 2] == 0xa9 || (u[i + 2] >= 0xaa && u[i + 2] <= 0xae)))
            return "separator or bidi control";
        i += len;
    }
    return NULL;
}

static void expect_clean(const char *out, size_t n)
{
    const char *why = unclean(out, n);

    ck_assert_msg(why == NULL, "%s: %s", why, out);
}

/* Undoes TG_ESC_TEXT_DQ / _SQ: \\, \", \', \xHH. */
static size_t unescape(const char *s, char *dst)
{
    size_t n = 0;

    while (*s != '\0') {
        if (*s != '\\') {
            dst[n++] = *s++;
        } else if (s[1] == 'x') {
            char hex[3] = {s[2], s[3], '\0'};

            dst[n++] = (char)strtoul(hex, NULL, 16);
            s += 4;
        } else {
            dst[n++] = s[1];
            s += 2;
        }
    }
    return n;
}

START_TEST(test_esc_properties)
{
    for (int round = 0; round < 5000; round++) {
        char in[128], out[1024], again[4096], back[1024];
        size_t n = random_input(in, sizeof(in)), len;

        for (size_t m = 0; m < TG_NELEM(modes); m++) {
            len = tg_esc(modes[m], in, n, out, sizeof(out), NULL);
            expect_clean(out, len);
            if (modes[m] == TG_ESC_TEXT_DQ || modes[m] == TG_ESC_TEXT_SQ) {
                char q = modes[m] == TG_ESC_TEXT_DQ ? '"' : '\'';

                /* reversible: the value is exactly recovered... */
                ck_assert_uint_eq(unescape(out, back), n);
                ck_assert(memcmp(back, in, n) == 0);
                /* ...and every quote in it is escaped: it cannot end the quoted field */
                bool bare = false;

                for (size_t i = 0; i < len; i++) {
                    if (out[i] == '\\')
                        i++;
                    else if (out[i] == q)
                        bare = true;
                }
                ck_assert_msg(!bare, "bare quote in %s", out);
            }
        }
        /* TG_ESC_TEXT is idempotent, and takes the quoted modes' output as it is */
        len = tg_esc(TG_ESC_TEXT, in, n, out, sizeof(out), NULL);
        ck_assert_str_eq(esc_n(TG_ESC_TEXT, out, len), out);
        len = tg_esc(TG_ESC_TEXT_DQ, in, n, again, sizeof(again), NULL);
        ck_assert_str_eq(esc_n(TG_ESC_TEXT, again, len), again);
    }
}
END_TEST

/* A small dst: never a cut escape or UTF-8 sequence, always NUL-terminated, *used says how
 * far the input got. */
START_TEST(test_esc_bounded_output)
{
    static const char in[] = "ab\xc3\xa9\n\xe2\x80\xae\"z";
    char out[64];
    size_t used, len;

    for (size_t cap = 0; cap < 40; cap++) {
        for (size_t m = 0; m < TG_NELEM(modes); m++) {
            char full[64], part[64];
            size_t full_len = tg_esc(modes[m], in, sizeof(in) - 1, full, sizeof(full), NULL);

            memset(out, 'X', sizeof(out));
            len = tg_esc(modes[m], in, sizeof(in) - 1, out, cap, &used);
            if (cap == 0) {
                ck_assert_uint_eq(len, 0);
                ck_assert_int_eq(out[0], 'X');
                continue;
            }
            ck_assert_uint_lt(len, cap);
            ck_assert_int_eq(out[len], '\0');
            /* a prefix of the whole escape, standing for the first used bytes */
            ck_assert(memcmp(out, full, len) == 0);
            ck_assert_uint_eq(len, tg_esc(modes[m], in, used, part, sizeof(part), NULL));
            expect_clean(out, len);
            if (cap > full_len)
                ck_assert_uint_eq(used, sizeof(in) - 1);
        }
    }
}
END_TEST

START_TEST(test_esc_pieces)
{
    struct tg_esc_piece p;
    const char *s = "plain \xc3\xa9 run\nrest";

    tg_esc_next(TG_ESC_TEXT, s, strlen(s), &p);
    ck_assert_ptr_eq(p.out, s); /* a run is the input itself: no copy */
    ck_assert_uint_eq(p.in_len, 12);
    ck_assert_uint_eq(p.out_len, 12);
    tg_esc_next(TG_ESC_TEXT, s + 12, strlen(s) - 12, &p);
    ck_assert_ptr_eq(p.out, p.buf);
    ck_assert_uint_eq(p.in_len, 1);
    ck_assert_uint_eq(p.out_len, 4);
    ck_assert(memcmp(p.out, "\\x0a", 4) == 0);
    tg_esc_next(TG_ESC_TEXT, "\xe2\x80\xa8", 3, &p);
    ck_assert_uint_eq(p.in_len, 3);
    ck_assert_uint_eq(p.out_len, TG_ESC_PIECE_MAX);
}
END_TEST

/* ---- the formatter ------------------------------------------------------------------- */

static char fmt_out[4096];

static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static const char *fmt(const char *f, ...)
{
    va_list ap;
    size_t n;

    va_start(ap, f);
    n = tg_esc_vformat(fmt_out, sizeof(fmt_out), f, ap);
    va_end(ap);
    ck_assert_uint_eq(n, strlen(fmt_out));
    return fmt_out;
}

#define EVIL "a\"b'c\\d\ne"

START_TEST(test_esc_format_quotes_follow_the_format)
{
    ck_assert_str_eq(fmt("node %s refused", EVIL), "node a\"b'c\\d\\x0ae refused");
    ck_assert_str_eq(fmt("node \"%s\" refused", EVIL), "node \"a\\\"b'c\\\\d\\x0ae\" refused");
    ck_assert_str_eq(fmt("node '%s' refused", EVIL), "node 'a\"b\\'c\\\\d\\x0ae' refused");
    /* inside double quotes however many arguments they hold */
    ck_assert_str_eq(fmt("\"%s, %s\" %s", "\"", "\\", "\""), "\"\\\", \\\\\" \"");
    /* an apostrophe in prose is no quote */
    ck_assert_str_eq(fmt("can't: %s", EVIL), "can't: a\"b'c\\d\\x0ae");
    ck_assert_str_eq(fmt("'%c' not allowed", '\''), "'\\'' not allowed");
    ck_assert_str_eq(fmt("'%c' not allowed", '\n'), "'\\x0a' not allowed");
    ck_assert_str_eq(fmt("%c", '"'), "\"");
    /* quotes balanced before: outside again */
    ck_assert_str_eq(fmt("\"sub\" %s", "\""), "\"sub\" \"");
    ck_assert_str_eq(fmt("\"sub\" \"%.150s\" is not %s", "x\" is not \"y", "z"),
                     "\"sub\" \"x\\\" is not \\\"y\" is not z");
}
END_TEST

START_TEST(test_esc_format_literal_text_is_escaped_too)
{
    ck_assert_str_eq(fmt("line\none\r\n%s", "x"), "line\\x0aone\\x0d\\x0ax");
    ck_assert_str_eq(fmt("100%%"), "100%");
    {
        const char *volatile none = NULL; /* as glibc's printf: "(null)" */

        ck_assert_str_eq(fmt("%s", none), "(null)");
    }
}
END_TEST

START_TEST(test_esc_format_precision_reads_no_further)
{
    char *buf = malloc(8); /* no NUL anywhere: ASan would see a read past it */

    ck_assert_ptr_nonnull(buf);
    memcpy(buf, "abc\ndef\"", 8);
    ck_assert_str_eq(fmt("[%.*s]", 8, buf), "[abc\\x0adef\"]");
    ck_assert_str_eq(fmt("[\"%.*s\"]", 8, buf), "[\"abc\\x0adef\\\"\"]");
    ck_assert_str_eq(fmt("[%.4s]", buf), "[abc\\x0a]");
    /* a precision that cuts a UTF-8 sequence drops its start rather than show a bad byte */
    memcpy(buf, "ab\xc3\xa9\xe2\x82\xac!", 8);
    ck_assert_str_eq(fmt("%.3s|%.4s|%.5s|%.6s|%.7s", buf, buf, buf, buf, buf),
                     "ab|ab\xc3\xa9|ab\xc3\xa9|ab\xc3\xa9|ab\xc3\xa9\xe2\x82\xac");
    /* a bad byte that is no cut stays, escaped */
    memcpy(buf, "ab\xff\xff\xff\xff\xff\xff", 8);
    ck_assert_str_eq(fmt("%.3s", buf), "ab\\xff");
    free(buf);
    ck_assert_str_eq(fmt("%.*s", -1, "whole"), "whole");
    ck_assert_str_eq(fmt("%.0s|", "none"), "|");
}
END_TEST

START_TEST(test_esc_format_width_pads_the_escaped_text)
{
    ck_assert_str_eq(fmt("[%5s]", "a\n"), "[a\\x0a]"); /* 5 bytes escaped: no padding */
    ck_assert_str_eq(fmt("[%7s]", "a\n"), "[  a\\x0a]");
    ck_assert_str_eq(fmt("[%-7s]", "a\n"), "[a\\x0a  ]");
    ck_assert_str_eq(fmt("[%*s]", -4, "ab"), "[ab  ]");
    ck_assert_str_eq(fmt("[%3c]", 'x'), "[  x]");
}
END_TEST

START_TEST(test_esc_format_numbers_are_printf)
{
    static int marker; /* an address for %p */
    char want[512];

    snprintf(want, sizeof(want),
             "%d %i %u %x %X %o %ld %lu %lld %llu %zu %zd %jd %ju %td %hhd %hd "
             "%5.2f %e %g %% %05d %-4d| %+d %#x %c %p %Lf",
             -1, 2, 3u, 255u, 255u, 8u, -4L, 5UL, -6LL, 7ULL, (size_t)8, (ssize_t)-9, (intmax_t)-10,
             (uintmax_t)11, (ptrdiff_t)-12, (signed char)-13, (short)-14, 3.14159, 2.5e10, 0.5, 42,
             7, 9, 255u, 'q', (void *)&marker, (long double)1.5);
    ck_assert_str_eq(fmt("%d %i %u %x %X %o %ld %lu %lld %llu %zu %zd %jd %ju %td %hhd %hd "
                         "%5.2f %e %g %% %05d %-4d| %+d %#x %c %p %Lf",
                         -1, 2, 3u, 255u, 255u, 8u, -4L, 5UL, -6LL, 7ULL, (size_t)8, (ssize_t)-9,
                         (intmax_t)-10, (uintmax_t)11, (ptrdiff_t)-12, (signed char)-13, (short)-14,
                         3.14159, 2.5e10, 0.5, 42, 7, 9, 255u, 'q', (void *)&marker,
                         (long double)1.5),
                     want);
    ck_assert_str_eq(fmt("%*d|%.*d|%s", 5, 42, 4, 7, "end"), "   42|0007|end");
    ck_assert_str_eq(fmt("%" PRIu64 " %s", (uint64_t)18446744073709551615ULL, "x"),
                     "18446744073709551615 x");
    errno = EACCES;
    ck_assert_str_eq(fmt("open: %m"), "open: Permission denied");
    ck_assert_int_eq(errno, EACCES);
}
END_TEST

START_TEST(test_esc_format_is_cut_whole)
{
    char out[16];

    for (size_t cap = 1; cap < sizeof(out); cap++) {
        size_t n = tg_esc_format(out, cap, "ab%s%d", "\n\xe2\x80\xae", 123456);

        ck_assert_uint_lt(n, cap);
        ck_assert_int_eq(out[n], '\0');
        expect_clean(out, n);
        /* no escape is cut: whatever is there is a prefix of the whole, at a piece end */
        ck_assert(strncmp(out, "ab\\x0a\\xe2\\x80\\xae123456", n) == 0);
        /* the pieces end at 2, 6 and 18 (the bidi control is one piece): 18 is past out */
        ck_assert_msg(n <= 2 || n == 6, "cut inside an escape: %zu %s", n, out);
    }
    ck_assert_uint_eq(tg_esc_format(out, 0, "%s", "x"), 0);
}
END_TEST

/* ---- the sinks ----------------------------------------------------------------------- */

START_TEST(test_err_set_escapes)
{
    char err[TG_ERRLEN];

    ck_assert_int_eq(tg_err_set(err, TG_EINVAL, "issuer \"%s\" is not %s", "x\"\n", "y\r"),
                     TG_EINVAL);
    ck_assert_str_eq(err, "issuer \"x\\\"\\x0a\" is not y\\x0d");
    ck_assert_int_eq(tg_err_set(NULL, TG_EPEER, "%s", "x"), TG_EPEER);
}
END_TEST

/* Runs tg_log with stderr on a pipe and returns what came out. */
static size_t capture_log(char *dst, size_t cap, const char *arg)
{
    int fds[2], saved;
    ssize_t r;
    size_t n = 0;

    ck_assert_int_eq(pipe(fds), 0);
    saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fds[1], STDERR_FILENO), 0);
    tg_log_set_level(TG_LOG_INFO);
    tg_warn("stream %d (node \"%s\") refused: %s", 7, arg, arg);
    tg_debug("not written: %s", arg);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    close(fds[1]);
    while (n < cap - 1 && (r = read(fds[0], dst + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    dst[n] = '\0';
    close(fds[0]);
    return n;
}

/* A forged line in an argument stays inside the one line of its event. */
START_TEST(test_log_one_event_one_line)
{
    static char out[8192], arg[6000];
    const char *msg;
    size_t n = capture_log(out, sizeof(out), "x\r\n2026-01-01T00:00:00.000Z error FORGED\x1b[2J");

    ck_assert_uint_gt(n, 30);
    ck_assert_int_eq(out[n - 1], '\n');
    ck_assert_ptr_eq(strchr(out, '\n'), out + n - 1); /* one line */
    ck_assert_int_eq(out[4], '-');
    ck_assert_int_eq(out[23], 'Z');
    msg = out + 25;
    ck_assert_str_eq(msg, "warn stream 7 (node \"x\\x0d\\x0a2026-01-01T00:00:00.000Z error "
                          "FORGED\\x1b[2J\") refused: x\\x0d\\x0a2026-01-01T00:00:00.000Z error "
                          "FORGED\\x1b[2J\n");
    /* a long argument is cut: still one line, within the line limit, at an escape's end */
    memset(arg, '\n', sizeof(arg) - 1);
    arg[sizeof(arg) - 1] = '\0';
    n = capture_log(out, sizeof(out), arg);
    ck_assert_uint_le(n, TG_LOG_LINE_MAX);
    ck_assert_ptr_eq(strchr(out, '\n'), out + n - 1);
    ck_assert_msg(strncmp(out + n - 5, "\\x0a\n", 5) == 0, "cut inside an escape: %s",
                  out + n - 20);
}
END_TEST

Suite *tg_test_suite(void)
{
    return TG_TEST_SUITE(
        "esc", "esc", NULL, test_esc_every_single_byte, test_esc_every_c1_control, test_esc_table,
        test_esc_nul_inside_the_input, test_esc_properties, test_esc_bounded_output,
        test_esc_pieces, test_esc_format_quotes_follow_the_format,
        test_esc_format_literal_text_is_escaped_too, test_esc_format_precision_reads_no_further,
        test_esc_format_width_pads_the_escaped_text, test_esc_format_numbers_are_printf,
        test_esc_format_is_cut_whole, test_err_set_escapes, test_log_one_event_one_line);
}

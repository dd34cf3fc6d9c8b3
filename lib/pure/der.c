/* DER edits (der.h). */
#include "tollgate/der.h"

#include "tollgate/cursor.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Writes a DER tag and definite length to out (if not NULL); returns the header size. */
static size_t der_hdr(unsigned char *out, unsigned char tag, size_t len)
{
    unsigned char h[6];
    size_t n = 0;

    h[n++] = tag;
    if (len < 0x80) {
        h[n++] = (unsigned char)len;
    } else if (len <= 0xff) {
        h[n++] = 0x81;
        h[n++] = (unsigned char)len;
    } else if (len <= 0xffff) {
        h[n++] = 0x82;
        h[n++] = (unsigned char)(len >> 8);
        h[n++] = (unsigned char)len;
    } else {
        h[n++] = 0x83;
        h[n++] = (unsigned char)(len >> 16);
        h[n++] = (unsigned char)(len >> 8);
        h[n++] = (unsigned char)len;
    }
    if (out != NULL)
        memcpy(out, h, n);
    return n;
}

int tg_der_header(const unsigned char *buf, size_t end, size_t *off, unsigned char *tag,
                  size_t *len)
{
    size_t i = *off, n = 0, nlen;

    if (i + 2 > end)
        return TG_EINVAL;
    *tag = buf[i++];
    nlen = buf[i++];
    if (nlen & 0x80) {
        nlen &= 0x7f;
        if (nlen == 0 || nlen > 4 || i + nlen > end)
            return TG_EINVAL;
        while (nlen-- > 0)
            n = (n << 8) | buf[i++];
    } else {
        n = nlen;
    }
    if (n > end - i)
        return TG_EINVAL;
    *off = i;
    *len = n;
    return 0;
}

static void put_hdr(struct tg_cursor *b, unsigned char tag, size_t len)
{
    unsigned char h[6];

    tg_cursor_put(b, h, der_hdr(h, tag, len));
}

int tg_der_mark_bc_critical(unsigned char *tbs, int *tbs_len, size_t cap)
{
    static const unsigned char bc_oid[] = {0x06, 0x03, 0x55, 0x1d, 0x13};
    static const unsigned char crit[] = {0x01, 0x01, 0xff};
    size_t end = (size_t)*tbs_len, off = 0, tbs_c, tbs_l, a3_at, a3_c, a3_l, seq_c, seq_l;
    size_t ext_at = 0, ext_c = 0, ext_l = 0, l, ext_new, seq_new, a3_new, tbs_new;
    struct tg_cursor out = {0};
    unsigned char tag;
    int rc = TG_EINVAL;

    if (tg_der_header(tbs, end, &off, &tag, &tbs_l) < 0 || tag != 0x30 || off + tbs_l != end)
        return TG_EINVAL;
    tbs_c = off;
    for (;;) { /* find the [3] extensions wrapper */
        a3_at = off;
        if (off >= end)
            return 0;
        if (tg_der_header(tbs, end, &off, &tag, &l) < 0)
            return TG_EINVAL;
        if (tag == 0xa3)
            break;
        off += l;
    }
    a3_c = off;
    a3_l = l;
    if (tg_der_header(tbs, a3_c + a3_l, &off, &tag, &seq_l) < 0 || tag != 0x30 ||
        off + seq_l != a3_c + a3_l)
        return TG_EINVAL;
    seq_c = off;
    while (off < seq_c + seq_l) {
        ext_at = off;
        if (tg_der_header(tbs, seq_c + seq_l, &off, &tag, &l) < 0 || tag != 0x30)
            return TG_EINVAL;
        if (l > sizeof(bc_oid) && memcmp(tbs + off, bc_oid, sizeof(bc_oid)) == 0) {
            ext_c = off;
            ext_l = l;
            break;
        }
        off += l;
    }
    if (ext_l == 0 || tbs[ext_c + sizeof(bc_oid)] == 0x01)
        return 0; /* none, or already has the critical field */

    ext_new = ext_l + sizeof(crit);
    seq_new = seq_l - (ext_c - ext_at + ext_l) + der_hdr(NULL, 0x30, ext_new) + ext_new;
    a3_new = der_hdr(NULL, 0x30, seq_new) + seq_new;
    tbs_new = tbs_l - (a3_c - a3_at + a3_l) + der_hdr(NULL, 0xa3, a3_new) + a3_new;
    out.cap = der_hdr(NULL, 0x30, tbs_new) + tbs_new;
    if (out.cap > cap)
        return TG_ETOOBIG;
    out.dst = malloc(out.cap);
    if (out.dst == NULL)
        return TG_ENOMEM;
    put_hdr(&out, 0x30, tbs_new);
    tg_cursor_put(&out, tbs + tbs_c, a3_at - tbs_c);
    put_hdr(&out, 0xa3, a3_new);
    put_hdr(&out, 0x30, seq_new);
    tg_cursor_put(&out, tbs + seq_c, ext_at - seq_c);
    put_hdr(&out, 0x30, ext_new);
    tg_cursor_put(&out, tbs + ext_c, sizeof(bc_oid));
    tg_cursor_put(&out, crit, sizeof(crit));
    tg_cursor_put(&out, tbs + ext_c + sizeof(bc_oid), end - (ext_c + sizeof(bc_oid)));
    if (out.full || out.len != out.cap)
        goto fail;
    memcpy(tbs, out.dst, out.len);
    *tbs_len = (int)out.len;
    rc = 0;
fail:
    free(out.dst);
    return rc;
}

#define GN_URI 0x86 /* [6] IMPLICIT IA5String: uniformResourceIdentifier */
#define GN_DNS 0x82 /* [2] IMPLICIT IA5String: dNSName */

int tg_der_general_names(unsigned char *out, size_t cap, const char *const *uris, size_t n_uris,
                         const char *const *dns, size_t n_dns, size_t *len)
{
    struct tg_cursor b = {.dst = (char *)out, .cap = cap};
    size_t total = 0, i;

    *len = 0;
    for (i = 0; i < n_uris; i++)
        total += der_hdr(NULL, GN_URI, strlen(uris[i])) + strlen(uris[i]);
    for (i = 0; i < n_dns; i++)
        total += der_hdr(NULL, GN_DNS, strlen(dns[i])) + strlen(dns[i]);
    if (total == 0)
        return 0;
    put_hdr(&b, 0x30, total);
    for (i = 0; i < n_uris; i++) {
        put_hdr(&b, GN_URI, strlen(uris[i]));
        tg_cursor_put(&b, uris[i], strlen(uris[i]));
    }
    for (i = 0; i < n_dns; i++) {
        put_hdr(&b, GN_DNS, strlen(dns[i]));
        tg_cursor_put(&b, dns[i], strlen(dns[i]));
    }
    if (b.full)
        return TG_ETOOBIG;
    *len = b.len;
    return 0;
}

void tg_hex(const unsigned char *src, size_t n, char *dst)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = digits[src[i] >> 4];
        dst[2 * i + 1] = digits[src[i] & 15];
    }
    dst[2 * n] = '\0';
}

int tg_serial_hex(const unsigned char *p, size_t n, char *dst, size_t cap)
{
    size_t skip = 0;

    if (cap > 0)
        dst[0] = '\0';
    if (n == 0)
        return TG_EINVAL;
    while (skip + 1 < n && p[skip] == 0)
        skip++;
    if (2 * (n - skip) + 1 > cap)
        return TG_ETOOBIG;
    tg_hex(p + skip, n - skip, dst);
    return 0;
}

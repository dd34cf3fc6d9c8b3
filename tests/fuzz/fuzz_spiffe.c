/* Differential fuzzing of tg_spiffe_parse_n against a reference written here from the
 * SPIFFE-ID spec (2.1 trust domain, 2.2 path, 2.3 length) plus DESIGN.md's stricter rules
 * (lowercase scheme, no percent-encoding). The reference is a byte-at-a-time automaton, a
 * different shape from the parser's segment scanning, so a shared mistake is unlikely.
 * Any disagreement, or a broken invariant of an accepted ID, aborts. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/spiffe.h"

enum ref_state {
    R_SCHEME,   /* inside "spiffe://" */
    R_TD_EMPTY, /* right after "spiffe://" */
    R_TD,       /* in a non-empty trust domain */
    R_SLASH,    /* right after a '/' of the path */
    R_DOT1,     /* segment so far is "." */
    R_DOT2,     /* segment so far is ".." */
    R_SEG,      /* segment is non-empty and not a dot segment */
    R_DEAD,
};

struct ref_result {
    bool ok;
    size_t td_len;
};

static bool ref_td_byte(uint8_t b)
{
    return memchr("abcdefghijklmnopqrstuvwxyz0123456789.-_", b, 39) != NULL;
}

static bool ref_path_byte(uint8_t b)
{
    return b != 0 && memchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_", b,
                            65) != NULL;
}

static struct ref_result ref_parse(const uint8_t *s, size_t n)
{
    static const char scheme[] = "spiffe://";
    enum ref_state st = R_SCHEME;
    struct ref_result r = {false, 0};

    if (n > 2048) /* spec 2.3 */
        return r;
    for (size_t i = 0; i < n && st != R_DEAD; i++) {
        uint8_t b = s[i];

        switch (st) {
        case R_SCHEME:
            if (b != (uint8_t)scheme[i])
                st = R_DEAD;
            else if (i == sizeof(scheme) - 2)
                st = R_TD_EMPTY;
            break;
        case R_TD_EMPTY:
        case R_TD:
            if (b == '/' && st == R_TD) {
                st = R_SLASH;
            } else if (b != 0 && ref_td_byte(b)) {
                st = R_TD;
                r.td_len++;
            } else {
                st = R_DEAD;
            }
            break;
        case R_SLASH:
            st = b == '.' ? R_DOT1 : ref_path_byte(b) ? R_SEG : R_DEAD;
            break;
        case R_DOT1:
        case R_DOT2:
        case R_SEG:
            if (b == '/')
                st = st == R_SEG ? R_SLASH : R_DEAD; /* "." and ".." segments, spec 2.2 */
            else if (b == '.' && st == R_DOT1)
                st = R_DOT2;
            else if (ref_path_byte(b))
                st = R_SEG;
            else
                st = R_DEAD;
            break;
        case R_DEAD:
            break;
        }
    }
    r.ok = st == R_TD || st == R_SEG; /* a trust-domain ID, or a path ending in a segment */
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tg_spiffe_id id, again; /* 2 KiB each: off the stack */
    char err[TG_ERRLEN] = "";
    struct ref_result want = ref_parse(data, size);
    int rc = tg_spiffe_parse_n((const char *)data, size, &id, err);

    if ((rc == 0) != want.ok || (rc != 0 && rc != TG_ESPIFFE))
        abort();
    if (rc != 0) {
        fuzz_check_err(err);
    } else {
        char td[TG_SPIFFE_MAX + 1];

        if (id.len != size || memcmp(id.id, data, size) != 0 || id.id[size] != '\0')
            abort();
        if (id.td_len != want.td_len || id.path_off != 9 + id.td_len || id.path_off > id.len)
            abort();
        if (id.path_off < id.len && id.id[id.path_off] != '/')
            abort();
        tg_spiffe_trust_domain(&id, td, sizeof(td));
        if (!tg_spiffe_in_domain(&id, td) || strlen(td) != id.td_len)
            abort();
        /* an accepted ID parses again, NUL-terminated, to the same thing */
        if (tg_spiffe_parse(id.id, &again, err) != 0 || again.len != id.len ||
            again.td_len != id.td_len || again.path_off != id.path_off ||
            memcmp(again.id, id.id, id.len + 1) != 0)
            abort();
    }
    /* the NUL-terminated entry point agrees on inputs without a NUL */
    if (size <= 4096 && memchr(data, 0, size) == NULL) {
        char *z = malloc(size + 1);

        if (z == NULL)
            return 0;
        memcpy(z, data, size);
        z[size] = '\0';
        if ((tg_spiffe_parse(z, &again, err) == 0) != want.ok)
            abort();
        free(z);
    }
    return 0;
}

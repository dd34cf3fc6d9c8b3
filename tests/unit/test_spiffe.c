/* tg_spiffe_*: strict SPIFFE ID parsing (SPIFFE-ID.md 2.1-2.3, plus the stricter rules of
 * DESIGN.md: lowercase scheme, no percent-encoding). */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "tollgate/spiffe.h"

/* why: a substring of the error text, so each refusal is for the reason we think. */
static const struct {
    const char *id;
    bool ok;
    const char *why;
} cases[] = {
    /* valid */
    {"spiffe://mesh.local/ns/default/sa/web", true, NULL},
    {"spiffe://mesh.local/a", true, NULL},
    {"spiffe://example.org/Path/With/UPPER/case", true, NULL},
    {"spiffe://td-1_2.x/a-b_c.d/E", true, NULL},
    {"spiffe://0/9", true, NULL},
    {"spiffe://td/...", true, NULL}, /* three dots is a name, not a dot segment */
    {"spiffe://td/.a/a./..b", true, NULL},
    {"spiffe://td", true, NULL}, /* trust-domain ID: empty path is valid (spec 2.2) */
    {"spiffe://...", true, NULL},
    /* dot segments */
    {"spiffe://mesh.local/ns/../sa/web", false, "\"..\""},
    {"spiffe://mesh.local/ns/./sa", false, "\".\""},
    {"spiffe://mesh.local/..", false, "\"..\""},
    {"spiffe://mesh.local/.", false, "\".\""},
    /* case */
    {"SPIFFE://mesh.local/a", false, "lowercase \"spiffe\""},
    {"Spiffe://mesh.local/a", false, "lowercase \"spiffe\""},
    {"spiffe://Mesh.local/ns/default/sa/web", false, "trust domain must be lowercase"},
    {"spiffe://MESH.LOCAL", false, "trust domain must be lowercase"},
    /* percent-encoding */
    {"spiffe://mesh.local/a%20b", false, "percent-encoding"},
    {"spiffe://mesh%2elocal/a", false, "percent-encoding"},
    {"spiffe://mesh.local/%2e%2e/a", false, "percent-encoding"},
    /* port and user info */
    {"spiffe://mesh.local:8443/a", false, "port"},
    {"spiffe://mesh.local:/a", false, "port"},
    {"spiffe://user@mesh.local/a", false, "user info"},
    {"spiffe://user:pw@mesh.local/a", false, "user info"},
    {"spiffe://@mesh.local", false, "user info"},
    /* query and fragment */
    {"spiffe://mesh.local/a?x=1", false, "query"},
    {"spiffe://mesh.local?x", false, "query"},
    {"spiffe://mesh.local/a#frag", false, "fragment"},
    {"spiffe://mesh.local#@x", false, "fragment"},
    {"spiffe://mesh.local/a?b@c", false, "query"},
    /* empty segments, trailing slash */
    {"spiffe://mesh.local//a", false, "empty path segment"},
    {"spiffe://mesh.local/a//b", false, "empty path segment"},
    {"spiffe://mesh.local/a/", false, "trailing '/'"},
    {"spiffe://mesh.local/", false, "trailing '/'"},
    /* other characters */
    {"spiffe://mesh.local/a b", false, "' ' not allowed in path"},
    {"spiffe://mesh.local/a:b", false, "':' not allowed in path"},
    {"spiffe://mesh.local/a\tb", false, "control byte 0x09"},
    {"spiffe://mesh.local/caf\xc3\xa9", false, "non-ASCII byte 0xc3"},
    {"spiffe://m\xc3\xa9sh.local/a", false, "non-ASCII byte 0xc3"},
    {"spiffe://[::1]/a", false, "'[' not allowed in trust domain"},
    {"spiffe://mesh.local/a\\b", false, "not allowed in path"},
    /* scheme and authority */
    {"", false, "scheme must be \"spiffe://\""},
    {"spiffe", false, "scheme must be"},
    {"spiffe:", false, "missing \"//\""},
    {"spiffe:mesh.local/a", false, "missing \"//\""},
    {"spiffe:/mesh.local/a", false, "missing \"//\""},
    {"https://mesh.local/a", false, "scheme must be \"spiffe://\""},
    {"spiffe-x://mesh.local/a", false, "scheme must be"},
    {" spiffe://mesh.local/a", false, "scheme must be"},
    {"spiffe://", false, "trust domain is empty"},
    {"spiffe:///a", false, "trust domain is empty"},
    {"spiffe:////", false, "trust domain is empty"},
};

START_TEST(test_spiffe_parse_table)
{
    struct tg_spiffe_id id;
    char err[TG_ERRLEN] = "";
    int rc = tg_spiffe_parse(cases[_i].id, &id, err);

    if (cases[_i].ok) {
        ck_assert_msg(rc == 0, "%s: refused: %s", cases[_i].id, err);
        ck_assert_str_eq(id.id, cases[_i].id);
        ck_assert_uint_eq(id.len, strlen(cases[_i].id));
    } else {
        ck_assert_msg(rc == TG_ESPIFFE, "%s: accepted (rc %d)", cases[_i].id, rc);
        ck_assert_msg(strstr(err, cases[_i].why) != NULL, "%s: err \"%s\" lacks \"%s\"",
                      cases[_i].id, err, cases[_i].why);
        ck_assert_ptr_null(strchr(err, '\n'));
    }
}
END_TEST

START_TEST(test_spiffe_fields)
{
    struct tg_spiffe_id id;
    char err[TG_ERRLEN] = "";
    char td[64];

    ck_assert_int_eq(tg_spiffe_parse("spiffe://mesh.local/ns/default/sa/web", &id, err), 0);
    ck_assert_uint_eq(id.td_len, strlen("mesh.local"));
    ck_assert_uint_eq(id.path_off, strlen("spiffe://mesh.local"));
    ck_assert_str_eq(id.id + id.path_off, "/ns/default/sa/web");
    tg_spiffe_trust_domain(&id, td, sizeof(td));
    ck_assert_str_eq(td, "mesh.local");
    tg_spiffe_trust_domain(&id, td, 5); /* truncates, stays terminated */
    ck_assert_str_eq(td, "mesh");
    td[0] = 'x';
    tg_spiffe_trust_domain(&id, td, 0); /* writes nothing */
    ck_assert_int_eq(td[0], 'x');
    ck_assert(tg_spiffe_in_domain(&id, "mesh.local"));
    ck_assert(!tg_spiffe_in_domain(&id, "mesh.loca"));
    ck_assert(!tg_spiffe_in_domain(&id, "mesh.local.x"));
    ck_assert(!tg_spiffe_in_domain(&id, "MESH.LOCAL"));
    ck_assert(!tg_spiffe_in_domain(&id, ""));
}
END_TEST

START_TEST(test_spiffe_trust_domain_only)
{
    struct tg_spiffe_id id;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_spiffe_parse("spiffe://mesh.local", &id, err), 0);
    ck_assert_uint_eq(id.path_off, id.len); /* empty path */
    ck_assert_str_eq(id.id + id.path_off, "");
    ck_assert(tg_spiffe_in_domain(&id, "mesh.local"));
}
END_TEST

START_TEST(test_spiffe_parse_n_not_terminated)
{
    /* a certificate's SAN is not NUL-terminated: only n bytes are read */
    const char buf[] = {'s', 'p', 'i', 'f', 'f', 'e', ':', '/', '/', 't', 'd', '/', 'a', '/', '/'};
    struct tg_spiffe_id id;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_spiffe_parse_n(buf, 13, &id, err), 0);
    ck_assert_str_eq(id.id, "spiffe://td/a");
    ck_assert_int_eq(tg_spiffe_parse_n(buf, 14, &id, err), TG_ESPIFFE); /* "td/a/" */
    ck_assert_int_eq(tg_spiffe_parse_n(buf, sizeof(buf), &id, err), TG_ESPIFFE);
}
END_TEST

START_TEST(test_spiffe_parse_n_embedded_nul)
{
    static const char in_path[] = "spiffe://td/a\0b";
    static const char in_td[] = "spiffe://t\0d/a";
    static const char at_end[] = "spiffe://td/a\0";
    struct tg_spiffe_id id;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_spiffe_parse_n(in_path, sizeof(in_path) - 1, &id, err), TG_ESPIFFE);
    ck_assert_ptr_nonnull(strstr(err, "NUL byte at byte 13"));
    ck_assert_int_eq(tg_spiffe_parse_n(in_td, sizeof(in_td) - 1, &id, err), TG_ESPIFFE);
    ck_assert_ptr_nonnull(strstr(err, "NUL byte at byte 10"));
    ck_assert_int_eq(tg_spiffe_parse_n(at_end, sizeof(at_end) - 1, &id, err), TG_ESPIFFE);
    ck_assert_ptr_nonnull(strstr(err, "NUL byte"));
    /* the NUL-terminated form sees only the prefix, which is valid */
    ck_assert_int_eq(tg_spiffe_parse(in_path, &id, err), 0);
    ck_assert_str_eq(id.id, "spiffe://td/a");
}
END_TEST

/* A valid ID of exactly n bytes (n > 12): "spiffe://td/aaa...", a '/' every 64 bytes. */
static char *make_id(size_t n)
{
    static const char head[] = "spiffe://td";
    char *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    memcpy(s, head, sizeof(head) - 1);
    for (size_t i = sizeof(head) - 1; i < n; i++)
        s[i] = (i % 64 == 0 || i == sizeof(head) - 1) ? '/' : 'a';
    s[n - 1] = 'z'; /* never a trailing '/' */
    s[n] = '\0';
    return s;
}

START_TEST(test_spiffe_length_limit)
{
    char *ok = make_id(TG_SPIFFE_MAX);
    char *over = make_id(TG_SPIFFE_MAX + 1);
    char *big = make_id(1 << 20);
    struct tg_spiffe_id id;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_spiffe_parse(ok, &id, err), 0);
    ck_assert_uint_eq(id.len, TG_SPIFFE_MAX);
    ck_assert_str_eq(id.id, ok);
    ck_assert_int_eq(tg_spiffe_parse_n(ok, TG_SPIFFE_MAX, &id, err), 0);
    ck_assert_int_eq(tg_spiffe_parse(over, &id, err), TG_ESPIFFE);
    ck_assert_ptr_nonnull(strstr(err, "longer than 2048 bytes"));
    ck_assert_int_eq(tg_spiffe_parse_n(over, TG_SPIFFE_MAX + 1, &id, err), TG_ESPIFFE);
    ck_assert_int_eq(tg_spiffe_parse(big, &id, err), TG_ESPIFFE);
    /* the prefix of the over-long one is fine on its own */
    ck_assert_int_eq(tg_spiffe_parse_n(over, TG_SPIFFE_MAX, &id, err), 0);
    free(ok);
    free(over);
    free(big);
}
END_TEST

START_TEST(test_spiffe_err_null)
{
    struct tg_spiffe_id id;

    /* err may be NULL (tg_err_set copes) */
    ck_assert_int_eq(tg_spiffe_parse("spiffe://x/..", &id, NULL), TG_ESPIFFE);
    ck_assert_int_eq(tg_spiffe_parse("spiffe://x/y", &id, NULL), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s =
        TG_TEST_SUITE("spiffe", "parse", &tc, test_spiffe_fields, test_spiffe_trust_domain_only,
                      test_spiffe_parse_n_not_terminated, test_spiffe_parse_n_embedded_nul,
                      test_spiffe_length_limit, test_spiffe_err_null);

    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_spiffe_parse_table, cases));
    return s;
}

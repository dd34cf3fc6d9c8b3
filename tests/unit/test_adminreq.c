/* Admin request heads and who may send them (adminreq.h): parsing, loopback peers, and the
 * refusal of browsers' requests on the local-only paths. Pure: no loop, no sockets. */
#include <arpa/inet.h>
#include <check.h>
#include "check_main.h"
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "tollgate/adminreq.h"

#define R(s) s, sizeof(s) - 1

/* ---- parsing ---- */

static const struct {
    const char *head;
    size_t len;
    bool ok;
} heads[] = {
    {R("GET /live HTTP/1.1\r\n\r\n"), true},
    {R("GET /live HTTP/1.0\n\n"), true},
    {R("POST /drain?x=1 HTTP/1.1\r\nHost: a\r\nX-Tab:\ta\tb\r\nX-Empty:\r\n\r\n"), true},
    {R("GET /live HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), false}, /* RFC 9112 3.2 */
    {R("GET /live HTTP/1.1\r\nHost : a\r\n\r\n"), false},
    {R("GET /live HTTP/1.1\r\n folded: a\r\n\r\n"), false},
    {R("GET /live HTTP/1.1\r\nX: a\rb\r\n\r\n"), false},
    {R("GET /live HTTP/1.1\r\nX: \x01\r\n\r\n"), false},
    {R("GET /live HTTP/1.1\r\nX: a\0b\r\n\r\n"), false},
    {R("GET http://a/live HTTP/1.1\r\n\r\n"), false},
    {R("GET /live HTTP/2.0\r\n\r\n"), false},
    {R("GET /li\x00ve HTTP/1.1\r\n\r\n"), false},
    {R("GET /live HTTP/1.1\r\n\r\nGET"), false}, /* the head must end at n */
    {R("GET /live HTTP/1.1\r\n"), false},
    {R(""), false},
};

START_TEST(test_adminreq_parse_table)
{
    struct tg_adminreq rq;
    int rc = tg_adminreq_parse(heads[_i].head, heads[_i].len, &rq);

    ck_assert_msg((rc == 0) == heads[_i].ok, "case %d: rc %d", _i, rc);
}
END_TEST

START_TEST(test_adminreq_parse_records_fields)
{
    static const char head[] = "POST /drain?now HTTP/1.1\r\n"
                               "host:   127.0.0.1:15000 \t\r\n"
                               "ORIGIN: null\r\n"
                               "Sec-Fetch-Site: Same-Origin\r\n"
                               "Content-Type: application/json\r\n\r\n";
    struct tg_adminreq rq;

    ck_assert_int_eq(tg_adminreq_parse(head, sizeof(head) - 1, &rq), 0);
    ck_assert_int_eq((int)rq.method_len, 4);
    ck_assert(memcmp(rq.method, "POST", 4) == 0);
    ck_assert_int_eq((int)rq.path_len, 6);
    ck_assert(memcmp(rq.path, "/drain", 6) == 0);
    ck_assert_int_eq((int)rq.query_len, 3); /* /logging?level=debug reads it */
    ck_assert(memcmp(rq.query, "now", 3) == 0);
    ck_assert_int_eq((int)rq.host_len, 15);
    ck_assert(memcmp(rq.host, "127.0.0.1:15000", 15) == 0);
    ck_assert(rq.origin);
    ck_assert(!rq.cross_site);
    ck_assert(!rq.form_type);
    ck_assert_int_eq(tg_adminreq_parse("GET /x HTTP/1.1\r\n\r\n", 19, &rq), 0);
    ck_assert_ptr_null(rq.query); /* no '?' */
    ck_assert_int_eq(tg_adminreq_parse("GET /x? HTTP/1.1\r\n\r\n", 20, &rq), 0);
    ck_assert_ptr_nonnull(rq.query); /* an empty query */
    ck_assert_int_eq((int)rq.query_len, 0);
    ck_assert_int_eq((int)rq.path_len, 2);
}
END_TEST

static const struct {
    const char *field;
    bool cross_site, form_type;
} fields[] = {
    {"Sec-Fetch-Site: none", false, false},
    {"Sec-Fetch-Site: same-origin", false, false},
    {"Sec-Fetch-Site: same-site", true, false},
    {"Sec-Fetch-Site: cross-site", true, false},
    {"Sec-Fetch-Site: ", true, false},
    {"Content-Type: application/x-www-form-urlencoded", false, true},
    {"Content-Type: APPLICATION/X-WWW-FORM-URLENCODED;charset=utf-8", false, true},
    {"Content-Type: multipart/form-data; boundary=----x", false, true},
    {"content-type: text/plain", false, true},
    {"Content-Type:text/plain ;charset=UTF-8", false, true},
    {"Content-Type: application/json", false, false},
    {"Content-Type: text/plainx", false, false},
    {"X-Content-Type: text/plain", false, false},
};

START_TEST(test_adminreq_fetch_metadata_and_form_types)
{
    char head[256];
    struct tg_adminreq rq;

    snprintf(head, sizeof(head), "POST /drain HTTP/1.1\r\n%s\r\n\r\n", fields[_i].field);
    ck_assert_int_eq(tg_adminreq_parse(head, strlen(head), &rq), 0);
    ck_assert_msg(rq.cross_site == fields[_i].cross_site && rq.form_type == fields[_i].form_type,
                  "%s: cross_site %d form_type %d", fields[_i].field, rq.cross_site, rq.form_type);
}
END_TEST

/* ---- loopback peers ---- */

static const struct {
    const char *ip;
    bool loopback;
} peers[] = {
    {"127.0.0.1", true},
    {"127.255.255.254", true},
    {"127.0.0.9", true},
    {"::1", true},
    {"::ffff:127.0.0.1", true},
    {"::ffff:127.1.2.3", true},
    {"10.0.0.1", false},
    {"128.0.0.1", false},
    {"0.0.0.0", false},
    {"126.255.255.255", false},
    {"::", false},
    {"::ffff:10.0.0.1", false},
    {"fd00:7467::1", false},
    {"fe80::1", false},
    {"::127.0.0.1", false},
    {"::2", false},
};

static void sockaddr_of(const char *ip, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

        in6->sin6_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;

        in->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    }
}

START_TEST(test_adminreq_loopback_table)
{
    struct sockaddr_storage ss;

    sockaddr_of(peers[_i].ip, &ss);
    ck_assert_msg(tg_adminreq_loopback((struct sockaddr *)&ss) == peers[_i].loopback, "%s",
                  peers[_i].ip);
}
END_TEST

START_TEST(test_adminreq_other_families_are_not_loopback)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct sockaddr_storage none = {0};

    ck_assert(!tg_adminreq_loopback((struct sockaddr *)&un));
    ck_assert(!tg_adminreq_loopback((struct sockaddr *)&none));
}
END_TEST

/* ---- refusals ---- */

static const struct {
    const char *peer;
    const char *fields; /* field lines, each ending in \r\n */
    const char *why;    /* a piece of the reason; NULL: allowed */
} access_cases[] = {
    {"127.0.0.1", "", NULL},
    {"127.0.0.1", "Host: 127.0.0.1:15000\r\nUser-Agent: curl/8\r\n", NULL},
    {"::1", "Host: [::1]:15000\r\n", NULL},
    {"::ffff:127.0.0.1", "Host: localhost\r\n", NULL},
    {"127.0.0.1", "Host: LocalHost:15000\r\nSec-Fetch-Site: none\r\n", NULL},
    {"127.0.0.1", "Host: 127.3.2.1\r\nContent-Type: application/json\r\n", NULL},
    {"127.0.0.1", "Host:\r\n", NULL},
    {"10.0.0.5", "", "not a loopback peer"},
    {"::ffff:10.0.0.5", "Host: 127.0.0.1\r\n", "not a loopback peer"},
    {"fd00::5", "", "not a loopback peer"},
    {"127.0.0.1", "Origin: http://evil.example\r\n", "Origin"},
    {"127.0.0.1", "Origin: null\r\n", "Origin"},
    {"127.0.0.1", "Sec-Fetch-Site: cross-site\r\n", "Sec-Fetch-Site"},
    {"127.0.0.1", "Content-Type: text/plain\r\n", "form content type"},
    {"127.0.0.1", "Host: evil.example\r\n", "Host is not"},
    {"127.0.0.1", "Host: evil.example:15000\r\n", "Host is not"},
    {"127.0.0.1", "Host: 127.0.0.1.evil.example\r\n", "Host is not"},
    {"127.0.0.1", "Host: localhost.\r\n", "Host is not"},
    {"127.0.0.1", "Host: 10.0.0.1\r\n", "Host is not"},
    {"127.0.0.1", "Host: 0x7f.1\r\n", "Host is not"},
    {"127.0.0.1", "Host: 127.0.0.1:\r\n", "Host is not"},
    {"127.0.0.1", "Host: 127.0.0.1:8o\r\n", "Host is not"},
    {"127.0.0.1", "Host: [::2]:15000\r\n", "Host is not"},
    {"127.0.0.1", "Host: [::1\r\n", "Host is not"},
    {"127.0.0.1", "Host: [::1]x\r\n", "Host is not"},
    {"127.0.0.1", "Host: [::ffff:127.0.0.1]\r\n", "Host is not"},
    /* the peer is checked first, then in the order of adminreq.h */
    {"10.0.0.5", "Origin: http://evil.example\r\n", "not a loopback peer"},
    {"127.0.0.1", "Host: evil.example\r\nOrigin: http://evil.example\r\n", "Origin"},
};

START_TEST(test_adminreq_refusal_table)
{
    char head[512];
    struct sockaddr_storage ss;
    struct tg_adminreq rq;
    const char *why;

    snprintf(head, sizeof(head), "POST /drain HTTP/1.1\r\n%s\r\n", access_cases[_i].fields);
    ck_assert_int_eq(tg_adminreq_parse(head, strlen(head), &rq), 0);
    sockaddr_of(access_cases[_i].peer, &ss);
    why = tg_adminreq_refusal(&rq, (struct sockaddr *)&ss);
    if (access_cases[_i].why == NULL)
        ck_assert_msg(why == NULL, "case %d (%s): refused: %s", _i, access_cases[_i].fields, why);
    else
        ck_assert_msg(why != NULL && strstr(why, access_cases[_i].why) != NULL,
                      "case %d (%s %s): want [%s], got [%s]", _i, access_cases[_i].peer,
                      access_cases[_i].fields, access_cases[_i].why, why ? why : "allowed");
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE("adminreq", "adminreq", &tc, test_adminreq_parse_records_fields,
                             test_adminreq_other_families_are_not_loopback);

    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_adminreq_parse_table, heads),
                  TG_TEST_LOOP(test_adminreq_fetch_metadata_and_form_types, fields),
                  TG_TEST_LOOP(test_adminreq_loopback_table, peers),
                  TG_TEST_LOOP(test_adminreq_refusal_table, access_cases));
    return s;
}

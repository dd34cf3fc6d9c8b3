#include <check.h>
#include "check_main.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tollgate/accesslog.h"
#include "unit_util.h"
#include "tollgate/err.h"

/* ---- a small strict JSON checker (RFC 8259), enough to judge our lines ---- */

struct json {
    const unsigned char *p;
    const unsigned char *end;
};

static bool j_value(struct json *j);

static void j_ws(struct json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool j_lit(struct json *j, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return false;
    j->p += n;
    return true;
}

/* One well-formed UTF-8 sequence (RFC 3629): returns its length, or 0. */
static size_t j_utf8(const unsigned char *s, size_t n)
{
    unsigned cp, need, i;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        need = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        need = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        need = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (n < need)
        return 0;
    for (i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

static bool j_string(struct json *j)
{
    if (j->p >= j->end || *j->p != '"')
        return false;
    j->p++;
    while (j->p < j->end && *j->p != '"') {
        size_t n;

        if (*j->p < 0x20)
            return false;
        if (*j->p == '\\') {
            j->p++;
            if (j->p >= j->end)
                return false;
            if (*j->p == 'u') {
                int i;

                for (i = 1; i <= 4; i++) {
                    if (j->p + i >= j->end || !strchr("0123456789abcdefABCDEF", j->p[i]) ||
                        j->p[i] == '\0')
                        return false;
                }
                j->p += 5;
            } else if (strchr("\"\\/bfnrt", *j->p) != NULL && *j->p != '\0') {
                j->p++;
            } else {
                return false;
            }
            continue;
        }
        if ((n = j_utf8(j->p, (size_t)(j->end - j->p))) == 0)
            return false;
        j->p += n;
    }
    if (j->p >= j->end)
        return false;
    j->p++;
    return true;
}

static bool j_number(struct json *j)
{
    const unsigned char *start;

    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return false;
    if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
        return false;
    start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

static bool j_object(struct json *j)
{
    j->p++; /* '{' */
    j_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return true;
    }
    for (;;) {
        j_ws(j);
        if (!j_string(j))
            return false;
        j_ws(j);
        if (j->p >= j->end || *j->p++ != ':')
            return false;
        if (!j_value(j))
            return false;
        j_ws(j);
        if (j->p >= j->end)
            return false;
        if (*j->p == '}') {
            j->p++;
            return true;
        }
        if (*j->p++ != ',')
            return false;
    }
}

static bool j_value(struct json *j)
{
    j_ws(j);
    if (j->p >= j->end)
        return false;
    if (*j->p == '{')
        return j_object(j);
    if (*j->p == '"')
        return j_string(j);
    if (*j->p == 'n')
        return j_lit(j, "null");
    if (*j->p == 't')
        return j_lit(j, "true");
    if (*j->p == 'f')
        return j_lit(j, "false");
    return j_number(j);
}

/* A line: one JSON object, a newline, nothing else. */
static bool valid_line(const char *s, size_t n)
{
    struct json j = {(const unsigned char *)s, (const unsigned char *)s + n};

    if (n < 3 || s[0] != '{' || s[n - 1] != '\n' || memchr(s, '\n', n - 1) != NULL)
        return false;
    j.end--;
    if (!j_value(&j))
        return false;
    return j.p == j.end;
}

/* ---- tests ---- */

static const struct tg_access_entry full = {
    .start_unix_ms = 1795878000123ULL,
    .listener = "in-http",
    .direction = "inbound",
    .peer = "10.0.0.7:53122",
    .peer_id = "spiffe://mesh.local/ns/default/sa/web",
    .upstream = "127.0.0.1:8080",
    .original_dst = "10.0.0.9:8080",
    .sni = "web.default.svc",
    .tls_version = "TLSv1.3",
    .cipher = "TLS_AES_128_GCM_SHA256",
    .serial = "3f2a",
    .sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    .bytes_received = 1234,
    .bytes_sent = 18446744073709551615ULL,
    .duration_ms = 56,
    .outcome = "refused",
    .reason = "not_allowed",
};

static const char full_line[] =
    "{\"time\":\"2026-11-28T15:00:00.123Z\",\"listener\":\"in-http\",\"direction\":\"inbound\","
    "\"peer\":\"10.0.0.7:53122\",\"peer_id\":\"spiffe://mesh.local/ns/default/sa/web\","
    "\"upstream\":\"127.0.0.1:8080\",\"original_dst\":\"10.0.0.9:8080\","
    "\"sni\":\"web.default.svc\",\"tls_version\":\"TLSv1.3\","
    "\"cipher\":\"TLS_AES_128_GCM_SHA256\",\"serial\":\"3f2a\","
    "\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\","
    "\"resumed\":false,"
    "\"bytes_received\":1234,"
    "\"bytes_sent\":18446744073709551615,\"duration_ms\":56,\"outcome\":\"refused\","
    "\"reason\":\"not_allowed\",\"reason_code\":\"not_allowed\"}\n";

START_TEST(test_accesslog_full_line)
{
    char buf[4096];
    size_t n = tg_accesslog_format(&full, buf, sizeof(buf));

    ck_assert_str_eq(buf, full_line);
    ck_assert_uint_eq(n, strlen(full_line));
    ck_assert(valid_line(buf, n));
}
END_TEST

START_TEST(test_accesslog_nulls)
{
    static const char want[] =
        "{\"time\":\"1970-01-01T00:00:00.000Z\",\"listener\":null,\"direction\":null,"
        "\"peer\":null,\"peer_id\":null,\"upstream\":null,\"original_dst\":null,"
        "\"sni\":null,\"tls_version\":null,"
        "\"cipher\":null,\"serial\":null,\"sha256\":null,\"resumed\":false,\"bytes_received\":0,"
        "\"bytes_sent\":0,"
        "\"duration_ms\":0,\"outcome\":null,\"reason\":null,\"reason_code\":null}\n";
    struct tg_access_entry e = {0};
    char buf[1024];
    size_t n = tg_accesslog_format(&e, buf, sizeof(buf));

    ck_assert_str_eq(buf, want);
    ck_assert_uint_eq(n, strlen(want));
}
END_TEST

START_TEST(test_accesslog_time_edges)
{
    struct tg_access_entry e = full;
    char buf[1024];
    size_t n;

    e.start_unix_ms = 951782400999ULL; /* 2000-02-29, leap day */
    n = tg_accesslog_format(&e, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "{\"time\":\"2000-02-29T00:00:00.999Z\","));
    e.start_unix_ms = UINT64_MAX; /* not a date gmtime can give: null, line still valid */
    n = tg_accesslog_format(&e, buf, sizeof(buf));
    ck_assert_msg(valid_line(buf, n), "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "\"listener\":\"in-http\""));
}
END_TEST

static const struct {
    const char *in;
    const char *out; /* the JSON string, quotes included */
} escapes[] = {
    {"", "\"\""},
    {"plain text", "\"plain text\""},
    {"a\"b", "\"a\\\"b\""},
    {"back\\slash", "\"back\\\\slash\""},
    {"/ not escaped", "\"/ not escaped\""},
    {"\n", "\"\\u000a\""},
    {"\t\r\b\f", "\"\\u0009\\u000d\\u0008\\u000c\""},
    {"\x01\x1f", "\"\\u0001\\u001f\""},
    {"\x7f", "\"\\u007f\""},
    {"a\x1b[31mred", "\"a\\u001b[31mred\""},
    {"caf\xc3\xa9", "\"caf\xc3\xa9\""},
    {"\xe2\x82\xac", "\"\xe2\x82\xac\""},
    /* C1 controls, line and paragraph separators, bidi controls: escaped (esc.h) */
    {"\xc2\x85\xc2\x9b[2J", "\"\\u0085\\u009b[2J\""},
    {"\xc2\xa0", "\"\xc2\xa0\""},
    {"\xe2\x80\xa8\xe2\x80\xa9", "\"\\u2028\\u2029\""},
    {"a\xe2\x80\xae"
     "b\xe2\x81\xa6"
     "c",
     "\"a\\u202eb\\u2066c\""},
    {"\xef\xbf\xbf", "\"\xef\xbf\xbf\""},
    {"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},
    {"\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""},
    {"\xff", "\"\\ufffd\""},
    {"\x80", "\"\\ufffd\""},
    {"x\xc3", "\"x\\ufffd\""},
    {"\xc0\xaf", "\"\\ufffd\\ufffd\""},
    {"\xc1\xbf", "\"\\ufffd\\ufffd\""},
    {"\xe0\x80\x80", "\"\\ufffd\\ufffd\\ufffd\""},
    {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},
    {"\xf0\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
    {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
    {"\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
    {"\xe2\x82", "\"\\ufffd\\ufffd\""},
    {"\xe2\x82x", "\"\\ufffd\\ufffdx\""},
    {"\xc3\xa9\xa9", "\"\xc3\xa9\\ufffd\""},
};

START_TEST(test_accesslog_escaping_table)
{
    struct tg_access_entry e = full;
    char buf[1024], want[256];
    size_t n;

    e.reason = escapes[_i].in;
    n = tg_accesslog_format(&e, buf, sizeof(buf));
    snprintf(want, sizeof(want), ",\"reason\":%s,\"reason_code\":\"", escapes[_i].out);
    ck_assert_msg(strstr(buf, want) != NULL, "case %d: want ...%s got %s", _i, want, buf);
    ck_assert_msg(valid_line(buf, n), "case %d: %s", _i, buf);
}
END_TEST

/* A long line with escapes everywhere, for the truncation tests. */
static char long_id[3001];
static char ctl[200];

static struct tg_access_entry long_entry(void)
{
    struct tg_access_entry e = full;
    size_t i;

    for (i = 0; i < sizeof(long_id) - 1; i++)
        long_id[i] = "ab\"\\\x01\xff\xc3\xa9"[i % 8];
    long_id[sizeof(long_id) - 1] = '\0';
    for (i = 0; i < sizeof(ctl) - 1; i++)
        ctl[i] = (char)(1 + i % 31);
    ctl[sizeof(ctl) - 1] = '\0';
    e.peer_id = long_id;
    e.reason = ctl;
    return e;
}

/* Keys of a line in order, joined by ','. */
static void keys_of(const char *line, char *out, size_t cap)
{
    static const char *const keys[] = {
        "time",        "listener",    "direction", "peer",   "peer_id", "upstream",
        "tls_version", "cipher",      "serial",    "sha256", "resumed", "bytes_received",
        "bytes_sent",  "duration_ms", "outcome",   "reason",
    };
    char pat[40];
    size_t i;

    out[0] = '\0';
    for (i = 0; i < TG_NELEM(keys); i++) {
        snprintf(pat, sizeof(pat), "%s\"%s\":", i == 0 ? "{" : ",", keys[i]);
        if (strstr(line, pat) != NULL) {
            strncat(out, keys[i], cap - strlen(out) - 1);
            strncat(out, ",", cap - strlen(out) - 1);
        }
    }
}

START_TEST(test_accesslog_truncation_stays_valid)
{
    struct tg_access_entry e = long_entry();
    static char whole[32768];
    char whole_keys[256], keys[256];
    size_t whole_n = tg_accesslog_format(&e, whole, sizeof(whole));
    size_t cap, last_n = 0;

    ck_assert(valid_line(whole, whole_n));
    keys_of(whole, whole_keys, sizeof(whole_keys));
    for (cap = 0; cap <= whole_n + 2; cap++) {
        char *dst = malloc(cap == 0 ? 1 : cap); /* exact size: ASan sees any overrun */
        size_t n = tg_accesslog_format(&e, cap == 0 ? NULL : dst, cap);

        if (cap < 4) {
            ck_assert_uint_eq(n, 0);
            free(dst);
            continue;
        }
        ck_assert_msg(n < cap, "cap %zu: n %zu", cap, n);
        ck_assert_int_eq(dst[n], '\0');
        ck_assert_msg(valid_line(dst, n), "cap %zu: [%s]", cap, dst);
        ck_assert_msg(n >= last_n, "cap %zu: shorter than with less room", cap);
        /* whole fields only, in order: the keys are a prefix of the full line's */
        keys_of(dst, keys, sizeof(keys));
        ck_assert_msg(strncmp(whole_keys, keys, strlen(keys)) == 0, "cap %zu: %s", cap, keys);
        if (cap > whole_n)
            ck_assert_str_eq(dst, whole);
        else
            ck_assert_uint_lt(n, whole_n);
        last_n = n;
        free(dst);
    }
}
END_TEST

START_TEST(test_accesslog_small_buffers)
{
    char buf[64];

    memset(buf, 'x', sizeof(buf));
    ck_assert_uint_eq(tg_accesslog_format(&full, buf, 3), 0);
    ck_assert_int_eq(buf[0], '\0');
    ck_assert_int_eq(buf[1], 'x');
    ck_assert_uint_eq(tg_accesslog_format(&full, buf, 4), 3);
    ck_assert_str_eq(buf, "{}\n");
    ck_assert_uint_eq(tg_accesslog_format(&full, buf, 36), 3);
    ck_assert_str_eq(buf, "{}\n");
    ck_assert_uint_eq(tg_accesslog_format(&full, buf, 37), 36);
    ck_assert_str_eq(buf, "{\"time\":\"2026-11-28T15:00:00.123Z\"}\n");
}
END_TEST

/* Python's json module, strict UTF-8, as a second opinion on many lines at once. */
START_TEST(test_accesslog_python_agrees)
{
    static const char script[] = "python3 -c 'import json,sys\n"
                                 "lines=sys.stdin.buffer.read().decode(\"utf-8\").split(\"\\n\")\n"
                                 "assert lines.pop()==\"\"\n"
                                 "for line in lines: assert isinstance(json.loads(line),dict)\n"
                                 "assert len(lines)==int(sys.argv[1]), len(lines)' ";
    struct tg_access_entry e = long_entry();
    static char buf[32768];
    char cmd[512];
    int lines = (int)TG_NELEM(escapes) + 1;
    size_t cap, i;
    FILE *p;

    if (system("command -v python3 >/dev/null 2>&1") != 0)
        return; /* no python here: the C checker still judged every line */
    for (cap = 4; cap < 8000; cap += 37)
        lines++;
    snprintf(cmd, sizeof(cmd), "%s%d", script, lines);
    p = popen(cmd, "w");
    ck_assert_ptr_nonnull(p);
    fwrite(buf, 1, tg_accesslog_format(&full, buf, sizeof(buf)), p);
    for (i = 0; i < TG_NELEM(escapes); i++) {
        struct tg_access_entry x = full;

        x.peer = escapes[i].in;
        fwrite(buf, 1, tg_accesslog_format(&x, buf, sizeof(buf)), p);
    }
    for (cap = 4; cap < 8000; cap += 37)
        fwrite(buf, 1, tg_accesslog_format(&e, buf, cap), p);
    ck_assert_int_eq(pclose(p), 0);
}
END_TEST

static void write_entry(const void *e)
{
    tg_accesslog_write(e);
}

/* Runs tg_accesslog_write with stdout on a pipe and returns what came out. */
static size_t capture_write(const struct tg_access_entry *e, char *dst, size_t cap)
{
    size_t n = ut_capture_fd(STDOUT_FILENO, write_entry, e, dst, cap);

    ck_assert_uint_gt(n, 0);
    return n;
}

START_TEST(test_accesslog_write_one_line)
{
    char out[8192];
    size_t n = capture_write(&full, out, sizeof(out));

    ck_assert_uint_eq(n, strlen(full_line));
    ck_assert_str_eq(out, full_line);
}
END_TEST

START_TEST(test_accesslog_write_long_entry_is_cut)
{
    struct tg_access_entry e = long_entry();
    char out[16384];
    size_t n = capture_write(&e, out, sizeof(out));

    ck_assert_uint_lt(n, 4096);
    ck_assert_msg(valid_line(out, n), "%s", out);
    /* the field that does not fit and all after it are dropped */
    ck_assert_ptr_nonnull(strstr(out, ",\"peer\":\"10.0.0.7:53122\"}\n"));
    ck_assert_ptr_null(strstr(out, "\"peer_id\":"));
}
END_TEST

START_TEST(test_accesslog_checker_refuses_bad_json)
{
    static const char *const bad[] = {
        "{\n",
        "{\"a\":}\n",
        "{\"a\":1,}\n",
        "{\"a\":\"\x01\"}\n",
        "{\"a\":\"\xff\"}\n",
        "{\"a\":\"\\x\"}\n",
        "{\"a\":01}\n",
        "{\"a\":1}}\n",
        "{\"a\":\"x}\n",
        "{\"a\":1}",
    };
    size_t i;

    ck_assert(valid_line("{\"a\":null,\"b\":\"\\u00e9\"}\n", 24));
    for (i = 0; i < TG_NELEM(bad); i++)
        ck_assert_msg(!valid_line(bad[i], strlen(bad[i])), "accepted %s", bad[i]);
}
END_TEST

/* The reason codes: each refusal kind is its own code, the fixed prefixes theirs, and the
 * outcome is the fallback; "ok" has none. */
static const struct {
    const char *outcome, *reason, *code;
} codes[] = {
    {"ok", NULL, NULL},
    {"refused", "denied: rule \"x\" (DENY) matched", "denied"},
    {"refused", "revoked: certificate serial 3f is revoked", "revoked"},
    {"refused", "not_allowed", "not_allowed"},
    {"refused", "rate_limited: 5 concurrent connections already", "rate_limited"},
    {"refused", "expired: client certificate 0: ASN date error, current date after", "expired"},
    {"refused", "untrusted: client certificate 1: ASN no signer", "untrusted"},
    {"refused", "peer_refused: denied: the server's sidecar refused us", "peer_refused"},
    {"refused", "outside_mesh: 10.0.0.1:80 is not a mesh destination", "outside_mesh"},
    {"refused", "our certificate (serial 3f) expired; waiting for a new one", "own_cert_expired"},
    {"error", "upstream 127.0.0.1:9: connection refused", "upstream_connect_failed"},
    {"error", "upstream: connection reset by peer", "upstream_reset"},
    {"error", "downstream: connection reset by peer", "downstream_reset"},
    {"timeout", "idle for 3600000 ms", "idle_timeout"},
    {"timeout", "timeout: no handshake within 2000 ms", "timeout"},
    {"refused", "deniedx: not a kind", "refused"},
    {"refused", "Denied: not lowercase", "refused"},
    {"error", NULL, "error"},
};

START_TEST(test_accesslog_reason_codes)
{
    const char *got = tg_accesslog_code(codes[_i].outcome, codes[_i].reason);

    if (codes[_i].code == NULL)
        ck_assert_ptr_null(got);
    else
        ck_assert_msg(got != NULL && strcmp(got, codes[_i].code) == 0, "%s: got %s, want %s",
                      codes[_i].reason ? codes[_i].reason : "(null)", got ? got : "(null)",
                      codes[_i].code);
}
END_TEST

/* A request's line: the HTTP fields after the connection's, the service time null when the
 * app never answered. */
START_TEST(test_accesslog_http_fields)
{
    struct tg_access_entry e = full;
    char buf[4096];
    size_t n;

    e.method = "GET";
    e.path = "/x";
    e.status = 200;
    e.request_id = "5b2c7e3a-0d4f-4b8e-9a61-3c2f1e0d9b7a";
    e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    e.upstream_service_ms = 12;
    n = tg_accesslog_format(&e, buf, sizeof(buf));
    ck_assert(valid_line(buf, n));
    ck_assert_ptr_nonnull(strstr(buf, ",\"status\":200,\"request_id\":\"5b2c7e3a-0d4f-4b8e-"
                                      "9a61-3c2f1e0d9b7a\",\"traceparent\":\"00-4bf92f3577b34da6"
                                      "a3ce929d0e0e4736-00f067aa0ba902b7-01\","
                                      "\"upstream_service_time_ms\":12}\n"));
    e.upstream_service_ms = TG_ACCESSLOG_NO_TIME;
    e.request_id = NULL;
    n = tg_accesslog_format(&e, buf, sizeof(buf));
    ck_assert(valid_line(buf, n));
    ck_assert_ptr_nonnull(strstr(buf, "\"request_id\":null,"));
    ck_assert_ptr_nonnull(strstr(buf, "\"upstream_service_time_ms\":null}\n"));
}
END_TEST

/* The text style: key=value, strings quoted and escaped so that a value cannot close its
 * quotes or start a line; null as -; cut at a field boundary like the JSON one. */
START_TEST(test_accesslog_text_style)
{
    static char buf[4096];
    struct tg_access_entry e = full;
    size_t n = 0;

    e.sni = NULL;
    e.peer = "evil\" outcome=\"ok\nx";
    n = tg_accesslog_format_as(&e, TG_ACCESSLOG_TEXT, buf, sizeof(buf));
    ck_assert_uint_eq(n, strlen(buf));
    ck_assert_int_eq(buf[n - 1], '\n');
    ck_assert_ptr_null(memchr(buf, '\n', n - 1));
    ck_assert_msg(strncmp(buf, "time=\"2026-11-28T15:00:00.123Z\" listener=\"in-http\" ",
                          strlen("time=\"2026-11-28T15:00:00.123Z\" listener=\"in-http\" ")) == 0,
                  "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, " peer=\"evil\\\" outcome=\\\"ok\\x0ax\" "));
    ck_assert_ptr_nonnull(strstr(buf, " sni=- "));
    ck_assert_ptr_nonnull(strstr(buf, " reason_code=\"not_allowed\"\n"));
    n = tg_accesslog_format_as(&e, TG_ACCESSLOG_TEXT, buf, 60);
    ck_assert_str_eq(buf, "time=\"2026-11-28T15:00:00.123Z\" listener=\"in-http\"\n");
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE("accesslog", "format", &tc, test_accesslog_checker_refuses_bad_json,
                             test_accesslog_full_line, test_accesslog_nulls,
                             test_accesslog_time_edges, test_accesslog_truncation_stays_valid,
                             test_accesslog_small_buffers, test_accesslog_python_agrees,
                             test_accesslog_write_one_line, test_accesslog_write_long_entry_is_cut);

    tcase_add_loop_test(tc, test_accesslog_escaping_table, 0, (int)TG_NELEM(escapes));
    tcase_add_loop_test(tc, test_accesslog_reason_codes, 0, (int)TG_NELEM(codes));
    tcase_add_test(tc, test_accesslog_http_fields);
    tcase_add_test(tc, test_accesslog_text_style);
    return s;
}

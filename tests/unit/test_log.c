/* log.c: the diagnostic log's two formats. Text lines keep their shape (fields after the
 * message as key="value"); JSON lines are one object each with ts, level, msg and fields,
 * valid however long or hostile the message and the values, and never over
 * TG_LOG_LINE_MAX. Checked by python's json module when python3 is there. */
#include <check.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tollgate/log.h"
#include "unit_util.h"

struct call {
    enum tg_log_level level;
    const struct tg_log_field *f;
    size_t n;
    const char *msg;
};

static void write_call(const void *arg)
{
    const struct call *c = arg;

    tg_log_fields(c->level, c->f, c->n, "%s", c->msg);
}

/* Runs one tg_log_fields call with stderr on a pipe; what came out, NUL-terminated. */
static size_t capture(char *dst, size_t cap, enum tg_log_level level, const struct tg_log_field *f,
                      size_t n, const char *msg)
{
    struct call c = {level, f, n, msg};

    return ut_capture_fd(STDERR_FILENO, write_call, &c, dst, cap);
}

/* python3's json.loads agrees that line is one object with these keys (skipped without
 * python3). */
static void python_parses(const char *line)
{
    static const char script[] =
        "python3 -c 'import json,sys\n"
        "raw=sys.stdin.buffer.read().decode(\"utf-8\")\n"
        "assert raw.endswith(\"\\n\") and raw.count(\"\\n\")==1\n"
        "o=json.loads(raw)\n"
        "assert set(o)<={\"ts\",\"level\",\"msg\",\"fields\"} and isinstance(o[\"msg\"],str)'";
    FILE *p;

    if (system("command -v python3 >/dev/null 2>&1") != 0)
        return;
    p = popen(script, "w");
    ck_assert_ptr_nonnull(p);
    fputs(line, p);
    ck_assert_msg(pclose(p) == 0, "python3 refused: %s", line);
}

static const struct tg_log_field fields[] = {
    {"listener", "api-out"},
    {"reason_code", "den\"ied\n"},
};

START_TEST(test_log_text_fields)
{
    char buf[4096];
    size_t n;

    tg_log_set_format(TG_LOG_TEXT);
    n = capture(buf, sizeof(buf), TG_LOG_WARN, fields, 2, "server refused us");
    ck_assert_uint_gt(n, 25);
    ck_assert_msg(strcmp(buf + 24, " warn server refused us listener=\"api-out\" "
                                   "reason_code=\"den\\\"ied\\x0a\"\n") == 0,
                  "%s", buf);
}
END_TEST

START_TEST(test_log_json_line)
{
    char buf[4096];

    tg_log_set_format(TG_LOG_JSON);
    capture(buf, sizeof(buf), TG_LOG_INFO, fields, 2, "quote \" and\nbreak \x1b[31m \xff");
    tg_log_set_format(TG_LOG_TEXT);
    ck_assert_msg(strncmp(buf, "{\"ts\":\"", 7) == 0, "%s", buf);
    ck_assert_msg(strstr(buf, "\",\"level\":\"info\",\"msg\":\"quote \\\" and\\u000abreak "
                              "\\u001b[31m \\ufffd\",\"fields\":{\"listener\":\"api-out\","
                              "\"reason_code\":\"den\\\"ied\\u000a\"}}\n") != NULL,
                  "%s", buf);
    python_parses(buf);
    capture(buf, sizeof(buf), TG_LOG_ERROR, NULL, 0, "no fields"); /* text again */
    ck_assert_ptr_nonnull(strstr(buf, " error no fields\n"));
}
END_TEST

/* However long the message or the fields, a JSON line stays one valid object within
 * TG_LOG_LINE_MAX: the message is cut, fields that do not fit are left out whole. */
START_TEST(test_log_json_long_lines_stay_valid)
{
    static char msg[3000], val[3000], buf[8192];
    struct tg_log_field f[2] = {{"a", "short"}, {"b", val}};
    size_t sizes[] = {0, 100, 600, 1000, 1023, 1024, 1500, 2047, 2999};

    tg_log_set_format(TG_LOG_JSON);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n;

        memset(msg, '\n', sizes[i]); /* six bytes each in JSON */
        msg[sizes[i]] = '\0';
        memset(val, 'v', sizes[i]);
        val[sizes[i]] = '\0';
        n = capture(buf, sizeof(buf), TG_LOG_WARN, f, 2, msg);
        ck_assert_msg(n > 0 && n <= TG_LOG_LINE_MAX && buf[n - 1] == '\n', "size %zu: %zu bytes",
                      sizes[i], n);
        ck_assert_msg(strncmp(buf + n - 2, "}\n", 2) == 0, "size %zu: %s", sizes[i], buf);
        python_parses(buf);
    }
    tg_log_set_format(TG_LOG_TEXT);
}
END_TEST

START_TEST(test_log_levels)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    enum tg_log_level l;
    char buf[256];

    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(tg_log_level_parse(names[i], strlen(names[i]), &l), 0);
        ck_assert_int_eq(l, i);
        ck_assert_str_eq(tg_log_level_name(l), names[i]);
    }
    ck_assert_int_eq(tg_log_level_parse("Debug", 5, &l), TG_EINVAL);
    ck_assert_int_eq(tg_log_level_parse("warning", 7, &l), TG_EINVAL);
    ck_assert_int_eq(tg_log_level_parse("warn", 3, &l), TG_EINVAL);
    ck_assert_int_eq(tg_log_level_parse("", 0, &l), TG_EINVAL);
    tg_log_set_level(TG_LOG_WARN);
    ck_assert_int_eq(tg_log_get_level(), TG_LOG_WARN);
    ck_assert_uint_eq(capture(buf, sizeof(buf), TG_LOG_INFO, NULL, 0, "dropped"), 0);
    ck_assert_uint_gt(capture(buf, sizeof(buf), TG_LOG_WARN, NULL, 0, "kept"), 0);
    tg_log_set_level(TG_LOG_INFO);
}
END_TEST

Suite *tg_test_suite(void)
{
    return TG_TEST_SUITE("log", "format", NULL, test_log_text_fields, test_log_json_line,
                         test_log_json_long_lines_stay_valid, test_log_levels);
}

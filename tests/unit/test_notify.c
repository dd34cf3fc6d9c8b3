/* notify.c: the two values systemd hands a Type=notify service, $NOTIFY_SOCKET (a path or an
 * abstract name) and $WATCHDOG_USEC with $WATCHDOG_PID, read as sd_notify(3) reads them; a
 * value it cannot use is refused with the variable named. */
#include <check.h>
#include "check_main.h"
#include <stddef.h>
#include <string.h>

#include "tollgate/err.h"
#include "tollgate/notify.h"

START_TEST(test_notify_addr_path_and_abstract)
{
    struct sockaddr_un sa;
    socklen_t len;
    char err[TG_ERRLEN];

    ck_assert_int_eq(tg_notify_parse_addr("/run/systemd/notify", &sa, &len, err), 0);
    ck_assert_str_eq(sa.sun_path, "/run/systemd/notify");
    ck_assert_uint_eq(len, offsetof(struct sockaddr_un, sun_path) + 20); /* with its NUL */
    ck_assert_int_eq(tg_notify_parse_addr("@abc", &sa, &len, err), 0);
    ck_assert_int_eq(sa.sun_path[0], '\0');
    ck_assert_int_eq(memcmp(sa.sun_path + 1, "abc", 3), 0);
    ck_assert_uint_eq(len, offsetof(struct sockaddr_un, sun_path) + 4); /* no NUL after */
}
END_TEST

START_TEST(test_notify_addr_refused)
{
    static const char *const bad[][2] = {
        {"", "NOTIFY_SOCKET is empty"},
        {"run/notify", "neither an absolute path nor an abstract name"},
        {"@", "NOTIFY_SOCKET is 1 bytes"},
    };
    struct sockaddr_un sa;
    socklen_t len = 7;
    char err[TG_ERRLEN], lng[200];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(tg_notify_parse_addr(bad[i][0], &sa, &len, err), TG_EINVAL);
        ck_assert_msg(strstr(err, bad[i][1]) != NULL, "%s: %s", bad[i][0], err);
    }
    ck_assert_int_eq(tg_notify_parse_addr(NULL, &sa, &len, err), TG_EINVAL);
    memset(lng, 'a', sizeof(lng) - 1);
    lng[0] = '/';
    lng[sizeof(lng) - 1] = '\0';
    ck_assert_int_eq(tg_notify_parse_addr(lng, &sa, &len, err), TG_EINVAL);
    ck_assert_msg(strstr(err, "199 bytes") != NULL, "%s", err);
    ck_assert_uint_eq(len, 7); /* untouched on failure */
}
END_TEST

START_TEST(test_notify_watchdog)
{
    uint64_t v = 99;
    char err[TG_ERRLEN];

    ck_assert_int_eq(tg_notify_parse_watchdog(NULL, NULL, 42, &v, err), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(tg_notify_parse_watchdog("30000000", NULL, 42, &v, err), 0);
    ck_assert_uint_eq(v, 30000000);
    ck_assert_int_eq(tg_notify_parse_watchdog("30000000", "42", 42, &v, err), 0);
    ck_assert_uint_eq(v, 30000000);
    /* the watchdog of another process (a parent's, inherited): not ours */
    ck_assert_int_eq(tg_notify_parse_watchdog("30000000", "41", 42, &v, err), 0);
    ck_assert_uint_eq(v, 0);
    /* pid alone, without an interval: no watchdog */
    ck_assert_int_eq(tg_notify_parse_watchdog(NULL, "42", 42, &v, err), 0);
    ck_assert_uint_eq(v, 0);
}
END_TEST

START_TEST(test_notify_watchdog_refused)
{
    static const char *const bad[][3] = {
        {"", NULL, "WATCHDOG_USEC \"\" is not a decimal"},
        {"-5", NULL, "WATCHDOG_USEC \"-5\" is not a decimal"},
        {"0", NULL, "WATCHDOG_USEC \"0\" is not a positive"},
        {"10s", NULL, "WATCHDOG_USEC \"10s\" is not a positive"},
        {"99999999999999999999999", NULL, "is not a positive"},
        {"1000", "self", "WATCHDOG_PID \"self\" is not a decimal"},
        {"1000", "0", "WATCHDOG_PID \"0\" is not a positive"},
    };
    uint64_t v;
    char err[TG_ERRLEN];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 99;
        ck_assert_int_eq(tg_notify_parse_watchdog(bad[i][0], bad[i][1], 42, &v, err), TG_EINVAL);
        ck_assert_msg(strstr(err, bad[i][2]) != NULL, "%s: %s", bad[i][0], err);
        ck_assert_uint_eq(v, 0);
    }
}
END_TEST

Suite *tg_test_suite(void)
{
    return TG_TEST_SUITE("notify", "notify", NULL, test_notify_addr_path_and_abstract,
                         test_notify_addr_refused, test_notify_watchdog,
                         test_notify_watchdog_refused);
}

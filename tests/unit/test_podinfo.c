/* The downward API's pod files (lib/pure/podinfo.c): the kubelet's labels rendering is read
 * exactly, and anything else is refused whole with the line and what is wrong. */
#include <check.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/podinfo.h"

static int parse(const char *name, const char *ns, const char *labels, struct tg_podinfo *p,
                 char *err)
{
    return tg_podinfo_parse("/pod", name, strlen(name), ns, strlen(ns), labels, strlen(labels), p,
                            err);
}

START_TEST(test_kubelet_rendering)
{
    struct tg_podinfo p = {0};
    char err[TG_ERRLEN] = "";

    /* as the kubelet writes it: sorted, no newline after the last */
    ck_assert_msg(parse("web-7d9f-abcde", "default",
                        "app=\"web\"\napp.kubernetes.io/name=\"web.v1_2-x\"\n"
                        "pod-template-hash=\"7d9f\"\nempty=\"\"",
                        &p, err) == 0,
                  "%s", err);
    ck_assert_str_eq(p.name, "web-7d9f-abcde");
    ck_assert_str_eq(p.ns, "default");
    ck_assert_uint_eq(p.n_labels, 4);
    ck_assert_str_eq(p.labels[1].key, "app.kubernetes.io/name");
    ck_assert_str_eq(p.labels[1].value, "web.v1_2-x");
    ck_assert_str_eq(p.labels[3].value, "");
    tg_podinfo_cleanup(&p);
    ck_assert_ptr_null(p.labels);

    /* one trailing newline in each file, and a pod without labels */
    ck_assert_msg(parse("web\n", "default\n", "", &p, err) == 0, "%s", err);
    ck_assert_str_eq(p.name, "web");
    ck_assert_uint_eq(p.n_labels, 0);
    tg_podinfo_cleanup(&p);
    ck_assert_msg(parse("web", "default", "a=\"b\"\n", &p, err) == 0, "%s", err);
    ck_assert_uint_eq(p.n_labels, 1);
    tg_podinfo_cleanup(&p);
}
END_TEST

START_TEST(test_refused)
{
    static char many[80 * 70];
    static const struct {
        const char *name, *ns, *labels, *want;
    } cases[] = {
        {"web", "default", "app=web", "/pod/labels:1: want key=\"value\""},
        {"web", "default", "app=\"web", "want key=\"value\""},
        {"web", "default", "app", "want key=\"value\""},
        {"web", "default", "=\"web\"", "is not a label key"},
        {"web", "default", "a=\"x\"\nApp.Example/x=\"y\"", "labels:2: \"App.Example/x\""},
        {"web", "default", "-app=\"web\"", "is not a label key"},
        {"web", "default", "app=\"we\\\"b\"", "is not a label value"},
        {"web", "default", "app=\"web\\n\"", "is not a label value"},
        {"web", "default", "app=\"-web\"", "is not a label value"},
        {"web", "default",
         "app=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
         "is not a label value"},
        {"web", "default", "app=\"x\"\napp=\"y\"", "labels:2: app given twice"},
        {"web", "default", "a=\"x\"\n\nb=\"y\"", "labels:2: a blank line"},
        {"web", "default", "a=\"x\"\n\n", "labels:2: a blank line"},
        {"web", "default", "a=\"x\"\r\n", "a NUL or CR byte"},
        {"Web", "default", "", "/pod/name: not a pod name"},
        {"", "default", "", "/pod/name: not a pod name"},
        {"web", "a.b", "", "/pod/namespace: not a namespace"},
        {"web", "", "", "/pod/namespace: not a namespace"},
        {"web", "default", many, "more than 64 labels"},
    };
    size_t at = 0;

    for (int i = 0; i <= TG_PODINFO_MAX_LABELS; i++)
        at += (size_t)snprintf(many + at, sizeof(many) - at, "%sk%d=\"v\"", i ? "\n" : "", i);
    for (size_t i = 0; i < TG_NELEM(cases); i++) {
        struct tg_podinfo p = {0};
        char err[TG_ERRLEN] = "";

        ck_assert_int_eq(parse(cases[i].name, cases[i].ns, cases[i].labels, &p, err), TG_EINVAL);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "\"%s\" does not say \"%s\"", err,
                      cases[i].want);
        ck_assert_ptr_null(p.labels); /* untouched */
    }
}
END_TEST

START_TEST(test_label_syntax)
{
    ck_assert(tg_podinfo_label_key_ok("tollgate.dev/inject", 19));
    ck_assert(!tg_podinfo_label_key_ok("tollgate.dev/", 13));
    ck_assert(!tg_podinfo_label_key_ok("/inject", 7));
    ck_assert(!tg_podinfo_label_key_ok("a..b/c", 6));
    ck_assert(tg_podinfo_label_value_ok("", 0));
    ck_assert(!tg_podinfo_label_value_ok("a b", 3));
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s = suite_create("podinfo");
    TCase *tc = tcase_create("podinfo");

    tcase_add_test(tc, test_kubelet_rendering);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_label_syntax);
    suite_add_tcase(s, tc);
    return s;
}

/* Issue 12 item 5, tried as an attacker would: path rules of a protocol: http port against
 * request targets written to slip past them. curl-free raw requests -> sidecar A (outbound,
 * api) ==mTLS==> sidecar B (two inbound protocol: http listeners) -> a python app that
 * records every request line it receives and echoes it back.
 *
 * B's listener "allow-in" has one ALLOW rule, paths ["/public/" "*"]; "deny-in" has one DENY
 * rule, paths ["/admin/" "*"] (and no ALLOW rule: default allow). Each attack is a target that
 * a prefix match on the raw target gets wrong: dot segments (plain, percent-encoded, mixed
 * case), doubled slashes, percent-encoded letters, encoded slashes and backslashes, literal
 * backslashes, fragments, absolute-form targets, an authority that disagrees with Host. Each
 * must be refused (403 by the rule once the path is normalised, or 400 for what has no
 * normal form) and the app must never see it; the positive controls must reach the app with
 * the normalised path, the one the rules saw (and %25 is decoded once, never twice). */

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int app_port, allow_in, deny_in, allow_out, deny_out, a_admin, b_admin;

/* Logs each request line to app.log and answers 200 with it as the body. */
/* The app: logs each request line to app.log and answers with it. */
static const char app_methods[] =
    "    def do_GET(self):\n"
    "        with open('app.log', 'a') as f: f.write(self.requestline + '\\n')\n"
    "        self.reply(('seen: ' + self.requestline + '\\n').encode('latin-1'))\n";

enum side { ALLOW, DENY };

static const struct {
    enum side side;
    const char *target; /* as sent, with Host: web.local */
    int status;         /* what the caller must get */
    const char *seen;   /* 200: the target the app must receive */
} cases[] = {
    /* refused: ALLOW "/public/" "*" */
    {ALLOW, "/public/../secret.txt", 403, NULL},
    {ALLOW, "/public/%2e%2e/secret.txt", 403, NULL},
    {ALLOW, "/public/%2E%2E/secret.txt", 403, NULL},
    {ALLOW, "/public/.%2E/secret.txt", 403, NULL},
    {ALLOW, "/public/%2e./secret.txt", 403, NULL},
    {ALLOW, "/public/./../secret.txt", 403, NULL},
    {ALLOW, "/public//../secret.txt", 403, NULL},
    /* slashes merge first */
    {ALLOW, "/public//../../secret.txt", 400, NULL},
    {ALLOW, "/public/..", 403, NULL},
    {ALLOW, "/public/..%2fsecret.txt", 400, NULL},
    {ALLOW, "/public/..%2Fsecret.txt", 400, NULL},
    {ALLOW, "/public/..%5csecret.txt", 400, NULL},
    {ALLOW, "/public/..\\secret.txt", 400, NULL},
    /* above the root */
    {ALLOW, "/public/%2e%2e/%2e%2e/etc/passwd", 400, NULL},
    {ALLOW, "/public/a.txt#/../../secret.txt", 400, NULL},
    {ALLOW, "/public/a%00.txt", 400, NULL},
    {ALLOW, "http://web.local/secret.txt", 403, NULL},
    {ALLOW, "http://web.local/public/../secret.txt", 403, NULL},
    {ALLOW, "http://elsewhere.local/public/a.txt", 400, NULL},
    /* a fragment, even after ? */
    {ALLOW, "/public/q?x=/../%2f%2e//#", 400, NULL},
    /* refused: DENY "/admin/" "*" */
    {DENY, "/admin/x", 403, NULL},
    {DENY, "//admin/x", 403, NULL},
    {DENY, "///admin//x", 403, NULL},
    {DENY, "/%61dmin/x", 403, NULL},
    {DENY, "/%61%64%6D%69%6e/x", 403, NULL},
    {DENY, "/ad%6din/x", 403, NULL},
    {DENY, "/ad%6Din/x", 403, NULL},
    {DENY, "/./admin/x", 403, NULL},
    {DENY, "/%2e/admin/x", 403, NULL},
    {DENY, "/x/../admin/x", 403, NULL},
    {DENY, "/x/%2E%2E/admin/x", 403, NULL},
    {DENY, "/admin/.", 403, NULL},
    {DENY, "/admin/x/..", 403, NULL},
    {DENY, "/admin%2fx", 400, NULL},
    {DENY, "/admin%2Fx", 400, NULL},
    {DENY, "/admin%5cx", 400, NULL},
    {DENY, "/\\admin/x", 400, NULL},
    {DENY, "/admin\\x", 400, NULL},
    {DENY, "\\admin\\x", 400, NULL},
    {DENY, "/admin#x", 400, NULL},
    {DENY, "/admin/x%00", 400, NULL},
    {DENY, "/admin/x%0a", 400, NULL},
    {DENY, "http://web.local/admin/x", 403, NULL},
    {DENY, "https://web.local//admin/x", 403, NULL},
    {DENY, "hTTp://Web.Local/%61dmin/x", 403, NULL},
    /* port differs */
    {DENY, "http://web.local:8080/admin/x", 400, NULL},
    {DENY, "http://other.local/x", 400, NULL},
    {DENY, "http://user@web.local/x", 400, NULL},
    /* allowed: the app gets the normalised path */
    {ALLOW, "/public/a.txt", 200, "/public/a.txt"},
    {ALLOW, "/public/%61.txt", 200, "/public/a.txt"},
    {ALLOW, "/public//a.txt", 200, "/public/a.txt"},
    {ALLOW, "/public/b/../a.txt", 200, "/public/a.txt"},
    {ALLOW, "/public/%e2%82%ac", 200, "/public/%E2%82%AC"},
    {ALLOW, "/public/q?x=/../%2f%2e//", 200, "/public/q?x=/../%2f%2e//"},
    {ALLOW, "http://web.local/public/a.txt?y", 200, "/public/a.txt?y"},
    {ALLOW, "HTTP://WEB.LOCAL:80/public/a.txt", 200, "/public/a.txt"},
    /* not denied: not under /admin/ once normalised (the rule says /admin/ then anything);
     * %25 stays %25 (not decoded twice), an encoded capital is another path */
    {DENY, "/admin", 200, "/admin"},
    {DENY, "/%2561dmin/x", 200, "/%2561dmin/x"},
    {DENY, "/%2e%2e%2561dmin/x", 200, "/..%2561dmin/x"},
    {DENY, "/adminx", 200, "/adminx"},
    {DENY, "/admin/%2e%2e/x", 200, "/x"},
    {DENY, "http://web.local", 200, "/"},
};

static void setup(void)
{
    it_setup();
    it_mesh_certs();
    IT_FREE_PORTS(&app_port, &allow_in, &deny_in, &allow_out, &deny_out, &a_admin, &b_admin);
}

static void start_all(void)
{
    struct it_cfg b = it_cfg_of(b_admin, "web", 1, "handshake: 2s, drain: 1s");
    struct it_cfg a = it_cfg_of(a_admin, "api", 1, "drain: 1s");

    b.in[0] = (struct it_listener){"allow-in", allow_in, app_port, .more = "protocol: http"};
    b.in[1] = (struct it_listener){"deny-in", deny_in, app_port, .more = "protocol: http"};
    a.out[0] = (struct it_listener){"allow-out", allow_out, allow_in, IT_WEB_ID, NULL};
    a.out[1] = (struct it_listener){"deny-out", deny_out, deny_in, IT_WEB_ID, NULL};
    it_http_app_start("app", app_port, app_methods);
    it_cfg_write("b.yaml", &b,
                 "authorization:\n"
                 "  rules:\n"
                 "    - {name: public-only, action: allow, paths: [\"/public/*\"], ports: [%d]}\n"
                 "    - {name: no-admin, action: deny, paths: [\"/admin/*\"], ports: [%d]}\n",
                 allow_in, deny_in);
    it_sidecar_start("b", "b.yaml", b_admin, 0);
    it_cfg_write("a.yaml", &a, NULL);
    it_sidecar_start("a", "a.yaml", a_admin, 0);
}

/* One request through A (mTLS to B) on a new connection that asks to close; everything read
 * until EOF or 5 s of silence (malloc'd). */
static char *request(int port, const char *target, const char *host)
{
    char req[1024], *buf = malloc(65536);
    int fd = it_connect(port, 5000), n;
    size_t got;

    ck_assert_int_ge(fd, 0);
    n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                 target, host);
    ck_assert(it_send_all(fd, req, (size_t)n));
    got = it_recv_full(fd, buf, 65535);
    buf[got] = '\0';
    close(fd);
    return buf;
}

/* Every attack of the table is refused and never reaches the app; every control reaches it
 * with the normalised target. */
START_TEST(test_path_rules_see_the_normalised_path)
{
    char want[256], *app, *expect = calloc(1, 65536), *wrong = calloc(1, 65536);
    size_t n_expect = 0, n_wrong = 0;
    int bad = 0, n_bad_cases = 0;

    start_all();
    /* every case is tried before anything is asserted, so that a failure lists them all */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int port = cases[i].side == ALLOW ? allow_out : deny_out;
        char *out = request(port, cases[i].target, "web.local"), *eol;
        int status = strncmp(out, "HTTP/1.1 ", 9) == 0 ? atoi(out + 9) : -1;

        if (cases[i].seen != NULL)
            snprintf(want, sizeof(want), "seen: GET %s HTTP/1.1\n", cases[i].seen);
        if (status != cases[i].status || (status == 200 && strstr(out, want) == NULL)) {
            const char *seen = strstr(out, "seen: ");

            if ((eol = strchr(out, '\r')) != NULL)
                *eol = '\0';
            n_wrong += (size_t)snprintf(
                wrong + n_wrong, 65536 - n_wrong, "  %s %s: want %d%s%s, got \"%.60s\"%s%.100s\n",
                cases[i].side == ALLOW ? "allow /public/*" : "deny /admin/*", cases[i].target,
                cases[i].status, cases[i].seen != NULL ? " with " : "",
                cases[i].seen != NULL ? cases[i].seen : "", out, seen != NULL ? ", app " : "",
                seen != NULL ? seen : "");
            n_bad_cases++;
        }
        if (cases[i].status == 200)
            n_expect += (size_t)snprintf(expect + n_expect, 65536 - n_expect, "GET %s HTTP/1.1\n",
                                         cases[i].seen);
        bad += status == 400;
        free(out);
    }
    if (n_bad_cases > 0) /* (the list may be longer than a Check message holds) */
        fprintf(stderr, "cases that got through or went wrong:\n%s", wrong);
    ck_assert_msg(n_bad_cases == 0, "%d of %zu cases got through or went wrong (listed above)",
                  n_bad_cases, sizeof(cases) / sizeof(cases[0]));
    /* the app saw the controls, normalised, and nothing else */
    app = it_read_file("app.log", NULL);
    ck_assert_msg(app != NULL && strcmp(app, expect) == 0, "the app saw:\n%s\nwanted:\n%s",
                  app != NULL ? app : "(nothing)", expect);
    free(app);
    free(expect);
    free(wrong);
    ck_assert_double_eq(it_stat(b_admin, "tollgate_http_bad_requests_total", ""), bad);
    /* a 400 names what was wrong in the access log */
    ck_assert_int_ge(it_count_lines("b.out", "\"status\":400", "encoded slash", NULL), 1);
    ck_assert_int_ge(it_count_lines("b.out", "\"status\":400", "above the root", NULL), 1);
    ck_assert_int_ge(it_count_lines("b.out", "\"status\":400", "Host", NULL), 1);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("adversarial_http", "paths", NULL, setup, it_teardown, 60,
                         test_path_rules_see_the_normalised_path);
}

/* tg_iptables_*: init-iptables options, the iptables-restore text they make, and reading
 * iptables-save output back. Pure: nothing here runs iptables (tests/netns does). */
#include <check.h>
#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tollgate/iptables.h"

#define MAXARGS 16

/* Splits a space-separated command line ("" = no arguments) into argv. */
static int split(const char *line, char *buf, size_t cap, char **argv)
{
    int argc = 0;

    snprintf(buf, cap, "%s", line);
    for (char *tok = strtok(buf, " "); tok != NULL && argc < MAXARGS; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    return argc;
}

static void parse_ok(const char *line, struct tg_iptables_opts *o)
{
    char buf[1024], err[TG_ERRLEN] = "";
    char *argv[MAXARGS];
    int argc = split(line, buf, sizeof(buf), argv);

    ck_assert_msg(tg_iptables_parse(argc, argv, o, err) == 0, "%s: %s", line, err);
}

/* Renders the options in line for family, over the table iptables-save printed as save (NULL:
 * an empty table); the caller frees. */
static char *render_over(const char *line, int family, const char *save)
{
    struct tg_iptables_opts o;
    struct tg_iptables_state st;
    char *text = NULL;

    parse_ok(line, &o);
    if (save != NULL)
        tg_iptables_scan(save, &st);
    ck_assert_int_eq(tg_iptables_render(&o, family, save != NULL ? &st : NULL, &text), 0);
    return text;
}

static char *render(const char *line, int family)
{
    return render_over(line, family, NULL);
}

static void assert_has(const char *text, const char *want)
{
    ck_assert_msg(strstr(text, want) != NULL, "missing \"%s\" in:\n%s", want, text);
}

static void assert_lacks(const char *text, const char *bad)
{
    ck_assert_msg(strstr(text, bad) == NULL, "unexpected \"%s\" in:\n%s", bad, text);
}

static const char golden_default_v4[] =
    "# tollgate init-iptables (IPv4): for iptables-restore --noflush\n"
    "*nat\n"
    ":TOLLGATE_INBOUND - [0:0]\n"
    ":TOLLGATE_IN_REDIRECT - [0:0]\n"
    ":TOLLGATE_OUTPUT - [0:0]\n"
    ":TOLLGATE_OUT_REDIRECT - [0:0]\n"
    "-F TOLLGATE_INBOUND\n"
    "-F TOLLGATE_IN_REDIRECT\n"
    "-F TOLLGATE_OUTPUT\n"
    "-F TOLLGATE_OUT_REDIRECT\n"
    "-A TOLLGATE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006\n"
    "-A TOLLGATE_OUT_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"
    "-A TOLLGATE_INBOUND -p tcp --dport 15000 -j RETURN\n"
    "-A TOLLGATE_INBOUND -p tcp -j TOLLGATE_IN_REDIRECT\n"
    "-A TOLLGATE_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN\n"
    "-A TOLLGATE_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --uid-owner 1337 -j "
    "TOLLGATE_IN_REDIRECT\n"
    "-A TOLLGATE_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN\n"
    "-A TOLLGATE_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
    "-A TOLLGATE_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
    "-A TOLLGATE_OUTPUT -j TOLLGATE_OUT_REDIRECT\n"
    "-A PREROUTING -p tcp -j TOLLGATE_INBOUND\n"
    "-A OUTPUT -p tcp -j TOLLGATE_OUTPUT\n"
    "COMMIT\n";

START_TEST(test_iptables_default_rules_golden)
{
    char *text = render("", AF_INET);

    ck_assert_str_eq(text, golden_default_v4);
    free(text);
}
END_TEST

START_TEST(test_iptables_default_rules_ipv6_use_v6_loopback)
{
    char *text = render("", AF_INET6);

    assert_has(text, "(IPv6): for ip6tables-restore --noflush\n");
    assert_has(text, "# and adds ::6/128 on lo (the sidecar's inbound source)");
    /* the sidecar's connection to the pod address, from its inbound source: not captured,
     * before the rule that sends its other connections on lo to the inbound side */
    assert_has(text, "-A TOLLGATE_OUTPUT -s ::6/128 -o lo -j RETURN\n"
                     "-A TOLLGATE_OUTPUT -o lo ! -d ::1/128 -m owner --uid-owner 1337 -j "
                     "TOLLGATE_IN_REDIRECT\n");
    assert_has(text, "-A TOLLGATE_OUTPUT -d ::1/128 -j RETURN\n");
    assert_lacks(text, "127.0.0.1");
    free(text);
}
END_TEST

START_TEST(test_iptables_defaults_struct)
{
    struct tg_iptables_opts o;

    parse_ok("", &o);
    ck_assert_uint_eq(o.inbound_port, 15006);
    ck_assert_uint_eq(o.outbound_port, 15001);
    ck_assert_uint_eq(o.admin_port, 15000);
    ck_assert_int_eq(o.proxy_uid, 1337);
    ck_assert_int_eq(o.proxy_gid, TG_IPT_NO_ID);
    ck_assert(o.inbound_all);
    ck_assert_int_eq(o.ipv6, TG_IPT_V6_AUTO);
    ck_assert(!o.dry_run && !o.clean);
}
END_TEST

/* One option at a time: what it must add, and what it must take away. */
static const struct {
    const char *args;
    int family;
    const char *want;
    const char *not_want;
} option_cases[] = {
    {"--inbound-port 16006", AF_INET,
     "-A TOLLGATE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006\n", "--to-ports 15006"},
    {"--outbound-port=16001", AF_INET,
     "-A TOLLGATE_OUT_REDIRECT -p tcp -j REDIRECT --to-ports 16001\n", "--to-ports 15001"},
    {"--admin-port 9901", AF_INET, "-A TOLLGATE_INBOUND -p tcp --dport 9901 -j RETURN\n",
     "--dport 15000"},
    {"--admin-port 0", AF_INET, "-A TOLLGATE_INBOUND -p tcp -j TOLLGATE_IN_REDIRECT\n", "--dport"},
    {"--proxy-uid 2000", AF_INET, "-A TOLLGATE_OUTPUT -m owner --uid-owner 2000 -j RETURN\n",
     "1337"},
    {"--proxy-uid 0", AF_INET, "-A TOLLGATE_OUTPUT -o lo -m owner ! --uid-owner 0 -j RETURN\n",
     "1337"},
    {"--proxy-gid 1337", AF_INET,
     "-A TOLLGATE_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
     "-A TOLLGATE_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --gid-owner 1337 -j "
     "TOLLGATE_IN_REDIRECT\n"
     "-A TOLLGATE_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN\n"
     "-A TOLLGATE_OUTPUT -m owner --gid-owner 1337 -j RETURN\n"
     "-A TOLLGATE_OUTPUT -d 127.0.0.1/32 -j RETURN\n",
     NULL},
    {"--proxy-uid none --proxy-gid 1500", AF_INET,
     "-A TOLLGATE_OUTPUT -m owner --gid-owner 1500 -j RETURN\n", "--uid-owner"},
    {"--include-inbound-ports 80,8080", AF_INET,
     "-A TOLLGATE_INBOUND -p tcp --dport 15000 -j RETURN\n"
     "-A TOLLGATE_INBOUND -p tcp --dport 80 -j TOLLGATE_IN_REDIRECT\n"
     "-A TOLLGATE_INBOUND -p tcp --dport 8080 -j TOLLGATE_IN_REDIRECT\n",
     "-A TOLLGATE_INBOUND -p tcp -j TOLLGATE_IN_REDIRECT"},
    {"--include-inbound-ports *", AF_INET, "-A TOLLGATE_INBOUND -p tcp -j TOLLGATE_IN_REDIRECT\n",
     NULL},
    {"--include-inbound-ports=", AF_INET, "-A TOLLGATE_INBOUND -p tcp --dport 15000 -j RETURN\n",
     "-A TOLLGATE_INBOUND -p tcp -j TOLLGATE_IN_REDIRECT"},
    {"--exclude-inbound-ports 22,15090", AF_INET,
     "-A TOLLGATE_INBOUND -p tcp --dport 15000 -j RETURN\n"
     "-A TOLLGATE_INBOUND -p tcp --dport 22 -j RETURN\n"
     "-A TOLLGATE_INBOUND -p tcp --dport 15090 -j RETURN\n"
     "-A TOLLGATE_INBOUND -p tcp -j TOLLGATE_IN_REDIRECT\n",
     NULL},
    {"--exclude-outbound-cidrs 10.0.0.0/8,169.254.169.254,fd00::/8", AF_INET,
     "-A TOLLGATE_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
     "-A TOLLGATE_OUTPUT -d 10.0.0.0/8 -j RETURN\n"
     "-A TOLLGATE_OUTPUT -d 169.254.169.254/32 -j RETURN\n"
     "-A TOLLGATE_OUTPUT -j TOLLGATE_OUT_REDIRECT\n",
     "fd00"},
    {"--exclude-outbound-cidrs 10.0.0.0/8,fd00::1/8", AF_INET6,
     "-A TOLLGATE_OUTPUT -d ::1/128 -j RETURN\n"
     "-A TOLLGATE_OUTPUT -d fd00::/8 -j RETURN\n"
     "-A TOLLGATE_OUTPUT -j TOLLGATE_OUT_REDIRECT\n",
     "10.0.0.0"},
    {"--exclude-outbound-cidrs 192.168.77.9/20", AF_INET,
     "-A TOLLGATE_OUTPUT -d 192.168.64.0/20 -j RETURN\n", "192.168.77.9"},
    {"--exclude-outbound-ports 53,5432", AF_INET,
     "-A TOLLGATE_OUTPUT -p tcp --dport 53 -j RETURN\n"
     "-A TOLLGATE_OUTPUT -p tcp --dport 5432 -j RETURN\n"
     "-A TOLLGATE_OUTPUT -j TOLLGATE_OUT_REDIRECT\n",
     NULL},
    {"--exclude-interfaces eth1,veth+", AF_INET,
     "-A TOLLGATE_INBOUND -i eth1 -j RETURN\n"
     "-A TOLLGATE_INBOUND -i veth+ -j RETURN\n"
     "-A TOLLGATE_INBOUND -p tcp --dport 15000 -j RETURN\n",
     NULL},
    {"--exclude-interfaces eth1,veth+", AF_INET,
     "-A TOLLGATE_OUTPUT -o eth1 -j RETURN\n"
     "-A TOLLGATE_OUTPUT -o veth+ -j RETURN\n"
     "-A TOLLGATE_OUTPUT -o lo ! -d",
     NULL},
    {"--dry-run --ipv6 off", AF_INET, "-A OUTPUT -p tcp -j TOLLGATE_OUTPUT\n", NULL},
};

START_TEST(test_iptables_each_option)
{
    char *text = render(option_cases[_i].args, option_cases[_i].family);

    assert_has(text, option_cases[_i].want);
    if (option_cases[_i].not_want != NULL)
        assert_lacks(text, option_cases[_i].not_want);
    assert_has(text, "*nat\n");
    ck_assert_msg(strlen(text) > 7 && strcmp(text + strlen(text) - 7, "COMMIT\n") == 0,
                  "%s: does not end with COMMIT", option_cases[_i].args);
    free(text);
}
END_TEST

START_TEST(test_iptables_flags_and_ipv6_modes)
{
    struct tg_iptables_opts o;

    parse_ok("--dry-run --clean --ipv6 on", &o);
    ck_assert(o.dry_run && o.clean);
    ck_assert_int_eq(o.ipv6, TG_IPT_V6_ON);
    parse_ok("--ipv6=off", &o);
    ck_assert_int_eq(o.ipv6, TG_IPT_V6_OFF);
    parse_ok("--ipv6 auto", &o);
    ck_assert_int_eq(o.ipv6, TG_IPT_V6_AUTO);
}
END_TEST

/* Bad options: refused, and the message names the option and the fault. */
static const struct {
    const char *args;
    const char *why;
} bad_cases[] = {
    {"--bogus", "unknown option \"--bogus\""},
    {"-p 15001", "unknown option \"-p\""},
    {"--inbound-port", "--inbound-port needs a value"},
    {"--inbound-port abc", "--inbound-port: \"abc\" is not a port (want 1-65535)"},
    {"--inbound-port 0", "--inbound-port: \"0\" is not a port"},
    {"--inbound-port 65536", "\"65536\" is not a port"},
    {"--inbound-port -1", "\"-1\" is not a port"},
    {"--inbound-port +80", "\"+80\" is not a port"},
    {"--outbound-port 0x50", "--outbound-port: \"0x50\" is not a port"},
    {"--inbound-port 15001", "--inbound-port and --outbound-port are both 15001"},
    {"--admin-port 15006", "--admin-port 15006 is also a capture port"},
    {"--admin-port 70000", "--admin-port: \"70000\" is not a port (want 0-65535)"},
    {"--inbound-port 1 --inbound-port 2", "--inbound-port given twice"},
    {"--proxy-uid root", "--proxy-uid: \"root\" is not a numeric id"},
    {"--proxy-uid 4294967295", "\"4294967295\" is not a numeric id"},
    {"--proxy-gid -5", "--proxy-gid: \"-5\" is not a numeric id"},
    {"--proxy-uid none", "--proxy-uid and --proxy-gid are both none"},
    {"--include-inbound-ports 80,,81", "--include-inbound-ports: empty item in \"80,,81\""},
    {"--include-inbound-ports 80,", "empty item"},
    {"--include-inbound-ports 80,http", "\"http\" is not a port"},
    {"--include-inbound-ports 80,80", "--include-inbound-ports: port 80 listed twice"},
    {"--exclude-inbound-ports 1-100", "--exclude-inbound-ports: \"1-100\" is not a port"},
    {"--exclude-outbound-ports 99999", "--exclude-outbound-ports: \"99999\" is not a port"},
    {"--exclude-outbound-cidrs 10.0.0.0/33", "\"10.0.0.0/33\": prefix length must be 0-32"},
    {"--exclude-outbound-cidrs fd00::/129", "\"fd00::/129\": prefix length must be 0-128"},
    {"--exclude-outbound-cidrs 10.0.0/8", "\"10.0.0/8\" is not a CIDR"},
    {"--exclude-outbound-cidrs example.com", "\"example.com\" is not a CIDR"},
    {"--exclude-outbound-cidrs 10.0.0.0/", "prefix length must be 0-32"},
    {"--exclude-outbound-cidrs /8", "\"/8\" is not a CIDR"},
    {"--exclude-outbound-cidrs 10.1.0.0/8,10.0.0.0/8", "10.0.0.0/8 listed twice"},
    {"--exclude-interfaces eth0,-j", "--exclude-interfaces: \"-j\" is not an interface name"},
    {"--exclude-interfaces a/b", "\"a/b\" is not an interface name"},
    {"--exclude-interfaces +", "\"+\" is not an interface name"},
    {"--exclude-interfaces et+h", "\"et+h\" is not an interface name"},
    {"--exclude-interfaces abcdefghijklmnop", "is longer than 15 characters"},
    {"--exclude-interfaces eth0,eth0", "eth0 listed twice"},
    {"--ipv6 yes", "--ipv6: \"yes\" is not auto, on or off"},
    {"--dry-run=1", "--dry-run takes no value"},
    {"--clean --clean", "--clean given twice"},
};

START_TEST(test_iptables_bad_options_refused)
{
    struct tg_iptables_opts o;
    char buf[1024], err[TG_ERRLEN] = "";
    char *argv[MAXARGS];
    int argc = split(bad_cases[_i].args, buf, sizeof(buf), argv);

    ck_assert_int_eq(tg_iptables_parse(argc, argv, &o, err), TG_EINVAL);
    ck_assert_msg(strstr(err, bad_cases[_i].why) != NULL, "%s: got \"%s\", want \"%s\"",
                  bad_cases[_i].args, err, bad_cases[_i].why);
}
END_TEST

START_TEST(test_iptables_list_limits)
{
    struct tg_iptables_opts o;
    char list[8192] = "", err[TG_ERRLEN] = "";
    char opt[] = "--exclude-inbound-ports";
    char *argv[2] = {opt, list};

    for (int i = 1; i <= TG_IPT_MAX_PORTS; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d", i > 1 ? "," : "", i);
    ck_assert_int_eq(tg_iptables_parse(2, argv, &o, err), 0);
    ck_assert_uint_eq(o.n_exclude_in, TG_IPT_MAX_PORTS);
    strcat(list, ",999");
    ck_assert_int_eq(tg_iptables_parse(2, argv, &o, err), TG_EINVAL);
    ck_assert_msg(strstr(err, "more than 64 ports") != NULL, "%s", err);
}
END_TEST

START_TEST(test_iptables_help)
{
    struct tg_iptables_opts o;
    char help[] = "--help";
    char *argv[] = {help};

    ck_assert_int_eq(tg_iptables_parse(1, argv, &o, NULL), TG_EAGAIN);
}
END_TEST

static const char save_with_ours[] =
    "# Generated by iptables-save v1.8.9 (nf_tables) on Sat Nov 28 15:23:03 2026\n"
    "*filter\n"
    ":INPUT ACCEPT [0:0]\n"
    "-A INPUT -p tcp -j TOLLGATE_INBOUND\n" /* not nat: ignored */
    "COMMIT\n"
    "*nat\n"
    ":PREROUTING ACCEPT [12:720]\n"
    ":OUTPUT ACCEPT [3:180]\n"
    ":TOLLGATE_INBOUND - [0:0]\n"
    ":TOLLGATE_IN_REDIRECT - [0:0]\n"
    ":TOLLGATE_OUTPUT - [0:0]\n"
    ":TOLLGATE_OUT_REDIRECT - [0:0]\n"
    ":TOLLGATE_OUTPUTX - [0:0]\n" /* not ours */
    "-A PREROUTING -p tcp -j TOLLGATE_INBOUND\n"
    "-A PREROUTING -i eth0 -p tcp -j TOLLGATE_INBOUND\n" /* someone else's: not ours */
    "-A OUTPUT -p tcp -j TOLLGATE_OUTPUT  \r\n"
    "-A OUTPUT -p tcp -j TOLLGATE_OUTPUT\n"
    "-A OUTPUT -p udp -m udp --dport 53 -j RETURN\n"
    "COMMIT";

START_TEST(test_iptables_scan_counts_our_jumps_and_chains)
{
    struct tg_iptables_state st;

    tg_iptables_scan(save_with_ours, &st);
    ck_assert_uint_eq(st.in_jumps, 1);
    ck_assert_uint_eq(st.out_jumps, 2);
    ck_assert_uint_eq(st.chains, 4);
    tg_iptables_scan("", &st);
    ck_assert_uint_eq(st.in_jumps + st.out_jumps + st.chains, 0);
}
END_TEST

START_TEST(test_iptables_install_is_idempotent)
{
    char *text = render_over("", AF_INET, save_with_ours);

    assert_lacks(text, "PREROUTING");
    assert_lacks(text, "-A OUTPUT");
    assert_has(text, "-F TOLLGATE_OUTPUT\n");
    free(text);
}
END_TEST

START_TEST(test_iptables_clean_removes_every_jump_then_chains)
{
    char *text = render_over("--clean", AF_INET, save_with_ours);

    ck_assert_str_eq(text, "# tollgate init-iptables --clean (IPv4): for iptables-restore "
                           "--noflush\n"
                           "*nat\n"
                           ":TOLLGATE_INBOUND - [0:0]\n"
                           ":TOLLGATE_IN_REDIRECT - [0:0]\n"
                           ":TOLLGATE_OUTPUT - [0:0]\n"
                           ":TOLLGATE_OUT_REDIRECT - [0:0]\n"
                           "-D PREROUTING -p tcp -j TOLLGATE_INBOUND\n"
                           "-D OUTPUT -p tcp -j TOLLGATE_OUTPUT\n"
                           "-D OUTPUT -p tcp -j TOLLGATE_OUTPUT\n"
                           "-F TOLLGATE_INBOUND\n"
                           "-F TOLLGATE_IN_REDIRECT\n"
                           "-F TOLLGATE_OUTPUT\n"
                           "-F TOLLGATE_OUT_REDIRECT\n"
                           "-X TOLLGATE_INBOUND\n"
                           "-X TOLLGATE_IN_REDIRECT\n"
                           "-X TOLLGATE_OUTPUT\n"
                           "-X TOLLGATE_OUT_REDIRECT\n"
                           "COMMIT\n");
    free(text);
    text = render_over("--clean", AF_INET, "*nat\nCOMMIT\n");
    assert_lacks(text, "-D ");
    assert_has(text, "-X TOLLGATE_INBOUND\n");
    free(text);
}
END_TEST

START_TEST(test_iptables_v6_detection)
{
    ck_assert(!tg_iptables_v6_present(""));
    ck_assert(!tg_iptables_v6_present("00000000000000000000000000000001 01 80 10 80       lo\n"));
    ck_assert(tg_iptables_v6_present("00000000000000000000000000000001 01 80 10 80       lo\n"
                                     "fe800000000000000c1d2efffe3a4b5c 02 40 20 80     eth0\n"));
    ck_assert(tg_iptables_v6_present("fd000000000000000000000000000002 03 40 00 80 veth-a"));
    ck_assert(!tg_iptables_v6_present("garbage\n"));
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = TG_TEST_SUITE(
        "iptables", "rules", &tc, test_iptables_default_rules_golden,
        test_iptables_default_rules_ipv6_use_v6_loopback, test_iptables_defaults_struct,
        test_iptables_flags_and_ipv6_modes, test_iptables_list_limits, test_iptables_help,
        test_iptables_scan_counts_our_jumps_and_chains, test_iptables_install_is_idempotent,
        test_iptables_clean_removes_every_jump_then_chains, test_iptables_v6_detection);

    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_iptables_each_option, option_cases),
                  TG_TEST_LOOP(test_iptables_bad_options_refused, bad_cases));
    return s;
}

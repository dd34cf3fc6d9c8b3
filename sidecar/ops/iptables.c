/* `tollgate init-iptables`: options, the rules (pure), and applying them through
 * iptables-restore. See include/tollgate/iptables.h and deploy/README.md. */
#include "tollgate/iptables.h"
#include "tollgate/file.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tollgate/intercept.h"

#define JUMP_IN "-A PREROUTING -p tcp -j " TG_IPT_CHAIN_INBOUND
#define JUMP_OUT "-A OUTPUT -p tcp -j " TG_IPT_CHAIN_OUTPUT
#define SAVE_MAX (16u << 20) /* bytes of iptables-save output we are willing to read */

static const char *const chains[] = {
    TG_IPT_CHAIN_INBOUND,
    TG_IPT_CHAIN_IN_REDIRECT,
    TG_IPT_CHAIN_OUTPUT,
    TG_IPT_CHAIN_OUT_REDIRECT,
};

void tg_iptables_defaults(struct tg_iptables_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->inbound_port = 15006;
    o->outbound_port = 15001;
    o->admin_port = 15000;
    o->proxy_uid = 1337;
    o->proxy_gid = TG_IPT_NO_ID;
    o->inbound_all = true;
    o->ipv6 = TG_IPT_V6_AUTO;
}

/* ---- option parsing ---- */

/* Decimal digits only, no sign, no spaces: what a person types, and nothing strtoul would
 * also take ("+80", " 80", "0x50"). */
static bool parse_ulong(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;

    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static int parse_port(const char *opt, const char *s, size_t len, bool zero_ok, uint16_t *out,
                      char *err)
{
    unsigned long v;

    if (!parse_ulong(s, len, 65535, &v) || (v == 0 && !zero_ok))
        return tg_err_set(err, TG_EINVAL, "%s: \"%.*s\" is not a port (want %d-65535)", opt,
                          (int)len, s, zero_ok ? 0 : 1);
    *out = (uint16_t)v;
    return 0;
}

static int parse_id(const char *opt, const char *s, long *out, char *err)
{
    unsigned long v;

    if (strcmp(s, "none") == 0) {
        *out = TG_IPT_NO_ID;
        return 0;
    }
    /* 4294967295 is (uid_t)-1, "no change" to the kernel: never a real owner */
    if (!parse_ulong(s, strlen(s), 4294967294UL, &v))
        return tg_err_set(err, TG_EINVAL,
                          "%s: \"%s\" is not a numeric id (want 0-4294967294, or none)", opt, s);
    *out = (long)v;
    return 0;
}

/* Splits s at commas; calls one() for each item, refusing empty items. */
static int each_item(const char *opt, const char *s, void *arg,
                     int (*one)(const char *opt, const char *item, size_t len, void *arg,
                                char *err),
                     char *err)
{
    const char *p = s;
    int rc;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

        if (len == 0)
            return tg_err_set(err, TG_EINVAL, "%s: empty item in \"%s\"", opt, s);
        if ((rc = one(opt, p, len, arg, err)) < 0)
            return rc;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

struct port_list {
    uint16_t *v;
    size_t *n;
};

static int one_port(const char *opt, const char *item, size_t len, void *arg, char *err)
{
    struct port_list *l = arg;
    uint16_t port;
    int rc = parse_port(opt, item, len, false, &port, err);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < *l->n; i++)
        if (l->v[i] == port)
            return tg_err_set(err, TG_EINVAL, "%s: port %u listed twice", opt, port);
    if (*l->n == TG_IPT_MAX_PORTS)
        return tg_err_set(err, TG_EINVAL, "%s: more than %d ports", opt, TG_IPT_MAX_PORTS);
    l->v[(*l->n)++] = port;
    return 0;
}

static int parse_ports(const char *opt, const char *s, uint16_t *v, size_t *n, char *err)
{
    struct port_list l = {v, n};

    *n = 0;
    return each_item(opt, s, &l, one_port, err);
}

/* "a.b.c.d[/len]" or "x::y[/len]"; the address alone means a host (/32 or /128). Host bits
 * are cleared, so the rule shows the network iptables-save would show. */
static int one_cidr(const char *opt, const char *item, size_t len, void *arg, char *err)
{
    struct tg_iptables_opts *o = arg;
    struct tg_ipt_cidr *c;
    char addr[64], text[INET6_ADDRSTRLEN], cidr[sizeof(c->text)];
    unsigned char bytes[16];
    const char *slash = memchr(item, '/', len);
    size_t alen = slash != NULL ? (size_t)(slash - item) : len;
    unsigned long prefix;
    int family;

    if (alen == 0 || alen >= sizeof(addr))
        return tg_err_set(err, TG_EINVAL, "%s: \"%.*s\" is not a CIDR (want e.g. 10.0.0.0/8)", opt,
                          (int)len, item);
    memcpy(addr, item, alen);
    addr[alen] = '\0';
    family = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
    if (inet_pton(family, addr, bytes) != 1)
        return tg_err_set(err, TG_EINVAL, "%s: \"%.*s\" is not a CIDR (want e.g. 10.0.0.0/8)", opt,
                          (int)len, item);
    prefix = family == AF_INET ? 32 : 128;
    if (slash != NULL &&
        !parse_ulong(slash + 1, len - alen - 1, family == AF_INET ? 32 : 128, &prefix))
        return tg_err_set(err, TG_EINVAL, "%s: \"%.*s\": prefix length must be 0-%d", opt, (int)len,
                          item, family == AF_INET ? 32 : 128);
    for (unsigned i = 0; i < (family == AF_INET ? 4u : 16u); i++) {
        unsigned keep = prefix >= (i + 1) * 8 ? 8 : prefix > i * 8 ? (unsigned)prefix - i * 8 : 0;

        bytes[i] &= (unsigned char)(0xff00u >> keep);
    }
    inet_ntop(family, bytes, text, sizeof(text));
    snprintf(cidr, sizeof(cidr), "%s/%lu", text, prefix);
    for (size_t i = 0; i < o->n_exclude_cidrs; i++)
        if (strcmp(o->exclude_cidrs[i].text, cidr) == 0)
            return tg_err_set(err, TG_EINVAL, "%s: %s listed twice", opt, cidr);
    if (o->n_exclude_cidrs == TG_IPT_MAX_CIDRS)
        return tg_err_set(err, TG_EINVAL, "%s: more than %d CIDRs", opt, TG_IPT_MAX_CIDRS);
    c = &o->exclude_cidrs[o->n_exclude_cidrs++];
    c->family = family;
    memcpy(c->text, cidr, sizeof(c->text));
    return 0;
}

/* Interface names as iptables takes them: 1-15 of [A-Za-z0-9_.-], or a prefix ending in
 * '+' ("veth+"). Anything else could not be an interface, or would be read as an option. */
static int one_iface(const char *opt, const char *item, size_t len, void *arg, char *err)
{
    struct tg_iptables_opts *o = arg;

    if (len >= TG_IPT_IFNAMSIZ)
        return tg_err_set(err, TG_EINVAL, "%s: \"%.*s\" is longer than %d characters", opt,
                          (int)len, item, TG_IPT_IFNAMSIZ - 1);
    for (size_t i = 0; i < len; i++) {
        char ch = item[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-' ||
                  (ch == '+' && i == len - 1 && i > 0);

        if (!ok || (i == 0 && ch == '-'))
            return tg_err_set(err, TG_EINVAL, "%s: \"%.*s\" is not an interface name", opt,
                              (int)len, item);
    }
    for (size_t i = 0; i < o->n_exclude_ifaces; i++)
        if (strlen(o->exclude_ifaces[i]) == len && memcmp(o->exclude_ifaces[i], item, len) == 0)
            return tg_err_set(err, TG_EINVAL, "%s: %.*s listed twice", opt, (int)len, item);
    if (o->n_exclude_ifaces == TG_IPT_MAX_IFACES)
        return tg_err_set(err, TG_EINVAL, "%s: more than %d interfaces", opt, TG_IPT_MAX_IFACES);
    memcpy(o->exclude_ifaces[o->n_exclude_ifaces], item, len);
    o->exclude_ifaces[o->n_exclude_ifaces++][len] = '\0';
    return 0;
}

enum {
    OPT_IN_PORT,
    OPT_OUT_PORT,
    OPT_ADMIN_PORT,
    OPT_UID,
    OPT_GID,
    OPT_INCLUDE_IN,
    OPT_EXCLUDE_IN,
    OPT_EXCLUDE_CIDRS,
    OPT_EXCLUDE_OUT,
    OPT_EXCLUDE_IFACES,
    OPT_IPV6,
    OPT_DRY_RUN,
    OPT_CLEAN,
};

static const struct {
    const char *name;
    bool takes_value;
} options[] = {
    [OPT_IN_PORT] = {"--inbound-port", true},
    [OPT_OUT_PORT] = {"--outbound-port", true},
    [OPT_ADMIN_PORT] = {"--admin-port", true},
    [OPT_UID] = {"--proxy-uid", true},
    [OPT_GID] = {"--proxy-gid", true},
    [OPT_INCLUDE_IN] = {"--include-inbound-ports", true},
    [OPT_EXCLUDE_IN] = {"--exclude-inbound-ports", true},
    [OPT_EXCLUDE_CIDRS] = {"--exclude-outbound-cidrs", true},
    [OPT_EXCLUDE_OUT] = {"--exclude-outbound-ports", true},
    [OPT_EXCLUDE_IFACES] = {"--exclude-interfaces", true},
    [OPT_IPV6] = {"--ipv6", true},
    [OPT_DRY_RUN] = {"--dry-run", false},
    [OPT_CLEAN] = {"--clean", false},
};

static int apply_option(struct tg_iptables_opts *o, int which, const char *v, char *err)
{
    const char *opt = options[which].name;

    switch (which) {
    case OPT_IN_PORT:
        return parse_port(opt, v, strlen(v), false, &o->inbound_port, err);
    case OPT_OUT_PORT:
        return parse_port(opt, v, strlen(v), false, &o->outbound_port, err);
    case OPT_ADMIN_PORT:
        return parse_port(opt, v, strlen(v), true, &o->admin_port, err);
    case OPT_UID:
        return parse_id(opt, v, &o->proxy_uid, err);
    case OPT_GID:
        return parse_id(opt, v, &o->proxy_gid, err);
    case OPT_INCLUDE_IN:
        o->inbound_all = strcmp(v, "*") == 0;
        o->n_include_in = 0;
        if (o->inbound_all || v[0] == '\0') /* "": capture no inbound port */
            return 0;
        return parse_ports(opt, v, o->include_in, &o->n_include_in, err);
    case OPT_EXCLUDE_IN:
        return parse_ports(opt, v, o->exclude_in, &o->n_exclude_in, err);
    case OPT_EXCLUDE_CIDRS:
        o->n_exclude_cidrs = 0;
        return each_item(opt, v, o, one_cidr, err);
    case OPT_EXCLUDE_OUT:
        return parse_ports(opt, v, o->exclude_out, &o->n_exclude_out, err);
    case OPT_EXCLUDE_IFACES:
        o->n_exclude_ifaces = 0;
        return each_item(opt, v, o, one_iface, err);
    case OPT_IPV6:
        if (strcmp(v, "auto") == 0)
            o->ipv6 = TG_IPT_V6_AUTO;
        else if (strcmp(v, "on") == 0)
            o->ipv6 = TG_IPT_V6_ON;
        else if (strcmp(v, "off") == 0)
            o->ipv6 = TG_IPT_V6_OFF;
        else
            return tg_err_set(err, TG_EINVAL, "%s: \"%s\" is not auto, on or off", opt, v);
        return 0;
    case OPT_DRY_RUN:
        o->dry_run = true;
        return 0;
    default:
        o->clean = true;
        return 0;
    }
}

int tg_iptables_parse(int argc, char *const *argv, struct tg_iptables_opts *o, char *err)
{
    unsigned seen = 0;
    int rc;

    tg_iptables_defaults(o);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '='), *value = NULL;
        size_t nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        int which = -1;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return TG_EAGAIN;
        for (size_t k = 0; k < TG_NELEM(options); k++)
            if (strlen(options[k].name) == nlen && strncmp(options[k].name, arg, nlen) == 0)
                which = (int)k;
        if (which < 0)
            return tg_err_set(err, TG_EINVAL, "unknown option \"%s\" (see --help)", arg);
        if (seen & (1u << which))
            return tg_err_set(err, TG_EINVAL, "%s given twice", options[which].name);
        seen |= 1u << which;
        if (!options[which].takes_value) {
            if (eq != NULL)
                return tg_err_set(err, TG_EINVAL, "%s takes no value", options[which].name);
        } else if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return tg_err_set(err, TG_EINVAL, "%s needs a value", options[which].name);
        }
        if ((rc = apply_option(o, which, value, err)) < 0)
            return rc;
    }
    if (o->inbound_port == o->outbound_port)
        return tg_err_set(err, TG_EINVAL,
                          "--inbound-port and --outbound-port are both %u: they must differ",
                          o->inbound_port);
    if (o->admin_port != 0 &&
        (o->admin_port == o->inbound_port || o->admin_port == o->outbound_port))
        return tg_err_set(err, TG_EINVAL,
                          "--admin-port %u is also a capture port: they must differ",
                          o->admin_port);
    if (o->proxy_uid == TG_IPT_NO_ID && o->proxy_gid == TG_IPT_NO_ID)
        return tg_err_set(err, TG_EINVAL,
                          "--proxy-uid and --proxy-gid are both none: the sidecar's own "
                          "connections would be captured again, in a loop");
    return 0;
}

/* ---- reading iptables-save and /proc ---- */

/* Copies the next line of *p (without its newline, trailing blanks dropped) into line. */
static bool next_line(const char **p, char *line, size_t cap)
{
    const char *s = *p, *nl;
    size_t len;

    if (*s == '\0')
        return false;
    nl = strchr(s, '\n');
    len = nl != NULL ? (size_t)(nl - s) : strlen(s);
    *p = nl != NULL ? nl + 1 : s + len;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
        len--;
    if (len >= cap)
        len = cap - 1; /* a long line is none of ours; a prefix of it cannot match either */
    memcpy(line, s, len);
    line[len] = '\0';
    return true;
}

void tg_iptables_scan(const char *save_text, struct tg_iptables_state *st)
{
    const char *p = save_text;
    char line[512];
    bool nat = false;

    memset(st, 0, sizeof(*st));
    while (next_line(&p, line, sizeof(line))) {
        if (line[0] == '*') {
            nat = strcmp(line, "*nat") == 0;
            continue;
        }
        if (!nat)
            continue;
        if (strcmp(line, JUMP_IN) == 0)
            st->in_jumps++;
        else if (strcmp(line, JUMP_OUT) == 0)
            st->out_jumps++;
        else if (line[0] == ':')
            for (size_t i = 0; i < TG_NELEM(chains); i++) {
                size_t n = strlen(chains[i]);

                if (strncmp(line + 1, chains[i], n) == 0 && line[1 + n] == ' ')
                    st->chains++;
            }
    }
}

/* /proc/net/if_inet6: "<32 hex digits> <ifindex> <prefix> <scope> <flags> <name>" */
bool tg_iptables_v6_present(const char *if_inet6_text)
{
    const char *p = if_inet6_text;
    char line[256], addr[64], name[64];

    while (next_line(&p, line, sizeof(line))) {
        if (sscanf(line, "%63s %*s %*s %*s %*s %63s", addr, name) != 2)
            continue;
        if (strcmp(name, "lo") != 0 && strcmp(addr, "00000000000000000000000000000001") != 0)
            return true;
    }
    return false;
}

/* ---- rendering ---- */

static void owner_rules(FILE *f, const char *lo, const char *kind, long id)
{
    /* The sidecar calling its own pod IP goes out on lo: send it to the inbound side,
     * so a workload that calls itself by its service address still gets mTLS policy. */
    fprintf(f, "-A %s -o lo ! -d %s -m owner --%s-owner %ld -j %s\n", TG_IPT_CHAIN_OUTPUT, lo, kind,
            id, TG_IPT_CHAIN_IN_REDIRECT);
    /* The app talking to itself over lo (127.0.0.1 or its own pod IP): never captured. */
    fprintf(f, "-A %s -o lo -m owner ! --%s-owner %ld -j RETURN\n", TG_IPT_CHAIN_OUTPUT, kind, id);
    /* The sidecar's own connections (to peers, to the control plane): never captured. */
    fprintf(f, "-A %s -m owner --%s-owner %ld -j RETURN\n", TG_IPT_CHAIN_OUTPUT, kind, id);
}

static void render_install(FILE *f, const struct tg_iptables_opts *o, int family,
                           const struct tg_iptables_state *st)
{
    const char *lo = family == AF_INET ? "127.0.0.1/32" : "::1/128";

    for (size_t i = 0; i < TG_NELEM(chains); i++)
        fprintf(f, ":%s - [0:0]\n", chains[i]);
    for (size_t i = 0; i < TG_NELEM(chains); i++)
        fprintf(f, "-F %s\n", chains[i]);
    fprintf(f, "-A %s -p tcp -j REDIRECT --to-ports %u\n", TG_IPT_CHAIN_IN_REDIRECT,
            o->inbound_port);
    fprintf(f, "-A %s -p tcp -j REDIRECT --to-ports %u\n", TG_IPT_CHAIN_OUT_REDIRECT,
            o->outbound_port);

    /* inbound: everything that arrives for the pod, but what is excluded */
    for (size_t i = 0; i < o->n_exclude_ifaces; i++)
        fprintf(f, "-A %s -i %s -j RETURN\n", TG_IPT_CHAIN_INBOUND, o->exclude_ifaces[i]);
    if (o->admin_port != 0)
        fprintf(f, "-A %s -p tcp --dport %u -j RETURN\n", TG_IPT_CHAIN_INBOUND, o->admin_port);
    for (size_t i = 0; i < o->n_exclude_in; i++)
        fprintf(f, "-A %s -p tcp --dport %u -j RETURN\n", TG_IPT_CHAIN_INBOUND, o->exclude_in[i]);
    if (o->inbound_all)
        fprintf(f, "-A %s -p tcp -j %s\n", TG_IPT_CHAIN_INBOUND, TG_IPT_CHAIN_IN_REDIRECT);
    for (size_t i = 0; i < o->n_include_in; i++)
        fprintf(f, "-A %s -p tcp --dport %u -j %s\n", TG_IPT_CHAIN_INBOUND, o->include_in[i],
                TG_IPT_CHAIN_IN_REDIRECT);

    /* outbound: what the app sends, but the exemptions. First the sidecar's own connection
     * to the app at a captured connection's original destination (the pod's address, over
     * lo): it leaves from the inbound source address, and captured it would come back in. */
    fprintf(f, "-A %s -s %s -o lo -j RETURN\n", TG_IPT_CHAIN_OUTPUT,
            family == AF_INET ? TG_INBOUND_SOURCE4 "/32" : TG_INBOUND_SOURCE6 "/128");
    for (size_t i = 0; i < o->n_exclude_ifaces; i++)
        fprintf(f, "-A %s -o %s -j RETURN\n", TG_IPT_CHAIN_OUTPUT, o->exclude_ifaces[i]);
    if (o->proxy_uid != TG_IPT_NO_ID)
        owner_rules(f, lo, "uid", o->proxy_uid);
    if (o->proxy_gid != TG_IPT_NO_ID)
        owner_rules(f, lo, "gid", o->proxy_gid);
    fprintf(f, "-A %s -d %s -j RETURN\n", TG_IPT_CHAIN_OUTPUT, lo);
    for (size_t i = 0; i < o->n_exclude_cidrs; i++)
        if (o->exclude_cidrs[i].family == family)
            fprintf(f, "-A %s -d %s -j RETURN\n", TG_IPT_CHAIN_OUTPUT, o->exclude_cidrs[i].text);
    for (size_t i = 0; i < o->n_exclude_out; i++)
        fprintf(f, "-A %s -p tcp --dport %u -j RETURN\n", TG_IPT_CHAIN_OUTPUT, o->exclude_out[i]);
    fprintf(f, "-A %s -j %s\n", TG_IPT_CHAIN_OUTPUT, TG_IPT_CHAIN_OUT_REDIRECT);

    /* The jumps are the only lines outside our chains: added once, never twice. */
    if (st == NULL || st->in_jumps == 0)
        fprintf(f, "%s\n", JUMP_IN);
    if (st == NULL || st->out_jumps == 0)
        fprintf(f, "%s\n", JUMP_OUT);
}

static void render_clean(FILE *f, const struct tg_iptables_state *st)
{
    unsigned in = st != NULL ? st->in_jumps : 1, out = st != NULL ? st->out_jumps : 1;

    /* Declaring a chain under --noflush creates it, or flushes it when it exists: so the -X
     * below works whether or not an earlier run got as far as making it. */
    for (size_t i = 0; i < TG_NELEM(chains); i++)
        fprintf(f, ":%s - [0:0]\n", chains[i]);
    for (unsigned i = 0; i < in; i++)
        fprintf(f, "-D%s\n", &JUMP_IN[2]); /* "-A PREROUTING ..." as "-D PREROUTING ..." */
    for (unsigned i = 0; i < out; i++)
        fprintf(f, "-D%s\n", &JUMP_OUT[2]);
    for (size_t i = 0; i < TG_NELEM(chains); i++)
        fprintf(f, "-F %s\n", chains[i]);
    for (size_t i = 0; i < TG_NELEM(chains); i++)
        fprintf(f, "-X %s\n", chains[i]);
}

int tg_iptables_render(const struct tg_iptables_opts *o, int family,
                       const struct tg_iptables_state *st, char **out)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (f == NULL)
        return TG_ENOMEM;
    fprintf(f, "# tollgate init-iptables%s (%s): for %s --noflush\n", o->clean ? " --clean" : "",
            family == AF_INET ? "IPv4" : "IPv6",
            family == AF_INET ? "iptables-restore" : "ip6tables-restore");
    if (family == AF_INET6)
        fprintf(f, "# and %s %s/128 on lo (the sidecar's inbound source), as ip -6 addr %s\n",
                o->clean ? "removes" : "adds", TG_INBOUND_SOURCE6, o->clean ? "del" : "add");
    fprintf(f, "*nat\n");
    if (o->clean)
        render_clean(f, st);
    else
        render_install(f, o, family, st);
    fprintf(f, "COMMIT\n");
    if (ferror(f)) {
        fclose(f);
        free(text);
        return TG_ENOMEM;
    }
    if (fclose(f) != 0) {
        free(text);
        return TG_ENOMEM;
    }
    *out = text;
    return 0;
}

/* ---- running iptables-save / iptables-restore ---- */

/* execvp, then the sbin directories a bare PATH (cron, some containers) leaves out. */
static void exec_tool(char *const argv[])
{
    static const char *const dirs[] = {"/usr/sbin/", "/sbin/"};
    char path[256];

    execvp(argv[0], argv);
    for (size_t i = 0; i < TG_NELEM(dirs) && errno == ENOENT; i++) {
        snprintf(path, sizeof(path), "%s%s", dirs[i], argv[0]);
        execv(path, argv);
    }
    fprintf(stderr, "tollgate: init-iptables: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static int wait_tool(pid_t pid, const char *name)
{
    int status;

    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return TG_EIO;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        fprintf(stderr, "tollgate: init-iptables: %s exited with status %d\n", name,
                WEXITSTATUS(status));
    else
        fprintf(stderr, "tollgate: init-iptables: %s killed by signal %d\n", name,
                WTERMSIG(status));
    return TG_EIO;
}

/* Starts argv with a pipe on one side: feed, its stdin (*fd: the end we write); else its
 * stdout, with stdin from /dev/null (*fd: the end we read). The rest of its stdio is ours. */
static int start_piped(char *const argv[], bool feed, int *fd, pid_t *pid)
{
    int fds[2];

    if (pipe2(fds, O_CLOEXEC) < 0)
        return TG_EIO;
    *pid = fork();
    if (*pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return TG_EIO;
    }
    if (*pid == 0) {
        int in = feed ? fds[0] : open("/dev/null", O_RDONLY);

        if (in < 0 || dup2(in, 0) < 0 || (!feed && dup2(fds[1], 1) < 0))
            _exit(127);
        exec_tool(argv);
    }
    close(fds[feed ? 0 : 1]);
    *fd = fds[feed ? 1 : 0];
    return 0;
}

/* Runs argv with stdin from /dev/null; *out gets its stdout (malloc'd, NUL-terminated). */
static int run_capture(char *const argv[], char **out)
{
    char *text = NULL;
    size_t len = 0, cap = 0;
    pid_t pid;
    int fd, rc;

    if ((rc = start_piped(argv, false, &fd, &pid)) < 0)
        return rc;
    for (;;) {
        ssize_t n;

        if (cap - len < 4096) {
            char *bigger = cap >= SAVE_MAX ? NULL : realloc(text, cap + 65536);

            if (bigger == NULL) {
                rc = TG_ENOMEM;
                break;
            }
            text = bigger;
            cap += 65536;
        }
        n = read(fd, text + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? TG_EIO : 0;
            break;
        }
        len += (size_t)n;
    }
    close(fd); /* a tool still writing gets EPIPE and ends; we always reap it */
    if (wait_tool(pid, argv[0]) < 0 && rc == 0)
        rc = TG_EIO;
    if (rc < 0) {
        free(text);
        return rc;
    }
    text[len] = '\0';
    *out = text;
    return 0;
}

/* Runs argv with text on its stdin; its stdout and stderr are ours. */
static int run_feed(char *const argv[], const char *text)
{
    size_t len = strlen(text), off = 0;
    pid_t pid;
    int fd, rc;

    if ((rc = start_piped(argv, true, &fd, &pid)) < 0)
        return rc;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) { /* EPIPE (SIGPIPE is ignored): the tool died; its status says why */
            rc = TG_EIO;
            break;
        }
        off += (size_t)n;
    }
    close(fd);
    if (wait_tool(pid, argv[0]) < 0)
        rc = TG_EIO;
    return rc;
}

static bool ipv6_wanted(enum tg_ipt_ipv6 mode)
{
    char *text = NULL;
    size_t len;
    bool v6;

    if (mode != TG_IPT_V6_AUTO)
        return mode == TG_IPT_V6_ON;
    if (tg_file_read(NULL, "/proc/net/if_inet6", TG_FILE_MAX, 0, &text, &len, NULL) < 0)
        return false; /* no IPv6 in this kernel or namespace */
    v6 = tg_iptables_v6_present(text);
    free(text);
    return v6;
}

static int apply_family(const struct tg_iptables_opts *o, int family)
{
    char save_name[] = "iptables-save", save6_name[] = "ip6tables-save";
    char restore_name[] = "iptables-restore", restore6_name[] = "ip6tables-restore";
    char t_opt[] = "-t", nat[] = "nat", noflush[] = "--noflush", wait_opt[] = "--wait",
         secs[] = "10";
    char *save_argv[] = {family == AF_INET ? save_name : save6_name, t_opt, nat, NULL};
    /* --wait: legacy iptables takes the xtables lock; another writer makes us wait, not fail */
    char *restore_argv[] = {family == AF_INET ? restore_name : restore6_name, noflush, wait_opt,
                            secs, NULL};
    struct tg_iptables_state st;
    char *saved = NULL, *text = NULL;
    int rc;

    if ((rc = run_capture(save_argv, &saved)) < 0)
        goto fail;
    tg_iptables_scan(saved, &st);
    if ((rc = tg_iptables_render(o, family, &st, &text)) < 0)
        goto fail;
    if ((rc = run_feed(restore_argv, text)) < 0)
        goto fail;
    if (o->clean)
        printf("tollgate: init-iptables: %s: removed %u jump(s) and %u chain(s) of ours\n",
               restore_argv[0], st.in_jumps + st.out_jumps, st.chains);
    else
        printf("tollgate: init-iptables: %s: TOLLGATE_* chains %s; jumps from PREROUTING "
               "and OUTPUT %s\n",
               restore_argv[0], st.chains != 0 ? "replaced" : "created",
               st.in_jumps != 0 && st.out_jumps != 0 ? "already present" : "added");
    free(saved);
    free(text);
    return 0;
fail:
    if (rc == TG_ENOMEM)
        fprintf(stderr, "tollgate: init-iptables: out of memory\n");
    else
        fprintf(stderr, "tollgate: init-iptables: %s rules not %s\n",
                family == AF_INET ? "IPv4" : "IPv6", o->clean ? "removed" : "applied");
    free(saved);
    free(text);
    return rc;
}

/* linux/ipv6.h's struct in6_ifreq (that header clashes with glibc's netinet/in.h). */
struct in6_ifreq_ {
    struct in6_addr ifr6_addr;
    uint32_t ifr6_prefixlen;
    int ifr6_ifindex;
};

/* Adds (or removes) TG_INBOUND_SOURCE6/128 on lo, as `ip -6 addr add ::6/128 dev lo`: IPv6
 * puts only ::1 on lo, so the sidecar could not bind its inbound source otherwise. An
 * address already there (or already gone) is fine. */
static int lo_inbound_source6(bool add)
{
    struct in6_ifreq_ r;
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

    if (fd < 0) {
        rc = -errno;
    } else {
        memset(&r, 0, sizeof(r));
        r.ifr6_prefixlen = 128;
        r.ifr6_ifindex = (int)if_nametoindex("lo");
        if (r.ifr6_ifindex == 0 || inet_pton(AF_INET6, TG_INBOUND_SOURCE6, &r.ifr6_addr) != 1)
            rc = -ENODEV;
        else if (ioctl(fd, add ? SIOCSIFADDR : SIOCDIFADDR, &r) < 0 &&
                 errno != (add ? EEXIST : EADDRNOTAVAIL))
            rc = -errno;
        close(fd);
    }
    if (rc < 0)
        fprintf(stderr, "tollgate: init-iptables: lo: cannot %s %s/128: %s\n",
                add ? "add" : "remove", TG_INBOUND_SOURCE6, strerror(-rc));
    else
        printf("tollgate: init-iptables: lo: %s/128 %s (the sidecar's inbound source)\n",
               TG_INBOUND_SOURCE6, add ? "present" : "removed");
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tollgate init-iptables [OPTIONS]\n"
               "Writes the capture rules (nat table, chains TOLLGATE_*) with iptables-restore.\n"
               "  --inbound-port P              inbound capture port (15006)\n"
               "  --outbound-port P             outbound capture port (15001)\n"
               "  --admin-port P                admin port, never captured; 0: none (15000)\n"
               "  --proxy-uid UID|none          the sidecar's uid, exempt (1337)\n"
               "  --proxy-gid GID|none          the sidecar's gid, exempt (none)\n"
               "  --include-inbound-ports L|*   inbound ports captured ('*'; '' for none)\n"
               "  --exclude-inbound-ports L     inbound ports not captured\n"
               "  --exclude-outbound-cidrs L    destinations not captured (10.0.0.0/8,...)\n"
               "  --exclude-outbound-ports L    destination ports not captured\n"
               "  --exclude-interfaces L        interfaces not captured (in or out)\n"
               "  --ipv6 auto|on|off            also ip6tables (auto: a non-loopback v6 address)\n"
               "  --dry-run                     print the iptables-restore input, change nothing\n"
               "  --clean                       remove our jumps and chains, nothing else\n");
}

int tg_iptables_main(int argc, char **argv)
{
    struct tg_iptables_opts o;
    char err[TG_ERRLEN] = "";
    int families[2], n = 0, rc;

    rc = tg_iptables_parse(argc - 2, argv + 2, &o, err);
    if (rc == TG_EAGAIN) {
        usage(stdout);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "tollgate: init-iptables: %s\n", err);
        return 2;
    }
    families[n++] = AF_INET;
    if (ipv6_wanted(o.ipv6))
        families[n++] = AF_INET6;
    if (o.dry_run) {
        for (int i = 0; i < n; i++) {
            char *text;

            if (tg_iptables_render(&o, families[i], NULL, &text) < 0) {
                fprintf(stderr, "tollgate: init-iptables: out of memory\n");
                return 1;
            }
            fputs(text, stdout);
            free(text);
        }
        return 0;
    }
    signal(SIGPIPE, SIG_IGN); /* a restore that dies early must not kill us mid-write */
    for (int i = 0; i < n; i++) {
        if (apply_family(&o, families[i]) < 0)
            return 1;
        if (families[i] == AF_INET6 && lo_inbound_source6(!o.clean) < 0)
            return 1;
    }
    return 0;
}

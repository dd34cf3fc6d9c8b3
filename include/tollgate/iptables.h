/* `tollgate init-iptables`: the capture rules that send a workload's TCP traffic through
 * the sidecar, in the nat table and in chains of their own (TOLLGATE_*), so the rest of
 * the network namespace's rules are left alone.
 *
 * Parsing, scanning and rendering are pure (no I/O, no libuv): they turn options and the
 * output of `iptables-save -t nat` into the text that `iptables-restore --noflush` reads.
 * tg_iptables_main() is the CLI verb and the only part that runs programs. The rules follow
 * Istio's well-known layout (ISTIO_INBOUND / ISTIO_OUTPUT); deploy/README.md explains each
 * one. */
#ifndef TOLLGATE_IPTABLES_H
#define TOLLGATE_IPTABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/err.h"

#define TG_IPT_MAX_PORTS 64
#define TG_IPT_MAX_CIDRS 64
#define TG_IPT_MAX_IFACES 16
#define TG_IPT_IFNAMSIZ 16 /* Linux IFNAMSIZ: 15 characters and the NUL */
#define TG_IPT_NO_ID (-1L) /* proxy uid or gid not set */

#define TG_IPT_CHAIN_INBOUND "TOLLGATE_INBOUND"
#define TG_IPT_CHAIN_IN_REDIRECT "TOLLGATE_IN_REDIRECT"
#define TG_IPT_CHAIN_OUTPUT "TOLLGATE_OUTPUT"
#define TG_IPT_CHAIN_OUT_REDIRECT "TOLLGATE_OUT_REDIRECT"

enum tg_ipt_ipv6 {
    TG_IPT_V6_AUTO, /* when /proc/net/if_inet6 shows a non-loopback address */
    TG_IPT_V6_ON,
    TG_IPT_V6_OFF,
};

struct tg_ipt_cidr {
    int family;    /* AF_INET or AF_INET6 */
    char text[64]; /* canonical "network/prefix", host bits cleared */
};

struct tg_iptables_opts {
    uint16_t inbound_port;  /* --inbound-port, default 15006 */
    uint16_t outbound_port; /* --outbound-port, default 15001 */
    uint16_t admin_port;    /* --admin-port, default 15000, never captured inbound; 0: none */
    long proxy_uid;         /* --proxy-uid, default 1337; TG_IPT_NO_ID: none */
    long proxy_gid;         /* --proxy-gid, default none */
    bool inbound_all;       /* --include-inbound-ports '*' (default); else the list below */
    uint16_t include_in[TG_IPT_MAX_PORTS];
    size_t n_include_in;
    uint16_t exclude_in[TG_IPT_MAX_PORTS]; /* --exclude-inbound-ports */
    size_t n_exclude_in;
    struct tg_ipt_cidr exclude_cidrs[TG_IPT_MAX_CIDRS]; /* --exclude-outbound-cidrs */
    size_t n_exclude_cidrs;
    uint16_t exclude_out[TG_IPT_MAX_PORTS]; /* --exclude-outbound-ports */
    size_t n_exclude_out;
    char exclude_ifaces[TG_IPT_MAX_IFACES][TG_IPT_IFNAMSIZ]; /* --exclude-interfaces */
    size_t n_exclude_ifaces;
    enum tg_ipt_ipv6 ipv6; /* --ipv6 auto|on|off */
    bool dry_run;          /* --dry-run: print, change nothing */
    bool clean;            /* --clean: remove our jumps and chains */
};

/* What `iptables-save -t nat` showed of ours: how many jumps into our chains there are
 * (exactly as we write them), and whether our chains exist. */
struct tg_iptables_state {
    unsigned in_jumps;  /* "-A PREROUTING -p tcp -j TOLLGATE_INBOUND" */
    unsigned out_jumps; /* "-A OUTPUT -p tcp -j TOLLGATE_OUTPUT" */
    unsigned chains;    /* of our four chains, how many exist */
};

/* Fills o with the defaults above. */
void tg_iptables_defaults(struct tg_iptables_opts *o);

/* Parses the arguments after "init-iptables" (argv[0] is the first option) into o, which
 * it first sets to the defaults. Options take "--opt VALUE" or "--opt=VALUE". 0, or
 * TG_EINVAL with one line in err naming the option and what is wrong. "--help" gives
 * TG_EAGAIN (the caller prints the usage). */
TG_MUST_USE int tg_iptables_parse(int argc, char *const *argv, struct tg_iptables_opts *o,
                                  char *err);

/* Reads `iptables-save -t nat` (or ip6tables-save) text; lines outside *nat are ignored. */
void tg_iptables_scan(const char *save_text, struct tg_iptables_state *st);

/* true when /proc/net/if_inet6 text lists an address that is not loopback. */
bool tg_iptables_v6_present(const char *if_inet6_text);

/* Renders the iptables-restore text for family (AF_INET or AF_INET6): to install (our
 * chains declared, flushed and filled; a jump from PREROUTING and OUTPUT appended only when
 * st shows none), or with o->clean to remove (every jump st counted, then our chains).
 * st NULL renders for an empty table (install: both jumps; clean: one of each). *out is
 * malloc'd and NUL-terminated; the caller frees it. 0 or TG_ENOMEM. */
TG_MUST_USE int tg_iptables_render(const struct tg_iptables_opts *o, int family,
                                   const struct tg_iptables_state *st, char **out);

/* The CLI verb: argv[1] is "init-iptables". Returns the process exit status: 0 done, 1 a
 * command failed (its stderr is passed through), 2 bad usage. */
int tg_iptables_main(int argc, char **argv);

#endif

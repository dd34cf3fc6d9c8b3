/* tg_config_*: the YAML configuration file, and tg_addr_parse / tg_duration_parse. Every
 * refusal must name the file, the line where there is one, and the key. */
#include <arpa/inet.h>
#include <check.h>
#include "check_main.h"
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tollgate/config.h"

/* A minimal valid file is ID + one listener. */
#define ID "identity: {cert: c.pem, key: k.pem, trust_bundle: ca.pem}\n"
#define IN1                                                                                        \
    "inbound:\n"                                                                                   \
    "  - listen: 127.0.0.1:8443\n"                                                                 \
    "    upstream: 127.0.0.1:8080\n"
#define OUT1                                                                                       \
    "outbound:\n"                                                                                  \
    "  - listen: 127.0.0.1:9000\n"                                                                 \
    "    upstream: 127.0.0.1:8443\n"                                                               \
    "    expect: [spiffe://mesh.local/ns/default/sa/web]\n"

#define CP                                                                                         \
    "control_plane:\n"                                                                             \
    "  address: 127.0.0.1:15010\n"                                                                 \
    "  ca: root.pem\n"                                                                             \
    "  token: token\n"                                                                             \
    "  server_ids: [spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp]\n"

/* Parses text, which must be valid, as the file name: the caller unrefs the result. */
static struct tg_config *parse_ok(const char *text, size_t len, const char *name)
{
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_msg(tg_config_parse(text, len, name, &c, err) == 0, "%s", err);
    return c;
}

/* want: NULL when the text is valid, else a substring of the error, which always starts
 * with the file name; each names the key and, where there is one, the line. */
static const struct {
    const char *yaml;
    const char *want;
} cases[] = {
    /* valid */
    {ID IN1, NULL},
    {ID OUT1, NULL},
    {ID IN1 OUT1, NULL},
    {"---\n" ID OUT1 "...\n", NULL},
    {ID "inbound: [{listen: '[::1]:8443', upstream: '[::1]:8080', allow: []}]\n", NULL},
    {ID IN1 "buffer_size: 65536\nworkers: 256\naccess_log: FALSE\nlog_level: debug\n", NULL},
    {ID IN1 "tls: {min_version: 1.2}\ntimeouts: {handshake: 250ms, idle: 3600, connect: 1m}\n",
     NULL},
    {ID IN1 "tls: {}\ntimeouts: {}\n", NULL},
    {ID IN1 "tls: {cipher_suites: [TLS13-AES256-GCM-SHA384]}\n", NULL},
    {ID "inbound: [{listen: '127.0.0.1:1', upstream: '127.0.0.1:2', limits: {max_connections: 5, "
        "connections_per_second: 100, burst: 200}}]\n",
     NULL},
    {ID "outbound: [{listen: '127.0.0.1:1', upstream: '127.0.0.1:2', expect: [spiffe://a/b], "
        "limits: {max_connections: 5}}]\n",
     NULL},
    {ID "inbound: [{listen: '127.0.0.1:1', upstream: '127.0.0.1:2', limits: {max_conns: 5}}]\n",
     "inbound[0].limits.max_conns: unknown key"},
    {ID "inbound: [{listen: '127.0.0.1:1', upstream: '127.0.0.1:2', limits: {burst: -1}}]\n",
     "inbound[0].limits.burst"},

    /* transparent listeners, inbound modes, mesh destinations */
    {ID "inbound: [{listen: '0.0.0.0:15006', transparent: true, mode: permissive}]\n", NULL},
    {ID "outbound: [{listen: '127.0.0.1:15001', transparent: true}]\n"
        "mesh:\n  outside: refuse\n  destinations:\n"
        "    - {address: 10.0.0.0/8, expect: [spiffe://mesh.local/ns/a/sa/b]}\n"
        "    - {address: 10.1.2.3, port: 8080, expect: [spiffe://mesh.local/ns/a/sa/c]}\n"
        "    - {address: 'fd00::/8', expect: [spiffe://mesh.local/ns/a/sa/d]}\n",
     NULL},
    {ID "inbound: [{listen: '0.0.0.0:15006', transparent: true, upstream: '127.0.0.1:1'}]\n",
     "t.yaml:2: inbound[0].upstream: not with transparent: true"},
    /* where a transparent inbound listener sends what it captured */
    {ID "inbound: [{listen: '0.0.0.0:15006', transparent: true, upstream: original}]\n", NULL},
    {ID "inbound: [{listen: '0.0.0.0:15006', transparent: true, upstream: loopback}]\n", NULL},
    {ID "inbound: [{listen: '127.0.0.1:1', upstream: loopback}]\n",
     "t.yaml:2: inbound[0].upstream: loopback only with transparent: true"},
    {ID "inbound: [{listen: '127.0.0.1:1', upstream: original}]\n",
     "t.yaml:2: inbound[0].upstream: original only with transparent: true"},
    {ID "inbound: [{listen: '0.0.0.0:15006', transparent: true, upstream: Loopback}]\n",
     "inbound[0].upstream: \"Loopback\" is not an address"},
    {ID "inbound: [{listen: '0.0.0.0:15006', transparent: true, upstream: local}]\n",
     "or, with transparent: true, original or loopback"},
    {ID "outbound: [{listen: '127.0.0.1:15001', transparent: true, upstream: loopback}]\n",
     "outbound[0].upstream: \"loopback\" is not an address"},
    /* plain-text callers past an allow list: only said where there is one */
    {ID IN1 "    mode: permissive\n    allow: [spiffe://mesh.local/a]\n"
            "    allow_unauthenticated: true\n",
     NULL},
    {ID IN1 "    allow_unauthenticated: false\n", NULL},
    /* tunnels: byte pipes only, so far; a stream's window is a buffer of 64 KiB or more */
    {ID "buffer_size: 16KiB\ninbound: [{listen: '0.0.0.0:15006', transparent: true, "
        "tunnels: true}]\n",
     "buffer_size: at least 64KiB with tunnels: true"},
    {ID "inbound: [{listen: '0.0.0.0:15006', transparent: true, tunnels: true}]\n", NULL},
    {ID "inbound: [{listen: '127.0.0.1:1', upstream: '127.0.0.1:2', tunnels: true, "
        "protocol: http}]\n",
     "t.yaml:2: inbound[0].tunnels: not with protocol: http yet"},
    {ID "inbound: [{listen: '127.0.0.1:1', upstream: '127.0.0.1:2', tunnels: true, "
        "proxy_protocol: true}]\n",
     "inbound[0].tunnels: not with proxy_protocol: true yet"},
    /* tunnel: how an outbound listener and a mesh destination connect; tunnel_pool: limits */
    {ID OUT1 "    tunnel: auto\n", NULL},
    {ID "outbound: [{listen: '127.0.0.1:15001', transparent: true, tunnel: on}]\n"
        "mesh:\n  destinations:\n"
        "    - {address: 10.0.0.0/8, expect: [spiffe://a/b], tunnel: off}\n"
        "    - {address: 10.1.0.0/16, expect: [spiffe://a/b], protocol: http, tunnel: auto}\n"
        "    - {address: 10.2.0.0/16, expect: [spiffe://a/b], tunnel: 'on'}\n"
        "tunnel_pool: {streams_per_connection: 1000, connections_per_destination: 64, "
        "idle_timeout: 1h}\n",
     NULL},
    {ID OUT1 "tunnel_pool: {streams_per_connection: 1, connections_per_destination: 1, "
             "idle_timeout: 1s}\n",
     NULL},
    {ID OUT1 "tunnel_pool: {}\n", NULL},
    {ID OUT1 "tunnel_pool: 100\n", "t.yaml:6: tunnel_pool: want a mapping"},
    {ID OUT1 "    tunnel: yes\n",
     "t.yaml:6: outbound[0].tunnel: \"yes\" is not a tunnel mode (want off, auto or on)"},
    {ID OUT1 "    tunnel: On\n", "outbound[0].tunnel: \"On\" is not a tunnel mode"},
    {ID OUT1 "    tunnel: true\n", "outbound[0].tunnel: \"true\" is not a tunnel mode"},
    {ID OUT1 "    tunnel:\n", "t.yaml:6: outbound[0].tunnel: has no value"},
    {ID OUT1 "    tunnels: true\n",
     "t.yaml:6: outbound[0].tunnels: an inbound listener's key (it accepts tunnels); here write "
     "tunnel: off, auto or on"},
    {ID IN1 "    tunnel: auto\n",
     "t.yaml:5: inbound[0].tunnel: not an inbound key (an inbound listener accepts tunnels with "
     "tunnels: true"},
    {ID OUT1 "mesh: {destinations: [{address: 10.0.0.1, expect: [spiffe://a/b], tunnels: on}]}\n",
     "t.yaml:6: mesh.destinations[0].tunnels: an inbound listener's key"},
    {ID OUT1
     "mesh: {destinations: [{address: 10.0.0.1, expect: [spiffe://a/b], tunnel: always}]}\n",
     "t.yaml:6: mesh.destinations[0].tunnel: \"always\" is not a tunnel mode (want off, auto or "
     "on)"},
    {ID OUT1 "mesh:\n  destinations:\n"
             "    - {address: 10.0.0.1, expect: [spiffe://a/b], protocol: tcp}\n"
             "    - {address: 10.0.0.2, port: 80, expect: [spiffe://a/b],\n"
             "       tunnel: on, protocol: http}\n",
     "t.yaml:10: mesh.destinations[1].tunnel: on is not for a protocol: http destination yet "
     "(HTTP ports are not carried over tunnels: want auto or off)"},
    {ID IN1 "    mode: permissive\n    allow_unauthenticated: true\n",
     "t.yaml:3: inbound[0].allow_unauthenticated: only with an allow list"},
    {ID IN1 "    allow: [spiffe://mesh.local/a]\n    allow_unauthenticated: yes\n",
     "t.yaml:6: inbound[0].allow_unauthenticated: \"yes\" is not true or false"},
    {ID "outbound: [{listen: '127.0.0.1:15001', transparent: true, expect: "
        "[spiffe://mesh.local/a]}]\n",
     "t.yaml:2: outbound[0].expect: not with transparent: true"},
    {ID IN1 "    mode: lax\n", "t.yaml:5: inbound[0].mode: \"lax\" is not a mode"},
    {ID OUT1 "mesh: {outside: open}\n", "t.yaml:6: mesh.outside: \"open\" is not passthrough"},
    {ID OUT1 "mesh: {destinations: [{address: 10.0.0.1/8, expect: [spiffe://m/a]}]}\n",
     "t.yaml:6: mesh.destinations[0].address: \"10.0.0.1/8\" has host bits set beyond /8"},
    {ID OUT1 "mesh: {destinations: [{address: 10.0.0.0/33, expect: [spiffe://m/a]}]}\n",
     "mesh.destinations[0].address: \"10.0.0.0/33\": prefix length must be 0..32"},
    {ID OUT1 "mesh: {destinations: [{address: example.com, expect: [spiffe://m/a]}]}\n",
     "mesh.destinations[0].address: \"example.com\" is not an address or CIDR"},
    {ID OUT1 "mesh: {destinations: [{address: 10.0.0.1, port: 0, expect: [spiffe://m/a]}]}\n",
     "mesh.destinations[0].port: 0 is out of range (want 1..65535)"},
    {ID OUT1 "mesh: {destinations: [{address: 10.0.0.1}]}\n",
     "mesh.destinations[0].expect: missing"},
    {ID OUT1 "mesh: {destinations: [{address: 10.0.0.1, expect: [spiffe://m/a], x: 1}]}\n",
     "mesh.destinations[0].x: unknown key"},

    /* control_plane: the identity comes from the control plane */
    {CP OUT1, NULL},
    {"identity: {max_chain_depth: 3}\n" CP OUT1, NULL},
    {"identity: {trust_domains: [], max_chain_depth: 3}\n" CP OUT1, NULL},
    {"identity: {trust_domains: {partner.example: p.pem}}\n" CP OUT1,
     "t.yaml:1: identity.trust_domains: not used with control_plane (its trust bundle names"},
    {"control_plane: {address: 127.0.0.1:15010, ca: r.pem, token: t,\n"
     "  server_ids: [spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp],\n"
     "  node_id: n1, namespace: default, service_account: web, labels: {app: web},\n"
     "  renew_fraction: 0.25}\n" OUT1,
     NULL},
    {CP "  pod_info: /var/run/tollgate/podinfo\n  service_account: web\n" OUT1, NULL},
    {CP "  pod_info: /var/run/tollgate/podinfo\n  labels: {app: web}\n" OUT1,
     "t.yaml:2: control_plane: pod_info excludes namespace and labels"},
    {CP "  pod_info: /var/run/tollgate/podinfo\n  namespace: default\n" OUT1,
     "control_plane: pod_info excludes namespace and labels"},
    {ID CP OUT1, "t.yaml:1: identity.cert: not used with control_plane"},
    {"identity: {crl: [x.crl]}\n" CP OUT1, "t.yaml:1: identity.crl: not used with control_plane"},
    {"identity: {intermediates: i.pem}\n" CP OUT1,
     "t.yaml:1: identity.intermediates: not used with control_plane"},
    {"control_plane: {ca: r.pem, token: t, server_ids: [spiffe://m/cp]}\n" OUT1,
     "t.yaml:1: control_plane.address: missing (required)"},
    {"control_plane: {address: 127.0.0.1:1, token: t, server_ids: [spiffe://m/cp]}\n" OUT1,
     "t.yaml:1: control_plane.ca: missing (required)"},
    {"control_plane: {address: 127.0.0.1:1, ca: r, server_ids: [spiffe://m/cp]}\n" OUT1,
     "t.yaml:1: control_plane.token: missing (required)"},
    {"control_plane: {address: 127.0.0.1:1, ca: r, token: t}\n" OUT1,
     "t.yaml:1: control_plane.server_ids: missing (required)"},
    {"control_plane: {address: 127.0.0.1:1, ca: r, token: t, server_ids: []}\n" OUT1,
     "control_plane.server_ids: is empty"},
    {"control_plane: {address: 127.0.0.1:1, ca: r, token: t, server_ids: [http://x]}\n" OUT1,
     "control_plane.server_ids[0]"},
    {"control_plane: {address: cp_example:15010, ca: r, token: t, server_ids: "
     "[spiffe://m/c]}\n" OUT1,
     "t.yaml:1: control_plane.address"},
    {"control_plane: {address: 127.0.0.1:0, ca: r, token: t, server_ids: [spiffe://m/c]}\n" OUT1,
     "t.yaml:1: control_plane.address"},
    {"control_plane: {address: 127.0.0.1:1, ca: r, token: t, server_ids: [spiffe://m/c],\n"
     "  renew_fraction: 1.5}\n" OUT1,
     "t.yaml:2: control_plane.renew_fraction: \"1.5\" is not a fraction"},
    {"control_plane: {address: 127.0.0.1:1, ca: r, token: t, server_ids: [spiffe://m/c],\n"
     "  renew_fraction: 0}\n" OUT1,
     "control_plane.renew_fraction: \"0\" is not a fraction"},
    {"control_plane: {address: 127.0.0.1:1, ca: r, token: t, server_ids: [spiffe://m/c],\n"
     "  renew_fraction: half}\n" OUT1,
     "control_plane.renew_fraction: \"half\" is not a fraction"},
    {"control_plane: {address: 127.0.0.1:1, ca: r, token: t, server_ids: [spiffe://m/c],\n"
     "  nodeid: x}\n" OUT1,
     "t.yaml:2: control_plane.nodeid: unknown key"},
    {"control_plane: {address: 127.0.0.1:1, ca: r, token: t, server_ids: [spiffe://m/c],\n"
     "  node_id: \"\"}\n" OUT1,
     "control_plane.node_id: is empty"},
    {"control_plane: [127.0.0.1:1]\n" OUT1, "t.yaml:1: control_plane"},

    /* required keys */
    {OUT1, "t.yaml: identity: missing (required)"},
    {"identity:\n  key: k\n  trust_bundle: b\n" OUT1, "t.yaml:1: identity.cert: missing"},
    {"identity:\n  cert: c\n  trust_bundle: b\n" OUT1, "t.yaml:1: identity.key: missing"},
    {"identity:\n  cert: c\n  key: k\n" OUT1, "t.yaml:1: identity.trust_bundle: missing"},
    {ID "inbound:\n  - upstream: 127.0.0.1:8080\n", "t.yaml:3: inbound[0].listen: missing"},
    {ID "inbound:\n  - listen: 127.0.0.1:8443\n", "t.yaml:3: inbound[0].upstream: missing"},
    {ID IN1 "  - listen: 127.0.0.1:1\n", "t.yaml:5: inbound[1].upstream: missing"},
    {ID "outbound:\n  - listen: 127.0.0.1:9000\n    upstream: 127.0.0.1:8443\n",
     "t.yaml:3: outbound[0].expect: missing (required unless transparent: true)"},
    {ID, "t.yaml: inbound, outbound: no listeners (want at least one)"},
    {ID "inbound: []\noutbound: []\n", "t.yaml: inbound, outbound: no listeners"},

    /* unknown keys at each level */
    {ID OUT1 "kye: 1\n", "t.yaml:6: kye: unknown key"},
    {"identity:\n  cert: c\n  kye: k\n" OUT1, "t.yaml:3: identity.kye: unknown key"},
    {ID OUT1 "tls:\n  min_versoin: \"1.3\"\n", "t.yaml:7: tls.min_versoin: unknown key"},
    {ID OUT1 "timeouts: {idel: 1s}\n", "t.yaml:6: timeouts.idel: unknown key"},
    {ID IN1 "    port: 1\n", "t.yaml:5: inbound[0].port: unknown key"},
    {ID OUT1 "    allow: []\n", "t.yaml:6: outbound[0].allow: unknown key"},
    {ID OUT1 "\"a b\": 1\n", "t.yaml:6: \"a b\": unknown key"},
    {ID OUT1 "<<: {workers: 1}\n", "t.yaml:6: \"<<\": unknown key"},

    /* wrong types */
    {ID OUT1 "workers: [1]\n", "t.yaml:6: workers: want a single value, not a list"},
    {ID OUT1 "workers: {a: 1}\n", "t.yaml:6: workers: want a single value, not a mapping"},
    {ID OUT1 "workers: \"4\"\n", "t.yaml:6: workers: want a number, not a quoted string"},
    {ID OUT1 "workers: -1\n", "t.yaml:6: workers: \"-1\" is not a whole number (want 0..256)"},
    {ID OUT1 "workers: 4.0\n", "t.yaml:6: workers: \"4.0\" is not a whole number"},
    {ID OUT1 "workers: 257\n", "t.yaml:6: workers: 257 is out of range (want 0..256)"},
    {ID OUT1 "workers: 99999999999999999999999\n", "t.yaml:6: workers: \"999"},
    {ID OUT1 "workers:\n", "t.yaml:6: workers: has no value"},
    {ID OUT1 "workers: ~\n", "t.yaml:6: workers: has no value"},
    {"identity: certs\n" OUT1, "t.yaml:1: identity: want a mapping, not a single value"},
    {"identity: [a]\n" OUT1, "t.yaml:1: identity: want a mapping, not a list"},
    {"identity:\n" OUT1, "t.yaml:1: identity: has no value (want a mapping)"},
    {ID "inbound: {listen: 127.0.0.1:1}\n", "t.yaml:2: inbound: want a list of listeners"},
    {ID "inbound:\n", "t.yaml:2: inbound: has no value (want a list of listeners)"},
    {ID "inbound: [a]\n", "t.yaml:2: inbound[0]: want a mapping, not a single value"},
    {ID IN1 "    allow: spiffe://mesh.local/a\n",
     "t.yaml:5: inbound[0].allow: want a list, not a single value"},
    {ID IN1 "    allow: [[spiffe://mesh.local/a]]\n",
     "t.yaml:5: inbound[0].allow[0]: want a single value, not a list"},
    {ID IN1 "    allow: [~]\n", "t.yaml:5: inbound[0].allow[0]: has no value"},
    {ID IN1 "    name: [a]\n", "t.yaml:5: inbound[0].name: want a single value, not a list"},
    {ID OUT1 "access_log: yes\n", "t.yaml:6: access_log: \"yes\" is not true or false"},
    {ID OUT1 "access_log: \"true\"\n", "t.yaml:6: access_log: want true or false, not a quoted"},
    {ID OUT1 "log_level: verbose\n", "t.yaml:6: log_level: \"verbose\" is not a log level"},
    {ID OUT1 "log_level: INFO\n", "t.yaml:6: log_level: \"INFO\" is not a log level"},
    {"identity: {cert: c, key: k, trust_bundle: b, max_chain_depth: 0}\n" OUT1,
     "t.yaml:1: identity.max_chain_depth: 0 is out of range (want 1..16)"},
    {"identity: {cert: c, key: k, trust_bundle: b, max_chain_depth: 17}\n" OUT1,
     "t.yaml:1: identity.max_chain_depth: 17 is out of range"},
    {"identity: {cert: c, key: k, trust_bundle: b, trust_domains: x.local}\n" OUT1,
     "t.yaml:1: identity.trust_domains: want a mapping of trust domains to bundle files, not a "
     "single value"},
    /* the list it used to be: which domains, not which roots vouch for each */
    {"identity: {cert: c, key: k, trust_bundle: b, trust_domains: [partner.example]}\n" OUT1,
     "t.yaml:1: identity.trust_domains: a list of names no longer says which roots vouch for "
     "each: write {DOMAIN: ITS-BUNDLE.pem, ...} and keep only our own roots in "
     "identity.trust_bundle"},
    {"identity: {cert: c, key: k, trust_bundle: b, trust_domains: {p.example: [a.pem]}}\n" OUT1,
     "t.yaml:1: identity.trust_domains.p.example: want a single value, not a list"},
    {"identity: {cert: c, key: k, trust_bundle: b, trust_domains: {p.example: }}\n" OUT1,
     "t.yaml:1: identity.trust_domains.p.example: has no value"},
    {"identity:\n  cert: c\n  key: k\n  trust_bundle: b\n"
     "  trust_domains: {p.example: a.pem, p.example: b.pem}\n" OUT1,
     "t.yaml:5: identity.trust_domains.p.example: duplicate key (first at line 5)"},
    {"identity: {cert: [c], key: k, trust_bundle: b}\n" OUT1,
     "t.yaml:1: identity.cert: want a single value, not a list"},
    {"identity: {cert: \"\", key: k, trust_bundle: b}\n" OUT1,
     "t.yaml:1: identity.cert: is empty (want a file path)"},
    {"? [a]\n: b\n", "t.yaml:1: a key must be a name, not a list"},
    {ID OUT1 "identity2: {cert: c}\n", "t.yaml:6: identity2: unknown key"},

    /* sizes */
    {ID OUT1 "buffer_size: 1KiB\n",
     "t.yaml:6: buffer_size: \"1KiB\" is out of range (want 4096..16777216 bytes)"},
    {ID OUT1 "buffer_size: 32MiB\n", "t.yaml:6: buffer_size: \"32MiB\" is out of range"},
    {ID OUT1 "buffer_size: 4095\n", "t.yaml:6: buffer_size: \"4095\" is out of range"},
    {ID OUT1 "buffer_size: 64KB\n", "t.yaml:6: buffer_size: \"64KB\" is not a size"},
    {ID OUT1 "buffer_size: 64 KiB\n", "t.yaml:6: buffer_size: \"64 KiB\" is not a size"},
    {ID OUT1 "buffer_size: 99999999999999999MiB\n", "t.yaml:6: buffer_size: \"9999"},

    /* addresses and ports */
    {ID "inbound:\n  - listen: 127.0.0.1:8443\n    upstream: 127.0.0.1\n",
     "t.yaml:4: inbound[0].upstream: \"127.0.0.1\" is not an address (want IP:PORT)"},
    {ID "inbound:\n  - listen: localhost:8443\n    upstream: 127.0.0.1:80\n",
     "t.yaml:3: inbound[0].listen: \"localhost:8443\" is not an address (host must be a numeric "
     "IP"},
    {ID "inbound:\n  - listen: 300.0.0.1:8443\n    upstream: 127.0.0.1:80\n",
     "t.yaml:3: inbound[0].listen: \"300.0.0.1:8443\" is not an address (not a numeric IPv4 host)"},
    {ID "inbound:\n  - listen: ::1:8443\n    upstream: 127.0.0.1:80\n",
     "t.yaml:3: inbound[0].listen: \"::1:8443\" is not an address (IPv6 goes in brackets"},
    {ID "inbound:\n  - listen: 127.0.0.1:0\n    upstream: 127.0.0.1:80\n",
     "t.yaml:3: inbound[0].listen: \"127.0.0.1:0\": port must be a number 1..65535"},
    {ID "inbound:\n  - listen: 127.0.0.1:65536\n    upstream: 127.0.0.1:80\n",
     "t.yaml:3: inbound[0].listen: \"127.0.0.1:65536\": port must be"},
    {ID "inbound:\n  - listen: 127.0.0.1:https\n    upstream: 127.0.0.1:80\n",
     "t.yaml:3: inbound[0].listen: \"127.0.0.1:https\": port must be"},
    {ID OUT1 "admin: 127.0.0.1:0\n", "t.yaml:6: admin: \"127.0.0.1:0\": port must be"},
    {ID OUT1 "admin: \"[::1]\"\n", "t.yaml:6: admin: \"[::1]\" is not an address"},

    /* durations */
    {ID OUT1 "timeouts: {idle: 10x}\n", "t.yaml:6: timeouts.idle: \"10x\" is not a duration"},
    {ID OUT1 "timeouts: {idle: 0s}\n", "t.yaml:6: timeouts.idle: must be more than 0"},
    {ID OUT1 "timeouts: {connect: 0}\n", "t.yaml:6: timeouts.connect: must be more than 0"},
    {ID OUT1 "timeouts: {connect: -1s}\n", "t.yaml:6: timeouts.connect: \"-1s\" is not a"},
    {ID OUT1 "timeouts: {handshake: 1.5s}\n", "t.yaml:6: timeouts.handshake: \"1.5s\" is not"},
    {ID OUT1 "timeouts: {handshake: 1h30m}\n", "t.yaml:6: timeouts.handshake: \"1h30m\" is not"},
    {ID OUT1 "timeouts: {handshake: 9999999999999999h}\n",
     "t.yaml:6: timeouts.handshake: \"9999999999999999h\" is not a duration"},
    {ID OUT1 "timeouts:\n  handshake:\n", "t.yaml:7: timeouts.handshake: has no value"},

    /* SPIFFE IDs and trust domains */
    {ID IN1 "    allow: [spiffe://mesh.local/a, spiffe://mesh.local/../b]\n",
     "t.yaml:5: inbound[0].allow[1]: \"spiffe://mesh.local/../b\" is not a SPIFFE ID: path "
     "segment \"..\""},
    {ID IN1 "    allow: [\"spiffe://mesh.local/a?x\"]\n",
     "t.yaml:5: inbound[0].allow[0]: \"spiffe://mesh.local/a?x\" is not a SPIFFE ID: query"},
    {ID "outbound:\n  - listen: 127.0.0.1:9000\n    upstream: 127.0.0.1:8443\n"
        "    expect: [spiffe://Mesh.local/a]\n",
     "t.yaml:5: outbound[0].expect[0]: \"spiffe://Mesh.local/a\" is not a SPIFFE ID: trust "
     "domain must be lowercase"},
    {ID "outbound:\n  - listen: 127.0.0.1:9000\n    upstream: 127.0.0.1:8443\n"
        "    expect: [web]\n",
     "t.yaml:5: outbound[0].expect[0]: \"web\" is not a SPIFFE ID"},
    {ID "outbound:\n  - listen: 127.0.0.1:9000\n    upstream: 127.0.0.1:8443\n"
        "    expect: [spiffe://mesh.local]\n",
     "t.yaml:5: outbound[0].expect[0]: \"spiffe://mesh.local\" names a trust domain, not a "
     "workload"},
    {ID "outbound:\n  - listen: 127.0.0.1:9000\n    upstream: 127.0.0.1:8443\n"
        "    expect: []\n",
     "t.yaml:5: outbound[0].expect: is empty (want at least 1 SPIFFE ID)"},
    {ID "outbound:\n  - listen: 127.0.0.1:9000\n    upstream: 127.0.0.1:8443\n"
        "    expect:\n",
     "t.yaml:5: outbound[0].expect: has no value (want a list)"},
    {"identity: {cert: c, key: k, trust_bundle: b, trust_domains: {ok.local: a, Other.local: "
     "b}}\n" OUT1,
     "t.yaml:1: identity.trust_domains.Other.local: \"Other.local\" is not a trust domain name"},
    {"identity: {cert: c, key: k, trust_bundle: b, trust_domains: {\"spiffe://x\": a}}\n" OUT1,
     "t.yaml:1: identity.trust_domains.spiffe://x: \"spiffe://x\": want the trust domain name"},
    {"identity: {cert: c, key: k, trust_bundle: b, trust_domains: {a/b: a}}\n" OUT1,
     "t.yaml:1: identity.trust_domains.a/b: \"a/b\" is not a trust domain name"},
    {"identity: {cert: c, key: k, trust_bundle: b, trust_domains: {\"\": a}}\n" OUT1,
     "t.yaml:1: identity.trust_domains: an empty name"},

    /* TLS versions */
    {ID OUT1 "tls: {min_version: 1.1}\n",
     "t.yaml:6: tls.min_version: \"1.1\" is not a TLS version"},
    {ID OUT1 "tls: {min_version: \"1.0\"}\n",
     "t.yaml:6: tls.min_version: \"1.0\" is not a TLS version"},
    {ID OUT1 "tls: {min_version: 1.4}\n", "t.yaml:6: tls.min_version: \"1.4\" is not a TLS"},
    {ID OUT1 "tls: {min_version: 1.30}\n", "t.yaml:6: tls.min_version: \"1.30\" is not a TLS"},

    /* duplicate keys */
    {ID OUT1 "workers: 1\nworkers: 2\n", "t.yaml:7: workers: duplicate key (first at line 6)"},
    {"identity:\n  cert: a\n  key: k\n  cert: b\n" OUT1,
     "t.yaml:4: identity.cert: duplicate key (first at line 2)"},
    {ID IN1 "    upstream: 127.0.0.1:8081\n",
     "t.yaml:5: inbound[0].upstream: duplicate key (first at line 4)"},
    {ID OUT1 OUT1, "t.yaml:6: outbound: duplicate key (first at line 2)"},
    {ID OUT1 "tls: {}\ntls: {}\n", "t.yaml:7: tls: duplicate key (first at line 6)"},

    /* names and listen addresses unique across all listeners */
    {ID IN1 "    name: web\n" OUT1 "    name: web\n",
     "t.yaml:10: outbound[0].name: name \"web\" is already used by inbound[0]"},
    {ID IN1 "    name: a\n  - name: a\n    listen: 127.0.0.1:1\n    upstream: 127.0.0.1:2\n",
     "t.yaml:6: inbound[1].name: name \"a\" is already used by inbound[0]"},
    {ID IN1 "    name: web in\n", "t.yaml:5: inbound[0].name: \"web in\" is not a name"},
    {ID IN1 "    name: \"\"\n", "t.yaml:5: inbound[0].name: \"\" is not a name"},
    {ID IN1 "    name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
     "t.yaml:5: inbound[0].name: longer than 64 characters"},
    {ID IN1 "  - listen: 127.0.0.1:8443\n    upstream: 127.0.0.1:1\n",
     "t.yaml:5: inbound[1].listen: 127.0.0.1:8443 is already used by inbound[0].listen"},
    {ID IN1 "outbound:\n  - listen: 127.0.0.1:8443\n    upstream: 127.0.0.1:1\n    expect: "
            "[spiffe://m/a]\n",
     "t.yaml:6: outbound[0].listen: 127.0.0.1:8443 is already used by inbound[0].listen"},
    {ID OUT1 "inbound:\n  - listen: 0.0.0.0:9000\n    upstream: 127.0.0.1:1\n",
     "t.yaml:7: inbound[0].listen: 0.0.0.0:9000 is already used by outbound[0].listen "
     "(127.0.0.1:9000)"},
    {ID OUT1 "admin: 127.0.0.1:9000\n",
     "t.yaml:6: admin: 127.0.0.1:9000 is already used by outbound[0].listen"},
    {ID "admin: 127.0.0.1:9000\n" OUT1,
     "t.yaml:4: outbound[0].listen: 127.0.0.1:9000 is already used by admin"},
    {ID "inbound:\n  - {listen: '[::1]:1', upstream: '[::1]:2'}\n"
        "  - {listen: '[0:0::1]:1', upstream: '[::1]:2'}\n",
     "t.yaml:4: inbound[1].listen: [0:0::1]:1 is already used by inbound[0].listen"},
    {ID IN1 "  - listen: 127.0.0.1:8444\n    upstream: 127.0.0.1:8080\n", NULL},
    {ID "outbound:\n  - listen: 127.0.0.1:9000\n    upstream: 127.0.0.1:8443\n"
        "    expect: [spiffe://m/a]\n    sni: 10.0.0.1\n",
     "t.yaml:6: outbound[0].sni: \"10.0.0.1\" is an IP address"},
    {ID "outbound:\n  - listen: 127.0.0.1:9000\n    upstream: 127.0.0.1:8443\n"
        "    expect: [spiffe://m/a]\n    sni: \"a b\"\n",
     "t.yaml:6: outbound[0].sni: \"a b\" is not a host name"},

    /* YAML itself */
    {"", "t.yaml: file is empty"},
    {"# only a comment\n", "t.yaml: file is empty"},
    {"---\n", "t.yaml:2: has no value (want a mapping of settings at the top)"},
    {"- a\n- b\n", "t.yaml:1: want a mapping of settings at the top, not a list"},
    {ID OUT1 "---\nworkers: 1\n", "t.yaml:6: a second YAML document (want only one)"},
    {ID OUT1 "log_level: \"info\n",
     "t.yaml:7: YAML syntax error: found unexpected end of stream (while scanning a quoted "
     "scalar at line 6)"},
    {ID OUT1 "workers: 1\n\tbad: x\n", "t.yaml:7: YAML syntax error: found a tab character"},
    {ID IN1 "   - listen: 127.0.0.1:1\n",
     "t.yaml:5: YAML syntax error: did not find expected '-' indicator (while parsing a block "
     "collection at line 3)"},
    {"identity: {cert: c\n", "t.yaml:2: YAML syntax error:"},
    {ID "inbound: [{listen: 127.0.0.1:1, upstream: 127.0.0.1:2\n",
     "t.yaml:3: YAML syntax error: did not find expected ',' or '}'"},
    {"identity: &id {cert: c, key: k, trust_bundle: b}\n", "t.yaml:1: identity: anchors"},
    {ID OUT1 "log_level: *x\n", "t.yaml:6: log_level: aliases"},
    {ID OUT1 "log_level: !!str info\n", "t.yaml:6: log_level: tags"},
    {"identity: {cert: \"a\\0b\", key: k, trust_bundle: b}\n" OUT1,
     "t.yaml:1: identity.cert: contains a NUL byte"},
    {ID OUT1 "log_level: \"\\xff\"\n", "t.yaml:6: log_level: \"\xc3\xbf\" is not a log level"},
    {ID OUT1 "log_level: \xff\n", "t.yaml: byte 187: invalid leading UTF-8 octet"},
    {ID OUT1 "log_level: a\tb\x01\n", "t.yaml: byte"},
};

static const char *const full_yaml =
    "# every key\n"
    "admin: 127.0.0.1:15000\n"
    "workers: 3\n"
    "log_level: warn\n"
    "access_log: false\n"
    "buffer_size: 1MiB\n"
    "identity:\n"
    "  cert: certs/web.pem\n"
    "  key: /abs/web.key\n"
    "  trust_bundle: certs/ca.pem\n"
    "  trust_domains:\n"
    "    other.local: other.pem\n"
    "    third.local: /abs/third.pem\n"
    "  max_chain_depth: 7\n"
    "tls:\n"
    "  min_version: \"1.2\"\n"
    "timeouts:\n"
    "  handshake: 250ms\n"
    "  idle: 5m\n"
    "  connect: 2\n"
    "inbound:\n"
    "  - name: web-in\n"
    "    listen: 127.0.0.1:8443\n"
    "    upstream: 127.0.0.1:8080\n"
    "    allow: [spiffe://mesh.local/ns/default/sa/api, spiffe://other.local/x]\n"
    "  - listen: '[::1]:8443'\n"
    "    upstream: '[::1]:8080'\n"
    "outbound:\n"
    "  - name: api-out\n"
    "    listen: 127.0.0.1:9000\n"
    "    upstream: 10.0.0.7:8443\n"
    "    expect: [spiffe://mesh.local/ns/default/sa/web]\n"
    "    sni: web.default\n"
    "  - listen: 127.0.0.1:9001\n"
    "    upstream: 10.0.0.8:8443\n"
    "    expect: [spiffe://mesh.local/a, spiffe://mesh.local/b]\n";

static void assert_addr(const struct tg_addr *a, int family, const char *ip, int port,
                        const char *text)
{
    char buf[INET6_ADDRSTRLEN];

    ck_assert_int_eq(a->ss.ss_family, family);
    ck_assert_str_eq(a->text, text);
    if (family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;

        ck_assert_uint_eq(a->len, sizeof(*sin));
        ck_assert_int_eq(ntohs(sin->sin_port), port);
        ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;

        ck_assert_uint_eq(a->len, sizeof(*sin6));
        ck_assert_int_eq(ntohs(sin6->sin6_port), port);
        ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
    }
    ck_assert_str_eq(buf, ip);
}

START_TEST(test_config_table)
{
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";
    int rc = tg_config_parse(cases[_i].yaml, strlen(cases[_i].yaml), "t.yaml", &c, err);

    if (cases[_i].want == NULL) {
        ck_assert_msg(rc == 0, "case %d refused: %s", _i, err);
        ck_assert_ptr_nonnull(c);
        tg_config_unref(c);
        return;
    }
    ck_assert_msg(rc == TG_ECONFIG, "case %d: rc %d, want TG_ECONFIG (err: %s)", _i, rc, err);
    ck_assert_msg(strncmp(err, "t.yaml", 6) == 0, "case %d: err does not name the file: %s", _i,
                  err);
    ck_assert_msg(strstr(err, cases[_i].want) != NULL, "case %d:\n  err:  %s\n  want: %s", _i, err,
                  cases[_i].want);
    ck_assert_msg(strchr(err, '\n') == NULL, "case %d: err is not one line", _i);
}
END_TEST

START_TEST(test_config_full_file_sets_every_field)
{
    struct tg_config *c = parse_ok(full_yaml, strlen(full_yaml), "conf/t.yaml");

    ck_assert_str_eq(c->path, "conf/t.yaml");
    assert_addr(&c->admin, AF_INET, "127.0.0.1", 15000, "127.0.0.1:15000");
    ck_assert_uint_eq(c->workers, 3);
    ck_assert_int_eq(c->log_level, TG_LOG_WARN);
    ck_assert(!c->access_log);
    ck_assert_uint_eq(c->buffer_size, 1 << 20);
    ck_assert_str_eq(c->cert_path, "conf/certs/web.pem"); /* relative to the file */
    ck_assert_str_eq(c->key_path, "/abs/web.key");        /* absolute stays */
    ck_assert_str_eq(c->bundle_path, "conf/certs/ca.pem");
    ck_assert_uint_eq(c->trust_domains.n, 2);
    ck_assert_str_eq(c->trust_domains.v[0], "other.local");
    ck_assert_str_eq(c->trust_domains.v[1], "third.local");
    ck_assert_uint_eq(c->trust_domain_bundles.n, 2);
    ck_assert_str_eq(c->trust_domain_bundles.v[0], "conf/other.pem"); /* relative to the file */
    ck_assert_str_eq(c->trust_domain_bundles.v[1], "/abs/third.pem");
    ck_assert_uint_eq(c->max_chain_depth, 7);
    ck_assert(c->allow_tls12);
    ck_assert_uint_eq(c->handshake_timeout_ms, 250);
    ck_assert_uint_eq(c->idle_timeout_ms, 5 * 60 * 1000);
    ck_assert_uint_eq(c->connect_timeout_ms, 2000);

    ck_assert_uint_eq(c->n_inbound, 2);
    ck_assert_str_eq(c->inbound[0].name, "web-in");
    assert_addr(&c->inbound[0].listen, AF_INET, "127.0.0.1", 8443, "127.0.0.1:8443");
    assert_addr(&c->inbound[0].upstream, AF_INET, "127.0.0.1", 8080, "127.0.0.1:8080");
    ck_assert_uint_eq(c->inbound[0].allow.n, 2);
    ck_assert_str_eq(c->inbound[0].allow.v[0], "spiffe://mesh.local/ns/default/sa/api");
    ck_assert_str_eq(c->inbound[0].allow.v[1], "spiffe://other.local/x");
    ck_assert_str_eq(c->inbound[1].name, "in-[::1]:8443"); /* default name */
    assert_addr(&c->inbound[1].listen, AF_INET6, "::1", 8443, "[::1]:8443");
    assert_addr(&c->inbound[1].upstream, AF_INET6, "::1", 8080, "[::1]:8080");
    ck_assert_uint_eq(c->inbound[1].allow.n, 0);

    ck_assert_uint_eq(c->n_outbound, 2);
    ck_assert_str_eq(c->outbound[0].name, "api-out");
    assert_addr(&c->outbound[0].listen, AF_INET, "127.0.0.1", 9000, "127.0.0.1:9000");
    assert_addr(&c->outbound[0].upstream, AF_INET, "10.0.0.7", 8443, "10.0.0.7:8443");
    ck_assert_uint_eq(c->outbound[0].expect.n, 1);
    ck_assert_str_eq(c->outbound[0].expect.v[0], "spiffe://mesh.local/ns/default/sa/web");
    ck_assert_str_eq(c->outbound[0].sni, "web.default");
    ck_assert_str_eq(c->outbound[1].name, "out-127.0.0.1:9001");
    ck_assert_uint_eq(c->outbound[1].expect.n, 2);
    ck_assert_str_eq(c->outbound[1].expect.v[1], "spiffe://mesh.local/b");
    ck_assert_ptr_null(c->outbound[1].sni);
    tg_config_unref(c);
}
END_TEST

/* Captured inbound goes to the original destination unless the listener says loopback;
 * original is the same as no upstream at all; an allow list lets plain text in only when
 * allow_unauthenticated says so. */
START_TEST(test_config_inbound_upstream_and_unauthenticated)
{
    static const char yaml[] = ID "inbound:\n"
                                  "  - {listen: '0.0.0.0:15006', transparent: true}\n"
                                  "  - {listen: '0.0.0.0:15007', transparent: true, upstream: "
                                  "original}\n"
                                  "  - {listen: '[::]:15006', transparent: true, upstream: "
                                  "loopback,\n"
                                  "     mode: permissive, allow: [spiffe://mesh.local/a],\n"
                                  "     allow_unauthenticated: true}\n";
    struct tg_config *c = parse_ok(yaml, strlen(yaml), "t.yaml");

    ck_assert_uint_eq(c->n_inbound, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_uint_eq(c->inbound[i].upstream.len, 0);
        ck_assert(c->inbound[i].upstream_loopback == (i == 2));
        ck_assert(c->inbound[i].allow_unauth == (i == 2));
    }
    ck_assert_str_eq(c->inbound[0].upstream.text, c->inbound[1].upstream.text);
    tg_config_unref(c);
}
END_TEST

START_TEST(test_config_defaults)
{
    static const char yaml[] = ID OUT1;
    struct tg_config *c = parse_ok(yaml, strlen(yaml), "t.yaml");

    ck_assert_uint_eq(c->admin.len, 0); /* no admin endpoint */
    ck_assert_uint_eq(c->workers, 0);
    ck_assert_int_eq(c->log_level, TG_LOG_INFO);
    ck_assert(c->access_log);
    ck_assert_uint_eq(c->buffer_size, 64 * 1024);
    ck_assert_str_eq(c->cert_path, "c.pem"); /* a bare file name: paths stay as written */
    ck_assert_uint_eq(c->trust_domains.n, 0);
    ck_assert_ptr_null(c->trust_domains.v);
    ck_assert_uint_eq(c->max_chain_depth, 4);
    ck_assert(!c->allow_tls12);
    ck_assert_uint_eq(c->handshake_timeout_ms, 10 * 1000);
    ck_assert_uint_eq(c->idle_timeout_ms, 60 * 60 * 1000);
    ck_assert_uint_eq(c->connect_timeout_ms, 5 * 1000);
    ck_assert_uint_eq(c->n_inbound, 0);
    ck_assert_ptr_null(c->inbound);
    ck_assert_str_eq(c->outbound[0].name, "out-127.0.0.1:9000");
    ck_assert_ptr_null(c->outbound[0].sni);
    tg_config_unref(c);
    tg_config_unref(NULL);
}
END_TEST

/* Outbound listeners are off unless they say otherwise, a destination without the key
 * keeps its listener's mode (unset), and the pool's limits have their defaults. */
START_TEST(test_config_tunnel_modes_and_pool)
{
    static const char plain[] = ID OUT1 "mesh: {destinations: [{address: 10.0.0.1, expect: "
                                        "[spiffe://a/b]}]}\n";
    static const char set[] =
        ID "outbound:\n"
           "  - {listen: '127.0.0.1:15001', transparent: true, tunnel: auto}\n"
           "  - {listen: '127.0.0.1:15002', upstream: '127.0.0.1:1', expect: [spiffe://a/b], "
           "tunnel: on}\n"
           "  - {listen: '127.0.0.1:15003', upstream: '127.0.0.1:1', expect: [spiffe://a/b], "
           "tunnel: off}\n"
           "mesh:\n  destinations:\n"
           "    - {address: 10.0.0.1, expect: [spiffe://a/b], tunnel: off}\n"
           "    - {address: 10.0.0.2, expect: [spiffe://a/b], tunnel: auto}\n"
           "    - {address: 10.0.0.3, expect: [spiffe://a/b], tunnel: on}\n"
           "    - {address: 10.0.0.4, expect: [spiffe://a/b]}\n"
           "tunnel_pool: {streams_per_connection: 7, connections_per_destination: 3, "
           "idle_timeout: 90s}\n";
    struct tg_config *c = parse_ok(plain, strlen(plain), "t.yaml");

    ck_assert_int_eq(c->outbound[0].tunnel, TG_TUNNEL_OFF);
    ck_assert_int_eq(c->dests[0].tunnel, TG_TUNNEL_UNSET);
    ck_assert_uint_eq(c->tunnel_pool.streams_per_connection, 100);
    ck_assert_uint_eq(c->tunnel_pool.connections_per_destination, 2);
    ck_assert_uint_eq(c->tunnel_pool.idle_timeout_ms, 60 * 1000);
    tg_config_unref(c);

    c = parse_ok(set, strlen(set), "t.yaml");
    ck_assert_int_eq(c->outbound[0].tunnel, TG_TUNNEL_AUTO);
    ck_assert_int_eq(c->outbound[1].tunnel, TG_TUNNEL_ON);
    ck_assert_int_eq(c->outbound[2].tunnel, TG_TUNNEL_OFF);
    ck_assert_int_eq(c->dests[0].tunnel, TG_TUNNEL_OFF);
    ck_assert_int_eq(c->dests[1].tunnel, TG_TUNNEL_AUTO);
    ck_assert_int_eq(c->dests[2].tunnel, TG_TUNNEL_ON);
    ck_assert_int_eq(c->dests[3].tunnel, TG_TUNNEL_UNSET);
    ck_assert_uint_eq(c->tunnel_pool.streams_per_connection, 7);
    ck_assert_uint_eq(c->tunnel_pool.connections_per_destination, 3);
    ck_assert_uint_eq(c->tunnel_pool.idle_timeout_ms, 90 * 1000);
    tg_config_unref(c);
}
END_TEST

/* tunnel_pool's keys, one at a time: "KEY: VALUE" and what is said of it. */
static const struct {
    const char *pair, *want;
} pool_bad[] = {
    {"streams_per_connection: 0", "streams_per_connection: 0 is out of range (want 1..1000)"},
    {"streams_per_connection: 1001", "streams_per_connection: 1001 is out of range (want 1..1000)"},
    {"connections_per_destination: 65", "connections_per_destination: 65 is out of range (want "
                                        "1..64)"},
    {"connections_per_destination: 0", "connections_per_destination: 0 is out of range"},
    {"idle_timeout: 500ms", "idle_timeout: out of range (want 1000ms to 3600s)"},
    {"idle_timeout: 61m", "idle_timeout: out of range (want 1000ms to 3600s)"},
    {"idle_timeout: 0", "idle_timeout: must be more than 0"},
    {"idle_timeout: soon", "idle_timeout: \"soon\" is not a duration"},
    {"streams: 10", "streams: unknown key"},
};

START_TEST(test_config_tunnel_pool_refused)
{
    char yaml[256], want[160], err[TG_ERRLEN] = "";
    struct tg_config *c = NULL;

    snprintf(yaml, sizeof(yaml), ID OUT1 "tunnel_pool: {%s}\n", pool_bad[_i].pair);
    snprintf(want, sizeof(want), "t.yaml:6: tunnel_pool.%s", pool_bad[_i].want);
    ck_assert_int_eq(tg_config_parse(yaml, strlen(yaml), "t.yaml", &c, err), TG_ECONFIG);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s:\n  err:  %s\n  want: %s",
                  pool_bad[_i].pair, err, want);
}
END_TEST

START_TEST(test_config_control_plane_fields)
{
    static const char yaml[] = "control_plane:\n"
                               "  address: 127.0.0.1:15010\n"
                               "  ca: root.pem\n"
                               "  token: /run/tok\n"
                               "  server_ids: [spiffe://mesh.local/ns/tollgate-system/sa/cp]\n"
                               "  node_id: node-1\n"
                               "  namespace: default\n"
                               "  service_account: web\n"
                               "  labels: {app: web, tier: front}\n"
                               "  renew_fraction: 0.3\n" OUT1;
    struct tg_config *c = parse_ok(yaml, strlen(yaml), "d/t.yaml");

    ck_assert(c->cp.enabled);
    ck_assert_str_eq(c->cp.address.text, "127.0.0.1:15010");
    ck_assert_str_eq(c->cp.ca_path, "d/root.pem");
    ck_assert_str_eq(c->cp.token_path, "/run/tok");
    ck_assert_uint_eq(c->cp.server_ids.n, 1);
    ck_assert_str_eq(c->cp.server_ids.v[0], "spiffe://mesh.local/ns/tollgate-system/sa/cp");
    ck_assert_str_eq(c->cp.node_id, "node-1");
    ck_assert_str_eq(c->cp.namespace_, "default");
    ck_assert_str_eq(c->cp.service_account, "web");
    ck_assert_uint_eq(c->cp.labels.n, 2);
    ck_assert_str_eq(c->cp.labels.keys[1], "tier");
    ck_assert_str_eq(c->cp.labels.values[1], "front");
    ck_assert_double_eq_tol(c->cp.renew_fraction, 0.3, 1e-9);
    ck_assert_ptr_null(c->cert_path);
    tg_config_unref(c);
}
END_TEST

START_TEST(test_config_control_plane_defaults)
{
    static const char yaml[] = CP OUT1;
    struct tg_config *c = parse_ok(yaml, strlen(yaml), "t.yaml");

    ck_assert(c->cp.enabled);
    ck_assert_double_eq_tol(c->cp.renew_fraction, 0.5, 1e-9);
    ck_assert_ptr_null(c->cp.node_id);
    ck_assert_uint_eq(c->cp.labels.n, 0);
    tg_config_unref(c);
    c = parse_ok(ID OUT1, strlen(ID OUT1), "t.yaml");
    ck_assert(!c->cp.enabled);
    tg_config_unref(c);
}
END_TEST

/* control_plane.address, and it only, takes a DNS name (a pod reaches the control plane by
 * its Service's name); want NULL: valid, else a substring of the error. */
static const struct {
    const char *addr;
    const char *want;
} cp_addrs[] = {
    {"tollgate-cp.tollgate-system.svc:15010", NULL},
    {"tollgate-cp.tollgate-system.svc.cluster.local.:15010", NULL},
    {"localhost:1", NULL},
    {"10.0.0.7:15010", NULL},
    {"\"[::1]:15010\"", NULL},
    {"cp:0", "port must be a number 1..65535"},
    {"cp:65536", "port must be a number 1..65535"},
    {"cp", "want HOST:PORT"},
    {"\"cp:\"", "port must be"},
    {":15010", "is not an address"},
    {"-cp.svc:15010", "not a DNS name"},
    {"cp-.svc:15010", "not a DNS name"},
    {"cp..svc:15010", "not a DNS name"},
    {"cp_1.svc:15010", "not a DNS name"},
    {"c p:15010", "not a DNS name"},
    {"10.0.0.300:15010", "not a numeric IPv4 host"},
    {"\"::1:15010\"", "want HOST:PORT"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.svc:1", "not a DNS name"},
    {"aaaaaaaaaa.aaaaaaaaaa.aaaaaaaaaa.aaaaaaaaaa.aaaaaaaaaa.aaaaaaaaaa:15010", "longer than 63"},
    /* a list of replicas: each checked as one address, the first is `address` */
    {"[cp-0.cp.svc:15010, cp-1.cp.svc:15010, \"[::1]:15010\"]", NULL},
    {"[10.0.0.7:15010]", NULL},
    {"[]", "a list of 0 addresses (want 1 to 16)"},
    {"[a:1, b:1, c:1, d:1, e:1, f:1, g:1, h:1, i:1, j:1, k:1, l:1, m:1, n:1, o:1, p:1, q:1]",
     "a list of 17 addresses (want 1 to 16)"},
    {"[cp-0:15010, cp_1:15010]", "control_plane.address[1]: \"cp_1:15010\": not a DNS name"},
    {"[cp:1, cp:1]", "control_plane.address[1]: cp:1 is listed twice"},
    {"{host: cp}", "want HOST:PORT or a list of them"},
    {"[[cp:1]]", "control_plane.address[0]"},
};

START_TEST(test_config_control_plane_address_table)
{
    char yaml[1024], err[TG_ERRLEN] = "";
    struct tg_config *c = NULL;
    int rc;

    snprintf(yaml, sizeof(yaml),
             "control_plane:\n  address: %s\n  ca: root.pem\n  token: token\n"
             "  server_ids: [spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp]\n" OUT1,
             cp_addrs[_i].addr);
    rc = tg_config_parse(yaml, strlen(yaml), "t.yaml", &c, err);
    if (cp_addrs[_i].want == NULL) {
        ck_assert_msg(rc == 0, "%s: %s", cp_addrs[_i].addr, err);
        ck_assert_msg(strchr(cp_addrs[_i].addr, '"') != NULL || cp_addrs[_i].addr[0] == '[' ||
                          strcmp(c->cp.address.text, cp_addrs[_i].addr) == 0,
                      "%s", c->cp.address.text);
        ck_assert_str_eq(c->cp.address.text, c->cp.addresses.v[0]);
        ck_assert_uint_eq(c->cp.addresses.n, cp_addrs[_i].addr[0] != '['              ? 1
                                             : strchr(cp_addrs[_i].addr, ',') != NULL ? 3
                                                                                      : 1);
        tg_config_unref(c);
    } else {
        ck_assert_msg(rc < 0, "%s accepted", cp_addrs[_i].addr);
        ck_assert_msg(strstr(err, "control_plane.address") != NULL &&
                          strstr(err, cp_addrs[_i].want) != NULL,
                      "%s: %s", cp_addrs[_i].addr, err);
    }
}
END_TEST

START_TEST(test_config_names_only_for_control_plane)
{
    static const char yaml[] = "outbound:\n"
                               "  - listen: 127.0.0.1:9000\n"
                               "    upstream: api.svc:8443\n"
                               "    expect: [spiffe://mesh.local/ns/default/sa/web]\n" ID;
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_int_lt(tg_config_parse(yaml, strlen(yaml), "t.yaml", &c, err), 0);
    ck_assert_msg(strstr(err, "names are not resolved") != NULL, "%s", err);
}
END_TEST

START_TEST(test_config_parse_resolves_against_name)
{
    static const char yaml[] = "identity: {cert: c, key: /k, trust_bundle: ./b}\n" OUT1;
    struct tg_config *c = parse_ok(yaml, strlen(yaml), "/t.yaml");

    ck_assert_str_eq(c->cert_path, "/c");
    ck_assert_str_eq(c->key_path, "/k");
    ck_assert_str_eq(c->bundle_path, "/./b");
    tg_config_unref(c);
    c = parse_ok(yaml, strlen(yaml), "/etc/tg/t.yaml");
    ck_assert_str_eq(c->cert_path, "/etc/tg/c");
    ck_assert_str_eq(c->key_path, "/k");
    ck_assert_str_eq(c->bundle_path, "/etc/tg/./b");
    tg_config_unref(c);
}
END_TEST

static char tmpdir[PATH_MAX];

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tg_config_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(const char *file)
{
    char path[PATH_MAX + 64];

    if (file != NULL) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
        unlink(path);
    }
    rmdir(tmpdir);
}

START_TEST(test_config_load_resolves_relative_paths)
{
    static const char yaml[] = "identity:\n  cert: certs/web.pem\n  key: /k.pem\n"
                               "  trust_bundle: ../ca.pem\n" OUT1;
    char path[PATH_MAX + 64], want[PATH_MAX + 64], cwd[PATH_MAX];
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";

    make_tmpdir();
    snprintf(path, sizeof(path), "%s/t.yaml", tmpdir);
    write_file(path, yaml, strlen(yaml));

    ck_assert_msg(tg_config_load(path, &c, err) == 0, "%s", err);
    ck_assert_str_eq(c->path, path);
    snprintf(want, sizeof(want), "%s/certs/web.pem", tmpdir);
    ck_assert_str_eq(c->cert_path, want);
    ck_assert_str_eq(c->key_path, "/k.pem");
    snprintf(want, sizeof(want), "%s/../ca.pem", tmpdir);
    ck_assert_str_eq(c->bundle_path, want);
    tg_config_unref(c);

    /* a relative file name: paths are made absolute with the working directory */
    ck_assert_int_eq(chdir(tmpdir), 0); /* fork mode: this test's process only */
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    ck_assert_msg(tg_config_load("t.yaml", &c, err) == 0, "%s", err);
    ck_assert_str_eq(c->path, "t.yaml");
    snprintf(want, sizeof(want), "%s/certs/web.pem", cwd);
    ck_assert_str_eq(c->cert_path, want);
    tg_config_unref(c);
    ck_assert_msg(tg_config_load("./t.yaml", &c, err) == 0, "%s", err);
    snprintf(want, sizeof(want), "%s/./certs/web.pem", cwd);
    ck_assert_str_eq(c->cert_path, want);
    tg_config_unref(c);
    remove_tmpdir("t.yaml");
}
END_TEST

START_TEST(test_config_load_error_names_file)
{
    static const char yaml[] = ID OUT1 "identity2: x\n";
    char path[PATH_MAX + 64], want[PATH_MAX + 128];
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";

    make_tmpdir();
    snprintf(path, sizeof(path), "%s/t.yaml", tmpdir);
    write_file(path, yaml, strlen(yaml));
    ck_assert_int_eq(tg_config_load(path, &c, err), TG_ECONFIG);
    snprintf(want, sizeof(want), "%s:6: identity2: unknown key", path);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(c);
    remove_tmpdir("t.yaml");
}
END_TEST

START_TEST(test_config_load_missing_file)
{
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_config_load("/nonexistent/tollgate.yaml", &c, err), TG_EIO);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, "/nonexistent/tollgate.yaml: cannot open: no such file") != NULL,
                  "%s", err);
}
END_TEST

START_TEST(test_config_load_directory)
{
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_int_eq(tg_config_load("/tmp", &c, err), TG_EIO);
    ck_assert_str_eq(err, "/tmp: cannot read: not a regular file");
}
END_TEST

/* Over 1 MiB is refused before libyaml sees it, from a string and from a file. */
START_TEST(test_config_huge_input)
{
    size_t n = 2 << 20;
    char *big = malloc(n);
    char path[PATH_MAX + 64];
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_ptr_nonnull(big);
    memset(big, '#', n); /* one long comment: valid YAML, just too much of it */
    ck_assert_int_eq(tg_config_parse(big, n, "t.yaml", &c, err), TG_ECONFIG);
    ck_assert_str_eq(err, "t.yaml: larger than 1048576 bytes");

    make_tmpdir();
    snprintf(path, sizeof(path), "%s/big.yaml", tmpdir);
    write_file(path, big, n);
    /* the one file reader refuses it before the parser: over its size limit */
    ck_assert_int_eq(tg_config_load(path, &c, err), TG_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err, "big.yaml: larger than 1048576 bytes"));
    ck_assert_ptr_null(c);
    remove_tmpdir("big.yaml");
    free(big);
}
END_TEST

/* Large values inside the limit: messages stay one bounded line. */
START_TEST(test_config_huge_values)
{
    size_t n = 500 * 1024;
    char *yaml = malloc(n + 64);
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_ptr_nonnull(yaml);
    /* a 500 KiB key (explicit "? ": libyaml limits implicit keys to 1024 bytes) */
    memcpy(yaml, "? ", 2);
    memset(yaml + 2, 'k', n);
    strcpy(yaml + 2 + n, "\n: 1\n");
    ck_assert_int_eq(tg_config_parse(yaml, strlen(yaml), "t.yaml", &c, err), TG_ECONFIG);
    ck_assert_msg(strncmp(err, "t.yaml:1: \"kkkk", 15) == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "...\": unknown key"));

    /* a 500 KiB value */
    memcpy(yaml, "log_level: ", 11);
    memset(yaml + 11, 'v', n);
    strcpy(yaml + 11 + n, "\n");
    ck_assert_int_eq(tg_config_parse(yaml, strlen(yaml), "t.yaml", &c, err), TG_ECONFIG);
    ck_assert_msg(strncmp(err, "t.yaml:1: log_level: \"vvvv", 26) == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "\" is not a log level"));
    free(yaml);
}
END_TEST

START_TEST(test_config_too_many_entries)
{
    size_t cap = 256 * 1024;
    char *yaml = malloc(cap);
    size_t o;
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";

    ck_assert_ptr_nonnull(yaml);
    o = (size_t)snprintf(yaml, cap, "%s%s    allow:\n", ID, IN1);
    for (int i = 0; i < 4097; i++)
        o += (size_t)snprintf(yaml + o, cap - o, "      - spiffe://m/%d\n", i);
    ck_assert_int_eq(tg_config_parse(yaml, o, "t.yaml", &c, err), TG_ECONFIG);
    ck_assert_msg(strstr(err, "inbound[0].allow: more than 4096 entries") != NULL, "%s", err);
    free(yaml);
}
END_TEST

/* A file and a string give the same result; text need not be NUL-terminated. */
START_TEST(test_config_parse_uses_len)
{
    static const char yaml[] = ID OUT1 "workers: 12345";
    struct tg_config *c = parse_ok(yaml, sizeof(yaml) - 4, "t.yaml");

    ck_assert_uint_eq(c->workers, 12);
    tg_config_unref(c);
}
END_TEST

static const struct {
    const char *s;
    bool port0;
    int family;
    const char *ip;
    int port;
    const char *why; /* NULL: valid */
} addrs[] = {
    {"127.0.0.1:80", false, AF_INET, "127.0.0.1", 80, NULL},
    {"0.0.0.0:65535", false, AF_INET, "0.0.0.0", 65535, NULL},
    {"[::1]:443", false, AF_INET6, "::1", 443, NULL},
    {"[::ffff:10.0.0.1]:1", false, AF_INET6, "::ffff:10.0.0.1", 1, NULL},
    {"[fe80::1:2:3:4]:8080", false, AF_INET6, "fe80::1:2:3:4", 8080, NULL},
    {"127.0.0.1:0", true, AF_INET, "127.0.0.1", 0, NULL},
    {"127.0.0.1:0", false, 0, NULL, 0, "port must be a number 1..65535"},
    {"127.0.0.1:65536", true, 0, NULL, 0, "port must be a number 0..65535"},
    {"127.0.0.1:080", false, AF_INET, "127.0.0.1", 80, NULL},
    {"127.0.0.1:000080", false, 0, NULL, 0, "port must be"},
    {"127.0.0.1:-1", false, 0, NULL, 0, "port must be"},
    {"127.0.0.1:+1", false, 0, NULL, 0, "port must be"},
    {"127.0.0.1:", false, 0, NULL, 0, "port must be"},
    {"127.0.0.1", false, 0, NULL, 0, "is not an address (want IP:PORT)"},
    {"", false, 0, NULL, 0, "is not an address (want IP:PORT)"},
    {":80", false, 0, NULL, 0, "is not an address (want a numeric IP and a port)"},
    {"localhost:80", false, 0, NULL, 0, "names are not resolved"},
    {"1.2.3:80", false, 0, NULL, 0, "not a numeric IPv4 host"},
    {"1.2.3.4.5:80", false, 0, NULL, 0, "not a numeric IPv4 host"},
    {"1.2.3.x:80", false, 0, NULL, 0, "names are not resolved"},
    {"01.2.3.4:80", false, 0, NULL, 0, "numeric IP"},
    {" 1.2.3.4:80", false, 0, NULL, 0, "numeric IP"},
    {"::1:80", false, 0, NULL, 0, "IPv6 goes in brackets"},
    {"[::1]", false, 0, NULL, 0, "want [IPv6]:PORT"},
    {"[::1]80", false, 0, NULL, 0, "want [IPv6]:PORT"},
    {"[::1:80", false, 0, NULL, 0, "want [IPv6]:PORT"},
    {"[]:80", false, 0, NULL, 0, "want a numeric IP and a port"},
    {"[1.2.3.4]:80", false, 0, NULL, 0, "not a numeric IPv6 host"},
    {"[fe80::1%eth0]:80", false, 0, NULL, 0, "not a numeric IPv6 host"},
    {"[::1]:80:80", false, 0, NULL, 0, "port must be"},
    {"[0000:0000:0000:0000:0000:0000:0000:0000:0000]:80", false, 0, NULL, 0, "is not an address"},
};

START_TEST(test_addr_parse_table)
{
    struct tg_addr a;
    char err[TG_ERRLEN] = "";
    int rc = tg_addr_parse(addrs[_i].s, addrs[_i].port0, &a, err);

    if (addrs[_i].why == NULL) {
        ck_assert_msg(rc == 0, "%s: %s", addrs[_i].s, err);
        assert_addr(&a, addrs[_i].family, addrs[_i].ip, addrs[_i].port, addrs[_i].s);
    } else {
        ck_assert_msg(rc == TG_EINVAL, "%s: accepted", addrs[_i].s);
        ck_assert_msg(strstr(err, addrs[_i].why) != NULL, "%s: %s", addrs[_i].s, err);
    }
}
END_TEST

START_TEST(test_addr_parse_long_input)
{
    char s[512];
    struct tg_addr a;
    char err[TG_ERRLEN] = "";

    memset(s, '1', sizeof(s) - 1);
    s[sizeof(s) - 1] = '\0';
    s[100] = ':';
    ck_assert_int_eq(tg_addr_parse(s, false, &a, err), TG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "...\" is not an address"));
    ck_assert_uint_lt(strlen(err), 120);
}
END_TEST

static const struct {
    const char *s;
    uint64_t ms;
    bool ok;
} durations[] = {
    {"250ms", 250, true},
    {"10s", 10000, true},
    {"5m", 300000, true},
    {"1h", 3600000, true},
    {"30", 30000, true},
    {"0", 0, true}, /* the config refuses 0; the parser does not */
    {"0ms", 0, true},
    {"18446744073709551615ms", UINT64_MAX, true},
    {"18446744073709551616ms", 0, false},
    {"18446744073709551s", 18446744073709551000u, true},
    {"18446744073709552s", 0, false},
    {"5124095576030h", 5124095576030u * 3600000u, true},
    {"5124095576031h", 0, false},
    {"", 0, false},
    {"s", 0, false},
    {"ms", 0, false},
    {"1.5s", 0, false},
    {"-1s", 0, false},
    {"+1s", 0, false},
    {"1 s", 0, false},
    {" 1s", 0, false},
    {"1S", 0, false},
    {"1d", 0, false},
    {"1us", 0, false},
    {"1h30m", 0, false},
    {"0x10", 0, false},
};

START_TEST(test_duration_parse_table)
{
    uint64_t ms = 7;
    char err[TG_ERRLEN] = "";
    int rc = tg_duration_parse(durations[_i].s, &ms, err);

    if (durations[_i].ok) {
        ck_assert_msg(rc == 0, "%s: %s", durations[_i].s, err);
        ck_assert_uint_eq(ms, durations[_i].ms);
    } else {
        ck_assert_msg(rc == TG_EINVAL, "%s: accepted as %llu", durations[_i].s,
                      (unsigned long long)ms);
        ck_assert_ptr_nonnull(strstr(err, "is not a duration (want e.g. 250ms, 10s, 5m, 1h)"));
        ck_assert_uint_eq(ms, 7); /* untouched on failure */
    }
}
END_TEST

/* Two mesh rows for one pod's ports hold equal lists at different addresses: the tunnel pool
 * keys on the value. */
START_TEST(test_strlist_equal)
{
    char x[] = "spiffe://td/ns/a/sa/x", y[] = "spiffe://td/ns/a/sa/y";
    char x2[] = "spiffe://td/ns/a/sa/x", y2[] = "spiffe://td/ns/a/sa/y";
    char *ab[] = {x, y}, *ab2[] = {x2, y2}, *ba[] = {y, x};
    struct tg_strlist l_ab = {ab, 2}, l_ab2 = {ab2, 2}, l_ba = {ba, 2}, l_a = {ab, 1};
    struct tg_strlist none = {NULL, 0}, none2 = {NULL, 0};

    ck_assert(tg_strlist_equal(&l_ab, &l_ab2));
    ck_assert(tg_strlist_equal(&none, &none2));
    ck_assert(!tg_strlist_equal(&l_ab, &l_ba)); /* order counts */
    ck_assert(!tg_strlist_equal(&l_ab, &l_a));
    ck_assert(!tg_strlist_equal(&l_a, &none));
}
END_TEST

Suite *tg_test_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = TG_TEST_CASE(
        s, "config", test_config_full_file_sets_every_field,
        test_config_inbound_upstream_and_unauthenticated, test_config_defaults,
        test_config_tunnel_modes_and_pool, test_config_control_plane_fields,
        test_config_control_plane_defaults, test_config_names_only_for_control_plane,
        test_config_parse_resolves_against_name, test_config_load_resolves_relative_paths,
        test_config_load_error_names_file, test_config_load_missing_file,
        test_config_load_directory, test_config_huge_input, test_config_huge_values,
        test_config_too_many_entries, test_config_parse_uses_len, test_strlist_equal);

    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_config_table, cases),
                  TG_TEST_LOOP(test_config_tunnel_pool_refused, pool_bad),
                  TG_TEST_LOOP(test_config_control_plane_address_table, cp_addrs));
    /* the address and duration grammars the control plane's config shares */
    tc = TG_TEST_CASE(s, "grammars", test_addr_parse_long_input);
    TG_TEST_LOOPS(tc, TG_TEST_LOOP(test_addr_parse_table, addrs),
                  TG_TEST_LOOP(test_duration_parse_table, durations));
    return s;
}

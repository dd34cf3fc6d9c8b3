#!/usr/bin/env bash
# Adversarial: where captured inbound traffic goes (issue 12, item 7), in network namespaces
# this test makes and removes, IPv4 and IPv6.
#
#   tg-inbound-a-PID (10.78.0.1, fd78::1)              tg-inbound-b-PID (10.78.0.2, fd78::2)
#   curl -> [:15001] tollgate A (sa/a) ==== mTLS ====> [:15006] tollgate B (allows sa/a) -> ?
#
# B's pod runs three apps: "public" on 0.0.0.0 and :: port 8080 (what the mesh serves),
# "debug" bound only to loopback (127.0.0.1 and ::1) port 9090 (a debug port, a database
# of the host: never meant for other pods), and "podip" bound only to the pod's addresses
# port 7070. An allowed mesh peer (A) must reach public and podip, and never debug: B sends
# captured inbound to the original destination (the pod's own address and port), as Istio
# does since 1.10, not to loopback. The sidecar's own connection to the pod address must
# not be captured again (a loop): it comes from 127.0.0.6 / ::6, which init-iptables exempts
# (and, for IPv6, adds to lo). `upstream: loopback` on B's listeners is the explicit choice
# for apps that bind only loopback: then debug is reached and podip is not.
# Needs root, iproute2, iptables, curl, python3, setpriv (util-linux).
# Exit 77 (ctest SKIP_RETURN_CODE) when not root or network namespaces are unavailable.
set -uo pipefail

# shellcheck source=tests/netns/preflight.sh
source "$(dirname "$0")/preflight.sh"
netns_preflight "tg-inbound-probe-$$" iptables-restore ip6tables-restore curl python3 setpriv timeout
: "${TG_BIN:?TG_BIN must name the tollgate binary}"
: "${TG_CERTS_BIN:?TG_CERTS_BIN must name the tollgate-certs binary}"

ID=$$
NS_BR=tg-inbound-br-$ID NS_A=tg-inbound-a-$ID NS_B=tg-inbound-b-$ID
IP_A=10.78.0.1 IP_B=10.78.0.2 IP6_A=fd78::1 IP6_B=fd78::2
TD=mesh.local
PROXY_UID=1337
DIR=$(mktemp -d /tmp/tg-netns-inbound.XXXXXX)
NAMESPACES=("$NS_A" "$NS_B" "$NS_BR")
# shellcheck source=tests/netns/lib.sh
source "$(dirname "$0")/lib.sh"

# ---- certificates (readable by the sidecars' uid) ----
copy_tollgate
make_certs "netns inbound test CA" a b
chown "$PROXY_UID:$PROXY_UID" a.key b.key

# ---- two pods on one bridge, each with an IPv4 and an IPv6 address ----
ip netns add "$NS_BR" && ip -n "$NS_BR" link set lo up &&
    ip -n "$NS_BR" link add br0 type bridge && ip -n "$NS_BR" link set br0 up ||
    fail "bridge namespace $NS_BR"
for pod in a b; do
    ns=tg-inbound-$pod-$ID
    case $pod in a) ip=$IP_A ip6=$IP6_A ;; b) ip=$IP_B ip6=$IP6_B ;; esac
    ip netns add "$ns" &&
        ip link add eth0 netns "$ns" type veth peer name "veth-$pod" netns "$NS_BR" &&
        ip -n "$NS_BR" link set "veth-$pod" master br0 up &&
        ip -n "$ns" link set lo up && ip -n "$ns" link set eth0 up &&
        ip -n "$ns" addr add "$ip/24" dev eth0 &&
        ip -n "$ns" addr add "$ip6/64" dev eth0 nodad || fail "pod namespace $ns with $ip, $ip6"
done

# ---- B's apps: each answers GET / with its own name ----
start_app() { # name port addresses...
    ip netns exec "$NS_B" python3 -u "$NETNS_DIR/name_app.py" "$@" >"app-$1.out" 2>"app-$1.err" &
    PIDS+=($!)
}
start_app public 8080 0.0.0.0 ::
start_app debug 9090 127.0.0.1 ::1
start_app podip 7070 "$IP_B" "$IP6_B"
wait_app() { # url
    for _ in $(seq 100); do
        in_ns "$NS_B" curl -gsf --max-time 1 -o /dev/null "$1" && return 0
        sleep 0.05
    done
    return 1
}
check "B's apps listen (public, debug on loopback, podip on the pod addresses)" \
    bash -c "$(declare -f wait_app in_ns); NS_B=$NS_B; wait_app http://127.0.0.1:8080/probe &&
        wait_app http://127.0.0.1:9090/probe && wait_app 'http://[::1]:9090/probe' &&
        wait_app http://$IP_B:7070/probe && wait_app 'http://[$IP6_B]:7070/probe'"

# ---- capture rules ----
check "init-iptables in A (IPv4 and IPv6)" in_ns "$NS_A" "$TG" init-iptables --ipv6 on
check "init-iptables in B (IPv4 and IPv6)" in_ns "$NS_B" "$TG" init-iptables --ipv6 on
check "B exempts the sidecar's inbound source 127.0.0.6 on lo" \
    in_ns "$NS_B" iptables -t nat -C TOLLGATE_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN
check "B exempts ::6 on lo" in_ns "$NS_B" ip6tables -t nat -C TOLLGATE_OUTPUT -s ::6/128 -o lo -j RETURN
check "B's lo has ::6 (the IPv6 inbound source)" \
    bash -c "ip -n $NS_B -6 addr show dev lo | grep -q 'inet6 ::6/128'"

# ---- sidecars, as uid 1337 ----
head_of() { # POD: what both sidecars' configs start with
    cat <<EOF
admin: 127.0.0.1:15000
workers: 1
identity: {cert: $DIR/$1.pem, key: $DIR/$1.key, trust_bundle: $DIR/ca.pem}
timeouts: {drain: 1s, connect: 2s, handshake: 3s}
EOF
}
write_b() { # extra listener keys (e.g. "upstream: loopback, ")
    head_of b >b.yaml
    cat >>b.yaml <<EOF
inbound:
  - {name: capture-in, listen: 0.0.0.0:15006, transparent: true, $1allow: [spiffe://$TD/ns/default/sa/a]}
  - {name: capture-in6, listen: "[::]:15006", transparent: true, $1allow: [spiffe://$TD/ns/default/sa/a]}
EOF
}
head_of a >a.yaml
cat >>a.yaml <<EOF
outbound:
  - {name: capture-out, listen: 127.0.0.1:15001, transparent: true}
  - {name: capture-out6, listen: "[::1]:15001", transparent: true}
mesh:
  outside: refuse
  destinations:
    - {address: $IP_B/32, expect: [spiffe://$TD/ns/default/sa/b]}
    - {address: $IP6_B/128, expect: [spiffe://$TD/ns/default/sa/b]}
EOF
write_b ""
check "tollgate check accepts B's config" "$TG" check -c b.yaml
check "sidecar B ready" start_sidecar b "$NS_B"
check "sidecar A ready" start_sidecar a "$NS_A"

# A's app (root, so captured) asks B's pod address; prints the body, or nothing.
get() { in_ns "$NS_A" curl -gsS --max-time 5 "$1" 2>>curl.err; }

# ---- upstream: original (the default) ----
for fam in 4 6; do
    if [ $fam = 4 ]; then host=$IP_B src=127.0.0.6; else host="[$IP6_B]" src=::6; fi
    check "IPv$fam: A reaches B's public app through both sidecars" \
        [ "$(get "http://$host:8080/")" = public ]
    check "IPv$fam: the app saw the sidecar's inbound source $src (not captured again)" \
        grep -q "^$src GET / " app-public.log
    check "IPv$fam: A reaches B's app bound only to the pod address" \
        [ "$(get "http://$host:7070/")" = podip ]
    # the attack: an allowed peer asks a port that only a loopback app listens on
    check "IPv$fam: B's loopback-only debug app is NOT reachable from the mesh" \
        [ "$(get "http://$host:9090/")" != debug ]
done
check "the debug app never saw a request from the mesh" bash -c "! grep -q 'GET / ' app-debug.log"
check "B logged the refused upstream (connection refused at the pod address)" \
    grep -q '"upstream":"10.78.0.2:9090".*"outcome":"error"' b.access.log
check "B's sidecar handled each request once (no loop through its own inbound)" \
    [ "$(grep -c '"listener":"capture-in' b.access.log)" = 6 ]

# ---- capture rules without the exemption (an older init-iptables): refused, no loop ----
in_ns "$NS_B" iptables -t nat -D TOLLGATE_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN ||
    fail "removing the exemption in B"
check "without the exemption, A's request fails" [ "$(get "http://$IP_B:8080/")" != public ]
check "B refused its own connection, captured again, as a loop" \
    grep -q '"peer":"127.0.0.6:[0-9]*".*"outcome":"refused","reason":"loop: ' b.access.log
check "and handled it once (no spiral)" [ "$(grep -c '"reason":"loop: ' b.access.log)" = 1 ]
in_ns "$NS_B" iptables -t nat -I TOLLGATE_OUTPUT 1 -s 127.0.0.6/32 -o lo -j RETURN ||
    fail "restoring the exemption in B"
check "with the exemption back, A reaches B's public app" [ "$(get "http://$IP_B:8080/")" = public ]

# ---- upstream: loopback, the explicit choice for loopback-only apps ----
stop_sidecar b
write_b "upstream: loopback, "
check "tollgate check accepts upstream: loopback" "$TG" check -c b.yaml
check "sidecar B restarted with upstream: loopback" start_sidecar b "$NS_B"
for fam in 4 6; do
    if [ $fam = 4 ]; then host=$IP_B; else host="[$IP6_B]"; fi
    check "IPv$fam, loopback: A reaches B's loopback-only app" [ "$(get "http://$host:9090/")" = debug ]
    check "IPv$fam, loopback: A reaches B's public app" [ "$(get "http://$host:8080/")" = public ]
    check "IPv$fam, loopback: the app bound only to the pod address is not reached" \
        [ "$(get "http://$host:7070/")" != podip ]
done

echo "$PASS passed, $FAILED failed"
exit 0

#!/usr/bin/env bash
# Adversarial: where the streams of a tunnel may go (issue 16), on a transparent inbound
# listener with tunnels: true, in network namespaces this test makes and removes.
#
#   tg-tunnel-a-PID (10.79.0.1)                          tg-tunnel-b-PID (10.79.0.2)
#   python3-h2 tunnel client (sa/a) == mTLS, ALPN h2 ==> [:15006] tollgate B -> the app?
#
# The client is an HBONE-style peer that asks, on one tunnel, for streams to: B's public
# app (8080), B's app bound only to the pod address (7070), B's app bound only to loopback
# (9090: never for the mesh), another host (A itself: a tunnel is no open proxy), loopback
# as the authority, and B's own capture port (a loop). Only the first two may get through.
# Needs root, iproute2, iptables, python3 with python3-h2, setpriv (util-linux).
# Exit 77 (ctest SKIP_RETURN_CODE) when not root or network namespaces are unavailable.
set -uo pipefail

# shellcheck source=tests/netns/preflight.sh
source "$(dirname "$0")/preflight.sh"
netns_preflight "tg-tunnel-probe-$$" iptables-restore curl python3 setpriv timeout
: "${TG_BIN:?TG_BIN must name the tollgate binary}"
: "${TG_CERTS_BIN:?TG_CERTS_BIN must name the tollgate-certs binary}"
/usr/bin/python3 -c 'import h2' 2>/dev/null || { echo "1..0 # SKIP python3-h2 missing"; exit 77; }

ID=$$
NS_BR=tg-tunnel-br-$ID NS_A=tg-tunnel-a-$ID NS_B=tg-tunnel-b-$ID
IP_A=10.79.0.1 IP_B=10.79.0.2
TD=mesh.local
PROXY_UID=1337
DIR=$(mktemp -d /tmp/tg-netns-tunnel.XXXXXX)
PIDS=() PASS=0 FAILED=0 NAMESPACES=("$NS_A" "$NS_B" "$NS_BR")
# shellcheck source=tests/netns/lib.sh
source "$(dirname "$0")/lib.sh"

# ---- certificates (readable by the sidecar's uid) ----
copy_tollgate
make_certs "netns tunnel test CA" a b
chown "$PROXY_UID:$PROXY_UID" b.key

# ---- two pods on one bridge ----
make_pods "$NS_BR" "a:$NS_A:$IP_A" "b:$NS_B:$IP_B"

# ---- apps: each answers GET / with its own name ----
start_app() { # ns name port address
    ip netns exec "$1" python3 -u "$NETNS_DIR/name_app.py" "$2" "$3" "$4" >"app-$2.out" 2>"app-$2.err" &
    PIDS+=($!)
}
start_app "$NS_B" public 8080 0.0.0.0
start_app "$NS_B" debug 9090 127.0.0.1
start_app "$NS_B" podip 7070 "$IP_B"
start_app "$NS_A" elsewhere 8080 "$IP_A"
check "the apps listen" bash -c "$(declare -f wait_http in_ns); wait_http $NS_B http://127.0.0.1:8080/p &&
    wait_http $NS_B http://127.0.0.1:9090/p && wait_http $NS_B http://$IP_B:7070/p &&
    wait_http $NS_A http://$IP_A:8080/p"

# ---- B: capture rules and a sidecar whose inbound takes tunnels ----
check "init-iptables in B" in_ns "$NS_B" "$TG" init-iptables
cat >b.yaml <<EOF
admin: 127.0.0.1:15000
workers: 1
identity: {cert: $DIR/b.pem, key: $DIR/b.key, trust_bundle: $DIR/ca.pem}
timeouts: {drain: 1s, connect: 2s, handshake: 3s}
inbound:
  - {name: capture-in, listen: 0.0.0.0:15006, transparent: true, tunnels: true,
     allow: [spiffe://$TD/ns/default/sa/a]}
EOF
check "tollgate check accepts tunnels: true on a transparent listener" "$TG" check -c b.yaml
check "sidecar B ready" start_sidecar b "$NS_B"

CLIENT=$NETNS_DIR/../integration/tunnel_client.py

# ---- one tunnel from A (no sidecar in A: the client is the tunnel's peer itself) ----
in_ns "$NS_A" env TUNNEL_HOST="$IP_B" TUNNEL_CERT=a timeout 60 /usr/bin/python3 "$CLIENT" 8080 - probe \
    "$IP_B:8080" "$IP_B:7070" "$IP_B:9090" "$IP_A:8080" "127.0.0.1:9090" "$IP_B:15006" \
    >probe.out 2>probe.err
check "the tunnel client ran to its end" grep -q OK probe.out
check "a stream reaches B's public app" grep -qx "$IP_B:8080 200 public" probe.out
check "a stream reaches B's app bound only to the pod address" grep -qx "$IP_B:7070 200 podip" probe.out
check "B's loopback-only app is NOT reached through a tunnel (502: nothing at the pod address)" \
    grep -qx "$IP_B:9090 502 connection refused" probe.out
check "another host is refused: a tunnel is no open proxy" \
    grep -qx "$IP_A:8080 403 bad_authority: not this workload's address" probe.out
check "loopback as the authority is refused" \
    grep -qx "127.0.0.1:9090 403 bad_authority: not this workload's address" probe.out
check "B's own capture port is refused as a loop" grep -q "^$IP_B:15006 403 loop: " probe.out
check "the app elsewhere and the debug app never saw a request" \
    bash -c "! grep -q 'GET / ' app-elsewhere.log app-debug.log 2>/dev/null"
check "the public app saw the sidecar's inbound source 127.0.0.6" grep -q '^127.0.0.6 GET / ' app-public.log
check "B logged one line per stream with the tunnel's identity" \
    [ "$(grep -c "\"peer_id\":\"spiffe://$TD/ns/default/sa/a\"" b.access.log)" = 6 ]

echo "$PASS passed, $FAILED failed"
exit 0

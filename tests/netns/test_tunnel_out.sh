#!/usr/bin/env bash
# Outbound tunnels under real interception (issue 16), in network namespaces this test makes
# and removes: every pod has the capture rules of `tollgate init-iptables`, and the app in A
# (its own uid, captured) only ever dials pod addresses.
#
#   tg-netnstun-a-PID (10.81.0.1)                        tg-netnstun-b-PID (10.81.0.2)
#   app -> [:15001] tollgate A, capture-out tunnel: auto  [:15006] tollgate B, tunnels: true
#                   == one mTLS tunnel, ALPN h2 ==>        -> apps :8080 :8081 :8082 :8083
#                                                         tg-netnstun-c-PID (10.81.0.3)
#                   -- mTLS, ALPN tollgate -->            [:15006] tollgate C, no tunnels
#                                                         -> apps :8080 :8081
# A's mesh table: B:8080 and B:8081 (the listener's auto), B:8082 protocol: http, B:8083
# tunnel: "off", C:8080 (auto), C:8081 tunnel: "on".
#
# Proves, as A's app sees it: B:8080 and B:8081, one after another and four at once, ride
# one tunnel (one dialled, a stream per connection, one handshake on B, B logs each stream
# with A's identity, its own port and the tunnel's one peer address); B:8083's own `off`
# beats the listener's auto and B:8082's protocol: http goes direct (a handshake each on B,
# no stream); C offers no tunnel: auto falls back to direct (counted), `on` is refused
# (tunnel_required) and C's app never sees it.
# Needs root, iproute2, iptables, curl, python3, setpriv (util-linux).
# Exit 77 (ctest SKIP_RETURN_CODE) when not root or network namespaces are unavailable.
set -uo pipefail

# shellcheck source=tests/netns/preflight.sh
source "$(dirname "$0")/preflight.sh"
netns_preflight "tg-netnstun-probe-$$" iptables-restore curl python3 setpriv timeout
: "${TG_BIN:?TG_BIN must name the tollgate binary}"
: "${TG_CERTS_BIN:?TG_CERTS_BIN must name the tollgate-certs binary}"

NS_BR=tg-netnstun-br-$$ NS_A=tg-netnstun-a-$$ NS_B=tg-netnstun-b-$$ NS_C=tg-netnstun-c-$$
NAMESPACES=("$NS_A" "$NS_B" "$NS_C" "$NS_BR")
IP_A=10.81.0.1 IP_B=10.81.0.2 IP_C=10.81.0.3
# A's app runs as APP_UID, not the sidecars' PROXY_UID: the capture rules take its connections
TD=mesh.local PROXY_UID=1337 APP_UID=1000
DIR=$(mktemp -d /tmp/tg-netns-tunout.XXXXXX)
# shellcheck source=tests/netns/lib.sh
source "$(dirname "$0")/lib.sh"

# ---- certificates (readable by the sidecars' uid) ----
copy_tollgate
make_certs "netns tunnel-out test CA" a b c
chown "$PROXY_UID:$PROXY_UID" a.key b.key c.key

# ---- three pods on one bridge ----
make_pods "$NS_BR" "a:$NS_A:$IP_A" "b:$NS_B:$IP_B" "c:$NS_C:$IP_C"

# ---- apps: each answers GET / with its own name (app-NAME.log: one line per request) ----
start_app() { # ns name port
    ip netns exec "$1" python3 -u "$NETNS_DIR/name_app.py" "$2" "$3" 0.0.0.0 >"app-$2.out" 2>"app-$2.err" &
    PIDS+=($!)
}
for p in 8080 8081 8082 8083; do start_app "$NS_B" "b$p" "$p"; done
for p in 8080 8081; do start_app "$NS_C" "c$p" "$p"; done
# the capture rules while the apps start
for ns in "$NS_A" "$NS_B" "$NS_C"; do
    in_ns "$ns" "$TG" init-iptables >>iptables.log 2>&1 || fail "init-iptables in $ns"
done
ok "init-iptables in A, B and C"
apps_up() {
    local p
    for p in 8080 8081 8082 8083; do wait_http "$NS_B" "http://127.0.0.1:$p/up" || return 1; done
    for p in 8080 8081; do wait_http "$NS_C" "http://127.0.0.1:$p/up" || return 1; done
}
check "the apps listen in B and C (loopback: not captured)" apps_up

# ---- sidecars, as uid 1337 ----
sidecar_config() { # name [inbound listener's extra keys]
    cat <<EOF
admin: 127.0.0.1:15000
workers: 1
identity: {cert: $DIR/$1.pem, key: $DIR/$1.key, trust_bundle: $DIR/ca.pem}
timeouts: {drain: 1s, connect: 2s, handshake: 3s}
inbound:
  - {name: capture-in, listen: 0.0.0.0:15006, transparent: true, ${2:-}
     allow: [spiffe://$TD/ns/default/sa/a]}
EOF
}
sidecar_config b "tunnels: true," >b.yaml
sidecar_config c >c.yaml
{
    sidecar_config a
    cat <<EOF
outbound:
  - {name: capture-out, listen: 127.0.0.1:15001, transparent: true, tunnel: auto}
mesh:
  outside: refuse
  destinations:
    - {address: $IP_B/32, port: 8080, expect: [spiffe://$TD/ns/default/sa/b]}
    - {address: $IP_B/32, port: 8081, expect: [spiffe://$TD/ns/default/sa/b]}
    - {address: $IP_B/32, port: 8082, expect: [spiffe://$TD/ns/default/sa/b], protocol: http}
    - {address: $IP_B/32, port: 8083, expect: [spiffe://$TD/ns/default/sa/b], tunnel: "off"}
    - {address: $IP_C/32, port: 8080, expect: [spiffe://$TD/ns/default/sa/c]}
    - {address: $IP_C/32, port: 8081, expect: [spiffe://$TD/ns/default/sa/c], tunnel: "on"}
EOF
} >a.yaml
for s in a b c; do
    "$TG" check -c "$s.yaml" >"check-$s.log" 2>&1 || fail "tollgate check $s.yaml: $(cat "check-$s.log")"
done
ok "tollgate check accepts the three configs"
check "sidecar B ready (tunnels: true)" start_sidecar b "$NS_B"
check "sidecar C ready (no tunnels)" start_sidecar c "$NS_C"
check "sidecar A ready (capture-out tunnel: auto)" start_sidecar a "$NS_A"

# ---- helpers ----
# app_get PORT-URL: the body A's app gets, curl as the app's uid (captured by A's rules).
app_get() {
    in_ns "$NS_A" setpriv --reuid="$APP_UID" --regid="$APP_UID" --clear-groups \
        curl -sS --max-time 8 "$1" 2>>app-a-curl.err
}
# metric NS LISTENER METRIC [LABEL]: METRIC's value on LISTENER in NS's /stats (0 if none).
metric() {
    in_ns "$1" curl -sf --max-time 2 http://127.0.0.1:15000/stats |
        awk -v m="$3" -v l="listener=\"$2\"" -v x="${4:-}" \
            'index($1, m "{") == 1 && index($1, l) && index($1, x) { s += $2 } END { print s + 0 }'
}
# is NS LISTENER METRIC WANT [LABEL]: METRIC is WANT (printed when it is not).
is() {
    local got
    got=$(metric "$1" "$2" "$3" "${5:-}")
    [ "$got" = "$4" ] || { echo "# $1 $2 $3${5:+ $5}: $got, want $4"; return 1; }
}
# lines FILE PATTERN...: how many lines of FILE hold every PATTERN (fixed strings).
lines() {
    local f=$1 p
    shift
    local out
    out=$(cat "$f")
    for p in "$@"; do out=$(grep -F -- "$p" <<<"$out"); done
    if [ -z "$out" ]; then echo 0; else wc -l <<<"$out"; fi
}
A_ID="\"peer_id\":\"spiffe://$TD/ns/default/sa/a\""
hs_b() { metric "$NS_B" capture-in tollgate_handshakes_total 'result="ok"'; }

# ---- 1. B:8080 and B:8081 ride one tunnel, keyed by B's host ----
hs_before=$(hs_b)
check "A's app gets B:8080" [ "$(app_get "http://$IP_B:8080/one")" = b8080 ]
check "A's app gets B:8081" [ "$(app_get "http://$IP_B:8081/two")" = b8081 ]
check "A's app gets B:8080 again" [ "$(app_get "http://$IP_B:8080/three")" = b8080 ]
# four at once, two to each port (each curl bounded by --max-time)
for i in 1 2 3 4; do
    app_get "http://$IP_B:$((8080 + i % 2))/par$i" >"par$i.out" &
    par[i]=$!
done
for i in 1 2 3 4; do wait "${par[i]}"; done
got=$(cat par1.out par2.out par3.out par4.out | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')
check "four at once reach both ports ($got)" [ "$got" = "b8080:2 b8081:2 " ]
check "A opened one tunnel" is "$NS_A" capture-out tollgate_tunnels_opened_total 1
check "one tunnel open in A" is "$NS_A" capture-out tollgate_tunnels_active 1
check "seven streams on it" is "$NS_A" capture-out tollgate_tunnel_streams_total 7
check "no fallback" is "$NS_A" capture-out tollgate_tunnel_fallbacks_total 0
check "B made one handshake for the seven connections (the tunnel's)" \
    [ "$(hs_b)" = $((hs_before + 1)) ]
sleep 0.3 # the access-log lines of closed streams
check "B logged four streams to :8080 with A's identity" \
    [ "$(lines b.access.log "$A_ID" "\"original_dst\":\"$IP_B:8080\"")" = 4 ]
check "B logged three streams to :8081 with A's identity" \
    [ "$(lines b.access.log "$A_ID" "\"original_dst\":\"$IP_B:8081\"")" = 3 ]
check "B's seven lines have one peer address: one tunnel's" \
    [ "$(grep -o '"peer":"[^"]*"' b.access.log | sort -u | wc -l)" = 1 ]
check "A logged its seven with B's identity (the tunnel's)" \
    [ "$(lines a.access.log "\"peer_id\":\"spiffe://$TD/ns/default/sa/b\"" '"outcome":"ok"')" = 7 ]
check "B's apps saw the sidecar's inbound source" \
    bash -c "grep -q '^127.0.0.6 GET /one ' app-b8080.log && grep -q '^127.0.0.6 GET /two ' app-b8081.log"

# ---- 2. a destination's own tunnel: off beats the listener's auto ----
hs_before=$(hs_b)
check "A's app gets B:8083 (tunnel: off)" [ "$(app_get "http://$IP_B:8083/off")" = b8083 ]
check "B:8083 made a handshake of its own on B" [ "$(hs_b)" = $((hs_before + 1)) ]
check "B:8083 is no stream" is "$NS_A" capture-out tollgate_tunnel_streams_total 7
check "B:8083 is no fallback either" is "$NS_A" capture-out tollgate_tunnel_fallbacks_total 0

# ---- 4. protocol: http goes direct even with tunnel: auto ----
hs_before=$(hs_b)
check "A's app gets B:8082 (protocol: http)" [ "$(app_get "http://$IP_B:8082/http")" = b8082 ]
check "B:8082 made a handshake of its own on B" [ "$(hs_b)" = $((hs_before + 1)) ]
check "B:8082 is no stream" is "$NS_A" capture-out tollgate_tunnel_streams_total 7
check "B logged :8082 with A's identity" \
    [ "$(lines b.access.log "$A_ID" "\"original_dst\":\"$IP_B:8082\"")" = 1 ]
check "still one tunnel opened" is "$NS_A" capture-out tollgate_tunnels_opened_total 1

# ---- 3. C offers no tunnel: auto falls back to direct, on is refused ----
check "A's app gets C:8080 (auto, C has no tunnels: true)" \
    [ "$(app_get "http://$IP_C:8080/auto")" = c8080 ]
check "A counted the fallback" is "$NS_A" capture-out tollgate_tunnel_fallbacks_total 1
check "C:8080 is no stream" is "$NS_A" capture-out tollgate_tunnel_streams_total 7
check "C's sidecar accepted A over mTLS" [ "$(lines c.access.log "$A_ID" "$IP_C:8080")" -ge 1 ]
if [ "$(app_get "http://$IP_C:8081/on")" = c8081 ]; then
    fail "C:8081 (tunnel: on) is refused: C offers no tunnel"
fi
ok "C:8081 (tunnel: on) is refused: C offers no tunnel"
sleep 0.3
check "A logged C:8081 refused as tunnel_required" [ "$(lines a.access.log \
    "\"original_dst\":\"$IP_C:8081\"" '"outcome":"refused"' '"reason":"tunnel_required: ')" = 1 ]
check "C's app never saw the refused request" bash -c "! grep -q 'GET /on ' app-c8081.log 2>/dev/null"
# the dial that found C offers no tunnel opened none (it is the fallback counted above)
check "one tunnel opened: B's (the dial to C found no h2)" \
    is "$NS_A" capture-out tollgate_tunnels_opened_total 1
check "B's is still the only one open" is "$NS_A" capture-out tollgate_tunnels_active 1

echo "$PASS passed, $FAILED failed"
exit 0

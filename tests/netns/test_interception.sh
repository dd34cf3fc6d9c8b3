#!/usr/bin/env bash
# Transparent interception end to end, in network namespaces this test makes and removes.
#
#   tg-a-PID (10.77.0.1)      tg-br-PID (bridge br0)      tg-b-PID (10.77.0.2)
#   curl -> [iptables :15001]  ====== capture here ======  [iptables :15006] -> tollgate B
#           tollgate A (sa/a) ---------- mTLS ---------->   (allows sa/a) -> app 10.77.0.2:8080
#   tg-c-PID (10.77.0.3): tollgate C (sa/c, refused by B), and a plain server on :9090 that
#   is outside the mesh.
#
# Proves: the app got A's request; the marker it carried never crossed the bridge in clear
# while a TLS handshake with our ALPN did; C is refused (not_allowed); a destination
# outside the mesh is passed through in plain text or refused, by mesh.outside; a plain
# client reaches the app under PERMISSIVE and not under STRICT; a port the mesh table says
# is protocol: http is handled as HTTP by B's captured listener (requests logged, a rule with
# HTTP conditions answers 403), and such a rule is refused while the table could leave the
# port tcp; init-iptables is idempotent, --dry-run changes nothing, and --clean leaves each
# namespace's nat table as it was. Needs root, iproute2, iptables, tcpdump, curl, python3, setpriv (util-linux).
# Exit 77 (ctest SKIP_RETURN_CODE) when not root or network namespaces are unavailable.
set -uo pipefail

# shellcheck source=tests/netns/preflight.sh
source "$(dirname "$0")/preflight.sh"
netns_preflight "tg-probe-$$" iptables-restore iptables-save ip6tables-save tcpdump curl python3 setpriv timeout
: "${TG_BIN:?TG_BIN must name the tollgate binary}"
: "${TG_CERTS_BIN:?TG_CERTS_BIN must name the tollgate-certs binary}"

ID=$$
NS_BR=tg-br-$ID NS_A=tg-a-$ID NS_B=tg-b-$ID NS_C=tg-c-$ID
IP_A=10.77.0.1 IP_B=10.77.0.2 IP_C=10.77.0.3
TD=mesh.local
PROXY_UID=1337
DIR=$(mktemp -d /tmp/tg-netns.XXXXXX)
MARKER="tg-marker-$ID-$RANDOM$RANDOM"     # only ever sent through the mesh
VISIBLE="tg-visible-$ID-$RANDOM$RANDOM"   # sent in plain text on purpose (control)
NAMESPACES=("$NS_A" "$NS_B" "$NS_C" "$NS_BR")
# shellcheck source=tests/netns/lib.sh
source "$(dirname "$0")/lib.sh"

# ---- certificates (readable by the sidecars' uid) ----
copy_tollgate
make_certs "netns test CA" a b c
chown "$PROXY_UID:$PROXY_UID" a.key b.key c.key

# ---- namespaces: three pods on one bridge ----
make_pods "$NS_BR" "a:tg-a-$ID:$IP_A" "b:tg-b-$ID:$IP_B" "c:tg-c-$ID:$IP_C"
if command -v ping >/dev/null 2>&1; then
    for _ in $(seq 50); do
        in_ns "$NS_A" ping -c1 -W1 "$IP_B" >/dev/null 2>&1 && break
        sleep 0.1
    done
    check "pods reach each other across the bridge" in_ns "$NS_A" ping -c1 -W1 "$IP_B"
fi

# ---- capture everything that crosses the bridge ----
ip netns exec "$NS_BR" tcpdump -i br0 --immediate-mode -U -s 0 -Z root -w "$DIR/bridge.pcap" tcp >tcpdump.log 2>&1 &
PIDS+=($!)
TCPDUMP_PID=$!
for _ in $(seq 100); do grep -q "listening on" tcpdump.log && break; sleep 0.05; done
check "tcpdump listens on the bridge" grep -q "listening on" tcpdump.log

# ---- apps ----
mkdir -p www-b www-c
echo "$MARKER" >www-b/secret.txt
echo "plain $VISIBLE for permissive" >www-b/plain.txt
echo "outside $VISIBLE" >www-c/outside.txt
ip netns exec "$NS_B" python3 -u -m http.server 8080 --bind 0.0.0.0 --directory www-b >app-b.log 2>&1 &
PIDS+=($!)
ip netns exec "$NS_C" python3 -u -m http.server 9090 --bind 0.0.0.0 --directory www-c >app-c.log 2>&1 &
PIDS+=($!)
check "app B listens on 0.0.0.0:8080 (the sidecar forwards to the pod address)" wait_http "$NS_B" http://127.0.0.1:8080/
check "plain server C listens on :9090" wait_http "$NS_C" http://127.0.0.1:9090/

# ---- iptables: a foreign rule first, so we can see it survive ----
nat_rules() { # ns: both families' nat tables, without comments and counters
    in_ns "$1" iptables-save -t nat | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//'
    in_ns "$1" ip6tables-save -t nat | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//'
}
in_ns "$NS_B" iptables -t nat -N APP_OWN &&
    in_ns "$NS_B" iptables -t nat -A APP_OWN -p udp --dport 53 -j RETURN &&
    in_ns "$NS_B" iptables -t nat -A OUTPUT -p udp -j APP_OWN || fail "foreign nat rules in B"
for ns in "$NS_A" "$NS_B" "$NS_C"; do nat_rules "$ns" >"nat-before-$ns.txt"; done

in_ns "$NS_B" "$TG" init-iptables --dry-run >dry-run.txt 2>&1
nat_rules "$NS_B" >nat-dry-$NS_B.txt
check "--dry-run prints the rules" grep -q '^-A OUTPUT -p tcp -j TOLLGATE_OUTPUT$' dry-run.txt
check "--dry-run changes nothing" cmp -s "nat-before-$NS_B.txt" "nat-dry-$NS_B.txt"

check "init-iptables in A" in_ns "$NS_A" "$TG" init-iptables
check "init-iptables in B" in_ns "$NS_B" "$TG" init-iptables
check "init-iptables again in B (idempotent)" in_ns "$NS_B" "$TG" init-iptables
# C captures only outbound: its :9090 stays a plain server outside the mesh
check "init-iptables in C (outbound only)" in_ns "$NS_C" "$TG" init-iptables \
    --include-inbound-ports=
count_jumps() { in_ns "$NS_B" iptables -t nat -S "$1" | grep -c -- "-j $2\$"; }
check "one jump from PREROUTING after two runs" [ "$(count_jumps PREROUTING TOLLGATE_INBOUND)" = 1 ]
check "one jump from OUTPUT after two runs" [ "$(count_jumps OUTPUT TOLLGATE_OUTPUT)" = 1 ]
check "B's own rule kept" in_ns "$NS_B" iptables -t nat -C OUTPUT -p udp -j APP_OWN

# ---- sidecars, as uid 1337 ----
write_config() { # name identity mode outside inbound(yes/no)
    {
        echo "admin: 127.0.0.1:15000"
        echo "workers: 1"
        echo "identity: {cert: $DIR/$2.pem, key: $DIR/$2.key, trust_bundle: $DIR/ca.pem}"
        echo "timeouts: {drain: 1s, connect: 2s, handshake: 3s}"
        if [ "$5" = yes ]; then
            echo "inbound:"
            echo "  - {name: capture-in, listen: 0.0.0.0:15006, transparent: true, mode: $3,"
            # permissive: a plain-text caller has no identity; let it past the allow list
            [ "$3" = permissive ] && echo "     allow_unauthenticated: true,"
            echo "     allow: [spiffe://$TD/ns/default/sa/a]}"
        fi
        echo "outbound:"
        echo "  - {name: capture-out, listen: 127.0.0.1:15001, transparent: true}"
        echo "mesh:"
        echo "  outside: $4"
        echo "  destinations:"
        echo "    - {address: $IP_B/32, port: 8080, expect: [spiffe://$TD/ns/default/sa/b]}"
    } >"$1.yaml"
}
write_config a a strict passthrough yes
write_config b b strict passthrough yes
write_config c c strict passthrough no
for s in a b c; do
    "$TG" check -c "$s.yaml" >"check-$s.log" 2>&1 || fail "tollgate check $s.yaml: $(cat check-$s.log)"
done
ok "tollgate check accepts the transparent configs"
check "sidecar B ready (strict)" start_sidecar b "$NS_B"
check "sidecar A ready (outside: passthrough)" start_sidecar a "$NS_A"
check "sidecar C ready" start_sidecar c "$NS_C"

# ---- A -> B through both sidecars ----
curl_in() { # ns url [curl options...]: body on stdout
    local ns=$1 url=$2
    shift 2
    in_ns "$ns" curl -sS --max-time 8 "$@" "$url"
}
body=$(curl_in "$NS_A" "http://$IP_B:8080/secret.txt" -H "X-Marker: $MARKER" 2>curl-a.err)
check "A's plain curl to $IP_B:8080 got the app's answer" [ "$body" = "$MARKER" ]
check "the app saw the request" grep -q 'GET /secret.txt' app-b.log
check "B's sidecar accepted sa/a over mTLS" \
    grep -q '"peer_id":"spiffe://mesh.local/ns/default/sa/a"' b.access.log
check "A's sidecar verified B as sa/b" \
    grep -q '"peer_id":"spiffe://mesh.local/ns/default/sa/b"' a.access.log
for s in a b; do
    check "$s's access log names the original destination $IP_B:8080" \
        grep -q "\"original_dst\":\"$IP_B:8080\"" "$s.access.log"
done

# ---- never captured: the app calling itself over loopback, and the admin port ----
lines_before=$(grep -c '' b.access.log)
check "B's app calls itself over loopback" wait_http "$NS_B" http://127.0.0.1:8080/
check "B's admin port answers over loopback" wait_http "$NS_B" http://127.0.0.1:15000/ready
sleep 0.3
check "neither went through B's sidecar" [ "$(grep -c '' b.access.log)" = "$lines_before" ]

# ---- C (sa/c) -> B: refused ----
if curl_in "$NS_C" "http://$IP_B:8080/secret.txt" -H "X-Marker: $MARKER" >c-body.txt 2>curl-c.err &&
    grep -q "$MARKER" c-body.txt; then
    fail "C (sa/c) was refused by B"
fi
ok "C (sa/c) got nothing from B"
sleep 0.3
check "B logged C as not_allowed" grep -q 'not_allowed' b.err b.access.log

# ---- outside the mesh: passthrough ----
body=$(curl_in "$NS_A" "http://$IP_C:9090/outside.txt" 2>>curl-a.err)
check "outside the mesh, passthrough: A reaches $IP_C:9090 in plain text" \
    [ "$body" = "outside $VISIBLE" ]

# ---- PERMISSIVE and STRICT, for a client that speaks plain text ----
# uid 1337 in A is exempt from capture: a plain client on the wire, as a pod without a
# sidecar would be.
plain_from_a() {
    in_ns "$NS_A" setpriv --reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups \
        curl -sS --max-time 8 "http://$IP_B:8080/plain.txt" 2>>curl-plain.err
}
check "STRICT: a plain client is refused" [ "$(plain_from_a)" != "plain $VISIBLE for permissive" ]
check "STRICT: the app never saw the plain request" bash -c "! grep -q 'GET /plain.txt' app-b.log"
stop_sidecar b
write_config b b permissive passthrough yes
check "sidecar B restarted permissive" start_sidecar b "$NS_B"
check "PERMISSIVE: a plain client reaches the app" \
    [ "$(plain_from_a)" = "plain $VISIBLE for permissive" ]
check "PERMISSIVE: the app saw the plain request" grep -q 'GET /plain.txt' app-b.log
body=$(curl_in "$NS_A" "http://$IP_B:8080/secret.txt" -H "X-Marker: $MARKER" 2>>curl-a.err)
check "PERMISSIVE: mTLS from A still works" [ "$body" = "$MARKER" ]

# ---- outside the mesh: refuse ----
stop_sidecar a
write_config a a strict refuse yes
check "sidecar A restarted with outside: refuse" start_sidecar a "$NS_A"
if curl_in "$NS_A" "http://$IP_C:9090/outside.txt" >outside-refused.txt 2>>curl-a.err &&
    grep -q outside outside-refused.txt; then
    fail "outside the mesh, refuse: A refuses $IP_C:9090"
fi
ok "outside the mesh, refuse: A refuses $IP_C:9090"
sleep 0.3
check "A logged outside_mesh" grep -q 'outside_mesh' a.err a.access.log
body=$(curl_in "$NS_A" "http://$IP_B:8080/secret.txt" -H "X-Marker: $MARKER" 2>>curl-a.err)
check "mesh destinations still served with outside: refuse" [ "$body" = "$MARKER" ]

# ---- protocol: http from the mesh table ----
# B's capture-in is not protocol: http; its mesh table makes :8080 http at every address, so
# requests there are parsed, logged one by one and decided by a rule with HTTP conditions.
stop_sidecar b
write_config b b strict passthrough yes
echo "    - {address: 0.0.0.0/0, port: 8080, expect: [spiffe://$TD/ns/default/sa/b], protocol: http}" >>b.yaml
printf 'authorization:\n  rules:\n    - {name: no-forbidden, action: deny, paths: ["/forbidden*"], ports: [8080]}\n' >>b.yaml
if "$TG" check -c b.yaml >check-b-http.log 2>&1; then
    fail "tollgate check refuses the HTTP rule while $IP_B/32:8080 is tcp"
else
    check "tollgate check refuses the HTTP rule while $IP_B/32:8080 is tcp" \
        grep -q 'port 8080 of transparent inbound listener capture-in' check-b-http.log
fi
sed -i "s|\($IP_B/32, port: 8080, expect: \[spiffe://$TD/ns/default/sa/b\]\)}|\1, protocol: http}|" b.yaml
check "tollgate check accepts it with $IP_B/32:8080 http too" "$TG" check -c b.yaml
check "sidecar B restarted with :8080 http by its mesh table" start_sidecar b "$NS_B"
body=$(curl_in "$NS_A" "http://$IP_B:8080/secret.txt" -H "X-Marker: $MARKER" 2>>curl-a.err)
check "HTTP by the mesh table: A's request reaches the app" [ "$body" = "$MARKER" ]
check "B logged the request itself (method, path)" \
    grep -q '"method":"GET","path":"/secret.txt"' b.access.log
code=$(curl_in "$NS_A" "http://$IP_B:8080/forbidden.txt" -o /dev/null -w '%{http_code}' 2>>curl-a.err)
check "the rule with HTTP conditions answers 403 ($code)" [ "$code" = 403 ]
check "the app never saw the forbidden request" bash -c "! grep -q 'GET /forbidden' app-b.log"

# ---- what crossed the bridge ----
# A capture that missed packets could not prove the marker's absence: stop tcpdump only
# after a quiet second with the bridge's ports down (so no late packet, a FIN or a
# keep-alive, can reach the filter while tcpdump exits) and once its file has stopped
# growing for three looks in a row (on a loaded machine it may still be writing what the
# filter took: stopped then, it counts those as received and not captured), and require
# that it wrote every packet its filter took.
sleep 1
for pod in a b c; do ip -n "$NS_BR" link set "veth-$pod" down; done
stable=0 last=-1
for _ in $(seq 50); do
    size=$(stat -c %s "$DIR/bridge.pcap")
    if [ "$size" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
    [ "$stable" -ge 3 ] && break
    last=$size
    sleep 0.2
done
kill -INT "$TCPDUMP_PID" 2>/dev/null
timeout 5 tail --pid="$TCPDUMP_PID" -f /dev/null
captured=$(sed -n 's/^\([0-9]*\) packets captured$/\1/p' tcpdump.log)
received=$(sed -n 's/^\([0-9]*\) packets received by filter$/\1/p' tcpdump.log)
dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel$/\1/p' tcpdump.log)
capture_complete() { [ -n "$captured" ] && [ "$captured" = "$received" ] && [ "$dropped" = 0 ]; }
check "tcpdump wrote every packet ($captured captured, $received received, $dropped dropped)" \
    capture_complete
python3 - "$DIR/bridge.pcap" "$MARKER" "$VISIBLE" >pcap.log 2>&1 <<'EOF'
import struct, sys
path, marker, visible = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
data = open(path, "rb").read()
magic = struct.unpack("<I", data[:4])[0]
assert magic in (0xa1b2c3d4, 0xa1b23c4d), "not a little-endian pcap file"
off, to_b, hello, alpn = 24, 0, 0, 0
while off + 16 <= len(data):
    _, _, caplen, _ = struct.unpack("<IIII", data[off:off + 16])
    frame = data[off + 16:off + 16 + caplen]
    off += 16 + caplen
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        continue
    ihl = (frame[14] & 0x0F) * 4
    tcp = frame[14 + ihl:]
    dst = frame[30:34]
    dport = struct.unpack(">H", tcp[2:4])[0]
    payload = tcp[(tcp[12] >> 4) * 4:]
    if dst == bytes([10, 77, 0, 2]) and dport == 8080:
        to_b += 1
        # a TLS handshake record holding a ClientHello that offers ALPN "tollgate"
        if len(payload) > 5 and payload[:2] == b"\x16\x03" and payload[2] in (1, 3) and payload[5:6] == b"\x01":
            hello += 1
            alpn += b"\x08tollgate" in payload
print(f"frames to 10.77.0.2:8080: {to_b}, ClientHellos: {hello}, with ALPN tollgate: {alpn}")
print(f"marker bytes in capture: {data.count(marker)}, visible bytes: {data.count(visible)}")
sys.exit(0 if to_b > 0 and hello > 0 and alpn == hello else 1)
EOF
PCAP_RC=$?
cat pcap.log
check "TLS ClientHellos, all with ALPN tollgate, crossed the bridge to $IP_B:8080" \
    [ "$PCAP_RC" -eq 0 ]
check "the marker never crossed the bridge in clear" grep -q 'marker bytes in capture: 0,' pcap.log
check "the capture does see plain text (control: passthrough and permissive)" \
    grep -Eq 'visible bytes: [1-9]' pcap.log

# ---- --clean puts every namespace's nat table back as it was ----
for s in a b c; do stop_sidecar "$s"; done
for ns in "$NS_A" "$NS_B" "$NS_C"; do
    in_ns "$ns" "$TG" init-iptables --clean >>clean.log 2>&1 || fail "init-iptables --clean in $ns"
    nat_rules "$ns" >"nat-after-$ns.txt"
    if ! diff -u "nat-before-$ns.txt" "nat-after-$ns.txt" >"nat-diff-$ns.txt"; then
        cat "nat-diff-$ns.txt"
        fail "--clean restored $ns's nat table"
    fi
done
ok "--clean restored every namespace's nat table exactly (iptables-save, IPv4 and IPv6)"
check "--clean twice is harmless" in_ns "$NS_B" "$TG" init-iptables --clean

echo "$PASS passed, $FAILED failed"
exit 0

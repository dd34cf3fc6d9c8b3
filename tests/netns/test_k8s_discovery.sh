#!/usr/bin/env bash
# The derived mesh table carrying real captured traffic, in network namespaces this test
# makes and removes:
#
#   tg-ka-PID (10.78.0.1)                           tg-kb-PID (10.78.0.2)
#   curl -> [iptables :15001] tollgate A (sa/a) ==mTLS==> [iptables :15006] tollgate B -> app :8080
#                                                   tollgate-cp :15010 <-> stand-in API server
#
# tollgate-cp derives the mesh table from the stand-in API server (tests/k8s/apiserver.py):
# pod web-1 of Service web is 10.78.0.2 with service account web. A's captured request to
# 10.78.0.2:8080 goes out over mTLS expecting spiffe://mesh.local/ns/prod/sa/web, which B
# has. Proves: the request arrives (A verified B as the derived identity); after the Pod's
# service account changes in the API, A's new table expects sa/web-v2 and refuses B; once it
# changes back, traffic flows again; once the endpoint leaves the EndpointSlice, the address
# is outside the mesh, A passes it through in plain text and B (strict) refuses it.
# Needs root, iproute2, iptables, curl, python3, openssl, setpriv (util-linux).
# Exit 77 (ctest SKIP_RETURN_CODE) when not root or network namespaces are unavailable.
set -uo pipefail

# shellcheck source=tests/netns/preflight.sh
source "$(dirname "$0")/preflight.sh"
netns_preflight "tg-kprobe-$$" iptables-restore curl openssl setpriv timeout
: "${TG_BIN:?TG_BIN must name the tollgate binary}"
: "${TG_CERTS_BIN:?TG_CERTS_BIN must name the tollgate-certs binary}"
: "${TG_CP_BIN:?TG_CP_BIN must name the tollgate-cp binary}"
SRC=${TG_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

ID=$$
NS_A=tg-ka-$ID NS_B=tg-kb-$ID
IP_A=10.78.0.1 IP_B=10.78.0.2
CP_ID=spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp
PROXY_UID=1337
DIR=$(mktemp -d /tmp/tg-netns-k8s.XXXXXX)
MARKER="tg-k8s-marker-$ID-$RANDOM$RANDOM"
NAMESPACES=("$NS_A" "$NS_B")
# shellcheck source=tests/netns/lib.sh
source "$(dirname "$0")/lib.sh"

# ---- the mesh CA and the control plane's identity; the cluster's CA and API server cert ----
{
    "$TG_CERTS_BIN" ca --out ca --cn "netns k8s test CA" &&
        "$TG_CERTS_BIN" issue --ca ca --out cp --spiffe "$CP_ID" &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout api-ca.key \
            -out api-ca.pem -days 1 -subj "/CN=stand-in cluster CA" &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout api.key \
            -out api.csr -subj /CN=kube-apiserver &&
        printf 'subjectAltName=IP:127.0.0.1\n' >api.ext &&
        openssl x509 -req -in api.csr -CA api-ca.pem -CAkey api-ca.key -CAcreateserial \
            -out api.pem -days 1 -extfile api.ext
} >certs.log 2>&1 || fail "certificates"
printf 'aaaaaaaaaaaaaaaaaaaaaaaa default a\nbbbbbbbbbbbbbbbbbbbbbbbb prod web\n' >tokens.txt
printf 'aaaaaaaaaaaaaaaaaaaaaaaa\n' >a.token
printf 'bbbbbbbbbbbbbbbbbbbbbbbb\n' >b.token
printf 'k8s-token-%s\n' "$ID" >api.token
copy_tollgate

# ---- two pods on one veth pair ----
veth_pair "$NS_A" "$IP_A" "$NS_B" "$IP_B"

# ---- in B: the stand-in API server and tollgate-cp (port 15010, not captured) ----
ip netns exec "$NS_B" /usr/bin/python3 "$SRC/tests/k8s/apiserver.py" --cert api.pem --key api.key \
    --token "k8s-token-$ID" --bookmark-interval 1 >apiserver.out 2>apiserver.log &
PIDS+=($!)
for _ in $(seq 100); do grep -q '"ctl"' apiserver.out 2>/dev/null && break; sleep 0.05; done
API_PORT=$(sed -E 's/.*"port": ([0-9]+).*/\1/' apiserver.out)
CTL_PORT=$(sed -E 's/.*"ctl": ([0-9]+).*/\1/' apiserver.out)
check "the stand-in API server listens" [ -n "$API_PORT" ] && [ -n "$CTL_PORT" ]
ctl() { # method path [json]
    in_ns "$NS_B" curl -sf --max-time 5 -X "$1" "http://127.0.0.1:$CTL_PORT$2" \
        ${3:+-H 'Content-Type: application/json' --data "$3"} >>ctl.log
}
pod() { # service-account
    ctl PUT /objects/pods '{"metadata":{"name":"web-1","namespace":"prod"},"spec":
        {"serviceAccountName":"'"$1"'","containers":[{"name":"app","image":"web:1"}],
        "initContainers":[{"name":"tollgate-proxy","image":"tollgate:0.1.0",
        "restartPolicy":"Always"}]},"status":{"phase":"Running","podIP":"'"$IP_B"'",
        "podIPs":[{"ip":"'"$IP_B"'"}]}}'
}
slice() { # endpoints JSON
    ctl PUT /objects/endpointslices '{"metadata":{"name":"web-1a","namespace":"prod","labels":
        {"kubernetes.io/service-name":"web"}},"addressType":"IPv4","ports":[{"name":"http",
        "port":8080,"protocol":"TCP"}],"endpoints":['"$1"']}'
}
ENDPOINT='{"addresses":["'"$IP_B"'"],"conditions":{"ready":true},"targetRef":{"kind":"Pod",
    "namespace":"prod","name":"web-1"}}'
ctl PUT /objects/namespaces '{"metadata":{"name":"prod","labels":{"tollgate.dev/inject":"enabled"}}}' &&
    pod web &&
    ctl PUT /objects/services '{"metadata":{"name":"web","namespace":"prod"},"spec":{"clusterIP":
        "10.96.0.10","clusterIPs":["10.96.0.10"],"ports":[{"name":"http","port":80,
        "targetPort":8080}]}}' &&
    slice "$ENDPOINT" || fail "the cluster's objects"

cat >cp.yaml <<YAML
listen: 0.0.0.0:15010
trust_domain: mesh.local
server: {cert: cp.pem, key: cp.key}
ca: {cert: ca.pem, key: ca.key}
tokens: tokens.txt
log_level: info
kubernetes:
  discovery: {api_server: "https://127.0.0.1:$API_PORT", ca: api-ca.pem, token: api.token}
YAML
ip netns exec "$NS_B" "$TG_CP_BIN" run -c cp.yaml >cp.log 2>cp.err &
PIDS+=($!)
for _ in $(seq 100); do grep -q "mesh table derived" cp.err && break; sleep 0.05; done
check "tollgate-cp derived the table: 10.78.0.2:8080 and 10.96.0.10:80" \
    grep -q "2 destinations (1 services meshed" cp.err

# ---- the app, the capture, the sidecars (uid 1337) ----
mkdir -p www && echo "$MARKER" >www/secret.txt
ip netns exec "$NS_B" /usr/bin/python3 -u -m http.server 8080 --bind 0.0.0.0 --directory www \
    >app.log 2>&1 &
PIDS+=($!)
app_up() {
    for _ in $(seq 100); do
        in_ns "$NS_B" curl -sf --max-time 1 -o /dev/null http://127.0.0.1:8080/ && return 0
        sleep 0.05
    done
    return 1
}
check "the app listens on all addresses, port 8080, in B (captured inbound goes to the pod address)" app_up
check "init-iptables in A" in_ns "$NS_A" "$TG" init-iptables
check "init-iptables in B (the control plane's port left alone)" \
    in_ns "$NS_B" "$TG" init-iptables --exclude-inbound-ports=15010
write_config() { # name control-plane-address inbound(yes/no)
    {
        echo "admin: 127.0.0.1:15000"
        echo "workers: 1"
        echo "control_plane: {address: \"$2\", ca: $DIR/ca.pem, token: $DIR/$1.token,"
        echo "                server_ids: [\"$CP_ID\"], node_id: $1}"
        echo "timeouts: {drain: 1s, connect: 2s, handshake: 3s}"
        if [ "$3" = yes ]; then
            echo "inbound:"
            echo "  - {name: capture-in, listen: 0.0.0.0:15006, transparent: true, mode: strict,"
            echo "     allow: [spiffe://mesh.local/ns/default/sa/a]}"
        fi
        echo "outbound:"
        echo "  - {name: capture-out, listen: 127.0.0.1:15001, transparent: true}"
    } >"$1.yaml"
}
write_config a "$IP_B:15010" no
write_config b "127.0.0.1:15010" yes
check "sidecar B ready (identity sa/web from the control plane)" start_sidecar b "$NS_B" 200
check "sidecar A ready (identity sa/a)" start_sidecar a "$NS_A" 200
tables() { grep -c "mesh_table version .* applied" a.err; }
wait_table() { # more than N tables applied by A
    for _ in $(seq 100); do [ "$(tables)" -gt "$1" ] && return 0; sleep 0.05; done
    return 1
}
check "A applied the derived mesh table" wait_table 0

get() { in_ns "$NS_A" curl -sS --max-time 5 "http://$IP_B:8080/secret.txt" 2>>curl.err; }
check "A -> 10.78.0.2:8080 through both sidecars" [ "$(get)" = "$MARKER" ]
check "A verified B as the derived identity, spiffe://mesh.local/ns/prod/sa/web" \
    grep -q '"peer_id":"spiffe://mesh.local/ns/prod/sa/web"' a.access.log

n=$(tables)
pod web-v2 || fail "the Pod's service account changed"
check "A applied the table for sa/web-v2" wait_table "$n"
check "A now refuses B (it is sa/web, not sa/web-v2)" [ "$(get)" != "$MARKER" ]
check "A said why" grep -q "spiffe://mesh.local/ns/prod/sa/web is not an expected identity" a.err

n=$(tables)
pod web || fail "the Pod's service account changed back"
check "A applied the table for sa/web again" wait_table "$n"
check "traffic flows again" [ "$(get)" = "$MARKER" ]

n=$(tables)
slice "" || fail "the endpoint left the slice"
check "A applied the table without the endpoint" wait_table "$n"
check "outside the mesh now: plain text from A, refused by strict B" [ "$(get)" != "$MARKER" ]
sleep 0.3
plain_last() { # the last access-log line: to B's address, no peer identity, no TLS
    tail -1 a.access.log | /usr/bin/python3 -c 'import json, sys
e = json.loads(sys.stdin.read())
sys.exit(0 if e["peer_id"] is None and e["tls_version"] is None and e["upstream"] == sys.argv[1]
         else 1)' "$IP_B:8080"
}
check "A passed it through in plain text (no TLS, no peer identity)" plain_last

echo "$PASS passed, $FAILED failed"

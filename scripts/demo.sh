#!/usr/bin/env bash
# The main job, end to end on loopback: two sidecars give an app mutual TLS with SPIFFE
# identities; an allowed caller gets through, a caller with another identity is refused,
# and the server's certificate rotates live while a download is streaming through.
#
#   app (curl) -> sidecar A (outbound, plain in, mTLS out, identity sa/api)
#              -> sidecar B (inbound, mTLS in, identity sa/web, allows sa/api) -> web app
#   curl -> sidecar C (identity sa/stranger) -> B: refused by B's allow list
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup.sh" >/dev/null

BUILD=${TOLLGATE_BUILD_DIR:-$ROOT/build}
BIN="$BUILD/tollgate"
CERTS="$BUILD/tollgate-certs"
DIR=$(mktemp -d /tmp/tollgate-demo.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] && echo "kept $DIR" || rm -rf "$DIR"
}
trap cleanup EXIT

APP=17080 B_IN=17443 A_OUT=17000 C_OUT=17001 A_TUN=17003 B_ADMIN=17100 A_ADMIN=17200 C_ADMIN=17300
B_HEALTH=17121 B_METRICS=17190
TD=mesh.local
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. A development CA and three SPIFFE identities (tollgate-certs)"
cd "$DIR"
"$CERTS" ca --out ca --cn "demo mesh CA"
"$CERTS" issue --ca ca --out web --spiffe spiffe://$TD/ns/default/sa/web
"$CERTS" issue --ca ca --out api --spiffe spiffe://$TD/ns/default/sa/api
"$CERTS" issue --ca ca --out stranger --spiffe spiffe://$TD/ns/default/sa/stranger

step "2. The web app (python http.server on 127.0.0.1:$APP)"
mkdir www && echo "hello from the web service" >www/hello.txt
head -c 64M /dev/urandom >www/big.bin
python3 -m http.server "$APP" --bind 127.0.0.1 --directory www >app.log 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do curl -sf "127.0.0.1:$APP/hello.txt" >/dev/null && break; sleep 0.1; done

sidecar_out() { # name admin listen cert expect
    cat >"$1.yaml" <<EOT
admin: 127.0.0.1:$2
workers: 1
identity: {cert: $4.pem, key: $4.key, trust_bundle: ca.pem}
outbound:
  - name: $1-out
    listen: 127.0.0.1:$3
    upstream: 127.0.0.1:$B_IN
    expect: [spiffe://$TD/ns/default/sa/web]
EOT
}
cat >b.yaml <<EOT
admin: 127.0.0.1:$B_ADMIN
health: 127.0.0.1:$B_HEALTH   # what a kubelet may see: /live, /ready, /app-health/...
metrics: 127.0.0.1:$B_METRICS # what Prometheus may see: /metrics only
workers: 2
identity: {cert: web.pem, key: web.key, trust_bundle: ca.pem}
inbound:
  - name: web-in
    listen: 127.0.0.1:$B_IN
    upstream: 127.0.0.1:$APP
    allow: [spiffe://$TD/ns/default/sa/api]
    tunnels: true # HTTP/2 CONNECT tunnels too, beside one mTLS connection per caller
EOT
sidecar_out a "$A_ADMIN" "$A_OUT" api
cat >>a.yaml <<EOT
  - name: a-tunnel # the same destination, each app connection a stream of one pooled tunnel
    listen: 127.0.0.1:$A_TUN
    upstream: 127.0.0.1:$B_IN
    expect: [spiffe://$TD/ns/default/sa/web]
    tunnel: on
EOT
sidecar_out c "$C_ADMIN" "$C_OUT" stranger

step "3. Three sidecars: B in front of the app, A for the caller sa/api, C for sa/stranger"
for s in b a c; do
    "$BIN" check -c "$s.yaml"
    "$BIN" run -c "$s.yaml" >"$s.access.log" 2>"$s.err" &
    PIDS+=($!)
done
for port in $B_ADMIN $A_ADMIN $C_ADMIN; do
    for _ in $(seq 50); do curl -sf "127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
done
echo "all ready: $(curl -s 127.0.0.1:$B_ADMIN/ready) $(curl -s 127.0.0.1:$A_ADMIN/ready) $(curl -s 127.0.0.1:$C_ADMIN/ready)"

step "4. Allowed caller: curl -> A -> (mTLS) -> B -> app"
curl -sS --max-time 5 "http://127.0.0.1:$A_OUT/hello.txt"
sleep 0.2
echo "A's access log:"; tail -1 a.access.log
echo "B's access log:"; tail -1 b.access.log

step "5. Denied caller: curl -> C (identity sa/stranger) -> B refuses it"
if curl -sS --max-time 5 "http://127.0.0.1:$C_OUT/hello.txt"; then
    echo "UNEXPECTED: the stranger got through" >&2
    exit 1
fi
sleep 0.2
echo "B says:"; grep refused b.err | tail -1

step "6. Live rotation: B's certificate is replaced while a 64 MiB download streams through"
old=$("$CERTS" show web.pem | sed -n 's/^serial=//p')
curl -sS --max-time 60 --limit-rate 16M -o download.bin "http://127.0.0.1:$A_OUT/big.bin" &
DL=$!
sleep 1
"$CERTS" issue --ca ca --out web-next --spiffe spiffe://$TD/ns/default/sa/web >/dev/null
mv web-next.key web.key && mv web-next.pem web.pem # what a Secret update does
new=$("$CERTS" show web.pem | sed -n 's/^serial=//p')
for _ in $(seq 30); do grep -q "$new" b.err && break; sleep 0.1; done
grep "identity reloaded" b.err | tail -1
curl -sS --max-time 5 "http://127.0.0.1:$A_OUT/hello.txt" >/dev/null
wait $DL
cmp -s download.bin www/big.bin && echo "download during rotation: intact ($(stat -c %s download.bin) bytes)"
sleep 0.2
echo "B's serial before: $old (seen by A on $(grep -c "\"serial\":\"$old\"" a.access.log) connections)"
echo "B's serial now:    $new (seen by A on $(grep -c "\"serial\":\"$new\"" a.access.log) connection after the rotation)"
grep -q "\"serial\":\"$new\"" a.access.log || { echo "rotation not seen by new connections" >&2; exit 1; }

step "7. B's metrics port (non-zero series), and its health port, which serves nothing else"
curl -s "127.0.0.1:$B_METRICS/metrics" | grep -v '^#' | grep -v ' 0$'
h_ready=$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$B_HEALTH/ready")
h_dump=$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$B_HEALTH/config_dump")
echo "health port: /ready $h_ready, /config_dump $h_dump (admin only)"
if [ "$h_ready" != 200 ] || [ "$h_dump" != 404 ]; then
    echo "demo: the health port is wrong" >&2
    exit 1
fi

step "7b. The admin endpoint refuses what a web page could send it"
# a cross-site form POST to 127.0.0.1 would take B off the mesh if /drain took it
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Origin: http://evil.example' \
    -H 'Content-Type: application/x-www-form-urlencoded' "127.0.0.1:$B_ADMIN/drain")
echo "POST /drain with a browser's Origin and form body: $code (refused); B still $(curl -s "127.0.0.1:$B_ADMIN/ready")"
[ "$code" = 403 ] || { echo "demo: the admin endpoint took a browser-style drain" >&2; exit 1; }

step "7c. Tunnels: 50 new app connections through A's tunnel listener, one mTLS handshake"
for i in $(seq 50); do
    curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$A_TUN/hello.txt" || {
        echo "demo: request $i through the tunnel failed" >&2
        exit 1
    }
done
stat_of() { curl -s "127.0.0.1:$A_ADMIN/stats" | awk -v k="$1{listener=\"a-tunnel\"" 'index($0, k) == 1 {print $NF}'; }
echo "a-tunnel: $(stat_of tollgate_tunnel_streams_total) streams over $(stat_of tollgate_tunnels_opened_total) tunnel(s), $(stat_of tollgate_handshakes_total) handshake(s)"
[ "$(stat_of tollgate_tunnels_opened_total)" = 1 ] || { echo "demo: more than one tunnel" >&2; exit 1; }
echo "the last one in A's access log:"; grep '"listener":"a-tunnel"' a.access.log | tail -1

step "8. SIGTERM drains and exits 0"
kill -TERM "${PIDS[1]}"
wait "${PIDS[1]}" && echo "sidecar B exited 0"

step "9. The control plane issues the identities: tollgate-cp + two sidecars bootstrapping by token"
CP=17010 CPB_IN=17445 CPA_OUT=17002 CPB_ADMIN=17101 CPA_ADMIN=17201
CP_ID=spiffe://$TD/ns/tollgate-system/sa/tollgate-cp
"$CERTS" issue --ca ca --out cp --spiffe "$CP_ID" >/dev/null
printf '# TOKEN NAMESPACE SERVICE_ACCOUNT\n%s default api\n%s default web\n' \
    "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" \
    "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" >tokens.txt
awk '$2 == "default" && $3 == "api" {print $1}' tokens.txt >a.token
awk '$2 == "default" && $3 == "web" {print $1}' tokens.txt >b.token
cat >mesh.yaml <<EOT
authorization:
  rules:
    - {name: api-to-web, action: allow, principals: ["spiffe://$TD/ns/default/sa/api"]}
EOT
cat >cp.yaml <<EOT
listen: 127.0.0.1:$CP
trust_domain: $TD
server: {cert: cp.pem, key: cp.key}
ca: {cert: ca.pem, key: ca.key}
cert_ttl: 12s                   # short, so the demo shows renewals
tokens: tokens.txt
mesh: [mesh.yaml]
EOT
"$BUILD/tollgate-cp" run -c cp.yaml >cp.log 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$CP) 2>/dev/null && break; sleep 0.1; done
cp_sidecar() { # name admin token listeners
    cat >"$1.yaml" <<EOT
admin: 127.0.0.1:$2
workers: 1
control_plane:
  address: 127.0.0.1:$CP
  ca: ca.pem                    # the bootstrap root the control plane is checked against
  token: $3                     # who we are, until we hold a certificate
  server_ids: ["$CP_ID"]
  renew_fraction: 0.5
$4
EOT
}
cp_sidecar cpb $CPB_ADMIN b.token "inbound: [{name: web-in, listen: '127.0.0.1:$CPB_IN', upstream: '127.0.0.1:$APP'}]"
cp_sidecar cpa $CPA_ADMIN a.token "outbound: [{name: api-out, listen: '127.0.0.1:$CPA_OUT', upstream: '127.0.0.1:$CPB_IN', expect: ['spiffe://$TD/ns/default/sa/web']}]"
for s in cpb cpa; do
    "$BIN" run -c "$s.yaml" >"$s.access.log" 2>"$s.err" &
    PIDS+=($!)
done
for port in $CPB_ADMIN $CPA_ADMIN; do
    for _ in $(seq 100); do curl -sf "127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
done
echo "both ready with identities from the control plane:"
curl -s "127.0.0.1:$CPB_ADMIN/config_dump" | python3 -c 'import json,sys; d=json.load(sys.stdin)["identity"]; print("  B:", d["spiffe_id"], "serial", d["serial"])'
curl -s "127.0.0.1:$CPA_ADMIN/config_dump" | python3 -c 'import json,sys; d=json.load(sys.stdin)["identity"]; print("  A:", d["spiffe_id"], "serial", d["serial"])'
curl -sS --max-time 5 "http://127.0.0.1:$CPA_OUT/hello.txt"
echo "live rotation: B renews at half its 12 s lifetime while a slow download streams through"
curl -sS --max-time 30 --limit-rate 8M -o download2.bin "http://127.0.0.1:$CPA_OUT/big.bin" &
DL=$!
first=$(grep -o '"serial":"[0-9a-f]*"' cpa.access.log | tail -1)
for _ in $(seq 100); do
    curl -sS --max-time 5 "http://127.0.0.1:$CPA_OUT/hello.txt" >/dev/null
    now=$(grep -o '"serial":"[0-9a-f]*"' cpa.access.log | tail -1)
    [ "$now" != "$first" ] && break
    sleep 0.2
done
wait $DL
cmp -s download2.bin www/big.bin && echo "download during renewal: intact"
echo "B's serial seen by A: before $first, after $now"
[ "$now" != "$first" ] || { echo "no renewal seen" >&2; exit 1; }
grep -h "renewing our certificate\|identity from the control plane" cpb.err | tail -3 || true
echo "control plane stats of B:"; curl -s "127.0.0.1:$CPB_ADMIN/stats" | grep -E '^tollgate_cp_(pushes_accepted|csrs_sent|certs_accepted)' || true
echo
echo "demo finished: allowed caller served, stranger refused, certificate rotated live (files and control plane)"

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

BIN="$ROOT/build/tollgate"
CERTS="$ROOT/build/tollgate-certs"
DIR=$(mktemp -d /tmp/tollgate-demo.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] && echo "kept $DIR" || rm -rf "$DIR"
}
trap cleanup EXIT

APP=17080 B_IN=17443 A_OUT=17000 C_OUT=17001 B_ADMIN=17100 A_ADMIN=17200 C_ADMIN=17300
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
workers: 2
identity: {cert: web.pem, key: web.key, trust_bundle: ca.pem}
inbound:
  - name: web-in
    listen: 127.0.0.1:$B_IN
    upstream: 127.0.0.1:$APP
    allow: [spiffe://$TD/ns/default/sa/api]
EOT
sidecar_out a "$A_ADMIN" "$A_OUT" api
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

step "7. B's /stats (non-zero series)"
curl -s "127.0.0.1:$B_ADMIN/stats" | grep -v '^#' | grep -v ' 0$'

step "8. SIGTERM drains and exits 0"
kill -TERM "${PIDS[1]}"
wait "${PIDS[1]}" && echo "sidecar B exited 0"
echo
echo "demo finished: allowed caller served, stranger refused, certificate rotated live"

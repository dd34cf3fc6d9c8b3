#!/usr/bin/env bash
# bench/cp_flood.sh — tollgate-cp (default limits) under FLOOD_CLIENTS unauthenticated clients
# doing the worst they can before authentication (bench/cp_flood.c), spread over 250 source
# addresses 127.0.0.2-251, while two sidecars bootstrap by token through it and renew their
# certificates. Reports tollgate-cp's peak RSS (VmHWM; target under 64 MB), its CPU, the
# front door's refusals, and what the sidecars got. Not a timed test: run it by hand, from a
# Release build. See bench/README.md.
#
# Environment (defaults): FLOOD_CLIENTS (1000) FLOOD_SECONDS (40) FLOOD_MODE (worst)
#   FLOOD_CERT_TTL (10: seconds; the sidecars renew at half of it) FLOOD_PORT_BASE (28400)
#   FLOOD_CP_YAML (lines added to cp.yaml, e.g. "limits: {max_unauthenticated: 512}")
#   TOLLGATE_BUILD_DIR (build)
set -uo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
BUILD=${TOLLGATE_BUILD_DIR:-$ROOT/build}
CLIENTS=${FLOOD_CLIENTS:-1000}
SECONDS_=${FLOOD_SECONDS:-40}
MODE=${FLOOD_MODE:-worst}
TTL=${FLOOD_CERT_TTL:-10}
BASE=${FLOOD_PORT_BASE:-28400}
CP_PORT=$BASE
CP_ADMIN=$((BASE + 1))
CP_ID=spiffe://flood.local/ns/tollgate-system/sa/tollgate-cp
START=$(date +%s)

log() { printf '[cp_flood %3ss] %s\n' "$(($(date +%s) - START))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for b in tollgate tollgate-cp tollgate-certs bench/cp_flood; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b missing: cmake -S . -B build && cmake --build build"
done
for c in curl bc; do command -v $c >/dev/null || die "$c is needed"; done

T=$(mktemp -d /tmp/tollgate-cp-flood.XXXXXX)
PIDS=()
cleanup() {
    stop_pids 20 "${PIDS[@]}"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

spawn() { # LOGFILE CMD...: in the background, its pid in SPAWNED and PIDS
    local logf=$1
    shift
    "$@" >"$logf" 2>&1 </dev/null &
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }
cpu_s() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk -v t="$(getconf CLK_TCK)" '{printf "%.1f", ($12 + $13) / t}'; }
stat_of() { # PORT METRIC [LABELS]: the value of one series of /stats, or -1
    curl -s --max-time 2 "http://127.0.0.1:$1/stats" 2>/dev/null |
        awk -v m="$2" -v l="${3:-}" '$1 == m || $1 == m "{" l "}" {v = $2} END {print (v == "" ? -1 : v)}'
}

ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -ge $((CLIENTS + 256)) ] || die "ulimit -n $(ulimit -n) is too low for $CLIENTS clients"

# ---------------------------------------------------------------------------- set-up
cd "$T" || die "no temp dir"
"$BUILD/tollgate-certs" ca --out ca --cn "cp flood CA" >/dev/null &&
    "$BUILD/tollgate-certs" issue --ca ca --out cp --spiffe "$CP_ID" >/dev/null ||
    die "tollgate-certs failed"
printf 'flood-token-aaaaaaaaaaaaaaaa default sa-a\nflood-token-bbbbbbbbbbbbbbbb default sa-b\n' >tokens.txt
echo "authorization: {default: allow}" >mesh.yaml
cat >cp.yaml <<EOF
listen: 127.0.0.1:$CP_PORT
admin: 127.0.0.1:$CP_ADMIN
trust_domain: flood.local
server: {cert: cp.pem, key: cp.key}
ca: {cert: ca.pem, key: ca.key}
cert_ttl: ${TTL}s
tokens: tokens.txt
mesh: [mesh.yaml]
log_level: info
${FLOOD_CP_YAML:-}
EOF
for s in a b; do
    n=$([ $s = a ] && echo 0 || echo 1)
    echo "flood-token-${s}${s}${s}${s}${s}${s}${s}${s}${s}${s}${s}${s}${s}${s}${s}${s}" >$s.token
    cat >$s.yaml <<EOF
admin: 127.0.0.1:$((BASE + 10 + n))
workers: 1
control_plane:
  address: 127.0.0.1:$CP_PORT
  ca: ca.pem
  token: $s.token
  server_ids: ["$CP_ID"]
  node_id: flood-$s
  renew_fraction: 0.5
inbound:
  - {name: in, listen: '127.0.0.1:$((BASE + 20 + n))', upstream: '127.0.0.1:$((BASE + 30 + n))'}
EOF
done

spawn cp.log "$BUILD/tollgate-cp" run -c cp.yaml
CP=$SPAWNED
for _ in $(seq 50); do curl -s --max-time 1 "http://127.0.0.1:$CP_ADMIN/healthz" >/dev/null && break; sleep 0.1; done
curl -s --max-time 1 "http://127.0.0.1:$CP_ADMIN/healthz" >/dev/null || die "tollgate-cp did not start: $(tail -3 cp.log)"
RSS0=$(status_kb $CP VmRSS)
CPU0=$(cpu_s $CP)
log "tollgate-cp up (pid $CP, RSS $RSS0 KiB, $(ulimit -n) files); flooding with $CLIENTS clients, mode $MODE, for $SECONDS_ s"

spawn flood.log "$BUILD/bench/cp_flood" "$CP_PORT" ca.pem "$CP_ID" "$CLIENTS" "$SECONDS_" "$MODE"
FLOOD=$SPAWNED
sleep 5
log "flood at strength: $(tail -1 flood.log); starting sidecars a and b (bootstrap by token)"
T_SC=$(date +%s.%N)
spawn a.log "$BUILD/tollgate" run -c a.yaml
spawn b.log "$BUILD/tollgate" run -c b.yaml

FIRST_A="" FIRST_B="" MAXRSS=0 MAXUNAUTH=0
while kill -0 $FLOOD 2>/dev/null; do
    now=$(date +%s.%N)
    r=$(status_kb $CP VmRSS)
    [ "${r:-0}" -gt "$MAXRSS" ] && MAXRSS=$r
    u=$(stat_of $CP_ADMIN tollgate_cp_unauthenticated_open)
    [ "${u%.*}" -gt "$MAXUNAUTH" ] 2>/dev/null && MAXUNAUTH=${u%.*}
    if [ -z "$FIRST_A" ] && [ "$(stat_of $((BASE + 10)) tollgate_cp_certs_accepted_total)" != "-1" ] &&
        [ "$(stat_of $((BASE + 10)) tollgate_cp_certs_accepted_total)" != "0" ]; then
        FIRST_A=$(printf '%.1f' "$(echo "$now - $T_SC" | bc)")
    fi
    if [ -z "$FIRST_B" ] && [ "$(stat_of $((BASE + 11)) tollgate_cp_certs_accepted_total)" != "-1" ] &&
        [ "$(stat_of $((BASE + 11)) tollgate_cp_certs_accepted_total)" != "0" ]; then
        FIRST_B=$(printf '%.1f' "$(echo "$now - $T_SC" | bc)")
    fi
    sleep 1
done
T_END=$(date +%s.%N)
FLOOD_S=$(echo "$T_END - $T_SC" | bc)
HWM=$(status_kb $CP VmHWM)
CPU1=$(cpu_s $CP)
CERTS_A=$(stat_of $((BASE + 10)) tollgate_cp_certs_accepted_total)
CERTS_B=$(stat_of $((BASE + 11)) tollgate_cp_certs_accepted_total)
CONN_A=$(stat_of $((BASE + 10)) tollgate_cp_connected)
CONN_B=$(stat_of $((BASE + 11)) tollgate_cp_connected)
ref() { stat_of $CP_ADMIN tollgate_cp_connections_refused_total "reason=\"$1\""; }

cat <<EOF

## tollgate-cp under $CLIENTS unauthenticated clients ($MODE, $SECONDS_ s)

| figure | value |
| --- | --- |
| flood | $(grep ^summary flood.log | cut -d' ' -f2-) |
| tollgate-cp RSS before the flood | $((RSS0 / 1024)) MB |
| tollgate-cp peak RSS (VmHWM) | $((HWM / 1024)) MB (target under 64 MB) |
| tollgate-cp CPU during the flood | $(printf '%.1f' "$(echo "$CPU1 - $CPU0" | bc)") s over $SECONDS_ s |
| unauthenticated streams open, most seen | $MAXUNAUTH |
| refused: max_connections / per_address / evicted | $(ref max_connections) / $(ref per_address) / $(ref evicted) |
| closed at the deadline: handshake / hello | $(ref handshake_timeout) / $(ref hello_timeout) |
| sidecar a: first certificate after (sampled each second) / certificates in ${FLOOD_S%.*} s / connected at the end | ${FIRST_A:-never} s / $CERTS_A / $CONN_A |
| sidecar b: first certificate after (sampled each second) / certificates in ${FLOOD_S%.*} s / connected at the end | ${FIRST_B:-never} s / $CERTS_B / $CONN_B |

A sidecar renews at half its certificate's ${TTL} s: about $(echo "$FLOOD_S / ($TTL / 2)" | bc) certificates in that time.
EOF
ok=1
[ "$HWM" -lt $((64 * 1024)) ] || { log "FAIL: peak RSS $((HWM / 1024)) MB is not under 64 MB"; ok=0; }
for s in A B; do
    v=CERTS_$s
    [ "${!v%.*}" -ge 2 ] 2>/dev/null || { log "FAIL: sidecar $s got ${!v} certificates under the flood"; ok=0; }
done
[ $ok -eq 1 ] && log "ok: peak RSS under 64 MB, both sidecars bootstrapped and renewed"
[ $ok -eq 1 ]

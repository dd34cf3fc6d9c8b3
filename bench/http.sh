#!/usr/bin/env bash
# bench/http.sh — keep-alive request throughput of an inbound port in protocol: http against
# the same port in protocol: tcp (a byte pipe), on one machine:
#   wrk --plain--> tollgate A (outbound) ==mTLS 1.3==> tollgate B (inbound, tcp | http) --> nginx
# nginx serves a 64-byte body. The two modes alternate, BENCH_RUNS times each, so drift on a
# shared machine hits both alike; the median of each and their ratio are printed.
# Environment (defaults): BENCH_RUNS (5) BENCH_DURATION (4 s per wrk run) BENCH_CONNS (32)
#   BENCH_PORT_BASE (28600) TOLLGATE_BUILD_DIR (build)
#   BENCH_HTTP_OPTS: B's http: settings in http mode, e.g. "xfcc: false" (default: none)
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TOLLGATE_BUILD_DIR:-$ROOT/build}
TG=$BUILD/tollgate
TGC=$BUILD/tollgate-certs
RUNS=${BENCH_RUNS:-5}
DUR=${BENCH_DURATION:-4}
CONNS=${BENCH_CONNS:-32}
BASE=${BENCH_PORT_BASE:-28600}
BACKEND=$BASE IN=$((BASE + 1)) OUT=$((BASE + 2))
BODY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

for cmd in wrk nginx curl python3; do
    command -v $cmd >/dev/null || { echo "bench/http.sh: $cmd is missing" >&2; exit 1; }
done
[ -x "$TG" ] && [ -x "$TGC" ] || { echo "bench/http.sh: build $TG first" >&2; exit 1; }

T=$(mktemp -d /tmp/tollgate-bench-http.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench/http.sh: nothing listens on $1" >&2
    return 1
}

"$TGC" ca --out "$T/ca" --cn "bench CA" >/dev/null
"$TGC" issue --ca "$T/ca" --out "$T/server" --spiffe spiffe://bench.local/ns/default/sa/server >/dev/null
"$TGC" issue --ca "$T/ca" --out "$T/client" --spiffe spiffe://bench.local/ns/default/sa/client >/dev/null

mkdir -p "$T/nginx"
cat >"$T/nginx.conf" <<EOF
worker_processes 1;
pid $T/nginx/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $T/nginx; proxy_temp_path $T/nginx; fastcgi_temp_path $T/nginx;
    uwsgi_temp_path $T/nginx; scgi_temp_path $T/nginx;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$BACKEND;
        location / { default_type text/plain; return 200 "$BODY"; }
    }
}
EOF
nginx -p "$T/nginx" -e "$T/nginx/error.log" -c "$T/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

cat >"$T/a.yaml" <<EOF
workers: 1
access_log: false
log_level: warn
identity: {cert: $T/client.pem, key: $T/client.key, trust_bundle: $T/ca.pem}
outbound:
  - {name: out, listen: "127.0.0.1:$OUT", upstream: "127.0.0.1:$IN",
     expect: [spiffe://bench.local/ns/default/sa/server]}
EOF
"$TG" run -c "$T/a.yaml" >"$T/a.log" 2>&1 &
PIDS+=($!)
wait_port "$BACKEND"
wait_port "$OUT"

start_b() { # MODE -> B's pid in B_PID
    cat >"$T/b.yaml" <<EOF
workers: 1
access_log: false
log_level: warn
identity: {cert: $T/server.pem, key: $T/server.key, trust_bundle: $T/ca.pem}
inbound:
  - {name: in, listen: "127.0.0.1:$IN", upstream: "127.0.0.1:$BACKEND", protocol: $1$(
        [ "$1" = http ] && [ -n "${BENCH_HTTP_OPTS:-}" ] && echo ", http: {$BENCH_HTTP_OPTS}")}
EOF
    "$TG" run -c "$T/b.yaml" >"$T/b-$1.log" 2>&1 &
    B_PID=$!
    wait_port "$IN"
    [ "$(curl -s -m 5 "http://127.0.0.1:$OUT/")" = "$BODY" ] ||
        { echo "bench/http.sh: no body through the pair ($1)" >&2; exit 1; }
}

cpu_ticks() { # PID -> utime + stime in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}

run_wrk() { # -> "requests-per-second cpu-microseconds-of-B-per-request"
    local t0 t1 out
    t0=$(cpu_ticks "$B_PID")
    out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --timeout 5s "http://127.0.0.1:$OUT/")
    t1=$(cpu_ticks "$B_PID")
    awk -v d="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v dur="$DUR" \
        '/^Requests\/sec:/ {printf "%s %.2f\n", $2, d / hz * 1e6 / ($2 * dur)}' <<<"$out"
}

declare -A R=([tcp]="" [http]="") C=([tcp]="" [http]="")
for i in $(seq "$RUNS"); do
    for mode in tcp http; do
        start_b "$mode"
        read -r rps cpu < <(run_wrk)
        kill "$B_PID"
        wait "$B_PID" 2>/dev/null || true
        R[$mode]+="$rps "
        C[$mode]+="$cpu "
        echo "run $i $mode: $rps req/s, B: $cpu us CPU per request" >&2
    done
done

python3 - "${R[tcp]}" "${R[http]}" "${C[tcp]}" "${C[http]}" "$RUNS" "$DUR" "$CONNS" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF'
import statistics, sys
tcp, http, ctcp, chttp = ([float(x) for x in a.split()] for a in sys.argv[1:5])
mt, mh = statistics.median(tcp), statistics.median(http)
ct, ch = statistics.median(ctcp), statistics.median(chttp)
print(f"keep-alive req/s through the pair, inbound tcp:  {mt:.0f} (min {min(tcp):.0f}, max {max(tcp):.0f}); inbound CPU {ct:.2f} us/request")
print(f"keep-alive req/s through the pair, inbound http: {mh:.0f} (min {min(http):.0f}, max {max(http):.0f}); inbound CPU {ch:.2f} us/request")
print(f"http/tcp: throughput {mh / mt:.3f}, inbound CPU per request {ch / ct:.3f} "
      f"({sys.argv[5]} alternating runs of {sys.argv[6]} s, {sys.argv[7]} connections, 1 worker per side; load average at the end {sys.argv[8]})")
EOF

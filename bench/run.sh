#!/usr/bin/env bash
# bench/run.sh — tollgate side by side with haproxy, nginx stream and stunnel, in one run on
# one machine. See bench/README.md for what it measures and what each figure means.
#
# Path for every contender:
#   client --plain--> outbound proxy ==mTLS 1.3==> inbound proxy --plain--> backend
# (wrk against nginx serving a 64-byte body; iperf3 against an iperf3 server for bulk).
#
# Run as root. Installs missing Debian packages, builds tollgate if build/tollgate is absent,
# prints one Markdown table and saves it to build/bench-results-latest.md.
# Environment (defaults): BENCH_RUNS (2) BENCH_DURATION (4 s per wrk run)
#   BENCH_BULK_DURATION (5 s per iperf3 run) BENCH_IDLE_CONNS (1000) BENCH_PORT_BASE (28100)
#   BENCH_BUDGET (480 s: measurements not yet started by then are skipped)
#   BENCH_OUT (build/bench-results-latest.md) TOLLGATE_BUILD_DIR (build)
#   BENCH_CONTENDERS (every row) BENCH_FIGURES (ka nc cfb bulk idle limits): only these, e.g.
#   BENCH_CONTENDERS="tunnel1 relay" BENCH_FIGURES=nc for one ratio in well under a minute
#   BENCH_CFB_CONNS (500 sequential connections for connect-to-first-byte, at most DUR s)
#   BENCH_KEEP (unset: set, the temporary directory with configs and logs is kept)
#   BENCH_PERF (unset: no profile; a directory:
#   one extra new-connection run per proxy pair under perf record -g, one file per side)
set -uo pipefail # no -e: a contender that fails is reported as failed and the run goes on
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
BUILD=${TOLLGATE_BUILD_DIR:-$ROOT/build}
TG=$BUILD/tollgate
TGC=$BUILD/tollgate-certs
HELPER=$BENCH_DIR/bench_helper.py
RUNS=${BENCH_RUNS:-2}
DUR=${BENCH_DURATION:-4}
BULK_DUR=${BENCH_BULK_DURATION:-5}
IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
BASE=${BENCH_PORT_BASE:-28100}
BUDGET=${BENCH_BUDGET:-480}
CONNS=32
CFB_CONNS=${BENCH_CFB_CONNS:-500}
WRK_THREADS=2
OUT_MD=${BENCH_OUT:-$BUILD/bench-results-latest.md}
SERVER_ID=spiffe://bench.local/ns/default/sa/server
CLIENT_ID=spiffe://bench.local/ns/default/sa/client
SERVER_DNS=server.bench.local # a DNS SAN too, for the proxies that check a host name

START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed() { echo $(($(date +%s) - START)); }
log() { printf '[bench %3ss] %s\n' "$(elapsed)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------- what to run
# Port slots follow this list whatever is selected, so a row keeps its ports between runs.
ALL_CONTENDERS=(direct relay tollgate1 tunnel1 tollgate0 haproxy nginx stunnel)
ALL_FIGURES=(ka nc cfb bulk idle limits)
select_words() { # "REQUESTED" KNOWN...: REQUESTED's words (space or comma separated) in
    # KNOWN's order, on one line; an unknown word is an error naming the choices
    local req=${1//,/ } w k found out=()
    shift
    for w in $req; do
        found=0
        for k in "$@"; do [ "$w" = "$k" ] && found=1; done
        [ $found -eq 1 ] || { echo "unknown '$w' (choose from: $*)"; return 1; }
    done
    for k in "$@"; do
        for w in $req; do [ "$w" = "$k" ] && { out+=("$k"); break; }; done
    done
    echo "${out[*]}"
}
sel=$(select_words "${BENCH_CONTENDERS:-${ALL_CONTENDERS[*]}}" "${ALL_CONTENDERS[@]}") || die "BENCH_CONTENDERS: $sel"
read -ra CONTENDERS <<<"$sel"
sel=$(select_words "${BENCH_FIGURES:-${ALL_FIGURES[*]}}" "${ALL_FIGURES[@]}") || die "BENCH_FIGURES: $sel"
read -ra FIGURES <<<"$sel"
[ ${#CONTENDERS[@]} -gt 0 ] || die "BENCH_CONTENDERS selects no row"
[ ${#FIGURES[@]} -gt 0 ] || die "BENCH_FIGURES selects no figure"
want() { # FIGURE: was it selected?
    local f
    for f in "${FIGURES[@]}"; do [ "$f" = "$1" ] && return 0; done
    return 1
}
slot_of() { # CONTENDER -> its index in ALL_CONTENDERS
    local i
    for i in "${!ALL_CONTENDERS[@]}"; do [ "${ALL_CONTENDERS[$i]}" = "$1" ] && { echo "$i"; return; }; done
}

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and raises ulimit -n)"

# ---------------------------------------------------------------------------- packages
nginx_stream_line() { # the load_module line nginx needs for `stream`, or failure
    local f
    for f in /usr/lib/nginx/modules/ngx_stream_module.so /usr/share/nginx/modules/ngx_stream_module.so; do
        [ -f "$f" ] && { echo "load_module $f;"; return 0; }
    done
    command -v nginx >/dev/null && nginx -V 2>&1 | grep -Eq -- '--with-stream( |$)' && { echo ""; return 0; }
    return 1
}

install_missing() {
    local need=() pair
    for pair in haproxy:haproxy nginx:nginx stunnel4:stunnel4 wrk:wrk iperf3:iperf3 curl:curl \
        openssl:openssl python3:python3 ss:iproute2 pgrep:procps timeout:coreutils; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
    done
    nginx_stream_line >/dev/null || need+=(libnginx-mod-stream)
    [ ${#need[@]} -eq 0 ] && return 0
    log "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${need[@]}" >&2 || die "apt-get install failed"
}
install_missing
if [ ! -x "$TG" ] || [ ! -x "$TGC" ]; then
    log "build/tollgate absent: running scripts/setup.sh"
    "$ROOT/scripts/setup.sh" >&2 || die "scripts/setup.sh failed"
fi
[ -x "$TG" ] && [ -x "$TGC" ] || die "no $TG or $TGC after setup"

# Each held connection costs up to 2 descriptors in each proxy and 1 in the client.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((IDLE_CONNS * 2 + 200)) ] ||
    log "warning: ulimit -n is $(ulimit -n); the idle-connection figure may fail"

# haproxy refuses to start when maxconn needs more descriptors than it may have (2 per conn)
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=65536
HAPROXY_MAXCONN=$(((NOFILE - 200) / 2))
[ $HAPROXY_MAXCONN -gt 20000 ] && HAPROXY_MAXCONN=20000

# ---------------------------------------------------------------------------- processes
T=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
PIDS=()
cleanup() {
    local p all=()
    for p in "${PIDS[@]}"; do
        all+=("$p")
        # nginx masters' workers too, in case the master dies before they do
        for c in $(pgrep -P "$p" 2>/dev/null); do all+=("$c"); done
    done
    stop_pids 10 "${all[@]}"
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RES=$T/results.tsv
META=$T/meta.tsv
: >"$RES"
: >"$META"
rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RES"; }
meta() { printf 'meta\t%s\t%s\n' "$1" "$2" >>"$META"; }

spawn() { # LOGFILE CMD...: start in the background, remember the pid in PIDS and SPAWNED
    local logf=$1
    shift
    "$@" >"$logf" 2>&1 </dev/null &
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

port_listening() { ss -Hltn "( sport = :$1 )" 2>/dev/null | grep -q .; }
port_free() { ! port_listening "$1"; }

wait_ports() { # PIDS-ALIVE-CHECK... -- PORTS...: up to 5 s
    local wpids=() ports=() p ok
    while [ $# -gt 0 ] && [ "$1" != -- ]; do wpids+=("$1"); shift; done
    shift
    ports=("$@")
    for _ in $(seq 50); do
        for p in "${wpids[@]}"; do kill -0 "$p" 2>/dev/null || { REASON="process exited"; return 1; }; done
        ok=1
        for p in "${ports[@]}"; do port_listening "$p" || { ok=0; break; }; done
        [ $ok -eq 1 ] && return 0
        sleep 0.1
    done
    REASON="not listening on ${ports[*]} after 5 s"
    return 1
}

side_pids() { echo "$1"; pgrep -P "$1" 2>/dev/null; } # a process and its children
rss_kb() { # sum of VmRSS over the given pids
    local p s=0 v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}
cpu_ticks() { # utime+stime (all threads) summed over the given pids
    local p s=0 v
    for p in "$@"; do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
        s=$((s + ${v:-0}))
    done
    echo "$s"
}
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------- certificates
log "temp dir $T; making certificates with tollgate-certs"
mkcerts() {
    "$TGC" ca --out "$T/ca" --cn "tollgate bench CA" &&
        "$TGC" issue --ca "$T/ca" --out "$T/server" --spiffe "$SERVER_ID" --dns "$SERVER_DNS" &&
        "$TGC" issue --ca "$T/ca" --out "$T/client" --spiffe "$CLIENT_ID"
}
mkcerts >"$T/certs.log" 2>&1 || die "tollgate-certs failed: $(tail -1 "$T/certs.log")"
cat "$T/server.pem" "$T/server.key" >"$T/server.combined.pem" # haproxy: cert + key, one file
cat "$T/client.pem" "$T/client.key" >"$T/client.combined.pem"

# ---------------------------------------------------------------------------- backends
BODY=$(yes tollgate-bench- | tr -d '\n' | head -c 64)
BACKEND=$BASE
IPERF=$((BASE + 1))
for p in $BACKEND $IPERF; do port_free "$p" || die "port $p is in use (set BENCH_PORT_BASE)"; done

nginx_common() { # PREFIXDIR: lines every nginx instance here needs
    cat <<EOF
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile 65536;
EOF
}
mkdir -p "$T/backend"
{
    nginx_common "$T/backend"
    cat <<EOF
worker_processes 1;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $T/backend/body;
    proxy_temp_path $T/backend/proxy;
    fastcgi_temp_path $T/backend/fastcgi;
    uwsgi_temp_path $T/backend/uwsgi;
    scgi_temp_path $T/backend/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$BACKEND backlog=4096;
        location / { default_type text/plain; return 200 "$BODY"; }
    }
}
EOF
} >"$T/backend.conf"
spawn "$T/backend/out.log" nginx -p "$T/backend" -e "$T/backend/error.log" -c "$T/backend.conf" -g 'daemon off;'
BACKEND_PID=$SPAWNED
spawn "$T/iperf3-server.log" iperf3 -s -B 127.0.0.1 -p "$IPERF"
IPERF_PID=$SPAWNED
wait_ports "$BACKEND_PID" "$IPERF_PID" -- "$BACKEND" "$IPERF" ||
    die "backends did not start ($REASON): $(tail -2 "$T/backend/error.log" "$T/iperf3-server.log" 2>/dev/null)"
[ "$(curl -s -m 5 "http://127.0.0.1:$BACKEND/")" = "$BODY" ] || die "backend nginx does not serve the body"

# ---------------------------------------------------------------------------- contenders
# Per contender: OUTPID/INPID (the side's main process), WEB/BULK (ports the client uses).
declare -A OUTPID INPID WEB BULK
PERF_DIR=${BENCH_PERF:-}
if [ -n "$PERF_DIR" ]; then
    command -v perf >/dev/null || die "BENCH_PERF: perf is not installed"
    mkdir -p "$PERF_DIR" || die "BENCH_PERF: cannot make $PERF_DIR"
fi

versions() {
    local vs=()
    vs+=("$("$TG" version 2>/dev/null | head -1) ($("$TG" version 2>/dev/null | sed -n 2p))")
    vs+=("$(haproxy -v 2>/dev/null | head -1 | awk '{print "haproxy", $3}')")
    vs+=("$(nginx -v 2>&1 | sed 's|.*nginx/|nginx |')")
    vs+=("$(stunnel4 -version 2>&1 | awk '/^stunnel/ {print $1, $2; exit}')")
    vs+=("$(openssl version | awk '{print $1, $2}')")
    vs+=("$(wrk -v 2>&1 | awk 'NR==1 {print $1, $2}')")
    vs+=("$(iperf3 -v 2>&1 | awk 'NR==1 {print $1, $2}')")
    local IFS=';'
    echo "${vs[*]}" | sed 's/;/, /g'
}

ports_of() { # INDEX -> sets OW OB IW IB
    local p=$((BASE + 10 * ($1 + 1)))
    OW=$p OB=$((p + 1)) IW=$((p + 2)) IB=$((p + 3))
}

# --- tollgate: two processes, each with its own identity
tg_yaml_common() { # WORKERS IDENTITY-PREFIX EXTRA-TLS-YAML
    cat <<EOF
workers: $1
access_log: false
log_level: warn
identity: {cert: $T/$2.pem, key: $T/$2.key, trust_bundle: $T/ca.pem}
EOF
    [ -n "$3" ] && echo "tls: {$3}"
}
# With TUNNEL, the inbound side accepts tunnels (tunnels: true) and the outbound side carries
# every app connection as an HTTP/2 CONNECT stream on a pooled tunnel (tunnel: on, so a
# failure to tunnel is an error, never a silent direct connection). tunnel_pool keeps its
# default 100 streams per tunnel and allows enough tunnels for the idle connections.
start_tollgate() { # NAME WORKERS INDEX [TLS-YAML] [TUNNEL]
    local n=$1 w=$2 tls=${4:-} d=$T/$1 itun="" otun="" pool="" ntun
    ports_of "$3"
    mkdir -p "$d"
    if [ -n "${5:-}" ]; then
        ntun=$(((IDLE_CONNS + 99) / 100 + 1))
        [ $ntun -gt 64 ] && ntun=64
        itun=", tunnels: true" otun=", tunnel: \"on\""
        pool="tunnel_pool: {connections_per_destination: $ntun}"
    fi
    { tg_yaml_common "$w" server "$tls"; cat <<EOF
$pool
inbound:
  - {name: in-web, listen: 127.0.0.1:$IW, upstream: 127.0.0.1:$BACKEND$itun}
  - {name: in-bulk, listen: 127.0.0.1:$IB, upstream: 127.0.0.1:$IPERF$itun}
EOF
    } >"$d/in.yaml"
    { tg_yaml_common "$w" client "$tls"; cat <<EOF
$pool
outbound:
  - {name: out-web, listen: 127.0.0.1:$OW, upstream: 127.0.0.1:$IW, expect: [$SERVER_ID]$otun}
  - {name: out-bulk, listen: 127.0.0.1:$OB, upstream: 127.0.0.1:$IB, expect: [$SERVER_ID]$otun}
EOF
    } >"$d/out.yaml"
    local s
    for s in in out; do
        "$TG" check -c "$d/$s.yaml" >"$d/check-$s.log" 2>&1 ||
            { REASON="tollgate check $s.yaml: $(tail -1 "$d/check-$s.log")"; return 1; }
    done
    spawn "$d/in.log" "$TG" run -c "$d/in.yaml"
    INPID[$n]=$SPAWNED
    spawn "$d/out.log" "$TG" run -c "$d/out.yaml"
    OUTPID[$n]=$SPAWNED
    WEB[$n]=$OW BULK[$n]=$OB
    wait_ports "${INPID[$n]}" "${OUTPID[$n]}" -- "$OW" "$OB" "$IW" "$IB" ||
        { REASON="$REASON: $(tail -qn1 "$d/in.log" "$d/out.log" | tr '\n' ' ')"; return 1; }
}

# --- haproxy: two processes, mode tcp, one thread each; with PLAIN, no TLS on either hop:
# the no-TLS relay pair, the ceiling for new connections through two proxies (issue 16)
start_haproxy() { # NAME INDEX [PLAIN]
    local n=$1 d=$T/$1 plain=${3:-}
    ports_of "$2"
    mkdir -p "$d"
    local global="global
    nbthread 1
    maxconn $HAPROXY_MAXCONN
    tune.ssl.cachesize 0
defaults
    mode tcp
    maxconn $HAPROXY_MAXCONN
    timeout connect 5s
    timeout client 300s
    timeout server 300s
"
    local srv="ssl crt $T/client.combined.pem ca-file $T/ca.pem verify required verifyhost $SERVER_DNS no-ssl-reuse ssl-min-ver TLSv1.3"
    [ -n "$plain" ] && srv=""
    cat >"$d/out.cfg" <<EOF
$global
frontend web
    bind 127.0.0.1:$OW
    default_backend web
backend web
    server in 127.0.0.1:$IW $srv
frontend bulk
    bind 127.0.0.1:$OB
    default_backend bulk
backend bulk
    server in 127.0.0.1:$IB $srv
EOF
    local bnd="ssl crt $T/server.combined.pem ca-file $T/ca.pem verify required ssl-min-ver TLSv1.3 no-tls-tickets"
    [ -n "$plain" ] && bnd=""
    cat >"$d/in.cfg" <<EOF
$global
frontend web
    bind 127.0.0.1:$IW $bnd
    default_backend web
backend web
    server be 127.0.0.1:$BACKEND
frontend bulk
    bind 127.0.0.1:$IB $bnd
    default_backend bulk
backend bulk
    server be 127.0.0.1:$IPERF
EOF
    local s
    for s in in out; do
        haproxy -c -q -f "$d/$s.cfg" >"$d/check-$s.log" 2>&1 ||
            { REASON="haproxy -c $s.cfg: $(grep -m1 ALERT "$d/check-$s.log")"; return 1; }
    done
    spawn "$d/in.log" haproxy -db -f "$d/in.cfg"
    INPID[$n]=$SPAWNED
    spawn "$d/out.log" haproxy -db -f "$d/out.cfg"
    OUTPID[$n]=$SPAWNED
    WEB[$n]=$OW BULK[$n]=$OB
    wait_ports "${INPID[$n]}" "${OUTPID[$n]}" -- "$OW" "$OB" "$IW" "$IB" ||
        { REASON="$REASON: $(tail -qn1 "$d/in.log" "$d/out.log" | tr '\n' ' ')"; return 1; }
}

# --- nginx stream: two instances, one worker each
start_nginx() { # NAME INDEX
    local n=$1 d=$T/$1 mod
    ports_of "$2"
    mod=$(nginx_stream_line) || { REASON="nginx has no stream module"; return 1; }
    mkdir -p "$d/in" "$d/out"
    local ups="
        proxy_ssl on;
        proxy_ssl_protocols TLSv1.3;
        proxy_ssl_certificate $T/client.pem;
        proxy_ssl_certificate_key $T/client.key;
        proxy_ssl_trusted_certificate $T/ca.pem;
        proxy_ssl_verify on;
        proxy_ssl_verify_depth 2;
        proxy_ssl_name $SERVER_DNS;
        proxy_ssl_session_reuse off;"
    local tls="
        ssl_certificate $T/server.pem;
        ssl_certificate_key $T/server.key;
        ssl_protocols TLSv1.3;
        ssl_verify_client on;
        ssl_client_certificate $T/ca.pem;
        ssl_session_cache off;
        ssl_session_tickets off;"
    { echo "$mod"; nginx_common "$d/out"; cat <<EOF
worker_processes 1;
events { worker_connections 16384; }
stream {
    server { listen 127.0.0.1:$OW backlog=4096; proxy_pass 127.0.0.1:$IW; $ups }
    server { listen 127.0.0.1:$OB; proxy_pass 127.0.0.1:$IB; $ups }
}
EOF
    } >"$d/out.conf"
    { echo "$mod"; nginx_common "$d/in"; cat <<EOF
worker_processes 1;
events { worker_connections 16384; }
stream {
    server { listen 127.0.0.1:$IW ssl backlog=4096; proxy_pass 127.0.0.1:$BACKEND; $tls }
    server { listen 127.0.0.1:$IB ssl; proxy_pass 127.0.0.1:$IPERF; $tls }
}
EOF
    } >"$d/in.conf"
    local s
    for s in in out; do
        nginx -t -q -p "$d/$s" -e "$d/$s/error.log" -c "$d/$s.conf" >"$d/check-$s.log" 2>&1 ||
            { REASON="nginx -t $s.conf: $(grep -m1 emerg "$d/check-$s.log")"; return 1; }
    done
    spawn "$d/in.log" nginx -p "$d/in" -e "$d/in/error.log" -c "$d/in.conf" -g 'daemon off;'
    INPID[$n]=$SPAWNED
    spawn "$d/out.log" nginx -p "$d/out" -e "$d/out/error.log" -c "$d/out.conf" -g 'daemon off;'
    OUTPID[$n]=$SPAWNED
    WEB[$n]=$OW BULK[$n]=$OB
    wait_ports "${INPID[$n]}" "${OUTPID[$n]}" -- "$OW" "$OB" "$IW" "$IB" ||
        { REASON="$REASON: $(tail -qn1 "$d/in/error.log" "$d/out/error.log" | tr '\n' ' ')"; return 1; }
}

# stunnel_conf DIR SIDE TLS WEB_ACCEPT WEB_CONNECT BULK_ACCEPT BULK_CONNECT: DIR/SIDE.conf, the
# [web] and [bulk] services of one side (in or out) with the TLS lines given
stunnel_conf() {
    cat >"$1/$2.conf" <<EOF
foreground = yes
syslog = no
debug = 3
pid = $1/$2.pid
[web]
accept = 127.0.0.1:$4
connect = 127.0.0.1:$5
$3
[bulk]
accept = 127.0.0.1:$6
connect = 127.0.0.1:$7
$3
EOF
}
# --- stunnel: two processes (stunnel runs one thread per connection; no worker setting)
start_stunnel() { # NAME INDEX
    local n=$1 d=$T/$1
    ports_of "$2"
    mkdir -p "$d"
    local cli="client = yes
cert = $T/client.pem
key = $T/client.key
CAfile = $T/ca.pem
verifyChain = yes
checkHost = $SERVER_DNS
sslVersionMin = TLSv1.3
sessionResume = no
TIMEOUTclose = 0"
    local srv="cert = $T/server.pem
key = $T/server.key
CAfile = $T/ca.pem
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
options = NO_TICKET
TIMEOUTclose = 0"
    stunnel_conf "$d" out "$cli" "$OW" "$IW" "$OB" "$IB"
    stunnel_conf "$d" in "$srv" "$IW" "$BACKEND" "$IB" "$IPERF"
    spawn "$d/in.log" stunnel4 "$d/in.conf"
    INPID[$n]=$SPAWNED
    spawn "$d/out.log" stunnel4 "$d/out.conf"
    OUTPID[$n]=$SPAWNED
    WEB[$n]=$OW BULK[$n]=$OB
    wait_ports "${INPID[$n]}" "${OUTPID[$n]}" -- "$OW" "$OB" "$IW" "$IB" ||
        { REASON="$REASON: $(grep -h -m1 -iE 'error|fatal|invalid' "$d/in.log" "$d/out.log" | head -1)"; return 1; }
}

start_contender() { # NAME INDEX
    local n=$1 i=$2
    REASON=""
    ports_of "$i"
    local p
    if [ "$n" != direct ]; then
        for p in $OW $OB $IW $IB; do port_free "$p" || { REASON="port $p in use"; return 1; }; done
    fi
    case $n in
    direct) WEB[$n]=$BACKEND BULK[$n]=$IPERF ;;
    tollgate1) start_tollgate "$n" 1 "$i" "$TG_FULL_YAML" ;;
    tollgate0) start_tollgate "$n" 0 "$i" "$TG_FULL_YAML" ;;
    tunnel1) start_tollgate "$n" 1 "$i" "$TG_FULL_YAML" tunnel ;;
    tollgate1r) start_tollgate "$n" 1 "$i" "$TG_RESUME_YAML" ;;
    haproxy) start_haproxy "$n" "$i" ;;
    relay) start_haproxy "$n" "$i" plain ;;
    nginx) start_nginx "$n" "$i" ;;
    stunnel) start_stunnel "$n" "$i" ;;
    esac
}

# Does tollgate have a config key for TLS resumption yet? Probe a few likely spellings.
# BENCH_TG_RESUME_YAML / BENCH_TG_FULL_YAML ("key: value" inside tls:) override the probe.
TG_FULL_YAML=${BENCH_TG_FULL_YAML:-}
TG_RESUME_YAML=${BENCH_TG_RESUME_YAML:-}
[ -n "$TG_RESUME_YAML" ] || for k in resumption session_resumption session_tickets; do
    { tg_yaml_common 1 client "$k: true"
      echo "inbound: [{listen: '127.0.0.1:1', upstream: '127.0.0.1:2'}]"; } >"$T/probe.yaml"
    if "$TG" check -c "$T/probe.yaml" >/dev/null 2>&1; then
        TG_RESUME_YAML="$k: true" TG_FULL_YAML="$k: false"
        break
    fi
done

NCPU=$(nproc)
label() {
    case $1 in
    direct) echo "direct (no proxy)" ;;
    tollgate1) echo "tollgate pair, 1 worker" ;;
    tunnel1) echo "tollgate pair with tunnels, 1 worker (A tunnel: on, B tunnels: true)" ;;
    tollgate0) echo "tollgate pair, default workers ($NCPU)" ;;
    haproxy) echo "haproxy pair, nbthread 1" ;;
    relay) echo "no-TLS relay pair (haproxy, nbthread 1, no TLS on either hop: the ceiling)" ;;
    nginx) echo "nginx stream pair, 1 worker" ;;
    stunnel) echo "stunnel pair (thread per connection)" ;;
    esac
}

# ---------------------------------------------------------------------------- start + check
OK=()
for c in "${CONTENDERS[@]}"; do
    rec "$c" label "$(label "$c")"
    if ! start_contender "$c" "$(slot_of "$c")"; then
        rec "$c" status "failed: $REASON"
        log "$c: failed to start: $REASON"
    else
        got=$(curl -s -m 5 "http://127.0.0.1:${WEB[$c]}/")
        if [ "$got" != "$BODY" ]; then
            REASON="curl through the pair returned ${#got} bytes, not the 64-byte body"
            rec "$c" status "failed: $REASON"
            log "$c: $REASON"
        else
            rec "$c" status ok
            OK+=("$c")
            log "$c: up, curl through it returns the 64-byte body"
        fi
    fi
done
RES_OK=0
if ! want nc || [[ " ${CONTENDERS[*]} " != *" tollgate1 "* ]]; then
    : # the resumed cell belongs to tollgate1's new-connection figure
elif [ -n "$TG_RESUME_YAML" ]; then
    if start_contender tollgate1r ${#ALL_CONTENDERS[@]} &&
        [ "$(curl -s -m 5 "http://127.0.0.1:${WEB[tollgate1r]}/")" = "$BODY" ]; then
        RES_OK=1
    else
        rec tollgate1 rs_note "failed: ${REASON:-curl check failed}"
    fi
else
    rec tollgate1 rs_note "n/a (not yet)"
    rec tollgate0 rs_note "n/a (not yet)"
fi

over_budget() { [ "$(elapsed)" -ge "$BUDGET" ]; }

# ---------------------------------------------------------------------------- memory
# Fresh = started and one request served (the curl check); then IDLE_CONNS connections held
# open, each after one keep-alive request so every TLS hop has completed its handshake.
for c in "${OK[@]}"; do
    [ "$c" = direct ] && continue
    out_pids=$(side_pids "${OUTPID[$c]}")
    in_pids=$(side_pids "${INPID[$c]}")
    ro=$(rss_kb $out_pids) ri=$(rss_kb $in_pids)
    rec "$c" rss_out "$ro"
    rec "$c" rss_in "$ri"
    want idle || continue
    if over_budget; then rec "$c" idle_kb_fail "skipped (time budget)"; continue; fi
    read -r held after fails lasterr < <(timeout 90 python3 "$HELPER" idle "${WEB[$c]}" "$IDLE_CONNS" "$out_pids $in_pids")
    if [ -z "${held:-}" ] || [ "${held:-0}" -eq 0 ]; then
        rec "$c" idle_kb_fail "failed: no connection held (${lasterr:-helper error})"
    else
        rec "$c" idle_kb "$(awk -v a="$after" -v b=$((ro + ri)) -v n="$held" 'BEGIN {printf "%.2f", (a - b) / n}')"
        [ "$held" -lt "$IDLE_CONNS" ] &&
            rec "$c" idle_note "only $held of $IDLE_CONNS held open (${fails} failed: ${lasterr//_/ })"
    fi
    log "$c: RSS fresh out+in $(((ro + ri) / 1024)) MB; $held idle connections held"
done

# ---------------------------------------------------------------------------- timed figures
# Interleaved: round 1 of a figure for every contender, then round 2, so a burst of
# background load spreads over all contenders instead of hitting one.
# CPU of both proxy sides around a measurement: cpu_start CONTENDER, the measurement, then
# cpu_cores prints the cores they used meanwhile (ticks / CLK_TCK / wall time), or nothing
# for a row without proxies.
cpu_start() {
    CPU_PIDS=""
    [ -n "${OUTPID[$1]:-}" ] && CPU_PIDS="$(side_pids "${OUTPID[$1]}") $(side_pids "${INPID[$1]}")"
    CPU_T0=$(date +%s.%N)
    CPU_C0=$(cpu_ticks $CPU_PIDS)
}
cpu_cores() {
    local c1 t1
    c1=$(cpu_ticks $CPU_PIDS)
    t1=$(date +%s.%N)
    [ -n "$CPU_PIDS" ] || return 0
    awk -v d=$((c1 - CPU_C0)) -v hz="$CLK_TCK" -v a="$CPU_T0" -v b="$t1" \
        'BEGIN {printf "%.3f", d / hz / (b - a)}'
}

wrk_run() { # CONTENDER KEY-PREFIX [wrk args...] -> records KEY_rps, _p50, _p99, _err (+ CPU:
    # ka_cpu, % of a core per 1k req/s; KEY_cpu_us otherwise, µs per request) under the
    # contender's name, or under $REC_AS
    local c=$1 k=$2 port=${WEB[$1]} rc=${REC_AS:-$1}
    shift 2
    if over_budget; then rec "$rc" "${k}_rps_fail" "skipped (time budget)"; return; fi
    local line cores
    cpu_start "$c"
    timeout $((DUR + 15)) wrk -t$WRK_THREADS -c$CONNS -d${DUR}s --timeout 5s --latency "$@" \
        "http://127.0.0.1:$port/" >"$T/wrk.out" 2>&1
    cores=$(cpu_cores)
    if ! line=$(python3 "$HELPER" wrk "$T/wrk.out"); then
        rec "$rc" "${k}_rps_fail" "failed: $line"
        log "$c $k: $line"
        return
    fi
    read -r rps p50 p99 err _ <<<"$line"
    rec "$rc" "${k}_rps" "$rps"
    rec "$rc" "${k}_p50" "$p50"
    rec "$rc" "${k}_p99" "$p99"
    rec "$rc" "${k}_err" "$err"
    if [ -n "$cores" ] && [ "$k" = ka ]; then # per 1k req/s, as % of one core
        rec "$rc" ka_cpu "$(awk -v c="$cores" -v r="$rps" 'BEGIN {printf "%.3f", c * 100 / (r / 1000)}')"
    elif [ -n "$cores" ]; then # µs of CPU per request (per new connection for nc and rs)
        rec "$rc" "${k}_cpu_us" "$(awk -v c="$cores" -v r="$rps" 'BEGIN {printf "%.1f", c * 1e6 / r}')"
    fi
    log "$c $k: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, errors $err${cores:+, proxies used $cores cores}"
}

bulk_run() { # CONTENDER
    local c=$1 line cores
    if over_budget; then rec "$c" bulk_fail "skipped (time budget)"; return; fi
    cpu_start "$c"
    timeout $((BULK_DUR + 15)) iperf3 -c 127.0.0.1 -p "${BULK[$c]}" -t "$BULK_DUR" -P 1 -J \
        --connect-timeout 5000 >"$T/iperf.json" 2>"$T/iperf.err"
    cores=$(cpu_cores)
    if line=$(python3 "$HELPER" iperf "$T/iperf.json"); then
        rec "$c" bulk "$line"
        # ms of both sides' CPU per GB carried: cores / (GB/s) * 1000
        [ -n "$cores" ] && rec "$c" bulk_cpu_ms "$(awk -v c="$cores" -v g="$line" 'BEGIN {printf "%.0f", c * 8000 / g}')"
        log "$c bulk: $line Gbit/s${cores:+, proxies used $cores cores}"
    else
        rec "$c" bulk_fail "failed: $line"
        log "$c bulk: $line"
    fi
}

# One client, one connection at a time: connect() to the first byte of the answer, unloaded.
cfb_run() { # CONTENDER -> records cfb_p50, cfb_p99 (ms)
    local c=$1 p50 p99 n fails last
    if over_budget; then rec "$c" cfb_p50_fail "skipped (time budget)"; return; fi
    if ! read -r p50 p99 n fails last < <(timeout $((DUR + 30)) python3 "$HELPER" cfb \
        "${WEB[$c]}" "$CFB_CONNS" "$DUR") || [ "${n:-0}" = 0 ]; then
        last=${last//_/ }
        rec "$c" cfb_p50_fail "failed: ${last:-helper error}"
        log "$c cfb: failed: ${last:-helper error}"
        return
    fi
    rec "$c" cfb_p50 "$p50"
    rec "$c" cfb_p99 "$p99"
    [ "$fails" -gt 0 ] && rec "$c" cfb_err "$fails"
    log "$c cfb: $n connections, connect to first byte p50 $p50 ms, p99 $p99 ms, $fails failed"
}

# perf_run CONTENDER: one more new-connection run (not counted) with perf record -g on each
# side, into $PERF_DIR/CONTENDER-{out,in}.data (perf report -i FILE --no-children)
perf_run() {
    local c=$1 s pid perfs=()
    for s in out in; do
        [ "$s" = out ] && pid=${OUTPID[$c]} || pid=${INPID[$c]}
        perf record -q -g -o "$PERF_DIR/$c-$s.data" -p "$(side_pids "$pid" | paste -sd,)" \
            -- sleep $((DUR + 1)) >"$PERF_DIR/$c-$s.log" 2>&1 &
        perfs+=($!)
    done
    sleep 0.5 # perf attached
    REC_AS=_perf wrk_run "$c" nc -H "Connection: close"
    wait "${perfs[@]}"
    log "$c: profile in $PERF_DIR/$c-{out,in}.data"
}

if want ka; then
    for _ in $(seq "$RUNS"); do
        for c in "${OK[@]}"; do wrk_run "$c" ka; done
    done
fi
if want nc; then
    for _ in $(seq "$RUNS"); do
        for c in "${OK[@]}"; do wrk_run "$c" nc -H "Connection: close"; done
        if [ $RES_OK -eq 1 ]; then
            REC_AS=tollgate1 wrk_run tollgate1r rs -H "Connection: close"
        fi
    done
fi
if [ -n "$PERF_DIR" ]; then
    for c in "${OK[@]}"; do [ "$c" = direct ] || perf_run "$c"; done
fi
if want cfb; then
    for _ in $(seq "$RUNS"); do
        for c in "${OK[@]}"; do cfb_run "$c"; done
    done
fi
if want bulk; then
    for _ in $(seq "$RUNS"); do
        for c in "${OK[@]}"; do bulk_run "$c"; done
    done
fi

# ---------------------------------------------------------------------------- limits
measure_limits() {
    local v s vv
    for _ in $(seq "$RUNS"); do
        v=$(openssl speed -seconds 1 -bytes 16384 -evp aes-128-gcm 2>/dev/null |
            awk '/^AES-128-GCM/ {sub(/k$/, "", $NF); printf "%.3f", $NF * 1000 / 1e9}')
        [ -n "$v" ] && rec _limits aes_gbs "$v" || rec _limits aes_gbs_fail "openssl speed failed"
        read -r s vv < <(openssl speed -seconds 1 ecdsap256 2>/dev/null | awk '/ecdsa \(nistp256\)/ {print $(NF-1), $NF}')
        if [ -n "${s:-}" ]; then rec _limits sign "$s"; rec _limits verify "$vv"; else
            rec _limits sign_fail "openssl speed failed"; rec _limits verify_fail "openssl speed failed"; fi
    done
    log "limits measured"
}
want limits && measure_limits

# ---------------------------------------------------------------------------- report
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
meta ncpu "$NCPU"
meta kernel "$(uname -r)"
meta load_start "$LOAD_START"
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta elapsed "$(elapsed)"
meta versions "$(versions)"
meta runs "$RUNS"
meta dur "$DUR"
meta bulk_dur "$BULK_DUR"
meta order "${CONTENDERS[*]}"
meta figures "${FIGURES[*]}"
meta note "Session resumption is off in every full-handshake row: tollgate tls.resumption false (no tickets sent or offered); the resumed cell is tollgate with tls.resumption true (TLS 1.3 tickets, PSK with ECDHE); haproxy no-ssl-reuse on the client side, no-tls-tickets and tune.ssl.cachesize 0 on the server side; nginx proxy_ssl_session_reuse off, ssl_session_tickets off, ssl_session_cache off; stunnel sessionResume = no on the client side, options = NO_TICKET on the server side."
meta note "Peer name checks: tollgate checks the server's SPIFFE ID (expect); haproxy (verifyhost), nginx (proxy_ssl_name + verify) and stunnel (checkHost) check the server's DNS SAN, since they cannot match a URI SAN. Inbound sides verify the client chain against the CA (tollgate also requires exactly one valid SPIFFE ID in it); none has an allow-list. The ECDHE group is each library's default."
mkdir -p "$(dirname "$OUT_MD")"
python3 "$HELPER" render "$RES" "$META" | tee "$OUT_MD"
log "done in $(elapsed) s; table saved to $OUT_MD"

# shellcheck shell=bash
# What every netns test shares, sourced after it has set DIR (its scratch folder) and
# NAMESPACES (the namespaces it makes, all named with its own id): PIDS (the processes it
# starts) and the PASS/FAILED counts, the working directory $DIR (mode 755, so that the
# sidecars' uid reaches it), in_ns, the cleanup trap (its processes by pid, then anything left
# inside its own namespaces, then the namespaces; logs kept on failure or with KEEP=1),
# ok/fail/check in TAP form, veth_pair, wait_http, and the sidecars' start and stop.

PIDS=()
PASS=0 FAILED=0

# shellcheck disable=SC2034 # used by the tests that source this file
NETNS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) # for the shared files beside lib.sh

# Background processes are started with `ip netns exec` itself (never through a shell
# function), so $! is the process: ip and setpriv exec what they run.
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cleanup() {
    local p ns
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null; done
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for ns in "${NAMESPACES[@]}"; do
        # Anything still inside one of our own namespaces was started by this test.
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    if [ "${KEEP:-0}" = 1 ] || [ "$FAILED" -ne 0 ]; then
        echo "logs kept in $DIR"
    else
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
cd "$DIR" || exit 1
chmod 755 "$DIR"

ok() { PASS=$((PASS + 1)); echo "ok $PASS - $*"; }
fail() {
    FAILED=$((FAILED + 1))
    echo "not ok - $*"
    for f in "$DIR"/*.err "$DIR"/*.log; do
        [ -s "$f" ] && { echo "--- $f (last 15 lines)"; tail -15 "$f"; }
    done
    echo "$PASS passed, $FAILED failed"
    exit 1
}
check() { # description, command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

# veth_pair NS1 IP1 NS2 IP2: makes namespaces NS1 and NS2 joined by a veth pair (eth0 in
# each, IP1/24 and IP2/24), loopback up in both; fails the test if any step does.
veth_pair() {
    ip netns add "$1" && ip netns add "$3" &&
        ip link add eth0 netns "$1" type veth peer name eth0 netns "$3" &&
        ip -n "$1" link set lo up && ip -n "$3" link set lo up &&
        ip -n "$1" link set eth0 up && ip -n "$3" link set eth0 up &&
        ip -n "$1" addr add "$2/24" dev eth0 && ip -n "$3" addr add "$4/24" dev eth0 ||
        fail "namespaces $1 and $3"
}

# wait_http NS URL: up to 100 x 50 ms for URL to answer 2xx from inside NS.
wait_http() { # ns url
    for _ in $(seq 100); do
        in_ns "$1" curl -sf --max-time 1 -o /dev/null "$2" && return 0
        sleep 0.05
    done
    return 1
}

# Sidecars: `$TG run -c $DIR/NAME.yaml` in netns NS as the sidecar's uid ($PROXY_UID, which
# the capture rules exempt), logging to NAME.access.log and NAME.err; started waits for its
# /ready on 127.0.0.1:15000 in NS for up to TRIES x 50 ms (default 100), and fails at once if
# it exits. stop_sidecar NAME: SIGTERM, then SIGKILL if it is not gone within 10 s.
declare -A SIDECAR
start_sidecar() { # NAME NS [TRIES]
    ip netns exec "$2" setpriv --reuid="$PROXY_UID" --regid="$PROXY_UID" --clear-groups \
        "$TG" run -c "$DIR/$1.yaml" >>"$1.access.log" 2>>"$1.err" &
    SIDECAR[$1]=$!
    PIDS+=($!)
    for _ in $(seq "${3:-100}"); do
        in_ns "$2" curl -sf --max-time 1 -o /dev/null http://127.0.0.1:15000/ready && return 0
        kill -0 "${SIDECAR[$1]}" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
stop_sidecar() { # NAME
    local p=${SIDECAR[$1]}
    kill -TERM "$p" 2>/dev/null
    timeout 10 tail --pid="$p" -f /dev/null || kill -9 "$p" 2>/dev/null
}

# make_certs CN WHO...: in the current directory, a CA (ca.pem, ca.key) named CN and for each
# WHO an identity WHO.pem/WHO.key of spiffe://$TD/ns/default/sa/WHO; fails the test if
# tollgate-certs does.
make_certs() {
    local cn=$1 who
    shift
    {
        "$TG_CERTS_BIN" ca --out ca --cn "$cn"
        for who in "$@"; do
            "$TG_CERTS_BIN" issue --ca ca --out "$who" --spiffe "spiffe://$TD/ns/default/sa/$who"
        done
    } >certs.log 2>&1 || fail "tollgate-certs made the CA and identities"
}

# make_pods BRIDGE-NS POD:NS:IP...: the bridge namespace, then each pod namespace NS with lo
# up and an eth0 on the bridge (its peer there veth-POD) holding IP/24.
make_pods() {
    local br=$1 spec pod ns ip
    shift
    ip netns add "$br" && ip -n "$br" link set lo up &&
        ip -n "$br" link add br0 type bridge && ip -n "$br" link set br0 up ||
        fail "bridge namespace $br"
    for spec in "$@"; do
        IFS=: read -r pod ns ip <<<"$spec"
        ip netns add "$ns" &&
            ip link add eth0 netns "$ns" type veth peer name "veth-$pod" netns "$br" &&
            ip -n "$br" link set "veth-$pod" master br0 up &&
            ip -n "$ns" link set lo up && ip -n "$ns" link set eth0 up &&
            ip -n "$ns" addr add "$ip/24" dev eth0 || fail "pod namespace $ns with $ip"
    done
}

# copy_tollgate: a copy of $TG_BIN in $DIR as $TG, reachable for the sidecars' uid wherever
# the build is.
copy_tollgate() {
    cp "$TG_BIN" ./tollgate && chmod 755 ./tollgate || fail "copying $TG_BIN"
    TG=$DIR/tollgate
}

#!/usr/bin/env bash
# The VM capture policy (fail-closed, docs/operations.md "The capture policy"), with the
# shipped files: the capture unit's own ExecStart and ExecStop lines
# (deploy/vm/tollgate-iptables.service) and the shipped sidecar config
# (deploy/vm/tollgate.yaml, identity pointed at test certificates), in two namespaces this
# test makes and removes:
#
#   tg-sd-vm-PID (10.79.0.1): the rules, the sidecar (uid 1337), an app on :8080, sshd's :22
#   tg-sd-peer-PID (10.79.0.2): a plain server on :9090, outside the mesh
#
# Proves: with the sidecar running, the VM's outbound call reaches the peer (through the
# sidecar, mesh.outside: passthrough); with the sidecar stopped (as `systemctl stop tollgate`
# or a crash leaves it; the capture unit stays active), the call is refused at once, not left
# hanging, and never reaches the peer in clear; inbound to the app is refused too while :22
# (excluded) still answers; the capture unit's stop (ExecStop) removes the rules and the call
# goes out directly again, and the nat table is as before. Needs root, iproute2, iptables,
# curl, python3, setpriv. Exit 77 (ctest SKIP_RETURN_CODE) when not root or without netns.
set -uo pipefail

# shellcheck source=tests/netns/preflight.sh
source "$(dirname "$0")/preflight.sh"
netns_preflight "tg-sd-probe-$$" iptables-restore iptables-save curl python3 setpriv timeout
: "${TG_BIN:?TG_BIN must name the tollgate binary}"
: "${TG_CERTS_BIN:?TG_CERTS_BIN must name the tollgate-certs binary}"
SRC=${TG_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

ID=$$
NS_VM=tg-sd-vm-$ID NS_PEER=tg-sd-peer-$ID
IP_VM=10.79.0.1 IP_PEER=10.79.0.2
PROXY_UID=1337
DIR=$(mktemp -d /tmp/tg-netns-capture.XXXXXX)
NAMESPACES=("$NS_VM" "$NS_PEER")
# shellcheck source=tests/netns/lib.sh
source "$(dirname "$0")/lib.sh"

{
    "$TG_CERTS_BIN" ca --out ca --cn "capture policy test CA"
    "$TG_CERTS_BIN" issue --ca ca --out orders --spiffe spiffe://mesh.local/ns/shop/sa/orders
} >certs.log 2>&1 || fail "tollgate-certs made the CA and identity"
chown "$PROXY_UID:$PROXY_UID" orders.key
copy_tollgate
sed -e "s|/etc/tollgate/identity/|$DIR/|" -e 's|^workers: 0 |workers: 1 |' \
    "$SRC/deploy/vm/tollgate.yaml" >vm.yaml
# the capture unit's own command lines, on the binary under test
unit_exec() { sed -n "s|^$1=/usr/local/bin/tollgate ||p" "$SRC/deploy/vm/tollgate-iptables.service"; }
read -ra START <<<"$(unit_exec ExecStart)"
read -ra STOP <<<"$(unit_exec ExecStop)"
unit_cmds() { [ "${START[0]:-}" = init-iptables ] && [ "${STOP[*]:-}" = "init-iptables --clean" ]; }
check "the capture unit's ExecStart and ExecStop are init-iptables" unit_cmds

veth_pair "$NS_VM" "$IP_VM" "$NS_PEER" "$IP_PEER"

mkdir -p www
echo "peer says hello" >www/hello.txt
ip netns exec "$NS_PEER" python3 -u -m http.server 9090 --bind 0.0.0.0 --directory www >peer.log 2>&1 &
PIDS+=($!)
ip netns exec "$NS_VM" python3 -u -m http.server 8080 --bind 0.0.0.0 --directory www >app.log 2>&1 &
PIDS+=($!)
ip netns exec "$NS_VM" python3 -u -m http.server 22 --bind 0.0.0.0 --directory www >ssh.log 2>&1 &
PIDS+=($!)
check "peer's plain server listens" wait_http "$NS_PEER" "http://127.0.0.1:9090/hello.txt"
check "the VM's app and :22 listen" wait_http "$NS_VM" "http://127.0.0.1:22/hello.txt"
check "the VM's app listens on :8080" wait_http "$NS_VM" "http://127.0.0.1:8080/hello.txt"

nat() { in_ns "$NS_VM" iptables-save -t nat | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//'; }
nat >nat-before.txt
check "capture unit start: ${START[*]}" in_ns "$NS_VM" "$TG" "${START[@]}"
check "the sidecar starts (shipped config)" start_sidecar vm "$NS_VM"
check "sidecar running: the VM's call reaches the peer (outside: passthrough)" \
    in_ns "$NS_VM" curl -sf --max-time 5 -o /dev/null "http://$IP_PEER:9090/hello.txt?running"
check "the sidecar carried it (access log)" grep -q "capture-out" vm.access.log

# what `systemctl stop tollgate` leaves (and a crash, until Restart= brings it back): the
# capture unit still active, its rules in place
stop_sidecar vm
check "sidecar stopped: the capture rules stay" grep -q TOLLGATE_OUTPUT <(nat)
t0=$(date +%s%N)
in_ns "$NS_VM" curl -s --max-time 5 -o /dev/null "http://$IP_PEER:9090/hello.txt?stopped"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "sidecar stopped: the call is refused (curl exit 7), got $rc" [ "$rc" = 7 ]
check "sidecar stopped: refused at once ($ms ms < 1000), not left hanging" [ "$ms" -lt 1000 ]
check "sidecar stopped: nothing reached the peer in clear" \
    bash -c "! grep -q 'hello.txt?stopped' peer.log"
in_ns "$NS_PEER" curl -s --max-time 5 -o /dev/null "http://$IP_VM:8080/hello.txt?inbound"
rc=$?
check "sidecar stopped: inbound to the app is refused (curl exit 7), got $rc" [ "$rc" = 7 ]
check "sidecar stopped: the app saw nothing" bash -c "! grep -q 'hello.txt?inbound' app.log"
check "sidecar stopped: :22 (excluded) still answers from the peer" \
    in_ns "$NS_PEER" curl -sf --max-time 5 -o /dev/null "http://$IP_VM:22/hello.txt"

# `systemctl stop tollgate-iptables`: the way to open the machine on purpose
check "capture unit stop: ${STOP[*]}" in_ns "$NS_VM" "$TG" "${STOP[@]}"
check "capture removed: the call goes out directly" \
    in_ns "$NS_VM" curl -sf --max-time 5 -o /dev/null "http://$IP_PEER:9090/hello.txt?opened"
nat >nat-after.txt
check "capture removed: the nat table is as before" cmp -s nat-before.txt nat-after.txt

echo "$PASS passed, $FAILED failed"

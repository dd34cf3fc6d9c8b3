#!/usr/bin/env bash
# One dialect: the sections of tests/config/shared.yaml (a rule, a limit, a destination) are
# accepted unchanged by `tollgate check` (in the sidecar's config) and by `tollgate-cp check`
# (in a mesh file), and each old spelling is refused by both with the new one named; the
# sidecar's tls: and timeouts: blocks (tests/config/settings.yaml) are taken unchanged under
# tollgate-cp's settings:, whose first spellings are refused naming the sidecar's keys.
set -euo pipefail
SIDECAR=${TG_BIN:?set TG_BIN to the tollgate binary}
CP=${TG_CP_BIN:?set TG_CP_BIN to the tollgate-cp binary}
CERTS=${TG_CERTS_BIN:?set TG_CERTS_BIN to the tollgate-certs binary}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
cd "$DIR"

fail() { echo "FAIL: $*" >&2; exit 1; }

"$CERTS" ca --out ca >/dev/null
"$CERTS" issue --ca ca --out web --spiffe spiffe://mesh.local/ns/default/sa/web >/dev/null
"$CERTS" issue --ca ca --out cp --spiffe spiffe://mesh.local/tollgate-cp >/dev/null

# sidecar.yaml = its own keys + the shared sections; mesh.yaml = the shared sections
write_configs() { # $1: the shared sections
    {
        echo "identity: {cert: web.pem, key: web.key, trust_bundle: ca.pem}"
        echo "inbound:"
        echo "  - {listen: 127.0.0.1:15006, upstream: 127.0.0.1:8080}"
        cat "$1"
    } >sidecar.yaml
    cp "$1" mesh.yaml
    printf '%s\n' "trust_domain: mesh.local" "server: {cert: cp.pem, key: cp.key}" \
        "ca: {cert: ca.pem, key: ca.key}" "listen: 127.0.0.1:0" "mesh: [mesh.yaml]" >cp.yaml
}

write_configs "$HERE/shared.yaml"
"$SIDECAR" check -c sidecar.yaml >out 2>&1 || fail "tollgate check refused: $(cat out)"
"$CP" check -c cp.yaml >out 2>&1 || fail "tollgate-cp check refused: $(cat out)"
grep -q '1 rules, 2 limits, 1 revoked, 1 destinations' out || fail "tollgate-cp: $(cat out)"

# old spelling | the new one named
while IFS='|' read -r old new; do
    sed -e "$old" "$HERE/shared.yaml" >old.yaml
    write_configs old.yaml
    for bin in "$SIDECAR check -c sidecar.yaml" "$CP check -c cp.yaml"; do
        if $bin >out 2>&1; then
            fail "$bin took the old spelling ($old)"
        fi
        grep -q "renamed to '$new'" out || fail "$bin ($old): $(cat out)"
    done
done <<'CASES'
s/  default: deny/  default_deny: true/|default
s/  close_denied:/  close_denied_connections:/|close_denied
s/      scope: .*/      namespace: prod/|scope.namespace
s/    - principal:/    - match:/|principal
s/  key: id/  key_by: id/|key
s/^mesh:/mesh_table:/|mesh
s/  outside:/  outside_mesh:/|outside
s/      expect:/      expected_ids:/|expect
s/^revocations:/revocation:/|revocations
CASES
# tollgate-cp's settings: the sidecar's own tls: and timeouts: blocks, written under settings:
write_configs "$HERE/shared.yaml"
grep -v '^#' "$HERE/settings.yaml" >>sidecar.yaml
{
    echo "settings:"
    grep -v '^#' "$HERE/settings.yaml" | sed 's/^/  /'
} >>mesh.yaml
"$SIDECAR" check -c sidecar.yaml >out 2>&1 || fail "tollgate check refused tls/timeouts: $(cat out)"
"$CP" check -c cp.yaml >out 2>&1 || fail "tollgate-cp check refused settings: $(cat out)"

# settings' first spellings (tollgate-cp only): refused, the sidecar's key named
while IFS='|' read -r old new; do
    printf 'settings:\n  %s\n' "$old" >mesh.yaml
    if "$CP" check -c cp.yaml >out 2>&1; then
        fail "tollgate-cp took the old spelling ($old)"
    fi
    grep -q "renamed to '$new'" out || fail "tollgate-cp ($old): $(cat out)"
done <<'CASES'
min_tls_version: "1.2"|tls.min_version
cipher_suites: [TLS13-AES128-GCM-SHA256]|tls.cipher_suites
inbound_mode: strict|inbound.mode
CASES
echo "ok: one dialect, old spellings refused by both"

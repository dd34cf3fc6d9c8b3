#!/usr/bin/env bash
# Validates the deployment files without a cluster (there is none here): YAML parses,
# kustomize renders (tests/deploy's own renderer, and kustomize or kubectl when present),
# required fields, Kubernetes schemas (npm kubernetes-models, when installed in .cache/npm),
# the capture arguments against `tollgate init-iptables --dry-run`, the VM config against
# `tollgate check`, the systemd units against `systemd-analyze verify`, the Dockerfile, and
# the configs in the ConfigMaps against `tollgate-cp check` and `tollgate check` with every
# file they name where the pod's mounts would put it.
# See tests/deploy/check_manifests.py. Needs python3 with python3-yaml.
set -euo pipefail

SRC=${TG_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
WORK=$(mktemp -d /tmp/tg-deploy.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if ! python3 -c 'import yaml' 2>/dev/null; then
    echo "FAIL: python3 cannot import yaml: install the Debian package python3-yaml"
    exit 1
fi

# The kustomizations render from a copy, with throwaway key material where the real one goes
# (deploy/k8s/base/ca/ is never committed), made the way deploy/README.md says.
cp -r "$SRC/deploy/k8s" "$WORK/k8s"
CA="$WORK/k8s/base/ca"
rm -f "$CA"/*.pem "$CA"/*.key
if [ -n "${TG_CERTS_BIN:-}" ]; then
    "$TG_CERTS_BIN" ca --out "$CA/ca" --cn "manifest test CA" >/dev/null
    "$TG_CERTS_BIN" issue --ca "$CA/ca" --out "$CA/cp" \
        --spiffe spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp >/dev/null
else
    for f in ca.pem ca.key cp.pem cp.key; do printf 'placeholder\n' >"$CA/$f"; done
fi

export NODE_PATH="${NODE_PATH:-$SRC/.cache/npm/node_modules}"
python3 "$SRC/tests/deploy/check_manifests.py" "$SRC" "$WORK"

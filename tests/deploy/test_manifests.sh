#!/usr/bin/env bash
# Validates the deployment files without a cluster (there is none here): YAML parses,
# kustomize renders (tests/deploy's own renderer, and kustomize or kubectl when present),
# required fields, Kubernetes schemas (npm kubernetes-models, when installed in .cache/npm),
# the capture arguments against `tollgate init-iptables --dry-run`, the VM config against
# `tollgate check`, the systemd units against `systemd-analyze verify`, and the Dockerfile.
# See tests/deploy/check_manifests.py. Needs python3 with python3-yaml.
set -euo pipefail

SRC=${TG_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
WORK=$(mktemp -d /tmp/tg-deploy.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if ! python3 -c 'import yaml' 2>/dev/null; then
    echo "FAIL: python3 cannot import yaml: install the Debian package python3-yaml"
    exit 1
fi

# The kustomizations render from a copy, with a throwaway CA where the real one goes
# (deploy/k8s/base/ca/ is never committed).
cp -r "$SRC/deploy/k8s" "$WORK/k8s"
rm -f "$WORK/k8s/base/ca/ca.pem" "$WORK/k8s/base/ca/ca.key"
if [ -n "${TG_CERTS_BIN:-}" ]; then
    "$TG_CERTS_BIN" ca --out "$WORK/k8s/base/ca/ca" --cn "manifest test CA" >/dev/null
else
    printf 'placeholder certificate\n' >"$WORK/k8s/base/ca/ca.pem"
    printf 'placeholder key\n' >"$WORK/k8s/base/ca/ca.key"
fi

export NODE_PATH="${NODE_PATH:-$SRC/.cache/npm/node_modules}"
python3 "$SRC/tests/deploy/check_manifests.py" "$SRC" "$WORK"

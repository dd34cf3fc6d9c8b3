#!/usr/bin/env bash
# bench/k8s_scale.sh — tollgate-cp as a Kubernetes controller at 5,000 pods, 1,000 services
# and 500 sidecar streams (issue 14's benchmark): time from an API event to the last
# affected ACK, tollgate-cp's CPU and peak RSS, bytes pushed per pod change. Not a timed
# test: run it by hand, from a Release build. See bench/README.md.
#
# Arguments go to bench/k8s_scale.py (--pods, --services, --namespaces, --sidecars, --events,
# --port-base (45000), --out, --keep; --help lists them). Environment: TOLLGATE_BUILD_DIR
# (build). The table is also written to build/bench-k8s-latest.md unless --out says where.
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${TOLLGATE_BUILD_DIR:-$ROOT/build}
for b in tollgate-cp tollgate-certs bench/cp_sim; do
    [ -x "$BUILD/$b" ] || {
        echo "k8s_scale: $BUILD/$b missing: cmake --build build --target tollgate-cp tollgate-certs cp_sim" >&2
        exit 1
    }
done
for c in python3 openssl; do command -v $c >/dev/null || { echo "k8s_scale: $c is needed" >&2; exit 1; }; done
# two ends of 500 streams, and the API server's connections, in one process each
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
out=()
case " $* " in *" --out "*) ;; *) out=(--out "$BUILD/bench-k8s-latest.md") ;; esac
exec python3 "$BENCH_DIR/k8s_scale.py" --build "$BUILD" "${out[@]}" "$@"

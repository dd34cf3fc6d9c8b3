#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test through ctest: unit tests,
# integration tests (real sidecars, echo servers and openssl clients on loopback) and the
# fuzz corpus replays. Exit status is ctest's.
#   TOLLGATE_TEST_ARGS   extra ctest arguments (e.g. "-R proxy")
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TOLLGATE_BUILD_DIR:-$ROOT/build}

"$ROOT/scripts/setup.sh"

echo "test: running ctest in $BUILD"
# shellcheck disable=SC2086
ctest --test-dir "$BUILD" --output-on-failure --timeout 900 ${TOLLGATE_TEST_ARGS:-}

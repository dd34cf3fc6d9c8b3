#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test through ctest:
#   1. the Release build in build/: unit tests, integration tests (real sidecars, echo servers
#      and openssl clients on loopback), network-namespace interception tests, the fuzz corpus
#      replays, and the deployment-file checks;
#   2. the same unit and integration tests again against an AddressSanitizer + UBSan build in
#      build-asan/ (leak detection on; any finding fails the run).
# Environment: TOLLGATE_TEST_ARGS (extra ctest arguments, e.g. "-R proxy"),
#              TOLLGATE_QUICK=1 (skip the sanitizer pass).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TOLLGATE_BUILD_DIR:-$ROOT/build}
ASAN_BUILD=$ROOT/build-asan

"$ROOT/scripts/setup.sh"

echo "test: [1/2] Release build ($BUILD)"
# shellcheck disable=SC2086
ctest --test-dir "$BUILD" --output-on-failure --timeout 900 ${TOLLGATE_TEST_ARGS:-}

if [ "${TOLLGATE_QUICK:-0}" = 1 ]; then
    echo "test: sanitizer pass skipped (TOLLGATE_QUICK=1)"
    exit 0
fi
echo "test: [2/2] AddressSanitizer + UBSan build ($ASAN_BUILD)"
cmake -S "$ROOT" -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=Debug -DTOLLGATE_SANITIZE=ON >/dev/null
cmake --build "$ASAN_BUILD" -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# shellcheck disable=SC2086
ctest --test-dir "$ASAN_BUILD" --output-on-failure --timeout 900 -L "unit|integration" \
    ${TOLLGATE_TEST_ARGS:-}

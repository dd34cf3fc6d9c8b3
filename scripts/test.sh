#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test:
#   0. lint: clang-format drift, cppcheck and shellcheck findings fail (scripts/lint.sh);
#   1. ctest on the Release build in build/: unit tests, integration tests (real sidecars, echo
#      servers and openssl clients on loopback), network-namespace interception tests, the
#      fuzz corpus replays, and the deployment-file checks;
#   2. the unit tests under valgrind (definite leaks and memory errors fail);
#   3. the unit and integration tests against an AddressSanitizer + UBSan build (build-asan/),
#      while stage 4's build runs beside them at the lowest priority;
#   4. every fuzzer under libFuzzer for TOLLGATE_FUZZ_SECONDS (6) each, TOLLGATE_FUZZ_JOBS
#      (one per core) at a time (build-fuzz/, clang).
# `scripts/test.sh quick`: set-up, lint and the unit tests only (ctest -L unit), under two
# minutes once set up: the loop to run while working.
# Environment: TOLLGATE_TEST_ARGS (extra ctest arguments, e.g. "-R proxy"),
#              TOLLGATE_QUICK=1 (same as quick), TOLLGATE_FUZZ_SECONDS (a long fuzzing run:
#              TOLLGATE_FUZZ_SECONDS=600), TOLLGATE_FUZZ_JOBS, TOLLGATE_TEST_JOBS (tests ctest
#              runs at a time in stage 1: two per core, as most integration tests wait on
#              timers), TOLLGATE_ASAN_JOBS (the same in stage 3: two per core too, a test
#              that keeps a core busy under ASan taking two places).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TOLLGATE_BUILD_DIR:-$ROOT/build}
FUZZ_SECONDS=${TOLLGATE_FUZZ_SECONDS:-6}
TEST_JOBS=${TOLLGATE_TEST_JOBS:-$((2 * $(nproc)))}
FUZZ_JOBS=${TOLLGATE_FUZZ_JOBS:-$(nproc)}
ASAN_JOBS=${TOLLGATE_ASAN_JOBS:-$((2 * $(nproc)))}

QUICK=${TOLLGATE_QUICK:-0}
case "${1:-}" in
quick) QUICK=1 ;;
"") ;;
*)
    echo "usage: scripts/test.sh [quick]" >&2
    exit 2
    ;;
esac

# stage NAME: starts a stage, saying the time so far; each stage's time is listed at the end
stage_name="set-up" stage_t0=0 stage_times=()
stage() {
    stage_times+=("$(printf '%-46s %4d s' "$stage_name" $((SECONDS - stage_t0)))")
    stage_name=$1 stage_t0=$SECONDS
    echo "test: $1 ($((SECONDS / 60)) min $((SECONDS % 60)) s so far)"
}
stage_summary() {
    stage "end"
    printf 'test:   %s\n' "${stage_times[@]}"
}

"$ROOT/scripts/setup.sh"

stage "[0/4] lint"
TOLLGATE_BUILD_DIR="$BUILD" "$ROOT/scripts/lint.sh"

if [ "$QUICK" = 1 ]; then
    stage "[1/4] unit tests, Release build"
    # shellcheck disable=SC2086
    ctest --test-dir "$BUILD" --output-on-failure --timeout 300 -j"$(nproc)" -L unit \
        ${TOLLGATE_TEST_ARGS:-}
    stage_summary
    echo "test: quick: lint and unit tests passed in $((SECONDS / 60)) min $((SECONDS % 60)) s" \
        "(stages 2-4 and the integration tests: scripts/test.sh)"
    exit 0
fi

stage "[1/4] ctest, Release build"
# -j: everything runs in parallel (integration tests claim their ports across processes) but
# the load test, which is RUN_SERIAL (tests/CMakeLists.txt); two per core, because most
# integration tests spend their time waiting on timers (renewals, outages, backoffs); per-test
# times are in $BUILD/Testing/Temporary/LastTest.log
# shellcheck disable=SC2086
ctest --test-dir "$BUILD" --output-on-failure --timeout 900 -j"$TEST_JOBS" ${TOLLGATE_TEST_ARGS:-}

stage "[2/4] unit tests under valgrind, $(nproc) at a time"
# what ctest gives every test (tests/CMakeLists.txt, TG_TEST_ENV)
export TG_BIN="$BUILD/tollgate" TG_CERTS_BIN="$BUILD/tollgate-certs" TG_CP_BIN="$BUILD/tollgate-cp"
export TG_SOURCE_DIR="$ROOT"
valgrind_one() { # test binary; its log is kept beside it
    local log
    log="$(dirname "$1")/../valgrind-$(basename "$1").log"
    if ! CK_FORK=no valgrind -q --error-exitcode=9 --leak-check=full \
        --errors-for-leak-kinds=definite "$1" >"$log" 2>&1; then
        tail -40 "$log"
        echo "test: valgrind: $(basename "$1") failed" >&2
        return 1
    fi
    echo "valgrind: $(basename "$1"): clean"
}
export -f valgrind_one
# the longest first (by stage 1's times of the same tests, ctest's CTestCostData.txt), so that
# the last to start is a short one: test_tls, last but two by name, used to run alone at the end
costs="$BUILD/Testing/Temporary/CTestCostData.txt"
find "$BUILD/tests" -maxdepth 1 -name 'test_*' -type f -executable |
    awk -v costs="$costs" 'BEGIN { while ((getline l < costs) > 0) { split(l, f, " ");
        sub("^unit/", "", f[1]); t[f[1]] = f[3] } }
        { n = $0; sub(".*/", "", n); printf "%s\t%s\n", (n in t ? t[n] : 0), $0 }' |
    sort -k1,1gr | cut -f2 | tr '\n' '\0' |
    xargs -0 -n1 -P"$(nproc)" bash -c 'valgrind_one "$0"' || {
    echo "test: valgrind found errors (above)" >&2
    exit 1
}

stage "[3/4] AddressSanitizer + UBSan build (build-asan)"
cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DTOLLGATE_SANITIZE=ON >/dev/null
# what stage 3 runs (tg_check_programs, tests/CMakeLists.txt): not the fuzz replays (stage 4
# runs their corpora under ASan) nor the benchmarks
cmake --build "$ROOT/build-asan" -j"$(nproc)" --target tg_check_programs
stage "[3/4] unit and integration tests, AddressSanitizer + UBSan"
# Stage 4's libFuzzer build runs meanwhile at the lowest priority (nice 19): the tests of stage
# 3 mostly wait on timers, and the build takes only the CPU time they leave. In its own process
# group, so that a failure of stage 3 ends it; stage 4 waits for it.
CC=clang cmake -S "$ROOT" -B "$ROOT/build-fuzz" -DCMAKE_BUILD_TYPE=Debug -DTOLLGATE_FUZZ=ON \
    >/dev/null
targets=()
for src in "$ROOT"/tests/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
setsid nice -n 19 cmake --build "$ROOT/build-fuzz" -j"$(nproc)" --target "${targets[@]}" \
    >"$ROOT/build-fuzz/build.log" 2>&1 &
fuzz_build=$!
trap 'kill -- -"$fuzz_build" 2>/dev/null || true' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# two places per core (TOLLGATE_ASAN_JOBS): most integration tests wait on timers with a core
# mostly idle and take one place, while the unit tests and the tests that keep a core busy
# under ASan (an unoptimised sidecar streaming, the openssl-made hostile peers) take two
# (PROCESSORS 2, IT_ASAN_HEAVY in tests/CMakeLists.txt): two busy tests at most, as at -j2
# before (at two busy tests per core, on a loaded machine, the long timelines of renewals and
# a push storm missed their deadlines). Not test_load: it measures rates, RSS and CPU time,
# alone (RUN_SERIAL), which under ASan is a minute of the budget measuring nothing; the paths
# it drives run under ASan at smaller scale in test_proxy (200 concurrent connections,
# upstream refusals), test_refusals (silent and leaving clients) and test_hostile. Nor
# test_tunnel_rotation: its point is 100 streams on time through each rotation, which ASan's
# slowness shrinks to 25 with longer bounds; the tunnel paths it drives (GOAWAY, retries,
# drains, a revoked peer) run under ASan in test_tunnel_out and test_tunnel.
# shellcheck disable=SC2086
ctest --test-dir "$ROOT/build-asan" --output-on-failure --timeout 900 -j"$ASAN_JOBS" \
    -L "unit|integration" -E "^integration/(test_load|test_tunnel_rotation/.*)$" \
    ${TOLLGATE_TEST_ARGS:-}

stage "[4/4] libFuzzer build (build-fuzz), the rest of it"
if ! wait "$fuzz_build"; then
    tail -40 "$ROOT/build-fuzz/build.log"
    echo "test: the libFuzzer build failed (above; all of it in build-fuzz/build.log)" >&2
    exit 1
fi
trap - EXIT
stage "[4/4] libFuzzer, ${FUZZ_SECONDS}s per target, $FUZZ_JOBS at a time"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# new inputs go to a scratch copy of each corpus; a crash leaves its input in $scratch/<name>.out
fuzz_one() {
    local t=$1 name=${1#fuzz_}
    mkdir -p "$scratch/$name" "$scratch/$name.out"
    cp "$ROOT/tests/fuzz/corpus/$name"/* "$scratch/$name/"
    (cd "$scratch/$name.out" && "$ROOT/build-fuzz/tests/$t" -max_total_time="$FUZZ_SECONDS" \
        -print_final_stats=1 -artifact_prefix="$scratch/$name.out/" "$scratch/$name" \
        >"$scratch/$t.log" 2>&1)
}
fuzz_done() { # target, exit status
    local t=$1 name=${1#fuzz_}
    if [ "$2" != 0 ]; then
        tail -40 "$scratch/$t.log"
        echo "test: $t found a failure; its input is above (add it to tests/fuzz/corpus/$name)" >&2
        trap - EXIT
        exit 1
    fi
    echo "fuzz: $t: $(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' "$scratch/$t.log" |
        awk '{print $2}') runs, $(grep -o 'cov: [0-9]*' "$scratch/$t.log" | tail -1), no failure"
}
# FUZZ_JOBS fuzzers at a time (one per core)
running=()
for t in "${targets[@]}"; do
    fuzz_one "$t" &
    running+=("$t:$!")
    if [ "${#running[@]}" -ge "$FUZZ_JOBS" ]; then
        status=0
        wait "${running[0]#*:}" || status=$?
        fuzz_done "${running[0]%%:*}" "$status"
        running=("${running[@]:1}")
    fi
done
for r in "${running[@]}"; do
    status=0
    wait "${r#*:}" || status=$?
    fuzz_done "${r%%:*}" "$status"
done
stage_summary
echo "test: all stages passed in $((SECONDS / 60)) min $((SECONDS % 60)) s"

#!/usr/bin/env bash
# The habits the suite enforces before it builds anything (scripts/test.sh, stage 0):
#   - clang-format: every tracked .c/.h file as .clang-format says (fix: clang-format -i FILE);
#   - cppcheck: no finding in our C (warning, portability and performance classes; errors
#     are always on);
#   - shellcheck: no warning in any of our shell scripts;
#   - links: every relative link of every tracked *.md resolves inside the repo, anchors
#     included (scripts/check_links.py).
# Needs clang-format, cppcheck and shellcheck (scripts/setup.sh installs them), and the
# generated protobuf header from a build (BUILD, default build/) so cppcheck sees its types.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TOLLGATE_BUILD_DIR:-$ROOT/build}
cd "$ROOT"
failed=0

mapfile -t c_files < <(git ls-files '*.c' '*.h')
mapfile -t sh_files < <(git ls-files '*.sh' .ci/run)

if ! out=$(clang-format --dry-run --Werror "${c_files[@]}" 2>&1); then
    echo "$out" | grep -E '^[^ ].*: (error|warning):' | head -20
    echo "lint: clang-format: the files above drift from .clang-format (clang-format -i FILE)" >&2
    failed=1
fi

# varFuncNullUB: NULL closes our variadic argument lists; glibc defines it as ((void *)0).
# missingIncludeSystem: cppcheck is not given the system headers.
if ! cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
    --inline-suppr --suppress=missingIncludeSystem --suppress=varFuncNullUB \
    -I include -I sidecar/datapath -I "$BUILD/proto" -I tests/integration -I tests/unit \
    -j"$(nproc)" lib sidecar controlplane certs tests bench; then
    echo "lint: cppcheck: findings above" >&2
    failed=1
fi

if ! shellcheck -S warning "${sh_files[@]}"; then
    echo "lint: shellcheck: findings above" >&2
    failed=1
fi

if ! python3 "$ROOT/scripts/check_links.py"; then
    echo "lint: links: the links above do not resolve inside the repo" >&2
    failed=1
fi

[ "$failed" = 0 ] || exit 1
echo "lint: clang-format, cppcheck, shellcheck and links clean (${#c_files[@]} C files, ${#sh_files[@]} scripts)"

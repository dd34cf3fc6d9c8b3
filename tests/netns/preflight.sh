# shellcheck shell=bash
# Sourced first by every netns test: netns_preflight PROBE TOOL... exits 77 (ctest's
# SKIP_RETURN_CODE) when this is not root or a network namespace cannot be made (it tries one
# named PROBE, which the caller names with its own id), and 1 when a TOOL is missing.
netns_preflight() {
    local probe=$1 tool pkg
    shift
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP: needs root (network namespaces and iptables)"
        exit 77
    fi
    if ! ip netns add "$probe" 2>/dev/null; then
        echo "SKIP: cannot make a network namespace here (ip netns add failed)"
        exit 77
    fi
    ip netns del "$probe"
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 && continue
        case $tool in
        ip*tables*) pkg=iptables ;; setpriv | timeout) pkg="util-linux / coreutils" ;;
        *) pkg=$tool ;;
        esac
        echo "FAIL: $tool not found: install the Debian package $pkg (scripts/setup.sh)"
        exit 1
    done
}

#!/usr/bin/env bash
# Installs what tollgate needs to build and test, then builds it. Safe to run again:
# every step skips what is already in place.
#   - Debian packages (apt), only the missing ones;
#   - wolfSSL 5.5.4 from Debian's own source package (with Debian's security patches),
#     configured with AES-NI and the Intel assembly, into .cache/wolfssl (ignored by git);
#   - the CMake build in build/ (Release).
# Environment: TOLLGATE_BUILD_DIR (default build), TOLLGATE_SKIP_BUILD=1 to stop after deps.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="$ROOT/.cache"
WOLF_PREFIX="$CACHE/wolfssl"
BUILD_DIR=${TOLLGATE_BUILD_DIR:-$ROOT/build}

# The features tollgate uses (DEVELOPERS.md). Changing this list rebuilds wolfSSL.
WOLF_CONFIGURE=(
    --enable-tls13 --enable-crl --enable-ocsp --enable-session-ticket --enable-sni
    --enable-alpn --enable-opensslextra --enable-certgen --enable-certreq --enable-certext
    --enable-keygen --enable-curve25519 --enable-ed25519 --enable-aesni --enable-intelasm
    --enable-sp --enable-sp-asm --enable-fpecc --enable-harden --disable-hashdrbg
    --disable-oldtls --disable-examples --disable-crypttests --disable-benchmark
    --enable-static --disable-shared
)
# WOLFSSL_ALT_NAMES: SAN encoding in certgen; WOLFSSL_ALWAYS_VERIFY_CB: our verify callback
# sees every leaf, valid or not, so the SPIFFE checks run inside the handshake;
# NO_ERROR_QUEUE: no global lock and allocation per wolfSSL error (we read ssl errors directly);
# CUSTOM_RAND_GENERATE_BLOCK (with --disable-hashdrbg): every random byte from the kernel, through
# tg_rand_block (lib/pki/rand.c), instead of a DRBG self-tested and seeded for every session; its
# prototype is in wolfssl-src/tollgate_rand.h, which build_wolfssl writes.
# FP_ENTRIES=4 (with --enable-fpecc): each thread keeps multiplication tables for the 4 points
# it meets most (the peers' keys, for their CertificateVerify); the default 16 makes every
# thread's static TLS 371 KB instead of 100 KB, zeroed and resident from the thread's start:
# 1.6 MB more per sidecar.
WOLF_CFLAGS="-O2 -fPIC -DWOLFSSL_ALT_NAMES -DWOLFSSL_ALWAYS_VERIFY_CB -DNO_ERROR_QUEUE -DFP_ENTRIES=4"
WOLF_CFLAGS+=" -DCUSTOM_RAND_GENERATE_BLOCK=tg_rand_block -include ./tollgate_rand.h"

PACKAGES=(
    build-essential cmake pkg-config git ca-certificates
    libuv1-dev libprotobuf-c-dev protobuf-c-compiler check libsubunit-dev libyaml-dev libjansson-dev
    libcurl4-openssl-dev libnghttp2-dev python3-grpcio python3-grpc-tools
    openssl curl python3 python3-yaml iptables iproute2 procps psmisc tcpdump util-linux nginx
    autoconf automake libtool dpkg-dev clang libclang-rt-14-dev valgrind
    clang-format cppcheck shellcheck debhelper fakeroot prometheus
)

log() { printf 'setup: %s\n' "$*"; }

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "packages: all present"
        return
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# apt-get source needs deb-src entries; make a private copy of the machine's sources so the
# system's apt configuration is left as it is.
fetch_wolfssl_source() {
    local srcdir="$CACHE/apt-src"
    rm -rf "$srcdir" && mkdir -p "$srcdir/parts" "$srcdir/lists/partial" "$srcdir/get"
    local f n=0
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$srcdir/parts/$(basename "$f")"
        n=$((n + 1))
    done
    if [ -f /etc/apt/sources.list ]; then
        grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
            >"$srcdir/parts/from-sources-list.list" || true
        n=$((n + 1))
    fi
    [ "$n" -gt 0 ] || { echo "setup: no apt sources found to derive deb-src from" >&2; exit 1; }
    local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$srcdir/parts"
                -o "Dir::State::Lists=$srcdir/lists")
    apt-get "${opts[@]}" update -q
    (cd "$srcdir/get" && apt-get "${opts[@]}" source -q wolfssl)
    local d
    d=$(find "$srcdir/get" -maxdepth 1 -mindepth 1 -type d -name 'wolfssl-*' | head -1)
    [ -n "$d" ] || { echo "setup: apt-get source wolfssl unpacked nothing" >&2; exit 1; }
    rm -rf "$CACHE/wolfssl-src"
    mv "$d" "$CACHE/wolfssl-src"
    rm -rf "$srcdir"
}

build_wolfssl() {
    local stamp="$WOLF_PREFIX/.tollgate-stamp"
    local want="${WOLF_CONFIGURE[*]} CFLAGS=$WOLF_CFLAGS"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
        [ -f "$WOLF_PREFIX/lib/libwolfssl.a" ]; then
        log "wolfSSL: cached in $WOLF_PREFIX"
        return
    fi
    mkdir -p "$CACHE"
    [ -f "$CACHE/wolfssl-src/configure.ac" ] || fetch_wolfssl_source
    log "wolfSSL: building $(cd "$CACHE/wolfssl-src" && dpkg-parsechangelog -S Version 2>/dev/null)"
    (
        cd "$CACHE/wolfssl-src"
        [ -x configure ] || ./autogen.sh >/dev/null
        printf '%s\n' '/* scripts/setup.sh: wolfSSL draws its random bytes from tollgate (lib/pki/rand.c) */' \
            '#ifndef __ASSEMBLER__' 'int tg_rand_block(unsigned char *out, unsigned int sz);' \
            '#endif' >tollgate_rand.h
        make distclean >/dev/null 2>&1 || true
        ./configure --prefix="$WOLF_PREFIX" "${WOLF_CONFIGURE[@]}" CFLAGS="$WOLF_CFLAGS" >/dev/null
        make -j"$(nproc)" >/dev/null
        rm -rf "$WOLF_PREFIX"
        make install >/dev/null
    )
    echo "$want" >"$stamp"
    log "wolfSSL: installed into $WOLF_PREFIX"
}

# The Kubernetes schemas the manifest test checks against, when npm is there (optional: the
# test says so and checks the rest without them).
install_schemas() {
    command -v npm >/dev/null 2>&1 || { log "npm absent: manifest schema check will be skipped"; return; }
    [ -d "$CACHE/npm/node_modules/kubernetes-models" ] && return
    mkdir -p "$CACHE/npm"
    npm install --prefix "$CACHE/npm" --no-audit --no-fund --silent kubernetes-models@4.5.1 \
        >/dev/null 2>&1 || log "npm install kubernetes-models failed: schema check will be skipped"
}

build_tollgate() {
    [ "${TOLLGATE_SKIP_BUILD:-0}" = 1 ] && return
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)"
}

main() {
    if [ "$(id -u)" -ne 0 ] && [ "${TOLLGATE_NO_APT:-0}" != 1 ]; then
        echo "setup: run as root (apt-get), or set TOLLGATE_NO_APT=1 if packages are present" >&2
        exit 1
    fi
    [ "${TOLLGATE_NO_APT:-0}" = 1 ] || install_packages "$@"
    build_wolfssl
    install_schemas
    build_tollgate
}

main "$@"

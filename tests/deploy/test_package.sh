#!/usr/bin/env bash
# The Debian package (debian/): built by `dpkg-buildpackage -us -uc -b` from a copy of the
# tree (it writes ../*.deb: never into the source tree's parent), unpacked into a clean root
# with `dpkg -x` (the machine's dpkg database is not touched), and checked: its files, modes
# and conffiles; its dependencies (the shared libraries it links, by shlibs; no libwolfssl:
# wolfSSL is inside, with AES-NI); the units' paths. Then, in a private mount namespace over
# a copy of /etc and an empty /run, its maintainer scripts for real: postinst makes the
# user tollgate with uid 1337 and refuses, with a message, when uid 1337 is someone else's;
# no unit is enabled or started on installation; an upgrade restarts a running sidecar;
# removal stops the sidecar and the capture rules. Last, the installed `tollgate check`, run
# as the user tollgate, accepts the shipped /etc/tollgate/tollgate.yaml once an identity is
# in place as the docs say. Needs root (mount namespace); exit 77 when it cannot run.
set -euo pipefail

SRC=${TG_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
N=0
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { N=$((N + 1)); echo "ok $N - $*"; }
skip() { echo "SKIP: $*"; exit 77; }

command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null ||
    skip "dpkg-buildpackage or debhelper missing (scripts/setup.sh installs them)"
[[ $(id -u) == 0 ]] || skip "not root: the maintainer scripts run in a mount namespace"
unshare -m --propagation private true 2>/dev/null || skip "cannot make a mount namespace"
[[ -f $SRC/.cache/wolfssl/lib/libwolfssl.a ]] ||
    fail "$SRC/.cache/wolfssl/lib/libwolfssl.a is missing: run scripts/setup.sh"

T=$(mktemp -d /tmp/tollgate-package.XXXXXX)
trap 'rm -rf "$T"' EXIT
chmod 0755 "$T" # the user tollgate runs the unpacked binary from here
host_passwd=$(sha256sum /etc/passwd /etc/group)

# ---- build from a copy of the tree ----
mkdir -p "$T/src/tollgate"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # tracked and new files as they are now (uncommitted changes too), not what .gitignore
    # leaves out (build folders, .cache)
    git -C "$SRC" ls-files -co --exclude-standard -z |
        (cd "$SRC" && tar -cf - --null --ignore-failed-read -T - 2>/dev/null) |
        tar -xf - -C "$T/src/tollgate"
else
    tar -C "$SRC" -cf - --exclude='./build*' --exclude=./.git --exclude=./.cache . |
        tar -xf - -C "$T/src/tollgate"
fi
ln -s "$(readlink -f "$SRC/.cache")" "$T/src/tollgate/.cache" # the wolfSSL that setup.sh built
start=$SECONDS
# To keep the test short, and nothing else different: no debug information (-g0: no dbgsym,
# nothing for dwz), and gzip for the .deb instead of xz.
(cd "$T/src/tollgate" &&
    DEB_BUILD_OPTIONS="parallel=$(nproc) nocheck noautodbgsym" DEB_CFLAGS_APPEND=-g0 \
        DPKG_DEB_COMPRESSOR_TYPE=gzip DPKG_DEB_COMPRESSOR_LEVEL=1 timeout 300 \
        dpkg-buildpackage -us -uc -b >"$T/build.log" 2>&1) ||
    fail "dpkg-buildpackage: $(tail -30 "$T/build.log")"
debs=("$T"/src/tollgate_*.deb)
[[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || fail "no single .deb in $T/src: $(ls "$T/src")"
DEB=${debs[0]}
ok "dpkg-buildpackage -us -uc -b from a copy of the tree: $(basename "$DEB") in $((SECONDS - start)) s"

# ---- what the package says ----
field() { dpkg-deb -f "$DEB" "$1"; }
want_version=$(sed -n 's/^project(tollgate VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
[[ $(field Package) == tollgate && $(field Version) == "$want_version" ]] ||
    fail "package $(field Package) $(field Version), want tollgate $want_version"
deps=$(field Depends)
for lib in libc6 libuv1 libyaml-0-2 libprotobuf-c1 libjansson4 adduser iptables; do
    grep -qE "(^|, )$lib( |,|$)" <<<"$deps" || fail "Depends lacks $lib: $deps"
done
! grep -q wolfssl <<<"$deps" || fail "Depends names wolfssl (it must be inside): $deps"
ok "control: tollgate $want_version, Depends from shlibs ($deps), no libwolfssl"

# ---- the files, unpacked into a clean root ----
ROOT=$T/root
dpkg -x "$DEB" "$ROOT"
dpkg -e "$DEB" "$T/control"
mode() { stat -c '%a %U:%G' "$ROOT/$1"; }
for b in tollgate tollgate-cp tollgate-certs; do
    [[ $(mode "usr/bin/$b") == "755 root:root" ]] || fail "usr/bin/$b: $(mode "usr/bin/$b")"
    ! ldd "$ROOT/usr/bin/$b" | grep -qi wolfssl || fail "$b links a shared libwolfssl"
done
for f in etc/tollgate/tollgate.yaml lib/systemd/system/tollgate.service \
    lib/systemd/system/tollgate-iptables.service usr/share/doc/tollgate/README.md \
    usr/share/doc/tollgate/deploy.md usr/share/doc/tollgate/certs.md \
    usr/share/doc/tollgate/security.md usr/share/doc/tollgate/copyright; do
    [[ $(mode "$f") == "644 root:root" ]] || fail "$f: $(mode "$f" 2>&1)"
done
[[ -d $ROOT/etc/tollgate/identity ]] || fail "no /etc/tollgate/identity"
cmp -s "$ROOT/etc/tollgate/tollgate.yaml" "$SRC/deploy/vm/tollgate.yaml" ||
    fail "the shipped config is not deploy/vm/tollgate.yaml"
[[ $(cat "$T/control/conffiles") == /etc/tollgate/tollgate.yaml ]] ||
    fail "conffiles: $(cat "$T/control/conffiles")"
"$ROOT/usr/bin/tollgate" version >"$T/version.txt" || fail "installed tollgate version failed"
[[ $(head -1 "$T/version.txt") == "tollgate $want_version" ]] || fail "version: $(cat "$T/version.txt")"
grep -q 'AES-NI compiled in' "$T/version.txt" || fail "not the AES-NI wolfSSL: $(cat "$T/version.txt")"
"$ROOT/usr/bin/tollgate-certs" --version | grep -q "^tollgate-certs $want_version" ||
    fail "installed tollgate-certs --version"
"$ROOT/usr/bin/tollgate-cp" --version | grep -q "^tollgate-cp $want_version" ||
    fail "installed tollgate-cp --version"
for u in tollgate tollgate-iptables; do
    unit=$ROOT/lib/systemd/system/$u.service
    ! grep -q /usr/local "$unit" || fail "$u.service still names /usr/local: $(grep /usr/local "$unit")"
    grep -q '^ExecStart=/usr/bin/tollgate ' "$unit" || fail "$u.service: ExecStart not /usr/bin"
    [[ -e $ROOT$(sed -n 's|^Documentation=file://||p' "$unit") ]] || ! grep -q '^Documentation=file' "$unit" ||
        fail "$u.service: its Documentation= file is not in the package"
done
[[ $(sed -n 's/^ExecStart=.*--proxy-uid=\([0-9]*\).*/\1/p' "$ROOT/lib/systemd/system/tollgate-iptables.service") == 1337 &&
    $(sed -n 's/^User=//p' "$ROOT/lib/systemd/system/tollgate.service") == tollgate ]] ||
    fail "the capture unit's --proxy-uid and the sidecar's User= do not agree on tollgate/1337"
ok "files: three binaries 0755 without libwolfssl, units on /usr/bin, config as the only conffile, docs"

# ---- the maintainer scripts, in a mount namespace over a copy of /etc ----
mkdir -p "$T/stubs"
# systemd's helpers record what they are asked; the answers are a fresh machine's
cat >"$T/stubs/deb-systemd-helper" <<EOF
#!/bin/sh
echo "deb-systemd-helper \$*" >>"$T/calls.log"
case "\$1" in debian-installed | was-enabled | --quiet) exit 1 ;; esac
exit 0
EOF
for s in deb-systemd-invoke systemctl; do
    printf '#!/bin/sh\necho "%s $*" >>"%s/calls.log"\nexit 0\n' "$s" "$T" >"$T/stubs/$s"
done
chmod +x "$T"/stubs/*
# an /etc as the machine's plus the package's, with optional extra passwd/group lines
make_etc() { # make_etc DIR [PASSWD_LINE GROUP_LINE]
    mkdir -p "$1"
    cp -a /etc/. "$1/"
    rm -rf "$1/tollgate"
    cp -a "$ROOT/etc/tollgate" "$1/"
    if [[ $# -gt 1 ]]; then
        echo "$2" >>"$1/passwd"
        echo "$3" >>"$1/group"
    fi
}
# in_ns ETC COMMAND...: COMMAND with ETC on /etc, an empty /run where systemd seems to run,
# and the stubs first on PATH; stdout+stderr to $T/ns.out; returns COMMAND's status
in_ns() {
    local etc=$1
    shift
    : >"$T/calls.log"
    timeout 60 unshare -m --propagation private bash -c '
        set -e
        mount --bind "$1" /etc
        mount -t tmpfs tmpfs /run
        mkdir -p /run/systemd/system /run/lock
        shift
        PATH='"$T/stubs"':$PATH DPKG_MAINTSCRIPT_PACKAGE=tollgate DPKG_MAINTSCRIPT_ARCH=$(dpkg --print-architecture) \
            "$@"' in_ns "$etc" "$@" >"$T/ns.out" 2>&1
}
POSTINST=$T/control/postinst
PRERM=$T/control/prerm

# a fresh machine
make_etc "$T/etc-fresh"
in_ns "$T/etc-fresh" sh -c "DPKG_MAINTSCRIPT_NAME=postinst $POSTINST configure" ||
    fail "postinst configure: $(cat "$T/ns.out")"
user=$(grep '^tollgate:' "$T/etc-fresh/passwd" || true)
[[ $(cut -d: -f3 <<<"$user") == 1337 && $(cut -d: -f7 <<<"$user") == /usr/sbin/nologin ]] ||
    fail "postinst: user tollgate is '$user'"
gid=$(cut -d: -f4 <<<"$user")
[[ $(grep "^tollgate:" "$T/etc-fresh/group" | cut -d: -f3) == "$gid" ]] || fail "postinst: group tollgate"
[[ $(stat -c '%a %U' "$T/etc-fresh/tollgate/identity"):$(stat -c '%g' "$T/etc-fresh/tollgate/identity") == "750 root:$gid" ]] ||
    fail "identity dir: $(stat -c '%a %U:%g' "$T/etc-fresh/tollgate/identity")"
! grep -Eq ' (enable|start|restart|try-restart) ' "$T/calls.log" ||
    fail "a fresh install enabled or started a unit: $(cat "$T/calls.log")"
[[ $(sha256sum /etc/passwd /etc/group) == "$host_passwd" ]] || fail "the machine's own passwd or group changed"
ok "postinst: user tollgate uid 1337 (group $gid, nologin), identity dir 0750 root:tollgate, no unit enabled or started"

# again, as an upgrade: the user is kept, a running sidecar is restarted, nothing is started
in_ns "$T/etc-fresh" sh -c "DPKG_MAINTSCRIPT_NAME=postinst $POSTINST configure 0.0.9" ||
    fail "postinst configure (upgrade): $(cat "$T/ns.out")"
[[ $(grep -c '^tollgate:' "$T/etc-fresh/passwd") == 1 ]] || fail "upgrade: user made twice"
grep -q 'deb-systemd-invoke try-restart tollgate.service' "$T/calls.log" ||
    fail "upgrade: sidecar not restarted: $(cat "$T/calls.log")"
! grep -Eq ' (enable|start) ' "$T/calls.log" || fail "upgrade: enabled or started: $(cat "$T/calls.log")"
in_ns "$T/etc-fresh" sh -c "DPKG_MAINTSCRIPT_NAME=prerm $PRERM remove" || fail "prerm remove: $(cat "$T/ns.out")"
grep -q 'deb-systemd-invoke stop tollgate.service tollgate-iptables.service' "$T/calls.log" ||
    fail "prerm remove: units not stopped: $(cat "$T/calls.log")"
in_ns "$T/etc-fresh" sh -c "DPKG_MAINTSCRIPT_NAME=prerm $PRERM upgrade 0.1.1" ||
    fail "prerm upgrade: $(cat "$T/ns.out")"
! grep -q ' stop ' "$T/calls.log" || fail "prerm upgrade stopped the units: $(cat "$T/calls.log")"
ok "postinst upgrade keeps the user and try-restarts the sidecar; prerm stops both units on remove only"

# uid 1337 taken by another user; tollgate there with another uid: refused, with the reason
make_etc "$T/etc-taken" "squatter:x:1337:1337::/nonexistent:/usr/sbin/nologin" "squatter:x:1337:"
if in_ns "$T/etc-taken" sh -c "DPKG_MAINTSCRIPT_NAME=postinst $POSTINST configure"; then
    fail "postinst made tollgate while uid 1337 belongs to squatter"
fi
grep -q 'uid 1337 is taken by the user squatter' "$T/ns.out" &&
    grep -q 'dpkg --configure tollgate' "$T/ns.out" || fail "postinst: unclear message: $(cat "$T/ns.out")"
! grep -q '^tollgate:' "$T/etc-taken/passwd" || fail "postinst made a user anyway"
make_etc "$T/etc-other" "tollgate:x:1500:1500::/nonexistent:/usr/sbin/nologin" "tollgate:x:1500:"
if in_ns "$T/etc-other" sh -c "DPKG_MAINTSCRIPT_NAME=postinst $POSTINST configure"; then
    fail "postinst accepted a user tollgate with uid 1500"
fi
grep -q 'the user tollgate exists with uid 1500' "$T/ns.out" || fail "postinst: unclear message: $(cat "$T/ns.out")"
ok "postinst fails with a clear message when uid 1337 is another user's or tollgate has another uid"

# ---- the installed tollgate check on the shipped config, as the user tollgate ----
# an identity as deploy/README.md installs it (the names the shipped config uses), made by
# the packaged tollgate-certs
(cd "$T" && "$ROOT/usr/bin/tollgate-certs" ca --out ca >/dev/null &&
    "$ROOT/usr/bin/tollgate-certs" issue --ca ca --out orders \
        --spiffe spiffe://mesh.local/ns/shop/sa/orders >/dev/null) || fail "tollgate-certs"
id=$T/etc-fresh/tollgate/identity
install -m 0644 "$T/orders.pem" "$T/ca.pem" "$id/"
install -m 0640 -o root -g "$gid" "$T/orders.key" "$id/"
in_ns "$T/etc-fresh" setpriv --reuid=tollgate --regid=tollgate --init-groups \
    "$ROOT/usr/bin/tollgate" check -c /etc/tollgate/tollgate.yaml ||
    fail "tollgate check of the shipped config, as tollgate: $(cat "$T/ns.out")"
grep -q '^/etc/tollgate/tollgate.yaml: ok: spiffe://mesh.local/ns/shop/sa/orders' "$T/ns.out" ||
    fail "tollgate check said: $(cat "$T/ns.out")"
if in_ns "$T/etc-fresh" setpriv --reuid=nobody --regid=nogroup --clear-groups \
    cat /etc/tollgate/identity/orders.key; then
    fail "another user can read the identity's key"
fi
ok "installed tollgate check accepts the shipped config as user tollgate; the key is not readable by others"

echo "all $N checks passed"

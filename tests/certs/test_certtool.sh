#!/usr/bin/env bash
# Checks tollgate-certs ($TG_CERTS_BIN) against the openssl CLI: every command and every
# bad-certificate option, `show` output, openssl verify pass/fail, and a TLS 1.3 mutual
# handshake between openssl s_server and s_client with the certificates it makes; durations
# as the config writes them and RFC 3339 dates; SPIFFE IDs the sidecar refuses are refused;
# `inspect` and `verify` on a PKI that the openssl CLI made (an independent peer).
set -euo pipefail

B=${TG_CERTS_BIN:?set TG_CERTS_BIN to the tollgate-certs binary}
command -v openssl >/dev/null || { echo "SKIP: no openssl CLI"; exit 77; }

T=$(mktemp -d)
SPID=
cleanup() {
    if [[ -n $SPID ]]; then kill "$SPID" 2>/dev/null || true; fi
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

ID=spiffe://mesh.local/ns/default/sa/web
N=0
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { N=$((N + 1)); echo "ok $N - $*"; }

text() { openssl x509 -in "$1" -noout -text; }
has() { text "$1" | grep -Eq -- "$2" || fail "$1: no /$2/ in openssl -text"; }
hasnt() { ! text "$1" | grep -Eq -- "$2" || fail "$1: unexpected /$2/ in openssl -text"; }
# The line after an extension's name holds its value.
ext_value() { text "$1" | grep -A1 -- "$2" | tail -n +2 | sed 's/^ *//'; }
show() { "$B" show "$1" | sed -n "s/^$2=//p"; }
# a date that show prints (RFC 3339, UTC) as unix seconds; the form itself is checked too
showt() {
    local v
    v=$(show "$1" "$2")
    [[ $v =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] || fail "$1 $2: not RFC 3339: $v"
    date -u -d "$v" +%s
}
ncerts() { grep -c 'BEGIN CERTIFICATE' "$1"; }
now() { date +%s; }
near() { # near VALUE EXPECTED SLACK
    local d=$(($1 - $2))
    ((d >= -$3 && d <= $3)) || fail "time $1 is not within $3 s of $2"
}
verify_ok() { openssl verify "$@" >/dev/null 2>verify.err || fail "verify $*: $(cat verify.err)"; }
verify_fails() { # verify_fails PATTERN ARGS...
    local pat=$1 out
    shift
    if out=$(openssl verify "$@" 2>&1); then fail "verify $* passed"; fi
    grep -Eq -- "$pat" <<<"$out" || fail "verify $*: expected /$pat/, got: $out"
}
exits() { # exits CODE PATTERN CMD...: CMD exits with CODE and says PATTERN on stderr
    local code=$1 pat=$2 rc=0
    shift 2
    "$@" >out.txt 2>err.txt || rc=$?
    ((rc == code)) || fail "$* exited $rc, wanted $code: $(cat err.txt)"
    grep -Eq -- "$pat" err.txt || fail "$*: stderr lacks /$pat/: $(cat err.txt)"
}
mode() { stat -c %a "$1"; }

# ---- ca ----
"$B" ca --out root --cn "test root" >out.txt
grep -q 'serial=' out.txt || fail "ca: no summary line"
[[ -f root.pem && -f root.key ]] || fail "ca: files missing"
[[ $(mode root.key) == 600 ]] || fail "ca: key mode $(mode root.key)"
has root.pem 'Basic Constraints: critical'
[[ $(ext_value root.pem 'Basic Constraints') == CA:TRUE ]] || fail "root: not CA:TRUE"
has root.pem 'Key Usage: critical'
[[ $(ext_value root.pem 'X509v3 Key Usage') == "Certificate Sign, CRL Sign" ]] || fail "root KU"
has root.pem 'Subject: CN ?= ?test root'
has root.pem 'Issuer: CN ?= ?test root'
has root.pem 'ecdsa-with-SHA256'
has root.pem 'NIST CURVE: P-256'
has root.pem 'Subject Key Identifier'
verify_ok -x509_strict -CAfile root.pem root.pem
near "$(showt root.pem not_after)" $(($(now) + 3650 * 86400)) 120
ok "ca: self-signed root, CA:TRUE critical, keyCertSign+cRLSign, 0600 key"

"$B" ca --out old --valid-for 480h --backdate 240h --path-len 0 >/dev/null
near "$(showt old.pem not_before)" $(($(now) - 10 * 86400)) 120
near "$(showt old.pem not_after)" $(($(now) + 20 * 86400)) 120
has old.pem 'CA:TRUE, pathlen:0'
ok "ca: --valid-for, --backdate, --path-len"

# ---- intermediate ----
"$B" intermediate --ca root --out inter >/dev/null
[[ $(ncerts inter.pem) == 1 && $(ncerts inter.chain.pem) == 1 ]] || fail "inter: cert counts"
[[ $(mode inter.key) == 600 ]] || fail "inter: key mode"
has inter.pem 'Issuer: CN ?= ?test root'
has inter.pem 'Basic Constraints: critical'
[[ $(ext_value inter.pem 'X509v3 Key Usage') == "Certificate Sign, CRL Sign" ]] || fail "inter KU"
verify_ok -x509_strict -CAfile root.pem inter.pem
"$B" intermediate --ca inter --out inter2 --cn "second level" >/dev/null
[[ $(ncerts inter2.pem) == 1 && $(ncerts inter2.chain.pem) == 2 ]] || fail "inter2: cert counts"
verify_ok -x509_strict -CAfile root.pem -untrusted inter.pem inter2.pem
ok "intermediate: one and two levels, .chain.pem without the root"

# ---- issue: the default leaf ----
"$B" issue --ca inter --out leaf --spiffe "$ID" >/dev/null
[[ $(mode leaf.key) == 600 ]] || fail "leaf: key mode"
[[ $(ncerts leaf.pem) == 2 ]] || fail "leaf.pem should hold leaf + intermediate"
has leaf.pem 'Basic Constraints: critical'
[[ $(ext_value leaf.pem 'Basic Constraints') == CA:FALSE ]] || fail "leaf: not CA:FALSE"
has leaf.pem 'X509v3 Key Usage: critical'
[[ $(ext_value leaf.pem 'X509v3 Key Usage') == "Digital Signature" ]] || fail "leaf KU"
[[ $(ext_value leaf.pem 'Extended Key Usage') == \
    "TLS Web Server Authentication, TLS Web Client Authentication" ]] || fail "leaf EKU"
[[ $(ext_value leaf.pem 'Subject Alternative Name') == "URI:$ID" ]] || fail "leaf SAN"
has leaf.pem 'Subject: CN ?= ?web'
has leaf.pem 'Authority Key Identifier'
verify_ok -x509_strict -CAfile root.pem -untrusted inter.pem leaf.pem
verify_ok -purpose sslserver -CAfile root.pem -untrusted inter.pem leaf.pem
verify_ok -purpose sslclient -CAfile root.pem -untrusted inter.pem leaf.pem
near "$(showt leaf.pem not_before)" $(($(now) - 300)) 60
near "$(showt leaf.pem not_after)" $(($(now) + 86400)) 60
"$B" issue --ca root --out direct --spiffe "$ID" >/dev/null
[[ $(ncerts direct.pem) == 1 ]] || fail "a root-issued leaf has no chain"
verify_ok -CAfile root.pem direct.pem
"$B" issue --ca inter2 --out deep --spiffe "$ID" >/dev/null
[[ $(ncerts deep.pem) == 3 ]] || fail "deep.pem should hold leaf + 2 intermediates"
verify_ok -x509_strict -CAfile root.pem -untrusted inter2.chain.pem deep.pem
"$B" issue --ca inter --out other --spiffe spiffe://mesh.local/ns/x/sa/api >/dev/null
has other.pem 'Subject: CN ?= ?api'
"$B" issue --ca inter --out nosa --spiffe spiffe://mesh.local/workload >/dev/null
has nosa.pem 'Subject: CN ?= ?tollgate'
ok "issue: CA:FALSE, digitalSignature, both EKUs, one URI SAN, CN, 1 day, chain appended"

# ---- show ----
s=$(show leaf.pem serial)
[[ $s =~ ^[0-7][0-9a-f]{31}$ && ! $s =~ ^00 ]] || fail "random serial '$s' is not 16 positive bytes"
[[ $s == $(openssl x509 -in leaf.pem -noout -serial | cut -d= -f2 | tr A-F a-f) ]] ||
    fail "show serial differs from openssl"
[[ $(show other.pem serial) != "$s" ]] || fail "two certificates share a serial"
der_hash=$(openssl x509 -in leaf.pem -outform DER | sha256sum | cut -d' ' -f1)
[[ $(show leaf.pem sha256) == "$der_hash" ]] || fail "show sha256"
end=$(openssl x509 -in leaf.pem -noout -enddate | cut -d= -f2)
[[ $(show leaf.pem not_after) == $(date -u -d "$end" +%FT%TZ) ]] || fail "show not_after"
[[ $(show leaf.pem uri) == "$ID" ]] || fail "show uri"
ok "show: serial, sha256, not_after, uri match openssl"

# ---- validity options: durations as the config writes them ----
"$B" issue --ca inter --out h2 --spiffe "$ID" --valid-for 2h >/dev/null
near "$(showt h2.pem not_after)" $(($(now) + 7200)) 60
"$B" issue --ca inter --out s30 --spiffe "$ID" --valid-for 30s >/dev/null
near "$(showt s30.pem not_after)" $(($(now) + 30)) 10
"$B" issue --ca inter --out m90 --spiffe "$ID" --valid-for 90m >/dev/null
near "$(showt m90.pem not_after)" $(($(now) + 5400)) 60
"$B" issue --ca inter --out bare --spiffe "$ID" --valid-for 45 >/dev/null
near "$(showt bare.pem not_after)" $(($(now) + 45)) 10
"$B" issue --ca inter --out h49 --spiffe "$ID" --valid-for 49h >summary.txt
near "$(showt h49.pem not_after)" $(($(now) + 49 * 3600)) 60
# the summary line's date is RFC 3339 and the certificate's, as openssl reads it
end=$(openssl x509 -in h49.pem -noout -enddate | cut -d= -f2)
grep -q "not_after=$(date -u -d "$end" +%FT%TZ)\$" summary.txt || fail "summary: $(cat summary.txt)"
exits 2 '--days is gone.*--valid-for 48h' "$B" issue --ca inter --out x --spiffe "$ID" --days 2
exits 2 '--hours is gone.*--valid-for 5h' "$B" issue --ca inter --out x --spiffe "$ID" --hours 5
exits 2 '--seconds is gone.*--valid-for 30s' "$B" issue --ca inter --out x --spiffe "$ID" --seconds 30
exits 2 '--not-before-days is gone.*--backdate 72h' "$B" ca --out x --not-before-days 3
exits 2 '"2d" is not a duration' "$B" issue --ca inter --out x --spiffe "$ID" --valid-for 2d
exits 2 'whole seconds' "$B" issue --ca inter --out x --spiffe "$ID" --valid-for 2500ms
exits 2 'more than 0s' "$B" issue --ca inter --out x --spiffe "$ID" --valid-for 0
[[ ! -e x.pem && ! -e x.key ]] || fail "a refused duration left files"
ok "issue: --valid-for 2h, 30s, 90m, 45 (seconds), as the config; --days and friends refused"

"$B" issue --ca inter --out expired --spiffe "$ID" --expired >/dev/null
(($(showt expired.pem not_after) < $(now) - 3600)) || fail "--expired: not_after not in the past"
verify_fails 'expired' -CAfile root.pem -untrusted inter.pem expired.pem
"$B" issue --ca inter --out future --spiffe "$ID" --not-yet-valid >/dev/null
(($(showt future.pem not_before) > $(now) + 3600)) || fail "--not-yet-valid: starts now"
verify_fails 'not yet valid' -CAfile root.pem -untrusted inter.pem future.pem
ok "issue: --expired and --not-yet-valid fail openssl verify"

# ---- EKU ----
"$B" issue --ca inter --out eku-server --spiffe "$ID" --eku server >/dev/null
[[ $(ext_value eku-server.pem 'Extended Key Usage') == "TLS Web Server Authentication" ]] ||
    fail "--eku server"
verify_fails 'unsuitable certificate purpose' -purpose sslclient -CAfile root.pem \
    -untrusted inter.pem eku-server.pem
verify_ok -purpose sslserver -CAfile root.pem -untrusted inter.pem eku-server.pem
"$B" issue --ca inter --out eku-client --spiffe "$ID" --eku client >/dev/null
[[ $(ext_value eku-client.pem 'Extended Key Usage') == "TLS Web Client Authentication" ]] ||
    fail "--eku client"
verify_fails 'unsuitable certificate purpose' -purpose sslserver -CAfile root.pem \
    -untrusted inter.pem eku-client.pem
"$B" issue --ca inter --out eku-both --spiffe "$ID" --eku both >/dev/null
has eku-both.pem 'TLS Web Server Authentication, TLS Web Client Authentication'
"$B" issue --ca inter --out eku-none --spiffe "$ID" --eku none >/dev/null
hasnt eku-none.pem 'Extended Key Usage'
"$B" issue --ca inter --out eku-code --spiffe "$ID" --eku codesign >/dev/null
[[ $(ext_value eku-code.pem 'Extended Key Usage') == "Code Signing" ]] || fail "--eku codesign"
verify_fails 'unsuitable certificate purpose' -purpose sslclient -CAfile root.pem \
    -untrusted inter.pem eku-code.pem
ok "issue: --eku server|client|both|none|codesign"

# ---- names ----
"$B" issue --ca inter --out nosan --spiffe "$ID" --no-san >/dev/null
hasnt nosan.pem 'Subject Alternative Name'
has nosan.pem "Subject: CN ?= ?$ID"
[[ -z $(show nosan.pem uri) ]] || fail "--no-san: show lists a URI"
verify_ok -CAfile root.pem -untrusted inter.pem nosan.pem
"$B" issue --ca inter --out multi --spiffe "$ID" --uri spiffe://mesh.local/ns/b/sa/two \
    --uri spiffe://other.td/ns/c/sa/three --dns a.example --dns b.example >/dev/null
[[ $(ext_value multi.pem 'Subject Alternative Name') == "URI:$ID, URI:spiffe://mesh.local/ns/b/sa/two, URI:spiffe://other.td/ns/c/sa/three, DNS:a.example, DNS:b.example" ]] ||
    fail "multi SAN: $(ext_value multi.pem 'Subject Alternative Name')"
[[ $(show multi.pem uri | wc -l) == 3 && $(show multi.pem uri | sed -n 2p) == \
    spiffe://mesh.local/ns/b/sa/two ]] || fail "show: URIs not in order"
[[ $(show multi.pem dns | tr '\n' ' ') == "a.example b.example " ]] || fail "show dns"
"$B" issue --ca inter --out dnsonly --dns svc.example >/dev/null
[[ $(ext_value dnsonly.pem 'Subject Alternative Name') == "DNS:svc.example" ]] || fail "--dns only"
ok "issue: --no-san, repeated --uri and --dns"

# ---- SPIFFE IDs: --spiffe takes only what the sidecar accepts (tg_spiffe_parse) ----
for bad in 'spiffe://Mesh.local/ns/a/sa/b' 'spiffe://mesh.local/ns/../sa/b' \
    'spiffe://mesh.local/ns/./sa/b' 'spiffe://mesh.local/ns//sa/b' 'spiffe://mesh.local/ns/a/' \
    'spiffe://mesh.local/ns/a%20b' 'spiffe://mesh.local/ns/a?x=1' 'spiffe://mesh.local:8443/ns/a' \
    'spiffe://user@mesh.local/ns/a' 'SPIFFE://mesh.local/ns/a' 'https://mesh.local/ns/a' \
    'spiffe:///ns/a'; do
    exits 2 "--spiffe: '.*' is not a SPIFFE ID the sidecar accepts: " \
        "$B" issue --ca inter --out badid --spiffe "$bad"
    exits 2 "not a SPIFFE ID the sidecar accepts" "$B" csr --key leaf.key --out badid.csr --spiffe "$bad"
done
exits 2 'names a trust domain, not a workload' "$B" issue --ca inter --out badid --spiffe spiffe://mesh.local
[[ ! -e badid.pem && ! -e badid.key && ! -e badid.csr ]] || fail "a refused ID left files"
# a test that needs a malformed ID in a certificate still gets one, with --uri
"$B" issue --ca inter --out upper --uri 'spiffe://Mesh.local/ns/a/sa/b' >/dev/null
[[ $(show upper.pem uri) == 'spiffe://Mesh.local/ns/a/sa/b' ]] || fail "--uri: malformed ID not kept"
ok "issue, csr: --spiffe refuses what the sidecar refuses, with its reason; --uri does not"

# ---- CA flag and self-signed ----
"$B" issue --ca inter --out caleaf --spiffe "$ID" --ca-flag >/dev/null
[[ $(ext_value caleaf.pem 'Basic Constraints') == CA:TRUE ]] || fail "--ca-flag: not CA:TRUE"
has caleaf.pem 'Certificate Sign'
"$B" issue --self-signed --out self --spiffe "$ID" >/dev/null
has self.pem 'Issuer: CN ?= ?web'
[[ $(ncerts self.pem) == 1 ]] || fail "self-signed: chain appended"
verify_fails 'self-signed certificate' -CAfile root.pem self.pem
verify_ok -CAfile self.pem self.pem
ok "issue: --ca-flag and --self-signed"

# ---- keys and serials ----
"$B" issue --ca inter --out rot --spiffe "$ID" --key leaf.key >/dev/null
[[ $(openssl x509 -in rot.pem -noout -pubkey) == $(openssl x509 -in leaf.pem -noout -pubkey) ]] ||
    fail "--key: key not reused"
[[ $(show rot.pem serial) != $(show leaf.pem serial) ]] || fail "--key: same serial"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p8.key 2>/dev/null
"$B" issue --ca inter --out p8 --spiffe "$ID" --key p8.key >/dev/null
[[ $(openssl x509 -in p8.pem -noout -pubkey) == $(openssl pkey -in p8.key -pubout) ]] ||
    fail "--key: PKCS#8 key not used"
openssl ecparam -name secp384r1 -genkey -noout -out p384.key
exits 1 'not a P-256 key' "$B" issue --ca inter --out bad --spiffe "$ID" --key p384.key
"$B" issue --ca inter --out ser --spiffe "$ID" --serial 0x00C0FFEE01 >/dev/null
[[ $(show ser.pem serial) == c0ffee01 ]] || fail "--serial: got $(show ser.pem serial)"
[[ $(openssl x509 -in ser.pem -noout -serial) == serial=C0FFEE01 ]] || fail "--serial: openssl"
exits 2 'must not be zero' "$B" issue --ca inter --out bad --spiffe "$ID" --serial 00
ok "issue: --key (own, PKCS#8, wrong curve), --serial"

# ---- keygen, csr ----
"$B" keygen --out new.key >/dev/null
[[ $(mode new.key) == 600 ]] || fail "keygen: mode"
openssl pkey -in new.key -noout -text | grep -q 'NIST CURVE: P-256' || fail "keygen: not P-256"
"$B" csr --key new.key --spiffe "$ID" --out new.csr >/dev/null
openssl req -in new.csr -noout -verify 2>&1 | grep -q 'verify OK' || fail "csr: bad signature"
openssl req -in new.csr -noout -text | grep -q "URI:$ID" || fail "csr: no URI SAN"
[[ $(openssl req -in new.csr -noout -pubkey) == $(openssl pkey -in new.key -pubout) ]] ||
    fail "csr: wrong key"
ok "keygen and csr"

# ---- errors ----
exits 1 'nope.pem' "$B" issue --ca nope --out x --spiffe "$ID"
mkdir mix && cp root.pem mix/ca.pem && cp inter.key mix/ca.key
exits 1 'does not belong' "$B" issue --ca mix/ca --out x --spiffe "$ID"
exits 1 'no PEM certificate' "$B" show leaf.key
exits 1 'cannot create' "$B" issue --ca inter --out no/such/dir/x --spiffe "$ID"
exits 2 'required' "$B" issue --ca inter --out x
exits 2 '--ca PREFIX is required' "$B" issue --out x --spiffe "$ID"
exits 2 'exclude' "$B" issue --ca inter --out x --spiffe "$ID" --expired --not-yet-valid
exits 2 'exclude' "$B" issue --ca inter --self-signed --out x --spiffe "$ID"
exits 2 '--eku' "$B" issue --ca inter --out x --spiffe "$ID" --eku sometimes
exits 2 'does not apply' "$B" ca --out x --spiffe "$ID"
exits 2 'unrecognized option' "$B" issue --bogus
exits 2 'unknown command' "$B" frobnicate
[[ ! -e x.pem && ! -e x.key ]] || fail "a failed command left files"
ok "errors: exit 1 for bad input files, 2 for usage, message names the problem"

# ---- inspect and verify, on a PKI the openssl CLI makes ----
# root (EC P-256) -> inter (RSA 2048, pathlen 0) -> leaves; leaves straight under the root
# for the CRL cases (verify takes CRLs signed by a root of the bundle, and once CRLs are
# given every CA of a chain needs one); dates set with `openssl ca -startdate/-enddate`.
mkdir -p ossl && cd ossl
o() { openssl "$@" 2>>openssl.log || fail "openssl $*: $(tail -3 openssl.log)"; }
o req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root.key -out root.pem \
    -subj "/O=Independent Peer/CN=openssl root" -days 30 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
o req -new -newkey rsa:2048 -nodes -keyout inter.key -out inter.csr -subj "/CN=openssl inter"
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' >inter.ext
o x509 -req -in inter.csr -CA root.pem -CAkey root.key -CAcreateserial -days 30 \
    -extfile inter.ext -out inter.pem
mkdir -p newcerts && touch index.txt && echo 1000 >serial && echo 01 >crlnumber
cat >ca.cnf <<'CNF'
[ca]
default_ca = d
[d]
database = index.txt
new_certs_dir = newcerts
serial = serial
crlnumber = crlnumber
default_md = sha256
default_crl_days = 7
policy = p
unique_subject = no
[p]
commonName = supplied
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = $ENV::SAN
[caleaf]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyCertSign
subjectAltName = $ENV::SAN
[srvonly]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $ENV::SAN
CNF
# sign NAME CA EXTENSIONS SAN [openssl ca options]: NAME.pem (leaf alone), NAME.key
sign() {
    local name=$1 ca=$2 ext=$3 san=$4
    shift 4
    o req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" \
        -out "$name.csr" -subj "/CN=$name"
    SAN=$san o ca -batch -config ca.cnf -cert "$ca.pem" -keyfile "$ca.key" -extensions "$ext" \
        -in "$name.csr" -out "$name.pem" -notext "$@"
}
WEB=spiffe://mesh.local/ns/default/sa/web
sign good inter leaf "URI:$WEB,DNS:web.mesh.local" -days 2
sign direct root leaf "URI:$WEB" -days 2
sign revoked root leaf "URI:$WEB" -days 2
sign old inter leaf "URI:$WEB" -startdate 20200101000000Z -enddate 20200201000000Z
sign early inter leaf "URI:$WEB" -startdate 20991201000000Z -enddate 20991231000000Z
sign twouri inter leaf "URI:$WEB,URI:spiffe://mesh.local/ns/default/sa/api" -days 2
sign upper inter leaf "URI:spiffe://Mesh.local/ns/default/sa/web" -days 2
sign nouri inter leaf "DNS:web.mesh.local" -days 2
sign caleaf root caleaf "URI:$WEB" -days 2
sign pathlen inter caleaf "URI:$WEB" -days 2
sign srvonly inter srvonly "URI:$WEB" -days 2
sign other inter leaf "URI:spiffe://other.local/ns/default/sa/web" -days 2
o req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout stranger.key \
    -out stranger-root.pem -subj "/CN=stranger" -days 3 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
SAN=unused o ca -batch -config ca.cnf -cert root.pem -keyfile root.key -revoke revoked.pem
SAN=unused o ca -batch -config ca.cnf -cert root.pem -keyfile root.key -gencrl -out root.crl
cat good.pem inter.pem >good-chain.pem

# inspect: a chain, field by field against openssl
"$B" inspect good-chain.pem >insp.txt
field() { # field FILE SECTION KEY: the value of "  KEY: " in the section that starts with SECTION
    awk -v sec="$2" -v key="  $3: " '$0 == sec {in_s = 1; next} /^[a-z]/ {in_s = 0}
        in_s && index($0, key) == 1 {print substr($0, length(key) + 1)}' "$1"
}
dn() { openssl x509 -in "$1" -noout "-$2" -nameopt RFC2253 | sed 's/^[a-z]*=//'; }
nodn() { sed 's/\([^\\]\), /\1,/g'; } # wolfSSL's RFC 2253 text puts a space after each comma
fpr() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr A-F a-f; }
ser() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr A-F a-f | sed 's/^\(00\)*//'; }
date3339() { date -u -d "$(openssl x509 -in "$1" -noout "-$2" | cut -d= -f2)" +%FT%TZ; }
for pair in "certificate 1:good.pem" "certificate 2:inter.pem"; do
    sec=${pair%%:*} f=${pair#*:}
    [[ $(field insp.txt "$sec" subject | nodn) == "$(dn "$f" subject)" ]] ||
        fail "inspect $sec subject: $(field insp.txt "$sec" subject) vs $(dn "$f" subject)"
    [[ $(field insp.txt "$sec" issuer | nodn) == "$(dn "$f" issuer)" ]] || fail "inspect $sec issuer"
    [[ $(field insp.txt "$sec" serial) == "$(ser "$f")" ]] ||
        fail "inspect $sec serial: $(field insp.txt "$sec" serial) vs $(ser "$f")"
    [[ $(field insp.txt "$sec" sha256) == "$(fpr "$f")" ]] || fail "inspect $sec sha256"
    [[ $(field insp.txt "$sec" not_before) == "$(date3339 "$f" startdate)" ]] || fail "inspect $sec not_before"
    [[ $(field insp.txt "$sec" not_after) == "$(date3339 "$f" enddate)" ]] || fail "inspect $sec not_after"
done
[[ $(field insp.txt "certificate 1" kind) == leaf ]] || fail "inspect: leaf kind"
[[ $(field insp.txt "certificate 2" kind) == "CA, path length 0" ]] ||
    fail "inspect: inter kind: $(field insp.txt "certificate 2" kind)"
[[ $(field insp.txt "certificate 1" key) == "EC P-256" ]] || fail "inspect: leaf key"
[[ $(field insp.txt "certificate 2" key) == "RSA 2048 bits" ]] || fail "inspect: inter key"
[[ $(field insp.txt "certificate 1" uri) == "$WEB" && $(field insp.txt "certificate 1" dns) == web.mesh.local ]] ||
    fail "inspect: SANs"
[[ $(field insp.txt "certificate 1" spiffe_id) == "$WEB" ]] || fail "inspect: SPIFFE ID"
[[ $(field insp.txt "certificate 1" ext_key_usage) == "serverAuth, clientAuth" ]] || fail "inspect: EKU"
[[ $(field insp.txt "certificate 1" validity) == "valid now" ]] || fail "inspect: validity"
"$B" inspect root.pem | grep -qx '  kind: CA (self-signed: a root)' || fail "inspect: root kind"
"$B" inspect old.pem | grep -qx '  validity: expired' || fail "inspect: expired"
"$B" inspect twouri.pem | grep -qx '  spiffe_id: none: 2 URI SANs (want exactly one SPIFFE ID)' ||
    fail "inspect: two URIs"
"$B" inspect upper.pem | grep -q '^  spiffe_id: none: .*trust domain' || fail "inspect: bad ID: $("$B" inspect upper.pem)"
ok "inspect: chain from openssl: subject, issuer, serial, sha256, RFC 3339 dates, kind, key, SANs, SPIFFE ID"

# inspect: a CRL, keys (type only: never a byte of the key), a CSR, a public key
"$B" inspect root.crl >crl.txt
[[ $(field crl.txt "crl 1" issuer | nodn) == "$(openssl crl -in root.crl -noout -issuer -nameopt RFC2253 | sed 's/^issuer=//')" ]] ||
    fail "inspect crl issuer: $(cat crl.txt)"
[[ $(field crl.txt "crl 1" revoked) == "$(ser revoked.pem) since "* ]] || fail "inspect crl revoked: $(cat crl.txt)"
[[ $(field crl.txt "crl 1" next_update) == "$(date -u -d "$(openssl crl -in root.crl -noout -nextupdate | cut -d= -f2)" +%FT%TZ)" ]] ||
    fail "inspect crl next_update"
"$B" inspect inter.key >key.txt
grep -qx '  type: RSA 2048 bits (the key itself is not shown)' key.txt || fail "inspect rsa key: $(cat key.txt)"
"$B" inspect good.key | grep -qx '  type: EC P-256 (the key itself is not shown)' || fail "inspect ec key"
openssl genpkey -algorithm ed25519 -out ed.key 2>/dev/null
"$B" inspect ed.key | grep -qx '  type: Ed25519 (the key itself is not shown)' || fail "inspect ed25519 key"
for k in inter.key good.key ed.key; do # no line of the key's base64 comes out
    "$B" inspect "$k" >k.txt
    while read -r line; do
        [[ $line == -----* ]] && continue
        ! grep -qF -- "${line:0:24}" k.txt || fail "inspect $k printed key bytes"
    done <"$k"
done
openssl req -new -key good.key -subj /CN=web -addext "subjectAltName=URI:$WEB" -out web.csr 2>/dev/null
"$B" inspect web.csr >csr.txt
grep -qx '  signature: valid' csr.txt && grep -qx "  spiffe_id: $WEB" csr.txt &&
    grep -qx '  key: EC P-256' csr.txt || fail "inspect csr: $(cat csr.txt)"
openssl pkey -in inter.key -pubout -out inter.pub 2>/dev/null
"$B" inspect inter.pub | grep -qx '  type: RSA 2048 bits' || fail "inspect public key"
cat good.pem good.key root.crl >mixed.pem
"$B" inspect mixed.pem >mixed.txt
grep -qx 'certificate 1' mixed.txt && grep -qx 'private key 1' mixed.txt && grep -qx 'crl 1' mixed.txt ||
    fail "inspect mixed: $(cat mixed.txt)"
exits 1 'no PEM block' "$B" inspect index.txt
exits 1 'nothere.pem' "$B" inspect nothere.pem
ok "inspect: CRL (issuer, next update, revoked serial), RSA/EC/Ed25519 keys by type only, CSR, public key, a mixed file"

# verify: the sidecar's verdict and reason names
verdict() { # verdict STATUS PATTERN ARGS...: verify exits STATUS and says PATTERN on stdout
    local want=$1 pat=$2 rc=0
    shift 2
    "$B" verify "$@" >v.out 2>v.err || rc=$?
    ((rc == want)) || fail "verify $*: exit $rc, wanted $want: $(cat v.out v.err)"
    grep -Eq -- "$pat" v.out || fail "verify $*: stdout lacks /$pat/: $(cat v.out v.err)"
}
verdict 0 "^good-chain.pem: ok: $WEB as a client and a server \(serial $(ser good.pem), sha256 $(fpr good.pem)" \
    --bundle root.pem good-chain.pem
verdict 0 ': ok: ' --bundle root.pem --intermediates inter.pem good.pem
verdict 0 ': ok: ' --bundle root.pem --trust-domain mesh.local good-chain.pem
verdict 1 '^good.pem: refused: untrusted: ' --bundle root.pem good.pem
verdict 1 ': refused: untrusted: ' --bundle stranger-root.pem good-chain.pem
verdict 1 ': refused: expired: ' --bundle root.pem --intermediates inter.pem old.pem
verdict 1 ': refused: not_yet_valid: ' --bundle root.pem --intermediates inter.pem early.pem
verdict 1 ': refused: bad_spiffe_id: .*2 URI SANs' --bundle root.pem --intermediates inter.pem twouri.pem
verdict 1 ': refused: bad_spiffe_id: ' --bundle root.pem --intermediates inter.pem upper.pem
verdict 1 ': refused: bad_spiffe_id: .*0 URI SANs' --bundle root.pem --intermediates inter.pem nouri.pem
verdict 1 ': refused: bad_cert: .*CA certificate' --bundle root.pem caleaf.pem
verdict 1 ': refused: bad_cert: .*path length' --bundle root.pem --intermediates inter.pem pathlen.pem
verdict 1 ': refused: bad_cert: client leaf lacks extendedKeyUsage clientAuth' \
    --bundle root.pem --intermediates inter.pem srvonly.pem
verdict 0 ': ok: .* as a server ' --peer server --bundle root.pem --intermediates inter.pem srvonly.pem
verdict 1 ': refused: trust_domain: ' --bundle root.pem --trust-domain mesh.local \
    --intermediates inter.pem other.pem
verdict 1 ': refused: bad_cert: .*max_chain_depth 1' --bundle root.pem --max-chain-depth 1 good-chain.pem
verdict 0 ': ok: ' --bundle root.pem --crl root.crl direct.pem
verdict 1 ': refused: revoked: ' --bundle root.pem --crl root.crl revoked.pem
verdict 0 ': ok: ' --bundle root.pem revoked.pem # without the CRL nothing says it is revoked
# once CRLs are given every issuer needs one, as in the handshake: the intermediate has none
verdict 1 ': refused: untrusted: ' --bundle root.pem --crl root.crl good-chain.pem
# openssl agrees where it checks the same thing
openssl verify -CAfile root.pem -untrusted inter.pem good.pem >/dev/null 2>&1 || fail "openssl: good"
! openssl verify -crl_check -CRLfile root.crl -CAfile root.pem revoked.pem >/dev/null 2>&1 ||
    fail "openssl: revoked accepted"
# inputs that cannot be used are errors (exit 1, stderr), not verdicts
exits 1 '--bundle: good.pem: certificate 1 .* is not a CA' "$B" verify --bundle good.pem good-chain.pem
exits 1 '--crl: root.crl: its issuer is none of our CAs' \
    "$B" verify --bundle stranger-root.pem --crl root.crl good-chain.pem
exits 1 'CHAIN: good.key: no certificate' "$B" verify --bundle root.pem good.key
exits 1 '--bundle: nothere.pem' "$B" verify --bundle nothere.pem good.pem
cd ..
ok "verify: openssl-made chains: ok, untrusted, expired, not_yet_valid, bad_spiffe_id, bad_cert, trust_domain, revoked"

# ---- TLS 1.3 mutual handshake with openssl s_server / s_client ----
"$B" issue --ca inter --out srv --spiffe spiffe://mesh.local/ns/default/sa/srv >/dev/null
"$B" issue --ca inter --out cli --spiffe spiffe://mesh.local/ns/default/sa/cli >/dev/null
start_server() { # start_server CERT KEY: sets PORT and SPID once s_server accepts
    local _
    for _ in 1 2 3 4 5; do
        PORT=$((20000 + RANDOM % 40000))
        timeout 30 openssl s_server -accept "127.0.0.1:$PORT" -tls1_3 -cert "$1" -key "$2" \
            -cert_chain inter.pem -CAfile root.pem -Verify 3 -verify_return_error -naccept 1 \
            -rev </dev/null >server.log 2>&1 &
        SPID=$!
        for _ in $(seq 50); do
            grep -q ACCEPT server.log && return 0
            kill -0 "$SPID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
        SPID=
    done
    fail "s_server did not start: $(cat server.log)"
}
client() { # client CERT KEY: prints s_client's output; returns its status
    (echo ping; sleep 1) | timeout 15 openssl s_client -connect "127.0.0.1:$PORT" -tls1_3 \
        -cert "$1" -key "$2" -cert_chain inter.pem -CAfile root.pem -verify_return_error \
        -verify 3 -brief 2>&1
}
start_server srv.pem srv.key
out=$(client cli.pem cli.key) || fail "handshake failed: $out"
wait "$SPID" || fail "s_server failed: $(cat server.log)"
SPID=
grep -q 'Protocol version: TLSv1.3' <<<"$out" || fail "not TLS 1.3: $out"
grep -q 'gnip' <<<"$out" || fail "no data through the tunnel: $out"
grep -Eq 'Peer certificate: CN ?= ?cli' server.log || fail "server saw no client cert"
grep -q 'Verification: OK' server.log || fail "server did not verify the client"
ok "TLS 1.3 mutual handshake with openssl s_server/s_client"

# under load s_server may not answer the first try; the refusal must say why within three
for _ in 1 2 3; do
    start_server expired.pem expired.key
    if out=$(client cli.pem cli.key); then fail "client accepted an expired server cert"; fi
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=
    grep -q 'certificate has expired' <<<"$out" && break
done
grep -q 'certificate has expired' <<<"$out" || fail "expected an expiry error: $out"
wait "$SPID" 2>/dev/null || true
SPID=
ok "TLS: client refuses an expired server certificate"

echo "all $N checks passed"

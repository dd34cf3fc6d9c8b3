#!/usr/bin/env python3
"""Makes the fixtures of tests/unit/test_cp_jwt.c with python3-cryptography (a tool
independent of the control plane's wolfSSL and jansson code): public keys (keys.pem: RSA
2048 and EC P-256 as SubjectPublicKeyInfo, the way an API server's --service-account-key-file
holds them; jwks.json: the same keys as /openid/v1/jwks serves them; bad-keys/: files the
control plane must refuse) and tokens.txt, one "NAME TOKEN" per line. The private keys live
only in this process and are thrown away. Tokens are issued at NOW (the test verifies with
the same clock), so the fixtures never go stale. With a second argument, the tokens are
issued at that time instead (tests/integration/test_cp_k8s.c: "now", for a live control plane).

    python3 tests/unit/jwt/make_fixtures.py tests/unit/jwt [NOW]
"""
import base64
import hashlib
import hmac
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

OUT = sys.argv[1]
NOW = int(sys.argv[2]) if len(sys.argv) > 2 else 1767225600  # test_cp_jwt.c's clock
ISS = "https://kubernetes.default.svc.cluster.local"
AUD = "tollgate"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def spki(pub):
    return pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def kid_of(pub):  # what Kubernetes puts in "kid": base64url(SHA-256(SPKI DER))
    return b64(hashlib.sha256(spki(pub)).digest())


rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other_ec = ec.generate_private_key(ec.SECP256R1())


def sign_rs(key, data):
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def sign_es(key, data):
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def claims(ns="demo", sa="client", **over):
    c = {"aud": [AUD], "exp": NOW + 3600, "iat": NOW - 10, "nbf": NOW - 10, "iss": ISS,
         "kubernetes.io": {"namespace": ns, "pod": {"name": "client-7d9f", "uid": "1"},
                           "serviceaccount": {"name": sa, "uid": "2"}},
         "sub": f"system:serviceaccount:{ns}:{sa}"}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def token(alg="RS256", payload=None, key=None, header=None, raw_payload=None):
    h = header if header is not None else {"alg": alg, "kid": kid_of(
        (key or (rsa_key if alg == "RS256" else ec_key)).public_key())}
    hp = b64(json.dumps(h, separators=(",", ":")).encode()) + "." + (
        raw_payload if raw_payload is not None
        else b64(json.dumps(payload if payload is not None else claims(),
                            separators=(",", ":")).encode()))
    if alg == "RS256":
        sig = sign_rs(key or rsa_key, hp.encode())
    elif alg == "ES256":
        sig = sign_es(key or ec_key, hp.encode())
    else:
        sig = b""
    return hp + "." + b64(sig)


pem = b"".join(k.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
               for k in (rsa_key, ec_key))
with open(os.path.join(OUT, "keys.pem"), "wb") as f:
    f.write(pem)
rn = rsa_key.public_key().public_numbers()
en = ec_key.public_key().public_numbers()
jwks = {"keys": [
    {"use": "sig", "kty": "RSA", "kid": kid_of(rsa_key.public_key()), "alg": "RS256",
     "n": b64(rn.n.to_bytes(256, "big")), "e": b64(rn.e.to_bytes(3, "big"))},
    {"use": "sig", "kty": "EC", "kid": kid_of(ec_key.public_key()), "crv": "P-256", "alg": "ES256",
     "x": b64(en.x.to_bytes(32, "big")), "y": b64(en.y.to_bytes(32, "big"))}]}
with open(os.path.join(OUT, "jwks.json"), "w") as f:
    json.dump(jwks, f, indent=1)

bad = os.path.join(OUT, "bad-keys")
os.makedirs(bad, exist_ok=True)
small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
p384 = ec.generate_private_key(ec.SECP384R1())
for name, data in {
    "rsa1024.pem": small.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    "p384.pem": p384.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    "private.pem": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    "empty.pem": b"# nothing here\n",
    "truncated.pem": pem[:300],
    "jwks-hs.json": b'{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}',
}.items():
    with open(os.path.join(bad, name), "wb") as f:
        f.write(data)

pub_pem = pem  # the HMAC confusion attack: the public key used as an HMAC secret
hs_hp = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims()).encode())
hs = hs_hp + "." + b64(hmac.new(pub_pem, hs_hp.encode(), hashlib.sha256).digest())
good = token()
tampered_payload = b64(json.dumps(claims(sa="admin")).encode())
tampered = good.split(".")[0] + "." + tampered_payload + "." + good.split(".")[2]

tokens = [
    ("rs256_ok", token()),
    ("es256_ok", token("ES256")),
    ("rs256_aud_string", token(payload=claims(aud=AUD))),
    ("rs256_aud_other_first", token(payload=claims(aud=["https://kubernetes.default.svc", AUD]))),
    ("es256_unknown_kid", token("ES256", header={"alg": "ES256", "kid": "no-such-kid"})),
    ("rs256_no_kid", token(header={"alg": "RS256", "typ": "JWT"})),
    ("rs256_exp_in_leeway", token(payload=claims(exp=NOW - 30))),
    ("rs256_other_key", token(key=other_rsa)),
    ("es256_other_key", token("ES256", key=other_ec)),
    ("rs256_tampered", tampered),
    ("alg_none", token("none", header={"alg": "none", "typ": "JWT"})),
    ("alg_hs256", hs),
    ("alg_ps256", token(header={"alg": "PS256"})),
    ("crit", token(header={"alg": "RS256", "crit": ["exp"]})),
    ("wrong_iss", token(payload=claims(iss="https://evil.example"))),
    ("wrong_aud", token(payload=claims(aud=["api", "vault"]))),
    ("no_aud", token(payload=claims(aud=None))),
    ("expired", token(payload=claims(exp=NOW - 120))),
    ("nbf_future", token(payload=claims(nbf=NOW + 600))),
    ("iat_future", token(payload=claims(iat=NOW + 600))),
    ("no_exp", token(payload=claims(exp=None))),
    ("exp_string", token(payload=claims(exp="tomorrow"))),
    ("no_iss", token(payload=claims(iss=None))),
    ("no_k8s", token(payload=claims(**{"kubernetes.io": None}))),
    ("no_sub", token(payload=claims(sub=None))),
    ("sub_mismatch", token(payload=claims(sub="system:serviceaccount:demo:admin"))),
    ("ns_dotdot", token(payload=claims(ns=".."))),
    ("ns_slash", token(payload=claims(ns="a/b"))),
    ("payload_not_json", token(raw_payload=b64(b"not json"))),
    ("payload_array", token(raw_payload=b64(b"[1,2]"))),
    ("payload_dup_key", token(raw_payload=b64(b'{"iss":"a","iss":"b"}'))),
    ("es256_sig_short", good.split(".")[0].replace(good.split(".")[0],
                        b64(b'{"alg":"ES256"}')) + "." + good.split(".")[1] + "." + b64(b"x" * 63)),
    ("rs256_sig_noncanonical", good[:-1] + ("B" if good[-1] == "A" else "A")),
]
with open(os.path.join(OUT, "tokens.txt"), "w") as f:
    f.write(f"# made by make_fixtures.py; issuer {ISS}, audience {AUD}, now {NOW}\n")
    for name, t in tokens:
        f.write(f"{name} {t}\n")

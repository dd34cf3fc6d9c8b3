#!/usr/bin/python3
"""A SPIFFE Workload API server for tests: FetchX509SVID on a Unix socket, with Debian's
python3-grpcio and code generated at start (grpc_tools.protoc) from proto/workload.proto.

It serves what a JSON spec file says, and sends a new X509SVIDResponse to every open
stream whenever the file changes (written to a temporary file and renamed over it):

  {"svids": [{"id": "spiffe://td/path", "cert": "web.pem", "key": "web.key",
              "bundle": "ca.pem", "garbage": "chain" | "key" | "bundle" (optional)}],
   "federated": {"spiffe://partner.example": "partner-ca.pem"}}

PEM files are read at each change and sent as the spec says (DER: the chain and bundles
concatenated, the key as PKCS#8 by the openssl CLI). "garbage" replaces that part with bytes
that are no DER, for the sidecar to refuse. A call without the `workload.spiffe.io: true`
metadata is refused with INVALID_ARGUMENT, as the spec says. Prints "sent N at T" on stdout
for each response sent (N counts them, T the Unix time), "ready" once it listens.

usage: workload_server.py --socket PATH --spec FILE --gen-dir DIR --proto-dir DIR
"""
import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from concurrent import futures

POLL_S = 0.05


def pem_certs_der(path):
    with open(path, encoding="ascii") as f:
        text = f.read()
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    return b"".join(ssl.PEM_cert_to_DER_cert(b) for b in blocks)


def key_pkcs8_der(path):
    openssl = os.environ.get("OPENSSL", "openssl")
    return subprocess.run([openssl, "pkcs8", "-topk8", "-nocrypt", "-in", path, "-outform", "DER"],
                          check=True, capture_output=True, timeout=10).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--gen-dir", required=True)
    ap.add_argument("--proto-dir", required=True)
    args = ap.parse_args()

    os.makedirs(args.gen_dir, exist_ok=True)
    if not os.path.exists(os.path.join(args.gen_dir, "workload_pb2_grpc.py")):
        from grpc_tools import protoc
        rc = protoc.main(["protoc", "-I", args.proto_dir, "--python_out=" + args.gen_dir,
                          "--grpc_python_out=" + args.gen_dir,
                          os.path.join(args.proto_dir, "workload.proto")])
        if rc != 0:
            sys.exit("protoc failed")
    sys.path.insert(0, args.gen_dir)
    import grpc
    import workload_pb2
    import workload_pb2_grpc

    state = {"version": 0, "response": None, "stamp": None}
    cond = threading.Condition()
    sent = [0]

    def build():
        with open(args.spec, encoding="utf-8") as f:
            spec = json.load(f)
        resp = workload_pb2.X509SVIDResponse()
        for s in spec.get("svids", []):
            svid = resp.svids.add()
            svid.spiffe_id = s["id"]
            svid.x509_svid = pem_certs_der(s["cert"])
            svid.x509_svid_key = key_pkcs8_der(s["key"])
            svid.bundle = pem_certs_der(s["bundle"])
            garbage = s.get("garbage")
            if garbage == "chain":
                svid.x509_svid = b"this is not a certificate"
            elif garbage == "key":
                svid.x509_svid_key = b"\x30\x03\x02\x01\x00"
            elif garbage == "bundle":
                svid.bundle = b"\x30\x82\xff\xff"
        for td, path in spec.get("federated", {}).items():
            resp.federated_bundles[td] = pem_certs_der(path)
        return resp

    def watch():
        while True:
            try:
                st = os.stat(args.spec)
                stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
                if stamp != state["stamp"]:
                    resp = build()
                    with cond:
                        state["stamp"] = stamp
                        state["response"] = resp
                        state["version"] += 1
                        cond.notify_all()
            except (OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
                print("spec not usable yet: %s" % e, file=sys.stderr, flush=True)
            time.sleep(POLL_S)

    class Servicer(workload_pb2_grpc.SpiffeWorkloadAPIServicer):
        def FetchX509SVID(self, request, context):
            md = dict(context.invocation_metadata())
            if md.get("workload.spiffe.io") != "true":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "security header missing from request")
            have = 0
            while context.is_active():
                with cond:
                    if state["version"] == have:
                        cond.wait(0.2)
                        continue
                    have = state["version"]
                    resp = state["response"]
                    sent[0] += 1
                    n = sent[0]
                print("sent %d at %.3f" % (n, time.time()), flush=True)
                yield resp

    threading.Thread(target=watch, daemon=True).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(Servicer(), server)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server.add_insecure_port("unix:" + args.socket)
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()

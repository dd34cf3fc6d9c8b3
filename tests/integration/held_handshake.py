"""A peer that has its TCP connection made first and shakes hands later, for
tests/integration/test_crl.c and test_authz.c: the sidecar takes the connection under one
generation of its rules and CRLs, and the handshake ends under the next.

usage: held_handshake.py PORT CERT GO_FILE [serve]

Connects to 127.0.0.1:PORT (with `serve`: listens there, prints "listening" and accepts
one connection), prints "connected", waits for GO_FILE to exist, then makes a TLS 1.3 handshake as CERT
(CERT.pem, CERT.key; CA ca.pem; a server asks for the client's certificate). The client
sends a line and reads it back; the server echoes what it reads first. Prints "through"
when bytes went both ways, else "refused: " and why. Every wait is bounded (socket timeout 10 s,
GO_FILE 30 s)."""
import os
import socket
import ssl
import sys
import time

LINE = b"held-handshake-5d1\n"


def wait_for(go):
    deadline = time.monotonic() + 30
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_line(tls):
    got = b""
    while len(got) < len(LINE):
        chunk = tls.recv(len(LINE) - len(got))
        if not chunk:
            break
        got += chunk
    return got


def main():
    port, cert, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    serve = len(sys.argv) > 4 and sys.argv[4] == "serve"
    if serve:
        ls = socket.create_server(("127.0.0.1", port))
        ls.settimeout(10)
        print("listening", flush=True)
        raw, _ = ls.accept()
        raw.settimeout(10)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
    print("connected", flush=True)
    if not wait_for(go):
        print("refused: no go file in 30 s", flush=True)
        return 1
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations("ca.pem")
    ctx.load_cert_chain(cert + ".pem", cert + ".key")
    try:
        tls = ctx.wrap_socket(raw, server_side=serve)
        if serve:
            got = tls.recv(64)
            tls.sendall(got)
            ok = len(got) > 0
        else:
            tls.sendall(LINE)
            ok = read_line(tls) == LINE
    except (OSError, ssl.SSLError) as e:
        print("refused: %s" % e, flush=True)
        return 0
    print("through" if ok else "refused: the line did not come", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A caller that opens its TCP connection first and shakes hands later, for
tests/integration/test_crl.c and test_authz.c: the connection is accepted under one generation
of the sidecar's rules and CRLs, and its handshake ends under the next.

usage: held_handshake.py PORT CERT GO_FILE

Connects to 127.0.0.1:PORT, prints "connected", waits for GO_FILE to exist, then makes a
TLS 1.3 handshake as CERT (CERT.pem, CERT.key; CA ca.pem), sends a line and reads it back.
Prints "through" when the line came back, else "refused: " and why. Every wait is bounded
(socket timeout 10 s, GO_FILE 30 s)."""
import os
import socket
import ssl
import sys
import time


def main():
    port, cert, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    print("connected", flush=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            print("refused: no go file in 30 s", flush=True)
            return 1
        time.sleep(0.02)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations("ca.pem")
    ctx.load_cert_chain(cert + ".pem", cert + ".key")
    line = b"held-handshake-5d1\n"
    try:
        tls = ctx.wrap_socket(raw)
        tls.sendall(line)
        got = b""
        while len(got) < len(line):
            chunk = tls.recv(len(line) - len(got))
            if not chunk:
                break
            got += chunk
    except (OSError, ssl.SSLError) as e:
        print("refused: %s" % e, flush=True)
        return 0
    print("through" if got == line else "refused: got %r" % got, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""An HBONE-style tunnel server on Debian's python3-h2, an HTTP/2 implementation independent
of nghttp2, for tests/integration/test_tunnel_out.c: tollgate's outbound pool dials it as
the destination's sidecar.

usage: tunnel_server.py PORT MODE      (in the test's directory: web.pem/web.key, ca.pem)

TLS 1.3 with the web certificate, a client certificate required (ca.pem), ALPN h2 only. Each
CONNECT stream is answered 200 and its bytes are echoed, END_STREAM for END_STREAM, within
the client's flow-control windows; any other method gets 405. A stream whose bytes start
with "rst!" gets RST_STREAM (CANCEL) instead, and a stream the client resets is logged. Prints one line per tunnel:
"tunnel N peer URI" (the client's SPIFFE ID), and "listening" once it listens.

MODE echo: every tunnel behaves.
MODE malformed: the first tunnel, once three streams have carried bytes, gets a DATA frame
on stream 0 (a connection error, RFC 9113 6.1); later tunnels behave.
MODE unsolicited: the same, with a response HEADERS on stream 99, which the client never
opened (RFC 9113 5.1, an idle stream).
MODE goaway: the first tunnel answers its first stream only; when two more have come it
sends GOAWAY (NO_ERROR) naming the first as the last it took, then serves the first to its
end (the client must try the other two again elsewhere, RFC 9113 6.8); later tunnels behave.
MODE max2: every tunnel allows two concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS);
h2 ends a tunnel whose client opens a third with GOAWAY PROTOCOL_ERROR.

Bounded: each socket times out after 20 s, the whole run ends after 120 s."""
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame as hf

from tunnel_client import send_within_windows

DEADLINE = time.monotonic() + 120
BAD_FRAMES = {
    # length 4, type DATA, no flags, stream 0
    "malformed": b"\x00\x00\x04\x00\x00\x00\x00\x00\x00" + b"oops",
    # length 1, type HEADERS, END_HEADERS, stream 99, ":status: 200" (static table index 8)
    "unsolicited": b"\x00\x00\x01\x01\x04\x00\x00\x00\x63" + b"\x88",
}


def peer_uri(tls):
    for kind, value in tls.getpeercert().get("subjectAltName", ()):
        if kind == "URI":
            return value
    return "-"


class Tunnel:
    def __init__(self, tls, mode):
        self.tls = tls
        self.bad = BAD_FRAMES.get(mode)
        self.goaway = mode == "goaway"
        self.held = []  # goaway: the streams left unanswered
        self.h2 = h2.connection.H2Connection(
            # h2 4.1 asks every request for :path and :scheme, which a CONNECT must omit
            # (RFC 9113 8.5): event() checks the request instead
            h2.config.H2Configuration(
                client_side=False, header_encoding="utf-8", validate_inbound_headers=False
            )
        )
        self.pending = {}  # stream id -> bytes still to echo
        self.ended = set()  # streams whose END_STREAM came
        self.carried = set()  # streams that carried bytes
        if mode == "max2":
            self.h2.local_settings = h2.settings.Settings(
                client=False,
                initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2},
            )

    def event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            h = dict(ev.headers)
            if (h.get(":method") != "CONNECT" or not h.get(":authority")
                    or ":path" in h or ":scheme" in h):
                print("not a CONNECT of RFC 9113 8.5: %r" % ev.headers, flush=True)
                self.h2.send_headers(ev.stream_id, [(":status", "405")], end_stream=True)
                return
            if self.goaway and self.pending:
                self.held.append(ev.stream_id)
                if len(self.held) == 2:
                    # written by hand: h2 sends nothing more once it has sent a GOAWAY
                    first = min(self.pending)
                    self.tls.sendall(self.h2.data_to_send() + hf.GoAwayFrame(
                        0, last_stream_id=first, error_code=0).serialize())
                    print("goaway after stream %d, streams %r unanswered" % (first, self.held),
                          flush=True)
                return
            self.h2.send_headers(ev.stream_id, [(":status", "200")])
            self.pending[ev.stream_id] = b""
        elif isinstance(ev, h2.events.DataReceived):
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_id in self.pending and ev.data.startswith(b"rst!"):
                del self.pending[ev.stream_id]
                self.h2.reset_stream(ev.stream_id, error_code=8)  # CANCEL
                print("reset stream %d" % ev.stream_id, flush=True)
            elif ev.stream_id in self.pending:
                self.pending[ev.stream_id] += ev.data
                self.carried.add(ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.ended.add(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            self.pending.pop(ev.stream_id, None)
            print("stream %d reset by the client: %d" % (ev.stream_id, ev.error_code), flush=True)

    def run(self):
        self.h2.initiate_connection()
        self.tls.sendall(self.h2.data_to_send())
        while time.monotonic() < DEADLINE:
            data = self.tls.recv(65536)
            if not data:
                return
            for ev in self.h2.receive_data(data):
                if isinstance(ev, h2.events.ConnectionTerminated):
                    self.tls.sendall(self.h2.data_to_send())
                    return
                self.event(ev)
            send_within_windows(self.h2, self.pending, self.ended)
            self.tls.sendall(self.h2.data_to_send())
            if self.bad is not None and len(self.carried) >= 3:
                self.tls.sendall(self.bad)
                print("sent a bad frame", flush=True)
                while self.tls.recv(65536):  # the client's GOAWAY, then its close
                    pass
                return


def serve(ctx, sock, n, mode):
    try:
        sock.settimeout(20)
        tls = ctx.wrap_socket(sock, server_side=True)
        print("tunnel %d peer %s alpn %s" % (n, peer_uri(tls), tls.selected_alpn_protocol()),
              flush=True)
        Tunnel(tls, mode if n == 1 or mode == "max2" else "echo").run()
        tls.close()
    except (OSError, ssl.SSLError, h2.exceptions.ProtocolError) as e:
        print("tunnel %d: %s" % (n, e), flush=True)
        sock.close()


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode not in ("echo", "malformed", "unsolicited", "goaway", "max2"):
        sys.exit("unknown mode " + mode)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain("web.pem", "web.key")
    ctx.load_verify_locations("ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])
    srv = socket.create_server(("127.0.0.1", port))
    srv.settimeout(1)
    print("listening", flush=True)
    n = 0
    while time.monotonic() < DEADLINE:
        try:
            sock, _ = srv.accept()
        except socket.timeout:
            continue
        n += 1
        threading.Thread(target=serve, args=(ctx, sock, n, mode), daemon=True).start()


if __name__ == "__main__":
    main()

"""An HBONE-style tunnel client on Debian's python3-h2, an HTTP/2 implementation independent
of nghttp2, for tests/integration/test_tunnel.c: mTLS with ALPN h2 to tollgate's inbound
listener, then app connections as CONNECT streams (RFC 9113 8.5).

usage: tunnel_client.py PORT AUTHORITY streams STREAMS BYTES REFUSED_TOO
       tunnel_client.py PORT AUTHORITY abuse OTHER_PORT
       tunnel_client.py PORT AUTHORITY drain
       tunnel_client.py PORT AUTHORITY kill
       tunnel_client.py PORT AUTHORITY denied
       tunnel_client.py PORT - probe AUTHORITY...

streams: STREAMS streams each send BYTES of their own pattern and half-close; the app (an echo
server) sends every byte back and half-closes too; every byte is checked. With REFUSED_TOO
= 1 one more stream is opened while the others run and must be refused with 403 and a
tollgate-reason (the caller's max_concurrent), the tunnel staying up; a GET must get 405;
after the others end a new stream must get through. 
abuse: while three streams run on a tunnel, a second tunnel (as web, to OTHER_PORT) opens 101
streams (one over SETTINGS_MAX_CONCURRENT_STREAMS: RST_STREAM REFUSED_STREAM for it alone),
and a third sends a DATA frame on stream 0 (GOAWAY PROTOCOL_ERROR): the three streams end
whole. These two tunnels are written by hand (hpack, hyperframe), as h2 would not send them.

drain [last]: streams run; the client writes the file `ready` and expects GOAWAY (NO_ERROR)
on the tunnel while its streams run on and end whole; a new stream then goes on a new tunnel
(not with `last`: the sidecar is stopping).

kill: five streams carry bytes, then the tunnel's TCP connection is reset mid-transfer; a
new tunnel then carries a new stream whole.

probe (tests/netns/test_tunnel.sh): one stream to each AUTHORITY on one tunnel; a 200 is
sent an HTTP/1.0 GET and half-closed; prints one line per stream: AUTHORITY STATUS and the
app's body (or the tollgate-reason). TUNNEL_HOST (127.0.0.1) and TUNNEL_CERT (api) say where
and as whom.

denied: as web, whom the rules deny on PORT: two streams each get 403 with the rule's
reason, and the tunnel stays up (a PING is answered).

Prints OK, or exits 1 naming what was wrong. Every wait is bounded (socket timeout 10 s, whole run 60 s)."""
import hashlib
import os
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import hpack
import hyperframe.frame as hf

DEADLINE = time.monotonic() + 60


def fail(why):
    print("FAIL: " + why, flush=True)
    sys.exit(1)


def pattern(seed, n):
    out = bytearray()
    block = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d-%d" % (seed, block)).digest()
        block += 1
    return bytes(out[:n])


def send_within_windows(conn, pending, ended):
    """Sends what pending (stream id -> bytes) holds as far as the peer's windows allow; a
    stream in ended whose bytes are all out gets END_STREAM and leaves both. Shared with
    tunnel_server.py."""
    for sid in list(pending):
        buf = pending[sid]
        while buf:
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if room <= 0:
                break
            conn.send_data(sid, buf[:room])
            buf = buf[room:]
        pending[sid] = buf
        if not buf and sid in ended:
            conn.end_stream(sid)
            ended.discard(sid)
            del pending[sid]


def tls(port, cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert + ".pem", cert + ".key")
    ctx.load_verify_locations("ca.pem")
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["h2"])
    host = os.environ.get("TUNNEL_HOST", "127.0.0.1")
    sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=10))
    if sock.selected_alpn_protocol() != "h2":
        fail("ALPN chose %r, not h2" % sock.selected_alpn_protocol())
    return sock


def raw_frames(sock):
    """Frames from sock until EOF or 3 s of silence: a list of hyperframe frames."""
    buf, frames = b"", []
    sock.settimeout(3)
    while True:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 9:
            f, length = hf.Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            f.parse_body(memoryview(buf[9:9 + length]))
            frames.append(f)
            buf = buf[9 + length:]
    return frames


class Tunnel:
    def __init__(self, port, cert=os.environ.get("TUNNEL_CERT", "api")):
        self.sock = tls(port, cert)
        # h2 4.1 asks every request for :path, CONNECT's too (RFC 9113 8.5 forbids it):
        # its check of what we send is off, tollgate checks it instead
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.flush()
        self.headers = {}  # stream id -> response headers
        self.data = {}  # stream id -> bytearray
        self.ended = set()  # END_STREAM from tollgate
        self.reset = {}  # stream id -> error code
        self.pending = {}  # stream id -> bytes not yet sent
        self.half_close = set()  # streams to end once their bytes are out
        self.goaway = None  # the GOAWAY event, when one came
        self.pinged = False  # a PING of ours was answered

    def flush(self):
        out = self.conn.data_to_send()
        if not out:
            return
        try:
            self.sock.sendall(out)
        except (ssl.SSLEOFError, BrokenPipeError, ConnectionResetError):
            # after GOAWAY tollgate closes the tunnel once its last stream has ended; our
            # WINDOW_UPDATEs for that stream's last bytes may find it gone
            if self.goaway is None:
                raise

    def open(self, authority, method="CONNECT"):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":authority", authority)]
        if method != "CONNECT":
            hdrs += [(":scheme", "https"), (":path", "/")]
        self.conn.send_headers(sid, hdrs)
        self.data[sid] = bytearray()
        self.flush()
        return sid

    def pump_send(self):
        send_within_windows(self.conn, self.pending, self.half_close)
        self.flush()

    def step(self):
        if time.monotonic() > DEADLINE:
            fail("run over 60 s")
        self.pump_send()
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            fail("nothing from tollgate for 10 s")
        if not chunk:
            fail("tunnel closed by tollgate")
        for ev in self.conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                self.headers[ev.stream_id] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                self.data.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.PingAckReceived):
                self.pinged = True
            elif isinstance(ev, h2.events.StreamReset):
                self.reset[ev.stream_id] = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                if ev.error_code != 0 or self.goaway is not None:
                    fail("GOAWAY from tollgate: %r" % ev)
                self.goaway = ev
                # h2 4.1 closes the whole connection on any GOAWAY; RFC 9113 6.8 lets the
                # streams up to last_stream_id run on, so the state machine is put back
                self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        self.flush()

    def wait(self, cond, what):
        while not cond():
            self.step()


def open_streams(t, authority, n):
    sids = [t.open(authority) for _ in range(n)]
    t.wait(lambda: all(s in t.headers for s in sids), "answers")
    for s in sids:
        if t.headers[s].get(":status") != "200":
            fail("stream %d: %r" % (s, t.headers[s]))
    return sids


def send_patterns(t, sids, size):
    want = {}
    for i, s in enumerate(sids):
        want[s] = pattern(i, size)
        t.pending[s] = want[s]
        t.half_close.add(s)
    return want


def check_echoes(t, sids, want):
    t.wait(lambda: all(s in t.ended or s in t.reset for s in sids), "the echoes")
    for s in sids:
        if s in t.reset:
            fail("stream %d reset (%d)" % (s, t.reset[s]))
        if bytes(t.data[s]) != want[s]:
            fail("stream %d: %d bytes back, want %d" % (s, len(t.data[s]), len(want[s])))


def hand_tunnel(port, cert):
    sock = tls(port, cert)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + hf.SettingsFrame(0).serialize())
    return sock


def abuse(port, authority, other_port):
    t = Tunnel(port)
    sids = open_streams(t, authority, 3)
    want = send_patterns(t, sids, 200 * 1024)
    t.pump_send()
    # 101 streams where 100 are allowed: the last is refused, alone
    many = hand_tunnel(other_port, "web")
    enc, out = hpack.Encoder(), b""
    for i in range(101):
        h = hf.HeadersFrame(2 * i + 1)
        h.flags.add("END_HEADERS")
        h.data = enc.encode([(":method", "CONNECT"), (":authority", authority)])
        out += h.serialize()
    many.sendall(out)
    frames = raw_frames(many)
    refused = [f.stream_id for f in frames
               if isinstance(f, hf.RstStreamFrame) and f.error_code == 7]
    if refused != [201]:
        fail("101 streams: REFUSED_STREAM for %r, want [201]" % refused)
    if any(isinstance(f, hf.GoAwayFrame) for f in frames):
        fail("101 streams: GOAWAY, the tunnel should stay up")
    # a DATA frame on stream 0 breaks the protocol: GOAWAY PROTOCOL_ERROR, the tunnel ends
    bad = hand_tunnel(other_port, "web")
    d = hf.DataFrame(1)
    d.data = b"x"
    bad.sendall(d.serialize()[:5] + b"\x00\x00\x00\x00" + b"x")
    goaways = [f for f in raw_frames(bad) if isinstance(f, hf.GoAwayFrame)]
    if not goaways or goaways[0].error_code != 1:
        fail("DATA on stream 0: %r, want GOAWAY PROTOCOL_ERROR" % goaways)
    check_echoes(t, sids, want)


def drain(port, authority, new_tunnel=True):
    t = Tunnel(port)
    sids = open_streams(t, authority, 4)
    want = {s: pattern(s, 100 * 1024) for s in sids}
    for s in sids:  # half of each, then the new generation comes
        t.conn.send_data(s, want[s][:16 * 1024])
        t.pending[s] = want[s][16 * 1024:]
    t.flush()
    t.wait(lambda: all(len(t.data[s]) >= 16 * 1024 for s in sids), "the first halves")
    with open("ready", "w") as f:
        f.write("ready\n")
    t.wait(lambda: t.goaway is not None, "GOAWAY")
    if t.goaway.last_stream_id < max(sids):
        fail("GOAWAY dropped open streams: %r" % t.goaway)
    for s in sids:
        t.half_close.add(s)
    check_echoes(t, sids, want)
    if not new_tunnel:  # the sidecar is going away
        return
    n = Tunnel(port)
    s = open_streams(n, authority, 1)
    check_echoes(n, s, send_patterns(n, s, 1000))


def kill(port, authority):
    t = Tunnel(port)
    sids = open_streams(t, authority, 5)
    for s in sids:
        t.pending[s] = pattern(s, 1 << 20)  # more than goes through before the kill
    t.wait(lambda: all(len(t.data[s]) > 0 for s in sids), "the first echoes")
    # RST: SO_LINGER 0, then close
    t.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    t.sock.close()
    n = Tunnel(port)
    s = open_streams(n, authority, 1)
    check_echoes(n, s, send_patterns(n, s, 5000))


def denied(port, authority):
    t = Tunnel(port, "web")
    for _ in range(2):
        s = t.open(authority)
        t.wait(lambda: s in t.headers, "the refusal")
        h = t.headers[s]
        if h.get(":status") != "403" or not h.get("tollgate-reason", "").startswith("denied:"):
            fail("denied stream: %r" % h)
    t.conn.ping(b"tollgate")
    t.flush()
    t.wait(lambda: t.pinged, "the PING's answer")


def streams(port, authority, n, size, refused_too):
    t = Tunnel(port)
    sids = open_streams(t, authority, n)
    if refused_too:
        extra = t.open(authority)  # over max_concurrent while the others are open
        t.wait(lambda: extra in t.headers, "the refusal")
        h = t.headers[extra]
        if h.get(":status") != "403" or "rate_limited" not in h.get("tollgate-reason", ""):
            fail("extra stream: %r" % h)
        get = t.open(authority, method="GET")
        t.wait(lambda: get in t.headers, "the GET")
        if t.headers[get].get(":status") != "405":
            fail("GET: %r" % t.headers[get])
    check_echoes(t, sids, send_patterns(t, sids, size))
    if refused_too:  # the limit released: a new stream gets through on the same tunnel
        s = t.open(authority)
        t.wait(lambda: s in t.headers, "the last answer")
        if t.headers[s].get(":status") != "200":
            fail("stream after the others: %r" % t.headers[s])
        t.pending[s] = b"last"
        t.half_close.add(s)
        t.wait(lambda: s in t.ended or s in t.reset, "the last echo")
        if bytes(t.data[s]) != b"last":
            fail("last stream: %r" % bytes(t.data[s]))
    t.conn.close_connection()
    t.flush()


def deadlines(port, authority, idle_s):
    """Three streams where the listener caps connections at two: the third is refused with
    listener_limit; then one stream idles past the idle timeout and is reset, alone, while
    the other keeps echoing a few bytes at a time on the same tunnel."""
    t = Tunnel(port)
    busy, idle = open_streams(t, authority, 2)
    third = t.open(authority)
    t.wait(lambda: third in t.headers, "the third stream's answer")
    h = t.headers[third]
    if h.get(":status") != "403" or not h.get("tollgate-reason", "").startswith("listener_limit"):
        fail("third stream: %r" % h)
    sent = bytearray()
    until = time.monotonic() + idle_s + 1.5
    while time.monotonic() < until:
        chunk = b"tick %d;" % len(sent)
        sent.extend(chunk)
        t.pending[busy] = chunk
        t.wait(lambda: len(t.data[busy]) == len(sent), "the busy stream's echo")
        if idle in t.reset and busy not in t.reset:
            break
        time.sleep(0.2)
    t.wait(lambda: idle in t.reset, "the idle stream's reset")
    if busy in t.reset or bytes(t.data[busy]) != bytes(sent):
        fail("the busy stream broke: reset %r, %d of %d bytes" % (t.reset, len(t.data[busy]), len(sent)))
    t.half_close.add(busy)
    t.pending[busy] = b""
    t.wait(lambda: busy in t.ended, "the busy stream's end")


def probe(port, authorities):
    t = Tunnel(port)
    for a in authorities:
        s = t.open(a)
        t.wait(lambda: s in t.headers, "the answer for " + a)
        h = t.headers[s]
        if h.get(":status") != "200":
            print(a, h.get(":status"), h.get("tollgate-reason", ""), flush=True)
            continue
        t.pending[s] = b"GET / HTTP/1.0\r\n\r\n"
        t.half_close.add(s)
        t.wait(lambda: s in t.ended or s in t.reset, "the app's answer for " + a)
        lines = bytes(t.data[s]).decode(errors="replace").strip().splitlines()
        print(a, 200, lines[-1] if lines else "(nothing)", flush=True)


MODES = {
    "probe": lambda p, a, argv: probe(p, argv),
    "streams": lambda p, a, argv: streams(p, a, int(argv[0]), int(argv[1]), argv[2] == "1"),
    "abuse": lambda p, a, argv: abuse(p, a, int(argv[0])),
    "drain": lambda p, a, argv: drain(p, a, argv[:1] != ["last"]),
    "kill": lambda p, a, argv: kill(p, a),
    "denied": lambda p, a, argv: denied(p, a),
    "deadlines": lambda p, a, argv: deadlines(p, a, float(argv[0])),
}


def main():
    port, authority, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    MODES[mode](port, authority, sys.argv[4:])
    print("OK", flush=True)


if __name__ == "__main__":
    main()

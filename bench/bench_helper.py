#!/usr/bin/env python3
"""Helpers for bench/run.sh: parse wrk and iperf3 output, hold idle connections open,
and render the results as one Markdown table. Standard library only.

  bench_helper.py wrk FILE            -> "rps p50_ms p99_ms errors requests" (exit 1: reason)
  bench_helper.py iperf FILE          -> "gbit_per_s" (receiver side)          (exit 1: reason)
  bench_helper.py idle PORT N PIDS    -> "held rss_kb failures last_error"
  bench_helper.py cfb PORT N SECONDS  -> "p50_ms p99_ms samples failures last_error"
  bench_helper.py render RESULTS META -> Markdown on stdout
"""
import json
import math
import re
import socket
import statistics
import sys
import time

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError("bad latency %r" % text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(path):
    text = open(path, errors="replace").read()
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    nreq = re.search(r"^\s+(\d+) requests in", text, re.M)
    if not (rps and p50 and p99 and nreq):
        last = [l for l in text.strip().splitlines() if l.strip()][-1:] or ["no output"]
        print("wrk: " + last[0].strip()[:120])
        return 1
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    if int(nreq.group(1)) == 0:
        print("wrk: no request completed")
        return 1
    print("%s %.4f %.4f %d %s" % (rps.group(1), to_ms(p50.group(1)), to_ms(p99.group(1)),
                                  errors, nreq.group(1)))
    return 0


def parse_iperf(path):
    try:
        doc = json.load(open(path))
    except (OSError, ValueError) as e:
        print("iperf3: no JSON (%s)" % e.__class__.__name__)
        return 1
    if doc.get("error"):
        print("iperf3: " + str(doc["error"])[:120])
        return 1
    try:
        bps = doc["end"]["sum_received"]["bits_per_second"]
    except (KeyError, TypeError):
        print("iperf3: no receiver summary")
        return 1
    print("%.4f" % (bps / 1e9))
    return 0


def vmrss_kb(pid):
    try:
        for line in open("/proc/%s/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def one_request(s, req):
    s.sendall(req)
    buf = b""
    while True:
        d = s.recv(4096)
        if not d:
            raise OSError("closed before the response was complete")
        buf += d
        h = buf.find(b"\r\n\r\n")
        if h < 0:
            continue
        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", buf[:h + 2])
        if not m:
            raise OSError("response without Content-Length")
        if len(buf) - h - 4 >= int(m.group(1)):
            return


def hold_idle(port, n, pids):
    """Open n connections through the proxy pair, one keep-alive request on each (so every
    TLS hop has finished its handshake), keep them all open, then sum VmRSS of pids."""
    req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    socks, fails, last = [], 0, ""
    deadline = time.time() + 60
    for _ in range(n):
        if time.time() > deadline:
            last = "gave up after 60 s"
            break
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            one_request(s, req)
            socks.append(s)
        except OSError as e:
            fails += 1
            last = str(e) or e.__class__.__name__
            s.close()
            if fails > 20:
                break
    time.sleep(1.0)  # let both proxies settle
    # All still open? A peer that closed idle connections would make the figure meaningless.
    alive = 0
    for s in socks:
        s.setblocking(False)
        try:
            alive += 0 if s.recv(1) == b"" else 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    rss = sum(vmrss_kb(p) for p in pids)
    print("%d %d %d %s" % (alive, rss, fails, (last or "-").replace(" ", "_")[:80]))
    for s in socks:
        s.close()
    return 0


def percentile(xs, q):
    """The q-th percentile (0..100) of sorted xs, nearest rank."""
    k = max(0, min(len(xs) - 1, math.ceil(q / 100.0 * len(xs)) - 1))
    return xs[k]


def connect_first_byte(port, n, seconds):
    """One client, one connection at a time, nothing else from it in flight: for each, the
    time from connect() to the first byte of the response to a `Connection: close` request
    (the TCP connect, the proxies' handshake or stream set-up, the backend's connect and
    answer). Up to n connections or `seconds`, whichever ends first."""
    req = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    times, fails, last = [], 0, ""
    deadline = time.monotonic() + seconds
    while len(times) < n and time.monotonic() < deadline:
        s = socket.socket()
        s.settimeout(5)
        try:
            t0 = time.perf_counter()
            s.connect(("127.0.0.1", port))
            s.sendall(req)
            if not s.recv(1):
                raise OSError("closed before the first byte")
            times.append((time.perf_counter() - t0) * 1e3)
            while s.recv(65536):  # to the end, so the next one starts on a quiet pair
                pass
        except OSError as e:
            fails += 1
            last = str(e) or e.__class__.__name__
            if fails > 20:
                break
        finally:
            s.close()
    if not times:
        print("- - 0 %d %s" % (fails, (last or "no_connection").replace(" ", "_")[:80]))
        return 1
    times.sort()
    print("%.4f %.4f %d %d %s" % (percentile(times, 50), percentile(times, 99), len(times),
                                  fails, (last or "-").replace(" ", "_")[:80]))
    return 0


# ---------------------------------------------------------------------------------------
# Rendering

def load(path):
    rows = {}
    for line in open(path):
        line = line.rstrip("\n")
        if not line:
            continue
        c, k, v = line.split("\t", 2)
        rows.setdefault(c, {}).setdefault(k, []).append(v)
    return rows


def num(v):
    v = float(v)
    a = abs(v)
    if a >= 100000:
        return "%.0fk" % (v / 1000)
    if a >= 10000:
        return "%.1fk" % (v / 1000)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    return "%.2f" % v


def stat(vals):
    xs = [float(x) for x in vals]
    return statistics.median(xs), min(xs), max(xs)


class Table:
    def __init__(self, res, meta):
        self.res, self.meta = res, meta
        self.notes = []

    def get(self, c, k):
        return self.res.get(c, {}).get(k, [])

    def first(self, c, k, default=None):
        v = self.get(c, k)
        return v[0] if v else default

    def ratio(self, c, k, med, single=False):
        base = self.get("haproxy", k)
        if not base or self.first("haproxy", "status") != "ok":
            return ""
        b = float(base[0]) if single else stat(base)[0]
        if b == 0:
            return ""
        return " ×%.2f" % (med / b)

    def timed(self, c, k):
        fail = self.first(c, k + "_fail")
        vals = self.get(c, k)
        if not vals:
            return fail or "—"
        med, lo, hi = stat(vals)
        spread = " (%s–%s)" % (num(lo), num(hi)) if len(vals) > 1 else ""
        cell = num(med) + spread + self.ratio(c, k, med)
        if fail:
            cell += " ⚠"
            self.notes.append("%s, %s: one run failed: %s" % (self.label(c), k, fail))
        return cell

    def single(self, c, k, extra=""):
        fail = self.first(c, k + "_fail")
        v = self.first(c, k)
        if v is None:
            return fail or "—"
        return num(v) + extra + self.ratio(c, k, float(v), single=True)

    def label(self, c):
        return self.first(c, "label", c)

    def row(self, c):
        if self.first(c, "status") != "ok":
            return [self.label(c), self.first(c, "status", "failed: not started")] + [""] * 10
        errs = {}
        for k in ("ka", "nc", "rs"):
            e = sum(int(x) for x in self.get(c, k + "_err"))
            if e:
                errs[k] = e
                self.notes.append("%s: %d socket errors or non-2xx replies in the %s runs" % (
                    self.label(c), e, {"ka": "keep-alive", "nc": "new-connection",
                                       "rs": "resumption"}[k]))
        mark = lambda k: " ⚠" if k in errs else ""
        rs_note = self.first(c, "rs_note")
        if rs_note:
            rs = rs_note
        elif self.get(c, "rs_rps"):
            rs = self.timed(c, "rs_rps") + " · p99 " + self.timed(c, "rs_p99") + mark("rs")
        else:
            rs = self.first(c, "rs_rps_fail", "—")
        if self.get(c, "rss_out"):
            o, i = float(self.first(c, "rss_out")), float(self.first(c, "rss_in"))
            tot = (o + i) / 1024
            base = self.get("haproxy", "rss_out")
            r = ""
            if base and self.first("haproxy", "status") == "ok":
                b = (float(base[0]) + float(self.first("haproxy", "rss_in"))) / 1024
                r = " ×%.2f" % (tot / b) if b else ""
            rss = "%s (%s+%s)%s" % (num(tot), num(o / 1024), num(i / 1024), r)
        else:
            rss = self.first(c, "rss_out_fail", "—")
        cfb_err = sum(int(x) for x in self.get(c, "cfb_err"))
        if cfb_err:
            self.notes.append("%s: %d connections failed in the connect-to-first-byte runs" % (
                self.label(c), cfb_err))
        if self.get(c, "cfb_p50"):
            cfb = self.timed(c, "cfb_p50") + " · " + self.timed(c, "cfb_p99")
            cfb += " ⚠" if cfb_err else ""
        else:
            cfb = self.first(c, "cfb_p50_fail", "—")
        idle = self.single(c, "idle_kb")
        if self.first(c, "idle_note"):
            idle += " ⚠"
            self.notes.append("%s, idle connections: %s" % (self.label(c), self.first(c, "idle_note")))
        return [self.label(c),
                self.timed(c, "ka_rps") + mark("ka"), self.timed(c, "ka_p50"),
                self.timed(c, "ka_p99"),
                self.timed(c, "nc_rps") + mark("nc"), self.timed(c, "nc_p99"), cfb,
                rs, self.timed(c, "bulk"), rss, idle, self.timed(c, "ka_cpu")]

    def median(self, c, k):
        if self.first(c, "status") != "ok" or not self.get(c, k):
            return None
        return stat(self.get(c, k))[0]

    # Issue 16's targets: row, its baseline row, figure, >= or <=, target, the figure's CPU
    # cost per unit of work (- for none), what it is
    TARGETS = [line.split(None, 6) for line in """
        tunnel1   relay     nc_rps   >=  0.8   nc_cpu_us    new app conn/s with tunnels vs the no-TLS relay pair
        tunnel1   haproxy   cfb_p99  <=  0.3   -            connect-to-first-byte p99 with tunnels vs haproxy
        tunnel1   tollgate1 ka_rps   >=  0.9   ka_cpu       keep-alive req/s with tunnels vs tollgate direct (1 worker)
        tunnel1   tollgate1 bulk     >=  0.9   bulk_cpu_ms  bulk through a tunnel vs tollgate direct (1 worker)
        tunnel1   haproxy   idle_kb  <=  0.25  -            KB per idle app connection with tunnels vs haproxy
        tollgate1 haproxy   nc_rps   >=  3.0   nc_cpu_us    full handshakes/s, tollgate direct (1 worker) vs haproxy
        """.strip().splitlines()]

    def targets(self):
        """One line per target: the ratio of the medians, the target, met or missed."""
        out = []
        for c, base, k, kind, goal, cpu, what in self.TARGETS:
            goal, cpu = float(goal), None if cpu == "-" else cpu
            sign = "≥" if kind == ">=" else "≤"
            a, b = self.median(c, k), self.median(base, k)
            if a is None or b is None or b == 0:
                miss = [r for r, v in ((c, a), (base, b)) if v is None]
                out.append("- %s: not measured in this run (%s) (target %s %.2f×)" % (
                    what, ", ".join(miss) if miss else "baseline 0", sign, goal))
                continue
            r = a / b
            ok = r >= goal if kind == ">=" else r <= goal
            shown = "%.3f" % r if round(r, 2) == goal else "%.2f" % r  # 0.896 is no 0.90
            line = "- %s: %s / %s = **%s×** (target %s %.2f×): %s" % (
                what, num(a), num(b), shown, sign, goal, "met" if ok else "MISSED")
            ca, cb = (self.median(c, cpu), self.median(base, cpu)) if cpu else (None, None)
            if ca and cb:
                # the work each pair does per unit of CPU, so it reads like the ratio above
                line += "; per CPU the two pairs spend on it: %.2f×" % (cb / ca)
            out.append(line)
        return out

    def render(self, order):
        head = ["contender", "keep-alive req/s", "p50 ms", "p99 ms",
                "new conn/s (full mTLS handshake)", "new-conn p99 ms",
                "connect to first byte p50 · p99 ms (1 client)",
                "resumed conn/s · p99 ms", "bulk Gbit/s (1 stream)",
                "RSS fresh MB (out+in)", "RSS KB per idle conn",
                "proxy CPU, % of a core per 1k req/s"]
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in order:
            if c in self.res:
                out.append("| " + " | ".join(self.row(c)) + " |")
        return "\n".join(out)


def render(results, metapath):
    res = load(results)
    meta = load(metapath).get("meta", {})
    m = lambda k, d="?": meta.get(k, [d])[0]
    order = m("order", "").split()
    t = Table(res, meta)
    table = t.render(order)
    L = []
    L.append("## tollgate side-by-side benchmark — %s" % m("date"))
    L.append("")
    L.append("Machine: %s, %s CPUs, kernel %s; load average %s at start, %s at end. "
             "Run time %s s." % (m("cpu"), m("ncpu"), m("kernel"), m("load_start"),
                                 m("load_end"), m("elapsed")))
    if m("figures", "") != "ka nc cfb bulk idle limits":
        L.append("Partial run (BENCH_CONTENDERS / BENCH_FIGURES): figures %s only." % m("figures"))
    L.append("Path: wrk/iperf3 → outbound proxy (plain in, mTLS out) → inbound proxy "
             "(mTLS in, plain out) → nginx (64-byte body) / iperf3 server, all on 127.0.0.1. "
             "TLS 1.3, ECDSA P-256 certificates with SPIFFE URI SANs, client certificates "
             "required and verified on both hops, no session resumption unless stated.")
    L.append("Versions: %s." % m("versions"))
    L.append("Each timed cell: median (min–max) of %s runs of %s s (bulk: %s s), then ×ratio "
             "to the haproxy pair (same direction as the figure: >1 is more for req/s, conn/s "
             "and Gbit/s, and also more — i.e. worse — for latency, memory and CPU)."
             % (m("runs"), m("dur"), m("bulk_dur")))
    L.append("")
    L.append(table)
    L.append("")
    L.append("Issue 16's targets, ratios of the medians above (same run):")
    L.extend(t.targets())
    L.append("")
    L.append("Limits measured in the same run (one core, for scale):")
    lim = res.get("_limits", {})

    def lim_line(k, unit, what):
        if k in lim:
            med, lo, hi = stat(lim[k])
            return "- %s: %s %s (%s–%s)" % (what, num(med), unit, num(lo), num(hi))
        return "- %s: %s" % (what, res.get("_limits", {}).get(k + "_fail", ["not measured"])[0])

    if res.get("direct", {}).get("bulk"):
        med, lo, hi = stat(res["direct"]["bulk"])
        L.append("- plain loopback TCP, iperf3, 1 stream (the direct row's bulk runs): "
                 "%s Gbit/s (%s–%s)" % (num(med), num(lo), num(hi)))
    else:
        L.append("- plain loopback TCP, iperf3: not measured")
    L.append(lim_line("aes_gbs", "GB/s", "AES-128-GCM, OpenSSL `speed -evp`, 16 KiB blocks"))
    L.append(lim_line("sign", "/s", "ECDSA P-256 sign, OpenSSL `speed ecdsap256`"))
    L.append(lim_line("verify", "/s", "ECDSA P-256 verify, OpenSSL `speed ecdsap256`"))
    L.append("  (OpenSSL's figures; tollgate uses wolfSSL, whose own benchmark is not built. "
             "A full mTLS 1.3 handshake costs each proxy side about 1 sign + 2 verifies + 1 "
             "ECDHE.)")
    notes = list(dict.fromkeys(t.notes)) + meta.get("note", [])
    if notes:
        L.append("")
        L.append("Notes:")
        L.extend("- " + n for n in notes)
    print("\n".join(L))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "wrk":
        return parse_wrk(argv[2])
    if cmd == "iperf":
        return parse_iperf(argv[2])
    if cmd == "idle":
        return hold_idle(int(argv[2]), int(argv[3]), argv[4].split())
    if cmd == "cfb":
        return connect_first_byte(int(argv[2]), int(argv[3]), float(argv[4]))
    if cmd == "render":
        return render(argv[2], argv[3])
    print("unknown command " + cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

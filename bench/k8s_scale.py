#!/usr/bin/python3
"""bench/k8s_scale.py: tollgate-cp as a Kubernetes controller at cluster scale (issue 14).

Generates a cluster (Namespaces, Services, their EndpointSlices, Pods, in the API reference's
shapes), serves it from the stand-in API server (tests/k8s/apiserver.py --state), starts
tollgate-cp with kubernetes.discovery against it and build/bench/cp_sim (SIDECARS simulated
sidecar streams that acknowledge every push), then injects pod changes one at a time (a pod
starts, a pod stops, a pod changes service account; each as the API shows it: the Pod and
its Service's EndpointSlice written in one /batch) and measures, for each, the time from the
first API write to the last stream's ACK of the mesh-table version that follows it; with
tollgate-cp's CPU time and peak RSS (/proc) and the bytes pushed. Prints a Markdown table and
writes it to --out. Standard library only. Run through bench/k8s_scale.sh; see
bench/README.md.
"""
import argparse
import json
import os
import queue
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CP_ID = "spiffe://cluster.local/ns/tollgate-system/sa/tollgate-cp"
API_TOKEN = "bench-api-token"


def log(msg):
    sys.stderr.write("[k8s_scale %6.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


T0 = time.monotonic()


# ---------------------------------------------------------------------------- the cluster

def ip4(base, i):
    """base (10.x) + i as a dotted address in base's /8."""
    return "%d.%d.%d.%d" % (base, (i >> 16) & 255, (i >> 8) & 255, i & 255)


class Cluster:
    """The generated cluster and what the driver changes in it. Pods are spread evenly over
    the Services (PODS / SERVICES each), Services evenly over the Namespaces; every pod
    carries the sidecar; a Service's pods share one of 3 service accounts of its namespace;
    one Service in 4 has a second port (grpc)."""

    def __init__(self, namespaces, services, pods):
        self.ns = ["bench-%03d" % i for i in range(namespaces)]
        self.svcs = []  # (ns, name, clusterIP, ports)
        self.slices = {}  # svc index -> endpoint list
        self.pods = {}  # (ns, name) -> pod object
        self.next_pod_ip = 1
        self.next_pod = 0
        for s in range(services):
            ns = self.ns[s % namespaces]
            ports = [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
            if s % 4 == 0:
                ports.append({"name": "grpc", "port": 9090, "targetPort": 9090,
                              "protocol": "TCP", "appProtocol": "grpc"})
            self.svcs.append((ns, "svc-%04d" % s, ip4(10, 0x600000 + s + 1), ports))
            self.slices[s] = []
        for p in range(pods):
            self.add_pod(p % services)

    def sa_of(self, s, k=0):
        return "sa-%d" % ((s + k) % 3)

    def pod_obj(self, s, name, ip, sa):
        ns, svc = self.svcs[s][0], self.svcs[s][1]
        return {"metadata": {"name": name, "namespace": ns,
                             "labels": {"app": svc},
                             "annotations": {"tollgate.dev/injected": "true"}},
                "spec": {"serviceAccountName": sa, "nodeName": "node-%d" % (s % 50),
                         "containers": [
                             {"name": "app", "image": "registry.example/app:1",
                              "ports": [{"containerPort": 8080, "protocol": "TCP"}]},
                             {"name": "tollgate-proxy", "image": "tollgate:dev"}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                           "conditions": [{"type": "Ready", "status": "True"}]}}

    def add_pod(self, s):
        ns = self.svcs[s][0]
        name = "%s-%06d" % (self.svcs[s][1], self.next_pod)
        ip = ip4(10, 0x100000 + self.next_pod_ip)
        self.next_pod += 1
        self.next_pod_ip += 1
        pod = self.pod_obj(s, name, ip, self.sa_of(s))
        self.pods[(ns, name)] = pod
        self.slices[s].append((name, ip))
        return pod

    def slice_obj(self, s):
        ns, svc, _, ports = self.svcs[s]
        return {"metadata": {"name": svc + "-abcde", "namespace": ns,
                             "labels": {"kubernetes.io/service-name": svc,
                                        "endpointslice.kubernetes.io/managed-by":
                                        "endpointslice-controller.k8s.io"}},
                "addressType": "IPv4",
                "ports": [{"name": p["name"], "port": p["targetPort"], "protocol": "TCP",
                           **({"appProtocol": p["appProtocol"]} if "appProtocol" in p else {})}
                          for p in ports],
                "endpoints": [{"addresses": [ip], "conditions": {"ready": True},
                               "targetRef": {"kind": "Pod", "namespace": ns, "name": name}}
                              for name, ip in self.slices[s]]}

    def service_obj(self, s):
        ns, svc, cip, ports = self.svcs[s]
        return {"metadata": {"name": svc, "namespace": ns},
                "spec": {"type": "ClusterIP", "clusterIP": cip, "clusterIPs": [cip],
                         "selector": {"app": svc}, "ports": ports}}

    def state(self):
        return {"namespaces": [{"metadata": {"name": n, "labels": {"tollgate.dev/inject":
                                                                   "enabled"}}}
                               for n in self.ns],
                "services": [self.service_obj(s) for s in range(len(self.svcs))],
                "endpointslices": [self.slice_obj(s) for s in range(len(self.svcs))],
                "pods": list(self.pods.values())}

    # the changes: each a list of /batch ops
    def start(self, s):
        pod = self.add_pod(s)
        return [{"op": "put", "plural": "pods", "object": pod},
                {"op": "put", "plural": "endpointslices", "object": self.slice_obj(s)}]

    def stop(self, s):
        ns = self.svcs[s][0]
        name, _ = self.slices[s].pop(0)
        del self.pods[(ns, name)]
        return [{"op": "put", "plural": "endpointslices", "object": self.slice_obj(s)},
                {"op": "delete", "plural": "pods", "ns": ns, "name": name}]

    def change_sa(self, s, k):
        ns = self.svcs[s][0]
        name, _ = self.slices[s][0]
        pod = self.pods[(ns, name)]
        sa = pod["spec"]["serviceAccountName"]
        pod["spec"]["serviceAccountName"] = self.sa_of(s, k) if self.sa_of(s, k) != sa else \
            self.sa_of(s, k + 1)
        return [{"op": "put", "plural": "pods", "object": pod}]


# ---------------------------------------------------------------------------- processes

class Procs:
    def __init__(self):
        self.procs = []

    def spawn(self, name, argv, tmp, stdout=None):
        errf = open(os.path.join(tmp, name + ".err"), "wb")
        p = subprocess.Popen(argv, cwd=tmp, stdin=subprocess.DEVNULL,
                             stdout=stdout if stdout is not None else errf, stderr=errf)
        self.procs.append((name, p))
        return p

    def stop_all(self):
        """Stops them all (SIGTERM, then SIGKILL after 5 s); their exit statuses by name."""
        log("stopping %s" % ", ".join("%s (%d)" % (n, p.pid) for n, p in self.procs))
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for name, p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log("%s (%d) did not stop within 5 s of SIGTERM: SIGKILL" % (name, p.pid))
                p.kill()
                p.wait()
        return {name: p.returncode for name, p in self.procs}


def http(url, method="GET", body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def stalled_stream(a, tmp, i):
    """A stream authenticated by token i that never reads: a receive buffer of 4 KiB, Hello
    sent, then nothing read, so a push larger than the socket buffers stays queued in
    tollgate-cp. Hello is hand-encoded here (ClientMessage.hello = 1: node_id = 1,
    token = 7; every length under 128)."""
    ctx = ssl.create_default_context(cafile=os.path.join(tmp, "ca.pem"))
    ctx.check_hostname = False  # tollgate-cp's certificate names a SPIFFE ID, no host
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", a.port_base))
    tls = ctx.wrap_socket(raw)
    node, token = b"stalled-%d" % i, b"sim-token-%06d-aaaaaaaaaaaa" % i
    hello = b"\x0a" + bytes([len(node)]) + node + b"\x3a" + bytes([len(token)]) + token
    msg = b"\x0a" + bytes([len(hello)]) + hello
    tls.sendall(struct.pack(">I", len(msg)) + msg)
    return tls


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, cond, timeout, poll=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(poll)
    raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))


def pct(v, p):
    s = sorted(v)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


# ---------------------------------------------------------------------------- the run

def run(a):
    build = os.path.abspath(a.build)
    for b in ("tollgate-cp", "tollgate-certs", "bench/cp_sim"):
        if not os.access(os.path.join(build, b), os.X_OK):
            sys.exit("k8s_scale: %s/%s missing: cmake --build %s --target %s" %
                     (build, b, a.build, os.path.basename(b)))
    tmp = tempfile.mkdtemp(prefix="tollgate-k8s-scale.")
    procs = Procs()
    rc = 1
    try:
        rc = measure(a, build, tmp, procs)
    finally:
        codes = procs.stop_all()
        # tollgate-cp and cp_sim exit 0 on SIGTERM; anything else (a sanitizer's report,
        # a crash, SIGKILL) fails the run
        for name in ("cp", "sim"):
            if codes.get(name, 0) != 0:
                log("%s exited with %s: see %s.err%s" % (name, codes[name], name,
                                                         "" if a.keep else " (--keep)"))
                rc = 1
        if a.keep:
            log("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


def setup_files(a, build, tmp, cluster):
    def sh(argv):
        subprocess.run(argv, cwd=tmp, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60)

    certs = os.path.join(build, "tollgate-certs")
    sh([certs, "ca", "--out", "ca", "--cn", "k8s scale CA"])
    sh([certs, "issue", "--ca", "ca", "--out", "cp", "--spiffe", CP_ID])
    with open(os.path.join(tmp, "api.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "api-ca.key", "-out", "api-ca.pem", "-days", "1", "-subj",
        "/CN=bench cluster CA"])
    sh(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "api.key", "-out", "api.csr", "-subj", "/CN=kube-apiserver"])
    sh(["openssl", "x509", "-req", "-in", "api.csr", "-CA", "api-ca.pem", "-CAkey",
        "api-ca.key", "-CAcreateserial", "-out", "api.pem", "-days", "1", "-extfile",
        "api.ext"])
    with open(os.path.join(tmp, "api.token"), "w") as f:
        f.write(API_TOKEN + "\n")
    # one bootstrap token per simulated sidecar, each a workload of the cluster
    with open(os.path.join(tmp, "tokens.txt"), "w") as f:
        for i in range(a.sidecars + a.stall):
            s = i % len(cluster.svcs)
            f.write("sim-token-%06d-aaaaaaaaaaaa %s %s\n" %
                    (i, cluster.svcs[s][0], cluster.sa_of(s)))
    with open(os.path.join(tmp, "mesh.yaml"), "w") as f:
        f.write("authorization: {default: allow}\n")
    with open(os.path.join(tmp, "state.json"), "w") as f:
        json.dump(cluster.state(), f)


def write_cp_yaml(a, tmp):
    with open(os.path.join(tmp, "cp.yaml"), "w") as f:
        f.write("listen: 127.0.0.1:%d\nadmin: 127.0.0.1:%d\ntrust_domain: cluster.local\n"
                "server: {cert: cp.pem, key: cp.key}\nca: {cert: ca.pem, key: ca.key}\n"
                "tokens: tokens.txt\nmesh: [mesh.yaml]\nlog_level: %s\n"
                "limits: {max_unauthenticated_per_address: %d}\n"
                "kubernetes:\n  discovery:\n    api_server: https://127.0.0.1:%d\n"
                "    ca: api-ca.pem\n    token: api.token\n" %
                (a.port_base, a.admin_port, a.cp_log_level, 512, a.api_port))


def measure(a, build, tmp, procs):
    t_gen = time.monotonic()
    cluster = Cluster(a.namespaces, a.services, a.pods)
    setup_files(a, build, tmp, cluster)
    log("cluster of %d namespaces, %d services, %d pods generated in %.1f s (%s)" %
        (a.namespaces, a.services, a.pods, time.monotonic() - t_gen, tmp))

    api = procs.spawn("apiserver", ["/usr/bin/python3", os.path.join(ROOT, "tests/k8s/apiserver.py"),
                                    "--cert", "api.pem", "--key", "api.key", "--token", API_TOKEN,
                                    "--bookmark-interval", "30", "--state", "state.json"],
                      tmp, stdout=subprocess.PIPE)
    line = api.stdout.readline().decode()
    if not line:
        raise RuntimeError("the stand-in API server did not start: see apiserver.err")
    ports = json.loads(line)
    a.api_port, ctl = ports["port"], "http://127.0.0.1:%d" % ports["ctl"]
    write_cp_yaml(a, tmp)
    log("stand-in API server on %d (control %d)" % (ports["port"], ports["ctl"]))

    t_cp = time.monotonic()
    cp = procs.spawn("cp", [os.path.join(build, "tollgate-cp"), "run", "-c", "cp.yaml"], tmp)
    admin = "http://127.0.0.1:%d" % a.admin_port

    def synced():
        try:
            return "tollgate_cp_k8s_synced 1\n" in http(admin + "/stats", timeout=2)
        except OSError:
            if cp.poll() is not None:
                raise RuntimeError("tollgate-cp exited: see cp.err")
            return False

    wait_for("tollgate-cp to list the cluster", synced, 120)
    t_synced = time.monotonic() - t_cp
    rss_synced = proc_status_kb(cp.pid, "VmRSS")
    cpu_synced = proc_cpu_s(cp.pid)
    log("tollgate-cp synced in %.1f s, RSS %d MB, CPU %.1f s" %
        (t_synced, rss_synced // 1024, cpu_synced))

    # streams that never read, first, so they take the push turns (--stall)
    stalled = [stalled_stream(a, tmp, a.sidecars + i) for i in range(a.stall)]
    if stalled:
        time.sleep(1)
        log("%d streams that never read are open" % len(stalled))

    # the simulated sidecars
    t_sim = time.monotonic()
    sim = procs.spawn("sim", [os.path.join(build, "bench/cp_sim"), str(a.port_base), "ca.pem",
                              CP_ID, "tokens.txt", str(a.sidecars)], tmp,
                      stdout=subprocess.PIPE)
    completes = queue.Queue()
    status = {}

    def reader():
        for raw in sim.stdout:
            f = raw.decode().split()
            if f and f[0] == "complete":
                completes.put({"type": f[1], "version": f[2], "streams": int(f[3]),
                               "first_ns": int(f[4]), "last_ns": int(f[5]), "bytes": int(f[6])})
            elif f and f[0] == "status":
                status.update(kv.split("=") for kv in f[2:])

    threading.Thread(target=reader, daemon=True).start()
    initial = {}

    def all_have_table():
        while not completes.empty():
            c = completes.get()
            initial[c["type"]] = c
        if sim.poll() is not None:
            raise RuntimeError("cp_sim exited: see sim.err")
        return "mesh_table" in initial

    wait_for("%d streams to ACK the first mesh table" % a.sidecars, all_have_table,
             a.connect_timeout)
    t_connected = time.monotonic() - t_sim
    time.sleep(1)  # the other types' completes, and the streams settle
    while not completes.empty():
        c = completes.get()
        initial[c["type"]] = c
    table_bytes = initial["mesh_table"]["bytes"] / initial["mesh_table"]["streams"]
    rss_streams = proc_status_kb(cp.pid, "VmRSS")
    log("%d streams hold the mesh table (%d bytes each) %.1f s after cp_sim started; "
        "tollgate-cp RSS %d MB" % (a.sidecars, table_bytes, t_connected, rss_streams // 1024))

    # the pod changes, one at a time
    cpu0 = proc_cpu_s(cp.pid)
    pushed0 = int(status.get("push_bytes", 0))
    rss_peak_sampled = [0]
    stop_sampling = threading.Event()

    def sampler():
        while not stop_sampling.wait(0.05):
            try:
                rss_peak_sampled[0] = max(rss_peak_sampled[0], proc_status_kb(cp.pid, "VmRSS"))
            except OSError:
                return

    threading.Thread(target=sampler, daemon=True).start()
    kinds = ("start", "stop", "sa")
    results = []  # (kind, latency_ms or None, bytes)
    t_events = time.monotonic()
    for i in range(a.events):
        kind = kinds[i % 3]
        s = (i * 7919) % len(cluster.svcs)
        ops = (cluster.start(s) if kind == "start" else
               cluster.stop(s) if kind == "stop" else cluster.change_sa(s, i))
        answer = json.loads(http(ctl + "/batch", "POST", {"ops": ops}))
        t_event = answer["t_ns"][0]
        got, nbytes = None, 0
        deadline = time.monotonic() + a.event_timeout
        while time.monotonic() < deadline:
            try:
                c = completes.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            nbytes += c["bytes"]
            if c["type"] == "mesh_table" and c["first_ns"] > t_event:
                got = c
                break
        if got is None:
            log("change %d (%s) got no complete new mesh table within %.0f s; cp_sim: %s" %
                (i, kind, a.event_timeout, status))
        results.append((kind, (got["last_ns"] - t_event) / 1e6 if got else None, nbytes))
        if a.gap > 0:
            time.sleep(a.gap)
    t_events = time.monotonic() - t_events
    time.sleep(0.5)
    stop_sampling.set()
    cpu_events = proc_cpu_s(cp.pid) - cpu0
    hwm = proc_status_kb(cp.pid, "VmHWM")
    rss_end = proc_status_kb(cp.pid, "VmRSS")
    pushed = int(status.get("push_bytes", 0)) - pushed0
    cp_stats = http(admin + "/stats", timeout=5)
    log("%d changes in %.1f s" % (a.events, t_events))

    lat = [r[1] for r in results if r[1] is not None]
    missed = sum(1 for r in results if r[1] is None)
    per_kind = {}
    for k in kinds:
        v = [r[1] for r in results if r[0] == k and r[1] is not None]
        per_kind[k] = "%.0f / %.0f / %.0f" % (pct(v, 50), pct(v, 99), max(v)) if v else "none"
    destinations = "?"
    with open(os.path.join(tmp, "cp.err"), errors="replace") as f:
        for line in f:
            if "mesh table derived" in line:
                destinations = line.split(": ")[-1].split(" destinations")[0].split("(")[0]
    passed_lat = lat and pct(lat, 99) < 1000 and missed == 0
    passed_rss = hwm < 200 * 1024
    rows = [
        ("cluster", "%d namespaces, %d services (%d EndpointSlices), %d pods; %s mesh-table "
         "destinations" % (a.namespaces, a.services, a.services, a.pods, destinations.strip())),
        ("sidecar streams", "%d (cp_sim, bootstrap tokens, every push ACKed)" % a.sidecars),
        ("tollgate-cp: first list to a pushable table", "%.1f s (RSS %d MB, CPU %.1f s)" %
         (t_synced, rss_synced // 1024, cpu_synced)),
        ("all streams connected and holding the table", "%.1f s after cp_sim started "
         "(RSS %d MB)" % (t_connected, rss_streams // 1024)),
        ("mesh table per stream", "%.0f KB (protobuf)" % (table_bytes / 1024)),
        ("pod changes", "%d (start, stop, service-account change in turn), one at a time, "
         "%.1f s in all" % (a.events, t_events)),
        ("API event → last stream's ACK, p50 / p99 / max",
         "%.0f / %.0f / %.0f ms (target p99 < 1 s)%s" %
         (pct(lat, 50), pct(lat, 99), max(lat) if lat else float("nan"),
          "" if not missed else "; %d changes got no new version within %.0f s" %
          (missed, a.event_timeout))),
        ("… by change: start / stop / SA, p50 / p99 / max ms",
         "%s; %s; %s" % (per_kind["start"], per_kind["stop"], per_kind["sa"])),
        ("tollgate-cp CPU during the changes", "%.1f s over %.1f s (%.0f ms per change)" %
         (cpu_events, t_events, 1000 * cpu_events / max(1, a.events))),
        ("tollgate-cp peak RSS (VmHWM)", "%d MB (target < 200 MB; sampled peak during the "
         "changes %d MB, at the end %d MB)" % (hwm // 1024, rss_peak_sampled[0] // 1024,
                                                rss_end // 1024)),
        ("bytes pushed per pod change", "%.1f MB (%.0f KB to each of %d streams; protobuf, "
         "before TLS)" % (pushed / max(1, a.events) / 1e6,
                          pushed / max(1, a.events) / a.sidecars / 1024, a.sidecars)),
    ]
    out = ["## tollgate-cp at %d pods, %d services, %d sidecar streams" %
           (a.pods, a.services, a.sidecars), "",
           "Run %s UTC on %s, `bench/k8s_scale.sh`, build %s." %
           (time.strftime("%Y-%m-%d %H:%M", time.gmtime()), os.uname().nodename, a.build), "",
           "| figure | value |", "| --- | --- |"]
    out += ["| %s | %s |" % r for r in rows]
    out.append("")
    out.append("Targets: p99 under 1 s %s; peak RSS under 200 MB %s." %
               ("met" if passed_lat else "MISSED", "met" if passed_rss else "MISSED"))
    text = "\n".join(out) + "\n"
    print(text)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write(text)
        log("written to " + a.out)
    if a.verbose:
        sys.stderr.write(cp_stats)
    if a.smoke:  # the machinery works: every change reached every stream
        return 0 if missed == 0 and len(lat) == a.events else 1
    return 0 if passed_lat and passed_rss else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--sidecars", type=int, default=500)
    ap.add_argument("--events", type=int, default=60, help="pod changes injected")
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between changes")
    ap.add_argument("--event-timeout", type=float, default=10.0)
    ap.add_argument("--connect-timeout", type=float, default=180.0,
                    help="seconds for every stream to hold the first table")
    ap.add_argument("--port-base", type=int, default=45000,
                    help="tollgate-cp's stream port; its admin is the next (0: free ports)")
    ap.add_argument("--build", default=os.environ.get("TOLLGATE_BUILD_DIR",
                                                      os.path.join(ROOT, "build")))
    ap.add_argument("--out", default=None, help="also write the table here")
    ap.add_argument("--cp-log-level", default="info")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--verbose", action="store_true", help="also print tollgate-cp's /stats")
    ap.add_argument("--stall", type=int, default=0,
                    help="also open this many streams that never read (an attack on pacing)")
    ap.add_argument("--smoke", action="store_true",
                    help="exit 0 when every change reached every stream, targets or not")
    a = ap.parse_args()
    a.api_port = 0
    if a.port_base == 0:
        a.port_base, a.admin_port = free_port(), free_port()
    else:
        a.admin_port = a.port_base + 1
    # SIGTERM as SIGINT: the processes started are stopped and the directory removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if a.pods < a.services or a.services < 1 or a.sidecars < 1 or a.namespaces < 1:
        sys.exit("k8s_scale: need pods >= services >= 1, sidecars >= 1, namespaces >= 1")
    sys.exit(run(a))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""tollgate-cp's mutating admission webhook (controlplane/k8s/k8s_webhook.h, k8s_inject.h),
driven as the API server drives it: AdmissionReview v1 over HTTPS, verified with the caBundle
tollgate-cp wrote into the stand-in API server's MutatingWebhookConfiguration.

Proves: the caBundle is written at start and again after a CA rotation, and verifies the
serving certificate for the Service's DNS name; the pods a Deployment, StatefulSet, DaemonSet,
Job and CronJob create, and a bare pod, are patched into pods that validate against the
Kubernetes schemas (npm kubernetes-models, as tests/deploy does) and carry exactly the
containers and volumes of the kustomize Component (deploy/k8s/components/inject); a patched
pod sent again gets no patch (idempotent); an opted-out pod and a pod of an unlabelled
namespace get none; a hostNetwork pod and a pod using a sidecar port are refused with a
reason; attacks: a body that is not an AdmissionReview, not JSON, a huge body, a wrong method
and path, no Content-Length, a client speaking plain HTTP.

Env: TG_CP_BIN, TG_CERTS_BIN, TG_SOURCE_DIR (ctest sets them). TAP-like output; exit 1 on a
failure, 77 when a tool is missing.
"""
import base64
import copy
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

SRC = os.path.abspath(os.environ.get("TG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.join(SRC, "tests", "k8s"))
from apiserver import json_patch  # noqa: E402  (the same RFC 6902 code the stand-in applies)

SVC_NAME = "tollgate-cp.tollgate-system.svc"
CONFIG = "tollgate-sidecar-injector"
FAILED = 0
PROCS = []


def check(ok, what, detail=""):
    global FAILED
    if ok:
        print("ok - " + what)
    else:
        FAILED += 1
        print("not ok - %s%s" % (what, (": " + str(detail)[:400]) if detail else ""))
    return ok


def run(*argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=True,
                          timeout=30, **kw)


def wait_for(fn, timeout=5.0, step=0.05):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


class Ctl:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError:
            return None


class Webhook:
    def __init__(self, port):
        self.port = port

    def context(self, bundle_pem, max_tls12=False):
        ctx = ssl.create_default_context(cadata=bundle_pem)
        if max_tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def raw(self, ctx, data, read=True):
        """Sends data over TLS; returns (status, headers, body) or None when closed."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname=SVC_NAME) as t:
                t.sendall(data)
                if not read:
                    return None
                got = b""
                while True:
                    try:
                        b = t.recv(65536)
                    except (ConnectionResetError, ssl.SSLError):
                        break
                    if not b:
                        break
                    got += b
        if not got:
            return None
        head, _, body = got.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        return status, hdrs, body

    def post(self, ctx, body, path="/inject?timeout=10s", method="POST"):
        req = ("%s %s HTTP/1.1\r\nHost: %s:443\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n" % (method, path, SVC_NAME, len(body))).encode()
        return self.raw(ctx, req + body)


def review(uid, ns, pod, op="CREATE"):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                        "namespace": ns, "operation": op,
                        "userInfo": {"username": "system:serviceaccount:kube-system:"
                                                 "replicaset-controller"},
                        "object": pod, "oldObject": None, "dryRun": False,
                        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}}}


def owner(kind, api, name):
    return [{"apiVersion": api, "kind": kind, "name": name, "uid": "0f0e5a1c-1111-4c1e-9d1e-"
             "000000000001", "controller": True, "blockOwnerDeletion": True}]


def app(name="app", ports=None, probes=True):
    c = {"name": name, "image": "registry.example.com/web:1.2", "ports": ports or
         [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
         "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
    if probes:
        c["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5}
        c["livenessProbe"] = {"tcpSocket": {"port": "http"}, "periodSeconds": 10}
    return c


def workload_pods():
    """Pods as each controller makes them from its template (what the webhook sees)."""
    base = {"apiVersion": "v1", "kind": "Pod"}
    deployment = dict(base, metadata={
        "generateName": "web-7d9c6b8f4-", "namespace": "prod",
        "labels": {"app": "web", "pod-template-hash": "7d9c6b8f4"},
        "ownerReferences": owner("ReplicaSet", "apps/v1", "web-7d9c6b8f4")},
        spec={"serviceAccountName": "web", "containers": [app()]})
    statefulset = dict(base, metadata={
        "name": "db-0", "namespace": "prod",
        "labels": {"app": "db", "statefulset.kubernetes.io/pod-name": "db-0"},
        "annotations": {"example.com/owner": "team-db"},
        "ownerReferences": owner("StatefulSet", "apps/v1", "db")},
        spec={"hostname": "db-0", "subdomain": "db", "serviceAccountName": "db",
              "containers": [app("postgres", [{"containerPort": 5432}], probes=False)],
              "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]})
    daemonset = dict(base, metadata={
        "generateName": "agent-", "namespace": "prod", "labels": {"app": "agent"},
        "ownerReferences": owner("DaemonSet", "apps/v1", "agent")},
        spec={"tolerations": [{"operator": "Exists"}],
              "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                  "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name",
                                                          "operator": "In",
                                                          "values": ["node-1"]}]}]}}},
              "containers": [app("agent", [{"containerPort": 9100}], probes=False)]})
    job = dict(base, metadata={
        "generateName": "migrate-", "namespace": "prod",
        "labels": {"job-name": "migrate", "batch.kubernetes.io/job-name": "migrate"},
        "ownerReferences": owner("Job", "batch/v1", "migrate")},
        spec={"restartPolicy": "Never",
              "containers": [app("migrate", [], probes=False)],
              "initContainers": [{"name": "wait-db", "image": "busybox:1.36",
                                  "command": ["sh", "-c", "true"]}]})
    cronjob = dict(base, metadata={
        "generateName": "report-28890360-", "namespace": "prod",
        "labels": {"job-name": "report-28890360"},
        "ownerReferences": owner("Job", "batch/v1", "report-28890360")},
        spec={"restartPolicy": "OnFailure", "containers": [app("report", [], probes=False)]})
    bare = dict(base, metadata={"name": "debug", "namespace": "prod"},
                spec={"containers": [{"name": "shell", "image": "busybox:1.36",
                                      "command": ["sleep", "3600"]}]})
    return [("Deployment", deployment), ("StatefulSet", statefulset), ("DaemonSet", daemonset),
            ("Job", job), ("CronJob", cronjob), ("bare pod", bare)]


def check_probes(kind, pod, out):
    """httpGet and tcpSocket probes go to the health port; the originals to the sidecar."""
    want, got = {}, {}
    for c0, c1 in zip(pod["spec"]["containers"], out["spec"]["containers"]):
        for field, short in (("livenessProbe", "livez"), ("readinessProbe", "readyz"),
                             ("startupProbe", "startupz")):
            if field not in c0:
                continue
            p0, p1 = c0[field], c1[field]
            key = "%s/%s" % (c0["name"], short)
            port = (p0.get("httpGet") or p0.get("tcpSocket"))["port"]
            if isinstance(port, str):
                port = next(p["containerPort"] for p in c0["ports"] if p.get("name") == port)
            action = "httpGet" if "httpGet" in p0 else "tcpSocket"
            want[key] = {action: dict({"port": port}, **(
                {"path": p0["httpGet"]["path"]} if "path" in p0.get("httpGet", {}) else {})),
                "timeoutSeconds": p0.get("timeoutSeconds", 1)}
            got[key] = p1
            timing = {k: v for k, v in p0.items() if k not in ("httpGet", "tcpSocket")}
            check(p1 == dict(timing, httpGet={"path": "/app-health/" + key, "port": 15021,
                                              "scheme": "HTTP"}),
                  "%s: %s of %s rewritten to GET :15021/app-health/%s, timings kept"
                  % (kind, field, c0["name"], key), p1)
    ann = out["metadata"]["annotations"].get("tollgate.dev/app-probes")
    proxy = next(c for c in out["spec"]["initContainers"] if c["name"] == "tollgate-proxy")
    env = [e for e in proxy.get("env", []) if e["name"] == "TOLLGATE_APP_PROBES"]
    if not want:
        check(ann is None and not env, "%s: no probes, no app-probes annotation" % kind)
        return
    check(ann is not None and json.loads(ann) == want,
          "%s: the original probes, ports resolved, in tollgate.dev/app-probes" % kind, ann)
    check(env == [{"name": "TOLLGATE_APP_PROBES", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.annotations['tollgate.dev/app-probes']"}}}],
          "%s: the sidecar gets them in TOLLGATE_APP_PROBES (downward API)" % kind, env)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, method="GET"):
    """(status, body) of one plain HTTP request to 127.0.0.1:port, or (None, error)."""
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    except OSError as e:
        return None, str(e)


def app_health(certs, hook, ctx):
    """End to end: the webhook rewrites an app's probes; a sidecar given the annotation (as
    the downward API gives it) answers them on its health port by probing the app locally,
    while the app's port is strict mTLS and refuses the kubelet's plain-text probe."""
    import http.server
    import threading

    app_port = free_port()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "prod"},
           "spec": {"containers": [{
               "name": "web", "image": "web:1", "ports": [{"name": "http", "containerPort": app_port}],
               "readinessProbe": {"httpGet": {"path": "/healthz?full=1", "port": "http"},
                                  "timeoutSeconds": 1},
               "livenessProbe": {"tcpSocket": {"port": app_port}}}]}}
    resp, _ = decide(hook, ctx, "uid-e2e", "prod", pod)
    out = json_patch(copy.deepcopy(pod), json.loads(base64.b64decode(resp["patch"])))
    probes = out["metadata"]["annotations"]["tollgate.dev/app-probes"]
    ready_path = out["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
    live_path = out["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"]

    run(certs, "issue", "--ca", "ca", "--out", "web", "--spiffe",
        "spiffe://mesh.local/ns/prod/sa/web")
    admin, health, metrics, inbound = free_port(), free_port(), free_port(), free_port()
    with open("sidecar.yaml", "w") as f:
        f.write("admin: 127.0.0.1:%d\nhealth: 127.0.0.1:%d\nmetrics: 127.0.0.1:%d\n"
                "workers: 1\nidentity: {cert: web.pem, key: web.key, trust_bundle: ca.pem}\n"
                "inbound:\n  - name: web-in\n    listen: 127.0.0.1:%d\n"
                "    upstream: 127.0.0.1:%d\n    mode: strict\n"
                % (admin, health, metrics, inbound, app_port))
    seen = []

    class App(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(200 if self.path == "/healthz?full=1" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    app = http.server.HTTPServer(("127.0.0.1", app_port), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    silent = socket.socket()  # accepts (the backlog), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    table = json.loads(probes)
    table["silent/readyz"] = {"httpGet": {"port": silent.getsockname()[1], "path": "/"},
                              "timeoutSeconds": 1}
    env = dict(os.environ, TOLLGATE_APP_PROBES=json.dumps(table))
    sc = subprocess.Popen([os.environ["TG_BIN"], "run", "-c", "sidecar.yaml"], env=env,
                          stdout=subprocess.DEVNULL, stderr=open("sidecar.err", "w"))
    PROCS.append(sc)
    up = wait_for(lambda: http_get(health, "/ready")[0] == 200)
    if not check(up, "the sidecar's health listener answers /ready",
                 open("sidecar.err").read()[-1500:]):
        return
    st, body = http_get(health, ready_path)
    check(st == 200 and seen and seen[-1] == "/healthz?full=1",
          "app up: GET %s on the health port is 200, the app was probed at /healthz?full=1"
          % ready_path, (st, body, seen))
    st, body = http_get(health, live_path)
    check(st == 200, "app up: the rewritten tcpSocket probe %s is 200" % live_path, (st, body))
    st, body = http_get(inbound, "/healthz?full=1")
    check(st != 200 and len(seen) == 1,
          "the kubelet's old probe, plain HTTP to the strict port, never reaches the app",
          (st, body, seen))
    app.shutdown()
    app.server_close()
    st, body = http_get(health, ready_path)
    check(st == 503 and "refused" in body,
          "app down: the same URL is 503 with the reason", (st, body))
    st, body = http_get(health, live_path)
    check(st == 503, "app down: the tcpSocket probe is 503", (st, body))
    t0 = time.monotonic()
    st, body = http_get(health, "/app-health/silent/readyz")
    check(st == 503 and "did not answer" in body and 0.8 < time.monotonic() - t0 < 3,
          "an app that never answers: 503 at the probe's timeoutSeconds", (st, body))
    for _ in range(3):  # the kubelet gives up first: the answer comes to no one
        with socket.create_connection(("127.0.0.1", health), timeout=5) as c:
            c.sendall(b"GET /app-health/silent/readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(1.3)
    check(http_get(health, "/ready")[0] == 200,
          "probes whose caller left are finished and dropped; the port serves on")
    silent.close()
    st, body = http_get(health, "/app-health/other/livez")
    check(st == 404, "a probe that was never declared: 404", (st, body))
    st, _ = http_get(health, "/stats")
    st2, _ = http_get(health, "/drain", method="POST")
    check(st == 404 and st2 == 404, "the health port serves no /stats and no /drain",
          (st, st2))
    st, body = http_get(metrics, "/metrics")
    st2, body2 = http_get(metrics, "/stats/prometheus")
    st3, _ = http_get(metrics, "/config_dump")
    check(st == 200 and st2 == 200 and "tollgate_" in body and "tollgate_" in body2
          and st3 == 404, "the metrics port serves the Prometheus text only", (st, st2, st3))
    sc.send_signal(signal.SIGTERM)
    try:
        sc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sc.kill()


def decide(hook, ctx, uid, ns, pod):
    r = hook.post(ctx, json.dumps(review(uid, ns, pod)).encode())
    if r is None or r[0] != 200:
        return None, r
    return json.loads(r[2])["response"], r


def component():
    """The kustomize Component's init containers and volumes (what the webhook must match)."""
    with open(os.path.join(SRC, "deploy/k8s/components/inject/sidecar-patch.yaml")) as f:
        spec = yaml.safe_load(f)["spec"]["template"]["spec"]
    return spec["initContainers"], spec["volumes"]


def shipped_objects():
    """The objects of deploy/k8s/components/webhook (resources and patches)."""
    objs = []
    comp = os.path.join(SRC, "deploy/k8s/components/webhook")
    for name in ("webhook.yaml", "rbac.yaml"):
        with open(os.path.join(comp, name)) as f:
            objs += [o for o in yaml.safe_load_all(f) if o]
    return objs


def schema_check(pods, d):
    node = shutil.which("node")
    if not node:
        print("# node not found: schema validation skipped")
        return
    path = os.path.join(d, "patched.json")
    with open(path, "w") as f:
        json.dump(pods, f)
    env = dict(os.environ)
    env.setdefault("NODE_PATH", os.path.join(SRC, ".cache", "npm", "node_modules"))
    r = subprocess.run([node, os.path.join(SRC, "tests/deploy/validate_schema.cjs"), path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=60)
    out = r.stdout.decode()
    if r.returncode == 77:
        print("# kubernetes-models not installed: schema validation skipped")
        return
    check(r.returncode == 0, "every patched pod, and the shipped webhook configuration and "
          "RBAC, validate against the Kubernetes schemas", out)


def main():
    for tool in ("TG_CP_BIN", "TG_CERTS_BIN", "TG_BIN"):
        if not os.environ.get(tool):
            print("# %s not set" % tool)
            return 77
    if not shutil.which("openssl"):
        print("# openssl not found")
        return 77
    d = tempfile.mkdtemp(prefix="tg-webhook-")
    os.chdir(d)
    certs = os.environ["TG_CERTS_BIN"]
    run(certs, "ca", "--out", "ca", "--cn", "webhook test CA")
    run(certs, "issue", "--ca", "ca", "--out", "cp", "--spiffe",
        "spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "api-ca.key", "-out", "api-ca.pem", "-days", "1", "-subj",
        "/CN=stand-in cluster CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "api.key", "-out", "api.csr", "-subj", "/CN=kube-apiserver")
    with open("api.ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "api.csr", "-CA", "api-ca.pem", "-CAkey", "api-ca.key",
        "-CAcreateserial", "-out", "api.pem", "-days", "1", "-extfile", "api.ext")
    token = "k8s-token-%d" % os.getpid()
    with open("api.token", "w") as f:
        f.write(token + "\n")

    api = subprocess.Popen([sys.executable, os.path.join(SRC, "tests/k8s/apiserver.py"),
                            "--cert", "api.pem", "--key", "api.key", "--token", token],
                           stdout=subprocess.PIPE, stderr=open("apiserver.log", "w"))
    PROCS.append(api)
    ports = json.loads(api.stdout.readline())
    ctl = Ctl(ports["ctl"])
    ctl.call("PUT", "/objects/namespaces",
             {"metadata": {"name": "prod", "labels": {"tollgate.dev/inject": "enabled"}}})
    ctl.call("PUT", "/objects/namespaces", {"metadata": {"name": "plain"}})
    # the shipped configuration (components/webhook), with another Service's webhook first
    shipped = shipped_objects()
    cfg = copy.deepcopy(next(o for o in shipped if o["kind"] == "MutatingWebhookConfiguration"))
    cfg["webhooks"].insert(0, {
        "name": "other.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "clientConfig": {"service": {"name": "other", "namespace": "elsewhere"},
                         "caBundle": "b3RoZXI="}})
    ctl.call("PUT", "/webhookconfigs", cfg)

    with open("cp.yaml", "w") as f:
        f.write("listen: 127.0.0.1:0\ntrust_domain: mesh.local\n"
                "server: {cert: cp.pem, key: cp.key}\nca: {cert: ca.pem, key: ca.key}\n"
                "admin: 127.0.0.1:0\nlog_level: info\nkubernetes:\n"
                "  discovery: {api_server: \"https://127.0.0.1:%d\", ca: api-ca.pem, "
                "token: api.token}\n"
                "  webhook: {listen: \"127.0.0.1:0\", image: \"registry.example.com/tollgate:"
                "0.1.0\"}\n" % ports["port"])
    err = open("cp.err", "w")
    cp = subprocess.Popen([os.environ["TG_CP_BIN"], "run", "-c", "cp.yaml"],
                          stdout=subprocess.DEVNULL, stderr=err)
    PROCS.append(cp)

    def log():
        with open("cp.err") as f:
            return f.read()

    m = wait_for(lambda: re.search(r"webhook: serving AdmissionReviews on \S+ \(port (\d+)\)",
                                   log()))
    if not check(m is not None, "tollgate-cp serves the webhook", log()[-2000:]):
        return 1
    hook = Webhook(int(m.group(1)))
    ca_pem = open("ca.pem").read()
    want = base64.b64encode(ca_pem.encode()).decode()

    def bundle():
        cfg = ctl.call("GET", "/webhookconfigs/" + CONFIG)
        return cfg["webhooks"][1]["clientConfig"].get("caBundle") if cfg else None

    got = wait_for(lambda: bundle() == want and bundle())
    check(got == want, "the caBundle is written at start: the control plane's CA", got)
    other = ctl.call("GET", "/webhookconfigs/" + CONFIG)["webhooks"][0]["clientConfig"]
    check(other.get("caBundle") == "b3RoZXI=", "another Service's webhook is left alone", other)
    ctx = hook.context(base64.b64decode(got).decode())

    # ---- every workload kind ----
    inits, vols = component()
    patched = []
    for kind, pod in workload_pods():
        ns = pod["metadata"]["namespace"]
        uid = "uid-" + kind.replace(" ", "-").lower()
        resp, raw = decide(hook, ctx, uid, ns, pod)
        if not check(resp is not None, "%s: HTTPS 200 with an AdmissionReview" % kind, raw):
            continue
        check(resp["uid"] == uid and resp["allowed"] is True and
              resp.get("patchType") == "JSONPatch",
              "%s: allowed, uid echoed, a JSONPatch" % kind, resp)
        ops = json.loads(base64.b64decode(resp["patch"]))
        out = json_patch(copy.deepcopy(pod), ops)
        spec = out["spec"]
        mine = [c["name"] for c in spec["initContainers"]]
        theirs = [c["name"] for c in pod["spec"].get("initContainers", [])]
        check(mine == ["tollgate-init", "tollgate-proxy"] + theirs,
              "%s: tollgate-init and tollgate-proxy first, the pod's own after" % kind, mine)
        want_inits = copy.deepcopy(inits)
        for c in want_inits:
            c["image"] = "registry.example.com/tollgate:0.1.0"
        got_inits = copy.deepcopy(spec["initContainers"][:2])
        for c in got_inits:  # the one addition beyond the Component: the probes' variable
            c["env"] = [e for e in c.get("env", []) if e["name"] != "TOLLGATE_APP_PROBES"]
        for c in want_inits:
            c["env"] = c.get("env", [])
        check(got_inits == want_inits,
              "%s: the containers are the kustomize Component's (image from cp.yaml)" % kind)
        own_vols = [v["name"] for v in pod["spec"].get("volumes", [])]
        check(spec["volumes"] == [v for v in pod["spec"].get("volumes", [])] + vols,
              "%s: the Component's volumes added after the pod's own %s" % (kind, own_vols))
        ann = out["metadata"]["annotations"]
        check(ann.get("tollgate.dev/injected") == "true" and
              ann.get("prometheus.io/scrape") == "true" and
              ann.get("prometheus.io/port") == "15090" and
              all(ann.get(k) == v for k, v in pod["metadata"].get("annotations", {}).items()),
              "%s: injected and scrape annotations, the pod's own kept" % kind, ann)
        strip = lambda cs: [{k: v for k, v in c.items() if not k.endswith("Probe")} for c in cs]
        check(strip(spec["containers"]) == strip(pod["spec"]["containers"]),
              "%s: the app containers are unchanged but for their probes" % kind)
        check_probes(kind, pod, out)
        patched.append(out)
        # idempotent: the patched pod again (reinvocation) gets no patch
        again, _ = decide(hook, ctx, uid + "-again", ns, out)
        check(again is not None and again["allowed"] and "patch" not in again,
              "%s: a second pass over the injected pod makes no patch" % kind, again)
    for p in patched:
        p["metadata"].setdefault("name", p["metadata"].get("generateName", "x") + "abcde")
    schema_check(patched + shipped_objects(), d)

    # ---- opt-out, unlabelled namespace, not a CREATE ----
    pod = workload_pods()[0][1]
    opt = copy.deepcopy(pod)
    opt["metadata"]["annotations"] = {"tollgate.dev/inject": "false"}
    resp, _ = decide(hook, ctx, "uid-opt", "prod", opt)
    check(resp and resp["allowed"] and "patch" not in resp,
          "a pod annotated tollgate.dev/inject: \"false\" is left alone", resp)
    plain = copy.deepcopy(pod)
    plain["metadata"]["namespace"] = "plain"
    resp, _ = decide(hook, ctx, "uid-plain", "plain", plain)
    check(resp and resp["allowed"] and "patch" not in resp,
          "a pod of a namespace without the label is left alone (label re-checked)", resp)
    r = hook.post(ctx, json.dumps(review("uid-upd", "prod", pod, op="UPDATE")).encode())
    resp = json.loads(r[2])["response"] if r and r[0] == 200 else None
    check(resp and resp["allowed"] and "patch" not in resp, "an UPDATE is left alone", resp)

    # ---- refusals ----
    hn = copy.deepcopy(pod)
    hn["spec"]["hostNetwork"] = True
    resp, _ = decide(hook, ctx, "uid-hn", "prod", hn)
    check(resp and resp["allowed"] is False and resp["uid"] == "uid-hn" and
          "hostNetwork" in resp["status"]["message"] and resp["status"]["code"] == 400,
          "a hostNetwork pod is refused with the reason", resp)
    clash = copy.deepcopy(pod)
    clash["spec"]["containers"][0]["ports"] = [{"containerPort": 15006}]
    resp, _ = decide(hook, ctx, "uid-clash", "prod", clash)
    check(resp and resp["allowed"] is False and "15006" in resp["status"]["message"] and
          "app" in resp["status"]["message"],
          "a pod using a sidecar port (15006) is refused, naming container and port", resp)

    unnamed = copy.deepcopy(pod)
    unnamed["spec"]["containers"][0]["livenessProbe"] = {"tcpSocket": {"port": "grpc"}}
    resp, _ = decide(hook, ctx, "uid-unnamed", "prod", unnamed)
    check(resp and resp["allowed"] is False and "grpc" in resp["status"]["message"],
          "a probe on a port name the container does not declare is refused", resp)

    # ---- attacks ----
    r = hook.post(ctx, b'{"apiVersion":"v1","kind":"Pod","metadata":{}}')
    check(r and r[0] == 400 and b"AdmissionReview" in r[2],
          "a JSON body that is not an AdmissionReview: 400", r)
    r = hook.post(ctx, b"\x00\xffnot json at all")
    check(r and r[0] == 400 and b"not JSON" in r[2], "a body that is not JSON: 400", r)
    r = hook.post(ctx, b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",'
                       b'"request":{"kind":{"kind":"Pod"}}}')
    check(r and r[0] == 400 and b"uid" in r[2], "an AdmissionReview without a uid: 400", r)
    t0 = time.monotonic()
    r = hook.raw(ctx, ("POST /inject HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                       % (64 << 20)).encode())
    check(r and r[0] == 413 and time.monotonic() - t0 < 2,
          "a 64 MiB Content-Length: 413 at once, the body never read", r)
    big = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","x":"' + \
        b"a" * (5 << 20) + b'"}'
    try:
        r = hook.post(ctx, big)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        r = (413, {}, b"closed while sending")
    check(r and r[0] == 413, "a 5 MiB body: 413", r and r[:2])
    r = hook.post(ctx, json.dumps(review("uid-get", "prod", pod)).encode(), method="GET")
    check(r and r[0] == 405 and r[1].get("allow") == "POST", "GET: 405 with Allow: POST", r)
    r = hook.post(ctx, json.dumps(review("uid-path", "prod", pod)).encode(), path="/mutate")
    check(r and r[0] == 404, "another path: 404", r)
    r = hook.raw(ctx, b"POST /inject HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"2\r\n{}\r\n0\r\n\r\n")
    check(r and r[0] == 411, "a chunked body (no Content-Length): 411", r)
    with socket.create_connection(("127.0.0.1", hook.port), timeout=5) as s:
        s.sendall(b"POST /inject HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        try:
            got = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            got = b""
    check(b"HTTP/1.1 200" not in got and b"AdmissionReview" not in got,
          "a client speaking plain HTTP gets no HTTP answer", got[:80])
    r = hook.post(hook.context(base64.b64decode(bundle()).decode(), max_tls12=True),
                  json.dumps(review("uid-tls12", "prod", pod)).encode())
    check(r and r[0] == 200, "TLS 1.2 is served (the API server may offer it)", r and r[0])
    bad = ssl.create_default_context()  # the system's roots: not ours
    try:
        hook.post(bad, b"{}")
        ok = False
    except ssl.SSLCertVerificationError:
        ok = True
    check(ok, "the certificate is not trusted without the caBundle")

    app_health(certs, hook, ctx)

    # ---- CA rotation: a new CA, the cp's own certificate from it, SIGHUP ----
    run(certs, "ca", "--out", "ca2", "--cn", "webhook test CA 2")
    run(certs, "issue", "--ca", "ca2", "--out", "cp2", "--spiffe",
        "spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp")
    for a, b in (("ca2.pem", "ca.pem"), ("ca2.key", "ca.key"), ("cp2.pem", "cp.pem"),
                 ("cp2.key", "cp.key")):
        shutil.copy(a, b + ".new")
        os.replace(b + ".new", b)
    cp.send_signal(signal.SIGHUP)
    want2 = base64.b64encode(open("ca2.pem").read().encode()).decode()
    got = wait_for(lambda: bundle() == want2 and bundle(), timeout=10)
    check(got == want2, "after the CA rotation the caBundle holds the new CA", log()[-1500:])
    ctx2 = hook.context(open("ca2.pem").read())
    resp, r = decide(hook, ctx2, "uid-rot", "prod", pod)
    check(resp is not None and resp["allowed"],
          "the serving certificate comes from the new CA (verified with the new caBundle)", r)

    m = re.search(r"admin endpoint on \S+ \(port (\d+)\)", log())
    st, body = http_get(int(m.group(1)), "/stats") if m else (None, "")
    counts = dict(re.findall(r"^(tollgate_cp_webhook_\w+) (\d+)$", body, re.M))
    check(st == 200 and int(counts.get("tollgate_cp_webhook_injected_total", 0)) >= 7 and
          int(counts.get("tollgate_cp_webhook_refused_total", 0)) >= 3 and
          int(counts.get("tollgate_cp_webhook_rejected_total", 0)) >= 6 and
          int(counts.get("tollgate_cp_webhook_certs_total", 0)) == 2 and
          int(counts.get("tollgate_cp_webhook_cabundle_ok_total", 0)) >= 2,
          "tollgate-cp's /stats counts the webhook's reviews, refusals, errors, certificates",
          counts)

    cp.send_signal(signal.SIGTERM)
    try:
        rc = cp.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, "tollgate-cp stops cleanly", log()[-1500:])
    return 1 if FAILED else 0


if __name__ == "__main__":
    try:
        code = main()
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
    sys.exit(code)

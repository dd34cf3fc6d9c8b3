#!/usr/bin/env python3
"""Checks tollgate's deployment files (deploy/, Dockerfile) without a cluster.

1. Every YAML file under deploy/ parses (python3-yaml), and so does the YAML embedded in
   ConfigMaps.
2. The kustomizations render: with a small renderer of our own that knows exactly the
   kustomize features deploy/k8s uses (resources, components, namespace, secretGenerator,
   strategic-merge patches with a target), and, where a `kustomize` binary or `kubectl`
   is on PATH, with it too; both renders must give the same objects.
3. Required fields, on the rendered objects (see check_* below).
4. Schemas: each rendered object against the Kubernetes OpenAPI schema of the npm package
   kubernetes-models (validate_schema.cjs), when it is installed (NODE_PATH).
5. The capture arguments in the manifests and the VM unit are accepted by
   `tollgate init-iptables --dry-run`; the VM config passes `tollgate check`;
   `systemd-analyze verify` accepts the units.

Usage: check_manifests.py SOURCE_DIR WORK_DIR   (env: TG_BIN, TG_CERTS_BIN, NODE_PATH)
Prints one line per check and "N passed, N failed" at the end; exits 1 on any failure.
"""
import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

SRC, WORK = sys.argv[1], sys.argv[2]
DEPLOY = os.path.join(SRC, "deploy")
PASSED, FAILED = [], []


def check(what, ok, detail=""):
    (PASSED if ok else FAILED).append(what)
    print(("ok - " if ok else "not ok - ") + what + ("" if ok or not detail else ": " + detail))
    return ok


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---- 1. every YAML file parses ----

def yaml_files(root):
    for d, _, files in os.walk(root):
        for f in sorted(files):
            if f.endswith((".yaml", ".yml")):
                yield os.path.join(d, f)


def check_parse():
    for path in yaml_files(DEPLOY):
        rel = os.path.relpath(path, SRC)
        try:
            docs = load_all(path)
        except yaml.YAMLError as e:
            check(f"{rel} parses", False, str(e).replace("\n", " "))
            continue
        check(f"{rel} parses ({len(docs)} document(s))", len(docs) > 0)
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                for key, text in (doc.get("data") or {}).items():
                    if key.endswith((".yaml", ".yml")):
                        try:
                            yaml.safe_load(text)
                            check(f"{rel}: ConfigMap {doc['metadata']['name']} {key} parses", True)
                        except yaml.YAMLError as e:
                            check(f"{rel}: ConfigMap {key} parses", False, str(e))


# ---- 2. render: the subset of kustomize that deploy/k8s uses ----

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
KNOWN_KEYS = {
    "Kustomization": {"apiVersion", "kind", "namespace", "resources", "components", "patches",
                      "secretGenerator", "configMapGenerator"},
    "Component": {"apiVersion", "kind", "resources", "patches"},
}


class RenderError(Exception):
    pass


def merge(dst, patch):
    """Strategic merge as kustomize (kyaml merge2) does it for what our patches hold: maps
    merge key by key; a list of maps that all have a "name" merges by name, the patch's
    items first in the patch's order, then the other original items; anything else is
    replaced by the patch."""
    if isinstance(dst, dict) and isinstance(patch, dict):
        out = dict(dst)
        for k, v in patch.items():
            out[k] = merge(dst[k], v) if k in dst else copy.deepcopy(v)
        return out
    named = lambda l: isinstance(l, list) and all(isinstance(i, dict) and "name" in i for i in l)
    if named(dst) and named(patch) and patch:
        by_name = {i["name"]: i for i in dst}
        out = [merge(by_name[p["name"]], p) if p["name"] in by_name else copy.deepcopy(p)
               for p in patch]
        seen = {p["name"] for p in patch}
        return out + [copy.deepcopy(i) for i in dst if i["name"] not in seen]
    return copy.deepcopy(patch)


def matches(obj, target):
    api = obj.get("apiVersion", "")
    group, _, version = api.rpartition("/")
    for key, have in (("kind", obj.get("kind")), ("group", group), ("version", version),
                      ("name", obj.get("metadata", {}).get("name"))):
        if key in target and target[key] != have:
            return False
    return True


def render(dirpath, want_kind="Kustomization"):
    kfile = os.path.join(dirpath, "kustomization.yaml")
    (k,) = load_all(kfile)
    if k.get("kind") != want_kind:
        raise RenderError(f"{kfile}: kind {k.get('kind')}, want {want_kind}")
    unknown = set(k) - KNOWN_KEYS[want_kind]
    if unknown:
        raise RenderError(f"{kfile}: keys this renderer does not know: {sorted(unknown)}")
    objs = []
    for res in k.get("resources", []):
        path = os.path.join(dirpath, res)
        objs += render(path) if os.path.isdir(path) else load_all(path)
    for kind, field in (("Secret", "secretGenerator"), ("ConfigMap", "configMapGenerator")):
        for gen in k.get(field, []):
            data = {}
            for spec in gen.get("files", []):
                key, rel = spec.split("=", 1) if "=" in spec else (os.path.basename(spec), spec)
                with open(os.path.join(dirpath, rel), "rb") as f:
                    raw = f.read()
                data[key] = (base64.b64encode(raw).decode() if kind == "Secret"
                             else raw.decode("utf-8"))
            opts = gen.get("options", {})
            if not opts.get("disableNameSuffixHash"):
                raise RenderError(f"{kfile}: {field} without disableNameSuffixHash")
            meta = {"name": gen["name"]}
            if opts.get("labels"):
                meta["labels"] = dict(opts["labels"])
            obj = {"apiVersion": "v1", "kind": kind, "metadata": meta}
            if kind == "Secret":
                obj["type"] = gen.get("type", "Opaque")
            obj["data"] = data
            objs.append(obj)
    for comp in k.get("components", []):
        objs = apply_component(os.path.join(dirpath, comp), objs)
    for p in k.get("patches", []):
        objs = apply_patch(dirpath, p, objs)
    if "namespace" in k:
        for o in objs:
            if o["kind"] not in CLUSTER_SCOPED:
                o.setdefault("metadata", {})["namespace"] = k["namespace"]
    return objs


def apply_component(dirpath, objs):
    kfile = os.path.join(dirpath, "kustomization.yaml")
    (k,) = load_all(kfile)
    if k.get("kind") != "Component":
        raise RenderError(f"{kfile}: not a Component")
    unknown = set(k) - KNOWN_KEYS["Component"]
    if unknown:
        raise RenderError(f"{kfile}: keys this renderer does not know: {sorted(unknown)}")
    objs = objs + [o for r in k.get("resources", []) for o in load_all(os.path.join(dirpath, r))]
    for p in k.get("patches", []):
        objs = apply_patch(dirpath, p, objs)
    return objs


def apply_patch(dirpath, p, objs):
    (patch,) = load_all(os.path.join(dirpath, p["path"]))
    target = p.get("target")
    if target is None:
        raise RenderError(f"patch {p['path']}: only patches with a target are rendered here")
    body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")}
    meta = {k: v for k, v in patch.get("metadata", {}).items() if k != "name"}
    out = []
    for o in objs:
        if matches(o, target):
            o = merge(o, body)
            if meta:
                o["metadata"] = merge(o["metadata"], meta)
        out.append(o)
    return out


def key_of(o):
    m = o.get("metadata", {})
    return (o.get("kind"), m.get("namespace", ""), m.get("name"))


def normalized(objs):
    """Secret data as one base64 line: kustomize prints long values as block scalars that
    end in a newline, which the API server ignores."""
    for o in objs:
        if o.get("kind") == "Secret":
            o["data"] = {k: "".join(v.split()) for k, v in (o.get("data") or {}).items()}
    return objs


def external_render(dirpath):
    """kustomize build, or kubectl kustomize; None when neither is on PATH."""
    for cmd in (["kustomize", "build"], ["kubectl", "kustomize"]):
        if shutil.which(cmd[0]):
            r = subprocess.run(cmd + [dirpath], capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise RenderError(f"{' '.join(cmd)} {dirpath}: {r.stderr.strip()}")
            return " ".join(cmd), normalized([d for d in yaml.safe_load_all(r.stdout) if d])
    return None


def check_render(kdir):
    rel = os.path.relpath(kdir, WORK)
    try:
        ours = normalized(render(kdir))
    except (RenderError, OSError, KeyError, ValueError) as e:
        check(f"{rel} renders", False, str(e))
        return []
    check(f"{rel} renders ({len(ours)} objects, tests/deploy renderer)", True)
    keys = [key_of(o) for o in ours]
    check(f"{rel}: no two objects with the same kind, namespace and name",
          len(keys) == len(set(keys)), str(keys))
    try:
        ext = external_render(kdir)
    except (RenderError, subprocess.TimeoutExpired) as e:
        check(f"{rel} renders with kustomize", False, str(e))
        return ours
    if ext is None:
        print(f"note - {rel}: no kustomize or kubectl on PATH; rendered by tests/deploy only")
        return ours
    tool, theirs = ext
    a = {key_of(o): o for o in ours}
    b = {key_of(o): o for o in theirs}
    diff = [k for k in set(a) | set(b) if a.get(k) != b.get(k)]
    check(f"{rel}: `{tool}` renders the same {len(theirs)} objects", not diff,
          f"differ: {sorted(map(str, diff))}")
    return theirs


# ---- 3. required fields ----

def pod_spec(o):
    return o["spec"]["template"]["spec"]


def containers(spec):
    return spec.get("initContainers", []) + spec.get("containers", [])


def sc(c):
    return c.get("securityContext", {})


def get(d, *path):
    for p in path:
        if isinstance(d, list):
            d = d[p] if isinstance(p, int) and p < len(d) else None
        elif isinstance(d, dict):
            d = d.get(p)
        else:
            return None
    return d


def has_resources(c):
    r = c.get("resources", {})
    return all(get(r, a, b) for a in ("requests", "limits") for b in ("cpu", "memory"))


def check_workloads_common(objs, where):
    for o in objs:
        if o["kind"] not in ("Deployment", "Job"):
            continue
        name = f"{where}: {o['kind']} {o['metadata']['name']}"
        spec = pod_spec(o)
        for c in containers(spec):
            cn = f"{name}/{c['name']}"
            check(f"{cn}: resources (requests and limits, cpu and memory)", has_resources(c))
            check(f"{cn}: readOnlyRootFilesystem", sc(c).get("readOnlyRootFilesystem") is True)
            check(f"{cn}: allowPrivilegeEscalation false",
                  sc(c).get("allowPrivilegeEscalation") is False)
            if c["name"] != "tollgate-init":
                non_root = sc(c).get("runAsNonRoot", get(spec, "securityContext", "runAsNonRoot"))
                check(f"{cn}: runs as non-root", non_root is True)
                check(f"{cn}: drops all capabilities", get(c, "securityContext", "capabilities",
                                                           "drop") == ["ALL"]
                      and not get(c, "securityContext", "capabilities", "add"))


def check_control_plane(objs):
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    ns = "tollgate-system"
    check("control plane: Namespace tollgate-system", ("Namespace", ns) in by)
    for kind, want in (("ServiceAccount", "tollgate-cp"), ("Deployment", "tollgate-cp"),
                       ("Service", "tollgate-cp"), ("PodDisruptionBudget", "tollgate-cp"),
                       ("ConfigMap", "tollgate-cp-config"),
                       ("Secret", "tollgate-ca"), ("Secret", "tollgate-cp-tls")):
        check(f"control plane: {kind} {want}", (kind, want) in by)
    for o in objs:
        if o["kind"] not in CLUSTER_SCOPED:
            check(f"control plane: {o['kind']} {o['metadata']['name']} in {ns}",
                  o["metadata"].get("namespace") == ns)
    rbac = sorted(k for k in by if k[0] in ("Role", "RoleBinding", "ClusterRole",
                                            "ClusterRoleBinding"))
    check("control plane: RBAC is the discovery ClusterRole and its binding only",
          rbac == [("ClusterRole", "tollgate-cp-discovery"),
                   ("ClusterRoleBinding", "tollgate-cp-discovery")], str(rbac))
    role = by.get(("ClusterRole", "tollgate-cp-discovery"), {})
    granted = sorted((g, r, tuple(sorted(rule.get("verbs", []))))
                     for rule in role.get("rules", []) for g in rule.get("apiGroups", [])
                     for r in rule.get("resources", []))
    read = ("get", "list", "watch")
    status = ("patch", "update")
    check("control plane: discovery reads namespaces, pods, services, endpointslices and the "
          "policy resources, writes their status and the trust-root ConfigMaps, creates "
          "TokenReviews, no more",
          granted == [("", "configmaps", ("create",)),
                      ("", "configmaps", ("get", "list", "patch", "update", "watch")),
                      ("", "namespaces", read), ("", "pods", read), ("", "services", read),
                      ("authentication.k8s.io", "tokenreviews", ("create",)),
                      ("discovery.k8s.io", "endpointslices", read),
                      ("tollgate.dev", "authorizationpolicies", read),
                      ("tollgate.dev", "authorizationpolicies/status", status),
                      ("tollgate.dev", "ratelimits", read),
                      ("tollgate.dev", "ratelimits/status", status),
                      ("tollgate.dev", "revocations", read),
                      ("tollgate.dev", "revocations/status", status)], str(granted))
    named = [rule.get("resourceNames") for rule in role.get("rules", [])
             if "configmaps" in rule.get("resources", []) and "patch" in rule.get("verbs", [])]
    check("control plane: ConfigMaps are read and changed by the name tollgate-ca-root only",
          named == [["tollgate-ca-root"]], str(named))
    binding = by.get(("ClusterRoleBinding", "tollgate-cp-discovery"), {})
    check("control plane: the binding names the tollgate-cp ServiceAccount",
          binding.get("subjects") == [{"kind": "ServiceAccount", "name": "tollgate-cp",
                                       "namespace": ns}]
          and get(binding, "roleRef", "name") == "tollgate-cp-discovery")
    check("control plane: the ServiceAccount mounts no API token by default",
          by.get(("ServiceAccount", "tollgate-cp"), {}).get("automountServiceAccountToken")
          is False)
    d = by.get(("Deployment", "tollgate-cp"))
    if d is None:
        return
    spec = pod_spec(d)
    check("control plane: 2 replicas", d["spec"].get("replicas") == 2)
    check("control plane: serviceAccountName tollgate-cp, its API token mounted (discovery)",
          spec.get("serviceAccountName") == "tollgate-cp"
          and spec.get("automountServiceAccountToken") is True)
    check("control plane: pod runs as non-root",
          get(spec, "securityContext", "runAsNonRoot") is True
          and (get(spec, "securityContext", "runAsUser") or 0) != 0)
    (c,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check("control plane: ports 15010 (stream) and 15011 (admin)",
          ports == {"stream": 15010, "admin": 15011}, str(ports))
    for probe in ("readinessProbe", "livenessProbe"):
        port = get(c, probe, "httpGet", "port")
        check(f"control plane: {probe} GET /healthz on the admin port",
              get(c, probe, "httpGet", "path") == "/healthz" and port in ("admin", 15011))
    svc = by.get(("Service", "tollgate-cp"), {})
    check("control plane: Service on 15010 selects the pods",
          [p.get("port") for p in get(svc, "spec", "ports") or []] == [15010]
          and get(svc, "spec", "selector") == d["spec"]["selector"]["matchLabels"])
    hl = by.get(("Service", "tollgate-cp-replicas"), {})
    check("control plane: headless Service tollgate-cp-replicas on 15010 selects the pods "
          "(each replica's address, for failover)",
          get(hl, "spec", "clusterIP") == "None"
          and [p.get("port") for p in get(hl, "spec", "ports") or []] == [15010]
          and get(hl, "spec", "selector") == d["spec"]["selector"]["matchLabels"])
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    check("control plane: the CA Secret is mounted",
          get(vols.get("ca"), "secret", "secretName") == "tollgate-ca" and "ca" in mounts)
    cm = by.get(("ConfigMap", "tollgate-cp-config"), {})
    cpy = yaml.safe_load(get(cm, "data", "cp.yaml") or "{}") or {}
    check("control plane: cp.yaml listens on 15010, admin on 15011 (the ports of the pod)",
          str(cpy.get("listen", "")).endswith(":15010")
          and str(cpy.get("admin", "")).endswith(":15011"))
    check("control plane: the container runs cp.yaml from the config mount",
          c.get("args") == ["run", "-c", mounts.get("config", "?") + "/cp.yaml"], str(c.get("args")))
    for name in ("tollgate-ca", "tollgate-cp-tls"):
        secret = by.get(("Secret", name), {})
        check(f"control plane: Secret {name} is kubernetes.io/tls with tls.crt and tls.key",
              secret.get("type") == "kubernetes.io/tls"
              and set(secret.get("data", {})) == {"tls.crt", "tls.key"})


def flag_values(args):
    out = {}
    for a in args:
        k, _, v = a.partition("=")
        out[k] = v
    return out


def check_injected(objs):
    cms = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    sidecar_cfg = yaml.safe_load(get(cms.get("tollgate-sidecar"), "data", "sidecar.yaml") or "{}")
    check("injection: ConfigMap tollgate-sidecar with sidecar.yaml", bool(sidecar_cfg))
    workloads = [o for o in objs if o["kind"] in ("Deployment", "Job")]
    check("injection: the example has client and server Deployments and a Job",
          {(o["kind"], o["metadata"]["name"]) for o in workloads}
          >= {("Deployment", "client"), ("Deployment", "server"), ("Job", "client-once")})
    init_args = None
    for o in workloads:
        name = f"injection: {o['kind']} {o['metadata']['name']}"
        spec = pod_spec(o)
        inits = {c["name"]: c for c in spec.get("initContainers", [])}
        order = [c["name"] for c in spec.get("initContainers", [])]
        check(f"{name}: tollgate-init then tollgate-proxy, first of the init containers",
              order[:2] == ["tollgate-init", "tollgate-proxy"], str(order))
        check(f"{name}: the app containers are still there",
              len(spec.get("containers", [])) >= 1
              and all(not c["name"].startswith("tollgate") for c in spec["containers"]))
        init, proxy = inits.get("tollgate-init", {}), inits.get("tollgate-proxy", {})
        caps = get(init, "securityContext", "capabilities") or {}
        check(f"{name}: tollgate-init adds NET_ADMIN and NET_RAW only, drops ALL",
              sorted(caps.get("add", [])) == ["NET_ADMIN", "NET_RAW"] and caps.get("drop") == ["ALL"])
        check(f"{name}: tollgate-init runs `tollgate init-iptables`",
              init.get("command") == ["tollgate", "init-iptables"])
        check(f"{name}: tollgate-init is not a sidecar (runs to completion)",
              "restartPolicy" not in init)
        check(f"{name}: tollgate-proxy is a native sidecar (restartPolicy: Always)",
              proxy.get("restartPolicy") == "Always")
        check(f"{name}: tollgate-proxy runs as uid 1337, non-root",
              get(proxy, "securityContext", "runAsUser") == 1337
              and get(proxy, "securityContext", "runAsNonRoot") is True)
        flags = flag_values(init.get("args", []))
        init_args = init.get("args", [])
        check(f"{name}: the rules exempt the sidecar's uid (--proxy-uid 1337)",
              flags.get("--proxy-uid") == str(get(proxy, "securityContext", "runAsUser")))
        excluded = flags.get("--exclude-inbound-ports", "").split(",")
        for probe, path in (("startupProbe", "/ready"), ("readinessProbe", "/ready"),
                            ("livenessProbe", "/live")):
            check(f"{name}: tollgate-proxy {probe} GET {path} on the health port, never captured",
                  get(proxy, probe, "httpGet", "path") == path
                  and str(get(proxy, probe, "httpGet", "port")) in excluded)
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        token = [s["serviceAccountToken"] for v in vols.values()
                 for s in get(v, "projected", "sources") or [] if "serviceAccountToken" in s]
        check(f"{name}: a projected service-account token with an audience and expiry",
              len(token) == 1 and token[0].get("audience") and token[0].get("expirationSeconds"))
        mounts = {m["name"]: m["mountPath"] for m in proxy.get("volumeMounts", [])}
        check(f"{name}: every tollgate-proxy mount has a volume, the token among them",
              set(mounts) <= set(vols) and any("serviceAccountToken" in str(vols[m]) for m in mounts))
        check(f"{name}: the sidecar reads its config from the ConfigMap",
              get(vols.get("tollgate-config"), "configMap", "name") == "tollgate-sidecar"
              and proxy.get("args", [])[-1].startswith(mounts.get("tollgate-config", "?")))
        if o["kind"] == "Job":
            check(f"{name}: restartPolicy Never or OnFailure", spec.get("restartPolicy")
                  in ("Never", "OnFailure"))
    if sidecar_cfg and init_args is not None:
        flags = flag_values(init_args)
        ins = [l for l in sidecar_cfg.get("inbound", []) if l.get("transparent")]
        outs = [l for l in sidecar_cfg.get("outbound", []) if l.get("transparent")]
        check("injection: sidecar.yaml's transparent listeners are on the capture ports",
              any(l["listen"].endswith(":" + flags.get("--inbound-port", "15006")) for l in ins)
              and any(l["listen"].endswith(":" + flags.get("--outbound-port", "15001"))
                      for l in outs))
        check("injection: sidecar.yaml's admin listens on loopback only, on the uncaptured port",
              str(sidecar_cfg.get("admin", "")) == "127.0.0.1:" + flags.get("--admin-port", "15000"))
        excluded = flags.get("--exclude-inbound-ports", "").split(",")
        check("injection: sidecar.yaml's health and metrics ports are ones the rules never capture",
              str(sidecar_cfg.get("health", "")).rpartition(":")[2] in excluded
              and str(sidecar_cfg.get("metrics", "")).rpartition(":")[2] in excluded)
        check("injection: sidecar.yaml listens on IPv6 too, where the rules capture it",
              any(l["listen"].startswith("[::]:") for l in ins)
              and any(l["listen"].startswith("[::1]:") for l in outs))
    return init_args


# ---- 5. against the real binaries and tools ----

def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def check_init_args(args, where):
    tg = os.environ.get("TG_BIN")
    if not tg or args is None:
        print(f"note - {where}: TG_BIN not set; init-iptables arguments not tried")
        return
    r = run([tg, "init-iptables", "--dry-run", "--ipv6", "off"] + args)
    check(f"{where}: `tollgate init-iptables --dry-run` accepts {' '.join(args)}",
          r.returncode == 0 and "COMMIT" in r.stdout, r.stderr.strip())


def unit_lines(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def check_vm():
    vm = os.path.join(DEPLOY, "vm")
    svc, ipt = unit_lines(os.path.join(vm, "tollgate.service")), unit_lines(
        os.path.join(vm, "tollgate-iptables.service"))
    check("vm: tollgate.service runs as User=tollgate", svc.get("User") == ["tollgate"])
    for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                      ("CapabilityBoundingSet", ""), ("AmbientCapabilities", ""),
                      ("PrivateTmp", "yes"), ("ProtectHome", "yes")):
        check(f"vm: tollgate.service {key}={want}", svc.get(key) == [want], str(svc.get(key)))
    check("vm: tollgate.service writes nowhere but its state directory",
          "ReadWritePaths" not in svc and svc.get("StateDirectory") == ["tollgate"])
    check("vm: tollgate.service starts after the rules",
          "tollgate-iptables.service" in " ".join(svc.get("After", [])))
    for key, want in (("Type", "notify"), ("NotifyAccess", "main"), ("WatchdogSec", "30s"),
                      ("BindsTo", "tollgate-iptables.service"),
                      ("PartOf", "tollgate-iptables.service")):
        check(f"vm: tollgate.service {key}={want}", svc.get(key) == [want], str(svc.get(key)))
    check("vm: the rules stay when the sidecar stops (fail-closed: no ExecStopPost clean)",
          not any("--clean" in v for k in ("ExecStop", "ExecStopPost") for v in svc.get(k, [])))
    for key, want in (("DevicePolicy", "closed"), ("SystemCallFilter", "@system-service"),
                      ("UMask", "0077"), ("NoNewPrivileges", "yes")):
        check(f"vm: tollgate-iptables.service {key}={want}", ipt.get(key) == [want],
              str(ipt.get(key)))
    check("vm: tollgate-iptables.service is a oneshot that stays active",
          ipt.get("Type") == ["oneshot"] and ipt.get("RemainAfterExit") == ["yes"])
    check("vm: tollgate-iptables.service has NET_ADMIN and NET_RAW only",
          sorted(ipt.get("CapabilityBoundingSet", [""])[0].split()) == ["CAP_NET_ADMIN",
                                                                       "CAP_NET_RAW"])
    check("vm: tollgate-iptables.service removes the rules when stopped",
          any("init-iptables --clean" in v for v in ipt.get("ExecStop", [])))
    start = ipt.get("ExecStart", [""])[0].split()
    check("vm: the SSH port is never captured", "--exclude-inbound-ports=22" in start
          or any(a.startswith("--exclude-inbound-ports=") and "22" in a.split("=")[1].split(",")
                 for a in start))
    check_init_args(start[2:], "vm: tollgate-iptables.service")

    tg, certs = os.environ.get("TG_BIN"), os.environ.get("TG_CERTS_BIN")
    if tg and certs:
        d = os.path.join(WORK, "vm-check")
        os.makedirs(d, exist_ok=True)
        ok = run([certs, "ca", "--out", os.path.join(d, "ca")]).returncode == 0 and run(
            [certs, "issue", "--ca", os.path.join(d, "ca"), "--out", os.path.join(d, "orders"),
             "--spiffe", "spiffe://mesh.local/ns/shop/sa/orders"]).returncode == 0
        text = open(os.path.join(vm, "tollgate.yaml"), encoding="utf-8").read()
        text = text.replace("/etc/tollgate/identity/", d + "/")
        with open(os.path.join(d, "tollgate.yaml"), "w", encoding="utf-8") as f:
            f.write(text)
        r = run([tg, "check", "-c", os.path.join(d, "tollgate.yaml")])
        check("vm: tollgate.yaml passes `tollgate check` (identity paths pointed at test certs)",
              ok and r.returncode == 0, (r.stdout + r.stderr).strip())
    else:
        print("note - vm: TG_BIN/TG_CERTS_BIN not set; tollgate check of tollgate.yaml skipped")

    if shutil.which("systemd-analyze"):
        d = os.path.join(WORK, "units")
        os.makedirs(d, exist_ok=True)
        # verify wants the executables to exist: point ExecStart at the built binary
        for unit in ("tollgate.service", "tollgate-iptables.service"):
            text = open(os.path.join(vm, unit), encoding="utf-8").read()
            if tg:
                text = text.replace("/usr/local/bin/tollgate", tg)
            with open(os.path.join(d, unit), "w", encoding="utf-8") as f:
                f.write(text)
        r = run(["systemd-analyze", "verify", "--man=no",
                 os.path.join(d, "tollgate-iptables.service"), os.path.join(d, "tollgate.service")])
        problems = [l for l in (r.stdout + r.stderr).splitlines()
                    if ("tollgate" in l and "Unit " not in l) or "Unknown" in l or "nvalid" in l]
        check("vm: `systemd-analyze verify` accepts both units",
              r.returncode == 0 and not problems, "\n".join(problems) or r.stderr.strip())
    else:
        print("note - vm: systemd-analyze not found; unit verification skipped")


def check_dockerfile():
    text = open(os.path.join(SRC, "Dockerfile"), encoding="utf-8").read()
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    check("Dockerfile: two stages, debian:bookworm builder, debian:bookworm-slim runtime",
          len(froms) == 2 and froms[0][0] == "debian:bookworm" and froms[1][0] ==
          "debian:bookworm-slim", str(froms))
    check("Dockerfile: the builder runs scripts/setup.sh", "scripts/setup.sh" in text)
    runtime = text.split("FROM debian:bookworm-slim", 1)[-1]
    for pkg in ("libuv1", "libyaml-0-2", "libprotobuf-c1", "libjansson4", "libcurl4", "iptables"):
        check(f"Dockerfile: runtime installs {pkg}", re.search(rf"\b{re.escape(pkg)}\b", runtime)
              is not None)
    check("Dockerfile: runtime has tollgate and tollgate-cp",
          re.search(r"COPY --from=build .*tollgate .*tollgate-cp", runtime) is not None)
    users = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    check("Dockerfile: runs as uid 1337, not root", users and users[-1].split(":")[0] == "1337")
    check("Dockerfile: runtime has no compiler or -dev package",
          not re.search(r"(-dev\b|build-essential|\bgcc\b|cmake)", runtime))


# ---- 6. the files each pod would see, checked by the binaries that read them ----

def materialize(objs, spec, container, root, outside):
    """Writes under root what the container would find at its volume mounts: the keys of
    the ConfigMaps and Secrets its volumes name (taken from the rendered objects, else from
    outside {name: {key: text}}: what the README has the user create by hand), and the
    projected service-account token (outside["<token>"]). Returns {mountPath: volume}."""
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {}
    for m in container.get("volumeMounts", []):
        v = vols[m["name"]]
        files = {}
        if "configMap" in v:
            name = v["configMap"]["name"]
            cm = by.get(("ConfigMap", name))
            files = dict(cm.get("data", {})) if cm else dict(outside.get(name, {}))
        elif "secret" in v:
            sec = by.get(("Secret", v["secret"]["secretName"]), {})
            files = {k: base64.b64decode(d).decode() for k, d in sec.get("data", {}).items()}
        elif "projected" in v:
            for src in v["projected"]["sources"]:
                if "serviceAccountToken" in src:
                    files[src["serviceAccountToken"]["path"]] = outside["<token>"]
        items = (v.get("configMap") or v.get("secret") or {}).get("items")
        if items:
            files = {i["path"]: files[i["key"]] for i in items if i["key"] in files}
        d = root + m["mountPath"]
        os.makedirs(d, exist_ok=True)
        for k, text in files.items():
            with open(os.path.join(d, k), "w", encoding="utf-8") as f:
                f.write(text)
        mounts[m["mountPath"]] = v
    return mounts


def rooted(text, mounts, root):
    """The config text with each absolute path under a mount moved under root."""
    for mp in sorted(mounts, key=len, reverse=True):
        text = re.sub(r"(?<![\w/])" + re.escape(mp) + "/", root + mp + "/", text)
    return text


def run_check(binary, cfg, what, must_fail=None):
    r = run([binary, "check", "-c", cfg])
    out = (r.stdout + r.stderr).strip()
    if must_fail is None:
        return check(what, r.returncode == 0, out), out
    return check(what, r.returncode != 0 and must_fail in out, out), out


def check_files(cp_objs, ex_objs):
    """cp.yaml and mesh.yaml as tollgate-cp would read them in its pod, and sidecar.yaml as
    the injected sidecar would, with every file they name at the path its mount gives it:
    `tollgate-cp check` and `tollgate check` must accept them (so a wrong key, a path that
    no mount provides, a key name the Secret does not have, all fail here); plus what ties
    the two together (address, identities, token audience)."""
    tg, cpbin = os.environ.get("TG_BIN"), os.environ.get("TG_CP_BIN")
    if not tg or not cpbin or not os.environ.get("TG_CERTS_BIN"):
        print("note - files: TG_BIN/TG_CP_BIN/TG_CERTS_BIN not set; configs not checked")
        return
    by = {(o["kind"], o["metadata"]["name"]): o for o in cp_objs}
    d = by.get(("Deployment", "tollgate-cp"))
    if d is None:
        return
    spec = pod_spec(d)
    (c,) = spec["containers"]
    root = os.path.join(WORK, "cp-root")
    mounts = materialize(cp_objs, spec, c, root, {})
    cfg = root + c["args"][-1]
    with open(cfg, encoding="utf-8") as f:
        original = f.read()
    text = rooted(original, mounts, root)
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(text)
    ok, out = run_check(cpbin, cfg, "files: tollgate-cp check accepts cp.yaml and mesh.yaml "
                        "with the files its mounts provide")
    # the check has teeth: a misspelt key and a path no mount provides are refused
    bad = os.path.join(os.path.dirname(cfg), "bad.yaml")
    for mutation, needle in (("audiences:", "unknown key"), ("/tls/tls.key", "cannot open")):
        with open(bad, "w", encoding="utf-8") as f:
            f.write(text.replace(mutation, {"audiences:": "audience:",
                                            "/tls/tls.key": "/tls/key.pem"}[mutation]))
        run_check(cpbin, bad, f"files: tollgate-cp check refuses cp.yaml with {mutation!r} "
                  "changed", must_fail=needle)
    cpy = yaml.safe_load(original)
    svc = by.get(("Service", "tollgate-cp"), {})
    sa_name, cp_ns = spec.get("serviceAccountName"), d["metadata"].get("namespace")
    cp_id = f"spiffe://{cpy.get('trust_domain')}/ns/{cp_ns}/sa/{sa_name}"
    r = run([os.environ["TG_CERTS_BIN"], "show",
             os.path.join(root + "/etc/tollgate-cp/tls", "tls.crt")]) if ok else None
    check(f"files: the control plane's certificate (Secret tollgate-cp-tls) is {cp_id}",
          r is not None and cp_id in r.stdout, r.stdout if r else "")

    if not ex_objs:
        return
    w = next(o for o in ex_objs if o["kind"] == "Deployment")
    wspec = pod_spec(w)
    proxy = next(x for x in wspec["initContainers"] if x["name"] == "tollgate-proxy")
    sroot = os.path.join(WORK, "sidecar-root")
    ca_pem = base64.b64decode(by[("Secret", "tollgate-ca")]["data"]["tls.crt"]).decode()
    smounts = materialize(ex_objs, wspec, proxy, sroot,
                          {"tollgate-root-ca": {"ca.pem": ca_pem}, "<token>": "eyJ.test.token"})
    scfg = sroot + proxy["args"][-1]
    with open(scfg, encoding="utf-8") as f:
        soriginal = f.read()
    with open(scfg, "w", encoding="utf-8") as f:
        f.write(rooted(soriginal, smounts, sroot))
    run_check(tg, scfg, "files: tollgate check accepts the injected sidecar.yaml with the files "
              "its mounts provide (root CA ConfigMap as deploy/README.md makes it)")
    sc = yaml.safe_load(soriginal).get("control_plane", {})
    host, _, port = str(sc.get("address", "")).rpartition(":")
    hl = by.get(("Service", "tollgate-cp-replicas"), svc)
    want_host = f"{hl['metadata']['name']}.{hl['metadata'].get('namespace')}.svc"
    check(f"files: the sidecar's control_plane.address is the headless Service "
          f"({want_host}:15010)",
          host in (want_host, want_host + ".cluster.local")
          and port == str(get(hl, "spec", "ports", 0, "port")), str(sc.get("address")))
    check(f"files: the sidecar expects the control plane's identity {cp_id}",
          cp_id in sc.get("server_ids", []), str(sc.get("server_ids")))
    token_vol = [v for v in smounts.values() if "projected" in v]
    src = [s["serviceAccountToken"] for v in token_vol for s in v["projected"]["sources"]
           if "serviceAccountToken" in s]
    mp = [m for m, v in smounts.items() if "projected" in v]
    check("files: the sidecar's token is the projected token file",
          len(src) == 1 and sc.get("token") == f"{mp[0]}/{src[0]['path']}", str(sc.get("token")))
    check("files: the projected token's audience is one tollgate-cp accepts",
          len(src) == 1 and src[0].get("audience") in (get(cpy, "kubernetes", "audiences") or []),
          str(src))


def check_schemas(objs):
    node = shutil.which("node")
    validator = os.path.join(SRC, "tests", "deploy", "validate_schema.cjs")
    if not node:
        print("note - schemas: node not found; schema validation skipped")
        return
    path = os.path.join(WORK, "rendered.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(objs, f)
    r = run([node, validator, path])
    if r.returncode == 77:
        print("note - schemas: " + r.stdout.strip())
        return
    for line in r.stdout.splitlines():
        if line.startswith(("ok - ", "not ok - ")):
            bad = line.startswith("not ok")
            check(line.split(" - ", 1)[1], not bad)
    if r.returncode not in (0, 1) or r.stderr.strip():
        check("schemas: validator ran", False, r.stderr.strip())


def crd_cases():
    """The examples (deploy/k8s/examples/policy.yaml) must validate; each bad case, a copy of
    one with one thing wrong, must be refused by the schema."""
    good = load_all(os.path.join(DEPLOY, "k8s", "examples", "policy.yaml"))
    cases = [{"name": f"example {o['kind']} {o['metadata']['name']}", "ok": True, "obj": o}
             for o in good]
    authz, limit, revoke = good

    def bad(name, base, path, value):
        o = copy.deepcopy(base)
        d = o
        for k in path[:-1]:
            d = d[k]
        if value is None:
            del d[path[-1]]
        else:
            d[path[-1]] = value
        cases.append({"name": name, "ok": False, "obj": o})

    bad("an action that is not allow or deny", authz, ["spec", "rules", 0, "action"], "permit")
    bad("a principal that is not a SPIFFE ID pattern", authz,
        ["spec", "rules", 0, "principals"], ["mesh.local/ns/demo/sa/client"])
    bad("a principal with a space", authz, ["spec", "rules", 0, "principals"],
        ["spiffe://mesh.local/ns/demo/sa/a b"])
    bad("a rule without a name", authz, ["spec", "rules", 0, "name"], None)
    bad("no rules", authz, ["spec", "rules"], [])
    bad("rules missing", authz, ["spec", "rules"], None)
    bad("65 rules (maxItems 64)", authz, ["spec", "rules"],
        [dict(authz["spec"]["rules"][0], name=f"r{i}") for i in range(65)])
    bad("port 0", authz, ["spec", "rules", 0, "ports"], [0])
    bad("a fingerprint of 63 digits", authz, ["spec", "rules", 0, "fingerprints"], ["a" * 63])
    bad("matchLabels value that is not a label", authz, ["spec", "selector", "matchLabels"],
        {"app": "a b"})
    bad("an override without principal", limit, ["spec", "overrides", 0, "principal"], None)
    bad("key ip", limit, ["spec", "key"], "ip")
    bad("a negative burst", limit, ["spec", "overrides", 0, "burst"], -1)
    bad("the old shape (a limits list alone)", limit, ["spec"], {"limits": [{"match": "*"}]})
    bad("a serial that is not hex", revoke, ["spec", "serials"], ["zz"])
    bad("a Revocation with nothing", revoke, ["spec"], {})
    return cases


def check_crds(objs):
    node = shutil.which("node")
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    check("crds: AuthorizationPolicy, RateLimit, Revocation, namespaced, with a status "
          "subresource",
          sorted((c["spec"]["names"]["kind"], c["spec"]["scope"],
                  "status" in c["spec"]["versions"][0].get("subresources", {})) for c in crds)
          == [("AuthorizationPolicy", "Namespaced", True), ("RateLimit", "Namespaced", True),
              ("Revocation", "Namespaced", True)], str([c["metadata"]["name"] for c in crds]))
    if not node:
        print("note - crds: node not found; custom resource validation skipped")
        return
    path = os.path.join(WORK, "crs.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"crds": crds, "cases": crd_cases()}, f)
    r = run([node, os.path.join(SRC, "tests", "deploy", "validate_crs.cjs"), path])
    if r.returncode == 77:
        print("note - crds: " + r.stdout.strip())
        return
    for line in r.stdout.splitlines():
        if line.startswith(("ok - ", "not ok - ")):
            check(line.split(" - ", 1)[1], line.startswith("ok"))
    if r.returncode not in (0, 1) or r.stderr.strip():
        check("crds: validator ran", False, r.stderr.strip())


def main():
    check_parse()
    k8s = os.path.join(WORK, "k8s")
    cp = check_render(os.path.join(k8s, "base"))
    ex = check_render(os.path.join(k8s, "examples"))
    if cp:
        check_control_plane(cp)
        check_workloads_common(cp, "control plane")
    if ex:
        args = check_injected(ex)
        check_workloads_common(ex, "example")
        check_init_args(args, "injection: tollgate-init")
    check_schemas(cp + ex)
    check_crds(cp)
    check_files(cp, ex)
    check_vm()
    check_dockerfile()
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())

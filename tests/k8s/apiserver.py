#!/usr/bin/python3
"""A stand-in Kubernetes API server for tollgate-cp's discovery tests (stdlib only).

Serves, over HTTPS with the certificate the test made, the list/watch protocol of the API
concepts ("Efficient detection of changes") for v1 Namespaces, Pods, Services and
discovery.k8s.io/v1 EndpointSlices:
  - bearer tokens checked: 401 (a v1 Status) for a token not accepted or past its deadline;
  - lists with metadata.resourceVersion, paged by limit/continue (a page holds at most
    --max-page items whatever the limit asked, as a server may; continue tokens are snapshots;
    they expire with a compaction, or on request: 410 Expired);
  - watches (?watch=1&resourceVersion=RV) as chunked JSON lines: ADDED, MODIFIED, DELETED
    from RV on, BOOKMARK every --bookmark-interval seconds when allowWatchBookmarks=true,
    the end after timeoutSeconds;
  - "410 Gone" for a resourceVersion older than the last compaction, as the HTTP status of
    the watch request (mode http) or as an ERROR watch event with a Status of code 410
    (mode event);
  - watches dropped mid-stream on request (the TCP connection cut, no last chunk);
  - v1 ConfigMaps, list and watch with fieldSelector=metadata.name=X, POST (create: 409 when it
    exists) and PATCH with a merge patch;
  - authentication.k8s.io/v1 TokenReviews: POST, authenticated like the rest, answered 201 with
    the review's status as the API server gives it (authenticated, user with username
    system:serviceaccount:NS:SA and extra authentication.kubernetes.io/pod-name, audiences:
    those asked for that the token holds); an unknown or expired token, or one for none of
    the audiences asked for, is authenticated: false with the API server's error text;
  - tollgate.dev/v1alpha1 AuthorizationPolicies, RateLimits and Revocations (namespaced), with
    metadata.generation bumped on a spec change and a status subresource: PATCH
    .../namespaces/NS/PLURAL/NAME/status with a merge patch changes only .status.

The control API is plain HTTP on 127.0.0.1 (a second port):
  PUT    /objects/<plural>               body: an object; ADDED or MODIFIED
  DELETE /objects/<plural>/<ns>/<name>   (<ns> "-" for a Namespace); DELETED
  POST   /token     {"token": T, "ttl": seconds or null}: accept T (until now + ttl)
  POST   /satoken   {"token": T, "namespace": NS, "serviceaccount": SA, "pod": P or null,
                     "audiences": [...], "ttl": seconds}: a service-account token that
                     TokenReviews know (expired after ttl)
  POST   /gone      {"mode": "http" | "event"}: compact: every resourceVersion so far is too old
  POST   /drop      cut every open watch
  POST   /expire    {"count": N}: the next N continue tokens presented are too old (410)
  POST   /corrupt   {"what": "list" | "watch", "count": N}: the next N list pages are not JSON,
                    or the next N watch events are sent as a line that is not JSON instead
  GET    /objects   every object served, as a JSON array (to validate against the schemas)
  GET    /objects/<plural>/<ns>/<name>   one object (<ns> "-" for a cluster-scoped one)
  PUT    /webhookconfigs          body: a MutatingWebhookConfiguration (stored, not watched)
  GET    /webhookconfigs/<name>   it, as the webhook left it
Admission webhook configurations (admissionregistration.k8s.io/v1
mutatingwebhookconfigurations/<name>) answer GET and PATCH with a JSON patch (RFC 6902: test,
add, replace; a failed test is 422, as the API server answers; each write moves
resourceVersion).
  GET    /stats     counters as JSON
On start it writes {"port": P, "ctl": C} as one line to stdout.
"""
import argparse
import copy
import json
import secrets
import socket
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KINDS = {
    "namespaces": ("/api/v1/namespaces", "v1", "Namespace", False),
    "pods": ("/api/v1/pods", "v1", "Pod", True),
    "services": ("/api/v1/services", "v1", "Service", True),
    "endpointslices": ("/apis/discovery.k8s.io/v1/endpointslices", "discovery.k8s.io/v1",
                       "EndpointSlice", True),
    # tollgate's policy custom resources (deploy/k8s/base/crds.yaml), with a status subresource
    "authorizationpolicies": ("/apis/tollgate.dev/v1alpha1/authorizationpolicies",
                              "tollgate.dev/v1alpha1", "AuthorizationPolicy", True),
    "ratelimits": ("/apis/tollgate.dev/v1alpha1/ratelimits", "tollgate.dev/v1alpha1",
                   "RateLimit", True),
    "revocations": ("/apis/tollgate.dev/v1alpha1/revocations", "tollgate.dev/v1alpha1",
                    "Revocation", True),
    "configmaps": ("/api/v1/configmaps", "v1", "ConfigMap", True),
}
STATUS_KINDS = ("authorizationpolicies", "ratelimits", "revocations")
BY_PATH = {v[0]: k for k, v in KINDS.items()}


class Store:
    def __init__(self, bookmark_interval, max_page):
        self.cond = threading.Condition()
        self.rv = 1000
        self.objs = {k: {} for k in KINDS}
        self.history = []  # (rv, plural, type, object)
        self.compacted = 0  # a watch from rv < compacted is too old
        self.mode = "http"
        self.gone_epoch = 0  # bumped by /gone: watches in progress end (event: with ERROR)
        self.drop_epoch = 0  # bumped by /drop: watches in progress are cut
        self.tokens = {}  # token -> deadline (time.monotonic) or None
        self.snapshots = {}  # continue token -> (rv, items left)
        self.bookmark_interval = bookmark_interval
        self.max_page = max_page
        self.expire = 0  # continue tokens to refuse
        self.corrupt = {"list": 0, "watch": 0}  # responses to spoil
        self.webhook_configs = {}  # name -> MutatingWebhookConfiguration
        self.sa_tokens = {}  # service-account token -> its claims and deadline (TokenReview)
        self.stats = {k: 0 for k in ("patches", "lists", "pages", "watches", "unauthorized",
                                     "gone_http", "gone_event", "gone_continue", "bookmarks", "drops",
                                     "events", "watching", "status_writes", "cm_creates",
                                     "cm_patches", "tokenreviews")}

    def key(self, plural, obj):
        m = obj["metadata"]
        return m["name"] if plural == "namespaces" else m["namespace"] + "/" + m["name"]

    def apply(self, plural, obj, deleted=False):
        path, api, kind, _ = KINDS[plural]
        with self.cond:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["apiVersion"], obj["kind"] = api, kind
            m = obj.setdefault("metadata", {})
            k = self.key(plural, obj)
            old = self.objs[plural].get(k)
            if deleted:
                if old is None:
                    return None
                obj = copy.deepcopy(old)
                obj["metadata"]["resourceVersion"] = str(self.rv)
                del self.objs[plural][k]
                typ = "DELETED"
            else:
                m.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
                if plural in STATUS_KINDS:  # the status subresource: spec bumps generation
                    same = old is not None and old.get("spec") == obj.get("spec")
                    gen = old["metadata"].get("generation", 1) if old else 0
                    m["generation"] = gen if same else gen + 1
                    if old is not None and "status" in old and "status" not in obj:
                        obj["status"] = old["status"]
                m.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                m["resourceVersion"] = str(self.rv)
                self.objs[plural][k] = obj
                typ = "MODIFIED" if old else "ADDED"
            self.history.append((self.rv, plural, typ, obj))
            self.stats["events"] += 1
            self.cond.notify_all()
            return typ

    def token_ok(self, header):
        if not header or not header.startswith("Bearer "):
            return False
        tok = header[len("Bearer "):]
        with self.cond:
            if tok not in self.tokens:
                return False
            deadline = self.tokens[tok]
            return deadline is None or time.monotonic() < deadline


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def selected(q, obj):
    """fieldSelector=metadata.name=X (the only one served); no selector: every object."""
    sel = q.get("fieldSelector")
    if not sel:
        return True
    k, _, v = sel.partition("=")
    return k == "metadata.name" and obj["metadata"]["name"] == v


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class JsonHandler(BaseHTTPRequestHandler):
    """What both servers' handlers share: a JSON reply with its length."""

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


WEBHOOK_CONFIGS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"


def json_patch(doc, ops):
    """RFC 6902 test, add and replace (what tollgate-cp sends); ValueError when one fails."""
    for op in ops:
        toks = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        parent = doc
        for t in toks[:-1]:
            parent = parent[int(t)] if isinstance(parent, list) else parent[t]
        last = toks[-1]
        if op["op"] == "test":
            have = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if have != op["value"]:
                raise ValueError("test failed at " + op["path"])
        elif op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif op["op"] == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                if op["op"] == "replace" and last not in parent:
                    raise ValueError("replace of a missing member " + op["path"])
                parent[last] = op["value"]
        else:
            raise ValueError("op %s not supported here" % op["op"])
    return doc


def make_api_handler(store):
    class Api(JsonHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("apiserver: %s %s\n" % (self.address_string(), fmt % args))

        def webhook_config(self, patch):
            name = urlsplit(self.path).path[len(WEBHOOK_CONFIGS):]
            if not store.token_ok(self.headers.get("Authorization")):
                return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
            with store.cond:
                obj = store.webhook_configs.get(name)
                if obj is None:
                    return self.send_json(404, status(404, "NotFound", name + " not found"))
                if not patch:
                    return self.send_json(200, obj)
                if self.headers.get("Content-Type") != "application/json-patch+json":
                    return self.send_json(415, status(415, "UnsupportedMediaType", "json-patch"))
                n = int(self.headers.get("Content-Length", "0") or 0)
                try:
                    new = json_patch(copy.deepcopy(obj), json.loads(self.rfile.read(n)))
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    return self.send_json(422, status(422, "Invalid", str(e)))
                store.rv += 1
                new["metadata"]["resourceVersion"] = str(store.rv)
                store.webhook_configs[name] = new
                store.stats["patches"] += 1
                return self.send_json(200, new)

        def do_PATCH(self):
            if self.path.startswith(WEBHOOK_CONFIGS):
                return self.webhook_config(True)
            # PATCH /apis/tollgate.dev/v1alpha1/namespaces/NS/PLURAL/NAME/status, merge patch:
            # only .status changes (the status subresource's rule), generation stays
            parts = urlsplit(self.path).path.strip("/").split("/")
            n = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(n)
            if not store.token_ok(self.headers.get("Authorization")):
                with store.cond:
                    store.stats["unauthorized"] += 1
                return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
            if (len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"]
                    and parts[4] == "configmaps"):
                if self.headers.get("Content-Type") != "application/merge-patch+json":
                    return self.send_json(415, status(415, "UnsupportedMediaType", "merge only"))
                return self.patch_configmap(parts, body)
            if (len(parts) != 8 or parts[:4] != ["apis", "tollgate.dev", "v1alpha1", "namespaces"]
                    or parts[5] not in STATUS_KINDS or parts[7] != "status"):
                return self.send_json(404, status(404, "NotFound", "no such path " + self.path))
            if self.headers.get("Content-Type") != "application/merge-patch+json":
                return self.send_json(415, status(415, "UnsupportedMediaType", "merge patch only"))
            try:
                patch = json.loads(body)
            except ValueError:
                return self.send_json(400, status(400, "BadRequest", "not JSON"))
            plural, key = parts[5], parts[4] + "/" + parts[6]
            with store.cond:
                old = store.objs[plural].get(key)
                if old is None:
                    return self.send_json(404, status(404, "NotFound", key + " not found"))
                obj = copy.deepcopy(old)
                obj["status"] = merge_patch(obj.get("status"), patch.get("status", {}))
                store.stats["status_writes"] += 1
            store.apply(plural, obj)
            with store.cond:
                cur = copy.deepcopy(store.objs[plural][key])
            self.send_json(200, cur)

        def token_review(self, body):
            try:
                review = json.loads(body)
                spec = review["spec"]
                tok, asked = spec["token"], spec.get("audiences") or []
            except (ValueError, KeyError, TypeError):
                return self.send_json(400, status(400, "BadRequest", "not a TokenReview"))
            with store.cond:
                store.stats["tokenreviews"] += 1
                t = store.sa_tokens.get(tok)
            st = {"authenticated": False}
            if t is None:
                st["error"] = "invalid bearer token"
            elif time.monotonic() >= t["deadline"]:
                st["error"] = "[invalid bearer token, service account token has expired]"
            elif asked and not set(asked) & set(t["audiences"]):
                st["error"] = ("[invalid bearer token, token audiences %s is invalid for the "
                               "target audiences %s]" % (t["audiences"], asked))
            else:
                extra = {}
                if t.get("pod"):
                    extra = {"authentication.kubernetes.io/pod-name": [t["pod"]],
                             "authentication.kubernetes.io/pod-uid": [str(uuid.uuid4())]}
                st = {"authenticated": True,
                      "user": {"username": "system:serviceaccount:%s:%s" % (
                          t["namespace"], t["serviceaccount"]),
                          "uid": t["uid"],
                          "groups": ["system:serviceaccounts",
                                     "system:serviceaccounts:" + t["namespace"],
                                     "system:authenticated"],
                          "extra": extra},
                      "audiences": [a for a in asked if a in t["audiences"]] or t["audiences"]}
            self.send_json(201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                                 "metadata": {"creationTimestamp": None}, "spec": spec,
                                 "status": st})

        def do_POST(self):
            # POST /api/v1/namespaces/NS/configmaps: create (409 when it exists)
            parts = urlsplit(self.path).path.strip("/").split("/")
            body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            if not store.token_ok(self.headers.get("Authorization")):
                return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
            if parts == ["apis", "authentication.k8s.io", "v1", "tokenreviews"]:
                return self.token_review(body)
            if len(parts) != 5 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "configmaps":
                return self.send_json(404, status(404, "NotFound", "no such path " + self.path))
            try:
                obj = json.loads(body)
                name = obj["metadata"]["name"]
            except (ValueError, KeyError, TypeError):
                return self.send_json(400, status(400, "BadRequest", "not a ConfigMap"))
            if obj["metadata"].get("namespace", parts[3]) != parts[3]:
                return self.send_json(400, status(400, "BadRequest", "namespace mismatch"))
            obj["metadata"]["namespace"] = parts[3]
            with store.cond:
                if parts[3] + "/" + name in store.objs["configmaps"]:
                    return self.send_json(409, status(409, "AlreadyExists", name + " exists"))
                store.stats["cm_creates"] += 1
            store.apply("configmaps", obj)
            self.send_json(201, obj)

        def patch_configmap(self, parts, body):
            # PATCH /api/v1/namespaces/NS/configmaps/NAME, merge patch
            key = parts[3] + "/" + parts[5]
            try:
                patch = json.loads(body)
            except ValueError:
                return self.send_json(400, status(400, "BadRequest", "not JSON"))
            with store.cond:
                old = store.objs["configmaps"].get(key)
                if old is None:
                    return self.send_json(404, status(404, "NotFound", key + " not found"))
                obj = merge_patch(copy.deepcopy(old), patch)
                store.stats["cm_patches"] += 1
            store.apply("configmaps", obj)
            return self.send_json(200, obj)

        def do_GET(self):
            url = urlsplit(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if url.path.startswith(WEBHOOK_CONFIGS):
                return self.webhook_config(False)
            plural = BY_PATH.get(url.path)
            if plural is None:
                return self.send_json(404, status(404, "NotFound", "no such path " + url.path))
            if not store.token_ok(self.headers.get("Authorization")):
                with store.cond:
                    store.stats["unauthorized"] += 1
                return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
            if q.get("watch") in ("1", "true"):
                return self.watch(plural, q)
            return self.list(plural, q)

        def list(self, plural, q):
            path, api, kind, _ = KINDS[plural]
            limit = int(q.get("limit", "0") or 0)
            if store.max_page > 0 and (limit <= 0 or limit > store.max_page):
                limit = store.max_page
            with store.cond:
                if q.get("continue"):
                    snap = store.snapshots.pop(q["continue"], None)
                    if store.expire > 0:
                        store.expire -= 1
                        snap = None
                    if snap is None:
                        store.stats["gone_continue"] += 1
                        return self.send_json(410, status(
                            410, "Expired", "The provided continue parameter is too old to "
                            "display a consistent list result. You can start a new list "
                            "without the continue parameter."))
                    rv, items = snap
                else:
                    rv = store.rv
                    items = [copy.deepcopy(store.objs[plural][k])
                             for k in sorted(store.objs[plural])
                             if selected(q, store.objs[plural][k])]
                page, rest = (items[:limit], items[limit:]) if limit > 0 else (items, [])
                meta = {"resourceVersion": str(rv)}
                spoil = store.corrupt["list"] > 0
                if spoil:
                    store.corrupt["list"] -= 1
                elif rest:
                    tok = secrets.token_urlsafe(12)
                    store.snapshots[tok] = (rv, rest)
                    meta["continue"] = tok
                    meta["remainingItemCount"] = len(rest)
                else:
                    store.stats["lists"] += 1  # complete lists served (spoiled ones are not)
                store.stats["pages"] += 1
            for it in page:  # list items carry no kind/apiVersion, as the API serves them
                it.pop("kind", None)
                it.pop("apiVersion", None)
            if spoil:
                data = b'{"kind": "' + kind.encode() + b'List", "items": [\n{"truncated'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_json(200, {"kind": kind + "List", "apiVersion": api, "metadata": meta,
                                 "items": page})

        def chunk(self, obj):
            data = json.dumps(obj).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def watch(self, plural, q):
            path, api, kind, _ = KINDS[plural]
            try:
                since = int(q.get("resourceVersion", "0") or 0)
            except ValueError:
                return self.send_json(400, status(400, "BadRequest", "bad resourceVersion"))
            timeout = float(q.get("timeoutSeconds", "300"))
            bookmarks = q.get("allowWatchBookmarks") == "true"
            with store.cond:
                too_old = since < store.compacted
                if too_old and store.mode == "http":
                    store.stats["gone_http"] += 1
                    msg = "too old resource version: %d (%d)" % (since, store.compacted)
                    return self.send_json(410, status(410, "Expired", msg))
                store.stats["watches"] += 1
                store.stats["watching"] += 1
                drop, gone = store.drop_epoch, store.gone_epoch
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.stream(plural, api, kind, since, too_old, timeout, bookmarks, drop, gone, q)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                self.close_connection = True
            finally:
                with store.cond:
                    store.stats["watching"] -= 1

        def stream(self, plural, api, kind, cur, too_old, timeout, bookmarks, drop, gone, q):
            end = time.monotonic() + timeout
            last_bm = time.monotonic()
            gone_ev = status(410, "Expired", "too old resource version: %d" % cur)
            if too_old:
                with store.cond:
                    store.stats["gone_event"] += 1
                self.chunk({"type": "ERROR", "object": gone_ev})
                return self.finish_stream()
            while True:
                with store.cond:
                    evs = [e for e in store.history
                           if e[0] > cur and e[1] == plural and selected(q, e[3])]
                    now = time.monotonic()
                    if not evs and store.drop_epoch == drop and store.gone_epoch == gone:
                        wait = min(end, last_bm + store.bookmark_interval) - now
                        if wait > 0:
                            store.cond.wait(wait)
                        evs = [e for e in store.history
                               if e[0] > cur and e[1] == plural and selected(q, e[3])]
                    seen = store.rv
                    cut = store.drop_epoch != drop
                    gone_now = store.gone_epoch != gone
                    mode = store.mode
                    if cut:
                        store.stats["drops"] += 1
                    if gone_now and mode == "event":
                        store.stats["gone_event"] += 1
                if cut or (gone_now and mode == "http"):
                    # mid-stream: no last chunk, no TLS close_notify, just the TCP connection
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if gone_now:
                    self.chunk({"type": "ERROR", "object": gone_ev})
                    return self.finish_stream()
                for rv, _, typ, obj in evs:
                    with store.cond:
                        spoil = store.corrupt["watch"] > 0
                        if spoil:
                            store.corrupt["watch"] -= 1
                    if spoil:  # the event is lost on this stream: a line that is not JSON
                        data = b'{"type": "ADDED", "object": {"metadata": \x01\n'
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                        continue
                    self.chunk({"type": typ, "object": obj})
                    cur = rv
                now = time.monotonic()
                if bookmarks and now - last_bm >= store.bookmark_interval:
                    cur = max(cur, seen)
                    self.chunk({"type": "BOOKMARK", "object": {
                        "kind": kind, "apiVersion": api,
                        "metadata": {"resourceVersion": str(cur)}}})
                    last_bm = now
                    with store.cond:
                        store.stats["bookmarks"] += 1
                if now >= end:
                    return self.finish_stream()

        def finish_stream(self):
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Api


def make_ctl_handler(store):
    class Ctl(JsonHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, fmt, *args):
            pass

        def body(self):
            n = int(self.headers.get("Content-Length", "0") or 0)
            return json.loads(self.rfile.read(n) or b"{}")

        def do_GET(self):
            if self.path == "/stats":
                with store.cond:
                    s = dict(store.stats, resourceVersion=store.rv)
                return self.send_json(200, s)
            if self.path == "/objects":
                with store.cond:
                    objs = [o for k in KINDS for o in store.objs[k].values()]
                return self.send_json(200, objs)
            if self.path.startswith("/webhookconfigs/"):
                with store.cond:
                    obj = store.webhook_configs.get(self.path[len("/webhookconfigs/"):])
                return self.send_json(200 if obj else 404, obj or {"error": "no such config"})
            parts = self.path.strip("/").split("/")
            if len(parts) == 4 and parts[0] == "objects" and parts[1] in KINDS:
                key = parts[3] if parts[2] == "-" else parts[2] + "/" + parts[3]
                with store.cond:
                    obj = store.objs[parts[1]].get(key)
                return self.send_json(200 if obj else 404, obj or {"error": "not found"})
            self.send_json(404, {"error": "no such path"})

        def do_PUT(self):
            if self.path == "/webhookconfigs":
                obj = self.body()
                with store.cond:
                    store.rv += 1
                    obj.setdefault("metadata", {})["resourceVersion"] = str(store.rv)
                    store.webhook_configs[obj["metadata"]["name"]] = obj
                return self.send_json(200, {"resourceVersion": store.rv})
            parts = self.path.strip("/").split("/")
            if len(parts) != 2 or parts[0] != "objects" or parts[1] not in KINDS:
                return self.send_json(404, {"error": "PUT /objects/<plural>"})
            try:
                obj = self.body()
                typ = store.apply(parts[1], obj)
            except (ValueError, KeyError, TypeError) as e:
                return self.send_json(400, {"error": "bad object: %r" % (e,)})
            self.send_json(200, {"type": typ, "resourceVersion": store.rv})

        def do_DELETE(self):
            parts = self.path.strip("/").split("/")
            if len(parts) != 4 or parts[0] != "objects" or parts[1] not in KINDS:
                return self.send_json(404, {"error": "DELETE /objects/<plural>/<ns>/<name>"})
            meta = {"name": parts[3]}
            if parts[2] != "-":
                meta["namespace"] = parts[2]
            typ = store.apply(parts[1], {"metadata": meta}, deleted=True)
            self.send_json(200 if typ else 404, {"type": typ, "resourceVersion": store.rv})

        def do_POST(self):
            try:
                b = self.body()
            except ValueError:
                return self.send_json(400, {"error": "not JSON"})
            with store.cond:
                if self.path == "/token":
                    ttl = b.get("ttl")
                    store.tokens[b["token"]] = None if ttl is None else time.monotonic() + ttl
                elif self.path == "/satoken":
                    store.sa_tokens[b["token"]] = dict(
                        b, uid=str(uuid.uuid4()), deadline=time.monotonic() + b.get("ttl", 3600))
                elif self.path == "/gone":
                    store.mode = b.get("mode", "http")
                    store.rv += 1  # the compaction point: a relist starts here, not before
                    store.compacted = store.rv
                    store.history = []
                    store.snapshots = {}
                    store.gone_epoch += 1
                    store.cond.notify_all()
                elif self.path == "/corrupt":
                    store.corrupt[b.get("what", "list")] = int(b.get("count", 1))
                elif self.path == "/expire":
                    store.expire = int(b.get("count", 1))
                elif self.path == "/drop":
                    store.drop_epoch += 1
                    store.cond.notify_all()
                else:
                    return self.send_json(404, {"error": "no such path"})
                s = dict(store.stats, resourceVersion=store.rv)
            self.send_json(200, s)

    return Ctl


class TLSServer(ThreadingHTTPServer):
    """The TLS handshake in each connection's own thread, not in the accepting one, so a
    client slow to handshake delays nobody else."""
    daemon_threads = True

    def finish_request(self, request, client_address):
        try:
            request.settimeout(10)
            request.do_handshake()
            request.settimeout(None)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--token", action="append", default=[], help="accepted from the start")
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--max-page", type=int, default=0, help="items per list page at most")
    a = ap.parse_args()
    store = Store(a.bookmark_interval, a.max_page)
    for t in a.token:
        store.tokens[t] = None
    ThreadingHTTPServer.daemon_threads = True
    api = TLSServer(("127.0.0.1", 0), make_api_handler(store))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    api.socket = ctx.wrap_socket(api.socket, server_side=True, do_handshake_on_connect=False)
    ctl = ThreadingHTTPServer(("127.0.0.1", 0), make_ctl_handler(store))
    threading.Thread(target=ctl.serve_forever, daemon=True).start()
    print(json.dumps({"port": api.server_address[1], "ctl": ctl.server_address[1]}), flush=True)
    api.serve_forever()


if __name__ == "__main__":
    main()

"""A deterministic, bounded API workload for the lab: the traffic `volume` is checked against.

Several identities, each a client certificate signed by the lab CA (kept in <state>/pki/workload):
a node (`system:node:kalab-node-1`, group `system:nodes`), the controller manager, kube-proxy,
DCE's `kube-admin`, a plain user `alice` and the lab admin. All but the admin also carry the group
`kube-audit:workload`, bound to cluster-admin, so every request succeeds (a 403 would make the
traffic depend on RBAC, not on the audit policy). Each round reads, lists, watches, creates,
updates, patches and deletes secrets, configmaps, pods, events and leases and creates tokenreviews;
everything created is deleted by the end, so a second run makes the same requests with the same
names and bodies. Every request carries the User-Agent ``kube-audit-workload/1.0`` so its audit
events can be told from the apiserver's own traffic.

    python3 -m lab.workload --state DIR [--host lab-master-1] [--rounds 4] [--clients 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import pki
from .config import Host, Lab
from .kube import ApiError

USER_AGENT = "kube-audit-workload/1.0"
NAMESPACE = "kalab-workload"
WORKLOAD_GROUP = "kube-audit:workload"
# identity -> certificate subject (several O= are several groups)
IDENTITIES = {
    "node": f"/O=system:nodes/O={WORKLOAD_GROUP}/CN=system:node:kalab-node-1",
    "controller": f"/O={WORKLOAD_GROUP}/CN=system:kube-controller-manager",
    "proxy": f"/O={WORKLOAD_GROUP}/CN=system:kube-proxy",
    "kube-admin": f"/O={WORKLOAD_GROUP}/CN=kube-admin",
    "alice": f"/O=dev/O={WORKLOAD_GROUP}/CN=alice",
}


@dataclass(frozen=True)
class Op:
    """One request: who sends it, the verb label for reports, and whether it streams (watch)."""

    who: str
    verb: str
    method: str
    path: str
    body: object | None = None
    content_type: str = "application/json"
    watch: bool = False


def cert_paths(lab: Lab, who: str) -> tuple[str, str]:
    if who == "admin":
        return str(lab.pki / "admin.crt"), str(lab.pki / "admin.key")
    base = lab.pki / "workload" / who
    return str(base.with_suffix(".crt")), str(base.with_suffix(".key"))


def ensure_identities(lab: Lab) -> None:
    """Client certificates for every identity (idempotent)."""
    for who, subject in IDENTITIES.items():
        pki.leaf(lab.pki / "workload" / who, lab.pki / "ca", subject, client=True)


# -- a keep-alive HTTPS client per identity ------------------------------------------------------

class Session:
    """One persistent connection per identity to one apiserver (thread-confined)."""

    def __init__(self, lab: Lab, host: Host, timeout: float = 30) -> None:
        self.lab, self.host, self.timeout = lab, host, timeout
        self._ctx: dict[str, ssl.SSLContext] = {}
        self._conn: dict[str, http.client.HTTPSConnection] = {}

    def context(self, who: str) -> ssl.SSLContext:
        ctx = self._ctx.get(who)
        if ctx is None:
            ctx = ssl.create_default_context(cafile=str(self.lab.pki / "ca.crt"))
            ctx.load_cert_chain(*cert_paths(self.lab, who))
            self._ctx[who] = ctx
        return ctx

    def _connection(self, who: str, fresh: bool = False) -> http.client.HTTPSConnection:
        conn = None if fresh else self._conn.get(who)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host.ip, 6443, context=self.context(who), timeout=self.timeout)
            if not fresh:
                self._conn[who] = conn
        return conn

    def do(self, op: Op) -> tuple[int, bytes]:
        """Send ``op``; a watch gets its own connection and is read to its end (timeoutSeconds)."""
        data = None if op.body is None else json.dumps(op.body).encode()
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = op.content_type
        for attempt in (0, 1):
            conn = self._connection(op.who, fresh=op.watch)
            try:
                conn.request(op.method, op.path, body=data, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                if op.watch:
                    conn.close()
                return resp.status, body
            except (http.client.HTTPException, ConnectionError, ssl.SSLError):
                conn.close()
                self._conn.pop(op.who, None)
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        for conn in self._conn.values():
            conn.close()
        self._conn.clear()


# -- the plan ---------------------------------------------------------------------------------

def _cm(name: str, payload: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "workload"}},
            "data": {"settings.json": payload}}


def _secret(name: str, payload: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
            "stringData": {"password": payload}}


def _pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "workload"}},
            "spec": {"automountServiceAccountToken": False,
                     "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


def _lease(name: str, holder: str, n: int) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 40,
                     "renewTime": f"2026-11-27T12:00:{n:02d}.000000Z"}}


def _event(name: str, n: int) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": {"kind": "ConfigMap", "namespace": NAMESPACE, "name": name},
            "reason": "Workload", "message": f"round {n} of the kube-audit workload", "type": "Normal",
            "firstTimestamp": "2026-11-27T12:00:00Z", "lastTimestamp": "2026-11-27T12:00:00Z", "count": 1}


def plan(rounds: int = 4, client: int = 0, watches: bool = True, cached_lists: bool = False) -> list[Op]:
    """The requests of one client, in order. Different ``client`` numbers use disjoint names.

    Lists are consistent reads (no resourceVersion) unless ``cached_lists``: ``resourceVersion=0``
    is served from the watch cache at once but may miss the newest object, so its answer (and its
    audit bytes) can differ from run to run. With ``cached_lists`` one consistent list per round is
    kept, labelled ``list-consistent`` (it waits for the watch cache: reported apart).
    """
    rv = "resourceVersion=0" if cached_lists else ""
    amp = "&" + rv if rv else ""
    ns = f"/api/v1/namespaces/{NAMESPACE}"
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
    c = f"c{client}"
    # NodeRestriction lets a node touch only its own lease, in kube-node-lease: client 0 plays the
    # node; other clients renew a lease of their own as the controller manager.
    if client == 0:
        node_who, node_lease = "node", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        node_name = "kalab-node-1"
    else:
        node_who, node_lease, node_name = "controller", leases, f"{c}-node"
    ops: list[Op] = [
        Op(node_who, "create", "POST", node_lease, _lease(node_name, "kalab-node-1", 0)),
        Op("controller", "create", "POST", leases, _lease(f"{c}-kcm", "kcm", 0)),
    ]
    for r in range(rounds):
        cm, sec, pod, ev = f"{c}-cm-{r}", f"{c}-secret-{r}", f"{c}-pod-{r}", f"{c}-ev-{r}"
        payload = json.dumps({"round": r, "client": client, "replicas": [f"replica-{i}" for i in range(24)]})
        ops += [
            # the controller manager: configmap CRUD, its leader lease, a list
            Op("controller", "create", "POST", f"{ns}/configmaps", _cm(cm, payload)),
            Op("controller", "get", "GET", f"{ns}/configmaps/{cm}"),
            Op("controller", "update", "PUT", f"{ns}/configmaps/{cm}", _cm(cm, payload + " ")),
            Op("controller", "patch", "PATCH", f"{ns}/configmaps/{cm}", {"data": {"patched": str(r)}},
               "application/merge-patch+json"),
            Op("controller", "get", "GET", f"{leases}/{c}-kcm"),
            Op("controller", "patch", "PATCH", f"{leases}/{c}-kcm",
               {"spec": {"renewTime": f"2026-11-27T12:01:{r:02d}.000000Z"}}, "application/merge-patch+json"),
            Op("controller", "list", "GET", f"{ns}/configmaps?{rv}".rstrip("?")),
            # kube-admin: secrets and pods
            Op("kube-admin", "create", "POST", f"{ns}/secrets", _secret(sec, f"s3cr3t-{r}")),
            Op("kube-admin", "get", "GET", f"{ns}/secrets/{sec}"),
            Op("kube-admin", "update", "PUT", f"{ns}/secrets/{sec}", _secret(sec, f"r0tated-{r}")),
            Op("kube-admin", "list", "GET", f"{ns}/secrets?{rv}".rstrip("?")),
            Op("kube-admin", "create", "POST", f"{ns}/pods", _pod(pod)),
            Op("kube-admin", "get", "GET", f"{ns}/pods/{pod}"),
            # the node: its lease, pods bound to it, configmaps and secrets it mounts, a token review
            Op(node_who, "patch", "PATCH", f"{node_lease}/{node_name}",
               {"spec": {"renewTime": f"2026-11-27T12:02:{r:02d}.000000Z"}}, "application/merge-patch+json"),
            Op("node", "list", "GET", f"{ns}/pods?fieldSelector=spec.nodeName%3Dkalab-node-1{amp}"),
            Op("node", "get", "GET", f"{ns}/configmaps/{cm}"),
            Op("node", "get", "GET", f"{ns}/secrets/{sec}"),
            Op("node", "create", "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
               {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": f"not-a-real-token-{r}"}}),
            Op("node", "create", "POST", f"{ns}/events", _event(ev, r)),
            # alice: reads; kube-proxy: lists; admin: discovery
            Op("alice", "get", "GET", f"{ns}/configmaps/{cm}"),
            Op("alice", "list", "GET", f"{ns}/pods?{rv}".rstrip("?")),
            Op("alice", "get", "GET", f"{ns}/pods/{pod}"),
            *([Op("alice", "list-consistent", "GET", f"{ns}/pods")] if cached_lists else []),
            Op("proxy", "list", "GET", f"/api/v1/services?{rv}".rstrip("?")),
            Op("admin", "get", "GET", "/version"),
            Op("admin", "get", "GET", "/apis"),
            # clean-up, so the next run is the same
            Op("kube-admin", "delete", "DELETE", f"{ns}/pods/{pod}"),
            Op("kube-admin", "delete", "DELETE", f"{ns}/secrets/{sec}"),
            Op("controller", "delete", "DELETE", f"{ns}/configmaps/{cm}"),
            Op("admin", "delete", "DELETE", f"{ns}/events/{ev}"),
        ]
        if watches and r == 0:
            ops += [Op("node", "watch", "GET", f"{ns}/pods?watch=1&timeoutSeconds=1&resourceVersion=0", watch=True),
                    Op("proxy", "watch", "GET", "/api/v1/services?watch=1&timeoutSeconds=1&resourceVersion=0",
                       watch=True)]
    ops += [Op(node_who, "delete", "DELETE", f"{node_lease}/{node_name}"),
            Op("controller", "delete", "DELETE", f"{leases}/{c}-kcm")]
    return ops


def setup(lab: Lab, host: Host) -> None:
    """Certificates, the cluster-admin binding for the workload group, the namespace and its SA."""
    ensure_identities(lab)
    s = Session(lab, host)
    objects = [
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
         {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
          "metadata": {"name": "kube-audit-workload"},
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
          "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": WORKLOAD_GROUP}]}),
        ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        (f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
         {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
    ]
    try:
        for path, body in objects:
            status, text = s.do(Op("admin", "create", "POST", path, body))
            if status not in (201, 409):
                raise ApiError(status, text.decode(errors="replace"), path)
    finally:
        s.close()


@dataclass
class Result:
    """What a run did: requests, failures, and per-request (verb, seconds) latencies."""

    requests: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[tuple[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def run(lab: Lab, host: Host, ops: list[Op], session: Session | None = None,
        on_done: Callable[[Op, float], None] | None = None) -> Result:
    """Run ``ops`` in order; a non-2xx answer is a failure (recorded, the run goes on)."""
    own = session is None
    s = session or Session(lab, host)
    result = Result()
    t0 = time.perf_counter()
    try:
        for op in ops:
            t = time.perf_counter()
            status, body = s.do(op)
            dt = time.perf_counter() - t
            result.requests += 1
            result.latencies.append((op.verb, dt))
            if not 200 <= status < 300:
                result.failures.append(f"{op.who} {op.method} {op.path}: {status} {body[:200]!r}")
            if on_done is not None:
                on_done(op, dt)
    finally:
        if own:
            s.close()
    result.seconds = time.perf_counter() - t0
    return result


def run_clients(lab: Lab, host: Host, clients: int, rounds: int, cached_lists: bool = True) -> Result:
    """``clients`` threads, each its own plan (disjoint names) and connections, at full speed."""
    results = [Result() for _ in range(clients)]

    def one(i: int) -> None:
        results[i] = run(lab, host, plan(rounds, client=i, watches=False, cached_lists=cached_lists))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = Result(seconds=time.perf_counter() - t0)
    for r in results:
        total.requests += r.requests
        total.failures += r.failures
        total.latencies += r.latencies
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m lab.workload", description=__doc__.split("\n")[0])
    ap.add_argument("--state", type=Path, help="lab state dir")
    ap.add_argument("--host", default="lab-master-1")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--clients", type=int, default=1)
    a = ap.parse_args(argv)
    lab = Lab.load(a.state)
    host = lab.host(a.host)
    setup(lab, host)
    result = run(lab, host, plan(a.rounds)) if a.clients == 1 else run_clients(lab, host, a.clients, a.rounds)
    print(json.dumps({"requests": result.requests, "seconds": round(result.seconds, 2),
                      "failures": result.failures[:10]}, indent=1))
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())

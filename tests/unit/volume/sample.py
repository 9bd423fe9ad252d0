"""An independent audit-log writer for tests and benchmarks: events as kube-apiserver writes them.

Given requests and a policy decision per request, it writes the events the apiserver would
(stages kept, bodies per level, managed fields dropped when asked, Go's field order, one JSON line
each). It shares no code with components/volume, so ``volume``'s prediction from a log-everything
sample can be checked against what this writer writes under the policy itself.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from components.policy import Policy, Request, evaluate

LONG_RUNNING = {"watch"}
WRITE_VERBS = {"create", "update", "patch"}
T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Call:
    """One request with everything its events need."""

    audit_id: str
    request: Request
    received: datetime
    duration_ms: int
    request_body: dict | None  # the object the client sent (create/update/patch)
    response_body: dict | None  # what the apiserver answered (None for watch)
    code: int = 200


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _managed(n: int) -> list[dict]:
    return [{"manager": f"kubectl-{i}", "operation": "Update", "apiVersion": "v1",
             "time": "2026-11-27T12:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {".": {}, f"f:key{i}": {}}}} for i in range(n)]


def _object(kind: str, name: str, namespace: str, payload: int, rng: random.Random) -> dict:
    meta: dict = {"name": name, "uid": f"{rng.getrandbits(64):016x}", "resourceVersion": str(rng.randint(1000, 99999))}
    if namespace:
        meta["namespace"] = namespace
    meta["managedFields"] = _managed(rng.randint(0, 2))
    return {"kind": kind, "apiVersion": "v1", "metadata": meta, "data": {"k": "x" * payload}}


USERS = [("system:kube-controller-manager", ()), ("system:node:n1", ("system:nodes", "system:authenticated")),
         ("kube-admin", ("system:authenticated",)), ("alice", ("dev", "system:authenticated")),
         ("system:kube-proxy", ("system:authenticated",)), ("system:apiserver", ("system:masters",))]
RESOURCES = [("", "secrets"), ("", "configmaps"), ("", "pods"), ("", "events"), ("coordination.k8s.io", "leases"),
             ("apps", "deployments"), ("authentication.k8s.io", "tokenreviews"), ("", "nodes")]
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
PATHS = ["/healthz", "/readyz", "/version", "/apis", "/openapi/v2", "/metrics"]


def random_calls(n: int, seed: int = 1, gap_ms: int = 50) -> Iterator[Call]:
    """``n`` calls over ``n * gap_ms`` ms: a mix of users, verbs, resources and non-resource URLs."""
    rng = random.Random(seed)
    t = T0
    for i in range(n):
        t += timedelta(milliseconds=rng.randint(1, 2 * gap_ms))
        user, groups = rng.choice(USERS)
        audit_id = f"{rng.getrandbits(32):08x}-0000-4000-8000-{i:012x}"
        if rng.random() < 0.15:
            req = Request(user=user, groups=groups, verb="get", path=rng.choice(PATHS), resource_request=False)
            yield Call(audit_id, req, t, rng.randint(1, 5), None, None)
            continue
        group, resource = rng.choice(RESOURCES)
        verb = rng.choice(VERBS)
        namespace = "" if resource == "nodes" else rng.choice(["default", "kube-system", "team-a"])
        name = "" if verb in ("list", "watch", "create") else f"obj-{rng.randint(0, 40)}"
        req = Request(user=user, groups=groups, verb=verb, api_group=group, resource=resource, namespace=namespace,
                      name=name, resource_request=True)
        kind = resource[:-1].capitalize()
        body = _object(kind, name or f"new-{i}", namespace, rng.randint(0, 3000), rng) if verb in WRITE_VERBS else None
        if verb == "watch":
            response = None
        elif verb == "list":
            response = {"kind": kind + "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                        "items": [_object(kind, f"o{j}", namespace, rng.randint(0, 500), rng)
                                  for j in range(rng.randint(0, 4))]}
        else:
            response = _object(kind, name or f"new-{i}", namespace, rng.randint(0, 3000), rng)
        yield Call(audit_id, req, t, rng.randint(1, 2000 if verb == "watch" else 30), body, response)


def _strip(obj: dict | None) -> dict | None:
    if obj is None:
        return None
    out = json.loads(json.dumps(obj))
    out.get("metadata", {}).pop("managedFields", None)
    for item in out.get("items") or []:
        item.get("metadata", {}).pop("managedFields", None)
    return out


def events_for(call: Call, level: str, omit: tuple[str, ...] = (), omit_managed: bool = False) -> list[str]:
    """The JSON lines kube-apiserver writes for ``call`` at ``level`` without the ``omit`` stages."""
    if level == "None":
        return []
    r = call.request
    stages = ["RequestReceived"] + (["ResponseStarted"] if r.verb in LONG_RUNNING else []) + ["ResponseComplete"]
    lines = []
    for i, stage in enumerate(stages):
        if stage in omit:
            continue
        ev: dict = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level, "auditID": call.audit_id,
                    "stage": stage}
        if r.resource_request:
            ns = f"/namespaces/{r.namespace}" if r.namespace else ""
            prefix = f"/apis/{r.api_group}/v1" if r.api_group else "/api/v1"
            ev["requestURI"] = f"{prefix}{ns}/{r.resource}" + (f"/{r.name}" if r.name else "")
        else:
            ev["requestURI"] = r.path
        ev["verb"] = r.verb
        ev["user"] = {"username": r.user, "groups": list(r.groups)} if r.groups else {"username": r.user}
        ev["sourceIPs"] = ["10.0.0.7"]
        ev["userAgent"] = "kubectl/v1.37.2 (linux/amd64) kubernetes/abcdef0"
        if r.resource_request:
            ref = {"resource": r.resource, "namespace": r.namespace, "name": r.name, "apiGroup": r.api_group,
                   "apiVersion": "v1"}
            ev["objectRef"] = {k: v for k, v in ref.items() if v}
        if stage != "RequestReceived":
            ev["responseStatus"] = {"metadata": {}, "code": call.code}
        if stage == "ResponseComplete" and r.resource_request:
            if level in ("Request", "RequestResponse") and call.request_body is not None:
                ev["requestObject"] = _strip(call.request_body) if omit_managed else call.request_body
            if level == "RequestResponse" and call.response_body is not None:
                ev["responseObject"] = _strip(call.response_body) if omit_managed else call.response_body
        ev["requestReceivedTimestamp"] = _ts(call.received)
        ev["stageTimestamp"] = _ts(call.received + timedelta(milliseconds=call.duration_ms * i / 2))
        if stage != "RequestReceived":
            ev["annotations"] = {"authorization.k8s.io/decision": "allow",
                                 "authorization.k8s.io/reason": 'RBAC: allowed by ClusterRoleBinding "x"'}
        lines.append(json.dumps(ev, separators=(",", ":"), ensure_ascii=False) + "\n")
    return lines


def write_under(calls: list[Call], policy: Policy | None) -> str:
    """The whole log ``policy`` produces for ``calls`` (None: log everything at RequestResponse)."""
    out = []
    for call in calls:
        if policy is None:
            out += events_for(call, "RequestResponse")
        else:
            d = evaluate(policy, call.request)
            out += events_for(call, d.level, d.omit_stages, d.omit_managed_fields)
    return "".join(out)

"""Reading the audit events the masters wrote into their host log dirs (for people and tests)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .config import Host, Lab
from .kube import ApiError, Client


def events(host: Host) -> list[dict]:
    """Every event in the host's /var/log/kubernetes/audit/*.log (rotated files included)."""
    out: list[dict] = []
    d = host.audit_log_dir
    if not d.is_dir():
        return out
    for f in sorted(d.iterdir()):
        if not f.is_file() or ".log" not in f.name or f.name.endswith(".gz"):
            continue
        for line in f.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def summary(ev: dict) -> str:
    ref = ev.get("objectRef") or {}
    what = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    if ref.get("namespace"):
        what = f"{ref['namespace']}/{what}"
    if ref.get("name"):
        what += f" {ref['name']}"
    if not ref:
        what = ev.get("requestURI", "")
    bodies = "+".join(k for k in ("requestObject", "responseObject") if k in ev) or "no bodies"
    code = (ev.get("responseStatus") or {}).get("code", "")
    return (f"{ev.get('stageTimestamp') or ev.get('requestReceivedTimestamp', '')} {ev.get('level'):<15} "
            f"{ev.get('stage', ''):<16} {ev.get('verb', ''):<6} {what} user={ev.get('user', {}).get('username')} "
            f"code={code} [{bodies}]")


def touch(lab: Lab, client_for) -> str:
    """Make a few recognisable requests against every master; returns the marker used."""
    marker = f"kalab-demo-{int(time.time())}"
    for h in lab.hosts():
        c: Client = client_for(lab, h)
        name = f"{marker}-{h.index}"
        try:
            c.post("/api/v1/namespaces/default/secrets",
                   {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                    "stringData": {"password": "s3cr3t"}})
            c.get(f"/api/v1/namespaces/default/secrets/{name}")
            c.post("/api/v1/namespaces/default/configmaps",
                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
            c.get("/api/v1/namespaces")
            c.delete(f"/api/v1/namespaces/default/configmaps/{name}")
            c.delete(f"/api/v1/namespaces/default/secrets/{name}")
        except (ApiError, OSError) as exc:
            print(f"[lab] {h.name}: request failed: {exc}")
    return marker


def show(lab: Lab, marker: str | None, limit: int) -> None:
    for h in lab.hosts():
        evs = events(h)
        files = sorted(p.name for p in h.audit_log_dir.iterdir()) if h.audit_log_dir.is_dir() else []
        print(f"== {h.name} ({h.ip}): {len(evs)} events in {h.audit_log_dir} "
              f"(the host's /var/log/kubernetes/audit) files={files}")
        pick = [e for e in evs if marker and marker in json.dumps(e.get("objectRef") or {})] or evs
        for ev in pick[-limit:]:
            print("  " + summary(ev))
        secret_reads = [e for e in pick if (e.get("objectRef") or {}).get("resource") == "secrets"
                        and e.get("verb") == "get" and e.get("stage") == "ResponseComplete"]
        if secret_reads:
            print("  one full event (a Secret read):")
            print("    " + json.dumps(secret_reads[-1], sort_keys=True))


def newest_event_file(host: Host) -> Path | None:
    d = host.audit_log_dir
    files = [p for p in d.iterdir() if p.is_file()] if d.is_dir() else []
    return max(files, key=lambda p: p.stat().st_mtime) if files else None

"""Drift as plain reasons: (desired audit state, facts read from a master) -> what differs.

Pure: no I/O. The manifest part is defined by the planner itself: a manifest drifts exactly when
`plan(manifest, desired)` would change it, so every reason shown is one `pulumi up` repairs and a
repaired master shows none. The reasons only name what differs; the planner decides the fix. One
exception: a missing policy-hash annotation is not drift when the node's facts prove what it
stands for (`policy_loaded`; docs/drift.md).
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from components.manifest import flags, planner
from components.manifest.desired import HASH_ANNOTATION, AuditState


@dataclass(frozen=True)
class Drift:
    """One master's differences, split by the resource whose update repairs them."""

    manifest: tuple[str, ...] = ()
    """Repaired by the manifest change (flags, mounts, volumes, annotation)."""
    policy: tuple[str, ...] = ()
    """Repaired by rewriting the policy file."""
    notes: tuple[str, ...] = field(default=())
    """Seen but not repairable by `pulumi up` (warnings): e.g. the running apiserver is stale."""


def sha256_text(text: str) -> str:
    """The hash of the exact bytes the policy write puts on a master."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _short(value: str | None) -> str:
    return (value[:12] + "…") if value and len(value) > 12 else str(value)


def _flags(tokens: list[str]) -> dict[str, str | None]:
    """Name -> the value in force: `planner.audit_flags` lists every spelling under the name
    kube-apiserver reads, in order, so the last one wins here as it does there."""
    out: dict[str, str | None] = {}
    for token in tokens:
        name, sep, value = token.partition("=")
        out[name] = value if sep else None
    return out


def _flag_reasons(have: list[str], want: list[str], where: str) -> list[str]:
    h, w = _flags(have), _flags(want)
    reasons = []
    for name in sorted(set(h) | set(w)):
        if name not in h:
            reasons.append(f"{name} missing from {where}")
        elif name not in w:
            value = h[name]
            reasons.append(f"{name}{'' if value is None else '=' + value} in {where} is not wanted")
        elif h[name] != w[name]:
            reasons.append(f"{name} is {h[name]!r} in {where}, the stack wants {w[name]!r}")
    return reasons


def _by_name(items: Any) -> dict[Any, Any]:
    return {i.get("name"): i for i in items or [] if isinstance(i, dict)}


def _object_reasons(kind: str, have: Any, want: Any, names: set[str], where: str) -> list[str]:
    h, w = _by_name(have), _by_name(want)
    reasons = []
    for name in sorted(n for n in names if isinstance(n, str)):
        if name in w and name not in h:
            reasons.append(f"{kind} {name} missing from {where}")
        elif name in h and name not in w:
            reasons.append(f"{kind} {name} in {where} is not wanted")
        elif name in h and h[name] != w[name]:
            reasons.append(f"{kind} {name} in {where} differs from what the stack writes")
    return reasons


def manifest_reasons(text: str, state: AuditState, where: str, policy_loaded: bool = False) -> list[str]:
    """Why `plan` would change this manifest; [] when it is converged.

    `policy_loaded`: the node's facts prove the running apiserver, started from this manifest, read
    the stack's policy (see `policy_loaded`). Then a manifest that lacks only the policy-hash
    annotation is not drift: the annotation exists to restart the apiserver when the policy
    changes, and kubeadm, which regenerates the manifest, has no field to keep it.
    """
    try:
        pod = planner.kubelet_pod(text, where)
    except planner.ManifestError as exc:
        return [f"{exc} (pulumi up will refuse this master)"]
    return _pod_reasons(pod, state, where, lambda: policy_loaded)


def _pod_reasons(pod: planner.Pod, state: AuditState, where: str, proven: Callable[[], bool]) -> list[str]:
    """`proven` is asked only for a manifest that lacks nothing but the annotation."""
    # Judged as the kubelet reads the file: a difference it would not see (`readOnly: yes`) is one
    # `up` cannot repair, since writing it restarts nothing.
    if planner.converged(pod, state):
        return []
    want = planner.plan(pod, state)
    if planner.converged(pod, replace(state, policy_hash=None)) and proven():
        return []
    reasons = _flag_reasons(planner.audit_flags(pod), planner.audit_flags(want), where)
    have_c, want_c = planner.apiserver_container(pod), planner.apiserver_container(want)
    have_m, want_m = have_c.get("volumeMounts") or [], want_c.get("volumeMounts") or []
    changed = {m.get("name") for m in have_m if m not in want_m} | {m.get("name") for m in want_m if m not in have_m}
    reasons += _object_reasons("volumeMount", have_m, want_m, changed, where)
    have_v, want_v = pod["spec"].get("volumes") or [], want["spec"].get("volumes") or []
    changed = {v.get("name") for v in have_v if v not in want_v} | {v.get("name") for v in want_v if v not in have_v}
    reasons += _object_reasons("volume", have_v, want_v, changed, where)
    ha = ((pod.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    wa = ((want.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    if ha != wa:
        if wa is None:
            reasons.append(f"annotation {HASH_ANNOTATION} in {where} is not wanted")
        elif ha is None:
            reasons.append(f"annotation {HASH_ANNOTATION} missing from {where}")
        else:
            reasons.append(f"annotation {HASH_ANNOTATION} in {where} is stale ({_short(ha)}, the stack's policy "
                           f"is {_short(wa)})")
    # Same flags, mounts and annotation but a different document: order or form (`--flag value`).
    return reasons or [f"audit settings in {where} are not in the form the stack writes"]


def _all_flags(argv: list[Any]) -> set[str]:
    """Every flag of a process command line as written (`--etcd-servers https://...` whole): the
    running apiserver was started from a manifest exactly when these are the manifest's."""
    return {f.text for f in flags.parse_argv(argv).flags}


def _manifest_flags(pod: planner.Pod) -> set[str]:
    return {f.text for f in flags.parse_container(planner.apiserver_container(pod)).flags}


def running_notes(text: str, processes: list[dict[str, Any]], where: str) -> list[str]:
    """How the running apiserver differs from the manifest on disk (the kubelet has not caught up)."""
    try:
        pod = planner.kubelet_pod(text, where)
    except planner.ManifestError:
        return []
    return _running_notes(_manifest_flags(pod), processes, where)


def _running_notes(on_disk: set[str], processes: list[dict[str, Any]], where: str) -> list[str]:
    if not processes:
        return [f"no kube-apiserver process runs in this host's network namespace; its flags cannot be "
                f"compared with {where}"]
    notes = []
    for proc in processes:
        running = _all_flags(proc.get("argv") or [])
        missing, extra = sorted(on_disk - running), sorted(running - on_disk)
        if missing or extra:
            parts = ([f"lacks {', '.join(missing)}"] if missing else []) + (
                [f"has {', '.join(extra)} not in the manifest"] if extra else [])
            notes.append(f"the running kube-apiserver (pid {proc.get('pid')}) {' and '.join(parts)}: it was "
                         f"started from another manifest than {where} (is the kubelet running that file?)")
    return notes


def policy_loaded(on_disk: set[str], processes: list[dict[str, Any]], policy: dict[str, Any] | None,
                  policy_sha256: str | None) -> bool:
    """Do the facts prove that the running apiserver was started from this manifest with this policy?

    The apiserver reads its policy once, at start. So: the file on disk is the stack's policy, and
    every kube-apiserver process of this host has the manifest's flags (it runs this file, not an
    older one) and started after the file last changed. Any fact missing proves nothing.
    """
    if not (policy_sha256 and policy and policy.get("sha256") == policy_sha256 and processes):
        return False
    changed = policy.get("ctime")
    if not isinstance(changed, (int, float)) or isinstance(changed, bool):
        return False
    for proc in processes:
        started = proc.get("started")
        if not isinstance(started, (int, float)) or isinstance(started, bool) or started <= changed:
            return False
        if _all_flags(proc.get("argv") or []) != on_disk:
            return False
    return True


def compare(master: str, state: AuditState, facts: dict[str, Any], policy_sha256: str | None) -> Drift:
    """All of one master's drift; every reason starts with the master's name."""
    manifest = facts.get("manifest") or {}
    where = posixpath.basename(manifest.get("path") or "kube-apiserver.yaml")
    reasons: list[str] = []
    notes: list[str] = []
    if "b64" in manifest:
        text = base64.b64decode(manifest["b64"]).decode("utf-8", "replace")
        processes = facts.get("apiserver") or []
        try:
            pod = planner.kubelet_pod(text, where)  # once: the pure-Python YAML parse is the cost here
        except planner.ManifestError as exc:
            reasons = [f"{exc} (pulumi up will refuse this master)"]
        else:
            flags = _manifest_flags(pod)
            reasons = _pod_reasons(pod, state, where, lambda: state.enabled and policy_loaded(
                flags, processes, facts.get("policy"), policy_sha256))
            notes = _running_notes(flags, processes, where)
    else:
        reasons = [f"{manifest.get('path')} cannot be read: {manifest.get('error')}"]
    policy_reasons: list[str] = []
    policy = facts.get("policy")
    if state.enabled and policy_sha256 and policy is not None:
        if "sha256" not in policy:
            policy_reasons = [f"policy file {policy.get('path')} is gone ({policy.get('error')})"]
        elif policy["sha256"] != policy_sha256:
            policy_reasons = [f"policy file {policy.get('path')} changed (sha256 {_short(policy['sha256'])}, the "
                              f"stack's is {_short(policy_sha256)})"]
    return Drift(manifest=tuple(f"{master}: {r}" for r in reasons),
                 policy=tuple(f"{master}: {r}" for r in policy_reasons),
                 notes=tuple(f"{master}: {n}" for n in notes))

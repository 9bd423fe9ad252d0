"""Helpers for the node program's tests: a real /etc/kubernetes in a temp dir, a fake clock, scripted readiness."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.manifest import flags, gate, planner
from components.manifest.desired import AuditState, NodeRequest

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "manifests" / "kubeadm-v1.31.yaml"


class FakeClock:
    """A clock whose sleep only moves its time on."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def scripted(answers: list[bool], clock: FakeClock | None = None,
             hook: Callable[[int], None] | None = None, manifest: Path | None = None) -> gate.Gate:
    """A gate whose /readyz answers come from a script (the last answer repeats); `hook(n)` runs on probe n.

    With `manifest`, the process on the readiness port is a kube-apiserver started from that file,
    restarted (new pid, started now) each time it changes, and the audit log counts as written: the
    script alone then decides readiness. Without it nothing listens (for runs that must never wait).
    """
    clock = clock or FakeClock()
    calls: list[str] = []
    running: dict[str, Any] = {"manifest": str(manifest) if manifest else None,
                               "seen": manifest.read_bytes() if manifest else None}

    def listeners(port: int) -> list[gate.Instance]:
        manifest = running.get("manifest")
        if manifest is None:
            return []
        data = Path(manifest).read_bytes()
        if data != running.get("seen"):
            pod = planner.parse_manifest(data.decode("utf-8"), manifest)
            argv = tuple(planner.apiserver_container(pod)["command"])
            # Started just after the write the gate saw (the fake clock does not move on a write).
            pid = running.get("pid", 0) + 1
            running.update(seen=data, pid=pid, instance=gate.Instance(pid, clock.now + 0.001, argv))
        return [running["instance"]]

    def probe(url: str) -> bool:
        calls.append(url)
        if hook is not None:
            hook(len(calls))
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def boot() -> float:
        return clock.now

    scripted_gate = gate.Gate(probe=probe, listeners=listeners, log_written=lambda path, wall: True, clock=clock,
                              boot=boot, sleep=clock.sleep, interval=1.0)
    scripted_gate.calls = calls  # type: ignore[attr-defined]
    scripted_gate.running = running  # type: ignore[attr-defined]
    return scripted_gate


def make_etc(root: Path) -> Path:
    (root / "manifests").mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE, root / "manifests" / "kube-apiserver.yaml")
    os.chmod(root / "manifests" / "kube-apiserver.yaml", 0o600)
    (root / "audit-policy").mkdir(exist_ok=True)
    (root / "audit-policy" / "apiserver-audit-policy.yaml").write_text("rules: []\n")
    return root


def make_request(etc: Path, enabled: bool = True, **overrides: object) -> NodeRequest:
    state = AuditState(enabled=enabled, policy_dir=str(etc / "audit-policy"), log_host_dir=str(etc / "log"),
                       policy_hash="h1" if enabled else None)
    fields: dict[str, object] = {
        "master": "m1", "state": state, "manifest": str(etc / "manifests" / "kube-apiserver.yaml"),
        "backup_dir": str(etc / "tmp"), "restart_timeout": 10, "ready_timeout": 20, **overrides,
    }
    return NodeRequest(**fields)  # type: ignore[arg-type]


def fill(directory: Path) -> None:
    """Fill the filesystem holding `directory` until the kernel refuses another byte."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (65536, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError:
                    break
    finally:
        os.close(fd)


def insert_between_flags(pod: planner.Pod, stale: list[str], at: int) -> planner.Pod:
    """A copy of `pod` with `stale` between two whole flags of the apiserver's command (or its args when the
    command is empty or absent), never right after a bare flag that may take it for its value: where a person
    editing the file would put it (the planner refuses the rest: test_flags.py)."""
    dirty = copy.deepcopy(pod)
    container = planner.apiserver_container(dirty)
    tokens, first = (container["command"], 1) if container.get("command") else (container.setdefault("args", []), 0)
    line = flags.parse(tokens[first:])
    takes_next = {f.start + first for f in line.flags if f.may_take_next}
    starts = {f.start + first for f in line.flags} | {len(tokens)}
    positions = sorted(p for p in starts if p - 1 not in takes_next) or [first]
    tokens[positions[at % len(positions)]:positions[at % len(positions)]] = stale
    return dirty

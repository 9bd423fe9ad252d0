"""Helpers for the node program's tests: a real /etc/kubernetes in a temp dir, a fake clock, scripted readiness."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from components.manifest import node
from components.manifest.desired import AuditState, NodeRequest

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "manifests" / "kubeadm-v1.31.yaml"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def scripted(answers: list[bool], clock: FakeClock | None = None,
             hook: Callable[[int], None] | None = None) -> node.Waiter:
    """A waiter whose probe answers from a script (the last answer repeats); `hook(n)` runs on call n."""
    clock = clock or FakeClock()
    calls: list[str] = []

    def probe(url: str) -> bool:
        calls.append(url)
        if hook is not None:
            hook(len(calls))
        return answers.pop(0) if len(answers) > 1 else answers[0]

    waiter = node.Waiter(probe=probe, clock=clock, sleep=clock.sleep, interval=1.0)
    waiter.calls = calls  # type: ignore[attr-defined]
    return waiter


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

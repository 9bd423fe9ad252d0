"""A second Pulumi stack on a running lab, for measurements: the real program, on the first master only.

The accuracy test and the latency benchmark switch one apiserver between audit off, each profile
and log-everything by running `pulumi up` on this stack (own name and config file, so the lab's
`lab`/`e2e` stacks are untouched; insight-agent left out). `destroy()` turns audit off again on that
master, as it was found. `LogTap` reads what the master appended to its audit log since a mark.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import yaml

from . import stack
from .config import Host, Lab

NS = "kube-audit"


@dataclasses.dataclass
class AuditStack:
    """Stack ``name`` managing audit logging on ``lab``'s first master."""

    base: Lab
    name: str = "volume"
    # Rotated files kept. LogTap counts growth by file, so a backup rotated away during a measurement is
    # bytes lost from the count: a stack that writes more than maxSize × maxBackup per step needs more.
    max_backup: int = 1

    def __post_init__(self) -> None:
        self.lab = dataclasses.replace(self.base, masters=1, stack=self.name,
                                       config_file=str(self.base.state / f"Pulumi.{self.name}.yaml"))

    @property
    def host(self) -> Host:
        return self.lab.hosts()[0]

    def setup(self) -> None:
        if not stack.setup(self.lab, lambda msg: None):
            raise RuntimeError("no pulumi binary or Pulumi.yaml: the stack cannot be made")
        self._config({f"{NS}:insightAgent": {"enabled": False}})

    def _config(self, values: dict[str, object]) -> None:
        path = self.lab.stack_config
        doc = yaml.safe_load(path.read_text()) or {}
        doc.setdefault("config", {}).update(values)
        path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))

    def apply(self, policy: str | None, mode: str = "blocking", timeout: float = 900) -> float:
        """Audit on with ``policy`` (a profile name or a path) in ``mode``, or off (None); returns seconds."""
        values: dict[str, object] = {f"{NS}:enabled": "false" if policy is None else "true",
                                     f"{NS}:log": {"maxSize": 100, "maxBackup": self.max_backup, "maxAge": 30,
                                                       "mode": mode}}
        if policy is not None:
            values[f"{NS}:policy"] = policy
        self._config(values)
        t = time.monotonic()
        stack.run_pulumi(self.lab, "up", "--yes", "--skip-preview", "--non-interactive", timeout=timeout)
        return time.monotonic() - t

    def destroy(self) -> None:
        """Audit off on the master again (the program's delete path), then forget the stack."""
        stack.run_pulumi(self.lab, "destroy", "--yes", "--skip-preview", "--non-interactive", timeout=900)
        stack.run_pulumi(self.lab, "stack", "rm", self.name, "--yes", "--force", "--non-interactive",
                         stack=False, check=False)
        self.lab.stack_config.unlink(missing_ok=True)


class LogTap:
    """The bytes one master's audit log dir grew by since ``mark()`` (rotated files included)."""

    def __init__(self, host: Host) -> None:
        self.dir = host.audit_log_dir
        self.marks: dict[str, int] = {}

    def _sizes(self) -> dict[str, int]:
        if not self.dir.is_dir():
            return {}
        return {p.name: p.stat().st_size for p in self.dir.iterdir() if p.is_file() and not p.name.endswith(".gz")}

    def mark(self) -> None:
        self.marks = self._sizes()

    def settle(self, quiet: float = 0.6, timeout: float = 15) -> None:
        """Wait until nothing was appended for ``quiet`` seconds (the last stages are written)."""
        deadline = time.monotonic() + timeout
        last = self._sizes()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self._sizes()
            if now == last:
                return
            last = now

    def lines(self, contains: bytes = b"") -> list[bytes]:
        out: list[bytes] = []
        for name in sorted(self._sizes()):
            with open(self.dir / name, "rb") as fh:
                fh.seek(self.marks.get(name, 0))
                out += [ln for ln in fh.read().splitlines(keepends=True) if contains in ln]
        return out

    def bytes_since(self) -> int:
        now = self._sizes()
        return sum(size - self.marks.get(name, 0) for name, size in now.items())


def user_agent_filter(agent: str) -> bytes:
    """The exact JSON of an event's userAgent field (the apiserver writes it in this form)."""
    return b'"userAgent":' + json.dumps(agent).encode()


def write_sample(lines: list[bytes], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))
    return path

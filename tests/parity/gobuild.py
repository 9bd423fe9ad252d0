"""Build the Go parity program (main.go) into a cache outside the repo; no pytest dependency.

Used by the parity tests (tests/parity/conftest.py) and by benchmarks/bench_explain.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from components.policy import Request

HERE = Path(__file__).resolve().parent
SOURCES = ("go.mod", "go.sum", "main.go")


class GoMissingError(RuntimeError):
    """No Go toolchain: the real apiserver code cannot be built here."""


class GoBuildError(RuntimeError):
    """``go build`` failed (most often: no network to the module proxy)."""


def cache_dir() -> Path:
    """``$KUBE_AUDIT_CACHE`` or ``$XDG_CACHE_HOME/kube-audit`` or ``~/.cache/kube-audit``, + /parity."""
    base = os.environ.get("KUBE_AUDIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kube-audit"
    )
    return Path(base) / "parity"


def build() -> Path:
    """``go build`` once per source version; the binary's name carries a hash of the sources."""
    go = shutil.which("go")
    if go is None:
        raise GoMissingError("parity: the Go toolchain ('go') is not on PATH, so k8s.io/apiserver cannot be built")
    digest = hashlib.sha256(b"".join((HERE / name).read_bytes() for name in SOURCES)).hexdigest()[:16]
    out = cache_dir()
    binary = out / f"parity-{digest}"
    if binary.exists():
        return binary
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".parity-{digest}.{os.getpid()}"
    result = subprocess.run(
        [go, "build", "-o", str(tmp), "."],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "GOFLAGS": (os.environ.get("GOFLAGS", "") + " -mod=readonly").strip()},
        check=False,
    )
    if result.returncode != 0:
        raise GoBuildError(f"parity: go build failed (is the Go module proxy reachable?):\n{result.stderr[-4000:]}")
    os.replace(tmp, binary)
    return binary


def go_request(r: Request) -> dict[str, Any]:
    """A request in the Go parity program's JSON shape."""
    return {
        "user": r.user,
        "groups": list(r.groups),
        "verb": r.verb,
        "apiGroup": r.api_group,
        "resource": r.resource,
        "subresource": r.subresource,
        "namespace": r.namespace,
        "name": r.name,
        "path": r.path,
        "resourceRequest": r.is_resource_request,
    }

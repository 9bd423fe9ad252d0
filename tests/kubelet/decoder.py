"""Build and run the kubelet-decode helper (main.go): the kubelet's static-pod decoding, for tests.

Built once per source version into the kube-audit cache (outside the repo); no pytest dependency.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCES = ("go.mod", "go.sum", "main.go")


class GoMissingError(RuntimeError):
    """No Go toolchain here: the kubelet's decoder cannot be built."""


def build() -> Path:
    go = shutil.which("go")
    if go is None:
        raise GoMissingError("the Go toolchain ('go') is not on PATH, so k8s.io/apimachinery cannot be built")
    digest = hashlib.sha256(b"".join((HERE / name).read_bytes() for name in SOURCES)).hexdigest()[:16]
    base = os.environ.get("KUBE_AUDIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kube-audit")
    binary = Path(base) / "kubelet-decode" / f"kubelet-decode-{digest}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_name(f".{binary.name}.{os.getpid()}")
    result = subprocess.run([go, "build", "-o", str(tmp), "."], cwd=HERE, capture_output=True, text=True,
                            timeout=1800, check=False,
                            env={**os.environ, "GOFLAGS": (os.environ.get("GOFLAGS", "") + " -mod=readonly").strip()})
    if result.returncode != 0:
        raise RuntimeError(f"go build of the kubelet decoder failed (is the Go module proxy reachable?):\n"
                           f"{result.stderr[-4000:]}")
    os.replace(tmp, binary)
    return binary


def _run(binary: Path, args: list[str]) -> list[dict[str, Any]]:
    result = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    return answers


def decode(binary: Path, texts: list[str | bytes]) -> list[dict[str, Any]]:
    """Decode each manifest as the kubelet does, in order: {"pod": {...}} or {"error": "..."} (the plain
    v1 decoder), and "kubelet": {"key", "hash", "error"} (the kubelet's whole static-pod path)."""
    return decode_bytes(binary, [text if isinstance(text, bytes) else text.encode("utf-8") for text in texts])


def decode_bytes(binary: Path, files: list[bytes]) -> list[dict[str, Any]]:
    """The same for the bytes of each file (another encoding, a byte-order mark)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, data in enumerate(files):
            path = Path(tmp) / f"{i}.yaml"
            path.write_bytes(data)
            paths.append(str(path))
        answers = _run(binary, paths)
    return [{k: v for k, v in a.items() if k != "file"} for a in answers]


def list_dir(binary: Path, directory: Path) -> list[dict[str, Any]]:
    """Every entry of a manifests dir as the kubelet's file source sees it, sorted as it reads them."""
    return _run(binary, ["-dir", str(directory)])

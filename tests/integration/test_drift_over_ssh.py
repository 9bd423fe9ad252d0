"""The fact reader over a real sshd: facts come back; a silent or closed port is an error within the timeout."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.drift.facts import FactRequest, read_all, read_one
from components.remote.ssh import Connection

from .conftest import SshHost


@pytest.fixture
def conn(ssh_host: SshHost) -> Connection:
    host_key = ssh_host.known_hosts.read_text().split(" ", 1)[1].strip()
    return Connection(host=ssh_host.host, port=ssh_host.port, user="root",
                      private_key=ssh_host.key.read_text(), host_key=host_key)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts and then never says a word (a hung sshd, a black-holing firewall)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield int(server.getsockname()[1])
    stop.set()
    t.join(2)
    for s in held:
        s.close()
    server.close()


def test_reads_manifest_and_policy_over_ssh(conn: Connection, tmp_path: Path) -> None:
    manifest, policy = tmp_path / "kube-apiserver.yaml", tmp_path / "policy.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\n")
    policy.write_text("rules: []\n")
    reading = read_one(conn, FactRequest(str(manifest), str(policy)), timeout=20)
    assert reading.error is None and reading.facts is not None
    assert base64.b64decode(reading.facts["manifest"]["b64"]) == manifest.read_bytes()
    assert len(reading.facts["policy"]["sha256"]) == 64
    assert isinstance(reading.facts["apiserver"], list)


def test_a_silent_master_is_an_error_within_the_timeout(conn: Connection, silent_port: int, tmp_path: Path) -> None:
    dead = Connection(host="127.0.0.1", port=silent_port, private_key=conn.private_key)
    request = FactRequest(str(tmp_path / "m.yaml"), None)
    t = time.monotonic()
    readings = read_all({"ok": (conn, request), "silent": (dead, request)}, timeout=4)
    took = time.monotonic() - t
    assert readings["ok"].facts is not None
    assert readings["silent"].facts is None and "cannot connect" in (readings["silent"].error or "")
    assert took < 8, f"the read took {took:.1f}s with a 4s timeout"


def test_a_preview_runs_ups_preflight_in_the_same_read(conn: Connection, tmp_path: Path) -> None:
    from components.drift.facts import PreflightAsk
    from components.drift.preview_preflight import refusal
    from components.manifest.bundle import build_bundle
    from components.manifest.desired import AuditState, NodeRequest

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "manifests" / "kubeadm-v1.31.yaml"
    (tmp_path / "manifests").mkdir()
    manifest = tmp_path / "manifests" / "kube-apiserver.yaml"
    manifest.write_bytes(fixture.read_bytes())
    (tmp_path / "manifests" / "kube-apiserver.yaml~").write_bytes(fixture.read_bytes())
    (tmp_path / "manifests" / ".kube-apiserver.yaml.swp").write_bytes(fixture.read_bytes())
    state = AuditState(enabled=True, policy_dir=str(tmp_path / "policy"), log_host_dir=str(tmp_path / "log"))
    req = NodeRequest(master="m1", state=state, manifest=str(manifest), backup_dir=str(tmp_path / "backup"),
                      readiness_url="https://127.0.0.1:1/readyz")
    bundle = build_bundle(tmp_path / "build").read_bytes()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    reading = read_one(conn, FactRequest(str(manifest), None, PreflightAsk(req.to_json(), bundle)), timeout=60)
    assert reading.facts is not None and reading.preflight is not None, reading
    text = refusal(conn.label, reading.preflight) or ""
    assert text.startswith(f"on {conn.label}: exit 2: kube-audit[m1]: preflight refused this master:"), text
    assert f"{manifest}~ also declares the kube-apiserver pod" in text and ".swp" not in text
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "the preview's preflight wrote on the node"


def test_a_closed_port_is_unreachable(conn: Connection, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    dead = Connection(host="127.0.0.1", port=port, private_key=conn.private_key)
    reading = read_one(dead, FactRequest(str(tmp_path / "m.yaml"), None), timeout=5)
    assert reading.unreachable and reading.error and reading.error.startswith(f"cannot connect to {dead.label}: ")
    assert reading.error.count("cannot connect to") == 1, reading.error

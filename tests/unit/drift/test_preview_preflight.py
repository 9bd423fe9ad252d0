"""The preview's preflight: `up`'s own node program, run from memory with `up`'s request.

Run here exactly as a master runs it (`sh -c` the command line, the framed stdin), and compared with
what `up` runs (the zipapp file with the request on stdin): same exit code, same message.
"""

from __future__ import annotations

import ast
import dataclasses
import http.server
import io
import json
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.drift.facts import preflight_command
from components.drift.preview_preflight import BOOTSTRAP, PreflightRun, frame, refusal
from components.manifest.bundle import build_bundle, build_bundle_bytes, with_bytecode
from components.manifest.desired import AuditState, NodeRequest
from components.remote.node_program import python_command
from components.remote.plain_errors import command_failure

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "manifests" / "kubeadm-v1.31.yaml"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    (tmp_path / "manifests").mkdir()
    shutil.copy(FIXTURE, tmp_path / "manifests" / "kube-apiserver.yaml")
    (tmp_path / "log").mkdir()
    return tmp_path


def request(etc: Path) -> NodeRequest:
    state = AuditState(enabled=True, policy_dir=str(etc / "audit-policy"), log_host_dir=str(etc / "log"))
    # Nothing listens on port 1: "not ready" at once, on any machine.
    return NodeRequest(master="m1", state=state, manifest=str(etc / "manifests" / "kube-apiserver.yaml"),
                       backup_dir=str(etc / "tmp"), readiness_url="https://127.0.0.1:1/readyz")


def _tree(d: Path) -> dict[str, tuple[float, int]]:
    return {str(p): (p.stat().st_mtime, p.stat().st_size) for p in sorted(d.rglob("*"))}


def as_preview(req: NodeRequest, bundle: Path) -> subprocess.CompletedProcess[bytes]:
    # A preview sends the bundle with bytecode beside its sources (audit_logging.preflight_asks).
    sent = with_bytecode(bundle.read_bytes())
    return subprocess.run(["sh", "-c", preflight_command()], input=frame(req.to_json(), sent),
                          capture_output=True, timeout=120, check=False)


def as_up(req: NodeRequest, bundle: Path) -> subprocess.CompletedProcess[bytes]:
    # What components/preflight.py runs on the master: the copied program, the request on stdin.
    return subprocess.run(["sh", "-c", python_command(str(bundle), "preflight")], input=req.to_json().encode(),
                          capture_output=True, timeout=120, check=False)


def test_the_bootstrap_runs_on_any_python3_and_says_so_when_too_old() -> None:
    # Parsed with the oldest grammar ast offers: an old python3 must reach our message, not a SyntaxError.
    ast.parse(BOOTSTRAP, feature_version=(3, 4))
    assert "3.9 or newer is required" in BOOTSTRAP


def test_frame_puts_the_request_length_first() -> None:
    assert frame('{"a": "é"}', b"PK\x03\x04") == b'11\n{"a": "\xc3\xa9"}PK\x03\x04'


def test_preview_refuses_with_ups_exact_message_and_writes_nothing(etc: Path, bundle: Path) -> None:
    manifests = etc / "manifests"
    shutil.copy(manifests / "kube-apiserver.yaml", manifests / "kube-apiserver.yaml~")  # an editor's copy
    shutil.copy(manifests / "kube-apiserver.yaml", manifests / ".kube-apiserver.yaml.swp")  # the kubelet skips it
    before = _tree(etc)
    preview, up = as_preview(request(etc), bundle), as_up(request(etc), bundle)
    assert _tree(etc) == before, "the preview's preflight wrote on the node"
    assert (preview.returncode, preview.stderr) == (up.returncode, up.stderr)
    err = preview.stderr.decode()
    assert preview.returncode == 2 and err.startswith("kube-audit[m1]: preflight refused this master:"), err
    assert f"{manifests}/kube-apiserver.yaml~ also declares the kube-apiserver pod" in err
    assert ".swp" not in err
    assert "not ready now at https://127.0.0.1:1/readyz" in err


@pytest.fixture
def ready_url() -> Iterator[str]:
    """A /readyz that answers 200 (plain HTTP: the probe reads only the status)."""

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/readyz"
    server.shutdown()


def test_preview_passes_where_up_passes(etc: Path, bundle: Path, ready_url: str) -> None:
    shutil.copy(etc / "manifests" / "kube-apiserver.yaml", etc / "manifests" / ".kube-apiserver.yaml.swp")
    req = dataclasses.replace(request(etc), readiness_url=ready_url)
    preview, up = as_preview(req, bundle), as_up(req, bundle)
    assert (preview.returncode, up.returncode) == (0, 0), (preview.stderr, up.stderr)
    assert json.loads(preview.stdout)["problems"] == json.loads(up.stdout)["problems"] == []


def test_refusal_is_the_failure_up_reports() -> None:
    label = "root@10.6.0.12:2222"
    err = "kube-audit[master-2]: preflight refused this master:\n  - x; nothing was changed\n"
    assert refusal(label, PreflightRun(2, "", err)) == command_failure(label, 2, "", err)
    assert refusal(label, PreflightRun(2, "", err)).startswith(f"on {label}: exit 2: kube-audit[master-2]:")
    assert refusal(label, PreflightRun(0, '{"problems": []}', "")) is None
    assert refusal(label, PreflightRun(None, error="the preflight did not finish in time")) is None


def _members(bundle: bytes) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(bundle.partition(b"\n")[2]))
    return {name: archive.read(name) for name in archive.namelist()}


def _loaded_from(bundle: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "b.pyz"
    path.write_bytes(bundle)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import components.manifest.node as n, ruamel.yaml.main as m; "
             "print(n.__file__); print(m.__file__)")
    out = subprocess.run(["python3", "-c", probe, str(path)], capture_output=True, text=True, check=True).stdout
    return out.split()


def test_the_preview_bundle_carries_the_same_sources_and_their_bytecode() -> None:
    plain = build_bundle_bytes()
    preview = with_bytecode(plain)
    sources, sent = _members(plain), _members(preview)
    assert {n: d for n, d in sent.items() if not n.endswith(".pyc")} == sources
    assert {n for n in sent if n.endswith(".pyc")} == {n + "c" for n in sources if n.endswith(".py")} - {"__main__.pyc"}


def test_a_master_with_this_python_runs_the_bytecode_and_any_other_the_sources(tmp_path: Path) -> None:
    preview = with_bytecode(build_bundle_bytes())
    if shutil.which("python3") and subprocess.run(
            ["python3", "-c", "import sys; print(sys.implementation.cache_tag)"], capture_output=True,
            text=True, check=True).stdout.strip() != sys.implementation.cache_tag:
        pytest.skip("python3 on PATH is not the interpreter that built the bytecode")
    assert all(f.endswith(".pyc") for f in _loaded_from(preview, tmp_path))
    # Another python3 version finds another magic number and compiles the sources, as without bytecode.
    foreign = io.BytesIO()
    with zipfile.ZipFile(foreign, "w") as out:
        for name, data in _members(preview).items():
            out.writestr(name, b"\x00\x00\r\n" + data[4:] if name.endswith(".pyc") else data)
    assert all(f.endswith(".py") for f in _loaded_from(foreign.getvalue(), tmp_path))

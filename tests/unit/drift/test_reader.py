"""The node-side fact reader, run exactly as a master runs it: `python3 - REQUEST` with its source on stdin."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.drift.facts import READER_SOURCE, FactRequest


def run_reader(request: FactRequest) -> dict:
    r = subprocess.run([sys.executable, "-", request.to_json()], input=READER_SOURCE, capture_output=True,
                       text=True, timeout=60, check=True)
    return json.loads(r.stdout)


def test_reader_is_python39_syntax_and_stdlib_only() -> None:
    tree = ast.parse(READER_SOURCE, feature_version=(3, 9))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "base64", "hashlib", "json", "os", "sys"}, imported


def test_reads_manifest_bytes_and_policy_hash(tmp_path: Path) -> None:
    manifest = tmp_path / "kube-apiserver.yaml"
    manifest.write_bytes(b"apiVersion: v1\nkind: Pod\n# \xff not utf-8\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules: []\n")
    before = sorted(os.listdir(tmp_path))
    facts = run_reader(FactRequest(str(manifest), str(policy)))
    assert base64.b64decode(facts["manifest"]["b64"]) == manifest.read_bytes()
    assert facts["policy"] == {"path": str(policy), "sha256": hashlib.sha256(b"rules: []\n").hexdigest(),
                               "ctime": os.stat(policy).st_ctime}
    assert sorted(os.listdir(tmp_path)) == before, "the reader writes nothing"


def test_missing_files_are_errors_not_failures(tmp_path: Path) -> None:
    facts = run_reader(FactRequest(str(tmp_path / "nope.yaml"), str(tmp_path / "gone.yaml")))
    assert facts["manifest"] == {"path": str(tmp_path / "nope.yaml"), "error": "No such file or directory"}
    assert facts["policy"]["error"] == "No such file or directory"
    assert "policy" not in run_reader(FactRequest(str(tmp_path / "nope.yaml"), None))


def apiserver_lookalike(directory: Path) -> list[str]:
    """A bash named kube-apiserver (argv[0] as a container runtime starts it); `; true` keeps bash alive."""
    exe = directory / "kube-apiserver"
    if not exe.exists():
        exe.symlink_to(shutil.which("bash") or "/bin/bash")
    return [str(exe), "-c", "sleep 60; true"]


@pytest.fixture
def fake_apiserver(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([*apiserver_lookalike(tmp_path), "--audit-policy-file=/p", "--secure-port=6443"])
    time.sleep(0.3)
    yield proc
    proc.kill()
    proc.wait()


def test_finds_the_running_apiserver_in_this_network_namespace(tmp_path: Path,
                                                                 fake_apiserver: subprocess.Popen[bytes]) -> None:
    facts = run_reader(FactRequest(str(tmp_path / "m.yaml"), None))
    mine = [p for p in facts["apiserver"] if p["pid"] == fake_apiserver.pid]
    assert len(mine) == 1 and mine[0]["argv"][0].endswith("/kube-apiserver")
    assert mine[0]["argv"][-2:] == ["--audit-policy-file=/p", "--secure-port=6443"]


def test_start_time_is_never_later_than_the_real_start(tmp_path: Path) -> None:
    # A file changed just before the process started must not look newer than the process, and one
    # changed after it must: the rule that forgives a regenerated manifest's missing annotation.
    before = tmp_path / "before"
    before.write_text("x")
    time.sleep(1.1)  # the boot time the reader adds is whole seconds
    proc = subprocess.Popen(apiserver_lookalike(tmp_path))
    try:
        time.sleep(0.3)
        after = tmp_path / "after"
        after.write_text("y")
        facts = run_reader(FactRequest(str(tmp_path / "m.yaml"), str(after)))
        (mine,) = [p for p in facts["apiserver"] if p["pid"] == proc.pid]
        assert os.stat(before).st_ctime < mine["started"] < facts["policy"]["ctime"]
        assert mine["started"] <= time.time()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare -n")
def test_ignores_an_apiserver_of_another_network_namespace(tmp_path: Path) -> None:
    other = subprocess.Popen(["unshare", "-n", *apiserver_lookalike(tmp_path)])
    try:
        time.sleep(0.3)
        facts = run_reader(FactRequest(str(tmp_path / "m.yaml"), None))
        assert other.pid not in {p["pid"] for p in facts["apiserver"]}
    finally:
        other.kill()
        other.wait()

"""The shipped node program, run exactly as the components run it, over a real SSH connection.

A temporary directory stands in for /etc/kubernetes; the apiserver's readiness is played by real
processes named kube-apiserver that are restarted when the manifest changes (fakeapiserver.py).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from components.manifest import planner
from components.manifest.bundle import build_bundle
from components.manifest.desired import AuditState, NodeRequest
from components.remote.node_program import python_command

from .conftest import SshHost
from .fakeapiserver import FakeApiserver

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "manifests" / "kubeadm-v1.31.yaml"


@pytest.fixture
def master(tmp_path: Path, ssh_host: SshHost) -> Iterator[tuple[Path, FakeApiserver, str]]:
    etc = tmp_path / "etc-kubernetes"
    (etc / "manifests").mkdir(parents=True)
    shutil.copy(FIXTURE, etc / "manifests" / "kube-apiserver.yaml")
    os.utime(etc / "manifests" / "kube-apiserver.yaml", (0, 0))
    bundle = build_bundle(tmp_path / "build")
    remote_program = str(tmp_path / "node-program" / bundle.name)
    (tmp_path / "node-program").mkdir()
    ssh_host.copy(bundle, remote_program)
    fake = FakeApiserver(etc / "manifests" / "kube-apiserver.yaml", down_seconds=1.5)
    yield etc, fake, remote_program
    fake.shutdown()


def request(etc: Path, url: str, enabled: bool) -> NodeRequest:
    state = AuditState(enabled=enabled, policy_dir=str(etc / "audit-policy"), log_host_dir=str(etc / "log"),
                       policy_hash="f" * 64 if enabled else None)
    return NodeRequest(master="ssh-master", state=state, manifest=str(etc / "manifests" / "kube-apiserver.yaml"),
                       backup_dir=str(etc / "tmp"), restart_timeout=10, ready_timeout=10, readiness_url=url)


def test_policy_then_manifest_converge_over_ssh_and_revert(ssh_host: SshHost, master: tuple) -> None:
    etc, fake, program = master
    policy_path = str(etc / "audit-policy" / "apiserver-audit-policy.yaml")
    write = ssh_host.ssh(python_command(program, "write-file", "--path", policy_path, "--mode", "0600"),
                         stdin=b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
    assert write.returncode == 0, write.stderr
    assert Path(policy_path).stat().st_mode & 0o777 == 0o600

    enable = ssh_host.ssh(python_command(program, "apply"), stdin=request(etc, fake.url, True).to_json().encode())
    assert enable.returncode == 0, enable.stderr.decode()
    report = json.loads(enable.stdout)
    assert report["changed"] is True and set(report["gate"]) == {"new-process", "flags", "ready", "audit-log"}
    assert report["gate"]["new-process"] >= 1.5 and fake.starts == 2
    pod = planner.parse_manifest((etc / "manifests" / "kube-apiserver.yaml").read_text(), "m")
    assert planner.audit_enabled(pod) and os.listdir(etc / "manifests") == ["kube-apiserver.yaml"]
    (etc / "log" / "kube-apiserver-audit.log").write_text("evidence\n")

    again = ssh_host.ssh(python_command(program, "apply"), stdin=request(etc, fake.url, True).to_json().encode())
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False

    # Destroy passes the request as an argument (no stdin on delete).
    off = request(etc, fake.url, False).to_json(compact=True)
    revert = ssh_host.ssh(python_command(program, "apply", "--request", off))
    assert revert.returncode == 0, revert.stderr.decode()
    assert yaml.safe_load((etc / "manifests" / "kube-apiserver.yaml").read_text()) == yaml.safe_load(FIXTURE.read_text())
    assert (etc / "log" / "kube-apiserver-audit.log").read_text() == "evidence\n", "audit logs are kept"
    assert len(os.listdir(etc / "tmp")) == 2, "one backup per change"


def test_apiserver_that_never_comes_back_is_rolled_back_over_ssh(ssh_host: SshHost, master: tuple) -> None:
    etc, fake, program = master
    (etc / "audit-policy").mkdir()
    (etc / "audit-policy" / "apiserver-audit-policy.yaml").write_text("rules: []\n")
    fake.comes_back = False
    original = (etc / "manifests" / "kube-apiserver.yaml").read_bytes()
    result = ssh_host.ssh(python_command(program, "apply"), stdin=request(etc, fake.url, True).to_json().encode())
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.startswith("kube-audit[ssh-master]: the new kube-apiserver failed the 'ready' check")
    assert "restored the previous manifest from" in err and "the previous configuration is NOT serving" in err
    assert (etc / "manifests" / "kube-apiserver.yaml").read_bytes() == original


def test_bad_manifest_over_ssh_changes_nothing(ssh_host: SshHost, master: tuple) -> None:
    etc, fake, program = master
    (etc / "manifests" / "kube-apiserver.yaml").write_text("apiVersion: v1\nkind: Pod\nspec: {containers: []}\n")
    result = ssh_host.ssh(python_command(program, "apply"), stdin=request(etc, fake.url, False).to_json().encode())
    assert result.returncode == 2
    assert "no container named 'kube-apiserver'" in result.stderr.decode()
    assert not (etc / "tmp").exists()


def test_missing_python3_is_reported_clearly(ssh_host: SshHost, master: tuple) -> None:
    _, _, program = master
    result = ssh_host.ssh("PATH=/nonexistent; " + python_command(program, "apply"))
    assert result.returncode == 127
    assert b"python3 (3.9 or newer) is required on this master" in result.stderr

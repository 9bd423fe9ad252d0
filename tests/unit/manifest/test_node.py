"""The master-side "do" part against a temporary /etc/kubernetes, readiness faked by a scripted probe."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest

from components.manifest import node, planner
from tests.unit.manifest.helpers import FakeClock, scripted
from tests.unit.manifest.helpers import make_request as request


def test_enable_backs_up_writes_atomically_and_waits_for_restart(etc: Path) -> None:
    clock = FakeClock()
    waiter = scripted([True, False, False, True], clock)
    original = (etc / "manifests" / "kube-apiserver.yaml").read_bytes()
    report = node.converge(request(etc), waiter)
    assert report["changed"] is True and report["auditEnabled"] is True
    assert Path(report["backup"]).read_bytes() == original
    assert Path(report["backup"]).parent == etc / "tmp"
    assert sorted(os.listdir(etc / "manifests")) == ["kube-apiserver.yaml"], "no temp or backup file left there"
    assert (etc / "manifests" / "kube-apiserver.yaml").stat().st_mode & 0o777 == 0o600
    assert (etc / "log").is_dir() and (etc / "log").stat().st_mode & 0o777 == 0o700
    assert report["readinessUrl"] == "https://10.6.0.11:6443/readyz", "taken from the readinessProbe"
    assert report["downAfterSeconds"] == 1.0
    assert any(line.startswith("+ flag --audit-policy-file=") for line in report["changes"])


def test_converged_manifest_is_not_rewritten(etc: Path) -> None:
    clock = FakeClock()
    node.converge(request(etc), scripted([False, True], clock))
    before = os.stat(etc / "manifests" / "kube-apiserver.yaml")
    report = node.converge(request(etc), scripted([True], clock))
    assert report["changed"] is False
    assert os.stat(etc / "manifests" / "kube-apiserver.yaml").st_mtime_ns == before.st_mtime_ns
    assert len(os.listdir(etc / "tmp")) == 1, "no second backup for a no-op"


def test_apiserver_never_ready_restores_the_backup_and_fails_naming_why(etc: Path) -> None:
    clock = FakeClock()
    original = (etc / "manifests" / "kube-apiserver.yaml").read_bytes()
    with pytest.raises(node.NodeError, match=r"did not become ready .* within 20s; restored") as info:
        node.converge(request(etc), scripted([False], clock))
    assert info.value.code == 1
    assert (etc / "manifests" / "kube-apiserver.yaml").read_bytes() == original


def test_no_restart_seen_restores_too(etc: Path) -> None:
    clock = FakeClock()
    with pytest.raises(node.NodeError, match="not restarted within 10s"):
        node.converge(request(etc), scripted([True], clock))
    assert b"--audit-" not in (etc / "manifests" / "kube-apiserver.yaml").read_bytes()


def test_stray_backup_in_manifests_dir_is_refused_before_any_change(etc: Path) -> None:
    shutil.copy(etc / "manifests" / "kube-apiserver.yaml", etc / "manifests" / "kube-apiserver.yaml.bak")
    (etc / "manifests" / ".hidden.yaml").write_text("ignored: true\n")
    with pytest.raises(node.NodeError, match=r"kube-apiserver.yaml.bak also declares the kube-apiserver pod"):
        node.converge(request(etc), scripted([True], FakeClock()))
    assert not (etc / "tmp").exists()


def test_missing_policy_file_is_refused(etc: Path) -> None:
    (etc / "audit-policy" / "apiserver-audit-policy.yaml").unlink()
    with pytest.raises(node.NodeError, match=r"audit policy .* is missing"):
        node.converge(request(etc), scripted([True], FakeClock()))


def test_disable_keeps_audit_logs(etc: Path) -> None:
    clock = FakeClock()
    node.converge(request(etc), scripted([False, True], clock))
    (etc / "log" / "kube-apiserver-audit.log").write_text('{"kind":"Event"}\n')
    node.converge(request(etc, enabled=False), scripted([False, True], clock))
    pod = planner.parse_manifest((etc / "manifests" / "kube-apiserver.yaml").read_text(), "m")
    assert planner.audit_flags(pod) == []
    assert (etc / "log" / "kube-apiserver-audit.log").read_text() == '{"kind":"Event"}\n'


def test_main_reports_bad_input_with_exit_2(etc: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (etc / "manifests" / "kube-apiserver.yaml").write_text("not: [valid\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(request(etc).to_json()))
    assert node.main(["apply"], waiter=scripted([True], FakeClock())) == 2
    err = capsys.readouterr().err
    assert err.startswith("kube-audit[m1]: ") and "kube-apiserver.yaml:" in err and "nothing was changed" in err


def test_main_apply_from_argument_prints_json(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = request(etc, enabled=False).to_json(compact=True)
    assert node.main(["apply", "--request", text], waiter=scripted([True], FakeClock())) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False


def test_write_file_is_atomic_and_private(tmp_path: Path) -> None:
    result = node.write_file(str(tmp_path / "d" / "p.yaml"), b"x: 1\n", 0o600)
    assert (tmp_path / "d" / "p.yaml").read_bytes() == b"x: 1\n"
    assert (tmp_path / "d" / "p.yaml").stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path / "d") == ["p.yaml"]
    assert len(result["sha256"]) == 64


@pytest.mark.parametrize(("probe", "url"), [
    ({"httpGet": {"host": "10.0.0.1", "port": 6443, "path": "/readyz", "scheme": "HTTPS"}}, "https://10.0.0.1:6443/readyz"),
    ({"httpGet": {"port": "probe-port", "path": "/readyz"}}, "https://127.0.0.1:8443/readyz"),
    (None, "https://127.0.0.1:7443/readyz"),
    ({"httpGet": {"host": "::1", "port": 6443}}, "https://[::1]:6443/readyz"),
])
def test_readiness_url_follows_the_manifest(probe: dict | None, url: str) -> None:
    container = {"name": "kube-apiserver", "command": ["kube-apiserver", "--secure-port=7443"],
                 "ports": [{"name": "probe-port", "containerPort": 8443}]}
    if probe:
        container["readinessProbe"] = probe
    assert node.readiness_url({"spec": {"containers": [container]}}, None) == url

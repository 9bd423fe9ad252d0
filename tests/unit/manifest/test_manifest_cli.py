"""`python -m components manifest`: the planner on a local file, as people and CI run it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "fixtures" / "manifests" / "kubeadm-v1.31.yaml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "components", "manifest", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    (tmp_path / "manifests").mkdir()
    path = tmp_path / "manifests" / "kube-apiserver.yaml"
    shutil.copy(FIXTURE, path)
    return path


def test_enable_rewrites_with_backup_and_diff_then_is_a_no_op(manifest: Path, tmp_path: Path) -> None:
    result = run(str(manifest), "--enable", "--backup-dir", str(tmp_path / "bak"))
    assert result.returncode == 0, result.stderr
    assert "+    - --audit-policy-file=/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml" in result.stdout
    assert [p.read_bytes() for p in (tmp_path / "bak").iterdir()] == [FIXTURE.read_bytes()]
    enabled = manifest.read_bytes()
    again = run(str(manifest), "--enable")
    assert again.returncode == 0 and "already converged" in again.stdout
    assert manifest.read_bytes() == enabled


def test_disable_after_enable_gives_back_the_original_document(manifest: Path) -> None:
    assert run(str(manifest), "--enable").returncode == 0
    assert run(str(manifest), "--disable").returncode == 0
    assert yaml.safe_load(manifest.read_text()) == yaml.safe_load(FIXTURE.read_text())


def test_check_changes_nothing_and_reports_by_exit_code(manifest: Path) -> None:
    result = run(str(manifest), "--enable", "--check")
    assert result.returncode == 1 and "--audit-log-path" in result.stdout
    assert manifest.read_bytes() == FIXTURE.read_bytes()
    assert run(str(manifest), "--disable", "--check").returncode == 0


@pytest.mark.parametrize(("text", "message"), [
    ("kind: Pod\napiVersion: v1\nspec: {containers: [", "not valid YAML"),
    ("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n", "no container named 'kube-apiserver'"),
    ("apiVersion: v1\nkind: Service\n", "expected apiVersion v1, kind Pod"),
])
def test_bad_input_exits_2_naming_the_file_and_writes_nothing(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "manifests").mkdir()
    path = tmp_path / "manifests" / "kube-apiserver.yaml"
    path.write_text(text)
    result = run(str(path), "--enable", "--backup-dir", str(tmp_path / "bak"))
    assert result.returncode == 2
    assert str(path) in result.stderr and message in result.stderr
    assert path.read_text() == text and not (tmp_path / "bak").exists()


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nope.yaml"), "--enable")
    assert result.returncode == 2 and "nope.yaml" in result.stderr

"""`python -m components manifest`: the planner on a local file, as people and CI run it."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize(("kind", "message"), [
    ("fifo", "is not a regular file"),
    ("symlink", "is a symlink to"),
    ("alias-bomb", "kube-apiserver.yaml:4:7: YAML anchors and aliases are not supported"),
    ("deep", "nested deeper than 64 levels"),
    ("metadata-null", "kube-apiserver.yaml:3:11: metadata must be a mapping, got null"),
    ("backup-is-a-file", "is not a directory"),
    ("backup-in-manifests-dir", "is inside the manifests dir"),
])
def test_hostile_input_is_a_one_line_refusal(tmp_path: Path, kind: str, message: str) -> None:
    (tmp_path / "manifests").mkdir()
    path = tmp_path / "manifests" / "kube-apiserver.yaml"
    backup_dir = tmp_path / "bak"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        shutil.copy(FIXTURE, tmp_path / "real.yaml")
        path.symlink_to(tmp_path / "real.yaml")
    elif kind == "alias-bomb":
        levels = "".join(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 30))
        path.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  l0: &l0 [x]\n" + levels)
    elif kind == "deep":
        path.write_text("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    elif kind == "metadata-null":
        path.write_text("apiVersion: v1\nkind: Pod\nmetadata: null\nspec: {containers: []}\n")
    elif kind == "backup-is-a-file":
        shutil.copy(FIXTURE, path)
        backup_dir.write_text("not a dir")
    else:
        shutil.copy(FIXTURE, path)
        backup_dir = tmp_path / "manifests"
    before = {p: (p.lstat().st_mode, p.read_bytes() if p.is_file() and not p.is_fifo() else b"")
              for p in tmp_path.rglob("*")}
    result = run(str(path), "--enable", "--backup-dir", str(backup_dir))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "nothing written" in result.stderr and "Traceback" not in result.stderr
    assert {p: (p.lstat().st_mode, p.read_bytes() if p.is_file() and not p.is_fifo() else b"")
            for p in tmp_path.rglob("*")} == before

"""Whole-cluster preflight: the pure judgement of one master's facts, and the read-only gatherer."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from components.manifest import node, preflight
from components.manifest.desired import AuditState, NodeRequest

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "manifests" / "kubeadm-v1.31.yaml"
MIB = preflight.MIB


def req(**state: object) -> NodeRequest:
    return NodeRequest(master="m2", state=AuditState(enabled=True, **state))  # type: ignore[arg-type]


GOOD = preflight.Facts(python=(3, 11), manifest_error=None, apiserver_containers=1, strays=(), unwritable=(),
                       log_dir="/var/log/kubernetes/audit", log_free_bytes=10_000 * MIB, log_used_bytes=0,
                       ready_url="https://10.0.0.2:6443/readyz", ready=True)


def test_a_healthy_master_has_no_problem() -> None:
    assert preflight.problems(GOOD, req()) == []


def test_every_problem_is_listed_at_once() -> None:
    bad = dataclasses.replace(GOOD, python=(3, 6), apiserver_containers=2,
                              strays=("/etc/kubernetes/manifests/kube-apiserver.yaml.bak",),
                              unwritable=("/etc/kubernetes/tmp",), log_free_bytes=10 * MIB, ready=False)
    found = preflight.problems(bad, req())
    assert len(found) == 6, found
    text = "\n".join(found)
    assert "python3 is 3.6" in text and "2 containers named kube-apiserver" in text
    assert "kube-apiserver.yaml.bak also declares the kube-apiserver pod" in text and "Move it out of" in text
    assert "/etc/kubernetes/tmp is not writable" in text
    assert "has 10 MiB free; the audit log needs 264 MiB" in text and "kube-audit:log.maxSize" in text
    assert "not ready now at https://10.0.0.2:6443/readyz" in text


def test_a_manifest_error_replaces_the_container_count() -> None:
    found = preflight.problems(dataclasses.replace(GOOD, manifest_error="m.yaml:3:1: not valid YAML",
                                                   apiserver_containers=0), req())
    assert found == ["m.yaml:3:1: not valid YAML"]


@pytest.mark.parametrize(("state", "free_mib", "used_mib", "ok"), [
    ({"max_size": 100, "max_backup": 1}, 264, 0, True),   # 100 x 2 + 64 margin
    ({"max_size": 100, "max_backup": 1}, 263, 0, False),
    ({"max_size": 100, "max_backup": 1}, 164, 100, True),  # what the log already holds counts
    ({"max_size": 0, "max_backup": 3}, 464, 0, True),      # maxSize 0: lumberjack's 100 MB
    ({"max_size": 10, "max_backup": 0}, 74, 0, True),      # maxBackup 0 (unbounded): the live file only
])
def test_log_space_budget(state: dict, free_mib: int, used_mib: int, ok: bool) -> None:
    facts = dataclasses.replace(GOOD, log_free_bytes=free_mib * MIB, log_used_bytes=used_mib * MIB)
    assert (preflight.problems(facts, req(**state)) == []) is ok


def test_disabling_does_not_need_log_space() -> None:
    facts = dataclasses.replace(GOOD, log_free_bytes=0)
    off = NodeRequest(master="m", state=AuditState(enabled=False))
    assert preflight.problems(facts, off) == []


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    (tmp_path / "manifests").mkdir()
    shutil.copy(FIXTURE, tmp_path / "manifests" / "kube-apiserver.yaml")
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "kube-apiserver-audit.log").write_bytes(b"x" * 1000)
    (tmp_path / "log" / "kube-apiserver-audit-2026-11-27T10-00-00.000.log").write_bytes(b"y" * 500)
    return tmp_path


def local(etc: Path) -> NodeRequest:
    state = AuditState(enabled=True, policy_dir=str(etc / "audit-policy"), log_host_dir=str(etc / "log"))
    return NodeRequest(master="m1", state=state, manifest=str(etc / "manifests" / "kube-apiserver.yaml"),
                       backup_dir=str(etc / "tmp"))


def _tree(d: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in sorted(d.rglob("*"))}


def test_gather_reads_and_writes_nothing(etc: Path) -> None:
    before = _tree(etc)
    urls: list[str] = []
    facts = preflight.gather(local(etc), lambda url: urls.append(url) or True)
    assert _tree(etc) == before, "preflight changed the node"
    assert urls == ["https://10.6.0.11:6443/readyz"] and facts.ready
    assert facts.apiserver_containers == 1 and facts.strays == () and facts.unwritable == ()
    assert facts.log_used_bytes == 1500 and facts.log_free_bytes > 0
    assert preflight.problems(facts, local(etc)) == []


def test_gather_finds_a_planted_backup_and_a_bad_manifest(etc: Path) -> None:
    shutil.copy(etc / "manifests" / "kube-apiserver.yaml", etc / "manifests" / "kube-apiserver.yaml.bak")
    facts = preflight.gather(local(etc), lambda url: True)
    assert facts.strays == (str(etc / "manifests" / "kube-apiserver.yaml.bak"),)
    (etc / "manifests" / "kube-apiserver.yaml").write_text("kind: [\n")
    facts = preflight.gather(local(etc), lambda url: True)
    assert facts.manifest_error and "not valid YAML" in facts.manifest_error and not facts.ready


def test_gather_refuses_a_manifest_the_change_cannot_plan(etc: Path) -> None:
    # Parses fine, but our flags cannot go into its multi-line flow list without losing the
    # comment: the change would refuse it, so every master's preflight (and the preview) does.
    (etc / "manifests" / "kube-apiserver.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\nspec:\n"
        "  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.30.2\n"
        "    command: [kube-apiserver,\n      --advertise-address=10.0.0.9,   # this master\n"
        "      --secure-port=6443]\n")
    facts = preflight.gather(local(etc), lambda url: True)
    assert facts.manifest_error and "the change would rewrite this part of the file in another layout" in \
        facts.manifest_error, facts
    assert preflight.problems(facts, local(etc)) == [facts.manifest_error]


def test_node_preflight_command_exits_2_listing_every_problem(etc: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(etc / "manifests" / "kube-apiserver.yaml", etc / "manifests" / "kube-apiserver.yaml.bak")
    monkeypatch.setattr("sys.stdin", io.StringIO(local(etc).to_json()))
    gate = node.gate_mod.Gate(probe=lambda url: False)
    assert node.main(["preflight"], gate=gate) == 2
    err = capsys.readouterr().err
    assert err.startswith("kube-audit[m1]: preflight refused this master:")
    assert "kube-apiserver.yaml.bak also declares" in err and "is not ready now" in err
    assert err.rstrip().endswith("nothing was changed")


def test_node_preflight_command_prints_facts_when_fine(etc: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(local(etc).to_json()))
    assert node.main(["preflight"], gate=node.gate_mod.Gate(probe=lambda url: True)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["problems"] == [] and out["facts"]["ready"] is True
    assert not os.path.exists(etc / "tmp")

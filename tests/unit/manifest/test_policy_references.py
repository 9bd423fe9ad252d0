"""A policy file is never removed while a manifest on the master names it (destroy's `remove-file`).

Last session's e2e run lost lab-master-1: its manifest named the policy file, the file was gone, and the
apiserver crash-looped. These tests pin the node side of the fix: removal checks, under the manifests-dir
lock, every file the kubelet reads, and keeps the file while any of them refers to it.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

import pytest

from components.manifest import node, planner, references
from tests.unit.manifest.helpers import FIXTURE, make_request

POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: kube-system}}
spec:
  containers:
  - name: kube-apiserver
    command: [kube-apiserver, {flags}]
    volumeMounts: [{{name: pol, mountPath: {inner}, readOnly: true}}]
  volumes: [{{name: pol, hostPath: {{path: {host}, type: DirectoryOrCreate}}}}]
"""


def enabled_manifest(etc: Path) -> None:
    """The manifest as an enable leaves it: --audit-policy-file and the hostPath mount of the policy dir."""
    manifest = etc / "manifests" / "kube-apiserver.yaml"
    pod = planner.parse_manifest(FIXTURE.read_text(), "m")
    manifest.write_text(planner.render(planner.plan(pod, make_request(etc).state), FIXTURE.read_text()))


def remove(etc: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    policy = etc / "audit-policy" / "apiserver-audit-policy.yaml"
    code = node.main(["remove-file", "--path", str(policy), "--keep-if-used-by",
                      str(etc / "manifests" / "kube-apiserver.yaml")])
    assert code == 0
    return dict(json.loads(capsys.readouterr().out))


def test_a_policy_the_manifest_names_is_kept(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    enabled_manifest(etc)
    result = remove(etc, capsys)
    assert (etc / "audit-policy" / "apiserver-audit-policy.yaml").read_text() == "rules: []\n"
    assert result["removed"] is False
    assert result["keptBecauseUsedBy"] == [str(etc / "manifests" / "kube-apiserver.yaml")]


def test_a_policy_no_manifest_names_is_removed(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = remove(etc, capsys)  # the fixture manifest has audit off
    assert result == {"path": str(etc / "audit-policy" / "apiserver-audit-policy.yaml"), "removed": True}
    assert not (etc / "audit-policy" / "apiserver-audit-policy.yaml").exists()


def test_any_file_the_kubelet_reads_counts_not_only_ours(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = etc / "audit-policy" / "apiserver-audit-policy.yaml"
    other = etc / "manifests" / "apiserver-canary.yaml"
    other.write_text(POD.format(name="canary", flags=f"--audit-policy-file, {policy}", inner=policy.parent,
                                host=policy.parent))
    (etc / "manifests" / ".hidden.yaml").write_text(POD.format(name="x", flags=f"--audit-policy-file={policy}",
                                                               inner=policy.parent, host=policy.parent))
    assert remove(etc, capsys)["keptBecauseUsedBy"] == [str(other)]
    assert policy.exists()


def test_an_unparseable_file_that_mentions_the_policy_keeps_it(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (etc / "manifests" / "broken.yaml").write_text("{{ not yaml: --audit-policy-file=apiserver-audit-policy.yaml\n")
    assert remove(etc, capsys)["removed"] is False
    (etc / "manifests" / "broken.yaml").write_text("{{ not yaml, and names no policy\n")
    assert remove(etc, capsys)["removed"] is True


def test_the_host_path_is_found_through_the_mount(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "kube-apiserver.yaml").write_text(POD.format(
        name="kube-apiserver", flags="--audit-policy-file=/etc/audit/p.yaml", inner="/etc/audit",
        host="/srv/policies"))
    manifest = str(manifests / "kube-apiserver.yaml")
    assert references.referencing_manifests("/srv/policies/p.yaml", manifest) == [manifest]
    assert references.referencing_manifests("/srv/policies/other.yaml", manifest) == []
    # The same path inside the container is not the file on the host.
    assert references.referencing_manifests("/etc/audit/p.yaml", manifest) == []


def test_removal_waits_for_a_change_in_progress_and_judges_what_it_left(etc: Path) -> None:
    holder = os.open(etc / "manifests", os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # an enable on this master is between its write and its gate
    policy = str(etc / "audit-policy" / "apiserver-audit-policy.yaml")
    done: list[dict] = []
    worker = threading.Thread(target=lambda: done.append(
        node.remove_file(policy, str(etc / "manifests" / "kube-apiserver.yaml"))))
    worker.start()
    worker.join(0.5)
    assert worker.is_alive() and not done, "removal must wait for the manifests-dir lock"
    enabled_manifest(etc)  # what that enable wrote
    os.close(holder)
    worker.join(10)
    assert done and done[0]["removed"] is False and os.path.exists(policy)

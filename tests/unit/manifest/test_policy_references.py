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


# --- read as the kubelet and kube-apiserver read it (issue 22) ----------------------------------------

def canary(etc: Path, flags: str, host: Path | None = None, inner: str = "/etc/kubernetes/audit-policy") -> str:
    """A second apiserver manifest naming the policy through a hostPath mount of `host` (the policy dir)."""
    return POD.format(name="canary", flags=flags, inner=inner, host=host or etc / "audit-policy")


IN_CONTAINER = "/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml"


@pytest.mark.parametrize("flags", [f"--audit_policy_file={IN_CONTAINER}", f"--audit-policy_file={IN_CONTAINER}",
                                   f"--audit_policy_file, {IN_CONTAINER}"])
def test_any_spelling_kube_apiserver_obeys_names_the_policy(etc: Path, capsys: pytest.CaptureFixture[str],
                                                            flags: str) -> None:
    other = etc / "manifests" / "apiserver-canary.yaml"
    other.write_text(canary(etc, flags))
    assert remove(etc, capsys)["keptBecauseUsedBy"] == [str(other)]
    assert (etc / "audit-policy" / "apiserver-audit-policy.yaml").exists()


@pytest.mark.parametrize(("bom", "codec"), [(b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
                                            (b"\xef\xbb\xbf", "utf-8")])
def test_a_manifest_the_kubelet_decodes_by_its_byte_order_mark_is_read(etc: Path, capsys: pytest.CaptureFixture[str],
                                                                       bom: bytes, codec: str) -> None:
    other = etc / "manifests" / "apiserver-canary.yaml"
    other.write_bytes(bom + canary(etc, f"--audit-policy-file={IN_CONTAINER}").encode(codec))
    assert remove(etc, capsys)["keptBecauseUsedBy"] == [str(other)]
    assert (etc / "audit-policy" / "apiserver-audit-policy.yaml").exists()


def test_a_hostpath_through_a_symlinked_dir_reaches_the_policy(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    link = etc / "policy-link"
    link.symlink_to(etc / "audit-policy", target_is_directory=True)
    other = etc / "manifests" / "apiserver-canary.yaml"
    other.write_text(canary(etc, f"--audit-policy-file={IN_CONTAINER}", host=link))
    assert remove(etc, capsys)["keptBecauseUsedBy"] == [str(other)]
    # And the other way round: the file to remove is named through the link, the manifest names the dir.
    other.write_text(canary(etc, f"--audit-policy-file={IN_CONTAINER}"))
    users = references.referencing_manifests(str(link / "apiserver-audit-policy.yaml"), str(other))
    assert users == [str(other)]
    assert (etc / "audit-policy" / "apiserver-audit-policy.yaml").exists()


def test_a_file_the_kubelet_could_read_otherwise_keeps_the_policy_naming_why(
        etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    odd = etc / "manifests" / "odd.yaml"
    odd.write_bytes(b"apiVersion: v1\nkind: Pod\nmetadata: {name: \xff}\n")  # no mention of the policy at all
    result = remove(etc, capsys)
    assert result["removed"] is False and "keptBecauseUsedBy" not in result
    assert result["keptBecauseUnreadable"] == [f"{odd}: not UTF-8 or UTF-16 text (byte 42), so whether it names "
                                               "the file is unknown"]
    assert (etc / "audit-policy" / "apiserver-audit-policy.yaml").exists()


def test_a_key_given_twice_is_read_as_the_kubelet_reads_it_the_last_one(
        etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = etc / "manifests" / "apiserver-canary.yaml"
    text = canary(etc, "--v=2")
    naming = f"    command: [kube-apiserver, --audit-policy-file={IN_CONTAINER}]\n"
    other.write_text(text.replace("    command: [kube-apiserver, --v=2]\n",
                                  "    command: [kube-apiserver, --v=2]\n" + naming))
    assert remove(etc, capsys)["keptBecauseUsedBy"] == [str(other)]
    # Named only in the command the kubelet drops: nothing runs with it, so it may go.
    other.write_text(text.replace("    command: [kube-apiserver, --v=2]\n",
                                  naming + "    command: [kube-apiserver, --v=2]\n"))
    assert remove(etc, capsys)["removed"] is True


def test_kubelet_text_decodes_as_go_yaml_does() -> None:
    assert references.kubelet_text(b"\xff\xfea\x00") == "a"
    assert references.kubelet_text(b"\xfe\xff\x00a") == "a"
    assert references.kubelet_text(b"\xef\xbb\xbfa") == "a"
    for bad in (b"a\xff", b"\xff\xfe\x00\xd8"):
        with pytest.raises(UnicodeDecodeError):
            references.kubelet_text(bad)


def test_a_relative_policy_path_is_read_from_the_working_dir(tmp_path: Path) -> None:
    pod = {"spec": {"containers": [{"name": "kube-apiserver", "workingDir": "/etc/audit",
                                    "command": ["kube-apiserver", "--audit_policy_file=../audit/./p.yaml"],
                                    "volumeMounts": [{"name": "pol", "mountPath": "/etc/audit"}]}],
                    "volumes": [{"name": "pol", "hostPath": {"path": "/srv/policies"}}]}}
    assert references.pod_references(pod, "/srv/policies/p.yaml")
    del pod["spec"]["containers"][0]["workingDir"]  # then it is the image's, /: /audit/p.yaml, not mounted
    assert not references.pod_references(pod, "/srv/policies/p.yaml")
    assert references.pod_references(pod, "/audit/p.yaml")

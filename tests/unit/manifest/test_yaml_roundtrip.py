"""The rewrite changes only what it owns, down to the bytes: comments, quotes, flow style, layout."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.manifest import planner, yamlrt
from components.manifest.desired import AuditState
from tests.unit.manifest.test_planner_properties import audit_states, manifests

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "manifests"
ALL = sorted(p.name for p in FIXTURES.glob("*.yaml"))
ON = AuditState(enabled=True, policy_hash="abc123")
OFF = AuditState(enabled=False)


@pytest.mark.parametrize("name", ALL)
def test_loading_and_dumping_gives_back_the_same_bytes(name: str) -> None:
    text = (FIXTURES / name).read_text()
    assert planner.render(planner.parse_manifest(text, name), like=text) == text


@pytest.mark.parametrize("name", [n for n in ALL if n != "stale-hand-made.yaml"])
def test_disable_after_enable_gives_back_the_same_bytes(name: str) -> None:
    text = (FIXTURES / name).read_text()
    enabled = planner.rewrite(text, ON, name)[2]
    assert enabled != text
    assert planner.rewrite(enabled, OFF, name)[2] == text


def test_enable_adds_lines_and_removes_none() -> None:
    text = (FIXTURES / "hand-formatted.yaml").read_text()
    diff = planner.unified_diff(text, planner.rewrite(text, ON, "m")[2], "m").splitlines()
    removed = [line for line in diff if line.startswith("-") and not line.startswith("---")]
    assert removed == [], "every comment, quote and flow mapping stays"
    assert "+        - --audit-policy-file=/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml" in diff, \
        "the file's own indentation (dash two in from its key) is used"


@pytest.mark.parametrize(("policy_hash", "written"), [("1e5", '"1e5"'), ("y", '"y"'), ("0x1F", '"0x1F"'),
                                                      ("abc123", "abc123"), ("2001-12-14", "'2001-12-14'")])
def test_strings_we_add_are_quoted_when_the_kubelet_would_read_them_as_another_type(policy_hash: str,
                                                                                    written: str) -> None:
    text = (FIXTURES / "kubeadm-v1.31.yaml").read_text()
    new = planner.rewrite(text, AuditState(enabled=True, policy_hash=policy_hash), "m")[2]
    assert f"    kube-audit.io/policy-hash: {written}\n" in new
    assert yamlrt.kubelet_view(new, "m")["metadata"]["annotations"]["kube-audit.io/policy-hash"] == policy_hash


def test_split_audit_log_path_dash_is_removed_whole() -> None:
    text = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n"
            "  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    - --audit-log-path\n    - '-'\n"
            "    - --secure-port=6443\n")
    for state in (ON, OFF):
        new = planner.rewrite(text, state, "m")[2]
        tokens = planner.apiserver_container(planner.parse_manifest(new, "m"))["command"]
        assert "-" not in tokens and tokens.count("--secure-port=6443") == 1
        assert [t for t in tokens if t.startswith("--audit-log-path")] == ([] if state is OFF else
                                                                            ["--audit-log-path=/var/log/audit/kube-apiserver-audit.log"])


def test_a_layout_the_writer_normalises_is_kept_outside_our_lines() -> None:
    # ruamel writes `~` back as `null`; the splice keeps the file's own line, so the diff is only ours.
    text = (FIXTURES / "kubeadm-v1.31.yaml").read_text().replace("creationTimestamp: null", "creationTimestamp: ~")
    new = planner.rewrite(text, ON, "m")[2]
    assert "\n  creationTimestamp: ~\n" in new
    assert planner.rewrite(new, OFF, "m")[2] == text


def test_alias_bomb_is_refused_without_expanding_it() -> None:
    levels = "".join(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 30))
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  l0: &l0 [x]\n" + levels + "spec: {}\n"
    with pytest.raises(planner.ManifestError, match=r"^m:4:7: YAML anchors and aliases are not supported"):
        planner.parse_manifest(text, "m")


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(planner.ManifestError, match="nested deeper than 64 levels"):
        planner.parse_manifest("a: " + "[" * 100_000 + "]" * 100_000 + "\n", "m")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("state", [ON, OFF, AuditState(enabled=True, log_mode="batch")])
def test_rewrite_is_idempotent_on_the_bytes(name: str, state: AuditState) -> None:
    text = (FIXTURES / name).read_text()
    once = planner.rewrite(text, state, name)[2]
    assert planner.rewrite(once, state, name)[2] == once


def test_cli_diff_is_of_the_bytes_on_disk(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "kube-apiserver.yaml"
    path.write_text((FIXTURES / "hand-formatted.yaml").read_text())
    result = subprocess.run([sys.executable, "-m", "components", "manifest", str(path), "--enable", "--check"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    context = [line for line in result.stdout.splitlines() if line.startswith(" ")]
    assert "         # authorization stays as kubeadm set it" in context, "unchanged lines are the file's own"


@settings(max_examples=25, deadline=None)
@given(manifests(), audit_states())
def test_generated_manifests_come_back_byte_for_byte(pod: planner.Pod, state: AuditState) -> None:
    text = planner.render(pod)
    enabled = planner.rewrite(text, state, "m")[2]
    assert planner.rewrite(enabled, state, "m")[2] == enabled
    assert planner.rewrite(enabled, OFF, "m")[2] == text


# --- bytes the YAML writer would not keep: kept by the splice, or refused -------------------------

KUBEADM = (FIXTURES / "kubeadm-v1.31.yaml").read_text()


def _reindent_volumes(text: str) -> str:
    """The volumes list indented two more than the rest of the file (a hand edit)."""
    head, volumes = text.split("  volumes:\n")
    body, status = volumes.split("status:")
    return head + "  volumes:\n" + "".join("  " + line for line in body.splitlines(keepends=True)) + "status:" + status


LAYOUTS = {
    "CRLF": KUBEADM.replace("\n", "\r\n"),
    "mixed line endings": KUBEADM.replace("  labels:\n", "  labels:\r\n"),
    "no final line break": KUBEADM.rstrip("\n"),
    "a UTF-8 byte-order mark": "\ufeff" + KUBEADM,
    "a document end and a comment after it": KUBEADM + "...\n# regenerated by kubeadm; notes below\n",
    "the volumes list indented otherwise": _reindent_volumes(KUBEADM),
    "a tilde for null": KUBEADM.replace("creationTimestamp: null", "creationTimestamp: ~"),
    "a flow list over several lines elsewhere": KUBEADM.replace(
        "    resources:\n      requests:\n        cpu: 250m\n",
        "    resources: {requests: {cpu: 250m,   # kubeadm's default\n      memory: 1Gi}}\n"),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_bytes_outside_our_lines_are_kept(name: str) -> None:
    text = LAYOUTS[name]
    enabled = planner.rewrite(text, ON, "m")[2]
    old_lines, new_lines = text.splitlines(keepends=True), enabled.splitlines(keepends=True)
    changes = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes()
    assert {tag for tag, *_ in changes} == {"equal", "insert"}, "every line of the file is still there, byte for byte"
    added = [line for tag, _, _, j1, j2 in changes if tag == "insert" for line in new_lines[j1:j2]]
    assert all("audit" in line or line.strip() in ("- hostPath:", "type: DirectoryOrCreate", "readOnly: true")
               for line in added), added
    assert planner.rewrite(enabled, OFF, "m")[2] == text, "and disable gives back the same bytes"
    assert yamlrt.kubelet_view(enabled, "m") == planner.plan(yamlrt.kubelet_view(text, "m"), ON)


def test_added_lines_end_and_indent_like_their_neighbours() -> None:
    enabled = planner.rewrite(LAYOUTS["CRLF"], ON, "m")[2]
    assert "\n" not in enabled.replace("\r\n", ""), "every line ends in CRLF, ours too"
    enabled = planner.rewrite(LAYOUTS["the volumes list indented otherwise"], ON, "m")[2]
    assert "    - hostPath:\n        path: /var/log/kubernetes/audit\n" in enabled
    assert planner.rewrite(LAYOUTS["no final line break"], ON, "m")[2].endswith("name: usr-share-ca-certificates"
                                                                                 "\n  - hostPath:\n      path: "
                                                                                 "/var/log/kubernetes/audit\n      "
                                                                                 "type: DirectoryOrCreate\n    name: "
                                                                                 "audit-logs\n  - hostPath:\n      "
                                                                                 "path: /etc/kubernetes/audit-policy"
                                                                                 "\n      type: DirectoryOrCreate\n"
                                                                                 "    name: audit-policy\nstatus: {}")


FLOW_COMMAND = """apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
spec:
  containers:
  - name: kube-apiserver
    image: registry.k8s.io/kube-apiserver:v1.30.2
    command: [kube-apiserver,
      --advertise-address=10.0.0.9,   # this master
      --secure-port=6443]
"""


def test_a_change_inside_a_flow_list_over_several_lines_is_refused_naming_the_line() -> None:
    # Writing our flags into it would put it on one line and lose the comment: refused instead.
    with pytest.raises(planner.ManifestError, match=r"^m:9: the change would rewrite this part of the file in "
                                                    r"another layout \('command: \[kube-apiserver,'"):
        planner.rewrite(FLOW_COMMAND, ON, "m")


@settings(max_examples=25, deadline=None)
@given(manifests(), audit_states(), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_generated_manifests_keep_line_endings_and_final_break(pod: planner.Pod, state: AuditState, ending: str,
                                                               final: bool) -> None:
    text = planner.render(pod).replace("\n", ending)
    text = text if final else text.rstrip(ending)
    enabled = planner.rewrite(text, state, "m")[2]
    assert enabled.count(ending) == enabled.count("\n"), "one line ending throughout"
    assert enabled.endswith(ending) is final
    assert planner.rewrite(enabled, OFF, "m")[2] == text

"""The planner edits audit flags as kube-apiserver reads them: `--audit_policy_file` is `--audit-policy-file`.

Issue 22: with `--audit_policy_file=/etc/old.yaml` in a manifest, enable put our flags before it (the
last one wins: the old policy stayed in force) and disable left it (audit stayed on).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.manifest import flags, planner
from components.manifest.desired import AuditState
from tests.unit.manifest.helpers import FIXTURE, insert_between_flags
from tests.unit.manifest.test_planner_properties import manifests

ON = AuditState(enabled=True, policy_hash="0" * 64)
OFF = AuditState(enabled=False)
KUBEADM = FIXTURE.read_text()


def command(pod: planner.Pod) -> list[Any]:
    return list(planner.apiserver_container(pod)["command"])


def audit_in_force(pod: planner.Pod) -> dict[str, str | None]:
    line = flags.parse_container(planner.apiserver_container(pod))
    return {name: f.value for name, f in line.in_force().items() if f.is_audit}


def with_args(*extra: str) -> str:
    """The kubeadm fixture with `extra` appended to the apiserver's command."""
    last = "    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n"
    assert last in KUBEADM
    return KUBEADM.replace(last, last + "".join(f"    - {a}\n" for a in extra))


def test_the_issue_case_enable_replaces_the_underscore_policy_flag() -> None:
    """The rewrite kept `--audit_policy_file=/etc/old.yaml` after our `--audit-policy-file=`."""
    _, new, text = planner.rewrite(with_args("--audit_policy_file=/etc/old.yaml"), ON, "kube-apiserver.yaml")
    assert "audit_policy_file" not in text and "/etc/old.yaml" not in text
    assert audit_in_force(new) == dict(f.split("=", 1) for f in ON.flags())
    assert planner.audit_flags(new) == ON.flags()


@pytest.mark.parametrize("stale", [
    ["--audit_policy_file=/etc/old.yaml"],
    ["--audit-policy_file=/etc/old.yaml"],
    ["--audit_log_path", "/var/log/old.log"],
    ["--audit_log_maxage=1", "--audit_log_compress"],
    ["--audit_webhook_config_file=/etc/hook.yaml"],
])
def test_enable_leaves_only_ours_whatever_the_spelling(stale: list[str]) -> None:
    pod = planner.parse_manifest(with_args(*stale), "m")
    new = planner.plan(pod, ON)
    assert not set(stale) & set(command(new)), "no stale token survives, value tokens included"
    assert audit_in_force(new) == dict(f.split("=", 1) for f in ON.flags())
    assert new == planner.plan(planner.parse_manifest(KUBEADM, "m"), ON)


@pytest.mark.parametrize("stale", [
    ["--audit_policy_file=/etc/old.yaml", "--audit_log_path=/var/log/a.log"],
    ["--audit_log_path", "/var/log/old.log"],
    ["--audit-log_compress"],
])
def test_disable_removes_every_spelling(stale: list[str]) -> None:
    pod = planner.parse_manifest(with_args(*stale), "m")
    new = planner.plan(pod, OFF)
    assert audit_in_force(new) == {}
    assert new == planner.parse_manifest(KUBEADM, "m")
    assert not planner.audit_enabled(new)


def test_ours_plus_an_underscore_copy_is_rewritten_not_kept_as_converged() -> None:
    converged = planner.render(planner.plan(planner.parse_manifest(KUBEADM, "m"), ON), KUBEADM)
    dirty = converged.replace("    - --authorization-mode", "    - --audit_policy_file=/etc/old.yaml\n"
                                                             "    - --authorization-mode")
    pod, new, text = planner.rewrite(dirty, ON, "m")
    assert new != pod and text == converged
    # Ours, exactly as kubeadm orders them, are still left alone.
    assert planner.rewrite(converged, ON, "m")[2] == converged


def test_an_underscore_policy_flag_counts_as_audit_on() -> None:
    assert planner.audit_enabled(planner.parse_manifest(with_args("--audit_policy_file=/p.yaml"), "m"))
    assert planner.summarize(planner.parse_manifest(with_args("--audit_policy_file=/p.yaml"), "m"),
                             planner.parse_manifest(KUBEADM, "m")) == ["- flag --audit_policy_file=/p.yaml"]


@pytest.mark.parametrize(("extra", "message"), [
    # kube-apiserver would read the audit flag as --etcd-prefix's value; a newer release's bool would not.
    (["--etcd-prefix", "--audit-log-path=/x"],
     r"command\[\d+\]: kube-apiserver may not read --audit-log-path=/x as a flag: it follows the bare --etcd-prefix"),
    (["--audit_log_path"], r"command\[\d+\]: --audit_log_path is not followed by its value"),
    (["--audit_log_path", "--v=2"], r"--audit_log_path is not followed by its value .*'--v=2'"),
    (["--"], r"command\[\d+\]: '--' ends kube-apiserver's flags"),
])
def test_command_lines_read_otherwise_by_the_apiserver_are_refused(extra: list[str], message: str) -> None:
    with pytest.raises(planner.ManifestError, match=message):
        planner.parse_manifest(with_args(*extra), "m")


def test_ours_never_become_the_value_of_a_bare_flag_before_them() -> None:
    # `--aaa-new-flag` is unknown to this reader (a newer release's?): bare, it may take the next
    # argument for its value, so ours go before it, not right after.
    pod = planner.parse_manifest(KUBEADM.replace("    - --authorization-mode", "    - --aaa-new-flag\n"
                                                                               "    - --authorization-mode"), "m")
    new = planner.plan(pod, ON)
    at = command(new).index("--aaa-new-flag")
    assert command(new)[at - len(ON.flags()):at] == ON.flags()
    assert all(f.doubt is None for f in flags.parse_container(planner.apiserver_container(new)).audit())
    assert planner.plan(new, ON) == new and planner.plan(new, OFF) == pod


# --- properties ----------------------------------------------------------------------------------------

AUDIT_NAMES = ["--audit-policy-file", "--audit-log-path", "--audit-log-maxage", "--audit-webhook-mode",
               "--audit-log-compress"]


@st.composite
def stale_audit(draw: Any) -> list[str]:
    """Audit flags as a person may write them: any `-` inside the name as `_`, `=` or two arguments."""
    tokens: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(AUDIT_NAMES))
        written = "--" + "".join(draw(st.sampled_from("-_")) if c == "-" else c for c in name[2:])
        value = draw(st.from_regex(r"\A[a-z0-9/.]{1,10}\Z"))
        if name in flags.NO_VALUE:  # a bool never takes the next argument: bare or `=`
            tokens.append(written if draw(st.booleans()) else f"{written}={draw(st.sampled_from(['true', 'false']))}")
        elif draw(st.booleans()):
            tokens.append(f"{written}={value}")
        else:
            tokens += [written, value]
    return tokens


@given(manifests(), stale_audit(), st.integers(0, 10))
def test_after_enable_ours_are_the_audit_flags_in_force_whatever_was_there(
        pod: planner.Pod, stale: list[str], at: int) -> None:
    dirty = insert_between_flags(pod, stale, at)
    new = planner.plan(dirty, ON)
    assert new == planner.plan(pod, ON)
    assert audit_in_force(new) == dict(f.split("=", 1) for f in ON.flags())


@given(manifests(), stale_audit(), st.integers(0, 10))
def test_after_disable_no_audit_flag_is_left_in_any_spelling(pod: planner.Pod, stale: list[str], at: int) -> None:
    new = planner.plan(insert_between_flags(pod, stale, at), OFF)
    assert audit_in_force(new) == {} and planner.audit_flags(new) == []
    assert planner.plan(new, OFF) == new


def test_an_empty_command_gets_no_flags_ours_would_be_the_executable() -> None:
    # No command: the image's entrypoint (kube-apiserver) gets args.
    pod = planner.parse_manifest(KUBEADM.replace("  - command:\n    - kube-apiserver\n", "  - command: []\n    args:\n"),
                                 "m")
    new = planner.plan(pod, ON)
    container = planner.apiserver_container(new)
    assert container["command"] == [] and audit_in_force(new) == dict(f.split("=", 1) for f in ON.flags())

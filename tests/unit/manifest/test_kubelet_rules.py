"""The rewrite is a pod the kubelet runs, and a change the kubelet sees (or no change at all).

Each case here was a way to lose the apiserver or to loop forever: a disable that leaves another
container mounting our removed volume, flags that become the executable under `command: []`,
kubeadm's k8s-certs mount removed because a path pattern took it for ours, and a rewrite the kubelet
cannot see (`readOnly: yes` -> `true`), which never restarts, so the gate fails and rolls back on
every run. tests/kubelet checks the same rules against the kubelet's own code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.drift.compare import manifest_reasons
from components.manifest import node, planner, yamlrt
from components.manifest.desired import AuditState
from tests.unit.manifest.helpers import make_etc, make_request
from tests.unit.manifest.test_node import kubelet

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "manifests"
KUBEADM = (FIXTURES / "kubeadm-v1.31.yaml").read_text()
ON = AuditState(enabled=True, policy_hash="abc123")
OFF = AuditState(enabled=False)
ENABLED = planner.rewrite(KUBEADM, ON, "m")[2]
OUR_POLICY_MOUNT = "    - mountPath: /etc/kubernetes/audit-policy\n      name: audit-policy\n      readOnly: true\n"
OUR_LOG_MOUNT = "    - mountPath: /var/log/audit\n      name: audit-logs\n"


def with_other_container(text: str, kind: str, volume: str) -> str:
    """`text` plus a container of `kind` mounting `volume` (a log shipper beside the apiserver)."""
    item = (f"  - name: shipper\n    image: busybox\n    volumeMounts:\n    - mountPath: /logs\n"
            f"      name: {volume}\n")
    if kind == "containers":
        return text.replace("  hostNetwork: true\n", item + "  hostNetwork: true\n")
    return text.replace("  hostNetwork: true\n", f"  {kind}:\n{item}  hostNetwork: true\n")


# --- pods the kubelet would reject ----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["initContainers", "containers", "ephemeralContainers"])
@pytest.mark.parametrize("volume", ["audit-logs", "audit-policy"])
def test_disable_is_refused_while_another_container_mounts_our_volume(kind: str, volume: str) -> None:
    text = with_other_container(ENABLED, kind, volume)
    index = 1 if kind == "containers" else 0
    line = text.splitlines().index(f"      name: {volume}", text.splitlines().index("  - name: shipper")) + 1
    with pytest.raises(planner.ManifestError) as info:
        planner.rewrite(text, OFF, "m")
    message = str(info.value)
    assert message.startswith(f"m:{line}:7: spec.{kind}[{index}].volumeMounts[0].name: Not found: \"{volume}\""), \
        message
    assert "remove that mount first" in message and "the kubelet would not run the planned pod" in message


def test_enable_is_fine_with_a_shipper_mounting_our_log_volume() -> None:
    text = with_other_container(KUBEADM, "containers", "audit-logs")
    # Before the change the pod names a volume it lacks (the kubelet rejects it); ours fixes that.
    new = planner.rewrite(text, ON, "m")[2]
    assert planner.rewrite(new, ON, "m")[2] == new


@pytest.mark.parametrize("args", [None, [], ["--secure-port=6443"]])
def test_flags_never_become_the_executable_under_an_empty_command(args: list[str] | None) -> None:
    text = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n"
            "  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.31.0\n    command: []\n"
            + ("" if args is None else f"    args: {args}\n".replace("'", "")))
    new_text = planner.rewrite(text, ON, "m")[2]
    container = planner.apiserver_container(yamlrt.kubelet_view(new_text, "m"))
    assert container["command"] == [], "the image's entrypoint still runs"
    assert container["args"] == sorted(ON.flags() + (args or [])), "our flags are its arguments"
    back = planner.rewrite(new_text, OFF, "m")[2]
    assert planner.apiserver_container(yamlrt.kubelet_view(back, "m")).get("args", []) == (args or [])


# --- someone else's mounts --------------------------------------------------------------------------

PKI_LOG = AuditState(enabled=True, log_path="/etc/kubernetes/pki/audit.log", policy_hash="abc123")


@pytest.mark.parametrize("state", [PKI_LOG, AuditState(enabled=False, log_path="/etc/kubernetes/pki/audit.log")])
def test_kubeadm_k8s_certs_is_never_taken_for_an_audit_mount(state: AuditState) -> None:
    pod = planner.parse_manifest(KUBEADM, "m")
    new = planner.plan(pod, state)
    mounts = planner.apiserver_container(new)["volumeMounts"]
    assert {"mountPath": "/etc/kubernetes/pki", "name": "k8s-certs", "readOnly": True} in mounts
    assert any(v["name"] == "k8s-certs" for v in new["spec"]["volumes"])


def test_our_mount_where_kubeadm_mounts_pki_is_refused_naming_that_mount() -> None:
    line = KUBEADM.splitlines().index("    - mountPath: /etc/kubernetes/pki") + 1
    with pytest.raises(planner.ManifestError, match=re.escape(
            f"m:{line}:7: spec.containers[0].volumeMounts[5].mountPath: Invalid value: \"/etc/kubernetes/pki\": "
            "must be unique ('k8s-certs' is mounted there too; kube-audit's audit-logs mount goes there: choose "
            "another log path)")):
        planner.rewrite(KUBEADM, PKI_LOG, "m")


@pytest.mark.parametrize("path", ["/etc/kubernetes/pki/", "/etc/kubernetes/./pki"])
def test_the_same_place_spelled_otherwise_is_refused_too(path: str) -> None:
    # The kubelet compares strings; the runtime would mount both at one directory.
    text = KUBEADM.replace("    - mountPath: /etc/kubernetes/pki\n", f"    - mountPath: {path}\n")
    with pytest.raises(planner.ManifestError, match=r"must be unique \('k8s-certs' is mounted there too"):
        planner.rewrite(text, PKI_LOG, "m")


@given(st.sampled_from(["/var/log/audit/old", "/var/log/audit", "/etc/kubernetes/audit-policy/p.yaml", "/var/log",
                        "/etc/kubernetes/audit-policy/x/y"]), st.sampled_from(["old-audit", "k8s-certs-2"]))
def test_a_mount_of_another_name_near_ours_stays_on_disable(path: str, name: str) -> None:
    text = ENABLED.replace(OUR_LOG_MOUNT, OUR_LOG_MOUNT + f"    - mountPath: {path}\n      name: {name}\n").replace(
        "  volumes:\n", f"  volumes:\n  - hostPath:\n      path: /srv/{name}\n    name: {name}\n")
    off = planner.plan(planner.parse_manifest(text, "m"), OFF)
    assert {"mountPath": path, "name": name} in planner.apiserver_container(off)["volumeMounts"]
    assert {"hostPath": {"path": f"/srv/{name}"}, "name": name} in off["spec"]["volumes"]


# --- changes the kubelet does not see are no changes ------------------------------------------------

SAME_FOR_THE_KUBELET = [
    ("readOnly: yes", lambda t: t.replace(OUR_POLICY_MOUNT, OUR_POLICY_MOUNT.replace("true", "yes"))),
    ("readOnly: On", lambda t: t.replace(OUR_POLICY_MOUNT, OUR_POLICY_MOUNT.replace("true", "On"))),
    ("readOnly: false on the log mount", lambda t: t.replace(OUR_LOG_MOUNT, OUR_LOG_MOUNT + "      readOnly: false\n")),
    ("subPath: ''", lambda t: t.replace(OUR_LOG_MOUNT, OUR_LOG_MOUNT + "      subPath: ''\n")),
    ("mountPropagation: null", lambda t: t.replace(OUR_LOG_MOUNT, OUR_LOG_MOUNT + "      mountPropagation: null\n")),
    ("an unknown field", lambda t: t.replace(OUR_LOG_MOUNT, OUR_LOG_MOUNT + "      readonly: true\n")),
    ("a volume field the decoder drops", lambda t: t.replace(
        "      type: DirectoryOrCreate\n    name: audit-logs\n",
        "      type: DirectoryOrCreate\n    name: audit-logs\n    note: kept\n")),
]


@pytest.mark.parametrize(("what", "edit"), SAME_FOR_THE_KUBELET, ids=[w for w, _ in SAME_FOR_THE_KUBELET])
def test_a_converged_manifest_spelled_otherwise_is_left_as_it_is(what: str, edit: object) -> None:
    text = edit(ENABLED)  # type: ignore[operator]
    assert text != ENABLED, what
    pod, new, new_text = planner.rewrite(text, ON, "m")
    assert new_text == text and new is pod
    assert manifest_reasons(text, ON, "kube-apiserver.yaml") == [], "and it is not drift either"


def test_a_real_difference_is_still_a_change() -> None:
    text = ENABLED.replace(OUR_POLICY_MOUNT, OUR_POLICY_MOUNT.replace("true", "false"))
    new_text = planner.rewrite(text, ON, "m")[2]
    assert new_text == ENABLED
    assert manifest_reasons(text, ON, "kube-apiserver.yaml") == [
        "volumeMount audit-policy in kube-apiserver.yaml differs from what the stack writes"]


def test_node_writes_nothing_and_waits_for_no_restart_on_a_kubelet_no_op(tmp_path: Path) -> None:
    """The fake kubelet here restarts nothing, as the real one would for this file: a write would
    fail the gate and roll back, on every run."""
    etc = make_etc(tmp_path / "etc")
    request = make_request(etc, audit_write_timeout=0)
    manifest = etc / "manifests" / "kube-apiserver.yaml"
    converged = planner.rewrite(manifest.read_text(), request.state, str(manifest))[2]
    policy_mount = [line for line in converged.splitlines(keepends=True) if "readOnly: true" in line][-1]
    manifest.write_text(converged.replace(policy_mount, policy_mount.replace("true", "yes")))
    before = manifest.read_bytes()
    report = node.converge(request, kubelet(etc, restarts=False).gate())
    assert report["changed"] is False
    assert manifest.read_bytes() == before and not (etc / "tmp").exists(), "no write, no backup"

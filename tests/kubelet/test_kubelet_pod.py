"""The planner's idea of the kubelet, against the kubelet's own code (k8s.io/kubernetes v1.37.2, main.go):

1. every rewrite is a pod the kubelet runs (its ValidatePodCreate passes);
2. podcheck refuses exactly the planned pods the kubelet rejects, on the rules our change can break;
3. a rewrite is skipped exactly when the kubelet would hash both files into the same pod UID (so
   nothing restarts), and a rewrite that is written always lands on the converged pod's UID.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.manifest import planner, podcheck, yamlrt
from components.manifest.desired import AuditState

from .conftest import Decode

pytestmark = pytest.mark.kubelet

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "manifests"
KUBEADM = (FIXTURES / "kubeadm-v1.31.yaml").read_text()
ON = AuditState(enabled=True, policy_hash="abc123")
OFF = AuditState(enabled=False)
ENABLED = planner.rewrite(KUBEADM, ON, "m")[2]
STATES = [ON, OFF, AuditState(enabled=True, log_compress=True, log_mode="batch", policy_hash="1e5"),
          AuditState(enabled=True, log_path="/var/log/on/audit.log", policy_dir="/etc/audit")]
EMPTY_COMMAND = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\nspec:\n"
                 "  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.31.0\n"
                 "    command: []\n")


def kubelet_error(answer: dict[str, object]) -> str:
    kubelet = answer.get("kubelet")
    assert isinstance(kubelet, dict), answer
    return str(kubelet.get("error") or "")


@pytest.mark.parametrize("name", [*sorted(p.name for p in FIXTURES.glob("*.yaml")), "empty-command"])
def test_every_rewrite_is_a_pod_the_kubelet_runs(kubelet_decode: Decode, name: str) -> None:
    text = EMPTY_COMMAND if name == "empty-command" else (FIXTURES / name).read_text()
    texts = [text] + [planner.rewrite(text, state, name)[2] for state in STATES]
    answers = kubelet_decode(texts)
    for answer in answers:
        assert kubelet_error(answer) == "", answer

    def executable(answer: dict[str, object]) -> object:
        container = next(c for c in answer["pod"]["spec"]["containers"]  # type: ignore[index]
                         if c["name"] == "kube-apiserver")
        return (container.get("command") or [None])[0]

    assert {executable(a) for a in answers} == {executable(answers[0])}, "the same program runs"


def _with_shipper(text: str, kind: str, volume: str) -> str:
    item = f"  - name: shipper\n    image: busybox\n    volumeMounts:\n    - mountPath: /logs\n      name: {volume}\n"
    if kind == "containers":
        return text.replace("  hostNetwork: true\n", item + "  hostNetwork: true\n")
    return text.replace("  hostNetwork: true\n", f"  {kind}:\n{item}  hostNetwork: true\n")


def _planned(text: str, state: AuditState) -> str:
    """The planned pod as text, without rewrite's own refusal: what would be written without podcheck."""
    return planner.render(planner.plan(planner.parse_manifest(text, "m"), state), like=text)


PLANNED: list[tuple[str, Callable[[], str]]] = [
    ("disable, an init container mounts audit-logs", lambda: _planned(_with_shipper(ENABLED, "initContainers",
                                                                                    "audit-logs"), OFF)),
    ("disable, a sidecar mounts audit-policy", lambda: _planned(_with_shipper(ENABLED, "containers", "audit-policy"),
                                                                OFF)),
    ("enable, the log dir where k8s-certs is", lambda: _planned(KUBEADM, AuditState(
        enabled=True, log_path="/etc/kubernetes/pki/audit.log"))),
    ("enable, the policy dir where ca-certs is", lambda: _planned(KUBEADM, AuditState(
        enabled=True, policy_dir="/etc/ssl/certs"))),
    ("two volumes of one name", lambda: _planned(KUBEADM.replace("    name: ca-certs\n  - hostPath:\n",
                                                                 "    name: ca-certs\n  - emptyDir: {}\n"
                                                                 "    name: ca-certs\n  - hostPath:\n"), ON)),
    ("a volume name that is no DNS label", lambda: _planned(KUBEADM.replace("name: ca-certs", "name: CA_certs"),
                                                            ON)),
    ("enable, a sidecar mounts audit-logs", lambda: _planned(_with_shipper(KUBEADM, "containers", "audit-logs"), ON)),
    ("enable on kubeadm's manifest", lambda: _planned(KUBEADM, ON)),
    ("disable on kubeadm's manifest", lambda: _planned(ENABLED, OFF)),
]


def test_podcheck_refuses_exactly_what_the_kubelet_rejects(kubelet_decode: Decode) -> None:
    texts = [make() for _, make in PLANNED]
    verdicts = {}
    for (what, _), text, answer in zip(PLANNED, texts, kubelet_decode(texts), strict=True):
        view = yamlrt.kubelet_view(text, "m")
        ours = [p.field for p in podcheck.problems(view, view, 0)]
        verdicts[what] = (bool(ours), bool(kubelet_error(answer)))
        if ours:  # the same field, in the kubelet's words
            assert ours[0] in kubelet_error(answer), (what, ours, kubelet_error(answer))
    assert {w: v for w, v in verdicts.items() if v[0] != v[1]} == {}, "what: (podcheck, kubelet)"
    assert sum(1 for ours, _ in verdicts.values() if ours) == 6, "the table has both kinds"


OUR_POLICY_MOUNT = "    - mountPath: /etc/kubernetes/audit-policy\n      name: audit-policy\n      readOnly: true\n"
OUR_LOG_MOUNT = "    - mountPath: /var/log/audit\n      name: audit-logs\n"
OUR_LOG_NAME = "      name: audit-logs\n"
OUR_LOG_VOLUME = "      type: DirectoryOrCreate\n    name: audit-logs\n"
# One edit at most per group (edits of a group touch the same lines). In each group, the first ones
# spell the converged pod otherwise (the same pod for the kubelet), the rest change it.
EDITS: dict[str, dict[str, tuple[str, str]]] = {
    "policy mount": {
        "readOnly yes": (OUR_POLICY_MOUNT, OUR_POLICY_MOUNT.replace("true", "yes")),
        "readOnly On": (OUR_POLICY_MOUNT, OUR_POLICY_MOUNT.replace("true", "On")),
        "policy mount writable": (OUR_POLICY_MOUNT, OUR_POLICY_MOUNT.replace("true", "false")),
    },
    "log mount": {
        "readOnly false": (OUR_LOG_MOUNT, OUR_LOG_MOUNT + "      readOnly: false\n"),
        "subPath empty": (OUR_LOG_MOUNT, OUR_LOG_MOUNT + "      subPath: ''\n"),
        "mountPropagation null": (OUR_LOG_MOUNT, OUR_LOG_MOUNT + "      mountPropagation: null\n"),
        "unknown mount field": (OUR_LOG_MOUNT, OUR_LOG_MOUNT + "      readonly: true\n"),
        "recursiveReadOnly set": (OUR_LOG_MOUNT, OUR_LOG_MOUNT + "      recursiveReadOnly: Disabled\n"),
        "mountPropagation None": (OUR_LOG_MOUNT, OUR_LOG_MOUNT + "      mountPropagation: None\n"),
    },
    "log mount name": {"quoted name": (OUR_LOG_NAME, OUR_LOG_NAME.replace("audit-logs", '"audit-logs"'))},
    "log volume": {
        "unknown volume field": (OUR_LOG_VOLUME, OUR_LOG_VOLUME + "    note: kept\n"),
        "log volume type Directory": (OUR_LOG_VOLUME, OUR_LOG_VOLUME.replace("DirectoryOrCreate", "Directory")),
    },
    "flags": {"maxage 31": ("--audit-log-maxage=30", "--audit-log-maxage=31")},
    "annotation": {"hash changed": ("policy-hash: abc123", "policy-hash: abc124")},
}


@st.composite
def edited(draw: st.DrawFn) -> tuple[list[str], str]:
    text, names = ENABLED, []
    for group in EDITS.values():
        name = draw(st.sampled_from([None, *group]))
        if name is not None:
            old, new = group[name]
            assert text.count(old) == 1, name
            text, names = text.replace(old, new), [*names, name]
    return names, text


@settings(max_examples=40, deadline=None)
@given(edited())
def test_a_rewrite_is_skipped_exactly_when_the_kubelet_sees_the_same_pod(kubelet_decode: Decode,
                                                                         case: tuple[list[str], str]) -> None:
    edits, text = case
    rewritten = planner.rewrite(text, ON, "m")[2]
    converged, variant, written = kubelet_decode([ENABLED, text, rewritten])
    for answer in (converged, variant, written):
        assert kubelet_error(answer) == "", answer
    same = variant["kubelet"]["hash"] == converged["kubelet"]["hash"]  # type: ignore[index]
    assert (rewritten == text) is same, (edits, same)
    assert written["kubelet"]["hash"] == converged["kubelet"]["hash"], "what is written is the converged pod"  # type: ignore[index]

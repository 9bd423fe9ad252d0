"""Property tests: the planner's laws over generated manifests (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from components.manifest import planner, podcheck
from components.manifest.desired import AuditState
from tests.unit.manifest.helpers import insert_between_flags

ON = AuditState(enabled=True, policy_hash="0" * 64)
OFF = AuditState(enabled=False)

flag_names = st.sampled_from([
    "--advertise-address", "--allow-privileged", "--authorization-mode", "--etcd-servers", "--secure-port",
    "--tls-cert-file", "--v", "--anonymous-auth", "--service-cluster-ip-range", "--feature-gates", "--a",
])
values = st.text(alphabet="abcdefghij0123456789./:,=", min_size=1, max_size=12)


@st.composite
def flags(draw: Any, least: int = 0) -> list[str]:
    tokens: list[str] = []
    for _ in range(draw(st.integers(least, 8))):
        name = draw(flag_names)
        form = draw(st.sampled_from(["eq", "two", "bare"]))
        if form == "eq":
            tokens.append(f"{name}={draw(values)}")
        elif form == "two":
            tokens += [name, draw(values)]
        else:
            tokens.append(name)
    return tokens


mount_names = st.sampled_from(["k8s-certs", "ca-certs", "etc-pki", "extra", "usr-share"])
# Someone else's mounts may sit near ours (inside our dirs, around them) or where kubeadm puts its own;
# none of them is ours: only our names are.
paths = st.sampled_from(["/etc/kubernetes/pki", "/etc/ssl/certs", "/etc/pki", "/srv/x", "/var/log/other",
                         "/var/log/audit/old", "/etc/kubernetes/audit-policy/old.yaml", "/etc/kubernetes", "/var/log"])


@st.composite
def manifests(draw: Any) -> planner.Pod:
    container: dict[str, Any] = {"name": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:v1.31.0"}
    where = draw(st.sampled_from(["command", "args", "both", "empty-command", "no-command"]))
    if where != "no-command":
        container["command"] = [] if where == "empty-command" else ["kube-apiserver"] + (
            draw(flags()) if where in ("command", "both") else [])
    if where in ("args", "both"):
        container["args"] = draw(flags())
    elif where in ("empty-command", "no-command") and draw(st.booleans()):
        # Not `args: []` here: args we fill under an empty command are removed whole on disable.
        container["args"] = draw(flags(least=1))
    names = draw(st.lists(mount_names, unique=True, max_size=4))
    # The kubelet rejects two mounts at one path: a valid pod has each path once.
    mount_paths = draw(st.lists(paths, unique=True, min_size=len(names), max_size=len(names)))
    if names:
        container["volumeMounts"] = [{"mountPath": p, "name": n} for n, p in zip(names, mount_paths, strict=True)]
    spec: dict[str, Any] = {"containers": [container], "hostNetwork": True}
    if draw(st.booleans()):
        spec["containers"].append({"name": "sidecar", "image": "busybox", "command": ["sleep", "--audit-x=1"]})
        if names and draw(st.booleans()):
            spec["containers"][-1]["volumeMounts"] = [{"mountPath": "/shared", "name": draw(st.sampled_from(names))}]
    if names and draw(st.booleans()):
        spec["initContainers"] = [{"name": "init", "image": "busybox",
                                   "volumeMounts": [{"mountPath": "/x", "name": draw(st.sampled_from(names))}]}]
    if names:
        spec["volumes"] = [{"hostPath": {"path": draw(paths), "type": "DirectoryOrCreate"}, "name": n} for n in names]
    metadata: dict[str, Any] = {"name": "kube-apiserver", "namespace": "kube-system"}
    if draw(st.booleans()):
        metadata["annotations"] = {"kubeadm.kubernetes.io/x": draw(values)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


@st.composite
def audit_states(draw: Any) -> AuditState:
    return AuditState(
        enabled=True,
        max_age=draw(st.integers(0, 400)),
        max_backup=draw(st.integers(0, 100)),
        max_size=draw(st.integers(0, 1000)),
        log_format=draw(st.sampled_from([None, "json", "legacy"])),
        log_mode=draw(st.sampled_from([None, "blocking", "batch"])),
        log_compress=draw(st.sampled_from([None, True, False])),
        policy_hash=draw(st.sampled_from([None, "a" * 64, "b" * 64])),
    )


@given(manifests(), audit_states())
def test_enable_is_idempotent(pod: planner.Pod, state: AuditState) -> None:
    once = planner.plan(pod, state)
    assert planner.plan(once, state) == once


@given(manifests(), audit_states())
def test_disable_after_enable_restores_the_original(pod: planner.Pod, state: AuditState) -> None:
    assert planner.plan(planner.plan(pod, state), OFF) == pod


@given(manifests(), audit_states(), audit_states())
def test_changing_settings_converges_to_the_same_manifest(pod: planner.Pod, a: AuditState, b: AuditState) -> None:
    assert planner.plan(planner.plan(pod, a), b) == planner.plan(pod, b)


@given(manifests(), audit_states())
def test_non_audit_content_is_never_touched(pod: planner.Pod, state: AuditState) -> None:
    new = planner.plan(pod, state)
    old_c, new_c = planner.apiserver_container(pod), planner.apiserver_container(new)
    for key in set(old_c) | set(new_c):
        if key not in ("command", "args", "volumeMounts"):
            assert old_c.get(key) == new_c.get(key)
    for key in ("command", "args"):
        assert [t for t in new_c.get(key) or [] if not t.startswith("--audit-")] == (old_c.get(key) or [])
    assert [m for m in new_c.get("volumeMounts", []) if m["name"] not in ("audit-logs", "audit-policy")] == \
        old_c.get("volumeMounts", []), "someone else's mounts stay, wherever they point"
    assert [v for v in new["spec"].get("volumes", []) if v["name"] not in ("audit-logs", "audit-policy")] == \
        pod["spec"].get("volumes", []), "and so do their volumes"
    assert new["spec"]["containers"][1:] == pod["spec"]["containers"][1:], "other containers untouched"
    assert {k: v for k, v in new["spec"].items() if k not in ("containers", "volumes")} == \
        {k: v for k, v in pod["spec"].items() if k not in ("containers", "volumes")}


@given(manifests(), audit_states())
def test_the_kubelet_accepts_every_planned_pod_and_runs_the_same_program(pod: planner.Pod,
                                                                         state: AuditState) -> None:
    for target in (state, OFF):
        new = planner.plan(pod, target)
        assert podcheck.problems(pod, new, 0) == []
        old_command, new_command = pod["spec"]["containers"][0].get("command"), new["spec"]["containers"][0].get(
            "command")
        assert (new_command or [None])[0] == (old_command or [None])[0], "an empty command stays empty"


@given(manifests(), st.lists(st.sampled_from([
    "--audit-log-maxage=7", "--audit-log-path=/tmp/a.log", "--audit-webhook-mode=batch", "--audit-log-compress",
    "--audit-policy-file=/x.yaml"]), min_size=1, max_size=4), st.integers(0, 10))
def test_stale_audit_flags_never_survive_or_duplicate(pod: planner.Pod, stale: list[str], at: int) -> None:
    dirty = insert_between_flags(pod, stale, at)
    assert planner.plan(dirty, ON) == planner.plan(pod, ON)
    assert planner.audit_flags(planner.plan(dirty, OFF)) == []

"""Flags as the real kube-apiserver reads them (issue 22): `--audit_policy_file` IS `--audit-policy-file`.

Own stack (`e2e-flags`, insight-agent and kubeadm persistence off). Master 1 starts from a manifest
that names an old policy and an old log with underscores (`--audit_policy_file=...`,
`--audit_log_path=...`), which kube-apiserver obeys. Then:

1. `up` enables audit: the running apiserver loads the stack's policy, shown by an event only that
   policy writes (a configmap create at RequestResponse, with its body; the old policy logs it at
   Metadata, to another file). Before the fix our flags went before the underscore ones, and the
   last one wins: the old policy stayed in force.
2. destroy keeps a policy file that a manifest still names, read as the kubelet and kube-apiserver
   read it: with underscores (master 1), in UTF-16 (master 2), through a symlinked hostPath dir
   (master 3). Before the fix each was removed, and that apiserver would crash-loop at its next start.

Pass or fail, the masters are put back as found: the test's extra files go, each manifest is
restored byte for byte, and a policy file that was not there before is removed (audit logs stay).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.manifest import flags
from components.manifest.desired import DEFAULT_LOG_PATH
from lab.config import Host

from .harness import E2E, POLICY_IN_HOST
from .kubeadm_lab import restore_manifests, snapshot_manifests
from .stacks import Stack, reasons, wait_running

pytestmark = pytest.mark.e2e

STACK = "e2e-flags"
NS = "kalab-e2e-flags"
OURS = "/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml"  # the stack's default policy path
OLD_DIR = "/etc/kubernetes/old-audit"  # on master 1, mounted at the same path
OLD_POLICY = f"{OLD_DIR}/old-policy.yaml"
OLD_LOG_DIR = "/var/log/old-audit"  # inside the container; on the host /var/log/kubernetes/old-audit
POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: RequestResponse  # only this policy logs configmaps in {NS} with their bodies
    namespaces: ["{NS}"]
    resources:
      - group: ""
        resources: ["configmaps"]
  - level: Metadata
"""
OLD = f"""apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: Metadata  # the policy master 1 ran before: no bodies for anything
    namespaces: ["{NS}"]
  - level: None
"""
CANARY = "audit-canary.yaml"  # another static pod in the manifests dir (the lab's kubelet runs only the apiserver)


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.e2e")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def audit_in_force(argv_or_container: Any) -> dict[str, str | None]:
    line = (flags.parse_container(argv_or_container) if isinstance(argv_or_container, dict)
            else flags.parse_argv(argv_or_container))
    return {name: f.value for name, f in line.in_force().items() if f.is_audit}


def underscore_tokens(container: dict) -> list[str]:
    return [f.text for f in flags.parse_container(container).audit() if "_" in f.text.split("=", 1)[0]]


def start_from_old_policy(e2e: E2E, h: Host) -> None:
    """Master 1 as someone left it: an old policy and log named with underscores, mounted, running."""
    old_dir = h.etc_kubernetes / OLD_DIR.removeprefix("/etc/kubernetes/")
    old_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(old_dir / "old-policy.yaml", OLD.encode())
    pod = yaml.safe_load(h.manifest.read_text())
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "kube-apiserver")
    container["command"] += [f"--audit_log_path={OLD_LOG_DIR}/audit.log", f"--audit_policy_file={OLD_POLICY}"]
    container.setdefault("volumeMounts", []).extend([
        {"name": "old-audit", "mountPath": OLD_DIR, "readOnly": True},
        {"name": "old-audit-log", "mountPath": OLD_LOG_DIR}])
    pod["spec"].setdefault("volumes", []).extend([
        {"name": "old-audit", "hostPath": {"path": OLD_DIR, "type": "DirectoryOrCreate"}},
        {"name": "old-audit-log", "hostPath": {"path": "/var/log/kubernetes/old-audit", "type": "DirectoryOrCreate"}}])
    before = e2e.status(h)["starts"]
    write_atomically(h.manifest, yaml.safe_dump(pod, sort_keys=True).encode())
    wait_running(e2e, h, before + 1)
    running = audit_in_force(e2e.running_cmdline(h))
    assert running.get("--audit-policy-file") == OLD_POLICY, running


def canary(flag: str, host_dir: str) -> str:
    """A second static pod naming the stack's policy file through a hostPath mount of `host_dir`."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "audit-canary", "namespace": "kube-system"},
        "spec": {"containers": [{"name": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:v1.37.2",
                                 "command": ["kube-apiserver", f"{flag}={OURS}"],
                                 "volumeMounts": [{"name": "policy", "mountPath": "/etc/kubernetes/audit-policy",
                                                   "readOnly": True}]}],
                 "volumes": [{"name": "policy", "hostPath": {"path": host_dir, "type": "Directory"}}]}})


# (how the canary names the policy, how its file is written) per master: what the guard missed before.
CANARIES = [
    ("underscores", canary("--audit_policy_file", "/etc/kubernetes/audit-policy").encode()),
    ("UTF-16", b"\xff\xfe" + canary("--audit-policy-file", "/etc/kubernetes/audit-policy").encode("utf-16-le")),
    ("a symlinked hostPath dir", canary("--audit-policy-file", "/etc/kubernetes/policy-link").encode()),
]


def cleanup(e2e: E2E) -> None:
    for h in e2e.hosts:
        with contextlib.suppress(FileNotFoundError):
            (h.etc_kubernetes / "manifests" / CANARY).unlink()
        with contextlib.suppress(FileNotFoundError):
            (h.etc_kubernetes / "policy-link").unlink()


@pytest.fixture(scope="module")
def stack(e2e: E2E) -> Iterator[Stack]:
    found = snapshot_manifests(e2e)
    custom = e2e.lab.state / "e2e-flags-policy.yaml"
    custom.write_text(POLICY)
    s = Stack(e2e, STACK)
    try:
        start_from_old_policy(e2e, e2e.hosts[0])
        s.create({"kube-audit:enabled": "true", "kube-audit:policy": str(custom),
                  "kube-audit:insightAgent": {"enabled": False}, "kube-audit:kubeadm": {"persist": False}})
        yield s
    finally:
        cleanup(e2e)
        s.remove()  # audit off on each master; the policy files go (no canary names them now)
        restore_manifests(e2e, found)
        for h in e2e.hosts:
            policy = h.etc_kubernetes / POLICY_IN_HOST
            if found[h.name]["policy"] is None and policy.exists():
                policy.unlink()
        shutil.rmtree(e2e.hosts[0].etc_kubernetes / OLD_DIR.removeprefix("/etc/kubernetes/"), ignore_errors=True)


class TestFlagSpellings:
    incremental = True

    def test_enable_replaces_the_underscore_flags_and_the_apiserver_loads_our_policy(self, e2e: E2E, stack: Stack):
        m1 = e2e.hosts[0]
        stack.run("up", "--yes", "--skip-preview")
        container = e2e.container(m1)
        assert underscore_tokens(container) == [], container["command"]
        assert audit_in_force(container)["--audit-policy-file"] == OURS
        running = audit_in_force(e2e.running_cmdline(m1))
        assert running["--audit-policy-file"] == OURS and running["--audit-log-path"] == DEFAULT_LOG_PATH, running
        e2e.ensure_namespace(NS, m1)
        mark = e2e.log_mark(m1)
        name = f"flags-{time.monotonic_ns()}"
        e2e.client(m1).post(f"/api/v1/namespaces/{NS}/configmaps",
                            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                             "data": {"policy": "ours"}})
        ev = e2e.wait_event(m1, mark, lambda ev: ev.get("verb") == "create"
                            and (ev.get("objectRef") or {}).get("name") == name, f"the create of {name}")
        assert ev["level"] == "RequestResponse" and ev["requestObject"]["data"] == {"policy": "ours"}, ev
        r = stack.run("preview", "--diff", "--expect-no-changes")
        assert reasons(r.stdout) == [], r.stdout

    def test_destroy_keeps_a_policy_file_a_manifest_still_names(self, e2e: E2E, stack: Stack):
        cases = list(zip(e2e.hosts, CANARIES, strict=False))  # as many of the three as there are masters
        for h, (how, data) in cases:
            if how == "a symlinked hostPath dir":
                (h.etc_kubernetes / "policy-link").symlink_to("audit-policy", target_is_directory=True)
            write_atomically(h.etc_kubernetes / "manifests" / CANARY, data)
        stack.run("destroy", "--yes", "--skip-preview")
        for h, (how, _) in cases:
            assert (h.etc_kubernetes / POLICY_IN_HOST).is_file(), f"{h.name}: policy removed though named ({how})"
            assert audit_in_force(e2e.container(h)) == {}, f"{h.name}: audit still on in the manifest"
            assert audit_in_force(e2e.running_cmdline(h)) == {}, f"{h.name}: audit still on in the apiserver"

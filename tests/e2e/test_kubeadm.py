"""kubeadm persistence with the real kubeadm: audit logging survives a manifest regenerated from kubeadm-config.

Own stack (`e2e-kubeadm`, insight-agent left alone). A realistic kube-system/kubeadm-config is stored
(v1beta4, then a v1beta3 variant), `up` enables audit and records it there, then master 1's manifest
is regenerated the way `kubeadm upgrade` does. At the end the stack is destroyed (audit off, the
ConfigMap's audit fields removed), the ConfigMap deleted and any regenerated manifest put back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import yaml

from components.manifest.desired import HASH_ANNOTATION

from .harness import E2E
from .kubeadm_lab import (
    as_v1beta4,
    cluster_configuration,
    have_kubeadm,
    regenerate,
    remove,
    restore_manifests,
    snapshot_manifests,
    store,
    stored,
)
from .stacks import Stack, drift_blocks, reasons, starts, wait_running

pytestmark = pytest.mark.e2e

STACK = "e2e-kubeadm"
OURS = {"audit-logs", "audit-policy"}


@pytest.fixture(scope="module")
def stack(e2e: E2E) -> Iterator[Stack]:
    if have_kubeadm() is None:
        pytest.skip("no kubeadm binary in the toolchain (scripts/toolchain.sh builds it)")
    found = snapshot_manifests(e2e)
    s = Stack(e2e, STACK)
    s.create({"kube-audit:enabled": "true", "kube-audit:policy": "dce-default",
              "kube-audit:insightAgent": {"enabled": False}})
    try:
        yield s
    finally:
        s.remove()
        remove(e2e)
        restore_manifests(e2e, found)


def regenerate_master_1(e2e: E2E) -> bool:
    """Regenerate; True when kubeadm wrote a different pod (then the apiserver restarted and is ready)."""
    m1 = e2e.hosts[0]
    before, pod = e2e.status(m1)["starts"], e2e.manifest(m1)
    text = stored(e2e)
    assert text is not None
    r = regenerate(e2e, m1, text)
    assert r.returncode == 0, r.stdout + r.stderr
    if e2e.manifest(m1) == pod:
        return False  # same pod: the kubelet (and the lab's stand-in) restarts nothing
    wait_running(e2e, m1, before + 1)
    return True


def audits(e2e: E2E) -> bool:
    """Does master 1 write an audit event for a request made now?"""
    m1 = e2e.hosts[0]
    mark = e2e.log_mark(m1)
    name = f"kubeadm-probe-{time.monotonic_ns()}"
    e2e.client(m1).post("/api/v1/namespaces/default/configmaps",
                        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
    try:
        e2e.wait_event(m1, mark, lambda ev: (ev.get("objectRef") or {}).get("name") == name, name, timeout=10)
        return True
    except AssertionError:
        return False


class TestKubeadmPersistence:
    incremental = True

    def test_preview_shows_the_kubeadm_config_fields_and_up_records_them(self, e2e: E2E, stack: Stack):
        original = cluster_configuration(e2e, "kubeadm.k8s.io/v1beta4")
        store(e2e, original)
        r = stack.run("preview", "--diff")
        assert "KubeadmConfig" in r.stdout and "apiServerAudit" in r.stdout, r.stdout
        e2e.m["kubeadm_preview_enable"] = r.stdout[r.stdout.find("KubeadmConfig") - 200:][:2500]
        stack.run("up", "--yes", "--skip-preview")
        text = stored(e2e)
        assert text is not None and text.startswith("# uploaded by kubeadm init"), "comments kept"
        api = yaml.safe_load(text)["apiServer"]
        names = [a["name"] for a in api["extraArgs"]]
        assert "audit-policy-file" in names and "audit-log-path" in names
        assert {v["name"] for v in api["extraVolumes"]} == OURS
        outputs = json.loads(stack.run("stack", "output", "--json").stdout)
        assert outputs["kubeadm"] == "audit flags and mounts recorded in kube-system/kubeadm-config"
        stack.run("preview", "--expect-no-changes")

    def test_regenerated_master_keeps_auditing_and_shows_no_drift(self, e2e: E2E, stack: Stack):
        m1 = e2e.hosts[0]
        assert regenerate_master_1(e2e), "kubeadm wrote a new manifest"
        cmdline = e2e.running_cmdline(m1)
        assert any(a.startswith("--audit-policy-file=") for a in cmdline), cmdline
        assert audits(e2e), "the regenerated apiserver writes audit events"
        # kubeadm has no field for the policy-hash annotation, so the manifest lacks it; the reader's
        # facts (the stack's policy on disk, written before this apiserver started from this manifest)
        # show the running apiserver loaded the stack's policy: no drift (README "kubeadm").
        assert HASH_ANNOTATION not in (e2e.manifest(m1)["metadata"].get("annotations") or {})
        r, _ = stack.timed_preview("--expect-no-changes")
        assert reasons(r.stdout) == [], r.stdout
        e2e.m["kubeadm_regenerated_preview"] = r.stdout[-2500:]
        r = stack.run("preview", "--diff", "--refresh", "--expect-no-changes")
        assert reasons(r.stdout) == [], r.stdout
        before = starts(e2e)
        r = stack.run("up", "--yes", "--skip-preview")
        assert starts(e2e) == before, "up restarted an apiserver"
        assert HASH_ANNOTATION not in (e2e.manifest(m1)["metadata"].get("annotations") or {}), "up changed nothing"
        stack.run("preview", "--expect-no-changes")

    def test_policy_written_after_the_regenerated_apiserver_started_is_drift(self, e2e: E2E, stack: Stack):
        # The same bytes written again: the file is the stack's policy, but the running apiserver read
        # it before that write, so nothing proves which policy it loaded; `up` restarts it (annotation).
        m1, m2, m3 = e2e.hosts[:3]
        policy = e2e.policy_on_host(m1)
        policy.write_bytes(policy.read_bytes())
        r, _ = stack.timed_preview()
        assert reasons(r.stdout) == [f"{m1.name}: annotation {HASH_ANNOTATION} missing from kube-apiserver.yaml"], \
            r.stdout
        e2e.m["kubeadm_policy_rewritten_preview"] = drift_blocks(r.stdout)
        before = starts(e2e)
        stack.run("up", "--yes", "--skip-preview")
        after = starts(e2e)
        assert {n: after[n] - before[n] for n in after} == {m1.name: 1, m2.name: 0, m3.name: 0}, (before, after)
        assert e2e.manifest(m1)["metadata"]["annotations"][HASH_ANNOTATION]
        stack.run("preview", "--expect-no-changes")

    def test_disable_removes_what_was_added_and_regeneration_has_no_audit(self, e2e: E2E, stack: Stack):
        m1 = e2e.hosts[0]
        stack.run("config", "set", "kube-audit:enabled", "false")
        r = stack.run("preview", "--diff")
        e2e.m["kubeadm_preview_disable"] = r.stdout[r.stdout.find("KubeadmConfig") - 200:][:2500]
        stack.run("up", "--yes", "--skip-preview")
        assert stored(e2e) == cluster_configuration(e2e, "kubeadm.k8s.io/v1beta4"), "exactly what was added removed"
        # Turning audit off leaves exactly what kubeadm itself generates: regenerating changes nothing.
        e2e.m["kubeadm_regenerate_after_disable_changed_the_pod"] = regenerate_master_1(e2e)
        pod = e2e.manifest(m1)
        assert e2e.audit_flags(m1) == []
        assert not OURS & {v["name"] for v in pod["spec"].get("volumes") or []}
        assert not any(a.startswith("--audit-") for a in e2e.running_cmdline(m1))
        stack.run("preview", "--expect-no-changes")

    def test_v1beta3_variant_is_recorded_as_a_map(self, e2e: E2E, stack: Stack):
        original = cluster_configuration(e2e, "kubeadm.k8s.io/v1beta3")
        store(e2e, original)
        stack.run("config", "set", "kube-audit:enabled", "true")
        stack.run("up", "--yes", "--skip-preview")
        text = stored(e2e)
        assert text is not None
        args = yaml.safe_load(text)["apiServer"]["extraArgs"]
        assert isinstance(args, dict) and args["audit-log-maxage"] == "30"
        m1 = e2e.hosts[0]
        before = e2e.status(m1)["starts"]
        r = regenerate(e2e, m1, text)
        e2e.m["kubeadm_v1beta3_regenerate"] = {"rc": r.returncode, "out": (r.stdout + r.stderr)[-800:]}
        if r.returncode == 0:
            wait_running(e2e, m1, before + 1)
        else:
            # kubeadm 1.37 no longer reads v1beta3 (a v1beta3 kubeadm-config belongs to a <= 1.36 cluster,
            # whose kubeadm regenerates from it); it must refuse for that reason and nothing else.
            assert "old API spec" in r.stdout + r.stderr, r.stdout + r.stderr
            assert e2e.status(m1)["starts"] == before, "a refused regeneration touched nothing"
            # As far as this kubeadm can show it: the same configuration converted to v1beta4 the way
            # kubeadm converts it (the map becomes {name, value} items), so the pod carries exactly
            # the args and volumes recorded in the v1beta3 map.
            r = regenerate(e2e, m1, as_v1beta4(text))
            assert r.returncode == 0, r.stdout + r.stderr
            wait_running(e2e, m1, before + 1)
        assert any(a.startswith("--audit-policy-file=") for a in e2e.running_cmdline(m1))
        assert audits(e2e)
        r, _ = stack.timed_preview("--expect-no-changes")
        assert reasons(r.stdout) == [], r.stdout
        mid = starts(e2e)
        stack.run("up", "--yes", "--skip-preview")
        assert starts(e2e) == mid, "up restarted an apiserver"
        stack.run("config", "set", "kube-audit:enabled", "false")
        stack.run("up", "--yes", "--skip-preview")
        assert stored(e2e) == original

"""Drift on real masters: hand edits show in a plain preview, `up` repairs only the drifted master.

Own stack (`e2e-drift`, config beside the lab's in its state dir, insight-agent left alone), so the
lifecycle module's stack is untouched. It enables audit, drifts one master at a time, and destroys
its stack at the end, which turns audit off on every master again (the logs stay, as always).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import E2E
from .kubeadm_lab import (
    cluster_configuration,
    have_kubeadm,
    regenerate,
    remove,
    restore_manifests,
    snapshot_manifests,
    store,
)
from .stacks import Stack, drift_blocks, reasons, starts, wait_running

pytestmark = pytest.mark.e2e

STACK = "e2e-drift"


def hand_edit(path: Path, drop_containing: str) -> None:
    """What an operator's editor does: the file without the lines that contain `drop_containing`."""
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if drop_containing not in line]
    assert len(kept) == len(lines) - 1, f"expected one line with {drop_containing!r} in {path}"
    tmp = path.with_name("." + path.name + ".edit")
    tmp.write_text("".join(kept))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


@pytest.fixture(scope="module")
def stack(e2e: E2E) -> Iterator[Stack]:
    found = snapshot_manifests(e2e)
    s = Stack(e2e, STACK)
    s.create({"kube-audit:enabled": "true", "kube-audit:policy": "dce-default",
              "kube-audit:insightAgent": {"enabled": False}, "kube-audit:kubeadm": {"persist": False}})
    try:
        yield s
    finally:
        # Leave the masters as found: destroy turns audit off on each (one at a time) and removes the
        # policy file (the audit logs stay); a manifest kubeadm regenerated goes back to what it was.
        s.remove()
        restore_manifests(e2e, found)


class TestDrift:
    incremental = True

    def test_enable_then_preview_has_no_changes_and_reading_cost_is_measured(self, e2e: E2E, stack: Stack):
        stack.run("up", "--yes", "--skip-preview")
        for h in e2e.hosts:
            assert any(f.startswith("--audit-policy-file=") for f in e2e.audit_flags(h)), h.name
            wait_running(e2e, h, 1)
        r, with_reading = stack.timed_preview("--expect-no-changes")
        assert reasons(r.stdout) == [], r.stdout
        stack.run("config", "set", "--path", "kube-audit:drift.read", "false")
        r, without = stack.timed_preview("--expect-no-changes")
        stack.run("config", "set", "--path", "kube-audit:drift.read", "true")
        e2e.m["drift_preview_seconds"] = {"with_reading": round(with_reading, 2), "without_reading": round(without, 2),
                                          "ratio": round(with_reading / without, 2)}

    def test_dropped_flag_on_master_2_is_named_and_only_master_2_is_repaired(self, e2e: E2E, stack: Stack):
        m1, m2, m3 = e2e.hosts[:3]
        before = starts(e2e)
        hand_edit(m2.manifest, "--audit-policy-file=")
        wait_running(e2e, m2, before[m2.name] + 1)
        r, _ = stack.timed_preview()
        assert reasons(r.stdout) == [f"{m2.name}: --audit-policy-file missing from kube-apiserver.yaml"], r.stdout
        e2e.m["drift_preview_flag"] = drift_blocks(r.stdout)
        r = stack.run("preview", "--diff", "--refresh")
        assert reasons(r.stdout) == [f"{m2.name}: --audit-policy-file missing from kube-apiserver.yaml"], r.stdout
        # Shown once, under master 2's manifest change; every master's check only says master 2 drifted.
        assert r.stdout.count(f'"{m2.name}: --audit-policy-file missing from kube-apiserver.yaml"') == 1, r.stdout
        recheck = f'"{m2.name} drifted: every master is checked again before the repair"'
        assert r.stdout.count(recheck) == len(e2e.hosts), r.stdout
        mid = starts(e2e)
        stack.run("up", "--yes", "--skip-preview")
        after = starts(e2e)
        assert after[m1.name] == mid[m1.name] and after[m3.name] == mid[m3.name], (mid, after)
        assert after[m2.name] == mid[m2.name] + 1, (mid, after)
        assert any(f.startswith("--audit-policy-file=") for f in e2e.audit_flags(m2))
        assert any(a.startswith("--audit-policy-file=") for a in e2e.running_cmdline(m2))
        stack.run("preview", "--expect-no-changes")

    def test_policy_file_edited_on_master_3_is_named_and_rewritten(self, e2e: E2E, stack: Stack):
        m3 = e2e.hosts[2]
        policy = e2e.policy_on_host(m3)
        original = policy.read_text()
        policy.write_text(original + "# edited by hand\n")
        before = starts(e2e)
        r, _ = stack.timed_preview()
        found = reasons(r.stdout)
        assert len(found) == 1 and found[0].startswith(f"{m3.name}: policy file ") and " changed (sha256 " in found[0]
        e2e.m["drift_preview_policy"] = drift_blocks(r.stdout)
        stack.run("up", "--yes", "--skip-preview")
        assert policy.read_text() == original
        assert starts(e2e) == before, "rewriting the policy file restarts no apiserver"
        stack.run("preview", "--expect-no-changes")

    def test_master_regenerated_by_kubeadm_without_persistence_is_repaired(self, e2e: E2E, stack: Stack):
        if have_kubeadm() is None:
            pytest.skip("no kubeadm binary in the toolchain (scripts/toolchain.sh builds it)")
        m1 = e2e.hosts[0]
        text = cluster_configuration(e2e, "kubeadm.k8s.io/v1beta4")
        store(e2e, text)
        try:
            before = starts(e2e)
            r = regenerate(e2e, m1, text)
            assert r.returncode == 0, r.stdout + r.stderr
            wait_running(e2e, m1, before[m1.name] + 1)
            assert not any(a.startswith("--audit-") for a in e2e.running_cmdline(m1)), "kubeadm dropped our flags"
            r, _ = stack.timed_preview()
            found = reasons(r.stdout)
            assert f"{m1.name}: --audit-policy-file missing from kube-apiserver.yaml" in found, r.stdout
            assert all(x.startswith(f"{m1.name}: ") for x in found), found
            e2e.m["drift_preview_kubeadm_regenerated"] = drift_blocks(r.stdout)
            mid = starts(e2e)
            stack.run("up", "--yes", "--skip-preview")
            after = starts(e2e)
            assert {n: after[n] - mid[n] for n in after} == {h.name: int(h.name == m1.name) for h in e2e.hosts}
            assert any(a.startswith("--audit-policy-file=") for a in e2e.running_cmdline(m1))
            stack.run("preview", "--expect-no-changes")
        finally:
            remove(e2e)

    def test_a_master_that_cannot_be_reached_fails_the_preview_without_a_hang(self, e2e: E2E, stack: Stack):
        m3 = e2e.hosts[2]
        # Point master 3 at a port nothing listens on, reading only: a config change of the connection
        # would be an update, so look at the refusal and the timing, not at the change count.
        masters = stack.read()["config"]["kube-audit:masters"]
        broken = [dict(m, port=2) if m["name"] == m3.name else m for m in masters]
        stack.run("config", "set", "--path", "kube-audit:drift.timeoutSeconds", "5")
        doc = stack.read()
        doc["config"]["kube-audit:masters"] = broken
        stack.write(doc)
        try:
            t = time.monotonic()
            r = stack.run("preview", check=False)
            took = time.monotonic() - t
            # `up` would stop at master 3's preflight, so the preview fails saying so (test_preview_preflight.py).
            out = r.stdout + r.stderr
            assert r.returncode != 0, out
            assert f"{m3.name}: cannot connect to root@{m3.ip}:2" in out and "stop at this master's preflight" in out
            assert took < 120, took
        finally:
            doc["config"]["kube-audit:masters"] = masters
            stack.write(doc)
            stack.run("config", "rm", "--path", "kube-audit:drift.timeoutSeconds")
        stack.run("preview", "--expect-no-changes")

"""What `up` would refuse, a plain `pulumi preview` already says: on real masters, read-only.

Own stack (`e2e-preflight`, audit on, insight-agent and kubeadm persistence left alone). One fault on
each master at once: an editor's copy `kube-apiserver.yaml~` in master 1's manifests dir (the
kubelet's stand-in runs it: the file sorting last wins), a full log filesystem on master 2 (a 1 MiB
tmpfs over /var/log/kubernetes/audit in that master's mount namespace, filled), and master 3's sshd
stopped. The preview must fail naming all three with cause and fix and change nothing; a dot-file
(`.kube-apiserver.yaml.swp`, which the kubelet skips) must not be refused. After the fixes the
preview is clean, its per-master summary says what the following `up` then does, and `up` converges.
The stack is destroyed at the end (audit off again on every master; the logs stay).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import system
from lab.config import Host

from .harness import E2E
from .kubeadm_lab import restore_manifests, snapshot_manifests
from .stacks import Stack, starts, wait_running
from .test_drift import hand_edit

pytestmark = pytest.mark.e2e

STACK = "e2e-preflight"
POLICY = "audit-policy/apiserver-audit-policy.yaml"  # under the host's /etc/kubernetes
KINDS = "will restart|policy rewrite only|unchanged|refused|not read"


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def in_host(h: Host, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `cmd` in the master's own mount namespace (where its sshd and kubelet stand-in live)."""
    pid = int(h.pid_file.read_text())
    return system.run("nsenter", "-t", str(pid), "-m", "-u", "-n", "--", *cmd, check=check)


def summary(output: str) -> dict[str, str]:
    """The top-level summary of a preview: master -> what `up` does there."""
    found = dict(re.findall(rf"^\s*(lab-master-\d+): ({KINDS})\b", output, re.M))
    assert found, f"no per-master summary in the preview:\n{output[-4000:]}"
    return found


def wait_pod_from(e2e: E2E, h: Host, name: str, timeout: float = 240) -> None:
    """Until the kubelet stand-in runs the pod from manifest file `name` and it answers ready."""
    deadline = time.monotonic() + timeout
    while True:
        st = e2e.status(h)
        if st.get("manifest_file") == name and st.get("state") == "running" and e2e.client(h).ready():
            return
        assert time.monotonic() < deadline, f"{h.name} does not run the pod from {name}: {st}"
        time.sleep(0.5)


class Faults:
    """The three planted faults and their fixes (each fix is safe to run twice)."""

    def __init__(self, e2e: E2E) -> None:
        self.e2e = e2e
        self.m1, self.m2, self.m3 = e2e.hosts[:3]
        self.copy = self.m1.etc_kubernetes / "manifests/kube-apiserver.yaml~"
        self.swap = self.m1.etc_kubernetes / "manifests/.kube-apiserver.yaml.swp"
        self.sshd_config = self.m3.dir / "sshd_config"
        self.sshd_off = self.m3.dir / "sshd_config.off"
        self.mounted = False

    def plant(self) -> None:
        self.copy.write_bytes(self.m1.manifest.read_bytes())
        self.swap.write_bytes(self.m1.manifest.read_bytes())
        self.m2.audit_log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        in_host(self.m2, "mount", "-t", "tmpfs", "-o", "size=1m", "kalab-full", "/var/log/kubernetes/audit")
        self.mounted = True
        # dd stops with "No space left on device": full, as wanted.
        in_host(self.m2, "dd", "if=/dev/zero", "of=/var/log/kubernetes/audit/filler", "bs=64k", "count=64",
                "status=none", check=False)
        # The supervisor restarts an exited sshd within a second; without its config it cannot start.
        self.sshd_config.replace(self.sshd_off)
        pid = self.e2e.status(self.m3).get("sshd_pid")
        if pid:
            system.run("kill", str(pid), check=False)
        deadline = time.monotonic() + 30
        while system.ssh_banner(self.m3.ip, timeout=1):
            assert time.monotonic() < deadline, f"{self.m3.name}: sshd still answers"
            time.sleep(0.2)
        # The kubelet stand-in runs the copy (it sorts last): wait, so the preview sees a serving master.
        wait_pod_from(self.e2e, self.m1, self.copy.name)

    def fix(self, keep_swap: bool = True) -> None:
        self.copy.unlink(missing_ok=True)
        if not keep_swap:
            self.swap.unlink(missing_ok=True)
        if self.mounted:
            in_host(self.m2, "umount", "/var/log/kubernetes/audit", check=False)
            self.mounted = False
        if self.sshd_off.exists():
            self.sshd_off.replace(self.sshd_config)
        system.wait_for(f"{self.m3.name} sshd", lambda: system.ssh_banner(self.m3.ip), timeout=60)
        wait_pod_from(self.e2e, self.m1, "kube-apiserver.yaml")


@pytest.fixture(scope="module")
def stack(e2e: E2E) -> Iterator[Stack]:
    found = snapshot_manifests(e2e)
    s = Stack(e2e, STACK)
    s.create({"kube-audit:enabled": "true", "kube-audit:policy": "dce-default",
              "kube-audit:insightAgent": {"enabled": False}, "kube-audit:kubeadm": {"persist": False}},
             kubeconfig=False)
    try:
        yield s
    finally:
        s.remove()
        restore_manifests(e2e, found)


@pytest.fixture(scope="module")
def faults(e2e: E2E, stack: Stack) -> Iterator[Faults]:
    f = Faults(e2e)
    try:
        yield f
    finally:
        f.fix(keep_swap=False)


def masters_now(e2e: E2E) -> dict[str, object]:
    """What a preview must not change on any master: manifests dir, policy, node program, restarts."""
    return {h.name: {"manifests": {p.name: _sha(p) for p in sorted((h.etc_kubernetes / "manifests").iterdir())},
                     "policy": _sha(h.etc_kubernetes / POLICY),
                     "program": sorted(p.name for p in (h.dir / "var-upper/lib/kube-audit").glob("*")),
                     "starts": e2e.status(h)["starts"]} for h in e2e.hosts}


class TestPreviewPreflight:
    incremental = True

    def test_three_faults_fail_the_preview_naming_each_master_cause_and_fix(self, e2e: E2E, stack: Stack,
                                                                            faults: Faults) -> None:
        m1, m2, m3 = faults.m1, faults.m2, faults.m3
        faults.plant()
        before = masters_now(e2e)
        t = time.monotonic()
        r = stack.run("preview", "--diff", check=False)
        e2e.m["preview_preflight_refused_seconds"] = round(time.monotonic() - t, 1)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out[-4000:]
        assert "Traceback" not in out, out[-4000:]
        assert "the preflight refuses 3 of 3 masters, so `pulumi up` would stop before changing any master" in out
        # Master 1: `up`'s own message (the node program's), with the file and the fix; the dot-file is not named.
        assert f"{m1.name}: on root@{m1.ip}:22: exit 2: kube-audit[{m1.name}]: preflight refused this master:" in out
        assert ("/etc/kubernetes/manifests/kube-apiserver.yaml~ also declares the kube-apiserver pod; the kubelet may "
                "run it instead of /etc/kubernetes/manifests/kube-apiserver.yaml. Move it out of "
                "/etc/kubernetes/manifests and retry") in out, out[-4000:]
        assert ".kube-apiserver.yaml.swp" not in out
        # Master 2: the log filesystem, what it needs, and which keys to lower.
        assert f"{m2.name}: on root@{m2.ip}:22: exit 2: kube-audit[{m2.name}]: preflight refused this master:" in out
        assert re.search(r"/var/log/kubernetes/audit has 0 MiB free; the audit log needs \d+ MiB", out), out[-4000:]
        assert "Free space or lower kube-audit:log.maxSize / log.maxBackup" in out
        # Master 3: unreachable, and what to do.
        assert f"{m3.name}: cannot connect to root@{m3.ip}:22" in out, out[-4000:]
        assert f"`pulumi up` would stop at this master's preflight. Start sshd on {m3.name}" in out
        assert summary(out) == {m1.name: "refused", m2.name: "refused", m3.name: "refused"}, out[-4000:]
        assert masters_now(e2e) == before, "the preview changed a master"
        e2e.m["preview_preflight_refusal"] = out[out.find("the preflight refuses"):][:3000]

    def test_after_the_fixes_the_preview_is_clean_and_up_does_what_it_said(self, e2e: E2E, stack: Stack,
                                                                           faults: Faults) -> None:
        faults.fix(keep_swap=True)  # the dot-file stays: the kubelet skips it, so must the preflight
        assert faults.swap.exists()
        with_reading, r = _timed_preview(stack)
        planned = summary(r.stdout + r.stderr)
        assert planned == {h.name: "will restart" for h in e2e.hosts}, r.stdout[-4000:]
        stack.run("config", "set", "--path", "kube-audit:drift.read", "false")
        without, _ = _timed_preview(stack)
        stack.run("config", "set", "--path", "kube-audit:drift.read", "true")
        e2e.m["preview_preflight_seconds"] = {"with_reading": round(with_reading, 2),
                                              "without_reading": round(without, 2),
                                              "ratio": round(with_reading / without, 2)}
        before = starts(e2e)
        r = stack.run("up", "--yes", "--skip-preview")
        assert "Traceback" not in r.stdout + r.stderr
        after = starts(e2e)
        for h in e2e.hosts:
            assert any(f.startswith("--audit-policy-file=") for f in e2e.audit_flags(h)), h.name
            assert after[h.name] == before[h.name] + 1, (h.name, before, after)  # "will restart": once
            wait_running(e2e, h, after[h.name])
        r = stack.run("preview", "--diff", "--expect-no-changes")
        assert summary(r.stdout + r.stderr) == {h.name: "unchanged" for h in e2e.hosts}, r.stdout[-4000:]

    def test_a_mixed_summary_matches_what_up_does(self, e2e: E2E, stack: Stack, faults: Faults) -> None:
        m1, m2, m3 = faults.m1, faults.m2, faults.m3
        mid = starts(e2e)
        hand_edit(m2.manifest, "--audit-policy-file=")
        wait_running(e2e, m2, mid[m2.name] + 1)
        policy = m3.etc_kubernetes / POLICY
        original = policy.read_text()
        policy.write_text(original + "# edited by hand\n")
        r = stack.run("preview", "--diff")
        planned = summary(r.stdout + r.stderr)
        assert planned == {m1.name: "unchanged", m2.name: "will restart", m3.name: "policy rewrite only"}, \
            r.stdout[-4000:]
        assert f"{m2.name}: will restart — --audit-policy-file missing from kube-apiserver.yaml" in r.stdout + r.stderr
        e2e.m["preview_summary_mixed"] = r.stdout[r.stdout.find("what `pulumi up` does"):][:800]
        before = starts(e2e)
        stack.run("up", "--yes", "--skip-preview")
        after = starts(e2e)
        # What up did: restarted master 2 only, and put master 3's policy back without a restart.
        assert {n: after[n] - before[n] for n in after} == {m1.name: 0, m2.name: 1, m3.name: 0}, (before, after)
        assert policy.read_text() == original
        stack.run("preview", "--expect-no-changes")


def _timed_preview(stack: Stack) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.monotonic()
    r = stack.run("preview", "--diff")
    return time.monotonic() - t, r

"""Drift on real masters: hand edits show in a plain preview, `up` repairs only the drifted master.

Own stack (`e2e-drift`, config beside the lab's in its state dir, insight-agent left alone), so the
lifecycle module's stack is untouched. It enables audit, drifts one master at a time, and destroys
its stack at the end, which turns audit off on every master again (the logs stay, as always).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.config import REPO, Host
from lab.stack import CONFIG_FILE_COMMANDS

from .harness import E2E

pytestmark = pytest.mark.e2e

STACK = "e2e-drift"


class Stack:
    """The real pulumi CLI on this module's own stack."""

    def __init__(self, e2e: E2E) -> None:
        self.e2e = e2e
        self.config = e2e.lab.state / f"Pulumi.{STACK}.yaml"

    def run(self, *args: str, check: bool = True, input: str | None = None,
            timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        from lab.config import find_binary

        cmd = [str(find_binary("pulumi")), *args, "--stack", STACK, "--non-interactive"]
        if args[0] in CONFIG_FILE_COMMANDS:
            cmd += ["--config-file", str(self.config)]
        r = subprocess.run(cmd, cwd=REPO, env=self.e2e.env(), capture_output=True, text=True, timeout=timeout,
                           input=input, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"`pulumi {' '.join(args)}` exited {r.returncode}:\n{r.stdout[-6000:]}\n"
                                 f"{r.stderr[-4000:]}")
        return r

    def create(self) -> None:
        lab = self.e2e.lab
        env = self.e2e.env()
        from lab.config import find_binary

        pulumi = str(find_binary("pulumi"))
        subprocess.run([pulumi, "stack", "rm", STACK, "--yes", "--force", "--non-interactive"], cwd=REPO, env=env,
                       capture_output=True, check=False)
        subprocess.run([pulumi, "stack", "init", STACK, "--secrets-provider", "passphrase", "--non-interactive"],
                       cwd=REPO, env=env, capture_output=True, check=True)
        # `stack init` writes Pulumi.<stack>.yaml into the project; keep it beside the lab's instead.
        (REPO / f"Pulumi.{STACK}.yaml").replace(self.config)
        doc = yaml.safe_load(self.config.read_text()) or {}
        lab_cfg = yaml.safe_load(lab.stack_config.read_text())["config"]
        doc["config"] = {
            "kube-audit:masters": lab_cfg["kube-audit:masters"],
            "kube-audit:enabled": "true",
            "kube-audit:policy": "dce-default",
            "kube-audit:insightAgent": {"enabled": False},
            "kube-audit:kubeadm": {"persist": False},
            "kubernetes:kubeconfig": lab_cfg["kubernetes:kubeconfig"],
        }
        self.config.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
        self.run("config", "set", "--secret", "kube-audit:sshPrivateKey", input=lab.ssh_key.read_text())

    def timed_preview(self, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
        t = time.monotonic()
        r = self.run("preview", "--diff", *args)
        return r, time.monotonic() - t


def starts(e2e: E2E) -> dict[str, int]:
    return {h.name: e2e.status(h)["starts"] for h in e2e.hosts}


def wait_running(e2e: E2E, h: Host, at_least: int, timeout: float = 120) -> None:
    """Until the supervisor has (re)started the apiserver `at_least` times and it answers ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = e2e.status(h)
        if st["starts"] >= at_least and st.get("state") == "running" and e2e.client(h).ready():
            return
        time.sleep(0.5)
    raise AssertionError(f"{h.name} did not come back: {e2e.status(h)}")


def hand_edit(path: Path, drop_containing: str) -> None:
    """What an operator's editor does: the file without the lines that contain `drop_containing`."""
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if drop_containing not in line]
    assert len(kept) == len(lines) - 1, f"expected one line with {drop_containing!r} in {path}"
    tmp = path.with_name("." + path.name + ".edit")
    tmp.write_text("".join(kept))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def reasons(output: str) -> list[str]:
    """The drift reasons a `preview --diff` shows (quoted strings that start with a lab master's name)."""
    return sorted(set(re.findall(r'"(lab-master-\d+: [^"]+)"', output)))


@pytest.fixture(scope="module")
def stack(e2e: E2E) -> Iterator[Stack]:
    s = Stack(e2e)
    s.create()
    try:
        yield s
    finally:
        # Leave the masters as found: destroy turns audit off on each (one at a time) and removes the
        # policy file; the audit logs stay.
        s.run("destroy", "--yes", "--skip-preview", check=False)
        s.run("stack", "rm", "--yes", "--force", check=False)
        s.config.unlink(missing_ok=True)


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
        e2e.m["drift_preview_flag"] = r.stdout[-3000:]
        r = stack.run("preview", "--diff", "--refresh")
        assert reasons(r.stdout) == [f"{m2.name}: --audit-policy-file missing from kube-apiserver.yaml"], r.stdout
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
        e2e.m["drift_preview_policy"] = r.stdout[-3000:]
        stack.run("up", "--yes", "--skip-preview")
        assert policy.read_text() == original
        assert starts(e2e) == before, "rewriting the policy file restarts no apiserver"
        stack.run("preview", "--expect-no-changes")

    def test_a_master_that_cannot_be_read_is_a_warning_not_a_hang(self, e2e: E2E, stack: Stack):
        m3 = e2e.hosts[2]
        # Point master 3 at a port nothing listens on, reading only: a config change of the connection
        # would be an update, so look at the warning and the timing, not at the change count.
        masters = yaml.safe_load(stack.config.read_text())["config"]["kube-audit:masters"]
        broken = [dict(m, port=2) if m["name"] == m3.name else m for m in masters]
        stack.run("config", "set", "--path", "kube-audit:drift.timeoutSeconds", "5")
        doc = yaml.safe_load(stack.config.read_text())
        doc["config"]["kube-audit:masters"] = broken
        stack.config.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
        try:
            t = time.monotonic()
            r = stack.run("preview")
            took = time.monotonic() - t
            assert f"{m3.name}: drift not checked (cannot connect to" in r.stdout, r.stdout
            assert took < 120, took
        finally:
            doc["config"]["kube-audit:masters"] = masters
            stack.config.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
            stack.run("config", "rm", "--path", "kube-audit:drift.timeoutSeconds")
        stack.run("preview", "--expect-no-changes")

"""engine.py's translation of the Automation API's events and errors (no engine run)."""

from __future__ import annotations

import os
import stat

from pulumi.automation import events as ev
from pulumi.automation._cmd import CommandResult
from pulumi.automation.errors import create_command_error

from components.fleet.classify import Diagnostic, Step, Violation
from components.fleet.engine import AutomationEngine, _error, to_record
from components.fleet.spec import StackRef


def test_a_lock_held_by_another_runner_reads_as_such():
    err = create_command_error(CommandResult(
        "Updating (team-a):\n",
        "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete "
        "the lock file with `pulumi cancel`.\n  file:///state/.pulumi/locks/organization/kube-audit/team-a/1.json: "
        "created by root@runner-2 (pid 77) at 2026-12-04T08:21:34Z\n", 255))
    text = _error(err)
    assert text.startswith("the stack is locked by another update (another runner, or an interrupted one): error: "
                           "the stack is currently locked by 1 lock(s)")
    assert "root@runner-2 (pid 77)" in text and "Updating" not in text


def test_events_become_records():
    step = ev.EngineEvent.from_json({"sequence": 1, "timestamp": 0, "resourcePreEvent": {"metadata": {
        "op": "update", "urn": "urn:pulumi:s::p::t$kube-audit:RemoteCommand::audit-policy-m1", "type": "dyn",
        "provider": "", "diffs": ["stdin"],
        "new": {"type": "dyn", "urn": "u", "id": "", "parent": "urn:parent", "provider": "", "custom": True,
                "inputs": {"drift": ["m1: edited"]}},
        "old": {"type": "dyn", "urn": "u", "id": "", "parent": "urn:parent", "provider": "", "custom": True,
                "inputs": {"drift": []}}}}})
    rec = to_record(step)
    assert isinstance(rec, Step) and rec.op == "update" and rec.parent == "urn:parent" and rec.diffs == ("stdin",)
    assert rec.new_inputs["drift"] == ["m1: edited"] and rec.name == "audit-policy-m1" and rec.phase == "pre"
    policy = ev.EngineEvent.from_json({"sequence": 2, "timestamp": 0, "policyEvent": {
        "message": "maxAge is 0", "color": "never", "policyName": "audit-log-retention-bounded",
        "policyPackName": "kube-audit-guardrails", "policyPackVersion": "0.1.0", "policyPackVersionTag": "0.1.0",
        "enforcementLevel": "mandatory"}})
    assert to_record(policy) == Violation("kube-audit-guardrails", "audit-log-retention-bounded", "mandatory",
                                          "maxAge is 0", "")
    diag = ev.EngineEvent.from_json({"sequence": 3, "timestamp": 0, "diagnosticEvent": {
        "message": "<{%fg 1%}>error: boom<{%reset%}>\n", "color": "raw", "severity": "error"}})
    assert to_record(diag) == Diagnostic("error", "error: boom", "")
    assert to_record(ev.EngineEvent.from_json({"sequence": 4, "timestamp": 0, "stdoutEvent": {
        "message": "x", "color": "never"}})) is None


def test_the_engine_never_selects_a_stack(tmp_path, monkeypatch):
    """Each command passes --stack; `stack select` would change the person's current stack and cost a
    CLI start per stack. A stand-in `pulumi` logs every command the Automation API runs."""
    log = tmp_path / "commands.log"
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n"
                    f'echo "$*" >> {log}\n'
                    'case "$*" in version) echo v3.274.1 ;; *"stack ls"*) echo "[]" ;; '
                    '*history*) echo "[]" ;; esac\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "Pulumi.yaml").write_text("name: x\nruntime: python\n")
    engine = AutomationEngine(tmp_path)
    assert engine.list_stacks() == []
    assert engine.last_update(StackRef("team-a")) == {}
    commands = log.read_text().splitlines()
    assert commands[0] == "version" and any("stack ls" in c for c in commands), commands
    assert any(c.startswith("--non-interactive stack history") and c.endswith("--stack team-a") for c in commands), \
        commands
    assert not any("select" in c for c in commands), commands

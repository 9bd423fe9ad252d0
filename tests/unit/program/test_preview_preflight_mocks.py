"""The preview's preflight under Pulumi mocks: who is asked, what refuses, what only warns, the summary."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.drift.facts import Reading
from components.drift.observe import Observation
from components.drift.preview_preflight import PreflightRun
from components.drift.summary import MasterPreview

from .conftest import FAKE_KEY, MASTERS
from .test_drift_mocks import FakeReader, node
from .test_program_mocks import build

REFUSED = "kube-audit[master-2]: preflight refused this master:\n  - x is not writable; nothing was changed\n"
OK = PreflightRun(0, '{"problems": []}', "")


def readings(**overrides: Reading) -> dict[str, Reading]:
    base = {m: Reading(node(), preflight=OK) for m in ("master-1", "master-2", "master-3")}
    return {**base, **overrides}


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {"info": [], "warn": []}
    monkeypatch.setattr(pulumi.log, "info", lambda msg, *a, **k: seen["info"].append(msg))
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: seen["warn"].append(msg))
    return seen


@pulumi.runtime.test
def test_a_preview_asks_every_master_for_ups_preflight_with_ups_request() -> None:
    reader = FakeReader(readings())
    _, rec, audit = build(reader=reader, preview=True)
    for i in (1, 2, 3):
        ask = reader.asked[f"master-{i}"].preflight
        assert ask is not None and ask.bundle.startswith(b"#!/usr/bin/env python3\n")
        # Byte for byte the stdin of the check `up` runs on that master.
        assert ask.request == rec[f"audit-preflight-master-{i}"].props["stdin"]
    assert audit.refusals == {}


@pulumi.runtime.test
def test_up_and_reading_off_ask_no_preflight() -> None:
    reader = FakeReader(readings())
    build(reader=reader, preview=False)
    assert all(req.preflight is None for req in reader.asked.values())
    reader = FakeReader({})
    _, _, audit = build({"drift": {"read": False}}, reader=reader, preview=True)
    assert reader.asked == {} and audit.refusals == {}


@pulumi.runtime.test
def test_a_refused_and_an_unreachable_master_are_refusals_a_slow_one_a_warning(logged: dict[str, list[str]]) -> None:
    reader = FakeReader(readings(
        **{"master-2": Reading(node(), preflight=PreflightRun(2, "", REFUSED)),
           "master-3": Reading(None, "cannot connect to admin@10.6.0.13:22: [Errno 111] Connection refused",
                               unreachable=True),
           "master-1": Reading(node(), preflight=PreflightRun(None, error="the preflight did not finish in time"))}))
    _, _, audit = build(reader=reader, preview=True)
    assert audit.refusals["master-2"] == f"on root@10.6.0.12:2222: exit 2: {REFUSED.strip()}"
    assert audit.refusals["master-3"].startswith(
        "cannot connect to admin@10.6.0.13:22: [Errno 111] Connection refused; `pulumi up` would stop at this "
        "master's preflight. Start sshd on master-3")
    assert set(audit.refusals) == {"master-2", "master-3"}
    assert logged["warn"] == ["master-1: the preflight was not checked in this preview (the preflight did not "
                              "finish in time); `pulumi up` checks this master before changing it"]
    (text,) = logged["info"]
    one, two, three = text.splitlines()[1:]
    assert (one, two) == ("  master-1: unchanged", "  master-2: refused — preflight refused this master: - x is not writable")
    assert three.startswith("  master-3: refused — cannot connect to admin@10.6.0.13:22: [Errno 111] Connection "
                            "refused; `pulumi up` would stop at this master's preflight. Start sshd on master-3")


@pulumi.runtime.test
def test_the_summary_says_restart_policy_only_unchanged(logged: dict[str, list[str]]) -> None:
    reader = FakeReader(readings(**{"master-2": Reading(node(drop="--audit-policy-file"), preflight=OK),
                                    "master-3": Reading(node(policy_sha="f" * 64), preflight=OK)}))
    build(reader=reader, preview=True)
    (text,) = logged["info"]
    assert text.splitlines()[1:] == [
        "  master-1: unchanged",
        "  master-2: will restart — --audit-policy-file missing from kube-apiserver.yaml",
        "  master-3: policy rewrite only — policy file /etc/kubernetes/audit-policy/apiserver-audit-policy.yaml "
        "changed (sha256 ffffffffffff…, the stack's is " + text.split("the stack's is ")[1]]
    logged["info"].clear()
    build(reader=FakeReader(readings()), preview=False)
    assert logged["info"] == [], "the summary is the preview's"


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def test_the_program_fails_a_preview_up_would_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = "on root@10.6.0.12:2222: exit 2: " + REFUSED
    monkeypatch.setattr("components.audit_logging.observe", lambda *a, **k: Observation(
        views=(MasterPreview("master-1", None), MasterPreview("master-2", None, refused))))
    pulumi.runtime.set_mocks(_Mocks(), project="kube-audit", stack="dev", preview=True)
    pulumi.runtime.set_all_config({"kube-audit:masters": json.dumps(MASTERS), "kube-audit:sshPrivateKey": FAKE_KEY,
                                   "kube-audit:insightAgent": json.dumps({"enabled": False}),
                                   "kube-audit:kubeadm": json.dumps({"persist": False})}, ["kube-audit:sshPrivateKey"])
    with pytest.raises(pulumi.RunError) as info:
        runpy.run_path(str(Path(__file__).resolve().parents[3] / "__main__.py"), run_name="__main__")
    assert str(info.value).startswith("the preflight refuses 1 of 3 masters, so `pulumi up` would stop before")
    assert f"\nmaster-2: {refused.strip()}" in str(info.value)

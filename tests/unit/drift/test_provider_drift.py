"""The SSH command provider's diff on `drift`: reasons make an update; a repaired node makes none."""

from __future__ import annotations

import pytest

import components.remote.ssh as ssh
from components.remote.ssh import RemoteCommandProvider

CONN = {"host": "10.0.0.1", "port": 22, "user": "root", "privateKey": None, "privateKeyPassword": None,
        "hostKey": None}
BASE = {"connection": CONN, "create": "c", "update": "c", "delete": "d", "stdin": "{}"}


def changes(olds: dict, news: dict) -> bool:
    return bool(RemoteCommandProvider().diff("id", olds, news).changes)


def test_reasons_are_a_change_and_none_are_not() -> None:
    after_up = {**BASE, "drift": [], "stdout": "{}"}
    assert not changes(after_up, {**BASE, "drift": []})
    assert changes(after_up, {**BASE, "drift": ["master-2: --audit-policy-file missing from kube-apiserver.yaml"]})


def test_reasons_carried_in_repair_are_a_change_too() -> None:
    assert changes({**BASE, "drift": [], "repair": []}, {**BASE, "drift": [], "repair": ["m: x"]})


def test_state_from_before_drift_existed_is_not_a_spurious_update() -> None:
    assert not changes({**BASE, "stdout": "{}"}, {**BASE, "drift": []})


def test_after_a_repair_the_stored_outputs_hold_no_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    # What update stores is what the next preview compares against; the repair's reasons must not stay.
    monkeypatch.setattr(ssh, "_check", lambda *a, **k: {"stdout": "{}", "stderr": ""})
    outs = RemoteCommandProvider().update("id", {**BASE, "drift": []}, {**BASE, "drift": ["m: x"]}).outs
    assert outs["drift"] == [] and outs["repair"] == [] and not changes(outs, {**BASE, "drift": []})

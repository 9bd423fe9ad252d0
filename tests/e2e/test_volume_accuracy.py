"""`volume`'s prediction against what a real kube-apiserver writes, for every shipped profile.

On the lab's first master, through the real program (own stack `volume`, lab/audit_stack.py):
audit on with log-everything, run the deterministic workload (lab/workload.py), keep its events as
the sample; then for each profile, audit on with that profile, the same workload, and the bytes
and events the apiserver really appended. `volume` predicts each profile from the sample alone.
Target (issue 13): bytes within ±10 %, events within ±2 %. The module destroys its stack at the
end, which turns audit off on that master again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from components.policy.profiles import list_profiles
from components.volume import Rotation, forecast
from components.volume.cli import load_policy_arg
from lab import stack, workload
from lab.audit_stack import AuditStack, LogTap, user_agent_filter, write_sample
from lab.config import REPO

from .harness import E2E

pytestmark = pytest.mark.e2e

LOG_EVERYTHING = REPO / "tests/fixtures/log-everything.yaml"
ROUNDS = 3
UA = user_agent_filter(workload.USER_AGENT)


@pytest.fixture(scope="module")
def audit_stack(e2e: E2E) -> Iterator[AuditStack]:
    s = AuditStack(e2e.lab, "volume")
    s.setup()
    workload.setup(s.lab, s.host)
    try:
        yield s
    finally:
        s.destroy()


def _measure(s: AuditStack, policy: str) -> tuple[list[bytes], float]:
    seconds = s.apply(policy)
    tap = LogTap(s.host)
    tap.mark()
    result = workload.run(s.lab, s.host, workload.plan(ROUNDS))
    assert not result.failures, f"the workload failed under {policy}: {result.failures[:5]}"
    tap.settle()
    return tap.lines(UA), seconds


def test_predicted_bytes_and_events_match_the_apiserver(e2e: E2E, audit_stack: AuditStack) -> None:
    sample_lines, _ = _measure(audit_stack, str(LOG_EVERYTHING))
    requests = len(workload.plan(ROUNDS))
    assert sample_lines, "no workload event in the log-everything run"
    sample = write_sample(sample_lines, audit_stack.lab.state / "volume-accuracy" / "log-everything.log")
    profiles = list_profiles()
    measured = {}
    for profile in profiles:
        lines, seconds = _measure(audit_stack, profile)
        measured[profile] = {"events": len(lines), "bytes": sum(len(ln) for ln in lines), "up_seconds": round(seconds)}
        write_sample(lines, audit_stack.lab.state / "volume-accuracy" / f"{profile}.log")
    result = forecast([(p, load_policy_arg(p)) for p in profiles], [sample], Rotation())
    assert result.sample_requests == requests, "every workload request is in the log-everything sample"
    rows = []
    for p in result.policies:
        m = measured[p.name]
        rows.append({"profile": p.name, "predicted_events": p.events, "measured_events": m["events"],
                     "events_error": round((p.events - m["events"]) / max(m["events"], 1), 4),
                     "predicted_bytes": p.bytes, "measured_bytes": m["bytes"],
                     "bytes_error": round((p.bytes - m["bytes"]) / max(m["bytes"], 1), 4),
                     "estimated_bytes": p.estimated_bytes})
    table = {"requests": requests, "sample_events": result.sample_events, "sample_bytes": result.sample_bytes,
             "rows": rows}
    e2e.m["volume_accuracy"] = table
    (audit_stack.lab.state / "volume-accuracy" / "table.json").write_text(json.dumps(table, indent=1) + "\n")
    for row in rows:
        assert row["measured_events"] > 0, row
        assert abs(row["events_error"]) <= 0.02, f"events off by more than 2 %: {row}"
        assert abs(row["bytes_error"]) <= 0.10, f"bytes off by more than 10 %: {row}"


def test_preview_prints_the_forecast_and_warns_on_short_history(audit_stack: AuditStack) -> None:
    sample = audit_stack.lab.state / "volume-accuracy" / "log-everything.log"
    if not sample.exists():
        pytest.skip("needs the sample of the accuracy test")
    audit_stack._config({"kube-audit:volumeSample": str(sample), "kube-audit:volumeMinHistoryHours": "1000000"})
    try:
        r = stack.run_pulumi(audit_stack.lab, "preview", "--non-interactive", timeout=600)
    finally:
        audit_stack._config({"kube-audit:volumeSample": "", "kube-audit:volumeMinHistoryHours": "24"})
    out = r.stdout + r.stderr
    assert "predicted" in out and "of audit log a day" in out and "history per master" in out, out[-3000:]
    assert "keeps only" in out, out[-3000:]

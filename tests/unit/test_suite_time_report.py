"""benchmarks/bench_suite_time.py: the per-tier table scripts/test.sh prints, from junit XML."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "bench_suite_time", Path(__file__).resolve().parents[2] / "benchmarks/bench_suite_time.py")
assert SPEC and SPEC.loader
bench = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = bench  # dataclasses look their module up there
SPEC.loader.exec_module(bench)

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.unit.manifest.test_planner" name="a" time="0.5"/>
<testcase classname="tests.unit.test_bad_input_sweep" name="b" time="1.5"><skipped message="x"/></testcase>
<testcase classname="tests.e2e.test_rollout_faults.TestRolloutFaults" name="c" time="100"/>
<testcase classname="tests.e2e.test_rollout_faults" name="d" time="20"><failure message="boom"/></testcase>
<testcase classname="tests.e2e.test_drift" name="e" time="30"><error message="setup"/></testcase>
<testcase classname="lab.tests.test_supervisor_pure" name="f" time="0.25"/>
<testcase classname="tests.integration.test_node_over_ssh" name="g" time="4"/>
</testsuite></testsuites>
"""


def test_tiers_sum_seconds_and_count_outcomes(tmp_path: Path) -> None:
    xml = tmp_path / "r.xml"
    xml.write_text(JUNIT)
    tiers = bench.read([xml])
    assert set(tiers) == {"unit", "e2e/test_rollout_faults", "e2e/test_drift", "lab", "integration"}
    assert tiers["unit"].seconds == 2.0 and tiers["unit"].counts["skipped"] == 1
    faults = tiers["e2e/test_rollout_faults"]
    assert faults.seconds == 120 and faults.counts["passed"] == 1 and faults.counts["failed"] == 1
    assert bench.closing_line(tiers) == "suite: 4 passed, 2 failed, 1 skipped"
    text = bench.table(tiers, {"whole run": 1234})
    assert "e2e/test_rollout_faults" in text and "wall: whole run" in text and "1234" in text

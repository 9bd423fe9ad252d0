"""`python -m components fleet ...` end to end over a fake engine: exit codes, JSON, state file, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.cli import build_parser
from components.fleet.cli import run_fleet

from .test_rollout import FakeEngine, plan_steps


class CliEngine(FakeEngine):
    def list_stacks(self):
        return sorted(self.plans)

    def tags(self, names):
        return {n: {} for n in names}

    def last_update(self, ref):
        return {"kind": "update", "result": "succeeded", "end": "2026-12-04 08:00:00"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: x\nruntime: python\n")
    (tmp_path / "fleet.yaml").write_text("stacks: [a, b, c]\nwaves:\n  - [a]\n  - [b, c]\n")
    return tmp_path


def run(engine, project: Path, *argv: str) -> int:
    args = build_parser().parse_args(["fleet", *argv, "--file", str(project / "fleet.yaml"),
                                      "--project-dir", str(project)])
    return run_fleet(args, engine)


def test_preview_json_names_the_restart(project: Path, capsys: pytest.CaptureFixture[str]):
    engine = CliEngine({n: plan_steps(n, "same") for n in "abc"})
    assert run(engine, project, "preview") == 0
    capsys.readouterr()
    engine.plans["b"] = plan_steps("b")
    assert run(engine, project, "preview", "--json") == 2
    data = json.loads(capsys.readouterr().out)
    assert data["exitCode"] == 2
    assert [(s["stack"], s["wave"], s["status"], s["restart"]) for s in data["stacks"]] == [
        ("a", 0, "clean", 0), ("b", 1, "changes", 1), ("c", 1, "clean", 0)]
    engine.refuse.add("c")
    assert run(engine, project, "preview") == 1
    out = capsys.readouterr().out
    assert "REFUSED: audit-log-retention-bounded" in out.splitlines()[4]


def test_up_needs_yes_off_a_terminal_and_writes_the_state_beside_the_fleet_file(project: Path,
                                                                              capsys: pytest.CaptureFixture[str]):
    engine = CliEngine({n: plan_steps(n) for n in "abc"}, fail_up={"a"})
    assert run(engine, project, "up") == 1
    assert "nothing applied (pass --yes" in capsys.readouterr().err
    assert not [c for c in engine.calls if c[0] == "up"]
    assert run(engine, project, "up", "--yes", "--json") == 1
    data = json.loads(capsys.readouterr().out)
    assert [s["status"] for s in data["stacks"]] == ["failed", "untouched", "untouched"] and data["stoppedBy"] == "a"
    state = json.loads((project / "fleet.state.json").read_text())
    assert state["status"] == {"a": "failed"}
    engine.fail_up.clear()
    assert run(engine, project, "up", "--yes", "--resume") == 0
    assert json.loads((project / "fleet.state.json").read_text())["status"] == {"a": "done", "b": "done", "c": "done"}
    capsys.readouterr()
    assert run(engine, project, "status") == 0
    assert "finished" in capsys.readouterr().out


def test_up_refuses_everything_when_one_preview_is_refused(project: Path, capsys: pytest.CaptureFixture[str]):
    engine = CliEngine({n: plan_steps(n) for n in "abc"}, refuse={"c"})
    assert run(engine, project, "up", "--yes") == 1
    assert "fleet: nothing applied: a stack's preview failed or a guardrail refused it" in capsys.readouterr().err
    assert not [c for c in engine.calls if c[0] == "up"]


@pytest.mark.parametrize(("argv", "message"), [
    (("up", "--yes", "--resume"), "--resume: no rollout state at"),
    (("up", "--yes", "--wave", "3"), "--wave 3: the fleet has waves 1..2"),
    (("preview", "--shard", "0/2"), "--shard '0/2': expected i/n"),
])
def test_refusals(project: Path, capsys: pytest.CaptureFixture[str], argv, message):
    engine = CliEngine({n: plan_steps(n) for n in "abc"})
    assert run(engine, project, *argv) == 1
    assert message in capsys.readouterr().err
    assert not [c for c in engine.calls if c[0] == "up"]


def test_resume_of_another_fleet_is_refused(project: Path, capsys: pytest.CaptureFixture[str]):
    (project / "fleet.state.json").write_text(json.dumps({"stacks": ["a", "b"], "status": {"a": "done"}}))
    assert run(CliEngine({n: plan_steps(n) for n in "abc"}), project, "up", "--yes", "--resume") == 1
    assert "is the state of another fleet (a, b), not of a, b, c" in capsys.readouterr().err


def test_one_wave_previews_and_applies_only_that_wave(project: Path, capsys: pytest.CaptureFixture[str]):
    engine = CliEngine({n: plan_steps(n) for n in "abc"}, refuse={"a"})  # a (wave 1) is not this job's
    assert run(engine, project, "up", "--yes", "--wave", "2", "--json") == 0
    assert sorted(n for op, n in engine.calls if op == "up") == ["b", "c"]
    assert {n for op, n in engine.calls} == {"b", "c"}
    data = json.loads(capsys.readouterr().out)
    assert [(s["stack"], s["status"]) for s in data["stacks"]] == [("b", "done"), ("c", "done")]
    assert json.loads((project / "fleet.wave-2.state.json").read_text())["status"] == {"b": "done", "c": "done"}

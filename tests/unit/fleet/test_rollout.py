"""Waves, stop-on-failure, the plan check and resume, against a fake engine (no Pulumi)."""

from __future__ import annotations

import threading
from pathlib import Path

from components.fleet.classify import APISERVER, POLICY_FILE, Diagnostic, Step, Violation, exit_code
from components.fleet.rollout import RolloutState, RunResult, preview_fleet, rollout
from components.fleet.spec import Fleet, StackRef

STACK = "urn:pulumi:{s}::kube-audit::kube-audit:index:AuditLogging"


def plan_steps(stack: str, manifest_op: str = "update", drift: list[str] | None = None) -> list:
    comp = f"{STACK.format(s=stack)}${APISERVER}::audit-apiserver-m1"
    return [
        Step(comp, APISERVER, "same", custom=False, new_inputs={"master": "m1"}),
        Step(f"{comp}$kube-audit:RemoteCommand::audit-apiserver-m1-manifest", "pulumi-python:dynamic/kube-audit:RemoteCommand",
             manifest_op, parent=comp, new_inputs={"stdin": "audit on", "drift": drift or []},
             old_inputs={"stdin": "audit on" if drift else "audit off", "drift": []}, diffs=("stdin",)),
    ]


class FakeEngine:
    """Per stack: the steps its previews plan, whether its `up` fails, and a log of every call."""

    def __init__(self, plans: dict[str, list], fail_up: set[str] = frozenset(), refuse: set[str] = frozenset()):
        self.plans, self.fail_up, self.refuse = plans, set(fail_up), set(refuse)
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.gate = threading.Event()
        self.gate.set()

    def _enter(self, op, ref):
        with self.lock:
            self.calls.append((op, ref.name))
            self.running += 1
            self.max_running = max(self.max_running, self.running)

    def _leave(self):
        with self.lock:
            self.running -= 1

    def preview(self, ref, on_record):
        self._enter("preview", ref)
        try:
            self.gate.wait(5)
            for step in self.plans[ref.name]:
                on_record(step)
            if ref.name in self.refuse:
                on_record(Violation("kube-audit-guardrails", "audit-log-retention-bounded", "mandatory", "maxAge is 0"))
                on_record(Diagnostic("error", "preview failed"))
                return RunResult("preview failed")
            return RunResult()
        finally:
            self._leave()

    def up(self, ref, on_record):
        self._enter("up", ref)
        try:
            if ref.name in self.fail_up:
                on_record(Diagnostic("error", f"{ref.name}: the new kube-apiserver failed the 'ready' check"))
                return RunResult("update failed")
            self.plans[ref.name] = [s if s.custom is False else Step(**{**s.__dict__, "op": "same"})
                                    for s in self.plans[ref.name]]
            return RunResult()
        finally:
            self._leave()


def make_fleet(*waves: list[str]) -> Fleet:
    return Fleet(tuple(tuple(StackRef(n) for n in w) for w in waves))


def test_preview_is_bounded_and_exit_codes():
    names = [f"s{i}" for i in range(7)]
    engine = FakeEngine({n: plan_steps(n, "same") for n in names})
    previews = preview_fleet(engine, make_fleet(names), parallel=3)
    assert [p.stack for p in previews] == names and engine.max_running <= 3
    assert exit_code(previews) == 0
    engine.plans["s2"] = plan_steps("s2", "update", ["m1: --audit-policy-file missing"])
    previews = preview_fleet(engine, make_fleet(names), parallel=3)
    assert exit_code(previews) == 2 and previews[2].masters == {"m1": "restart"}
    assert previews[2].drift == ["m1: --audit-policy-file missing"]
    engine.refuse.add("s5")
    assert exit_code(preview_fleet(engine, make_fleet(names), parallel=3)) == 1


def test_waves_in_order_and_the_first_failure_stops_later_waves(tmp_path: Path):
    engine = FakeEngine({n: plan_steps(n) for n in "abcde"}, fail_up={"a"})
    fleet = make_fleet(["a"], ["b", "c"], ["d", "e"])
    shown = preview_fleet(engine, fleet, 2)
    engine.calls.clear()
    state = RolloutState(tmp_path / "fleet.state.json", list("abcde"))
    result = rollout(engine, fleet, shown, 2, state)
    assert [c for c in engine.calls if c[0] == "up"] == [("up", "a")]
    assert {o.stack: o.status for o in result.outcomes} == {"a": "failed", "b": "untouched", "c": "untouched",
                                                           "d": "untouched", "e": "untouched"}
    assert result.stopped_by == "a" and result.exit_code == 1
    assert "failed the 'ready' check" in result.outcomes[0].detail
    # Resume after the fix: starts at a, then the later waves, in order.
    engine.fail_up.clear()
    engine.calls.clear()
    state = RolloutState(tmp_path / "fleet.state.json", list("abcde"), RolloutState.load(tmp_path / "fleet.state.json").status)
    assert state.first_unfinished() == "a"
    shown = preview_fleet(engine, fleet, 2)
    engine.calls.clear()
    result = rollout(engine, fleet, shown, 1, state)
    assert [n for op, n in engine.calls if op == "up"] == list("abcde")
    assert result.exit_code == 0 and RolloutState.load(tmp_path / "fleet.state.json").first_unfinished() is None


def test_resume_skips_finished_stacks(tmp_path: Path):
    engine = FakeEngine({n: plan_steps(n) for n in "abc"})
    fleet = make_fleet(["a"], ["b", "c"])
    state = RolloutState(tmp_path / "s.json", list("abc"), {"a": "done", "b": "failed", "c": "untouched"})
    result = rollout(engine, fleet, preview_fleet(engine, fleet, 2), 2, state)
    assert sorted(n for op, n in engine.calls if op == "up") == ["b", "c"]
    assert result.outcomes[0].status == "done" and result.outcomes[0].detail == "finished in an earlier run"


def test_a_failure_in_a_wave_starts_no_new_stack_of_that_wave(tmp_path: Path):
    engine = FakeEngine({n: plan_steps(n) for n in "abcd"}, fail_up={"a"})
    fleet = make_fleet(["a", "b", "c", "d"])
    result = rollout(engine, fleet, preview_fleet(engine, fleet, 1), 1, RolloutState(None, list("abcd")))
    assert [n for op, n in engine.calls if op == "up"] == ["a"]
    assert [o.status for o in result.outcomes] == ["failed", "untouched", "untouched", "untouched"]


def test_a_plan_that_changed_since_it_was_shown_is_refused_and_stops(tmp_path: Path):
    engine = FakeEngine({n: plan_steps(n) for n in "ab"})
    fleet = make_fleet(["a"], ["b"])
    shown = preview_fleet(engine, fleet, 2)
    engine.plans["a"] = plan_steps("a", "update", ["m1: someone edited the manifest"])
    result = rollout(engine, fleet, shown, 2, RolloutState(None, ["a", "b"]))
    assert [o.status for o in result.outcomes] == ["refused", "untouched"]
    assert "the plan changed since it was shown" in result.outcomes[0].detail
    assert not [c for c in engine.calls if c[0] == "up"]


def test_a_stack_refused_by_a_guardrail_is_never_applied():
    engine = FakeEngine({n: plan_steps(n) for n in "ab"}, refuse={"a"})
    fleet = make_fleet(["a", "b"])
    shown = preview_fleet(engine, fleet, 2)
    assert shown[0].status == "refused" and exit_code(shown) == 1
    result = rollout(engine, fleet, shown, 2, RolloutState(None, ["a", "b"]))
    assert result.outcomes[0].status == "refused" and ("up", "a") not in engine.calls


def test_a_stop_request_starts_nothing_new():
    engine = FakeEngine({n: plan_steps(n) for n in "abc"})
    fleet = make_fleet(["a"], ["b", "c"])
    shown = preview_fleet(engine, fleet, 2)
    stop = threading.Event()
    stop.set()
    state = RolloutState(None, list("abc"))
    result = rollout(engine, fleet, shown, 2, state, stop=stop)
    assert not [c for c in engine.calls if c[0] == "up"]
    assert result.stopped_by == "interrupt" and state.status == {n: "interrupted" for n in "abc"}


def test_only_one_wave(tmp_path: Path):
    engine = FakeEngine({n: plan_steps(n) for n in "abc"})
    fleet = make_fleet(["a"], ["b", "c"])
    result = rollout(engine, fleet, preview_fleet(engine, fleet, 2), 2, RolloutState(None, list("abc")), only_wave=1)
    assert sorted(n for op, n in engine.calls if op == "up") == ["b", "c"]
    assert result.outcomes[0].detail == "not in this run's wave"


def test_policy_only_master_and_agent_version():
    comp = f"{STACK.format(s='x')}${POLICY_FILE}::audit-policy"
    agent = f"{STACK.format(s='x')}$kube-audit:index:InsightAgentAuditCollection::audit-insight-agent"
    steps = [*plan_steps("x", "same"),
        Step(comp, POLICY_FILE, "same", custom=False),
        Step(f"{comp}$kube-audit:RemoteCommand::audit-policy-m1", "dyn", "update", parent=comp,
             new_inputs={"stdin": "policy", "drift": ["m1: the policy file differs", "m1 drifted: a note"]},
             old_inputs={"stdin": "policy", "drift": [], "repair": ["m1: an old repair"]}),
        Step(agent, "kube-audit:index:InsightAgentAuditCollection", "same", custom=False,
             new_inputs={"chartVersion": "0.2.0"}, old_inputs={"chartVersion": "0.1.0"}),
        Step(f"{agent}$kubernetes:helm.sh/v3:Release::rel", "kubernetes:helm.sh/v3:Release", "update", parent=agent),
    ]
    engine = FakeEngine({"x": steps})
    (p,) = preview_fleet(engine, make_fleet(["x"]), 1)
    assert p.masters == {"m1": "policy-only"} and p.drift == ["m1: the policy file differs"]
    assert p.config_differs == []
    assert p.agent is not None and p.agent.text() == "0.1.0 -> 0.2.0" and p.other_changes == []


def test_an_update_that_changes_what_the_plan_did_not_show_stops_the_rollout():
    class Surprising(FakeEngine):
        def up(self, ref, on_record):
            on_record(Step(f"{STACK.format(s=ref.name)}$x::kubeadm-config", "k8s", "update"))
            return super().up(ref, on_record)

    engine = Surprising({n: plan_steps(n) for n in "ab"})
    fleet = make_fleet(["a"], ["b"])
    result = rollout(engine, fleet, preview_fleet(engine, fleet, 1), 1, RolloutState(None, ["a", "b"]))
    assert [o.status for o in result.outcomes] == ["failed", "untouched"]
    assert result.outcomes[0].detail == "the update changed resources its plan did not show: kubeadm-config"


def test_the_pure_parts_import_no_pulumi():
    import subprocess
    import sys
    code = ("import sys, components.fleet.cli, components.fleet.rollout, components.fleet.report; "
            "print([m for m in sys.modules if m == 'pulumi' or m.startswith('pulumi.')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ctrl_c_during_a_stack_lets_it_finish_and_starts_nothing_more(tmp_path: Path):
    stop = threading.Event()

    class Interrupted(FakeEngine):
        def up(self, ref, on_record):
            stop.set()  # Ctrl-C while this stack runs
            return super().up(ref, on_record)

    engine = Interrupted({n: plan_steps(n) for n in "abcd"})
    fleet = make_fleet(["a", "b"], ["c", "d"])
    state = RolloutState(tmp_path / "s.json", list("abcd"))
    result = rollout(engine, fleet, preview_fleet(engine, fleet, 1), 1, state, stop=stop)
    assert [(o.stack, o.status) for o in result.outcomes] == [("a", "done"), ("b", "untouched"), ("c", "untouched"),
                                                               ("d", "untouched")]
    assert result.stopped_by == "interrupt"
    saved = RolloutState.load(tmp_path / "s.json")
    assert saved is not None and saved.status == {"a": "done", "b": "interrupted", "c": "interrupted",
                                                  "d": "interrupted"}
    assert saved.first_unfinished() == "b"


def test_reasons_of_a_config_change_are_not_drift():
    steps = plan_steps("x", "update")  # stdin changes: the config asks for it
    comp = steps[0].urn
    steps[1] = Step(steps[1].urn, steps[1].type, "update", parent=comp,
                    new_inputs={"stdin": "maxage 0", "drift": ["m1: --audit-log-maxage is 30, wanted 0"]},
                    old_inputs={"stdin": "maxage 30", "drift": []})
    (p,) = preview_fleet(FakeEngine({"x": steps}), make_fleet(["x"]), 1)
    assert p.drift == [] and p.config_differs == ["m1: --audit-log-maxage is 30, wanted 0"]
    assert p.masters == {"m1": "restart"}

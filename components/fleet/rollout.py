"""Fleet preview (all stacks at once, bounded) and fleet up (waves, stop at the first failure, resume).

Pure: the engine is anything with `preview`/`up` (engine.py on the Automation API; a fake in the
unit tests). Safety rules, in the order they apply:
  - `up` starts only if every stack's preview succeeded and no mandatory guardrail refused it;
  - right before a stack is applied it is previewed again, and refused if the plan (steps, ops,
    changed keys, drift reasons) differs from the one shown;
  - the first failed or refused stack stops the rollout: stacks already running finish, no new
    stack starts, later waves are left untouched;
  - a stop request (Ctrl-C) does the same without a failure; `--resume` continues from there.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .classify import Collector, Record, StackPreview, plan_difference
from .spec import Fleet, StackRef

DONE, FAILED, REFUSED, UNTOUCHED, INTERRUPTED, NOTHING = (
    "done", "failed", "refused", "untouched", "interrupted", "nothing to do")
FINISHED = {DONE, NOTHING}
OnRecord = Callable[[Record], None]


@dataclass(frozen=True)
class RunResult:
    """How one engine run ended: `error` is the engine's own message when it failed."""

    error: str | None = None
    seconds: float = 0.0


class Engine(Protocol):
    def preview(self, ref: StackRef, on_record: OnRecord) -> RunResult: ...

    def up(self, ref: StackRef, on_record: OnRecord) -> RunResult: ...


class Progress(Protocol):
    def started(self, stack: str, phase: str) -> None: ...

    def record(self, stack: str, collector: Collector, record: Record) -> None: ...

    def finished(self, stack: str, status: str, detail: str = "") -> None: ...


class Quiet:
    def started(self, stack: str, phase: str) -> None:
        pass

    def record(self, stack: str, collector: Collector, record: Record) -> None:
        pass

    def finished(self, stack: str, status: str, detail: str = "") -> None:
        pass


def default_parallel() -> int:
    return max(1, os.cpu_count() or 1)


def preview_one(engine: Engine, ref: StackRef, wave: int, progress: Progress, phase: str = "preview") -> StackPreview:
    collector = Collector(ref.name, wave)
    progress.started(ref.name, phase)

    def on_record(record: Record) -> None:
        collector.add(record)
        progress.record(ref.name, collector, record)

    t = time.monotonic()
    try:
        run = engine.preview(ref, on_record)
    except Exception as exc:  # one stack's crash is that stack's error, not the fleet's
        run = RunResult(f"{type(exc).__name__}: {exc}")
    result = collector.result(run.error, run.seconds or time.monotonic() - t)
    progress.finished(ref.name, result.status)
    return result


def preview_fleet(engine: Engine, fleet: Fleet, parallel: int, progress: Progress | None = None,
                  stop: threading.Event | None = None) -> list[StackPreview]:
    """Every stack's preview, at most `parallel` at once, in fleet order."""
    progress = progress or Quiet()
    stop = stop or threading.Event()
    jobs = [(ref, i) for i, wave in enumerate(fleet.waves) for ref in wave]

    def job(ref: StackRef, wave: int) -> StackPreview:
        if stop.is_set():
            return StackPreview(ref.name, wave, errors=["not previewed: interrupted"])
        return preview_one(engine, ref, wave, progress)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="fleet") as pool:
        return list(pool.map(lambda j: job(*j), jobs))


# -- the rollout state (resume) ---------------------------------------------------------------------

@dataclass
class RolloutState:
    """Per stack, how the last `fleet up` of this fleet left it; saved after every stack."""

    path: Path | None
    stacks: list[str]
    status: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RolloutState | None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls(path, list(data.get("stacks", [])), dict(data.get("status", {})))

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"stacks": self.stacks, "status": self.status,
                                   "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1) + "\n")
        tmp.replace(self.path)  # atomic: a crash leaves the old state or the new one, never half

    def first_unfinished(self) -> str | None:
        return next((s for s in self.stacks if self.status.get(s) not in FINISHED), None)


@dataclass
class StackOutcome:
    stack: str
    wave: int
    status: str
    detail: str = ""
    seconds: float = 0.0
    preview: StackPreview | None = None


@dataclass
class RolloutResult:
    outcomes: list[StackOutcome]
    stopped_by: str | None = None  # the stack whose failure stopped the rollout, or "interrupt"

    @property
    def exit_code(self) -> int:
        return 0 if all(o.status in FINISHED for o in self.outcomes) else 1


def _apply_one(engine: Engine, ref: StackRef, wave: int, shown: StackPreview, progress: Progress) -> StackOutcome:
    t = time.monotonic()
    again = preview_one(engine, ref, wave, progress, phase="re-preview")
    if again.status in ("error", "refused"):
        detail = "; ".join([v.line() for v in again.violations if v.mandatory] + again.errors)[:2000]
        return StackOutcome(ref.name, wave, REFUSED, f"re-preview {again.status}: {detail}", time.monotonic() - t,
                            again)
    diff = plan_difference(shown, again)
    if diff:
        return StackOutcome(ref.name, wave, REFUSED, "the plan changed since it was shown; preview the fleet again "
                            "and check it:\n" + "\n".join(diff[:20]), time.monotonic() - t, again)
    if not again.changes:
        return StackOutcome(ref.name, wave, NOTHING, "", time.monotonic() - t, again)
    collector = Collector(ref.name, wave)
    progress.started(ref.name, "up")

    def on_record(record: Record) -> None:
        collector.add(record)
        progress.record(ref.name, collector, record)

    try:
        run = engine.up(ref, on_record)
    except Exception as exc:  # as in preview_one
        run = RunResult(f"{type(exc).__name__}: {exc}")
    if run.error is not None:
        errors = collector.result(run.error).errors
        return StackOutcome(ref.name, wave, FAILED, "\n".join(errors)[-3000:], time.monotonic() - t, again)
    # The engine ran its own preview inside `up`; a resource changed that the shown plan left alone
    # means the world moved in that last window: the stack is done, but the rollout stops here.
    planned = {urn for urn, *_rest in again.plan}
    extra = sorted({step[0] for step in collector.result().plan} - planned)
    if extra:
        return StackOutcome(ref.name, wave, FAILED, "the update changed resources its plan did not show: "
                            + ", ".join(u.rsplit("::", 1)[-1] for u in extra), time.monotonic() - t, again)
    return StackOutcome(ref.name, wave, DONE, "", time.monotonic() - t, again)


def rollout(engine: Engine, fleet: Fleet, shown: Sequence[StackPreview], parallel: int, state: RolloutState,
            progress: Progress | None = None, stop: threading.Event | None = None,
            only_wave: int | None = None) -> RolloutResult:
    """Apply the fleet wave by wave; `shown` are the previews the operator saw (one per stack)."""
    progress = progress or Quiet()
    stop = stop or threading.Event()
    by_name = {p.stack: p for p in shown}
    outcomes: dict[str, StackOutcome] = {}
    stopped_by: str | None = None
    for wave_no, wave in enumerate(fleet.waves):
        if only_wave is not None and wave_no != only_wave:
            for ref in wave:
                outcomes[ref.name] = StackOutcome(ref.name, wave_no, state.status.get(ref.name, UNTOUCHED),
                                                  "not in this run's wave")
            continue
        todo = [ref for ref in wave if state.status.get(ref.name) not in FINISHED]
        for ref in wave:
            if ref not in todo:
                outcomes[ref.name] = StackOutcome(ref.name, wave_no, state.status[ref.name],
                                                  "finished in an earlier run")
        if stopped_by is not None or stop.is_set():
            stopped_by = stopped_by or "interrupt"
            for ref in todo:
                outcomes[ref.name] = StackOutcome(ref.name, wave_no, UNTOUCHED, f"not started: stopped by {stopped_by}")
            continue
        failed = threading.Event()

        def job(ref: StackRef, wave_no: int = wave_no, failed: threading.Event = failed) -> StackOutcome:
            if failed.is_set() or stop.is_set():
                why = "a failure in this wave" if failed.is_set() else "interrupt"
                return StackOutcome(ref.name, wave_no, UNTOUCHED, f"not started: stopped by {why}")
            out = _apply_one(engine, ref, wave_no, by_name[ref.name], progress)
            if out.status not in FINISHED:
                failed.set()  # no new stack starts; the running ones finish
            progress.finished(ref.name, out.status, out.detail)
            return out

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="fleet") as pool:
            futures = [pool.submit(job, ref) for ref in todo]
            for fut in concurrent.futures.as_completed(futures):  # saved as each ends, not in list order
                out = fut.result()
                outcomes[out.stack] = out
                if out.status != UNTOUCHED:
                    state.status[out.stack] = out.status
                    state.save()
        bad = [outcomes[r.name] for r in todo if outcomes[r.name].status not in FINISHED | {UNTOUCHED}]
        if stop.is_set() and (bad or any(outcomes[r.name].status == UNTOUCHED for r in todo)):
            stopped_by = "interrupt"  # a stack the interrupt cancelled fails too: the interrupt is the cause
        elif bad:
            stopped_by = bad[0].stack
    for name, out in outcomes.items():
        if out.status == UNTOUCHED and stopped_by == "interrupt":
            state.status[name] = INTERRUPTED
    state.save()
    order = [ref.name for ref in fleet.stacks]
    return RolloutResult([outcomes[n] for n in order], stopped_by)


def state_path(fleet_file: Path | None, project_dir: Path, shard: tuple[int, int] | None,
               wave: int | None = None) -> Path:
    """Beside the fleet file: `<fleet>.state.json`; `<fleet>.wave-2.shard-2-of-4.state.json` for one
    wave of one shard (each CI job its own file)."""
    suffix = (f".wave-{wave}" if wave else "") + (f".shard-{shard[0]}-of-{shard[1]}" if shard else "")
    if fleet_file is not None:
        return fleet_file.with_name(fleet_file.stem + suffix + ".state.json")
    return project_dir / f".kube-audit-fleet{suffix}.state.json"


def describe(state: RolloutState) -> dict[str, Any]:
    return {"stacks": state.stacks, "status": state.status, "resumeFrom": state.first_unfinished()}

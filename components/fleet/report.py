"""What the fleet commands print: the preview table, the rollout summary, JSON and live progress."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from .classify import NO_CHANGE, POLICY_ONLY, RESTART, UNCHANGED, Collector, Record, StackPreview, Step
from .rollout import RolloutResult


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _guard(p: StackPreview) -> str:
    mandatory = [v for v in p.violations if v.mandatory]
    if mandatory:
        return "REFUSED: " + ", ".join(sorted({v.policy for v in mandatory}))
    if p.violations:
        return "advisory: " + ", ".join(sorted({v.policy for v in p.violations}))
    return "pass"


def preview_table(previews: Sequence[StackPreview]) -> str:
    """One table for the fleet (one row per stack), then per stack what the row cannot hold."""
    rows = []
    for p in previews:
        rows.append([p.stack, str(p.wave + 1), str(p.count(RESTART)), str(p.count(POLICY_ONLY)),
                     str(p.count(UNCHANGED)), str(len(p.drift)), _guard(p), p.agent.text() if p.agent else "-",
                     p.status.upper() if p.status in ("error", "refused") else p.status])
    blocks = [table(["STACK", "WAVE", "RESTART", "POLICY-ONLY", "UNCHANGED", "DRIFT", "GUARDRAILS", "INSIGHT-AGENT",
                  "RESULT"], rows)]
    for p in previews:
        ops: dict[str, int] = {}
        for _urn, op, *_rest in p.plan:
            ops[op] = ops.get(op, 0) + 1
        lines = [f"  steps: {', '.join(f'{op} {n}' for op, n in sorted(ops.items()))}"] if ops else []
        lines += [f"  master {m}: {kind}" for m, kind in p.masters.items()]
        lines += [f"  drift: {r}" for r in p.drift]
        lines += [f"  differs from the new config: {r}" for r in p.config_differs]
        lines += [f"  guardrail {v.line()}" for v in p.violations]
        lines += [f"  also changes: {c}" for c in p.other_changes]
        lines += [f"  warning: {_first(w)}" for w in p.warnings]
        lines += [f"  error: {e}" for e in p.errors]
        blocks.append(f"\n{p.stack} ({p.seconds:.1f}s, plan {p.fingerprint if p.changes else '-'}):\n" +
                   ("\n".join(lines) if lines else "  nothing to do"))
    return "\n".join(blocks)


def _first(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit] + "..."


def rollout_table(result: RolloutResult) -> str:
    rows = [[o.stack, str(o.wave + 1), o.status, f"{o.seconds:.1f}s" if o.seconds else "-",
             _first(o.detail, 100) if o.detail else ""] for o in result.outcomes]
    out = table(["STACK", "WAVE", "RESULT", "TIME", "DETAIL"], rows)
    if result.stopped_by:
        why = "interrupted (Ctrl-C)" if result.stopped_by == "interrupt" else f"{result.stopped_by} failed"
        untouched = [o.stack for o in result.outcomes if o.status in ("untouched", "interrupted")]
        out += f"\nrollout stopped: {why}; untouched: {', '.join(untouched) or 'none'}"
        out += "\nfix the cause, then `fleet up --resume` continues from the first unfinished stack"
    for o in result.outcomes:
        if o.status in ("failed", "refused") and o.detail:
            out += f"\n\n{o.stack}: {o.detail}"
    return out


def preview_json(previews: Sequence[StackPreview], code: int) -> dict[str, Any]:
    return {"exitCode": code, "stacks": [p.to_json() for p in previews]}


def rollout_json(result: RolloutResult) -> dict[str, Any]:
    return {"exitCode": result.exit_code, "stoppedBy": result.stopped_by,
            "stacks": [{"stack": o.stack, "wave": o.wave, "status": o.status, "detail": o.detail,
                        "seconds": round(o.seconds, 2)} for o in result.outcomes]}


# -- live progress -------------------------------------------------------------------------------

@dataclass
class _Live:
    phase: str
    started: float
    master: str = "-"
    step: str = "starting"


class LineProgress:
    """One line per event worth a line (a step that changes something, a stack's start and end):
    what a CI log shows."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.live: dict[str, _Live] = {}

    def _say(self, text: str) -> None:
        with self.lock:
            print(f"[{time.monotonic() - self.t0:7.1f}s] {text}", file=self.stream, flush=True)

    def started(self, stack: str, phase: str) -> None:
        with self.lock:
            self.live[stack] = _Live(phase, time.monotonic())
        self._say(f"{stack}: {phase} started")

    def _update(self, stack: str, collector: Collector, record: Record) -> Step | None:
        if not isinstance(record, Step) or not record.custom or record.op in NO_CHANGE:
            return None
        with self.lock:
            live = self.live.get(stack)
            if live is None:
                return None
            master = collector.master_of(record)
            live.master = master or live.master
            live.step = f"{record.op} {record.name}" + ("" if record.phase == "pre" else f" ({record.phase})")
        return record

    def record(self, stack: str, collector: Collector, record: Record) -> None:
        step = self._update(stack, collector, record)
        live = self.live.get(stack)
        if step is not None and live is not None and live.phase == "up":
            self._say(f"{stack}: master {live.master}: {live.step}")

    def finished(self, stack: str, status: str, detail: str = "") -> None:
        with self.lock:
            live = self.live.pop(stack, None)
        took = f" after {time.monotonic() - live.started:.1f}s" if live else ""
        self._say(f"{stack}: {live.phase if live else 'stack'} {status}{took}")

    def close(self) -> None:
        pass


class TtyProgress(LineProgress):
    """A block redrawn twice a second: per running stack, its phase, current master, step and elapsed."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        self.drawn = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="fleet-progress")
        self.thread.start()

    def _say(self, text: str) -> None:
        with self.lock:
            self._clear()
            print(f"[{time.monotonic() - self.t0:7.1f}s] {text}", file=self.stream, flush=True)

    def record(self, stack: str, collector: Collector, record: Record) -> None:
        self._update(stack, collector, record)

    def _clear(self) -> None:
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}A\x1b[J")
            self.drawn = 0

    def _draw(self) -> None:
        with self.lock:
            self._clear()
            now = time.monotonic()
            rows = [[s, v.phase, v.master, v.step[:70], f"{now - v.started:.0f}s"]
                    for s, v in sorted(self.live.items())]
            if rows:
                text = table(["STACK", "PHASE", "MASTER", "STEP", "ELAPSED"], rows)
                self.stream.write(text + "\n")
                self.drawn = text.count("\n") + 1
            self.stream.flush()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self._draw()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        with self.lock:
            self._clear()
            self.stream.flush()

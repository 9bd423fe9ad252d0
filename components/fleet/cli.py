"""``python -m components fleet preview|up|status [STACK|GLOB ...] [--file FLEET.yaml]`` (docs/fleet.md).

Exit codes: preview 0 nothing to do, 1 an error or a refusal, 2 changes pending; up 0 every stack
converged, 1 a refusal, a failed stack, or an interrupt (the table says which); status 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from .classify import exit_code
from .report import LineProgress, TtyProgress, preview_json, preview_table, rollout_json, rollout_table
from .rollout import RolloutState, default_parallel, describe, preview_fleet, rollout, state_path
from .spec import Fleet, FleetError, build_fleet, load_fleet_file, parse_shard, shard


def register(subparsers: Any) -> None:
    """Add ``fleet`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "fleet", help="preview, roll out (in waves) and report many stacks of this project at once",
        description="Runs the same stacks a person runs by hand, through the Pulumi Automation API. See docs/fleet.md.")
    sub = p.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    for name, helptext in (("preview", "preview every stack at once: one table, exit 0 clean / 1 error or refusal "
                                       "/ 2 changes pending"),
                           ("up", "preview, then apply wave by wave; the first failed stack stops the rollout"),
                           ("status", "each stack's last update and the rollout state")):
        s = sub.add_parser(name, help=helptext, description=helptext)
        s.add_argument("stacks", nargs="*", metavar="STACK|GLOB",
                       help="stack names or globs (with or instead of --file)")
        s.add_argument("--file", "-f", type=Path, metavar="FLEET.yaml", help="the fleet file: stacks, waves, parallel")
        s.add_argument("--project-dir", type=Path, default=Path.cwd(), help="the Pulumi project (default: cwd)")
        s.add_argument("--shard", metavar="i/n", help="only the stacks in shard i of n (sha256 of the name)")
        s.add_argument("--json", action="store_true", help="print JSON instead of tables")
        s.add_argument("--parallel", type=int, metavar="N", help="stacks at once (default: the file's, else the "
                       "CPU count)")
        s.add_argument("--no-policy-pack", action="store_true", help="do not run the guardrail pack")
        s.add_argument("--state-file", type=Path, help="the rollout state (default: beside the fleet file)")
        if name == "up":
            s.add_argument("--resume", action="store_true", help="continue from the first unfinished stack")
            s.add_argument("--wave", type=int, metavar="K", help="only wave K (1-based; for a CI stage per wave)")
            s.add_argument("--yes", action="store_true", help="apply without asking (required off a terminal)")
        s.set_defaults(func=run_fleet)


def _fleet(args: argparse.Namespace, engine: Any) -> Fleet:
    spec, text, source = None, "", "the command line"
    if args.file is not None:
        spec, text = load_fleet_file(args.file)
        source = str(args.file)
    available = engine.list_stacks()
    fleet = build_fleet(spec, text, source, args.stacks, available, tags=None)
    if (spec is None or spec.waves is None) and len(fleet.stacks) > 1:
        tags = engine.tags([s.name for s in fleet.stacks])
        if any(tags.values()):
            fleet = build_fleet(spec, text, source, args.stacks, available, tags=tags)
    if args.shard:
        i, n = parse_shard(args.shard)
        fleet = shard(fleet, i, n)
    return fleet


@contextmanager
def _stop_on_interrupt() -> Iterator[threading.Event]:
    """Ctrl-C once: start no new stack (running engines get the terminal's SIGINT too and finish their
    current step, the engine's own graceful cancel); twice: stop waiting."""
    stop = threading.Event()

    def handler(_sig: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nfleet: interrupt: no new stack starts; running ones finish their current step "
              "(Ctrl-C again to stop waiting)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler) if threading.current_thread() is threading.main_thread() else None
    try:
        yield stop
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def run_fleet(args: argparse.Namespace, engine: Any = None) -> int:
    try:
        return _run(args, engine)
    except FleetError as err:
        print(f"fleet: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the second Ctrl-C: engines already started may still be finishing
        print("fleet: stopped waiting; `fleet status` shows where each stack ended", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, engine: Any) -> int:
    project = args.project_dir.resolve()
    if engine is None:
        if not (project / "Pulumi.yaml").is_file():
            raise FleetError(f"{project}: no Pulumi.yaml; run from the project's directory or pass --project-dir")
        from .engine import AutomationEngine  # the only pulumi import, made when a command really runs

        spec_pack = None
        if args.file is not None:
            spec_pack = load_fleet_file(args.file)[0]
        pack = None if args.no_policy_pack else (spec_pack.policy_pack if spec_pack else "policies/guardrails")
        pack_cfg = spec_pack.policy_pack_config if spec_pack and pack else None
        engine = AutomationEngine(project, [pack] if pack else [], [pack_cfg] if pack_cfg else [])
    fleet = _fleet(args, engine)
    parallel = args.parallel or fleet.parallel or default_parallel()
    if parallel < 1:
        raise FleetError(f"--parallel {parallel}: must be at least 1")
    shard_t = parse_shard(args.shard) if args.shard else None
    wave = getattr(args, "wave", None)
    if wave is not None:
        if not 1 <= wave <= len(fleet.waves):
            raise FleetError(f"--wave {wave}: the fleet has waves 1..{len(fleet.waves)}")
        # Only that wave is previewed and applied; the others keep their place (and number).
        fleet = dataclasses.replace(fleet, waves=tuple(w if i == wave - 1 else () for i, w in enumerate(fleet.waves)))
    state_file = args.state_file or state_path(args.file, project, shard_t, wave)
    if args.fleet_command == "status":
        return _status(args, engine, fleet, state_file)
    tty = sys.stderr.isatty() and not args.json
    progress = TtyProgress() if tty else LineProgress()
    with _stop_on_interrupt() as stop:
        try:
            previews = preview_fleet(engine, fleet, parallel, progress, stop)
        finally:
            progress.close()
        code = exit_code(previews)
        if args.fleet_command == "preview" or code == 1:
            _print(args, preview_json(previews, code), preview_table(previews))
            if args.fleet_command == "up":
                print("fleet: nothing applied: a stack's preview failed or a guardrail refused it (table above)",
                      file=sys.stderr)
            return code
        if not args.json:
            print(preview_table(previews), flush=True)
        if not args.yes and not _confirm():
            print("fleet: nothing applied (pass --yes to apply without asking)", file=sys.stderr)
            return 1
        state = _state(args, fleet, state_file)
        progress = TtyProgress() if tty else LineProgress()
        try:
            result = rollout(engine, fleet, previews, parallel, state, progress, stop)
        finally:
            progress.close()
    _print(args, rollout_json(result), rollout_table(result))
    return result.exit_code


def _state(args: argparse.Namespace, fleet: Fleet, path: Path) -> RolloutState:
    names = [s.name for s in fleet.stacks]
    if not args.resume:
        return RolloutState(path, names)
    old = RolloutState.load(path)
    if old is None:
        raise FleetError(f"--resume: no rollout state at {path}; run `fleet up` without --resume first")
    if old.stacks != names:
        raise FleetError(f"--resume: {path} is the state of another fleet ({', '.join(old.stacks)}), not of "
                         f"{', '.join(names)}; run without --resume to start over")
    return RolloutState(path, names, old.status)


def _confirm() -> bool:
    if not sys.stdin.isatty():
        return False
    return input("apply the plans above, wave by wave? [y/N] ").strip().lower() in ("y", "yes")


def _status(args: argparse.Namespace, engine: Any, fleet: Fleet, state_file: Path) -> int:
    state = RolloutState.load(state_file)
    rows, out = [], []
    for i, wave in enumerate(fleet.waves):
        for ref in wave:
            last = engine.last_update(ref)
            rollout_status = state.status.get(ref.name, "-") if state else "-"
            out.append({"stack": ref.name, "wave": i + 1, "lastUpdate": last, "rollout": rollout_status})
            when = last.get("end", "")[:19] if last else ""
            rows.append([ref.name, str(i + 1), f"{last.get('kind', '-')} {last.get('result', '')}".strip() if last
                         else "never updated", when, rollout_status])
    from .report import table

    text = table(["STACK", "WAVE", "LAST UPDATE", "AT", "ROLLOUT"], rows)
    if state is not None:
        resume = state.first_unfinished()
        text += f"\nrollout state {state_file}: " + (f"--resume starts at {resume}" if resume else "finished")
    _print(args, {"stacks": out, "state": describe(state) if state else None, "stateFile": str(state_file)}, text)
    return 0


def _print(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, indent=1) if args.json else text, flush=True)

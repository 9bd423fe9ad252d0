"""``python -m components volume POLICY... --sample FILE...``: what each policy would write.

Exit codes: 0 answered (bad sample lines are counted and reported, not fatal); 2 a policy or a
sample file cannot be used (named with file, line and column), or ``--plot`` without matplotlib.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from components.manifest.desired import MAX_AUDIT_LOG_MAXAGE, MAX_AUDIT_LOG_MAXBACKUP, MAX_AUDIT_LOG_MAXSIZE
from components.policy import Policy, PolicyError, load_policy_file
from components.policy.profiles import is_profile_name, resolve_policy
from components.settings import LogSettings, SettingsError, stack_file_log_settings

from .forecast import forecast
from .reader import SampleError
from .report import forecast_json, format_forecast, human_bytes, plot
from .rotation import Rotation


def register(subparsers: Any) -> None:
    """Add ``volume`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "volume",
        help="predict each policy's audit log volume and the history rotation keeps, from a sample",
        description="Replays every request of an audit log sample (JSON lines, plain or gzip) through each "
        "POLICY and predicts events and bytes per day, by level, rule, user and resource, and the hours of "
        "history each master keeps. A bare name such as dce-default selects a shipped profile.",
    )
    p.add_argument("policies", nargs="+", metavar="POLICY")
    p.add_argument("--sample", nargs="+", required=True, metavar="FILE", type=Path,
                   help="audit log files (rotated and .gz files too); best taken under a log-everything policy")
    p.add_argument("--stack-config", type=Path, metavar="Pulumi.STACK.yaml",
                   help="take log.maxSize/maxBackup/maxAge/compress and the number of masters from this stack")
    p.add_argument("--max-size", type=int, metavar="MB", help="log.maxSize (default: the stack's, else 100)")
    p.add_argument("--max-backup", type=int, metavar="N", help="log.maxBackup (default: the stack's, else 1)")
    p.add_argument("--max-age", type=int, metavar="DAYS", help="log.maxAge (default: the stack's, else 30)")
    p.add_argument("--compress", action="store_true", default=None, help="log.compress: rotated files are gzipped")
    p.add_argument("--masters", type=int, metavar="N",
                   help="apiservers sharing the sample's traffic (default: the stack's masters, else 1: the "
                   "sample is one master's log)")
    p.add_argument("--span-seconds", type=float, metavar="S",
                   help="the time the sample covers (default: first to last timestamp in it)")
    p.add_argument("--top", type=int, default=5, metavar="N", help="users/resources/rules listed (default 5)")
    p.add_argument("--json", action="store_true", help="print the forecast as JSON")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write bytes per day by policy and rule")
    p.set_defaults(func=run_volume)


def load_policy_arg(value: str) -> Policy:
    """A policy file, or a shipped profile when ``value`` is a bare name and no such file exists."""
    path = Path(value)
    if not path.exists() and is_profile_name(value):
        path = resolve_policy(value, Path.cwd())  # ValueError names the available profiles
    return load_policy_file(path)


def _progress(total: int) -> Any:
    start = time.monotonic()

    def show(done: int) -> None:
        rate = done / max(time.monotonic() - start, 1e-6)
        share = f" {done / total:.0%}" if total else ""
        print(f"\rvolume: read {human_bytes(done)}{share} ({human_bytes(rate)}/s)", end="", file=sys.stderr,
              flush=True)

    return show


def _rotation(args: argparse.Namespace) -> tuple[Rotation, int]:
    """Flags over the stack file over the stack defaults (raises SettingsError naming the key)."""
    log, masters = LogSettings(), 1
    if args.stack_config is not None:
        log, masters = stack_file_log_settings(args.stack_config)
    rotation = Rotation(
        log.max_size if args.max_size is None else args.max_size,
        log.max_backup if args.max_backup is None else args.max_backup,
        log.max_age if args.max_age is None else args.max_age,
        bool(log.compress) if args.compress is None else args.compress,
    )
    return rotation, masters if args.masters is None else args.masters


def _flag_problem(args: argparse.Namespace, masters: int) -> str | None:
    """What is wrong with the numeric flags (and where --plot would go), before any sample is read."""
    # The same bounds the stack's log settings have: what kube-apiserver runs with (desired.py).
    for flag, high in (("max_size", MAX_AUDIT_LOG_MAXSIZE), ("max_backup", MAX_AUDIT_LOG_MAXBACKUP),
                       ("max_age", MAX_AUDIT_LOG_MAXAGE)):
        value = getattr(args, flag)
        if value is not None and not 0 <= value <= high:
            return f"--{flag.replace('_', '-')} must be from 0 to {high}, got {value}"
    if masters < 1:
        return f"--masters must be at least 1, got {masters}"
    # NaN compares false with everything and inf scales every total to 0 B a day.
    if args.span_seconds is not None and not (math.isfinite(args.span_seconds) and args.span_seconds > 0):
        return f"--span-seconds must be a positive number of seconds, got {args.span_seconds}"
    if args.top < 0:
        return f"--top must not be negative, got {args.top}"
    if args.plot is not None:
        parent = args.plot.parent
        if not parent.is_dir():
            return f"--plot {args.plot}: the directory {parent} does not exist"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"--plot {args.plot}: the directory {parent} is not writable"
    return None


def run_volume(args: argparse.Namespace) -> int:
    """Load every policy, read the samples once, print the forecast."""
    try:
        rotation, masters = _rotation(args)
    except SettingsError as err:
        print(err, file=sys.stderr)  # names the stack file and the key
        return 2
    flags = _flag_problem(args, masters)
    if flags:
        print(f"volume: {flags}", file=sys.stderr)
        return 2
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("volume: --plot needs matplotlib (pip install -r requirements.txt)", file=sys.stderr)
            return 2
    policies: list[tuple[str, Policy]] = []
    for value in args.policies:
        try:
            policies.append((value, load_policy_arg(value)))
        except PolicyError as err:
            for problem in err.problems:
                print(problem, file=sys.stderr)
            return 2
        except ValueError as err:
            print(f"{value}: {err}", file=sys.stderr)
            return 2
    for path in args.sample:
        if not path.is_file():
            print(f"{path}: no such sample file", file=sys.stderr)
            return 2
    total = sum(p.stat().st_size for p in args.sample)
    progress = _progress(total) if sys.stderr.isatty() else None
    try:
        result = forecast(policies, list(args.sample), rotation, masters, args.span_seconds, progress)
    except SampleError as err:
        print(err, file=sys.stderr)
        return 2
    if progress is not None:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(forecast_json(result, args.top), indent=1))
    else:
        print(format_forecast(result, args.top))
    if result.bad_lines:
        print(f"volume: {result.bad_lines} bad line(s) skipped", file=sys.stderr)
    if args.plot is not None:
        try:
            plot(result, args.plot)
        except (OSError, ValueError) as err:  # ValueError: matplotlib knows no such image format
            print(f"volume: {args.plot}: cannot write the plot: {err}", file=sys.stderr)
            return 2
        print(f"volume: plot written to {args.plot}", file=sys.stderr)
    return 0

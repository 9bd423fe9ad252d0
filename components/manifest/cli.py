"""`python -m components manifest FILE (--enable|--disable)`: the planner on a local file.

The same plan a master runs, with the default settings, for trying a change by hand or checking a
manifest in CI (`--check`). No readiness wait: there is no kubelet here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from components.manifest import planner
from components.manifest.desired import AuditState
from components.manifest.files import NodeError, atomic_write, backup, check_backup_dir, read_manifest


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "manifest",
        help="converge a local kube-apiserver manifest (audit on or off)",
        description="Apply the audit planner to a kube-apiserver static-pod manifest file, in place.",
    )
    parser.add_argument("file", metavar="FILE")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--enable", action="store_true", help="set the audit flags, mounts and volumes")
    mode.add_argument("--disable", action="store_true", help="remove every --audit-* flag and our mounts")
    parser.add_argument("--backup-dir", metavar="DIR", help="copy the old file here before writing")
    parser.add_argument("--policy-hash", help="stamp this policy hash as the restart annotation")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a change would be made, 0 if converged"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path: str = args.file
    state = AuditState(enabled=bool(args.enable), policy_hash=args.policy_hash)
    try:
        if args.backup_dir:
            check_backup_dir(args.backup_dir, path)
        data = read_manifest(path)
        old_text = data.decode("utf-8")
        _, _, new_text = planner.rewrite(old_text, state, path)
    except UnicodeDecodeError as exc:
        print(f"{path}: not UTF-8 text (byte {exc.start}); nothing written", file=sys.stderr)
        return 2
    except (planner.ManifestError, NodeError) as exc:
        print(f"{exc}; nothing written", file=sys.stderr)
        return 2
    if new_text == old_text:
        print(f"{path}: already converged (audit {'on' if args.enable else 'off'})")
        return 0
    # The bytes as they are on disk against the bytes we would write: a lost comment or a changed
    # layout shows here, not only the audit change.
    sys.stdout.write(planner.unified_diff(old_text, new_text, path))
    if args.check:
        return 1
    try:
        if args.backup_dir:
            print(f"backup: {backup(path, data, args.backup_dir, time.time())}")
        atomic_write(path, new_text.encode("utf-8"), os.stat(path).st_mode & 0o777)
    except NodeError as exc:
        print(f"{exc}", file=sys.stderr)
        return 2 if exc.code == 2 else 1
    return 0

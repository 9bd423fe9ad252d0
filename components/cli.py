"""The command line for people and CI: `python -m components <validate|lint|explain|manifest|volume|fleet> ...`."""

from __future__ import annotations

import argparse
import sys

from components.fleet import cli as fleet_cli
from components.manifest import cli as manifest_cli
from components.policy import cli as policy_cli
from components.volume import cli as volume_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m components",
        description="kube-audit: check audit policies and plan kube-apiserver manifest changes offline.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    policy_cli.register(sub)
    manifest_cli.register(sub)
    volume_cli.register(sub)
    fleet_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

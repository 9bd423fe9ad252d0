"""``python -m components.policy validate|lint|explain ...`` (same as ``python -m components``)."""

from __future__ import annotations

import argparse
import sys

from .cli import register


def main(argv: list[str] | None = None) -> int:
    """Run one policy subcommand; returns its exit code."""
    parser = argparse.ArgumentParser(prog="python -m components.policy")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""Manifest rewrite cost on a master: milliseconds per `planner.rewrite` (parse, plan, dump, kubelet check).

    python benchmarks/bench_manifest.py [--rounds 20]

Prints numbers; it is not a test. Single-threaded, pure-Python ruamel.yaml as shipped in the node
bundle. Also prints the bundle size (what is copied to every master).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.manifest import planner  # noqa: E402
from components.manifest.bundle import build_bundle_bytes  # noqa: E402
from components.manifest.desired import AuditState  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "manifests"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    on, off = AuditState(enabled=True, policy_hash="a" * 64), AuditState(enabled=False)
    print(f"python {sys.version.split()[0]}; {args.rounds} rounds per row; median (min) ms")
    for name in ("kubeadm-v1.31.yaml", "hand-formatted.yaml"):
        text = (FIXTURES / name).read_text()
        enabled = planner.rewrite(text, on, name)[2]
        for label, source, state in (("enable", text, on), ("disable", enabled, off), ("no-op", enabled, on)):
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                planner.rewrite(source, state, name)
                times.append((time.perf_counter() - start) * 1000)
            print(f"{name:24} {label:8} {len(source):6d} bytes  {statistics.median(times):7.1f} ({min(times):.1f}) ms")
    print(f"node bundle: {len(build_bundle_bytes())} bytes")


if __name__ == "__main__":
    main()

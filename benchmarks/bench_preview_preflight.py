"""Preview time with the masters read (drift and `up`'s preflight) vs `drift.read: false`, in one run.

    KUBE_AUDIT_TOOLCHAIN_BIN=... python benchmarks/bench_preview_preflight.py --lab ~/.cache/kube-audit/lab-x \\
        [--rounds 5]

Prints numbers; it is not a test. Needs a running lab (`python3 -m lab --state DIR up`). Creates its
own stack `bench-preflight` (config beside the lab's, audit on, insight-agent and kubeadm left
alone), never runs `up` (no master changes: a preview of turning audit on), and alternates the two
kinds of preview round by round so that machine load hits both alike. Removes the stack at the end.
The issue's target: the median with reading at most 2 x the median without.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.config import Lab  # noqa: E402
from tests.e2e.harness import E2E  # noqa: E402
from tests.e2e.stacks import Stack  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lab", required=True, help="the lab's state dir")
    parser.add_argument("--rounds", type=int, default=5)
    a = parser.parse_args()
    e2e = E2E(Lab.load(Path(a.lab).expanduser()), {})
    stack = Stack(e2e, "bench-preflight")
    stack.create({"kube-audit:enabled": "true", "kube-audit:policy": "dce-default",
                  "kube-audit:insightAgent": {"enabled": False}, "kube-audit:kubeadm": {"persist": False}},
                 kubeconfig=False)
    times: dict[str, list[float]] = {"with_reading": [], "without_reading": []}
    try:
        stack.run("preview")  # warm: plugins, the bundle build, the Python bytecode caches
        for _ in range(a.rounds):
            for kind, read in (("with_reading", "true"), ("without_reading", "false")):
                stack.run("config", "set", "--path", "kube-audit:drift.read", read)
                t = time.monotonic()
                r = stack.run("preview", "--diff")
                times[kind].append(time.monotonic() - t)
                if read == "true" and "what `pulumi up` does, per master:" not in r.stdout + r.stderr:
                    # (with --diff the engine prints info diagnostics on stderr)
                    raise SystemExit(f"the preview with reading printed no summary:\n{r.stdout[-3000:]}")
    finally:
        stack.remove()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "masters": len(e2e.hosts), "rounds": a.rounds,
        "preview_seconds_median": {k: round(v, 2) for k, v in med.items()},
        "preview_seconds_all": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "ratio": round(med["with_reading"] / med["without_reading"], 2),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Drift reading cost: one parallel read of every lab master, and the pure comparison, in seconds.

    python benchmarks/bench_drift.py --lab ~/.cache/kube-audit/lab-i9 [--rounds 10]

Prints numbers; it is not a test. Needs a running lab (`python3 -m lab --state DIR up`): it reads
each master over SSH exactly as a preview does (components/drift/facts.py) and compares the facts
with the lab stack's desired state. The preview-level ratio (with/without reading) is measured by
tests/e2e/test_drift.py into the e2e measurements.
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

from components.drift.compare import compare, sha256_text  # noqa: E402
from components.drift.facts import FactRequest, read_all  # noqa: E402
from components.manifest.desired import AuditState  # noqa: E402
from components.remote.ssh import Connection  # noqa: E402
from lab.config import Lab  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lab", required=True, help="the lab's state dir")
    parser.add_argument("--rounds", type=int, default=10)
    a = parser.parse_args()
    lab = Lab.load(Path(a.lab).expanduser())
    key = lab.ssh_key.read_text()
    state = AuditState(enabled=True, policy_hash=sha256_text("x"))
    request = FactRequest("/etc/kubernetes/manifests/kube-apiserver.yaml",
                          "/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml")
    targets = {h.name: (Connection(host=h.ip, private_key=key, host_key=h.host_public_key()), request)
               for h in lab.hosts()}
    walls, per_master, compares = [], {name: [] for name in targets}, []
    for _ in range(a.rounds):
        t = time.perf_counter()
        readings = read_all(targets, 20.0)
        walls.append(time.perf_counter() - t)
        for name, reading in readings.items():
            if reading.facts is None:
                raise SystemExit(f"{name}: {reading.error}")
            per_master[name].append(reading.seconds)
            t = time.perf_counter()
            compare(name, state, reading.facts, state.policy_hash)
            compares.append(time.perf_counter() - t)
    print(json.dumps({
        "masters": len(targets), "rounds": a.rounds,
        "parallel_read_seconds": {"median": round(statistics.median(walls), 3), "max": round(max(walls), 3)},
        "per_master_read_seconds_median": {n: round(statistics.median(v), 3) for n, v in per_master.items()},
        "compare_ms_median": round(statistics.median(compares) * 1000, 2),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

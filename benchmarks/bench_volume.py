"""Time and peak memory of `python -m components volume` on a generated sample of N events.

    python benchmarks/bench_volume.py [--events 1000000] [--dir ~/.cache/kube-audit/volume-bench]

Writes a log-everything sample with tests/unit/volume/sample.py (the independent writer the unit
tests check against), once, then runs `volume` over it for the three shipped profiles in a child
process and prints wall time, CPU time, peak RSS (getrusage of the child) and throughput. Prints
numbers; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.unit.volume.sample import random_calls, write_under  # noqa: E402


def generate(path: Path, events: int) -> None:
    """Append calls until the file holds ``events`` events (about 2.1 events per call)."""
    written = 0
    tmp = path.with_suffix(".partial")
    with open(tmp, "w") as out:
        seed = 0
        while written < events:
            calls = list(random_calls(2000, seed=seed, gap_ms=5))
            text = write_under(calls, None)
            out.write(text)
            written += text.count("\n")
            seed += 1
    tmp.replace(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path.home() / ".cache/kube-audit/volume-bench")
    a = ap.parse_args()
    a.dir.mkdir(parents=True, exist_ok=True)
    sample = a.dir / f"sample-{a.events}.log"
    if not sample.exists():
        t = time.monotonic()
        generate(sample, a.events)
        print(f"generated {sample} in {time.monotonic() - t:.1f}s", file=sys.stderr)
    with open(sample, "rb") as fh:
        lines = sum(1 for _ in fh)
    size = sample.stat().st_size
    cmd = [sys.executable, "-m", "components", "volume", "dce-default", "metadata-only", "security",
           "--sample", str(sample), "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    doc = json.loads(r.stdout)
    result = {
        "events": lines,
        "sample_bytes": size,
        "requests": doc["sample"]["requests"],
        "policies": 3,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "peak_rss_mib": round(after.ru_maxrss / 1024, 1),  # Linux: KiB
        "events_per_second": round(lines / wall),
        "mib_per_second": round(size / wall / 2**20, 1),
        "bytes_per_day": {p["policy"]: p["bytesPerDay"] for p in doc["policies"]},
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

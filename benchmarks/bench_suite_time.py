"""Where the suite's time goes: seconds and tests per tier (and per e2e module) from junit XML files.

    python benchmarks/bench_suite_time.py RUN_DIR/*.xml [--wall NAME=SECONDS ...] [--json]

scripts/test.sh writes one junit file per lane (lint, fast tiers, lab tier) under
$KUBE_AUDIT_TEST_REPORTS (default .build/test-reports) and prints this table at the end, so a
regression in suite time shows as a number beside the tier it came from. A testcase's time in junit
is setup + call + teardown, so a module's fixture (a stack, a rollout) counts in the module's line.
`--wall` adds measured wall-clock lines (each lane, the whole run), which is what CI's limit is on:
the lanes run at the same time, so the tier seconds add up to more than the wall time.
It also prints the closing line CI reads: `suite: N passed, N failed, N skipped`.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tier:
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def tests(self) -> int:
        return sum(self.counts.values())


def tier_of(classname: str, file: str | None) -> str:
    """`unit`, `integration`, `parity`, `kubelet`, `lab`, or `e2e/<module>` for one testcase."""
    where = (file or classname.replace(".", "/")).replace("\\", "/")
    parts = where.split("/")
    if parts[0] == "lab":
        return "lab"
    if parts[0] == "tests" and len(parts) > 1:
        if parts[1] == "e2e" and len(parts) > 2:
            return "e2e/" + parts[2].removesuffix(".py")
        return parts[1]
    return parts[0]


def outcome(case: ET.Element) -> str:
    for tag, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        if case.find(tag) is not None:
            return name
    return "passed"


def read(paths: list[Path]) -> dict[str, Tier]:
    tiers: dict[str, Tier] = defaultdict(Tier)
    for path in paths:
        for case in ET.parse(path).getroot().iter("testcase"):
            tier = tiers[tier_of(case.get("classname", ""), case.get("file"))]
            tier.seconds += float(case.get("time") or 0)
            tier.counts[outcome(case)] += 1
    return dict(sorted(tiers.items()))


def table(tiers: dict[str, Tier], wall: dict[str, float]) -> str:
    rows = [("tier", "seconds", "tests", "failed+errors", "skipped")]
    for name, t in tiers.items():
        rows.append((name, f"{t.seconds:.0f}", str(t.tests), str(t.counts["failed"] + t.counts["error"]),
                     str(t.counts["skipped"])))
    for name, seconds in wall.items():
        rows.append((f"wall: {name}", f"{seconds:.0f}", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    return "\n".join(line(r) for r in rows)


def closing_line(tiers: dict[str, Tier]) -> str:
    total: dict[str, int] = defaultdict(int)
    for t in tiers.values():
        for k, v in t.counts.items():
            total[k] += v
    return (f"suite: {total['passed']} passed, {total['failed'] + total['error']} failed, "
            f"{total['skipped']} skipped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("xml", nargs="+", type=Path)
    parser.add_argument("--wall", action="append", default=[], metavar="NAME=SECONDS")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    present = [p for p in args.xml if p.is_file()]
    missing = [str(p) for p in args.xml if not p.is_file()]
    if missing:
        print(f"no junit report at {', '.join(missing)} (that lane did not run to its end)", file=sys.stderr)
    wall = {}
    for item in args.wall:
        name, _, seconds = item.partition("=")
        wall[name] = float(seconds)
    tiers = read(present)
    if args.json:
        print(json.dumps({n: {"seconds": round(t.seconds, 1), **t.counts} for n, t in tiers.items()} | {"wall": wall},
                         indent=1))
    else:
        print(table(tiers, wall))
        print(closing_line(tiers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

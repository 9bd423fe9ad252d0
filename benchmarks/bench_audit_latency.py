"""What audit logging costs a real kube-apiserver: latency, throughput, bytes, CPU, side by side.

    python3 -m lab up --masters 1 --index 7 --state DIR --stack bench --config-file DIR/Pulumi.bench.yaml
    .venv/bin/python benchmarks/bench_audit_latency.py --state DIR [--seconds 4] [--out FILE.json]

One lab apiserver (the first master), switched by the real program (stack `bench`, see
lab/audit_stack.py) between: audit off, each shipped profile and log-everything, in `blocking` and
`batch` mode. For each setting, the workload of lab/workload.py (secrets, configmaps, pods, events,
leases, tokenreviews as several identities; lists served from the watch cache, `resourceVersion=0`)
runs closed-loop at 1, 4, 16 and 64 concurrent clients (throughput until it saturates), then
open-loop at 50 % and 90 % of audit-off's saturation rate (latency p50/p95/p99 per verb). Bytes per
request come from the audit log's growth, CPU from the apiserver process's /proc stat. Ratios are to
audit off (latency, throughput) and to log-everything (bytes). Prints numbers; it is not a test.
Clients are Python processes on the same 2-core machine as the apiserver: saturation here is the
machine's, and the numbers are comparable with each other, not with a real cluster's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.policy.profiles import list_profiles  # noqa: E402
from lab import workload  # noqa: E402
from lab.audit_stack import AuditStack, LogTap  # noqa: E402
from lab.config import Lab  # noqa: E402

LOG_EVERYTHING = str(REPO / "tests/fixtures/log-everything.yaml")
CONCURRENCY = (1, 4, 16, 64)
OPEN_CLIENTS = 32  # open-loop clients: enough that a slow answer does not hold back the schedule
PROCESSES = 4  # client processes (threads inside), so the clients are not one GIL


def _client_loop(args: tuple[str, int, list[int], float, float, float]) -> list[tuple[str, float]]:
    """One process: a thread per client id, each looping its plan until ``end`` (at ``rate`` req/s each;
    0 = as fast as answers come)."""
    import threading

    state, host_index, ids, start, end, rate = args
    lab = Lab.load(Path(state))
    host = lab.hosts()[host_index]
    out: list[tuple[str, float]] = []
    lock = threading.Lock()

    def one(client: int) -> None:
        s = workload.Session(lab, host)
        ops = workload.plan(1, client=client, watches=False, cached_lists=True)
        interval = 1.0 / rate if rate else 0.0  # rate: this client's requests per second
        next_at = start + (client % 97) * 0.001
        mine: list[tuple[str, float]] = []
        while time.time() < start:
            time.sleep(0.001)
        try:
            while time.time() < end:
                for op in ops:  # a whole round, clean-up included, so the next setting starts clean
                    if interval:
                        next_at += interval
                        delay = next_at - time.time()
                        if delay > 0:
                            time.sleep(delay)
                    t = time.perf_counter()
                    status, _ = s.do(op)
                    dt = time.perf_counter() - t
                    mine.append((op.verb if 200 <= status < 300 else f"error-{status}", dt))
        finally:
            s.close()
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=one, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _latency_summary(values: list[float]) -> dict:
    """Count and p50/p95/p99 in ms of one set of request durations (seconds)."""
    return {"n": len(values), "p50": round(1000 * _percentile(values, 0.5), 2),
            "p95": round(1000 * _percentile(values, 0.95), 2), "p99": round(1000 * _percentile(values, 0.99), 2)}


def run_load(lab: Lab, clients: int, seconds: float, rate: float = 0.0) -> dict:
    """``clients`` clients for ``seconds`` (closed loop, or open loop at ``rate`` requests/s in total)."""
    host = lab.hosts()[0]
    pid = json.loads(host.status_file.read_text())["apiserver_pid"]
    tap = LogTap(host)
    tap.mark()
    groups = [list(range(p, clients, PROCESSES)) for p in range(min(PROCESSES, clients))]
    start = time.time() + 1.0
    cpu0 = _cpu_seconds(pid)
    with multiprocessing.get_context("fork").Pool(len(groups)) as pool:
        jobs = [(str(lab.state), 0, ids, start, start + seconds, rate / clients) for ids in groups]
        results = pool.map(_client_loop, jobs)
    wall = time.time() - start
    cpu = _cpu_seconds(pid) - cpu0
    tap.settle(quiet=0.5)
    samples = [s for r in results for s in r]
    errors = sum(1 for verb, _ in samples if verb.startswith("error"))
    by_verb: dict[str, list[float]] = {}
    for verb, dt in samples:
        by_verb.setdefault(verb, []).append(dt)
    return {
        "clients": clients, "target_rate": rate or None, "seconds": round(wall, 2), "requests": len(samples),
        "errors": errors, "throughput": round(len(samples) / wall, 1),
        "bytes_per_request": round(tap.bytes_since() / max(len(samples), 1), 1),
        "apiserver_cpu_cores": round(cpu / wall, 2), "cpu_ms_per_request": round(1000 * cpu / max(len(samples), 1), 3),
        # Every verb but the consistent list pooled: one p99 over thousands of samples is steadier than
        # seven per-verb ones over hundreds (the off-vs-off noise of the per-verb p99s was up to ±30 %).
        "latency_ms_pooled": _latency_summary([dt for verb, dt in samples if verb not in ("list-consistent",)
                                                and not verb.startswith("error")]),
        "latency_ms": {verb: _latency_summary(v) for verb, v in sorted(by_verb.items())},
    }


def measure(lab: Lab, seconds: float, saturation: float | None) -> dict:
    closed = [run_load(lab, c, seconds) for c in CONCURRENCY]
    peak = max(r["throughput"] for r in closed)
    base = saturation or peak
    open_loop = {f"{int(share * 100)}%": run_load(lab, OPEN_CLIENTS, seconds, rate=share * base)
                 for share in (0.5, 0.9)}
    return {"closed": closed, "saturation": peak, "open": open_loop}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def summarise(results: dict) -> list[dict]:
    off = results["off"]
    everything = {mode: results.get(f"log-everything/{mode}") for mode in ("blocking", "batch")}
    rows = []
    for name, r in results.items():
        mode = name.split("/")[1] if "/" in name else "-"
        at90 = r["open"]["90%"]
        row = {"setting": name, "saturation_rps": r["saturation"],
               "saturation_vs_off": _ratio(r["saturation"], off["saturation"]),
               "bytes_per_request": at90["bytes_per_request"], "cpu_ms_per_request": at90["cpu_ms_per_request"]}
        le = everything.get(mode)
        if le:
            row["bytes_vs_log_everything"] = _ratio(at90["bytes_per_request"], le["open"]["90%"]["bytes_per_request"])
        pooled, pooled_off = at90.get("latency_ms_pooled"), off["open"]["90%"].get("latency_ms_pooled")
        if pooled and pooled_off:
            row["p99_pooled_ms"] = pooled["p99"]
            row["p99_pooled_vs_off"] = _ratio(pooled["p99"], pooled_off["p99"])
        for verb, lat in at90["latency_ms"].items():
            ref = off["open"]["90%"]["latency_ms"].get(verb)
            row[f"p99_{verb}_ms"] = lat["p99"]
            if ref:
                row[f"p99_{verb}_vs_off"] = _ratio(lat["p99"], ref["p99"])
        rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", type=Path, required=True, help="state dir of a running lab")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each load run")
    ap.add_argument("--modes", default="blocking,batch")
    ap.add_argument("--profiles", default=",".join(list_profiles()))
    ap.add_argument("--out", type=Path, help="write the full results as JSON")
    ap.add_argument("--no-repeat-off", action="store_true", help="skip the second audit-off run (the noise yardstick)")
    ap.add_argument("--keep-stack", action="store_true", help="leave audit as the last setting (default: off)")
    a = ap.parse_args()
    lab = Lab.load(a.state)
    # log-everything writes ~7 MB/s at saturation: with one backup kept, a 20 s step rotates twice and
    # the first rotated file is gone before it is counted (seen as 1,254 B/request instead of ~7,000).
    bench = AuditStack(lab, "bench", max_backup=50)
    bench.setup()
    workload.setup(bench.lab, bench.host)
    results: dict[str, dict] = {}
    switch: dict[str, float] = {}
    try:
        switch["off"] = bench.apply(None)
        results["off"] = measure(bench.lab, a.seconds, None)
        print(f"[bench] off: saturation {results['off']['saturation']} req/s", file=sys.stderr, flush=True)
        for mode in a.modes.split(","):
            for policy in [*a.profiles.split(","), "log-everything"]:
                name = f"{policy}/{mode}"
                switch[name] = bench.apply(LOG_EVERYTHING if policy == "log-everything" else policy, mode)
                results[name] = measure(bench.lab, a.seconds, results["off"]["saturation"])
                print(f"[bench] {name}: saturation {results[name]['saturation']} req/s", file=sys.stderr, flush=True)
        if not a.no_repeat_off:
            # Off again at the end: its ratios to the first off run are this machine's run-to-run noise,
            # the yardstick for reading every other ratio.
            switch["off/again"] = bench.apply(None)
            results["off/again"] = measure(bench.lab, a.seconds, results["off"]["saturation"])
    finally:
        if not a.keep_stack:
            bench.destroy()
    doc = {"seconds_per_run": a.seconds, "concurrency": CONCURRENCY, "switch_seconds": switch,
           "summary": summarise(results), "results": results}
    text = json.dumps(doc, indent=1)
    if a.out:
        a.out.write_text(text + "\n")
    print(json.dumps(doc["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scale of `python -m components fleet preview`: many stacks of a minimal program on the file backend.

A tiny Pulumi Python project (one component, one output) in a temp dir, N stacks in a file backend
there, previewed through the same code path as the real fleet (`fleet preview --file ... --parallel 8`,
the orchestrator as its own process). Printed:
  - wall time and the orchestrator's peak RSS (VmHWM, sampled from /proc) for 25 and 100 stacks
    side by side: the orchestrator holds one small record per stack, so its memory stays flat;
  - the same K previews one after another with the plain CLI (`pulumi preview --stack`) against
    `fleet preview --parallel 8`: the ratio;
  - the orchestrator's own overhead, split in two: once per run (the interpreter and the Automation
    API's import, `pulumi version`, `stack ls`, exit) and per stack (the Automation API's run of one
    preview: its event stream and threads). Both from `fleet preview --parallel 1` minus the same
    previews one after another with the CLI, on 1 stack and on K stacks:
    per stack = (extra(K) - extra(1)) / (K - 1), once = extra(1) - per stack.

    KUBE_AUDIT_TOOLCHAIN_BIN=... python benchmarks/bench_fleet.py [--sizes 25,100] [--sequential 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.config import find_binary, toolchain_bin  # noqa: E402

PROGRAM = """\
import pulumi


class Cluster(pulumi.ComponentResource):
    def __init__(self, name):
        super().__init__("bench:index:Cluster", name, {"masters": 1})
        self.register_outputs({})


Cluster("c")
pulumi.export("stack", pulumi.get_stack())
"""


def env_for(work: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{toolchain_bin()}:{os.environ.get('PATH', '')}",
            "PULUMI_BACKEND_URL": f"file://{work / 'state'}", "PULUMI_HOME": str(work / "home"),
            "PULUMI_CONFIG_PASSPHRASE": "", "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true", "PULUMI_IGNORE_AMBIENT_PLUGINS": "true"}


def make_project(work: Path, n: int) -> list[str]:
    proj = work / "proj"
    proj.mkdir(parents=True)
    (work / "state").mkdir()
    (work / "home").mkdir()
    (proj / "Pulumi.yaml").write_text("name: fleetbench\nruntime:\n  name: python\n  options:\n"
                                      f"    virtualenv: {REPO / '.venv'}\n")
    (proj / "__main__.py").write_text(PROGRAM)
    names = [f"s{i:03d}" for i in range(n)]
    pulumi = str(find_binary("pulumi"))
    for name in names:
        subprocess.run([pulumi, "stack", "init", name, "--secrets-provider", "passphrase", "--non-interactive"],
                       cwd=proj, env=env_for(work), check=True, capture_output=True)
    return names


def fleet_file(work: Path, names: list[str]) -> Path:
    f = work / f"fleet-{len(names)}.yaml"
    f.write_text("stacks:\n" + "".join(f"  - {n}\n" for n in names) + "policyPack: null\n")
    return f


def peak_rss(pid: int, stop: threading.Event, out: dict[str, int]) -> None:
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out["kb"] = max(out.get("kb", 0), int(line.split()[1]))
        except OSError:
            return
        stop.wait(0.05)


def run_fleet(work: Path, names: list[str], parallel: int) -> dict[str, float]:
    f = fleet_file(work, names)
    cmd = [sys.executable, "-m", "components", "fleet", "preview", "--file", str(f), "--project-dir",
           str(work / "proj"), "--parallel", str(parallel), "--json"]
    t = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env_for(work), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    stop, rss = threading.Event(), {}
    watcher = threading.Thread(target=peak_rss, args=(proc.pid, stop, rss))
    watcher.start()
    stdout, _ = proc.communicate()
    wall = time.monotonic() - t
    stop.set()
    watcher.join()
    data = json.loads(stdout)
    bad = [s["stack"] for s in data["stacks"] if s["status"] not in ("clean", "changes")]
    assert not bad, f"previews failed: {bad}: {data['stacks'][0]}"
    return {"stacks": len(names), "parallel": parallel, "wall_s": round(wall, 2),
            "peak_rss_mb": round(rss.get("kb", 0) / 1024, 1), "exit": proc.returncode}


def run_sequential(work: Path, names: list[str]) -> float:
    pulumi = str(find_binary("pulumi"))
    t = time.monotonic()
    for name in names:
        subprocess.run([pulumi, "preview", "--stack", name, "--non-interactive"], cwd=work / "proj",
                       env=env_for(work), check=True, capture_output=True)
    return time.monotonic() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="25,100")
    ap.add_argument("--sequential", type=int, default=8, help="K stacks for the ratio and the overhead")
    ap.add_argument("--parallel", type=int, default=8)
    a = ap.parse_args()
    if find_binary("pulumi") is None:
        print("no pulumi binary: set KUBE_AUDIT_TOOLCHAIN_BIN", file=sys.stderr)
        return 2
    sizes = [int(s) for s in a.sizes.split(",")]
    k_stacks = max(a.sequential, 2)  # the once/per-stack split needs two sizes
    with tempfile.TemporaryDirectory(prefix="kube-audit-bench-fleet-") as tmp:
        work = Path(tmp)
        t = time.monotonic()
        names = make_project(work, max([*sizes, k_stacks]))
        print(f"setup: {len(names)} stacks in {time.monotonic() - t:.1f}s", flush=True)
        results = {"scale": [run_fleet(work, names[:n], a.parallel) for n in sizes]}
        for r in results["scale"]:
            print(f"fleet preview --parallel {r['parallel']}: {r['stacks']:4d} stacks  wall {r['wall_s']:7.1f}s  "
                  f"({r['wall_s'] / r['stacks']:.2f}s/stack)  orchestrator peak RSS {r['peak_rss_mb']:.1f} MB",
                  flush=True)
        k = names[:k_stacks]
        seq = run_sequential(work, k)
        par = run_fleet(work, k, a.parallel)
        one = run_fleet(work, k, 1)
        # One stack is a short run: the best of three, so a stray scheduling hiccup does not make the split.
        seq_1 = min(run_sequential(work, k[:1]) for _ in range(3))
        one_1 = min((run_fleet(work, k[:1], 1) for _ in range(3)), key=lambda r: r["wall_s"])
        extra_k, extra_1 = one["wall_s"] - seq, one_1["wall_s"] - seq_1
        per_stack = (extra_k - extra_1) / (len(k) - 1)
        results["ratio"] = {"stacks": len(k), "sequential_cli_s": round(seq, 1), "fleet_parallel_s": par["wall_s"],
                            "ratio": round(par["wall_s"] / seq, 2), "fleet_parallel1_s": one["wall_s"],
                            "sequential_cli_1_s": round(seq_1, 2), "fleet_parallel1_1_s": one_1["wall_s"],
                            "overhead_once_s": round(extra_1 - per_stack, 2),
                            "overhead_per_stack_s": round(per_stack, 2)}
        r = results["ratio"]
        print(f"{r['stacks']} previews one after another (pulumi preview): {r['sequential_cli_s']}s; "
              f"fleet preview --parallel {a.parallel}: {r['fleet_parallel_s']}s; ratio {r['ratio']}")
        print(f"fleet preview --parallel 1: {r['fleet_parallel1_s']}s for {r['stacks']}, {r['fleet_parallel1_1_s']}s "
              f"for 1 (CLI: {r['sequential_cli_s']}s, {r['sequential_cli_1_s']}s): orchestrator overhead "
              f"{r['overhead_once_s']}s once (interpreter, Automation API import, `pulumi version`, `stack ls`) "
              f"+ {r['overhead_per_stack_s']}s per stack (the Automation API's run: event stream, threads)")
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

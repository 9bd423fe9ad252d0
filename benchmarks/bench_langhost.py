"""What the Python language host adds to every `pulumi preview`: the shim answering About and
GetRequiredPlugins itself (toolchain/langhost-shim/answers.go) against forwarding them to the v3.68
host (`KUBE_AUDIT_LANGHOST_ANSWERS=off`), side by side in one run.

The project's own program and guardrail pack, on a file backend in a temp dir: one master at a
TEST-NET address with drift.read off and insight-agent off, so nothing is contacted and the time is
the engine's, the hosts' and the program's. The two variants alternate, round after round, so load
on the machine falls on both alike. Printed per variant: median wall and median CPU seconds (the
whole machine's, from /proc/stat: run it with nothing else running), and the ratio of answered to
forwarded. The first answered run
fills the cache (kept in the temp dir) and is not counted.

    KUBE_AUDIT_TOOLCHAIN_BIN=... python benchmarks/bench_langhost.py [--rounds 6] [--no-pack]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.config import find_binary, toolchain_bin  # noqa: E402
from lab.plugins import ENV as PLUGIN_ENV  # noqa: E402
from lab.plugins import install as install_plugins  # noqa: E402

STACK = "bench-langhost"
CONFIG = (("masters", '[{"name": "m1", "host": "192.0.2.1"}]'), ("insightAgent", '{"enabled": false}'),
          ("drift", '{"read": false}'))


def env_for(work: Path, answers: bool) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{toolchain_bin()}:{os.environ.get('PATH', '')}",
           "PULUMI_BACKEND_URL": f"file://{work / 'state'}", "PULUMI_HOME": str(work / "home"),
           "PULUMI_CONFIG_PASSPHRASE": "", "PULUMI_SKIP_UPDATE_CHECK": "true",
           "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true", "KUBE_AUDIT_CACHE": str(work / "cache"),
           **PLUGIN_ENV}
    if not answers:
        env["KUBE_AUDIT_LANGHOST_ANSWERS"] = "off"
    return env


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (/proc/stat).

    Not getrusage: the engine does not wait for every process under it (the v3.68 host's `pip list`
    among them), so their CPU never reaches our RUSAGE_CHILDREN. Hence: run this on a quiet machine.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def pulumi(work: Path, *args: str, answers: bool = True) -> tuple[float, float]:
    """(wall, CPU) seconds of one `pulumi` command; CPU is the machine's (busy_seconds)."""
    before = busy_seconds()
    t = time.monotonic()
    r = subprocess.run([str(find_binary("pulumi")), *args, "--stack", STACK, "--config-file",
                        str(work / f"Pulumi.{STACK}.yaml"), "--non-interactive"], cwd=REPO,
                       env=env_for(work, answers), capture_output=True, text=True, timeout=600, check=False)
    wall, cpu = time.monotonic() - t, busy_seconds() - before
    if r.returncode != 0:
        raise SystemExit(f"pulumi {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return wall, cpu


def setup(work: Path) -> None:
    for d in ("state", "home", "cache"):
        (work / d).mkdir()
    install_plugins(work / "home")
    env = env_for(work, True)
    cli = str(find_binary("pulumi"))
    subprocess.run([cli, "stack", "init", STACK, "--secrets-provider", "passphrase", "--non-interactive"],
                   cwd=REPO, env=env, check=True, capture_output=True)
    shutil.move(REPO / f"Pulumi.{STACK}.yaml", work / f"Pulumi.{STACK}.yaml")
    for key, value in CONFIG:
        subprocess.run([cli, "config", "set", f"kube-audit:{key}", value, "--stack", STACK, "--config-file",
                        str(work / f"Pulumi.{STACK}.yaml"), "--non-interactive"], cwd=REPO, env=env, check=True,
                       capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--no-pack", action="store_true", help="preview without the guardrail pack")
    a = ap.parse_args()
    if find_binary("pulumi") is None:
        print("no pulumi binary: set KUBE_AUDIT_TOOLCHAIN_BIN", file=sys.stderr)
        return 2
    args = ["preview"] if a.no_pack else ["preview", "--policy-pack", "policies/guardrails"]
    with tempfile.TemporaryDirectory(prefix="kube-audit-bench-langhost-") as tmp:
        work = Path(tmp)
        try:
            setup(work)
            pulumi(work, *args, answers=True)  # fills the answer cache; not counted
            runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
            for i in range(a.rounds):
                for answers in ((True, False) if i % 2 == 0 else (False, True)):
                    runs[answers].append(pulumi(work, *args, answers=answers))
        finally:
            (REPO / f"Pulumi.{STACK}.yaml").unlink(missing_ok=True)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    print(f"`pulumi {' '.join(args)}`, {a.rounds} rounds, medians:")
    for answers, label in ((False, "forwarded to the v3.68 host"), (True, "answered by the shim        ")):
        wall, cpu = med[answers]
        print(f"  About + GetRequiredPlugins {label}: wall {wall:5.2f}s  CPU {cpu:5.2f}s")
    print(f"  ratio answered/forwarded: wall {med[True][0] / med[False][0]:.2f}  CPU {med[True][1] / med[False][1]:.2f}"
          f"  (saved per run: wall {med[False][0] - med[True][0]:.2f}s, CPU {med[False][1] - med[True][1]:.2f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

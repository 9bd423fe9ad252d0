"""What the language-host shim and the guardrail pack cost a `pulumi preview`, in wall seconds.

    python benchmarks/bench_policy_preview.py [--runs 3]

Prints numbers; it is not a test. A throw-away stack (file backend in a temp dir, one master at an
unreachable address: preview contacts no node; insight-agent off, so no cluster either) is
previewed, `--runs` times each, three ways:

  legacy        the v3.68 host started directly (pulumi-language-python-legacy, with
                PULUMI_PYTHON_CMD naming the venv's python: how every run worked before the shim)
  shim          the shim (pulumi-language-python), which finds the venv from Pulumi.yaml itself
  shim+pack     the shim with --policy-pack policies/guardrails

Needs the toolchain (scripts/toolchain.sh) and .venv.
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

from lab import plugins  # noqa: E402
from lab.config import toolchain_bin  # noqa: E402

STACK = "bench-preview"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    tools = toolchain_bin()
    missing = [n for n in ("pulumi", "pulumi-language-python", "pulumi-language-python-legacy")
               if not (tools / n).exists()]
    if missing:
        print(f"toolchain incomplete in {tools}: {', '.join(missing)} (run scripts/toolchain.sh)")
        return 1
    with tempfile.TemporaryDirectory(prefix="kube-audit-bench-") as tmp:
        work = Path(tmp)
        # "legacy": a bin dir whose pulumi-language-python is the v3.68 host itself.
        legacy_bin = work / "legacy-bin"
        legacy_bin.mkdir()
        for entry in tools.iterdir():
            name = "pulumi-language-python" if entry.name == "pulumi-language-python-legacy" else entry.name
            if entry.name != "pulumi-language-python":
                (legacy_bin / name).symlink_to(entry)
        (work / "state").mkdir()
        plugins.install(work / "home", tools)
        base = {**os.environ, "PULUMI_BACKEND_URL": f"file://{work / 'state'}", "PULUMI_HOME": str(work / "home"),
                **plugins.ENV, "PULUMI_CONFIG_PASSPHRASE": "", "PULUMI_SKIP_UPDATE_CHECK": "true",
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true", "PATH": f"{tools}:/usr/bin:/bin"}
        base.pop("PULUMI_PYTHON_CMD", None)
        config = work / f"Pulumi.{STACK}.yaml"

        def pulumi(env: dict[str, str], *args: str) -> float:
            cmd = [shutil.which("pulumi", path=env["PATH"]) or "pulumi", *args, "--non-interactive"]
            if args[0] in ("preview", "config"):
                cmd += ["--stack", STACK, "--config-file", str(config)]
            t = time.monotonic()
            r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise SystemExit(f"pulumi {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
            return time.monotonic() - t

        pulumi(base, "stack", "init", STACK)
        shutil.move(REPO / f"Pulumi.{STACK}.yaml", config)
        pulumi(base, "config", "set", "kube-audit:masters", '[{"name": "m1", "host": "192.0.2.1"}]')
        pulumi(base, "config", "set", "kube-audit:insightAgent", '{"enabled": false}')

        # The legacy host is the one on PATH (the engine prefers PATH to the bundled one beside `pulumi`).
        legacy = {**base, "PATH": f"{legacy_bin}:/usr/bin:/bin", "PULUMI_PYTHON_CMD": str(REPO / ".venv/bin/python"),
                  "PULUMI_IGNORE_AMBIENT_PLUGINS": "false"}
        ways = {
            "legacy": (legacy, ["preview"]),
            "shim": (base, ["preview"]),
            "shim+pack": (base, ["preview", "--policy-pack", "policies/guardrails"]),
        }
        pulumi(base, "preview")  # warm the caches (bytecode, plugin discovery) once
        print(f"pulumi preview, {a.runs} runs each, wall seconds (median, min..max):")
        for label, (env, args) in ways.items():
            times = [pulumi(env, *args) for _ in range(a.runs)]
            print(f"  {label:10s} {statistics.median(times):6.2f}  ({min(times):.2f}..{max(times):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

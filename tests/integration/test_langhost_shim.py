"""The language-host shim (toolchain/langhost-shim) under the real engine, without a cluster.

The program and the guardrail pack must run in their own virtualenvs (Pulumi.yaml, PulumiPolicy.yaml)
with no venv on PATH and no PULUMI_PYTHON_CMD: PATH starts with a `python3`/`python` that fails
loudly, so a host falling back to the ambient interpreter fails the preview. One master at an
unreachable TEST-NET address (a preview contacts no node), insight-agent off. The lab tier
(tests/e2e/test_policy_pack.py) runs the same gate against real masters. Also runs the shim's own
Go tests (request mapping, forwarding, relaying).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.config import toolchain_bin

ROOT = Path(__file__).resolve().parents[2]
SHIM = ROOT / "toolchain" / "langhost-shim"
STACK = "prod-shim"
AMBIENT = "#!/bin/sh\necho 'ambient python used: the language host ignored the virtualenv' >&2\nexit 97\n"


def test_shim_go_tests() -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain (the shim is Go; scripts/setup.sh needs it for the toolchain too)")
    r = subprocess.run([go, "test", "-count=1", "./..."], cwd=SHIM, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "GOFLAGS": "-mod=readonly", "GOWORK": "off"}, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def pulumi(tmp_path: Path, pulumi_home):  # type: ignore[no-untyped-def]
    tools = toolchain_bin()
    missing = [n for n in ("pulumi", "pulumi-language-python", "pulumi-language-python-legacy")
               if not (tools / n).exists()]
    if missing:
        pytest.skip(f"toolchain binaries missing from {tools}: {', '.join(missing)} (scripts/setup.sh builds them)")
    ambient = tmp_path / "ambient"
    ambient.mkdir()
    for name in ("python3", "python"):
        (ambient / name).write_text(AMBIENT)
        (ambient / name).chmod(0o755)
    (tmp_path / "state").mkdir()
    env = {
        "HOME": str(tmp_path),
        "PATH": f"{ambient}:{tools}:/usr/bin:/bin",
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
        **pulumi_home(tools),
        "PULUMI_CONFIG_PASSPHRASE": "",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    config = tmp_path / f"Pulumi.{STACK}.yaml"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        extra = ["--stack", STACK, "--config-file", str(config)] if args[0] in ("preview", "config") else []
        return subprocess.run([str(tools / "pulumi"), *args, *extra, "--non-interactive"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600, check=False)

    r = run("stack", "init", STACK)
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.move(ROOT / f"Pulumi.{STACK}.yaml", config)
    # No master exists here (192.0.2.1 is TEST-NET): this is about virtualenvs, so the preview reads no
    # master (an unreachable one would fail it, as the preview's preflight should).
    for key, value in (("masters", '[{"name": "m1", "host": "192.0.2.1"}]'), ("insightAgent", '{"enabled": false}'),
                       ("drift", '{"read": false}')):
        r = run("config", "set", f"kube-audit:{key}", value)
        assert r.returncode == 0, r.stdout + r.stderr
    run.home = tmp_path  # type: ignore[attr-defined]  # the HOME the commands run with
    yield run
    (ROOT / f"Pulumi.{STACK}.yaml").unlink(missing_ok=True)


def test_program_and_pack_run_in_their_virtualenvs(pulumi) -> None:  # type: ignore[no-untyped-def]
    r = pulumi("preview", "--policy-pack", "policies/guardrails")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "ambient python used" not in out, out
    assert "from $PATH" not in out, out
    assert "kube-audit-guardrails@v0.1.0" in out, f"the engine did not run the pack:\n{out}"
    # The shim kept the program's GetRequiredPlugins answer (answers.go); the next previews use it.
    answers = list((pulumi.home / ".cache/kube-audit/langhost-shim").glob("*.pb"))
    assert len(answers) == 1, answers

    r = pulumi("config", "set", "kube-audit:log", '{"maxSize": 0}')
    assert r.returncode == 0, r.stdout + r.stderr
    r = pulumi("preview", "--policy-pack", "policies/guardrails")
    out = r.stdout + r.stderr
    assert r.returncode == 1, f"log.maxSize 0 passed the gate (exit {r.returncode}):\n{out}"
    assert "[mandatory]  audit-log-retention-bounded" in out and "--audit-log-maxsize is 0" in out, out
    assert list((pulumi.home / ".cache/kube-audit/langhost-shim").glob("*.pb")) == answers, "answered from it"

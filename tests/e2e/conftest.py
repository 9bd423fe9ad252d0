"""End-to-end fixtures: a fresh lab (its own state dir, bridge and stack) and the real Pulumi engine.

The session brings up lab number $KUBE_AUDIT_E2E_LAB_INDEX (default 1: bridge kalab1, hosts
10.77.1.11..) in $KUBE_AUDIT_E2E_LAB (default ~/.cache/kube-audit/lab-e2e) with stack `e2e`, whose
config file lives in that state dir, so a developer's own `lab` (lab 0, Pulumi.lab.yaml) is left
alone, and two checkouts can run the tier at once with different index and state dir.
KUBE_AUDIT_E2E_KEEP=1 leaves the lab running afterwards for a look around; KUBE_AUDIT_E2E_MASTERS
sets the number of masters (default 3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lab.config import Lab, find_binary, toolchain_bin  # noqa: E402

from .harness import E2E  # noqa: E402

STATE = Path(os.environ.get("KUBE_AUDIT_E2E_LAB") or Path.home() / ".cache/kube-audit/lab-e2e")
MASTERS = int(os.environ.get("KUBE_AUDIT_E2E_MASTERS", "3"))
LAB_INDEX = os.environ.get("KUBE_AUDIT_E2E_LAB_INDEX", "1")
TOOLS = ["kube-apiserver", "etcd", "helm", "pulumi", "pulumi-language-python", "pulumi-language-python-legacy",
         "pulumi-resource-kubernetes"]
MEASUREMENTS: dict = {}


def _lab(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "lab", "--state", str(STATE), *args], cwd=REPO,
                       capture_output=True, text=True, timeout=timeout, check=False)
    sys.stdout.write(r.stdout)
    return r


def _prerequisites() -> str | None:
    """Why the e2e tier cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network and mount namespaces, sshd for root)"
    missing = [t for t in TOOLS if find_binary(t) is None]
    if missing:
        return (f"toolchain binaries missing from {toolchain_bin()}: {', '.join(missing)} "
                "(scripts/setup.sh builds them)")
    if not (REPO / "Pulumi.yaml").exists():
        return "no Pulumi.yaml in the repo root"
    if not (REPO / ".venv/bin/python").exists():
        return "no .venv (scripts/setup.sh creates it)"
    return None


@pytest.fixture(scope="session")
def e2e() -> Iterator[E2E]:
    why = _prerequisites()
    if why:
        pytest.skip(why)
    _lab("down", "--purge", timeout=300)
    t0 = time.monotonic()
    r = _lab("up", "--masters", str(MASTERS), "--index", LAB_INDEX, "--stack", "e2e",
             "--config-file", str(STATE / "Pulumi.e2e.yaml"))
    if r.returncode != 0:
        _lab("down", timeout=300)  # leave no namespaces or processes behind a failed start
        pytest.fail(f"lab up failed:\n{r.stdout}\n{r.stderr}", pytrace=False)
    MEASUREMENTS["lab_up_cold_seconds"] = round(time.monotonic() - t0, 1)
    t1 = time.monotonic()
    r = _lab("up")
    if r.returncode != 0:
        _lab("down", timeout=300)
        pytest.fail(f"second lab up failed:\n{r.stdout}\n{r.stderr}", pytrace=False)
    MEASUREMENTS["lab_up_warm_seconds"] = round(time.monotonic() - t1, 1)
    harness = E2E(Lab.load(STATE), MEASUREMENTS)
    blocked = harness.engine_blocker()
    if blocked:
        pytest.skip(blocked)
    try:
        yield harness
    finally:
        harness.stop_pollers()
        (STATE / "e2e-measurements.json").write_text(json.dumps(MEASUREMENTS, indent=1) + "\n")
        if os.environ.get("KUBE_AUDIT_E2E_KEEP") != "1":
            _lab("down", timeout=300)


# -- stop a lifecycle class at its first failure ------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Fixtures that restore the lab after a failed test read `item.rep_call`.
    outcome = yield
    setattr(item, f"rep_{call.when}", outcome.get_result())
    if call.excinfo is not None and getattr(item.cls, "incremental", False) and call.when == "call":
        item.cls._failed_step = item.name


def pytest_runtest_setup(item):
    if getattr(item.cls, "incremental", False):
        failed = getattr(item.cls, "_failed_step", None)
        if failed:
            pytest.fail(f"not run: the earlier lifecycle step {failed} failed", pytrace=False)


def pytest_terminal_summary(terminalreporter):
    if MEASUREMENTS:
        terminalreporter.write_sep("-", "kube-audit lab measurements")
        terminalreporter.write_line(json.dumps(MEASUREMENTS, indent=1))



def pytest_collection_modifyitems(config, items):
    # The lifecycle module starts from a lab no stack has touched (it asserts there is no audit log
    # dir yet); other modules leave audit logs behind, as every path must (logs are evidence). So it
    # runs first, and the rest keep their order.
    items.sort(key=lambda item: 0 if item.nodeid.startswith("tests/e2e/test_lifecycle.py") else 1)

"""A stack created by the previous main, after issue 21 moved modules: `up` changes and restarts nothing.

The OLD program (the tree at PREVIOUS_MAIN, run from its own directory with the same venv, toolchain,
state backend and stack) enables audit on one master; then the CURRENT tree previews with
--expect-no-changes, runs `up` (no resource touched, the manifest and the apiserver as they were) and
destroys the stack, which unpickles the providers the old program wrote into state (components.ssh,
components.insight_agent_check: resolved by components/_moved.py).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.config import REPO

from .harness import E2E
from .stacks import Stack, starts, wait_running

pytestmark = pytest.mark.e2e

# The main before issue 21 moved components/ssh.py, insight_agent_check.py and the settings modules:
# the last program whose stacks hold the old module paths. Pinned, so this test keeps checking that
# move (a later move adds its own entry in components/_moved.py and its own previous main here).
PREVIOUS_MAIN = "5e70e17"
STACK = "e2e-previous-main"
CONFIG = {"kube-audit:enabled": "true", "kube-audit:policy": "dce-default",
          "kube-audit:insightAgent": {"enabled": False}, "kube-audit:kubeadm": {"persist": False},
          "kube-audit:drift": {"read": False}}


def old_tree(into: Path) -> Path:
    have = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS_MAIN}^{{commit}}"],
                          capture_output=True, check=False)
    if have.returncode != 0:
        pytest.skip(f"commit {PREVIOUS_MAIN} (the main before the move) is not in this clone's history; "
                    "`git fetch --unshallow` brings it")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", PREVIOUS_MAIN], capture_output=True, check=True)
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    (into / ".venv").symlink_to((REPO / ".venv").resolve())  # Pulumi.yaml names ./.venv
    return into


@pytest.fixture(scope="module")
def stacks(e2e: E2E) -> Iterator[tuple[Stack, Stack]]:
    tmp = Path(tempfile.mkdtemp(prefix="kube-audit-previous-main-"))
    old = Stack(e2e, STACK, project=old_tree(tmp / "old"))
    old.create(CONFIG)
    doc = old.read()
    masters = doc["config"]["kube-audit:masters"]
    if isinstance(masters, list):  # one master keeps it cheap
        doc["config"]["kube-audit:masters"] = masters[:1]
        old.write(doc)
    new = Stack(e2e, STACK)
    try:
        yield old, new
    finally:
        new.remove()
        shutil.rmtree(tmp, ignore_errors=True)


def counts(output: str) -> dict[str, int]:
    """From the engine events `up --json` prints (one JSON object a line): operation -> number of resources."""
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    summaries = [e["summaryEvent"] for e in events if "summaryEvent" in e]
    assert len(summaries) == 1, output[-4000:]
    return dict(summaries[0]["resourceChanges"])


class TestStateFromPreviousMain:
    incremental = True

    def test_up_by_the_previous_main_then_no_change_and_no_restart_from_the_current_tree(
            self, e2e: E2E, stacks: tuple[Stack, Stack]) -> None:
        old, new = stacks
        h = e2e.hosts[0]
        before_enable = h.manifest.read_bytes()
        old.run("up", "--yes", "--skip-preview")
        assert b"--audit-policy-file=" in h.manifest.read_bytes()
        wait_running(e2e, h, 1)
        manifest, started = h.manifest.read_bytes(), starts(e2e)[h.name]

        new.run("preview", "--expect-no-changes", "--diff")
        r = new.run("up", "--yes", "--skip-preview", "--json")
        done = counts(r.stdout)
        assert done.get("same", 0) > 0, done  # the stack's resources were all seen
        changed = {op: n for op, n in done.items() if op != "same"}
        assert changed == {}, r.stdout[-4000:]
        assert h.manifest.read_bytes() == manifest
        assert starts(e2e)[h.name] == started

        new.run("destroy", "--yes", "--skip-preview")  # loads every provider pickle the old program wrote
        wait_running(e2e, h, started + 1)
        assert b"--audit-policy-file=" not in h.manifest.read_bytes()
        assert h.manifest.read_bytes() == before_enable

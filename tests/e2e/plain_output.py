"""Every run of the real CLI in the e2e tier is checked for a Python traceback (issue 18).

A refusal, a gate failure or a rollback reaches the user as its message (components/plain_errors.py);
a traceback is kept for a bug in our own code, which no e2e test injects (the integration test
tests/integration/test_plain_errors_engine.py does, and sees it). So a traceback in any e2e output
is a bug, whatever the test itself is about. So is a warning the user's stack did not cause: the
engine's "using pulumi-resource-... from $PATH" (plugins are installed as plugins, lab/plugins.py).
"""

from __future__ import annotations

import re
import subprocess

TRACEBACK = "Traceback (most recent call last)"
PLUGIN_FROM_PATH = re.compile(r"warning: using pulumi-\S+ from \$PATH")


def assert_plain_output(what: str, result: subprocess.CompletedProcess[str]) -> None:
    out = (result.stdout or "") + "\n" + (result.stderr or "")
    at = out.find(TRACEBACK)
    if at >= 0:
        raise AssertionError(f"{what} printed a Python traceback (a refusal must reach the user as its message; "
                             f"a traceback is a bug in our code):\n{out[max(0, at - 1500):at + 4000]}")
    stray = PLUGIN_FROM_PATH.search(out)
    if stray:
        raise AssertionError(f"{what} printed a warning the stack did not cause: {stray.group(0)} (lab/plugins.py "
                             "installs the toolchain's providers as plugins)")

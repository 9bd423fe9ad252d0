"""What a user sees when a master refuses, through the real engine, sshd and node program.

A refusal (here preflight's: a stray copy of the apiserver manifest the kubelet might run instead)
is its message, naming the master, the cause and the fix, with no Python traceback: in `pulumi up`
and in the Automation API's error. A bug in our provider code still shows its traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from pulumi import automation as auto

from .test_engine_over_ssh import ROOT, TOOLCHAIN, stack  # noqa: F401  (the fixture)


def test_a_refusal_is_its_message(stack) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    pulumi, etc, tmp = stack
    manifest = etc / "manifests" / "kube-apiserver.yaml"
    stray = etc / "manifests" / "kube-apiserver.yaml.bak"
    shutil.copy(manifest, stray)
    before = manifest.read_bytes()

    r = pulumi("up", "--yes", "--skip-preview", check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "kube-audit[local-1]: preflight refused this master:" in out, out
    assert f"{stray} also declares the kube-apiserver pod; the kubelet may run it instead of {manifest}. " \
           f"Move it out of {manifest.parent} and retry" in out, out
    assert "Traceback" not in out and "pulumi/dynamic/__main__.py" not in out, out
    assert manifest.read_bytes() == before, "a refused master is not changed"

    # The Automation API reports what the CLI printed.
    workspace = auto.LocalWorkspaceOptions(work_dir=str(ROOT), env_vars=pulumi.env,
                                           pulumi_command=auto.PulumiCommand(root=str(TOOLCHAIN.parent)))
    with pytest.raises(auto.CommandError) as info:
        auto.select_stack("t", work_dir=str(ROOT), opts=workspace).up(config_file=str(tmp / "Pulumi.t.yaml"))
    error = str(info.value)
    assert "preflight refused this master" in error and "Move it out of" in error, error
    assert "Traceback" not in error, error

    stray.unlink()
    pulumi("up", "--yes", "--skip-preview")  # nothing left over: the next run goes through


def test_a_bug_in_our_provider_keeps_its_traceback(stack) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    pulumi, _etc, tmp = stack
    pulumi("up", "--yes", "--skip-preview")
    # A state our code does not expect (a command resource without its connection): the provider's
    # diff fails with its own KeyError, which is a bug to report, not a refusal.
    state = json.loads(pulumi("stack", "export").stdout)
    broken = next(r for r in state["deployment"]["resources"]
                  if r["type"] == "pulumi-python:dynamic/kube-audit:RemoteCommand")
    del broken["outputs"]["connection"]
    (tmp / "state.json").write_text(json.dumps(state))
    pulumi("stack", "import", "--file", str(tmp / "state.json"))

    for args in (("preview",), ("up", "--yes", "--skip-preview")):
        r = pulumi(*args, check=False)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert "Traceback (most recent call last):" in out and "KeyError: 'connection'" in out, out
        assert 'components/remote/ssh.py", line' in out, "the traceback points into our code"


def test_the_toolchain_plugins_come_from_pulumi_home(stack) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    pulumi, _etc, _tmp = stack

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(TOOLCHAIN / "pulumi"), *args], env=pulumi.env, capture_output=True, text=True,
                              timeout=120, check=True)

    listed = {(p["kind"], p["name"], p["version"]) for p in json.loads(cli("plugin", "ls", "--json").stdout)}
    assert ("resource", "kubernetes", "4.34.2") in listed, listed
    # The engine's own lookup by name and exact version: with $PATH ignored (the toolchain's binary
    # is still there) only the installed copy can answer.
    schema = cli("package", "get-schema", "kubernetes@4.34.2")
    assert json.loads(schema.stdout)["version"] == "4.34.2"
    assert "from $PATH" not in schema.stderr, schema.stderr

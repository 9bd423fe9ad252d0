"""The CrossGuard pack run by the engine: `pulumi preview --policy-pack policies/guardrails`.

Its own stack (`prod-guardrails`, so the prod-only advisory applies) on the lab's masters, in the
lab's backend; preview only, so no master changes (checked at the end), and the stack is removed
afterwards. Each case is the pull-request gate the README describes: a change the pack refuses
makes `pulumi preview` fail, naming the policy, its level and the offending rule and line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from components.policy.profiles import list_profiles
from lab.config import REPO, find_binary
from lab.stack import CONFIG_FILE_COMMANDS, desired_config

from .harness import E2E
from .plain_output import assert_plain_output

pytestmark = pytest.mark.e2e

STACK = "prod-guardrails"
PACK = "policies/guardrails"
PACK_NAME = "kube-audit-guardrails"

# Rule 1 writes Secret bodies into the log: RequestResponse on secrets, matched first.
LEAKY_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["secrets", "configmaps"]
  - level: Metadata
"""
LEAKY_RULE, LEAKY_LINE = 1, 6


class Guard:
    """The guardrail stack: its config file, and `pulumi preview` with the pack."""

    def __init__(self, e2e: E2E, work: Path) -> None:
        self.e2e = e2e
        self.work = work
        self.config_file = work / f"Pulumi.{STACK}.yaml"
        pulumi = find_binary("pulumi")
        assert pulumi is not None
        self.bin = str(pulumi)

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.bin, *args]
        if args[0] in CONFIG_FILE_COMMANDS:
            cmd += ["--stack", STACK, "--config-file", str(self.config_file)]
        r = subprocess.run([*cmd, "--non-interactive"], cwd=REPO, env=self.e2e.env(), input=stdin,
                           capture_output=True, text=True, timeout=900, check=False)
        assert_plain_output(f"`pulumi {' '.join(args)}`", r)
        if check and r.returncode != 0:
            raise AssertionError(f"`pulumi {' '.join(args)}` exited {r.returncode}:\n{r.stdout[-6000:]}\n{r.stderr[-3000:]}")
        return r

    def create(self) -> None:
        self.run("stack", "init", STACK, "--secrets-provider", "passphrase")
        # `stack init` writes the stack's config (with its encryption salt) beside Pulumi.yaml.
        shutil.move(REPO / f"Pulumi.{STACK}.yaml", self.config_file)
        self.configure()
        self.run("config", "set", "--secret", "kube-audit:sshPrivateKey", stdin=self.e2e.lab.ssh_key.read_text())

    def remove(self) -> None:
        self.run("stack", "rm", STACK, "--yes", "--force", check=False)
        (REPO / f"Pulumi.{STACK}.yaml").unlink(missing_ok=True)

    def configure(self, **overrides: object) -> None:
        """The lab's masters and cluster, audit on with dce-default, plus `kube-audit:<key>` overrides."""
        doc = yaml.safe_load(self.config_file.read_text()) or {}
        kept = {k: v for k, v in (doc.get("config") or {}).items() if k == "kube-audit:sshPrivateKey"}
        doc["config"] = {**kept, **desired_config(self.e2e.lab), "kube-audit:enabled": "true",
                         "kube-audit:policy": "dce-default", **{f"kube-audit:{k}": v for k, v in overrides.items()}}
        self.config_file.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))

    def preview(self, pack_config: dict | None = None) -> subprocess.CompletedProcess[str]:
        args = ["preview", "--diff", "--policy-pack", PACK]
        if pack_config is not None:
            path = self.work / "policy-pack-config.json"
            path.write_text(json.dumps(pack_config))
            args += ["--policy-pack-config", str(path)]
        return self.run(*args, check=False)


def _masters_digest(e2e: E2E) -> dict:
    return {h.name: (h.manifest.read_bytes(), e2e.files_in(h.etc_kubernetes)) for h in e2e.hosts}


@pytest.fixture(scope="module")
def guard(e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guard]:
    g = Guard(e2e, tmp_path_factory.mktemp("guardrails"))
    g.remove()  # a stack left by an interrupted run
    before = _masters_digest(e2e)
    g.create()
    try:
        yield g
    finally:
        g.remove()
    # Invariant 8: a preview, with or without the pack, runs nothing on any master.
    assert _masters_digest(e2e) == before, "a policy-pack preview changed a master"


def _out(r: subprocess.CompletedProcess[str]) -> str:
    return r.stdout + r.stderr


@pytest.mark.parametrize("profile", list_profiles())
def test_shipped_profiles_pass(guard: Guard, profile: str) -> None:
    guard.configure(policy=profile)
    r = guard.preview()
    out = _out(r)
    assert r.returncode == 0, f"{profile} refused by the pack (exit {r.returncode}):\n{out[-6000:]}"
    # The pack really ran: the engine lists it, with no violation of any level.
    assert PACK_NAME in out, f"the engine did not run the pack:\n{out[-6000:]}"
    assert "mandatory" not in out and "advisory" not in out, out[-6000:]


def test_secret_bodies_are_refused_naming_rule_and_line(guard: Guard) -> None:
    policy = guard.work / "leaky-policy.yaml"
    policy.write_text(LEAKY_POLICY)
    assert LEAKY_POLICY.splitlines()[LEAKY_LINE - 1].strip() == "- level: RequestResponse"
    guard.configure(policy=str(policy))
    r = guard.preview()
    out = _out(r)
    assert r.returncode != 0, f"a policy logging Secret bodies passed the gate:\n{out[-6000:]}"
    assert "audit-policy-valid" in out and "mandatory" in out, out[-6000:]
    # The message names what the rule really captures, worst first: Secret data on every verb.
    assert (f"rule {LEAKY_RULE} (line {LEAKY_LINE}): logs credentials at RequestResponse: "
            "get/list/watch secrets (data in the response), create/update/patch secrets") in out, out[-6000:]


def test_unbounded_retention_is_refused(guard: Guard) -> None:
    guard.configure(log={"maxAge": 0})
    r = guard.preview()
    out = _out(r)
    assert r.returncode != 0, f"log.maxAge 0 passed the gate:\n{out[-6000:]}"
    assert "audit-log-retention-bounded" in out and "mandatory" in out, out[-6000:]
    assert "--audit-log-maxage is 0" in out, out[-6000:]


def test_levels_come_from_the_pack_config(guard: Guard) -> None:
    """Retention downgraded to advisory by --policy-pack-config: warned, not refused; and the
    prod-only advisory fires on this prod stack with audit off."""
    guard.configure(log={"maxAge": 0}, enabled="false")
    r = guard.preview(pack_config={"audit-log-retention-bounded": "advisory"})
    out = _out(r)
    assert r.returncode == 0, f"advisory violations failed the preview (exit {r.returncode}):\n{out[-6000:]}"
    assert "audit-log-retention-bounded" in out and "--audit-log-maxage is 0" in out, out[-6000:]
    assert "audit-enabled-in-prod" in out and "advisory" in out, out[-6000:]
    assert "mandatory" not in out, out[-6000:]

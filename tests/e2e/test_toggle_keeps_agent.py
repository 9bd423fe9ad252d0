"""insight-agent: toggling audit changes one value, never the agent (issue 12), on the real engine and Helm.

A real chart repository on the lab bridge serves versions of the stand-in chart (tests/e2e/chart_repo.py);
a release is installed at the oldest with an operator marker value (FluentBit's image repository),
then a stack of its own (`insight-pin`, first master only: the subject is the release, and one
master keeps each rollout short) goes through, in order:

  default config with no local `insight-release` repo -> refused before any change
  enable -> newer chart appears, no-change up -> disable -> pin a newer version (warning, new defaults)

and after each step records the release's chart version, revision and marker (into the session's
measurements, `insight_agent_steps`).

This module sorts after test_lifecycle.py on purpose: it turns audit on and off on master 1, which
leaves that master's (never deleted) audit log dir behind, and the lifecycle test starts from a
master that never had one. It ends by destroying its stack (audit off on master 1, the adopted
release kept), uninstalling its release and removing its Helm home and chart repository.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import stack as labstack
from lab.config import Lab

from .chart_repo import IMAGE_TAGS, ChartRepository, HelmSetup, helm_setup
from .harness import E2E

pytestmark = pytest.mark.e2e

STACK = "insight-pin"
NS = "insight-pin"
RELEASE = "insight-agent"
DS = "insight-agent-fluent-bit"
MARKER = "registry.example/operator-marker/fluent-bit"
RESTART_ANNOTATION = "kube-audit.io/audit-collection"


@dataclasses.dataclass
class Pin:
    e2e: E2E
    lab: Lab
    env: dict[str, str]
    helm_bin: Path
    repo: ChartRepository

    def pulumi(self, *args: str, check: bool = True, label: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = labstack.pulumi_cmd(self.lab, *args, "--non-interactive")
        t = time.monotonic()
        r = subprocess.run(cmd, cwd=labstack.REPO, env=self.env, capture_output=True, text=True, timeout=1200,
                           check=False)
        if label:
            self.e2e.m.setdefault("insight_agent_seconds", {})[label] = round(time.monotonic() - t, 1)
        if check and r.returncode != 0:
            raise AssertionError(f"`pulumi {' '.join(args)}` exited {r.returncode}:\n{r.stdout[-6000:]}\n"
                                 f"{r.stderr[-3000:]}")
        return r

    def helm(self, *args: str, check: bool = True) -> str:
        r = subprocess.run([str(self.helm_bin), *args], env=self.env, capture_output=True, text=True, timeout=300,
                           check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r.stdout

    def config(self, **changes: Any) -> None:
        """Rewrite keys of the stack's config file (objects as YAML, as `lab up` writes them)."""
        path = self.lab.stack_config
        doc = yaml.safe_load(path.read_text())
        for key, value in changes.items():
            doc["config"][f"kube-audit:{key}"] = value
        path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))

    # what Helm and the cluster say, read independently of the program's own reader
    def release(self) -> dict[str, Any]:
        (entry,) = [r for r in json.loads(self.helm("list", "-n", NS, "-o", "json")) if r["name"] == RELEASE]
        values = json.loads(self.helm("get", "values", RELEASE, "-n", NS, "-o", "json")) or {}
        return {"chart": entry["chart"], "revision": int(entry["revision"]), "values": values}

    def daemonset(self) -> dict[str, Any]:
        return self.e2e.client().get(f"/apis/apps/v1/namespaces/{NS}/daemonsets/{DS}")  # type: ignore[return-value]

    def snapshot(self, step: str) -> dict[str, Any]:
        rel, ds = self.release(), self.daemonset()
        audit = rel["values"].get("global", {}).get("exporters", {}).get("auditLog", {})
        out = {"chart": rel["chart"], "revision": rel["revision"],
               "marker": rel["values"].get("fluent-bit", {}).get("image", {}).get("repository"),
               "kubeAudit": audit.get("kubeAudit", {}).get("enabled"),
               "image": ds["spec"]["template"]["spec"]["containers"][0]["image"],
               "ds_generation": ds["metadata"]["generation"],
               "restart_annotation": (ds["spec"]["template"]["metadata"].get("annotations") or {}).get(
                   RESTART_ANNOTATION)}
        self.e2e.m.setdefault("insight_agent_steps", {})[step] = out
        return out


@pytest.fixture(scope="module")
def pin(e2e: E2E) -> Iterator[Pin]:
    with helm_setup(e2e, STACK, "insight-pin") as hs:
        yield from _pin(e2e, hs)


def _pin(e2e: E2E, hs: HelmSetup) -> Iterator[Pin]:
    lab, env, helm_bin, repo = hs.lab, hs.env, hs.helm, hs.repo
    p = Pin(e2e, lab, env, helm_bin, repo)
    try:
        repo.publish("1.0.0")
        repo.publish("1.1.0")
        # Installed as an operator (or DCE's installer) would, at the oldest version, with a value of its own.
        p.helm("install", RELEASE, f"{repo.url}/insight-agent-1.0.0.tgz", "-n", NS, "--create-namespace",
               "--set", f"fluent-bit.image.repository={MARKER}")
        labstack.setup(lab, lambda msg: None)
        first = e2e.hosts[0]
        # The defaults a DCE user would keep: chart insight-agent from the `insight-release` alias, no version.
        p.config(masters=[{"name": first.name, "host": first.ip, "port": 22, "user": "root",
                           "hostKey": first.host_public_key()}],
                 insightAgent={"namespace": NS, "skipAwait": True}, enabled="true")
        yield p
    finally:
        p.pulumi("destroy", "--yes", "--skip-preview", check=False)
        p.pulumi("stack", "rm", "--yes", "--force", check=False)
        Path(lab.stack_config).unlink(missing_ok=True)
        # The namespace stays (empty): the lab has no namespace controller to finish deleting it.
        p.helm("uninstall", RELEASE, "-n", NS, check=False)


def _manifest(e2e: E2E) -> str:
    return e2e.hosts[0].manifest.read_text()


HEADER = re.compile(r"^\s*[-+~=<>]{0,3}\s*[a-z][\w-]*:[\w./-]+:\w+: \([\w-]+\)")


def release_block(out: str) -> str:
    """The preview's lines for the Release (its import and update entries), headers included."""
    keep, inside = [], False
    for line in out.splitlines():
        if HEADER.match(line):
            inside = "kubernetes:helm.sh/v3:Release:" in line
        elif line.strip().startswith(("--outputs:--", "Resources:")):
            inside = False
        if inside:
            keep.append(line)
    return "\n".join(keep)


class TestToggleKeepsAgent:
    incremental = True

    def test_default_config_without_the_dce_repository_is_refused_before_any_change(self, pin: Pin):
        before = pin.snapshot("installed")
        assert (before["chart"], before["marker"]) == ("insight-agent-1.0.0", MARKER), before
        manifest = _manifest(pin.e2e)
        r = pin.pulumi("preview", check=False)
        text = r.stdout + r.stderr
        assert r.returncode != 0, text
        assert "kube-audit:insightAgent.repository is 'insight-release'" in text, text
        assert "helm repo add insight-release" in text, text
        assert "non-absolute URLs" not in text
        assert _manifest(pin.e2e) == manifest and pin.release()["revision"] == before["revision"]
        # What DCE's procedure does first; the index now knows 1.0.0 and 1.1.0.
        pin.helm("repo", "add", "insight-release", pin.repo.url)

    def test_preview_of_enable_shows_only_our_value(self, pin: Pin):
        r = pin.pulumi("preview", "--diff", label="preview_enable")
        pin.e2e.m["insight_agent_preview_enable"] = r.stdout[-4000:]
        block = release_block(r.stdout)
        assert block, r.stdout
        assert "kubeAudit" in block, block
        # The import records the chart under the local alias, which is what the program asks for.
        assert re.search(r'^\s*chart\s*:\s*"insight-release/insight-agent"', block, re.M), block
        assert not re.search(r"^\s*[~+-]\s*version\b", block, re.M), f"the chart version must not change:\n{block}"
        assert not re.search(r"^\s*[~+-]\s*chart\b", block, re.M), f"no chart change for the imported release:\n{block}"
        assert not re.search(r"^\s*-\s*.*fluent-bit", block, re.M), f"operator values shown as removed:\n{block}"
        assert "UPGRADES" not in r.stdout

    def test_enable_keeps_version_and_marker_and_restarts_fluent_bit_once(self, pin: Pin):
        before = pin.snapshot("before_enable")
        pin.pulumi("up", "--yes", "--skip-preview", label="up_enable")
        after = pin.snapshot("enabled")
        assert after["chart"] == "insight-agent-1.0.0" and after["revision"] == before["revision"] + 1, after
        assert after["marker"] == MARKER and after["kubeAudit"] is True, after
        assert after["image"] == f"{MARKER}:{IMAGE_TAGS['1.0.0']}", after
        assert after["restart_annotation"] == "kube-audit=on,ghippo-audit=on", after
        assert after["ds_generation"] == before["ds_generation"] + 1, "one restart, from our annotation"

    def test_newer_chart_in_the_repository_changes_nothing(self, pin: Pin):
        before = pin.snapshot("before_newer_chart")
        pin.repo.publish("1.2.0")
        pin.helm("repo", "update", "insight-release")  # the worst case: the local index knows 1.2.0 too
        assert "1.2.0" in pin.helm("search", "repo", "insight-release/insight-agent", "--versions")
        pin.pulumi("preview", "--expect-no-changes", label="preview_noop")
        pin.pulumi("up", "--yes", "--skip-preview", label="up_noop")
        after = pin.snapshot("after_newer_chart_noop_up")
        assert after == {**before}, "a no-change up after a newer chart appeared changed something"

    def test_disable_keeps_version_and_marker(self, pin: Pin):
        before = pin.snapshot("before_disable")
        pin.config(enabled="false")
        pin.pulumi("up", "--yes", "--skip-preview", label="up_disable")
        after = pin.snapshot("disabled")
        assert after["chart"] == "insight-agent-1.0.0" and after["revision"] == before["revision"] + 1, after
        assert after["marker"] == MARKER and after["kubeAudit"] is False, after
        assert after["restart_annotation"] == "kube-audit=off,ghippo-audit=on", after
        assert after["ds_generation"] == before["ds_generation"] + 1
        pin.pulumi("preview", "--expect-no-changes")

    def test_pinning_a_newer_version_warns_and_takes_the_new_defaults(self, pin: Pin):
        before = pin.snapshot("before_pin")
        pin.config(insightAgent={"namespace": NS, "skipAwait": True, "version": "1.2.0"})
        r = pin.pulumi("preview", "--diff", label="preview_pin")
        # Non-interactive, the CLI writes the diff to stdout and diagnostics (our warning) to stderr.
        shown = r.stdout + r.stderr
        pin.e2e.m["insight_agent_preview_pin"] = shown[-4000:]
        (pin.e2e.lab.state / "insight-agent-pin-preview.txt").write_text(shown)
        assert re.search(r"warning: .*kube-audit:insightAgent.version pins 1.2.0, the cluster runs 1.0.0: this update "
                         r"UPGRADES insight-agent from 1.0.0 to 1.2.0", shown), shown
        block = release_block(r.stdout)
        assert re.search(r"^\s*~\s*version\s*:\s*\"1.0.0\"\s*=>\s*\"1.2.0\"", block, re.M), block
        pin.pulumi("up", "--yes", "--skip-preview", label="up_pin")
        after = pin.snapshot("pinned_1.2.0")
        assert after["chart"] == "insight-agent-1.2.0" and after["revision"] == before["revision"] + 1, after
        assert after["marker"] == MARKER and after["kubeAudit"] is False, after
        # The new chart's default under the operator's value; --reuse-values would have kept 2.2.0.
        assert after["image"] == f"{MARKER}:{IMAGE_TAGS['1.2.0']}", after
        assert after["restart_annotation"] == before["restart_annotation"], "collection unchanged: no restart of ours"
        pin.pulumi("preview", "--expect-no-changes")

"""insight-agent provably collects the file we write (issue 19), on the real engine, Helm and the lab apiservers.

One stack (`agent-collects`, first master only: the subject is the agent, and one master keeps the
single rollout short) with audit on, over a release of its own installed from the lab chart
repository (tests/e2e/chart_repo.py) at the current-style chart; then, in order, without touching
the master again:

  enable (current chart)       -> the rendered ConfigMap has the kube-audit input, the check passed
  ghippo input deleted by hand -> the preview names it, `up` restores it
  collectGlobalManagementAudit: false -> no ghippo input, none after a no-change `up` either
  log.hostDir: /var/log/audit  -> refused naming the glob, master 1 untouched
  the older-style chart installed by hand -> `up` switches it with global.exporters.auditLog.enabled

It ends by destroying its stack (audit off on master 1, the adopted release kept), then uninstalls
the release and removes its Helm home and chart repository.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import stack as labstack
from lab.config import Lab

from .chart_repo import OLDER_FIXTURE, ChartRepository, HelmSetup, helm_setup
from .harness import E2E

pytestmark = pytest.mark.e2e

STACK = NS = "agent-collects"
RELEASE = "insight-agent"
CM = f"/api/v1/namespaces/{NS}/configmaps/insight-agent-fluent-bit-config"
DCE_GLOB = "/var/log/*/audit/*.log"
CHECK_TYPE = "pulumi-python:dynamic/kube-audit:FluentBitConfigCheck"


@dataclasses.dataclass
class Agent:
    e2e: E2E
    lab: Lab
    env: dict[str, str]
    helm_bin: Path
    repo: ChartRepository

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(labstack.pulumi_cmd(self.lab, *args, "--non-interactive"), cwd=labstack.REPO,
                           env=self.env, capture_output=True, text=True, timeout=1200, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"`pulumi {' '.join(args)}` exited {r.returncode}:\n{r.stdout[-6000:]}\n"
                                 f"{r.stderr[-3000:]}")
        return r

    def helm(self, *args: str) -> str:
        r = subprocess.run([str(self.helm_bin), *args], env=self.env, capture_output=True, text=True, timeout=300,
                           check=False)
        assert r.returncode == 0, f"helm {' '.join(args)} exited {r.returncode}: {r.stderr}"
        return r.stdout

    def config(self, **changes: Any) -> None:
        doc = yaml.safe_load(self.lab.stack_config.read_text())
        for key, value in changes.items():
            doc["config"][f"kube-audit:{key}"] = value
        self.lab.stack_config.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))

    def inputs(self) -> list[dict[str, str]]:
        """The ConfigMap's [INPUT] sections, read here independently of the program's parser."""
        data = self.e2e.client().get(CM)["data"]  # type: ignore[index]
        out: list[dict[str, str]] = []
        for text in data.values():
            for block in text.split("[")[1:]:
                head, _, body = block.partition("]")
                if head.strip() == "INPUT":
                    out.append({k.lower(): v.strip() for k, _, v in (ln.strip().partition(" ") for ln in
                                body.splitlines()) if k and not k.startswith("#")})
        return out

    def tags(self) -> set[str]:
        return {i.get("tag", "") for i in self.inputs()}

    def values(self) -> dict[str, Any]:
        return json.loads(self.helm("get", "values", RELEASE, "-n", NS, "-o", "json")) or {}

    def checked(self) -> dict[str, Any]:
        """The outputs of the program's check after the last change (from the stack's state)."""
        state = json.loads(self.pulumi("stack", "export").stdout)
        (res,) = [r for r in state["deployment"]["resources"] if r["type"] == CHECK_TYPE]
        return dict(res["outputs"])


@pytest.fixture(scope="module")
def agent(e2e: E2E) -> Iterator[Agent]:
    with helm_setup(e2e, STACK, "agent-collects") as hs:
        yield from _agent(e2e, hs)


def _agent(e2e: E2E, hs: HelmSetup) -> Iterator[Agent]:
    lab, env, helm_bin, repo = hs.lab, hs.env, hs.helm, hs.repo
    a = Agent(e2e, lab, env, helm_bin, repo)
    try:
        repo.publish("1.0.0")
        repo.publish("0.8.5", fixture=OLDER_FIXTURE)
        a.helm("install", RELEASE, f"{repo.url}/insight-agent-1.0.0.tgz", "-n", NS, "--create-namespace")
        a.helm("repo", "add", "insight-release", repo.url)  # DCE's procedure, before its helm upgrade
        labstack.setup(lab, lambda msg: None)
        first = e2e.hosts[0]
        a.config(masters=[{"name": first.name, "host": first.ip, "port": 22, "user": "root",
                           "hostKey": first.host_public_key()}],
                 insightAgent={"namespace": NS, "skipAwait": True}, enabled="true")
        yield a
    finally:
        a.pulumi("destroy", "--yes", "--skip-preview", check=False)
        a.pulumi("stack", "rm", "--yes", "--force", check=False)
        Path(lab.stack_config).unlink(missing_ok=True)
        subprocess.run([str(helm_bin), "uninstall", RELEASE, "-n", NS], env=env, capture_output=True, check=False)


def glob_reads(state: Path, pattern: str, files: list[str]) -> bool:
    """Python's glob over a copy of the names at their host paths: an oracle apart from the program's matcher."""
    root = state / "glob-oracle"
    shutil.rmtree(root, ignore_errors=True)
    for name in files:
        (root / "var/log/kubernetes/audit").mkdir(parents=True, exist_ok=True)
        (root / "var/log/kubernetes/audit" / name).touch()
    found = {Path(p).name for p in glob.glob(str(root) + pattern)}
    shutil.rmtree(root)
    return set(files) <= found


class TestAgentCollects:
    incremental = True

    def test_enable_renders_the_kube_audit_input_and_the_check_passes(self, agent: Agent):
        agent.pulumi("up", "--yes", "--skip-preview")
        (k8s,) = [i for i in agent.inputs() if i.get("tag") == "audit_log.k8s.*"]
        assert k8s["path"] == DCE_GLOB, k8s
        assert agent.values()["global"]["exporters"]["auditLog"]["kubeAudit"]["enabled"] is True
        written = sorted(p.name for p in agent.e2e.hosts[0].audit_log_dir.iterdir())
        assert "kube-apiserver-audit.log" in written, written
        assert glob_reads(agent.e2e.lab.state, k8s["path"], written)
        out = agent.checked()
        assert out["collectedBy"] and DCE_GLOB in out["collectedBy"][0], out
        assert out["ghippoInputs"], out
        agent.pulumi("preview", "--expect-no-changes")

    def test_ghippo_input_deleted_by_hand_is_named_and_restored(self, agent: Agent):
        client = agent.e2e.client()
        cm = client.get(CM)
        conf = cm["data"]["fluent-bit.conf"]  # type: ignore[index]
        start = conf.index("[INPUT]", conf.index("# Global-management"))
        end = conf.index("[INPUT]", start + 1)
        cm["data"]["fluent-bit.conf"] = conf[:start] + conf[end:]  # type: ignore[index]
        client.put(CM, cm)  # the DCE guide's `kubectl edit cm`
        assert "audit_log.ghippo.*" not in agent.tags()
        r = agent.pulumi("preview", "--diff")
        text = r.stdout + r.stderr
        assert "drifted: agent-collects/insight-agent-fluent-bit-config: no [INPUT] tagged audit_log.ghippo.*" in text
        assert "description" in text, text[-4000:]
        agent.pulumi("up", "--yes", "--skip-preview")
        assert "audit_log.ghippo.*" in agent.tags()
        agent.pulumi("preview", "--expect-no-changes")

    def test_ghippo_off_stays_off_after_a_no_change_up(self, agent: Agent):
        agent.config(insightAgent={"namespace": NS, "skipAwait": True, "collectGlobalManagementAudit": False})
        agent.pulumi("up", "--yes", "--skip-preview")
        assert "audit_log.ghippo.*" not in agent.tags() and "audit_log.k8s.*" in agent.tags()
        assert agent.checked()["ghippoInputs"] == []
        agent.pulumi("up", "--yes", "--skip-preview")
        assert "audit_log.ghippo.*" not in agent.tags()
        agent.pulumi("preview", "--expect-no-changes")

    def test_a_log_dir_the_glob_does_not_read_is_refused_before_any_master(self, agent: Agent):
        host = agent.e2e.hosts[0]
        manifest, status = host.manifest.read_text(), agent.e2e.status(host)
        agent.config(log={"hostDir": "/var/log/audit"})
        r = agent.pulumi("up", "--yes", "--skip-preview", check=False)
        text = r.stdout + r.stderr
        assert r.returncode != 0
        assert "kube-audit:log.hostDir is /var/log/audit" in text and f"tails {DCE_GLOB}" in text, text[-4000:]
        assert host.manifest.read_text() == manifest and agent.e2e.status(host)["starts"] == status["starts"]
        doc = yaml.safe_load(agent.lab.stack_config.read_text())
        del doc["config"]["kube-audit:log"]
        agent.lab.stack_config.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))

    def test_older_chart_is_switched_through_its_own_value(self, agent: Agent):
        # The platform puts an older-style chart in place by hand (values kept); kube-audit follows it.
        agent.helm("repo", "update", "insight-release")
        agent.helm("upgrade", RELEASE, f"{agent.repo.url}/insight-agent-0.8.5.tgz", "-n", NS, "--reuse-values")
        assert "audit_log.k8s.*" not in agent.tags(), "the older chart's switch is off by default"
        # Its ghippo input has no switch: false is refused, saying why.
        r = agent.pulumi("preview", check=False)
        assert r.returncode != 0 and "has no value that switches global-management" in r.stdout + r.stderr
        agent.config(insightAgent={"namespace": NS, "skipAwait": True})
        agent.pulumi("up", "--yes", "--skip-preview")
        assert agent.values()["global"]["exporters"]["auditLog"]["enabled"] is True
        assert {"audit_log.k8s.*", "audit_log.ghippo.*"} <= agent.tags()
        assert DCE_GLOB in agent.checked()["collectedBy"][0]
        assert json.loads(agent.helm("list", "-n", NS, "-o", "json"))[0]["chart"] == "insight-agent-0.8.5"
        agent.pulumi("preview", "--expect-no-changes")

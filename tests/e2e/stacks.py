"""An e2e module's own stack: the real pulumi CLI, config beside the lab's, lab masters and SSH key."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from lab.config import REPO, Host, find_binary
from lab.stack import CONFIG_FILE_COMMANDS

from .harness import E2E
from .plain_output import assert_plain_output


class Stack:
    """The real pulumi CLI on one named stack whose config file lives in the lab's state dir."""

    def __init__(self, e2e: E2E, name: str, project: Path = REPO) -> None:
        self.e2e = e2e
        self.name = name
        self.project = project  # the program's directory: another tree runs an older program on the stack
        self.config = e2e.lab.state / f"Pulumi.{name}.yaml"

    def run(self, *args: str, check: bool = True, input: str | None = None,
            timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        cmd = [str(find_binary("pulumi")), *args, "--stack", self.name, "--non-interactive"]
        if args[0] in CONFIG_FILE_COMMANDS:
            cmd += ["--config-file", str(self.config)]
        r = subprocess.run(cmd, cwd=self.project, env=self.e2e.env(), capture_output=True, text=True, timeout=timeout,
                           input=input, check=False)
        assert_plain_output(f"`pulumi {' '.join(args)}`", r)
        if check and r.returncode != 0:
            raise AssertionError(f"`pulumi {' '.join(args)}` exited {r.returncode}:\n{r.stdout[-6000:]}\n"
                                 f"{r.stderr[-4000:]}")
        return r

    def create(self, config: dict[str, Any], kubeconfig: bool = True) -> None:
        """A fresh stack: the lab's masters (and kubeconfig), the lab key as a secret, plus `config`."""
        env = self.e2e.env()
        pulumi = str(find_binary("pulumi"))
        subprocess.run([pulumi, "stack", "rm", self.name, "--yes", "--force", "--non-interactive"], cwd=self.project,
                       env=env, capture_output=True, check=False)
        subprocess.run([pulumi, "stack", "init", self.name, "--secrets-provider", "passphrase", "--non-interactive"],
                       cwd=self.project, env=env, capture_output=True, check=True)
        # `stack init` writes Pulumi.<stack>.yaml into the project; keep it beside the lab's instead.
        (self.project / f"Pulumi.{self.name}.yaml").replace(self.config)
        doc = yaml.safe_load(self.config.read_text()) or {}
        lab_cfg = yaml.safe_load(self.e2e.lab.stack_config.read_text())["config"]
        doc["config"] = {
            "kube-audit:masters": lab_cfg["kube-audit:masters"],
            **({"kubernetes:kubeconfig": lab_cfg["kubernetes:kubeconfig"]} if kubeconfig else {}),
            **config,
        }
        self.write(doc)
        self.run("config", "set", "--secret", "kube-audit:sshPrivateKey", input=self.e2e.lab.ssh_key.read_text())

    def read(self) -> dict[str, Any]:
        return dict(yaml.safe_load(self.config.read_text()))

    def write(self, doc: dict[str, Any]) -> None:
        self.config.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))

    def timed_preview(self, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
        t = time.monotonic()
        r = self.run("preview", "--diff", *args)
        return r, time.monotonic() - t

    def remove(self) -> None:
        self.run("destroy", "--yes", "--skip-preview", check=False)
        self.run("stack", "rm", "--yes", "--force", check=False)
        self.config.unlink(missing_ok=True)


def starts(e2e: E2E) -> dict[str, int]:
    return {h.name: e2e.status(h)["starts"] for h in e2e.hosts}


def wait_running(e2e: E2E, h: Host, at_least: int, timeout: float = 120) -> None:
    """Until the supervisor has (re)started the apiserver `at_least` times and it answers ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = e2e.status(h)
        if st["starts"] >= at_least and st.get("state") == "running" and e2e.client(h).ready():
            return
        time.sleep(0.5)
    raise AssertionError(f"{h.name} did not come back: {e2e.status(h)}")


def reasons(output: str) -> list[str]:
    """The drift reasons a `preview --diff` shows (quoted strings that start with a lab master's name)."""
    return sorted(set(re.findall(r'"(lab-master-\d+: [^"]+)"', output)))


def drift_blocks(output: str) -> str:
    """The resource header and `drift` lines of a `preview --diff`, as the closing note shows them."""
    lines, out, keep = output.splitlines(), [], False
    drift = re.compile(r"^[~+-]?\s*drift\s*:")
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[urn=") and any(drift.match(x.strip()) for x in lines[i + 1:i + 8]):
            out.append(stripped.rsplit("::", 1)[-1].rstrip("]"))
        if drift.match(stripped):
            keep = True
        if keep:
            out.append(line.rstrip())
            if stripped == "]":
                keep = False
    return "\n".join(out)

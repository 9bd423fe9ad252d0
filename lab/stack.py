"""The `lab` Pulumi stack: offline backend, passphrase secrets, config pointing at the lab.

Lab-derived keys (masters, their host keys, the SSH key, the chart path, the kubeconfig) are
(re)written on every `lab up`; knobs a user or a test may change (`enabled`, `policy`) are only
set when absent, so `lab up` never undoes a `pulumi config set`.
"""

from __future__ import annotations

import json
import os
import subprocess

import yaml

from . import plugins
from .config import CHART, REPO, Lab, find_binary

NS = "kube-audit"
# The pulumi commands that take --config-file (others, like `stack output`, refuse it).
CONFIG_FILE_COMMANDS = {"up", "preview", "refresh", "destroy", "config", "import", "watch"}


def pulumi_cmd(lab: Lab, *args: str, stack: bool = True) -> list[str]:
    """A pulumi command line for the lab stack (adds --stack and, if set, --config-file)."""
    pulumi = find_binary("pulumi")
    if pulumi is None:
        raise FileNotFoundError("pulumi not found in the toolchain bin dir or PATH")
    cmd = [str(pulumi), *args]
    if stack:
        cmd += ["--stack", lab.stack]
        if lab.config_file and args and args[0] in CONFIG_FILE_COMMANDS:
            cmd += ["--config-file", str(lab.stack_config)]
    return cmd


def run_pulumi(lab: Lab, *args: str, stack: bool = True, input: str | None = None,
               check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **lab.env()}
    r = subprocess.run(pulumi_cmd(lab, *args, stack=stack), cwd=REPO, env=env, input=input,
                       capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"pulumi {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def desired_config(lab: Lab) -> dict:
    masters = [
        {"name": h.name, "host": h.ip, "port": 22, "user": "root", "hostKey": h.host_public_key()}
        for h in lab.hosts()
    ]
    return {
        f"{NS}:masters": masters,
        f"{NS}:insightAgent": {"chart": str(CHART), "adopt": True, "skipAwait": True},
        "kubernetes:kubeconfig": str(lab.kubeconfig),
    }


DEFAULTS = {f"{NS}:enabled": "true", f"{NS}:policy": "dce-default"}


def setup(lab: Lab, log) -> bool:
    """Create/select the stack and write its config. Returns False (and says why) when skipped."""
    if find_binary("pulumi") is None:
        log("stack: skipped: no pulumi binary yet (run scripts/toolchain.sh)")
        return False
    if not (REPO / "Pulumi.yaml").exists():
        log("stack: skipped: no Pulumi.yaml in the repo root yet")
        return False
    lab.pulumi_state.mkdir(parents=True, exist_ok=True)
    lab.pulumi_home.mkdir(parents=True, exist_ok=True)
    installed = plugins.install(lab.pulumi_home)
    if installed:
        log(f"stack: installed plugin {', '.join(installed)} into {lab.pulumi_home}")
    listing = run_pulumi(lab, "stack", "ls", "--json", stack=False)
    names = {s.get("name") for s in json.loads(listing.stdout or "[]")}
    cfg_path = lab.stack_config
    if lab.stack not in names:
        if cfg_path.exists():  # left from an earlier, purged state dir: regenerate
            cfg_path.unlink()
        run_pulumi(lab, "stack", "init", lab.stack, "--secrets-provider", "passphrase", "--non-interactive",
                   stack=False)
        if lab.config_file:  # `stack init` has no --config-file: it writes Pulumi.<stack>.yaml
            default = REPO / f"Pulumi.{lab.stack}.yaml"
            cfg_path.parent.mkdir(parents=True, exist_ok=True)
            default.replace(cfg_path)
        log(f"stack: created {lab.stack} in {lab.pulumi_state}")
    else:
        run_pulumi(lab, "stack", "select", lab.stack, stack=False)
    doc = (yaml.safe_load(cfg_path.read_text()) if cfg_path.exists() else None) or {}
    config = doc.setdefault("config", {}) or {}
    doc["config"] = config
    for key, value in DEFAULTS.items():
        config.setdefault(key, value)
    config.update(desired_config(lab))
    cfg_path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
    key_text = lab.ssh_key.read_text()
    current = run_pulumi(lab, "config", "get", f"{NS}:sshPrivateKey", check=False)
    if current.returncode != 0 or current.stdout.strip() != key_text.strip():
        run_pulumi(lab, "config", "set", "--secret", f"{NS}:sshPrivateKey", input=key_text)
    log(f"stack: config written to {cfg_path}")
    return True


"""The whole program through the real Pulumi engine against one real sshd host (no cluster needed).

A temporary directory stands in for /etc/kubernetes (every path is stack config) and readiness is
faked as in test_node_over_ssh; insight-agent is off. The lab's end-to-end tests add the real
kube-apiserver and Helm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.manifest import planner
from lab.config import DEFAULT_TOOLCHAIN_BIN

from .conftest import SshHost
from .fakeapiserver import FakeApiserver
from .test_node_over_ssh import FIXTURE

ROOT = Path(__file__).resolve().parents[2]
TOOLCHAIN = DEFAULT_TOOLCHAIN_BIN  # where scripts/toolchain.sh builds it (KUBE_AUDIT_CACHE honoured)


@pytest.fixture
def stack(tmp_path: Path, ssh_host: SshHost, pulumi_home):  # type: ignore[no-untyped-def]
    if not (TOOLCHAIN / "pulumi").exists():
        pytest.skip(f"no Pulumi CLI at {TOOLCHAIN} (scripts/setup.sh builds it)")
    etc = tmp_path / "etc"
    (etc / "manifests").mkdir(parents=True)
    shutil.copy(FIXTURE, etc / "manifests" / "kube-apiserver.yaml")
    os.utime(etc / "manifests" / "kube-apiserver.yaml", (0, 0))
    fake = FakeApiserver(etc / "manifests" / "kube-apiserver.yaml", down_seconds=1.0)
    env = {
        **os.environ,
        # No .venv on PATH: the language host finds the program's venv from Pulumi.yaml itself.
        "PATH": f"{TOOLCHAIN}:{os.environ['PATH']}",
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
        **pulumi_home(TOOLCHAIN),
        "PULUMI_CONFIG_PASSPHRASE": "",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    (tmp_path / "state").mkdir()
    config_file = tmp_path / "Pulumi.t.yaml"

    def pulumi(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        extra = ["--config-file", str(config_file)] if args[0] in ("preview", "up", "destroy", "config", "refresh") else []
        result = subprocess.run(["pulumi", *args, "--stack", "t", *extra, "--non-interactive"], cwd=ROOT, env=env, input=stdin, text=True,
                                capture_output=True, timeout=300, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    pulumi.env = env  # type: ignore[attr-defined]  # for the Automation API (test_plain_errors_engine)
    pulumi("stack", "init")
    host_key = ssh_host.known_hosts.read_text().split(" ", 1)[1].strip()
    config = {
        "masters": [{"name": "local-1", "host": ssh_host.host, "port": ssh_host.port, "hostKey": host_key}],
        "paths": {"manifest": str(etc / "manifests" / "kube-apiserver.yaml"), "policyDir": str(etc / "audit-policy"),
                  "backupDir": str(etc / "tmp"), "nodeProgramDir": str(tmp_path / "node")},
        "log": {"hostDir": str(tmp_path / "log")},
        "rollout": {"readinessUrl": fake.url, "restartTimeoutSeconds": 20, "readyTimeoutSeconds": 20},
        "insightAgent": {"enabled": False},
    }
    for key, value in config.items():
        pulumi("config", "set", f"kube-audit:{key}", json.dumps(value))
    # Objects go in as JSON strings; the program parses them the same way as YAML objects.
    pulumi("config", "set", "--secret", "kube-audit:sshPrivateKey", stdin=ssh_host.key.read_text())
    yield pulumi, etc, tmp_path
    fake.shutdown()


def manifest(etc: Path) -> planner.Pod:
    return planner.parse_manifest((etc / "manifests" / "kube-apiserver.yaml").read_text(), "m")


def test_preview_up_noop_disable_destroy(stack) -> None:  # type: ignore[no-untyped-def]
    pulumi, etc, tmp = stack
    before = (etc / "manifests" / "kube-apiserver.yaml").read_bytes()

    preview = pulumi("preview", "--diff")
    assert "--audit-policy-file=" in preview.stdout and "auditEnabled" in preview.stdout
    # No warning about this machine rather than the stack: plugins come from PULUMI_HOME (lab/plugins.py).
    assert "from $PATH" not in preview.stdout + preview.stderr, preview.stdout + preview.stderr
    assert (etc / "manifests" / "kube-apiserver.yaml").read_bytes() == before, "preview runs nothing"
    assert not (etc / "audit-policy").exists() and not (tmp / "node").exists()

    up = pulumi("up", "--yes", "--skip-preview")
    assert "from $PATH" not in up.stdout + up.stderr, up.stdout + up.stderr
    assert planner.audit_enabled(manifest(etc))
    assert (etc / "audit-policy" / "apiserver-audit-policy.yaml").stat().st_mode & 0o777 == 0o600
    outputs = json.loads(pulumi("stack", "output", "--json").stdout)
    assert outputs["masters"]["local-1"]["auditEnabled"] is True
    assert json.loads(outputs["masters"]["local-1"]["report"])["changed"] is True

    again = pulumi("preview", "--diff", "--expect-no-changes")
    assert again.returncode == 0

    state = pulumi("stack", "export").stdout
    assert "PRIVATE KEY" not in state, "the private key is only ever stored encrypted"

    # A one-setting change reads as that setting, per master.
    pulumi("config", "set", "kube-audit:log", json.dumps({"hostDir": str(tmp / "log"), "maxAge": 7}))
    changed = pulumi("preview", "--diff").stdout
    print(changed)
    assert '-     [0]: "--audit-log-maxage=30"' in changed.replace("  ", " ") or "--audit-log-maxage=7" in changed
    pulumi("config", "set", "kube-audit:log", json.dumps({"hostDir": str(tmp / "log")}))

    (tmp / "log" / "kube-apiserver-audit.log").write_text("evidence\n")
    pulumi("config", "set", "kube-audit:enabled", "false")
    off = pulumi("preview", "--diff")
    assert "auditEnabled" in off.stdout and "false" in off.stdout
    pulumi("up", "--yes", "--skip-preview")
    assert planner.audit_flags(manifest(etc)) == []
    assert not (etc / "audit-policy" / "apiserver-audit-policy.yaml").exists()
    assert (tmp / "log" / "kube-apiserver-audit.log").read_text() == "evidence\n"

    pulumi("config", "set", "kube-audit:enabled", "true")
    pulumi("up", "--yes", "--skip-preview")
    pulumi("destroy", "--yes", "--skip-preview")
    assert yaml.safe_load((etc / "manifests" / "kube-apiserver.yaml").read_text()) == yaml.safe_load(before)
    # Kept, and appended to by the re-enabled apiserver (the stand-in writes an event when it starts).
    assert (tmp / "log" / "kube-apiserver-audit.log").read_text().startswith("evidence\n")

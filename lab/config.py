"""Where the lab keeps things and how its parts are named (one state dir holds everything)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_STATE = Path(os.environ.get("KUBE_AUDIT_LAB") or Path.home() / ".cache/kube-audit/lab")
# Where scripts/toolchain.sh puts it (its CACHE_ROOT), for when that script cannot be asked.
DEFAULT_TOOLCHAIN_BIN = Path(os.environ.get("KUBE_AUDIT_CACHE") or Path.home() / ".cache/kube-audit") / "toolchain/bin"
CHART = REPO / "tests/fixtures/insight-agent"
# The engine looks for plugins only where lab/plugins.py installs them (and bundled ones beside
# `pulumi`), never on $PATH: no "using ... from $PATH" warning on every run.
IGNORE_AMBIENT_PLUGINS = {"PULUMI_IGNORE_AMBIENT_PLUGINS": "true"}


def toolchain_bin() -> Path:
    """The toolchain's bin dir: $KUBE_AUDIT_TOOLCHAIN_BIN, `scripts/toolchain.sh --print-bin`, default."""
    env = os.environ.get("KUBE_AUDIT_TOOLCHAIN_BIN")
    if env:
        return Path(env)
    script = REPO / "scripts/toolchain.sh"
    if script.exists():
        try:
            out = subprocess.run(["bash", str(script), "--print-bin"], capture_output=True, text=True,
                                 timeout=60, check=True).stdout.strip().splitlines()
            if out:
                return Path(out[-1])
        except (subprocess.SubprocessError, OSError):
            pass
    return DEFAULT_TOOLCHAIN_BIN


def find_binary(name: str) -> Path | None:
    cand = toolchain_bin() / name
    if cand.is_file() and os.access(cand, os.X_OK):
        return cand
    found = shutil.which(name)
    return Path(found) if found else None


@dataclass(frozen=True)
class Host:
    index: int  # 1-based
    lab_index: int
    state: Path

    @property
    def name(self) -> str:
        return f"lab-master-{self.index}"

    @property
    def ip(self) -> str:
        return f"10.77.{self.lab_index}.{10 + self.index}"

    @property
    def netns(self) -> str:
        return f"kalab{self.lab_index}-m{self.index}"

    @property
    def veth(self) -> str:  # host-side end, <= 15 chars
        return f"kalab{self.lab_index}m{self.index}"

    @property
    def dir(self) -> Path:
        return self.state / "hosts" / self.name

    # The host's private filesystems (bind-mounted over the machine's paths inside the host).
    @property
    def etc_kubernetes(self) -> Path:
        return self.dir / "etc-kubernetes"

    @property
    def var_log_kubernetes(self) -> Path:
        return self.dir / "var-log-kubernetes"

    @property
    def tmp(self) -> Path:
        return self.dir / "tmp"

    @property
    def audit_log_dir(self) -> Path:
        """The host's /var/log/kubernetes/audit as seen from the machine."""
        return self.var_log_kubernetes / "audit"

    @property
    def manifest(self) -> Path:
        """The host's /etc/kubernetes/manifests/kube-apiserver.yaml as seen from the machine."""
        return self.etc_kubernetes / "manifests/kube-apiserver.yaml"

    @property
    def apiserver_log(self) -> Path:
        return self.dir / "apiserver.log"

    @property
    def status_file(self) -> Path:
        return self.dir / "status.json"

    @property
    def pid_file(self) -> Path:
        return self.dir / "supervisor.pid"

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh/ssh_host_ed25519_key"

    def host_public_key(self) -> str:
        parts = Path(str(self.host_key) + ".pub").read_text().split()
        return f"{parts[0]} {parts[1]}"

    def server(self) -> str:
        return f"https://{self.ip}:6443"


@dataclass
class Lab:
    state: Path = DEFAULT_STATE
    index: int = 0
    masters: int = 3
    stack: str = "lab"
    config_file: str = ""  # Pulumi.<stack>.yaml; default: repo root
    created: dict = field(default_factory=dict)

    # -- persistence -----------------------------------------------------------------------
    @classmethod
    def load(cls, state: Path | None = None) -> Lab:
        state = Path(state or DEFAULT_STATE).absolute()
        if state == Path("/tmp") or Path("/tmp") in state.parents:
            # Every lab host mounts its own /tmp, so the hosts could not see a state dir there.
            raise SystemExit(f"lab: the state dir {state} must not be under /tmp (set KUBE_AUDIT_LAB elsewhere)")
        f = state / "lab.json"
        if f.exists():
            data = json.loads(f.read_text())
            data["state"] = state
            return cls(**data)
        return cls(state=state)

    def save(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data.pop("state")
        (self.state / "lab.json").write_text(json.dumps(data, indent=1) + "\n")

    # -- naming ----------------------------------------------------------------------------
    @property
    def bridge(self) -> str:
        return f"kalab{self.index}"

    @property
    def gateway(self) -> str:
        return f"10.77.{self.index}.1"

    @property
    def prefix_len(self) -> int:
        return 24

    def hosts(self) -> list[Host]:
        return [Host(i, self.index, self.state) for i in range(1, self.masters + 1)]

    def host(self, name: str) -> Host:
        for h in self.hosts():
            if name in (h.name, str(h.index), h.ip):
                return h
        raise KeyError(f"no lab host {name!r}")

    # -- paths -----------------------------------------------------------------------------
    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def ssh_key(self) -> Path:
        return self.state / "ssh/id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state / "ssh/known_hosts"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def etcd_dir(self) -> Path:
        return self.state / "etcd"

    @property
    def pulumi_state(self) -> Path:
        return self.state / "pulumi-state"

    @property
    def pulumi_home(self) -> Path:
        return self.state / "pulumi-home"

    @property
    def stack_config(self) -> Path:
        return Path(self.config_file) if self.config_file else REPO / f"Pulumi.{self.stack}.yaml"

    # -- environment -----------------------------------------------------------------------
    def env(self, base_path: str | None = None) -> dict[str, str]:
        """The offline Pulumi/Helm environment every user, script and test shares."""
        bin_dir = str(toolchain_bin())
        path = base_path if base_path is not None else os.environ.get("PATH", "")
        if path.split(":")[:1] != [bin_dir]:
            path = f"{bin_dir}:{path}" if path else bin_dir
        env = {
            "KUBE_AUDIT_LAB": str(self.state),
            "PULUMI_BACKEND_URL": f"file://{self.pulumi_state}",
            "PULUMI_CONFIG_PASSPHRASE": "",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_HOME": str(self.pulumi_home),  # plugins installed by lab/plugins.py (lab up, lab env)
            **IGNORE_AMBIENT_PLUGINS,
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(self.state / "helm/cache"),
            "HELM_CONFIG_HOME": str(self.state / "helm/config"),
            "HELM_DATA_HOME": str(self.state / "helm/data"),
            "PATH": path,
        }
        if self.config_file:
            env["KUBE_AUDIT_STACK_CONFIG"] = str(self.stack_config)
        return env

"""A real sshd on loopback, started per test session, with a throwaway key pair."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab import plugins

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshHost:
    host: str
    port: int
    key: Path
    known_hosts: Path

    def ssh(self, command: str, stdin: bytes = b"", timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ssh", "-p", str(self.port), "-i", str(self.key), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
             f"root@{self.host}", command],
            input=stdin, capture_output=True, timeout=timeout, check=False)

    def copy(self, local: Path, remote: str) -> None:
        subprocess.run(
            ["scp", "-q", "-P", str(self.port), "-i", str(self.key), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={self.known_hosts}", str(local), f"root@{self.host}:{remote}"],
            check=True, capture_output=True, timeout=60)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def ssh_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHost]:
    if not os.path.exists(SSHD) or shutil.which("ssh") is None:
        pytest.skip("openssh-server/openssh-client not installed (scripts/setup.sh installs them)")
    if os.geteuid() != 0:
        pytest.skip("sshd with root login needs root (CI and the lab run as root)")
    d = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    port = _free_port()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {(d / 'host_key.pub').read_text()}")
    (d / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_key'}", f"PidFile {d / 'sshd.pid'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
        "Subsystem sftp internal-sftp", ""]))
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    with open(d / "sshd.log", "wb") as log:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()}")
    yield SshHost("127.0.0.1", port, d / "client_key", d / "known_hosts")
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def pulumi_home(tmp_path: Path) -> Iterator[Callable[[Path], dict[str, str]]]:
    """make(toolchain bin) -> env for a throwaway PULUMI_HOME holding the toolchain's plugins, set up
    as the lab's is (lab/plugins.py): the engine never takes a plugin from $PATH."""
    homes: list[Path] = []

    def make(tools: Path) -> dict[str, str]:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        plugins.install(home, tools)
        homes.append(home)
        return {"PULUMI_HOME": str(home), **plugins.ENV}

    yield make
    for home in homes:  # ~160 MB of provider binary each, and pytest keeps the last runs' tmp dirs
        shutil.rmtree(home / "plugins", ignore_errors=True)

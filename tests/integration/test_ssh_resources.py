"""The SSH resources' provider (what the engine calls) against a real sshd on loopback."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import paramiko
import pytest

from components.remote.plain_errors import PlainError
from components.remote.ssh import Connection, RemoteCommandProvider, RemoteFileProvider

from .conftest import SshHost


def props(conn: Connection) -> dict[str, object]:
    return {"host": conn.host, "port": conn.port, "user": conn.user, "privateKey": conn.private_key,
            "privateKeyPassword": None, "hostKey": conn.host_key}


@pytest.fixture
def conn(ssh_host: SshHost) -> Connection:
    host_key = ssh_host.known_hosts.read_text().split(" ", 1)[1].strip()
    return Connection(host=ssh_host.host, port=ssh_host.port, user="root",
                      private_key=ssh_host.key.read_text(), host_key=host_key)


def test_command_lifecycle_create_diff_update_delete(conn: Connection, tmp_path: Path) -> None:
    provider = RemoteCommandProvider()
    target = tmp_path / "out.txt"
    inputs = {"connection": props(conn), "create": f"cat > {target}", "update": f"cat > {target}; echo updated",
              "delete": f"rm {target}", "stdin": "first\n"}
    created = provider.create(inputs)
    assert target.read_text() == "first\n" and created.outs["stdout"] == ""
    assert provider.diff(created.id, created.outs, inputs).changes is False
    changed = {**inputs, "stdin": "second\n"}
    diff = provider.diff(created.id, created.outs, changed)
    assert diff.changes is True and diff.replaces == [], "never a replacement"
    updated = provider.update(created.id, created.outs, changed)
    assert target.read_text() == "second\n" and updated.outs["stdout"] == "updated\n"
    provider.delete(created.id, updated.outs)
    assert not target.exists()


def test_failing_command_reports_exit_code_and_stderr(conn: Connection) -> None:
    with pytest.raises(RuntimeError, match=r"on root@127\.0\.0\.1:\d+: exit 3: boom"):
        RemoteCommandProvider().create({"connection": props(conn), "create": "echo boom >&2; exit 3"})


def test_wrong_host_key_is_refused(conn: Connection) -> None:
    other = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") else None
    fake = f"ssh-ed25519 {other.get_base64()}" if other else \
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3Vq4b1cW6f7cZbGg1oQm0k3b8e1pH5w2Xn2mY9q1Zr"
    bad = {**props(conn), "hostKey": fake}
    with pytest.raises(PlainError, match=rf"on {conn.label}: the host key does not match this master's hostKey") as info:
        RemoteCommandProvider().create({"connection": bad, "create": "true"})
    assert isinstance(info.value.__cause__, paramiko.BadHostKeyException)
    assert "set hostKey to it" in str(info.value), "the fix is named"


def test_unreadable_key_error_does_not_echo_the_key(conn: Connection) -> None:
    bad = {**props(conn), "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n-----END OPENSSH PRIVATE KEY-----\n"}
    with pytest.raises(PlainError, match="could not be read") as info:
        RemoteCommandProvider().create({"connection": bad, "create": "true"})
    assert "c2VjcmV0" not in str(info.value)


def test_connection_change_is_an_update(conn: Connection) -> None:
    provider = RemoteCommandProvider()
    inputs = {"connection": props(conn), "create": "true", "update": None, "delete": None, "stdin": None}
    moved = {**inputs, "connection": {**props(conn), "port": conn.port + 1}}
    assert provider.diff("x", inputs, moved).changes is True


def test_file_upload_is_atomic_with_mode(conn: Connection, tmp_path: Path) -> None:
    source = tmp_path / "program.pyz"
    source.write_bytes(b"\x00binary\xff" * 1000)
    remote = tmp_path / "remote" / "dir" / "program.pyz"
    inputs = {"connection": props(conn), "source": str(source), "remotePath": str(remote), "mode": "0640",
              "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    created = RemoteFileProvider().create(inputs)
    assert remote.read_bytes() == source.read_bytes() and remote.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in remote.parent.iterdir()) == ["program.pyz"]
    assert RemoteFileProvider().diff(created.id, created.outs, {**inputs, "source": "/moved/program.pyz"}).changes is False


def test_a_failed_copy_is_a_plain_error_and_leaves_the_file(conn: Connection, tmp_path: Path) -> None:
    source = tmp_path / "program.pyz"
    source.write_bytes(b"new")
    remote = tmp_path / "remote" / "program.pyz"
    (remote.parent / ".program.pyz.upload").mkdir(parents=True)  # the dot-file's name is taken: SFTP refuses
    remote.write_bytes(b"old")
    inputs = {"connection": props(conn), "source": str(source), "remotePath": str(remote), "mode": "0640",
              "sha256": "x"}
    with pytest.raises(PlainError, match=rf"on {conn.label}: cannot copy {source} to {remote}: .*is as it was"):
        RemoteFileProvider().create(inputs)
    assert remote.read_bytes() == b"old"


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def test_a_connection_cut_mid_command_fails_naming_the_host_instead_of_hanging(
        conn: Connection, ssh_host: SshHost) -> None:
    import os
    import signal
    import threading
    import time

    daemon = int((ssh_host.known_hosts.parent / "sshd.pid").read_text())
    before = set(_children(daemon))
    provider = RemoteCommandProvider()
    inputs = {"connection": props(conn), "create": "echo started; sleep 60", "stdin": None}
    outcome: dict[str, BaseException | None] = {}

    def create() -> None:
        try:
            provider.create(inputs)
            outcome["error"] = None
        except BaseException as exc:  # the test inspects it
            outcome["error"] = exc

    worker = threading.Thread(target=create, daemon=True)
    worker.start()
    deadline = time.monotonic() + 20
    session: list[int] = []
    while not session:  # the per-connection sshd whose command runs (it has a child)
        assert time.monotonic() < deadline, "no sshd session appeared"
        time.sleep(0.2)
        session = [pid for pid in set(_children(daemon)) - before if _children(pid)]
    time.sleep(1.0)
    cut = time.monotonic()
    for pid in session:  # the host's end of the connection dies, as on a crash or a cut
        descendants = _children(pid)
        for victim in (pid, *descendants, *(g for c in descendants for g in _children(c))):
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
    worker.join(30)
    assert not worker.is_alive(), "the provider hung on a dead connection"
    error = outcome["error"]
    assert isinstance(error, RuntimeError), error
    assert f"on {conn.label}: the SSH connection was lost while the command ran" in str(error)
    assert "started" in str(error), "what the command printed so far is kept"
    assert time.monotonic() - cut < 10

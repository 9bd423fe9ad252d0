"""open_client against hosts that drop the connection during the SSH handshake.

A master whose link goes down between the TCP connect and the banner makes paramiko raise a bare
EOFError (Packetizer.write_all on a reset socket), which is neither an OSError nor an SSHException.
It must be retried and then reported as "cannot connect", never escape as a traceback (CI, stop 26:
test_rollout_faults.test_c printed one).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import paramiko
import pytest

from components.remote import ssh
from components.remote.ssh import Connection, open_client
from tests.loopback import loopback_server


def test_an_eof_during_the_handshake_is_retried_then_reported_as_cannot_connect(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def connect(self: paramiko.SSHClient, host: str, **kwargs: Any) -> None:
        calls.append(host)
        raise EOFError()

    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    monkeypatch.setattr(ssh.time, "sleep", lambda seconds: None)
    with pytest.raises(ConnectionError) as info:
        open_client(Connection(host="10.77.0.12"), attempts=3)
    assert calls == ["10.77.0.12"] * 3, "every attempt was made"
    assert str(info.value) == ("cannot connect to root@10.77.0.12:22: the connection was closed during the "
                               "SSH handshake")


def test_an_eof_once_then_a_good_handshake_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = [EOFError(), None]

    def connect(self: paramiko.SSHClient, host: str, **kwargs: Any) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    monkeypatch.setattr(ssh.time, "sleep", lambda seconds: None)
    client = open_client(Connection(host="10.77.0.12"), attempts=3)
    assert outcomes == [] and isinstance(client, paramiko.SSHClient)


def _reset(peer: socket.socket) -> None:
    # SO_LINGER 0: close() sends a RST, as a link cut by a dying host or firewall does.
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()


@pytest.fixture
def resetting_port() -> Iterator[int]:
    """A real TCP port on loopback that accepts each connection and resets it at once."""
    with loopback_server(_reset) as port:
        yield port


def test_a_host_that_resets_every_handshake_is_cannot_connect_not_a_traceback(
        resetting_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Which of paramiko's errors comes out (EOFError, SSHException, ConnectionResetError) depends on
    # whether the reset beats the client's banner write; each must end as the same ConnectionError.
    monkeypatch.setattr(ssh.time, "sleep", lambda seconds: None)
    with pytest.raises(ConnectionError, match=r"^cannot connect to root@127\.0\.0\.1:\d+: "):
        open_client(Connection(host="127.0.0.1", port=resetting_port), attempts=4, timeout=2)

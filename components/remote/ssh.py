"""The thin SSH layer: two resources, RemoteCommand and RemoteFile, run by the real Pulumi engine.

Why not pulumi-command: its provider binary cannot be had here (the Go module proxy refuses
github.com/pulumi/pulumi-command and pulumi-go-provider at every version, and it is not published on
any registry we reach), and a program that cannot run against a real engine proves nothing. These
resources are a Pulumi dynamic provider (served by the engine's pulumi-python provider host) over
paramiko, with the semantics this project needs and pulumi-command lacks:

* any input change is an in-place update (never a replacement, whose delete would turn audit off);
* the private key is only ever an input, and a secret one; outputs carry no key material;
* stdin is written to the remote command (no `environment`, which most sshd configs reject).

Preview calls only `check`/`diff`: nothing runs on a node.

A failure the user must act on (a node command's refusal, an unreachable or impostor host) is a
PlainError: the engine shows its message alone. Anything else is a bug and keeps its traceback
(components/remote/plain_errors.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import posixpath
import select
import shlex
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import paramiko
import pulumi
import pulumi.dynamic as dynamic

from components.drift.props import drift_props, pending, with_hidden
from components.remote import plain_errors
from components.remote.plain_errors import PlainError
from components.settings.masters import host_key_from_line

# Inputs whose change means "run again"; everything else (e.g. stdout) is an output.
# `drift` holds the reasons the program found on the node (components/drift); a successful run
# converges the node, so outputs always store [] and the next preview compares against that.
_COMMAND_INPUTS = ("create", "update", "delete", "stdin", "connectionId", "drift")
_NO_DRIFT: dict[str, list[str]] = {"drift": [], "repair": []}
_FILE_INPUTS = ("sha256", "remotePath", "mode", "connectionId")
# A peer silent this long (no TCP keepalive answer, data unacknowledged) is gone.
DEAD_PEER_SECONDS = 30
# What a broken link looks like through paramiko: the socket's OSError, the protocol's SSHException,
# and a bare EOFError when the peer vanishes mid-handshake (Packetizer.write_all on a reset socket).
LINK_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, paramiko.SSHException)


@dataclass(frozen=True)
class Connection:
    """How to reach one host. `private_key` None means: use the ssh-agent."""

    host: str
    port: int = 22
    user: str = "root"
    private_key: str | None = None
    private_key_password: str | None = None
    host_key: str | None = None

    @classmethod
    def from_props(cls, props: dict[str, Any]) -> Connection:
        return cls(host=props["host"], port=int(props.get("port") or 22), user=props.get("user") or "root",
                   private_key=props.get("privateKey"), private_key_password=props.get("privateKeyPassword"),
                   host_key=props.get("hostKey"))

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def identity(self) -> str:
        """Changes when any part of the connection does, without revealing the key."""
        secret = f"{self.private_key or ''}\0{self.private_key_password or ''}".encode()
        return f"{self.label} hostKey={self.host_key or '-'} key={hashlib.sha256(secret).hexdigest()[:16]}"


def connection_input(conn: Connection) -> pulumi.Output[dict[str, Any]]:
    """The connection as a resource input: wholly secret, so the key never lands in state in clear."""
    return pulumi.Output.secret({
        "host": conn.host, "port": conn.port, "user": conn.user, "privateKey": conn.private_key,
        "privateKeyPassword": conn.private_key_password, "hostKey": conn.host_key,
    })


class UnreadableKeyError(ValueError):
    """The configured private key is not one paramiko can read (a ValueError, as it always was)."""


def _load_key(text: str, password: str | None) -> paramiko.PKey:
    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=password)
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(f"{kind.__name__}: {exc}")
    # Never include the key text: only which parsers refused it.
    raise UnreadableKeyError("the private key could not be read (" + "; ".join(errors) + ")")


def open_client(conn: Connection, attempts: int = 5, timeout: float = 15) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    if conn.host_key:
        kind, key = host_key_from_line(conn.host_key)  # the parse settings already checked
        name = conn.host if conn.port == 22 else f"[{conn.host}]:{conn.port}"
        client.get_host_keys().add(name, kind, key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        # Same as pulumi-command without hostKey: not checked. Setting hostKey is recommended.
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    pkey = _load_key(conn.private_key, conn.private_key_password) if conn.private_key else None
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            client.connect(conn.host, port=conn.port, username=conn.user, pkey=pkey, timeout=timeout,
                           allow_agent=pkey is None, look_for_keys=False, banner_timeout=timeout,
                           auth_timeout=timeout)
            _detect_dead_peer(client)
            return client
        except paramiko.BadHostKeyException:
            raise
        except LINK_ERRORS as exc:
            last = exc
            if attempt + 1 < attempts:
                time.sleep(min(2**attempt, 10))
    raise ConnectionError(f"cannot connect to {conn.label}: {_described(last)}")


def _described(exc: Exception | None) -> str:
    # EOFError's text is empty; say what it means.
    if isinstance(exc, EOFError) and not str(exc):
        return "the connection was closed during the SSH handshake"
    return str(exc)


def _detect_dead_peer(client: paramiko.SSHClient, seconds: int = DEAD_PEER_SECONDS) -> None:
    """Let the kernel drop a connection whose peer went silent (cable cut, host gone).

    A node program may rightly print nothing for minutes while it waits for an apiserver, so silence
    is no sign; unanswered TCP keepalives and unacknowledged data are.
    """
    transport = client.get_transport()
    sock = getattr(transport, "sock", None)
    if not isinstance(sock, socket.socket):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", seconds // 3), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3),
                          ("TCP_USER_TIMEOUT", seconds * 1000)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _exec(client: paramiko.SSHClient, command: str, stdin: str | None) -> tuple[int, str, str]:
    """Run one command on an open client; reads both streams as they come (no pipe deadlock)."""
    transport = client.get_transport()
    assert transport is not None
    channel = transport.open_session()
    channel.exec_command(command)
    if stdin:
        channel.sendall(stdin.encode("utf-8"))
    channel.shutdown_write()
    out, err = bytearray(), bytearray()
    while True:
        select.select([channel], [], [], 1.0)
        while channel.recv_ready():
            out += channel.recv(65536)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
        if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            break
        if not transport.is_active():
            break
    code = channel.recv_exit_status() if channel.exit_status_ready() else -1
    if code == -1:
        # No exit status: the connection died. What ran on the host may have finished or may
        # still be running; the next run finds out (every node command converges from any state).
        raise ConnectionError("the SSH connection was lost while the command ran; its outcome on the host "
                              f"is unknown (stdout so far: {out.decode('utf-8', 'replace')[-500:]!r}, stderr so "
                              f"far: {err.decode('utf-8', 'replace')[-1500:]!r})")
    return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def run(conn: Connection, command: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run one command on a fresh connection; returns (exit code, stdout, stderr)."""
    client = open_client(conn)
    try:
        return _exec(client, command, stdin)
    finally:
        client.close()


@contextlib.contextmanager
def _reported(conn: Connection) -> Iterator[None]:
    """Turn the failures a user can act on into PlainErrors naming the host, the cause and the fix.

    Only these: any other exception is a bug in this code and must keep its traceback.
    """
    try:
        yield
    except ConnectionError as exc:  # unreachable, refused login, or lost mid-command (its text says)
        raise PlainError(f"on {conn.label}: {exc}") from exc
    except paramiko.BadHostKeyException as exc:
        raise PlainError(
            f"on {conn.label}: the host key does not match this master's hostKey in kube-audit:masters (got "
            f"{exc.key.get_name()} {exc.key.get_base64()}). Nothing was run. If the master was reinstalled, "
            "check its new key out of band and set hostKey to it") from exc
    except UnreadableKeyError as exc:
        raise PlainError(f"on {conn.label}: {exc}. Nothing was run. Set kube-audit:sshPrivateKey to an "
                         "OpenSSH or PEM private key (and sshPrivateKeyPassphrase if it has one)") from exc
    except LINK_ERRORS as exc:  # the session broke some other way (network, sshd)
        raise PlainError(f"on {conn.label}: the SSH session failed ({type(exc).__name__}: {exc}); if the command "
                         "had started, the next run finds out what it did and converges from there") from exc


def _check(
    conn: Connection, command: str, stdin: str | None, client: paramiko.SSHClient | None = None
) -> dict[str, str]:
    with _reported(conn):
        code, out, err = _exec(client, command, stdin) if client else run(conn, command, stdin)
    if code != 0:
        raise PlainError(plain_errors.command_failure(conn.label, code, out, err))
    return {"stdout": out, "stderr": err}


def _changed(olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]) -> bool:
    def view(props: dict[str, Any]) -> dict[str, Any]:
        # Reasons count wherever they travel (components/drift/props.py); none in an old state.
        return {**props, "connectionId": Connection.from_props(props["connection"]).identity,
                "drift": pending(props)}

    old, new = view(olds), view(news)
    return any(old.get(k) != new.get(k) for k in keys)


def _outputs(props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    # The connection stays in the outputs because delete only gets the outputs. It is safe there:
    # this provider does not accept secrets, so the engine re-marks every output whose input was
    # secret (the whole connection) as secret before it reaches state.
    return {**props, **extra}


class _PlainErrorsProvider(dynamic.ResourceProvider):
    """Base of our providers: the host calls `configure` once, before any create/diff/update/delete,
    in the dynamic-provider host process; there our PlainErrors are made to show as plain text."""

    def configure(self, req: dynamic.ConfigureRequest) -> None:
        plain_errors.install()


# Stable names: every stack's state holds a pickle that refers to these classes by module and name,
# so renaming or moving them breaks update and destroy of existing stacks. (Their bases are not in
# the pickle.)
class RemoteCommandProvider(_PlainErrorsProvider):
    """create/update/delete shell commands on a host; stdin goes to create and update."""

    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        outs = _check(Connection.from_props(props["connection"]), props["create"], props.get("stdin"))
        return dynamic.CreateResult(id_=uuid.uuid4().hex, outs=_outputs(props, **outs, **_NO_DRIFT))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return dynamic.DiffResult(changes=_changed(olds, news, _COMMAND_INPUTS), replaces=[])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        command = news.get("update") or news["create"]
        outs = _check(Connection.from_props(news["connection"]), command, news.get("stdin"))
        return dynamic.UpdateResult(outs=_outputs(news, **outs, **_NO_DRIFT))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if props.get("delete"):
            _check(Connection.from_props(props["connection"]), props["delete"], None)


class RemoteCommand(dynamic.Resource, module="kube-audit", name="RemoteCommand"):
    """A command run over SSH on create and update (and `delete` on destroy)."""

    stdout: pulumi.Output[str]
    stderr: pulumi.Output[str]

    def __init__(self, name: str, connection: Connection, create: str, update: str | None = None,
                 delete: str | None = None, stdin: str | None = None, drift: Sequence[str] = (),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(RemoteCommandProvider(), name, {
            "connection": connection_input(connection), "create": create, "update": update, "delete": delete,
            "stdin": stdin, **drift_props(drift), "stdout": None, "stderr": None,
        }, with_hidden(opts))


def upload(conn: Connection, source: str, remote_path: str, mode: int) -> None:
    with _reported(conn):
        client = open_client(conn)
    try:
        directory = posixpath.dirname(remote_path)
        _check(conn, f"mkdir -p -m 0755 {shlex.quote(directory)}", None, client)
        tmp = posixpath.join(directory, "." + posixpath.basename(remote_path) + ".upload")
        try:
            sftp = client.open_sftp()
            sftp.put(source, tmp)
            sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, remote_path)
            sftp.close()
        except LINK_ERRORS as exc:  # a full disk or a lost link on the master
            raise PlainError(f"on {conn.label}: cannot copy {source} to {remote_path}: {exc}; {remote_path} is "
                             "as it was (the copy goes to a dot-file first)") from exc
    finally:
        client.close()


class RemoteFileProvider(_PlainErrorsProvider):
    """A local file copied to a host by SFTP (atomically); `sha256` makes content changes visible."""

    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        upload(Connection.from_props(props["connection"]), props["source"], props["remotePath"], int(props["mode"], 8))
        return dynamic.CreateResult(id_=uuid.uuid4().hex, outs=_outputs(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return dynamic.DiffResult(changes=_changed(olds, news, _FILE_INPUTS), replaces=[])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        upload(Connection.from_props(news["connection"]), news["source"], news["remotePath"], int(news["mode"], 8))
        return dynamic.UpdateResult(outs=_outputs(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # Left in place on purpose: a node program may be needed by a later destroy step.
        return None


class RemoteFile(dynamic.Resource, module="kube-audit", name="RemoteFile"):
    """Copies a local file to `remote_path` on a host."""

    def __init__(self, name: str, connection: Connection, source: str, remote_path: str, mode: str = "0644",
                 opts: pulumi.ResourceOptions | None = None) -> None:
        with open(source, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        super().__init__(RemoteFileProvider(), name, {
            "connection": connection_input(connection), "source": source, "sha256": digest,
            "remotePath": remote_path, "mode": mode,
        }, opts)

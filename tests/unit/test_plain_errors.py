"""What the engine receives when our provider fails: the real dynamic-provider host, over gRPC.

The host is the SDK's own `python -m pulumi.dynamic` (what pulumi-resource-pulumi-python starts),
called the way the engine calls it. A failure the user must act on comes back as its message alone;
a bug in our code comes back with its traceback. No engine and no sshd needed: the refusal used is
an unreadable private key, which fails before any connection.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import paramiko
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from components.remote import plain_errors
from components.remote.plain_errors import PlainError
from components.remote.ssh import Connection, RemoteCommandProvider, UnreadableKeyError, _reported

ROOT = Path(__file__).resolve().parents[2]
BAD_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.fixture(scope="module")
def host() -> Iterator[provider_pb2_grpc.ResourceProviderStub]:
    # cwd: the host imports our providers by module name, as the engine's host does from the project dir.
    proc = subprocess.Popen([sys.executable, "-m", "pulumi.dynamic"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()  # the host's first line, as the engine reads it
    if not port.isdigit():
        proc.kill()
        pytest.fail(f"the dynamic-provider host did not start: {port!r} {proc.communicate()[1]}")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield provider_pb2_grpc.ResourceProviderStub(channel)
    channel.close()
    proc.terminate()
    proc.wait(timeout=10)


def create_error(stub: provider_pb2_grpc.ResourceProviderStub, props: dict[str, Any]) -> grpc.RpcError:
    bag = {"__provider": serialize_provider(RemoteCommandProvider()), **props}
    struct = asyncio.run(rpc.serialize_properties(bag, {}))
    request = provider_pb2.CreateRequest(urn="urn:pulumi:t::kube-audit::pulumi-python:dynamic/kube-audit:RemoteCommand::x",
                                         properties=struct)
    with pytest.raises(grpc.RpcError) as info:
        stub.Create(request, timeout=60)
    return info.value


def test_an_expected_failure_reaches_the_engine_as_its_message(host: provider_pb2_grpc.ResourceProviderStub) -> None:
    connection = {"host": "192.0.2.1", "port": 22, "user": "root", "privateKey": BAD_KEY}
    error = create_error(host, {"connection": connection, "create": "true"})
    details = error.details()  # type: ignore[attr-defined]
    assert details.startswith("on root@192.0.2.1:22: the private key could not be read ("), details
    assert "Set kube-audit:sshPrivateKey" in details, "the fix is named"
    assert "Traceback" not in details and "__main__.py" not in details and "File " not in details, details
    assert "c2VjcmV0" not in details, "the key text never travels"


def test_a_bug_in_our_code_keeps_its_traceback(host: provider_pb2_grpc.ResourceProviderStub) -> None:
    error = create_error(host, {"create": "true"})  # no connection: the provider's own KeyError
    details = error.details()  # type: ignore[attr-defined]
    assert details.startswith("Traceback (most recent call last):"), details
    assert 'components/remote/ssh.py", line' in details and details.rstrip().endswith("KeyError: 'connection'"), details


# --- install(), without a host process ---------------------------------------------------------


def fake_host() -> types.ModuleType:
    module = types.ModuleType("__main__")
    module.DynamicResourceProviderServicer = object  # type: ignore[attr-defined]
    module._abort_with_traceback = lambda fn: fn  # type: ignore[attr-defined]
    module.traceback = traceback  # type: ignore[attr-defined]
    return module


def formatted(module: types.ModuleType, error: BaseException) -> str:
    try:
        raise error
    except BaseException:
        return str(module.traceback.format_exc())


def test_install_changes_only_what_plain_errors_look_like() -> None:
    module = fake_host()
    assert plain_errors.install(module) is True
    assert formatted(module, PlainError("on m1: exit 2: refused")) == "on m1: exit 2: refused"
    bug = formatted(module, KeyError("connection"))
    assert bug.startswith("Traceback (most recent call last):") and bug.endswith("KeyError: 'connection'\n")
    assert module.traceback.format_list is traceback.format_list, "the rest of the module is the real one"
    assert plain_errors.install(module) is True and formatted(module, PlainError("x")) == "x", "idempotent"


def test_install_leaves_other_processes_and_foreign_patches_alone() -> None:
    program = types.ModuleType("__main__")
    program.traceback = traceback  # type: ignore[attr-defined]
    assert plain_errors.install(program) is False
    assert program.traceback is traceback, "a Pulumi program or a test is not the host"
    assert plain_errors.install() is False, "pytest's own __main__ is not the host either"

    module = fake_host()
    foreign = types.SimpleNamespace(format_exc=lambda: "someone else's")
    module.traceback = foreign  # type: ignore[attr-defined]
    assert plain_errors.install(module) is False and module.traceback is foreign


# --- which failures are plain --------------------------------------------------------------------

CONN = Connection(host="10.77.0.12", port=22)
KEY = paramiko.Ed25519Key(data=bytes.fromhex(
    "0000000b7373682d65643235353139000000201e8a5b3a6c2e4b7a1c2f3d4e5f60718293a4b5c6d7e8f9011223344556677889"))


@pytest.mark.parametrize(("raised", "shown"), [
    (ConnectionError("cannot connect to root@10.77.0.12:22: timed out"),
     "on root@10.77.0.12:22: cannot connect to root@10.77.0.12:22: timed out"),
    (paramiko.BadHostKeyException("10.77.0.12", KEY, KEY),
     "on root@10.77.0.12:22: the host key does not match this master's hostKey in kube-audit:masters (got ssh-ed25519"),
    (UnreadableKeyError("the private key could not be read (Ed25519Key: bad)"),
     "on root@10.77.0.12:22: the private key could not be read (Ed25519Key: bad). Nothing was run. Set"),
    (paramiko.SSHException("SSH session not active"),
     "on root@10.77.0.12:22: the SSH session failed (SSHException: SSH session not active); if the command had"),
    (TimeoutError("timed out"), "on root@10.77.0.12:22: the SSH session failed (TimeoutError: timed out)"),
    (EOFError(), "on root@10.77.0.12:22: the SSH session failed (EOFError: ); if the command had started"),
])
def test_what_a_user_can_act_on_is_plain(raised: Exception, shown: str) -> None:
    with pytest.raises(PlainError) as info, _reported(CONN):
        raise raised
    assert str(info.value).startswith(shown), str(info.value)
    assert info.value.__cause__ is raised, "the original stays attached for a debugger"


@pytest.mark.parametrize("bug", [KeyError("connection"), TypeError("x"), AttributeError("y"), ValueError("z")])
def test_a_bug_is_not_made_plain(bug: Exception) -> None:
    with pytest.raises(type(bug)) as info, _reported(CONN):
        raise bug
    assert info.value is bug

"""Gather every master's facts at once, read-only and bounded in time, while the program runs.

Why in the program and not in the provider: a plain `pulumi preview` never calls a provider's
`read`, and a dynamic provider's `diff` cannot say *why* it differs. Facts read here become a
`drift` input (plain reasons), so the ordinary diff shows them and `up` repairs through the same
gated update as any other change. An unreachable master is a warning, never a hang.
"""

from __future__ import annotations

import json
import select
import shlex
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from components.drift.preview_preflight import BOOTSTRAP, PreflightRun, frame
from components.remote.node_program import python_command
from components.remote.ssh import LINK_ERRORS, Connection, open_client

# Connecting also reads the private key: an unreadable one is a ValueError (UnreadableKeyError).
_CONNECT_ERRORS: tuple[type[Exception], ...] = (*LINK_ERRORS, ValueError)

READER_SOURCE = (Path(__file__).resolve().parent / "reader.py").read_text(encoding="utf-8")


@dataclass(frozen=True)
class PreflightAsk:
    """Run `up`'s preflight too (previews only): the request `up` sends, and the bundle to run it."""

    request: str
    """The NodeRequest JSON of this master's manifest change."""
    bundle: bytes = field(default=b"", repr=False, compare=False)
    """The node program zipapp (components/manifest/bundle.py), run from memory on the master."""


@dataclass(frozen=True)
class FactRequest:
    """What to read on one master."""

    manifest: str
    policy: str | None
    """The policy file path, or None when audit is off (then its absence is expected)."""
    preflight: PreflightAsk | None = None

    def to_json(self) -> str:
        return json.dumps({"manifest": self.manifest, "policy": self.policy}, sort_keys=True)


@dataclass(frozen=True)
class Reading:
    """Facts from one master, or why there are none."""

    facts: dict[str, Any] | None
    error: str | None = None
    seconds: float = 0.0
    unreachable: bool = False
    """No SSH session could be opened: `up` would stop at this master too."""
    preflight: PreflightRun | None = None
    """The preview preflight's result, when it was asked for and the master was reached."""


# master name -> (connection, request); returns master name -> reading.
FactReader = Callable[[Mapping[str, tuple[Connection, FactRequest]], float], dict[str, Reading]]


def reader_command(request: FactRequest) -> str:
    """Run the reader from stdin with the request as its one argument; no python3 is said plainly."""
    return ("command -v python3 >/dev/null 2>&1 || { echo 'python3 not found in PATH' >&2; exit 127; }; "
            "exec python3 - " + shlex.quote(request.to_json()))


def preflight_command() -> str:
    """`up`'s preflight line, but the program comes from stdin (preview_preflight.BOOTSTRAP)."""
    return python_command("-c", BOOTSTRAP)


def _run_bounded(client: paramiko.SSHClient, command: str, stdin: str | bytes, deadline: float,
                 what: str = "the fact reader") -> tuple[int, str, str]:
    transport = client.get_transport()
    assert transport is not None
    channel = transport.open_session()
    channel.exec_command(command)
    channel.sendall(stdin.encode("utf-8") if isinstance(stdin, str) else stdin)
    channel.shutdown_write()
    out, err = bytearray(), bytearray()
    while True:
        if time.monotonic() > deadline:
            channel.close()
            raise TimeoutError(f"{what} did not finish in time")
        select.select([channel], [], [], 0.2)
        while channel.recv_ready():
            out += channel.recv(65536)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
        if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            return channel.recv_exit_status(), out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _facts(client: paramiko.SSHClient, conn: Connection, request: FactRequest,
           deadline: float) -> tuple[dict[str, Any] | None, str | None]:
    try:
        code, out, err = _run_bounded(client, reader_command(request), READER_SOURCE, deadline)
    except LINK_ERRORS as exc:  # TimeoutError (the deadline) is an OSError
        return None, f"reading {conn.label} failed: {exc}"
    if code != 0:
        return None, f"the fact reader exited {code} on {conn.label}: {(err or out).strip()[-500:]}"
    try:
        facts = json.loads(out)
    except ValueError:
        return None, f"the fact reader on {conn.label} printed no JSON: {out.strip()[:200]!r}"
    return (facts if isinstance(facts, dict) else None), None


def _preflight(client: paramiko.SSHClient, ask: PreflightAsk, deadline: float) -> PreflightRun:
    try:
        code, out, err = _run_bounded(client, preflight_command(), frame(ask.request, ask.bundle), deadline,
                                      "the preflight")
    except LINK_ERRORS as exc:  # TimeoutError (the deadline) is an OSError
        return PreflightRun(None, error=str(exc))
    return PreflightRun(code, out, err)


def read_one(conn: Connection, request: FactRequest, timeout: float) -> Reading:
    """One SSH connection, read-only commands; every failure becomes a Reading with an error.

    The fact reader and (when asked) the preflight share the connection and one deadline.
    """
    start = time.monotonic()
    deadline = start + timeout
    try:
        client = open_client(conn, attempts=1, timeout=max(1.0, timeout / 2))
    except _CONNECT_ERRORS as exc:
        # open_client's own error already says "cannot connect to <label>"; others do not.
        why = str(exc) if str(exc).startswith("cannot connect to") else f"cannot connect to {conn.label}: {exc}"
        return Reading(None, why, time.monotonic() - start, unreachable=True)
    try:
        if request.preflight is None:
            facts, error = _facts(client, conn, request, deadline)
            check = None
        else:
            # Two channels of one session side by side: the read costs the slower of the two.
            with ThreadPoolExecutor(max_workers=1) as side:
                pending = side.submit(_preflight, client, request.preflight, deadline)
                facts, error = _facts(client, conn, request, deadline)
                check = pending.result()
    finally:
        client.close()
    return Reading(facts, error, time.monotonic() - start, preflight=check)


def read_all(targets: Mapping[str, tuple[Connection, FactRequest]], timeout: float) -> dict[str, Reading]:
    """Every master in parallel, so the whole read takes about as long as the slowest master."""
    if not targets:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
        futures = {name: pool.submit(read_one, conn, req, timeout) for name, (conn, req) in targets.items()}
        return {name: future.result() for name, future in futures.items()}

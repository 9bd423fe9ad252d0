"""The thin SSH layer: how a master is reached, and the node program shipped to it.

Every change on a master is made by the same tested Python (components/manifest/node.py), copied
there as a zipapp and run with `python3`. This module only builds SSH connections and command lines.
"""

from __future__ import annotations

import functools
import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi

from components.manifest.bundle import build_bundle, build_preview_bundle
from components.remote.ssh import Connection, RemoteFile
from components.settings import PROJECT_DIR, Master, Settings

_BUILD_DIR = PROJECT_DIR / ".build"


@functools.cache
def _bundle() -> Path:
    """Built once per run: every master gets the same file."""
    return build_bundle(_BUILD_DIR)


def preview_bundle_bytes() -> bytes:
    """The same program with bytecode beside its sources, for a preview's in-memory run (bundle.py)."""
    return build_preview_bundle(_bundle())


def connection(master: Master, settings: Settings) -> Connection:
    """SSH connection for one master (resources wrap it as a secret input).

    With no key configured the ssh-agent (SSH_AUTH_SOCK) is used.
    """
    key = settings.ssh_private_key
    passphrase = settings.ssh_private_key_passphrase
    return Connection(
        host=master.host,
        port=master.port,
        user=master.user,
        host_key=master.host_key,
        private_key=key.get_secret_value() if key else None,
        private_key_password=passphrase.get_secret_value() if passphrase else None,
    )


def python_command(program: str, *args: str) -> str:
    """A shell line that runs the node program, failing clearly when the master has no python3."""
    argv = " ".join(shlex.quote(a) for a in (program, *args))
    return (
        "command -v python3 >/dev/null 2>&1 || { echo 'kube-audit: python3 (3.9 or newer) is required on this "
        "master and was not found in PATH' >&2; exit 127; }; exec python3 " + argv
    )


@dataclass(frozen=True)
class NodeProgramArgs:
    master: Master
    """The master to copy the program to."""
    connection: Connection
    """How to reach it."""
    remote_dir: str
    """Directory on the master that holds the program (created if missing)."""


class NodeProgram(pulumi.ComponentResource):
    """Copies the node program (a content-addressed zipapp) to one master.

    The file name carries the content hash, so a code change shows in preview as a new path in the
    commands that use it, and an older program is never overwritten while it may still be running.
    """

    path: str
    """Where the program lives on the master."""

    def __init__(self, name: str, args: NodeProgramArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kube-audit:index:NodeProgram", name, {"master": args.master.name}, opts)
        bundle = _bundle()
        self.path = posixpath.join(args.remote_dir, bundle.name)
        self.copy = RemoteFile(
            f"{name}-copy",
            connection=args.connection,
            source=str(bundle),
            remote_path=self.path,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"path": self.path})

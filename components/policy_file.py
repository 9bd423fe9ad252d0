"""The audit policy file on every master: validated text in, mode 0600, content hash out."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from components.remote.node_program import NodeProgram, python_command
from components.remote.ssh import Connection, RemoteCommand
from components.settings import Master, PolicySource


@dataclass(frozen=True)
class AuditPolicyFileArgs:
    connections: Mapping[str, Connection]
    """Per master name, how to reach it."""
    programs: Mapping[str, NodeProgram]
    """Per master name, the node program that writes the file."""
    policy: PolicySource
    """The policy, already validated by settings (bad input never reaches a node)."""
    policy_dir: str
    policy_file: str
    store_dir: str
    """Where each master keeps every policy version by hash, for rollback (under the backup dir)."""
    manifest: str
    """The kube-apiserver manifest: the file is never removed while a manifest beside it names it."""
    drift: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Per master name, how the file on it differs from the policy (components/drift)."""


class AuditPolicyFile(pulumi.ComponentResource):
    """The audit policy on every master, atomically and readable by root only, one master per turn.

    Each master's file is written in that master's turn (`write_on`, right before its manifest
    change), so a master whose change fails and rolls back leaves the later masters' files untouched:
    an apiserver there that restarts on its own keeps loading the policy its flags were made for.
    Destroying it removes the file only (never the audit logs), after that master's manifest stops
    using it, and never while any manifest on the master still names it.
    """

    policy_hash: str
    """sha256 of the policy text; the manifest annotation that restarts the apiserver carries it."""
    writes: dict[str, RemoteCommand]
    """Per master name, the command that wrote the file (that master's manifest change depends on it)."""

    def __init__(self, name: str, args: AuditPolicyFileArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        self._path = posixpath.join(args.policy_dir, args.policy_file)
        props = {"policyText": args.policy.text, "policySource": args.policy.name,
                 "policyHash": args.policy.sha256, "path": self._path}
        super().__init__("kube-audit:index:AuditPolicyFile", name, props, opts)
        self._name, self._args = name, args
        self.policy_hash = args.policy.sha256
        self.writes = {}
        self.register_outputs({"policyHash": self.policy_hash, "path": self._path})

    def write_on(self, master: Master, after: Sequence[pulumi.Resource]) -> RemoteCommand:
        """Declare the write on `master`, after `after` (the preflight and the previous master's change)."""
        args, path = self._args, self._path
        program = args.programs[master.name].path
        write = python_command(program, "write-file", "--path", path, "--mode", "0600", "--store", args.store_dir)
        self.writes[master.name] = RemoteCommand(
            f"{self._name}-{master.name}",
            connection=args.connections[master.name],
            create=write,
            update=write,
            delete=python_command(program, "remove-file", "--path", path, "--keep-if-used-by", args.manifest),
            stdin=args.policy.text,
            drift=args.drift.get(master.name, ()),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.programs[master.name], *after]),
        )
        return self.writes[master.name]

"""The audit policy file on every master: validated text in, mode 0600, content hash out."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from components.node_program import NodeProgram, python_command
from components.settings import Master, PolicySource
from components.ssh import Connection, RemoteCommand


@dataclass(frozen=True)
class AuditPolicyFileArgs:
    masters: tuple[Master, ...]
    """Every control-plane node; each gets the same file."""
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
    drift: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Per master name, how the file on it differs from the policy (components/drift)."""
    after: Sequence[pulumi.Resource] = ()
    """What must pass first: the whole-cluster preflight."""


class AuditPolicyFile(pulumi.ComponentResource):
    """Writes the audit policy to every master, atomically and readable by root only.

    The file is written before any manifest references it; the preview shows the policy text diff.
    Destroying it removes the file only (never the audit logs), after the manifests stop using it.
    """

    policy_hash: str
    """sha256 of the policy text; the manifest annotation that restarts the apiserver carries it."""
    writes: dict[str, RemoteCommand]
    """Per master name, the command that wrote the file (manifest changes depend on it)."""

    def __init__(self, name: str, args: AuditPolicyFileArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        path = posixpath.join(args.policy_dir, args.policy_file)
        props = {"policyText": args.policy.text, "policySource": args.policy.name,
                 "policyHash": args.policy.sha256, "path": path}
        super().__init__("kube-audit:index:AuditPolicyFile", name, props, opts)
        self.policy_hash = args.policy.sha256
        self.writes = {}
        for master in args.masters:
            program = args.programs[master.name].path
            write = python_command(program, "write-file", "--path", path, "--mode", "0600", "--store",
                                   args.store_dir)
            self.writes[master.name] = RemoteCommand(
                f"{name}-{master.name}",
                connection=args.connections[master.name],
                create=write,
                update=write,
                delete=python_command(program, "remove-file", "--path", path),
                stdin=args.policy.text,
                drift=args.drift.get(master.name, ()),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.programs[master.name], *args.after]),
            )
        self.register_outputs({"policyHash": self.policy_hash, "path": path})

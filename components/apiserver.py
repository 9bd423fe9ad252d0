"""The kube-apiserver manifest change on one master, run by the shipped node program.

Masters are changed strictly one after another (each depends on the previous), and each change
only completes when that master's apiserver is ready again, so at most one apiserver is down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.manifest.desired import AuditState, NodeRequest
from components.remote.node_program import NodeProgram, python_command
from components.remote.ssh import Connection, RemoteCommand
from components.settings import Master, RolloutSettings


@dataclass(frozen=True)
class ApiServerAuditChangeArgs:
    master: Master
    """The master whose manifest is changed."""
    connection: Connection
    """How to reach it."""
    program: NodeProgram
    """The node program on that master."""
    state: AuditState
    """Desired audit state (enabled, flags, mounts, policy hash)."""
    manifest: str
    backup_dir: str
    rollout: RolloutSettings
    after: Sequence[pulumi.Resource] = ()
    """What must finish first: the previous master's change and this master's policy file."""
    drift: Sequence[str] = ()
    """How this master's manifest differs from the desired state now (components/drift); [] if in sync."""


def node_request(args: ApiServerAuditChangeArgs, state: AuditState) -> NodeRequest:
    """The request the node program gets (apply and preflight read the same one)."""
    return NodeRequest(
        master=args.master.name,
        state=state,
        manifest=args.manifest,
        backup_dir=args.backup_dir,
        restart_timeout=float(args.rollout.restart_timeout_seconds),
        ready_timeout=float(args.rollout.ready_timeout_seconds),
        readiness_url=args.rollout.readiness_url,
        keep_backups=args.rollout.keep_backups,
        ready_consecutive=args.rollout.ready_consecutive,
        audit_write_timeout=float(args.rollout.audit_write_timeout_seconds),
        log_margin_mb=args.rollout.log_space_margin_mb,
        pod_log_dir=args.rollout.pod_log_dir,
    )


def preview_props(state: AuditState) -> dict[str, object]:
    """The per-master inputs a preview diff shows: plain audit settings, not a script."""
    return {
        "auditEnabled": state.enabled,
        "auditFlags": state.flags(),
        "policyHash": state.policy_hash,
        "logDirInContainer": state.log_dir if state.enabled else None,
        "logDirOnHost": state.log_host_dir if state.enabled else None,
    }


class ApiServerAuditChange(pulumi.ComponentResource):
    """Converges one master's kube-apiserver manifest to the desired audit state.

    Create and update run the node program with the request on stdin; it backs the manifest up
    outside the manifests dir, replaces it atomically, waits for the apiserver to restart and become
    ready, and restores the backup (failing the run, naming the master) if it does not. Destroy
    turns audit off the same way. Audit logs are never deleted.
    """

    report: pulumi.Output[str]
    """What the master did, as JSON (changes, backup path, readiness timings)."""

    def __init__(self, name: str, args: ApiServerAuditChangeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kube-audit:index:ApiServerAuditChange", name,
                         {"master": args.master.name, **preview_props(args.state)}, opts)
        program = args.program.path
        apply = python_command(program, "apply")
        # Destroy has no stdin, so the audit-off request travels as an argument. Only what locates
        # our mounts matters for turning audit off, so retention tweaks do not touch this input.
        s = args.state
        off = AuditState(enabled=False, policy_dir=s.policy_dir, policy_file=s.policy_file, log_path=s.log_path,
                         log_host_dir=s.log_host_dir)
        revert = python_command(program, "apply", "--request", node_request(args, off).to_json(compact=True))
        self.command = RemoteCommand(
            f"{name}-manifest",
            connection=args.connection,
            create=apply,
            update=apply,
            delete=revert,
            stdin=node_request(args, args.state).to_json(),
            drift=args.drift,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.program, *args.after]),
        )
        self.report = self.command.stdout
        self.register_outputs({"report": self.report, **preview_props(args.state)})

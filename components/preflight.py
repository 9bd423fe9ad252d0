"""Whole-cluster preflight: every master is checked, read-only, before anything is written to any.

One check per master runs the node program's `preflight` (components/manifest/preflight.py) with
the same request the manifest change gets. Every policy write and manifest change depends on all of
them, so one refused master means no master changes; the checks run side by side, so every refused
master's problems are reported in the same run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from components.manifest.desired import NodeRequest
from components.remote.node_program import NodeProgram, python_command
from components.remote.ssh import Connection, RemoteCommand
from components.settings import Master


@dataclass(frozen=True)
class ClusterPreflightArgs:
    masters: tuple[Master, ...]
    """Every control-plane node."""
    connections: Mapping[str, Connection]
    """Per master name, how to reach it."""
    programs: Mapping[str, NodeProgram]
    """Per master name, the node program that runs the checks."""
    requests: Mapping[str, NodeRequest]
    """Per master name, the request its manifest change will get (what is checked)."""
    drifted: Sequence[str] = ()
    """The masters that drifted (components/drift): a repair is a change like any other, so any
    drift anywhere reruns every check before the repair writes anything."""


def recheck_notes(drifted: Sequence[str]) -> list[str]:
    """What each check shows as its `drift` when some master drifted: which one, not its reasons.

    The reasons are shown once, under the resources that repair them (that master's manifest
    change and policy write); repeated under every master's check they read as if every master had
    drifted. Any change to this input makes the engine run the check again, which is all it is for.
    """
    return [f"{name} drifted: every master is checked again before the repair" for name in sorted(drifted)]


class ClusterPreflight(pulumi.ComponentResource):
    """Checks every master before the first change; reruns whenever the desired state changes or any
    master has drifted (so a drift-only repair is checked too)."""

    checks: list[RemoteCommand]
    """One per master; changes depend on all of them."""

    def __init__(self, name: str, args: ClusterPreflightArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kube-audit:index:ClusterPreflight", name, {"masters": [m.name for m in args.masters]}, opts)
        self.checks = []
        for master in args.masters:
            program = args.programs[master.name]
            check = python_command(program.path, "preflight")
            self.checks.append(RemoteCommand(
                f"{name}-{master.name}",
                connection=args.connections[master.name],
                create=check,
                update=check,
                stdin=args.requests[master.name].to_json(),
                drift=recheck_notes(args.drifted),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[program]),
            ))
        self.register_outputs({})

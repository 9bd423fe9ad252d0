"""The fleet's engine: the Pulumi Automation API over this project's directory (no CLI text is parsed).

One LocalWorkspace over the project dir serves every stack: each operation passes `--stack` itself,
so threads do not step on each other, and no stack is ever *selected* (see _Workspace). Events come
from the engine's event log (`on_event`) and are turned into the plain records of classify.py.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pulumi import automation as auto
from pulumi.automation import events as ev

from .classify import Diagnostic, Record, Step, Violation
from .rollout import OnRecord, RunResult
from .spec import StackRef

_COLOR = re.compile(r"<\{%[^%]*%\}>")


def _text(message: str) -> str:
    return _COLOR.sub("", message).strip()


def _step(meta: ev.StepEventMetadata, phase: str) -> Step:
    state = meta.new or meta.old
    op = meta.op.value if hasattr(meta.op, "value") else str(meta.op)
    return Step(
        urn=meta.urn, type=meta.type, op=op, parent=(state.parent if state else "") or "",
        custom=bool(state.custom) if state is not None else True,
        new_inputs=dict(meta.new.inputs or {}) if meta.new is not None else {},
        old_inputs=dict(meta.old.inputs or {}) if meta.old is not None else {},
        diffs=tuple(meta.diffs or meta.keys or ()), phase=phase)


def to_record(event: ev.EngineEvent) -> Record | None:
    """The one record an engine event carries, or None (prelude, summary, stdout, ...)."""
    if event.resource_pre_event is not None:
        return _step(event.resource_pre_event.metadata, "pre")
    if event.res_outputs_event is not None:
        return _step(event.res_outputs_event.metadata, "done")
    if event.res_op_failed_event is not None:
        return _step(event.res_op_failed_event.metadata, "failed")
    if event.policy_event is not None:
        p = event.policy_event
        return Violation(p.policy_pack_name, p.policy_name, p.enforcement_level, _text(p.message),
                         p.resource_urn or "")
    if event.diagnostic_event is not None and not event.diagnostic_event.ephemeral:
        d = event.diagnostic_event
        return Diagnostic(d.severity, _text(d.message), d.urn or "")
    return None


def _error(exc: auto.CommandError) -> str:
    """The engine's own last words (its stderr), without the Automation API's wrapping."""
    # The Automation API keeps only str(CommandResult): "\n code: N\n stdout: ...\n stderr: ...".
    stderr = str(exc).rpartition("\n stderr: ")[2]
    lines = [line for line in _text(stderr).splitlines() if line.strip()]
    if isinstance(exc, auto.ConcurrentUpdateError):
        return "the stack is locked by another update (another runner, or an interrupted one): " + " ".join(lines[-3:])
    return "\n".join(lines[-12:]) or str(exc)[-2000:]


class _Workspace(auto.LocalWorkspace):
    """A LocalWorkspace whose `Stack.select` runs no `pulumi stack select`.

    Every command the Automation API runs already passes `--stack`, and the fleet checks each name
    against `stack ls` first. `stack select` would only rewrite the person's current stack (a fleet run
    must not change what their next bare `pulumi up` targets), with one thread per stack writing that
    one workspace file at once, and cost a CLI start per stack before its preview can begin.
    """

    def select_stack(self, stack_name: str) -> None:
        return None


class AutomationEngine:
    """preview/up of one stack at a time (callers run several at once on threads)."""

    def __init__(self, project_dir: Path, policy_packs: Sequence[str] = (), policy_pack_configs: Sequence[str] = (),
                 env: Mapping[str, str] | None = None) -> None:
        found = shutil.which("pulumi")
        # PulumiCommand(root) runs root/bin/pulumi: the toolchain's bin dir on $PATH gives that layout.
        root = str(Path(found).resolve().parent.parent) if found and Path(found).parent.name == "bin" else None
        self.command = auto.PulumiCommand(root=root)
        self.workspace = _Workspace(work_dir=str(project_dir), env_vars=dict(env or {}),
                                    pulumi_command=self.command)
        self.policy_packs = [str((project_dir / p).resolve()) for p in policy_packs]
        self.policy_pack_configs = [str((project_dir / p).resolve()) for p in policy_pack_configs]

    @property
    def version(self) -> str:
        return str(self.command.version)

    def list_stacks(self) -> list[str]:
        return sorted(s.name for s in self.workspace.list_stacks())

    def tags(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        return {n: dict(self.workspace.list_tags(n)) for n in names}

    def _select(self, ref: StackRef) -> auto.Stack:
        return auto.Stack.select(ref.name, self.workspace)

    def _common(self, ref: StackRef, on_record: OnRecord) -> dict[str, Any]:
        def on_event(event: ev.EngineEvent) -> None:
            record = to_record(event)
            if record is not None:
                on_record(record)

        return {"on_event": on_event, "config_file": ref.config_file, "color": "never",
                "policy_packs": self.policy_packs or None, "policy_pack_configs": self.policy_pack_configs or None,
                "suppress_progress": True}

    def preview(self, ref: StackRef, on_record: OnRecord) -> RunResult:
        try:
            self._select(ref).preview(**self._common(ref, on_record))
        except auto.CommandError as exc:
            return RunResult(_error(exc))
        return RunResult()

    def up(self, ref: StackRef, on_record: OnRecord) -> RunResult:
        try:
            # show_secrets=False: the summary read after `up` would otherwise decrypt through Pulumi.<stack>.yaml
            # in the project dir, which a stack with its config file elsewhere does not have.
            self._select(ref).up(suppress_outputs=True, show_secrets=False, **self._common(ref, on_record))
        except auto.CommandError as exc:
            return RunResult(_error(exc))
        return RunResult()

    def last_update(self, ref: StackRef) -> dict[str, Any]:
        """The stack's newest history entry (kind, result, end time), or {} if it never ran."""
        try:
            history = self._select(ref).history(page_size=1, show_secrets=False)
        except auto.CommandError as exc:
            return {"error": _error(exc)}
        if not history:
            return {}
        h = history[0]
        return {"kind": h.kind, "result": h.result, "end": str(h.end_time or ""), "version": h.version}

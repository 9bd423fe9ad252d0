"""Per master, in one line, what the following `pulumi up` does there, and why. Pure: no I/O, no pulumi.

Derived from what the preview read: the preflight verdict (refused) and the drift, which the
planner itself defines (components/drift/compare.py: a manifest drifts exactly when the change
would rewrite it, and only a rewritten manifest restarts the apiserver). So "will restart" means
the manifest change rewrites this master's manifest; "policy rewrite only" means only the policy
file is put back (no restart: the manifest, and so the pod, stays as it is).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from components.drift.compare import Drift

REFUSED = "refused"
RESTART = "will restart"
POLICY_ONLY = "policy rewrite only"
UNCHANGED = "unchanged"
NOT_READ = "not read"

_WIDTH = 240
_NODE_PREFIX = re.compile(r"^on \S+: exit \d+: kube-audit\[[^\]]*\]: ")


@dataclass(frozen=True)
class MasterPreview:
    """What the preview learned about one master."""

    name: str
    drift: Drift | None
    """None: the master was not read (the reason is in `unread`)."""
    refusal: str | None = None
    """The message `up` would stop with on this master, when it would."""
    unread: str | None = None


def _one_line(text: str) -> str:
    flat = " ".join(_NODE_PREFIX.sub("", text.strip()).split())
    flat = flat.removesuffix("; nothing was changed")
    return flat if len(flat) <= _WIDTH else flat[:_WIDTH - 1] + "…"


def _reasons(master: str, reasons: Sequence[str]) -> str:
    shown = [r.removeprefix(f"{master}: ") for r in reasons]
    more = f" (+{len(shown) - 1} more)" if len(shown) > 1 else ""
    return _one_line(shown[0]) + more


def outcome(view: MasterPreview) -> tuple[str, str]:
    """(what `up` does on this master, why) — the why is "" for an unchanged master."""
    if view.refusal:
        return REFUSED, _one_line(view.refusal)
    if view.drift is None:
        return NOT_READ, _one_line(view.unread or "no reading")
    if view.drift.manifest:
        return RESTART, _reasons(view.name, view.drift.manifest)
    if view.drift.policy:
        return POLICY_ONLY, _reasons(view.name, view.drift.policy)
    return UNCHANGED, ""


def summary(views: Sequence[MasterPreview]) -> str:
    """The top-level lines a reviewer reads first: one per master, in rollout order."""
    lines = ["what `pulumi up` does, per master:"]
    for view in views:
        what, why = outcome(view)
        lines.append(f"  {view.name}: {what}" + (f" — {why}" if why else ""))
    return "\n".join(lines)


def refusal_report(refusals: Mapping[str, str], masters: int) -> str:
    """The preview's error when `up` would be refused: every refused master with `up`'s own message."""
    head = (f"the preflight refuses {len(refusals)} of {masters} masters, so `pulumi up` would stop before "
            "changing any master; nothing was changed. Per master, what `up` would say:")
    return "\n".join([head, *(f"{name}: {text.strip()}" for name, text in refusals.items())])


def unreachable_refusal(master: str, why: str) -> str:
    """An unreachable master refuses `up` at its preflight; the preview says so with the fix."""
    return (f"{why}; `pulumi up` would stop at this master's preflight. Start sshd on {master} and check its host, "
            "port and hostKey in kube-audit:masters and the SSH key (or set kube-audit:drift.read false to "
            "preview without reading any master)")

"""The stack's own forecast: its policy and rotation over `kube-audit:volumeSample`, for the preview.

Reads only local files (the sample), so a preview still runs nothing on any node. The sample is
taken as the whole cluster's traffic, spread over the stack's masters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from components.policy import load_policy

from .forecast import Forecast, forecast
from .report import human_bytes, human_hours
from .rotation import Rotation

if TYPE_CHECKING:  # pragma: no cover
    from components.settings import Settings


@dataclass(frozen=True)
class StackVolume:
    """What the preview prints and the guardrail pack checks."""

    forecast: Forecast
    summary: str
    warnings: tuple[str, ...]
    props: dict[str, float | int | None]


def check_history(history_hours: float | None, min_hours: float) -> list[str]:
    """Advisory: the rotation keeps at least ``min_hours`` of audit history on each master."""
    if history_hours is None or history_hours >= min_hours:
        return []
    return [
        f"audit log rotation keeps only {human_hours(history_hours)} of history per master at the predicted "
        f"volume (wanted at least {human_hours(min_hours)}): raise log.maxSize/log.maxBackup, ship the log "
        "off the masters, or choose a leaner policy"
    ]


def volume_forecast(settings: Settings) -> StackVolume | None:
    """None unless audit is on and `kube-audit:volumeSample` names a sample."""
    if not settings.volume_sample or settings.policy is None:
        return None
    policy = load_policy(settings.policy.text, settings.policy.path)
    rotation = Rotation(settings.log.max_size, settings.log.max_backup, settings.log.max_age,
                        bool(settings.log.compress))
    result = forecast([(settings.policy.name, policy)], [Path(p) for p in settings.volume_sample], rotation,
                      masters=len(settings.masters))
    p = result.policies[0]
    summary = (
        f"policy {p.name}: predicted {p.events_per_day:,.0f} events and {human_bytes(p.bytes_per_day)} of audit "
        f"log a day ({human_bytes(p.bytes_per_day_per_master)} per master); maxSize {rotation.max_size_mb} MB x "
        f"maxBackup {rotation.max_backup} keeps {human_hours(p.history.hours)} of history per master "
        f"(from {result.sample_requests} requests over {result.span_seconds:.0f} s in the sample"
        + (f", {p.estimated_bytes / p.bytes:.0%} of the bytes estimated" if p.bytes and p.estimated_bytes else "")
        + ")"
    )
    warnings = check_history(p.history.hours, settings.volume_min_history_hours)
    if result.bad_lines:
        warnings.append(f"the volume sample had {result.bad_lines} line(s) that are not audit events (skipped)")
    props: dict[str, float | int | None] = {
        "predictedBytesPerDay": round(p.bytes_per_day),
        "predictedHistoryHours": None if p.history.hours is None else round(p.history.hours, 2),
        "minHistoryHours": settings.volume_min_history_hours,
    }
    return StackVolume(result, summary, tuple(warnings), props)

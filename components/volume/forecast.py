"""The whole prediction: read the sample once, replay it through every policy, scale to a day.

The sample's time span (first ``requestReceivedTimestamp`` to last ``stageTimestamp``) scales its
totals to a day; the sample is taken as the traffic of the whole cluster, spread evenly over
``masters`` apiservers (pass 1 for a sample from one master).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components.policy import Policy

from .reader import BadLine, ReadStats, open_sample, read_events
from .replay import Bucket, Replay, Tally
from .rotation import History, Rotation, history

DAY = 86400.0
COMPRESS_PROBE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class PolicyForecast:
    """One policy's prediction."""

    name: str
    requests: int
    by_level: dict[str, int]
    events: int
    bytes: int
    estimated_events: int
    estimated_bytes: int
    lower_in_sample: int
    writes: tuple[int, int]  # write requests in the sample, of them recorded (level above None)
    secrets: tuple[int, int]  # requests to secrets (any verb), of them recorded
    events_per_day: float
    bytes_per_day: float
    bytes_per_day_per_master: float
    history: History
    by_rule: dict[int | None, Bucket]
    by_user: dict[str, Bucket]
    by_resource: dict[str, Bucket]


@dataclass(frozen=True)
class Forecast:
    """Every policy's prediction plus what was read."""

    policies: list[PolicyForecast]
    sample_events: int
    sample_requests: int
    sample_bytes: int
    span_seconds: float
    bad_lines: int
    bad_examples: list[BadLine]
    late_events: int
    synthesised_stages: dict[str, int]
    defaulted_bodies: int
    masters: int
    rotation: Rotation
    compress_ratio: float


def sample_span(stats: ReadStats) -> float:
    """Seconds from the first request received to the last stage written (0 when unknown)."""
    if stats.first_received is None or stats.last_stamp is None:
        return 0.0
    return max(stats.last_stamp - stats.first_received, 0.0)


def compress_ratio(paths: list[Path]) -> float:
    """gzip size / size of the sample's first few MiB: what ``log.compress`` saves on backups."""
    buf = bytearray()
    for path in paths:
        with open_sample(path) as fh:
            try:
                buf += fh.read(COMPRESS_PROBE_BYTES - len(buf))
            except (OSError, EOFError):
                # A corrupt or truncated gzip file: the reader counts it as a bad line; the ratio is
                # taken from what the other files give.
                continue
        if len(buf) >= COMPRESS_PROBE_BYTES:
            break
    if not buf:
        return 1.0
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6) as gz:  # lumberjack: gzip default level
        gz.write(bytes(buf))
    return len(out.getvalue()) / len(buf)


def _policy_forecast(tally: Tally, requests: int, scale: float, masters: int, rotation: Rotation,
                     ratio: float) -> PolicyForecast:
    per_day = tally.bytes * scale
    return PolicyForecast(
        name=tally.name,
        requests=requests,
        by_level={level: tally.by_level.get(level, 0) for level in ("None", "Metadata", "Request", "RequestResponse")},
        events=tally.events,
        bytes=tally.bytes,
        estimated_events=tally.estimated_events,
        estimated_bytes=tally.estimated_bytes,
        lower_in_sample=tally.lower_in_sample,
        writes=(tally.writes[0], tally.writes[1]),
        secrets=(tally.secrets[0], tally.secrets[1]),
        events_per_day=tally.events * scale,
        bytes_per_day=per_day,
        bytes_per_day_per_master=per_day / masters,
        history=history(per_day / masters, rotation, ratio),
        by_rule=tally.by_rule,
        by_user=tally.by_user,
        by_resource=tally.by_resource,
    )


def forecast(
    policies: list[tuple[str, Policy]],
    samples: list[Path],
    rotation: Rotation,
    masters: int = 1,
    span_seconds: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> Forecast:
    """Read ``samples`` once and predict each policy. Raises SampleError for an unreadable file."""
    stats = ReadStats()
    replay = Replay(policies)
    for event in read_events(samples, stats, progress):
        replay.feed(event)
    tallies = replay.finish()
    span = span_seconds if span_seconds is not None else sample_span(stats)
    scale = DAY / span if span > 0 else 0.0
    ratio = compress_ratio(samples) if rotation.compress else 1.0
    return Forecast(
        policies=[_policy_forecast(t, replay.requests, scale, masters, rotation, ratio) for t in tallies],
        sample_events=stats.events,
        sample_requests=replay.requests,
        sample_bytes=stats.bytes_read,
        span_seconds=span,
        bad_lines=stats.bad,
        bad_examples=stats.bad_examples or [],
        late_events=replay.late_events,
        synthesised_stages=dict(replay.synthesised_stages),
        defaulted_bodies=replay.defaulted_bodies,
        masters=masters,
        rotation=rotation,
        compress_ratio=ratio,
    )

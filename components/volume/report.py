"""The forecast as a readable table, as JSON (``volume --json``) and as a plot (``--plot``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .forecast import Forecast, PolicyForecast
from .replay import Bucket


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop always returns


def human_hours(hours: float | None) -> str:
    if hours is None:
        return "unbounded"
    if hours >= 48:
        return f"{hours / 24:.1f} d"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.0f} min"


def _top(table: dict[Any, Bucket], n: int) -> list[tuple[Any, Bucket]]:
    return sorted(table.items(), key=lambda kv: (-kv[1].bytes, str(kv[0])))[:n]


def policy_json(p: PolicyForecast, top: int) -> dict[str, Any]:
    h = p.history
    return {
        "policy": p.name,
        "requests": p.requests,
        "byLevel": p.by_level,
        "events": p.events,
        "bytes": p.bytes,
        "eventsPerDay": round(p.events_per_day, 1),
        "bytesPerDay": round(p.bytes_per_day),
        "bytesPerDayPerMaster": round(p.bytes_per_day_per_master),
        "historyHours": None if h.hours is None else round(h.hours, 2),
        "historyHoursMax": None if h.hours_max is None else round(h.hours_max, 2),
        "historyLimitedBy": h.limited_by,
        "rotateEveryHours": None if h.rotate_every_hours is None else round(h.rotate_every_hours, 2),
        "diskBytesPerMaster": h.disk_bytes,
        "coverage": {"writes": {"requests": p.writes[0], "recorded": p.writes[1]},
                     "secrets": {"requests": p.secrets[0], "recorded": p.secrets[1]}},
        "estimated": {"events": p.estimated_events, "bytes": p.estimated_bytes,
                      "requestsLowerInSample": p.lower_in_sample},
        "byRule": [{"rule": rule, "requests": b.requests, "events": b.events, "bytes": b.bytes}
                   for rule, b in sorted(p.by_rule.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))],
        "topUsers": [{"user": u, "requests": b.requests, "events": b.events, "bytes": b.bytes}
                     for u, b in _top(p.by_user, top)],
        "topResources": [{"resource": r, "requests": b.requests, "events": b.events, "bytes": b.bytes}
                         for r, b in _top(p.by_resource, top)],
    }


def forecast_json(f: Forecast, top: int = 10) -> dict[str, Any]:
    return {
        "sample": {
            "events": f.sample_events, "requests": f.sample_requests, "bytes": f.sample_bytes,
            "spanSeconds": round(f.span_seconds, 3), "badLines": f.bad_lines,
            "badExamples": [f"{b.path}:{b.line}: {b.reason}" for b in f.bad_examples],
            "lateEvents": f.late_events, "synthesisedStages": f.synthesised_stages,
            "bodiesAtDefaultSize": f.defaulted_bodies,
        },
        "masters": f.masters,
        "rotation": {"maxSize": f.rotation.max_size_mb, "maxBackup": f.rotation.max_backup,
                     "maxAge": f.rotation.max_age_days, "compress": f.rotation.compress,
                     "compressRatio": round(f.compress_ratio, 3)},
        "policies": [policy_json(p, top) for p in f.policies],
    }


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()
            for r in rows]


def format_forecast(f: Forecast, top: int = 5) -> str:
    r = f.rotation
    lines = [
        f"sample: {f.sample_events} events, {f.sample_requests} requests, {human_bytes(f.sample_bytes)}, "
        f"span {f.span_seconds:.1f} s; scaled to a day, spread over {f.masters} master(s)",
        f"rotation per master: maxSize {r.max_size_mb} MB x maxBackup {r.max_backup}, maxAge {r.max_age_days} d"
        + (f", compressed (ratio {f.compress_ratio:.2f})" if r.compress else ""),
        "",
    ]
    rows: list[tuple[str, ...]] = [("POLICY", "REQUESTS", "NONE", "META", "REQ", "REQRESP", "EVENTS/DAY",
                                    "BYTES/DAY", "PER MASTER", "HISTORY", "ESTIMATED")]
    for p in f.policies:
        est = p.estimated_bytes / p.bytes if p.bytes else 0.0
        rows.append((p.name, str(p.requests), *(str(p.by_level[k]) for k in ("None", "Metadata", "Request",
                     "RequestResponse")), f"{p.events_per_day:,.0f}", human_bytes(p.bytes_per_day),
                     human_bytes(p.bytes_per_day_per_master), human_hours(p.history.hours), f"{est:.0%}"))
    lines += _table(rows)
    for p in f.policies:
        lines += ["", f"{p.name}: top rules, users, resources by bytes"]
        for title, table in (("rule", p.by_rule), ("user", p.by_user), ("resource", p.by_resource)):
            for key, b in _top(table, top):
                if b.bytes:
                    name = "no rule (None)" if title == "rule" and key is None else str(key)
                    lines.append(f"  {title:<8} {name:<48} {b.requests:>9} req {human_bytes(b.bytes):>11}")
        lines.append(f"  records {p.writes[1]}/{p.writes[0]} writes and {p.secrets[1]}/{p.secrets[0]} "
                     "requests to secrets of the sample")
        if p.lower_in_sample:
            lines.append(f"  {p.lower_in_sample} request(s) are held in the sample below the level this policy "
                         "asks: their missing bodies are estimated from the sample's other bodies")
    if f.synthesised_stages:
        stages = ", ".join(f"{k} x{v}" for k, v in sorted(f.synthesised_stages.items()))
        lines += ["", f"estimated: stages the sample omitted, priced from the request's other events ({stages})"]
    if f.bad_lines:
        lines += ["", f"{f.bad_lines} line(s) were not audit events and were skipped, e.g.:"]
        lines += [f"  {b.path}:{b.line}: {b.reason}" for b in f.bad_examples]
    return "\n".join(lines)


def plot(f: Forecast, path: Path, top: int = 6) -> None:
    """Bytes per day by policy (stacked by the policy's top rules). Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    names = [Path(p.name).stem if p.name.endswith((".yaml", ".yml", ".json")) else p.name for p in f.policies]
    gib = 1024.0**3
    left.bar(names, [p.bytes_per_day / gib for p in f.policies], color="#4c72b0")
    left.set_ylabel("GiB per day (cluster)")
    left.set_title("predicted audit log volume by policy")
    for i, p in enumerate(f.policies):
        left.annotate(human_hours(p.history.hours) + " kept per master", (i, p.bytes_per_day / gib), ha="center",
                      va="bottom", fontsize=8)
    bottoms = [0.0] * len(f.policies)
    for i, p in enumerate(f.policies):
        scale = p.bytes_per_day / p.bytes if p.bytes else 0.0
        for rule, b in _top(p.by_rule, top):
            height = b.bytes * scale / gib
            right.bar(i, height, bottom=bottoms[i])
            if height > 0:
                right.annotate("none" if rule is None else f"rule {rule}", (i, bottoms[i] + height / 2),
                               ha="center", va="center", fontsize=7)
            bottoms[i] += height
    right.set_xticks(range(len(names)), names)
    right.set_ylabel("GiB per day (cluster)")
    right.set_title(f"by rule (top {top} per policy)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

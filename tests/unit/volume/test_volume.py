"""`volume`: predictions checked against an independent writer (tests/unit/volume/sample.py)."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.cli import main
from components.policy import Policy, load_policy
from components.policy.evaluator import compile_policy
from components.volume import Rotation, forecast, history
from components.volume.cli import load_policy_arg
from components.volume.reader import ReadStats, parse_line, read_events

from ..policy.strategies import policy_texts, valid
from .sample import events_for, random_calls, write_under

PROFILES = ["dce-default", "metadata-only", "security"]
CALLS = list(random_calls(600, seed=7))
LOG_EVERYTHING = write_under(CALLS, None)


def predict(policy: Policy, text: str, tmp: Path, name: str = "sample.log") -> dict:
    path = tmp / name
    path.write_text(text)
    f = forecast([("p", policy)], [path], Rotation())
    p = f.policies[0]
    return {"events": p.events, "bytes": p.bytes, "estimated": p.estimated_bytes, "lower": p.lower_in_sample,
            "requests": p.requests, "byLevel": p.by_level, "forecast": f}


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_predicted_exactly_from_a_log_everything_sample(profile: str, tmp_path: Path) -> None:
    policy = load_policy_arg(profile)
    truth = write_under(CALLS, policy)
    got = predict(policy, LOG_EVERYTHING, tmp_path)
    assert (got["events"], got["bytes"]) == (truth.count("\n"), len(truth.encode()))
    assert got["estimated"] == 0 and got["lower"] == 0
    assert got["requests"] == len(CALLS) == sum(got["byLevel"].values())


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.function_scoped_fixture])


@SETTINGS
@given(policy_texts(), st.integers(0, 2**16))
def test_any_policy_predicted_exactly(text: str, seed: int) -> None:
    policy = valid(text)
    calls = list(random_calls(80, seed=seed))
    truth = write_under(calls, policy)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        got = predict(policy, write_under(calls, None), Path(tmp))
    assert (got["events"], got["bytes"]) == (truth.count("\n"), len(truth.encode()))


def test_the_sample_under_its_own_policy_predicts_itself(tmp_path: Path) -> None:
    # What a policy wrote is exactly what it is predicted to write from its own log: nothing estimated.
    for profile in PROFILES:
        policy = load_policy_arg(profile)
        own = write_under(CALLS, policy)
        got = predict(policy, own, tmp_path)
        assert (got["events"], got["bytes"], got["estimated"]) == (own.count("\n"), len(own.encode()), 0)


def test_a_sample_below_the_asked_level_is_estimated_and_says_so(tmp_path: Path) -> None:
    meta_only = load_policy_arg("metadata-only")
    everything = load_policy("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n", "all")
    sample = write_under(CALLS, meta_only) + LOG_EVERYTHING[:0]
    got = predict(everything, sample, tmp_path)
    recorded = [c for c in CALLS if compile_policy(load_policy_arg("metadata-only")).evaluate(c.request).level != "None"]
    truth = "".join("".join(events_for(c, "RequestResponse")) for c in recorded)
    assert got["lower"] == len(recorded)
    # RequestReceived was omitted by the sample's policy: those stages are synthesised (estimated) ...
    assert got["events"] == truth.count("\n")
    assert got["forecast"].synthesised_stages["RequestReceived"] == len(recorded)
    assert got["estimated"] > 0
    # ... and the bodies are estimated from the sample's own bodies: here there are none at all,
    # so a default size is used and counted.
    assert got["forecast"].defaulted_bodies > 0


def test_bodies_estimated_from_the_samples_other_bodies(tmp_path: Path) -> None:
    # Half the requests logged with bodies, half without: the missing ones take the average of the
    # same resource and verb, so the estimate lands close to the truth.
    full = [c for i, c in enumerate(CALLS) if i % 2 == 0]
    thin = [c for i, c in enumerate(CALLS) if i % 2 == 1]
    sample = "".join("".join(events_for(c, "RequestResponse")) for c in full)
    sample += "".join("".join(events_for(c, "Metadata")) for c in thin)
    everything = load_policy("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n", "all")
    got = predict(everything, sample, tmp_path)
    truth = LOG_EVERYTHING
    assert got["events"] == truth.count("\n")
    assert got["lower"] == len(thin)
    assert abs(got["bytes"] - len(truth.encode())) / len(truth.encode()) < 0.15
    assert got["forecast"].defaulted_bodies == 0


def test_field_order_fallback_gives_the_same_sizes() -> None:
    line = next(ln for ln in LOG_EVERYTHING.splitlines(keepends=True) if '"responseObject"' in ln)
    doc = json.loads(line)
    reordered = {k: v for k, v in doc.items() if k not in ("requestObject", "responseObject")}
    reordered.update({k: doc[k] for k in ("requestObject", "responseObject") if k in doc})
    other = json.dumps(reordered, separators=(",", ":"), ensure_ascii=False) + "\n"
    a, b = parse_line(line.encode()), parse_line(other.encode())
    assert len(other) == len(line)
    assert (a.meta_bytes, a.request_bytes, a.response_bytes, a.response_managed) == (
        b.meta_bytes, b.request_bytes, b.response_bytes, b.response_managed)
    assert a.meta_bytes + a.request_bytes + a.response_bytes == len(line.encode())


def test_gzip_rotated_files_and_bad_lines(tmp_path: Path) -> None:
    lines = LOG_EVERYTHING.splitlines(keepends=True)
    half = len(lines) // 2
    rotated = tmp_path / "kube-apiserver-audit-2026-11-27T12-00-00.000.log.gz"
    rotated.write_bytes(gzip.compress("".join(lines[:half]).encode()))
    current = tmp_path / "kube-apiserver-audit.log"
    current.write_text("not json\n" + "".join(lines[half:]) + '{"kind":"Other"}\n{"truncated": \n')
    stats = ReadStats()
    events = list(read_events([rotated, current], stats))
    assert len(events) == len(lines) and stats.bad == 3
    assert [b.line for b in stats.bad_examples or []] == [1, len(lines) - half + 2, len(lines) - half + 3]


def test_truncated_gzip_is_counted_not_fatal(tmp_path: Path) -> None:
    data = gzip.compress(LOG_EVERYTHING.encode())
    broken = tmp_path / "a.log.gz"
    broken.write_bytes(data[: len(data) // 2])
    stats = ReadStats()
    events = list(read_events([broken], stats))
    assert 0 < len(events) < LOG_EVERYTHING.count("\n") and stats.bad == 1


def test_span_scales_to_a_day(tmp_path: Path) -> None:
    got = predict(load_policy_arg("metadata-only"), LOG_EVERYTHING, tmp_path)
    f = got["forecast"]
    first, last = CALLS[0].received, max(c.received for c in CALLS)
    assert f.span_seconds >= (last - first).total_seconds()
    p = f.policies[0]
    assert p.bytes_per_day == pytest.approx(p.bytes * 86400 / f.span_seconds)


# -- rotation ---------------------------------------------------------------------------------


def test_history_of_the_seed_defaults() -> None:
    # 2.1 GB a day on a master with 100 MB x 1 backup: one rotated file, about 1.15 hours.
    h = history(2.1e9, Rotation(100, 1, 30))
    assert h.hours == pytest.approx(100 * 1024 * 1024 / (2.1e9 / 24))
    assert h.hours_max == pytest.approx(2 * h.hours) and h.limited_by == "maxBackup"
    assert h.disk_bytes == 2 * 100 * 1024 * 1024


def test_history_limited_by_age_unbounded_and_defaults() -> None:
    assert history(1e6, Rotation(100, 10, 1)).hours == 24 and history(1e6, Rotation(100, 10, 1)).limited_by == "maxAge"
    assert history(1e9, Rotation(100, 0, 2)).hours == 48  # maxBackup 0: all files, maxAge decides
    assert history(1e9, Rotation(100, 0, 0)).hours is None  # nothing bounds it (pre-1.36 defaults)
    assert history(1e9, Rotation(0, 1, 30)).hours == history(1e9, Rotation(100, 1, 30)).hours  # lumberjack 100
    compressed = history(2e9, Rotation(100, 5, 30, compress=True), compress_ratio=0.1)
    assert compressed.disk_bytes == 100 * 1024 * 1024 + int(5 * 100 * 1024 * 1024 * 0.1)


# -- command line -----------------------------------------------------------------------------


def test_cli_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = tmp_path / "s.log"
    sample.write_text(LOG_EVERYTHING)
    assert main(["volume", *PROFILES, "--sample", str(sample), "--json", "--max-size", "50", "--masters", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["policy"] for p in doc["policies"]] == PROFILES
    for p in doc["policies"]:
        assert {"policy", "requests", "byLevel", "eventsPerDay", "bytesPerDay", "historyHours"} <= set(p)
        assert p["requests"] == len(CALLS) and set(p["byLevel"]) == {"None", "Metadata", "Request", "RequestResponse"}
        assert p["bytesPerDayPerMaster"] == pytest.approx(p["bytesPerDay"] / 3, abs=1)
    assert doc["rotation"]["maxSize"] == 50 and doc["sample"]["badLines"] == 0


def test_cli_table_plot_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sample = tmp_path / "s.log"
    sample.write_text(LOG_EVERYTHING + "garbage\n")
    png = tmp_path / "v.png"
    assert main(["volume", "dce-default", "--sample", str(sample), "--plot", str(png)]) == 0
    out, err = capsys.readouterr()
    assert "dce-default" in out and "HISTORY" in out and "1 bad line(s)" in err
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["volume", "no-such-profile", "--sample", str(sample)]) == 2
    assert "available profiles" in capsys.readouterr().err
    assert main(["volume", "dce-default", "--sample", str(tmp_path / "missing.log")]) == 2
    assert "missing.log: no such sample file" in capsys.readouterr().err
    bad_policy = tmp_path / "bad.yaml"
    bad_policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n")
    assert main(["volume", str(bad_policy), "--sample", str(sample)]) == 2
    assert "bad.yaml:4:" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["volume", "dce-default", "--sample", str(sample), "--plot", str(png)]) == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_cli_takes_rotation_and_masters_from_the_stack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = tmp_path / "s.log"
    sample.write_text(LOG_EVERYTHING)
    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_text("config:\n  kube-audit:masters:\n    - {name: m1, host: h1}\n    - {name: m2, host: h2}\n"
                     "  kube-audit:log:\n    maxSize: 10\n    maxBackup: 3\n    compress: true\n"
                     "  kube-audit:sshPrivateKey:\n    secure: v1:abc\n")
    assert main(["volume", "metadata-only", "--sample", str(sample), "--json", "--stack-config", str(stack)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["masters"] == 2
    assert doc["rotation"] | {"compressRatio": 0} == {"maxSize": 10, "maxBackup": 3, "maxAge": 30, "compress": True,
                                                       "compressRatio": 0}
    assert 0 < doc["rotation"]["compressRatio"] < 0.5  # JSON audit events compress well
    assert main(["volume", "metadata-only", "--sample", str(sample), "--json", "--stack-config", str(stack),
                 "--max-backup", "7", "--masters", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["masters"], doc["rotation"]["maxBackup"], doc["rotation"]["maxSize"]) == (1, 7, 10)
    stack.write_text('config:\n  kube-audit:log:\n    maxAge: "30"\n')
    assert main(["volume", "metadata-only", "--sample", str(sample), "--stack-config", str(stack)]) == 2
    assert "kube-audit:log.maxAge" in capsys.readouterr().err


def test_coverage_of_writes_and_secrets(tmp_path: Path) -> None:
    policy = load_policy("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n"
                         "- level: None\n  resources: [{group: '', resources: [secrets]}]\n"
                         "- level: Metadata\n  verbs: [create, update, patch, delete, deletecollection]\n", "p")
    f = predict(policy, LOG_EVERYTHING, tmp_path)["forecast"].policies[0]
    writes = [c for c in CALLS if c.request.resource_request and c.request.verb in ("create", "update", "patch", "delete")]
    secrets = [c for c in CALLS if c.request.resource == "secrets"]
    unrecorded_writes = [c for c in writes if c.request.resource == "secrets"]
    assert f.writes == (len(writes), len(writes) - len(unrecorded_writes))
    assert f.secrets == (len(secrets), 0)

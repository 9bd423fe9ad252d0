"""`volume` never tracebacks on bad input (issue 22): a bad line is counted naming file, line and key;
a bad flag, stack file or --plot target exits 2 naming it, before any sample is read."""

from __future__ import annotations

import gzip
import json
import re
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.cli import main
from components.volume import Rotation, forecast, reader
from components.volume.cli import load_policy_arg
from components.volume.reader import ReadStats, parse_line, read_events
from components.volume.replay import Replay

from .sample import random_calls, write_under

DCE_DEFAULT = load_policy_arg("dce-default")
LINES = write_under(list(random_calls(40, seed=3)), None).splitlines(keepends=True)
PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def event(**changes: Any) -> dict[str, Any]:
    """The first sample event (with a user in groups), with `changes` applied; None deletes a key."""
    doc: dict[str, Any] = json.loads(next(line for line in LINES if '"groups"' in line))
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["volume", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def sample(tmp_path: Path, *docs: dict[str, Any] | str, name: str = "s.log") -> Path:
    path = tmp_path / name
    path.write_text("".join(LINES) + "".join(d if isinstance(d, str) else json.dumps(d) + "\n" for d in docs))
    return path


# --- bad lines: counted, named, never raised -----------------------------------------------------------


@pytest.mark.parametrize(("changes", "why"), [
    ({"user": {"username": "u", "groups": [{"name": "devs"}]}}, "user.groups: expected a list of strings"),
    ({"user": {"username": "u", "groups": {"devs": True}}}, "user.groups: expected a list of strings"),
    ({"user": ["u"]}, "user: expected an object"),
    ({"user": {"username": {"first": "u"}}}, "user.username: expected a string"),
    ({"objectRef": "pods"}, "objectRef: expected an object"),
    ({"objectRef": {"resource": ["pods"]}}, "objectRef.resource: expected a string"),
    ({"verb": None, "requestURI": {"path": "/x"}}, "requestURI: expected a string"),
    ({"requestReceivedTimestamp": "2026-11-27T12:00:00.000000"}, "requestReceivedTimestamp: .* has no time zone"),
    ({"stageTimestamp": "yesterday"}, "stageTimestamp: 'yesterday' is not an RFC 3339 timestamp"),
    ({"stageTimestamp": 1764244800}, "stageTimestamp: expected an RFC 3339 timestamp"),
])
def test_a_line_of_the_wrong_shape_is_a_bad_line_naming_the_key(tmp_path: Path, changes: dict[str, Any], why: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = sample(tmp_path, event(**changes))
    code, out, err = run(capsys, "dce-default", "--sample", str(path))
    assert code == 0 and "1 bad line(s) skipped" in err
    assert re.search(rf"{path}:{len(LINES) + 1}: {why}", out), out


def test_mixed_zoned_and_unzoned_timestamps_do_not_break_the_span(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    unzoned = event(requestReceivedTimestamp="2020-01-01T00:00:00.000000", stageTimestamp="2020-01-01T00:00:01")
    code, out, _ = run(capsys, "metadata-only", "--sample", str(sample(tmp_path, unzoned)), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["sample"]["badLines"] == 1 and "has no time zone" in doc["sample"]["badExamples"][0]
    assert 0 < doc["sample"]["spanSeconds"] < 3600, "the span comes from the zoned events alone"


def test_timestamps_in_other_zones_are_compared_as_instants(tmp_path: Path) -> None:
    stats = ReadStats()
    early = event(auditID="a", requestReceivedTimestamp="2026-01-01T10:00:00+02:00",
                  stageTimestamp="2026-01-01T08:00:01Z")
    late = event(auditID="b", requestReceivedTimestamp="2026-01-01T08:00:30Z",
                 stageTimestamp="2026-01-01T09:01:00+01:00")
    path = tmp_path / "zones.log"
    path.write_text(json.dumps(early) + "\n" + json.dumps(late) + "\n")
    assert len(list(read_events([path], stats))) == 2
    assert stats.last_stamp is not None and stats.first_received is not None
    assert stats.last_stamp - stats.first_received == 60.0


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)
KEYS = ["user", "objectRef", "verb", "requestURI", "level", "stage", "auditID", "userAgent", "requestObject",
        "responseObject", "responseStatus", "annotations", "requestReceivedTimestamp", "stageTimestamp"]


@PROPERTY
@given(st.dictionaries(st.sampled_from(KEYS), JSON, max_size=4),
       st.dictionaries(st.sampled_from(["username", "groups"]), JSON, max_size=2),
       st.dictionaries(st.sampled_from(["apiGroup", "resource", "subresource", "namespace", "name"]), JSON, max_size=3))
def test_any_json_in_an_events_fields_is_an_event_or_a_value_error_and_replays(
        top: dict[str, Any], user: dict[str, Any], ref: dict[str, Any]) -> None:
    doc = event(**top)
    if isinstance(doc.get("user"), dict):
        doc["user"] = {**doc["user"], **user}
    if isinstance(doc.get("objectRef"), dict):
        doc["objectRef"] = {**doc["objectRef"], **ref}
    line = (json.dumps(doc) + "\n").encode()
    try:
        ev = parse_line(line)
    except ValueError:
        return
    replay = Replay([("dce-default", DCE_DEFAULT)])
    replay.feed(ev)  # whatever parse_line lets through, the policy evaluator and the pricing take
    replay.finish()


# --- line length: memory stays bounded ---------------------------------------------------------------


@pytest.mark.parametrize("after", [b"", b"\n" + "".join(LINES[3:6]).encode()], ids=["at-the-end", "then-more-lines"])
def test_a_gzip_bomb_without_a_newline_is_skipped_in_bounded_memory(tmp_path: Path, after: bytes,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 1 << 20, raising=False)
    bomb = tmp_path / "bomb.log.gz"
    bomb.write_bytes(gzip.compress("".join(LINES[:3]).encode() + b"{" + b" " * (64 << 20) + after))
    stats = ReadStats()
    tracemalloc.start()
    try:
        events = list(read_events([bomb], stats))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(events) == (6 if after else 3) and stats.bad == 1
    assert stats.bad_examples and stats.bad_examples[0].line == 4
    assert "line longer than 1048576 bytes" in stats.bad_examples[0].reason
    assert peak < 16 << 20, f"peak {peak} bytes: the long line was held whole"


def test_the_line_cap_is_a_real_default() -> None:
    assert reader.MAX_LINE_BYTES == 32 << 20


# --- flags, stack files, --plot: exit 2 before reading ---------------------------------------------------


@pytest.mark.parametrize(("flags", "message"), [
    (["--span-seconds", "nan"], "--span-seconds must be a positive number of seconds, got nan"),
    (["--span-seconds", "inf"], "--span-seconds must be a positive number of seconds, got inf"),
    (["--span-seconds", "-5"], "--span-seconds must be a positive number"),
    (["--max-age", str(10**20)], "--max-age must be from 0 to 106751"),
    (["--max-size", "-1"], "--max-size must be from 0 to 8796093022207"),
    (["--masters", "0"], "--masters must be at least 1"),
    (["--top", "-3"], "--top must not be negative"),
])
def test_bad_numeric_flags_exit_2_naming_the_flag(tmp_path: Path, flags: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "metadata-only", "--sample", str(sample(tmp_path)), *flags)
    assert code == 2 and message in err


def test_plot_into_a_missing_dir_exits_2_before_the_sample_is_read(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no-such-dir" / "v.png"
    code, out, err = run(capsys, "metadata-only", "--sample", str(sample(tmp_path)), "--plot", str(target))
    assert code == 2 and f"--plot {target}: the directory {target.parent} does not exist" in err and out == ""


def test_plot_in_a_format_matplotlib_lacks_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "metadata-only", "--sample", str(sample(tmp_path)), "--plot", str(tmp_path / "v.xyz"))
    assert code == 2 and f"{tmp_path / 'v.xyz'}: cannot write the plot" in err


@pytest.mark.parametrize(("content", "message"), [
    (b"config:\n  kube-audit:log: {maxAge: \xff}\n", "not UTF-8 text (byte 35)"),
    (b"config: " + b"[" * 5000 + b"]" * 5000 + b"\n", "not a readable stack file"),
    (b"config:\n  kube-audit:log: {maxAge: 100000000000000000000}\n", "kube-audit:log.maxAge: Input should be less"),
    (b"#" * ((1 << 20) + 1), "over 1048576 bytes"),
])
def test_a_bad_stack_file_exits_2_naming_it(tmp_path: Path, content: bytes, message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_bytes(content)
    code, _, err = run(capsys, "metadata-only", "--sample", str(sample(tmp_path)), "--stack-config", str(stack))
    assert code == 2 and f"{stack}: " in err and message in err


def test_a_corrupt_gzip_with_compress_is_counted_not_a_traceback(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = gzip.compress("".join(LINES).encode())
    broken = tmp_path / "a.log.gz"
    broken.write_bytes(data[: len(data) // 2])
    code, out, _ = run(capsys, "metadata-only", "--sample", str(broken), "--compress", "--json")
    assert code == 0 and json.loads(out)["sample"]["badLines"] == 1


def test_forecast_of_an_empty_sample_is_zero_not_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("")
    result = forecast([("p", load_policy_arg("metadata-only"))], [empty], Rotation())
    assert result.span_seconds == 0 and result.policies[0].bytes_per_day == 0

"""Stream audit events (``audit.k8s.io/v1`` Event, JSON lines) from plain or gzip-rotated files.

The apiserver's JSON encoder writes an Event's fields in struct order, so the request and response
bodies sit between ``responseStatus`` and ``requestReceivedTimestamp``. We cut them out by byte
offset and parse only the small rest: a 1 GB sample costs the time of parsing its metadata, never
its bodies, and memory stays one line at a time. A line in another order falls back to a full parse.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

_REQ = b',"requestObject":'
_RESP = b',"responseObject":'
_TS = b',"requestReceivedTimestamp":'
_MANAGED = b'"managedFields"'
# The longest line read as an event. etcd stores objects of at most 1.5 MiB, so only list responses
# logged at RequestResponse come near this; a longer line is skipped and counted, so memory stays
# bounded whatever the file holds (a gzip bomb without a newline would otherwise fill it).
MAX_LINE_BYTES = 32 << 20
_CHUNK = 1 << 20


class SampleError(OSError):
    """A sample file cannot be read at all (missing, unreadable, not gzip)."""


@dataclass(slots=True)
class SampleEvent:
    """One event's request attributes and byte sizes (line bytes, newline included)."""

    audit_id: str
    stage: str
    level: str
    verb: str
    user: str
    groups: tuple[str, ...]
    api_group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    path: str
    resource_request: bool
    user_agent: str
    received: float | None  # seconds since the epoch (None: the event has no such timestamp)
    stamp: float | None
    meta_bytes: int  # the line without its bodies
    request_bytes: int  # ',"requestObject":{...}' (0: absent)
    response_bytes: int
    request_managed: int  # bytes of managedFields inside the request body (what omitManagedFields drops)
    response_managed: int
    status_bytes: int  # ',"responseStatus":{...}' (absent at RequestReceived)
    annotation_bytes: int  # ',"annotations":{...}'


def _dumped(value: Any) -> int:
    """Bytes of Go's compact JSON for ``value`` (close enough: Go also escapes <, >, & in strings)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _managed_bytes(obj: Any) -> int:
    """Bytes omitManagedFields removes: metadata.managedFields of the object and of each list item."""
    if not isinstance(obj, dict):
        return 0
    total = 0
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        total += len(b'"managedFields":') + _dumped(meta["managedFields"]) + 1  # + the comma
    items = obj.get("items")
    if isinstance(items, list):
        total += sum(_managed_bytes(item) for item in items)
    return total


def _segment_managed(segment: bytes, key: bytes) -> int:
    if _MANAGED not in segment:
        return 0
    return _managed_bytes(json.loads(segment[len(key):]))


def _key_bytes(doc: dict[str, Any], key: str) -> int:
    return len(key) + 4 + _dumped(doc[key]) if key in doc else 0  # ,"key": + value


def _timestamp(doc: dict[str, Any], key: str) -> float | None:
    """An RFC 3339 timestamp with its zone (as metav1.MicroTime writes it), as epoch seconds."""
    value = doc.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected an RFC 3339 timestamp, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{key}: {value[:40]!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        # The apiserver always writes the zone; without it the instant is a guess, and comparing
        # it with zoned ones is meaningless.
        raise ValueError(f"{key}: {value[:40]!r} has no time zone (the apiserver writes e.g. ...Z)")
    return moment.timestamp()


def _mapping(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key}: expected an object, got {type(value).__name__}")
    return value


def _text(doc: dict[str, Any], key: str, where: str = "") -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"{where}{key}: expected a string, got {type(value).__name__}")
    return str(value)


def _groups(user: dict[str, Any]) -> tuple[str, ...]:
    groups = user.get("groups")
    if groups is None:
        return ()
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ValueError("user.groups: expected a list of strings")
    return tuple(groups)


def parse_line(raw: bytes) -> SampleEvent:
    """One JSON line -> SampleEvent. Raises ValueError (bad JSON, not an Event)."""
    line = raw.rstrip(b"\r\n")
    size = len(line) + 1  # the apiserver ends every event with "\n"
    i_req = line.find(_REQ)
    i_resp = line.find(_RESP, max(i_req, 0))
    i_ts = line.rfind(_TS)
    first = i_req if i_req >= 0 else i_resp
    if first >= 0 and i_ts > first:
        req_seg = line[i_req:(i_resp if i_resp >= 0 else i_ts)] if i_req >= 0 else b""
        resp_seg = line[i_resp:i_ts] if i_resp >= 0 else b""
        doc = json.loads(line[:first] + line[i_ts:])
        if not isinstance(doc, dict) or "requestObject" in doc or "responseObject" in doc:
            raise ValueError("unexpected field order")
        req_b, resp_b = len(req_seg), len(resp_seg)
        req_mf, resp_mf = _segment_managed(req_seg, _REQ), _segment_managed(resp_seg, _RESP)
    else:
        doc = json.loads(line)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        req_b, resp_b = _key_bytes(doc, "requestObject"), _key_bytes(doc, "responseObject")
        req_mf, resp_mf = _managed_bytes(doc.get("requestObject")), _managed_bytes(doc.get("responseObject"))
    if doc.get("kind") != "Event" or "auditID" not in doc or "stage" not in doc:
        raise ValueError("not an audit.k8s.io Event (kind, auditID, stage)")
    # Every field the replay uses is type-checked here, so a line of the wrong shape is a counted
    # bad line naming the key, never an exception deeper in the replay.
    user = _mapping(doc, "user")
    ref = _mapping(doc, "objectRef") if doc.get("objectRef") is not None else None
    obj = ref or {}
    return SampleEvent(
        audit_id=_text(doc, "auditID"),
        stage=_text(doc, "stage"),
        level=_text(doc, "level"),
        verb=_text(doc, "verb"),
        user=_text(user, "username", "user."),
        groups=_groups(user),
        api_group=_text(obj, "apiGroup", "objectRef."),
        resource=_text(obj, "resource", "objectRef."),
        subresource=_text(obj, "subresource", "objectRef."),
        namespace=_text(obj, "namespace", "objectRef."),
        name=_text(obj, "name", "objectRef."),
        path=_text(doc, "requestURI").split("?", 1)[0],
        resource_request=ref is not None,
        user_agent=_text(doc, "userAgent"),
        received=_timestamp(doc, "requestReceivedTimestamp"),
        stamp=_timestamp(doc, "stageTimestamp"),
        meta_bytes=size - req_b - resp_b,
        request_bytes=req_b,
        response_bytes=resp_b,
        request_managed=req_mf,
        response_managed=resp_mf,
        status_bytes=_key_bytes(doc, "responseStatus"),
        annotation_bytes=_key_bytes(doc, "annotations"),
    )


def open_sample(path: Path) -> IO[bytes]:
    """Open a sample file, gunzipping when it starts with the gzip magic (rotated, compressed)."""
    try:
        fh: IO[bytes] = open(path, "rb")  # noqa: SIM115 - returned to the caller
        magic = fh.read(2)
        fh.seek(0)
    except OSError as err:
        raise SampleError(f"{path}: cannot read sample: {err.strerror or err}") from None
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    return fh


@dataclass
class BadLine:
    """A line that is not an audit event: file, 1-based line number, why."""

    path: str
    line: int
    reason: str


@dataclass
class ReadStats:
    """What the reader saw: events, bad lines (first few kept), bytes read, time span."""

    events: int = 0
    bad: int = 0
    bytes_read: int = 0
    first_received: float | None = None  # epoch seconds
    last_stamp: float | None = None
    bad_examples: list[BadLine] | None = None

    def note_bad(self, path: str, number: int, reason: str, keep: int = 5) -> None:
        self.bad += 1
        if self.bad_examples is None:
            self.bad_examples = []
        if len(self.bad_examples) < keep:
            self.bad_examples.append(BadLine(path, number, reason[:200]))


def _lines(fh: IO[bytes], path: str, stats: ReadStats) -> Iterator[bytes]:
    """The file's lines, each at most MAX_LINE_BYTES; a longer one is yielded as b"" after it is
    counted (so line numbers stay right). A truncated or corrupt gzip stream ends the file (counted)."""
    number = 0
    try:
        while True:
            line = fh.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            number += 1
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                skipped = len(line)
                while line and not line.endswith(b"\n"):  # drop the rest, a chunk at a time
                    line = fh.readline(_CHUNK)
                    skipped += len(line)
                stats.bytes_read += skipped
                stats.note_bad(path, number, f"line longer than {MAX_LINE_BYTES} bytes ({skipped}); skipped")
                yield b""
                continue
            yield line
    except (OSError, EOFError) as err:
        stats.note_bad(path, number + 1, f"unreadable from here on: {err}")


def read_events(
    paths: list[Path], stats: ReadStats, progress: Callable[[int], None] | None = None
) -> Iterator[SampleEvent]:
    """Every event of every file in order; bad lines are counted in ``stats``, never raised."""
    for path in paths:
        with open_sample(path) as fh:
            for number, raw in enumerate(_lines(fh, str(path), stats), 1):
                stats.bytes_read += len(raw)
                if progress is not None and number % 20000 == 0:
                    progress(stats.bytes_read)
                if not raw.strip():
                    continue
                try:
                    event = parse_line(raw)
                except (ValueError, TypeError, AttributeError) as err:
                    stats.note_bad(str(path), number, str(err) or type(err).__name__)
                    continue
                stats.events += 1
                if event.received is not None and (stats.first_received is None
                                                   or event.received < stats.first_received):
                    stats.first_received = event.received
                if event.stamp is not None and (stats.last_stamp is None or event.stamp > stats.last_stamp):
                    stats.last_stamp = event.stamp
                yield event

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
from pathlib import Path
from typing import IO, Any

_REQ = b',"requestObject":'
_RESP = b',"responseObject":'
_TS = b',"requestReceivedTimestamp":'
_MANAGED = b'"managedFields"'


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
    received: str
    stamp: str
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
    user = doc.get("user") or {}
    ref = doc.get("objectRef")
    uri = str(doc.get("requestURI") or "")
    return SampleEvent(
        audit_id=str(doc["auditID"]),
        stage=str(doc["stage"]),
        level=str(doc.get("level") or ""),
        verb=str(doc.get("verb") or ""),
        user=str(user.get("username") or ""),
        groups=tuple(user.get("groups") or ()),
        api_group=str((ref or {}).get("apiGroup") or ""),
        resource=str((ref or {}).get("resource") or ""),
        subresource=str((ref or {}).get("subresource") or ""),
        namespace=str((ref or {}).get("namespace") or ""),
        name=str((ref or {}).get("name") or ""),
        path=uri.split("?", 1)[0],
        resource_request=ref is not None,
        user_agent=str(doc.get("userAgent") or ""),
        received=str(doc.get("requestReceivedTimestamp") or ""),
        stamp=str(doc.get("stageTimestamp") or ""),
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
    first_received: str = ""
    last_stamp: str = ""
    bad_examples: list[BadLine] | None = None

    def note_bad(self, path: str, number: int, reason: str, keep: int = 5) -> None:
        self.bad += 1
        if self.bad_examples is None:
            self.bad_examples = []
        if len(self.bad_examples) < keep:
            self.bad_examples.append(BadLine(path, number, reason[:200]))


def _lines(fh: IO[bytes], path: str, stats: ReadStats) -> Iterator[bytes]:
    """The file's lines; a truncated or corrupt gzip stream ends the file (counted), not the run."""
    it = iter(fh)
    while True:
        try:
            yield next(it)
        except StopIteration:
            return
        except (OSError, EOFError) as err:
            stats.note_bad(path, 0, f"unreadable from here on: {err}")
            return


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
                # RFC 3339 with fixed microseconds (metav1.MicroTime) sorts as text.
                if event.received and (not stats.first_received or event.received < stats.first_received):
                    stats.first_received = event.received
                if event.stamp > stats.last_stamp:
                    stats.last_stamp = event.stamp
                yield event

"""The manifests dir as the kubelet's file source reads it: which files, and which pod each declares.

What the kubelet does (pkg/kubelet/config/file.go, common.go; apimachinery util/yaml; go-yaml v2):
- it reads every entry matching `[^.]*`, in sorted order, following symlinks (os.Stat); directories
  are not read (no recursion), nor anything but a regular file, nor a file over 10 MiB;
- a file whose first non-space byte is `{` is JSON (Go's decoder: a repeated key's object is merged
  into the first, a repeated scalar replaces it); anything else is YAML through go-yaml v2: UTF-16
  with a byte-order mark is decoded, only the first document counts, a repeated key keeps its last
  value, `<<` merges, aliases resolve, control characters stop it, and nesting up to 10000 levels
  is fine;
- the pod store is keyed by namespace (default "default") and name: two files with one key run one
  of them, and a re-list may pick the other.
So a second file declaring our pod (a `.bak` copy, a hard link, which keeps the old bytes when the
manifest is replaced, or a symlink) makes our change flap or vanish. Our reading of a file mirrors the
kubelet's without recursion; where it cannot be sure (the YAML does not parse here, an explicit tag
on the name, nesting past MAX_DEPTH), the file is reported as doubtful, never skipped: the caller
refuses rather than guess. Pure standard library plus ruamel.yaml.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from components.manifest.yamlrt import go_resolve, json_prefixed

MAX_BYTES = 10 * 1024 * 1024
# The kubelet reads nesting up to 10000 deep; the pure-Python parser slows quadratically long before
# (3000 levels take a minute), so deeper files are refused as unreadable here rather than skipped.
MAX_DEPTH = 256
# go-yaml's reader stops at any other character ("control characters are not allowed").
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_DOCUMENT_MARK = re.compile(r"^(---|\.\.\.)(\s|$)", re.MULTILINE)
_STR_TAGS = ("tag:yaml.org,2002:str", "!!str")


class DoubtfulError(ValueError):
    """Our reading of a file may differ from the kubelet's; the message says why."""


class _Unsure:
    """A scalar with an explicit tag other than !!str: go-yaml may read it otherwise than we would."""

    def __init__(self, text: str) -> None:
        self.text = text


def _json_merge(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = {**out[key], **value}  # Go decodes a repeated object into the struct it filled
        else:
            out[key] = value
    return out


def _text(data: bytes) -> str | None:
    """The text go-yaml reads, or None where it refuses the bytes (then the kubelet skips the file)."""
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"), (b"\xef\xbb\xbf", "utf-8")):
        if data.startswith(bom):
            data, encoding = data[len(bom):], codec
            break
    else:
        encoding = "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _scalar(event: ScalarEvent) -> Any:
    if event.tag is not None and event.tag not in _STR_TAGS:
        return _Unsure(event.value)
    if event.tag is not None or event.style is not None:
        return event.value
    return go_resolve(event.value)


def _first_document(text: str) -> Any:
    """go-yaml v2's value of the first document, built from parser events with an explicit stack:
    no recursion, and a bounded depth (MAX_DEPTH) past which the file is refused, not skipped."""
    anchors: dict[str, Any] = {}
    stack: list[list[Any]] = []  # [container, pending key or _NO_KEY]
    done: list[Any] = []

    def put(value: Any) -> None:
        if not stack:
            done.append(value)
            return
        frame = stack[-1]
        if isinstance(frame[0], list):
            frame[0].append(value)
        elif frame[1] is _NO_KEY:
            frame[1] = value
        else:
            key, frame[1] = frame[1], _NO_KEY
            if key is _MERGE:
                _merge(frame[0], value)
            else:
                frame[0][key if isinstance(key, str) else _key_text(key)] = value

    for event in YAML(typ="rt", pure=True).parse(text):
        if isinstance(event, DocumentEndEvent):
            break
        if isinstance(event, ScalarEvent):
            is_key = bool(stack) and isinstance(stack[-1][0], dict) and stack[-1][1] is _NO_KEY
            value = _MERGE if is_key and event.value == "<<" and event.style is None and event.tag is None \
                else _scalar(event)
            if event.anchor:
                anchors[event.anchor] = value
            put(value)
        elif isinstance(event, AliasEvent):
            if event.anchor not in anchors:
                raise DoubtfulError(f"alias *{event.anchor} names no anchor before it")
            put(anchors[event.anchor])
        elif isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            if len(stack) >= MAX_DEPTH:
                raise DoubtfulError(f"nested deeper than {MAX_DEPTH} levels, which kube-audit does not read")
            # A tag on a collection does not change what go-yaml builds for an interface{}.
            container: Any = {} if isinstance(event, MappingStartEvent) else []
            if event.anchor:
                anchors[event.anchor] = container
            stack.append([container, _NO_KEY])
        elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            put(stack.pop()[0])
        if done:
            return done[0]
    return None


class _Marker:
    pass


_NO_KEY = _Marker()
_MERGE = _Marker()


def _key_text(key: Any) -> Any:
    # sigs.k8s.io/yaml writes a non-string key as its text; a collection key cannot be a field name.
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (int, float)) or key is None:
        return "null" if key is None else str(key)
    return _Marker()


def _merge(into: dict[Any, Any], value: Any) -> None:
    """go-yaml's `<<`: a mapping's keys are set over what is there; in a list, earlier ones win."""
    if isinstance(value, dict):
        into.update(value)
    elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
        for item in reversed(value):
            into.update(item)
    else:
        raise DoubtfulError("a `<<` merge of something other than a mapping")


def declared_pod(data: bytes) -> tuple[str, str] | None:
    """(namespace, name) of the pod the kubelet would read from these bytes; None if it reads none.

    Raises DoubtfulError when our reading may differ from the kubelet's.
    """
    if len(data) > MAX_BYTES:
        return None  # the kubelet stops at 10 MiB and skips the file
    if json_prefixed(data.decode("utf-8", "replace")):
        try:
            pod = json.loads(data.decode("utf-8", "replace"), object_pairs_hook=_json_merge)
        except ValueError:
            return None  # not JSON for Go either
    else:
        text = _text(data)
        if text is None:
            return None
        bad = _NOT_PRINTABLE.search(text)
        if bad:
            if not _DOCUMENT_MARK.search(text, 0, bad.start()):
                return None  # inside the first document: go-yaml fails on it, the kubelet skips the file
            raise DoubtfulError(f"a control character (U+{ord(bad.group()):04X}) after the first YAML document")
        try:
            pod = _first_document(text)
        except YAMLError as exc:
            raise DoubtfulError(f"not YAML we can read: {str(exc).splitlines()[0]}") from None
    meta = pod.get("metadata") if isinstance(pod, dict) else None
    if not isinstance(meta, dict):
        return None
    name, namespace = meta.get("name"), meta.get("namespace")
    if isinstance(name, _Unsure) or isinstance(namespace, _Unsure):
        raise DoubtfulError("metadata.name or namespace has an explicit YAML tag")
    if not isinstance(name, str) or not name or not (namespace is None or isinstance(namespace, str)):
        return None  # the kubelet's decoder refuses a non-string there, and a pod without a name
    return (namespace or "default", name)


def pod_key(pod: Any) -> tuple[str, str]:
    """The store key of our own pod (as the kubelet reads it)."""
    meta = pod.get("metadata") if isinstance(pod, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    return (meta.get("namespace") or "default", str(meta.get("name")))


def kubelet_files(directory: str) -> list[str]:
    """The files the kubelet reads in `directory`, in its order: not dot-files, not directories."""
    found = []
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        try:
            if not entry.startswith(".") and os.path.isfile(path):  # isfile follows symlinks, as os.Stat does
                found.append(path)
        except OSError:
            continue
    return found


def scan(manifest: str, key: tuple[str, str]) -> tuple[list[str], list[str]]:
    """(other files declaring `key`, files whose reading may differ from the kubelet's), each named
    with what it is: a hard link or a symlink to the manifest says so."""
    strays: list[str] = []
    doubtful: list[str] = []
    for path in kubelet_files(os.path.dirname(manifest) or "."):
        if os.path.basename(path) == os.path.basename(manifest):
            continue
        same = os.path.samefile(path, manifest) if os.path.exists(manifest) else False
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
            declared = declared_pod(data)
        except OSError as exc:
            doubtful.append(f"{path}: cannot be read ({exc.strerror or exc})")
            continue
        except DoubtfulError as exc:
            doubtful.append(f"{path}: {exc}")
            continue
        if same or declared == key:
            what = "a symlink to" if os.path.islink(path) else "a hard link to"
            # A hard link keeps the old bytes when the manifest is replaced: the kubelet then runs both.
            strays.append(f"{path} ({what} {manifest})" if same else path)
    return strays, doubtful

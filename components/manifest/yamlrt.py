"""Round-trip YAML for static-pod manifests, and the kubelet's reading of the same text.

Two readings of one manifest:
- `load`/`dump` (ruamel.yaml, round-trip): comments, quoting, flow style, key order and indentation
  survive a rewrite, so the bytes we do not own stay as they were;
- `kubelet_view`: the values the kubelet's decoder gets (sigs.k8s.io/yaml -> go-yaml v2, YAML 1.1
  rules: plain `y`, `on`, `0x1F`, `1e3` are not strings there), so a rewrite can be checked to
  change nothing but what we own, as the kubelet reads it.

Input we cannot rewrite safely is refused with `file:line:col`: anchors and aliases (an alias bomb
costs minutes of CPU, and an edit through an alias edits two places), explicit tags, merge keys,
duplicate keys (the kubelet keeps one silently), more than one document, and deep nesting.
Pure: no I/O; shipped in the node bundle with the pure-Python ruamel.yaml.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import RoundTripConstructor, SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionStartEvent, DocumentStartEvent, NodeEvent, ScalarEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import PlainScalarString

MAX_DEPTH = 64


class ManifestError(ValueError):
    """The manifest cannot be planned: not YAML we can rewrite safely, not a Pod, no kube-apiserver container."""


def _where(source: str, mark: Any) -> str:
    return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source


# --- the kubelet's reading (go-yaml v2 resolution of plain scalars) ---------------------------------

_GO_BOOL = {v: True for v in ("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")}
_GO_BOOL.update({v: False for v in ("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")})
_GO_NULL = {"", "~", "null", "Null", "NULL"}
_GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_SPECIAL_FLOAT = {
    ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
    **{f"{sign}{v}": (-math.inf if sign == "-" else math.inf)
       for sign in ("", "+", "-") for v in (".inf", ".Inf", ".INF")},
}
_GO_INT = re.compile(r"^[-+]?(0[bB][01]+|0[oO][0-7]+|0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$")


def _go_int(text: str) -> int | None:
    """Go's strconv.ParseInt/ParseUint with base 0, after go-yaml removed every underscore."""
    if not _GO_INT.match(text):
        return None
    sign, digits = (-1, text[1:]) if text[0] == "-" else (1, text.lstrip("+"))
    octal = len(digits) > 1 and digits[0] == "0" and digits[1] not in "bBoOxX"  # Go: a leading 0 is octal
    value = sign * (int(digits, 8) if octal else int(digits, 0))
    return value if -(1 << 63) <= value < (1 << 64) else None


def go_resolve(text: str) -> Any:
    """What go-yaml v2 makes of a plain (unquoted, untagged) scalar when decoding into interface{}.

    Timestamps stay strings there (go-yaml keeps them strings for interface{} targets).
    """
    if text in _GO_BOOL:
        return _GO_BOOL[text]
    if text in _GO_NULL:
        return None
    if text in _GO_SPECIAL_FLOAT:
        return _GO_SPECIAL_FLOAT[text]
    if text[0] == ".":
        # go-yaml hands a "."-led scalar to strconv.ParseFloat as it is: underscores stay, and Go
        # accepts them only between digits (".0_0" is a number, "._5" and ".5_" are strings).
        return _go_float(text.replace("_", ""), text) if _go_underscores_ok(text) and _GO_FLOAT.match(
            text.replace("_", "")) else text
    if text[0] in "+-0123456789":
        # Digits or a sign: go-yaml removes every underscore, then tries ParseInt, then its own float
        # pattern (so "+inf" and hex floats stay strings, as the real decoder shows).
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return number
        if _GO_FLOAT.match(plain):
            return _go_float(plain, text)
    return text


def _go_float(number: str, text: str) -> Any:
    """strconv.ParseFloat: out of float64's range is an error, and go-yaml then keeps the string."""
    value = float(number)
    return text if math.isinf(value) else value


def _go_underscores_ok(text: str) -> bool:
    """Go's rule for underscores in a number literal: each one between two digits."""
    return all(i > 0 and text[i - 1].isdigit() and i + 1 < len(text) and text[i + 1].isdigit()
               for i, c in enumerate(text) if c == "_")


def _go_node(node: Node) -> Any:
    if isinstance(node, ScalarNode):
        return go_resolve(node.value) if node.style is None else node.value
    if isinstance(node, SequenceNode):
        return [_go_node(item) for item in node.value]
    if isinstance(node, MappingNode):
        result: dict[Any, Any] = {}
        for key, value in node.value:
            go_key = _go_node(key)
            # sigs.k8s.io/yaml turns non-string keys into their text for JSON.
            result[go_key if isinstance(go_key, str) else key.value] = _go_node(value)
        return result
    raise ManifestError(f"unexpected YAML node {type(node).__name__}")


# --- round trip -----------------------------------------------------------------------------------


class _Constructor(RoundTripConstructor):
    """Marks plain strings as plain, so the dumper can tell them from the strings we add."""

    def construct_yaml_str(self, node: Any) -> Any:
        value = super().construct_yaml_str(node)
        if type(value) is str and node.style is None:
            return PlainScalarString(value)
        return value


_Constructor.add_constructor("tag:yaml.org,2002:str", _Constructor.construct_yaml_str)


class _Representer(RoundTripRepresenter):
    """Strings we add are quoted when the kubelet would read them unquoted as another type."""

    def represent_str(self, data: Any) -> Any:
        if type(data) is str and not isinstance(go_resolve(data) if data else None, str):
            return self.represent_scalar("tag:yaml.org,2002:str", data, style='"')
        return super().represent_str(data)

    def represent_none(self, data: Any) -> Any:
        return self.represent_scalar("tag:yaml.org,2002:null", "null")  # kubeadm's spelling


_Representer.add_representer(str, _Representer.represent_str)
_Representer.add_representer(type(None), _Representer.represent_none)


def _yaml(text: str = "") -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.Constructor = _Constructor
    yaml.Representer = _Representer
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = False
    yaml.width = 1 << 16  # never wrap: kubeadm writes one flag per line, however long
    mapping, offset = _guess_indent(text)
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    yaml.explicit_start = text.lstrip().startswith("---")
    return yaml


def _guess_indent(text: str) -> tuple[int, int]:
    """(mapping indent, dash offset under its key) of the first nested mapping and block sequence.

    kubeadm writes 2 and 0 (`- ` flush with the key); hand-written files often use 2 and 2.
    """
    mapping = offset = None
    previous: tuple[int, bool] | None = None  # (indent, ends with ':') of the last content line
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if previous is not None and previous[1]:
            if stripped.startswith("- ") and offset is None:
                offset = indent - previous[0]
            elif not stripped.startswith("- ") and mapping is None and indent > previous[0]:
                mapping = indent - previous[0]
        if mapping is not None and offset is not None:
            break
        previous = (indent, stripped.endswith(":"))
    return mapping or 2, max(offset or 0, 0)


def _prescan(text: str, source: str) -> None:
    """Refuse what a rewrite cannot keep safe, before anything is built (no alias expansion, no recursion)."""
    depth = documents = 0
    for event in YAML(typ="rt", pure=True).parse(text):
        mark = getattr(event, "start_mark", None)
        if isinstance(event, DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise ManifestError(f"{_where(source, mark)}: more than one YAML document; a static-pod file holds "
                                    "one Pod")
        if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor is not None):
            raise ManifestError(f"{_where(source, mark)}: YAML anchors and aliases are not supported in a manifest "
                                "(an edit through an alias would change two places)")
        if isinstance(event, (ScalarEvent, CollectionStartEvent)) and event.tag is not None:
            raise ManifestError(f"{_where(source, mark)}: explicit YAML tag {event.tag} is not supported in a manifest")
        if isinstance(event, ScalarEvent) and event.value == "<<" and event.style is None:
            raise ManifestError(f"{_where(source, mark)}: YAML merge keys (<<) are not supported in a manifest")
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ManifestError(f"{_where(source, mark)}: nested deeper than {MAX_DEPTH} levels; not a manifest")
        elif type(event).__name__ in ("MappingEndEvent", "SequenceEndEvent"):
            depth -= 1


def _yaml_error(exc: Exception, source: str) -> ManifestError:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or str(exc)
        if "duplicate key" in str(exc):
            problem = f"{problem.split(' with value')[0]} (the kubelet would keep one silently)"
        return ManifestError(f"{_where(source, mark)}: not valid YAML: {problem}")
    return ManifestError(f"{source}: not valid YAML: {exc}")


def json_prefixed(text: str) -> bool:
    """apimachinery's IsJSONBuffer: the first non-space character is `{`, and the kubelet then decodes
    the file as JSON, not YAML (no YAML 1.1 scalars, Go's rules for repeated keys)."""
    i = 0
    # Go's unicode.IsSpace is Unicode White_Space; Python's isspace also counts U+001C..U+001F.
    while i < len(text) and text[i].isspace() and text[i] not in "\x1c\x1d\x1e\x1f":
        i += 1
    return text.startswith("{", i)


def _guarded(text: str, source: str, rt: bool) -> tuple[Any, Any]:
    if json_prefixed(text):
        raise ManifestError(f"{source}:1:1: the kubelet reads a file that starts with '{{' as JSON, not YAML; "
                            "kube-audit edits YAML manifests only (write it in block YAML)")
    try:
        _prescan(text, source)
        doc = _yaml(text).load(text) if rt else None
        node = YAML(typ="rt", pure=True).compose(text)
    except ManifestError:
        raise
    except YAMLError as exc:
        raise _yaml_error(exc, source) from None
    return doc, (None if node is None else _go_node(node))


def read(text: str, source: str) -> tuple[Any, Any]:
    """(round-trip document for a rewrite, the kubelet's view of it); errors name `source:line:col`."""
    return _guarded(text, source, rt=True)


def load(text: str, source: str) -> Any:
    """The round-trip document alone."""
    return _guarded(text, source, rt=True)[0]


def kubelet_view(text: str, source: str) -> Any:
    """The document as the kubelet's YAML->JSON step reads it (plain scalars resolved as go-yaml v2 does)."""
    return _guarded(text, source, rt=False)[1]


class _LastKeyWins(SafeConstructor):
    """A key given twice keeps its last value: go-yaml v2 (the kubelet's reader) does, ruamel keeps the first."""

    def check_mapping_key(self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any) -> bool:
        return True


def loose_load(text: str) -> Any:
    """Plain values of any YAML, as leniently as the kubelet reads it: for files we only look at.

    Aliases become shared references (never copies), so an alias bomb costs nothing here.
    """
    yaml = YAML(typ="safe", pure=True)
    yaml.Constructor = _LastKeyWins
    yaml.allow_duplicate_keys = True  # a second merge key `<<` too
    return yaml.load(text)


def dump(doc: Any, like: str) -> str:
    """Write `doc` in the layout of the text it was loaded from (`like`)."""
    out = io.StringIO()
    _yaml(like).dump(doc, out)
    return out.getvalue()


def location(node: Any, key: Any, source: str) -> str:
    """`source:line:col` of `node[key]`'s value when the loader recorded it, else `source`."""
    try:
        line, col = node.lc.value(key) if isinstance(key, str) else node.lc.item(key)
    except (AttributeError, KeyError, IndexError, TypeError):
        return source
    return f"{source}:{line + 1}:{col + 1}"


def locate(doc: Any, path: tuple[str | int, ...], source: str) -> str:
    """`source:line:col` of the deepest node on `path` that the document has (`source` if none)."""
    found = source
    node = doc
    for key in path:
        try:
            line, col = node.lc.key(key) if isinstance(key, str) else node.lc.item(key)
            found = f"{source}:{line + 1}:{col + 1}"
            node = node[key]
        except (AttributeError, KeyError, IndexError, TypeError):
            break
    return found

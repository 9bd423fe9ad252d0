"""YAML parsing with source positions, typed the way kube-apiserver reads the file.

PyYAML's ``compose`` gives us a node tree where every node carries ``start_mark`` (0-based line and
column). We keep that tree instead of ``safe_load``'s plain dicts so that every later check can
point at the exact node it complains about.

The apiserver does not read YAML with PyYAML: it converts YAML to JSON with sigs.k8s.io/yaml, which
uses go-yaml v2 (YAML 1.1 rules). The two libraries disagree on some plain scalars (``y``/``n`` are
booleans in go-yaml, ``1e3`` is a float there, ``2024-01-01`` stays a string there). Type checks
must follow the apiserver, so :func:`scalar_kind` re-resolves plain scalars with go-yaml's rules
instead of trusting PyYAML's tags.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .problems import PolicyError, Problem

# Tag given to plain (unquoted, untagged) scalars so that we can resolve them ourselves later.
PLAIN_TAG = "tag:kube-audit,2024:plain"

_STR_TAG = "tag:yaml.org,2002:str"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_NULL_TAG = "tag:yaml.org,2002:null"

# go-yaml v2 resolve.go: the plain scalars it reads as booleans, nulls and special floats.
_GO_BOOL = frozenset(
    [
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "true",
        "True",
        "TRUE",
        "on",
        "On",
        "ON",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "false",
        "False",
        "FALSE",
        "off",
        "Off",
        "OFF",
    ]
)
_GO_NULL = frozenset(["", "~", "null", "Null", "NULL"])
_GO_SPECIAL_FLOAT = frozenset(
    [".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF"]
)
_GO_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
# strconv.ParseInt(s, 0, 64) syntax (after go-yaml removed every "_").
_GO_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")
_GO_BINARY = re.compile(r"^-?0b[01]+$")
# go-yaml v2 recognises timestamps but hands them to interface{} targets as the original string.
_GO_TIMESTAMP = re.compile(r"^\d{4}-\d\d?-\d\d?([Tt ].*)?$")


class _PlainMarkingLoader(yaml.SafeLoader):
    """SafeLoader that tags implicit plain scalars with PLAIN_TAG instead of resolving them."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0]:
            return PLAIN_TAG
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


def go_plain_kind(value: str) -> str:
    """Return how go-yaml v2 types a plain scalar: "null", "bool", "int", "float" or "str"."""
    if value in _GO_NULL:
        return "null"
    if value in _GO_BOOL:
        return "bool"
    if value in _GO_SPECIAL_FLOAT:
        return "float"
    first = value[0]
    if first in "+-0123456789":
        if _GO_TIMESTAMP.match(value):
            return "str"
        plain = value.replace("_", "")
        if _GO_INT.match(plain):
            return "int"
        if _GO_YAML_FLOAT.match(plain):
            return "float"
        if _GO_BINARY.match(plain):
            return "int"
        return "str"
    if first == "." and _GO_YAML_FLOAT.match(value):
        return "float"
    return "str"


def scalar_kind(node: ScalarNode) -> str:
    """Type of a scalar node as the apiserver sees it: "null", "bool", "int", "float", "str"."""
    if node.tag == PLAIN_TAG:
        return go_plain_kind(node.value)
    return {
        _STR_TAG: "str",
        _BOOL_TAG: "bool",
        _INT_TAG: "int",
        _FLOAT_TAG: "float",
        _NULL_TAG: "null",
    }.get(node.tag, "str" if node.tag == "!" else "tag " + node.tag)


def is_null(node: Node) -> bool:
    """True for an explicit or empty null (``key:``, ``key: ~``, ``key: null``)."""
    return isinstance(node, ScalarNode) and scalar_kind(node) == "null"


def position(node: Node) -> tuple[int, int]:
    """1-based (line, column) of a node's first character."""
    return node.start_mark.line + 1, node.start_mark.column + 1


def describe(node: Node) -> str:
    """Short human name of a node's type for error messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    kind = scalar_kind(node)  # type: ignore[arg-type]
    return {
        "null": "null",
        "bool": f"a boolean ({node.value!r})",
        "int": f"a number ({node.value})",
        "float": f"a number ({node.value})",
        "str": "a string",
    }.get(kind, kind)


MAX_DEPTH_MESSAGE = "YAML nested too deeply to be an audit policy (Python's recursion limit was reached here)"


def compose(text: str, source: str) -> tuple[Node | None, list[Problem]]:
    """Parse the first YAML document into a node tree; syntax errors raise PolicyError.

    go-yaml (what the apiserver uses) reads only the first document. Empty documents after it
    (a trailing ``---``, perhaps followed by comments) are harmless; a non-empty one is returned
    as a tolerated problem, since its rules would silently not apply.
    """
    _check_json(text, source)
    loader = _PlainMarkingLoader(text)
    try:
        first = loader.get_node() if loader.check_node() else None
        later: list[Problem] = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None and not is_null(node):
                line, col = position(node)
                later.append(
                    Problem(
                        source,
                        line,
                        col,
                        "a second YAML document: kube-apiserver reads only the first one and ignores "
                        "this one, so none of it applies; an audit policy file holds exactly one",
                        tolerated=True,
                    )
                )
        return first, later
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = " ".join(part for part in (err.context, err.problem) if part)
        first_line = err.context_mark.line if err.context_mark is not None else line - 1
        message += _dash_hint(text, first_line, line)
        raise PolicyError([Problem(source, line, col, f"YAML syntax error: {message}")]) from None
    except yaml.YAMLError as err:  # reader errors (e.g. control characters) carry no mark
        raise PolicyError([Problem(source, 1, 1, f"YAML error: {err}")]) from None
    except RecursionError:
        mark = loader.get_mark()
        raise PolicyError([Problem(source, mark.line + 1, mark.column + 1, MAX_DEPTH_MESSAGE)]) from None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_json(text: str, source: str) -> None:
    """A document starting with "{" must be strict JSON: that is how the apiserver reads it.

    k8s.io/apimachinery's universal decoder sniffs the first non-space byte; on "{" it uses its
    JSON decoder, so a YAML flow mapping such as ``{kind: Policy, ...}`` is a JSON syntax error.
    """
    if not text.lstrip().startswith("{"):
        return
    try:
        json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        message = (
            "kube-apiserver reads a file that starts with '{' as JSON, and this is not valid JSON: "
            f"{err.msg} (write block-style YAML, or quote every key and string)"
        )
        raise PolicyError([Problem(source, err.lineno, err.colno, message)]) from None
    except ValueError as err:
        raise PolicyError([Problem(source, 1, 1, f"invalid JSON: {err}")]) from None
    except RecursionError:
        raise PolicyError([Problem(source, 1, 1, "JSON " + MAX_DEPTH_MESSAGE)]) from None


_DASH_NO_SPACE = re.compile(r"^\s*-[A-Za-z_\"']")


def _dash_hint(text: str, first: int, last: int) -> str:
    """Point at "-key:" lines near a syntax error: the classic missing space after a list dash."""
    lines = text.splitlines()
    for index in range(max(0, first), min(last, len(lines))):
        if _DASH_NO_SPACE.match(lines[index]):
            item = lines[index].strip()
            return f' (line {index + 1}: "{item}" is not a list item; a "-" needs a space after it: "- {item[1:]}")'
    return ""


def mapping_items(node: MappingNode, source: str, problems: list[Problem]) -> list[tuple[str, ScalarNode, Node]]:
    """The (key, key node, value node) pairs of a mapping; reports duplicate and odd keys.

    Duplicate keys are refused (tolerated problems): the apiserver keeps the last one and only
    warns, so the other one's content silently disappears from the policy. The items returned
    are what the apiserver keeps.
    """
    seen: dict[str, int] = {}
    items: list[tuple[str, ScalarNode, Node]] = []
    for key_node, value_node in node.value:
        line, col = position(key_node)
        if not isinstance(key_node, ScalarNode):
            problems.append(Problem(source, line, col, "mapping keys must be plain strings"))
            continue
        if key_node.tag == PLAIN_TAG and key_node.value == "<<":
            problems.append(Problem(source, line, col, "YAML merge keys (<<) are not supported here"))
            continue
        key = str(key_node.value)
        if key in seen:
            first_line, _ = position(items[seen[key]][1])
            message = (
                f'duplicate key "{key}" (first at line {first_line}); the apiserver keeps only this '
                "last one and drops the other"
            )
            problems.append(Problem(source, line, col, message, tolerated=True))
            items[seen[key]] = (key, key_node, value_node)
            continue
        seen[key] = len(items)
        items.append((key, key_node, value_node))
    return items

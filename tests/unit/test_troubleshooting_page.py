"""docs/troubleshooting.md against the code: the page cannot list a message the code no longer
produces, and the code cannot gain a refusal the page does not list.

The page's tables whose first column is headed "Message" hold examples of messages as a user sees
them (real values, or `<placeholders>`), one code span each. The code's side is every string
expression in components/ (and the program's __main__.py) read with `ast`, an f-string's
interpolations turned into holes: `f"{path} is not writable"` is the template `<hole> is not
writable`, which matches any text in the hole. Docstrings and comments are not templates, so a
message that survives only there does not count.

- Page -> code: every example must be matched whole by one template with enough fixed text
  (MIN_LITERAL), so a reworded or deleted message fails here.
- Code -> page: every refusal the code can raise must appear in some example: a message given to
  an exception whose class name ends in "Error", a failed gate verdict (`Verdict(False, ...)`), a
  `pulumi.log.warn`, an entry appended to a list of problems, warnings, violations or notes, or a
  returned list of messages. INTERNAL names the few that never reach a user on their own, with why.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "troubleshooting.md"
HOLE = "\0"
# A template with less fixed text than this ("<hole>: <hole>") would match almost any example.
MIN_LITERAL = 10

# The pack's own messages (the checks are components/policy/guardrails.py).
GUARDRAIL_PACK = ROOT / "policies" / "guardrails" / "__main__.py"

# Scanned for refusals (code -> page). The policy engine's own problems are catalogued by kind on
# docs/policies.md ("What validate rejects", "Lint codes") and reach a stack run only inside the
# `kube-audit:policy` message listed here; the volume command's errors are its own command line's.
# settings/reference.py is a docs generator, not part of a run.
REFUSAL_SOURCES = sorted(
    [p for p in (ROOT / "components").rglob("*.py")
     if p.parent.name not in ("policy", "volume") and p != ROOT / "components" / "settings" / "reference.py"]
    + [ROOT / "components" / "policy" / "guardrails.py", ROOT / "components" / "policy" / "profiles.py",
       ROOT / "components" / "volume" / "stack.py", ROOT / "__main__.py", GUARDRAIL_PACK]
)
MESSAGE_LISTS = {"problems", "out", "violations", "warnings", "notes"}

# Templates a user never meets as a message of their own, keyed by their fixed text.
INTERNAL = {
    "the kernel accepted no bytes": "an OSError inside atomic_write; the user sees it as the reason in "
                                    "'cannot write <path>: <reason>; nothing changed'",
    " holds  bytes after writing ": "the same, for a short write",
    "not looked yet": "the gate's initial verdict, replaced by the first observation before any timeout",
    "unexpected YAML node ": "a ruamel.yaml node kind the composer never produces",
}


@dataclass(frozen=True)
class Template:
    source: str
    """file:line"""
    text: str
    """the message with HOLE where the code interpolates"""

    @property
    def literal(self) -> str:
        return self.text.replace(HOLE, "")

    @functools.cached_property
    def regex(self) -> re.Pattern[str]:
        # Whitespace as a reader sees it: "\nlast lines of" reads as "last lines of".
        parts = [re.escape(part) for part in _squash(self.text).strip().split(HOLE)]
        return re.compile(".*?".join(parts), re.DOTALL)


def _where(path: Path, node: ast.AST) -> str:
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return f"{name}:{getattr(node, 'lineno', 0)}"


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _template(node: ast.AST) -> str | None:
    """The message an expression builds, with holes; None when it builds no string we can read."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        if left is None and right is None:
            return None
        return (left if left is not None else HOLE) + (right if right is not None else HOLE)
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of bare string statements (docstrings, attribute docs): documentation, not messages."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, (ast.Constant, ast.JoinedStr))}


def all_templates(paths: list[Path]) -> list[Template]:
    """Every string expression in `paths` (outermost only: an f-string's parts are not separate)."""
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        skip = _docstrings(tree)
        inner: set[int] = set()
        for node in ast.walk(tree):
            if id(node) in skip or id(node) in inner:
                continue
            text = _template(node)
            if text is None:
                continue
            inner.update(id(child) for child in ast.walk(node) if child is not node)
            found.append(Template(_where(path, node), text))
    return found


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _message_args(node: ast.AST) -> list[ast.expr]:
    """The arguments of `node` that carry a user-facing message, by the rules in the module doc."""
    if isinstance(node, ast.Return) and isinstance(node.value, ast.List):
        return list(node.value.elts)
    if isinstance(node, ast.Return) and isinstance(node.value, ast.ListComp):
        return [node.value.elt]
    if not isinstance(node, ast.Call):
        return []
    name = _call_name(node)
    if name.endswith("Error"):
        return list(node.args)

    if name == "Verdict" and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value is False:
        return list(node.args[2:3])
    if name == "warn" and isinstance(node.func, ast.Attribute):
        return list(node.args[:1])
    if (name == "append" and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
            and node.func.value.id in MESSAGE_LISTS):
        return list(node.args[:1])
    return []


def _error_class_messages(tree: ast.AST) -> Iterator[ast.Call]:
    """`super().__init__(message)` in a class whose name ends in "Error": WriteError's "cannot write ..."."""
    for cls in ast.walk(tree):
        if isinstance(cls, ast.ClassDef) and cls.name.endswith("Error"):
            for node in ast.walk(cls):
                if (isinstance(node, ast.Call) and _call_name(node) == "__init__"
                        and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call)
                        and _call_name(node.func.value) == "super"):
                    yield node


def refusal_templates(paths: list[Path]) -> list[Template]:
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        inits = {id(call): call for call in _error_class_messages(tree)}
        for node in ast.walk(tree):
            args = list(inits[id(node)].args[:1]) if id(node) in inits else _message_args(node)
            texts = [t for t in (_template(arg) for arg in args) if t is not None]
            if texts:
                # GateError("ready", f"... within {t}s"): the argument with the most fixed text is the message.
                best = max(texts, key=lambda t: len(t.replace(HOLE, "")))
                found.append(Template(_where(path, node), best))
    return found


# --- the page ------------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")


def _cells(row: str) -> list[str]:
    """Split a table row on pipes outside code spans."""
    cells, current, i = [], "", 0
    body = row.strip().strip("|")
    while i < len(body):
        span = _CODE_SPAN.match(body, i)
        if span:
            current += span.group(0)
            i = span.end()
        elif body[i] == "|" and (i == 0 or body[i - 1] != "\\"):
            cells.append(current.strip())
            current, i = "", i + 1
        else:
            current += body[i]
            i += 1
    cells.append(current.strip())
    return cells


def _span_text(match: re.Match[str]) -> str:
    text = match.group(2)
    # CommonMark: one space is stripped from both ends when both are spaces (lets a span start with `).
    return text[1:-1] if len(text) > 1 and text.startswith(" ") and text.endswith(" ") else text


def page_examples(text: str) -> list[tuple[int, str]]:
    """(line number, example) for every code span in the first column of a "Message" table."""
    examples: list[tuple[int, str]] = []
    in_table = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if cells and cells[0].lower() == "message":
            in_table = True
            continue
        if in_table and not set(cells[0]) <= set("-: "):
            spans = list(_CODE_SPAN.finditer(cells[0]))
            assert spans, f"{PAGE.name}:{number}: a Message cell without a `code span` example"
            examples += [(number, _squash(_span_text(span)).strip()) for span in spans]
    return examples


def _explains(template: Template, example: str) -> bool:
    if len(template.literal) < MIN_LITERAL:
        return False
    # Cheap first: the template's longest fixed part must be in the example at all.
    longest = max(_squash(template.text).strip().split(HOLE), key=len)
    return longest in example and template.regex.fullmatch(example) is not None


# --- the tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def examples() -> list[tuple[int, str]]:
    return page_examples(PAGE.read_text())


@pytest.fixture(scope="module")
def templates() -> list[Template]:
    return all_templates([*sorted((ROOT / "components").rglob("*.py")), ROOT / "__main__.py", GUARDRAIL_PACK])


def test_the_page_lists_messages(examples: list[tuple[int, str]]) -> None:
    # Guards the parser: a page whose tables it no longer recognises would pass both checks vacuously.
    assert len(examples) > 100


def test_every_listed_message_is_produced_by_the_code(examples: list[tuple[int, str]],
                                                      templates: list[Template]) -> None:
    stale = [f"{PAGE.name}:{line}: {example}" for line, example in examples
             if not any(_explains(t, example) for t in templates)]
    assert not stale, ("messages on the troubleshooting page that no message template in components/ "
                       "produces (reworded or removed? update the page):\n" + "\n".join(stale))


def test_every_refusal_in_the_code_is_listed(examples: list[tuple[int, str]]) -> None:
    missing = []
    for template in refusal_templates(REFUSAL_SOURCES):
        if len(template.literal) < MIN_LITERAL or template.literal in INTERNAL:
            continue  # a wrapper like "<hole>: <hole>" says nothing of its own
        if not any(template.regex.search(example) for _, example in examples):
            missing.append(f"{template.source}: {template.text.replace(HOLE, '<...>')!r}")
    assert not missing, ("refusals in components/ that docs/troubleshooting.md does not list (add a row: "
                         "the message as a user sees it, what it means, what to do):\n" + "\n".join(missing))


def test_internal_exceptions_still_exist() -> None:
    # A stale exemption would hide nothing, but it would let the list grow unexamined.
    literals = {t.literal for t in refusal_templates(REFUSAL_SOURCES)}
    assert set(INTERNAL) <= literals


# --- the checker itself: it must be able to fail --------------------------------------------------


def test_a_reworded_message_is_caught(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text('def f(path):\n    raise NodeError(f"{path} is not a regular file")\n')
    template = all_templates([source])[0]
    assert _explains(template, "/etc/kubernetes/manifests/kube-apiserver.yaml is not a regular file")
    assert not _explains(template, "/etc/kubernetes/manifests/kube-apiserver.yaml is not a plain file")


def test_docstrings_are_not_templates(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text('"""cannot back up the manifest anywhere at all"""\nX = "kept as a message template"\n')
    assert [t.text for t in all_templates([source])] == ["kept as a message template"]


def test_refusals_are_found_by_each_rule(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "def f(x, problems, log):\n"
        "    problems.append(f'{x} is not writable at all')\n"
        "    log.warn(f'{x}: drift not checked today')\n"
        "    Verdict(False, 'new-process', f'pid {x} listens elsewhere')\n"
        "    Verdict(True, 'flags', 'fine and dandy, nothing to see')\n"
        "    return [f'{x} is disabled on production']\n"
        "def g(x):\n"
        "    raise GateError('ready', f'not ready within {x}s of waiting')\n"
        "class WriteError(Exception):\n"
        "    def __init__(self, path):\n"
        "        super().__init__(f'cannot write {path} at all, sorry')\n"
        "class Component:\n"
        "    def __init__(self):\n"
        "        super().__init__('kube-audit:index:Component')\n"
    )
    found = sorted(t.literal for t in refusal_templates([source]))
    assert found == sorted([" is not writable at all", ": drift not checked today", "pid  listens elsewhere",
                            " is disabled on production", "not ready within s of waiting",
                            "cannot write  at all, sorry"])


def test_page_parser_reads_only_message_tables() -> None:
    text = "\n".join([
        "| key | meaning |", "|---|---|", "| `not an example` | x |", "",
        "| Message | meaning | what to do |", "|---|---|---|",
        "| `a | b` and `` run `helm repo update x` `` | m | d |",
    ])
    assert page_examples(text) == [(7, "a | b"), (7, "run `helm repo update x`")]

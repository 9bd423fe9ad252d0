"""Keep the bytes we do not own: put only the lines our change touches into the original text.

ruamel.yaml round-trips most manifests exactly, but not every layout: it writes LF for CRLF, one
indentation for the whole file, one line for a flow list written over several lines (dropping the
comments inside it), `null` for `~`, and nothing for a `...` document end and what follows it. So the
new text is not ruamel's output: it is the original text with ruamel's edit applied as a patch.

Three texts: `original` (the file), `before` (ruamel's dump of the unchanged document) and `after`
(ruamel's dump of the changed one). `before` -> `after` is exactly our change, in ruamel's layout.
Each of its hunks is applied to `original` where `before`'s lines match the original's (lines are
compared without their line ending and leading spaces): added lines take the line ending and the
indentation shift of the line they follow. A hunk that would touch a line ruamel cannot keep as it
is is refused, naming that line: rewriting it would change bytes outside our change.
Pure: no I/O; shipped in the node bundle.
"""

from __future__ import annotations

import difflib
import re

from components.manifest.yamlrt import ManifestError

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def _lines(text: str) -> list[tuple[str, str]]:
    """(content, line ending) per line; YAML's own breaks only (str.splitlines knows more)."""
    out = []
    for match in _LINE.finditer(text):
        line = match.group(0)
        content = line.rstrip("\r\n")
        out.append((content, line[len(content):]))
    return out


def _key(content: str) -> str:
    return content.lstrip(" ")


def _indent(content: str) -> int:
    return len(content) - len(_key(content))


def _shift(content: str, by: int) -> str:
    if by >= 0:
        return " " * by + content
    cut = min(-by, _indent(content))
    return content[cut:]


def splice(original: str, before: str, after: str, source: str) -> str:
    """`original` with the change `before` -> `after` applied to its own lines; see the module doc."""
    if original == before:
        return after
    orig, old, new = _lines(original), _lines(before), _lines(after)
    # Where each of ruamel's unchanged-document lines sits in the original (None: ruamel rewrites it).
    where: list[int | None] = [None] * len(old)
    aligner = difflib.SequenceMatcher(None, [_key(c) for c, _ in orig], [_key(c) for c, _ in old], autojunk=False)
    for block in aligner.get_matching_blocks():
        for k in range(block.size):
            where[block.b + k] = block.a + k
    ending = max(("\n", "\r\n", "\r"), key=lambda e: sum(1 for _, end in orig if end == e))
    # Edits on the original, as (first line, end line, new lines), applied from the bottom up.
    edits: list[tuple[int, int, list[tuple[str, str]]]] = []
    change = difflib.SequenceMatcher(None, [c for c, _ in old], [c for c, _ in new], autojunk=False)
    for tag, i1, i2, j1, j2 in change.get_opcodes():
        if tag == "equal":
            continue
        first = i1 if i2 > i1 else i1 - 1  # a pure insertion hangs on the line before it
        touched = where[max(first, 0):max(i2, i1)]
        if first < 0 or None in touched:
            raise _refusal(orig, where, first + (touched.index(None) if None in touched else 0), source)
        lines: list[int] = touched  # type: ignore[assignment]
        gaps = [k for k in range(len(lines) - 1) if lines[k + 1] != lines[k] + 1]
        if gaps:  # the original has lines here that ruamel's dump has not: it rewrote them
            raise _refusal(orig, where, first + gaps[0] + 1, source)
        if i2 > i1:
            start, end, anchor, ref = lines[0], lines[-1] + 1, lines[0], i1
        else:  # a pure insertion: after the original of the line before it
            start = end = lines[-1] + 1
            anchor, ref = lines[-1], i1 - 1
        shift = _indent(orig[anchor][0]) - _indent(old[ref][0])
        end_of_line = orig[anchor][1] or ending
        edits.append((start, end, [(_shift(c, shift), end_of_line) for c, _ in new[j1:j2]]))
    result = list(orig)
    for start, end, replacement in reversed(edits):
        result[start:end] = replacement
    # A file without a final line break keeps none; every other line ends as it did.
    last_open = bool(orig) and orig[-1][1] == ""
    for i in range(len(result) - 1):
        if result[i][1] == "":
            result[i] = (result[i][0], ending)
    if result and last_open:
        result[-1] = (result[-1][0], "")
    return "".join(c + e for c, e in result)


def _refusal(orig: list[tuple[str, str]], where: list[int | None], index: int, source: str) -> ManifestError:
    """Name the first original line the change would rewrite: the one after the last line kept."""
    kept = next((where[i] for i in range(min(index, len(where)) - 1, -1, -1) if where[i] is not None), None)
    line = min(0 if kept is None else kept + 1, len(orig) - 1)
    shown = orig[line][0].strip() if orig else ""
    return ManifestError(
        f"{source}:{line + 1}: the change would rewrite this part of the file in another layout ({shown!r}: "
        "a flow list or mapping over several lines, comments inside one, or a layout the YAML writer "
        "normalises), changing bytes outside kube-audit's own lines; write that part in block style, "
        "one item per line, and retry"
    )

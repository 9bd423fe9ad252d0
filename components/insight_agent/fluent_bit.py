"""FluentBit's config, read as FluentBit reads it: which tail inputs read the audit log we write.

Pure. FluentBit's tail input expands `Path` (a comma-separated list) with libc `glob(3)` (flags
`GLOB_TILDE`), and drops a file matching any `Exclude_Path` pattern with `fnmatch(3)` (flags 0). The
two differ from Python's `fnmatch` (whose `*` crosses `/` and matches a leading dot), so the
matcher here is written to glob(3)'s rules: `*`, `?` and `[...]` within one path component, a
component's leading `.` matched only by a literal `.`, `\\` escaping the next character.
tests/unit/program/test_fluent_bit.py holds it against the C library's own glob and fnmatch.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# kube-apiserver rotates its audit log with lumberjack: `<name>-<UTC time>.<ext>`, the time in Go's layout
# "2006-01-02T15-04-05.000" (lumberjack.v2 backupName/backupTimeFormat; LocalTime is off).
ROTATED_EXAMPLE_TIME = "2026-12-04T08-00-00.000"
GHIPPO_TAG = "audit_log.ghippo."
KUBE_AUDIT_TAG = "audit_log.k8s."

_CLASSES: dict[str, Callable[[str], bool]] = {
    "alpha": str.isalpha, "digit": str.isdigit, "alnum": str.isalnum, "upper": str.isupper, "lower": str.islower,
    "space": str.isspace, "punct": lambda c: c.isprintable() and not c.isalnum() and not c.isspace(),
    "xdigit": lambda c: c in "0123456789abcdefABCDEF", "blank": lambda c: c in " \t", "print": str.isprintable,
    "graph": lambda c: c.isprintable() and c != " ", "cntrl": lambda c: ord(c) < 32 or ord(c) == 127}


def _bracket(pat: str, i: int) -> tuple[str, int] | None:
    """The regex class for the bracket expression starting at pat[i] == '[', and the index after it."""
    j = i + 1
    negate = j < len(pat) and pat[j] in "!^"
    if negate:
        j += 1
    items: list[str] = []
    first = True
    while j < len(pat) and (pat[j] != "]" or first):
        first = False
        if pat.startswith("[:", j):
            end = pat.find(":]", j + 2)
            name = pat[j + 2:end] if end > 0 else ""
            if name in _CLASSES:
                chars = "".join(chr(c) for c in range(1, 256) if _CLASSES[name](chr(c)))
                items.append(re.escape(chars))
                j = end + 2
                continue
        c = pat[j]
        if c == "\\" and j + 1 < len(pat):
            j += 1
            c = pat[j]
        if j + 2 < len(pat) and pat[j + 1] == "-" and pat[j + 2] != "]":
            hi = pat[j + 2]
            if hi == "\\" and j + 3 < len(pat):
                hi = pat[j + 3]
                j += 1
            if c <= hi:
                items.append(f"{re.escape(c)}-{re.escape(hi)}")
            j += 3
            continue
        items.append(re.escape(c))
        j += 1
    if j >= len(pat):
        return None  # no closing ']': the '[' is an ordinary character
    body = "".join(items)
    return (f"[^{body}]" if negate else f"[{body}]"), j + 1


def _regex(pat: str, slash_is_special: bool) -> str:
    any_char = "[^/]" if slash_is_special else "."
    out, i = [], 0
    while i < len(pat):
        c = pat[i]
        if c == "*":
            out.append(any_char + "*")
        elif c == "?":
            out.append(any_char)
        elif c == "[":
            found = _bracket(pat, i)
            if found:
                out.append(found[0])
                i = found[1]
                continue
            out.append(re.escape(c))
        elif c == "\\" and i + 1 < len(pat):
            i += 1
            out.append(re.escape(pat[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _component_matches(pat: str, name: str) -> bool:
    # FNM_PERIOD, as glob(3) matches each directory entry: a leading '.' only by a literal '.'.
    if name.startswith(".") and not (pat.startswith(".") or pat.startswith("\\.")):
        return False
    return re.fullmatch(_regex(pat, True), name, re.S) is not None


def glob_matches(pattern: str, path: str) -> bool:
    """Whether glob(3) expanding `pattern` would list the existing file `path` (both absolute)."""
    if not pattern.startswith("/") or not path.startswith("/"):
        return False  # relative, or `~` (GLOB_TILDE: the container's home), never our absolute host path
    pats = [p for p in pattern.split("/") if p]
    names = [n for n in path.split("/") if n]
    return len(pats) == len(names) and all(_component_matches(p, n) for p, n in zip(pats, names, strict=True))


def fnmatch0(pattern: str, path: str) -> bool:
    """fnmatch(3) with flags 0, as Exclude_Path is applied: `*` crosses '/', no escaping off, no period rule."""
    return re.fullmatch(_regex(pattern, False), path, re.S) is not None


def rotated_name(host_log_path: str) -> str:
    """The name lumberjack gives the log once rotated: `<base>-<time><ext>` in the same directory."""
    directory, name = posixpath.split(host_log_path)
    base, ext = posixpath.splitext(name)
    return posixpath.join(directory, f"{base}-{ROTATED_EXAMPLE_TIME}{ext}")


@dataclass(frozen=True)
class Input:
    """One `[INPUT]` section (keys lower-cased, as FluentBit compares them)."""

    props: tuple[tuple[str, str], ...]
    source: str
    """The ConfigMap key it was read from."""

    def get(self, key: str) -> str:
        return next((v for k, v in self.props if k == key.lower()), "")

    @property
    def tag(self) -> str:
        return self.get("tag")

    @property
    def paths(self) -> list[str]:
        return [p.strip() for p in self.get("path").split(",") if p.strip()]

    def reads(self, file: str) -> bool:
        """A tail input that lists `file` and does not exclude it."""
        if self.get("name").lower() != "tail":
            return False
        excludes = [p.strip() for p in self.get("exclude_path").split(",") if p.strip()]
        return any(glob_matches(p, file) for p in self.paths) and not any(fnmatch0(e, file) for e in excludes)

    def describe(self) -> str:
        return f"[INPUT] Tag {self.tag or '(none)'} Path {self.get('path') or '(none)'} (in {self.source})"


def parse_inputs(text: str, source: str) -> list[Input]:
    """The `[INPUT]` sections of one classic-format config file."""
    inputs: list[Input] = []
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            if current is not None:
                inputs.append(Input(tuple(current), source))
            current = [] if line[1:-1].strip().upper() == "INPUT" else None
            continue
        if current is not None and not line.startswith("@"):
            key, _, value = line.partition(" ")
            current.append((key.lower(), value.strip()))
    if current is not None:
        inputs.append(Input(tuple(current), source))
    return inputs


def configmap_inputs(data: Mapping[str, str]) -> list[Input]:
    """Every `[INPUT]` in every file of the ConfigMap (a main file `@INCLUDE`s the others from the same mount)."""
    return [i for key in sorted(data) for i in parse_inputs(str(data[key]), key)]


@dataclass(frozen=True)
class Collection:
    """What the rendered config collects, against what the stack wants."""

    kube_audit: tuple[Input, ...]
    """Tail inputs that read our log file and its rotated name."""
    ghippo: tuple[Input, ...]
    """Inputs tagged `audit_log.ghippo.*`."""


def collection(inputs: Iterable[Input], host_log_path: str) -> Collection:
    inputs = list(inputs)
    rotated = rotated_name(host_log_path)
    return Collection(
        kube_audit=tuple(i for i in inputs if i.reads(host_log_path) and i.reads(rotated)),
        ghippo=tuple(i for i in inputs if i.tag.startswith(GHIPPO_TAG)))


def collection_problems(found: Collection, host_log_path: str, want_kube_audit: bool, want_ghippo: bool,
                        where: str) -> list[str]:
    """Plain reasons why the rendered config does not collect what the stack says; empty when it does."""
    problems = []
    if want_kube_audit and not found.kube_audit:
        problems.append(f"{where}: no tail [INPUT] whose Path reads {host_log_path} (and its rotated "
                        f"{posixpath.basename(rotated_name(host_log_path))}); the audit log would not be collected")
    if not want_kube_audit and found.kube_audit:
        problems.append(f"{where}: {found.kube_audit[0].describe()} still reads {host_log_path}, but audit is off")
    if want_ghippo and not found.ghippo:
        problems.append(f"{where}: no [INPUT] tagged {GHIPPO_TAG}* (global-management audit), but "
                        "insightAgent.collectGlobalManagementAudit is true")
    if not want_ghippo and found.ghippo:
        problems.append(f"{where}: {found.ghippo[0].describe()} collects global-management audit, but "
                        "insightAgent.collectGlobalManagementAudit is false")
    return problems


def kube_audit_globs(inputs: Iterable[Input]) -> list[str]:
    """The Path globs of the inputs tagged `audit_log.k8s.*`, the agent's kube-audit input."""
    return [p for i in inputs if i.tag.startswith(KUBE_AUDIT_TAG) for p in i.paths]

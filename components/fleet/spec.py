"""The fleet file (a small YAML: stacks, waves, parallelism), stack selection and `--shard i/n`.

Example (docs/fleet.md)::

    stacks:
      - dce-global                        # a stack name, or a glob over the backend's stacks
      - name: team-a
        configFile: clusters/Pulumi.team-a.yaml
      - team-*
    waves:                                # canary first; every selected stack in exactly one wave
      - [dce-global]
      - [team-*]
    parallel: 4                           # stacks at once (default: the CPU count)
    policyPack: policies/guardrails       # the PR guardrail pack (null: none)
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_POLICY_PACK = "policies/guardrails"
# Pulumi stack names: letters, digits, `-`, `_`, `.` (a glob adds `*?[]`).
_NAME = re.compile(r"^[A-Za-z0-9_.\-*?\[\]]+$")
WAVE_TAG = "kube-audit:wave"


class FleetError(Exception):
    """A fleet file, selection or shard that cannot be used; the message names file, key and line."""


class _Model(BaseModel):
    # Unknown keys refused: a misspelled `wave:` would otherwise roll out everything at once.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class StackEntry(_Model):
    name: str = Field(min_length=1)
    config_file: str | None = Field(default=None, alias="configFile", min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"{v!r} is not a stack name or glob (letters, digits, - _ . and * ? [ ])")
        return v


class FleetFile(_Model):
    stacks: list[str | StackEntry] = Field(min_length=1)
    waves: list[list[str]] | None = None
    parallel: int | None = Field(default=None, ge=1, le=256)
    policy_pack: str | None = Field(default=DEFAULT_POLICY_PACK, alias="policyPack")
    policy_pack_config: str | None = Field(default=None, alias="policyPackConfig")


@dataclass(frozen=True)
class StackRef:
    """One selected stack: its name and, if not Pulumi.<name>.yaml in the project, its config file."""

    name: str
    config_file: str | None = None


@dataclass(frozen=True)
class Fleet:
    """The stacks to work on, in waves (canary first), and how many at once."""

    waves: tuple[tuple[StackRef, ...], ...]
    parallel: int | None = None
    policy_pack: str | None = DEFAULT_POLICY_PACK
    policy_pack_config: str | None = None
    source: str = "(command line)"
    tags_used: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stacks(self) -> list[StackRef]:
        return [s for wave in self.waves for s in wave]

    def wave_of(self, name: str) -> int:
        return next(i for i, wave in enumerate(self.waves) if any(s.name == name for s in wave))


# -- reading the file, with lines ----------------------------------------------------------------

def _line_of(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the node at `loc` (a pydantic error location), as deep as it exists."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if part in _MEMBERS:
            continue  # a union member's name: not a YAML level
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if nxt is None:  # an unknown key: point at the key itself
                key = next((k for k, _v in node.value if getattr(k, "value", None) == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


_MEMBERS = {"str", "StackEntry"}


def _node_at(root: yaml.Node | None, loc: Sequence[int | str]) -> yaml.Node | None:
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return None
    return node


def _wrong_member(root: yaml.Node | None, loc: Sequence[int | str]) -> bool:
    """A union's error for the member the YAML is plainly not (a `str` error for a mapping entry)."""
    for i, part in enumerate(loc):
        if part in _MEMBERS:
            node = _node_at(root, loc[:i])
            return (part == "str") == isinstance(node, yaml.MappingNode)
    return False


def _key(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _MEMBERS:
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def parse_fleet_file(text: str, source: str) -> FleetFile:
    """The validated fleet file; FleetError names `source`, the key and its line for every problem."""
    try:
        root = yaml.compose(text)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise FleetError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(doc, dict):
        raise FleetError(f"{source}: expected a mapping with `stacks` (and optionally waves, parallel, policyPack)")
    try:
        return FleetFile.model_validate(doc)
    except ValidationError as exc:
        problems = []
        seen: set[str] = set()
        for err in exc.errors():
            if _wrong_member(root, err["loc"]):
                continue
            key, line = _key(err["loc"]), _line_of(root, err["loc"])
            msg = f"{source}:{line}: {key}: {err['msg']}"
            if key not in seen:  # a union reports each member: the first says enough
                problems.append(msg)
                seen.add(key)
        raise FleetError("invalid fleet file:\n" + "\n".join(problems)) from None


def _lines_of_list(text: str, key: str) -> list[int]:
    """The line of each item of the top-level list `key` (for errors found after validation)."""
    root = yaml.compose(text)
    for k, v in root.value if isinstance(root, yaml.MappingNode) else []:
        if k.value == key and isinstance(v, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in v.value]
    return []


# -- selection -------------------------------------------------------------------------------------

def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def select(patterns: Iterable[str], available: Sequence[str], source: str = "the command line",
           lines: Sequence[int] = ()) -> list[str]:
    """Stack names matching `patterns` (names or globs) in the order given; each name at most once.

    A plain name must exist in `available`; a glob must match at least one, so a typo never
    silently shrinks the fleet.
    """
    out: list[str] = []
    for i, pattern in enumerate(patterns):
        where = f"{source}:{lines[i]}" if i < len(lines) else source
        if _is_glob(pattern):
            matched = [n for n in sorted(available) if fnmatch.fnmatchcase(n, pattern)]
            if not matched:
                raise FleetError(f"{where}: the glob {pattern!r} matches no stack in the backend "
                                 f"(stacks: {', '.join(sorted(available)) or 'none'})")
        elif pattern not in available:
            raise FleetError(f"{where}: no stack named {pattern!r} in the backend "
                             f"(stacks: {', '.join(sorted(available)) or 'none'})")
        else:
            matched = [pattern]
        out += [n for n in matched if n not in out]
    return out


def build_fleet(spec: FleetFile | None, text: str, source: str, names: Sequence[str], available: Sequence[str],
                tags: dict[str, dict[str, str]] | None = None) -> Fleet:
    """The fleet from a fleet file and/or names and globs on the command line.

    Waves: the file's `waves`; else the stacks' `kube-audit:wave` tags (an integer; untagged stacks go
    last); else one wave.
    """
    entries: list[tuple[str, str | None]] = []
    if spec is not None:
        lines = _lines_of_list(text, "stacks")
        for i, item in enumerate(spec.stacks):
            name, config = (item, None) if isinstance(item, str) else (item.name, item.config_file)
            if config is not None and _is_glob(name):
                raise FleetError(f"{source}:{lines[i] if i < len(lines) else '?'}: stacks[{i}].configFile: "
                                 f"a config file belongs to one stack, not to the glob {name!r}")
            if config is not None and not Path(config).is_absolute():
                config = str(Path(source).parent / config)  # relative to the fleet file, as a reader expects
            for n in select([name], available, source, lines[i:i + 1]):
                entries.append((n, config))
    entries += [(n, None) for n in select(names, available)] if names else []
    refs: dict[str, StackRef] = {}
    for n, config in entries:
        if n in refs and refs[n].config_file not in (None, config) and config is not None:
            raise FleetError(f"{source}: stack {n!r} is listed twice with different config files")
        if n not in refs or config is not None:
            refs[n] = StackRef(n, config)
    if not refs:
        raise FleetError("no stacks selected: give stack names or globs, or --file FLEET.yaml")
    common = {"parallel": spec.parallel if spec else None,
              "policy_pack": spec.policy_pack if spec else DEFAULT_POLICY_PACK,
              "policy_pack_config": spec.policy_pack_config if spec else None,
              "source": source if spec else "(command line)"}
    if spec is not None and spec.waves is not None:
        return Fleet(_file_waves(spec.waves, refs, text, source), **common)  # type: ignore[arg-type]
    if tags:
        return Fleet(tag_waves(refs, tags), tags_used=True, **common)  # type: ignore[arg-type]
    return Fleet((tuple(refs.values()),), **common)  # type: ignore[arg-type]


def _file_waves(waves: list[list[str]], refs: dict[str, StackRef], text: str, source: str) -> tuple[
        tuple[StackRef, ...], ...]:
    lines = _lines_of_list(text, "waves")
    placed: dict[str, int] = {}
    out: list[tuple[StackRef, ...]] = []
    for i, wave in enumerate(waves):
        where = f"{source}:{lines[i] if i < len(lines) else '?'}: waves[{i}]"
        if not wave:
            raise FleetError(f"{where}: an empty wave")
        names = []
        for pattern in wave:
            matched = [n for n in refs if fnmatch.fnmatchcase(n, pattern)]
            if not matched:
                raise FleetError(f"{where}: {pattern!r} is not one of the fleet's stacks ({', '.join(refs)})")
            for n in matched:
                if n in placed:
                    raise FleetError(f"{where}: stack {n!r} is already in waves[{placed[n]}]; each stack belongs "
                                     "to exactly one wave")
                placed[n] = i
                names.append(n)
        out.append(tuple(refs[n] for n in names))
    missing = [n for n in refs if n not in placed]
    if missing:
        raise FleetError(f"{source}:{lines[0] if lines else '?'}: waves: stack(s) {', '.join(missing)} are in no wave; "
                         "add them to one (a stack left out would never be rolled out)")
    return tuple(out)


def tag_waves(refs: dict[str, StackRef], tags: dict[str, dict[str, str]]) -> tuple[tuple[StackRef, ...], ...]:
    """Waves from each stack's `kube-audit:wave` tag, ascending; untagged stacks form the last wave."""
    numbered: dict[int, list[StackRef]] = {}
    untagged: list[StackRef] = []
    for ref in refs.values():
        value = (tags.get(ref.name) or {}).get(WAVE_TAG)
        if value is None:
            untagged.append(ref)
            continue
        try:
            numbered.setdefault(int(value), []).append(ref)
        except ValueError:
            raise FleetError(f"stack {ref.name}: tag {WAVE_TAG}={value!r} is not an integer wave number") from None
    waves = [tuple(numbered[k]) for k in sorted(numbered)]
    return tuple(waves + ([tuple(untagged)] if untagged else []))


def load_fleet_file(path: Path) -> tuple[FleetFile, str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise FleetError(f"{path}: cannot read the fleet file ({exc.strerror or exc})") from None
    return parse_fleet_file(text, str(path)), text


# -- shards ------------------------------------------------------------------------------------------

def parse_shard(value: str) -> tuple[int, int]:
    """`i/n` with 1 <= i <= n."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise FleetError(f"--shard {value!r}: expected i/n with 1 <= i <= n, e.g. 2/4")
    return int(m.group(1)), int(m.group(2))


def shard_of(name: str, n: int) -> int:
    """The 1-based shard of stack `name` among `n`: sha256 of the name, so every runner agrees without
    talking to the others, and adding a stack never moves another one."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % n + 1


def shard(fleet: Fleet, i: int, n: int) -> Fleet:
    """This shard's stacks, waves kept (a wave may be empty in one shard)."""
    waves = tuple(tuple(s for s in wave if shard_of(s.name, n) == i) for wave in fleet.waves)
    return Fleet(waves, fleet.parallel, fleet.policy_pack, fleet.policy_pack_config, fleet.source, fleet.tags_used)

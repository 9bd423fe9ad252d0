"""Representatives and bitsets: the finite model of the request space used by lint's analysis.

The checker only compares request fields with literals of the policy, so for a few rules every
request is equivalent to one built from their literals plus a fresh value per dimension
(``OTHER_*``). A rule's request set becomes bitsets over these representatives (``RuleSet``),
and set containment is bitset containment. Names that no rule tells apart collapse into one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .builtins import NON_RESOURCE_VERBS, RESOURCE_VERBS
from .evaluator import ANY, NON_RESOURCE, RESOURCE, CompiledRule
from .model import PolicyRule

OTHER_USER = "~other-user"
OTHER_GROUP = "~other-group"
OTHER_NAMESPACE = "~other-namespace"
OTHER_API_GROUP = "other.example.com"
OTHER_RESOURCE = "~otherresources"
OTHER_SUBRESOURCE = "~othersub"
OTHER_NAME = "~other-name"
OTHER_PATH = "/~other"

Target = tuple[str, str, str, str]  # (api group, resource, subresource, name)


def split_entry(entry: str) -> tuple[str, str]:
    """'pods/log' -> ('pods', 'log'); 'pods' -> ('pods', '')."""
    resource, _, sub = entry.partition("/")
    return resource, sub


def name_ok(verb: str, target: Target) -> bool:
    """Whether the apiserver can produce ``verb`` on ``target`` (requestinfo.go)."""
    _, _, sub, name = target
    if verb in ("get", "delete"):
        return name != ""  # without a name they become list/watch and deletecollection
    if verb == "deletecollection":
        return name == "" and sub == ""
    return True


@dataclass(frozen=True)
class Domain:
    """Representative values of every request dimension for a few rules."""

    users: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]  # a request's group list: none, each literal, other
    namespaces: tuple[str, ...]
    targets: tuple[Target, ...]
    paths: tuple[str, ...]
    feasible: tuple[int, ...] = ()  # per resource verb: targets that verb can be produced on


def _name_representatives(lists: Sequence[tuple[str, ...]]) -> set[str]:
    """ "", a fresh name, and one name per distinct combination of lists holding it."""
    holders: dict[str, list[int]] = {}
    for k, names in enumerate(lists):
        for name in names:
            seen = holders.setdefault(name, [])
            if not seen or seen[-1] != k:
                seen.append(k)
    reps: dict[tuple[int, ...], str] = {}
    for name, where in holders.items():
        if name != "":
            reps.setdefault(tuple(where), name)
    return {"", OTHER_NAME, *reps.values()}


def _feasible(targets: tuple[Target, ...]) -> tuple[int, ...]:
    """Per resource verb, the targets it can be produced on (``name_ok``, as bit masks)."""
    named = unnamed = 0
    for i, (_, _, sub, name) in enumerate(targets):
        if name:
            named |= 1 << i
        elif not sub:
            unnamed |= 1 << i
    everything = (1 << len(targets)) - 1
    table = {"get": named, "delete": named, "deletecollection": unnamed}
    return tuple(table.get(verb, everything) for verb in RESOURCE_VERBS)


def _targets(rules: Sequence[PolicyRule]) -> tuple[Target, ...]:
    entries: dict[str, list[tuple[str, ...]]] = {}  # api group -> resources lists
    names_of: dict[str, list[tuple[str, ...]]] = {}  # api group -> resourceNames lists
    for rule in rules:
        for gr in rule.resources:
            entries.setdefault(gr.group, []).append(gr.resources)
            names_of.setdefault(gr.group, []).append(gr.resource_names)
    api_groups = {g for g in entries if g != "*"} | {"", OTHER_API_GROUP}
    targets: list[Target] = []
    for group in sorted(api_groups):
        lists = entries.get(group, []) + entries.get("*", [])
        parts = [split_entry(e) for lst in lists for e in lst]
        resources = {r for r, _ in parts if r and r != "*"} | {OTHER_RESOURCE}
        subs = {s for _, s in parts if s and s != "*" and "/" not in s} | {"", OTHER_SUBRESOURCE}
        names = _name_representatives(names_of.get(group, []) + names_of.get("*", []))
        for resource in sorted(resources):
            for sub in sorted(subs):
                for name in sorted(names):
                    if sub and not name:
                        continue  # a subresource always comes with a name
                    targets.append((group, resource, sub, name))
    return tuple(targets)


def _paths(rules: Sequence[PolicyRule]) -> tuple[str, ...]:
    paths = {OTHER_PATH}
    for rule in rules:
        for spec in rule.non_resource_urls:
            if spec == "*":
                continue
            if spec.endswith("*"):
                prefix = spec.rstrip("*")
                paths |= {prefix, prefix + "~x"}
            else:
                paths.add(spec)
    return tuple(sorted(paths))


def build_domain(rules: Sequence[PolicyRule]) -> Domain:
    """Representatives for every dimension of ``rules``."""
    users = {u for r in rules for u in r.users} | {OTHER_USER}
    groups = {g for r in rules for g in r.user_groups} | {OTHER_GROUP}
    namespaces = {n for r in rules for n in r.namespaces} | {"", OTHER_NAMESPACE}
    targets = _targets(rules)
    return Domain(
        users=tuple(sorted(users)),
        groups=((), *((g,) for g in sorted(groups))),
        namespaces=tuple(sorted(namespaces)),
        targets=targets,
        paths=_paths(rules),
        feasible=_feasible(targets),
    )


def _bits(flags: Iterable[bool]) -> int:
    """Bit i set when flag i is true."""
    text = "".join("1" if flag else "0" for flag in flags)
    return int(text[::-1], 2) if text else 0


@dataclass(frozen=True)
class RuleSet:
    """The requests one rule matches, as bitsets over a Domain's representatives.

    The rule's request set is users x groups x (namespaces x verb_targets  +  verb_paths).
    """

    users: int
    groups: int
    namespaces: int
    verb_targets: int  # bit v * len(targets) + t: resource request verb v on target t
    verb_paths: int  # bit v * len(paths) + p: non-resource request verb v on path p

    @property
    def empty(self) -> bool:
        """No request at all can match."""
        return self.verb_targets == 0 and self.verb_paths == 0

    def within(self, other: RuleSet) -> bool:
        """Every request matched by self is matched by other."""
        if self.empty:
            return True
        if self.users & ~other.users or self.groups & ~other.groups:
            return False
        if self.verb_targets and (self.namespaces & ~other.namespaces or self.verb_targets & ~other.verb_targets):
            return False
        return not self.verb_paths & ~other.verb_paths


def rule_set(rule: CompiledRule, d: Domain) -> RuleSet:
    """The RuleSet of a compiled rule over domain ``d``."""
    users = _bits(rule.users is None or u in rule.users for u in d.users)
    groups = _bits(rule.groups is None or not rule.groups.isdisjoint(g) for g in d.groups)
    namespaces = _bits(rule.namespaces is None or n in rule.namespaces for n in d.namespaces)
    verb_targets = verb_paths = 0
    if rule.branch in (ANY, RESOURCE):
        match = rule.resources
        width = len(d.targets)
        hits = (1 << width) - 1 if match is None else _bits(match(*t) for t in d.targets)
        for i, verb in enumerate(RESOURCE_VERBS):
            if rule.verbs is None or verb in rule.verbs:
                verb_targets |= (hits & d.feasible[i]) << (i * width)
    if rule.branch in (ANY, NON_RESOURCE):
        match_path = rule.paths
        paths = _bits(match_path is None or match_path(p) for p in d.paths)
        for i, verb in enumerate(NON_RESOURCE_VERBS):
            if rule.verbs is None or verb in rule.verbs:
                verb_paths |= paths << (i * len(d.paths))
    return RuleSet(users, groups, namespaces, verb_targets, verb_paths)

"""Set reasoning about rules for lint: which requests a rule can match, and which rule wins.

Exact answers come from the finite model in domain.py (literals of the rules involved plus a fresh
value per dimension). Two modelling facts from requestinfo.go: verbs are a closed set (``GET`` in
a policy matches nothing), and get/delete always carry a name, deletecollection never does, a
subresource implies a name.

Scaling: a domain built from *all* rules at once grows with the rule count, and comparing every
pair of rules over it made lint cubic. Here a domain is built only for the two rules being
compared, and inverted indexes (one bitmask of rules per literal) leave only the few earlier
rules that could possibly cover a rule for that exact comparison. "Which requests does rule i
capture first" is a witness search instead of an enumeration: a fresh value is matched by fewer
rules than any literal, so each dimension's candidates are only rule i's own literals (or one
fresh value).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import product
from typing import TypeVar

from .builtins import NON_RESOURCE_VERBS, RESOURCE_VERBS
from .domain import (
    OTHER_API_GROUP,
    OTHER_NAME,
    OTHER_NAMESPACE,
    OTHER_RESOURCE,
    OTHER_SUBRESOURCE,
    build_domain,
    name_ok,
    rule_set,
    split_entry,
)
from .evaluator import NON_RESOURCE, RESOURCE, CompiledRule, compile_policy, compile_resources
from .model import Policy, PolicyRule

# Verbs that accept a request with or without a name, on any target: their presence makes a
# resources entry certainly matchable.
_ANY_NAME_VERBS = frozenset({"list", "watch", "create", "update", "patch", "proxy"})
T = TypeVar("T")

__all__ = [
    "OTHER_API_GROUP",
    "OTHER_NAMESPACE",
    "OTHER_RESOURCE",
    "OTHER_SUBRESOURCE",
    "Analysis",
    "name_ok",
]


@dataclass(frozen=True)
class _Own:
    """What one rule alone can match: used to prune and to report."""

    empty: bool
    resource_part: bool  # some resource request matches
    path_part: bool  # some non-resource request matches
    verbs: frozenset[str]  # verbs of the requests it can match


def _own(rule: PolicyRule, compiled: CompiledRule) -> _Own:
    d = build_domain([rule])
    s = rule_set(compiled, d)
    width, pwidth = len(d.targets), len(d.paths)
    mask, pmask = (1 << width) - 1, (1 << pwidth) - 1
    verbs = {v for i, v in enumerate(RESOURCE_VERBS) if (s.verb_targets >> (i * width)) & mask}
    verbs |= {v for i, v in enumerate(NON_RESOURCE_VERBS) if (s.verb_paths >> (i * pwidth)) & pmask}
    return _Own(s.empty, s.verb_targets != 0, s.verb_paths != 0, frozenset(verbs))


class _Index:
    """Inverted indexes: for each literal, the bitmask of rules whose condition admits it."""

    def __init__(self, rules: Sequence[PolicyRule], compiled: Sequence[CompiledRule]) -> None:
        self.any_users = self.any_groups = self.any_verbs = self.any_namespaces = 0
        self.users: dict[str, int] = {}
        self.groups: dict[str, int] = {}
        self.verbs: dict[str, int] = {}
        self.namespaces: dict[str, int] = {}
        self.resource_branch = self.path_branch = 0
        # Resources (an over-approximation): "named" tables also hold entries restricted by
        # resourceNames, which can only cover entries that are themselves restricted.
        self.no_resources = self.star_group = 0  # no resources condition / some group "*" entry
        self.whole: dict[bool, dict[str, int]] = {False: {}, True: {}}  # whole group or "*" in it
        self.base: dict[bool, dict[tuple[str, str], int]] = {False: {}, True: {}}  # r, r/x or r/*
        self.sub_wild: dict[bool, dict[tuple[str, str], int]] = {False: {}, True: {}}  # */s
        # Paths.
        self.any_path = 0  # no path condition, or "*"
        self.exact_paths: dict[str, int] = {}
        self.prefixes: dict[str, int] = {}
        self.names: dict[str, int] = {}  # resourceNames literal -> rules listing it
        for j, (rule, c) in enumerate(zip(rules, compiled, strict=True)):
            bit = 1 << j
            self.any_users |= self._add(self.users, rule.users, bit)
            self.any_groups |= self._add(self.groups, rule.user_groups, bit)
            self.any_verbs |= self._add(self.verbs, rule.verbs, bit)
            self.any_namespaces |= self._add(self.namespaces, rule.namespaces, bit)
            if c.branch != NON_RESOURCE:
                self.resource_branch |= bit
            if c.branch != RESOURCE:
                self.path_branch |= bit
            if not rule.resources:
                self.no_resources |= bit
            for gr in rule.resources:
                for name in gr.resource_names:
                    self.names[name] = self.names.get(name, 0) | bit
                if gr.group == "*":
                    self.star_group |= bit
                tables = (True,) if gr.resource_names else (False, True)
                for named in tables:
                    if not gr.resources or "*" in gr.resources:
                        _or(self.whole[named], gr.group, bit)
                    for entry in gr.resources:
                        resource, sub = split_entry(entry)
                        if resource == "*" and sub:
                            _or(self.sub_wild[named], (gr.group, sub), bit)
                        elif resource != "*":
                            _or(self.base[named], (gr.group, resource), bit)
            if c.branch == NON_RESOURCE:
                for spec in rule.non_resource_urls:
                    if spec == "*":
                        self.any_path |= bit
                    elif spec.endswith("*"):
                        key = spec.rstrip("*")
                        self.prefixes[key] = self.prefixes.get(key, 0) | bit
                    else:
                        self.exact_paths[spec] = self.exact_paths.get(spec, 0) | bit
            else:
                self.any_path |= bit

    @staticmethod
    def _add(table: dict[str, int], values: tuple[str, ...], bit: int) -> int:
        """Index ``values``; returns ``bit`` when the condition is absent (admits anything)."""
        for value in values:
            table[value] = table.get(value, 0) | bit
        return 0 if values else bit

    @staticmethod
    def covering(any_mask: int, table: dict[str, int], values: Iterable[str], full: int) -> int:
        """Rules whose condition admits every one of ``values`` (all of them when ``values`` is None)."""
        mask = full
        for value in values:
            mask &= table.get(value, 0)
            if not mask:
                break
        return any_mask | mask

    def entry_cover(self, group: str, entry: str, named: bool) -> int:
        """Rules that might match every request of one resources entry (never misses one).

        ``named``: the entry is restricted by resourceNames (else it matches fresh names, which
        no names-restricted entry matches).
        """
        base = self.no_resources | self.star_group | self.whole[named].get(group, 0)
        resource, sub = split_entry(entry)
        if resource == "*":
            return base | (self.sub_wild[named].get((group, sub), 0) if sub and sub != "*" else 0)
        mask = base | self.base[named].get((group, resource), 0)
        if sub and sub != "*":
            mask |= self.sub_wild[named].get((group, sub), 0)
        return mask

    def path_cover(self, spec: str) -> int:
        """Rules that might match every path ``spec`` matches."""
        mask = self.any_path
        if spec == "*":
            spec = "/*"  # every request path starts with "/", so "/*" matches all of them too
        if not spec.endswith("*"):
            mask |= self.exact_paths.get(spec, 0)
        stem = spec.rstrip("*")
        for k in range(len(stem) + 1):
            mask |= self.prefixes.get(stem[:k], 0)
        return mask


def _entry_facts(rule: PolicyRule, names: tuple[str, ...], entry: str) -> tuple[bool, bool]:
    """(certainly matches some request, can match a request with a name no rule lists).

    Only used to prune, so "not certain" is always a safe answer.
    """
    resource, sub = split_entry(entry)
    if not resource or "/" in sub or entry.endswith("/") or (resource == "*" and sub == "*"):
        return False, False  # "", "/x", "x/", "a/b/c", "*/*" match nothing
    verbs = set(rule.verbs) if rule.verbs else set(RESOURCE_VERBS)
    needs_name = sub not in ("", "*")  # a subresource request always carries a name
    named_verbs = verbs & (_ANY_NAME_VERBS | {"get", "delete"})
    live = bool(named_verbs) and (not names or any(names))
    if not needs_name and not live:
        # Requests without a name: list/watch/create/... or deletecollection.
        unnamed_verbs = verbs & (_ANY_NAME_VERBS | {"deletecollection"})
        live = bool(unnamed_verbs) and (not names or "" in names)
    return live, live and not names and bool(named_verbs)


class Analysis:
    """Per-rule facts and indexes for one policy; pair comparisons on demand."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.rules = policy.rules
        self.compiled = compile_policy(policy).rules
        self.own = tuple(_own(r, c) for r, c in zip(self.rules, self.compiled, strict=True))
        self.index = _Index(self.rules, self.compiled)
        self._full = (1 << len(self.rules)) - 1

    def empty(self, index: int) -> bool:
        """No request can match rule ``index``."""
        return self.own[index].empty

    def _candidates(self, index: int) -> int:
        """Earlier rules that pass every necessary condition for covering rule ``index``."""
        rule, own, ix, full = self.rules[index], self.own[index], self.index, self._full
        mask = full & ((1 << index) - 1)
        mask &= ix.covering(ix.any_users, ix.users, rule.users, full) if rule.users else ix.any_users
        mask &= ix.covering(ix.any_groups, ix.groups, rule.user_groups, full) if rule.user_groups else ix.any_groups
        mask &= ix.covering(ix.any_verbs, ix.verbs, own.verbs, full)
        if own.resource_part and mask:
            mask &= ix.resource_branch
            if rule.namespaces:
                mask &= ix.covering(ix.any_namespaces, ix.namespaces, rule.namespaces, full)
            else:
                mask &= ix.any_namespaces
            if not rule.resources:
                mask &= ix.no_resources | ix.star_group
            for gr in rule.resources:
                if gr.group == "*":
                    mask &= ix.no_resources | ix.star_group
                elif not gr.resources:
                    live, fresh = _entry_facts(rule, (), "*")
                    if live:
                        mask &= ix.no_resources | ix.star_group | ix.whole[not fresh].get(gr.group, 0)
                else:
                    for entry in gr.resources:
                        live, fresh = _entry_facts(rule, gr.resource_names, entry)
                        if live:
                            mask &= ix.entry_cover(gr.group, entry, not fresh)
        if own.path_part and mask:
            mask &= ix.path_branch
            for spec in rule.non_resource_urls:
                mask &= ix.path_cover(spec)
        return mask

    def covers(self, earlier: int, index: int) -> bool:
        """Every request rule ``index`` can match is matched by rule ``earlier`` (exact)."""
        d = build_domain([self.rules[index], self.rules[earlier]])
        return rule_set(self.compiled[index], d).within(rule_set(self.compiled[earlier], d))

    def shadowing_rule(self, index: int) -> int | None:
        """The first earlier rule that matches every request rule ``index`` can match."""
        if self.own[index].empty:
            return None
        mask = self._candidates(index)
        while mask:
            low = mask & -mask
            earlier = low.bit_length() - 1
            if self.covers(earlier, index):
                return earlier
            mask ^= low
        return None

    # -- first-match witnesses ------------------------------------------------------------------

    def captures(
        self,
        index: int,
        verb: str,
        target: tuple[str, str, str],
        *,
        namespaces: tuple[str, ...] | None = None,
        user_groups: tuple[str, ...] | None = None,
    ) -> bool:
        """Whether rule ``index`` is the first match of some ``verb`` request on ``target``.

        ``namespaces``: the namespaces such a request can carry (None: any; ``OTHER_NAMESPACE``
        stands for every namespace no rule names); ``user_groups``: only requests from users in
        one of these groups. A fresh value is matched by fewer rules than any literal, so each
        dimension's candidates are the rule's own literals or one fresh value.
        """
        rule, c, ix = self.rules[index], self.compiled[index], self.index
        if (c.verbs is not None and verb not in c.verbs) or c.branch == NON_RESOURCE:
            return False
        earlier = ((1 << index) - 1) & ix.resource_branch & (ix.any_verbs | ix.verbs.get(verb, 0))
        users = {ix.any_users | ix.users.get(u, 0) for u in rule.users} or {ix.any_users}
        wanted = rule.user_groups
        if user_groups is not None:
            wanted = tuple(g for g in user_groups if c.groups is None or g in c.groups)
            if not wanted:
                return False
        groups = {ix.any_groups | ix.groups.get(g, 0) for g in wanted} or {ix.any_groups}
        spaces = {ix.any_namespaces | ix.namespaces.get(n, 0) for n in _namespaces(rule, namespaces)}
        names = self._names(index, verb, target, earlier)
        if not spaces or not names:
            return False
        reach = earlier & _union(users) & _union(groups) & _union(spaces)
        group, resource, sub = target
        with_resources = [j for j in _bits_of(reach & ~ix.no_resources)]
        name_masks = set()
        for name in names:
            mask = reach & ix.no_resources
            for j in with_resources:
                if self.compiled[j].resources(group, resource, sub, name):  # type: ignore[misc]
                    mask |= 1 << j
            name_masks.add(mask)
        return any(not reach & mu & mg & mn & mr for mu, mg, mn, mr in product(users, groups, spaces, name_masks))

    def _names(self, index: int, verb: str, target: tuple[str, str, str], earlier: int) -> list[str]:
        """Names a ``verb`` request on ``target`` that rule ``index`` matches can carry.

        Names no earlier rule lists are alike for the earlier rules: one of them stands for all.
        """
        rule, c = self.rules[index], self.compiled[index]
        group, resource, sub = target
        pool: set[str] = {OTHER_NAME, ""}
        if rule.resources:
            listed: set[str] = set()
            unrestricted = False
            for gr in rule.resources:
                if gr.group in (group, "*") and gr.resources:
                    probe = compile_resources((replace(gr, resource_names=()),))
                    if probe(group, resource, sub, OTHER_NAME):
                        if gr.resource_names:
                            listed.update(gr.resource_names)
                        else:
                            unrestricted = True
                elif gr.group in (group, "*"):
                    unrestricted = True
            if not unrestricted:
                fresh = [n for n in listed if n and not self.index.names.get(n, 0) & earlier]
                pool = {n for n in listed if not n or self.index.names.get(n, 0) & earlier} | set(fresh[:1])
        return [
            n
            for n in sorted(pool)
            if name_ok(verb, (group, resource, sub, n))
            and (sub == "" or n != "")
            and (c.resources is None or c.resources(group, resource, sub, n))
        ]


def _namespaces(rule: PolicyRule, allowed: tuple[str, ...] | None) -> list[str]:
    """Namespace candidates: the rule's own, within ``allowed``; else a fresh one (or ``allowed``)."""
    if allowed is None:
        return list(rule.namespaces) or [OTHER_NAMESPACE]
    if rule.namespaces:
        return [n for n in rule.namespaces if n in allowed or (n != "" and OTHER_NAMESPACE in allowed)]
    return list(allowed)


def _union(masks: Iterable[int]) -> int:
    out = 0
    for mask in masks:
        out |= mask
    return out


def _or(table: dict[T, int], key: T, bit: int) -> None:
    table[key] = table.get(key, 0) | bit


def _bits_of(mask: int) -> list[int]:
    """Indexes of the set bits of ``mask``, ascending."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out

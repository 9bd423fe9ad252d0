"""Test oracle: the previous, global-domain lint analysis (exact but cubic), kept to check the fast one.

Set reasoning about rules for lint: which requests a rule can match, and which rule wins.

The checker only ever compares request fields with the literals written in the policy (equality,
``*`` forms, path prefixes). So the infinite request space splits into finitely many classes, each
represented by one concrete value per dimension: every literal of the policy plus a fresh value
that equals none of them (``OTHER_*``). Evaluating the real compiled rules on these representatives
gives exact answers, with two modelling choices, both from requestinfo.go:

* verbs are a closed set (the apiserver only produces the verbs in ``builtins``), so ``GET`` in a
  policy matches nothing;
* get and delete always carry a name, deletecollection never does, and a subresource implies a
  name. list and watch *can* carry one (``fieldSelector=metadata.name=x``), and so can create on a
  subresource (``pods/x/eviction``): only deletecollection can never match ``resourceNames``.

Each rule becomes bitsets over the representatives (``RuleSet``); containment of bitsets is
containment of request sets.

The vocabulary of the model (the ``OTHER_*`` values, ``Target``, which verb can carry a name) is
imported from components/policy/domain.py, so both sides model the same request space; the
algorithm (one domain for the whole policy, the bitsets, containment) is kept apart on purpose: an
oracle that shared it with the code it checks could not catch a fault in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from components.policy.builtins import NON_RESOURCE_VERBS, RESOURCE_VERBS
from components.policy.domain import (
    OTHER_API_GROUP,
    OTHER_GROUP,
    OTHER_NAME,
    OTHER_NAMESPACE,
    OTHER_PATH,
    OTHER_RESOURCE,
    OTHER_SUBRESOURCE,
    OTHER_USER,
    Target,
)
from components.policy.domain import name_ok as _name_ok
from components.policy.domain import split_entry as _split
from components.policy.evaluator import ANY, NON_RESOURCE, RESOURCE, CompiledRule, Request, compile_policy
from components.policy.model import Policy

from .strategies import resource_request

# The sensitive targets the old lint enumerated (kept so its domain is unchanged).
SENSITIVE = (
    ("", "secrets", ""),
    ("", "configmaps", ""),
    ("", "serviceaccounts", "token"),
    ("authentication.k8s.io", "tokenreviews", ""),
)

T = TypeVar("T")


@dataclass(frozen=True)
class Domain:
    """Representative values of every request dimension for one policy."""

    users: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]  # a request's group list: none, each literal, other
    namespaces: tuple[str, ...]
    targets: tuple[Target, ...]
    paths: tuple[str, ...]


def _targets(policy: Policy) -> tuple[Target, ...]:
    entries: dict[str, list[tuple[str, ...]]] = {}  # api group -> (resources, names) per GR
    for rule in policy.rules:
        for gr in rule.resources:
            entries.setdefault(gr.group, []).append(gr.resources)
            entries.setdefault(gr.group + "#names", []).append(gr.resource_names)
    api_groups = {g for g in entries if not g.endswith("#names") and g != "*"}
    api_groups |= {"", OTHER_API_GROUP} | {g for g, _, _ in SENSITIVE}
    targets: list[Target] = []
    for group in sorted(api_groups):
        lists = entries.get(group, []) + entries.get("*", [])
        names_lists = entries.get(group + "#names", []) + entries.get("*#names", [])
        parts = [_split(e) for lst in lists for e in lst]
        resources = {r for r, _ in parts if r and r != "*"} | {OTHER_RESOURCE}
        resources |= {r for g, r, _ in SENSITIVE if g == group}
        subs = {s for _, s in parts if s and s != "*" and "/" not in s}
        subs |= {"", OTHER_SUBRESOURCE} | {s for g, _, s in SENSITIVE if g == group and s}
        names = {n for lst in names_lists for n in lst} | {"", OTHER_NAME}
        for resource in sorted(resources):
            for sub in sorted(subs):
                for name in sorted(names):
                    if sub and not name:
                        continue  # a subresource always comes with a name
                    targets.append((group, resource, sub, name))
    return tuple(targets)


def _paths(policy: Policy) -> tuple[str, ...]:
    paths = {OTHER_PATH}
    for rule in policy.rules:
        for spec in rule.non_resource_urls:
            if spec == "*":
                continue
            if spec.endswith("*"):
                prefix = spec.rstrip("*")
                paths |= {prefix, prefix + "~x"}
            else:
                paths.add(spec)
    return tuple(sorted(paths))


def build_domain(policy: Policy) -> Domain:
    """Representatives for every dimension of ``policy``."""
    users = {u for r in policy.rules for u in r.users} | {OTHER_USER}
    groups = {g for r in policy.rules for g in r.user_groups} | {OTHER_GROUP}
    namespaces = {n for r in policy.rules for n in r.namespaces} | {"", OTHER_NAMESPACE}
    return Domain(
        users=tuple(sorted(users)),
        groups=((), *((g,) for g in sorted(groups))),
        namespaces=tuple(sorted(namespaces)),
        targets=_targets(policy),
        paths=_paths(policy),
    )


# Writes first: "create secrets" is the clearest example of a body that must not be logged.
_EXAMPLE_VERBS = ("create", "update", "patch", "get", "list", "watch", "delete", "deletecollection", "proxy")


def _first(value: str, values: tuple[str, ...]) -> tuple[str, ...]:
    return (value, *(v for v in values if v != value))


def _distinct(values: tuple[T, ...], signature: Callable[[T], list[bool]]) -> list[T]:
    """The first value of each class of values that ``signature`` cannot tell apart."""
    seen: dict[tuple[bool, ...], T] = {}
    for value in values:
        seen.setdefault(tuple(signature(value)), value)
    return list(seen.values())


def _bits(flags: list[bool]) -> int:
    return sum(1 << i for i, flag in enumerate(flags) if flag)


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


class Analysis:
    """Domain plus one RuleSet per rule of a policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.domain = build_domain(policy)
        self.compiled = compile_policy(policy).rules
        # Feasibility masks over targets, one per resource verb.
        self._feasible = [_bits([_name_ok(verb, t) for t in self.domain.targets]) for verb in RESOURCE_VERBS]
        self.sets = tuple(self._rule_set(rule) for rule in self.compiled)

    def _rule_set(self, rule: CompiledRule) -> RuleSet:
        d = self.domain
        users = _bits([rule.users is None or u in rule.users for u in d.users])
        groups = _bits([rule.groups is None or not rule.groups.isdisjoint(g) for g in d.groups])
        verbs_res = [rule.verbs is None or v in rule.verbs for v in RESOURCE_VERBS]
        verbs_nr = [rule.verbs is None or v in rule.verbs for v in NON_RESOURCE_VERBS]
        namespaces = _bits([rule.namespaces is None or n in rule.namespaces for n in d.namespaces])
        verb_targets = verb_paths = 0
        if rule.branch in (ANY, RESOURCE):
            match = rule.resources
            targets = _bits([match is None or match(*t) for t in d.targets])
            width = len(d.targets)
            for i, ok in enumerate(verbs_res):
                if ok:
                    verb_targets |= (targets & self._feasible[i]) << (i * width)
        if rule.branch in (ANY, NON_RESOURCE):
            match_path = rule.paths
            paths = _bits([match_path is None or match_path(p) for p in d.paths])
            for i, ok in enumerate(verbs_nr):
                if ok:
                    verb_paths |= paths << (i * len(d.paths))
        return RuleSet(users, groups, namespaces, verb_targets, verb_paths)

    def shadowing_rule(self, index: int) -> int | None:
        """The first earlier rule that matches every request rule ``index`` can match."""
        mine = self.sets[index]
        if mine.empty:
            return None
        for earlier in range(index):
            if mine.within(self.sets[earlier]):
                return earlier
        return None

    def sensitive_requests(self) -> list[Request]:
        """Concrete requests to sensitive resources covering every class the rules distinguish."""
        d = self.domain
        rules = self.compiled
        # Values every rule treats alike give the same answers: keep one of each kind.
        # Representatives are ordered so that the first of each class reads best in a message.
        users = _distinct(_first(OTHER_USER, d.users), lambda u: [r.users is None or u in r.users for r in rules])
        user_groups = _distinct(d.groups, lambda g: [r.groups is None or not r.groups.isdisjoint(g) for r in rules])
        namespaces = _distinct(
            _first(OTHER_NAMESPACE, d.namespaces), lambda n: [r.namespaces is None or n in r.namespaces for r in rules]
        )
        requests = []
        targets = [t for t in d.targets if (t[0], t[1], t[2]) in SENSITIVE]
        for user in users:
            for groups in user_groups:
                for namespace in namespaces:
                    for target in targets:
                        for verb in _EXAMPLE_VERBS:
                            if _name_ok(verb, target):
                                requests.append(resource_request(user, groups, verb, target, namespace))
        return requests


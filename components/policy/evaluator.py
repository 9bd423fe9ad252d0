"""Which rule, level and stages kube-apiserver applies to a request: its checker, in Python.

Mirrors k8s.io/apiserver pkg/audit/policy/checker.go dimension by dimension (``ruleMatches``,
``ruleMatchesResource``, ``ruleMatchesNonResource``, ``pathMatches``): rules are tried in order and
the first match wins; no match means level None with the policy-wide stages and managed-fields
setting. Each rule is compiled once into sets and small predicates (see :func:`compile_rule`) so an
evaluation is a few set look-ups per rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .model import STAGES, GroupResources, Policy, PolicyRule


@dataclass(frozen=True)
class Request:
    """What the checker sees of a request (authorizer.Attributes).

    A resource request has ``resource`` set (or ``resource_request=True``); otherwise it is a
    non-resource request identified by ``path``. Verbs are the apiserver's: get, list, watch,
    create, update, patch, delete, deletecollection for resources; the lower-case HTTP method for
    non-resource URLs.
    """

    user: str = ""
    groups: tuple[str, ...] = ()
    verb: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool | None = field(default=None, compare=False)

    @property
    def is_resource_request(self) -> bool:
        """Explicit flag if given, else "has a resource"."""
        if self.resource_request is not None:
            return self.resource_request
        return bool(self.resource)


@dataclass(frozen=True)
class Decision:
    """The checker's answer: level, 0-based index of the matching rule (None: no rule matched)."""

    level: str
    rule: int | None
    omit_stages: tuple[str, ...]
    omit_managed_fields: bool


# A compiled GroupResources: (resourceNames or None, exact entries, has "*", the x of "*/x"
# entries, the r of "r/*" entries).
_Entry = tuple[frozenset[str] | None, frozenset[str], bool, frozenset[str], frozenset[str]]
ResourceMatcher = Callable[[str, str, str, str], bool]
PathMatcher = Callable[[str], bool]

ANY, RESOURCE, NON_RESOURCE = 0, 1, 2


def _set(values: tuple[str, ...]) -> frozenset[str] | None:
    """An empty list in a rule means "any": None."""
    return frozenset(values) if values else None


def stage_union(*lists: Iterable[str]) -> tuple[str, ...]:
    """checker.go unionStages, in the canonical stage order (Go's map order is random)."""
    wanted = {stage for stages in lists for stage in stages}
    return tuple(stage for stage in STAGES if stage in wanted) + tuple(sorted(wanted.difference(STAGES)))


def compile_entry(gr: GroupResources) -> _Entry:
    """One GroupResources with resources, as the sets its resource loop compares against."""
    exact = frozenset(gr.resources)  # res == "resource" or "resource/subresource"
    sub_wild = frozenset(r[2:] for r in gr.resources if r.startswith("*/"))  # "*/subresource"
    res_wild = frozenset(r[:-2] for r in gr.resources if r.endswith("/*"))  # "resource/*"
    return (_set(gr.resource_names), exact, "*" in exact, sub_wild, res_wild)


def entry_matches(entry: _Entry, resource: str, sub: str, combined: str, name: str) -> bool:
    """ruleMatchesResource's inner loop for one GroupResources whose group matched."""
    names, exact, star, sub_wild, res_wild = entry
    if names is not None and name not in names:
        # resourceNames compares with the URL name; list/create/deletecollection usually have none.
        return False
    if star or combined in exact:
        return True
    if sub and sub in sub_wild:  # "*/scale" needs a subresource
        return True
    return resource in res_wild  # "pods/*" compares only the resource, so bare "pods" matches too


def compile_resources(resources: tuple[GroupResources, ...]) -> ResourceMatcher:
    """ruleMatchesResource's group loop as a dict from API group to what matches in it."""
    whole_groups: set[str] = set()  # groups listed without resources: everything in them
    by_group: dict[str, list[_Entry]] = {}
    for gr in resources:
        if not gr.resources:
            whole_groups.add(gr.group)
        else:
            by_group.setdefault(gr.group, []).append(compile_entry(gr))
    wildcard = by_group.pop("*", [])  # group "*" (1.36+) applies in every group
    everything = "*" in whole_groups
    table = {g: tuple(entries + wildcard) for g, entries in by_group.items()}
    default = tuple(wildcard)

    def matches(api_group: str, resource: str, sub: str, name: str) -> bool:
        if everything or api_group in whole_groups:
            return True
        combined = f"{resource}/{sub}" if sub else resource
        return any(entry_matches(e, resource, sub, combined, name) for e in table.get(api_group, default))

    return matches


def path_matches(path: str, spec: str) -> bool:
    """checker.go pathMatches: "*", exact, or a prefix when the spec ends in "*"."""
    if spec == "*" or spec == path:
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


def compile_paths(specs: tuple[str, ...]) -> PathMatcher:
    """ruleMatchesNonResource's loop: exact paths in a set, prefixes in a tuple."""
    anything = "*" in specs
    exact = frozenset(specs)
    prefixes = tuple(s.rstrip("*") for s in specs if s.endswith("*"))

    def matches(path: str) -> bool:
        return anything or path in exact or path.startswith(prefixes)

    return matches


@dataclass(frozen=True)
class CompiledRule:
    """A rule reduced to what ruleMatches needs; None in a set means "any"."""

    users: frozenset[str] | None
    groups: frozenset[str] | None
    verbs: frozenset[str] | None
    branch: int  # ANY, RESOURCE or NON_RESOURCE: which part of ruleMatches applies
    namespaces: frozenset[str] | None
    resources: ResourceMatcher | None
    paths: PathMatcher | None
    decision: Decision


def compile_rule(rule: PolicyRule, index: int, policy: Policy) -> CompiledRule:
    """Compile one rule; the decision (stages union, managed fields) is fixed per rule."""
    if rule.namespaces or rule.resources:
        branch = RESOURCE
    elif rule.non_resource_urls:
        branch = NON_RESOURCE
    else:
        branch = ANY
    omf = policy.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
    return CompiledRule(
        users=_set(rule.users),
        groups=_set(rule.user_groups),
        verbs=_set(rule.verbs),
        branch=branch,
        namespaces=_set(rule.namespaces),
        resources=compile_resources(rule.resources) if rule.resources else None,
        paths=compile_paths(rule.non_resource_urls) if branch == NON_RESOURCE else None,
        decision=Decision(rule.level, index, stage_union(policy.omit_stages, rule.omit_stages), omf),
    )


class CompiledPolicy:
    """All rules compiled, plus the no-match decision."""

    def __init__(self, policy: Policy) -> None:
        self.rules = tuple(compile_rule(r, i, policy) for i, r in enumerate(policy.rules))
        # With no match the checker returns the policy's omitStages as written (not de-duplicated).
        self.default = Decision("None", None, policy.omit_stages, policy.omit_managed_fields)
        # Tuples unpack faster than attribute look-ups in the hot loop.
        self._flat = tuple(
            (r.users, r.groups, r.verbs, r.branch, r.namespaces, r.resources, r.paths, r.decision) for r in self.rules
        )

    def evaluate(self, request: Request) -> Decision:
        """EvaluatePolicyRule: the first matching rule's decision, else the default."""
        user = request.user
        groups = request.groups
        verb = request.verb
        is_resource = request.is_resource_request
        for users, ugroups, verbs, branch, namespaces, resources, paths, decision in self._flat:
            if users is not None and user not in users:
                continue
            if ugroups is not None and ugroups.isdisjoint(groups):
                continue
            if verbs is not None and verb not in verbs:
                continue
            if branch == RESOURCE:
                if not is_resource:
                    continue
                if namespaces is not None and request.namespace not in namespaces:
                    continue
                if resources is not None and not resources(
                    request.api_group, request.resource, request.subresource, request.name
                ):
                    continue
            elif branch == NON_RESOURCE and (is_resource or not paths(request.path)):  # type: ignore[misc]
                continue
            return decision
        return self.default


# The compiled form is kept in the policy's own __dict__, the way functools.cached_property keeps a
# value: the Policy is frozen and immutable, so it is compiled once and shared, and the model stays
# plain data that knows nothing of the evaluator (no import back from model to here).
_COMPILED = "_compiled"


def compile_policy(policy: Policy) -> CompiledPolicy:
    """The policy compiled for evaluation, built once per policy on first use and kept with it."""
    compiled: CompiledPolicy | None = policy.__dict__.get(_COMPILED)
    if compiled is None:
        compiled = policy.__dict__[_COMPILED] = CompiledPolicy(policy)
    return compiled


def evaluate(policy: Policy, request: Request) -> Decision:
    """The audit decision kube-apiserver makes for ``request`` under ``policy``."""
    return compile_policy(policy).evaluate(request)

"""The fast analysis (pair domains, indexes, witness search) against exact brute force.

``reference_analysis`` is the previous implementation: one domain for the whole policy, every
rule compared with every earlier one. It is exact and cubic; on small generated policies the
fast one must give the same answers.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from components.policy import Policy
from components.policy.analysis import OTHER_NAMESPACE, Analysis, name_ok
from components.policy.evaluator import compile_policy
from components.policy.leaks import LEAKS

from . import reference_analysis as ref
from .conftest import policy_of
from .strategies import policy_texts, resource_request, valid

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(policy_texts())
def test_shadowing_and_emptiness_equal_the_global_reference(text: str) -> None:
    policy = valid(text)
    fast, slow = Analysis(policy), ref.Analysis(policy)
    for index in range(len(policy.rules)):
        assert fast.empty(index) == slow.sets[index].empty, index
        assert fast.shadowing_rule(index) == slow.shadowing_rule(index), index


def brute_captures(
    policy: Policy, slow: ref.Analysis, index: int, verb: str, target: tuple[str, str, str], scope: tuple[str, ...]
) -> bool:
    """Some request over the reference representatives is first matched by rule ``index``."""
    d = slow.domain
    for user in d.users:
        for groups in d.groups:
            for namespace in d.namespaces:
                if ("" if namespace == "" else OTHER_NAMESPACE) not in scope:
                    continue
                for candidate in d.targets:
                    if candidate[:3] != target or not name_ok(verb, candidate):
                        continue
                    request = resource_request(user, groups, verb, candidate, namespace)
                    if compile_policy(policy).evaluate(request).rule == index:
                        return True
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_texts())
def test_first_match_witnesses_equal_brute_force(text: str) -> None:
    policy = valid(text)
    fast, slow = Analysis(policy), ref.Analysis(policy)
    for index in range(len(policy.rules)):
        for leak in LEAKS:
            target = (leak.group, leak.resource, leak.sub)
            for verb in leak.verbs:
                scope = ("",) if leak.cluster_scoped else ("", OTHER_NAMESPACE)
                expected = brute_captures(policy, slow, index, verb, target, scope)
                assert fast.captures(index, verb, target, namespaces=scope) == expected, (index, verb, target)


@pytest.mark.parametrize(
    ("rules", "index", "verb", "captured"),
    [
        # The earlier Metadata rule only names one secret: creating others still reaches rule 1.
        (
            "  - level: Metadata\n    resources: [{resources: [secrets], resourceNames: [a]}]\n  - level: Request\n",
            1,
            "create",
            True,
        ),
        # list across all namespaces carries namespace "": covered by the cluster-wide rule.
        ("  - level: Metadata\n    namespaces: ['']\n  - level: RequestResponse\n", 1, "list", True),
        (
            "  - level: Metadata\n    namespaces: ['']\n  - level: RequestResponse\n    verbs: [list]\n"
            "    namespaces: ['']\n",
            1,
            "list",
            False,
        ),
        # users the earlier rule names are covered; the rule's own other user is not.
        ("  - level: Metadata\n    users: [a]\n  - level: Request\n    users: [a]\n", 1, "create", False),
        ("  - level: Metadata\n    users: [a]\n  - level: Request\n    users: [a, b]\n", 1, "create", True),
    ],
)
def test_captures_examples(rules: str, index: int, verb: str, captured: bool) -> None:
    policy = policy_of("rules:\n" + rules)
    scope = ("", OTHER_NAMESPACE) if verb in ("list", "watch") else (OTHER_NAMESPACE,)
    assert Analysis(policy).captures(index, verb, ("", "secrets", ""), namespaces=scope) is captured

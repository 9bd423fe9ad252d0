"""Property tests: compiled evaluator vs a naive checker; lint claims vs actual evaluations."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.policy import Request, evaluate, lint
from components.policy.leaks import LEAKS, Leak
from components.policy.model import LEVELS

from .reference import reference_evaluate, rule_matches
from .strategies import policy_texts, realistic_requests, requests, valid

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(policy_texts(), st.lists(requests(), min_size=1, max_size=20))
def test_compiled_evaluator_equals_naive_checker(text: str, reqs: list[Request]) -> None:
    policy = valid(text)
    for request in reqs:
        ours = evaluate(policy, request)
        ref = reference_evaluate(policy, request)
        assert (ours.level, ours.rule, ours.omit_managed_fields) == (ref.level, ref.rule, ref.omit_managed_fields)
        assert sorted(ours.omit_stages) == list(ref.omit_stages)


@SETTINGS
@given(policy_texts())
def test_loader_reads_back_what_was_written(text: str) -> None:
    policy = valid(text)
    doc: dict[str, Any] = yaml.safe_load(text)
    assert len(policy.rules) == len(doc["rules"])
    for rule, raw in zip(policy.rules, doc["rules"], strict=True):
        assert rule.level == raw["level"]
        assert rule.users == tuple(raw.get("users", ()))
        assert rule.verbs == tuple(raw.get("verbs", ()))
        assert rule.non_resource_urls == tuple(raw.get("nonResourceURLs", ()))
        assert [gr.group for gr in rule.resources] == [g.get("group", "") for g in raw.get("resources", [])]
        assert rule.omit_managed_fields == raw.get("omitManagedFields")
    assert policy.omit_managed_fields == doc.get("omitManagedFields", False)


@SETTINGS
@given(policy_texts(), st.lists(realistic_requests(), min_size=1, max_size=30))
def test_lint_rule_claims_hold_for_real_requests(text: str, reqs: list[Request]) -> None:
    policy = valid(text)
    findings = lint(policy)
    shadowed = {f.rule: f for f in findings if f.code == "shadowed-rule"}
    never = {f.rule for f in findings if f.code == "never-matches" and f.rule is not None}
    for request in reqs:
        decision = evaluate(policy, request)
        assert decision.rule not in shadowed, (shadowed[decision.rule], request)
        for index in never:
            assert not rule_matches(policy.rules[index], request), (index, request)


def leak_of(request: Request, level: str) -> Leak | None:
    """The leak a request first matched at ``level`` causes, if the apiserver can produce it."""
    for leak in LEAKS:
        if (request.api_group, request.resource, request.subresource) != (leak.group, leak.resource, leak.sub):
            continue
        if request.verb not in leak.verbs or LEVELS.index(level) < LEVELS.index(leak.level):
            continue
        if leak.cluster_scoped and request.namespace != "":
            continue  # a tokenreview has no namespace
        if not leak.cluster_scoped and request.namespace == "" and request.verb not in ("list", "watch"):
            continue  # only list/watch span all namespaces
        return leak
    return None


@SETTINGS
@given(policy_texts(), st.lists(realistic_requests(), min_size=1, max_size=40))
def test_every_leaking_request_is_named_by_its_rule(text: str, reqs: list[Request]) -> None:
    policy = valid(text)
    messages = {f.rule: f.message for f in lint(policy) if f.code in ("sensitive-body-logged", "configmap-body-logged")}
    for request in reqs:
        decision = evaluate(policy, request)
        leak = leak_of(request, decision.level)
        if leak is None:
            continue
        message = messages.get(decision.rule, "")
        body = message.split(": ", 1)[-1]
        named = [part.split(" ")[0].split("/") for part in body.split(", ") if f" {leak.label} (" in part]
        assert any(request.verb in verbs for verbs in named), (request, decision, message)


@SETTINGS
@given(policy_texts())
def test_lint_never_crashes_and_is_well_formed(text: str) -> None:
    policy = valid(text)
    for finding in lint(policy):
        assert finding.severity in ("error", "warning")
        assert finding.rule is None or 0 <= finding.rule < len(policy.rules)
        assert finding.code and finding.message

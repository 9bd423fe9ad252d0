"""Evaluator: the apiserver checker's semantics, one matching dimension at a time."""

from __future__ import annotations

import pytest

from components.policy import Decision, Request, evaluate
from components.policy.evaluator import compile_policy, path_matches, stage_union

from .conftest import policy_of

POD = Request(user="tim", groups=("devs",), verb="get", resource="pods", namespace="default", name="web")


def level(rules: str, request: Request, **kw: str) -> str:
    return evaluate(policy_of("rules:\n" + rules), request).level


def matches(rule_body: str, request: Request) -> bool:
    """Does a single Metadata rule with this body match the request?"""
    rules = "  - level: Metadata\n" + "".join(f"    {line}\n" for line in rule_body.splitlines())
    return level(rules, request) == "Metadata"


def test_first_match_wins_and_reports_the_rule_index() -> None:
    p = policy_of("rules:\n  - level: None\n    users: [bob]\n  - level: Request\n  - level: Metadata\n")
    assert evaluate(p, POD) == Decision("Request", 1, (), False)


def test_no_match_is_level_none_with_policy_settings() -> None:
    p = policy_of("omitStages: [Panic]\nomitManagedFields: true\nrules:\n  - level: Request\n    users: [bob]\n")
    assert evaluate(p, POD) == Decision("None", None, ("Panic",), True)


@pytest.mark.parametrize(
    ("rule", "request_", "expected"),
    [
        # users / userGroups / verbs: exact, any one of the listed values
        ("users: [tim]", POD, True),
        ("users: [Tim]", POD, False),
        ("userGroups: [ops, devs]", POD, True),
        ("userGroups: [ops]", POD, False),
        ("userGroups: [ops]", Request(user="x", verb="get", resource="pods"), False),
        ("verbs: [list, get]", POD, True),
        ("verbs: [GET]", POD, False),
        # namespaces: exact; "" is cluster scope; implies resource requests only
        ("namespaces: [default]", POD, True),
        ('namespaces: [""]', POD, False),
        ('namespaces: [""]', Request(user="t", verb="list", resource="pods"), True),
        ("namespaces: [default]", Request(user="t", verb="get", path="/api"), False),
        # group: exact, "" when omitted (core), "*" any
        ("resources: [{resources: [pods]}]", POD, True),
        (
            "resources: [{resources: [deployments]}]",
            Request(user="t", verb="get", api_group="apps", resource="deployments"),
            False,
        ),
        ("resources: [{group: apps}]", Request(user="t", verb="get", api_group="apps", resource="deployments"), True),
        (
            'resources: [{group: "*", resources: [deployments]}]',
            Request(user="t", verb="get", api_group="apps", resource="deployments"),
            True,
        ),
        # resource forms
        (
            "resources: [{resources: [pods]}]",
            Request(user="t", verb="get", resource="pods", subresource="log", name="a"),
            False,
        ),
        (
            "resources: [{resources: [pods/log]}]",
            Request(user="t", verb="get", resource="pods", subresource="log", name="a"),
            True,
        ),
        ("resources: [{resources: [pods/log]}]", POD, False),
        (
            'resources: [{resources: ["*"]}]',
            Request(user="t", verb="get", resource="pods", subresource="log", name="a"),
            True,
        ),
        (
            'resources: [{resources: ["*/log"]}]',
            Request(user="t", verb="get", resource="pods", subresource="log", name="a"),
            True,
        ),
        ('resources: [{resources: ["*/log"]}]', POD, False),
        (
            'resources: [{resources: ["pods/*"]}]',
            Request(user="t", verb="get", resource="pods", subresource="exec", name="a"),
            True,
        ),
        ('resources: [{resources: ["pods/*"]}]', POD, True),  # also the bare resource
        ('resources: [{resources: ["*/*"]}]', POD, False),
        (
            'resources: [{resources: ["*/*"]}]',
            Request(user="t", verb="get", resource="pods", subresource="log", name="a"),
            False,
        ),
        # resourceNames: compared with the URL name; requests without one never match
        ("resources: [{resources: [pods], resourceNames: [web]}]", POD, True),
        ("resources: [{resources: [pods], resourceNames: [db]}]", POD, False),
        (
            "resources: [{resources: [pods], resourceNames: [web]}]",
            Request(user="t", verb="list", resource="pods"),
            False,
        ),
        # non-resource URLs: "*", exact, prefix with trailing "*"; non-resource requests only
        ("nonResourceURLs: [/healthz]", Request(user="t", verb="get", path="/healthz"), True),
        ("nonResourceURLs: [/healthz]", Request(user="t", verb="get", path="/healthz/etcd"), False),
        ("nonResourceURLs: [/healthz*]", Request(user="t", verb="get", path="/healthz/etcd"), True),
        ("nonResourceURLs: [/healthz*]", Request(user="t", verb="get", path="/healthy"), False),
        ('nonResourceURLs: ["*"]', Request(user="t", verb="get", path="/anything"), True),
        ('nonResourceURLs: ["*"]', POD, False),
        # a rule with no target conditions matches both kinds
        ("users: [tim]", Request(user="tim", verb="get", path="/version"), True),
    ],
)
def test_dimension(rule: str, request_: Request, expected: bool) -> None:
    assert matches(rule, request_) is expected


def test_group_entries_are_alternatives() -> None:
    rule = "resources:\n  - group: apps\n    resources: [deployments]\n  - group: ''\n    resources: [pods]"
    assert matches(rule, POD)
    assert matches(rule, Request(user="t", verb="get", api_group="apps", resource="deployments"))
    assert not matches(rule, Request(user="t", verb="get", api_group="apps", resource="pods"))


def test_resource_names_apply_per_group_entry() -> None:
    rule = "resources:\n  - resources: [pods]\n    resourceNames: [db]\n  - resources: [pods/log]"
    assert not matches(rule, POD)
    assert matches(rule, Request(user="t", verb="get", resource="pods", subresource="log", name="web"))


def test_explicit_resource_request_flag_overrides_inference() -> None:
    bare = Request(user="t", verb="get", resource="", resource_request=True)
    assert bare.is_resource_request
    assert matches("namespaces: ['']", bare)
    assert not Request(user="t", verb="get", path="/api").is_resource_request


def test_no_match_returns_policy_stages_verbatim_like_go() -> None:
    p = policy_of("omitStages: [Panic, RequestReceived, Panic]\nrules:\n  - level: Request\n    users: [x]\n")
    assert evaluate(p, POD).omit_stages == ("Panic", "RequestReceived", "Panic")


def test_omit_stages_are_the_union_in_canonical_order() -> None:
    p = policy_of(
        "omitStages: [Panic, RequestReceived]\nrules:\n  - level: Request\n    omitStages: [ResponseStarted, Panic]\n"
    )
    assert evaluate(p, POD).omit_stages == ("RequestReceived", "ResponseStarted", "Panic")
    assert stage_union([], []) == ()


@pytest.mark.parametrize(
    ("policy_value", "rule_value", "expected"),
    [
        ("false", None, False),
        ("true", None, True),
        ("true", "false", False),
        ("false", "true", True),
    ],
)
def test_omit_managed_fields_inherits_unless_set(policy_value: str, rule_value: str | None, expected: bool) -> None:
    rule = "  - level: Request\n" + (f"    omitManagedFields: {rule_value}\n" if rule_value else "")
    p = policy_of(f"omitManagedFields: {policy_value}\nrules:\n{rule}")
    assert evaluate(p, POD).omit_managed_fields is expected


def test_path_matches_trims_every_trailing_star_like_go() -> None:
    assert path_matches("/a", "/a**") and path_matches("/abc", "/a*") and not path_matches("/b", "/a*")


def test_compiled_policy_is_cached() -> None:
    p = policy_of("rules:\n  - level: Request\n")
    assert compile_policy(p) is compile_policy(p)

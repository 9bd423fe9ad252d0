"""Lint: one test per code, positive and negative."""

from __future__ import annotations

import pytest

from components.policy import Finding, lint

from .conftest import policy_of

CATCH_ALL = "  - level: Metadata\n"
QUIET = "omitStages: [RequestReceived]\n"


def codes(rules: str, extra: str = QUIET) -> list[tuple[int | None, str]]:
    return [(f.rule, f.code) for f in lint(policy_of(extra + "rules:\n" + rules))]


def findings(rules: str, code: str) -> list[Finding]:
    return [f for f in lint(policy_of(QUIET + "rules:\n" + rules)) if f.code == code]


def test_clean_policy_has_no_findings() -> None:
    assert codes("  - level: None\n    nonResourceURLs: [/healthz*]\n" + CATCH_ALL) == []


# -- shadowed-rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("    users: [kube-admin]", "    users: [kube-admin]\n    verbs: [create]"),
        ("    resources: [{group: ''}]", "    resources: [{resources: [pods]}]"),
        ("    resources: [{resources: ['*']}]", "    resources: [{resources: [pods/log]}]"),
        ("    resources: [{resources: [pods/*]}]", "    resources: [{resources: [pods, pods/log]}]"),
        ("    nonResourceURLs: [/healthz*]", "    nonResourceURLs: [/healthz/etcd, /healthz]"),
        ("    userGroups: [a, b]", "    userGroups: [b]"),
        (
            "    verbs: [get, list, watch, create, update, patch, delete, deletecollection, proxy]\n    namespaces: ['']",
            "    verbs: [get]\n    namespaces: ['']",
        ),
        # verbs restricted to those that can carry a name: get,delete,... vs a resourceNames rule
        (
            "    verbs: [get, list, watch, create, update, patch, delete, proxy]\n    resources: [{resources: [pods]}]",
            "    resources: [{resources: [pods], resourceNames: [web]}]",
        ),
    ],
)
def test_shadowed(earlier: str, later: str) -> None:
    rules = f"  - level: None\n{earlier}\n  - level: Request\n{later}\n{CATCH_ALL}"
    assert (1, "shadowed-rule") in codes(rules)
    (finding,) = findings(rules, "shadowed-rule")
    assert "rule 0 (line 5)" in finding.message and finding.severity == "warning"


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("    users: [kube-admin]\n    verbs: [create]", "    users: [kube-admin]"),
        ("    resources: [{resources: [pods]}]", "    resources: [{resources: [pods/log]}]"),
        ("    resources: [{resources: ['*/log']}]", "    resources: [{resources: [pods/*]}]"),
        ("    namespaces: [default]", "    resources: [{resources: [pods]}]"),
        ("    nonResourceURLs: [/healthz]", "    nonResourceURLs: [/healthz*]"),
        ("    userGroups: [a]", "    users: [bob]"),
        ("    resources: [{resources: [pods], resourceNames: [web]}]", "    resources: [{resources: [pods]}]"),
    ],
)
def test_not_shadowed(earlier: str, later: str) -> None:
    rules = f"  - level: None\n{earlier}\n  - level: Request\n{later}\n{CATCH_ALL}"
    assert "shadowed-rule" not in [c for _, c in codes(rules)]


def test_rule_covering_both_kinds_is_shadowed_only_by_a_rule_covering_both() -> None:
    both = "  - level: None\n    users: [x]\n"
    assert (1, "shadowed-rule") not in codes("  - level: None\n    users: [x]\n    namespaces: [a]\n" + both)
    assert (1, "shadowed-rule") in codes(both + "  - level: Request\n    users: [x]\n    nonResourceURLs: [/a]\n")


# -- never-matches ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("    verbs: [GET, LIST]", "lower-case"),
        ("    resources: [{resources: ['*/*']}]", "'*/*' matches nothing"),
        ("    verbs: [deletecollection]\n    resources: [{resources: [pods], resourceNames: [web]}]", "resourceNames"),
        ("    resources: [{resources: [pods/log/x]}]", "can match"),
    ],
)
def test_never_matches(rule: str, why: str) -> None:
    rules = f"  - level: Request\n{rule}\n{CATCH_ALL}"
    (finding,) = findings(rules, "never-matches")
    assert finding.rule == 0 and why in finding.message
    assert "shadowed-rule" not in [c for _, c in codes(rules)]


@pytest.mark.parametrize(
    "rule",
    [
        # list/watch carry a name with fieldSelector=metadata.name=..., create on a subresource too
        "    verbs: [list, watch]\n    resources: [{resources: [pods], resourceNames: [web]}]",
        "    verbs: [create]\n    resources: [{resources: [pods/eviction], resourceNames: [web]}]",
        "    verbs: [get]\n    resources: [{resources: [pods/*]}]",
    ],
)
def test_matches_something(rule: str) -> None:
    assert not findings(f"  - level: Request\n{rule}\n{CATCH_ALL}", "never-matches")


def test_unknown_verb_among_good_ones() -> None:
    (finding,) = findings("  - level: None\n    verbs: [get, Watch]\n" + CATCH_ALL, "unknown-verb")
    assert "'Watch'" in finding.message


# -- sensitive-body-logged --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rules",
    [
        "  - level: RequestResponse\n",
        "  - level: Request\n    resources: [{group: ''}]\n",
        "  - level: RequestResponse\n    verbs: [create]\n    resources: [{resources: ['*/token']}]\n",
        "  - level: RequestResponse\n    resources: [{group: authentication.k8s.io}]\n",
        "  - level: Metadata\n    resources: [{resources: [secrets]}]\n  - level: Request\n    users: [bob]\n",
        "  - level: Metadata\n    resources: [{resources: [secrets], resourceNames: [a]}]\n  - level: Request\n",
    ],
)
def test_sensitive_body_logged(rules: str) -> None:
    found = findings(rules, "sensitive-body-logged")
    assert found and all(f.severity == "error" for f in found)


def test_sensitive_body_logged_reports_the_rule_that_matches_first() -> None:
    rules = (
        "  - level: Metadata\n    resources: [{resources: [secrets, configmaps, serviceaccounts/token]}]\n"
        "  - level: Request\n    resources: [{group: authentication.k8s.io, resources: [tokenreviews]}]\n"
        "  - level: RequestResponse\n"
    )
    (finding,) = findings(rules, "sensitive-body-logged")
    assert finding.rule == 1
    assert finding.message == (
        "logs credentials at Request: create tokenreviews (bearer token in the request). "
        "Put a Metadata rule for these above this rule"
    )


def test_sensitive_resources_at_metadata_first_are_fine() -> None:
    rules = (
        "  - level: Metadata\n    resources:\n      - resources: [secrets, configmaps, serviceaccounts/token]\n"
        "      - group: authentication.k8s.io\n        resources: [tokenreviews]\n"
        "  - level: RequestResponse\n"
    )
    assert not findings(rules, "sensitive-body-logged")


# -- resources ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "group", "code", "fragment"),
    [
        ("token reviews", "authentication.k8s.io", "unknown-resource", 'did you mean "tokenreviews"'),
        ("pods/logs", "''", "unknown-resource", 'did you mean "pods/log"'),
        ("deployments", "''", "wrong-group", "served by apps"),
        ("pods", "apps", "wrong-group", "served by the core group"),
        ("*/scael", "apps", "unknown-resource", 'subresource "scael"'),
        ("*/*", "''", "unknown-resource", "use '*'"),
    ],
)
def test_resource_entries(entry: str, group: str, code: str, fragment: str) -> None:
    rules = f"  - level: None\n    resources: [{{group: {group}, resources: ['{entry}']}}]\n" + CATCH_ALL
    found = findings(rules, code)
    assert found and fragment in found[0].message, lint(policy_of(QUIET + "rules:\n" + rules))


@pytest.mark.parametrize(
    ("entry", "group"),
    [("pods/log", "''"), ("deployments/scale", "apps"), ("*/status", "apps"), ("widgets", "example.com"), ("*", "''")],
)
def test_known_or_unjudged_resources(entry: str, group: str) -> None:
    rules = f"  - level: None\n    resources: [{{group: {group}, resources: ['{entry}']}}]\n" + CATCH_ALL
    assert not [c for _, c in codes(rules) if c in ("unknown-resource", "wrong-group")]


def test_removed_and_wildcard_groups() -> None:
    rules = "  - level: None\n    resources: [{group: extensions}, {group: '*', resources: [pods]}]\n" + CATCH_ALL
    assert {(0, "removed-group"), (0, "wildcard-group")} <= set(codes(rules))


# -- whole-policy and identity checks ---------------------------------------------------------------


def test_privileged_dropped() -> None:
    assert (0, "privileged-dropped") in codes("  - level: None\n    userGroups: [system:masters]\n" + CATCH_ALL)
    assert (0, "privileged-dropped") in codes(
        "  - level: None\n    users: [kube-admin]\n    verbs: [get, delete]\n" + CATCH_ALL
    )
    assert not findings(
        "  - level: None\n    users: [kube-admin]\n    verbs: [get, list]\n" + CATCH_ALL, "privileged-dropped"
    )
    assert not findings("  - level: Metadata\n    users: [kube-admin]\n", "privileged-dropped")


def test_body_level_on_non_resource_urls() -> None:
    assert (0, "body-level-non-resource") in codes("  - level: Request\n    nonResourceURLs: [/x]\n" + CATCH_ALL)
    assert not findings("  - level: Metadata\n    nonResourceURLs: [/x]\n" + CATCH_ALL, "body-level-non-resource")


def test_no_catch_all() -> None:
    assert (None, "no-catch-all") in codes("  - level: Metadata\n    verbs: [create]\n")
    assert (None, "no-catch-all") not in codes("  - level: None\n    verbs: [get]\n  - level: None\n")


def test_request_received_kept() -> None:
    assert (None, "request-received-kept") in codes(CATCH_ALL, extra="")
    assert (None, "request-received-kept") not in codes(
        "  - level: Metadata\n    omitStages: [RequestReceived]\n", extra=""
    )
    assert (None, "request-received-kept") not in codes("  - level: None\n", extra="")


def test_findings_are_sorted_whole_policy_first_then_by_rule_errors_first() -> None:
    result = lint(
        policy_of("rules:\n  - level: RequestResponse\n    verbs: [GET, get]\n    resources: [{group: extensions}]\n")
    )
    keys = [(f.rule if f.rule is not None else -1, f.severity != "error") for f in result]
    assert keys == sorted(keys) and result[0].rule is None


# -- leaks judged by level and verb (issue 10 §1) ----------------------------------------------------


@pytest.mark.parametrize(
    ("level", "verbs", "resource", "expected"),
    [
        # At Request only the request body is logged: reads and deletes carry no object.
        ("Request", "[get, list, watch]", "{resources: [secrets]}", None),
        ("Request", "[delete, deletecollection]", "{resources: [secrets]}", None),
        ("Request", "[create, patch]", "{resources: [secrets]}", "create/patch secrets (data in the request)"),
        # At RequestResponse the response carries the secret on every verb.
        ("RequestResponse", "[get, delete]", "{resources: [secrets]}", "get secrets (data in the response)"),
        # A TokenRequest's token is only in the response.
        ("Request", "[create]", "{resources: [serviceaccounts/token]}", None),
        ("RequestResponse", "[create]", "{resources: [serviceaccounts/token]}", "create serviceaccounts/token"),
        # A TokenReview's bearer token is the request.
        ("Request", "[create]", "{group: authentication.k8s.io, resources: [tokenreviews]}", "create tokenreviews"),
        # Configmaps: a warning by default.
        ("Request", "[update]", "{resources: [configmaps]}", "configmap:update configmaps (data in the request)"),
    ],
)
def test_leaks_by_level_and_verb(level: str, verbs: str, resource: str, expected: str | None) -> None:
    rules = f"  - level: {level}\n    verbs: {verbs}\n    resources: [{resource}]\n" + CATCH_ALL
    found = [f for f in lint(policy_of(QUIET + "rules:\n" + rules)) if f.code.endswith("body-logged")]
    if expected is None:
        assert found == []
        return
    (finding,) = found
    code = "configmap-body-logged" if expected.startswith("configmap:") else "sensitive-body-logged"
    assert finding.code == code and expected.removeprefix("configmap:") in finding.message


def test_leak_message_never_borrows_an_example_from_another_rule() -> None:
    rules = (
        "  - level: Metadata\n    resources: [{resources: [secrets]}]\n"
        "  - level: Request\n    users: [bob]\n    resources: [{resources: [configmaps]}]\n"
        "  - level: RequestResponse\n    resources: [{group: authentication.k8s.io}]\n" + CATCH_ALL
    )
    by_rule = {f.rule: f.message for f in lint(policy_of(QUIET + "rules:\n" + rules)) if "body-logged" in f.code}
    assert set(by_rule) == {1, 2}
    assert "configmaps" in by_rule[1] and "tokenreviews" not in by_rule[1] and "secrets" not in by_rule[1]
    assert "tokenreviews" in by_rule[2] and "configmaps" not in by_rule[2]


def test_star_verb_message_says_it_is_not_a_wildcard() -> None:
    (finding,) = findings("  - level: Request\n    verbs: ['*']\n" + CATCH_ALL, "never-matches")
    assert "'*' is not a wildcard for verbs" in finding.message
    (finding,) = findings("  - level: Request\n    verbs: ['*', get]\n" + CATCH_ALL, "unknown-verb")
    assert "'*' is not a wildcard for verbs" in finding.message


@pytest.mark.parametrize(
    ("group", "verbs", "lost"),
    [
        ("system:serviceaccounts", "", "create, update, patch, delete, deletecollection"),
        ("system:serviceaccounts:ci", "[get, create]", "create"),
        ("system:authenticated", "[patch]", "patch"),
        ("system:nodes", "[get, list]", None),
        ("devs", "", None),
    ],
)
def test_identity_writes_dropped(group: str, verbs: str, lost: str | None) -> None:
    rule = f"  - level: None\n    userGroups: ['{group}']\n" + (f"    verbs: {verbs}\n" if verbs else "")
    found = findings(rule + CATCH_ALL, "identity-writes-dropped")
    if lost is None:
        assert found == []
    else:
        (finding,) = found
        assert finding.message.startswith(f"drops {lost} on any resource by broad identities {group}")

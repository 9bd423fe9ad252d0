"""Lint: mistakes kube-apiserver accepts silently, with stable codes.

Each check is a small function ``(policy, analysis) -> list[Finding]``; ``CHECKS`` lists them and
README.md documents every code. Only ``sensitive-body-logged`` is an error: it writes secrets into
the log. The rest are warnings that usually mean the policy does not do what its author meant.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from .analysis import Analysis
from .builtins import (
    BUILTIN,
    NON_RESOURCE_VERBS,
    REMOVED_GROUPS,
    RESOURCE_VERBS,
    resources_in_other_groups,
)
from .findings import Finding, Severity
from .leaks import check_dropped_writes, check_sensitive
from .model import GroupResources, Policy, PolicyRule

KNOWN_VERBS = frozenset(RESOURCE_VERBS) | frozenset(NON_RESOURCE_VERBS)
BODY_LEVELS = ("Request", "RequestResponse")
STAR_VERB = (
    "'*' is not a wildcard for verbs in audit policies: verbs are compared literally and no request "
    "has the verb '*'; leave verbs out to match every verb"
)


def _warn(rule: int | None, code: str, message: str, at: tuple[int, int] = (1, 1)) -> Finding:
    return Finding(rule, code, "warning", message, *at)


def _rule_at(policy: Policy, index: int, field: str = "") -> tuple[int, int]:
    rule = policy.rules[index]
    if not rule.line:
        return (1, 1)
    return rule.position(field) if field else (rule.line, rule.col)


def _at(policy: Policy, index: int) -> str:
    line = policy.rules[index].line
    return f"rule {index} (line {line})" if line else f"rule {index}"


# -- per rule -----------------------------------------------------------------------------------


def check_shadowed(policy: Policy, analysis: Analysis) -> list[Finding]:
    """shadowed-rule: an earlier rule already matches everything this rule could match."""
    findings = []
    for index in range(len(policy.rules)):
        earlier = analysis.shadowing_rule(index)
        if earlier is not None:
            findings.append(
                _warn(
                    index,
                    "shadowed-rule",
                    f"never applies: every request it matches is matched first by "
                    f"{_at(policy, earlier)} at level {policy.rules[earlier].level} "
                    "(first match wins; move it above that rule or narrow that rule)",
                    _rule_at(policy, index),
                )
            )
    return findings


def _never_reason(rule: PolicyRule) -> str:
    """Why a rule with an empty request set is empty, in the commonest cases."""
    verbs = set(rule.verbs)
    if "*" in verbs and not verbs & KNOWN_VERBS:
        return STAR_VERB
    if verbs and not verbs & KNOWN_VERBS:
        return (
            f"its verbs {sorted(verbs)} are not verbs the apiserver uses (they are lower-case: "
            f"{', '.join(RESOURCE_VERBS)}; non-resource URLs use the HTTP method)"
        )
    if all(gr.resource_names for gr in rule.resources) and rule.resources and verbs:
        return (
            f"resourceNames compares with the name in the URL, and {sorted(verbs)} requests "
            "carry none here (deletecollection never has one; create only on a subresource)"
        )
    if rule.resources and all(all(_dead_entry(r) for r in gr.resources) and gr.resources for gr in rule.resources):
        return "none of its resources entries can match a request (e.g. '*/*' matches nothing)"
    return "no request can satisfy all of its conditions together"


def _dead_entry(entry: str) -> bool:
    return entry == "*/*" or entry.count("/") > 1 or entry in ("", "/")


def check_never_matches(policy: Policy, analysis: Analysis) -> list[Finding]:
    """never-matches: the rule's conditions exclude every possible request."""
    return [
        _warn(index, "never-matches", f"matches no request: {_never_reason(rule)}", _rule_at(policy, index))
        for index, rule in enumerate(policy.rules)
        if analysis.empty(index)
    ]


def check_unknown_verbs(policy: Policy, analysis: Analysis) -> list[Finding]:
    """unknown-verb: some (not all) verbs are not verbs the apiserver produces."""
    findings = []
    for index, rule in enumerate(policy.rules):
        unknown = sorted(set(rule.verbs) - KNOWN_VERBS)
        if unknown and not analysis.empty(index):
            why = STAR_VERB if "*" in unknown else "verbs are lower-case"
            findings.append(
                _warn(
                    index,
                    "unknown-verb",
                    f"verbs {unknown} never occur ({why}; the apiserver's verbs are "
                    f"{', '.join(RESOURCE_VERBS)}, or an HTTP method for non-resource URLs)",
                    _rule_at(policy, index, "verbs"),
                )
            )
    return findings


def _judge_entry(group: str, entry: str) -> tuple[str, str] | None:
    """(code, message) when ``entry`` is not something a known built-in group serves."""
    table = BUILTIN[group]
    label = "the core group" if group == "" else group
    resource, _, sub = entry.partition("/")
    if resource == "*":
        if sub and sub != "*" and not any(sub in subs for subs in table.values()):
            return "unknown-resource", f'no resource in {label} has a subresource "{sub}"'
        return None
    if resource not in table:
        owners = resources_in_other_groups(resource)
        if owners:
            names = ", ".join(g or "the core group" for g in owners)
            return "wrong-group", (
                f'"{resource}" is served by {names}, not by {label}: this entry matches nothing '
                f'(the group must match exactly; write group: "{owners[0]}")'
            )
        close = difflib.get_close_matches(resource.replace(" ", ""), list(table), n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        return "unknown-resource", f'{label} has no resource "{resource}"{hint}'
    if sub and sub != "*" and sub not in table[resource]:
        close = difflib.get_close_matches(sub, sorted(table[resource]), n=1)
        hint = f' (did you mean "{resource}/{close[0]}"?)' if close else ""
        return "unknown-resource", f'"{resource}" has no subresource "{sub}"{hint}'
    return None


def _judge_group(gr: GroupResources) -> list[tuple[str, str]]:
    results = []
    if gr.group in REMOVED_GROUPS:
        results.append(
            (
                "removed-group",
                f'API group "{gr.group}" is not served since Kubernetes '
                f"{REMOVED_GROUPS[gr.group]}: this entry matches nothing on current clusters",
            )
        )
    for entry in gr.resources:
        if _dead_entry(entry):
            fix = " (use '*' for every resource and subresource)" if entry == "*/*" else ""
            results.append(("unknown-resource", f'"{entry}" matches no request{fix}'))
        elif gr.group in BUILTIN:
            judged = _judge_entry(gr.group, entry)
            if judged:
                results.append(judged)
    return results


def check_resources(policy: Policy, analysis: Analysis) -> list[Finding]:
    """unknown-resource, wrong-group, removed-group, wildcard-group: per resources entry."""
    findings = []
    for index, rule in enumerate(policy.rules):
        for gr in rule.resources:
            at = (gr.line, gr.col) if gr.line else _rule_at(policy, index)
            for code, message in _judge_group(gr):
                findings.append(_warn(index, code, message, at))
            if gr.group == "*":
                findings.append(
                    _warn(
                        index,
                        "wildcard-group",
                        'group "*" is accepted only by kube-apiserver 1.36 and later; older '
                        "apiservers refuse to start with this policy",
                        at,
                    )
                )
    return findings


def check_non_resource_body(policy: Policy, analysis: Analysis) -> list[Finding]:
    """body-level-non-resource: Request/RequestResponse on non-resource URLs logs no body."""
    return [
        _warn(
            index,
            "body-level-non-resource",
            f"level {rule.level} on non-resource URLs: the apiserver never logs bodies for them, "
            "so this is Metadata; say Metadata",
            _rule_at(policy, index, "level"),
        )
        for index, rule in enumerate(policy.rules)
        if rule.level in BODY_LEVELS and rule.applies_to_non_resources
    ]


def check_catch_all(policy: Policy, analysis: Analysis) -> list[Finding]:
    """no-catch-all: some requests match no rule and are silently not audited."""
    for rule in policy.rules:
        conditions = (rule.users, rule.user_groups, rule.verbs, rule.namespaces, rule.resources)
        if not any(conditions) and not rule.non_resource_urls:
            return []
    return [
        _warn(
            None,
            "no-catch-all",
            "no rule matches every request, so whatever no rule names is not audited at all; "
            "end the policy with a catch-all such as '- level: Metadata'",
        )
    ]


def check_request_received(policy: Policy, analysis: Analysis) -> list[Finding]:
    """request-received-kept: RequestReceived events double the log for little information."""
    if "RequestReceived" in policy.omit_stages:
        return []
    kept = [
        i for i, rule in enumerate(policy.rules) if rule.level != "None" and "RequestReceived" not in rule.omit_stages
    ]
    if not kept:
        return []
    shown = ", ".join(map(str, kept[:8])) + (", ..." if len(kept) > 8 else "")
    return [
        _warn(
            None,
            "request-received-kept",
            f"stage RequestReceived is not omitted ({'rule' if len(kept) == 1 else 'rules'} {shown}): "
            "every request is logged twice; add 'omitStages: [RequestReceived]' at the top of the policy",
        )
    ]


CHECKS: tuple[Callable[[Policy, Analysis], list[Finding]], ...] = (
    check_shadowed,
    check_never_matches,
    check_unknown_verbs,
    check_resources,
    check_dropped_writes,
    check_non_resource_body,
    check_catch_all,
    check_request_received,
)


def describe_rule(rule: PolicyRule) -> str:
    """What a rule matches, in one line (for messages about a rule as the apiserver loads it)."""
    verbs = "/".join(rule.verbs) or "every verb"
    if rule.non_resource_urls:
        what = "URLs " + ", ".join(rule.non_resource_urls)
    elif rule.resources:
        what = "; ".join(
            f"{gr.group or 'core'} {', '.join(gr.resources) or 'resources'}"
            + (f" named {', '.join(gr.resource_names)}" if gr.resource_names else "")
            for gr in rule.resources
        )
    else:
        what = "every resource and URL" if not rule.namespaces else "every resource"
    if rule.namespaces:
        what += " in namespaces " + ", ".join(repr(n) for n in rule.namespaces)
    who = ", ".join([*rule.users, *(f"group {g}" for g in rule.user_groups)]) or "anyone"
    return f"{verbs} on {what} by {who}, at level {rule.level}"


def check_dropped(policy: Policy, analysis: Analysis) -> list[Finding]:
    """dropped-by-apiserver: fields kube-apiserver drops or ignores, and what the rule then matches."""
    findings = []
    for problem in policy.dropped:
        index = next((i for i, r in enumerate(policy.rules) if r.line <= problem.line <= max(r.end_line, r.line)), None)
        message = problem.message
        if index is not None:
            message += f"; as kube-apiserver loads it, rule {index} matches {describe_rule(policy.rules[index])}"
        findings.append(Finding(index, "dropped-by-apiserver", "warning", message, problem.line, problem.col))
    return findings


def lint(policy: Policy, *, configmaps: Severity | None = None) -> list[Finding]:
    """All findings: what the apiserver drops first, then whole-policy ones, then by rule index,
    errors before warnings. A leniently loaded policy is judged as the apiserver enforces it.

    ``configmaps``: severity of configmap contents in the log (default: the policy's
    ``lint.kube-audit.io/configmaps`` annotation, else warning).
    """
    analysis = Analysis(policy)
    findings = check_sensitive(policy, analysis, configmaps)
    findings += [finding for check in CHECKS for finding in check(policy, analysis)]
    ordered = sorted(findings, key=lambda f: (-1 if f.rule is None else f.rule, f.severity != "error", f.code))
    return check_dropped(policy, analysis) + ordered

"""A deliberately naive transliteration of checker.go, uncompiled, as a test oracle.

The production evaluator compiles rules into sets and closures for speed; this one walks the
model exactly the way ``ruleMatches`` walks the Go structs, so the two can be compared.
"""

from __future__ import annotations

from components.policy import Decision, Policy, PolicyRule, Request


def _has(values: tuple[str, ...], value: str) -> bool:
    return value in values


def _path_matches(path: str, spec: str) -> bool:
    if spec == "*":
        return True
    if spec == path:
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


def _matches_resource(rule: PolicyRule, r: Request) -> bool:
    if not r.is_resource_request:
        return False
    if rule.namespaces and not _has(rule.namespaces, r.namespace):
        return False
    if not rule.resources:
        return True
    combined = r.resource + "/" + r.subresource if r.subresource else r.resource
    for gr in rule.resources:
        if gr.group == r.api_group or gr.group == "*":
            if not gr.resources:
                return True
            for res in gr.resources:
                if not gr.resource_names or _has(gr.resource_names, r.name):
                    if res == combined or res == "*":
                        return True
                    if r.subresource and res.startswith("*/") and r.subresource == res[2:]:
                        return True
                    if res.endswith("/*") and r.resource == res[:-2]:
                        return True
    return False


def rule_matches(rule: PolicyRule, r: Request) -> bool:
    if rule.users and not _has(rule.users, r.user):
        return False
    if rule.user_groups and not any(_has(rule.user_groups, g) for g in r.groups):
        return False
    if rule.verbs and not _has(rule.verbs, r.verb):
        return False
    if rule.namespaces or rule.resources:
        return _matches_resource(rule, r)
    if rule.non_resource_urls:
        if r.is_resource_request:
            return False
        return any(_path_matches(r.path, spec) for spec in rule.non_resource_urls)
    return True


def reference_evaluate(policy: Policy, r: Request) -> Decision:
    for i, rule in enumerate(policy.rules):
        if rule_matches(rule, r):
            stages = set(policy.omit_stages) | set(rule.omit_stages)
            omf = policy.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
            return Decision(rule.level, i, tuple(sorted(stages)), omf)
    return Decision("None", None, tuple(sorted(policy.omit_stages)), policy.omit_managed_fields)

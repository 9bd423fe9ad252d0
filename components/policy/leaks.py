"""Lint checks about what a rule writes to the log, judged by level and verb (issue 10 §1, §4).

At ``Request`` the apiserver logs the request body only; at ``RequestResponse`` the response body
too. So a secret leaks on create/update/patch at Request (the object is the body) but on a get only
at RequestResponse; a TokenRequest (``create serviceaccounts/token``) carries the token only in its
response; a TokenReview carries the bearer token in its request. Each rule is judged on the
requests it *captures first* (an earlier rule wins otherwise), and every captured pair is named.
"""

from __future__ import annotations

from dataclasses import dataclass

from .analysis import OTHER_API_GROUP, OTHER_NAMESPACE, OTHER_RESOURCE, OTHER_SUBRESOURCE, Analysis
from .builtins import BROAD_GROUP_PREFIXES, BROAD_GROUPS, PRIVILEGED_GROUPS, PRIVILEGED_USERS
from .findings import Finding, Severity
from .model import Policy

# The policy-level switch that makes configmap leaks errors (metadata.annotations of the policy,
# which kube-apiserver accepts and ignores).
CONFIGMAPS_ANNOTATION = "lint.kube-audit.io/configmaps"
RESOURCE_WRITES = ("create", "update", "patch", "delete", "deletecollection")


@dataclass(frozen=True)
class Leak:
    """Verbs on one resource whose logged body carries credentials from ``level`` up."""

    group: str
    resource: str
    sub: str
    verbs: tuple[str, ...]
    level: str  # lowest level that logs it: "Request" or "RequestResponse"
    what: str
    cluster_scoped: bool = False
    configmap: bool = False

    @property
    def label(self) -> str:
        return self.resource + (f"/{self.sub}" if self.sub else "")


_SECRET_LIKE = (
    (("get", "list", "watch"), "RequestResponse", "data in the response"),
    (("create", "update", "patch"), "Request", "data in the request"),
    (("delete", "deletecollection"), "RequestResponse", "data in the response"),
)
# Worst first: a bearer token, every secret at once (list), secret writes, minted tokens, ...
LEAKS: tuple[Leak, ...] = (
    Leak("authentication.k8s.io", "tokenreviews", "", ("create",), "Request", "bearer token in the request", True),
    Leak("", "secrets", "", *_SECRET_LIKE[0]),
    Leak("", "secrets", "", *_SECRET_LIKE[1]),
    Leak("", "serviceaccounts", "token", ("create",), "RequestResponse", "token in the response"),
    Leak("", "secrets", "", *_SECRET_LIKE[2]),
    *(Leak("", "configmaps", "", verbs, level, what, configmap=True) for verbs, level, what in _SECRET_LIKE),
)
_RANK = {"Request": 1, "RequestResponse": 2}


def configmap_severity(policy: Policy, override: Severity | None) -> Severity:
    """``override``, else the policy's annotation, else warning."""
    if override is not None:
        return override
    value = dict(policy.annotations).get(CONFIGMAPS_ANNOTATION, "").strip().lower()
    return "error" if value == "error" else "warning"


def _scope(leak: Leak, verb: str) -> tuple[str, ...]:
    """Namespaces a request can carry: "" for cluster-scoped, and for all-namespaces list/watch."""
    if leak.cluster_scoped:
        return ("",)
    return ("", OTHER_NAMESPACE) if verb in ("list", "watch") else (OTHER_NAMESPACE,)


def captured_leaks(policy: Policy, analysis: Analysis, index: int) -> list[tuple[Leak, tuple[str, ...]]]:
    """The leaks rule ``index`` captures first, worst first, each with the verbs concerned."""
    level = policy.rules[index].level
    if level not in _RANK:
        return []
    out = []
    for leak in LEAKS:
        if _RANK[level] < _RANK[leak.level]:
            continue
        target = (leak.group, leak.resource, leak.sub)
        verbs = tuple(v for v in leak.verbs if analysis.captures(index, v, target, namespaces=_scope(leak, v)))
        if verbs:
            out.append((leak, verbs))
    return out


def _describe(leak: Leak, verbs: tuple[str, ...], level: str) -> str:
    what = leak.what
    if level == "RequestResponse" and what == "data in the request":
        what = "data in the request and response"
    return f"{'/'.join(verbs)} {leak.label} ({what})"


def check_sensitive(policy: Policy, analysis: Analysis, configmaps: Severity | None = None) -> list[Finding]:
    """sensitive-body-logged / configmap-body-logged: a rule logs credentials it captures first."""
    cm_severity = configmap_severity(policy, configmaps)
    findings = []
    for index, rule in enumerate(policy.rules):
        leaks = captured_leaks(policy, analysis, index)
        if not leaks:
            continue
        errors = [x for x in leaks if not x[0].configmap or cm_severity == "error"]
        ordered = errors + [x for x in leaks if x not in errors]
        pairs = ", ".join(_describe(leak, verbs, rule.level) for leak, verbs in ordered)
        line, col = rule.position("level") if rule.line else (1, 1)
        if errors:
            message = f"logs credentials at {rule.level}: {pairs}. Put a Metadata rule for these above this rule"
            findings.append(Finding(index, "sensitive-body-logged", "error", message, line, col))
        else:
            message = (
                f"logs configmap contents at {rule.level}: {pairs}. Many clusters keep credentials in "
                "configmaps; log them at Metadata, or annotate the policy "
                f"'{CONFIGMAPS_ANNOTATION}: error' to make this an error"
            )
            findings.append(Finding(index, "configmap-body-logged", "warning", message, line, col))
    return findings


def _broad(group: str) -> bool:
    return group in BROAD_GROUPS or group.startswith(BROAD_GROUP_PREFIXES)


def _targets(policy: Policy, index: int) -> list[tuple[str, str, str]]:
    """One representative target per resources entry of the rule (or any resource)."""
    rule = policy.rules[index]
    if not rule.resources:
        return [(OTHER_API_GROUP, OTHER_RESOURCE, "")]
    out = []
    for gr in rule.resources:
        group = OTHER_API_GROUP if gr.group == "*" else gr.group
        for entry in gr.resources or ("*",):
            resource, _, sub = entry.partition("/")
            resource = OTHER_RESOURCE if resource == "*" else resource
            out.append((group, resource, OTHER_SUBRESOURCE if sub == "*" else sub))
    return out


def _what(policy: Policy, index: int) -> str:
    rule = policy.rules[index]
    if not rule.resources:
        return "any resource"
    parts = []
    for gr in rule.resources:
        label = "core" if gr.group == "" else gr.group
        parts.append(f"{label} {', '.join(gr.resources)}" if gr.resources else f"all of {label}")
    return "; ".join(parts)


def check_dropped_writes(policy: Policy, analysis: Analysis) -> list[Finding]:
    """privileged-dropped / identity-writes-dropped: a None rule swallows writes of an identity."""
    findings = []
    for index, rule in enumerate(policy.rules):
        if rule.level != "None" or analysis.empty(index):
            continue
        admins = sorted(set(rule.users) & PRIVILEGED_USERS) + sorted(set(rule.user_groups) & PRIVILEGED_GROUPS)
        broad = sorted(g for g in rule.user_groups if _broad(g))
        for who, code, groups in (
            (admins, "privileged-dropped", tuple(g for g in admins if g in PRIVILEGED_GROUPS)),
            (broad, "identity-writes-dropped", tuple(broad)),
        ):
            if not who:
                continue
            lost = [
                verb
                for verb in RESOURCE_WRITES
                if any(analysis.captures(index, verb, t, user_groups=groups or None) for t in _targets(policy, index))
            ]
            if not lost:
                continue
            kind = "cluster-admin identities" if code == "privileged-dropped" else "broad identities"
            message = (
                f"drops {', '.join(lost)} on {_what(policy, index)} by {kind} {', '.join(who)} (level None): a stolen "
                "credential of these identities can change the cluster without an audit trail; "
                "restrict this rule to get, list, watch"
            )
            findings.append(Finding(index, code, "warning", message, rule.line or 1, rule.col or 1))
    return findings

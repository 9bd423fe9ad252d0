"""Hypothesis strategies for audit policies and requests (shared by the property and parity tests).

Values come from small pools so that rules and requests collide often, and the pools include the
tricky cases: invalid groups and URLs, ``*/*``, ``pods/*``, resourceNames with "", upper-case
verbs, scalars that go-yaml types differently from PyYAML (``y``, ``1e3``).
"""

from __future__ import annotations

import random
from typing import Any

import yaml
from hypothesis import assume
from hypothesis import strategies as st

from components.policy import LEVELS, STAGES, Policy, PolicyError, Request, load_policy

USERS = ("alice", "bob", "system:admin", "kube-admin", "")
USER_GROUPS = ("devs", "ops", "system:masters", "system:nodes")
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy", "post", "head")
NAMESPACES = ("", "default", "kube-system")
API_GROUPS = ("", "apps", "authentication.k8s.io", "rbac.authorization.k8s.io", "*")
INVALID_GROUPS = ("Apps", "apps/v1", "-x", "a_b")
RESOURCES = ("pods", "secrets", "configmaps", "deployments", "serviceaccounts", "tokenreviews", "nodes")
SUBRESOURCES = ("", "log", "scale", "status", "token")
ENTRIES = (
    "pods",
    "pods/log",
    "pods/*",
    "*",
    "*/log",
    "*/scale",
    "*/*",
    "secrets",
    "configmaps",
    "deployments",
    "deployments/scale",
    "serviceaccounts/token",
    "tokenreviews",
    "nodes/status",
)
NAMES = ("web", "db", "")
PATHS = ("/healthz", "/healthz/etcd", "/healthy", "/api", "/apis/apps", "/version", "/", "/metrics")
URL_SPECS = ("/healthz", "/healthz*", "*", "/api*", "/version", "/", "/*", "/metrics")
INVALID_URL_SPECS = ("healthz", "/a*b", "", "**")
ODD_SCALARS = ("y", "1e3", "yes", "0x1F", "~")


def _strings(pool: tuple[str, ...], max_size: int = 3) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(pool), max_size=max_size)


def rule_dicts(invalid: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Rules; with ``invalid`` the pools also hold values the apiserver rejects."""
    bad = invalid
    levels = st.sampled_from(LEVELS * 8 + (("", "none", "Everything") if bad else ()))
    stages = st.lists(st.sampled_from(STAGES * 8 + (("ResponseCompleted",) if bad else ())), max_size=2)
    groups = st.sampled_from(API_GROUPS * 6 + (INVALID_GROUPS if bad else ()))
    urls = st.lists(st.sampled_from(URL_SPECS * 5 + (INVALID_URL_SPECS if bad else ())), min_size=1, max_size=3)
    users = _strings(USERS + (ODD_SCALARS if bad else ()))
    names = _strings(NAMES, max_size=2)
    group_resources = st.fixed_dictionaries(
        {"resources": _strings(ENTRIES)} if not bad else {},
        optional={"group": groups, "resourceNames": names}
        # "verbs" indented under a resources entry: dropped by the apiserver (issue 10 §2).
        | ({"resources": _strings(ENTRIES), "verbs": _strings(VERBS)} if bad else {}),
    )
    common = {
        "users": users,
        "userGroups": _strings(USER_GROUPS),
        "verbs": _strings((*VERBS, "GET")),
        "omitStages": stages,
        "omitManagedFields": st.booleans(),
    }
    if bad:  # any combination, including nonResourceURLs with resources, and unknown fields
        return st.fixed_dictionaries(
            {"level": levels},
            optional=common
            | {
                "verb": _strings(VERBS),
                "Users": users,
                "namespaces": _strings(NAMESPACES),
                "resources": st.lists(group_resources, max_size=3),
                "nonResourceURLs": urls,
            },
        )
    resource_rule = st.fixed_dictionaries(
        {"level": levels},
        optional=common | {"namespaces": _strings(NAMESPACES), "resources": st.lists(group_resources, max_size=3)},
    )
    url_rule = st.fixed_dictionaries({"level": levels, "nonResourceURLs": urls}, optional=common)
    return st.one_of(resource_rule, resource_rule, url_rule)


def policy_dicts(invalid: bool) -> st.SearchStrategy[dict[str, Any]]:
    stages = st.lists(st.sampled_from(STAGES * 8 + (("ResponseCompleted",) if invalid else ())), max_size=2)
    return st.fixed_dictionaries(
        {
            "apiVersion": st.just("audit.k8s.io/v1"),
            "kind": st.just("Policy"),
            "rules": st.lists(rule_dicts(invalid), min_size=0 if invalid else 1, max_size=6),
        },
        optional={"omitStages": stages, "omitManagedFields": st.booleans()},
    )


@st.composite
def policy_texts(draw: st.DrawFn, invalid: bool = False) -> str:
    """A generated policy rendered as YAML, in block or flow style.

    PyYAML quotes by its own (YAML 1.1) rules, so values like ``y`` and ``1e3`` come out plain and
    go-yaml types them differently: exactly the disagreements the loader must get right.
    """
    doc: dict[str, Any] = draw(policy_dicts(invalid))
    flow = draw(st.sampled_from([False, None, True]))
    return yaml.safe_dump(doc, default_flow_style=flow, sort_keys=draw(st.booleans()))


@st.composite
def mistaken_policy_texts(draw: st.DrawFn) -> str:
    """A valid policy plus the mistakes kube-apiserver loads anyway: unknown fields that it drops
    (``verb`` in a rule, ``verbs`` under a resources entry, a misspelled ``Users``) and empty list
    items it reads as ""."""
    doc: dict[str, Any] = draw(policy_dicts(False))
    for rule in doc["rules"]:
        mistake = draw(st.sampled_from(["none", "verb", "Users", "nested verbs", "null user"]))
        if mistake in ("verb", "Users"):
            rule[mistake] = draw(_strings(("get", "alice", "create"), max_size=2))
        elif mistake == "nested verbs" and rule.get("resources"):
            rule["resources"][0]["verbs"] = draw(_strings(VERBS, max_size=2))
        elif mistake == "null user":
            rule["users"] = [*rule.get("users", []), None]
    return yaml.safe_dump(doc, default_flow_style=draw(st.sampled_from([False, None])), sort_keys=False)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """Any request, realistic or not: the evaluator must agree with the apiserver on all."""
    user = draw(st.sampled_from((*USERS, "carol")))
    groups = tuple(draw(st.lists(st.sampled_from(USER_GROUPS), max_size=2, unique=True)))
    verb = draw(st.sampled_from((*VERBS, "GET")))
    if draw(st.booleans()):
        return Request(
            user=user,
            groups=groups,
            verb=verb,
            api_group=draw(st.sampled_from((*API_GROUPS, "other.io"))),
            resource=draw(st.sampled_from((*RESOURCES, "*"))),
            subresource=draw(st.sampled_from((*SUBRESOURCES, "*"))),
            namespace=draw(st.sampled_from((*NAMESPACES, "other"))),
            name=draw(st.sampled_from(NAMES)),
            resource_request=True,
        )
    return Request(user=user, groups=groups, verb=verb, path=draw(st.sampled_from(PATHS)), resource_request=False)


RESOURCE_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy")
NON_RESOURCE_VERBS = ("get", "head", "post", "put", "patch", "delete", "options")


@st.composite
def realistic_requests(draw: st.DrawFn) -> Request:
    """Requests kube-apiserver can actually produce (requestinfo.go): what lint reasons about."""
    user = draw(st.sampled_from((*USERS, "carol")))
    groups = tuple(draw(st.lists(st.sampled_from(USER_GROUPS), max_size=2, unique=True)))
    if not draw(st.booleans()):
        verb = draw(st.sampled_from(NON_RESOURCE_VERBS))
        return Request(user=user, groups=groups, verb=verb, path=draw(st.sampled_from(PATHS)), resource_request=False)
    verb = draw(st.sampled_from(RESOURCE_VERBS))
    sub = draw(st.sampled_from(SUBRESOURCES))
    name = draw(st.sampled_from(NAMES))
    if verb in ("get", "delete") or sub:
        name = name or "web"  # these always carry a name
    if verb == "deletecollection":
        name, sub = "", ""
    return Request(
        user=user,
        groups=groups,
        verb=verb,
        api_group=draw(st.sampled_from(("", "apps", "authentication.k8s.io", "rbac.authorization.k8s.io", "x.io"))),
        resource=draw(st.sampled_from(RESOURCES)),
        subresource=sub,
        namespace=draw(st.sampled_from((*NAMESPACES, "other"))),
        name=name,
        resource_request=True,
    )


def sampled_requests(seed: int, count: int) -> list[Request]:
    """``count`` requests drawn from the same pools with a seeded PRNG (cheap bulk for parity)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        groups = tuple(rng.sample(USER_GROUPS, rng.randint(0, 2)))
        user, verb = rng.choice((*USERS, "carol")), rng.choice((*VERBS, "GET", "put", "options"))
        if rng.random() < 0.25:
            out.append(Request(user=user, groups=groups, verb=verb, path=rng.choice(PATHS), resource_request=False))
            continue
        out.append(
            Request(
                user=user,
                groups=groups,
                verb=verb,
                api_group=rng.choice((*API_GROUPS, "other.io")),
                resource=rng.choice((*RESOURCES, "*")),
                subresource=rng.choice(SUBRESOURCES),
                namespace=rng.choice((*NAMESPACES, "other")),
                name=rng.choice(NAMES),
                resource_request=True,
            )
        )
    return out


def valid(text: str) -> Policy:
    """The policy a generated text loads to; an example whose text the loader refuses is discarded."""
    try:
        return load_policy(text, "gen.yaml")
    except PolicyError:
        assume(False)
        raise


def resource_request(
    user: str, groups: tuple[str, ...], verb: str, target: tuple[str, str, str, str], namespace: str
) -> Request:
    """The resource request ``verb`` on ``target`` (api group, resource, subresource, name)."""
    group, resource, sub, name = target
    return Request(
        user=user,
        groups=groups,
        verb=verb,
        api_group=group,
        resource=resource,
        subresource=sub,
        namespace=namespace,
        name=name,
        resource_request=True,
    )

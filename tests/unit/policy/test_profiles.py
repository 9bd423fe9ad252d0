"""Shipped profiles: they resolve, validate, lint without errors, and do what their headers say."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from components.policy import Request, evaluate, lint, load_policy_file
from components.policy.profiles import PROFILE_DIR, is_profile_name, list_profiles, resolve_policy

from .conftest import POLICIES
from .strategies import realistic_requests

PROFILES = ("dce-default", "metadata-only", "security")


def test_profile_dir_is_the_repo_policies_dir() -> None:
    assert PROFILE_DIR == POLICIES


def test_list_profiles() -> None:
    assert set(PROFILES) <= set(list_profiles())
    assert list_profiles() == sorted(list_profiles())


def test_resolve_policy(tmp_path: Path) -> None:
    assert resolve_policy("dce-default", tmp_path) == POLICIES / "dce-default.yaml"
    assert resolve_policy("my.yaml", tmp_path) == tmp_path / "my.yaml"
    assert resolve_policy("sub/p.yaml", tmp_path) == tmp_path / "sub" / "p.yaml"
    assert resolve_policy("/etc/p.yaml", tmp_path) == Path("/etc/p.yaml")
    assert resolve_policy("~/p.yml", tmp_path) == Path.home() / "p.yml"


def test_unknown_profile_lists_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dce-default, metadata-only, security"):
        resolve_policy("strict", tmp_path)


@pytest.mark.parametrize(("value", "bare"), [("dce-default", True), ("a.yaml", False), ("./a", False), ("A", False)])
def test_is_profile_name(value: str, bare: bool) -> None:
    assert is_profile_name(value) is bare


@pytest.mark.parametrize("name", PROFILES)
def test_profile_is_valid_lints_without_errors_and_documents_itself(name: str) -> None:
    path = POLICIES / f"{name}.yaml"
    policy = load_policy_file(path)
    assert not [f for f in lint(policy) if f.severity == "error"]
    header = path.read_text().split("apiVersion:")[0]
    assert "Suits:" in header and "Costs:" in header


def R(user: str, verb: str, resource: str = "", **kw: str) -> Request:  # noqa: N802 - reads like a table
    groups = tuple(kw.pop("groups", "").split(",")) if "groups" in kw else ()
    if resource:
        return Request(user=user, groups=groups, verb=verb, resource=resource, resource_request=True, **kw)
    return Request(user=user, groups=groups, verb=verb, path=kw.pop("path"), resource_request=False)


INTENTS = {
    "dce-default": [
        # kube-admin: reads not logged (but any access to a secret is), writes logged (with bodies unless sensitive)
        (R("kube-admin", "get", "pods", namespace="default", name="web"), "None"),
        (R("kube-admin", "list", "secrets", namespace="default"), "Metadata"),  # every secret access is recorded
        (R("kube-admin", "get", "secrets", namespace="kube-system", name="s"), "Metadata"),
        (R("kube-admin", "create", "deployments", api_group="apps", namespace="default"), "Request"),
        (R("kube-admin", "delete", "pods", namespace="default", name="web"), "Request"),
        (R("kube-admin", "deletecollection", "pods", namespace="default"), "Request"),
        (R("kube-admin", "update", "secrets", namespace="default", name="s"), "Metadata"),
        # sensitive resources never above Metadata
        (R("bob", "get", "secrets", namespace="default", name="s"), "Metadata"),
        (R("bob", "create", "configmaps", namespace="default"), "Metadata"),
        (R("bob", "create", "serviceaccounts", subresource="token", namespace="default", name="sa"), "Metadata"),
        (R("bob", "create", "tokenreviews", api_group="authentication.k8s.io"), "Metadata"),
        # the seed's noise filters
        (R("system:kube-proxy", "watch", "endpoints"), "None"),
        (R("kubelet-1", "get", "nodes", name="n1", groups="system:nodes"), "None"),
        (R("u", "get", "", path="/healthz/etcd"), "None"),
        (R("u", "create", "events", namespace="default"), "None"),
        (R("u", "update", "leases", api_group="coordination.k8s.io", namespace="kube-node-lease", name="n1"), "None"),
        (R("system:unsecured", "delete", "pods", namespace="default", name="x"), "None"),
        (R("u", "update", "pods", subresource="status", namespace="default", name="x"), "None"),
        # the defaults: reads with request, writes with response, the rest metadata
        (R("bob", "list", "pods", namespace="default"), "Request"),
        (R("bob", "create", "pods", namespace="default"), "RequestResponse"),
        (R("bob", "get", "widgets", api_group="example.com", namespace="default", name="w"), "Metadata"),
        (R("bob", "get", "", path="/apis"), "Metadata"),
        (R("u", "get", "", path="/readyz"), "None"),
        (R("u", "get", "", path="/livez/ping"), "None"),
    ],
    "metadata-only": [
        (R("bob", "create", "secrets", namespace="default"), "Metadata"),
        (R("bob", "create", "pods", namespace="default"), "Metadata"),
        (R("bob", "list", "pods"), "Metadata"),
        (R("u", "get", "", path="/readyz"), "None"),
        (R("u", "create", "events", api_group="events.k8s.io", namespace="default"), "None"),
        (R("u", "update", "leases", api_group="coordination.k8s.io", namespace="kube-system", name="l"), "None"),
        (R("kubelet", "get", "nodes", name="n1", groups="system:nodes"), "None"),
        (R("kubelet", "update", "nodes", name="n1", groups="system:nodes"), "Metadata"),
    ],
    "security": [
        (R("bob", "get", "secrets", namespace="default", name="s"), "Metadata"),
        (R("system:admin", "create", "secrets", namespace="default"), "Metadata"),
        (R("bob", "create", "serviceaccounts", subresource="token", namespace="default", name="sa"), "Metadata"),
        (R("bob", "create", "pods", namespace="default"), "Request"),
        (R("bob", "patch", "deployments", api_group="apps", namespace="default", name="d"), "Request"),
        (R("bob", "create", "clusterrolebindings", api_group="rbac.authorization.k8s.io"), "RequestResponse"),
        (
            R("bob", "patch", "validatingwebhookconfigurations", api_group="admissionregistration.k8s.io", name="v"),
            "RequestResponse",
        ),
        (R("bob", "create", "pods", subresource="exec", namespace="default", name="web"), "Request"),
        (R("bob", "get", "pods", namespace="default", name="web"), "Metadata"),
        (R("bob", "list", "clusterroles", api_group="rbac.authorization.k8s.io"), "Metadata"),
        (R("u", "get", "", path="/livez"), "None"),
        (R("u", "get", "", path="/metrics"), "Metadata"),
        (R("u", "update", "leases", api_group="coordination.k8s.io", namespace="kube-system", name="l"), "None"),
        (R("u", "delete", "leases", api_group="coordination.k8s.io", namespace="kube-system", name="l"), "Request"),
    ],
}


@pytest.mark.parametrize(
    ("name", "request_", "level"),
    [(name, request, level) for name, cases in INTENTS.items() for request, level in cases],
)
def test_profile_intent(name: str, request_: Request, level: str) -> None:
    policy = load_policy_file(POLICIES / f"{name}.yaml")
    assert evaluate(policy, request_).level == level


def test_security_omits_managed_fields_and_request_received() -> None:
    decision = evaluate(load_policy_file(POLICIES / "security.yaml"), R("b", "create", "pods", namespace="d"))
    assert decision.omit_managed_fields is True and decision.omit_stages == ("RequestReceived",)


@settings(max_examples=300, deadline=None)
@given(realistic_requests())
def test_metadata_only_never_logs_a_body(request_: Request) -> None:
    assert evaluate(load_policy_file(POLICIES / "metadata-only.yaml"), request_).level in ("None", "Metadata")

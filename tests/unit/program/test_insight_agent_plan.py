"""insight-agent: Helm's release records decoded, local repositories read, and the plan that keeps the chart."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from components.insight_agent.helm_state import (
    HelmRepositories,
    HelmStateError,
    InstalledRelease,
    current_release,
    decode_release,
    read_installed_release,
    release_from_json,
)
from components.insight_agent.plan import ReleasePlanError, merge_values, plan_release
from components.settings import InsightAgentSettings

from .conftest import INSTALLED, fake_repos

MARKER = {"fluent-bit": {"image": {"repository": "registry.local/fluent-bit"}}}
REPOS = fake_repos()


def helm_record(revision: int, status: str, version: str, config: dict[str, Any] | None = None,
                chart: str = "insight-agent", zipped: bool = True) -> str:
    """`data.release` of a storage Secret as the API returns it: base64(base64(gzip(JSON)))."""
    doc = {"name": "insight-agent", "namespace": "insight-system", "version": revision, "info": {"status": status},
           "chart": {"metadata": {"name": chart, "version": version}, "values": {"defaults": True}},
           "config": config or {}, "manifest": "---\n"}
    raw = json.dumps(doc).encode()
    helm = base64.b64encode(gzip.compress(raw) if zipped else raw)
    return base64.b64encode(helm).decode()


def secret(revision: int, status: str, version: str, **kw: Any) -> dict[str, Any]:
    return {"type": "helm.sh/release.v1", "metadata": {"name": f"sh.helm.release.v1.insight-agent.v{revision}"},
            "data": {"release": helm_record(revision, status, version, **kw)}}


def rel(revision: int, status: str, version: str = "1.0.0") -> InstalledRelease:
    return InstalledRelease("insight-agent", "insight-system", revision, status, "insight-agent", version)


def settings(**kw: Any) -> InsightAgentSettings:
    return InsightAgentSettings.model_validate(kw)


# -- Helm's records ---------------------------------------------------------------------------------

@pytest.mark.parametrize("zipped", [True, False])
def test_decode_release_reads_chart_metadata_and_user_config(zipped: bool) -> None:
    r = release_from_json(decode_release(helm_record(4, "deployed", "1.0.0", MARKER, zipped=zipped)))
    assert (r.revision, r.status, r.chart_name, r.chart_version) == (4, "deployed", "insight-agent", "1.0.0")
    assert r.config == MARKER, "config is the operator's values only, never the chart defaults"


def test_decode_release_refuses_garbage_with_a_reason() -> None:
    with pytest.raises(HelmStateError, match="base64"):
        decode_release("not base64 !!")
    with pytest.raises(HelmStateError, match="JSON"):
        decode_release(base64.b64encode(base64.b64encode(b"{nope")).decode())


def test_current_release_is_the_last_deployed_revision_as_helm_upgrade_takes_it() -> None:
    assert current_release([rel(1, "superseded"), rel(2, "deployed", "1.1.0")], "x") == rel(2, "deployed", "1.1.0")
    # A failed upgrade after the deployed revision: Helm upgrades from (and reuses values of) the deployed one.
    assert current_release([rel(3, "failed", "1.2.0"), rel(2, "deployed", "1.1.0")], "x").revision == 2  # type: ignore[union-attr]
    assert current_release([], "x") is None
    with pytest.raises(HelmStateError, match="pending-upgrade: another Helm operation"):
        current_release([rel(1, "deployed"), rel(2, "pending-upgrade")], "release insight-system/insight-agent")
    with pytest.raises(HelmStateError, match="no deployed revision"):
        current_release([rel(1, "failed")], "x")


def test_read_installed_release_lists_the_release_secrets_by_helm_labels() -> None:
    asked: list[tuple[str, dict[str, str]]] = []

    def get(path: str, query: dict[str, str]) -> dict[str, Any]:
        asked.append((path, query))
        return {"items": [secret(1, "superseded", "1.0.0"), secret(2, "deployed", "1.0.0", config=MARKER),
                          {"type": "Opaque", "metadata": {"name": "other"}, "data": {"x": "eA=="}}]}

    r = read_installed_release(get, "insight-system", "insight-agent")
    assert asked == [("/api/v1/namespaces/insight-system/secrets", {"labelSelector": "owner=helm,name=insight-agent"})]
    assert r is not None and (r.revision, r.chart_version, r.config) == (2, "1.0.0", MARKER)
    assert read_installed_release(lambda p, q: {"items": []}, "ns", "rel") is None


def test_helm_repositories_found_where_helm_keeps_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config/helm").mkdir(parents=True)
    (home / ".cache/helm/repository").mkdir(parents=True)
    (home / ".config/helm/repositories.yaml").write_text(yaml.safe_dump({"repositories": [
        {"name": "other", "url": "https://other.example/"}, {"name": "insight-release", "url": "http://10.6.0.1/ins/"}]}))
    (home / ".cache/helm/repository/insight-release-index.yaml").write_text(yaml.safe_dump(
        {"entries": {"insight-agent": [{"version": "1.1.0"}, {"version": "1.0.0"}]}}))
    repos = HelmRepositories.load({"HOME": str(home)})
    assert list(repos.urls) == ["other", "insight-release"]
    assert repos.index_versions("insight-release", "insight-agent") == ["1.1.0", "1.0.0"]
    assert repos.index_versions("other", "insight-agent") is None, "no cached index"
    assert repos.alias_for_url("http://10.6.0.1/ins") == "insight-release"
    assert repos.first_alias_with("insight-agent", "1.0.0") == "insight-release"
    assert repos.first_alias_with("insight-agent", "9.9.9") is None
    # $HELM_CONFIG_HOME / $HELM_CACHE_HOME as Helm reads them.
    moved = HelmRepositories.load({"HOME": "/nowhere", "HELM_CONFIG_HOME": str(home / ".config/helm"),
                                   "HELM_CACHE_HOME": str(home / ".cache/helm")})
    assert moved.urls == repos.urls and moved.cache_dir == repos.cache_dir


# -- the plan ---------------------------------------------------------------------------------------

def test_unpinned_plan_keeps_the_installed_chart_and_version_even_when_newer_exist(tmp_path: Path) -> None:
    repos = fake_repos(tmp_path, versions=("0.9.1", "1.0.0", "1.1.0"))
    plan = plan_release(settings(), INSTALLED, repos, collect_kube_audit=True)
    assert (plan.chart, plan.repository_url, plan.version) == ("insight-release/insight-agent", None, "0.9.1")
    assert not plan.upgrades and plan.warnings == ()
    audit = plan.values["global"]["exporters"]["auditLog"]
    assert audit == {"kubeAudit": {"enabled": True}, "ghippoAudit": {"enabled": True}}
    assert plan.values["fluent-bit"] == MARKER["fluent-bit"], "the operator's values are passed on"
    off = plan_release(settings(), INSTALLED, repos, collect_kube_audit=False)
    assert off.version == "0.9.1" and off.values["global"]["exporters"]["auditLog"]["kubeAudit"]["enabled"] is False


def test_pinned_other_version_warns_naming_both_versions(tmp_path: Path) -> None:
    repos = fake_repos(tmp_path, versions=("0.9.1", "1.1.0"))
    plan = plan_release(settings(version="1.1.0"), INSTALLED, repos, True)
    assert plan.version == "1.1.0" and plan.upgrades
    (warning,) = plan.warnings
    assert "UPGRADES insight-agent from 0.9.1 to 1.1.0" in warning and "kube-audit:insightAgent.version" in warning
    same = plan_release(settings(version="0.9.1"), INSTALLED, repos, True)
    assert not same.upgrades and same.warnings == ()


@pytest.mark.parametrize(("kw", "repos_kw", "installed", "message"), [
    ({}, {"alias": "mirror"}, INSTALLED,
     r"kube-audit:insightAgent.repository is 'insight-release', a local Helm repository alias, but .* has no "
     r"repository named 'insight-release'.*helm repo add insight-release"),
    ({"version": "2.0.0"}, {}, INSTALLED,
     r"cached index has no insight-agent 2.0.0 \(has: 0.9.1\); run `helm repo update insight-release` or check "
     r"kube-audit:insightAgent.version"),
    ({}, {}, None, r"insight-system/insight-agent is not installed.*kube-audit:insightAgent.namespace.*adopt: false"),
    ({"chart": "insight-agent-lite"}, {}, INSTALLED,
     r"runs chart 'insight-agent', but kube-audit:insightAgent.chart names 'insight-agent-lite'"),
])
def test_refusals_name_the_settings(tmp_path: Path, kw: dict[str, Any], repos_kw: dict[str, Any],
                                    installed: InstalledRelease | None, message: str) -> None:
    with pytest.raises(ReleasePlanError, match=message):
        plan_release(settings(**kw), installed, fake_repos(tmp_path, **repos_kw), True)


def test_alias_without_cached_index_asks_for_repo_update(tmp_path: Path) -> None:
    repos = fake_repos(tmp_path)
    (repos.cache_dir / "insight-release-index.yaml").unlink()
    with pytest.raises(ReleasePlanError, match=r"no cached index .* run `helm repo update insight-release`"):
        plan_release(settings(), INSTALLED, repos, True)


def test_url_repository_uses_the_alias_an_import_records_for_the_same_url(tmp_path: Path) -> None:
    url = "https://charts.example/insight"
    repos = fake_repos(tmp_path, url=url + "/", versions=("0.9.1", "1.1.0"))
    plan = plan_release(settings(repository=url), INSTALLED, repos, True)
    assert (plan.chart, plan.repository_url) == ("insight-release/insight-agent", None)
    # Pinned to a version the alias's (stale) cache lacks: the URL, which Helm reads fresh.
    plan = plan_release(settings(repository=url, version="1.2.0"), INSTALLED, repos, True)
    assert (plan.chart, plan.repository_url, plan.version) == ("insight-agent", url, "1.2.0")
    other = plan_release(settings(repository="https://elsewhere.example/c"), INSTALLED, repos, True)
    assert (other.chart, other.repository_url) == ("insight-agent", "https://elsewhere.example/c")


def test_local_chart_directory_must_hold_the_target_version(tmp_path: Path) -> None:
    chart = tmp_path / "insight-agent"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: insight-agent\nversion: 1.1.0\n")
    with pytest.raises(ReleasePlanError, match=r"holds version 1.1.0, but the release must stay at 0.9.1; set "
                                               r"kube-audit:insightAgent.version: 1.1.0"):
        plan_release(settings(chart=str(chart)), INSTALLED, fake_repos(tmp_path), True)
    plan = plan_release(settings(chart=str(chart), version="1.1.0"), INSTALLED, fake_repos(tmp_path), True)
    assert (plan.chart, plan.version, plan.upgrades) == (str(chart), "1.1.0", True)


def test_global_management_value_path_is_a_setting(tmp_path: Path) -> None:
    s = settings(globalManagementAuditValue="agent.ghippo.auditLog", collectGlobalManagementAudit=False)
    plan = plan_release(s, INSTALLED, fake_repos(tmp_path), True, global_management_path="agent.ghippo.auditLog")
    assert plan.values["agent"] == {"ghippo": {"auditLog": False}}
    assert "ghippoAudit" not in plan.values["global"]["exporters"]["auditLog"]
    none = plan_release(s, INSTALLED, fake_repos(tmp_path), True, global_management_path=None)
    assert none.values["global"]["exporters"]["auditLog"] == {"kubeAudit": {"enabled": True}}, "no ghippo switch"
    with pytest.raises(ValueError, match="String should match pattern"):
        settings(globalManagementAuditValue="global..x")


def test_only_our_values_change_and_siblings_survive(tmp_path: Path) -> None:
    config = {"global": {"exporters": {"auditLog": {"kubeAudit": {"enabled": False, "hostPath": "/data/audit"}}}},
              "tolerations": [{"operator": "Exists"}], "drop": None}
    installed = InstalledRelease("insight-agent", "insight-system", 1, "deployed", "insight-agent", "0.9.1", config)
    plan = plan_release(settings(), installed, fake_repos(tmp_path), True)
    assert plan.values["global"]["exporters"]["auditLog"]["kubeAudit"] == {"enabled": True, "hostPath": "/data/audit"}
    assert plan.values["tolerations"] == [{"operator": "Exists"}] and plan.values["drop"] is None
    assert plan.allow_null_values, "a null the operator set (to drop a chart default) must reach Helm"
    assert installed.config["global"]["exporters"]["auditLog"]["kubeAudit"]["enabled"] is False, "input untouched"
    assert not plan_release(settings(), INSTALLED, fake_repos(tmp_path), True).allow_null_values


def test_merge_values_replaces_non_maps() -> None:
    assert merge_values({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}, "d": {"e": 1}}) == \
        {"a": {"b": 1, "c": [2]}, "d": {"e": 1}}


def test_settings_carry_the_providers_cluster_and_helm_config() -> None:
    from components.settings import SettingsError, parse_settings

    from .conftest import base_config

    s = parse_settings(base_config(), {"sshPrivateKey"}, "dev", kubernetes={
        "kubeconfig": "/etc/kube/admin.conf", "context": "prod",
        "helmReleaseSettings": json.dumps({"repositoryConfigPath": "/r.yaml", "driver": None})})
    assert (s.kubeconfig, s.kube_context, s.helm_release_settings) == ("/etc/kube/admin.conf", "prod",
                                                                       {"repositoryConfigPath": "/r.yaml"})
    default = parse_settings(base_config(), {"sshPrivateKey"}, "dev").insight_agent
    assert (default.chart, default.repository, default.version) == ("insight-agent", "insight-release", None)
    assert (default.global_management_audit_value, default.kube_audit_value) == (None, None)  # read from the chart
    assert default.config_map == "insight-agent-fluent-bit-config"
    with pytest.raises(SettingsError, match="kubernetes:helmReleaseSettings: expected a mapping"):
        parse_settings(base_config(), {"sshPrivateKey"}, "dev", kubernetes={"helmReleaseSettings": "[]"})


def _leaves(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_leaves(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v
    return out


_keys = st.sampled_from(["global", "exporters", "auditLog", "kubeAudit", "enabled", "fluent-bit", "image", "x"])
_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3) | st.lists(st.integers(), max_size=2),
    lambda children: st.dictionaries(_keys, children, max_size=4), max_leaves=8)


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.dictionaries(_keys, _values, max_size=4), kube=st.booleans(), ghippo=st.booleans())
def test_property_the_plan_changes_only_our_two_values(config: dict[str, Any], kube: bool, ghippo: bool) -> None:
    installed = InstalledRelease("insight-agent", "insight-system", 1, "deployed", "insight-agent", "0.9.1", config)
    plan = plan_release(settings(collectGlobalManagementAudit=ghippo), installed, REPOS, kube)
    ours = {("global", "exporters", "auditLog", "kubeAudit", "enabled"): kube,
            ("global", "exporters", "auditLog", "ghippoAudit", "enabled"): ghippo}
    got = _leaves(plan.values)
    for path, value in ours.items():
        assert got[path] == value
    for path, value in _leaves(config).items():
        # Every operator leaf survives unless it sits on (or under) one of our two paths.
        if not any(path[:len(p)] == p or p[:len(path)] == path for p in ours):
            assert got[path] == value, path
    assert plan.version == "0.9.1" and plan.chart == "insight-release/insight-agent"
    assert set(got) - set(_leaves(config)) <= set(ours), "nothing but our values is added"

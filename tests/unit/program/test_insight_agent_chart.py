"""insight-agent: the chart read for its switches (current, older, neither), and the collection plan at preview."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from components.insight_agent.chart import (
    GHIPPO_VALUE,
    KUBE_AUDIT_CURRENT,
    KUBE_AUDIT_OLDER,
    ChartReadingError,
    ChartSource,
    chart_directory_source,
    read_switches,
    template_value_paths,
)
from components.insight_agent.collect import CollectionPlanError, LiveConfig, plan_collection
from components.insight_agent.fluent_bit import configmap_inputs
from components.insight_agent.helm_state import InstalledRelease, decode_release, release_from_json

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CURRENT, OLDER = FIXTURES / "insight-agent", FIXTURES / "insight-agent-v0.8"
WHERE = "Helm release insight-system/insight-agent"
OURS = "/var/log/kubernetes/audit/kube-apiserver-audit.log"


def record_of(chart_dir: Path, with_templates: bool = True, description: str = "Install complete") -> InstalledRelease:
    return release_from_json(decode_release(record_data(chart_dir, with_templates, description)))


def record_data(chart_dir: Path, with_templates: bool = True, description: str = "Install complete",
                config: dict[str, Any] | None = None) -> str:
    """A release record as Helm stores it (`data.release`), with the chart directory's values and templates."""
    src = chart_directory_source(str(chart_dir))
    templates = [{"name": n, "data": base64.b64encode(t.encode()).decode()} for n, t in src.templates or ()]
    doc: dict[str, Any] = {"name": "insight-agent", "namespace": "insight-system", "version": 4,
                           "info": {"status": "deployed", "description": description},
                           "chart": {"metadata": {"name": "insight-agent", "version": src.version},
                                     "values": dict(src.values)}, "config": config or {}}
    if with_templates:
        doc["chart"]["templates"] = templates
    return base64.b64encode(base64.b64encode(gzip.compress(json.dumps(doc).encode()))).decode()


def source_of(rel: InstalledRelease) -> ChartSource:
    return ChartSource(rel.chart_version, rel.chart_values, rel.templates, "the release record")


def test_current_chart_is_switched_by_kube_audit_enabled_and_has_a_ghippo_switch():
    rel = record_of(CURRENT)
    assert rel.templates and rel.description == "Install complete"
    sw = read_switches(source_of(rel), None, None, WHERE)
    assert (sw.kube_audit, sw.ghippo) == (KUBE_AUDIT_CURRENT, GHIPPO_VALUE)
    assert sw.kube_audit_globs == ("/var/log/*/audit/*.log",) and sw.has_ghippo_input and not sw.notes


def test_older_chart_is_switched_by_audit_log_enabled_and_has_no_ghippo_switch():
    sw = read_switches(source_of(record_of(OLDER)), None, None, WHERE)
    assert (sw.kube_audit, sw.ghippo) == (KUBE_AUDIT_OLDER, None)
    assert sw.kube_audit_globs == ("/var/log/*/audit/*.log",) and sw.has_ghippo_input


def test_leftover_defaults_of_a_reuse_values_upgrade_do_not_count_when_the_templates_tell():
    # `helm upgrade --reuse-values` from a current chart to an older one stores the old coalesced values
    # as the new chart's values: kubeAudit.enabled and ghippoAudit.enabled are there, but unread.
    rel = record_of(OLDER)
    polluted = {"global": {"exporters": {"auditLog": {"enabled": False, "kubeAudit": {"enabled": True},
                                                      "ghippoAudit": {"enabled": True}}}}}
    sw = read_switches(ChartSource(rel.chart_version, polluted, rel.templates, "the release record"), None, None,
                       WHERE)
    assert (sw.kube_audit, sw.ghippo) == (KUBE_AUDIT_OLDER, None)
    # Without templates the values are all there is to go by.
    bare = read_switches(ChartSource(rel.chart_version, polluted, None, "the release record"), None, None, WHERE)
    assert (bare.kube_audit, bare.ghippo) == (KUBE_AUDIT_CURRENT, GHIPPO_VALUE)


def test_a_chart_with_neither_is_refused_naming_version_and_what_was_looked_for():
    src = ChartSource("0.5.1", {"global": {"exporters": {"auditLog": {"kubeAudit": {"hostPath": "/x"}}}}},
                      (("templates/cm.yaml", "{{ .Values.global.other.enabled }}"),), "the release record")
    with pytest.raises(ChartReadingError) as err:
        read_switches(src, None, None, WHERE)
    text = str(err.value)
    assert "chart version 0.5.1" in text and KUBE_AUDIT_CURRENT in text and KUBE_AUDIT_OLDER in text
    assert "default values and 1 templates" in text and "kube-audit:insightAgent.kubeAuditValue" in text
    # The override is taken as is (the check after `up` verifies its effect).
    assert read_switches(src, "agent.audit.on", None, WHERE).kube_audit == "agent.audit.on"


def test_a_record_without_templates_is_read_from_its_default_values():
    rel = record_of(CURRENT, with_templates=False)
    assert rel.templates is None
    sw = read_switches(source_of(rel), None, None, WHERE)
    assert (sw.kube_audit, sw.ghippo, sw.kube_audit_globs) == (KUBE_AUDIT_CURRENT, GHIPPO_VALUE, ())
    assert sw.has_ghippo_input and "carries no templates" in sw.notes[0]
    older = read_switches(source_of(record_of(OLDER, with_templates=False)), None, None, WHERE)
    assert older.kube_audit == KUBE_AUDIT_OLDER
    bare = ChartSource("1.0.0", {"fluent-bit": {}}, None, "the release record")
    with pytest.raises(ChartReadingError, match=r"no templates in the record"):
        read_switches(bare, None, None, WHERE)


def test_template_paths_follow_variables():
    text = "{{- $a := .Values.global.exporters }}{{- $b := $a.auditLog }}{{ if $b.kubeAudit.enabled }}{{ end }}"
    assert "global.exporters.auditLog.kubeAudit.enabled" in template_value_paths([text])
    # A switch only a template reads (no default in values.yaml) is still a switch.
    src = ChartSource("2.0.0", {}, (("t", text),), "x")
    assert read_switches(src, None, None, WHERE).kube_audit == KUBE_AUDIT_CURRENT


# -- the collection plan ---------------------------------------------------------------------------

def plan(**kw: Any):
    rel = kw.pop("installed", record_of(CURRENT))
    args: dict[str, Any] = dict(config_map="insight-system/insight-agent-fluent-bit-config",
                                host_dir="/var/log/kubernetes/audit", host_log_path=OURS, enabled=True, ghippo=True,
                                switches=read_switches(source_of(rel), None, None, WHERE),
                                live=LiveConfig(()), installed=rel, release_inputs_change=False)
    args.update(kw)
    return plan_collection(**args)


def rendered(kube: bool, ghippo: bool) -> LiveConfig:
    parts = ["[INPUT]\n Name tail\n Tag kube.*\n Path /var/log/containers/*.log\n"]
    if ghippo:
        parts.append("[INPUT]\n Name tail\n Tag audit_log.ghippo.*\n Path /var/log/containers/*_ghippo*.log\n")
    if kube:
        parts.append("[INPUT]\n Name tail\n Tag audit_log.k8s.*\n Path /var/log/*/audit/*.log\n")
    return LiveConfig(tuple(configmap_inputs({"fluent-bit.conf": "\n".join(parts)})))


def test_a_log_nobody_collects_is_refused_naming_host_dir_and_glob():
    with pytest.raises(CollectionPlanError) as err:
        plan(host_dir="/var/log/audit", host_log_path="/var/log/audit/kube-apiserver-audit.log")
    text = str(err.value)
    assert "kube-audit:log.hostDir is /var/log/audit" in text and "tails /var/log/*/audit/*.log" in text
    assert "the chart's templates" in text
    with pytest.raises(CollectionPlanError, match=r"rotated: audit-2026-12-04T08-00-00.000.json"):
        plan(host_log_path="/var/log/kubernetes/audit/audit.json")
    # Off: nothing is written, nothing to refuse.
    assert plan(enabled=False, host_dir="/var/log/audit", host_log_path="/var/log/audit/a.log",
                live=rendered(False, True)).drift == ()


def test_glob_from_the_rendered_config_when_the_chart_s_is_templated():
    sw = read_switches(ChartSource("1", {"global": {"exporters": {"auditLog": {"kubeAudit": {"enabled": False}}}}},
                                   None, "x"), None, None, WHERE)
    with pytest.raises(CollectionPlanError, match=r"from the rendered insight-system/insight-agent-fluent-bit-config"):
        plan(switches=sw, live=rendered(True, True), host_dir="/var/log/audit", host_log_path="/var/log/audit/a.log")
    unknown = plan(switches=sw, live=rendered(False, True))
    assert any("not known before the change" in n for n in unknown.notes)


def test_ghippo_off_on_a_chart_without_a_switch_is_refused():
    older = record_of(OLDER)
    with pytest.raises(CollectionPlanError, match=r"collectGlobalManagementAudit is false, but .* no value"):
        plan(installed=older, switches=read_switches(source_of(older), None, None, WHERE), ghippo=False)
    # A chart with no ghippo input at all cannot honour `true`: refused, not a repair every run.
    bare = ChartSource("3.0.0", {"global": {"exporters": {"auditLog": {"enabled": False}}}},
                       (("t", "{{ if .Values.global.exporters.auditLog.enabled }}\n[INPUT]\n Name tail\n"
                               " Tag audit_log.k8s.*\n Path /var/log/*/audit/*.log\n{{ end }}\n"),), "x")
    with pytest.raises(CollectionPlanError, match=r"is true, but the installed insight-agent chart renders no"):
        plan(switches=read_switches(bare, None, None, WHERE), live=rendered(True, False))
    assert plan(switches=read_switches(bare, None, None, WHERE), ghippo=False, live=rendered(True, False)).drift == ()
    # With the override the chart is taken at its word (the check after `up` verifies it).
    over = read_switches(source_of(older), None, "global.x.ghippo", WHERE)
    assert plan(installed=older, switches=over, ghippo=False, live=rendered(True, False)).drift == ()


def test_hand_edited_config_is_drift_and_the_description_changes_once():
    p = plan(live=rendered(True, False))
    assert p.drift and "no [INPUT] tagged audit_log.ghippo.*" in p.drift[0]
    assert p.description == "kube-audit repair after revision 4: 1 FluentBit input problem(s)"
    # After the repair Helm records the description: the next preview keeps it, no change.
    repaired = record_of(CURRENT, description=p.description)
    again = plan(live=rendered(True, True), installed=repaired)
    assert (again.drift, again.description) == ((), p.description)
    # Never repaired: no description at all (existing stacks see no change).
    assert plan(live=rendered(True, True)).description is None
    # A change of the Release's values renders the chart anyway: no drift claimed.
    assert plan(live=rendered(False, True), release_inputs_change=True).drift == ()
    unreadable = plan(live=LiveConfig(None, "HTTP 403"))
    assert unreadable.drift == () and "not read (HTTP 403)" in unreadable.notes[-1]


def test_the_check_after_up_names_what_is_missing_or_extra(monkeypatch: pytest.MonkeyPatch):
    from components.insight_agent import check as chk
    from components.remote.kubeapi import KubeAccess

    conf = {"fluent-bit.conf": "[INPUT]\n Name tail\n Tag audit_log.ghippo.*\n Path /var/log/containers/*.log\n"
                               "[INPUT]\n Name tail\n Tag audit_log.k8s.*\n Path /var/log/*/audit/*.log\n"}
    seen: list[str] = []
    monkeypatch.setattr(chk.KubeApi, "get_or_none", lambda self, path: seen.append(path) or {"data": conf})
    access = KubeAccess(server="https://10.6.0.1:6443", insecure=True)
    cm = "insight-system/insight-agent-fluent-bit-config"
    ok = chk.check_config_map(access, cm, OURS, True, True)
    assert seen == ["/api/v1/namespaces/insight-system/configmaps/insight-agent-fluent-bit-config"]
    assert ok["collectedBy"] == ["[INPUT] Tag audit_log.k8s.* Path /var/log/*/audit/*.log (in fluent-bit.conf)"]
    with pytest.raises(RuntimeError) as err:
        chk.check_config_map(access, cm, OURS, False, False)
    text = str(err.value)
    assert "still reads" in text and "collectGlobalManagementAudit is false" in text
    assert "nothing on them is undone" in text
    monkeypatch.setattr(chk.KubeApi, "get_or_none", lambda self, path: None)
    with pytest.raises(RuntimeError, match=r"not found after the update.*fluentBitConfigMap"):
        chk.check_config_map(access, cm, OURS, True, True)


def test_gather_reads_the_chart_and_the_rendered_config_before_any_resource(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path):
    from components.insight_agent import component as insight_agent
    from components.insight_agent.plan import ReleasePlanError
    from components.settings import parse_settings

    from .conftest import base_config, fake_repos

    ours_on = {"global": {"exporters": {"auditLog": {"kubeAudit": {"enabled": True},
                                                     "ghippoAudit": {"enabled": True}}}}}
    secret = {"type": "helm.sh/release.v1", "metadata": {"name": "sh.helm.release.v1.insight-agent.v4"},
              "data": {"release": record_data(CURRENT, config=ours_on)}}
    live = {"fluent-bit.conf": "[INPUT]\n Name tail\n Tag audit_log.k8s.*\n Path /var/log/*/audit/*.log\n"}

    class FakeApi:
        def get(self, path: str, query: Any = None) -> Any:
            return {"items": [secret]}

        def get_or_none(self, path: str) -> Any:
            assert path == "/api/v1/namespaces/insight-system/configmaps/insight-agent-fluent-bit-config"
            return {"data": live}

    monkeypatch.setattr(insight_agent.KubeApi, "from_kubeconfig", classmethod(lambda cls, *a, **k: FakeApi()))
    repos = fake_repos(tmp_path, versions=("0.0.0-lab",))
    monkeypatch.setenv("HELM_REPOSITORY_CONFIG", str(repos.config_file))
    monkeypatch.setenv("HELM_REPOSITORY_CACHE", str(repos.cache_dir))
    settings = parse_settings(base_config(enabled="true"), {"sshPrivateKey"}, "dev")
    plan = insight_agent.gather_release_plan(settings)
    assert plan is not None and plan.collection is not None
    # The hand-deleted ghippo input is drift, with no change of values: the description forces the repair.
    assert plan.values == ours_on and plan.collection.drift
    assert plan.description == "kube-audit repair after revision 4: 1 FluentBit input problem(s)"
    assert any("audit_log.ghippo" in w for w in plan.collection.drift)
    bad = parse_settings(base_config(enabled="true", log={"hostDir": "/var/log/audit"}), {"sshPrivateKey"}, "dev")
    with pytest.raises(ReleasePlanError, match=r"kube-audit:log.hostDir is /var/log/audit.*tails /var/log/\*/audit"):
        insight_agent.gather_release_plan(bad)


@pytest.mark.parametrize("chart", [CURRENT, OLDER], ids=["current", "older"])
@pytest.mark.toolchain
def test_the_switch_read_is_the_one_helm_renders_with(chart: Path, tmp_path: Path):
    """Both stand-in charts rendered by the real `helm template` with the switch read from them, on and off."""
    import subprocess

    import yaml

    from components.insight_agent.fluent_bit import collection
    from lab.config import find_binary

    helm = find_binary("helm")
    if helm is None:
        pytest.skip("no helm binary (the toolchain builds it)")
    sw = read_switches(source_of(record_of(chart)), None, None, WHERE)
    for on in (True, False):
        out = subprocess.run([str(helm), "template", "insight-agent", str(chart), "--set",
                              f"{sw.kube_audit}={str(on).lower()}"], capture_output=True, text=True, check=True,
                             env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}).stdout
        (cm,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "ConfigMap"]
        assert cm["metadata"]["name"] == "insight-agent-fluent-bit-config"
        found = collection(configmap_inputs(cm["data"]), OURS)
        assert bool(found.kube_audit) is on and len(found.ghippo) == 1, (chart.name, on)

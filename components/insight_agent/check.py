"""After every change of insight-agent's release: the rendered FluentBit config collects what the stack says.

A dynamic resource that reads `<namespace>/<fluentBitConfigMap>` through the Kubernetes API once the
Release (and FluentBit's restart patch) are done, and fails the update when a tail input reading our
audit log (and its rotated names) exists while audit is off or is missing while it is on, or when the
ghippo input disagrees with `collectGlobalManagementAudit`. It runs last: the masters are already
changed and nothing on them is undone; the message says what is missing or extra.
"""

from __future__ import annotations

import uuid
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

from components.drift.props import drift_props, pending, with_hidden
from components.insight_agent.fluent_bit import collection, collection_problems, configmap_inputs
from components.remote.kubeapi import KubeAccess, KubeApi, KubeApiError

_INPUTS = ("configMap", "hostLogPath", "kubeAudit", "ghippo", "releaseRevision", "drift", "server")


def check_config_map(access: KubeAccess, config_map: str, host_log_path: str, kube_audit: bool,
                     ghippo: bool) -> dict[str, Any]:
    """The inputs that collect our log and ghippo's, or RuntimeError naming what is missing or extra."""
    namespace, name = config_map.split("/", 1)
    try:
        cm = KubeApi(access).get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    except KubeApiError as exc:
        raise RuntimeError(f"insight-agent: reading {config_map} after the update failed ({exc}); the masters "
                           "keep their audit settings (nothing on them is undone); run up again") from None
    if cm is None:
        raise RuntimeError(f"insight-agent: {config_map} not found after the update: the FluentBit config "
                           "cannot be checked; set kube-audit:insightAgent.fluentBitConfigMap to the ConfigMap "
                           "the chart renders. The masters keep their audit settings (nothing on them is undone)")
    found = collection(configmap_inputs(cm.get("data") or {}), host_log_path)
    problems = collection_problems(found, host_log_path, kube_audit, ghippo, config_map)
    if problems:
        raise RuntimeError(
            "insight-agent: after the update, the rendered FluentBit config does not collect what the stack says: "
            + "; ".join(problems) + ". The masters keep their audit settings (nothing on them is undone). Check "
            "which value the chart reads (kube-audit:insightAgent.kubeAuditValue, globalManagementAuditValue) and "
            "run up again")
    return {"collectedBy": [i.describe() for i in found.kube_audit], "ghippoInputs": [i.describe() for i in
                                                                                      found.ghippo]}


def _view(props: dict[str, Any]) -> dict[str, Any]:
    return {**props, "drift": pending(props), "server": props["access"]["server"]}


# Stable name: stack state refers to this class by module and name.
class FluentBitConfigCheckProvider(dynamic.ResourceProvider):
    """Checks (create/update) the rendered FluentBit config; delete leaves everything as it is."""

    serialize_as_secret_always = False

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        outs = check_config_map(KubeAccess.from_props(props["access"]), props["configMap"], props["hostLogPath"],
                                bool(props["kubeAudit"]), bool(props["ghippo"]))
        return {**props, **outs, "drift": [], "repair": []}

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(id_=uuid.uuid4().hex, outs=self._run(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        old, new = _view(olds), _view(news)
        return dynamic.DiffResult(changes=any(old.get(k) != new.get(k) for k in _INPUTS), replaces=[])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs=self._run(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        pass


class FluentBitConfigCheck(dynamic.Resource, module="kube-audit", name="FluentBitConfigCheck"):
    """The rendered FluentBit config, checked against the stack after every change of the release."""

    def __init__(self, name: str, access: KubeAccess, config_map: str, host_log_path: str, kube_audit: bool,
                 ghippo: bool, release_revision: pulumi.Input[Any], drift: list[str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(FluentBitConfigCheckProvider(), name, {
            "access": pulumi.Output.secret(access.to_props()), "configMap": config_map, "hostLogPath": host_log_path,
            "kubeAudit": kube_audit, "ghippo": ghippo, "releaseRevision": release_revision, **drift_props(drift),
            "collectedBy": None, "ghippoInputs": None,
        }, with_hidden(opts))

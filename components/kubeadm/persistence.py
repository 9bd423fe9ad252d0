"""kube-system/kubeadm-config carries the audit flags and mounts, so `kubeadm upgrade` keeps them.

A dynamic resource edits `data.ClusterConfiguration` with the pure editor (clusterconfig.py) through
a GET/PUT with the object's resourceVersion (a concurrent change fails the PUT instead of being
overwritten). The preview shows `apiServerAudit`, just the fields we own. Destroy, and switching
`kubeadm.persist` off, remove exactly what we added. A cluster without the ConfigMap declares no
resource; the stack output says why.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

from components.drift.props import drift_props, pending, with_hidden
from components.kubeadm.clusterconfig import ClusterConfigError, audit_view, edit
from components.manifest.desired import AuditState
from components.remote.kubeapi import KubeAccess, KubeApi, KubeApiError

CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
DATA_KEY = "ClusterConfiguration"
SOURCE = f"kube-system/kubeadm-config:data.{DATA_KEY}"
NOT_KUBEADM = "kube-system/kubeadm-config not found: not a kubeadm cluster, nothing recorded"
_INPUTS = ("state", "apiServerAudit", "drift", "server")


@dataclass(frozen=True)
class KubeadmObservation:
    """What the ConfigMap holds now, read while the program runs."""

    exists: bool | None
    """None: could not be read (see `error`)."""
    view: dict[str, Any] | None = None
    error: str | None = None


def observe_kubeadm(access: KubeAccess) -> KubeadmObservation:
    try:
        cm = KubeApi(access, timeout=10).get_or_none(CONFIGMAP)
    except KubeApiError as exc:
        return KubeadmObservation(None, error=str(exc))
    if cm is None:
        return KubeadmObservation(False)
    text = (cm.get("data") or {}).get(DATA_KEY)
    if not isinstance(text, str):
        return KubeadmObservation(None, error=f"{SOURCE} is missing")
    try:
        return KubeadmObservation(True, audit_view(text, SOURCE))
    except ClusterConfigError as exc:
        return KubeadmObservation(None, error=str(exc))


def drift_reasons(current: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """Plain reasons, by field, for how the ConfigMap's audit fields differ from the desired ones."""
    reasons = []
    have, want = set(current.get("extraArgs") or []), set(desired.get("extraArgs") or [])
    reasons += [f"kubeadm-config: apiServer.extraArgs lacks {a}" for a in sorted(want - have)]
    reasons += [f"kubeadm-config: apiServer.extraArgs has {a}, not wanted" for a in sorted(have - want)]
    hv = {v.get("name"): v for v in current.get("extraVolumes") or []}
    wv = {v.get("name"): v for v in desired.get("extraVolumes") or []}
    for name in sorted(set(hv) | set(wv), key=str):
        if hv.get(name) != wv.get(name):
            what = "lacks" if name not in hv else ("has, not wanted," if name not in wv else "differs in")
            reasons.append(f"kubeadm-config: apiServer.extraVolumes {what} {name}")
    return reasons


def _apply(access: KubeAccess, state: AuditState) -> dict[str, Any]:
    client = KubeApi(access)
    for _attempt in range(3):
        cm = client.get_or_none(CONFIGMAP)
        if cm is None:
            return {"recorded": False, "note": NOT_KUBEADM, "apiServerAudit": None}
        text = (cm.get("data") or {}).get(DATA_KEY)
        if not isinstance(text, str):
            raise RuntimeError(f"{SOURCE} is missing; nothing changed")
        new = edit(text, state, SOURCE)
        if new == text:
            return {"recorded": state.enabled, "note": None, "apiServerAudit": audit_view(new, SOURCE)}
        cm["data"][DATA_KEY] = new
        try:
            client.put(CONFIGMAP, cm)  # carries metadata.resourceVersion: a concurrent edit is a 409
        except KubeApiError as exc:
            if exc.status == 409:
                continue
            raise
        return {"recorded": state.enabled, "note": None, "apiServerAudit": audit_view(new, SOURCE)}
    raise RuntimeError(f"{SOURCE} kept changing under us (3 conflicts); nothing changed, run up again")


def _state(props: dict[str, Any]) -> AuditState:
    return AuditState(**json.loads(props["state"]))


def _view(props: dict[str, Any]) -> dict[str, Any]:
    return {**props, "drift": pending(props), "server": props["access"]["server"]}


# Stable name: stack state refers to this class by module and name.
class KubeadmConfigProvider(dynamic.ResourceProvider):
    """Records (create/update) or removes (delete) our audit settings in kubeadm's ClusterConfiguration."""

    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        outs = _apply(KubeAccess.from_props(props["access"]), _state(props))
        return dynamic.CreateResult(id_=uuid.uuid4().hex, outs={**props, **outs, "drift": [], "repair": []})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        old, new = _view(olds), _view(news)
        return dynamic.DiffResult(changes=any(old.get(k) != new.get(k) for k in _INPUTS), replaces=[])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        outs = _apply(KubeAccess.from_props(news["access"]), _state(news))
        return dynamic.UpdateResult(outs={**news, **outs, "drift": [], "repair": []})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        off = AuditState(**{**json.loads(props["state"]), "enabled": False})
        _apply(KubeAccess.from_props(props["access"]), off)


class KubeadmConfig(dynamic.Resource, module="kube-audit", name="KubeadmConfig"):
    """The audit flags and mounts in kube-system/kubeadm-config's ClusterConfiguration."""

    def __init__(self, name: str, access: KubeAccess, state: AuditState, desired: dict[str, Any],
                 drift: list[str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(KubeadmConfigProvider(), name, {
            "access": pulumi.Output.secret(access.to_props()), "state": json.dumps(asdict(state), sort_keys=True),
            "apiServerAudit": desired, **drift_props(drift), "recorded": None, "note": None,
        }, with_hidden(opts))


@dataclass(frozen=True)
class KubeadmPersistenceArgs:
    access: KubeAccess | None
    """How to reach the cluster (from the kubernetes provider's kubeconfig); None when it cannot be read."""
    state: AuditState
    """The desired audit state; its flags and mounts are what gets recorded."""
    observation: KubeadmObservation
    """What the ConfigMap holds now."""
    after: list[pulumi.Resource] = field(default_factory=list)
    """The last master's manifest change: the config describes what the masters already run."""


class KubeadmPersistence(pulumi.ComponentResource):
    """Mirrors the audit settings into kubeadm-config, or says in `note` why it did not."""

    note: str
    """What happened to kubeadm-config, for the stack outputs."""

    def __init__(self, name: str, args: KubeadmPersistenceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kube-audit:index:KubeadmPersistence", name, {}, opts)
        obs = args.observation
        # The fields we own, whatever the ClusterConfiguration version (the view is version-free).
        desired = audit_view(edit(_EMPTY_V1BETA4, args.state))
        if obs.exists is False:
            self.note = NOT_KUBEADM
        elif args.access is None:
            self.note = f"kubeadm-config not recorded: {obs.error}"
        else:
            reasons = drift_reasons(obs.view, desired) if obs.view is not None else []
            self.config = KubeadmConfig(f"{name}-config", args.access, args.state, desired, reasons,
                                        pulumi.ResourceOptions(parent=self, depends_on=args.after))
            self.note = ("audit flags and mounts recorded in kube-system/kubeadm-config" if args.state.enabled
                         else "no audit settings in kube-system/kubeadm-config")
        self.register_outputs({"note": self.note})


_EMPTY_V1BETA4 = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"

"""Edit a kubeadm ClusterConfiguration so `kubeadm upgrade` regenerates the audit settings.

Pure: text in, text out (no cluster access). Only `apiServer.extraArgs` entries named `audit-*` (in
any spelling: `audit_policy_file` is the same flag to kube-apiserver) and the two extraVolumes named
as the manifest planner names them are ours; every other field, entry,
key order and comment is kept (round-trip YAML). Enabled: ours are set to the desired state.
Disabled: ours are removed, and `extraArgs`/`extraVolumes`/`apiServer` that only we created go too,
so edit(edit(c, on), off) gives back c for a configuration that had no audit settings.

v1beta3 keeps extraArgs as a map of flag name (no dashes) to value; v1beta4 as a list of
`{name, value}`. extraVolumes is a list of `{name, hostPath, mountPath, readOnly?, pathType?}` in both.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from components.manifest import flags
from components.manifest.desired import LOG_VOLUME, POLICY_VOLUME, AuditState

VERSIONS = ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4")


class ClusterConfigError(ValueError):
    """The ClusterConfiguration cannot be edited; the message names the field."""


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 1 << 16
    # kubeadm writes block lists flush with their key ("- name: x" under "extraArgs:").
    y.indent(mapping=2, sequence=2, offset=0)
    return y


def desired_args(state: AuditState) -> list[tuple[str, str]]:
    """The audit flags as kubeadm extraArgs: name without dashes, value as a string."""
    return [(flag[2:].split("=", 1)[0], flag.split("=", 1)[1]) for flag in state.flags()]


def desired_volumes(state: AuditState) -> list[dict[str, Any]]:
    """The mounts the manifest planner writes, as kubeadm extraVolumes (same names and paths)."""
    if not state.enabled:
        return []
    return [
        {"name": LOG_VOLUME, "hostPath": state.log_host_dir, "mountPath": state.log_dir, "readOnly": False,
         "pathType": "DirectoryOrCreate"},
        {"name": POLICY_VOLUME, "hostPath": state.policy_dir, "mountPath": state.policy_dir, "readOnly": True,
         "pathType": "DirectoryOrCreate"},
    ]


def _load(text: str, source: str) -> CommentedMap:
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        raise ClusterConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(doc, CommentedMap):
        raise ClusterConfigError(f"{source}: expected a ClusterConfiguration mapping")
    if doc.get("kind") != "ClusterConfiguration" or doc.get("apiVersion") not in VERSIONS:
        raise ClusterConfigError(
            f"{source}: expected kind ClusterConfiguration with apiVersion {' or '.join(VERSIONS)}; got "
            f"{doc.get('apiVersion')!r} {doc.get('kind')!r}")
    return doc


def _audit_arg(name: Any) -> bool:
    """An extraArg kubeadm writes as an audit flag: `audit_policy_file` becomes `--audit_policy_file=`,
    which kube-apiserver reads as `--audit-policy-file` (flags.py)."""
    return ("--" + flags.normalize(str(name))).startswith(flags.AUDIT_PREFIX)


def _ours(volume: Any) -> bool:
    return isinstance(volume, dict) and volume.get("name") in (LOG_VOLUME, POLICY_VOLUME)


def _block(node: Any) -> Any:
    # `apiServer: {}` (as kubeadm uploads it) is a flow mapping; what we add must read as a block.
    if hasattr(node, "fa"):
        node.fa.set_block_style()
    return node


def _put(parent: CommentedMap, key: str, value: Any) -> None:
    """Set a collection we may have filled, or drop it when we left it empty."""
    if value:
        if key not in parent:
            parent[key] = value
        _block(value)
    elif key in parent:
        del parent[key]


def _edit_args_v1beta3(api: CommentedMap, state: AuditState, source: str) -> None:
    args = api.get("extraArgs")
    if args is not None and not isinstance(args, dict):
        raise ClusterConfigError(f"{source}: apiServer.extraArgs must be a map in v1beta3")
    args = CommentedMap() if args is None else args
    for key in [k for k in args if _audit_arg(k)]:
        del args[key]
    for name, value in desired_args(state):
        args[name] = value
    _put(api, "extraArgs", args)


def _edit_args_v1beta4(api: CommentedMap, state: AuditState, source: str) -> None:
    args = api.get("extraArgs")
    if args is not None and not isinstance(args, list):
        raise ClusterConfigError(f"{source}: apiServer.extraArgs must be a list of {{name, value}} in v1beta4")
    args = CommentedSeq() if args is None else args
    for i in reversed(range(len(args))):
        item = args[i]
        if isinstance(item, dict) and _audit_arg(item.get("name", "")):
            del args[i]
    for name, value in desired_args(state):
        entry = CommentedMap()
        entry["name"] = name
        entry["value"] = value
        args.append(entry)
    _put(api, "extraArgs", args)


def _edit_volumes(api: CommentedMap, state: AuditState, source: str) -> None:
    volumes = api.get("extraVolumes")
    if volumes is not None and not isinstance(volumes, list):
        raise ClusterConfigError(f"{source}: apiServer.extraVolumes must be a list")
    volumes = CommentedSeq() if volumes is None else volumes
    for i in reversed(range(len(volumes))):
        if _ours(volumes[i]):
            del volumes[i]
    for volume in desired_volumes(state):
        entry = CommentedMap()
        for key, value in volume.items():
            entry[key] = value
        volumes.append(entry)
    _put(api, "extraVolumes", volumes)


def edit(text: str, state: AuditState, source: str = "ClusterConfiguration") -> str:
    """Return the configuration with exactly our audit settings (none when disabled)."""
    doc = _load(text, source)
    api = doc.get("apiServer")
    if api is not None and not isinstance(api, CommentedMap):
        raise ClusterConfigError(f"{source}: apiServer must be a mapping")
    existed = api is not None
    api = CommentedMap() if api is None else api
    if str(doc["apiVersion"]).endswith("v1beta3"):
        _edit_args_v1beta3(api, state, source)
    else:
        _edit_args_v1beta4(api, state, source)
    _edit_volumes(api, state, source)
    if api and not existed:
        doc["apiServer"] = api
    if api:
        _block(api)
    elif existed and hasattr(api, "fa"):
        api.fa.set_flow_style()  # back to `apiServer: {}` as it was
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def audit_view(text: str, source: str = "ClusterConfiguration") -> dict[str, Any]:
    """Just the fields we own, as plain data: what the preview diff shows."""
    doc = _load(text, source)
    api = doc.get("apiServer") or {}
    args = api.get("extraArgs") or {}
    if isinstance(args, dict):
        pairs = [(str(k), str(v)) for k, v in args.items() if _audit_arg(k)]
    else:
        pairs = [(str(a.get("name")), str(a.get("value"))) for a in args
                 if isinstance(a, dict) and _audit_arg(a.get("name", ""))]
    volumes = [dict(v) for v in api.get("extraVolumes") or [] if _ours(v)]
    return {"extraArgs": [f"{k}={v}" for k, v in pairs], "extraVolumes": volumes}

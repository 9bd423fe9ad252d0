"""Plan a kube-apiserver static-pod manifest change: (manifest, desired audit state) -> new manifest.

Pure and deterministic: no I/O, no clock. The same functions run in the CLI, in the tests and on every
master (shipped inside the node bundle), so what a test proves is what a master does.

Only audit content is touched: `--audit-*` flags, the two volumeMounts/volumes named in `desired`
(and stale hand-made mounts at the same paths), and one annotation. Everything else is copied as is.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

import yaml

from components.manifest.desired import HASH_ANNOTATION, LOG_VOLUME, POLICY_VOLUME, AuditState

APISERVER_CONTAINER = "kube-apiserver"
AUDIT_FLAG_PREFIX = "--audit-"
# pflag lets a non-bool flag take its value as the next token; bool flags never do.
_BOOL_AUDIT_FLAGS = frozenset(
    {
        "--audit-log-compress",
        "--audit-log-batch-throttle-enable",
        "--audit-log-truncate-enabled",
        "--audit-webhook-batch-throttle-enable",
        "--audit-webhook-truncate-enabled",
    }
)

Pod = dict[str, Any]


class ManifestError(ValueError):
    """The manifest cannot be planned: not YAML, not a Pod, no kube-apiserver container."""


def parse_manifest(text: str, source: str) -> Pod:
    """Parse and sanity-check a static-pod manifest; errors name `source` (and the line for YAML)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{where}: not valid YAML: {problem}") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: expected a Pod manifest (a YAML mapping), got {type(doc).__name__}")
    if doc.get("kind") != "Pod" or doc.get("apiVersion") != "v1":
        raise ManifestError(
            f"{source}: expected apiVersion v1, kind Pod; got apiVersion {doc.get('apiVersion')!r}, "
            f"kind {doc.get('kind')!r}"
        )
    apiserver_container(doc, source)
    return doc


def apiserver_container(pod: Pod, source: str = "manifest") -> dict[str, Any]:
    spec = pod.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list):
        raise ManifestError(f"{source}: spec.containers is missing or not a list")
    for container in containers:
        if isinstance(container, dict) and container.get("name") == APISERVER_CONTAINER:
            return container
    raise ManifestError(f"{source}: no container named {APISERVER_CONTAINER!r} in spec.containers")


def render(pod: Pod) -> str:
    """Dump in kubeadm's style (block lists flush with their key, no line wrapping)."""
    return yaml.safe_dump(pod, sort_keys=False, default_flow_style=False, width=1 << 20)


# --- flags ---------------------------------------------------------------------------------------


def _flag_name(token: str) -> str:
    return token.split("=", 1)[0]


def _without_audit_flags(tokens: list[Any]) -> list[Any]:
    kept: list[Any] = []
    skip_value = False
    for token in tokens:
        if skip_value:
            skip_value = False
            if isinstance(token, str) and not token.startswith("-"):
                continue
        if isinstance(token, str) and token.startswith(AUDIT_FLAG_PREFIX):
            skip_value = "=" not in token and token not in _BOOL_AUDIT_FLAGS
            continue
        kept.append(token)
    return kept


def _is_flag(token: Any) -> bool:
    return isinstance(token, str) and token.startswith("--")


def _insert_sorted(tokens: list[Any], flags: list[str], first: int) -> list[Any]:
    """Insert our flags where kubeadm's alphabetical order puts them (before the first later flag).

    Only flag tokens are insertion points, so a two-token `--flag value` pair is never split.
    """
    index = len(tokens)
    for i in range(first, len(tokens)):
        if _is_flag(tokens[i]) and _flag_name(tokens[i]) > AUDIT_FLAG_PREFIX:
            index = i
            break
    return tokens[:index] + flags + tokens[index:]


def _converge_flags(container: dict[str, Any], state: AuditState) -> None:
    command = container.get("command")
    args = container.get("args")
    if isinstance(command, list):
        container["command"] = command = _without_audit_flags(command)
    if isinstance(args, list):
        container["args"] = args = _without_audit_flags(args)
    flags = state.flags()
    if not flags:
        return
    # Put the flags where the others live: kubeadm uses `command`, some installers use `args`.
    command_has_flags = isinstance(command, list) and any(_is_flag(t) for t in command[1:])
    args_has_flags = isinstance(args, list) and any(_is_flag(t) for t in args)
    if isinstance(command, list) and (command_has_flags or not args_has_flags):
        container["command"] = _insert_sorted(command, flags, first=1)
    elif isinstance(args, list):
        container["args"] = _insert_sorted(args, flags, first=0)
    else:
        container["args"] = list(flags)


# --- mounts and volumes --------------------------------------------------------------------------


def _under(path: Any, directory: str) -> bool:
    if not isinstance(path, str):
        return False
    inner, outer = path.rstrip("/"), directory.rstrip("/")
    return inner == outer or inner.startswith(outer + "/")


def _is_audit_mount(mount: Any, state: AuditState) -> bool:
    if not isinstance(mount, dict):
        return False
    if mount.get("name") in (POLICY_VOLUME, LOG_VOLUME):
        return True
    # A stale hand-made mount at our paths would collide with ours (the kubelet rejects duplicate
    # mountPaths), so it is audit content too.
    path = mount.get("mountPath")
    return _under(path, state.policy_dir) or _under(path, state.log_dir)


def _mounts_in_use(pod: Pod) -> set[str]:
    names: set[str] = set()
    spec = pod.get("spec") or {}
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            for mount in (container.get("volumeMounts") or []) if isinstance(container, dict) else []:
                if isinstance(mount, dict) and isinstance(mount.get("name"), str):
                    names.add(mount["name"])
    return names


def _our_mounts(state: AuditState) -> list[dict[str, Any]]:
    return [
        {"mountPath": state.log_dir, "name": LOG_VOLUME},
        {"mountPath": state.policy_dir, "name": POLICY_VOLUME, "readOnly": True},
    ]


def _our_volumes(state: AuditState) -> list[dict[str, Any]]:
    return [
        {"hostPath": {"path": state.log_host_dir, "type": "DirectoryOrCreate"}, "name": LOG_VOLUME},
        {"hostPath": {"path": state.policy_dir, "type": "DirectoryOrCreate"}, "name": POLICY_VOLUME},
    ]


def _set_or_drop(obj: dict[str, Any], key: str, items: list[Any]) -> None:
    if items:
        obj[key] = items
    else:
        obj.pop(key, None)


def _same_items(items: list[Any], wanted: list[dict[str, Any]]) -> bool:
    """Exactly `wanted`, in any order: kubeadm sorts volumes by name, so ours may sit anywhere."""
    return len(items) == len(wanted) and all(i in wanted for i in items) and all(w in items for w in wanted)


def _converge_mounts(pod: Pod, container: dict[str, Any], state: AuditState) -> None:
    mounts = container.get("volumeMounts")
    mounts = mounts if isinstance(mounts, list) else []
    spec = pod["spec"]
    volumes = spec.get("volumes")
    volumes = volumes if isinstance(volumes, list) else []
    if state.enabled and _same_items([m for m in mounts if _is_audit_mount(m, state)], _our_mounts(state)) and \
            _same_items([v for v in volumes if isinstance(v, dict) and v.get("name") in (POLICY_VOLUME, LOG_VOLUME)],
                        _our_volumes(state)):
        # Already converged (e.g. regenerated by kubeadm from kubeadm-config): leave the order alone.
        return
    removed = {m.get("name") for m in mounts if _is_audit_mount(m, state)}
    kept = [m for m in mounts if not _is_audit_mount(m, state)]
    _set_or_drop(container, "volumeMounts", kept + (_our_mounts(state) if state.enabled else []))

    in_use = _mounts_in_use(pod)
    ours = {POLICY_VOLUME, LOG_VOLUME}

    def stale(volume: Any) -> bool:
        name = volume.get("name") if isinstance(volume, dict) else None
        return name in ours or (name in removed and name not in in_use)

    kept_volumes = [v for v in volumes if not stale(v)]
    _set_or_drop(spec, "volumes", kept_volumes + (_our_volumes(state) if state.enabled else []))


def _converge_annotation(pod: Pod, state: AuditState) -> None:
    metadata = pod.setdefault("metadata", {})
    annotations = metadata.get("annotations")
    annotations = dict(annotations) if isinstance(annotations, dict) else {}
    annotations.pop(HASH_ANNOTATION, None)
    # The kubelet restarts a static pod only when its manifest changes; the policy is read once at
    # start-up, so a policy-only change must change the manifest too.
    if state.enabled and state.policy_hash:
        annotations[HASH_ANNOTATION] = state.policy_hash
    _set_or_drop(metadata, "annotations", annotations)  # type: ignore[arg-type]


def plan(pod: Pod, state: AuditState) -> Pod:
    """Return the converged manifest; the input is not modified. Idempotent by construction."""
    new = copy.deepcopy(pod)
    container = apiserver_container(new)
    _converge_flags(container, state)
    _converge_mounts(new, container, state)
    _converge_annotation(new, state)
    return new


# --- describing a change -------------------------------------------------------------------------


def audit_flags(pod: Pod) -> list[str]:
    container = apiserver_container(pod)
    tokens = list(container.get("command") or []) + list(container.get("args") or [])
    return [t for t in tokens if isinstance(t, str) and t.startswith(AUDIT_FLAG_PREFIX)]


def audit_enabled(pod: Pod) -> bool:
    return any(_flag_name(f) == "--audit-policy-file" for f in audit_flags(pod))


def summarize(old: Pod, new: Pod) -> list[str]:
    """One line per audit-relevant difference, for the report a master prints."""
    lines: list[str] = []
    before, after = audit_flags(old), audit_flags(new)
    lines += [f"- flag {f}" for f in before if f not in after]
    lines += [f"+ flag {f}" for f in after if f not in before]
    om = apiserver_container(old).get("volumeMounts") or []
    nm = apiserver_container(new).get("volumeMounts") or []
    lines += [f"- mount {m.get('name')} at {m.get('mountPath')}" for m in om if m not in nm]
    lines += [f"+ mount {m.get('name')} at {m.get('mountPath')}" for m in nm if m not in om]
    ov, nv = old.get("spec", {}).get("volumes") or [], new.get("spec", {}).get("volumes") or []
    lines += [f"- volume {v.get('name')}" for v in ov if v not in nv]
    lines += [f"+ volume {v.get('name')}" for v in nv if v not in ov]
    oa = (old.get("metadata") or {}).get("annotations") or {}
    na = (new.get("metadata") or {}).get("annotations") or {}
    if oa.get(HASH_ANNOTATION) != na.get(HASH_ANNOTATION):
        lines.append(f"~ annotation {HASH_ANNOTATION}: {oa.get(HASH_ANNOTATION)} -> {na.get(HASH_ANNOTATION)}")
    return lines


def unified_diff(old_text: str, new_text: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"{name} (before)",
            tofile=f"{name} (after)",
        )
    )

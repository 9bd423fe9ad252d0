"""Plan a kube-apiserver static-pod manifest change: (manifest, desired audit state) -> new manifest.

Pure and deterministic: no I/O, no clock. The same functions run in the CLI, in the tests and on every
master (shipped inside the node bundle), so what a test proves is what a master does.

Only audit content is touched: `--audit-*` flags, the two volumeMounts/volumes named in `desired`
(and stale hand-made mounts at the same paths), and one annotation. Everything else is kept as is,
down to comments, quoting and layout (see yamlrt.py): lists are edited in place, so a comment stays
with its item. `rewrite` then proves the new text reads, for the kubelet, as the old one with only
our changes, and refuses otherwise.
"""

from __future__ import annotations

import copy
import difflib
import posixpath
from typing import Any

from components.manifest import flags as apiflags
from components.manifest import mounts, podcheck, splice, yamlrt
from components.manifest.desired import HASH_ANNOTATION, AuditState
from components.manifest.yamlrt import ManifestError

APISERVER_CONTAINER = "kube-apiserver"
AUDIT_FLAG_PREFIX = apiflags.AUDIT_PREFIX

Pod = dict[str, Any]

__all__ = ["ManifestError", "Pod", "apiserver_container", "converged", "kubelet_pod", "parse_manifest", "plan",
           "render", "rewrite"]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else "a string"


def _check_shape(view: Any, doc: Any, source: str) -> None:
    """Refuse what the planner cannot edit safely, naming `file:line:col` and the field.

    `view` is what the kubelet reads (types as its decoder sees them), `doc` the round-trip document
    with line numbers; both have the same shape.
    """
    if not isinstance(view, dict):
        raise ManifestError(f"{source}: expected a Pod manifest (a YAML mapping), got {_kind(view)}")
    if view.get("kind") != "Pod" or view.get("apiVersion") != "v1":
        raise ManifestError(f"{source}: expected apiVersion v1, kind Pod; got apiVersion {view.get('apiVersion')!r}, "
                            f"kind {view.get('kind')!r}")
    for key in ("metadata", "spec"):
        if key in view and not isinstance(view[key], dict):
            raise ManifestError(f"{yamlrt.location(doc, key, source)}: {key} must be a mapping, got {_kind(view[key])}")
    annotations = (view.get("metadata") or {}).get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise ManifestError(f"{yamlrt.location(doc['metadata'], 'annotations', source)}: metadata.annotations must "
                            f"be a mapping, got {_kind(annotations)}")
    index = _container_index(view, source)
    container, rt = view["spec"]["containers"][index], doc["spec"]["containers"][index]
    where = f"spec.containers[{index}]"
    for key in ("command", "args", "volumeMounts"):
        items = container.get(key)
        if key in container and not isinstance(items, list):
            raise ManifestError(f"{yamlrt.location(rt, key, source)}: {where}.{key} must be a list, got {_kind(items)}")
        for i, item in enumerate(items or []):
            bad = not isinstance(item, dict) if key == "volumeMounts" else not isinstance(item, str)
            if bad:
                expected = "a mapping" if key == "volumeMounts" else "a string (quote it)"
                raise ManifestError(f"{yamlrt.location(rt[key], i, source)}: {where}.{key}[{i}] is {_kind(item)} "
                                    f"as the kubelet reads it; expected {expected}")
    command = container.get("command") or []
    if command and posixpath.basename(command[0]) != APISERVER_CONTAINER:
        raise ManifestError(f"{yamlrt.location(rt['command'], 0, source)}: {where}.command runs {command[0]!r}, not "
                            "kube-apiserver; flags inside a shell string or wrapper cannot be edited safely")
    _audit_positions(container, f"{source}: {where}")
    volumes = view["spec"].get("volumes")
    if volumes is not None and not (isinstance(volumes, list) and all(isinstance(v, dict) for v in volumes)):
        raise ManifestError(f"{yamlrt.location(doc['spec'], 'volumes', source)}: spec.volumes must be a list of "
                            "mappings")


def _container_index(pod: Any, source: str) -> int:
    spec = pod.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list):
        raise ManifestError(f"{source}: spec.containers is missing or not a list")
    for i, container in enumerate(containers):
        if isinstance(container, dict) and container.get("name") == APISERVER_CONTAINER:
            return i
    raise ManifestError(f"{source}: no container named {APISERVER_CONTAINER!r} in spec.containers")


def parse_manifest(text: str, source: str) -> Pod:
    """Parse and sanity-check a static-pod manifest; errors name `source:line:col` and the field."""
    return _parse(text, source)[0]


def _parse(text: str, source: str) -> tuple[Pod, Any]:
    doc, view = yamlrt.read(text, source)
    _check_shape(view, doc, source)
    return doc, view


def apiserver_container(pod: Pod, source: str = "manifest") -> dict[str, Any]:
    container: dict[str, Any] = pod["spec"]["containers"][_container_index(pod, source)]
    return container


def render(pod: Pod, like: str = "") -> str:
    """Dump in the layout of `like` (the text it was read from); kubeadm's style by default."""
    return yamlrt.dump(pod, like)


def kubelet_pod(text: str, source: str) -> Pod:
    """The pod as the kubelet's YAML step reads it (go-yaml's types), after parse_manifest's checks.

    What to judge a manifest by: `readOnly: yes` is a boolean there, as it is for the kubelet.
    """
    view: Pod = _parse(text, source)[1]
    return view


def converged(pod: Pod, state: AuditState) -> bool:
    """Nothing to do: the kubelet would see the planned pod as this one (kubelet_pod's reading)."""
    return podcheck.same_pod(pod, plan(pod, state))


def rewrite(text: str, state: AuditState, source: str) -> tuple[Pod, Pod, str]:
    """(old pod, new pod, new text); the new text is `text` when nothing changes for the kubelet.

    Refuses (ManifestError, nothing written) when the kubelet would reject the planned pod, when
    the new text would change bytes outside our lines (splice.py), or when the kubelet would read
    anything but our change differently in the new text than in the old one.
    """
    pod, view = _parse(text, source)
    expected = plan(view, state)
    if podcheck.same_pod(view, expected):
        # A rewrite the kubelet would not see (`readOnly: yes` -> `true`) restarts nothing: writing
        # it would fail the health gate, roll back, and show as drift again on every run.
        return pod, pod, text
    _refuse_rejected(pod, view, expected, source)
    new = plan(pod, state)
    new_text = splice.splice(text, render(pod, like=text), render(new, like=text), source)
    got = yamlrt.kubelet_view(new_text, source)
    if got != expected:
        where = _first_difference(expected, got)
        raise ManifestError(f"{source}: the rewrite would change how the kubelet reads {where}; edit that part by "
                            "hand (quote the value) and retry")
    return pod, new, new_text


def _refuse_rejected(doc: Pod, view: Pod, expected: Pod, source: str) -> None:
    found = podcheck.problems(view, expected, _container_index(view, source))
    if not found:
        return
    first = found[0]
    path = first.old_path or first.path[:max(i for i, p in enumerate(first.path) if isinstance(p, int))]
    also = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    already = "; the kubelet already rejects this manifest" if first.before else ""
    raise ManifestError(f"{yamlrt.locate(doc, path, source)}: {first.field}: {first.message}{also}{already}; "
                        "the kubelet would not run the planned pod, so it is not written")


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b or a[key] != b[key]:
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i in range(len(a)):  # zip(strict=) needs Python 3.10; masters may have 3.9
            if a[i] != b[i]:
                return _first_difference(a[i], b[i], f"{path}[{i}]")
    return f"{path or 'the document'} ({_kind(a)} -> {_kind(b)})"


# --- editing lists in place ------------------------------------------------------------------------


def _rebuild(seq: list[Any], order: list[tuple[int | None, Any]]) -> None:
    """Make `seq` the values in `order`; (old index, value) pairs keep that item's comments."""
    comments = getattr(seq, "ca", None)
    old = dict(comments.items) if comments is not None else {}
    list.__setitem__(seq, slice(None), [value for _, value in order])
    if comments is not None:
        comments.items.clear()
        for new_index, (old_index, _) in enumerate(order):
            if old_index is not None and old_index in old:
                comments.items[new_index] = old[old_index]


# --- flags ---------------------------------------------------------------------------------------
# Read as kube-apiserver reads them (flags.py): `--audit_policy_file` is an audit flag like
# `--audit-policy-file`, so enabling replaces it (or ours would not be the one in force) and
# disabling removes it (or audit would stay on).


def _audit_positions(container: dict[str, Any], where: str) -> dict[str, set[int]]:
    """{"command"|"args": indexes} of every audit flag in any spelling and, for `--flag value`, its value.

    Refuses a command line whose audit flags kube-apiserver might read otherwise than we do.
    """
    line, refs = apiflags.locate(container)
    if line.terminator is not None:
        key, i = refs[line.terminator]
        raise ManifestError(f"{where}.{key}[{i}]: '--' ends kube-apiserver's flags, and it refuses whatever "
                            "follows as arguments; remove it")
    found: dict[str, set[int]] = {}
    for flag in line.audit():
        key, i = refs[flag.start]
        if flag.doubt:
            raise ManifestError(f"{where}.{key}[{i}]: kube-apiserver may not read {flag.text} as a flag: "
                                f"{flag.doubt}; write that flag as --NAME=VALUE")
        if flag.value is None or (flag.stop - flag.start == 2 and flag.value.startswith("--")):
            written = flag.text.split(" ", 1)[0]
            raise ManifestError(f"{where}.{key}[{i}]: {written} is not followed by its value (the apiserver would "
                                f"read {flag.value!r}); write it as {written}=VALUE")
        for at in range(flag.start, flag.stop):
            k, j = refs[at]
            found.setdefault(k, set()).add(j)
    return found


def _audit_tokens(container: dict[str, Any]) -> list[str] | None:
    """Every audit flag as written, sorted; None when one is not a one-token `--flag=value`."""
    found: list[str] = []
    for flag in apiflags.parse_container(container).audit():
        if flag.stop - flag.start != 1 or "=" not in flag.text:
            return None
        found.append(flag.text)
    return sorted(found)


def _is_flag(token: Any) -> bool:
    return isinstance(token, str) and token.startswith("--")


def _insert_at(container: dict[str, Any], key: str) -> int:
    """Where kubeadm's alphabetical order puts our flags in container[key]: before the first flag
    that sorts later, by the name kube-apiserver reads. Never inside a `--flag value` pair, and never
    right after a bare flag that may take the next argument for its value (ours would become it)."""
    line, refs = apiflags.locate(container)
    here = [(refs[f.start][1], f) for f in line.flags if refs[f.start][0] == key]
    at = next((i for i, f in here if f.name > AUDIT_FLAG_PREFIX), len(container[key]))
    takes_next = {i for i, f in here if f.may_take_next}
    while at - 1 in takes_next:
        at -= 1
    return at


def _converge_flags(container: dict[str, Any], state: AuditState) -> None:
    drops = _audit_positions(container, f"spec.containers[name={APISERVER_CONTAINER}]")
    if state.enabled and _audit_tokens(container) == sorted(state.flags()):
        # Already exactly ours, wherever they sit: kubeadm v1beta4 appends extraArgs after its own
        # flags, and moving them would restart a freshly regenerated apiserver for nothing.
        return
    for key, drop in drops.items():
        tokens = container[key]
        if drop and key == "args" and len(drop) == len(tokens):
            # Args holding only our flags were ours (added under an empty command): an empty list
            # and none run the same, but the kubelet hashes them apart and would restart.
            del container[key]
        elif drop:
            _rebuild(tokens, [(i, t) for i, t in enumerate(tokens) if i not in drop])
    flags = state.flags()
    if not flags:
        return
    command, args = container.get("command"), container.get("args")
    # Put the flags where the others live: kubeadm uses `command`, some installers use `args`.
    command_has_flags = isinstance(command, list) and any(_is_flag(t) for t in command[1:])
    args_has_flags = isinstance(args, list) and any(_is_flag(t) for t in args)
    # An empty command is no command (the image's entrypoint runs): ours there would be the executable.
    if isinstance(command, list) and command and (command_has_flags or not args_has_flags):
        key = "command"
    elif isinstance(args, list):
        key = "args"
    else:
        container["args"] = list(flags)
        return
    tokens = container[key]
    at = _insert_at(container, key)
    old: list[tuple[int | None, Any]] = list(enumerate(tokens))
    _rebuild(tokens, old[:at] + [(None, f) for f in flags] + old[at:])
    why = apiflags.not_in_force(container, flags)  # ours must be what kube-apiserver reads
    if why:
        raise ManifestError(f"spec.containers[name={APISERVER_CONTAINER}].{key}: no place for our flags: {why}; "
                            "write the flags around them as --NAME=VALUE")


def _converge_annotation(pod: Pod, state: AuditState) -> None:
    # The kubelet restarts a static pod only when its manifest changes; the policy is read once at
    # start-up, so a policy-only change must change the manifest too.
    want = state.policy_hash if state.enabled and state.policy_hash else None
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict):
        if want is None:
            return
        metadata = pod["metadata"] = {}
    annotations = metadata.get("annotations")
    if want is not None:
        if not isinstance(annotations, dict):
            annotations = metadata["annotations"] = {}
        if annotations.get(HASH_ANNOTATION) != want:
            annotations[HASH_ANNOTATION] = want
    elif isinstance(annotations, dict) and HASH_ANNOTATION in annotations:
        del annotations[HASH_ANNOTATION]
        if not annotations:
            del metadata["annotations"]


def plan(pod: Pod, state: AuditState) -> Pod:
    """Return the converged manifest; the input is not modified. Idempotent by construction."""
    new = copy.deepcopy(pod)
    container = apiserver_container(new)
    _converge_flags(container, state)
    mounts.converge(new, container, state, _rebuild)
    _converge_annotation(new, state)
    return new


# --- describing a change -------------------------------------------------------------------------


def audit_flags(pod: Pod) -> list[str]:
    """Every audit flag of the apiserver, in any spelling, as `--name=value` (the name kube-apiserver
    reads), in order; a flag given twice is listed twice and the later one is in force."""
    return [f.canonical for f in apiflags.parse_container(apiserver_container(pod)).audit()]


def audit_enabled(pod: Pod) -> bool:
    return bool(apiflags.parse_container(apiserver_container(pod)).value("--audit-policy-file"))


def summarize(old: Pod, new: Pod) -> list[str]:
    """One line per audit-relevant difference, for the report a master prints."""
    lines: list[str] = []
    before, after = ([f.text for f in apiflags.parse_container(apiserver_container(p)).audit()] for p in (old, new))
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

"""The rewrite keeps every scalar's type as the kubelet's decoder reads it: checked with the real decoder.

`kubelet_decode` is k8s.io/apimachinery's YAML->JSON (sigs.k8s.io/yaml, go-yaml v2) and the v1 Pod
decoder, as the kubelet's static-pod file source uses them (see main.go). Two things are proven:
1. before/after: the pod the kubelet decodes from our rewrite is the old pod plus exactly our audit
   content, for manifests full of scalars that change type when unquoted;
2. parity: our Python model of that YAML reading (yamlrt.kubelet_view) agrees with the real one on
   a table of tricky plain scalars and on generated ones, so rewrite()'s own check can be trusted
   on masters, where no Go runs.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.manifest import planner, yamlrt
from components.manifest.desired import HASH_ANNOTATION, LOG_VOLUME, POLICY_VOLUME, AuditState

from .conftest import Decode

pytestmark = pytest.mark.kubelet

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "manifests"
NAMES = ["kubeadm-v1.31.yaml", "kubeadm-v1.24.yaml", "split-args-unordered.yaml", "hand-formatted.yaml",
         "flow-command.yaml"]
# Hashes that are not strings when written plain (go-yaml reads 1e5 as a float, y as a bool).
STATES = [AuditState(enabled=True, policy_hash="1e5"), AuditState(enabled=True, policy_hash="y", log_compress=True),
          AuditState(enabled=True, policy_hash="0x1F", log_path="/var/log/on/audit.log")]


def without_audit(pod: dict[str, Any]) -> dict[str, Any]:
    """The decoded pod minus what the planner owns."""
    pod = copy.deepcopy(pod)
    for container in pod["spec"]["containers"]:
        for key in ("command", "args"):
            if key in container:
                container[key] = [t for t in container[key] if not t.startswith("--audit-")]
        if "volumeMounts" in container:
            container["volumeMounts"] = [m for m in container["volumeMounts"]
                                         if m["name"] not in (LOG_VOLUME, POLICY_VOLUME)] or None
            if container["volumeMounts"] is None:
                del container["volumeMounts"]
    if "volumes" in pod["spec"]:
        pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] not in (LOG_VOLUME, POLICY_VOLUME)]
        if not pod["spec"]["volumes"]:
            del pod["spec"]["volumes"]
    annotations = pod["metadata"].get("annotations")
    if annotations is not None:
        annotations.pop(HASH_ANNOTATION, None)
        if not annotations:
            del pod["metadata"]["annotations"]
    return pod


@pytest.mark.parametrize("name", NAMES)
def test_rewrite_changes_nothing_but_our_content_for_the_kubelet(kubelet_decode: Decode, name: str) -> None:
    text = (FIXTURES / name).read_text()
    texts = [text]
    for state in STATES:
        texts.append(planner.rewrite(text, state, name)[2])
    texts.append(planner.rewrite(texts[1], AuditState(enabled=False), name)[2])
    before, *enabled, disabled = kubelet_decode(texts)
    assert "error" not in before, before
    for state, after in zip(STATES, enabled, strict=True):
        assert "error" not in after, after
        assert without_audit(after["pod"]) == before["pod"]
        container = next(c for c in after["pod"]["spec"]["containers"] if c["name"] == "kube-apiserver")
        assert [t for t in container.get("command", []) + container.get("args", []) if t.startswith("--audit-")] \
            == state.flags(), "our flags arrive as the strings we meant"
        assert after["pod"]["metadata"]["annotations"][HASH_ANNOTATION] == state.policy_hash
    assert disabled == before, "disable(enable(x)) decodes to x"


def test_hand_formatted_values_keep_their_quotes_and_comments() -> None:
    text = (FIXTURES / "hand-formatted.yaml").read_text()
    new = planner.rewrite(text, STATES[0], "hand-formatted.yaml")[2]
    for line in text.splitlines():
        assert line in new.splitlines(), f"line lost or changed: {line!r}"


def _scalar_manifest(value: str) -> str:
    return ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: i\n"
            f"    env:\n    - name: V\n      value: {value}\n")


def _go_kind(answer: dict[str, Any], value: str) -> str:
    if "error" in answer:
        error = answer["error"]
        if "unmarshal bool" in error:
            return "bool"
        if "unmarshal number" in error or "unsupported value" in error:
            return "number"
        return f"error: {error}"
    env = answer["pod"]["spec"]["containers"][0]["env"][0]
    if "value" not in env:
        return "null"
    return "str" if env["value"] == value else f"str {env['value']!r}"


def _python_kind(value: str) -> str:
    view = yamlrt.kubelet_view(_scalar_manifest(value), "t")["spec"]["containers"][0]["env"][0]["value"]
    if view is None:
        return "null"
    if isinstance(view, bool):
        return "bool"
    if isinstance(view, (int, float)):
        return "number"
    return "str" if view == value else f"str {view!r}"


TRICKY = """y Y n N yes Yes YES no NO on On ON off Off OFF true True TRUE false FALSE ~ null Null NULL
0 00 012 08 09 0x1F 0X1f 0o17 0O17 0b101 -0b1 +1 -1 +0x1F -0x1f 1_000 1__0 0x_1F 0b_1 1_ 99999999999999999999
9223372036854775807 9223372036854775808 18446744073709551615 18446744073709551616 -9223372036854775808
-9223372036854775809 1e3 1E3 1e+3 1e-3 1.5e-3 .5 -.5 +.5 1. 0. 0.1 1_0.5 08.5 1e 1e- 0e0 0x 0o 0b .inf -.Inf
+.INF .NaN .nan .NAN .Nan . .. 2001-12-14 2001-12-14T21:59:43.10-05:00 12:30 1:20 abc 1a a1 +a ._5 .5_ -_1 0_7
True1 yess nil none Off1 0x1g 1e3e3 ++1 --1 +-1
.0_0 .1_2e3 ._0 .0_ .0__0 .0_e1 +inf -Inf +Infinity inf nan NaN +nan -nan 0x1p3 0x1.8p1 -0x.8p1 0x1p 1_e3
1E309 -1e309 .1e999 1e-400 1.7976931348623157e308 1.7976931348623159e308""".split()  # noqa: SIM905 - a table reads best as text


def test_python_reads_tricky_plain_scalars_as_the_kubelet_does(kubelet_decode: Decode) -> None:
    answers = kubelet_decode([_scalar_manifest(v) for v in TRICKY])
    mismatches = {v: (_go_kind(a, v), _python_kind(v)) for v, a in zip(TRICKY, answers, strict=True)
                  if _go_kind(a, v) != _python_kind(v)}
    assert mismatches == {}, "value: (kubelet, ours)"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(alphabet="0123456789+-._eExXoObBnNyY~", min_size=1, max_size=7), min_size=20, max_size=20))
def test_python_reads_generated_plain_scalars_as_the_kubelet_does(kubelet_decode: Decode, values: list[str]) -> None:
    candidates = []
    for value in values:
        try:
            _python_kind(value)
        except (yamlrt.ManifestError, KeyError, TypeError):
            continue  # not a plain scalar in that position (e.g. "-"): the planner would refuse the file
        candidates.append(value)
    answers = kubelet_decode([_scalar_manifest(v) for v in candidates])
    for value, answer in zip(candidates, answers, strict=True):
        assert _go_kind(answer, value) == _python_kind(value), value


def test_go_resolve_values_match_numbers_too() -> None:
    # Spot checks of the values, not only the kinds (the decoder tests above only see kinds).
    assert yamlrt.go_resolve("012") == 10 and yamlrt.go_resolve("0o17") == 15 and yamlrt.go_resolve("08") == 8.0
    assert yamlrt.go_resolve("1_000") == 1000 and math.isnan(yamlrt.go_resolve(".NaN"))
    assert json.dumps(yamlrt.go_resolve("2001-12-14")) == '"2001-12-14"'

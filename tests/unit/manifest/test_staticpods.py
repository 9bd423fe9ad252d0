"""Preflight reads the manifests dir as the kubelet does: a second kube-apiserver pod is found however it
is written, a file we cannot read that way is refused, and a directory we need that a file blocks is
a problem on every master before any master changes. tests/kubelet/test_kubelet_dir.py checks the
same readings against the kubelet's own decoder and directory listing."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from components.manifest import preflight, staticpods
from tests.unit.manifest.helpers import make_etc, make_request

KUBEADM = (Path(__file__).resolve().parents[2] / "fixtures" / "manifests" / "kubeadm-v1.31.yaml").read_text()
KEY = ("kube-system", "kube-apiserver")


def nested(depth: int) -> str:
    return KUBEADM.replace("  labels:\n", "  deep: " + "[" * depth + "]" * depth + "\n  labels:\n")



RENAMED_FIRST = KUBEADM.replace("\n  name: kube-apiserver\n  namespace", "\n  name: other\n  name: kube-apiserver\n"
                                                                       "  namespace")


def write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(data)


# (what it is, how to plant it next to the manifest, what the kubelet makes of it)
SECOND_POD: list[tuple[str, Callable[[Path], None]]] = [
    ("a hard link", lambda d: os.link(d / "kube-apiserver.yaml", d / "kube-apiserver-copy.yaml")),
    ("a symlink", lambda d: (d / "zz.yaml").symlink_to("kube-apiserver.yaml")),
    ("a copy", lambda d: shutil.copy(d / "kube-apiserver.yaml", d / "kube-apiserver.yaml.bak")),
    ("a repeated name key (the last one counts)", write("a.yaml", RENAMED_FIRST.encode())),
    ("UTF-16 LE with a byte-order mark", write("b.yaml", ("\ufeff" + KUBEADM).encode("utf-16-le"))),
    ("UTF-16 BE with a byte-order mark", write("c.yaml", ("\ufeff" + KUBEADM).encode("utf-16-be"))),
    ("nesting 250 deep", write("d.yaml", nested(250).encode())),
    ("JSON, metadata given twice (Go merges them)", write("e.json", b'{"apiVersion": "v1", "kind": "Pod", '
                                                           b'"metadata": {"name": "kube-apiserver", "namespace": '
                                                           b'"kube-system"}, "metadata": {"labels": {"a": "b"}}}')),
    ("a YAML merge key", write("f.yaml", b"apiVersion: v1\nkind: Pod\n"
                                         b"base: &b {name: kube-apiserver, namespace: kube-system}\n"
                                         b"metadata:\n  <<: *b\n")),
    ("a first document of two", write("g.yaml", KUBEADM.encode() + b"---\nmetadata: {name: x}\n")),
]

NOT_A_POD_FOR_THE_KUBELET: list[tuple[str, Callable[[Path], None]]] = [
    ("a subdirectory (not read)", lambda d: (d / "old").mkdir() or shutil.copy(d / "kube-apiserver.yaml",
                                                                               d / "old" / "kube-apiserver.yaml")),
    ("a dot-file", write(".kube-apiserver.yaml.swp", KUBEADM.encode())),
    ("a second document", write("h.yaml", b"metadata: {name: x}\n---\n" + KUBEADM.encode())),
    ("over 10 MiB", write("i.yaml", KUBEADM.encode() + b"#" * (10 * 1024 * 1024))),
    ("UTF-16 without a byte-order mark", write("j.yaml", KUBEADM.encode("utf-16-le"))),
    ("invalid UTF-8", write("k.yaml", KUBEADM.encode().replace(b"kube-system", b"kube-\xffsystem"))),
    ("NUL bytes", write("filler", b"\0" * 4096)),
    ("another pod", write("etcd.yaml", KUBEADM.replace("\n  name: kube-apiserver\n", "\n  name: etcd\n").encode())),
    ("the same name in another namespace", write("l.yaml", KUBEADM.replace("namespace: kube-system",
                                                                             "namespace: other").encode())),
]


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    return make_etc(tmp_path / "etc")


@pytest.mark.parametrize(("what", "plant"), SECOND_POD, ids=[w for w, _ in SECOND_POD])
def test_a_second_kube_apiserver_pod_is_found(etc: Path, what: str, plant: Callable[[Path], None]) -> None:
    plant(etc / "manifests")
    request = make_request(etc)
    strays, doubtful = staticpods.scan(request.manifest, KEY)
    assert len(strays) == 1 and doubtful == [], (what, strays, doubtful)
    if what in ("a hard link", "a symlink"):
        assert strays[0].endswith(f"({what} to {request.manifest})")
    facts = preflight.gather(request, lambda url: True)
    assert any("also declares the kube-apiserver pod" in p for p in preflight.problems(facts, request))


@pytest.mark.parametrize(("what", "plant"), NOT_A_POD_FOR_THE_KUBELET, ids=[w for w, _ in NOT_A_POD_FOR_THE_KUBELET])
def test_what_the_kubelet_does_not_read_as_our_pod_is_no_problem(etc: Path, what: str,
                                                                 plant: Callable[[Path], None]) -> None:
    plant(etc / "manifests")
    request = make_request(etc)
    assert staticpods.scan(request.manifest, KEY) == ([], []), what
    assert preflight.problems(preflight.gather(request, lambda url: True), request) == []


@pytest.mark.parametrize(("name", "data", "why"), [
    ("bad.yaml", b"metadata: {name: kube-apiserver\n", "not YAML we can read"),
    ("tagged.yaml", b"metadata: {name: !!binary a3ViZS1hcGlzZXJ2ZXI=}\n", "metadata.name or namespace has an explicit YAML tag"),
    ("late.yaml", b"metadata: {name: x}\n---\n\x01", "a control character (U+0001) after the first YAML document"),
    ("deep.yaml", nested(5000).encode(), "nested deeper than 256 levels, which kube-audit does not read"),
])
def test_a_file_we_cannot_read_as_the_kubelet_does_is_refused_not_skipped(etc: Path, name: str, data: bytes,
                                                                          why: str) -> None:
    (etc / "manifests" / name).write_bytes(data)
    request = make_request(etc)
    problems = preflight.problems(preflight.gather(request, lambda url: True), request)
    assert len(problems) == 1 and problems[0].startswith(f"{etc / 'manifests' / name}: {why}"), problems
    assert "cannot tell whether the kubelet reads a second kube-apiserver pod from it" in problems[0]


@pytest.mark.parametrize("field", ["log_host_dir", "policy_dir", "backup_dir"])
@pytest.mark.parametrize("depth", [0, 2])
def test_a_directory_we_need_blocked_by_a_file_is_a_preflight_problem(etc: Path, field: str, depth: int) -> None:
    blocker = etc / "blocker"
    blocker.write_text("not a directory\n")
    wanted = blocker.joinpath(*(["sub"] * depth))
    request = make_request(etc)
    if field == "backup_dir":
        request = dataclasses.replace(request, backup_dir=str(wanted))
    else:
        request = dataclasses.replace(request, state=dataclasses.replace(request.state, **{field: str(wanted)}))
    problems = preflight.problems(preflight.gather(request, lambda url: True), request)
    expected = (f"{blocker} is not a directory" if depth == 0 else
                f"{blocker} is not a directory, so {wanted} cannot be created below it")
    assert expected in problems, problems


def test_a_disable_needs_no_log_or_policy_dir(etc: Path) -> None:
    (etc / "log").write_text("a file where the log dir was\n")
    request = make_request(etc, enabled=False)
    assert preflight.problems(preflight.gather(request, lambda url: True), request) == []

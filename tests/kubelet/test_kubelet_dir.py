"""Preflight's reading of the manifests dir (staticpods.py) against the kubelet's: the Go helper lists the
dir as the kubelet's file source does and decodes every file with the kubelet's own decoder.

For each planted file: what the kubelet reads as a second kube-apiserver pod, preflight reports as a
stray, or as doubtful (refused); it never reports one the kubelet does not read as that pod, unless
the kubelet cannot decode the file at all; and it reads the same files, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from components.manifest import staticpods
from tests.unit.manifest.helpers import make_etc
from tests.unit.manifest.test_staticpods import NOT_A_POD_FOR_THE_KUBELET, SECOND_POD, nested, write

from .conftest import ListDir

pytestmark = pytest.mark.kubelet

KEY = ("kube-system", "kube-apiserver")
DOUBTFUL: list[tuple[str, Callable[[Path], None]]] = [
    ("not YAML here", write("bad.yaml", b"metadata: {name: kube-apiserver\n")),
    ("a tagged name", write("tagged.yaml", b"metadata: {name: !!binary a3ViZS1hcGlzZXJ2ZXI=}\n")),
    ("nesting 5000 deep", write("deep.yaml", nested(5000).encode())),
]
CASES = [(w, p, "stray") for w, p in SECOND_POD] + [(w, p, "none") for w, p in NOT_A_POD_FOR_THE_KUBELET] + [
    (w, p, "doubtful") for w, p in DOUBTFUL]


@pytest.mark.parametrize(("what", "plant", "expected"), CASES, ids=[w for w, _, _ in CASES])
def test_preflight_reads_the_manifests_dir_as_the_kubelet_does(tmp_path: Path, kubelet_list_dir: ListDir, what: str,
                                                              plant: Callable[[Path], None], expected: str) -> None:
    directory = make_etc(tmp_path / "etc") / "manifests"
    plant(directory)
    manifest = str(directory / "kube-apiserver.yaml")
    listing = kubelet_list_dir(directory)
    read = [entry["file"] for entry in listing if not entry.get("skipped") or entry["skipped"].startswith("larger")]
    assert read == staticpods.kubelet_files(str(directory)), "the same files, in the same order"
    kubelet_key = {entry["file"]: (entry.get("kubelet") or {}).get("key") for entry in listing}
    kubelet_strays = {f for f, key in kubelet_key.items() if key == "kube-system/kube-apiserver" and f != manifest}
    strays, doubtful = staticpods.scan(manifest, KEY)
    ours = {s.split(" (")[0] for s in strays}
    doubts = {d.split(": ")[0] for d in doubtful}
    assert kubelet_strays <= ours | doubts, "every second pod the kubelet reads is reported"
    assert all(kubelet_key[f] in ("kube-system/kube-apiserver", None) for f in ours), \
        "a reported file is that pod for the kubelet, or one it cannot decode"
    got = "stray" if ours else "doubtful" if doubts else "none"
    assert got == expected, (what, strays, doubtful, listing)
    if expected == "stray":
        assert ours == kubelet_strays
    if expected == "doubtful":
        assert kubelet_strays == set() or kubelet_strays == doubts, "refused: the kubelet may read it as our pod"

"""The policy-reference guard reads a manifest's bytes as the kubelet does: checked with the real decoder.

Before a policy file is removed, every file in the manifests dir is read for a reference to it
(references.py). The kubelet decodes UTF-16 by its byte-order mark and keeps the last of two equal
keys; a reader that did neither removed a policy that a UTF-16 manifest, or the second `command:` of
a manifest, still named (issue 22). Here the real decoder and ours read the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.manifest import references, yamlrt

from .conftest import DecodeBytes

pytestmark = pytest.mark.kubelet

ENCODINGS = {
    "utf-8": b"",
    "utf-8 with BOM": b"\xef\xbb\xbf",
    "utf-16-le with BOM": b"\xff\xfe",
    "utf-16-be with BOM": b"\xfe\xff",
    "utf-16-le without BOM": None,
    "utf-32 with BOM": None,
}


def encode(text: str, encoding: str) -> bytes:
    if encoding == "utf-16-le without BOM":
        return text.encode("utf-16-le")
    if encoding == "utf-32 with BOM":
        return text.encode("utf-32")
    bom = ENCODINGS[encoding]
    assert bom is not None
    return bom + text.encode(encoding.split(" ")[0])


def manifest(commands: list[list[str]]) -> str:
    """A Pod whose container has one `command:` key per list (a key given twice when there are two)."""
    lines = "".join(f"    command: {json.dumps(c, ensure_ascii=False)}\n" for c in commands)
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: x}}\nspec:\n  containers:\n  - name: a\n{lines}"


def ours(data: bytes) -> Any:
    """The command the guard reads, or None when it cannot read the file."""
    try:
        pod = yamlrt.loose_load(references.kubelet_text(data))
    except Exception:
        return None
    return pod["spec"]["containers"][0].get("command")


def theirs(answer: dict[str, Any]) -> Any:
    return None if "error" in answer else answer["pod"]["spec"]["containers"][0].get("command")


def test_each_encoding_and_a_key_given_twice(kubelet_decode_bytes: DecodeBytes) -> None:
    cases = [encode(manifest(commands), encoding) for encoding in ENCODINGS
             for commands in ([["kube-apiserver", "--audit_policy_file=/p"]],
                              [["kube-apiserver", "--v=2"], ["kube-apiserver", "--audit-policy-file=/p"]])]
    answers = kubelet_decode_bytes(cases)
    assert [ours(data) for data in cases] == [theirs(a) for a in answers]
    read = [ours(data) for data in cases]
    assert read.count(None) == 4, "the kubelet reads neither UTF-16 without its mark nor UTF-32"


# Characters YAML allows in a document (no controls, surrogates, byte-order marks or line separators),
# astral ones included: UTF-16 writes those as surrogate pairs.
TOKEN = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp"),
                              blacklist_characters="\ufeff\x85"), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(TOKEN, min_size=1, max_size=4), min_size=1, max_size=2),
       st.sampled_from(sorted(ENCODINGS)))
def test_generated_manifests_read_alike(kubelet_decode_bytes: DecodeBytes, commands: list[list[str]],
                                        encoding: str) -> None:
    data = encode(manifest(commands), encoding)
    (answer,) = kubelet_decode_bytes([data])
    assert ours(data) == theirs(answer)

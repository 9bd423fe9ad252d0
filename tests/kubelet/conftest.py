"""The kubelet's own static-pod reading (built from k8s.io/kubernetes v1.37.2, see main.go) as fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from . import decoder

Decode = Callable[[list[str | bytes]], list[dict[str, Any]]]
ListDir = Callable[[Path], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def kubelet_binary() -> Path:
    try:
        return decoder.build()
    except decoder.GoMissingError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def kubelet_decode(kubelet_binary: Path) -> Decode:
    def run(texts: list[str | bytes]) -> list[dict[str, Any]]:
        return decoder.decode(kubelet_binary, texts)

    return run


@pytest.fixture(scope="session")
def kubelet_list_dir(kubelet_binary: Path) -> ListDir:
    def run(directory: Path) -> list[dict[str, Any]]:
        return decoder.list_dir(kubelet_binary, directory)

    return run


DecodeBytes = Callable[[list[bytes]], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def kubelet_decode_bytes() -> DecodeBytes:
    try:
        binary = decoder.build()
    except decoder.GoMissingError as err:
        pytest.skip(str(err))

    def run(files: list[bytes]) -> list[dict[str, Any]]:
        return decoder.decode_bytes(binary, files)

    return run

"""The kubelet's own decoder (built from k8s.io/api + k8s.io/apimachinery v0.37.2) as a fixture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from . import decoder

Decode = Callable[[list[str]], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def kubelet_decode() -> Decode:
    try:
        binary = decoder.build()
    except decoder.GoMissingError as err:
        pytest.skip(str(err))

    def run(texts: list[str]) -> list[dict[str, Any]]:
        return decoder.decode(binary, texts)

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

"""Build and drive the Go parity program (main.go) against the real k8s.io/apiserver code."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from . import gobuild
from .gobuild import cache_dir

__all__ = ["Runner", "build_parity_binary", "cache_dir"]


def build_parity_binary() -> Path:
    """The Go program, built once into the cache; skips the test session when Go is missing."""
    try:
        return gobuild.build()
    except gobuild.GoMissingError as err:
        pytest.skip(str(err))
    except gobuild.GoBuildError as err:
        pytest.fail(str(err))


Runner = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture(scope="session")
def go_apiserver() -> Runner:
    """Call the Go program with one JSON document; returns its JSON answer."""
    binary = build_parity_binary()

    def run(payload: dict[str, Any]) -> dict[str, Any]:
        result = subprocess.run(
            [str(binary)], input=json.dumps(payload), capture_output=True, text=True, timeout=600, check=False
        )
        assert result.returncode == 0, result.stderr[-2000:]
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer

    return run

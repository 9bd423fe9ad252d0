"""Fixtures for the node program's write paths, including real tiny filesystems (tmpfs)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.unit.manifest.helpers import make_etc


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    return make_etc(tmp_path)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """`tiny_fs(name, size="64k", ro=False)` mounts a fresh tmpfs at tmp_path/name; all unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (full-disk and read-only cases use a real tiny filesystem)")
    mounted: list[Path] = []

    def mount(name: str, size: str = "64k", ro: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir()
        options = f"size={size}" + (",ro" if ro else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)

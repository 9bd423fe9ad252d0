"""`write-file --mode`: a permission mode from 0 to 0777, nothing else, and refused before any write.

`int("-1", 8)` is -1, which os.open turns into 07777 (setuid, setgid, sticky): issue 22.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.manifest import node
from components.manifest.files import MAX_MANIFEST_BYTES

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def write_file(monkeypatch: pytest.MonkeyPatch, path: Path, mode: str, data: bytes = b"rules: []\n",
               store: Path | None = None) -> int:
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    return node.main(["write-file", "--path", str(path), "--mode", mode, *(["--store", str(store)] if store else [])])


def nothing_written(root: Path) -> bool:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) == []


@pytest.mark.parametrize("mode", ["-1", "7777", "4755", "2600", "1600", "1000", "10000", "-600"])
def test_modes_beyond_0777_are_refused_before_anything_is_written(tmp_path: Path, mode: str,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "policy.yaml"
    root = tmp_path / "out"
    root.mkdir()
    assert write_file(monkeypatch, target, mode, store=root / "store") == 2
    err = capsys.readouterr().err
    assert f"--mode {mode!r} is not a permission mode from 0 to 0777" in err and "nothing was changed" in err
    assert "Traceback" not in err and nothing_written(root)


@PROPERTY
@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=0o1000)))
def test_any_mode_outside_0_to_0777_is_refused(tmp_path_factory: pytest.TempPathFactory, mode: int) -> None:
    root = tmp_path_factory.mktemp("w")
    with pytest.MonkeyPatch.context() as patch:
        assert write_file(patch, root / "f", oct(mode).replace("0o", "")) == 2
    assert nothing_written(root)


@PROPERTY
@given(st.integers(min_value=0, max_value=0o777))
def test_any_mode_from_0_to_0777_is_written_exactly(tmp_path_factory: pytest.TempPathFactory, mode: int) -> None:
    root = tmp_path_factory.mktemp("w")
    with pytest.MonkeyPatch.context() as patch:
        assert write_file(patch, root / "f", f"{mode:04o}") == 0
    assert os.stat(root / "f").st_mode & 0o7777 == mode


def test_a_non_octal_mode_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert write_file(monkeypatch, tmp_path / "f", "rw-------") == 2
    assert "is not an octal file mode" in capsys.readouterr().err and not (tmp_path / "f").exists()


def test_stdin_past_the_cap_is_refused_and_nothing_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    assert write_file(monkeypatch, target, "0600", b"#" * (MAX_MANIFEST_BYTES + 1)) == 2
    assert f"over {MAX_MANIFEST_BYTES} bytes" in capsys.readouterr().err
    assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["f"]
    assert write_file(monkeypatch, target, "0600", b"#" * MAX_MANIFEST_BYTES) == 0
    assert target.stat().st_size == MAX_MANIFEST_BYTES

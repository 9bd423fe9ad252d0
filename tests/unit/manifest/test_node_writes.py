"""Every write on a master is whole or not at all, and everything after the write restores on failure.

Full disks and read-only dirs are real tiny filesystems (tmpfs), signals are real signals sent to
this process, and the odd readiness answer comes from a real socket on loopback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components.manifest import files, node
from components.manifest.bundle import build_bundle
from components.manifest.desired import NodeRequest, RequestError
from tests.loopback import loopback_server
from tests.unit.manifest.helpers import FIXTURE, FakeClock, fill, make_etc, make_request, scripted

MANIFEST = "manifests/kube-apiserver.yaml"


def leftovers(directory: Path) -> list[str]:
    return sorted(p for p in os.listdir(directory) if p.endswith(".kube-audit.tmp"))


# --- whole writes ------------------------------------------------------------------------------------


def test_short_writes_are_continued_until_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    sizes: list[int] = []

    def dribble(fd: int, data: bytes | memoryview) -> int:
        sizes.append(real_write(fd, bytes(data[:100])))
        return sizes[-1]

    monkeypatch.setattr(os, "write", dribble)
    payload = FIXTURE.read_bytes()
    node.atomic_write(str(tmp_path / "f"), payload, 0o600)
    assert (tmp_path / "f").read_bytes() == payload
    assert len(sizes) == -(-len(payload) // 100), "one write per 100 bytes, none lost"


def test_a_write_the_kernel_never_accepts_fails_and_leaves_no_dot_file(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f").write_bytes(b"old")
    monkeypatch.setattr(os, "write", lambda fd, data: 0)
    with pytest.raises(node.WriteError, match="nothing changed"):
        node.atomic_write(str(tmp_path / "f"), b"new content", 0o600)
    assert (tmp_path / "f").read_bytes() == b"old" and leftovers(tmp_path) == []


def test_full_filesystem_keeps_the_old_file_and_says_nothing_changed(tiny_fs: Callable[..., Path]) -> None:
    disk = tiny_fs("disk")
    target = disk / "kube-apiserver.yaml"
    target.write_bytes(b"old: content\n")
    fill(disk)
    with pytest.raises(node.WriteError, match=r"No space left on device; nothing changed") as info:
        node.atomic_write(str(target), FIXTURE.read_bytes(), 0o600)
    assert info.value.path == str(target)
    assert target.read_bytes() == b"old: content\n"
    assert leftovers(disk) == [], "the partial dot-file is removed"


def test_full_manifests_disk_fails_the_change_before_anything_is_replaced(
        tiny_fs: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    etc = make_etc(tiny_fs("etc", size="256k"))
    original = (etc / MANIFEST).read_bytes()
    fill(etc / "manifests")
    text = make_request(etc, backup_dir=str(tmp_path / "backups")).to_json()
    waiter = scripted([False, True])
    assert node.main(["apply", "--request", text], gate=waiter) == 1
    assert "No space left on device; nothing changed" in capsys.readouterr().err
    assert (etc / MANIFEST).read_bytes() == original
    assert leftovers(etc / "manifests") == []
    assert waiter.calls == [], "no readiness wait: nothing was written"  # type: ignore[attr-defined]


def test_full_backup_disk_is_refused_before_the_manifest_is_touched(
        tiny_fs: Callable[..., Path], etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    backups = tiny_fs("backups")
    fill(backups)
    original = (etc / MANIFEST).read_bytes()
    text = make_request(etc, backup_dir=str(backups)).to_json()
    assert node.main(["apply", "--request", text], gate=scripted([True])) == 2
    err = capsys.readouterr().err
    assert "cannot back up" in err and "No space left on device" in err and "nothing was changed" in err
    assert (etc / MANIFEST).read_bytes() == original
    assert [p for p in os.listdir(backups) if p != "filler"] == []


def test_read_only_backup_dir_is_refused_naming_it(tiny_fs: Callable[..., Path], etc: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    read_only = tiny_fs("ro", ro=True)
    original = (etc / MANIFEST).read_bytes()
    for backup_dir in (read_only, read_only / "sub"):
        assert node.main(["apply", "--request", make_request(etc, backup_dir=str(backup_dir)).to_json()],
                         gate=scripted([True])) == 2
        err = capsys.readouterr().err
        assert str(backup_dir) in err and "nothing was changed" in err and "Traceback" not in err
    assert (etc / MANIFEST).read_bytes() == original


def test_backup_dir_that_is_a_file_is_refused(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (etc / "not-a-dir").write_text("x")
    for backup_dir in (etc / "not-a-dir", etc / "not-a-dir" / "sub"):
        assert node.main(["apply", "--request", make_request(etc, backup_dir=str(backup_dir)).to_json()],
                         gate=scripted([True])) == 2
        assert "is not a directory" in capsys.readouterr().err
    assert (etc / MANIFEST).read_bytes() == FIXTURE.read_bytes()


# --- restore on any failure or signal after the write ------------------------------------------------


def test_any_exception_while_waiting_restores_byte_for_byte(etc: Path) -> None:
    original = (etc / MANIFEST).read_bytes()

    def boom(n: int) -> None:
        if n == 2:
            raise RuntimeError("odd answer")

    with pytest.raises(node.NodeError, match=r"RuntimeError while waiting for kube-apiserver: odd answer; "
                                             r"restored the previous manifest from .*kube-audit\.bak") as info:
        node.converge(make_request(etc), scripted([True], hook=boom, manifest=etc / MANIFEST))
    assert info.value.code == 1
    assert (etc / MANIFEST).read_bytes() == original


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_while_waiting_restores_and_exits_1(etc: Path, signum: int,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    original = (etc / MANIFEST).read_bytes()
    before = signal.getsignal(signum)

    def kill(n: int) -> None:
        if n == 2:
            os.kill(os.getpid(), signum)

    waiter = scripted([True], hook=kill, manifest=etc / MANIFEST)
    assert node.main(["apply", "--request", make_request(etc).to_json()], gate=waiter) == 1
    err = capsys.readouterr().err
    assert f"interrupted by {signal.Signals(signum).name} while kube-apiserver was restarting" in err
    assert "restored the previous manifest from" in err
    assert (etc / MANIFEST).read_bytes() == original
    assert len(waiter.calls) == 2, "no readiness wait after a signal: the restore is what matters"  # type: ignore[attr-defined]
    assert signal.getsignal(signum) == before, "the previous handler is back"


def test_a_second_signal_does_not_cut_the_restore_short(etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = (etc / MANIFEST).read_bytes()
    real_write = files.atomic_write
    writes: list[str] = []

    def write_with_signal(path: str, data: bytes, mode: int) -> None:
        writes.append(path)
        if len(writes) == 3:  # backup, new manifest, then the restore: signalled in the middle of it
            os.kill(os.getpid(), signal.SIGTERM)
        real_write(path, data, mode)

    monkeypatch.setattr(node, "atomic_write", write_with_signal)
    monkeypatch.setattr(files, "atomic_write", write_with_signal)
    with pytest.raises(node.NodeError, match=r"interrupted by SIGTERM.*restored the previous manifest"):
        node.converge(make_request(etc), scripted([True], hook=lambda n: n == 1 and os.kill(os.getpid(), signal.SIGTERM),
                                                  manifest=etc / MANIFEST))
    assert (etc / MANIFEST).read_bytes() == original


def test_failing_restore_names_the_backup_to_copy_by_hand(etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = files.atomic_write
    writes: list[str] = []

    def failing_restore(path: str, data: bytes, mode: int) -> None:
        writes.append(path)
        if len(writes) == 3:
            raise node.WriteError(path, "No space left on device")
        real_write(path, data, mode)

    monkeypatch.setattr(node, "atomic_write", failing_restore)
    monkeypatch.setattr(files, "atomic_write", failing_restore)
    with pytest.raises(node.NodeError, match=r"could NOT restore .* copy .*kube-audit\.bak to .*kube-apiserver\.yaml by hand"):
        node.converge(make_request(etc), scripted([False], manifest=etc / MANIFEST))


def _odd_answer(conn: socket.socket) -> None:
    with conn:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 abc what\r\n\r\n")


@pytest.fixture
def odd_server() -> Iterator[str]:
    """A loopback server answering every request with a status line no HTTP client can parse."""
    with loopback_server(_odd_answer) as port:
        yield f"http://127.0.0.1:{port}/readyz"


def test_an_odd_http_answer_is_not_ready_rather_than_a_crash(odd_server: str) -> None:
    assert node.http_ready(odd_server) is False


def test_odd_readiness_answers_end_in_a_restore(etc: Path, odd_server: str) -> None:
    original = (etc / MANIFEST).read_bytes()
    clock = FakeClock()
    real_probe = dataclasses.replace(scripted([True], clock, manifest=etc / MANIFEST), probe=node.http_ready)
    with pytest.raises(node.NodeError, match=r"did not become ready .* restored the previous manifest"):
        node.converge(make_request(etc, readiness_url=odd_server), real_probe)
    assert (etc / MANIFEST).read_bytes() == original


# --- the request is type-checked before anything is written ------------------------------------------


def _request_json(etc: Path, **changes: object) -> str:
    data = json.loads(make_request(etc).to_json())
    for dotted, value in changes.items():
        target = data
        *path, last = dotted.split("__")
        for key in path:
            target = target[key]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return json.dumps(data)


BAD_REQUESTS = [
    ({"state__enabled": "false"}, r"state\.enabled: expected true or false, got \"false\""),
    ({"state__enabled": 0}, r"state\.enabled: expected true or false"),
    ({"state__enabled": KeyError}, r"state\.enabled: required"),
    ({"state__max_age": "30"}, r"state\.max_age: expected an integer >= 0"),
    ({"state__max_size": -1}, r"state\.max_size: expected an integer >= 0"),
    ({"state__max_backup": True}, r"state\.max_backup: expected an integer >= 0"),
    ({"state__log_mode": "fast"}, r"state\.log_mode: expected null, \"blocking\""),
    ({"state__log_compress": "yes"}, r"state\.log_compress: expected null, true or false"),
    ({"state__policy_file": ".."}, r"state\.policy_file: expected a file name"),
    ({"state__policy_dir": "etc/kubernetes"}, r"state\.policy_dir: expected a normalised absolute path"),
    ({"state__log_host_dir": "/var/log//audit"}, r"state\.log_host_dir: expected a normalised absolute path"),
    ({"state__log_path": "/audit.log"}, r"state\.log_path: expected a normalised absolute path in a directory"),
    ({"state__colour": "red"}, r"state\.colour: unknown field"),
    ({"manifest": "/etc/kubernetes/manifests/../kube-apiserver.yaml"}, r"manifest: expected a normalised absolute"),
    ({"backup_dir": 7}, r"backup_dir: expected a normalised absolute path"),
    ({"restart_timeout": "90"}, r"restart_timeout: expected a number > 0"),
    ({"ready_timeout": 0}, r"ready_timeout: expected a number > 0"),
    ({"readiness_url": "ftp://x"}, r"readiness_url: expected null or an http\(s\) URL"),
    ({"keep_backups": 0}, r"keep_backups: expected an integer >= 1"),
    ({"ready_consecutive": 0}, r"ready_consecutive: expected an integer >= 1"),
    ({"ready_consecutive": 2.5}, r"ready_consecutive: expected an integer >= 1"),
    ({"audit_write_timeout": "60"}, r"audit_write_timeout: expected a number >= 0"),
    ({"audit_write_timeout": -1}, r"audit_write_timeout: expected a number >= 0"),
    ({"log_margin_mb": True}, r"log_margin_mb: expected an integer >= 0"),
    ({"pod_log_dir": "var/log/pods"}, r"pod_log_dir: expected a normalised absolute path"),
    ({"master": ""}, r"master: expected a non-empty string"),
    ({"state": "on"}, r"state: required, a JSON object"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_REQUESTS)
def test_bad_request_fields_are_refused_naming_the_field(etc: Path, changes: dict[str, object], message: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    text = _request_json(etc, **changes)
    with pytest.raises(RequestError, match=message):
        NodeRequest.from_json(text)
    assert node.main(["apply", "--request", text], gate=scripted([True])) == 2
    assert "bad request" in capsys.readouterr().err
    assert (etc / MANIFEST).read_bytes() == FIXTURE.read_bytes() and not (etc / "tmp").exists()


@pytest.mark.parametrize(("text", "message"), [
    ('{"master": "m1", "master": "m2", "state": {"enabled": true}}', "master: given twice"),
    ("[1, 2]", "must be a JSON object"),
    ('{"master": "m1", ', "not valid JSON at line 1"),
])
def test_malformed_request_json_is_refused(text: str, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        NodeRequest.from_json(text)


def test_request_round_trips_through_json(etc: Path) -> None:
    request = make_request(etc, keep_backups=3, readiness_url="https://127.0.0.1:6443/readyz", ready_consecutive=5,
                           audit_write_timeout=12.5, log_margin_mb=0, pod_log_dir="/var/log/pods2")
    assert NodeRequest.from_json(request.to_json()) == request
    assert NodeRequest.from_json(request.to_json(compact=True)) == request


# --- what is read ---------------------------------------------------------------------------------------


def test_symlinked_manifest_is_refused_and_its_target_untouched(etc: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    real = etc / "real-kube-apiserver.yaml"
    (etc / MANIFEST).rename(real)
    (etc / MANIFEST).symlink_to(real)
    assert node.main(["apply", "--request", make_request(etc).to_json()], gate=scripted([True])) == 2
    assert f"is a symlink to {real}" in capsys.readouterr().err
    assert (etc / MANIFEST).is_symlink() and real.read_bytes() == FIXTURE.read_bytes()


def test_fifo_manifest_is_refused_without_blocking(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (etc / MANIFEST).unlink()
    os.mkfifo(etc / MANIFEST)
    assert node.main(["apply", "--request", make_request(etc).to_json()], gate=scripted([True])) == 2
    assert "is not a regular file" in capsys.readouterr().err


# --- backups ------------------------------------------------------------------------------------------


def test_only_the_newest_k_backups_are_kept_and_hand_made_files_are_left(etc: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (etc / "tmp").mkdir()
    (etc / "tmp" / "kube-apiserver.yaml.by-hand").write_text("mine")
    (etc / "tmp" / "kube-apiserver.yaml.20200101T000000Z.kube-audit.bak").write_text("oldest")
    now = [1_800_000_000.0]
    monkeypatch.setattr(node.time, "time", lambda: now[0])
    reports = []
    for i in range(4):
        now[0] += 1 if i != 2 else 0  # two changes in one second get -2
        reports.append(node.converge(make_request(etc, enabled=i % 2 == 0, keep_backups=2),
                                     scripted([False, True], manifest=etc / MANIFEST)))
    kept = sorted(p.name for p in (etc / "tmp").iterdir())
    assert kept == ["kube-apiserver.yaml.20270115T080002Z-2.kube-audit.bak",
                    "kube-apiserver.yaml.20270115T080003Z.kube-audit.bak", "kube-apiserver.yaml.by-hand"]
    assert Path(reports[-1]["backup"]).name == "kube-apiserver.yaml.20270115T080003Z.kube-audit.bak"
    pruned = [Path(p).name for r in reports for p in r["prunedBackups"]]
    assert pruned == ["kube-apiserver.yaml.20200101T000000Z.kube-audit.bak",
                      "kube-apiserver.yaml.20270115T080001Z.kube-audit.bak",
                      "kube-apiserver.yaml.20270115T080002Z.kube-audit.bak"]
    assert Path(reports[-1]["backup"]).read_bytes() != FIXTURE.read_bytes(), "the last backup is the enabled state"


def test_a_signal_before_the_write_changes_nothing(etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_backup = files.backup

    def backup_then_signal(*args: Any) -> str:
        path = real_backup(*args)
        os.kill(os.getpid(), signal.SIGTERM)
        return path

    monkeypatch.setattr(node, "backup", backup_then_signal)
    waiter = scripted([True])
    with pytest.raises(node.NodeError, match="interrupted by SIGTERM before the manifest was written; nothing changed"):
        node.converge(make_request(etc), waiter)
    assert (etc / MANIFEST).read_bytes() == FIXTURE.read_bytes()
    assert waiter.calls == []  # type: ignore[attr-defined]


def test_sigterm_to_the_shipped_program_restores_the_manifest(etc: Path, tmp_path: Path) -> None:
    """The real zipapp in its own process, a real SIGTERM while it waits for an apiserver that never comes."""
    bundle = build_bundle(tmp_path / "bundle")
    with socket.socket() as sock:  # a port nothing listens on: "down" at once, never ready
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    request = make_request(etc, ready_timeout=120, readiness_url=f"http://127.0.0.1:{port}/readyz")
    proc = subprocess.Popen([sys.executable, "-I", str(bundle), "apply", "--request", request.to_json()],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while b"--audit-" not in (etc / MANIFEST).read_bytes():  # wait until the new manifest is in place
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "interrupted by SIGTERM while kube-apiserver was restarting; restored the previous manifest" in err
    assert (etc / MANIFEST).read_bytes() == FIXTURE.read_bytes()

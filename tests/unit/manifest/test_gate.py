"""The new-instance gate: the pure judgement, and the /proc facts read from real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.manifest import gate

FLAGS = ("--audit-log-path=/var/log/audit/a.log", "--audit-policy-file=/etc/p.yaml")


def inst(pid: int = 7, started: float = 20.0, argv: tuple[str, ...] = ("/usr/local/bin/kube-apiserver", *FLAGS)
         ) -> gate.Instance:
    return gate.Instance(pid, started, argv)


WANT = gate.Expectation(written_at=10.0, flags=FLAGS)


@pytest.mark.parametrize(("found", "check", "detail"), [
    ([], "new-process", "no process listens"),
    ([inst(), inst(pid=8)], "new-process", "several processes listen on the readiness port: pids [7, 8]"),
    ([inst(argv=("python3", "-m", "http.server"))], "new-process", "pid 7 (python3) listens"),
    ([inst(started=10.0)], "new-process", "started before the manifest was written"),
    ([inst(argv=("kube-apiserver", FLAGS[0]))], "flags", "runs without ['--audit-policy-file=/etc/p.yaml']"),
    ([inst(argv=("kube-apiserver", *FLAGS, "--audit-log-maxage=1"))], "flags", "unexpected ['--audit-log-maxage=1']"),
])
def test_judge_refuses(found: list[gate.Instance], check: str, detail: str) -> None:
    verdict = gate.judge(found, WANT)
    assert not verdict.ok and verdict.check == check and detail in verdict.detail


def test_judge_accepts_the_new_instance_with_exactly_the_flags_in_any_order() -> None:
    assert gate.judge([inst(argv=("kube-apiserver", "--v=2", *reversed(FLAGS)))], WANT).ok
    # Disabling: the new instance must carry no --audit-* flag at all.
    off = gate.Expectation(written_at=10.0, flags=())
    assert gate.judge([inst(argv=("kube-apiserver", "--v=2"))], off).ok
    assert not gate.judge([inst()], off).ok


@pytest.fixture
def listening() -> Iterator[tuple[subprocess.Popen[bytes], int, float]]:
    """A real process that calls itself kube-apiserver (argv[0]) and listens on a TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = gate.boot_clock()
    code = ("import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True); time.sleep(60)")
    proc = subprocess.Popen(["kube-apiserver", "-c", code, "--audit-log-path=/x.log"], executable=sys.executable,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    yield proc, port, before
    proc.kill()
    proc.wait()


def test_listener_finds_the_real_process_its_start_time_and_argv(listening: tuple) -> None:
    proc, port, before = listening
    found = gate.listener(port)
    assert [i.pid for i in found] == [proc.pid]
    assert found[0].argv == ("kube-apiserver", "-c", found[0].argv[2], "--audit-log-path=/x.log")
    # Start time is on the boot clock, at clock-tick precision.
    assert before - 0.02 <= found[0].started <= gate.boot_clock()
    assert gate.judge(found, gate.Expectation(before - 1, ("--audit-log-path=/x.log",))).ok
    assert not gate.judge(found, gate.Expectation(gate.boot_clock(), ("--audit-log-path=/x.log",))).ok


def test_listener_is_empty_for_a_port_nobody_listens_on(listening: tuple) -> None:
    proc, port, _ = listening
    proc.kill()
    proc.wait()
    assert gate.listener(port) == []


def test_log_written_since(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    assert not gate.log_written_since(str(log), 0)
    log.write_text("")
    assert not gate.log_written_since(str(log), 0), "an empty file proves nothing"
    log.write_text("{}\n")
    assert gate.log_written_since(str(log), time.time() - 5)
    os.utime(log, (1000, 1000))
    assert not gate.log_written_since(str(log), 2000), "written before the change"


# --- flags read as kube-apiserver reads them (issue 22) ---------------------------------------------

def test_an_underscore_spelling_of_an_audit_flag_is_an_audit_flag() -> None:
    # The last one wins: this apiserver runs the old policy, so it is not the one we wanted.
    verdict = gate.judge([inst(argv=("kube-apiserver", *FLAGS, "--audit_policy_file=/etc/old.yaml"))], WANT)
    assert not verdict.ok and verdict.check == "flags"
    assert "unexpected ['--audit_policy_file=/etc/old.yaml']" in verdict.detail
    off = gate.Expectation(written_at=10.0, flags=())
    assert not gate.judge([inst(argv=("kube-apiserver", "--audit_log_path", "/var/log/a.log"))], off).ok


def test_flags_compare_as_the_apiserver_reads_them_not_as_written() -> None:
    two_forms = ("kube-apiserver", "--audit-log-path", "/var/log/audit/a.log", "--audit_policy_file=/etc/p.yaml")
    assert gate.judge([inst(argv=two_forms)], WANT).ok
    # A value token is not a flag of its own, and a repeated flag is one too many.
    assert gate.audit_tokens(two_forms) == sorted(FLAGS)
    twice = gate.judge([inst(argv=("kube-apiserver", *FLAGS, FLAGS[1]))], WANT)
    assert not twice.ok and f"unexpected [{FLAGS[1]!r}]" in twice.detail

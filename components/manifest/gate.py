"""The new-instance gate: proves the apiserver that answers is the one our manifest started.

`/readyz` answering is not enough: a restart faster than the poll, an old process that never
stopped, or any other process on the readiness port all answer. So, judged from the node itself:

  new-process  the process listening on the readiness port is kube-apiserver and started after
               the manifest was written (start time from /proc, on the boot clock);
  flags        its command line carries exactly the desired audit flags (none when disabling), read
               as kube-apiserver reads them: `--audit_policy_file=/old` is an audit flag too (flags.py);
  ready        /readyz answered N times in a row *from that same process* (a crash-looping
               apiserver that answers once and dies never gets there);
  audit-log    when enabling, the audit log file was written after the manifest write.

Facts (`listener`, `log_written_since`) read /proc and the file system; `judge` is pure. Stdlib only:
this module travels in the node bundle.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

from components.manifest import flags as apiflags

_TCP_LISTEN = "0A"


@dataclasses.dataclass(frozen=True)
class Instance:
    """The process that owns the listening socket on the readiness port."""

    pid: int
    started: float
    """Seconds since boot (CLOCK_BOOTTIME), from /proc/<pid>/stat."""
    argv: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Expectation:
    """What the new apiserver must look like."""

    written_at: float
    """Boot-clock seconds just before the manifest was replaced; the new process starts later."""
    flags: tuple[str, ...]
    """The exact `--audit-*` tokens wanted on its command line (empty: audit off)."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    ok: bool
    check: str
    detail: str


def audit_tokens(argv: tuple[str, ...] | list[str]) -> list[str]:
    """The audit flags of a process command line (argv[0] is the executable), any spelling or form,
    as sorted `--name=value`: what the gate compares."""
    return sorted(f.canonical for f in apiflags.parse_argv(argv).audit())


def _flag_difference(argv: tuple[str, ...], wanted: tuple[str, ...]) -> tuple[list[str], list[str]] | None:
    """(missing, unexpected as written) or None when argv's audit flags are exactly `wanted`."""
    have = apiflags.parse_argv(argv).audit()
    want = collections.Counter(f.canonical for f in apiflags.parse(list(wanted)).flags)
    got = collections.Counter(f.canonical for f in have)
    if got == want:
        return None
    surplus = got - want
    extra = []
    for flag in have:
        if surplus[flag.canonical] > 0:
            surplus[flag.canonical] -= 1
            extra.append(flag.text)
    return sorted((want - got).elements()), extra


def judge(instances: list[Instance], want: Expectation) -> Verdict:
    """Is the listener the new apiserver with the desired flags? Pure."""
    if not instances:
        return Verdict(False, "new-process", "no process listens on the readiness port")
    pids = sorted({i.pid for i in instances})
    if len(pids) > 1:
        return Verdict(False, "new-process", f"several processes listen on the readiness port: pids {pids}")
    inst = instances[0]
    name = os.path.basename(inst.argv[0]) if inst.argv else "?"
    if name != "kube-apiserver":
        return Verdict(False, "new-process", f"pid {inst.pid} ({name}) listens on the readiness port, "
                                             "not kube-apiserver")
    if inst.started <= want.written_at:
        return Verdict(False, "new-process", f"kube-apiserver pid {inst.pid} started before the manifest was "
                                             "written (the old instance)")
    difference = _flag_difference(inst.argv, want.flags)
    if difference is not None:
        missing, extra = difference
        return Verdict(False, "flags", f"kube-apiserver pid {inst.pid} runs without {missing} and with "
                                       f"unexpected {extra}")
    return Verdict(True, "flags", f"kube-apiserver pid {inst.pid} is new and has the desired audit flags")


# --- facts from the node -------------------------------------------------------------------------


def boot_clock() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _listen_inodes(port: int, proc: str) -> set[str]:
    inodes: set[str] = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            with open(os.path.join(proc, "self", table), encoding="ascii") as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == _TCP_LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def _process(pid: str, proc: str) -> Instance | None:
    try:
        with open(os.path.join(proc, pid, "stat"), encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
        with open(os.path.join(proc, pid, "cmdline"), "rb") as handle:
            argv = tuple(a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a)
    except OSError:
        return None
    # Field 22 (starttime, clock ticks since boot); the name before it may hold spaces and ')'.
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return Instance(pid=int(pid), started=ticks / os.sysconf("SC_CLK_TCK"), argv=argv)


def listener(port: int, proc: str = "/proc") -> list[Instance]:
    """Every process holding a listening TCP socket on `port` in this network namespace.

    The apiserver runs with hostNetwork, so its sockets are in ours; processes of other network
    namespaces (other containers, or other lab hosts sharing this kernel) are skipped unread.
    """
    inodes = _listen_inodes(port, proc)
    if not inodes:
        return []
    wanted = {f"socket:[{i}]" for i in inodes}
    try:
        own_net = os.readlink(os.path.join(proc, "self", "ns", "net"))
    except OSError:
        own_net = None
    found: list[Instance] = []
    # Processes named kube-apiserver first, and stop once every listening socket has its owner:
    # the usual case (the apiserver owns the port) then costs a handful of reads, not every fd
    # of every process on the node.
    for pid in sorted((p for p in os.listdir(proc) if p.isdigit()), key=lambda p: not _named_apiserver(p, proc)):
        if not wanted:
            break
        base = os.path.join(proc, pid)
        try:
            if own_net is not None and os.readlink(os.path.join(base, "ns", "net")) != own_net:
                continue
            fds = os.listdir(os.path.join(base, "fd"))
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(base, "fd", fd))
            except OSError:
                continue
            if target in wanted:
                wanted.discard(target)
                inst = _process(pid, proc)
                if inst is not None and inst not in found:
                    found.append(inst)
    return found


def _named_apiserver(pid: str, proc: str) -> bool:
    try:
        with open(os.path.join(proc, pid, "cmdline"), "rb") as handle:
            argv0 = handle.read(4096).split(b"\0", 1)[0]
    except OSError:
        return False
    return os.path.basename(argv0) == b"kube-apiserver"


def log_written_since(path: str, wall: float) -> bool:
    """The audit log exists, is not empty and was modified at or after `wall` (epoch seconds)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_size > 0 and st.st_mtime >= wall


# --- the gate loop -------------------------------------------------------------------------------


class GateError(Exception):
    """The new instance did not pass; `check` names which check failed."""

    def __init__(self, check: str, detail: str, passed: dict[str, float]) -> None:
        super().__init__(f"check {check!r} failed: {detail}")
        self.check = check
        self.detail = detail
        self.passed = passed


def _go_on() -> None:
    return None


@dataclasses.dataclass
class Gate:
    """Bounded polling of the checks above; every source is injectable so tests need no real time."""

    probe: Callable[[str], bool]
    listeners: Callable[[int], list[Instance]] = listener
    log_written: Callable[[str, float], bool] = log_written_since
    clock: Callable[[], float] = time.monotonic
    boot: Callable[[], float] = boot_clock
    """The clock /proc start times are on (the same as `clock` in tests)."""
    sleep: Callable[[float], None] = time.sleep
    interval: float = 0.25
    consecutive: int = 3
    check: Callable[[], None] = _go_on
    """Runs after every probe and sleep and may raise to stop the wait (node.py: a signal arrived)."""

    def wait(self, url: str, port: int, want: Expectation, *, restart_timeout: float, ready_timeout: float,
             audit_log: str | None = None, written_wall: float = 0.0, audit_timeout: float = 0.0) -> dict[str, Any]:
        """Return {check: seconds after the write when it passed}; raise GateError otherwise."""
        start = self.clock()
        passed: dict[str, float] = {}
        last = Verdict(False, "new-process", "not looked yet")
        streak_pid, streak = None, 0
        ready_deadline = start + restart_timeout + ready_timeout
        while True:
            now = self.clock()
            found = self.listeners(port)
            last = judge(found, want)
            if last.ok:
                passed.setdefault("new-process", round(now - start, 2))
                passed.setdefault("flags", round(now - start, 2))
                pid = found[0].pid
                if self.probe(url):
                    streak = streak + 1 if pid == streak_pid else 1
                    streak_pid = pid
                else:
                    streak, streak_pid = 0, None
                self.check()
            elif last.check == "flags":
                # A new kube-apiserver with other flags will not change its mind: the kubelet runs
                # a different manifest than ours (or someone edited it meanwhile).
                raise GateError(last.check, last.detail, passed)
            else:
                streak, streak_pid = 0, None
            if streak >= self.consecutive:
                passed["ready"] = round(now - start, 2)
                break
            if "new-process" not in passed and now - start >= restart_timeout:
                raise GateError("new-process", f"no new kube-apiserver within {restart_timeout:.0f}s: {last.detail}",
                                 passed)
            if now >= ready_deadline:
                why = last.detail if not last.ok else f"/readyz at {url} did not answer {self.consecutive} times " \
                                                      "in a row from one process"
                raise GateError("ready", f"kube-apiserver did not become ready within {ready_timeout:.0f}s: {why}",
                                passed)
            self.sleep(self.interval)
            self.check()
        if audit_log:
            self._wait_log(url, port, want, audit_log, written_wall, audit_timeout, start, passed, streak_pid)
        return passed

    def _wait_log(self, url: str, port: int, want: Expectation, path: str, wall: float, timeout: float,
                  start: float, passed: dict[str, float], pid: int | None) -> None:
        begin = self.clock()
        while not self.log_written(path, wall):
            if self.clock() - begin >= timeout:
                raise GateError("audit-log", f"{path} was not written within {timeout:.0f}s after ready", passed)
            self.sleep(self.interval)
            self.check()
        # Still the same healthy process: one that wrote a line and died does not count.
        found = self.listeners(port)
        if not judge(found, want).ok or found[0].pid != pid or not self.probe(url):
            raise GateError("ready", f"kube-apiserver pid {pid} stopped serving after it was ready", passed)
        passed["audit-log"] = round(self.clock() - start, 2)

"""Thin wrappers over ip(8), processes and sockets used by the lab."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def run(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    r = subprocess.run(list(cmd), check=False, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {(r.stderr or r.stdout or '').strip()}")
    return r


# -- network ----------------------------------------------------------------------------------

def link_exists(name: str, netns: str | None = None) -> bool:
    pre = ["-n", netns] if netns else []
    return run("ip", *pre, "link", "show", name, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def netns_list(prefix: str) -> list[str]:
    out = run("ip", "netns", "list", check=False).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(prefix))


def netns_pids(name: str) -> list[int]:
    if not netns_exists(name):
        return []
    out = run("ip", "netns", "pids", name, check=False).stdout
    return [int(x) for x in out.split() if x.isdigit()]


def has_addr(dev: str, cidr: str, netns: str | None = None) -> bool:
    pre = ["-n", netns] if netns else []
    out = run("ip", *pre, "-o", "addr", "show", "dev", dev, check=False).stdout
    return f" {cidr} " in out


def ensure_bridge(name: str, cidr: str) -> None:
    if not link_exists(name):
        run("ip", "link", "add", name, "type", "bridge")
    if not has_addr(name, cidr):
        run("ip", "addr", "add", cidr, "dev", name)
    run("ip", "link", "set", name, "up")


def ensure_host_net(netns: str, veth: str, bridge: str, cidr: str, gateway: str) -> None:
    if not netns_exists(netns):
        run("ip", "netns", "add", netns)
    if not link_exists(veth):
        if link_exists("eth0", netns):
            run("ip", "-n", netns, "link", "del", "eth0")
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    run("ip", "link", "set", veth, "master", bridge, "up")
    if not has_addr("eth0", cidr, netns):
        run("ip", "-n", netns, "addr", "add", cidr, "dev", "eth0")
    run("ip", "-n", netns, "link", "set", "lo", "up")
    run("ip", "-n", netns, "link", "set", "eth0", "up")
    run("ip", "-n", netns, "route", "replace", "default", "via", gateway)


def delete_host_net(netns: str, veth: str) -> None:
    if link_exists(veth):
        run("ip", "link", "del", veth, check=False)
    if netns_exists(netns):
        run("ip", "netns", "del", netns, check=False)


def delete_link(name: str) -> None:
    if link_exists(name):
        run("ip", "link", "del", name, check=False)


# -- processes --------------------------------------------------------------------------------

def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def pid_from_file(pid_file: Path, token: str) -> int | None:
    """The pid in pid_file if that process is alive and its command line holds token."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if pid_alive(pid) and any(token in part for part in cmdline(pid)):
        return pid
    return None


def stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM, wait up to timeout, then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def spawn(cmd: list[str], log: Path, **kw) -> subprocess.Popen:
    """Start a daemon that outlives the lab command (own session, output appended to log)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, close_fds=True, **kw)


# -- sockets ----------------------------------------------------------------------------------

def ssh_banner(ip: str, port: int = 22, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_for(what: str, check, timeout: float, interval: float = 0.5) -> float:
    """Poll check() until true; return seconds waited or raise TimeoutError naming what."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)

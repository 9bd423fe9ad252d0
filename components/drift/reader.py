"""Read-only facts from one master: its apiserver manifest, the policy file, the running apiserver.

Runs on the master as `python3 - '<request JSON>'` with this file's text on stdin, so it needs
nothing on the node (not the node program, which may not be there yet or may be an older build)
and no PyYAML: it only reads bytes and /proc; all parsing happens in the Pulumi program.
Standard library only, Python 3.9+. Writes nothing anywhere; prints one JSON object.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys

MAX_BYTES = 10 * 1024 * 1024  # the kubelet's limit for a static-pod file


def _read(path: str) -> tuple[bytes | None, str | None]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        return None, exc.strerror or str(exc)
    if len(data) > MAX_BYTES:
        return None, "larger than 10 MiB"
    return data, None


def manifest_fact(path: str) -> dict[str, str]:
    data, error = _read(path)
    if data is None:
        return {"path": path, "error": str(error)}
    # base64: the manifest may hold bytes that are not UTF-8; the program decides what they mean.
    return {"path": path, "b64": base64.b64encode(data).decode("ascii")}


def policy_fact(path: str) -> dict[str, object]:
    data, error = _read(path)
    if data is None:
        return {"path": path, "error": str(error)}
    try:
        # ctime, not mtime: any write or rename-into-place sets it, and no tool can set it back.
        changed: object = os.stat(path).st_ctime
    except OSError:
        changed = None
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "ctime": changed}


def _netns(pid: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _boot_time() -> int | None:
    data, _ = _read("/proc/stat")
    for line in (data or b"").splitlines():
        if line.startswith(b"btime "):
            return int(line.split()[1])
    return None


def _started(pid: str, boot: int | None) -> float | None:
    """When the process started, in seconds since the epoch; never later than the real start.

    `btime` is whole seconds rounded down, so this errs early by under a second: a process judged to
    have started after a file changed really did.
    """
    data, _ = _read(f"/proc/{pid}/stat")
    if data is None or boot is None:
        return None
    try:
        # Fields after the command name (which may hold spaces and parentheses); starttime is field 22.
        ticks = int(data[data.rindex(b")") + 2:].split()[19])
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (ValueError, IndexError, OSError):
        return None


def apiserver_processes() -> list[dict[str, object]]:
    """kube-apiserver processes in this host's network namespace (a static pod uses hostNetwork).

    The namespace check matters where one kernel runs several hosts' processes (a node with
    nested containers, the lab): only this host's apiserver is ours to compare.
    """
    mine = _netns("self")
    boot = _boot_time()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        data, _ = _read(f"/proc/{entry}/cmdline")
        if not data:
            continue
        argv = [a.decode("utf-8", "replace") for a in data.rstrip(b"\0").split(b"\0")]
        if os.path.basename(argv[0]) != "kube-apiserver" or _netns(entry) != mine:
            continue
        found.append({"pid": int(entry), "argv": argv, "started": _started(entry, boot)})
    return sorted(found, key=lambda p: str(p["pid"]).zfill(12))


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    facts: dict[str, object] = {"manifest": manifest_fact(request["manifest"])}
    if request.get("policy"):
        facts["policy"] = policy_fact(request["policy"])
    facts["apiserver"] = apiserver_processes()
    sys.stdout.write(json.dumps(facts, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

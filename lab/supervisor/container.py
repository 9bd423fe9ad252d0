"""The runtime half (internal mode ``container SPEC.json``): the apiserver's container, then exec.

Runs inside ``unshare -m --propagation private``, started by the host mode (host.py) with the spec
pods.container_spec made: a fresh tmpfs root with only the binary, /proc, /dev, /sys, a minimal /etc
and each hostPath volume at its mountPath; then chroot and exec the apiserver (same pid).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _ensure_target(path: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            with open(path, "a", encoding="utf-8"):
                pass


def run_container(spec_path: str) -> None:
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    os.unlink(spec_path)
    if os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{os.getppid()}/ns/mnt"):
        sys.exit("container: not in a private mount namespace")
    root = spec["rootfs"]
    os.makedirs(root, exist_ok=True)
    _mount("-t", "tmpfs", "-o", "mode=0755", "kalab-rootfs", root)
    for d in ("proc", "dev", "sys"):
        os.makedirs(f"{root}/{d}")
        _mount("--rbind", f"/{d}", f"{root}/{d}")
    for d in ("tmp", "run", "var/run", "etc", "usr/local/bin", "root"):
        os.makedirs(f"{root}/{d}", exist_ok=True)
    os.chmod(f"{root}/tmp", 0o1777)
    etc = {
        "hostname": spec["hostname"] + "\n",
        "hosts": spec["hosts"],
        "resolv.conf": "",
        "passwd": "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n",
        "group": "root:x:0:\nnogroup:x:65534:\n",
        "nsswitch.conf": "hosts: files dns\n",
    }
    for name, text in etc.items():
        with open(f"{root}/etc/{name}", "w", encoding="utf-8") as fh:
            fh.write(text)
    binary = f"{root}/usr/local/bin/kube-apiserver"
    _ensure_target(binary, False)
    _mount("--bind", spec["binary"], binary)
    _mount("-o", "remount,bind,ro", binary)
    # containerd orders mounts by destination depth so parents come first.
    for m in sorted(spec["mounts"], key=lambda m: (m["dst"].count("/"), m["dst"])):
        target = root + m["dst"]
        _ensure_target(target, os.path.isdir(m["src"]))
        _mount("--rbind", m["src"], target)
        if m["readOnly"]:
            _mount("-o", "remount,bind,ro", target)
    os.chroot(root)
    os.chdir(spec["workingDir"])
    argv = spec["command"]
    exe = argv[0]
    if "/" not in exe:
        for d in spec["env"]["PATH"].split(":"):
            if os.access(os.path.join(d, exe), os.X_OK):
                exe = os.path.join(d, exe)
                break
        else:
            sys.stderr.write(f"container: executable {argv[0]!r} not found in $PATH\n")
            sys.exit(127)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(exe, argv, spec["env"])

"""``python3 DIR [container SPEC.json | --name ...]``: the supervisor's entry point (host or container mode)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

if not __package__:
    # Run as `python3 DIR`: how the lab starts it (on a copy of this directory in its state dir,
    # since a host's private /tmp may hide the checkout) and how host mode starts the container
    # half. Python then puts DIR itself on sys.path; put its parent there instead and load DIR as
    # the package it is, so the relative imports below work whatever the copy is called.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[0] = os.path.dirname(_here)
    __package__ = os.path.basename(_here)  # PEP 366: the package this file belongs to
    importlib.import_module(__package__)

from .container import run_container  # after the package is importable (above)
from .host import Host

DESCRIPTION = "Lab node supervisor: plays the kubelet's static-pod role for kube-apiserver only."


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["container"]:
        run_container(argv[1])
        return
    p = argparse.ArgumentParser(description=DESCRIPTION)
    p.add_argument("--name", required=True)
    p.add_argument("--hostname", default="")
    p.add_argument("--bind", action="append", default=[], metavar="SRC:DST")
    p.add_argument("--overlay", action="append", default=[], metavar="DST:UPPER:WORK",
                   help="give the host a copy-on-write view of DST (applied before --bind)")
    p.add_argument("--outer-ns", action="append", default=[], metavar="KIND=NS",
                   help="the machine's namespaces (readlink /proc/self/ns/KIND of the caller)")
    p.add_argument("--manifests", default="/etc/kubernetes/manifests")
    p.add_argument("--apiserver-bin", required=True)
    p.add_argument("--rootfs", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--status", required=True)
    p.add_argument("--hosts-file", default="", help="/etc/hosts content for the container")
    p.add_argument("--sshd-config", default="")
    p.add_argument("--sshd-log", default="/dev/null")
    p.add_argument("--pod-log-dir", default="",
                   help="also write the apiserver's output where the kubelet does (e.g. /var/log/pods)")
    p.add_argument("--poll", type=float, default=0.5)
    p.add_argument("--backoff-initial", type=float, default=10.0)
    p.add_argument("--backoff-cap", type=float, default=300.0)
    a = p.parse_args(argv)
    a.hosts_file_text = Path(a.hosts_file).read_text() if a.hosts_file else "127.0.0.1 localhost\n"
    os.makedirs(a.run_dir, exist_ok=True)
    Host(a).run()


if __name__ == "__main__":
    main()

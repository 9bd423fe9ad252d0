"""Cost of one new-instance gate observation on this machine: finding the listener from /proc.

    python benchmarks/bench_gate.py [--seconds 2]

Prints numbers; it is not a test. The gate (components/manifest/gate.py) polls every 0.25 s; each
poll reads /proc/net/tcp{,6}, the network namespace of every process and the fds of the processes in
ours. A process named kube-apiserver listening on a loopback port stands in for the apiserver.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.manifest import gate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); "
            "print('up', flush=True); time.sleep(600)")
    proc = subprocess.Popen(["kube-apiserver", "-c", code], executable=sys.executable, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            found = gate.listener(port)
            calls += 1
        elapsed = time.perf_counter() - start
        assert [i.pid for i in found] == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
    processes = sum(1 for p in os.listdir("/proc") if p.isdigit())
    per_call_ms = elapsed / calls * 1000
    print(json.dumps({"processes_on_machine": processes, "calls": calls,
                      "ms_per_listener_lookup": round(per_call_ms, 2),
                      "share_of_a_0.25s_poll": round(per_call_ms / 250, 3)}, indent=1))


if __name__ == "__main__":
    main()

"""A kubelet-and-apiserver stand-in for the sshd tier: real processes, restarted when the manifest changes.

Each "apiserver" is a real process whose argv is `kube-apiserver <the manifest's flags>` (Python,
renamed through argv[0]) listening on a fixed loopback port, so the node program's new-instance gate
judges it exactly as it judges a real one: from /proc (owner of the listening socket, start time,
command line). When the manifest's bytes change the current process is killed and, `down_seconds`
later, a new one is started with the new flags; with audit flags it appends an event to the host
audit log as a real apiserver does. `comes_back = False` makes new processes answer 503 forever.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

_SERVER = """
import http.server, sys
ok = sys.argv[2] == "ok"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if ok else 503); self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeApiserver:
    """Restarts a `kube-apiserver`-named process whenever the watched manifest changes."""

    def __init__(self, manifest: Path, down_seconds: float) -> None:
        self.manifest, self.down_seconds, self.comes_back = manifest, down_seconds, True
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/readyz"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stop = threading.Event()
        self._seen = manifest.read_bytes()
        self._start(healthy=True)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _flags_and_log(self) -> tuple[list[str], Path | None]:
        pod = yaml.safe_load(self._seen)
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "kube-apiserver")
        flags = [a for a in container.get("command", [])[1:] if isinstance(a, str) and a.startswith("--")]
        path = next((f.split("=", 1)[1] for f in flags if f.startswith("--audit-log-path=")), None)
        host_dir = next((v["hostPath"]["path"] for v in pod["spec"].get("volumes") or [] if v["name"] == "audit-logs"),
                        None)
        return flags, (Path(host_dir) / Path(path).name if path and host_dir else None)

    def _start(self, healthy: bool) -> None:
        try:
            flags, log = self._flags_and_log()
        except (StopIteration, KeyError, TypeError, AttributeError, yaml.YAMLError):
            return  # the kubelet skips a manifest it cannot read: nothing runs
        self.proc = subprocess.Popen(["kube-apiserver", "-c", _SERVER, str(self.port), "ok" if healthy else "no",
                                      *flags], executable=sys.executable)
        self.starts += 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        if log is not None and healthy:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as handle:
                handle.write('{"kind":"Event","stage":"ResponseComplete"}\n')

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            data = self.manifest.read_bytes()
            if data != self._seen:
                self._seen = data
                self._kill()
                time.sleep(self.down_seconds)
                self._start(healthy=self.comes_back)

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._kill()

"""Host mode: the supervisor's loop, the host's "init" (see the package docstring for what it plays).

It sets up the host's mounts and hostname, keeps sshd running, and runs the apiserver pod the
manifests directory declares (pods.py), restarting it when the pod changes and backing off on crash
loops like the kubelet; the container itself is made by the runtime half (container.py), started
as ``python3 DIR container SPEC.json`` in a private mount namespace.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

from .podlog import copy_output
from .pods import APISERVER_KEY, container_spec, pod_identity, prepare_host_paths, scan_manifests

BACKOFF_RESET_AFTER = 600.0  # a container that ran this long starts a fresh backoff
# The directory `python3 DIR` runs (this package, or the lab's copy of it): the container half
# re-executes it.
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def _ns_of_parent(kind: str) -> str:
    for pid in (1, os.getppid()):
        try:
            return os.readlink(f"/proc/{pid}/ns/{kind}")
        except OSError:
            continue
    raise SystemExit(f"supervisor: cannot read the outer {kind} namespace; pass --outer-ns {kind}=...")


class Host:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.log_fh = open(args.log, "ab", buffering=0)  # noqa: SIM115 - lives as long as we do
        self.proc: subprocess.Popen | None = None
        self.proc_identity: str | None = None
        self.proc_started = 0.0
        self.grace = 30
        self.stop_deadline: float | None = None
        self.restart_after: float | None = None  # backoff: earliest next start
        self.crashes = 0
        self.starts = 0
        self.last_exit: dict | None = None
        self.last_errors: dict = {}
        self.desired: tuple | None = None
        self.sshd: subprocess.Popen | None = None
        self.sshd_next = 0.0
        self.stopping = False
        self.state = "idle"
        self.problem = ""

    # -- log ---------------------------------------------------------------------------------
    def mark(self, text: str) -> None:
        self.log_fh.write(f"### kalab {_now()} {self.a.name}: {text}\n".encode())

    def write_status(self) -> None:
        status = {
            "host": self.a.name,
            "supervisor_pid": os.getpid(),
            "state": self.state,
            "problem": self.problem,
            "apiserver_pid": self.proc.pid if self.proc and self.proc.poll() is None else None,
            "pod_identity": self.proc_identity,
            "manifest_file": self.desired[0] if self.desired else None,
            "starts": self.starts,
            "crashes": self.crashes,
            "started_at": self.proc_started or None,
            "backoff_until": self.restart_after,
            "last_exit": self.last_exit,
            "manifest_errors": self.last_errors,
            "sshd_pid": self.sshd.pid if self.sshd and self.sshd.poll() is None else None,
            "updated_at": time.time(),
        }
        tmp = self.a.status + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(status, fh, indent=1)
        os.replace(tmp, self.a.status)

    # -- setup -------------------------------------------------------------------------------
    def setup_namespaces(self) -> None:
        # Safety: never bind over the machine's own /etc/kubernetes. The caller passes the
        # namespaces it runs in (the machine's); ours must differ.
        outer = dict(x.split("=", 1) for x in self.a.outer_ns)
        for kind in ("mnt", "uts"):
            outer.setdefault(kind, _ns_of_parent(kind))
        if os.readlink("/proc/self/ns/mnt") == outer["mnt"]:
            sys.exit("supervisor: refusing to bind-mount in the machine's mount namespace")
        # Overlays first (a host's private copy-on-write view of a machine dir such as /var), then
        # binds, which may sit on top of an overlay (/var/log/kubernetes on /var).
        for spec in self.a.overlay:
            dst, upper, work = spec.split(":", 2)
            os.makedirs(upper, exist_ok=True)
            os.makedirs(work, exist_ok=True)
            subprocess.run(["mount", "-t", "overlay", "kalab-overlay", "-o",
                            f"lowerdir={dst},upperdir={upper},workdir={work}", dst], check=True)
        for spec in self.a.bind:
            src, dst = spec.split(":", 1)
            os.makedirs(src, exist_ok=True)
            if not os.path.isdir(dst):
                sys.exit(f"supervisor: bind target {dst} does not exist")
            subprocess.run(["mount", "--bind", src, dst], check=True)
        if self.a.hostname:
            if os.readlink("/proc/self/ns/uts") == outer["uts"]:
                sys.exit("supervisor: refusing to set the hostname in the machine's UTS namespace")
            subprocess.run(["hostname", self.a.hostname], check=True)

    # -- sshd --------------------------------------------------------------------------------
    def tend_sshd(self) -> None:
        if not self.a.sshd_config or self.stopping:
            return
        if self.sshd is not None and self.sshd.poll() is None:
            return
        if self.sshd is not None:
            self.mark(f"sshd exited with {self.sshd.returncode}")
            self.sshd = None
            self.sshd_next = time.monotonic() + 1.0
        if time.monotonic() < self.sshd_next:
            return
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with open(self.a.sshd_log, "ab") as out:
            self.sshd = subprocess.Popen(
                ["/usr/sbin/sshd", "-D", "-e", "-f", self.a.sshd_config],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            )

    # -- apiserver ---------------------------------------------------------------------------
    def read_desired(self) -> None:
        pods, errors = scan_manifests(self.a.manifests)
        if errors != self.last_errors:
            for name, err in sorted(errors.items()):
                self.mark(f"manifest {name} skipped: {err}")
            self.last_errors = errors
        # Only kube-system/kube-apiserver is run; other static pods are not simulated.
        self.desired = pods.get(APISERVER_KEY)

    def start(self, filename: str, pod: dict, identity: str) -> None:
        try:
            spec = container_spec(
                pod, rootfs=self.a.rootfs, binary=self.a.apiserver_bin,
                hostname=self.a.hostname or self.a.name, hosts=self.a.hosts_file_text,
            )
            prepare_host_paths(spec["mounts"])
        except (ValueError, OSError, KeyError, TypeError) as exc:
            self.problem = f"cannot create container: {exc}"
            self.mark(f"{self.problem} (pod {identity} from {filename})")
            self.crashes += 1
            self.restart_after = time.monotonic() + self.backoff()
            self.proc_identity = identity
            self.state = "backoff"
            return
        fd, spec_path = tempfile.mkstemp(prefix="apiserver-", suffix=".json", dir=self.a.run_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(spec, fh)
        self.starts += 1
        self.grace = spec["grace"]
        self.mark(
            f"start #{self.starts} pod={identity} file={filename} "
            f"cmd={shlex.join(spec['command'])}"
        )
        pod_log = self.pod_log_path(identity)
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "--", sys.executable, PACKAGE_DIR, "container", spec_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if pod_log else self.log_fh,
            stderr=subprocess.STDOUT if pod_log else self.log_fh,
        )
        if pod_log:
            threading.Thread(target=copy_output, args=(self.proc.stdout, self.log_fh, pod_log), daemon=True).start()
        self.proc_identity = identity
        self.proc_started = time.time()
        self.problem = ""
        self.state = "running"
        self.mark(f"started pid={self.proc.pid} pod={identity}")

    def pod_log_path(self, identity: str) -> str | None:
        """Where the kubelet keeps this container's log: one file per restart of the same pod UID."""
        if not self.a.pod_log_dir:
            return None
        pod_dir = os.path.join(self.a.pod_log_dir, f"kube-system_kube-apiserver-{self.a.hostname or self.a.name}_"
                                                   f"{identity}", "kube-apiserver")
        os.makedirs(pod_dir, exist_ok=True)
        restarts = sum(1 for n in os.listdir(pod_dir) if n.endswith(".log"))
        return os.path.join(pod_dir, f"{restarts}.log")

    def backoff(self) -> float:
        return min(self.a.backoff_initial * (2 ** max(self.crashes - 1, 0)), self.a.backoff_cap)

    def tick(self) -> None:
        now = time.monotonic()
        self.tend_sshd()
        if not self.stopping:
            self.read_desired()
        want = None if self.stopping or self.desired is None else self.desired
        want_id = pod_identity(want[0], want[1]) if want else None

        # Reap an exited apiserver.
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            ran = time.time() - self.proc_started
            self.last_exit = {"code": code, "at": time.time(), "ran_for": round(ran, 3),
                              "pod": self.proc_identity}
            self.mark(f"exited code={code} after {ran:.1f}s pod={self.proc_identity}")
            self.proc = None
            if self.stop_deadline is not None:  # we stopped it on purpose
                self.stop_deadline = None
                self.state = "idle"
            else:
                if ran >= BACKOFF_RESET_AFTER:
                    self.crashes = 0
                self.crashes += 1
                delay = self.backoff()
                self.restart_after = now + delay
                self.state = "backoff"
                self.mark(f"crash #{self.crashes}: back-off {delay:.0f}s")

        # Stopping in progress: escalate when the grace period is over.
        if self.proc is not None and self.stop_deadline is not None:
            if now >= self.stop_deadline:
                self.mark(f"grace period over: SIGKILL pid={self.proc.pid}")
                self.proc.kill()
                self.stop_deadline = now + 3600
            return

        # Running something that is no longer wanted: stop it.
        if self.proc is not None and self.proc_identity != want_id:
            why = "manifest removed" if want is None else f"pod changed to {want_id}"
            self.mark(f"{why}: SIGTERM pid={self.proc.pid} (grace {self.grace}s)")
            self.proc.send_signal(signal.SIGTERM)
            self.stop_deadline = now + self.grace
            self.state = "stopping"
            return

        if self.proc is None and want is not None:
            if self.proc_identity != want_id:  # a new pod: fresh backoff
                self.crashes = 0
                self.restart_after = None
            if self.restart_after is None or now >= self.restart_after:
                self.restart_after = None
                self.start(want[0], want[1], want_id)
        elif self.proc is None and want is None and self.state != "idle":
            self.state = "idle"
            self.proc_identity = None

    def run(self) -> None:
        self.setup_namespaces()
        self.mark(f"supervisor started pid={os.getpid()} manifests={self.a.manifests}")

        def _term(_sig, _frm):
            self.stopping = True

        signal.signal(signal.SIGTERM, _term)
        signal.signal(signal.SIGINT, _term)
        while True:
            self.tick()
            self.write_status()
            if self.stopping and self.proc is None:
                break
            time.sleep(self.a.poll)
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.terminate()
            try:
                self.sshd.wait(5)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
        self.state = "stopped"
        self.write_status()
        self.mark("supervisor stopped")

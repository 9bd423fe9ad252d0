#!/usr/bin/env python3
"""Lab node supervisor: plays the kubelet's static-pod role for kube-apiserver only.

One supervisor runs per lab host, as the first process of that host's network, mount and UTS
namespaces (it is the host's "init"). It

* gives the host a copy-on-write view of machine directories (``--overlay``, e.g. ``/var``) and
  bind-mounts the host's private directories (``--bind SRC:DST``) over the machine's paths, so
  each host has its own ``/etc/kubernetes``, ``/var/log/kubernetes``, ``/tmp`` and ``/var``;
* keeps the host's sshd running (``--sshd-config``);
* watches the static-pod manifests directory the way the kubelet reads it
  (pkg/kubelet/config/file.go): files matching the glob ``[^.]*`` (dot-files ignored), every other
  regular file parsed whatever its extension, in sorted name order; an invalid file is logged and
  skipped; files over 10 MiB are skipped; when two files declare the same pod (namespace/name) the
  one sorting last wins (the full re-list rule; the inotify ordering between re-lists is not
  modelled, so the lab is deterministic);
* runs the ``kube-system/kube-apiserver`` pod's container as the container runtime would: a
  private mount namespace with a fresh root (tmpfs) holding only the binary, /proc, /dev, /sys, a
  minimal /etc and each hostPath volume bind-mounted at its mountPath. A path the manifest does
  not mount is therefore really absent for the apiserver, as in a container;
* restarts the apiserver when the pod changes. The pod identity is a hash of the parsed pod plus
  the file it came from (the kubelet's UID is a hash of content, node and file path), so a
  comment-only edit restarts nothing and a different winning file restarts it. Stop = SIGTERM,
  wait ``terminationGracePeriodSeconds`` (default 30), SIGKILL;
* backs off on crash loops like the kubelet: 10 s, doubling, capped at 300 s
  (``--backoff-initial``/``--backoff-cap``); the count resets when the pod changes or after the
  container ran for 10 minutes;
* appends the apiserver's stdout/stderr to one log per host, with a ``### kalab`` marker line
  before each start and after each exit, and writes its state as JSON (``--status``);
* with ``--pod-log-dir``, also writes that output where the kubelet keeps container logs:
  ``<dir>/kube-system_kube-apiserver-<node>_<pod uid>/kube-apiserver/<restart>.log`` in CRI format.

Only the standard library and PyYAML are used: the lab runs this with Debian's python3.

Internal mode ``supervisor.py container SPEC.json`` is the "runtime" half: started by the
supervisor under ``unshare -m --propagation private``, it builds the root, then chroots and
execs the apiserver (same pid).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

MAX_MANIFEST_BYTES = 10 * 1024 * 1024  # kubelet: maxConfigLength
APISERVER_KEY = ("kube-system", "kube-apiserver")
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_ENTRYPOINT = ["/usr/local/bin/kube-apiserver"]
BACKOFF_RESET_AFTER = 600.0  # a container that ran this long starts a fresh backoff


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------------------------
# Reading the manifests directory (pure; unit-tested)
# --------------------------------------------------------------------------------------------


def _decode_pod(text: str) -> dict:
    """Decode one static-pod file as the kubelet would accept it, or raise ValueError."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"yaml: {exc}".replace("\n", " ")) from None
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    if doc.get("apiVersion") != "v1" or doc.get("kind") != "Pod":
        raise ValueError(f"not a v1 Pod (apiVersion={doc.get('apiVersion')!r}, kind={doc.get('kind')!r})")
    meta = doc.get("metadata") or {}
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ValueError("metadata.name is required")
    spec = doc.get("spec") or {}
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers:
        raise ValueError("spec.containers must be a non-empty list")
    return doc


def scan_manifests(directory: str) -> tuple[dict, dict]:
    """Return ({(namespace, name): (filename, pod)}, {filename: error}) for a manifests dir.

    Mirrors the kubelet file source: glob ``[^.]*``, sorted, subdirectories not read, invalid
    files skipped, the file sorting last wins for a duplicated pod.
    """
    pods: dict = {}
    errors: dict = {}
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return pods, errors
    for name in names:
        if name.startswith("."):
            continue
        path = os.path.join(directory, name)
        try:
            if not os.path.isfile(path):
                continue
            if os.path.getsize(path) > MAX_MANIFEST_BYTES:
                errors[name] = "larger than 10 MiB"
                continue
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            pod = _decode_pod(text)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            errors[name] = str(exc)
            continue
        meta = pod["metadata"]
        key = (meta.get("namespace") or "default", meta["name"])
        pods[key] = (name, pod)
    return pods, errors


def pod_identity(filename: str, pod: dict) -> str:
    """Stand-in for the static pod UID: hash of the parsed pod and its source file."""
    blob = json.dumps(pod, sort_keys=True, separators=(",", ":")) + "\0" + filename
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def container_spec(pod: dict, *, rootfs: str, binary: str, hostname: str, hosts: str) -> dict:
    """Turn the apiserver pod into what the runtime half needs (pure; raises ValueError)."""
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    ctr = next((c for c in containers if c.get("name") == "kube-apiserver"), containers[0])
    command = [str(x) for x in (ctr.get("command") or IMAGE_ENTRYPOINT)]
    args = [str(x) for x in (ctr.get("args") or [])]
    env = {"PATH": CONTAINER_PATH, "HOSTNAME": hostname, "HOME": "/root"}
    for item in ctr.get("env") or []:
        if isinstance(item, dict) and "name" in item and "value" in item:
            env[str(item["name"])] = str(item["value"])
    volumes = {}
    for vol in spec.get("volumes") or []:
        if isinstance(vol, dict) and vol.get("name"):
            volumes[vol["name"]] = vol
    mounts = []
    for vm in ctr.get("volumeMounts") or []:
        vol = volumes.get(vm.get("name"))
        if vol is None:
            raise ValueError(f"volumeMount {vm.get('name')!r} has no volume")
        hp = vol.get("hostPath")
        if not isinstance(hp, dict) or not hp.get("path"):
            continue  # only hostPath volumes are simulated
        mounts.append(
            {
                "name": vm["name"],
                "src": os.path.normpath(hp["path"]),
                "dst": os.path.normpath(vm["mountPath"]),
                "type": hp.get("type") or "",
                "readOnly": bool(vm.get("readOnly")),
            }
        )
    grace = spec.get("terminationGracePeriodSeconds")
    return {
        "rootfs": rootfs,
        "binary": binary,
        "hostname": hostname,
        "hosts": hosts,
        "command": command + args,
        "env": env,
        "workingDir": ctr.get("workingDir") or "/",
        "mounts": mounts,
        "grace": 30 if grace is None else int(grace),
    }


def prepare_host_paths(mounts: list) -> None:
    """Kubelet hostPath type checks plus the runtime's creation of missing directories."""
    for m in mounts:
        src, kind = m["src"], m["type"]
        if kind in ("", "DirectoryOrCreate"):
            if not os.path.exists(src):
                os.makedirs(src, mode=0o755, exist_ok=True)
        elif kind == "FileOrCreate":
            if not os.path.exists(src):
                os.makedirs(os.path.dirname(src), exist_ok=True)
                with open(src, "a", encoding="utf-8"):
                    pass
                os.chmod(src, 0o644)
        elif kind == "Directory":
            if not os.path.isdir(src):
                raise ValueError(f"hostPath type check failed: {src} is not a directory")
        elif kind == "File":
            if not os.path.isfile(src):
                raise ValueError(f"hostPath type check failed: {src} is not a file")
        elif kind in ("Socket", "CharDevice", "BlockDevice"):
            if not os.path.exists(src):
                raise ValueError(f"hostPath type check failed: {src} does not exist")
        else:
            raise ValueError(f"hostPath {src}: unsupported type {kind!r}")


# --------------------------------------------------------------------------------------------
# Host mode
# --------------------------------------------------------------------------------------------


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
            ["unshare", "-m", "--propagation", "private", "--", sys.executable,
             os.path.abspath(__file__), "container", spec_path],
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


def cri_line(line: bytes) -> bytes:
    """One line as the kubelet's CRI log format has it: time, stream, full-line tag, text."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
    return stamp + b" stderr F " + line.rstrip(b"\n") + b"\n"


def copy_output(pipe, log_fh, pod_log: str) -> None:
    """Tee the apiserver's output: raw into the lab's apiserver.log, CRI lines into the pod log."""
    with open(pod_log, "ab", buffering=0) as pod_fh:
        for line in iter(pipe.readline, b""):
            log_fh.write(line)
            pod_fh.write(cri_line(line))
    pipe.close()


# --------------------------------------------------------------------------------------------
# Container mode (runs inside `unshare -m --propagation private`)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["container"]:
        run_container(argv[1])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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

"""What the end-to-end tests drive and look at: the Pulumi CLI, the lab hosts' disks, the apiservers.

Everything here observes from outside, as an operator would: the real `pulumi` binary with the
lab's offline environment, each master's files through the lab state dir (the host's own
/etc/kubernetes and /var/log/kubernetes), the supervisor's status, and HTTPS to each apiserver.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import itertools
import json
import os
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lab import lab as labmod
from lab.audit import events as host_events
from lab.config import REPO, Host, Lab
from lab.kube import ApiError, Client
from lab.stack import pulumi_cmd

AUDIT_FLAG = re.compile(r"^--audit-")
POLICY_IN_HOST = "audit-policy/apiserver-audit-policy.yaml"  # under the host's /etc/kubernetes
HELM_NS = "insight-system"
FLUENT_BIT_CM = "insight-agent-fluent-bit-config"
FLUENT_BIT_DS = "insight-agent-fluent-bit"
KUBE_AUDIT_TAG = "audit_log.k8s.*"


# -- an independent audit policy evaluator (first match wins), to check the apiserver's levels ----

def _match_resource(gr: dict, ref: dict) -> bool:
    if (gr.get("group") or "") not in ("*", ref.get("apiGroup") or ""):
        return False
    entries = gr.get("resources") or []
    if entries:
        res, sub = ref.get("resource", ""), ref.get("subresource")
        combined = f"{res}/{sub}" if sub else res
        if not any(e == "*" or e == combined or (sub and e == f"*/{sub}") or e == f"{res}/*" for e in entries):
            return False
    names = gr.get("resourceNames") or []
    return not names or (bool(ref.get("name")) and ref["name"] in names)


def _match_url(entry: str, path: str) -> bool:
    return entry == "*" or entry == path or (entry.endswith("*") and path.startswith(entry[:-1]))


def expected_level(policy: dict, ev: dict) -> tuple[str, list[str]]:
    """(level, omitStages) the policy gives this event's request."""
    user = ev.get("user") or {}
    ref = ev.get("objectRef")
    path = (ev.get("requestURI") or "").split("?")[0]
    base_omit = policy.get("omitStages") or []
    for rule in policy.get("rules") or []:
        if rule.get("users") and user.get("username") not in rule["users"]:
            continue
        if rule.get("userGroups") and not set(user.get("groups") or []) & set(rule["userGroups"]):
            continue
        if rule.get("verbs") and ev.get("verb") not in rule["verbs"]:
            continue
        if ref is not None:
            if rule.get("nonResourceURLs"):
                continue
            if rule.get("namespaces") and (ref.get("namespace") or "") not in rule["namespaces"]:
                continue
            if rule.get("resources") and not any(_match_resource(gr, ref) for gr in rule["resources"]):
                continue
        else:
            if rule.get("namespaces") or rule.get("resources"):
                continue
            if rule.get("nonResourceURLs") and not any(_match_url(u, path) for u in rule["nonResourceURLs"]):
                continue
        return rule["level"], sorted(set(base_omit) | set(rule.get("omitStages") or []))
    return "None", list(base_omit)


# -- /readyz of every master, sampled continuously ------------------------------------------------

@dataclass
class ReadyPoller:
    """Samples each master's /readyz every `interval` s on its own thread (bounded by `max_seconds`)."""

    clients: dict[str, Client]
    interval: float = 0.1
    max_seconds: float = 1800
    samples: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> ReadyPoller:
        self.t0 = time.monotonic()
        for name, client in self.clients.items():
            self.samples[name] = []
            t = threading.Thread(target=self._run, args=(name, client), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _run(self, name: str, client: Client) -> None:
        # Probes overlap: a master that does not answer holds its probe for the 1 s timeout, and a
        # loop that waited for it would sample that master once a second exactly when it matters.
        # Each probe is stamped with its start and counts as that moment's answer.
        lock = threading.Lock()

        def probe(t: float) -> None:
            ok = client.ready(timeout=1.0)
            with lock:
                self.samples[name].append((t, ok))

        deadline = time.monotonic() + self.max_seconds
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            next_at = time.monotonic()
            while not self._stop.is_set() and time.monotonic() < deadline:
                pool.submit(probe, time.monotonic())
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> dict:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        return self.analyse()

    def analyse(self) -> dict:
        names = list(self.samples)
        for n in names:
            self.samples[n].sort()
        events = sorted((t, n, ok) for n in names for (t, ok) in self.samples[n])
        state: dict[str, bool] = {}
        minimum, total = len(names), 0
        for _t, n, ok in events:
            state[n] = ok
            if len(state) == len(names):
                total += 1
                minimum = min(minimum, sum(state.values()))
        down: dict[str, list[float]] = {}
        for n in names:
            spans, start = [], None
            for t, ok in self.samples[n]:
                if not ok and start is None:
                    start = t
                elif ok and start is not None:
                    spans.append(round(t - start, 2))
                    start = None
            if start is not None:
                spans.append(float("inf"))
            down[n] = spans
        # The widest gap between two probe starts of one master: what the sampling really was.
        gaps = {}
        for n in names:
            times = [t for t, _ok in self.samples[n]]
            gaps[n] = round(max((b - a for a, b in itertools.pairwise(times)), default=0.0), 2)
        return {"masters": len(names), "min_ready": minimum, "merged_samples": total,
                "seconds": round(time.monotonic() - self.t0, 1), "not_ready_spans_s": down, "max_gap_s": gaps}


@dataclass
class LongWatches:
    """A long-lived watch held open on every master, re-opened as soon as that master answers again.

    A real control plane always has such clients (controllers, kubelets, operators), and an apiserver
    that gets SIGTERM drains them for up to the pod's termination grace period (30 s in kubeadm's
    manifests) before it exits: the slowest part of a planned restart. The lab has no such client of
    its own (its DaemonSet stand-in lists), so the rollout whose availability is the subject holds
    these, and `stop()` tells for each master how often a watch was cut by the server (a restart
    that happened with a watch open) and how long it had been open.
    """

    clients: dict[str, Client]
    path: str = "/api/v1/namespaces?watch=1&timeoutSeconds=3600"
    cuts: dict[str, list[float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _socks: dict[str, socket.socket] = field(default_factory=dict)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> LongWatches:
        for name, client in self.clients.items():
            self.cuts[name] = []
            t = threading.Thread(target=self._run, args=(name, client), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def wait_open(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while set(self._socks) != set(self.clients):
            assert time.monotonic() < deadline, f"watches not open on {set(self.clients) - set(self._socks)}"
            time.sleep(0.1)

    def _run(self, name: str, client: Client) -> None:
        host, port = client.server.removeprefix("https://").rsplit(":", 1)
        while not self._stop.is_set():
            conn = http.client.HTTPSConnection(host, int(port), context=client.ssl_context(), timeout=5)
            opened: float | None = None
            try:
                conn.request("GET", self.path, headers={"Accept": "application/json"})
                resp = conn.getresponse()
                if resp.status != 200:
                    raise OSError(f"watch answered {resp.status}")
                assert conn.sock is not None
                conn.sock.settimeout(None)  # a watch is silent for minutes: only the server or stop() ends it
                self._socks[name] = conn.sock
                opened = time.monotonic()
                while resp.read1(65536):
                    pass
            except (OSError, http.client.HTTPException):
                pass  # not answering (restarting): try again; a cut open watch ends here too (IncompleteRead)
            finally:
                self._socks.pop(name, None)
                conn.close()
            if opened is not None and not self._stop.is_set():
                self.cuts[name].append(round(time.monotonic() - opened, 1))
            self._stop.wait(0.2)

    def stop(self) -> dict[str, list[float]]:
        self._stop.set()
        for sock in list(self._socks.values()):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(10)
        return self.cuts


# -- the harness ----------------------------------------------------------------------------------

class E2E:
    def __init__(self, lab: Lab, measurements: dict) -> None:
        self.lab = lab
        self.m = measurements
        self._pollers: list[ReadyPoller] = []

    # pulumi ---------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.lab.env()}

    def pulumi(self, *args: str, check: bool = True, timeout: float = 1200) -> subprocess.CompletedProcess:
        cmd = pulumi_cmd(self.lab, *args, "--non-interactive")
        r = subprocess.run(cmd, cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=timeout,
                           check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"`pulumi {' '.join(args)}` exited {r.returncode}:\n{r.stdout[-6000:]}\n"
                                 f"{r.stderr[-4000:]}")
        return r

    def timed_up(self, label: str) -> subprocess.CompletedProcess:
        t = time.monotonic()
        r = self.pulumi("up", "--yes", "--skip-preview")
        self.m[f"pulumi_up_{label}_seconds"] = round(time.monotonic() - t, 1)
        return r

    def config_set(self, key: str, value: str) -> None:
        self.pulumi("config", "set", key, value)

    def outputs(self) -> dict:
        return json.loads(self.pulumi("stack", "output", "--json", "--show-secrets").stdout or "{}")

    def engine_blocker(self) -> str | None:
        """The exact engine error when a plugin the program needs cannot exist on this machine."""
        r = self.pulumi("preview", check=False, timeout=600)
        if r.returncode == 0:
            return None
        text = r.stdout + r.stderr
        for line in text.splitlines():
            if re.search(r"plugin .* not installed|no resource plugin|could not find plugin|"
                         r"failed to load plugin|missing plugin", line, re.I):
                return f"the Pulumi engine cannot load a provider the program needs: {line.strip()}"
        return None

    # hosts ----------------------------------------------------------------------------------
    @property
    def hosts(self) -> list[Host]:
        return self.lab.hosts()

    def client(self, h: Host | None = None) -> Client:
        return labmod.admin_client(self.lab, h)

    def status(self, h: Host) -> dict:
        return json.loads(h.status_file.read_text())

    def manifest(self, h: Host) -> dict:
        return yaml.safe_load(h.manifest.read_text())

    def container(self, h: Host) -> dict:
        pod = self.manifest(h)
        return next(c for c in pod["spec"]["containers"] if c["name"] == "kube-apiserver")

    def audit_flags(self, h: Host) -> list[str]:
        c = self.container(h)
        return [a for a in (c.get("command") or []) + (c.get("args") or []) if AUDIT_FLAG.match(str(a))]

    def running_cmdline(self, h: Host) -> list[str]:
        pid = self.status(h).get("apiserver_pid")
        assert pid, f"{h.name}: no apiserver running: {self.status(h)}"
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")

    def policy_on_host(self, h: Host) -> Path:
        return h.etc_kubernetes / POLICY_IN_HOST

    def files_in(self, d: Path) -> list[str]:
        return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []

    def wait_all_ready(self, timeout: float = 180) -> None:
        for h in self.hosts:
            deadline = time.monotonic() + timeout
            while not self.client(h).ready():
                assert time.monotonic() < deadline, f"{h.name} not ready after {timeout}s: {self.status(h)}"
                time.sleep(0.5)

    # audit log ------------------------------------------------------------------------------
    def log_mark(self, h: Host) -> dict[str, int]:
        d = h.audit_log_dir
        return {p.name: p.stat().st_size for p in d.iterdir() if p.is_file()} if d.is_dir() else {}

    def events_since(self, h: Host, mark: dict[str, int]) -> list[dict]:
        out = []
        d = h.audit_log_dir
        for p in sorted(d.iterdir()) if d.is_dir() else []:
            if not p.is_file() or p.name.endswith(".gz"):
                continue
            with open(p, "rb") as fh:
                fh.seek(mark.get(p.name, 0))
                for line in fh.read().decode(errors="replace").splitlines():
                    if line.startswith("{"):
                        with contextlib.suppress(ValueError):
                            out.append(json.loads(line))
        return out

    def wait_event(self, h: Host, mark: dict[str, int], pred, what: str, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events_since(h, mark):
                if pred(ev):
                    return ev
            if time.monotonic() > deadline:
                raise AssertionError(f"{h.name}: no audit event for {what} within {timeout}s in {h.audit_log_dir} "
                                     f"(files {self.files_in(h.audit_log_dir)})")
            time.sleep(0.3)

    def all_events(self, h: Host) -> list[dict]:
        return host_events(h)

    # cluster objects ------------------------------------------------------------------------
    def fluent_bit_config(self) -> str:
        cm = self.client().get(f"/api/v1/namespaces/{HELM_NS}/configmaps/{FLUENT_BIT_CM}")
        return "\n".join(cm.get("data", {}).values())  # type: ignore[union-attr]

    def fluent_bit_daemonset(self) -> dict:
        return self.client().get(f"/apis/apps/v1/namespaces/{HELM_NS}/daemonsets/{FLUENT_BIT_DS}")  # type: ignore

    def ensure_namespace(self, name: str, h: Host | None = None) -> None:
        try:
            self.client(h).post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": name}})
        except ApiError as exc:
            if exc.status != 409:
                raise

    # availability ---------------------------------------------------------------------------
    def poller(self) -> ReadyPoller:
        p = ReadyPoller({h.name: self.client(h) for h in self.hosts}).start()
        self._pollers.append(p)
        time.sleep(0.5)
        return p

    def long_watches(self) -> LongWatches:
        w = LongWatches({h.name: self.client(h) for h in self.hosts}).start()
        w.wait_open()
        return w

    def stop_pollers(self) -> None:
        for p in self._pollers:
            p._stop.set()

"""Faults injected into real rollouts: real engine, real sshd, real kube-apiservers in the lab.

Its own stack (`faults`, config in the lab's state dir) on the session's lab, run after the
lifecycle module. Every fault asserts: every master ends healthy and serving, no manifest or policy
file is lost or half-written, no audit log is deleted, the error names the master and the cause,
and a re-run after the repair converges. Each is measured under a /readyz poller of every master
(0.1 s): the fewest apiservers serving at any moment, and the time from the fault to converged.
At the end the stack is destroyed: audit off on every master again, as the module found them.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab import system
from lab.config import REPO, Host
from lab.stack import NS

from .harness import E2E, LongWatches
from .stacks import Stack

pytestmark = pytest.mark.e2e

STACK = "faults"
STORE = "tmp/kube-audit-policies"  # under the host's /etc/kubernetes
POLICY = "audit-policy/apiserver-audit-policy.yaml"
REJECTED = b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n"  # the apiserver exits: 0 rules


DECOY = """
import http.server, socket, ssl, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
tries = 0
while True:
    try:
        server = http.server.ThreadingHTTPServer(("{ip}", 6443), H)
        break
    except OSError as exc:
        tries += 1
        if tries == 1:
            print("waiting for the port:", exc, flush=True)
        time.sleep(0.05)
print("bound after", tries, "tries at", time.time(), flush=True)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("{cert}", "{key}")
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class UpThread(threading.Thread):
    """`up` (check=False) on a thread. `result()` waits for it and returns what it returned, or raises
    what it raised (e.g. that the up printed a traceback), so that failure reads as itself in the test."""

    def __init__(self, stack: Faults) -> None:
        super().__init__()
        self.stack = stack
        self.outcome: subprocess.CompletedProcess | BaseException | None = None

    def run(self) -> None:
        try:
            self.outcome = self.stack.up(check=False)
        except BaseException as exc:  # re-raised by result(), in the test's thread
            self.outcome = exc

    def result(self, timeout: float = 1500) -> subprocess.CompletedProcess:
        self.join(timeout)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        assert self.outcome is not None, f"the up did not end within {timeout:.0f} s"
        return self.outcome


class Faults(Stack):
    """The `faults` stack and what the tests look at on every master."""

    def __init__(self, e2e: E2E) -> None:
        super().__init__(e2e, STACK)
        self.lab = e2e.lab
        self.results: dict[str, dict] = e2e.m.setdefault("faults", {})

    def pulumi(self, *args: str, check: bool = True, timeout: float = 1500) -> subprocess.CompletedProcess:
        return self.run(*args, check=check, timeout=timeout)

    def up(self, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("up", "--yes", "--skip-preview", check=check, timeout=1500)

    def create_faults_stack(self) -> None:
        self.create({
            f"{NS}:enabled": "true",
            f"{NS}:policy": "dce-default",
            f"{NS}:insightAgent": {"enabled": False},
            # The lab's apiserver takes ~31 s to go when it drains a watch (SIGKILL after the grace
            # period) and ~5 s to start.
            f"{NS}:rollout": {"restartTimeoutSeconds": 45, "readyTimeoutSeconds": 60,
                              "auditWriteTimeoutSeconds": 30},
        }, kubeconfig=False)

    def up_injecting(self, h: Host, inject: Callable[[], None], restore: Callable[[], None] | None = None,
                     poll: float = 0.2) -> subprocess.CompletedProcess:
        """`up` on a thread; the moment `h`'s manifest changes, `inject()`; then wait for the `up`
        (`restore()` runs after it, pass or fail)."""
        before = _sha(h.manifest.read_bytes())
        runner = UpThread(self)
        runner.start()
        try:
            deadline = time.monotonic() + 600
            while _sha(h.manifest.read_bytes()) == before:
                assert runner.is_alive(), f"the up ended before {h.name} was changed: {runner.result()}"
                assert time.monotonic() < deadline, f"{h.name} was never changed"
                time.sleep(poll)
            inject()
            runner.join(1500)
        finally:
            if restore is not None:
                restore()
        return runner.result()

    def set_log(self, **log: int) -> None:
        self.pulumi("config", "set", f"{NS}:log", json.dumps(log))

    # what the masters look like ------------------------------------------------------------
    def snapshot(self) -> dict[str, dict]:
        out = {}
        for h in self.e2e.hosts:
            policy = h.etc_kubernetes / POLICY
            out[h.name] = {"manifest": _sha(h.manifest.read_bytes()), "starts": self.e2e.status(h)["starts"],
                           "policy": _sha(policy.read_bytes()) if policy.exists() else None}
        return out

    def logs(self) -> dict[str, int]:
        return {str(p): p.stat().st_size for h in self.e2e.hosts
                for p in (h.audit_log_dir.iterdir() if h.audit_log_dir.is_dir() else []) if p.is_file()}

    def flag(self, h: Host, name: str) -> str | None:
        return next((f.split("=", 1)[1] for f in self.e2e.audit_flags(h) if f.startswith(name + "=")), None)

    def assert_whole(self, logs_before: dict[str, int]) -> None:
        """Every master serves the config its manifest declares, with the policy file its pod names
        (after a failed run too: each master's policy is written in its own turn); nothing lost or
        half-written."""
        self.e2e.wait_all_ready(timeout=240)
        for h in self.e2e.hosts:
            leftovers = [p.name for p in (h.etc_kubernetes / "manifests").iterdir() if p.name != "kube-apiserver.yaml"]
            assert leftovers == [], f"{h.name}: files left in the manifests dir: {leftovers}"
            flags = sorted(self.e2e.audit_flags(h))
            running = sorted(a for a in self.e2e.running_cmdline(h) if a.startswith("--audit-"))
            assert running == flags, f"{h.name}: runs {running}, manifest says {flags}"
            policy = h.etc_kubernetes / POLICY
            if flags:
                stored = {p.name for p in (h.etc_kubernetes / STORE).iterdir()}
                assert f"{_sha(policy.read_bytes())}.yaml" in stored, f"{h.name}: policy file is no known version"
                ann = (self.e2e.manifest(h)["metadata"].get("annotations") or {}).get("kube-audit.io/policy-hash")
                assert ann == _sha(policy.read_bytes()), f"{h.name}: the policy file is not the one the pod names"
        after = self.logs()
        lost = {p: n for p, n in logs_before.items() if after.get(p, -1) < n}
        assert not lost, f"audit log files deleted or truncated: {lost}"

    def record(self, name: str, poller, t0: float, failed_up: float, **extra: object) -> dict:
        avail = poller.stop()
        result = {"fault_to_converged_s": round(time.monotonic() - t0, 1), "failing_up_s": round(failed_up, 1),
                  "min_serving": avail["min_ready"], "masters": avail["masters"],
                  "not_ready_spans_s": avail["not_ready_spans_s"], "max_sample_gap_s": avail["max_gap_s"], **extra}
        self.results[name] = result
        return result

    # faults --------------------------------------------------------------------------------
    def link(self, h: Host, up: bool) -> None:
        if up:
            system.run("ip", "link", "set", h.veth, "master", self.lab.bridge, "up")
        else:
            system.run("ip", "link", "set", h.veth, "down")

    def in_host(self, h: Host, *cmd: str, check: bool = True) -> None:
        pid = int(h.pid_file.read_text())
        system.run("nsenter", "-t", str(pid), "-m", "-u", "-n", "--", *cmd, check=check)

    def wait_engine_connection_gone(self, h: Host, timeout: float = 180) -> None:
        """Until no established TCP connection from this machine to `h`'s sshd is left."""
        deadline = time.monotonic() + timeout
        while system.run("ss", "-Htn", "state", "established", "dst", f"{h.ip}", "dport", "=", ":22",
                         check=False).stdout.strip():
            assert time.monotonic() < deadline, f"the connection to {h.name} outlived {timeout}s of silence"
            time.sleep(0.5)

    def settle(self, h: Host, manifest_file: str, timeout: float = 240) -> None:
        """Wait until the kubelet stand-in runs the pod from `manifest_file` and it is ready."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.e2e.status(h)
            if st.get("manifest_file") == manifest_file and st.get("state") == "running" and self.e2e.client(h).ready():
                return
            assert time.monotonic() < deadline, f"{h.name} did not settle on {manifest_file}: {st}"
            time.sleep(0.5)


@pytest.fixture(scope="module")
def faults(e2e: E2E):
    f = Faults(e2e)
    f.create_faults_stack()
    e2e.wait_all_ready()
    try:
        yield f
    finally:
        for h in e2e.hosts:
            f.link(h, True)
        r = f.pulumi("destroy", "--yes", "--skip-preview", check=False)
        f.remove()
        assert r.returncode == 0, f"destroy of the faults stack failed:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
        for h in e2e.hosts:
            assert e2e.audit_flags(h) == [], f"{h.name}: audit still on after destroy"
        e2e.wait_all_ready(timeout=240)


@pytest.fixture(autouse=True)
def converged_after(request: pytest.FixtureRequest, faults: Faults) -> Iterator[None]:
    """Each fault stands alone: one that failed half-way is cleaned up here (links up, the full
    filesystem unmounted, planted files gone, drift read back on) and the stack converged again,
    so the next fault starts from "audit on, every master serving", as a passing fault leaves it."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return
    e2e = faults.e2e
    for h in e2e.hosts:
        faults.link(h, True)
        faults.in_host(h, "umount", "/var/log/kubernetes/audit", check=False)
        (h.etc_kubernetes / "manifests/kube-apiserver.yaml.bak").unlink(missing_ok=True)
    faults.pulumi("config", "set", "--path", f"{NS}:drift.read", "true")
    e2e.wait_all_ready(timeout=400)
    faults.up()
    e2e.wait_all_ready(timeout=240)


def assert_plain(out: str) -> None:
    """A refusal, gate failure, rollback or lost master reaches the user as its message, never inside
    the dynamic-provider host's Python traceback (components/remote/plain_errors.py)."""
    assert "Traceback (most recent call last)" not in out and "pulumi/dynamic/__main__.py" not in out, out[-4000:]


class TestRolloutFaults:
    def test_c_unreachable_master_in_preflight_changes_nothing_anywhere(self, faults: Faults):
        e2e, m2 = faults.e2e, faults.e2e.hosts[1]
        before, logs = faults.snapshot(), faults.logs()
        poller = e2e.poller()
        t0 = time.monotonic()
        faults.link(m2, False)
        try:
            r = faults.up(check=False)
        finally:
            faults.link(m2, True)
        failed = time.monotonic() - t0
        assert r.returncode != 0
        out = r.stdout + r.stderr
        assert_plain(out)
        # The first step that reaches master 2 fails (here: copying the node program, which its
        # preflight needs); nothing that changes a master has run anywhere.
        assert "lab-master-2" in out and f"cannot connect to root@{m2.ip}:22" in out, out[-3000:]
        assert faults.snapshot() == before, "a master was changed although master 2 failed its preflight"
        for h in e2e.hosts:
            assert not (h.etc_kubernetes / POLICY).exists(), f"{h.name}: policy written before preflight passed"
        e2e.wait_all_ready(timeout=240)
        faults.up()
        faults.assert_whole(logs)
        for h in e2e.hosts:
            assert faults.flag(h, "--audit-policy-file"), f"{h.name}: not enabled after the re-run"
        faults.record("c1_unreachable_in_preflight", poller, t0, failed)

    def test_f_planted_backup_in_manifests_dir_is_refused_naming_it(self, faults: Faults):
        e2e, m2 = faults.e2e, faults.e2e.hosts[1]
        planted = m2.etc_kubernetes / "manifests/kube-apiserver.yaml.bak"
        planted.write_bytes(m2.manifest.read_bytes())
        # The kubelet (here its stand-in) runs the planted file instead: the pod restarts.
        faults.settle(m2, planted.name)
        before, logs = faults.snapshot(), faults.logs()
        faults.set_log(maxAge=7)
        poller = e2e.poller()
        t0 = time.monotonic()
        r = faults.up(check=False)
        failed = time.monotonic() - t0
        assert r.returncode != 0
        out = r.stdout + r.stderr
        assert_plain(out)
        assert "/etc/kubernetes/manifests/kube-apiserver.yaml.bak also declares the kube-apiserver pod" in out, \
            out[-3000:]
        assert "Move it out of /etc/kubernetes/manifests" in out and "kube-audit[lab-master-2]" in out
        assert faults.snapshot() == before, "a master was changed although master 2 was refused"
        planted.unlink()
        faults.settle(m2, "kube-apiserver.yaml")
        faults.up()
        faults.assert_whole(logs)
        assert [faults.flag(h, "--audit-log-maxage") for h in e2e.hosts] == ["7"] * 3
        faults.record("f_planted_bak", poller, t0, failed)

    def test_d_full_log_filesystem_is_refused_by_preflight(self, faults: Faults):
        e2e, m3 = faults.e2e, faults.e2e.hosts[2]
        before, logs = faults.snapshot(), faults.logs()
        faults.in_host(m3, "mount", "-t", "tmpfs", "-o", "size=1m", "kalab-full", "/var/log/kubernetes/audit")
        # dd stops with "No space left on device": full, as wanted.
        faults.in_host(m3, "dd", "if=/dev/zero", "of=/var/log/kubernetes/audit/filler", "bs=64k", "count=64",
                       "status=none", check=False)
        faults.set_log(maxAge=5)
        poller = e2e.poller()
        t0 = time.monotonic()
        try:
            r = faults.up(check=False)
        finally:
            faults.in_host(m3, "umount", "/var/log/kubernetes/audit")
        failed = time.monotonic() - t0
        assert r.returncode != 0
        out = r.stdout + r.stderr
        assert_plain(out)
        assert "kube-audit[lab-master-3]: preflight refused this master" in out, out[-3000:]
        assert "/var/log/kubernetes/audit has 0 MiB free; the audit log needs" in out
        assert faults.snapshot() == before
        faults.up()
        faults.assert_whole(logs)
        assert [faults.flag(h, "--audit-log-maxage") for h in e2e.hosts] == ["5"] * 3
        faults.record("d_full_log_fs", poller, t0, failed)

    def test_a_new_apiserver_exits_at_start_is_rolled_back_on_that_master_only(self, faults: Faults):
        e2e = faults.e2e
        m1, m2, m3 = e2e.hosts
        old_policy = (m1.etc_kubernetes / POLICY).read_bytes()
        # The drift read (#9) would see master 1's corrupted policy file and repair it before the
        # change, so the fault would never reach the apiserver: off for this fault, on again after.
        faults.pulumi("config", "set", "--path", f"{NS}:drift.read", "false")
        faults.pulumi("config", "set", f"{NS}:policy", "metadata-only")
        new_policy = (REPO / "policies/metadata-only.yaml").read_bytes()
        # Write the new policy on master 1 first (only that resource), then slip a policy the
        # apiserver rejects past validation: master 1's copies of that version are corrupted.
        urns = [res["urn"] for res in json.loads(faults.pulumi("stack", "export").stdout)["deployment"]["resources"]
                if res["urn"].endswith(f"::audit-policy-{m1.name}")]
        assert len(urns) == 1, urns
        faults.pulumi("up", "--yes", "--skip-preview", "--target", urns[0])
        assert (m1.etc_kubernetes / POLICY).read_bytes() == new_policy
        later_policies = {h.name: (h.etc_kubernetes / POLICY).read_bytes() for h in (m2, m3)}
        assert all(p != new_policy for p in later_policies.values())
        for path in (m1.etc_kubernetes / POLICY, m1.etc_kubernetes / STORE / f"{_sha(new_policy)}.yaml"):
            path.write_bytes(REJECTED)
        before, logs = faults.snapshot(), faults.logs()
        poller = e2e.poller()
        t0 = time.monotonic()
        r = faults.up(check=False)
        failed = time.monotonic() - t0
        assert r.returncode != 0
        out = r.stdout + r.stderr
        assert_plain(out)
        # It exits before it listens, so no new instance is ever seen (a later crash would fail 'ready').
        assert re.search(r"kube-audit\[lab-master-1\]: the new kube-apiserver failed the '(new-process|ready)' "
                         r"check", out), out[-4000:]
        assert "restored the previous manifest from /etc/kubernetes/tmp/" in out
        assert "and the previous policy file" in out and "the previous configuration is serving again" in out
        assert "last lines of /var/log/pods/kube-system_kube-apiserver-lab-master-1_" in out
        assert "illegal policy with 0 rules" in out, "the apiserver's own reason is quoted"
        now = faults.snapshot()
        assert now[m1.name]["manifest"] == before[m1.name]["manifest"]
        assert (m1.etc_kubernetes / POLICY).read_bytes() == old_policy, "master 1's policy is the previous one"
        for h in (m2, m3):
            assert now[h.name] == before[h.name], f"{h.name} was touched"
            # A master's policy is written in its own turn: the later masters still hold the policy
            # their running flags were made for (a crash-restart there loads the matching pair).
            assert (h.etc_kubernetes / POLICY).read_bytes() == later_policies[h.name], f"{h.name}: policy changed"
        faults.assert_whole(logs)
        # Repair: master 1's copy of the new version is written back whole; the re-run converges.
        (m1.etc_kubernetes / STORE / f"{_sha(new_policy)}.yaml").write_bytes(new_policy)
        faults.up()
        faults.assert_whole(logs)
        for h in e2e.hosts:
            assert (h.etc_kubernetes / POLICY).read_bytes() == new_policy
        faults.pulumi("config", "set", "--path", f"{NS}:drift.read", "true")
        faults.record("a_exits_at_start", poller, t0, failed)

    def test_c_master_unreachable_after_preflight_leaves_later_masters_untouched(self, faults: Faults):
        e2e = faults.e2e
        m1, m2, m3 = e2e.hosts
        before, logs = faults.snapshot(), faults.logs()
        faults.set_log(maxAge=9)
        poller = e2e.poller()
        t0 = time.monotonic()
        r = faults.up_injecting(m1, lambda: faults.link(m2, False), restore=lambda: faults.link(m2, True))
        failed = time.monotonic() - t0
        assert r.returncode != 0
        out = r.stdout + r.stderr
        assert_plain(out)
        # Master 2 is cut while master 1 changes. Its next step either opens a connection (the usual
        # case: master 2's turn comes after master 1's gate), was already running a command on one, or
        # was in the middle of the SSH handshake; the product names each cause in one sentence
        # (components/remote/ssh.py `_reported`), and nothing else is accepted.
        causes = (f"cannot connect to root@{m2.ip}:22", f"on root@{m2.ip}:22: the SSH connection was lost while the "
                  "command ran", f"on root@{m2.ip}:22: the SSH session failed (")
        assert any(c in out for c in causes) and "apiserver-lab-master-2" in out, out[-3000:]
        assert faults.flag(m1, "--audit-log-maxage") == "9", "master 1 was done"
        now = faults.snapshot()
        for h in (m2, m3):
            assert now[h.name] == before[h.name], f"{h.name} was touched"
        faults.assert_whole(logs)
        faults.up()
        faults.assert_whole(logs)
        assert [faults.flag(h, "--audit-log-maxage") for h in e2e.hosts] == ["9"] * 3
        faults.record("c2_unreachable_after_preflight", poller, t0, failed)

    def test_b_ssh_connection_cut_in_the_middle_of_a_masters_change(self, faults: Faults):
        e2e = faults.e2e
        _, m2, m3 = e2e.hosts
        before, logs = faults.snapshot(), faults.logs()
        faults.set_log(maxAge=13)
        poller = e2e.poller()
        t0 = time.monotonic()

        def cut() -> None:
            # The cut lasts until the engine's side of the connection is gone (the SSH layer's
            # dead-peer limit, 30 s): the node program on master 2 then carries on alone.
            faults.link(m2, False)
            faults.wait_engine_connection_gone(m2)

        r = faults.up_injecting(m2, cut, restore=lambda: faults.link(m2, True))
        failed = time.monotonic() - t0
        assert r.returncode != 0
        out = r.stdout + r.stderr
        assert_plain(out)
        assert f"on root@{m2.ip}:22: the SSH connection was lost while the command ran" in out, out[-3000:]
        assert faults.snapshot()[m3.name] == before[m3.name], "master 3 was touched"
        # The node program carries on alone; its lock on the manifests dir says when it is done.
        faults.in_host(m2, "flock", "/etc/kubernetes/manifests", "true")
        faults.assert_whole(logs)
        faults.up()
        faults.assert_whole(logs)
        assert [faults.flag(h, "--audit-log-maxage") for h in e2e.hosts] == ["13"] * 3
        faults.record("b_ssh_cut_mid_change", poller, t0, failed,
                      master2_after_cut=faults.flag(m2, "--audit-log-maxage"))

    def test_g_new_apiserver_that_answers_then_dies_is_rolled_back(self, faults: Faults):
        e2e = faults.e2e
        m1, m2, m3 = e2e.hosts
        before, logs = faults.snapshot(), faults.logs()
        faults.set_log(maxAge=15)
        stop = threading.Event()
        kills: list[int] = []

        def crash_loop() -> None:
            # Every instance started with the new flags dies right after it first answers ready.
            while not stop.is_set():
                pid = e2e.status(m1).get("apiserver_pid")
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if pid else []
                except OSError:
                    argv = []
                if b"--audit-log-maxage=15" in argv and pid not in kills and e2e.client(m1).ready(timeout=0.5):
                    system.run("kill", "-KILL", str(pid), check=False)
                    kills.append(pid)
                stop.wait(0.05)

        killer = threading.Thread(target=crash_loop, daemon=True)
        killer.start()
        poller = e2e.poller()
        t0 = time.monotonic()
        try:
            r = faults.up(check=False)
        finally:
            stop.set()
            killer.join(5)
        failed = time.monotonic() - t0
        assert r.returncode != 0 and kills, (kills, r.stdout[-2000:])
        out = r.stdout + r.stderr
        assert_plain(out)
        assert "kube-audit[lab-master-1]: the new kube-apiserver failed the 'ready' check" in out, out[-4000:]
        assert "the previous configuration is serving again" in out
        now = faults.snapshot()
        assert now[m1.name]["manifest"] == before[m1.name]["manifest"]
        for h in (m2, m3):
            assert now[h.name] == before[h.name], f"{h.name} was touched"
        faults.assert_whole(logs)
        faults.up()
        faults.assert_whole(logs)
        assert [faults.flag(h, "--audit-log-maxage") for h in e2e.hosts] == ["15"] * 3
        faults.record("g_crash_loop", poller, t0, failed, killed_pids=len(kills))

    def test_h_a_decoy_on_the_readiness_port_does_not_fool_the_gate(self, faults: Faults, tmp_path: Path):
        e2e = faults.e2e
        m1, m2, m3 = e2e.hosts
        system.run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=decoy",
                   "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem"))
        decoy_py = tmp_path / "decoy.py"
        decoy_py.write_text(DECOY.format(ip=m1.ip, cert=tmp_path / "c.pem", key=tmp_path / "k.pem"))
        before, logs = faults.snapshot(), faults.logs()
        faults.set_log(maxAge=17)
        poller = e2e.poller()
        t0 = time.monotonic()
        # The decoy binds the readiness address while master 1's old apiserver drains a long-lived watch
        # (its listener is closed for the 30 s of the drain), so the new apiserver finds the port taken
        # and the decoy answers 200. Without a client to drain, the old one lets go of the port only as
        # it exits and the new one, started at once, binds first (measured: the decoy never got it).
        watch = LongWatches({m1.name: e2e.client(m1)}).start()
        watch.wait_open()
        decoy_log = tmp_path / "decoy.log"
        with decoy_log.open("wb") as log:
            decoy = subprocess.Popen(["ip", "netns", "exec", m1.netns, "python3", "-u", str(decoy_py)], stdout=log,
                                     stderr=subprocess.STDOUT)
        try:
            r = faults.up(check=False)
        finally:
            decoy.kill()
            decoy.wait()
            watch.stop()
        failed = time.monotonic() - t0
        out = r.stdout + r.stderr
        assert_plain(out)
        assert r.returncode != 0
        assert "kube-audit[lab-master-1]: the new kube-apiserver failed the 'new-process' check" in out, out[-4000:]
        assert "(python3) listens on the readiness port, not kube-apiserver" in out
        now = faults.snapshot()
        for h in (m2, m3):
            assert now[h.name] == before[h.name], f"{h.name} was touched"
        assert now[m1.name]["manifest"] == before[m1.name]["manifest"], "master 1 was rolled back"
        faults.settle(m1, "kube-apiserver.yaml", timeout=400)  # the kubelet's back-off ends
        faults.assert_whole(logs)
        faults.up()
        faults.assert_whole(logs)
        assert [faults.flag(h, "--audit-log-maxage") for h in e2e.hosts] == ["17"] * 3
        faults.record("h_decoy_on_port", poller, t0, failed)

    def test_e_two_ups_at_once_one_waits_or_fails_on_the_lock(self, faults: Faults):
        e2e = faults.e2e
        before, logs = faults.snapshot(), faults.logs()
        faults.set_log(maxAge=11)
        poller = e2e.poller()
        t0 = time.monotonic()
        runners = [UpThread(faults) for _ in range(2)]
        for t in runners:
            t.start()
        results = [t.result() for t in runners]
        codes = sorted(r.returncode for r in results)
        assert len(results) == 2 and codes[0] == 0, [r.stdout[-2000:] + r.stderr[-2000:] for r in results]
        if codes[1] != 0:
            loser = next(r for r in results if r.returncode != 0)
            assert "locked" in (loser.stdout + loser.stderr).lower(), loser.stdout[-3000:] + loser.stderr[-2000:]
        now = faults.snapshot()
        for h in e2e.hosts:
            assert now[h.name]["starts"] == before[h.name]["starts"] + 1, f"{h.name} restarted more than once"
        faults.assert_whole(logs)
        assert [faults.flag(h, "--audit-log-maxage") for h in e2e.hosts] == ["11"] * 3
        faults.record("e_two_ups", poller, t0, time.monotonic() - t0, exit_codes=codes)


def test_results_are_written(faults: Faults, e2e: E2E) -> None:
    """The per-fault table (also in the session's e2e-measurements.json)."""
    out = Path(e2e.lab.state) / "faults-measurements.json"
    out.write_text(json.dumps(faults.results, indent=1) + "\n")
    print(json.dumps(faults.results, indent=1))
    assert faults.results

"""The master-side "do" part against a temporary /etc/kubernetes; kubelet and apiserver faked on a fake clock."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from components.manifest import gate, node, planner
from components.manifest.desired import NodeRequest
from tests.unit.manifest.helpers import FakeClock, make_request


class FakeKubelet:
    """Kubelet plus apiserver on a fake clock, observed only through what the gate reads.

    `delay` s after the manifest's bytes change, the running instance is replaced by a new pid whose
    argv carries the manifest's flags. Knobs make the new instance misbehave.
    """

    def __init__(self, manifest: Path, clock: FakeClock, *, delay: float = 2.0, restarts: bool = True,
                 bad_flag: str | None = None, crash_after_answers: int | None = None,
                 decoy_while_down: bool = False, log: Path | None = None) -> None:
        self.manifest, self.clock, self.delay, self.restarts = manifest, clock, delay, restarts
        self.bad_flag, self.crash_after, self.decoy, self.log = bad_flag, crash_after_answers, decoy_while_down, log
        self.seen = manifest.read_bytes()
        self.pid = 100
        self.instance: gate.Instance | None = gate.Instance(100, clock.now - 500, self._argv())
        self.start_at: float | None = None
        self.answers = 0
        self.pids: list[int] = [100]

    def _argv(self) -> tuple[str, ...]:
        pod = planner.parse_manifest(self.manifest.read_text(), "m")
        return tuple(planner.apiserver_container(pod)["command"])

    def _tick(self) -> None:
        data = self.manifest.read_bytes()
        if data != self.seen and self.restarts:
            self.seen, self.instance, self.start_at = data, None, self.clock.now + self.delay
        if self.start_at is not None and self.clock.now >= self.start_at:
            self.pid += 1
            self.pids.append(self.pid)
            self.instance, self.start_at, self.answers = gate.Instance(self.pid, self.clock.now, self._argv()), None, 0
            if self.log is not None and any(a.startswith("--audit-log-path") for a in self.instance.argv):
                self.log.parent.mkdir(parents=True, exist_ok=True)
                with open(self.log, "a") as handle:
                    handle.write('{"kind":"Event"}\n')

    def _broken(self) -> bool:
        return self.instance is not None and self.bad_flag is not None and any(
            a.startswith(self.bad_flag) for a in self.instance.argv)

    def listeners(self, port: int) -> list[gate.Instance]:
        self._tick()
        if self.instance is None:
            return [gate.Instance(9999, self.clock.now, ("python3", "-m", "http.server"))] if self.decoy else []
        return [self.instance]

    def probe(self, url: str) -> bool:
        self._tick()
        if self.instance is None:
            return self.decoy  # the decoy answers 200 on the port
        if self._broken():
            if self.crash_after is None:
                return False
            self.answers += 1
            if self.answers > self.crash_after:  # dies; the kubelet starts it again later
                self.instance, self.start_at = None, self.clock.now + self.delay
                return False
        return True

    def gate(self, consecutive: int = 3) -> gate.Gate:
        def written(path: str, wall: float) -> bool:
            return Path(path).is_file() and Path(path).stat().st_size > 0

        return gate.Gate(probe=self.probe, listeners=self.listeners, log_written=written, clock=self.clock,
                         boot=self.clock, sleep=self.clock.sleep, interval=0.5, consecutive=consecutive)


def request(etc: Path, enabled: bool = True) -> NodeRequest:
    return make_request(etc, enabled, audit_write_timeout=5, pod_log_dir=str(etc / "pods"))


def kubelet(etc: Path, **kwargs: Any) -> FakeKubelet:
    return FakeKubelet(etc / "manifests" / "kube-apiserver.yaml", FakeClock(1000.0),
                       log=etc / "log" / "kube-apiserver-audit.log", **kwargs)


def test_enable_backs_up_writes_atomically_and_gates_on_the_new_instance(etc: Path) -> None:
    k = kubelet(etc)
    original = (etc / "manifests" / "kube-apiserver.yaml").read_bytes()
    report = node.converge(request(etc), k.gate())
    assert report["changed"] is True and report["auditEnabled"] is True
    assert Path(report["backup"]).read_bytes() == original
    assert Path(report["backup"]).parent == etc / "tmp"
    assert sorted(os.listdir(etc / "manifests")) == ["kube-apiserver.yaml"], "no temp or backup file left there"
    assert (etc / "manifests" / "kube-apiserver.yaml").stat().st_mode & 0o777 == 0o600
    assert (etc / "log").is_dir() and (etc / "log").stat().st_mode & 0o777 == 0o700
    assert report["readinessUrl"] == "https://10.6.0.11:6443/readyz", "taken from the readinessProbe"
    # Each check says when it passed: the new pid appeared after the 2 s restart, then 3 answers.
    assert report["gate"]["new-process"] == 2.0 and report["gate"]["flags"] == 2.0
    assert report["gate"]["ready"] == 3.0 and report["gate"]["audit-log"] == 3.0
    assert any(line.startswith("+ flag --audit-policy-file=") for line in report["changes"])
    assert k.pids == [100, 101]


def test_converged_manifest_is_not_rewritten(etc: Path) -> None:
    node.converge(request(etc), kubelet(etc).gate())
    before = os.stat(etc / "manifests" / "kube-apiserver.yaml")
    report = node.converge(request(etc), kubelet(etc).gate())
    assert report["changed"] is False
    assert os.stat(etc / "manifests" / "kube-apiserver.yaml").st_mtime_ns == before.st_mtime_ns
    assert len(os.listdir(etc / "tmp")) == 1, "no second backup for a no-op"


def _pod_log(etc: Path, text: str) -> None:
    d = etc / "pods" / "kube-system_kube-apiserver-m1_0123" / "kube-apiserver"
    d.mkdir(parents=True)
    (d / "0.log").write_text(text)


def test_apiserver_that_never_gets_ready_is_rolled_back_quoting_its_log(etc: Path) -> None:
    k = kubelet(etc, bad_flag="--audit-policy-file")
    _pod_log(etc, "".join(f"2026-11-27T10:00:00.1Z stderr F line {i}\n" for i in range(40))
             + "2026-11-27T10:00:01.1Z stderr F E1127 failed to load audit policy " + "x" * 500 + "\n")
    original = (etc / "manifests" / "kube-apiserver.yaml").read_bytes()
    with pytest.raises(node.NodeError) as info:
        node.converge(request(etc), k.gate())
    msg = str(info.value)
    assert info.value.code == 1
    assert "failed the 'ready' check" in msg and "within 20s" in msg, msg
    assert "passed: {'new-process': 2.0, 'flags': 2.0}" in msg
    assert "restored the previous manifest from" in msg and "previous configuration is serving again" in msg
    assert "\n  E1127 failed to load audit policy xxx" in msg and "x" * 300 not in msg, "prefix dropped, line cut"
    assert "\n  line 29\n" in msg and "line 28\n" not in msg, "the last 12 lines"
    assert (etc / "manifests" / "kube-apiserver.yaml").read_bytes() == original
    assert k.instance is not None and gate.audit_tokens(k.instance.argv) == [], "the old config serves again"


def test_no_restart_seen_restores_too(etc: Path) -> None:
    k = kubelet(etc, restarts=False)
    with pytest.raises(node.NodeError, match=r"'new-process' check: no new kube-apiserver within 10s.*"
                                             r"previous kube-apiserver \(pid 100\) is still serving"):
        node.converge(request(etc), k.gate())
    assert b"--audit-" not in (etc / "manifests" / "kube-apiserver.yaml").read_bytes()


def test_crash_loop_that_answers_once_is_not_ready(etc: Path) -> None:
    k = kubelet(etc, bad_flag="--audit-policy-file", crash_after_answers=1)
    with pytest.raises(node.NodeError, match="failed the 'ready' check"):
        node.converge(request(etc), k.gate())
    assert len(k.pids) > 3, "it was restarted several times and never counted as ready"


def test_a_decoy_on_the_port_does_not_fool_the_gate(etc: Path) -> None:
    k = kubelet(etc, restarts=False, decoy_while_down=True)
    k.instance = None  # the real apiserver is down; something else answers 200 on its port
    with pytest.raises(node.NodeError, match=r"pid 9999 \(python3\) listens on the readiness port"):
        node.converge(request(etc), k.gate())


def test_new_instance_with_other_flags_fails_at_once(etc: Path) -> None:
    k = kubelet(etc)
    k._argv = lambda: ("kube-apiserver", "--audit-log-maxage=1")  # type: ignore[method-assign]
    with pytest.raises(node.NodeError, match=r"failed the 'flags' check: .* runs without \['--audit-log-maxage=30'"):
        node.converge(request(etc), k.gate())
    assert k.clock.now < 1010, "no waiting for a ready that cannot prove anything"


def test_audit_log_never_written_fails_the_gate(etc: Path) -> None:
    k = kubelet(etc)
    k.log = None
    with pytest.raises(node.NodeError, match=r"'audit-log' check: .*kube-apiserver-audit.log was not written within 5s"):
        node.converge(request(etc), k.gate())


def test_rollback_restores_the_previous_policy_version(etc: Path) -> None:
    policy = etc / "audit-policy" / "apiserver-audit-policy.yaml"
    store = str(etc / "tmp" / "kube-audit-policies")
    node.write_file(str(policy), b"v1\n", 0o600, store)
    v1 = hashlib.sha256(b"v1\n").hexdigest()
    first = request(etc)
    first = dataclasses.replace(first, state=dataclasses.replace(first.state, policy_hash=v1))
    node.converge(first, kubelet(etc).gate())
    node.write_file(str(policy), b"v2 rejected\n", 0o600, store)
    v2 = hashlib.sha256(b"v2 rejected\n").hexdigest()
    second = dataclasses.replace(first, state=dataclasses.replace(first.state, policy_hash=v2))
    with pytest.raises(node.NodeError, match="and the previous policy file"):
        node.converge(second, kubelet(etc, bad_flag="--audit-policy-file").gate())
    assert policy.read_bytes() == b"v1\n"
    # A re-run (the cause fixed on the node) puts v2 back from the store before the manifest.
    report = node.converge(second, kubelet(etc).gate())
    assert report["changed"] is True and policy.read_bytes() == b"v2 rejected\n"
    v0 = hashlib.sha256(b"rules: []\n").hexdigest()  # the fixture's file, kept when v1 replaced it
    assert sorted(os.listdir(store)) == sorted([v0 + ".yaml", v1 + ".yaml", v2 + ".yaml"])


def test_a_signal_during_the_gate_restores_manifest_and_previous_policy(etc: Path) -> None:
    """#7's SignalGuard reaches into #8's gate: a SIGTERM while the new instance is judged rolls back."""
    policy = etc / "audit-policy" / "apiserver-audit-policy.yaml"
    store = str(etc / "tmp" / "kube-audit-policies")
    node.write_file(str(policy), b"v1\n", 0o600, store)
    first = request(etc)
    v1, v2 = hashlib.sha256(b"v1\n").hexdigest(), hashlib.sha256(b"v2\n").hexdigest()
    first = dataclasses.replace(first, state=dataclasses.replace(first.state, policy_hash=v1))
    node.converge(first, kubelet(etc).gate())
    enabled_v1 = (etc / "manifests" / "kube-apiserver.yaml").read_bytes()
    node.write_file(str(policy), b"v2\n", 0o600, store)
    second = dataclasses.replace(first, state=dataclasses.replace(first.state, policy_hash=v2))
    k = kubelet(etc, restarts=False)
    probes = 0

    def probe_then_signal(url: str) -> bool:
        nonlocal probes
        probes += 1
        if probes == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return True

    k.probe = probe_then_signal  # type: ignore[method-assign]
    # Same audit flags as v2's manifest (only the policy-hash annotation differs) and started after
    # the write: the gate takes it for the new instance and probes it.
    k.instance = gate.Instance(500, k.clock.now + 1, k._argv())
    with pytest.raises(node.NodeError, match=r"interrupted by SIGTERM while kube-apiserver was restarting; "
                                             r"restored the previous manifest from .* and the previous policy file"):
        node.converge(second, k.gate())
    assert (etc / "manifests" / "kube-apiserver.yaml").read_bytes() == enabled_v1
    assert policy.read_bytes() == b"v1\n"
    assert probes == 1, "no wait for the old config after a signal"


def test_stray_backup_in_manifests_dir_is_refused_before_any_change(etc: Path) -> None:
    shutil.copy(etc / "manifests" / "kube-apiserver.yaml", etc / "manifests" / "kube-apiserver.yaml.bak")
    (etc / "manifests" / ".hidden.yaml").write_text("ignored: true\n")
    with pytest.raises(node.NodeError, match=r"kube-apiserver.yaml.bak also declares the kube-apiserver pod"):
        node.converge(request(etc), kubelet(etc).gate())
    assert not (etc / "tmp").exists()


def test_missing_policy_file_is_refused(etc: Path) -> None:
    (etc / "audit-policy" / "apiserver-audit-policy.yaml").unlink()
    with pytest.raises(node.NodeError, match=r"audit policy .* is missing"):
        node.converge(request(etc), kubelet(etc).gate())


def test_disable_keeps_audit_logs(etc: Path) -> None:
    node.converge(request(etc), kubelet(etc).gate())
    (etc / "log" / "kube-apiserver-audit.log").write_text('{"kind":"Event"}\n')
    node.converge(request(etc, enabled=False), kubelet(etc).gate())
    pod = planner.parse_manifest((etc / "manifests" / "kube-apiserver.yaml").read_text(), "m")
    assert planner.audit_flags(pod) == []
    assert (etc / "log" / "kube-apiserver-audit.log").read_text() == '{"kind":"Event"}\n'


def test_main_reports_bad_input_with_exit_2(etc: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    k = kubelet(etc)
    (etc / "manifests" / "kube-apiserver.yaml").write_text("not: [valid\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(request(etc).to_json()))
    assert node.main(["apply"], gate=k.gate()) == 2
    err = capsys.readouterr().err
    assert err.startswith("kube-audit[m1]: ") and "kube-apiserver.yaml:" in err and "nothing was changed" in err


def test_main_apply_from_argument_prints_json(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = request(etc, enabled=False).to_json(compact=True)
    assert node.main(["apply", "--request", text], gate=kubelet(etc).gate()) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False


def test_write_file_is_atomic_and_private(tmp_path: Path) -> None:
    result = node.write_file(str(tmp_path / "d" / "p.yaml"), b"x: 1\n", 0o600)
    assert (tmp_path / "d" / "p.yaml").read_bytes() == b"x: 1\n"
    assert (tmp_path / "d" / "p.yaml").stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path / "d") == ["p.yaml"]
    assert len(result["sha256"]) == 64


@pytest.mark.parametrize(("probe", "url"), [
    ({"httpGet": {"host": "10.0.0.1", "port": 6443, "path": "/readyz", "scheme": "HTTPS"}}, "https://10.0.0.1:6443/readyz"),
    ({"httpGet": {"port": "probe-port", "path": "/readyz"}}, "https://127.0.0.1:8443/readyz"),
    (None, "https://127.0.0.1:7443/readyz"),
    ({"httpGet": {"host": "::1", "port": 6443}}, "https://[::1]:6443/readyz"),
])
def test_readiness_url_follows_the_manifest(probe: dict | None, url: str) -> None:
    container = {"name": "kube-apiserver", "command": ["kube-apiserver", "--secure-port=7443"],
                 "ports": [{"name": "probe-port", "containerPort": 8443}]}
    if probe:
        container["readinessProbe"] = probe
    assert node.readiness_url({"spec": {"containers": [container]}}, None) == url


@pytest.mark.parametrize("flags", [["--secure_port=7443"], ["--secure-port", "7443"],
                                   ["--secure-port=6443", "--secure_port=7443"]])
def test_readiness_url_reads_the_port_as_the_apiserver_does(flags: list[str]) -> None:
    container = {"name": "kube-apiserver", "command": ["kube-apiserver", *flags]}
    assert node.readiness_url({"spec": {"containers": [container]}}, None) == "https://127.0.0.1:7443/readyz"


def test_a_second_run_on_the_same_master_waits_for_the_first(etc: Path) -> None:
    import fcntl
    import threading

    holder = os.open(etc / "manifests", os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # a first run, still waiting for its apiserver
    done: list[dict] = []
    second = threading.Thread(target=lambda: done.append(node.converge(request(etc), kubelet(etc).gate())))
    second.start()
    second.join(1.0)
    assert second.is_alive() and not done, "the second run must wait"
    assert not (etc / "tmp").exists(), "and change nothing while it waits"
    os.close(holder)
    second.join(30)
    assert done and done[0]["changed"] is True

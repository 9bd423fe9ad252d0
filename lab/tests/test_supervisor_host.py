"""The node supervisor in real namespaces, with a stand-in apiserver binary (needs root and Go).

What is checked is the kubelet/runtime behaviour the lab promises: restart on a pod change and
only then, the last-sorting file wins, a path the manifest does not mount is absent in the
container, crash-loop back-off, SIGKILL after the grace period, hostPath dirs created.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab import manifests

HERE = Path(__file__).resolve().parent
SUPERVISOR = HERE.parent / "supervisor"  # run as `python3 DIR`, as the lab does

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for mount/UTS/network namespaces"),
    pytest.mark.skipif(shutil.which("go") is None, reason="needs go to build the stand-in apiserver"),
]

PKI_FILES = ["ca.crt", "apiserver-etcd-client.crt", "apiserver-etcd-client.key", "front-proxy-ca.crt",
             "front-proxy-client.crt", "front-proxy-client.key", "sa.pub", "sa.key", "apiserver.crt",
             "apiserver.key", "etcd/ca.crt", "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key"]


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory):
    out = tmp_path_factory.mktemp("bin") / "kube-apiserver"
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=HERE / "fakeapiserver", check=True,
                   env={**os.environ, "CGO_ENABLED": "0"})
    return out


class Node:
    def __init__(self, root: Path, binary: Path) -> None:
        self.root = root
        self.etc = root / "etc-kubernetes"
        self.varlog = root / "var-log-kubernetes"
        self.log = root / "apiserver.log"
        self.status_file = root / "status.json"
        (self.etc / "manifests").mkdir(parents=True)
        (self.etc / "pki/etcd").mkdir(parents=True)
        self.varlog.mkdir()
        for f in PKI_FILES:
            (self.etc / "pki" / f).write_text("x")
        self.manifest = self.etc / "manifests/kube-apiserver.yaml"
        self.pod = yaml.safe_load(manifests.apiserver_yaml("127.0.0.1", "https://127.0.0.1:2379", "v0"))
        self.write()
        for t in ("/etc/kubernetes", "/var/log/kubernetes"):
            os.makedirs(t, exist_ok=True)
        cmd = ["unshare", "-m", "-u", "-n", "--propagation", "private", "--", sys.executable, str(SUPERVISOR),
               "--name", "t1", "--hostname", "t1",
               "--outer-ns", f"mnt={os.readlink('/proc/self/ns/mnt')}",
               "--outer-ns", f"uts={os.readlink('/proc/self/ns/uts')}",
               "--bind", f"{self.etc}:/etc/kubernetes", "--bind", f"{self.varlog}:/var/log/kubernetes",
               "--apiserver-bin", str(binary), "--rootfs", str(root / "rootfs"), "--run-dir", str(root / "run"),
               "--log", str(self.log), "--status", str(self.status_file), "--pod-log-dir", str(root / "pods"),
               "--poll", "0.2", "--backoff-initial", "0.5", "--backoff-cap", "2"]
        with open(root / "supervisor.out", "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def write(self, pod: dict | None = None, name: str = "kube-apiserver.yaml", prefix: str = "") -> None:
        text = prefix + yaml.safe_dump(pod or self.pod)
        tmp = self.etc / "manifests" / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.etc / "manifests" / name)

    @property
    def container(self) -> dict:
        return self.pod["spec"]["containers"][0]

    def status(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def wait(self, pred, what: str, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status()
            if st and pred(st):
                return st
            time.sleep(0.1)
        raise AssertionError(f"timeout waiting for {what}; status={self.status()}\nlog:\n{self.log.read_text()}")

    def serving(self, st: dict) -> bool:
        if st.get("state") != "running" or not st.get("apiserver_pid"):
            return False
        tail = self.log.read_text().rsplit(f"started pid={st['apiserver_pid']} ", 1)
        return len(tail) == 2 and "fake-apiserver: serving" in tail[1]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def node(tmp_path, fake_bin):
    n = Node(tmp_path, fake_bin)
    yield n
    n.stop()


def test_starts_the_apiserver_with_the_manifest_command(node):
    st = node.wait(node.serving, "first start")
    assert st["starts"] == 1 and st["manifest_file"] == "kube-apiserver.yaml"
    log = node.log.read_text()
    assert "### kalab" in log and "start #1" in log
    assert re.search(r"argv=kube-apiserver --advertise-address=127.0.0.1 .*--tls-private-key-file=", log)


def test_output_is_also_where_the_kubelet_keeps_container_logs(node):
    st = node.wait(node.serving, "first start")
    logs = sorted((node.root / "pods").glob("kube-system_kube-apiserver-t1_*/kube-apiserver/*.log"))
    assert [p.name for p in logs] == ["0.log"] and st["pod_identity"] in str(logs[0])
    lines = logs[0].read_text().splitlines()
    assert any(re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z stderr F fake-apiserver: serving", line) for line in lines), lines


def test_restarts_on_pod_change_only(node):
    node.wait(node.serving, "first start")
    node.write(prefix="# only a comment\n")
    time.sleep(1.5)
    assert node.status()["starts"] == 1
    node.pod["metadata"]["annotations"]["kube-audit/policy-hash"] = "abc"
    node.write()
    st = node.wait(lambda s: s["starts"] == 2 and node.serving(s), "restart after change")
    assert st["last_exit"]["code"] == 0 and st["crashes"] == 0
    assert "SIGTERM" in node.log.read_text()


def test_backup_file_sorting_last_wins(node):
    node.wait(node.serving, "first start")
    node.container["command"].append("--v=5")
    node.write(name="kube-apiserver.yaml.bak")
    st = node.wait(lambda s: s["manifest_file"] == "kube-apiserver.yaml.bak" and node.serving(s), ".bak wins")
    assert st["starts"] == 2
    assert node.log.read_text().strip().splitlines()[-1].endswith("serving")
    assert "--v=5" in node.log.read_text().split("start #2")[1]


def test_unmounted_path_is_absent_and_crash_loop_backs_off(node):
    node.wait(node.serving, "first start")
    policy_dir = node.etc / "audit-policy"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text("rules: []\n")
    node.container["command"].append("--audit-policy-file=/etc/kubernetes/audit-policy/policy.yaml")
    node.write()
    st = node.wait(lambda s: s["crashes"] >= 3, "crash loop")
    assert "no such file or directory" in node.log.read_text()
    assert "back-off" in node.log.read_text()
    # Mount it (and a log dir that does not exist yet): the new pod starts at once.
    node.container["volumeMounts"] += [
        {"name": "audit-policy", "mountPath": "/etc/kubernetes/audit-policy", "readOnly": True},
        {"name": "audit-logs", "mountPath": "/var/log/kubernetes/audit"},
    ]
    node.pod["spec"]["volumes"] += [
        {"name": "audit-policy", "hostPath": {"path": "/etc/kubernetes/audit-policy", "type": "DirectoryOrCreate"}},
        {"name": "audit-logs", "hostPath": {"path": "/var/log/kubernetes/audit", "type": "DirectoryOrCreate"}},
    ]
    node.container["command"].append("--audit-log-path=/var/log/kubernetes/audit/audit.log")
    node.write()
    st = node.wait(lambda s: s["crashes"] == 0 and node.serving(s), "start after mounting")
    assert (node.varlog / "audit/audit.log").read_text().startswith('{"fake":')
    assert st["state"] == "running"


def test_sigkill_after_grace_period(node, fake_bin):
    node.wait(node.serving, "first start")
    node.pod["spec"]["terminationGracePeriodSeconds"] = 1
    node.container["env"] = [{"name": "FAKE_IGNORE_TERM", "value": "1"}]
    node.write()
    node.wait(lambda s: s["starts"] == 2 and node.serving(s), "start with env")
    node.container["env"] = []
    node.write()
    st = node.wait(lambda s: s["starts"] == 3 and node.serving(s), "restart via SIGKILL")
    assert st["last_exit"]["code"] == -9
    assert "grace period over: SIGKILL" in node.log.read_text()


def test_removing_the_manifest_stops_the_pod(node):
    node.wait(node.serving, "first start")
    node.manifest.unlink()
    st = node.wait(lambda s: s["state"] == "idle" and s["apiserver_pid"] is None, "stop")
    assert st["last_exit"]["code"] == 0

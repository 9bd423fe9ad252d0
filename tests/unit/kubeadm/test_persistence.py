"""The kubeadm-config resource's do-part against a small HTTP apiserver stand-in (GET/PUT, resourceVersion)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.kubeadm.persistence import (
    CONFIGMAP,
    NOT_KUBEADM,
    KubeadmConfigProvider,
    _apply,
    drift_reasons,
    observe_kubeadm,
)
from components.manifest.desired import AuditState
from components.remote.kubeapi import KubeAccess, KubeApiError, load_kubeconfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures/kubeadm"
ON = AuditState(enabled=True)


class FakeApi:
    def __init__(self) -> None:
        self.cm: dict[str, Any] | None = None
        self.version = 1
        self.conflicts = 0  # how many PUTs to refuse with 409 (a concurrent writer)
        self.puts = 0

    def set(self, text: str) -> None:
        self.cm = {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "kubeadm-config", "namespace": "kube-system", "resourceVersion": "1"},
                   "data": {"ClusterConfiguration": text}}


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, KubeAccess]]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path != CONFIGMAP or fake.cm is None:
                self._send(404, {"kind": "Status", "code": 404})
            else:
                self._send(200, fake.cm)

        def do_PUT(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.puts += 1
            if fake.conflicts > 0 or body["metadata"]["resourceVersion"] != str(fake.version):
                fake.conflicts -= 1
                fake.version += 1  # someone else wrote in between
                assert fake.cm is not None
                fake.cm["metadata"]["resourceVersion"] = str(fake.version)
                self._send(409, {"kind": "Status", "code": 409})
                return
            fake.version += 1
            body["metadata"]["resourceVersion"] = str(fake.version)
            fake.cm = body
            self._send(200, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, KubeAccess(server=f"http://127.0.0.1:{server.server_address[1]}", token="t")
    server.shutdown()


def test_records_then_removes_exactly_ours(api: tuple[FakeApi, KubeAccess]) -> None:
    fake, access = api
    original = (FIXTURES / "v1beta4-customised.yaml").read_text()
    fake.set(original)
    outs = _apply(access, ON)
    assert outs["recorded"] is True and fake.puts == 1
    text = fake.cm["data"]["ClusterConfiguration"]  # type: ignore[index]
    assert "# DCE: edited by the platform team" in text and "audit-policy-file" in text
    assert observe_kubeadm(access).view == outs["apiServerAudit"]
    assert _apply(access, ON)["recorded"] is True and fake.puts == 1, "converged: no write"
    KubeadmConfigProvider().delete("id", {"access": access.to_props(), "state": json.dumps({"enabled": True})})
    after = yaml.safe_load(fake.cm["data"]["ClusterConfiguration"])  # type: ignore[index]
    assert [a["name"] for a in after["apiServer"]["extraArgs"]] == ["service-node-port-range", "feature-gates"]


def test_a_concurrent_write_is_retried_on_the_new_version(api: tuple[FakeApi, KubeAccess]) -> None:
    fake, access = api
    fake.set((FIXTURES / "v1beta3.yaml").read_text())
    fake.conflicts = 1
    assert _apply(access, ON)["recorded"] is True
    assert fake.puts == 2 and "audit-log-path" in fake.cm["data"]["ClusterConfiguration"]  # type: ignore[index]


def test_no_configmap_is_a_note_not_an_error(api: tuple[FakeApi, KubeAccess]) -> None:
    _, access = api
    assert observe_kubeadm(access).exists is False
    assert _apply(access, ON) == {"recorded": False, "note": NOT_KUBEADM, "apiServerAudit": None}


def test_unreachable_cluster_is_an_observation_error() -> None:
    obs = observe_kubeadm(KubeAccess(server="http://127.0.0.1:9", token="t"))
    assert obs.exists is None and "cannot reach" in (obs.error or "")


def test_drift_reasons_name_each_field() -> None:
    want = {"extraArgs": ["audit-log-maxage=30", "audit-log-path=/x"], "extraVolumes": [{"name": "audit-logs"}]}
    have = {"extraArgs": ["audit-log-maxage=7"], "extraVolumes": []}
    assert drift_reasons(have, want) == [
        "kubeadm-config: apiServer.extraArgs lacks audit-log-maxage=30",
        "kubeadm-config: apiServer.extraArgs lacks audit-log-path=/x",
        "kubeadm-config: apiServer.extraArgs has audit-log-maxage=7, not wanted",
        "kubeadm-config: apiServer.extraVolumes lacks audit-logs"]
    assert drift_reasons(want, want) == []


def test_kubeconfig_file_with_cert_files_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("CA")
    (tmp_path / "c.crt").write_text("CERT")
    (tmp_path / "c.key").write_text("KEY")
    (tmp_path / "config").write_text(yaml.safe_dump({
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443", "certificate-authority": "ca.crt"}}],
        "users": [{"name": "u", "user": {"client-certificate": "c.crt", "client-key": "c.key"}}],
        "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}], "current-context": "a"}))
    access = load_kubeconfig(str(tmp_path / "config"), None)
    assert access == KubeAccess(server="https://10.0.0.1:6443", ca_pem="CA", cert_pem="CERT", key_pem="KEY")


def test_missing_or_broken_kubeconfig_is_a_kube_error(tmp_path: Path) -> None:
    with pytest.raises(KubeApiError, match="no kubeconfig at"):
        load_kubeconfig(str(tmp_path / "nope"), None)
    with pytest.raises(KubeApiError, match="no context named 'b'"):
        load_kubeconfig("apiVersion: v1\nkind: Config\ncurrent-context: a\n", "b")

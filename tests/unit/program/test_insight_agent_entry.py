"""Reading the installed release before any resource: the kubeconfig client, and __main__ refusing early."""

from __future__ import annotations

import base64
import json
import runpy
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.remote.kubeapi import KubeApi, KubeApiError

from .conftest import FAKE_KEY, MASTERS, CountingMocks
from .test_insight_agent_plan import secret

MAIN = Path(__file__).resolve().parents[3] / "__main__.py"


def kubeconfig(server: str, user: dict[str, Any], **cluster: Any) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": user}]})


@pytest.fixture(scope="module")
def https_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes, list[dict[str, Any]]]]:
    """A local HTTPS endpoint answering the Helm Secret list; yields (url, CA PEM, requests seen)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test server's certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "k.pem"), "-out", str(d / "c.pem")],
                   check=True, capture_output=True)
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
            body = json.dumps({"items": [secret(7, "deployed", "1.0.0", config={"marker": "m"})]}).encode()
            self.send_response(200 if self.headers.get("Authorization") == "Bearer t0k" else 401)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "c.pem", d / "k.pem")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", (d / "c.pem").read_bytes(), seen
    server.shutdown()


def test_token_and_ca_from_kubeconfig_reach_the_api(https_api: tuple[str, bytes, list[dict[str, Any]]]) -> None:
    from components.insight_agent.helm_state import read_installed_release

    url, ca, seen = https_api
    cfg = kubeconfig(url, {"token": "t0k"}, **{"certificate-authority-data": base64.b64encode(ca).decode()})
    api = KubeApi.from_kubeconfig(cfg, None)
    r = read_installed_release(api.get, "insight-system", "insight-agent")
    assert r is not None and (r.revision, r.chart_version, r.config) == (7, "1.0.0", {"marker": "m"})
    assert seen[-1] == {"path": "/api/v1/namespaces/insight-system/secrets?labelSelector=owner%3Dhelm%2Cname%3D"
                                "insight-agent", "auth": "Bearer t0k"}
    with pytest.raises(KubeApiError, match="401"):
        KubeApi.from_kubeconfig(kubeconfig(url, {"token": "wrong"}, **{"certificate-authority-data":
                                base64.b64encode(ca).decode()}), None).get("/api/v1/namespaces/x/secrets")
    # Without the CA the server's certificate is not trusted.
    with pytest.raises(KubeApiError, match="CERTIFICATE_VERIFY_FAILED"):
        KubeApi.from_kubeconfig(kubeconfig(url, {"token": "t0k"}), None).get("/x")


def test_kubeconfig_refusals_say_why(tmp_path: Path) -> None:
    with pytest.raises(KubeApiError, match="exec/auth-provider plugin"):
        KubeApi.from_kubeconfig(kubeconfig("https://x", {"exec": {"command": "aws"}}), None)
    with pytest.raises(KubeApiError, match="no context named 'other'"):
        KubeApi.from_kubeconfig(kubeconfig("https://x", {}), "other")
    path = tmp_path / "kc"
    path.write_text(kubeconfig("https://x:6443/", {"username": "a", "password": "b"}))
    api = KubeApi.from_kubeconfig(str(path), None)
    assert api.server == "https://x:6443" and api.headers["Authorization"] == "Basic " + base64.b64encode(b"a:b").decode()


def test_unreadable_release_stops_the_run_before_any_resource(tmp_path: Path) -> None:
    mocks = CountingMocks()
    pulumi.runtime.set_mocks(mocks, project="kube-audit", stack="dev", preview=True)
    config = {"kube-audit:masters": json.dumps(MASTERS), "kube-audit:sshPrivateKey": FAKE_KEY,
              # Nothing listens on port 1: the cluster cannot be read.
              "kubernetes:kubeconfig": kubeconfig("https://127.0.0.1:1", {"token": "t"})}
    pulumi.runtime.set_all_config(config, ["kube-audit:sshPrivateKey"])
    with pytest.raises(pulumi.RunError, match=r"reading Helm release insight-system/insight-agent from the cluster "
                                              r"\(kubernetes:kubeconfig / kubernetes:context\)") as info:
        runpy.run_path(str(MAIN), run_name="__main__")
    assert "Traceback" not in str(info.value)
    assert mocks.created == [], "nothing declared, so nothing changes on any node"

"""The one kubeconfig reader (components/remote/kubeapi.py) serves both Helm's records and kubeadm-config."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from components.remote.kubeapi import KubeAccess, KubeApi, KubeApiError, load_kubeconfig


def write_kubeconfig(directory: Path, user: dict[str, object]) -> Path:
    path = directory / "config"
    path.write_text(yaml.safe_dump({
        "current-context": "a", "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443/", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": user}]}))
    return path


def test_token_file_is_read_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    access = load_kubeconfig(str(write_kubeconfig(tmp_path, {"tokenFile": "token"})), None)
    assert access == KubeAccess(server="https://10.0.0.1:6443", token="s3cret", insecure=True)
    assert KubeApi(access).headers["Authorization"] == "Bearer s3cret"
    with pytest.raises(KubeApiError, match="cannot read tokenFile"):
        load_kubeconfig(str(write_kubeconfig(tmp_path, {"tokenFile": "gone"})), None)


def test_stored_access_keeps_its_shape_and_basic_auth_survives_the_round_trip(tmp_path: Path) -> None:
    # The kubeadm-config resource stores to_props() as an input: existing stacks must see no new keys.
    token = KubeAccess(server="https://x", token="t")
    assert set(token.to_props()) == {"server", "caPem", "certPem", "keyPem", "token", "insecure"}
    basic = load_kubeconfig(str(write_kubeconfig(tmp_path, {"username": "a", "password": "b"})), None)
    again = KubeAccess.from_props(basic.to_props())
    assert again == basic and again.username == "a"
    assert KubeApi(again).headers["Authorization"] == "Basic " + base64.b64encode(b"a:b").decode()


def test_a_missing_kubeconfig_names_the_path_and_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope") + ":" + str(tmp_path / "other"))
    with pytest.raises(KubeApiError, match=f"no kubeconfig at {tmp_path}/nope: set kubernetes:kubeconfig"):
        load_kubeconfig(None, None)


def test_unreachable_server_is_status_0_and_names_the_kubeconfig(tmp_path: Path) -> None:
    access = load_kubeconfig(str(write_kubeconfig(tmp_path, {"token": "t"})), None)
    assert access.source == f"{tmp_path}/config (context a)"
    api = KubeApi(KubeAccess(server="http://127.0.0.1:9", token="t", source=access.source), timeout=2)
    with pytest.raises(KubeApiError, match=r"cannot reach http://127.0.0.1:9 \(.*/config \(context a\)\)") as exc:
        api.get_or_none("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    assert exc.value.status == 0

"""Unit tests of the node supervisor's kubelet-like reading of the manifests dir (no root needed)."""

from __future__ import annotations

import os

import pytest

from lab import manifests
from lab.supervisor.pods import (
    APISERVER_KEY,
    container_spec,
    pod_identity,
    prepare_host_paths,
    scan_manifests,
)

POD = manifests.apiserver_yaml("10.77.0.11", "https://10.77.0.1:2379", "v1.35.0")


def write(d, name, text):
    p = d / name
    p.write_text(text)
    return p


def test_reads_the_kubeadm_manifest(tmp_path):
    write(tmp_path, "kube-apiserver.yaml", POD)
    pods, errors = scan_manifests(str(tmp_path))
    assert errors == {}
    fname, pod = pods[APISERVER_KEY]
    assert fname == "kube-apiserver.yaml"
    assert pod["spec"]["containers"][0]["command"][0] == "kube-apiserver"


def test_dot_files_are_ignored(tmp_path):
    write(tmp_path, ".kube-apiserver.yaml.tmp", POD.replace("--secure-port=6443", "--secure-port=1"))
    pods, _ = scan_manifests(str(tmp_path))
    assert pods == {}


def test_any_extension_is_parsed_and_the_last_sorted_file_wins(tmp_path):
    write(tmp_path, "kube-apiserver.yaml", POD)
    write(tmp_path, "kube-apiserver.yaml.bak", POD.replace("--secure-port=6443", "--secure-port=7443"))
    pods, _ = scan_manifests(str(tmp_path))
    fname, pod = pods[APISERVER_KEY]
    assert fname == "kube-apiserver.yaml.bak"
    assert "--secure-port=7443" in pod["spec"]["containers"][0]["command"]


def test_invalid_files_and_subdirectories_are_skipped(tmp_path):
    write(tmp_path, "kube-apiserver.yaml", POD)
    write(tmp_path, "zz-broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x\n")
    write(tmp_path, "zz-notes.txt", "hello")
    (tmp_path / "zz-dir").mkdir()
    write(tmp_path / "zz-dir", "kube-apiserver.yaml", POD.replace("6443", "1"))
    pods, errors = scan_manifests(str(tmp_path))
    assert pods[APISERVER_KEY][0] == "kube-apiserver.yaml"
    assert set(errors) == {"zz-broken.yaml", "zz-notes.txt"}


def test_namespace_defaults_to_default(tmp_path):
    write(tmp_path, "a.yaml", POD.replace("  namespace: kube-system\n", ""))
    pods, _ = scan_manifests(str(tmp_path))
    assert list(pods) == [("default", "kube-apiserver")]


def test_identity_ignores_formatting_but_not_content_or_file():
    import yaml

    pod = yaml.safe_load(POD)
    same = yaml.safe_load("# a comment\n" + POD)
    assert pod_identity("kube-apiserver.yaml", pod) == pod_identity("kube-apiserver.yaml", same)
    assert pod_identity("kube-apiserver.yaml", pod) != pod_identity("kube-apiserver.yaml.bak", pod)
    pod2 = yaml.safe_load(POD)
    pod2["metadata"]["annotations"]["x"] = "1"
    assert pod_identity("kube-apiserver.yaml", pod) != pod_identity("kube-apiserver.yaml", pod2)


def test_container_spec_maps_hostpath_volumes_and_command():
    import yaml

    pod = yaml.safe_load(POD)
    c = pod["spec"]["containers"][0]
    c["volumeMounts"].append({"name": "audit", "mountPath": "/var/log/audit"})
    c["args"] = ["--v=2"]
    c["env"] = [{"name": "GOGC", "value": "50"}]
    pod["spec"]["volumes"].append({"name": "audit", "hostPath": {"path": "/var/log/kubernetes/audit/"}})
    spec = container_spec(pod, rootfs="/r", binary="/b", hostname="h", hosts="")
    assert spec["command"][0] == "kube-apiserver" and spec["command"][-1] == "--v=2"
    assert spec["env"]["GOGC"] == "50"
    audit = next(m for m in spec["mounts"] if m["name"] == "audit")
    assert audit == {"name": "audit", "src": "/var/log/kubernetes/audit", "dst": "/var/log/audit",
                     "type": "", "readOnly": False}
    assert spec["grace"] == 30


def test_container_spec_rejects_a_mount_without_volume():
    import yaml

    pod = yaml.safe_load(POD)
    pod["spec"]["containers"][0]["volumeMounts"].append({"name": "nope", "mountPath": "/x"})
    with pytest.raises(ValueError, match="nope"):
        container_spec(pod, rootfs="/r", binary="/b", hostname="h", hosts="")


def test_host_paths_are_created_or_checked_by_type(tmp_path):
    made = tmp_path / "made/dir"
    f = tmp_path / "f/file"
    prepare_host_paths([
        {"src": str(made), "type": ""},
        {"src": str(tmp_path / "doc"), "type": "DirectoryOrCreate"},
        {"src": str(f), "type": "FileOrCreate"},
    ])
    assert made.is_dir() and (tmp_path / "doc").is_dir() and f.is_file()
    with pytest.raises(ValueError, match="not a file"):
        prepare_host_paths([{"src": str(tmp_path / "missing.yaml"), "type": "File"}])
    with pytest.raises(ValueError, match="not a directory"):
        prepare_host_paths([{"src": str(f), "type": "Directory"}])
    assert not os.path.exists(tmp_path / "missing.yaml")

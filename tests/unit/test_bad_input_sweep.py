"""The bad-input sweep: every kind of bad stack config, policy, manifest and request is refused before
anything on a node changes, with a message naming the config key or `file:line:col`.

- stack config and policy files go through the real program (`__main__.py`) under Pulumi mocks, with
  the SSH layer replaced by a tripwire: the run must fail naming the key, declare no resource, and
  never open a connection;
- manifests and requests go through the real node program (`node.main apply`) on a temporary
  /etc/kubernetes: it must exit 2 naming the file (and line and column where there is one), leave
  every file and directory as it was (bytes, mode, no backup, no log dir) and never probe readiness.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import runpy
import shutil
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.drift import facts
from components.manifest import node, planner
from components.remote import ssh
from tests.unit.manifest.helpers import FIXTURE, make_etc, make_request, scripted
from tests.unit.program.conftest import FAKE_KEY, MASTERS

MAIN = Path(__file__).resolve().parents[2] / "__main__.py"
KUBEADM = FIXTURE.read_text()
POLICY_HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"


# --- stack config ----------------------------------------------------------------------------------

def cfg(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"masters": MASTERS, "sshPrivateKey": FAKE_KEY}
    for key, value in overrides.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    return raw


CONFIG = [
    (cfg(masters=None), r"kube-audit:masters: required"),
    (cfg(masters=[]), r"kube-audit:masters: the list is empty"),
    (cfg(masters="master-1,master-2"), r"kube-audit:masters: not a valid list"),
    (cfg(masters=[{**MASTERS[0], "port": "22"}]), r"kube-audit:masters\[0\]\.port: Input should be a valid integer"),
    (cfg(masters=[MASTERS[0], {**MASTERS[1], "name": "master-1"}]), r"kube-audit:masters\[1\]\.name: 'master-1' duplicates"),
    (cfg(masters=[{"name": "Master_1", "host": "h"}]), r"kube-audit:masters\[0\]\.name: String should match"),
    (cfg(masters=[{"name": "m", "host": "h", "hostKey": "AAAA"}]), r"kube-audit:masters\[0\]\.hostKey: "),
    (cfg(enabled="yes"), r"kube-audit:enabled: expected true or false"),
    (cfg(enabeld="true"), r"kube-audit:enabeld: unknown key"),
    (cfg(log={"maxAge": "30"}), r"kube-audit:log\.maxAge: Input should be a valid integer"),
    (cfg(log={"maxAge": -1}), r"kube-audit:log\.maxAge: Input should be greater than or equal to 0"),
    (cfg(log={"mode": "fast"}), r"kube-audit:log\.mode: Input should be"),
    (cfg(log={"path": "audit.log"}), r"kube-audit:log\.path: String should match"),
    (cfg(log={"path": "/audit.log"}), r"kube-audit:log\.path: .*inside a directory"),
    (cfg(log={"hostDir": "/"}), r"kube-audit:log\.hostDir: .*not / itself"),
    (cfg(log={"hostDir": "/etc/kubernetes/manifests"}), r"kube-audit:log\.hostDir: .*overlaps kube-audit:paths\.manifest"),
    (cfg(log={"hostDir": "/etc/kubernetes/audit-policy/logs"}), r"kube-audit:log\.hostDir: .*overlaps kube-audit:paths\.policyDir"),
    (cfg(log={"path": "/etc/kubernetes/audit-policy/audit.log"}),
     r"kube-audit:paths\.policyDir: .*overlaps kube-audit:log\.path .*inside the apiserver container"),
    (cfg(paths={"backupDir": "/etc/kubernetes//manifests"}), r"kube-audit:paths\.backupDir: /etc/kubernetes/manifests overlaps"),
    (cfg(paths={"backupDir": "/etc/kubernetes/manifests/old"}), r"kube-audit:paths\.backupDir: .*overlaps kube-audit:paths\.manifest"),
    (cfg(paths={"backupDir": "/etc/kubernetes/../tmp"}), r"kube-audit:paths\.backupDir: .*must not contain '\.\.'"),
    (cfg(paths={"backupDir": "/var/log/kubernetes/audit"}), r"kube-audit:log\.hostDir: .*overlaps kube-audit:paths\.backupDir"),
    (cfg(paths={"policyDir": "/etc/kubernetes/manifests"}), r"kube-audit:paths\.policyDir: .*overlaps kube-audit:paths\.manifest"),
    (cfg(paths={"policyDir": "/etc/kubernetes"}), r"kube-audit:paths\.policyDir: /etc/kubernetes overlaps kube-audit:paths\.manifest"),
    (cfg(paths={"policyFile": ".."}), r"kube-audit:paths\.policyFile: .*not '\.' or '\.\.'"),
    (cfg(paths={"policyFile": "a/b.yaml"}), r"kube-audit:paths\.policyFile: String should match"),
    (cfg(paths={"nodeProgramDir": "/etc/kubernetes/manifests/kube-audit"}), r"kube-audit:paths\.nodeProgramDir: .*overlaps"),
    (cfg(paths={"manifest": "/kube-apiserver.yaml"}), r"kube-audit:paths\.manifest: .*static-pod directory"),
    (cfg(paths={"manifest": "manifests/kube-apiserver.yaml"}), r"kube-audit:paths\.manifest: String should match"),
    (cfg(rollout={"keepBackups": 0}), r"kube-audit:rollout\.keepBackups: Input should be greater than or equal to 1"),
    (cfg(rollout={"readyTimeoutSeconds": "90"}), r"kube-audit:rollout\.readyTimeoutSeconds: Input should be a valid integer"),
    (cfg(insightAgent={"adopt": "yes"}), r"kube-audit:insightAgent\.adopt: Input should be a valid boolean"),
    (cfg(sshPrivateKey=None, sshPrivateKeyPassphrase="pw"), r"kube-audit:sshPrivateKeyPassphrase: set, but"),
    (cfg(sshPrivateKey="hunter2"), r"kube-audit:sshPrivateKey: not a PEM/OpenSSH private key"),
    (cfg(policy="no-such-profile"), r"kube-audit:policy: unknown audit policy profile 'no-such-profile'"),
    (cfg(policy="/nonexistent/policy.yaml"), r"kube-audit:policy: /nonexistent/policy.yaml is not a valid audit policy"),
    # issue 22: what a node or the apiserver would refuse later, refused here
    (cfg(log={"path": "/var/log/audit/"}), r"kube-audit:log\.path: .*'/var/log/audit/' names a directory"),
    (cfg(paths={"manifest": "/etc/kubernetes/manifests/kube-apiserver.yaml/."}), r"kube-audit:paths\.manifest: .*names a directory"),
    (cfg(log={"maxAge": 10**20}), r"kube-audit:log\.maxAge: Input should be less than or equal to 106751"),
    (cfg(log={"maxSize": 2**43}), r"kube-audit:log\.maxSize: Input should be less than or equal to 8796093022207"),
    (cfg(log={"maxBackup": 2**63}), r"kube-audit:log\.maxBackup: Input should be less than or equal to 9223372036854775807"),
    (cfg(masters=[{"name": "m1", "host": "Master-1.lan"}, {"name": "m2", "host": "master-1.lan."}]),
     r"kube-audit:masters\[1\]\.host: 'master-1\.lan\.' duplicates masters\[0\] \('Master-1\.lan', the same host\)"),
    (cfg(masters=[{"name": "m1", "host": "::1"}, {"name": "m2", "host": "0:0::1"}]), r"kube-audit:masters\[1\]\.host: '0:0::1' duplicates"),
    (cfg(masters=[{"name": "m1", "host": "10.6.0.011"}]), r"kube-audit:masters\[0\]\.host: .*looks like an IPv4 address"),
    (cfg(masters=[{"name": "m1", "host": "root@10.6.0.11"}]), r"kube-audit:masters\[0\]\.host: .*host name .* or an IP address"),
    (cfg(masters=[{"name": "m", "host": "h", "hostKey": "ssh-foo AAAA"}]), r"kube-audit:masters\[0\]\.hostKey: .*unknown host key type 'ssh-foo'"),
    (cfg(masters=[{"name": "m", "host": "h", "hostKey": "ssh-ed25519 AAAA"}]), r"kube-audit:masters\[0\]\.hostKey: .*not a valid ssh-ed25519 key"),
    (cfg(paths={"policyFile": "audit\0.yaml"}), r"kube-audit:paths\.policyFile: .*NUL"),
    (cfg(log={"hostDir": "/var/log/audit\nlogs"}), r"kube-audit:log\.hostDir: .*control characters"),
    (cfg(policy="/tmp/policy\0.yaml"), r"kube-audit:policy: .*control characters"),
    (cfg(rollout={"readinessUrl": "file:///etc/kubernetes/admin.conf"}), r"kube-audit:rollout\.readinessUrl: .*http:// or https://"),
    (cfg(rollout={"readinessUrl": "https://admin:pw@127.0.0.1:6443/readyz"}), r"kube-audit:rollout\.readinessUrl: .*credentials"),
    (cfg(rollout={"readinessUrl": "https://127.0.0.1:99999/readyz"}), r"kube-audit:rollout\.readinessUrl: .*port"),
    (cfg(rollout={"restartTimeoutSeconds": 10**20}), r"kube-audit:rollout\.restartTimeoutSeconds: Input should be less than or equal to 3600"),
    (cfg(volumeMinHistoryHours="Infinity"), r"kube-audit:volumeMinHistoryHours: must be 0 or more hours, at most"),
    (cfg(volumeMinHistoryHours="NaN"), r"kube-audit:volumeMinHistoryHours: must be 0 or more hours, at most"),
    (cfg(log={"path": "/etc/kubernetes/pki/audit.log"}), r"kube-audit:log\.path: /etc/kubernetes/pki overlaps /etc/kubernetes, kubeadm's own dir"),
    (cfg(log={"hostDir": "/etc/kubernetes/audit-logs"}), r"kube-audit:log\.hostDir: /etc/kubernetes/audit-logs overlaps /etc/kubernetes"),
    (cfg(log={"path": "/etc/ssl/certs/audit/audit.log"}), r"kube-audit:log\.path: .*kubeadm as ca-certs"),
    (cfg(log={"hostDir": "/usr/local/share/ca-certificates/audit"}), r"kube-audit:log\.hostDir: .*usr-local-share-ca-certificates"),
    (cfg(log={"hostDir": "/usr"}), r"kube-audit:log\.hostDir: /usr overlaps /usr/share/ca-certificates"),
]

# Policy files: (content, the field and line:col the message must name).
POLICIES = [
    (POLICY_HEAD + "rules:\n  - level: Loud\n", r":4:12: rules\[0\]\.level: Unsupported value"),
    ("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules:\n  - level: Metadata\n", r":1:13: apiVersion"),
    ("apiVersion: audit.k8s.io/v1\nkind: Pollicy\nrules:\n  - level: Metadata\n", r":2:7: kind \"Pollicy\""),
    (POLICY_HEAD + "rules: []\n", r":3:8: policy has no rules"),
    (POLICY_HEAD + "rules:\n  - level: Metadata\n    nonResourceURLs: [healthz]\n", r":5:23: rules\[0\]\.nonResourceURLs\[0\]"),
    (POLICY_HEAD + "rules:\n  - level: Metadata\n    nonResourceURLs: [/x]\n    resources: [{group: ''}]\n",
     r":5:22: rules\[0\]\.nonResourceURLs: .*both"),
    (POLICY_HEAD + "rules:\n  - level: Metadata\n    resources:\n      - group: rbac.authorization.k8s.io/v1\n",
     r":6:16: rules\[0\]\.resources\[0\]\.group"),
    (POLICY_HEAD + "rules:\n  - level: Metadata\n    resources:\n      - group: ''\n        resourceNames: [x]\n",
     r":7:24: rules\[0\]\.resources\[0\]\.resourceNames"),
    (POLICY_HEAD + "omitStages: [Sometimes]\nrules:\n  - level: Metadata\n", r":3:14: omitStages\[0\]"),
    (POLICY_HEAD + "rules:\n  - level: Metadata\n    level: None\n", r":5:5: duplicate key \"level\""),
    (POLICY_HEAD + "rules: [\n", r":4:1: YAML syntax error"),
    (POLICY_HEAD + "rules:\n  - level: Metadata\n    verb: [get]\n", r":5:5: rules\[0\]\.verb: unknown field"),
    ("- a\n- b\n", r":1:1: policy: expected an audit Policy"),
    (POLICY_HEAD + "rules:\n  - level: Metadata\n    nonResourceURLs: ['/a*b']\n", r":5:23: .*wildcards"),
    (POLICY_HEAD + "rules:\n  - level: Metadata\n    verbs: get\n", r":5:12: rules\[0\]\.verbs: expected a list"),
    (POLICY_HEAD + "rules:\n" + "  - level: None\n" * 5001, r":4:3: rules: 5001 rules; kube-audit checks policies of up to 5000"),
    (POLICY_HEAD + "rules:\n  - level: None\n#" + "x" * (1 << 20) + "\n", r":1:1: the policy is \d+ bytes; .* up to 1048576"),
]


class TripwireMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        # Filled synchronously by a stack transformation as each resource is constructed, so an
        # empty list means "none declared", not "not registered yet".
        self.created: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


@pytest.fixture
def no_ssh(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way the program reaches a master, replaced by a recorder that also fails the call."""
    contacted: list[str] = []

    def tripwire(*args: Any, **kwargs: Any) -> Any:
        contacted.append(repr(args)[:80])
        raise AssertionError("a master was contacted")

    for name in ("open_client", "run", "upload"):
        monkeypatch.setattr(ssh, name, tripwire)
    # The drift reader holds its own reference to open_client (imported by name), which the line
    # above cannot reach once that module is loaded: without this the tripwire was blind to reads.
    monkeypatch.setattr(facts, "open_client", tripwire)
    return contacted


def run_program(raw: dict[str, Any], mocks: TripwireMocks) -> None:
    pulumi.runtime.set_mocks(mocks, project="kube-audit", stack="dev", preview=False)

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        mocks.created.append(args.type_)

    pulumi.runtime.register_stack_transformation(record)
    config = {f"kube-audit:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    secret = [f"kube-audit:{k}" for k in ("sshPrivateKey", "sshPrivateKeyPassphrase") if k in raw]
    pulumi.runtime.set_all_config(config, secret)
    runpy.run_path(str(MAIN), run_name="__main__")


def _refused_by_the_program(raw: dict[str, Any], message: str, no_ssh: list[str]) -> None:
    mocks = TripwireMocks()
    with pytest.raises(pulumi.RunError, match=message) as info:
        run_program(raw, mocks)
    assert "Traceback" not in str(info.value)
    assert mocks.created == [], "no resource declared"
    assert no_ssh == [], "no master contacted"


@pytest.mark.parametrize(("raw", "message"), CONFIG, ids=[f"config-{i}" for i in range(len(CONFIG))])
def test_bad_stack_config_is_refused_before_any_node(raw: dict[str, Any], message: str, no_ssh: list[str]) -> None:
    _refused_by_the_program(raw, message, no_ssh)


@pytest.mark.parametrize(("text", "where"), POLICIES, ids=[f"policy-{i}" for i in range(len(POLICIES))])
def test_bad_policy_is_refused_before_any_node(tmp_path: Path, text: str, where: str, no_ssh: list[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    _refused_by_the_program(cfg(policy=str(policy)), rf"kube-audit:policy: .*\n{policy}{where}", no_ssh)


def test_the_program_does_declare_resources_for_good_input(no_ssh: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The tripwire is live: good input gets past settings and declares the per-master resources."""
    # Good input reads the cluster's Helm record of insight-agent before any resource; there is no
    # cluster here, so that read answers with the unit tests' installed release.
    from components.insight_agent import component as insight_agent

    from .program.conftest import agent_plan

    monkeypatch.setattr(insight_agent, "gather_release_plan", agent_plan)
    mocks = TripwireMocks()
    # drift.read off: good input would otherwise read each master (read-only, by design), and these
    # hosts do not exist. What this test shows is that settings let good input through.
    run_program(cfg(drift={"read": False}), mocks)
    assert "kube-audit:index:ApiServerAuditChange" in mocks.created
    assert no_ssh == [], "declaring resources contacts no master"


# --- manifests ---------------------------------------------------------------------------------------

M = "manifests/kube-apiserver.yaml"


def pod(command: str = "    - kube-apiserver\n    - --secure-port=6443\n", head: str = "", extra: str = "") -> str:
    return (f"{head}apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\n"
            f"spec:\n  containers:\n  - name: kube-apiserver\n    image: k8s/kube-apiserver:v1.31.0\n"
            f"    command:\n{command}{extra}")


DEEP = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: " + "[" * 5000 + "]" * 5000 + "\n"
BOMB = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  annotations:\n"
        "    a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"    {chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)},"
            f" *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9))
        + "spec:\n  containers:\n  - name: kube-apiserver\n    command: [kube-apiserver]\n")

# (manifest bytes, or a callable preparing the etc dir; what the message must contain)
MANIFESTS: list[tuple[Any, str]] = [
    ("kind: Pod\napiVersion: v1\nspec: {containers: [\n", rf"{M}:4:1: not valid YAML"),
    ("- just\n- a list\n", rf"{M}: expected a Pod manifest \(a YAML mapping\), got a list"),
    ("apiVersion: v1\nkind: Service\n", rf"{M}: expected apiVersion v1, kind Pod"),
    ("apiVersion: v1\nkind: Pod\nmetadata: null\nspec:\n  containers: []\n", rf"{M}:3:11: metadata must be a mapping, got null"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: []\n", rf"{M}:4:7: spec must be a mapping, got a list"),
    (pod().replace("name: kube-apiserver\n    image", "name: apiserver\n    image"), rf"{M}: no container named 'kube-apiserver'"),
    (pod(head="", extra="    image: again\n"), rf"{M}:\d+:\d+: not valid YAML: found duplicate key \"image\""),
    (BOMB, rf"{M}:6:8: YAML anchors and aliases are not supported"),
    (DEEP, rf"{M}:4:\d+: nested deeper than 64 levels"),
    (pod() + "---\n" + pod(), rf"{M}:\d+:1: more than one YAML document"),
    (pod(command="    - !!str kube-apiserver\n"), rf"{M}:11:7: explicit YAML tag"),
    (pod(extra="    env: [{<<: {name: A, value: b}}]\n"), rf"{M}:\d+:\d+: YAML merge keys"),
    (pod(command="    - kube-apiserver\n    - --secure-port\n    - 6443\n"),
     rf"{M}:13:7: spec\.containers\[0\]\.command\[2\] is a number \(6443\) as the kubelet reads it; expected a string"),
    (pod(command="    - kube-apiserver\n    - y\n"), rf"{M}:12:7: .*command\[1\] is a boolean \(true\)"),
    (pod(command="    - sh\n    - -c\n    - exec kube-apiserver --secure-port=6443\n"),
     rf"{M}:11:7: spec\.containers\[0\]\.command runs 'sh', not kube-apiserver"),
    (pod(command="    - kube-apiserver\n    - --audit-log-path\n"), rf"{M}: spec\.containers\[0\]\.command\[1\]: --audit-log-path is not followed by its value"),
    (pod(command="    - kube-apiserver\n    - --audit-log-path\n    - --v=2\n"), r"--audit-log-path is not followed by its value .*'--v=2'"),
    # kube-apiserver reads `_` as `-` in flag names: these are audit flags too (issue 22).
    (pod(command="    - kube-apiserver\n    - --audit_log_path\n"), rf"{M}: spec\.containers\[0\]\.command\[1\]: --audit_log_path is not followed by its value"),
    (pod(command="    - kube-apiserver\n    - --etcd-prefix\n    - --audit_policy_file=/x.yaml\n"),
     rf"{M}: spec\.containers\[0\]\.command\[2\]: kube-apiserver may not read --audit_policy_file=/x\.yaml as a flag"),
    (pod(command="    - kube-apiserver\n    - --secure-port=6443\n    - --\n"),
     rf"{M}: spec\.containers\[0\]\.command\[2\]: '--' ends kube-apiserver's flags"),
    (pod(extra="    volumeMounts: {name: x}\n"), rf"{M}:13:19: spec\.containers\[0\]\.volumeMounts must be a list, got a mapping"),
    (pod(head="").replace("  namespace: kube-system\n", "  annotations: [a]\n"), rf"{M}:5:16: metadata\.annotations must be a mapping"),
    (pod(extra="    args: --secure-port=6443\n"), rf"{M}:13:11: spec\.containers\[0\]\.args must be a list, got a string"),
    (pod() + "  volumes: {a: b}\n", rf"{M}:\d+:\d+: spec\.volumes must be a list of mappings"),
    (b"apiVersion: v1\nkind: Pod\nmetadata: {name: \xff}\n", rf"{M}: not UTF-8 text"),
    ("symlink", rf"{M} is a symlink to"),
    ("fifo", rf"{M} is not a regular file"),
    ("stray", r"kube-apiserver\.yaml\.bak also declares the kube-apiserver pod"),
    ("no-policy", r"the audit policy .*apiserver-audit-policy\.yaml is missing"),
    ("huge", rf"{M} is 10485761 bytes; the kubelet reads static-pod files of up to 10485760"),
    # Pods the kubelet would reject: refused, not written (podcheck.py).
    ("disable-init-mount", rf"{M}:\d+:7: spec\.initContainers\[0\]\.volumeMounts\[0\]\.name: Not found: "
                           r"\"audit-logs\" \(container 'shipper' mounts kube-audit's volume.*remove that mount first"),
    ("disable-sidecar-mount", rf"{M}:\d+:7: spec\.containers\[1\]\.volumeMounts\[0\]\.name: Not found: "
                              r"\"audit-policy\""),
    ("log-in-pki", rf"{M}:85:7: spec\.containers\[0\]\.volumeMounts\[5\]\.mountPath: Invalid value: "
                   r"\"/etc/kubernetes/pki\": must be unique \('k8s-certs' is mounted there too"),
    # Bytes we cannot keep while changing them, and a file the kubelet reads otherwise (JSON).
    (pod(command="    - kube-apiserver\n").replace("    command:\n    - kube-apiserver\n",
                                                   "    command: [kube-apiserver,\n      --secure-port=6443,  # x\n"
                                                   "      --v=2]\n"),
     rf"{M}:10: the change would rewrite this part of the file in another layout \('command: \[kube-apiserver,'"),
    (b'{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kube-apiserver"}, "spec": {"containers": '
     b'[{"name": "kube-apiserver", "image": "x", "command": ["kube-apiserver"]}]}}\n',
     rf"{M}:1:1: the kubelet reads a file that starts with '{{' as JSON, not YAML"),
    # A second kube-apiserver pod however it is written, and files we cannot read as the kubelet does.
    ("hardlink", rf"manifests/kube-apiserver-copy\.yaml \(a hard link to {M}\) also declares the kube-apiserver pod"),
    ("symlink-copy", rf"manifests/zz\.yaml \(a symlink to {M}\) also declares the kube-apiserver pod"),
    ("utf16-copy", r"manifests/b\.yaml also declares the kube-apiserver pod"),
    ("dupname-copy", r"manifests/a\.yaml also declares the kube-apiserver pod"),
    ("deep-copy", r"manifests/d\.yaml: nested deeper than 256 levels.*cannot tell whether the kubelet reads a "
                  r"second kube-apiserver pod from it"),
    ("unreadable-copy", r"manifests/e\.yaml: not YAML we can read"),
    # A directory we must create, below a regular file.
    ("log-below-file", r"log is not a directory, so log/audit cannot be created below it"),
]


def _enabled_with_shipper(etc: Path, kind: str, volume: str) -> str:
    text = planner.rewrite(KUBEADM, make_request(etc).state, M)[2]
    item = f"  - name: shipper\n    image: busybox\n    volumeMounts:\n    - mountPath: /x\n      name: {volume}\n"
    block = item if kind == "containers" else f"  {kind}:\n{item}"
    return text.replace("  hostNetwork: true\n", block + "  hostNetwork: true\n")


def prepare(etc: Path, manifest: Any) -> dict[str, Any]:
    """Plant the bad input; returns what the request's state must say for it (e.g. audit off)."""
    path = etc / M
    manifests = etc / "manifests"
    if isinstance(manifest, bytes):
        path.write_bytes(manifest)
    elif manifest == "symlink":
        path.rename(etc / "real.yaml")
        path.symlink_to(etc / "real.yaml")
    elif manifest == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif manifest == "stray":
        shutil.copy(path, manifests / "kube-apiserver.yaml.bak")
    elif manifest == "no-policy":
        (etc / "audit-policy" / "apiserver-audit-policy.yaml").unlink()
    elif manifest == "huge":
        path.write_bytes(KUBEADM.encode() + b"#" * (10 * 1024 * 1024 + 1 - len(KUBEADM.encode())))
    elif manifest in ("disable-init-mount", "disable-sidecar-mount"):
        kind, volume = (("initContainers", "audit-logs") if manifest == "disable-init-mount" else
                        ("containers", "audit-policy"))
        path.write_text(_enabled_with_shipper(etc, kind, volume))
        return {"enabled": False, "policy_hash": None}
    elif manifest == "log-in-pki":
        return {"log_path": "/etc/kubernetes/pki/audit.log"}
    elif manifest == "hardlink":
        os.link(path, manifests / "kube-apiserver-copy.yaml")
    elif manifest == "symlink-copy":
        (manifests / "zz.yaml").symlink_to("kube-apiserver.yaml")
    elif manifest == "utf16-copy":
        (manifests / "b.yaml").write_bytes(("\ufeff" + KUBEADM).encode("utf-16-le"))
    elif manifest == "dupname-copy":
        (manifests / "a.yaml").write_text(KUBEADM.replace("\n  name: kube-apiserver\n",
                                                          "\n  name: a\n  name: kube-apiserver\n", 1))
    elif manifest == "deep-copy":
        (manifests / "d.yaml").write_text(KUBEADM.replace("  labels:\n", "  x: " + "[" * 300 + "]" * 300 + "\n"
                                                          "  labels:\n"))
    elif manifest == "unreadable-copy":
        (manifests / "e.yaml").write_text("metadata: {name: kube-apiserver\n")
    elif manifest == "log-below-file":
        (etc / "log").write_text("a file, not the log dir\n")
        return {"log_host_dir": str(etc / "log" / "audit")}
    else:
        path.write_text(manifest)
    return {}


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry under root: its mode and its content (or link target); FIFOs are never opened."""
    result: dict[str, tuple[int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            content: bytes | str = os.readlink(path)
        elif path.is_file() and not path.is_fifo():
            content = path.read_bytes()
        else:
            content = ""
        result[str(path.relative_to(root))] = (info.st_mode, content)
    return result


@pytest.mark.parametrize(("manifest", "message"), MANIFESTS, ids=[f"manifest-{i}" for i in range(len(MANIFESTS))])
def test_bad_manifest_is_refused_with_nothing_written(tmp_path: Path, manifest: Any, message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    etc = make_etc(tmp_path / "etc")
    state = prepare(etc, manifest)
    request = make_request(etc)
    request = dataclasses.replace(request, state=dataclasses.replace(request.state, **state))
    before = snapshot(tmp_path)
    waiter = scripted([True])
    code = node.main(["apply", "--request", request.to_json()], gate=waiter)
    err = capsys.readouterr().err.replace(str(etc) + "/", "")
    assert code == 2, err
    assert re.search(message, err), err
    assert "nothing was changed" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before, "no file or directory written, created or changed"
    assert waiter.calls == [], "readiness never probed"  # type: ignore[attr-defined]


# --- requests ------------------------------------------------------------------------------------------

REQUESTS = [
    ({"enabled": "false"}, r"state\.enabled: expected true or false, got \"false\""),
    ({"max_age": "30"}, r"state\.max_age: expected an integer >= 0"),
    ({"log_mode": "fast"}, r"state\.log_mode: expected null"),
    ({"policy_file": ".."}, r"state\.policy_file: expected a file name"),
    ({"colour": "red"}, r"state\.colour: unknown field"),
]


# The request's own fields (the timeouts cross the wire as JSON numbers, where NaN and Infinity parse).
REQUEST_FIELDS = [
    ({"restart_timeout": float("inf")}, r"restart_timeout: expected a number > 0 and <= 3600, got Infinity"),
    ({"ready_timeout": float("nan")}, r"ready_timeout: expected a number > 0 and <= 3600, got NaN"),
    ({"audit_write_timeout": 1e20}, r"audit_write_timeout: expected a number >= 0 and <= 3600"),
    ({"readiness_url": "file:///etc/kubernetes/admin.conf"}, r"readiness_url: expected null or an http\(s\) URL"),
    ({"manifest": "/etc/kubernetes/manifests/kube-apiserver.yaml\0"}, r"manifest: expected a normalised absolute path"),
    ({"state": {"enabled": True, "max_age": 10**20}}, r"state\.max_age: expected an integer >= 0 and <= 106751"),
    ({"state": {"enabled": True, "max_size": 2**43}}, r"state\.max_size: expected an integer >= 0 and <= 8796093022207"),
]


@pytest.mark.parametrize(("state", "message"), REQUESTS, ids=[f"request-{i}" for i in range(len(REQUESTS))])
def test_bad_request_is_refused_with_nothing_written(tmp_path: Path, state: dict[str, Any], message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    etc = make_etc(tmp_path / "etc")
    data = json.loads(make_request(etc).to_json())
    data["state"].update(state)
    before = snapshot(tmp_path)
    waiter = scripted([True])
    assert node.main(["apply", "--request", json.dumps(data)], gate=waiter) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert snapshot(tmp_path) == before and waiter.calls == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("fields", "message"), REQUEST_FIELDS, ids=[f"field-{i}" for i in range(len(REQUEST_FIELDS))])
def test_bad_request_field_is_refused_with_nothing_written(tmp_path: Path, fields: dict[str, Any], message: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    etc = make_etc(tmp_path / "etc")
    data = json.loads(make_request(etc).to_json())
    for key, value in fields.items():
        data[key] = {**data[key], **value} if key == "state" else value
    before = snapshot(tmp_path)
    waiter = scripted([True])
    assert node.main(["apply", "--request", json.dumps(data)], gate=waiter) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "nothing was changed" in err, err
    assert snapshot(tmp_path) == before and waiter.calls == []  # type: ignore[attr-defined]


def test_the_sweep_has_at_least_forty_kinds() -> None:
    assert len(CONFIG) + len(POLICIES) + len(MANIFESTS) + len(REQUESTS) + len(REQUEST_FIELDS) >= 40

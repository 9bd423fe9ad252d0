"""Stack config validation: every bad input is refused with the key named, before any resource."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.settings import SettingsError, parse_settings

from .conftest import FAKE_KEY, MASTERS, base_config

SECRETS = {"sshPrivateKey", "sshPrivateKeyPassphrase"}


def parse(raw: dict[str, str], secrets: set[str] = SECRETS, base_dir: Path | None = None):  # type: ignore[no-untyped-def]
    kwargs = {"base_dir": base_dir} if base_dir else {}
    return parse_settings(raw, secrets, "dev", **kwargs)


def test_defaults_are_the_dce_guides() -> None:
    s = parse(base_config())
    assert s.enabled is True
    assert [m.name for m in s.masters] == ["master-1", "master-2", "master-3"]
    assert (s.masters[0].port, s.masters[0].user, s.masters[1].port, s.masters[2].user) == (22, "root", 2222, "admin")
    assert (s.log.path, s.log.host_dir) == ("/var/log/audit/kube-apiserver-audit.log", "/var/log/kubernetes/audit")
    assert (s.log.max_age, s.log.max_backup, s.log.max_size) == (30, 1, 100)
    assert (s.paths.policy_dir, s.paths.policy_file) == ("/etc/kubernetes/audit-policy", "apiserver-audit-policy.yaml")
    assert (s.paths.manifest, s.paths.backup_dir) == ("/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/tmp")
    assert (s.insight_agent.namespace, s.insight_agent.release, s.insight_agent.adopt) == ("insight-system", "insight-agent", True)
    r = s.rollout
    assert (r.ready_consecutive, r.audit_write_timeout_seconds, r.log_space_margin_mb, r.pod_log_dir) == (
        3, 60, 64, "/var/log/pods")
    assert s.policy is not None and s.policy.name == "dce-default" and len(s.policy.sha256) == 64
    assert s.host_log_path == "/var/log/kubernetes/audit/kube-apiserver-audit.log"
    assert s.audit_state().flags()[-1] == "--audit-policy-file=/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml"


def test_key_is_optional_then_the_agent_is_used() -> None:
    assert parse(base_config(sshPrivateKey=None)).ssh_private_key is None


def test_private_key_never_appears_in_repr_or_errors() -> None:
    s = parse(base_config())
    assert FAKE_KEY not in repr(s) and "fakefake" not in str(s)
    with pytest.raises(SettingsError) as info:
        parse(base_config(sshPrivateKey="hunter2-not-a-key"))
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(("overrides", "secrets", "message"), [
    ({"masters": None}, SECRETS, r"kube-audit:masters: required"),
    ({"masters": []}, SECRETS, r"kube-audit:masters: the list is empty"),
    ({"masters": "not json"}, SECRETS, r"kube-audit:masters: not a valid list"),
    ({"masters": {"name": "x"}}, SECRETS, r"kube-audit:masters: expected a list"),
    ({"masters": [MASTERS[0], {**MASTERS[1], "name": "master-1"}]}, SECRETS,
     r"kube-audit:masters\[1\]\.name: 'master-1' duplicates masters\[0\]"),
    ({"masters": [MASTERS[0], {**MASTERS[1], "host": "10.6.0.11"}]}, SECRETS,
     r"kube-audit:masters\[1\]\.host: '10.6.0.11' duplicates masters\[0\]"),
    ({"masters": [{"name": "m", "host": "h", "prot": 22}]}, SECRETS, r"kube-audit:masters\[0\]\.prot: Extra inputs"),
    ({"masters": [{"name": "m", "host": "h", "port": "22"}]}, SECRETS, r"kube-audit:masters\[0\]\.port: Input should be a valid integer"),
    ({"masters": [{"name": "m", "host": "h", "port": 0}]}, SECRETS, r"kube-audit:masters\[0\]\.port: Input should be greater"),
    ({"masters": [{"name": "Master_1", "host": "h"}]}, SECRETS, r"kube-audit:masters\[0\]\.name: String should match"),
    ({"masters": [{"name": "m", "host": "h", "hostKey": "AAAA"}]}, SECRETS, r"kube-audit:masters\[0\]\.hostKey: .*OpenSSH public host key"),
    ({"enabled": "yes"}, SECRETS, r"kube-audit:enabled: expected true or false"),
    ({"enabeld": "true"}, SECRETS, r"kube-audit:enabeld: unknown key"),
    ({"log": {"maxAge": "30"}}, SECRETS, r"kube-audit:log\.maxAge: Input should be a valid integer"),
    ({"log": {"maxAge": -1}}, SECRETS, r"kube-audit:log\.maxAge: Input should be greater than or equal to 0"),
    ({"log": {"max_age": 3}}, SECRETS, r"kube-audit:log\.max_age: Extra inputs"),
    ({"log": {"mode": "fast"}}, SECRETS, r"kube-audit:log\.mode: Input should be 'blocking', 'blocking-strict' or 'batch'"),
    ({"log": {"path": "relative.log"}}, SECRETS, r"kube-audit:log\.path: String should match"),
    ({"log": {"path": "/audit.log"}}, SECRETS, r"kube-audit:log\.path: .*inside a directory"),
    ({"log": [1]}, SECRETS, r"kube-audit:log: expected a mapping"),
    ({"paths": {"backupDir": "/etc/kubernetes/manifests/bak"}}, SECRETS,
     r"kube-audit:paths\.backupDir: /etc/kubernetes/manifests/bak overlaps kube-audit:paths\.manifest .*the kubelet runs"),
    ({"paths": {"policyFile": "a/b.yaml"}}, SECRETS, r"kube-audit:paths\.policyFile: String should match"),
    ({"insightAgent": {"adopt": "yes"}}, SECRETS, r"kube-audit:insightAgent\.adopt: Input should be a valid boolean"),
    ({"rollout": {"readyTimeoutSeconds": 0}}, SECRETS, r"kube-audit:rollout\.readyTimeoutSeconds: Input should be greater than 0"),
    ({"rollout": {"readyConsecutive": 0}}, SECRETS, r"kube-audit:rollout\.readyConsecutive: Input should be greater"),
    ({"rollout": {"auditWriteTimeoutSeconds": -1}}, SECRETS, r"kube-audit:rollout\.auditWriteTimeoutSeconds: Input"),
    ({"rollout": {"logSpaceMarginMb": "64"}}, SECRETS, r"kube-audit:rollout\.logSpaceMarginMb: Input should be a valid"),
    ({"rollout": {"podLogDir": "var/log/pods"}}, SECRETS, r"kube-audit:rollout\.podLogDir: String should match"),
    ({}, set(), r"kube-audit:sshPrivateKey: must be a secret"),
    ({"sshPrivateKey": None, "sshPrivateKeyPassphrase": "pw"}, SECRETS, r"kube-audit:sshPrivateKeyPassphrase: set, but"),
    ({"policy": "no-such-profile"}, SECRETS, r"kube-audit:policy: .*no-such-profile"),
])
def test_bad_config_is_refused_naming_the_key(overrides: dict, secrets: set[str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse(base_config(**overrides), secrets)


def test_invalid_policy_file_is_refused_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Loud\n")
    with pytest.raises(SettingsError) as info:
        parse(base_config(policy="bad.yaml"), base_dir=tmp_path)
    assert "kube-audit:policy" in str(info.value)
    assert f"{bad}:4:" in str(info.value)


def test_unreadable_policy_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"kube-audit:policy"):
        parse(base_config(policy="./missing.yaml"), base_dir=tmp_path)


def test_disabled_stack_needs_no_policy() -> None:
    s = parse(base_config(enabled="false", policy="./missing.yaml"))
    assert s.policy is None and s.audit_state().flags() == []


def test_paths_are_normalised_before_they_are_compared_or_used() -> None:
    s = parse(base_config(paths={"backupDir": "/etc/kubernetes//tmp/", "policyDir": "/etc/./kubernetes/audit-policy"},
                          log={"hostDir": "/var/log//kubernetes/audit/"}))
    assert (s.paths.backup_dir, s.paths.policy_dir, s.log.host_dir) == (
        "/etc/kubernetes/tmp", "/etc/kubernetes/audit-policy", "/var/log/kubernetes/audit")
    assert s.audit_state().policy_path == "/etc/kubernetes/audit-policy/apiserver-audit-policy.yaml"
    assert s.rollout.keep_backups == 5

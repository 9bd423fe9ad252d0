"""Settings refuse what a master or kube-apiserver would refuse later (issue 22), naming the key.

The rules are general, so most are properties: any host spelled another way is the same host, any
path in a directory kubeadm mounts is refused for the audit log, any value past what the apiserver
parses is refused, and nothing refused here ever surfaces as anything but a SettingsError.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from components.manifest.desired import (
    MAX_AUDIT_LOG_MAXAGE,
    MAX_AUDIT_LOG_MAXBACKUP,
    MAX_AUDIT_LOG_MAXSIZE,
    MAX_WAIT_SECONDS,
    AuditState,
    NodeRequest,
    RequestError,
)
from components.settings import Settings, SettingsError, parse_settings
from components.settings.masters import host_identity, host_key_from_line
from components.settings.paths import KUBEADM_DIRS

from .conftest import MASTERS, base_config

PROPERTY = hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
HOSTNAME = st.lists(LABEL, min_size=1, max_size=4).map(".".join).filter(lambda h: not h.split(".")[-1].isdigit())
SEGMENT = st.from_regex(r"[a-z0-9_][a-z0-9_.-]{0,8}", fullmatch=True).filter(lambda s: s not in (".", ".."))


def parse(**overrides: Any) -> Settings:
    # Audit off: no policy is loaded, yet every key is still checked; this keeps properties fast.
    return parse_settings(base_config(enabled="false", **overrides), {"sshPrivateKey"}, "dev")


def refused(key: str, **overrides: Any) -> str:
    with pytest.raises(SettingsError) as info:
        parse(**overrides)
    assert re.search(rf"(^|\n){re.escape(key)}: ", str(info.value)), str(info.value)
    return str(info.value)


# --- hosts -------------------------------------------------------------------------------------


def _swap_case(text: str, flips: list[bool]) -> str:
    return "".join(c.swapcase() if flip else c for c, flip in zip(text, flips + [False] * len(text), strict=False))


@PROPERTY
@given(HOSTNAME, st.lists(st.booleans(), max_size=60), st.booleans())
def test_a_host_spelled_in_another_case_is_the_same_master(host: str, flips: list[bool], root_dot: bool) -> None:
    other = _swap_case(host, flips) + ("." if root_dot else "")
    masters = [{"name": "m1", "host": host}, {"name": "m2", "host": other}]
    message = refused("kube-audit:masters[1].host", masters=masters)
    assert "duplicates masters[0]" in message


@PROPERTY
@given(st.ip_addresses(v=6))
def test_an_ipv6_address_written_long_or_short_is_the_same_master(address: ipaddress.IPv6Address) -> None:
    masters = [{"name": "m1", "host": address.compressed}, {"name": "m2", "host": address.exploded}]
    assert "duplicates masters[0]" in refused("kube-audit:masters[1].host", masters=masters)


@PROPERTY
@given(st.ip_addresses(v=4))
def test_an_ipv4_mapped_address_is_the_ipv4_master(address: ipaddress.IPv4Address) -> None:
    masters = [{"name": "m1", "host": str(address)}, {"name": "m2", "host": f"::ffff:{address}"}]
    assert "duplicates masters[0]" in refused("kube-audit:masters[1].host", masters=masters)


@PROPERTY
@given(st.lists(HOSTNAME, min_size=1, max_size=5, unique_by=host_identity))
def test_different_hosts_are_accepted(hosts: list[str]) -> None:
    masters = [{"name": f"m{i}", "host": host} for i, host in enumerate(hosts)]
    assert [m.host for m in parse(masters=masters).masters] == hosts


@pytest.mark.parametrize(("host", "why"), [
    ("10.6.0.011", "looks like an IPv4 address"),
    ("10.6.1", "looks like an IPv4 address"),
    ("[::1]", "without brackets"),
    ("root@10.6.0.11", "host name"),
    ("master 1", "host name"),
    ("a..b", "host name"),
    ("-master", "host name"),
])
def test_what_is_not_a_host_is_refused(host: str, why: str) -> None:
    assert why in refused("kube-audit:masters[0].host", masters=[{"name": "m", "host": host}])


# --- host keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "why"), [
    ("ssh-foo AAAA", "unknown host key type 'ssh-foo'"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA", "not valid base64"),
    ("ssh-ed25519 AAAA", "not a valid ssh-ed25519 key"),
    ("ecdsa-sha2-nistp256 " + MASTERS[0]["hostKey"].split()[1], "not a valid ecdsa-sha2-nistp256 key"),
    ("AAAA", "OpenSSH public host key line"),
    # Cut short by a copy that lost its end, or with bytes added: paramiko alone loads both.
    ("ssh-ed25519 " + base64.b64encode(base64.b64decode(MASTERS[0]["hostKey"].split()[1])[:-4]).decode(),
     "cut short or with bytes added"),
    ("ssh-ed25519 " + base64.b64encode(base64.b64decode(MASTERS[0]["hostKey"].split()[1]) + b"xy").decode(),
     "cut short or with bytes added"),
])
def test_a_host_key_ssh_could_not_use_is_refused_naming_the_key(line: str, why: str) -> None:
    assert why in refused("kube-audit:masters[0].hostKey", masters=[{"name": "m", "host": "h", "hostKey": line}])


def test_a_real_host_key_is_accepted_and_parsed_as_the_ssh_layer_parses_it() -> None:
    line = MASTERS[0]["hostKey"] + " root@master-1"
    assert parse(masters=[{"name": "m", "host": "h", "hostKey": line}]).masters[0].host_key == line
    kind, key = host_key_from_line(line)
    assert kind == key.get_name() == "ssh-ed25519"


@pytest.mark.parametrize(("kind", "new_key"), [
    ("ssh-ed25519", ed25519.Ed25519PrivateKey.generate),
    ("ecdsa-sha2-nistp256", lambda: ec.generate_private_key(ec.SECP256R1())),
    ("ecdsa-sha2-nistp384", lambda: ec.generate_private_key(ec.SECP384R1())),
    ("ecdsa-sha2-nistp521", lambda: ec.generate_private_key(ec.SECP521R1())),
    ("ssh-rsa", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
])
def test_fresh_host_keys_of_every_type_sshd_offers_are_accepted(kind: str, new_key: Any) -> None:
    # The encode-back check must hold for each key type, not just the fixture's ed25519.
    line = new_key().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    assert line.startswith(kind + " ") and host_key_from_line(line)[0] == kind


# --- paths -------------------------------------------------------------------------------------


@PROPERTY
@given(st.lists(SEGMENT, min_size=1, max_size=4), st.sampled_from(["/", "/.", "//"]))
def test_a_file_path_naming_a_directory_is_refused_before_it_is_normalised(parts: list[str], tail: str) -> None:
    path = "/" + "/".join(parts) + tail
    assert "names a directory" in refused("kube-audit:log.path", log={"path": path})
    assert "names a directory" in refused("kube-audit:paths.manifest", paths={"manifest": path})


@PROPERTY
@given(st.sampled_from(sorted(KUBEADM_DIRS)), st.lists(SEGMENT, max_size=3), st.booleans())
def test_an_audit_log_dir_in_or_around_a_kubeadm_dir_is_refused(kubeadm_dir: str, below: list[str], up: bool) -> None:
    # Every kubeadm dir is two levels deep at least, so its parent is a directory below / too.
    directory = kubeadm_dir.rsplit("/", 1)[0] if up else "/".join([kubeadm_dir, *below])
    message = refused("kube-audit:log.hostDir", log={"hostDir": directory})
    assert f"overlaps {kubeadm_dir}" in message or "overlaps /etc/kubernetes" in message
    message = refused("kube-audit:log.path", log={"path": f"{directory}/kube-apiserver-audit.log"})
    assert "overlaps" in message and "kubeadm" in message


@pytest.mark.parametrize(("section", "key", "value"), [
    ("paths", "policyFile", "audit\0.yaml"),
    ("paths", "policyFile", "audit\n.yaml"),
    ("paths", "backupDir", "/etc/kubernetes/tmp\0"),
    ("log", "path", "/var/log/audit/a\x1b.log"),
    ("rollout", "podLogDir", "/var/log/pods\t"),
])
def test_control_characters_in_a_path_are_refused(section: str, key: str, value: str) -> None:
    assert re.search(r"NUL|control characters", refused(f"kube-audit:{section}.{key}", **{section: {key: value}}))


def test_a_nul_in_the_policy_setting_is_refused_naming_the_key() -> None:
    with pytest.raises(SettingsError, match=r"^kube-audit:policy: .*control characters"):
        parse_settings(base_config(policy="/tmp/a\0b.yaml"), {"sshPrivateKey"}, "dev")


# --- numbers -----------------------------------------------------------------------------------

INT64 = 2**63 - 1
LOG_BOUNDS = [("maxAge", MAX_AUDIT_LOG_MAXAGE), ("maxBackup", MAX_AUDIT_LOG_MAXBACKUP), ("maxSize", MAX_AUDIT_LOG_MAXSIZE)]


def test_the_flag_bounds_are_what_kube_apiserver_and_lumberjack_compute_with() -> None:
    # pflag parses an int flag with strconv.ParseInt(s, 0, 64); lumberjack multiplies maxage by a day
    # in nanoseconds and maxsize by a MiB, both in int64.
    assert (MAX_AUDIT_LOG_MAXAGE, MAX_AUDIT_LOG_MAXSIZE, MAX_AUDIT_LOG_MAXBACKUP) == (106_751, 8_796_093_022_207, INT64)
    assert MAX_AUDIT_LOG_MAXAGE * 86_400 * 10**9 <= INT64 < (MAX_AUDIT_LOG_MAXAGE + 1) * 86_400 * 10**9
    assert MAX_AUDIT_LOG_MAXSIZE * 2**20 <= INT64 < (MAX_AUDIT_LOG_MAXSIZE + 1) * 2**20


@PROPERTY
@given(st.sampled_from(LOG_BOUNDS), st.integers(min_value=1, max_value=2**80))
def test_log_numbers_past_what_the_apiserver_runs_with_are_refused(bound: tuple[str, int], over: int) -> None:
    key, high = bound
    refused(f"kube-audit:log.{key}", log={key: high + over})
    # ... and the same bound holds on the node, for a request that did not come from these settings.
    field = {"maxAge": "max_age", "maxBackup": "max_backup", "maxSize": "max_size"}[key]
    data = json.loads(NodeRequest(master="m", state=AuditState(enabled=True)).to_json())
    data["state"][field] = high + over
    with pytest.raises(RequestError, match=rf"state\.{field}: expected an integer >= 0 and <= {high}"):
        NodeRequest.from_json(json.dumps(data))


@PROPERTY
@given(st.sampled_from(LOG_BOUNDS), st.data())
def test_log_numbers_within_the_bounds_are_accepted(bound: tuple[str, int], data: st.DataObject) -> None:
    key, high = bound
    value = data.draw(st.integers(min_value=0, max_value=high))
    log = parse(log={key: value}).log
    assert {"maxAge": log.max_age, "maxBackup": log.max_backup, "maxSize": log.max_size}[key] == value


@pytest.mark.parametrize("key", ["restartTimeoutSeconds", "readyTimeoutSeconds", "auditWriteTimeoutSeconds"])
def test_waits_are_bounded(key: str) -> None:
    refused(f"kube-audit:rollout.{key}", rollout={key: MAX_WAIT_SECONDS + 1})
    assert getattr(parse(rollout={key: MAX_WAIT_SECONDS}).rollout, re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()) \
        == MAX_WAIT_SECONDS


@pytest.mark.parametrize("value", ["Infinity", "inf", "NaN", "-1", "1e300", "-inf"])
def test_min_history_hours_must_be_finite_and_bounded(value: str) -> None:
    refused("kube-audit:volumeMinHistoryHours", volumeMinHistoryHours=value)


@pytest.mark.parametrize(("url", "why"), [
    ("file:///etc/kubernetes/admin.conf", "http:// or https://"),
    ("ftp://127.0.0.1/readyz", "http:// or https://"),
    ("https:///readyz", "must name a host"),
    ("https://u:p@127.0.0.1:6443/readyz", "credentials"),
    ("https://127.0.0.1:0/readyz", "port"),
    ("https://127.0.0.1:65536/readyz", "port"),
    ("https://127.0.0.1:x/readyz", "port"),
    ("https://127.0.0.1:6443/ready z", "spaces or control characters"),
])
def test_a_readiness_url_the_gate_could_not_probe_is_refused(url: str, why: str) -> None:
    assert why in refused("kube-audit:rollout.readinessUrl", rollout={"readinessUrl": url})


@pytest.mark.parametrize("url", ["https://127.0.0.1:6443/readyz", "http://[::1]:8080/livez?verbose", "https://m1/readyz"])
def test_http_readiness_urls_are_accepted(url: str) -> None:
    assert parse(rollout={"readinessUrl": url}).rollout.readiness_url == url

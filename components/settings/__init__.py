"""Stack config -> typed, validated settings. The only module that reads Pulumi config.

Everything is checked here, before any resource is declared, so bad input changes nothing on any
node. Every error names the config key (`kube-audit:log.maxAge`), and a bad policy file names its
file, line and column. `parse_settings` is pure (it takes the raw config strings) and is what the
tests drive; `load_settings` is the thin Pulumi-facing wrapper.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationError

from components.manifest.desired import MAX_AUDIT_LOG_MAXAGE, AuditState
from components.policy import PolicyError, load_policy_file, policy_hash
from components.policy.profiles import resolve_policy
from components.settings.base import Strict
from components.settings.masters import Master as Master  # re-exported: one control-plane node
from components.settings.masters import host_identity
from components.settings.paths import dirs_apart_problems

# Re-exported: the components import each key's model from here.
from components.settings.sections import DriftSettings as DriftSettings
from components.settings.sections import InsightAgentSettings as InsightAgentSettings
from components.settings.sections import KubeadmSettings as KubeadmSettings
from components.settings.sections import LogSettings as LogSettings
from components.settings.sections import PathSettings as PathSettings
from components.settings.sections import RolloutSettings as RolloutSettings

NAMESPACE = "kube-audit"
PROJECT_DIR = Path(__file__).resolve().parents[2]  # components/settings/__init__.py -> the repo
MAX_HISTORY_HOURS = MAX_AUDIT_LOG_MAXAGE * 24
MAX_STACK_FILE_BYTES = 1 << 20


class SettingsError(ValueError):
    """Invalid stack configuration; the message names each offending key."""


class PolicySource(Strict):
    """The validated audit policy: its text is what lands on every master."""

    name: str
    path: str
    text: str
    sha256: str


class Settings(Strict):
    """The whole stack, typed. Built once; passed down to the components."""

    stack: str
    enabled: bool
    masters: tuple[Master, ...]
    ssh_private_key: SecretStr | None
    ssh_private_key_passphrase: SecretStr | None
    policy: PolicySource | None
    log: LogSettings
    paths: PathSettings
    rollout: RolloutSettings
    insight_agent: InsightAgentSettings
    drift: DriftSettings = DriftSettings()
    kubeadm: KubeadmSettings = KubeadmSettings()
    kubeconfig: str | None = None
    """`kubernetes:kubeconfig` (contents or path), the provider's own; None: $KUBECONFIG or ~/.kube/config."""
    kube_context: str | None = None
    """`kubernetes:context`."""
    helm_release_settings: dict[str, str] = Field(default_factory=dict)
    """`kubernetes:helmReleaseSettings` (driver, repositoryConfigPath, repositoryCache): the provider's Helm."""
    # Audit log samples to predict the policy's daily volume from (preview prints it); empty: none.
    volume_sample: tuple[str, ...] = ()
    volume_min_history_hours: float = 24.0

    def audit_state(self, enabled: bool | None = None) -> AuditState:
        on = self.enabled if enabled is None else enabled
        return AuditState(
            enabled=on,
            policy_dir=self.paths.policy_dir,
            policy_file=self.paths.policy_file,
            log_path=self.log.path,
            log_host_dir=self.log.host_dir,
            max_age=self.log.max_age,
            max_backup=self.log.max_backup,
            max_size=self.log.max_size,
            log_format=self.log.format,
            log_mode=self.log.mode,
            log_compress=self.log.compress,
            policy_hash=self.policy.sha256 if (on and self.policy) else None,
        )

    @property
    def host_log_path(self) -> str:
        return posixpath.join(self.log.host_dir, posixpath.basename(self.log.path))


_KNOWN_KEYS = {
    "enabled", "masters", "sshPrivateKey", "sshPrivateKeyPassphrase", "policy", "log", "paths", "rollout",
    "insightAgent", "drift", "kubeadm", "volumeSample", "volumeMinHistoryHours",
}
_SECRET_KEYS = {"sshPrivateKey", "sshPrivateKeyPassphrase"}


def _key(*parts: Any) -> str:
    head, *rest = parts
    text = f"{NAMESPACE}:{head}"
    for part in rest:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _json(raw: Mapping[str, str], name: str, expect: type) -> Any:
    try:
        value = json.loads(raw[name])
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{_key(name)}: not a valid {expect.__name__} ({exc.msg})") from exc
    if not isinstance(value, expect):
        raise SettingsError(f"{_key(name)}: expected a {'list' if expect is list else 'mapping'}")
    return value


def _bool(raw: Mapping[str, str], name: str, default: bool) -> bool:
    if name not in raw:
        return default
    value = raw[name].strip().lower()
    if value not in ("true", "false"):
        raise SettingsError(f"{_key(name)}: expected true or false, got {raw[name]!r}")
    return value == "true"


def _model(model: type[BaseModel], data: Any, *key: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [f"{_key(*key, *err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise SettingsError("\n".join(lines)) from None


def _masters(raw: Mapping[str, str]) -> tuple[Master, ...]:
    if "masters" not in raw:
        raise SettingsError(f"{_key('masters')}: required (a list of {{name, host, port?, user?, hostKey?}})")
    items = _json(raw, "masters", list)
    if not items:
        raise SettingsError(f"{_key('masters')}: the list is empty; name at least one control-plane node")
    masters = tuple(_model(Master, item, "masters", i) for i, item in enumerate(items))
    # Hosts compare as hosts (`Master-1.lan` is `master-1.lan`, `::1` is `0:0::1`): one machine listed
    # twice would have its manifest changed twice in one rollout, and count twice in every quorum.
    for attr, identity in (("name", str), ("host", host_identity)):
        seen: dict[str, int] = {}
        for i, master in enumerate(masters):
            value, same = getattr(master, attr), identity(getattr(master, attr))
            if same in seen:
                first = getattr(masters[seen[same]], attr)
                also = "" if first == value else f" ({first!r}, the same host)"
                raise SettingsError(f"{_key('masters', i, attr)}: {value!r} duplicates masters[{seen[same]}]{also}")
            seen[same] = i
    return masters


def _policy(raw: Mapping[str, str], base_dir: Path) -> PolicySource:
    name = raw.get("policy", "dce-default")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise SettingsError(f"{_key('policy')}: must be a profile name or a file path, without control characters "
                            "(NUL, newline, ...)")
    try:
        path = resolve_policy(name, base_dir)
    except ValueError as exc:
        raise SettingsError(f"{_key('policy')}: {exc}") from exc
    try:
        policy = load_policy_file(path)
    except PolicyError as exc:
        raise SettingsError(f"{_key('policy')}: {name} is not a valid audit policy:\n{exc}") from exc
    return PolicySource(name=name, path=str(path), text=policy.text, sha256=policy_hash(policy))


def _check_dirs_apart(log: LogSettings, paths: PathSettings) -> None:
    on_host = {
        "paths.manifest (its directory)": posixpath.dirname(paths.manifest),
        "paths.policyDir": paths.policy_dir,
        "paths.backupDir": paths.backup_dir,
        "paths.nodeProgramDir": paths.node_program_dir,
        "log.hostDir": log.host_dir,
    }
    in_container = {"log.path (its directory)": posixpath.dirname(log.path), "paths.policyDir": paths.policy_dir}
    log_dirs = {"log.path (its directory)": posixpath.dirname(log.path), "log.hostDir": log.host_dir}
    problems = dirs_apart_problems(NAMESPACE, on_host, in_container, log_dirs)
    if problems:
        raise SettingsError("\n".join(problems))


def _volume_sample(raw: Mapping[str, str], base_dir: Path) -> tuple[str, ...]:
    """`volumeSample`: one path or a JSON list of paths, relative to the project; each must exist."""
    value = raw.get("volumeSample", "").strip()
    if not value:
        return ()
    items = _json(raw, "volumeSample", list) if value.startswith("[") else [value]
    paths = []
    for i, item in enumerate(items):
        key = _key("volumeSample", i) if value.startswith("[") else _key("volumeSample")
        if not isinstance(item, str) or not item:
            raise SettingsError(f"{key}: expected a path to an audit log file")
        path = Path(item).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise SettingsError(f"{key}: {item}: no such file (an audit log sample: JSON lines, plain or .gz)")
        if not os.access(path, os.R_OK):
            # Read at every preview (components/volume/stack.py): refused here, naming the key.
            raise SettingsError(f"{key}: {item}: not readable by this user")
        paths.append(str(path))
    return tuple(paths)


def _hours(raw: Mapping[str, str], name: str, default: float) -> float:
    if name not in raw:
        return default
    try:
        value = float(raw[name])
    except ValueError:
        raise SettingsError(f"{_key(name)}: expected a number of hours, got {raw[name]!r}") from None
    # NaN and inf parse as floats: NaN compares false with everything (the check would never fire),
    # and no rotation keeps more than the longest --audit-log-maxage.
    if not (math.isfinite(value) and 0 <= value <= MAX_HISTORY_HOURS):
        raise SettingsError(f"{_key(name)}: must be 0 or more hours, at most {MAX_HISTORY_HOURS} (the longest "
                            f"log.maxAge), got {raw[name]!r}")
    return value


def parse_settings(
    raw: Mapping[str, str], secret_keys: set[str], stack: str, base_dir: Path = PROJECT_DIR,
    kubernetes: Mapping[str, str] | None = None,
) -> Settings:
    """Validate raw config (key without namespace -> string, objects as JSON) into Settings.

    `kubernetes` holds the provider's own `kubernetes:kubeconfig` / `kubernetes:context` (without the
    namespace): the program reads the installed insight-agent release through the same cluster.
    """
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        raise SettingsError(
            "\n".join(f"{_key(k)}: unknown key (known: {', '.join(sorted(_KNOWN_KEYS))})" for k in unknown)
        )
    for name in _SECRET_KEYS & set(raw):
        if name not in secret_keys:
            raise SettingsError(
                f"{_key(name)}: must be a secret; set it with `pulumi config set --secret {_key(name)} < FILE`"
            )
    enabled = _bool(raw, "enabled", True)
    masters = _masters(raw)
    objects = {
        name: _model(model, _json(raw, name, dict) if name in raw else {}, name)
        for name, model in (("log", LogSettings), ("paths", PathSettings), ("rollout", RolloutSettings),
                            ("insightAgent", InsightAgentSettings), ("drift", DriftSettings),
                            ("kubeadm", KubeadmSettings))
    }
    _check_dirs_apart(objects["log"], objects["paths"])
    key = raw.get("sshPrivateKey")
    passphrase = raw.get("sshPrivateKeyPassphrase")
    if passphrase is not None and key is None:
        raise SettingsError(f"{_key('sshPrivateKeyPassphrase')}: set, but {_key('sshPrivateKey')} is not")
    if key is not None and "PRIVATE KEY" not in key:
        # The message must not echo the value: it is a secret even when it is malformed.
        raise SettingsError(f"{_key('sshPrivateKey')}: not a PEM/OpenSSH private key (no 'PRIVATE KEY' header)")
    return Settings(
        stack=stack,
        enabled=enabled,
        masters=masters,
        ssh_private_key=SecretStr(key) if key is not None else None,
        ssh_private_key_passphrase=SecretStr(passphrase) if passphrase is not None else None,
        policy=_policy(raw, base_dir) if enabled else None,
        log=objects["log"],
        paths=objects["paths"],
        rollout=objects["rollout"],
        insight_agent=objects["insightAgent"],
        drift=objects["drift"],
        kubeadm=objects["kubeadm"],
        kubeconfig=(kubernetes or {}).get("kubeconfig") or None,
        kube_context=(kubernetes or {}).get("context") or None,
        helm_release_settings=_helm_release_settings(kubernetes or {}),
        volume_sample=_volume_sample(raw, base_dir),
        volume_min_history_hours=_hours(raw, "volumeMinHistoryHours", 24.0),
    )


def _helm_release_settings(kubernetes: Mapping[str, str]) -> dict[str, str]:
    if not kubernetes.get("helmReleaseSettings"):
        return {}
    try:
        value = json.loads(kubernetes["helmReleaseSettings"])
    except json.JSONDecodeError as exc:
        raise SettingsError(f"kubernetes:helmReleaseSettings: not a valid mapping ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise SettingsError("kubernetes:helmReleaseSettings: expected a mapping")
    return {k: str(v) for k, v in value.items() if v is not None}


def load_settings() -> Settings:
    """Read this stack's `kube-audit:*` config through the Pulumi runtime and validate it."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    prefix = f"{NAMESPACE}:"
    # The language host hands config over in-process (CONFIG); older paths use the environment.
    everything = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    raw = {k[len(prefix):]: str(v) for k, v in everything.items() if k.startswith(prefix)}
    secret_names = set(runtime_config.get_config_secret_keys_env()) | {
        k for k in everything if runtime_config.is_config_secret(k)
    }
    secret = {k[len(prefix):] for k in secret_names if k.startswith(prefix)}
    # The kubernetes provider's own keys: insight-agent's plan and kubeadm persistence read the same cluster.
    kubernetes = {k[len("kubernetes:"):]: str(v) for k, v in everything.items() if k.startswith("kubernetes:")}
    return parse_settings(raw, secret, pulumi.get_stack(), kubernetes=kubernetes)


def stack_file_log_settings(path: Path) -> tuple[LogSettings, int]:
    """`log` settings and the number of masters from a stack file (`Pulumi.<stack>.yaml`), for `volume`.

    Only these two keys are read; secrets and everything else are left alone. Errors name the file and the key.
    """
    import yaml

    try:
        with open(path, "rb") as handle:
            # A stack file is a few KiB; one byte past the cap tells "too big" without reading more.
            data = handle.read(MAX_STACK_FILE_BYTES + 1)
        if len(data) > MAX_STACK_FILE_BYTES:
            raise OSError(f"over {MAX_STACK_FILE_BYTES} bytes")
        doc = yaml.safe_load(data.decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text (byte {exc.start}); not a stack file") from None
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:
        # ValueError: a path the OS cannot take (NUL); RecursionError: YAML nested past Python's stack.
        what = "nested too deeply" if isinstance(exc, RecursionError) else (
            exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
        raise SettingsError(f"{path}: not a readable stack file ({what})") from None
    config = doc.get("config") if isinstance(doc, dict) else None
    config = config if isinstance(config, dict) else {}
    log = config.get(f"{NAMESPACE}:log", {})
    try:
        settings = _model(LogSettings, log if isinstance(log, dict) else {}, "log")
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}") from None
    masters = config.get(f"{NAMESPACE}:masters")
    return settings, len(masters) if isinstance(masters, list) and masters else 1

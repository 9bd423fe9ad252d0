"""Pure readers of Helm's own records: the release as installed, and the local chart repositories.

The release is read the way `helm list` / `helm get values` read it: from Helm's storage Secrets
`sh.helm.release.v1.<release>.v<revision>` (label `owner=helm,name=<release>`), whose `release` field
is base64(gzip(JSON)) inside the Secret's own base64. The JSON carries the chart's metadata (name,
version) and `config`, the values the operator supplied (`-f`/`--set`), apart from the chart defaults.
Local repositories are read from Helm's `repositories.yaml` and its cached `<alias>-index.yaml`,
the files `helm repo add` / `helm repo update` write, at Helm's default or `$HELM_*` locations.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class HelmStateError(ValueError):
    """Helm's records could not be read or do not allow a safe change; the message says what to do."""


@dataclass(frozen=True)
class InstalledRelease:
    """One revision of a release as Helm stored it."""

    name: str
    namespace: str
    revision: int
    status: str
    chart_name: str
    chart_version: str
    config: dict[str, Any] = field(default_factory=dict)
    """The operator-supplied values only (what `helm get values` prints), not the chart defaults."""
    chart_values: dict[str, Any] = field(default_factory=dict, compare=False)
    """The chart's own default values (its values.yaml), as the record carries them."""
    templates: tuple[tuple[str, str], ...] | None = field(default=None, compare=False)
    """(name, text) of the chart's templates; None when the record carries none (subcharts never are)."""
    description: str = field(default="", compare=False)
    """`info.description`: Helm's "Upgrade complete", or what the upgrade passed as its description."""


def decode_release(secret_data_release: str) -> dict[str, Any]:
    """The release JSON from a storage Secret's `data.release` (as the Kubernetes API returns it)."""
    try:
        inner = base64.b64decode(secret_data_release, validate=True)
        raw = base64.b64decode(inner, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HelmStateError(f"not a Helm release record (base64: {exc})") from None
    if raw[:2] == b"\x1f\x8b":  # Helm gzips; very old records were plain JSON
        raw = gzip.decompress(raw)
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise HelmStateError(f"not a Helm release record (JSON: {exc})") from None
    if not isinstance(doc, dict):
        raise HelmStateError("not a Helm release record (not an object)")
    return doc


def _templates(chart: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """The chart's templates ({name, data: base64}, Go's []byte in JSON); None when the record has none."""
    out = []
    for item in chart.get("templates") or []:
        if not isinstance(item, dict):
            continue
        try:
            text = base64.b64decode(str(item.get("data") or ""), validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            continue
        out.append((str(item.get("name", "")), text))
    return tuple(out) or None


def release_from_json(doc: Mapping[str, Any]) -> InstalledRelease:
    chart = doc.get("chart") or {}
    meta = chart.get("metadata") or {}
    return InstalledRelease(
        name=str(doc.get("name", "")),
        namespace=str(doc.get("namespace", "")),
        revision=int(doc.get("version", 0)),
        status=str((doc.get("info") or {}).get("status", "unknown")),
        chart_name=str(meta.get("name", "")),
        chart_version=str(meta.get("version", "")),
        config=dict(doc.get("config") or {}),
        chart_values=dict(chart.get("values") or {}),
        templates=_templates(chart),
        description=str((doc.get("info") or {}).get("description") or ""),
    )


def current_release(revisions: Iterable[InstalledRelease], where: str) -> InstalledRelease | None:
    """The deployed revision a `helm upgrade` would start from; None when the release does not exist.

    As Helm's upgrade does: a pending last revision means another operation is running (refused), and
    the values come from the deployed revision, not from a failed one after it.
    """
    ordered = sorted(revisions, key=lambda r: r.revision)
    if not ordered:
        return None
    last = ordered[-1]
    if last.status.startswith("pending"):
        raise HelmStateError(f"{where}: revision {last.revision} is {last.status}: another Helm operation is in "
                             "progress (or died); finish or roll it back (`helm rollback`) first")
    deployed = [r for r in ordered if r.status == "deployed"]
    if not deployed:
        raise HelmStateError(f"{where}: no deployed revision (last: {last.revision}, {last.status}); "
                             "repair the release with Helm first")
    return deployed[-1]


# -- local chart repositories (helm repo add / update) ---------------------------------------------

@functools.lru_cache(maxsize=8)
def _index_versions(path: str, mtime_ns: int, size: int, alias: str) -> dict[str, tuple[str, ...]]:
    """chart -> versions of one cached index (a big repository's index is parsed once per run)."""
    try:
        doc = yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError as exc:
        raise HelmStateError(f"{path}: not YAML ({exc}); run `helm repo update {alias}`") from None
    return {str(name): tuple(str(v.get("version")) for v in entries or [] if isinstance(v, dict))
            for name, entries in (doc.get("entries") or {}).items()}


def _home_dir(env: Mapping[str, str], var: str, xdg: str, fallback: str) -> Path:
    if env.get(var):
        return Path(env[var])
    base = env.get(xdg) or str(Path(env.get("HOME") or Path.home()) / fallback)
    return Path(base) / "helm"


@dataclass(frozen=True)
class HelmRepositories:
    """The local repository aliases and where Helm caches their indexes."""

    config_file: Path
    cache_dir: Path
    urls: dict[str, str]
    """alias -> URL, in repositories.yaml order (the order Helm searches them)."""

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> HelmRepositories:
        env = os.environ if env is None else env
        config_file = Path(env.get("HELM_REPOSITORY_CONFIG")
                           or _home_dir(env, "HELM_CONFIG_HOME", "XDG_CONFIG_HOME", ".config") / "repositories.yaml")
        cache_dir = Path(env.get("HELM_REPOSITORY_CACHE")
                         or _home_dir(env, "HELM_CACHE_HOME", "XDG_CACHE_HOME", ".cache") / "repository")
        urls: dict[str, str] = {}
        if config_file.is_file():
            try:
                doc = yaml.safe_load(config_file.read_text()) or {}
            except yaml.YAMLError as exc:
                raise HelmStateError(f"{config_file}: not YAML ({exc})") from None
            for entry in doc.get("repositories") or []:
                if isinstance(entry, dict) and entry.get("name") and entry.get("url"):
                    urls[str(entry["name"])] = str(entry["url"])
        return cls(config_file, cache_dir, urls)

    def index_versions(self, alias: str, chart: str) -> list[str] | None:
        """Versions of `chart` in the alias's cached index; None when there is no cached index."""
        index = self.cache_dir / f"{alias}-index.yaml"
        if not index.is_file():
            return None
        st = index.stat()
        return list(_index_versions(str(index), st.st_mtime_ns, st.st_size, alias).get(chart, ()))

    def alias_for_url(self, url: str) -> str | None:
        want = url.rstrip("/")
        return next((alias for alias, u in self.urls.items() if u.rstrip("/") == want), None)

    def first_alias_with(self, chart: str, version: str) -> str | None:
        """The alias the kubernetes provider records when it imports a release of chart@version."""
        for alias in self.urls:
            versions = self.index_versions(alias, chart)
            if versions and version in versions:
                return alias
        return None


def read_installed_release(get: Any, namespace: str, release: str) -> InstalledRelease | None:
    """The deployed revision of `namespace/release` from Helm's storage Secrets (None: not installed).

    `get(path, query)` is a Kubernetes API GET (components.remote.kubeapi.KubeApi.get).
    """
    listing = get(f"/api/v1/namespaces/{namespace}/secrets", {"labelSelector": f"owner=helm,name={release}"})
    revisions = []
    for item in listing.get("items") or []:
        data = (item.get("data") or {}).get("release")
        if item.get("type") != "helm.sh/release.v1" or not data:
            continue
        name = (item.get("metadata") or {}).get("name", "?")
        try:
            revisions.append(release_from_json(decode_release(data)))
        except HelmStateError as exc:
            raise HelmStateError(f"Secret {namespace}/{name}: {exc}") from None
    return current_release(revisions, f"Helm release {namespace}/{release}")

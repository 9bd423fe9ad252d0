"""Shared stack config for the settings and Pulumi-mocks tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.insight_agent.helm_state import HelmRepositories, InstalledRelease
from components.insight_agent.plan import ReleasePlan, plan_release
from components.settings import Settings

FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAfakefakefake\n-----END OPENSSH PRIVATE KEY-----\n"
MASTERS = [
    {"name": "master-1", "host": "10.6.0.11", "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINZqH3yzKYk/onbwG8u0DD11DkFwy0HlDEVwlk7/Xr9w"},
    {"name": "master-2", "host": "10.6.0.12", "port": 2222},
    {"name": "master-3", "host": "10.6.0.13", "user": "admin"},
]


def base_config(**overrides: object) -> dict[str, str]:
    raw = {"masters": json.dumps(MASTERS), "sshPrivateKey": FAKE_KEY}
    for key, value in overrides.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value if isinstance(value, str) else json.dumps(value)
    return raw


@pytest.fixture
def raw_config() -> dict[str, str]:
    return base_config()


INSTALLED = InstalledRelease(name="insight-agent", namespace="insight-system", revision=3, status="deployed",
                             chart_name="insight-agent", chart_version="0.9.1",
                             config={"fluent-bit": {"image": {"repository": "registry.local/fluent-bit"}}})


def fake_repos(tmp: Path | None = None, alias: str = "insight-release", versions: tuple[str, ...] = ("0.9.1",),
               url: str = "https://charts.example/insight") -> HelmRepositories:
    """A local Helm repository config with one alias whose cached index holds `versions` of insight-agent."""
    import tempfile

    base = tmp or Path(tempfile.mkdtemp(prefix="helmrepos-"))
    (base / "cache").mkdir(exist_ok=True)
    (base / "repositories.yaml").write_text(yaml.safe_dump({"repositories": [{"name": alias, "url": url}]}))
    entries = {"insight-agent": [{"name": "insight-agent", "version": v} for v in versions]}
    (base / "cache" / f"{alias}-index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": entries}))
    return HelmRepositories.load({"HELM_REPOSITORY_CONFIG": str(base / "repositories.yaml"),
                                  "HELM_REPOSITORY_CACHE": str(base / "cache")})


def agent_plan(settings: Settings, installed: Any = INSTALLED) -> ReleasePlan | None:
    if not settings.insight_agent.enabled:
        return None
    if not settings.insight_agent.adopt:
        installed = None
    return plan_release(settings.insight_agent, installed, fake_repos(), settings.enabled)


class CountingMocks(pulumi.runtime.Mocks):
    """Pulumi mocks that record the type of every resource the program registers."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.created.append(args.typ)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None

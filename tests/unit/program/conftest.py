"""Shared stack config for the settings and Pulumi-mocks tests."""

from __future__ import annotations

import json

import pytest

FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAfakefakefake\n-----END OPENSSH PRIVATE KEY-----\n"
MASTERS = [
    {"name": "master-1", "host": "10.6.0.11", "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"},
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

"""__main__.py under mocks: config errors stop the run with the key named, before any resource."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pulumi
import pytest

from .conftest import FAKE_KEY, MASTERS, CountingMocks

MAIN = Path(__file__).resolve().parents[3] / "__main__.py"


_LAST: list[CountingMocks] = []


def mocks_created_nothing() -> bool:
    return _LAST[-1].created == []


def run_main(config: dict[str, str], secret: list[str]) -> CountingMocks:
    mocks = CountingMocks()
    _LAST.append(mocks)
    pulumi.runtime.set_mocks(mocks, project="kube-audit", stack="dev", preview=True)
    pulumi.runtime.set_all_config({f"kube-audit:{k}": v for k, v in config.items()},
                                  [f"kube-audit:{k}" for k in secret])
    runpy.run_path(str(MAIN), run_name="__main__")
    return mocks


def test_bad_config_raises_run_error_naming_the_key_and_declares_nothing() -> None:
    with pytest.raises(pulumi.RunError, match=r"kube-audit:log\.maxSize: Input should be a valid integer") as info:
        run_main({"masters": json.dumps(MASTERS), "log": json.dumps({"maxSize": "big"})}, [])
    assert "Traceback" not in str(info.value)
    assert mocks_created_nothing()


def test_plain_text_private_key_is_refused() -> None:
    with pytest.raises(pulumi.RunError, match="kube-audit:sshPrivateKey: must be a secret") as info:
        run_main({"masters": json.dumps(MASTERS), "sshPrivateKey": FAKE_KEY}, [])
    assert "fakefake" not in str(info.value)


"""`kube-audit:volumeSample`: validated in settings, predicted for the preview, checked by the pack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
import pytest

from components.settings import SettingsError, parse_settings
from components.volume.stack import check_history, volume_forecast
from tests.unit.volume.sample import random_calls, write_under

from .conftest import base_config
from .test_program_mocks import build


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("volume") / "audit.log"
    path.write_text(write_under(list(random_calls(400, seed=5)), None) + "not an event\n")
    return path


def parse(**overrides: Any):  # type: ignore[no-untyped-def]
    return parse_settings(base_config(**overrides), {"sshPrivateKey"}, "dev")


def test_sample_paths_are_resolved_and_must_exist(sample: Path, tmp_path: Path) -> None:
    assert parse().volume_sample == () and parse().volume_min_history_hours == 24
    assert parse(volumeSample=str(sample)).volume_sample == (str(sample),)
    assert parse(volumeSample=[str(sample), str(sample)]).volume_sample == (str(sample), str(sample))
    rel = parse_settings(base_config(volumeSample=sample.name), {"sshPrivateKey"}, "dev", base_dir=sample.parent)
    assert rel.volume_sample == (str(sample),)
    with pytest.raises(SettingsError, match=r"kube-audit:volumeSample: /nope.log: no such file"):
        parse(volumeSample="/nope.log")
    with pytest.raises(SettingsError, match=r"kube-audit:volumeSample\[1\]: .*no such file"):
        parse(volumeSample=[str(sample), str(tmp_path / "x.log")])
    with pytest.raises(SettingsError, match=r"kube-audit:volumeMinHistoryHours: expected a number"):
        parse(volumeMinHistoryHours="a day")
    with pytest.raises(SettingsError, match=r"kube-audit:volumeMinHistoryHours: must be 0 or more"):
        parse(volumeMinHistoryHours="-1")


def test_stack_forecast_uses_the_stack_policy_rotation_and_masters(sample: Path) -> None:
    small = volume_forecast(parse(volumeSample=str(sample), log={"maxSize": 1, "maxBackup": 1}))
    big = volume_forecast(parse(volumeSample=str(sample), log={"maxSize": 1000, "maxBackup": 5}))
    assert small is not None and big is not None
    p = small.forecast.policies[0]
    assert p.name == "dce-default" and small.forecast.masters == 3
    assert p.bytes_per_day_per_master == pytest.approx(p.bytes_per_day / 3)
    hours = [v.forecast.policies[0].history.hours for v in (small, big)]
    assert hours[1] == pytest.approx(5000 * hours[0]) and big.props["predictedHistoryHours"] == round(hours[1], 2)
    assert "policy dce-default: predicted" in small.summary and "per master" in small.summary
    assert any("keeps only" in w for w in small.warnings)  # 1 MiB x 1 of this sample is minutes
    assert any("1 line(s) that are not audit events" in w for w in small.warnings)
    assert volume_forecast(parse()) is None
    assert volume_forecast(parse(volumeSample=str(sample), enabled="false")) is None


def test_check_history_threshold() -> None:
    assert check_history(None, 24) == [] and check_history(24.0, 24) == []
    assert "keeps only 2.0 h of history" in check_history(2.0, 24)[0]


@pulumi.runtime.test
def test_preview_prints_the_prediction_and_the_pack_gets_the_props(sample: Path) -> Any:
    with mock.patch.object(pulumi.log, "info") as info, mock.patch.object(pulumi.log, "warn") as warn:
        _, rec, audit = build({"volumeSample": str(sample), "volumeMinHistoryHours": "1000000"})
    props = rec["audit"].props
    assert props["predictedBytesPerDay"] > 0 and props["minHistoryHours"] == 1000000
    assert isinstance(props["predictedHistoryHours"], float)
    assert any("predicted" in str(c.args[0]) for c in info.call_args_list)
    assert any("keeps only" in str(c.args[0]) for c in warn.call_args_list)
    return audit.masters.apply(lambda m: json.dumps(m, default=str))

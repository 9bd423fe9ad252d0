"""A policy is checked only up to a size and a rule count (issue 22): a 10 MB policy took a minute and
a gigabyte to validate. What is past the caps is refused at once, naming the file and where."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from components.cli import main
from components.policy import PolicyError, load_policy, load_policy_file
from components.policy.loader import MAX_POLICY_BYTES, MAX_POLICY_RULES

HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n"
RULE = "  - level: None\n"


def padded(size: int) -> str:
    """A valid one-rule policy of exactly `size` bytes (a trailing comment fills it)."""
    text = HEAD + RULE + "#"
    return text + "x" * (size - len(text) - 1) + "\n"


def test_a_policy_at_the_byte_cap_loads_and_one_byte_more_is_refused_at_once(tmp_path: Path) -> None:
    assert len(load_policy(padded(MAX_POLICY_BYTES)).rules) == 1
    start = time.monotonic()
    with pytest.raises(PolicyError, match=rf"^big\.yaml:1:1: the policy is {MAX_POLICY_BYTES + 1} bytes; .*up to "
                                          rf"{MAX_POLICY_BYTES} bytes"):
        load_policy(padded(MAX_POLICY_BYTES + 1), "big.yaml")
    assert time.monotonic() - start < 1, "refused before parsing"


def test_the_byte_cap_counts_utf8_bytes_not_characters() -> None:
    text = padded(MAX_POLICY_BYTES)[:-2] + "é\n"  # as many characters as the cap, one byte more
    assert len(text) == MAX_POLICY_BYTES
    with pytest.raises(PolicyError, match=rf"the policy is {MAX_POLICY_BYTES + 1} bytes"):
        load_policy(text)


def test_a_huge_policy_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as handle:  # 10 GiB sparse: reading it whole would fill memory
        handle.write(HEAD.encode())
        handle.truncate(10 << 30)
    with pytest.raises(PolicyError) as info:
        load_policy_file(path)
    assert str(info.value) == (f"{path}:1:1: the policy is {10 << 30} bytes; kube-audit checks policies of up to "
                               f"{MAX_POLICY_BYTES} bytes (1 MiB), and the apiserver reads every byte of it at each start")


def test_rules_past_the_cap_are_refused_at_the_rules_list() -> None:
    assert len(load_policy(HEAD + RULE * MAX_POLICY_RULES).rules) == MAX_POLICY_RULES
    with pytest.raises(PolicyError, match=rf"^p\.yaml:4:3: rules: {MAX_POLICY_RULES + 1} rules; kube-audit checks "
                                          rf"policies of up to {MAX_POLICY_RULES} rules"):
        load_policy(HEAD + RULE * (MAX_POLICY_RULES + 1), "p.yaml")


def test_validate_and_lint_refuse_an_oversized_policy_naming_the_file(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(padded(MAX_POLICY_BYTES + 1))
    assert main(["validate", str(path)]) == 1
    assert f"{path}:1:1: the policy is {MAX_POLICY_BYTES + 1} bytes" in capsys.readouterr().out
    assert main(["lint", str(path)]) != 0
    out, err = capsys.readouterr()
    assert f"{path}:1:1: the policy is" in out + err


def test_a_nul_in_the_path_is_a_problem_at_1_1_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"cannot read file: .*null byte"):
        load_policy_file(os.fspath(tmp_path) + "/a\0b.yaml")

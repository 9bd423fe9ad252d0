"""The fleet file: what it accepts, and that bad input is refused naming file, key and line."""

from __future__ import annotations

import pytest

from components.fleet.spec import FleetError, StackRef, build_fleet, parse_fleet_file, parse_shard, tag_waves

AVAILABLE = ["a", "b", "c", "team-x", "team-y", "prod-east"]


def fleet(text: str, available=AVAILABLE, names=()):
    return build_fleet(parse_fleet_file(text, "fleet.yaml"), text, "fleet.yaml", names, available)


def refused(text: str, available=AVAILABLE) -> str:
    with pytest.raises(FleetError) as exc:
        fleet(text, available)
    return str(exc.value)


def test_waves_names_globs_and_config_files():
    f = fleet("stacks:\n  - a\n  - name: b\n    configFile: conf/Pulumi.b.yaml\n  - team-*\n"
              "waves:\n  - [a]\n  - [b, 'team-*']\nparallel: 3\n")
    assert [[s.name for s in w] for w in f.waves] == [["a"], ["b", "team-x", "team-y"]]
    assert f.parallel == 3 and f.policy_pack == "policies/guardrails"
    assert f.stacks[1] == StackRef("b", "conf/Pulumi.b.yaml")  # relative to the fleet file's dir ('.')


def test_without_waves_one_wave_in_file_order_and_no_stack_twice():
    f = fleet("stacks: [c, a, '*', a]\npolicyPack: null\n")
    assert [s.name for s in f.stacks] == ["c", "a", "b", "prod-east", "team-x", "team-y"]
    assert len(f.waves) == 1 and f.policy_pack is None


@pytest.mark.parametrize(("text", "expected"), [
    ("stacks: [a]\nwave: [[a]]\n", "fleet.yaml:2: wave: Extra inputs are not permitted"),
    ("stacks: [a]\nparallel: 0\n", "fleet.yaml:2: parallel: Input should be greater than or equal to 1"),
    ("stacks: [a]\nparallel: '4'\n", "fleet.yaml:2: parallel: Input should be a valid integer"),
    ("stacks:\n  - a\n  - name: b\n    confFile: x\n", "fleet.yaml:4: stacks[1].confFile: Extra inputs are not permitted"),
    ("stacks:\n  - a\n  - name: 'b c'\n", "fleet.yaml:3: stacks[1].name: Value error, 'b c' is not a stack name"),
    ("stacks:\n  - a\n  - [b]\n", "fleet.yaml:3: stacks[1]: Input should be a valid string"),
    ("stacks: []\n", "fleet.yaml:1: stacks: List should have at least 1 item"),
    ("waves: [[a]]\n", "fleet.yaml:1: stacks: Field required"),
    ("stacks: [a\n", "fleet.yaml:2: not valid YAML"),
    ("- a\n", "fleet.yaml: expected a mapping with `stacks`"),
])
def test_bad_fleet_files_name_the_key_and_line(text, expected):
    assert expected in refused(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("stacks:\n  - a\n  - nope\n", "fleet.yaml:3: no stack named 'nope' in the backend"),
    ("stacks:\n  - a\n  - zz-*\n", "fleet.yaml:3: the glob 'zz-*' matches no stack"),
    ("stacks: [a, b]\nwaves:\n  - [a]\n", "fleet.yaml:3: waves: stack(s) b are in no wave"),
    ("stacks: [a, b]\nwaves:\n  - [a]\n  - [a, b]\n", "fleet.yaml:4: waves[1]: stack 'a' is already in waves[0]"),
    ("stacks: [a, b]\nwaves:\n  - [a]\n  - [c]\n", "fleet.yaml:4: waves[1]: 'c' is not one of the fleet's stacks"),
    ("stacks: [a]\nwaves:\n  - []\n  - [a]\n", "fleet.yaml:3: waves[0]: an empty wave"),
    ("stacks:\n  - name: 'team-*'\n    configFile: x.yaml\n", "fleet.yaml:2: stacks[0].configFile: a config file belongs to one stack"),
])
def test_selection_refusals_name_file_key_and_line(text, expected):
    assert expected in refused(text)


def test_command_line_names_and_globs():
    f = build_fleet(None, "", "the command line", ["team-*", "a"], AVAILABLE)
    assert [s.name for s in f.stacks] == ["team-x", "team-y", "a"]
    with pytest.raises(FleetError, match="no stacks selected"):
        build_fleet(None, "", "the command line", [], AVAILABLE)


def test_waves_from_stack_tags_untagged_last():
    refs = {n: StackRef(n) for n in ["a", "b", "c", "d"]}
    waves = tag_waves(refs, {"a": {"kube-audit:wave": "1"}, "b": {"kube-audit:wave": "0"}, "c": {}})
    assert [[s.name for s in w] for w in waves] == [["b"], ["a"], ["c", "d"]]
    with pytest.raises(FleetError, match="tag kube-audit:wave='first' is not an integer"):
        tag_waves(refs, {"a": {"kube-audit:wave": "first"}})


@pytest.mark.parametrize("bad", ["0/3", "4/3", "1", "a/b", "1/0"])
def test_bad_shard_refused(bad):
    with pytest.raises(FleetError, match="expected i/n"):
        parse_shard(bad)

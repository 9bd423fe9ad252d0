"""FluentBit's config read as FluentBit reads it: the glob matcher against the C library's glob(3) and fnmatch(3)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from components.insight_agent.fluent_bit import (
    collection,
    collection_problems,
    configmap_inputs,
    fnmatch0,
    glob_matches,
    kube_audit_globs,
    rotated_name,
)

LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
GLOB_TILDE = 1 << 12


class GlobT(ctypes.Structure):
    # glibc's glob_t: the three fields we read, then room for the flags and the GLOB_ALTDIRFUNC hooks.
    _fields_ = [("gl_pathc", ctypes.c_size_t), ("gl_pathv", ctypes.POINTER(ctypes.c_char_p)),
                ("gl_offs", ctypes.c_size_t), ("rest", ctypes.c_void_p * 16)]


def libc_glob(pattern: str) -> set[str]:
    g = GlobT()
    rc = LIBC.glob(pattern.encode(), GLOB_TILDE, None, ctypes.byref(g))
    try:
        return {g.gl_pathv[i].decode() for i in range(g.gl_pathc)} if rc == 0 else set()
    finally:
        LIBC.globfree(ctypes.byref(g))


def libc_fnmatch(pattern: str, name: str) -> bool:
    return LIBC.fnmatch(pattern.encode(), name.encode(), 0) == 0


DCE_GLOB = "/var/log/*/audit/*.log"


def test_dce_glob_reads_the_guide_s_path_and_its_rotated_name_but_not_var_log_audit():
    ours = "/var/log/kubernetes/audit/kube-apiserver-audit.log"
    assert glob_matches(DCE_GLOB, ours)
    assert rotated_name(ours) == "/var/log/kubernetes/audit/kube-apiserver-audit-2026-12-04T08-00-00.000.log"
    assert glob_matches(DCE_GLOB, rotated_name(ours))
    assert not glob_matches(DCE_GLOB, "/var/log/audit/kube-apiserver-audit.log")  # `*` is one component
    assert not glob_matches(DCE_GLOB, "/var/log/kubernetes/audit/audit.json")
    assert not glob_matches(DCE_GLOB, "/var/log/kubernetes/audit/.hidden.log")  # glob(3)'s period rule
    assert not glob_matches(DCE_GLOB, "/var/log/a/b/audit/x.log")


def test_rotated_name_of_a_file_without_extension():
    assert rotated_name("/var/log/k/audit/audit") == "/var/log/k/audit/audit-2026-12-04T08-00-00.000"


# Names and patterns over a small alphabet, so generated patterns do hit generated files.
NAME = st.text(alphabet="ab.-", min_size=1, max_size=4).filter(lambda n: n not in (".", ".."))
PATTERN_PART = st.lists(st.sampled_from(["a", "b", ".", "-", "*", "?", "[ab]", "[!a]", "[a-b]", "\\a", "[.]", "["]),
                        min_size=1, max_size=4).map("".join)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.lists(st.lists(NAME, min_size=1, max_size=3), min_size=1, max_size=6),
       pattern=st.lists(PATTERN_PART, min_size=1, max_size=3))
def test_glob_matches_agrees_with_libc_glob(tmp_path_factory: pytest.TempPathFactory, tree: list[list[str]],
                                            pattern: list[str]):
    root = tmp_path_factory.mktemp("g")
    files = set()
    for parts in tree:
        path = root.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue
        files.add(str(path))
    full = str(root) + "/" + "/".join(pattern)
    listed = libc_glob(full)
    for f in files | {os.path.join(str(root), *parts) for parts in tree}:
        if Path(f).is_file():
            assert glob_matches(full, f) == (f in listed), (full, f, sorted(listed))


@hsettings(max_examples=300, deadline=None)
@given(pattern=st.lists(st.sampled_from(["a", "/", ".", "*", "?", "[a/]", "[!a]", "\\*", "[", "]"]), max_size=6)
       .map("".join),
       name=st.text(alphabet="a/.*[]", max_size=6))
def test_fnmatch0_agrees_with_libc_fnmatch(pattern: str, name: str):
    assert fnmatch0(pattern, name) == libc_fnmatch(pattern, name), (pattern, name)


CONF = """
[SERVICE]
    Flush 1
    @INCLUDE inputs.conf

[INPUT]
    Name              tail
    Tag               kube.*
    Path              /var/log/containers/*.log
    Exclude_Path      /var/log/containers/*_ghippo-system_audit-log*.log
"""
INPUTS = """
[INPUT]
    Name tail
    Tag audit_log.ghippo.*
    Path /var/log/containers/*_ghippo-system_audit-log*.log

[INPUT]
    # the documented kube-audit input
    Name tail
    Tag  audit_log.k8s.*
    Path /var/log/*/audit/*.log, /var/log/other/*.json
    Exclude_Path *.gz
"""
OURS = "/var/log/kubernetes/audit/kube-apiserver-audit.log"


def test_inputs_are_read_from_every_file_of_the_configmap():
    inputs = configmap_inputs({"fluent-bit.conf": CONF, "inputs.conf": INPUTS})
    assert [i.tag for i in inputs] == ["kube.*", "audit_log.ghippo.*", "audit_log.k8s.*"]
    assert kube_audit_globs(inputs) == ["/var/log/*/audit/*.log", "/var/log/other/*.json"]
    found = collection(inputs, OURS)
    assert [i.tag for i in found.kube_audit] == ["audit_log.k8s.*"] and len(found.ghippo) == 1
    assert collection_problems(found, OURS, True, True, "cm") == []
    assert collection(inputs, "/var/log/other/a.json").kube_audit  # second pattern of a comma list


def test_problems_name_what_is_missing_and_what_is_extra():
    inputs = configmap_inputs({"fluent-bit.conf": CONF, "inputs.conf": INPUTS})
    found = collection(inputs, OURS)
    problems = collection_problems(found, OURS, False, False, "cm")
    assert len(problems) == 2
    assert "still reads /var/log/kubernetes/audit/kube-apiserver-audit.log, but audit is off" in problems[0]
    assert "collectGlobalManagementAudit is false" in problems[1]
    missing = collection(configmap_inputs({"fluent-bit.conf": CONF}), "/var/log/audit/a.log")
    text = " ".join(collection_problems(missing, "/var/log/audit/a.log", True, True, "cm"))
    assert "no tail [INPUT] whose Path reads /var/log/audit/a.log" in text and "audit_log.ghippo.*" in text


def test_an_excluded_file_is_not_read():
    inputs = configmap_inputs({"c": "[INPUT]\n Name tail\n Path /var/log/*/audit/*.log\n"
                                     " Exclude_Path /var/log/kubernetes/*\n"})
    assert not collection(inputs, OURS).kube_audit
    assert not configmap_inputs({"c": "[INPUT]\n Name systemd\n Path /var/log/*/audit/*.log\n"})[0].reads(OURS)

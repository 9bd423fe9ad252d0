"""The flag reader reads a command line as kube-apiserver does (pflag + WordSepNormalizeFunc).

Three layers: examples of each pflag rule; a property over generated command lines (any spelling,
form, order and repetition -> the value in force is the last one written); and, when the toolchain
has built it, the real kube-apiserver v1.37.2 parsing the same command lines (`--v=1` makes it log
every flag's value, `FLAG: --name="value"`, before it refuses to start for want of etcd).
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.manifest import flags
from lab.config import find_binary


def in_force(args: list[Any]) -> dict[str, str | None]:
    return {name: f.value for name, f in flags.parse(args).in_force().items()}


# --- each rule, by example ---------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "expected"), [
    (["--audit_policy_file=/b"], {"--audit-policy-file": "/b"}),
    (["--audit-policy_file=/b"], {"--audit-policy-file": "/b"}),
    (["--audit_log_path", "/l"], {"--audit-log-path": "/l"}),
    (["--audit-policy-file=/a", "--audit_policy_file=/b"], {"--audit-policy-file": "/b"}),
    (["--audit_policy_file=/b", "--audit-policy-file=/a"], {"--audit-policy-file": "/a"}),
    (["--audit-policy-file=a=b"], {"--audit-policy-file": "a=b"}),
    (["--audit-policy-file="], {"--audit-policy-file": ""}),
    # pflag gives a value-taking flag the next argument, whatever it looks like.
    (["--audit-policy-file", "--v=2"], {"--audit-policy-file": "--v=2"}),
    # A bool is true when bare and never takes the next argument (`false` here is a refused positional).
    (["--audit-log-compress", "false"], {"--audit-log-compress": "true"}),
    (["--allow-privileged", "--audit-log-path=/l"], {"--allow-privileged": "true", "--audit-log-path": "/l"}),
    (["--audit-log-compress=false"], {"--audit-log-compress": "false"}),
    # Not long flags: a single dash is a shorthand group, `---x` and `--=x` are bad syntax, the rest positional.
    (["-audit-policy-file=/x", "---audit-policy-file=/x", "--=x", "audit-policy-file=/x", "", "-"], {}),
    # Case matters: kube-apiserver refuses `--Audit-policy-file` as unknown, it is no audit flag.
    (["--Audit-Policy-File=/x"], {"--Audit-Policy-File": "/x"}),
    # A flag that needs a value and is last has none (kube-apiserver refuses it).
    (["--audit-log-path"], {"--audit-log-path": None}),
    # Not strings (the kubelet refuses such a Pod): read as their text, never as a flag.
    ([7, True, None], {}),
])
def test_each_pflag_rule(args: list[Any], expected: dict[str, str | None]) -> None:
    assert in_force(args) == expected


def test_double_dash_ends_the_flags() -> None:
    line = flags.parse(["--audit-log-path=/l", "--", "--audit-policy-file=/p"])
    assert line.terminator == 1 and in_force(["--audit-log-path=/l", "--", "--audit-policy-file=/p"]) == {
        "--audit-log-path": "/l"}
    # As a value it is no terminator.
    assert flags.parse(["--audit-policy-file", "--"]).terminator is None


def test_where_each_flag_was_written() -> None:
    line = flags.parse(["--v=2", "--audit_log_path", "/l", "--audit-log-compress", "--audit-policy-file=/p"])
    assert [(f.name, f.start, f.stop, f.text, f.canonical) for f in line.audit()] == [
        ("--audit-log-path", 1, 3, "--audit_log_path /l", "--audit-log-path=/l"),
        ("--audit-log-compress", 3, 4, "--audit-log-compress", "--audit-log-compress=true"),
        ("--audit-policy-file", 4, 5, "--audit-policy-file=/p", "--audit-policy-file=/p"),
    ]


def test_a_flag_after_a_bare_flag_of_unknown_kind_is_in_doubt() -> None:
    # --etcd-prefix takes a value: kube-apiserver reads '--audit-policy-file=/p' as its value, and a
    # flag of a newer release could be a bool, which would not. Either way, we cannot know: doubt.
    line = flags.parse(["--etcd-prefix", "--audit-policy-file=/p"])
    assert [f.name for f in line.flags] == ["--etcd-prefix", "--audit-policy-file"]
    assert line.flags[0].doubt is None and line.flags[0].may_take_next
    assert line.flags[1].doubt is not None and "--etcd-prefix" in line.flags[1].doubt
    # A known bool, a `=` form or a two-argument pair leaves no doubt about what follows.
    for before in (["--allow-privileged"], ["--etcd-prefix=/r"], ["--etcd-prefix", "/r"]):
        assert all(f.doubt is None for f in flags.parse([*before, "--audit-policy-file=/p"]).flags)


def test_container_arguments_are_command_after_the_executable_then_args() -> None:
    both = {"command": ["kube-apiserver", "--audit-log-path"], "args": ["/l", "--audit_policy_file=/p"]}
    assert flags.container_args(both) == [("command", 1), ("args", 0), ("args", 1)]
    assert {f.name: f.value for f in flags.parse_container(both).flags} == {
        "--audit-log-path": "/l", "--audit-policy-file": "/p"}
    # No command: the image's entrypoint (kube-apiserver) gets args from the first one.
    assert flags.container_args({"args": ["--a=1"]}) == [("args", 0)]
    assert flags.container_args({"command": [], "args": ["--a=1"]}) == [("args", 0)]
    assert flags.parse_argv(("/usr/local/bin/kube-apiserver", "--audit_log_path=/l")).value("--audit-log-path") == "/l"


# --- any spelling, form, order and repetition: the last one written is in force ------------------------

STRING_FLAGS = ["--audit-policy-file", "--audit-log-path", "--audit-log-format", "--audit-webhook-config-file",
                "--etcd-prefix"]
INT_FLAGS = ["--audit-log-maxage", "--audit-log-maxbackup", "--audit-log-maxsize", "--secure-port"]
BOOL_FLAGS = ["--audit-log-compress", "--audit-log-truncate-enabled", "--allow-privileged"]


@st.composite
def spelling(draw: Callable[..., Any], name: str) -> str:
    """Each `-` inside the name may be written `_`: WordSepNormalizeFunc makes them the same."""
    return "--" + "".join(draw(st.sampled_from("-_")) if c == "-" else c for c in name[2:])


@st.composite
def writes(draw: Callable[..., Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """(arguments, [(name, value)] in the order kube-apiserver applies them)."""
    args: list[str] = []
    applied: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.sampled_from(STRING_FLAGS + INT_FLAGS + BOOL_FLAGS))
        written = draw(spelling(name))
        if name in BOOL_FLAGS:
            form = draw(st.sampled_from(["bare", "eq"]))
            value = "true" if form == "bare" else draw(st.sampled_from(["true", "false"]))
            args.append(written if form == "bare" else f"{written}={value}")
        else:
            value = (str(draw(st.integers(0, 400))) if name in INT_FLAGS
                     else draw(st.from_regex(r"\A[a-z0-9/.=_]{1,12}\Z")))
            form = draw(st.sampled_from(["eq", "two"]))
            args += [f"{written}={value}"] if form == "eq" else [written, value]
        applied.append((name, value))
    return args, applied


@given(writes())
def test_the_last_write_of_any_spelling_and_form_is_in_force(case: tuple[list[str], list[tuple[str, str]]]) -> None:
    args, applied = case
    line = flags.parse(args)
    assert [f.name for f in line.flags] == [name for name, _ in applied]
    assert all(f.doubt is None for f in line.flags)
    assert in_force(args) == dict(applied)


# --- the real kube-apiserver -------------------------------------------------------------------------

KUBE_APISERVER = find_binary("kube-apiserver")
_no_apiserver = pytest.mark.skipif(KUBE_APISERVER is None, reason="no kube-apiserver binary (scripts/toolchain.sh "
                                                                     "builds it into the toolchain)")


def needs_apiserver(test: Any) -> Any:
    # Marked `toolchain`: scripts/test.sh runs these after the build, so they are never skipped there.
    return pytest.mark.toolchain(_no_apiserver(test))
_FLAG_LINE = re.compile(r'FLAG: (--[\w-]+)="(.*)"$')


@functools.cache
def defaults() -> dict[str, str]:
    found = apiserver_reads([])
    assert isinstance(found, dict), found
    return found


def apiserver_reads(args: list[str]) -> dict[str, str] | str:
    """Every flag's value as the real binary logs it at -v=1, or its parse error."""
    assert KUBE_APISERVER is not None
    r = subprocess.run([str(KUBE_APISERVER), "--v=1", *args], capture_output=True, text=True, timeout=60,
                       check=False)
    values = dict(m.groups() for line in r.stderr.splitlines() if (m := _FLAG_LINE.search(line)))
    return values or r.stderr.strip().splitlines()[0]


@needs_apiserver
def test_no_value_is_every_flag_the_binary_shows_without_a_value_type() -> None:
    assert KUBE_APISERVER is not None
    r = subprocess.run([str(KUBE_APISERVER), "--help"], capture_output=True, text=True, timeout=60, check=False)
    found = set()
    for line in r.stdout.splitlines():
        # pflag prints a type after the name except for bools, and `[=x]` for another no-option default.
        m = re.match(r"^\s+(?:-\w, )?(--[\w-]+)(\[=[^\]]*\])?(?: (\S+?))?(\[=[^\]]*\])?(?:\s{2,}|\s*$)", line)
        if m and (m.group(3) is None or m.group(2) or m.group(4)):
            found.add(m.group(1))
    assert found == flags.NO_VALUE


@st.composite
def tricky(draw: Callable[..., Any]) -> list[str]:
    """Generated writes, plus what people get wrong: a bare value flag right before another flag."""
    before, _ = draw(writes())
    after, _ = draw(writes())
    pair = [draw(st.sampled_from(["--etcd-prefix", "--etcd_prefix", "--audit-policy-file"])),
            draw(st.sampled_from(["--audit_log_path=/x", "--audit-log-compress", "--etcd-prefix=/y"]))]
    return before + (pair if draw(st.booleans()) else []) + after


@needs_apiserver
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tricky())
def test_the_real_kube_apiserver_reads_what_we_read(args: list[str]) -> None:
    real = apiserver_reads(args)
    line = flags.parse(args)
    assert isinstance(real, dict), f"kube-apiserver refused {args}: {real}"
    baseline = defaults()
    while doubtful := [f for f in line.flags if f.doubt]:
        # The other reading, the one doubt warns of: the bare flag before it takes it for its value.
        # The real binary knows its flags and reads it that way.
        flag = doubtful[0]
        before = next(f for f in line.flags if f.stop == flag.start)
        args = [*args[:before.start], f"{before.text}={args[flag.start]}", *args[flag.start + 1:]]
        line = flags.parse(args)
    ours = {name: f.value for name, f in line.in_force().items()}
    for name in set(STRING_FLAGS + INT_FLAGS + BOOL_FLAGS):
        assert real[name] == ours.get(name, baseline[name]), (name, args)

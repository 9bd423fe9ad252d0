"""Command line: validate / lint / explain, their output formats and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from components.policy.__main__ import main

from .conftest import HEADER, POLICIES, REPO, SEED


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    path = tmp_path / "leaky.yaml"
    path.write_text(HEADER + "rules:\n  - level: RequestResponse\n")
    return path


# -- validate -------------------------------------------------------------------------------------


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(POLICIES / "dce-default.yaml"), "security")
    assert (code, out) == (0, "")
    assert "valid (18 rules)" in err


def test_validate_seed_fails_with_file_line_col(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", str(SEED), str(POLICIES / "metadata-only.yaml"))
    assert code == 1
    (line,) = out.splitlines()
    assert line.startswith(f"{SEED}:18:9: YAML syntax error")


def test_validate_reports_every_problem_of_every_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEADER + "rules:\n  - level: Everything\n    verb: [get]\n")
    code, out, _ = run(capsys, "validate", str(bad), str(tmp_path / "missing.yaml"), "no-such-profile")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{bad}:4:12: rules[0].level: Unsupported value")
    assert lines[1].startswith(f'{bad}:5:5: rules[0].verb: unknown field "verb"')
    assert lines[2].startswith(f"{tmp_path / 'missing.yaml'}:1:1: cannot read file")
    assert lines[3].startswith("no-such-profile:1:1: unknown audit policy profile") and "dce-default" in lines[3]


# -- lint -------------------------------------------------------------------------------------------


def test_lint_json_shape_and_exit_code(capsys: pytest.CaptureFixture[str], leaky: Path) -> None:
    code, out, _ = run(capsys, "lint", str(leaky), "--json")
    assert code == 1
    findings = json.loads(out)
    assert all(set(f) == {"file", "line", "column", "rule", "code", "severity", "message"} for f in findings)
    assert {"file": str(leaky), "line": 4, "column": 12}.items() <= findings[-1].items()
    assert {"rule": 0, "code": "sensitive-body-logged", "severity": "error"}.items() <= findings[-1].items()


def test_lint_table(capsys: pytest.CaptureFixture[str], leaky: Path) -> None:
    code, out, _ = run(capsys, "lint", str(leaky))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["RULE", "LINE", "SEVERITY", "CODE", "MESSAGE"]
    assert any(line.split()[:4] == ["0", "4", "error", "sensitive-body-logged"] for line in lines)
    assert lines[-1] == f"{leaky}: 1 error, 1 warning"  # and request-received-kept


def test_lint_warnings_only_exit_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(HEADER + "rules:\n  - level: Metadata\n")
    code, out, _ = run(capsys, "lint", str(path), "--json")
    assert code == 0 and [f["code"] for f in json.loads(out)] == ["request-received-kept"]


def test_lint_clean(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lint", str(POLICIES / "security.yaml"))
    assert code == 0 and out.strip().endswith("no findings")
    assert json.loads(run(capsys, "lint", "security", "--json")[1]) == []


def test_lint_invalid_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lint", str(SEED))
    assert code == 1 and out.startswith(f"{SEED}:18:9:")
    code, out, _ = run(capsys, "lint", str(SEED), "--json")
    (finding,) = json.loads(out)
    assert code == 1 and finding["code"] == "invalid-policy" and finding["rule"] is None
    assert (finding["file"], finding["line"], finding["column"]) == (str(SEED), 18, 9)
    assert finding["message"].startswith("YAML syntax error")


# -- explain ----------------------------------------------------------------------------------------


def test_explain_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "explain",
        "dce-default",
        "--user",
        "kube-admin",
        "--verb",
        "create",
        "--resource",
        "secrets",
        "--namespace",
        "default",
        "--json",
    )
    assert code == 0
    assert json.loads(out) == {
        "level": "Metadata",
        "rule": 10,
        "omitStages": ["RequestReceived", "ResponseStarted", "Panic"],
        "omitManagedFields": False,
    }


def test_explain_readable_shows_rule_text_and_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "dce-default", "--user", "u", "--verb", "get", "--path", "/healthz/etcd")
    assert code == 0
    assert "level:             None" in out
    assert "rule:              7 (" in out and "dce-default.yaml:" in out
    assert "| " in out and "nonResourceURLs:" in out


def test_explain_no_match(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(HEADER + "rules:\n  - level: Metadata\n    users: [x]\n")
    code, out, _ = run(capsys, "explain", str(path), "--user", "y", "--verb", "get", "--resource", "pods", "--json")
    assert code == 0 and json.loads(out)["rule"] is None and json.loads(out)["level"] == "None"
    code, out, _ = run(capsys, "explain", str(path), "--user", "y", "--verb", "get", "--resource", "pods")
    assert "none matched" in out


def test_explain_groups_are_repeatable(capsys: pytest.CaptureFixture[str]) -> None:
    argv = (
        "explain",
        "dce-default",
        "--user",
        "kubelet-x",
        "--group",
        "a",
        "--group",
        "system:nodes",
        "--verb",
        "get",
        "--resource",
        "nodes",
        "--name",
        "n1",
        "--json",
    )
    assert json.loads(run(capsys, *argv)[1])["rule"] == 3


@pytest.mark.parametrize("extra", [(), ("--resource", "pods", "--path", "/x")])
def test_explain_needs_exactly_one_of_resource_and_path(
    capsys: pytest.CaptureFixture[str], extra: tuple[str, ...]
) -> None:
    code, _, err = run(capsys, "explain", "dce-default", "--user", "u", "--verb", "get", *extra)
    assert code == 2 and "exactly one of --resource" in err


def test_explain_invalid_policy(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "explain", str(SEED), "--user", "u", "--verb", "get", "--path", "/")
    assert code == 1 and ":18:9:" in err


def test_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["explain", "dce-default", "--verb", "get"])
    assert info.value.code == 2


@pytest.mark.parametrize("module", ["components", "components.policy"])
def test_python_dash_m(module: str) -> None:
    if module == "components" and not (REPO / "components" / "__main__.py").exists():
        pytest.skip("the lead's components/__main__.py is not there yet")
    result = subprocess.run(
        [sys.executable, "-m", module, "validate", str(SEED)], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1 and result.stdout.startswith(f"{SEED}:18:9:")


def explain(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    return run(capsys, "explain", "dce-default", "--user", "u", "--json", *flags)


def test_explain_resource_slash_subresource_means_the_subresource(capsys: pytest.CaptureFixture[str]) -> None:
    joined = explain(capsys, "--verb", "create", "--resource", "pods/exec", "--namespace", "a", "--name", "p")
    split = explain(
        capsys, "--verb", "create", "--resource", "pods", "--subresource", "exec", "--namespace", "a", "--name", "p"
    )
    assert joined[0] == 0 and joined == split
    both = explain(capsys, "--verb", "get", "--resource", "pods/log", "--subresource", "log", "--name", "p")
    assert both[0] == 0


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (("--verb", "GET", "--resource", "pods"), "never reaches the policy"),
        (("--verb", "GET", "--path", "/healthz"), "lower-case HTTP method"),
        (("--verb", "get", "--resource", "pods/exec", "--subresource", "log"), "give it once"),
        (("--verb", "get", "--resource", "pods/exec/x"), "at most one subresource"),
        (("--verb", "get", "--resource", "Pod"), "not kinds such as Pod"),
        (("--verb", "get", "--resource", "*"), "not a resource name"),
        (("--verb", "get", "--resource", "deployments", "--api-group", "apps/v1"), "without its version"),
        (("--verb", "get", "--resource", "pods", "--api-group", "core"), "the core group is the empty string"),
        (("--verb", "get", "--resource", "pods", "--namespace", "Default"), "not a namespace name"),
        (("--verb", "get", "--path", "healthz"), "starting with '/'"),
        (("--verb", "get", "--path", "/healthz?verbose"), "without a query"),
        (("--verb", "get", "--path", "/x", "--namespace", "a"), "only apply to --resource"),
    ],
)
def test_explain_refuses_what_could_be_misread(
    capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], fragment: str
) -> None:
    code, out, err = explain(capsys, *flags)
    assert (code, out) == (2, "") and fragment in err, err


def test_explain_answers_for_the_policy_the_apiserver_enforces(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # verbs mis-indented under a resources entry: dropped, so the None rule swallows writes too.
    path = tmp_path / "p.yaml"
    path.write_text(
        HEADER + "rules:\n  - level: None\n    resources:\n    - group: ''\n      verbs: [get]\n  - level: Metadata\n"
    )
    assert run(capsys, "validate", str(path))[0] == 1
    code, out, err = run(
        capsys, "explain", str(path), "--user", "u", "--verb", "delete", "--resource", "pods", "--name", "x", "--json"
    )
    assert code == 0 and json.loads(out)["level"] == "None"
    assert err.startswith(f"warning: {path}:7:7: rules[0].resources[0].verbs: unknown field")
    code, out, _ = run(capsys, "lint", str(path), "--json")
    first = json.loads(out)[0]
    assert code == 0 and first["code"] == "dropped-by-apiserver" and (first["line"], first["column"]) == (7, 7)
    assert "rule 0 matches every verb on core resources by anyone, at level None" in first["message"]


def test_lint_takes_several_files(capsys: pytest.CaptureFixture[str], leaky: Path) -> None:
    code, out, _ = run(capsys, "lint", "metadata-only", str(leaky), "--json")
    files = {f["file"] for f in json.loads(out)}
    assert code == 1 and files == {str(leaky)}
    code, out, _ = run(capsys, "lint", "metadata-only", "security")
    assert code == 0 and out.count("no findings") == 2

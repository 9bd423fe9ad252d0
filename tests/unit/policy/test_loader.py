"""Loader: everything kube-apiserver rejects, plus what it silently drops, at the right position."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from components.policy import PolicyError, Problem, load_policy, load_policy_file, policy_hash
from components.policy.yamlnodes import go_plain_kind

from .conftest import HEADER, POLICIES, SEED, policy_of


def problems(text: str, **kwargs: object) -> list[Problem]:
    with pytest.raises(PolicyError) as info:
        load_policy(text, "p.yaml", **kwargs)  # type: ignore[arg-type]
    return info.value.problems


def one(text: str, **kwargs: object) -> Problem:
    found = problems(text, **kwargs)
    assert len(found) == 1, found
    return found[0]


# -- the public types -------------------------------------------------------------------------


def test_problem_str_is_file_line_col_message() -> None:
    assert str(Problem("a.yaml", 3, 7, "boom")) == "a.yaml:3:7: boom"


def test_policy_error_joins_problems_by_newline() -> None:
    err = PolicyError([Problem("a", 1, 1, "x"), Problem("a", 2, 3, "y")])
    assert str(err) == "a:1:1: x\na:2:3: y"
    assert err.problems[1].col == 3


# -- valid policies -----------------------------------------------------------------------------


def test_full_policy_loads_every_field() -> None:
    p = policy_of(
        """metadata:
  name: full
  labels: {a: b}
omitStages: [RequestReceived]
omitManagedFields: true
rules:
  - level: RequestResponse
    users: [alice]
    userGroups: [devs]
    verbs: [get, list]
    namespaces: ["", kube-system]
    resources:
      - group: apps
        resources: [deployments, deployments/scale]
        resourceNames: [web]
    omitStages: [Panic]
    omitManagedFields: false
  - level: None
    nonResourceURLs: [/healthz*]
"""
    )
    assert p.name == "full"
    assert p.omit_stages == p.omitStages == ("RequestReceived",)
    assert p.omit_managed_fields is True and p.omitManagedFields is True
    r = p.rules[0]
    assert r.level == "RequestResponse" and r.users == ("alice",) and r.user_groups == ("devs",)
    assert r.verbs == ("get", "list") and r.namespaces == ("", "kube-system")
    assert r.resources[0].group == "apps" and r.resources[0].resource_names == ("web",)
    assert r.resources[0].resources == ("deployments", "deployments/scale")
    assert r.omit_stages == ("Panic",) and r.omit_managed_fields is False
    assert (r.line, r.end_line) == (9, 19)
    assert p.rules[1].non_resource_urls == ("/healthz*",) and p.rules[1].line == 20
    assert p.rule_text(1) == "  - level: None\n    nonResourceURLs: [/healthz*]"


def test_null_values_mean_unset_as_in_the_apiserver() -> None:
    p = policy_of("omitStages:\nrules:\n  - level: Metadata\n    users: ~\n    omitManagedFields:\n")
    assert p.omit_stages == () and p.rules[0].users == () and p.rules[0].omit_managed_fields is None


def test_json_policy_loads() -> None:
    p = load_policy('{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None"}]}')
    assert p.rules[0].level == "None"


def test_wildcard_group_accepted_on_new_and_refused_before_1_36() -> None:
    body = HEADER + 'rules:\n  - level: None\n    resources: [{group: "*"}]\n'
    assert load_policy(body).rules[0].resources[0].group == "*"
    assert load_policy(body, kubernetes_version=(1, 36)).rules
    problem = one(body, kubernetes_version=(1, 35))
    assert (problem.line, problem.col) == (5, 25) and "1.36" in problem.message


# -- rejections, each at its node -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "col", "fragment"),
    [
        ("rules:\n  - level: Metadata\n    verb: [get]\n", 5, 5, 'unknown field "verb"'),
        (
            "rules:\n  - level: Metadata\n    resources:\n      - group: apps\n        verbs: [get]\n",
            7,
            9,
            "belongs to the rule",
        ),
        ("rules:\n  - level: Metadata\n    group: apps\n", 5, 5, "belongs inside a resources entry"),
        ("level: Metadata\nrules:\n  - level: None\n", 3, 1, "belongs to a rule"),
        ("rules:\n  - level: Metadata\n    Level: None\n", 5, 5, 'unknown field "Level"'),
        ("rules:\n  - level: Metadata\n    level: None\n", 5, 5, 'duplicate key "level" (first at line 4)'),
        ("rules:\n  - level: Metadata\n    users: [a]\n    users: [b]\n", 6, 5, "duplicate key"),
        ("rules:\n  - level: metadata\n", 4, 12, 'did you mean "Metadata"'),
        ("rules:\n  - level: Everything\n", 4, 12, 'Unsupported value: "Everything"'),
        ("rules:\n  - users: [a]\n", 4, 5, "level: Required value"),
        ('rules:\n  - level: ""\n', 4, 12, "level: Required value"),
        ("rules:\n  - level: None\n    nonResourceURLs: [healthz]\n", 5, 23, "must begin with a '/'"),
        ('rules:\n  - level: None\n    nonResourceURLs: [""]\n', 5, 23, "must begin with a '/'"),
        ("rules:\n  - level: None\n    nonResourceURLs: [/a*b]\n", 5, 23, "'*' must be the final character"),
        (
            "rules:\n  - level: None\n    nonResourceURLs: [/a]\n    namespaces: [x]\n",
            5,
            22,
            "both regular resources and non-resource URLs",
        ),
        (
            "rules:\n  - level: None\n    resources: [{group: rbac.authorization.k8s.io/v1}]\n",
            5,
            25,
            'without its version: "rbac.authorization.k8s.io"',
        ),
        ("rules:\n  - level: None\n    resources: [{group: Apps}]\n", 5, 25, "RFC 1123 subdomain"),
        ("rules:\n  - level: None\n    resources: [{resourceNames: [x]}]\n", 5, 33, "requires at least one resource"),
        ("rules:\n  - level: None\n    omitStages: [ResponseCompleted]\n", 5, 18, "allowed stages are"),
        ("omitStages: [Foo]\nrules:\n  - level: None\n", 3, 14, "allowed stages are"),
        ("rules:\n  - level: None\n    users: admin\n", 5, 12, "expected a list of strings"),
        ("rules:\n  - level: None\n    users: [yes]\n", 5, 13, "got a boolean"),
        ("rules:\n  - level: None\n    users: [y]\n", 5, 13, "got a boolean"),
        ("rules:\n  - level: None\n    namespaces: [0755]\n", 5, 18, "got a number"),
        ("rules:\n  - level: None\n    users: [1e3]\n", 5, 13, "got a number"),
        ("rules:\n  - level: None\n    users: [[a]]\n", 5, 13, "expected a string, got a list"),
        ("rules:\n  - level: None\n    users: [a, ~]\n", 5, 16, "empty list item"),
        ("rules:\n  -\n", 4, 4, "empty list item"),
        ("rules:\n  - level: None\n    omitManagedFields: maybe\n", 5, 24, "expected true or false"),
        ("rules:\n  - level: None\n    resources: {group: apps}\n", 5, 16, "expected a list of groups"),
        ("rules: {level: None}\n", 3, 8, "expected a list of rules"),
        ("rules: []\n", 3, 8, "0 rules"),
        ("metadata: {name: x}\n", 1, 1, "0 rules"),
        ("rules:\n  - level: None\n<<: {a: b}\n", 5, 1, "merge keys"),
        ("rules:\n  - level: None\n---\nrules: []\n", 6, 1, "a second YAML document"),
        ("rules:\n  - level: None\n\tusers: [a]\n", 5, 1, "YAML syntax error"),
    ],
)
def test_rejected_at_node(body: str, line: int, col: int, fragment: str) -> None:
    found = problems(HEADER + body)
    assert any(p.line == line and p.col == col and fragment in p.message for p in found), found


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ("", 1, 1, "empty file"),
        ("# only a comment\n", 1, 1, "empty file"),
        ("- a\n", 1, 1, "expected an audit Policy"),
        ("kind: Policy\nrules: [{level: None}]\n", 1, 1, "apiVersion is required"),
        (
            "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]\n",
            1,
            13,
            "removed in Kubernetes 1.24",
        ),
        ("apiVersion: v1\nkind: Policy\nrules: [{level: None}]\n", 1, 13, 'apiVersion "v1" is not supported'),
        ("apiVersion: audit.k8s.io/v1\nkind: ConfigMap\nrules: [{level: None}]\n", 2, 7, 'kind "ConfigMap"'),
        ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None}\n", 4, 1, "YAML syntax error"),
    ],
)
def test_document_level_rejections(text: str, line: int, col: int, fragment: str) -> None:
    found = problems(text)
    assert any(p.line == line and p.col == col and fragment in p.message for p in found), found


def test_every_problem_is_reported_in_one_run_sorted_by_position() -> None:
    found = problems(HEADER + "rules:\n  - level: Nope\n    verb: [get]\n  - level: None\n    nonResourceURLs: [x]\n")
    assert [(p.line, p.col) for p in found] == [(4, 12), (5, 5), (7, 23)]
    assert all(p.source == "p.yaml" for p in found)


def test_seed_policy_fails_inside_its_first_broken_resources_block() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_file(SEED)
    lines = SEED.read_text().splitlines()
    (problem,) = info.value.problems
    block_start = next(i for i, line in enumerate(lines, 1) if line.strip() == "resources:")
    assert block_start < problem.line <= block_start + 2
    assert problem.source == str(SEED)
    assert '"-group: "" # core" is not a list item' in problem.message


def test_unreadable_file_is_a_problem_at_1_1(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy_file(missing)
    (problem,) = info.value.problems
    assert (problem.source, problem.line, problem.col) == (str(missing), 1, 1)
    assert "No such file or directory" in problem.message
    with pytest.raises(PolicyError, match="cannot read file"):
        load_policy_file(tmp_path)  # a directory


def test_non_utf8_file_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kind: Policy\nusers: [\xe9]\n")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy_file(path)


def test_policy_hash_is_sha256_of_the_file_bytes(tmp_path: Path) -> None:
    raw = (HEADER + "rules:\r\n  - level: None  # crlf and a comment\r\n").encode()
    path = tmp_path / "p.yaml"
    path.write_bytes(raw)
    policy = load_policy_file(path)
    assert policy_hash(policy) == hashlib.sha256(raw).hexdigest()
    assert policy.text == raw.decode()
    text = HEADER + "rules: [{level: None}]\n"
    assert policy_hash(load_policy(text)) == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("name", ["dce-default", "metadata-only", "security"])
def test_profiles_load(name: str) -> None:
    policy = load_policy_file(POLICIES / f"{name}.yaml")
    assert policy.rules and all(r.line > 0 for r in policy.rules)


# -- go-yaml v2 scalar typing (the apiserver's YAML reader, not PyYAML's) ----------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("y", "bool"),
        ("N", "bool"),
        ("off", "bool"),
        ("TRUE", "bool"),
        ("~", "null"),
        ("", "null"),
        ("12", "int"),
        ("-0x1F", "int"),
        ("0o17", "int"),
        ("0b101", "int"),
        ("1_000", "int"),
        ("1e3", "float"),
        ("08", "float"),
        (".5", "float"),
        ("-.inf", "float"),
        ("2024-01-02", "str"),
        ("1:20", "str"),
        ("yes!", "str"),
        ("None", "str"),
        ("0x", "str"),
        ("+", "str"),
        ("<<", "str"),
        ("get", "str"),
    ],
)
def test_go_plain_kind(value: str, kind: str) -> None:
    assert go_plain_kind(value) == kind


def test_quoted_and_tagged_scalars_are_strings() -> None:
    p = policy_of(
        "rules:\n  - level: None\n    users:\n      - 'yes'\n      - \"1\"\n      - !!str on\n      - |\n        multi\n"
    )
    assert p.rules[0].users == ("yes", "1", "on", "multi\n")


def test_timestamp_like_and_sexagesimal_plain_scalars_stay_strings() -> None:
    # PyYAML would make these a date and an int; go-yaml hands the apiserver strings.
    p = policy_of("rules:\n  - level: None\n    users: [2024-01-02, 1:20]\n")
    assert p.rules[0].users == ("2024-01-02", "1:20")


def test_document_starting_with_brace_must_be_json_like_in_the_apiserver() -> None:
    problem = one("{apiVersion: audit.k8s.io/v1, kind: Policy, rules: [{level: None}]}\n")
    assert (problem.line, problem.col) == (1, 2) and "as JSON" in problem.message
    assert one('\n  {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": NaN}]}').line == 1
    assert load_policy("# yaml comment first\n{apiVersion: audit.k8s.io/v1, kind: Policy, rules: [{level: None}]}")


@pytest.mark.parametrize(
    ("meta", "fragment"),
    [
        ("{name: 5}", "metadata.name: expected a string"),
        ("{labels: {a: 1}}", "metadata.labels.a: expected a string"),
        ("{labels: [a]}", "expected a string map"),
        ("{generation: x}", "expected an integer"),
        ("{finalizers: a}", "expected a list of strings"),
        ("{creationTimestamp: '2024-01-01T00:00:00Z'}", "server-managed field"),
        ("{nmae: x}", 'unknown field "nmae" (did you mean "name"?)'),
    ],
)
def test_metadata_is_typed(meta: str, fragment: str) -> None:
    found = problems(HEADER + f"metadata: {meta}\nrules: [{{level: None}}]\n")
    assert any(fragment in p.message for p in found), found


def test_metadata_ok() -> None:
    text = (
        HEADER
        + "metadata: {name: p, namespace: x, labels: {a: b}, generation: 3, finalizers: [f]}\nrules: [{level: None}]\n"
    )
    assert load_policy(text).name == "p"


def test_rule_spans_exclude_trailing_comments_and_blank_lines() -> None:
    policy = load_policy_file(POLICIES / "dce-default.yaml")
    for index, rule in enumerate(policy.rules):
        text = policy.rule_text(index).splitlines()
        assert text[0].lstrip().startswith("- level:"), (index, text)
        assert text[-1].strip() and not text[-1].lstrip().startswith("#"), (index, text)
        assert rule.end_line >= rule.line
    last = load_policy(HEADER + "rules:\n  - level: None\n  - level: Metadata\n    users: [a]")
    assert last.rule_text(1) == "  - level: Metadata\n    users: [a]"


# -- what kube-apiserver accepts, and lenient loading (issue 10 §2) ------------------------------


@pytest.mark.parametrize(
    "tail",
    ["---\n", "---\n# a comment after the last policy\n", "...\n", "---\n---\n", "--- ~\n"],
)
def test_empty_trailing_documents_are_accepted(tail: str) -> None:
    policy = load_policy(HEADER + "rules:\n  - level: None\n" + tail, "p.yaml")
    assert len(policy.rules) == 1 and policy.dropped == ()


def test_missing_kind_is_accepted_as_the_apiserver_defaults_it() -> None:
    assert load_policy("apiVersion: audit.k8s.io/v1\nrules: [{level: None}]\n").rules[0].level == "None"


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        # verbs under a resources entry is dropped: the rule matches every verb.
        ("rules:\n  - level: None\n    resources:\n    - group: ''\n      verbs: [get]\n", {"verbs": ()}),
        # the apiserver keeps the last of duplicate keys.
        ("rules:\n  - level: None\n    level: Metadata\n", {"level": "Metadata"}),
        # an empty string-list item reads as "".
        ("rules:\n  - level: None\n    users: [a, ~]\n", {"users": ("a", "")}),
    ],
)
def test_lenient_loading_builds_what_the_apiserver_enforces(body: str, expect: dict[str, object]) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(HEADER + body, "p.yaml")
    assert all(p.tolerated for p in info.value.problems)
    policy = load_policy(HEADER + body, "p.yaml", lenient=True)
    assert [str(p) for p in policy.dropped] == [str(p) for p in info.value.problems]
    for name, value in expect.items():
        assert getattr(policy.rules[0], name) == value


def test_lenient_loading_still_refuses_what_the_apiserver_refuses() -> None:
    with pytest.raises(PolicyError):
        load_policy(HEADER + "rules:\n  - level: none\n    verb: [get]\n", lenient=True)


def test_deep_nesting_is_a_positioned_problem_not_a_traceback() -> None:
    depth = 5000
    text = HEADER + "metadata:\n  labels: " + "[" * depth + "]" * depth + "\n"
    (problem,) = problems(text)
    assert "nested too deeply" in problem.message and problem.line == 4
    (problem,) = problems('{"a": ' + "[" * depth + "]" * depth + "}")
    assert "nested too deeply" in problem.message


def test_fifo_is_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    with pytest.raises(PolicyError, match="it is a FIFO, not a regular file"):
        load_policy_file(fifo)
    with pytest.raises(PolicyError, match="it is a device or socket"):
        load_policy_file("/dev/null")

"""The realistic corpus (tests/parity/corpus) against the real kube-apiserver loader and checker.

For each policy: the apiserver's verdict, ours (validate), and, for every policy the apiserver
loads, our lenient load (what lint and explain judge) must decide every request exactly as the
apiserver does. Requests are built from each policy's own literals plus seeded random ones.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from components.policy import Policy, PolicyError, Request, load_policy_file
from components.policy.evaluator import compile_policy

from ..unit.policy.strategies import resource_request, sampled_requests
from ..unit.policy.test_corpus import CORPUS, EXPECTED
from . import gobuild
from .conftest import Runner

pytestmark = pytest.mark.parity

# What kube-apiserver (k8s.io/apiserver LoadPolicyFromBytes) does with each file.
APISERVER_ACCEPTS = {name: name != "10-mistake-v1beta1.yaml" for name in EXPECTED}


def literal_requests(policy: Policy) -> list[Request]:
    """Requests that hit each rule's literals, and their near misses."""
    out: list[Request] = []
    for rule in policy.rules:
        users = [*rule.users, "alice"]
        groups = [(g,) for g in rule.user_groups] + [()]
        if rule.non_resource_urls:
            for url, verb in itertools.product(rule.non_resource_urls, rule.verbs or ("get", "post")):
                path = url.rstrip("*") + ("x" if url.endswith("*") else "")
                path = path if path.startswith("/") else "/" + path
                out += [Request(user=u, groups=g, verb=verb, path=path) for u in users[:2] for g in groups[:2]]
            continue
        targets = [("", "pods", "", "p")]
        for gr in rule.resources:
            for entry in gr.resources or ("*",):
                resource, _, sub = entry.partition("/")
                resource = "widgets" if resource == "*" else resource
                sub = "status" if sub == "*" else sub
                for name in (*gr.resource_names, "x", ""):
                    targets.append((gr.group, resource, sub, name if not sub or name else "x"))
        for (group, resource, sub, name), verb, ns in itertools.product(
            targets, rule.verbs or ("get", "list", "create", "delete"), [*rule.namespaces, "", "team-a"]
        ):
            out += [
                resource_request(u, g, verb, (group, resource, sub, name), ns)
                for u in users[:2]
                for g in groups[:2]
            ]
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_against_the_apiserver(go_apiserver: Runner, name: str) -> None:
    text = (CORPUS / name).read_text()
    path = CORPUS / name
    try:
        policy = load_policy_file(path, lenient=True)
    except PolicyError:
        policy = None
    requests = (literal_requests(policy) if policy else []) + sampled_requests(len(name), 300)
    (result,) = go_apiserver(
        {"mode": "eval", "cases": [{"policy": text, "requests": [gobuild.go_request(r) for r in requests]}]}
    )["results"]
    assert result["ok"] is APISERVER_ACCEPTS[name], result.get("error")
    # validate's verdict (stricter on purpose only for what the apiserver drops).
    try:
        load_policy_file(path)
        strict = True
    except PolicyError as err:
        strict = False
        if result["ok"]:
            assert all(p.tolerated for p in err.problems), err
    assert strict is EXPECTED[name][0]
    assert (policy is not None) is result["ok"]
    if policy is None:
        return
    mismatches = []
    for request, theirs in zip(requests, result["decisions"], strict=True):
        mine = compile_policy(policy).evaluate(request)
        got = (mine.level, mine.rule, sorted(mine.omit_stages), mine.omit_managed_fields)
        want = (theirs["level"], theirs["rule"], sorted(theirs["omitStages"]), theirs["omitManagedFields"])
        if got != want:
            mismatches.append((request, got, want))
    assert len(requests) > 300 and not mismatches, mismatches[:3]


def test_corpus_lives_where_the_unit_test_reads_it() -> None:
    assert Path(__file__).resolve().parent / "corpus" == CORPUS

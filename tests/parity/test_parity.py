"""Differential test: our loader and evaluator vs the real kube-apiserver code (k8s.io/apiserver).

Every disagreement is a bug in ours, except where we are stricter on purpose (``DELIBERATE``).
Counts of the last run are written to ``<cache>/parity/last-run.json`` for the report.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.policy import Policy, PolicyError, Request, evaluate, load_policy

from ..unit.policy.strategies import (
    mistaken_policy_texts,
    policy_texts,
    realistic_requests,
    requests,
    sampled_requests,
)
from . import gobuild
from .conftest import Runner, cache_dir

pytestmark = pytest.mark.parity

REPO = Path(__file__).resolve().parents[2]
STATS: Counter[str] = Counter()


def ours(text: str) -> Policy | PolicyError:
    try:
        return load_policy(text, "gen.yaml")
    except PolicyError as err:
        return err


def compare(
    go: Runner, cases: list[tuple[str, list[Request]]], load: Callable[[str], Policy] | None = None
) -> list[str]:
    """Run all cases through both implementations; return readable mismatches."""
    answer = go(
        {"mode": "eval", "cases": [{"policy": t, "requests": [gobuild.go_request(r) for r in rs]} for t, rs in cases]}
    )
    mismatches = []
    for (text, reqs), result in zip(cases, answer["results"], strict=True):
        policy = ours(text) if load is None else load(text)
        STATS["policies"] += 1
        if isinstance(policy, PolicyError) and result["ok"] and all(p.tolerated for p in policy.problems):
            # Refused by validate on purpose, loaded by the apiserver: lint and explain use the
            # lenient load, which must decide exactly like the apiserver.
            STATS["lenient_compared"] += 1
            policy = load_policy(text, "gen.yaml", lenient=True)
        if isinstance(policy, PolicyError) or not result["ok"]:
            STATS[
                "rejected_by_both" if isinstance(policy, PolicyError) and not result["ok"] else "accept_mismatch"
            ] += 1
            if isinstance(policy, PolicyError) != (not result["ok"]):
                mismatches.append(f"accept/reject differs\n--- policy\n{text}--- go: {result}\n--- ours: {policy}")
            continue
        STATS["accepted_by_both"] += 1
        for request, theirs in zip(reqs, result["decisions"], strict=True):
            STATS["requests"] += 1
            mine = evaluate(policy, request)
            got = (mine.level, mine.rule, sorted(mine.omit_stages), mine.omit_managed_fields)
            want = (theirs["level"], theirs["rule"], sorted(theirs["omitStages"]), theirs["omitManagedFields"])
            if got != want:
                mismatches.append(f"decision differs for {asdict(request)}\n{text}ours={got}\ngo={want}")
    return mismatches


@pytest.fixture(scope="module", autouse=True)
def _write_stats() -> Any:
    yield
    out = cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "last-run.json").write_text(json.dumps(dict(STATS), indent=2, sort_keys=True))


# Mostly valid policies (their decisions are compared), some with values the apiserver rejects.
case = st.tuples(
    policy_texts(invalid=False) | policy_texts(invalid=False) | policy_texts(invalid=True),
    st.lists(requests() | realistic_requests(), min_size=1, max_size=40),
)
# PARITY_EXAMPLES=1000 for a long run; each example is one Go process over 10-30 policies.
EXAMPLES = int(os.environ.get("PARITY_EXAMPLES", "100"))


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(st.lists(case, min_size=10, max_size=30), st.integers(0, 2**32))
def test_generated_policies_and_requests_agree(
    go_apiserver: Runner, cases: list[tuple[str, list[Request]]], seed: int
) -> None:
    # Hypothesis' own requests shrink well; 100 seeded ones per policy add bulk cheaply.
    cases = [(text, reqs + sampled_requests(seed + i, 100)) for i, (text, reqs) in enumerate(cases)]
    mismatches = compare(go_apiserver, cases)
    assert not mismatches, "\n\n".join(mismatches[:3])


@settings(
    max_examples=max(10, EXAMPLES // 5),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(mistaken_policy_texts(), min_size=10, max_size=20), st.integers(0, 2**32))
def test_lenient_loading_of_generated_mistakes_agrees(go_apiserver: Runner, texts: list[str], seed: int) -> None:
    cases = [(text, sampled_requests(seed + i, 80)) for i, text in enumerate(texts)]
    # How many were compared leniently lands in last-run.json ("lenient_compared").
    mismatches = compare(go_apiserver, cases)
    assert not mismatches, "\n\n".join(mismatches[:3])


PROFILES = sorted((REPO / "policies").glob("*.yaml"))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(requests() | realistic_requests(), min_size=50, max_size=100))
def test_shipped_profiles_agree_on_generated_requests(go_apiserver: Runner, reqs: list[Request]) -> None:
    cases = [(p.read_text(), reqs) for p in PROFILES]
    assert len(cases) >= 3
    assert not compare(go_apiserver, cases)


HEADER = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"

# Documents both sides must judge the same way.
SAME = {
    "seed (invalid YAML)": (REPO / "tests/fixtures/seed-policy.yaml").read_text(),
    "v1beta1": "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]\n",
    "wrong kind": "apiVersion: audit.k8s.io/v1\nkind: Pod\nrules: [{level: None}]\n",
    "no apiVersion": "kind: Policy\nrules: [{level: None}]\n",
    "zero rules": HEADER + "rules: []\n",
    "level missing": HEADER + "rules: [{users: [a]}]\n",
    "level lower-case": HEADER + "rules: [{level: none}]\n",
    "user y is a boolean": HEADER + "rules: [{level: None, users: [y]}]\n",
    "namespace 0755 is a number": HEADER + "rules: [{level: None, namespaces: [0755]}]\n",
    "users not a list": HEADER + "rules: [{level: None, users: alice}]\n",
    "omitManagedFields yes": HEADER + "omitManagedFields: yes\nrules: [{level: None}]\n",
    "omitManagedFields string": HEADER + "omitManagedFields: 'true'\nrules: [{level: None}]\n",
    "group with version": HEADER + "rules: [{level: None, resources: [{group: apps/v1}]}]\n",
    "group star": HEADER + "rules: [{level: None, resources: [{group: '*'}]}]\n",
    "timestamp-like user": HEADER + "rules: [{level: None, users: [2024-01-02]}]\n",
    "url without slash": HEADER + "rules: [{level: None, nonResourceURLs: [healthz]}]\n",
    "urls with namespaces": HEADER + "rules: [{level: None, nonResourceURLs: [/a], namespaces: [x]}]\n",
    "bad stage": HEADER + "omitStages: [Foo]\nrules: [{level: None}]\n",
    "names without resources": HEADER + "rules: [{level: None, resources: [{resourceNames: [a]}]}]\n",
    "level is a number": HEADER + "rules: [{level: 1}]\n",
    "level quoted": HEADER + "rules: [{level: 'None', users: ['y', '1e3']}]\n",
    "namespaces bool": HEADER + "rules: [{level: None, namespaces: [on]}]\n",
    "rules null": HEADER + "rules:\n",
    "omitStages null": HEADER + "omitStages:\nrules: [{level: None}]\n",
    "metadata ok": HEADER + "metadata: {name: p, labels: {a: b}, generation: 2}\nrules: [{level: None}]\n",
    "metadata name number": HEADER + "metadata: {name: 5}\nrules: [{level: None}]\n",
    "metadata label number": HEADER + "metadata: {labels: {a: 1}}\nrules: [{level: None}]\n",
    "metadata generation string": HEADER + "metadata: {generation: x}\nrules: [{level: None}]\n",
    "flow trailing comma": HEADER + "rules: [{level: None, users: [a, b,]}]\n",
    "anchors and aliases": HEADER + "rules:\n- level: None\n  users: &u [a]\n  userGroups: *u\n",
    "document markers": "---\n" + HEADER + "rules: [{level: None}]\n...\n",
    "top-level list": "- a\n",
    "empty file": "",
    "tab indentation": HEADER + "rules:\n- level: None\n\tusers: [a]\n",
    "json": '{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None"}]}',
    "json with a comment": '{"apiVersion": "audit.k8s.io/v1", // c\n "kind": "Policy", "rules": [{"level": "None"}]}',
    "yaml flow mapping (read as JSON)": "{apiVersion: audit.k8s.io/v1, kind: Policy, rules: [{level: None}]}\n",
    "yaml flow mapping after a comment": "# c\n{apiVersion: audit.k8s.io/v1, kind: Policy, rules: [{level: None}]}\n",
    "byte order mark": "\ufeff" + HEADER + "rules: [{level: None}]\n",
    # Accepted by both since issue 10 (we used to refuse them).
    "kind missing (defaulted)": "apiVersion: audit.k8s.io/v1\nrules: [{level: None}]\n",
    "kind empty (defaulted)": "apiVersion: audit.k8s.io/v1\nkind: ''\nrules: [{level: None}]\n",
    "trailing document marker": HEADER + "rules: [{level: None}]\n---\n",
    "trailing marker and comment": HEADER + "rules: [{level: None}]\n---\n# nothing after this\n",
    "trailing end marker": HEADER + "rules: [{level: None}]\n...\n",
    "two trailing markers": HEADER + "rules: [{level: None}]\n---\n---\n",
    "empty first document": "---\n---\n" + HEADER + "rules: [{level: None}]\n",
    "deep nesting": HEADER + "metadata:\n  labels: " + "[" * 3000 + "]" * 3000 + "\nrules: [{level: None}]\n",
}

# Documents the apiserver accepts (dropping or defaulting something) and we refuse on purpose.
DELIBERATE = {
    "unknown field (dropped: the rule widens)": HEADER + "rules: [{level: None, verb: [get]}]\n",
    "mis-indented matcher": HEADER + "rules:\n- level: None\n  resources:\n  - group: ''\n    verbs: [get]\n",
    "duplicate key": HEADER + "rules: [{level: None, level: Metadata}]\n",
    'null list item (read as "")': HEADER + "rules: [{level: None, users: [a, null]}]\n",
    "second YAML document (ignored)": HEADER + "rules: [{level: None}]\n---\nfoo: bar\n",
    "integer key (unknown field)": HEADER + "rules: [{level: None, 5: x}]\n",
    "json duplicate key": '{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "kind": "Policy", "rules": [{"level": "None"}]}',
    "metadata unknown field": HEADER + "metadata: {nmae: x}\nrules: [{level: None}]\n",
    "metadata server-managed field": HEADER
    + "metadata: {creationTimestamp: '2024-01-01T00:00:00Z'}\nrules: [{level: None}]\n",
    "duplicate rules key (last kept)": HEADER + "rules: [{level: None}]\nrules: [{level: Metadata, users: [a]}]\n",
    "empty resources entry (whole core group)": HEADER
    + "rules:\n- level: Metadata\n  resources:\n  -\n- level: Request\n",
    "verbs at rule level of a mis-indented entry": HEADER
    + "rules:\n- level: None\n  users: [a]\n  resources:\n  - group: ''\n    resources: [pods]\n    verbs: [get]\n"
    + "- level: RequestResponse\n",
}
# Refused on purpose and not modelled leniently (the apiserver merges; so do not write it).
NOT_LENIENT = {"yaml merge key": HEADER + "base: &b {level: None}\nrules: [{<<: *b, users: [a]}]\n"}


def test_hand_picked_documents(go_apiserver: Runner) -> None:
    docs = {**SAME, **DELIBERATE, **NOT_LENIENT}
    answer = go_apiserver({"mode": "eval", "cases": [{"policy": t, "requests": []} for t in docs.values()]})
    verdicts = {name: result["ok"] for name, result in zip(docs, answer["results"], strict=True)}
    for name, text in SAME.items():
        assert isinstance(ours(text), Policy) == verdicts[name], (name, verdicts[name], ours(text))
    for name, text in {**DELIBERATE, **NOT_LENIENT}.items():
        assert verdicts[name] is True, f"{name}: the apiserver was expected to accept this"
        assert isinstance(ours(text), PolicyError), f"{name}: we are meant to refuse this"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(requests() | realistic_requests(), min_size=30, max_size=60))
def test_lenient_loading_enforces_what_the_apiserver_enforces(go_apiserver: Runner, reqs: list[Request]) -> None:
    """What validate refuses but the apiserver loads: lint and explain judge the apiserver's version."""
    for name, text in DELIBERATE.items():
        lenient = load_policy(text, "deliberate.yaml", lenient=True)
        assert lenient.dropped, name
        mismatches = compare(go_apiserver, [(text, reqs)], load=lambda t: load_policy(t, "d.yaml", lenient=True))
        assert not mismatches, (name, mismatches[:2])

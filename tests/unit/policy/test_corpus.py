"""Realistic policies (tests/parity/corpus, each headed by the pattern it models): validate and lint.

Every expected finding below was reviewed by hand; the comment says why it is right. The
apiserver's own verdict and decisions on the same files are checked in tests/parity/test_corpus.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.policy import PolicyError, lint, load_policy_file

CORPUS = Path(__file__).resolve().parents[2] / "parity" / "corpus"

# file -> (validate accepts it, lint findings as (rule, code, severity)); None: not loadable at all.
EXPECTED: dict[str, tuple[bool, list[tuple[int | None, str, str]] | None]] = {
    "01-docs-example.yaml": (
        True,
        [
            # Rule 5 logs kube-system configmap writes at Request: the body is the configmap, on
            # purpose in the docs example. A warning by default (configmaps often hold no secrets).
            (5, "configmap-body-logged", "warning"),
            # The extensions group is not served since 1.22: that entry of rule 7 matches nothing.
            (7, "removed-group", "warning"),
            # Not an error any more: rule 7 (Request on the core group) captures create
            # serviceaccounts/token, but a TokenRequest's token is in the response, not logged at
            # Request; secrets reach rule 6 (Metadata) first.
        ],
    ),
    "02-cloud-installer.yaml": (
        True,
        [
            # Kubelet heartbeats (system:nodes update/patch of nodes/status, pods/status) at None:
            # a stolen node credential can rewrite pod status without a trace. Intended for
            # volume, so a warning naming exactly those writes.
            (9, "identity-writes-dropped", "warning"),
            # extensions in the reads rule and in the writes rule: not served since 1.22.
            (12, "removed-group", "warning"),
            (13, "removed-group", "warning"),
        ],
    ),
    "03-cis-minimal.yaml": (
        True,
        # RequestReceived is not omitted, so every request is written twice.
        [(None, "request-received-kept", "warning")],
    ),
    "04-cis-probes-dropped.yaml": (True, []),
    "05-hardening-write-bodies.yaml": (
        True,
        # Credentials-bearing resources reach the Metadata rule first; the oauth group is a
        # distribution's API, never judged.
        [],
    ),
    "06-siem-vendor.yaml": (
        True,
        # The RequestResponse catch-all captures TokenReviews (bearer token in the request),
        # TokenRequests (token in the response) and configmaps: one error naming every pair.
        [(3, "sensitive-body-logged", "error")],
    ),
    "07-mistake-verbs-under-resources.yaml": (
        False,
        [
            # The apiserver drops "verbs" under the resources entry: said first, with what rule 0
            # then matches.
            (0, "dropped-by-apiserver", "warning"),
            # As enforced, rule 0 drops service accounts' configmap writes at None.
            (0, "identity-writes-dropped", "warning"),
            # Rule 2 logs create tokenreviews at Request: the bearer token is the request body.
            (2, "sensitive-body-logged", "error"),
        ],
    ),
    "08-mistake-star-verb.yaml": (
        True,
        # verbs: ["*"] matches no request: the RBAC rule never applies.
        [(0, "never-matches", "warning")],
    ),
    "09-mistake-removed-groups.yaml": (
        True,
        [
            # extensions and settings.k8s.io are gone; deployments live in apps, not core.
            (1, "removed-group", "warning"),
            (1, "removed-group", "warning"),
            (1, "wrong-group", "warning"),
        ],
    ),
    # The apiserver refuses v1beta1 (removed in 1.24): nothing to lint.
    "10-mistake-v1beta1.yaml": (False, None),
    "11-noisy-service-accounts.yaml": (
        True,
        # Every kube-system service account's writes at None: a stolen controller token could
        # create a ClusterRoleBinding unseen.
        [(0, "identity-writes-dropped", "warning")],
    ),
    # No kind and a trailing empty document: the apiserver loads it, so do we; nothing wrong.
    "12-no-kind-trailing-document.yaml": (True, []),
}


def test_corpus_is_complete_and_documented() -> None:
    files = sorted(p.name for p in CORPUS.glob("*.yaml"))
    assert files == sorted(EXPECTED) and len(files) >= 10
    for name in files:
        header = (CORPUS / name).read_text().split("\n", 1)[0]
        assert header.startswith("# Pattern"), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate_and_lint(name: str) -> None:
    valid, expected = EXPECTED[name]
    path = CORPUS / name
    try:
        load_policy_file(path)
        accepted = True
    except PolicyError:
        accepted = False
    assert accepted is valid
    if expected is None:
        with pytest.raises(PolicyError):
            load_policy_file(path, lenient=True)
        return
    found = [(f.rule, f.code, f.severity) for f in lint(load_policy_file(path, lenient=True))]
    assert found == expected


def test_leak_messages_name_every_pair_worst_first() -> None:
    (finding,) = [f for f in lint(load_policy_file(CORPUS / "06-siem-vendor.yaml")) if f.severity == "error"]
    assert finding.message.startswith(
        "logs credentials at RequestResponse: create tokenreviews (bearer token in the request), "
        "create serviceaccounts/token (token in the response), get/list/watch configmaps (data in the response), "
        "create/update/patch configmaps (data in the request and response), delete/deletecollection configmaps"
    )


def test_configmaps_can_be_raised_to_an_error_by_the_policy(tmp_path: Path) -> None:
    text = (CORPUS / "01-docs-example.yaml").read_text()
    raised = text.replace(
        "kind: Policy\n", "kind: Policy\nmetadata:\n  annotations:\n    lint.kube-audit.io/configmaps: error\n"
    )
    path = tmp_path / "raised.yaml"
    path.write_text(raised)
    codes = [(f.rule, f.code, f.severity) for f in lint(load_policy_file(path))]
    assert (5, "sensitive-body-logged", "error") in codes
    assert (5, "sensitive-body-logged", "error") in [
        (f.rule, f.code, f.severity)
        for f in lint(load_policy_file(CORPUS / "01-docs-example.yaml"), configmaps="error")
    ]


def test_identity_message_says_which_writes_are_lost() -> None:
    (finding,) = [f for f in lint(load_policy_file(CORPUS / "02-cloud-installer.yaml")) if f.rule == 9]
    assert finding.message.startswith(
        "drops update, patch on core nodes/status, pods/status by broad identities system:nodes"
    )

"""Destroy through the real engine and sshd never removes a policy file a manifest still names.

Last session lost lab-master-1 that way: its manifest named the policy and the file was gone (another
stack's destroy had removed it), so the apiserver crash-looped. Here a second pod manifest on the
master (another stack's, or one put back by hand) keeps running with the policy while ours is destroyed.
"""

from __future__ import annotations

import yaml

from components.manifest import planner

from .test_engine_over_ssh import manifest, stack  # noqa: F401  (the fixture)


def test_destroy_keeps_a_policy_file_another_manifest_names(stack) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    pulumi, etc, _tmp = stack
    pulumi("up", "--yes", "--skip-preview")
    policy = etc / "audit-policy" / "apiserver-audit-policy.yaml"
    text = policy.read_text()
    other = yaml.safe_load((etc / "manifests" / "kube-apiserver.yaml").read_text())
    other["metadata"]["name"] = "kube-apiserver-canary"  # another pod: not a stray copy of ours
    (etc / "manifests" / "apiserver-canary.yaml").write_text(yaml.safe_dump(other))

    pulumi("destroy", "--yes", "--skip-preview")
    assert planner.audit_flags(manifest(etc)) == [], "our manifest is turned off"
    assert policy.read_text() == text, "the policy the canary still runs with was removed"

    # Once nothing names it, the same removal goes ahead.
    (etc / "manifests" / "apiserver-canary.yaml").unlink()
    pulumi("up", "--yes", "--skip-preview")
    pulumi("destroy", "--yes", "--skip-preview")
    assert not policy.exists()

"""Drift through the real Pulumi engine against one real sshd host: a hand edit shows in a plain preview
with its reason, `up` repairs it, and the next preview has no changes (no spurious update)."""

from __future__ import annotations

import re

from components.manifest import planner

from .test_engine_over_ssh import manifest, stack  # noqa: F401  (the fixture)


def test_hand_edit_is_named_in_preview_and_repaired(stack) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    pulumi, etc, _tmp = stack
    pulumi("up", "--yes", "--skip-preview")
    pulumi("preview", "--expect-no-changes")

    path = etc / "manifests" / "kube-apiserver.yaml"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if "--audit-policy-file=" not in line))
    policy = etc / "audit-policy" / "apiserver-audit-policy.yaml"
    policy.write_text(policy.read_text() + "# edited\n")

    for args in (("preview", "--diff"), ("preview", "--diff", "--refresh")):
        out = pulumi(*args).stdout
        found = sorted(set(re.findall(r'"(local-1: [^"]+)"', out)))
        assert found[0] == "local-1: --audit-policy-file missing from kube-apiserver.yaml", out
        assert found[1].startswith("local-1: policy file ") and " changed (sha256 " in found[1], out
        assert len(found) == 2, found
        for reason in found:  # once, under the resource that repairs it, not again under the preflight check
            assert out.count(f'"{reason}"') == 1, out
        assert '"local-1 drifted: every master is checked again before the repair"' in out, out
    assert not planner.audit_enabled(manifest(etc)), "preview repaired nothing"

    pulumi("up", "--yes", "--skip-preview")
    assert planner.audit_enabled(manifest(etc))
    assert not policy.read_text().endswith("# edited\n")
    pulumi("preview", "--expect-no-changes")

    pulumi("config", "set", "--path", "kube-audit:drift.read", "false")
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if "--audit-policy-file=" not in line))
    pulumi("preview", "--expect-no-changes")  # what is lost with reading off: this drift is not seen
    pulumi("destroy", "--yes", "--skip-preview")

"""The per-master summary line: what `up` does there, and why (pure)."""

from __future__ import annotations

from components.drift.compare import Drift
from components.drift.summary import (
    NOT_READ,
    POLICY_ONLY,
    REFUSED,
    RESTART,
    UNCHANGED,
    MasterPreview,
    outcome,
    refusal_report,
    summary,
    unreachable_refusal,
)

REFUSAL = ("on root@10.6.0.11:22: exit 2: kube-audit[m1]: preflight refused this master:\n"
           "  - /etc/kubernetes/manifests/kube-apiserver.yaml~ also declares the kube-apiserver pod; the kubelet "
           "may run it instead of /etc/kubernetes/manifests/kube-apiserver.yaml. Move it out of "
           "/etc/kubernetes/manifests and retry; nothing was changed")


def test_each_kind_and_its_reason() -> None:
    restart = Drift(manifest=("m2: --audit-policy-file missing from kube-apiserver.yaml",
                              "m2: volume audit-policy missing from kube-apiserver.yaml"),
                    policy=("m2: policy file p changed",))
    assert outcome(MasterPreview("m2", restart)) == (
        RESTART, "--audit-policy-file missing from kube-apiserver.yaml (+1 more)")
    assert outcome(MasterPreview("m3", Drift(policy=("m3: policy file p changed (sha256 abc…)",)))) == (
        POLICY_ONLY, "policy file p changed (sha256 abc…)")
    assert outcome(MasterPreview("m4", Drift(notes=("m4: the running kube-apiserver lacks x",)))) == (UNCHANGED, "")
    assert outcome(MasterPreview("m5", None, unread="the fact reader did not finish in time")) == (
        NOT_READ, "the fact reader did not finish in time")


def test_a_refusal_wins_and_reads_as_one_line_without_the_node_prefix() -> None:
    what, why = outcome(MasterPreview("m1", Drift(manifest=("m1: x",)), REFUSAL))
    assert what == REFUSED
    assert why.startswith("preflight refused this master: - /etc/kubernetes/manifests/kube-apiserver.yaml~ also")
    assert "\n" not in why and len(why) <= 240 and not why.endswith("nothing was changed")


def test_summary_has_one_line_per_master_in_order() -> None:
    text = summary([MasterPreview("m1", Drift(), REFUSAL), MasterPreview("m2", Drift(manifest=("m2: y",))),
                    MasterPreview("m3", Drift())])
    lines = text.splitlines()
    assert lines[0] == "what `pulumi up` does, per master:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["m1", "m2", "m3"]
    assert lines[2] == "  m2: will restart — y" and lines[3] == "  m3: unchanged"


def test_refusal_report_names_every_refused_master_with_ups_message() -> None:
    report = refusal_report({"m1": REFUSAL, "m3": unreachable_refusal("m3", "cannot connect to root@h:22: refused")},
                            3)
    assert report.startswith("the preflight refuses 2 of 3 masters, so `pulumi up` would stop before changing any")
    assert f"\nm1: {REFUSAL}" in report
    assert "\nm3: cannot connect to root@h:22: refused; `pulumi up` would stop at this master's preflight. " \
           "Start sshd on m3" in report

"""CrossGuard pack: ``pulumi preview --policy-pack policies/guardrails``.

Thin wrapper: every check lives in components/policy/guardrails.py (pure, tested directly). The
pack only picks the resources and props out of the engine's view of this program:

* ``kube-audit:index:AuditPolicyFile`` — props ``policyText``, ``policySource``, ``policyHash``
* ``kube-audit:index:AuditLogging`` — props ``enabled``, ``logMaxAge``, ``logMaxBackup``,
  ``logMaxSize`` (and ``predictedHistoryHours``, ``minHistoryHours`` with a volume sample)

All these props are plain config values, known at preview. Were one unknown, reading it raises
the SDK's UnknownValueError, which pulumi_policy reports as "can't run policy ... during preview"
rather than as a violation; the checks then run on ``pulumi up``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# The pack runs with policies/guardrails as its working dir; the engine lives at the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from components.policy.guardrails import (
    check_policy_text,
    check_prod_enabled,
    check_retention,
)
from components.volume.stack import check_history

POLICY_FILE_TYPE = "kube-audit:index:AuditPolicyFile"
LOGGING_TYPE = "kube-audit:index:AuditLogging"


def stack_of(urn: str) -> str:
    """``urn:pulumi:<stack>::<project>::<type>::<name>`` -> ``<stack>``."""
    head = urn.split("::", 1)[0]
    return head.split(":", 2)[2] if head.count(":") >= 2 else ""


def _whole(value: Any) -> Any:
    """Pulumi sends every number as a float (protobuf Struct): 30.0 -> 30; anything else as is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def validate_policy_file(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != POLICY_FILE_TYPE:
        return
    text = args.props.get("policyText")
    if not isinstance(text, str):
        return  # absent: nothing to check
    source = args.props.get("policySource")
    for violation in check_policy_text(text, source if isinstance(source, str) else args.name):
        report_violation(violation, args.urn)


def validate_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != LOGGING_TYPE:
        return
    names = ("logMaxAge", "logMaxBackup", "logMaxSize")
    missing = [name for name in names if args.props.get(name) is None]
    if missing:  # the apiserver's defaults would apply: unlimited before Kubernetes 1.36
        report_violation(f"audit log retention not set: {', '.join(missing)}", args.urn)
        return
    max_age, max_backup, max_size = (_whole(args.props[name]) for name in names)
    for violation in check_retention(max_age, max_backup, max_size):
        report_violation(violation, args.urn)


def validate_prod_enabled(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != LOGGING_TYPE:
        return
    enabled = args.props.get("enabled")
    if not isinstance(enabled, bool):
        return
    for violation in check_prod_enabled(stack_of(args.urn), enabled):
        report_violation(violation, args.urn)


def validate_history(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != LOGGING_TYPE:
        return
    hours, minimum = args.props.get("predictedHistoryHours"), args.props.get("minHistoryHours")
    if not isinstance(hours, (int, float)) or not isinstance(minimum, (int, float)):
        return  # no kube-audit:volumeSample: nothing predicted
    for violation in check_history(float(hours), float(minimum)):
        report_violation(violation, args.urn)


POLICIES = [
    ResourceValidationPolicy(
        name="audit-policy-valid",
        description="The audit policy loads in kube-apiserver and never logs secret-bearing "
        "bodies (no sensitive-body-logged finding).",
        validate=validate_policy_file,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="audit-log-retention-bounded",
        description="--audit-log-maxage, -maxbackup and -maxsize are all positive (0 means "
        "unlimited before Kubernetes 1.36).",
        validate=validate_retention,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="audit-enabled-in-prod",
        description='Audit logging is enabled on stacks whose name starts with "prod".',
        validate=validate_prod_enabled,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    ResourceValidationPolicy(
        name="audit-history-kept",
        description="At the volume predicted from kube-audit:volumeSample, log rotation keeps at least "
        "kube-audit:volumeMinHistoryHours (default 24) of audit history on each master.",
        validate=validate_history,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]

# Last: the constructor starts the analyzer's gRPC server and blocks.
PolicyPack(name="kube-audit-guardrails", policies=POLICIES)

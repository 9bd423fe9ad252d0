"""Subcommands ``validate``, ``lint`` and ``explain`` (issue 3 §4; CI scripts depend on them).

Exit codes: 0 success; 1 invalid policy (or, for lint, any error finding); 2 usage errors
(argparse's own code). Output formats are documented in components/policy/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from .builtins import NON_RESOURCE_VERBS, RESOURCE_VERBS
from .evaluator import Decision, Request, evaluate
from .findings import Finding
from .lint import lint
from .loader import load_policy_file
from .model import Policy
from .problems import PolicyError, Problem
from .profiles import is_profile_name, resolve_policy


def register(subparsers: Any) -> None:
    """Add the policy subcommands to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "validate",
        help="check audit policy files as strictly as kube-apiserver (and stricter)",
        description="Exit 0 when every file is valid, 1 otherwise. Problems are printed one per "
        "line as FILE:LINE:COL: message. A bare name such as dce-default selects a shipped "
        "profile.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=run_validate)

    p = subparsers.add_parser(
        "lint",
        help="find mistakes the apiserver accepts silently (shadowed rules, leaked secrets, ...)",
        description="Exit 1 when the file is invalid or any finding is an error, else 0.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print a JSON list of findings")
    p.set_defaults(func=run_lint)

    p = subparsers.add_parser(
        "explain",
        help="show which rule and level the apiserver applies to a request",
        description="--resource makes a resource request, --path a non-resource request.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--user", required=True, help="user name, e.g. kube-admin")
    p.add_argument("--group", action="append", default=[], dest="groups", help="user group (repeatable)")
    p.add_argument("--verb", required=True, help="get, list, watch, create, ... (HTTP method in lower case for --path)")
    p.add_argument("--api-group", default="", help='API group ("" = core)')
    p.add_argument("--resource", help="resource, e.g. pods (makes a resource request)")
    p.add_argument("--subresource", default="", help="subresource, e.g. log")
    p.add_argument("--namespace", default="", help='namespace ("" = cluster-scoped)')
    p.add_argument("--name", default="", help="object name from the URL")
    p.add_argument("--path", help="URL path, e.g. /healthz (makes a non-resource request)")
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    p.set_defaults(func=run_explain)


# -- helpers ------------------------------------------------------------------------------------


def _load(value: str) -> Policy:
    """Load a file path, or a shipped profile when ``value`` is a bare name and not a file."""
    path = Path(value)
    if not path.exists() and is_profile_name(value):
        try:
            path = resolve_policy(value, Path.cwd())
        except ValueError as err:
            raise PolicyError([Problem(value, 1, 1, str(err))]) from None
        policy = load_policy_file(path)
        return policy
    return load_policy_file(value)


def _print_problems(err: PolicyError, out: TextIO) -> None:
    for problem in err.problems:
        print(problem, file=out)


# -- validate -----------------------------------------------------------------------------------


def run_validate(args: argparse.Namespace) -> int:
    """``validate FILE...``: problems on stdout, a one-line verdict per file on stderr."""
    status = 0
    for value in args.files:
        try:
            policy = _load(value)
        except PolicyError as err:
            _print_problems(err, sys.stdout)
            print(f"{value}: invalid ({len(err.problems)} problem(s))", file=sys.stderr)
            status = 1
            continue
        print(f"{value}: valid ({len(policy.rules)} rules)", file=sys.stderr)
    return status


# -- lint ---------------------------------------------------------------------------------------


def findings_json(findings: list[Finding]) -> list[dict[str, Any]]:
    """The ``lint --json`` shape."""
    return [{"rule": f.rule, "code": f.code, "severity": f.severity, "message": f.message} for f in findings]


def format_table(policy: Policy, findings: list[Finding]) -> str:
    """Readable lint output: one row per finding, then a summary line."""
    rows = [("RULE", "LINE", "SEVERITY", "CODE", "MESSAGE")]
    for f in findings:
        line = str(policy.rules[f.rule].line) if f.rule is not None else "-"
        rows.append(("-" if f.rule is None else str(f.rule), line, f.severity, f.code, f.message))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows]
    errors = sum(f.severity == "error" for f in findings)
    lines.append(f"{policy.source}: {errors} error(s), {len(findings) - errors} warning(s)")
    return "\n".join(lines)


def run_lint(args: argparse.Namespace) -> int:
    """``lint FILE [--json]``: exit 1 when invalid or any finding is an error."""
    try:
        policy = _load(args.file)
    except PolicyError as err:
        if args.json:
            # Keep stdout a findings list: invalid-policy entries carry the positioned problems.
            invalid = [Finding(None, "invalid-policy", "error", str(p)) for p in err.problems]
            print(json.dumps(findings_json(invalid), indent=2))
        else:
            _print_problems(err, sys.stdout)
        return 1
    findings = lint(policy)
    if args.json:
        print(json.dumps(findings_json(findings), indent=2))
    elif findings:
        print(format_table(policy, findings))
    else:
        print(f"{policy.source}: no findings")
    return 1 if any(f.severity == "error" for f in findings) else 0


# -- explain ------------------------------------------------------------------------------------


def request_from_args(args: argparse.Namespace) -> Request:
    """Build the Request; exactly one of --resource and --path must be given."""
    if (args.resource is None) == (args.path is None):
        raise ValueError(
            "explain: give exactly one of --resource (a resource request) or --path (a non-resource request)"
        )
    return Request(
        user=args.user,
        groups=tuple(args.groups),
        verb=args.verb,
        api_group=args.api_group if args.resource is not None else "",
        resource=args.resource or "",
        subresource=args.subresource if args.resource is not None else "",
        namespace=args.namespace if args.resource is not None else "",
        name=args.name if args.resource is not None else "",
        path=args.path or "",
        resource_request=args.resource is not None,
    )


def decision_json(decision: Decision) -> dict[str, Any]:
    """The ``explain --json`` shape."""
    return {
        "level": decision.level,
        "rule": decision.rule,
        "omitStages": list(decision.omit_stages),
        "omitManagedFields": decision.omit_managed_fields,
    }


def format_decision(policy: Policy, decision: Decision) -> str:
    """Readable explain output, with the matching rule's source text."""
    stages = ", ".join(decision.omit_stages) or "(none)"
    lines = [f"level:             {decision.level}"]
    if decision.rule is None:
        lines.append("rule:              none matched (the apiserver's default: level None)")
    else:
        rule = policy.rules[decision.rule]
        lines.append(f"rule:              {decision.rule} ({policy.source}:{rule.line})")
    lines += [
        f"omitStages:        {stages}",
        f"omitManagedFields: {str(decision.omit_managed_fields).lower()}",
    ]
    if decision.rule is not None:
        start = policy.rules[decision.rule].line
        text = policy.rule_text(decision.rule).splitlines()
        lines.append("")
        lines += [f"{start + i:>5} | {line}" for i, line in enumerate(text)]
    return "\n".join(lines)


def run_explain(args: argparse.Namespace) -> int:
    """``explain FILE --user U --verb V (--resource R | --path URL) ...``."""
    try:
        request = request_from_args(args)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    try:
        policy = _load(args.file)
    except PolicyError as err:
        _print_problems(err, sys.stderr)
        return 1
    decision = evaluate(policy, request)
    known = RESOURCE_VERBS if request.is_resource_request else NON_RESOURCE_VERBS
    if request.verb not in known:
        # Still answered as asked, but such a request never reaches the policy from the apiserver.
        print(
            f"note: the apiserver never sends verb {request.verb!r} here; it uses {', '.join(known)}", file=sys.stderr
        )
    if args.json:
        print(json.dumps(decision_json(decision)))
    else:
        print(format_decision(policy, decision))
    return 0

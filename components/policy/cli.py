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

from .evaluator import Decision, evaluate
from .explain_args import UsageError, request_from_args
from .files import load_policy_file
from .findings import Finding, plural
from .lint import lint
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
        description="Exit 1 when a file is invalid or any finding is an error, else 0. A policy "
        "kube-apiserver loads is linted as the apiserver enforces it, after a warning for each "
        "field it drops.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
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
    p.add_argument("--api-group", help='API group (default "" = core)')
    p.add_argument("--resource", help="resource, e.g. pods or pods/exec (makes a resource request)")
    p.add_argument("--subresource", help="subresource, e.g. log (or write --resource pods/log)")
    p.add_argument("--namespace", help='namespace (default "" = cluster-scoped or all namespaces)')
    p.add_argument("--name", help="object name from the URL")
    p.add_argument("--path", help="URL path, e.g. /healthz (makes a non-resource request)")
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    p.set_defaults(func=run_explain)


# -- helpers ------------------------------------------------------------------------------------


def _load(value: str, lenient: bool = False) -> Policy:
    """Load a file path, or a shipped profile when ``value`` is a bare name and not a file."""
    path = Path(value)
    if not path.exists() and is_profile_name(value):
        try:
            path = resolve_policy(value, Path.cwd())
        except ValueError as err:
            raise PolicyError([Problem(value, 1, 1, str(err))]) from None
        return load_policy_file(path, lenient=lenient)
    return load_policy_file(value, lenient=lenient)


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
            print(f"{value}: invalid ({plural(len(err.problems), 'problem')})", file=sys.stderr)
            status = 1
            continue
        print(f"{value}: valid ({plural(len(policy.rules), 'rule')})", file=sys.stderr)
    return status


# -- lint ---------------------------------------------------------------------------------------


def findings_json(source: str, findings: list[Finding]) -> list[dict[str, Any]]:
    """The ``lint --json`` shape."""
    return [
        {
            "file": source,
            "line": f.line,
            "column": f.column,
            "rule": f.rule,
            "code": f.code,
            "severity": f.severity,
            "message": f.message,
        }
        for f in findings
    ]


def format_table(policy: Policy, findings: list[Finding]) -> str:
    """Readable lint output: one row per finding, then a summary line."""
    rows = [("RULE", "LINE", "SEVERITY", "CODE", "MESSAGE")]
    for f in findings:
        rows.append(("-" if f.rule is None else str(f.rule), str(f.line), f.severity, f.code, f.message))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows]
    errors = sum(f.severity == "error" for f in findings)
    lines.append(f"{policy.source}: {plural(errors, 'error')}, {plural(len(findings) - errors, 'warning')}")
    return "\n".join(lines)


def run_lint(args: argparse.Namespace) -> int:
    """``lint FILE... [--json]``: exit 1 when a file is invalid or any finding is an error."""
    status = 0
    every: list[dict[str, Any]] = []
    for value in args.files:
        try:
            policy = _load(value, lenient=True)
        except PolicyError as err:
            status = 1
            if args.json:
                # Keep stdout a findings list: invalid-policy entries carry the positioned problems.
                every += [
                    {
                        "file": p.source,
                        "line": p.line,
                        "column": p.col,
                        "rule": None,
                        "code": "invalid-policy",
                        "severity": "error",
                        "message": p.message,
                    }
                    for p in err.problems
                ]
            else:
                _print_problems(err, sys.stdout)
            continue
        findings = lint(policy)
        if any(f.severity == "error" for f in findings):
            status = 1
        if args.json:
            every += findings_json(policy.source, findings)
        elif findings:
            print(format_table(policy, findings))
        else:
            print(f"{policy.source}: no findings")
    if args.json:
        print(json.dumps(every, indent=2))
    return status


# -- explain ------------------------------------------------------------------------------------


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
        request = request_from_args(
            user=args.user,
            groups=args.groups,
            verb=args.verb,
            resource=args.resource,
            path=args.path,
            api_group=args.api_group,
            subresource=args.subresource,
            namespace=args.namespace,
            name=args.name,
        )
    except UsageError as err:
        print(err, file=sys.stderr)
        return 2
    try:
        policy = _load(args.file, lenient=True)
    except PolicyError as err:
        _print_problems(err, sys.stderr)
        return 1
    for problem in policy.dropped:
        # Answered for the policy as kube-apiserver enforces it; say what it drops first.
        print(f"warning: {problem}", file=sys.stderr)
    decision = evaluate(policy, request)
    if args.json:
        print(json.dumps(decision_json(decision)))
    else:
        print(format_decision(policy, decision))
    return 0

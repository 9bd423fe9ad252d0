"""Lint time and peak memory on large generated policies (issue 10 §6).

    python benchmarks/bench_lint.py [--rules 200 2000] [--names 100000] [--repeat 1]

Prints numbers; it is not a test. Each size is linted in a fresh child process so that peak RSS
(``ru_maxrss``) belongs to that size alone. Targets: 200 rules under 1 s, 2,000 rules under 10 s
and 500 MB. The policies mix the patterns of real ones: per-team users and groups, namespaces,
resources across built-in and CRD groups, resourceNames, non-resource URLs, a Metadata rule for
secrets and a catch-all, so every lint check has work to do.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GROUPS = [
    ("", ["pods", "services", "configmaps", "endpoints", "pods/log", "pods/exec", "nodes/status"]),
    ("apps", ["deployments", "statefulsets", "daemonsets", "deployments/scale"]),
    ("batch", ["jobs", "cronjobs"]),
    ("rbac.authorization.k8s.io", ["roles", "rolebindings", "clusterroles"]),
    ("networking.k8s.io", ["ingresses", "networkpolicies"]),
]
VERB_SETS = [["get", "list", "watch"], ["create", "update", "patch", "delete"], ["get"], ["update", "patch"]]
LEVELS = ["None", "Metadata", "Request", "RequestResponse"]


def generate(rules: int, names: int = 0) -> str:
    """A valid policy with ``rules`` rules (plus a secrets rule and a catch-all)."""
    out = [
        "apiVersion: audit.k8s.io/v1",
        "kind: Policy",
        "omitStages: [RequestReceived]",
        "rules:",
        "  - level: Metadata",
        "    resources:",
        '      - group: ""',
        "        resources: [secrets, serviceaccounts/token]",
        "      - group: authentication.k8s.io",
        "        resources: [tokenreviews]",
    ]
    if names:
        listed = ", ".join(f"cm-{i}" for i in range(names))
        out += [
            "  - level: Metadata",
            "    resources:",
            '      - group: ""',
            "        resources: [configmaps]",
            f"        resourceNames: [{listed}]",
        ]
    bodies: list[list[str]] = []
    for i in range(rules):
        level = LEVELS[(i // 6) % 4]
        if i % 10 == 9:
            # A copy of an earlier rule at another level: shadowed, as in long hand-edited policies.
            bodies.append([f"  - level: {LEVELS[(i + 1) % 4]}", *bodies[i - 4][1:]])
            continue
        body = [f"  - level: {level}"]
        kind = i % 6
        if kind == 0:
            body.append(f"    users: [system:serviceaccount:team-{i % 50}:sa-{i}]")
        elif kind == 1:
            body.append(f"    userGroups: [team-{i % 40}, oncall-{i % 7}]")
        elif kind == 2:
            body.append(f"    namespaces: [ns-{i % 60}, ns-{(i + 1) % 60}]")
        if kind == 5:
            body.append(f"    nonResourceURLs: [/apis/x{i}/*, /metrics/{i}]")
            bodies.append(body)
            continue
        body.append(f"    verbs: [{', '.join(VERB_SETS[i % len(VERB_SETS)])}]")
        group, resources = GROUPS[i % len(GROUPS)]
        picked = [resources[(i + k) % len(resources)] for k in range(2)]
        if kind == 3:
            group, picked = f"crd{i % 25}.example.com", [f"widgets{i % 13}", f"gadgets{i % 11}/status"]
        body.append("    resources:")
        body.append(f'      - group: "{group}"')
        body.append(f"        resources: [{', '.join(picked)}]")
        if kind == 4:
            body.append(f"        resourceNames: [obj-{i}, obj-{i + 1}]")
        bodies.append(body)
    out += [line for body in bodies for line in body]
    out.append("  - level: Metadata")
    return "\n".join(out) + "\n"


def measure(rules: int, names: int) -> dict[str, float]:
    """Lint one generated policy in this process; returns seconds, findings and peak RSS."""
    from components.policy import lint, load_policy

    text = generate(rules, names)
    start = time.perf_counter()
    policy = load_policy(text, f"generated-{rules}.yaml")
    loaded = time.perf_counter()
    findings = lint(policy)
    done = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rules": len(policy.rules),
        "names": names,
        "load_s": loaded - start,
        "lint_s": done - loaded,
        "findings": len(findings),
        "peak_mb": peak_mb,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, nargs="+", default=[200, 2000], help="rule counts to generate")
    parser.add_argument("--names", type=int, default=100_000, help="also lint one rule with this many resourceNames")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return 0
    cases = [(n, 0) for n in args.rules] + ([(10, args.names)] if args.names else [])
    print(f"{'rules':>6} {'names':>7} {'load s':>8} {'lint s':>8} {'findings':>8} {'peak MB':>8}")
    for rules, names in cases:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(rules), str(names)], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout)
        print(
            f"{r['rules']:>6} {r['names']:>7} {r['load_s']:>8.2f} {r['lint_s']:>8.2f} "
            f"{r['findings']:>8} {r['peak_mb']:>8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

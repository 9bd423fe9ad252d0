"""Explain throughput: evaluations per second for a profile, Python vs kube-apiserver's Go checker.

    python benchmarks/bench_explain.py [--profile dce-default] [--seconds 2]

Prints numbers; it is not a test. The Go side is the parity program (tests/parity/main.go) built
from k8s.io/apiserver into ~/.cache/kube-audit/parity; it is skipped when Go is not installed.
Both sides evaluate the same request mix (every rule of dce-default is hit, plus misses), single
threaded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.policy import Request, evaluate, load_policy_file  # noqa: E402
from components.policy.profiles import resolve_policy  # noqa: E402
from tests.parity import gobuild  # noqa: E402


def request_mix() -> list[Request]:
    """A realistic mix: controllers, kubelets, admins, users; reads, writes, probes, CRDs."""

    def res(user: str, verb: str, resource: str, **kw: str) -> Request:
        groups = tuple(kw.pop("groups").split(",")) if "groups" in kw else ()
        return Request(user=user, groups=groups, verb=verb, resource=resource, resource_request=True, **kw)

    def url(user: str, verb: str, path: str) -> Request:
        return Request(user=user, verb=verb, path=path, resource_request=False)

    return [
        res("system:kube-proxy", "watch", "endpoints"),
        res("system:unsecured", "get", "configmaps", namespace="kube-system", name="ingress-uid"),
        res("kubelet", "get", "nodes", name="n1"),
        res("system:node:n1", "get", "nodes", subresource="status", name="n1", groups="system:nodes"),
        res("system:kube-controller-manager", "update", "endpoints", namespace="kube-system", name="e"),
        res("system:apiserver", "get", "namespaces", name="default"),
        res("system:kube-controller-manager", "list", "pods", api_group="metrics.k8s.io"),
        url("system:anonymous", "get", "/healthz"),
        url("system:anonymous", "get", "/version"),
        res("system:node:n1", "create", "events", namespace="default", groups="system:nodes"),
        res("system:unsecured", "delete", "pods", namespace="default", name="p"),
        res("kube-admin", "get", "pods", namespace="default", name="web"),
        res("kube-admin", "list", "deployments", api_group="apps"),
        res("system:node:n1", "patch", "pods", subresource="status", namespace="default", name="web"),
        res("system:node:n1", "update", "leases", api_group="coordination.k8s.io", namespace="kube-node-lease"),
        res("alice", "get", "secrets", namespace="default", name="db", groups="devs"),
        res("alice", "create", "tokenreviews", api_group="authentication.k8s.io"),
        res("kube-admin", "create", "deployments", api_group="apps", namespace="default"),
        res("bob", "list", "pods", namespace="default", groups="devs"),
        res("bob", "watch", "deployments", api_group="apps", namespace="default"),
        res("bob", "create", "pods", namespace="default"),
        res("bob", "patch", "clusterroles", api_group="rbac.authorization.k8s.io", name="edit"),
        res("bob", "get", "widgets", api_group="example.com", namespace="default", name="w"),
        url("bob", "get", "/apis"),
    ]


def bench_python(policy_path: Path, requests: list[Request], seconds: float) -> tuple[int, float]:
    policy = load_policy_file(policy_path)
    evaluate(policy, requests[0])  # compile outside the timed loop
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for request in requests:
            evaluate(policy, request)
        n += len(requests)
    return n, elapsed


def bench_go(policy_path: Path, requests: list[Request], seconds: float) -> tuple[int, float] | str:
    try:
        binary = gobuild.build()
    except (gobuild.GoMissingError, gobuild.GoBuildError) as err:
        return str(err)
    payload = {
        "mode": "bench",
        "policy": policy_path.read_text(),
        "seconds": seconds,
        "requests": [gobuild.go_request(r) for r in requests],
    }
    out = subprocess.run([str(binary)], input=json.dumps(payload), capture_output=True, text=True, check=True)
    answer = json.loads(out.stdout)
    return int(answer["evaluations"]), float(answer["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="dce-default", help="profile name or policy file")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each side's timed loop")
    args = parser.parse_args()
    path = resolve_policy(args.profile, Path.cwd())
    requests = request_mix()
    n, elapsed = bench_python(path, requests, args.seconds)
    py_rate = n / elapsed
    print(f"policy:  {path.name} ({len(load_policy_file(path).rules)} rules), {len(requests)} distinct requests")
    print(f"python:  {py_rate:>12,.0f} evaluations/s  ({n:,} in {elapsed:.2f}s, {1e6 / py_rate:.2f} us each)")
    go = bench_go(path, requests, args.seconds)
    if isinstance(go, str):
        print(f"go:      skipped: {go}")
        return 0
    go_n, go_elapsed = go
    go_rate = go_n / go_elapsed
    print(f"go:      {go_rate:>12,.0f} evaluations/s  ({go_n:,} in {go_elapsed:.2f}s, {1e6 / go_rate:.2f} us each)")
    print(f"ratio:   go is {go_rate / py_rate:.1f}x python")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The lab workload's plan: bounded, re-runnable (everything created is deleted), clients disjoint."""

from __future__ import annotations

from collections import Counter

from lab.workload import IDENTITIES, plan


def _created_and_deleted(ops):  # type: ignore[no-untyped-def]
    created, deleted = [], []
    for op in ops:
        if op.method == "POST" and "tokenreviews" not in op.path:
            created.append(f"{op.path}/{op.body['metadata']['name']}")
        elif op.method == "DELETE":
            deleted.append(op.path)
    return created, deleted


def test_everything_created_is_deleted_so_a_second_run_is_the_same() -> None:
    for client in (0, 3):
        created, deleted = _created_and_deleted(plan(3, client=client))
        assert sorted(created) == sorted(deleted)
    assert plan(3) == plan(3)


def test_it_covers_the_verbs_resources_and_identities_the_issue_names() -> None:
    ops = plan(2)
    assert set(Counter(op.verb for op in ops)) == {"get", "list", "watch", "create", "update", "patch", "delete"}
    for resource in ("secrets", "configmaps", "pods", "events", "leases", "tokenreviews"):
        assert any(f"/{resource}" in op.path for op in ops), resource
    assert {op.who for op in ops} == {*IDENTITIES, "admin"}
    assert "system:nodes" in IDENTITIES["node"] and "kube-controller-manager" in IDENTITIES["controller"]


def test_clients_use_disjoint_names_and_only_client_0_is_the_node() -> None:
    names = [{p for p in _created_and_deleted(plan(1, client=c))[0] if "kube-node-lease" not in p} for c in (0, 1)]
    assert not names[0] & names[1]
    assert all(op.who != "node" or "kube-node-lease" not in op.path for op in plan(1, client=1))
    assert not any(op.watch for op in plan(2, watches=False))
    assert all("resourceVersion=0" in op.path for op in plan(1, cached_lists=True) if op.verb == "list")
    assert [op.path for op in plan(1, cached_lists=True) if op.verb == "list-consistent"] == [
        "/api/v1/namespaces/kalab-workload/pods"]
    assert not any("resourceVersion" in op.path for op in plan(1) if op.verb == "list")

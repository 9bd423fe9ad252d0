"""The product on real parts: Pulumi engine + providers, sshd masters, kube-apiserver restarted by
its static-pod manifest, etcd, Helm. One lab, one stack, one lifecycle, in order:

  preview (enable) -> up (enable) -> up again + refresh (no change) -> policy content change -> disable

Each rollout runs under a /readyz poller of every master; the measured minimum number of ready
apiservers and each master's not-ready span go into the session's measurements.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator

import pytest
import yaml

from .harness import E2E, KUBE_AUDIT_TAG, expected_level
from .kubeadm_lab import restore_manifests, snapshot_manifests

pytestmark = pytest.mark.e2e

POLICY_NS = "kalab-e2e-policy"
MARK_RULE = f"""  # e2e: configmaps in {POLICY_NS} with bodies (proves a new policy is in force)
  - level: RequestResponse
    namespaces: ["{POLICY_NS}"]
    resources:
      - group: ""
        resources: ["configmaps"]
"""


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(e2e: E2E) -> dict:
    return {h.name: {"manifest": _digest(h.manifest), "starts": e2e.status(h)["starts"],
                     "pid": e2e.status(h)["apiserver_pid"], "etc": e2e.files_in(h.etc_kubernetes),
                     "log": e2e.files_in(h.var_log_kubernetes)} for h in e2e.hosts}


def _volume_names(e2e: E2E, h) -> tuple[set[str], set[str]]:
    pod = e2e.manifest(h)
    c = e2e.container(h)
    return ({v["name"] for v in pod["spec"].get("volumes") or []},
            {m["name"] for m in c.get("volumeMounts") or []})


def _check_levels(e2e: E2E, h, evs: list[dict], policy: dict) -> None:
    """Every event carries the level and stages the policy gives its request."""
    wrong = []
    for ev in evs:
        level, omit = expected_level(policy, ev)
        if ev.get("level") != level or ev.get("stage") in omit:
            wrong.append((ev.get("level"), level, ev.get("stage"), ev.get("verb"), ev.get("requestURI"),
                          (ev.get("user") or {}).get("username")))
    assert not wrong, f"{h.name}: events whose level/stage disagree with the policy (got, want, ...): {wrong[:10]}"


def _poll_report(e2e: E2E, label: str, poller) -> dict:
    report = poller.stop()
    e2e.m[f"availability_{label}"] = report
    return report


@pytest.fixture(scope="module", autouse=True)
def leave_as_found(e2e: E2E) -> Iterator[None]:
    """A lifecycle stopped at a failed step would leave audit on under the session's stack, and every
    later module would start from (and restore to) that; so turn it off again, the product's way."""
    found = snapshot_manifests(e2e)
    yield
    if getattr(TestLifecycle, "_failed_step", None):
        e2e.pulumi("destroy", "--yes", "--skip-preview", check=False)
        restore_manifests(e2e, found)


class TestLifecycle:
    incremental = True

    def test_preview_of_enabling_shows_each_master_and_runs_nothing(self, e2e: E2E):
        before = _snapshot(e2e)
        r = e2e.pulumi("preview", "--diff")
        out = r.stdout
        # The kubernetes provider (insight-agent) comes from the lab's PULUMI_HOME (lab/plugins.py).
        assert "from $PATH" not in out + r.stderr, out + r.stderr
        for h in e2e.hosts:
            # Each master's change appears, in its own block, with the audit settings it gets.
            header = f"ApiServerAuditChange::audit-apiserver-{h.name}]"
            assert header in out, f"{h.name} missing from the preview:\n{out}"
            block = out[out.index(header):]
            block = block[:block.find("kube-audit:index:", len(header))]
            for flag in ("--audit-policy-file=", "--audit-log-path=", "--audit-log-maxage="):
                assert flag in block, f"{flag} not shown for {h.name}:\n{block}"
        assert "kube-audit.io/policy-hash" in out or "policyHash" in out
        time.sleep(1.0)
        assert _snapshot(e2e) == before, "preview changed something on a master"
        for h in e2e.hosts:
            assert not h.audit_log_dir.exists()
            assert not e2e.policy_on_host(h).exists()
        assert KUBE_AUDIT_TAG not in e2e.fluent_bit_config()

    def test_up_enables_audit_one_master_at_a_time(self, e2e: E2E):
        ds_before = e2e.fluent_bit_daemonset()
        before = _snapshot(e2e)
        # The restart's slowest part in a real cluster is draining long-lived watches (up to the 30 s
        # grace of kubeadm's manifest): this rollout keeps one open on every master, and the
        # availability below is measured with that drain.
        watches = e2e.long_watches()
        poller = e2e.poller()
        up = e2e.timed_up("enable")
        assert "from $PATH" not in up.stdout + up.stderr, up.stdout + up.stderr
        avail = _poll_report(e2e, "enable", poller)
        cuts = watches.stop()
        e2e.m["long_watch_cuts_enable_s"] = cuts
        assert all(cuts[h.name] for h in e2e.hosts), f"a master restarted with no watch open: {cuts}"
        # Each restart waited for its watch (cut near the end of the grace period, not at SIGTERM).
        drains = {n: max(spans) for n, spans in avail["not_ready_spans_s"].items() if spans}
        assert all(d >= 20 for d in drains.values()), f"a restart did not drain its watch: {drains}"
        for h in e2e.hosts:
            st = e2e.status(h)
            assert st["state"] == "running" and st["starts"] == before[h.name]["starts"] + 1, (h.name, st)
            flags = e2e.audit_flags(h)
            assert any(f.startswith("--audit-policy-file=") for f in flags), flags
            assert any(f.startswith("--audit-log-path=") for f in flags), flags
            cmdline = e2e.running_cmdline(h)
            assert set(flags) <= set(cmdline), f"{h.name}: the running apiserver lacks {set(flags) - set(cmdline)}"
            vols, mounts = _volume_names(e2e, h)
            assert {"audit-policy", "audit-logs"} <= vols and {"audit-policy", "audit-logs"} <= mounts
            ann = e2e.manifest(h)["metadata"].get("annotations") or {}
            assert ann.get("kube-audit.io/policy-hash"), ann
            policy = e2e.policy_on_host(h)
            assert policy.is_file() and oct(policy.stat().st_mode & 0o777) == "0o600"
            assert ann["kube-audit.io/policy-hash"] == hashlib.sha256(policy.read_bytes()).hexdigest()
            # Nothing but the manifest (and dot-files) in the manifests dir.
            assert [p.name for p in (h.etc_kubernetes / "manifests").iterdir() if not p.name.startswith(".")] == [
                "kube-apiserver.yaml"]
        # At most one apiserver down at any moment.
        assert avail["min_ready"] >= avail["masters"] - 1, avail
        cm = e2e.fluent_bit_config()
        assert KUBE_AUDIT_TAG in cm and "/var/log/*/audit/*.log" in cm, cm  # DCE's documented glob
        ds = e2e.fluent_bit_daemonset()
        assert ds["metadata"]["generation"] == ds_before["metadata"]["generation"] + 1, "restarted once"
        tmpl_before = ds_before["spec"]["template"]["metadata"].get("annotations") or {}
        tmpl = ds["spec"]["template"]["metadata"].get("annotations") or {}
        assert tmpl != tmpl_before, tmpl
        e2e.m["daemonset_annotations_after_enable"] = tmpl

    def test_audit_events_have_the_profile_levels_on_every_master(self, e2e: E2E):
        for h in e2e.hosts:
            policy = yaml.safe_load(e2e.policy_on_host(h).read_text())
            c = e2e.client(h)
            mark = e2e.log_mark(h)
            sname, saname = f"e2e-secret-{h.index}", f"e2e-sa-{h.index}"
            c.post("/api/v1/namespaces/default/secrets", {"apiVersion": "v1", "kind": "Secret",
                                                          "metadata": {"name": sname}, "stringData": {"pw": "s3cr3t"}})
            c.get(f"/api/v1/namespaces/default/secrets/{sname}")
            c.post("/api/v1/namespaces/default/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                                  "metadata": {"name": saname}})
            read = e2e.wait_event(h, mark, lambda ev, n=sname: ev.get("verb") == "get"
                                  and (ev.get("objectRef") or {}).get("name") == n, f"the read of Secret {sname}")
            assert read["level"] == "Metadata", read
            assert "requestObject" not in read and "responseObject" not in read, read
            assert "s3cr3t" not in json.dumps(read)
            write = e2e.wait_event(h, mark, lambda ev, n=saname: ev.get("verb") == "create"
                                   and (ev.get("objectRef") or {}).get("name") == n, f"the create of {saname}")
            want, _ = expected_level(policy, write)
            assert write["level"] == want == "RequestResponse", write
            assert write["requestObject"]["metadata"]["name"] == saname
            assert write["responseObject"]["metadata"]["uid"]
            secret_create = e2e.wait_event(h, mark, lambda ev, n=sname: ev.get("verb") == "create"
                                           and (ev.get("objectRef") or {}).get("name") == n, "the Secret create")
            assert "s3cr3t" not in json.dumps(secret_create) and "czNjcjN0" not in json.dumps(secret_create)
            _check_levels(e2e, h, e2e.all_events(h), policy)
            e2e.m.setdefault("audit_events_per_master", {})[h.name] = len(e2e.all_events(h))

    def test_second_up_changes_nothing_and_refresh_finds_no_drift(self, e2e: E2E):
        before = _snapshot(e2e)
        ds_gen = e2e.fluent_bit_daemonset()["metadata"]["generation"]
        e2e.pulumi("preview", "--expect-no-changes")
        r = e2e.timed_up("noop")
        assert not re.search(r"^\s+[~+-]\d* to (update|create|delete|replace)", r.stdout, re.M), r.stdout
        r = e2e.pulumi("refresh", "--yes", "--expect-no-changes")
        after = _snapshot(e2e)
        for name in before:  # the log dir grows; everything else is identical
            assert {k: v for k, v in after[name].items() if k != "log"} == \
                   {k: v for k, v in before[name].items() if k != "log"}, name
        assert e2e.fluent_bit_daemonset()["metadata"]["generation"] == ds_gen
        e2e.pulumi("preview", "--expect-no-changes")

    def test_policy_content_change_restarts_each_apiserver_and_takes_effect(self, e2e: E2E):
        base = e2e.policy_on_host(e2e.hosts[0]).read_text()
        assert "\nrules:\n" in base
        custom = e2e.lab.state / "e2e-policy.yaml"
        custom.write_text(base.replace("\nrules:\n", "\nrules:\n" + MARK_RULE, 1))
        e2e.ensure_namespace(POLICY_NS)
        flags_before = {h.name: e2e.audit_flags(h) for h in e2e.hosts}
        before = _snapshot(e2e)
        ann_before = {h.name: e2e.manifest(h)["metadata"]["annotations"]["kube-audit.io/policy-hash"]
                      for h in e2e.hosts}
        e2e.config_set("kube-audit:policy", str(custom))
        poller = e2e.poller()
        e2e.timed_up("policy_change")
        avail = _poll_report(e2e, "policy_change", poller)
        assert avail["min_ready"] >= avail["masters"] - 1, avail
        for h in e2e.hosts:
            assert e2e.policy_on_host(h).read_text() == custom.read_text()
            assert e2e.audit_flags(h) == flags_before[h.name], "only the policy content changed"
            ann = e2e.manifest(h)["metadata"]["annotations"]["kube-audit.io/policy-hash"]
            assert ann != ann_before[h.name]
            assert e2e.status(h)["starts"] == before[h.name]["starts"] + 1, "restarted exactly once"
            mark = e2e.log_mark(h)
            name = f"e2e-cm-{h.index}"
            e2e.client(h).post(f"/api/v1/namespaces/{POLICY_NS}/configmaps",
                               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                                "data": {"k": "v"}})
            ev = e2e.wait_event(h, mark, lambda ev, n=name: ev.get("verb") == "create"
                                and (ev.get("objectRef") or {}).get("name") == n, f"the create of {name}")
            assert ev["level"] == "RequestResponse" and ev["requestObject"]["data"] == {"k": "v"}, ev
            _check_levels(e2e, h, e2e.events_since(h, mark), yaml.safe_load(custom.read_text()))

    def test_disable_removes_everything_but_the_logs(self, e2e: E2E):
        logs_before = {h.name: {p.name: p.stat().st_size for p in h.audit_log_dir.iterdir()} for h in e2e.hosts}
        ds_before = e2e.fluent_bit_daemonset()
        before = _snapshot(e2e)
        e2e.config_set("kube-audit:enabled", "false")
        poller = e2e.poller()
        e2e.timed_up("disable")
        avail = _poll_report(e2e, "disable", poller)
        assert avail["min_ready"] >= avail["masters"] - 1, avail
        e2e.wait_all_ready()
        for h in e2e.hosts:
            assert e2e.audit_flags(h) == []
            assert not any(a.startswith("--audit-") for a in e2e.running_cmdline(h))
            vols, mounts = _volume_names(e2e, h)
            assert not {"audit-policy", "audit-logs"} & (vols | mounts), (vols, mounts)
            ann = e2e.manifest(h)["metadata"].get("annotations") or {}
            assert "kube-audit.io/policy-hash" not in ann
            assert e2e.status(h)["starts"] == before[h.name]["starts"] + 1
            for fname, size in logs_before[h.name].items():
                p = h.audit_log_dir / fname
                assert p.exists() and p.stat().st_size >= size, f"{h.name}: audit log {fname} was not kept"
            mark = e2e.log_mark(h)
            e2e.client(h).get("/api/v1/namespaces/default/secrets")
            time.sleep(1.0)
            assert e2e.events_since(h, mark) == [], f"{h.name} still audits after disable"
        cm = e2e.fluent_bit_config()
        assert KUBE_AUDIT_TAG not in cm
        ds = e2e.fluent_bit_daemonset()
        assert ds["metadata"]["generation"] == ds_before["metadata"]["generation"] + 1
        e2e.pulumi("preview", "--expect-no-changes")

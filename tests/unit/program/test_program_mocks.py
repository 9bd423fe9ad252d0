"""The resource graph under Pulumi mocks: order, inputs, secrets, audit on and off."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pytest

from components.settings import parse_settings

from .conftest import FAKE_KEY, agent_plan, base_config

COMMAND = "pulumi-python:dynamic/kube-audit:RemoteCommand"
FILE = "pulumi-python:dynamic/kube-audit:RemoteFile"


@dataclass
class Recorded:
    typ: str
    name: str
    props: dict[str, Any]
    depends_on: list[pulumi.Resource]
    opts: pulumi.ResourceOptions
    resource: list[pulumi.Resource] = field(default_factory=list)


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.inputs: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.inputs[args.name] = args.inputs
        outputs = dict(args.inputs)
        if args.typ == COMMAND:
            outputs["stdout"] = json.dumps({"changed": True})
        if args.typ == "kubernetes:helm.sh/v3:Release":
            outputs["status"] = {"status": "deployed"}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def build(overrides: dict[str, Any] | None = None, reader: Any = None, kubeadm_observer: Any = None,
          kubernetes: dict[str, str] | None = None, preview: bool = False,
          plan_hook: Any = None) -> tuple[Mocks, dict[str, Recorded], Any]:
    """The program under mocks; without a fact `reader` drift reading is off, without a `kubeadm_observer`
    kubeadm persistence is off (unit tests reach no node and no cluster)."""
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project="kube-audit", stack="dev", preview=preview)
    recorded: dict[str, Recorded] = {}

    def capture(args: pulumi.ResourceTransformationArgs) -> None:
        deps = args.opts.depends_on or []
        recorded[args.name] = Recorded(args.type_, args.name, dict(args.props),
                                       list(deps) if isinstance(deps, list) else [deps], args.opts)
        return None

    pulumi.runtime.register_stack_transformation(capture)
    from components.audit_logging import AuditLogging

    overrides = dict(overrides or {})
    if reader is None:
        overrides.setdefault("drift", {"read": False})
    if kubeadm_observer is None:
        overrides.setdefault("kubeadm", {"persist": False})
    settings = parse_settings(base_config(**overrides), {"sshPrivateKey"}, "dev", kubernetes=kubernetes)
    extra = {k: v for k, v in (("reader", reader), ("kubeadm_observer", kubeadm_observer)) if v is not None}
    plan = agent_plan(settings)
    audit = AuditLogging("audit", settings, plan_hook(plan) if plan_hook else plan, **extra)
    return mocks, recorded, audit


def names_of(resources: list[pulumi.Resource]) -> set[str]:
    return {r._name for r in resources}  # type: ignore[attr-defined]


@pulumi.runtime.test
def test_enabled_graph_orders_policy_then_masters_one_by_one_then_agent() -> Any:
    mocks, rec, audit = build()
    types = sorted({r.typ for r in rec.values()})
    assert types == sorted({
        "kube-audit:index:AuditLogging", "kube-audit:index:NodeProgram", FILE,
        "kube-audit:index:AuditPolicyFile", COMMAND, "kube-audit:index:ApiServerAuditChange",
        "kube-audit:index:InsightAgentAuditCollection", "kubernetes:helm.sh/v3:Release",
        "kubernetes:apps/v1:DaemonSetPatch", "kube-audit:index:ClusterPreflight"})
    # Nothing is written anywhere before every master passed its preflight.
    preflights = {f"audit-preflight-master-{i}" for i in (1, 2, 3)}
    for i in (1, 2, 3):
        assert names_of(rec[f"audit-preflight-master-{i}"].depends_on) == {f"audit-program-master-{i}"}
    # Each master's policy file is written in its own turn: master-2's only after master-1's change is
    # proven, so a rollback on master-1 leaves master-2 and master-3 as they were.
    assert names_of(rec["audit-policy-master-1"].depends_on) == {"audit-program-master-1", *preflights}
    assert names_of(rec["audit-policy-master-2"].depends_on) == {"audit-program-master-2", "audit-apiserver-master-1"}
    assert names_of(rec["audit-policy-master-3"].depends_on) == {"audit-program-master-3", "audit-apiserver-master-2"}
    # master-2 waits for master-1's change, master-3 for master-2's; each waits for its policy file.
    change = "audit-apiserver-master-{}-manifest"
    assert names_of(rec[change.format(1)].depends_on) == {"audit-program-master-1", "audit-policy-master-1",
                                                          *preflights}
    assert names_of(rec[change.format(2)].depends_on) == {"audit-program-master-2", "audit-apiserver-master-1",
                                                          "audit-policy-master-2"}
    assert names_of(rec[change.format(3)].depends_on) == {"audit-program-master-3", "audit-apiserver-master-2",
                                                          "audit-policy-master-3"}
    assert names_of(rec["audit-insight-agent"].depends_on) == {"audit-apiserver-master-3"}
    # Every child is parented (the tree in `pulumi preview` shows the architecture).
    for r in rec.values():
        if r.typ != "kube-audit:index:AuditLogging":
            assert r.opts.parent is not None, r.name

    def check(masters: dict[str, Any]) -> None:
        assert set(masters) == {"master-1", "master-2", "master-3"}
        m1 = masters["master-1"]
        assert m1["auditEnabled"] is True and len(m1["policyHash"]) == 64
        assert m1["hostLogPath"] == "/var/log/kubernetes/audit/kube-apiserver-audit.log"
        # Nothing the program outputs, or any plain input it sends, contains the private key.
        assert "PRIVATE KEY" not in json.dumps(masters)
        for name, inputs in mocks.inputs.items():
            plain = json.dumps({k: v for k, v in inputs.items() if k != "connection"}, default=str)
            assert "PRIVATE KEY" not in plain, name

    return audit.masters.apply(check)


@pulumi.runtime.test
def test_manifest_command_request_is_readable_plain_keys() -> Any:
    _, rec, _ = build()
    props = rec["audit-apiserver-master-2-manifest"].props
    request = json.loads(props["stdin"])
    assert request["master"] == "master-2" and request["state"]["enabled"] is True
    assert request["state"]["max_age"] == 30 and request["manifest"] == "/etc/kubernetes/manifests/kube-apiserver.yaml"
    assert props["stdin"].count("\n") > 10, "one key per line, so a preview diff points at the setting"
    assert props["create"] == props["update"] and "apply" in props["create"]
    assert "python3 (3.9 or newer) is required" in props["create"]
    revert = json.loads(props["delete"].split("--request ", 1)[1].strip("'"))
    assert revert["state"]["enabled"] is False, "destroy turns audit off"
    component = rec["audit-apiserver-master-2"].props
    assert component["auditEnabled"] is True and "--audit-log-maxage=30" in component["auditFlags"]

    def check_secret(is_secret: bool) -> None:
        assert is_secret, "the SSH connection (with the private key) is a secret"

    connection = pulumi.Output.from_input(props["connection"])
    return pulumi.Output.from_input(connection.is_secret()).apply(check_secret)


@pulumi.runtime.test
def test_preflight_checks_the_same_request_the_change_gets() -> Any:
    _, rec, _ = build({"rollout": {"readyConsecutive": 5, "auditWriteTimeoutSeconds": 0}})
    check = rec["audit-preflight-master-2"].props
    change = rec["audit-apiserver-master-2-manifest"].props
    assert check["stdin"] == change["stdin"] and "preflight" in check["create"] and check["delete"] is None
    request = json.loads(change["stdin"])
    assert request["ready_consecutive"] == 5 and request["audit_write_timeout"] == 0
    assert request["log_margin_mb"] == 64 and request["pod_log_dir"] == "/var/log/pods"
    assert "--store /etc/kubernetes/tmp/kube-audit-policies" in rec["audit-policy-master-2"].props["create"]


@pulumi.runtime.test
def test_private_key_input_is_secret_on_every_remote_resource() -> Any:
    _, rec, _ = build()
    remote = [r for r in rec.values() if r.typ in (COMMAND, FILE)]
    assert len(remote) == 12, "3 node programs, 3 preflights, 3 policy files, 3 manifest changes"
    checks = []
    for r in remote:
        connection = r.props["connection"]
        assert isinstance(connection, pulumi.Output)
        checks.append(pulumi.Output.all(pulumi.Output.from_input(connection.is_secret()), connection))

    def check(values: list[Any]) -> None:
        for secret, value in values:
            assert secret is True and value["privateKey"] == FAKE_KEY

    return pulumi.Output.all(*checks).apply(check)


@pulumi.runtime.test
def test_policy_file_goes_to_every_master_with_mode_0600() -> Any:
    _, rec, _ = build()
    for i in (1, 2, 3):
        props = rec[f"audit-policy-master-{i}"].props
        assert "write-file" in props["create"] and "--mode 0600" in props["create"]
        assert "remove-file" in props["delete"] and "/var/log" not in props["delete"]
        # Destroy never removes a policy file a manifest on that master still names.
        assert "--keep-if-used-by /etc/kubernetes/manifests/kube-apiserver.yaml" in props["delete"]
        assert props["stdin"].startswith("# dce-default")
    assert rec["audit-policy"].props["policySource"] == "dce-default"


@pulumi.runtime.test
def test_disabled_graph_has_no_policy_file_and_tells_the_agent_off() -> Any:
    _, rec, _ = build({"enabled": "false"})
    assert not any(r.typ == "kube-audit:index:AuditPolicyFile" for r in rec.values())
    request = json.loads(rec["audit-apiserver-master-1-manifest"].props["stdin"])
    assert request["state"]["enabled"] is False
    values = rec["audit-insight-agent-release"].props["values"]
    assert values["global"]["exporters"]["auditLog"]["kubeAudit"]["enabled"] is False
    annotations = rec["audit-insight-agent-fluent-bit-restart"].props["spec"].template.metadata.annotations
    assert annotations == {"kube-audit.io/audit-collection": "kube-audit=off,ghippo-audit=on"}


@pulumi.runtime.test
def test_adopted_release_is_imported_by_namespace_name_and_retained() -> Any:
    _, rec, _ = build()
    release = rec["audit-insight-agent-release"]
    assert release.opts.import_ == "insight-system/insight-agent"
    assert release.opts.retain_on_delete is True
    assert release.props["name"] == "insight-agent" and not release.props.get("reuse_values")
    assert release.props["values"]["global"]["exporters"]["auditLog"]["kubeAudit"]["enabled"] is True


@pulumi.runtime.test
def test_owned_release_is_not_imported_and_may_be_uninstalled() -> Any:
    _, rec, _ = build({"insightAgent": {"adopt": False, "repository": "https://charts.example/insight"}})
    release = rec["audit-insight-agent-release"]
    assert release.opts.import_ is None and not release.opts.retain_on_delete


@pulumi.runtime.test
def test_insight_agent_can_be_left_alone() -> Any:
    _, rec, _ = build({"insightAgent": {"enabled": False}})
    assert not any(r.typ.startswith("kubernetes:") for r in rec.values())


@pytest.fixture(autouse=True)
def _fresh_stack_transformations() -> Any:
    from pulumi.runtime import settings

    yield
    settings.reset_options() if hasattr(settings, "reset_options") else None


@pulumi.runtime.test
def test_skip_await_reaches_the_fluent_bit_patch() -> Any:
    _, rec, _ = build({"insightAgent": {"skipAwait": True}})
    assert rec["audit-insight-agent-fluent-bit-restart"].props["metadata"].annotations == {"pulumi.com/skipAwait": "true"}
    assert rec["audit-insight-agent-release"].props["skip_await"] is True
    _, rec, _ = build()
    assert rec["audit-insight-agent-fluent-bit-restart"].props["metadata"].annotations is None


@pulumi.runtime.test
def test_release_keeps_the_installed_chart_and_passes_the_operators_values() -> Any:
    _, rec, _ = build()
    props = rec["audit-insight-agent-release"].props
    assert (props["chart"], props["version"], props.get("repository_opts")) == (
        "insight-release/insight-agent", "0.9.1", None)
    assert props["values"]["fluent-bit"] == {"image": {"repository": "registry.local/fluent-bit"}}
    assert not props.get("reuse_values") and not props.get("reset_values")
    assert rec["audit-insight-agent"].props["chartVersion"] == "0.9.1"


KUBECONFIG = """apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://10.6.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
"""


@pulumi.runtime.test
def test_drifted_fluent_bit_config_is_repaired_through_the_release_and_checked_last() -> Any:
    import dataclasses

    from components.insight_agent.collect import CollectionPlan

    why = "insight-system/insight-agent-fluent-bit-config: no [INPUT] tagged audit_log.ghippo.*"
    repair = "kube-audit repair after revision 3: 1 FluentBit input problem(s)"
    collect = CollectionPlan("insight-system/insight-agent-fluent-bit-config",
                             "/var/log/kubernetes/audit/kube-apiserver-audit.log", True, True, (why,), repair, ())
    _, rec, _ = build(kubernetes={"kubeconfig": KUBECONFIG}, preview=True,
                      plan_hook=lambda p: dataclasses.replace(p, description=repair, collection=collect))
    assert rec["audit-insight-agent-release"].props["description"] == repair
    annotations = rec["audit-insight-agent-fluent-bit-restart"].props["spec"].template.metadata.annotations
    assert annotations["kube-audit.io/audit-collection"].startswith("kube-audit=on,ghippo-audit=on,repair=")
    check = rec["audit-insight-agent-fluent-bit-config-check"]
    assert check.typ == "pulumi-python:dynamic/kube-audit:FluentBitConfigCheck"
    assert (check.props["drift"], check.props["kubeAudit"], check.props["ghippo"]) == ([why], True, True)
    assert names_of(check.depends_on) == {"audit-insight-agent-fluent-bit-restart"}
    # Without a repair, nothing new on the Release or FluentBit: an existing stack sees no change.
    _, plain, _ = build(kubernetes={"kubeconfig": KUBECONFIG},
                        plan_hook=lambda p: dataclasses.replace(p, collection=dataclasses.replace(
                            collect, drift=(), description=None)))
    assert plain["audit-insight-agent-release"].props.get("description") is None
    assert plain["audit-insight-agent-fluent-bit-restart"].props["spec"].template.metadata.annotations == {
        "kube-audit.io/audit-collection": "kube-audit=on,ghippo-audit=on"}

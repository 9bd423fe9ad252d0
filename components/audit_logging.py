"""The top-level component: policy file, then manifests one master at a time, then the log shipper."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import pulumi

from components.apiserver import ApiServerAuditChange, ApiServerAuditChangeArgs, node_request
from components.drift.facts import FactReader, PreflightAsk, read_all
from components.drift.observe import observe
from components.drift.summary import summary
from components.insight_agent.component import InsightAgentArgs, InsightAgentAuditCollection
from components.insight_agent.plan import ReleasePlan
from components.kubeadm.persistence import (
    KubeadmObservation,
    KubeadmPersistence,
    KubeadmPersistenceArgs,
    observe_kubeadm,
)
from components.manifest.desired import NodeRequest
from components.policy_file import AuditPolicyFile, AuditPolicyFileArgs
from components.preflight import ClusterPreflight, ClusterPreflightArgs
from components.remote.kubeapi import KubeAccess, KubeApiError, load_kubeconfig
from components.remote.node_program import NodeProgram, NodeProgramArgs, connection, preview_bundle_bytes
from components.settings import Settings
from components.volume.stack import volume_forecast

KubeadmObserver = Callable[[KubeAccess], KubeadmObservation]


def preflight_asks(requests: Mapping[str, NodeRequest]) -> dict[str, PreflightAsk]:
    """Per master, `up`'s preflight for a preview to run: that master's request and this run's bundle."""
    bundle = preview_bundle_bytes()
    return {name: PreflightAsk(request.to_json(), bundle) for name, request in requests.items()}


class AuditLogging(pulumi.ComponentResource):
    """Kubernetes API-server audit logging on every master of one cluster, on or off.

    Order, and why:
      0. every master passes a read-only preflight (one refusal stops the whole rollout);
      1. the node program reaches every master (nothing restarts yet);
      2. master by master, each only after the previous one is ready again: its policy file, then its
         manifest (a failed master is rolled back and the later ones are left as they were);
      3. FluentBit is told to read the audit dir only after every apiserver writes there.
    """

    masters: pulumi.Output[dict[str, dict[str, object]]]
    """Per master: auditEnabled, policyHash, hostLogPath and the node's report."""
    refusals: dict[str, str]
    """Per master whose `up` the preflight would refuse, `up`'s message (previews only; the program
    fails the preview on these, __main__.py)."""

    def __init__(self, name: str, settings: Settings, agent_plan: ReleasePlan | None,
                 opts: pulumi.ResourceOptions | None = None,
                 reader: FactReader = read_all, kubeadm_observer: KubeadmObserver = observe_kubeadm) -> None:
        props = {"stack": settings.stack, "enabled": settings.enabled, "logMaxAge": settings.log.max_age,
                 "logMaxBackup": settings.log.max_backup, "logMaxSize": settings.log.max_size}
        volume = volume_forecast(settings)  # None without kube-audit:volumeSample
        if volume is not None:
            props.update(volume.props)  # the guardrail pack checks predictedHistoryHours
        super().__init__("kube-audit:index:AuditLogging", name, props, opts)
        if volume is not None:
            pulumi.log.info(volume.summary, self)
            for warning in volume.warnings:
                pulumi.log.warn(warning, self)
        child = pulumi.ResourceOptions(parent=self)
        connections = {m.name: connection(m, settings) for m in settings.masters}
        programs = {
            m.name: NodeProgram(f"{name}-program-{m.name}",
                                NodeProgramArgs(m, connections[m.name], settings.paths.node_program_dir), child)
            for m in settings.masters
        }
        state = settings.audit_state()
        change_args = {
            m.name: ApiServerAuditChangeArgs(
                master=m, connection=connections[m.name], program=programs[m.name], state=state,
                manifest=settings.paths.manifest, backup_dir=settings.paths.backup_dir, rollout=settings.rollout)
            for m in settings.masters
        }
        requests = {n: node_request(a, state) for n, a in change_args.items()}
        # Read before declaring: what differs on each node becomes part of the inputs the diff shows.
        # A preview also runs `up`'s preflight there (same code, same request): what `up` would
        # refuse fails the preview, before anyone merges.
        preview = pulumi.runtime.is_dry_run()
        observation = observe(settings, connections, self, reader, preflight_asks(requests) if preview else None)
        drift = observation.drift
        self.refusals = observation.refusals
        if preview and observation.views:
            # On the stack itself, the first thing a reviewer reads. Unattached, the log is sent at
            # once: one attached to a resource waits for its URN and can be lost when the program
            # then fails the preview (__main__.py).
            pulumi.log.info(summary(observation.views))
        preflight = ClusterPreflight(f"{name}-preflight", ClusterPreflightArgs(
            masters=settings.masters, connections=connections, programs=programs,
            requests=requests,
            drifted=[m for m, d in drift.items() if d.manifest or d.policy]), child)

        policy_file = None
        if settings.enabled and settings.policy is not None:
            policy_file = AuditPolicyFile(f"{name}-policy", AuditPolicyFileArgs(
                connections=connections, programs=programs, policy=settings.policy,
                policy_dir=settings.paths.policy_dir, policy_file=settings.paths.policy_file,
                store_dir=node_request(change_args[settings.masters[0].name], state).policy_store,
                manifest=settings.paths.manifest, drift={m: d.policy for m, d in drift.items()}), child)

        # Every master's turn (its policy write, then its manifest change) waits for all preflight
        # checks and for the previous master's change: a rollback on master k leaves k+1.. untouched.
        previous: list[pulumi.Resource] = [*preflight.checks]
        outputs: dict[str, pulumi.Output[dict[str, object]]] = {}
        for master in settings.masters:
            after = previous + ([policy_file.write_on(master, after=previous)] if policy_file else [])
            change = ApiServerAuditChange(f"{name}-apiserver-{master.name}", dataclasses.replace(
                change_args[master.name], after=after,
                drift=drift[master.name].manifest if master.name in drift else ()), child)
            previous = [change]
            outputs[master.name] = change.report.apply(lambda report: {
                "auditEnabled": state.enabled,
                "policyHash": state.policy_hash,
                "hostLogPath": settings.host_log_path if state.enabled else None,
                "report": report,
            })

        self.kubeadm_note = self._kubeadm(name, settings, previous, kubeadm_observer)

        if agent_plan is not None:
            try:  # the same kubeconfig the plan was read with; the check after the change needs it too
                agent_access: KubeAccess | None = load_kubeconfig(settings.kubeconfig, settings.kube_context)
            except (KubeApiError, OSError, ValueError):
                agent_access = None
            InsightAgentAuditCollection(f"{name}-insight-agent", InsightAgentArgs(
                settings=settings.insight_agent, collect_kube_audit=settings.enabled, plan=agent_plan,
                access=agent_access),
                pulumi.ResourceOptions(parent=self, depends_on=previous))

        self.masters = pulumi.Output.all(**outputs)  # type: ignore[arg-type]
        self.register_outputs({"masters": self.masters, "kubeadm": self.kubeadm_note})

    def _kubeadm(self, name: str, settings: Settings, after: list[pulumi.Resource],
                 observer: KubeadmObserver) -> str:
        """Record the audit settings in kubeadm-config (README "kubeadm"); returns the note for the outputs."""
        if not settings.kubeadm.persist:
            return "kubeadm.persist is off: kubeadm-config is left alone"
        try:
            access: KubeAccess | None = load_kubeconfig(settings.kubeconfig, settings.kube_context)
        except (KubeApiError, OSError, ValueError) as exc:
            pulumi.log.warn(f"kubeadm-config: cannot use the kubeconfig ({exc}); not recorded", self)
            return f"kubeadm-config not recorded: {exc}"
        observation = observer(access) if access else KubeadmObservation(None, error="no kubeconfig")
        if observation.exists is None:
            pulumi.log.warn(f"kubeadm-config: cannot be read ({observation.error}); its drift is not checked", self)
        persistence = KubeadmPersistence(f"{name}-kubeadm", KubeadmPersistenceArgs(
            access=access, state=settings.audit_state(), observation=observation, after=after),
            pulumi.ResourceOptions(parent=self))
        return persistence.note

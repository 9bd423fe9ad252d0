"""Replay a sample's requests through each policy and add up what each would write.

A request's events are gathered by audit ID until its last stage arrives, then priced once per
policy: the evaluator gives the level and omitted stages; each stage the request went through
and the policy keeps costs the sample event's metadata (its ``level`` string adjusted) plus the
bodies the level keeps (Metadata none, Request the request body, RequestResponse both), with
managed fields taken out when the policy omits them. What the sample cannot show is estimated and
counted apart: a stage the sample's policy omitted, a body the sample holds at a lower level.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from components.policy import Policy, Request
from components.policy.evaluator import compile_policy

from .reader import SampleEvent

LEVEL_RANK = {"None": 0, "Metadata": 1, "Request": 2, "RequestResponse": 3}
TERMINAL = ("ResponseComplete", "Panic")
# k8s.io/apiserver BasicLongRunningRequestCheck as kube-apiserver configures it: these get a
# ResponseStarted event (the deferred audit code fakes one when nothing was written).
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})
BODY_VERBS = frozenset({"create", "update", "patch"})  # verbs whose request carries an object
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
DEFAULT_BODY_BYTES = 1024  # when the sample has no body of a kind at all (said in the report)
K = TypeVar("K")
PENDING_LIMIT = 200_000  # requests waiting for their last stage; beyond it the oldest are priced
RECENT_LIMIT = 200_000  # finished audit IDs remembered to recognise a stage arriving late


@dataclass
class Bucket:
    """Requests, events and bytes attributed to one rule, user or resource."""

    requests: int = 0
    events: int = 0
    bytes: int = 0


@dataclass
class Tally:
    """Everything one policy would write for the sample."""

    policy: Policy
    name: str
    by_level: Counter[str] = field(default_factory=Counter)
    events: int = 0
    bytes: int = 0
    estimated_events: int = 0  # stages the sample did not hold (synthesised)
    estimated_bytes: int = 0  # their bytes plus every estimated body
    lower_in_sample: int = 0  # requests the sample holds below the level this policy asks
    # coverage: (requests, recorded) for writes and for any access to secrets
    writes: list[int] = field(default_factory=lambda: [0, 0])
    secrets: list[int] = field(default_factory=lambda: [0, 0])
    by_rule: dict[int | None, Bucket] = field(default_factory=dict)
    by_user: dict[str, Bucket] = field(default_factory=dict)
    by_resource: dict[str, Bucket] = field(default_factory=dict)
    # (body kind, body key, rule, user, resource label) -> bodies still to price at the end
    missing_bodies: Counter[tuple[str, tuple[str, str, str, str], int | None, str, str]] = field(
        default_factory=Counter)

    def add(self, rule: int | None, user: str, label: str, events: int, size: int, request: bool) -> None:
        for bucket in (_bucket(self.by_rule, rule), _bucket(self.by_user, user), _bucket(self.by_resource, label)):
            bucket.requests += request
            bucket.events += events
            bucket.bytes += size


def _bucket(table: dict[K, Bucket], key: K) -> Bucket:
    bucket = table.get(key)
    if bucket is None:
        bucket = table[key] = Bucket()
    return bucket


@dataclass
class _Pending:
    first: SampleEvent
    stages: dict[str, SampleEvent]


def resource_label(ev: SampleEvent) -> str:
    """``secrets``, ``apps/deployments``, ``pods/exec``; the URL path for non-resource requests."""
    if not ev.resource_request:
        return ev.path or "(no path)"
    res = f"{ev.resource}/{ev.subresource}" if ev.subresource else ev.resource
    return f"{ev.api_group}/{res}" if ev.api_group else res


def to_request(ev: SampleEvent) -> Request:
    """The evaluator's view of the request (authorizer attributes as the event records them)."""
    if ev.resource_request:
        # The policy is evaluated on the RequestInfo, where a create has a name only on a subresource;
        # a later stage's objectRef carries the created object's name, which the checker never saw.
        name = "" if ev.verb == "create" and not ev.subresource else ev.name
        return Request(user=ev.user, groups=ev.groups, verb=ev.verb, api_group=ev.api_group, resource=ev.resource,
                       subresource=ev.subresource, namespace=ev.namespace, name=name, resource_request=True)
    return Request(user=ev.user, groups=ev.groups, verb=ev.verb, path=ev.path, resource_request=False)


def body_key(ev: SampleEvent) -> tuple[str, str, str, str]:
    return (ev.api_group, ev.resource, ev.subresource, ev.verb)


class Replay:
    """Feed events in file order; ``finish()`` prices what is left and resolves estimated bodies."""

    def __init__(self, policies: Iterable[tuple[str, Policy]]) -> None:
        self.tallies = [Tally(policy=p, name=n) for n, p in policies]
        self.requests = 0
        self.late_events = 0  # a stage of an already-priced request (priced alone)
        self.synthesised_stages: Counter[str] = Counter()
        self._pending: dict[str, _Pending] = {}
        self._recent: dict[str, None] = {}
        # observed body sizes (sum, count) per body key and kind, to price bodies the sample lacks
        self._observed: dict[tuple[str, tuple[str, str, str, str]], list[int]] = {}
        self._observed_any: dict[str, list[int]] = {"request": [0, 0], "response": [0, 0]}
        self.defaulted_bodies = 0

    # -- input --------------------------------------------------------------------------------

    def feed(self, ev: SampleEvent) -> None:
        self._observe(ev)
        if ev.audit_id in self._recent:
            self.late_events += 1
            self._price({ev.stage: ev}, ev, synthesise=False)
            return
        pending = self._pending.get(ev.audit_id)
        if pending is None:
            pending = self._pending[ev.audit_id] = _Pending(ev, {})
            if len(self._pending) > PENDING_LIMIT:
                oldest = next(iter(self._pending))
                self._finish_one(oldest)
        pending.stages.setdefault(ev.stage, ev)
        if ev.stage in TERMINAL and ev.audit_id in self._pending:
            self._finish_one(ev.audit_id)

    def finish(self) -> list[Tally]:
        for audit_id in list(self._pending):
            self._finish_one(audit_id)
        for tally in self.tallies:
            self._resolve_bodies(tally)
        return self.tallies

    def _observe(self, ev: SampleEvent) -> None:
        for kind, size in (("request", ev.request_bytes), ("response", ev.response_bytes)):
            if size:
                slot = self._observed.setdefault((kind, body_key(ev)), [0, 0])
                slot[0] += size
                slot[1] += 1
                self._observed_any[kind][0] += size
                self._observed_any[kind][1] += 1

    def _finish_one(self, audit_id: str) -> None:
        pending = self._pending.pop(audit_id)
        self._recent[audit_id] = None
        if len(self._recent) > RECENT_LIMIT:
            del self._recent[next(iter(self._recent))]
        self.requests += 1
        self._price(pending.stages, pending.first, synthesise=True)

    # -- pricing ------------------------------------------------------------------------------

    def _stages(self, stages: dict[str, SampleEvent], ev: SampleEvent) -> list[tuple[str, SampleEvent, bool]]:
        """(stage, the sample event to price it from, synthesised?) for every stage the request had."""
        terminal = "Panic" if "Panic" in stages else "ResponseComplete"
        base = stages.get(terminal) or next(iter(stages.values()))
        wanted = ["RequestReceived"]
        long_running = ev.verb in LONG_RUNNING_VERBS or ev.subresource in LONG_RUNNING_SUBRESOURCES
        if "ResponseStarted" in stages or long_running:
            wanted.append("ResponseStarted")
        wanted.append(terminal)
        out = []
        for stage in wanted:
            if stage in stages:
                out.append((stage, stages[stage], False))
            else:
                out.append((stage, base, True))
        return out

    def _price(self, stages: dict[str, SampleEvent], first: SampleEvent, synthesise: bool) -> None:
        request = to_request(first)
        label = resource_label(first)
        sample_rank = max(LEVEL_RANK.get(e.level, 0) for e in stages.values())
        plan = self._stages(stages, first) if synthesise else [(s, e, False) for s, e in stages.items()]
        is_write = first.resource_request and first.verb in WRITE_VERBS
        is_secret = first.resource_request and first.api_group == "" and first.resource == "secrets"
        for tally in self.tallies:
            decision = compile_policy(tally.policy).evaluate(request)
            if synthesise:
                tally.by_level[decision.level] += 1
                recorded = decision.level != "None"
                if is_write:
                    tally.writes[0] += 1
                    tally.writes[1] += recorded
                if is_secret:
                    tally.secrets[0] += 1
                    tally.secrets[1] += recorded
            rank = LEVEL_RANK[decision.level]
            if rank == 0:
                if synthesise:
                    tally.add(decision.rule, first.user, label, 0, 0, True)
                continue
            if synthesise and rank > sample_rank:
                tally.lower_in_sample += 1
            events = size = 0
            for stage, ev, synthetic in plan:
                if stage in decision.omit_stages:
                    continue
                cost = self._stage_bytes(tally, decision.level, decision.rule, decision.omit_managed_fields,
                                         stage, ev, synthetic, first, label)
                events += 1
                size += cost
                if synthetic:
                    tally.estimated_events += 1
                    tally.estimated_bytes += cost
                    self.synthesised_stages[stage] += 1
            tally.events += events
            tally.bytes += size
            tally.add(decision.rule, first.user, label, events, size, synthesise)

    def _stage_bytes(self, tally: Tally, level: str, rule: int | None, omit_managed: bool, stage: str,
                     ev: SampleEvent, synthetic: bool, first: SampleEvent, label: str) -> int:
        meta = ev.meta_bytes + len(level) - len(ev.level)
        if synthetic:
            meta += len(stage) - len(ev.stage)
            if stage == "RequestReceived":  # before the response and before authorization annotations
                return meta - ev.status_bytes - ev.annotation_bytes
            if stage == "ResponseStarted":
                return meta
        if stage not in TERMINAL and not (ev.request_bytes or ev.response_bytes):
            return meta
        rank, held = LEVEL_RANK[level], LEVEL_RANK.get(ev.level, 0)
        size = meta
        if rank >= 2:
            if held >= 2:
                size += ev.request_bytes - (ev.request_managed if omit_managed else 0)
            elif first.resource_request and first.verb in BODY_VERBS:
                tally.missing_bodies[("request", body_key(first), rule, first.user, label)] += 1
        if rank >= 3:
            if held >= 3:
                size += ev.response_bytes - (ev.response_managed if omit_managed else 0)
            elif first.resource_request and first.verb not in LONG_RUNNING_VERBS:
                tally.missing_bodies[("response", body_key(first), rule, first.user, label)] += 1
        return size

    def _body_estimate(self, kind: str, key: tuple[str, str, str, str]) -> int:
        slot = self._observed.get((kind, key))
        if slot and slot[1]:
            return slot[0] // slot[1]
        total, count = self._observed_any[kind]
        if count:
            return total // count
        self.defaulted_bodies += 1
        return DEFAULT_BODY_BYTES

    def _resolve_bodies(self, tally: Tally) -> None:
        for (kind, key, rule, user, label), count in tally.missing_bodies.items():
            size = self._body_estimate(kind, key) * count
            tally.bytes += size
            tally.estimated_bytes += size
            tally.add(rule, user, label, 0, size, False)
        tally.missing_bodies.clear()
